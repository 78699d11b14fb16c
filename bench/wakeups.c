/* SPDX-License-Identifier: MIT */
/*
 * bench/wakeups [PROCESSES] [ROUNDS_PER_S ...]: what it costs this machine to
 * wake PROCESSES processes once per round, with nothing of halo in the way:
 * the floor under any delivery that tells every process of every event.
 *
 * PROCESSES children (default 1,000) each wait in poll() on a SOCK_SEQPACKET
 * socket and read what comes; the parent sends one 1,200-byte packet (about a
 * note of bench/events' paced phase) to every child, ROUNDS_PER_S times a
 * second (default 30, 50 and 100) for 5 s.  For each rate: CPU time per
 * wake-up (children and sender together), the share of the machine's CPUs
 * used, and how long one round of sends took.  The last line is one JSON
 * object.
 */
#include <errno.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#define PACKET 1200
#define SECONDS 5
#define RATES_MAX 8

static double now(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static double cpu_seconds(int who) {
    struct rusage ru;
    getrusage(who, &ru);
    return (double)(ru.ru_utime.tv_sec + ru.ru_stime.tv_sec) +
           (double)(ru.ru_utime.tv_usec + ru.ru_stime.tv_usec) / 1e6;
}

static void child(int fd) {
    char buf[4096];
    for (;;) {
        struct pollfd p = {.fd = fd, .events = POLLIN};
        if (poll(&p, 1, -1) < 0 && errno != EINTR)
            _exit(1);
        ssize_t n;
        while ((n = recv(fd, buf, sizeof(buf), MSG_DONTWAIT)) > 0)
            ;
        if (n == 0)
            _exit(0); /* the sender is done */
        if (errno != EAGAIN && errno != EINTR)
            _exit(1);
    }
}

/* Stops and reaps the children started so far. */
static void reap(int *fds, pid_t *pids, int n) {
    for (int i = 0; i < n; i++)
        close(fds[i]);
    for (int i = 0; i < n; i++)
        while (waitpid(pids[i], NULL, 0) < 0 && errno == EINTR)
            ;
}

struct result {
    int rate;
    double us_per_wakeup, busy_pct, round_ms;
};

static int run(int n, int rate, struct result *res) {
    int *fds = calloc((size_t)n, sizeof(*fds));
    pid_t *pids = calloc((size_t)n, sizeof(*pids));
    static char packet[PACKET];
    int started = 0, ret = -1;
    if (!fds || !pids)
        goto out;
    double cpu_children = cpu_seconds(RUSAGE_CHILDREN);
    for (; started < n; started++) {
        int sv[2];
        if (socketpair(AF_UNIX, SOCK_SEQPACKET, 0, sv) < 0) {
            perror("wakeups: socketpair");
            goto stop;
        }
        pid_t pid = fork();
        if (pid < 0) {
            perror("wakeups: fork");
            close(sv[0]);
            close(sv[1]);
            goto stop;
        }
        if (pid == 0) {
            prctl(PR_SET_PDEATHSIG, SIGKILL);
            for (int i = 0; i < started; i++)
                close(fds[i]); /* the others' EOF must not wait for this one */
            close(sv[0]);
            child(sv[1]);
        }
        close(sv[1]);
        fds[started] = sv[0];
        pids[started] = pid;
    }
    usleep(500 * 1000); /* every child is in poll() */

    double cpu_self = cpu_seconds(RUSAGE_SELF), sending = 0, t0 = now();
    int rounds = rate * SECONDS;
    for (int r = 0; r < rounds; r++) {
        double wait = t0 + (double)r / rate - now();
        if (wait > 0)
            nanosleep(&(struct timespec){.tv_sec = 0, .tv_nsec = (long)(wait * 1e9)}, NULL);
        double s = now();
        for (int i = 0; i < n; i++)
            if (send(fds[i], packet, sizeof(packet), MSG_DONTWAIT | MSG_NOSIGNAL) < 0 && errno != EAGAIN) {
                perror("wakeups: send");
                goto stop;
            }
        sending += now() - s;
    }
    double wall = now() - t0;
    cpu_self = cpu_seconds(RUSAGE_SELF) - cpu_self;
    reap(fds, pids, started);
    started = 0;
    cpu_children = cpu_seconds(RUSAGE_CHILDREN) - cpu_children;
    long cpus = sysconf(_SC_NPROCESSORS_ONLN);
    *res = (struct result){
        .rate = rate,
        .us_per_wakeup = (cpu_children + cpu_self) / ((double)n * rounds) * 1e6,
        .busy_pct = (cpu_children + cpu_self) / wall / (double)(cpus > 0 ? cpus : 1) * 100,
        .round_ms = sending / rounds * 1e3,
    };
    printf("%d processes, %d rounds/s for %d s: %.1f us of CPU per wake-up (children %.2f s, sender %.2f s), "
           "%.0f%% of the machine, a round's sends %.2f ms\n",
           n, rate, SECONDS, res->us_per_wakeup, cpu_children, cpu_self, res->busy_pct, res->round_ms);
    fflush(stdout);
    ret = 0;
stop:
    reap(fds, pids, started);
out:
    free(fds);
    free(pids);
    return ret;
}

int main(int argc, char **argv) {
    int n = argc > 1 ? atoi(argv[1]) : 1000;
    int rates[RATES_MAX] = {30, 50, 100}, n_rates = 3;
    if (argc > 2)
        for (n_rates = 0; n_rates < RATES_MAX && n_rates + 2 < argc; n_rates++)
            rates[n_rates] = atoi(argv[n_rates + 2]);
    if (n < 1 || n > 10000) {
        fprintf(stderr, "usage: wakeups [PROCESSES (1-10000)] [ROUNDS_PER_S (1-1000) ...]\n");
        return 2;
    }
    for (int i = 0; i < n_rates; i++)
        if (rates[i] < 1 || rates[i] > 1000) {
            fprintf(stderr, "usage: wakeups [PROCESSES (1-10000)] [ROUNDS_PER_S (1-1000) ...]\n");
            return 2;
        }
    struct rlimit rl;
    if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur < (rlim_t)n + 64) {
        rl.rlim_cur = rl.rlim_max;
        (void)setrlimit(RLIMIT_NOFILE, &rl);
    }
    struct result res[RATES_MAX];
    for (int i = 0; i < n_rates; i++)
        if (run(n, rates[i], &res[i]) < 0)
            return 1;
    printf("{\"processes\": %d", n);
    for (int i = 0; i < n_rates; i++)
        printf(", \"us_per_wakeup_at_%d\": %.1f, \"busy_pct_at_%d\": %.0f, \"round_send_ms_at_%d\": %.2f", res[i].rate,
               res[i].us_per_wakeup, res[i].rate, res[i].busy_pct, res[i].rate, res[i].round_ms);
    printf("}\n");
    return 0;
}
