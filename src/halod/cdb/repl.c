/* SPDX-License-Identifier: MIT */
/* Replication of the configuration database between nodes: primary (and relay) to secondaries over TCP. */

/*
 * A node that serves (primary or relay) listens on its replication address;
 * a secondary connects to it (src/proto/ha.proto has the message sequence).
 * The engine is cut by role:
 *
 *   repl.c         the engine: creation, token, name, addresses; the hub its
 *                  databases share (one listener, one set of TLS credentials)
 *   repl-conn.c    a connection: lifetime, liveness ticks, framed reads and writes
 *   repl-auth.c    the handshake: HMAC-SHA256 over fresh nonces, names and role
 *   repl-serve.c   the primary's side: secondaries, full copies, the commit stream, acks
 *   repl-follow.c  the secondary's side: join, receive a copy, apply and acknowledge
 *
 * Every message is size-checked and validated before use (frame.c); a peer
 * that sends anything unexpected is cut off.
 */
#include "repl.h"

#include <arpa/inet.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "halo/halo.h"
#include "parse-util.h"
#include "repl-internal.h"

#define REPL_DEFAULT_PORT 4570

/* ---- the hub ---------------------------------------------------------------------- */

static int hub_new(uv_loop_t *loop, const char *listen, struct repl_hub **ret) {
    struct repl_hub *hub = calloc(1, sizeof(*hub));
    if (!hub)
        return -ENOMEM;
    hub->loop = loop;
    snprintf(hub->listen_addr, sizeof(hub->listen_addr), "%s", listen);
    int k = repl_parse_addr(listen, REPL_DEFAULT_PORT, &hub->listen_sa);
    if (k < 0) {
        free(hub);
        return k;
    }
    hub->listen_port = ntohs(hub->listen_sa.ss_family == AF_INET ? ((struct sockaddr_in *)&hub->listen_sa)->sin_port
                                                                 : ((struct sockaddr_in6 *)&hub->listen_sa)->sin6_port);
    *ret = hub;
    return 0;
}

void repl_hub_unref(struct repl_hub *hub) {
    if (--hub->refs > 0)
        return;
    repl_tls_free(hub->tls); /* after the last session that used it: each held its repl, each repl the hub */
    free(hub);
}

struct repl *repl_hub_find(struct repl_hub *hub, const char *name) {
    struct repl *r;
    LIST_FOREACH (repls, r, &hub->repls) {
        if (streq(r->name, name))
            return r;
    }
    return NULL;
}

struct repl *repl_hub_host(struct repl_hub *hub) {
    return hub->main ?: hub->repls.first;
}

/* ---- the engine -------------------------------------------------------------------- */

static void repl_release(struct repl *r) {
    struct repl_hub *hub = r->hub;
    free(r);
    repl_hub_unref(hub);
}

void repl_unref(struct repl *r) {
    if (--r->n_open == 0 && r->freeing)
        repl_release(r);
}

/* Without a port: "host", "[v6]", or an IPv6 address without brackets (more than one ':'). */
static bool addr_has_no_port(const char *s, size_t n) {
    const char *colon = strchr(s, ':');
    if (s[0] == '[')
        return s[n - 1] == ']';
    return !colon || strchr(colon + 1, ':');
}

int repl_parse_addr(const char *s, uint16_t default_port, struct sockaddr_storage *ret) {
    char host[INET6_ADDRSTRLEN + 2];
    uint16_t port = default_port;

    if (!s || !*s)
        return -EINVAL;
    size_t n = strlen(s);
    if (addr_has_no_port(s, n)) {
        size_t skip = s[0] == '[';
        if (n - 2 * skip >= sizeof(host))
            return -EINVAL;
        memcpy(host, s + skip, n - 2 * skip);
        host[n - 2 * skip] = '\0';
    } else if (parse_host_port(s, host, sizeof(host), &port) < 0)
        return -EINVAL;
    if (port == 0)
        return -EINVAL;
    memset(ret, 0, sizeof(*ret));
    if (uv_ip4_addr(host, port, (struct sockaddr_in *)ret) == 0)
        return 0;
    if (uv_ip6_addr(host, port, (struct sockaddr_in6 *)ret) == 0)
        return 0;
    return -EINVAL;
}

