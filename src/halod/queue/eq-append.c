/* SPDX-License-Identifier: MIT */
/*
 * eq_append(): one append transaction at a time, taking the next events of
 * the FIFO of eq_append() calls (group commit): the EQ's order is then the
 * order of the calls, even when a transaction is retried, and keys stamped
 * later are committed later.
 */
#define LOG_AREA LOG_AREA_CLUSTER
#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "log.h"
#include "macro.h"
#include "queue-internal.h"

/* Attempts of one append transaction before its error is reported. */
#define APPEND_ATTEMPTS 5
/* EQ entries in one append transaction, and the bytes of their values: well
 * under etcd's default request limit (1.5 MiB, base64 in the gateway). */
#define APPEND_TXN_ENTRIES 16
#define APPEND_TXN_BYTES (512 * 1024)

/* An eq_append() call: its events wait in the FIFO until transactions have
 * taken all of them. */
struct append_op {
    LIST_FIELDS(struct append_op, appends); /* in queue.appends, in call order */
    eq_append_cb cb;
    void *userdata;
    char **values; /* each event's JSON */
    size_t *value_lens;
    size_t n, done; /* done: appended (a prefix) */
};

/* The one append transaction in flight or waiting to be sent again: EQ
 * entries made of the next events of the FIFO, in order. */
struct append_txn {
    size_t n_entries, n_events;
    char keys[APPEND_TXN_ENTRIES][STORE_KEY_MAX + 1];
    char *values[APPEND_TXN_ENTRIES];
    size_t value_lens[APPEND_TXN_ENTRIES];
    bool stamped, waiting;
    unsigned attempts, collisions;
};

static struct append_op *append_op_free(struct append_op *op) {
    if (!op)
        return NULL;
    for (size_t i = 0; i < op->n; i++)
        free(op->values[i]);
    free(op->values);
    free(op->value_lens);
    free(op);
    return NULL;
}

static struct append_txn *append_txn_free(struct append_txn *t) {
    if (!t)
        return NULL;
    for (size_t i = 0; i < t->n_entries; i++)
        free(t->values[i]);
    free(t);
    return NULL;
}

/* Takes the head op off the FIFO. */
static struct append_op *append_pop(struct queue *q) {
    struct append_op *op = LIST_POP(appends, &q->appends);
    q->n_appends--;
    return op;
}

/* Runs the callbacks of finished ops (a list), and frees them. */
static void append_report(struct queue *q, append_list *list, int error) {
    struct append_op *op;
    while ((op = LIST_POP(appends, list))) {
        eq_append_cb cb = op->cb;
        void *userdata = op->userdata;
        size_t done = op->done;
        append_op_free(op);
        if (cb)
            cb(q, error, done, userdata);
    }
}

/* The next transaction: entries of at most QUEUE_ENTRY_EVENTS_MAX events. */
static struct append_txn *append_txn_build(struct queue *q) {
    struct append_txn *t = calloc(1, sizeof(*t));
    if (!t)
        return NULL;
    struct append_op *op = q->appends.first;
    size_t at = op ? op->done : 0, bytes = 0;
    while (op && t->n_entries < APPEND_TXN_ENTRIES) {
        /* One entry: "[e1,e2,...]". */
        size_t n = 0, len = 2;
        struct append_op *o = op;
        size_t k = at;
        while (o && n < QUEUE_ENTRY_EVENTS_MAX) {
            size_t add = o->value_lens[k] + (n > 0);
            if (n > 0 && bytes + len + add > APPEND_TXN_BYTES)
                break;
            len += add;
            n++;
            if (++k == o->n) {
                o = o->appends_next;
                k = 0;
            }
        }
        if (n == 0 || (t->n_entries > 0 && bytes + len > APPEND_TXN_BYTES))
            break;
        char *v = malloc(len + 1), *p = v;
        if (!v)
            return append_txn_free(t);
        *p++ = '[';
        for (size_t e = 0; e < n; e++) {
            if (e > 0)
                *p++ = ',';
            memcpy(p, op->values[at], op->value_lens[at]);
            p += op->value_lens[at];
            if (++at == op->n) {
                op = op->appends_next;
                at = 0;
            }
        }
        *p++ = ']';
        *p = '\0';
        t->values[t->n_entries] = v;
        t->value_lens[t->n_entries] = len;
        t->n_entries++;
        t->n_events += n;
        bytes += len;
    }
    return t;
}

