/* SPDX-License-Identifier: MIT */
/*
 * The queue object of the event and broadcast queues (queue.h): creation and
 * freeing, the store calls and the reference count that outlive
 * queue_free(), the object states, the counters.  Each role has its file
 * (queue-internal.h lists them).
 */
#define LOG_AREA LOG_AREA_CLUSTER
#include <assert.h>
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "log.h"
#include "macro.h"
#include "queue-internal.h"

/* ---- object states ---- */

static void queue_obj_free(void *p) {
    struct queue_obj *o = p;
    if (o)
        free(o->value);
    free(o);
}

struct queue_obj *queue_obj_find(const struct hashmap *m, const char *object) {
    return hashmap_get(m, object);
}

int queue_obj_put(struct hashmap *m, const char *object, int state, uint64_t seq, uint64_t hlc, char *value) {
    struct queue_obj *o = hashmap_get(m, object);
    if (o) {
        if (seq >= o->seq) {
            if (state == QUEUE_HA_ONLINE)
                o->down_seq = 0;
            else if (o->state == QUEUE_HA_ONLINE || o->down_seq == 0)
                o->down_seq = seq; /* it leaves ONLINE here */
            o->state = state;
            o->seq = seq;
            o->hlc = hlc;
            free(o->value);
            o->value = value;
        } else
            free(value);
        return 0;
    }
    o = malloc(sizeof(*o));
    if (!o) {
        free(value);
        return -ENOMEM;
    }
    *o = (struct queue_obj){.seq = seq,
                            .down_seq = state == QUEUE_HA_ONLINE ? 0 : seq, /* its history before is not known */
                            .hlc = hlc,
                            .epoch = QUEUE_EPOCH_NONE,
                            .state = state,
                            .value = value};
    if (hashmap_put(m, object, o) < 0) {
        queue_obj_free(o);
        return -ENOMEM;
    }
    return 0;
}

int queue_obj_set(struct hashmap *m, const char *object, const struct queue_event *ev, uint64_t seq) {
    int r = queue_obj_put(m, object, (int)ev->state, seq, ev->hlc, NULL);
    struct queue_obj *o = r < 0 ? NULL : hashmap_get(m, object);
    if (o && o->seq == seq) {
        o->epoch = ev->epoch;
        o->lease = ev->lease;
    }
    return r;
}

void queue_obj_remove(struct hashmap *m, const char *object) {
    queue_obj_free(hashmap_remove(m, object));
}

uint64_t queue_obj_max_hlc(const struct hashmap *m) {
    struct hashmap_iter i = {0};
    const char *object;
    void *v;
    uint64_t max = 0;
    while (hashmap_iterate(m, &i, &object, &v))
        max = MAX(max, ((const struct queue_obj *)v)->hlc);
    return max;
}

void queue_obj_done(struct hashmap *m) {
    hashmap_done(m, queue_obj_free);
}

int queue_obj_apply_state_value(struct hashmap *m, const store_kv *kv) {
    struct queue_event ev;
    uint64_t seq;
    char object[QUEUE_OBJECT_MAX];
    if (queue_value_published_parse(kv->value, kv->value_len, &ev, &seq) < 0) {
        log_warning("Ignoring the invalid state value of '%.*s'", (int)kv->key_len, kv->key);
        return -EINVAL;
    }
    (void)queue_event_object(&ev, object);
    return queue_obj_set(m, object, &ev, seq);
}

int queue_obj_apply_bq_entry(struct hashmap *m, const store_kv *kv, const struct queue_keys *keys,
                             struct hashmap *dirty, uint64_t state_seq) {
    uint64_t key_seq;
    json_t *j;
    int r = 0;
    if (queue_keys_bq_entry_parse(keys, kv->key, kv->key_len, &key_seq) < 0 ||
        !(j = queue_value_bq_entry_load(kv->value, kv->value_len, key_seq)))
        return -EINVAL;
    for (size_t i = 0; i < json_array_size(j) && r != -ENOMEM; i++) {
        struct queue_event ev;
        char object[QUEUE_OBJECT_MAX];
        const json_t *o = json_array_get(j, i);
        if (queue_event_from_json(o, &ev) < 0)
            continue;
        (void)queue_event_object(&ev, object);
        uint64_t seq = queue_value_event_seq(o);
        r = queue_obj_set(m, object, &ev, seq);
        if (r >= 0 && dirty && seq > state_seq) {
            char *text = json_dumps(o, JSON_COMPACT | JSON_SORT_KEYS);
            r = text ? queue_obj_put(dirty, object, (int)ev.state, seq, ev.hlc, text) : -ENOMEM;
        }
    }
    json_decref(j);
    return r;
}

/* ---- the queue and its calls ---- */

static void queue_destroy(struct queue *q) {
    queue_obj_done(&q->states);
    queue_obj_done(&q->consumer.decided);
    queue_obj_done(&q->consumer.cp.dirty);
    free(q->consumer.evs);
    free(q->consumer.guard_key);
    free(q->consumer.guard_value);
    free(q->node);
    queue_keys_done(&q->keys);
    free(q);
}

void queue_ref(struct queue *q) {
    q->refs++;
}

