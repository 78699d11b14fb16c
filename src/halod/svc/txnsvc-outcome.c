/* SPDX-License-Identifier: MIT */
/*
 * Transactions: what is left of one once it finished (txnsvc-internal.h).  The coordinator ends a
 * transaction every participant acknowledged by deleting its keys and writing its outcome,
 * txn/done/<txid>, in one store transaction; the outcome is kept TXNSVC_KEEP_MSEC (at most
 * TXNSVC_KEEP_MAX of them) so that an initiator whose link ended, or that restarted, can still ask
 * it (halo_txn_outcome()), and so can an operator (haloctl txn TXID).  Also here: the answers to
 * those questions, and haloctl txn forget.
 */
#define LOG_AREA LOG_AREA_SUPERVISOR
#include <errno.h>
#include <jansson.h>
#include <stdlib.h>
#include <string.h>

#include "halo/halo.h"
#include "keys.h"
#include "log.h"
#include "macro.h"
#include "server.h"
#include "svc.h"
#include "txnsvc-internal.h"

/* ---- the kept outcomes ------------------------------------------------------------ */

struct txn_done *txn_done_find(struct txnsvc *s, const char *id) {
    struct txn_done *d;
    LIST_FOREACH (dones, d, &s->dones)
        if (streq(d->id, id))
            return d;
    return NULL;
}

static void done_free(struct txnsvc *s, struct txn_done *d) {
    LIST_REMOVE(dones, &s->dones, d);
    s->n_dones--;
    free(d->reason);
    free(d->unacked);
    free(d);
}

void txn_done_clear(struct txnsvc *s) {
    while (s->dones.first)
        done_free(s, s->dones.first);
}

/* d's fields from the store's value: 0, or -EINVAL (malformed), -ENOMEM. */
static int done_parse(struct txn_done *d, const char *value, size_t len) {
    _cleanup_(json_decrefp) json_t *o = json_loadb(value, len, 0, NULL);
    const char *coord = NULL, *decision = NULL;
    json_int_t finished = 0;
    json_t *unacked = NULL;
    if (!o ||
        json_unpack(o, "{s:s, s:s, s:I, s?o}", "coordinator", &coord, "decision", &decision, "finished", &finished,
                    "unacked", &unacked) < 0 ||
        strlen(coord) > LINK_NAME_MAX || strlen(decision) > LINK_TXN_REASON_MAX + 6 || finished < 0 ||
        (unacked && !json_is_array(unacked)))
        return -EINVAL;
    d->committed = streq(decision, "commit");
    char *reason = strdup(d->committed ? "" : decision + MIN(strlen(decision), (size_t)6));
    char *list = unacked ? json_dumps(unacked, JSON_COMPACT) : NULL;
    if (!reason || (unacked && !list)) {
        free(reason);
        free(list);
        return -ENOMEM;
    }
    strcpy(d->coordinator, coord);
    d->finished = (usec_t)finished;
    free(d->reason);
    d->reason = reason;
    free(d->unacked);
    d->unacked = list;
    return 0;
}

void txn_done_apply(struct txnsvc *s, const char *id, const char *value, size_t len) {
    struct txn_done *d = txn_done_find(s, id);
    if (!value) {
        if (d)
            done_free(s, d);
        return;
    }
    if (!d) {
        if (strlen(id) > LINK_TXN_ID_MAX || !svc_name_valid(id, LINK_TXN_ID_MAX) ||
            !(d = calloc(1, sizeof(*d) + strlen(id) + 1)))
            return;
        strcpy(d->id, id);
        LIST_PREPEND(dones, &s->dones, d);
        s->n_dones++;
    }
    if (done_parse(d, value, len) < 0) {
        log_warning("Transaction %s: its outcome in the store is malformed, ignored", id);
        done_free(s, d);
    }
}

static int cmp_usec(const void *a, const void *b) {
    usec_t x = *(const usec_t *)a, y = *(const usec_t *)b;
    return x < y ? -1 : x > y;
}

/* The time at or before which an outcome is forgotten: past the keep, or among the oldest past
 * TXNSVC_KEEP_MAX. */
