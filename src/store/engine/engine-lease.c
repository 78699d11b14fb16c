/* SPDX-License-Identifier: MIT */
/* The engine's leases: the table by id, one timer for the earliest deadline, grant, keepalive, revoke and expiry. */
#include "engine-internal.h"

#include <assert.h>
#include <errno.h>

bool engine_lease_search(const store_engine *e, int64_t id, size_t *ret_pos) {
    size_t lo = 0, hi = e->n_leases;
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        if (e->leases[mid].id < id)
            lo = mid + 1;
        else
            hi = mid;
    }
    *ret_pos = lo;
    return lo < e->n_leases && e->leases[lo].id == id;
}

void engine_lease_insert(store_engine *e, int64_t id, int64_t ttl, uint64_t deadline) {
    size_t pos;
    bool found = engine_lease_search(e, id, &pos);
    assert(!found && e->n_leases < e->cap_leases);
    (void)found;
    memmove(e->leases + pos + 1, e->leases + pos, (e->n_leases - pos) * sizeof(e->leases[0]));
    e->leases[pos] = (struct lease){.id = id, .ttl = ttl, .deadline_msec = deadline};
    e->n_leases++;
}

static void lease_remove_at(store_engine *e, size_t pos) {
    memmove(e->leases + pos, e->leases + pos + 1, (e->n_leases - pos - 1) * sizeof(e->leases[0]));
    e->n_leases--;
}

static void on_lease_timer(uv_timer_t *t);

/* Arms the timer for the earliest deadline (a linear scan: a node has tens of leases). */
void engine_lease_arm_timer(store_engine *e) {
    if (!e->started || e->closing)
        return;
    if (e->n_leases == 0) {
        (void)uv_timer_stop(&e->timer);
        return;
    }
    uint64_t first = UINT64_MAX, now = engine_now_msec();
    for (size_t i = 0; i < e->n_leases; i++)
        first = MIN(first, e->leases[i].deadline_msec);
    /* At least 1 ms: the loop's clock may lag ours, and the callback re-checks. */
    (void)uv_timer_start(&e->timer, on_lease_timer, first > now ? first - now : 1, 0);
}

uint64_t engine_lease_deadline(int64_t ttl) {
    return engine_now_msec() + (uint64_t)ttl * 1000;
}

/* ---- leases ---- */

/* A lease call's completion, queued: its callback runs from the idle handle
 * with what the caller leaves in it. NULL with *ret_error set if none. */
static struct completion *lease_call(store_engine *e, store_lease_cb cb, void *userdata, int *ret_error) {
    if (e->closing) {
        *ret_error = -ECANCELED;
        return NULL;
    }
    struct completion *c = engine_completion_new(true, NULL, cb, userdata);
    if (!c) {
        *ret_error = -ENOMEM;
        return NULL;
    }
    engine_queue_push(e, &c->work);
    return c;
}

int store_engine_lease_grant(store *s, int64_t ttl, store_lease_cb cb, void *userdata) {
    store_engine *e = engine_of(s);
    int r;
    struct completion *c = lease_call(e, cb, userdata, &r);
    if (!c)
        return r;
    int64_t id = e->lease_max + 1;
    store_change change = {.type = STORE_CHANGE_LEASE_GRANT, .lease = id, .ttl = ttl};
    struct write w;
    engine_write_init(e, &w);
    r = engine_grow((void **)&e->leases, &e->cap_leases, e->n_leases + 1, sizeof(e->leases[0]));
    if (r >= 0)
        r = engine_write_commit(e, &w, &change, id);
    engine_write_release(&w);
    if (r < 0)
        c->error = r;
    else {
        engine_lease_insert(e, id, ttl, engine_lease_deadline(ttl));
        e->lease_max = id;
        engine_lease_arm_timer(e);
        c->lease = id;
        c->ttl = ttl;
    }
    return 0;
}

int store_engine_lease_keepalive(store *s, int64_t lease, store_lease_cb cb, void *userdata) {
    store_engine *e = engine_of(s);
    size_t pos;
    int r;
    struct completion *c = lease_call(e, cb, userdata, &r);
    if (!c)
        return r;
    c->lease = lease;
    if (!engine_lease_search(e, lease, &pos))
        c->error = -ENOENT;
    else {
        e->leases[pos].deadline_msec = engine_lease_deadline(e->leases[pos].ttl);
        c->ttl = e->leases[pos].ttl;
        engine_lease_arm_timer(e);
    }
    return 0;
}

/* Revokes the lease at pos: deletes its keys in one revision, then forgets it.
 * Returns 0, or an error with nothing changed. */
static int lease_revoke_at(store_engine *e, size_t pos) {
    int64_t id = e->leases[pos].id;
    store_change change = {.type = STORE_CHANGE_LEASE_REVOKE, .lease = id};
    struct write w;
    int r = 0;

    /* A scan of every key: leases are revoked far less often than keys change. */
    engine_write_init(e, &w);
    for (size_t i = 0; r >= 0 && i < e->n_index;)
        if (e->index[i]->kv.lease == id)
            r = engine_write_delete_at(e, &w, i); /* the next key moves to i */
        else
            i++;
    if (r >= 0)
        r = engine_write_commit(e, &w, &change, e->lease_max);
    if (r < 0)
        engine_write_rollback(e, &w);
    engine_write_release(&w);
    if (r < 0)
        return r;

    lease_remove_at(e, pos);
    engine_lease_arm_timer(e);
    return 0;
}

int store_engine_lease_revoke(store *s, int64_t lease, store_lease_cb cb, void *userdata) {
    store_engine *e = engine_of(s);
    size_t pos;
    int r;
    struct completion *c = lease_call(e, cb, userdata, &r);
    if (!c)
        return r;
    c->lease = lease;
    c->error = engine_lease_search(e, lease, &pos) ? lease_revoke_at(e, pos) : -ENOENT;
    return 0;
}

static void on_lease_timer(uv_timer_t *t) {
    store_engine *e = t->data;
    uint64_t now = engine_now_msec();

    for (size_t i = 0; i < e->n_leases;) {
        if (e->leases[i].deadline_msec <= now) {
            if (lease_revoke_at(e, i) >= 0)
                continue; /* the next lease moved to i */
            /* Not persisted, so not applied: the keys stay until a retry works. */
            e->leases[i].deadline_msec = now + STORE_ENGINE_LEASE_RETRY_MSEC;
        }
        i++;
    }
    engine_lease_arm_timer(e);
}
