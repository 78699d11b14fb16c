/* SPDX-License-Identifier: MIT */
/*
 * Unit tests of the AMF core on its own (src/halod/amf): the library linked
 * with no io, no cluster, no events, no recovery.  Processes and HA links are
 * fakes (the supervisor and server functions the AMF calls are defined here),
 * the observers and a placement of several nodes are recording stubs.  Each
 * test drives the AMF as halod would (register, answer invocations, a process
 * exits) and checks what a user would see: who gets which CSI set, in what
 * order, what the observers and the placement are told.
 */
#include <errno.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "amf-core-fixture.h"
#include "macro.h"
#include "process-util.h"
#include "tests.h"

/* ---- tests -------------------------------------------------------------- */

TEST(amf_first_assignment_waits_for_registration) {
    struct fixture f = {0};
    fixture_start(&f, TWO_UNITS("{max: 3, window: 1m, delay: 10ms}"));
    amf_set_ready(f.amf);
    /* Only b registered: a (rank 0, preferred) is still instantiating for
     * the first time, so nobody is ACTIVE yet. */
    struct conn *b = registered(&f, 1, "b");
    ASSERT(next_msg(b) == NULL);
    struct conn *a = registered(&f, 0, "a");
    const Halo__Link__CsiSet *cs = expect_csi_set(a, HALO_HA_ACTIVE);
    ASSERT_STREQ(cs->csi, "csi");
    ASSERT_EQ(cs->transition, HALO_CSI_NEW_ASSIGN);
    ASSERT(cs->n_attrs == 1 && streq(cs->attrs[0]->name, "port") && streq(cs->attrs[0]->value, "7"));
    ASSERT(seen("comp a registered"));
    /* The observers hear of the target before the component can act on it. */
    ASSERT(seen_at("assignment si") >= 0 && seen_at("assignment si") < seen_at("comp a registered") + 3);
    answer(&f, a, cs);
    ASSERT(seen("si si"));
    const Halo__Link__CsiSet *sb = expect_csi_set(b, HALO_HA_STANDBY);
    ASSERT_STREQ(sb->active_comp, "a");
    fixture_stop(&f);
}

/* Twelve units, each of one component; spawns of 8 ms each, as a fork() of a large halod on a slow
 * machine: once 8 are spawned in a loop iteration, at most 20 ms of them, the others wait for the
 * next iterations instead of holding the loop for 96 ms (hundreds of components held it for
 * seconds: every hello timed out, and they were restarted for ever). */
TEST(amf_spawns_take_20_ms_of_a_loop_iteration_at_most) {
    char yaml[2048];
    int n = snprintf(yaml, sizeof(yaml),
                     "cluster: t\nnodes: {n1: {}}\nservice-groups:\n  g:\n    component: {command: /bin/true}\n"
                     "    service-units:\n");
    for (int i = 0; i < 12; i++)
        n += snprintf(yaml + n, sizeof(yaml) - (size_t)n, "      u%d: {node: n1}\n", i);
    snprintf(yaml + n, sizeof(yaml) - (size_t)n, "    service-instances: {si: {csis: {csi: {}}}}\n");
    struct fixture f = {0};
    unsigned before = fake_spawn_calls;
    fake_spawn_usec = 8000;
    fixture_start(&f, yaml);
    amf_set_ready(f.amf);
    unsigned at_start = fake_spawn_calls - before;
    if (at_start != 8)
        CHECK_FAIL("%u spawned at once", at_start);
    for (int i = 0; i < 200 && fake_spawn_calls - before < 12; i++)
        uv_run(&f.loop, UV_RUN_ONCE);
    ASSERT_EQ(fake_spawn_calls - before, 12);
    char name[16];
    for (int i = 0; i < 12; i++) {
        snprintf(name, sizeof(name), "u%d", i);
        struct comp *c = amf_find_comp(f.amf, name);
        ASSERT(c && c->proc && c->presence == PRESENCE_INSTANTIATING && !c->spawn_deferred);
    }
    fake_spawn_usec = 0;
    fixture_stop(&f);
}

TEST(amf_failover_promotes_the_standby_at_once) {
    struct fixture f = {0};
    fixture_start(&f, TWO_UNITS("{max: 3, window: 1m, delay: 10ms}"));
    struct conn *a, *b;
    fully_assigned(&f, &a, &b);
    struct comp *ca = amf_find_comp(f.amf, "a");
    n_events = 0;
    /* a's process dies: within this one call b is told ACTIVE. */
    proc_exit(ca, 9);
    const Halo__Link__CsiSet *cs = expect_csi_set(b, HALO_HA_ACTIVE);
    ASSERT_EQ(cs->transition, HALO_CSI_NOT_QUIESCED);
    ASSERT(seen("comp a exited") && seen("comp a failed"));
    ASSERT(seen_at("comp a failed") < seen_at("assignment si"));
    struct su *sa = amf_find_su(f.amf, "a");
    ASSERT(sa->failing);
    ASSERT_STREQ(presence_to_string(ca->presence), "RESTARTING");
    answer(&f, b, cs);
    struct si *si = amf_find_si(f.amf, "si");
    ASSERT(amf_si_find(si, HALO_HA_ACTIVE)->su == amf_find_su(f.amf, "b"));
    /* The restart comes after its delay; a comes back as STANDBY. */
    uv_run(&f.loop, UV_RUN_ONCE);
    while (!ca->proc)
        uv_run(&f.loop, UV_RUN_ONCE);
    a = registered(&f, 2, "a");
    answer(&f, a, expect_csi_set(a, HALO_HA_STANDBY));
    ASSERT(amf_si_find(si, HALO_HA_STANDBY)->su == sa);
    fixture_stop(&f);
}

static struct amf *broken_amf;
static void link_broke(struct conn *c) {
    amf_conn_closed(broken_amf, c, "send failed");
}

