/* SPDX-License-Identifier: MIT */
/*
 * Unit tests of cluster sync (src/halod/cluster/cluster-sync.c) on one node
 * of two, with the real membership (cluster.c), the real AMF and the memory
 * store; processes and HA links are fakes (fake-io.c).  The other node, n2,
 * is keys in the store, written as its halod would (docs/store.md).
 */
#include <errno.h>
#include <stdio.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "amf-internal.h"
#include "amf-persist.h"
#include "cluster-sync.h"
#include "cluster.h"
#include "fake-io.h"
#include "keys.h"
#include "macro.h"
#include "queue-report.h"
#include "queue.h"
#include "store-engine.h"
#include "store.h"
#include "tests.h"
#include "time-util.h"

/* One group: a on n1, then the units between (each "      NAME: {node: n2}\n"), then si. */
#define DESCRIPTION_WITH(units)                              \
    "cluster: t\n"                                           \
    "nodes:\n"                                               \
    "  n1: {}\n"                                             \
    "  n2: {}\n"                                             \
    "service-groups:\n"                                      \
    "  g:\n"                                                 \
    "    component:\n"                                       \
    "      command: /bin/true\n"                             \
    "      restart: {max: 3, window: 1m, delay: 10ms}\n"     \
    "    service-units:\n"                                   \
    "      a: {node: n1}\n" units "    service-instances:\n" \
    "      si:\n"                                            \
    "        csis:\n"                                        \
    "          csi: {}\n"
#define DESCRIPTION DESCRIPTION_WITH("      b: {node: n2}\n")

struct fixture {
    uv_loop_t loop;
    const char *description;        /* DESCRIPTION if NULL */
    void (*edit)(struct config *c); /* changes the description once loaded (past its checks), or NULL */
    int fences;                     /* times this node fenced itself */
    char path[64];
    char prefix[STORE_KEY_MAX];
    struct config *cfg;
    store *store;
    struct amf *amf;
    struct queue *queue;
    struct queue_reporter *reporter;
    struct cluster *cluster;
    struct cluster_sync *sync;
    bool started, loaded;
    bool n2_leads; /* n2 holds the leader key: this node is not the coordinator */
    int64_t ttl;   /* this node's lease TTL; 60 s if 0 */
    int64_t n2_lease;
    struct conn a;
};

/* ---- the store, driven to completion ---- */

static void on_done(store *s, int error, const store_result *r, void *userdata) {
    ASSERT_OK(error);
    *(bool *)userdata = true;
}

static void on_granted(store *s, int error, int64_t lease, int64_t ttl, void *userdata) {
    ASSERT_OK(error);
    *(int64_t *)userdata = lease;
}

static void run_until(struct fixture *f, const bool *done) {
    for (int i = 0; i < 100000 && !*done; i++)
        uv_run(&f->loop, UV_RUN_ONCE);
    ASSERT(*done);
}

/* Runs the loop for about msec (the membership's timers keep it busy). */
static void on_stop_timer(uv_timer_t *t) {
    *(bool *)t->data = true;
}
static void run_for(struct fixture *f, uint64_t msec) {
    bool done = false;
    uv_timer_t t;
    uv_timer_init(&f->loop, &t);
    t.data = &done;
    uv_timer_start(&t, on_stop_timer, msec, 0);
    run_until(f, &done);
    uv_close((uv_handle_t *)&t, NULL);
    uv_run(&f->loop, UV_RUN_NOWAIT);
}

static void put(struct fixture *f, enum key_dir dir, const char *a, const char *b, const char *value, int64_t lease) {
    char key[STORE_KEY_MAX];
    ASSERT(b ? key_pair(key, f->prefix, dir, a, b) >= 0 : key_name(key, f->prefix, dir, a) >= 0);
    bool done = false;
    ASSERT_OK(store_put(f->store, key, value, strlen(value), lease, on_done, &done));
    run_until(f, &done);
}

struct got {
    bool done;
    char value[512];
    int64_t rev; /* the key's mod revision */
};

static void on_got(store *s, int error, const store_result *r, void *userdata) {
    struct got *g = userdata;
    ASSERT_OK(error);
    if (r->n_kvs == 1) {
        snprintf(g->value, sizeof(g->value), "%.*s", (int)r->kvs[0].value_len, r->kvs[0].value);
        g->rev = r->kvs[0].mod_revision;
    }
    g->done = true;
}

/* The value of <dir>/<si>/<su>, or of <dir>/<si> with su NULL; "" if missing. */
static const char *pair(struct fixture *f, enum key_dir dir, const char *si, const char *su, struct got *g) {
    char key[STORE_KEY_MAX];
    ASSERT(su ? key_pair(key, f->prefix, dir, si, su) >= 0 : key_name(key, f->prefix, dir, si) >= 0);
    *g = (struct got){0};
    ASSERT_OK(store_get(f->store, key, on_got, g));
    run_until(f, &g->done);
    return g->value;
}

/* su of n2 holds si ACTIVE: the target of gen, and its confirmation. */
static void n2_holds_active(struct fixture *f, const char *si, const char *su, int gen) {
    char v[256];
    snprintf(v, sizeof(v),
             "{\"si\":\"%s\",\"su\":\"%s\",\"node\":\"n2\",\"state\":\"ACTIVE\",\"gen\":%d,\"lease\":%lld}", si, su,
             gen, (long long)f->n2_lease);
    put(f, KEY_TARGET, si, su, v, 0);
    put(f, KEY_CONFIRMED, si, su, v, 0);
}

/* ---- this node's halod, as the manager wires it ---- */

static void on_loaded(void *userdata, int error) {
    struct fixture *f = userdata;
    ASSERT_OK(error);
    f->loaded = true;
    amf_set_ready(f->amf);
}

static void on_joined(struct cluster *c, void *userdata) {
    struct fixture *f = userdata;
    cluster_sync_joined(f->sync);
    if (f->n2_leads && !f->started) {
        f->started = true;
        ASSERT_OK(cluster_sync_start(f->sync, on_loaded, f));
    }
}

/* The membership makes this node the coordinator before cluster sync has read
 * the cluster's keys: in halod the sync's read waits for the AMF's own
 * records, while the membership starts at once. */
static void on_coordinator(struct cluster *c, bool coordinator, void *userdata) {
    struct fixture *f = userdata;
    cluster_sync_coordinator(f->sync, coordinator);
    if (coordinator && !f->started) {
        f->started = true;
        ASSERT_OK(cluster_sync_start(f->sync, on_loaded, f));
    }
}

static void on_fence(struct cluster *c, void *userdata) {
    struct fixture *f = userdata;
    f->fences++;
    cluster_sync_fenced(f->sync);
}

static void on_renewed(struct cluster *c, uint64_t deadline_usec, void *userdata) {
}

static const struct cluster_handlers handlers = {
    .on_joined = on_joined, .on_coordinator = on_coordinator, .on_fence = on_fence, .on_renewed = on_renewed};

static void fixture_start(struct fixture *f) {
    char *errors = NULL;
    snprintf(f->path, sizeof(f->path), "/tmp/test-cluster-sync-%d.yaml", (int)getpid());
    FILE *fp = fopen(f->path, "w");
    ASSERT(fp);
    fputs(f->description ? f->description : DESCRIPTION, fp);
    fclose(fp);
    if (config_load(f->path, &f->cfg, &errors) < 0)
        CHECK_FAIL("the description does not load: %s", errors ? errors : "?");
    if (f->edit)
        f->edit(f->cfg);
    ASSERT_OK(uv_loop_init(&f->loop));
    ASSERT_OK(key_prefix(f->prefix, "t"));
    ASSERT_OK(store_memory_new(&f->loop, &f->store));

    /* n2 is up, its unit b in service and ACTIVE for si, decided by the
     * coordinator that was (n1's halod before it restarted). */
    ASSERT_OK(store_lease_grant(f->store, 60, on_granted, &f->n2_lease));
    while (!f->n2_lease)
        uv_run(&f->loop, UV_RUN_ONCE);
    char node[128];
    snprintf(node, sizeof(node), "{\"node\":\"n2\",\"pid\":4242,\"lease\":\"%lld\",\"ttl\":60}",
             (long long)f->n2_lease);
    put(f, KEY_NODES, "n2", NULL, node, f->n2_lease);
    put(f, KEY_SUSTATE, "b", NULL,
        "{\"su\":\"b\",\"node\":\"n2\",\"in_service\":true,\"failing\":false,\"fenced\":false}", f->n2_lease);
    n2_holds_active(f, "si", "b", 1);
    if (f->n2_leads) {
        char leader[STORE_KEY_MAX];
        ASSERT(key_leader(leader, f->prefix) >= 0);
        bool done = false;
        ASSERT_OK(store_put(f->store, leader, "{\"node\":\"n2\"}", 13, f->n2_lease, on_done, &done));
        run_until(f, &done);
    }

    struct amf_params ap = {.loop = &f->loop, .config = f->cfg, .node = "n1", .socket_path = "/x"};
    ASSERT_OK(amf_new(&ap, &f->amf));
    struct queue_params qp = {.loop = &f->loop, .store = f->store, .prefix = f->prefix, .node = "n1"};
    ASSERT_OK(queue_new(&qp, &f->queue));
    ASSERT_OK(queue_reporter_new(&f->loop, f->queue, "n1", &f->reporter));
    struct cluster_params cp = {.loop = &f->loop,
                                .store = f->store,
                                .prefix = f->prefix,
                                .node = "n1",
                                .ttl = f->ttl ? f->ttl : 60,
                                .handlers = &handlers,
                                .userdata = f};
    ASSERT_OK(cluster_new(&cp, &f->cluster));
    struct cluster_sync_params sp = {.store = f->store,
                                     .prefix = f->prefix,
                                     .node = "n1",
                                     .amf = f->amf,
                                     .cluster = f->cluster,
                                     .reporter = f->reporter};
    ASSERT_OK(cluster_sync_new(&sp, &f->sync));
}

static void fixture_stop(struct fixture *f) {
    cluster_close(f->cluster);
    f->sync = cluster_sync_free(f->sync);
    f->queue = queue_free(f->queue);
    f->reporter = queue_reporter_free(f->reporter);
    amf_close(f->amf);
    f->store = store_free(f->store);
    f->cluster = cluster_free(f->cluster);
    uv_run(&f->loop, UV_RUN_DEFAULT);
    f->amf = amf_free(f->amf);
    f->cfg = config_free(f->cfg);
    ASSERT_OK(uv_loop_close(&f->loop));
    fake_conn_done(&f->a);
    unlink(f->path);
}

