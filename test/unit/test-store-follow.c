/* SPDX-License-Identifier: MIT */
/* store_follow() on every backend: the read, then every change, a reload after -ESTALE, freeing, closing. */
#include <errno.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <uv.h>

#include "base64.h"
#include "macro.h"
#include "store-fixture.h"
#include "store-follow.h"
#include "store.h"
#include "tests.h"

/* ---- follower recorder ---- */

struct frec {
    struct fixture *f;
    struct store_follow *h;
    int loads, change_calls, stops;
    int stop_error;
    bool in_callback, freed;
    struct tkv *kvs; /* what the last loaded() read */
    size_t n_kvs;
    int64_t loaded_revision;
    struct tevent *events; /* every change handed over, across loads */
    size_t n_events;
    int64_t last_revision;
    /* What its callbacks do, after recording. */
    void (*on_loaded)(struct frec *r);
    void (*on_changed)(struct frec *r);
    void (*on_stopped)(struct frec *r);
    bool free_in_loaded, free_in_changed, free_in_stopped;
    int follow_rc; /* on_stopped = follow_after_close: what store_follow() returned */
};

static void frec_free(struct frec *r) {
    r->h = store_follow_free(r->h);
    r->freed = true;
}

static void frec_check(struct frec *r, struct store_follow *h) {
    if (r->freed)
        CHECK_FAIL("a follower's callback ran after store_follow_free()");
    if (r->stops)
        CHECK_FAIL("a follower's callback ran after stopped()");
    if (r->in_callback)
        CHECK_FAIL("a follower's callback ran inside another of its callbacks");
    ASSERT(h == r->h);
    uv_stop(&r->f->loop); /* see run_until() */
}

/* Runs a hook with the callback marked as running, then frees if asked. */
static void frec_after(struct frec *r, void (*hook)(struct frec *r), bool free_it) {
    r->in_callback = true;
    if (hook)
        hook(r);
    if (free_it)
        frec_free(r);
    r->in_callback = false;
}

static void on_follow_loaded(struct store_follow *h, const store_result *res, void *userdata) {
    struct frec *r = userdata;
    frec_check(r, h);
    ASSERT(res);
    ASSERT_EQ(store_follow_revision(h), res->revision);
    r->loads++;
    r->loaded_revision = r->last_revision = res->revision;
    r->n_kvs = res->n_kvs;
    r->kvs = tmem(r->f, res->n_kvs * sizeof(struct tkv));
    for (size_t i = 0; i < res->n_kvs; i++)
        copy_kv(r->f, &r->kvs[i], &res->kvs[i]);
    frec_after(r, r->on_loaded, r->free_in_loaded);
}

static void on_follow_changed(struct store_follow *h, const store_event *ev, size_t n, void *userdata) {
    struct frec *r = userdata;
    frec_check(r, h);
    ASSERT(r->loads > 0);
    ASSERT(ev);
    ASSERT(n > 0);
    for (size_t i = 0; i < n; i++) {
        ASSERT(r->n_events < WREC_MAX);
        if (ev[i].kv.mod_revision <= r->loaded_revision || ev[i].kv.mod_revision < r->last_revision)
            CHECK_FAIL("change at revision %lld after revision %lld (read at %lld)", (long long)ev[i].kv.mod_revision,
                       (long long)r->last_revision, (long long)r->loaded_revision);
        r->last_revision = ev[i].kv.mod_revision;
        r->events[r->n_events].type = ev[i].type;
        copy_kv(r->f, &r->events[r->n_events].kv, &ev[i].kv);
        r->n_events++;
    }
    ASSERT_EQ(store_follow_revision(h), r->last_revision);
    r->change_calls++;
    frec_after(r, r->on_changed, r->free_in_changed);
}

static void on_follow_stopped(struct store_follow *h, int error, void *userdata) {
    struct frec *r = userdata;
    frec_check(r, h);
    r->stops++;
    r->stop_error = error;
    frec_after(r, r->on_stopped, r->free_in_stopped);
}

static const struct store_follow_ops frec_ops = {
    .loaded = on_follow_loaded,
    .changed = on_follow_changed,
    .stopped = on_follow_stopped,
};

static struct frec *frec_new(struct fixture *f) {
    struct frec *r = tmem(f, sizeof(*r));
    r->f = f;
    r->events = tmem(f, WREC_MAX * sizeof(struct tevent));
    return r;
}

