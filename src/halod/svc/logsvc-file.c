/* SPDX-License-Identifier: MIT */
/* A log stream's file (logsvc-file.h): one libuv file request at a time, each step in its callback. */
#define LOG_AREA LOG_AREA_SUPERVISOR
#include "logsvc-file.h"

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "config.h"
#include "log.h"
#include "macro.h"
#include "time-util.h"

/* The request in flight. */
enum step { STEP_NONE, STEP_OPEN, STEP_FSTAT, STEP_WRITE, STEP_CHECK, STEP_CLOSE, STEP_RENAME, STEP_FREED };

struct logfile {
    uv_loop_t *loop;
    char *name, *path;
    uint64_t max_size;
    unsigned keep;
    uv_fs_t req;
    enum step step;
    uv_timer_t retry;       /* a failed file is tried again */
    uv_file fd;             /* -1: closed */
    bool regular;           /* a regular file: rotated (a character device is written as it is) */
    uint64_t size;          /* of the open file */
    usec_t checked;         /* when the open file was last seen linked (a removed one is opened again) */
    size_t unchecked_lines; /* lines written since */
    bool rotate;            /* the file is closed to be rotated, then opened again */
    unsigned renaming;      /* rotating: FILE.renaming -> FILE.renaming+1 next; 0: FILE -> FILE.1 */
    char *from, *to;        /* the rename in flight */
    bool reopen;            /* closed and opened again before the next write */
    bool failed;            /* the retry timer runs: nothing is written until it fires */
    bool closing;           /* logfile_close(): freed once what is queued is written */
    char *queue;            /* whole lines; the first write_len bytes are being written */
    size_t queued, queued_lines;
    size_t write_len, write_done, write_lines;
    uint64_t dropped;      /* lines dropped and not reported yet */
    char why[256];         /* why the last ones were */
    usec_t dropped_report; /* when they were last reported */
};

static void kick(struct logfile *f);

int logfile_new(uv_loop_t *loop, const struct config_log_stream *c, struct logfile **ret) {
    struct logfile *f = calloc(1, sizeof(*f));
    if (!f)
        return -ENOMEM;
    f->loop = loop;
    f->fd = -1;
    f->max_size = c->max_size;
    f->keep = c->keep;
    f->name = strdup(c->name);
    f->path = strdup(c->file);
    f->queue = malloc(LOGFILE_QUEUE_MAX);
    if (!f->name || !f->path || !f->queue) {
        free(f->name);
        free(f->path);
        free(f->queue);
        free(f);
        return -ENOMEM;
    }
    uv_timer_init(loop, &f->retry);
    f->retry.data = f->req.data = f;
    *ret = f;
    return 0;
}

const char *logfile_name(const struct logfile *f) {
    return f->name;
}

static void on_retry(uv_timer_t *t);

/* Says how many lines were dropped and why: at most once a second, unless now is 0 (a count that
 * must wait is said when the timer fires, should no line come meanwhile). */
static void report(struct logfile *f, usec_t now) {
    if (f->dropped == 0)
        return;
    if (now && f->dropped_report && now < f->dropped_report + USEC_PER_SEC) {
        if (!f->closing && !uv_is_active((uv_handle_t *)&f->retry))
            uv_timer_start(&f->retry, on_retry, (f->dropped_report + USEC_PER_SEC - now) / USEC_PER_MSEC + 1, 0);
        return;
    }
    log_warning_fields(LOG_FIELDS({"HALO_STREAM", f->name}), "Log stream '%s': %" PRIu64 " records dropped (%s)",
                       f->name, f->dropped, f->why);
    f->dropped = 0;
    f->dropped_report = now ?: now_monotonic_usec();
}

static void drop(struct logfile *f, uint64_t n, const char *why) {
    f->dropped += n;
    snprintf(f->why, sizeof(f->why), "%s", why);
    report(f, now_monotonic_usec());
}

static void on_retry(uv_timer_t *t) {
    struct logfile *f = t->data;
    f->failed = false;
    report(f, now_monotonic_usec());
    kick(f);
}

static void close_file(struct logfile *f);

/* The file cannot be used (what: the step that failed, r: its -errno): what is queued is dropped,
 * the file closed, and tried again a second later (not when it is closing). */
static void fail(struct logfile *f, const char *what, int r) {
    char why[sizeof(f->why)];
    snprintf(why, sizeof(why), "'%s': %s: %s", f->path, what, strerror(-r));
    drop(f, f->queued_lines, why);
    f->queued = f->queued_lines = f->write_len = f->write_done = f->write_lines = 0;
    f->rotate = false;
    if (!f->closing) {
        f->failed = true;
        uv_timer_start(&f->retry, on_retry, 1000, 0);
    }
    if (f->fd >= 0)
        close_file(f);
    else
        kick(f); /* closing: frees it */
}

