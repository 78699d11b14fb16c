/* SPDX-License-Identifier: MIT */
/* The HA control socket: listeners on AF_UNIX and loopback TCP, its connections, their token and requests. */

/*
 * A connection first proves it holds the token (ha.proto, control-auth.h):
 * with the token from the description, by HMAC over both sides' nonces, so
 * that the token never crosses the socket and a connection that cannot
 * prove it runs nothing and is closed.  Without one (AF_UNIX only: its mode
 * 0600 lets only halod's user in), CONNECT gives the token, which becomes
 * the token, as with ConfD.  One controlling connection at a time: an
 * authenticated CONNECT closes the previous one.  Requests are answered in
 * order: while a besecondary with waitreply waits, halod reads nothing more
 * from that connection.  Notification connections get every Notification;
 * one that does not read is cut off.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "control-auth.h"
#include "halo/halo.h"
#include "ha-internal.h"
#include "log.h"
#include "macro.h"
#include "parse-util.h"

#define HA_NOTIFY_QUEUE_MAX (1024 * 1024) /* a notification reader this far behind is cut off */
#define HA_CONNS_MAX 64

enum conn_kind { CONN_NEW, CONN_CHALLENGED, CONN_CONTROL, CONN_NOTIFY };

struct ctl {
    struct ha *h;
    LIST_FIELDS(struct ctl, conns); /* h->conns */
    union {
        uv_stream_t stream;
        uv_pipe_t pipe;
        uv_tcp_t tcp;
    } u;
    struct frame_reader reader;
    enum conn_kind kind;
    enum conn_kind want; /* CHALLENGED: what the connection becomes once it proved the token */
    uint8_t nonce_theirs[FRAME_NONCE_LEN], nonce_mine[FRAME_NONCE_LEN];
    bool tcp;
    bool closing;
    bool waiting; /* a besecondary answer is due: read nothing more meanwhile */
};

struct ctl_write {
    uv_write_t req;
    uint8_t *buf;
};

/* ---- connections ------------------------------------------------------------------ */

static void on_ctl_closed(uv_handle_t *handle) {
    struct ctl *c = handle->data;
    frame_reader_done(&c->reader);
    free(c);
}

static void ctl_close(struct ctl *c) {
    struct ha *h = c->h;
    if (c->closing)
        return;
    c->closing = true;
    LIST_REMOVE(conns, &h->conns, c);
    h->n_conns--;
    if (h->control == c)
        h->control = NULL;
    if (h->join_done && h->join_arg == c) {
        /* Its besecondary goes on; only the answer has nowhere to go. */
        h->join_done = NULL;
    }
    uv_close((uv_handle_t *)&c->u.stream, on_ctl_closed);
}

void ha_control_close_conns(struct ha *h) {
    while (!LIST_IS_EMPTY(&h->conns))
        ctl_close(h->conns.first);
}

static void on_ctl_written(uv_write_t *req, int status) {
    struct ctl_write *w = (struct ctl_write *)req;
    free(w->buf);
    free(w);
}

static int ctl_send(struct ctl *c, const HaControl *m) {
    struct ctl_write *w = malloc(sizeof(*w));
    size_t len;
    if (!w)
        return -ENOMEM;
    int r = frame_pack_control(m, &w->buf, &len);
    if (r < 0) {
        free(w);
        return r;
    }
    uv_buf_t b = uv_buf_init((char *)w->buf, (unsigned)len);
    r = uv_write(&w->req, &c->u.stream, &b, 1, on_ctl_written);
    if (r < 0) {
        free(w->buf);
        free(w);
    }
    return r;
}

void ha_control_notify(struct ha *h, Halo__Ha__Notification__Type type, const char *nodeid, int error, bool full_copy,
                       const char *reason) {
    Halo__Ha__Notification n = HALO__HA__NOTIFICATION__INIT;
    HaControl m = HALO__HA__CONTROL__INIT;
    struct ctl *c, *next;
    n.type = type;
    n.nodeid = (char *)(nodeid ?: "");
    n.error = error;
    n.full_copy = full_copy;
    n.reason = (char *)(reason ?: "");
    m.body_case = HALO__HA__CONTROL__BODY_NOTIFICATION;
    m.notification = &n;
    LIST_FOREACH_SAFE (conns, c, next, &h->conns) {
        if (c->kind != CONN_NOTIFY)
            continue;
        if (uv_stream_get_write_queue_size(&c->u.stream) > HA_NOTIFY_QUEUE_MAX || ctl_send(c, &m) < 0) {
            log_warning("An HA notifications reader fell behind: cut off");
            ctl_close(c);
        }
    }
}