static struct frec *follow_params(struct fixture *f, const struct store_follow_params *p) {
    struct frec *r = frec_new(f);
    ASSERT_OK(store_follow(f->s, p, &frec_ops, r, &r->h));
    ASSERT(r->h);
    if (r->loads + r->change_calls + r->stops != 0)
        CHECK_FAIL("a follower's callback ran inside store_follow()");
    return r;
}

static struct frec *follow(struct fixture *f, const char *prefix) {
    return follow_params(f, &(struct store_follow_params){.prefix = prefix});
}

static void run_until_loads(struct fixture *f, struct frec *r, int n) {
    while (r->loads < n)
        if (uv_run(&f->loop, UV_RUN_ONCE) == 0 && r->loads < n)
            CHECK_FAIL("the loop ran dry with %d of %d loads", r->loads, n);
}

static void run_until_changes(struct fixture *f, struct frec *r, size_t n) {
    while (r->n_events < n)
        if (uv_run(&f->loop, UV_RUN_ONCE) == 0 && r->n_events < n)
            CHECK_FAIL("the loop ran dry with %zu of %zu changes", r->n_events, n);
    ASSERT_EQ(r->n_events, n);
}

/* Long enough for anything on its way to arrive: over the network for etcd. */
static void settle(struct fixture *f) {
    if (f->b->etcd)
        run_for(f, 300);
    run_briefly(f);
}

static bool change_is(const struct tevent *e, store_event_type type, const char *key, int64_t rev) {
    return e->type == type && kv_is(&e->kv, key, NULL) && e->kv.mod_revision == rev &&
           (type == STORE_EVENT_PUT || e->kv.value_len == 0);
}

static void assert_change(const struct frec *r, size_t i, store_event_type type, const char *key, int64_t rev) {
    ASSERT(i < r->n_events);
    if (!change_is(&r->events[i], type, key, rev))
        CHECK_FAIL("change %zu: expected %s '%s' at %lld, got '%.*s' at %lld", i,
                   type == STORE_EVENT_PUT ? "PUT" : "DELETE", key, (long long)rev, (int)r->events[i].kv.key_len,
                   r->events[i].kv.key, (long long)r->events[i].kv.mod_revision);
}

/* One of the changes [from, to) is this one (a txn's changes share a revision, in no set order on etcd). */
static void assert_change_among(const struct frec *r, size_t from, size_t to, store_event_type type, const char *key,
                                int64_t rev) {
    ASSERT(to <= r->n_events);
    for (size_t i = from; i < to; i++)
        if (change_is(&r->events[i], type, key, rev))
            return;
    CHECK_FAIL("no %s '%s' at %lld among changes %zu to %zu", type == STORE_EVENT_PUT ? "PUT" : "DELETE", key,
               (long long)rev, from, to - 1);
}

/* ==== the read, then every change ==== */

/* A write from inside loaded(): after the read, so it must come as a change. */
static void put_from_loaded(struct frec *r) {
    if (r->loads == 1)
        ASSERT_OK(store_put(r->f->s, "f/z", "z", 1, 0, NULL, NULL));
}

