/* SPDX-License-Identifier: MIT */
/*
 * halo-guard: the node lease's fence for what libhalo cannot fence itself.
 *
 * An SA-aware component stops itself when its node's lease deadline passes
 * unrenewed (libhalo's kill timer, halo-lease.c): by then another node may
 * have taken its work.  An unmodified program (non-SA-aware) cannot, and an
 * OCF resource (an address, a mount) is no process at all.  While halod runs
 * it stops them itself when it fences the node; once halod is killed or
 * stopped nothing would.  So, on several nodes, halod starts one guard beside
 * each such ACTIVE component, in a session of its own (it outlives halod):
 *
 *   halo-guard --lease FILE [--while FILE] [--pid PID --start-time TICKS] [--pidfile PATH]
 *              [--stop-timeout MSEC] [-- STOP-COMMAND...]
 *
 * It watches the lease file (one uint64_t: the CLOCK_MONOTONIC deadline in
 * microseconds, 0 for none; io/lease-file.h) and sleeps until the deadline.
 * If it has not moved by then, the node's lease may have run out: it kills
 * the process group of PID (and of the pidfile's process) with SIGKILL and
 * runs STOP-COMMAND (an OCF agent's stop; killed if it outlasts MSEC, 20 s
 * unless given: the other nodes wait that long before they take it over),
 * then exits 3.  It exits 0 on
 * SIGTERM or SIGINT, when the --while file is removed (halod stopped the
 * component: every guard of it ends, a previous halod's included), and when
 * PID ends if there is neither a pidfile nor a stop command to see to.  A deadline of 0 means halod fenced the node
 * itself or runs alone: nothing is done until a deadline runs again.
 *
 * Exit status: 0 nothing to guard any more, 2 usage or set-up error, 3 fenced.
 */
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <poll.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <limits.h>
#include <stdbool.h>
#include <sys/inotify.h>
#include <sys/mman.h>
#include <sys/signalfd.h>
#include <sys/stat.h>
#include <sys/timerfd.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "parse-util.h"
#include "process-util.h"

#define IDLE_CHECK_USEC (200 * 1000ULL) /* while no deadline runs */
#define STOP_TIMEOUT_MSEC 20000         /* the stop command's, unless given: an OCF stop's default */

static const char *arg_lease, *arg_pidfile, *arg_while;
static pid_t arg_pid;
static uint64_t arg_start_time;
static char **arg_stop;
static uint64_t arg_stop_timeout_msec = STOP_TIMEOUT_MSEC;

static uint64_t now_usec(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000ULL + (uint64_t)ts.tv_nsec / 1000;
}

static void arm(int tfd, uint64_t at_usec, bool absolute) {
    struct itimerspec its = {
        .it_value = {.tv_sec = (time_t)(at_usec / 1000000), .tv_nsec = (long)(at_usec % 1000000) * 1000}};
    (void)timerfd_settime(tfd, absolute ? TFD_TIMER_ABSTIME : 0, &its, NULL);
}

/* The pid of a pidfile's process, or 0. */
static pid_t pidfile_pid(const char *path) {
    char buf[32] = "";
    int fd = open(path, O_RDONLY | O_CLOEXEC | O_NONBLOCK);
    if (fd < 0)
        return 0;
    ssize_t n = read(fd, buf, sizeof(buf) - 1);
    close(fd);
    uint64_t v;
    if (n <= 0)
        return 0;
    buf[n] = 0;
    buf[strcspn(buf, " \t\r\n")] = 0;
    return parse_u64_range(buf, 2, INT32_MAX, &v) < 0 ? 0 : (pid_t)v;
}

static void kill_group_of(pid_t pid) {
    pid_t g = pid > 0 ? getpgid(pid) : -1;
    if (g > 1 && g != getpgid(0))
        (void)kill(-g, SIGKILL);
    if (pid > 0)
        (void)kill(pid, SIGKILL);
}

