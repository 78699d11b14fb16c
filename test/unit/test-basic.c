/* SPDX-License-Identifier: MIT */
/* Tests for the basic helpers: list.h, string-table.h, parse-util.h. */
#include <errno.h>
#include <stdint.h>

#include "list.h"
#include "macro.h"
#include "parse-util.h"
#include "string-table.h"
#include "tests.h"

struct item {
    int v;
    LIST_FIELDS(struct item, a);
    LIST_FIELDS(struct item, b);
};

typedef LIST_HEAD(struct item) item_list;

static void check_order(item_list *h, const int *want, size_t n) {
    struct item *i;
    size_t k = 0;
    LIST_FOREACH (a, i, h) {
        ASSERT(k < n);
        ASSERT_EQ(i->v, want[k]);
        k++;
    }
    ASSERT_EQ(k, n);
    /* Backwards too: the prev links agree. */
    k = n;
    for (i = h->last; i; i = i->a_prev)
        ASSERT_EQ(i->v, want[--k]);
    ASSERT_EQ(k, 0);
}

TEST(list_fifo_and_removal) {
    struct item it[5];
    item_list h = {0};
    ASSERT(LIST_IS_EMPTY(&h));
    ASSERT(LIST_POP(a, &h) == NULL);
    for (int i = 0; i < 5; i++) {
        it[i] = (struct item){.v = i};
        LIST_APPEND(a, &h, &it[i]);
    }
    check_order(&h, (int[]){0, 1, 2, 3, 4}, 5);
    LIST_REMOVE(a, &h, &it[2]); /* middle */
    ASSERT(!it[2].a_next && !it[2].a_prev);
    LIST_REMOVE(a, &h, &it[4]); /* last */
    LIST_PREPEND(a, &h, &it[4]);
    check_order(&h, (int[]){4, 0, 1, 3}, 4);
    ASSERT_EQ(LIST_POP(a, &h)->v, 4);
    ASSERT_EQ(LIST_POP(a, &h)->v, 0);
    check_order(&h, (int[]){1, 3}, 2);
    struct item *i, *n;
    LIST_FOREACH_SAFE (a, i, n, &h)
        LIST_REMOVE(a, &h, i);
    ASSERT(LIST_IS_EMPTY(&h));
    ASSERT(h.last == NULL);
}

TEST(list_item_on_two_lists) {
    struct item it[3];
    item_list ha = {0}, hb = {0};
    for (int i = 0; i < 3; i++) {
        it[i] = (struct item){.v = i};
        LIST_APPEND(a, &ha, &it[i]);
        LIST_PREPEND(b, &hb, &it[i]);
    }
    LIST_REMOVE(b, &hb, &it[1]);
    check_order(&ha, (int[]){0, 1, 2}, 3); /* untouched */
    ASSERT(hb.first == &it[2] && hb.last == &it[0] && it[2].b_next == &it[0]);
}

enum color { COLOR_RED, COLOR_GREEN, COLOR_HOLE, COLOR_BLUE, _COLOR_MAX };
static const char *const color_table[_COLOR_MAX] = {
    [COLOR_RED] = "red",
    [COLOR_GREEN] = "green",
    [COLOR_BLUE] = "blue",
};
DEFINE_PRIVATE_STRING_TABLE_LOOKUP(color, enum color);

TEST(string_table) {
    ASSERT_STREQ(color_to_string(COLOR_RED), "red");
    ASSERT_STREQ(color_to_string(COLOR_BLUE), "blue");
    ASSERT(color_to_string(COLOR_HOLE) == NULL);
    ASSERT(color_to_string(_COLOR_MAX) == NULL);
    ASSERT(color_to_string((enum color) - 1) == NULL);
    ASSERT_EQ(color_from_string("green"), COLOR_GREEN);
    ASSERT_EQ(color_from_string("blue"), COLOR_BLUE);
    ASSERT_EQ(color_from_string("Blue"), -EINVAL);
    ASSERT_EQ(color_from_string(""), -EINVAL);
    ASSERT_EQ(color_from_string(NULL), -EINVAL);
}

TEST(parse_u64_strict) {
    uint64_t v = 7;
    ASSERT_OK(parse_u64("0", &v));
    ASSERT_EQ(v, 0);
    ASSERT_OK(parse_u64("18446744073709551615", &v));
    ASSERT(v == UINT64_MAX);
    ASSERT_OK(parse_u64("00000000000000000042", &v));
    ASSERT_EQ(v, 42);
    v = 7;
    ASSERT_EQ(parse_u64("18446744073709551616", &v), -ERANGE);
    ASSERT_EQ(parse_u64("123456789012345678901", &v), -ERANGE);
    static const char *const bad[] = {"", "-1", "+1", " 1", "1 ", "0x10", "1e3", "12a", "١"};
    for (size_t i = 0; i < ELEMENTSOF(bad); i++)
        if (parse_u64(bad[i], &v) != -EINVAL)
            CHECK_FAIL("accepted '%s'", bad[i]);
    ASSERT_EQ(v, 7); /* never written on failure */
    ASSERT_OK(parse_u64_n("12345", 3, &v));
    ASSERT_EQ(v, 123);
    ASSERT_EQ(parse_u64(NULL, &v), -EINVAL);
}

TEST(parse_i64_and_range) {
    int64_t v;
    ASSERT_OK(parse_i64("-9223372036854775808", &v));
    ASSERT(v == INT64_MIN);
    ASSERT_OK(parse_i64("9223372036854775807", &v));
    ASSERT(v == INT64_MAX);
    ASSERT_EQ(parse_i64("9223372036854775808", &v), -ERANGE);
    ASSERT_EQ(parse_i64("-9223372036854775809", &v), -ERANGE);
    ASSERT_OK(parse_i64("-3", &v));
    ASSERT_EQ(v, -3);
    ASSERT_EQ(parse_i64("-", &v), -EINVAL);
    ASSERT_EQ(parse_i64("--3", &v), -EINVAL);
    uint64_t u;
    ASSERT_OK(parse_u64_range("3600", 1, 3600, &u));
    ASSERT_EQ(parse_u64_range("0", 1, 3600, &u), -ERANGE);
    ASSERT_EQ(parse_u64_range("3601", 1, 3600, &u), -ERANGE);
}

TEST(parse_host_port) {
    char host[64];
    uint16_t port = 0;
    ASSERT_OK(parse_host_port("127.0.0.1:4570", host, sizeof(host), &port));
    ASSERT_STREQ(host, "127.0.0.1");
    ASSERT_EQ(port, 4570);
    ASSERT_OK(parse_host_port("[::1]:0", host, sizeof(host), &port));
    ASSERT_STREQ(host, "::1");
    ASSERT_EQ(port, 0);
    ASSERT_OK(parse_host_port("localhost:65535", host, sizeof(host), &port));
    ASSERT_EQ(port, 65535);
    static const char *const bad[] = {"",       ":1",      "1.2.3.4", "1.2.3.4:",  "1.2.3.4:65536", "1.2.3.4:-1",
                                      "::1:80", "[::1:80", "[]:80",   "[::1]x:80", "h:8 0",         "h:0x50"};
    for (size_t i = 0; i < ELEMENTSOF(bad); i++)
        if (parse_host_port(bad[i], host, sizeof(host), &port) != -EINVAL)
            CHECK_FAIL("accepted '%s'", bad[i]);
    char small[4];
    ASSERT_EQ(parse_host_port("1.2.3.4:5", small, sizeof(small), &port), -EINVAL);
    ASSERT_OK(parse_host_port("abc:5", small, sizeof(small), &port));
}
