/* SPDX-License-Identifier: MIT */
/* The log service (logsvc.h). */
#define LOG_AREA LOG_AREA_SUPERVISOR
#include "logsvc.h"

#include <errno.h>
#include <inttypes.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "amf-model.h"
#include "amf.h"
#include "halo/log.h"
#include "list.h"
#include "log.h"
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

struct logsvc {
    struct amf *amf;
    bool observing;
    LIST_HEAD(struct level) levels;
    size_t n_levels, n_streams;
    LIST_HEAD(struct told) told;
};

static void on_comp_event(void *userdata, struct comp *c, enum amf_comp_event ev, const char *reason) {
    (void)reason;
    if (ev == AMF_COMP_REGISTERED && c->conn)
        logsvc_registered(userdata, c, c->conn);
}

static const struct amf_observer observer = {.comp_event = on_comp_event};

int logsvc_new(struct amf *amf, struct logsvc **ret) {
    struct logsvc *s = calloc(1, sizeof(*s));
    if (!s)
        return -ENOMEM;
    s->amf = amf;
    int r = amf_observe(amf, &observer, s);
    if (r < 0) {
        free(s);
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

static void record(struct logsvc *s, struct conn *c, const Halo__Link__LogRecord *r) {
    const char *who = conn_who(s, c), *stream = *r->stream ? r->stream : "app";
    char text[LINK_LOG_TEXT_MAX + 1];

    struct told *t = remember(s, c, false);
    if (t && r->dropped > 0) {
        t->dropped += r->dropped;
        report_dropped(s, t, now_monotonic_usec());
    }
    one_line(text, r->text, sizeof(text));
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

int logsvc_set(struct logsvc *s, const char *spec) {
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
    tell_affected(s, stream, name);
    return 0;
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
