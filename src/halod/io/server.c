/* SPDX-License-Identifier: MIT */
/* The HA link server: accepts components and haloctl on an AF_UNIX SOCK_SEQPACKET socket. */
#define LOG_AREA LOG_AREA_LINK
#include "server.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include "halo/halo.h"
#include "list.h"
#include "listener.h"
#include "log.h"
#include "macro.h"

struct conn {
    struct server *srv;
    LIST_FIELDS(struct conn, conns);
    uv_poll_t poll;
    int fd;
    pid_t pid;
    uid_t uid;
    bool hello_done;
    uint64_t accepted; /* uv_now() at the accept: Hello is due within SERVER_HELLO_TIMEOUT_MS */
    bool admin;
    bool closing;
    void *data;
    char name[64];
    char *parts; /* the rest of a JSON reply sent in parts (server_conn_reply_parts()) */
    size_t parts_len, parts_off;
    LIST_HEAD(struct outbuf) out; /* packets its socket could not take yet, in order */
    size_t out_bytes;
};

struct outbuf {
    LIST_FIELDS(struct outbuf, out);
    size_t len;
    uint8_t data[];
};

struct server {
    uv_loop_t *loop;
    char *path;
    char *node;
    struct server_handlers h;
    void *userdata;
    struct listener *listener;
    LIST_HEAD(struct conn) conns;
    unsigned n_conns, conns_max;
    uint64_t last_full_log;  /* uv_now() of the last "too many connections" warning */
    size_t queued;           /* bytes waiting in every connection's queue */
    uint64_t cut_off;        /* connections closed for not reading */
    char *lease_file;        /* named in HelloReply; NULL on one node */
    uv_timer_t *hello_timer; /* at the next Hello deadline of a connection without one */
};

static void conn_close_cb(uv_handle_t *h) {
    struct conn *c = h->data;
    safe_close(c->fd);
    free(c->parts);
    free(c);
}

/* Frees what waits for c (a closing connection sends nothing more). */
static void conn_drop_queue(struct conn *c) {
    struct outbuf *o;
    while ((o = LIST_POP(out, &c->out)))
        free(o);
    c->srv->queued -= c->out_bytes;
    c->out_bytes = 0;
}

static void on_conn(uv_poll_t *h, int status, int events);

static void free_handle(uv_handle_t *h) {
    free(h);
}

/* Readable always; writable while packets wait. */
static void conn_poll(struct conn *c) {
    (void)uv_poll_start(&c->poll, UV_READABLE | UV_DISCONNECT | (LIST_IS_EMPTY(&c->out) ? 0 : UV_WRITABLE), on_conn);
}

void server_conn_close(struct conn *c, const char *reason) {
    if (c->closing)
        return;
    c->closing = true;
    if (c->hello_done && c->srv->h.on_close)
        c->srv->h.on_close(c, reason, c->srv->userdata);
    LIST_REMOVE(conns, &c->srv->conns, c);
    c->srv->n_conns--;
    conn_drop_queue(c);
    uv_poll_stop(&c->poll);
    /* Shut down now so the peer sees EOF at once, not when the loop closes the fd. */
    (void)shutdown(c->fd, SHUT_RDWR);
    uv_close((uv_handle_t *)&c->poll, conn_close_cb);
    /* Its descriptor goes once the loop has closed the handle: a paused
     * listener may try again (at worst it pauses once more). */
    listener_resume(c->srv->listener);
}

/* Sends what waits, in order, until the socket is full again.  0 or -errno. */
static int conn_flush(struct conn *c) {
    struct outbuf *o;
    while ((o = c->out.first)) {
        int r = link_send_packed(c->fd, o->data, o->len);
        if (r == -EAGAIN)
            return 0;
        if (r < 0)
            return r;
        LIST_REMOVE(out, &c->out, o);
        c->out_bytes -= o->len;
        c->srv->queued -= o->len;
        free(o);
    }
    return 0;
}

static void conn_cut_off(struct conn *c, const char *why) {
    log_warning("%s is not reading its HA link (%zu bytes waiting%s), disconnecting", c->name, c->out_bytes, why);
    c->srv->cut_off++;
    server_conn_close(c, "not reading its HA link");
}

