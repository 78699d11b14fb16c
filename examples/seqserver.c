/* SPDX-License-Identifier: MIT */
/*
 * seqserver: a global sequence number server run 2N by halod, seed 001's sample application
 * (docs/checkpoints.md).  The ACTIVE hands out numbers 1, 2, 3, ... and checkpoints each before
 * answering, so that the instance taking over after any failure, its node's included, goes on
 * with no gap and no duplicate.
 *
 * CSI attributes: "port" (required), "bind" (default 127.0.0.1), "checkpoint" (its name; default
 * "seq-<CSI>").  --standby-port PORT: where a STANDBY answers PEEK and TRYWRITE.
 *
 *   ACTIVE   on port: "NEXT <client> <request>" -> "NUM <n>".  A client names itself and numbers
 *            its requests; the checkpoint keeps each client's last request and its answer, so a
 *            request asked again (its answer was lost with the old ACTIVE) gets the same number.
 *   STANDBY  keeps a warm copy from the checkpoint's updates.  On --standby-port: "PEEK" -> "NEXT
 *            <n>" from the warm copy; "TRYWRITE" -> what halod says of a write by a STANDBY
 *            (refused: the checkpoint is collocated with the CSI).
 *
 * The checkpoint has one section, "state": "next <n>\n" and one "client <id> <request> <n>\n" per client.
 */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE /* accept4() */
#endif
#include <arpa/inet.h>
#include <errno.h>
#include <getopt.h>
#include <inttypes.h>
#include <netinet/in.h>
#include <poll.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include <halo/ckpt.h>
#include <halo/halo.h>

#define MAX_CONNS 32
#define MAX_SEQ_CLIENTS 64
#define ID_LEN 64
#define LINE_LEN 256
#define SECTION "state"

struct conn {
    int fd;
    size_t len;
    char buf[LINE_LEN];
};

/* What the checkpoint holds: the next number, and each client's last request and answer. */
struct seq_state {
    uint64_t next;
    size_t n;
    struct {
        char id[ID_LEN];
        uint64_t request, number;
    } clients[MAX_SEQ_CLIENTS];
};

struct server {
    halo *h;
    halo_ckpt *ckpt;
    halo_ha_state state;
    int standby_port;
    char bind[64], ckpt_name[HALO_CKPT_NAME_MAX + 1], csi[256];
    int port;
    int listen_fd, standby_fd;
    struct conn conns[MAX_CONNS];
    size_t n_conns;
    struct seq_state seq;  /* ACTIVE: what it answers from */
    struct seq_state warm; /* STANDBY: from the updates */
    bool done;
};

static unsigned long long mono_usec(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (unsigned long long)ts.tv_sec * 1000000ULL + (unsigned long long)ts.tv_nsec / 1000ULL;
}

/* ---- the checkpointed state ---------------------------------------------------------------- */

static void seq_parse(struct seq_state *s, const char *text) {
    char id[ID_LEN];
    uint64_t req, num;
    *s = (struct seq_state){.next = 1};
    for (const char *l = text; l && *l; l = strchr(l, '\n'), l = l ? l + 1 : NULL) {
        if (sscanf(l, "next %" SCNu64, &num) == 1)
            s->next = num;
        else if (sscanf(l, "client %63s %" SCNu64 " %" SCNu64, id, &req, &num) == 3 && s->n < MAX_SEQ_CLIENTS) {
            snprintf(s->clients[s->n].id, ID_LEN, "%s", id);
            s->clients[s->n].request = req;
            s->clients[s->n].number = num;
            s->n++;
        }
    }
}

static size_t seq_format(const struct seq_state *s, char *buf, size_t size) {
    size_t n = (size_t)snprintf(buf, size, "next %" PRIu64 "\n", s->next);
    for (size_t i = 0; i < s->n && n < size; i++)
        n += (size_t)snprintf(buf + n, size - n, "client %s %" PRIu64 " %" PRIu64 "\n", s->clients[i].id,
                              s->clients[i].request, s->clients[i].number);
    return n < size ? n : size;
}

