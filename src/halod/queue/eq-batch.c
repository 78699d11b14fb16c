/* SPDX-License-Identifier: MIT */
/*
 * The consumer's batches (eq-consumer.c sends them): the EQ entries one
 * transaction consumes, the decisions on their events and what they imply,
 * the writer's part, and the transaction's ops.
 */
#define LOG_AREA LOG_AREA_CLUSTER
#include <assert.h>
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "log.h"
#include "macro.h"
#include "queue-internal.h"

/* Events published by one consumer transaction, and the bytes of the BQ
 * entry (the state/ values repeat them). */
#define BATCH_EVENTS_MAX 2048
#define BATCH_BYTES (256 * 1024)
/* Ops of a batch besides the deletes and state puts: the BQ entry and bq-seq. */
#define BATCH_FIXED_OPS 2

struct pending *eq_batch_pending_new(const store_kv *kv) {
    struct pending *p = malloc(sizeof(*p) + kv->key_len + 1 + kv->value_len + 1);
    if (!p)
        return NULL;
    p->pending_next = p->pending_prev = NULL;
    /* EQ order: when the entry was appended (a rest rewritten by the consumer keeps its place). */
    p->revision = kv->create_revision ? kv->create_revision : kv->mod_revision;
    p->key_len = kv->key_len;
    p->value_len = kv->value_len;
    p->key = p->data;
    p->value = p->data + kv->key_len + 1;
    memcpy(p->key, kv->key, kv->key_len);
    p->key[kv->key_len] = '\0';
    if (kv->value_len)
        memcpy(p->value, kv->value, kv->value_len);
    p->value[kv->value_len] = '\0';
    return p;
}

void eq_batch_pending_clear(pending_list *l) {
    struct pending *p;
    while ((p = LIST_POP(pending, l)))
        free(p);
}

struct batch *eq_batch_free(struct batch *b) {
    if (!b)
        return NULL;
    eq_batch_pending_clear(&b->entries);
    free(b->rest);
    for (size_t i = 0; i < b->n_pubs; i++) {
        free(b->pubs[i].text);
        free(b->pubs[i].object);
    }
    free(b->pubs);
    free(b->bq_value);
    free(b);
    return NULL;
}

struct batch *eq_batch_drop(struct queue *q, struct batch *b) {
    struct consumer *c = &q->consumer;
    if (b && b->writer_used && c->writer)
        c->writer->done(q, false, c->writer_userdata);
    return eq_batch_free(b);
}

/* Adds a published event; takes text (NULL: out of memory). */
static int batch_push(struct batch *b, char *text, const char *object, int state, uint64_t seq) {
    char *o = text ? strdup(object) : NULL;
    if (!o) {
        free(text);
        return -ENOMEM;
    }
    if (b->n_pubs == b->cap_pubs) {
        size_t cap = b->cap_pubs ? b->cap_pubs * 2 : 64;
        struct pub *p = realloc(b->pubs, cap * sizeof(*p));
        if (!p) {
            free(text);
            free(o);
            return -ENOMEM;
        }
        b->pubs = p;
        b->cap_pubs = cap;
    }
    b->pubs[b->n_pubs++] = (struct pub){.text = text, .object = o, .state = state, .seq = seq};
    b->pub_bytes += strlen(text) + 1;
    return 0;
}

/* Moves the head of the pending entries into b. */
static void batch_consume_head(struct consumer *c, struct batch *b, size_t n_events) {
    struct pending *p = LIST_POP(pending, &c->pending);
    c->n_pending--;
    LIST_APPEND(pending, &b->entries, p);
    b->n_entries++;
    b->n_events += n_events;
}

enum { TAKE_DUPLICATE, TAKE_DROP, TAKE_PUBLISH };

/* Publishes one event in b (the next seq) and records its state, if its
 * writes fit the transaction: 1, 0 (full: nothing done), or -errno. */
static int batch_publish(struct queue *q, struct batch *b, struct queue_event *ev, const char *object) {
    struct consumer *c = &q->consumer;
    size_t cost = 0;
    if (c->writer) {
        int64_t epoch = ev->epoch;
        cost = c->writer->cost(q, ev, c->writer_userdata);
        if (b->n_entries + 1 + BATCH_FIXED_OPS + b->writer_ops + cost > STORE_TXN_OPS_MAX) {
            ev->epoch = epoch; /* it waits as it was reported */
            return 0;
        }
    }
    /* Published at the coordinator's time: its clock has merged the
     * reporter's (eq_batch_take()), so this is after the event as reported
     * and after every event published before it, whatever the reporters'
     * clocks: the BQ's HLCs ascend in seq order. */
    ev->hlc = hlc_now(q->clock);
    uint64_t seq = c->seq + b->n_pubs + 1;
    char *text = NULL;
    int r = queue_value_event_dump(ev, seq, &text);
    if (r < 0 || (r = batch_push(b, text, object, (int)ev->state, seq)) < 0 ||
        (r = queue_obj_set(&c->decided, object, ev, seq)) < 0)
        return r;
    if (c->writer) {
        c->writer->add(q, ev, seq, b->pubs[b->n_pubs - 1].text, c->writer_userdata);
        b->writer_ops += cost;
        b->writer_used = true;
    }
    return 1;
}

