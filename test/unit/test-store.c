/* SPDX-License-Identifier: MIT */
/* Store conformance suite: every test runs against every backend (memory, SQLite, etcd), plus SQLite's own tests. */
#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <netinet/in.h>
#include <signal.h>
#include <sqlite3.h>
#include <stdbool.h>
#include <stdint.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>
#include <uv.h>

#include "curl-dl.h"
#include "store-engine.h"

#include "macro.h"
#include "store.h"
#include "tests.h"

#ifdef __SANITIZE_ADDRESS__
#include <sanitizer/lsan_interface.h>
#endif

/* The local backends keep this many events of history (store-engine.h). */
#define HISTORY_MAX STORE_ENGINE_HISTORY_MAX
#define WREC_MAX 20000

/* ---- fixture: one store on its own loop, its files in a fresh directory ---- */

struct fixture;

static uint64_t now_msec(void) {
    return uv_hrtime() / 1000000;
}

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

static int open_memory(struct fixture *f) {
    return store_memory_new(&f->loop, &f->s);
}

static int open_sqlite(struct fixture *f) {
    return store_sqlite_new(&f->loop, f->path, &f->s);
}

#ifdef STORE_TEST_ETCD
static int open_etcd(struct fixture *f) {
    const char *const endpoints[] = {f->endpoint};
    return store_etcd_new(&f->loop, endpoints, 1, &f->s);
}
#endif

static const struct backend backends[] = {
    {"memory", false, open_memory, false},
    {"sqlite", true, open_sqlite, false},
#ifdef STORE_TEST_ETCD
    {"etcd", false, open_etcd, true},
#endif
};

static const struct backend *backend_sqlite = &backends[1];

/* CHECK_FAIL exits the test child: say which backend was under test. */
static const char *current_backend, *current_dir;

static void report_backend(void) {
    if (current_backend)
        fprintf(stderr, "  (backend '%s'%s%s)\n", current_backend, current_dir && *current_dir ? ", files in " : "",
                current_dir ? current_dir : "");
}

static void *tmem(struct fixture *f, size_t n) {
    void *p = calloc(1, n ? n : 1);
    ASSERT(p);
    if (f->n_garbage == f->cap_garbage) {
        f->cap_garbage = f->cap_garbage ? f->cap_garbage * 2 : 64;
        f->garbage = realloc(f->garbage, f->cap_garbage * sizeof(void *));
        ASSERT(f->garbage);
    }
    f->garbage[f->n_garbage++] = p;
    return p;
}

static char *tdup(struct fixture *f, const char *p, size_t n) {
    char *c = tmem(f, n + 1);
    if (n > 0)
        memcpy(c, p, n);
    return c;
}

/* ---- etcd: one fresh single-member server per fixture, on free loopback ports ---- */

/* A port that was free a moment ago (etcd binds it right after). */
static int free_port(void) {
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    ASSERT(fd >= 0);
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    socklen_t n = sizeof(a);
    ASSERT_OK(bind(fd, (struct sockaddr *)&a, sizeof(a)));
    ASSERT_OK(getsockname(fd, (struct sockaddr *)&a, &n));
    close(fd);
    return ntohs(a.sin_port);
}

static size_t on_discard(char *p, size_t size, size_t n, void *userdata) {
    return size * n;
}

/* A blocking POST (or GET without body) to the fixture's etcd; returns the HTTP status or -1. */
static long etcd_http(struct fixture *f, const char *path, const char *body) {
    char url[128];
    long status = -1;
    snprintf(url, sizeof(url), "%s%s", f->endpoint, path);
    ASSERT_OK(curl_dl_load()); /* the library the etcd backend loads */
    CURL *e = curl_easy_init();
    ASSERT(e);
    curl_easy_setopt(e, CURLOPT_URL, url);
    curl_easy_setopt(e, CURLOPT_TIMEOUT_MS, 1000L);
    curl_easy_setopt(e, CURLOPT_NOSIGNAL, 1L);
    curl_easy_setopt(e, CURLOPT_WRITEFUNCTION, on_discard);
    if (body)
        curl_easy_setopt(e, CURLOPT_POSTFIELDS, body);
    if (curl_easy_perform(e) == CURLE_OK)
        curl_easy_getinfo(e, CURLINFO_RESPONSE_CODE, &status);
    curl_easy_cleanup(e);
    return status;
}

static const char *etcd_binary(void) {
    const char *p = getenv("HALO_TEST_ETCD");
    return p ? p : "/usr/bin/etcd";
}

static void etcd_start(struct fixture *f) {
    char client[64], peer[64], cluster[96], data[128], log[128];
    if (!f->etcd_ports[0]) {
        f->etcd_ports[0] = free_port();
        do
            f->etcd_ports[1] = free_port();
        while (f->etcd_ports[1] == f->etcd_ports[0]);
    }
    int cport = f->etcd_ports[0], pport = f->etcd_ports[1];
    snprintf(client, sizeof(client), "http://127.0.0.1:%d", cport);
    snprintf(peer, sizeof(peer), "http://127.0.0.1:%d", pport);
    snprintf(cluster, sizeof(cluster), "t=%s", peer);
    snprintf(data, sizeof(data), "%s/data", f->dir);
    snprintf(log, sizeof(log), "%s/etcd.log", f->dir);
    snprintf(f->endpoint, sizeof(f->endpoint), "%s", client);

    fflush(NULL);
    pid_t pid = fork();
    ASSERT(pid >= 0);
    if (pid == 0) {
        /* Dies with the test child, even one killed by its timeout. */
        (void)prctl(PR_SET_PDEATHSIG, SIGKILL);
        int fd = open(log, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0644);
        if (fd >= 0) {
            (void)dup2(fd, 1);
            (void)dup2(fd, 2);
        }
        /* Short election timeout: leases down to 1 s (min TTL = 1.5 x election timeout). */
        execl(etcd_binary(), "etcd", "--name", "t", "--data-dir", data, "--listen-client-urls", client,
              "--advertise-client-urls", client, "--listen-peer-urls", peer, "--initial-advertise-peer-urls", peer,
              "--initial-cluster", cluster, "--initial-cluster-state", "new", "--heartbeat-interval", "50",
              "--election-timeout", "500", "--log-level", "warn", (char *)NULL);
        _exit(127);
    }
    f->etcd_pid = pid;
    uint64_t t0 = now_msec();
    while (etcd_http(f, "/health", NULL) != 200) {
        int status;
        if (waitpid(pid, &status, WNOHANG) == pid) {
            f->etcd_pid = 0;
            CHECK_FAIL("etcd exited (status %d) before answering; see %s", status, log);
        }
        if (now_msec() - t0 > 10000)
            CHECK_FAIL("etcd did not answer /health in 10 s; see %s", log);
        usleep(20 * 1000);
    }
}

static void etcd_stop(struct fixture *f) {
    if (f->etcd_pid <= 0)
        return;
    int status;
    (void)kill(f->etcd_pid, SIGTERM);
    for (int i = 0; i < 300; i++) {
        if (waitpid(f->etcd_pid, &status, WNOHANG) == f->etcd_pid) {
            f->etcd_pid = 0;
            return;
        }
        usleep(10 * 1000);
    }
    (void)kill(f->etcd_pid, SIGKILL);
    (void)waitpid(f->etcd_pid, &status, 0);
    f->etcd_pid = 0;
}

static int rm_one(const char *path, const struct stat *st, int flag, struct FTW *ftw) {
    return remove(path);
}

static struct fixture *fixture_open(const struct backend *b) {
    struct fixture *f = calloc(1, sizeof(*f));
    ASSERT(f);
    f->b = b;
    ASSERT_OK(uv_loop_init(&f->loop));
    if (b->persistent || b->etcd) {
        snprintf(f->dir, sizeof(f->dir), "/tmp/halo-test-store-XXXXXX");
        ASSERT(mkdtemp(f->dir));
        snprintf(f->path, sizeof(f->path), "%s/store.db", f->dir);
    }
    current_backend = b->name;
    current_dir = f->dir;
    if (b->etcd) {
        if (access(etcd_binary(), X_OK) < 0) {
            (void)rmdir(f->dir);
            CHECK_FAIL("'%s' not found: the etcd tests need etcd-server (tools/install-deps)", etcd_binary());
        }
        etcd_start(f);
    }
    ASSERT_OK(b->open(f));
    ASSERT_STREQ(store_backend_name(f->s), b->name);
    /* etcd: store_revision() is 0 until the store's first answer. */
    while (store_revision(f->s) == 0)
        if (uv_run(&f->loop, UV_RUN_ONCE) == 0 && store_revision(f->s) == 0)
            CHECK_FAIL("the store never learned its revision");
    return f;
}

/* Runs the loop until nothing is left alive in it; a recording callback's
 * uv_stop() only ends one pass.  Fails if something is still alive after that. */
static void run_dry(struct fixture *f) {
    for (int i = 0; i < 100; i++)
        if (uv_run(&f->loop, UV_RUN_DEFAULT) == 0)
            return;
    CHECK_FAIL("the loop still has live handles or requests");
}

/* Frees the store and runs the loop so that its handles close. */
static void fixture_close_store(struct fixture *f) {
    f->s = store_free(f->s);
    run_dry(f);
}

static void fixture_reopen(struct fixture *f) {
    fixture_close_store(f);
    ASSERT_OK(f->b->open(f));
}

static void leak_check(void) {
#ifdef __SANITIZE_ADDRESS__
    /* The harness ends each test with _exit(), which skips LeakSanitizer. */
    if (__lsan_do_recoverable_leak_check() != 0)
        CHECK_FAIL("memory leaked");
#endif
}

static void fixture_free(struct fixture *f) {
    fixture_close_store(f);
    /* Fails with UV_EBUSY if the store left a handle open. */
    ASSERT_EQ(uv_loop_close(&f->loop), 0);
    if (f->b->etcd) {
        etcd_stop(f);
        ASSERT_OK(nftw(f->dir, rm_one, 16, FTW_DEPTH | FTW_PHYS));
    } else if (f->dir[0]) {
        static const char *const suffixes[] = {"", "-wal", "-shm", "-journal"};
        for (size_t i = 0; i < ELEMENTSOF(suffixes); i++) {
            char p[160];
            snprintf(p, sizeof(p), "%s%s", f->path, suffixes[i]);
            (void)unlink(p);
        }
        ASSERT_OK(rmdir(f->dir));
    }
    for (size_t i = 0; i < f->n_garbage; i++)
        free(f->garbage[i]);
    free(f->garbage);
    free(f);
    current_backend = current_dir = NULL;
    leak_check();
}

static void for_each_backend(void (*check)(struct fixture *f)) {
    atexit(report_backend);
    for (size_t i = 0; i < ELEMENTSOF(backends); i++) {
        struct fixture *f = fixture_open(&backends[i]);
        check(f);
        fixture_free(f);
    }
}

/* Runs the loop until *calls is non-zero; fails if the loop runs dry first.
 * UV_RUN_ONCE runs due timers before it polls, so a callback can run there and
 * the poll after it would then block for good on an idle kept-alive
 * connection: every recording callback calls uv_stop() to end that iteration. */
static void run_until(struct fixture *f, const int *calls) {
    while (*calls == 0)
        if (uv_run(&f->loop, UV_RUN_ONCE) == 0 && *calls == 0)
            CHECK_FAIL("the loop ran dry before the callback ran");
}