/* The connection with the most bytes waiting. */
static struct conn *slowest_reader(struct server *s) {
    struct conn *c, *worst = NULL;
    LIST_FOREACH (conns, c, &s->conns)
        if (!worst || c->out_bytes > worst->out_bytes)
            worst = c;
    return worst;
}

/* Queues a packet behind those waiting; a peer past SERVER_CONN_QUEUE_MAX is
 * cut off, and so are the slowest readers while all queues together would
 * pass SERVER_QUEUE_TOTAL_MAX.  0, or -EAGAIN or -ENOMEM once c is closed. */
static int conn_queue(struct conn *c, const uint8_t *buf, size_t n) {
    struct server *s = c->srv;
    if (c->out_bytes + n > SERVER_CONN_QUEUE_MAX) {
        conn_cut_off(c, "");
        return -EAGAIN;
    }
    while (s->queued + n > SERVER_QUEUE_TOTAL_MAX) {
        struct conn *worst = slowest_reader(s);
        if (worst->out_bytes < c->out_bytes + n)
            worst = c;
        conn_cut_off(worst, ", the most of all while every queue together is full");
        /* Its closing may have sent to others, and closed c. */
        if (c->closing)
            return -EAGAIN;
    }
    struct outbuf *o = malloc(sizeof(*o) + n);
    if (!o) {
        server_conn_close(c, "out of memory");
        return -ENOMEM;
    }
    o->len = n;
    memcpy(o->data, buf, n);
    bool first = LIST_IS_EMPTY(&c->out);
    LIST_APPEND(out, &c->out, o);
    c->out_bytes += n;
    s->queued += n;
    if (first)
        conn_poll(c);
    return 0;
}

static int conn_send_failed(struct conn *c, int r, const char *what) {
    log_debug_errno(r, "Failed to send %s to %s: %m", what, c->name);
    server_conn_close(c, "send failed");
    return r;
}

/* Sends one packet, or queues it behind those waiting. */
static int conn_write(struct conn *c, const uint8_t *buf, size_t n, const char *what) {
    if (c->closing)
        return -ENOTCONN;
    int r = !LIST_IS_EMPTY(&c->out) ? -EAGAIN : link_send_packed(c->fd, buf, n);
    if (r == -EAGAIN)
        return conn_queue(c, buf, n);
    return r < 0 ? conn_send_failed(c, r, what) : r;
}

int server_conn_send(struct conn *c, const LinkMsg *m) {
    uint8_t buf[LINK_MSG_MAX];
    int n = link_encode(m, buf, sizeof(buf));
    if (n < 0) {
        log_warning_errno(n, "Cannot encode %s for %s: %m", link_msg_type_name(m), c->name);
        return n;
    }
    return conn_write(c, buf, (size_t)n, link_msg_type_name(m));
}

int server_conn_send_packed(struct conn *c, const uint8_t *buf, size_t n) {
    return conn_write(c, buf, n, "a message");
}

int server_conn_send_packets(struct conn *c, const struct iovec *pkts, size_t n) {
    if (c->closing)
        return -ENOTCONN;
    size_t i = 0;
    if (LIST_IS_EMPTY(&c->out)) {
        int r = link_send_packed_many(c->fd, pkts, n);
        if (r < 0)
            return conn_send_failed(c, r, "messages");
        i = (size_t)r;
    }
    for (; i < n; i++) {
        int r = conn_queue(c, pkts[i].iov_base, pkts[i].iov_len);
        if (r < 0)
            return r;
    }
    return 0;
}

size_t server_conn_queued(const struct conn *c) {
    return c->out_bytes;
}

int server_conn_send_reply(struct conn *c, Halo__Link__Reply *r) {
    LinkMsg m = HALO__LINK__MSG__INIT;
    m.body_case = HALO__LINK__MSG__BODY_REPLY;
    m.reply = r;
    return server_conn_send(c, &m);
}

/* The next part of c->parts, cut before LINK_REPLY_PART_MAX bytes and never
 * inside a UTF-8 sequence. */