/* What a derived event does: 1 publish, 0 skip (a duplicate, or refused). */
static int derived_decide(struct queue *q, struct queue_event *d, char object[static QUEUE_OBJECT_MAX]) {
    struct consumer *c = &q->consumer;
    if (queue_event_validate(d, false) < 0 || queue_event_object(d, object) < 0)
        return 0;
    const struct queue_obj *o = queue_obj_find(&c->decided, object);
    int cur = o ? o->state : -ENOENT;
    if ((int)d->state == cur)
        return 0;
    enum queue_ha_state decided = d->state;
    if (c->decide && c->decide(q, d, cur, &decided, c->userdata) <= 0)
        return 0; /* refused, or cannot say now: a derived event is not retried */
    if ((unsigned)decided >= _QUEUE_HA_MAX || (int)decided == cur)
        return 0;
    d->state = decided;
    return 1;
}

/*
 * Adds the next EQ entry (the head of the pending ones) to b if it fits: its
 * delete, and its events on the BQ entry.  An entry always fits an empty
 * batch.  The decisions go into the consumer's map of states at once (a
 * failed batch reads everything again).  Returns 1 (taken), 0 (it does not
 * fit: send b first), -EAGAIN (decide failed for one of its events: nothing
 * changed, retry later), -ECANCELED (decide stopped the consumer), -ENOMEM.
 */
int eq_batch_take(struct queue *q, struct batch *b) {
    struct consumer *c = &q->consumer;
    struct pending *p = c->pending.first;
    struct queue_event *evs = c->evs;
    char objects[QUEUE_ENTRY_EVENTS_MAX][QUEUE_OBJECT_MAX];
    size_t first[QUEUE_ENTRY_EVENTS_MAX];  /* the event that first names the same object */
    int current[QUEUE_ENTRY_EVENTS_MAX];   /* by first: the object's state so far */
    int64_t lease[QUEUE_ENTRY_EVENTS_MAX]; /* by first: the lease its state carries (0: none) */
    unsigned char what[QUEUE_ENTRY_EVENTS_MAX];
    unsigned gen = c->gen;

    if (b->n_entries + 1 + BATCH_FIXED_OPS + b->writer_ops >= STORE_TXN_OPS_MAX)
        return 0;
    int n = queue_value_entry_parse(p->value, p->value_len, evs);
    if (n < 0) {
        log_warning("Dropping the invalid entry '%s' from the event queue", p->key);
        b->n_dropped++;
        batch_consume_head(c, b, 1);
        return 1;
    }
    if (b->n_entries > 0 &&
        (b->n_pubs + (size_t)n > BATCH_EVENTS_MAX || b->pub_bytes + p->value_len + 32 * (size_t)n > BATCH_BYTES))
        return 0;

    /* Decide every event first: a failure changes nothing. */
    for (size_t i = 0; i < (size_t)n; i++) {
        if (evs[i].kind == _QUEUE_KIND_MAX) {
            log_warning("Dropping an invalid event of '%s' from the event queue", p->key);
            what[i] = TAKE_DROP;
            continue;
        }
        /* A received timestamp: merged (one too far ahead is not, and the
         * event is published at this node's time). */
        if (evs[i].hlc && hlc_update(q->clock, evs[i].hlc, NULL) < 0)
            log_debug("The time of an event of '%s' is too far ahead of this node's clock", p->key);
        (void)queue_event_object(&evs[i], objects[i]);
        first[i] = i;
        for (size_t k = 0; k < i; k++)
            if (evs[k].kind != _QUEUE_KIND_MAX && streq(objects[k], objects[i])) {
                first[i] = first[k];
                break;
            }
        if (first[i] == i) {
            const struct queue_obj *o = queue_obj_find(&c->decided, objects[i]);
            current[i] = o ? o->state : -ENOENT;
            lease[i] = o ? o->lease : 0;
        }
        int cur = current[first[i]];
        /* The same state for another lease is a node's new incarnation, not a duplicate. */
        bool again = evs[i].lease > 0 && evs[i].lease != lease[first[i]];
        if ((int)evs[i].state == cur && !again) {
            what[i] = TAKE_DUPLICATE;
            continue;
        }
        enum queue_ha_state decided = evs[i].state;
        int d = 1;
        if (c->decide) {
            d = c->decide(q, &evs[i], cur, &decided, c->userdata);
            if (q->closing || c->gen != gen)
                return -ECANCELED;
        }
        if (d < 0) {
            log_debug_errno(d, "Deciding on '%s' failed, retrying later: %m", objects[i]);
            return -EAGAIN;
        }
        if (d == 0 || (unsigned)decided >= _QUEUE_HA_MAX)
            what[i] = TAKE_DROP;
        else if ((int)decided == cur && !again)
            what[i] = TAKE_DUPLICATE;
        else {
            what[i] = TAKE_PUBLISH;
            evs[i].state = decided;
            current[first[i]] = (int)decided;
            lease[first[i]] = evs[i].lease;
        }
    }

    /* Publish in order, each event followed by what it implies, while the
     * writes fit one transaction; what does not fit stays in the entry. */
    uint64_t dups = 0, drops = 0;
    bool any = false;
    struct queue_event *derived = NULL;
    size_t n_derived = 0, at = 0, i;
    int r = 1;
    for (i = 0; i < (size_t)n; i++) {
        if (what[i] != TAKE_PUBLISH) {
            dups += what[i] == TAKE_DUPLICATE;
            drops += what[i] == TAKE_DROP;
            continue;
        }
        if (c->expand) {
            /* An earlier event's expansion may have published this state already. */
            const struct queue_obj *o = queue_obj_find(&c->decided, objects[i]);
            if (o && o->state == (int)evs[i].state && (evs[i].lease == 0 || o->lease == evs[i].lease)) {
                dups++;
                continue;
            }
        }
        r = batch_publish(q, b, &evs[i], objects[i]);
        if (r <= 0)
            break;
        any = true;
        if (!c->expand)
            continue;
        n_derived = c->expand(q, &evs[i], NULL, 0, c->userdata);
        if (n_derived == 0)
            continue;
        derived = calloc(n_derived, sizeof(*derived));
        if (!derived) {
            r = -ENOMEM;
            break;
        }
        n_derived = MIN(n_derived, c->expand(q, &evs[i], derived, n_derived, c->userdata));
        for (at = 0; at < n_derived; at++) {
            char object[QUEUE_OBJECT_MAX];
            if (derived_decide(q, &derived[at], object) == 0)
                continue;
            r = batch_publish(q, b, &derived[at], object);
            if (r <= 0)
                break;
        }
        if (r <= 0)
            break;
        free(derived);
        derived = NULL;
        n_derived = at = 0;
    }
    if (r < 0) {
        free(derived);
        return r;
    }
    if (r == 0 && !any && b->n_entries > 0) {
        free(derived);
        return 0; /* the entry waits for the next batch, untouched */
    }
    b->n_duplicates += dups;
    b->n_dropped += drops;
    if (r == 0) {
        /* Full: the rest of the entry (the derived events not published, then
         * its events after the last published one) is written back in its place. */
        size_t from = i + (n_derived > 0);
        if (!any && b->n_pubs == 0) {
            /* Cannot happen within the description's limits (a pool's size bounds an event's writes). */
            log_error("Dropping an event of '%s' whose writes exceed one transaction", p->key);
            b->n_dropped++;
            from = i + 1;
        }
        r = queue_value_entry_dump(derived ? derived + at : NULL, derived ? n_derived - at : 0, evs + from,
                                   from < (size_t)n ? (size_t)n - from : 0, &b->rest);
        free(derived);
        if (r < 0)
            return r;
        b->partial = c->pending.first;
        b->n_events += i;
        return 0;
    }
    batch_consume_head(c, b, (size_t)n);
    return 1;
}

