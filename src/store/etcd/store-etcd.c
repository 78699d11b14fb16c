/* SPDX-License-Identifier: MIT */
/* The etcd store backend: the store operations over etcd's v3 JSON gateway, with libcurl driven by the libuv loop. */

/*
 * Transport: one CURLM multi handle per store, driven by the store's loop in
 * the libcurl "multi_socket" style: CURLMOPT_SOCKETFUNCTION maps each socket
 * curl wants watched to a uv_poll handle, CURLMOPT_TIMERFUNCTION to one
 * uv_timer; their callbacks call curl_multi_socket_action() and then
 * dispatch.  Nothing blocks the loop.  Curl callbacks (socket, timer, write)
 * only record data; user callbacks run from the dispatch step after
 * curl_multi_socket_action() returned, where removing easy handles is allowed.
 *
 * Unary calls (range, txn, lease grant/revoke/keepalive) go through one FIFO
 * with one request in flight at a time, so they reuse one kept-alive
 * connection and are executed by etcd in the order they were made (a get
 * after a put sees the put, as with the local backends).  Each has a short
 * timeout (STORE_ETCD_REQUEST_TIMEOUT_MSEC); a failure to connect, an
 * "unavailable" answer (no leader) or, for calls that change nothing, a
 * timeout, moves to the next endpoint and retries, up to
 * 2 x n_endpoints attempts.  A write that timed out is not retried (etcd may
 * have applied it): its callback gets -ETIMEDOUT.
 *
 * The first request of a store reads the store revision, so that
 * store_revision() is 0 only until it answered.
 *
 * Watches: one streaming POST /v3/watch connection per watch, with a body of
 * one create_request; the response is chunked, one JSON object per line, each
 * {"result":{...}}.  Not shared: etcd 3.4's gateway sends nothing on a stream
 * until the request body has ended (measured: an open chunked body gets no
 * answer, not even headers, over HTTP/1.1), so watches cannot be added to or
 * cancelled on a running stream; a cancel closes the watch's connection.  A watch is started in its
 * turn in the unary FIFO, so a watch from revision 0 ("from now") starts at
 * the last known revision + 1 once every earlier call completed: a put made
 * after the watch call is always seen, and a put completed before it never.
 * When a stream ends or fails without a cancel from our side, it is reopened
 * (next endpoint, after STORE_ETCD_WATCH_RETRY_MSEC) from the revision after
 * the last delivered event, so nothing is missed or repeated.  A start
 * revision below etcd's compaction ends the watch with -ESTALE.
 *
 * Leases: grant, revoke, and one keepalive request per store_lease_keepalive()
 * call (POST /v3/lease/keepalive with a one-message body, answered as one
 * {"result":...} line; an answer without TTL means the lease is gone:
 * -ENOENT).  One long-lived keepalive stream is not possible for the same
 * reason as shared watches.
 *
 * Closing: store_free() runs every pending callback (-ECANCELED) and ends
 * every watch before it returns; if it was called from one of our callbacks,
 * the curl and libuv teardown waits until that callback returned.  The memory
 * is released by the last handle's close callback.
 *
 * Differences from the local backends, all allowed by store.h: calls in
 * flight when store_free() runs get -ECANCELED (the write may or may not have
 * been applied); a write's callback and its watch events may come in either
 * order; watches on different streams get the same revision's events in no
 * particular order relative to each other.
 */

#include "curl-dl.h"
#include <errno.h>
#include <inttypes.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "base64.h"
#include "macro.h"
#include "store.h"

#define STORE_ETCD_REQUEST_TIMEOUT_MSEC 1000L
#define STORE_ETCD_CONNECT_TIMEOUT_MSEC 1000L
#define STORE_ETCD_WATCH_RETRY_MSEC 200

typedef enum etcd_request_kind {
    REQ_REVISION, /* the initial read of the store revision; no callback */
    REQ_RANGE,
    REQ_TXN,
    REQ_LEASE_GRANT,
    REQ_LEASE_REVOKE,
    REQ_LEASE_KEEPALIVE,
    REQ_WATCH_START, /* not sent: starts a watch's stream in its turn */
} etcd_request_kind;

struct etcd_buf {
    char *data;
    size_t len, cap;
};

struct store_etcd;

struct etcd_request {
    struct store_etcd *s;
    struct etcd_request *next; /* FIFO */
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
    bool side; /* a keepalive: sent at once beside the ordered requests, on the s->side list */
};

struct etcd_watch {
    store_watch head; /* first: store_watch_cancel() finds the store */
    struct store_etcd *s;
    struct etcd_watch *prev, *next; /* the store's live watches */
    char *create_key, *create_end;  /* base64 */
    int64_t start_revision;         /* as asked; 0 = from the revision after the last known one */
    int64_t next_revision;          /* where a (re)connect starts */
    store_watch_cb cb;
    void *userdata;
    CURL *easy;
    struct etcd_buf buf;
    uv_timer_t retry;
    bool started, ended, cancelled, linked;
    unsigned endpoint;
};

struct etcd_poll {
    uv_poll_t poll;
    struct store_etcd *s;
    curl_socket_t fd;
    struct etcd_poll *prev, *next;
};

struct store_etcd {
    store head;
    CURLM *multi;
    struct curl_slist *headers;
    char **endpoints;
    size_t n_endpoints;
    unsigned endpoint; /* the one unary calls use; moves on failure */
    uv_timer_t timer;  /* curl's timeouts */
    uv_timer_t pump;   /* retries sending a request that failed to start, from the loop */
    int64_t revision;
    struct etcd_request *queue_head, *queue_tail;
    struct etcd_request *current; /* in flight */
    struct etcd_request *side;    /* keepalives in flight, linked by next: never behind other requests */
    struct etcd_watch *watches;
    struct etcd_poll *polls;
    struct etcd_watch *delivering; /* whose callback is running */
    unsigned depth;                /* nesting of dispatch and free */
    unsigned n_handles;            /* open libuv handles; the last close frees the store */
    bool freeing, released;
};

static void etcd_dispatch(struct store_etcd *s);
static void watch_connect(struct etcd_watch *w);

/* ---- small helpers ---- */

