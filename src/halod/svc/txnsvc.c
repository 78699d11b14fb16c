/* SPDX-License-Identifier: MIT */
/* Transactions across participants (txnsvc.h; docs/transactions.md has the protocol). */
#define LOG_AREA LOG_AREA_SUPERVISOR
#include "txnsvc-internal.h"

#include <errno.h>
#include <inttypes.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "amf-model.h"
#include "amf.h"
#include "halo/halo.h"
#include "keys.h"
#include "list.h"
#include "log.h"
#include "macro.h"
#include "server.h"
#include "store-follow.h"
#include "svc.h"
#include "time-util.h"

/* How often the deadlines and the deliveries are looked at again (a component that registered,
 * a store write that failed). */
#define TXNSVC_TICK_MSEC 200

const char *const txn_vote_names[VOTE_COUNT] = {
    [VOTE_NONE] = "none", [VOTE_PENDING] = "pending", [VOTE_YES] = "yes", [VOTE_NO] = "no", [VOTE_LOST] = "lost",
};

static void step(struct txn *t);

/* ---- memory ----------------------------------------------------------------- */

struct txn *txn_find(struct txnsvc *s, const char *id) {
    struct txn *t;
    LIST_FOREACH (txns, t, &s->txns)
        if (streq(t->id, id))
            return t;
    return NULL;
}

static struct txn *add_txn(struct txnsvc *s, const char *id) {
    if (strlen(id) > LINK_TXN_ID_MAX || !svc_name_valid(id, LINK_TXN_ID_MAX))
        return NULL;
    struct txn *t = calloc(1, sizeof(*t));
    if (!t)
        return NULL;
    t->svc = s;
    strcpy(t->id, id);
    LIST_PREPEND(txns, &s->txns, t);
    s->n_txns++;
    return t;
}

static void free_txn_data(struct txn *t) {
    for (size_t i = 0; i < t->n_parts; i++)
        free(t->parts[i].data);
    free(t);
}

static void free_txn(struct txn *t) {
    LIST_REMOVE(txns, &t->svc->txns, t);
    t->svc->n_txns--;
    free_txn_data(t);
}

static struct part *find_part(struct txn *t, const char *comp, bool add) {
    for (size_t i = 0; i < t->n_parts; i++)
        if (streq(t->parts[i].comp, comp))
            return &t->parts[i];
    if (!add || t->n_parts >= LINK_TXN_PARTS_MAX || strlen(comp) > LINK_NAME_MAX)
        return NULL;
    struct part *p = &t->parts[t->n_parts++];
    strcpy(p->comp, comp);
    return p;
}

/* The link of comp's registered process on this node, or NULL. */
static struct conn *local_conn(struct txnsvc *s, const char *comp) {
    struct comp *c = amf_find_comp(s->amf, comp);
    return c ? c->conn : NULL;
}

static bool held(const struct txnsvc *s, const char *step_name) {
    return streq(s->hold, step_name);
}

/* ---- the store's copy -------------------------------------------------------- */

static void copy_reason(char *dst, const char *src, size_t n) {
    n = MIN(n, (size_t)LINK_TXN_REASON_MAX);
    memcpy(dst, src, n);
    dst[n] = '\0';
}

static void apply_record(struct txn *t, const char *value, size_t len) {
    json_error_t e;
    _cleanup_(json_decrefp) json_t *o = json_loadb(value, len, 0, &e);
    const char *coord = NULL;
    json_int_t deadline = 0;
    json_t *parts = NULL;
    if (!o ||
        json_unpack(o, "{s:s, s:I, s:o}", "coordinator", &coord, "deadline", &deadline, "participants", &parts) < 0 ||
        !json_is_array(parts) || strlen(coord) > LINK_NAME_MAX) {
        log_warning("Transaction %s: its record in the store is malformed, ignored", t->id);
        return;
    }
    strcpy(t->coordinator, coord);
    t->deadline = (usec_t)deadline;
    size_t i;
    json_t *v;
    json_array_foreach(parts, i, v) {
        struct part *p = json_is_string(v) ? find_part(t, json_string_value(v), true) : NULL;
        if (p)
            p->listed = true;
    }
    t->have_record = true;
}

