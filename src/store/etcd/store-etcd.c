/* SPDX-License-Identifier: MIT */
/* The etcd store backend: the store operations over etcd's v3 JSON gateway, with libcurl driven by the libuv loop. */

/*
 * By role: the transport (etcd-curl.c: libcurl's multi handle on the store's
 * loop), unary calls (etcd-request.c: one FIFO, retries and failover across
 * the endpoints), watches (etcd-watch.c: one stream each, resumed after a
 * failure) and the JSON codec (etcd-json.c).  This file has the store_ops,
 * the dispatch step that every libuv callback ends with, and the life cycle.
 *
 * The first request of a store reads the store revision, so that
 * store_revision() is 0 only until it answered.
 *
 * Leases: grant, revoke, and one keepalive request per store_lease_keepalive()
 * call (POST /v3/lease/keepalive with a one-message body, answered as one
 * {"result":...} line; an answer without TTL means the lease is gone:
 * -ENOENT).  One long-lived keepalive stream is not possible for the same
 * reason as shared watches (etcd-watch.c).
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

#include <stdlib.h>
#include <string.h>

#include "etcd-internal.h"
#include "macro.h"

static struct store_etcd *to_etcd(store *s) {
    return (struct store_etcd *)s;
}

/* ---- dispatch: user callbacks, outside of any curl call ---- */

static void etcd_release(struct store_etcd *s);

void store_etcd_dispatch(struct store_etcd *s) {
    CURLMsg *m;
    int left;

    if (s->released)
        return;
    s->depth++;
    while (!s->freeing && (m = curl_multi_info_read(s->multi, &left))) {
        if (m->msg != CURLMSG_DONE)
            continue;
        CURL *e = m->easy_handle;
        if (!etcd_request_transfer_done(s, e, m->data.result) && !etcd_members_transfer_done(s, e, m->data.result) &&
            !etcd_auth_transfer_done(s, e, m->data.result))
            (void)etcd_watch_transfer_done(s, e);
    }
    etcd_watch_deliver(s);
    etcd_request_pump(s, true);
    s->depth--;
    if (s->freeing && s->depth == 0)
        etcd_release(s);
}

/* ---- store_ops ---- */

static int etcd_get(store *st, const char *key, size_t key_len, bool prefix, store_cb cb, void *userdata) {
    struct store_etcd *s = to_etcd(st);
    struct etcd_request *r;
    int k;

    if (s->freeing)
        return -ECANCELED;
    k = etcd_request_new(s, REQ_RANGE, "/v3/kv/range", etcd_json_range_body(key, key_len, prefix), &r);
    if (k < 0)
        return k;
    r->cb = cb;
    r->userdata = userdata;
    etcd_request_enqueue(r);
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
    int k;

    if (s->freeing)
        return -ECANCELED;
    k = etcd_request_new(s, REQ_TXN, "/v3/kv/txn", etcd_json_txn_body(txn), &r);
    if (k < 0)
        return k;
    r->writes = ops_write(txn->success, txn->n_success) || ops_write(txn->failure, txn->n_failure);
    r->cb = cb;
    r->userdata = userdata;
    if (txn->renewal) {
        /* Like a keepalive (lease_call()): never behind other requests, and
         * sent again after a timeout (the caller vouches it may be applied twice). */
        r->writes = false;
        r->renewal = true;
        return etcd_request_send_side(r);
    }
    etcd_request_enqueue(r);
    return 0;
}

