/* SPDX-License-Identifier: MIT */
/*
 * Unit tests of the AMF's recovery ladder (amf-ladder.c) on the AMF core with
 * fake processes and HA links: which rung a failure takes (component restart,
 * SU restart, SU failover, node failover), the counts and their probation,
 * the recommended recovery honoured, and the description's health checks.
 * Each test checks what a user would see: whose process is killed, who gets
 * which CSI set, where ACTIVE is.
 */
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "amf-core-fixture.h"

struct fx {
    uv_loop_t loop;
    struct config *cfg;
    struct amf *amf;
    char path[AMF_CORE_PATH_MAX];
    struct conn conns[16];
    size_t n_conns;
};

/* The reason of the last FAILED the observers were told (the broadcast queue's note). */
static char failed_reason[1024];
static void obs_failed(void *u, struct comp *c, enum amf_comp_event ev, const char *reason) {
    if (ev == AMF_COMP_FAILED)
        snprintf(failed_reason, sizeof(failed_reason), "%s %s", c->name, reason);
}
static const struct amf_observer failed_observer = {.comp_event = obs_failed};

static void fx_start(struct fx *f, const char *yaml) {
    amf_core_start(&f->loop, yaml, f->path, &f->cfg, &f->amf);
    ASSERT_OK(amf_observe(f->amf, &failed_observer, NULL));
    amf_set_ready(f->amf); /* the fixture's tick bounds each wait's poll (amf-core-fixture.c) */
}

static void fx_stop(struct fx *f) {
    amf_core_stop(&f->loop, f->path, &f->cfg, &f->amf);
    for (size_t i = 0; i < ELEMENTSOF(f->conns); i++)
        fake_conn_done(&f->conns[i]);
    fake_io_done();
}

static struct comp *comp(struct fx *f, const char *name) {
    struct comp *c = amf_find_comp(f->amf, name);
    ASSERT(c);
    return c;
}

/* The component's current process registers on a new link. */
static struct conn *reg(struct fx *f, const char *name) {
    struct comp *c = comp(f, name);
    while (!c->proc)
        uv_run(&f->loop, UV_RUN_ONCE); /* its restart delay */
    ASSERT(f->n_conns < ELEMENTSOF(f->conns));
    struct conn *conn = &f->conns[f->n_conns++];
    conn->pid = c->pid;
    amf_comp_register(f->amf, conn, 7, name, NULL, false, false);
    ASSERT_EQ(conn->reply_err[conn->n_replies - 1], 0);
    return conn;
}

/* The CSI sets on conn, answered; their states as "CSI:STATE " in order. */
static const char *answer_all(struct fx *f, struct conn *conn) {
    static char out[256];
    LinkMsg *m;
    out[0] = 0;
    while ((m = fake_conn_next(conn))) {
        if (m->body_case != HALO__LINK__MSG__BODY_CSI_SET)
            continue;
        size_t n = strlen(out);
        snprintf(out + n, sizeof(out) - n, "%s:%s ", m->csi_set->csi,
                 halo_ha_state_to_string((halo_ha_state)m->csi_set->ha_state));
        amf_response(f->amf, conn, 0, m->csi_set->invocation, 0, true);
    }
    return out;
}

/* The processes of unit su that got SIGKILL end. */
static void reap(struct fx *f, const char *su) {
    struct su *u = amf_find_su(f->amf, su);
    for (size_t i = 0; i < u->n_comps; i++)
        if (u->comps[i].proc && u->comps[i].proc->killed == SIGKILL)
            fake_proc_exit(u->comps[i].proc, 9);
}

static const char *active_of(struct fx *f, const char *si) {
    struct assignment *a = amf_si_find(amf_find_si(f->amf, si), HALO_HA_ACTIVE);
    return a && a->confirmed ? a->su->name : "-";
}

/* No step times out in these tests, whatever valgrind on a loaded machine does
 * to their pace (a 5 s CSI set or 10 s registration timeout fired in CI). */
#define SLOW_RUN_TIMEOUTS "{instantiate: 10m, csi-set: 10m, csi-remove: 10m, quiescing: 10m, terminate: 10m}"

/* Two units a and b of two components each (x takes csi cx, y takes cy); a ACTIVE, b STANDBY. */
#define TWO_BY_TWO(node, escalation, recovery)                                                                \
    "cluster: t\n"                                                                                            \
    "nodes: {n1: {" node "}, n2: {}}\n"                                                                       \
    "service-groups:\n"                                                                                       \
    "  g:\n"                                                                                                  \
    "    escalation: " escalation "\n"                                                                        \
    "    component: {command: /bin/true, recovery: " recovery ", restart: {max: 5, window: 1m, delay: 1ms}, " \
    "                timeouts: " SLOW_RUN_TIMEOUTS "}\n"                                                      \
    "    service-units:\n"                                                                                    \
    "      a: {node: n1, components: {x: {csi-types: [tx]}, y: {csi-types: [ty]}}}\n"                         \
    "      b: {node: n1, components: {x: {csi-types: [tx]}, y: {csi-types: [ty]}}}\n"                         \
    "    service-instances:\n"                                                                                \
    "      si: {csis: {cx: {type: tx}, cy: {type: ty}}}\n"                                                    \
    "  h:\n"                                                                                                  \
    "    component: {command: /bin/true, restart: {delay: 1ms}, timeouts: " SLOW_RUN_TIMEOUTS "}\n"           \
    "    service-units: {c: {node: n1}, d: {node: n2}}\n"                                                     \
    "    service-instances: {sj: {csis: {cj: {}}}}\n"

