/* SPDX-License-Identifier: MIT */
/* libhalo's transaction calls (the contract is include/halo/txn.h). */
#include "halo/txn.h"

#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "halo-internal.h"
#include "macro.h"

struct halo_txn {
    halo *h;
    size_t n;
    Halo__Link__TxnPart parts[HALO_TXN_PARTICIPANTS_MAX];
    Halo__Link__TxnPart *pparts[HALO_TXN_PARTICIPANTS_MAX];
};

/* A commit whose outcome has not come. */
struct halo_txn_wait {
    LIST_FIELDS(struct halo_txn_wait, waits);
    halo_txn_done_cb done;
    void *userdata;
    char txid[];
};

/* ---- participant ------------------------------------------------------------ */

HALO_EXPORT int halo_txn_participate(halo *h, halo_txn_prepare_cb prepare, halo_txn_outcome_cb outcome,
                                     void *userdata) {
    assert_return(h && !prepare == !outcome, -EINVAL);
    pthread_mutex_lock(&h->lock);
    h->txn_prepare = prepare;
    h->txn_outcome = outcome;
    h->txn_userdata = userdata;
    pthread_mutex_unlock(&h->lock);
    return 0;
}

HALO_EXPORT int halo_txn_vote(halo *h, const char *txid, int vote, const char *reason) {
    Halo__Link__TxnVote v = HALO__LINK__TXN_VOTE__INIT;
    LinkMsg m = HALO__LINK__MSG__INIT;
    char why[HALO_TXN_REASON_MAX + 1] = "";

    assert_return(h && txid && *txid && strlen(txid) <= LINK_TXN_ID_MAX && vote <= 0, -EINVAL);
    if (reason)
        snprintf(why, sizeof(why), "%s", reason);
    v.txn_id = (char *)txid;
    v.vote = vote;
    v.reason = why;
    m.body_case = HALO__LINK__MSG__BODY_TXN_VOTE;
    m.txn_vote = &v;
    return halo__request(h, &m, &v.seq, NULL);
}

static int send_ack(halo *h, const char *txid) {
    Halo__Link__TxnAck a = HALO__LINK__TXN_ACK__INIT;
    LinkMsg m = HALO__LINK__MSG__INIT;
    a.txn_id = (char *)txid;
    m.body_case = HALO__LINK__MSG__BODY_TXN_ACK;
    m.txn_ack = &a;
    return halo__request(h, &m, &a.seq, NULL);
}

bool halo__txn_prepare(halo *h, const Halo__Link__TxnPrepare *p) {
    pthread_mutex_lock(&h->lock);
    halo_txn_prepare_cb cb = h->txn_prepare;
    void *userdata = h->txn_userdata;
    pthread_mutex_unlock(&h->lock);
    int vote = cb ? cb(h, p->txn_id, p->comp, p->data.data, p->data.len, userdata) : -EOPNOTSUPP;
    if (vote != HALO_TXN_VOTE_LATER)
        /* Not heard (the link ended): halod asks again, or counts it a no. */
        (void)halo_txn_vote(h, p->txn_id, vote > 0 ? 0 : vote,
                            cb ? NULL : "the component takes no part in transactions");
    return cb != NULL;
}

bool halo__txn_outcome(halo *h, const Halo__Link__TxnOutcome *o) {
    pthread_mutex_lock(&h->lock);
    halo_txn_outcome_cb cb = h->txn_outcome;
    void *userdata = h->txn_userdata;
    pthread_mutex_unlock(&h->lock);
    if (cb)
        cb(h, o->txn_id, o->comp, o->commit, userdata);
    /* Not heard: halod tells it again. */
    (void)send_ack(h, o->txn_id);
    return cb != NULL;
}

/* ---- initiator ------------------------------------------------------------------ */

HALO_EXPORT int halo_txn_begin(halo *h, halo_txn **ret) {
    assert_return(h && ret, -EINVAL);
    halo_txn *t = calloc(1, sizeof(*t));
    if (!t)
        return -ENOMEM;
    t->h = h;
    *ret = t;
    return 0;
}

HALO_EXPORT void halo_txn_free(halo_txn *t) {
    if (!t)
        return;
    for (size_t i = 0; i < t->n; i++) {
        free(t->parts[i].comp);
        free(t->parts[i].data.data);
    }
    free(t);
}

HALO_EXPORT int halo_txn_add(halo_txn *t, const char *comp, const void *data, size_t len) {
    assert_return(t && comp && *comp && strlen(comp) <= LINK_NAME_MAX && (data || len == 0), -EINVAL);
    if (len > HALO_TXN_DATA_MAX)
        return -EMSGSIZE;
    if (t->n >= HALO_TXN_PARTICIPANTS_MAX)
        return -E2BIG;
    for (size_t i = 0; i < t->n; i++)
        if (streq(t->parts[i].comp, comp))
            return -EINVAL;
    Halo__Link__TxnPart *p = &t->parts[t->n];
    *p = (Halo__Link__TxnPart)HALO__LINK__TXN_PART__INIT;
    p->comp = strdup(comp);
    p->data.data = malloc(len ?: 1);
    if (!p->comp || !p->data.data) {
        free(p->comp);
        free(p->data.data);
        return -ENOMEM;
    }
    if (len)
        memcpy(p->data.data, data, len);
    p->data.len = len;
    t->pparts[t->n] = p;
    t->n++;
    return 0;
}

