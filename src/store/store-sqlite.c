/* SPDX-License-Identifier: MIT */
/* The SQLite store backend: the engine's state kept durable in one SQLite database file. */

/*
 * The whole store lives in memory (engine/); SQLite only makes each
 * write durable before it is reported, and gives the state back at open.
 *
 * Schema (PRAGMA user_version = 1):
 *
 *   CREATE TABLE meta (name TEXT PRIMARY KEY, value INTEGER NOT NULL);
 *       'revision'          store revision (1 for an empty store)
 *       'compact_revision'  oldest revision whose events are all in history
 *       'lease_max'         highest lease id ever granted (ids are never reused)
 *   CREATE TABLE kv (key BLOB PRIMARY KEY, value BLOB NOT NULL,
 *                    create_rev INTEGER NOT NULL, mod_rev INTEGER NOT NULL,
 *                    version INTEGER NOT NULL, lease INTEGER NOT NULL);
 *       one row per live key; lease 0 = none
 *   CREATE TABLE leases (id INTEGER PRIMARY KEY, ttl INTEGER NOT NULL);
 *       one row per live lease; ttl in seconds (deadlines are not stored)
 *   CREATE TABLE history (id INTEGER PRIMARY KEY, rev INTEGER NOT NULL,
 *                         type INTEGER NOT NULL, key BLOB NOT NULL, value BLOB NOT NULL,
 *                         create_rev INTEGER NOT NULL, mod_rev INTEGER NOT NULL,
 *                         version INTEGER NOT NULL, lease INTEGER NOT NULL);
 *   CREATE INDEX history_rev ON history (rev);
 *       the watch events of revisions >= compact_revision, in id order;
 *       type 0 = PUT (the key's new state), 1 = DELETE (key, mod_rev = rev,
 *       empty value, other columns 0).  Trimmed in the same transaction as
 *       each write, with the engine's bound: the last STORE_ENGINE_HISTORY_MAX
 *       (2000) events, whole revisions at a time.
 *
 * Writes: one SQLite transaction per store write (BEGIN IMMEDIATE; kv and
 * leases rows; history rows; meta; history trim; COMMIT) with cached prepared
 * statements.  The engine applies the write to memory only once COMMIT
 * succeeded, so a failed write changes neither the file nor the store, and
 * its callback gets the error (-EBUSY, -EIO, -ENOSPC, -EROFS, ...).
 *
 * Durability: journal_mode=WAL, synchronous=NORMAL.  A write whose callback
 * got 0 survives a crash of the process (SIGKILL, abort): it is in the WAL,
 * in the kernel's page cache, and SQLite recovers the WAL at the next open.
 * An OS crash or power loss may lose the last writes before the latest WAL
 * checkpoint's fsync, but never leaves a torn write: the database opens at
 * some earlier consistent revision.  synchronous=FULL would close that window
 * at the cost of an fsync per write; it is not an option yet.  The WAL's
 * checkpoints (a copy into the file, and an fsync of both) run in libuv's
 * thread pool, not in the COMMIT on the loop (sqlite-wal.h): an fsync behind a
 * busy disk would hold the loop, and every decision on it, for seconds.
 *
 * Memory: the page cache is capped at 512 KiB (cache_size=-512), no mmap;
 * the data itself is in the engine's memory once.
 *
 * Open: the file is created if missing (its directory must exist), the schema
 * is created in one transaction, then every table is read in one read
 * transaction into the engine: keys, leases, history, revision.  Leases get
 * a full TTL from the open (as etcd after a leader change).  Data that cannot
 * be right fails the open with -EBADMSG rather than serving a wrong store.
 *
 * One process should use a database at a time (halod takes a lock on its
 * state directory); other connections may read it (WAL readers never block
 * the writer) but a writer holding the lock longer than the busy timeout
 * (100 ms) makes our writes fail with -EBUSY.
 */