static void check_follow_changes(struct fixture *f) {
    ASSERT_EQ(put_ok(f, "f/a", "1"), 2);
    ASSERT_EQ(put_ok(f, "f/b", "2"), 3);
    ASSERT_EQ(put_ok(f, "g/x", "x"), 4);

    struct frec *r = follow(f, "f/");
    r->on_loaded = put_from_loaded;
    /* Made after store_follow() returned: after the read, whatever the backend. */
    ASSERT_OK(store_put(f->s, "f/c", "3", 1, 0, NULL, NULL));
    run_until_loads(f, r, 1);
    ASSERT_EQ(r->loaded_revision, 4);
    ASSERT_EQ(r->n_kvs, 2);
    ASSERT_KV(&r->kvs[0], "f/a", "1");
    ASSERT_KV(&r->kvs[1], "f/b", "2");
    ASSERT_EQ(r->kvs[1].mod_revision, 3);

    run_until_changes(f, r, 2);
    assert_change(r, 0, STORE_EVENT_PUT, "f/c", 5);
    ASSERT_KV(&r->events[0].kv, "f/c", "3");
    assert_change(r, 1, STORE_EVENT_PUT, "f/z", 6);

    ASSERT_EQ(del(f, "f/a")->revision, 7);
    store_op ops[] = {op_put("f/d", "4", 0), op_put("f/e", "5", 0), op_key(STORE_OP_DELETE, "f/b")};
    ASSERT_EQ(txn(f, &(store_txn){.success = ops, .n_success = ELEMENTSOF(ops)})->revision, 8);
    ASSERT_EQ(put_ok(f, "g/y", "y"), 9); /* not under the prefix */
    ASSERT_EQ(del_prefix(f, "f/")->revision, 10);
    run_until_changes(f, r, 10);
    assert_change(r, 2, STORE_EVENT_DELETE, "f/a", 7);
    assert_change_among(r, 3, 6, STORE_EVENT_PUT, "f/d", 8);
    assert_change_among(r, 3, 6, STORE_EVENT_PUT, "f/e", 8);
    assert_change_among(r, 3, 6, STORE_EVENT_DELETE, "f/b", 8);
    static const char *const deleted[] = {"f/c", "f/d", "f/e", "f/z"};
    for (size_t i = 0; i < ELEMENTSOF(deleted); i++)
        assert_change_among(r, 6, 10, STORE_EVENT_DELETE, deleted[i], 10);

    settle(f);
    ASSERT_EQ(r->n_events, 10);
    ASSERT_EQ(r->loads, 1);
    ASSERT_EQ(r->stops, 0);
    ASSERT_EQ(store_follow_revision(r->h), 10);
    frec_free(r);
}
TEST(follow_read_then_every_change) {
    for_each_backend(check_follow_changes);
}

static void check_follow_read_ops(struct fixture *f) {
    put_ok(f, "f/a", "1");
    put_ok(f, "g/x", "x");

    /* Keys only: values are empty in the read, not in the changes. */
    struct frec *k = follow_params(f, &(struct store_follow_params){.prefix = "f/", .keys_only = true});
    /* The caller's read: a key beside the prefix, at the same revision. */
    store_op read[] = {op_key(STORE_OP_GET, "g/x"), op_key(STORE_OP_GET_PREFIX, "f/")};
    struct frec *o = follow_params(f, &(struct store_follow_params){.prefix = "f/", .read_ops = read, .n_read_ops = 2});
    /* Copied: the caller's ops may go away. */
    read[0] = op_key(STORE_OP_GET, "nothing");
    run_until_loads(f, k, 1);
    run_until_loads(f, o, 1);
    ASSERT_EQ(k->n_kvs, 1);
    ASSERT_KV(&k->kvs[0], "f/a", "");
    ASSERT_EQ(k->kvs[0].mod_revision, 2);
    ASSERT_EQ(o->n_kvs, 2);
    ASSERT_KV(&o->kvs[0], "g/x", "x");
    ASSERT_KV(&o->kvs[1], "f/a", "1");

    put_ok(f, "g/x", "y"); /* read, not watched */
    int64_t rev = put_ok(f, "f/b", "2");
    run_until_changes(f, k, 1);
    run_until_changes(f, o, 1);
    assert_change(k, 0, STORE_EVENT_PUT, "f/b", rev);
    ASSERT_KV(&k->events[0].kv, "f/b", "2");
    assert_change(o, 0, STORE_EVENT_PUT, "f/b", rev);
    settle(f);
    ASSERT_EQ(o->n_events, 1);
    frec_free(k);
    frec_free(o);
}
TEST(follow_keys_only_and_read_ops) {
    for_each_backend(check_follow_read_ops);
}

/* ==== -ESTALE: read again ==== */

/* A blocking put through etcd's gateway, beside the store under test. */
static void etcd_put_now(struct fixture *f, const char *key, const char *value) {
    char k64[BASE64_ENCODED_SIZE(64)], v64[BASE64_ENCODED_SIZE(64)], body[256];
    ASSERT(strlen(key) <= 64 && strlen(value) <= 64);
    k64[base64_encode(key, strlen(key), k64)] = 0;
    v64[base64_encode(value, strlen(value), v64)] = 0;
    snprintf(body, sizeof(body), "{\"key\":\"%s\",\"value\":\"%s\"}", k64, v64);
    ASSERT_EQ(etcd_http(f, "/v3/kv/put", body), 200);
}

