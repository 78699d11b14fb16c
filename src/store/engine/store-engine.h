/* SPDX-License-Identifier: MIT */
/* The in-memory revisioned key-value engine that the local store backends (memory, SQLite) share. */
#pragma once

/*
 * The engine implements every store_ops function for the local backends; a
 * backend only adds its name and, optionally, persistence.
 *
 * Data model (etcd v3 semantics, see store.h):
 *  - Keys live in one array sorted by key bytes (memcmp, shorter first on a
 *    common prefix): O(log n) lookup by binary search, O(n) insert/remove by
 *    memmove, prefix ranges as one contiguous slice.
 *  - Each key's state is an immutable, reference-counted entry; a put makes a
 *    new entry, so results, history and pending watch events share entries
 *    with the index instead of copying values.  Keys and values handed to
 *    callbacks are followed by a NUL byte that their length does not count.
 *  - One revision counter: 1 for an empty store, +1 per write that changes at
 *    least one key.  Lease grants and keepalives do not change it; a lease
 *    revoke or expiry changes it only if the lease had keys.
 *  - History: the events (PUT/DELETE, in order) of the last revisions, at most
 *    STORE_ENGINE_HISTORY_MAX events, dropped a whole revision at a time from
 *    the oldest.  compact_revision is the oldest revision whose events are all
 *    kept: a watch may start anywhere in [compact_revision, revision + 1] or
 *    later; an older start gets -ESTALE.
 *  - Watches: each keeps its own queue of pending events.  A watch created
 *    from a past revision is filled from history at once, then each write
 *    appends its events to every matching watch, so nothing is missed or
 *    repeated however long the loop takes to deliver them.
 *  - Leases: id (never reused: the highest id granted is kept, persisted),
 *    TTL in seconds, deadline on the monotonic clock.  One uv_timer is armed
 *    for the earliest deadline; an expired lease is revoked like
 *    lease_revoke: its keys are deleted in one revision with DELETE events.
 *
 * Execution: every call runs to completion inside the call (so a write's
 * revision is known when it returns) and queues its completion; completions
 * and watch deliveries run in FIFO order from a uv_idle handle that is active
 * only while the queue is not empty.  Each idle round runs only the work that
 * was queued when it started, so callbacks that issue more calls cannot starve
 * the loop.  A write's own callback runs before the watch deliveries of its
 * events.
 *
 * Writes and persistence: a write is applied to the in-memory index first
 * with an undo log, then handed to the persistence hook as a list of changes;
 * if the hook fails, the index is rolled back, the revision, history, leases
 * and watches are untouched, and the callback gets the hook's error.  Only
 * after the hook succeeded do the revision, history and watches move.
 *
 * Closing: store_free() runs the queued completions with their results and
 * ends the live watches with -ECANCELED before it returns, closes the
 * persistence hook, then closes the two libuv handles; the engine's memory
 * is released by the last close callback, so the loop must run once more.
 */

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "store.h"

/* Events kept for watches that start in the past. */
/* Bounds memory: ~225 bytes an event for halod's small JSON values.  A watcher
 * further behind than this gets -ESTALE and re-reads by range (etcd compaction). */
#define STORE_ENGINE_HISTORY_MAX 2000

/* After a failed expiry (the hook could not persist it), retry this much later. */
#define STORE_ENGINE_LEASE_RETRY_MSEC 1000

typedef struct store_engine store_engine;

typedef enum store_change_type {
    STORE_CHANGE_PUT,          /* kv: the key's new state */
    STORE_CHANGE_DELETE,       /* kv: key and mod_revision (the deleting revision); the rest 0 */
    STORE_CHANGE_LEASE_GRANT,  /* lease, ttl */
    STORE_CHANGE_LEASE_REVOKE, /* lease; its keys' deletions come as DELETE changes in the same commit */
} store_change_type;

typedef struct store_change {
    store_change_type type;
    const store_kv *kv; /* PUT, DELETE */
    int64_t lease;      /* LEASE_* */
    int64_t ttl;        /* LEASE_GRANT, seconds */
} store_change;

