/* SPDX-License-Identifier: MIT */
/* Tests for the EQ and BQ (queue.c) on the memory store, through a wrapping store that counts and fails calls. */
#include <errno.h>
#include <inttypes.h>
#include <jansson.h>
#include <stdbool.h>
#include <stdint.h>
#include <unistd.h>
#include <uv.h>

#include "config.h"
#include "description.h"
#include "failvec.h"
#include "hlc.h"
#include "macro.h"
#include "queue.h"
#include "recovery-model.h"
#include "store-engine.h"
#include "store.h"
#include "tests.h"

#ifdef __SANITIZE_ADDRESS__
#include <sanitizer/lsan_interface.h>
#endif

#define PREFIX "/halo/t/"

/* ---- a store that forwards to the memory store, counts transactions and can fail them ---- */

struct wrap {
    struct store head; /* must be first */
    store *inner;
    unsigned txns;         /* transactions that reached the inner store */
    unsigned guarded_txns; /* of those, with a compare on bq-seq: the consumer's batches */
    unsigned append_txns;  /* with puts under eq/ */
    /* The next transactions matching fail_prefix (a put's key) fail with fail_error in their callback. */
    const char *fail_prefix;
    int fail_error;
    unsigned fail_count;
};

struct wrap_call {
    struct wrap *w;
    store_cb cb;
    void *userdata;
    int error;
};

static struct wrap *wrap_of(store *s) {
    return (struct wrap *)s;
}

static void wrap_free(store *s) {
    struct wrap *w = wrap_of(s);
    store_free(w->inner);
    free(w);
}

static int wrap_get(store *s, const char *key, size_t key_len, bool prefix, store_cb cb, void *userdata) {
    return wrap_of(s)->inner->ops->get(wrap_of(s)->inner, key, key_len, prefix, cb, userdata);
}

/* A failed call's callback: the store's real completion of a harmless read, with the error instead. */
static void on_wrap_failed(store *s, int error, const store_result *r, void *userdata) {
    struct wrap_call *c = userdata;
    if (c->cb)
        c->cb(&c->w->head, error == -ECANCELED ? error : c->error, NULL, c->userdata);
    free(c);
}

static bool txn_puts_under(const store_txn *txn, const char *prefix) {
    for (size_t i = 0; i < txn->n_success; i++)
        if (txn->success[i].type == STORE_OP_PUT && txn->success[i].key_len >= strlen(prefix) &&
            memcmp(txn->success[i].key, prefix, strlen(prefix)) == 0)
            return true;
    return false;
}

static int wrap_txn(store *s, const store_txn *txn, store_cb cb, void *userdata) {
    struct wrap *w = wrap_of(s);
    if (w->fail_count > 0 && w->fail_prefix && txn_puts_under(txn, w->fail_prefix)) {
        struct wrap_call *c = calloc(1, sizeof(*c));
        ASSERT(c);
        *c = (struct wrap_call){.w = w, .cb = cb, .userdata = userdata, .error = w->fail_error};
        int r = w->inner->ops->get(w->inner, "x", 1, false, on_wrap_failed, c);
        if (r < 0) {
            free(c);
            return r;
        }
        w->fail_count--;
        return 0;
    }
    int r = w->inner->ops->txn(w->inner, txn, cb, userdata);
    if (r == 0) {
        w->txns++;
        for (size_t i = 0; i < txn->n_compares; i++)
            if (txn->compares[i].key_len == strlen(PREFIX "bq-seq") &&
                memcmp(txn->compares[i].key, PREFIX "bq-seq", txn->compares[i].key_len) == 0)
                w->guarded_txns++;
        w->append_txns += txn_puts_under(txn, PREFIX "eq/");
    }
    return r;
}

static int wrap_lease_grant(store *s, int64_t ttl, store_lease_cb cb, void *userdata) {
    return wrap_of(s)->inner->ops->lease_grant(wrap_of(s)->inner, ttl, cb, userdata);
}

static int wrap_lease_keepalive(store *s, int64_t lease, store_lease_cb cb, void *userdata) {
    return wrap_of(s)->inner->ops->lease_keepalive(wrap_of(s)->inner, lease, cb, userdata);
}

static int wrap_lease_revoke(store *s, int64_t lease, store_lease_cb cb, void *userdata) {
    return wrap_of(s)->inner->ops->lease_revoke(wrap_of(s)->inner, lease, cb, userdata);
}

/* The watch handle is the inner store's: store_watch_cancel() goes straight to it. */
static int wrap_watch(store *s, const char *prefix, size_t prefix_len, int64_t start, store_watch_cb cb, void *userdata,
                      store_watch **ret) {
    return wrap_of(s)->inner->ops->watch(wrap_of(s)->inner, prefix, prefix_len, start, cb, userdata, ret);
}

static void wrap_watch_cancel(store_watch *w) {
    w->store->ops->watch_cancel(w);
}

static int64_t wrap_revision(store *s) {
    return store_revision(wrap_of(s)->inner);
}

static const store_ops wrap_ops = {
    .name = "wrap",
    .free = wrap_free,
    .get = wrap_get,
    .txn = wrap_txn,
    .lease_grant = wrap_lease_grant,
    .lease_keepalive = wrap_lease_keepalive,
    .lease_revoke = wrap_lease_revoke,
    .watch = wrap_watch,
    .watch_cancel = wrap_watch_cancel,
    .revision = wrap_revision,
};

/* ---- the world: a loop, a store and the test's nodes ---- */

struct world {
    uv_loop_t loop;
    store *s;
    struct wrap *w;
};

static struct world *world_new(void) {
    struct world *w = calloc(1, sizeof(*w));
    ASSERT(w);
    ASSERT_OK(uv_loop_init(&w->loop));
    w->w = calloc(1, sizeof(*w->w));
    ASSERT(w->w);
    w->w->head = (struct store){.ops = &wrap_ops, .loop = &w->loop};
    ASSERT_OK(store_memory_new(&w->loop, &w->w->inner));
    w->s = &w->w->head;
    return w;
}

static void run_dry(struct world *w) {
    for (int i = 0; i < 100; i++)
        if (uv_run(&w->loop, UV_RUN_DEFAULT) == 0)
            return;
    CHECK_FAIL("the loop still has live handles");
}

static void leak_check(void) {
#ifdef __SANITIZE_ADDRESS__
    if (__lsan_do_recoverable_leak_check() != 0)
        CHECK_FAIL("memory leaked");
#endif
}

/* Frees the store (if not yet) and checks that nothing is left in the loop or on the heap. */
static void world_free(struct world *w) {
    w->s = store_free(w->s);
    run_dry(w);
    ASSERT_EQ(uv_loop_close(&w->loop), 0);
    free(w);
    leak_check();
}

/* Runs the loop until *flag; fails if the loop runs dry first. */
static void run_until(struct world *w, const bool *flag) {
    while (!*flag)
        if (uv_run(&w->loop, UV_RUN_ONCE) == 0 && !*flag)
            CHECK_FAIL("the loop ran dry");
}

static void on_run_for(uv_timer_t *t) {
    *(bool *)t->data = true;
}

static void run_for(struct world *w, uint64_t msec) {
    uv_timer_t t;
    bool done = false;
    ASSERT_OK(uv_timer_init(&w->loop, &t));
    t.data = &done;
    ASSERT_OK(uv_timer_start(&t, on_run_for, msec, 0));
    while (!done)
        (void)uv_run(&w->loop, UV_RUN_ONCE);
    uv_close((uv_handle_t *)&t, NULL);
    (void)uv_run(&w->loop, UV_RUN_NOWAIT);
}

/* A node: one queue, and what its reader delivered. */
struct node {
    struct world *w;
    struct queue *q;
    char name[32];
    uint64_t *seqs;
    char (*objects)[QUEUE_OBJECT_MAX];
    int *states;
    size_t n, cap;
    bool stopped;
    int stopped_error;
    bool free_in_deliver; /* frees the queue from inside the deliver callback */
};

static void node_open(struct node *n, struct world *w, const char *name, struct hlc *clock) {
    *n = (struct node){.w = w};
    snprintf(n->name, sizeof(n->name), "%s", name);
    struct queue_params p = {.loop = &w->loop, .store = w->s, .prefix = PREFIX, .node = name, .clock = clock};
    ASSERT_OK(queue_new(&p, &n->q));
}

static void node_forget(struct node *n) {
    free(n->seqs);
    free(n->objects);
    free(n->states);
    n->seqs = NULL;
    n->objects = NULL;
    n->states = NULL;
    n->n = n->cap = 0;
}

static void node_close(struct node *n) {
    n->q = queue_free(n->q);
    node_forget(n);
}

static void on_deliver(struct queue *q, uint64_t seq, const struct queue_event *ev, void *userdata) {
    struct node *n = userdata;
    ASSERT(q == n->q);
    if (n->n == n->cap) {
        n->cap = n->cap ? n->cap * 2 : 64;
        n->seqs = realloc(n->seqs, n->cap * sizeof(*n->seqs));
        n->objects = realloc(n->objects, n->cap * sizeof(*n->objects));
        n->states = realloc(n->states, n->cap * sizeof(*n->states));
        ASSERT(n->seqs && n->objects && n->states);
    }
    n->seqs[n->n] = seq;
    ASSERT_OK(queue_event_object(ev, n->objects[n->n]));
    n->states[n->n] = (int)ev->state;
    n->n++;
    /* The snapshot is up to date when the entry is delivered. */
    ASSERT_EQ(queue_state_get(q, n->objects[n->n - 1]) >= 0, 1);
    if (n->free_in_deliver)
        n->q = queue_free(n->q);
}

static void on_stopped(struct queue *q, int error, void *userdata) {
    struct node *n = userdata;
    n->stopped = true;
    n->stopped_error = error;
}

static void node_read(struct node *n) {
    ASSERT_OK(bq_reader_start(n->q, on_deliver, on_stopped, n));
}

/* A node that consumes the EQ (no rules) and reads the BQ. */
static void node_open_coordinator(struct node *n, struct world *w, const char *name) {
    node_open(n, w, name, NULL);
    ASSERT_OK(eq_consumer_start(n->q, NULL, NULL, on_stopped, n));
    node_read(n);
}

/* Runs the loop until the node delivered seq `upto`. */
struct delivered_wait {
    struct node *n;
    uint64_t upto;
};

static void run_until_delivered(struct node *n, uint64_t upto) {
    while (bq_reader_delivered(n->q) < upto)
        if (uv_run(&n->w->loop, UV_RUN_ONCE) == 0 && bq_reader_delivered(n->q) < upto)
            CHECK_FAIL("node '%s' delivered up to %" PRIu64 ", not %" PRIu64, n->name, bq_reader_delivered(n->q), upto);
}

static uint64_t state_seq_of(const struct node *n) {
    struct queue_stats st;
    queue_get_stats(n->q, &st);
    return st.state_seq;
}

/* Until the consumer on n has written every state up to seq to state/. */
static void run_until_checkpointed(struct node *n, uint64_t upto) {
    while (state_seq_of(n) < upto)
        if (uv_run(&n->w->loop, UV_RUN_ONCE) == 0 && state_seq_of(n) < upto)
            CHECK_FAIL("node '%s' checkpointed up to %" PRIu64 ", not %" PRIu64, n->name, state_seq_of(n), upto);
}

struct append_result {
    bool done;
    int error;
    size_t n;
};

static void on_appended(struct queue *q, int error, size_t n, void *userdata) {
    struct append_result *r = userdata;
    r->done = true;
    r->error = error;
    r->n = n;
}

static void append_wait(struct node *n, const struct queue_event *evs, size_t count) {
    struct append_result r = {0};
    ASSERT_OK(eq_append(n->q, evs, count, on_appended, &r));
    ASSERT(!r.done); /* never from inside the call */
    run_until(n->w, &r.done);
    ASSERT_OK(r.error);
    ASSERT_EQ(r.n, count);
}

static struct queue_event event(const char *object, enum queue_ha_state state) {
    struct queue_event ev;
    ASSERT_OK(queue_event_init(&ev, object, state));
    return ev;
}

