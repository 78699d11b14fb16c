/* SPDX-License-Identifier: MIT */
/* The recovery model and the coordinator's HA state rules (src/halod/recovery.c). */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "config.h"
#include "description.h"
#include "pooled.h"
#include "recovery-coord.h"
#include "recovery-model.h"
#include "tests.h"

static struct config *config;
static struct recovery_model *model;

static void setup(void) {
    config = description_load(POOLED);
    ASSERT_OK(rm_new(config, &model));
}

static struct queue_event event(const char *object, const char *state, const char *node, int64_t epoch) {
    struct queue_event ev;
    int st = queue_ha_state_from_string(state);
    ASSERT(st >= 0);
    ASSERT_OK(queue_event_init(&ev, object, (enum queue_ha_state)st));
    snprintf(ev.node, sizeof(ev.node), "%s", node);
    ev.epoch = epoch;
    return ev;
}

/* rm_decide() for object going from `from` ("" for none) to `to`, reported by node with epoch. */
static int decide(const char *object, const char *from, const char *to, const char *node, int64_t ev_epoch,
                  int64_t epoch) {
    struct queue_event ev = event(object, to, node, ev_epoch);
    int current = from[0] ? queue_ha_state_from_string(from) : -ENOENT;
    const char *why = NULL;
    int r = rm_decide(model, &ev, current, epoch, &why);
    ASSERT(r == 0 || r == 1);
    ASSERT(r == 1 ? why == NULL : why != NULL && why[0] != 0);
    return r;
}

TEST(objects_and_owners) {
    setup();
    const struct rm_process *a = rm_find(model, "process:a");
    ASSERT(a);
    ASSERT_STREQ(a->node, "n1");
    ASSERT_STREQ(a->pool->name, "p1");
    ASSERT(rm_owner(model, "service:a:dtm") == a);
    ASSERT(rm_owner(model, "device:a:sdb") == a);
    ASSERT(rm_owner(model, "device:b:sda") == NULL); /* b has no devices */
    ASSERT(rm_owner(model, "service:a:nope") == NULL);
    /* "su/comp" components are "su:comp" in object names. */
    const struct rm_process *dx = rm_find(model, "process:d:x");
    ASSERT(dx && dx->pool == NULL);
    ASSERT(rm_owner(model, "service:d:y:ios") == rm_find(model, "process:d:y"));
    ASSERT(rm_owner(model, "service:d:x:ios") == NULL); /* x has no services */
    ASSERT(rm_known(model, "node:n2"));
    ASSERT(!rm_known(model, "node:n9"));
    ASSERT(rm_known(model, "device:a:sda"));
    ASSERT(!rm_known(model, "process:zz"));
}

TEST(concerned_are_the_pool) {
    setup();
    const struct rm_process *out[8];
    ASSERT_EQ(rm_concerned(model, "process:b", out, 8), 3);
    ASSERT_STREQ(out[0]->name, "a");
    ASSERT_STREQ(out[2]->name, "c");
    ASSERT_EQ(rm_concerned(model, "device:a:sda", out, 8), 3);
    ASSERT_EQ(rm_concerned(model, "service:c:ios", out, 8), 3);
    ASSERT_EQ(rm_concerned(model, "process:d:x", out, 8), 0); /* no pool */
    ASSERT_EQ(rm_concerned(model, "process:d:y", out, 8), 1); /* a pool of one */
    ASSERT_EQ(rm_concerned(model, "node:n1", out, 8), 2);     /* a and d/y; d/x is in no pool */
    ASSERT_STREQ(out[0]->name, "a");
    ASSERT_STREQ(out[1]->name, "d/y");
    ASSERT_EQ(rm_concerned(model, "node:n3", out, 1), 1);
    ASSERT_EQ(rm_concerned(model, "process:a", out, 1), 3); /* counts past max */
}

