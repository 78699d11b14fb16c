/* SPDX-License-Identifier: MIT */
/* Unit test runner: runs every registered test in a forked child with a timeout. */
#include "tests.h"

#include <errno.h>
#include <signal.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#define TESTS_MAX 512

static struct {
    const char *name;
    test_fn fn;
} tests[TESTS_MAX];
static size_t n_tests;

void test_register(const char *name, test_fn fn) {
    if (n_tests >= TESTS_MAX) {
        fprintf(stderr, "too many tests\n");
        abort();
    }
    tests[n_tests].name = name;
    tests[n_tests].fn = fn;
    n_tests++;
}

static int run_one(size_t i, int timeout) {
    fflush(NULL);
    pid_t pid = fork();
    if (pid < 0) {
        perror("fork");
        return -1;
    }
    if (pid == 0) {
        alarm((unsigned)timeout);
        tests[i].fn();
        fflush(NULL);
        exit(0); /* not _exit: LeakSanitizer checks at exit */
    }
    int status;
    while (waitpid(pid, &status, 0) < 0)
        if (errno != EINTR)
            return -1;
    if (WIFEXITED(status) && WEXITSTATUS(status) == 0)
        return 0;
    if (WIFSIGNALED(status))
        fprintf(stderr, "  %s: killed by signal %d%s\n", tests[i].name, WTERMSIG(status),
                WTERMSIG(status) == SIGALRM ? " (timeout)" : "");
    return -1;
}

int main(int argc, char **argv) {
    const char *filter = argc > 1 ? argv[1] : NULL;
    const char *t = getenv("HALO_TEST_TIMEOUT");
    int timeout = t ? atoi(t) : 20;
    unsigned passed = 0, failed = 0;

    for (size_t i = 0; i < n_tests; i++) {
        if (filter && !strstr(tests[i].name, filter))
            continue;
        struct timespec a, b;
        clock_gettime(CLOCK_MONOTONIC, &a);
        int r = run_one(i, timeout);
        clock_gettime(CLOCK_MONOTONIC, &b);
        double ms = (double)(b.tv_sec - a.tv_sec) * 1e3 + (double)(b.tv_nsec - a.tv_nsec) / 1e6;
        printf("%s %s (%.1f ms)\n", r == 0 ? "ok  " : "FAIL", tests[i].name, ms);
        if (r == 0)
            passed++;
        else
            failed++;
    }
    printf("%u passed, %u failed\n", passed, failed);
    return failed ? 1 : 0;
}