/* Reads the checkpoint: the truth a new ACTIVE starts from.  A missing section: nothing handed out yet. */
static int seq_load(struct server *sv) {
    void *data = NULL;
    size_t len;
    int r = halo_ckpt_read(sv->ckpt, SECTION, &data, &len);
    if (r == -ENOENT) {
        seq_parse(&sv->seq, "");
        return 0;
    }
    if (r < 0)
        return r;
    seq_parse(&sv->seq, data);
    free(data);
    return 0;
}

/* The number for a client's request: the one it was given if it asks again, else the next one,
 * checkpointed before it is answered.  0 on failure (the state is read again from the checkpoint). */
static uint64_t seq_take(struct server *sv, const char *id, uint64_t request, int *ret_error) {
    struct seq_state *s = &sv->seq;
    size_t i;
    for (i = 0; i < s->n; i++)
        if (strcmp(s->clients[i].id, id) == 0)
            break;
    if (i < s->n && s->clients[i].request == request)
        return s->clients[i].number;
    if (i == s->n) {
        if (s->n == MAX_SEQ_CLIENTS) {
            *ret_error = -ENOSPC;
            return 0;
        }
        snprintf(s->clients[s->n++].id, ID_LEN, "%s", id);
    }
    uint64_t number = s->next++;
    s->clients[i].request = request;
    s->clients[i].number = number;
    char buf[HALO_CKPT_SECTION_MAX];
    size_t len = seq_format(s, buf, sizeof(buf));
    int r = halo_ckpt_write(sv->ckpt, SECTION, buf, len, HALO_CKPT_WRITE);
    if (r < 0) {
        /* Written or not (a timeout does not say): the checkpoint is the truth. */
        *ret_error = r;
        (void)seq_load(sv);
        return 0;
    }
    return number;
}

static void on_update(halo_ckpt *c, const char *section, const void *data, size_t len, int deleted, uint64_t revision,
                      void *userdata) {
    struct server *sv = userdata;
    if (strcmp(section, SECTION) == 0)
        seq_parse(&sv->warm, deleted ? "" : data);
}

/* ---- connections --------------------------------------------------------------------------- */

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

static void fd_close(int *fd) {
    if (*fd >= 0)
        close(*fd);
    *fd = -1;
}

static void conns_close(struct server *sv) {
    fd_close(&sv->listen_fd);
    fd_close(&sv->standby_fd);
    while (sv->n_conns)
        close(sv->conns[--sv->n_conns].fd);
}

static __attribute__((format(printf, 2, 3))) void answer(struct conn *cn, const char *fmt, ...) {
    char out[LINE_LEN];
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(out, sizeof(out), fmt, ap);
    va_end(ap);
    (void)send(cn->fd, out, (size_t)n, MSG_NOSIGNAL);
}

static void serve(struct server *sv, struct conn *cn, const char *line) {
    char cmd[16], id[ID_LEN];
    uint64_t request;
    int n = sscanf(line, "%15s %63s %" SCNu64, cmd, id, &request);
    int e = 0;
    if (n == 3 && strcmp(cmd, "NEXT") == 0 && sv->state == HALO_HA_ACTIVE) {
        uint64_t number = seq_take(sv, id, request, &e);
        if (number)
            answer(cn, "NUM %" PRIu64 "\n", number);
        else
            answer(cn, "ERR %s\n", halo_strerror(e));
    } else if (n == 1 && strcmp(cmd, "PEEK") == 0)
        answer(cn, "NEXT %" PRIu64 "\n", sv->state == HALO_HA_ACTIVE ? sv->seq.next : sv->warm.next);
    else if (n == 1 && strcmp(cmd, "TRYWRITE") == 0) {
        e = sv->ckpt ? halo_ckpt_write(sv->ckpt, "probe", "x", 1, HALO_CKPT_WRITE) : -EBADF;
        answer(cn, e < 0 ? "ERR %s\n" : "OK%s\n", e < 0 ? halo_strerror(e) : "");
    } else
        answer(cn, "ERR usage: NEXT <client> <request> | PEEK | TRYWRITE\n");
}

