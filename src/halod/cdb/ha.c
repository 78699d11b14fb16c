/* SPDX-License-Identifier: MIT */
/* HA roles of the configuration database (NONE, SECONDARY, PRIMARY, SECONDARY_RELAY) and the HA control socket. */

/*
 * Transitions (seed 002's calls; anything else is -HALO_EBADSTATE):
 *
 *   call \ state     NONE        SECONDARY          PRIMARY             RELAY
 *   beprimary        PRIMARY     PRIMARY (leaves    PRIMARY (same       PRIMARY (leaves its
 *                                its primary)       name; another:      primary, drops its
 *                                                   BADNAME)            secondaries)
 *   besecondary      SECONDARY   SECONDARY (new     SECONDARY (drops    SECONDARY (drops its
 *                                primary)           its secondaries)    secondaries)
 *   berelay          BADSTATE    RELAY (once        BADSTATE            RELAY (no change)
 *                                initialized)
 *   benone           NONE        NONE               NONE                NONE
 *   secondary_dead   BADSTATE    BADSTATE           closes it           closes it
 *   status           any state
 *
 * SECONDARY starts at besecondary (writes are refused from then on); a join
 * that fails ends in NONE.  A secondary or relay that loses its primary goes
 * to NONE, and a relay closes its own secondaries, which go to NONE too.
 * Writes are allowed in NONE (a database of its own) and PRIMARY.
 *
 * The control socket: one controlling connection at a time; its CONNECT
 * closes the previous one and sets the token.  Requests are answered in
 * order: while a besecondary with waitreply waits, halod reads nothing more
 * from that connection.  Notification connections (NOTIFICATIONS with the
 * token in force) get every Notification; one that does not read is cut off.
 */
#include "ha.h"

#include <errno.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "frame.h"
#include "halo/halo.h"
#include "log.h"
#include "macro.h"
#include "repl.h"

#define HA_NOTIFY_QUEUE_MAX (1024 * 1024) /* a notification reader this far behind is cut off */
#define HA_CONNS_MAX 64

enum conn_kind { CONN_NEW, CONN_CONTROL, CONN_NOTIFY };

struct ctl {
    struct ha *h;
    struct ctl *prev, *next;
    union {
        uv_stream_t stream;
        uv_pipe_t pipe;
        uv_tcp_t tcp;
    } u;
    struct frame_reader reader;
    enum conn_kind kind;
    bool closing;
    bool waiting; /* a besecondary answer is due: read nothing more meanwhile */
};

struct ctl_write {
    uv_write_t req;
    uint8_t *buf;
};

struct ha {
    uv_loop_t *loop;
    struct cdb *db;
    struct cdb_link *link;
    struct repl *repl;
    enum ha_state state;
    char nodeid[LINK_NAME_MAX + 1];
    char *token;
    bool initialized; /* SECONDARY: the join completed */

    uv_pipe_t pipe;
    uv_tcp_t tcp;
    bool pipe_open, tcp_open;
    unsigned open_handles; /* the listeners: the last close frees h once freeing */
    bool freeing;
    char *control_path;
    struct ctl *conns;
    size_t n_conns;
    struct ctl *control; /* the controlling connection */

    /* besecondary's waiter */
    void (*join_done)(void *arg, int error);
    void *join_arg;

    /* roles driven by the AMF */
    char *driven_by; /* the service group; NULL: the control socket sets the roles */
    void (*changed)(void *userdata);
    void *changed_userdata;
};

static void notify(struct ha *h, Halo__Ha__Notification__Type type, const char *nodeid, int error, bool full_copy,
                   const char *reason);

const char *ha_state_name(enum ha_state s) {
    switch (s) {
    case HA_STATE_NONE:
        return "NONE";
    case HA_STATE_SECONDARY:
        return "SECONDARY";
    case HA_STATE_PRIMARY:
        return "PRIMARY";
    case HA_STATE_SECONDARY_RELAY:
        return "SECONDARY_RELAY";
    }
    return "UNKNOWN";
}

enum ha_state ha_state(const struct ha *h) {
    return h->state;
}

static void set_state(struct ha *h, enum ha_state s) {
    if (h->state != s)
        log_info("CDB HA state %s -> %s", ha_state_name(h->state), ha_state_name(s));
    h->state = s;
}

/* ---- the role calls ----------------------------------------------------------- */

