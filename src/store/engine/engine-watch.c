/* SPDX-License-Identifier: MIT */
/* The engine's watches: a queue of pending events each, filled from history and by every write. */
#include "engine-internal.h"

#include <assert.h>
#include <errno.h>

static struct engine_watch *watch_of(store_watch *w) {
    return (struct engine_watch *)w;
}

static void watch_drop_pending(struct engine_watch *w) {
    for (size_t i = 0; i < w->n_pending; i++)
        engine_entry_unref(engine_entry_of(&w->pending[i].kv));
    w->n_pending = 0;
}

static void watch_free(store_engine *e, struct engine_watch *w) {
    if (w->list) {
        LIST_REMOVE(watches, w->list, w);
        w->list = NULL;
    }
    if (w->queued) {
        engine_queue_remove(e, &w->work);
        w->queued = false;
    }
    watch_drop_pending(w);
    free(w->pending);
    free(w->prefix);
    free(w);
}

static void watch_schedule(store_engine *e, struct engine_watch *w) {
    if (w->ended || w->cancelled)
        return;
    if (!w->queued && (w->error < 0 || w->n_pending > 0)) {
        w->queued = true;
        engine_queue_push(e, &w->work);
    }
}

/* Ends the watch with error: what was pending is dropped, the error is delivered. */
static void watch_fail(store_engine *e, struct engine_watch *w, int error) {
    watch_drop_pending(w);
    w->error = error;
    watch_schedule(e, w);
}

static int watch_push(struct engine_watch *w, store_event_type type, struct kv_entry *x) {
    if (engine_grow((void **)&w->pending, &w->cap_pending, w->n_pending + 1, sizeof(w->pending[0])) < 0)
        return -ENOMEM;
    w->pending[w->n_pending++] = (store_event){.type = type, .kv = engine_entry_ref(x)->kv};
    return 0;
}

static bool watch_wants(const struct engine_watch *w, int64_t rev, const store_kv *kv) {
    return rev >= w->min_revision && engine_has_prefix(kv, w->prefix, w->prefix_len);
}

/* Delivers a terminal error to a watch that has not ended yet. */
static void watch_end(struct engine_watch *w, int error) {
    w->ended = true;
    w->in_callback = true;
    w->cb(&w->head, error, NULL, 0, w->userdata);
    w->in_callback = false;
}

void engine_watch_run(store_engine *e, struct engine_watch *w) {
    w->queued = false;
    if (w->error < 0) {
        /* Stays linked (and skipped by writes) until cancelled or store_free(). */
        watch_drop_pending(w);
        watch_end(w, w->error);
    } else {
        /* Take the batch: events that arrive during the callback start a new one. */
        store_event *events = TAKE_PTR(w->pending);
        size_t n = w->n_pending;
        w->n_pending = w->cap_pending = 0;

        w->in_callback = true;
        w->cb(&w->head, 0, events, n, w->userdata);
        w->in_callback = false;

        for (size_t i = 0; i < n; i++)
            engine_entry_unref(engine_entry_of(&events[i].kv));
        free(events);
    }

    if (w->cancelled)
        watch_free(e, w);
    else if (e->closing) {
        /* store_free() ran inside the callback and left this watch to us. */
        if (!w->ended)
            watch_end(w, -ECANCELED);
        watch_free(e, w);
    }
}

void engine_watch_notify(store_engine *e, const struct write *w) {
    struct engine_watch *wt;

    LIST_FOREACH (watches, wt, &e->watches) {
        if (wt->error < 0 || wt->cancelled || w->revision < wt->min_revision)
            continue;
        for (size_t i = 0; i < w->n_changes; i++) {
            const struct key_change *c = &w->changes[i];
            if (!watch_wants(wt, w->revision, &c->entry->kv))
                continue;
            if (watch_push(wt, c->type, c->entry) < 0) {
                /* Never a silent gap: the watch ends and its owner re-watches. */
                watch_fail(e, wt, -ENOMEM);
                break;
            }
        }
        watch_schedule(e, wt);
    }
}

int store_engine_watch(store *s, const char *prefix, size_t prefix_len, int64_t start_revision, store_watch_cb cb,
                       void *userdata, store_watch **ret) {
    store_engine *e = engine_of(s);

    assert(e->started);
    if (e->closing)
        return -ECANCELED;

    struct engine_watch *w = calloc(1, sizeof(*w));
    if (!w)
        return -ENOMEM;
    w->head.store = s;
    w->work.type = WORK_WATCH;
    w->cb = cb;
    w->userdata = userdata;
    w->prefix_len = prefix_len;
    w->prefix = malloc(prefix_len + 1);
    if (!w->prefix) {
        free(w);
        return -ENOMEM;
    }
    if (prefix_len > 0)
        memcpy(w->prefix, prefix, prefix_len);
    w->prefix[prefix_len] = 0;

    /* 0 is "from now on"; a start in the future waits for its revision. */
    w->min_revision = start_revision == 0 ? e->revision + 1 : start_revision;
    if (w->min_revision <= e->revision) {
        if (w->min_revision < e->compact_revision)
            w->error = -ESTALE;
        else
            for (size_t i = engine_history_lower_bound(e, w->min_revision); i < e->n_hist; i++) {
                const struct hist_item *h = engine_history_at(e, i);
                if (!watch_wants(w, h->entry->kv.mod_revision, &h->entry->kv))
                    continue;
                if (watch_push(w, h->type, h->entry) < 0) {
                    watch_free(e, w);
                    return -ENOMEM;
                }
            }
    }

    LIST_APPEND(watches, &e->watches, w);
    w->list = &e->watches;
    watch_schedule(e, w);
    *ret = &w->head;
    return 0;
}

void store_engine_watch_cancel(store_watch *h) {
    struct engine_watch *w = watch_of(h);
    store_engine *e = engine_of(h->store);

    if (w->cancelled)
        return;
    w->cancelled = true;
    if (w->in_callback) {
        /* Freed by whoever runs the callback, once it returns; writes skip it meanwhile. */
        watch_drop_pending(w);
        return;
    }
    watch_free(e, w);
}

void engine_watch_end_all(store_engine *e) {
    /* One at a time from the head, and freed only once every watch has had its
     * callback: a callback may cancel any watch, ended or not. */
    engine_watch_list ended = {};
    struct engine_watch *wt;

    while ((wt = LIST_POP(watches, &e->watches))) {
        watch_drop_pending(wt);
        if (wt->in_callback) {
            wt->list = NULL; /* engine_watch_run() ends and frees it when its callback returns */
            continue;
        }
        LIST_APPEND(watches, &ended, wt);
        wt->list = &ended;
        if (!wt->ended && !wt->cancelled) {
            watch_end(wt, -ECANCELED);
            if (wt->cancelled)
                watch_free(e, wt);
        }
    }
    while (ended.first)
        watch_free(e, ended.first);
}