static void on_run_for(uv_timer_t *t) {
    *(bool *)t->data = true;
}

/* Runs the loop for msec milliseconds. */
static void run_for(struct fixture *f, uint64_t msec) {
    uv_timer_t t;
    bool done = false;
    ASSERT_OK(uv_timer_init(&f->loop, &t));
    t.data = &done;
    ASSERT_OK(uv_timer_start(&t, on_run_for, msec, 0));
    while (!done)
        (void)uv_run(&f->loop, UV_RUN_ONCE);
    uv_close((uv_handle_t *)&t, NULL);
    (void)uv_run(&f->loop, UV_RUN_NOWAIT); /* t is on our stack: let the close finish */
}

/* A few loop iterations: enough for anything queued to be delivered. */
static void run_briefly(struct fixture *f) {
    for (int i = 0; i < 5; i++)
        (void)uv_run(&f->loop, UV_RUN_NOWAIT);
}

/* ---- call helpers: a call, a check that its callback did not run inside it, then a wait ---- */

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

static void copy_kv(struct fixture *f, struct tkv *d, const store_kv *s) {
    *d = (struct tkv){
        .key = tdup(f, s->key, s->key_len),
        .key_len = s->key_len,
        .value = tdup(f, s->value, s->value_len),
        .value_len = s->value_len,
        .create_revision = s->create_revision,
        .mod_revision = s->mod_revision,
        .version = s->version,
        .lease = s->lease,
    };
}

static void on_reply(store *s, int error, const store_result *res, void *userdata) {
    struct reply *r = userdata;
    ASSERT(s == r->f->s);
    r->calls++;
    uv_stop(&r->f->loop); /* the reply may run in the timers before a blocking poll */
    r->error = error;
    if (error < 0) {
        ASSERT(!res);
        return;
    }
    ASSERT(res);
    r->had_result = true;
    r->revision = res->revision;
    r->succeeded = res->succeeded;
    r->n_deleted = res->n_deleted;
    r->n_kvs = res->n_kvs;
    r->kvs = tmem(r->f, res->n_kvs * sizeof(struct tkv));
    for (size_t i = 0; i < res->n_kvs; i++)
        copy_kv(r->f, &r->kvs[i], &res->kvs[i]);
}

static void on_lease_reply(store *s, int error, int64_t lease, int64_t ttl, void *userdata) {
    struct reply *r = userdata;
    ASSERT(s == r->f->s);
    r->calls++;
    uv_stop(&r->f->loop); /* the reply may run in the timers before a blocking poll */
    r->error = error;
    r->lease = lease;
    r->ttl = ttl;
}

static struct reply *reply_new(struct fixture *f) {
    struct reply *r = tmem(f, sizeof(*r));
    r->f = f;
    return r;
}

/* The call returned rc; its callback must run later, exactly once. */
static struct reply *wait_reply(struct fixture *f, int rc, struct reply *r) {
    ASSERT_OK(rc);
    if (r->calls != 0)
        CHECK_FAIL("a callback ran inside the call that requested it");
    run_until(f, &r->calls);
    (void)uv_run(&f->loop, UV_RUN_NOWAIT);
    ASSERT_EQ(r->calls, 1);
    return r;
}

static struct reply *put_bin(struct fixture *f, const char *key, const char *value, size_t len, int64_t lease) {
    struct reply *r = reply_new(f);
    return wait_reply(f, store_put(f->s, key, value, len, lease, on_reply, r), r);
}

static struct reply *put_lease(struct fixture *f, const char *key, const char *value, int64_t lease) {
    return put_bin(f, key, value, strlen(value), lease);
}

static struct reply *put(struct fixture *f, const char *key, const char *value) {
    return put_lease(f, key, value, 0);
}

/* A put that must succeed; returns its revision. */
static int64_t put_ok(struct fixture *f, const char *key, const char *value) {
    struct reply *r = put(f, key, value);
    ASSERT_EQ(r->error, 0);
    return r->revision;
}

static struct reply *get(struct fixture *f, const char *key) {
    struct reply *r = reply_new(f);
    return wait_reply(f, store_get(f->s, key, on_reply, r), r);
}

static struct reply *range(struct fixture *f, const char *prefix) {
    struct reply *r = reply_new(f);
    return wait_reply(f, store_range(f->s, prefix, on_reply, r), r);
}

static struct reply *del(struct fixture *f, const char *key) {
    struct reply *r = reply_new(f);
    return wait_reply(f, store_delete(f->s, key, on_reply, r), r);
}

static struct reply *del_prefix(struct fixture *f, const char *prefix) {
    struct reply *r = reply_new(f);
    return wait_reply(f, store_delete_prefix(f->s, prefix, on_reply, r), r);
}

static struct reply *txn(struct fixture *f, const store_txn *t) {
    struct reply *r = reply_new(f);
    return wait_reply(f, store_transaction(f->s, t, on_reply, r), r);
}

static struct reply *lease_grant(struct fixture *f, int64_t ttl) {
    struct reply *r = reply_new(f);
    return wait_reply(f, store_lease_grant(f->s, ttl, on_lease_reply, r), r);
}

static struct reply *lease_keepalive(struct fixture *f, int64_t lease) {
    struct reply *r = reply_new(f);
    return wait_reply(f, store_lease_keepalive(f->s, lease, on_lease_reply, r), r);
}

static struct reply *lease_revoke(struct fixture *f, int64_t lease) {
    struct reply *r = reply_new(f);
    return wait_reply(f, store_lease_revoke(f->s, lease, on_lease_reply, r), r);
}

static bool kv_is(const struct tkv *kv, const char *key, const char *value) {
    return kv->key_len == strlen(key) && memcmp(kv->key, key, kv->key_len) == 0 &&
           (!value || (kv->value_len == strlen(value) && memcmp(kv->value, value, kv->value_len) == 0));
}

#define ASSERT_KV(kv_, k_, v_)                                                                          \
    do {                                                                                                \
        const struct tkv *_kv = (kv_);                                                                  \
        const char *_k = (k_), *_v = (v_);                                                              \
        if (!_kv || !kv_is(_kv, _k, _v))                                                                \
            CHECK_FAIL("expected key '%s' = '%s', got '%.*s' = '%.*s'", _k, _v ? _v : "*",              \
                       _kv ? (int)_kv->key_len : 0, _kv ? _kv->key : "", _kv ? (int)_kv->value_len : 0, \
                       _kv ? _kv->value : "");                                                          \
    } while (0)

/* The value of key, or NULL if it is missing. */
static const struct tkv *get_kv(struct fixture *f, const char *key) {
    struct reply *r = get(f, key);
    ASSERT_EQ(r->error, 0);
    ASSERT(r->n_kvs <= 1);
    return r->n_kvs ? &r->kvs[0] : NULL;
}

static store_op op_put(const char *key, const char *value, int64_t lease) {
    return (store_op){.type = STORE_OP_PUT,
                      .key = key,
                      .key_len = strlen(key),
                      .value = value,
                      .value_len = strlen(value),
                      .lease = lease};
}

static store_op op_key(store_op_type type, const char *key) {
    return (store_op){.type = type, .key = key, .key_len = strlen(key)};
}

/* ---- watch recorder ---- */

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

static void on_watch(store_watch *w, int error, const store_event *ev, size_t n, void *userdata) {
    struct wrec *r = userdata;
    ASSERT(w == r->w);
    if (r->ended)
        CHECK_FAIL("a watch callback ran after the watch ended");
    r->calls++;
    uv_stop(&r->f->loop);
    if (error < 0) {
        ASSERT(!ev);
        ASSERT_EQ(n, 0);
        r->error = error;
        r->ended = true;
        return;
    }
    ASSERT(ev);
    ASSERT(n > 0);
    for (size_t i = 0; i < n; i++) {
        ASSERT(r->n_events < WREC_MAX);
        if (ev[i].kv.mod_revision < r->last_revision)
            CHECK_FAIL("watch event out of order: revision %lld after %lld", (long long)ev[i].kv.mod_revision,
                       (long long)r->last_revision);
        r->last_revision = ev[i].kv.mod_revision;
        r->events[r->n_events].type = ev[i].type;
        copy_kv(r->f, &r->events[r->n_events].kv, &ev[i].kv);
        r->n_events++;
    }
    if (r->cancel_other && r->calls == 1)
        *r->cancel_other = store_watch_cancel(*r->cancel_other);
    if (r->cancel_self_after && r->calls == r->cancel_self_after)
        r->w = store_watch_cancel(w);
}

static struct wrec *watch(struct fixture *f, const char *prefix, int64_t start) {
    struct wrec *r = tmem(f, sizeof(*r));
    r->f = f;
    r->events = tmem(f, WREC_MAX * sizeof(struct tevent));
    ASSERT_OK(store_watch_prefix(f->s, prefix, start, on_watch, r, &r->w));
    ASSERT(r->w);
    if (r->calls != 0)
        CHECK_FAIL("a watch callback ran inside store_watch_prefix()");
    return r;
}

static void run_until_events(struct fixture *f, struct wrec *r, size_t n) {
    while (r->n_events < n && !r->ended)
        if (uv_run(&f->loop, UV_RUN_ONCE) == 0 && r->n_events < n)
            CHECK_FAIL("the loop ran dry with %zu of %zu watch events", r->n_events, n);
    ASSERT(!r->ended);
    ASSERT_EQ(r->n_events, n);
}

static void assert_event(const struct wrec *r, size_t i, store_event_type type, const char *key, int64_t rev) {
    ASSERT(i < r->n_events);
    const struct tevent *e = &r->events[i];
    if (e->type != type || !kv_is(&e->kv, key, NULL) || e->kv.mod_revision != rev)
        CHECK_FAIL("event %zu: expected %s '%s' at %lld, got %s '%.*s' at %lld", i,
                   type == STORE_EVENT_PUT ? "PUT" : "DELETE", key, (long long)rev,
                   e->type == STORE_EVENT_PUT ? "PUT" : "DELETE", (int)e->kv.key_len, e->kv.key,
                   (long long)e->kv.mod_revision);
    if (type == STORE_EVENT_DELETE)
        ASSERT_EQ(e->kv.value_len, 0);
}

/* ==== conformance suite ==== */