/* The ops of b: its entries' deletes, the BQ entry, bq-seq. */
int eq_batch_ops(struct queue *q, struct batch *b, size_t *ret_n) {
    struct consumer *c = &q->consumer;
    size_t n = 0;
    struct pending *p;
    LIST_FOREACH (pending, p, &b->entries)
        b->ops[n++] = (store_op){.type = STORE_OP_DELETE, .key = p->key, .key_len = p->key_len};
    if (b->partial)
        b->ops[n++] = (store_op){.type = STORE_OP_PUT,
                                 .key = b->partial->key,
                                 .key_len = b->partial->key_len,
                                 .value = b->rest,
                                 .value_len = strlen(b->rest)};
    if (b->n_pubs > 0) {
        /* bq/<the last seq>: the events as one JSON array. */
        char *v = malloc(b->pub_bytes + 2), *at = v;
        if (!v)
            return -ENOMEM;
        b->bq_value = v;
        *at++ = '[';
        for (size_t i = 0; i < b->n_pubs; i++) {
            size_t len = strlen(b->pubs[i].text);
            if (i > 0)
                *at++ = ',';
            memcpy(at, b->pubs[i].text, len);
            at += len;
        }
        *at++ = ']';
        queue_keys_bq_entry(&q->keys, c->seq + b->n_pubs, b->bq_key, sizeof(b->bq_key));
        b->ops[n++] = (store_op){.type = STORE_OP_PUT,
                                 .key = b->bq_key,
                                 .key_len = strlen(b->bq_key),
                                 .value = v,
                                 .value_len = (size_t)(at - v)};
        queue_value_counter(c->seq + b->n_pubs, b->seq_value);
        b->ops[n++] = (store_op){.type = STORE_OP_PUT,
                                 .key = q->keys.bq_seq,
                                 .key_len = strlen(q->keys.bq_seq),
                                 .value = b->seq_value,
                                 .value_len = strlen(b->seq_value)};
    }
    if (b->writer_used) {
        int k = c->writer->ops(q, b->ops + n, STORE_TXN_OPS_MAX - n, c->writer_userdata);
        if (k < 0)
            return k;
        n += (size_t)k;
    }
    assert(n <= STORE_TXN_OPS_MAX);
    *ret_n = n;
    return 0;
}
