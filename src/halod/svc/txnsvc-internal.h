/* SPDX-License-Identifier: MIT */
/* What txnsvc.c (the protocol) and txnsvc-outcome.c (finished transactions' outcomes, queries and
 * inspection) share: the in-memory copy of txn/ in the store. */
#pragma once

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <jansson.h>

#include "link.h"
#include "list.h"
#include "store.h"
#include "time-util.h"
#include "txnsvc.h"

enum vote {
    VOTE_NONE,    /* not asked yet */
    VOTE_PENDING, /* asked (a halod sent it the prepare) */
    VOTE_YES,
    VOTE_NO,   /* the component said no */
    VOTE_LOST, /* it ended before it voted: no, but it may hold a prepared state, so it hears the abort */
    VOTE_COUNT,
};

/* The votes as the store and haloctl spell them. */
extern const char *const txn_vote_names[VOTE_COUNT];

struct part {
    char comp[LINK_NAME_MAX + 1];
    bool listed; /* named by the record */
    enum vote vote;
    char reason[LINK_TXN_REASON_MAX + 1];
    bool acked;
    void *data;
    size_t data_len;
    struct conn *prepared_on; /* the link this halod sent the prepare to */
    struct conn *told_on;     /* the link this halod sent the outcome to */
    bool writing;             /* a vote or an ack of this halod on its way to the store */
};

enum decision { DECISION_NONE, DECISION_COMMIT, DECISION_ABORT };

struct txn {
    LIST_FIELDS(struct txn, txns);
    struct txnsvc *svc;
    char id[LINK_TXN_ID_MAX + 1];
    bool have_record, seen;
    char coordinator[LINK_NAME_MAX + 1];
    usec_t deadline; /* realtime */
    size_t n_parts;
    struct part parts[LINK_TXN_PARTS_MAX];
    enum decision decision;
    char reason[LINK_TXN_REASON_MAX + 1];
    bool mine;           /* this halod began it: not an orphan of a restart */
    bool writing_record; /* its record is on its way to the store */
    bool deciding, deleting;
    struct conn *initiator; /* told the decision, if still connected */
    uint64_t initiator_seq;
};

/* A finished transaction's outcome (txn/done/<txid>), kept TXNSVC_KEEP_MSEC. */
struct txn_done {
    LIST_FIELDS(struct txn_done, dones);
    char coordinator[LINK_NAME_MAX + 1];
    bool committed;
    bool deleting;   /* its delete is on its way to the store */
    usec_t finished; /* realtime */
    char *reason;    /* the abort's, or "" */
    char *unacked;   /* the participants an operator forgot it for, as JSON, or NULL */
    char id[];
};

struct txnsvc {
    uv_loop_t *loop;
    store *store;
    struct amf *amf;
    bool (*takes_over)(void *userdata, const char *node);
    void *userdata;
    char prefix[STORE_KEY_MAX];
    char node[LINK_NAME_MAX + 1];
    char hold[16];
    usec_t keep; /* how long a finished transaction's outcome is kept */
    struct store_follow *follow;
    bool loaded;
    uv_timer_t *tick;
    uint64_t last_id;
    size_t n_txns;
    /* Writes whose callback has not run: a txnsvc_free() meanwhile leaves the last to free it
     * (store_free() runs them after the services are gone). */
    size_t n_writes;
    LIST_HEAD(struct write) writes;
    bool freed;
    LIST_HEAD(struct txn) txns;
    size_t n_dones;
    LIST_HEAD(struct txn_done) dones;
};

/* A store write that names its transaction by id, so that the callback finds it or its absence. */
struct write {
    LIST_FIELDS(struct write, writes);
    struct txnsvc *svc;
    char id[LINK_TXN_ID_MAX + 1];
    char comp[LINK_NAME_MAX + 1];
    struct conn *conn; /* to answer; NULL once it closed (txnsvc_conn_closed()) */
    uint64_t seq;
    int kind;
};

enum { WRITE_VOTE, WRITE_ACK, WRITE_DECISION, WRITE_DELETE, WRITE_PENDING, WRITE_FINISH, WRITE_PRUNE };

/* ---- txnsvc.c ------------------------------------------------------------------------------------ */

struct txn *txn_find(struct txnsvc *s, const char *id);
/* Whether p must hear the decision (and acknowledge it). */
bool txn_needs_outcome(const struct txn *t, const struct part *p);
/* A write of transaction id, answered on c (seq) if not NULL.  NULL: out of memory. */
struct write *txn_write_new(struct txnsvc *s, const char *id, int kind, const char *comp, struct conn *c, uint64_t seq);
void txn_write_cancel(struct write *w);
/* The callback of every write. */
void txn_on_written(store *st, int error, const store_result *r, void *userdata);

/* ---- txnsvc-outcome.c ---------------------------------------------------------------------------- */

/* txn/done/<id> was written (value) or deleted (NULL). */
void txn_done_apply(struct txnsvc *s, const char *id, const char *value, size_t len);
void txn_done_clear(struct txnsvc *s);
struct txn_done *txn_done_find(struct txnsvc *s, const char *id);
/* Ends t: its keys deleted and its outcome kept, in one store transaction, if it is still decided
 * (unacked: an array of the participants that had not acknowledged, when an operator forgets it, or
 * NULL).
 * The write answers c (seq), if not NULL.  0 or -errno. */
int txn_finish(struct txn *t, json_t *unacked, struct conn *c, uint64_t seq);
/* Deletes the outcomes kept longer than s->keep, or past TXNSVC_KEEP_MAX, that this node wrote
 * (or finishes for a node gone). */
void txn_done_prune(struct txnsvc *s);
/* Answers a TxnQuery: the transaction's state and reason, from memory. */
void txn_query(struct txnsvc *s, struct conn *c, const Halo__Link__TxnQuery *q);