static void check_revisions(struct fixture *f) {
    struct reply *r;

    ASSERT_EQ(store_revision(f->s), 1);
    r = get(f, "a");
    ASSERT_EQ(r->error, 0);
    ASSERT_EQ(r->revision, 1);
    ASSERT_EQ(r->n_kvs, 0);

    ASSERT_EQ(put_ok(f, "a", "1"), 2);
    ASSERT_EQ(store_revision(f->s), 2);
    ASSERT_EQ(put_ok(f, "b", "2"), 3);

    /* One txn, three keys, one revision. */
    store_op ops[] = {op_put("c", "3", 0), op_put("d", "4", 0), op_key(STORE_OP_DELETE, "a")};
    r = txn(f, &(store_txn){.success = ops, .n_success = ELEMENTSOF(ops)});
    ASSERT_EQ(r->error, 0);
    ASSERT(r->succeeded);
    ASSERT_EQ(r->revision, 4);
    ASSERT_EQ(r->n_deleted, 1);
    ASSERT_EQ(store_revision(f->s), 4);

    /* Nothing that changes no key moves the revision. */
    ASSERT_EQ(get(f, "b")->revision, 4);
    ASSERT_EQ(range(f, "")->revision, 4);
    store_op gets[] = {op_key(STORE_OP_GET, "b"), op_key(STORE_OP_GET_PREFIX, "")};
    r = txn(f, &(store_txn){.success = gets, .n_success = ELEMENTSOF(gets)});
    ASSERT_EQ(r->revision, 4);
    ASSERT_EQ(r->n_kvs, 4); /* b, then b c d */
    store_compare never = {
        .key = "b", .key_len = 1, .target = STORE_CMP_VERSION, .result = STORE_CMP_EQUAL, .number = 99};
    r = txn(f, &(store_txn){.compares = &never, .n_compares = 1, .success = ops, .n_success = 2});
    ASSERT_EQ(r->error, 0);
    ASSERT(!r->succeeded);
    ASSERT_EQ(r->revision, 4);
    r = del(f, "missing");
    ASSERT_EQ(r->error, 0);
    ASSERT_EQ(r->n_deleted, 0);
    ASSERT_EQ(r->revision, 4);
    r = del_prefix(f, "zz");
    ASSERT_EQ(r->n_deleted, 0);
    ASSERT_EQ(r->revision, 4);
    ASSERT_EQ(store_revision(f->s), 4);

    r = del(f, "b");
    ASSERT_EQ(r->n_deleted, 1);
    ASSERT_EQ(r->revision, 5);
}
TEST(revisions) {
    for_each_backend(check_revisions);
}

static void check_get_range(struct fixture *f) {
    static const char *const keys[] = {"app/b", "b", "app/a", "app0", "app/c/x", "ap", "app", "apq", "app/\xff"};
    static const char *const all_sorted[] = {"ap", "app", "app/a", "app/b", "app/c/x", "app/\xff", "app0", "apq", "b"};
    struct reply *r;

    for (size_t i = 0; i < ELEMENTSOF(keys); i++)
        put_ok(f, keys[i], keys[i]);

    r = range(f, "");
    ASSERT_EQ(r->n_kvs, ELEMENTSOF(all_sorted));
    for (size_t i = 0; i < ELEMENTSOF(all_sorted); i++)
        ASSERT_KV(&r->kvs[i], all_sorted[i], all_sorted[i]);

    r = range(f, "app/");
    ASSERT_EQ(r->n_kvs, 4);
    ASSERT_KV(&r->kvs[0], "app/a", "app/a");
    ASSERT_KV(&r->kvs[1], "app/b", "app/b");
    ASSERT_KV(&r->kvs[2], "app/c/x", "app/c/x");
    ASSERT_KV(&r->kvs[3], "app/\xff", "app/\xff");
    ASSERT_EQ(r->revision, 1 + (int64_t)ELEMENTSOF(keys));

    r = range(f, "app");
    ASSERT_EQ(r->n_kvs, 6);
    ASSERT_KV(&r->kvs[0], "app", "app");
    ASSERT_KV(&r->kvs[5], "app0", "app0");

    r = range(f, "nothing/");
    ASSERT_EQ(r->error, 0);
    ASSERT(r->had_result);
    ASSERT_EQ(r->n_kvs, 0);
    ASSERT_EQ(r->revision, 1 + (int64_t)ELEMENTSOF(keys));

    /* get is exact, never a prefix. */
    r = get(f, "app");
    ASSERT_EQ(r->n_kvs, 1);
    ASSERT_KV(&r->kvs[0], "app", "app");
    ASSERT_EQ(get(f, "app/")->n_kvs, 0);
    ASSERT_EQ(get(f, "a")->n_kvs, 0);

    /* Values are bytes: NULs, empty, the largest allowed; keys up to the largest. */
    static const char bin[] = {'a', 0, 'b', 0};
    ASSERT_EQ(put_bin(f, "bin", bin, sizeof(bin), 0)->error, 0);
    const struct tkv *kv = get_kv(f, "bin");
    ASSERT(kv);
    ASSERT_EQ(kv->value_len, sizeof(bin));
    ASSERT(memcmp(kv->value, bin, sizeof(bin)) == 0);
    ASSERT_EQ(put_bin(f, "empty", NULL, 0, 0)->error, 0);
    kv = get_kv(f, "empty");
    ASSERT(kv);
    ASSERT_EQ(kv->value_len, 0);

    char *big = malloc(STORE_VALUE_MAX);
    ASSERT(big);
    for (size_t i = 0; i < STORE_VALUE_MAX; i++)
        big[i] = (char)(i * 7 + 3);
    char longkey[STORE_KEY_MAX + 1];
    memset(longkey, 'k', STORE_KEY_MAX);
    longkey[STORE_KEY_MAX] = 0;
    ASSERT_EQ(put_bin(f, longkey, big, STORE_VALUE_MAX, 0)->error, 0);
    kv = get_kv(f, longkey);
    ASSERT(kv);
    ASSERT_EQ(kv->key_len, STORE_KEY_MAX);
    ASSERT_EQ(kv->value_len, STORE_VALUE_MAX);
    ASSERT(memcmp(kv->value, big, STORE_VALUE_MAX) == 0);
    free(big);
}
TEST(get_and_range) {
    for_each_backend(check_get_range);
}

/* keys_only: the keys and revisions of a get or range, in order, with every value empty. */
static void check_keys_only(struct fixture *f) {
    struct reply *r;

    put_ok(f, "q/1", "a long value, not wanted back");
    put_ok(f, "q/2", "two");
    int64_t rev = put_ok(f, "q/2", "two again");
    put_ok(f, "qq", "outside");
    put_ok(f, "qr", "wanted");
    store_op gets[] = {op_key(STORE_OP_GET_PREFIX, "q/"), op_key(STORE_OP_GET, "qq"), op_key(STORE_OP_GET, "qr")};
    gets[0].keys_only = gets[1].keys_only = true;
    r = txn(f, &(store_txn){.success = gets, .n_success = ELEMENTSOF(gets)});
    ASSERT_EQ(r->error, 0);
    ASSERT_EQ(r->n_kvs, 4);
    ASSERT_KV(&r->kvs[0], "q/1", "");
    ASSERT_KV(&r->kvs[1], "q/2", "");
    ASSERT_EQ(r->kvs[1].mod_revision, rev);
    ASSERT_EQ(r->kvs[1].version, 2);
    ASSERT_KV(&r->kvs[2], "qq", "");
    ASSERT_KV(&r->kvs[3], "qr", "wanted"); /* without the flag, the value */

    /* Only reads can leave values out. */
    store_op put = op_put("q/3", "x", 0);
    put.keys_only = true;
    r = reply_new(f);
    ASSERT_EQ(store_transaction(f->s, &(store_txn){.success = &put, .n_success = 1}, on_reply, r), -EINVAL);
    ASSERT_EQ(r->calls, 0);
    ASSERT(!get_kv(f, "q/3"));
}
TEST(keys_only) {
    for_each_backend(check_keys_only);
}

static void check_versions(struct fixture *f) {
    const struct tkv *kv;
    struct reply *r;

    put_ok(f, "k", "1");
    kv = get_kv(f, "k");
    ASSERT(kv);
    ASSERT_EQ(kv->create_revision, 2);
    ASSERT_EQ(kv->mod_revision, 2);
    ASSERT_EQ(kv->version, 1);
    ASSERT_EQ(kv->lease, 0);

    put_ok(f, "k", "1"); /* the same value is still a write */
    put_ok(f, "other", "x");
    ASSERT_EQ(put_ok(f, "k", "3"), 5);
    kv = get_kv(f, "k");
    ASSERT_KV(kv, "k", "3");
    ASSERT_EQ(kv->create_revision, 2);
    ASSERT_EQ(kv->mod_revision, 5);
    ASSERT_EQ(kv->version, 3);

    r = del(f, "k");
    ASSERT_EQ(r->error, 0);
    ASSERT_EQ(r->n_deleted, 1);
    ASSERT_EQ(r->revision, 6);
    ASSERT(!get_kv(f, "k"));
    r = del(f, "k");
    ASSERT_EQ(r->n_deleted, 0);
    ASSERT_EQ(r->revision, 6);

    /* A re-created key starts over. */
    ASSERT_EQ(put_ok(f, "k", "again"), 7);
    kv = get_kv(f, "k");
    ASSERT_EQ(kv->create_revision, 7);
    ASSERT_EQ(kv->mod_revision, 7);
    ASSERT_EQ(kv->version, 1);

    /* delete_prefix: only the prefix, all in one revision. */
    put_ok(f, "p/1", "");
    put_ok(f, "p/2", "");
    put_ok(f, "p/3/x", "");
    int64_t before = put_ok(f, "pq", "");
    r = del_prefix(f, "p/");
    ASSERT_EQ(r->error, 0);
    ASSERT_EQ(r->n_deleted, 3);
    ASSERT_EQ(r->revision, before + 1);
    r = range(f, "p");
    ASSERT_EQ(r->n_kvs, 1);
    ASSERT_KV(&r->kvs[0], "pq", "");
}
TEST(versions_and_deletes) {
    for_each_backend(check_versions);
}

struct cmp_case {
    const char *key;
    store_compare_target target;
    store_compare_result result;
    const char *value;
    int64_t number;
    bool holds;
};