static void append_one(struct node *n, const char *object, enum queue_ha_state state) {
    struct queue_event ev = event(object, state);
    append_wait(n, &ev, 1);
}

/* ---- direct store access ---- */

struct read_result {
    bool done;
    int error;
    size_t n_kvs;
    char **keys, **values;
    int64_t revision;
    bool succeeded;
};

static void on_read(store *s, int error, const store_result *r, void *userdata) {
    struct read_result *x = userdata;
    x->done = true;
    x->error = error;
    if (error < 0)
        return;
    x->revision = r->revision;
    x->succeeded = r->succeeded;
    x->n_kvs = r->n_kvs;
    x->keys = calloc(r->n_kvs + 1, sizeof(char *));
    x->values = calloc(r->n_kvs + 1, sizeof(char *));
    ASSERT(x->keys && x->values);
    for (size_t i = 0; i < r->n_kvs; i++) {
        x->keys[i] = strndup(r->kvs[i].key, r->kvs[i].key_len);
        x->values[i] = strndup(r->kvs[i].value, r->kvs[i].value_len);
        ASSERT(x->keys[i] && x->values[i]);
    }
}

static void read_done(struct read_result *x) {
    for (size_t i = 0; i < x->n_kvs; i++) {
        free(x->keys[i]);
        free(x->values[i]);
    }
    free(x->keys);
    free(x->values);
    *x = (struct read_result){0};
}

static void range(struct world *w, const char *prefix, struct read_result *x) {
    *x = (struct read_result){0};
    ASSERT_OK(store_range(w->s, prefix, on_read, x));
    run_until(w, &x->done);
    ASSERT_OK(x->error);
}

static size_t count_keys(struct world *w, const char *prefix) {
    struct read_result x;
    range(w, prefix, &x);
    size_t n = x.n_kvs;
    read_done(&x);
    return n;
}

/* The value of key, or NULL (caller frees). */
static char *get_value(struct world *w, const char *key) {
    struct read_result x = {0};
    ASSERT_OK(store_get(w->s, key, on_read, &x));
    run_until(w, &x.done);
    ASSERT_OK(x.error);
    char *v = x.n_kvs ? strdup(x.values[0]) : NULL;
    read_done(&x);
    return v;
}

static int64_t put(struct world *w, const char *key, const char *value) {
    struct read_result x = {0};
    ASSERT_OK(store_put(w->s, key, value, strlen(value), 0, on_read, &x));
    run_until(w, &x.done);
    ASSERT_OK(x.error);
    int64_t rev = x.revision;
    read_done(&x);
    return rev;
}

/* Until the store holds want as node's offset (written at most every 200 ms). */
static void run_until_offset(struct world *w, const char *node, const char *want) {
    char key[128];
    snprintf(key, sizeof(key), PREFIX "bq-delivered/%s", node);
    for (int i = 0; i < 200; i++) {
        char *v = get_value(w, key);
        bool ok = v && streq(v, want);
        free(v);
        if (ok)
            return;
        run_for(w, 10);
    }
    CHECK_FAIL("the offset of node '%s' never became %s", node, want);
}

/* Reads the BQ from the store, checks its layout (each entry bq/<last seq>
 * an array of events whose seqs ascend without a gap from the previous
 * entry) and returns how many events it holds; *ret_first: the first seq. */
static size_t bq_events(struct world *w, uint64_t *ret_first) {
    struct read_result x;
    range(w, PREFIX "bq/", &x);
    size_t n = 0;
    uint64_t last = 0;
    for (size_t i = 0; i < x.n_kvs; i++) {
        uint64_t key_seq = strtoull(x.keys[i] + strlen(PREFIX "bq/"), NULL, 10);
        json_t *j = json_loads(x.values[i], 0, NULL);
        ASSERT(json_is_array(j) && json_array_size(j) > 0);
        for (size_t k = 0; k < json_array_size(j); k++) {
            json_t *e = json_array_get(j, k);
            struct queue_event ev;
            ASSERT_OK(queue_event_from_json(e, &ev));
            uint64_t seq = (uint64_t)json_integer_value(json_object_get(e, "seq"));
            if (n == 0 && ret_first)
                *ret_first = seq;
            ASSERT(last == 0 || seq == last + 1);
            last = seq;
            n++;
        }
        ASSERT_EQ(last, key_seq);
        json_decref(j);
    }
    read_done(&x);
    return n;
}

/* Checks that a and b delivered the same entries, seq 1.. without gaps. */
static void assert_same_delivery(const struct node *a, const struct node *b) {
    ASSERT_EQ(a->n, b->n);
    for (size_t i = 0; i < a->n; i++) {
        ASSERT_EQ(a->seqs[i], i + 1);
        ASSERT_EQ(b->seqs[i], a->seqs[i]);
        ASSERT_STREQ(a->objects[i], b->objects[i]);
        ASSERT_EQ(a->states[i], b->states[i]);
    }
}

/* ---- events and JSON ---- */

TEST(queue_event_json_round_trip) {
    struct queue_event ev = event("process:0x7200000000000001:0x15", QUEUE_HA_TRANSIENT), back;
    snprintf(ev.node, sizeof(ev.node), "node-1");
    snprintf(ev.reason, sizeof(ev.reason), "exit status 1 — restarted");
    ev.hlc = UINT64_MAX;
    ev.epoch = 7;
    json_t *j;
    ASSERT_OK(queue_event_to_json(&ev, &j));
    char *text = json_dumps(j, JSON_COMPACT | JSON_SORT_KEYS);
    ASSERT(text);
    ASSERT_STREQ(text, "{\"epoch\":7,\"hlc\":\"18446744073709551615\",\"node\":\"node-1\",\"object\":\"process:"
                       "0x7200000000000001:0x15\",\"reason\":\"exit status 1 — restarted\",\"state\":\"TRANSIENT\"}");
    ASSERT_OK(queue_event_parse(text, strlen(text), &back));
    ASSERT_EQ(memcmp(&ev, &back, sizeof(ev)), 0);
    ASSERT_OK(queue_event_from_json(j, &back));
    ASSERT_EQ(memcmp(&ev, &back, sizeof(ev)), 0);
    free(text);
    json_decref(j);

    /* Every kind and state by name; optional fields left out; unknown fields ignored. */
    for (int k = 0; k < _QUEUE_KIND_MAX; k++)
        for (int s = 0; s < _QUEUE_HA_MAX; s++) {
            char in[256];
            snprintf(in, sizeof(in), "{\"object\":\"%s:x\",\"state\":\"%s\",\"node\":\"n\",\"future\":[1,{}]}",
                     queue_kind_to_string(k), queue_ha_state_to_string(s));
            ASSERT_OK(queue_event_parse(in, strlen(in), &back));
            ASSERT_EQ(back.kind, k);
            ASSERT_EQ(back.state, s);
            ASSERT_EQ(back.hlc, 0);
            ASSERT_EQ(back.epoch, QUEUE_EPOCH_NONE);
            ASSERT_STREQ(back.reason, "");
            ASSERT_EQ(queue_kind_from_string(queue_kind_to_string(k)), k);
            ASSERT_EQ(queue_ha_state_from_string(queue_ha_state_to_string(s)), s);
        }
    ASSERT_EQ(queue_kind_from_string("pool"), -EINVAL);
    ASSERT_EQ(queue_ha_state_from_string("online"), -EINVAL);
    ASSERT(!queue_kind_to_string(_QUEUE_KIND_MAX));
    ASSERT(!queue_ha_state_to_string((enum queue_ha_state) - 1));
}

TEST(queue_event_invalid_json_rejected) {
    char name255[300], name256[300], reason_long[700], big[QUEUE_EVENT_JSON_MAX + 100];
    memset(name255, 'a', 255);
    name255[255] = '\0';
    memset(name256, 'a', 256);
    name256[256] = '\0';
    memset(reason_long, 'r', 512);
    reason_long[512] = '\0';
    char ok255[400], bad256[400], bad_reason[800];
    snprintf(ok255, sizeof(ok255), "{\"object\":\"su:%s\",\"state\":\"FAILED\",\"node\":\"n\"}", name255);
    snprintf(bad256, sizeof(bad256), "{\"object\":\"su:%s\",\"state\":\"FAILED\",\"node\":\"n\"}", name256);
    snprintf(bad_reason, sizeof(bad_reason),
             "{\"object\":\"su:a\",\"state\":\"FAILED\",\"node\":\"n\",\"reason\":\"%s\"}", reason_long);
    /* Valid JSON, but past QUEUE_EVENT_JSON_MAX bytes. */
    int off = snprintf(big, sizeof(big), "{\"object\":\"su:a\",\"state\":\"FAILED\",\"node\":\"n\",\"pad\":\"");
    memset(big + off, 'p', QUEUE_EVENT_JSON_MAX);
    snprintf(big + off + QUEUE_EVENT_JSON_MAX, sizeof(big) - (size_t)off - QUEUE_EVENT_JSON_MAX, "\"}");

    struct queue_event ev;
    ASSERT_OK(queue_event_parse(ok255, strlen(ok255), &ev));

    const char *const bad[] = {
        "",
        "null",
        "[]",
        "\"su:a\"",
        "{",
        "{\"object\":\"su:a\",\"state\":\"FAILED\",\"node\":\"n\"} trailing",
        "{\"state\":\"FAILED\",\"node\":\"n\"}",                         /* no object */
        "{\"object\":\"su:a\",\"node\":\"n\"}",                          /* no state */
        "{\"object\":\"su:a\",\"state\":\"FAILED\"}",                    /* no node */
        "{\"object\":\"su:a\",\"state\":\"BROKEN\",\"node\":\"n\"}",     /* bad state */
        "{\"object\":\"su:a\",\"state\":\"failed\",\"node\":\"n\"}",     /* case matters */
        "{\"object\":\"pool:a\",\"state\":\"FAILED\",\"node\":\"n\"}",   /* bad kind */
        "{\"object\":\"a\",\"state\":\"FAILED\",\"node\":\"n\"}",        /* no kind */
        "{\"object\":\"su:\",\"state\":\"FAILED\",\"node\":\"n\"}",      /* empty name */
        "{\"object\":\":a\",\"state\":\"FAILED\",\"node\":\"n\"}",       /* empty kind */
        "{\"object\":\"su:a/b\",\"state\":\"FAILED\",\"node\":\"n\"}",   /* '/' in name */
        "{\"object\":\"su:a b\",\"state\":\"FAILED\",\"node\":\"n\"}",   /* space */
        "{\"object\":\"su:a\\nb\",\"state\":\"FAILED\",\"node\":\"n\"}", /* control */
        "{\"object\":\"su:a\\u0000b\",\"state\":\"FAILED\",\"node\":\"n\"}",
        "{\"object\":\"su:\\u00e9\",\"state\":\"FAILED\",\"node\":\"n\"}", /* not ASCII */
        "{\"object\":\"su:a\",\"state\":\"FAILED\",\"node\":\"n/1\"}",
        "{\"object\":\"su:a\",\"state\":\"FAILED\",\"node\":\"\"}",
        "{\"object\":1,\"state\":\"FAILED\",\"node\":\"n\"}", /* wrong types */
        "{\"object\":\"su:a\",\"state\":3,\"node\":\"n\"}",
        "{\"object\":\"su:a\",\"state\":\"FAILED\",\"node\":null}",
        "{\"object\":\"su:a\",\"state\":\"FAILED\",\"node\":\"n\",\"hlc\":123}",
        "{\"object\":\"su:a\",\"state\":\"FAILED\",\"node\":\"n\",\"hlc\":\"-1\"}",
        "{\"object\":\"su:a\",\"state\":\"FAILED\",\"node\":\"n\",\"hlc\":\"12a\"}",
        "{\"object\":\"su:a\",\"state\":\"FAILED\",\"node\":\"n\",\"hlc\":\"\"}",
        "{\"object\":\"su:a\",\"state\":\"FAILED\",\"node\":\"n\",\"hlc\":\"18446744073709551616\"}",
        "{\"object\":\"su:a\",\"state\":\"FAILED\",\"node\":\"n\",\"reason\":5}",
        "{\"object\":\"su:a\",\"state\":\"FAILED\",\"node\":\"n\",\"reason\":\"a\\tb\"}",
        "{\"object\":\"su:a\",\"state\":\"FAILED\",\"node\":\"n\",\"reason\":null}",
        "{\"object\":\"su:a\",\"state\":\"FAILED\",\"node\":\"n\",\"epoch\":-1}",
        "{\"object\":\"su:a\",\"state\":\"FAILED\",\"node\":\"n\",\"epoch\":1.5}",
        "{\"object\":\"su:a\",\"state\":\"FAILED\",\"node\":\"n\",\"epoch\":\"1\"}",
        "{\"object\":\"su:a\",\"state\":\"FAILED\",\"node\":\"n\",\"epoch\":true}",
        "{\"object\":\"node:a\",\"state\":\"FAILED\",\"node\":\"n\",\"lease\":-1}",
        "{\"object\":\"node:a\",\"state\":\"FAILED\",\"node\":\"n\",\"lease\":\"7\"}",
        "{\"object\":\"su:a\",\"object\":\"su:b\",\"state\":\"FAILED\",\"node\":\"n\"}", /* duplicate key */
        "{\"object\":\"su:a\",\"state\":\"FAILED\",\"node\":\"n\",\"reason\":\"\xff\"}", /* not UTF-8 */
        bad256,
        bad_reason,
        big,
    };
    for (size_t i = 0; i < ELEMENTSOF(bad); i++) {
        memset(&ev, 0x5a, sizeof(ev));
        int r = queue_event_parse(bad[i], strlen(bad[i]), &ev);
        if (r != -EINVAL)
            CHECK_FAIL("queue_event_parse(%.80s) = %d, expected -EINVAL", bad[i], r);
        ASSERT_EQ(((unsigned char *)&ev)[0], 0x5a); /* not written */
    }
    ASSERT_EQ(queue_event_parse(NULL, 0, &ev), -EINVAL);
    ASSERT_EQ(queue_event_from_json(NULL, &ev), -EINVAL);

    /* to_json and eq_append validate the struct as well. */
    struct queue_event x = event("node:a", QUEUE_HA_ONLINE);
    json_t *j;
    ASSERT_EQ(queue_event_to_json(&x, &j), -EINVAL); /* no node */
    snprintf(x.node, sizeof(x.node), "n");
    x.state = _QUEUE_HA_MAX;
    ASSERT_EQ(queue_event_to_json(&x, &j), -EINVAL);
    x.state = QUEUE_HA_ONLINE;
    x.kind = (enum queue_kind)99;
    ASSERT_EQ(queue_event_to_json(&x, &j), -EINVAL);
    x.kind = QUEUE_KIND_NODE;
    x.epoch = -2;
    ASSERT_EQ(queue_event_to_json(&x, &j), -EINVAL);
    x.epoch = QUEUE_EPOCH_NONE;
    memset(x.name, 'a', sizeof(x.name)); /* not NUL-terminated */
    ASSERT_EQ(queue_event_to_json(&x, &j), -EINVAL);
    ASSERT_EQ(queue_event_init(&x, "node:a/b", QUEUE_HA_ONLINE), -EINVAL);
    ASSERT_EQ(queue_event_init(&x, "disk:a", QUEUE_HA_ONLINE), -EINVAL);
    ASSERT(queue_name_valid(name255));
    ASSERT(!queue_name_valid(name256));
    ASSERT(!queue_name_valid(""));
    ASSERT(!queue_name_valid(NULL));
}

