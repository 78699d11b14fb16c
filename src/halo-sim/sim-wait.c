/* SPDX-License-Identifier: MIT */
/* haloctl sim: waiting until the simulated cluster has settled, or saying why it does not. */
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "macro.h"
#include "process-util.h"
#include "sim-internal.h"

volatile sig_atomic_t sim_interrupted;

void sim_wait_msec(unsigned ms) {
    struct timespec ts = {.tv_sec = ms / 1000, .tv_nsec = (long)(ms % 1000) * 1000000L};
    (void)nanosleep(&ts, NULL); /* a signal cuts it short: the caller checks 'sim_interrupted' */
}

/* Whether etcd answers on port that it is healthy (it has a leader): GET /health over plain HTTP/1.0. */
static bool etcd_healthy(int port) {
    static const char req[] = "GET /health HTTP/1.0\r\nHost: 127.0.0.1\r\n\r\n";
    struct sockaddr_in a = {
        .sin_family = AF_INET, .sin_port = htons((uint16_t)port), .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    struct timeval tv = {.tv_sec = 1};
    char buf[4096];
    size_t len = 0;
    _cleanup_close_ int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd < 0 || setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv)) < 0 ||
        setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof(tv)) < 0 ||
        connect(fd, (struct sockaddr *)&a, sizeof(a)) < 0 || send(fd, req, sizeof(req) - 1, MSG_NOSIGNAL) < 0)
        return false;
    for (;;) {
        ssize_t n = recv(fd, buf + len, sizeof(buf) - 1 - len, 0);
        if (n <= 0)
            break;
        len += (size_t)n;
        if (len == sizeof(buf) - 1)
            break;
    }
    buf[len] = '\0';
    return strstr(buf, "\"health\":\"true\"") != NULL;
}

/* A halod's status, asked through our own binary (haloctl --socket S status --json) so that this module needs no
 * HA link of its own; its complaints while halod starts go to /dev/null.  Returns 0 and the JSON, or -errno. */
static int node_status(const char *self, const char *socket, json_t **ret) {
    char *argv[] = {"haloctl", "--socket", (char *)socket, "--timeout", "2", "--json", "status", NULL};
    int pipefd[2], st;
    pid_t pid;
    if (pipe2(pipefd, O_CLOEXEC) < 0)
        return -errno;
    _cleanup_close_ int rfd = pipefd[0], wfd = pipefd[1];
    _cleanup_close_ int null = open("/dev/null", O_WRONLY | O_CLOEXEC);
    if (null < 0)
        return -errno;
    struct process_spawn_options o = {
        .path = self, .argv = argv, .stdout_fd = wfd, .stderr_fd = null, .exec_error = true};
    int r = process_spawn(&o, &pid);
    if (r < 0)
        return r;
    wfd = safe_close(wfd);

    _cleanup_free_ char *buf = NULL;
    size_t len = 0, size = 0;
    for (;;) {
        if (len + 1 >= size) {
            char *b = realloc(buf, size = size ? 2 * size : 16384);
            if (!b) {
                r = -ENOMEM;
                break;
            }
            buf = b;
        }
        ssize_t n = read(rfd, buf + len, size - 1 - len);
        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0) {
            r = n < 0 ? -errno : 0;
            break;
        }
        len += (size_t)n;
    }
    rfd = safe_close(rfd);
    int q = process_wait(pid, &st);
    if (r < 0 || q < 0)
        return r < 0 ? r : q;
    if (!WIFEXITED(st) || WEXITSTATUS(st) != 0)
        return -ECONNREFUSED;
    buf[len] = '\0';
    json_t *j = json_loads(buf, 0, NULL);
    if (!j)
        return -EBADMSG;
    *ret = j;
    return 0;
}

static void print_log_tail(const char *path) {
    char buf[2048];
    _cleanup_close_ int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return;
    off_t size = lseek(fd, 0, SEEK_END), from = size > (off_t)sizeof(buf) - 1 ? size - (off_t)sizeof(buf) + 1 : 0;
    ssize_t n = size > 0 ? pread(fd, buf, sizeof(buf) - 1, from) : 0;
    if (n <= 0)
        return;
    buf[n] = '\0';
    char *p = buf;
    if (from > 0) { /* from the first whole line */
        p = strchr(buf, '\n');
        if (!p)
            return;
        p++;
    }
    fprintf(stderr, "  %s ends with:\n", path);
    for (char *line = strtok(p, "\n"); line; line = strtok(NULL, "\n"))
        fprintf(stderr, "  | %s\n", line);
}

/* Reaps those of our children among the simulation's processes that have ended already.  Returns 0, or -ECHILD after
 * saying which one ended and how. */
