/* SPDX-License-Identifier: MIT */
/*
 * What the files of the queue share (queue.h is the contract): the queue's
 * struct, its store calls and reference count, the object states, the keys
 * and values it keeps in the store, and the entry points of each role:
 *
 *   queue.c             the queue: new/free, calls, object states, stats
 *   queue-event.c       the events and their JSON (queue-event.h)
 *   queue-keys.c        every key under the cluster's prefix
 *   queue-value.c       the values: EQ and BQ entries, counters
 *   eq-append.c         eq_append() and its group commit
 *   eq-consumer.c       the consumer: load, watch, send batches
 *   eq-batch.c          the consumer's batches: decide, expand, writer, ops
 *   queue-checkpoint.c  the consumer's rounds of state/ writes
 *   bq-reader.c         the BQ reader and its offset
 *   bq-prune.c          bq_prune()
 */
#pragma once

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "hashmap.h"
#include "list.h"
#include "queue.h"
#include "store-follow.h"

#define QUEUE_PREFIX_MAX 512
#define QUEUE_RETRY_MIN_MSEC 100
#define QUEUE_RETRY_MAX_MSEC 2000

/* ---- keys (queue-keys.c): the one place that spells them ---- */

/* The fixed keys and prefixes under the cluster's prefix P, built once (queue.h has the layout). */
struct queue_keys {
    char *eq;             /* P eq/ */
    char *eq_node;        /* P eq/<this node>/ */
    char *bq;             /* P bq/ */
    char *bq_seq;         /* P bq-seq */
    char *delivered;      /* P bq-delivered/ */
    char *delivered_node; /* P bq-delivered/<this node> */
    char *state;          /* P state/ */
    char *state_seq;      /* P state-seq */
};

/* 0 or -ENOMEM (then nothing is left allocated). */
int queue_keys_init(struct queue_keys *k, const char *prefix, const char *node);
void queue_keys_done(struct queue_keys *k);
/* P eq/<this node>/<hlc> and P bq/<seq> into buf (snprintf: the length, also
 * when it does not fit; buf may be NULL with size 0 to get it). */
size_t queue_keys_eq_entry(const struct queue_keys *k, uint64_t hlc, char *buf, size_t size);
size_t queue_keys_bq_entry(const struct queue_keys *k, uint64_t seq, char *buf, size_t size);
/* The hlc of this node's EQ entry key, the seq of a BQ entry key: 0 or -EINVAL (not one). */
int queue_keys_eq_entry_parse(const struct queue_keys *k, const char *key, size_t key_len, uint64_t *ret_hlc);
int queue_keys_bq_entry_parse(const struct queue_keys *k, const char *key, size_t key_len, uint64_t *ret_seq);
/* P state/<object>, allocated: 0 or -ENOMEM. */
int queue_keys_state(const struct queue_keys *k, const char *object, char **ret);
/* Whether kv is P bq-delivered/<node>. */
bool queue_keys_is_delivered(const struct queue_keys *k, const store_kv *kv, const char *node);
/* Whether kv's key starts with prefix; whether it is key. */
bool queue_keys_match_prefix(const store_kv *kv, const char *prefix);
bool queue_keys_match(const store_kv *kv, const char *key);

/* ---- values (queue-value.c) ---- */

/* The compact, key-sorted text of ev, with "seq" when seq > 0.  Caller frees. */
int queue_value_event_dump(const struct queue_event *ev, uint64_t seq, char **ret);
/* A published event (BQ entry or state/ value) and its "seq" (0 if absent). */
int queue_value_published_parse(const char *buf, size_t len, struct queue_event *ev, uint64_t *ret_seq);
/* The events of an EQ entry, into evs (room for QUEUE_ENTRY_EVENTS_MAX): a
 * JSON array of 1 to QUEUE_ENTRY_EVENTS_MAX events, or one event object (as
 * an operator may write by hand).  An invalid event in an array gets kind
 * _QUEUE_KIND_MAX and the others are kept.  Returns how many, or -EINVAL. */
int queue_value_entry_parse(const char *buf, size_t len, struct queue_event *evs);
/* Events as an EQ entry's value, a JSON array: a[] then b[].  0, -EINVAL or -ENOMEM. */
int queue_value_entry_dump(const struct queue_event *a, size_t n_a, const struct queue_event *b, size_t n_b,
                           char **ret);
/* The "seq" of a published event, 0 if absent or invalid. */
uint64_t queue_value_event_seq(const json_t *o);
/* A BQ entry bq/<key_seq>: an array of published events whose seqs ascend
 * and end at key_seq (or, as written by hand, one event with seq key_seq).
 * Returns the JSON (caller decrefs) or NULL if it is not one. */
