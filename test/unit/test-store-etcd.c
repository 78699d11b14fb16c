/* SPDX-License-Identifier: MIT */
/* The etcd backend's own tests: failover across endpoints, watches and leases across an etcd restart. */
#include <errno.h>
#include <netinet/in.h>
#include <stdbool.h>
#include <stdint.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <unistd.h>
#include <uv.h>

#include "macro.h"
#include "store-fixture.h"
#include "store.h"
#include "tests.h"

static void run_etcd(void (*check)(struct fixture *f)) {
    run_backend(backend_etcd, check);
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
    /* The first read: refused, then timed out after 500 ms, then answered. */
    struct reply *r = get(f, "k");
    uint64_t elapsed = now_msec() - t0;
    ASSERT_EQ(r->error, 0);
    ASSERT_EQ(r->revision, 1);
    if (elapsed < 450 || elapsed > 2000)
        CHECK_FAIL("first answer after %llu ms, expected about one read timeout", (unsigned long long)elapsed);
    /* The store stays on the endpoint that answered. */
    t0 = now_msec();
    ASSERT_EQ(put_ok(f, "k", "v"), 2);
    ASSERT_KV(get_kv(f, "k"), "k", "v");
    ASSERT(now_msec() - t0 < 500);

    /* A lease renewal stuck on a member that answers nothing moves to the
     * next one after 200 ms: well before a 1 s lease's holder fences itself
     * (750 ms after its last renewal). */
    struct reply *g = lease_grant(f, 60);
    ASSERT_EQ(g->error, 0);
    const char *const slow_first[] = {slow, f->endpoint};
    fixture_close_store(f);
    ASSERT_OK(store_etcd_new(&f->loop, slow_first, ELEMENTSOF(slow_first), &f->s));
    t0 = now_msec();
    struct reply *k = lease_keepalive(f, g->lease);
    elapsed = now_msec() - t0;
    ASSERT_EQ(k->error, 0);
    ASSERT_EQ(k->ttl, 60);
    if (elapsed < 150 || elapsed > 600)
        CHECK_FAIL("renewal answered after %llu ms, expected about 200 ms", (unsigned long long)elapsed);

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

static bool trusted_within(struct fixture *f, int64_t revision, uint64_t msec) {
    uint64_t end = now_msec() + msec;
    while (!store_lease_end_trusted(f->s, revision) && now_msec() < end)
        run_for(f, 50);
    return store_lease_end_trusted(f->s, revision);
}

/* A lease end is vouched for only once every member has answered in the
 * current raft term, 2 s before (a stalled leader that runs again revokes
 * leases within that: etcd #15247), and only for later revisions. */
static void check_etcd_lease_trust(struct fixture *f) {
    const int64_t later = INT64_MAX / 2; /* a revision after any settling */
    uint64_t t0 = now_msec();
    ASSERT(!store_lease_end_trusted(f->s, later));
    ASSERT(trusted_within(f, later, 6000));
    if (now_msec() - t0 < 1500)
        CHECK_FAIL("lease ends trusted after %llu ms, before the 2 s grace", (unsigned long long)(now_msec() - t0));
    /* What was deleted before the settling is not vouched for. */
    ASSERT(!store_lease_end_trusted(f->s, store_revision(f->s) - 1));

    /* A restart is a new raft term: nothing is vouched for until it settles. */
    etcd_stop(f);
    etcd_start(f);
    ASSERT(put_ok(f, "k", "v") > 0);
    ASSERT(!store_lease_end_trusted(f->s, later));
    ASSERT(trusted_within(f, later, 6000));

    /* A member that never answers may be a stalled leader: never vouched for.  It is asked again
     * every STORE_ETCD_MEMBER_RETRY_MSEC, not in a loop: its refusals cost next to no CPU. */
    char dead[64];
    snprintf(dead, sizeof(dead), "http://127.0.0.1:%d", free_port());
    const char *const eps[] = {f->endpoint, dead};
    fixture_close_store(f);
    ASSERT_OK(store_etcd_new(&f->loop, eps, ELEMENTSOF(eps), &f->s));
    ASSERT_EQ(get(f, "k")->error, 0);
    struct rusage ru0, ru1;
    ASSERT_OK(getrusage(RUSAGE_SELF, &ru0));
    ASSERT(!trusted_within(f, later, 3500));
    ASSERT_OK(getrusage(RUSAGE_SELF, &ru1));
    uint64_t cpu_ms =
        (uint64_t)(ru1.ru_utime.tv_sec - ru0.ru_utime.tv_sec + ru1.ru_stime.tv_sec - ru0.ru_stime.tv_sec) * 1000 +
        (uint64_t)((ru1.ru_utime.tv_usec - ru0.ru_utime.tv_usec + ru1.ru_stime.tv_usec - ru0.ru_stime.tv_usec) / 1000);
    if (cpu_ms > 700)
        CHECK_FAIL("%llu ms of CPU in 3.5 s with a member down", (unsigned long long)cpu_ms);
}
TEST(etcd_lease_ends_trusted_once_every_member_settled) {
    run_etcd(check_etcd_lease_trust);
}

/* An etcd with authentication on (etcd/etcd-auth.c): a wrong password gets
 * -EACCES; the right one works, within the user's permissions; a restart of
 * etcd ends every "simple" token, and the calls and the watch carry on with a
 * new one, missing nothing. */
static void check_etcd_auth(struct fixture *f) {
    static const char *const setup[][2] = {
        {"/v3/auth/user/add", "{\"name\":\"root\",\"password\":\"rootpw\"}"},
        {"/v3/auth/user/grant", "{\"user\":\"root\",\"role\":\"root\"}"},
        {"/v3/auth/user/add", "{\"name\":\"halo\",\"password\":\"pw\"}"},
        {"/v3/auth/role/add", "{\"name\":\"halo\"}"},
        /* readwrite on a/ ("YS8=") to a0 ("YTA="): the prefix a/ */
        {"/v3/auth/role/grant",
         "{\"name\":\"halo\",\"perm\":{\"permType\":\"READWRITE\",\"key\":\"YS8=\",\"range_end\":\"YTA=\"}}"},
        {"/v3/auth/user/grant", "{\"user\":\"halo\",\"role\":\"halo\"}"},
        {"/v3/auth/enable", "{}"},
    };
    for (size_t i = 0; i < ELEMENTSOF(setup); i++)
        ASSERT_EQ(etcd_http(f, setup[i][0], setup[i][1]), 200);
    const char *const eps[] = {f->endpoint};

    const store_etcd_options wrong = {.user = "halo", .password = "nope"};
    fixture_close_store(f);
    ASSERT_OK(store_etcd_new_with(&f->loop, eps, 1, &wrong, &f->s));
    ASSERT_EQ(get(f, "a/k")->error, -EACCES);
    ASSERT_EQ(put(f, "a/k", "v")->error, -EACCES);

    const store_etcd_options right = {.user = "halo", .password = "pw"};
    fixture_close_store(f);
    ASSERT_OK(store_etcd_new_with(&f->loop, eps, 1, &right, &f->s));
    int64_t rev = put_ok(f, "a/1", "1");
    ASSERT_KV(get_kv(f, "a/1"), "a/1", "1");
    ASSERT_EQ(put(f, "b", "v")->error, -EACCES); /* outside the role's prefix */
    struct reply *g = lease_grant(f, 60);
    ASSERT_EQ(g->error, 0);
    struct wrec *w = watch(f, "a/", 0);
    ASSERT_EQ(put_ok(f, "a/2", "2"), rev + 1);
    run_until_events(f, w, 1);

    /* Every token ends with the restart: the watch reopens with the old one
     * first (refused), the put is refused once; both authenticate again. */
    etcd_stop(f);
    etcd_start(f);
    ASSERT_EQ(put_ok(f, "a/3", "3"), rev + 2);
    ASSERT_EQ(lease_keepalive(f, g->lease)->error, 0);
    ASSERT_EQ(lease_revoke(f, g->lease)->error, 0);
    run_until_events(f, w, 2);
    assert_event(w, 0, STORE_EVENT_PUT, "a/2", rev + 1);
    assert_event(w, 1, STORE_EVENT_PUT, "a/3", rev + 2);
    ASSERT(!w->ended);
    w->w = store_watch_cancel(w->w);
}
TEST(etcd_authenticates_and_outlives_its_tokens) {
    run_etcd(check_etcd_auth);
}

/* A local backend vouches for every lease end. */
static void check_local_lease_trust(struct fixture *f) {
    ASSERT(store_lease_end_trusted(f->s, 1));
}
TEST(local_lease_ends_always_trusted) {
    run_backend(backend_sqlite, check_local_lease_trust);
}