struct two {
    struct conn *ax, *ay, *bx, *by, *c;
};

/* The description yaml started, both groups assigned. */
static void two_assigned(struct fx *f, struct two *t, const char *yaml) {
    fx_start(f, yaml);
    t->ax = reg(f, "a/x");
    t->ay = reg(f, "a/y");
    t->bx = reg(f, "b/x");
    t->by = reg(f, "b/y");
    t->c = reg(f, "c");
    ASSERT_STREQ(answer_all(f, t->ax), "cx:ACTIVE ");
    ASSERT_STREQ(answer_all(f, t->ay), "cy:ACTIVE ");
    ASSERT_STREQ(answer_all(f, t->bx), "cx:STANDBY ");
    ASSERT_STREQ(answer_all(f, t->by), "cy:STANDBY ");
    answer_all(f, t->c);
    ASSERT_STREQ(active_of(f, "si"), "a");
    ASSERT_STREQ(active_of(f, "sj"), "c");
}

#define ESCALATE "{component-restart: {max: 2, probation: 1h}, su-restart: {max: 1, probation: 1h}}"

TEST(ladder_a_component_restarts_alone_and_gets_its_active_again) {
    struct fx f = {0};
    struct two t;
    two_assigned(&f, &t, TWO_BY_TWO("", ESCALATE, "component-restart"));
    struct comp *ax = comp(&f, "a/x"), *ay = comp(&f, "a/y");
    pid_t ax_pid = ax->pid, ay_pid = ay->pid;
    struct su *a = amf_find_su(f.amf, "a");

    fake_proc_exit(ax->proc, 9);
    /* Its sibling is untouched, the unit keeps ACTIVE, nothing goes to b. */
    ASSERT(!a->failing && amf_su_restarting(a));
    ASSERT_EQ(ay->pid, ay_pid);
    ASSERT_EQ(ay->proc->killed, 0);
    ASSERT_STREQ(active_of(&f, "si"), "a");
    ASSERT_STREQ(answer_all(&f, t.bx), "");
    ASSERT_STREQ(answer_all(&f, t.ay), "");
    ASSERT(strstr(a->last_recovery, "component-restart 1/2") == a->last_recovery);
    ASSERT(strstr(failed_reason, "a/x component-restart 1/2: component 'a/x'") == failed_reason);
    /* It comes back as a new process and gets its CSI ACTIVE again. */
    t.ax = reg(&f, "a/x");
    ASSERT(ax->pid != ax_pid);
    ASSERT_STREQ(answer_all(&f, t.ax), "cx:ACTIVE ");
    ASSERT(!amf_su_restarting(a));
    ASSERT_STREQ(active_of(&f, "si"), "a");
    ASSERT_EQ(a->comp_restarts.count, 1u);
    fx_stop(&f);
}

/* A restarted process that ends before it registers is a new failure, counted: the ladder does
 * not restart it in place for ever. */
/* The fixture's tick: a wait whose callback is due already when the wait begins (the restart
 * delay has passed) ends at once, not when the next timer fires (a step timeout, 10 minutes
 * here): without the tick the poll after the callback sleeps until then. */
TEST(ladder_a_wait_for_a_callback_already_due_ends_at_once) {
    struct fx f = {0};
    struct two t;
    two_assigned(&f, &t, TWO_BY_TWO("", ESCALATE, "component-restart"));
    struct comp *ax = comp(&f, "a/x");
    /* 1 s: the steps before the sleep take far less, even under valgrind on a loaded machine (300 ms did not). */
    ((struct config_component *)ax->cfg)->restart.delay = USEC_PER_SEC;
    fake_proc_exit(ax->proc, 9); /* restarts in place after its delay */
    while (uv_backend_timeout(&f.loop) == 0 && !ax->proc)
        uv_run(&f.loop, UV_RUN_NOWAIT); /* what the exit closed is closed: no poll is cut short */
    ASSERT(!ax->proc);
    usleep(1050 * 1000); /* the delay is over before the wait begins */
    usec_t t0 = now_monotonic_usec();
    t.ax = reg(&f, "a/x");
    ASSERT(now_monotonic_usec() - t0 < 5 * USEC_PER_SEC); /* not the 10-minute step timeout */
    ASSERT_STREQ(answer_all(&f, t.ax), "cx:ACTIVE ");
    fx_stop(&f);
}

TEST(ladder_a_restarted_process_that_dies_before_registering_climbs) {
    struct fx f = {0};
    struct two t;
    two_assigned(&f, &t, TWO_BY_TWO("", ESCALATE, "component-restart"));
    struct comp *ax = comp(&f, "a/x");
    struct su *a = amf_find_su(f.amf, "a");

    fake_proc_exit(ax->proc, 9);
    while (!ax->proc)
        uv_run(&f.loop, UV_RUN_ONCE); /* its restart delay */
    fake_proc_exit(ax->proc, 9);      /* the new one, before it registered */
    ASSERT(!a->failing && amf_su_restarting(a));
    ASSERT(strstr(a->last_recovery, "component-restart 2/2") == a->last_recovery);
    while (!ax->proc)
        uv_run(&f.loop, UV_RUN_ONCE);
    fake_proc_exit(ax->proc, 9); /* a third: the unit restarts in place */
    ASSERT(strstr(a->last_recovery, "escalated to su-restart") == a->last_recovery);
    ASSERT_STREQ(active_of(&f, "si"), "a");
    fx_stop(&f);
}