/* ---- tests ---- */

/*
 * A coordinator that takes over before it has read the cluster's keys sees no
 * assignment anywhere: it would delete every target as left over and place
 * si's ACTIVE on its own unit while b still serves on n2 (two ACTIVEs).  It
 * must take over only once the read is in: b stays ACTIVE, a becomes STANDBY.
 */
TEST(cluster_sync_takes_over_only_after_its_first_read) {
    struct fixture f = {0};
    fixture_start(&f);
    ASSERT_OK(cluster_start(f.cluster));
    run_until(&f, &f.loaded);
    ASSERT(cluster_is_coordinator(f.cluster));
    run_for(&f, 50);

    struct got g;
    ASSERT(strstr(pair(&f, KEY_TARGET, "si", "b", &g), "\"state\":\"ACTIVE\""));
    ASSERT(strstr(pair(&f, KEY_CONFIRMED, "si", "b", &g), "\"state\":\"ACTIVE\""));
    struct si *si = amf_find_si(f.amf, "si");
    struct assignment *active = amf_si_find(si, HALO_HA_ACTIVE);
    ASSERT(active && active->su == amf_find_su(f.amf, "b"));

    /* This node's unit registers: it is told STANDBY, never ACTIVE. */
    struct comp *c = amf_find_comp(f.amf, "a");
    ASSERT(c && c->proc);
    f.a.pid = c->pid;
    amf_comp_register(f.amf, &f.a, 7, "a", NULL, false, false);
    run_for(&f, 50);
    LinkMsg *m;
    bool standby = false;
    while ((m = fake_conn_next(&f.a)))
        if (m->body_case == HALO__LINK__MSG__BODY_CSI_SET) {
            ASSERT(m->csi_set->ha_state != HALO_HA_ACTIVE);
            standby |= m->csi_set->ha_state == HALO_HA_STANDBY;
        }
    ASSERT(standby);
    ASSERT(strstr(pair(&f, KEY_TARGET, "si", "a", &g), "\"state\":\"STANDBY\""));
    ASSERT(strstr(pair(&f, KEY_TARGET, "si", "b", &g), "\"state\":\"ACTIVE\""));
    fixture_stop(&f);
}

/* What the fake connection of a's component was sent: the HA state of the
 * last CSI set, 0 if none. */
static halo_ha_state last_csi_set(struct fixture *f) {
    LinkMsg *m;
    halo_ha_state st = 0;
    while ((m = fake_conn_next(&f->a)))
        if (m->body_case == HALO__LINK__MSG__BODY_CSI_SET)
            st = (halo_ha_state)m->csi_set->ha_state;
    return st;
}

static void put_target_a(struct fixture *f, const char *state, int gen, int64_t lease) {
    char v[256];
    snprintf(v, sizeof(v), "{\"si\":\"si\",\"su\":\"a\",\"node\":\"n1\",\"state\":\"%s\",\"gen\":%d,\"lease\":%lld}",
             state, gen, (long long)lease);
    put(f, KEY_TARGET, "si", "a", v, 0);
}

/*
 * A target is carried out only by the incarnation of the unit it was written
 * for.  A node that lost its lease fenced what it held and rejoined with a new
 * one; the coordinator has promoted another unit since the old lease ended.
 * A target written for the old lease and delivered late (a watch stuck on a
 * stopped etcd member catches up) must not make the unit ACTIVE: that was one
 * of the two-ACTIVE overlaps of issue 14.  A target for the lease it holds is.
 */
/* n2 leads; this node joined, its unit a's component registered; a's component. */
static struct comp *follower_with_a_registered(struct fixture *f) {
    f->n2_leads = true;
    fixture_start(f);
    ASSERT_OK(cluster_start(f->cluster));
    run_until(f, &f->loaded);
    ASSERT(!cluster_is_coordinator(f->cluster));
    ASSERT(cluster_lease(f->cluster) > 0);
    struct comp *c = amf_find_comp(f->amf, "a");
    ASSERT(c && c->proc);
    f->a.pid = c->pid;
    amf_comp_register(f->amf, &f->a, 7, "a", NULL, false, false);
    run_for(f, 50);
    return c;
}

TEST(cluster_sync_ignores_a_target_for_an_earlier_lease) {
    struct fixture f = {0};
    (void)follower_with_a_registered(&f);
    int64_t lease = cluster_lease(f.cluster);
    (void)last_csi_set(&f);

    put_target_a(&f, "ACTIVE", 2, lease - 1);
    run_for(&f, 50);
    ASSERT_EQ((int)last_csi_set(&f), 0);
    struct got g;
    ASSERT_EQ(strlen(pair(&f, KEY_CONFIRMED, "si", "a", &g)), 0);

    put_target_a(&f, "STANDBY", 3, lease);
    run_for(&f, 50);
    ASSERT_EQ((int)last_csi_set(&f), HALO_HA_STANDBY);
    fixture_stop(&f);
}

static void put_target_a_seen(struct fixture *f, const char *state, int gen, int64_t lease, int64_t seen) {
    char v[256];
    snprintf(v, sizeof(v),
             "{\"si\":\"si\",\"su\":\"a\",\"node\":\"n1\",\"state\":\"%s\",\"gen\":%d,\"lease\":%lld,"
             "\"seen\":%lld}",
             state, gen, (long long)lease, (long long)seen);
    put(f, KEY_TARGET, "si", "a", v, 0);
}

/* The revision of a's unit state in the store, and whether it says failing. */
static int64_t sustate_a_rev(struct fixture *f, bool *failing) {
    char key[STORE_KEY_MAX];
    ASSERT(key_name(key, f->prefix, KEY_SUSTATE, "a") >= 0);
    struct got g = {0};
    ASSERT_OK(store_get(f->store, key, on_got, &g));
    run_until(f, &g.done);
    *failing = strstr(g.value, "\"failing\":true") != NULL;
    return g.rev;
}

/*
 * A target decided on a state of the unit older than its last failure is void, though written for
 * the lease its node still holds: the unit failed and restarted meanwhile (its roles went with the
 * failure), and the coordinator decides again once it sees that.  A late copy carried out by the
 * restarted unit made a second ACTIVE (chaos seed 302 --cut: 249 ms of two ACTIVEs of an N+M SI).
 * A target decided on the state written since the failure is carried out.
 */
TEST(cluster_sync_ignores_a_target_decided_before_the_units_failure) {
    struct fixture f = {0};
    struct comp *c = follower_with_a_registered(&f);
    int64_t lease = cluster_lease(f.cluster);
    bool failing;
    int64_t before = sustate_a_rev(&f, &failing); /* in service: what a coordinator decides on */
    ASSERT(!failing);

    /* a fails (its state, failing, written at a newer revision), restarts and registers again. */
    fake_proc_exit(c->proc, 9);
    run_for(&f, 5);
    while (!c->proc)
        run_for(&f, 10);
    f.a.pid = c->pid;
    amf_comp_register(f.amf, &f.a, 8, "a", NULL, false, false);
    run_for(&f, 50);
    ASSERT(amf_su_in_service(amf_find_su(f.amf, "a")));
    (void)last_csi_set(&f);

    put_target_a_seen(&f, "ACTIVE", 5, lease, before);
    run_for(&f, 50);
    ASSERT_EQ((int)last_csi_set(&f), 0);
    /* The coordinator hears that a holds nothing for that decision: it decides again (a node that
     * said nothing left it believing a ACTIVE, the SI without a real ACTIVE: chaos seed 402 --cut). */
    struct got g;
    const char *conf = pair(&f, KEY_CONFIRMED, "si", "a", &g);
    if (!strstr(conf, "\"state\":\"REMOVED\"") || !strstr(conf, "\"gen\":5"))
        CHECK_FAIL("a's confirmation after the target it would not carry out: '%s'", conf);

    int64_t now = sustate_a_rev(&f, &failing);
    ASSERT(now > before);
    put_target_a_seen(&f, "STANDBY", 6, lease, now);
    run_for(&f, 50);
    ASSERT_EQ((int)last_csi_set(&f), HALO_HA_STANDBY);
    fixture_stop(&f);
}

static void on_lease_done(store *s, int error, int64_t lease, int64_t ttl, void *userdata) {
    *(bool *)userdata = true;
}

/*
 * A node that fences itself revokes its old lease when it rejoins, which lets
 * another node promote at once.  It must not do so while a process the fence
 * killed is still running: the other node's unit would be ACTIVE beside it.
 * It waits until the process is gone, then rejoins.
 */
TEST(cluster_sync_rejoins_only_once_the_fenced_processes_are_gone) {
    struct fixture f = {.n2_leads = true, .ttl = 3};
    fixture_start(&f);
    ASSERT_OK(cluster_start(f.cluster));
    run_until(&f, &f.loaded);
    int64_t lease = cluster_lease(f.cluster);
    ASSERT(lease > 0);
    struct comp *c = amf_find_comp(f.amf, "a");
    ASSERT(c && c->proc);
    struct proc *p = c->proc;
    f.a.pid = c->pid;
    amf_comp_register(f.amf, &f.a, 7, "a", NULL, false, false);
    put_target_a(&f, "ACTIVE", 2, lease);
    run_for(&f, 50);
    ASSERT_EQ((int)last_csi_set(&f), HALO_HA_ACTIVE);

    /* The lease ends under it: the next renewal (every TTL/3) finds it gone. */
    bool done = false;
    ASSERT_OK(store_lease_revoke(f.store, lease, on_lease_done, &done));
    run_until(&f, &done);
    for (int i = 0; i < 40 && p->killed != SIGKILL; i++)
        run_for(&f, 50);
    ASSERT_EQ(p->killed, SIGKILL);
    run_for(&f, 500);
    ASSERT_EQ(cluster_lease(f.cluster), 0); /* still waiting for the process */
    fake_proc_exit(p, SIGKILL);
    for (int i = 0; i < 40 && cluster_lease(f.cluster) == 0; i++)
        run_for(&f, 50);
    ASSERT(cluster_lease(f.cluster) > 0 && cluster_lease(f.cluster) != lease);
    fixture_stop(&f);
}

/* Answers every CSI set a's component was sent (as a component that takes
 * them at once); the HA state of the last one, 0 if none. */
static halo_ha_state answer_csi_sets(struct fixture *f) {
    LinkMsg *m;
    halo_ha_state st = 0;
    while ((m = fake_conn_next(&f->a)))
        if (m->body_case == HALO__LINK__MSG__BODY_CSI_SET) {
            st = (halo_ha_state)m->csi_set->ha_state;
            amf_response(f->amf, &f->a, 0, m->csi_set->invocation, 0, false);
        }
    return st;
}

