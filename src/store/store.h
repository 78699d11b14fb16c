/* SPDX-License-Identifier: MIT */
/*
 * The store: a revisioned key-value store with transactions, leases and prefix
 * watches, behind one table of operations with a backend per file
 * (store-memory.c, store-sqlite.c, etcd/store-etcd.c).  Its semantics follow
 * etcd v3 so that every backend passes one conformance suite:
 *
 *  - One revision counter for the whole store, starting at 1 for an empty
 *    store; every successful write transaction (put, delete or txn that
 *    changed at least one key) increments it by exactly one.
 *  - Each key has create_revision, mod_revision and version (1 on creation,
 *    +1 per put; a deleted key is gone, a re-created one starts at version 1).
 *  - Range by exact key or by prefix, returned in key order.
 *  - Transactions: all compares hold -> the success ops, else the failure ops,
 *    applied atomically at one revision.
 *  - Leases: grant with a TTL in seconds, keepalive, revoke; keys put with a
 *    lease are deleted (one revision, DELETE events) when it expires or is revoked.
 *  - Watches by prefix from a start revision: every change with revision >=
 *    start, in order, with no gap, then live changes.  A start revision older
 *    than the oldest kept history gives -ESTALE (etcd's "compacted").
 *
 * Calls are asynchronous so that a networked backend never blocks the loop:
 * each takes a callback that runs later from the loop, never from inside the
 * call, and never if the call returned an error.  The local backends complete
 * on the next loop iteration.  Keys and values are byte strings (values may
 * contain NUL); keys are at most STORE_KEY_MAX bytes, values STORE_VALUE_MAX.
 *
 * Errors: a call returns -EINVAL for bad arguments (a key that is empty or too
 * long, a value too large, more than STORE_TXN_OPS_MAX compares or ops, a txn
 * branch that writes one key twice or puts a key inside a prefix it deletes,
 * a TTL < 1, a negative lease or start revision), -ECANCELED once store_free()
 * has started, -ENOMEM; then no callback runs.  Once a call returned 0 its
 * callback runs exactly once, with 0 or with what went wrong while executing
 * it: -ENOENT (unknown lease), -EBUSY/-EIO/-ENOSPC/... (the backend could not
 * persist the write, which is then not applied), -ENOMEM.
 */
#pragma once

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <uv.h>

#include "list.h"

#define STORE_KEY_MAX 1024
#define STORE_VALUE_MAX (1024 * 1024)
#define STORE_TXN_OPS_MAX 128

typedef struct store store;

typedef struct store_kv {
    char *key;
    size_t key_len;
    char *value;
    size_t value_len;
    int64_t create_revision;
    int64_t mod_revision;
    int64_t version;
    int64_t lease;
} store_kv;

typedef enum store_compare_target {
    STORE_CMP_VALUE,
    STORE_CMP_VERSION,
    STORE_CMP_CREATE,
    STORE_CMP_MOD,
} store_compare_target;

typedef enum store_compare_result {
    STORE_CMP_EQUAL,
    STORE_CMP_NOT_EQUAL,
    STORE_CMP_LESS,
    STORE_CMP_GREATER,
} store_compare_result;

/* A missing key compares as version 0, create 0, mod 0; any VALUE compare on a
 * missing key is false, whatever the result asked for (as in etcd). */
typedef struct store_compare {
    const char *key;
    size_t key_len;
    store_compare_target target;
    store_compare_result result;
    const char *value; /* STORE_CMP_VALUE */
    size_t value_len;
    int64_t number; /* VERSION, CREATE, MOD */
} store_compare;

typedef enum store_op_type {
    STORE_OP_PUT,
    STORE_OP_DELETE, /* one key */
    STORE_OP_DELETE_PREFIX,
    STORE_OP_GET, /* one key, result in the txn result */
    STORE_OP_GET_PREFIX,
} store_op_type;

typedef struct store_op {
    store_op_type type;
    const char *key;
    size_t key_len;
    const char *value; /* PUT */
    size_t value_len;
    int64_t lease;  /* PUT: 0 = none */
    bool keys_only; /* GET, GET_PREFIX: keys and revisions, every value empty */
} store_op;