static int check_exits(struct sim *s) {
    for (size_t i = 0; i < s->n_members + s->n_nodes; i++) {
        struct sim_proc *p = sim_proc_nth(s, i);
        int st;
        if (p->pid <= 0 || waitpid(p->pid, &st, WNOHANG) <= 0)
            continue;
        if (WIFEXITED(st))
            fprintf(stderr, "haloctl: %s %s exited with status %d while the cluster started\n", p->kind, p->name,
                    WEXITSTATUS(st));
        else
            fprintf(stderr, "haloctl: %s %s was killed by signal %s while the cluster started\n", p->kind, p->name,
                    sigabbrev_np(WTERMSIG(st)) ?: "?");
        p->pid = 0; /* reaped: the pid is free for others now */
        print_log_tail(p->log);
        return -ECHILD;
    }
    return 0;
}

int sim_wait_etcd(struct sim *s, usec_t deadline) {
    for (;;) {
        int r = check_exits(s);
        if (r < 0)
            return r;
        size_t healthy = 0;
        for (size_t i = 0; i < s->n_members; i++)
            healthy += etcd_healthy(s->members[i].client_port);
        if (healthy == s->n_members)
            return 0;
        if (sim_interrupted)
            return -EINTR;
        if (now_monotonic_usec() >= deadline) {
            fprintf(stderr,
                    "haloctl: etcd did not become healthy within %llu s (%zu of %zu members are); see %s/etcd/\n",
                    (unsigned long long)(UP_TIMEOUT_USEC / USEC_PER_SEC), healthy, s->n_members, s->dir);
            return -ETIMEDOUT;
        }
        sim_wait_msec(POLL_INTERVAL_MSEC);
    }
}

/* Whether a node's status shows the cluster settled: a coordinator, every node ONLINE, every SI fully assigned with
 * no change pending.  If not, says why in why. */
static bool view_settled(json_t *st, const char *node, char *why, size_t n) {
    size_t i, j, k;
    json_t *x, *sg, *si, *a;
    if (!json_is_string(json_object_get(st, "coordinator"))) {
        snprintf(why, n, "%s sees no coordinator", node);
        return false;
    }
    json_array_foreach(json_object_get(st, "nodes"), i, x) {
        if (!streq(jstr(x, "state"), "ONLINE")) {
            snprintf(why, n, "%s sees node %s %s", node, jstr(x, "name"), jstr(x, "state"));
            return false;
        }
    }
    json_array_foreach(json_object_get(st, "service_groups"), i, sg) {
        json_array_foreach(json_object_get(sg, "service_instances"), j, si) {
            if (!streq(jstr(si, "assignment"), "FULLY-ASSIGNED")) {
                snprintf(why, n, "%s sees SI '%s' %s", node, jstr(si, "name"), jstr(si, "assignment"));
                return false;
            }
            json_array_foreach(json_object_get(si, "assignments"), k, a) {
                if (json_is_true(json_object_get(a, "pending"))) {
                    snprintf(why, n, "%s sees a change of SI '%s' pending", node, jstr(si, "name"));
                    return false;
                }
            }
        }
    }
    return true;
}

/* Waits until every halod answers 'status', they agree on the coordinator and each sees the cluster settled.
 * Returns 0 and the first node's status, or -errno after saying why. */
int sim_wait_settled(struct sim *s, const char *self, usec_t deadline, json_t **ret) {
    char why[256] = "no halod answers yet";
    for (;;) {
        json_t *views[SIM_NODES_MAX] = {};
        int r = check_exits(s);
        bool settled = r >= 0;
        for (size_t i = 0; settled && i < s->n_nodes; i++)
            if (node_status(self, s->nodes[i].socket, &views[i]) < 0) {
                snprintf(why, sizeof(why), "halod %s does not answer 'status'", s->nodes[i].proc.name);
                settled = false;
            }
        for (size_t i = 0; settled && i < s->n_nodes; i++) {
            settled = view_settled(views[i], s->nodes[i].proc.name, why, sizeof(why));
            if (settled && !streq(jstr(views[i], "coordinator"), jstr(views[0], "coordinator"))) {
                snprintf(why, sizeof(why), "%s and %s name different coordinators", s->nodes[0].proc.name,
                         s->nodes[i].proc.name);
                settled = false;
            }
        }
        if (settled)
            *ret = json_incref(views[0]);
        for (size_t i = 0; i < s->n_nodes; i++)
            json_decref(views[i]);
        if (r < 0 || settled)
            return r;
        if (sim_interrupted)
            return -EINTR;
        if (now_monotonic_usec() >= deadline) {
            fprintf(stderr, "haloctl: the cluster did not settle within %llu s: %s\n",
                    (unsigned long long)(UP_TIMEOUT_USEC / USEC_PER_SEC), why);
            return -ETIMEDOUT;
        }
        sim_wait_msec(POLL_INTERVAL_MSEC);
    }
}