#include <errno.h>
#include <sqlite3.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "macro.h"
#include "store-engine.h"
#include "sqlite-errno.h"
#include "sqlite-wal.h"
#include "store.h"

#define STORE_SQLITE_SCHEMA_VERSION 1
#define STORE_SQLITE_BUSY_TIMEOUT_MSEC 100

enum {
    STMT_BEGIN,
    STMT_COMMIT,
    STMT_ROLLBACK,
    STMT_KV_PUT,
    STMT_KV_DELETE,
    STMT_LEASE_PUT,
    STMT_LEASE_DELETE,
    STMT_META_SET,
    STMT_HISTORY_PUT,
    STMT_HISTORY_TRIM,
    _STMT_MAX,
};

static const char *const stmt_sql[_STMT_MAX] = {
    [STMT_BEGIN] = "BEGIN IMMEDIATE",
    [STMT_COMMIT] = "COMMIT",
    [STMT_ROLLBACK] = "ROLLBACK",
    [STMT_KV_PUT] = "INSERT OR REPLACE INTO kv (key, value, create_rev, mod_rev, version, lease) "
                    "VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
    [STMT_KV_DELETE] = "DELETE FROM kv WHERE key = ?1",
    [STMT_LEASE_PUT] = "INSERT INTO leases (id, ttl) VALUES (?1, ?2)",
    [STMT_LEASE_DELETE] = "DELETE FROM leases WHERE id = ?1",
    [STMT_META_SET] = "INSERT OR REPLACE INTO meta (name, value) VALUES (?1, ?2)",
    [STMT_HISTORY_PUT] = "INSERT INTO history (rev, type, key, value, create_rev, mod_rev, version, lease) "
                         "VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)",
    [STMT_HISTORY_TRIM] = "DELETE FROM history WHERE rev < ?1",
};

static const char schema_sql[] =
    "CREATE TABLE meta (name TEXT PRIMARY KEY, value INTEGER NOT NULL);"
    "CREATE TABLE kv (key BLOB PRIMARY KEY, value BLOB NOT NULL, create_rev INTEGER NOT NULL,"
    " mod_rev INTEGER NOT NULL, version INTEGER NOT NULL, lease INTEGER NOT NULL);"
    "CREATE TABLE leases (id INTEGER PRIMARY KEY, ttl INTEGER NOT NULL);"
    "CREATE TABLE history (id INTEGER PRIMARY KEY, rev INTEGER NOT NULL, type INTEGER NOT NULL,"
    " key BLOB NOT NULL, value BLOB NOT NULL, create_rev INTEGER NOT NULL, mod_rev INTEGER NOT NULL,"
    " version INTEGER NOT NULL, lease INTEGER NOT NULL);"
    "CREATE INDEX history_rev ON history (rev);"
    "INSERT INTO meta (name, value) VALUES ('revision', 1), ('compact_revision', 1), ('lease_max', 0);"
    "PRAGMA user_version = 1;";

/* Checkpoints in the thread pool past this many WAL pages (sqlite-wal.h). */
#define STORE_SQLITE_CHECKPOINT_PAGES 1000

struct store_sqlite {
    sqlite3 *db;
    sqlite3_stmt *stmt[_STMT_MAX];
    struct sqlite_wal *wal;
};

static struct store_sqlite *store_sqlite_free(struct store_sqlite *q) {
    if (!q)
        return NULL;
    for (size_t i = 0; i < _STMT_MAX; i++)
        sqlite3_finalize(q->stmt[i]);
    q->wal = sqlite_wal_free(q->wal);
    /* Closing the last connection checkpoints the WAL and removes it. */
    sqlite3_close(q->db);
    free(q);
    return NULL;
}
DEFINE_TRIVIAL_CLEANUP_FUNC(struct store_sqlite *, store_sqlite_free);

