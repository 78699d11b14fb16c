/* SPDX-License-Identifier: MIT */
/*
 * counter: an example SA-aware component, a tiny TCP counter service run 2N by halod.
 *
 * CSI attributes: "port" (required), "bind" (default 127.0.0.1), "state-file"
 * (where counters survive a failover), "standby-port" (optional; --standby-port
 * overrides it, since two instances on one machine cannot share it).
 *
 *   ACTIVE     listens on bind:port.  "INCR key" -> new value, "GET key" -> value,
 *              "PING" -> "PONG".  Every INCR is appended to the state file, and a
 *              newly ACTIVE instance loads that file first.
 *   STANDBY    does not listen on port.  On standby-port, GET answers from the state
 *              file as it was when this instance became STANDBY, and writes get
 *              "ERR standby: read-only".
 *   QUIESCING  stops accepting, answers what clients already sent, then tells halod.
 *
 * One thread: one poll() loop over halo_fd(), the listeners and the clients.
 * Build: see examples/meson.build, or alone: README's "Use it from your code"; run under halod
 * with examples/counter.yaml.
 */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE /* accept4(), ppoll() */
#endif
#include <arpa/inet.h>
#include <errno.h>
#include <getopt.h>
#include <netinet/in.h>
#include <poll.h>
#include <signal.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include <halo/halo.h>

#define MAX_CLIENTS 64
#define MAX_KEYS 1024
#define KEY_LEN 64
#define LINE_LEN 256

struct client {
    int fd;
    size_t len;
    char buf[LINE_LEN];
};

struct entry {
    char key[KEY_LEN];
    long long value;
};

struct counter {
    halo *h;
    halo_ha_state state; /* 0: nothing assigned */
    const char *intervals_path;
    int standby_port_option;
    /* From the CSI. */
    char bind[64], state_path[512];
    int port, standby_port;
    /* Serving. */
    int listen_fd, standby_fd;
    struct client clients[MAX_CLIENTS];
    size_t n_clients;
    struct entry kv[MAX_KEYS];
    size_t n_kv;
    FILE *journal;               /* the state file, appended to while ACTIVE */
    bool in_interval;            /* --log-intervals: an ACTIVE line without its END */
    halo_invocation quiesce_inv; /* QUIESCING not yet complete */
    bool done;                   /* terminated */
};

static volatile sig_atomic_t got_sigterm;

static unsigned long long now_usec(clockid_t clock) {
    struct timespec ts;
    clock_gettime(clock, &ts);
    return (unsigned long long)ts.tv_sec * 1000000ULL + (unsigned long long)ts.tv_nsec / 1000ULL;
}

/* --log-intervals: "ACTIVE <usec>" when we start taking writes, "END <usec>" when we stop. */
static void log_interval(struct counter *c, bool active) {
    if (!c->intervals_path || c->in_interval == active)
        return;
    c->in_interval = active;
    FILE *f = fopen(c->intervals_path, "ae");
    if (!f)
        return;
    fprintf(f, "%s %llu\n", active ? "ACTIVE" : "END", now_usec(CLOCK_REALTIME));
    fclose(f);
}

static struct entry *kv_find(struct counter *c, const char *key, bool create) {
    for (size_t i = 0; i < c->n_kv; i++)
        if (strcmp(c->kv[i].key, key) == 0)
            return &c->kv[i];
    if (!create || c->n_kv == MAX_KEYS)
        return NULL;
    struct entry *e = &c->kv[c->n_kv++];
    snprintf(e->key, sizeof(e->key), "%s", key);
    e->value = 0;
    return e;
}

/* Replays the state file: one "key value" line per INCR; the last line for a key wins. */
static void state_load(struct counter *c) {
    char key[KEY_LEN];
    long long value;

    c->n_kv = 0;
    FILE *f = c->state_path[0] ? fopen(c->state_path, "re") : NULL;
    if (!f)
        return;
    while (fscanf(f, "%63s %lld", key, &value) == 2) {
        struct entry *e = kv_find(c, key, true);
        if (e)
            e->value = value;
    }
    fclose(f);
}