static void join_finish(struct ha *h, int error) {
    void (*done)(void *, int) = h->join_done;
    h->join_done = NULL;
    if (done)
        done(h->join_arg, error);
}

int ha_beprimary(struct ha *h, const char *nodeid) {
    if (!nodeid || !*nodeid || strlen(nodeid) > LINK_NAME_MAX)
        return -HALO_EBADNAME;
    if (h->state == HA_STATE_PRIMARY) {
        if (!streq(nodeid, h->nodeid))
            return -HALO_EBADNAME;
        return 0;
    }
    if (!h->token)
        return -HALO_EBADTOKEN;
    if (h->state == HA_STATE_SECONDARY || h->state == HA_STATE_SECONDARY_RELAY) {
        repl_unfollow(h->repl);
        join_finish(h, -HALO_ECLOSED);
    }
    if (h->state == HA_STATE_SECONDARY_RELAY)
        repl_stop_serving(h->repl, "the relay became a primary");
    (void)repl_set_nodeid(h->repl, nodeid);
    int r = repl_serve(h->repl);
    if (r < 0) {
        set_state(h, HA_STATE_NONE);
        return r;
    }
    snprintf(h->nodeid, sizeof(h->nodeid), "%s", nodeid);
    set_state(h, HA_STATE_PRIMARY);
    notify(h, HALO__HA__NOTIFICATION__TYPE__IS_PRIMARY, nodeid, 0, false, NULL);
    return 0;
}

int ha_besecondary(struct ha *h, const char *nodeid, const char *primary_id, const char *primary_addr,
                   void (*done)(void *arg, int error), void *arg) {
    if (!nodeid || !*nodeid || strlen(nodeid) > LINK_NAME_MAX || !primary_id || !*primary_id ||
        strlen(primary_id) > LINK_NAME_MAX || streq(nodeid, primary_id))
        return -HALO_EBADNAME;
    if (!primary_addr || !*primary_addr)
        return -EINVAL;
    if (!h->token)
        return -HALO_EBADTOKEN;
    if (h->state == HA_STATE_PRIMARY || h->state == HA_STATE_SECONDARY_RELAY)
        repl_stop_serving(h->repl, "the node became a secondary");
    join_finish(h, -HALO_ECLOSED); /* an earlier besecondary still joining */
    (void)repl_set_nodeid(h->repl, nodeid);
    int r = repl_follow(h->repl, primary_id, primary_addr);
    if (r < 0) {
        set_state(h, HA_STATE_NONE);
        return r;
    }
    snprintf(h->nodeid, sizeof(h->nodeid), "%s", nodeid);
    h->initialized = false;
    h->join_done = done;
    h->join_arg = arg;
    set_state(h, HA_STATE_SECONDARY);
    return 0;
}

int ha_berelay(struct ha *h) {
    if (h->state == HA_STATE_SECONDARY_RELAY)
        return 0;
    if (h->state != HA_STATE_SECONDARY || !h->initialized)
        return -HALO_EBADSTATE;
    int r = repl_serve(h->repl);
    if (r < 0)
        return r;
    set_state(h, HA_STATE_SECONDARY_RELAY);
    return 0;
}

int ha_benone(struct ha *h) {
    if (h->state == HA_STATE_PRIMARY || h->state == HA_STATE_SECONDARY_RELAY)
        repl_stop_serving(h->repl, "the node left its HA role");
    repl_unfollow(h->repl);
    join_finish(h, -HALO_ECLOSED);
    bool was_none = h->state == HA_STATE_NONE;
    set_state(h, HA_STATE_NONE);
    if (!was_none)
        notify(h, HALO__HA__NOTIFICATION__TYPE__IS_NONE, h->nodeid, 0, false, NULL);
    return 0;
}

int ha_secondary_dead(struct ha *h, const char *nodeid) {
    if (!nodeid || !*nodeid || strlen(nodeid) > LINK_NAME_MAX)
        return -HALO_EBADNAME;
    if (h->state != HA_STATE_PRIMARY && h->state != HA_STATE_SECONDARY_RELAY)
        return -HALO_EBADSTATE;
    repl_secondary_dead(h->repl, nodeid);
    return 0;
}