/* Runs a statement that returns no rows, then resets it. */
static int stmt_run(struct store_sqlite *q, int id) {
    sqlite3_stmt *st = q->stmt[id];
    int rc = sqlite3_step(st);
    int r = rc == SQLITE_DONE ? 0 : sqlite_errno(q->db, rc);
    if (rc == SQLITE_ROW)
        r = -EIO; /* none of ours returns rows */
    sqlite3_reset(st);
    sqlite3_clear_bindings(st);
    return r;
}

static int bind_blob(sqlite3_stmt *st, int col, const char *p, size_t n) {
    /* A zero-length blob, not NULL, for an empty value. */
    return sqlite3_bind_blob64(st, col, n > 0 ? p : "", n, SQLITE_STATIC);
}

static int meta_set(struct store_sqlite *q, const char *name, int64_t value) {
    sqlite3_stmt *st = q->stmt[STMT_META_SET];
    int rc = sqlite3_bind_text(st, 1, name, -1, SQLITE_STATIC);
    if (rc == SQLITE_OK)
        rc = sqlite3_bind_int64(st, 2, value);
    return rc == SQLITE_OK ? stmt_run(q, STMT_META_SET) : sqlite_errno(q->db, rc);
}

static int kv_bind(sqlite3_stmt *st, int first, const store_kv *kv) {
    int rc = sqlite3_bind_int64(st, first, kv->create_revision);
    if (rc == SQLITE_OK)
        rc = sqlite3_bind_int64(st, first + 1, kv->mod_revision);
    if (rc == SQLITE_OK)
        rc = sqlite3_bind_int64(st, first + 2, kv->version);
    if (rc == SQLITE_OK)
        rc = sqlite3_bind_int64(st, first + 3, kv->lease);
    return rc;
}

static int change_apply(struct store_sqlite *q, int64_t revision, const store_change *c) {
    sqlite3_stmt *st;
    int rc, r;

    switch (c->type) {
    case STORE_CHANGE_PUT:
        st = q->stmt[STMT_KV_PUT];
        rc = bind_blob(st, 1, c->kv->key, c->kv->key_len);
        if (rc == SQLITE_OK)
            rc = bind_blob(st, 2, c->kv->value, c->kv->value_len);
        if (rc == SQLITE_OK)
            rc = kv_bind(st, 3, c->kv);
        r = rc == SQLITE_OK ? stmt_run(q, STMT_KV_PUT) : sqlite_errno(q->db, rc);
        break;
    case STORE_CHANGE_DELETE:
        st = q->stmt[STMT_KV_DELETE];
        rc = bind_blob(st, 1, c->kv->key, c->kv->key_len);
        r = rc == SQLITE_OK ? stmt_run(q, STMT_KV_DELETE) : sqlite_errno(q->db, rc);
        break;
    case STORE_CHANGE_LEASE_GRANT:
        st = q->stmt[STMT_LEASE_PUT];
        rc = sqlite3_bind_int64(st, 1, c->lease);
        if (rc == SQLITE_OK)
            rc = sqlite3_bind_int64(st, 2, c->ttl);
        return rc == SQLITE_OK ? stmt_run(q, STMT_LEASE_PUT) : sqlite_errno(q->db, rc);
    case STORE_CHANGE_LEASE_REVOKE:
        st = q->stmt[STMT_LEASE_DELETE];
        rc = sqlite3_bind_int64(st, 1, c->lease);
        return rc == SQLITE_OK ? stmt_run(q, STMT_LEASE_DELETE) : sqlite_errno(q->db, rc);
    default:
        return -EINVAL;
    }
    if (r < 0)
        return r;

    /* The key change is also its watch event. */
    st = q->stmt[STMT_HISTORY_PUT];
    rc = sqlite3_bind_int64(st, 1, revision);
    if (rc == SQLITE_OK)
        rc = sqlite3_bind_int(st, 2, c->type == STORE_CHANGE_PUT ? STORE_EVENT_PUT : STORE_EVENT_DELETE);
    if (rc == SQLITE_OK)
        rc = bind_blob(st, 3, c->kv->key, c->kv->key_len);
    if (rc == SQLITE_OK)
        rc = bind_blob(st, 4, c->kv->value, c->kv->value_len);
    if (rc == SQLITE_OK)
        rc = kv_bind(st, 5, c->kv);
    return rc == SQLITE_OK ? stmt_run(q, STMT_HISTORY_PUT) : sqlite_errno(q->db, rc);
}

