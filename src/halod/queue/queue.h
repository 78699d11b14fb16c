/* SPDX-License-Identifier: MIT */
/*
 * The event queue (EQ) and the broadcast queue (BQ) of the cluster, kept in
 * the store (seed 003: Hare's EQ/BQ and recovery coordinator).
 *
 * Any halod appends HA events (an object failed, came back, ...) to the EQ.
 * The coordinator alone consumes the EQ in order, drops duplicates (the same
 * failure reported by several nodes), decides the new HA state of each object
 * and publishes its decisions on the BQ, a totally ordered log that every
 * halod reads in order.  Each halod records how far it has read, so that the
 * coordinator can prune what everyone has read.
 *
 * Key layout, under the caller's prefix P ("/halo/<cluster>/"); every value is
 * compact JSON with sorted keys, readable with `etcdctl get`:
 *
 *   P eq/<node>/<hlc>      an EQ entry appended by <node>; <hlc> is a hybrid
 *                          logical clock timestamp of that node, 20 decimal
 *                          digits, zero-padded.  The value is a JSON array of
 *                          1 to QUEUE_ENTRY_EVENTS_MAX events (queue-event.h); one
 *                          event object alone is read as an entry of one.
 *                          Deleted by the coordinator once consumed.
 *   P bq/<seq>             a BQ entry: the events one batch of the consumer
 *                          published, a JSON array in seq order, each event as
 *                          published (decided state, the consumer's hlc) with
 *                          "seq"; <seq> is the last one's (1, 2, ...; 20
 *                          digits, zero-padded).
 *                          Deleted by bq_prune() once every live node has read
 *                          it and state-seq has passed it.
 *   P bq-seq               the last seq published, a JSON integer.  Written in
 *                          the same transaction as the entries, so a new
 *                          coordinator continues the numbering even when
 *                          pruning has emptied bq/.
 *   P bq-delivered/<node>  the last seq <node> has delivered, a JSON integer.
 *   P state/<kind>:<name>  the object's state as last published: the event
 *                          that set it, with the decided state and its "seq".
 *                          Written by the consumer behind the BQ (below).
 *   P state-seq            every state published up to this seq is in state/.
 *
 * An event is described in queue-event.h.
 *
 * Order and guarantees:
 *
 *  - eq_append() calls are appended in call order: one transaction at a time
 *    per queue, each taking the next events of the calls waiting (group
 *    commit) as entries of up to QUEUE_ENTRY_EVENTS_MAX events.  The EQ's
 *    order is the store's revision order, and a node's events keep the order
 *    of its calls even when a transaction is retried.  Each key is created
 *    under a "create revision = 0" compare, so an entry is never overwritten,
 *    even by this node after a restart with its clock set back.
 *  - The consumer (the coordinator) reads the EQ from the store at start,
 *    then follows it with a watch.  It consumes whole entries in order, in
 *    batches: all that has arrived, up to what one transaction holds.  An
 *    event whose state is the object's current state is a duplicate and is
 *    dropped; the others go to the caller's decide callback, which returns
 *    the state to publish or "drop".  Per batch, one transaction deletes the
 *    consumed entries and writes one BQ entry and bq-seq.  It is guarded by
 *    the caller's compare (the coordinator passes "the leader key still has
 *    the create revision I won it at") and by "bq-seq has not changed since I
 *    read it", so a deposed coordinator writes nothing and two consumers can
 *    never publish the same seq; the consumer then stops with -EPERM.  One
 *    batch is in flight at a time.
 *  - Times (hlc.h): the consumer merges every event's hlc into the queue's
 *    clock and publishes each event at the clock's next timestamp, so the
 *    BQ's hlcs ascend in seq order whatever the reporters' clocks; at start
 *    it goes on from the greatest hlc published.  The reader merges the hlc
 *    of everything it reads, so this node's next appends come after it.
 *  - The consumer writes the published states to state/ behind the BQ, in
 *    rounds (the objects changed since the last round, each once, the last
 *    transaction with state-seq), under the same guard.  The current state of
 *    every object is state/ plus the BQ after state-seq: the consumer and the
 *    reader read both at start, and bq_prune() keeps the BQ after state-seq.
 *  - The BQ reader reads its offset, state/ and the BQ at start,
 *    delivers the entries after its offset in seq order, then follows the BQ
 *    with a watch.  It never delivers a seq twice in one process (across
 *    stop/start too).  It saves its offset after delivering, with at most one
 *    write in flight (the latest offset is written when it completes), so
 *    after a crash or restart delivery resumes after the saved offset: an
 *    entry delivered but not yet saved is delivered again.  Delivery is
 *    therefore at least once across restarts, exactly once within a process.
 *    A node that starts with no offset (a new node) gets the state/ snapshot
 *    and every entry still in the BQ.
 *  - bq_prune() deletes the entries every listed node has delivered; a node
 *    listed without an offset blocks pruning.  A node left out of the list
 *    (it left the cluster) may find a gap when it comes back: it is logged,
 *    and the states it reads at start (state/ and the BQ) are complete.
 *
 * Errors on the store paths: -ECANCELED (the store is closing) stops
 * everything for good; -ESTALE (a watch fell behind the store's history)
 * makes the consumer or reader read everything again and go on; other errors
 * are logged and retried with a bounded backoff.  Nothing blocks the loop.
 *
 * Callbacks (decide, deliver, stopped, append and prune callbacks) may call
 * any function of this module, queue_free() included.
 */