/* The operator's restart (haloctl restart, admin restart comp:X) is the rung's restart in place,
 * uncounted and no failure: terminated, started at once, its ACTIVE set again; refused where
 * the rung would fail over (a role of the unit changing). */
TEST(ladder_the_operators_restart_is_the_same_restart_in_place_uncounted) {
    struct fx f = {0};
    struct two t;
    two_assigned(&f, &t, TWO_BY_TWO("", ESCALATE, "component-restart"));
    struct comp *ax = comp(&f, "a/x"), *ay = comp(&f, "a/y");
    pid_t ax_pid = ax->pid, ay_pid = ay->pid;
    struct su *a = amf_find_su(f.amf, "a");
    failed_reason[0] = 0;

    ASSERT_EQ(amf_run_op(f.amf, AMF_OP_RESTART, "comp:a/x", NULL), 0);
    ASSERT_EQ(ax->presence, PRESENCE_TERMINATING); /* its terminate callback, not SIGKILL */
    ASSERT_EQ(ax->proc->killed, 0);
    ASSERT(amf_su_restarting(a) && amf_su_keeps(a));
    LinkMsg *m = fake_conn_next(t.ax);
    ASSERT(m && m->body_case == HALO__LINK__MSG__BODY_TERMINATE);
    amf_response(f.amf, t.ax, 0, m->terminate->invocation, 0, false);
    amf_conn_closed(f.amf, t.ax, "exited");
    fake_proc_exit(ax->proc, 0);
    ASSERT(ax->proc && ax->pid != ax_pid); /* at once, no restart delay */
    t.ax = reg(&f, "a/x");
    ASSERT_STREQ(answer_all(&f, t.ax), "cx:ACTIVE ");
    ASSERT(!amf_su_restarting(a));
    ASSERT_EQ(ay->pid, ay_pid);
    ASSERT_STREQ(answer_all(&f, t.bx), "");
    ASSERT_STREQ(active_of(&f, "si"), "a");
    ASSERT_EQ(a->comp_restarts.count, 0u); /* not counted */
    ASSERT_STREQ(failed_reason, "");       /* no failure */

    /* While a's ACTIVE quiesces (a switchover), the rung fails over and the operator is refused. */
    ASSERT(amf_si_switchover(f.amf, "si", NULL) >= 0);
    ASSERT_EQ(amf_run_op(f.amf, AMF_OP_RESTART, "comp:a/y", NULL), -HALO_EBADSTATE);
    fx_stop(&f);
}

/* The old process's link closes only after its exit was seen and the new process started (the
 * pidfd and the socket are two events): that close is not a failure of the new one.  It failed
 * the unit over (a reload's restart in place of its component, in CI). */
TEST(ladder_a_late_close_of_the_old_link_fails_nothing) {
    struct fx f = {0};
    struct two t;
    two_assigned(&f, &t, TWO_BY_TWO("", ESCALATE, "component-restart"));
    struct comp *ax = comp(&f, "a/x");
    pid_t ax_pid = ax->pid;
    struct su *a = amf_find_su(f.amf, "a");
    failed_reason[0] = 0;

    ASSERT_EQ(amf_run_op(f.amf, AMF_OP_RESTART, "comp:a/x", NULL), 0);
    LinkMsg *m = fake_conn_next(t.ax);
    ASSERT(m && m->body_case == HALO__LINK__MSG__BODY_TERMINATE);
    amf_response(f.amf, t.ax, 0, m->terminate->invocation, 0, false);
    fake_proc_exit(ax->proc, 0);
    ASSERT(ax->proc && ax->pid != ax_pid);
    amf_conn_closed(f.amf, t.ax, "closed the link");
    ASSERT_STREQ(failed_reason, "");
    ASSERT(!a->failing && amf_su_restarting(a));
    t.ax = reg(&f, "a/x");
    ASSERT_STREQ(answer_all(&f, t.ax), "cx:ACTIVE ");
    ASSERT_STREQ(active_of(&f, "si"), "a");
    fx_stop(&f);
}

