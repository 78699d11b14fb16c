/* SPDX-License-Identifier: MIT */
/* Tests for the event service's filters: interest rules on the object-state notes (events-interest.h);
 * the coordinator's deletion of a gone node's events (evt-sweep.c). */
#include <errno.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "events-interest.h"
#include "evt.h"
#include "hlc.h"
#include "keys.h"
#include "macro.h"
#include "store.h"
#include "tests.h"

#define RULE(k, v) \
    { .base = PROTOBUF_C_MESSAGE_INIT(&halo__link__interest_rule__descriptor), .kind = (k), .value = (v) }

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
        {HALO__LINK__INTEREST_RULE__KIND__OBJECT, "nocolon"},
        {HALO__LINK__INTEREST_RULE__KIND__OBJECT, ""},
        {HALO__LINK__INTEREST_RULE__KIND__OBJECT, "node:a b"},
        {HALO__LINK__INTEREST_RULE__KIND__OBJECT, "node:a/b"},
        {HALO__LINK__INTEREST_RULE__KIND__PREFIX, ""},
        {HALO__LINK__INTEREST_RULE__KIND__PREFIX, "x\n"},
        {HALO__LINK__INTEREST_RULE__KIND__GROUP, "g"},
        {HALO__LINK__INTEREST_RULE__KIND__ALL, "x"},
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

#define FILTER(t, v, m)                                                                    \
    {                                                                                      \
        .base = PROTOBUF_C_MESSAGE_INIT(&halo__link__evt_filter__descriptor), .type = (t), \
        .value = {.len = sizeof(v) - 1, .data = (uint8_t *)(v)}, .mask = {                 \
            .len = sizeof(m) - 1,                                                          \
            .data = (uint8_t *)(m)                                                         \
        }                                                                                  \
    }
#define FIELD(s) \
    { .len = sizeof(s) - 1, .data = (uint8_t *)(s) }

static int parse_filters(Halo__Link__EvtFilter *in, size_t n, struct evt_filter *out) {
    Halo__Link__EvtFilter *v[LINK_EVT_FIELDS_MAX + 1];
    for (size_t i = 0; i < n; i++)
        v[i] = &in[i];
    const char *error = NULL;
    int r = evt_filters_parse(v, n, out, &error);
    if (r < 0)
        ASSERT(error && *error);
    return r;
}

