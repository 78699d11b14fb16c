/* SPDX-License-Identifier: MIT */
/* Tests for the name service's local logic (src/halod/svc/name-value.c, keys.c's names/ keys). */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "keys.h"
#include "macro.h"
#include "name-internal.h"
#include "tests.h"

#define PREFIX "/halo/c/"

static store_kv kv_of(const char *key, const char *value) {
    return (store_kv){.key = (char *)key,
                      .key_len = strlen(key),
                      .value = (char *)value,
                      .value_len = value ? strlen(value) : 0,
                      .create_revision = 7,
                      .lease = 42};
}

static struct name_reg *reg_new(const char *key, const uint8_t *ref, size_t ref_len, unsigned priority) {
    struct name_reg *r = calloc(1, sizeof(*r));
    r->key = strdup(key);
    r->ref = malloc(ref_len + 1);
    memcpy(r->ref, ref, ref_len);
    r->ref_len = ref_len;
    r->attrs = json_pack("[[s, s], [s, s]]", "port", "4242", "zone", "a b");
    r->priority = priority;
    r->pid = 1234;
    r->starttime = 987654321ULL;
    return r;
}

TEST(name_keys) {
    char buf[STORE_KEY_MAX], ctx[STORE_KEY_MAX], name[STORE_KEY_MAX], node[STORE_KEY_MAX], comp[STORE_KEY_MAX];
    const char *rest;
    size_t len;
    ASSERT(key_names_of(buf, PREFIX, "svc", "db") > 0);
    ASSERT(streq(buf, PREFIX "names/svc/db/"));
    int n = key_names_reg(buf, PREFIX, "svc", "db", "n1", "comp-a");
    ASSERT(n > 0 && streq(buf, PREFIX "names/svc/db/n1/comp-a"));
    ASSERT_EQ(key_parse(PREFIX, buf, (size_t)n, &rest, &len), KEY_NAMES);
    ASSERT_EQ(key_names_split(rest, len, ctx, name, node, comp), 0);
    ASSERT(streq(ctx, "svc") && streq(name, "db") && streq(node, "n1") && streq(comp, "comp-a"));
    /* Four parts, none empty, no fifth. */
    ASSERT_EQ(key_names_split("svc/db/n1", 9, ctx, name, node, comp), -EINVAL);
    ASSERT_EQ(key_names_split("svc//n1/c", 9, ctx, name, node, comp), -EINVAL);
    ASSERT_EQ(key_names_split("svc/db/n1/c/d", 13, ctx, name, node, comp), -EINVAL);
    ASSERT_EQ(key_names_split("svc/db/n1/", 10, ctx, name, node, comp), -EINVAL);
}

TEST(name_value_round_trip) {
    static const uint8_t ref[] = {'a', 0, 0xff, 'z'}; /* bytes, a NUL among them */
    struct name_reg *r = reg_new(PREFIX "names/svc/db/n1/comp-a", ref, sizeof(ref), 20), *p = NULL;
    char *v = name_reg_value(r, 0);
    ASSERT(v);
    store_kv kv = kv_of(r->key, v);
    ASSERT_EQ(name_reg_parse(PREFIX, &kv, &p), 0);
    ASSERT(streq(p->context, "svc") && streq(p->name, "db") && streq(p->node, "n1") && streq(p->comp, "comp-a"));
    ASSERT(p->ref_len == sizeof(ref) && memcmp(p->ref, ref, sizeof(ref)) == 0);
    ASSERT(p->priority == 20 && p->pid == 1234 && p->starttime == 987654321ULL && p->gone == 0);
    ASSERT(p->create_revision == 7 && p->lease == 42);
    ASSERT(json_equal(p->attrs, r->attrs));
    name_reg_free(p);
    free(v);

    /* A removal's value says why: every node's trackers learn it. */
    static const int reasons[] = {HALO__LINK__NAME_NOTE__REASON__COMPONENT_FAILED,
                                  HALO__LINK__NAME_NOTE__REASON__DEREGISTERED};
    for (size_t i = 0; i < 2; i++) {
        v = name_reg_value(r, reasons[i]);
        kv = kv_of(r->key, v);
        ASSERT_EQ(name_reg_parse(PREFIX, &kv, &p), 0);
        ASSERT_EQ(p->gone, reasons[i]);
        name_reg_free(p);
        free(v);
    }
    name_reg_free(r);
}

