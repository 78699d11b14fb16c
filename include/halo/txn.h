/* SPDX-License-Identifier: MIT */
/*
 * Transactions across participants (since 0.7, docs/transactions.md): a two-phase commit over
 * components that each manage a resource (seed 001's Transaction Manager: "all participants are
 * updated properly, or will roll back").  halod coordinates, with the transaction's log in the
 * store, so that a halod killed at any step finishes or rolls back what was in flight.
 *
 * An initiator (any process on halod's socket) begins a transaction, adds participants (each a
 * component, with the bytes it is asked to apply) and commits; the outcome comes later through
 * halo_dispatch(), as a callback: a transaction can wait for a participant longer than a call
 * waits for halod.
 *
 * A participant (a registered component) sets its callbacks: prepare() makes the change ready,
 * durably (a component restarted after it voted yes must still be able to apply it), and votes;
 * outcome() applies or forgets it, durably, before it returns.  Both may be called again for the
 * same transaction (after a restart of halod or of the component): they must be idempotent.
 */
#ifndef HALO_TXN_H
#define HALO_TXN_H

#include <stdbool.h>
#include <stddef.h>

#include "halo/halo.h"

#ifdef __cplusplus
extern "C" {
#endif

/* Participants of one transaction, at most. */
#define HALO_TXN_PARTICIPANTS_MAX 16
/* The bytes one participant is asked to apply, at most. */
#define HALO_TXN_DATA_MAX (16 * 1024)
/* A no vote's reason: longer ones are cut. */
#define HALO_TXN_REASON_MAX 512
/* How long halod keeps a finished transaction's outcome for halo_txn_outcome(). */
#define HALO_TXN_OUTCOME_KEEP_SEC 3600
/* prepare()'s answer when the component votes later, with halo_txn_vote(). */
#define HALO_TXN_VOTE_LATER 1

typedef struct halo_txn halo_txn;

/*
 * Participant.  prepare() returns 0 (yes: ready to commit), a negative errno (no: the
 * transaction aborts) or HALO_TXN_VOTE_LATER.  outcome() is told commit (apply what was
 * prepared) or abort (forget it); libhalo acknowledges when it returns.  An abort is also told
 * to a participant that had not voted yet, or that never heard the prepare.
 */
typedef int (*halo_txn_prepare_cb)(halo *h, const char *txid, const char *comp, const void *data, size_t len,
                                   void *userdata);
typedef void (*halo_txn_outcome_cb)(halo *h, const char *txid, const char *comp, bool commit, void *userdata);

/* Sets the participant's callbacks (both, or both NULL: every prepare is then voted no).
 * Returns 0 or -EINVAL. */
int halo_txn_participate(halo *h, halo_txn_prepare_cb prepare, halo_txn_outcome_cb outcome, void *userdata);

/*
 * The vote prepare() left for later: 0 yes, negative no (reason: NULL or why).  Returns 0, or
 * -HALO_ENOTREG (the handle has no registered component), -EPERM (its component is not a
 * participant), -HALO_EUNKNOWN (no such transaction: finished), -HALO_EBADSTATE (not asked on
 * this link, voted already, or decided meanwhile: a timeout), or a link error.
 */
int halo_txn_vote(halo *h, const char *txid, int vote, const char *reason);

/*
 * Initiator.  The outcome: result 0 committed (every participant voted yes; each applies it,
 * now or when it comes back), -ECANCELED aborted (reason says why: a no vote, a participant
 * that ended or did not vote in time, a coordinator that restarted), -ECONNRESET unknown (the
 * link to halod ended first: the transaction finishes or rolls back all the same).
 */
typedef void (*halo_txn_done_cb)(halo *h, const char *txid, int result, const char *reason, void *userdata);

/* A new transaction, empty.  0, -EINVAL or -ENOMEM. */
int halo_txn_begin(halo *h, halo_txn **ret);
/* comp will be asked to apply data (len bytes, up to HALO_TXN_DATA_MAX).  0, -EINVAL (bad name,
 * named twice), -EMSGSIZE (too much data), -E2BIG (too many participants), -ENOMEM. */
int halo_txn_add(halo_txn *t, const char *comp, const void *data, size_t len);
/*
 * Commits t, which is freed whatever the result.  halod writes its record, then asks every
 * participant; a participant that has not voted within timeout_msec (0: 10 s; 100 ms to 10 min)
 * aborts it.  Returns 0 once halod has the record, with its id in *ret_txid if not NULL (free()
 * it); done(txid, result, reason) runs later from halo_dispatch().  Or, with no callback to come:
 * -HALO_EUNKNOWN (a participant is not a component of the cluster), -EINVAL (no participant,
 * bad timeout), -EMSGSIZE (all the data together exceed a message), -EBUSY (too many
 * transactions in flight), -HALO_ETRYAGAIN (halod is starting), a link error.
 */
int halo_txn_commit(halo_txn *t, unsigned timeout_msec, halo_txn_done_cb done, void *userdata, char **ret_txid);
/*
 * The outcome of transaction txid, asked of halod: for an initiator whose link ended before done()
 * ran, or that restarted.  halod answers from the store, on any node, for a transaction in flight
 * and for one finished within the last hour (HALO_TXN_OUTCOME_KEEP_SEC; at most the latest 4,096
 * of the cluster).  Returns 0 committed, -ECANCELED aborted (then *ret_reason, if ret_reason is
 * not NULL, says why: free() it; else it is set to NULL), -EINPROGRESS not decided yet (ask again
 * later), -HALO_EUNKNOWN no such transaction (never begun, or finished longer ago), -EINVAL, or a
 * link error.  Since 0.7.
 */
int halo_txn_outcome(halo *h, const char *txid, char **ret_reason);
/* Frees a transaction not committed.  Accepts NULL. */
void halo_txn_free(halo_txn *t);

#ifdef __cplusplus
}
#endif

#endif