static void check_txn_compares(struct fixture *f) {
    /* "k": value "m", version 2, create 2, mod 3; "gone" does not exist. */
    static const struct cmp_case cases[] = {
        {"k", STORE_CMP_VALUE, STORE_CMP_EQUAL, "m", 0, true},
        {"k", STORE_CMP_VALUE, STORE_CMP_EQUAL, "n", 0, false},
        {"k", STORE_CMP_VALUE, STORE_CMP_NOT_EQUAL, "n", 0, true},
        {"k", STORE_CMP_VALUE, STORE_CMP_NOT_EQUAL, "m", 0, false},
        {"k", STORE_CMP_VALUE, STORE_CMP_LESS, "n", 0, true},
        {"k", STORE_CMP_VALUE, STORE_CMP_LESS, "l", 0, false},
        {"k", STORE_CMP_VALUE, STORE_CMP_LESS, "mm", 0, true}, /* a proper prefix is smaller */
        {"k", STORE_CMP_VALUE, STORE_CMP_GREATER, "l", 0, true},
        {"k", STORE_CMP_VALUE, STORE_CMP_GREATER, "m", 0, false},
        {"k", STORE_CMP_VALUE, STORE_CMP_GREATER, "", 0, true},
        {"k", STORE_CMP_VERSION, STORE_CMP_EQUAL, NULL, 2, true},
        {"k", STORE_CMP_VERSION, STORE_CMP_EQUAL, NULL, 1, false},
        {"k", STORE_CMP_VERSION, STORE_CMP_NOT_EQUAL, NULL, 1, true},
        {"k", STORE_CMP_VERSION, STORE_CMP_NOT_EQUAL, NULL, 2, false},
        {"k", STORE_CMP_VERSION, STORE_CMP_LESS, NULL, 3, true},
        {"k", STORE_CMP_VERSION, STORE_CMP_LESS, NULL, 2, false},
        {"k", STORE_CMP_VERSION, STORE_CMP_GREATER, NULL, 1, true},
        {"k", STORE_CMP_VERSION, STORE_CMP_GREATER, NULL, 2, false},
        {"k", STORE_CMP_CREATE, STORE_CMP_EQUAL, NULL, 2, true},
        {"k", STORE_CMP_CREATE, STORE_CMP_EQUAL, NULL, 3, false},
        {"k", STORE_CMP_CREATE, STORE_CMP_LESS, NULL, 3, true},
        {"k", STORE_CMP_CREATE, STORE_CMP_GREATER, NULL, 2, false},
        {"k", STORE_CMP_CREATE, STORE_CMP_GREATER, NULL, 1, true},
        {"k", STORE_CMP_MOD, STORE_CMP_EQUAL, NULL, 3, true},
        {"k", STORE_CMP_MOD, STORE_CMP_EQUAL, NULL, 2, false},
        {"k", STORE_CMP_MOD, STORE_CMP_NOT_EQUAL, NULL, 3, false},
        {"k", STORE_CMP_MOD, STORE_CMP_GREATER, NULL, 2, true},
        {"k", STORE_CMP_MOD, STORE_CMP_LESS, NULL, 3, false},
        {"k", STORE_CMP_MOD, STORE_CMP_LESS, NULL, 4, true},
        /* A missing key: 0 for numbers, every value compare false. */
        {"gone", STORE_CMP_VERSION, STORE_CMP_EQUAL, NULL, 0, true},
        {"gone", STORE_CMP_VERSION, STORE_CMP_LESS, NULL, 1, true},
        {"gone", STORE_CMP_CREATE, STORE_CMP_EQUAL, NULL, 0, true},
        {"gone", STORE_CMP_MOD, STORE_CMP_EQUAL, NULL, 0, true},
        {"gone", STORE_CMP_MOD, STORE_CMP_GREATER, NULL, 0, false},
        {"gone", STORE_CMP_VALUE, STORE_CMP_EQUAL, "", 0, false},
        {"gone", STORE_CMP_VALUE, STORE_CMP_NOT_EQUAL, "x", 0, false},
        {"gone", STORE_CMP_VALUE, STORE_CMP_GREATER, "", 0, false},
    };

    put_ok(f, "k", "x");
    ASSERT_EQ(put_ok(f, "k", "m"), 3);

    for (size_t i = 0; i < ELEMENTSOF(cases); i++) {
        const struct cmp_case *c = &cases[i];
        store_compare cmp = {
            .key = c->key,
            .key_len = strlen(c->key),
            .target = c->target,
            .result = c->result,
            .value = c->value,
            .value_len = c->value ? strlen(c->value) : 0,
            .number = c->number,
        };
        store_op yes = op_put("out", "success", 0), no = op_put("out", "failure", 0);
        int64_t before = store_revision(f->s);
        struct reply *r = txn(
            f, &(store_txn){
                   .compares = &cmp, .n_compares = 1, .success = &yes, .n_success = 1, .failure = &no, .n_failure = 1});
        ASSERT_EQ(r->error, 0);
        if (r->succeeded != c->holds)
            CHECK_FAIL("compare case %zu: expected %s", i, c->holds ? "success" : "failure");
        ASSERT_EQ(r->revision, before + 1);
        ASSERT_KV(get_kv(f, "out"), "out", c->holds ? "success" : "failure");
    }

    /* Every compare must hold. */
    store_compare both[] = {
        {.key = "k", .key_len = 1, .target = STORE_CMP_VALUE, .result = STORE_CMP_EQUAL, .value = "m", .value_len = 1},
        {.key = "k", .key_len = 1, .target = STORE_CMP_VERSION, .result = STORE_CMP_EQUAL, .number = 7},
    };
    struct reply *r = txn(f, &(store_txn){.compares = both, .n_compares = 2});
    ASSERT(!r->succeeded);
    both[1].number = 2;
    r = txn(f, &(store_txn){.compares = both, .n_compares = 2});
    ASSERT(r->succeeded);
}
TEST(txn_compares) {
    for_each_backend(check_txn_compares);
}

static void check_txn_atomic(struct fixture *f) {
    struct reply *r;

    put_ok(f, "a", "old");
    int64_t rev = put_ok(f, "c", "doomed");

    /* Several keys at one revision; a GET sees the txn's own earlier put. */
    store_op ops[] = {op_put("a", "new", 0), op_put("b", "born", 0), op_key(STORE_OP_DELETE, "c"),
                      op_key(STORE_OP_GET, "a"), op_key(STORE_OP_GET_PREFIX, "")};
    r = txn(f, &(store_txn){.success = ops, .n_success = ELEMENTSOF(ops)});
    ASSERT_EQ(r->error, 0);
    ASSERT_EQ(r->revision, rev + 1);
    ASSERT_EQ(r->n_deleted, 1);
    ASSERT_EQ(r->n_kvs, 3); /* a; then a b */
    ASSERT_KV(&r->kvs[0], "a", "new");
    ASSERT_EQ(r->kvs[0].mod_revision, rev + 1);
    ASSERT_KV(&r->kvs[1], "a", "new");
    ASSERT_KV(&r->kvs[2], "b", "born");
    ASSERT_EQ(get_kv(f, "a")->mod_revision, rev + 1);
    ASSERT_EQ(get_kv(f, "b")->mod_revision, rev + 1);
    ASSERT(!get_kv(f, "c"));

    /* A failed compare runs the failure branch, atomically too. */
    store_compare cmp = {
        .key = "a", .key_len = 1, .target = STORE_CMP_VALUE, .result = STORE_CMP_EQUAL, .value = "old", .value_len = 3};
    store_op yes[] = {op_put("x", "1", 0)};
    store_op no[] = {op_put("y", "1", 0), op_put("z", "1", 0), op_key(STORE_OP_GET, "a")};
    r = txn(f, &(store_txn){.compares = &cmp,
                            .n_compares = 1,
                            .success = yes,
                            .n_success = 1,
                            .failure = no,
                            .n_failure = ELEMENTSOF(no)});
    ASSERT_EQ(r->error, 0);
    ASSERT(!r->succeeded);
    ASSERT_EQ(r->revision, rev + 2);
    ASSERT_EQ(r->n_kvs, 1);
    ASSERT_KV(&r->kvs[0], "a", "new");
    ASSERT(!get_kv(f, "x"));
    ASSERT_EQ(get_kv(f, "y")->mod_revision, rev + 2);
    ASSERT_EQ(get_kv(f, "z")->mod_revision, rev + 2);

    /* One op fails while executing (unknown lease): nothing of the txn is applied. */
    store_op bad[] = {op_put("a", "lost", 0), op_key(STORE_OP_DELETE, "b"), op_put("w", "1", 424242)};
    r = txn(f, &(store_txn){.success = bad, .n_success = ELEMENTSOF(bad)});
    ASSERT_EQ(r->error, -ENOENT);
    ASSERT(!r->had_result);
    ASSERT_EQ(store_revision(f->s), rev + 2);
    ASSERT_KV(get_kv(f, "a"), "a", "new");
    ASSERT_EQ(get_kv(f, "a")->version, 2);
    ASSERT(get_kv(f, "b"));
    ASSERT(!get_kv(f, "w"));
    ASSERT_EQ(put_lease(f, "w", "1", 424242)->error, -ENOENT);
    ASSERT_EQ(store_revision(f->s), rev + 2);

    /* Overlapping deletes are fine: a key is deleted once. */
    store_op dels[] = {op_key(STORE_OP_DELETE_PREFIX, ""), op_key(STORE_OP_DELETE, "a")};
    r = txn(f, &(store_txn){.success = dels, .n_success = 2});
    ASSERT_EQ(r->error, 0);
    ASSERT_EQ(r->n_deleted, 4); /* a b y z */
    ASSERT_EQ(r->revision, rev + 3);
    ASSERT_EQ(range(f, "")->n_kvs, 0);
}
TEST(txn_atomic) {
    for_each_backend(check_txn_atomic);
}

static int never_calls;

static void on_never(store *s, int error, const store_result *res, void *userdata) {
    never_calls++;
}

static void on_never_lease(store *s, int error, int64_t lease, int64_t ttl, void *userdata) {
    never_calls++;
}

static void on_never_watch(store_watch *w, int error, const store_event *ev, size_t n, void *userdata) {
    never_calls++;
}

static void check_invalid(struct fixture *f) {
    store *s = f->s;
    char toolong[STORE_KEY_MAX + 2];
    memset(toolong, 'x', sizeof(toolong) - 1);
    toolong[sizeof(toolong) - 1] = 0;
    char *big = calloc(1, STORE_VALUE_MAX + 1);
    ASSERT(big);
    store_watch *w = NULL;

    put_ok(f, "k", "v");
    never_calls = 0;

    ASSERT_EQ(store_put(s, toolong, "v", 1, 0, on_never, NULL), -EINVAL);
    ASSERT_EQ(store_put(s, "", "v", 1, 0, on_never, NULL), -EINVAL);
    ASSERT_EQ(store_put(s, "k", big, STORE_VALUE_MAX + 1, 0, on_never, NULL), -EINVAL);
    ASSERT_EQ(store_put(s, "k", NULL, 3, 0, on_never, NULL), -EINVAL);
    ASSERT_EQ(store_put(s, "k", "v", 1, -1, on_never, NULL), -EINVAL);
    ASSERT_EQ(store_put(NULL, "k", "v", 1, 0, on_never, NULL), -EINVAL);
    ASSERT_EQ(store_get(s, toolong, on_never, NULL), -EINVAL);
    ASSERT_EQ(store_get(s, "", on_never, NULL), -EINVAL);
    ASSERT_EQ(store_get(s, "k", NULL, NULL), -EINVAL);
    ASSERT_EQ(store_range(s, toolong, on_never, NULL), -EINVAL);
    ASSERT_EQ(store_delete(s, "", on_never, NULL), -EINVAL);
    ASSERT_EQ(store_delete_prefix(s, toolong, on_never, NULL), -EINVAL);
    ASSERT_EQ(store_lease_grant(s, 0, on_never_lease, NULL), -EINVAL);
    ASSERT_EQ(store_lease_grant(s, -5, on_never_lease, NULL), -EINVAL);
    ASSERT_EQ(store_lease_keepalive(s, 0, on_never_lease, NULL), -EINVAL);
    ASSERT_EQ(store_lease_revoke(s, -1, on_never_lease, NULL), -EINVAL);
    ASSERT_EQ(store_watch_prefix(s, "", -1, on_never_watch, NULL, &w), -EINVAL);
    ASSERT_EQ(store_watch_prefix(s, toolong, 0, on_never_watch, NULL, &w), -EINVAL);
    ASSERT_EQ(store_watch_prefix(s, "", 0, NULL, NULL, &w), -EINVAL);
    ASSERT(!w);

    /* Txns: sizes, and etcd's rule against writing one key twice. */
    store_op many[STORE_TXN_OPS_MAX + 1];
    char names[STORE_TXN_OPS_MAX + 1][8];
    for (size_t i = 0; i < ELEMENTSOF(many); i++) {
        snprintf(names[i], sizeof(names[i]), "m%zu", i);
        many[i] = op_put(names[i], "v", 0);
    }
    ASSERT_EQ(store_transaction(s, &(store_txn){.success = many, .n_success = ELEMENTSOF(many)}, on_never, NULL),
              -EINVAL);
    ASSERT_EQ(store_transaction(s, &(store_txn){.failure = many, .n_failure = ELEMENTSOF(many)}, on_never, NULL),
              -EINVAL);
    store_compare cmps[STORE_TXN_OPS_MAX + 1];
    for (size_t i = 0; i < ELEMENTSOF(cmps); i++)
        cmps[i] = (store_compare){.key = "k", .key_len = 1, .target = STORE_CMP_VERSION};
    ASSERT_EQ(store_transaction(s, &(store_txn){.compares = cmps, .n_compares = ELEMENTSOF(cmps)}, on_never, NULL),
              -EINVAL);
    store_compare badcmp = {.key = "k", .key_len = 1, .target = (store_compare_target)42};
    ASSERT_EQ(store_transaction(s, &(store_txn){.compares = &badcmp, .n_compares = 1}, on_never, NULL), -EINVAL);
    store_op dup[] = {op_put("d", "1", 0), op_put("d", "2", 0)};
    ASSERT_EQ(store_transaction(s, &(store_txn){.success = dup, .n_success = 2}, on_never, NULL), -EINVAL);
    store_op putdel[] = {op_key(STORE_OP_DELETE, "d"), op_put("d", "2", 0)};
    ASSERT_EQ(store_transaction(s, &(store_txn){.success = putdel, .n_success = 2}, on_never, NULL), -EINVAL);
    store_op inprefix[] = {op_put("dir/x", "2", 0), op_key(STORE_OP_DELETE_PREFIX, "dir/")};
    ASSERT_EQ(store_transaction(s, &(store_txn){.failure = inprefix, .n_failure = 2}, on_never, NULL), -EINVAL);
    store_op badkey[] = {op_put("ok", "1", 0), op_key(STORE_OP_GET, "")};
    ASSERT_EQ(store_transaction(s, &(store_txn){.success = badkey, .n_success = 2}, on_never, NULL), -EINVAL);
    /* The same ops in different branches are fine, and so is a put next to a delete of another key. */
    store_op fine[] = {op_put("dir2", "1", 0), op_key(STORE_OP_DELETE_PREFIX, "dir/")};
    struct reply *r = txn(f, &(store_txn){.success = dup, .n_success = 1, .failure = dup + 1, .n_failure = 1});
    ASSERT_EQ(r->error, 0);
    r = txn(f, &(store_txn){.success = fine, .n_success = 2});
    ASSERT_EQ(r->error, 0);
    int64_t rev = store_revision(f->s);

    run_briefly(f);
    ASSERT_EQ(never_calls, 0);
    ASSERT_EQ(store_revision(f->s), rev);
    r = range(f, "");
    ASSERT_EQ(r->n_kvs, 3); /* d, dir2, k */
    ASSERT_EQ(r->revision, rev);
    free(big);
}
TEST(invalid_arguments_no_callback) {
    for_each_backend(check_invalid);
}