static bool conn_read(struct server *sv, struct conn *cn) {
    ssize_t n = recv(cn->fd, cn->buf + cn->len, sizeof(cn->buf) - 1 - cn->len, 0);
    if (n < 0)
        return errno == EAGAIN || errno == EINTR;
    if (n == 0)
        return false;
    cn->len += (size_t)n;
    cn->buf[cn->len] = '\0';
    char *line = cn->buf, *nl;
    while ((nl = strchr(line, '\n'))) {
        *nl = '\0';
        serve(sv, cn, line);
        line = nl + 1;
    }
    cn->len = strlen(line);
    memmove(cn->buf, line, cn->len + 1);
    return cn->len < sizeof(cn->buf) - 1; /* a line too long: dropped */
}

/* ---- the AMF's callbacks ------------------------------------------------------------------- */

static void read_attrs(struct server *sv, const halo_csi_descriptor *csi) {
    if (csi->n_attrs == 0)
        return; /* a change of state for every CSI keeps what the CSI said */
    snprintf(sv->bind, sizeof(sv->bind), "127.0.0.1");
    snprintf(sv->csi, sizeof(sv->csi), "%s", csi->csi_name);
    snprintf(sv->ckpt_name, sizeof(sv->ckpt_name), "seq-%s", csi->csi_name);
    sv->port = 0;
    for (size_t i = 0; i < csi->n_attrs; i++) {
        const char *n = csi->attrs[i].name, *v = csi->attrs[i].value;
        if (strcmp(n, "port") == 0)
            sv->port = atoi(v);
        else if (strcmp(n, "bind") == 0)
            snprintf(sv->bind, sizeof(sv->bind), "%s", v);
        else if (strcmp(n, "checkpoint") == 0)
            snprintf(sv->ckpt_name, sizeof(sv->ckpt_name), "%s", v);
    }
}

/* Opens (creates) the checkpoint, collocated with the CSI: only its ACTIVE writes; updates keep the warm copy. */
static int ckpt_open(struct server *sv) {
    if (sv->ckpt)
        return 0;
    halo_ckpt_attrs a = {.flags = HALO_CKPT_COLLOCATED, .retention_msec = 60000, .csi = sv->csi};
    return halo_ckpt_open(sv->h, sv->ckpt_name, HALO_CKPT_CREATE | HALO_CKPT_UPDATES, &a, on_update, sv, &sv->ckpt);
}

static int go_active(struct server *sv) {
    conns_close(sv);
    int r = ckpt_open(sv);
    if (r >= 0)
        r = seq_load(sv);
    if (r < 0)
        return r;
    sv->listen_fd = listen_tcp(sv->bind, sv->port);
    if (sv->listen_fd < 0)
        return sv->listen_fd;
    sv->state = HALO_HA_ACTIVE;
    return 0;
}

static int go_standby(struct server *sv) {
    conns_close(sv);
    int r = ckpt_open(sv);
    if (r < 0)
        return r;
    void *data = NULL;
    size_t len;
    seq_parse(&sv->warm, halo_ckpt_read(sv->ckpt, SECTION, &data, &len) >= 0 ? data : "");
    free(data);
    sv->state = HALO_HA_STANDBY;
    if (sv->standby_port > 0 && (sv->standby_fd = listen_tcp(sv->bind, sv->standby_port)) < 0)
        fprintf(stderr, "seqserver: cannot listen on port %d: %s\n", sv->standby_port, strerror(-sv->standby_fd));
    return 0;
}

static void on_csi_set(halo *h, halo_invocation inv, const char *comp, halo_ha_state state,
                       const halo_csi_descriptor *csi, void *userdata) {
    struct server *sv = userdata;
    int r = 0;
    read_attrs(sv, csi);
    if (state == HALO_HA_ACTIVE)
        r = go_active(sv);
    else if (state == HALO_HA_STANDBY)
        r = go_standby(sv);
    else { /* QUIESCING, QUIESCED: nothing in flight between two lines, so nothing to finish */
        conns_close(sv);
        sv->state = state;
        if (state == HALO_HA_QUIESCING) {
            (void)halo_quiescing_complete(h, inv, 0);
            return;
        }
    }
    (void)halo_response(h, inv, r);
    fprintf(stderr, "seqserver: %s %s at %llu next %" PRIu64 "\n", comp,
            r < 0 ? halo_strerror(r) : halo_ha_state_to_string(state), mono_usec(),
            state == HALO_HA_ACTIVE ? sv->seq.next : sv->warm.next);
}