int server_conn_reply_next_part(struct conn *c, uint64_t seq) {
    if (!c->parts)
        return server_conn_reply(c, seq, -HALO_EBADSTATE, NULL);
    size_t n = c->parts_len - c->parts_off;
    if (n > LINK_REPLY_PART_MAX) {
        n = LINK_REPLY_PART_MAX;
        while (n > 0 && ((unsigned char)c->parts[c->parts_off + n] & 0xc0) == 0x80)
            n--;
    }
    Halo__Link__Reply r = HALO__LINK__REPLY__INIT;
    char saved = c->parts[c->parts_off + n];
    c->parts[c->parts_off + n] = '\0';
    r.seq = seq;
    r.json = c->parts + c->parts_off;
    r.more = c->parts_off + n < c->parts_len;
    int ret = server_conn_send_reply(c, &r);
    if (ret < 0 || !r.more) {
        free(c->parts);
        c->parts = NULL;
        return ret;
    }
    c->parts[c->parts_off + n] = saved;
    c->parts_off += n;
    return 0;
}

int server_conn_reply_parts(struct conn *c, uint64_t seq, char *json) {
    free(c->parts);
    c->parts = json;
    c->parts_len = strlen(json);
    c->parts_off = 0;
    return server_conn_reply_next_part(c, seq);
}

int server_conn_reply(struct conn *c, uint64_t seq, int error, const char *json) {
    Halo__Link__Reply r = HALO__LINK__REPLY__INIT;
    r.seq = seq;
    r.error = error;
    r.json = (char *)(json ?: "");
    return server_conn_send_reply(c, &r);
}

static void handle_hello(struct conn *c, const LinkMsg *m) {
    Halo__Link__HelloReply hr = HALO__LINK__HELLO_REPLY__INIT;
    LinkMsg out = HALO__LINK__MSG__INIT;

    out.body_case = HALO__LINK__MSG__BODY_HELLO_REPLY;
    out.hello_reply = &hr;
    hr.version = LINK_PROTOCOL_VERSION;
    hr.node = c->srv->node;
    hr.lease_file = c->srv->lease_file ?: (char *)"";
    if (m->body_case != HALO__LINK__MSG__BODY_HELLO) {
        log_warning("%s sent %s before hello, disconnecting", c->name, link_msg_type_name(m));
        server_conn_close(c, "no hello");
        return;
    }
    if (m->hello->version != LINK_PROTOCOL_VERSION) {
        log_warning("%s speaks HA link version %u, this halod speaks %u; disconnecting", c->name, m->hello->version,
                    LINK_PROTOCOL_VERSION);
        hr.error = -HALO_EVERSION;
        (void)server_conn_send(c, &out);
        server_conn_close(c, "version mismatch");
        return;
    }
    /* Operator commands only from root or halod's own user, whatever the client calls itself. */
    c->admin = m->hello->client && strncmp(m->hello->client, "haloctl", 7) == 0 && server_conn_is_privileged(c);
    /* Logs name the client as it calls itself too (its pid is what counts). */
    if (m->hello->client && *m->hello->client)
        snprintf(c->name, sizeof(c->name), "client pid %d (%.32s)", (int)c->pid, m->hello->client);
    if (server_conn_send(c, &out) < 0)
        return;
    c->hello_done = true;
}

static void on_conn(uv_poll_t *h, int status, int events) {
    struct conn *c = h->data;

    if ((events & UV_WRITABLE) && !LIST_IS_EMPTY(&c->out)) {
        int r = conn_flush(c);
        if (r < 0) {
            log_debug_errno(r, "Failed to send to %s: %m", c->name);
            server_conn_close(c, "send failed");
            return;
        }
        if (LIST_IS_EMPTY(&c->out)) {
            conn_poll(c);
            if (c->srv->h.on_drained)
                c->srv->h.on_drained(c, c->srv->userdata);
            if (c->closing)
                return;
        }
    }
    /* Bounded per wake-up so one chatty client cannot starve the others. */
    for (int i = 0; i < 64 && !c->closing; i++) {
        LinkMsg *m = NULL;
        int r = link_recv(c->fd, &m);
        if (r == -EAGAIN)
            return;
        if (r == 0 || r == -ECONNRESET) {
            server_conn_close(c, "closed the link");
            return;
        }
        if (r == -EPROTONOSUPPORT) {
            /* A newer peer's message: dropped, as the protocol's compatibility rule says. */
            log_warning("%s sent a message type this halod does not know; dropped", c->name);
            continue;
        }
        if (r < 0) {
            const char *why = r == -EMSGSIZE  ? "oversize message"
                              : r == -EBADMSG ? "malformed message"
                                              : "receive error";
            log_warning("%s sent a %s, disconnecting", c->name, why);
            server_conn_close(c, why);
            return;
        }
        if (!c->hello_done)
            handle_hello(c, m);
        else
            c->srv->h.on_msg(c, m, c->srv->userdata);
        link_msg_free(m);
    }
}

