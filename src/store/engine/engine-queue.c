/* SPDX-License-Identifier: MIT */
/* The engine's work queue: call completions and watch deliveries, run in order from a uv_idle handle. */
#include "engine-internal.h"

#include <errno.h>

static void on_idle(uv_idle_t *h);

void engine_queue_push(store_engine *e, struct work *w) {
    LIST_APPEND(queue, &e->queue, w);
    if (e->n_queued++ == 0)
        (void)uv_idle_start(&e->idle, on_idle);
}

void engine_queue_remove(store_engine *e, struct work *w) {
    LIST_REMOVE(queue, &e->queue, w);
    e->n_queued--;
}

static struct work *queue_pop(store_engine *e) {
    struct work *w = e->queue.first;
    if (w)
        engine_queue_remove(e, w);
    return w;
}

/* ---- completions ---- */

struct completion *engine_completion_new(bool lease_call, store_cb cb, store_lease_cb lease_cb, void *userdata) {
    struct completion *c = calloc(1, sizeof(*c));
    if (!c)
        return NULL;
    c->work.type = WORK_COMPLETION;
    c->lease_call = lease_call;
    c->cb = cb;
    c->lease_cb = lease_cb;
    c->userdata = userdata;
    return c;
}

static struct completion *completion_free(struct completion *c) {
    if (!c)
        return NULL;
    engine_kvs_unref(c->kvs, c->result.n_kvs);
    free(c->kvs);
    free(c);
    return NULL;
}

static void completion_run(store_engine *e, struct completion *c) {
    if (c->lease_call) {
        if (c->lease_cb)
            c->lease_cb(&e->head, c->error, c->lease, c->error < 0 ? 0 : c->ttl, c->userdata);
    } else if (c->cb)
        c->cb(&e->head, c->error, c->error < 0 ? NULL : &c->result, c->userdata);
    completion_free(c);
}

/* ---- the loop side ---- */

static void on_idle(uv_idle_t *h) {
    store_engine *e = h->data;

    /* Only what is queued now: callbacks that queue more wait for the next round. */
    for (size_t budget = e->n_queued; budget > 0 && !e->closing; budget--) {
        struct work *w = queue_pop(e);
        if (!w)
            break;
        if (w->type == WORK_COMPLETION)
            completion_run(e, engine_container_of(w, struct completion, work));
        else
            engine_watch_run(e, engine_container_of(w, struct engine_watch, work));
    }
    if (!e->closing && e->n_queued == 0)
        (void)uv_idle_stop(&e->idle);
}

void engine_queue_flush(store_engine *e) {
    struct work *w;

    /* Queued watch deliveries are dropped here: engine_watch_end_all() ends their watches. */
    while ((w = queue_pop(e))) {
        if (w->type == WORK_COMPLETION)
            completion_run(e, engine_container_of(w, struct completion, work));
        else
            engine_container_of(w, struct engine_watch, work)->queued = false;
    }
}
