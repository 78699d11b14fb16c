/* SPDX-License-Identifier: MIT */
/* The configuration database (CDB): a persistent, transactional, hierarchical key-value database in SQLite. */

/*
 * Schema (PRAGMA user_version = 2; a version 1 file gains the own table), in
 * its own file (<state-dir>/cdb.db):
 *
 *   CREATE TABLE kv (path TEXT PRIMARY KEY, value BLOB NOT NULL) WITHOUT ROWID;
 *   CREATE TABLE meta (name TEXT PRIMARY KEY, value NOT NULL) WITHOUT ROWID;
 *       'txid_hlc'   the last transaction's HLC time (an INTEGER, the uint64 bits)
 *       'txid_node'  the node that committed it first (TEXT)
 *       'upstream_hlc', 'upstream_node'  the last transaction taken from
 *                    another node (applied, or the end of a full copy)
 *   CREATE TABLE own (hlc INTEGER PRIMARY KEY, paths TEXT NOT NULL);
 *       the last CDB_OWN_MAX transactions this node committed itself, with
 *       their paths (shortened): what a full copy would drop is named from it
 *
 * A subtree is a byte range: the paths under "/a" are those in ["/a/", "/a0")
 * ('0' follows '/'), so list and delete are index range scans.
 *
 * Group commit: cdb_commit() queues; a zero timer writes every queued
 * transaction in one SQLite transaction (BEGIN IMMEDIATE, the ops in order,
 * meta, COMMIT), then runs the observers and the callbacks in order.  With
 * journal_mode=WAL and synchronous=NORMAL a commit is in the WAL before its
 * callback runs: it survives a crash of halod (SIGKILL); an OS crash may lose
 * the last commits before the WAL's next fsync (the store's trade-off, see
 * store-sqlite.c), never leaving a torn database.
 *
 * The writes run on the loop: a group is a few small B-tree updates in the
 * page cache.  The WAL checkpoints, which copy the WAL into the database file
 * and fsync both, do not: past CDB_CHECKPOINT_PAGES a PASSIVE checkpoint runs
 * in libuv's thread pool on a connection of its own (sqlite-wal.h; it never
 * blocks the writer; the writer starts the WAL over once it is all copied).
 * A full copy's reads go through another read-only connection whose read
 * transaction pins a snapshot while commits go on (WAL readers never block
 * the writer).
 */

#include "cdb.h"

#include <errno.h>
#include <inttypes.h>
#include <sqlite3.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "list.h"
#include "macro.h"
#include "parse-util.h"
#include "sqlite-errno.h"
#include "sqlite-wal.h"

#define CDB_OBSERVERS_MAX 4
#define CDB_BUSY_TIMEOUT_MSEC 100
#define CDB_CHECKPOINT_PAGES 4000 /* 16 MB: a hot page rewritten many times is copied once */
#define CDB_OWN_MAX 4096          /* own transactions remembered (own table) */
#define CDB_OWN_PATHS_MAX 200     /* bytes of paths remembered per transaction */

struct pending {
    LIST_FIELDS(struct pending, pending);
    cdb_txid id;
    bool fixed_id; /* the primary's id, applied here */
    struct cdb_op *ops;
    size_t n_ops;
    cdb_commit_cb cb;
    void *userdata;
};

struct cdb {
    uv_loop_t *loop;
    sqlite3 *db;
    char *path;
    char node[LINK_NAME_MAX + 1];
    struct hlc clock;
    cdb_txid last;
    cdb_txid upstream; /* the last transaction taken from another node */
    uint64_t n_own;    /* rows in the own table, about */
    uv_timer_t flush;
    bool flush_open, closing, replacing;
    struct sqlite_wal *wal;            /* checkpoints in the thread pool */
    LIST_HEAD(struct pending) pending; /* commits queued for the next flush, in order */
    struct {
        cdb_observer_fn fn;
        cdb_group_end_fn group_end;
        void *userdata;
    } observers[CDB_OBSERVERS_MAX];
    size_t n_observers;
    sqlite3_stmt *get, *set, *del_one, *del_range, *del_all, *list_range, *meta_set, *stage_add;
    sqlite3_stmt *upstream_set, *own_add, *own_prune;
};

struct cdb_snapshot {
    sqlite3 *db;
    sqlite3_stmt *rows;
    bool done;
};

static int exec_sql(sqlite3 *db, const char *sql) {
    return sqlite_errno(db, sqlite3_exec(db, sql, NULL, NULL, NULL));
}