/* This node is the coordinator, its unit a registered and STANDBY, b ACTIVE on n2; a's component. */
static struct comp *coordinator_with_a_standby(struct fixture *f) {
    fixture_start(f);
    ASSERT_OK(cluster_start(f->cluster));
    run_until(f, &f->loaded);
    ASSERT(cluster_is_coordinator(f->cluster));
    struct comp *c = amf_find_comp(f->amf, "a");
    f->a.pid = c->pid;
    amf_comp_register(f->amf, &f->a, 7, "a", NULL, false, false);
    run_for(f, 50);
    ASSERT_EQ((int)answer_csi_sets(f), HALO_HA_STANDBY);
    return c;
}

/* n2 fenced itself and rejoined: b's state published under a new lease, returned. */
static int64_t n2_back_under_a_new_lease(struct fixture *f) {
    int64_t l2 = 0;
    ASSERT_OK(store_lease_grant(f->store, 60, on_granted, &l2));
    while (!l2)
        uv_run(&f->loop, UV_RUN_ONCE);
    put(f, KEY_SUSTATE, "b", NULL,
        "{\"su\":\"b\",\"node\":\"n2\",\"in_service\":true,\"failing\":false,\"fenced\":false}", l2);
    return l2;
}

/*
 * n2 fenced itself and rejoined under a new lease: its unit b publishes its
 * state under that lease.  What b held under the old lease (ACTIVE) is void:
 * the coordinator decides again.  It used to keep b's old ACTIVE, and a
 * target it had written for the old lease stayed pending for ever (b's node
 * ignores it): an SI with no ACTIVE for as long as that lasted.
 */
TEST(cluster_sync_decides_again_for_a_unit_back_under_a_new_lease) {
    struct fixture f = {0};
    coordinator_with_a_standby(&f);
    run_for(&f, 50);
    struct si *si = amf_find_si(f.amf, "si");
    struct su *b = amf_find_su(f.amf, "b");
    ASSERT(amf_si_find(si, HALO_HA_ACTIVE)->su == b);

    (void)n2_back_under_a_new_lease(&f);
    run_for(&f, 100);
    struct assignment *as = amf_si_find_su(si, b);
    ASSERT(!as || as->gen > 1);
    /* The SI is not left waiting: its ACTIVE goes to a, the standby (told
     * directly: it is this node's unit). */
    ASSERT_EQ((int)answer_csi_sets(&f), HALO_HA_ACTIVE);
    struct assignment *act = amf_si_find(si, HALO_HA_ACTIVE);
    ASSERT(act && act->su == amf_find_su(f.amf, "a"));
    fixture_stop(&f);
}

static bool never_trusted(store *s, int64_t revision) {
    return false;
}

/* The memory store, saying no lease end is vouched for (as the etcd backend
 * does after a raft term change, until every member answered: store.h). */
static void distrust_lease_ends(struct fixture *f, store_ops *ops) {
    *ops = *f->store->ops;
    ops->lease_end_trusted = never_trusted;
    f->store->ops = ops;
}

static void revoke_n2(struct fixture *f) {
    bool done = false;
    ASSERT_OK(store_lease_revoke(f->store, f->n2_lease, on_lease_done, &done));
    run_until(f, &done);
}

/*
 * n2's lease ends in a way etcd cannot vouch for (a stalled etcd leader that
 * ran again revokes every lease it tracked: etcd #15247): n2 may have renewed
 * it a moment before and b still be ACTIVE there until n2 fences itself, a TTL
 * after its last renewal at most.  The coordinator makes a ACTIVE only then;
 * it used to at once, and the chaos checker saw two ACTIVEs for up to 592 ms.
 */
TEST(cluster_sync_waits_a_ttl_for_a_lease_end_nobody_vouches_for) {
    struct fixture f = {.ttl = 2};
    store_ops ops;
    coordinator_with_a_standby(&f);
    distrust_lease_ends(&f, &ops);
    int64_t ttl_ms = cluster_ttl(f.cluster) * 1000;

    uint64_t t0 = now_monotonic_usec();
    revoke_n2(&f);
    run_for(&f, (uint64_t)ttl_ms - 300);
    ASSERT_EQ((int)answer_csi_sets(&f), 0); /* nothing yet: b may still run */
    struct si *si = amf_find_si(f.amf, "si");
    ASSERT(!amf_si_find(si, HALO_HA_ACTIVE));
    run_for(&f, 600);
    ASSERT_EQ((int)answer_csi_sets(&f), HALO_HA_ACTIVE);
    uint64_t waited_ms = (now_monotonic_usec() - t0) / 1000;
    if (waited_ms < (uint64_t)ttl_ms - 300)
        CHECK_FAIL("a made ACTIVE %llu ms after the lease end", (unsigned long long)waited_ms);
    fixture_stop(&f);
}

/* n2's lease ends in a way nobody vouches for, with this node the coordinator and its unit a the
 * STANDBY; then n2's node key comes back under a new lease, before the TTL is over: returned. */
static int64_t n2_rejoins_before_the_ttl(struct fixture *f, store_ops *ops) {
    f->ttl = 5;
    coordinator_with_a_standby(f);
    distrust_lease_ends(f, ops);
    revoke_n2(f);
    run_for(f, 200);
    ASSERT(!amf_si_find(amf_find_si(f->amf, "si"), HALO_HA_ACTIVE));
    int64_t l2 = 0;
    ASSERT_OK(store_lease_grant(f->store, 60, on_granted, &l2));
    while (!l2)
        uv_run(&f->loop, UV_RUN_ONCE);
    char node[128];
    snprintf(node, sizeof(node), "{\"node\":\"n2\",\"pid\":4243,\"lease\":\"%lld\",\"ttl\":60}", (long long)l2);
    put(f, KEY_NODES, "n2", NULL, node, l2);
    return l2;
}

/* The same, but n2 comes back under a new lease before the TTL is over: it
 * rejoined only after its fence, so the SI need not wait any longer. */
TEST(cluster_sync_takes_a_new_lease_as_proof_of_the_fence) {
    struct fixture f = {0};
    store_ops ops;
    int64_t l2 = n2_rejoins_before_the_ttl(&f, &ops);
    put(&f, KEY_SUSTATE, "b", NULL,
        "{\"su\":\"b\",\"node\":\"n2\",\"in_service\":false,\"failing\":false,\"fenced\":true}", l2);
    run_for(&f, 300);
    ASSERT_EQ((int)answer_csi_sets(&f), HALO_HA_ACTIVE);
    fixture_stop(&f);
}

/*
 * The same, when the new lease's node key comes but b's state under it does not (n2's write of
 * it failed, and is done again later): the node's rejoin is the proof, and a is made ACTIVE
 * then, not when b's state comes.  It used to wait for b's state, as the TTL's wait was dropped
 * at the rejoin (chaos seed 403: an SI without ACTIVE for 4.4 s).
 */
TEST(cluster_sync_takes_a_new_lease_as_proof_of_the_fence_of_a_unit_not_published_yet) {
    struct fixture f = {0};
    store_ops ops;
    (void)n2_rejoins_before_the_ttl(&f, &ops);
    run_for(&f, 300);
    ASSERT_EQ((int)answer_csi_sets(&f), HALO_HA_ACTIVE);
    fixture_stop(&f);
}

/* b, ACTIVE on n2, has an OCF resource whose stop may take 1.5 s; then n2's lease ends, by etcd's rules. */
static void n2_with_a_slow_ocf_stop_gone(struct fixture *f) {
    coordinator_with_a_standby(f);
    put(f, KEY_SUSTATE, "b", NULL,
        "{\"su\":\"b\",\"node\":\"n2\",\"in_service\":true,\"failing\":false,\"fenced\":true,\"stop_ms\":1500}",
        f->n2_lease);
    run_for(f, 50);
    revoke_n2(f);
}

/*
 * A lease end proves n2's processes gone, not its OCF resources: n2's fence
 * (its halod's, or its halo-guard's at the lease deadline) only begins their
 * stop, which may take its timeout.  a is made ACTIVE once that has passed.
 * It used to be at once (test_ocf.py: 'start b' while the other node's
 * stop ran; the chaos checker, seed 202: two ACTIVEs for 0.4 to 2.3 s).
 */
TEST(cluster_sync_waits_the_ocf_stop_timeout_after_a_lease_end) {
    struct fixture f = {0};
    uint64_t t0 = now_monotonic_usec();
    n2_with_a_slow_ocf_stop_gone(&f);
    run_for(&f, 1200);
    ASSERT_EQ((int)answer_csi_sets(&f), 0); /* nothing yet: b's stop may still run */
    ASSERT(!amf_si_find(amf_find_si(f.amf, "si"), HALO_HA_ACTIVE));
    run_for(&f, 600);
    ASSERT_EQ((int)answer_csi_sets(&f), HALO_HA_ACTIVE);
    uint64_t waited_ms = (now_monotonic_usec() - t0) / 1000;
    if (waited_ms < 1500)
        CHECK_FAIL("a made ACTIVE %llu ms after the lease end", (unsigned long long)waited_ms);
    fixture_stop(&f);
}

/* n2 back under a new lease before then: it joins only once its fence's stops have ended. */
TEST(cluster_sync_takes_a_new_lease_as_proof_of_the_ocf_stop) {
    struct fixture f = {0};
    n2_with_a_slow_ocf_stop_gone(&f);
    run_for(&f, 200);
    ASSERT(!amf_si_find(amf_find_si(f.amf, "si"), HALO_HA_ACTIVE));
    int64_t l2 = 0;
    ASSERT_OK(store_lease_grant(f.store, 60, on_granted, &l2));
    while (!l2)
        uv_run(&f.loop, UV_RUN_ONCE);
    char node[128];
    snprintf(node, sizeof(node), "{\"node\":\"n2\",\"pid\":4243,\"lease\":\"%lld\",\"ttl\":60}", (long long)l2);
    put(&f, KEY_NODES, "n2", NULL, node, l2);
    run_for(&f, 300);
    ASSERT_EQ((int)answer_csi_sets(&f), HALO_HA_ACTIVE);
    fixture_stop(&f);
}

/* The gen of target/ or confirmed/<si>/<su> in the store. */
static int pair_gen(struct fixture *f, enum key_dir dir, const char *si, const char *su) {
    struct got g;
    const char *v = strstr(pair(f, dir, si, su, &g), "\"gen\":");
    ASSERT(v);
    return atoi(v + strlen("\"gen\":"));
}

