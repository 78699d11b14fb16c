/* SPDX-License-Identifier: MIT */
/* Tests for the hybrid logical clock: monotonicity, receive rules, drift guard, overflow, text forms. */
#include <errno.h>
#include <inttypes.h>

#include "hlc.h"
#include "macro.h"
#include "tests.h"
#include "time-util.h"

/* A physical clock the test sets by hand. */
static uint64_t fake_ms(void *userdata) {
    return *(uint64_t *)userdata;
}

/* 2026-11-22T10:11:12.345Z */
#define T0 UINT64_C(1795342272345)

TEST(hlc_packing_orders_like_the_pair) {
    ASSERT(hlc_make(T0, 0) < hlc_make(T0, 1));
    ASSERT(hlc_make(T0, HLC_LOGICAL_MAX) < hlc_make(T0 + 1, 0));
    ASSERT_EQ(hlc_physical(hlc_make(T0, 7)), T0);
    ASSERT_EQ(hlc_logical(hlc_make(T0, 7)), 7);
}

TEST(hlc_now_follows_the_physical_clock) {
    uint64_t pt = T0;
    struct hlc c;
    hlc_init(&c, fake_ms, &pt);
    ASSERT_EQ(hlc_now(&c), hlc_make(T0, 0));
    ASSERT_EQ(hlc_now(&c), hlc_make(T0, 1)); /* same millisecond */
    pt = T0 + 5;
    ASSERT_EQ(hlc_now(&c), hlc_make(T0 + 5, 0)); /* the counter resets when time moves on */
}

TEST(hlc_now_is_monotonic_when_the_clock_goes_backwards) {
    uint64_t pt = T0;
    struct hlc c;
    hlc_init(&c, fake_ms, &pt);
    uint64_t prev = hlc_now(&c);
    pt = T0 - 10000; /* NTP stepped the clock back 10 s */
    for (int i = 0; i < 1000; i++) {
        uint64_t t = hlc_now(&c);
        ASSERT(t > prev);
        ASSERT_EQ(hlc_physical(t), T0); /* held at the greatest time seen */
        prev = t;
    }
    pt = T0 + 1;
    ASSERT_EQ(hlc_now(&c), hlc_make(T0 + 1, 0));
}

TEST(hlc_default_clock_is_realtime) {
    struct hlc c;
    hlc_init(&c, NULL, NULL);
    uint64_t before = now_realtime_usec() / 1000;
    uint64_t t = hlc_now(&c);
    uint64_t after = now_realtime_usec() / 1000;
    ASSERT(hlc_physical(t) >= before && hlc_physical(t) <= after);
    ASSERT(hlc_now(&c) > t);
}

TEST(hlc_update_remote_ahead) {
    uint64_t pt = T0;
    struct hlc c;
    hlc_init(&c, fake_ms, &pt);
    (void)hlc_now(&c);
    uint64_t remote = hlc_make(T0 + 2000, 4), t;
    ASSERT_OK(hlc_update(&c, remote, &t));
    ASSERT_EQ(t, hlc_make(T0 + 2000, 5)); /* l = l_m, c = c_m + 1 */
    /* The clock stays ahead of the lagging physical clock. */
    ASSERT_EQ(hlc_now(&c), hlc_make(T0 + 2000, 6));
}

TEST(hlc_update_remote_behind) {
    uint64_t pt = T0;
    struct hlc c;
    hlc_init(&c, fake_ms, &pt);
    ASSERT_EQ(hlc_now(&c), hlc_make(T0, 0));
    ASSERT_EQ(hlc_now(&c), hlc_make(T0, 1));
    uint64_t t;
    ASSERT_OK(hlc_update(&c, hlc_make(T0 - 500, 9), &t));
    ASSERT_EQ(t, hlc_make(T0, 2)); /* l = l', c = c' + 1 */
    /* Physical time ahead of both: the counter starts over. */
    pt = T0 + 3;
    ASSERT_OK(hlc_update(&c, hlc_make(T0 + 1, 9), &t));
    ASSERT_EQ(t, hlc_make(T0 + 3, 0));
}

