/* SPDX-License-Identifier: MIT */
/* WAL checkpoints in libuv's thread pool (sqlite-wal.h). */
#include "sqlite-wal.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

/* How long the pool's connection waits for a lock it needs (a PASSIVE checkpoint takes none
 * that a writer holds long). */
#define SQLITE_WAL_BUSY_MSEC 100

struct sqlite_wal {
    uv_loop_t *loop;
    sqlite3 *db;      /* the writer's */
    sqlite3 *ckpt_db; /* the pool's: used by the worker thread only */
    char *path;
    uv_work_t work;
    int pages, wal_pages;
    bool running, closing;
};

static void wal_free(struct sqlite_wal *w) {
    sqlite3_close_v2(w->ckpt_db);
    free(w->path);
    free(w);
}

static void on_checkpoint(uv_work_t *work) {
    struct sqlite_wal *w = work->data;
    /* Opened here, at the first checkpoint, and used only by the worker. */
    if (!w->ckpt_db &&
        sqlite3_open_v2(w->path, &w->ckpt_db, SQLITE_OPEN_READWRITE | SQLITE_OPEN_NOMUTEX, NULL) != SQLITE_OK) {
        sqlite3_close_v2(w->ckpt_db);
        w->ckpt_db = NULL;
        return;
    }
    (void)sqlite3_busy_timeout(w->ckpt_db, SQLITE_WAL_BUSY_MSEC);
    /* A connection that has read nothing does not know the file is in WAL mode yet, and its
     * checkpoint would do nothing: read something first. */
    (void)sqlite3_exec(w->ckpt_db, "SELECT count(*) FROM sqlite_schema", NULL, NULL, NULL);
    /* PASSIVE: copies what it can without waiting for the writer or the readers. */
    (void)sqlite3_wal_checkpoint_v2(w->ckpt_db, NULL, SQLITE_CHECKPOINT_PASSIVE, NULL, NULL);
}

static void on_checkpoint_done(uv_work_t *work, int status) {
    struct sqlite_wal *w = work->data;
    w->running = false;
    if (w->closing)
        wal_free(w);
}

/* SQLite's WAL hook: after each commit, the WAL's size in pages. */
static int on_wal(void *userdata, sqlite3 *db, const char *name, int pages) {
    struct sqlite_wal *w = userdata;
    w->wal_pages = pages;
    if (pages >= w->pages && !w->running && !w->closing) {
        w->work.data = w;
        if (uv_queue_work(w->loop, &w->work, on_checkpoint, on_checkpoint_done) == 0)
            w->running = true; /* else the next commit tries again */
    }
    return SQLITE_OK;
}

int sqlite_wal_new(uv_loop_t *loop, sqlite3 *db, const char *path, int pages, struct sqlite_wal **ret) {
    struct sqlite_wal *w = calloc(1, sizeof(*w));
    if (!w || !(w->path = strdup(path))) {
        free(w);
        return -ENOMEM;
    }
    w->loop = loop;
    w->db = db;
    w->pages = pages > 0 ? pages : 1;
    if (sqlite3_wal_autocheckpoint(db, 0) != SQLITE_OK) {
        wal_free(w);
        return -EIO;
    }
    sqlite3_wal_hook(db, on_wal, w);
    *ret = w;
    return 0;
}

void sqlite_wal_before_write(struct sqlite_wal *w) {
    if (w && w->wal_pages >= 4 * w->pages && !w->running)
        (void)sqlite3_wal_checkpoint_v2(w->db, NULL, SQLITE_CHECKPOINT_PASSIVE, NULL, NULL);
}

struct sqlite_wal *sqlite_wal_free(struct sqlite_wal *w) {
    if (!w)
        return NULL;
    sqlite3_wal_hook(w->db, NULL, NULL);
    w->closing = true;
    if (!w->running)
        wal_free(w);
    return NULL;
}
