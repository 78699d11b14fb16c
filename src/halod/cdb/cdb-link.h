/* SPDX-License-Identifier: MIT */
/* The configuration database on the HA link: get, list, commit and subscribe for local processes and haloctl. */
#pragma once

#include <stdbool.h>

#include "cdb.h"
#include "server.h"

/*
 * The link serves one main database and up to CDB_LINK_SUBTREES_MAX
 * subtrees, each held in a database of its own and replicated on its own
 * (a cdb-roles group's cdb-subtree).  Together they are regions: a path
 * belongs to the subtree that holds it (cdb_path_under()), else to the main
 * database.  Clients see one tree:
 *   - a get reads the path's region;
 *   - a commit goes to one region: when its ops fall in several, or one
 *     deletes an ancestor of a subtree ("/" too), it fails with -EXDEV;
 *   - a list of an ancestor of subtrees merges the main database's page and
 *     each subtree's in byte order (what the main database holds under a
 *     subtree is hidden);
 *   - a subscription sees every region's transactions, each region's in its
 *     own commit order, and a region's full copy (reset) when it overlaps it.
 */
#define CDB_LINK_SUBTREES_MAX 16

struct cdb_link;

/*
 * What the HA role says about writes (ha-roles.c): may_write returns 0, or
 * -HALO_EREADONLY on a secondary; replicated runs done(arg, error) once
 * transaction id may be acknowledged (at once, or when every secondary in
 * sync has it).  Without a role, every write is allowed and acknowledged
 * once durable here.
 */
struct cdb_link_role {
    int (*may_write)(void *userdata);
    void (*replicated)(void *userdata, const cdb_txid *id, void (*done)(void *arg, int error), void *arg);
};

/* db is the main database: it must outlive the link.  Returns 0, -ENOMEM, or cdb_observe()'s error. */
int cdb_link_new(struct cdb *db, struct cdb_link **ret);
/* Stops observing every region's database; accepts NULL; returns NULL. */
struct cdb_link *cdb_link_free(struct cdb_link *l);
/*
 * Serves subtree (copied) from db, which must outlive the link and hold
 * nothing outside subtree.  Returns 0, -EINVAL (not a CDB path, or "/"),
 * -EEXIST (db is already served, or subtree is equal to, under or above
 * another one), -ENOSPC (CDB_LINK_SUBTREES_MAX already), -ENOMEM, or
 * cdb_observe()'s error.
 */
int cdb_link_add_subtree(struct cdb_link *l, const char *subtree, struct cdb *db);
/* Sets the role of the region served from db (the main database or a subtree's); role NULL: none. */
void cdb_link_set_role(struct cdb_link *l, struct cdb *db, const struct cdb_link_role *role, void *userdata);

/* Handles a Cdb* message; returns false for any other. */
bool cdb_link_handle_msg(struct cdb_link *l, struct conn *c, const LinkMsg *m);
/* Forgets the connection's subscriptions and requests. */
void cdb_link_conn_closed(struct cdb_link *l, struct conn *c);

/* What an item of a list reply costs on top of its path, the path's NUL and its value. */
#define CDB_LINK_ITEM_FRAMING 16

/* One database's page of a list: items in byte order; more: it holds paths after the last one
 * (then n > 0). */
struct cdb_link_page {
    Halo__Link__CdbOp *const *items;
    size_t n;
    bool more;
};

/*
 * Merges the pages of several databases (which hold different paths) into
 * one page in byte order (strcmp, SQLite's BINARY), as one database holding
 * them all would give it, so that the next page, asked for after its last
 * path, goes on where it stops.  It stops at the smallest last path of the
 * pages that say more (past it, a database's next paths are not known yet),
 * at max_items, and before the items' costs (path, NUL, value and
 * CDB_LINK_ITEM_FRAMING each) would exceed max_bytes; the first item always
 * goes in.  At most n_pages 1 + CDB_LINK_SUBTREES_MAX.
 * Writes the items to out (room for max_items) and returns how many;
 * *ret_more: paths follow the last one (a page said more, or the merge cut).
 */
size_t cdb_link_merge_pages(const struct cdb_link_page *pages, size_t n_pages, size_t max_items, size_t max_bytes,
                            Halo__Link__CdbOp **out, bool *ret_more);
