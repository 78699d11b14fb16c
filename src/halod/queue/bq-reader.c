/* SPDX-License-Identifier: MIT */
/*
 * The BQ reader: it follows the BQ (store-follow.h: read with its offset and
 * state/, then watched), delivers the entries after its offset in seq order,
 * and saves its offset behind the deliveries, one write at a time.
 */
#define LOG_AREA LOG_AREA_CLUSTER
#include <errno.h>
#include <inttypes.h>
#include <stdlib.h>
#include <string.h>

#include "log.h"
#include "macro.h"
#include "queue-internal.h"

/* A reader writes its offset at most this often: a restart delivers again at
 * most this much (delivery is at least once across restarts). */
#define OFFSET_SAVE_MSEC 200

static void reader_load(struct queue *q);
static void reader_save(struct queue *q);

void bq_reader_halt(struct queue *q) {
    struct reader *rd = &q->reader;
    rd->running = rd->loading = false;
    rd->gen++;
    rd->follow = store_follow_free(rd->follow);
}

static void reader_fail(struct queue *q, int error) {
    struct reader *rd = &q->reader;
    bq_reader_halt(q);
    if (rd->stopped && !q->closing)
        rd->stopped(q, error, rd->userdata);
}

static void on_reader_timer(uv_timer_t *t) {
    struct queue *q = t->data;
    queue_ref(q);
    if (!q->closing) {
        if (q->reader.running && !q->reader.follow)
            reader_load(q);
        reader_save(q);
    }
    queue_unref(q);
}

static void reader_retry_later(struct queue *q, unsigned *backoff) {
    if (!q->closing && !q->store_gone && !uv_is_active((uv_handle_t *)&q->reader_timer))
        uv_timer_start(&q->reader_timer, on_reader_timer, queue_backoff_next(backoff), 0);
}

/* Delivers the events of one BQ entry after the last delivered; returns
 * false if the reader was stopped by the callback. */
static bool reader_deliver(struct queue *q, unsigned gen, const store_kv *kv) {
    struct reader *rd = &q->reader;
    uint64_t key_seq;

    if (queue_keys_bq_entry_parse(&q->keys, kv->key, kv->key_len, &key_seq) < 0 || key_seq == 0) {
        log_warning("Ignoring the unexpected key '%s' in the broadcast queue", kv->key);
        return true;
    }
    if (key_seq <= rd->delivered)
        return true; /* delivered already (a rewrite, or read at start and then seen again) */
    json_t *j = queue_value_bq_entry_load(kv->value, kv->value_len, key_seq);
    if (!j) {
        log_warning("Skipping the invalid broadcast queue entry '%s'", kv->key);
        rd->delivered = key_seq;
        return true;
    }
    bool going = true;
    for (size_t i = 0; i < json_array_size(j) && going; i++) {
        const json_t *o = json_array_get(j, i);
        uint64_t seq = queue_value_event_seq(o);
        struct queue_event ev;
        char object[QUEUE_OBJECT_MAX];
        if (seq <= rd->delivered)
            continue;
        if (seq > rd->delivered + 1)
            log_warning("Broadcast queue entries %" PRIu64 "-%" PRIu64 " were pruned before node '%s' read them",
                        rd->delivered + 1, seq - 1, q->node);
        rd->delivered = seq;
        if (queue_event_from_json(o, &ev) < 0) {
            log_warning("Skipping the invalid event %" PRIu64 " of the broadcast queue", seq);
            continue;
        }
        (void)queue_event_object(&ev, object);
        /* A received timestamp: this node's next events come after it. */
        if (ev.hlc)
            (void)hlc_update(q->clock, ev.hlc, NULL);
        if (queue_obj_set(&q->states, object, &ev, seq) < 0)
            log_warning("Out of memory recording the state of '%s'", object);
        q->stats.delivered++;
        if (rd->watch)
            rd->watch(q, seq, &ev, rd->watch_userdata);
        if (rd->deliver)
            rd->deliver(q, seq, &ev, rd->userdata);
        going = !q->closing && rd->gen == gen;
    }
    json_decref(j);
    return going;
}

static void on_reader_changed(struct store_follow *f, const store_event *ev, size_t n, void *userdata) {
    struct queue *q = userdata;
    struct reader *rd = &q->reader;
    queue_ref(q);
    unsigned gen = rd->gen;
    for (size_t i = 0; i < n; i++)
        if (ev[i].type == STORE_EVENT_PUT && !reader_deliver(q, gen, &ev[i].kv))
            break;
    reader_save(q);
    queue_unref(q);
}

