/* SPDX-License-Identifier: MIT */
/* What the files of the etcd store backend share: its structs, and the functions one file calls in another. */
#pragma once

/*
 * The backend by role (store-etcd.c has the overview):
 *   etcd-curl.c     libcurl's multi handle driven by the store's libuv loop
 *   etcd-request.c  unary calls: the FIFO, endpoints, retries and failover
 *   etcd-watch.c    watch streams: one connection per watch, resumed after a failure
 *   etcd-json.c     the JSON gateway's bodies and answers (keys and values in base64)
 *   etcd-members.c  the raft term, and whether a lease that ended can be trusted
 *   etcd-auth.c     user/password authentication: the token, and a new one when it ends
 *   store-etcd.c    the store_ops table, the dispatch step, opening and closing
 */

#include "curl-dl.h"
#include <jansson.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <uv.h>

#include "list.h"
#include "store.h"

/* How long one attempt may take before the member is given up for the next
 * one.  A keepalive's is short: a node fences itself TTL - 250 ms after its
 * last renewal was sent (1 s TTL: 750 ms), so a renewal stuck on a stopped
 * member must move on, and succeed, well before that (docs/design.md,
 * "Self-fencing"). */
#define STORE_ETCD_REQUEST_TIMEOUT_MSEC 1000L  /* a write: not retried, may have been applied */
#define STORE_ETCD_READ_TIMEOUT_MSEC 500L      /* a call that changes nothing: retried elsewhere */
#define STORE_ETCD_KEEPALIVE_TIMEOUT_MSEC 200L /* a lease renewal: retried elsewhere */
#define STORE_ETCD_CONNECT_TIMEOUT_MSEC 500L
#define STORE_ETCD_WATCH_RETRY_MSEC 200
#define STORE_ETCD_AUTH_RETRY_MSEC 1000 /* a watch after its authentication failed, or refused again */
/* etcd checks a password with bcrypt (cost 10: about 70 ms of a core when
 * idle, several times that on a loaded machine). */
#define STORE_ETCD_AUTH_TIMEOUT_MSEC 3000L
/* After a raft term change: how often a member that has not answered in the
 * new term is asked again, and how long after the last one did a lease end
 * is trusted again (etcd-members.c; a stale leader revokes within its
 * lessor's 500 ms tick of running again). */
#define STORE_ETCD_MEMBER_RETRY_MSEC 500
#define STORE_ETCD_SETTLE_MSEC 2000

typedef enum etcd_request_kind {
    REQ_REVISION, /* the initial read of the store revision; no callback */
    REQ_RANGE,
    REQ_TXN,
    REQ_LEASE_GRANT,
    REQ_LEASE_REVOKE,
    REQ_LEASE_KEEPALIVE,
    REQ_WATCH_START, /* not sent: starts a watch's stream in its turn */
} etcd_request_kind;

/* A response body as it arrives, NUL-terminated. */
struct etcd_buf {
    char *data;
    size_t len, cap;
};

struct store_etcd;

struct etcd_request {
    struct store_etcd *s;
    LIST_FIELDS(struct etcd_request, requests); /* on s->queue, or on s->side */
    etcd_request_kind kind;
    const char *path;
    char *body;
    bool writes; /* not retried after a timeout */
    store_cb cb;
    store_lease_cb lease_cb;
    void *userdata;
    int64_t lease;
    struct etcd_watch *watch; /* REQ_WATCH_START */
    CURL *easy;
    struct etcd_buf resp;
    unsigned attempts;
    unsigned endpoint;  /* where the attempt in flight went */
    bool side;          /* a keepalive or a renewal txn: sent at once beside the ordered requests, on s->side */
    bool renewal;       /* a renewal txn: a keepalive's timeout */
    bool parked;        /* waits for a token (etcd-auth.c): no transfer */
    bool auth_retried;  /* was refused for its token once, and sent again */
    unsigned token_gen; /* the token its attempt in flight carries */
};

struct etcd_watch {
    store_watch head; /* first: store_watch_cancel() finds the store */
    struct store_etcd *s;
    LIST_FIELDS(struct etcd_watch, watches); /* the store's live watches */
    char *create_key, *create_end;           /* base64 */
    int64_t start_revision;                  /* as asked; 0 = from the revision after the last known one */
    int64_t next_revision;                   /* where a (re)connect starts */
    store_watch_cb cb;
    void *userdata;
    CURL *easy;
    struct etcd_buf buf;
    uv_timer_t retry;
    bool started, ended, cancelled, linked;
    unsigned endpoint;      /* where the stream is, or goes next */
    unsigned failures;      /* streams in a row that ended without delivering */
    bool auth_wait;         /* waits for a token (etcd-auth.c) */
    unsigned auth_refusals; /* streams in a row refused for their token */
    unsigned token_gen;     /* the token its stream was opened with */
};

/* A member as etcd-members.c asks it: its status call in flight, the term it last answered in. */
struct etcd_member {
    CURL *easy;
    struct etcd_buf resp;
    int64_t term;
};

