/* SPDX-License-Identifier: MIT */
/*
 * The consumer of the EQ (the coordinator's): it follows the EQ (store-follow.h:
 * read with state/, the BQ and bq-seq, then watched), and sends one batch
 * (eq-batch.c) at a time under its guard; the published states go to state/
 * behind it (queue-checkpoint.c).  What the follower cannot recover by itself
 * (a batch that found bq-seq moved, memory that ran out) reads everything
 * again with a new follower.
 */
#define LOG_AREA LOG_AREA_CLUSTER
#include <errno.h>
#include <inttypes.h>
#include <stdlib.h>
#include <string.h>

#include "log.h"
#include "macro.h"
#include "queue-internal.h"

static void pending_clear(struct consumer *c) {
    eq_batch_pending_clear(&c->pending);
    c->n_pending = 0;
}

static void pending_push(struct consumer *c, struct pending *p) {
    LIST_APPEND(pending, &c->pending, p);
    c->n_pending++;
}

/* Stops without telling anyone; a batch in flight is left to its callback. */
void eq_consumer_halt(struct queue *q) {
    struct consumer *c = &q->consumer;
    c->running = c->loading = c->reload = false;
    c->gen++;
    c->follow = store_follow_free(c->follow);
    pending_clear(c);
    c->batch = NULL; /* owned by the call in flight */
    uv_timer_stop(&q->consumer_timer);
    queue_checkpoint_reset(q);
}

void eq_consumer_fail(struct queue *q, int error) {
    struct consumer *c = &q->consumer;
    eq_consumer_halt(q);
    if (c->stopped && !q->closing)
        c->stopped(q, error, c->userdata);
}

static void consumer_load(struct queue *q);
static void consumer_kick(struct queue *q);
static void on_consumer_timer(uv_timer_t *t);

/* Re-reads everything after backoff (error < 0) or at once. */
static void consumer_schedule_reload(struct queue *q, int error) {
    struct consumer *c = &q->consumer;
    c->reload = true;
    c->loading = false;
    c->follow = store_follow_free(c->follow);
    pending_clear(c);
    if (c->batch)
        return; /* its callback reloads */
    uv_timer_start(&q->consumer_timer, on_consumer_timer, error < 0 ? queue_backoff_next(&c->backoff_msec) : 0, 0);
}

static void on_consumer_timer(uv_timer_t *t) {
    struct queue *q = t->data;
    queue_ref(q);
    if (q->consumer.running && !q->closing)
        consumer_kick(q);
    queue_unref(q);
}

static int pending_cmp(const void *a, const void *b) {
    const struct pending *x = *(struct pending *const *)a, *y = *(struct pending *const *)b;
    if (x->revision != y->revision)
        return x->revision < y->revision ? -1 : 1;
    return strcmp(x->key, y->key);
}

static void on_consumer_changed(struct store_follow *f, const store_event *ev, size_t n, void *userdata) {
    struct queue *q = userdata;
    struct consumer *c = &q->consumer;
    queue_ref(q);
    for (size_t i = 0; i < n; i++) {
        /* version > 1: the consumer's own rewrite of a partly consumed entry, which it holds already. */
        if (ev[i].type != STORE_EVENT_PUT || !queue_keys_match_prefix(&ev[i].kv, q->keys.eq) || ev[i].kv.version > 1)
            continue;
        struct pending *p = eq_batch_pending_new(&ev[i].kv);
        if (!p) {
            log_warning("Out of memory queueing EQ events, reading the EQ again later");
            consumer_schedule_reload(q, -ENOMEM);
            goto out;
        }
        pending_push(c, p);
    }
    consumer_kick(q);
out:
    queue_unref(q);
}