static size_t on_curl_write(char *ptr, size_t size, size_t nmemb, void *userdata) {
    struct etcd_buf *b = userdata;
    size_t n = size * nmemb;
    if (b->len + n + 1 > b->cap) {
        size_t cap = MAX(b->cap * 2, b->len + n + 1);
        char *d = realloc(b->data, cap);
        if (!d)
            return 0; /* curl fails the transfer with CURLE_WRITE_ERROR */
        b->data = d;
        b->cap = cap;
    }
    memcpy(b->data + b->len, ptr, n);
    b->len += n;
    b->data[b->len] = 0;
    return n;
}

static void buf_done(struct etcd_buf *b) {
    free(b->data);
    *b = (struct etcd_buf){0};
}

static int64_t json_int64(const json_t *o, const char *key) {
    json_t *v = json_object_get(o, key);
    if (json_is_string(v))
        return (int64_t)strtoll(json_string_value(v), NULL, 10);
    if (json_is_integer(v))
        return (int64_t)json_integer_value(v);
    return 0;
}

static json_t *b64_json(const char *p, size_t n) {
    char *e = malloc(BASE64_ENCODED_SIZE(n));
    if (!e)
        return NULL;
    size_t len = base64_encode(p, n, e);
    json_t *j = json_stringn_nocheck(e, len);
    free(e);
    return j;
}

static json_t *int_json(int64_t v) {
    char b[32];
    snprintf(b, sizeof(b), "%" PRId64, v);
    return json_string(b);
}

/* Sets key (and range_end for a prefix) in o as etcd wants them. */
static int set_range(json_t *o, const char *key, size_t key_len, bool prefix) {
    if (!prefix)
        return json_object_set_new(o, "key", b64_json(key, key_len));
    /* "" means every key: key "\0", range_end "\0".  Otherwise the prefix with
     * its last byte below 0xff incremented, the 0xff bytes after it dropped. */
    size_t n = key_len;
    while (n > 0 && (unsigned char)key[n - 1] == 0xff)
        n--;
    if (key_len == 0 || n == 0) {
        if (json_object_set_new(o, "key", b64_json(key_len ? key : "", key_len ? key_len : 1)) < 0)
            return -1;
        return json_object_set_new(o, "range_end", b64_json("", 1));
    }
    char end[STORE_KEY_MAX];
    memcpy(end, key, n);
    end[n - 1] = (char)((unsigned char)end[n - 1] + 1);
    if (json_object_set_new(o, "key", b64_json(key, key_len)) < 0)
        return -1;
    return json_object_set_new(o, "range_end", b64_json(end, n));
}

static char *dump_free(json_t *o) {
    char *s = o ? json_dumps(o, JSON_COMPACT) : NULL;
    json_decref(o);
    return s;
}

/* Maps a gRPC status code in an error answer to an errno. */
static int grpc_to_errno(int64_t code) {
    switch (code) {
    case 3: /* INVALID_ARGUMENT */
        return -EINVAL;
    case 4: /* DEADLINE_EXCEEDED */
        return -ETIMEDOUT;
    case 5: /* NOT_FOUND: lease */
        return -ENOENT;
    case 8: /* RESOURCE_EXHAUSTED: request too large */
        return -E2BIG;
    case 11: /* OUT_OF_RANGE: compacted */
        return -ESTALE;
    case 14: /* UNAVAILABLE: no leader */
        return -EAGAIN;
    case 7:
    case 16:
        return -EACCES;
    default:
        return -EIO;
    }
}

static void update_revision(struct store_etcd *s, const json_t *result) {
    int64_t rev = json_int64(json_object_get(result, "header"), "revision");
    if (rev > s->revision)
        s->revision = rev;
}

/* Decodes one mvccpb.KeyValue; key and value are fresh, NUL-terminated. */
static int parse_kv(const json_t *j, store_kv *kv) {
    const char *k = json_string_value(json_object_get(j, "key"));
    const char *v = json_string_value(json_object_get(j, "value"));
    int r;

    *kv = (store_kv){0};
    r = base64_decode(k ? k : "", k ? strlen(k) : 0, &kv->key, &kv->key_len);
    if (r < 0)
        return r;
    r = base64_decode(v ? v : "", v ? strlen(v) : 0, &kv->value, &kv->value_len);
    if (r < 0) {
        free(kv->key);
        kv->key = NULL;
        return r;
    }
    kv->create_revision = json_int64(j, "create_revision");
    kv->mod_revision = json_int64(j, "mod_revision");
    kv->version = json_int64(j, "version");
    kv->lease = json_int64(j, "lease");
    return 0;
}

static void kvs_free(store_kv *kvs, size_t n) {
    for (size_t i = 0; i < n; i++) {
        free(kvs[i].key);
        free(kvs[i].value);
    }
    free(kvs);
}

/* Appends the kvs array of a RangeResponse to *kvs. */
static int append_kvs(const json_t *range, store_kv **kvs, size_t *n) {
    const json_t *a = json_object_get(range, "kvs");
    size_t m = json_array_size(a);
    if (m == 0)
        return 0;
    store_kv *k = realloc(*kvs, (*n + m) * sizeof(store_kv));
    if (!k)
        return -ENOMEM;
    *kvs = k;
    for (size_t i = 0; i < m; i++) {
        int r = parse_kv(json_array_get(a, i), &k[*n]);
        if (r < 0)
            return r;
        (*n)++;
    }
    return 0;
}

/* ---- requests ---- */

static struct etcd_request *request_free(struct etcd_request *r) {
    if (!r)
        return NULL;
    if (r->easy) {
        curl_multi_remove_handle(r->s->multi, r->easy);
        curl_easy_cleanup(r->easy);
    }
    free(r->body);
    buf_done(&r->resp);
    free(r);
    return NULL;
}

static void request_complete(struct etcd_request *r, int error, const store_result *res, int64_t lease, int64_t ttl) {
    switch (r->kind) {
    case REQ_RANGE:
    case REQ_TXN:
        if (r->cb)
            r->cb(&r->s->head, error, error < 0 ? NULL : res, r->userdata);
        break;
    case REQ_LEASE_GRANT:
    case REQ_LEASE_REVOKE:
    case REQ_LEASE_KEEPALIVE:
        if (r->lease_cb)
            r->lease_cb(&r->s->head, error, error < 0 ? 0 : lease, error < 0 ? 0 : ttl, r->userdata);
        break;
    default:
        break;
    }
}