/*
 * A component answers a CSI set with a response that wants a reply, and the
 * reply cannot be sent (it died right after writing): the failed send closes
 * its link, which fails the unit and frees its invocations, the one being
 * answered among them.  amf_response() must not go on with it.  It did: a
 * second uv_close() of the invocation's timer aborted halod (the chaos
 * checker, seeds 404 and 505).
 */
TEST(amf_a_reply_that_breaks_the_link_does_not_free_the_invocation_twice) {
    struct fixture f = {0};
    fixture_start(&f, TWO_UNITS("{max: 3, window: 1m, delay: 10ms}"));
    amf_set_ready(f.amf);
    struct conn *a = registered(&f, 0, "a");
    const Halo__Link__CsiSet *cs = expect_csi_set(a, HALO_HA_ACTIVE);
    broken_amf = f.amf;
    a->broken = link_broke;
    amf_response(f.amf, a, 42, cs->invocation, 0, true);
    ASSERT(amf_find_su(f.amf, "a")->failing);
    ASSERT(seen("comp a failed"));
    fixture_stop(&f);
}

TEST(amf_a_failed_spawn_grows_the_restart_delay) {
    struct fixture f = {0};
    fixture_start(&f, TWO_UNITS("{max: 20, window: 1m, delay: 10ms, delay-max: 10s, stable: 1s}"));
    struct conn *a, *b;
    fully_assigned(&f, &a, &b);
    struct comp *ca = amf_find_comp(f.amf, "a");
    struct su *sa = amf_find_su(f.amf, "a");
    ca->spawned_at -= 2 * USEC_PER_SEC; /* a ran longer than `stable`: its crash restarts it after `delay` */
    proc_exit(ca, 9);
    ASSERT_EQ(sa->delay, 20 * USEC_PER_MSEC);
    /* Out of descriptors: every spawn fails, and each failure doubles the delay, as a crash does. */
    fake_spawn_error = -EMFILE;
    unsigned calls = fake_spawn_calls;
    while (fake_spawn_calls < calls + 3)
        uv_run(&f.loop, UV_RUN_ONCE);
    ASSERT_EQ(sa->delay, 160 * USEC_PER_MSEC);
    ASSERT(sa->oper != SU_DISABLED);
    fake_spawn_error = 0;
    fixture_stop(&f);
}

TEST(amf_failover_waits_for_a_process_still_alive) {
    struct fixture f = {0};
    fixture_start(&f, TWO_UNITS("{max: 3, window: 1m, delay: 10ms}"));
    struct conn *a, *b;
    fully_assigned(&f, &a, &b);
    struct comp *ca = amf_find_comp(f.amf, "a");
    struct proc *pa = ca->proc;
    /* a's link breaks, but its process still runs (SIGKILL sent, not dead
     * yet): never two ACTIVEs, so b waits... */
    amf_conn_closed(f.amf, a, "test");
    ASSERT_EQ(pa->killed, SIGKILL);
    ASSERT(next_msg(b) == NULL);
    ASSERT(amf_find_si(f.amf, "si")->fencing == amf_find_su(f.amf, "a"));
    /* ...until it is gone. */
    proc_exit(ca, 9);
    ASSERT_EQ(expect_csi_set(b, HALO_HA_ACTIVE)->transition, HALO_CSI_NOT_QUIESCED);
    fixture_stop(&f);
}

TEST(amf_failover_of_a_dead_process_does_not_wait_for_its_exit) {
    struct fixture f = {0};
    fixture_start(&f, TWO_UNITS("{max: 3, window: 1m, delay: 10ms}"));
    struct conn *a, *b;
    fully_assigned(&f, &a, &b);
    struct comp *ca = amf_find_comp(f.amf, "a");
    /* The usual crash: the link breaks because the process died; its exit
     * is not told yet, but it has ended.  b is ACTIVE within the same call. */
    ca->proc->dead = true;
    amf_conn_closed(f.amf, a, "test");
    expect_csi_set(b, HALO_HA_ACTIVE);
    ASSERT(amf_find_si(f.amf, "si")->fencing == NULL);
    /* Its exit comes after: the unit restarts as usual. */
    proc_exit(ca, 9);
    ASSERT(uv_is_active((uv_handle_t *)&amf_find_su(f.amf, "a")->restart_timer));
    fixture_stop(&f);
}

TEST(amf_switchover_quiesces_then_hands_over) {
    struct fixture f = {0};
    fixture_start(&f, TWO_UNITS("{max: 3, window: 1m, delay: 10ms}"));
    struct conn *a, *b;
    fully_assigned(&f, &a, &b);
    struct amf_waiter w = {.done = waiter_done};
    ASSERT_EQ(amf_si_switchover(f.amf, "nope", &w), -HALO_EUNKNOWN);
    ASSERT_EQ(amf_si_switchover(f.amf, "si", &w), 1);
    ASSERT_EQ(amf_si_switchover(f.amf, "si", &w), -HALO_EBADSTATE); /* one at a time */
    const Halo__Link__CsiSet *q = expect_csi_set(a, HALO_HA_QUIESCING);
    /* Answered but not complete: nothing moves yet. */
    amf_response(f.amf, a, 0, q->invocation, 0, false);
    ASSERT(next_msg(b) == NULL);
    amf_response(f.amf, a, 0, q->invocation, 0, true);
    const Halo__Link__CsiSet *act = expect_csi_set(b, HALO_HA_ACTIVE);
    ASSERT_EQ(act->transition, HALO_CSI_QUIESCED);
    ASSERT(!seen("waiter ok"));
    /* Done once the new ACTIVE confirmed; the old one is made STANDBY after. */
    answer(&f, b, act);
    ASSERT(seen("waiter ok"));
    answer(&f, a, expect_csi_set(a, HALO_HA_STANDBY));
    struct si *si = amf_find_si(f.amf, "si");
    ASSERT(amf_si_find(si, HALO_HA_ACTIVE)->su == amf_find_su(f.amf, "b"));
    ASSERT(!si->switchover);
    fixture_stop(&f);
}

