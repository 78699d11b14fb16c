/* SPDX-License-Identifier: MIT */
/* Tests for base64: RFC 4648 vectors, every byte value round trip, rejection of non-canonical input. */
#include <errno.h>

#include "base64.h"
#include "macro.h"
#include "tests.h"

static void check_pair(const char *plain, size_t n, const char *encoded) {
    char buf[BASE64_ENCODED_SIZE(64)];
    ASSERT(n <= 64);
    ASSERT_EQ(base64_encode(plain, n, buf), strlen(encoded));
    ASSERT_STREQ(buf, encoded);
    char *d;
    size_t dn;
    ASSERT_OK(base64_decode(encoded, strlen(encoded), &d, &dn));
    ASSERT_EQ(dn, n);
    ASSERT(memcmp(d, plain, n) == 0);
    ASSERT_EQ(d[dn], 0);
    free(d);
}

TEST(base64_rfc4648_vectors) {
    check_pair("", 0, "");
    check_pair("f", 1, "Zg==");
    check_pair("fo", 2, "Zm8=");
    check_pair("foo", 3, "Zm9v");
    check_pair("foob", 4, "Zm9vYg==");
    check_pair("fooba", 5, "Zm9vYmE=");
    check_pair("foobar", 6, "Zm9vYmFy");
    check_pair("\0\xff\xfe", 3, "AP/+");
    check_pair("app/\xff", 5, "YXBwL/8=");
}

TEST(base64_round_trip_all_bytes) {
    char in[256];
    for (size_t i = 0; i < sizeof(in); i++)
        in[i] = (char)i;
    for (size_t n = 0; n <= sizeof(in); n++) {
        char enc[BASE64_ENCODED_SIZE(256)];
        size_t en = base64_encode(in + (256 - n), n, enc);
        ASSERT_EQ(en, (n + 2) / 3 * 4);
        char *d;
        size_t dn;
        ASSERT_OK(base64_decode(enc, en, &d, &dn));
        ASSERT_EQ(dn, n);
        ASSERT(n == 0 || memcmp(d, in + (256 - n), n) == 0);
        free(d);
    }
}

TEST(base64_rejects_bad_input) {
    static const char *const bad[] = {
        "Z", "Zg=", "Zg", "Z===", "Zh==", "Zm9=", "Zm9v!A==", "Zg==Zg==", "Zm 9v", "=Zg="};
    for (size_t i = 0; i < ELEMENTSOF(bad); i++) {
        char *d = NULL;
        size_t dn = 0;
        if (base64_decode(bad[i], strlen(bad[i]), &d, &dn) != -EBADMSG)
            CHECK_FAIL("accepted '%s'", bad[i]);
        ASSERT(!d);
    }
}
