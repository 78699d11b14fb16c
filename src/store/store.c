/* SPDX-License-Identifier: MIT */
/* The store's public entry points: argument checks shared by every backend, then dispatch to its ops. */
#include <string.h>

#include "macro.h"
#include "store-follow.h"
#include "store.h"

/* etcd's limit; 9e9 s in milliseconds still fits an int64_t with room to spare. */
#define STORE_LEASE_TTL_MAX INT64_C(9000000000)

static bool key_ok(const char *key, size_t key_len, bool prefix) {
    return key && key_len <= STORE_KEY_MAX && (prefix || key_len > 0);
}

static bool value_ok(const char *value, size_t value_len) {
    return (value || value_len == 0) && value_len <= STORE_VALUE_MAX;
}

static bool key_has_prefix(const char *key, size_t key_len, const char *prefix, size_t prefix_len) {
    return key_len >= prefix_len && (prefix_len == 0 || memcmp(key, prefix, prefix_len) == 0);
}

static bool same_key(const store_op *a, const store_op *b) {
    return a->key_len == b->key_len && memcmp(a->key, b->key, a->key_len) == 0;
}

/* As etcd: within one branch a key is put at most once, and never both put
 * and deleted (by key or by a prefix of it); deletes may overlap each other. */
static bool ops_conflict(const store_op *put, const store_op *other) {
    if (put->type != STORE_OP_PUT)
        return false;
    switch (other->type) {
    case STORE_OP_PUT:
    case STORE_OP_DELETE:
        return same_key(put, other);
    case STORE_OP_DELETE_PREFIX:
        return key_has_prefix(put->key, put->key_len, other->key, other->key_len);
    default:
        return false;
    }
}

static bool op_ok(const store_op *op) {
    if (op->keys_only && op->type != STORE_OP_GET && op->type != STORE_OP_GET_PREFIX)
        return false;
    switch (op->type) {
    case STORE_OP_PUT:
        return key_ok(op->key, op->key_len, false) && value_ok(op->value, op->value_len) && op->lease >= 0;
    case STORE_OP_DELETE:
    case STORE_OP_GET:
        return key_ok(op->key, op->key_len, false);
    case STORE_OP_DELETE_PREFIX:
    case STORE_OP_GET_PREFIX:
        return key_ok(op->key, op->key_len, true);
    }
    return false;
}

static bool ops_ok(const store_op *ops, size_t n) {
    if (n > STORE_TXN_OPS_MAX || (n > 0 && !ops))
        return false;
    for (size_t i = 0; i < n; i++) {
        if (!op_ok(&ops[i]))
            return false;
        /* Quadratic, but n <= STORE_TXN_OPS_MAX. */
        for (size_t j = 0; j < i; j++)
            if (ops_conflict(&ops[i], &ops[j]) || ops_conflict(&ops[j], &ops[i]))
                return false;
    }
    return true;
}

static bool compare_ok(const store_compare *c) {
    if (!key_ok(c->key, c->key_len, false))
        return false;
    if ((unsigned)c->result > STORE_CMP_GREATER)
        return false;
    switch (c->target) {
    case STORE_CMP_VALUE:
        return value_ok(c->value, c->value_len);
    case STORE_CMP_VERSION:
    case STORE_CMP_CREATE:
    case STORE_CMP_MOD:
        return true;
    }
    return false;
}

static bool txn_ok(const store_txn *txn) {
    if (txn->n_compares > STORE_TXN_OPS_MAX || (txn->n_compares > 0 && !txn->compares))
        return false;
    for (size_t i = 0; i < txn->n_compares; i++)
        if (!compare_ok(&txn->compares[i]))
            return false;
    return ops_ok(txn->success, txn->n_success) && ops_ok(txn->failure, txn->n_failure);
}

store *store_free(store *s) {
    if (!s || s->closing)
        return NULL;
    s->closing = true;
    store_follow_stop_all(s);
    s->ops->free(s);
    return NULL;
}

int store_get(store *s, const char *key, store_cb cb, void *userdata) {
    assert_return(s, -EINVAL);
    assert_return(key, -EINVAL);
    assert_return(cb, -EINVAL);
    size_t n = strlen(key);
    assert_return(key_ok(key, n, false), -EINVAL);
    return s->ops->get(s, key, n, false, cb, userdata);
}

int store_range(store *s, const char *prefix, store_cb cb, void *userdata) {
    assert_return(s, -EINVAL);
    assert_return(prefix, -EINVAL);
    assert_return(cb, -EINVAL);
    size_t n = strlen(prefix);
    assert_return(key_ok(prefix, n, true), -EINVAL);
    return s->ops->get(s, prefix, n, true, cb, userdata);
}