/* Parses a successful answer and runs the callback. */
static void request_answer(struct etcd_request *r, json_t *j) {
    struct store_etcd *s = r->s;
    store_result res = {0};
    store_kv *kvs = NULL;
    size_t n_kvs = 0;
    int64_t lease = 0, ttl = 0;
    int error = 0;

    if (r->kind == REQ_LEASE_KEEPALIVE) {
        json_t *e = json_object_get(j, "error");
        if (e) {
            error = grpc_to_errno(json_int64(e, "code"));
            goto done;
        }
        j = json_object_get(j, "result");
    }
    update_revision(s, j);
    res.revision = json_int64(json_object_get(j, "header"), "revision");

    switch (r->kind) {
    case REQ_REVISION:
        break;
    case REQ_RANGE:
        error = append_kvs(j, &kvs, &n_kvs);
        break;
    case REQ_TXN: {
        json_t *rs = json_object_get(j, "responses");
        res.succeeded = json_is_true(json_object_get(j, "succeeded"));
        for (size_t i = 0; i < json_array_size(rs) && error >= 0; i++) {
            json_t *one = json_array_get(rs, i), *x;
            if ((x = json_object_get(one, "response_range")))
                error = append_kvs(x, &kvs, &n_kvs);
            else if ((x = json_object_get(one, "response_delete_range")))
                res.n_deleted += json_int64(x, "deleted");
        }
        break;
    }
    case REQ_LEASE_GRANT: {
        const char *e = json_string_value(json_object_get(j, "error"));
        lease = json_int64(j, "ID");
        ttl = json_int64(j, "TTL");
        if ((e && *e) || lease <= 0)
            error = -EIO;
        break;
    }
    case REQ_LEASE_REVOKE:
        lease = r->lease;
        break;
    case REQ_LEASE_KEEPALIVE:
        /* No TTL: the lease expired or never existed. */
        lease = r->lease;
        ttl = json_int64(j, "TTL");
        if (!json_object_get(j, "TTL") || ttl <= 0)
            error = -ENOENT;
        break;
    case REQ_WATCH_START:
        break;
    }

done:
    res.kvs = kvs;
    res.n_kvs = n_kvs;
    request_complete(r, error, &res, lease, ttl);
    kvs_free(kvs, n_kvs);
}

static bool retryable(struct etcd_request *r, CURLcode cc, int error) {
    if (r->attempts >= 2 * r->s->n_endpoints)
        return false;
    if (error == -EAGAIN)
        return true; /* etcd answered "unavailable": nothing was applied */
    switch (cc) {
    case CURLE_COULDNT_CONNECT:
    case CURLE_COULDNT_RESOLVE_HOST:
        return true;
    case CURLE_OPERATION_TIMEDOUT:
    case CURLE_GOT_NOTHING:
    case CURLE_RECV_ERROR:
    case CURLE_SEND_ERROR:
        return !r->writes;
    default:
        return false;
    }
}

static int request_send(struct etcd_request *r);

static void side_unlink(struct store_etcd *s, struct etcd_request *r) {
    for (struct etcd_request **p = &s->side; *p; p = &(*p)->next)
        if (*p == r) {
            *p = r->next;
            r->next = NULL;
            return;
        }
}

/* The in-flight request's transfer ended. */
static void request_done(struct store_etcd *s, struct etcd_request *r, CURLcode cc) {
    long status = 0;
    json_t *j = NULL;
    int error = 0;

    if (s->current == r)
        s->current = NULL;
    curl_easy_getinfo(r->easy, CURLINFO_RESPONSE_CODE, &status);
    curl_multi_remove_handle(s->multi, r->easy);
    curl_easy_cleanup(r->easy);
    r->easy = NULL;

    if (cc == CURLE_OK) {
        j = json_loadb(r->resp.data ? r->resp.data : "", r->resp.len, JSON_DECODE_ANY, NULL);
        if (!json_is_object(j))
            error = -EBADMSG;
        else if (status != 200)
            error = grpc_to_errno(json_int64(j, "code"));
    } else if (cc == CURLE_OPERATION_TIMEDOUT)
        error = -ETIMEDOUT;
    else if (cc == CURLE_COULDNT_CONNECT)
        error = -ECONNREFUSED;
    else if (cc == CURLE_OUT_OF_MEMORY || cc == CURLE_WRITE_ERROR)
        error = -ENOMEM;
    else
        error = -EIO;

    if (error < 0 && retryable(r, cc, error)) {
        json_decref(j);
        s->endpoint = (s->endpoint + 1) % (unsigned)s->n_endpoints;
        buf_done(&r->resp);
        if (request_send(r) >= 0) {
            if (!r->side)
                s->current = r;
            return;
        }
    }
    if (r->side)
        side_unlink(s, r);

    if (error < 0) {
        if (error == -EAGAIN)
            error = -EIO;
        request_complete(r, error, NULL, 0, 0);
    } else
        request_answer(r, j);
    json_decref(j);
    request_free(r);
}

static int request_send(struct etcd_request *r) {
    struct store_etcd *s = r->s;
    char url[512];
    CURL *e;

    snprintf(url, sizeof(url), "%s%s", s->endpoints[s->endpoint], r->path);
    e = curl_easy_init();
    if (!e)
        return -ENOMEM;
    if (curl_easy_setopt(e, CURLOPT_URL, url) != CURLE_OK ||
        curl_easy_setopt(e, CURLOPT_POSTFIELDS, r->body) != CURLE_OK ||
        curl_easy_setopt(e, CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t)strlen(r->body)) != CURLE_OK ||
        curl_easy_setopt(e, CURLOPT_HTTPHEADER, s->headers) != CURLE_OK ||
        curl_easy_setopt(e, CURLOPT_WRITEFUNCTION, on_curl_write) != CURLE_OK ||
        curl_easy_setopt(e, CURLOPT_WRITEDATA, &r->resp) != CURLE_OK ||
        curl_easy_setopt(e, CURLOPT_PRIVATE, r) != CURLE_OK || curl_easy_setopt(e, CURLOPT_NOSIGNAL, 1L) != CURLE_OK ||
        curl_easy_setopt(e, CURLOPT_TIMEOUT_MS, STORE_ETCD_REQUEST_TIMEOUT_MSEC) != CURLE_OK ||
        curl_easy_setopt(e, CURLOPT_CONNECTTIMEOUT_MS, STORE_ETCD_CONNECT_TIMEOUT_MSEC) != CURLE_OK ||
        curl_multi_add_handle(s->multi, e) != CURLM_OK) {
        curl_easy_cleanup(e);
        return -ENOMEM;
    }
    r->easy = e;
    r->attempts++;
    return 0;
}