/* ---- paths and ids ----------------------------------------------------- */

/* The first path of a list outside the subtree in ctx->subtree, copied. */
struct outside {
    const char *subtree;
    char path[LINK_CDB_PATH_MAX + 1];
};

static int first_outside(const char *path, const uint8_t *value, size_t len, void *userdata) {
    struct outside *o = userdata;
    if (cdb_path_under(path, o->subtree))
        return 0;
    snprintf(o->path, sizeof(o->path), "%s", path);
    return 1;
}

int cdb_bind_subtree(struct cdb *c, const char *subtree, char *why, size_t n) {
    sqlite3_stmt *st = NULL;
    int rc = sqlite3_prepare_v2(c->db, "SELECT value FROM meta WHERE name = 'subtree'", -1, &st, NULL);
    if (rc != SQLITE_OK)
        return sqlite_errno(c->db, rc);
    rc = sqlite3_step(st);
    if (rc == SQLITE_ROW) {
        const char *was = (const char *)sqlite3_column_text(st, 0);
        int r = was && streq(was, subtree) ? 0 : -EEXIST;
        if (r < 0)
            snprintf(why, n, "it holds subtree %s", was ? was : "(none)");
        sqlite3_finalize(st);
        return r;
    }
    sqlite3_finalize(st);
    if (rc != SQLITE_DONE)
        return sqlite_errno(c->db, rc);
    struct outside o = {.subtree = subtree};
    int r = cdb_list(c, "/", NULL, first_outside, &o);
    if (r < 0)
        return r;
    if (r > 0) {
        snprintf(why, n, "it holds %s, outside %s", o.path, subtree);
        return -ENOTEMPTY;
    }
    rc = sqlite3_prepare_v2(c->db, "INSERT INTO meta (name, value) VALUES ('subtree', ?1)", -1, &st, NULL);
    if (rc == SQLITE_OK) {
        sqlite3_bind_text(st, 1, subtree, -1, SQLITE_STATIC);
        rc = sqlite3_step(st);
    }
    sqlite3_finalize(st);
    return rc == SQLITE_DONE ? 0 : sqlite_errno(c->db, rc);
}

/* The bounds of the paths strictly under prefix: [prefix "/", prefix "0"). */
static int subtree_bounds(const char *prefix, char **ret_lo, char **ret_hi) {
    size_t n = strcmp(prefix, "/") == 0 ? 0 : strlen(prefix);
    char *lo = malloc(n + 2), *hi = malloc(n + 2);
    if (!lo || !hi) {
        free(lo);
        free(hi);
        return -ENOMEM;
    }
    memcpy(lo, prefix, n);
    memcpy(hi, prefix, n);
    lo[n] = '/';
    hi[n] = '0';
    lo[n + 1] = hi[n + 1] = '\0';
    *ret_lo = lo;
    *ret_hi = hi;
    return 0;
}

char *cdb_txid_format(const cdb_txid *id, char buf[static CDB_TXID_STRING_MAX]) {
    snprintf(buf, CDB_TXID_STRING_MAX, "%" PRIu64 "@%s", id->hlc, id->node);
    return buf;
}

int cdb_txid_parse(const char *s, cdb_txid *ret) {
    const char *at = s ? strchr(s, '@') : NULL;
    cdb_txid id = {0};

    if (!at || strlen(at + 1) > LINK_NAME_MAX || parse_u64_n(s, (size_t)(at - s), &id.hlc) < 0)
        return -EINVAL;
    snprintf(id.node, sizeof(id.node), "%s", at + 1);
    if ((id.hlc == 0) != (id.node[0] == '\0'))
        return -EINVAL;
    *ret = id;
    return 0;
}

bool cdb_txid_equal(const cdb_txid *a, const cdb_txid *b) {
    return a->hlc == b->hlc && streq(a->node, b->node);
}

const cdb_txid *cdb_last(const struct cdb *c) {
    return &c->last;
}

const cdb_txid *cdb_upstream(const struct cdb *c) {
    return &c->upstream;
}