/* The engine's persistence hook: one SQLite transaction per store write. */
static int store_sqlite_commit(void *userdata, const store_commit *c) {
    struct store_sqlite *q = userdata;
    int r;

    sqlite_wal_before_write(q->wal);
    r = stmt_run(q, STMT_BEGIN);
    if (r < 0)
        return r;

    for (size_t i = 0; r >= 0 && i < c->n_changes; i++)
        r = change_apply(q, c->revision, &c->changes[i]);
    if (r >= 0)
        r = meta_set(q, "revision", c->revision);
    if (r >= 0)
        r = meta_set(q, "compact_revision", c->compact_revision);
    if (r >= 0)
        r = meta_set(q, "lease_max", c->lease_max);
    if (r >= 0) {
        sqlite3_stmt *st = q->stmt[STMT_HISTORY_TRIM];
        int rc = sqlite3_bind_int64(st, 1, c->compact_revision);
        r = rc == SQLITE_OK ? stmt_run(q, STMT_HISTORY_TRIM) : sqlite_errno(q->db, rc);
    }
    if (r >= 0)
        r = stmt_run(q, STMT_COMMIT);

    /* A failed COMMIT may leave the transaction open: end it, keep the first error. */
    if (r < 0 && !sqlite3_get_autocommit(q->db))
        (void)stmt_run(q, STMT_ROLLBACK);
    return r;
}

static void store_sqlite_close(void *userdata) {
    store_sqlite_free(userdata);
}

static const store_engine_persist store_sqlite_persist = {
    .commit = store_sqlite_commit,
    .close = store_sqlite_close,
};

static const store_ops store_sqlite_ops = STORE_ENGINE_OPS("sqlite");

static int exec_sql(sqlite3 *db, const char *sql) {
    return sqlite_errno(db, sqlite3_exec(db, sql, NULL, NULL, NULL));
}

/* Runs a one-value query and returns its integer. */
static int query_int64(sqlite3 *db, const char *sql, int64_t *ret) {
    sqlite3_stmt *st;
    int rc = sqlite3_prepare_v2(db, sql, -1, &st, NULL);
    if (rc != SQLITE_OK)
        return sqlite_errno(db, rc);
    rc = sqlite3_step(st);
    int r = rc == SQLITE_ROW ? 0 : rc == SQLITE_DONE ? -EBADMSG : sqlite_errno(db, rc);
    if (r >= 0)
        *ret = sqlite3_column_int64(st, 0);
    sqlite3_finalize(st);
    return r;
}

static int query_text(sqlite3 *db, const char *sql, char *buf, size_t size) {
    sqlite3_stmt *st;
    int rc = sqlite3_prepare_v2(db, sql, -1, &st, NULL);
    if (rc != SQLITE_OK)
        return sqlite_errno(db, rc);
    rc = sqlite3_step(st);
    int r = rc == SQLITE_ROW ? 0 : rc == SQLITE_DONE ? -EBADMSG : sqlite_errno(db, rc);
    if (r >= 0) {
        const unsigned char *t = sqlite3_column_text(st, 0);
        snprintf(buf, size, "%s", t ? (const char *)t : "");
    }
    sqlite3_finalize(st);
    return r;
}