typedef struct store_txn {
    const store_compare *compares;
    size_t n_compares;
    const store_op *success;
    size_t n_success;
    const store_op *failure;
    size_t n_failure;
    /* A lease holder's renewal: sent at once beside the calls in order, with
     * a renewal's short timeout, and sent again elsewhere after a timeout, so
     * it must do no harm applied twice (etcd; the local backends ignore it). */
    bool renewal;
} store_txn;

/* Result of a get, range or txn; valid only during the callback. */
typedef struct store_result {
    int64_t revision;    /* store revision after the call */
    bool succeeded;      /* txn: whether the compares held */
    const store_kv *kvs; /* get/range: the keys; txn: concatenated results of its GET ops */
    size_t n_kvs;
    int64_t n_deleted; /* delete ops: keys removed */
} store_result;

/* error is 0 or a negative errno; result is NULL when error < 0. */
typedef void (*store_cb)(store *s, int error, const store_result *result, void *userdata);

typedef enum store_event_type {
    STORE_EVENT_PUT,
    STORE_EVENT_DELETE,
} store_event_type;

typedef struct store_event {
    store_event_type type;
    store_kv kv; /* DELETE: key, mod_revision = the delete's revision, empty value */
} store_event;

/* The common head of every backend's watch, so that store_watch_cancel() can
 * find the backend. */
typedef struct store_watch {
    store *store;
} store_watch;

/*
 * Watch callback: events in revision order (several per call when one txn
 * changed several keys, or when replaying history).  error < 0 ends the watch
 * (-ESTALE: history compacted; -ECANCELED: store closed); no call follows it.
 */
typedef void (*store_watch_cb)(store_watch *w, int error, const store_event *events, size_t n_events, void *userdata);

typedef void (*store_lease_cb)(store *s, int error, int64_t lease, int64_t ttl, void *userdata);

/* Operations of a backend.  Every function returns 0 or a negative errno. */
typedef struct store_ops {
    const char *name;
    void (*free)(store *s);
    int (*get)(store *s, const char *key, size_t key_len, bool prefix, store_cb cb, void *userdata);
    int (*txn)(store *s, const store_txn *txn, store_cb cb, void *userdata);
    int (*lease_grant)(store *s, int64_t ttl, store_lease_cb cb, void *userdata);
    int (*lease_keepalive)(store *s, int64_t lease, store_lease_cb cb, void *userdata);
    int (*lease_revoke)(store *s, int64_t lease, store_lease_cb cb, void *userdata);
    int (*watch)(store *s, const char *prefix, size_t prefix_len, int64_t start_revision, store_watch_cb cb,
                 void *userdata, store_watch **ret);
    void (*watch_cancel)(store_watch *w);
    int64_t (*revision)(store *s);                         /* last known revision, without a round trip */
    bool (*lease_end_trusted)(store *s, int64_t revision); /* NULL: always */
} store_ops;

struct store_follow;

/* The common head of every backend's struct.  The backend sets ops and loop
 * and leaves the rest zero: store.c and store-follow.c keep it. */
struct store {
    const store_ops *ops;
    uv_loop_t *loop;
    LIST_HEAD(struct store_follow) follows; /* store-follow.h: ended by store_free() */
    bool closing;                           /* store_free() has started */
};

/* Backends. */
int store_memory_new(uv_loop_t *loop, store **ret);
/* path: the database file, created if missing (its directory must exist). */
int store_sqlite_new(uv_loop_t *loop, const char *path, store **ret);
/*
 * endpoints: n_endpoints (>= 1) base URLs of the members of one etcd v3
 * cluster's client port, e.g. "http://127.0.0.1:2379" (copied).  Returns 0,
 * -EINVAL or -ENOMEM; it does not wait for etcd: store_revision() is 0 until
 * the first answer, and calls made meanwhile are queued.  Calls run in the
 * order they were made, one at a time, each with a 1 s timeout and retries
 * across the endpoints; a call still in flight when store_free() runs gets
 * -ECANCELED (a write may or may not have been applied).  Errors from etcd
 * map to -ENOENT (unknown lease), -ESTALE (compacted), -ETIMEDOUT,
 * -ECONNREFUSED, -E2BIG, -EACCES, -EIO.  See etcd/ for the details.
 */