TEST(hlc_update_remote_equal) {
    uint64_t pt = T0;
    struct hlc c;
    hlc_init(&c, fake_ms, &pt);
    (void)hlc_now(&c);
    (void)hlc_now(&c); /* last = (T0, 1) */
    uint64_t t;
    /* Same physical part, larger counter: max(c', c_m) + 1. */
    ASSERT_OK(hlc_update(&c, hlc_make(T0, 7), &t));
    ASSERT_EQ(t, hlc_make(T0, 8));
    /* The very timestamp we hold: still strictly greater. */
    ASSERT_OK(hlc_update(&c, t, &t));
    ASSERT_EQ(t, hlc_make(T0, 9));
    ASSERT_OK(hlc_update(&c, hlc_make(T0, 3), NULL));
    ASSERT_EQ(hlc_now(&c), hlc_make(T0, 11));
}

TEST(hlc_update_rejects_drift) {
    uint64_t pt = T0;
    struct hlc c;
    hlc_init(&c, fake_ms, &pt);
    uint64_t t0 = hlc_now(&c), t = 42;
    ASSERT_EQ(hlc_update(&c, hlc_make(T0 + HLC_MAX_DRIFT_MS + 1, 0), &t), -ERANGE);
    ASSERT_EQ(t, 42);               /* not written */
    ASSERT_EQ(hlc_now(&c), t0 + 1); /* and not merged */
    ASSERT_EQ(hlc_update(&c, UINT64_MAX, NULL), -ERANGE);
    /* Exactly at the limit is accepted. */
    ASSERT_OK(hlc_update(&c, hlc_make(T0 + HLC_MAX_DRIFT_MS, 0), &t));
    ASSERT_EQ(t, hlc_make(T0 + HLC_MAX_DRIFT_MS, 1));
    ASSERT_EQ(hlc_update(NULL, 0, NULL), -EINVAL);
}

TEST(hlc_logical_overflow_advances_physical) {
    uint64_t pt = T0;
    struct hlc c;
    hlc_init(&c, fake_ms, &pt);
    uint64_t prev = hlc_now(&c);
    for (uint64_t i = 0; i < HLC_LOGICAL_MAX; i++)
        prev = hlc_now(&c);
    ASSERT_EQ(prev, hlc_make(T0, HLC_LOGICAL_MAX));
    /* No waiting: the next one borrows the next millisecond. */
    uint64_t t = hlc_now(&c);
    ASSERT_EQ(t, hlc_make(T0 + 1, 0));
    ASSERT(t > prev);
    /* Same through a receive of a full counter. */
    uint64_t u;
    ASSERT_OK(hlc_update(&c, hlc_make(T0 + 7, HLC_LOGICAL_MAX), &u));
    ASSERT_EQ(u, hlc_make(T0 + 8, 0));
}

TEST(hlc_witness_moves_past_own_timestamps) {
    uint64_t pt = T0;
    struct hlc c;
    hlc_init(&c, fake_ms, &pt);
    /* Even far ahead: our own timestamp from before a restart with a clock step. */
    hlc_witness(&c, hlc_make(T0 + 10 * HLC_MAX_DRIFT_MS, 3));
    ASSERT_EQ(hlc_now(&c), hlc_make(T0 + 10 * HLC_MAX_DRIFT_MS, 4));
    hlc_witness(&c, hlc_make(T0, 0)); /* older: no effect */
    ASSERT_EQ(hlc_now(&c), hlc_make(T0 + 10 * HLC_MAX_DRIFT_MS, 5));
}