static usec_t prune_before(struct txnsvc *s) {
    usec_t now = now_realtime_usec(), cutoff = now > s->keep ? now - s->keep : 0;
    if (s->n_dones <= TXNSVC_KEEP_MAX)
        return cutoff;
    _cleanup_free_ usec_t *times = calloc(s->n_dones, sizeof(*times));
    if (!times)
        return cutoff;
    size_t n = 0;
    struct txn_done *d;
    LIST_FOREACH (dones, d, &s->dones)
        times[n++] = d->finished;
    qsort(times, n, sizeof(*times), cmp_usec);
    return MAX(cutoff, times[n - TXNSVC_KEEP_MAX - 1]);
}

void txn_done_prune(struct txnsvc *s) {
    usec_t cutoff = prune_before(s);
    struct txn_done *d;
    LIST_FOREACH (dones, d, &s->dones) {
        if (d->deleting || d->finished > cutoff ||
            !(streq(d->coordinator, s->node) || (s->takes_over && s->takes_over(s->userdata, d->coordinator))))
            continue;
        char key[STORE_KEY_MAX];
        struct write *w = txn_write_new(s, d->id, WRITE_PRUNE, NULL, NULL, 0);
        if (!w || key_txn_done(key, s->prefix, d->id) < 0 || store_delete(s->store, key, txn_on_written, w) < 0) {
            txn_write_cancel(w);
            return;
        }
        d->deleting = true;
        log_debug("Transaction %s: its outcome forgotten", d->id);
    }
}

/* ---- ending a transaction ------------------------------------------------------------ */

int txn_finish(struct txn *t, json_t *unacked, struct conn *c, uint64_t seq) {
    struct txnsvc *s = t->svc;
    char dir[STORE_KEY_MAX], done[STORE_KEY_MAX], decision[STORE_KEY_MAX], value[LINK_TXN_REASON_MAX + 8];
    snprintf(value, sizeof(value), "%s%s",
             t->decision == DECISION_COMMIT ? "commit" : "abort:", t->decision == DECISION_COMMIT ? "" : t->reason);
    _cleanup_(json_decrefp) json_t *o = json_pack("{s:s, s:s, s:I}", "coordinator", t->coordinator, "decision", value,
                                                  "finished", (json_int_t)now_realtime_usec());
    if (!o || (unacked && json_object_set(o, "unacked", unacked) < 0))
        return -ENOMEM;
    _cleanup_free_ char *outcome = json_dumps(o, JSON_COMPACT);
    int nd = key_txn(dir, s->prefix, t->id, NULL, NULL), nk = key_txn_done(done, s->prefix, t->id),
        nc = key_txn(decision, s->prefix, t->id, "decision", NULL);
    if (!outcome)
        return -ENOMEM;
    if (nd < 0 || nk < 0 || nc < 0)
        return -ENAMETOOLONG;
    store_op ops[] = {
        {.type = STORE_OP_DELETE_PREFIX, .key = dir, .key_len = (size_t)nd},
        {.type = STORE_OP_PUT, .key = done, .key_len = (size_t)nk, .value = outcome, .value_len = strlen(outcome)},
    };
    /* Still decided: not finished meanwhile by another halod (an operator's, or a coordinator's). */
    store_compare cmp = {
        .key = decision, .key_len = (size_t)nc, .target = STORE_CMP_VERSION, .result = STORE_CMP_GREATER, .number = 0};
    store_txn tx = {.compares = &cmp, .n_compares = 1, .success = ops, .n_success = ELEMENTSOF(ops)};
    struct write *w = txn_write_new(s, t->id, WRITE_FINISH, NULL, c, seq);
    if (!w)
        return -ENOMEM;
    int r = store_transaction(s->store, &tx, txn_on_written, w);
    if (r < 0) {
        txn_write_cancel(w);
        return r;
    }
    t->deleting = true;
    return 0;
}