json_t *queue_value_bq_entry_load(const char *buf, size_t len, uint64_t key_seq);
/* A JSON integer >= 0, as bq-seq, state-seq and bq-delivered/<node> hold. */
int queue_value_counter_parse(const char *buf, size_t len, uint64_t *ret);
#define QUEUE_COUNTER_MAX HLC_DECIMAL_MAX
void queue_value_counter(uint64_t n, char buf[static QUEUE_COUNTER_MAX]);

/* ---- object states (queue.c) ---- */

/* An object's state, the value in a hashmap keyed by "kind:name". */
struct queue_obj {
    uint64_t seq; /* the BQ entry that set it; 0 if unknown */
    /* Not ONLINE: the BQ entry with which it left ONLINE, as far as this map saw (the first state it
     * recorded, if that was no ONLINE); 0 while ONLINE. */
    uint64_t down_seq;
    uint64_t hlc;  /* when that event happened; 0 if unknown */
    int64_t epoch; /* the epoch and lease that event carried: QUEUE_EPOCH_NONE, 0 if none */
    int64_t lease;
    int state;
    /* Only in the consumer's map of states not yet written to state/: */
    char *value;   /* the event as published (owned) */
    bool in_round; /* to be written before the round's state-seq */
};

struct queue_obj *queue_obj_find(const struct hashmap *m, const char *object);
/* Records a state unless a later one (greater seq) is known already; takes
 * value (may be NULL), freed if not kept.  0 or -ENOMEM. */
int queue_obj_put(struct hashmap *m, const char *object, int state, uint64_t seq, uint64_t hlc, char *value);
/* Records the state ev published at seq, with its time, epoch and lease. */
int queue_obj_set(struct hashmap *m, const char *object, const struct queue_event *ev, uint64_t seq);
void queue_obj_remove(struct hashmap *m, const char *object);
/* The greatest hlc of the states in m, 0 if none. */
uint64_t queue_obj_max_hlc(const struct hashmap *m);
void queue_obj_done(struct hashmap *m);
/* Records the state in a state/ value; -EINVAL (logged) or -ENOMEM. */
int queue_obj_apply_state_value(struct hashmap *m, const store_kv *kv);
/* Records the states a BQ entry published; with dirty, also the events after
 * state_seq, as published (not in state/ yet).  -EINVAL or -ENOMEM. */
int queue_obj_apply_bq_entry(struct hashmap *m, const store_kv *kv, const struct queue_keys *keys,
                             struct hashmap *dirty, uint64_t state_seq);

/* ---- the queue's parts ---- */

struct pending;
struct batch;
struct append_op;
struct append_txn;
struct prune_op;

typedef LIST_HEAD(struct pending) pending_list;
typedef LIST_HEAD(struct append_op) append_list;

/* The coordinator writes the published states to state/ behind the BQ, in
 * rounds: the objects changed since the last round, in transactions of
 * CHECKPOINT_PUTS, the last one with state-seq (the seq every state up to
 * which is in state/).  Pruning keeps the BQ after state-seq. */
struct checkpoint {
    struct hashmap dirty; /* published, not yet written (struct queue_obj, value set) */
    bool round, inflight;
    uint64_t round_seq; /* state-seq once the round's objects are written */
    size_t n_in_round;
    unsigned backoff_msec;
};

struct consumer {
    bool running, loading, reload;
    unsigned gen; /* bumped on every stop: older callbacks are ignored */
    store_compare guard;
    bool has_guard;
    char *guard_key, *guard_value;
    eq_decide_cb decide;
    eq_expand_cb expand;
    const struct eq_writer *writer;
    void *writer_userdata;
    queue_stopped_cb stopped;
    void *userdata;
    struct store_follow *follow; /* the EQ (and, read with it, state/, the BQ, bq-seq, state-seq) */
    pending_list pending;        /* the EQ entries not consumed yet, in EQ order */
    size_t n_pending;
    struct hashmap decided;  /* each object's last published state, as this consumer knows it */
    uint64_t seq;            /* the last seq published (bq-seq) */
    int64_t seq_mod;         /* bq-seq's mod revision as last read or written; 0: missing */
    struct batch *batch;     /* in flight */
    struct queue_event *evs; /* QUEUE_ENTRY_EVENTS_MAX, for parsing an entry */
    unsigned backoff_msec;
    struct checkpoint cp;
};

struct reader {
    bool running, loading;
    unsigned gen;
    bq_deliver_cb deliver;
    queue_stopped_cb stopped;
    void *userdata;
    bq_deliver_cb watch; /* bq_reader_watch() */
    void *watch_userdata;
    struct store_follow *follow; /* the BQ (and, read with it, this node's offset and state/) */
    uint64_t delivered;          /* kept across stop/start: never deliver a seq twice */
    uint64_t saved;              /* the offset in the store, as far as we know */
    uint64_t saved_at;           /* uv_now() of the last offset write sent */
    bool save_inflight;
    unsigned backoff_msec;
};