#pragma once

#include <jansson.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <uv.h>

#include "hlc.h"
#include "queue-event.h"
#include "store.h"

/* eq_append() calls in flight at once. */
#define QUEUE_APPENDS_MAX 64
/* Events in one EQ entry: its state puts and delete fit one transaction. */
#define QUEUE_ENTRY_EVENTS_MAX 100

struct queue;

/* ---- the queue ---- */

struct queue_params {
    uv_loop_t *loop;
    store *store;       /* must outlive the queue, or be freed first (see queue_free()) */
    const char *prefix; /* "/halo/<cluster>/", copied; at most 512 bytes */
    const char *node;   /* this node's name, copied */
    struct hlc *clock;  /* not owned; NULL: the queue's own on CLOCK_REALTIME */
};

/* Returns 0, -EINVAL or -ENOMEM. */
int queue_new(const struct queue_params *p, struct queue **ret);

/*
 * Stops the consumer and the reader; the callbacks of eq_append() and
 * bq_prune() calls still in progress run with -ECANCELED before it returns
 * (stopped callbacks do not run).  No callback runs after it returns.  The
 * memory is released once the store's callbacks of calls in flight have come
 * back and the queue's timers have closed: run the loop once more.  Accepts
 * NULL; returns NULL.  The store may be freed before or after.
 */
struct queue *queue_free(struct queue *q);

/* The HA state last published for object ("kind:name"), as delivered by the
 * reader or decided by the consumer of this queue: an enum queue_ha_state,
 * -ENOENT if none is known, -EINVAL. */
int queue_state_get(const struct queue *q, const char *object);
/* The same, with the seq of the BQ entry that set it and its HLC time (0 if
 * unknown). */
int queue_state_info(const struct queue *q, const char *object, uint64_t *ret_seq, uint64_t *ret_hlc);

/* An object's published state and what the event that set it carried. */
struct queue_state {
    int state;    /* an enum queue_ha_state */
    uint64_t seq; /* the BQ entry that set it, 0 if unknown */
    /* Not ONLINE: the BQ entry with which it left ONLINE (its data is no newer than that), or a later
     * one when that is not known; 0 while ONLINE. */
    uint64_t down_seq;
    uint64_t hlc;  /* its time, 0 if unknown */
    int64_t epoch; /* the epoch it carried (its pool process's), QUEUE_EPOCH_NONE if none */
    int64_t lease; /* the lease it carried (a node's incarnation), 0 if none */
};
/* The same as queue_state_info(), with the event's epoch and lease: 0 and
 * *ret, -ENOENT if no state is known, -EINVAL. */