/*
 * From inside the first loaded(), before the follower starts its watch: a
 * key under the prefix, then enough writes for the store to drop the
 * revision after the read from its history.  The local backends keep
 * HISTORY_MAX events; etcd is compacted by hand.
 */
static void lose_history(struct frec *r) {
    struct fixture *f = r->f;
    if (r->loads != 1)
        return;
    if (f->b->etcd) {
        etcd_put_now(f, "f/new", "n");
        etcd_put_now(f, "h/0", "x");
        char body[64];
        snprintf(body, sizeof(body), "{\"revision\":\"%lld\"}", (long long)(r->loaded_revision + 2));
        ASSERT_EQ(etcd_http(f, "/v3/kv/compaction", body), 200);
        return;
    }
    ASSERT_OK(store_put(f->s, "f/new", "n", 1, 0, NULL, NULL));
    for (int i = 0; i < HISTORY_MAX; i++) {
        char key[32];
        snprintf(key, sizeof(key), "h/%d", i);
        ASSERT_OK(store_put(f->s, key, "x", 1, 0, NULL, NULL));
    }
}

static void check_follow_stale(struct fixture *f) {
    put_ok(f, "f/a", "1");
    struct frec *r = follow(f, "f/");
    r->on_loaded = lose_history;

    /* The watch from the revision after the read gets -ESTALE: read again. */
    run_until_loads(f, r, 2);
    ASSERT_EQ(r->n_events, 0);
    ASSERT_EQ(r->n_kvs, 2);
    ASSERT_KV(&r->kvs[0], "f/a", "1");
    ASSERT_KV(&r->kvs[1], "f/new", "n");
    ASSERT_EQ(r->loaded_revision, store_revision(f->s));
    ASSERT_EQ(store_follow_revision(r->h), r->loaded_revision);

    /* And it follows on from there. */
    int64_t rev = put_ok(f, "f/after", "x");
    ASSERT_EQ(rev, r->loaded_revision + 1);
    run_until_changes(f, r, 1);
    assert_change(r, 0, STORE_EVENT_PUT, "f/after", rev);
    settle(f);
    ASSERT_EQ(r->loads, 2);
    ASSERT_EQ(r->n_events, 1);
    ASSERT_EQ(r->stops, 0);
    frec_free(r);
}
TEST(follow_reads_again_after_stale) {
    for_each_backend(check_follow_stale);
}

/* ==== freeing ==== */

static void check_follow_free(struct fixture *f) {
    /* Freed with its read in flight. */
    struct frec *a = follow(f, "f/");
    frec_free(a);
    /* Freed from loaded(): no change follows. */
    struct frec *b = follow(f, "f/");
    b->free_in_loaded = true;
    /* Freed from changed(), with more changes on their way. */
    struct frec *c = follow(f, "f/");
    c->free_in_changed = true;
    /* Freed with a change pending. */
    struct frec *d = follow(f, "f/");
    run_until_loads(f, b, 1);
    run_until_loads(f, c, 1);
    run_until_loads(f, d, 1);
    ASSERT(!b->h);

    ASSERT_OK(store_put(f->s, "f/1", "1", 1, 0, NULL, NULL));
    ASSERT_OK(store_put(f->s, "f/2", "2", 1, 0, NULL, NULL));
    frec_free(d);
    run_until(f, &c->change_calls);
    ASSERT(!c->h);
    put_ok(f, "f/3", "3");
    settle(f);

    /* frec_check() fails any callback after a free; these are the ones before. */
    ASSERT_EQ(a->loads + a->change_calls + a->stops, 0);
    ASSERT_EQ(b->loads, 1);
    ASSERT_EQ(b->change_calls + b->stops, 0);
    ASSERT_EQ(c->change_calls, 1);
    ASSERT_EQ(c->stops, 0);
    ASSERT_EQ(d->change_calls + d->stops, 0);
    ASSERT(store_follow_free(NULL) == NULL);

    /* stopped() may be NULL. */
    struct store_follow *h;
    struct store_follow_ops quiet = {.loaded = on_follow_loaded, .changed = on_follow_changed};
    struct frec *e = frec_new(f);
    ASSERT_OK(store_follow(f->s, &(struct store_follow_params){.prefix = "f/"}, &quiet, e, &h));
    e->h = h;
    run_until_loads(f, e, 1);
    frec_free(e);
}
TEST(follow_free_from_callbacks) {
    for_each_backend(check_follow_free);
}