/* ---- the body of POST /v1/events ---- */

#define BODY_EXPECTED "expected an event, an array of events, or {\"events\": [...]}"
#define BODY_TOO_MANY "too many events in one request"
#define BODY_INVALID                                                                                                 \
    "an event is not valid: it needs \"object\" (kind:name; kind node, process, service, device, su) and \"state\" " \
    "(ONLINE, FAILED, ...)"

/* Parses body with default node "here" and at most max events: 0 with the events, or the error. */
static int body_parse(const char *body, size_t max, struct queue_event **ret, size_t *ret_n, const char **ret_error) {
    *ret = (struct queue_event *)0x1;
    *ret_n = 77;
    *ret_error = NULL;
    int r = queue_events_parse_body(body, strlen(body), "here", max, ret, ret_n, ret_error);
    if (r < 0) {
        ASSERT(*ret == (struct queue_event *)0x1); /* not written */
        ASSERT_EQ(*ret_n, 77);
    } else
        ASSERT(*ret_error == NULL);
    return r;
}

static void body_refused(const char *body, size_t max, const char *error) {
    struct queue_event *evs;
    size_t n;
    const char *e;
    int r = body_parse(body, max, &evs, &n, &e);
    if (r != -EINVAL)
        CHECK_FAIL("queue_events_parse_body(%.80s) = %d, expected -EINVAL", body, r);
    ASSERT_STREQ(e, error);
}

TEST(queue_events_body_shapes) {
    struct queue_event *evs;
    size_t n;
    const char *e;

    /* One event: the node defaults to this one, an epoch is ignored (even an invalid one). */
    const char *one[] = {
        "{\"object\":\"su:a\",\"state\":\"FAILED\",\"reason\":\"disk\",\"epoch\":3}",
        "{\"object\":\"su:a\",\"state\":\"FAILED\",\"reason\":\"disk\",\"epoch\":\"x\"}",
        "[{\"object\":\"su:a\",\"state\":\"FAILED\",\"reason\":\"disk\"}]",
        "{\"events\":[{\"object\":\"su:a\",\"state\":\"FAILED\",\"reason\":\"disk\",\"epoch\":-5}]}",
        /* Whatever "events" holds is taken as the events: here one object. */
        "{\"events\":{\"object\":\"su:a\",\"state\":\"FAILED\",\"reason\":\"disk\"}}",
        " \n[ {\"reason\":\"disk\",\"state\":\"FAILED\",\"object\":\"su:a\",\"future\":{}} ]\t",
    };
    for (size_t i = 0; i < ELEMENTSOF(one); i++) {
        ASSERT_OK(body_parse(one[i], 10, &evs, &n, &e));
        ASSERT_EQ(n, 1);
        ASSERT_EQ(evs[0].kind, QUEUE_KIND_SU);
        ASSERT_STREQ(evs[0].name, "a");
        ASSERT_EQ(evs[0].state, QUEUE_HA_FAILED);
        ASSERT_STREQ(evs[0].node, "here");
        ASSERT_STREQ(evs[0].reason, "disk");
        ASSERT_EQ(evs[0].hlc, 0);
        ASSERT_EQ(evs[0].epoch, QUEUE_EPOCH_NONE);
        free(evs);
    }

    /* Several, in order; a node and an hlc given are kept. */
    const char *several[] = {
        "[{\"object\":\"node:n2\",\"state\":\"FAILED\",\"node\":\"n1\",\"hlc\":\"42\"},"
        "{\"object\":\"process:p\",\"state\":\"ONLINE\"},{\"object\":\"device:d\",\"state\":\"REPAIR\"}]",
        "{\"events\":[{\"object\":\"node:n2\",\"state\":\"FAILED\",\"node\":\"n1\",\"hlc\":\"42\"},"
        "{\"object\":\"process:p\",\"state\":\"ONLINE\"},{\"object\":\"device:d\",\"state\":\"REPAIR\"}],\"x\":1}",
    };
    for (size_t i = 0; i < ELEMENTSOF(several); i++) {
        ASSERT_OK(body_parse(several[i], 3, &evs, &n, &e));
        ASSERT_EQ(n, 3);
        ASSERT_EQ(evs[0].kind, QUEUE_KIND_NODE);
        ASSERT_STREQ(evs[0].node, "n1");
        ASSERT_EQ(evs[0].hlc, 42);
        ASSERT_EQ(evs[1].kind, QUEUE_KIND_PROCESS);
        ASSERT_EQ(evs[1].state, QUEUE_HA_ONLINE);
        ASSERT_STREQ(evs[1].node, "here");
        ASSERT_EQ(evs[2].kind, QUEUE_KIND_DEVICE);
        ASSERT_EQ(evs[2].state, QUEUE_HA_REPAIR);
        free(evs);
    }

    /* Without a default node, "node" is required. */
    const char *no_node = "{\"object\":\"su:a\",\"state\":\"FAILED\"}";
    e = NULL;
    ASSERT_EQ(queue_events_parse_body(no_node, strlen(no_node), NULL, 1, &evs, &n, &e), -EINVAL);
    ASSERT_STREQ(e, BODY_INVALID);
    const char *with_node = "{\"object\":\"su:a\",\"state\":\"FAILED\",\"node\":\"n\"}";
    ASSERT_OK(queue_events_parse_body(with_node, strlen(with_node), NULL, 1, &evs, &n, &e));
    ASSERT_STREQ(evs[0].node, "n");
    free(evs);
    ASSERT_EQ(queue_events_parse_body(NULL, 0, "here", 1, &evs, &n, &e), -EINVAL);
    ASSERT_STREQ(e, BODY_EXPECTED);
}

TEST(queue_events_body_errors) {
    const char *const expected[] = {
        "",
        "{not json",
        "null",
        "5",
        "\"su:a\"",
        "[]",
        "{}",
        "{\"events\":[]}",
        "{\"state\":\"FAILED\"}", /* an object without "object" or "events" */
        "{\"object\":\"su:a\",\"state\":\"FAILED\"} trailing",
        "{\"object\":\"su:a\",\"object\":\"su:b\",\"state\":\"FAILED\"}", /* duplicate keys */
        "[{\"object\":\"su:a\",\"state\":\"FAILED\",\"state\":\"ONLINE\"}]",
    };
    for (size_t i = 0; i < ELEMENTSOF(expected); i++)
        body_refused(expected[i], 10, BODY_EXPECTED);

    const char *const invalid[] = {
        "{\"object\":\"pool:a\",\"state\":\"FAILED\"}",
        "{\"object\":\"su:a\",\"state\":\"BROKEN\"}",
        "{\"object\":\"su:a\"}",
        "{\"object\":\"su:a/b\",\"state\":\"FAILED\"}",
        "{\"object\":\"su:a\",\"state\":\"FAILED\",\"node\":null}",
        "{\"object\":\"su:a\",\"state\":\"FAILED\",\"node\":\"a b\"}",
        "{\"object\":\"su:a\",\"state\":\"FAILED\",\"hlc\":7}",
        "{\"object\":\"su:a\",\"state\":\"FAILED\",\"reason\":\"a\\u0001\"}",
        "[{\"object\":\"su:a\",\"state\":\"FAILED\"},5]",
        "[{\"object\":\"su:a\",\"state\":\"FAILED\"},{\"object\":\"su:b\",\"state\":\"ONLINE\",\"hlc\":\"x\"}]",
        "[[]]",
        "{\"events\":\"su:a\"}",
        "{\"events\":null}",
        "{\"events\":{}}",
    };
    for (size_t i = 0; i < ELEMENTSOF(invalid); i++)
        body_refused(invalid[i], 10, BODY_INVALID);
}

