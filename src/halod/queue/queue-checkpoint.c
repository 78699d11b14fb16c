/* SPDX-License-Identifier: MIT */
/*
 * The consumer's checkpoints: it writes the published states to state/
 * behind the BQ, in rounds (the objects changed since the last round, each
 * once, the last transaction with state-seq), under the consumer's guard.
 */
#define LOG_AREA LOG_AREA_CLUSTER
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "log.h"
#include "macro.h"
#include "queue-internal.h"

/* State puts per checkpoint transaction (and state-seq), and how long a round
 * waits for more changes. */
#define CHECKPOINT_PUTS (STORE_TXN_OPS_MAX - 1)
#define CHECKPOINT_MSEC 200

static void checkpoint_send(struct queue *q);

static void on_checkpoint_timer(uv_timer_t *t) {
    struct queue *q = t->data;
    queue_ref(q);
    if (q->consumer.running && !q->closing)
        checkpoint_send(q);
    queue_unref(q);
}

/* A round starts CHECKPOINT_MSEC after the first state it has to write, so
 * that an object changed many times is written once. */
void queue_checkpoint_schedule(struct queue *q) {
    struct checkpoint *cp = &q->consumer.cp;
    if (cp->inflight || uv_is_active((uv_handle_t *)&q->checkpoint_timer) ||
        (!cp->round && hashmap_size(&cp->dirty) == 0))
        return;
    uv_timer_start(&q->checkpoint_timer, on_checkpoint_timer, cp->round ? 0 : CHECKPOINT_MSEC, 0);
}

/* One transaction of a checkpoint: the keys it wrote and the seqs they had. */
struct checkpoint_call {
    size_t n;
    bool last; /* it writes state-seq: the round ends */
    uint64_t seqs[CHECKPOINT_PUTS];
    char objects[CHECKPOINT_PUTS][QUEUE_OBJECT_MAX];
};

static void checkpoint_done(struct queue *q, struct call *k, int error, const store_result *r) {
    struct consumer *c = &q->consumer;
    struct checkpoint *cp = &c->cp;
    struct checkpoint_call *w = k->data;
    if (q->closing || k->gen != c->gen)
        return; /* a stopped consumer's: the next coordinator reads the BQ */
    cp->inflight = false;
    if (!queue_store_usable(q, error)) {
        eq_consumer_fail(q, -ECANCELED);
        return;
    }
    if (error < 0) {
        log_warning_errno(error, "Failed to write object states to the store, retrying: %m");
        uv_timer_start(&q->checkpoint_timer, on_checkpoint_timer, queue_backoff_next(&cp->backoff_msec), 0);
        return;
    }
    if (!r->succeeded) {
        log_warning("The event queue's guard failed: no longer the coordinator");
        eq_consumer_fail(q, -EPERM);
        return;
    }
    cp->backoff_msec = 0;
    for (size_t i = 0; i < w->n; i++) {
        struct queue_obj *o = queue_obj_find(&cp->dirty, w->objects[i]);
        if (!o)
            continue;
        if (o->in_round)
            cp->n_in_round--;
        if (o->seq == w->seqs[i])
            queue_obj_remove(&cp->dirty, w->objects[i]);
        else
            o->in_round = false; /* changed since: the next round writes it */
    }
    if (w->last) {
        cp->round = false;
        q->stats.checkpoints++;
        q->stats.state_seq = cp->round_seq;
    }
    queue_checkpoint_schedule(q);
}

static void checkpoint_call_done(struct queue *q, struct call *k, int error, const store_result *r) {
    checkpoint_done(q, k, error, r);
    free(k->data);
}

/* A round writes everything published up to now. */
static void checkpoint_round_start(struct consumer *c) {
    struct checkpoint *cp = &c->cp;
    struct hashmap_iter it = {0};
    void *v;
    cp->round = true;
    cp->round_seq = c->seq;
    cp->n_in_round = 0;
    while (hashmap_iterate(&cp->dirty, &it, NULL, &v)) {
        struct queue_obj *o = v;
        if (o->seq <= c->seq) {
            o->in_round = true;
            cp->n_in_round++;
        }
    }
}

static void checkpoint_send(struct queue *q) {
    struct consumer *c = &q->consumer;
    struct checkpoint *cp = &c->cp;
    store_op ops[CHECKPOINT_PUTS + 1];
    char *keys[CHECKPOINT_PUTS];
    char seq_value[QUEUE_COUNTER_MAX];
    size_t n = 0;

    if (cp->inflight)
        return;
    if (!cp->round) {
        if (hashmap_size(&cp->dirty) == 0)
            return;
        checkpoint_round_start(c);
    }
    struct checkpoint_call *w = malloc(sizeof(*w));
    if (!w) {
        uv_timer_start(&q->checkpoint_timer, on_checkpoint_timer, queue_backoff_next(&cp->backoff_msec), 0);
        return;
    }
    int r = 0;
    struct hashmap_iter it = {0};
    const char *object;
    void *v;
    while (n < CHECKPOINT_PUTS && hashmap_iterate(&cp->dirty, &it, &object, &v)) {
        const struct queue_obj *o = v;
        if (!o->in_round)
            continue;
        if (queue_keys_state(&q->keys, object, &keys[n]) < 0) {
            r = -ENOMEM;
            goto out;
        }
        ops[n] = (store_op){.type = STORE_OP_PUT,
                            .key = keys[n],
                            .key_len = strlen(keys[n]),
                            .value = o->value,
                            .value_len = strlen(o->value)};
        snprintf(w->objects[n], sizeof(w->objects[n]), "%s", object);
        w->seqs[n] = o->seq;
        n++;
    }
    w->n = n;
    w->last = n == cp->n_in_round;
    size_t n_ops = n;
    if (w->last) {
        queue_value_counter(cp->round_seq, seq_value);
        ops[n_ops++] = (store_op){.type = STORE_OP_PUT,
                                  .key = q->keys.state_seq,
                                  .key_len = strlen(q->keys.state_seq),
                                  .value = seq_value,
                                  .value_len = strlen(seq_value)};
    }
    store_txn txn = {
        .compares = c->has_guard ? &c->guard : NULL, .n_compares = c->has_guard, .success = ops, .n_success = n_ops};
    struct call *k = queue_call_new(q, checkpoint_call_done, c->gen, w);
    r = k ? store_transaction(q->store, &txn, queue_on_call, k) : -ENOMEM;
    if (r < 0)
        queue_call_drop(k);
    else {
        cp->inflight = true;
        w = NULL;
    }
out:
    for (size_t i = 0; i < n; i++)
        free(keys[i]);
    free(w);
    if (r < 0) {
        if (!queue_store_usable(q, r))
            eq_consumer_fail(q, -ECANCELED);
        else
            uv_timer_start(&q->checkpoint_timer, on_checkpoint_timer, queue_backoff_next(&cp->backoff_msec), 0);
    }
}

void queue_checkpoint_reset(struct queue *q) {
    /* What is not in state/ yet is on the BQ, which the next coordinator reads. */
    queue_obj_done(&q->consumer.cp.dirty);
    q->consumer.cp = (struct checkpoint){0};
    uv_timer_stop(&q->checkpoint_timer);
}