/* A socket libcurl wants watched. */
struct etcd_poll {
    uv_poll_t poll;
    struct store_etcd *s;
    curl_socket_t fd;
    LIST_FIELDS(struct etcd_poll, polls);
};

struct store_etcd {
    store head;
    CURLM *multi;
    struct curl_slist *headers;
    char *cacert, *cert, *key; /* TLS (store_etcd_options), or NULL */
    /* etcd-auth.c */
    char *user, *password; /* NULL: no authentication */
    char *token;           /* NULL: none yet, or refused; "": etcd has authentication off */
    unsigned token_gen;    /* counts the tokens received */
    CURL *auth_easy;       /* the authentication in flight */
    struct etcd_buf auth_resp;
    unsigned auth_endpoint, auth_attempts;
    bool auth_logged, auth_off_logged;
    int tls_logged;        /* the last TLS failure logged (a CURLcode); 0 after a success */
    int unanswered_logged; /* why etcd has not answered yet, as last logged */
    bool answered;         /* etcd answered a request once */
    char **endpoints;
    size_t n_endpoints;
    unsigned endpoint; /* the one unary calls use; moves on failure */
    uv_timer_t timer;  /* curl's timeouts */
    uv_timer_t pump;   /* retries sending a request that failed to start, from the loop */
    int64_t revision;
    LIST_HEAD(struct etcd_request) queue; /* unary calls waiting for their turn */
    struct etcd_request *current;         /* in flight */
    LIST_HEAD(struct etcd_request) side;  /* keepalives in flight: never behind other requests */
    LIST_HEAD(struct etcd_watch) watches; /* in creation order */
    LIST_HEAD(struct etcd_poll) polls;
    struct etcd_watch *delivering; /* whose callback is running */
    /* etcd-members.c */
    int64_t term;                /* the highest raft term in any answer */
    int64_t settled_rev;         /* > 0: a lease end after this revision is trusted */
    int64_t grace_term;          /* every member answered in this term: the grace runs or is over */
    int64_t settle_term;         /* the settling read for this term is queued */
    struct etcd_member *members; /* one per endpoint */
    uv_timer_t members_timer;
    unsigned depth;     /* nesting of dispatch and free */
    unsigned n_handles; /* open libuv handles; the last close frees the store */
    bool freeing, released;
};

/* store-etcd.c */
/* Runs the user callbacks of finished transfers and received watch lines,
 * outside of any curl call, then starts the next request.  Every libuv
 * callback of the backend ends with it. */
void store_etcd_dispatch(struct store_etcd *s);
/* A libuv handle of the store closed: the last one frees the store. */
void store_etcd_handle_closed(struct store_etcd *s);

/* etcd-curl.c */
/* Sets up the multi handle and its timer (one libuv handle); 0 or -ENOMEM. */
int etcd_curl_new(struct store_etcd *s);
/* Closes the multi handle, its connections and its libuv handles. */
void etcd_curl_release(struct store_etcd *s);
/* Starts a POST of body (copied) to endpoint + path, its answer into resp.
 * stream: a watch, with no overall timeout.  NULL when out of memory. */
CURL *etcd_curl_post(struct store_etcd *s, const char *endpoint, const char *path, const char *body,
                     struct etcd_buf *resp, long timeout_msec);
/* Ends the transfer *e (accepts NULL) and sets *e to NULL. */
void etcd_curl_remove(struct store_etcd *s, CURL **e);
void etcd_buf_done(struct etcd_buf *b);

/* etcd-request.c */
/* A request of kind for path with body, which it takes over (NULL: -ENOMEM);
 * not queued yet.  0 or -ENOMEM. */
int etcd_request_new(struct store_etcd *s, etcd_request_kind kind, const char *path, char *body,
                     struct etcd_request **ret);
/* Puts r at the end of the FIFO and starts it if it is first; no callback runs. */
void etcd_request_enqueue(struct etcd_request *r);
/* Sends r at once, beside the FIFO (a keepalive).  0, or -ENOMEM with r freed. */
int etcd_request_send_side(struct etcd_request *r);
/* Starts the next queued request if none is in flight.  may_call_back: false
 * inside a store call, where no callback may run. */
void etcd_request_pump(struct store_etcd *s, bool may_call_back);
/* The transfer e ended with cc: if it is a request's, handles it (callback,
 * or a retry) and returns true. */
bool etcd_request_transfer_done(struct store_etcd *s, CURL *e, CURLcode cc);
/* Drops the queued start of w, a watch cancelled before its turn. */
void etcd_request_drop_watch_start(struct store_etcd *s, const struct etcd_watch *w);
/* Every request in flight or queued gets -ECANCELED (store_free()). */
void etcd_request_cancel_all(struct store_etcd *s);
void etcd_endpoint_failed(struct store_etcd *s, unsigned e);

/* etcd-watch.c */
int etcd_watch_new(store *st, const char *prefix, size_t prefix_len, int64_t start_revision, store_watch_cb cb,
                   void *userdata, store_watch **ret);