/* The first read of a follower, or its read again after its watch fell behind. */
static void on_consumer_loaded(struct store_follow *f, const store_result *r, void *userdata) {
    struct queue *q = userdata;
    struct consumer *c = &q->consumer;
    if (q->closing)
        return;
    if (c->batch) {
        /* Read again (-ESTALE) while a batch is in flight: its outcome
         * decides what holds, so everything is read once it is in. */
        consumer_schedule_reload(q, 0);
        return;
    }
    if (!c->loading) { /* a read again: start over from it */
        pending_clear(c);
        if (c->writer)
            c->writer->reset(q, c->writer_userdata);
    }
    c->loading = false;
    c->backoff_msec = 0;

    /* The unconsumed events, in the order they were appended. */
    size_t n_eq = 0;
    for (size_t i = 0; i < r->n_kvs; i++)
        n_eq += queue_keys_match_prefix(&r->kvs[i], q->keys.eq);
    struct pending **sorted = calloc(n_eq ? n_eq : 1, sizeof(*sorted));
    if (!sorted) {
        consumer_schedule_reload(q, -ENOMEM);
        return;
    }
    size_t m = 0;
    c->seq = 0;
    c->seq_mod = 0;
    /* The published states: state/ and, newer, the BQ after state-seq, whose
     * states this consumer writes to state/ (again, maybe) before it moves
     * state-seq. */
    queue_obj_done(&c->decided);
    bool nomem = false;
    uint64_t state_seq = 0;
    for (size_t i = 0; i < r->n_kvs; i++)
        if (queue_keys_match(&r->kvs[i], q->keys.state_seq) &&
            queue_value_counter_parse(r->kvs[i].value, r->kvs[i].value_len, &state_seq) < 0)
            state_seq = 0;
    for (size_t i = 0; i < r->n_kvs && !nomem; i++) {
        const store_kv *kv = &r->kvs[i];
        if (queue_keys_match_prefix(kv, q->keys.eq)) {
            struct pending *p = eq_batch_pending_new(kv);
            if (!p)
                break;
            sorted[m++] = p;
        } else if (queue_keys_match_prefix(kv, q->keys.state))
            nomem = queue_obj_apply_state_value(&c->decided, kv) == -ENOMEM;
        else if (queue_keys_match_prefix(kv, q->keys.bq))
            nomem = queue_obj_apply_bq_entry(&c->decided, kv, &q->keys, &c->cp.dirty, state_seq) == -ENOMEM;
        else if (queue_keys_match(kv, q->keys.bq_seq)) {
            if (queue_value_counter_parse(kv->value, kv->value_len, &c->seq) < 0)
                log_warning("Ignoring the invalid value of '%s'", kv->key);
            c->seq_mod = kv->mod_revision;
        }
    }
    if (m < n_eq || nomem) {
        for (size_t i = 0; i < m; i++)
            free(sorted[i]);
        free(sorted);
        consumer_schedule_reload(q, -ENOMEM);
        return;
    }
    /* Published events go on from the last one's time, whoever published it
     * (a coordinator before this one, with a clock ahead). */
    hlc_witness(q->clock, queue_obj_max_hlc(&c->decided));
    qsort(sorted, m, sizeof(*sorted), pending_cmp);
    for (size_t i = 0; i < m; i++)
        pending_push(c, sorted[i]);
    free(sorted);
    c->reload = false;
    log_debug("Event queue loaded: %zu events pending, last seq %" PRIu64, c->n_pending, c->seq);
    queue_checkpoint_schedule(q);
    consumer_kick(q);
}

/* The store is closing. */
static void on_consumer_stopped(struct store_follow *f, int error, void *userdata) {
    (void)queue_store_usable(userdata, error);
    eq_consumer_fail(userdata, -ECANCELED);
}

static const struct store_follow_ops consumer_follow_ops = {
    .loaded = on_consumer_loaded,
    .changed = on_consumer_changed,
    .stopped = on_consumer_stopped,
};

static void consumer_load(struct queue *q) {
    struct consumer *c = &q->consumer;
    store_op ops[] = {
        {.type = STORE_OP_GET_PREFIX, .key = q->keys.eq, .key_len = strlen(q->keys.eq)},
        {.type = STORE_OP_GET_PREFIX, .key = q->keys.state, .key_len = strlen(q->keys.state)},
        {.type = STORE_OP_GET_PREFIX, .key = q->keys.bq, .key_len = strlen(q->keys.bq)},
        {.type = STORE_OP_GET, .key = q->keys.bq_seq, .key_len = strlen(q->keys.bq_seq)},
        {.type = STORE_OP_GET, .key = q->keys.state_seq, .key_len = strlen(q->keys.state_seq)},
    };
    struct store_follow_params p = {.prefix = q->keys.eq, .read_ops = ops, .n_read_ops = ELEMENTSOF(ops)};
    c->follow = store_follow_free(c->follow);
    pending_clear(c);
    if (c->writer)
        c->writer->reset(q, c->writer_userdata); /* it reads its part again */
    int r = store_follow(q->store, &p, &consumer_follow_ops, q, &c->follow);
    if (r < 0) {
        if (!queue_store_usable(q, r))
            eq_consumer_fail(q, -ECANCELED);
        else
            consumer_schedule_reload(q, r);
        return;
    }
    c->loading = true;
}