static void apply_vote(struct part *p, const char *value, size_t len) {
    for (size_t v = VOTE_PENDING; v < VOTE_COUNT; v++) {
        size_t n = strlen(txn_vote_names[v]);
        if (len >= n && memcmp(value, txn_vote_names[v], n) == 0 && (len == n || value[n] == ':')) {
            p->vote = (enum vote)v;
            copy_reason(p->reason, value + MIN(n + 1, len), len - MIN(n + 1, len));
            return;
        }
    }
}

static void apply_part(struct txn *t, const char *part, const char *comp, const char *value, size_t len) {
    struct part *p = find_part(t, comp, true);
    if (!p)
        return;
    if (streq(part, "data")) {
        void *d = malloc(len ?: 1);
        if (!d)
            return;
        memcpy(d, value, len);
        free(p->data);
        p->data = d;
        p->data_len = len;
    } else if (streq(part, "vote"))
        apply_vote(p, value, len);
    else if (streq(part, "ack"))
        p->acked = true;
}

static void apply_kv(struct txnsvc *s, const store_kv *kv, bool deleted) {
    const char *rest;
    size_t n;
    char id[STORE_KEY_MAX], part[STORE_KEY_MAX], comp[STORE_KEY_MAX];
    if (key_parse(s->prefix, kv->key, kv->key_len, &rest, &n) != KEY_TXN || key_txn_parse(rest, n, id, part, comp) < 0)
        return;
    if (streq(part, "done")) {
        txn_done_apply(s, id, deleted ? NULL : kv->value, kv->value_len);
        return;
    }
    struct txn *t = txn_find(s, id);
    if (deleted) {
        /* The coordinator deletes a finished transaction whole: its record goes with it. */
        if (t && streq(part, "record") && !t->writing_record)
            free_txn(t);
        return;
    }
    if (!t && !(t = add_txn(s, id)))
        return;
    t->seen = true;
    if (streq(part, "record"))
        apply_record(t, kv->value, kv->value_len);
    else if (streq(part, "decision")) {
        bool commit = kv->value_len == 6 && memcmp(kv->value, "commit", 6) == 0;
        t->decision = commit ? DECISION_COMMIT : DECISION_ABORT;
        if (!commit && kv->value_len > 6)
            copy_reason(t->reason, kv->value + 6, kv->value_len - 6);
    } else
        apply_part(t, part, comp, kv->value, kv->value_len);
}

static void step_all(struct txnsvc *s) {
    struct txn *t, *next;
    LIST_FOREACH_SAFE (txns, t, next, &s->txns)
        step(t);
}

static void on_loaded(struct store_follow *f, const store_result *r, void *userdata) {
    (void)f;
    struct txnsvc *s = userdata;
    struct txn *t, *next;
    LIST_FOREACH (txns, t, &s->txns)
        t->seen = false;
    txn_done_clear(s);
    for (size_t i = 0; i < r->n_kvs; i++)
        apply_kv(s, &r->kvs[i], false);
    /* A reload after the history was lost: what is not there any more was finished meanwhile. */
    LIST_FOREACH_SAFE (txns, t, next, &s->txns)
        if (!t->seen && !t->writing_record)
            free_txn(t);
    if (!s->loaded)
        log_info("Transactions: %zu in flight in the store", s->n_txns);
    s->loaded = true;
    step_all(s);
}

static void on_changed(struct store_follow *f, const store_event *ev, size_t n, void *userdata) {
    (void)f;
    struct txnsvc *s = userdata;
    for (size_t i = 0; i < n; i++)
        apply_kv(s, &ev[i].kv, ev[i].type == STORE_EVENT_DELETE);
    step_all(s);
}

static const struct store_follow_ops follow_ops = {.loaded = on_loaded, .changed = on_changed};

/* ---- writes ------------------------------------------------------------------ */

struct write *txn_write_new(struct txnsvc *s, const char *id, int kind, const char *comp, struct conn *c,
                            uint64_t seq) {
    struct write *w = calloc(1, sizeof(*w));
    if (!w)
        return NULL;
    *w = (struct write){.svc = s, .conn = c, .seq = seq, .kind = kind};
    strcpy(w->id, id);
    if (comp)
        strcpy(w->comp, comp);
    s->n_writes++;
    LIST_PREPEND(writes, &s->writes, w);
    return w;
}

