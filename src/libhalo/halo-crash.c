/* SPDX-License-Identifier: MIT */
/*
 * Crash capture: a handler for the fatal signals (SIGSEGV, SIGBUS, SIGFPE,
 * SIGILL, SIGABRT) that writes what halod shows as the component's last
 * failure (the signal, its code, the faulting address and a backtrace) to the
 * file halod names in $HALO_CRASH_FILE, then lets the signal kill the process
 * as it would have without the handler, so that the exit status stays the
 * signal (and a core dump is still made where the system makes one).
 *
 * Installed by the first halo_open() of a process that halod started with
 * $HALO_CRASH_FILE set, unless $HALO_CRASH_HANDLER is "0", and only for the
 * signals whose disposition is still the default: a handler of the
 * application's own is never replaced.
 *
 * The handler runs on an alternate stack (a stack overflow is a SIGSEGV too)
 * and calls only write(), sigaction(), raise() and glibc's backtrace() and
 * backtrace_symbols_fd(), which allocate nothing once backtrace() has run
 * once (that first call loads libgcc's unwinder: done here at installation).
 * The file is opened at installation, not in the handler.
 *
 * What it writes, one write() per line (halod reads at most a few KiB):
 *   halo-crash 1
 *   signal <n>
 *   code <si_code>
 *   addr 0x<si_addr>
 *   <one line per frame, as backtrace_symbols_fd() prints them, from the
 *    signal's trampoline on: the next frame is where it happened>
 */
#include <execinfo.h>
#include <fcntl.h>
#include <pthread.h>
#include <signal.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "halo-internal.h"
#include "macro.h"

#define CRASH_FRAMES_MAX 32
#define CRASH_ALTSTACK_SIZE (64 * 1024)

static const int fatal_signals[] = {SIGSEGV, SIGBUS, SIGFPE, SIGILL, SIGABRT};
static int crash_fd = -1;
static volatile sig_atomic_t crashing;
static pthread_once_t crash_once = PTHREAD_ONCE_INIT;

/* Appends the decimal (base 10) or hexadecimal (base 16) digits of v to p; returns the new end. */
static char *put_num(char *p, uintmax_t v, unsigned base) {
    char tmp[3 * sizeof(v)];
    size_t n = 0;
    do {
        tmp[n++] = "0123456789abcdef"[v % base];
        v /= base;
    } while (v);
    while (n)
        *p++ = tmp[--n];
    return p;
}

/* One line "<key> <value>\n"; negative values keep their sign. */
static void put_line(const char *key, intmax_t v, bool hex) {
    char line[64], *p = line;
    size_t k = strlen(key);
    memcpy(p, key, k);
    p += k;
    *p++ = ' ';
    if (hex) {
        *p++ = '0';
        *p++ = 'x';
        p = put_num(p, (uintmax_t)v, 16);
    } else {
        if (v < 0)
            *p++ = '-';
        p = put_num(p, v < 0 ? -(uintmax_t)v : (uintmax_t)v, 10);
    }
    *p++ = '\n';
    (void)!write(crash_fd, line, (size_t)(p - line));
}

static void on_fatal_signal(int sig, siginfo_t *si, void *uctx) {
    (void)uctx;
    /* The first crashing thread writes; any other only dies. */
    if (!crashing) {
        crashing = 1;
        static const char head[] = "halo-crash 1\n";
        (void)!write(crash_fd, head, sizeof(head) - 1);
        put_line("signal", sig, false);
        put_line("code", si ? si->si_code : 0, false);
        put_line("addr", si ? (intmax_t)(uintptr_t)si->si_addr : 0, true);
        void *frames[CRASH_FRAMES_MAX];
        int n = backtrace(frames, CRASH_FRAMES_MAX);
        if (n > 1) /* frames[0] is this handler */
            backtrace_symbols_fd(frames + 1, n - 1, crash_fd);
    }
    /* Dies of the signal as without the handler: the default disposition
     * again, and the signal raised anew (blocked while this handler runs, it
     * is delivered on return; a fault would also recur on return). */
    struct sigaction dfl = {.sa_handler = SIG_DFL};
    sigemptyset(&dfl.sa_mask);
    (void)sigaction(sig, &dfl, NULL);
    (void)raise(sig);
}

/* The calling thread's alternate stack, unless it has one. */
static void altstack_setup(void) {
    stack_t old;
    if (sigaltstack(NULL, &old) == 0 && !(old.ss_flags & SS_DISABLE))
        return;
    stack_t st = {.ss_size = CRASH_ALTSTACK_SIZE};
    st.ss_sp = malloc(st.ss_size);
    if (st.ss_sp && sigaltstack(&st, NULL) < 0)
        free(st.ss_sp);
    /* else kept for the process's life: the handler may need it at any time. */
}

static void crash_install(void) {
    const char *path = getenv("HALO_CRASH_FILE"), *opt = getenv("HALO_CRASH_HANDLER");
    if (!path || !*path || (opt && strcmp(opt, "0") == 0))
        return;
    int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC | O_NOFOLLOW, 0600);
    if (fd < 0)
        return;
    void *probe[1];
    (void)backtrace(probe, 1); /* loads the unwinder now, not in the handler */
    crash_fd = fd;
    altstack_setup();
    struct sigaction sa = {.sa_sigaction = on_fatal_signal, .sa_flags = SA_SIGINFO | SA_ONSTACK};
    sigemptyset(&sa.sa_mask);
    for (size_t i = 0; i < ELEMENTSOF(fatal_signals); i++) {
        struct sigaction cur;
        if (sigaction(fatal_signals[i], NULL, &cur) == 0 && !(cur.sa_flags & SA_SIGINFO) && cur.sa_handler == SIG_DFL)
            (void)sigaction(fatal_signals[i], &sa, NULL);
    }
}

void halo__crash_install(void) {
    (void)pthread_once(&crash_once, crash_install);
}