static int lease_call(store *st, etcd_request_kind kind, const char *path, const char *field, int64_t v,
                      store_lease_cb cb, void *userdata) {
    struct store_etcd *s = to_etcd(st);
    struct etcd_request *r;
    int k;

    if (s->freeing)
        return -ECANCELED;
    k = etcd_request_new(s, kind, path, etcd_json_id_body(field, v), &r);
    if (k < 0)
        return k;
    r->writes = kind != REQ_LEASE_KEEPALIVE; /* a renewal applied twice does no harm */
    r->lease = kind == REQ_LEASE_GRANT ? 0 : v;
    r->lease_cb = cb;
    r->userdata = userdata;
    if (kind == REQ_LEASE_KEEPALIVE)
        /* Renewals never wait behind other requests: a node whose renewal
         * queued behind a burst of writes would fence itself for nothing.
         * Their order does not matter; each goes out at once on its own transfer. */
        return etcd_request_send_side(r);
    etcd_request_enqueue(r);
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

static int64_t etcd_revision(store *st) {
    return to_etcd(st)->revision;
}

static bool etcd_lease_end_trusted(store *st, int64_t revision) {
    return etcd_members_trusted(to_etcd(st), revision);
}

/* ---- life cycle ---- */

static void store_etcd_free_memory(struct store_etcd *s) {
    curl_multi_cleanup(s->multi);
    curl_slist_free_all(s->headers);
    free(s->members);
    free(s->cacert);
    free(s->cert);
    free(s->key);
    etcd_auth_free(s);
    if (s->endpoints)
        for (size_t i = 0; i < s->n_endpoints; i++)
            free(s->endpoints[i]);
    free(s->endpoints);
    free(s);
}

void store_etcd_handle_closed(struct store_etcd *s) {
    if (--s->n_handles > 0 || !s->released)
        return;
    store_etcd_free_memory(s); /* the multi handle is gone already */
}

static void on_pump_closed(uv_handle_t *h) {
    store_etcd_handle_closed(h->data);
}

/* Tears down what is left once no callback is running anymore. */
static void etcd_release(struct store_etcd *s) {
    if (s->released)
        return;
    s->released = true;
    etcd_watch_destroy_all(s);
    etcd_members_release(s);
    etcd_auth_release(s);
    etcd_curl_release(s);
    uv_close((uv_handle_t *)&s->pump, on_pump_closed);
}

static void etcd_free(store *st) {
    struct store_etcd *s = to_etcd(st);

    if (s->freeing)
        return;
    s->freeing = true;
    s->depth++;
    etcd_request_cancel_all(s);
    /* Every watch still running ends; the one whose callback called us
     * gets its -ECANCELED right after that callback returns. */
    etcd_watch_end_all(s);
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
    .watch = etcd_watch_new,
    .watch_cancel = etcd_watch_cancel,
    .revision = etcd_revision,
    .lease_end_trusted = etcd_lease_end_trusted,
};

static bool endpoint_ok(const char *e) {
    return e && (strncmp(e, "http://", 7) == 0 || strncmp(e, "https://", 8) == 0) && strlen(e) < 256;
}

static int copy_opt(const char *v, char **ret) {
    if (!v)
        return 0;
    *ret = strdup(v);
    return *ret ? 0 : -ENOMEM;
}

int store_etcd_new(uv_loop_t *loop, const char *const *endpoints, size_t n_endpoints, store **ret) {
    return store_etcd_new_with(loop, endpoints, n_endpoints, NULL, ret);
}

int store_etcd_new_with(uv_loop_t *loop, const char *const *endpoints, size_t n_endpoints,
                        const store_etcd_options *opt, store **ret) {
    struct store_etcd *s;
    struct etcd_request *r;
    int k;

    assert_return(loop, -EINVAL);
    assert_return(endpoints, -EINVAL);
    assert_return(n_endpoints > 0, -EINVAL);
    assert_return(ret, -EINVAL);
    assert_return(!opt || !opt->user == !opt->password, -EINVAL);
    for (size_t i = 0; i < n_endpoints; i++)
        assert_return(endpoint_ok(endpoints[i]), -EINVAL);

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
    if (!s->endpoints) {
        free(s);
        return -ENOMEM;
    }
    s->n_endpoints = n_endpoints;
    if (opt && (copy_opt(opt->cacert, &s->cacert) < 0 || copy_opt(opt->cert, &s->cert) < 0 ||
                copy_opt(opt->key, &s->key) < 0 || copy_opt(opt->user, &s->user) < 0 ||
                copy_opt(opt->password, &s->password) < 0)) {
        store_etcd_free_memory(s);
        return -ENOMEM;
    }
    for (size_t i = 0; i < n_endpoints; i++) {
        size_t n = strlen(endpoints[i]);
        while (n > 0 && endpoints[i][n - 1] == '/')
            n--;
        s->endpoints[i] = strndup(endpoints[i], n);
        if (!s->endpoints[i]) {
            store_etcd_free_memory(s);
            return -ENOMEM;
        }
    }
    k = etcd_curl_new(s); /* its timer is the last step: no handle is open if it fails */
    if (k < 0) {
        store_etcd_free_memory(s);
        return k;
    }
    (void)uv_timer_init(loop, &s->pump); /* cannot fail once the first one did not */
    s->pump.data = s;
    s->n_handles++;
    k = etcd_members_new(s);
    if (k < 0) {
        store_free(&s->head);
        return k;
    }

    /* The first request reads the revision. */
    k = etcd_request_new(s, REQ_REVISION, "/v3/kv/range", etcd_json_revision_body(), &r);
    if (k < 0) {
        store_free(&s->head);
        return k;
    }
    etcd_request_enqueue(r);
    *ret = &s->head;
    return 0;
}
