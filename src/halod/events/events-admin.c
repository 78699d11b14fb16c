/* SPDX-License-Identifier: MIT */
/* haloctl's reads: the broadcast queue as kept in the store (and followed), a process's epochs and failure vectors. */
#define LOG_AREA LOG_AREA_AMF
#include <errno.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "events-internal.h"
#include "hlc.h"
#include "keys.h"
#include "log.h"
#include "macro.h"
#include "parse-util.h"
#include "queue-report.h"
#include "server.h"

enum read_kind { READ_EVENTS, READ_FAILVEC };

/* A read of the store for haloctl; conn NULL once it closed. */
struct admin_read {
    LIST_FIELDS(struct admin_read, reads);
    struct events *e;
    struct conn *conn;
    uint64_t seq;
    enum read_kind kind;
    char object[QUEUE_OBJECT_MAX];
};

static void admin_read_free(struct admin_read *r) {
    if (r->e)
        LIST_REMOVE(reads, &r->e->reads, r);
    free(r);
}

/* The published events of BQ entries or failure-vector chunks (JSON arrays), appended to out. */
static void append_events(json_t *out, const char *value, size_t len) {
    json_t *arr = json_loadb(value, len, 0, NULL);
    size_t i;
    json_t *ev;
    json_array_foreach(arr, i, ev) {
        struct queue_event qe;
        if (!json_is_object(ev) || queue_event_from_json(ev, &qe) < 0)
            continue;
        char when[HLC_STRING_MAX];
        json_t *copy = json_deep_copy(ev);
        if (copy && qe.hlc)
            json_object_set_new(copy, "time", json_string(hlc_format(qe.hlc, when)));
        json_array_append_new(out, copy);
    }
    json_decref(arr);
}

/* The epoch that follows failvec/<process>/ in a key, or -1. */
static int64_t key_number_after(const store_kv *kv, size_t prefix_len) {
    uint64_t v;
    if (key_parse_number(kv->key + prefix_len, kv->key_len - prefix_len, &v) < 0 || v > INT64_MAX)
        return -1;
    return (int64_t)v;
}

static int epoch_cmp(const void *x, const void *y) {
    json_int_t a = json_integer_value(json_object_get(*(json_t *const *)x, "epoch"));
    json_int_t b = json_integer_value(json_object_get(*(json_t *const *)y, "epoch"));
    return a < b ? -1 : a > b;
}

static json_t *failvec_json(struct events *e, const char *object, const store_result *res) {
    char prefix[STORE_KEY_MAX], ek[STORE_KEY_MAX];
    size_t plen = key_failvec_dir(prefix, e->prefix, object) < 0 ? 0 : strlen(prefix);
    size_t eklen = key_current_epoch(ek, e->prefix, object) < 0 ? 0 : strlen(ek);
    json_t *epochs = json_object(), *root = json_pack("{s:s, s:n}", "process", object, "current_epoch");
    for (size_t i = 0; i < res->n_kvs; i++) {
        const store_kv *kv = &res->kvs[i];
        if (eklen && kv->key_len == eklen && memcmp(kv->key, ek, eklen) == 0) {
            json_t *v = json_loadb(kv->value, kv->value_len, JSON_DECODE_ANY, NULL);
            json_object_set_new(root, "current_epoch", json_is_integer(v) ? v : json_null());
            if (!json_is_integer(v))
                json_decref(v);
            continue;
        }
        if (plen == 0 || kv->key_len <= plen || memcmp(kv->key, prefix, plen) != 0)
            continue;
        int64_t ep = key_number_after(kv, plen);
        if (ep < 0)
            continue;
        char name[32];
        snprintf(name, sizeof(name), "%lld", (long long)ep);
        json_t *o = json_object_get(epochs, name);
        if (!o) {
            o = json_pack("{s:I, s:n, s:I, s:[]}", "epoch", (json_int_t)ep, "record", "nr_failures", (json_int_t)0,
                          "events");
            json_object_set_new(epochs, name, o);
        }
        if (kv->key_len == plen + strlen(name)) /* failvec/<process>/<epoch>: the record */
            json_object_set_new(o, "record", json_loadb(kv->value, kv->value_len, 0, NULL) ?: json_null());
        else if (key_failvec_is_count(kv->key, kv->key_len)) {
            json_t *v = json_loadb(kv->value, kv->value_len, JSON_DECODE_ANY, NULL);
            if (json_is_integer(v))
                json_object_set(o, "nr_failures", v);
            json_decref(v);
        } else
            append_events(json_object_get(o, "events"), kv->value, kv->value_len);
    }
    /* The epochs in order (the store's key order puts 10 before 9). */
    json_t *list = json_array();
    const char *k;
    json_t *v;
    json_object_foreach(epochs, k, v) json_array_append(list, v);
    size_t n = json_array_size(list);
    json_t **sorted = n ? calloc(n, sizeof(*sorted)) : NULL;
    for (size_t i = 0; sorted && i < n; i++)
        sorted[i] = json_array_get(list, i);
    if (sorted)
        qsort(sorted, n, sizeof(*sorted), epoch_cmp);
    json_t *out = json_array();
    for (size_t i = 0; sorted && i < n; i++)
        json_array_append(out, sorted[i]);
    free(sorted);
    json_decref(list);
    json_decref(epochs);
    json_object_set_new(root, "epochs", out);
    return root;
}