int cdb_own_after(struct cdb *c, uint64_t hlc, cdb_own_fn fn, void *userdata) {
    sqlite3_stmt *st = NULL;
    int r = sqlite_errno(
        NULL, sqlite3_prepare_v2(c->db, "SELECT hlc, paths FROM own WHERE hlc > ?1 ORDER BY hlc", -1, &st, NULL));
    int rc = SQLITE_DONE;
    if (r >= 0) {
        sqlite3_bind_int64(st, 1, (sqlite3_int64)hlc);
        while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
            cdb_txid id = {.hlc = (uint64_t)sqlite3_column_int64(st, 0)};
            snprintf(id.node, sizeof(id.node), "%s", c->node);
            r = fn(&id, (const char *)sqlite3_column_text(st, 1), userdata);
            if (r != 0)
                break;
        }
        if (r == 0 && rc != SQLITE_DONE)
            r = sqlite_errno(NULL, rc);
    }
    sqlite3_finalize(st);
    return r;
}

/* ---- open and close ------------------------------------------------------ */

static const char schema[] = "CREATE TABLE IF NOT EXISTS kv (path TEXT PRIMARY KEY, value BLOB NOT NULL) WITHOUT ROWID;"
                             "CREATE TABLE IF NOT EXISTS meta (name TEXT PRIMARY KEY, value NOT NULL) WITHOUT ROWID;"
                             "CREATE TABLE IF NOT EXISTS own (hlc INTEGER PRIMARY KEY, paths TEXT NOT NULL);"
                             "DROP TABLE IF EXISTS kv_new;"
                             "PRAGMA user_version = 2;";

static int prepare(struct cdb *c, sqlite3_stmt **st, const char *sql) {
    return sqlite_errno(c->db, sqlite3_prepare_v3(c->db, sql, -1, SQLITE_PREPARE_PERSISTENT, st, NULL));
}

static int read_last(struct cdb *c) {
    sqlite3_stmt *st = NULL;
    int rc = sqlite3_prepare_v2(c->db, "SELECT name, value FROM meta", -1, &st, NULL);
    if (rc != SQLITE_OK)
        return sqlite_errno(NULL, rc);
    while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
        const char *name = (const char *)sqlite3_column_text(st, 0);
        if (name && streq(name, "txid_hlc") && sqlite3_column_type(st, 1) == SQLITE_INTEGER)
            c->last.hlc = (uint64_t)sqlite3_column_int64(st, 1);
        else if (name && streq(name, "txid_node") && sqlite3_column_type(st, 1) == SQLITE_TEXT)
            snprintf(c->last.node, sizeof(c->last.node), "%s", (const char *)sqlite3_column_text(st, 1));
        else if (name && streq(name, "upstream_hlc") && sqlite3_column_type(st, 1) == SQLITE_INTEGER)
            c->upstream.hlc = (uint64_t)sqlite3_column_int64(st, 1);
        else if (name && streq(name, "upstream_node") && sqlite3_column_type(st, 1) == SQLITE_TEXT)
            snprintf(c->upstream.node, sizeof(c->upstream.node), "%s", (const char *)sqlite3_column_text(st, 1));
    }
    sqlite3_finalize(st);
    if (rc != SQLITE_DONE)
        return sqlite_errno(NULL, rc);
    if ((c->last.hlc == 0) != (c->last.node[0] == '\0') || (c->upstream.hlc == 0) != (c->upstream.node[0] == '\0'))
        return -EBADMSG;
    rc = sqlite3_prepare_v2(c->db, "SELECT count(*) FROM own", -1, &st, NULL);
    if (rc == SQLITE_OK && (rc = sqlite3_step(st)) == SQLITE_ROW)
        c->n_own = (uint64_t)sqlite3_column_int64(st, 0);
    sqlite3_finalize(st);
    return rc == SQLITE_ROW ? 0 : sqlite_errno(NULL, rc);
}

static void on_flush(uv_timer_t *t);