void txnsvc_forget(struct txnsvc *s, struct conn *c, uint64_t seq, const char *txid) {
    struct txn *t = txn_find(s, txid);
    int r = !s->loaded ? -HALO_ETRYAGAIN : !t || !t->have_record ? -HALO_EUNKNOWN : 0;
    if (r >= 0 && t->decision == DECISION_NONE)
        r = -HALO_EBADSTATE; /* its prepare timeout, or its coordinator's successor, aborts it */
    _cleanup_(json_decrefp) json_t *unacked = r >= 0 ? json_array() : NULL;
    if (r >= 0 && !unacked)
        r = -ENOMEM;
    for (size_t i = 0; r >= 0 && i < t->n_parts; i++) {
        const struct part *p = &t->parts[i];
        if (p->listed && txn_needs_outcome(t, p) && !p->acked &&
            json_array_append_new(unacked, json_string(p->comp)) < 0)
            r = -ENOMEM;
    }
    if (r >= 0) {
        _cleanup_free_ char *list = json_dumps(unacked, JSON_COMPACT);
        log_notice("Transaction %s forgotten by %s: %s will not hear its %s", t->id, server_conn_name(c), list ?: "?",
                   t->decision == DECISION_COMMIT ? "commit" : "abort");
        r = txn_finish(t, unacked, c, seq);
    }
    if (r < 0)
        (void)server_conn_reply(c, seq, r, NULL);
}

/* ---- questions ----------------------------------------------------------------------------- */

void txn_query(struct txnsvc *s, struct conn *c, const Halo__Link__TxnQuery *q) {
    Halo__Link__Reply rep = HALO__LINK__REPLY__INIT;
    struct txn *t = txn_find(s, q->txn_id);
    struct txn_done *d = t ? NULL : txn_done_find(s, q->txn_id);
    rep.seq = q->seq;
    if (!s->loaded)
        rep.error = -HALO_ETRYAGAIN;
    else if (t) {
        rep.txn_state = t->decision == DECISION_NONE     ? LINK_TXN_STATE_UNDECIDED
                        : t->decision == DECISION_COMMIT ? LINK_TXN_STATE_COMMITTED
                                                         : LINK_TXN_STATE_ABORTED;
        rep.txn_reason = t->reason;
    } else if (d) {
        rep.txn_state = d->committed ? LINK_TXN_STATE_COMMITTED : LINK_TXN_STATE_ABORTED;
        rep.txn_reason = d->reason;
    } else
        rep.error = -HALO_EUNKNOWN;
    (void)server_conn_send_reply(c, &rep);
}

static const char *state_of(const struct txn *t) {
    if (t->decision == DECISION_COMMIT)
        return "committing";
    if (t->decision == DECISION_ABORT)
        return "aborting";
    return "preparing";
}

static json_t *txn_json(const struct txn *t) {
    json_t *parts = json_array();
    for (size_t i = 0; i < t->n_parts; i++)
        if (t->parts[i].listed)
            (void)json_array_append_new(parts, json_pack("{s:s, s:s, s:b}", "comp", t->parts[i].comp, "vote",
                                                         txn_vote_names[t->parts[i].vote], "acked", t->parts[i].acked));
    return json_pack("{s:s, s:s, s:s, s:o, s:s}", "id", t->id, "coordinator", t->coordinator, "state", state_of(t),
                     "participants", parts, "reason", t->reason);
}

char *txnsvc_json(const struct txnsvc *s) {
    json_t *a = json_array();
    struct txn *t;
    LIST_FOREACH (txns, t, &s->txns)
        if (t->have_record)
            (void)json_array_append_new(a, txn_json(t));
    char *json = a ? json_dumps(a, JSON_COMPACT) : NULL;
    json_decref(a);
    return json;
}

static json_t *done_json(const struct txn_done *d) {
    json_t *o =
        json_pack("{s:s, s:s, s:s, s:s, s:I}", "id", d->id, "coordinator", d->coordinator, "state",
                  d->committed ? "committed" : "aborted", "reason", d->reason, "finished", (json_int_t)d->finished);
    if (o && d->unacked)
        (void)json_object_set_new(o, "unacked", json_loads(d->unacked, 0, NULL));
    return o;
}

int txnsvc_show_json(struct txnsvc *s, const char *txid, char **ret) {
    struct txn *t = txn_find(s, txid);
    struct txn_done *d = t && t->have_record ? NULL : txn_done_find(s, txid);
    if (!(t && t->have_record) && !d)
        return -HALO_EUNKNOWN;
    _cleanup_(json_decrefp) json_t *o = d ? done_json(d) : txn_json(t);
    *ret = o ? json_dumps(o, JSON_COMPACT) : NULL;
    return *ret ? 0 : -ENOMEM;
}