static int listen_tcp(const char *addr, int port) {
    struct sockaddr_in sa = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port)};
    int one = 1;

    if (inet_pton(AF_INET, addr, &sa.sin_addr) != 1)
        return -EINVAL;
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
    if (fd < 0)
        return -errno;
    (void)setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
    if (bind(fd, (struct sockaddr *)&sa, sizeof(sa)) < 0 || listen(fd, 64) < 0) {
        int r = -errno;
        close(fd);
        return r;
    }
    return fd;
}

static void close_fd(int *fd) {
    if (*fd >= 0)
        close(*fd);
    *fd = -1;
}

static void client_drop(struct counter *c, size_t i) {
    close(c->clients[i].fd);
    c->clients[i] = c->clients[--c->n_clients]; /* callers walk the array backwards */
}

/* Stops serving: listeners, every client, the journal. */
static void stop_serving(struct counter *c) {
    close_fd(&c->listen_fd);
    close_fd(&c->standby_fd);
    while (c->n_clients > 0)
        client_drop(c, c->n_clients - 1);
    if (c->journal)
        fclose(c->journal);
    c->journal = NULL;
}

static void set_state(struct counter *c, halo_ha_state s) {
    if (s != HALO_HA_ACTIVE && s != HALO_HA_QUIESCING) /* QUIESCING still finishes writes */
        log_interval(c, false);
    c->state = s;
    fprintf(stderr, "counter: %s\n", s ? halo_ha_state_to_string(s) : "unassigned");
}

/* Takes the CSI's attributes; a change of HA state for all CSIs carries none and keeps the old ones. */
static void read_attrs(struct counter *c, const halo_csi_descriptor *csi) {
    if (csi->n_attrs == 0)
        return;
    snprintf(c->bind, sizeof(c->bind), "127.0.0.1");
    c->port = 0;
    c->standby_port = 0;
    c->state_path[0] = '\0';
    for (size_t i = 0; i < csi->n_attrs; i++) {
        const char *n = csi->attrs[i].name, *v = csi->attrs[i].value;
        if (strcmp(n, "port") == 0)
            c->port = atoi(v);
        else if (strcmp(n, "bind") == 0)
            snprintf(c->bind, sizeof(c->bind), "%s", v);
        else if (strcmp(n, "standby-port") == 0)
            c->standby_port = atoi(v);
        else if (strcmp(n, "state-file") == 0)
            snprintf(c->state_path, sizeof(c->state_path), "%s", v);
    }
    if (c->standby_port_option > 0)
        c->standby_port = c->standby_port_option;
}

static int go_active(struct counter *c) {
    stop_serving(c);
    if (c->port <= 0 || c->port > 65535)
        return -EINVAL;
    state_load(c);
    if (c->state_path[0] && !(c->journal = fopen(c->state_path, "ae")))
        return -errno;
    c->listen_fd = listen_tcp(c->bind, c->port);
    if (c->listen_fd < 0) {
        fprintf(stderr, "counter: cannot listen on %s:%d: %s\n", c->bind, c->port, strerror(-c->listen_fd));
        return c->listen_fd;
    }
    set_state(c, HALO_HA_ACTIVE);
    log_interval(c, true);
    return 0;
}

static int go_standby(struct counter *c) {
    stop_serving(c);
    state_load(c); /* what GET answers on the standby port, stale from now on */
    set_state(c, HALO_HA_STANDBY);
    if (c->standby_port > 0) {
        c->standby_fd = listen_tcp(c->bind, c->standby_port);
        if (c->standby_fd < 0) /* optional: the STANDBY role itself is fine */
            fprintf(stderr, "counter: cannot listen on %s:%d: %s\n", c->bind, c->standby_port,
                    strerror(-c->standby_fd));
    }
    return 0;
}

static void on_csi_set(halo *h, halo_invocation inv, const char *comp, halo_ha_state state,
                       const halo_csi_descriptor *csi, void *userdata) {
    struct counter *c = userdata;
    int r = 0;

    read_attrs(c, csi);
    switch (state) {
    case HALO_HA_ACTIVE:
        r = go_active(c);
        (void)halo_response(h, inv, r);
        if (r == 0)
            fprintf(stderr, "counter: ACTIVE at %llu\n", now_usec(CLOCK_MONOTONIC));
        return;
    case HALO_HA_STANDBY:
        r = go_standby(c);
        break;
    case HALO_HA_QUIESCING:
        /* No new connections; the main loop answers what clients already sent, then completes. */
        close_fd(&c->listen_fd);
        set_state(c, HALO_HA_QUIESCING);
        c->quiesce_inv = inv;
        return;
    case HALO_HA_QUIESCED:
        stop_serving(c);
        set_state(c, HALO_HA_QUIESCED);
        break;
    }
    (void)halo_response(h, inv, r);
}