/* ==== store_free() ==== */

struct close_probe {
    struct frec *a, *b, *c;
};

static struct close_probe *closing;
static store *closing_store; /* valid until store_free() returns */

/* A follower made after store_free() started: -ECANCELED, and no callback. */
static void follow_after_close(struct frec *r) {
    struct store_follow *h = NULL;
    r->follow_rc = store_follow(closing_store, &(struct store_follow_params){.prefix = "f/"}, &frec_ops, r, &h);
    ASSERT(!h);
}

static void free_store(struct fixture *f) {
    closing_store = f->s;
    f->s = store_free(f->s);
    closing_store = NULL;
}

/* From b's changed(): a follower whose read is in flight, then store_free(). */
static void free_store_from_changed(struct frec *r) {
    closing->c = follow(r->f, "f/");
    closing->c->on_stopped = follow_after_close;
    free_store(r->f);
}

static void check_follow_close(struct fixture *f, bool from_callback) {
    struct close_probe p = {0};
    closing = &p;
    p.a = follow(f, "f/");
    p.a->free_in_stopped = true;
    p.b = follow(f, "f/");
    run_until_loads(f, p.a, 1);
    run_until_loads(f, p.b, 1);

    if (from_callback) {
        p.b->on_changed = free_store_from_changed;
        ASSERT_OK(store_put(f->s, "f/x", "x", 1, 0, NULL, NULL));
        run_until(f, &p.b->stops);
    } else {
        p.c = follow(f, "f/");
        p.c->on_stopped = follow_after_close;
        free_store(f);
    }
    ASSERT(!f->s);

    /* Before store_free() returned (b: right after its changed() returned). */
    ASSERT_EQ(p.a->stops, 1);
    ASSERT_EQ(p.a->stop_error, -ECANCELED);
    ASSERT(!p.a->h);
    ASSERT_EQ(p.b->stops, 1);
    ASSERT_EQ(p.b->stop_error, -ECANCELED);
    ASSERT_EQ(p.c->stops, 1);
    ASSERT_EQ(p.c->stop_error, -ECANCELED);
    ASSERT_EQ(p.c->loads, 0); /* its read was forgotten */
    ASSERT_EQ(p.c->follow_rc, -ECANCELED);
    if (from_callback)
        ASSERT_EQ(p.b->change_calls, 1);

    /* Stopped followers are inert, and are freed after the store is gone. */
    run_dry(f);
    ASSERT_EQ(p.b->stops + p.c->stops, 2);
    frec_free(p.b);
    frec_free(p.c);
    fixture_reopen_freed(f);
    closing = NULL;
}

static void check_follow_close_direct(struct fixture *f) {
    check_follow_close(f, false);
}

static void check_follow_close_from_callback(struct fixture *f) {
    check_follow_close(f, true);
}

TEST(follow_stopped_by_store_free) {
    for_each_backend(check_follow_close_direct);
}

TEST(follow_stopped_by_store_free_from_a_callback) {
    for_each_backend(check_follow_close_from_callback);
}

/* ==== arguments ==== */