/* This node, deposed, learns it, fences itself (a's restarted process c is killed and reaped) and
 * rejoins under a lease other than lease, as a node that does not decide. */
static void deposed_fences_and_rejoins(struct fixture *f, struct comp *c, int64_t lease) {
    for (int i = 0; i < 100 && (cluster_lease(f->cluster) == 0 || cluster_lease(f->cluster) == lease); i++) {
        run_for(f, 20);
        if (c->proc && c->proc->killed == SIGKILL)
            fake_proc_exit(c->proc, SIGKILL);
    }
    ASSERT(cluster_lease(f->cluster) != 0 && cluster_lease(f->cluster) != lease);
    ASSERT(!cluster_is_coordinator(f->cluster));
    run_for(f, 100);
}

/*
 * The coordinator (this node) is deposed before it knows it: its halod was
 * stopped, its lease ran out, another node leads.  Still believing it decides,
 * it fails si over to b (a's process is gone) with a gen that never reaches
 * the store (its guarded write is refused), then learns it was deposed, fences
 * itself and rejoins.  Its view of b must be the store's again: b STANDBY as
 * confirmed.  It kept its own unwritten ACTIVE target for b pending for ever,
 * no later target or confirmation matching its gen: haloctl status on this
 * node showed si without ACTIVE (the chaos checker, seed 606).
 */
TEST(cluster_sync_forgets_its_unwritten_decisions_once_deposed) {
    struct fixture f = {0};
    struct comp *c = coordinator_with_a_standby(&f);
    /* n2 comes back under a new lease: a is made ACTIVE, b STANDBY, which
     * n2 confirms. */
    int64_t l2 = n2_back_under_a_new_lease(&f);
    run_for(&f, 50);
    ASSERT_EQ((int)answer_csi_sets(&f), HALO_HA_ACTIVE);
    run_for(&f, 50);
    struct got g;
    ASSERT(strstr(pair(&f, KEY_TARGET, "si", "b", &g), "\"state\":\"STANDBY\""));
    int gen = pair_gen(&f, KEY_TARGET, "si", "b");
    char v[256];
    snprintf(v, sizeof(v),
             "{\"si\":\"si\",\"su\":\"b\",\"node\":\"n2\",\"state\":\"STANDBY\",\"gen\":%d,\"lease\":%lld}", gen,
             (long long)l2);
    put(&f, KEY_CONFIRMED, "si", "b", v, 0);
    run_for(&f, 50);
    struct si *si = amf_find_si(f.amf, "si");
    struct su *b = amf_find_su(f.amf, "b");
    struct assignment *as = amf_si_find_su(si, b);
    ASSERT(as && as->confirmed && as->state == HALO_HA_STANDBY && !as->pending);

    /* n2 leads now (a new leader key), and nothing has told this node yet
     * when a's process dies: it fails si over to b, and its write is refused. */
    char leader[STORE_KEY_MAX];
    ASSERT(key_leader(leader, f.prefix) >= 0);
    bool deleted = false, put_done = false;
    ASSERT_OK(store_delete(f.store, leader, on_done, &deleted));
    ASSERT_OK(store_put(f.store, leader, "{\"node\":\"n2\"}", 13, l2, on_done, &put_done));
    int64_t lease = cluster_lease(f.cluster);
    fake_proc_exit(c->proc, 9);
    as = amf_si_find_su(si, b);
    ASSERT(as && as->pending && as->target == HALO_HA_ACTIVE && as->gen > (uint64_t)gen);

    /* It learns it, fences itself and rejoins under a new lease. */
    deposed_fences_and_rejoins(&f, c, lease);
    ASSERT_EQ(pair_gen(&f, KEY_TARGET, "si", "b"), gen); /* the refused write is not in the store */
    as = amf_si_find_su(si, b);
    if (!as || as->pending || !as->confirmed || as->state != HALO_HA_STANDBY || as->gen != (uint64_t)gen)
        CHECK_FAIL("this node's view of b is not the store's (STANDBY, gen %d): %s%s, gen %llu", gen,
                   as ? halo_ha_state_to_string(as->state) : "none", as && as->pending ? " (pending)" : "",
                   as ? (unsigned long long)as->gen : 0ULL);
    fixture_stop(&f);
}

/*
 * The same, for a pair the store has no key of: the new coordinator withdrew b (deleted its target and
 * confirmation) before this node, deposed without knowing it yet, decided b ACTIVE.  The refused write
 * leaves no key that a read again could take: the decision stayed pending in this node's view for good
 * (chaos seed 15 --cut: an SI shown with a unit pending that no node would ever confirm).
 */
TEST(cluster_sync_drops_its_unwritten_decision_for_a_pair_the_store_lacks) {
    struct fixture f = {0};
    struct comp *c = coordinator_with_a_standby(&f);
    struct si *si = amf_find_si(f.amf, "si");
    struct su *b = amf_find_su(f.amf, "b");
    int64_t l2 = n2_back_under_a_new_lease(&f); /* a is made ACTIVE, b STANDBY, which n2 confirms */
    run_for(&f, 50);
    ASSERT_EQ((int)answer_csi_sets(&f), HALO_HA_ACTIVE);
    run_for(&f, 50);
    char v[256];
    snprintf(v, sizeof(v),
             "{\"si\":\"si\",\"su\":\"b\",\"node\":\"n2\",\"state\":\"STANDBY\",\"gen\":%d,\"lease\":%lld}",
             pair_gen(&f, KEY_TARGET, "si", "b"), (long long)l2);
    put(&f, KEY_CONFIRMED, "si", "b", v, 0);
    run_for(&f, 50);
    char leader[STORE_KEY_MAX], target[STORE_KEY_MAX], confirmed[STORE_KEY_MAX];
    ASSERT(key_leader(leader, f.prefix) >= 0);
    ASSERT(key_pair(target, f.prefix, KEY_TARGET, "si", "b") >= 0);
    ASSERT(key_pair(confirmed, f.prefix, KEY_CONFIRMED, "si", "b") >= 0);
    bool deleted = false, put_done = false, t_gone = false, c_gone = false;
    /* Seen while this node decides: its own view stands (a coordinator takes no target from the store). */
    ASSERT_OK(store_delete(f.store, target, on_done, &t_gone));
    ASSERT_OK(store_delete(f.store, confirmed, on_done, &c_gone));
    run_for(&f, 50);
    ASSERT(cluster_is_coordinator(f.cluster) && amf_si_find_su(si, b));
    ASSERT_OK(store_delete(f.store, leader, on_done, &deleted));
    ASSERT_OK(store_put(f.store, leader, "{\"node\":\"n2\"}", 13, l2, on_done, &put_done));
    int64_t lease = cluster_lease(f.cluster);
    fake_proc_exit(c->proc, 9); /* a fails: this node, deciding still, makes b ACTIVE; its write is refused */
    struct assignment *as = amf_si_find_su(si, b);
    ASSERT(as && as->pending && as->target == HALO_HA_ACTIVE);
    deposed_fences_and_rejoins(&f, c, lease);
    struct got g;
    ASSERT_STREQ(pair(&f, KEY_TARGET, "si", "b", &g), ""); /* the refused write is not in the store */
    as = amf_si_find_su(si, b);
    if (as && as->pending)
        CHECK_FAIL("this node's view keeps its unwritten %s of b pending (gen %llu); the store has no key",
                   halo_ha_state_to_string(as->target), (unsigned long long)as->gen);
    fixture_stop(&f);
}

/* n2's node key as its halod writes it: a registration or a beat. */
static void n2_beats(struct fixture *f, int64_t ttl) {
    char node[160];
    snprintf(node, sizeof(node), "{\"node\":\"n2\",\"pid\":4242,\"lease\":\"%lld\",\"ttl\":%lld,\"beats\":true}",
             (long long)f->n2_lease, (long long)ttl);
    put(f, KEY_NODES, "n2", NULL, node, f->n2_lease);
}

/*
 * n2 (lease TTL 60 s in the store, but it says 2 s) stops beating: its
 * processes are dead by libhalo's deadline 2 s - 150 ms after its last beat
 * was sent, and this node gives them 150 ms more to be gone.  It declares
 * n2 dead then (doom/n2, its key and unit states deleted, its lease revoked)
 * and a takes the ACTIVE, long before etcd would end the lease.  It used to
 * wait for the lease.
 */
TEST(cluster_sync_declares_a_node_dead_when_its_beats_stop) {
    struct fixture f = {0};
    coordinator_with_a_standby(&f);
    n2_beats(&f, 2);
    uint64_t t0 = now_monotonic_usec();
    run_for(&f, 1900);
    ASSERT_EQ((int)answer_csi_sets(&f), 0); /* not before its deadline and slack */
    struct got g;
    ASSERT_EQ(strlen(pair(&f, KEY_DOOM, "n2", NULL, &g)), 0);
    run_for(&f, 500);
    ASSERT_EQ((int)answer_csi_sets(&f), HALO_HA_ACTIVE);
    uint64_t ms = (now_monotonic_usec() - t0) / 1000;
    if (ms < 1950 || ms > 3000) /* never before its deadline and slack; the upper bound is generous */
        CHECK_FAIL("a ACTIVE %llu ms after n2's last beat, expected 2000 ms", (unsigned long long)ms);
    ASSERT(strstr(pair(&f, KEY_DOOM, "n2", NULL, &g), "\"by\":\"n1\""));
    ASSERT_EQ(cluster_sync_node(f.sync, "n2"), 0);
    fixture_stop(&f);
}

/* n2 beats every 600 ms (TTL 2 s): never declared dead. */
TEST(cluster_sync_leaves_a_node_that_beats_alone) {
    struct fixture f = {0};
    coordinator_with_a_standby(&f);
    for (int i = 0; i < 7; i++) {
        n2_beats(&f, 2);
        run_for(&f, 600);
    }
    ASSERT_EQ((int)answer_csi_sets(&f), 0);
    ASSERT_EQ(cluster_sync_node(f.sync, "n2"), 1);
    struct got g;
    ASSERT_EQ(strlen(pair(&f, KEY_DOOM, "n2", NULL, &g)), 0);
    fixture_stop(&f);
}

/* Another node declared this one dead: its next beat is refused, and it
 * fences itself (and rejoins under a new lease, the doom cleared). */