TEST(ladder_escalates_to_su_restart_then_su_failover) {
    struct fx f = {0};
    struct two t;
    two_assigned(&f, &t, TWO_BY_TWO("", ESCALATE, "component-restart"));
    struct comp *ax = comp(&f, "a/x"), *ay = comp(&f, "a/y");
    struct su *a = amf_find_su(f.amf, "a");

    for (int i = 1; i <= 2; i++) { /* two component restarts: within max 2 */
        fake_proc_exit(ax->proc, 9);
        t.ax = reg(&f, "a/x");
        ASSERT_STREQ(answer_all(&f, t.ax), "cx:ACTIVE ");
    }
    ASSERT_EQ(a->comp_restarts.count, 2u);
    /* The third within the probation: the whole unit restarts in place, still ACTIVE. */
    pid_t ay_pid = ay->pid;
    fake_proc_exit(ax->proc, 9);
    ASSERT_EQ(ay->proc->killed, SIGKILL);
    ASSERT(strstr(a->last_recovery, "escalated to su-restart") == a->last_recovery);
    ASSERT(strstr(a->last_recovery, "su-restart 1/1"));
    ASSERT_EQ(a->comp_restarts.count, 0u);
    fake_proc_exit(ay->proc, 9); /* the SIGKILL it got */
    t.ax = reg(&f, "a/x");
    t.ay = reg(&f, "a/y");
    ASSERT(ay->pid != ay_pid);
    ASSERT_STREQ(answer_all(&f, t.ax), "cx:ACTIVE ");
    ASSERT_STREQ(answer_all(&f, t.ay), "cy:ACTIVE ");
    ASSERT_STREQ(active_of(&f, "si"), "a");
    ASSERT_STREQ(answer_all(&f, t.bx), "");
    /* Two more component restarts, then past max again: a second SU restart is past its max 1: failover. */
    for (int i = 1; i <= 2; i++) {
        fake_proc_exit(ax->proc, 9);
        t.ax = reg(&f, "a/x");
        answer_all(&f, t.ax);
    }
    fake_proc_exit(ax->proc, 9);
    ASSERT(a->failing);
    ASSERT(strstr(a->last_failure, "escalated to su-failover") == a->last_failure);
    ASSERT(strstr(failed_reason, "escalated to su-failover"));
    reap(&f, "a");
    ASSERT_STREQ(answer_all(&f, t.bx), "cx:ACTIVE ");
    ASSERT_STREQ(answer_all(&f, t.by), "cy:ACTIVE ");
    ASSERT_STREQ(active_of(&f, "si"), "b");
    fx_stop(&f);
}

TEST(ladder_counts_reset_after_their_probation) {
    struct fx f = {0};
    struct two t;
    two_assigned(&f, &t, TWO_BY_TWO("", "{component-restart: {max: 1, probation: 1s}}", "component-restart"));
    struct comp *ax = comp(&f, "a/x");
    struct su *a = amf_find_su(f.amf, "a");
    fake_proc_exit(ax->proc, 9);
    /* Counted at once (before the loop runs: under valgrind on a loaded
     * machine the restart below can outlast the 1 s probation). */
    ASSERT_EQ(a->comp_restarts.count, 1u);
    t.ax = reg(&f, "a/x");
    answer_all(&f, t.ax);
    /* The probation ends (its timer, no polling): the count is 0 again. */
    while (a->comp_restarts.count)
        uv_run(&f.loop, UV_RUN_ONCE);
    /* So the next crash is a component restart again, not an escalation. */
    fake_proc_exit(ax->proc, 9);
    ASSERT(!a->failing);
    ASSERT(strstr(a->last_recovery, "component-restart 1/1") == a->last_recovery);
    fx_stop(&f);
}

TEST(ladder_rung_counts) {
    uv_loop_t loop;
    struct amf_rung_count r;
    struct config_escalation e = {.max = 2, .probation = 20 * USEC_PER_MSEC};
    ASSERT_OK(uv_loop_init(&loop));
    amf_rung_count_init(&loop, &r);
    ASSERT(amf_rung_count_climb(&r, &e));
    ASSERT(amf_rung_count_climb(&r, &e));
    ASSERT(!amf_rung_count_climb(&r, &e)); /* past max: climbs, and starts again from 0 */
    ASSERT_EQ(r.count, 0u);
    ASSERT(!uv_is_active((uv_handle_t *)&r.probation));
    ASSERT(amf_rung_count_climb(&r, &e));
    uv_run(&loop, UV_RUN_DEFAULT); /* the probation ends */
    ASSERT_EQ(r.count, 0u);
    e.max = 0; /* max 0: every failure climbs */
    ASSERT(!amf_rung_count_climb(&r, &e));
    uv_close((uv_handle_t *)&r.probation, NULL);
    uv_run(&loop, UV_RUN_DEFAULT);
    ASSERT_OK(uv_loop_close(&loop));
}

TEST(ladder_recommended_recovery_is_never_weakened) {
    /* The stronger of the configured and the recommended recovery. */
    ASSERT_EQ(amf_rung_of(CONFIG_RECOVERY_COMPONENT_RESTART, HALO_RECOVERY_NONE), AMF_RUNG_COMP_RESTART);
    ASSERT_EQ(amf_rung_of(CONFIG_RECOVERY_COMPONENT_RESTART, 0), AMF_RUNG_COMP_RESTART);
    ASSERT_EQ(amf_rung_of(CONFIG_RECOVERY_COMPONENT_FAILOVER, HALO_RECOVERY_COMPONENT_RESTART), AMF_RUNG_SU_FAILOVER);
    ASSERT_EQ(amf_rung_of(CONFIG_RECOVERY_COMPONENT_RESTART, HALO_RECOVERY_COMPONENT_FAILOVER), AMF_RUNG_SU_FAILOVER);
    ASSERT_EQ(amf_rung_of(CONFIG_RECOVERY_COMPONENT_RESTART, HALO_RECOVERY_NODE_FAILOVER), AMF_RUNG_NODE_FAILOVER);
    ASSERT_EQ(amf_rung_of(CONFIG_RECOVERY_NODE_FAILOVER, HALO_RECOVERY_COMPONENT_RESTART), AMF_RUNG_NODE_FAILOVER);
    ASSERT_EQ(amf_rung_of(CONFIG_RECOVERY_COMPONENT_RESTART, HALO_RECOVERY_NODE_SWITCHOVER), AMF_RUNG_NODE_SWITCHOVER);
    ASSERT_EQ(amf_rung_of(CONFIG_RECOVERY_NODE_FAILOVER, HALO_RECOVERY_NODE_FAILFAST), AMF_RUNG_NODE_FAILFAST);
    ASSERT_EQ(amf_rung_of(CONFIG_RECOVERY_NODE_FAILFAST, HALO_RECOVERY_COMPONENT_FAILOVER), AMF_RUNG_NODE_FAILFAST);
}

