/* SPDX-License-Identifier: MIT */
/* The in-memory revisioned key-value engine of the local store backends: creating, loading, starting, freeing it. */
#include "engine-internal.h"

#include <assert.h>
#include <errno.h>

int64_t store_engine_revision(store *s) {
    return engine_of(s)->revision;
}

static void on_handle_closed(uv_handle_t *h) {
    store_engine *e = h->data;
    if (--e->n_handles_open == 0)
        free(e);
}

/* ---- life cycle ---- */

int store_engine_new(uv_loop_t *loop, const store_ops *ops, const store_engine_persist *persist, void *persist_userdata,
                     store_engine **ret) {
    assert(loop && ops && ret);

    store_engine *e = calloc(1, sizeof(*e));
    if (!e)
        return -ENOMEM;
    e->head = (struct store){.ops = ops, .loop = loop};
    e->persist = persist;
    e->persist_userdata = persist_userdata;
    e->revision = 1;
    e->compact_revision = 1;
    *ret = e;
    return 0;
}

store *store_engine_store(store_engine *e) {
    return &e->head;
}

static bool kv_sizes_ok(const store_kv *kv) {
    return kv->key && kv->key_len > 0 && kv->key_len <= STORE_KEY_MAX && (kv->value || kv->value_len == 0) &&
           kv->value_len <= STORE_VALUE_MAX;
}

int store_engine_load_kv(store_engine *e, const store_kv *kv) {
    size_t pos;

    assert(!e->started);
    if (!kv_sizes_ok(kv) || kv->version < 1 || kv->create_revision < 2 || kv->mod_revision < kv->create_revision ||
        kv->lease < 0)
        return -EBADMSG;
    if (engine_index_search(e, kv->key, kv->key_len, &pos))
        return -EBADMSG;
    if (engine_index_reserve(e, 1) < 0)
        return -ENOMEM;
    struct kv_entry *x = engine_entry_new(kv->key, kv->key_len, kv->value, kv->value_len);
    if (!x)
        return -ENOMEM;
    x->kv.create_revision = kv->create_revision;
    x->kv.mod_revision = kv->mod_revision;
    x->kv.version = kv->version;
    x->kv.lease = kv->lease;
    engine_index_insert_at(e, pos, x);
    return 0;
}

int store_engine_load_lease(store_engine *e, int64_t lease, int64_t ttl) {
    size_t pos;

    assert(!e->started);
    if (lease <= 0 || ttl <= 0 || engine_lease_search(e, lease, &pos))
        return -EBADMSG;
    if (engine_grow((void **)&e->leases, &e->cap_leases, e->n_leases + 1, sizeof(e->leases[0])) < 0)
        return -ENOMEM;
    engine_lease_insert(e, lease, ttl, 0);
    return 0;
}

int store_engine_load_event(store_engine *e, store_event_type type, const store_kv *kv) {
    struct kv_entry *x;

    assert(!e->started);
    if (!kv_sizes_ok(kv) || kv->mod_revision < 2 || (type != STORE_EVENT_PUT && type != STORE_EVENT_DELETE))
        return -EBADMSG;
    if (e->n_hist > 0 && engine_history_rev(e, e->n_hist - 1) > kv->mod_revision)
        return -EBADMSG;
    if (type == STORE_EVENT_PUT &&
        (kv->version < 1 || kv->create_revision < 2 || kv->create_revision > kv->mod_revision))
        return -EBADMSG;
    if (engine_history_reserve(e, e->n_hist + 1) < 0)
        return -ENOMEM;

    /* The key's current state is often this very event: share it. */
    x = type == STORE_EVENT_PUT ? engine_index_find(e, kv->key, kv->key_len) : NULL;
    if (x && x->kv.mod_revision == kv->mod_revision)
        engine_entry_ref(x);
    else {
        x = engine_entry_new(kv->key, kv->key_len, type == STORE_EVENT_PUT ? kv->value : NULL,
                             type == STORE_EVENT_PUT ? kv->value_len : 0);
        if (!x)
            return -ENOMEM;
        x->kv.mod_revision = kv->mod_revision;
        if (type == STORE_EVENT_PUT) {
            x->kv.create_revision = kv->create_revision;
            x->kv.version = kv->version;
            x->kv.lease = kv->lease;
        }
    }
    engine_history_push(e, type, x);
    engine_entry_unref(x); /* history_push took its own */
    return 0;
}

int store_engine_start(store_engine *e, int64_t revision, int64_t compact_revision, int64_t lease_max) {
    size_t pos;

    assert(!e->started);
    if (revision < 1 || compact_revision < 1 || compact_revision > revision + 1 || lease_max < 0)
        return -EBADMSG;
    for (size_t i = 0; i < e->n_index; i++) {
        const store_kv *kv = &e->index[i]->kv;
        if (kv->mod_revision > revision || (kv->lease != 0 && !engine_lease_search(e, kv->lease, &pos)))
            return -EBADMSG;
    }
    if (e->n_leases > 0 && e->leases[e->n_leases - 1].id > lease_max)
        return -EBADMSG;
    if (e->n_hist > 0 && engine_history_rev(e, e->n_hist - 1) > revision)
        return -EBADMSG;

    e->revision = revision;
    e->compact_revision = compact_revision;
    e->lease_max = lease_max;
    /* Events older than the compact revision are of no use, and a smaller
     * STORE_ENGINE_HISTORY_MAX than the one that wrote them keeps fewer. */
    engine_history_trim(e, compact_revision);
    engine_history_trim(e, engine_history_compact_after(e, 0, revision));

    /* As etcd after a leader change: every lease gets a full TTL from now. */
    for (size_t i = 0; i < e->n_leases; i++)
        e->leases[i].deadline_msec = engine_lease_deadline(e->leases[i].ttl);

    (void)uv_idle_init(e->head.loop, &e->idle);
    (void)uv_timer_init(e->head.loop, &e->timer);
    e->idle.data = e->timer.data = e;
    e->n_handles_open = 2;
    e->started = true;
    engine_lease_arm_timer(e);
    return 0;
}

void store_engine_free(store *s) {
    store_engine *e = s ? engine_of(s) : NULL;

    if (!e || e->closing)
        return;
    e->closing = true;

    /* Runs every queued completion and ends every watch (store.h).  Every
     * watch is freed then, except one in its callback (engine_watch_run() frees it). */
    if (e->started) {
        engine_queue_flush(e);
        engine_watch_end_all(e);
    }

    if (e->persist && e->persist->close)
        e->persist->close(e->persist_userdata);

    for (size_t i = 0; i < e->n_index; i++)
        engine_entry_unref(e->index[i]);
    free(e->index);
    while (e->n_hist > 0)
        engine_history_pop_front(e);
    free(e->hist);
    free(e->leases);
    free(e->fail_prefix);
    e->fail_prefix = NULL;
    e->index = NULL;
    e->hist = NULL;
    e->leases = NULL;
    e->n_index = e->n_leases = 0;

    if (!e->started) {
        free(e);
        return;
    }
    uv_close((uv_handle_t *)&e->idle, on_handle_closed);
    uv_close((uv_handle_t *)&e->timer, on_handle_closed);
}