int repl_new(const struct repl_params *p, struct repl **ret) {
    const char *name = p->name ?: "", *subtree = p->subtree ?: "";
    struct repl_hub *hub = p->share ? p->share->hub : NULL;
    int k;

    if (strlen(name) > LINK_NAME_MAX || strlen(subtree) > LINK_CDB_PATH_MAX || (hub && !*name))
        return -EINVAL;
    if (hub && repl_hub_find(hub, name))
        return -EEXIST;
    struct repl *r = calloc(1, sizeof(*r));
    if (!r)
        return -ENOMEM;
    r->loop = p->loop;
    r->db = p->db;
    r->tick_msec = p->tick_msec;
    r->dead_msec = p->dead_msec;
    r->async = p->async;
    r->h = p->handlers;
    r->userdata = p->userdata;
    snprintf(r->name, sizeof(r->name), "%s", name);
    snprintf(r->subtree, sizeof(r->subtree), "%s", subtree);
    if (*name)
        snprintf(r->label, sizeof(r->label), " %s", *subtree ? subtree : name);
    if (!hub && (k = hub_new(p->loop, p->listen, &hub)) < 0) {
        free(r);
        return k;
    }
    k = cdb_observe(r->db, repl_serve_on_commit, repl_serve_on_group_end, r);
    if (k < 0) {
        free(r);
        if (hub->refs == 0)
            free(hub);
        return k;
    }
    r->hub = hub;
    hub->refs++;
    if (!p->share)
        hub->main = r;
    LIST_APPEND(repls, &hub->repls, r);
    r->seq_id = *cdb_last(r->db);
    *ret = r;
    return 0;
}

struct repl *repl_free(struct repl *r) {
    if (!r)
        return NULL;
    r->freeing = true;
    cdb_unobserve(r->db, repl_serve_on_commit, r); /* the database may commit after us, at its close */
    repl_serve_fail_waiters(r, -ESHUTDOWN);
    repl_unfollow(r);
    /* New connections of the hub go to another repl from now on. */
    LIST_REMOVE(repls, &r->hub->repls, r);
    if (r->hub->main == r)
        r->hub->main = NULL;
    while (!LIST_IS_EMPTY(&r->downs))
        repl_conn_close(r->downs.first, -ESHUTDOWN, "shutting down");
    free(r->token);
    r->token = NULL;
    repl_serve_leave(r, "shutting down");
    if (r->n_open == 0)
        repl_release(r);
    return NULL;
}

int repl_set_token(struct repl *r, const char *token) {
    char *t = strdup(token);
    if (!t)
        return -ENOMEM;
    free(r->token);
    r->token = t;
    return 0;
}

void repl_set_timing(struct repl *r, uint64_t tick_msec, uint64_t dead_msec, bool async) {
    r->tick_msec = tick_msec;
    r->dead_msec = dead_msec;
    r->async = async;
    /* Each connection's timer looks at it this often from its next look on (repl_conn_on_timer()). */
    struct peer *p;
    LIST_FOREACH (downs, p, &r->downs)
        uv_timer_set_repeat(&p->timer, repl_check_msec(r));
    if (r->up)
        uv_timer_set_repeat(&r->up->timer, repl_check_msec(r));
}

bool repl_timing(const struct repl *r, uint64_t *ret_tick_msec, uint64_t *ret_dead_msec) {
    *ret_tick_msec = r->tick_msec;
    *ret_dead_msec = r->dead_msec;
    return r->async;
}

int repl_set_tls(struct repl *r, const char *cert, const char *key, const char *ca, char *why, size_t n) {
    struct repl_tls *t;
    int k = repl_tls_new(cert, key, ca, &t, why, n);
    if (k < 0)
        return k;
    repl_tls_free(r->hub->tls);
    r->hub->tls = t;
    return 0;
}

int repl_set_nodeid(struct repl *r, const char *nodeid) {
    if (!nodeid || !*nodeid || strlen(nodeid) > LINK_NAME_MAX)
        return -HALO_EBADNAME;
    snprintf(r->nodeid, sizeof(r->nodeid), "%s", nodeid);
    return 0;
}