int cdb_open(uv_loop_t *loop, const char *path, const char *node, struct cdb **ret) {
    struct cdb *c;
    int r, version = -1;

    if (!node || !*node || strlen(node) > LINK_NAME_MAX)
        return -EINVAL;
    c = calloc(1, sizeof(*c));
    if (!c)
        return -ENOMEM;
    c->loop = loop;
    snprintf(c->node, sizeof(c->node), "%s", node);
    hlc_init(&c->clock, NULL, NULL);
    c->path = strdup(path);
    if (!c->path) {
        free(c);
        return -ENOMEM;
    }
    r = sqlite_errno(
        NULL, sqlite3_open_v2(path, &c->db, SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE | SQLITE_OPEN_NOMUTEX, NULL));
    if (r >= 0)
        r = sqlite_errno(NULL, sqlite3_busy_timeout(c->db, CDB_BUSY_TIMEOUT_MSEC));
    if (r >= 0) {
        sqlite3_stmt *st = NULL;
        r = sqlite_errno(NULL, sqlite3_prepare_v2(c->db, "PRAGMA user_version", -1, &st, NULL));
        if (r >= 0 && sqlite3_step(st) == SQLITE_ROW)
            version = sqlite3_column_int(st, 0);
        sqlite3_finalize(st);
        if (r >= 0 && (version < 0 || version > 2))
            r = -EBADMSG;
    }
    if (r >= 0)
        r = exec_sql(c->db, "PRAGMA journal_mode = WAL;"
                            "PRAGMA synchronous = NORMAL;"
                            "PRAGMA cache_size = -2048;"
                            "PRAGMA mmap_size = 0;"
                            "PRAGMA journal_size_limit = 67108864;");
    if (r >= 0)
        r = exec_sql(c->db, schema);

    if (r >= 0)
        r = read_last(c);
    if (r >= 0)
        r = prepare(c, &c->get, "SELECT value FROM kv WHERE path = ?1");
    if (r >= 0)
        r = prepare(c, &c->set, "INSERT OR REPLACE INTO kv (path, value) VALUES (?1, ?2)");
    if (r >= 0)
        r = prepare(c, &c->del_one, "DELETE FROM kv WHERE path = ?1");
    if (r >= 0)
        r = prepare(c, &c->del_range, "DELETE FROM kv WHERE path >= ?1 AND path < ?2");
    if (r >= 0)
        r = prepare(c, &c->del_all, "DELETE FROM kv");
    if (r >= 0)
        r = prepare(c, &c->list_range,
                    "SELECT path, value FROM kv WHERE path >= ?1 AND path < ?2 AND path > ?3 ORDER BY path");
    if (r >= 0)
        r = prepare(c, &c->meta_set,
                    "INSERT OR REPLACE INTO meta (name, value) VALUES ('txid_hlc', ?1), "
                    "('txid_node', ?2)");
    if (r >= 0)
        r = prepare(c, &c->upstream_set,
                    "INSERT OR REPLACE INTO meta (name, value) VALUES ('upstream_hlc', ?1), "
                    "('upstream_node', ?2)");
    if (r >= 0)
        r = prepare(c, &c->own_add, "INSERT OR REPLACE INTO own (hlc, paths) VALUES (?1, ?2)");
    if (r >= 0)
        r = prepare(c, &c->own_prune,
                    "DELETE FROM own WHERE hlc <= (SELECT hlc FROM own ORDER BY hlc DESC LIMIT 1 OFFSET ?1)");
    if (r < 0) {
        cdb_close(c);
        return r;
    }
    if (c->last.hlc)
        hlc_witness(&c->clock, c->last.hlc);
    r = sqlite_wal_new(loop, c->db, path, CDB_CHECKPOINT_PAGES, &c->wal);
    if (r < 0) {
        cdb_close(c);
        return r;
    }
    uv_timer_init(loop, &c->flush);
    c->flush.data = c;
    c->flush_open = true;
    *ret = c;
    return 0;
}

static void pending_free(struct pending *p) {
    if (!p)
        return;
    free(p->ops); /* the op array and its strings are one block */
    free(p);
}

static void on_flush_closed(uv_handle_t *h) {
    free(h->data);
}

static void flush_now(struct cdb *c);

struct cdb *cdb_close(struct cdb *c) {
    if (!c)
        return NULL;
    if (c->replacing)
        cdb_replace_abort(c);
    flush_now(c);
    c->closing = true;
    sqlite3_finalize(c->get);
    sqlite3_finalize(c->set);
    sqlite3_finalize(c->del_one);
    sqlite3_finalize(c->del_range);
    sqlite3_finalize(c->del_all);
    sqlite3_finalize(c->list_range);
    sqlite3_finalize(c->meta_set);
    sqlite3_finalize(c->stage_add);
    sqlite3_finalize(c->upstream_set);
    sqlite3_finalize(c->own_add);
    sqlite3_finalize(c->own_prune);
    c->wal = sqlite_wal_free(c->wal);
    sqlite3_close_v2(c->db); /* the last connection out checkpoints and removes the WAL */
    c->db = NULL;
    free(c->path);
    c->path = NULL;
    if (c->flush_open)
        uv_close((uv_handle_t *)&c->flush, on_flush_closed);
    else
        free(c);
    return NULL;
}

/* ---- reads --------------------------------------------------------------- */

