/* SPDX-License-Identifier: MIT */
/* The etcd backend's codec: request bodies for etcd v3's JSON gateway and its answers decoded, keys and values in
 * base64. */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "base64.h"
#include "etcd-internal.h"
#include "macro.h"
#include "parse-util.h"
#include "string-table.h"

static const char *const etcd_compare_target_table[] = {
    [STORE_CMP_VALUE] = "VALUE",
    [STORE_CMP_VERSION] = "VERSION",
    [STORE_CMP_CREATE] = "CREATE",
    [STORE_CMP_MOD] = "MOD",
};
DEFINE_PRIVATE_STRING_TABLE_LOOKUP(etcd_compare_target, store_compare_target);

static const char *const etcd_compare_result_table[] = {
    [STORE_CMP_EQUAL] = "EQUAL",
    [STORE_CMP_NOT_EQUAL] = "NOT_EQUAL",
    [STORE_CMP_LESS] = "LESS",
    [STORE_CMP_GREATER] = "GREATER",
};
DEFINE_PRIVATE_STRING_TABLE_LOOKUP(etcd_compare_result, store_compare_result);

int64_t etcd_json_int64(const json_t *o, const char *key) {
    json_t *v = json_object_get(o, key);
    int64_t n;
    if (json_is_string(v))
        return parse_i64(json_string_value(v), &n) < 0 ? 0 : n;
    if (json_is_integer(v))
        return (int64_t)json_integer_value(v);
    return 0;
}

int etcd_json_errno(const json_t *status) {
    switch (etcd_json_int64(status, "code")) {
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

int64_t etcd_json_revision(const json_t *response) {
    return etcd_json_int64(json_object_get(response, "header"), "revision");
}

/* ---- requests ---- */

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

char *etcd_json_revision_body(void) {
    /* A count of every key: the answer's header has the revision. */
    json_t *o = json_object();
    if (!o || json_object_set_new(o, "key", b64_json("", 1)) < 0 ||
        json_object_set_new(o, "count_only", json_true()) < 0) {
        json_decref(o);
        return NULL;
    }
    return dump_free(o);
}

char *etcd_json_range_body(const char *key, size_t key_len, bool prefix) {
    json_t *o = json_object();
    if (!o || set_range(o, key, key_len, prefix) < 0) {
        json_decref(o);
        return NULL;
    }
    return dump_free(o);
}

char *etcd_json_id_body(const char *field, int64_t id) {
    json_t *o = json_object();
    if (!o || json_object_set_new(o, field, int_json(id)) < 0) {
        json_decref(o);
        return NULL;
    }
    return dump_free(o);
}

int etcd_json_prefix_range(const char *prefix, size_t prefix_len, char **ret_key64, char **ret_end64) {
    json_t *o = json_object();
    if (!o || set_range(o, prefix, prefix_len, true) < 0) {
        json_decref(o);
        return -ENOMEM;
    }
    char *key = strdup(json_string_value(json_object_get(o, "key")));
    char *end = strdup(json_string_value(json_object_get(o, "range_end")));
    json_decref(o);
    if (!key || !end) {
        free(key);
        free(end);
        return -ENOMEM;
    }
    *ret_key64 = key;
    *ret_end64 = end;
    return 0;
}

char *etcd_json_watch_body(const char *key64, const char *end64, int64_t start_revision) {
    json_t *cr = json_object(), *o = json_object();
    char *body = NULL;

    /* key64/end64 are base64 already. */
    if (cr && o && json_object_set_new(cr, "key", json_string(key64)) >= 0 &&
        (!end64 || json_object_set_new(cr, "range_end", json_string(end64)) >= 0) &&
        (start_revision <= 0 || json_object_set_new(cr, "start_revision", int_json(start_revision)) >= 0) &&
        json_object_set(o, "create_request", cr) >= 0)
        body = json_dumps(o, JSON_COMPACT);
    json_decref(cr);
    json_decref(o);
    return body;
}

static json_t *compare_json(const store_compare *c) {
    json_t *o = json_object();
    if (!o || json_object_set_new(o, "key", b64_json(c->key, c->key_len)) < 0 ||
        json_object_set_new(o, "target", json_string(etcd_compare_target_to_string(c->target))) < 0 ||
        json_object_set_new(o, "result", json_string(etcd_compare_result_to_string(c->result))) < 0)
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

char *etcd_json_txn_body(const store_txn *txn) {
    json_t *o = json_object(), *cmps = json_array();

    if (!o || !cmps || json_object_set_new(o, "compare", cmps) < 0)
        goto nomem;
    for (size_t i = 0; i < txn->n_compares; i++)
        if (json_array_append_new(cmps, compare_json(&txn->compares[i])) < 0)
            goto nomem;
    if (ops_json(o, "success", txn->success, txn->n_success) < 0 ||
        ops_json(o, "failure", txn->failure, txn->n_failure) < 0)
        goto nomem;
    return dump_free(o);
nomem:
    if (!o)
        json_decref(cmps);
    json_decref(o);
    return NULL;
}

/* ---- answers ---- */

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
    kv->create_revision = etcd_json_int64(j, "create_revision");
    kv->mod_revision = etcd_json_int64(j, "mod_revision");
    kv->version = etcd_json_int64(j, "version");
    kv->lease = etcd_json_int64(j, "lease");
    return 0;
}

void etcd_json_kvs_free(store_kv *kvs, size_t n) {
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

int etcd_json_result(const json_t *response, store_result *res, store_kv **ret_kvs) {
    /* A RangeResponse has "kvs"; a TxnResponse "succeeded" and "responses". */
    const json_t *rs = json_object_get(response, "responses");
    store_kv *kvs = NULL;
    size_t n = 0;
    int64_t n_deleted = 0;
    int r = append_kvs(response, &kvs, &n);

    for (size_t i = 0; i < json_array_size(rs) && r >= 0; i++) {
        json_t *one = json_array_get(rs, i), *x;
        if ((x = json_object_get(one, "response_range")))
            r = append_kvs(x, &kvs, &n);
        else if ((x = json_object_get(one, "response_delete_range")))
            n_deleted += etcd_json_int64(x, "deleted");
    }
    if (r < 0) {
        etcd_json_kvs_free(kvs, n);
        return r;
    }
    *res = (store_result){
        .revision = etcd_json_revision(response),
        .succeeded = json_is_true(json_object_get(response, "succeeded")),
        .kvs = kvs,
        .n_kvs = n,
        .n_deleted = n_deleted,
    };
    *ret_kvs = kvs;
    return 0;
}

void etcd_json_events_free(store_event *ev, size_t n) {
    for (size_t i = 0; i < n; i++) {
        free(ev[i].kv.key);
        free(ev[i].kv.value);
    }
    free(ev);
}

int etcd_json_events(const json_t *response, store_event **ret, size_t *ret_n) {
    const json_t *a = json_object_get(response, "events");
    size_t m = json_array_size(a), n = 0;
    store_event *ev = NULL;

    if (m > 0) {
        ev = calloc(m, sizeof(*ev));
        if (!ev)
            return -ENOMEM;
    }
    for (size_t i = 0; i < m; i++) {
        json_t *x = json_array_get(a, i);
        const char *type = json_string_value(json_object_get(x, "type"));
        ev[i].type = type && streq(type, "DELETE") ? STORE_EVENT_DELETE : STORE_EVENT_PUT;
        int r = parse_kv(json_object_get(x, "kv"), &ev[i].kv);
        if (r < 0) {
            etcd_json_events_free(ev, n);
            return r;
        }
        n++;
    }
    *ret = ev;
    *ret_n = n;
    return 0;
}
