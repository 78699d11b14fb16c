/* SPDX-License-Identifier: MIT */
/*
 * bq_prune(): deletes the BQ entries every live node has delivered and
 * state-seq has passed (the BQ after state-seq is the rest of the snapshot
 * of states), in transactions of at most STORE_TXN_OPS_MAX deletes.
 */
#define LOG_AREA LOG_AREA_CLUSTER
#include <errno.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "log.h"
#include "macro.h"
#include "queue-internal.h"

struct prune_op {
    struct queue *q;
    bq_prune_cb cb;
    void *userdata;
    char **nodes;
    size_t n_nodes;
    uint64_t *seqs; /* entries to delete, ascending */
    size_t n_seqs, next, chunk;
    char *keys;
    size_t key_size;
    uint64_t deleted;
    bool inflight, cancelled;
};

static struct prune_op *prune_op_free(struct prune_op *op) {
    if (!op)
        return NULL;
    for (size_t i = 0; i < op->n_nodes; i++)
        free(op->nodes[i]);
    free(op->nodes);
    free(op->seqs);
    free(op->keys);
    free(op);
    return NULL;
}

static void prune_finish(struct queue *q, struct prune_op *op, int error) {
    if (q->prune == op)
        q->prune = NULL;
    bq_prune_cb cb = op->cb;
    void *userdata = op->userdata;
    uint64_t deleted = op->deleted;
    prune_op_free(op);
    if (cb)
        cb(q, error, deleted, userdata);
}

static void pruned(struct queue *q, struct call *k, int error, const store_result *r);

static void prune_send(struct queue *q, struct prune_op *op) {
    store_op dels[STORE_TXN_OPS_MAX];
    op->chunk = MIN(op->n_seqs - op->next, (size_t)STORE_TXN_OPS_MAX);
    for (size_t i = 0; i < op->chunk; i++) {
        char *key = op->keys + i * op->key_size;
        size_t n = queue_keys_bq_entry(&q->keys, op->seqs[op->next + i], key, op->key_size);
        dels[i] = (store_op){.type = STORE_OP_DELETE, .key = key, .key_len = n};
    }
    store_txn txn = {.success = dels, .n_success = op->chunk};
    struct call *k = queue_call_new(q, pruned, 0, op);
    int r = k ? store_transaction(q->store, &txn, queue_on_call, k) : -ENOMEM;
    if (r < 0) {
        queue_call_drop(k);
        prune_finish(q, op, queue_store_usable(q, r) ? r : -ECANCELED);
        return;
    }
    op->inflight = true;
}

/* A call of op came back: false if op ended here (cancelled by queue_free(), or the call failed). */
static bool prune_call_back(struct queue *q, struct prune_op *op, int error) {
    op->inflight = false;
    if (op->cancelled) {
        prune_op_free(op);
        return false;
    }
    if (!queue_store_usable(q, error) || error < 0) {
        prune_finish(q, op, queue_store_usable(q, error) ? error : -ECANCELED);
        return false;
    }
    return true;
}

static void pruned(struct queue *q, struct call *k, int error, const store_result *r) {
    struct prune_op *op = k->data;
    if (!prune_call_back(q, op, error))
        return;
    op->deleted += (uint64_t)MAX(r->n_deleted, 0);
    q->stats.pruned += (uint64_t)MAX(r->n_deleted, 0);
    op->next += op->chunk;
    if (op->next >= op->n_seqs)
        prune_finish(q, op, 0);
    else
        prune_send(q, op);
}