static void on_pump(uv_timer_t *t);

/* Starts the next queued request if none is in flight.  may_call_back: false
 * inside a store call, where no callback may run; a request that cannot be
 * started then waits for the pump timer. */
static void queue_pump(struct store_etcd *s, bool may_call_back) {
    while (!s->current && s->queue_head && !s->freeing) {
        struct etcd_request *r = s->queue_head;
        s->queue_head = r->next;
        if (!s->queue_head)
            s->queue_tail = NULL;
        r->next = NULL;

        if (r->kind == REQ_WATCH_START) {
            struct etcd_watch *w = r->watch;
            w->head.store = &s->head;
            if (w->start_revision == 0)
                w->next_revision = s->revision > 0 ? s->revision + 1 : 0;
            w->started = true;
            watch_connect(w);
            request_free(r);
            continue;
        }
        if (request_send(r) < 0) {
            if (!may_call_back) {
                r->next = s->queue_head;
                s->queue_head = r;
                if (!s->queue_tail)
                    s->queue_tail = r;
                (void)uv_timer_start(&s->pump, on_pump, 0, 0);
                return;
            }
            /* Out of memory: the call returned long ago, report it now. */
            request_complete(r, -ENOMEM, NULL, 0, 0);
            request_free(r);
            continue;
        }
        s->current = r;
    }
}

static int request_queue(struct store_etcd *s, etcd_request_kind kind, const char *path, char *body,
                         struct etcd_request **ret) {
    struct etcd_request *r;

    if (!body)
        return -ENOMEM;
    r = calloc(1, sizeof(*r));
    if (!r) {
        free(body);
        return -ENOMEM;
    }
    r->s = s;
    r->kind = kind;
    r->path = path;
    r->body = body;
    if (s->queue_tail)
        s->queue_tail->next = r;
    else
        s->queue_head = r;
    s->queue_tail = r;
    *ret = r;
    return 0;
}

/* ---- libcurl <-> libuv ---- */

static void on_poll_closed(uv_handle_t *h);
static void on_watch_timer_closed(uv_handle_t *h);

static void on_poll(uv_poll_t *h, int status, int events) {
    struct etcd_poll *p = h->data;
    struct store_etcd *s = p->s;
    int flags = 0, running;

    if (status < 0)
        flags = CURL_CSELECT_ERR;
    else {
        if (events & UV_READABLE)
            flags |= CURL_CSELECT_IN;
        if (events & UV_WRITABLE)
            flags |= CURL_CSELECT_OUT;
    }
    s->depth++;
    (void)curl_multi_socket_action(s->multi, p->fd, flags, &running);
    s->depth--;
    etcd_dispatch(s);
}

static void poll_close(struct store_etcd *s, struct etcd_poll *p) {
    if (p->prev)
        p->prev->next = p->next;
    else
        s->polls = p->next;
    if (p->next)
        p->next->prev = p->prev;
    uv_poll_stop(&p->poll);
    uv_close((uv_handle_t *)&p->poll, on_poll_closed);
}

static int on_curl_socket(CURL *e, curl_socket_t fd, int what, void *userp, void *socketp) {
    struct store_etcd *s = userp;
    struct etcd_poll *p = socketp;

    if (what == CURL_POLL_REMOVE) {
        if (p) {
            curl_multi_assign(s->multi, fd, NULL);
            poll_close(s, p);
        }
        return 0;
    }
    if (!p) {
        p = calloc(1, sizeof(*p));
        if (!p)
            return -1;
        if (uv_poll_init_socket(s->head.loop, &p->poll, fd) < 0) {
            free(p);
            return -1;
        }
        s->n_handles++;
        p->poll.data = p;
        p->s = s;
        p->fd = fd;
        p->next = s->polls;
        if (s->polls)
            s->polls->prev = p;
        s->polls = p;
        curl_multi_assign(s->multi, fd, p);
    }
    int events = 0;
    if (what & CURL_POLL_IN)
        events |= UV_READABLE;
    if (what & CURL_POLL_OUT)
        events |= UV_WRITABLE;
    return uv_poll_start(&p->poll, events, on_poll) < 0 ? -1 : 0;
}

static void on_pump(uv_timer_t *t) {
    etcd_dispatch(t->data);
}

static void on_timer(uv_timer_t *t) {
    struct store_etcd *s = t->data;
    int running;
    s->depth++;
    (void)curl_multi_socket_action(s->multi, CURL_SOCKET_TIMEOUT, 0, &running);
    s->depth--;
    etcd_dispatch(s);
}

static int on_curl_timer(CURLM *m, long timeout_ms, void *userp) {
    struct store_etcd *s = userp;
    if (timeout_ms < 0)
        return uv_timer_stop(&s->timer) < 0 ? -1 : 0;
    return uv_timer_start(&s->timer, on_timer, (uint64_t)timeout_ms, 0) < 0 ? -1 : 0;
}

/* ---- watches ---- */

static void watch_unlink(struct etcd_watch *w) {
    struct store_etcd *s = w->s;
    if (!w->linked)
        return;
    if (w->prev)
        w->prev->next = w->next;
    else
        s->watches = w->next;
    if (w->next)
        w->next->prev = w->prev;
    w->prev = w->next = NULL;
    w->linked = false;
}

static void watch_stop_stream(struct etcd_watch *w) {
    if (w->easy) {
        curl_multi_remove_handle(w->s->multi, w->easy);
        curl_easy_cleanup(w->easy);
        w->easy = NULL;
    }
    buf_done(&w->buf);
    (void)uv_timer_stop(&w->retry);
}

/* Frees the watch once its retry timer closed. */
static void watch_destroy(struct etcd_watch *w) {
    watch_stop_stream(w);
    watch_unlink(w);
    free(w->create_key);
    free(w->create_end);
    w->create_key = w->create_end = NULL;
    uv_close((uv_handle_t *)&w->retry, on_watch_timer_closed);
}

/* Ends the watch with error (its last callback). */
static void watch_call(struct etcd_watch *w, int error, const store_event *ev, size_t n);

static void watch_end(struct etcd_watch *w, int error) {
    watch_stop_stream(w);
    watch_call(w, error, NULL, 0);
}