TEST(amf_restart_limit_disables_the_unit) {
    struct fixture f = {0};
    fixture_start(&f, TWO_UNITS("{max: 1, window: 1m, delay: 1ms}"));
    struct conn *a, *b;
    fully_assigned(&f, &a, &b);
    struct comp *cb = amf_find_comp(f.amf, "b");
    struct su *sb = amf_find_su(f.amf, "b");
    /* First failure: restarted. */
    proc_exit(cb, 1);
    ASSERT(sb->oper == SU_ENABLED && sb->failing);
    while (!cb->proc)
        uv_run(&f.loop, UV_RUN_ONCE);
    b = registered(&f, 2, "b");
    answer(&f, b, expect_csi_set(b, HALO_HA_STANDBY));
    /* Second within the window: past max 1, disabled and not restarted. */
    n_events = 0;
    proc_exit(cb, 1);
    ASSERT(sb->oper == SU_DISABLED);
    ASSERT(seen("su b admin"));
    ASSERT_STREQ(presence_to_string(cb->presence), "FAILED");
    ASSERT(!uv_is_active((uv_handle_t *)&sb->restart_timer));
    /* The operator repairs it: started again. */
    ASSERT_EQ(amf_su_repair(f.amf, "a"), -HALO_EBADSTATE);
    ASSERT_EQ(amf_su_repair(f.amf, "b"), 0);
    ASSERT(cb->proc && sb->oper == SU_ENABLED);
    fixture_stop(&f);
}

TEST(amf_pg_tracking_tells_the_changes) {
    struct fixture f = {0};
    fixture_start(&f, TWO_UNITS("{max: 3, window: 1m, delay: 10ms}"));
    struct conn *a, *b;
    fully_assigned(&f, &a, &b);
    struct conn *watcher = &f.conns[3];
    amf_pg_track(f.amf, watcher, 5, "csi", HALO_TRACK_CURRENT | HALO_TRACK_CHANGES_ONLY);
    ASSERT(watcher->n_replies == 1 && watcher->reply_err[0] == 0);
    LinkMsg *m = next_msg(watcher);
    ASSERT(m && m->body_case == HALO__LINK__MSG__BODY_PG_TRACK_NOTIFY);
    ASSERT_EQ(m->pg_track_notify->n_members, 2);
    /* a fails: a REMOVED (and b still STANDBY, unchanged: not told); then b ACTIVE. */
    proc_exit(amf_find_comp(f.amf, "a"), 9);
    m = next_msg(watcher);
    ASSERT(m && m->pg_track_notify->n_members == 1);
    ASSERT_STREQ(m->pg_track_notify->members[0]->comp, "a");
    ASSERT_EQ(m->pg_track_notify->members[0]->change, HALO_PG_REMOVED);
    answer(&f, b, expect_csi_set(b, HALO_HA_ACTIVE));
    m = next_msg(watcher);
    ASSERT(m && m->pg_track_notify->n_members == 1);
    ASSERT_EQ(m->pg_track_notify->members[0]->change, HALO_PG_STATE_CHANGED);
    ASSERT_EQ(m->pg_track_notify->members[0]->ha_state, HALO_HA_ACTIVE);
    amf_pg_track_stop(f.amf, watcher, 6, "csi");
    amf_pg_track_stop(f.amf, watcher, 7, "csi");
    ASSERT(watcher->reply_err[1] == 0 && watcher->reply_err[2] == -ENOENT);
    fixture_stop(&f);
}

TEST(amf_register_refused_when_not_ready_or_lying) {
    struct fixture f = {0};
    fixture_start(&f, TWO_UNITS("{max: 3, window: 1m, delay: 10ms}"));
    struct conn *c = &f.conns[0];
    amf_comp_register(f.amf, c, 1, "a", NULL, false, false);
    ASSERT_EQ(c->reply_err[0], -HALO_ETRYAGAIN); /* the previous state is not read back yet */
    amf_set_ready(f.amf);
    c->pid = 4242; /* not the process halod started for a */
    amf_comp_register(f.amf, c, 2, "a", NULL, false, false);
    ASSERT_EQ(c->reply_err[1], -EPERM);
    amf_comp_register(f.amf, c, 3, "zz", NULL, false, false);
    ASSERT_EQ(c->reply_err[2], -HALO_EUNKNOWN);
    c->pid = amf_find_comp(f.amf, "a")->pid;
    amf_comp_register(f.amf, c, 4, "a", NULL, true, false);
    ASSERT_EQ(c->reply_err[3], -HALO_EBADSTATE); /* resume, but not adopted */
    amf_comp_register(f.amf, c, 5, "a", "proxy", false, false);
    ASSERT_EQ(c->reply_err[4], -HALO_EBADSTATE); /* a proxy, for a component that is not proxied */
    ASSERT(!seen("comp a registered"));
    fixture_stop(&f);
}

/* a on this node (n1), b on another (n2). */
#define TWO_NODES                                         \
    "cluster: t\n"                                        \
    "nodes: {n1: {}, n2: {}}\n"                           \
    "service-groups:\n"                                   \
    "  g:\n"                                              \
    "    component: {command: /bin/true}\n"               \
    "    service-units: {a: {node: n1}, b: {node: n2}}\n" \
    "    service-instances: {si: {csis: {csi: {}}}}\n"

/* Two nodes' units, this node's 'a' registered; this node does not decide (yet). */
static struct conn *two_nodes_follower(struct fixture *f) {
    fixture_start(f, TWO_NODES);
    amf_set_placement(f->amf, &remote_placement, NULL);
    amf_set_deciding(f->amf, false);
    amf_set_ready(f->amf);
    return registered(f, 0, "a");
}

