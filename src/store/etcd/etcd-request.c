/* SPDX-License-Identifier: MIT */
/* The etcd backend's unary calls: one FIFO with one request in flight, retries and failover across the endpoints. */

/*
 * Unary calls (range, txn, lease grant/revoke) go through one FIFO with one
 * request in flight at a time, so they reuse one kept-alive connection and
 * are executed by etcd in the order they were made (a get after a put sees
 * the put, as with the local backends).  Each attempt has a short timeout
 * (etcd-internal.h: a write 1 s, a read 500 ms, a keepalive 200 ms, then
 * longer once every endpoint has had that: request_timeout()); a
 * failure to connect, an "unavailable" answer (no leader) or, for calls that
 * change nothing, a timeout, moves to the next endpoint and retries, up to
 * 2 x n_endpoints attempts (a renewal 3 x).  A write that timed out is not retried (etcd may
 * have applied it): its callback gets -ETIMEDOUT.
 *
 * Lease keepalives go out at once on their own transfers (the side list),
 * never behind other requests, with the same retries.  A watch's start takes
 * its turn in the FIFO without being sent (etcd-watch.c).
 *
 * Everything uses one endpoint at a time.  When an attempt finds it dead or
 * stuck (a stopped member still accepts connections, it just never answers),
 * etcd_endpoint_failed() moves everything to the next one at once: the other
 * calls in flight there, and the watches, whose streams would otherwise stay
 * silent.  A keepalive goes out every TTL/3, so a stuck member is found within
 * TTL/3 + 200 ms even when nothing else is asked.
 */

#include <stdlib.h>
#include <string.h>

#include "etcd-internal.h"
#include "log.h"
#include "macro.h"

