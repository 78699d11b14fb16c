/* SPDX-License-Identifier: MIT */
/* Reads the description file into a YAML document within limits: file size, nesting depth, anchors, aliases. */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "config-internal.h"

/*
 * Limits that keep a hostile or broken description from hurting the daemon.
 * libyaml's scanner is quadratic in the flow nesting depth and its loader is
 * quadratic in the number of anchors, so both are checked on the event stream
 * before the document is built.  Aliases and inheritance can still multiply
 * a small file into a lot of work (a "billion laughs"): that is the work
 * budget of config-diag.c.
 */
#define CONFIG_FILE_MAX (1024 * 1024)
#define CONFIG_DEPTH_MAX 32
#define CONFIG_ANCHORS_MAX 1000
#define CONFIG_ALIASES_MAX 10000

/* The kind of a file that is not a regular one, for a message. */
static const char *file_kind(mode_t mode) {
    if (S_ISDIR(mode))
        return "a directory";
    if (S_ISFIFO(mode))
        return "a FIFO";
    if (S_ISSOCK(mode))
        return "a socket";
    if (S_ISCHR(mode) || S_ISBLK(mode))
        return "a device";
    return "not a regular file";
}

int config_open_regular(struct loader *l, struct config_pos pos, const char *what, const char *path, int *ret_fd,
                        off_t *ret_size) {
    struct stat st;
    /* O_NONBLOCK: opening a FIFO for reading would wait for a writer; it is refused below instead. */
    _cleanup_close_ int fd = open(path, O_RDONLY | O_CLOEXEC | O_NOCTTY | O_NONBLOCK);
    if (fd < 0) {
        int r = -errno;
        config_diag_at(l, pos, "%scannot open: %s", what, strerror(-r));
        return r;
    }
    if (fstat(fd, &st) < 0) {
        int r = -errno;
        config_diag_at(l, pos, "%scannot read: %s", what, strerror(-r));
        return r;
    }
    if (!S_ISREG(st.st_mode)) {
        config_diag_at(l, pos, "%sis %s, not a regular file", what, file_kind(st.st_mode));
        return S_ISDIR(st.st_mode) ? -EISDIR : -EINVAL;
    }
    *ret_fd = TAKE_FD(fd);
    *ret_size = st.st_size;
    return 0;
}

static int file_read(struct loader *l, char **ret, size_t *ret_size) {
    _cleanup_close_ int fd = -1;
    _cleanup_free_ char *buf = NULL;
    size_t size = 0;
    off_t st_size;

    int r = config_open_regular(l, (struct config_pos){0, 0}, "", l->path, &fd, &st_size);
    if (r < 0)
        return r;
    if (st_size > CONFIG_FILE_MAX) {
        config_diag_at(l, (struct config_pos){1, 1}, "the description is larger than 1 MiB (%lld bytes)",
                       (long long)st_size);
        return -EFBIG;
    }

    buf = malloc(CONFIG_FILE_MAX + 1);
    if (!buf)
        return -ENOMEM;
    while (size <= CONFIG_FILE_MAX) {
        ssize_t k = read(fd, buf + size, CONFIG_FILE_MAX + 1 - size);
        if (k < 0) {
            if (errno == EINTR)
                continue;
            r = -errno;
            config_diag_at(l, (struct config_pos){0, 0}, "cannot read: %s", strerror(-r));
            return r;
        }
        if (k == 0)
            break;
        size += (size_t)k;
    }
    if (size > CONFIG_FILE_MAX) {
        config_diag_at(l, (struct config_pos){1, 1}, "the description is larger than 1 MiB");
        return -EFBIG;
    }
    *ret = TAKE_PTR(buf);
    *ret_size = size;
    return 0;
}

int config_token_read(struct loader *l, const yaml_node_t *n, const char *path, char **ret) {
    _cleanup_free_ char *p = config_path_resolve(l, path);
    _cleanup_close_ int fd = -1;
    char what[QUOTE_MAX + 32], buf[CONFIG_TOKEN_MAX + 2];
    off_t size;
    ssize_t k;

    if (!p)
        return -ENOMEM;
    snprintf(what, sizeof(what), "'token-file' '%s': ", Q(path));
    int r = config_open_regular(l, config_yaml_pos(n), what, p, &fd, &size);
    if (r < 0)
        return r;
    do
        k = read(fd, buf, sizeof(buf) - 1);
    while (k < 0 && errno == EINTR);
    if (k < 0) {
        r = -errno;
        config_diag(l, n, "%scannot read: %s", what, strerror(-r));
        return r;
    }
    buf[k] = '\0';
    if (k > 0 && buf[k - 1] == '\n')
        buf[--k] = '\0';
    bool printable = true;
    for (ssize_t i = 0; i < k; i++)
        printable = printable && (unsigned char)buf[i] >= 0x20 && buf[i] != 0x7f;
    if (k == 0 || k > CONFIG_TOKEN_MAX || !printable || size > CONFIG_TOKEN_MAX + 1) {
        config_diag(l, n, "%sthe token must be one line of 1 to %d printable bytes", what, CONFIG_TOKEN_MAX);
        explicit_bzero(buf, sizeof(buf));
        return -EINVAL;
    }
    *ret = strdup(buf);
    explicit_bzero(buf, sizeof(buf));
    return *ret ? 0 : -ENOMEM;
}

