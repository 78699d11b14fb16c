/* SPDX-License-Identifier: MIT */
/* The etcd backend's watches: one streaming connection per watch, resumed where it stopped after a failure. */

/*
 * One streaming POST /v3/watch connection per watch, with a body of one
 * create_request; the response is chunked, one JSON object per line, each
 * {"result":{...}}.  Not shared: etcd 3.4's gateway sends nothing on a stream
 * until the request body has ended (measured: an open chunked body gets no
 * answer, not even headers, over HTTP/1.1), so watches cannot be added to or
 * cancelled on a running stream; a cancel closes the watch's connection.
 *
 * A watch is started in its turn in the unary FIFO (etcd-request.c), so a
 * watch from revision 0 ("from now") starts at the last known revision + 1
 * once every earlier call completed: a put made after the watch call is
 * always seen, and a put completed before it never.  When a stream ends or
 * fails without a cancel from our side, it is reopened (next endpoint, after
 * STORE_ETCD_WATCH_RETRY_MSEC) from the revision after the last delivered
 * event, so nothing is missed or repeated.  A start revision below etcd's
 * compaction ends the watch with -ESTALE.
 *
 * A stream on a member that stopped (SIGSTOP, a hung disk) does not end: it
 * just stays silent, and so would the watch, for as long as the member is
 * stopped.  Streams therefore follow the endpoint the unary calls and lease
 * keepalives use, and move with it when one of those finds it stuck
 * (etcd_watch_move()): a keepalive every TTL/3 probes it.
 */

#include <stdlib.h>
#include <string.h>

#include "etcd-internal.h"
#include "macro.h"

static void watch_connect(struct etcd_watch *w);

static void watch_unlink(struct etcd_watch *w) {
    if (!w->linked)
        return;
    LIST_REMOVE(watches, &w->s->watches, w);
    w->linked = false;
}

static void watch_stop_stream(struct etcd_watch *w) {
    etcd_curl_remove(w->s, &w->easy);
    etcd_buf_done(&w->buf);
    (void)uv_timer_stop(&w->retry);
}

static void on_watch_timer_closed(uv_handle_t *h) {
    struct etcd_watch *w = h->data;
    struct store_etcd *s = w->s;
    free(w);
    store_etcd_handle_closed(s);
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

/* Ends the watch with error (its last callback). */
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
    store_etcd_dispatch(s);
}

static void watch_connect(struct etcd_watch *w) {
    struct store_etcd *s = w->s;
    _cleanup_free_ char *body = etcd_json_watch_body(w->create_key, w->create_end, w->next_revision);

    w->endpoint = s->endpoint;
    if (!etcd_auth_ready(s) && body && etcd_auth_start(s) >= 0) {
        w->auth_wait = true; /* etcd_watch_auth_done() connects */
        return;
    }
    w->token_gen = s->token_gen;
    if (body && etcd_auth_ready(s))
        w->easy = etcd_curl_post(s, s->endpoints[w->endpoint], "/v3/watch", body, &w->buf, 0);
    if (!w->easy)
        /* Out of memory: try again later rather than end the watch. */
        (void)uv_timer_start(&w->retry, on_watch_retry, STORE_ETCD_WATCH_RETRY_MSEC, 0);
}

/* The stream ended or failed: reconnect from where it stopped, on the next
 * endpoint.  The first time at once, then after a pause, so that a store
 * with every member down is not hammered. */
static void watch_retry_later(struct etcd_watch *w) {
    struct store_etcd *s = w->s;
    unsigned e = w->endpoint;
    watch_stop_stream(w);
    etcd_endpoint_failed(s, e);
    (void)uv_timer_start(&w->retry, on_watch_retry, w->failures++ == 0 ? 0 : STORE_ETCD_WATCH_RETRY_MSEC, 0);
}

void etcd_watch_move(struct store_etcd *s, unsigned from) {
    struct etcd_watch *w;

    LIST_FOREACH (watches, w, &s->watches)
        if (w->easy && w->endpoint == from) {
            /* Complete lines still buffered are dropped with the stream: the
             * new one starts after the last event delivered, and has them. */
            watch_stop_stream(w);
            (void)uv_timer_start(&w->retry, on_watch_retry, 0, 0);
        }
}