static int setup_connection(sqlite3 *db) {
    char mode[16];
    int r;

    sqlite3_extended_result_codes(db, 1);
    r = sqlite_errno(db, sqlite3_busy_timeout(db, STORE_SQLITE_BUSY_TIMEOUT_MSEC));
    if (r < 0)
        return r;
    r = query_text(db, "PRAGMA journal_mode = WAL", mode, sizeof(mode));
    if (r < 0)
        return r;
    if (strcmp(mode, "wal") != 0)
        return -EOPNOTSUPP; /* e.g. a file system without shared memory for the WAL index */
    r = exec_sql(db, "PRAGMA synchronous = NORMAL;"
                     "PRAGMA cache_size = -512;"
                     "PRAGMA mmap_size = 0;"
                     "PRAGMA journal_size_limit = 4194304;"
                     "PRAGMA foreign_keys = OFF;");
    if (r < 0)
        return r;

    /* Create the schema, or check its version, under the write lock so that
     * two processes opening a new file at once cannot both create it. */
    r = exec_sql(db, "BEGIN IMMEDIATE");
    if (r < 0)
        return r;
    int64_t version = 0;
    r = query_int64(db, "PRAGMA user_version", &version);
    if (r >= 0 && version == 0)
        r = exec_sql(db, schema_sql);
    else if (r >= 0 && version != STORE_SQLITE_SCHEMA_VERSION)
        r = -EPROTONOSUPPORT; /* written by another version of halo */
    if (r >= 0)
        r = exec_sql(db, "COMMIT");
    if (r < 0 && !sqlite3_get_autocommit(db))
        (void)exec_sql(db, "ROLLBACK");
    return r;
}

static int prepare_statements(struct store_sqlite *q) {
    for (size_t i = 0; i < _STMT_MAX; i++) {
        int rc = sqlite3_prepare_v3(q->db, stmt_sql[i], -1, SQLITE_PREPARE_PERSISTENT, &q->stmt[i], NULL);
        if (rc != SQLITE_OK)
            return sqlite_errno(q->db, rc);
    }
    return 0;
}

/* Reads columns first.. of a kv or history row (key, value, create, mod, version, lease). */
static int row_kv(sqlite3 *db, sqlite3_stmt *st, int first, store_kv *ret) {
    const void *key = sqlite3_column_blob(st, first);
    int key_len = sqlite3_column_bytes(st, first);
    const void *value = sqlite3_column_blob(st, first + 1);
    int value_len = sqlite3_column_bytes(st, first + 1);
    if (sqlite3_errcode(db) == SQLITE_NOMEM)
        return -ENOMEM;
    if (!key || key_len <= 0)
        return -EBADMSG;
    *ret = (store_kv){
        .key = (char *)key,
        .key_len = (size_t)key_len,
        .value = (char *)(value ? value : ""),
        .value_len = value ? (size_t)value_len : 0,
        .create_revision = sqlite3_column_int64(st, first + 2),
        .mod_revision = sqlite3_column_int64(st, first + 3),
        .version = sqlite3_column_int64(st, first + 4),
        .lease = sqlite3_column_int64(st, first + 5),
    };
    return 0;
}

enum load_table { LOAD_KV, LOAD_LEASES, LOAD_HISTORY };

static int load_table(sqlite3 *db, store_engine *e, enum load_table t) {
    static const char *const sql[] = {
        [LOAD_KV] = "SELECT key, value, create_rev, mod_rev, version, lease FROM kv",
        [LOAD_LEASES] = "SELECT id, ttl FROM leases",
        [LOAD_HISTORY] = "SELECT type, rev, key, value, create_rev, mod_rev, version, lease FROM history ORDER BY id",
    };
    sqlite3_stmt *st;
    int rc, r = 0;

    rc = sqlite3_prepare_v2(db, sql[t], -1, &st, NULL);
    if (rc != SQLITE_OK)
        return sqlite_errno(db, rc);
    while (r >= 0 && (rc = sqlite3_step(st)) == SQLITE_ROW) {
        store_kv kv;
        switch (t) {
        case LOAD_KV:
            r = row_kv(db, st, 0, &kv);
            if (r >= 0)
                r = store_engine_load_kv(e, &kv);
            break;
        case LOAD_LEASES:
            r = store_engine_load_lease(e, sqlite3_column_int64(st, 0), sqlite3_column_int64(st, 1));
            break;
        case LOAD_HISTORY: {
            int64_t type = sqlite3_column_int64(st, 0);
            r = row_kv(db, st, 2, &kv);
            if (r >= 0 && (type != STORE_EVENT_PUT && type != STORE_EVENT_DELETE))
                r = -EBADMSG;
            if (r >= 0 && kv.mod_revision != sqlite3_column_int64(st, 1))
                r = -EBADMSG;
            if (r >= 0)
                r = store_engine_load_event(e, (store_event_type)type, &kv);
            break;
        }
        }
    }
    if (r >= 0 && rc != SQLITE_DONE)
        r = sqlite_errno(db, rc);
    sqlite3_finalize(st);
    return r;
}