static void append_send(struct queue *q);

static void on_append_timer(uv_timer_t *t) {
    struct queue *q = t->data;
    queue_ref(q);
    if (!q->closing && q->append_txn && q->append_txn->waiting) {
        q->append_txn->waiting = false;
        append_send(q);
    }
    queue_unref(q);
}

static void append_retry_later(struct queue *q) {
    struct append_txn *t = q->append_txn;
    t->waiting = true;
    uv_timer_start(&q->append_timer, on_append_timer, QUEUE_RETRY_MIN_MSEC << MIN(t->attempts, 4u), 0);
}

/* The transaction failed for good: the calls whose events it holds fail. */
static void append_fail(struct queue *q, int error) {
    struct append_txn *t = TAKE_PTR(q->append_txn);
    append_list failed = {0};
    /* With the store gone, every call fails. */
    size_t left = q->store_gone || q->closing ? SIZE_MAX : t->n_events;
    while (left > 0 && !LIST_IS_EMPTY(&q->appends)) {
        struct append_op *op = append_pop(q);
        if (left != SIZE_MAX)
            left -= MIN(left, op->n - op->done);
        LIST_APPEND(appends, &failed, op);
    }
    append_txn_free(t);
    append_send(q); /* the calls after it go on */
    append_report(q, &failed, error);
}

static void appended(struct queue *q, struct call *k, int error, const store_result *r);

/* Sends the transaction in progress, or the next one. */
static void append_send(struct queue *q) {
    store_compare cmps[APPEND_TXN_ENTRIES];
    store_op puts[APPEND_TXN_ENTRIES], gets[APPEND_TXN_ENTRIES];

    if (q->closing || q->store_gone)
        return;
    if (!q->append_txn) {
        if (LIST_IS_EMPTY(&q->appends))
            return;
        if (!(q->append_txn = append_txn_build(q))) {
            log_warning("Out of memory appending to the event queue, retrying");
            uv_timer_start(&q->append_timer, on_append_timer, QUEUE_RETRY_MIN_MSEC, 0);
            return;
        }
    }
    struct append_txn *t = q->append_txn;
    if (!t->stamped) {
        for (size_t i = 0; i < t->n_entries; i++)
            queue_keys_eq_entry(&q->keys, hlc_now(q->clock), t->keys[i], sizeof(t->keys[i]));
        t->stamped = true;
    }
    for (size_t i = 0; i < t->n_entries; i++) {
        size_t key_len = strlen(t->keys[i]);
        cmps[i] = (store_compare){
            .key = t->keys[i], .key_len = key_len, .target = STORE_CMP_CREATE, .result = STORE_CMP_EQUAL, .number = 0};
        puts[i] = (store_op){.type = STORE_OP_PUT,
                             .key = t->keys[i],
                             .key_len = key_len,
                             .value = t->values[i],
                             .value_len = t->value_lens[i]};
        gets[i] = (store_op){.type = STORE_OP_GET, .key = t->keys[i], .key_len = key_len};
    }
    store_txn txn = {.compares = cmps,
                     .n_compares = t->n_entries,
                     .success = puts,
                     .n_success = t->n_entries,
                     .failure = gets,
                     .n_failure = t->n_entries};
    struct call *k = queue_call_new(q, appended, 0, t);
    int r = k ? store_transaction(q->store, &txn, queue_on_call, k) : -ENOMEM;
    if (r < 0) {
        queue_call_drop(k);
        if (!queue_store_usable(q, r) || ++t->attempts >= APPEND_ATTEMPTS)
            append_fail(q, queue_store_usable(q, r) ? r : -ECANCELED);
        else
            append_retry_later(q);
    }
}

/* The transaction's keys were taken: ours from an earlier attempt whose
 * answer was lost (all of them, same values), or another incarnation's. */
static bool append_was_applied(const struct append_txn *t, const store_result *r) {
    if (r->n_kvs != t->n_entries)
        return false;
    for (size_t i = 0; i < t->n_entries; i++) {
        const store_kv *kv = &r->kvs[i];
        if (!queue_keys_match(kv, t->keys[i]) || kv->value_len != t->value_lens[i] ||
            memcmp(kv->value, t->values[i], kv->value_len) != 0)
            return false;
    }
    return true;
}

