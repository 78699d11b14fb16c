/* SPDX-License-Identifier: MIT */
/*
 * haloctl sim: starting the simulation's etcd members and halods as daemons of their own (a new session, in /,
 * stdin /dev/null, output to a log file), and stopping them.  A recorded process is signalled only through a pidfd
 * opened while its pid has the start time recorded: by then the pid may belong to another process.
 */
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <unistd.h>

#include "macro.h"
#include "process-util.h"
#include "strprintf.h"
#include "sim-internal.h"

/* Opens a pidfd for p while it runs as the process sim up started.  Returns 0 and the pidfd; -ESRCH if it has
 * ended (a zombie has); -ESTALE if its pid belongs to another process now; -errno. */
static int proc_open(const struct sim_proc *p, int *ret_fd) {
    if (p->pid <= 0)
        return -ESRCH;
    /* The pidfd first: if the start time matches after it is open, the pidfd is our process, whatever happens. */
    _cleanup_close_ int fd = process_pidfd_open(p->pid);
    if (fd < 0)
        return fd;
    char state;
    uint64_t start;
    int r = process_get_stat(p->pid, &state, &start);
    if (r < 0)
        return r;
    if (start != p->start_time)
        return -ESTALE;
    if (state == 'Z' || state == 'X') {
        (void)process_pidfd_reap(fd, NULL); /* if it is a child of ours (sim up stopping what it started) */
        return -ESRCH;
    }
    *ret_fd = TAKE_FD(fd);
    return 0;
}

bool sim_proc_alive(const struct sim_proc *p) {
    _cleanup_close_ int fd = -1;
    return proc_open(p, &fd) == 0;
}

static int start_proc(struct sim_proc *p, const char *path, char *const argv[]) {
    /* A daemon that outlives haloctl and its terminal. */
    struct process_spawn_options o = {.path = path,
                                      .argv = argv,
                                      .log = p->log,
                                      .stdout_fd = -1,
                                      .stderr_fd = -1,
                                      .workdir = "/",
                                      .new_session = true,
                                      .exec_error = true};
    pid_t pid;
    int r = process_spawn(&o, &pid);
    if (r < 0) {
        fprintf(stderr, "haloctl: cannot start %s %s ('%s'): %s\n", p->kind, p->name, path, strerror(-r));
        return r;
    }
    p->pid = pid;
    /* Our child until we exit: its /proc entry stays, a zombie at worst, until we reap it. */
    r = process_get_stat(pid, NULL, &p->start_time);
    if (r < 0) {
        fprintf(stderr, "haloctl: cannot read the start time of %s %s (pid %d): %s\n", p->kind, p->name, (int)pid,
                strerror(-r));
        return r;
    }
    return 0;
}

int sim_proc_start_member(struct sim *s, size_t i, const char *etcd) {
    struct member *m = &s->members[i];
    char cluster[SIM_MEMBERS_MAX * 48] = "", client[64], peer[64];
    for (size_t k = 0; k < s->n_members; k++) {
        size_t len = strlen(cluster);
        snprintf(cluster + len, sizeof(cluster) - len, "%s%s=http://127.0.0.1:%d", k ? "," : "",
                 s->members[k].proc.name, s->members[k].peer_port);
    }
    snprintf(client, sizeof(client), "http://127.0.0.1:%d", m->client_port);
    snprintf(peer, sizeof(peer), "http://127.0.0.1:%d", m->peer_port);
    /* Tuned as the tests and benchmarks tune it: with a 500 ms election timeout a lease of 1 s is safe. */
    char *argv[] = {"etcd", "--name", m->proc.name, "--data-dir", m->data_dir, "--listen-client-urls", client,
                    "--advertise-client-urls", client, "--listen-peer-urls", peer, "--initial-advertise-peer-urls",
                    peer, "--initial-cluster", cluster, "--initial-cluster-state", "new", "--heartbeat-interval=50",
                    "--election-timeout=500",
                    /* halod writes all the time (events, offsets): keep etcd's history bounded. */
                    "--auto-compaction-mode=periodic", "--auto-compaction-retention=5m", "--logger=zap",
                    "--log-level=warn", NULL};
    return start_proc(&m->proc, etcd, argv);
}

/* DIR/http.token: the bearer token of the nodes' HTTP writes (POST /v1/events), written once by sim up:
 * $HALO_SIM_HTTP_TOKEN when set (the tests', 16 to 4096 printable bytes), else 32 random hex digits. */