int queue_state_of(const struct queue *q, const char *object, struct queue_state *ret);

/* Calls cb for every object whose state is known (in no particular order);
 * cb must not change the queue. */
typedef void (*queue_state_cb)(const char *object, enum queue_ha_state state, uint64_t seq, void *userdata);
void queue_state_foreach(const struct queue *q, queue_state_cb cb, void *userdata);

/* ---- the event queue ---- */

typedef void (*eq_append_cb)(struct queue *q, int error, size_t n_appended, void *userdata);

/*
 * Appends n events (n >= 1) to the EQ under eq/<this node>/.  Each event is
 * validated; an empty node becomes this queue's node, a zero hlc becomes
 * hlc_now(), a non-zero one is merged into the clock (hlc_update()).  Events
 * are copied.  Returns 0, or -EINVAL (an invalid event, n == 0), -ERANGE (an
 * hlc too far ahead), -EBUSY (QUEUE_APPENDS_MAX calls in progress),
 * -ECANCELED (the store is closing), -ENOMEM; then nothing was appended and
 * cb does not run.  Otherwise cb (may be NULL) runs once: 0 when all are
 * appended, or an error with how many were (a prefix of events, whole
 * transactions).  Transient store errors are retried a few times first.
 */
int eq_append(struct queue *q, const struct queue_event *events, size_t n, eq_append_cb cb, void *userdata);

/*
 * The coordinator's decision for one event that is not a duplicate: current is
 * the object's state (an enum queue_ha_state) or -ENOENT.  Return 1 and set
 * *ret_state to publish a state (if it equals current, nothing is published),
 * 0 to drop the event, or a negative errno for a transient failure: the event
 * is kept and offered again later (with the events of its entry before it:
 * an entry is consumed whole, so decide may see an event more than once).
 */
typedef int (*eq_decide_cb)(struct queue *q, const struct queue_event *ev, int current, enum queue_ha_state *ret_state,
                            void *userdata);

/* The consumer or the reader stopped by itself: -EPERM (the consumer's guard
 * failed: deposed) or -ECANCELED (the store is closing). */
typedef void (*queue_stopped_cb)(struct queue *q, int error, void *userdata);

/*
 * Starts consuming the EQ.  guard (copied; NULL for none) is a compare added
 * to every batch's transaction.  decide NULL publishes each event's own
 * state.  stopped may be NULL.  Returns 0, -EBUSY (already running),
 * -EINVAL, -ECANCELED, -ENOMEM.
 */
int eq_consumer_start(struct queue *q, const store_compare *guard, eq_decide_cb decide, queue_stopped_cb stopped,
                      void *userdata);
/*
 * The events a published one implies (failure expansion): writes at most max
 * into out and returns how many there are (called with max 0 to count).  Each
 * is published right after ev, in the same BQ entry, if decide accepts it and
 * it changes its object's state; derived events are not expanded again.
 */
typedef size_t (*eq_expand_cb)(struct queue *q, const struct queue_event *ev, struct queue_event *out, size_t max,
                               void *userdata);
/* Sets the consumer's expansion (NULL: none); the consumer's userdata is passed. */
void eq_consumer_set_expand(struct queue *q, eq_expand_cb expand);

/*
 * More writes in the consumer's transactions, atomic with the BQ entry that
 * publishes their events (the recovery protocol's epochs and failure
 * vectors, failvec.h).  Published events are offered one by one: cost()
 * says how many ops adding ev to the batch being built would take (it may
 * set ev->epoch, and changes nothing else); if they fit, the event is
 * published and add() takes it (json: the event as published).  ops() writes
 * the batch's ops (at most room; their memory is the writer's until done());
 * done() tells whether the batch committed.  reset(): the consumer reads the
 * store again, and so should the writer; until ready() is true the consumer
 * waits, and the writer calls eq_consumer_kick() when it is.  An EQ entry
 * whose events do not fit one transaction is consumed over several: what
 * remains of it is written back in its place.
 */