static void check_follow_invalid(struct fixture *f) {
    char toolong[STORE_KEY_MAX + 2];
    memset(toolong, 'x', sizeof(toolong) - 1);
    toolong[sizeof(toolong) - 1] = 0;
    struct store_follow *h = NULL;
    struct frec *r = frec_new(f);
    const struct store_follow_params ok = {.prefix = "f/"};
    const struct store_follow_ops no_loaded = {.changed = on_follow_changed};
    const struct store_follow_ops no_changed = {.loaded = on_follow_loaded};
    store_op put_op = op_put("f/a", "1", 0), empty_get = op_key(STORE_OP_GET, "");
    store_op many[STORE_TXN_OPS_MAX + 1];
    for (size_t i = 0; i < ELEMENTSOF(many); i++)
        many[i] = op_key(STORE_OP_GET_PREFIX, "f/");

    ASSERT_EQ(store_follow(NULL, &ok, &frec_ops, r, &h), -EINVAL);
    ASSERT_EQ(store_follow(f->s, NULL, &frec_ops, r, &h), -EINVAL);
    ASSERT_EQ(store_follow(f->s, &ok, NULL, r, &h), -EINVAL);
    ASSERT_EQ(store_follow(f->s, &ok, &frec_ops, r, NULL), -EINVAL);
    ASSERT_EQ(store_follow(f->s, &ok, &no_loaded, r, &h), -EINVAL);
    ASSERT_EQ(store_follow(f->s, &ok, &no_changed, r, &h), -EINVAL);
    ASSERT_EQ(store_follow(f->s, &(struct store_follow_params){0}, &frec_ops, r, &h), -EINVAL);
    ASSERT_EQ(store_follow(f->s, &(struct store_follow_params){.prefix = toolong}, &frec_ops, r, &h), -EINVAL);
    ASSERT_EQ(store_follow(f->s, &(struct store_follow_params){.prefix = "f/", .read_ops = &put_op, .n_read_ops = 1},
                           &frec_ops, r, &h),
              -EINVAL);
    ASSERT_EQ(store_follow(f->s, &(struct store_follow_params){.prefix = "f/", .n_read_ops = 1}, &frec_ops, r, &h),
              -EINVAL);
    ASSERT_EQ(store_follow(f->s, &(struct store_follow_params){.prefix = "f/", .read_ops = &empty_get, .n_read_ops = 1},
                           &frec_ops, r, &h),
              -EINVAL);
    ASSERT_EQ(store_follow(
                  f->s, &(struct store_follow_params){.prefix = "f/", .read_ops = many, .n_read_ops = ELEMENTSOF(many)},
                  &frec_ops, r, &h),
              -EINVAL);
    ASSERT_EQ(store_follow(f->s,
                           &(struct store_follow_params){.prefix = "f/", .retry_min_msec = 500, .retry_max_msec = 100},
                           &frec_ops, r, &h),
              -EINVAL);
    /* Only a minimum, above the default maximum. */
    ASSERT_EQ(
        store_follow(f->s, &(struct store_follow_params){.prefix = "f/", .retry_min_msec = 5000}, &frec_ops, r, &h),
        -EINVAL);
    ASSERT(!h);
    settle(f);
    ASSERT_EQ(r->loads + r->change_calls + r->stops, 0);

    /* "" is every key. */
    put_ok(f, "k", "v");
    struct frec *all = follow(f, "");
    run_until_loads(f, all, 1);
    ASSERT_EQ(all->n_kvs, 1);
    frec_free(all);
}
TEST(follow_invalid_arguments) {
    for_each_backend(check_follow_invalid);
}

/* ==== etcd: failed reads are retried, never reported ==== */

#ifdef STORE_TEST_ETCD
static void check_follow_etcd_down(struct fixture *f) {
    const struct store_follow_params p = {.prefix = "f/", .retry_min_msec = 50, .retry_max_msec = 200};
    put_ok(f, "f/a", "1");

    etcd_stop(f);
    struct frec *r = follow_params(f, &p);
    run_for(f, 1000);
    ASSERT_EQ(r->loads + r->change_calls + r->stops, 0);
    etcd_start(f);
    /* Within about the longest retry delay of etcd being back. */
    uint64_t t0 = now_msec();
    run_until_loads(f, r, 1);
    if (now_msec() - t0 > 1500)
        CHECK_FAIL("loaded %llu ms after etcd came back", (unsigned long long)(now_msec() - t0));
    ASSERT_EQ(r->n_kvs, 1);
    ASSERT_KV(&r->kvs[0], "f/a", "1");
    int64_t rev = put_ok(f, "f/b", "2");
    run_until_changes(f, r, 1);
    assert_change(r, 0, STORE_EVENT_PUT, "f/b", rev);

    /* Closed while it waits to read again: stopped(-ECANCELED) all the same. */
    etcd_stop(f);
    struct frec *w = follow_params(f, &p);
    run_for(f, 500);
    ASSERT_EQ(w->loads, 0);
    fixture_close_store(f);
    ASSERT_EQ(w->stops, 1);
    ASSERT_EQ(w->stop_error, -ECANCELED);
    ASSERT_EQ(r->stops, 1);
    frec_free(r);
    frec_free(w);
}
TEST(follow_etcd_retries_while_down) {
    run_backend(backend_etcd, check_follow_etcd_down);
}
#endif
