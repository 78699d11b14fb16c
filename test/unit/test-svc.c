/* SPDX-License-Identifier: MIT */
/* Tests for the services' shared helpers (src/halod/svc/svc.h). */
#include <string.h>

#include "svc.h"
#include "tests.h"

TEST(service_names) {
    ASSERT(svc_name_valid("seq-server", SVC_NAME_MAX));
    ASSERT(svc_name_valid("a.b:c@n1_x", SVC_NAME_MAX));
    ASSERT(!svc_name_valid("", SVC_NAME_MAX));
    ASSERT(!svc_name_valid(NULL, SVC_NAME_MAX));
    ASSERT(!svc_name_valid("a/b", SVC_NAME_MAX)); /* a store key's separator */
    ASSERT(!svc_name_valid("a b", SVC_NAME_MAX));
    ASSERT(!svc_name_valid("a\nb", SVC_NAME_MAX));
    ASSERT(!svc_name_valid("\xc3\xa9", SVC_NAME_MAX));
    ASSERT(svc_name_valid("abcd", 4));
    ASSERT(!svc_name_valid("abcde", 4));
    char long_name[SVC_NAME_MAX + 2];
    memset(long_name, 'x', sizeof(long_name) - 1);
    long_name[sizeof(long_name) - 1] = '\0';
    ASSERT(!svc_name_valid(long_name, SVC_NAME_MAX + 100)); /* max is capped at SVC_NAME_MAX */
    long_name[SVC_NAME_MAX] = '\0';
    ASSERT(svc_name_valid(long_name, SVC_NAME_MAX));
}