/* ---- replies ---------------------------------------------------------------------- */

struct status_ctx {
    Halo__Ha__Node *nodes;
    Halo__Ha__Node **pnodes;
    size_t n;
};

static void add_node(const char *nodeid, const char *addr, void *userdata) {
    struct status_ctx *x = userdata;
    if (x->n >= FRAME_NODES_MAX)
        return;
    halo__ha__node__init(&x->nodes[x->n]);
    x->nodes[x->n].nodeid = (char *)nodeid;
    x->nodes[x->n].addr = (char *)addr;
    x->pnodes[x->n] = &x->nodes[x->n];
    x->n++;
}

static void reply(struct ctl *c, int error, bool status) {
    struct ha *h = c->h;
    Halo__Ha__Reply rep = HALO__HA__REPLY__INIT;
    HaControl m = HALO__HA__CONTROL__INIT;
    Halo__Ha__Node nodes[FRAME_NODES_MAX];
    Halo__Ha__Node *pnodes[FRAME_NODES_MAX];
    struct status_ctx x = {.nodes = nodes, .pnodes = pnodes};

    rep.error = error;
    if (status) {
        const char *addr = NULL, *primary = repl_primary(h->repl, &addr);
        rep.state = h->state;
        if (primary && (h->state == HA_STATE_SECONDARY || h->state == HA_STATE_SECONDARY_RELAY))
            add_node(primary, addr, &x);
        if (h->state == HA_STATE_PRIMARY || h->state == HA_STATE_SECONDARY_RELAY)
            repl_secondaries(h->repl, add_node, &x);
        rep.nodes = pnodes;
        rep.n_nodes = x.n;
    }
    m.body_case = HALO__HA__CONTROL__BODY_REPLY;
    m.reply = &rep;
    if (ctl_send(c, &m) < 0)
        ctl_close(c);
}

/* ---- requests ---------------------------------------------------------------------- */

static void on_ctl_read(uv_stream_t *s, ssize_t n, const uv_buf_t *buf);

static void on_ctl_alloc(uv_handle_t *handle, size_t suggested, uv_buf_t *buf) {
    static char slab[16384];
    buf->base = slab;
    buf->len = sizeof(slab);
}

static void resume_reading(struct ctl *c) {
    if (!c->closing)
        (void)uv_read_start(&c->u.stream, on_ctl_alloc, on_ctl_read);
}

static void on_join_reply(void *arg, int error) {
    struct ctl *c = arg;
    c->waiting = false;
    reply(c, error, false);
    resume_reading(c);
}

/* A connection that did not prove the token: it runs nothing more. */
static void refuse(struct ctl *c, const char *why) {
    log_warning("HA control: a connection on %s was refused: %s", c->tcp ? "TCP" : "the AF_UNIX socket", why);
    reply(c, -HALO_EBADTOKEN, false);
    ctl_close(c);
}

/* The first request: CONNECT or NOTIFICATIONS with the client's nonce; the answer carries halod's. */
static void handle_first(struct ctl *c, const Halo__Ha__Request *q) {
    struct ha *h = c->h;
    Halo__Ha__Reply rep = HALO__HA__REPLY__INIT;
    HaControl m = HALO__HA__CONTROL__INIT;
    uint8_t mac[FRAME_MAC_LEN];

    if (q->op != HALO__HA__REQUEST__OP__CONNECT && q->op != HALO__HA__REQUEST__OP__NOTIFICATIONS) {
        refuse(c, "a request before CONNECT");
        return;
    }
    if (q->nonce.len != FRAME_NONCE_LEN) {
        refuse(c, "no nonce (a client of an older libhalo?)");
        return;
    }
    if (c->tcp && !h->token_fixed) {
        refuse(c, "no token to prove on TCP");
        return;
    }
    if (control_auth_nonce(c->nonce_mine) < 0) {
        reply(c, -EIO, false);
        ctl_close(c);
        return;
    }
    memcpy(c->nonce_theirs, q->nonce.data, FRAME_NONCE_LEN);
    c->want = q->op == HALO__HA__REQUEST__OP__CONNECT ? CONN_CONTROL : CONN_NOTIFY;
    c->kind = CONN_CHALLENGED;
    rep.nonce.data = c->nonce_mine;
    rep.nonce.len = FRAME_NONCE_LEN;
    if (h->token_fixed) {
        control_auth_mac(h->token, CONTROL_AUTH_HALOD, c->nonce_theirs, c->nonce_mine, mac);
        rep.mac.data = mac;
        rep.mac.len = FRAME_MAC_LEN;
    }
    m.body_case = HALO__HA__CONTROL__BODY_REPLY;
    m.reply = &rep;
    if (ctl_send(c, &m) < 0)
        ctl_close(c);
}