static void consumer_batch_done(struct queue *q, struct call *k, int error, const store_result *r);

/* Sends b, the consumer's batch. */
static void consumer_send(struct queue *q, struct batch *b) {
    struct consumer *c = &q->consumer;
    store_compare cmps[2];
    size_t n_cmps = 0, n_ops = 0;
    if (c->has_guard)
        cmps[n_cmps++] = c->guard;
    cmps[n_cmps++] = (store_compare){.key = q->keys.bq_seq,
                                     .key_len = strlen(q->keys.bq_seq),
                                     .target = STORE_CMP_MOD,
                                     .result = STORE_CMP_EQUAL,
                                     .number = c->seq_mod};
    /* Tells a deposed coordinator from a moved bq-seq. */
    store_op failure[2];
    size_t n_failure = 0;
    if (c->has_guard)
        failure[n_failure++] = (store_op){.type = STORE_OP_GET, .key = c->guard.key, .key_len = c->guard.key_len};
    failure[n_failure++] = (store_op){.type = STORE_OP_GET, .key = q->keys.bq_seq, .key_len = strlen(q->keys.bq_seq)};

    int r = eq_batch_ops(q, b, &n_ops);
    store_txn txn = {.compares = cmps,
                     .n_compares = n_cmps,
                     .success = b->ops,
                     .n_success = n_ops,
                     .failure = failure,
                     .n_failure = n_failure};
    struct call *k = r < 0 ? NULL : queue_call_new(q, consumer_batch_done, c->gen, b);
    r = r < 0 ? r : k ? store_transaction(q->store, &txn, queue_on_call, k) : -ENOMEM;
    if (r < 0) {
        queue_call_drop(k);
        eq_batch_drop(q, b);
        if (!queue_store_usable(q, r))
            eq_consumer_fail(q, -ECANCELED);
        else {
            log_warning_errno(r, "Failed to send a batch of the event queue: %m");
            consumer_schedule_reload(q, r);
        }
        return;
    }
    c->batch = b;
}

/* Builds the next batch from the pending entries and sends it. */
static void consumer_kick(struct queue *q) {
    struct consumer *c = &q->consumer;
    if (!c->running || q->closing || c->loading || c->batch)
        return;
    if (c->reload) {
        consumer_load(q);
        return;
    }
    if (LIST_IS_EMPTY(&c->pending))
        return;
    if (c->writer && !c->writer->ready(q, c->writer_userdata))
        return; /* it calls eq_consumer_kick() when it is */

    struct batch *b = calloc(1, sizeof(*b));
    if (!c->evs)
        c->evs = calloc(QUEUE_ENTRY_EVENTS_MAX, sizeof(*c->evs));
    if (!b || !c->evs) {
        free(b);
        consumer_schedule_reload(q, -ENOMEM);
        return;
    }
    int r = 0;
    while (!LIST_IS_EMPTY(&c->pending)) {
        r = eq_batch_take(q, b);
        if (r == -ECANCELED) {
            eq_batch_drop(q, b); /* stopped from inside decide */
            return;
        }
        if (r == -EAGAIN) {
            /* Not now: keep the entry at the head, send what we have, retry later. */
            uv_timer_start(&q->consumer_timer, on_consumer_timer, queue_backoff_next(&c->backoff_msec), 0);
            r = 0;
            break;
        }
        if (r <= 0)
            break;
    }
    if (r < 0) {
        eq_batch_drop(q, b);
        consumer_schedule_reload(q, r);
        return;
    }
    if (b->n_entries == 0 && !b->partial) {
        eq_batch_drop(q, b);
        return;
    }
    consumer_send(q, b);
}