int cdb_get(struct cdb *c, const char *path, uint8_t **ret_value, size_t *ret_len) {
    sqlite3_stmt *st = c->get;
    int r;

    sqlite3_bind_text(st, 1, path, -1, SQLITE_STATIC);
    int rc = sqlite3_step(st);
    if (rc == SQLITE_ROW) {
        size_t n = (size_t)sqlite3_column_bytes(st, 0);
        const void *v = sqlite3_column_blob(st, 0);
        uint8_t *copy = malloc(n + 1); /* NUL-terminated for callers that read text */
        if (!copy)
            r = -ENOMEM;
        else {
            if (n)
                memcpy(copy, v, n);
            copy[n] = '\0';
            *ret_value = copy;
            *ret_len = n;
            r = 0;
        }
    } else
        r = rc == SQLITE_DONE ? -ENOENT : sqlite_errno(NULL, rc);
    sqlite3_reset(st);
    sqlite3_clear_bindings(st);
    return r;
}

int cdb_list(struct cdb *c, const char *path, const char *after, cdb_list_fn fn, void *userdata) {
    _cleanup_free_ char *lo = NULL, *hi = NULL;
    int r;

    /* The path itself sorts before everything under it. */
    if (!after && !streq(path, "/")) {
        uint8_t *v = NULL;
        size_t n = 0;
        r = cdb_get(c, path, &v, &n);
        if (r == 0) {
            r = fn(path, v, n, userdata);
            free(v);
            if (r != 0)
                return r;
        } else if (r != -ENOENT)
            return r;
    }
    r = subtree_bounds(path, &lo, &hi);
    if (r < 0)
        return r;
    sqlite3_stmt *st = c->list_range;
    sqlite3_bind_text(st, 1, lo, -1, SQLITE_STATIC);
    sqlite3_bind_text(st, 2, hi, -1, SQLITE_STATIC);
    sqlite3_bind_text(st, 3, after ? after : "", -1, SQLITE_STATIC);
    int rc;
    r = 0;
    while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
        r = fn((const char *)sqlite3_column_text(st, 0), sqlite3_column_blob(st, 1),
               (size_t)sqlite3_column_bytes(st, 1), userdata);
        if (r != 0)
            break;
    }
    if (r == 0 && rc != SQLITE_DONE)
        r = sqlite_errno(NULL, rc);
    sqlite3_reset(st);
    sqlite3_clear_bindings(st);
    return r;
}

int cdb_size(struct cdb *c, uint64_t *ret_paths, uint64_t *ret_bytes) {
    sqlite3_stmt *st = NULL;
    int r = sqlite_errno(
        NULL, sqlite3_prepare_v2(c->db, "SELECT count(*), coalesce(sum(length(value)), 0) FROM kv", -1, &st, NULL));
    if (r >= 0) {
        int rc = sqlite3_step(st);
        if (rc == SQLITE_ROW) {
            *ret_paths = (uint64_t)sqlite3_column_int64(st, 0);
            *ret_bytes = (uint64_t)sqlite3_column_int64(st, 1);
        } else
            r = rc == SQLITE_DONE ? -EIO : sqlite_errno(NULL, rc);
    }
    sqlite3_finalize(st);
    return r;
}

/* ---- commits ------------------------------------------------------------- */

int cdb_observe(struct cdb *c, cdb_observer_fn fn, cdb_group_end_fn group_end, void *userdata) {
    if (c->n_observers >= CDB_OBSERVERS_MAX)
        return -ENOSPC;
    c->observers[c->n_observers].fn = fn;
    c->observers[c->n_observers].group_end = group_end;
    c->observers[c->n_observers].userdata = userdata;
    c->n_observers++;
    return 0;
}