TEST(amf_placement_of_several_nodes) {
    struct fixture f = {0};
    struct conn *a = two_nodes_follower(&f);
    ASSERT(!seen("target a ACTIVE")); /* not the coordinator: it decides nothing */
    /* b's node says b is in service; this node becomes the coordinator. */
    struct su *sb = amf_find_su(f.amf, "b");
    struct su_remote r = {.known = true, .in_service = true};
    amf_su_remote(sb, &r, false);
    amf_set_deciding(f.amf, true);
    ASSERT(seen("target a ACTIVE"));
    answer(&f, a, expect_csi_set(a, HALO_HA_ACTIVE));
    ASSERT(seen("confirmed a ACTIVE"));
    /* b is another node's: published, then pending until its node confirms. */
    ASSERT(seen("target b STANDBY"));
    struct si *si = amf_find_si(f.amf, "si");
    struct assignment *as = amf_si_find_su(si, sb);
    ASSERT(as && as->pending == 1 && !as->confirmed);
    amf_confirmed(si, sb, HALO_HA_STANDBY, as->gen + 1); /* a stale or foreign generation: ignored */
    ASSERT(as->pending == 1);
    amf_confirmed(si, sb, HALO_HA_STANDBY, as->gen);
    ASSERT(as->confirmed && as->state == HALO_HA_STANDBY && as->pending == 0);
    /* Another node's unit is locked on its node, not here. */
    struct amf_waiter w = {.done = waiter_done};
    ASSERT_EQ(amf_su_lock(f.amf, "b", &w), -HALO_EBADSTATE);
    ASSERT_STREQ(amf_op_where(f.amf, AMF_OP_LOCK, "b"), "n2");
    ASSERT(amf_op_where(f.amf, AMF_OP_LOCK, "a") == NULL);
    /* b's node goes: its assignment is dropped and forgotten. */
    n_events = 0;
    amf_su_remote(sb, NULL, true);
    ASSERT(seen("forget si b"));
    ASSERT(amf_si_find_su(si, sb) == NULL);
    fixture_stop(&f);
}

/* This node follows; another node's unit b (lease 7, in service, as r says) holds si ACTIVE, confirmed. */
static struct conn *follower_with_b_active(struct fixture *f, struct su **sb, struct si **si, struct su_remote *r) {
    struct conn *a = two_nodes_follower(f);
    *sb = amf_find_su(f->amf, "b");
    *si = amf_find_si(f->amf, "si");
    *r = (struct su_remote){.known = true, .in_service = true, .lease = 7};
    amf_su_remote(*sb, r, false);
    amf_target(*si, *sb, HALO_HA_ACTIVE, 5);
    amf_confirmed(*si, *sb, HALO_HA_ACTIVE, 5);
    return a;
}

/* Chaos seed 202: a node's unit held ACTIVE, its node was declared dead (a
 * proven fence), and this node then read the targets again (after its own
 * fence) and found the dead unit's ACTIVE target, which nobody deletes.
 * Mirrored, it came back as an ACTIVE on a unit gone: taking over, this node
 * quiesced it (a step nobody can confirm) instead of assigning ACTIVE here. */
TEST(amf_a_target_for_a_unit_gone_with_its_node_is_void) {
    struct fixture f = {0};
    struct su *sb;
    struct si *si;
    struct su_remote r;
    struct conn *a = follower_with_b_active(&f, &sb, &si, &r);
    ASSERT(amf_si_find(si, HALO_HA_ACTIVE) && amf_si_find(si, HALO_HA_ACTIVE)->su == sb);
    amf_su_remote(sb, NULL, true); /* gone, fenced */
    ASSERT(amf_si_find_su(si, sb) == NULL);
    amf_target(si, sb, HALO_HA_ACTIVE, 5); /* the targets read again */
    ASSERT(amf_si_find_su(si, sb) == NULL);
    n_events = 0;
    amf_set_deciding(f.amf, true);
    ASSERT(!seen("target b QUIESCING"));
    ASSERT(seen("target a ACTIVE"));
    answer(&f, a, expect_csi_set(a, HALO_HA_ACTIVE));
    ASSERT(seen("confirmed a ACTIVE"));
    fixture_stop(&f);
}

/*
 * A remote ACTIVE unit goes out of service while its processes may still run
 * (its node restarted it before it had rejoined: never published failing or
 * fenced), then comes back in service under the same lease.  Its node
 * restarts a unit only once every process of it is gone: it counts as fenced
 * then, and the SI gets an ACTIVE again.  It waited for a fence for good
 * (chaos seed 404 --cut: g2 without ACTIVE, its STANDBY healthy, 60 s).
 */
TEST(amf_a_remote_unit_back_in_service_counts_as_fenced) {
    struct fixture f = {0};
    struct su *sb;
    struct si *si;
    struct su_remote r;
    struct conn *a = follower_with_b_active(&f, &sb, &si, &r);
    amf_set_deciding(f.amf, true);
    answer(&f, a, expect_csi_set(a, HALO_HA_STANDBY));
    n_events = 0;
    r.in_service = false; /* its process died; a new one is starting; nothing says fenced */
    amf_su_remote(sb, &r, false);
    ASSERT(!seen("target a ACTIVE")); /* the old process may still run */
    r.in_service = true;              /* registered again: the old one is gone */
    amf_su_remote(sb, &r, false);
    ASSERT(seen("target a ACTIVE") || seen("target b ACTIVE"));
    fixture_stop(&f);
}

static void count_sg(void *u, struct sg *sg) {
    (*(unsigned *)u)++;
}

/* What another node published of its unit, built the way a decoder fills a
 * stack variable: padding bytes hold whatever was there (fill). */
