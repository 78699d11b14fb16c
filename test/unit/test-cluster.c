/* SPDX-License-Identifier: MIT */
/*
 * Unit tests of the membership (src/halod/cluster/cluster.c) on the memory
 * store: the life cycle of struct cluster against the loop that holds its
 * timers.  A use after free here shows under the sanitizer build (and
 * valgrind); a loop left with handles nobody closes shows in every build.
 */
#include <errno.h>
#include <stdbool.h>
#include <uv.h>

#include "cluster.h"
#include "keys.h"
#include "store.h"
#include "tests.h"

struct fixture {
    uv_loop_t loop;
    char prefix[STORE_KEY_MAX];
    store *store;
    struct cluster *cluster;
    bool joined;
};

static void on_joined(struct cluster *c, void *userdata) {
    ((struct fixture *)userdata)->joined = true;
}

static const struct cluster_handlers handlers = {.on_joined = on_joined};

static void fixture_start(struct fixture *f) {
    ASSERT_OK(uv_loop_init(&f->loop));
    ASSERT_OK(key_prefix(f->prefix, "t"));
    ASSERT_OK(store_memory_new(&f->loop, &f->store));
    /* TTL 1 s: the keepalive timer fires every 333 ms, so a timer left
     * running in freed memory fires well within the test's timeout. */
    struct cluster_params cp = {
        .loop = &f->loop, .store = f->store, .prefix = f->prefix, .node = "n1", .ttl = 1, .handlers = &handlers};
    cp.userdata = f;
    ASSERT_OK(cluster_new(&cp, &f->cluster));
    ASSERT_OK(cluster_start(f->cluster));
}

static void run_until_joined(struct fixture *f) {
    for (int i = 0; i < 100000 && !f->joined; i++)
        uv_run(&f->loop, UV_RUN_ONCE);
    ASSERT(f->joined);
}

/* What uv_run() does next with every handle the loop still holds, done here
 * in instrumented code: read it.  A handle inside freed memory is a
 * heap-use-after-free for AddressSanitizer. */
static void on_walk(uv_handle_t *h, void *arg) {
    if (h->data)
        (*(unsigned *)arg)++;
}

static unsigned read_every_handle(struct fixture *f) {
    unsigned n = 0;
    uv_walk(&f->loop, on_walk, &n);
    return n;
}

/* The loop ends by itself and closes: every handle was closed and its close
 * callback run (uv_loop_close() says -EBUSY otherwise). */
static void fixture_end(struct fixture *f) {
    f->store = store_free(f->store); /* answers every call in flight (store.h) */
    (void)read_every_handle(f);
    ASSERT_EQ(uv_run(&f->loop, UV_RUN_DEFAULT), 0);
    ASSERT_EQ(uv_loop_close(&f->loop), 0);
}

/* halod's order after a failed start (manager_free()): leave, close, free,
 * the store answers the revoke, and only then the loop runs the timers'
 * close callbacks: the struct must still be there for them. */
TEST(cluster_freed_right_after_close_outlives_its_closing_timers) {
    struct fixture f = {0};
    fixture_start(&f);
    run_until_joined(&f);
    cluster_leave(f.cluster);
    cluster_close(f.cluster);
    f.cluster = cluster_free(f.cluster);
    fixture_end(&f);
}

/* cluster_free() without cluster_close(): it closes the running timers
 * itself; none of them fires into freed memory, and the loop ends. */
TEST(cluster_freed_without_close_stops_its_timers) {
    struct fixture f = {0};
    fixture_start(&f);
    run_until_joined(&f);
    f.cluster = cluster_free(f.cluster);
    fixture_end(&f);
}

/* Freed while the store has not answered its first read yet (a start that
 * fails further on in halod): the answer still finds the struct, and the
 * loop is left with no handle of it. */
TEST(cluster_freed_before_the_store_answers_leaves_the_loop_closable) {
    struct fixture f = {0};
    fixture_start(&f);
    f.cluster = cluster_free(f.cluster);
    fixture_end(&f);
}
