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
    ASSERT_EQ(key_names_split("svc/db/n1/", 10, ctx, name, node, comp), -EINVAL);
    ASSERT_EQ(key_names_split("svc/db/n1/su/", 13, ctx, name, node, comp), -EINVAL);
    /* A component of a unit with a components map: "SU/name". */
    ASSERT_EQ(key_names_split("svc/db/n1/su-a/web", 18, ctx, name, node, comp), 0);
    ASSERT(streq(node, "n1") && streq(comp, "su-a/web"));
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

TEST(name_lookup_answer_fits_one_packet) {
    static uint8_t ref[HALO_NAME_REF_MAX];
    struct name_reg *regs[HALO_NAME_LOOKUP_MAX + 8];
    size_t n = sizeof(regs) / sizeof(regs[0]);
    memset(ref, 'r', sizeof(ref));
    for (size_t i = 0; i < n; i++)
        regs[i] = reg_new("k", ref, 8, 1);
    ASSERT_EQ(name_regs_that_fit(regs, n), (size_t)HALO_NAME_LOOKUP_MAX); /* small ones: the most asked for */
    ASSERT_EQ(name_regs_that_fit(regs, 0), (size_t)0);
    /* The largest registrations the limits allow: fewer, and their answer encodes within a packet. */
    char value[HALO_NAME_ATTR_VALUE_MAX + 1], attr[HALO_NAME_ATTR_NAME_MAX + 1];
    memset(value, 'v', sizeof(value) - 1);
    value[sizeof(value) - 1] = '\0';
    for (size_t i = 0; i < n; i++) {
        name_reg_free(regs[i]);
        regs[i] = reg_new("k", ref, sizeof(ref), 1);
        json_array_clear(regs[i]->attrs);
        for (int a = 0; a < HALO_NAME_ATTRS_MAX; a++) {
            memset(attr, 'a' + a, sizeof(attr) - 1);
            attr[sizeof(attr) - 1] = '\0';
            json_array_append_new(regs[i]->attrs, json_pack("[s, s]", attr, value));
        }
        memset(regs[i]->context, 'c', HALO_NAME_MAX);
        memset(regs[i]->name, 'n', HALO_NAME_MAX);
    }
    size_t k = name_regs_that_fit(regs, n);
    ASSERT(k >= 1 && k < HALO_NAME_LOOKUP_MAX);
    Halo__Link__NameEntry e[HALO_NAME_LOOKUP_MAX], *pe[HALO_NAME_LOOKUP_MAX];
    Halo__Link__Attr a[HALO_NAME_LOOKUP_MAX][HALO_NAME_ATTRS_MAX], *pa[HALO_NAME_LOOKUP_MAX][HALO_NAME_ATTRS_MAX];
    for (size_t i = 0; i < k; i++) {
        name_reg_entry(regs[i], &e[i], a[i], pa[i]);
        pe[i] = &e[i];
    }
    Halo__Link__Reply rep = HALO__LINK__REPLY__INIT;
    LinkMsg m = HALO__LINK__MSG__INIT;
    rep.seq = 1;
    rep.names = pe;
    rep.n_names = k;
    m.body_case = HALO__LINK__MSG__BODY_REPLY;
    m.reply = &rep;
    static uint8_t buf[LINK_MSG_MAX];
    int len = link_encode(&m, buf, sizeof(buf));
    ASSERT(len > 0);
    LinkMsg *back = NULL;
    ASSERT_EQ(link_decode(buf, (size_t)len, &back), 0); /* and valid as libhalo checks it */
    ASSERT_EQ(back->reply->n_names, k);
    link_msg_free(back);
    for (size_t i = 0; i < n; i++)
        name_reg_free(regs[i]);
}

TEST(name_messages_are_bounded_on_the_link) {
    Halo__Link__NameEntry e = HALO__LINK__NAME_ENTRY__INIT;
    Halo__Link__NameRegister reg = HALO__LINK__NAME_REGISTER__INIT;
    LinkMsg m = HALO__LINK__MSG__INIT;
    static char text[LINK_NAME_TEXT_MAX + 2];
    e.context = (char *)"svc";
    e.name = (char *)"db";
    reg.entry = &e;
    m.body_case = HALO__LINK__MSG__BODY_NAME_REGISTER;
    m.name_register = &reg;
    ASSERT_EQ(link_validate(&m), 0);
    /* Past the service's limits but within the packet's: halod answers (name_entry_check()). */
    memset(text, 'x', LINK_NAME_TEXT_MAX);
    text[LINK_NAME_TEXT_MAX] = '\0';
    e.name = text;
    ASSERT_EQ(link_validate(&m), 0);
    ASSERT_EQ(name_entry_check(&e), -ENAMETOOLONG);
    /* Past the packet's: malformed, the client is cut off. */
    text[LINK_NAME_TEXT_MAX] = 'x';
    text[LINK_NAME_TEXT_MAX + 1] = '\0';
    ASSERT_EQ(link_validate(&m), -EBADMSG);
    e.name = (char *)"a\nb";
    ASSERT_EQ(link_validate(&m), -EBADMSG);
    e.name = (char *)"";
    ASSERT_EQ(link_validate(&m), -EBADMSG);
    e.name = (char *)"db";
    e.ref.len = LINK_NAME_REF_MAX + 1;
    ASSERT_EQ(link_validate(&m), -EBADMSG);
    e.ref.len = 0;
    reg.entry = NULL;
    ASSERT_EQ(link_validate(&m), -EBADMSG);

    Halo__Link__NameDeregister d = HALO__LINK__NAME_DEREGISTER__INIT;
    d.context = (char *)"";
    d.name = (char *)"";
    d.comp = (char *)"";
    d.all = true;
    m.body_case = HALO__LINK__MSG__BODY_NAME_DEREGISTER;
    m.name_deregister = &d;
    ASSERT_EQ(link_validate(&m), 0);
    d.context = (char *)"svc"; /* all names no name */
    ASSERT_EQ(link_validate(&m), -EBADMSG);
    d.all = false;
    ASSERT_EQ(link_validate(&m), -EBADMSG);
    d.name = (char *)"db";
    ASSERT_EQ(link_validate(&m), 0);

    Halo__Link__NameTrack t = HALO__LINK__NAME_TRACK__INIT;
    t.context = (char *)"svc";
    t.name = (char *)"db";
    m.body_case = HALO__LINK__MSG__BODY_NAME_TRACK;
    m.name_track = &t;
    ASSERT_EQ(link_validate(&m), -EBADMSG); /* id 0 */
    t.id = 1;
    ASSERT_EQ(link_validate(&m), 0);

    Halo__Link__NameNote note = HALO__LINK__NAME_NOTE__INIT;
    e.name = (char *)"db";
    reg.entry = &e;
    note.id = 1;
    note.change = HALO__LINK__NAME_NOTE__CHANGE__REMOVED;
    note.reason = HALO__LINK__NAME_NOTE__REASON__NODE_LEFT;
    note.entry = &e;
    m.body_case = HALO__LINK__MSG__BODY_NAME_NOTE;
    m.name_note = &note;
    ASSERT_EQ(link_validate(&m), 0);
    note.reason = (Halo__Link__NameNote__Reason)5;
    ASSERT_EQ(link_validate(&m), -EBADMSG);
}
