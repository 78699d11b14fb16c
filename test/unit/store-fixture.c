/* SPDX-License-Identifier: MIT */
/* The store tests' fixture (store-fixture.h): stores, etcd servers, call helpers and the watch recorder. */
#include "store-fixture.h"

#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <netinet/in.h>
#include <signal.h>
#include <stdbool.h>
#include <stdint.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>
#include <uv.h>

#include "curl-dl.h"

#include "macro.h"

#ifdef __SANITIZE_ADDRESS__
#include <sanitizer/lsan_interface.h>
#endif

/* ---- fixture: one store on its own loop, its files in a fresh directory ---- */

uint64_t now_msec(void) {
    return uv_hrtime() / 1000000;
}

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

const struct backend *const backend_sqlite = &backends[1];
#ifdef STORE_TEST_ETCD
const struct backend *const backend_etcd = &backends[2];
#endif

/* CHECK_FAIL exits the test child: say which backend was under test. */
static const char *current_backend, *current_dir;

static void report_backend(void) {
    if (current_backend)
        fprintf(stderr, "  (backend '%s'%s%s)\n", current_backend, current_dir && *current_dir ? ", files in " : "",
                current_dir ? current_dir : "");
}

void *tmem(struct fixture *f, size_t n) {
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

char *tdup(struct fixture *f, const char *p, size_t n) {
    char *c = tmem(f, n + 1);
    if (n > 0)
        memcpy(c, p, n);
    return c;
}

/* ---- etcd: one fresh single-member server per fixture, on free loopback ports ---- */

/* A port that was free a moment ago (etcd binds it right after). */
int free_port(void) {
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
long etcd_http(struct fixture *f, const char *path, const char *body) {
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

void etcd_start(struct fixture *f) {
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

void etcd_stop(struct fixture *f) {
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

struct fixture *fixture_open(const struct backend *b) {
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
void run_dry(struct fixture *f) {
    for (int i = 0; i < 100; i++)
        if (uv_run(&f->loop, UV_RUN_DEFAULT) == 0)
            return;
    CHECK_FAIL("the loop still has live handles or requests");
}

/* Frees the store and runs the loop so that its handles close. */
void fixture_close_store(struct fixture *f) {
    f->s = store_free(f->s);
    run_dry(f);
}

void fixture_reopen_freed(struct fixture *f) {
    run_dry(f);
    ASSERT_EQ(uv_loop_close(&f->loop), 0);
    ASSERT_OK(uv_loop_init(&f->loop));
    ASSERT_OK(f->b->open(f));
}

void fixture_reopen(struct fixture *f) {
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

void fixture_free(struct fixture *f) {
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

void run_backend(const struct backend *b, void (*check)(struct fixture *f)) {
    atexit(report_backend);
    struct fixture *f = fixture_open(b);
    check(f);
    fixture_free(f);
}

void for_each_backend(void (*check)(struct fixture *f)) {
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
void run_until(struct fixture *f, const int *calls) {
    while (*calls == 0)
        if (uv_run(&f->loop, UV_RUN_ONCE) == 0 && *calls == 0)
            CHECK_FAIL("the loop ran dry before the callback ran");
}

static void on_run_for(uv_timer_t *t) {
    *(bool *)t->data = true;
}

/* Runs the loop for msec milliseconds. */
void run_for(struct fixture *f, uint64_t msec) {
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
void run_briefly(struct fixture *f) {
    for (int i = 0; i < 5; i++)
        (void)uv_run(&f->loop, UV_RUN_NOWAIT);
}

/* ---- call helpers: a call, a check that its callback did not run inside it, then a wait ---- */

void copy_kv(struct fixture *f, struct tkv *d, const store_kv *s) {
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

void on_reply(store *s, int error, const store_result *res, void *userdata) {
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

void on_lease_reply(store *s, int error, int64_t lease, int64_t ttl, void *userdata) {
    struct reply *r = userdata;
    ASSERT(s == r->f->s);
    r->calls++;
    uv_stop(&r->f->loop); /* the reply may run in the timers before a blocking poll */
    r->error = error;
    r->lease = lease;
    r->ttl = ttl;
}

struct reply *reply_new(struct fixture *f) {
    struct reply *r = tmem(f, sizeof(*r));
    r->f = f;
    return r;
}

/* The call returned rc; its callback must run later, exactly once. */
struct reply *wait_reply(struct fixture *f, int rc, struct reply *r) {
    ASSERT_OK(rc);
    if (r->calls != 0)
        CHECK_FAIL("a callback ran inside the call that requested it");
    run_until(f, &r->calls);
    (void)uv_run(&f->loop, UV_RUN_NOWAIT);
    ASSERT_EQ(r->calls, 1);
    return r;
}

struct reply *put_bin(struct fixture *f, const char *key, const char *value, size_t len, int64_t lease) {
    struct reply *r = reply_new(f);
    return wait_reply(f, store_put(f->s, key, value, len, lease, on_reply, r), r);
}

struct reply *put_lease(struct fixture *f, const char *key, const char *value, int64_t lease) {
    return put_bin(f, key, value, strlen(value), lease);
}

struct reply *put(struct fixture *f, const char *key, const char *value) {
    return put_lease(f, key, value, 0);
}

/* A put that must succeed; returns its revision. */
int64_t put_ok(struct fixture *f, const char *key, const char *value) {
    struct reply *r = put(f, key, value);
    ASSERT_EQ(r->error, 0);
    return r->revision;
}

struct reply *get(struct fixture *f, const char *key) {
    struct reply *r = reply_new(f);
    return wait_reply(f, store_get(f->s, key, on_reply, r), r);
}

struct reply *range(struct fixture *f, const char *prefix) {
    struct reply *r = reply_new(f);
    return wait_reply(f, store_range(f->s, prefix, on_reply, r), r);
}

struct reply *del(struct fixture *f, const char *key) {
    struct reply *r = reply_new(f);
    return wait_reply(f, store_delete(f->s, key, on_reply, r), r);
}

struct reply *del_prefix(struct fixture *f, const char *prefix) {
    struct reply *r = reply_new(f);
    return wait_reply(f, store_delete_prefix(f->s, prefix, on_reply, r), r);
}

struct reply *txn(struct fixture *f, const store_txn *t) {
    struct reply *r = reply_new(f);
    return wait_reply(f, store_transaction(f->s, t, on_reply, r), r);
}

struct reply *lease_grant(struct fixture *f, int64_t ttl) {
    struct reply *r = reply_new(f);
    return wait_reply(f, store_lease_grant(f->s, ttl, on_lease_reply, r), r);
}

struct reply *lease_keepalive(struct fixture *f, int64_t lease) {
    struct reply *r = reply_new(f);
    return wait_reply(f, store_lease_keepalive(f->s, lease, on_lease_reply, r), r);
}

struct reply *lease_revoke(struct fixture *f, int64_t lease) {
    struct reply *r = reply_new(f);
    return wait_reply(f, store_lease_revoke(f->s, lease, on_lease_reply, r), r);
}

bool kv_is(const struct tkv *kv, const char *key, const char *value) {
    return kv->key_len == strlen(key) && memcmp(kv->key, key, kv->key_len) == 0 &&
           (!value || (kv->value_len == strlen(value) && memcmp(kv->value, value, kv->value_len) == 0));
}

/* The value of key, or NULL if it is missing. */
const struct tkv *get_kv(struct fixture *f, const char *key) {
    struct reply *r = get(f, key);
    ASSERT_EQ(r->error, 0);
    ASSERT(r->n_kvs <= 1);
    return r->n_kvs ? &r->kvs[0] : NULL;
}

store_op op_put(const char *key, const char *value, int64_t lease) {
    return (store_op){.type = STORE_OP_PUT,
                      .key = key,
                      .key_len = strlen(key),
                      .value = value,
                      .value_len = strlen(value),
                      .lease = lease};
}

store_op op_key(store_op_type type, const char *key) {
    return (store_op){.type = type, .key = key, .key_len = strlen(key)};
}

/* ---- watch recorder ---- */

void on_watch(store_watch *w, int error, const store_event *ev, size_t n, void *userdata) {
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

struct wrec *watch(struct fixture *f, const char *prefix, int64_t start) {
    struct wrec *r = tmem(f, sizeof(*r));
    r->f = f;
    r->events = tmem(f, WREC_MAX * sizeof(struct tevent));
    ASSERT_OK(store_watch_prefix(f->s, prefix, start, on_watch, r, &r->w));
    ASSERT(r->w);
    if (r->calls != 0)
        CHECK_FAIL("a watch callback ran inside store_watch_prefix()");
    return r;
}

void run_until_events(struct fixture *f, struct wrec *r, size_t n) {
    while (r->n_events < n && !r->ended)
        if (uv_run(&f->loop, UV_RUN_ONCE) == 0 && r->n_events < n)
            CHECK_FAIL("the loop ran dry with %zu of %zu watch events", r->n_events, n);
    ASSERT(!r->ended);
    ASSERT_EQ(r->n_events, n);
}

void assert_event(const struct wrec *r, size_t i, store_event_type type, const char *key, int64_t rev) {
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

int never_calls;

void on_never(store *s, int error, const store_result *res, void *userdata) {
    never_calls++;
}

void on_never_lease(store *s, int error, int64_t lease, int64_t ttl, void *userdata) {
    never_calls++;
}

void on_never_watch(store_watch *w, int error, const store_event *ev, size_t n, void *userdata) {
    never_calls++;
}

/* Writes n single-key puts as fast as possible; returns the last revision. */
int64_t put_many(struct fixture *f, const char *prefix, int n) {
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
