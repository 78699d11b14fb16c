/* SPDX-License-Identifier: MIT */
/* libhalo's HA control calls (the contract is include/halo/ha.h): blocking requests on the application's socket. */
#include "halo/ha.h"

#include <errno.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "control-auth.h"
#include "frame.h"
#include "halo-internal.h"
#include "macro.h"

static int write_all(int fd, const uint8_t *p, size_t n) {
    while (n) {
        ssize_t k = send(fd, p, n, MSG_NOSIGNAL);
        if (k < 0) {
            if (errno == EINTR)
                continue;
            return errno == EPIPE || errno == ECONNRESET ? -HALO_ECLOSED : -errno;
        }
        p += k;
        n -= (size_t)k;
    }
    return 0;
}

/* intr: a signal ends the wait (-EINTR) before anything was read. */
static int read_all(int fd, uint8_t *p, size_t n, bool intr) {
    bool started = false;
    while (n) {
        ssize_t k = recv(fd, p, n, 0);
        if (k == 0)
            return -HALO_ECLOSED;
        if (k < 0) {
            if (errno == EINTR && (!intr || started))
                continue;
            return errno == ECONNRESET ? -HALO_ECLOSED : -errno;
        }
        p += k;
        n -= (size_t)k;
        started = true;
    }
    return 0;
}

/* Reads one message; returns 0 and *ret, -HALO_ECLOSED, -EBADMSG, -ENOMEM, -errno. */
static int read_msg(int fd, HaControl **ret, bool intr) {
    uint8_t hdr[FRAME_HEADER];
    int r = read_all(fd, hdr, sizeof(hdr), intr);
    if (r < 0)
        return r;
    uint32_t n = (uint32_t)hdr[0] << 24 | (uint32_t)hdr[1] << 16 | (uint32_t)hdr[2] << 8 | hdr[3];
    if (n > FRAME_CONTROL_MAX)
        return -EBADMSG;
    _cleanup_free_ uint8_t *body = malloc(n ? n : 1);
    if (!body)
        return -ENOMEM;
    r = read_all(fd, body, n, false);
    if (r < 0)
        return r;
    return frame_unpack_control(body, n, ret);
}

/* Sends a request and reads its Reply: returns the Reply's error, *ret_reply if asked. */
static int call(int fd, Halo__Ha__Request *q, HaControl **ret_reply) {
    HaControl m = HALO__HA__CONTROL__INIT;
    _cleanup_free_ uint8_t *buf = NULL;
    size_t len;
    m.body_case = HALO__HA__CONTROL__BODY_REQUEST;
    m.request = q;
    int r = frame_pack_control(&m, &buf, &len);
    if (r < 0)
        return r == -EMSGSIZE ? -EINVAL : r;
    r = write_all(fd, buf, len);
    if (r < 0)
        return r;
    HaControl *rep = NULL;
    r = read_msg(fd, &rep, false);
    if (r < 0)
        return r;
    if (rep->body_case != HALO__HA__CONTROL__BODY_REPLY) {
        frame_control_free(rep);
        return -EBADMSG;
    }
    r = rep->reply->error > 0 ? -EBADMSG : rep->reply->error;
    if (ret_reply && r == 0)
        *ret_reply = rep;
    else
        frame_control_free(rep);
    return r;
}

static bool text_ok(const char *s) {
    return s && *s && strlen(s) < HALO_HA_NAME_MAX;
}

/* Whether sock is an AF_UNIX socket (halod's, mode 0600), where a token may be given as it is. */
static bool is_local(int sock) {
    struct sockaddr_storage ss;
    socklen_t len = sizeof(ss);
    return getsockname(sock, (struct sockaddr *)&ss, &len) == 0 && ss.ss_family == AF_UNIX;
}

/*
 * The handshake of ha.proto: our nonce, halod's nonce and proof, then ours (or, to a halod
 * without a configured token over AF_UNIX, the token itself).
 */
static int open_as(int sock, Halo__Ha__Request__Op op, const char *token, const struct sockaddr *addr,
                   socklen_t addrlen) {
    Halo__Ha__Request q = HALO__HA__REQUEST__INIT;
    uint8_t nonce[FRAME_NONCE_LEN], mac[FRAME_MAC_LEN];
    HaControl *rep = NULL;
    assert_return(sock >= 0, -EINVAL);
    if (op == HALO__HA__REQUEST__OP__CONNECT ? !text_ok(token) : (token && strlen(token) >= HALO_HA_NAME_MAX))
        return op == HALO__HA__REQUEST__OP__CONNECT ? -HALO_EBADTOKEN : -EINVAL;
    token = token ?: "";
    if (addr)
        while (connect(sock, addr, addrlen) < 0)
            if (errno != EINTR)
                return -errno;
    int r = control_auth_nonce(nonce);
    if (r < 0)
        return r;
    q.op = op;
    q.nonce.data = nonce;
    q.nonce.len = sizeof(nonce);
    r = call(sock, &q, &rep);
    if (r < 0)
        return r;
    const Halo__Ha__Reply *p = rep->reply;
    q = (Halo__Ha__Request)HALO__HA__REQUEST__INIT;
    q.op = HALO__HA__REQUEST__OP__AUTH;
    if (p->nonce.len != FRAME_NONCE_LEN)
        r = -EBADMSG;
    else if (p->mac.len) {
        /* halod proved it holds our token (a listener that does not is told nothing); now we do. */
        if (!*token || !control_auth_check(token, CONTROL_AUTH_HALOD, nonce, p->nonce.data, p->mac.data, p->mac.len))
            r = -HALO_EBADTOKEN;
        else {
            control_auth_mac(token, CONTROL_AUTH_CLIENT, p->nonce.data, nonce, mac);
            q.mac.data = mac;
            q.mac.len = sizeof(mac);
        }
    } else if (!is_local(sock))
        r = -HALO_EBADTOKEN; /* the token never crosses a TCP socket */
    else
        q.token = (char *)token;
    frame_control_free(rep);
    return r < 0 ? r : call(sock, &q, NULL);
}

