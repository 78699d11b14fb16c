/* SPDX-License-Identifier: MIT */
/* The log service (logsvc.h). */
#define LOG_AREA LOG_AREA_SUPERVISOR
#include "logsvc.h"

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "amf-model.h"
#include "amf.h"
#include "config.h"
#include "halo/log.h"
#include "list.h"
#include "log.h"
#include "logsvc-file.h"
#include "macro.h"
#include "server.h"
#include "svc.h"
#include "time-util.h"

static const char *const severity_table[] = {
    [HALO_LOG_EMERGENCY] = "emergency", [HALO_LOG_ALERT] = "alert",     [HALO_LOG_CRITICAL] = "critical",
    [HALO_LOG_ERROR] = "error",         [HALO_LOG_WARNING] = "warning", [HALO_LOG_NOTICE] = "notice",
    [HALO_LOG_INFO] = "info",           [HALO_LOG_DEBUG] = "debug",     [HALO_LOG_TRACE] = "trace",
};

/* A component's or a stream's level. */
struct level {
    LIST_FIELDS(struct level, levels);
    bool stream;
    int level;
    char name[];
};

/* A connection that sent records or registered a component: told the levels when they change. */
struct told {
    LIST_FIELDS(struct told, told);
    struct conn *conn;
    uint64_t dropped;      /* records its libhalo dropped, not reported yet */
    usec_t dropped_report; /* when the last report was made */
};

/* A write of the levels file in flight on the thread pool. */
struct saving {
    uv_work_t work;
    struct logsvc *svc; /* NULL: freed meanwhile */
    char *path, *json;
    int r;
};

struct logsvc {
    uv_loop_t *loop;
    struct amf *amf;
    const char *node;
    bool observing;
    LIST_HEAD(struct level) levels;
    size_t n_levels, n_streams;
    LIST_HEAD(struct told) told;
    struct logfile **files; /* the streams written to files of their own */
    size_t n_files;
    char *levels_path; /* where the levels are kept; NULL: nowhere */
    struct saving *saving;
    bool save_again; /* they changed while saving: saved again after */
};

static void on_comp_event(void *userdata, struct comp *c, enum amf_comp_event ev, const char *reason) {
    (void)reason;
    if (ev == AMF_COMP_REGISTERED && c->conn)
        logsvc_registered(userdata, c, c->conn);
}

static const struct amf_observer observer = {.comp_event = on_comp_event};

static int set(struct logsvc *s, const char *spec, bool loading);

/* The levels kept in path by an earlier halod (logsvc_json()'s text): set, unless the file is not
 * what this halod writes, then none (the defaults) and a warning.  Read once, at start. */
static void levels_load(struct logsvc *s, const char *path) {
    _cleanup_close_ int fd = open(path, O_RDONLY | O_CLOEXEC | O_NOFOLLOW | O_NONBLOCK);
    struct stat st;
    if (fd < 0 && errno == ENOENT)
        return;
    json_error_t e;
    json_t *o = NULL, *v;
    const char *why = "cannot be read", *name;
    if (fd >= 0 && fstat(fd, &st) == 0 && (!S_ISREG(st.st_mode) || st.st_size > LOGSVC_LEVELS_FILE_MAX))
        why = "is not a regular file of at most 256 KiB";
    else if (fd >= 0 && !(o = json_loadfd(fd, JSON_REJECT_DUPLICATES, &e)))
        why = e.text;
    bool ok = json_is_object(o) && json_is_object(json_object_get(o, "components")) &&
              json_is_object(json_object_get(o, "streams"));
    for (int k = 0; ok && k < 2; k++)
        json_object_foreach(json_object_get(o, k ? "streams" : "components"), name, v) {
            char spec[LINK_NAME_MAX + 32];
            int n = snprintf(spec, sizeof(spec), "%s:%s=%s", k ? "stream" : "comp", name,
                             json_is_string(v) ? json_string_value(v) : "");
            ok = n < (int)sizeof(spec) && json_is_string(v) && !streq(json_string_value(v), "default") &&
                 set(s, spec, true) >= 0;
            if (!ok)
                break;
        }
    if (o && !ok)
        why = "holds something other than the levels halod writes";
    if (!ok) {
        log_warning("The log levels kept in '%s' are not used (%s): components and streams log at the defaults", path,
                    why);
        struct level *l;
        while ((l = LIST_POP(levels, &s->levels)))
            free(l);
        s->n_levels = s->n_streams = 0;
    } else if (s->n_levels > 0)
        log_info("Log levels of %zu components and streams restored from '%s'", s->n_levels, path);
    json_decref(o);
}