static void on_timer_closed(uv_handle_t *h) {
    struct logfile *f = h->data;
    free(f->name);
    free(f->path);
    free(f->queue);
    free(f);
}

/* The loop side of a finished request: its result, the request cleaned up. */
static ssize_t finish(uv_fs_t *req) {
    struct logfile *f = req->data;
    ssize_t r = req->result;
    f->step = STEP_NONE;
    uv_fs_req_cleanup(req);
    return r;
}

static void on_closed(uv_fs_t *req) {
    struct logfile *f = req->data;
    ssize_t r = finish(req);
    if (r < 0) /* the descriptor is gone all the same */
        log_debug_errno((int)r, "Log stream '%s': closing '%s': %m", f->name, f->path);
    f->fd = -1;
    f->reopen = false;
    kick(f);
}

static void close_file(struct logfile *f) {
    f->step = STEP_CLOSE;
    if (uv_fs_close(f->loop, &f->req, f->fd, on_closed) < 0) {
        f->step = STEP_NONE;
        f->fd = -1;
    }
}

static void on_stat(uv_fs_t *req) {
    struct logfile *f = req->data;
    bool regular = S_ISREG(req->statbuf.st_mode);
    uint64_t size = req->statbuf.st_size;
    ssize_t r = finish(req);
    if (r < 0) {
        fail(f, "cannot read its size", (int)r);
        return;
    }
    f->regular = regular;
    f->size = size;
    f->checked = now_monotonic_usec();
    f->unchecked_lines = 0;
    kick(f);
}

static void on_opened(uv_fs_t *req) {
    struct logfile *f = req->data;
    ssize_t r = finish(req);
    if (r < 0) {
        fail(f, "cannot open", (int)r);
        return;
    }
    f->fd = (uv_file)r;
    f->step = STEP_FSTAT;
    int k = uv_fs_fstat(f->loop, &f->req, f->fd, on_stat);
    if (k < 0) {
        f->step = STEP_NONE;
        fail(f, "cannot read its size", k);
    }
}

static void open_file(struct logfile *f) {
    f->step = STEP_OPEN;
    int r =
        uv_fs_open(f->loop, &f->req, f->path, O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC | O_NOCTTY, 0640, on_opened);
    if (r < 0) {
        f->step = STEP_NONE;
        fail(f, "cannot open", r);
    }
}

static void rename_next(struct logfile *f);

static void on_renamed(uv_fs_t *req) {
    struct logfile *f = req->data;
    ssize_t r = finish(req);
    _cleanup_free_ char *from = TAKE_PTR(f->from), *to = TAKE_PTR(f->to);
    if (r < 0 && r != -ENOENT && f->renaming == 0) {
        /* FILE stays where it is: opened again it would be rotated again, at once. */
        fail(f, "cannot rotate", (int)r);
        return;
    }
    if (r < 0 && r != -ENOENT)
        log_debug_errno((int)r, "Log stream '%s': cannot rename '%s' to '%s': %m", f->name, from, to);
    if (f->renaming == 0) {
        f->rotate = false;
        log_debug("Log stream '%s': '%s' rotated", f->name, f->path);
        kick(f);
        return;
    }
    f->renaming--;
    rename_next(f);
}

/* One step of a rotation: FILE.renaming -> FILE.renaming+1, or FILE -> FILE.1 (keep 0: FILE removed). */
static void rename_next(struct logfile *f) {
    int r;
    if (f->renaming > 0)
        r = asprintf(&f->from, "%s.%u", f->path, f->renaming) < 0 ||
                    asprintf(&f->to, "%s.%u", f->path, f->renaming + 1) < 0
                ? -ENOMEM
                : 0;
    else
        r = !(f->from = strdup(f->path)) || asprintf(&f->to, "%s.1", f->path) < 0 ? -ENOMEM : 0;
    f->step = STEP_RENAME;
    if (r >= 0)
        r = f->keep == 0 ? uv_fs_unlink(f->loop, &f->req, f->from, on_renamed)
                         : uv_fs_rename(f->loop, &f->req, f->from, f->to, on_renamed);
    if (r < 0) {
        f->step = STEP_NONE;
        free(TAKE_PTR(f->from));
        free(TAKE_PTR(f->to));
        fail(f, "cannot rotate", r);
    }
}

static void write_more(struct logfile *f);

