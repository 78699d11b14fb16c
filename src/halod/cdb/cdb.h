/* SPDX-License-Identifier: MIT */
/* The configuration database (CDB): a persistent, transactional, hierarchical key-value database in SQLite. */
#pragma once

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <uv.h>

#include "cdb-path.h"
#include "hlc.h"
#include "link.h"

/*
 * A transaction id: the node that committed it first (the primary) and the
 * hybrid logical clock time of the commit.  Its text form is
 * "<hlc decimal>@<node>"; { 0, "" } means "no transaction yet" (an empty
 * database) and prints as "0@".
 */
#define CDB_TXID_STRING_MAX (HLC_DECIMAL_MAX + 1 + LINK_NAME_MAX + 1)
typedef struct cdb_txid {
    uint64_t hlc;
    char node[LINK_NAME_MAX + 1];
} cdb_txid;

/* One change: set path to value, or (del) delete path and everything under it. */
struct cdb_op {
    const char *path;
    const uint8_t *value;
    size_t len;
    bool del;
};

struct cdb;

/* Opens (creating it if needed) the database file at path; node names the
 * transactions this database commits.  Returns 0, -ENOMEM, -EBADMSG (not a
 * database of ours, or damaged), or another -errno of SQLite. */
int cdb_open(uv_loop_t *loop, const char *path, const char *node, struct cdb **ret);
/* Commits what is pending (callbacks run), then closes.  Accepts NULL; returns NULL. */
struct cdb *cdb_close(struct cdb *c);

/* The last transaction this database holds. */
const cdb_txid *cdb_last(const struct cdb *c);
/* The last transaction it took from another node (applied, or the end of a full
 * copy); { 0, "" } if none.  What a primary's history has of other nodes ends there. */
const cdb_txid *cdb_upstream(const struct cdb *c);
/* Calls fn, oldest first, for each of the last 4,096 transactions this node
 * committed itself (not applied from another) whose HLC time is after hlc,
 * with their paths ("/a /b +3 more", shortened), until fn returns non-zero
 * (returned).  A full copy forgets them all.  Returns 0 or an error. */
typedef int (*cdb_own_fn)(const cdb_txid *id, const char *paths, void *userdata);
int cdb_own_after(struct cdb *c, uint64_t hlc, cdb_own_fn fn, void *userdata);
char *cdb_txid_format(const cdb_txid *id, char buf[static CDB_TXID_STRING_MAX]);
int cdb_txid_parse(const char *s, cdb_txid *ret);
bool cdb_txid_equal(const cdb_txid *a, const cdb_txid *b);

/* Reads a value.  Returns 0 with *ret_value (malloc'd, free() it) and *ret_len,
 * -ENOENT, -ENOMEM, -EIO. */
int cdb_get(struct cdb *c, const char *path, uint8_t **ret_value, size_t *ret_len);

/* Calls fn for path itself and every path under it, in byte order, starting
 * after `after` (NULL: from the start), until fn returns > 0 (stop: more follow)
 * or < 0 (error, returned).  Returns 0 when the subtree was all seen, 1 when fn
 * stopped it, or an error. */
typedef int (*cdb_list_fn)(const char *path, const uint8_t *value, size_t len, void *userdata);
int cdb_list(struct cdb *c, const char *path, const char *after, cdb_list_fn fn, void *userdata);

/* Number of paths and bytes of values the database holds. */
int cdb_size(struct cdb *c, uint64_t *ret_paths, uint64_t *ret_bytes);

/*
 * Commits a transaction: queued (ops are copied) and written together with
 * every other transaction queued in the same loop iteration, in one SQLite
 * transaction.  id NULL: a new transaction of this node (the primary); else
 * the primary's transaction being applied here (a secondary).  cb runs once
 * the transaction is durable (survives a crash of the process), with its id,
 * or with the error that made the whole group fail.  Returns 0, -EINVAL (a bad
 * path, no ops), -ENOMEM, -ESHUTDOWN (closing).
 */
typedef void (*cdb_commit_cb)(struct cdb *c, int error, const cdb_txid *id, void *userdata);
int cdb_commit(struct cdb *c, const cdb_txid *id, const struct cdb_op *ops, size_t n, cdb_commit_cb cb, void *userdata);

/*
 * Observers see every transaction once it is durable, in commit order, before
 * its commit callback runs: the HA link's subscriptions and replication.
 */
typedef void (*cdb_observer_fn)(struct cdb *c, const cdb_txid *id, const struct cdb_op *ops, size_t n, void *userdata);
/* Runs after the last transaction of a group written together (may be NULL), so that an
 * observer can send what it gathered in one go. */
typedef void (*cdb_group_end_fn)(struct cdb *c, void *userdata);
int cdb_observe(struct cdb *c, cdb_observer_fn fn, cdb_group_end_fn group_end, void *userdata);
/* Removes an observer (one going away before the database). */
void cdb_unobserve(struct cdb *c, cdb_observer_fn fn, void *userdata);

/*
 * A full copy, primary side: a consistent snapshot read through a second
 * connection while commits go on.  cdb_snapshot_next() calls fn for the next
 * rows until about max_bytes were passed or fn returned > 0 (it took the row
 * and wants no more now); returns 1 while rows may remain, 0 at the end, or
 * an error.
 */
struct cdb_snapshot;
int cdb_snapshot_open(struct cdb *c, struct cdb_snapshot **ret, cdb_txid *ret_id, uint64_t *ret_paths);
int cdb_snapshot_next(struct cdb_snapshot *s, size_t max_bytes, cdb_list_fn fn, void *userdata);
struct cdb_snapshot *cdb_snapshot_close(struct cdb_snapshot *s);

/*
 * A full copy, secondary side: cdb_replace_begin() starts a staging table,
 * cdb_replace_add() fills it, cdb_replace_end() swaps it in atomically with id
 * as the last transaction (observers see it as a transaction with no ops:
 * anything may have changed), cdb_replace_abort() drops it.  Nothing else
 * commits meanwhile: cdb_commit() returns -EBUSY.
 */
int cdb_replace_begin(struct cdb *c);
int cdb_replace_add(struct cdb *c, const char *path, const uint8_t *value, size_t len);
int cdb_replace_end(struct cdb *c, const cdb_txid *id);
void cdb_replace_abort(struct cdb *c);

/* Binds the file to subtree, the part of the CDB it holds for a cdb-roles group (a row of its own,
 * kept by full copies): 0 the first time (once it holds nothing outside subtree) and after, with the
 * same subtree; -EEXIST (bound to another) or -ENOTEMPTY (it holds paths outside), why says what. */
int cdb_bind_subtree(struct cdb *c, const char *subtree, char *why, size_t n);