/* Reports libyaml's error with its position. */
static void yaml_problem(struct loader *l, const yaml_parser_t *p, const char *buf, size_t size) {
    struct config_pos pos = config_yaml_mark_pos(p->problem_mark);

    if (p->error == YAML_MEMORY_ERROR) {
        l->oom = true;
        return;
    }
    if (p->error == YAML_READER_ERROR) {
        /* The reader gives a byte offset, not a mark. */
        size_t off = MIN(p->problem_offset, size);
        pos = (struct config_pos){1, 1};
        for (size_t i = 0; i < off; i++)
            if (buf[i] == '\n')
                pos = (struct config_pos){pos.line + 1, 1};
            else if (((unsigned char)buf[i] & 0xc0) != 0x80)
                pos.column++;
        if (p->problem_value != -1)
            config_diag_at(l, pos, "invalid YAML: %s (byte 0x%02x)", p->problem ? p->problem : "cannot read",
                           (unsigned)p->problem_value & 0xff);
        else
            config_diag_at(l, pos, "invalid YAML: %s", p->problem ? p->problem : "cannot read");
        return;
    }
    if (p->context) {
        struct config_pos cp = config_yaml_mark_pos(p->context_mark);
        config_diag_at(l, pos, "invalid YAML: %s (%s at line %u column %u)", p->problem ? p->problem : "error",
                       p->context, cp.line, cp.column);
    } else
        config_diag_at(l, pos, "invalid YAML: %s", p->problem ? p->problem : "error");
}

/*
 * Walks the event stream once before the document is built: syntax errors, nesting depth,
 * anchors and aliases, the number of documents.  Returns true when the document may be loaded.
 */
static bool yaml_precheck(struct loader *l, const char *buf, size_t size) {
    yaml_parser_t p;
    unsigned depth = 0, anchors = 0, aliases = 0, documents = 0;
    bool ok = false, done = false;

    if (!yaml_parser_initialize(&p)) {
        l->oom = true;
        return false;
    }
    yaml_parser_set_input_string(&p, (const unsigned char *)buf, size);
    while (!done) {
        yaml_event_t ev;
        const char *anchor = NULL;

        if (!yaml_parser_parse(&p, &ev)) {
            yaml_problem(l, &p, buf, size);
            break;
        }
        switch (ev.type) {
        case YAML_STREAM_END_EVENT:
            ok = done = true;
            break;
        case YAML_DOCUMENT_START_EVENT:
            if (++documents > 1) {
                config_diag_at(l, config_yaml_mark_pos(ev.start_mark), "only one YAML document is allowed");
                done = true;
            }
            break;
        case YAML_SEQUENCE_START_EVENT:
        case YAML_MAPPING_START_EVENT:
            anchor = ev.type == YAML_SEQUENCE_START_EVENT ? (const char *)ev.data.sequence_start.anchor
                                                          : (const char *)ev.data.mapping_start.anchor;
            if (++depth > CONFIG_DEPTH_MAX) {
                config_diag_at(l, config_yaml_mark_pos(ev.start_mark), "nesting deeper than %d levels",
                               CONFIG_DEPTH_MAX);
                done = true;
            }
            break;
        case YAML_SEQUENCE_END_EVENT:
        case YAML_MAPPING_END_EVENT:
            depth--;
            break;
        case YAML_SCALAR_EVENT:
            anchor = (const char *)ev.data.scalar.anchor;
            break;
        case YAML_ALIAS_EVENT:
            if (++aliases > CONFIG_ALIASES_MAX) {
                config_diag_at(l, config_yaml_mark_pos(ev.start_mark), "more than %d aliases", CONFIG_ALIASES_MAX);
                done = true;
            }
            break;
        default:
            break;
        }
        if (anchor && ++anchors > CONFIG_ANCHORS_MAX) {
            config_diag_at(l, config_yaml_mark_pos(ev.start_mark), "more than %d anchors", CONFIG_ANCHORS_MAX);
            done = true;
        }
        yaml_event_delete(&ev);
    }
    yaml_parser_delete(&p);
    return ok;
}

int config_read(struct loader *l, yaml_document_t *ret_doc) {
    _cleanup_free_ char *buf = NULL;
    size_t size = 0;
    yaml_parser_t p;
    int r;

    r = file_read(l, &buf, &size);
    if (r < 0)
        return r;
    if (size == 0) {
        config_diag_at(l, (struct config_pos){1, 1}, "the description is empty");
        return 0;
    }
    if (!yaml_precheck(l, buf, size))
        return 0;

    if (!yaml_parser_initialize(&p))
        return -ENOMEM;
    yaml_parser_set_input_string(&p, (const unsigned char *)buf, size);
    if (!yaml_parser_load(&p, ret_doc)) {
        yaml_problem(l, &p, buf, size);
        yaml_parser_delete(&p);
        return 0;
    }
    yaml_parser_delete(&p);
    l->text = TAKE_PTR(buf);
    l->text_size = size;
    return 1;
}
