/* SPDX-License-Identifier: MIT */
/* Logging for the daemons: one line per message on stderr, levels per area. */
#include "log.h"

#include <errno.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "halo/halo.h"
#include "string-table.h"

int log_levels[_LOG_AREA_MAX] = {LOG_INFO_, LOG_INFO_, LOG_INFO_, LOG_INFO_, LOG_INFO_, LOG_INFO_};

static const char *const log_area_table[_LOG_AREA_MAX] = {"main", "amf", "link", "supervisor", "store", "cluster"};
DEFINE_PRIVATE_STRING_TABLE_LOOKUP(log_area, enum log_area);
/* Below error only for what the log service forwards (a component's emergency, alert, critical). */
static const char *const log_level_table[] = {[0] = "emergency",          [1] = "alert",
                                              [2] = "critical",           [LOG_ERR_] = "error",
                                              [LOG_WARNING_] = "warning", [LOG_NOTICE_] = "notice",
                                              [LOG_INFO_] = "info",       [LOG_DEBUG_] = "debug"};
DEFINE_STRING_TABLE_FROM_STRING(log_level, enum log_level);
static const char *log_prefix = "halo";
static bool log_journal; /* stderr is a journald stream: "<N>" priority prefixes, no time */
static log_journal_sink journal_sink;

/* systemd sets $JOURNAL_STREAM to "DEVICE:INODE" of the stream it connected
 * to stderr (systemd.exec(5)); a stderr redirected since is not it. */
static bool stderr_is_journal(void) {
    const char *e = getenv("JOURNAL_STREAM");
    unsigned long long dev, ino;
    struct stat st;
    int n = 0;
    if (!e || sscanf(e, "%llu:%llu%n", &dev, &ino, &n) != 2 || e[n] != 0)
        return false;
    return fstat(STDERR_FILENO, &st) == 0 && st.st_dev == dev && st.st_ino == ino;
}

void log_set_prefix(const char *prefix) {
    log_prefix = prefix;
    log_journal = stderr_is_journal();
}

void log_set_journal_sink(log_journal_sink sink) {
    journal_sink = sink;
}

void log_set_level(int level) {
    for (size_t i = 0; i < _LOG_AREA_MAX; i++)
        log_levels[i] = level;
}

int log_set_level_area(const char *area, int level) {
    int a = log_area_from_string(area);
    if (a < 0)
        return a;
    log_levels[a] = level;
    return 0;
}

const char *log_area_name(enum log_area area) {
    return area >= 0 && area < _LOG_AREA_MAX ? log_area_table[area] : NULL;
}

const char *log_level_name(int level) {
    return level >= LOG_ERR_ && level <= LOG_DEBUG_ ? log_level_table[level] : NULL;
}

int log_set_level_spec(const char *spec) {
    const char *eq = strchr(spec, '=');
    int lvl = log_level_from_string(eq ? eq + 1 : spec);
    if (lvl < LOG_ERR_) /* halod's own records are never below error */
        return -EINVAL;
    if (!eq) {
        log_set_level(lvl);
        return 0;
    }
    char area[32];
    if ((size_t)(eq - spec) >= sizeof(area))
        return -ENOENT;
    memcpy(area, spec, (size_t)(eq - spec));
    area[eq - spec] = 0;
    return log_set_level_area(area, lvl) < 0 ? -ENOENT : 0;
}

static int log_va(int level, enum log_area area, int err, const char *file, int line, const struct log_field *fields,
                  const char *fmt, va_list ap) {
    char buf[2048];
    char out[8192]; /* a component's line of up to 4 KiB, tagged (output-lines.h) */
    size_t j = 0;
    int e = err < 0 ? -err : err;

    /* Expand %m ourselves so the caller's errno is irrelevant. */
    for (const char *p = fmt; *p && j < sizeof(buf) - 1; p++) {
        if (p[0] == '%' && p[1] == 'm') {
            const char *s = e ? halo_strerror(-e) : "Success";
            size_t n = strlen(s);
            if (n > sizeof(buf) - 1 - j)
                n = sizeof(buf) - 1 - j;
            memcpy(buf + j, s, n);
            j += n;
            p++;
        } else if (p[0] == '%' && p[1] == '%') {
            if (j + 2 < sizeof(buf)) {
                buf[j++] = '%';
                buf[j++] = '%';
            }
            p++;
        } else
            buf[j++] = *p;
    }
    buf[j] = 0;

#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wformat-nonliteral"
    vsnprintf(out, sizeof(out), buf, ap);
#pragma GCC diagnostic pop

    if (log_journal && journal_sink && journal_sink(level, log_area_table[area], out, file, line, fields) >= 0)
        return -e;
    if (log_journal) {
        /* journald stamps the time and keeps the priority (journalctl -p). */
        if (level >= LOG_DEBUG_)
            fprintf(stderr, "<%d>[%s] %s (%s:%d)\n", level, log_area_table[area], out, file, line);
        else
            fprintf(stderr, "<%d>[%s] %s\n", level, log_area_table[area], out);
        return -e;
    }
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    struct tm tm;
    localtime_r(&ts.tv_sec, &tm);
    if (level >= LOG_DEBUG_)
        fprintf(stderr, "%02d:%02d:%02d.%03ld %s[%s] %s: %s (%s:%d)\n", tm.tm_hour, tm.tm_min, tm.tm_sec,
                ts.tv_nsec / 1000000, log_prefix, log_area_table[area], log_level_table[level], out, file, line);
    else
        fprintf(stderr, "%02d:%02d:%02d.%03ld %s[%s] %s: %s\n", tm.tm_hour, tm.tm_min, tm.tm_sec, ts.tv_nsec / 1000000,
                log_prefix, log_area_table[area], log_level_table[level], out);
    return -e;
}

int log_internal(int level, enum log_area area, int err, const char *file, int line, const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    int r = log_va(level, area, err, file, line, NULL, fmt, ap);
    va_end(ap);
    return r;
}

int log_internal_fields(int level, enum log_area area, int err, const char *file, int line,
                        const struct log_field *fields, const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    int r = log_va(level, area, err, file, line, fields, fmt, ap);
    va_end(ap);
    return r;
}