TEST(name_value_malformed) {
    struct name_reg *p = NULL;
    static const char *const bad[] = {
        "not json",
        "{}",
        "{\"ref\":\"6\",\"attrs\":[],\"priority\":1}",                /* odd hex */
        "{\"ref\":\"zz\",\"attrs\":[],\"priority\":1}",               /* not hex */
        "{\"ref\":\"61\",\"attrs\":{},\"priority\":1}",               /* attrs not a list */
        "{\"ref\":\"61\",\"attrs\":[[\"a\"]],\"priority\":1}",        /* not a pair */
        "{\"ref\":\"61\",\"attrs\":[],\"priority\":-1}",              /* negative */
        "{\"ref\":\"61\",\"attrs\":[],\"priority\":4294967296}",      /* past 32 bits */
        "{\"ref\":\"61\",\"attrs\":[],\"priority\":1,\"pid\":\"x\"}", /* wrong type */
    };
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        store_kv kv = kv_of(PREFIX "names/svc/db/n1/c", bad[i]);
        ASSERT_EQ(name_reg_parse(PREFIX, &kv, &p), -EINVAL);
    }
    /* Keys outside names/, or with a context that is no name. */
    store_kv kv = kv_of(PREFIX "nodes/n1", "{\"ref\":\"\",\"attrs\":[],\"priority\":1}");
    ASSERT_EQ(name_reg_parse(PREFIX, &kv, &p), -EINVAL);
    kv = kv_of(PREFIX "names/s v/db/n1/c", "{\"ref\":\"\",\"attrs\":[],\"priority\":1}");
    ASSERT_EQ(name_reg_parse(PREFIX, &kv, &p), -EINVAL);
    /* A delete's key alone parses (no value). */
    kv = kv_of(PREFIX "names/svc/db/n1/c", NULL);
    ASSERT_EQ(name_reg_parse(PREFIX, &kv, &p), 0);
    name_reg_free(p);
}

TEST(name_order_is_priority_then_age) {
    struct name_reg *a = reg_new("a", (const uint8_t *)"a", 1, 10), *b = reg_new("b", (const uint8_t *)"b", 1, 20),
                    *c = reg_new("c", (const uint8_t *)"c", 1, 20);
    a->create_revision = 1;
    b->create_revision = 5;
    c->create_revision = 3;
    struct name_reg *regs[] = {a, b, c};
    qsort(regs, 3, sizeof(regs[0]), name_reg_compare);
    ASSERT(regs[0] == c && regs[1] == b && regs[2] == a);
    name_reg_free(a);
    name_reg_free(b);
    name_reg_free(c);
}

TEST(name_entry_limits) {
    Halo__Link__NameEntry e = HALO__LINK__NAME_ENTRY__INIT;
    Halo__Link__Attr a = HALO__LINK__ATTR__INIT, *pa[HALO_NAME_ATTRS_MAX + 1];
    char big[HALO_NAME_ATTR_VALUE_MAX + 2];
    char long_name[HALO_NAME_MAX + 2];
    e.context = (char *)"svc";
    e.name = (char *)"db";
    ASSERT_EQ(name_entry_check(&e), 0);
    memset(long_name, 'x', sizeof(long_name) - 1);
    long_name[sizeof(long_name) - 1] = '\0';
    e.name = long_name;
    ASSERT_EQ(name_entry_check(&e), -ENAMETOOLONG);
    e.name = (char *)"a/b";
    ASSERT_EQ(name_entry_check(&e), -EINVAL);
    e.name = (char *)"db";
    e.ref.len = HALO_NAME_REF_MAX + 1;
    ASSERT_EQ(name_entry_check(&e), -E2BIG);
    e.ref.len = HALO_NAME_REF_MAX;
    ASSERT_EQ(name_entry_check(&e), 0);
    a.name = (char *)"k";
    a.value = (char *)"v";
    for (size_t i = 0; i <= HALO_NAME_ATTRS_MAX; i++)
        pa[i] = &a;
    e.attrs = pa;
    e.n_attrs = HALO_NAME_ATTRS_MAX;
    ASSERT_EQ(name_entry_check(&e), 0);
    e.n_attrs = HALO_NAME_ATTRS_MAX + 1;
    ASSERT_EQ(name_entry_check(&e), -E2BIG);
    e.n_attrs = 1;
    memset(big, 'v', sizeof(big) - 1);
    big[sizeof(big) - 1] = '\0';
    a.value = big;
    ASSERT_EQ(name_entry_check(&e), -E2BIG);
    a.value = (char *)"line\nbreak";
    ASSERT_EQ(name_entry_check(&e), -EINVAL);
    a.value = (char *)"v";
    a.name = (char *)"no spaces";
    ASSERT_EQ(name_entry_check(&e), -EINVAL);
}