/* The offsets are read: what is below all of them goes. */
static void prune_read(struct queue *q, struct call *k, int error, const store_result *r) {
    struct prune_op *op = k->data;
    if (!prune_call_back(q, op, error))
        return;
    uint64_t min = UINT64_MAX;
    for (size_t i = 0; i < op->n_nodes && min > 0; i++) {
        bool found = false;
        for (size_t j = 0; j < r->n_kvs; j++) {
            const store_kv *kv = &r->kvs[j];
            uint64_t offset;
            if (!queue_keys_is_delivered(&q->keys, kv, op->nodes[i]))
                continue;
            found = queue_value_counter_parse(kv->value, kv->value_len, &offset) == 0;
            if (found)
                min = MIN(min, offset);
            break;
        }
        if (!found)
            min = 0; /* nothing read (or unreadable): nothing to prune */
    }
    /* And what state/ holds: the BQ after state-seq is the rest of the snapshot. */
    uint64_t state_seq = 0;
    for (size_t j = 0; j < r->n_kvs; j++)
        if (queue_keys_match(&r->kvs[j], q->keys.state_seq) &&
            queue_value_counter_parse(r->kvs[j].value, r->kvs[j].value_len, &state_seq) < 0)
            state_seq = 0;
    min = MIN(min, state_seq);
    if (min == 0 || min == UINT64_MAX) {
        prune_finish(q, op, 0);
        return;
    }
    size_t n = 0;
    for (size_t j = 0; j < r->n_kvs; j++) {
        uint64_t seq;
        n += queue_keys_bq_entry_parse(&q->keys, r->kvs[j].key, r->kvs[j].key_len, &seq) == 0 && seq <= min;
    }
    if (n == 0) {
        prune_finish(q, op, 0);
        return;
    }
    op->key_size = queue_keys_bq_entry(&q->keys, 0, NULL, 0) + 1;
    op->seqs = calloc(n, sizeof(*op->seqs));
    op->keys = malloc(MIN(n, (size_t)STORE_TXN_OPS_MAX) * op->key_size);
    if (!op->seqs || !op->keys) {
        prune_finish(q, op, -ENOMEM);
        return;
    }
    for (size_t j = 0; j < r->n_kvs; j++) {
        uint64_t seq;
        if (queue_keys_bq_entry_parse(&q->keys, r->kvs[j].key, r->kvs[j].key_len, &seq) == 0 && seq <= min)
            op->seqs[op->n_seqs++] = seq;
    }
    prune_send(q, op);
}

int bq_prune(struct queue *q, const char *const *live_nodes, size_t n, bq_prune_cb cb, void *userdata) {
    assert_return(q, -EINVAL);
    assert_return(live_nodes && n > 0, -EINVAL);
    for (size_t i = 0; i < n; i++)
        assert_return(queue_name_valid(live_nodes[i]), -EINVAL);
    if (q->closing || q->store_gone)
        return -ECANCELED;
    if (q->prune)
        return -EBUSY;

    struct prune_op *op = calloc(1, sizeof(*op));
    if (!op)
        return -ENOMEM;
    op->q = q;
    op->cb = cb;
    op->userdata = userdata;
    op->nodes = calloc(n, sizeof(*op->nodes));
    if (!op->nodes) {
        prune_op_free(op);
        return -ENOMEM;
    }
    for (; op->n_nodes < n; op->n_nodes++)
        if (!(op->nodes[op->n_nodes] = strdup(live_nodes[op->n_nodes]))) {
            prune_op_free(op);
            return -ENOMEM;
        }

    store_op ops[] = {
        {.type = STORE_OP_GET_PREFIX, .key = q->keys.delivered, .key_len = strlen(q->keys.delivered)},
        /* Only the keys: after a burst the entries hold megabytes that etcd
         * would encode and this loop parse, holding appends and the consumer. */
        {.type = STORE_OP_GET_PREFIX, .key = q->keys.bq, .key_len = strlen(q->keys.bq), .keys_only = true},
        {.type = STORE_OP_GET, .key = q->keys.state_seq, .key_len = strlen(q->keys.state_seq)},
    };
    store_txn txn = {.success = ops, .n_success = ELEMENTSOF(ops)};
    struct call *k = queue_call_new(q, prune_read, 0, op);
    int r = k ? store_transaction(q->store, &txn, queue_on_call, k) : -ENOMEM;
    if (r < 0) {
        queue_call_drop(k);
        prune_op_free(op);
        if (r == -ECANCELED)
            q->store_gone = true;
        return r;
    }
    op->inflight = true;
    q->prune = op;
    return 0;
}

void bq_prune_cancel(struct queue *q) {
    struct prune_op *op = TAKE_PTR(q->prune);
    if (!op)
        return;
    bq_prune_cb cb = op->cb;
    void *userdata = op->userdata;
    uint64_t deleted = op->deleted;
    if (op->inflight)
        op->cancelled = true; /* freed by its store callback */
    else
        prune_op_free(op);
    if (cb)
        cb(q, -ECANCELED, deleted, userdata);
}