TEST(evt_filters_match) {
    Halo__Link__EvtFilter in[] = {
        FILTER(HALO__LINK__EVT_FILTER__TYPE__EXACT, "alarm", ""),
        FILTER(HALO__LINK__EVT_FILTER__TYPE__PREFIX, "disk", ""),
        FILTER(HALO__LINK__EVT_FILTER__TYPE__SUFFIX, "-a", ""),
        FILTER(HALO__LINK__EVT_FILTER__TYPE__PASS_ALL, "", ""),
        FILTER(HALO__LINK__EVT_FILTER__TYPE__MASK, "\x01\x80", "\x01\xf0"),
    };
    struct evt_filter f[5];
    ASSERT(parse_filters(in, 5, f) == 0);
    ProtobufCBinaryData ok[] = {FIELD("alarm"), FIELD("disk7"), FIELD("n1-a"), FIELD("anything"), FIELD("\x03\x8f!")};
    ASSERT(evt_filters_match(f, 5, ok, 5));
    ProtobufCBinaryData more[] = {FIELD("alarm"), FIELD("disk"),     FIELD("-a"),
                                  FIELD(""),      FIELD("\x01\x80"), FIELD("extra")};
    ASSERT(evt_filters_match(f, 5, more, 6)); /* fields past the filters pass */
    ProtobufCBinaryData bad0[] = {FIELD("alarms"), FIELD("disk7"), FIELD("n1-a"), FIELD("x"), FIELD("\x03\x8f")};
    ASSERT(!evt_filters_match(f, 5, bad0, 5)); /* exact is exact */
    ProtobufCBinaryData bad1[] = {FIELD("alarm"), FIELD("dis"), FIELD("n1-a"), FIELD("x"), FIELD("\x03\x8f")};
    ASSERT(!evt_filters_match(f, 5, bad1, 5)); /* shorter than the prefix */
    ProtobufCBinaryData bad2[] = {FIELD("alarm"), FIELD("disk7"), FIELD("n1-b"), FIELD("x"), FIELD("\x03\x8f")};
    ASSERT(!evt_filters_match(f, 5, bad2, 5)); /* suffix */
    ProtobufCBinaryData bad4[] = {FIELD("alarm"), FIELD("disk7"), FIELD("n1-a"), FIELD("x"), FIELD("\x02\x8f")};
    ASSERT(!evt_filters_match(f, 5, bad4, 5)); /* the mask's bit 0 differs */
    ProtobufCBinaryData bad5[] = {FIELD("alarm"), FIELD("disk7"), FIELD("n1-a"), FIELD("x"), FIELD("\x01\x70")};
    ASSERT(!evt_filters_match(f, 5, bad5, 5)); /* the high nibble differs */
    ProtobufCBinaryData short4[] = {FIELD("alarm"), FIELD("disk7"), FIELD("n1-a"), FIELD("x"), FIELD("\x01")};
    ASSERT(!evt_filters_match(f, 5, short4, 5)); /* shorter than the mask */
    ASSERT(!evt_filters_match(f, 5, ok, 3));     /* a missing field is empty: the mask fails on it */
    ASSERT(evt_filters_match(f, 4, ok, 3));      /* ... and pass-all passes it */
    ASSERT(evt_filters_match(f, 0, NULL, 0));    /* no filter: everything */
    /* An empty exact matches only an empty (or missing) field. */
    Halo__Link__EvtFilter empty[] = {FILTER(HALO__LINK__EVT_FILTER__TYPE__EXACT, "", "")};
    ASSERT(parse_filters(empty, 1, f) == 0);
    ASSERT(evt_filters_match(f, 1, NULL, 0));
    ASSERT(!evt_filters_match(f, 1, ok, 1));
}

TEST(evt_filters_refused) {
    struct evt_filter f[LINK_EVT_FIELDS_MAX + 1];
    Halo__Link__EvtFilter bad[][1] = {
        {FILTER(HALO__LINK__EVT_FILTER__TYPE__PASS_ALL, "x", "")}, /* a value on pass-all */
        {FILTER(HALO__LINK__EVT_FILTER__TYPE__MASK, "ab", "a")},   /* mask shorter than the value */
        {FILTER(HALO__LINK__EVT_FILTER__TYPE__MASK, "", "")},      /* an empty mask */
        {FILTER(HALO__LINK__EVT_FILTER__TYPE__PREFIX, "a", "b")},  /* a mask on another type */
        {FILTER((Halo__Link__EvtFilter__Type)9, "a", "")},         /* unknown type */
    };
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
        ASSERT(parse_filters(bad[i], 1, f) == -EINVAL);
    Halo__Link__EvtFilter many[LINK_EVT_FIELDS_MAX + 1];
    for (size_t i = 0; i < LINK_EVT_FIELDS_MAX + 1; i++)
        many[i] = (Halo__Link__EvtFilter)FILTER(HALO__LINK__EVT_FILTER__TYPE__PASS_ALL, "", "");
    ASSERT(parse_filters(many, LINK_EVT_FIELDS_MAX + 1, f) == -EINVAL);
    ASSERT(parse_filters(many, LINK_EVT_FIELDS_MAX, f) == 0);
}

/* ---- the events of nodes that left (evt-sweep.c) ---- */

#define PREFIX "/halo/c/"

struct call {
    int calls, error;
    size_t n;
    char keys[8][STORE_KEY_MAX];
};

static void on_call(store *s, int error, const store_result *r, void *userdata) {
    struct call *c = userdata;
    c->calls++;
    c->error = error;
    for (size_t i = 0; r && i < r->n_kvs && i < ELEMENTSOF(c->keys); i++)
        snprintf(c->keys[i], sizeof(c->keys[i]), "%s", r->kvs[i].key);
    c->n = r ? r->n_kvs : 0;
}

