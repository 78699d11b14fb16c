/* SPDX-License-Identifier: MIT */
/* The replication engine's objects, shared by repl.c, repl-conn.c, repl-auth.c, repl-serve.c and repl-follow.c only. */
#pragma once

#include <gnutls/gnutls.h>
#include <stdbool.h>
#include <stdint.h>
#include <sys/socket.h>
#include <uv.h>

#include "cdb.h"
#include "frame.h"
#include "list.h"
#include "macro.h"
#include "repl.h"

/* A packed frame shared by several connections' writes. */
struct blob {
    unsigned refs;
    size_t len;
    uint8_t data[];
};

enum peer_role { PEER_DOWN, PEER_UP }; /* a secondary of ours, or our primary */

enum peer_phase {
    PHASE_CONNECTING, /* up: TCP connect in progress */
    PHASE_HELLO,      /* waiting for the other side's Hello (and, up, Auth) */
    PHASE_AUTH,       /* down: waiting for Auth and Join */
    PHASE_WELCOME,    /* up: waiting for Welcome */
    PHASE_COPY,       /* a full copy in progress (either side) */
    PHASE_STREAM,     /* in sync: Txn and Ack */
    PHASE_CLOSING,
};

/* A transaction committed while its secondary was still receiving a full copy. */
struct queued_txn {
    LIST_FIELDS(struct queued_txn, queue);
    struct blob *blob;
};

/* Ciphertext read and not yet taken by GnuTLS. */
struct peer_tls_in {
    uint8_t *data;
    size_t len, off, cap;
};

struct peer {
    struct repl *r;
    LIST_FIELDS(struct peer, downs); /* r->downs */
    enum peer_role role;
    enum peer_phase phase;
    uv_tcp_t tcp;
    uv_timer_t timer;
    uv_connect_t connect;
    unsigned open_handles;
    struct frame_reader reader;
    char nodeid[LINK_NAME_MAX + 1];
    char addr[64];
    char *token; /* the secret in force when the connection started */
    uint8_t nonce_mine[FRAME_NONCE_LEN], nonce_theirs[FRAME_NONCE_LEN];
    uint64_t last_rx, last_tx; /* loop time, ms */
    uint64_t started;          /* loop time, ms: accepted, or connected (up) */
    uint64_t acked;            /* down: highest seq acknowledged (durable there) */
    uint64_t base_seq;         /* down: the stream seq when it joined */
    bool full_copy;
    bool authed;          /* the other side proved it holds the token: its name counts, large frames are taken */
    bool received;        /* a byte came */
    bool explained;       /* an Error came: the other side said why it closes */
    gnutls_session_t tls; /* with --cdb-tls-*: the session, else NULL */
    bool tls_ready;       /* its handshake is over: the other side's certificate is verified */
    struct peer_tls_in tls_in;
    uint64_t gen;    /* up: which join this is */
    char *discarded; /* up, copying: this node's transactions the copy drops (text), or NULL */
    /* down, streaming: the transactions of the group being committed, written at its end */
    struct blob **cork;
    size_t n_cork, cap_cork;
    /* down, copying: the snapshot and what committed after it */
    struct cdb_snapshot *snap;
    LIST_HEAD(struct queued_txn) queue;
    cdb_txid copy_id;
    /* up: acknowledgements waiting for their commit */
    uint64_t applied; /* highest seq durable here */
    unsigned pending_applies;
};

/* A commit of this node waiting for the secondaries (repl_wait). */
struct waiter {
    LIST_FIELDS(struct waiter, waiters);
    uint64_t seq;
    void (*done)(void *arg, int error);
    void *arg;
};

/*
 * What the repls of one node share: the replication listener and the TLS credentials.  A
 * connection is accepted into the hub's host (its main repl while there is one) and moves to
 * the repl its Hello names (repl_conn_move()).  Every repl holds a reference until it is
 * released (after its last peer: so the credentials outlive every session), and the listener
 * holds one while it is open.
 */