/* Runs the stop command, waiting for it (through a pidfd) at most arg_stop_timeout_msec, then SIGKILL. */
static void run_stop(void) {
    pid_t p = fork();
    if (p == 0) {
        sigset_t all;
        sigemptyset(&all);
        sigprocmask(SIG_SETMASK, &all, NULL);
        execv(arg_stop[0], arg_stop);
        _exit(127);
    }
    if (p < 0) {
        fprintf(stderr, "halo-guard: cannot run '%s': %s\n", arg_stop[0], strerror(errno));
        return;
    }
    int pfd = process_pidfd_open(p), st;
    uint64_t end = now_usec() + arg_stop_timeout_msec * 1000;
    for (;;) {
        if (waitpid(p, &st, WNOHANG) == p) {
            if (!WIFEXITED(st) || WEXITSTATUS(st) != 0)
                fprintf(stderr, "halo-guard: '%s' failed (status 0x%x)\n", arg_stop[0], (unsigned)st);
            break;
        }
        uint64_t now = now_usec();
        if (now >= end) {
            fprintf(stderr, "halo-guard: '%s' took more than %llu ms: killed\n", arg_stop[0],
                    (unsigned long long)arg_stop_timeout_msec);
            kill(p, SIGKILL);
            (void)waitpid(p, NULL, 0);
            break;
        }
        /* Its end wakes the poll; without a pidfd, look again every 100 ms. */
        struct pollfd q = {.fd = pfd, .events = POLLIN};
        uint64_t left_ms = (end - now + 999) / 1000; /* at most a day: fits */
        (void)poll(&q, pfd >= 0 ? 1 : 0, (int)(pfd < 0 && left_ms > 100 ? 100 : left_ms));
    }
    if (pfd >= 0)
        close(pfd);
}

/* Reads the inotify events: whether the --while file (named name) went. */
static bool while_removed(int ifd, const char *name) {
    char buf[4096] __attribute__((aligned(__alignof__(struct inotify_event))));
    bool gone = false;
    for (;;) {
        ssize_t n = read(ifd, buf, sizeof(buf));
        if (n <= 0)
            return gone;
        for (char *q = buf; q < buf + n;) {
            const struct inotify_event *ev = (const struct inotify_event *)q;
            if (ev->len && strcmp(ev->name, name) == 0)
                gone = true;
            q += sizeof(*ev) + ev->len;
        }
    }
}

static int fence(uint64_t deadline) {
    fprintf(stderr,
            "halo-guard: pid %d: the node lease was not renewed by its deadline (%.3f s ago); another node may take "
            "over: fencing\n",
            (int)getpid(), (double)(now_usec() - deadline) / 1e6);
    kill_group_of(arg_pid);
    if (arg_pidfile)
        kill_group_of(pidfile_pid(arg_pidfile));
    if (arg_stop)
        run_stop();
    return 3;
}

static int parse(int argc, char **argv) {
    static const struct option opts[] = {{"lease", required_argument, NULL, 'l'},
                                         {"pid", required_argument, NULL, 'p'},
                                         {"start-time", required_argument, NULL, 't'},
                                         {"pidfile", required_argument, NULL, 'f'},
                                         {"while", required_argument, NULL, 'w'},
                                         {"stop-timeout", required_argument, NULL, 's'},
                                         {}};
    uint64_t v;
    int c;
    while ((c = getopt_long(argc, argv, "+", opts, NULL)) >= 0)
        switch (c) {
        case 'l':
            arg_lease = optarg;
            break;
        case 'p':
            if (parse_u64_range(optarg, 2, INT32_MAX, &v) < 0)
                return -EINVAL;
            arg_pid = (pid_t)v;
            break;
        case 't':
            if (parse_u64_range(optarg, 0, UINT64_MAX, &v) < 0)
                return -EINVAL;
            arg_start_time = v;
            break;
        case 'f':
            arg_pidfile = optarg;
            break;
        case 'w':
            arg_while = optarg;
            break;
        case 's':
            if (parse_u64_range(optarg, 1, 24 * 3600 * 1000ULL, &v) < 0)
                return -EINVAL;
            arg_stop_timeout_msec = v;
            break;
        default:
            return -EINVAL;
        }
    if (optind < argc)
        arg_stop = argv + optind;
    if (!arg_lease || (!arg_pid && !arg_stop) || (arg_stop && arg_stop[0][0] != '/') ||
        (arg_while && (arg_while[0] != '/' || strlen(arg_while) >= PATH_MAX)))
        return -EINVAL;
    return 0;
}