static struct write *write_new(struct txn *t, int kind, const char *comp, struct conn *c, uint64_t seq) {
    return txn_write_new(t->svc, t->id, kind, comp, c, seq);
}

/* w's callback ran (or w was never sent): whether the service is gone, and nothing must be done. */
static bool write_end(struct write *w) {
    struct txnsvc *s = w->svc;
    s->n_writes--;
    LIST_REMOVE(writes, &s->writes, w);
    if (!s->freed)
        return false;
    if (s->n_writes == 0)
        free(s);
    return true;
}

void txn_write_cancel(struct write *w) {
    if (w)
        (void)write_end(w);
    free(w);
}

void txn_on_written(store *st, int error, const store_result *r, void *userdata) {
    (void)st;
    _cleanup_free_ struct write *w = userdata;
    if (write_end(w))
        return;
    struct txn *t = txn_find(w->svc, w->id);
    struct part *p = t && *w->comp ? find_part(t, w->comp, false) : NULL;
    if (p)
        p->writing = false;
    if (t && w->kind == WRITE_DECISION)
        t->deciding = false;
    if (t && (w->kind == WRITE_DELETE || w->kind == WRITE_FINISH))
        t->deleting = false;
    struct txn_done *d = w->kind == WRITE_PRUNE ? txn_done_find(w->svc, w->id) : NULL;
    if (d)
        d->deleting = false;
    if (error < 0)
        log_warning_errno(error, "Transaction %s: a write to the store failed (tried again): %m", w->id);
    bool ok = error >= 0 && (w->kind == WRITE_DELETE || w->kind == WRITE_PRUNE || r->succeeded);
    /* The store has it: the vote is pending now, whenever this halod's watch brings its copy (the
     * component may answer the prepare first, and its vote must count). */
    if (w->kind == WRITE_PENDING && p && ok && p->vote == VOTE_NONE)
        p->vote = VOTE_PENDING;
    if (w->kind == WRITE_PENDING && p && ok && p->prepared_on == w->conn && w->conn) {
        Halo__Link__TxnPrepare tp = HALO__LINK__TXN_PREPARE__INIT;
        LinkMsg m = HALO__LINK__MSG__INIT;
        tp.txn_id = t->id;
        tp.comp = p->comp;
        tp.data.data = p->data;
        tp.data.len = p->data_len;
        m.body_case = HALO__LINK__MSG__BODY_TXN_PREPARE;
        m.txn_prepare = &tp;
        if (server_conn_send(w->conn, &m) < 0)
            p->prepared_on = NULL;
        else
            log_debug("Transaction %s: prepare sent to %s", t->id, p->comp);
    } else if (w->kind == WRITE_PENDING && p && !ok)
        p->prepared_on = NULL; /* sent again at the next tick */
    if ((w->kind == WRITE_VOTE || w->kind == WRITE_ACK) && w->conn)
        (void)server_conn_reply(w->conn, w->seq, error < 0 ? error : ok ? 0 : -HALO_EBADSTATE, NULL);
    if (w->kind == WRITE_FINISH && w->conn) /* not decided any more: finished meanwhile */
        (void)server_conn_reply(w->conn, w->seq, error < 0 ? error : ok ? 0 : -HALO_EUNKNOWN, NULL);
    if (w->kind == WRITE_DECISION && w->conn) /* decided meanwhile */
        (void)server_conn_reply(w->conn, w->seq, error < 0 ? error : ok ? 0 : -HALO_EBADSTATE, NULL);
}

/* One put of the txn's key part/comp, if cmp holds (cmp NULL: always). */
static int put(struct txn *t, struct write *w, const char *part, const char *comp, const char *value,
               const store_compare *cmp) {
    char key[STORE_KEY_MAX];
    int r = key_txn(key, t->svc->prefix, t->id, part, comp);
    if (r < 0 || !w) {
        txn_write_cancel(w);
        return r < 0 ? r : -ENOMEM;
    }
    store_op op = {.type = STORE_OP_PUT, .key = key, .key_len = (size_t)r, .value = value, .value_len = strlen(value)};
    store_txn tx = {.compares = cmp, .n_compares = cmp ? 1 : 0, .success = &op, .n_success = 1};
    r = store_transaction(t->svc->store, &tx, txn_on_written, w);
    if (r < 0)
        txn_write_cancel(w);
    return r;
}