int cdb_commit(struct cdb *c, const cdb_txid *id, const struct cdb_op *ops, size_t n, cdb_commit_cb cb,
               void *userdata) {
    size_t bytes = n * sizeof(struct cdb_op);

    if (c->closing)
        return -ESHUTDOWN;
    if (c->replacing)
        return -EBUSY;
    if (n == 0 || n > LINK_CDB_OPS_MAX)
        return -EINVAL;
    for (size_t i = 0; i < n; i++) {
        if (link_cdb_path_check(ops[i].path, ops[i].del) < 0 || (ops[i].del && ops[i].len))
            return -EINVAL;
        bytes += strlen(ops[i].path) + 1 + ops[i].len;
    }
    /* One block: the op array, then each path and value. */
    struct pending *p = calloc(1, sizeof(*p));
    uint8_t *block = malloc(bytes);
    if (!p || !block) {
        free(p);
        free(block);
        return -ENOMEM;
    }
    struct cdb_op *copy = (struct cdb_op *)block;
    uint8_t *q = block + n * sizeof(struct cdb_op);
    for (size_t i = 0; i < n; i++) {
        size_t pl = strlen(ops[i].path) + 1;
        copy[i] = ops[i];
        copy[i].path = memcpy(q, ops[i].path, pl);
        q += pl;
        copy[i].value = ops[i].len ? memcpy(q, ops[i].value, ops[i].len) : NULL;
        q += ops[i].len;
    }
    p->ops = copy;
    p->n_ops = n;
    p->cb = cb;
    p->userdata = userdata;
    if (id) {
        p->id = *id;
        p->fixed_id = true;
    }
    LIST_APPEND(pending, &c->pending, p);
    if (!uv_is_active((uv_handle_t *)&c->flush))
        uv_timer_start(&c->flush, on_flush, 0, 0);
    return 0;
}

static int step_reset(sqlite3_stmt *st) {
    int rc = sqlite3_step(st);
    sqlite3_reset(st);
    sqlite3_clear_bindings(st);
    return rc == SQLITE_DONE ? 0 : sqlite_errno(NULL, rc);
}

static int apply_op(struct cdb *c, const struct cdb_op *op) {
    if (!op->del) {
        sqlite3_bind_text(c->set, 1, op->path, -1, SQLITE_STATIC);
        sqlite3_bind_blob(c->set, 2, op->len ? (const void *)op->value : "", (int)op->len, SQLITE_STATIC);
        return step_reset(c->set);
    }
    if (streq(op->path, "/"))
        return step_reset(c->del_all);
    _cleanup_free_ char *lo = NULL, *hi = NULL;
    int r = subtree_bounds(op->path, &lo, &hi);
    if (r < 0)
        return r;
    sqlite3_bind_text(c->del_one, 1, op->path, -1, SQLITE_STATIC);
    r = step_reset(c->del_one);
    if (r < 0)
        return r;
    sqlite3_bind_text(c->del_range, 1, lo, -1, SQLITE_STATIC);
    sqlite3_bind_text(c->del_range, 2, hi, -1, SQLITE_STATIC);
    return step_reset(c->del_range);
}

static int write_txid(sqlite3_stmt *st, const cdb_txid *id) {
    sqlite3_bind_int64(st, 1, (sqlite3_int64)id->hlc);
    sqlite3_bind_text(st, 2, id->node, -1, SQLITE_STATIC);
    return step_reset(st);
}

/* Remembers a transaction of this node's own with its paths ("/a /b +3 more"), the last CDB_OWN_MAX. */
static int own_add(struct cdb *c, const struct pending *p) {
    char paths[CDB_OWN_PATHS_MAX + 32];
    size_t used = 0, i;
    for (i = 0; i < p->n_ops; i++) {
        size_t n = strlen(p->ops[i].path);
        if (used + n + 1 > CDB_OWN_PATHS_MAX)
            break;
        used += (size_t)snprintf(paths + used, sizeof(paths) - used, "%s%s", used ? " " : "", p->ops[i].path);
    }
    if (i < p->n_ops)
        snprintf(paths + used, sizeof(paths) - used, "%s+%zu more", used ? " " : "", p->n_ops - i);
    sqlite3_bind_int64(c->own_add, 1, (sqlite3_int64)p->id.hlc);
    sqlite3_bind_text(c->own_add, 2, paths, -1, SQLITE_STATIC);
    int r = step_reset(c->own_add);
    if (r >= 0 && ++c->n_own >= CDB_OWN_MAX + CDB_OWN_MAX / 4) { /* pruned now and then, not at every commit */
        sqlite3_bind_int64(c->own_prune, 1, CDB_OWN_MAX - 1);
        r = step_reset(c->own_prune);
        c->n_own = CDB_OWN_MAX;
    }
    return r;
}

static void notify(struct cdb *c, const cdb_txid *id, const struct cdb_op *ops, size_t n) {
    for (size_t i = 0; i < c->n_observers; i++)
        c->observers[i].fn(c, id, ops, n, c->observers[i].userdata);
}

void cdb_unobserve(struct cdb *c, cdb_observer_fn fn, void *userdata) {
    for (size_t i = 0; i < c->n_observers; i++)
        if (c->observers[i].fn == fn && c->observers[i].userdata == userdata) {
            memmove(&c->observers[i], &c->observers[i + 1], (c->n_observers - i - 1) * sizeof(c->observers[0]));
            c->n_observers--;
            return;
        }
}