TEST(queue_events_body_limits) {
    struct queue_event *evs;
    size_t n;
    const char *e;
    enum { MAX = 50 };
    char *body = malloc(64 * (MAX + 2) + 64);
    ASSERT(body);

    /* MAX events pass, one more is too many (in both list shapes); 0 is refused as no event. */
    for (size_t count = MAX; count <= MAX + 1; count++)
        for (int wrapped = 0; wrapped < 2; wrapped++) {
            size_t at = (size_t)sprintf(body, "%s[", wrapped ? "{\"events\":" : "");
            for (size_t i = 0; i < count; i++)
                at += (size_t)sprintf(body + at, "%s{\"object\":\"comp:c%zu\",\"state\":\"OFFLINE\"}", i ? "," : "", i);
            sprintf(body + at, "]%s", wrapped ? "}" : "");
            if (count > MAX) {
                body_refused(body, MAX, BODY_TOO_MANY);
                continue;
            }
            ASSERT_OK(body_parse(body, MAX, &evs, &n, &e));
            ASSERT_EQ(n, MAX);
            ASSERT_STREQ(evs[MAX - 1].name, "c49");
            free(evs);
        }
    body_refused("{\"object\":\"su:a\",\"state\":\"FAILED\"}", 0, BODY_TOO_MANY);
    free(body);

    /* A name of 255 bytes and a reason of 511 pass; one byte more does not. */
    char name[300], reason[600], text[1200];
    for (int extra = 0; extra < 2; extra++) {
        memset(name, 'n', 255 + extra);
        name[255 + extra] = '\0';
        memset(reason, 'r', 511);
        reason[511] = '\0';
        snprintf(text, sizeof(text), "{\"object\":\"su:%s\",\"state\":\"FAILED\",\"reason\":\"%s\"}", name, reason);
        if (extra)
            body_refused(text, 1, BODY_INVALID);
        else {
            ASSERT_OK(body_parse(text, 1, &evs, &n, &e));
            ASSERT_EQ(strlen(evs[0].name), 255);
            ASSERT_EQ(strlen(evs[0].reason), 511);
            free(evs);
        }
        memset(name, 'n', 255);
        name[255] = '\0';
        memset(reason, 'r', 511 + extra);
        reason[511 + extra] = '\0';
        snprintf(text, sizeof(text), "{\"object\":\"su:%s\",\"state\":\"FAILED\",\"reason\":\"%s\"}", name, reason);
        if (extra)
            body_refused(text, 1, BODY_INVALID);
    }
}

/* ---- the queues ---- */

TEST(queue_append_consume_deliver_same_order_on_two_nodes) {
    struct world *w = world_new();
    struct node a, b;
    node_open(&a, w, "a", NULL);
    node_open(&b, w, "b", NULL);
    ASSERT_OK(eq_consumer_start(a.q, NULL, NULL, on_stopped, &a));
    ASSERT_EQ(eq_consumer_start(a.q, NULL, NULL, on_stopped, &a), -EBUSY);
    node_read(&a);
    node_read(&b);

    /* Both nodes append; batches of several events, one object several times. */
    const char *objects[] = {"node:n1", "process:p1", "service:s1", "device:d1", "su:su1", "comp:c1"};
    uint64_t expected = 0;
    for (int round = 0; round < 4; round++) {
        struct queue_event evs[ELEMENTSOF(objects)];
        for (size_t i = 0; i < ELEMENTSOF(objects); i++)
            evs[i] = event(objects[i], round % 2 ? QUEUE_HA_ONLINE : QUEUE_HA_FAILED);
        append_wait(round % 2 ? &b : &a, evs, ELEMENTSOF(evs));
        expected += ELEMENTSOF(objects);
        if (round == 0)
            run_until_delivered(&a, expected); /* a batch of its own: bq/6 */
    }
    run_until_delivered(&a, expected);
    run_until_delivered(&b, expected);
    ASSERT_EQ(a.n, expected);
    assert_same_delivery(&a, &b);
    /* The order of the EQ: the first batch's events in order. */
    for (size_t i = 0; i < ELEMENTSOF(objects); i++) {
        ASSERT_STREQ(a.objects[i], objects[i]);
        ASSERT_EQ(a.states[i], QUEUE_HA_FAILED);
    }

    /* The store: EQ consumed, one state per object (written behind the BQ),
     * the BQ and its counter, both offsets. */
    run_until_checkpointed(&a, expected);
    ASSERT_EQ(count_keys(w, PREFIX "eq/"), 0);
    ASSERT_EQ(count_keys(w, PREFIX "state/"), ELEMENTSOF(objects));
    ASSERT_EQ(bq_events(w, NULL), expected);
    ASSERT(count_keys(w, PREFIX "bq/") < expected); /* batched */
    char *v = get_value(w, PREFIX "bq-seq");
    ASSERT(v && strtoull(v, NULL, 10) == expected);
    free(v);
    v = get_value(w, PREFIX "state-seq");
    ASSERT(v && strtoull(v, NULL, 10) == expected);
    free(v);
    char offset[32];
    snprintf(offset, sizeof(offset), "%" PRIu64, expected);
    run_until_offset(w, "b", offset);
    v = get_value(w, PREFIX "state/su:su1");
    struct queue_event ev;
    ASSERT(v);
    ASSERT_OK(queue_event_parse(v, strlen(v), &ev));
    ASSERT_EQ(ev.state, QUEUE_HA_ONLINE);
    ASSERT_STREQ(ev.node, "b");
    ASSERT(ev.hlc != 0);
    ASSERT(strstr(v, "\"seq\":"));
    free(v);
    /* The first append was consumed as one entry: bq/6 holds its 6 events. */
    v = get_value(w, PREFIX "bq/00000000000000000006");
    ASSERT(v);
    json_t *entry = json_loads(v, 0, NULL);
    ASSERT(json_is_array(entry) && json_array_size(entry) == ELEMENTSOF(objects));
    ASSERT_OK(queue_event_from_json(json_array_get(entry, 0), &ev));
    ASSERT_STREQ(ev.name, "n1");
    ASSERT_STREQ(ev.node, "a");
    json_decref(entry);
    free(v);

    /* Queries on both nodes. */
    ASSERT_EQ(queue_state_get(a.q, "process:p1"), QUEUE_HA_ONLINE);
    ASSERT_EQ(queue_state_get(b.q, "process:p1"), QUEUE_HA_ONLINE);
    ASSERT_EQ(queue_state_get(b.q, "process:p2"), -ENOENT);
    struct queue_stats st;
    queue_get_stats(a.q, &st);
    ASSERT_EQ(st.consumed, expected);
    ASSERT_EQ(st.published, expected);
    ASSERT_EQ(st.last_seq, expected);
    ASSERT(!a.stopped && !b.stopped);

    node_close(&a);
    node_close(&b);
    world_free(w);
}

TEST(queue_duplicates_from_two_nodes_become_one_entry) {
    struct world *w = world_new();
    struct node a, b, c;
    node_open(&a, w, "a", NULL);
    node_open(&b, w, "b", NULL);
    node_open(&c, w, "c", NULL);
    /* Three nodes see the same failure before the coordinator runs. */
    append_one(&a, "process:ios2", QUEUE_HA_FAILED);
    append_one(&b, "process:ios2", QUEUE_HA_FAILED);
    append_one(&c, "process:ios2", QUEUE_HA_FAILED);
    ASSERT_EQ(count_keys(w, PREFIX "eq/"), 3);
    ASSERT_OK(eq_consumer_start(a.q, NULL, NULL, on_stopped, &a));
    node_read(&b);
    run_until_delivered(&b, 1);
    run_for(w, 20);
    ASSERT_EQ(count_keys(w, PREFIX "eq/"), 0);
    ASSERT_EQ(count_keys(w, PREFIX "bq/"), 1);
    ASSERT_EQ(b.n, 1);
    ASSERT_STREQ(b.objects[0], "process:ios2");
    struct queue_stats st;
    queue_get_stats(a.q, &st);
    ASSERT_EQ(st.consumed, 3);
    ASSERT_EQ(st.duplicates, 2);
    ASSERT_EQ(st.published, 1);

    /* Once more while running: still a duplicate; a new state is not. */
    append_one(&c, "process:ios2", QUEUE_HA_FAILED);
    append_one(&c, "process:ios2", QUEUE_HA_ONLINE);
    run_until_delivered(&b, 2);
    run_for(w, 20);
    ASSERT_EQ(b.n, 2);
    ASSERT_EQ(b.states[1], QUEUE_HA_ONLINE);
    queue_get_stats(a.q, &st);
    ASSERT_EQ(st.duplicates, 3);
    ASSERT_EQ(queue_state_get(a.q, "process:ios2"), QUEUE_HA_ONLINE);

    node_close(&a);
    node_close(&b);
    node_close(&c);
    world_free(w);
}

static uint64_t fixed_ms(void *userdata) {
    return *(uint64_t *)userdata;
}

/* The hlcs of the BQ's events in seq order, into out (at most max); how many. */
static size_t bq_hlcs(struct world *w, uint64_t *out, size_t max) {
    struct read_result x;
    range(w, PREFIX "bq/", &x);
    size_t n = 0;
    for (size_t i = 0; i < x.n_kvs; i++) {
        json_t *j = json_loads(x.values[i], 0, NULL);
        for (size_t k = 0; k < json_array_size(j) && n < max; k++) {
            struct queue_event ev;
            ASSERT_OK(queue_event_from_json(json_array_get(j, k), &ev));
            out[n++] = ev.hlc;
        }
        json_decref(j);
    }
    read_done(&x);
    return n;
}

TEST(queue_bq_times_ascend_whatever_the_reporters_clocks) {
    /* r.outgoing.msg.timestamp: b's clock is 50 s behind the coordinator's, c's 70 s. */
    struct world *w = world_new();
    uint64_t now_a = UINT64_C(1795342272345), now_b = now_a - 50000, now_c = now_a - 70000;
    struct hlc clock_a, clock_b, clock_c;
    hlc_init(&clock_a, fixed_ms, &now_a);
    hlc_init(&clock_b, fixed_ms, &now_b);
    hlc_init(&clock_c, fixed_ms, &now_c);
    struct node a, b, c;
    node_open(&a, w, "a", &clock_a);
    node_open(&b, w, "b", &clock_b);
    node_open(&c, w, "c", &clock_c);
    ASSERT_OK(eq_consumer_start(a.q, NULL, NULL, on_stopped, &a));
    append_one(&a, "process:p1", QUEUE_HA_ONLINE);
    run_for(w, 20);
    /* b reports before it has read anything: its event's time is 50 s back. */
    append_one(&b, "process:p2", QUEUE_HA_ONLINE);
    append_one(&a, "process:p3", QUEUE_HA_ONLINE);
    run_for(w, 20);
    uint64_t t[16];
    size_t n = bq_hlcs(w, t, ELEMENTSOF(t));
    ASSERT_EQ(n, 3);
    for (size_t i = 1; i < n; i++)
        ASSERT(t[i] > t[i - 1]);

    /* A node that read the BQ stamps its next reports after what it read. */
    node_read(&b);
    run_until_delivered(&b, 3);
    ASSERT(hlc_now(&clock_b) > t[2]);
    append_one(&b, "process:p2", QUEUE_HA_FAILED);
    run_for(w, 20);

    /* A new coordinator whose clock is further behind goes on from the last time published. */
    eq_consumer_stop(a.q);
    ASSERT_OK(eq_consumer_start(c.q, NULL, NULL, on_stopped, &c));
    append_one(&c, "process:p3", QUEUE_HA_FAILED);
    append_one(&a, "process:p1", QUEUE_HA_FAILED);
    run_for(w, 50);
    n = bq_hlcs(w, t, ELEMENTSOF(t));
    ASSERT_EQ(n, 6);
    for (size_t i = 1; i < n; i++)
        ASSERT(t[i] > t[i - 1]);
    ASSERT(!a.stopped && !c.stopped);
    node_close(&a);
    node_close(&b);
    node_close(&c);
    world_free(w);
}

TEST(queue_a_new_incarnation_is_not_a_duplicate) {
    struct world *w = world_new();
    struct node a;
    node_open_coordinator(&a, w, "a");
    /* A node ONLINE under lease 7, reported twice; then under lease 9 (it joined again). */
    struct queue_event evs[3];
    for (size_t i = 0; i < ELEMENTSOF(evs); i++) {
        evs[i] = event("node:n2", QUEUE_HA_ONLINE);
        evs[i].lease = i < 2 ? 7 : 9;
    }
    append_wait(&a, evs, ELEMENTSOF(evs));
    run_until_delivered(&a, 2);
    run_for(w, 20);
    ASSERT_EQ(a.n, 2);
    struct queue_state st;
    ASSERT_OK(queue_state_of(a.q, "node:n2", &st));
    ASSERT_EQ(st.state, QUEUE_HA_ONLINE);
    ASSERT_EQ(st.lease, 9);
    ASSERT_EQ(st.epoch, QUEUE_EPOCH_NONE);
    ASSERT_EQ(queue_state_of(a.q, "node:n3", &st), -ENOENT);
    /* The lease as published, and never taken from outside. */
    char *v = get_value(w, PREFIX "bq/00000000000000000002");
    ASSERT(v && strstr(v, "\"lease\":9"));
    free(v);
    const char *body = "{\"object\":\"node:n2\",\"state\":\"FAILED\",\"lease\":9,\"epoch\":1}";
    struct queue_event *posted = NULL;
    size_t n = 0;
    const char *error = NULL;
    ASSERT_OK(queue_events_parse_body(body, strlen(body), "n1", 10, &posted, &n, &error));
    ASSERT_EQ(n, 1);
    ASSERT_EQ(posted[0].lease, 0);
    ASSERT_EQ(posted[0].epoch, QUEUE_EPOCH_NONE);
    free(posted);
    node_close(&a);
    world_free(w);
}