/* part/comp's key compared: its value is v (v NULL: it does not exist).  key is the caller's buffer. */
static store_compare compare_key(struct txn *t, char *key, const char *part, const char *comp, const char *v) {
    int n = key_txn(key, t->svc->prefix, t->id, part, comp);
    store_compare c = {.key = key, .key_len = n > 0 ? (size_t)n : 0};
    if (v)
        c = (store_compare){
            .key = key, .key_len = c.key_len, .target = STORE_CMP_VALUE, .value = v, .value_len = strlen(v)};
    else
        c.target = STORE_CMP_VERSION;
    return c;
}

/* Writes p's vote, if it is still pending (a later one never overwrites one already there). */
static int write_vote(struct txn *t, struct part *p, const char *vote, const char *reason, struct conn *c,
                      uint64_t seq) {
    char key[STORE_KEY_MAX], value[LINK_TXN_REASON_MAX + 16];
    snprintf(value, sizeof(value), "%s%s%s", vote, reason ? ":" : "", reason ?: "");
    store_compare cmp = compare_key(t, key, "vote", p->comp, "pending");
    int r = put(t, write_new(t, WRITE_VOTE, p->comp, c, seq), "vote", p->comp, value, &cmp);
    if (r >= 0)
        p->writing = true;
    return r;
}

/* The decision, once: whoever writes it first wins (compare-and-swap on its absence). */
static int decide_for(struct txn *t, bool commit, const char *reason, struct conn *c, uint64_t seq) {
    char key[STORE_KEY_MAX], value[LINK_TXN_REASON_MAX + 16];
    snprintf(value, sizeof(value), "%s%s", commit ? "commit" : "abort:", commit ? "" : reason);
    store_compare cmp = compare_key(t, key, "decision", NULL, NULL);
    int r = put(t, write_new(t, WRITE_DECISION, NULL, c, seq), "decision", NULL, value, &cmp);
    if (r >= 0) {
        t->deciding = true;
        log_info("Transaction %s: %s%s%s", t->id, commit ? "commit" : "abort", commit ? "" : ": ",
                 commit ? "" : reason);
    }
    return r;
}

static void decide(struct txn *t, bool commit, const char *reason) {
    (void)decide_for(t, commit, reason, NULL, 0);
}

void txnsvc_abort(struct txnsvc *s, struct conn *c, uint64_t seq, const char *txid) {
    struct txn *t = txn_find(s, txid);
    int r = !s->loaded ? -HALO_ETRYAGAIN : !t || !t->have_record ? -HALO_EUNKNOWN : 0;
    if (r >= 0 && (t->decision != DECISION_NONE || t->deciding))
        r = -HALO_EBADSTATE; /* decided: haloctl txn forget, if a participant is gone for good */
    if (r >= 0) {
        log_notice("Transaction %s aborted by %s", t->id, server_conn_name(c));
        r = decide_for(t, false, "aborted by an operator", c, seq);
    }
    if (r < 0)
        (void)server_conn_reply(c, seq, r, NULL);
}

/* ---- the steps ---------------------------------------------------------------- */

/* Sends the prepare to p's component on c, after its vote is written pending: a halod that dies
 * after the send leaves a trace that the component may hold a prepared state. */
static void prepare(struct txn *t, struct part *p, struct conn *c) {
    char key[STORE_KEY_MAX];
    p->prepared_on = c;
    if (p->vote == VOTE_PENDING) { /* asked before, by a halod gone since or on a link gone since */
        struct write *w = write_new(t, WRITE_PENDING, p->comp, c, 0);
        if (w)
            txn_on_written(t->svc->store, 0, &(store_result){.succeeded = true}, w);
        return;
    }
    store_compare cmp = compare_key(t, key, "vote", p->comp, NULL);
    if (put(t, write_new(t, WRITE_PENDING, p->comp, c, 0), "vote", p->comp, "pending", &cmp) < 0)
        p->prepared_on = NULL;
    else
        p->writing = true;
}

bool txn_needs_outcome(const struct txn *t, const struct part *p) {
    return t->decision == DECISION_COMMIT || p->vote == VOTE_YES || p->vote == VOTE_PENDING || p->vote == VOTE_LOST;
}