static void check_lease_expiry(struct fixture *f) {
    uint64_t t0 = now_msec();
    struct reply *g = lease_grant(f, 1);
    ASSERT_EQ(g->error, 0);
    ASSERT(g->lease > 0);
    ASSERT_EQ(g->ttl, 1);
    int64_t rev0 = store_revision(f->s);
    ASSERT_EQ(rev0, 1); /* a grant is not a key change */

    ASSERT_EQ(put_lease(f, "l/a", "1", g->lease)->error, 0);
    ASSERT_EQ(put_lease(f, "l/b", "2", g->lease)->error, 0);
    ASSERT_EQ(put(f, "l/c", "3")->error, 0);
    ASSERT_EQ(put_lease(f, "m", "4", g->lease)->error, 0);
    ASSERT_EQ(get_kv(f, "l/a")->lease, g->lease);
    int64_t rev = store_revision(f->s);
    struct wrec *w = watch(f, "l/", 0);

    run_until_events(f, w, 2);
    uint64_t elapsed = now_msec() - t0;
    if (elapsed < 950 || elapsed > 3000)
        CHECK_FAIL("lease with TTL 1s expired after %llu ms", (unsigned long long)elapsed);
    assert_event(w, 0, STORE_EVENT_DELETE, "l/a", rev + 1);
    assert_event(w, 1, STORE_EVENT_DELETE, "l/b", rev + 1);
    ASSERT_EQ(store_revision(f->s), rev + 1); /* three keys, one revision */
    ASSERT(!get_kv(f, "l/a"));
    ASSERT(!get_kv(f, "m"));
    ASSERT_KV(get_kv(f, "l/c"), "l/c", "3");

    ASSERT_EQ(lease_keepalive(f, g->lease)->error, -ENOENT);
    ASSERT_EQ(lease_revoke(f, g->lease)->error, -ENOENT);
    ASSERT_EQ(put_lease(f, "l/d", "x", g->lease)->error, -ENOENT);
    ASSERT_EQ(store_revision(f->s), rev + 1);
    run_briefly(f);
    ASSERT_EQ(w->n_events, 2);
    w->w = store_watch_cancel(w->w);
}
TEST(lease_expiry) {
    for_each_backend(check_lease_expiry);
}

struct keeper {
    struct fixture *f;
    int64_t lease;
    int sent, ok;
    uint64_t last;
};

static void on_keepalive_reply(store *s, int error, int64_t lease, int64_t ttl, void *userdata) {
    struct keeper *k = userdata;
    ASSERT_EQ(error, 0);
    ASSERT_EQ(lease, k->lease);
    ASSERT_EQ(ttl, 1);
    k->ok++;
}

static void on_keepalive_timer(uv_timer_t *t) {
    struct keeper *k = t->data;
    ASSERT_OK(store_lease_keepalive(k->f->s, k->lease, on_keepalive_reply, k));
    k->sent++;
    k->last = now_msec();
}

static void check_lease_keepalive(struct fixture *f) {
    struct reply *g = lease_grant(f, 1);
    ASSERT_EQ(g->error, 0);
    ASSERT_EQ(put_lease(f, "ka", "1", g->lease)->error, 0);

    struct keeper k = {.f = f, .lease = g->lease, .last = now_msec()};
    uv_timer_t t;
    ASSERT_OK(uv_timer_init(&f->loop, &t));
    t.data = &k;
    ASSERT_OK(uv_timer_start(&t, on_keepalive_timer, 300, 300));
    run_for(f, 2500); /* 2.5 TTLs */
    uv_close((uv_handle_t *)&t, NULL);
    run_briefly(f);
    /* etcd: the last keepalive may still be on the wire. */
    while (f->b->etcd && k.ok < k.sent)
        ASSERT(uv_run(&f->loop, UV_RUN_ONCE) != 0 || k.ok == k.sent);
    ASSERT(k.sent >= 6);
    ASSERT_EQ(k.ok, k.sent);
    ASSERT_KV(get_kv(f, "ka"), "ka", "1");

    /* Then without keepalives, it expires a TTL after the last one. */
    struct wrec *w = watch(f, "ka", 0);
    run_until_events(f, w, 1);
    uint64_t elapsed = now_msec() - k.last;
    if (elapsed < 950 || elapsed > 3000)
        CHECK_FAIL("expired %llu ms after the last keepalive", (unsigned long long)elapsed);
    ASSERT_EQ(w->events[0].type, STORE_EVENT_DELETE);
    ASSERT(!get_kv(f, "ka"));
}
TEST(lease_keepalive) {
    for_each_backend(check_lease_keepalive);
}

static void check_lease_revoke(struct fixture *f) {
    struct reply *g = lease_grant(f, 60);
    ASSERT_EQ(g->error, 0);
    ASSERT_EQ(g->ttl, 60);
    ASSERT_EQ(put_lease(f, "r/1", "1", g->lease)->error, 0);
    ASSERT_EQ(put_lease(f, "r/2", "2", g->lease)->error, 0);
    ASSERT_EQ(put(f, "r/3", "3")->error, 0);
    /* A put without the lease detaches the key from it. */
    ASSERT_EQ(put_lease(f, "r/4", "4", g->lease)->error, 0);
    ASSERT_EQ(put(f, "r/4", "4b")->error, 0);
    int64_t rev = store_revision(f->s);
    struct wrec *w = watch(f, "r/", 0);

    struct reply *r = lease_revoke(f, g->lease);
    ASSERT_EQ(r->error, 0);
    ASSERT_EQ(r->lease, g->lease);
    ASSERT_EQ(store_revision(f->s), rev + 1);
    run_until_events(f, w, 2);
    assert_event(w, 0, STORE_EVENT_DELETE, "r/1", rev + 1);
    assert_event(w, 1, STORE_EVENT_DELETE, "r/2", rev + 1);
    r = range(f, "r/");
    ASSERT_EQ(r->n_kvs, 2);
    ASSERT_KV(&r->kvs[0], "r/3", "3");
    ASSERT_KV(&r->kvs[1], "r/4", "4b");
    ASSERT_EQ(r->kvs[1].lease, 0);

    ASSERT_EQ(lease_revoke(f, g->lease)->error, -ENOENT);
    ASSERT_EQ(lease_keepalive(f, g->lease)->error, -ENOENT);

    /* Ids are not reused; revoking a lease without keys changes no revision. */
    struct reply *g2 = lease_grant(f, 60);
    ASSERT_EQ(g2->error, 0);
    ASSERT(g2->lease != g->lease);
    ASSERT_EQ(lease_keepalive(f, g2->lease)->error, 0);
    ASSERT_EQ(lease_revoke(f, g2->lease)->error, 0);
    ASSERT_EQ(store_revision(f->s), rev + 1);
    run_briefly(f);
    ASSERT_EQ(w->n_events, 2);
    w->w = store_watch_cancel(w->w);
}
TEST(lease_revoke) {
    for_each_backend(check_lease_revoke);
}