/* Publishes FAILED as TRANSIENT, drops REPAIR, publishes the rest as is. */
static int decide_transient(struct queue *q, const struct queue_event *ev, int current, enum queue_ha_state *ret,
                            void *userdata) {
    unsigned *calls = userdata;
    (*calls)++;
    if (ev->state == QUEUE_HA_REPAIR)
        return 0;
    *ret = ev->state == QUEUE_HA_FAILED ? QUEUE_HA_TRANSIENT : ev->state;
    return 1;
}

TEST(queue_decide_maps_and_drops) {
    struct world *w = world_new();
    struct node a;
    unsigned calls = 0;
    node_open(&a, w, "a", NULL);
    ASSERT_OK(eq_consumer_start(a.q, NULL, decide_transient, NULL, &calls));
    node_read(&a);
    append_one(&a, "process:p", QUEUE_HA_FAILED);
    run_until_delivered(&a, 1);
    ASSERT_EQ(a.states[0], QUEUE_HA_TRANSIENT);
    append_one(&a, "process:p", QUEUE_HA_REPAIR); /* dropped by decide */
    append_one(&a, "process:p", QUEUE_HA_FAILED); /* decided TRANSIENT again: nothing new */
    append_one(&a, "process:p", QUEUE_HA_ONLINE);
    run_until_delivered(&a, 2);
    run_for(w, 20);
    ASSERT_EQ(a.n, 2);
    ASSERT_EQ(a.states[1], QUEUE_HA_ONLINE);
    ASSERT_EQ(calls, 4);
    struct queue_stats st;
    queue_get_stats(a.q, &st);
    ASSERT_EQ(st.dropped, 1);
    ASSERT_EQ(st.duplicates, 1);
    ASSERT_EQ(count_keys(w, PREFIX "eq/"), 0);
    node_close(&a);
    world_free(w);
}

struct flaky {
    unsigned calls, failures;
};

static int decide_flaky(struct queue *q, const struct queue_event *ev, int current, enum queue_ha_state *ret,
                        void *userdata) {
    struct flaky *f = userdata;
    f->calls++;
    if (f->failures > 0) {
        f->failures--;
        return -EAGAIN;
    }
    *ret = ev->state;
    return 1;
}

TEST(queue_decide_failure_keeps_the_event) {
    struct world *w = world_new();
    struct node a;
    struct flaky f = {.failures = 2};
    node_open(&a, w, "a", NULL);
    ASSERT_OK(eq_consumer_start(a.q, NULL, decide_flaky, NULL, &f));
    node_read(&a);
    append_one(&a, "device:d", QUEUE_HA_FAILED);
    run_until_delivered(&a, 1);
    ASSERT_EQ(f.calls, 3);
    ASSERT_EQ(a.n, 1);
    ASSERT_EQ(count_keys(w, PREFIX "eq/"), 0);
    node_close(&a);
    world_free(w);
}

TEST(queue_deposed_coordinator_is_refused) {
    struct world *w = world_new();
    struct node a, b;
    node_open(&a, w, "a", NULL);
    node_open(&b, w, "b", NULL);
    int64_t won = put(w, PREFIX "leader", "{\"node\":\"a\"}");
    store_compare guard = {.key = PREFIX "leader",
                           .key_len = strlen(PREFIX "leader"),
                           .target = STORE_CMP_CREATE,
                           .result = STORE_CMP_EQUAL,
                           .number = won};
    ASSERT_OK(eq_consumer_start(a.q, &guard, NULL, on_stopped, &a));
    node_read(&b);
    append_one(&b, "node:n1", QUEUE_HA_FAILED);
    run_until_delivered(&b, 1);

    /* Another node takes the leader key: a's next batch must not land. */
    struct read_result x = {0};
    ASSERT_OK(store_delete(w->s, PREFIX "leader", on_read, &x));
    run_until(w, &x.done);
    read_done(&x);
    int64_t won_b = put(w, PREFIX "leader", "{\"node\":\"b\"}");
    append_one(&b, "node:n1", QUEUE_HA_ONLINE);
    run_until(w, &a.stopped);
    ASSERT_EQ(a.stopped_error, -EPERM);
    ASSERT(!eq_consumer_running(a.q));
    run_for(w, 20);
    ASSERT_EQ(count_keys(w, PREFIX "bq/"), 1);
    ASSERT_EQ(count_keys(w, PREFIX "eq/"), 1); /* still there for the new coordinator */
    ASSERT_EQ(b.n, 1);

    /* The new coordinator takes over and continues the numbering. */
    guard.number = won_b;
    ASSERT_OK(eq_consumer_start(b.q, &guard, NULL, on_stopped, &b));
    run_until_delivered(&b, 2);
    ASSERT_EQ(b.seqs[1], 2);
    ASSERT_EQ(b.states[1], QUEUE_HA_ONLINE);
    ASSERT_EQ(count_keys(w, PREFIX "eq/"), 0);
    ASSERT(!b.stopped);

    /* The deposed one may not start again with its old guard and publish. */
    ASSERT_OK(eq_consumer_start(a.q,
                                &(store_compare){.key = PREFIX "leader",
                                                 .key_len = strlen(PREFIX "leader"),
                                                 .target = STORE_CMP_CREATE,
                                                 .result = STORE_CMP_EQUAL,
                                                 .number = won},
                                NULL, on_stopped, &a));
    a.stopped = false;
    append_one(&a, "node:n2", QUEUE_HA_FAILED);
    run_until_delivered(&b, 3); /* b publishes it */
    run_for(w, 20);
    ASSERT_EQ(count_keys(w, PREFIX "bq/"), 3);
    ASSERT_EQ(b.n, 3);

    node_close(&a);
    node_close(&b);
    world_free(w);
}

TEST(queue_two_unguarded_consumers_never_share_a_seq) {
    struct world *w = world_new();
    struct node a, b, r;
    node_open(&a, w, "a", NULL);
    node_open(&b, w, "b", NULL);
    node_open(&r, w, "r", NULL);
    ASSERT_OK(eq_consumer_start(a.q, NULL, NULL, on_stopped, &a));
    ASSERT_OK(eq_consumer_start(b.q, NULL, NULL, on_stopped, &b));
    node_read(&r);
    for (int i = 0; i < 50; i++) {
        char object[32];
        snprintf(object, sizeof(object), "device:d%d", i);
        append_one(i % 2 ? &a : &b, object, QUEUE_HA_FAILED);
    }
    run_until_delivered(&r, 50);
    run_for(w, 50);
    /* Each event published exactly once, seqs 1..50 without a gap or a repeat. */
    ASSERT_EQ(r.n, 50);
    ASSERT_EQ(bq_events(w, NULL), 50);
    for (size_t i = 0; i < r.n; i++)
        ASSERT_EQ(r.seqs[i], i + 1);
    node_close(&a);
    node_close(&b);
    node_close(&r);
    world_free(w);
}

TEST(queue_reader_restart_resumes_after_its_offset) {
    struct world *w = world_new();
    struct node a, b;
    node_open(&a, w, "a", NULL);
    node_open(&b, w, "b", NULL);
    ASSERT_OK(eq_consumer_start(a.q, NULL, NULL, NULL, NULL));
    node_read(&b);
    for (int i = 0; i < 5; i++) {
        char object[32];
        snprintf(object, sizeof(object), "su:s%d", i);
        append_one(&a, object, QUEUE_HA_FAILED);
    }
    run_until_delivered(&b, 5);
    run_until_offset(w, "b", "5");

    /* Stop and start in the same process: nothing delivered twice. */
    bq_reader_stop(b.q);
    append_one(&a, "su:s5", QUEUE_HA_FAILED);
    run_for(w, 20);
    ASSERT_EQ(b.n, 5);
    node_read(&b);
    run_until_delivered(&b, 6);
    run_for(w, 20);
    ASSERT_EQ(b.n, 6);
    ASSERT_EQ(b.seqs[5], 6);

    /* A new process for node b: resumes after the saved offset. */
    run_until_offset(w, "b", "6");
    node_close(&b);
    append_one(&a, "su:s6", QUEUE_HA_FAILED);
    append_one(&a, "su:s7", QUEUE_HA_FAILED);
    node_open(&b, w, "b", NULL);
    node_read(&b);
    run_until_delivered(&b, 8);
    run_for(w, 20);
    ASSERT_EQ(b.n, 2);
    ASSERT_EQ(b.seqs[0], 7);
    ASSERT_EQ(b.seqs[1], 8);
    /* The snapshot holds the states published before this process started. */
    ASSERT_EQ(queue_state_get(b.q, "su:s0"), QUEUE_HA_FAILED);
    run_until_offset(w, "b", "8");

    /* Offsets are written batched: far fewer writes than entries. */
    node_close(&b);
    node_open(&b, w, "b", NULL);
    struct queue_event evs[300];
    for (size_t i = 0; i < ELEMENTSOF(evs); i++) {
        char object[32];
        snprintf(object, sizeof(object), "comp:c%zu", i);
        evs[i] = event(object, QUEUE_HA_ONLINE);
    }
    node_read(&b);
    append_wait(&a, evs, ELEMENTSOF(evs));
    run_until_delivered(&b, 308);
    run_for(w, 20);
    struct queue_stats st;
    queue_get_stats(b.q, &st);
    ASSERT_EQ(st.delivered, 300);
    run_until_offset(w, "b", "308");
    queue_get_stats(b.q, &st);
    ASSERT(st.offset_writes >= 1 && st.offset_writes < 5);

    node_close(&a);
    node_close(&b);
    world_free(w);
}

struct prune_result {
    bool done;
    int error;
    uint64_t deleted;
};

static void on_pruned(struct queue *q, int error, uint64_t n, void *userdata) {
    struct prune_result *r = userdata;
    r->done = true;
    r->error = error;
    r->deleted = n;
}

static uint64_t prune_wait(struct node *n, const char *const *nodes, size_t count) {
    struct prune_result r = {0};
    ASSERT_OK(bq_prune(n->q, nodes, count, on_pruned, &r));
    ASSERT_EQ(bq_prune(n->q, nodes, count, on_pruned, &r), -EBUSY);
    ASSERT(!r.done);
    run_until(n->w, &r.done);
    ASSERT_OK(r.error);
    return r.deleted;
}

