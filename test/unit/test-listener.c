/* SPDX-License-Identifier: MIT */
/* Unit tests of io/listener.c: connections are handed over; out of descriptors, accepting pauses and never spins. */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include "listener.h"
#include "macro.h"
#include "tests.h"

struct fixture {
    uv_loop_t loop;
    struct listener *l;
    struct sockaddr_un sa;
    int accepted[8];
    unsigned n;
};

static void on_accept(int fd, const struct sockaddr *addr, socklen_t len, void *userdata) {
    struct fixture *f = userdata;
    ASSERT(f->n < ELEMENTSOF(f->accepted));
    ASSERT_EQ(addr->sa_family, AF_UNIX);
    f->accepted[f->n++] = fd;
}

static void fixture_start(struct fixture *f) {
    *f = (struct fixture){.sa.sun_family = AF_UNIX};
    snprintf(f->sa.sun_path, sizeof(f->sa.sun_path), "/tmp/test-listener-%d.sock", (int)getpid());
    (void)unlink(f->sa.sun_path);
    int fd = socket(AF_UNIX, SOCK_SEQPACKET | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    ASSERT(fd >= 0);
    ASSERT_OK(bind(fd, (struct sockaddr *)&f->sa, sizeof(f->sa)));
    ASSERT_OK(listen(fd, 16));
    ASSERT_OK(uv_loop_init(&f->loop));
    ASSERT_OK(listener_new(&f->loop, fd, "test", on_accept, f, &f->l));
}

static void fixture_stop(struct fixture *f) {
    f->l = listener_free(f->l);
    for (unsigned i = 0; i < f->n; i++)
        close(f->accepted[i]);
    ASSERT_OK(uv_run(&f->loop, UV_RUN_NOWAIT));
    ASSERT_OK(uv_loop_close(&f->loop));
    (void)unlink(f->sa.sun_path);
}

/* A client that connects (into the backlog, before anyone accepts). */
static int client(struct fixture *f) {
    int fd = socket(AF_UNIX, SOCK_SEQPACKET | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    ASSERT(fd >= 0);
    ASSERT_OK(connect(fd, (struct sockaddr *)&f->sa, sizeof(f->sa)));
    return fd;
}

static void on_stop(uv_timer_t *t) {
    uv_stop(t->loop);
}

/* Runs the loop for ms; returns the CPU time this process used meanwhile, in ms. */
static long run_for(struct fixture *f, unsigned ms) {
    struct rusage a, b;
    uv_timer_t t;
    ASSERT_OK(uv_timer_init(&f->loop, &t));
    ASSERT_OK(uv_timer_start(&t, on_stop, ms, 0));
    ASSERT_OK(getrusage(RUSAGE_SELF, &a));
    (void)uv_run(&f->loop, UV_RUN_DEFAULT);
    ASSERT_OK(getrusage(RUSAGE_SELF, &b));
    uv_close((uv_handle_t *)&t, NULL);
    (void)uv_run(&f->loop, UV_RUN_NOWAIT);
    return (b.ru_utime.tv_sec - a.ru_utime.tv_sec + b.ru_stime.tv_sec - a.ru_stime.tv_sec) * 1000 +
           (b.ru_utime.tv_usec - a.ru_utime.tv_usec + b.ru_stime.tv_usec - a.ru_stime.tv_usec) / 1000;
}

TEST(listener_hands_over_each_connection) {
    struct fixture f;
    fixture_start(&f);
    int c[3] = {client(&f), client(&f), client(&f)};
    for (int i = 0; i < 10 && f.n < 3; i++)
        ASSERT_OK(uv_run(&f.loop, UV_RUN_NOWAIT));
    ASSERT_EQ(f.n, 3);
    ASSERT_EQ(listener_pauses(f.l), 0);
    for (int i = 0; i < 3; i++)
        close(c[i]);
    fixture_stop(&f);
}

TEST(listener_out_of_descriptors_pauses_and_resumes) {
    struct fixture f;
    fixture_start(&f);
    int c[2] = {client(&f), client(&f)};
    /* Every descriptor taken: accept() fails with EMFILE. */
    struct rlimit rl;
    ASSERT_OK(getrlimit(RLIMIT_NOFILE, &rl));
    rl.rlim_cur = 64;
    ASSERT_OK(setrlimit(RLIMIT_NOFILE, &rl));
    int filler[64], n = 0;
    while (n < 64 && (filler[n] = open("/dev/null", O_RDONLY | O_CLOEXEC)) >= 0)
        n++;
    ASSERT(n < 64 && errno == EMFILE);

    /* The connections wait; the loop sleeps between tries instead of spinning. */
    long cpu = run_for(&f, 600);
    ASSERT_EQ(f.n, 0);
    ASSERT(listener_pauses(f.l) >= 1 && listener_pauses(f.l) <= 600 / LISTENER_PAUSE_MS + 2);
    ASSERT(cpu < 150);

    /* One descriptor freed (a connection closed): one more is accepted at once, then it pauses again. */
    close(filler[--n]);
    uint64_t pauses = listener_pauses(f.l);
    listener_resume(f.l);
    ASSERT_OK(uv_run(&f.loop, UV_RUN_NOWAIT));
    ASSERT_EQ(f.n, 1);
    ASSERT_EQ(listener_pauses(f.l), pauses + 1);

    /* Descriptors back: the next try takes the rest. */
    while (n > 0)
        close(filler[--n]);
    (void)run_for(&f, 2 * LISTENER_PAUSE_MS);
    ASSERT_EQ(f.n, 2);
    close(c[0]);
    close(c[1]);
    fixture_stop(&f);
}