TEST(failure_expands_below) {
    setup();
    struct queue_event out[16];
    struct queue_event ev = event("process:a", "FAILED", "n2", QUEUE_EPOCH_NONE);
    ev.hlc = 12345;
    ASSERT_EQ(rm_expand(model, &ev, out, 16), 2);
    char o[QUEUE_OBJECT_MAX];
    ASSERT_OK(queue_event_object(&out[0], o));
    ASSERT_STREQ(o, "service:a:ios");
    ASSERT_EQ(out[0].state, QUEUE_HA_FAILED);
    ASSERT_STREQ(out[0].node, "n2");
    ASSERT_EQ(out[0].hlc, 12345);
    ASSERT_STREQ(out[0].reason, "process:a is FAILED");
    ASSERT_OK(queue_event_object(&out[1], o));
    ASSERT_STREQ(o, "service:a:dtm");

    ev = event("process:a", "ONLINE", "n1", 0);
    ASSERT_EQ(rm_expand(model, &ev, out, 16), 2);
    ASSERT_EQ(out[1].state, QUEUE_HA_ONLINE);
    ev = event("process:a", "TRANSIENT", "n1", 0);
    ASSERT_EQ(rm_expand(model, &ev, out, 16), 0);
    ev = event("device:a:sda", "FAILED", "n1", QUEUE_EPOCH_NONE);
    ASSERT_EQ(rm_expand(model, &ev, out, 16), 0);

    /* A node: its processes (a, d/x, d/y) and their services; not its devices. */
    ev = event("node:n1", "FAILED", "n3", QUEUE_EPOCH_NONE);
    ASSERT_EQ(rm_expand(model, &ev, NULL, 0), 3 + 2 + 2);
    ASSERT_EQ(rm_expand(model, &ev, out, 16), 7);
    const char *want[] = {"process:a",   "service:a:ios",   "service:a:dtm",  "process:d:x",
                          "process:d:y", "service:d:y:ios", "service:d:y:dtm"};
    for (size_t i = 0; i < 7; i++) {
        ASSERT_OK(queue_event_object(&out[i], o));
        ASSERT_STREQ(o, want[i]);
        ASSERT_EQ(out[i].state, QUEUE_HA_FAILED);
        ASSERT_STREQ(out[i].reason, "node:n1 is FAILED");
    }
    ev = event("node:n1", "ONLINE", "n1", QUEUE_EPOCH_NONE);
    ASSERT_EQ(rm_expand(model, &ev, out, 16), 0);
}

TEST(pool_process_transitions) {
    setup();
    const int64_t E = 3, NONE = QUEUE_EPOCH_NONE;
    /* First report. */
    ASSERT_EQ(decide("process:a", "", "ONLINE", "n2", NONE, NONE), 1);
    ASSERT_EQ(decide("process:a", "", "FAILED", "n2", NONE, NONE), 1);
    ASSERT_EQ(decide("process:a", "", "TRANSIENT", "n1", NONE, NONE), 0);
    ASSERT_EQ(decide("process:a", "", "RECOVERING", "n1", 0, NONE), 0);
    /* Failures come from anywhere. */
    ASSERT_EQ(decide("process:a", "ONLINE", "FAILED", "n3", NONE, E), 1);
    ASSERT_EQ(decide("process:a", "TRANSIENT", "FAILED", "n2", NONE, E), 1);
    /* ... but a RECOVERING process stays RECOVERING. */
    ASSERT_EQ(decide("process:a", "RECOVERING", "FAILED", "n1", NONE, E), 0);
    /* The recovery steps, from its node with the current epoch. */
    ASSERT_EQ(decide("process:a", "FAILED", "TRANSIENT", "n1", E, E), 1);
    ASSERT_EQ(decide("process:a", "ONLINE", "TRANSIENT", "n1", E, E), 1);
    ASSERT_EQ(decide("process:a", "TRANSIENT", "RECOVERING", "n1", E, E), 1);
    ASSERT_EQ(decide("process:a", "RECOVERING", "ONLINE", "n1", E, E), 1);
    ASSERT_EQ(decide("process:a", "RECOVERING", "TRANSIENT", "n1", E, E), 1);
    /* Trigger once: the same steps from another node, without an epoch, or with an old one. */
    ASSERT_EQ(decide("process:a", "FAILED", "TRANSIENT", "n2", E, E), 0);
    ASSERT_EQ(decide("process:a", "TRANSIENT", "RECOVERING", "n1", NONE, E), 0);
    ASSERT_EQ(decide("process:a", "RECOVERING", "ONLINE", "n1", E - 1, E), 0);
    ASSERT_EQ(decide("process:a", "RECOVERING", "ONLINE", "n3", E, E), 0);
    /* Steps out of order. */
    ASSERT_EQ(decide("process:a", "FAILED", "ONLINE", "n1", E, E), 0);
    ASSERT_EQ(decide("process:a", "FAILED", "RECOVERING", "n1", E, E), 0);
    ASSERT_EQ(decide("process:a", "TRANSIENT", "ONLINE", "n1", E, E), 0);
    ASSERT_EQ(decide("process:a", "ONLINE", "RECOVERING", "n1", E, E), 0);
    /* An external monitor's ONLINE does not end a failure of a pool process. */
    ASSERT_EQ(decide("process:a", "FAILED", "ONLINE", "n1", NONE, E), 0);
    /* Not process states. */
    ASSERT_EQ(decide("process:a", "FAILED", "REPAIR", "n1", E, E), 0);
    ASSERT_EQ(decide("process:a", "ONLINE", "REBALANCE", "n1", E, E), 0);
    ASSERT_EQ(decide("process:a", "ONLINE", "OFFLINE", "n1", NONE, E), 1);
}

