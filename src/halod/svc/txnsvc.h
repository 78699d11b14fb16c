/* SPDX-License-Identifier: MIT */
/*
 * Transactions across participants (seed 001's Transaction Manager: "all participants are
 * updated properly, or will roll back"; include/halo/txn.h, docs/transactions.md): a two-phase
 * commit whose log is the store, so that one code runs on one node (SQLite) and on several
 * (etcd).  Every halod follows txn/ in the store: the halod an initiator asked coordinates (writes
 * the record, decides); the halod a participant component is registered on delivers it the
 * prepare and the outcome and writes its vote and acknowledgement.  Presumed abort: a transaction
 * with no decision whose coordinator is not the halod that began it (a restart) is aborted.
 */
#pragma once

#include <stdbool.h>
#include <uv.h>

#include "link.h"
#include "store.h"

struct amf;
struct conn;
struct txnsvc;

/* Transactions in flight, at most (a commit past it is refused with -EBUSY). */
#define TXNSVC_MAX 1024
/* The prepare timeout when the initiator gives none, and its bounds. */
#define TXNSVC_TIMEOUT_DEFAULT_MSEC 10000
#define TXNSVC_TIMEOUT_MIN_MSEC 100
#define TXNSVC_TIMEOUT_MAX_MSEC (10 * 60 * 1000)
/* How long a finished transaction's outcome is kept in the store for halo_txn_outcome() and
 * haloctl txn TXID, and how many at most (past it the oldest go first). */
#define TXNSVC_KEEP_MSEC (60 * 60 * 1000)
#define TXNSVC_KEEP_MAX 4096
/* For the tests alone: the outcomes are kept this many milliseconds instead. */
#define TXNSVC_KEEP_ENV "HALO_TEST_TXN_KEEP_MSEC"
/* For the tests alone (docs/transactions.md): "record", "votes" or "decision" stops this halod's
 * transactions after that step, so that a test kills it there. */
#define TXNSVC_HOLD_ENV "HALO_TEST_TXN_HOLD"

struct txnsvc_params {
    uv_loop_t *loop;
    store *store;
    const char *prefix; /* the store prefix, "/halo/<cluster>/" */
    const char *node;   /* this node */
    struct amf *amf;
    /* Several nodes: whether this node finishes the transactions that node coordinated (it is not
     * live, and this node is the cluster's coordinator).  NULL: never. */
    bool (*takes_over)(void *userdata, const char *node);
    void *userdata;
};

int txnsvc_new(const struct txnsvc_params *p, struct txnsvc **ret);
struct txnsvc *txnsvc_free(struct txnsvc *s); /* accepts NULL; returns NULL */

/* Takes the transactions' messages of the HA link: whether msg was one. */
bool txnsvc_handle_msg(struct txnsvc *s, struct conn *c, const LinkMsg *msg);
/* c closed: a participant that had not voted on it votes no. */
void txnsvc_conn_closed(struct txnsvc *s, struct conn *c);
/* [{"id","coordinator","state","participants":[{"comp","vote","acked"}],"reason"}], or NULL. */
char *txnsvc_json(const struct txnsvc *s);
/* One transaction: in flight as above, or finished {"id","coordinator","state" ("committed" or
 * "aborted"),"reason","finished","unacked"?}.  0, -HALO_EUNKNOWN, -ENOMEM. */
int txnsvc_show_json(struct txnsvc *s, const char *txid, char **ret);
/* haloctl txn forget: finishes a decided transaction without the acknowledgements still missing
 * (participants whose node is gone for good); c answered (seq) once written. */
void txnsvc_forget(struct txnsvc *s, struct conn *c, uint64_t seq, const char *txid);
/* haloctl txn abort: decides an undecided transaction abort, as a no vote would; c answered
 * (seq) once written (-HALO_EBADSTATE: decided already). */
void txnsvc_abort(struct txnsvc *s, struct conn *c, uint64_t seq, const char *txid);
