/* SPDX-License-Identifier: MIT */
/* Replication of the configuration database between nodes: primary (and relay) to secondaries over TCP. */

/*
 * A node that serves (primary or relay) listens on its replication address;
 * a secondary connects to it (src/proto/ha.proto has the message sequence).
 * The engine is cut by role:
 *
 *   repl.c         the engine: creation, token, name, addresses
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

static void repl_release(struct repl *r) {
    repl_tls_free(r->tls); /* after the last session that used it */
    free(r);
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
    snprintf(r->listen_addr, sizeof(r->listen_addr), "%s", p->listen);
    int k = repl_parse_addr(p->listen, REPL_DEFAULT_PORT, &r->listen_sa);
    if (k < 0) {
        free(r);
        return k;
    }
    r->listen_port = ntohs(r->listen_sa.ss_family == AF_INET ? ((struct sockaddr_in *)&r->listen_sa)->sin_port
                                                             : ((struct sockaddr_in6 *)&r->listen_sa)->sin6_port);
    k = cdb_observe(r->db, repl_serve_on_commit, repl_serve_on_group_end, r);
    if (k < 0) {
        free(r);
        return k;
    }
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
    while (!LIST_IS_EMPTY(&r->downs))
        repl_conn_close(r->downs.first, -ESHUTDOWN, "shutting down");
    free(r->token);
    r->token = NULL;
    repl_serve_close_listener(r);
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
    repl_tls_free(r->tls);
    r->tls = t;
    return 0;
}

int repl_set_nodeid(struct repl *r, const char *nodeid) {
    if (!nodeid || !*nodeid || strlen(nodeid) > LINK_NAME_MAX)
        return -HALO_EBADNAME;
    snprintf(r->nodeid, sizeof(r->nodeid), "%s", nodeid);
    return 0;
}