static void call_wait(struct call *c) {
    for (int i = 0; !c->calls && i < 100000; i++)
        uv_run(uv_default_loop(), UV_RUN_NOWAIT);
    ASSERT(c->calls == 1 && c->error >= 0);
}

static uint64_t hlc_ago(uint64_t ms) {
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return hlc_make((uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000 - ms, 0);
}

/* An event of node on channel "ch", as its halod would have written it. */
static void put_event(store *st, const char *node, uint64_t hlc, uint32_t retention_ms) {
    char key[STORE_KEY_MAX], publisher[64];
    uint8_t buf[256];
    snprintf(publisher, sizeof(publisher), "%s/42", node);
    Halo__Link__EvtEvent ev = HALO__LINK__EVT_EVENT__INIT;
    ev.channel = "ch";
    ev.publisher = publisher;
    ev.hlc = hlc;
    ev.retention_ms = retention_ms;
    size_t len = halo__link__evt_event__pack(&ev, buf);
    ASSERT_OK(key_evt_entry(key, PREFIX, "ch", node, hlc));
    struct call c = {0};
    ASSERT_OK(store_put(st, key, (const char *)buf, len, 0, on_call, &c));
    call_wait(&c);
}

static void keys_of(store *st, struct call *c) {
    *c = (struct call){0};
    ASSERT_OK(store_range(st, PREFIX "evt/", on_call, c));
    call_wait(c);
}

/* Runs the loop until the store holds n keys of evt/ at most (for ms at most); c: them. */
static void keys_until(store *st, struct call *c, size_t n, int ms) {
    for (int i = 0; i < ms; i++) {
        keys_of(st, c);
        if (c->n <= n)
            break;
        uv_run(uv_default_loop(), UV_RUN_NOWAIT);
        usleep(1000);
    }
    ASSERT_EQ(c->n, n);
}

static bool gone_is_gone(void *userdata, const char *node) {
    return streq(node, "gone"); /* "back" is live, as the coordinator sees it */
}

TEST(evt_sweep_deletes_a_gone_nodes_events_once_their_retention_is_over) {
    store *st;
    ASSERT_OK(store_memory_new(uv_default_loop(), &st));
    put_event(st, "gone", hlc_ago(10000), 0);   /* over (kept 2 s at least): deleted */
    put_event(st, "gone", hlc_ago(9000), 5000); /* over: deleted */
    put_event(st, "gone", hlc_ago(0), 60000);   /* kept for its retention */
    put_event(st, "back", hlc_ago(10000), 0);   /* its node is live: its own halod deletes it */
    put_event(st, "gone", hlc_ago(1000), 0);    /* within the 2 s the others have to read it */
    struct evt *e = NULL;
    struct evt_params p = {
        .loop = uv_default_loop(), .store = st, .prefix = PREFIX, .node = "n1", .takes_over = gone_is_gone};
    ASSERT_OK(evt_new(&p, &e));
    struct call c;
    keys_of(st, &c);
    ASSERT_EQ(c.n, 5); /* nothing before this node is told to sweep */
    evt_sweep_scan(e);
    keys_until(st, &c, 3, 1000);
    char back[STORE_KEY_MAX];
    ASSERT_OK(key_evt_entry(back, PREFIX, "ch", "back", 0));
    ASSERT(strncmp(c.keys[0], back, strlen(back) - 20) == 0); /* evt/ch/back/..., first in key order */
    ASSERT(strncmp(c.keys[1], PREFIX "evt/ch/gone/", strlen(PREFIX "evt/ch/gone/")) == 0);
    ASSERT(strncmp(c.keys[2], PREFIX "evt/ch/gone/", strlen(PREFIX "evt/ch/gone/")) == 0);
    /* The one within its 2 s goes in its time; the long one stays. */
    keys_until(st, &c, 2, 3000);
    evt_sweep_stop(e);
    evt_free(e);
    store_free(st);
    uv_run(uv_default_loop(), UV_RUN_DEFAULT);
}