static void group_end(struct cdb *c) {
    for (size_t i = 0; i < c->n_observers; i++)
        if (c->observers[i].group_end)
            c->observers[i].group_end(c, c->observers[i].userdata);
}

/* Writes every queued transaction in one SQLite transaction, then reports them. */
static void flush_now(struct cdb *c) {
    __typeof__(c->pending) batch = c->pending;
    cdb_txid last = c->last, upstream = c->upstream;
    struct pending *p;
    int r;

    if (LIST_IS_EMPTY(&batch))
        return;
    c->pending.first = c->pending.last = NULL;
    uv_timer_stop(&c->flush);

    sqlite_wal_before_write(c->wal); /* the WAL starts over once the pool's checkpoints caught up */
    r = exec_sql(c->db, "BEGIN IMMEDIATE");
    LIST_FOREACH (pending, p, &batch) {
        if (r < 0)
            break;
        if (p->fixed_id) {
            (void)hlc_update(&c->clock, p->id.hlc, NULL);
            upstream = p->id;
        } else {
            p->id.hlc = hlc_now(&c->clock);
            snprintf(p->id.node, sizeof(p->id.node), "%s", c->node);
            r = own_add(c, p);
        }
        for (size_t i = 0; r >= 0 && i < p->n_ops; i++)
            r = apply_op(c, &p->ops[i]);
        last = p->id;
    }
    if (r >= 0)
        r = write_txid(c->meta_set, &last);
    if (r >= 0 && !cdb_txid_equal(&upstream, &c->upstream))
        r = write_txid(c->upstream_set, &upstream);
    if (r >= 0)
        r = exec_sql(c->db, "COMMIT");
    if (r < 0)
        (void)exec_sql(c->db, "ROLLBACK"); /* n_own may count a few rows too many: pruned a little early */
    else {
        c->last = last;
        c->upstream = upstream;
    }

    while ((p = LIST_POP(pending, &batch))) {
        if (r >= 0)
            notify(c, &p->id, p->ops, p->n_ops);
        if (p->cb)
            p->cb(c, r < 0 ? r : 0, r < 0 ? NULL : &p->id, p->userdata);
        pending_free(p);
    }
    if (r >= 0)
        group_end(c);
}

static void on_flush(uv_timer_t *t) {
    flush_now(t->data);
}

/* ---- full copy ----------------------------------------------------------- */

int cdb_snapshot_open(struct cdb *c, struct cdb_snapshot **ret, cdb_txid *ret_id, uint64_t *ret_paths) {
    struct cdb_snapshot *s;
    sqlite3_stmt *st = NULL;
    cdb_txid id = {0};
    uint64_t paths = 0;
    int r;

    flush_now(c); /* the snapshot holds every commit acknowledged so far */
    s = calloc(1, sizeof(*s));
    if (!s)
        return -ENOMEM;
    r = sqlite_errno(NULL, sqlite3_open_v2(c->path, &s->db, SQLITE_OPEN_READONLY | SQLITE_OPEN_NOMUTEX, NULL));
    if (r >= 0)
        r = sqlite_errno(NULL, sqlite3_busy_timeout(s->db, CDB_BUSY_TIMEOUT_MSEC));
    /* The copy reads the whole file once: map it instead of a pread() per page. */
    if (r >= 0)
        r = exec_sql(s->db, "PRAGMA mmap_size = 1073741824");
    if (r >= 0)
        r = exec_sql(s->db, "BEGIN");
    /* The first read starts the read transaction: meta and rows come from one snapshot. */
    if (r >= 0)
        r = sqlite_errno(NULL, sqlite3_prepare_v2(s->db,
                                                  "SELECT (SELECT value FROM meta WHERE name = 'txid_hlc'), "
                                                  "(SELECT value FROM meta WHERE name = 'txid_node'), "
                                                  "(SELECT count(*) FROM kv)",
                                                  -1, &st, NULL));
    if (r >= 0) {
        int rc = sqlite3_step(st);
        if (rc == SQLITE_ROW) {
            id.hlc = (uint64_t)sqlite3_column_int64(st, 0);
            if (sqlite3_column_type(st, 1) == SQLITE_TEXT)
                snprintf(id.node, sizeof(id.node), "%s", (const char *)sqlite3_column_text(st, 1));
            paths = (uint64_t)sqlite3_column_int64(st, 2);
        } else
            r = rc == SQLITE_DONE ? -EIO : sqlite_errno(NULL, rc);
    }
    sqlite3_finalize(st);
    if (r >= 0 && !cdb_txid_equal(&id, &c->last))
        r = -EIO; /* cannot be: the writer is this process, and it flushed above */
    if (r >= 0)
        r = sqlite_errno(NULL,
                         sqlite3_prepare_v2(s->db, "SELECT path, value FROM kv ORDER BY path", -1, &s->rows, NULL));
    if (r < 0) {
        cdb_snapshot_close(s);
        return r;
    }
    *ret = s;
    *ret_id = id;
    *ret_paths = paths;
    return 0;
}