void etcd_watch_cancel(store_watch *hw);
/* Its turn in the FIFO came: opens its stream. */
void etcd_watch_start(struct etcd_watch *w);
/* The transfer e ended: if it is a watch's stream, returns true. */
bool etcd_watch_transfer_done(struct store_etcd *s, CURL *e);
/* Hands the received lines to the watches' callbacks; resumes the streams that ended. */
void etcd_watch_deliver(struct store_etcd *s);
/* Ends every watch with -ECANCELED, except the one whose callback runs (store_free()). */
void etcd_watch_end_all(struct store_etcd *s);
void etcd_watch_move(struct store_etcd *s, unsigned from);
/* Frees every watch left (its retry timer closes first). */
void etcd_watch_destroy_all(struct store_etcd *s);

/* etcd-members.c */
int etcd_members_new(struct store_etcd *s);
/* Ends the status calls and closes the timer (one libuv handle). */
void etcd_members_release(struct store_etcd *s);
/* An answer (unary, keepalive result or watch line) came: its header's raft term. */
void etcd_members_seen(struct store_etcd *s, const json_t *response);
/* Whether a lease whose keys were deleted at revision ended by the rules (see the file). */
bool etcd_members_trusted(const struct store_etcd *s, int64_t revision);
/* The transfer e ended: if it is a status call, returns true. */
bool etcd_members_transfer_done(struct store_etcd *s, CURL *e, CURLcode cc);

/* etcd-request.c, the transfers of the other files */
/* A transfer to endpoint ended with cc (not CURLE_OK): logs the reason once,
 * moves on from an endpoint at fault.  -EAGAIN: worth trying on the next
 * endpoint; else the errno for the caller. */
int etcd_request_failed(struct store_etcd *s, unsigned endpoint, CURLcode cc);
/* The authentication the parked requests waited for ended: 0 sends them, an error ends them with it. */
void etcd_request_auth_done(struct store_etcd *s, int error);

/* etcd-watch.c */
/* The authentication ended: 0 opens the streams that waited for it, an error retries them later. */
void etcd_watch_auth_done(struct store_etcd *s, int error);

/* etcd-auth.c */
/* Whether a call to path carries the token (a store with a user). */
bool etcd_auth_wanted(const struct store_etcd *s, const char *path);
/* Whether there is a token to send now (or none is needed). */
bool etcd_auth_ready(const struct store_etcd *s);
/* Starts an authentication unless one is in flight; 0 or -ENOMEM.  Its end
 * calls etcd_request_auth_done() and etcd_watch_auth_done(). */
int etcd_auth_start(struct store_etcd *s);
/* A call that carried token number token_gen was refused for it: unless a
 * newer token came meanwhile, it is dropped (the next call authenticates). */
void etcd_auth_refused(struct store_etcd *s, unsigned token_gen);
/* Whether an error (gRPC code and message, or a watch's cancel reason) says the token was refused. */
bool etcd_auth_token_refused(int64_t code, const char *message);
/* The transfer e ended: if it is the authentication, returns true. */
bool etcd_auth_transfer_done(struct store_etcd *s, CURL *e, CURLcode cc);
void etcd_auth_release(struct store_etcd *s);
void etcd_auth_free(struct store_etcd *s);

/* etcd-json.c */
/* An int64 field, as a decimal string (proto3 JSON) or a number; 0 if absent or invalid. */
int64_t etcd_json_int64(const json_t *o, const char *key);
/* The errno for the gRPC status in an error answer ({"code": N, ...}). */
int etcd_json_errno(const json_t *status);
/* The revision in a response's header, 0 if none. */
int64_t etcd_json_revision(const json_t *response);
/* Request bodies, NUL-terminated JSON; NULL when out of memory. */
char *etcd_json_revision_body(void);
char *etcd_json_range_body(const char *key, size_t key_len, bool prefix);
char *etcd_json_txn_body(const store_txn *txn);
char *etcd_json_id_body(const char *field, int64_t id);
char *etcd_json_watch_body(const char *key64, const char *end64, int64_t start_revision);
/* The base64 key and range_end of a prefix, as a watch's create_request wants them.  0 or -ENOMEM. */
int etcd_json_prefix_range(const char *prefix, size_t prefix_len, char **ret_key64, char **ret_end64);
/*
 * Decodes a RangeResponse or a TxnResponse into res (revision, whether the
 * compares held, deleted keys, and the keys of its range ops); res->kvs is
 * *ret_kvs, to free with etcd_json_kvs_free(*ret_kvs, res->n_kvs).  0, or a
 * negative errno with nothing allocated.
 */
int etcd_json_result(const json_t *response, store_result *res, store_kv **ret_kvs);
void etcd_json_kvs_free(store_kv *kvs, size_t n);
/* The events of a WatchResponse: 0 and n >= 0 of them (free with
 * etcd_json_events_free()), or a negative errno with nothing allocated. */
int etcd_json_events(const json_t *response, store_event **ret, size_t *ret_n);
void etcd_json_events_free(store_event *ev, size_t n);