/* An error report on a's ACTIVE x recommending rec. */
static void report(struct fx *f, struct conn *conn, halo_recovery rec) {
    amf_error_report(f->amf, conn, 9, "a/x", rec);
    ASSERT_EQ(conn->reply_err[conn->n_replies - 1], 0);
}

TEST(ladder_a_recommended_failover_beats_a_configured_restart) {
    struct fx f = {0};
    struct two t;
    two_assigned(&f, &t, TWO_BY_TWO("", ESCALATE, "component-restart"));
    report(&f, t.ax, HALO_RECOVERY_COMPONENT_FAILOVER);
    ASSERT(amf_find_su(f.amf, "a")->failing);
    ASSERT_EQ(comp(&f, "a/y")->proc->killed, SIGKILL);
    reap(&f, "a");
    ASSERT_STREQ(answer_all(&f, t.bx), "cx:ACTIVE ");
    ASSERT_STREQ(active_of(&f, "si"), "b");
    ASSERT_STREQ(active_of(&f, "sj"), "c"); /* the other group's unit on the node is untouched */
    fx_stop(&f);
}

TEST(ladder_a_recommended_restart_on_a_failover_component_fails_over) {
    struct fx f = {0};
    struct two t;
    two_assigned(&f, &t, TWO_BY_TWO("", ESCALATE, "component-failover"));
    report(&f, t.ax, HALO_RECOVERY_COMPONENT_RESTART);
    ASSERT(amf_find_su(f.amf, "a")->failing);
    reap(&f, "a");
    ASSERT_STREQ(answer_all(&f, t.bx), "cx:ACTIVE ");
    fx_stop(&f);
}

TEST(ladder_a_recommended_restart_restarts_in_place) {
    struct fx f = {0};
    struct two t;
    two_assigned(&f, &t, TWO_BY_TWO("", ESCALATE, "component-restart"));
    struct comp *ax = comp(&f, "a/x");
    report(&f, t.ax, HALO_RECOVERY_COMPONENT_RESTART);
    ASSERT_EQ(ax->proc->killed, SIGKILL);
    ASSERT_EQ(comp(&f, "a/y")->proc->killed, 0);
    ASSERT(!amf_find_su(f.amf, "a")->failing);
    fake_proc_exit(ax->proc, 9);
    t.ax = reg(&f, "a/x");
    ASSERT_STREQ(answer_all(&f, t.ax), "cx:ACTIVE ");
    fx_stop(&f);
}

/* Every unit of node n1 fails over: a's SI to b... which is on n1 too, so to nobody; c's to d (n2). */
static void expect_node_failover(struct fx *f, struct two *t) {
    ASSERT(amf_find_su(f->amf, "a")->failing && amf_find_su(f->amf, "b")->failing);
    ASSERT(amf_find_su(f->amf, "c")->failing);
    ASSERT_EQ(comp(f, "c")->proc->killed, SIGKILL);
    ASSERT_EQ(comp(f, "b/y")->proc->killed, SIGKILL);
    ASSERT(!amf_find_su(f->amf, "d")->failing);
    ASSERT(strstr(amf_find_su(f->amf, "c")->last_failure, "node-"));
}

TEST(ladder_a_recommended_node_failover_fails_every_unit_of_the_node) {
    struct fx f = {0};
    struct two t;
    two_assigned(&f, &t, TWO_BY_TWO("", ESCALATE, "component-restart"));
    report(&f, t.ax, HALO_RECOVERY_NODE_FAILOVER);
    expect_node_failover(&f, &t);
    /* The faulty unit's failure counts against its restart limit; the others' do not. */
    ASSERT_EQ(amf_find_su(f.amf, "a")->n_fail_times, 1u);
    ASSERT_EQ(amf_find_su(f.amf, "c")->n_fail_times, 0u);
    fx_stop(&f);
}

TEST(ladder_node_failfast) {
    struct fx f = {0};
    struct two t;
    two_assigned(&f, &t, TWO_BY_TWO("", ESCALATE, "component-restart"));
    report(&f, t.ax, HALO_RECOVERY_NODE_FAILFAST);
    expect_node_failover(&f, &t);
    fx_stop(&f);
}

static int failfast_calls;
static char failfast_why[512];
static void on_failfast(struct amf *a, const char *why, void *userdata) {
    failfast_calls++;
    snprintf(failfast_why, sizeof(failfast_why), "%s", why);
}

/* With the node's failfast action: every component of the node is killed, none restarts and
 * nothing fails over here, and the action is called once, only when every one of them has ended
 * (the peers take over after that, when the node leaves the cluster). */