/* A txn of one unconditional op. */
static int store_single_op(store *s, const store_op *op, store_cb cb, void *userdata) {
    assert_return(op_ok(op), -EINVAL);
    store_txn txn = {.success = op, .n_success = 1};
    return s->ops->txn(s, &txn, cb, userdata);
}

int store_put(store *s, const char *key, const char *value, size_t value_len, int64_t lease, store_cb cb,
              void *userdata) {
    assert_return(s, -EINVAL);
    assert_return(key, -EINVAL);
    store_op op = {
        .type = STORE_OP_PUT,
        .key = key,
        .key_len = strlen(key),
        .value = value ? value : "",
        .value_len = value_len,
        .lease = lease,
    };
    assert_return(value || value_len == 0, -EINVAL);
    return store_single_op(s, &op, cb, userdata);
}

int store_delete(store *s, const char *key, store_cb cb, void *userdata) {
    assert_return(s, -EINVAL);
    assert_return(key, -EINVAL);
    store_op op = {.type = STORE_OP_DELETE, .key = key, .key_len = strlen(key)};
    return store_single_op(s, &op, cb, userdata);
}

int store_delete_prefix(store *s, const char *prefix, store_cb cb, void *userdata) {
    assert_return(s, -EINVAL);
    assert_return(prefix, -EINVAL);
    store_op op = {.type = STORE_OP_DELETE_PREFIX, .key = prefix, .key_len = strlen(prefix)};
    return store_single_op(s, &op, cb, userdata);
}

int store_transaction(store *s, const store_txn *txn, store_cb cb, void *userdata) {
    assert_return(s, -EINVAL);
    assert_return(txn, -EINVAL);
    assert_return(txn_ok(txn), -EINVAL);
    return s->ops->txn(s, txn, cb, userdata);
}

int store_lease_grant(store *s, int64_t ttl, store_lease_cb cb, void *userdata) {
    assert_return(s, -EINVAL);
    assert_return(ttl >= 1 && ttl <= STORE_LEASE_TTL_MAX, -EINVAL);
    return s->ops->lease_grant(s, ttl, cb, userdata);
}

int store_lease_keepalive(store *s, int64_t lease, store_lease_cb cb, void *userdata) {
    assert_return(s, -EINVAL);
    assert_return(lease > 0, -EINVAL);
    return s->ops->lease_keepalive(s, lease, cb, userdata);
}

int store_lease_revoke(store *s, int64_t lease, store_lease_cb cb, void *userdata) {
    assert_return(s, -EINVAL);
    assert_return(lease > 0, -EINVAL);
    return s->ops->lease_revoke(s, lease, cb, userdata);
}

int store_watch_prefix(store *s, const char *prefix, int64_t start_revision, store_watch_cb cb, void *userdata,
                       store_watch **ret) {
    assert_return(s, -EINVAL);
    assert_return(prefix, -EINVAL);
    assert_return(cb, -EINVAL);
    assert_return(ret, -EINVAL);
    assert_return(start_revision >= 0, -EINVAL);
    size_t n = strlen(prefix);
    assert_return(key_ok(prefix, n, true), -EINVAL);
    return s->ops->watch(s, prefix, n, start_revision, cb, userdata, ret);
}

store_watch *store_watch_cancel(store_watch *w) {
    if (w)
        w->store->ops->watch_cancel(w);
    return NULL;
}

int64_t store_revision(store *s) {
    assert_return(s, -EINVAL);
    return s->ops->revision(s);
}

bool store_lease_end_trusted(store *s, int64_t revision) {
    assert_return(s, false);
    return !s->ops->lease_end_trusted || s->ops->lease_end_trusted(s, revision);
}

const char *store_backend_name(store *s) {
    return s ? s->ops->name : NULL;
}

bool store_compare_holds(const store_compare *cmp, const store_kv *kv) {
    int d;
    if (cmp->target == STORE_CMP_VALUE) {
        if (!kv)
            return false; /* as etcd: a value compare on a missing key always fails */
        size_t n = MIN(kv->value_len, cmp->value_len);
        d = n ? memcmp(kv->value, cmp->value, n) : 0;
        if (d == 0)
            d = kv->value_len < cmp->value_len ? -1 : kv->value_len > cmp->value_len;
    } else {
        int64_t have = !kv                                ? 0
                       : cmp->target == STORE_CMP_VERSION ? kv->version
                       : cmp->target == STORE_CMP_CREATE  ? kv->create_revision
                                                          : kv->mod_revision;
        d = have < cmp->number ? -1 : have > cmp->number;
    }
    switch (cmp->result) {
    case STORE_CMP_EQUAL:
        return d == 0;
    case STORE_CMP_NOT_EQUAL:
        return d != 0;
    case STORE_CMP_LESS:
        return d < 0;
    case STORE_CMP_GREATER:
        return d > 0;
    }
    return false;
}
