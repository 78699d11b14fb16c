/* SPDX-License-Identifier: MIT */
/* The engine's writes: applied to the index with an undo log, persisted through the hook, then committed; txn and get.
 */
#include "engine-internal.h"

#include <assert.h>
#include <errno.h>

void engine_write_init(store_engine *e, struct write *w) {
    *w = (struct write){.revision = e->revision + 1};
}

/* Releases what the write still holds (after a commit or a rollback). */
void engine_write_release(struct write *w) {
    for (size_t i = 0; i < w->n_changes; i++) {
        engine_entry_unref(w->changes[i].old);
        engine_entry_unref(w->changes[i].entry);
    }
    free(w->changes);
    engine_kvs_unref(w->kvs, w->n_kvs);
    free(w->kvs);
    *w = (struct write){};
}

static int write_reserve_change(struct write *w) {
    return engine_grow((void **)&w->changes, &w->cap_changes, w->n_changes + 1, sizeof(w->changes[0]));
}

/* Takes over both references; room must have been reserved. */
static void write_add_change(struct write *w, store_event_type type, struct kv_entry *old, struct kv_entry *x) {
    assert(w->n_changes < w->cap_changes);
    w->changes[w->n_changes++] = (struct key_change){.type = type, .old = old, .entry = x};
}

static int write_put(store_engine *e, struct write *w, const char *key, size_t key_len, const char *value,
                     size_t value_len, int64_t lease) {
    size_t pos;

    if (lease != 0 && !engine_lease_search(e, lease, &pos))
        return -ENOENT;
    if (engine_index_reserve(e, 1) < 0 || write_reserve_change(w) < 0)
        return -ENOMEM;

    struct kv_entry *x = engine_entry_new(key, key_len, value, value_len);
    if (!x)
        return -ENOMEM;
    bool found = engine_index_search(e, key, key_len, &pos);
    struct kv_entry *old = found ? e->index[pos] : NULL;
    x->kv.create_revision = old ? old->kv.create_revision : w->revision;
    x->kv.mod_revision = w->revision;
    x->kv.version = old ? old->kv.version + 1 : 1;
    x->kv.lease = lease;
    if (old)
        e->index[pos] = x;
    else
        engine_index_insert_at(e, pos, x);
    write_add_change(w, STORE_EVENT_PUT, old, engine_entry_ref(x));
    return 0;
}

int engine_write_delete_at(store_engine *e, struct write *w, size_t pos) {
    if (write_reserve_change(w) < 0)
        return -ENOMEM;
    const store_kv *kv = &e->index[pos]->kv;
    struct kv_entry *t = engine_entry_new(kv->key, kv->key_len, NULL, 0);
    if (!t)
        return -ENOMEM;
    t->kv.mod_revision = w->revision;
    w->n_deleted++;
    write_add_change(w, STORE_EVENT_DELETE, engine_index_remove_at(e, pos), t);
    return 0;
}

static int write_delete(store_engine *e, struct write *w, const char *key, size_t key_len, bool prefix) {
    size_t pos;

    if (!prefix)
        return engine_index_search(e, key, key_len, &pos) ? engine_write_delete_at(e, w, pos) : 0;

    /* Deleting at pos moves the next key there. */
    pos = engine_index_lower_bound(e, key, key_len);
    while (pos < e->n_index && engine_has_prefix(&e->index[pos]->kv, key, key_len)) {
        int r = engine_write_delete_at(e, w, pos);
        if (r < 0)
            return r;
    }
    return 0;
}

static int write_get_add(struct write *w, struct kv_entry *x, bool keys_only) {
    static char empty[1];
    if (engine_grow((void **)&w->kvs, &w->cap_kvs, w->n_kvs + 1, sizeof(w->kvs[0])) < 0)
        return -ENOMEM;
    store_kv *kv = &w->kvs[w->n_kvs++];
    *kv = engine_entry_ref(x)->kv;
    if (keys_only) { /* the entry is found again by its key, never its value */
        kv->value = empty;
        kv->value_len = 0;
    }
    return 0;
}