TEST(queue_prune_deletes_only_what_every_node_read) {
    struct world *w = world_new();
    struct node a, b;
    node_open(&a, w, "a", NULL);
    node_open(&b, w, "b", NULL);
    ASSERT_OK(eq_consumer_start(a.q, NULL, NULL, NULL, NULL));
    node_read(&a);
    node_read(&b);
    for (int i = 0; i < 4; i++) {
        char object[32];
        snprintf(object, sizeof(object), "node:n%d", i);
        append_one(&a, object, QUEUE_HA_FAILED);
        run_until_delivered(&a, (uint64_t)i + 1);
    }
    run_until_delivered(&b, 4);
    run_for(w, 20);
    bq_reader_stop(b.q);
    /* One BQ entry each: consumed before the next is appended. */
    for (int i = 0; i < 300; i++) {
        char object[32];
        snprintf(object, sizeof(object), "node:m%d", i);
        append_one(&a, object, QUEUE_HA_FAILED);
        run_until_delivered(&a, 4 + (uint64_t)i + 1);
    }
    run_until_checkpointed(&a, 304); /* pruning keeps what state/ does not hold yet */
    run_for(w, 20);
    ASSERT_EQ(count_keys(w, PREFIX "bq/"), 304);
    ASSERT_EQ(bq_events(w, NULL), 304);

    const char *ab[] = {"a", "b"}, *ac[] = {"a", "c"}, *just_a[] = {"a"};
    /* c never read anything: nothing goes. */
    ASSERT_EQ(prune_wait(&a, ac, 2), 0);
    ASSERT_EQ(count_keys(w, PREFIX "bq/"), 304);
    /* b read 4. */
    ASSERT_EQ(prune_wait(&a, ab, 2), 4);
    ASSERT_EQ(count_keys(w, PREFIX "bq/"), 300);
    uint64_t first = 0;
    ASSERT_EQ(bq_events(w, &first), 300);
    ASSERT_EQ(first, 5);
    char *v = get_value(w, PREFIX "bq/00000000000000000004");
    ASSERT(!v);
    v = get_value(w, PREFIX "bq/00000000000000000005");
    ASSERT(v);
    free(v);
    ASSERT_EQ(prune_wait(&a, ab, 2), 0);
    /* With b gone from the cluster: everything a read, in several transactions. */
    unsigned txns = w->w->txns;
    ASSERT_EQ(prune_wait(&a, just_a, 1), 300);
    ASSERT(w->w->txns - txns >= 3); /* a read and 300 deletes in >= 3 transactions */
    ASSERT_EQ(count_keys(w, PREFIX "bq/"), 0);

    /* The numbering survives an empty BQ: a new coordinator continues at 305. */
    eq_consumer_stop(a.q);
    ASSERT_OK(eq_consumer_start(a.q, NULL, NULL, NULL, NULL));
    append_one(&a, "node:late", QUEUE_HA_FAILED);
    run_until_delivered(&a, 305);
    ASSERT_EQ(a.seqs[a.n - 1], 305);
    /* b comes back: a gap (logged), then it goes on. */
    node_read(&b);
    run_until_delivered(&b, 305);
    ASSERT_EQ(b.seqs[b.n - 1], 305);
    ASSERT_EQ(queue_state_get(b.q, "node:m299"), QUEUE_HA_FAILED); /* from the snapshot */

    const char *bad[] = {"a/b"};
    ASSERT_EQ(bq_prune(a.q, bad, 1, NULL, NULL), -EINVAL);
    ASSERT_EQ(bq_prune(a.q, ab, 0, NULL, NULL), -EINVAL);
    node_close(&a);
    node_close(&b);
    world_free(w);
}

/* The coordinator goes before it wrote the states to state/: the next one
 * and a new node find them on the BQ, and pruning keeps that part. */
TEST(queue_states_not_yet_in_state_are_read_from_the_bq) {
    struct world *w = world_new();
    struct node a, b, c;
    node_open(&a, w, "a", NULL);
    node_open(&b, w, "b", NULL);
    ASSERT_OK(eq_consumer_start(a.q, NULL, NULL, on_stopped, &a));
    node_read(&b);
    append_one(&a, "process:x", QUEUE_HA_FAILED);
    run_until_delivered(&b, 1);
    eq_consumer_stop(a.q); /* before its checkpoint timer */
    run_for(w, 120);
    ASSERT_EQ(count_keys(w, PREFIX "state/"), 0);
    const char *ab[] = {"a", "b"};
    node_read(&a);
    run_until_delivered(&a, 1);
    run_for(w, 20);
    ASSERT_EQ(prune_wait(&a, ab, 2), 0); /* both read it, but state/ does not have it */
    ASSERT_EQ(count_keys(w, PREFIX "bq/"), 1);

    /* b takes over: the same report again is a duplicate. */
    ASSERT_OK(eq_consumer_start(b.q, NULL, NULL, on_stopped, &b));
    append_one(&a, "process:x", QUEUE_HA_FAILED);
    append_one(&a, "process:y", QUEUE_HA_FAILED);
    run_until_delivered(&b, 2);
    run_for(w, 20);
    ASSERT_EQ(b.n, 2);
    ASSERT_STREQ(b.objects[1], "process:y");
    struct queue_stats st;
    queue_get_stats(b.q, &st);
    ASSERT_EQ(st.duplicates, 1);

    /* A new node's snapshot has x from the BQ. */
    node_open(&c, w, "c", NULL);
    node_read(&c);
    run_until_delivered(&c, 2);
    ASSERT_EQ(queue_state_get(c.q, "process:x"), QUEUE_HA_FAILED);

    /* Once b's checkpoint is written, the BQ can go. */
    run_until_checkpointed(&b, 2);
    run_for(w, 20);
    ASSERT_EQ(count_keys(w, PREFIX "state/"), 2);
    const char *abc[] = {"a", "b", "c"};
    run_until_delivered(&a, 2);
    run_for(w, 20);
    ASSERT_EQ(prune_wait(&b, abc, 3), 2);
    ASSERT_EQ(count_keys(w, PREFIX "bq/"), 0);
    node_close(&a);
    node_close(&b);
    node_close(&c);
    world_free(w);
}

TEST(queue_batching_10000_events) {
    struct world *w = world_new();
    struct node a, b;
    node_open(&a, w, "a", NULL);
    node_open(&b, w, "b", NULL);
    ASSERT_OK(eq_consumer_start(a.q, NULL, NULL, on_stopped, &a));
    node_read(&a);
    node_read(&b);

    /* 100 objects; each event flips its object's state, so every one is published. */
    enum { N = 10000, OBJECTS = 100 };
    struct queue_event *evs = calloc(N, sizeof(*evs));
    ASSERT(evs);
    for (size_t i = 0; i < N; i++) {
        char object[32];
        snprintf(object, sizeof(object), "process:p%zu", i % OBJECTS);
        evs[i] = event(object, (i / OBJECTS) % 2 ? QUEUE_HA_ONLINE : QUEUE_HA_FAILED);
        evs[i].epoch = (int64_t)i;
    }
    unsigned txns0 = w->w->txns;
    append_wait(&a, evs, N);
    run_until_delivered(&a, N);
    run_until_delivered(&b, N);
    run_for(w, 20);
    run_until_checkpointed(&a, N);
    unsigned batches = w->w->guarded_txns, appends = w->w->append_txns;
    fprintf(stderr, "  %u events: %u append txns, %u consumer txns, %u txns in all\n", N, appends, batches,
            w->w->txns - txns0);
    ASSERT(appends <= (N + STORE_TXN_OPS_MAX - 1) / STORE_TXN_OPS_MAX);
    ASSERT(batches < N / 20);
    ASSERT(w->w->txns - txns0 < N / 10);

    /* Nothing lost or reordered: each node saw every event, in append order. */
    assert_same_delivery(&a, &b);
    ASSERT_EQ(a.n, N);
    for (size_t i = 0; i < N; i++) {
        char object[32];
        snprintf(object, sizeof(object), "process:p%zu", i % OBJECTS);
        ASSERT_STREQ(a.objects[i], object);
        ASSERT_EQ(a.states[i], (i / OBJECTS) % 2 ? QUEUE_HA_ONLINE : QUEUE_HA_FAILED);
    }
    struct queue_stats st;
    queue_get_stats(a.q, &st);
    ASSERT_EQ(st.consumed, N);
    ASSERT_EQ(st.published, N);
    ASSERT_EQ(st.consumer_txns, batches);
    ASSERT_EQ(count_keys(w, PREFIX "eq/"), 0);
    ASSERT_EQ(count_keys(w, PREFIX "state/"), OBJECTS);
    ASSERT(!a.stopped);
    free(evs);
    node_close(&a);
    node_close(&b);
    world_free(w);
}

/* Events written straight to the store, more than the history holds, while
 * the consumer's and the reader's first reads are on their way: their watches
 * start in compacted history (-ESTALE) and they read everything again. */
TEST(queue_compacted_history_is_read_again) {
    struct world *w = world_new();
    struct node a, b;
    node_open(&a, w, "a", NULL);
    node_open(&b, w, "b", NULL);
    ASSERT_OK(eq_consumer_start(a.q, NULL, NULL, on_stopped, &a));
    node_read(&b);

    enum { CHUNKS = (STORE_ENGINE_HISTORY_MAX / 100) + 4 };
    char keys[100][64], values[100][256];
    for (int c = 0; c < CHUNKS; c++) {
        store_op ops[100];
        for (int i = 0; i < 100; i++) {
            snprintf(keys[i], sizeof(keys[i]), PREFIX "eq/x/%020d", c * 100 + i + 1);
            snprintf(values[i], sizeof(values[i]),
                     "{\"object\":\"device:d%d\",\"state\":\"FAILED\",\"node\":\"x\",\"hlc\":\"%d\"}", c * 100 + i,
                     c * 100 + i + 1);
            ops[i] = (store_op){.type = STORE_OP_PUT,
                                .key = keys[i],
                                .key_len = strlen(keys[i]),
                                .value = values[i],
                                .value_len = strlen(values[i])};
        }
        store_txn txn = {.success = ops, .n_success = 100};
        ASSERT_OK(store_transaction(w->s, &txn, NULL, NULL));
    }
    run_until_delivered(&b, CHUNKS * 100);
    run_for(w, 20);
    ASSERT_EQ(b.n, CHUNKS * 100);
    for (size_t i = 0; i < b.n; i++) {
        char object[32];
        snprintf(object, sizeof(object), "device:d%zu", i);
        ASSERT_STREQ(b.objects[i], object);
    }
    ASSERT_EQ(count_keys(w, PREFIX "eq/"), 0);
    ASSERT(!a.stopped && !b.stopped);
    node_close(&a);
    node_close(&b);
    world_free(w);
}

TEST(queue_invalid_entries_in_the_store_are_skipped) {
    struct world *w = world_new();
    struct node a, b;
    node_open(&a, w, "a", NULL);
    node_open(&b, w, "b", NULL);
    put(w, PREFIX "eq/x/1", "not json");
    put(w, PREFIX "eq/x/2", "{\"object\":\"su:a/b\",\"state\":\"FAILED\",\"node\":\"x\"}");
    put(w, PREFIX "state/garbage", "[]");
    put(w, PREFIX "bq-delivered/b", "\"many\"");
    ASSERT_OK(eq_consumer_start(a.q, NULL, NULL, on_stopped, &a));
    node_read(&b);
    append_one(&a, "su:ok", QUEUE_HA_FAILED);
    run_until_delivered(&b, 1);
    run_for(w, 20);
    ASSERT_EQ(b.n, 1);
    ASSERT_STREQ(b.objects[0], "su:ok");
    ASSERT_EQ(count_keys(w, PREFIX "eq/"), 0);
    struct queue_stats st;
    queue_get_stats(a.q, &st);
    ASSERT_EQ(st.dropped, 2);

    /* A garbage BQ entry is skipped by readers, but counts as read. */
    put(w, PREFIX "bq/00000000000000000002", "{}");
    put(w, PREFIX "bq-seq", "2");
    append_one(&a, "su:ok", QUEUE_HA_ONLINE); /* bq-seq moved under the consumer: it reads again */
    run_until_delivered(&b, 3);
    run_for(w, 20);
    ASSERT_EQ(b.n, 2);
    ASSERT_EQ(b.seqs[1], 3);
    ASSERT_EQ(b.states[1], QUEUE_HA_ONLINE);
    ASSERT(!a.stopped);
    node_close(&a);
    node_close(&b);
    world_free(w);
}