static void on_admin_read(store *s, int error, const store_result *res, void *userdata) {
    struct admin_read *r = userdata;
    struct conn *conn = r->conn;
    if (!conn) {
        admin_read_free(r);
        return;
    }
    if (error < 0) {
        (void)server_conn_reply(conn, r->seq, error, NULL);
        admin_read_free(r);
        return;
    }
    json_t *j;
    if (r->kind == READ_FAILVEC)
        j = failvec_json(r->e, r->object, res);
    else {
        json_t *evs = json_array();
        for (size_t i = 0; i < res->n_kvs; i++)
            append_events(evs, res->kvs[i].value, res->kvs[i].value_len);
        j = json_pack("{s:o}", "events", evs);
    }
    char *text = j ? json_dumps(j, JSON_COMPACT) : NULL;
    json_decref(j);
    if (text)
        (void)server_conn_reply_parts(conn, r->seq, text);
    else
        (void)server_conn_reply(conn, r->seq, -ENOMEM, NULL);
    admin_read_free(r);
}

/* Starts a read for haloctl: the transaction txn, or a range of prefix. */
static void admin_read_start(struct events *e, struct admin_read *r, const store_txn *txn, const char *prefix) {
    int ret =
        txn ? store_transaction(e->store, txn, on_admin_read, r) : store_range(e->store, prefix, on_admin_read, r);
    if (ret < 0) {
        (void)server_conn_reply(r->conn, r->seq, ret, NULL);
        free(r);
        return;
    }
    LIST_PREPEND(reads, &e->reads, r);
}

static struct admin_read *admin_read_new(struct events *e, struct conn *conn, uint64_t seq, enum read_kind kind) {
    struct admin_read *r = calloc(1, sizeof(*r));
    if (!r) {
        (void)server_conn_reply(conn, seq, -ENOMEM, NULL);
        return NULL;
    }
    *r = (struct admin_read){.e = e, .conn = conn, .seq = seq, .kind = kind};
    return r;
}

void events_admin_events(struct events *e, struct conn *conn, uint64_t seq, bool follow) {
    if (follow) {
        for (size_t i = 0; i < EVENTS_FOLLOWERS_MAX; i++)
            if (!e->followers[i] || e->followers[i] == conn) {
                e->followers[i] = conn;
                (void)server_conn_reply(conn, seq, 0, NULL);
                return;
            }
        (void)server_conn_reply(conn, seq, -EBUSY, NULL);
        return;
    }
    char bq[STORE_KEY_MAX];
    if (key_dir(bq, e->prefix, KEY_BQ) < 0) {
        (void)server_conn_reply(conn, seq, -ENAMETOOLONG, NULL);
        return;
    }
    struct admin_read *r = admin_read_new(e, conn, seq, READ_EVENTS);
    if (r)
        admin_read_start(e, r, NULL, bq);
}

void events_admin_failvec(struct events *e, struct conn *conn, uint64_t seq, const char *target) {
    /* A process by its component name ("su/comp") or its object name. */
    char name[QUEUE_OBJECT_MAX], ek[STORE_KEY_MAX], under[STORE_KEY_MAX];
    snprintf(name, sizeof(name), "%s%s", strncmp(target, "process:", 8) == 0 ? "" : "process:", target);
    struct admin_read *r = admin_read_new(e, conn, seq, READ_FAILVEC);
    if (!r)
        return;
    queue_object_part(r->object, sizeof(r->object), name);
    const struct rm_process *p = e->model ? rm_find(e->model, r->object) : NULL;
    if (!p || !p->pool) {
        free(r);
        (void)server_conn_reply(conn, seq, p ? -EINVAL : -HALO_EUNKNOWN, NULL);
        return;
    }
    int n1 = key_current_epoch(ek, e->prefix, r->object), n2 = key_failvec_dir(under, e->prefix, r->object);
    if (n1 < 0 || n2 < 0) {
        free(r);
        (void)server_conn_reply(conn, seq, -ENAMETOOLONG, NULL);
        return;
    }
    store_op ops[] = {{.type = STORE_OP_GET, .key = ek, .key_len = (size_t)n1},
                      {.type = STORE_OP_GET_PREFIX, .key = under, .key_len = (size_t)n2}};
    store_txn txn = {.success = ops, .n_success = ELEMENTSOF(ops)};
    admin_read_start(e, r, &txn, NULL);
}

void events_admin_conn_closed(struct events *e, struct conn *conn) {
    struct admin_read *r;
    LIST_FOREACH (reads, r, &e->reads)
        if (r->conn == conn)
            r->conn = NULL;
    for (size_t i = 0; i < EVENTS_FOLLOWERS_MAX; i++)
        if (e->followers[i] == conn)
            e->followers[i] = NULL;
}

/* The reads in flight end with the store; they no longer name e. */
void events_admin_free(struct events *e) {
    struct admin_read *r;
    while ((r = LIST_POP(reads, &e->reads))) {
        r->e = NULL;
        r->conn = NULL;
    }
}
