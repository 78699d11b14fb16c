/* SPDX-License-Identifier: MIT */
/* Hybrid logical clock: monotonic timestamps close to wall-clock time, comparable across nodes (see hlc.h). */
#include "hlc.h"
#include "parse-util.h"

#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "macro.h"
#include "time-util.h"

/* A test hook: HALO_TEST_CLOCK_OFFSET_MSEC (a signed number of milliseconds)
 * moves this process's wall clock as the HLC reads it, so that a test can run
 * one node with a clock behind or ahead of the others.  Read once. */
static int64_t test_offset_ms(void) {
    static bool known;
    static int64_t offset;
    if (!known) {
        const char *s = getenv("HALO_TEST_CLOCK_OFFSET_MSEC");
        if (!s || parse_i64(s, &offset) < 0)
            offset = 0;
        known = true;
    }
    return offset;
}

static uint64_t hlc_realtime_ms(void *userdata) {
    int64_t ms = (int64_t)(now_realtime_usec() / USEC_PER_MSEC) + test_offset_ms();
    return ms > 0 ? (uint64_t)ms : 1;
}

void hlc_init(struct hlc *c, hlc_clock_fn clock, void *userdata) {
    *c = (struct hlc){
        .clock = clock ? clock : hlc_realtime_ms,
        .clock_userdata = clock ? userdata : NULL,
    };
}

static uint64_t physical_now(struct hlc *c) {
    return MIN(c->clock(c->clock_userdata), HLC_PHYSICAL_MAX);
}

/* The next timestamp after c->last: the logical counter + 1, which carries
 * into the physical part when the counter is full (no waiting for the clock). */
static uint64_t after(uint64_t t) {
    return t == UINT64_MAX ? t : t + 1;
}

uint64_t hlc_now(struct hlc *c) {
    c->last = MAX(after(c->last), hlc_make(physical_now(c), 0));
    return c->last;
}

/* Kulkarni's receive rule in the packed form: with (l, c) ordered as one
 * integer, max(l', l_m, pt) and the counter cases reduce to the max of the
 * three successors. */
int hlc_update(struct hlc *c, uint64_t remote, uint64_t *ret_now) {
    assert_return(c, -EINVAL);
    uint64_t pt = physical_now(c);
    if (hlc_physical(remote) > pt + HLC_MAX_DRIFT_MS)
        return -ERANGE;
    c->last = MAX(MAX(after(c->last), after(remote)), hlc_make(pt, 0));
    if (ret_now)
        *ret_now = c->last;
    return 0;
}

void hlc_witness(struct hlc *c, uint64_t t) {
    c->last = MAX(c->last, t);
}

char *hlc_format(uint64_t t, char buf[static HLC_STRING_MAX]) {
    uint64_t ms = hlc_physical(t);
    time_t secs = (time_t)(ms / 1000);
    struct tm tm;
    if (!gmtime_r(&secs, &tm)) {
        snprintf(buf, HLC_STRING_MAX, "%" PRIu64, t);
        return buf;
    }
    /* The modulos only tell the compiler the ranges gmtime_r() guarantees. */
    snprintf(buf, HLC_STRING_MAX, "%04u-%02u-%02uT%02u:%02u:%02u.%03uZ+%u", (unsigned)(tm.tm_year + 1900) % 100000u,
             (unsigned)tm.tm_mon % 12u + 1, (unsigned)tm.tm_mday % 32u, (unsigned)tm.tm_hour % 24u,
             (unsigned)tm.tm_min % 60u, (unsigned)tm.tm_sec % 61u, (unsigned)(ms % 1000), (unsigned)hlc_logical(t));
    return buf;
}

static bool is_digit(char c) {
    return c >= '0' && c <= '9';
}

/* Reads exactly n digits at *p and advances; -1 if they are not all digits. */
static int64_t digits(const char **p, size_t n) {
    int64_t v = 0;
    for (size_t i = 0; i < n; i++) {
        if (!is_digit((*p)[i]))
            return -1;
        v = v * 10 + ((*p)[i] - '0');
    }
    *p += n;
    return v;
}

/* Reads n digits followed by the character sep. */
static int64_t field(const char **p, size_t n, char sep) {
    int64_t v = digits(p, n);
    if (v < 0 || **p != sep)
        return -1;
    (*p)++;
    return v;
}

static bool leap_year(int64_t y) {
    return (y % 4 == 0 && y % 100 != 0) || y % 400 == 0;
}

static int days_in_month(int64_t y, int64_t m) {
    static const int days[] = {31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31};
    return m == 2 && leap_year(y) ? 29 : days[m - 1];
}

static int parse_iso(const char *s, uint64_t *ret) {
    const char *p = s;
    size_t year_digits = strspn(p, "0123456789");
    if (year_digits != 4 && year_digits != 5)
        return -EINVAL;
    int64_t year = field(&p, year_digits, '-');
    int64_t month = field(&p, 2, '-');
    int64_t day = field(&p, 2, 'T');
    int64_t hour = field(&p, 2, ':');
    int64_t min = field(&p, 2, ':');
    int64_t sec = field(&p, 2, '.');
    int64_t ms = field(&p, 3, 'Z');
    if (year < 0 || month < 0 || day < 0 || hour < 0 || min < 0 || sec < 0 || ms < 0)
        return -EINVAL;
    if ((year_digits == 5 && year < 10000) || month < 1 || month > 12 || day < 1 || day > days_in_month(year, month) ||
        hour > 23 || min > 59 || sec > 59)
        return -EINVAL;
    if (year < 1970)
        return -ERANGE;

    uint64_t logical = 0;
    if (*p == '+') {
        p++;
        size_t n = strspn(p, "0123456789");
        if (n == 0 || n > 5 || p[n] != '\0')
            return -EINVAL;
        logical = (uint64_t)digits(&p, n);
        if (logical > HLC_LOGICAL_MAX)
            return -ERANGE;
    } else if (*p != '\0')
        return -EINVAL;

    struct tm tm = {
        .tm_year = (int)(year - 1900),
        .tm_mon = (int)(month - 1),
        .tm_mday = (int)day,
        .tm_hour = (int)hour,
        .tm_min = (int)min,
        .tm_sec = (int)sec,
    };
    time_t secs = timegm(&tm);
    if (secs < 0)
        return -ERANGE;
    uint64_t physical = (uint64_t)secs * 1000 + (uint64_t)ms;
    if (physical > HLC_PHYSICAL_MAX)
        return -ERANGE;
    *ret = hlc_make(physical, logical);
    return 0;
}

int hlc_parse(const char *s, uint64_t *ret) {
    assert_return(s, -EINVAL);
    assert_return(ret, -EINVAL);
    if (s[0] != '\0' && strspn(s, "0123456789") == strlen(s))
        return parse_u64(s, ret);
    return parse_iso(s, ret);
}