static void tell_outcome(struct txn *t, struct part *p, struct conn *c) {
    Halo__Link__TxnOutcome o = HALO__LINK__TXN_OUTCOME__INIT;
    LinkMsg m = HALO__LINK__MSG__INIT;
    o.txn_id = t->id;
    o.comp = p->comp;
    o.commit = t->decision == DECISION_COMMIT;
    m.body_case = HALO__LINK__MSG__BODY_TXN_OUTCOME;
    m.txn_outcome = &o;
    if (server_conn_send(c, &m) >= 0) {
        p->told_on = c;
        log_debug("Transaction %s: %s sent to %s", t->id, o.commit ? "commit" : "abort", p->comp);
    }
}

/* The participants' side: what this halod owes the components registered on it. */
static void step_participants(struct txn *t) {
    struct txnsvc *s = t->svc;
    for (size_t i = 0; i < t->n_parts; i++) {
        struct part *p = &t->parts[i];
        struct conn *c = p->listed && !p->writing ? local_conn(s, p->comp) : NULL;
        if (!c)
            continue;
        if (t->decision == DECISION_NONE && (p->vote == VOTE_NONE || p->vote == VOTE_PENDING) && p->prepared_on != c &&
            !held(s, "record"))
            prepare(t, p, c);
        else if (t->decision != DECISION_NONE && txn_needs_outcome(t, p) && !p->acked && p->told_on != c &&
                 !held(s, "decision"))
            tell_outcome(t, p, c);
    }
}

static void tell_initiator(struct txn *t) {
    Halo__Link__TxnDone d = HALO__LINK__TXN_DONE__INIT;
    LinkMsg m = HALO__LINK__MSG__INIT;
    d.txn_id = t->id;
    d.committed = t->decision == DECISION_COMMIT;
    d.reason = t->reason;
    m.body_case = HALO__LINK__MSG__BODY_TXN_DONE;
    m.txn_done = &d;
    (void)server_conn_send(t->initiator, &m);
    t->initiator = NULL;
}

/* The coordinator's side: decide, tell the initiator, delete what every participant applied. */
static void step_coordinator(struct txn *t) {
    struct txnsvc *s = t->svc;
    if (t->decision == DECISION_NONE && !t->deciding) {
        char why[LINK_TXN_REASON_MAX + 1];
        const struct part *silent = NULL;
        for (size_t i = 0; i < t->n_parts; i++) {
            const struct part *p = &t->parts[i];
            if (!p->listed)
                continue;
            if (p->vote == VOTE_NO || p->vote == VOTE_LOST) {
                /* Bounded so that the whole fits: a long reason is cut (its participant's own). */
                snprintf(why, sizeof(why), "%.255s %s%s%.230s", p->comp,
                         p->vote == VOTE_NO ? "voted no" : "ended before it voted", *p->reason ? ": " : "", p->reason);
                return decide(t, false, why);
            }
            if (p->vote != VOTE_YES && !silent)
                silent = p;
        }
        if (!t->mine)
            return decide(t, false,
                          streq(t->coordinator, s->node)
                              ? "its coordinator restarted before a decision (presumed abort)"
                              : "its coordinator node is gone (presumed abort)");
        if (!silent && !held(s, "votes"))
            return decide(t, true, NULL);
        if (silent && now_realtime_usec() >= t->deadline) {
            snprintf(why, sizeof(why), "prepare timeout: %s did not vote", silent->comp);
            return decide(t, false, why);
        }
        return;
    }
    if (t->decision == DECISION_NONE || held(s, "decision"))
        return;
    if (t->initiator)
        tell_initiator(t);
    for (size_t i = 0; i < t->n_parts; i++)
        if (t->parts[i].listed && txn_needs_outcome(t, &t->parts[i]) && !t->parts[i].acked)
            return;
    if (t->deleting || txn_finish(t, NULL, NULL, 0) < 0)
        return;
    log_info("Transaction %s: %s by every participant", t->id,
             t->decision == DECISION_COMMIT ? "committed" : "rolled back");
}