TEST(hlc_format_and_parse_round_trip) {
    char buf[HLC_STRING_MAX];
    uint64_t t;
    ASSERT_STREQ(hlc_format(hlc_make(T0, 3), buf), "2026-11-22T10:11:12.345Z+3");
    ASSERT_OK(hlc_parse("2026-11-22T10:11:12.345Z+3", &t));
    ASSERT_EQ(t, hlc_make(T0, 3));
    ASSERT_STREQ(hlc_format(0, buf), "1970-01-01T00:00:00.000Z+0");
    ASSERT_STREQ(hlc_format(UINT64_MAX, buf), "10889-08-02T05:31:50.655Z+65535");
    ASSERT_OK(hlc_parse(buf, &t));
    ASSERT_EQ(t, UINT64_MAX);
    ASSERT_OK(hlc_parse("2024-02-29T23:59:59.999Z", &t)); /* "+L" left out; a leap day */
    ASSERT_EQ(hlc_logical(t), 0);
    ASSERT_STREQ(hlc_format(t, buf), "2024-02-29T23:59:59.999Z+0");

    /* A spread of values, each one exactly back. */
    uint64_t x = 0x9e3779b97f4a7c15u;
    for (int i = 0; i < 10000; i++) {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        uint64_t v = hlc_make(x % (HLC_PHYSICAL_MAX + 1), x >> 50);
        ASSERT_OK(hlc_parse(hlc_format(v, buf), &t));
        ASSERT_EQ(t, v);
    }

    /* The decimal form that JSON carries. */
    char dec[HLC_DECIMAL_MAX];
    snprintf(dec, sizeof(dec), "%" PRIu64, hlc_make(T0, 3));
    ASSERT_OK(hlc_parse(dec, &t));
    ASSERT_EQ(t, hlc_make(T0, 3));
    ASSERT_OK(hlc_parse("18446744073709551615", &t));
    ASSERT_EQ(t, UINT64_MAX);
    ASSERT_OK(hlc_parse("0", &t));
    ASSERT_EQ(t, 0);
}

TEST(hlc_parse_errors) {
    static const struct {
        const char *s;
        int error;
    } bad[] = {
        {"", -EINVAL},
        {" 2026-11-22T10:11:12.345Z+3", -EINVAL},
        {"2026-11-22T10:11:12.345Z+3 ", -EINVAL},
        {"2026-11-22 10:11:12.345Z+3", -EINVAL},
        {"2026-11-22T10:11:12.345+3", -EINVAL},   /* no Z */
        {"2026-11-22T10:11:12Z+3", -EINVAL},      /* no milliseconds */
        {"2026-11-22T10:11:12.34Z", -EINVAL},     /* two digits */
        {"2026-11-22T10:11:12.3456Z", -EINVAL},   /* four digits */
        {"2026-11-22T10:11:12.345Z+", -EINVAL},   /* no counter */
        {"2026-11-22T10:11:12.345Z+-1", -EINVAL}, /* signed */
        {"2026-11-22T10:11:12.345Z+123456", -EINVAL},
        {"2026-11-22T10:11:12.345Z+65536", -ERANGE},
        {"2026-13-22T10:11:12.345Z", -EINVAL},
        {"2026-00-22T10:11:12.345Z", -EINVAL},
        {"2026-11-31T10:11:12.345Z", -EINVAL},
        {"2025-02-29T10:11:12.345Z", -EINVAL}, /* not a leap year */
        {"2100-02-29T10:11:12.345Z", -EINVAL}, /* nor this one */
        {"2026-11-22T24:00:00.000Z", -EINVAL},
        {"2026-11-22T10:60:12.345Z", -EINVAL},
        {"2026-11-22T10:11:60.345Z", -EINVAL}, /* no leap seconds */
        {"1969-12-31T23:59:59.999Z", -ERANGE},
        {"09999-01-01T00:00:00.000Z", -EINVAL}, /* 5 digits only past 9999 */
        {"10889-08-02T05:31:50.656Z", -ERANGE}, /* past 48 bits of milliseconds */
        {"99999-12-31T23:59:59.999Z", -ERANGE},
        {"226-11-22T10:11:12.345Z", -EINVAL},
        {"2026-1-22T10:11:12.345Z", -EINVAL},
        {"2026-11-22T10:11:12.345z", -EINVAL},
        {"18446744073709551616", -ERANGE}, /* UINT64_MAX + 1 */
        {"000000000000000000000", -ERANGE},
        {"-1", -EINVAL},
        {"+1", -EINVAL},
        {"12a", -EINVAL},
        {"0x10", -EINVAL},
    };
    for (size_t i = 0; i < ELEMENTSOF(bad); i++) {
        uint64_t t = 77;
        int r = hlc_parse(bad[i].s, &t);
        if (r != bad[i].error)
            CHECK_FAIL("hlc_parse(\"%s\") = %d, expected %d", bad[i].s, r, bad[i].error);
        ASSERT_EQ(t, 77); /* not written on failure */
    }
    uint64_t t;
    ASSERT_EQ(hlc_parse(NULL, &t), -EINVAL);
    ASSERT_EQ(hlc_parse("0", NULL), -EINVAL);
}