TEST(cluster_fences_once_declared_dead) {
    struct fixture f = {.ttl = 3};
    coordinator_with_a_standby(&f);
    int64_t lease = cluster_lease(f.cluster);
    put(&f, KEY_DOOM, "n1", NULL, "{\"node\":\"n1\",\"by\":\"n2\"}", 0);
    run_for(&f, 1200); /* a beat goes every TTL/3 */
    ASSERT_EQ(f.fences, 1);
    run_for(&f, 500);
    ASSERT(cluster_lease(f.cluster) != lease && cluster_lease(f.cluster) != 0);
    struct got g;
    ASSERT_EQ(strlen(pair(&f, KEY_DOOM, "n1", NULL, &g)), 0);
    fixture_stop(&f);
}

/*
 * This node, the coordinator, loses its lease and rejoins under a new one; its
 * unit a, STANDBY, survives the fence.  The others take a's state published
 * under the new lease as a new incarnation and void what it held: the
 * coordinator must publish a's STANDBY again, under the new lease, or the
 * others show the SI without its STANDBY for good (chaos seed 202).
 */
TEST(cluster_sync_publishes_its_units_again_after_its_own_rejoin) {
    struct fixture f = {.ttl = 3};
    coordinator_with_a_standby(&f);
    int64_t old = cluster_lease(f.cluster);
    struct got g;
    char want[64];
    snprintf(want, sizeof(want), "\"lease\":%lld", (long long)old);
    ASSERT(strstr(pair(&f, KEY_TARGET, "si", "a", &g), want));
    bool done = false;
    ASSERT_OK(store_lease_revoke(f.store, old, on_lease_done, &done));
    run_until(&f, &done);
    for (int i = 0;
         i < 60 && !(cluster_lease(f.cluster) && cluster_lease(f.cluster) != old && cluster_is_coordinator(f.cluster));
         i++)
        run_for(&f, 50);
    ASSERT(cluster_is_coordinator(f.cluster) && cluster_lease(f.cluster) != old);
    run_for(&f, 100);
    ASSERT_EQ(f.fences, 1);
    snprintf(want, sizeof(want), "\"lease\":%lld", (long long)cluster_lease(f.cluster));
    const char *v = pair(&f, KEY_TARGET, "si", "a", &g);
    if (!strstr(v, want) || !strstr(v, "\"state\":\"STANDBY\""))
        CHECK_FAIL("a's target after the rejoin: %s (want STANDBY under %s)", v, want);
    fixture_stop(&f);
}

/*
 * n2 fenced itself and rejoined; the coordinator (n2 still) wrote b's next
 * target for the new lease before this node saw b's state under it (n2's
 * state write had failed and was written again later): the target was
 * ignored, written for a lease b did not have yet.  Once b's state under the
 * new lease arrives, the targets are read again and the target taken: this
 * node's view of the SI had no STANDBY for good (chaos seed 303).
 */
TEST(cluster_sync_takes_a_target_written_before_its_units_new_lease_was_seen) {
    struct fixture f = {.n2_leads = true};
    fixture_start(&f);
    ASSERT_OK(cluster_start(f.cluster));
    run_until(&f, &f.loaded);
    ASSERT(!cluster_is_coordinator(f.cluster));
    struct si *si = amf_find_si(f.amf, "si");
    struct su *b = amf_find_su(f.amf, "b");
    int64_t l2 = 0;
    ASSERT_OK(store_lease_grant(f.store, 60, on_granted, &l2));
    while (!l2)
        uv_run(&f.loop, UV_RUN_ONCE);
    char v[256];
    snprintf(v, sizeof(v),
             "{\"si\":\"si\",\"su\":\"b\",\"node\":\"n2\",\"state\":\"STANDBY\",\"gen\":5,\"lease\":%lld}",
             (long long)l2);
    put(&f, KEY_TARGET, "si", "b", v, 0);
    put(&f, KEY_CONFIRMED, "si", "b", v, 0); /* n2 carried it out: dropped too, no assignment to confirm */
    run_for(&f, 20);
    put(&f, KEY_SUSTATE, "b", NULL,
        "{\"su\":\"b\",\"node\":\"n2\",\"in_service\":true,\"failing\":false,\"fenced\":false}", l2);
    run_for(&f, 100);
    struct assignment *as = amf_si_find_su(si, b);
    if (!as || as->target != HALO_HA_STANDBY || as->gen != 5)
        CHECK_FAIL("b's assignment in this node's view: %s", as ? halo_ha_state_to_string(as->target) : "none");
    /* and confirmed, or this node shows it pending for good (chaos seed 505) */
    if (!as->confirmed || as->pending)
        CHECK_FAIL("b's STANDBY is still pending in this node's view");
    fixture_stop(&f);
}

/* The memory store, with the writes of keys that hold fail_keys failing (later,
 * as a real store's would: a lease that does not exist). */
static const char *fail_keys;
static store_ops real_ops;

static int failing_txn(store *s, const store_txn *txn, store_cb cb, void *userdata) {
    store_op ops[STORE_TXN_OPS_MAX];
    bool fail = false;
    for (size_t i = 0; fail_keys && txn->n_compares == 0 && i < txn->n_success && i < ELEMENTSOF(ops); i++) {
        ops[i] = txn->success[i];
        if (ops[i].type == STORE_OP_PUT && memmem(ops[i].key, ops[i].key_len, fail_keys, strlen(fail_keys))) {
            ops[i].lease = INT64_MAX / 2;
            fail = true;
        }
    }
    if (fail) {
        store_txn t = *txn;
        t.success = ops;
        return real_ops.txn(s, &t, cb, userdata);
    }
    return real_ops.txn(s, txn, cb, userdata);
}

static void failing_writes(struct fixture *f, store_ops *ops) {
    real_ops = *f->store->ops;
    *ops = real_ops;
    ops->txn = failing_txn;
    f->store->ops = ops;
}

/* This node, not the coordinator, with its unit a registered while the store
 * refuses the writes of keys that hold what; returns once the store takes them again. */
static void registered_while_writes_fail(struct fixture *f, store_ops *ops, const char *what) {
    fixture_start(f);
    failing_writes(f, ops);
    ASSERT_OK(cluster_start(f->cluster));
    run_until(f, &f->loaded);
    ASSERT(!cluster_is_coordinator(f->cluster));
    fail_keys = what;
    struct comp *c = amf_find_comp(f->amf, "a");
    f->a.pid = c->pid;
    amf_comp_register(f->amf, &f->a, 7, "a", NULL, false, false);
    run_for(f, 50);
}

/* A unit state whose write failed is written again: the others would see a
 * out of service (or under its old lease) for good. */
TEST(cluster_sync_writes_a_unit_state_again_after_a_failed_write) {
    struct fixture f = {.n2_leads = true};
    store_ops ops;
    registered_while_writes_fail(&f, &ops, "/sustate/");
    struct got g;
    ASSERT(strstr(pair(&f, KEY_SUSTATE, "a", NULL, &g), "\"in_service\":false"));
    fail_keys = NULL;
    run_for(&f, 400);
    const char *v = pair(&f, KEY_SUSTATE, "a", NULL, &g);
    if (!strstr(v, "\"in_service\":true"))
        CHECK_FAIL("a's state after its write failed once: %s", v);
    fixture_stop(&f);
}

/* A component's record (its pid, for the next halod to adopt it) whose write failed is written again:
 * lost, the next halod did not know the process and started a second one beside it (chaos seed 308
 * --cut: 163 ms of two ACTIVE processes of one unit). */
TEST(amf_persist_writes_a_record_again_after_a_failed_write) {
    struct fixture f = {.n2_leads = true};
    store_ops ops;
    fixture_start(&f);
    failing_writes(&f, &ops);
    fail_keys = "/components/";
    struct amf_persist *p;
    ASSERT_OK(amf_persist_new(&f.loop, f.amf, f.store, f.prefix, false, &p));
    ASSERT_OK(cluster_start(f.cluster));
    run_until(&f, &f.loaded);
    struct comp *c = amf_find_comp(f.amf, "a");
    ASSERT(c && c->proc);
    run_for(&f, 50);
    struct got g;
    ASSERT_STREQ(pair(&f, KEY_COMPONENTS, "a", NULL, &g), "");
    fail_keys = NULL;
    run_for(&f, 400);
    char want[64];
    snprintf(want, sizeof(want), "\"pid\":%d", (int)c->pid);
    const char *v = pair(&f, KEY_COMPONENTS, "a", NULL, &g);
    if (!strstr(v, want))
        CHECK_FAIL("a's record after its write failed once: '%s' (want %s)", v, want);
    p = amf_persist_free(p);
    run_for(&f, 10);
    fixture_stop(&f);
}

/* A confirmation whose write failed is written again: the coordinator waits
 * for it, and the SI's next step with it. */
TEST(cluster_sync_writes_a_confirmation_again_after_a_failed_write) {
    struct fixture f = {.n2_leads = true};
    store_ops ops;
    registered_while_writes_fail(&f, &ops, "/confirmed/");
    put_target_a(&f, "STANDBY", 2, cluster_lease(f.cluster));
    run_for(&f, 50);
    ASSERT_EQ((int)answer_csi_sets(&f), HALO_HA_STANDBY);
    run_for(&f, 50);
    struct got g;
    ASSERT(!strstr(pair(&f, KEY_CONFIRMED, "si", "a", &g), "STANDBY"));
    fail_keys = NULL;
    run_for(&f, 400);
    const char *v = pair(&f, KEY_CONFIRMED, "si", "a", &g);
    if (!strstr(v, "\"state\":\"STANDBY\""))
        CHECK_FAIL("a's confirmation after its write failed once: %s", v ? v : "(none)");
    fixture_stop(&f);
}

/* n2 confirms for its unit su what a node that holds nothing says: REMOVED, for target gen. */
static void n2_confirms_removed(struct fixture *f, const char *su, int gen, int64_t lease) {
    char v[256];
    snprintf(v, sizeof(v),
             "{\"si\":\"si\",\"su\":\"%s\",\"node\":\"n2\",\"state\":\"REMOVED\",\"gen\":%d,"
             "\"lease\":%lld}",
             su, gen, (long long)lease);
    put(f, KEY_CONFIRMED, "si", su, v, 0);
}

/*
 * A restarted halod on n2 says its unit b holds nothing for a decision it had confirmed (b failed
 * before n2's halod held its lease, so the failure was never published: amf_target_void()).  The
 * coordinator takes it and gives ACTIVE to a.  It used to wait for a confirmation of a pending step
 * only: the SI stayed without a real ACTIVE until n2 was declared dead (chaos seed 402 --cut, 4.7 s).
 */