struct queue {
    uv_loop_t *loop;
    store *store;
    char *node;
    struct hlc own_clock;
    struct hlc *clock;
    struct queue_keys keys;

    /* Store calls in flight, callbacks in progress and open timers: the memory
     * is released when this drops to 0 after queue_free(). */
    unsigned refs;
    bool closing;
    bool store_gone; /* the store said -ECANCELED: never call it again */

    struct hashmap states; /* struct queue_obj, as the reader delivered them */
    struct queue_stats stats;
    struct consumer consumer;
    struct reader reader;
    append_list appends; /* eq_append() calls, in call order */
    size_t n_appends;
    struct append_txn *append_txn; /* NULL: none */
    struct prune_op *prune;
    uv_timer_t consumer_timer, reader_timer, append_timer, checkpoint_timer;
};

/* ---- store calls (queue.c) ---- */

/* One store call: holds a reference on the queue until its callback ends. */
struct call;
typedef void (*call_fn)(struct queue *q, struct call *k, int error, const store_result *r);

struct call {
    struct queue *q;
    call_fn done; /* runs from the store's callback; the call is freed after it */
    unsigned gen;
    void *data;
    uint64_t offset; /* an offset write: the offset written */
};

void queue_ref(struct queue *q);
void queue_unref(struct queue *q);
/* A call whose handler is done (NULL: out of memory); pass queue_on_call and
 * it to the store, or queue_call_drop() it if the store call fails. */
struct call *queue_call_new(struct queue *q, call_fn done, unsigned gen, void *data);
void queue_on_call(store *s, int error, const store_result *r, void *userdata);
void queue_call_drop(struct call *k);
/* Whether the store may still be called; records its -ECANCELED. */
bool queue_store_usable(struct queue *q, int error);
/* The next delay of a bounded exponential backoff (*msec 0: the first). */
unsigned queue_backoff_next(unsigned *msec);

/* ---- each role's entry points for the others ---- */

/* eq-consumer.c: stop without telling anyone; stop and tell (stopped callback). */
void eq_consumer_halt(struct queue *q);
void eq_consumer_fail(struct queue *q, int error);

/* eq-batch.c: the consumer's entries and batches. */
struct pending {
    LIST_FIELDS(struct pending, pending);
    int64_t revision;
    size_t key_len, value_len;
    char *key, *value; /* in data[], each NUL-terminated */
    char data[];
};

/* An event a batch publishes. */
struct pub {
    char *text; /* the event as published, with its seq */
    char *object;
    int state;
    uint64_t seq;
};

/* One transaction of the consumer: whole EQ entries, one BQ entry. */
struct batch {
    pending_list entries; /* consumed, in order; deleted by this batch */
    size_t n_entries, n_events;
    struct pub *pubs; /* seqs consumer.seq + 1 ... + n_pubs */
    size_t n_pubs, cap_pubs, pub_bytes;
    uint64_t n_duplicates, n_dropped;
    size_t writer_ops;       /* ops the writer adds (its cost() so far) */
    bool writer_used;        /* the writer took events: tell it the outcome */
    struct pending *partial; /* the head entry, partly consumed: rewritten with rest */
    char *rest;              /* its events not published yet, a JSON array */
    store_op ops[STORE_TXN_OPS_MAX];
    char bq_key[STORE_KEY_MAX + 1];
    char *bq_value;
    char seq_value[QUEUE_COUNTER_MAX];
};

/* An EQ entry as read from the store (NULL: out of memory). */
struct pending *eq_batch_pending_new(const store_kv *kv);
void eq_batch_pending_clear(pending_list *l);
struct batch *eq_batch_free(struct batch *b);
/* Frees a batch that was not committed, telling the writer. */
struct batch *eq_batch_drop(struct queue *q, struct batch *b);
int eq_batch_take(struct queue *q, struct batch *b);
int eq_batch_ops(struct queue *q, struct batch *b, size_t *ret_n);

/* queue-checkpoint.c */
void queue_checkpoint_schedule(struct queue *q);
void queue_checkpoint_reset(struct queue *q);

/* bq-reader.c */
void bq_reader_halt(struct queue *q);

/* eq-append.c: every call in progress fails with -ECANCELED (queue_free()). */
void eq_append_cancel_all(struct queue *q);

/* bq-prune.c: a prune in progress fails with -ECANCELED (queue_free()). */
void bq_prune_cancel(struct queue *q);
