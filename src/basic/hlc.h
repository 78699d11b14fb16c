/* SPDX-License-Identifier: MIT */
/*
 * Hybrid logical clock (Kulkarni et al., "Logical Physical Clocks", 2014):
 * timestamps that follow wall-clock time closely, never go backwards, and
 * order causally related events across nodes.
 *
 * A timestamp is one uint64_t: the physical part (milliseconds since the Unix
 * epoch, 48 bits, enough until the year 10889) in the high bits and the
 * logical counter (16 bits) in the low bits, so that comparing two timestamps
 * as integers compares them as HLC timestamps.  0 is never issued and may
 * mean "no timestamp".
 *
 * hlc_now() is for a local or send event, hlc_update() for a receive event;
 * each returns a timestamp greater than every timestamp the clock issued or
 * received before.  When the logical counter would overflow (65536 events in
 * one millisecond, or a clock held back by a remote timestamp), the physical
 * part moves on by 1 ms instead of waiting for the wall clock.  A remote
 * timestamp more than HLC_MAX_DRIFT_MS ahead of this node's physical clock is
 * refused, so that one node with a wild clock cannot drag every other
 * node's clock into the future.
 *
 * Text forms: hlc_format() writes "2026-11-22T10:11:12.345Z+3" (ISO 8601 UTC
 * with milliseconds, '+', the logical counter); JSON carries the integer as a
 * decimal string, because JSON numbers above 2^53 lose precision in many
 * parsers.  hlc_parse() reads both.
 *
 * Not thread-safe: one clock per loop thread.
 */
#pragma once

#include <stdbool.h>
#include <stdint.h>

#define HLC_LOGICAL_BITS 16
#define HLC_LOGICAL_MAX UINT64_C(0xffff)
#define HLC_PHYSICAL_MAX ((UINT64_C(1) << (64 - HLC_LOGICAL_BITS)) - 1)
#define HLC_MAX_DRIFT_MS UINT64_C(60000)
/* "10889-08-02T05:31:50.655Z+65535" and its NUL, with room to spare. */
#define HLC_STRING_MAX 40
/* The decimal form: 20 digits and a NUL. */
#define HLC_DECIMAL_MAX 21

/* Returns the physical time in milliseconds since the Unix epoch. */
typedef uint64_t (*hlc_clock_fn)(void *userdata);

/* Initialize with hlc_init(); the fields are read-only for users. */
struct hlc {
    uint64_t last; /* the greatest timestamp issued or received */
    hlc_clock_fn clock;
    void *clock_userdata;
};

static inline uint64_t hlc_make(uint64_t physical_ms, uint64_t logical) {
    return (physical_ms << HLC_LOGICAL_BITS) | (logical & HLC_LOGICAL_MAX);
}

static inline uint64_t hlc_physical(uint64_t t) {
    return t >> HLC_LOGICAL_BITS;
}

static inline uint64_t hlc_logical(uint64_t t) {
    return t & HLC_LOGICAL_MAX;
}

/* clock: the physical clock, NULL for CLOCK_REALTIME (userdata unused then;
 * a test may move it by $HALO_TEST_CLOCK_OFFSET_MSEC milliseconds, read once). */
void hlc_init(struct hlc *c, hlc_clock_fn clock, void *userdata);

/* A timestamp for a local or send event: greater than every earlier one of
 * this clock.  Never fails.  (Past HLC_PHYSICAL_MAX, year 10889, it stops
 * growing.) */
uint64_t hlc_now(struct hlc *c);

/*
 * A receive event carrying the remote timestamp: merges it into the clock and
 * writes to *ret_now a timestamp greater than both remote and every earlier
 * one of this clock.  Returns 0, or -ERANGE if remote is more than
 * HLC_MAX_DRIFT_MS ahead of the physical clock (the clock is then unchanged),
 * -EINVAL if c is NULL.  ret_now may be NULL.
 */
int hlc_update(struct hlc *c, uint64_t remote, uint64_t *ret_now);

/* Merges a timestamp this node issued itself (read back from the store after
 * a restart, say) without the drift guard: the next hlc_now() is above it. */
void hlc_witness(struct hlc *c, uint64_t t);

/* Writes "YYYY-MM-DDTHH:MM:SS.mmmZ+L" (UTC) into buf; returns buf. */
char *hlc_format(uint64_t t, char buf[static HLC_STRING_MAX]);

/*
 * Parses what hlc_format() writes ("+L" may be left out, meaning +0), or the
 * decimal integer form (1 to 20 digits).  Strict: no spaces, a real calendar
 * date from 1970 on, hours 00-23, minutes and seconds 00-59, exactly three
 * digits of milliseconds, logical 0-65535.  Returns 0 and *ret, -EINVAL for
 * bad syntax, -ERANGE for a value that does not fit.
 */
int hlc_parse(const char *s, uint64_t *ret);
