/* SPDX-License-Identifier: MIT */
/* Clocks and durations. */
#include "time-util.h"

#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

static usec_t clock_usec(clockid_t c) {
    struct timespec ts;
    clock_gettime(c, &ts);
    return (usec_t)ts.tv_sec * USEC_PER_SEC + (usec_t)ts.tv_nsec / 1000;
}

usec_t now_monotonic_usec(void) {
    return clock_usec(CLOCK_MONOTONIC);
}

usec_t now_realtime_usec(void) {
    return clock_usec(CLOCK_REALTIME);
}

int parse_duration(const char *s, usec_t *ret) {
    static const struct {
        const char *suffix;
        double mult;
    } units[] = {{"us", 1}, {"ms", 1e3}, {"s", 1e6}, {"m", 60e6}, {"h", 3600e6}, {"", 1e6}};
    char *end;

    if (!s || !*s)
        return -EINVAL;
    errno = 0;
    double v = strtod(s, &end);
    if (errno || end == s || !isfinite(v) || v < 0)
        return -EINVAL;
    for (size_t i = 0; i < sizeof(units) / sizeof(units[0]); i++)
        if (strcmp(end, units[i].suffix) == 0) {
            double u = v * units[i].mult;
            if (u > 1e15)
                return -ERANGE;
            *ret = (usec_t)(u + 0.5);
            return 0;
        }
    return -EINVAL;
}

char *format_duration(char *buf, size_t n, usec_t u) {
    if (u >= USEC_PER_SEC && u % USEC_PER_SEC == 0)
        snprintf(buf, n, "%llus", (unsigned long long)(u / USEC_PER_SEC));
    else if (u >= USEC_PER_SEC)
        snprintf(buf, n, "%.3gs", (double)u / 1e6);
    else if (u >= USEC_PER_MSEC)
        snprintf(buf, n, "%.3gms", (double)u / 1e3);
    else
        snprintf(buf, n, "%lluus", (unsigned long long)u);
    return buf;
}