static int cmp_pid(const void *a, const void *b) {
    pid_t x = *(const pid_t *)a, y = *(const pid_t *)b;
    return (x > y) - (x < y);
}

/* At the connection limit: the oldest connection of the process that holds
 * the most, if it holds more than one; NULL when every process holds one. */
static struct conn *fair_share_victim(struct server *s) {
    _cleanup_free_ pid_t *pids = malloc(s->n_conns * sizeof(pid_t));
    if (!pids || s->n_conns == 0)
        return NULL;
    size_t n = 0, best = 1, run = 0;
    pid_t most = 0;
    struct conn *c, *victim = NULL;
    LIST_FOREACH (conns, c, &s->conns)
        pids[n++] = c->pid;
    qsort(pids, n, sizeof(pid_t), cmp_pid);
    for (size_t i = 0; i < n; i++) {
        run = i > 0 && pids[i] == pids[i - 1] ? run + 1 : 1;
        if (run > best) {
            best = run;
            most = pids[i];
        }
    }
    if (best < 2)
        return NULL;
    LIST_FOREACH (conns, c, &s->conns) /* newest first: the last one is the oldest */
        if (c->pid == most)
            victim = c;
    return victim;
}

/* Whether one more connection may come in, making room if a process holds several. */
static bool make_room(struct server *s, pid_t pid) {
    if (s->n_conns < s->conns_max)
        return true;
    struct conn *victim = fair_share_victim(s);
    uint64_t now = uv_now(s->loop);
    bool warn = now - s->last_full_log >= SERVER_FULL_LOG_INTERVAL_MS || !s->last_full_log;
    if (warn)
        s->last_full_log = now;
    if (!victim) {
        if (warn)
            log_warning("%u HA link connections are open, one per process: refusing one from pid %d", s->n_conns,
                        (int)pid);
        return false;
    }
    if (warn)
        log_warning("%u HA link connections are open; closing the oldest of %s, which holds the most, for pid %d",
                    s->n_conns, victim->name, (int)pid);
    server_conn_close(victim, "too many connections from its process");
    return s->n_conns < s->conns_max;
}

/* Closes the connections whose Hello is overdue; due again at the next deadline. */
static void on_hello_timer(uv_timer_t *t) {
    struct server *s = t->data;
    uint64_t now = uv_now(s->loop), next = 0;
    struct conn *c, *n;
    LIST_FOREACH_SAFE (conns, c, n, &s->conns) {
        if (c->hello_done || c->closing)
            continue;
        if (now - c->accepted >= SERVER_HELLO_TIMEOUT_MS) {
            log_warning("%s sent no hello within %u s of its connect, disconnecting", c->name,
                        SERVER_HELLO_TIMEOUT_MS / 1000);
            server_conn_close(c, "no hello");
        } else if (!next || c->accepted + SERVER_HELLO_TIMEOUT_MS - now < next)
            next = c->accepted + SERVER_HELLO_TIMEOUT_MS - now;
    }
    if (next)
        uv_timer_start(t, on_hello_timer, next, 0);
}

static void on_accept(int fd, const struct sockaddr *addr, socklen_t addrlen, void *userdata) {
    struct server *s = userdata;
    struct ucred cred = {.uid = (uid_t)-1}; /* unknown: no rights */
    socklen_t len = sizeof(cred);
    (void)getsockopt(fd, SOL_SOCKET, SO_PEERCRED, &cred, &len);
    if (!make_room(s, cred.pid)) {
        close(fd);
        return;
    }
    struct conn *c = calloc(1, sizeof(*c));
    if (!c) {
        close(fd);
        return;
    }
    c->pid = cred.pid;
    c->uid = cred.uid;
    snprintf(c->name, sizeof(c->name), "client pid %d", (int)c->pid);
    c->fd = fd;
    c->srv = s;
    if (uv_poll_init(s->loop, &c->poll, fd) < 0) {
        close(fd);
        free(c);
        return;
    }
    c->poll.data = c;
    c->accepted = uv_now(s->loop);
    LIST_PREPEND(conns, &s->conns, c);
    s->n_conns++;
    conn_poll(c);
    if (!uv_is_active((uv_handle_t *)s->hello_timer))
        uv_timer_start(s->hello_timer, on_hello_timer, SERVER_HELLO_TIMEOUT_MS, 0);
}