HALO_EXPORT int halo_ha_connect(int sock, const char *token, const struct sockaddr *addr, socklen_t addrlen) {
    return open_as(sock, HALO__HA__REQUEST__OP__CONNECT, token, addr, addrlen);
}

HALO_EXPORT int halo_ha_notifications_connect(int sock, const char *token, const struct sockaddr *addr,
                                              socklen_t addrlen) {
    return open_as(sock, HALO__HA__REQUEST__OP__NOTIFICATIONS, token, addr, addrlen);
}

static int simple(int sock, Halo__Ha__Request__Op op, const char *nodeid) {
    Halo__Ha__Request q = HALO__HA__REQUEST__INIT;
    assert_return(sock >= 0, -EINVAL);
    if (nodeid && !text_ok(nodeid))
        return -HALO_EBADNAME;
    q.op = op;
    q.nodeid = (char *)(nodeid ?: "");
    return call(sock, &q, NULL);
}

HALO_EXPORT int halo_ha_beprimary(int sock, const char *nodeid) {
    if (!nodeid)
        return -HALO_EBADNAME;
    return simple(sock, HALO__HA__REQUEST__OP__BEPRIMARY, nodeid);
}

HALO_EXPORT int halo_ha_besecondary(int sock, const char *nodeid, const char *primary_id, const char *primary_addr,
                                    bool waitreply) {
    Halo__Ha__Request q = HALO__HA__REQUEST__INIT;
    assert_return(sock >= 0, -EINVAL);
    if (!text_ok(nodeid) || !text_ok(primary_id))
        return -HALO_EBADNAME;
    if (!text_ok(primary_addr))
        return -EINVAL;
    q.op = HALO__HA__REQUEST__OP__BESECONDARY;
    q.nodeid = (char *)nodeid;
    q.primary_id = (char *)primary_id;
    q.primary_addr = (char *)primary_addr;
    q.waitreply = waitreply;
    return call(sock, &q, NULL);
}

HALO_EXPORT int halo_ha_berelay(int sock) {
    return simple(sock, HALO__HA__REQUEST__OP__BERELAY, NULL);
}

HALO_EXPORT int halo_ha_benone(int sock) {
    return simple(sock, HALO__HA__REQUEST__OP__BENONE, NULL);
}

HALO_EXPORT int halo_ha_secondary_dead(int sock, const char *nodeid) {
    if (!nodeid)
        return -HALO_EBADNAME;
    return simple(sock, HALO__HA__REQUEST__OP__SECONDARY_DEAD, nodeid);
}

HALO_EXPORT int halo_ha_status_get(int sock, halo_ha_status *ret) {
    Halo__Ha__Request q = HALO__HA__REQUEST__INIT;
    HaControl *rep = NULL;
    assert_return(sock >= 0 && ret, -EINVAL);
    q.op = HALO__HA__REQUEST__OP__STATUS;
    int r = call(sock, &q, &rep);
    if (r < 0)
        return r;
    memset(ret, 0, sizeof(*ret));
    ret->state = (halo_ha_role)rep->reply->state;
    for (size_t i = 0; i < rep->reply->n_nodes && i < HALO_HA_NODES_MAX; i++) {
        snprintf(ret->nodes[i].nodeid, HALO_HA_NAME_MAX, "%s", rep->reply->nodes[i]->nodeid);
        snprintf(ret->nodes[i].addr, HALO_HA_NAME_MAX, "%s", rep->reply->nodes[i]->addr);
        ret->n_nodes++;
    }
    frame_control_free(rep);
    return 0;
}

HALO_EXPORT int halo_ha_bemaster(int sock, const char *nodeid) {
    return halo_ha_beprimary(sock, nodeid);
}

HALO_EXPORT int halo_ha_beslave(int sock, const char *nodeid, const char *primary_id, const char *primary_addr,
                                bool waitreply) {
    return halo_ha_besecondary(sock, nodeid, primary_id, primary_addr, waitreply);
}

HALO_EXPORT int halo_ha_slave_dead(int sock, const char *nodeid) {
    return halo_ha_secondary_dead(sock, nodeid);
}

HALO_EXPORT int halo_ha_notification_read(int sock, halo_ha_info *ret) {
    HaControl *m = NULL;
    assert_return(sock >= 0 && ret, -EINVAL);
    for (;;) {
        int r = read_msg(sock, &m, true);
        if (r < 0)
            return r;
        if (m->body_case == HALO__HA__CONTROL__BODY_NOTIFICATION)
            break;
        frame_control_free(m); /* nothing else is expected on a notifications stream */
    }
    memset(ret, 0, sizeof(*ret));
    ret->type = (halo_ha_info_type)m->notification->type;
    snprintf(ret->nodeid, HALO_HA_NAME_MAX, "%s", m->notification->nodeid);
    ret->error = m->notification->error;
    ret->full_copy = m->notification->full_copy;
    snprintf(ret->reason, HALO_HA_NAME_MAX, "%s", m->notification->reason);
    frame_control_free(m);
    return 0;
}

HALO_EXPORT const char *halo_ha_role_to_string(halo_ha_role state) {
    switch (state) {
    case HALO_HA_STATE_NONE:
        return "NONE";
    case HALO_HA_STATE_SECONDARY:
        return "SECONDARY";
    case HALO_HA_STATE_PRIMARY:
        return "PRIMARY";
    case HALO_HA_STATE_SECONDARY_RELAY:
        return "SECONDARY_RELAY";
    }
    return "UNKNOWN";
}