static int files_new(struct logsvc *s, const struct config *c) {
    if (!c || c->n_log_streams == 0)
        return 0;
    s->files = calloc(c->n_log_streams, sizeof(*s->files));
    if (!s->files)
        return -ENOMEM;
    for (size_t i = 0; i < c->n_log_streams; i++) {
        int r = logfile_new(s->loop, &c->log_streams[i], &s->files[i]);
        if (r < 0)
            return r;
        s->n_files++;
    }
    return 0;
}

int logsvc_new(const struct logsvc_params *p, struct logsvc **ret) {
    struct logsvc *s = calloc(1, sizeof(*s));
    if (!s)
        return -ENOMEM;
    s->loop = p->loop;
    s->amf = p->amf;
    s->node = p->node;
    int r = files_new(s, p->config);
    if (r >= 0 && p->state_dir && asprintf(&s->levels_path, "%s/log-levels.json", p->state_dir) < 0) {
        s->levels_path = NULL;
        r = -ENOMEM;
    }
    if (r >= 0 && s->levels_path)
        levels_load(s, s->levels_path);
    if (r >= 0)
        r = amf_observe(p->amf, &observer, s);
    if (r < 0) {
        logsvc_free(s);
        return r;
    }
    s->observing = true;
    *ret = s;
    return 0;
}

struct logsvc *logsvc_free(struct logsvc *s) {
    if (!s)
        return NULL;
    if (s->observing)
        amf_unobserve(s->amf, &observer, s);
    for (size_t i = 0; i < s->n_files; i++)
        logfile_close(s->files[i]); /* each frees itself once its queue is written */
    free(s->files);
    if (s->saving)
        s->saving->svc = NULL;
    free(s->levels_path);
    struct level *l;
    while ((l = LIST_POP(levels, &s->levels)))
        free(l);
    struct told *t;
    while ((t = LIST_POP(told, &s->told)))
        free(t);
    free(s);
    return NULL;
}

static struct level *find_level(const struct logsvc *s, bool stream, const char *name) {
    struct level *l;
    LIST_FOREACH (levels, l, &s->levels)
        if (l->stream == stream && streq(l->name, name))
            return l;
    return NULL;
}

/* The name of what c speaks for: its registered component, else its process. */
static const char *conn_who(struct logsvc *s, struct conn *c) {
    struct comp *comp = amf_comp_by_conn(s->amf, c);
    return comp ? comp->name : server_conn_name(c);
}

/* Sends c the levels that apply to it. */
static void tell(struct logsvc *s, struct conn *c) {
    Halo__Link__LogStreamLevel items[LINK_LOG_STREAMS_MAX], *pitems[LINK_LOG_STREAMS_MAX];
    Halo__Link__LogLevels lv = HALO__LINK__LOG_LEVELS__INIT;
    LinkMsg m = HALO__LINK__MSG__INIT;
    struct comp *comp = amf_comp_by_conn(s->amf, c);
    const struct level *own = comp ? find_level(s, false, comp->name) : NULL;
    struct level *l;

    lv.level = own ? (uint32_t)own->level : HALO_LOG_INFO;
    LIST_FOREACH (levels, l, &s->levels)
        if (l->stream && lv.n_streams < LINK_LOG_STREAMS_MAX) {
            items[lv.n_streams] = (Halo__Link__LogStreamLevel)HALO__LINK__LOG_STREAM_LEVEL__INIT;
            items[lv.n_streams].stream = l->name;
            items[lv.n_streams].level = (uint32_t)l->level;
            pitems[lv.n_streams] = &items[lv.n_streams];
            lv.n_streams++;
        }
    lv.streams = pitems;
    m.body_case = HALO__LINK__MSG__BODY_LOG_LEVELS;
    m.log_levels = &lv;
    int r = server_conn_send(c, &m);
    if (r < 0)
        log_debug_errno(r, "%s: cannot send its log levels: %m", server_conn_name(c));
}