TEST(queue_store_errors_are_retried) {
    struct world *w = world_new();
    struct node a, b;
    node_open(&a, w, "a", NULL);
    node_open(&b, w, "b", NULL);
    ASSERT_OK(eq_consumer_start(a.q, NULL, NULL, on_stopped, &a));
    node_read(&b);

    /* An append fails twice, then lands once. */
    w->w->fail_prefix = PREFIX "eq/";
    w->w->fail_error = -EIO;
    w->w->fail_count = 2;
    append_one(&a, "service:s", QUEUE_HA_FAILED);
    ASSERT_EQ(w->w->fail_count, 0);
    run_until_delivered(&b, 1);

    /* A batch fails: read again, published once. */
    w->w->fail_prefix = PREFIX "bq/";
    w->w->fail_count = 1;
    append_one(&a, "service:s", QUEUE_HA_ONLINE);
    run_until_delivered(&b, 2);
    ASSERT_EQ(w->w->fail_count, 0);

    /* An offset write fails: written later. */
    w->w->fail_prefix = PREFIX "bq-delivered/";
    w->w->fail_count = 1;
    append_one(&a, "service:s", QUEUE_HA_FAILED);
    run_until_delivered(&b, 3);
    run_for(w, 400);
    char *v = get_value(w, PREFIX "bq-delivered/b");
    ASSERT_STREQ(v, "3");
    free(v);
    ASSERT_EQ(count_keys(w, PREFIX "bq/"), 3);
    ASSERT_EQ(b.n, 3);

    /* An append that keeps failing reports its error after a few attempts. */
    w->w->fail_prefix = PREFIX "eq/";
    w->w->fail_count = 100;
    struct queue_event ev = event("service:s", QUEUE_HA_ONLINE);
    struct append_result r = {0};
    ASSERT_OK(eq_append(a.q, &ev, 1, on_appended, &r));
    run_until(w, &r.done);
    ASSERT_EQ(r.error, -EIO);
    ASSERT_EQ(r.n, 0);
    w->w->fail_count = 0;
    ASSERT(!a.stopped && !b.stopped);
    node_close(&a);
    node_close(&b);
    world_free(w);
}

/* Calls made one after the other keep their order in the EQ, even when the
 * first one's transaction fails and is retried while the others wait. */
TEST(queue_appends_keep_call_order_across_a_retry) {
    struct world *w = world_new();
    struct node a;
    node_open_coordinator(&a, w, "a");
    w->w->fail_prefix = PREFIX "eq/";
    w->w->fail_error = -EIO;
    w->w->fail_count = 1;
    enum { CALLS = 6 };
    struct append_result r[CALLS] = {{0}};
    for (int i = 0; i < CALLS; i++) {
        struct queue_event ev = event("process:p", i % 2 ? QUEUE_HA_ONLINE : QUEUE_HA_FAILED);
        ASSERT_OK(eq_append(a.q, &ev, 1, on_appended, &r[i]));
    }
    for (int i = 0; i < CALLS; i++) {
        run_until(w, &r[i].done);
        ASSERT_OK(r[i].error);
        ASSERT_EQ(r[i].n, 1);
    }
    ASSERT_EQ(w->w->fail_count, 0);
    run_until_delivered(&a, CALLS);
    run_for(w, 20);
    /* Every flip published, in call order: none taken for a duplicate. */
    ASSERT_EQ(a.n, CALLS);
    for (int i = 0; i < CALLS; i++)
        ASSERT_EQ(a.states[i], i % 2 ? QUEUE_HA_ONLINE : QUEUE_HA_FAILED);
    struct queue_stats st;
    queue_get_stats(a.q, &st);
    ASSERT_EQ(st.duplicates, 0);
    /* The five calls made while the first was retried went out together. */
    ASSERT(st.append_txns <= 2);
    node_close(&a);
    world_free(w);
}

TEST(queue_append_never_overwrites_an_earlier_key) {
    struct world *w = world_new();
    uint64_t now = UINT64_C(1795342272345);
    struct hlc clock;
    hlc_init(&clock, fixed_ms, &now);
    struct node a;
    node_open(&a, w, "a", &clock);
    /* The next stamps are (now, 0) for the event, (now, 1) for its key: a
     * previous incarnation left that key, and one more, behind. */
    char key[128];
    snprintf(key, sizeof(key), PREFIX "eq/a/%020" PRIu64, hlc_make(now, 1));
    put(w, key, "{\"object\":\"node:old\",\"state\":\"FAILED\",\"node\":\"a\"}");
    snprintf(key, sizeof(key), PREFIX "eq/a/%020" PRIu64, hlc_make(now, 5));
    put(w, key, "{\"object\":\"node:old\",\"state\":\"ONLINE\",\"node\":\"a\"}");
    append_one(&a, "node:new", QUEUE_HA_FAILED);
    struct read_result x;
    range(w, PREFIX "eq/a/", &x);
    ASSERT_EQ(x.n_kvs, 3);
    /* In key order: the old (now, 1), ours moved past it to (now, 2), the old (now, 5). */
    ASSERT(strstr(x.values[0], "node:old") && strstr(x.values[0], "FAILED"));
    ASSERT(strstr(x.values[1], "node:new"));
    ASSERT(strstr(x.values[2], "node:old") && strstr(x.values[2], "ONLINE"));
    snprintf(key, sizeof(key), PREFIX "eq/a/%020" PRIu64, hlc_make(now, 2));
    ASSERT_STREQ(x.keys[1], key);
    read_done(&x);

    /* A timestamp from the future is refused; an empty node is this one's. */
    struct queue_event ev = event("node:n", QUEUE_HA_FAILED);
    ev.hlc = hlc_make(now + HLC_MAX_DRIFT_MS + 1000, 0);
    ASSERT_EQ(eq_append(a.q, &ev, 1, NULL, NULL), -ERANGE);
    ev.hlc = 0;
    snprintf(ev.node, sizeof(ev.node), "bad/node");
    ASSERT_EQ(eq_append(a.q, &ev, 1, NULL, NULL), -EINVAL);
    ASSERT_EQ(eq_append(a.q, &ev, 0, NULL, NULL), -EINVAL);
    node_close(&a);
    world_free(w);
}

static void on_append_cancelled(struct queue *q, int error, size_t n, void *userdata) {
    int *e = userdata;
    *e = error;
}

static void on_prune_cancelled(struct queue *q, int error, uint64_t n, void *userdata) {
    int *e = userdata;
    *e = error;
}

TEST(queue_free_with_calls_in_flight) {
    struct world *w = world_new();
    struct node a;
    node_open(&a, w, "a", NULL);
    ASSERT_OK(eq_consumer_start(a.q, NULL, NULL, on_stopped, &a));
    node_read(&a);
    struct queue_event ev = event("node:n", QUEUE_HA_FAILED);
    int append_error = 1, prune_error = 1;
    const char *nodes[] = {"a"};
    ASSERT_OK(eq_append(a.q, &ev, 1, on_append_cancelled, &append_error));
    ASSERT_OK(bq_prune(a.q, nodes, 1, on_prune_cancelled, &prune_error));
    /* Freed with the loads, the append and the prune in flight. */
    node_close(&a);
    ASSERT_EQ(append_error, -ECANCELED);
    ASSERT_EQ(prune_error, -ECANCELED);
    ASSERT(!a.stopped);
    run_for(w, 10);
    world_free(w);

    /* Freed in the middle of a delivery, from the deliver callback. */
    w = world_new();
    node_open(&a, w, "a", NULL);
    ASSERT_OK(eq_consumer_start(a.q, NULL, NULL, on_stopped, &a));
    struct queue_event evs[3] = {event("node:x", QUEUE_HA_FAILED), event("node:y", QUEUE_HA_FAILED),
                                 event("node:z", QUEUE_HA_FAILED)};
    append_wait(&a, evs, 3);
    run_for(w, 20);
    a.free_in_deliver = true;
    node_read(&a);
    run_for(w, 20);
    ASSERT(!a.q);
    ASSERT_EQ(a.n, 1);
    node_forget(&a);
    world_free(w);
}

TEST(queue_store_freed_first) {
    struct world *w = world_new();
    struct node a, b;
    node_open(&a, w, "a", NULL);
    node_open(&b, w, "b", NULL);
    ASSERT_OK(eq_consumer_start(a.q, NULL, NULL, on_stopped, &a));
    node_read(&b);
    append_one(&a, "node:n", QUEUE_HA_FAILED);
    run_until_delivered(&b, 1);
    struct queue_event ev = event("node:n", QUEUE_HA_ONLINE);
    int append_error = 1;
    ASSERT_OK(eq_append(a.q, &ev, 1, on_append_cancelled, &append_error));
    w->s = store_free(w->s);
    /* Everything stopped, and said so once. */
    ASSERT(a.stopped && b.stopped);
    ASSERT_EQ(a.stopped_error, -ECANCELED);
    ASSERT_EQ(b.stopped_error, -ECANCELED);
    ASSERT(append_error == 0 || append_error == -ECANCELED);
    ASSERT(!eq_consumer_running(a.q));
    ASSERT_EQ(eq_append(a.q, &ev, 1, NULL, NULL), -ECANCELED);
    ASSERT_EQ(bq_reader_start(b.q, on_deliver, on_stopped, &b), -ECANCELED);
    ASSERT_EQ(queue_state_get(b.q, "node:n"), QUEUE_HA_FAILED); /* queries still answer */
    run_for(w, 200);
    node_close(&a);
    node_close(&b);
    world_free(w);
}

/* ---- the recovery writer: epochs and failure vectors in the consumer's transactions ---- */

/* Two pools of 32 processes (p0 .. p31 on n1, p32 .. p63 on n2), one 2N group per pair. */
static struct config *two_pools(void) {
    size_t cap = 64 * 1024, len = 0;
    char *text = malloc(cap);
    ASSERT(text);
    len += (size_t)snprintf(text + len, cap - len,
                            "nodes: {n1: {}, n2: {}}\ndefaults: {component: {command: sleep}}\nservice-groups:\n");
    for (int g = 0; g < 32; g++)
        len += (size_t)snprintf(text + len, cap - len,
                                "  g%d:\n    service-units: {p%d: {node: n1}, p%d: {node: n2}}\n"
                                "    service-instances: {si%d: {csis: {c%d: {}}}}\n",
                                g, g, g + 32, g, g);
    len += (size_t)snprintf(text + len, cap - len, "pools:\n  a: {processes: [");
    for (int i = 0; i < 32; i++)
        len += (size_t)snprintf(text + len, cap - len, "%sp%d", i ? ", " : "", i);
    len += (size_t)snprintf(text + len, cap - len, "]}\n  b: {processes: [");
    for (int i = 32; i < 64; i++)
        len += (size_t)snprintf(text + len, cap - len, "%sp%d", i > 32 ? ", " : "", i);
    len += (size_t)snprintf(text + len, cap - len, "]}\n");
    struct config *c = description_load(text);
    free(text);
    return c;
}

struct recov {
    struct recovery_model *m;
    struct failvec *fv;
};

static int decide_recov(struct queue *q, const struct queue_event *ev, int current, enum queue_ha_state *ret,
                        void *userdata) {
    struct recov *r = userdata;
    char object[QUEUE_OBJECT_MAX];
    const char *why;
    ASSERT_OK(queue_event_object(ev, object));
    *ret = ev->state;
    return rm_decide(r->m, ev, current, failvec_epoch(r->fv, rm_owner(r->m, object)), &why);
}

static size_t expand_recov(struct queue *q, const struct queue_event *ev, struct queue_event *out, size_t max,
                           void *userdata) {
    struct recov *r = userdata;
    return rm_expand(r->m, ev, out, max);
}

/* The value of PREFIX "process:p<i>" + what, or PREFIX "failvec/process:p<i>" + what when vec. */
static char *value_of(struct world *w, bool vec, int i, const char *what) {
    char key[256];
    snprintf(key, sizeof(key), "%s%sprocess:p%d%s", PREFIX, vec ? "failvec/" : "", i, what);
    return get_value(w, key);
}

/* The entries of a process's vector of an epoch, its chunks in key order: a JSON array (caller decrefs). */
static json_t *vector_entries(struct world *w, const char *process, int epoch) {
    char under[256];
    snprintf(under, sizeof(under), PREFIX "failvec/%s/%d/", process, epoch);
    struct read_result x;
    range(w, under, &x);
    json_t *all = json_array();
    for (size_t k = 0; k < x.n_kvs; k++) {
        if (strstr(x.keys[k], "nr_failures"))
            continue;
        json_t *arr = json_loads(x.values[k], 0, NULL);
        ASSERT(json_is_array(arr));
        json_array_extend(all, arr);
        json_decref(arr);
    }
    read_done(&x);
    return all;
}

