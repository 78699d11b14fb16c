/* SPDX-License-Identifier: MIT */
/*
 * A log stream written to a file of its own (the description's log-streams, docs/logging.md): the
 * log service appends each record as one line, and the file is written on libuv's thread pool, one
 * request at a time, so that halod's event loop never waits for a disk.  Lines wait in a bounded
 * queue; a line that finds it full, and what is queued when the file cannot be opened or written
 * (a disk full, a file replaced by a directory), are dropped and counted, and halod says how many
 * and why at most once a second.  A failed file is tried again a second later.  A line that would
 * take the file past its size rotates it first: FILE.KEEP-1 -> FILE.KEEP, ..., FILE -> FILE.1 (the
 * oldest overwritten), then a new FILE, created 0640.
 */
#pragma once

#include <stddef.h>
#include <uv.h>

struct config_log_stream;
struct logfile;

/* Bytes a stream queues while its file is being written: more is dropped. */
#define LOGFILE_QUEUE_MAX (256 * 1024)
/* Bytes one write takes from the queue. */
#define LOGFILE_WRITE_MAX (64 * 1024)

/* A file stream as c describes it (copied): its file is opened with its first line.  0, -ENOMEM. */
int logfile_new(uv_loop_t *loop, const struct config_log_stream *c, struct logfile **ret);
/* Writes what is queued (rotating the file as it must; a failure drops the rest, not waited out),
 * closes the file and frees f: the loop must run for that. */
void logfile_close(struct logfile *f);

const char *logfile_name(const struct logfile *f);
/* Queues line (len bytes, one '\n' at its end), or drops it (the queue is full): counted. */
void logfile_append(struct logfile *f, const char *line, size_t len);
/* The file is closed and opened again by its path (an external logrotate moved it): from its next
 * line; a file that failed is tried again at once. */
void logfile_reopen(struct logfile *f);