/* c is told from now on; told now if it was not.  Its entry, or NULL (no memory). */
static struct told *remember(struct logsvc *s, struct conn *c, bool tell_now) {
    struct told *t;
    LIST_FOREACH (told, t, &s->told)
        if (t->conn == c) {
            if (tell_now)
                tell(s, c);
            return t;
        }
    t = calloc(1, sizeof(*t));
    if (!t)
        return NULL; /* it keeps the defaults */
    t->conn = c;
    LIST_PREPEND(told, &s->told, t);
    tell(s, c);
    return t;
}

/* Says how many records t's libhalo dropped: at most once a second (now: 0 says it at once). */
static void report_dropped(struct logsvc *s, struct told *t, usec_t now) {
    if (t->dropped == 0 || (now && now < t->dropped_report + USEC_PER_SEC))
        return;
    const char *who = conn_who(s, t->conn);
    log_warning_fields(LOG_FIELDS({"HALO_COMPONENT", who}),
                       "%s: %" PRIu64 " log records dropped (its link to halod was full)", who, t->dropped);
    t->dropped = 0;
    t->dropped_report = now ?: now_monotonic_usec();
}

void logsvc_registered(struct logsvc *s, struct comp *comp, struct conn *c) {
    (void)comp;
    remember(s, c, true);
}

void logsvc_conn_closed(struct logsvc *s, struct conn *c) {
    struct told *t, *next;
    LIST_FOREACH_SAFE (told, t, next, &s->told)
        if (t->conn == c) {
            report_dropped(s, t, 0);
            LIST_REMOVE(told, &s->told, t);
            free(t);
        }
}

/* A record's text as one line: control characters (a forged second line) become spaces. */
static void one_line(char *dst, const char *src, size_t size) {
    size_t i = 0;
    for (; src[i] && i < size - 1; i++)
        dst[i] = (unsigned char)src[i] < 0x20 || src[i] == 0x7f ? ' ' : src[i];
    dst[i] = '\0';
}

/* The file of stream, if it is written to one. */
static struct logfile *file_of(const struct logsvc *s, const char *stream) {
    for (size_t i = 0; i < s->n_files; i++)
        if (streq(logfile_name(s->files[i]), stream))
            return s->files[i];
    return NULL;
}

/* "2026-01-31T12:00:00.123Z NODE WHO[STREAM] SEVERITY: TEXT\n" into f: the fields of halod's log, with
 * the time (UTC) and the node, since nobody adds them to a file. */
static void to_file(struct logsvc *s, struct logfile *f, const char *who, const char *stream, const char *severity,
                    const char *text) {
    char line[LINK_LOG_TEXT_MAX + LINK_NAME_MAX * 3 + 128], stamp[32];
    usec_t now = now_realtime_usec();
    time_t sec = (time_t)(now / USEC_PER_SEC);
    struct tm tm;
    if (!gmtime_r(&sec, &tm) || strftime(stamp, sizeof(stamp), "%Y-%m-%dT%H:%M:%S", &tm) == 0)
        snprintf(stamp, sizeof(stamp), "%lld", (long long)sec);
    int n = snprintf(line, sizeof(line), "%s.%03uZ %s %s[%s] %s: %s\n", stamp,
                     (unsigned)(now % USEC_PER_SEC / USEC_PER_MSEC), s->node ?: "-", who, stream, severity, text);
    if (n >= (int)sizeof(line)) { /* cannot be (the text and the names are bounded): cut, a line still */
        n = (int)sizeof(line) - 1;
        line[n - 1] = '\n';
    }
    logfile_append(f, line, (size_t)n);
}

