/* SPDX-License-Identifier: MIT */
/* Which connections the HTTP server holds: per-address and total limits, who makes room, and each request's deadline.
 */
#include "http-conns.h"

#include <errno.h>
#include <netinet/in.h>
#include <stdlib.h>
#include <string.h>

#include "log.h"
#include "macro.h"

/* One TCP connection: its peer, and by when its current request must be in and answered. */
struct hconn {
    int fd;
    uint8_t ip[16]; /* the peer's address: 4 bytes for IPv4, 16 for IPv6 */
    uint8_t ip_len;
    uint64_t since;    /* uv_now() ms when the wait for its current request began */
    uint64_t order;    /* when, among the others: a counter (since has ties) */
    uint64_t deadline; /* since + header or request timeout */
    bool used;
    bool cut; /* shut down, waiting for libmicrohttpd to close it */
    bool headers_in;
};

struct http_conns {
    struct http_limits limits;
    struct hconn *slots;
    unsigned n_slots, open;
    struct hconn *pending; /* admitted, not yet taken by libmicrohttpd */
    uint64_t order;
    uint64_t cut_total;
};

int http_conns_new(const struct http_limits *limits, struct http_conns **ret) {
    struct http_conns *hc = calloc(1, sizeof(*hc));
    if (!hc)
        return -ENOMEM;
    hc->limits = *limits;
    hc->n_slots = limits->connections_max + HTTP_CONNS_CLOSING_MAX;
    hc->slots = calloc(hc->n_slots, sizeof(*hc->slots));
    if (!hc->slots) {
        free(hc);
        return -ENOMEM;
    }
    *ret = hc;
    return 0;
}

struct http_conns *http_conns_free(struct http_conns *hc) {
    if (hc)
        free(hc->slots);
    free(hc);
    return NULL;
}

static bool same_ip(const struct hconn *a, const struct hconn *b) {
    return a->ip_len == b->ip_len && memcmp(a->ip, b->ip, a->ip_len) == 0;
}

static bool live(const struct hconn *c) {
    return c->used && !c->cut;
}

/* Shuts c down; libmicrohttpd sees it end and closes it. */
static void cut(struct http_conns *hc, struct hconn *c, const char *why) {
    log_debug("HTTP connection fd %d %s, closing it", c->fd, why);
    (void)shutdown(c->fd, SHUT_RDWR);
    c->cut = true;
    hc->open--;
    hc->cut_total++;
}

/* The live connection like `like` (same address; any when NULL) that has waited longest for its request. */
static struct hconn *longest_waiting(struct http_conns *hc, const struct hconn *like) {
    struct hconn *oldest = NULL;
    for (unsigned i = 0; i < hc->n_slots; i++) {
        struct hconn *c = &hc->slots[i];
        if (live(c) && (!like || same_ip(c, like)) && (!oldest || c->order < oldest->order))
            oldest = c;
    }
    return oldest;
}

static unsigned count_ip(struct http_conns *hc, const struct hconn *like) {
    unsigned n = 0;
    for (unsigned i = 0; i < hc->n_slots; i++)
        n += live(&hc->slots[i]) && same_ip(&hc->slots[i], like);
    return n;
}

/* One live connection of the address that holds the most. */
static struct hconn *busiest(struct http_conns *hc) {
    struct hconn *most = NULL;
    unsigned n_most = 0;
    for (unsigned i = 0; i < hc->n_slots; i++) {
        struct hconn *c = &hc->slots[i];
        unsigned n = live(c) ? count_ip(hc, c) : 0;
        if (n > n_most) {
            most = c;
            n_most = n;
        }
    }
    return most;
}

int http_conns_admit(struct http_conns *hc, uint64_t now, int fd, const struct sockaddr *addr, socklen_t len) {
    struct hconn new = {.fd = fd, .used = true, .since = now};
    if (addr->sa_family == AF_INET && len >= sizeof(struct sockaddr_in)) {
        memcpy(new.ip, &((const struct sockaddr_in *)addr)->sin_addr, 4);
        new.ip_len = 4;
    } else if (addr->sa_family == AF_INET6 && len >= sizeof(struct sockaddr_in6)) {
        memcpy(new.ip, &((const struct sockaddr_in6 *)addr)->sin6_addr, 16);
        new.ip_len = 16;
    }
    if (count_ip(hc, &new) >= hc->limits.per_ip_max)
        cut(hc, longest_waiting(hc, &new), "makes room for another from its address");
    if (hc->open >= hc->limits.connections_max) {
        struct hconn *most = busiest(hc);
        cut(hc, longest_waiting(hc, most), "makes room for another (its address holds the most)");
    }
    for (unsigned i = 0; i < hc->n_slots; i++)
        if (!hc->slots[i].used) {
            new.deadline = now + MIN(hc->limits.header_timeout_ms, hc->limits.request_timeout_ms);
            new.order = ++hc->order;
            hc->slots[i] = new;
            hc->pending = &hc->slots[i];
            hc->open++;
            return 0;
        }
    return -EBUSY;
}

struct hconn *http_conns_started(struct http_conns *hc) {
    return TAKE_PTR(hc->pending);
}

void http_conns_abandon(struct http_conns *hc) {
    http_conns_closed(hc, TAKE_PTR(hc->pending));
}

void http_conns_closed(struct http_conns *hc, struct hconn *c) {
    if (!c)
        return;
    if (!c->cut)
        hc->open--;
    *c = (struct hconn){0};
}

void http_conns_headers_in(struct http_conns *hc, struct hconn *c) {
    if (!c || c->headers_in)
        return;
    c->headers_in = true;
    c->deadline = c->since + hc->limits.request_timeout_ms;
}

void http_conns_request_done(struct http_conns *hc, struct hconn *c, uint64_t now) {
    if (!c)
        return;
    c->headers_in = false;
    c->since = now;
    c->order = ++hc->order;
    c->deadline = now + MIN(hc->limits.header_timeout_ms, hc->limits.request_timeout_ms);
}

uint64_t http_conns_cut_late(struct http_conns *hc, uint64_t now) {
    uint64_t wait = UINT64_MAX;
    for (unsigned i = 0; i < hc->n_slots; i++) {
        struct hconn *c = &hc->slots[i];
        if (!live(c))
            continue;
        if (c->deadline <= now)
            cut(hc, c, c->headers_in ? "took too long for a request" : "did not send a request's headers in time");
        else
            wait = MIN(wait, c->deadline - now);
    }
    return wait;
}

unsigned http_conns_open(const struct http_conns *hc) {
    return hc->open;
}

uint64_t http_conns_cut_total(const struct http_conns *hc) {
    return hc->cut_total;
}