static void on_watch_retry(uv_timer_t *t) {
    struct etcd_watch *w = t->data;
    struct store_etcd *s = w->s;
    s->depth++;
    watch_connect(w);
    s->depth--;
    etcd_dispatch(s);
}

static void watch_connect(struct etcd_watch *w) {
    struct store_etcd *s = w->s;
    char url[512];
    json_t *cr = json_object(), *o = json_object();
    char *body = NULL;
    CURL *e = NULL;

    if (!cr || !o)
        goto fail;
    /* create_key/create_end are base64 already. */
    if (json_object_set_new(cr, "key", json_string(w->create_key)) < 0 ||
        (w->create_end && json_object_set_new(cr, "range_end", json_string(w->create_end)) < 0) ||
        (w->next_revision > 0 && json_object_set_new(cr, "start_revision", int_json(w->next_revision)) < 0) ||
        json_object_set(o, "create_request", cr) < 0)
        goto fail;
    body = json_dumps(o, JSON_COMPACT);
    if (!body)
        goto fail;

    snprintf(url, sizeof(url), "%s/v3/watch", s->endpoints[w->endpoint % s->n_endpoints]);
    e = curl_easy_init();
    if (!e || curl_easy_setopt(e, CURLOPT_URL, url) != CURLE_OK ||
        curl_easy_setopt(e, CURLOPT_COPYPOSTFIELDS, body) != CURLE_OK ||
        curl_easy_setopt(e, CURLOPT_HTTPHEADER, s->headers) != CURLE_OK ||
        curl_easy_setopt(e, CURLOPT_WRITEFUNCTION, on_curl_write) != CURLE_OK ||
        curl_easy_setopt(e, CURLOPT_WRITEDATA, &w->buf) != CURLE_OK ||
        curl_easy_setopt(e, CURLOPT_PRIVATE, w) != CURLE_OK || curl_easy_setopt(e, CURLOPT_NOSIGNAL, 1L) != CURLE_OK ||
        curl_easy_setopt(e, CURLOPT_CONNECTTIMEOUT_MS, STORE_ETCD_CONNECT_TIMEOUT_MSEC) != CURLE_OK ||
        curl_easy_setopt(e, CURLOPT_TCP_KEEPALIVE, 1L) != CURLE_OK || curl_multi_add_handle(s->multi, e) != CURLM_OK)
        goto fail;
    w->easy = e;
    free(body);
    json_decref(cr);
    json_decref(o);
    return;

fail:
    /* Out of memory: try again later rather than end the watch. */
    if (e)
        curl_easy_cleanup(e);
    free(body);
    json_decref(cr);
    json_decref(o);
    (void)uv_timer_start(&w->retry, on_watch_retry, STORE_ETCD_WATCH_RETRY_MSEC, 0);
}

static void event_free(store_event *ev, size_t n) {
    for (size_t i = 0; i < n; i++) {
        free(ev[i].kv.key);
        free(ev[i].kv.value);
    }
    free(ev);
}

/* Runs the watch's callback; a store freed from inside it ends the watch
 * right after it returns (store.h). */
static void watch_call(struct etcd_watch *w, int error, const store_event *ev, size_t n) {
    struct store_etcd *s = w->s;
    if (error < 0)
        w->ended = true;
    s->delivering = w;
    w->cb(&w->head, error, ev, n, w->userdata);
    s->delivering = NULL;
    if (s->freeing && !w->ended && !w->cancelled) {
        w->ended = true;
        w->cb(&w->head, -ECANCELED, NULL, 0, w->userdata);
    }
}

static void watch_retry_later(struct etcd_watch *w) {
    watch_stop_stream(w);
    w->endpoint++;
    (void)uv_timer_start(&w->retry, on_watch_retry, STORE_ETCD_WATCH_RETRY_MSEC, 0);
}

/* Handles one line of a watch stream.  Returns true if a callback ran. */
static bool watch_line(struct etcd_watch *w, const char *line, size_t len) {
    struct store_etcd *s = w->s;
    json_t *j = json_loadb(line, len, 0, NULL);
    json_t *res = json_object_get(j, "result");
    store_event *ev = NULL;
    size_t n = 0;

    if (!res) {
        /* {"error":{...}} or garbage: reconnect from where we are. */
        json_decref(j);
        watch_retry_later(w);
        return false;
    }
    update_revision(s, res);
    if (json_is_true(json_object_get(res, "canceled"))) {
        int64_t compact = json_int64(res, "compact_revision");
        json_decref(j);
        watch_end(w, compact > 0 ? -ESTALE : -EIO);
        return true;
    }
    json_t *a = json_object_get(res, "events");
    size_t m = json_array_size(a);
    if (m == 0) {
        /* created, or a progress notification */
        json_decref(j);
        return false;
    }
    ev = calloc(m, sizeof(*ev));
    if (!ev)
        goto nomem;
    for (size_t i = 0; i < m; i++) {
        json_t *x = json_array_get(a, i);
        const char *type = json_string_value(json_object_get(x, "type"));
        ev[i].type = type && streq(type, "DELETE") ? STORE_EVENT_DELETE : STORE_EVENT_PUT;
        if (parse_kv(json_object_get(x, "kv"), &ev[i].kv) < 0)
            goto nomem;
        n++;
        if (ev[i].kv.mod_revision > s->revision)
            s->revision = ev[i].kv.mod_revision;
    }
    json_decref(j);
    w->next_revision = ev[n - 1].kv.mod_revision + 1;
    watch_call(w, 0, ev, n);
    event_free(ev, n);
    return true;

nomem:
    event_free(ev, n);
    json_decref(j);
    watch_end(w, -ENOMEM);
    return true;
}

/* Handles the complete lines a watch received until one runs a callback, so
 * that the caller can re-check the store's state.  Returns true if one ran. */
static bool watch_deliver_one(struct etcd_watch *w) {
    while (w->buf.len > 0 && !w->ended && !w->cancelled) {
        char *nl = memchr(w->buf.data, '\n', w->buf.len);
        if (!nl)
            return false;
        size_t len = (size_t)(nl - w->buf.data);
        /* Take the line out of the buffer first: the callback may cancel the watch. */
        char *line = strndup(w->buf.data, len);
        if (!line)
            return false;
        memmove(w->buf.data, nl + 1, w->buf.len - len - 1);
        w->buf.len -= len + 1;
        bool ran = len > 0 && watch_line(w, line, len);
        free(line);
        if (ran)
            return true;
    }
    return false;
}

