/* SPDX-License-Identifier: MIT */
/* The store tests' fixture: a store of each backend on its own loop (and its own etcd), call helpers, recorders. */
#pragma once

/*
 * The conformance suite (test-store.c, test-store-follow.c) runs every check
 * against every backend: memory and SQLite, and etcd in the test-store-etcd
 * build (STORE_TEST_ETCD), with an etcd server started per fixture.  The
 * helpers make a call, check that its callback did not run inside it, then
 * run the loop until it did; test allocations are freed with the fixture.
 */

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>
#include <uv.h>

#include "store-engine.h"
#include "store.h"
#include "tests.h"

/* The local backends keep this many events of history (store-engine.h). */
#define HISTORY_MAX STORE_ENGINE_HISTORY_MAX
#define WREC_MAX 20000

struct fixture;

struct backend {
    const char *name;
    bool persistent; /* can be closed and reopened with its data */
    int (*open)(struct fixture *f);
    bool etcd; /* a real etcd server, started for the fixture */
};

struct fixture {
    const struct backend *b;
    uv_loop_t loop;
    store *s;
    char dir[64];
    char path[128];
    void **garbage; /* test allocations, freed with the fixture */
    size_t n_garbage, cap_garbage;
    pid_t etcd_pid;    /* etcd: the server, its files in dir */
    int etcd_ports[2]; /* client, peer: kept across a restart */
    char endpoint[64];
};

struct tkv {
    char *key;
    size_t key_len;
    char *value;
    size_t value_len;
    int64_t create_revision, mod_revision, version, lease;
};

struct reply {
    struct fixture *f;
    int calls;
    int error;
    bool had_result;
    int64_t revision;
    bool succeeded;
    int64_t n_deleted;
    struct tkv *kvs;
    size_t n_kvs;
    int64_t lease, ttl;
};

bool kv_is(const struct tkv *kv, const char *key, const char *value);

#define ASSERT_KV(kv_, k_, v_)                                                                          \
    do {                                                                                                \
        const struct tkv *_kv = (kv_);                                                                  \
        const char *_k = (k_), *_v = (v_);                                                              \
        if (!_kv || !kv_is(_kv, _k, _v))                                                                \
            CHECK_FAIL("expected key '%s' = '%s', got '%.*s' = '%.*s'", _k, _v ? _v : "*",              \
                       _kv ? (int)_kv->key_len : 0, _kv ? _kv->key : "", _kv ? (int)_kv->value_len : 0, \
                       _kv ? _kv->value : "");                                                          \
    } while (0)

struct tevent {
    store_event_type type;
    struct tkv kv;
};

struct wrec {
    struct fixture *f;
    store_watch *w;
    int calls;
    int error;
    bool ended;
    struct tevent *events;
    size_t n_events;
    int cancel_self_after;      /* cancel from inside the callback after this many calls */
    store_watch **cancel_other; /* cancel this watch from inside our first callback */
    int64_t last_revision;
};

extern const struct backend *const backend_sqlite;
#ifdef STORE_TEST_ETCD
extern const struct backend *const backend_etcd;
#endif

uint64_t now_msec(void);

/* ---- fixture ---- */

struct fixture *fixture_open(const struct backend *b);
/* Frees the store and runs the loop so that its handles close. */
void fixture_close_store(struct fixture *f);
void fixture_reopen(struct fixture *f);
/* After a test freed f->s itself: checks that the loop runs dry and closes,
 * then opens the store again on a fresh loop. */
void fixture_reopen_freed(struct fixture *f);
void fixture_free(struct fixture *f);
/* Runs check on a fresh fixture of every backend, in turn. */
void for_each_backend(void (*check)(struct fixture *f));
/* Runs check on a fresh fixture of backend b. */
void run_backend(const struct backend *b, void (*check)(struct fixture *f));
/* Memory that lives as long as the fixture. */
void *tmem(struct fixture *f, size_t n);
char *tdup(struct fixture *f, const char *p, size_t n);

/* ---- etcd ---- */

/* A loopback port that was free a moment ago. */
int free_port(void);
/* A blocking POST (or GET without body) to the fixture's etcd; returns the HTTP status or -1. */
long etcd_http(struct fixture *f, const char *path, const char *body);
void etcd_start(struct fixture *f);
void etcd_stop(struct fixture *f);

/* ---- the loop ---- */

/* Runs the loop until nothing is left alive in it. */
void run_dry(struct fixture *f);
/* Runs the loop until *calls is non-zero; fails if the loop runs dry first. */
void run_until(struct fixture *f, const int *calls);
/* Runs the loop for msec milliseconds. */
void run_for(struct fixture *f, uint64_t msec);
/* A few loop iterations: enough for anything queued to be delivered. */
void run_briefly(struct fixture *f);

/* ---- calls ---- */

void copy_kv(struct fixture *f, struct tkv *d, const store_kv *s);
void on_reply(store *s, int error, const store_result *res, void *userdata);
void on_lease_reply(store *s, int error, int64_t lease, int64_t ttl, void *userdata);
struct reply *reply_new(struct fixture *f);
/* The call returned rc; its callback must run later, exactly once. */
struct reply *wait_reply(struct fixture *f, int rc, struct reply *r);
struct reply *put_bin(struct fixture *f, const char *key, const char *value, size_t len, int64_t lease);
struct reply *put_lease(struct fixture *f, const char *key, const char *value, int64_t lease);
struct reply *put(struct fixture *f, const char *key, const char *value);
/* A put that must succeed; returns its revision. */
int64_t put_ok(struct fixture *f, const char *key, const char *value);
struct reply *get(struct fixture *f, const char *key);
struct reply *range(struct fixture *f, const char *prefix);
struct reply *del(struct fixture *f, const char *key);
struct reply *del_prefix(struct fixture *f, const char *prefix);
struct reply *txn(struct fixture *f, const store_txn *t);
struct reply *lease_grant(struct fixture *f, int64_t ttl);
struct reply *lease_keepalive(struct fixture *f, int64_t lease);
struct reply *lease_revoke(struct fixture *f, int64_t lease);
/* The value of key, or NULL if it is missing. */
const struct tkv *get_kv(struct fixture *f, const char *key);
store_op op_put(const char *key, const char *value, int64_t lease);
store_op op_key(store_op_type type, const char *key);
/* Writes n single-key puts as fast as possible; returns the last revision. */
int64_t put_many(struct fixture *f, const char *prefix, int n);

/* Callbacks that only count, in never_calls: for calls that must not call back. */
extern int never_calls;
void on_never(store *s, int error, const store_result *res, void *userdata);
void on_never_lease(store *s, int error, int64_t lease, int64_t ttl, void *userdata);
void on_never_watch(store_watch *w, int error, const store_event *ev, size_t n, void *userdata);

/* ---- watch recorder ---- */

void on_watch(store_watch *w, int error, const store_event *ev, size_t n, void *userdata);
struct wrec *watch(struct fixture *f, const char *prefix, int64_t start);
void run_until_events(struct fixture *f, struct wrec *r, size_t n);
void assert_event(const struct wrec *r, size_t i, store_event_type type, const char *key, int64_t rev);