static void on_csi_remove(halo *h, halo_invocation inv, const char *comp, const char *csi_name, unsigned flags,
                          void *userdata) {
    struct counter *c = userdata;
    stop_serving(c);
    set_state(c, 0);
    (void)halo_response(h, inv, 0);
}

/* Terminate: stop, answer, and leave the main loop; main() exits 0. */
static void on_terminate(halo *h, halo_invocation inv, const char *comp, void *userdata) {
    struct counter *c = userdata;
    on_csi_remove(h, inv, comp, NULL, HALO_CSI_TARGET_ALL, userdata);
    c->done = true;
}

static void on_healthcheck(halo *h, halo_invocation inv, const char *comp, const char *key, void *userdata) {
    struct counter *c = userdata;
    /* An ACTIVE that lost its listener is not serving: let halod fail over. */
    bool healthy = c->state != HALO_HA_ACTIVE || c->listen_fd >= 0;
    (void)halo_response(h, inv, healthy ? 0 : -HALO_ECOMPFAILED);
}

static __attribute__((format(printf, 2, 3))) void reply(struct client *cl, const char *fmt, ...) {
    char out[LINE_LEN];
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(out, sizeof(out), fmt, ap); /* replies are short: no truncation */
    va_end(ap);
    /* Non-blocking: a client that does not read its answers loses them. */
    (void)send(cl->fd, out, (size_t)n, MSG_NOSIGNAL);
}

/* Serves one request line. */
static void serve(struct counter *c, struct client *cl, const char *line) {
    char cmd[16], key[KEY_LEN], extra;
    int n = sscanf(line, "%15s %63s %c", cmd, key, &extra);
    bool writable = c->state == HALO_HA_ACTIVE || c->state == HALO_HA_QUIESCING;
    struct entry *e;

    if (n == 1 && strcmp(cmd, "PING") == 0)
        reply(cl, "PONG\n");
    else if (n == 2 && strcmp(cmd, "GET") == 0)
        reply(cl, "%lld\n", (e = kv_find(c, key, false)) ? e->value : 0);
    else if (n == 2 && strcmp(cmd, "INCR") == 0) {
        if (!writable)
            reply(cl, "ERR standby: read-only\n");
        else if (!(e = kv_find(c, key, true)))
            reply(cl, "ERR too many keys\n");
        else {
            e->value++;
            if (c->journal) {
                fprintf(c->journal, "%s %lld\n", e->key, e->value);
                fflush(c->journal); /* in the kernel before we answer: survives our crash */
            }
            reply(cl, "%lld\n", e->value);
        }
    } else
        reply(cl, "ERR usage: PING | GET key | INCR key\n");
}

/* Reads what a client sent and answers every complete line.  Returns false when it should be dropped. */
static bool client_read(struct counter *c, struct client *cl) {
    ssize_t n = recv(cl->fd, cl->buf + cl->len, sizeof(cl->buf) - 1 - cl->len, 0);
    if (n < 0)
        return errno == EAGAIN || errno == EINTR;
    if (n == 0)
        return false;
    cl->len += (size_t)n;
    cl->buf[cl->len] = '\0';

    char *line = cl->buf, *nl;
    while ((nl = strchr(line, '\n'))) {
        *nl = '\0';
        if (nl > line && nl[-1] == '\r')
            nl[-1] = '\0';
        serve(c, cl, line);
        line = nl + 1;
    }
    cl->len = strlen(line);
    memmove(cl->buf, line, cl->len);
    return cl->len < sizeof(cl->buf) - 1; /* a line that does not fit: drop the client */
}

static void accept_client(struct counter *c, int lfd) {
    int fd = accept4(lfd, NULL, NULL, SOCK_CLOEXEC | SOCK_NONBLOCK);
    if (fd < 0)
        return;
    if (c->n_clients == MAX_CLIENTS) {
        close(fd);
        return;
    }
    c->clients[c->n_clients++] = (struct client){.fd = fd};
}