static void consumer_batch_done(struct queue *q, struct call *k, int error, const store_result *r) {
    struct consumer *c = &q->consumer;
    struct batch *b = k->data;
    if (q->closing || k->gen != c->gen) {
        eq_batch_free(b);
        return;
    }
    c->batch = NULL;
    if (!queue_store_usable(q, error)) {
        eq_batch_drop(q, b);
        eq_consumer_fail(q, -ECANCELED);
        return;
    }
    if (error < 0) {
        /* It may or may not have been applied: read the truth back. */
        log_warning_errno(error, "A batch of the event queue failed, reading it again: %m");
        eq_batch_drop(q, b);
        consumer_schedule_reload(q, error);
        return;
    }
    if (!r->succeeded) {
        const store_kv *guard_kv = NULL;
        for (size_t i = 0; c->has_guard && i < r->n_kvs; i++)
            if (r->kvs[i].key_len == c->guard.key_len && memcmp(r->kvs[i].key, c->guard.key, c->guard.key_len) == 0)
                guard_kv = &r->kvs[i];
        eq_batch_drop(q, b);
        if (c->has_guard && !store_compare_holds(&c->guard, guard_kv)) {
            log_warning("The event queue's guard failed: no longer the coordinator");
            eq_consumer_fail(q, -EPERM);
        } else {
            log_notice("bq-seq moved under the event queue's consumer, reading it again");
            consumer_schedule_reload(q, 0);
        }
        return;
    }

    /* Committed: the new states go to state/ behind it. */
    if (b->writer_used)
        c->writer->done(q, true, c->writer_userdata);
    if (b->partial && c->pending.first == b->partial) {
        /* The entry keeps its place with what remains of it. */
        store_kv kv = {.key = b->partial->key,
                       .key_len = b->partial->key_len,
                       .value = b->rest,
                       .value_len = strlen(b->rest),
                       .create_revision = b->partial->revision};
        struct pending *rest = eq_batch_pending_new(&kv);
        if (!rest) {
            eq_batch_free(b);
            consumer_schedule_reload(q, -ENOMEM);
            return;
        }
        LIST_REMOVE(pending, &c->pending, b->partial);
        free(b->partial);
        LIST_PREPEND(pending, &c->pending, rest);
    }
    c->seq += b->n_pubs;
    if (b->n_pubs > 0)
        c->seq_mod = r->revision;
    for (size_t i = 0; i < b->n_pubs; i++)
        if (queue_obj_put(&c->cp.dirty, b->pubs[i].object, b->pubs[i].state, b->pubs[i].seq, 0,
                          TAKE_PTR(b->pubs[i].text)) < 0)
            log_warning("Out of memory recording the state of '%s'", b->pubs[i].object);
    q->stats.consumed += b->n_events;
    q->stats.duplicates += b->n_duplicates;
    q->stats.dropped += b->n_dropped;
    q->stats.published += b->n_pubs;
    q->stats.consumer_txns++;
    c->backoff_msec = 0;
    eq_batch_free(b);
    queue_checkpoint_schedule(q);
    consumer_kick(q);
}

int eq_consumer_start(struct queue *q, const store_compare *guard, eq_decide_cb decide, queue_stopped_cb stopped,
                      void *userdata) {
    assert_return(q, -EINVAL);
    assert_return(!guard || (guard->key && guard->key_len > 0 && guard->key_len <= STORE_KEY_MAX), -EINVAL);
    assert_return(!guard || guard->target != STORE_CMP_VALUE || guard->value || guard->value_len == 0, -EINVAL);
    if (q->closing || q->store_gone)
        return -ECANCELED;
    struct consumer *c = &q->consumer;
    if (c->running)
        return -EBUSY;

    char *key = NULL, *value = NULL;
    if (guard) {
        key = malloc(guard->key_len + 1);
        value = malloc(guard->value_len + 1);
        if (!key || !value) {
            free(key);
            free(value);
            return -ENOMEM;
        }
        memcpy(key, guard->key, guard->key_len);
        key[guard->key_len] = '\0';
        if (guard->value_len)
            memcpy(value, guard->value, guard->value_len);
        value[guard->value_len] = '\0';
    }
    free(c->guard_key);
    free(c->guard_value);
    c->guard_key = key;
    c->guard_value = value;
    c->has_guard = guard != NULL;
    if (guard) {
        c->guard = *guard;
        c->guard.key = key;
        c->guard.value = value;
    }
    c->decide = decide;
    c->stopped = stopped;
    c->userdata = userdata;
    c->running = true;
    c->backoff_msec = 0;
    c->reload = true;
    consumer_kick(q); /* a failure here is retried by the timer, or ends in stopped */
    return 0;
}

void eq_consumer_set_expand(struct queue *q, eq_expand_cb expand) {
    if (q)
        q->consumer.expand = expand;
}

void eq_consumer_set_writer(struct queue *q, const struct eq_writer *w, void *userdata) {
    if (q) {
        q->consumer.writer = w;
        q->consumer.writer_userdata = userdata;
    }
}

void eq_consumer_kick(struct queue *q) {
    if (q && q->consumer.running)
        consumer_kick(q);
}

void eq_consumer_stop(struct queue *q) {
    if (q && q->consumer.running)
        eq_consumer_halt(q);
}

bool eq_consumer_running(const struct queue *q) {
    return q && q->consumer.running;
}