int ha_set_token(struct ha *h, const char *token) {
    char *t = strdup(token);
    if (!t)
        return -ENOMEM;
    int r = repl_set_token(h->repl, token);
    if (r < 0) {
        free(t);
        return r;
    }
    free(h->token);
    h->token = t;
    return 0;
}

/* ---- what replication tells us ------------------------------------------------------- */

static void on_secondary_arrived(void *userdata, const char *nodeid) {
    notify(userdata, HALO__HA__NOTIFICATION__TYPE__SECONDARY_ARRIVED, nodeid, 0, false, NULL);
}

static void on_secondary_died(void *userdata, const char *nodeid, const char *reason) {
    notify(userdata, HALO__HA__NOTIFICATION__TYPE__SECONDARY_DIED, nodeid, 0, false, reason);
}

static void on_joined(void *userdata, int error, bool full_copy, const char *reason) {
    struct ha *h = userdata;
    char primary[LINK_NAME_MAX + 1] = "";
    const char *p = repl_primary(h->repl, NULL);
    if (p)
        snprintf(primary, sizeof(primary), "%s", p);
    if (error < 0) {
        set_state(h, HA_STATE_NONE);
        notify(h, HALO__HA__NOTIFICATION__TYPE__BESECONDARY_RESULT, primary, error, false, reason);
        if (h->changed)
            h->changed(h->changed_userdata);
    } else {
        h->initialized = true;
        notify(h, HALO__HA__NOTIFICATION__TYPE__SECONDARY_INITIALIZED, primary, 0, full_copy, NULL);
        notify(h, HALO__HA__NOTIFICATION__TYPE__BESECONDARY_RESULT, primary, 0, full_copy, NULL);
    }
    join_finish(h, error);
}

static void on_lost(void *userdata, int error, const char *reason) {
    struct ha *h = userdata;
    if (h->state == HA_STATE_SECONDARY_RELAY)
        repl_stop_serving(h->repl, "the relay lost its primary");
    set_state(h, HA_STATE_NONE);
    h->initialized = false;
    notify(h, HALO__HA__NOTIFICATION__TYPE__NOPRIMARY, "", error, false, reason);
    if (h->changed)
        h->changed(h->changed_userdata);
}

static const struct repl_handlers repl_handlers = {
    .secondary_arrived = on_secondary_arrived,
    .secondary_died = on_secondary_died,
    .joined = on_joined,
    .lost = on_lost,
};

static int may_write(void *userdata) {
    struct ha *h = userdata;
    return h->state == HA_STATE_SECONDARY || h->state == HA_STATE_SECONDARY_RELAY ? -HALO_EREADONLY : 0;
}

static void replicated(void *userdata, const cdb_txid *id, void (*done)(void *arg, int error), void *arg) {
    struct ha *h = userdata;
    if (h->state == HA_STATE_PRIMARY)
        repl_wait(h->repl, id, done, arg);
    else
        done(arg, 0);
}

static const struct cdb_link_role link_role = {.may_write = may_write, .replicated = replicated};

/* ---- the control socket ------------------------------------------------------------ */

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
    if (c->prev)
        c->prev->next = c->next;
    else
        h->conns = c->next;
    if (c->next)
        c->next->prev = c->prev;
    h->n_conns--;
    if (h->control == c)
        h->control = NULL;
    if (h->join_done && h->join_arg == c) {
        /* Its besecondary goes on; only the answer has nowhere to go. */
        h->join_done = NULL;
    }
    uv_close((uv_handle_t *)&c->u.stream, on_ctl_closed);
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