TEST(cluster_sync_takes_a_removal_of_a_confirmed_assignment) {
    struct fixture f = {0};
    coordinator_with_a_standby(&f);
    run_for(&f, 50);
    struct si *si = amf_find_si(f.amf, "si");
    struct su *b = amf_find_su(f.amf, "b");
    struct assignment *as = amf_si_find_su(si, b);
    ASSERT(as && as->confirmed && as->state == HALO_HA_ACTIVE && !as->pending);

    n2_confirms_removed(&f, "b", (int)as->gen, f.n2_lease);
    run_for(&f, 100);
    ASSERT_EQ((int)answer_csi_sets(&f), HALO_HA_ACTIVE);
    struct assignment *act = amf_si_find(si, HALO_HA_ACTIVE);
    ASSERT(act && act->su == amf_find_su(f.amf, "a"));
    fixture_stop(&f);
}

/* c ranks before b: once in service, it is the STANDBY of choice. */
#define DESCRIPTION_SPARE DESCRIPTION_WITH("      c: {node: n2}\n      b: {node: n2}\n")

/*
 * n2 fenced itself and rejoined: what b held under its old lease is void, and the coordinator
 * decides again, here without b (c, in service on n2 now, ranks before it).  A STANDBY the fence
 * spared would still hold its CSI on n2, and nobody would ever take it away: the coordinator tells
 * b that it holds nothing (a removal target under the new lease), and forgets the pair once n2
 * confirms.  It used to leave b's old key alone (chaos seed 406 --cut: N+M, two STANDBYs of an SI
 * in n2's view for good).
 */
TEST(cluster_sync_withdraws_what_a_unit_back_under_a_new_lease_is_not_given_again) {
    struct fixture f = {.description = DESCRIPTION_SPARE};
    coordinator_with_a_standby(&f);
    run_for(&f, 50);
    /* b fails and comes back: a is ACTIVE, b STANDBY (confirmed by n2). */
    put(&f, KEY_SUSTATE, "b", NULL,
        "{\"su\":\"b\",\"node\":\"n2\",\"in_service\":false,\"failing\":true,\"fenced\":true}", f.n2_lease);
    run_for(&f, 50);
    ASSERT_EQ((int)answer_csi_sets(&f), HALO_HA_ACTIVE);
    put(&f, KEY_SUSTATE, "b", NULL,
        "{\"su\":\"b\",\"node\":\"n2\",\"in_service\":true,\"failing\":false,\"fenced\":false}", f.n2_lease);
    run_for(&f, 100);
    struct got g;
    ASSERT(strstr(pair(&f, KEY_TARGET, "si", "b", &g), "\"state\":\"STANDBY\""));
    char v[256];
    snprintf(v, sizeof(v),
             "{\"si\":\"si\",\"su\":\"b\",\"node\":\"n2\",\"state\":\"STANDBY\",\"gen\":%d,\"lease\":%lld}",
             pair_gen(&f, KEY_TARGET, "si", "b"), (long long)f.n2_lease);
    put(&f, KEY_CONFIRMED, "si", "b", v, 0);
    run_for(&f, 50);
    struct si *si = amf_find_si(f.amf, "si");
    struct su *b = amf_find_su(f.amf, "b"), *c = amf_find_su(f.amf, "c");
    struct assignment *as = amf_si_find_su(si, b);
    ASSERT(as && as->confirmed && as->state == HALO_HA_STANDBY && !as->pending);

    /* n2 rejoins under a new lease: c in service first, then b. */
    int64_t l2 = 0;
    ASSERT_OK(store_lease_grant(f.store, 60, on_granted, &l2));
    while (!l2)
        uv_run(&f.loop, UV_RUN_ONCE);
    put(&f, KEY_SUSTATE, "c", NULL,
        "{\"su\":\"c\",\"node\":\"n2\",\"in_service\":true,\"failing\":false,\"fenced\":false}", l2);
    run_for(&f, 50);
    ASSERT(amf_si_find(si, HALO_HA_STANDBY)->su == b);
    put(&f, KEY_SUSTATE, "b", NULL,
        "{\"su\":\"b\",\"node\":\"n2\",\"in_service\":true,\"failing\":false,\"fenced\":false}", l2);
    run_for(&f, 100);
    struct assignment *sb = amf_si_find(si, HALO_HA_STANDBY);
    if (!sb || sb->su != c)
        CHECK_FAIL("si's STANDBY after n2 came back: %s (want c)", sb ? sb->su->name : "none");
    char want[64];
    snprintf(want, sizeof(want), "\"lease\":%lld", (long long)l2);
    const char *t = pair(&f, KEY_TARGET, "si", "b", &g);
    if (!strstr(t, "\"state\":\"REMOVED\"") || !strstr(t, want))
        CHECK_FAIL("b's target once the STANDBY went to c: '%s' (want REMOVED under %s)", t, want);
    ASSERT(amf_si_find_su(si, b)); /* until n2 confirms */

    n2_confirms_removed(&f, "b", pair_gen(&f, KEY_TARGET, "si", "b"), l2);
    run_for(&f, 100);
    ASSERT(!amf_si_find_su(si, b));
    ASSERT_EQ(strlen(pair(&f, KEY_TARGET, "si", "b", &g)), 0);
    ASSERT_EQ(strlen(pair(&f, KEY_CONFIRMED, "si", "b", &g)), 0);
    fixture_stop(&f);
}

/* The memory store, with the next range read of held_prefix held: its result (copied as it was
 * then) is given only when the test calls release_held(). */
static const char *held_prefix;
static struct held {
    store_cb cb;
    void *userdata;
    store_result r;
    store_kv *kvs;
    bool holding, ready;
} held;

static void on_held_read(store *s, int error, const store_result *r, void *userdata) {
    ASSERT_OK(error);
    held.r = *r;
    held.kvs = calloc(r->n_kvs ? r->n_kvs : 1, sizeof(*held.kvs));
    ASSERT(held.kvs);
    for (size_t i = 0; i < r->n_kvs; i++) {
        held.kvs[i] = r->kvs[i];
        held.kvs[i].key = strndup(r->kvs[i].key, r->kvs[i].key_len);
        held.kvs[i].value = strndup(r->kvs[i].value, r->kvs[i].value_len);
    }
    held.r.kvs = held.kvs;
    held.ready = true;
}

static int holding_get(store *s, const char *key, size_t key_len, bool prefix, store_cb cb, void *userdata) {
    if (!held_prefix || !prefix || held.holding || !memmem(key, key_len, held_prefix, strlen(held_prefix)))
        return real_ops.get(s, key, key_len, prefix, cb, userdata);
    held = (struct held){.cb = cb, .userdata = userdata, .holding = true};
    return real_ops.get(s, key, key_len, prefix, on_held_read, NULL);
}

static void release_held(struct fixture *f) {
    run_until(f, &held.ready);
    held_prefix = NULL;
    held.cb(f->store, 0, &held.r, held.userdata);
    for (size_t i = 0; i < held.r.n_kvs; i++) {
        free(held.kvs[i].key);
        free(held.kvs[i].value);
    }
    free(held.kvs);
    held = (struct held){0};
}

/*
 * This node, deposed, reads the targets again; the read's answer comes after the watch brought a
 * newer target and its confirmation (the new coordinator republished b's role with a new gen, say).
 * The read's older target must not take this node's view back: its mirror of b would wait for good
 * for a confirmation that came already (chaos seed 406 --cut: a STANDBY pending in a node's view
 * for good).
 */
TEST(cluster_sync_takes_no_target_older_than_the_watch_brought) {
    struct fixture f = {0};
    store_ops ops;
    coordinator_with_a_standby(&f);
    run_for(&f, 50);
    real_ops = *f.store->ops;
    ops = real_ops;
    ops.get = holding_get;
    f.store->ops = &ops;
    held_prefix = "/target/";
    int64_t lease = cluster_lease(f.cluster);

    /* n2 leads now: this node is deposed, and reads the targets again (held). */
    char leader[STORE_KEY_MAX];
    ASSERT(key_leader(leader, f.prefix) >= 0);
    bool deleted = false, put_done = false;
    ASSERT_OK(store_delete(f.store, leader, on_done, &deleted));
    ASSERT_OK(store_put(f.store, leader, "{\"node\":\"n2\"}", 13, f.n2_lease, on_done, &put_done));
    run_until(&f, &put_done);
    for (int i = 0; i < 100 && cluster_is_coordinator(f.cluster); i++)
        run_for(&f, 20);
    ASSERT(!cluster_is_coordinator(f.cluster));
    run_until(&f, &held.ready);

    /* The new coordinator republishes b's ACTIVE with gen 7, target then confirmation. */
    char v[256];
    snprintf(v, sizeof(v), "{\"si\":\"si\",\"su\":\"b\",\"node\":\"n2\",\"state\":\"ACTIVE\",\"gen\":7,\"lease\":%lld}",
             (long long)f.n2_lease);
    put(&f, KEY_TARGET, "si", "b", v, 0);
    put(&f, KEY_CONFIRMED, "si", "b", v, 0);
    run_for(&f, 50);
    struct assignment *as = amf_si_find_su(amf_find_si(f.amf, "si"), amf_find_su(f.amf, "b"));
    ASSERT(as && as->gen == 7 && !as->pending);

    /* It rejoins (the leader key was deleted under it: it fenced itself), and reads again what it
     * has to; then the held answer comes. */
    for (int i = 0; i < 100 && cluster_lease(f.cluster) == lease; i++)
        run_for(&f, 20);
    ASSERT(cluster_lease(f.cluster) != lease);
    run_for(&f, 100);
    release_held(&f);
    run_for(&f, 100);
    as = amf_si_find_su(amf_find_si(f.amf, "si"), amf_find_su(f.amf, "b"));
    if (!as || as->gen != 7 || as->pending || !as->confirmed)
        CHECK_FAIL("b in this node's view after the late read: %s, gen %llu%s",
                   as ? halo_ha_state_to_string(as->target) : "none", as ? (unsigned long long)as->gen : 0ULL,
                   as && as->pending ? " (pending)" : "");
    f.store->ops = &real_ops;
    fixture_stop(&f);
}

/* ---- a reload that adds or removes a group (cluster_sync_reload_begin()) ---- */