static struct su_remote remote_of(unsigned char fill, bool in_service) {
    struct su_remote r;
    memset(&r, fill, sizeof(r));
    r.known = true;
    r.in_service = in_service;
    r.failing = r.fenced = r.probing = false;
    r.lease = 7;
    r.admin = SU_UNLOCKED;
    r.stop_ms = 0;
    return r;
}

/* The same report again is nothing new, whatever its padding: the service
 * group is not evaluated again (nor, in cluster sync, republished).  Where
 * the compiler copies the struct field by field, the padding compared is
 * uninitialised instead: valgrind reports that compare. */
TEST(amf_a_remote_unit_reported_again_unchanged_is_no_change) {
    struct fixture f = {0};
    fixture_start(&f, TWO_NODES);
    amf_set_placement(f.amf, &remote_placement, NULL);
    unsigned evaluated = 0;
    static const struct amf_observer sg_observer = {.sg_changed = count_sg};
    ASSERT_OK(amf_observe(f.amf, &sg_observer, &evaluated));
    struct su *sb = amf_find_su(f.amf, "b");
    struct su_remote r = remote_of(0xaa, true);
    amf_su_remote(sb, &r, false);
    ASSERT_EQ(evaluated, 1);
    r = remote_of(0x55, true);
    amf_su_remote(sb, &r, false);
    ASSERT_EQ(evaluated, 1);
    r = remote_of(0x55, false); /* a change: evaluated */
    amf_su_remote(sb, &r, false);
    ASSERT_EQ(evaluated, 2);
    amf_unobserve(f.amf, &sg_observer, &evaluated);
    fixture_stop(&f);
}

TEST(amf_observers_come_and_go) {
    struct fixture f = {0};
    fixture_start(&f, TWO_UNITS("{max: 3, window: 1m, delay: 10ms}"));
    for (size_t i = 1; i < AMF_OBSERVERS_MAX; i++)
        ASSERT_OK(amf_observe(f.amf, &observer, (void *)i));
    ASSERT_EQ(amf_observe(f.amf, &observer, (void *)99), -ENOSPC);
    for (size_t i = 1; i < AMF_OBSERVERS_MAX; i++)
        amf_unobserve(f.amf, &observer, (void *)i);
    amf_set_ready(f.amf);
    /* One observer left: each event recorded once. */
    size_t spawned = 0;
    for (size_t i = 0; i < n_events; i++)
        spawned += streq(events[i], "comp a spawned");
    ASSERT_EQ(spawned, 1);
    fixture_stop(&f);
}

/* ---- non-SA-aware components ---------------------------------------------- */

/* Two units of an unmodified program on this node; extra: more component settings. */
/* instantiate: the timeout of a pidfile command; long enough for valgrind on a loaded machine, but for the test of
 * the timeout itself. */
static void nsa_start_instantiate(struct fixture *f, const char *extra, const char *instantiate) {
    char yaml[2048];
    snprintf(yaml, sizeof(yaml),
             "cluster: t\n"
             "nodes: {n1: {}, n2: {}}\n"
             "service-groups:\n"
             "  g:\n"
             "    component:\n"
             "      type: non-sa-aware\n"
             "      command: /bin/sleep\n"
             "      args: [\"600\"]\n"
             "      env: {MY_VAR: x}\n"
             "      restart: {max: 3, window: 1m, delay: 1ms}\n"
             "      timeouts: {terminate: 50ms, instantiate: %s}\n"
             "%s"
             "    service-units: {a: {node: n1}, b: {node: n1}}\n"
             "    service-instances:\n"
             "      si: {csis: {web-csi: {attributes: {doc-root: /srv, port: \"80\"}}}}\n",
             instantiate, extra);
    fixture_start(f, yaml);
}

static void nsa_start(struct fixture *f, const char *extra) {
    nsa_start_instantiate(f, extra, "5s");
}