/* AUTH: the client's proof, or (AF_UNIX, no token from the description) the token itself. */
static void handle_auth(struct ctl *c, const Halo__Ha__Request *q) {
    struct ha *h = c->h;

    if (q->op != HALO__HA__REQUEST__OP__AUTH) {
        refuse(c, "a request before AUTH");
        return;
    }
    if (h->token_fixed) {
        if (!control_auth_check(h->token, CONTROL_AUTH_CLIENT, c->nonce_mine, c->nonce_theirs, q->mac.data,
                                q->mac.len)) {
            refuse(c, "it did not prove the token");
            return;
        }
    } else if (c->want == CONN_CONTROL) {
        if (!*q->token) {
            refuse(c, "no token given");
            return;
        }
        int r = ha_set_token(h, q->token);
        if (r < 0) {
            reply(c, r, false);
            ctl_close(c);
            return;
        }
    } else if (h->token && !control_auth_equal(h->token, q->token)) {
        refuse(c, "another token than the one in force");
        return;
    }
    c->kind = c->want;
    if (c->kind == CONN_CONTROL) {
        if (h->control)
            ctl_close(h->control); /* one controlling connection: the newest */
        h->control = c;
        log_info("A new HA control connection took over");
    }
    reply(c, 0, false);
}

static void handle_request(struct ctl *c, const Halo__Ha__Request *q) {
    struct ha *h = c->h;
    int r = 0;

    if (c->kind == CONN_NEW) {
        handle_first(c, q);
        return;
    }
    if (c->kind == CONN_CHALLENGED) {
        handle_auth(c, q);
        return;
    }
    if (c->kind != CONN_CONTROL) {
        ctl_close(c); /* a notifications connection only reads */
        return;
    }
    if (h->driven_by && q->op != HALO__HA__REQUEST__OP__STATUS) {
        log_warning("HA control: a role call refused: the roles follow service group '%s' (cdb-roles)", h->driven_by);
        reply(c, -HALO_EBADSTATE, false);
        return;
    }
    switch (q->op) {
    case HALO__HA__REQUEST__OP__BEPRIMARY:
        r = ha_beprimary(h, q->nodeid);
        break;
    case HALO__HA__REQUEST__OP__BESECONDARY:
        if (q->waitreply) {
            r = ha_besecondary(h, q->nodeid, q->primary_id, q->primary_addr, on_join_reply, c);
            if (r == 0) {
                c->waiting = true;
                uv_read_stop(&c->u.stream);
                return;
            }
        } else
            r = ha_besecondary(h, q->nodeid, q->primary_id, q->primary_addr, NULL, NULL);
        break;
    case HALO__HA__REQUEST__OP__BERELAY:
        r = ha_berelay(h);
        break;
    case HALO__HA__REQUEST__OP__BENONE:
        r = ha_benone(h);
        break;
    case HALO__HA__REQUEST__OP__SECONDARY_DEAD:
        r = ha_secondary_dead(h, q->nodeid);
        break;
    case HALO__HA__REQUEST__OP__STATUS:
        reply(c, 0, true);
        return;
    case HALO__HA__REQUEST__OP__CONNECT:
    case HALO__HA__REQUEST__OP__NOTIFICATIONS:
    case HALO__HA__REQUEST__OP__AUTH:
    default:
        r = -HALO_EBADSTATE; /* already connected */
        break;
    }
    reply(c, r, false);
}