/* DESCRIPTION and a group h: c on n1, d on n2, its SI hsi. */
#define DESCRIPTION_H                        \
    DESCRIPTION "  h:\n"                     \
                "    component:\n"           \
                "      command: /bin/true\n" \
                "    service-units:\n"       \
                "      c: {node: n1}\n"      \
                "      d: {node: n2}\n"      \
                "    service-instances:\n"   \
                "      hsi:\n"               \
                "        csis:\n"            \
                "          hcsi: {}\n"

/* What manager_reload() does for a group added: the description with h, applied; returned (the
 * AMF points into it: freed by the test after fixture_stop()). */
static struct config *reload_add_h(struct fixture *f) {
    char *errors = NULL;
    FILE *fp = fopen(f->path, "w");
    ASSERT(fp);
    fputs(DESCRIPTION_H, fp);
    fclose(fp);
    struct config *cfg = NULL;
    if (config_load(f->path, &cfg, &errors) < 0)
        CHECK_FAIL("the description does not load: %s", errors ? errors : "?");
    ASSERT_EQ((int)cfg->n_sgs, 2);
    cluster_sync_reload_begin(f->sync);
    ASSERT_OK(amf_sg_add(f->amf, cfg, &cfg->sgs[1]));
    cluster_sync_reload_end(f->sync);
    return cfg;
}

/* n2's halod as it would answer: d's state in service, and the confirmation of d's target. */
static void n2_publishes_d(struct fixture *f) {
    put(f, KEY_SUSTATE, "d", NULL,
        "{\"su\":\"d\",\"node\":\"n2\",\"in_service\":true,\"failing\":false,\"fenced\":false}", f->n2_lease);
}

static void n2_confirms_d(struct fixture *f) {
    struct got g;
    const char *t = pair(f, KEY_TARGET, "hsi", "d", &g);
    const char *st = strstr(t, "\"state\":\"");
    if (!st)
        return;
    char state[16] = "";
    sscanf(st + strlen("\"state\":\""), "%15[A-Z]", state);
    char v[256];
    snprintf(v, sizeof(v), "{\"si\":\"hsi\",\"su\":\"d\",\"node\":\"n2\",\"state\":\"%s\",\"gen\":%d,\"lease\":%lld}",
             state, pair_gen(f, KEY_TARGET, "hsi", "d"), (long long)f->n2_lease);
    struct got c;
    if (!streq(pair(f, KEY_CONFIRMED, "hsi", "d", &c), v))
        put(f, KEY_CONFIRMED, "hsi", "d", v, 0);
}

/* n2 published d in service, and d holds hsi ACTIVE (decided by an earlier coordinator, gen 7). */
static void n2_holds_d_active(struct fixture *f) {
    n2_publishes_d(f);
    n2_holds_active(f, "hsi", "d", 7);
    run_for(f, 50);
}

/* This node coordinates, n2 holds hsi ACTIVE on d, and this node reloads with h: its description. */
static struct config *coordinator_adds_h_held_by_d(struct fixture *f) {
    coordinator_with_a_standby(f);
    n2_holds_d_active(f);
    struct config *cfg = reload_add_h(f);
    run_for(f, 100);
    return cfg;
}

/* Stops the fixture, then frees what a test with c registered on cc and the description cfg kept. */
static void stop_reloaded(struct fixture *f, struct conn *cc, struct config *cfg) {
    fixture_stop(f);
    if (cc)
        fake_conn_done(cc);
    config_free(cfg);
}

/* c's component registers on the link cc. */
static void register_c(struct fixture *f, struct conn *cc) {
    struct comp *c = amf_find_comp(f->amf, "c");
    ASSERT(c && c->proc);
    *cc = (struct conn){.pid = c->pid};
    amf_comp_register(f->amf, cc, 8, "c", NULL, false, false);
}

/*
 * A group added by a reload on several nodes: n2 reloaded first, so d's state was written while the
 * coordinator (this node) did not know d, and ignored.  Once the coordinator reloads, it reads d's
 * state again and gives d the ACTIVE; this node publishes its own unit c (the table of published
 * units grows).  Without the read, d stayed out of service for good and hsi had no ACTIVE.
 */
static void learns_d(unsigned failed_reads) {
    struct fixture f = {0};
    coordinator_with_a_standby(&f);
    n2_publishes_d(&f);
    run_for(&f, 50);
    ASSERT(!amf_find_su(f.amf, "d"));

    if (failed_reads)
        ASSERT_OK(store_engine_fail_reads(f.store, f.prefix, failed_reads, -ETIMEDOUT));
    struct config *cfg = reload_add_h(&f);
    run_for(&f, 100 + 250 * failed_reads);
    struct got g;
    ASSERT(strstr(pair(&f, KEY_SUSTATE, "c", NULL, &g), "\"node\":\"n1\""));
    struct conn cc;
    register_c(&f, &cc);
    run_for(&f, 50);
    LinkMsg *m;
    while ((m = fake_conn_next(&cc)))
        if (m->body_case == HALO__LINK__MSG__BODY_CSI_SET)
            amf_response(f.amf, &cc, 0, m->csi_set->invocation, 0, false);
    run_for(&f, 100);
    /* c ranks first: ACTIVE; d, known from the state read again, STANDBY. */
    const char *t = pair(&f, KEY_TARGET, "hsi", "d", &g);
    if (!strstr(t, "\"state\":\"STANDBY\""))
        CHECK_FAIL("d's target after the coordinator's reload: '%s' (want STANDBY)", t);
    ASSERT(strstr(pair(&f, KEY_TARGET, "hsi", "c", &g), "\"state\":\"ACTIVE\""));
    /* The group that was there is untouched: b ACTIVE, a STANDBY. */
    ASSERT(strstr(pair(&f, KEY_TARGET, "si", "b", &g), "\"state\":\"ACTIVE\""));
    ASSERT(strstr(pair(&f, KEY_TARGET, "si", "a", &g), "\"state\":\"STANDBY\""));
    stop_reloaded(&f, &cc, cfg);
}

TEST(cluster_sync_learns_the_units_of_a_group_added_by_a_reload) {
    learns_d(0);
}

/* The read fails (etcd away): the coordinator decides nothing for the group until a read again is
 * in; deciding without it, d stayed out of service for good. */
TEST(cluster_sync_reads_a_group_added_again_after_a_failed_read) {
    learns_d(1);
}

/*
 * The coordinator that reloads takes the roles the store already gives the group's units (another
 * coordinator, which had the group, decided them before it died): d stays ACTIVE under the same
 * decision (its gen), and c, once in service, is STANDBY, never ACTIVE beside d.
 */
TEST(cluster_sync_takes_the_roles_of_a_group_added_from_the_store) {
    struct fixture f = {0};
    struct config *cfg = coordinator_adds_h_held_by_d(&f);
    ASSERT_EQ(pair_gen(&f, KEY_TARGET, "hsi", "d"), 7);
    struct conn cc;
    register_c(&f, &cc);
    run_for(&f, 100);
    LinkMsg *m;
    bool standby = false;
    while ((m = fake_conn_next(&cc)))
        if (m->body_case == HALO__LINK__MSG__BODY_CSI_SET) {
            ASSERT(m->csi_set->ha_state != HALO_HA_ACTIVE);
            standby |= m->csi_set->ha_state == HALO_HA_STANDBY;
        }
    ASSERT(standby);
    struct got g;
    ASSERT(strstr(pair(&f, KEY_TARGET, "hsi", "d", &g), "\"state\":\"ACTIVE\""));
    stop_reloaded(&f, &cc, cfg);
}

/*
 * A group removed by the coordinator's reload: its SIs are taken from every node's units (d on n2,
 * which has not reloaded, holds nothing from then on but keeps running), this node's units stop, and
 * every key of the group goes from the store; the other group keeps its roles.
 */
TEST(cluster_sync_deletes_the_keys_of_a_group_removed_by_a_reload) {
    struct fixture f = {0};
    struct config *cfg = coordinator_adds_h_held_by_d(&f);
    struct got g;
    ASSERT(strstr(pair(&f, KEY_CONFIRMED, "hsi", "d", &g), "\"state\":\"ACTIVE\""));
    ASSERT(strlen(pair(&f, KEY_SUSTATE, "c", NULL, &g)) > 0);

    ASSERT_OK(amf_sg_remove(f.amf, "h"));
    for (int i = 0; i < 200 && amf_find_su(f.amf, "c"); i++) {
        run_for(&f, 20);
        n2_confirms_d(&f);
        size_t n_sgs;
        struct sg *sgs = amf_sgs(f.amf, &n_sgs);
        struct comp *c = &sgs[1].sus[0].comps[0];
        if (c->proc && c->proc->killed)
            fake_proc_exit(c->proc, c->proc->killed);
    }
    ASSERT(!amf_find_su(f.amf, "c"));
    run_for(&f, 50);
    const char *keys[][3] = {{"t", "hsi", "c"}, {"t", "hsi", "d"}, {"c", "hsi", "c"},
                             {"c", "hsi", "d"}, {"s", "c", NULL},  {"s", "d", NULL}};
    for (size_t i = 0; i < ELEMENTSOF(keys); i++) {
        enum key_dir d = keys[i][0][0] == 't' ? KEY_TARGET : keys[i][0][0] == 'c' ? KEY_CONFIRMED : KEY_SUSTATE;
        const char *v = pair(&f, d, keys[i][1], keys[i][2], &g);
        if (*v)
            CHECK_FAIL("%s/%s still in the store after h was removed: '%s'", keys[i][1], keys[i][2] ?: "", v);
    }
    ASSERT(strstr(pair(&f, KEY_TARGET, "si", "b", &g), "\"state\":\"ACTIVE\""));
    ASSERT(strstr(pair(&f, KEY_TARGET, "si", "a", &g), "\"state\":\"STANDBY\""));
    stop_reloaded(&f, NULL, cfg);
}

/*
 * The lock a group's removal puts on its SIs says so in the store ("removal"), so that a node that
 * still has the group assigns the SI again if the coordinator dies in the removal; an SI an operator
 * had locked before keeps a plain lock: the next coordinator must not unlock it.
 */
static void removal_lock_record(bool operator_locked, char *out, size_t size) {
    struct fixture f = {0};
    struct config *cfg = coordinator_adds_h_held_by_d(&f);
    struct amf_persist *p;
    ASSERT_OK(amf_persist_new(&f.loop, f.amf, f.store, f.prefix, false, &p));
    if (operator_locked) {
        ASSERT(amf_run_op(f.amf, AMF_OP_LOCK, "si:hsi", NULL) >= 0);
        run_for(&f, 50);
    }
    ASSERT_OK(amf_sg_remove(f.amf, "h"));
    run_for(&f, 50);
    struct got g;
    snprintf(out, size, "%s", pair(&f, KEY_ADMINSTATE, "si:hsi", NULL, &g));
    p = amf_persist_free(p);
    run_for(&f, 10);
    stop_reloaded(&f, NULL, cfg);
}

