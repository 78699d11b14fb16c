/* SPDX-License-Identifier: MIT */
/* The HA link server: accepts components and haloctl on an AF_UNIX SOCK_SEQPACKET socket. */
#pragma once

#include <stdbool.h>
#include <sys/types.h>
#include <uv.h>

#include "link.h"

struct server;
struct conn;

struct server_handlers {
    /* A validated message from a connection that finished its Hello. */
    void (*on_msg)(struct conn *c, const LinkMsg *m, void *userdata);
    /* The connection is going away (EOF, error, bad input, server_conn_close);
     * c is still valid during the call and never after. */
    void (*on_close)(struct conn *c, const char *reason, void *userdata);
    /* What was queued for a slow reader has all been sent (optional). */
    void (*on_drained)(struct conn *c, void *userdata);
};

/* Connections kept open at most: SERVER_CONNS_MAX, or fewer as the open-file
 * limit (RLIMIT_NOFILE, soft) leaves room after SERVER_FD_RESERVE descriptors
 * (or a quarter of the limit, if more) kept for everything else.  At the
 * limit, the oldest connection of the process that holds the most makes room
 * for the new one; when every process holds one, the new one is closed. */
#define SERVER_CONNS_MAX 4096
/* A connection that has not sent Hello this long after its accept is closed: libhalo and haloctl
 * send it at once, so only a client that never will is left holding a slot. */
#define SERVER_HELLO_TIMEOUT_MS 10000
#define SERVER_CONNS_MIN 16
#define SERVER_FD_RESERVE 256
#define SERVER_FULL_LOG_INTERVAL_MS 10000

/* Binds path (an existing socket file there is replaced), mode 0660. */
int server_new(uv_loop_t *loop, const char *path, const char *node, const struct server_handlers *h, void *userdata,
               struct server **ret);
/* Closes every connection (on_close runs for each) and the listener. */
struct server *server_free(struct server *s);

/* Connections cut off for not reading what was queued for them, since start. */
uint64_t server_cut_off_total(const struct server *s);

/* The lease file the processes must watch (several nodes); copied. */
int server_set_lease_file(struct server *s, const char *path);
/* Sends, or queues what the peer's socket cannot take now (sent, in order,
 * as it reads).  A peer with SERVER_CONN_QUEUE_MAX bytes waiting is taken as
 * hung and cut off (closed, as on any send failure); so is the peer with the
 * most waiting whenever all queues together pass SERVER_QUEUE_TOTAL_MAX, so
 * that many slow readers cannot take halod's memory either.  The send that
 * cuts its own peer off returns -EAGAIN. */
#define SERVER_CONN_QUEUE_MAX (4 * 1024 * 1024)
#define SERVER_QUEUE_TOTAL_MAX (32 * 1024 * 1024)
int server_conn_send(struct conn *c, const LinkMsg *m);
/* The same for a message packed once with link_encode(), sent to many. */
int server_conn_send_packed(struct conn *c, const uint8_t *buf, size_t n);
/* Several packed messages in order, with one system call where the socket
 * takes them all: the peer is woken once, not once per message. */
int server_conn_send_packets(struct conn *c, const struct iovec *pkts, size_t n);
/* Bytes queued for c, waiting for it to read. */
size_t server_conn_queued(const struct conn *c);
void server_conn_close(struct conn *c, const char *reason);
pid_t server_conn_pid(const struct conn *c);
/* Whether the peer (its SO_PEERCRED uid) is root or halod's own user: it may
 * act for any component (error reports) and run operator commands. */
bool server_conn_is_privileged(const struct conn *c);
bool server_conn_is_admin(const struct conn *c);
const char *server_conn_name(const struct conn *c); /* "pid 123" for logs */
void server_conn_set_data(struct conn *c, void *data);
void *server_conn_get_data(const struct conn *c);
/* Sends a Reply{seq,error,json}. */
int server_conn_reply(struct conn *c, uint64_t seq, int error, const char *json);
/* A JSON reply that may not fit one packet (takes json): the first part now,
 * the next on each server_conn_reply_next_part() (the client's STATUS_MORE);
 * Reply.more says whether more follows.  One such reply per connection. */
int server_conn_reply_parts(struct conn *c, uint64_t seq, char *json);
int server_conn_reply_next_part(struct conn *c, uint64_t seq);
/* Sends a Reply the caller filled in (states, HA state, retry hint...). */
int server_conn_send_reply(struct conn *c, Halo__Link__Reply *r);