/* Reads the database into the engine and starts it, in one read transaction. */
static int load_and_start(sqlite3 *db, store_engine *e) {
    int64_t revision, compact, lease_max;
    int r;

    r = exec_sql(db, "BEGIN");
    if (r < 0)
        return r;
    r = query_int64(db, "SELECT value FROM meta WHERE name = 'revision'", &revision);
    if (r >= 0)
        r = query_int64(db, "SELECT value FROM meta WHERE name = 'compact_revision'", &compact);
    if (r >= 0)
        r = query_int64(db, "SELECT value FROM meta WHERE name = 'lease_max'", &lease_max);
    /* Keys before history, so that history can share the keys' current entries. */
    if (r >= 0)
        r = load_table(db, e, LOAD_LEASES);
    if (r >= 0)
        r = load_table(db, e, LOAD_KV);
    if (r >= 0)
        r = load_table(db, e, LOAD_HISTORY);
    (void)exec_sql(db, "COMMIT"); /* a read transaction: ending it cannot lose anything */
    if (r < 0)
        return r;
    return store_engine_start(e, revision, compact, lease_max);
}

static void engine_freep(store_engine **e) {
    if (*e)
        store_engine_free(store_engine_store(*e));
}

/*
 * Opens (creating if needed) the database at path and returns a store with
 * its content.  Returns 0, -EINVAL, -ENOMEM, -EBADMSG (not a database of
 * ours, or inconsistent), -EPROTONOSUPPORT (another schema version),
 * -EOPNOTSUPP (WAL not possible there), -EBUSY (locked by another process),
 * or the errno of a failed open/read (-ENOENT, -EACCES, -EIO, ...).
 */
int store_sqlite_new(uv_loop_t *loop, const char *path, store **ret) {
    _cleanup_(store_sqlite_freep) struct store_sqlite *q = NULL;
    _cleanup_(engine_freep) store_engine *e = NULL;
    int r;

    assert_return(loop, -EINVAL);
    assert_return(path, -EINVAL);
    assert_return(ret, -EINVAL);

    q = calloc(1, sizeof(*q));
    if (!q)
        return -ENOMEM;
    int rc = sqlite3_open_v2(path, &q->db, SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE | SQLITE_OPEN_NOMUTEX, NULL);
    if (rc != SQLITE_OK)
        return q->db ? sqlite_errno(q->db, rc) : -ENOMEM;
    r = setup_connection(q->db);
    if (r < 0)
        return r;
    r = sqlite_wal_new(loop, q->db, path, STORE_SQLITE_CHECKPOINT_PAGES, &q->wal);
    if (r < 0)
        return r;
    r = prepare_statements(q);
    if (r < 0)
        return r;

    r = store_engine_new(loop, &store_sqlite_ops, &store_sqlite_persist, q, &e);
    if (r < 0)
        return r;
    sqlite3 *db = TAKE_PTR(q)->db; /* the engine owns it now, and closes it when freed */

    r = load_and_start(db, e);
    if (r < 0)
        return r;
    *ret = store_engine_store(TAKE_PTR(e));
    return 0;
}