HALO_EXPORT int halo_txn_commit(halo_txn *t, unsigned timeout_msec, halo_txn_done_cb done, void *userdata,
                                char **ret_txid) {
    Halo__Link__TxnCommit c = HALO__LINK__TXN_COMMIT__INIT;
    LinkMsg m = HALO__LINK__MSG__INIT;
    LinkMsg *reply = NULL;

    assert_return(t && done, -EINVAL);
    halo *h = t->h;
    size_t bytes = 0;
    for (size_t i = 0; i < t->n; i++)
        bytes += t->parts[i].data.len + strlen(t->parts[i].comp) + 16;
    int r = t->n == 0 ? -EINVAL : bytes > LINK_MSG_MAX - 1024 ? -EMSGSIZE : 0;
    if (r >= 0) {
        c.n_parts = t->n;
        c.parts = t->pparts;
        c.timeout_msec = timeout_msec;
        m.body_case = HALO__LINK__MSG__BODY_TXN_COMMIT;
        m.txn_commit = &c;
        r = halo__request(h, &m, &c.seq, &reply);
    }
    halo_txn_free(t);
    if (r < 0)
        return r;
    const char *txid = reply->reply->txn_id;
    struct halo_txn_wait *w = calloc(1, sizeof(*w) + strlen(txid) + 1);
    char *copy = ret_txid ? strdup(txid) : NULL;
    if (!w || (ret_txid && !copy)) {
        free(w);
        free(copy);
        link_msg_free(reply);
        return -ENOMEM; /* it runs all the same: the participants apply or roll back */
    }
    strcpy(w->txid, txid);
    w->done = done;
    w->userdata = userdata;
    pthread_mutex_lock(&h->lock);
    LIST_PREPEND(waits, &h->txn_waits, w);
    pthread_mutex_unlock(&h->lock);
    link_msg_free(reply);
    if (ret_txid)
        *ret_txid = copy;
    return 0;
}

HALO_EXPORT int halo_txn_outcome(halo *h, const char *txid, char **ret_reason) {
    Halo__Link__TxnQuery q = HALO__LINK__TXN_QUERY__INIT;
    LinkMsg m = HALO__LINK__MSG__INIT;
    LinkMsg *reply = NULL;

    if (ret_reason)
        *ret_reason = NULL;
    assert_return(h && txid && *txid && strlen(txid) <= LINK_TXN_ID_MAX, -EINVAL);
    q.txn_id = (char *)txid;
    m.body_case = HALO__LINK__MSG__BODY_TXN_QUERY;
    m.txn_query = &q;
    int r = halo__request(h, &m, &q.seq, &reply);
    if (r < 0)
        return r;
    uint32_t state = reply->reply->txn_state;
    r = state == LINK_TXN_STATE_COMMITTED ? 0 : state == LINK_TXN_STATE_ABORTED ? -ECANCELED : -EINPROGRESS;
    if (r == -ECANCELED && ret_reason && !(*ret_reason = strdup(reply->reply->txn_reason)))
        r = -ENOMEM;
    link_msg_free(reply);
    return r;
}

bool halo__txn_done(halo *h, const Halo__Link__TxnDone *d) {
    struct halo_txn_wait *w, *found = NULL;
    pthread_mutex_lock(&h->lock);
    LIST_FOREACH (waits, w, &h->txn_waits)
        if (streq(w->txid, d->txn_id)) {
            found = w;
            LIST_REMOVE(waits, &h->txn_waits, w);
            break;
        }
    pthread_mutex_unlock(&h->lock);
    if (!found)
        return false;
    int result = d->error < 0 ? d->error : d->committed ? 0 : -ECANCELED;
    found->done(h, found->txid, result, d->reason, found->userdata);
    free(found);
    return true;
}

/* A TxnDone saying the link ended, as if read from it (decoded: link_msg_free() frees it). */
static LinkMsg *lost_msg(const char *txid) {
    Halo__Link__TxnDone d = HALO__LINK__TXN_DONE__INIT;
    LinkMsg m = HALO__LINK__MSG__INIT, *ret = NULL;
    d.txn_id = (char *)txid;
    d.reason = (char *)"the link to halod ended before the outcome";
    d.error = -ECONNRESET;
    m.body_case = HALO__LINK__MSG__BODY_TXN_DONE;
    m.txn_done = &d;
    _cleanup_free_ uint8_t *buf = malloc(LINK_MSG_MAX);
    int n = buf ? link_encode(&m, buf, LINK_MSG_MAX) : -ENOMEM;
    return n >= 0 && link_decode(buf, (size_t)n, &ret) >= 0 ? ret : NULL;
}

void halo__txn_link_lost(halo *h) {
    struct halo_txn_wait *w;
    LIST_FOREACH (waits, w, &h->txn_waits) {
        /* Said through halo_dispatch(), as the outcome would have been. */
        struct queued *q = calloc(1, sizeof(*q));
        LinkMsg *m = q ? lost_msg(w->txid) : NULL;
        if (m)
            halo__dispatch_push(h, q, m);
        else
            free(q);
    }
}

void halo__txn_free(halo *h) {
    struct halo_txn_wait *w;
    while ((w = LIST_POP(waits, &h->txn_waits)))
        free(w);
}