TEST(ladder_node_failfast_with_an_action_kills_the_node_then_runs_it) {
    static const char *const on_n1[] = {"a/x", "a/y", "b/x", "b/y", "c"};
    struct fx f = {0};
    struct two t;
    two_assigned(&f, &t, TWO_BY_TWO("failfast: reboot", ESCALATE, "component-restart"));
    amf_set_failfast(f.amf, on_failfast, NULL);
    report(&f, t.ax, HALO_RECOVERY_NODE_FAILFAST);
    for (size_t i = 0; i < ELEMENTSOF(on_n1); i++)
        ASSERT_EQ(comp(&f, on_n1[i])->proc->killed, SIGKILL);
    ASSERT(!comp(&f, "d")->proc); /* n2's, not this node's */
    reap(&f, "a");
    reap(&f, "b");
    for (int i = 0; i < 20; i++)
        uv_run(&f.loop, UV_RUN_NOWAIT);
    ASSERT_EQ(failfast_calls, 0); /* c still runs */
    reap(&f, "c");
    while (failfast_calls == 0)
        uv_run(&f.loop, UV_RUN_ONCE);
    ASSERT_EQ(failfast_calls, 1);
    ASSERT(strstr(failfast_why, "component 'a/x' reported an error (recommended recovery: node-failfast)"));
    ASSERT(strstr(amf_find_su(f.amf, "a")->last_failure, "node-failfast"));
    ASSERT(strstr(failed_reason, "a/x ")); /* published FAILED */
    /* Nothing restarts: the node is going down. */
    for (int i = 0; i < 20; i++)
        uv_run(&f.loop, UV_RUN_NOWAIT);
    for (size_t i = 0; i < ELEMENTSOF(on_n1); i++)
        ASSERT(!comp(&f, on_n1[i])->proc);
    ASSERT_EQ(failfast_calls, 1);
    fx_stop(&f);
}

/* A process SIGKILL does not end (stuck in the kernel) holds the node up only for its unit's
 * terminate timeout: then the action runs anyway, once. */
TEST(ladder_node_failfast_runs_its_action_after_the_terminate_timeout_anyway) {
    struct fx f = {0};
    struct two t;
    two_assigned(&f, &t, TWO_BY_TWO("failfast: {command: [/bin/true]}", ESCALATE, "component-restart"));
    ((struct config_component *)comp(&f, "c")->cfg)->timeouts.terminate = 50 * USEC_PER_MSEC;
    amf_set_failfast(f.amf, on_failfast, NULL);
    failfast_calls = 0;
    report(&f, t.ax, HALO_RECOVERY_NODE_FAILFAST);
    reap(&f, "a");
    reap(&f, "b");
    while (failfast_calls == 0)
        uv_run(&f.loop, UV_RUN_ONCE);
    ASSERT(comp(&f, "c")->proc); /* still there */
    reap(&f, "c");
    for (int i = 0; i < 20; i++)
        uv_run(&f.loop, UV_RUN_NOWAIT);
    ASSERT_EQ(failfast_calls, 1);
    fx_stop(&f);
}

/* Node switchover: the failed unit fails over; another unit of the node hands its ACTIVE over
 * gracefully (QUIESCING, then its standby takes it with transition QUIESCED), its process kept. */
TEST(ladder_node_switchover_hands_the_other_units_over) {
    struct fx f = {0};
    fx_start(&f, "cluster: t\n"
                 "nodes: {n1: {}}\n"
                 "service-groups:\n"
                 "  g:\n"
                 "    component: {command: /bin/true, restart: {delay: 1ms}}\n"
                 "    service-units: {a: {}, b: {}}\n"
                 "    service-instances: {si: {csis: {cx: {}}}}\n"
                 "  h:\n"
                 "    component: {command: /bin/true, restart: {delay: 1ms}}\n"
                 "    service-units: {c: {}, d: {}}\n"
                 "    service-instances: {sj: {csis: {cj: {}}}}\n");
    struct conn *a = reg(&f, "a"), *b = reg(&f, "b"), *c = reg(&f, "c"), *d = reg(&f, "d");
    answer_all(&f, a);
    answer_all(&f, b);
    answer_all(&f, c);
    answer_all(&f, d);
    ASSERT_STREQ(active_of(&f, "si"), "a");
    ASSERT_STREQ(active_of(&f, "sj"), "c");
    amf_error_report(f.amf, a, 9, "a", HALO_RECOVERY_NODE_SWITCHOVER);
    ASSERT(amf_find_su(f.amf, "a")->failing);
    reap(&f, "a");
    ASSERT_STREQ(answer_all(&f, b), "cx:ACTIVE ");
    /* c: QUIESCING, then d ACTIVE (transition QUIESCED), then c STANDBY; c is never killed. */
    ASSERT_STREQ(answer_all(&f, c), "cj:QUIESCING ");
    LinkMsg *m = fake_conn_next(d);
    ASSERT(m && m->body_case == HALO__LINK__MSG__BODY_CSI_SET && m->csi_set->ha_state == HALO_HA_ACTIVE);
    ASSERT_EQ(m->csi_set->transition, HALO_CSI_QUIESCED);
    amf_response(f.amf, d, 0, m->csi_set->invocation, 0, true);
    ASSERT_STREQ(answer_all(&f, c), "cj:STANDBY ");
    ASSERT_STREQ(active_of(&f, "sj"), "d");
    ASSERT(!amf_find_su(f.amf, "c")->failing);
    ASSERT_EQ(comp(&f, "c")->proc->killed, 0);
    fx_stop(&f);
}