static void step(struct txn *t) {
    if (!t->have_record)
        return;
    struct txnsvc *s = t->svc;
    step_participants(t);
    /* A coordinator node that died leaves its transactions to the cluster's coordinator: as an
     * orphan of a restart, an undecided one aborts. */
    if (streq(t->coordinator, s->node) || (s->takes_over && s->takes_over(s->userdata, t->coordinator)))
        step_coordinator(t);
}

static void on_tick(uv_timer_t *timer) {
    struct txnsvc *s = timer->data;
    if (!s->loaded)
        return;
    step_all(s);
    txn_done_prune(s);
}

/* ---- the link ------------------------------------------------------------------ */

static void on_record_written(store *st, int error, const store_result *r, void *userdata) {
    (void)st;
    _cleanup_free_ struct write *w = userdata;
    if (write_end(w))
        return;
    struct txn *t = txn_find(w->svc, w->id);
    if (!t)
        return;
    t->writing_record = false;
    if (error >= 0 && !r->succeeded)
        error = -EEXIST;
    if (error < 0) {
        log_warning_errno(error, "Transaction %s: cannot write its record: %m", t->id);
        if (t->initiator)
            (void)server_conn_reply(t->initiator, t->initiator_seq, error, NULL);
        free_txn(t);
        return;
    }
    log_info("Transaction %s begun by %s with %zu participants", t->id,
             t->initiator ? server_conn_name(t->initiator) : "?", t->n_parts);
    if (t->initiator) {
        Halo__Link__Reply rep = HALO__LINK__REPLY__INIT;
        rep.seq = t->initiator_seq;
        rep.txn_id = t->id;
        (void)server_conn_send_reply(t->initiator, &rep);
    }
    step(t);
}

/* The record and every participant's data, in one store transaction that creates them. */
static int write_record(struct txn *t, const Halo__Link__TxnCommit *c) {
    struct txnsvc *s = t->svc;
    char keys[1 + LINK_TXN_PARTS_MAX][STORE_KEY_MAX];
    store_op ops[1 + LINK_TXN_PARTS_MAX];
    _cleanup_(json_decrefp) json_t *names = json_array();
    for (size_t i = 0; names && i < c->n_parts; i++)
        if (json_array_append_new(names, json_string(c->parts[i]->comp)) < 0)
            return -ENOMEM;
    _cleanup_(json_decrefp) json_t *o = names ? json_pack("{s:s, s:I, s:O}", "coordinator", s->node, "deadline",
                                                          (json_int_t)t->deadline, "participants", names)
                                              : NULL;
    _cleanup_free_ char *record = o ? json_dumps(o, JSON_COMPACT) : NULL;
    if (!record)
        return -ENOMEM;
    int n = key_txn(keys[0], s->prefix, t->id, "record", NULL);
    if (n < 0)
        return n;
    ops[0] = (store_op){
        .type = STORE_OP_PUT, .key = keys[0], .key_len = (size_t)n, .value = record, .value_len = strlen(record)};
    for (size_t i = 0; i < c->n_parts; i++) {
        n = key_txn(keys[i + 1], s->prefix, t->id, "data", c->parts[i]->comp);
        if (n < 0)
            return n;
        ops[i + 1] = (store_op){.type = STORE_OP_PUT,
                                .key = keys[i + 1],
                                .key_len = (size_t)n,
                                .value = (const char *)c->parts[i]->data.data,
                                .value_len = c->parts[i]->data.len};
    }
    store_compare cmp = {.key = keys[0], .key_len = strlen(keys[0]), .target = STORE_CMP_VERSION};
    store_txn tx = {.compares = &cmp, .n_compares = 1, .success = ops, .n_success = 1 + c->n_parts};
    struct write *w = write_new(t, WRITE_DELETE, NULL, NULL, 0);
    if (!w)
        return -ENOMEM;
    int r = store_transaction(s->store, &tx, on_record_written, w);
    if (r < 0)
        txn_write_cancel(w);
    return r;
}

/* The commit's participants: known components, each once.  0, -HALO_EUNKNOWN or -EINVAL. */
static int check_parts(struct txnsvc *s, struct conn *conn, const Halo__Link__TxnCommit *c) {
    for (size_t i = 0; i < c->n_parts; i++) {
        const char *comp = c->parts[i]->comp;
        if (!svc_name_valid(comp, LINK_NAME_MAX) || !amf_find_comp(s->amf, comp)) {
            log_notice("%s: transaction refused: no component '%s'", server_conn_name(conn), comp);
            return -HALO_EUNKNOWN;
        }
        for (size_t j = 0; j < i; j++)
            if (streq(c->parts[j]->comp, comp))
                return -EINVAL;
    }
    return 0;
}