/* rm_decide() for a node's event carrying lease, its published state carrying latest. */
static int decide_node(const char *from, const char *to, int64_t lease, int64_t latest) {
    struct queue_event ev = event("node:n1", to, "n2", QUEUE_EPOCH_NONE);
    ev.lease = lease;
    const char *why = NULL;
    int r = rm_decide(model, &ev, queue_ha_state_from_string(from), latest, &why);
    ASSERT(r == 1 ? why == NULL : why != NULL && why[0] != 0);
    return r;
}

TEST(late_reports_are_refused) {
    setup();
    const int64_t E = 3, NONE = QUEUE_EPOCH_NONE;
    /* A process's failure in an earlier epoch: it has recovered since. */
    ASSERT_EQ(decide("process:a", "ONLINE", "FAILED", "n1", E - 1, E), 0);
    ASSERT_EQ(decide("process:a", "ONLINE", "FAILED", "n3", 0, E), 0);
    ASSERT_EQ(decide("process:a", "TRANSIENT", "FAILED", "n1", E - 1, E), 0);
    /* In its current epoch (or a later one, or without one): taken. */
    ASSERT_EQ(decide("process:a", "ONLINE", "FAILED", "n1", E, E), 1);
    ASSERT_EQ(decide("process:a", "ONLINE", "FAILED", "n1", E + 1, E), 1);
    ASSERT_EQ(decide("process:a", "ONLINE", "FAILED", "n1", NONE, E), 1);
    ASSERT_EQ(decide("process:a", "ONLINE", "FAILED", "n1", 0, NONE), 1);
    /* A node's end for a lease it no longer holds: it joined again since. */
    ASSERT_EQ(decide_node("ONLINE", "FAILED", 100, 200), 0);
    ASSERT_EQ(decide_node("ONLINE", "FAILED", 200, 200), 1);
    /* Unknown on either side, or the node FAILED already: taken. */
    ASSERT_EQ(decide_node("ONLINE", "FAILED", 0, 200), 1);
    ASSERT_EQ(decide_node("ONLINE", "FAILED", 100, 0), 1);
    ASSERT_EQ(decide_node("FAILED", "FAILED", 100, 200), 1);
    /* A new incarnation is always ONLINE. */
    ASSERT_EQ(decide_node("ONLINE", "ONLINE", 300, 200), 1);
    ASSERT_EQ(decide_node("FAILED", "ONLINE", 300, 200), 1);
}