TEST(ladder_su_failovers_past_the_node_max_fail_the_node_over) {
    struct fx f = {0};
    struct two t;
    two_assigned(&f, &t, TWO_BY_TWO("su-failover: {max: 1, probation: 1h}", "{}", "component-failover"));
    /* One SU failover on n1: within its max 1. */
    fake_proc_exit(comp(&f, "c")->proc, 9);
    ASSERT(amf_find_su(f.amf, "c")->failing && !amf_find_su(f.amf, "a")->failing);
    /* A second on n1: the node fails over. */
    fake_proc_exit(comp(&f, "a/x")->proc, 9);
    ASSERT(amf_find_su(f.amf, "a")->failing && amf_find_su(f.amf, "b")->failing);
    ASSERT(strstr(amf_find_su(f.amf, "a")->last_failure, "escalated to node-failover") ==
           amf_find_su(f.amf, "a")->last_failure);
    fx_stop(&f);
}

TEST(ladder_defaults_fail_the_unit_over_as_before) {
    struct fx f = {0};
    struct two t;
    two_assigned(&f, &t, TWO_BY_TWO("", "{}", "component-restart"));
    fake_proc_exit(comp(&f, "a/x")->proc, 9);
    ASSERT(amf_find_su(f.amf, "a")->failing);
    reap(&f, "a");
    ASSERT_STREQ(answer_all(&f, t.bx), "cx:ACTIVE ");
    ASSERT(strstr(amf_find_su(f.amf, "a")->last_failure, "su-failover: component 'a/x'") ==
           amf_find_su(f.amf, "a")->last_failure);
    fx_stop(&f);
}

TEST(ladder_a_failure_while_roles_change_fails_over) {
    struct fx f = {0};
    struct two t;
    two_assigned(&f, &t, TWO_BY_TWO("", ESCALATE, "component-restart"));
    /* A switchover under way: a is QUIESCING. */
    ASSERT_OK(amf_si_switchover(f.amf, "si", NULL));
    fake_proc_exit(comp(&f, "a/x")->proc, 9);
    ASSERT(amf_find_su(f.amf, "a")->failing);
    ASSERT(strstr(amf_find_su(f.amf, "a")->last_failure, "changing roles"));
    fx_stop(&f);
}

TEST(ladder_health_check_keys_start_at_registration) {
    struct fx f = {0};
    fx_start(&f,
             "cluster: t\n"
             "nodes: {n1: {}}\n"
             "service-groups:\n"
             "  g:\n"
             "    component: {command: /bin/true, health-check: {period: 50ms, timeout: 400ms, keys: [alive, deep]}}\n"
             "    service-units: {a: {}, b: {}}\n"
             "    service-instances: {si: {csis: {csi: {}}}}\n");
    struct conn *a = reg(&f, "a");
    struct comp *ca = comp(&f, "a");
    ASSERT(amf_hc_find(ca, "alive") && amf_hc_find(ca, "deep"));
    ASSERT_EQ(amf_hc_find(ca, "alive")->invoked, HALO_HC_AMF_INVOKED);
    /* halod asks for both by itself; nobody answers "deep": a fails over. */
    bool alive = false, deep = false;
    while (!ca->su->failing) {
        uv_run(&f.loop, UV_RUN_ONCE);
        LinkMsg *m;
        while ((m = fake_conn_next(a)))
            if (m->body_case == HALO__LINK__MSG__BODY_HEALTHCHECK) {
                alive = alive || streq(m->healthcheck->key, "alive");
                deep = deep || streq(m->healthcheck->key, "deep");
                if (streq(m->healthcheck->key, "alive"))
                    amf_response(f.amf, a, 0, m->healthcheck->invocation, 0, false);
            }
    }
    ASSERT(alive && deep);
    ASSERT(strstr(ca->su->last_failure, "missed health check 'deep'"));
    fx_stop(&f);
}

TEST(ladder_a_component_may_take_over_a_described_check) {
    struct fx f = {0};
    fx_start(&f, "cluster: t\n"
                 "nodes: {n1: {}}\n"
                 "service-groups:\n"
                 "  g:\n"
                 "    component: {command: /bin/true, health-check: {keys: [alive]}}\n"
                 "    service-units: {a: {}, b: {}}\n"
                 "    service-instances: {si: {csis: {csi: {}}}}\n");
    struct conn *a = reg(&f, "a");
    amf_hc_start(f.amf, a, 11, "a", "alive", HALO_HC_COMPONENT_INVOKED, HALO_RECOVERY_COMPONENT_FAILOVER);
    ASSERT_EQ(a->reply_err[a->n_replies - 1], 0);
    ASSERT_EQ(amf_hc_find(comp(&f, "a"), "alive")->invoked, HALO_HC_COMPONENT_INVOKED);
    fx_stop(&f);
}