int cdb_snapshot_next(struct cdb_snapshot *s, size_t max_bytes, cdb_list_fn fn, void *userdata) {
    size_t sent = 0;
    int rc = SQLITE_DONE;

    if (s->done)
        return 0;
    while (sent < max_bytes && (rc = sqlite3_step(s->rows)) == SQLITE_ROW) {
        size_t n = (size_t)sqlite3_column_bytes(s->rows, 1);
        const char *path = (const char *)sqlite3_column_text(s->rows, 0);
        int r = fn(path, sqlite3_column_blob(s->rows, 1), n, userdata);
        if (r < 0)
            return r;
        sent += strlen(path) + n + 8;
        if (r > 0)
            return 1; /* fn took the row and wants no more now */
    }
    if (rc == SQLITE_ROW)
        return 1;
    s->done = true;
    return rc == SQLITE_DONE ? 0 : sqlite_errno(NULL, rc);
}

struct cdb_snapshot *cdb_snapshot_close(struct cdb_snapshot *s) {
    if (!s)
        return NULL;
    sqlite3_finalize(s->rows);
    if (s->db)
        (void)exec_sql(s->db, "ROLLBACK");
    sqlite3_close_v2(s->db);
    free(s);
    return NULL;
}

int cdb_replace_begin(struct cdb *c) {
    int r;
    if (c->replacing)
        return -EBUSY;
    flush_now(c);
    r = exec_sql(c->db, "BEGIN IMMEDIATE;"
                        "DROP TABLE IF EXISTS kv_new;"
                        "CREATE TABLE kv_new (path TEXT PRIMARY KEY, value BLOB NOT NULL) WITHOUT ROWID;");
    if (r >= 0 && !c->stage_add)
        r = prepare(c, &c->stage_add, "INSERT OR REPLACE INTO kv_new (path, value) VALUES (?1, ?2)");
    if (r < 0) {
        (void)exec_sql(c->db, "ROLLBACK");
        return r;
    }
    c->replacing = true;
    return 0;
}

int cdb_replace_add(struct cdb *c, const char *path, const uint8_t *value, size_t len) {
    if (!c->replacing)
        return -EINVAL;
    if (link_cdb_path_check(path, false) < 0)
        return -EINVAL;
    sqlite3_bind_text(c->stage_add, 1, path, -1, SQLITE_STATIC);
    sqlite3_bind_blob(c->stage_add, 2, len ? (const void *)value : "", (int)len, SQLITE_STATIC);
    return step_reset(c->stage_add);
}

int cdb_replace_end(struct cdb *c, const cdb_txid *id) {
    int r;
    if (!c->replacing)
        return -EINVAL;
    /* The prepared statements name kv: SQLite re-prepares them after the schema change. */
    /* Everything comes from the copy: nothing is this node's own any more. */
    r = exec_sql(c->db, "DROP TABLE kv; ALTER TABLE kv_new RENAME TO kv; DELETE FROM own;");
    if (r >= 0)
        r = write_txid(c->meta_set, id);
    if (r >= 0)
        r = write_txid(c->upstream_set, id);
    if (r >= 0)
        r = exec_sql(c->db, "COMMIT");
    c->replacing = false;
    if (r < 0) {
        (void)exec_sql(c->db, "ROLLBACK");
        return r;
    }
    c->last = c->upstream = *id;
    c->n_own = 0;
    (void)hlc_update(&c->clock, id->hlc, NULL);
    notify(c, id, NULL, 0);
    group_end(c);
    return 0;
}

void cdb_replace_abort(struct cdb *c) {
    if (!c->replacing)
        return;
    (void)exec_sql(c->db, "ROLLBACK");
    c->replacing = false;
}
