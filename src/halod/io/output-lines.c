/* SPDX-License-Identifier: MIT */
/* Components' output into halod's log, line by line, tagged with their names (output-lines.h). */
#define LOG_AREA LOG_AREA_SUPERVISOR
#include "output-lines.h"

#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "list.h"
#include "log.h"
#include "macro.h"

struct reader {
    struct output_lines *set;
    LIST_FIELDS(struct reader, readers);
    uv_pipe_t pipe;
    char *name;
    size_t len; /* bytes of an unfinished line in buf */
    char buf[OUTPUT_LINE_MAX];
};

struct output_lines {
    uv_loop_t *loop;
    LIST_HEAD(struct reader) readers;
};

static void log_line(const struct reader *r, const char *line, size_t n) {
    if (n > 0 && line[n - 1] == '\r')
        n--;
    log_info_fields(LOG_FIELDS({"HALO_COMPONENT", r->name}, {"SYSLOG_IDENTIFIER", r->name}), "%s: %.*s", r->name,
                    (int)n, line);
}

static void on_alloc(uv_handle_t *h, size_t suggested, uv_buf_t *buf) {
    struct reader *r = h->data;
    /* Never full here: a full buffer is logged as a piece as soon as it is read. */
    *buf = uv_buf_init(r->buf + r->len, (unsigned)(sizeof(r->buf) - r->len));
}

static void on_closed(uv_handle_t *h) {
    struct reader *r = h->data;
    free(r->name);
    free(r);
}

static void reader_close(struct reader *r) {
    LIST_REMOVE(readers, &r->set->readers, r);
    uv_close((uv_handle_t *)&r->pipe, on_closed);
}

static void on_read(uv_stream_t *st, ssize_t nread, const uv_buf_t *buf) {
    struct reader *r = st->data;
    if (nread < 0) { /* UV_EOF: every writer is gone; or an error, which ends it as well */
        if (r->len > 0)
            log_line(r, r->buf, r->len);
        reader_close(r);
        return;
    }
    r->len += (size_t)nread;
    size_t start = 0;
    for (char *nl; (nl = memchr(r->buf + start, '\n', r->len - start)); start = (size_t)(nl - r->buf) + 1)
        log_line(r, r->buf + start, (size_t)(nl - (r->buf + start)));
    if (start == 0 && r->len == sizeof(r->buf)) {
        log_line(r, r->buf, r->len); /* a line longer than the buffer: this piece now, the rest after */
        start = r->len;
    }
    memmove(r->buf, r->buf + start, r->len - start);
    r->len -= start;
}

int output_lines_new(uv_loop_t *loop, struct output_lines **ret) {
    struct output_lines *s = calloc(1, sizeof(*s));
    if (!s)
        return -ENOMEM;
    s->loop = loop;
    *ret = s;
    return 0;
}

struct output_lines *output_lines_free(struct output_lines *s) {
    if (!s)
        return NULL;
    while (s->readers.first)
        reader_close(s->readers.first);
    free(s);
    return NULL;
}

int output_lines_open(struct output_lines *s, const char *name, int *ret_fd) {
    int fds[2];
    struct reader *r = calloc(1, sizeof(*r));
    if (!r || !(r->name = strdup(name))) {
        free(r);
        return -ENOMEM;
    }
    if (pipe2(fds, O_CLOEXEC) < 0) {
        int e = -errno;
        free(r->name);
        free(r);
        return e;
    }
    int k = uv_pipe_init(s->loop, &r->pipe, 0);
    if (k < 0) {
        close(fds[0]);
        close(fds[1]);
        free(r->name);
        free(r);
        return k;
    }
    r->pipe.data = r;
    r->set = s;
    LIST_PREPEND(readers, &s->readers, r);
    k = uv_pipe_open(&r->pipe, fds[0]); /* the handle owns it from here (and makes it non-blocking) */
    if (k < 0)
        close(fds[0]);
    else
        k = uv_read_start((uv_stream_t *)&r->pipe, on_alloc, on_read);
    if (k < 0) {
        close(fds[1]);
        reader_close(r);
        return k;
    }
    *ret_fd = fds[1];
    return 0;
}