/* One write, to be made durable as a whole or not at all. */
typedef struct store_commit {
    int64_t revision;            /* store revision after the write (unchanged if no key changed) */
    int64_t compact_revision;    /* history keeps every event of revisions >= this one */
    int64_t lease_max;           /* highest lease id ever granted, including this write's */
    const store_change *changes; /* key changes in event order; lease changes after them */
    size_t n_changes;
} store_commit;

/* Implemented by a backend that persists the store. */
typedef struct store_engine_persist {
    /* Persists one write atomically before the engine reports it.  Returns 0,
     * or a negative errno when nothing of the write was persisted.  The
     * pointers in c are valid only during the call. */
    int (*commit)(void *userdata, const store_commit *c);
    /* Releases userdata; called once, from store_free() or a failed setup. */
    void (*close)(void *userdata);
} store_engine_persist;

/*
 * Creates an engine whose store head uses ops (a backend's table of the
 * store_engine_* functions below).  persist may be NULL; if not, the engine
 * owns persist_userdata from a successful return on, and calls persist->close
 * when it is freed.  The engine is not usable before store_engine_start().
 * Returns 0 or -ENOMEM.
 */
int store_engine_new(uv_loop_t *loop, const store_ops *ops, const store_engine_persist *persist, void *persist_userdata,
                     store_engine **ret);

/* The store this engine implements (its head); the engine is freed by store_free() on it. */
store *store_engine_store(store_engine *e);

/*
 * Loading persisted state before store_engine_start(); none of these calls
 * the hook.  Keys may come in any order; events must come in revision order,
 * each with its kv as in a watch event.  Return 0, -EBADMSG for data that
 * cannot be right (bad sizes, versions, revisions, unknown lease, duplicate),
 * or -ENOMEM.
 */
int store_engine_load_kv(store_engine *e, const store_kv *kv);
int store_engine_load_lease(store_engine *e, int64_t lease, int64_t ttl);
int store_engine_load_event(store_engine *e, store_event_type type, const store_kv *kv);

/*
 * Ends loading: sets the revision (1 for an empty store), the compact revision
 * (1 for a store that never dropped history) and the highest lease id granted,
 * checks that the loaded data agrees with them (-EBADMSG otherwise), starts
 * the libuv handles and the TTL of every loaded lease (a full TTL from now).
 * On failure the engine stays unstarted and store_free() releases it at once.
 */
int store_engine_start(store_engine *e, int64_t revision, int64_t compact_revision, int64_t lease_max);

/* store_ops functions. */
void store_engine_free(store *s);
int store_engine_get(store *s, const char *key, size_t key_len, bool prefix, store_cb cb, void *userdata);
int store_engine_txn(store *s, const store_txn *txn, store_cb cb, void *userdata);
int store_engine_lease_grant(store *s, int64_t ttl, store_lease_cb cb, void *userdata);
int store_engine_lease_keepalive(store *s, int64_t lease, store_lease_cb cb, void *userdata);
int store_engine_lease_revoke(store *s, int64_t lease, store_lease_cb cb, void *userdata);
int store_engine_watch(store *s, const char *prefix, size_t prefix_len, int64_t start_revision, store_watch_cb cb,
                       void *userdata, store_watch **ret);
void store_engine_watch_cancel(store_watch *w);
int64_t store_engine_revision(store *s);

/*
 * A fault for tests: the next n reads (store_get(), store_range(); not reads
 * within a transaction) of a key under prefix fail with error (a negative
 * errno, such as -ETIMEDOUT from an etcd that went away), through their
 * callback as usual.  n 0 ends it.  Returns 0, -EINVAL (not an engine's
 * store, or error not negative), -ENOMEM.
 */
int store_engine_fail_reads(store *s, const char *prefix, unsigned n, int error);

/* The ops table of a backend built on the engine (they differ only by name and
 * by the persistence hook given to store_engine_new()). */
#define STORE_ENGINE_OPS(backend_name)                                                                       \
    {                                                                                                        \
        .name = (backend_name), .free = store_engine_free, .get = store_engine_get, .txn = store_engine_txn, \
        .lease_grant = store_engine_lease_grant, .lease_keepalive = store_engine_lease_keepalive,            \
        .lease_revoke = store_engine_lease_revoke, .watch = store_engine_watch,                              \
        .watch_cancel = store_engine_watch_cancel, .revision = store_engine_revision,                        \
    }