static void record(struct logsvc *s, struct conn *c, const Halo__Link__LogRecord *r) {
    const char *who = conn_who(s, c), *stream = *r->stream ? r->stream : "app";
    char text[LINK_LOG_TEXT_MAX + 1];

    struct told *t = remember(s, c, false);
    if (t && r->dropped > 0) {
        t->dropped += r->dropped;
        report_dropped(s, t, now_monotonic_usec());
    }
    one_line(text, r->text, sizeof(text));
    /* A stream with a file of its own goes there only: it was given one to keep it out of halod's log. */
    struct logfile *f = file_of(s, stream);
    if (f) {
        to_file(s, f, who, stream, severity_table[r->severity], text);
        return;
    }
    /* Past the component's level already (its libhalo filtered): not filtered again by halod's. */
    int level = r->severity > HALO_LOG_DEBUG ? LOG_DEBUG_ : (int)r->severity;
    (void)log_internal_fields(level, LOG_AREA, 0, __FILE__, __LINE__,
                              LOG_FIELDS({"HALO_COMPONENT", who}, {"HALO_STREAM", stream},
                                         {"HALO_SEVERITY", severity_table[r->severity]}, {"SYSLOG_IDENTIFIER", who}),
                              "%s[%s] %s: %s", who, stream, severity_table[r->severity], text);
}

bool logsvc_handle_msg(struct logsvc *s, struct conn *c, const LinkMsg *msg) {
    if (msg->body_case != HALO__LINK__MSG__BODY_LOG_RECORD)
        return false;
    record(s, c, msg->log_record);
    return true;
}

static int severity_from_string(const char *s) {
    for (size_t i = 0; i < ELEMENTSOF(severity_table); i++)
        if (streq(severity_table[i], s))
            return (int)i;
    return -EINVAL;
}

/* Every connection the change of (stream, name) applies to is told its levels again. */
static void tell_affected(struct logsvc *s, bool stream, const char *name) {
    struct told *t;
    LIST_FOREACH (told, t, &s->told) {
        struct comp *comp = stream ? NULL : amf_comp_by_conn(s->amf, t->conn);
        if (stream || (comp && streq(comp->name, name)))
            tell(s, t->conn);
    }
}

static int set(struct logsvc *s, const char *spec, bool loading) {
    const char *colon = strchr(spec, ':'), *eq = strrchr(spec, '=');
    if (!colon || !eq || eq < colon)
        return -EINVAL;
    bool stream = (size_t)(colon - spec) == 6 && strncmp(spec, "stream", 6) == 0;
    if (!stream && !((size_t)(colon - spec) == 4 && strncmp(spec, "comp", 4) == 0))
        return -EINVAL;
    char name[LINK_NAME_MAX + 1];
    size_t n = (size_t)(eq - colon - 1);
    if (n == 0 || n >= sizeof(name))
        return -EINVAL;
    memcpy(name, colon + 1, n);
    name[n] = '\0';
    if (stream ? link_log_stream_check(name) < 0 : !svc_name_valid(name, LINK_NAME_MAX))
        return -EINVAL;
    bool clear = streq(eq + 1, "default");
    int level = clear ? 0 : severity_from_string(eq + 1);
    if (level < 0)
        return -EINVAL;

    struct level *l = find_level(s, stream, name);
    if (clear) {
        if (l) {
            LIST_REMOVE(levels, &s->levels, l);
            s->n_levels--;
            s->n_streams -= stream;
            free(l);
        }
    } else if (l)
        l->level = level;
    else {
        if (s->n_levels >= LOGSVC_LEVELS_MAX || (stream && s->n_streams >= LINK_LOG_STREAMS_MAX))
            return -ENOSPC;
        l = calloc(1, sizeof(*l) + n + 1);
        if (!l)
            return -ENOMEM;
        l->stream = stream;
        l->level = level;
        memcpy(l->name, name, n + 1);
        LIST_PREPEND(levels, &s->levels, l);
        s->n_levels++;
        s->n_streams += stream;
    }
    if (!loading)
        tell_affected(s, stream, name);
    return 0;
}

