/* SPDX-License-Identifier: MIT */
/*
 * The log service through libhalo (since 0.7, docs/logging.md "Components' records"): a
 * component writes records with a severity into a named stream; halod adds who wrote them and
 * forwards them into its own log (journald with their fields, or stderr).  An operator changes
 * the level of a component or of a stream while everything runs (`haloctl log-level comp:NAME
 * LEVEL`); halod tells the component, and libhalo drops the records below it before it formats
 * them, so a disabled debug record costs a comparison.
 *
 * The levels reach the handle as halod sends them, read whenever the handle reads its link (a
 * call, or halo_dispatch()).  Until the first, records up to HALO_LOG_INFO pass.
 */
#ifndef HALO_LOG_H
#define HALO_LOG_H

#include <stdarg.h>
#include <stdbool.h>

#include "halo/halo.h"

#ifdef __cplusplus
extern "C" {
#endif

/* syslog's severities, and SAFplus's trace below debug. */
typedef enum halo_log_severity {
    HALO_LOG_EMERGENCY = 0,
    HALO_LOG_ALERT = 1,
    HALO_LOG_CRITICAL = 2,
    HALO_LOG_ERROR = 3,
    HALO_LOG_WARNING = 4,
    HALO_LOG_NOTICE = 5,
    HALO_LOG_INFO = 6,
    HALO_LOG_DEBUG = 7,
    HALO_LOG_TRACE = 8,
} halo_log_severity;

/* A stream's name: up to this many letters, digits and "-_."; NULL or "" is the stream "app". */
#define HALO_LOG_STREAM_MAX 64
/* A record's text: longer ones are cut to this many bytes (at a character boundary). */
#define HALO_LOG_TEXT_MAX 4096

/*
 * Whether a record of severity into stream would be sent now: to skip building what only a
 * record would use.
 */
bool halo_log_enabled(halo *h, halo_log_severity severity, const char *stream);

/*
 * Formats a record and sends it to halod, unless the levels halod sent drop it.  Never waits:
 * a record that finds the link full (halod behind) or down is dropped and counted, and the
 * next record sent carries the count, which halod logs.
 * Returns 0 (sent, or below the level), -EINVAL (bad severity or stream, NULL format),
 * -EAGAIN (dropped: link full), -ENOTCONN (dropped: link down), -EBADF, -ENOMEM.
 */
int halo_log(halo *h, halo_log_severity severity, const char *stream, const char *format, ...)
    __attribute__((format(printf, 4, 5)));
int halo_logv(halo *h, halo_log_severity severity, const char *stream, const char *format, va_list ap)
    __attribute__((format(printf, 4, 0)));

#ifdef __cplusplus
}
#endif

#endif