static int write_get(store_engine *e, struct write *w, const store_op *op) {
    const char *key = op->key;
    size_t key_len = op->key_len, pos;

    if (op->type == STORE_OP_GET)
        return engine_index_search(e, key, key_len, &pos) ? write_get_add(w, e->index[pos], op->keys_only) : 0;

    for (pos = engine_index_lower_bound(e, key, key_len);
         pos < e->n_index && engine_has_prefix(&e->index[pos]->kv, key, key_len); pos++) {
        int r = write_get_add(w, e->index[pos], op->keys_only);
        if (r < 0)
            return r;
    }
    return 0;
}

static int write_op(store_engine *e, struct write *w, const store_op *op) {
    switch (op->type) {
    case STORE_OP_PUT:
        return write_put(e, w, op->key, op->key_len, op->value, op->value_len, op->lease);
    case STORE_OP_DELETE:
        return write_delete(e, w, op->key, op->key_len, false);
    case STORE_OP_DELETE_PREFIX:
        return write_delete(e, w, op->key, op->key_len, true);
    case STORE_OP_GET:
    case STORE_OP_GET_PREFIX:
        return write_get(e, w, op);
    }
    return -EINVAL;
}

/* Undoes the write's changes to the index, newest first.  Cannot fail: the
 * index never shrinks during a write, so re-inserting needs no allocation. */
void engine_write_rollback(store_engine *e, struct write *w) {
    for (size_t i = w->n_changes; i-- > 0;) {
        struct key_change *c = &w->changes[i];
        size_t pos;
        bool found;

        if (c->type == STORE_EVENT_PUT) {
            found = engine_index_search(e, c->entry->kv.key, c->entry->kv.key_len, &pos);
            assert(found && e->index[pos] == c->entry);
            if (c->old)
                e->index[pos] = c->old;
            else
                (void)engine_index_remove_at(e, pos);
            engine_entry_unref(c->entry); /* the index's reference */
        } else {
            found = engine_index_search(e, c->old->kv.key, c->old->kv.key_len, &pos);
            assert(!found);
            engine_index_insert_at(e, pos, c->old);
        }
        (void)found;
        c->old = NULL; /* back in the index */
        c->entry = engine_entry_unref(c->entry);
    }
    w->n_changes = 0;
}

/*
 * Makes the write durable through the hook, then moves the revision, history
 * and watches.  lease_change (may be NULL) goes with it.  Returns 0, or the
 * hook's error / -ENOMEM with nothing of the write committed (the caller
 * rolls the index back).
 */
int engine_write_commit(store_engine *e, struct write *w, const store_change *lease_change, int64_t lease_max) {
    size_t n = w->n_changes + (lease_change ? 1 : 0);
    if (n == 0)
        return 0;

    bool keys = w->n_changes > 0;
    int64_t compact = keys ? engine_history_compact_after(e, w->n_changes, w->revision) : e->compact_revision;
    if (keys && engine_history_reserve(e, MIN(e->n_hist + w->n_changes, (size_t)STORE_ENGINE_HISTORY_MAX)) < 0)
        return -ENOMEM;

    if (e->persist) {
        _cleanup_free_ store_change *changes = calloc(n, sizeof(changes[0]));
        if (!changes)
            return -ENOMEM;
        for (size_t i = 0; i < w->n_changes; i++)
            changes[i] = (store_change){
                .type = w->changes[i].type == STORE_EVENT_PUT ? STORE_CHANGE_PUT : STORE_CHANGE_DELETE,
                .kv = &w->changes[i].entry->kv,
            };
        if (lease_change)
            changes[n - 1] = *lease_change;
        store_commit c = {
            .revision = keys ? w->revision : e->revision,
            .compact_revision = compact,
            .lease_max = lease_max,
            .changes = changes,
            .n_changes = n,
        };
        int r = e->persist->commit(e->persist_userdata, &c);
        if (r < 0)
            return r;
    }

    /* Committed: nothing below may fail. */
    if (keys) {
        e->revision = w->revision;
        engine_history_trim(e, compact);
        if (w->revision >= compact)
            for (size_t i = 0; i < w->n_changes; i++)
                engine_history_push(e, w->changes[i].type, w->changes[i].entry);
        assert(e->n_hist <= STORE_ENGINE_HISTORY_MAX);
        engine_watch_notify(e, w);
    }
    return 0;
}