static void commit(struct txnsvc *s, struct conn *conn, const Halo__Link__TxnCommit *c) {
    uint32_t timeout = c->timeout_msec ?: TXNSVC_TIMEOUT_DEFAULT_MSEC;
    int r = !s->loaded ? -HALO_ETRYAGAIN : s->n_txns >= TXNSVC_MAX ? -EBUSY : check_parts(s, conn, c);
    if (r >= 0 && (timeout < TXNSVC_TIMEOUT_MIN_MSEC || timeout > TXNSVC_TIMEOUT_MAX_MSEC))
        r = -EINVAL;
    char id[LINK_TXN_ID_MAX + 1];
    /* Unique across restarts: the clock, kept increasing within this halod. */
    s->last_id = MAX(s->last_id + 1, (uint64_t)now_realtime_usec());
    snprintf(id, sizeof(id), "%s.%" PRIu64, s->node, s->last_id);
    struct txn *t = r >= 0 ? add_txn(s, id) : NULL;
    if (r >= 0 && !t)
        r = -ENOMEM;
    if (r >= 0) {
        t->mine = t->writing_record = true;
        t->initiator = conn;
        t->initiator_seq = c->seq;
        t->deadline = now_realtime_usec() + (usec_t)timeout * USEC_PER_MSEC;
        r = write_record(t, c);
        if (r < 0)
            free_txn(t);
    }
    if (r < 0)
        (void)server_conn_reply(conn, c->seq, r, NULL);
}

/* The part of txn_id that the component registered on conn is, or NULL and the error in *ret. */
static struct part *caller_part(struct txnsvc *s, struct conn *conn, const char *txn_id, struct txn **ret_t, int *ret) {
    struct comp *comp = amf_comp_by_conn(s->amf, conn);
    struct txn *t = txn_find(s, txn_id);
    struct part *p = t && comp ? find_part(t, comp->name, false) : NULL;
    *ret = !comp ? -HALO_ENOTREG : !t ? -HALO_EUNKNOWN : !p || !p->listed ? -EPERM : 0;
    if (*ret == -EPERM || *ret == -HALO_ENOTREG)
        log_notice("%s: refused: %s is not a participant of transaction %s", server_conn_name(conn),
                   comp ? comp->name : "a process with no registered component", txn_id);
    *ret_t = t;
    return *ret < 0 ? NULL : p;
}

static void vote(struct txnsvc *s, struct conn *conn, const Halo__Link__TxnVote *v) {
    struct txn *t;
    int r;
    struct part *p = caller_part(s, conn, v->txn_id, &t, &r);
    if (p && (p->prepared_on != conn || p->vote != VOTE_PENDING || t->decision != DECISION_NONE))
        r = -HALO_EBADSTATE; /* not asked on this link, or voted already, or decided meanwhile */
    if (p && r >= 0) {
        log_debug("Transaction %s: %s votes %s", t->id, p->comp, v->vote >= 0 ? "yes" : "no");
        r = write_vote(t, p, v->vote >= 0 ? "yes" : "no", v->vote >= 0 ? NULL : v->reason, conn, v->seq);
    }
    if (r < 0)
        (void)server_conn_reply(conn, v->seq, r, NULL);
}

static void ack(struct txnsvc *s, struct conn *conn, const Halo__Link__TxnAck *a) {
    struct txn *t;
    int r;
    struct part *p = caller_part(s, conn, a->txn_id, &t, &r);
    if (p && p->told_on != conn)
        r = -HALO_EBADSTATE;
    else if (p && p->acked)
        r = 0, (void)server_conn_reply(conn, a->seq, 0, NULL), p = NULL;
    if (p && r >= 0) {
        r = put(t, write_new(t, WRITE_ACK, p->comp, conn, a->seq), "ack", p->comp, "", NULL);
        if (r >= 0)
            p->writing = true;
    }
    if (r < 0)
        (void)server_conn_reply(conn, a->seq, r, NULL);
}