TEST(queue_writer_failure_vectors_over_several_transactions) {
    struct world *w = world_new();
    struct config *c = two_pools();
    struct recov rc = {0};
    struct node a;
    ASSERT_OK(rm_new(c, &rc.m));
    node_open(&a, w, "a", NULL);
    ASSERT_OK(failvec_new(w->s, a.q, PREFIX, rc.m, &rc.fv));
    eq_consumer_set_expand(a.q, expand_recov);
    eq_consumer_set_writer(a.q, &failvec_writer, rc.fv);
    ASSERT_OK(eq_consumer_start(a.q, NULL, decide_recov, NULL, &rc));
    node_read(&a);

    /* One entry of 64 first reports, alternating between the pools: each opens
     * its process's epoch and joins the vectors of the pool's processes before
     * it; 64 * 3 + 2 * 64 writes do not fit one transaction. */
    struct queue_event evs[64];
    for (int i = 0; i < 64; i++) {
        char object[32];
        int p = i % 2 ? 32 + i / 2 : i / 2;
        snprintf(object, sizeof(object), "process:p%d", p);
        ASSERT_OK(queue_event_init(&evs[i], object, QUEUE_HA_ONLINE));
    }
    unsigned before = w->w->guarded_txns;
    append_wait(&a, evs, 64);
    run_until_delivered(&a, 64);
    ASSERT(w->w->guarded_txns - before >= 3);
    for (size_t i = 0; i < a.n; i++) {
        ASSERT_EQ(a.seqs[i], i + 1); /* each once, in the order reported */
        char want[32];
        snprintf(want, sizeof(want), "process:p%d", i % 2 ? 32 + (int)i / 2 : (int)i / 2);
        ASSERT_STREQ(a.objects[i], want);
    }
    run_for(w, 20);
    ASSERT_EQ(count_keys(w, PREFIX "eq/"), 0); /* the rewritten rest consumed too */

    /* p_k's vector (epoch 0) holds the ONLINE of the pool's processes after it, in order. */
    for (int p = 0; p < 64; p++) {
        char *e = value_of(w, false, p, "/current_epoch");
        ASSERT_STREQ(e, "0");
        free(e);
        char *nr = value_of(w, true, p, "/0/nr_failures");
        int later = p < 32 ? 31 - p : 63 - p;
        ASSERT(nr);
        ASSERT_EQ(atoi(nr), later);
        free(nr);
        char process[32];
        snprintf(process, sizeof(process), "process:p%d", p);
        json_t *vec = vector_entries(w, process, 0);
        int next = p + 1;
        uint64_t last_seq = 0;
        size_t j;
        json_t *ev;
        json_array_foreach(vec, j, ev) {
            char want[32];
            snprintf(want, sizeof(want), "process:p%d", next++);
            ASSERT_STREQ(json_string_value(json_object_get(ev, "object")), want);
            ASSERT_EQ(json_integer_value(json_object_get(ev, "epoch")), 0);
            uint64_t seq = (uint64_t)json_integer_value(json_object_get(ev, "seq"));
            ASSERT(seq > last_seq);
            last_seq = seq;
        }
        ASSERT_EQ(json_array_size(vec), (size_t)later);
        json_decref(vec);
    }

    /* A failure reaches the whole pool's vectors (and no other): p3 has an
     * entry in p0's vector already (its ONLINE), which now says FAILED in its
     * place; a second epoch opens with the next ONLINE, which the rules let
     * only a recovery make. */
    append_one(&a, "process:p3", QUEUE_HA_FAILED);
    run_until_delivered(&a, 65);
    run_for(w, 20);
    char *nr = value_of(w, true, 0, "/0/nr_failures");
    ASSERT_STREQ(nr, "31");
    free(nr);
    struct read_result x;
    range(w, PREFIX "failvec/process:p0/0/", &x);
    int p3s = 0;
    for (size_t k = 0; k < x.n_kvs; k++)
        for (const char *at = x.values[k]; (at = strstr(at, "\"object\":\"process:p3\"")); at++, p3s++)
            ASSERT(strstr(x.values[k], "\"seq\":65,\"state\":\"FAILED\""));
    ASSERT_EQ(p3s, 1);
    read_done(&x);
    struct queue_event ev;
    ASSERT_OK(queue_event_init(&ev, "process:p3", QUEUE_HA_ONLINE));
    append_wait(&a, &ev, 1); /* refused: a pool process comes back by recovering */
    ASSERT_OK(queue_event_init(&ev, "process:p3", QUEUE_HA_TRANSIENT));
    snprintf(ev.node, sizeof(ev.node), "n1");
    ev.epoch = 0;
    append_wait(&a, &ev, 1);
    ASSERT_OK(queue_event_init(&ev, "process:p3", QUEUE_HA_RECOVERING));
    snprintf(ev.node, sizeof(ev.node), "n1");
    ev.epoch = 0;
    append_wait(&a, &ev, 1);
    ASSERT_OK(queue_event_init(&ev, "process:p3", QUEUE_HA_ONLINE));
    snprintf(ev.node, sizeof(ev.node), "n1");
    ev.epoch = 0;
    append_wait(&a, &ev, 1);
    run_until_delivered(&a, 68);
    /* The process's state is in state/ at once, with its epoch and vector (before a checkpoint round
     * has passed seq 68). */
    ASSERT(state_seq_of(&a) < 68);
    char *sv = get_value(w, PREFIX "state/process:p3");
    ASSERT(sv && strstr(sv, "\"state\":\"ONLINE\"") && strstr(sv, "\"seq\":68") && strstr(sv, "\"epoch\":1"));
    free(sv);
    run_for(w, 20);
    ASSERT_EQ(a.states[65], QUEUE_HA_TRANSIENT);
    ASSERT_EQ(a.states[66], QUEUE_HA_RECOVERING);
    ASSERT_EQ(a.states[67], QUEUE_HA_ONLINE);
    char *e = value_of(w, false, 3, "/current_epoch");
    ASSERT_STREQ(e, "1");
    free(e);
    e = value_of(w, true, 3, "/1");
    ASSERT(e && strstr(e, "\"epoch\":1") && strstr(e, "\"seq\":68"));
    free(e);
    nr = value_of(w, true, 3, "/1/nr_failures");
    ASSERT_STREQ(nr, "0");
    free(nr);
    /* Epoch 0 of p3: the later ONLINEs, then itself, once (its last step, RECOVERING). */
    nr = value_of(w, true, 3, "/0/nr_failures");
    ASSERT_STREQ(nr, "29");
    free(nr);

    node_close(&a);
    failvec_free(rc.fv);
    rm_free(rc.m);
    config_free(c);
    world_free(w);
}

/* A coordinator's consumer with the recovery writer, on node n of world w. */
static void recov_start(struct node *n, struct world *w, struct recov *rc) {
    node_open(n, w, "a", NULL);
    ASSERT_OK(failvec_new(w->s, n->q, PREFIX, rc->m, &rc->fv));
    eq_consumer_set_expand(n->q, expand_recov);
    eq_consumer_set_writer(n->q, &failvec_writer, rc->fv);
    ASSERT_OK(eq_consumer_start(n->q, NULL, decide_recov, NULL, rc));
    node_read(n);
}

static void recov_stop(struct node *n, struct recov *rc) {
    node_close(n);
    failvec_free(rc->fv);
    rc->fv = NULL;
}

/* The bytes of every key and value under prefix. */
static size_t bytes_under(struct world *w, const char *prefix) {
    struct read_result x;
    range(w, prefix, &x);
    size_t n = 0;
    for (size_t i = 0; i < x.n_kvs; i++)
        n += strlen(x.keys[i]) + strlen(x.values[i]);
    read_done(&x);
    return n;
}

/* A process's vector of an epoch as its chunks hold it, in key order: "object=STATE@seq ...". */
static char *vector_of(struct world *w, const char *process, int epoch) {
    char *out = calloc(1, 64 * 1024);
    size_t len = 0, j;
    ASSERT(out);
    json_t *vec = vector_entries(w, process, epoch), *ev;
    json_array_foreach(vec, j, ev) len += (size_t)snprintf(
        out + len, 64 * 1024 - len, "%s%s=%s@%lld", len ? " " : "", json_string_value(json_object_get(ev, "object")),
        json_string_value(json_object_get(ev, "state")), (long long)json_integer_value(json_object_get(ev, "seq")));
    json_decref(vec);
    return out;
}

/* Thousands of flips of a device within one epoch: the vectors keep one entry
 * per object (its last state, in the order of its first event), so their size
 * is bounded by the pool's objects, and a new coordinator carries on from them. */
TEST(queue_writer_vectors_compacted_per_object) {
    struct world *w = world_new();
    struct config *c = description_load("defaults: {component: {command: sleep}}\n"
                                        "service-groups:\n"
                                        "  g:\n"
                                        "    service-units:\n"
                                        "      p0: {}\n"
                                        "      p1: {component: {devices: [d]}}\n"
                                        "      p2: {}\n"
                                        "    service-instances: {si: {csis: {c: {}}}}\n"
                                        "pools:\n"
                                        "  a: {processes: [p0, p1, p2], tolerate: 1}\n");
    struct recov rc = {0};
    struct node a;
    ASSERT_OK(rm_new(c, &rc.m));
    recov_start(&a, w, &rc);
    struct queue_event evs[100];
    for (int i = 0; i < 3; i++) {
        char object[32];
        snprintf(object, sizeof(object), "process:p%d", i);
        evs[i] = event(object, QUEUE_HA_ONLINE);
    }
    append_wait(&a, evs, 3);
    run_until_delivered(&a, 3);

    /* 3,000 flips, 100 per entry: TRANSIENT, ONLINE, ... ending ONLINE. */
    for (int e = 0; e < 30; e++) {
        for (int i = 0; i < 100; i++)
            evs[i] = event("device:p1:d", (e * 100 + i) % 2 ? QUEUE_HA_ONLINE : QUEUE_HA_TRANSIENT);
        append_wait(&a, evs, 100);
    }
    run_until_delivered(&a, 3003);
    run_for(w, 20);
    /* Each vector: the ONLINEs after its own, then the device once; a few hundred bytes each. */
    size_t bytes = bytes_under(w, PREFIX "failvec/");
    ASSERT(bytes < 3 * 1024);
    char *v = vector_of(w, "process:p0", 0);
    ASSERT_STREQ(v, "process:p1=ONLINE@2 process:p2=ONLINE@3 device:p1:d=ONLINE@3003");
    free(v);
    v = vector_of(w, "process:p2", 0);
    ASSERT_STREQ(v, "device:p1:d=ONLINE@3003");
    free(v);
    char *nr = value_of(w, true, 0, "/0/nr_failures");
    ASSERT_STREQ(nr, "3");
    free(nr);

    /* A new coordinator reads the vectors back and keeps them compact: the
     * device's entry keeps its place, a new object joins at the end. */
    recov_stop(&a, &rc);
    recov_start(&a, w, &rc);
    evs[0] = event("device:p1:d", QUEUE_HA_TRANSIENT);
    evs[1] = event("process:p2", QUEUE_HA_FAILED);
    append_wait(&a, evs, 2);
    run_until_delivered(&a, 3005);
    run_for(w, 20);
    v = vector_of(w, "process:p0", 0);
    ASSERT_STREQ(v, "process:p1=ONLINE@2 process:p2=FAILED@3005 device:p1:d=TRANSIENT@3004");
    free(v);
    v = vector_of(w, "process:p2", 0);
    ASSERT_STREQ(v, "device:p1:d=TRANSIENT@3004 process:p2=FAILED@3005");
    free(v);
    nr = value_of(w, true, 2, "/0/nr_failures");
    ASSERT_STREQ(nr, "2");
    free(nr);
    ASSERT(bytes_under(w, PREFIX "failvec/") < bytes + 512);

    recov_stop(&a, &rc);
    rm_free(rc.m);
    config_free(c);
    world_free(w);
}