/* ---- txn and get ---- */

static bool compare_holds(const store_engine *e, const store_compare *cmp) {
    const struct kv_entry *x = engine_index_find(e, cmp->key, cmp->key_len);
    return store_compare_holds(cmp, x ? &x->kv : NULL);
}

/* Runs txn into c (its result or its error). */
static void txn_execute(store_engine *e, const store_txn *txn, struct completion *c) {
    bool ok = true;
    for (size_t i = 0; ok && i < txn->n_compares; i++)
        ok = compare_holds(e, &txn->compares[i]);
    const store_op *ops = ok ? txn->success : txn->failure;
    size_t n_ops = ok ? txn->n_success : txn->n_failure;

    struct write w;
    engine_write_init(e, &w);
    int r = 0;
    for (size_t i = 0; r >= 0 && i < n_ops; i++)
        r = write_op(e, &w, &ops[i]);
    if (r >= 0)
        r = engine_write_commit(e, &w, NULL, e->lease_max);
    if (r < 0) {
        engine_write_rollback(e, &w);
        engine_write_release(&w);
        c->error = r;
        return;
    }

    c->kvs = TAKE_PTR(w.kvs);
    c->result = (store_result){
        .revision = e->revision,
        .succeeded = ok,
        .kvs = c->kvs,
        .n_kvs = w.n_kvs,
        .n_deleted = w.n_deleted,
    };
    w.n_kvs = 0;
    engine_write_release(&w);
}

int store_engine_txn(store *s, const store_txn *txn, store_cb cb, void *userdata) {
    store_engine *e = engine_of(s);

    assert(e->started);
    if (e->closing)
        return -ECANCELED;
    struct completion *c = engine_completion_new(false, cb, NULL, userdata);
    if (!c)
        return -ENOMEM;
    /* Queued first, so that it runs before the watch deliveries of its own write. */
    engine_queue_push(e, &c->work);
    txn_execute(e, txn, c);
    return 0;
}

int store_engine_fail_reads(store *s, const char *prefix, unsigned n, int error) {
    assert_return(s && s->ops->get == store_engine_get && prefix && error < 0, -EINVAL);
    store_engine *e = engine_of(s);
    char *p = strdup(prefix);
    if (!p)
        return -ENOMEM;
    free(e->fail_prefix);
    e->fail_prefix = p;
    e->fail_reads = n;
    e->fail_error = error;
    return 0;
}

/* A read that store_engine_fail_reads() said must fail. */
static bool read_fails(store_engine *e, const char *key, size_t key_len) {
    size_t n = e->fail_reads > 0 ? strlen(e->fail_prefix) : 0;
    if (e->fail_reads == 0 || key_len < n || memcmp(key, e->fail_prefix, n) != 0)
        return false;
    e->fail_reads--;
    return true;
}

int store_engine_get(store *s, const char *key, size_t key_len, bool prefix, store_cb cb, void *userdata) {
    store_engine *e = engine_of(s);
    if (!e->closing && read_fails(e, key, key_len)) {
        struct completion *c = engine_completion_new(false, cb, NULL, userdata);
        if (!c)
            return -ENOMEM;
        c->error = e->fail_error;
        engine_queue_push(e, &c->work);
        return 0;
    }
    store_op op = {.type = prefix ? STORE_OP_GET_PREFIX : STORE_OP_GET, .key = key, .key_len = key_len};
    store_txn txn = {.success = &op, .n_success = 1};
    return store_engine_txn(s, &txn, cb, userdata);
}
