/* SPDX-License-Identifier: MIT */
/*
 * The log-streams section: the components' log streams halod writes to files of their own, each
 * rotated at a size (docs/logging.md).  The file's directory is checked when the description is
 * loaded, so that `halod --check` names a directory halod could not write the file or its rotated
 * copies in.
 */
#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "config-internal.h"
#include "parse-util.h"

/* A path in a message: whole (an operator looks for it), up to PATH_MAX bytes. */
#define P(s) (int)strnlen((s), PATH_MAX), (s)

/* "10485760", "16K", "16KiB", "10M", "10MiB", "1G", "1GiB" (powers of 1024), without quotes. */
static bool size_parse(const yaml_node_t *n, uint64_t *ret) {
    static const struct {
        const char *suffix;
        unsigned shift;
    } units[] = {{"", 0}, {"K", 10}, {"KiB", 10}, {"M", 20}, {"MiB", 20}, {"G", 30}, {"GiB", 30}};
    if (n->type != YAML_SCALAR_NODE || n->data.scalar.style != YAML_PLAIN_SCALAR_STYLE)
        return false;
    const char *s = (const char *)n->data.scalar.value;
    size_t digits = strspn(s, "0123456789");
    uint64_t v;
    if (digits == 0 || digits > 12 || parse_u64_n(s, digits, &v) < 0)
        return false;
    for (size_t i = 0; i < ELEMENTSOF(units); i++)
        if (streq(s + digits, units[i].suffix)) {
            *ret = v << units[i].shift;
            return true;
        }
    return false;
}

/* The file of stream name: absolute, in a directory halod can write (its rotated copies go there
 * too), not something other than a regular file or a character device.  Reported on n otherwise
 * (*ret stays NULL).  0 or -ENOMEM. */
static int file_check(struct loader *l, yaml_node_t *n, const char *name, const char *file, char **ret) {
    _cleanup_free_ char *p = config_path_resolve(l, file);
    struct stat st;

    if (!p)
        return -ENOMEM;
    char *slash = strrchr(p, '/');
    if (!slash[1]) {
        config_diag(l, n, "log stream '%s': '%.*s' names a directory, not a file", Q(name), P(p));
        return 0;
    }
    *slash = 0;
    const char *dir = *p ? p : "/";
    if (stat(dir, &st) < 0)
        config_diag(l, n, "log stream '%s': the directory '%.*s' of its file does not exist", Q(name), P(dir));
    else if (!S_ISDIR(st.st_mode))
        config_diag(l, n, "log stream '%s': the directory '%.*s' of its file is not a directory", Q(name), P(dir));
    else if (access(dir, W_OK | X_OK) < 0)
        config_diag(l, n, "log stream '%s': the directory '%.*s' of its file is not writable: %s", Q(name), P(dir),
                    strerror(errno));
    else {
        *slash = '/';
        int e = stat(p, &st) < 0 ? errno : 0; /* ENOENT: created at start */
        if (e == 0 && S_ISDIR(st.st_mode))
            config_diag(l, n, "log stream '%s': '%.*s' is a directory, not a file", Q(name), P(p));
        else if (e == 0 && !S_ISREG(st.st_mode) && !S_ISCHR(st.st_mode))
            config_diag(l, n, "log stream '%s': '%.*s' is not a regular file", Q(name), P(p));
        else if (e == 0 && access(p, W_OK) < 0)
            config_diag(l, n, "log stream '%s': '%.*s' is not writable: %s", Q(name), P(p), strerror(errno));
        else if (e != 0 && e != ENOENT)
            config_diag(l, n, "log stream '%s': '%.*s': %s", Q(name), P(p), strerror(e));
        else
            *ret = TAKE_PTR(p);
    }
    return 0;
}

/* Whether another stream before s writes s's file. */
static const struct config_log_stream *same_file(const struct config *c, const struct config_log_stream *s) {
    for (const struct config_log_stream *o = c->log_streams; o < s; o++)
        if (o->file && s->file && streq(o->file, s->file))
            return o;
    return NULL;
}

static int stream_parse(struct loader *l, const struct map_entry *e, struct config *c) {
    enum { LS_FILE, LS_MAX_SIZE, LS_KEEP, _LS_MAX };
    static const char *const keys[] = {"file", "max-size", "keep", NULL};
    yaml_node_t *k[_LS_MAX], *v[_LS_MAX] = {NULL};
    struct config_log_stream *s = &c->log_streams[c->n_log_streams++];
    char what[QUOTE_MAX + 16];

    s->pos = config_yaml_pos(e->key_node);
    s->max_size = CONFIG_LOG_SIZE_DEFAULT;
    s->keep = CONFIG_LOG_KEEP_DEFAULT;
    if (!(s->name = config_diag_strdup(l, e->key)))
        return -ENOMEM;
    if (config_yaml_name(l, e->key_node, "log stream") && strlen(e->key) > CONFIG_LOG_STREAM_NAME_MAX)
        config_diag(l, e->key_node, "log stream name '%s' is longer than %d bytes", Q(e->key),
                    CONFIG_LOG_STREAM_NAME_MAX);
    snprintf(what, sizeof(what), "log stream '%s'", Q(e->key));
    int r = config_yaml_fields(l, e->value, what, keys, k, v);
    if (r <= 0)
        return r;
    if (!v[LS_FILE])
        config_diag(l, e->value, "log stream '%s' has no 'file'", Q(e->key));
    else {
        const char *f = config_yaml_string(l, v[LS_FILE], "'file'");
        if (f && (r = file_check(l, v[LS_FILE], e->key, f, &s->file)) < 0)
            return r;
        const struct config_log_stream *o = same_file(c, s);
        if (o)
            config_diag(l, v[LS_FILE], "log stream '%s': its file '%.*s' is log stream '%s''s too", Q(e->key),
                        P(s->file), Q(o->name));
    }
    if (v[LS_MAX_SIZE] && (!size_parse(v[LS_MAX_SIZE], &s->max_size) || s->max_size < CONFIG_LOG_SIZE_MIN ||
                           s->max_size > CONFIG_LOG_SIZE_MAX))
        config_diag(l, v[LS_MAX_SIZE],
                    "'max-size' must be a size from 16KiB to 1024GiB such as 10MiB (without quotes), got %s",
                    DESCRIBE(v[LS_MAX_SIZE]));
    if (v[LS_KEEP] && (!config_yaml_uint(v[LS_KEEP], &s->keep) || s->keep > CONFIG_LOG_KEEP_MAX))
        config_diag(l, v[LS_KEEP], "'keep' must be an integer from 0 to %d (without quotes), got %s",
                    CONFIG_LOG_KEEP_MAX, DESCRIBE(v[LS_KEEP]));
    return 0;
}

int config_parse_log_streams(struct loader *l, yaml_node_t *n, struct config *c) {
    _cleanup_free_ struct map_entry *e = NULL;
    size_t n_e = 0;

    if (!n)
        return 0;
    int r = config_yaml_map(l, n, "'log-streams'", &e, &n_e);
    if (r <= 0 || n_e == 0)
        return r < 0 ? r : 0;
    if (n_e > CONFIG_LOG_STREAMS_MAX) {
        config_diag(l, n, "'log-streams' names %zu streams; at most %d are allowed", n_e, CONFIG_LOG_STREAMS_MAX);
        return 0;
    }
    c->log_streams = calloc(n_e, sizeof(*c->log_streams));
    if (!c->log_streams)
        return -ENOMEM;
    for (size_t i = 0; i < n_e; i++)
        if ((r = stream_parse(l, &e[i], c)) < 0)
            return r;
    return 0;
}