/* Handles one line of a watch stream.  Returns true if a callback ran. */
static bool watch_line(struct etcd_watch *w, const char *line, size_t len) {
    struct store_etcd *s = w->s;
    json_t *j = json_loadb(line, len, 0, NULL);
    json_t *res = json_object_get(j, "result");
    store_event *ev;
    size_t n;

    if (!res) {
        /* {"error":{...}} or garbage: reconnect from where we are. */
        json_decref(j);
        watch_retry_later(w);
        return false;
    }
    w->failures = 0; /* the member answers */
    int64_t rev = etcd_json_revision(res);
    if (rev > s->revision)
        s->revision = rev;
    etcd_members_seen(s, res); /* before the events: a lease end in a new term is not trusted */
    if (json_is_true(json_object_get(res, "canceled"))) {
        int64_t compact = etcd_json_int64(res, "compact_revision");
        if (s->user && etcd_auth_token_refused(0, json_string_value(json_object_get(res, "cancel_reason")))) {
            /* Opened with a token that had ended: again, with a new one (at
             * once the first times; a member that refuses fresh tokens too
             * is asked again later, not in a loop). */
            json_decref(j);
            watch_stop_stream(w);
            etcd_auth_refused(s, w->token_gen);
            if (++w->auth_refusals <= 2)
                watch_connect(w);
            else
                (void)uv_timer_start(&w->retry, on_watch_retry, STORE_ETCD_AUTH_RETRY_MSEC, 0);
            return false;
        }
        json_decref(j);
        watch_end(w, compact > 0 ? -ESTALE : -EIO);
        return true;
    }
    int r = etcd_json_events(res, &ev, &n);
    json_decref(j);
    if (r < 0) {
        watch_end(w, -ENOMEM);
        return true;
    }
    if (n == 0)
        return false; /* created, or a progress notification */
    for (size_t i = 0; i < n; i++)
        if (ev[i].kv.mod_revision > s->revision)
            s->revision = ev[i].kv.mod_revision;
    w->next_revision = ev[n - 1].kv.mod_revision + 1;
    w->auth_refusals = 0;
    watch_call(w, 0, ev, n);
    etcd_json_events_free(ev, n);
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

void etcd_watch_deliver(struct store_etcd *s) {
    /* Watch lines, one callback at a time, from the head each time: a
     * callback may cancel any watch or free the store. */
    bool again = true;
    while (again && !s->freeing) {
        struct etcd_watch *w;
        again = false;
        LIST_FOREACH (watches, w, &s->watches) {
            if (w->ended || w->cancelled)
                continue;
            if (watch_deliver_one(w)) {
                again = true;
                break;
            }
            if (!w->easy && w->started && !w->auth_wait && !uv_is_active((uv_handle_t *)&w->retry))
                /* The stream ended and every complete line is handled: resume. */
                watch_retry_later(w);
        }
    }
}

bool etcd_watch_transfer_done(struct store_etcd *s, CURL *e) {
    struct etcd_watch *w;

    LIST_FOREACH (watches, w, &s->watches)
        if (w->easy == e) {
            /* Keep the buffer: its complete lines are still delivered, then
             * etcd_watch_deliver() reconnects. */
            etcd_curl_remove(s, &w->easy);
            return true;
        }
    return false;
}

void etcd_watch_auth_done(struct store_etcd *s, int error) {
    struct etcd_watch *w;

    LIST_FOREACH (watches, w, &s->watches) {
        if (!w->auth_wait)
            continue;
        w->auth_wait = false;
        if (w->ended || w->cancelled)
            continue;
        if (error >= 0)
            watch_connect(w);
        else
            /* Refused or unreachable: again later (a caller's retry may come first). */
            (void)uv_timer_start(&w->retry, on_watch_retry, STORE_ETCD_AUTH_RETRY_MSEC, 0);
    }
}

void etcd_watch_start(struct etcd_watch *w) {
    struct store_etcd *s = w->s;
    if (w->start_revision == 0)
        w->next_revision = s->revision > 0 ? s->revision + 1 : 0;
    w->started = true;
    watch_connect(w);
}

int etcd_watch_new(store *st, const char *prefix, size_t prefix_len, int64_t start_revision, store_watch_cb cb,
                   void *userdata, store_watch **ret) {
    struct store_etcd *s = (struct store_etcd *)st;
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
    k = etcd_json_prefix_range(prefix, prefix_len, &w->create_key, &w->create_end);
    if (k < 0) {
        free(w);
        return k;
    }
    k = uv_timer_init(st->loop, &w->retry);
    if (k < 0) {
        free(w->create_key);
        free(w->create_end);
        free(w);
        return k;
    }
    s->n_handles++;
    w->retry.data = w;
    k = etcd_request_new(s, REQ_WATCH_START, NULL, strdup(""), &r);
    if (k < 0) {
        free(w->create_key);
        free(w->create_end);
        uv_close((uv_handle_t *)&w->retry, on_watch_timer_closed);
        return k;
    }
    r->watch = w;
    /* Appended: lines are handled in watch creation order. */
    w->linked = true;
    LIST_APPEND(watches, &s->watches, w);
    *ret = &w->head;
    etcd_request_enqueue(r);
    return 0;
}

void etcd_watch_cancel(store_watch *hw) {
    struct etcd_watch *w = (struct etcd_watch *)hw;

    if (w->cancelled)
        return;
    w->cancelled = true;
    if (!w->started)
        /* Still in the queue: drop its start. */
        etcd_request_drop_watch_start(w->s, w);
    watch_destroy(w);
}

void etcd_watch_end_all(struct store_etcd *s) {
    /* From the head each time: a callback may cancel any watch.  The one
     * whose callback called store_free() gets its -ECANCELED right after
     * that callback returns. */
    bool again = true;
    while (again) {
        struct etcd_watch *w;
        again = false;
        LIST_FOREACH (watches, w, &s->watches)
            if (!w->ended && !w->cancelled && w != s->delivering) {
                watch_end(w, -ECANCELED);
                again = true;
                break;
            }
    }
}

void etcd_watch_destroy_all(struct store_etcd *s) {
    /* Cancelled watches are already unlinked, their timers closing. */
    while (s->watches.first)
        watch_destroy(s->watches.first);
}
