/* SPDX-License-Identifier: MIT */
/* libhalo's log service calls (the contract is include/halo/log.h). */
#include "halo/log.h"

#include <errno.h>
#include <stdio.h>
#include <string.h>

#include "halo-internal.h"
#include "macro.h"

/* The level that applies to stream ("" or NULL: "app").  Lock held. */
static int level_of(const halo *h, const char *stream) {
    const char *s = stream && *stream ? stream : "app";
    for (unsigned i = 0; i < h->n_log_streams; i++)
        if (streq(h->log_streams[i].name, s))
            return h->log_streams[i].level;
    return h->log_level;
}

void halo__log_reset(halo *h) {
    h->log_level = HALO_LOG_INFO;
    h->n_log_streams = 0;
}

void halo__log_levels(halo *h, const Halo__Link__LogLevels *l) {
    h->log_level = (int)l->level;
    h->n_log_streams = 0;
    for (size_t i = 0; i < l->n_streams && i < ELEMENTSOF(h->log_streams); i++) {
        /* The link checked each name's length and characters. */
        snprintf(h->log_streams[i].name, sizeof(h->log_streams[i].name), "%s", l->streams[i]->stream);
        h->log_streams[i].level = (int)l->streams[i]->level;
        h->n_log_streams++;
    }
}

static bool severity_valid(halo_log_severity s) {
    return (unsigned)s <= HALO_LOG_TRACE;
}

HALO_EXPORT bool halo_log_enabled(halo *h, halo_log_severity severity, const char *stream) {
    if (!h || !severity_valid(severity) || link_log_stream_check(stream) < 0 || halo__enter(h) < 0)
        return false;
    bool on = (int)severity <= level_of(h, stream);
    halo__leave(h);
    return on;
}

/* Cuts text after n bytes, at the start of a UTF-8 character. */
static void cut(char *text, size_t n) {
    while (n > 0 && ((unsigned char)text[n] & 0xc0) == 0x80)
        n--;
    text[n] = '\0';
}

/* Sends r without waiting, or counts it dropped.  Lock held. */
static int send_record(halo *h, Halo__Link__LogRecord *rec) {
    LinkMsg m = HALO__LINK__MSG__INIT;
    m.body_case = HALO__LINK__MSG__BODY_LOG_RECORD;
    m.log_record = rec;
    rec->dropped = h->log_dropped;
    /* RESUMING: one halo_dispatch() owns the socket until it registered again. */
    int r = h->state == LINK_UP ? link_send(h->fd, &m) : -ENOTCONN;
    if (r == -EPIPE || r == -ECONNRESET || r == -ENOTCONN) {
        if (h->state == LINK_UP)
            halo__link_lost(h, r);
        r = -ENOTCONN;
    }
    if (r == 0)
        h->log_dropped = 0;
    else if (h->log_dropped < UINT32_MAX)
        h->log_dropped++;
    return r;
}

HALO_EXPORT int halo_logv(halo *h, halo_log_severity severity, const char *stream, const char *format, va_list ap) {
    assert_return(h && format, -EINVAL);
    if (!severity_valid(severity) || link_log_stream_check(stream) < 0)
        return -EINVAL;
    int r = halo__enter(h);
    if (r < 0)
        return r;
    bool on = (int)severity <= level_of(h, stream);
    halo__leave(h);
    if (!on)
        return 0;

    /* Formatted without the lock: a slow argument blocks no other thread's call. */
    char text[HALO_LOG_TEXT_MAX + 1];
    int n = vsnprintf(text, sizeof(text), format, ap);
    if (n < 0)
        return -EINVAL;
    if ((size_t)n > HALO_LOG_TEXT_MAX)
        cut(text, HALO_LOG_TEXT_MAX);

    Halo__Link__LogRecord rec = HALO__LINK__LOG_RECORD__INIT;
    rec.severity = severity;
    rec.stream = (char *)(stream ?: "");
    rec.text = text;
    r = halo__enter(h);
    if (r < 0)
        return r;
    r = send_record(h, &rec);
    halo__leave(h);
    return r;
}

HALO_EXPORT int halo_log(halo *h, halo_log_severity severity, const char *stream, const char *format, ...) {
    va_list ap;
    va_start(ap, format);
    int r = halo_logv(h, severity, stream, format, ap);
    va_end(ap);
    return r;
}