static void check_watch_replay(struct fixture *f) {
    ASSERT_EQ(put_ok(f, "a/1", "1"), 2);
    ASSERT_EQ(put_ok(f, "b/1", "1"), 3);
    ASSERT_EQ(put_ok(f, "a/2", "2"), 4);
    ASSERT_EQ(del(f, "a/1")->revision, 5);
    store_op two[] = {op_put("a/3", "3", 0), op_put("a/4", "4", 0)};
    ASSERT_EQ(txn(f, &(store_txn){.success = two, .n_success = 2})->revision, 6);
    ASSERT_EQ(put_ok(f, "b/2", "2"), 7);

    struct wrec *w = watch(f, "a/", 3);
    struct wrec *all = watch(f, "", 1);
    struct wrec *now = watch(f, "a/", 0);
    struct wrec *later = watch(f, "a/", 10); /* a revision still to come */

    /* A write before the replay is delivered comes after it, once. */
    ASSERT_EQ(put_ok(f, "a/5", "5"), 8);
    run_until_events(f, w, 5);
    assert_event(w, 0, STORE_EVENT_PUT, "a/2", 4);
    assert_event(w, 1, STORE_EVENT_DELETE, "a/1", 5);
    assert_event(w, 2, STORE_EVENT_PUT, "a/3", 6);
    assert_event(w, 3, STORE_EVENT_PUT, "a/4", 6);
    assert_event(w, 4, STORE_EVENT_PUT, "a/5", 8);
    ASSERT_KV(&w->events[0].kv, "a/2", "2");
    ASSERT_EQ(w->events[0].kv.create_revision, 4);
    ASSERT_EQ(w->events[0].kv.version, 1);

    ASSERT_EQ(put_ok(f, "a/6", "6"), 9);
    ASSERT_EQ(put_ok(f, "b/3", "3"), 10);
    ASSERT_EQ(put_ok(f, "a/5", "5b"), 11);
    ASSERT_EQ(del_prefix(f, "a/")->revision, 12);
    run_until_events(f, w, 12);
    assert_event(w, 5, STORE_EVENT_PUT, "a/6", 9);
    assert_event(w, 6, STORE_EVENT_PUT, "a/5", 11);
    ASSERT_EQ(w->events[6].kv.version, 2);
    ASSERT_EQ(w->events[6].kv.create_revision, 8);
    static const char *const deleted[] = {"a/2", "a/3", "a/4", "a/5", "a/6"};
    for (size_t i = 0; i < ELEMENTSOF(deleted); i++)
        assert_event(w, 7 + i, STORE_EVENT_DELETE, deleted[i], 12);

    /* Every event of every revision, no gap, no repeat. */
    run_until_events(f, all, 16);
    static const int64_t revs[] = {2, 3, 4, 5, 6, 6, 7, 8, 9, 10, 11, 12, 12, 12, 12, 12};
    for (size_t i = 0; i < ELEMENTSOF(revs); i++)
        ASSERT_EQ(all->events[i].kv.mod_revision, revs[i]);

    run_until_events(f, now, 8); /* a/5 a/6 a/5, then five deletes */
    assert_event(now, 0, STORE_EVENT_PUT, "a/5", 8);
    run_until_events(f, later, 6);
    assert_event(later, 0, STORE_EVENT_PUT, "a/5", 11);

    run_briefly(f);
    ASSERT_EQ(w->n_events, 12);
    ASSERT_EQ(all->n_events, 16);
    ASSERT_EQ(now->n_events, 8);
    ASSERT_EQ(later->n_events, 6);
    w->w = store_watch_cancel(w->w);
    all->w = store_watch_cancel(all->w);
    now->w = store_watch_cancel(now->w);
    later->w = store_watch_cancel(later->w);
}
TEST(watch_replay_then_live) {
    for_each_backend(check_watch_replay);
}

/* Writes n single-key puts as fast as possible; returns the last revision. */
static int64_t put_many(struct fixture *f, const char *prefix, int n) {
    for (int i = 0; i < n; i++) {
        char key[64];
        snprintf(key, sizeof(key), "%s%d", prefix, i);
        ASSERT_OK(store_put(f->s, key, "v", 1, 0, NULL, NULL));
        if (i % 256 == 0)
            run_briefly(f);
    }
    struct reply *r = get(f, "sync"); /* after every queued completion */
    return r->revision;
}

static void check_stale(struct fixture *f, bool reopened) {
    int64_t rev = store_revision(f->s);
    ASSERT_EQ(rev, HISTORY_MAX + 50 + 1);

    struct wrec *old = watch(f, "s/", 2);
    run_until(f, &old->calls);
    ASSERT(old->ended);
    ASSERT_EQ(old->error, -ESTALE);
    ASSERT_EQ(old->n_events, 0);

    struct wrec *recent = watch(f, "s/", rev - 99);
    run_until_events(f, recent, 100);
    for (int i = 0; i < 100; i++)
        ASSERT_EQ(recent->events[i].kv.mod_revision, rev - 99 + i);

    /* The local backends keep exactly the last HISTORY_MAX events. */
    struct wrec *edge = watch(f, "s/", rev - HISTORY_MAX + 1);
    struct wrec *past = watch(f, "s/", rev - HISTORY_MAX);
    run_until_events(f, edge, HISTORY_MAX);
    run_until(f, &past->calls);
    ASSERT_EQ(past->error, -ESTALE);
    ASSERT_EQ(edge->events[0].kv.mod_revision, rev - HISTORY_MAX + 1);

    /* An ended watch is still the caller's to cancel; no callback follows. */
    run_briefly(f);
    ASSERT_EQ(old->calls, 1);
    ASSERT_EQ(past->calls, 1);
    old->w = store_watch_cancel(old->w);
    past->w = store_watch_cancel(past->w);
    recent->w = store_watch_cancel(recent->w);
    edge->w = store_watch_cancel(edge->w);
    (void)reopened;
}

/* etcd keeps all history until compacted: compact, then the same checks. */
static void check_watch_stale_etcd(struct fixture *f) {
    int64_t rev = put_many(f, "s/", 150);
    ASSERT_EQ(rev, 151);
    char body[64];
    snprintf(body, sizeof(body), "{\"revision\":\"%lld\"}", (long long)(rev - 99));
    ASSERT_EQ(etcd_http(f, "/v3/kv/compaction", body), 200);

    struct wrec *old = watch(f, "s/", 2);
    run_until(f, &old->calls);
    ASSERT(old->ended);
    ASSERT_EQ(old->error, -ESTALE);
    ASSERT_EQ(old->n_events, 0);

    struct wrec *edge = watch(f, "s/", rev - 99); /* the compaction revision itself is kept */
    struct wrec *past = watch(f, "s/", rev - 100);
    run_until_events(f, edge, 100);
    for (int i = 0; i < 100; i++)
        ASSERT_EQ(edge->events[i].kv.mod_revision, rev - 99 + i);
    run_until(f, &past->calls);
    ASSERT_EQ(past->error, -ESTALE);

    /* An ended watch is still the caller's to cancel; no callback follows. */
    run_briefly(f);
    ASSERT_EQ(old->calls, 1);
    ASSERT_EQ(past->calls, 1);
    old->w = store_watch_cancel(old->w);
    past->w = store_watch_cancel(past->w);
    edge->w = store_watch_cancel(edge->w);
}

static void check_watch_stale(struct fixture *f) {
    if (f->b->etcd) {
        check_watch_stale_etcd(f);
        return;
    }
    ASSERT_EQ(put_many(f, "s/", HISTORY_MAX + 50), HISTORY_MAX + 50 + 1);
    check_stale(f, false);
    if (!f->b->persistent)
        return;

    fixture_reopen(f);
    check_stale(f, true);
    /* On disk too: history is trimmed with the same bound. */
    sqlite3 *db;
    sqlite3_stmt *st;
    ASSERT_EQ(sqlite3_open_v2(f->path, &db, SQLITE_OPEN_READONLY, NULL), SQLITE_OK);
    ASSERT_EQ(sqlite3_prepare_v2(db, "SELECT count(*), min(rev) FROM history", -1, &st, NULL), SQLITE_OK);
    ASSERT_EQ(sqlite3_step(st), SQLITE_ROW);
    ASSERT_EQ(sqlite3_column_int64(st, 0), HISTORY_MAX);
    ASSERT_EQ(sqlite3_column_int64(st, 1), 50 + 2);
    sqlite3_finalize(st);
    sqlite3_close(db);
}
TEST(watch_stale) {
    for_each_backend(check_watch_stale);
}

static void check_watch_cancel(struct fixture *f) {
    /* Cancelled with an event queued: never called. */
    struct wrec *quiet = watch(f, "c/", 0);
    ASSERT_OK(store_put(f->s, "c/0", "x", 1, 0, NULL, NULL));
    quiet->w = store_watch_cancel(quiet->w);
    run_briefly(f);

    /* Cancels itself from its first callback. */
    struct wrec *self = watch(f, "c/", 0);
    self->cancel_self_after = 1;
    /* a's first callback cancels b, which would run next. */
    struct wrec *a = watch(f, "c/", 0);
    struct wrec *b = watch(f, "c/", 0);
    a->cancel_other = &b->w;

    put_ok(f, "c/1", "1");
    run_until(f, &self->calls);
    run_until(f, &a->calls);
    put_ok(f, "c/2", "2");
    put_ok(f, "c/3", "3");
    run_until_events(f, a, 3);
    run_briefly(f);

    ASSERT_EQ(quiet->calls, 0);
    ASSERT_EQ(self->calls, 1);
    ASSERT_EQ(self->n_events, 1);
    ASSERT(!self->w);
    /* etcd: each watch has its own stream, so b's event may come before a's. */
    if (f->b->etcd)
        ASSERT(b->calls <= 1);
    else
        ASSERT_EQ(b->calls, 0);
    ASSERT(!b->w);
    ASSERT(store_watch_cancel(NULL) == NULL);
    a->w = store_watch_cancel(a->w);
    put_ok(f, "c/4", "4");
    run_briefly(f);
    ASSERT_EQ(a->n_events, 3);
}
TEST(watch_cancel) {
    for_each_backend(check_watch_cancel);
}

/* ---- store_free ---- */

struct free_probe {
    struct fixture *f;
    struct reply *put, *get;
    struct wrec *live, *busy;
    bool free_from_put_cb;
    int put_after_free;
};

static struct free_probe *probe;

static void on_probe_put(store *s, int error, const store_result *res, void *userdata) {
    on_reply(s, error, res, userdata);
    if (probe->free_from_put_cb)
        probe->f->s = store_free(probe->f->s);
}

static void on_probe_watch(store_watch *w, int error, const store_event *ev, size_t n, void *userdata) {
    on_watch(w, error, ev, n, userdata);
    /* Calls after store_free() started fail, and never call back. */
    if (error == -ECANCELED)
        probe->put_after_free = store_put(probe->f->s ? probe->f->s : w->store, "late", "x", 1, 0, on_never, NULL);
}

static void check_free(struct fixture *f, bool from_callback) {
    struct free_probe p = {.f = f, .free_from_put_cb = from_callback};
    probe = &p;
    never_calls = 0;

    struct wrec *gone = watch(f, "", 0);
    gone->w = store_watch_cancel(gone->w);
    p.live = watch(f, "y", 0);
    p.busy = tmem(f, sizeof(*p.busy));
    p.busy->f = f;
    p.busy->events = tmem(f, WREC_MAX * sizeof(struct tevent));
    ASSERT_OK(store_watch_prefix(f->s, "x", 0, on_probe_watch, p.busy, &p.busy->w));
    put_ok(f, "x0", "0");
    run_until(f, &p.busy->calls);

    p.put = reply_new(f);
    p.get = reply_new(f);
    ASSERT_OK(store_put(f->s, "x1", "1", 1, 0, on_probe_put, p.put));
    ASSERT_OK(store_get(f->s, "x0", on_reply, p.get));
    ASSERT_EQ(p.put->calls + p.get->calls, 0);

    if (from_callback)
        run_until(f, &p.put->calls); /* its callback frees the store */
    else
        f->s = store_free(f->s);
    ASSERT(!f->s);

    /* Before store_free() returned: results of executed calls, -ECANCELED for watches. */
    ASSERT_EQ(p.put->calls, 1);
    ASSERT_EQ(p.get->calls, 1);
    if (f->b->etcd) {
        /* etcd: calls not answered yet are in flight or queued: -ECANCELED.
         * The put's own answer may come after its watch event. */
        ASSERT_EQ(p.put->error, from_callback ? 0 : -ECANCELED);
        if (from_callback)
            ASSERT_EQ(p.put->revision, 3);
        ASSERT_EQ(p.get->error, -ECANCELED);
        ASSERT(p.busy->n_events == 1 || (from_callback && p.busy->n_events == 2));
    } else {
        ASSERT_EQ(p.put->error, 0);
        ASSERT_EQ(p.put->revision, 3);
        ASSERT_EQ(p.get->error, 0);
        ASSERT_EQ(p.get->n_kvs, 1);
        ASSERT_EQ(p.busy->n_events, 1); /* x0; x1 was pending and is dropped */
    }
    ASSERT_EQ(p.live->calls, 1);
    ASSERT_EQ(p.live->error, -ECANCELED);
    ASSERT_EQ(p.busy->error, -ECANCELED);
    ASSERT_EQ(p.put_after_free, -ECANCELED);
    ASSERT_EQ(gone->calls, 0);

    run_dry(f);
    ASSERT_EQ(never_calls, 0);
    ASSERT_EQ(uv_loop_close(&f->loop), 0);
    ASSERT_OK(uv_loop_init(&f->loop));
    ASSERT_OK(f->b->open(f));
    if (f->b->persistent)
        ASSERT_KV(get_kv(f, "x1"), "x1", "1"); /* reported as done, so durable */
    probe = NULL;
}