static void appended(struct queue *q, struct call *k, int error, const store_result *r) {
    struct append_txn *t = k->data;
    if (q->closing || q->append_txn != t) {
        append_txn_free(t); /* queue_free() reported its calls already */
        return;
    }
    if (!queue_store_usable(q, error)) {
        append_fail(q, -ECANCELED);
        return;
    }
    if (error < 0) {
        log_warning_errno(error, "Failed to append to the event queue (attempt %u): %m", t->attempts + 1);
        if (++t->attempts >= APPEND_ATTEMPTS)
            append_fail(q, error);
        else
            append_retry_later(q);
        return;
    }
    if (!r->succeeded && !(t->attempts > 0 && append_was_applied(t, r))) {
        /* Keys of an earlier incarnation of this node with a clock that ran
         * ahead: move our clock past them and stamp the entries again. */
        uint64_t max = 0, stamp;
        for (size_t i = 0; i < r->n_kvs; i++)
            if (queue_keys_eq_entry_parse(&q->keys, r->kvs[i].key, r->kvs[i].key_len, &stamp) == 0)
                max = MAX(max, stamp);
        hlc_witness(q->clock, max);
        t->stamped = false;
        if (++t->collisions >= APPEND_ATTEMPTS)
            append_fail(q, -EEXIST);
        else
            append_send(q);
        return;
    }

    /* Committed: the calls it completes are done. */
    q->stats.appended += t->n_events;
    q->stats.append_txns++;
    append_list finished = {0};
    size_t left = t->n_events;
    while (left > 0 && !LIST_IS_EMPTY(&q->appends)) {
        struct append_op *op = q->appends.first;
        size_t taken = MIN(left, op->n - op->done);
        op->done += taken;
        left -= taken;
        if (op->done < op->n)
            break;
        LIST_APPEND(appends, &finished, append_pop(q));
    }
    q->append_txn = append_txn_free(t);
    append_send(q);
    append_report(q, &finished, 0);
}

int eq_append(struct queue *q, const struct queue_event *events, size_t n, eq_append_cb cb, void *userdata) {
    assert_return(q, -EINVAL);
    assert_return(events && n > 0, -EINVAL);
    for (size_t i = 0; i < n; i++)
        if (queue_event_validate(&events[i], true) < 0)
            return -EINVAL;
    if (q->closing || q->store_gone)
        return -ECANCELED;
    if (q->n_appends >= QUEUE_APPENDS_MAX)
        return -EBUSY;
    for (size_t i = 0; i < n; i++)
        if (events[i].hlc && hlc_update(q->clock, events[i].hlc, NULL) < 0)
            return -ERANGE;

    struct append_op *op = calloc(1, sizeof(*op));
    if (!op)
        return -ENOMEM;
    op->cb = cb;
    op->userdata = userdata;
    op->values = calloc(n, sizeof(*op->values));
    op->value_lens = calloc(n, sizeof(*op->value_lens));
    if (!op->values || !op->value_lens) {
        append_op_free(op);
        return -ENOMEM;
    }
    for (size_t i = 0; i < n; i++, op->n++) {
        struct queue_event ev = events[i];
        if (!ev.node[0])
            snprintf(ev.node, sizeof(ev.node), "%s", q->node);
        if (!ev.hlc)
            ev.hlc = hlc_now(q->clock);
        if (queue_value_event_dump(&ev, 0, &op->values[i]) < 0) {
            append_op_free(op);
            return -ENOMEM;
        }
        op->value_lens[i] = strlen(op->values[i]);
    }
    LIST_APPEND(appends, &q->appends, op);
    q->n_appends++;
    if (!q->append_txn)
        append_send(q);
    return 0;
}

void eq_append_cancel_all(struct queue *q) {
    /* A transaction in flight is freed by its store callback. */
    struct append_txn *t = TAKE_PTR(q->append_txn);
    if (t && t->waiting)
        append_txn_free(t);
    append_list ops = q->appends;
    q->appends = (append_list){0};
    q->n_appends = 0;
    append_report(q, &ops, -ECANCELED);
}
