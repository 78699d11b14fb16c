/* SPDX-License-Identifier: MIT */
/*
 * The configuration database (CDB) through libhalo (since 0.3): a
 * transactional, persistent, hierarchical key-value database that halod
 * serves, and replicates from the primary node to its secondaries
 * (include/halo/ha.h).  Any handle from halo_open() may use it, registered or
 * not.
 *
 * Paths look like "/a/b/c": components separated by '/', none empty, no
 * trailing '/', no control characters, at most HALO_CDB_PATH_MAX bytes.
 * "/" is the root: it can be listed, subscribed to and deleted, never set.
 * Values are bytes (0 to about 60 KiB).  Deleting a path deletes everything
 * under it.
 *
 * Every commit gets a transaction id, "<hlc>@<node>": the node that committed
 * it (the primary) and the hybrid logical clock time of the commit.
 */
#ifndef HALO_CDB_H
#define HALO_CDB_H

#include <stddef.h>

#include "halo/halo.h"

#ifdef __cplusplus
extern "C" {
#endif

#define HALO_CDB_PATH_MAX 1024
/* Paths and values of one transaction together, each change counting 16 bytes more. */
#define HALO_CDB_TXN_MAX (60 * 1024)
/* A transaction id and its NUL. */
#define HALO_CDB_TXID_MAX 277

/*
 * Reads the value at path: *ret_value (free() it; a NUL follows the *ret_len
 * bytes, so text can be used as a string).
 * Returns 0, -ENOENT, -EINVAL (bad path), -ENOTCONN, -HALO_ETRYAGAIN, -ENOMEM.
 */
int halo_cdb_get(halo *h, const char *path, void **ret_value, size_t *ret_len);

typedef struct halo_cdb_item {
    const char *path;
    const void *value; /* a NUL follows the len bytes */
    size_t len;
} halo_cdb_item;

/*
 * Lists path itself and every path under it, in byte order: *ret_items is
 * one allocation (free() it) of *ret_n items.  A big subtree is read in parts:
 * commits between two parts may show in the later parts only.
 * Returns 0 (also for an empty subtree), -EINVAL, -ENOTCONN, -HALO_ETRYAGAIN, -ENOMEM.
 */
int halo_cdb_list(halo *h, const char *path, halo_cdb_item **ret_items, size_t *ret_n);

/*
 * A transaction: collected here, sent to halod by halo_cdb_txn_commit() and
 * applied there all or nothing.  Not a snapshot: reads are not part of it.
 */
typedef struct halo_cdb_txn halo_cdb_txn;

/* Returns 0 and *ret, -EINVAL, -ENOMEM. */
int halo_cdb_txn_begin(halo *h, halo_cdb_txn **ret);
/* Sets path to len bytes of value (copied).  Returns 0, -EINVAL (bad path,
 * the root), -E2BIG (the transaction would exceed HALO_CDB_TXN_MAX or 1,024
 * changes), -ENOMEM.  A failed call leaves the transaction as it was. */
int halo_cdb_txn_set(halo_cdb_txn *t, const char *path, const void *value, size_t len);
/* Deletes path and everything under it ("/": everything).  Returns as halo_cdb_txn_set(). */
int halo_cdb_txn_delete(halo_cdb_txn *t, const char *path);
/*
 * Commits and frees t (whatever the result).  Returns once the transaction is
 * durable on this node and, with synchronous replication, on every secondary
 * in sync; its id goes to ret_txid if not NULL.
 * Returns 0, -HALO_EREADONLY (this node is a secondary), -EINVAL (no
 * changes), -ENOTCONN, -HALO_ETRYAGAIN, -ETIMEDOUT (no answer in time: it may
 * or may not be committed), -ESHUTDOWN or -HALO_ECLOSED (committed here, but
 * halod stopped, or the node left its primary role, before the secondaries
 * confirmed it), -ENOMEM, or the database's error (-EIO, -ENOSPC).
 * Where parts of the tree are replicated on their own (subtrees that service
 * groups drive; not configurable yet), a transaction goes to one of them:
 * -EXDEV when its paths lie in different ones, or when it deletes an ancestor
 * of such a subtree ("/" too).  Commit those parts separately.
 */
int halo_cdb_txn_commit(halo_cdb_txn *t, char ret_txid[HALO_CDB_TXID_MAX]);
/* Drops t without committing; accepts NULL; returns NULL. */
halo_cdb_txn *halo_cdb_txn_abort(halo_cdb_txn *t);

typedef enum halo_cdb_op {
    HALO_CDB_SET = 1,
    HALO_CDB_DELETE = 2, /* path and everything under it */
} halo_cdb_op;

typedef struct halo_cdb_change {
    halo_cdb_op op;
    const char *path;
    const void *value; /* SET: len bytes, a NUL follows */
    size_t len;
} halo_cdb_change;

/*
 * A committed transaction touched the subscribed subtree: its changes there,
 * in order (a DELETE of an ancestor of the subscribed path is included).  n 0:
 * the whole database was replaced by a full copy from the primary; read the
 * subtree again.  Run by halo_dispatch(); the arguments are valid during the call.
 */
typedef void (*halo_cdb_change_cb)(halo *h, unsigned sub, const char *txid, const halo_cdb_change *changes, size_t n,
                                   void *userdata);

/*
 * From now on, calls cb for every commit that touches path's subtree ("/":
 * every commit).  *ret_sub names the subscription.  A registered component's
 * subscriptions are made again after libhalo reconnects to a restarted halod
 * (commits made while it was away are not replayed: read again on
 * HALO_LINK_RESTORED); an unregistered handle's end with its link.
 * Returns 0, -EINVAL, -ENOSPC (64 per handle), -ENOTCONN, -HALO_ETRYAGAIN, -ENOMEM.
 */
int halo_cdb_subscribe(halo *h, const char *path, halo_cdb_change_cb cb, void *userdata, unsigned *ret_sub);
/* Returns 0, -ENOENT, -ENOTCONN. */
int halo_cdb_unsubscribe(halo *h, unsigned sub);

#ifdef __cplusplus
}
#endif

#endif