struct eq_writer {
    bool (*ready)(struct queue *q, void *userdata);
    size_t (*cost)(struct queue *q, struct queue_event *ev, void *userdata);
    void (*add)(struct queue *q, const struct queue_event *ev, uint64_t seq, const char *json, void *userdata);
    int (*ops)(struct queue *q, store_op *ops, size_t room, void *userdata);
    void (*done)(struct queue *q, bool committed, void *userdata);
    void (*reset)(struct queue *q, void *userdata);
};
void eq_consumer_set_writer(struct queue *q, const struct eq_writer *w, void *userdata);
/* The consumer looks at its pending entries again (a writer became ready). */
void eq_consumer_kick(struct queue *q);

/* Stops consuming; a batch in flight may still be applied in the store.  No
 * callback of the consumer runs after it.  Accepts a stopped consumer. */
void eq_consumer_stop(struct queue *q);
bool eq_consumer_running(const struct queue *q);

/* ---- the broadcast queue ---- */

typedef void (*bq_deliver_cb)(struct queue *q, uint64_t seq, const struct queue_event *ev, void *userdata);

/* Starts reading the BQ as this queue's node.  Returns 0, -EBUSY, -EINVAL,
 * -ECANCELED, -ENOMEM. */
int bq_reader_start(struct queue *q, bq_deliver_cb deliver, queue_stopped_cb stopped, void *userdata);
/* A second listener of the reader (NULL: none): called for every event the
 * reader delivers, once its state is recorded, before the deliver callback.
 * It must not stop the reader or free the queue. */
void bq_reader_watch(struct queue *q, bq_deliver_cb cb, void *userdata);
/* Stops delivering (an offset write in flight still completes).  Accepts a stopped reader. */
void bq_reader_stop(struct queue *q);
/* The last seq delivered (or read back as this node's offset), 0 if none. */
uint64_t bq_reader_delivered(const struct queue *q);

typedef void (*bq_prune_cb)(struct queue *q, int error, uint64_t n_deleted, void *userdata);

/*
 * Deletes the BQ entries that every node of live_nodes (copied) has
 * delivered and state-seq has passed, in transactions of at most STORE_TXN_OPS_MAX deletes.  Returns
 * 0, -EINVAL, -EBUSY (a prune is in progress), -ECANCELED, -ENOMEM; then cb
 * does not run.  Otherwise cb (may be NULL) runs once with the number of
 * entries deleted, and an error if one stopped it.
 */
int bq_prune(struct queue *q, const char *const *live_nodes, size_t n, bq_prune_cb cb, void *userdata);

/* ---- counters, for tests and metrics ---- */

struct queue_stats {
    uint64_t appended;      /* events appended by this queue */
    uint64_t append_txns;   /* successful append transactions */
    uint64_t consumed;      /* EQ events consumed (deleted) by the consumer */
    uint64_t duplicates;    /* of those, dropped as duplicates */
    uint64_t dropped;       /* of those, dropped by decide or as invalid */
    uint64_t published;     /* events published on the BQ */
    uint64_t consumer_txns; /* successful batch transactions */
    uint64_t delivered;     /* events delivered by the reader */
    uint64_t offset_writes; /* successful offset writes */
    uint64_t pruned;        /* BQ entries deleted by bq_prune() */
    uint64_t last_seq;      /* the consumer's last published seq */
    uint64_t checkpoints;   /* rounds of state/ writes completed by the consumer */
    uint64_t state_seq;     /* the state-seq the last of them wrote */
};

void queue_get_stats(const struct queue *q, struct queue_stats *ret);