bool txnsvc_handle_msg(struct txnsvc *s, struct conn *c, const LinkMsg *msg) {
    switch (msg->body_case) {
    case HALO__LINK__MSG__BODY_TXN_COMMIT:
        commit(s, c, msg->txn_commit);
        return true;
    case HALO__LINK__MSG__BODY_TXN_VOTE:
        vote(s, c, msg->txn_vote);
        return true;
    case HALO__LINK__MSG__BODY_TXN_ACK:
        ack(s, c, msg->txn_ack);
        return true;
    case HALO__LINK__MSG__BODY_TXN_QUERY:
        txn_query(s, c, msg->txn_query);
        return true;
    default:
        return false;
    }
}

void txnsvc_conn_closed(struct txnsvc *s, struct conn *c) {
    struct write *w;
    LIST_FOREACH (writes, w, &s->writes)
        if (w->conn == c)
            w->conn = NULL;
    struct txn *t;
    LIST_FOREACH (txns, t, &s->txns) {
        if (t->initiator == c)
            t->initiator = NULL;
        for (size_t i = 0; i < t->n_parts; i++) {
            struct part *p = &t->parts[i];
            if (p->told_on == c)
                p->told_on = NULL;
            if (p->prepared_on != c)
                continue;
            p->prepared_on = NULL;
            /* Its process ended (or its link broke) before it voted: no, and it hears the abort if it
             * comes back, in case it had prepared. */
            if (p->vote == VOTE_PENDING && t->decision == DECISION_NONE && !p->writing) {
                log_info("Transaction %s: %s ended before it voted: abort", t->id, p->comp);
                (void)write_vote(t, p, "lost", "its process ended before it voted", NULL, 0);
            }
        }
    }
}

/* ---- life ---------------------------------------------------------------------- */

int txnsvc_new(const struct txnsvc_params *p, struct txnsvc **ret) {
    _cleanup_free_ struct txnsvc *s = calloc(1, sizeof(*s));
    if (!s)
        return -ENOMEM;
    *s = (struct txnsvc){
        .loop = p->loop, .store = p->store, .amf = p->amf, .takes_over = p->takes_over, .userdata = p->userdata};
    snprintf(s->prefix, sizeof(s->prefix), "%s", p->prefix);
    snprintf(s->node, sizeof(s->node), "%s", p->node);
    const char *hold = getenv(TXNSVC_HOLD_ENV);
    if (hold && *hold) {
        snprintf(s->hold, sizeof(s->hold), "%s", hold);
        log_warning("%s=%s: transactions stop after that step (for tests only)", TXNSVC_HOLD_ENV, s->hold);
    }
    const char *keep = getenv(TXNSVC_KEEP_ENV);
    s->keep = (usec_t)(keep && *keep ? strtoul(keep, NULL, 10) : TXNSVC_KEEP_MSEC) * USEC_PER_MSEC;
    if (keep && *keep)
        log_warning("%s=%s: finished transactions' outcomes are kept that long (for tests only)", TXNSVC_KEEP_ENV,
                    keep);
    char dir[STORE_KEY_MAX];
    int r = key_dir(dir, s->prefix, KEY_TXN);
    if (r < 0)
        return r;
    s->tick = malloc(sizeof(*s->tick));
    if (!s->tick)
        return -ENOMEM;
    uv_timer_init(s->loop, s->tick);
    s->tick->data = s;
    uv_timer_start(s->tick, on_tick, TXNSVC_TICK_MSEC, TXNSVC_TICK_MSEC);
    struct store_follow_params fp = {.prefix = dir};
    r = store_follow(s->store, &fp, &follow_ops, s, &s->follow);
    if (r < 0) {
        uv_close((uv_handle_t *)s->tick, (uv_close_cb)free);
        return r;
    }
    *ret = TAKE_PTR(s);
    return 0;
}

struct txnsvc *txnsvc_free(struct txnsvc *s) {
    if (!s)
        return NULL;
    s->follow = store_follow_free(s->follow);
    uv_close((uv_handle_t *)s->tick, (uv_close_cb)free);
    struct txn *t;
    while ((t = LIST_POP(txns, &s->txns)))
        free_txn_data(t);
    txn_done_clear(s);
    s->freed = true;
    if (s->n_writes == 0)
        free(s);
    return NULL;
}
