/* SPDX-License-Identifier: MIT */
/* The coordinator's duties on the event queues (recovery-coord.h). */
#define LOG_AREA LOG_AREA_AMF
#include "recovery-coord.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "failvec.h"
#include "log.h"
#include "macro.h"

#define COORD_PRUNE_MSEC 1000 /* the coordinator prunes the BQ this often */

struct recovery_coord {
    struct queue *q;
    const struct recovery_model *model;
    struct failvec *fv; /* the epochs and failure vectors; NULL without pools */
    struct cluster *cluster;
    size_t (*live_nodes)(void *userdata, const char **out, size_t max);
    void *live_userdata;
    char *node;
    uv_timer_t prune;
};

static void on_stopped(struct queue *q, int error, void *userdata) {
    struct recovery_coord *c = userdata;
    if (error == -EPERM && c->cluster)
        cluster_deposed(c->cluster);
}

/* The coordinator's rules (recovery-model.h); a refused event is logged and dropped. */
static int on_decide(struct queue *q, const struct queue_event *ev, int current, enum queue_ha_state *ret_state,
                     void *userdata) {
    struct recovery_coord *c = userdata;
    const char *why = NULL;
    char object[QUEUE_OBJECT_MAX];
    (void)queue_event_object(ev, object);
    /* What the event is checked against: a node's latest incarnation (the
     * lease its published state carries), or the owner process's epoch. */
    int64_t incarnation = failvec_epoch(c->fv, rm_owner(c->model, object));
    struct queue_state st;
    if (ev->kind == QUEUE_KIND_NODE)
        incarnation = queue_state_of(q, object, &st) == 0 ? st.lease : 0;
    int r = rm_decide(c->model, ev, current, incarnation, &why);
    if (r == 0)
        log_info("Refused %s %s -> %s (reported by %s, epoch %lld, lease %lld): %s", object,
                 current >= 0 ? queue_ha_state_to_string((enum queue_ha_state)current) : "(none)",
                 queue_ha_state_to_string(ev->state), ev->node, (long long)ev->epoch, (long long)ev->lease, why);
    *ret_state = ev->state;
    return r;
}

static size_t on_expand(struct queue *q, const struct queue_event *ev, struct queue_event *out, size_t max,
                        void *userdata) {
    struct recovery_coord *c = userdata;
    return rm_expand(c->model, ev, out, max);
}

static void on_pruned(struct queue *q, int error, uint64_t n, void *userdata) {
    if (error < 0 && error != -ECANCELED && error != -EBUSY)
        log_debug_errno(error, "Pruning the broadcast queue stopped: %m");
}

/* Prunes what every live node has read: all of them, however many. */
static void on_prune(uv_timer_t *t) {
    struct recovery_coord *c = t->data;
    if (!c->live_nodes) {
        const char *self = c->node;
        (void)bq_prune(c->q, &self, 1, on_pruned, c);
        return;
    }
    size_t n = c->live_nodes(c->live_userdata, NULL, 0);
    const char **live = n ? calloc(n, sizeof(*live)) : NULL;
    if (!live) {
        if (n)
            log_warning("Out of memory pruning the broadcast queue");
        return;
    }
    n = MIN(n, c->live_nodes(c->live_userdata, live, n));
    (void)bq_prune(c->q, live, n, on_pruned, c); /* copies the names */
    free(live);
}

void recovery_coord_set(struct recovery_coord *c, bool coordinator) {
    if (!coordinator) {
        eq_consumer_stop(c->q);
        uv_timer_stop(&c->prune);
        return;
    }
    store_compare guard;
    if (c->cluster)
        cluster_guard(c->cluster, &guard);
    eq_consumer_set_expand(c->q, c->model ? on_expand : NULL);
    eq_consumer_set_writer(c->q, c->fv ? &failvec_writer : NULL, c->fv);
    int r = eq_consumer_start(c->q, c->cluster ? &guard : NULL, c->model ? on_decide : NULL, on_stopped, c);
    if (r < 0 && r != -EBUSY)
        log_error_errno(r, "Failed to start consuming the event queue: %m");
    uv_timer_start(&c->prune, on_prune, COORD_PRUNE_MSEC, COORD_PRUNE_MSEC);
}

int recovery_coord_new(const struct recovery_coord_params *p, struct recovery_coord **ret) {
    struct recovery_coord *c = calloc(1, sizeof(*c));
    if (!c)
        return -ENOMEM;
    *c = (struct recovery_coord){.q = p->queue,
                                 .model = p->model,
                                 .cluster = p->cluster,
                                 .live_nodes = p->live_nodes,
                                 .live_userdata = p->live_userdata,
                                 .node = strdup(p->node)};
    if (!c->node) {
        free(c);
        return -ENOMEM;
    }
    if (p->model && p->pools && failvec_new(p->store, p->queue, p->prefix, p->model, &c->fv) < 0)
        log_warning("Out of memory: no failure vectors");
    uv_timer_init(p->loop, &c->prune);
    c->prune.data = c;
    *ret = c;
    return 0;
}

static void on_closed(uv_handle_t *h) {
    struct recovery_coord *c = h->data;
    free(c->node);
    free(c);
}

struct recovery_coord *recovery_coord_free(struct recovery_coord *c) {
    if (!c)
        return NULL;
    failvec_free(c->fv);
    c->fv = NULL;
    uv_close((uv_handle_t *)&c->prune, on_closed);
    return NULL;
}