/* The stream's transfer ended: deliver what came, then reconnect. */
static void watch_done(struct etcd_watch *w) {
    /* Keep the buffer: its complete lines are still handled by the caller. */
    if (w->easy) {
        curl_multi_remove_handle(w->s->multi, w->easy);
        curl_easy_cleanup(w->easy);
        w->easy = NULL;
    }
}

/* ---- dispatch: user callbacks, outside of any curl call ---- */

static void etcd_release(struct store_etcd *s);

static void etcd_dispatch(struct store_etcd *s) {
    CURLMsg *m;
    int left;

    if (s->released)
        return;
    s->depth++;
    while (!s->freeing && (m = curl_multi_info_read(s->multi, &left))) {
        if (m->msg != CURLMSG_DONE)
            continue;
        CURL *e = m->easy_handle;
        CURLcode cc = m->data.result;
        struct etcd_request *sr = s->side;
        while (sr && sr->easy != e)
            sr = sr->next;
        if (sr)
            request_done(s, sr, cc);
        else if (s->current && s->current->easy == e)
            request_done(s, s->current, cc);
        else
            for (struct etcd_watch *w = s->watches; w; w = w->next)
                if (w->easy == e) {
                    watch_done(w);
                    break;
                }
    }

    /* Watch lines, one callback at a time, from the head each time: a
     * callback may cancel any watch or free the store. */
    bool again = true;
    while (again && !s->freeing) {
        again = false;
        for (struct etcd_watch *w = s->watches; w; w = w->next) {
            if (w->ended || w->cancelled)
                continue;
            if (watch_deliver_one(w)) {
                again = true;
                break;
            }
            if (!w->easy && w->started && !uv_is_active((uv_handle_t *)&w->retry))
                /* The stream ended and every complete line is handled: resume. */
                watch_retry_later(w);
        }
    }

    queue_pump(s, true);
    s->depth--;
    if (s->freeing && s->depth == 0)
        etcd_release(s);
}

/* ---- store_ops ---- */

static struct store_etcd *to_etcd(store *s) {
    return (struct store_etcd *)s;
}

static int etcd_get(store *st, const char *key, size_t key_len, bool prefix, store_cb cb, void *userdata) {
    struct store_etcd *s = to_etcd(st);
    struct etcd_request *r;
    json_t *o;
    int ret;

    if (s->freeing)
        return -ECANCELED;
    o = json_object();
    if (!o || set_range(o, key, key_len, prefix) < 0) {
        json_decref(o);
        return -ENOMEM;
    }
    ret = request_queue(s, REQ_RANGE, "/v3/kv/range", dump_free(o), &r);
    if (ret < 0)
        return ret;
    r->cb = cb;
    r->userdata = userdata;
    queue_pump(s, false);
    return 0;
}

static const char *const cmp_target[] = {"VALUE", "VERSION", "CREATE", "MOD"};
static const char *const cmp_result[] = {"EQUAL", "NOT_EQUAL", "LESS", "GREATER"};

static json_t *compare_json(const store_compare *c) {
    json_t *o = json_object();
    if (!o || json_object_set_new(o, "key", b64_json(c->key, c->key_len)) < 0 ||
        json_object_set_new(o, "target", json_string(cmp_target[c->target])) < 0 ||
        json_object_set_new(o, "result", json_string(cmp_result[c->result])) < 0)
        goto fail;
    int r;
    switch (c->target) {
    case STORE_CMP_VALUE:
        r = json_object_set_new(o, "value", b64_json(c->value ? c->value : "", c->value_len));
        break;
    case STORE_CMP_VERSION:
        r = json_object_set_new(o, "version", int_json(c->number));
        break;
    case STORE_CMP_CREATE:
        r = json_object_set_new(o, "create_revision", int_json(c->number));
        break;
    default:
        r = json_object_set_new(o, "mod_revision", int_json(c->number));
        break;
    }
    if (r < 0)
        goto fail;
    return o;
fail:
    json_decref(o);
    return NULL;
}

static json_t *op_json(const store_op *op) {
    json_t *inner = json_object(), *o = json_object();
    const char *name;
    int r = 0;

    if (!inner || !o)
        goto fail;
    switch (op->type) {
    case STORE_OP_PUT:
        name = "request_put";
        r = json_object_set_new(inner, "key", b64_json(op->key, op->key_len));
        if (r >= 0)
            r = json_object_set_new(inner, "value", b64_json(op->value ? op->value : "", op->value_len));
        if (r >= 0 && op->lease > 0)
            r = json_object_set_new(inner, "lease", int_json(op->lease));
        break;
    case STORE_OP_DELETE:
    case STORE_OP_DELETE_PREFIX:
        name = "request_delete_range";
        r = set_range(inner, op->key, op->key_len, op->type == STORE_OP_DELETE_PREFIX);
        break;
    default:
        name = "request_range";
        r = set_range(inner, op->key, op->key_len, op->type == STORE_OP_GET_PREFIX);
        if (r == 0 && op->keys_only)
            r = json_object_set_new(inner, "keys_only", json_true());
        break;
    }
    if (r < 0 || json_object_set_new(o, name, inner) < 0) {
        inner = NULL;
        goto fail;
    }
    return o;
fail:
    json_decref(inner);
    json_decref(o);
    return NULL;
}

static int ops_json(json_t *txn, const char *name, const store_op *ops, size_t n) {
    json_t *a = json_array();
    if (!a || json_object_set_new(txn, name, a) < 0)
        return -1;
    for (size_t i = 0; i < n; i++)
        if (json_array_append_new(a, op_json(&ops[i])) < 0)
            return -1;
    return 0;
}

static bool ops_write(const store_op *ops, size_t n) {
    for (size_t i = 0; i < n; i++)
        if (ops[i].type != STORE_OP_GET && ops[i].type != STORE_OP_GET_PREFIX)
            return true;
    return false;
}