TEST(cluster_sync_marks_the_lock_of_a_group_removal_and_not_an_operators) {
    char v[512];
    removal_lock_record(false, v, sizeof(v));
    if (!strstr(v, "\"admin\":\"LOCKED\"") || !strstr(v, "\"removal\":true"))
        CHECK_FAIL("hsi's lock by h's removal: '%s'", v);
    removal_lock_record(true, v, sizeof(v));
    if (!strstr(v, "\"admin\":\"LOCKED\"") || strstr(v, "removal"))
        CHECK_FAIL("hsi locked by an operator, then h removed: '%s'", v);
}

/* ---- a reload that adds an SI to a group that stays ---- */

/*
 * The coordinator that reloads with si2 added to g takes the roles the store already gives it (an
 * earlier coordinator, which had si2, decided them before it died): b stays ACTIVE under the same
 * decision (its gen), and a, this node's unit, is never ACTIVE beside it.  Deciding before the read,
 * it decided si2 afresh.
 */
/* What manager_reload() does for an SI added: the description with si2 in g, applied; returned. */
static struct config *reload_add_si2(struct fixture *f) {
    FILE *fp = fopen(f->path, "w");
    ASSERT(fp);
    fputs(DESCRIPTION "      si2:\n        csis:\n          csi2: {}\n", fp);
    fclose(fp);
    struct config *cfg = NULL;
    char *errors = NULL;
    if (config_load(f->path, &cfg, &errors) < 0)
        CHECK_FAIL("the description does not load: %s", errors ? errors : "?");
    ASSERT_EQ((int)cfg->sgs[0].n_sis, 2);
    cluster_sync_reload_begin(f->sync);
    ASSERT_OK(amf_si_add(f->amf, "g", &cfg->sgs[0].sis[1]));
    cluster_sync_reload_end(f->sync);
    run_for(f, 100);
    return cfg;
}

TEST(cluster_sync_takes_the_roles_of_an_si_added_from_the_store) {
    struct fixture f = {0};
    coordinator_with_a_standby(&f);
    n2_holds_active(&f, "si2", "b", 7);
    run_for(&f, 50);
    struct config *cfg = reload_add_si2(&f);
    LinkMsg *m;
    while ((m = fake_conn_next(&f.a)))
        if (m->body_case == HALO__LINK__MSG__BODY_CSI_SET) {
            ASSERT(m->csi_set->ha_state != HALO_HA_ACTIVE);
            amf_response(f.amf, &f.a, 0, m->csi_set->invocation, 0, false);
        }
    run_for(&f, 100);
    ASSERT_EQ(pair_gen(&f, KEY_TARGET, "si2", "b"), 7);
    struct got g;
    ASSERT(strstr(pair(&f, KEY_TARGET, "si2", "b", &g), "\"state\":\"ACTIVE\""));
    ASSERT(strstr(pair(&f, KEY_TARGET, "si", "b", &g), "\"state\":\"ACTIVE\""));
    stop_reloaded(&f, NULL, cfg);
}

/* The same for the lock an earlier coordinator left of si2: it stays locked, assigned nowhere.
 * Deciding before the read, the coordinator assigned it. */
TEST(cluster_sync_takes_the_lock_of_an_si_added_from_the_store) {
    struct fixture f = {0};
    coordinator_with_a_standby(&f);
    put(&f, KEY_ADMINSTATE, "si:si2", NULL, "{\"admin\":\"LOCKED\"}", 0);
    run_for(&f, 50);
    struct config *cfg = reload_add_si2(&f);
    run_for(&f, 100);
    struct si *si2 = amf_find_si(f.amf, "si2");
    ASSERT(si2 && si2->admin == SI_LOCKED);
    struct got g;
    ASSERT(!*pair(&f, KEY_TARGET, "si2", "a", &g) && !*pair(&f, KEY_TARGET, "si2", "b", &g));
    stop_reloaded(&f, NULL, cfg);
}

/* ---- cdb-alone/<sg>: the readiness of each cdb-roles group ---- */

/* Group G: its unit Ga on n1, Gb on n2, and its SI Gsi. */
#define CDB_GROUP(G)             \
    "  " G ":\n"                 \
    "    component:\n"           \
    "      command: /bin/true\n" \
    "    service-units:\n"       \
    "      " G "a: {node: n1}\n" \
    "      " G "b: {node: n2}\n" \
    "    service-instances:\n"   \
    "      " G "si:\n"           \
    "        csis:\n"            \
    "          " G "csi: {}\n"
#define DESCRIPTION_CDB_GROUPS \
    "cluster: t\n"             \
    "nodes:\n"                 \
    "  n1: {}\n"               \
    "  n2: {}\n"               \
    "service-groups:\n" CDB_GROUP("g1") CDB_GROUP("g2") CDB_GROUP("g3")

/* g1 and g2 drive CDB roles, g3 does not.  The description's check allows one cdb-roles group (and
 * wants a token and cdb-addresses): set past it, as the model will have them with several. */
static void two_cdb_roles_groups(struct config *c) {
    ASSERT_EQ((int)c->n_sgs, 3);
    c->sgs[0].cdb_roles = true;
    c->sgs[1].cdb_roles = true;
}

static void del(struct fixture *f, enum key_dir dir, const char *name) {
    char key[STORE_KEY_MAX];
    ASSERT(key_name(key, f->prefix, dir, name) >= 0);
    bool done = false;
    ASSERT_OK(store_delete(f->store, key, on_done, &done));
    run_until(f, &done);
}

/* Answers every CSI set sent on cc; whether one of them was for ACTIVE. */
static bool answer_told_active(struct fixture *f, struct conn *cc) {
    LinkMsg *m;
    bool active = false;
    while ((m = fake_conn_next(cc)))
        if (m->body_case == HALO__LINK__MSG__BODY_CSI_SET) {
            active |= m->csi_set->ha_state == HALO_HA_ACTIVE;
            amf_response(f->amf, cc, 0, m->csi_set->invocation, 0, false);
        }
    return active;
}

/* The unit that holds si ACTIVE in the model, or "" if none. */
static const char *active_of(struct fixture *f, const char *si) {
    struct assignment *a = amf_si_find(amf_find_si(f->amf, si), HALO_HA_ACTIVE);
    return a && !a->removing ? a->su->name : "";
}

/*
 * Each cdb-roles group has its own cdb-alone/<sg> record: while g1's names n2 (its CDB acknowledged
 * commits alone there), g1's ACTIVE goes to no unit of n1, but g2's, which has no record, does.  The
 * record of g3, which has no cdb-roles, is ignored.  With one record for "the" cdb-roles group, the
 * first one's pinned every cdb-roles group, and a record of the second was ignored.  n2's units are out
 * of service, so that only this node's can be ACTIVE.
 */
TEST(cluster_sync_pins_the_active_of_each_cdb_roles_group_to_its_own_record) {
    struct fixture f = {.description = DESCRIPTION_CDB_GROUPS, .edit = two_cdb_roles_groups};
    fixture_start(&f);
    put(&f, KEY_CDB_ALONE, "g1", NULL, "{\"node\":\"n2\"}", 0);
    put(&f, KEY_CDB_ALONE, "g3", NULL, "{\"node\":\"n2\"}", 0);
    ASSERT_OK(cluster_start(f.cluster));
    run_until(&f, &f.loaded);
    ASSERT(cluster_is_coordinator(f.cluster));

    static const char *const units[] = {"g1a", "g2a", "g3a"};
    struct conn cc[ELEMENTSOF(units)];
    bool active[ELEMENTSOF(units)] = {false};
    for (size_t i = 0; i < ELEMENTSOF(units); i++) {
        struct comp *c = amf_find_comp(f.amf, units[i]);
        ASSERT(c && c->proc);
        cc[i] = (struct conn){.pid = c->pid};
        amf_comp_register(f.amf, &cc[i], 10 + i, units[i], NULL, false, false);
    }
    for (int round = 0; round < 5; round++) {
        run_for(&f, 50);
        for (size_t i = 0; i < ELEMENTSOF(units); i++)
            active[i] |= answer_told_active(&f, &cc[i]);
    }
    if (active[0] || *active_of(&f, "g1si"))
        CHECK_FAIL("g1's ACTIVE went to '%s' while cdb-alone/g1 names n2", active_of(&f, "g1si"));
    if (!active[1] || !streq(active_of(&f, "g2si"), "g2a"))
        CHECK_FAIL("g2's ACTIVE: '%s' (want g2a: cdb-alone/g1 is not g2's record)", active_of(&f, "g2si"));
    if (!active[2] || !streq(active_of(&f, "g3si"), "g3a"))
        CHECK_FAIL("g3's ACTIVE: '%s' (want g3a: g3 has no cdb-roles)", active_of(&f, "g3si"));

    /* Then g2's own record names n2: g2a may no longer be given ACTIVE (it keeps the one it holds: the rule
     * is who may be given it).  g1's record goes: g1a may be ACTIVE, and is. */
    put(&f, KEY_CDB_ALONE, "g2", NULL, "{\"node\":\"n2\"}", 0);
    del(&f, KEY_CDB_ALONE, "g1");
    run_for(&f, 50);
    ASSERT(!amf_su_may_be_active(amf_find_su(f.amf, "g2a")));
    ASSERT(amf_su_may_be_active(amf_find_su(f.amf, "g3a")));
    for (int round = 0; round < 5; round++) {
        run_for(&f, 50);
        for (size_t i = 0; i < ELEMENTSOF(units); i++)
            active[i] |= answer_told_active(&f, &cc[i]);
    }
    if (!active[0] || !streq(active_of(&f, "g1si"), "g1a"))
        CHECK_FAIL("g1's ACTIVE once cdb-alone/g1 went: '%s' (want g1a)", active_of(&f, "g1si"));
    ASSERT(streq(active_of(&f, "g2si"), "g2a"));
    /* A record naming the unit's own node pins nothing away from it. */
    put(&f, KEY_CDB_ALONE, "g2", NULL, "{\"node\":\"n1\"}", 0);
    run_for(&f, 50);
    ASSERT(amf_su_may_be_active(amf_find_su(f.amf, "g2a")));
    fixture_stop(&f);
    for (size_t i = 0; i < ELEMENTSOF(units); i++)
        fake_conn_done(&cc[i]);
}