static void on_ctl_read(uv_stream_t *s, ssize_t n, const uv_buf_t *buf) {
    struct ctl *c = s->data;
    const uint8_t *body;
    size_t len;
    int k;

    if (n == 0)
        return;
    if (n < 0) {
        ctl_close(c);
        return;
    }
    if (frame_reader_feed(&c->reader, (const uint8_t *)buf->base, (size_t)n) < 0) {
        log_warning("HA control connection sent a message over the size limit: cut off");
        ctl_close(c);
        return;
    }
    while (!c->closing && !c->waiting && (k = frame_reader_next(&c->reader, &body, &len)) > 0) {
        HaControl *m = NULL;
        if (frame_unpack_control(body, len, &m) < 0 || m->body_case != HALO__HA__CONTROL__BODY_REQUEST) {
            frame_control_free(m);
            log_warning("HA control connection sent a malformed message: cut off");
            ctl_close(c);
            return;
        }
        handle_request(c, m->request);
        frame_control_free(m);
    }
}

/* ---- listeners ----------------------------------------------------------------------- */

static void on_ctl_connection(uv_stream_t *server, int status) {
    struct ha *h = server->data;
    if (status < 0)
        return;
    struct ctl *c = calloc(1, sizeof(*c));
    if (!c)
        return;
    c->h = h;
    frame_reader_init(&c->reader, FRAME_CONTROL_MAX);
    c->tcp = server != (uv_stream_t *)&h->pipe;
    if (c->tcp)
        uv_tcp_init(h->loop, &c->u.tcp);
    else
        uv_pipe_init(h->loop, &c->u.pipe, 0);
    c->u.stream.data = c;
    LIST_PREPEND(conns, &h->conns, c);
    h->n_conns++;
    if (uv_accept(server, &c->u.stream) < 0 || h->n_conns > HA_CONNS_MAX) {
        ctl_close(c);
        return;
    }
    resume_reading(c);
}

static int listen_tcp(struct ha *h, const char *addr) {
    char host[64];
    uint16_t port;
    struct sockaddr_storage sa;
    if (parse_host_port(addr, host, sizeof(host), &port) < 0)
        return -EINVAL;
    if (uv_ip4_addr(host, port, (struct sockaddr_in *)&sa) == 0) {
        if ((ntohl(((struct sockaddr_in *)&sa)->sin_addr.s_addr) >> 24) != 127)
            return -EADDRNOTAVAIL; /* loopback only, as a second guard beside the token */
    } else if (uv_ip6_addr(host, port, (struct sockaddr_in6 *)&sa) == 0) {
        if (!IN6_IS_ADDR_LOOPBACK(&((struct sockaddr_in6 *)&sa)->sin6_addr))
            return -EADDRNOTAVAIL;
    } else
        return -EINVAL;
    uv_tcp_init(h->loop, &h->tcp);
    h->tcp.data = h;
    h->tcp_open = true;
    h->open_handles++;
    int r = uv_tcp_bind(&h->tcp, (struct sockaddr *)&sa, 0);
    if (r >= 0)
        r = uv_listen((uv_stream_t *)&h->tcp, 8, on_ctl_connection);
    return r;
}

int ha_control_listen(struct ha *h, const char *path, const char *tcp) {
    h->control_path = strdup(path);
    if (!h->control_path)
        return -ENOMEM;
    (void)unlink(path);
    uv_pipe_init(h->loop, &h->pipe, 0);
    h->pipe.data = h;
    h->pipe_open = true;
    h->open_handles++;
    mode_t old = umask(0077); /* the control socket sets the cluster's token: its owner only */
    int r = uv_pipe_bind(&h->pipe, path);
    umask(old);
    if (r >= 0)
        r = uv_listen((uv_stream_t *)&h->pipe, 8, on_ctl_connection);
    if (r >= 0 && tcp)
        r = listen_tcp(h, tcp);
    return r;
}

static void on_listener_closed(uv_handle_t *handle) {
    struct ha *h = handle->data;
    if (--h->open_handles == 0 && h->freeing)
        free(h);
}

void ha_control_close_listeners(struct ha *h) {
    if (h->pipe_open)
        (void)unlink(h->control_path);
    free(h->control_path);
    h->control_path = NULL;
    if (h->pipe_open)
        uv_close((uv_handle_t *)&h->pipe, on_listener_closed);
    if (h->tcp_open)
        uv_close((uv_handle_t *)&h->tcp, on_listener_closed);
}