static struct etcd_request *request_free(struct etcd_request *r) {
    if (!r)
        return NULL;
    etcd_curl_remove(r->s, &r->easy);
    free(r->body);
    etcd_buf_done(&r->resp);
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

static void update_revision(struct store_etcd *s, const json_t *response) {
    int64_t rev = etcd_json_revision(response);
    if (rev > s->revision)
        s->revision = rev;
    etcd_members_seen(s, response);
}

/* Parses a successful answer and runs the callback. */
static void request_answer(struct etcd_request *r, json_t *j) {
    store_result res = {0};
    store_kv *kvs = NULL;
    int64_t lease = 0, ttl = 0;
    int error = 0;

    if (r->kind == REQ_LEASE_KEEPALIVE) {
        json_t *e = json_object_get(j, "error");
        if (e) {
            request_complete(r, etcd_json_errno(e), NULL, 0, 0);
            return;
        }
        j = json_object_get(j, "result");
    }
    update_revision(r->s, j);

    switch (r->kind) {
    case REQ_RANGE:
    case REQ_TXN:
        error = etcd_json_result(j, &res, &kvs);
        break;
    case REQ_LEASE_GRANT: {
        const char *e = json_string_value(json_object_get(j, "error"));
        lease = etcd_json_int64(j, "ID");
        ttl = etcd_json_int64(j, "TTL");
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
        ttl = etcd_json_int64(j, "TTL");
        if (!json_object_get(j, "TTL") || ttl <= 0)
            error = -ENOENT;
        break;
    case REQ_REVISION:
    case REQ_WATCH_START:
        break;
    }

    request_complete(r, error, &res, lease, ttl);
    etcd_json_kvs_free(kvs, res.n_kvs);
}

/* A failure of the TLS handshake (a certificate refused either way, a file
 * that cannot be read): nothing reached etcd. */
static bool tls_failure(CURLcode cc) {
    switch (cc) {
    case CURLE_SSL_CONNECT_ERROR:
    case CURLE_PEER_FAILED_VERIFICATION:
    case CURLE_SSL_CERTPROBLEM:
    case CURLE_SSL_CACERT_BADFILE:
    case CURLE_SSL_CIPHER:
    case CURLE_SSL_ISSUER_ERROR:
    case CURLE_SSL_CRL_BADFILE:
        return true;
    default:
        return false;
    }
}

/* Says once (until a request succeeds again) why etcd could not be asked: a
 * TLS set-up that does not match the members' is a configuration error that
 * the retries alone would hide. */
static void log_tls_failure(struct store_etcd *s, unsigned endpoint, CURLcode cc) {
    if (s->tls_logged == (int)cc)
        return;
    s->tls_logged = (int)cc;
    log_error("etcd at %s: TLS failed: %s (check the endpoint's scheme and --etcd-cacert, --etcd-cert, "
              "--etcd-key)",
              s->endpoints[endpoint], curl_easy_strerror(cc));
}

/* Before etcd ever answered, says once per reason why not: an https endpoint
 * that closes the connection is how an etcd with --client-cert-auth refuses a
 * client without a certificate under TLS 1.3 (a send or receive error, not a
 * handshake failure). */
static void log_unanswered(struct store_etcd *s, unsigned endpoint, CURLcode cc, int error) {
    bool closed = cc == CURLE_SEND_ERROR || cc == CURLE_RECV_ERROR || cc == CURLE_GOT_NOTHING;
    int why = closed ? (int)CURLE_RECV_ERROR : cc != CURLE_OK ? (int)cc : -1000 + error;
    if (s->answered || tls_failure(cc) || s->unanswered_logged == why)
        return;
    s->unanswered_logged = why;
    bool https = strncmp(s->endpoints[endpoint], "https://", 8) == 0;
    log_warning("etcd at %s has not answered yet: %s%s", s->endpoints[endpoint],
                cc != CURLE_OK ? curl_easy_strerror(cc) : strerror(-error),
                closed && https && !s->cert ? " (an etcd that wants client certificates closes the connection of a "
                                              "client without one: --etcd-cert, --etcd-key)"
                                            : "");
}

#define RENEWAL_ROUNDS 3u

/* A lease renewal (a keepalive, or a renewal txn). */
static bool renews(const struct etcd_request *r) {
    return r->kind == REQ_LEASE_KEEPALIVE || r->renewal;
}

static bool retryable(struct etcd_request *r, CURLcode cc, int error) {
    if (r->attempts >= (renews(r) ? RENEWAL_ROUNDS : 2) * r->s->n_endpoints)
        return false;
    if (error == -EAGAIN)
        return true; /* etcd answered "unavailable": nothing was applied */
    if (tls_failure(cc))
        return true; /* the handshake failed: nothing was sent */
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

static long request_timeout(const struct etcd_request *r) {
    /* A renewal tries each endpoint with the short timeout that finds a stuck member, then each
     * again with twice that, then four times: members that are alive but slow to answer (a
     * machine short of CPU, a disk busy with a compile) still renew the lease, where 200 ms
     * each time fenced the node for nothing. */
    if (renews(r))
        return STORE_ETCD_KEEPALIVE_TIMEOUT_MSEC << MIN(r->attempts / r->s->n_endpoints, RENEWAL_ROUNDS - 1);
    return r->writes ? STORE_ETCD_REQUEST_TIMEOUT_MSEC : STORE_ETCD_READ_TIMEOUT_MSEC;
}

static int request_send(struct etcd_request *r) {
    struct store_etcd *s = r->s;
    r->endpoint = s->endpoint;
    r->parked = etcd_auth_wanted(s, r->path) && !etcd_auth_ready(s);
    if (r->parked)
        /* Sent by etcd_request_auth_done(). */
        return etcd_auth_start(s) < 0 ? (r->parked = false, -ENOMEM) : 0;
    r->token_gen = s->token_gen;
    r->easy = etcd_curl_post(s, s->endpoints[s->endpoint], r->path, r->body, &r->resp, request_timeout(r));
    if (!r->easy)
        return -ENOMEM;
    r->attempts++;
    return 0;
}

/* Whether a failed attempt says its endpoint is dead, stuck or cut off (as
 * opposed to an answer about the call itself). */
static bool endpoint_fault(CURLcode cc, int error) {
    return error == -EAGAIN || tls_failure(cc) || cc == CURLE_COULDNT_CONNECT || cc == CURLE_OPERATION_TIMEDOUT ||
           cc == CURLE_GOT_NOTHING || cc == CURLE_RECV_ERROR || cc == CURLE_SEND_ERROR;
}

/* The request's transfer ended. */
static void request_done(struct store_etcd *s, struct etcd_request *r, CURLcode cc) {
    long status = 0;
    json_t *j = NULL;
    int error = 0;

    if (s->current == r)
        s->current = NULL;
    curl_easy_getinfo(r->easy, CURLINFO_RESPONSE_CODE, &status);
    etcd_curl_remove(s, &r->easy);

    if (tls_failure(cc))
        log_tls_failure(s, r->endpoint, cc);
    else if (cc == CURLE_OK)
        s->tls_logged = 0;
    if (cc == CURLE_OK) {
        j = json_loadb(r->resp.data ? r->resp.data : "", r->resp.len, JSON_DECODE_ANY, NULL);
        if (!json_is_object(j))
            error = -EBADMSG;
        else if (status != 200)
            error = etcd_json_errno(j);
    } else if (cc == CURLE_OPERATION_TIMEDOUT)
        error = -ETIMEDOUT;
    else if (cc == CURLE_COULDNT_CONNECT)
        error = -ECONNREFUSED;
    else if (cc == CURLE_OUT_OF_MEMORY || cc == CURLE_WRITE_ERROR)
        error = -ENOMEM;
    else
        error = -EIO;

    if (error < 0 && cc == CURLE_OK && !r->auth_retried && s->user &&
        etcd_auth_token_refused(etcd_json_int64(j, "code"), json_string_value(json_object_get(j, "error")))) {
        /* The token ended (or etcd restarted): nothing was applied; once
         * more, with a new one. */
        r->auth_retried = true;
        json_decref(j);
        etcd_buf_done(&r->resp);
        etcd_auth_refused(s, r->token_gen);
        if (request_send(r) >= 0) {
            if (!r->side)
                s->current = r;
            return;
        }
        j = NULL;
    }
    if (error < 0)
        log_unanswered(s, r->endpoint, cc, error);
    else
        s->answered = true;
    if (error < 0 && endpoint_fault(cc, error))
        etcd_endpoint_failed(s, r->endpoint);
    if (error < 0 && retryable(r, cc, error)) {
        json_decref(j);
        etcd_buf_done(&r->resp);
        if (request_send(r) >= 0) {
            if (!r->side)
                s->current = r;
            return;
        }
    }
    if (r->side)
        LIST_REMOVE(requests, &s->side, r);

    if (error < 0) {
        if (error == -EAGAIN)
            error = -EIO;
        request_complete(r, error, NULL, 0, 0);
    } else
        request_answer(r, j);
    json_decref(j);
    request_free(r);
}

bool etcd_request_transfer_done(struct store_etcd *s, CURL *e, CURLcode cc) {
    struct etcd_request *r;

    LIST_FOREACH (requests, r, &s->side)
        if (r->easy == e) {
            request_done(s, r, cc);
            return true;
        }
    if (s->current && s->current->easy == e) {
        request_done(s, s->current, cc);
        return true;
    }
    return false;
}

int etcd_request_failed(struct store_etcd *s, unsigned endpoint, CURLcode cc) {
    int error = cc == CURLE_OPERATION_TIMEDOUT ? -ETIMEDOUT
                : cc == CURLE_COULDNT_CONNECT  ? -ECONNREFUSED
                : cc == CURLE_OUT_OF_MEMORY    ? -ENOMEM
                                               : -EIO;
    if (tls_failure(cc))
        log_tls_failure(s, endpoint, cc);
    log_unanswered(s, endpoint, cc, error);
    if (cc != CURLE_OK && !endpoint_fault(cc, error))
        return error;
    etcd_endpoint_failed(s, endpoint);
    return -EAGAIN;
}

/* A request that waited for the token: sent now, or ended with error.
 * Returns false if it ended (and is to be freed). */
static bool request_unpark(struct etcd_request *r, int error) {
    r->parked = false;
    if (error >= 0 && request_send(r) >= 0)
        return true;
    request_complete(r, error < 0 ? error : -ENOMEM, NULL, 0, 0);
    return false;
}

void etcd_request_auth_done(struct store_etcd *s, int error) {
    struct etcd_request *r, *next;

    LIST_FOREACH_SAFE (requests, r, next, &s->side)
        if (r->parked && !request_unpark(r, error)) {
            LIST_REMOVE(requests, &s->side, r);
            request_free(r);
        }
    r = s->current;
    if (r && r->parked && !request_unpark(r, error)) {
        s->current = NULL;
        request_free(r);
    }
}

static void on_pump(uv_timer_t *t) {
    store_etcd_dispatch(t->data);
}

void etcd_request_pump(struct store_etcd *s, bool may_call_back) {
    while (!s->current && s->queue.first && !s->freeing) {
        struct etcd_request *r = LIST_POP(requests, &s->queue);

        if (r->kind == REQ_WATCH_START) {
            etcd_watch_start(r->watch);
            request_free(r);
            continue;
        }
        if (request_send(r) < 0) {
            if (!may_call_back) {
                /* No callback may run here: the pump timer tries again from the loop. */
                LIST_PREPEND(requests, &s->queue, r);
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

int etcd_request_new(struct store_etcd *s, etcd_request_kind kind, const char *path, char *body,
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
    *ret = r;
    return 0;
}

void etcd_request_enqueue(struct etcd_request *r) {
    LIST_APPEND(requests, &r->s->queue, r);
    etcd_request_pump(r->s, false);
}

int etcd_request_send_side(struct etcd_request *r) {
    r->side = true;
    if (request_send(r) < 0) {
        request_free(r);
        return -ENOMEM;
    }
    LIST_PREPEND(requests, &r->s->side, r);
    return 0;
}

void etcd_request_drop_watch_start(struct store_etcd *s, const struct etcd_watch *w) {
    struct etcd_request *r;

    LIST_FOREACH (requests, r, &s->queue)
        if (r->watch == w) {
            LIST_REMOVE(requests, &s->queue, r);
            request_free(r);
            return;
        }
}

void etcd_request_cancel_all(struct store_etcd *s) {
    struct etcd_request *r;

    if (s->current) {
        r = TAKE_PTR(s->current);
        request_complete(r, -ECANCELED, NULL, 0, 0);
        request_free(r);
    }
    while ((r = LIST_POP(requests, &s->side)) || (r = LIST_POP(requests, &s->queue))) {
        request_complete(r, -ECANCELED, NULL, 0, 0);
        request_free(r);
    }
}

/* Sends r again, on the store's endpoint now; a request that cannot be sent
 * (out of memory) ends with -ENOMEM.  Returns false if it ended. */
static bool request_resend(struct etcd_request *r) {
    etcd_curl_remove(r->s, &r->easy);
    etcd_buf_done(&r->resp);
    if (request_send(r) >= 0)
        return true;
    request_complete(r, -ENOMEM, NULL, 0, 0);
    return false;
}

void etcd_endpoint_failed(struct store_etcd *s, unsigned e) {
    struct etcd_request *r, *next;

    if (s->endpoint != e || s->n_endpoints < 2)
        return; /* moved on already, or nowhere to go */
    s->endpoint = (e + 1) % (unsigned)s->n_endpoints;
    etcd_watch_move(s, e);
    /* The keepalives in flight there go again (the one that found the fault
     * has no transfer now: its caller retries it). */
    LIST_FOREACH_SAFE (requests, r, next, &s->side)
        if (r->easy && r->endpoint == e && !request_resend(r)) {
            LIST_REMOVE(requests, &s->side, r);
            request_free(r);
        }
    /* The unary call in flight there: a read goes again; a write may have
     * been applied, so it ends as one that timed out, now rather than after
     * its own timeout, and the FIFO moves on. */
    r = s->current;
    if (!r || !r->easy || r->endpoint != e)
        return;
    if (!r->writes && request_resend(r))
        return;
    s->current = NULL;
    if (r->writes)
        request_complete(r, -ETIMEDOUT, NULL, 0, 0);
    request_free(r);
}
