/* SPDX-License-Identifier: MIT */
/* Which connections the HTTP server holds: per-address and total limits, who makes room, and each request's deadline.
 */
#pragma once

#include <stdbool.h>
#include <stdint.h>
#include <sys/socket.h>

#include "http.h"

/* Slots past connections_max for connections cut off and not yet closed by libmicrohttpd. */
#define HTTP_CONNS_CLOSING_MAX 16

struct hconn;
struct http_conns;

/* limits: complete (no zero field); copied. */
int http_conns_new(const struct http_limits *limits, struct http_conns **ret);
struct http_conns *http_conns_free(struct http_conns *hc);

/*
 * A connection was accepted at now (ms): makes room for it, cutting off the
 * connection that has waited longest for its request from the same address
 * (when that address holds per_ip_max) or from the address that holds the
 * most (when connections_max are open); then keeps fd in a slot that the
 * next http_conns_started() takes.  Returns 0, or -EBUSY when there is no
 * slot (too many cut off and not closed yet): the caller closes fd.
 */
int http_conns_admit(struct http_conns *hc, uint64_t now, int fd, const struct sockaddr *addr, socklen_t len);
/* libmicrohttpd took the admitted connection (MHD_CONNECTION_NOTIFY_STARTED): its slot, for the socket context. */
struct hconn *http_conns_started(struct http_conns *hc);
/* The admitted connection was not taken after all. */
void http_conns_abandon(struct http_conns *hc);
/* libmicrohttpd closed c (NULL is ignored). */
void http_conns_closed(struct http_conns *hc, struct hconn *c);
/* c's request headers are all in: the request has until request_timeout_ms after its wait began. */
void http_conns_headers_in(struct http_conns *hc, struct hconn *c);
/* c's request was answered: the wait for the next one's headers begins now. */
void http_conns_request_done(struct http_conns *hc, struct hconn *c, uint64_t now);
/* Cuts off every connection past its deadline; returns the ms until the next one (UINT64_MAX: none). */
uint64_t http_conns_cut_late(struct http_conns *hc, uint64_t now);

/* Connections open and not cut off; connections cut off since the start (late, or to make room). */
unsigned http_conns_open(const struct http_conns *hc);
uint64_t http_conns_cut_total(const struct http_conns *hc);