static int etcd_txn(store *st, const store_txn *txn, store_cb cb, void *userdata) {
    struct store_etcd *s = to_etcd(st);
    struct etcd_request *r;
    json_t *o, *cmps;
    int ret;

    if (s->freeing)
        return -ECANCELED;
    o = json_object();
    cmps = json_array();
    if (!o || !cmps || json_object_set_new(o, "compare", cmps) < 0)
        goto nomem;
    for (size_t i = 0; i < txn->n_compares; i++)
        if (json_array_append_new(cmps, compare_json(&txn->compares[i])) < 0)
            goto nomem;
    if (ops_json(o, "success", txn->success, txn->n_success) < 0 ||
        ops_json(o, "failure", txn->failure, txn->n_failure) < 0)
        goto nomem;
    ret = request_queue(s, REQ_TXN, "/v3/kv/txn", dump_free(o), &r);
    if (ret < 0)
        return ret;
    r->writes = ops_write(txn->success, txn->n_success) || ops_write(txn->failure, txn->n_failure);
    r->cb = cb;
    r->userdata = userdata;
    queue_pump(s, false);
    return 0;
nomem:
    if (!o)
        json_decref(cmps);
    json_decref(o);
    return -ENOMEM;
}

static int lease_call(store *st, etcd_request_kind kind, const char *path, const char *field, int64_t v,
                      store_lease_cb cb, void *userdata) {
    struct store_etcd *s = to_etcd(st);
    struct etcd_request *r;
    json_t *o;
    int ret;

    if (s->freeing)
        return -ECANCELED;
    o = json_object();
    if (!o || json_object_set_new(o, field, int_json(v)) < 0) {
        json_decref(o);
        return -ENOMEM;
    }
    if (kind == REQ_LEASE_KEEPALIVE) {
        /* Renewals never wait behind other requests: a node whose renewal
         * queued behind a burst of writes would fence itself for nothing.
         * Their order does not matter; each goes out at once on its own transfer. */
        r = calloc(1, sizeof(*r));
        char *body = dump_free(o);
        if (!r || !body) {
            free(r);
            free(body);
            return -ENOMEM;
        }
        *r = (struct etcd_request){.s = s, .kind = kind, .path = path, .body = body, .side = true, .lease = v};
        r->lease_cb = cb;
        r->userdata = userdata;
        if (request_send(r) < 0) {
            request_free(r);
            return -ENOMEM;
        }
        r->next = s->side;
        s->side = r;
        return 0;
    }
    ret = request_queue(s, kind, path, dump_free(o), &r);
    if (ret < 0)
        return ret;
    r->writes = true;
    r->lease = kind == REQ_LEASE_GRANT ? 0 : v;
    r->lease_cb = cb;
    r->userdata = userdata;
    queue_pump(s, false);
    return 0;
}

static int etcd_lease_grant(store *st, int64_t ttl, store_lease_cb cb, void *userdata) {
    return lease_call(st, REQ_LEASE_GRANT, "/v3/lease/grant", "TTL", ttl, cb, userdata);
}

static int etcd_lease_keepalive(store *st, int64_t lease, store_lease_cb cb, void *userdata) {
    return lease_call(st, REQ_LEASE_KEEPALIVE, "/v3/lease/keepalive", "ID", lease, cb, userdata);
}

static int etcd_lease_revoke(store *st, int64_t lease, store_lease_cb cb, void *userdata) {
    return lease_call(st, REQ_LEASE_REVOKE, "/v3/lease/revoke", "ID", lease, cb, userdata);
}

static int etcd_watch(store *st, const char *prefix, size_t prefix_len, int64_t start_revision, store_watch_cb cb,
                      void *userdata, store_watch **ret) {
    struct store_etcd *s = to_etcd(st);
    struct etcd_request *r;
    struct etcd_watch *w;
    int k;

    if (s->freeing)
        return -ECANCELED;
    w = calloc(1, sizeof(*w));
    if (!w)
        return -ENOMEM;
    w->s = s;
    w->head.store = st;
    w->cb = cb;
    w->userdata = userdata;
    w->start_revision = w->next_revision = start_revision;
    w->endpoint = s->endpoint;

    /* The same key/range_end as a prefix range. */
    json_t *o = json_object();
    if (!o || set_range(o, prefix, prefix_len, true) < 0) {
        json_decref(o);
        free(w);
        return -ENOMEM;
    }
    w->create_key = strdup(json_string_value(json_object_get(o, "key")));
    w->create_end = strdup(json_string_value(json_object_get(o, "range_end")));
    json_decref(o);
    if (!w->create_key || !w->create_end)
        goto nomem;
    k = uv_timer_init(st->loop, &w->retry);
    if (k < 0)
        goto fail;
    s->n_handles++;
    w->retry.data = w;
    k = request_queue(s, REQ_WATCH_START, NULL, strdup(""), &r);
    if (k < 0) {
        free(w->create_key);
        free(w->create_end);
        uv_close((uv_handle_t *)&w->retry, on_watch_timer_closed);
        return k;
    }
    r->watch = w;
    /* Appended: lines are handled in watch creation order. */
    w->linked = true;
    if (!s->watches)
        s->watches = w;
    else {
        struct etcd_watch *last = s->watches;
        while (last->next)
            last = last->next;
        last->next = w;
        w->prev = last;
    }
    *ret = &w->head;
    queue_pump(s, false);
    return 0;
nomem:
    k = -ENOMEM;
fail:
    free(w->create_key);
    free(w->create_end);
    free(w);
    return k;
}

static void etcd_watch_cancel(store_watch *hw) {
    struct etcd_watch *w = (struct etcd_watch *)hw;
    struct store_etcd *s = w->s;

    if (w->cancelled)
        return;
    w->cancelled = true;
    if (!w->started) {
        /* Still in the queue: drop its start. */
        struct etcd_request **pp = &s->queue_head;
        while (*pp && (*pp)->watch != w)
            pp = &(*pp)->next;
        if (*pp) {
            struct etcd_request *r = *pp;
            *pp = r->next;
            s->queue_tail = NULL;
            for (struct etcd_request *q = s->queue_head; q; q = q->next)
                s->queue_tail = q;
            request_free(r);
        }
    }
    watch_destroy(w);
}

static int64_t etcd_revision(store *st) {
    return to_etcd(st)->revision;
}

static void store_handle_closed(struct store_etcd *s) {
    if (--s->n_handles > 0 || !s->released)
        return;
    curl_slist_free_all(s->headers);
    for (size_t i = 0; i < s->n_endpoints; i++)
        free(s->endpoints[i]);
    free(s->endpoints);
    free(s);
}

