/* SPDX-License-Identifier: MIT */
/* Logging for the daemons: levels per area, checked before arguments are evaluated. */
#pragma once

#include <stdarg.h>

#include "macro.h"

enum log_level { LOG_ERR_ = 3, LOG_WARNING_ = 4, LOG_NOTICE_ = 5, LOG_INFO_ = 6, LOG_DEBUG_ = 7 };

/* Areas whose level can be changed at runtime independently. */
enum log_area {
    LOG_AREA_MAIN,
    LOG_AREA_AMF,
    LOG_AREA_LINK,
    LOG_AREA_SUPERVISOR,
    LOG_AREA_STORE,
    LOG_AREA_CLUSTER,
    _LOG_AREA_MAX
};

extern int log_levels[_LOG_AREA_MAX];

void log_set_level(int level);                       /* all areas */
int log_set_level_area(const char *area, int level); /* -EINVAL on unknown area */
int log_level_from_string(const char *s);            /* -EINVAL on unknown */
const char *log_level_name(int level);               /* NULL on unknown */
const char *log_area_name(enum log_area area);       /* NULL on unknown */
/* "LEVEL" (every area) or "AREA=LEVEL": sets it.  0, or -EINVAL (unknown level), -ENOENT (unknown area). */
int log_set_level_spec(const char *spec);
void log_set_prefix(const char *prefix); /* program name shown on each line */
/* log_set_prefix() also finds out whether stderr is journald's stream
 * ($JOURNAL_STREAM): each line then starts with its syslog priority, "<3>" for
 * an error, and carries no time (journald stamps it). */

/* Logs and returns -abs(err); %m in fmt prints strerror(err). */
int log_internal(int level, enum log_area area, int err, const char *file, int line, const char *fmt, ...)
    _printf_(6, 7);

/*
 * A journal field of a record: name as journald takes it (upper case, digits, '_'; "HALO_SU"),
 * value any text.  A record's fields are a list ending with {NULL, NULL}; LOG_FIELDS() writes one:
 *
 *     log_warning_fields(LOG_FIELDS({"HALO_SU", su->name}), "Service unit '%s' failed", su->name);
 *
 * The text on stderr is the same with or without fields: they reach only the journal sink.
 */
struct log_field {
    const char *name;
    const char *value;
};
#define LOG_FIELDS(...) ((const struct log_field[]){__VA_ARGS__, {NULL, NULL}})

/* log_internal() with fields (NULL: none). */
int log_internal_fields(int level, enum log_area area, int err, const char *file, int line,
                        const struct log_field *fields, const char *fmt, ...) _printf_(7, 8);

/*
 * Where records go instead of stderr once log_set_prefix() found stderr to be journald's stream:
 * halod sets one that speaks journald's native protocol (message, priority, fields).  It returns 0,
 * or -errno when the record did not get through: it is then written on stderr as without a sink.
 * area is the area's name, message the formatted text.  NULL: stderr only.
 */
typedef int (*log_journal_sink)(int level, const char *area, const char *message, const char *file, int line,
                                const struct log_field *fields);
void log_set_journal_sink(log_journal_sink sink);

#ifndef LOG_AREA
#define LOG_AREA LOG_AREA_MAIN
#endif

#define log_full_errno(level, err, ...)                                                                        \
    ({                                                                                                         \
        int _e = (err);                                                                                        \
        log_levels[LOG_AREA] >= (level) ? log_internal((level), LOG_AREA, _e, __FILE__, __LINE__, __VA_ARGS__) \
                                        : -(_e < 0 ? -_e : _e);                                                \
    })

#define log_full_fields(level, err, fields, ...)                                                    \
    ({                                                                                              \
        int _e = (err);                                                                             \
        log_levels[LOG_AREA] >= (level)                                                             \
            ? log_internal_fields((level), LOG_AREA, _e, __FILE__, __LINE__, (fields), __VA_ARGS__) \
            : -(_e < 0 ? -_e : _e);                                                                 \
    })

#define log_info_fields(fields, ...) (void)log_full_fields(LOG_INFO_, 0, fields, __VA_ARGS__)
#define log_notice_fields(fields, ...) (void)log_full_fields(LOG_NOTICE_, 0, fields, __VA_ARGS__)
#define log_warning_fields(fields, ...) (void)log_full_fields(LOG_WARNING_, 0, fields, __VA_ARGS__)
#define log_error_fields(fields, ...) (void)log_full_fields(LOG_ERR_, 0, fields, __VA_ARGS__)

#define log_debug(...) (void)log_full_errno(LOG_DEBUG_, 0, __VA_ARGS__)
#define log_info(...) (void)log_full_errno(LOG_INFO_, 0, __VA_ARGS__)
#define log_notice(...) (void)log_full_errno(LOG_NOTICE_, 0, __VA_ARGS__)
#define log_warning(...) (void)log_full_errno(LOG_WARNING_, 0, __VA_ARGS__)
#define log_error(...) (void)log_full_errno(LOG_ERR_, 0, __VA_ARGS__)
#define log_error_errno(err, ...) log_full_errno(LOG_ERR_, (err), __VA_ARGS__)
#define log_warning_errno(err, ...) log_full_errno(LOG_WARNING_, (err), __VA_ARGS__)
#define log_debug_errno(err, ...) log_full_errno(LOG_DEBUG_, (err), __VA_ARGS__)