/* The most connections to keep open: well below the open-file limit, so that
 * a flood of clients leaves halod the descriptors to respawn a component,
 * talk to its store and serve haloctl (SERVER_FD_RESERVE, or a quarter of the
 * limit if that is more). */
static unsigned conns_max(void) {
    struct rlimit rl;
    if (getrlimit(RLIMIT_NOFILE, &rl) < 0 || rl.rlim_cur == RLIM_INFINITY)
        return SERVER_CONNS_MAX;
    rlim_t reserve = MAX((rlim_t)SERVER_FD_RESERVE, rl.rlim_cur / 4);
    rlim_t n = rl.rlim_cur > reserve ? rl.rlim_cur - reserve : 0;
    return (unsigned)MIN(MAX(n, (rlim_t)SERVER_CONNS_MIN), (rlim_t)SERVER_CONNS_MAX);
}

uint64_t server_cut_off_total(const struct server *s) {
    return s->cut_off;
}

int server_set_lease_file(struct server *s, const char *path) {
    char *p = path ? strdup(path) : NULL;
    if (path && !p)
        return -ENOMEM;
    free(s->lease_file);
    s->lease_file = p;
    return 0;
}

int server_new(uv_loop_t *loop, const char *path, const char *node, const struct server_handlers *h, void *userdata,
               struct server **ret) {
    struct sockaddr_un sa = {.sun_family = AF_UNIX};
    if (strlen(path) >= sizeof(sa.sun_path))
        return -ENAMETOOLONG;
    strcpy(sa.sun_path, path);

    _cleanup_close_ int fd = socket(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
    if (fd < 0)
        return -errno;
    (void)unlink(path);
    mode_t old = umask(0117);
    int r = bind(fd, (struct sockaddr *)&sa, sizeof(sa));
    umask(old);
    if (r < 0)
        return -errno;
    if (listen(fd, 128) < 0)
        return -errno;

    struct server *s = calloc(1, sizeof(*s));
    if (!s)
        return -ENOMEM;
    s->path = strdup(path);
    s->node = strdup(node);
    s->loop = loop;
    s->h = *h;
    s->userdata = userdata;
    s->conns_max = conns_max();
    s->hello_timer = malloc(sizeof(*s->hello_timer));
    r = s->path && s->node && s->hello_timer ? listener_new(loop, TAKE_FD(fd), "HA link", on_accept, s, &s->listener)
                                             : -ENOMEM;
    if (r < 0) {
        free(s->hello_timer);
        free(s->path);
        free(s->node);
        free(s);
        return r;
    }
    uv_timer_init(loop, s->hello_timer);
    s->hello_timer->data = s;
    log_debug("At most %u HA link connections", s->conns_max);
    *ret = s;
    return 0;
}

struct server *server_free(struct server *s) {
    if (!s)
        return NULL;
    s->listener = listener_free(s->listener);
    uv_close((uv_handle_t *)s->hello_timer, free_handle);
    while (s->conns.first)
        server_conn_close(s->conns.first, "halod is stopping");
    (void)unlink(s->path);
    free(s->path);
    free(s->node);
    free(s->lease_file);
    free(s);
    return NULL;
}

pid_t server_conn_pid(const struct conn *c) {
    return c->pid;
}
bool server_conn_is_privileged(const struct conn *c) {
    return c->uid == 0 || c->uid == geteuid();
}
bool server_conn_is_admin(const struct conn *c) {
    return c->admin;
}
const char *server_conn_name(const struct conn *c) {
    return c->name;
}
void server_conn_set_data(struct conn *c, void *data) {
    c->data = data;
}
void *server_conn_get_data(const struct conn *c) {
    return c->data;
}