static void check_free_direct(struct fixture *f) {
    check_free(f, false);
}

static void check_free_from_callback(struct fixture *f) {
    check_free(f, true);
}

TEST(free_runs_pending_callbacks) {
    for_each_backend(check_free_direct);
}

TEST(free_from_a_callback) {
    for_each_backend(check_free_from_callback);
}

/* ==== etcd ==== */

#ifdef STORE_TEST_ETCD
static const struct backend *backend_etcd = &backends[2];

static void run_etcd(void (*check)(struct fixture *f)) {
    atexit(report_backend);
    struct fixture *f = fixture_open(backend_etcd);
    check(f);
    fixture_free(f);
}

/* A listening socket that never accepts: requests to it time out. */
static int hung_listener(int *ret_port) {
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    ASSERT(fd >= 0);
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    socklen_t n = sizeof(a);
    ASSERT_OK(bind(fd, (struct sockaddr *)&a, sizeof(a)));
    ASSERT_OK(listen(fd, 16));
    ASSERT_OK(getsockname(fd, (struct sockaddr *)&a, &n));
    *ret_port = ntohs(a.sin_port);
    return fd;
}

static void check_etcd_endpoints(struct fixture *f) {
    int hung_port, hung = hung_listener(&hung_port);
    char dead[64], slow[64];
    snprintf(dead, sizeof(dead), "http://127.0.0.1:%d", free_port());
    snprintf(slow, sizeof(slow), "http://127.0.0.1:%d/", hung_port);
    const char *const eps[] = {dead, slow, f->endpoint};

    fixture_close_store(f);
    uint64_t t0 = now_msec();
    ASSERT_OK(store_etcd_new(&f->loop, eps, ELEMENTSOF(eps), &f->s));
    ASSERT_EQ(store_revision(f->s), 0);
    /* The first read: refused, then timed out after 1 s, then answered. */
    struct reply *r = get(f, "k");
    uint64_t elapsed = now_msec() - t0;
    ASSERT_EQ(r->error, 0);
    ASSERT_EQ(r->revision, 1);
    if (elapsed < 900 || elapsed > 3000)
        CHECK_FAIL("first answer after %llu ms, expected about one request timeout", (unsigned long long)elapsed);
    /* The store stays on the endpoint that answered. */
    t0 = now_msec();
    ASSERT_EQ(put_ok(f, "k", "v"), 2);
    ASSERT_KV(get_kv(f, "k"), "k", "v");
    ASSERT(now_msec() - t0 < 500);

    /* A write that times out is not retried (etcd may have applied it). */
    const char *const only_slow[] = {slow};
    fixture_close_store(f);
    ASSERT_OK(store_etcd_new(&f->loop, only_slow, 1, &f->s));
    r = put(f, "k", "w");
    ASSERT_EQ(r->error, -ETIMEDOUT);
    close(hung);
}
TEST(etcd_retries_across_endpoints) {
    run_etcd(check_etcd_endpoints);
}

static void check_etcd_watch_resume(struct fixture *f) {
    struct reply *g = lease_grant(f, 60);
    ASSERT_EQ(g->error, 0);
    ASSERT_EQ(lease_keepalive(f, g->lease)->ttl, 60);
    struct wrec *w = watch(f, "r/", 0);
    ASSERT_EQ(put_ok(f, "r/1", "1"), 2);
    run_until_events(f, w, 1);

    /* etcd goes away and comes back on the same port with the same data. */
    etcd_stop(f);
    run_for(f, 300);
    ASSERT_EQ(get(f, "r/1")->error, -ECONNREFUSED);
    etcd_start(f);
    /* The lease survived the restart (with a fresh TTL, as after a leader change). */
    struct reply *k = lease_keepalive(f, g->lease);
    ASSERT_EQ(k->error, 0);
    ASSERT(k->ttl > 50 && k->ttl <= 60);
    ASSERT_EQ(put_ok(f, "r/2", "2"), 3);
    ASSERT_EQ(put_ok(f, "x", "x"), 4);
    ASSERT_EQ(put_ok(f, "r/3", "3"), 5);

    /* The watch reconnects from the revision after its last event: no gap, no repeat. */
    run_until_events(f, w, 3);
    assert_event(w, 0, STORE_EVENT_PUT, "r/1", 2);
    assert_event(w, 1, STORE_EVENT_PUT, "r/2", 3);
    assert_event(w, 2, STORE_EVENT_PUT, "r/3", 5);
    run_for(f, 100);
    ASSERT_EQ(w->n_events, 3);
    ASSERT(!w->ended);
    w->w = store_watch_cancel(w->w);
}
TEST(etcd_watch_and_keepalive_survive_restart) {
    run_etcd(check_etcd_watch_resume);
}

#endif /* STORE_TEST_ETCD */

/* ==== SQLite ==== */

static void run_sqlite(void (*check)(struct fixture *f)) {
    atexit(report_backend);
    struct fixture *f = fixture_open(backend_sqlite);
    check(f);
    fixture_free(f);
}

static void check_sqlite_reopen(struct fixture *f) {
    struct reply *keep = lease_grant(f, 60);
    struct reply *gone = lease_grant(f, 60);
    struct reply *short_ = lease_grant(f, 1);
    put_ok(f, "d/1", "one");
    put_ok(f, "d/2", "two");
    put_ok(f, "d/1", "one again");
    ASSERT_EQ(put_lease(f, "d/leased", "l", keep->lease)->error, 0);
    ASSERT_EQ(put_lease(f, "d/short", "s", short_->lease)->error, 0);
    ASSERT_EQ(put_lease(f, "d/gone", "g", gone->lease)->error, 0);
    ASSERT_EQ(lease_revoke(f, gone->lease)->error, 0);
    ASSERT_EQ(del(f, "d/2")->error, 0);
    int64_t rev = store_revision(f->s);
    ASSERT_EQ(rev, 9);
    struct reply *before = range(f, "");
    struct wrec *hist = watch(f, "", 1);
    run_until_events(f, hist, 8);
    hist->w = store_watch_cancel(hist->w);

    /* Past the short lease's TTL, but nothing ran: reopening gives it a full TTL. */
    usleep(1500 * 1000);
    fixture_reopen(f);
    uint64_t t0 = now_msec();

    ASSERT_EQ(store_revision(f->s), rev);
    struct reply *after = range(f, "");
    ASSERT_EQ(after->revision, rev);
    ASSERT_EQ(after->n_kvs, before->n_kvs);
    ASSERT_EQ(after->n_kvs, 3);
    for (size_t i = 0; i < after->n_kvs; i++) {
        const struct tkv *a = &after->kvs[i], *b = &before->kvs[i];
        ASSERT(a->key_len == b->key_len && memcmp(a->key, b->key, a->key_len) == 0);
        ASSERT(a->value_len == b->value_len && memcmp(a->value, b->value, a->value_len) == 0);
        ASSERT_EQ(a->create_revision, b->create_revision);
        ASSERT_EQ(a->mod_revision, b->mod_revision);
        ASSERT_EQ(a->version, b->version);
        ASSERT_EQ(a->lease, b->lease);
    }
    ASSERT_EQ(get_kv(f, "d/1")->version, 2);

    /* History resumes: the same events as before the restart, then live ones. */
    struct wrec *again = watch(f, "", 1);
    run_until_events(f, again, 8);
    for (size_t i = 0; i < 8; i++) {
        ASSERT_EQ(again->events[i].type, hist->events[i].type);
        ASSERT_EQ(again->events[i].kv.mod_revision, hist->events[i].kv.mod_revision);
        ASSERT(kv_is(&again->events[i].kv, hist->events[i].kv.key, NULL));
        ASSERT_EQ(again->events[i].kv.value_len, hist->events[i].kv.value_len);
        ASSERT_EQ(again->events[i].kv.version, hist->events[i].kv.version);
    }
    ASSERT_EQ(put_ok(f, "d/3", "three"), rev + 1);
    run_until_events(f, again, 9);
    assert_event(again, 8, STORE_EVENT_PUT, "d/3", rev + 1);

    /* Leases: live ones came back, revoked ones did not, ids are not reused. */
    struct reply *k = lease_keepalive(f, keep->lease);
    ASSERT_EQ(k->error, 0);
    ASSERT_EQ(k->ttl, 60);
    ASSERT_EQ(lease_keepalive(f, gone->lease)->error, -ENOENT);
    struct reply *fresh = lease_grant(f, 60);
    ASSERT(fresh->lease > short_->lease && fresh->lease > gone->lease && fresh->lease > keep->lease);

    /* The short lease expires a full TTL after the reopen. */
    run_until_events(f, again, 10);
    uint64_t elapsed = now_msec() - t0;
    if (elapsed < 950 || elapsed > 3000)
        CHECK_FAIL("re-granted lease expired %llu ms after the reopen", (unsigned long long)elapsed);
    assert_event(again, 9, STORE_EVENT_DELETE, "d/short", rev + 2);
    again->w = store_watch_cancel(again->w);

    fixture_reopen(f);
    ASSERT_EQ(store_revision(f->s), rev + 2);
    ASSERT(!get_kv(f, "d/short"));
    ASSERT_KV(get_kv(f, "d/leased"), "d/leased", "l");
}
TEST(sqlite_survives_reopen) {
    run_sqlite(check_sqlite_reopen);
}

/* Holds SQLite's write lock from another connection, as a stuck writer would. */
static sqlite3 *lock_db(const char *path) {
    sqlite3 *db;
    ASSERT_EQ(sqlite3_open_v2(path, &db, SQLITE_OPEN_READWRITE, NULL), SQLITE_OK);
    ASSERT_EQ(sqlite3_exec(db, "BEGIN IMMEDIATE", NULL, NULL, NULL), SQLITE_OK);
    return db;
}

static void unlock_db(sqlite3 *db) {
    ASSERT_EQ(sqlite3_exec(db, "ROLLBACK", NULL, NULL, NULL), SQLITE_OK);
    ASSERT_EQ(sqlite3_close(db), SQLITE_OK);
}