TEST(other_objects) {
    setup();
    const int64_t NONE = QUEUE_EPOCH_NONE;
    /* A process outside every pool takes any reported change but RECOVERING. */
    ASSERT_EQ(decide("process:d:x", "FAILED", "ONLINE", "n2", NONE, NONE), 1);
    ASSERT_EQ(decide("process:d:x", "ONLINE", "TRANSIENT", "n2", NONE, NONE), 1);
    ASSERT_EQ(decide("process:d:x", "TRANSIENT", "RECOVERING", "n1", 0, NONE), 0);
    /* Devices. */
    ASSERT_EQ(decide("device:a:sda", "", "ONLINE", "n1", NONE, NONE), 1);
    ASSERT_EQ(decide("device:a:sda", "ONLINE", "FAILED", "n1", NONE, NONE), 1);
    ASSERT_EQ(decide("device:a:sda", "FAILED", "REPAIR", "n1", NONE, NONE), 1);
    ASSERT_EQ(decide("device:a:sda", "REPAIR", "REPAIRED", "n1", NONE, NONE), 1);
    ASSERT_EQ(decide("device:a:sda", "REPAIRED", "REBALANCE", "n1", NONE, NONE), 1);
    ASSERT_EQ(decide("device:a:sda", "REBALANCE", "ONLINE", "n1", NONE, NONE), 1);
    ASSERT_EQ(decide("device:a:sda", "REPAIRED", "ONLINE", "n1", NONE, NONE), 1);
    ASSERT_EQ(decide("device:a:sda", "ONLINE", "TRANSIENT", "n1", NONE, NONE), 1);
    ASSERT_EQ(decide("device:a:sda", "TRANSIENT", "ONLINE", "n1", NONE, NONE), 1);
    ASSERT_EQ(decide("device:a:sda", "REPAIR", "FAILED", "n1", NONE, NONE), 1);
    ASSERT_EQ(decide("device:a:sda", "FAILED", "ONLINE", "n1", NONE, NONE), 0);
    ASSERT_EQ(decide("device:a:sda", "ONLINE", "REPAIR", "n1", NONE, NONE), 0);
    ASSERT_EQ(decide("device:a:sda", "REPAIR", "ONLINE", "n1", NONE, NONE), 0);
    ASSERT_EQ(decide("device:a:sda", "FAILED", "REBALANCE", "n1", NONE, NONE), 0);
    ASSERT_EQ(decide("device:a:sda", "ONLINE", "RECOVERING", "n1", 0, NONE), 0);
    ASSERT_EQ(decide("device:a:sda", "ONLINE", "OFFLINE", "n1", NONE, NONE), 0);
    /* Nodes and services. */
    ASSERT_EQ(decide("node:n1", "ONLINE", "FAILED", "n2", NONE, NONE), 1);
    ASSERT_EQ(decide("node:n1", "FAILED", "ONLINE", "n1", NONE, NONE), 1);
    ASSERT_EQ(decide("node:n1", "ONLINE", "TRANSIENT", "n1", NONE, NONE), 0);
    ASSERT_EQ(decide("node:n1", "ONLINE", "RECOVERING", "n1", 0, NONE), 0);
    ASSERT_EQ(decide("service:a:ios", "ONLINE", "FAILED", "n1", NONE, NONE), 1);
    ASSERT_EQ(decide("service:a:ios", "FAILED", "RECOVERING", "n1", 0, NONE), 0);
}

TEST(names_too_long_for_objects) {
    /* config_load() refuses them; rm_new() would too. */
    char su[200], svc[100], text[1024];
    memset(su, 'u', sizeof(su) - 1);
    su[sizeof(su) - 1] = 0;
    memset(svc, 's', sizeof(svc) - 1);
    svc[sizeof(svc) - 1] = 0;
    snprintf(text, sizeof(text),
             "service-groups:\n"
             "  g:\n"
             "    component: {command: sleep, services: [%s]}\n"
             "    service-units: {%s: {}, b: {}}\n"
             "    service-instances: {si: {csis: {c: {}}}}\n",
             svc, su);
    char *errors = NULL;
    struct config *c = NULL;
    ASSERT_EQ(description_load_errors(text, &c, &errors), -EINVAL);
    ASSERT(errors && strstr(errors, "would be longer than 255 characters"));
    free(errors);
}

/* ---- the coordinator's pruning of the broadcast queue ---- */

#define LIVE_NODES 70

static void on_store_done(store *s, int error, const store_result *r, void *userdata) {
    ASSERT_OK(error);
    *(bool *)userdata = true;
}

static void run_until_set(uv_loop_t *loop, const bool *flag) {
    while (!*flag)
        ASSERT(uv_run(loop, UV_RUN_ONCE) != 0 || *flag);
}

static void store_put_wait(uv_loop_t *loop, store *s, const char *key, const char *value) {
    bool done = false;
    ASSERT_OK(store_put(s, key, value, strlen(value), 0, on_store_done, &done));
    run_until_set(loop, &done);
}

struct bq_count {
    bool done;
    size_t below, above; /* entries bq/<seq> with seq <= 3, > 3 */
};