static void handle_request(struct ctl *c, const Halo__Ha__Request *q) {
    struct ha *h = c->h;
    int r = 0;

    if (c->kind == CONN_NEW) {
        if (q->op == HALO__HA__REQUEST__OP__CONNECT) {
            if (!*q->token || (h->driven_by && !streq(q->token, h->token))) {
                reply(c, -HALO_EBADTOKEN, false);
                return;
            }
            r = h->driven_by ? 0 : ha_set_token(h, q->token);
            if (r < 0) {
                reply(c, r, false);
                return;
            }
            if (h->control)
                ctl_close(h->control); /* one controlling connection: the newest */
            h->control = c;
            c->kind = CONN_CONTROL;
            log_info("A new HA control connection took over");
            reply(c, 0, false);
            return;
        }
        if (q->op == HALO__HA__REQUEST__OP__NOTIFICATIONS) {
            if (h->token && !streq(h->token, q->token)) {
                reply(c, -HALO_EBADTOKEN, false);
                ctl_close(c);
                return;
            }
            c->kind = CONN_NOTIFY;
            reply(c, 0, false);
            return;
        }
        reply(c, -HALO_EBADTOKEN, false); /* connect with the token first */
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

static void on_ctl_connection(uv_stream_t *server, int status) {
    struct ha *h = server->data;
    if (status < 0)
        return;
    struct ctl *c = calloc(1, sizeof(*c));
    if (!c)
        return;
    c->h = h;
    frame_reader_init(&c->reader, FRAME_CONTROL_MAX);
    if (server == (uv_stream_t *)&h->pipe)
        uv_pipe_init(h->loop, &c->u.pipe, 0);
    else
        uv_tcp_init(h->loop, &c->u.tcp);
    c->u.stream.data = c;
    c->next = h->conns;
    if (h->conns)
        h->conns->prev = c;
    h->conns = c;
    h->n_conns++;
    if (uv_accept(server, &c->u.stream) < 0 || h->n_conns > HA_CONNS_MAX) {
        ctl_close(c);
        return;
    }
    resume_reading(c);
}

static void notify(struct ha *h, Halo__Ha__Notification__Type type, const char *nodeid, int error, bool full_copy,
                   const char *reason) {
    Halo__Ha__Notification n = HALO__HA__NOTIFICATION__INIT;
    HaControl m = HALO__HA__CONTROL__INIT;
    n.type = type;
    n.nodeid = (char *)(nodeid ?: "");
    n.error = error;
    n.full_copy = full_copy;
    n.reason = (char *)(reason ?: "");
    m.body_case = HALO__HA__CONTROL__BODY_NOTIFICATION;
    m.notification = &n;
    for (struct ctl *c = h->conns, *next; c; c = next) {
        next = c->next;
        if (c->kind != CONN_NOTIFY)
            continue;
        if (uv_stream_get_write_queue_size(&c->u.stream) > HA_NOTIFY_QUEUE_MAX || ctl_send(c, &m) < 0) {
            log_warning("An HA notifications reader fell behind: cut off");
            ctl_close(c);
        }
    }
}

/* ---- setup ------------------------------------------------------------------ */

static int listen_tcp(struct ha *h, const char *addr) {
    char host[64];
    const char *colon = strrchr(addr, ':');
    struct sockaddr_storage sa;
    if (!colon || (size_t)(colon - addr) >= sizeof(host))
        return -EINVAL;
    memcpy(host, addr, (size_t)(colon - addr));
    host[colon - addr] = '\0';
    char *end;
    long port = strtol(colon + 1, &end, 10);
    if (*end || port < 0 || port > 65535)
        return -EINVAL;
    if (host[0] == '[' && host[strlen(host) - 1] == ']') {
        memmove(host, host + 1, strlen(host));
        host[strlen(host) - 1] = '\0';
    }
    if (uv_ip4_addr(host, (int)port, (struct sockaddr_in *)&sa) == 0) {
        if ((ntohl(((struct sockaddr_in *)&sa)->sin_addr.s_addr) >> 24) != 127)
            return -EADDRNOTAVAIL; /* loopback only: the control socket sets the cluster's token */
    } else if (uv_ip6_addr(host, (int)port, (struct sockaddr_in6 *)&sa) == 0) {
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

int ha_new(const struct ha_params *p, struct ha **ret) {
    struct ha *h = calloc(1, sizeof(*h));
    int r;
    if (!h)
        return -ENOMEM;
    h->loop = p->loop;
    h->db = p->db;
    h->link = p->link;
    h->state = HA_STATE_NONE;
    struct repl_params rp = {.loop = p->loop,
                             .db = p->db,
                             .listen = p->repl_listen,
                             .tick_msec = p->tick_msec,
                             .dead_msec = p->dead_msec,
                             .async = p->async,
                             .handlers = &repl_handlers,
                             .userdata = h};
    r = repl_new(&rp, &h->repl);
    if (r < 0) {
        free(h);
        return r;
    }
    h->control_path = strdup(p->control_path);
    if (!h->control_path) {
        ha_free(h);
        return -ENOMEM;
    }
    (void)unlink(p->control_path);
    uv_pipe_init(p->loop, &h->pipe, 0);
    h->pipe.data = h;
    h->pipe_open = true;
    h->open_handles++;
    mode_t old = umask(0077); /* the control socket sets the cluster's token: its owner only */
    r = uv_pipe_bind(&h->pipe, p->control_path);
    umask(old);
    if (r >= 0)
        r = uv_listen((uv_stream_t *)&h->pipe, 8, on_ctl_connection);
    if (r >= 0 && p->control_tcp)
        r = listen_tcp(h, p->control_tcp);
    if (r < 0) {
        ha_free(h);
        return r;
    }
    cdb_link_set_role(p->link, &link_role, h);
    *ret = h;
    return 0;
}

static void on_listener_closed(uv_handle_t *handle) {
    struct ha *h = handle->data;
    if (--h->open_handles == 0 && h->freeing)
        free(h);
}

struct ha *ha_free(struct ha *h) {
    if (!h)
        return NULL;
    if (h->link)
        cdb_link_set_role(h->link, NULL, NULL);
    while (h->conns)
        ctl_close(h->conns);
    h->join_done = NULL;
    h->repl = repl_free(h->repl);
    if (h->pipe_open)
        (void)unlink(h->control_path);
    free(h->control_path);
    free(h->token);
    free(h->driven_by);
    h->control_path = h->token = h->driven_by = NULL;
    h->freeing = true;
    /* The listeners live in h: the last close callback frees it. */
    if (h->pipe_open)
        uv_close((uv_handle_t *)&h->pipe, on_listener_closed);
    if (h->tcp_open)
        uv_close((uv_handle_t *)&h->tcp, on_listener_closed);
    if (h->open_handles == 0)
        free(h);
    return NULL;
}

int ha_set_driven(struct ha *h, const char *sg, const char *token, void (*changed)(void *userdata), void *userdata) {
    char *s = strdup(sg);
    if (!s)
        return -ENOMEM;
    int r = ha_set_token(h, token);
    if (r < 0) {
        free(s);
        return r;
    }
    free(h->driven_by);
    h->driven_by = s;
    h->changed = changed;
    h->changed_userdata = userdata;
    return 0;
}

int ha_follow(struct ha *h, enum ha_state want, const char *self, const char *primary, const char *addr) {
    const char *following = repl_primary(h->repl, NULL);
    switch (want) {
    case HA_STATE_PRIMARY:
        return h->state == HA_STATE_PRIMARY ? 0 : ha_beprimary(h, self);
    case HA_STATE_SECONDARY:
        if (h->state == HA_STATE_SECONDARY && following && streq(following, primary))
            return 0; /* joined, or joining */
        if (h->state == HA_STATE_PRIMARY)
            (void)ha_benone(h); /* first stop taking writes, then join */
        return ha_besecondary(h, self, primary, addr, NULL, NULL);
    case HA_STATE_NONE:
        return h->state == HA_STATE_NONE ? 0 : ha_benone(h);
    case HA_STATE_SECONDARY_RELAY:
    default:
        return -EINVAL;
    }
}

char *ha_status_json(struct ha *h) {
    json_t *o = json_object(), *secs = json_array();
    char txid[CDB_TXID_STRING_MAX];
    const char *addr = NULL, *primary = repl_primary(h->repl, &addr);
    struct {
        Halo__Ha__Node nodes[FRAME_NODES_MAX];
        Halo__Ha__Node *pnodes[FRAME_NODES_MAX];
    } buf;
    struct status_ctx x = {.nodes = buf.nodes, .pnodes = buf.pnodes};
    repl_secondaries(h->repl, add_node, &x);
    for (size_t i = 0; i < x.n; i++)
        json_array_append_new(secs, json_pack("{s:s, s:s}", "nodeid", x.nodes[i].nodeid, "addr", x.nodes[i].addr));
    json_object_set_new(o, "state", json_string(ha_state_name(h->state)));
    json_object_set_new(o, "nodeid", *h->nodeid ? json_string(h->nodeid) : json_null());
    json_object_set_new(o, "primary", primary ? json_string(primary) : json_null());
    json_object_set_new(o, "secondaries", secs);
    json_object_set_new(o, "last_txid", json_string(cdb_txid_format(cdb_last(h->db), txid)));
    char *s = json_dumps(o, JSON_COMPACT);
    json_decref(o);
    return s;
}