static void on_csi_remove(halo *h, halo_invocation inv, const char *comp, const char *csi_name, unsigned flags,
                          void *userdata) {
    struct server *sv = userdata;
    conns_close(sv);
    sv->ckpt = halo_ckpt_close(sv->ckpt);
    sv->state = 0;
    (void)halo_response(h, inv, 0);
}

static void on_terminate(halo *h, halo_invocation inv, const char *comp, void *userdata) {
    struct server *sv = userdata;
    on_csi_remove(h, inv, comp, NULL, HALO_CSI_TARGET_ALL, userdata);
    sv->done = true;
}

static void on_healthcheck(halo *h, halo_invocation inv, const char *comp, const char *key, void *userdata) {
    struct server *sv = userdata;
    (void)halo_response(h, inv, sv->state != HALO_HA_ACTIVE || sv->listen_fd >= 0 ? 0 : -HALO_ECOMPFAILED);
}

/* ---- the loop ------------------------------------------------------------------------------ */

static int run(struct server *sv) {
    while (!sv->done) {
        struct pollfd p[3 + MAX_CONNS] = {{.fd = halo_fd(sv->h), .events = POLLIN},
                                          {.fd = sv->listen_fd, .events = POLLIN},
                                          {.fd = sv->standby_fd, .events = POLLIN}};
        for (size_t i = 0; i < sv->n_conns; i++)
            p[3 + i] = (struct pollfd){.fd = sv->conns[i].fd, .events = POLLIN};
        if (poll(p, 3 + sv->n_conns, -1) < 0) {
            if (errno == EINTR)
                continue;
            return -errno;
        }
        for (int l = 1; l <= 2; l++) {
            if (!(p[l].revents & POLLIN) || p[l].fd < 0)
                continue;
            int fd = accept4(p[l].fd, NULL, NULL, SOCK_CLOEXEC | SOCK_NONBLOCK);
            if (fd >= 0 && sv->n_conns < MAX_CONNS)
                sv->conns[sv->n_conns++] = (struct conn){.fd = fd};
            else if (fd >= 0)
                close(fd);
        }
        /* Backwards: a dropped connection takes the last one's place. */
        for (size_t i = sv->n_conns; i-- > 0;) {
            if (p[3 + i].fd != sv->conns[i].fd || !(p[3 + i].revents & (POLLIN | POLLHUP | POLLERR)))
                continue;
            if (!conn_read(sv, &sv->conns[i])) {
                close(sv->conns[i].fd);
                sv->conns[i] = sv->conns[--sv->n_conns];
            }
        }
        if (p[0].revents & POLLIN) {
            int r = halo_dispatch(sv->h, HALO_DISPATCH_ALL);
            if (r < 0)
                return r;
        }
    }
    return 0;
}

int main(int argc, char **argv) {
    static const struct option options[] = {
        {"standby-port", required_argument, NULL, 's'},
        {"help", no_argument, NULL, 'h'},
        {NULL, 0, NULL, 0},
    };
    static struct server sv = {.listen_fd = -1, .standby_fd = -1};
    const halo_callbacks callbacks = {
        .csi_set = on_csi_set,
        .csi_remove = on_csi_remove,
        .terminate = on_terminate,
        .healthcheck = on_healthcheck,
    };
    int opt, r;

    while ((opt = getopt_long(argc, argv, "h", options, NULL)) >= 0)
        switch (opt) {
        case 's':
            sv.standby_port = atoi(optarg);
            break;
        case 'h':
            printf("Usage: %s [--standby-port PORT]\nRun by halod, which sets $HALO_SOCKET and $HALO_COMPONENT.\n",
                   argv[0]);
            return 0;
        default:
            return 2;
        }
    r = halo_open(NULL, &callbacks, &sv, &sv.h);
    if (r >= 0)
        r = halo_register(sv.h, NULL, NULL);
    if (r >= 0)
        r = halo_healthcheck_start(sv.h, NULL, "default", HALO_HC_AMF_INVOKED, HALO_RECOVERY_COMPONENT_FAILOVER);
    if (r >= 0)
        r = run(&sv);
    if (r < 0)
        fprintf(stderr, "seqserver: %s\n", halo_strerror(r));
    conns_close(&sv);
    halo_ckpt_close(sv.ckpt);
    halo_close(sv.h);
    return r < 0 ? 1 : 0;
}