/* QUIESCING: answer whatever the clients already sent, then report the work done. */
static void finish_quiescing(struct counter *c) {
    for (size_t i = c->n_clients; i-- > 0;)
        (void)client_read(c, &c->clients[i]);
    halo_invocation inv = c->quiesce_inv;
    c->quiesce_inv = 0;
    stop_serving(c);
    log_interval(c, false);
    (void)halo_quiescing_complete(c->h, inv, 0);
}

static void on_sigterm(int sig) {
    got_sigterm = 1;
}

static int run(struct counter *c) {
    struct pollfd pfd[3 + MAX_CLIENTS];
    sigset_t mask, orig;

    /* SIGTERM is blocked except inside ppoll(), so it cannot slip in between the check and the wait. */
    sigemptyset(&mask);
    sigaddset(&mask, SIGTERM);
    sigprocmask(SIG_BLOCK, &mask, &orig);
    sigaction(SIGTERM, &(struct sigaction){.sa_handler = on_sigterm}, NULL);

    while (!c->done && !got_sigterm) {
        pfd[0] = (struct pollfd){.fd = halo_fd(c->h), .events = POLLIN};
        pfd[1] = (struct pollfd){.fd = c->listen_fd, .events = POLLIN};
        pfd[2] = (struct pollfd){.fd = c->standby_fd, .events = POLLIN};
        for (size_t i = 0; i < c->n_clients; i++)
            pfd[3 + i] = (struct pollfd){.fd = c->clients[i].fd, .events = POLLIN};
        size_t n_clients = c->n_clients;
        if (ppoll(pfd, 3 + n_clients, NULL, &orig) < 0) {
            if (errno == EINTR)
                continue;
            return -errno;
        }

        /* Clients first, backwards so that dropping one keeps the indexes of the rest. */
        for (size_t i = n_clients; i-- > 0;)
            if (pfd[3 + i].revents && !client_read(c, &c->clients[i]))
                client_drop(c, i);
        if (pfd[1].revents)
            accept_client(c, c->listen_fd);
        if (pfd[2].revents)
            accept_client(c, c->standby_fd);

        /* halod last: its callbacks may close the listeners and clients polled above. */
        if (pfd[0].revents) {
            int r = halo_dispatch(c->h, HALO_DISPATCH_ALL);
            if (r < 0) {
                fprintf(stderr, "counter: lost halod: %s\n", halo_strerror(r));
                return r;
            }
        }
        if (c->quiesce_inv)
            finish_quiescing(c);
    }
    return 0;
}

int main(int argc, char **argv) {
    static const struct option options[] = {
        {"log-intervals", required_argument, NULL, 'l'},
        {"standby-port", required_argument, NULL, 's'},
        {"help", no_argument, NULL, 'h'},
        {NULL, 0, NULL, 0},
    };
    static struct counter c = {.listen_fd = -1, .standby_fd = -1};
    const halo_callbacks callbacks = {
        .csi_set = on_csi_set,
        .csi_remove = on_csi_remove,
        .terminate = on_terminate,
        .healthcheck = on_healthcheck,
    };
    int opt, r;

    while ((opt = getopt_long(argc, argv, "h", options, NULL)) >= 0)
        switch (opt) {
        case 'l':
            c.intervals_path = optarg;
            break;
        case 's':
            c.standby_port_option = atoi(optarg);
            break;
        case 'h':
            printf("Usage: %s [--log-intervals FILE] [--standby-port PORT]\n"
                   "Run by halod, which sets $HALO_SOCKET and $HALO_COMPONENT.\n",
                   argv[0]);
            return 0;
        default:
            return 2;
        }

    /* Connect, register, and ask halod to check on us; only then may CSIs arrive. */
    r = halo_open(NULL, &callbacks, &c, &c.h);
    if (r >= 0)
        r = halo_register(c.h, NULL, NULL);
    if (r >= 0)
        r = halo_healthcheck_start(c.h, NULL, "default", HALO_HC_AMF_INVOKED, HALO_RECOVERY_COMPONENT_FAILOVER);
    if (r >= 0)
        r = run(&c);
    if (r < 0)
        fprintf(stderr, "counter: %s\n", halo_strerror(r));

    log_interval(&c, false);
    stop_serving(&c);
    halo_close(c.h);
    return r < 0 ? 1 : 0;
}