int store_etcd_new(uv_loop_t *loop, const char *const *endpoints, size_t n_endpoints, store **ret);

/* How halod reaches a secured etcd.  TLS towards https:// endpoints (PEM
 * files, read by libcurl at each new connection): cacert NULL, the system's
 * trust store; cert and key NULL, no client certificate (etcd's
 * --client-cert-auth wants one).  user and password (both or neither): the
 * etcd user whose token goes with every call (etcd/etcd-auth.c); a token that
 * ends is replaced without the caller noticing; a refused user or password
 * ends the calls with -EACCES, said once in the log. */
typedef struct store_etcd_options {
    const char *cacert;
    const char *cert;
    const char *key;
    const char *user;
    const char *password;
} store_etcd_options;

/* store_etcd_new() with options (opt may be NULL); the strings are copied. */
int store_etcd_new_with(uv_loop_t *loop, const char *const *endpoints, size_t n_endpoints,
                        const store_etcd_options *opt, store **ret);

/*
 * Dispatch helpers: thin wrappers so callers never touch ops directly.  The
 * callback may be NULL for writes and lease calls (fire and forget), not for
 * reads and watches.
 *
 * store_free() accepts NULL.  Before it returns, every pending callback runs:
 * every follower (store-follow.h) gets stopped(-ECANCELED) first; then
 * calls the backend has already executed (the local ones execute each call
 * at once) report their real outcome, calls still in flight get -ECANCELED,
 * and every watch not yet ended gets -ECANCELED.  No callback runs after it
 * returns (except, when it is called from a watch callback, that watch's
 * -ECANCELED, right after its callback returns).  Watch handles are invalid
 * once it returns.  Backends close libuv handles: run the loop once more
 * (uv_run(loop, UV_RUN_DEFAULT) or until uv_loop_close() stops returning
 * UV_EBUSY) to release their memory.
 */
store *store_free(store *s);
int store_get(store *s, const char *key, store_cb cb, void *userdata);
int store_range(store *s, const char *prefix, store_cb cb, void *userdata);
int store_put(store *s, const char *key, const char *value, size_t value_len, int64_t lease, store_cb cb,
              void *userdata);
int store_delete(store *s, const char *key, store_cb cb, void *userdata);
int store_delete_prefix(store *s, const char *prefix, store_cb cb, void *userdata);
int store_transaction(store *s, const store_txn *txn, store_cb cb, void *userdata);
/* Whether cmp holds for kv (NULL: the key is missing), as a transaction
 * judges it: bytes compared for VALUE (false on a missing key, whatever the
 * result asked), 0 for every number of a missing key. */
bool store_compare_holds(const store_compare *cmp, const store_kv *kv);
int store_lease_grant(store *s, int64_t ttl, store_lease_cb cb, void *userdata);
int store_lease_keepalive(store *s, int64_t lease, store_lease_cb cb, void *userdata);
int store_lease_revoke(store *s, int64_t lease, store_lease_cb cb, void *userdata);
/* A watch stays allocated, even after its error callback, until
 * store_watch_cancel() or store_free(); *ret is written before any callback. */
int store_watch_prefix(store *s, const char *prefix, int64_t start_revision, store_watch_cb cb, void *userdata,
                       store_watch **ret);
/* Accepts NULL; may be called from any callback, including the watch's own;
 * no callback of this watch runs after it. */
store_watch *store_watch_cancel(store_watch *w);
int64_t store_revision(store *s);
/*
 * Whether the keys of a lease deleted at revision went because the lease was
 * revoked by its holder or expired as the backend's rules say, so that its
 * holder renewed it at least a TTL before (true for the local backends).
 * etcd before the fix of its issue #15247 also lets a stalled leader revoke
 * leases when it runs again: the etcd backend answers true only for a
 * revision after every member it knows was seen in the current raft term for
 * a while (etcd/etcd-members.c).  Answered from what is known, no round trip.
 */
bool store_lease_end_trusted(store *s, int64_t revision);
const char *store_backend_name(store *s);