/* Writes json into path as a whole or not at all: a temporary file, synced, renamed over it, and
 * the rename synced (its directory).  On the thread pool: a disk does not stop halod's loop. */
static void save_work(uv_work_t *w) {
    struct saving *sv = w->data;
    _cleanup_free_ char *tmp = NULL, *dir = strdup(sv->path);
    if (!dir || asprintf(&tmp, "%s.tmp", sv->path) < 0) {
        sv->r = -ENOMEM;
        return;
    }
    errno = 0;
    _cleanup_close_ int fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC | O_NOFOLLOW, 0600);
    size_t len = strlen(sv->json);
    if (fd < 0 || write(fd, sv->json, len) != (ssize_t)len || fsync(fd) < 0 || rename(tmp, sv->path) < 0) {
        sv->r = errno ? -errno : -EIO; /* a short write: the disk is full */
        (void)unlink(tmp);
        return;
    }
    char *slash = strrchr(dir, '/');
    if (slash)
        *slash = '\0';
    _cleanup_close_ int dfd = open(slash && *dir ? dir : ".", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    sv->r = dfd >= 0 && fsync(dfd) == 0 ? 0 : -errno;
}

static void save(struct logsvc *s);

static void save_done(uv_work_t *w, int status) {
    struct saving *sv = w->data;
    struct logsvc *s = sv->svc;
    int r = status < 0 ? status : sv->r;
    if (r < 0)
        log_warning_errno(r, "Failed to keep the log levels in '%s' (a restarted halod would not have them): %m",
                          sv->path);
    free(sv->path);
    free(sv->json);
    free(sv);
    if (!s)
        return;
    s->saving = NULL;
    if (s->save_again) {
        s->save_again = false;
        save(s);
    }
}

/* The levels go to s->levels_path, one write at a time (the last change is the one written last). */
static void save(struct logsvc *s) {
    if (!s->levels_path || !s->loop)
        return;
    if (s->saving) {
        s->save_again = true;
        return;
    }
    struct saving *sv = calloc(1, sizeof(*sv));
    if (sv && (sv->json = logsvc_json(s)) && (sv->path = strdup(s->levels_path))) {
        sv->svc = s;
        sv->work.data = sv;
        if (uv_queue_work(s->loop, &sv->work, save_work, save_done) >= 0) {
            s->saving = sv;
            return;
        }
    }
    log_warning("Failed to keep the log levels in '%s' (a restarted halod would not have them): out of memory",
                s->levels_path);
    if (sv) {
        free(sv->json);
        free(sv->path);
    }
    free(sv);
}

int logsvc_set(struct logsvc *s, const char *spec) {
    int r = set(s, spec, false);
    if (r >= 0)
        save(s);
    return r;
}

void logsvc_reopen(struct logsvc *s) {
    for (size_t i = 0; i < s->n_files; i++)
        logfile_reopen(s->files[i]);
}

char *logsvc_json(const struct logsvc *s) {
    json_t *comps = json_object(), *streams = json_object();
    struct level *l;
    LIST_FOREACH (levels, l, &s->levels)
        (void)json_object_set_new(l->stream ? streams : comps, l->name, json_string(severity_table[l->level]));
    json_t *o = json_pack("{s:s, s:o, s:o}", "default", "info", "components", comps, "streams", streams);
    char *json = o ? json_dumps(o, JSON_COMPACT | JSON_SORT_KEYS) : NULL;
    json_decref(o);
    return json;
}