static void on_written(uv_fs_t *req) {
    struct logfile *f = req->data;
    ssize_t r = finish(req);
    if (r < 0) {
        fail(f, "cannot write", (int)r);
        return;
    }
    f->write_done += (size_t)r;
    f->size += (uint64_t)r;
    if (f->write_done < f->write_len) {
        write_more(f);
        return;
    }
    f->unchecked_lines += f->write_lines;
    memmove(f->queue, f->queue + f->write_len, f->queued - f->write_len);
    f->queued -= f->write_len;
    f->queued_lines -= f->write_lines;
    f->write_len = f->write_done = f->write_lines = 0;
    report(f, now_monotonic_usec());
    kick(f);
}

static void write_more(struct logfile *f) {
    uv_buf_t b = uv_buf_init(f->queue + f->write_done, (unsigned)(f->write_len - f->write_done));
    f->step = STEP_WRITE;
    int r = uv_fs_write(f->loop, &f->req, f->fd, &b, 1, -1, on_written);
    if (r < 0) {
        f->step = STEP_NONE;
        fail(f, "cannot write", r);
    }
}

static void on_checked(uv_fs_t *req) {
    struct logfile *f = req->data;
    bool removed = req->statbuf.st_nlink == 0;
    ssize_t r = finish(req);
    if (r < 0) {
        fail(f, "cannot read its links", (int)r);
        return;
    }
    f->checked = now_monotonic_usec();
    if (removed) {
        /* Written to no name since it was last seen: lost.  Those of a file renamed (logrotate) are not. */
        char why[sizeof(f->why)];
        snprintf(why, sizeof(why), "'%s' was removed: those written since it was last seen are lost; created again",
                 f->path);
        if (f->unchecked_lines > 0)
            drop(f, f->unchecked_lines, why);
        else
            log_notice("Log stream '%s': '%s' was removed: created again", f->name, f->path);
        f->reopen = true;
    }
    f->unchecked_lines = 0;
    kick(f);
}

/* Whether the open file was removed (once a second at most, while lines come). */
static bool check(struct logfile *f) {
    if (!f->regular || now_monotonic_usec() < f->checked + USEC_PER_SEC)
        return false;
    f->step = STEP_CHECK;
    if (uv_fs_fstat(f->loop, &f->req, f->fd, on_checked) >= 0)
        return true;
    f->step = STEP_NONE;
    return false;
}

/* The next write: the queue's first whole lines, at most LOGFILE_WRITE_MAX bytes, and no more than
 * keep a regular file within its size (a new file takes its first line whatever its length). */
static void take_lines(struct logfile *f) {
    size_t len = 0, lines = 0;
    while (len < f->queued) {
        const char *nl = memchr(f->queue + len, '\n', f->queued - len);
        if (!nl) /* cannot be: logfile_append() takes whole lines */
            break;
        size_t end = (size_t)(nl - f->queue) + 1;
        if (end > LOGFILE_WRITE_MAX || (f->regular && f->size + end > f->max_size && !(f->size == 0 && lines == 0)))
            break;
        len = end;
        lines++;
    }
    f->write_len = len;
    f->write_lines = lines;
    f->write_done = 0;
}

/* The next request, if none is in flight: a close (reopen, rotation, the end), the rotation's renames,
 * an open, the next write; or, closing with nothing left to do, f freed. */
static void kick(struct logfile *f) {
    if (f->step != STEP_NONE || f->failed)
        return;
    if (f->fd >= 0 && (f->reopen || f->rotate || (f->closing && f->queued == 0)))
        close_file(f);
    else if (f->fd < 0 && f->rotate) {
        f->renaming = f->keep > 0 ? f->keep - 1 : 0;
        rename_next(f);
    } else if (f->fd < 0 && f->queued > 0)
        open_file(f);
    else if (f->fd < 0) {
        if (f->closing) {
            report(f, 0);
            f->step = STEP_FREED;
            uv_close((uv_handle_t *)&f->retry, on_timer_closed);
        }
    } else if (f->queued > 0 && !check(f)) {
        take_lines(f);
        if (f->write_len > 0)
            write_more(f);
        else {
            f->rotate = true;
            close_file(f);
        }
    }
}

void logfile_append(struct logfile *f, const char *line, size_t len) {
    if (f->closing)
        return;
    if (len > LOGFILE_QUEUE_MAX - f->queued) {
        drop(f, 1, "its queue was full: the file is written slower than records come");
        return;
    }
    memcpy(f->queue + f->queued, line, len);
    f->queued += len;
    f->queued_lines++;
    kick(f);
}

void logfile_reopen(struct logfile *f) {
    if (f->failed) {
        uv_timer_stop(&f->retry);
        f->failed = false;
    }
    if (f->fd >= 0)
        f->reopen = true;
    kick(f);
}

void logfile_close(struct logfile *f) {
    if (!f)
        return;
    f->closing = true;
    if (f->failed) { /* tried once more, now */
        uv_timer_stop(&f->retry);
        f->failed = false;
    }
    kick(f);
}
