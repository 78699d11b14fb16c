/* SPDX-License-Identifier: MIT */
/* Clocks and durations: monotonic microseconds, and "250ms"/"2s"/"1m" parsing. */
#pragma once

#include <stddef.h>
#include <stdint.h>

#define USEC_PER_MSEC UINT64_C(1000)
#define USEC_PER_SEC UINT64_C(1000000)

typedef uint64_t usec_t;

usec_t now_monotonic_usec(void);
usec_t now_realtime_usec(void);

/* Parses "500ms", "2s", "1.5s", "3m", "100us"; a bare number is seconds.
 * Returns 0 and *ret, or -EINVAL. */
int parse_duration(const char *s, usec_t *ret);

/* Formats a duration into buf ("1.5s", "250ms"); returns buf. */
char *format_duration(char *buf, size_t n, usec_t u);
