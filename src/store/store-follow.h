/* SPDX-License-Identifier: MIT */
/* Following a prefix of the store: read it, then every change after the read, read again when history is gone. */
#pragma once

/*
 * A follower keeps a caller's copy of a prefix up to date, the way every
 * part of halod that mirrors keys needs it:
 *
 *  1. It reads the prefix (one transaction: a GET_PREFIX of the prefix, or
 *     the caller's own read ops) and hands the result to loaded().
 *  2. It watches the prefix from the revision after the read, and hands
 *     every change to changed(), in revision order, with no gap and no
 *     repeat, however the store delivers them.
 *  3. If the watch fell behind the store's history (-ESTALE: compacted, or
 *     the local backends' bounded history), it starts over at 1 at once:
 *     loaded() again, with every key under the prefix now.  The caller
 *     replaces what it holds: a key it had that is not in the new read was
 *     deleted meanwhile.
 *
 * Transient errors (a read that failed, a watch that ended with an error
 * other than -ESTALE, a call that could not start) never reach the caller:
 * the follower retries, after a delay that starts at retry_min_msec and
 * doubles up to retry_max_msec, and goes back to retry_min_msec after each
 * success (a read, or a change delivered).  A failed read is read again; a
 * failed watch is watched again from the revision after the last change
 * handed over (so a reload is needed only after -ESTALE).
 *
 * It gives up only when the store closes: store_free() first ends every
 * follower of the store with stopped(-ECANCELED) (an in-flight read is then
 * forgotten, the watch cancelled, the retry timer stopped), before the
 * backend runs its own pending callbacks.  A follower that stopped is inert
 * and never touches its store again, but stays allocated until
 * store_follow_free(), which may come after store_free().
 *
 * loaded() and changed() run from the store's loop, stopped() from inside
 * store_free(); none from inside store_follow().  Each may call
 * store_follow_free() on its own follower or another, store_free(), and any
 * store call.  A store_free() from inside loaded() or changed() ends that
 * follower with stopped(-ECANCELED) right after the callback returns.
 *
 * The follower uses a uv_timer on the store's loop; store_follow_free()
 * closes it, so, as after store_free(), run the loop once more to release it.
 */

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "store.h"

/* Retry delays when none are given: those of halod's event queue. */
#define STORE_FOLLOW_RETRY_MIN_MSEC 100
#define STORE_FOLLOW_RETRY_MAX_MSEC 2000

/* Every pointer given to a callback is valid only during that call. */
struct store_follow_ops {
    /* The read, done: r is a txn result (r->revision, r->kvs: the keys read,
     * in op order then key order).  Runs first, and again after a -ESTALE. */
    void (*loaded)(struct store_follow *f, const store_result *r, void *userdata);
    /* The changes under the prefix after the read, in revision order; n >= 1
     * (several when one txn changed several keys, or after a reconnect). */
    void (*changed)(struct store_follow *f, const store_event *events, size_t n, void *userdata);
    /* The follower gave up for good: error is -ECANCELED (the store is
     * closing); no callback follows.  May be NULL. */
    void (*stopped)(struct store_follow *f, int error, void *userdata);
};

struct store_follow_params {
    const char *prefix; /* what is watched (copied); "" is every key */
    /* The default read (n_read_ops == 0): keys and revisions only, every
     * value empty.  Changes carry values all the same (watches have no
     * keys-only form). */
    bool keys_only;
    /* Optional: the read as GET and GET_PREFIX ops of one txn (copied), for a
     * caller that needs keys next to the prefix read at the same revision.
     * The watch still covers prefix only. */
    const store_op *read_ops;
    size_t n_read_ops;
    /* Optional retry delays: 0 gives STORE_FOLLOW_RETRY_{MIN,MAX}_MSEC. */
    uint64_t retry_min_msec, retry_max_msec;
};

/*
 * Starts following p->prefix in s: the read is sent before it returns;
 * loaded() runs later from the loop.  *ops is copied, userdata is handed to
 * every callback; p and what it points to are copied.  Returns 0 and the
 * follower in *ret, which the caller owns (free with store_follow_free());
 * or, with no callback to come and *ret untouched:
 *   -EINVAL     a NULL argument, a NULL loaded or changed, a prefix too
 *               long, read ops that are not valid GET/GET_PREFIX ops or more
 *               than STORE_TXN_OPS_MAX of them, retry_min_msec >
 *               retry_max_msec (once the defaults are in);
 *   -ECANCELED  store_free() has started;
 *   -ENOMEM.
 */
int store_follow(store *s, const struct store_follow_params *p, const struct store_follow_ops *ops, void *userdata,
                 struct store_follow **ret);

/* Stops and frees f; accepts NULL, returns NULL.  No callback of f runs after
 * it, even when called from one of f's callbacks. */
struct store_follow *store_follow_free(struct store_follow *f);

/* The revision f is at: the last one handed to loaded() or changed() (during
 * a callback, including that one's), 0 before the first loaded(). */
int64_t store_follow_revision(const struct store_follow *f);

/* Internal to the store: store_free() calls it first, to end every follower
 * of s with stopped(-ECANCELED). */
void store_follow_stop_all(store *s);