static void on_poll_closed(uv_handle_t *h) {
    struct etcd_poll *p = h->data;
    struct store_etcd *s = p->s;
    free(p);
    store_handle_closed(s);
}

static void on_watch_timer_closed(uv_handle_t *h) {
    struct etcd_watch *w = h->data;
    struct store_etcd *s = w->s;
    free(w);
    store_handle_closed(s);
}

static void on_store_timer_closed(uv_handle_t *h) {
    store_handle_closed(h->data);
}

/* Tears down what is left once no callback is running anymore. */
static void etcd_release(struct store_etcd *s) {
    if (s->released)
        return;
    s->released = true;
    while (s->watches)
        watch_destroy(s->watches);
    /* Cancelled watches are already unlinked, their timers closing.  The
     * cleanup closes curl's cached connections through on_curl_socket(). */
    curl_multi_cleanup(s->multi);
    s->multi = NULL;
    while (s->polls)
        poll_close(s, s->polls);
    uv_close((uv_handle_t *)&s->timer, on_store_timer_closed);
    uv_close((uv_handle_t *)&s->pump, on_store_timer_closed);
}

static void etcd_free(store *st) {
    struct store_etcd *s = to_etcd(st);

    if (s->freeing)
        return;
    s->freeing = true;
    s->depth++;

    if (s->current) {
        struct etcd_request *r = TAKE_PTR(s->current);
        request_complete(r, -ECANCELED, NULL, 0, 0);
        request_free(r);
    }
    while (s->side) {
        struct etcd_request *r = s->side;
        s->side = r->next;
        request_complete(r, -ECANCELED, NULL, 0, 0);
        request_free(r);
    }
    while (s->queue_head) {
        struct etcd_request *r = s->queue_head;
        s->queue_head = r->next;
        request_complete(r, -ECANCELED, NULL, 0, 0);
        request_free(r);
    }
    s->queue_tail = NULL;
    /* Every watch still running ends; the one whose callback called us
     * gets its -ECANCELED right after that callback returns. */
    bool again = true;
    while (again) {
        again = false;
        for (struct etcd_watch *w = s->watches; w; w = w->next)
            if (!w->ended && !w->cancelled && w != s->delivering) {
                watch_end(w, -ECANCELED);
                again = true;
                break;
            }
    }
    s->depth--;
    if (s->depth == 0)
        etcd_release(s);
}

static const store_ops store_etcd_ops = {
    .name = "etcd",
    .free = etcd_free,
    .get = etcd_get,
    .txn = etcd_txn,
    .lease_grant = etcd_lease_grant,
    .lease_keepalive = etcd_lease_keepalive,
    .lease_revoke = etcd_lease_revoke,
    .watch = etcd_watch,
    .watch_cancel = etcd_watch_cancel,
    .revision = etcd_revision,
};

int store_etcd_new(uv_loop_t *loop, const char *const *endpoints, size_t n_endpoints, store **ret) {
    struct store_etcd *s;
    struct etcd_request *r;
    int k;

    assert_return(loop, -EINVAL);
    assert_return(endpoints, -EINVAL);
    assert_return(n_endpoints > 0, -EINVAL);
    assert_return(ret, -EINVAL);
    for (size_t i = 0; i < n_endpoints; i++)
        assert_return(endpoints[i] &&
                          (strncmp(endpoints[i], "http://", 7) == 0 || strncmp(endpoints[i], "https://", 8) == 0) &&
                          strlen(endpoints[i]) < 256,
                      -EINVAL);

    k = curl_dl_load();
    if (k < 0)
        return k;
    if (curl_global_init(CURL_GLOBAL_DEFAULT) != CURLE_OK)
        return -EIO;
    s = calloc(1, sizeof(*s));
    if (!s)
        return -ENOMEM;
    s->head.ops = &store_etcd_ops;
    s->head.loop = loop;
    s->endpoints = calloc(n_endpoints, sizeof(char *));
    if (!s->endpoints)
        goto nomem;
    s->n_endpoints = n_endpoints;
    for (size_t i = 0; i < n_endpoints; i++) {
        size_t n = strlen(endpoints[i]);
        while (n > 0 && endpoints[i][n - 1] == '/')
            n--;
        s->endpoints[i] = strndup(endpoints[i], n);
        if (!s->endpoints[i])
            goto nomem;
    }
    s->headers = curl_slist_append(NULL, "Content-Type: application/json");
    if (s->headers) {
        /* No "Expect: 100-continue" wait for large bodies. */
        struct curl_slist *h = curl_slist_append(s->headers, "Expect:");
        if (!h)
            goto nomem;
        s->headers = h;
    }
    s->multi = curl_multi_init();
    if (!s->headers || !s->multi)
        goto nomem;
    if (curl_multi_setopt(s->multi, CURLMOPT_SOCKETFUNCTION, on_curl_socket) != CURLM_OK ||
        curl_multi_setopt(s->multi, CURLMOPT_SOCKETDATA, s) != CURLM_OK ||
        curl_multi_setopt(s->multi, CURLMOPT_TIMERFUNCTION, on_curl_timer) != CURLM_OK ||
        curl_multi_setopt(s->multi, CURLMOPT_TIMERDATA, s) != CURLM_OK)
        goto nomem;
    k = uv_timer_init(loop, &s->timer);
    if (k < 0)
        goto fail_k;
    s->timer.data = s;
    (void)uv_timer_init(loop, &s->pump); /* cannot fail once the first one did not */
    s->pump.data = s;
    s->n_handles = 2;

    /* The first request reads the revision. */
    json_t *o = json_object();
    if (!o || json_object_set_new(o, "key", b64_json("", 1)) < 0 ||
        json_object_set_new(o, "count_only", json_true()) < 0) {
        json_decref(o);
        store_free(&s->head);
        return -ENOMEM;
    }
    k = request_queue(s, REQ_REVISION, "/v3/kv/range", dump_free(o), &r);
    if (k < 0) {
        store_free(&s->head);
        return k;
    }
    queue_pump(s, false);
    *ret = &s->head;
    return 0;

nomem:
    k = -ENOMEM;
fail_k:
    curl_multi_cleanup(s->multi);
    curl_slist_free_all(s->headers);
    if (s->endpoints)
        for (size_t i = 0; i < n_endpoints; i++)
            free(s->endpoints[i]);
    free(s->endpoints);
    free(s);
    return k;
}