/* The first read, or a read again after the watch fell behind the store's history. */
static void on_reader_loaded(struct store_follow *f, const store_result *r, void *userdata) {
    struct queue *q = userdata;
    struct reader *rd = &q->reader;
    if (q->closing)
        return;
    queue_ref(q);
    rd->loading = false;
    rd->backoff_msec = 0;

    /* The offset and the snapshot first, then the entries after the offset, in seq (key) order. */
    rd->saved = 0;
    for (size_t i = 0; i < r->n_kvs; i++) {
        const store_kv *kv = &r->kvs[i];
        if (queue_keys_match(kv, q->keys.delivered_node)) {
            uint64_t offset;
            if (queue_value_counter_parse(kv->value, kv->value_len, &offset) < 0)
                log_warning("Ignoring the invalid offset in '%s'", kv->key);
            else {
                rd->saved = offset;
                rd->delivered = MAX(rd->delivered, offset);
            }
        } else if ((queue_keys_match_prefix(kv, q->keys.state) &&
                    queue_obj_apply_state_value(&q->states, kv) == -ENOMEM) ||
                   (queue_keys_match_prefix(kv, q->keys.bq) &&
                    queue_obj_apply_bq_entry(&q->states, kv, &q->keys, NULL, 0) == -ENOMEM))
            /* state/ lags the BQ (state-seq): the snapshot is both. */
            log_warning("Out of memory reading the object states");
    }
    /* The snapshot's times are received ones too (one too far ahead is not merged). */
    (void)hlc_update(q->clock, queue_obj_max_hlc(&q->states), NULL);
    unsigned gen = rd->gen;
    for (size_t i = 0; i < r->n_kvs; i++)
        if (queue_keys_match_prefix(&r->kvs[i], q->keys.bq) && !reader_deliver(q, gen, &r->kvs[i]))
            break; /* stopped by the callback */
    reader_save(q);
    queue_unref(q);
}

/* The store is closing. */
static void on_reader_stopped(struct store_follow *f, int error, void *userdata) {
    (void)queue_store_usable(userdata, error);
    reader_fail(userdata, -ECANCELED);
}

static const struct store_follow_ops reader_follow_ops = {
    .loaded = on_reader_loaded,
    .changed = on_reader_changed,
    .stopped = on_reader_stopped,
};

static void reader_load(struct queue *q) {
    struct reader *rd = &q->reader;
    store_op ops[] = {
        {.type = STORE_OP_GET, .key = q->keys.delivered_node, .key_len = strlen(q->keys.delivered_node)},
        {.type = STORE_OP_GET_PREFIX, .key = q->keys.bq, .key_len = strlen(q->keys.bq)},
        {.type = STORE_OP_GET_PREFIX, .key = q->keys.state, .key_len = strlen(q->keys.state)},
    };
    struct store_follow_params p = {.prefix = q->keys.bq, .read_ops = ops, .n_read_ops = ELEMENTSOF(ops)};
    int r = store_follow(q->store, &p, &reader_follow_ops, q, &rd->follow);
    if (r < 0) {
        if (!queue_store_usable(q, r))
            reader_fail(q, -ECANCELED);
        else
            reader_retry_later(q, &rd->backoff_msec);
        return;
    }
    rd->loading = true;
}

static void offset_saved(struct queue *q, struct call *k, int error, const store_result *r) {
    struct reader *rd = &q->reader;
    uint64_t offset = k->offset;
    rd->save_inflight = false;
    if (!queue_store_usable(q, error))
        return;
    if (error < 0) {
        log_warning_errno(error, "Failed to save the broadcast queue offset of node '%s': %m", q->node);
        reader_retry_later(q, &rd->backoff_msec);
        return;
    }
    rd->saved = MAX(rd->saved, offset);
    q->stats.offset_writes++;
    reader_save(q); /* the latest, if more was delivered meanwhile */
}

/* Writes the offset if it moved, one write at a time and at most one per
 * OFFSET_SAVE_MSEC; the latest wins. */
static void reader_save(struct queue *q) {
    struct reader *rd = &q->reader;
    if (q->closing || q->store_gone || rd->save_inflight || rd->delivered <= rd->saved)
        return;
    uint64_t now = uv_now(q->loop);
    if (rd->saved_at && now < rd->saved_at + OFFSET_SAVE_MSEC) {
        if (!uv_is_active((uv_handle_t *)&q->reader_timer))
            uv_timer_start(&q->reader_timer, on_reader_timer, rd->saved_at + OFFSET_SAVE_MSEC - now, 0);
        return;
    }
    rd->saved_at = now;
    char value[QUEUE_COUNTER_MAX];
    queue_value_counter(rd->delivered, value);
    struct call *k = queue_call_new(q, offset_saved, rd->gen, NULL);
    if (k)
        k->offset = rd->delivered;
    int r = k ? store_put(q->store, q->keys.delivered_node, value, strlen(value), 0, queue_on_call, k) : -ENOMEM;
    if (r < 0) {
        queue_call_drop(k);
        if (queue_store_usable(q, r))
            reader_retry_later(q, &rd->backoff_msec);
        return;
    }
    rd->save_inflight = true;
}

int bq_reader_start(struct queue *q, bq_deliver_cb deliver, queue_stopped_cb stopped, void *userdata) {
    assert_return(q, -EINVAL);
    if (q->closing || q->store_gone)
        return -ECANCELED;
    struct reader *rd = &q->reader;
    if (rd->running)
        return -EBUSY;
    rd->deliver = deliver;
    rd->stopped = stopped;
    rd->userdata = userdata;
    rd->running = true;
    rd->backoff_msec = 0;
    reader_load(q);
    return 0;
}

void bq_reader_watch(struct queue *q, bq_deliver_cb cb, void *userdata) {
    if (q) {
        q->reader.watch = cb;
        q->reader.watch_userdata = userdata;
    }
}

void bq_reader_stop(struct queue *q) {
    if (q && q->reader.running)
        bq_reader_halt(q);
}

uint64_t bq_reader_delivered(const struct queue *q) {
    return q ? q->reader.delivered : 0;
}
