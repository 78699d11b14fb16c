/* SPDX-License-Identifier: MIT */
/* Tests for the event service's filters: interest rules on the object-state notes (events-interest.h). */
#include <errno.h>
#include <string.h>

#include "events-interest.h"
#include "tests.h"

#define RULE(k, v) {.base = PROTOBUF_C_MESSAGE_INIT(&halo__link__interest_rule__descriptor), .kind = (k), .value = (v)}

static struct interest *parse(Halo__Link__InterestRule *rules, size_t n, int *ret_r, const char **error) {
    Halo__Link__InterestRule *v[8];
    for (size_t i = 0; i < n; i++)
        v[i] = &rules[i];
    struct interest *in = NULL;
    *ret_r = interest_new(v, n, &in, error);
    return in;
}

TEST(interest_rules_match) {
    const struct config_pool p1 = {0}, p2 = {0};
    Halo__Link__InterestRule rules[] = {
        RULE(HALO__LINK__INTEREST_RULE__KIND__GROUP, ""),
        RULE(HALO__LINK__INTEREST_RULE__KIND__OBJECT, "node:n1"),
        RULE(HALO__LINK__INTEREST_RULE__KIND__PREFIX, "process:ios-"),
    };
    int r;
    const char *error = NULL;
    struct interest *in = parse(rules, 3, &r, &error);
    ASSERT(r == 0 && in);
    struct interest_owner me = {.group = 3, .pool = &p1}, peer = {.group = 3}, other = {.group = 4, .pool = &p1},
                          none = {0};
    ASSERT(interest_match(in, "process:x", &peer, &me));        /* its group's */
    ASSERT(interest_match(in, "device:x:d", &peer, &me));       /* likewise, whatever the name */
    ASSERT(!interest_match(in, "process:y", &other, &me));      /* another group, same pool: no POOL rule */
    ASSERT(interest_match(in, "node:n1", &none, &me));          /* exact */
    ASSERT(!interest_match(in, "node:n10", &none, &me));        /* exact is exact */
    ASSERT(interest_match(in, "process:ios-3", &other, &me));   /* prefix */
    ASSERT(!interest_match(in, "process:ios", &other, &me));    /* shorter than the prefix */
    ASSERT(!interest_match(in, "device:ios-3:d", &other, &me)); /* the prefix is of the whole object */
    struct interest_owner lonely = {0};
    ASSERT(!interest_match(in, "process:z", &none, &lonely)); /* group 0 is nobody's */
    interest_free(in);

    Halo__Link__InterestRule pool[] = {RULE(HALO__LINK__INTEREST_RULE__KIND__POOL, "")};
    in = parse(pool, 1, &r, &error);
    ASSERT(r == 0);
    ASSERT(interest_match(in, "process:y", &other, &me));
    struct interest_owner in_p2 = {.group = 3, .pool = &p2}, no_pool = {.group = 3};
    ASSERT(!interest_match(in, "process:y", &in_p2, &me));
    ASSERT(!interest_match(in, "process:y", &none, &no_pool)); /* in no pool: nothing */
    interest_free(in);

    /* No filter, an ALL rule: everything. */
    ASSERT(interest_match(NULL, "anything:at-all", &none, &me));
    Halo__Link__InterestRule all[] = {RULE(HALO__LINK__INTEREST_RULE__KIND__ALL, ""),
                                      RULE(HALO__LINK__INTEREST_RULE__KIND__OBJECT, "node:n1")};
    in = parse(all, 2, &r, &error);
    ASSERT(r == 0 && in->all && interest_match(in, "node:n2", &none, &me));
    interest_free(in);
}

TEST(interest_rules_refused) {
    static const struct {
        int kind;
        const char *value;
    } bad[] = {
        {HALO__LINK__INTEREST_RULE__KIND__OBJECT, "nocolon"},  {HALO__LINK__INTEREST_RULE__KIND__OBJECT, ""},
        {HALO__LINK__INTEREST_RULE__KIND__OBJECT, "node:a b"}, {HALO__LINK__INTEREST_RULE__KIND__OBJECT, "node:a/b"},
        {HALO__LINK__INTEREST_RULE__KIND__PREFIX, ""},         {HALO__LINK__INTEREST_RULE__KIND__PREFIX, "x\n"},
        {HALO__LINK__INTEREST_RULE__KIND__GROUP, "g"},         {HALO__LINK__INTEREST_RULE__KIND__ALL, "x"},
        {99, ""},
    };
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        Halo__Link__InterestRule rule[] = {RULE((Halo__Link__InterestRule__Kind)bad[i].kind, (char *)bad[i].value)};
        int r;
        const char *error = NULL;
        struct interest *in = parse(rule, 1, &r, &error);
        ASSERT(r == -EINVAL && !in && error && *error);
    }
    /* A prefix needs no colon ("process" is the start of every process). */
    Halo__Link__InterestRule ok[] = {RULE(HALO__LINK__INTEREST_RULE__KIND__PREFIX, "proc")};
    int r;
    const char *error = NULL;
    struct interest *in = parse(ok, 1, &r, &error);
    ASSERT(r == 0);
    interest_free(in);
}