TEST(ladder_a_non_sa_aware_component_restarts_alone) {
    struct fx f = {0};
    fx_start(&f, "cluster: t\n"
                 "nodes: {n1: {}}\n"
                 "service-groups:\n"
                 "  g:\n"
                 "    escalation: " ESCALATE "\n"
                 "    component: {command: /bin/true, restart: {delay: 1ms}}\n"
                 "    service-units:\n"
                 "      a: {components: {x: {csi-types: [tx]}, w: {type: non-sa-aware, csi-types: [tw]}}}\n"
                 "      b: {components: {x: {csi-types: [tx]}, w: {type: non-sa-aware, csi-types: [tw]}}}\n"
                 "    service-instances: {si: {csis: {cx: {type: tx}, cw: {type: tw}}}}\n");
    struct conn *ax = reg(&f, "a/x");
    reg(&f, "b/x");
    ASSERT_STREQ(answer_all(&f, ax), "cx:ACTIVE ");
    while (!streq(active_of(&f, "si"), "a"))
        uv_run(&f.loop, UV_RUN_ONCE); /* halod answers w's CSI set itself, from the loop */
    struct comp *w = comp(&f, "a/w"), *x = comp(&f, "a/x");
    pid_t w_pid = w->pid;
    ASSERT(w->proc && !comp(&f, "b/w")->proc);

    fake_proc_exit(w->proc, 9);
    ASSERT(!amf_find_su(f.amf, "a")->failing);
    ASSERT_EQ(x->proc->killed, 0);
    ASSERT(strstr(amf_find_su(f.amf, "a")->last_recovery, "component-restart 1/2") ==
           amf_find_su(f.amf, "a")->last_recovery);
    /* Its command runs again for the ACTIVE its unit kept. */
    struct assignment *as = amf_si_find_su(amf_find_si(f.amf, "si"), amf_find_su(f.amf, "a"));
    while (!w->proc || as->pending)
        uv_run(&f.loop, UV_RUN_ONCE);
    ASSERT(w->pid != w_pid);
    ASSERT_STREQ(active_of(&f, "si"), "a");
    ASSERT(!comp(&f, "b/w")->proc);
    ASSERT(!amf_su_restarting(amf_find_su(f.amf, "a")));
    fx_stop(&f);
}

/* At start ACTIVE waits for the preferred unit while any of its components is still starting:
 * it went to b when a's first component registered before b's and a's second after them. */
TEST(ladder_start_waits_for_every_component_of_the_preferred_unit) {
    struct fx f = {0};
    fx_start(&f, TWO_BY_TWO("", ESCALATE, "component-restart"));
    struct conn *ax = reg(&f, "a/x");
    struct conn *bx = reg(&f, "b/x"), *by = reg(&f, "b/y");
    ASSERT_STREQ(answer_all(&f, bx), "");
    struct conn *ay = reg(&f, "a/y");
    ASSERT_STREQ(answer_all(&f, ax), "cx:ACTIVE ");
    ASSERT_STREQ(answer_all(&f, ay), "cy:ACTIVE ");
    ASSERT_STREQ(answer_all(&f, bx), "cx:STANDBY ");
    ASSERT_STREQ(answer_all(&f, by), "cy:STANDBY ");
    ASSERT_STREQ(active_of(&f, "si"), "a");
    fx_stop(&f);
}

/* ---- several nodes: another node decides ---- */

static halo_ha_state last_confirmed;
static void remote_confirmed(void *p, struct si *si, const struct assignment *a, bool removed) {
    last_confirmed = removed ? 0 : a->state;
}
static int remote_publish_target(void *p, struct si *si, struct assignment *a) {
    return 1;
}
static void remote_forget(void *p, struct si *si, struct su *su) {
}
static const struct amf_placement_ops remote = {
    .distributed = true,
    .publish_target = remote_publish_target,
    .publish_confirmed = remote_confirmed,
    .forget = remote_forget,
};

/* The coordinator, seeing the unit in service (it restarts in place), sends it a new target
 * while every one of its components restarts: they get it when they register again. */
TEST(ladder_a_target_during_an_su_restart_reaches_the_components_when_back) {
    struct fx f = {0};
    fx_start(&f, TWO_BY_TWO("", "{su-restart: {max: 1, probation: 1h}}", "component-restart"));
    amf_set_placement(f.amf, &remote, NULL);
    amf_set_deciding(f.amf, false);
    struct conn *ax = reg(&f, "a/x"), *ay = reg(&f, "a/y");
    struct si *si = amf_find_si(f.amf, "si");
    struct su *a = amf_find_su(f.amf, "a");
    amf_target(si, a, HALO_HA_ACTIVE, 1);
    ASSERT_STREQ(answer_all(&f, ax), "cx:ACTIVE ");
    ASSERT_STREQ(answer_all(&f, ay), "cy:ACTIVE ");
    ASSERT_EQ(last_confirmed, HALO_HA_ACTIVE);
    /* a/x fails: component-restart max 0 climbs to an SU restart (max 1): both restart in place. */
    fake_proc_exit(comp(&f, "a/x")->proc, 9);
    reap(&f, "a");
    ASSERT(amf_su_restarting(a) && !a->failing && amf_su_keeps(a));
    /* The coordinator moves a to STANDBY meanwhile. */
    amf_target(si, a, HALO_HA_STANDBY, 2);
    ax = reg(&f, "a/x");
    ay = reg(&f, "a/y");
    ASSERT_STREQ(answer_all(&f, ax), "cx:STANDBY ");
    ASSERT_STREQ(answer_all(&f, ay), "cy:STANDBY ");
    ASSERT_EQ(last_confirmed, HALO_HA_STANDBY);
    ASSERT(!amf_su_restarting(a));
    fx_stop(&f);
}