struct repl_hub {
    uv_loop_t *loop;
    char listen_addr[64];
    uint16_t listen_port;
    struct sockaddr_storage listen_sa;
    uv_tcp_t *listener;           /* while a repl of the hub serves; freed by its close callback */
    unsigned n_serving;           /* repls serving */
    struct repl_tls *tls;         /* every connection over TLS, or NULL (repl-tls.c) */
    struct repl *main;            /* the repl that made the hub, until it is freed */
    LIST_HEAD(struct repl) repls; /* not freed yet */
    unsigned refs;
};

struct repl {
    uv_loop_t *loop;
    struct cdb *db;
    struct repl_hub *hub;
    LIST_FIELDS(struct repl, repls); /* hub->repls */
    char name[LINK_NAME_MAX + 1];    /* the database: "" the main one, else its cdb-roles group */
    char subtree[LINK_CDB_PATH_MAX + 1];
    char label[LINK_CDB_PATH_MAX + 4]; /* in log lines after "CDB": "" for the main database, " /sub" */
    uint64_t tick_msec, dead_msec;
    bool async;
    const struct repl_handlers *h;
    void *userdata;
    char *token;
    char nodeid[LINK_NAME_MAX + 1];

    bool serving;                 /* repl_serve(): secondaries of this database are taken */
    unsigned n_open;              /* peers not released yet: the last frees r once freeing */
    LIST_HEAD(struct peer) downs; /* newest first */
    struct peer *up;
    char up_primary[LINK_NAME_MAX + 1], up_addr[LINK_NAME_MAX + 1];

    uint64_t up_gen;
    uint64_t seq; /* the stream: the last seq given to a committed transaction */
    /* The secondary whose acknowledgement every commit needs, whether connected or not ("": none,
     * the application's mode), and the highest seq it has durably. */
    char expect[LINK_NAME_MAX + 1];
    uint64_t expect_acked;
    bool expect_joined; /* it joined in sync, or acknowledged a copy, since it was named */
    bool hold;          /* repl_hold(): no commit is acknowledged */
    cdb_txid seq_id;
    LIST_HEAD(struct waiter) waiters; /* newest first */
    bool freeing;
};

/* Until the other side authenticated, a frame holds at most this much (a Hello, an Auth, a Join, an Error). */
#define REPL_PREAUTH_FRAME_MAX 4096
/* A connection must authenticate within the dead interval, and at least this long. */
#define REPL_AUTH_TIMEOUT_MIN_MSEC 2000

static inline uint64_t repl_now_ms(struct repl *r) {
    return uv_now(r->loop);
}

/* How often a connection's timer looks at it: twice per tick or dead interval, whichever is shorter. */
static inline uint64_t repl_check_msec(const struct repl *r) {
    return MIN(r->tick_msec, r->dead_msec) / 2 + 1;
}

/* repl.c */
/* A released peer: the last one frees r once repl_free() ran. */
void repl_unref(struct repl *r);
/* A reference of the hub dropped: the last frees it with its TLS credentials. */
void repl_hub_unref(struct repl_hub *hub);
/* The repl of the hub for database name ("": the main one), or NULL. */
struct repl *repl_hub_find(struct repl_hub *hub, const char *name);
/* Where the hub takes a new connection until its Hello names a database; NULL when no repl is left. */
struct repl *repl_hub_host(struct repl_hub *hub);
/* "host", "host:port", "[v6]" or "[v6]:port", numeric only; 0 or -EINVAL. */
int repl_parse_addr(const char *s, uint16_t default_port, struct sockaddr_storage *ret);

/* repl-conn.c: connections and framing I/O */
struct peer *repl_conn_new(struct repl *r, enum peer_role role);
/* Ends a connection: unlinks it, tells the owner (unless the engine is going away), closes its handles. */
void repl_conn_close(struct peer *p, int error, const char *reason);
/* Closes the handles of a connection that was never linked or whose end is reported otherwise. */
void repl_conn_close_handles(struct peer *p);
/* A secondary's connection whose Hello named the database of to (a repl of the same hub) moves
 * there: it takes to's token, timing and reference.  0, or -ENOMEM (p stays where it was). */
