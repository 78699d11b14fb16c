/* SPDX-License-Identifier: MIT */
#pragma once

/*
 * Checkpoints of a SQLite database in WAL mode, off the event loop.
 *
 * SQLite's automatic checkpoint runs inside the COMMIT that crosses its
 * threshold: it copies the WAL into the database file and fsyncs both, on the
 * caller's thread, which for halod is the event loop (an fsync behind a busy
 * disk takes seconds).  sqlite_wal_new() turns it off and sets a WAL hook
 * instead: past `pages` after a commit, a PASSIVE checkpoint runs in libuv's
 * thread pool on a connection of its own, which never blocks the writer (WAL
 * readers and a checkpoint do not block a writer).
 *
 * Under a steady stream of commits those checkpoints never quite catch up (new
 * frames come in while they copy), and the WAL only starts over when a write
 * begins with every frame copied: sqlite_wal_before_write() copies what is left
 * on the writer's connection once the WAL is past 4 x `pages` and no pool
 * checkpoint runs.  A write never waits for a checkpoint: while a slow disk
 * keeps the pool's checkpoints running one after the other the WAL grows, and
 * it starts over once they catch up.
 */

#include <sqlite3.h>
#include <stdbool.h>
#include <uv.h>

struct sqlite_wal;

/* db: the writer's connection to path, in WAL mode.  Its WAL hook is taken. */
int sqlite_wal_new(uv_loop_t *loop, sqlite3 *db, const char *path, int pages, struct sqlite_wal **ret);
/* Before a write transaction on the writer's connection. */
void sqlite_wal_before_write(struct sqlite_wal *w);
/* Call before the writer's connection closes (its close checkpoints what is left); a checkpoint
 * in the pool ends by itself, and its connection closes then.  Returns NULL. */
struct sqlite_wal *sqlite_wal_free(struct sqlite_wal *w);