int main(int argc, char **argv) {
    if (parse(argc, argv) < 0) {
        fprintf(stderr, "usage: halo-guard --lease FILE [--while /ABSOLUTE/FILE] [--pid PID --start-time TICKS] "
                        "[--pidfile PATH] [--stop-timeout MSEC] [-- /ABSOLUTE/STOP-COMMAND ARGS...]\n");
        return 2;
    }
    /* The signals halod stops it with, and its own children's end, come through a descriptor. */
    sigset_t mask;
    sigemptyset(&mask);
    sigaddset(&mask, SIGTERM);
    sigaddset(&mask, SIGINT);
    sigaddset(&mask, SIGHUP);
    sigprocmask(SIG_BLOCK, &mask, NULL);
    int sfd = signalfd(-1, &mask, SFD_CLOEXEC);

    /* The --while file: its directory is watched for its removal. */
    int ifd = -1;
    const char *while_name = NULL;
    if (arg_while) {
        char dir[PATH_MAX];
        snprintf(dir, sizeof(dir), "%s", arg_while);
        char *slash = strrchr(dir, '/');
        while_name = arg_while + (slash - dir) + 1;
        *slash = 0;
        ifd = inotify_init1(IN_CLOEXEC | IN_NONBLOCK);
        if (ifd < 0 || inotify_add_watch(ifd, *dir ? dir : "/", IN_DELETE | IN_MOVED_FROM) < 0) {
            fprintf(stderr, "halo-guard: cannot watch '%s': %s\n", arg_while, strerror(errno));
            return 2;
        }
        if (access(arg_while, F_OK) < 0)
            return 0; /* halod removed it already: nothing to guard */
    }

    int pfd = -1;
    if (arg_pid) {
        pfd = process_pidfd_open(arg_pid);
        if (pfd < 0)
            return 0; /* already gone: nothing to guard */
        if (arg_start_time && process_start_time(arg_pid) != arg_start_time)
            return 0; /* the pid is another process's now */
    }
    int lfd = open(arg_lease, O_RDONLY | O_CLOEXEC);
    struct stat sb;
    if (lfd < 0 || fstat(lfd, &sb) < 0 || (size_t)sb.st_size < sizeof(uint64_t)) {
        fprintf(stderr, "halo-guard: cannot read the lease file '%s': %s\n", arg_lease,
                lfd < 0 ? strerror(errno) : "too short");
        return 2;
    }
    const uint64_t *deadline = mmap(NULL, sizeof(uint64_t), PROT_READ, MAP_SHARED, lfd, 0);
    close(lfd);
    int tfd = timerfd_create(CLOCK_MONOTONIC, TFD_CLOEXEC);
    if (deadline == MAP_FAILED || tfd < 0 || sfd < 0) {
        fprintf(stderr, "halo-guard: set-up failed: %s\n", strerror(errno));
        return 2;
    }

    for (;;) {
        uint64_t d = __atomic_load_n(deadline, __ATOMIC_ACQUIRE), now = now_usec();
        if (d != 0 && now >= d)
            return fence(d);
        if (d == 0)
            arm(tfd, IDLE_CHECK_USEC, false);
        else
            arm(tfd, d, true);
        struct pollfd p[4] = {{.fd = tfd, .events = POLLIN},
                              {.fd = sfd, .events = POLLIN},
                              {.fd = ifd, .events = POLLIN},
                              {.fd = pfd, .events = POLLIN}};
        if (poll(p, 4, -1) < 0 && errno != EINTR)
            return 2;
        if (p[1].revents)
            return 0; /* halod stops the component itself */
        if (p[2].revents && while_removed(ifd, while_name))
            return 0; /* halod stopped it: every guard of it ends */
        if (p[3].revents && !arg_pidfile && !arg_stop)
            return 0; /* the process ended, and nothing else is left to see to */
        if (p[3].revents) {
            close(pfd); /* ended: poll no more on it, and kill no later process that gets its pid */
            pfd = -1;
            arg_pid = 0;
        }
        uint64_t ticks;
        /* Drains the timer; a read that fails leaves nothing to drain (glibc's fortified read() is
         * warn_unused_result, which a (void) cast does not silence: Debian's hardened build). */
        if (p[0].revents && read(tfd, &ticks, sizeof(ticks)) < 0)
            continue;
    }
}