static void check_sqlite_write_failure(struct fixture *f) {
    ASSERT_EQ(put_ok(f, "k", "1"), 2);
    struct wrec *w = watch(f, "", 0);

    sqlite3 *db = lock_db(f->path);
    struct reply *r = put(f, "k", "2");
    ASSERT_EQ(r->error, -EBUSY);
    ASSERT(!r->had_result);
    store_op ops[] = {op_put("a", "1", 0), op_put("b", "1", 0)};
    ASSERT_EQ(txn(f, &(store_txn){.success = ops, .n_success = 2})->error, -EBUSY);
    ASSERT_EQ(del(f, "k")->error, -EBUSY);
    ASSERT_EQ(lease_grant(f, 10)->error, -EBUSY);
    /* Reads still work, and show that nothing was applied. */
    ASSERT_EQ(store_revision(f->s), 2);
    r = range(f, "");
    ASSERT_EQ(r->revision, 2);
    ASSERT_EQ(r->n_kvs, 1);
    ASSERT_KV(&r->kvs[0], "k", "1");
    ASSERT_EQ(r->kvs[0].version, 1);
    unlock_db(db);

    ASSERT_EQ(put_ok(f, "k", "3"), 3);
    ASSERT_EQ(get_kv(f, "k")->version, 2);
    run_until_events(f, w, 1);
    assert_event(w, 0, STORE_EVENT_PUT, "k", 3);

    /* A lease that expires while the file is locked keeps its keys until a retry works. */
    struct reply *g = lease_grant(f, 1);
    ASSERT_EQ(g->error, 0);
    ASSERT_EQ(put_lease(f, "e", "x", g->lease)->error, 0);
    ASSERT_EQ(store_revision(f->s), 4);
    db = lock_db(f->path);
    run_for(f, 1600);
    ASSERT_KV(get_kv(f, "e"), "e", "x");
    ASSERT_EQ(store_revision(f->s), 4);
    unlock_db(db);
    run_until_events(f, w, 3);
    assert_event(w, 2, STORE_EVENT_DELETE, "e", 5);
    ASSERT(!get_kv(f, "e"));
    w->w = store_watch_cancel(w->w);

    fixture_reopen(f);
    ASSERT_EQ(store_revision(f->s), 5);
    ASSERT_KV(get_kv(f, "k"), "k", "3");
    ASSERT_EQ(range(f, "")->n_kvs, 1);
}
TEST(sqlite_failed_write_not_applied) {
    run_sqlite(check_sqlite_write_failure);
}

/* ---- crash: a child writes in a loop and is SIGKILLed ---- */

#define CRASH_VALUE_SIZE 3000

static void crash_value(char *buf, uint64_t n) {
    for (size_t i = 0; i < CRASH_VALUE_SIZE; i++)
        buf[i] = (char)('a' + (n + i) % 26);
    snprintf(buf, 32, "n=%llu;", (unsigned long long)n);
}

static void on_child_reply(store *s, int error, const store_result *res, void *userdata) {
    int64_t *rev = userdata;
    *rev = error < 0 ? error : res->revision;
}

static int64_t child_get_counter(uv_loop_t *loop, store *s);

/* Runs in the grandchild: n-th write puts crash/a and crash/b = value(n) and crash/n = n. */
static _Noreturn void crash_writer(const char *path, int fd) {
    uv_loop_t loop;
    store *s;
    static char value[CRASH_VALUE_SIZE];

    if (uv_loop_init(&loop) < 0 || store_sqlite_new(&loop, path, &s) < 0)
        _exit(2);
    int64_t n = child_get_counter(&loop, s);
    for (;;) {
        char num[32];
        n++;
        crash_value(value, (uint64_t)n);
        snprintf(num, sizeof(num), "%lld", (long long)n);
        store_op ops[] = {
            {.type = STORE_OP_PUT, .key = "crash/a", .key_len = 7, .value = value, .value_len = CRASH_VALUE_SIZE},
            {.type = STORE_OP_PUT, .key = "crash/b", .key_len = 7, .value = value, .value_len = CRASH_VALUE_SIZE},
            {.type = STORE_OP_PUT, .key = "crash/n", .key_len = 7, .value = num, .value_len = strlen(num)},
        };
        int64_t rev = 0;
        if (store_transaction(s, &(store_txn){.success = ops, .n_success = 3}, on_child_reply, &rev) < 0)
            _exit(3);
        while (rev == 0)
            (void)uv_run(&loop, UV_RUN_ONCE);
        if (rev < 0)
            _exit(4);
        /* Reported only once the write's callback said it is done. */
        if (write(fd, &rev, sizeof(rev)) != sizeof(rev))
            _exit(5);
    }
}

static void on_child_get(store *s, int error, const store_result *res, void *userdata) {
    int64_t *n = userdata;
    *n = error < 0 ? error : res->n_kvs == 0 ? 0 : strtoll(res->kvs[0].value, NULL, 10);
}

static int64_t child_get_counter(uv_loop_t *loop, store *s) {
    int64_t n = -1000;
    if (store_get(s, "crash/n", on_child_get, &n) < 0)
        _exit(6);
    while (n == -1000)
        (void)uv_run(loop, UV_RUN_ONCE);
    if (n < 0)
        _exit(7);
    return n;
}

static void check_crash_consistent(struct fixture *f, int64_t last_reported) {
    int64_t rev = store_revision(f->s);
    if (rev < last_reported)
        CHECK_FAIL("revision %lld after the crash, but %lld was reported written", (long long)rev,
                   (long long)last_reported);
    const struct tkv *a = get_kv(f, "crash/a"), *b = get_kv(f, "crash/b"), *n = get_kv(f, "crash/n");
    ASSERT(a && b && n);
    int64_t count = strtoll(n->value, NULL, 10);
    /* Each write changed all three keys at one revision: rev = 1 + writes. */
    ASSERT_EQ(rev, 1 + count);
    ASSERT_EQ(a->mod_revision, rev);
    ASSERT_EQ(b->mod_revision, rev);
    ASSERT_EQ(n->mod_revision, rev);
    ASSERT_EQ(a->version, count);
    ASSERT_EQ(a->create_revision, 2);
    char want[CRASH_VALUE_SIZE];
    crash_value(want, (uint64_t)count);
    ASSERT_EQ(a->value_len, CRASH_VALUE_SIZE);
    ASSERT(memcmp(a->value, want, CRASH_VALUE_SIZE) == 0);
    ASSERT(memcmp(b->value, want, CRASH_VALUE_SIZE) == 0);

    /* History is whole: three events per revision, up to the last one. */
    struct wrec *w = watch(f, "crash/", rev - 9);
    run_until_events(f, w, 30);
    for (int i = 0; i < 30; i++)
        assert_event(w, (size_t)i, STORE_EVENT_PUT,
                     i % 3 == 0   ? "crash/a"
                     : i % 3 == 1 ? "crash/b"
                                  : "crash/n",
                     rev - 9 + i / 3);
    w->w = store_watch_cancel(w->w);
}

static void check_sqlite_crash(struct fixture *f) {
    int64_t last_reported = 0;
    srand((unsigned)getpid());

    for (int round = 0; round < 4; round++) {
        int fds[2];
        f->s = store_free(f->s); /* the child writes alone; we reopen after the crash */
        run_dry(f);
        ASSERT_OK(pipe2(fds, O_CLOEXEC));
        fflush(NULL);
        pid_t pid = fork();
        ASSERT(pid >= 0);
        if (pid == 0) {
            close(fds[0]);
            crash_writer(f->path, fds[1]);
        }
        close(fds[1]);

        /* Let it make progress, then kill it at a random moment. */
        int64_t rev;
        for (int seen = 0; seen < 50; seen++) {
            if (read(fds[0], &rev, sizeof(rev)) != sizeof(rev))
                CHECK_FAIL("the writer died early");
            last_reported = rev;
        }
        usleep((useconds_t)(rand() % 20000));
        ASSERT_OK(kill(pid, SIGKILL));
        int status;
        ASSERT_EQ(waitpid(pid, &status, 0), pid);
        ASSERT(WIFSIGNALED(status) && WTERMSIG(status) == SIGKILL);
        while (read(fds[0], &rev, sizeof(rev)) == sizeof(rev))
            last_reported = rev;
        close(fds[0]);

        /* Killed without a checkpoint: the writes are in the WAL, which the open must recover. */
        char wal[160];
        struct stat stw;
        snprintf(wal, sizeof(wal), "%s-wal", f->path);
        ASSERT_OK(stat(wal, &stw));
        ASSERT(stw.st_size > 0);

        ASSERT_OK(f->b->open(f));
        check_crash_consistent(f, last_reported);
    }

    /* And SQLite agrees that the file is sound. */
    sqlite3 *db;
    sqlite3_stmt *st;
    ASSERT_EQ(sqlite3_open_v2(f->path, &db, SQLITE_OPEN_READONLY, NULL), SQLITE_OK);
    ASSERT_EQ(sqlite3_prepare_v2(db, "PRAGMA integrity_check", -1, &st, NULL), SQLITE_OK);
    ASSERT_EQ(sqlite3_step(st), SQLITE_ROW);
    ASSERT_STREQ((const char *)sqlite3_column_text(st, 0), "ok");
    sqlite3_finalize(st);
    sqlite3_close(db);
    int64_t rev = store_revision(f->s);
    ASSERT_EQ(put_ok(f, "after", "crash"), rev + 1);
}
TEST(sqlite_crash_recovery) {
    run_sqlite(check_sqlite_crash);
}

static void check_sqlite_open_errors(struct fixture *f) {
    store *s = NULL;
    char p[160];

    /* Not a database. */
    snprintf(p, sizeof(p), "%s/garbage.db", f->dir);
    FILE *g = fopen(p, "we");
    ASSERT(g);
    for (int i = 0; i < 512; i++)
        fputs("this is not an SQLite database ", g);
    fclose(g);
    ASSERT_EQ(store_sqlite_new(&f->loop, p, &s), -EBADMSG);
    ASSERT(!s);
    ASSERT_OK(unlink(p));

    /* A directory that does not exist. */
    snprintf(p, sizeof(p), "%s/missing/store.db", f->dir);
    int r = store_sqlite_new(&f->loop, p, &s);
    ASSERT(r < 0);
    ASSERT(!s);

    /* A database from another schema version. */
    fixture_close_store(f);
    sqlite3 *db;
    ASSERT_EQ(sqlite3_open(f->path, &db), SQLITE_OK);
    ASSERT_EQ(sqlite3_exec(db, "PRAGMA user_version = 99", NULL, NULL, NULL), SQLITE_OK);
    sqlite3_close(db);
    ASSERT_EQ(store_sqlite_new(&f->loop, f->path, &s), -EPROTONOSUPPORT);
    ASSERT(!s);
    ASSERT_EQ(store_sqlite_new(NULL, f->path, &s), -EINVAL);

    /* A failed open leaves nothing on the loop. */
    ASSERT_EQ(uv_run(&f->loop, UV_RUN_NOWAIT), 0);
    ASSERT_EQ(sqlite3_open(f->path, &db), SQLITE_OK);
    ASSERT_EQ(sqlite3_exec(db, "PRAGMA user_version = 1", NULL, NULL, NULL), SQLITE_OK);
    sqlite3_close(db);
    ASSERT_OK(f->b->open(f));
}
TEST(sqlite_open_errors) {
    run_sqlite(check_sqlite_open_errors);
}