static void on_bq_range(store *s, int error, const store_result *r, void *userdata) {
    struct bq_count *c = userdata;
    ASSERT_OK(error);
    for (size_t i = 0; i < r->n_kvs; i++) {
        uint64_t seq = strtoull(r->kvs[i].key + strlen("/halo/t/bq/"), NULL, 10);
        *(seq <= 3 ? &c->below : &c->above) += 1;
    }
    c->done = true;
}

static struct bq_count bq_count(uv_loop_t *loop, store *s) {
    struct bq_count c = {0};
    ASSERT_OK(store_range(s, "/halo/t/bq/", on_bq_range, &c));
    run_until_set(loop, &c.done);
    return c;
}

static char live_names[LIVE_NODES][16];

static size_t seventy_live(void *userdata, const char **out, size_t max) {
    for (size_t i = 0; i < LIVE_NODES && i < max; i++)
        out[i] = live_names[i];
    return LIVE_NODES;
}

static void on_appended_one(struct queue *q, int error, size_t n, void *userdata) {
    ASSERT_OK(error);
    *(bool *)userdata = true;
}

static void on_tick(uv_timer_t *t) {
    *(bool *)t->data = true;
}

static void run_msec(uv_loop_t *loop, uint64_t msec) {
    bool done = false;
    uv_timer_t t;
    ASSERT_OK(uv_timer_init(loop, &t));
    t.data = &done;
    ASSERT_OK(uv_timer_start(&t, on_tick, msec, 0));
    run_until_set(loop, &done);
    uv_close((uv_handle_t *)&t, NULL);
    (void)uv_run(loop, UV_RUN_NOWAIT);
}

/* The coordinator prunes only what every live node has read: with 70 live
 * nodes, the last one's offset holds back the entries it has not read (the
 * first 64 nodes alone were once asked). */
TEST(prune_waits_for_every_live_node) {
    uv_loop_t loop;
    store *s;
    struct queue *q;
    struct recovery_coord *c;
    ASSERT_OK(uv_loop_init(&loop));
    ASSERT_OK(store_memory_new(&loop, &s));
    struct queue_params qp = {.loop = &loop, .store = s, .prefix = "/halo/t/", .node = "n0"};
    ASSERT_OK(queue_new(&qp, &q));
    for (int i = 0; i < LIVE_NODES; i++)
        snprintf(live_names[i], sizeof(live_names[i]), "n%d", i);
    struct recovery_coord_params cp = {
        .loop = &loop, .store = s, .prefix = "/halo/t/", .node = "n0", .queue = q, .live_nodes = seventy_live};
    ASSERT_OK(recovery_coord_new(&cp, &c));
    recovery_coord_set(c, true);

    /* Ten BQ entries, one event each. */
    for (int i = 0; i < 10; i++) {
        struct queue_event ev;
        ASSERT_OK(queue_event_init(&ev, "service:s", i % 2 ? QUEUE_HA_ONLINE : QUEUE_HA_FAILED));
        bool done = false;
        ASSERT_OK(eq_append(q, &ev, 1, on_appended_one, &done));
        run_until_set(&loop, &done);
        struct queue_stats st;
        do {
            (void)uv_run(&loop, UV_RUN_ONCE);
            queue_get_stats(q, &st);
        } while (st.last_seq < (uint64_t)i + 1);
    }
    /* Every node read them all but the last one, which read 3. */
    for (int i = 0; i < LIVE_NODES; i++) {
        char key[64];
        snprintf(key, sizeof(key), "/halo/t/bq-delivered/n%d", i);
        store_put_wait(&loop, s, key, i == LIVE_NODES - 1 ? "3" : "10");
    }
    struct queue_stats st;
    do {
        run_msec(&loop, 100);
        queue_get_stats(q, &st);
    } while (st.pruned < 3 || st.state_seq < 10);
    run_msec(&loop, 1200); /* one more round of pruning at least */
    struct bq_count n = bq_count(&loop, s);
    ASSERT_EQ(n.below, 0);
    ASSERT_EQ(n.above, 7);

    recovery_coord_set(c, false);
    c = recovery_coord_free(c);
    q = queue_free(q);
    s = store_free(s);
    for (int i = 0; i < 100 && uv_run(&loop, UV_RUN_NOWAIT); i++)
        ;
    ASSERT_OK(uv_loop_close(&loop));
}