int repl_conn_move(struct peer *p, struct repl *to);
void repl_conn_on_timer(uv_timer_t *t);
/* The other side proved it holds the token: from now on its frames may be as large as any. */
void repl_conn_authed(struct peer *p);
/* Starts reading: every complete message goes to repl_serve_msg() or repl_follow_msg(). */
int repl_conn_start_reading(struct peer *p);
/* Where the other end of tcp is, "ADDR:PORT". */
void repl_conn_peer_addr(uv_tcp_t *tcp, char *out, size_t n);
struct blob *repl_conn_blob_pack(const HaRepl *m);
struct blob *repl_conn_blob_unref(struct blob *b);
/* Writes n blobs in one request (each gets a reference). */
int repl_conn_send_blobs(struct peer *p, struct blob *const *b, size_t n);
int repl_conn_send_blob(struct peer *p, struct blob *b);
int repl_conn_send_msg(struct peer *p, const HaRepl *m);
void repl_conn_send_error(struct peer *p, int error, const char *text);

/* Feeds bytes read (plaintext, or decrypted) to the framing: each complete message goes to its side. */
void repl_conn_feed(struct peer *p, const uint8_t *data, size_t n);
/* A write of p ended with status: a failure closes it, a copy in progress sends more. */
void repl_conn_written(struct peer *p, int status);

/* repl-tls.c: the TLS layer */
#define REPL_TLS_CERT_HINT \
    "does it take this node's certificate (--cdb-tls-cert, signed by the CA of its --cdb-tls-ca)?"
struct repl_tls;
/* The credentials from the PEM files: 0, -ENOMEM, or -EINVAL with why filled in. */
int repl_tls_new(const char *cert, const char *key, const char *ca, struct repl_tls **ret, char *why, size_t n);
void repl_tls_free(struct repl_tls *t);
/* Starts p's session (the client sends its hello); 0, -ENOMEM or -EIO. */
int repl_tls_start(struct peer *p);
/* Frees p's session and buffer (accepts none). */
void repl_tls_done(struct peer *p);
/* Ciphertext came: runs the handshake (then, up, sends our Hello), hands plaintext to repl_conn_feed(). */
void repl_tls_feed(struct peer *p, const uint8_t *data, size_t n);
/* Encrypts data into writes of p; -ENOTCONN before the handshake is over, -EIO. */
int repl_tls_send(struct peer *p, const uint8_t *data, size_t len);

/* repl-auth.c: the HMAC handshake */
int repl_auth_send_hello(struct peer *p);
/* Our Auth as role ("primary" or "secondary"): a MAC over both nonces and names. */
int repl_auth_send(struct peer *p, const char *role, const char *me, const char *them);
/* Whether their Auth as role proves they hold our token. */
bool repl_auth_ok(struct peer *p, const Halo__Ha__Auth *a, const char *role, const char *them, const char *me);

/* repl-serve.c: the primary (or relay) side */
void repl_serve_msg(struct peer *p, const HaRepl *m);
/* A secondary's connection ended (was: its phase before). */
void repl_serve_closed(struct peer *p, enum peer_phase was, const char *reason);
/* Frees what a secondary's connection holds of the stream: its cork, snapshot and queue. */
void repl_serve_release(struct peer *p);
/* Sends the copy's next rows while the write queue is short. */
void repl_serve_pump_copy(struct peer *p);
void repl_serve_on_commit(struct cdb *db, const cdb_txid *id, const struct cdb_op *ops, size_t n, void *userdata);
void repl_serve_on_group_end(struct cdb *db, void *userdata);
/* Commits still waiting for the secondaries get error: their replication is not known. */
void repl_serve_fail_waiters(struct repl *r, int error);
/* r no longer serves: the hub's listener closes when no repl of it serves. */
void repl_serve_leave(struct repl *r, const char *reason);

/* repl-follow.c: the secondary side */
void repl_follow_msg(struct peer *p, const HaRepl *m);
/* Our primary's connection ended (was: its phase before). */
void repl_follow_closed(struct peer *p, enum peer_phase was, int error, const char *reason);
