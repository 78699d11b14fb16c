/* SPDX-License-Identifier: MIT */
/*
 * Unit test harness: TEST(name) { ... } registers a test; each test runs in a
 * forked child with a timeout (HALO_TEST_TIMEOUT seconds, default 20), so a
 * crash or a hang fails that test only.  Link with test/unit/tests.c, which
 * provides main(): `test-foo [NAME-SUBSTRING]`.
 */
#pragma once

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

typedef void (*test_fn)(void);
void test_register(const char *name, test_fn fn);

#define TEST(name)                                                        \
    static void test_##name(void);                                        \
    __attribute__((constructor)) static void test_register_##name(void) { \
        test_register(#name, test_##name);                                \
    }                                                                     \
    static void test_##name(void)

#define CHECK_FAIL(...)                                 \
    do {                                                \
        fprintf(stderr, "%s:%d: ", __FILE__, __LINE__); \
        fprintf(stderr, __VA_ARGS__);                   \
        fputc('\n', stderr);                            \
        exit(1);                                        \
    } while (0)

#define ASSERT(expr)                                   \
    do {                                               \
        if (!(expr))                                   \
            CHECK_FAIL("assertion failed: %s", #expr); \
    } while (0)

#define ASSERT_EQ(a, b)                                           \
    do {                                                          \
        long long _a = (long long)(a), _b = (long long)(b);       \
        if (_a != _b)                                             \
            CHECK_FAIL("%s == %s: %lld != %lld", #a, #b, _a, _b); \
    } while (0)

#define ASSERT_OK(expr)                                                        \
    do {                                                                       \
        long long _r = (long long)(expr);                                      \
        if (_r < 0)                                                            \
            CHECK_FAIL("%s failed: %lld (%s)", #expr, _r, strerror((int)-_r)); \
    } while (0)

#define ASSERT_STREQ(a, b)                                                                            \
    do {                                                                                              \
        const char *_a = (a), *_b = (b);                                                              \
        if (!_a || !_b || strcmp(_a, _b) != 0)                                                        \
            CHECK_FAIL("%s == %s: \"%s\" != \"%s\"", #a, #b, _a ? _a : "(null)", _b ? _b : "(null)"); \
    } while (0)