int sim_proc_token(struct sim *s, char **ret_path) {
    _cleanup_free_ char *path = strprintf("%s/http.token", s->dir);
    if (!path)
        return -ENOMEM;
    if (access(path, R_OK) == 0) {
        *ret_path = TAKE_PTR(path);
        return 0;
    }
    char token[4097];
    const char *given = getenv("HALO_SIM_HTTP_TOKEN");
    if (given && *given) {
        size_t n = strlen(given);
        if (n < 16 || n > 4096 ||
            strspn(given, "!\"#$%&'()*+,-./0123456789:;<=>?@ABCDEFGHIJKLMNOPQRSTUVWXYZ[\\]^_`"
                          "abcdefghijklmnopqrstuvwxyz{|}~") != n)
            return -EINVAL;
        memcpy(token, given, n + 1);
    } else {
        uint8_t raw[16];
        if (getrandom(raw, sizeof(raw), 0) != (ssize_t)sizeof(raw))
            return -EIO;
        for (size_t k = 0; k < sizeof(raw); k++)
            snprintf(token + 2 * k, 3, "%02x", raw[k]);
    }
    _cleanup_close_ int fd = open(path, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
    if (fd < 0)
        return -errno;
    if (dprintf(fd, "%s\n", token) < 0)
        return -EIO;
    *ret_path = TAKE_PTR(path);
    return 0;
}

int sim_proc_start_node(struct sim *s, size_t i, const char *halod, const char *eps) {
    struct node *n = &s->nodes[i];
    char http[64], ttl[16];
    _cleanup_free_ char *token = NULL;
    int r = sim_proc_token(s, &token);
    if (r < 0)
        return r;
    snprintf(http, sizeof(http), "127.0.0.1:%d", n->http_port);
    snprintf(ttl, sizeof(ttl), "%u", s->lease_ttl);
    char *argv[] = {
        "halod",       "--node",     n->proc.name, "--etcd",  (char *)eps, "--lease-ttl", ttl,
        "--state-dir", n->state_dir, "--socket",   n->socket, "--http",    http,          "--http-token-file",
        token,         s->config,    NULL};
    return start_proc(&n->proc, halod, argv);
}

/* Waits up to timeout_ms for the processes with an open pidfd in fds to end; says so of each that does. */
static void wait_ends(struct sim_proc **procs, int *fds, size_t n, int timeout_ms, const char *what, bool quiet) {
    usec_t deadline = now_monotonic_usec() + (usec_t)timeout_ms * USEC_PER_MSEC;
    for (;;) {
        struct pollfd pfd[SIM_NODES_MAX];
        size_t idx[SIM_NODES_MAX], k = 0;
        for (size_t i = 0; i < n; i++)
            if (fds[i] >= 0) {
                pfd[k] = (struct pollfd){.fd = fds[i], .events = POLLIN};
                idx[k++] = i;
            }
        usec_t now = now_monotonic_usec();
        if (k == 0 || now >= deadline)
            return;
        int r = poll(pfd, k, (int)((deadline - now + USEC_PER_MSEC - 1) / USEC_PER_MSEC));
        if (r < 0 && errno != EINTR)
            return;
        for (size_t j = 0; r > 0 && j < k; j++) {
            if (!pfd[j].revents)
                continue;
            struct sim_proc *p = procs[idx[j]];
            (void)process_pidfd_reap(fds[idx[j]], NULL);
            fds[idx[j]] = safe_close(fds[idx[j]]);
            if (!quiet)
                printf("%-5s %-3s pid %-8d %s\n", p->kind, p->name, (int)p->pid, what);
        }
    }
}

/* Stops procs together: SIGTERM to each, up to STOP_TIMEOUT_MSEC for them to end, SIGKILL after that.  A process is
 * signalled only through a pidfd opened while its pid has the start time sim up recorded.  Says what it does unless
 * quiet.  Returns 0, or -errno when a process could not be stopped. */
static int stop_procs(struct sim_proc **procs, size_t n, bool quiet) {
    int fds[SIM_NODES_MAX], ret = 0;
    assert_return(n <= SIM_NODES_MAX, -EINVAL);

    for (size_t i = 0; i < n; i++) {
        struct sim_proc *p = procs[i];
        fds[i] = -1;
        int r = proc_open(p, &fds[i]);
        if (r == 0 && (r = process_pidfd_send_signal(fds[i], SIGTERM)) < 0)
            fds[i] = safe_close(fds[i]);
        if (r == -ESRCH && p->pid > 0 && !quiet)
            printf("%-5s %-3s pid %-8d was not running\n", p->kind, p->name, (int)p->pid);
        else if (r == -ESTALE && !quiet)
            printf("%-5s %-3s pid %-8d was not running (the pid is another process's now; left alone)\n", p->kind,
                   p->name, (int)p->pid);
        else if (r < 0 && r != -ESRCH && r != -ESTALE) {
            fprintf(stderr, "haloctl: cannot stop %s %s (pid %d): %s\n", p->kind, p->name, (int)p->pid, strerror(-r));
            ret = r;
        }
    }
    wait_ends(procs, fds, n, STOP_TIMEOUT_MSEC, "stopped", quiet);
    for (size_t i = 0; i < n; i++) {
        int r = fds[i] >= 0 ? process_pidfd_send_signal(fds[i], SIGKILL) : 0;
        if (r < 0 && r != -ESRCH)
            ret = r;
    }
    wait_ends(procs, fds, n, KILL_TIMEOUT_MSEC, "killed: it did not stop within 20 s", quiet);
    for (size_t i = 0; i < n; i++)
        if (fds[i] >= 0) {
            fprintf(stderr, "haloctl: %s %s (pid %d) does not end, even killed\n", procs[i]->kind, procs[i]->name,
                    (int)procs[i]->pid);
            fds[i] = safe_close(fds[i]);
            ret = -ETIMEDOUT;
        }
    return ret;
}

int sim_proc_stop_all(struct sim *s, bool quiet) {
    struct sim_proc *procs[SIM_NODES_MAX];
    for (size_t i = 0; i < s->n_nodes; i++)
        procs[i] = &s->nodes[i].proc;
    int r = stop_procs(procs, s->n_nodes, quiet);
    for (size_t i = 0; i < s->n_members; i++)
        procs[i] = &s->members[i].proc;
    int q = stop_procs(procs, s->n_members, quiet);
    return r < 0 ? r : q;
}