/* Turns of the loop until cond holds (a step's answer comes from the next turn). */
#define RUN_UNTIL(f, cond)                                            \
    do {                                                              \
        for (int _i = 0; _i < 1000 && !(cond); _i++)                  \
            uv_run(&(f)->loop, UV_RUN_ONCE);                          \
        if (!(cond))                                                  \
            CHECK_FAIL("the loop ran 1000 times and not: %s", #cond); \
    } while (0)

static bool confirmed_as(struct fixture *f, const char *su, halo_ha_state state) {
    struct assignment *a = amf_si_find(amf_find_si(f->amf, "si"), state);
    return a && a->confirmed && a->state == state && !a->pending && a->su == amf_find_su(f->amf, su);
}

/* a ACTIVE (its process running), b STANDBY (nothing running), both confirmed. */
static void nsa_assigned(struct fixture *f) {
    amf_set_ready(f->amf);
    RUN_UNTIL(f, confirmed_as(f, "a", HALO_HA_ACTIVE) && confirmed_as(f, "b", HALO_HA_STANDBY));
}

TEST(amf_non_sa_aware_active_runs_the_command_and_standby_nothing) {
    struct fixture f = {0};
    nsa_start(&f, "");
    struct comp *ca = amf_find_comp(f.amf, "a"), *cb = amf_find_comp(f.amf, "b");
    unsigned calls = fake_spawn_calls;
    amf_set_ready(f.amf);
    /* Only the ACTIVE runs, with its CSI in its environment. */
    ASSERT(ca->proc && !cb->proc);
    ASSERT_EQ(fake_spawn_calls, calls + 1);
    ASSERT_STREQ(fake_spawn_argv[0], "/bin/sleep");
    ASSERT_STREQ(fake_spawn_argv[1], "600");
    ASSERT_STREQ(fake_spawn_getenv("HALO_HA_STATE"), "ACTIVE");
    ASSERT_STREQ(fake_spawn_getenv("HALO_CSI_WEB_CSI_DOC_ROOT"), "/srv");
    ASSERT_STREQ(fake_spawn_getenv("HALO_CSI_WEB_CSI_PORT"), "80");
    ASSERT_STREQ(fake_spawn_getenv("HALO_COMPONENT"), "a");
    ASSERT_STREQ(fake_spawn_getenv("HALO_NODE"), "n1");
    ASSERT_STREQ(fake_spawn_getenv("MY_VAR"), "x");
    ASSERT(!fake_spawn_getenv("HALO_SOCKET") && !fake_spawn_getenv("HALO_PID"));
    /* Confirmed from the next turn of the loop, not inside the call that asked. */
    ASSERT(!confirmed_as(&f, "a", HALO_HA_ACTIVE));
    RUN_UNTIL(&f, confirmed_as(&f, "a", HALO_HA_ACTIVE) && confirmed_as(&f, "b", HALO_HA_STANDBY));
    ASSERT(!cb->proc);
    ASSERT_EQ(fake_spawn_calls, calls + 1);
    ASSERT_STREQ(presence_to_string(ca->presence), "INSTANTIATED");
    ASSERT_STREQ(presence_to_string(cb->presence), "UNINSTANTIATED");
    ASSERT(seen("comp a spawned") && !seen("comp b spawned"));
    /* Neither registers, and neither may. */
    ASSERT(amf_su_in_service(amf_find_su(f.amf, "b")));
    struct conn *c = &f.conns[0];
    c->pid = ca->pid;
    amf_comp_register(f.amf, c, 1, "a", NULL, false, false);
    ASSERT_EQ(c->reply_err[0], -HALO_EBADSTATE);
    fixture_stop(&f);
}

/* a ACTIVE and b STANDBY, then a locked: its process is being stopped. */
static void nsa_lock_a(struct fixture *f, const char *extra, struct amf_waiter *w) {
    nsa_start(f, extra);
    nsa_assigned(f);
    ASSERT_EQ(amf_su_lock(f->amf, "a", w), 1);
}

TEST(amf_non_sa_aware_switchover_stops_before_it_starts) {
    struct fixture f = {0};
    nsa_start(&f, "");
    nsa_assigned(&f);
    struct comp *ca = amf_find_comp(f.amf, "a"), *cb = amf_find_comp(f.amf, "b");
    struct proc *pa = ca->proc;
    unsigned calls = fake_spawn_calls;
    struct amf_waiter w = {.done = waiter_done};
    ASSERT_EQ(amf_si_switchover(f.amf, "si", &w), 1);
    /* QUIESCING stops the process: SIGTERM to its group, confirmed only once it is gone. */
    ASSERT_EQ(pa->killed, SIGTERM);
    ASSERT_STREQ(presence_to_string(ca->presence), "TERMINATING");
    for (int i = 0; i < 5; i++)
        uv_run(&f.loop, UV_RUN_NOWAIT);
    ASSERT(!amf_si_find(amf_find_si(f.amf, "si"), HALO_HA_QUIESCED));
    ASSERT(!cb->proc && fake_spawn_calls == calls);
    proc_exit(ca, SIGTERM);
    RUN_UNTIL(&f, cb->proc != NULL);
    ASSERT(!ca->proc);
    RUN_UNTIL(&f, seen("waiter ok"));
    RUN_UNTIL(&f, confirmed_as(&f, "b", HALO_HA_ACTIVE) && confirmed_as(&f, "a", HALO_HA_STANDBY));
    ASSERT(!ca->proc);
    ASSERT(!seen("comp a failed"));
    fixture_stop(&f);
}

TEST(amf_non_sa_aware_exit_while_active_is_a_failure_cleaned_up_before_failover) {
    struct fixture f = {0};
    nsa_start(&f, "      cleanup: [/bin/echo, cleaned]\n");
    nsa_assigned(&f);
    struct comp *ca = amf_find_comp(f.amf, "a"), *cb = amf_find_comp(f.amf, "b");
    struct su *sa = amf_find_su(f.amf, "a");
    pid_t pid = ca->pid;
    char want[32];
    /* Even a clean exit: nobody stopped it. */
    proc_exit(ca, 0);
    ASSERT(sa->failing && seen("comp a failed"));
    ASSERT(ca->helper && ca->helper_cleanup);
    ASSERT_STREQ(fake_spawn_argv[0], "/bin/echo");
    ASSERT_STREQ(fake_spawn_argv[1], "cleaned");
    snprintf(want, sizeof(want), "%d", (int)pid);
    ASSERT_STREQ(fake_spawn_getenv("HALO_PID"), want);
    ASSERT(!fake_spawn_getenv("HALO_HA_STATE"));
    ASSERT_STREQ(fake_spawn_getenv("HALO_CSI_WEB_CSI_PORT"), "80");
    /* The standby takes the work only once what a held is released. */
    ASSERT(!cb->proc);
    ASSERT(amf_find_si(f.amf, "si")->fencing == sa);
    fake_proc_exit(ca->helper, 0);
    ASSERT(cb->proc);
    RUN_UNTIL(&f, confirmed_as(&f, "b", HALO_HA_ACTIVE));
    /* a restarts as a STANDBY: nothing runs. */
    RUN_UNTIL(&f, confirmed_as(&f, "a", HALO_HA_STANDBY));
    ASSERT(!ca->proc && !ca->helper);
    fixture_stop(&f);
}

TEST(amf_non_sa_aware_terminate_command_then_sigkill_then_cleanup) {
    struct fixture f = {0};
    struct amf_waiter w = {.done = waiter_done};
    nsa_lock_a(&f, "      terminate: [/bin/echo, stop]\n      cleanup: [/bin/echo, clean]\n", &w);
    struct comp *ca = amf_find_comp(f.amf, "a"), *cb = amf_find_comp(f.amf, "b");
    struct proc *pa = ca->proc;
    /* The terminate command, instead of SIGTERM. */
    ASSERT(ca->helper && !ca->helper_cleanup);
    ASSERT_STREQ(fake_spawn_argv[1], "stop");
    ASSERT(fake_spawn_getenv("HALO_PID"));
    ASSERT_EQ(pa->killed, 0);
    /* It fails (exit status 1): SIGKILL at once. */
    fake_proc_exit(ca->helper, 1 << 8);
    ASSERT_EQ(pa->killed, SIGKILL);
    /* Killed: the cleanup runs before the step is done. */
    proc_exit(ca, SIGKILL);
    ASSERT(ca->helper && ca->helper_cleanup);
    ASSERT_STREQ(fake_spawn_argv[1], "clean");
    for (int i = 0; i < 5; i++)
        uv_run(&f.loop, UV_RUN_NOWAIT);
    ASSERT(!cb->proc);
    fake_proc_exit(ca->helper, 0);
    RUN_UNTIL(&f, confirmed_as(&f, "b", HALO_HA_ACTIVE));
    RUN_UNTIL(&f, seen("waiter ok"));
    ASSERT(!seen("comp a failed"));
    fixture_stop(&f);
}

TEST(amf_non_sa_aware_sigterm_then_sigkill_after_the_terminate_timeout) {
    struct fixture f = {0};
    struct amf_waiter w = {.done = waiter_done};
    nsa_lock_a(&f, "", &w);
    struct comp *ca = amf_find_comp(f.amf, "a"), *cb = amf_find_comp(f.amf, "b");
    struct proc *pa = ca->proc;
    ASSERT_EQ(pa->killed, SIGTERM);
    RUN_UNTIL(&f, pa->killed == SIGKILL); /* timeouts.terminate: 50ms */
    ASSERT(!cb->proc);
    proc_exit(ca, SIGKILL);
    RUN_UNTIL(&f, confirmed_as(&f, "b", HALO_HA_ACTIVE));
    fixture_stop(&f);
}

TEST(amf_non_sa_aware_never_two_copies) {
    struct fixture f = {0};
    nsa_start(&f, "");
    amf_set_placement(f.amf, &remote_placement, NULL);
    amf_set_deciding(f.amf, false);
    amf_set_ready(f.amf);
    struct si *si = amf_find_si(f.amf, "si");
    struct su *sa = amf_find_su(f.amf, "a");
    struct comp *ca = amf_find_comp(f.amf, "a");
    /* The coordinator's targets for a: ACTIVE, removed, ACTIVE again, faster than a stops. */
    amf_target(si, sa, HALO_HA_ACTIVE, 1);
    ASSERT(ca->proc);
    pid_t first = ca->pid;
    struct proc *p1 = ca->proc;
    amf_target(si, sa, 0, 2);
    ASSERT_EQ(p1->killed, SIGTERM);
    unsigned calls = fake_spawn_calls;
    amf_target(si, sa, HALO_HA_ACTIVE, 3);
    for (int i = 0; i < 5; i++)
        uv_run(&f.loop, UV_RUN_NOWAIT);
    ASSERT_EQ(fake_spawn_calls, calls);
    ASSERT_EQ(ca->pid, first);
    /* Started once the first is gone. */
    proc_exit(ca, SIGTERM);
    ASSERT_EQ(fake_spawn_calls, calls + 1);
    ASSERT(ca->proc && ca->pid != first);
    RUN_UNTIL(&f, seen("confirmed a ACTIVE"));
    fixture_stop(&f);
}

TEST(amf_non_sa_aware_pidfile_daemon) {
    struct fixture f = {0};
    char pidfile[64], extra[128];
    snprintf(pidfile, sizeof(pidfile), "/tmp/test-amf-nsa-%d.pid", (int)getpid());
    snprintf(extra, sizeof(extra), "      pidfile: %s\n", pidfile);
    nsa_start(&f, extra);
    FILE *fp = fopen(pidfile, "w");
    ASSERT(fp);
    fputs("12345\n", fp); /* stale: removed before the command starts */
    fclose(fp);
    fake_adopt_ok = true;
    amf_set_ready(f.amf);
    struct comp *ca = amf_find_comp(f.amf, "a"), *cb = amf_find_comp(f.amf, "b");
    struct su *sa = amf_find_su(f.amf, "a"), *sb = amf_find_su(f.amf, "b");
    ASSERT(ca->proc && ca->starting);
    ASSERT(access(pidfile, F_OK) < 0 && errno == ENOENT);
    ASSERT_STREQ(presence_to_string(ca->presence), "INSTANTIATING");
    for (int i = 0; i < 5; i++)
        uv_run(&f.loop, UV_RUN_NOWAIT);
    ASSERT(!confirmed_as(&f, "a", HALO_HA_ACTIVE));
    /* The command forked its daemon, wrote its pid and exited 0: the daemon is a's process. */
    fp = fopen(pidfile, "w");
    ASSERT(fp);
    fputs("4242\n", fp);
    fclose(fp);
    proc_exit(ca, 0);
    ASSERT_EQ(ca->pid, 4242);
    ASSERT(ca->proc && !ca->starting);
    RUN_UNTIL(&f, confirmed_as(&f, "a", HALO_HA_ACTIVE));
    /* The daemon dies: a failure; b's command exits 0 and leaves no pid: a failure too. */
    proc_exit(ca, PROC_STATUS_UNKNOWN);
    ASSERT(sa->failing);
    ASSERT(cb->proc && cb->starting);
    proc_exit(cb, 0);
    ASSERT(sb->failing);
    ASSERT(strstr(sb->last_failure, "left no running process in its pidfile"));
    fake_adopt_ok = false;
    unlink(pidfile);
    fixture_stop(&f);
}

TEST(amf_non_sa_aware_adopted_keeps_its_active) {
    struct fixture f = {0};
    nsa_start(&f, "");
    fake_adopt_ok = true;
    struct comp *ca = amf_find_comp(f.amf, "a"), *cb = amf_find_comp(f.amf, "b");
    struct su *sa = amf_find_su(f.amf, "a"), *sb = amf_find_su(f.amf, "b");
    struct si *si = amf_find_si(f.amf, "si");
    /* A previous halod left a running ACTIVE (this test's own process stands in for it),
     * and a process of b whose unit held nothing. */
    amf_comp_restore(ca, getpid(), process_start_time(getpid()));
    amf_comp_restore(cb, getppid(), process_start_time(getppid()));
    amf_si_restore_assignment(si, sa, HALO_HA_ACTIVE);
    unsigned calls = fake_spawn_calls;
    amf_set_ready(f.amf);
    /* a is ours at once, with its ACTIVE: it never registers, nobody waits for it. */
    ASSERT(!sa->adopting && seen("su a adopted"));
    ASSERT_EQ(ca->pid, getpid());
    ASSERT(confirmed_as(&f, "a", HALO_HA_ACTIVE));
    /* b's stray process is stopped as a failure. */
    ASSERT(sb->failing);
    ASSERT_EQ(cb->proc->killed, SIGKILL);
    proc_exit(cb, SIGKILL);
    RUN_UNTIL(&f, confirmed_as(&f, "b", HALO_HA_STANDBY));
    ASSERT_EQ(fake_spawn_calls, calls);
    ASSERT_EQ(ca->pid, getpid());
    fake_adopt_ok = false;
    fixture_stop(&f);
}

/* The process exits on its own while its terminate command still runs, and that command hangs:
 * the terminate timeout still bounds it (the step waits for it, never for ever). */
TEST(amf_non_sa_aware_a_hung_terminate_command_is_killed) {
    struct fixture f = {0};
    struct amf_waiter w = {.done = waiter_done};
    nsa_lock_a(&f, "      terminate: [/bin/echo, stop]\n", &w);
    struct comp *ca = amf_find_comp(f.amf, "a"), *cb = amf_find_comp(f.amf, "b");
    struct proc *helper = ca->helper;
    ASSERT(helper && !ca->helper_cleanup);
    proc_exit(ca, SIGTERM);
    RUN_UNTIL(&f, helper->killed == SIGKILL); /* timeouts.terminate: 50ms */
    ASSERT(!cb->proc);
    fake_proc_exit(helper, SIGKILL);
    RUN_UNTIL(&f, confirmed_as(&f, "b", HALO_HA_ACTIVE));
    ASSERT(!seen("comp a failed"));
    fixture_stop(&f);
}

/* Neither the process nor its terminate command ends: both get SIGKILL after the terminate
 * timeout, and the cleanup runs once both are gone, before the other unit starts. */
TEST(amf_non_sa_aware_killed_with_its_terminate_command_is_cleaned_up) {
    struct fixture f = {0};
    struct amf_waiter w = {.done = waiter_done};
    nsa_lock_a(&f, "      terminate: [/bin/echo, stop]\n      cleanup: [/bin/echo, clean]\n", &w);
    struct comp *ca = amf_find_comp(f.amf, "a"), *cb = amf_find_comp(f.amf, "b");
    struct proc *pa = ca->proc;
    struct proc *helper = ca->helper;
    RUN_UNTIL(&f, pa->killed == SIGKILL && helper->killed == SIGKILL);
    proc_exit(ca, SIGKILL);
    ASSERT(ca->helper == helper); /* the cleanup waits for it */
    fake_proc_exit(helper, SIGKILL);
    ASSERT(ca->helper && ca->helper_cleanup);
    ASSERT_STREQ(fake_spawn_argv[1], "clean");
    ASSERT(!cb->proc);
    fake_proc_exit(ca->helper, 0);
    RUN_UNTIL(&f, confirmed_as(&f, "b", HALO_HA_ACTIVE));
    ASSERT(!seen("comp a failed"));
    fixture_stop(&f);
}

/* A command that cannot be started is a failed CSI set: a failure of the component, and the
 * other unit is tried. */
TEST(amf_non_sa_aware_a_failed_start_is_a_failure) {
    struct fixture f = {0};
    nsa_start(&f, "");
    fake_spawn_error = -EMFILE;
    amf_set_ready(f.amf);
    fake_spawn_error = 0;
    struct su *sa = amf_find_su(f.amf, "a");
    ASSERT(sa->failing && seen("comp a failed"));
    ASSERT(strstr(sa->last_failure, "component 'a' could not be started"));
    RUN_UNTIL(&f, confirmed_as(&f, "b", HALO_HA_ACTIVE));
    ASSERT(amf_find_comp(f.amf, "b")->proc);
    fixture_stop(&f);
}

/* The command of a pidfile daemon must exit within timeouts.instantiate. */
TEST(amf_non_sa_aware_a_pidfile_command_that_does_not_exit_fails) {
    struct fixture f = {0};
    char extra[128];
    snprintf(extra, sizeof(extra), "      pidfile: /tmp/test-amf-nsa-%d.pid\n", (int)getpid());
    nsa_start_instantiate(&f, extra, "200ms");
    amf_set_ready(f.amf);
    struct comp *ca = amf_find_comp(f.amf, "a");
    struct proc *pa = ca->proc;
    ASSERT(pa && ca->starting);
    RUN_UNTIL(&f, amf_find_su(f.amf, "a")->failing); /* 200ms */
    ASSERT_EQ(pa->killed, SIGKILL);
    ASSERT(strstr(amf_find_su(f.amf, "a")->last_failure, "did not start within its instantiate timeout (200ms)"));
    fixture_stop(&f);
}