void queue_unref(struct queue *q) {
    assert(q->refs > 0);
    if (--q->refs == 0 && q->closing)
        queue_destroy(q);
}

struct call *queue_call_new(struct queue *q, call_fn done, unsigned gen, void *data) {
    struct call *k = malloc(sizeof(*k));
    if (!k)
        return NULL;
    *k = (struct call){.q = q, .done = done, .gen = gen, .data = data};
    queue_ref(q);
    return k;
}

/* The store callback of every call: its handler, then the call's reference goes. */
void queue_on_call(store *s, int error, const store_result *r, void *userdata) {
    struct call *k = userdata;
    struct queue *q = k->q;
    k->done(q, k, error, r);
    free(k);
    queue_unref(q);
}

/* For a call that could not be made: its callback will not run. */
void queue_call_drop(struct call *k) {
    if (k) {
        struct queue *q = k->q;
        free(k);
        queue_unref(q);
    }
}

bool queue_store_usable(struct queue *q, int error) {
    if (error == -ECANCELED)
        q->store_gone = true;
    return !q->store_gone && !q->closing;
}

unsigned queue_backoff_next(unsigned *msec) {
    unsigned now = *msec ? *msec : QUEUE_RETRY_MIN_MSEC;
    *msec = MIN(now * 2, QUEUE_RETRY_MAX_MSEC);
    return now;
}

static void on_timer_closed(uv_handle_t *h) {
    queue_unref(h->data);
}

int queue_new(const struct queue_params *p, struct queue **ret) {
    assert_return(p && ret, -EINVAL);
    assert_return(p->loop && p->store && p->prefix, -EINVAL);
    assert_return(strlen(p->prefix) <= QUEUE_PREFIX_MAX, -EINVAL);
    assert_return(queue_name_valid(p->node), -EINVAL);

    struct queue *q = calloc(1, sizeof(*q));
    if (!q)
        return -ENOMEM;
    q->loop = p->loop;
    q->store = p->store;
    hlc_init(&q->own_clock, NULL, NULL);
    q->clock = p->clock ? p->clock : &q->own_clock;
    q->node = strdup(p->node);
    if (!q->node || queue_keys_init(&q->keys, p->prefix, p->node) < 0) {
        queue_destroy(q);
        return -ENOMEM;
    }
    uv_timer_t *timers[] = {&q->consumer_timer, &q->reader_timer, &q->append_timer, &q->checkpoint_timer};
    for (size_t i = 0; i < ELEMENTSOF(timers); i++) {
        (void)uv_timer_init(q->loop, timers[i]);
        timers[i]->data = q;
        queue_ref(q); /* released when the timer has closed */
    }
    *ret = q;
    return 0;
}

int queue_state_of(const struct queue *q, const char *object, struct queue_state *ret) {
    assert_return(q && object && ret, -EINVAL);
    const struct queue_obj *o = queue_obj_find(&q->states, object);
    const struct queue_obj *d = queue_obj_find(&q->consumer.decided, object);
    if (d && (!o || d->seq > o->seq))
        o = d; /* decided by this node's consumer, not yet delivered here */
    if (!o)
        return -ENOENT;
    *ret = (struct queue_state){
        .state = o->state, .seq = o->seq, .down_seq = o->down_seq, .hlc = o->hlc, .epoch = o->epoch, .lease = o->lease};
    return 0;
}

int queue_state_info(const struct queue *q, const char *object, uint64_t *ret_seq, uint64_t *ret_hlc) {
    struct queue_state st = {.state = -ENOENT};
    int r = queue_state_of(q, object, &st);
    if (r < 0 && r != -ENOENT)
        return r;
    if (ret_seq)
        *ret_seq = st.seq;
    if (ret_hlc)
        *ret_hlc = st.hlc;
    return st.state;
}

int queue_state_get(const struct queue *q, const char *object) {
    return queue_state_info(q, object, NULL, NULL);
}

void queue_state_foreach(const struct queue *q, queue_state_cb cb, void *userdata) {
    struct hashmap_iter i = {0};
    const char *object;
    void *v;
    while (q && hashmap_iterate(&q->states, &i, &object, &v)) {
        const struct queue_obj *o = v;
        cb(object, (enum queue_ha_state)o->state, o->seq, userdata);
    }
}

void queue_get_stats(const struct queue *q, struct queue_stats *ret) {
    *ret = q->stats;
    ret->last_seq = q->consumer.seq;
}

struct queue *queue_free(struct queue *q) {
    if (!q || q->closing)
        return NULL;
    queue_ref(q); /* callbacks below may not free it under us */
    q->closing = true;
    eq_consumer_halt(q);
    bq_reader_halt(q);
    /* The callbacks of calls in progress run now, with -ECANCELED; a
     * transaction in flight is freed by its store callback. */
    eq_append_cancel_all(q);
    bq_prune_cancel(q);

    uv_close((uv_handle_t *)&q->consumer_timer, on_timer_closed);
    uv_close((uv_handle_t *)&q->reader_timer, on_timer_closed);
    uv_close((uv_handle_t *)&q->append_timer, on_timer_closed);
    uv_close((uv_handle_t *)&q->checkpoint_timer, on_timer_closed);
    queue_unref(q);
    return NULL;
}
