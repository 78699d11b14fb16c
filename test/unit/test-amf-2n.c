/* SPDX-License-Identifier: MIT */
/*
 * Unit tests of the 2N redundancy model (src/halod/amf-2n.c) on its own: the
 * AMF helpers it calls are replaced by stubs that record each action, so every
 * decision of the model is checked without processes or sockets.
 */
#include <stdarg.h>

#include "amf-internal.h"
#include "log.h"
#include "macro.h"
#include "tests.h"

/* ---- stubs of amf.c ------------------------------------------------------ */

struct action {
    char what[16]; /* "assign", "unassign", "switchover" */
    char su[32];
    halo_ha_state state;
    halo_csi_transition transition;
    int error;
};
static struct action actions[64];
static size_t n_actions;

static struct config_component fake_comp_cfg = {.name = "c"};

bool amf_su_in_service(const struct su *su) {
    return su->local && su->admin == SU_UNLOCKED && su->oper == SU_ENABLED && !su->failing &&
           su->comps[0].presence == PRESENCE_INSTANTIATED;
}

static struct su sus[3];

/* The readiness hook's answer, per unit (amf.c asks the hook the recovery sets). */
static bool not_ready[3];

bool amf_su_may_be_active(const struct su *su) {
    return amf_su_in_service(su) && !not_ready[su - sus];
}

/* Like amf.c: the assignment goes in flight (pending) until the test confirms it. */
int amf_assign(struct si *si, struct su *su, halo_ha_state state, halo_csi_transition transition) {
    struct assignment *a = amf_si_find_su(si, su);
    for (size_t i = 0; !a && i < si->n_asg; i++)
        if (!si->asg[i].su) {
            a = &si->asg[i];
            *a = (struct assignment){.su = su};
        }
    ASSERT(a);
    a->target = state;
    a->pending = 1;
    struct action *x = &actions[n_actions++];
    snprintf(x->what, sizeof(x->what), "assign");
    snprintf(x->su, sizeof(x->su), "%s", su->name);
    x->state = state;
    x->transition = transition;
    return 0;
}

int amf_unassign(struct si *si, struct assignment *a) {
    a->removing = true;
    a->pending = 1;
    struct action *x = &actions[n_actions++];
    snprintf(x->what, sizeof(x->what), "unassign");
    snprintf(x->su, sizeof(x->su), "%s", a->su->name);
    return 0;
}

void amf_switchover_done(struct si *si, int error) {
    si->switchover = false;
    struct action *x = &actions[n_actions++];
    snprintf(x->what, sizeof(x->what), "switchover");
    x->error = error;
}

void amf_su_check_lock_done(struct su *su) {
}

/* ---- fixture: one SG, SUs a (rank 0), b (rank 1), c (rank 2), one SI ---- */

static struct comp comps[3];
static struct config_su su_cfg[3];
static struct si si;
static struct assignment si_asg[3];
static struct config_si si_cfg = {.name = "si"};
static struct config_sg sg_cfg = {.name = "sg"};
static struct sg sg;

static void setup(size_t n_sus) {
    log_set_level(LOG_ERR_);
    static const char *names[] = {"a", "b", "c"};
    memset(comps, 0, sizeof(comps));
    memset(sus, 0, sizeof(sus));
    memset(&si, 0, sizeof(si));
    memset(&sg, 0, sizeof(sg));
    memset(not_ready, 0, sizeof(not_ready));
    n_actions = 0;
    sg.name = "sg";
    sg_cfg.auto_failback = false;
    sg.cfg = &sg_cfg;
    sg.sus = sus;
    sg.n_sus = n_sus;
    sg.sis = &si;
    sg.n_sis = 1;
    sg.ops = &amf_2n_ops;
    for (size_t i = 0; i < n_sus; i++) {
        su_cfg[i] = (struct config_su){.name = (char *)names[i], .rank = (unsigned)i};
        sus[i] = (struct su){
            .sg = &sg, .cfg = &su_cfg[i], .name = names[i], .local = true, .comps = &comps[i], .n_comps = 1};
        comps[i] = (struct comp){
            .su = &sus[i], .cfg = &fake_comp_cfg, .name = names[i], .presence = PRESENCE_INSTANTIATED, .restarts = 1};
    }
    memset(si_asg, 0, sizeof(si_asg));
    si = (struct si){.sg = &sg, .cfg = &si_cfg, .name = "si", .asg = si_asg, .n_asg = n_sus};
}

static void evaluate(void) {
    amf_2n_ops.evaluate(&sg);
}

/* Completes every in-flight step, as the components' responses would. */
static void confirm_all(void) {
    for (size_t i = 0; i < si.n_asg; i++) {
        struct assignment *a = &si.asg[i];
        if (!a->su || !a->pending)
            continue;
        a->pending = 0;
        if (a->removing) {
            *a = (struct assignment){0};
            continue;
        }
        a->state = a->target == HALO_HA_QUIESCING ? HALO_HA_QUIESCED : a->target;
        a->target = a->state;
        a->confirmed = true;
    }
}

/* Runs evaluate/confirm until nothing more happens; returns the number of actions. */
static size_t settle(void) {
    size_t before = n_actions;
    for (int i = 0; i < 20; i++) {
        size_t n = n_actions;
        evaluate();
        confirm_all();
        if (n_actions == n)
            break;
    }
    return n_actions - before;
}

static const char *role_of(const char *su) {
    for (size_t i = 0; i < si.n_asg; i++)
        if (si.asg[i].su && streq(si.asg[i].su->name, su))
            return halo_ha_state_to_string(si.asg[i].state);
    return "NONE";
}

static void expect(size_t i, const char *what, const char *su, halo_ha_state state) {
    ASSERT(i < n_actions);
    ASSERT_STREQ(actions[i].what, what);
    if (su)
        ASSERT_STREQ(actions[i].su, su);
    if (state)
        ASSERT_EQ(actions[i].state, state);
}

/* A failure as amf.c's su_fail() leaves it: assignments of the SU dropped. */
static void fail_su(struct su *su) {
    su->failing = true;
    for (size_t i = 0; i < si.n_asg; i++)
        if (si.asg[i].su == su)
            si.asg[i] = (struct assignment){0};
}

/* ---- tests --------------------------------------------------------------- */

TEST(initial_assignment_active_then_standby_in_rank_order) {
    setup(2);
    evaluate();
    ASSERT_EQ(n_actions, 1); /* only ACTIVE first: the standby waits for it */
    expect(0, "assign", "a", HALO_HA_ACTIVE);
    ASSERT_EQ(actions[0].transition, HALO_CSI_NEW_ASSIGN);
    evaluate(); /* nothing while the CSI set is in flight */
    ASSERT_EQ(n_actions, 1);
    confirm_all();
    evaluate();
    expect(1, "assign", "b", HALO_HA_STANDBY);
    confirm_all();
    ASSERT_EQ(settle(), 0);
    ASSERT_STREQ(role_of("a"), "ACTIVE");
    ASSERT_STREQ(role_of("b"), "STANDBY");
}

TEST(waits_for_preferred_unit_still_instantiating) {
    setup(2);
    comps[0].presence = PRESENCE_INSTANTIATING; /* a is slower to start than b */
    evaluate();
    ASSERT_EQ(n_actions, 0);
    comps[0].presence = PRESENCE_INSTANTIATED;
    evaluate();
    expect(0, "assign", "a", HALO_HA_ACTIVE);
}

TEST(does_not_wait_for_a_restarting_preferred_unit) {
    setup(2);
    comps[0].presence = PRESENCE_INSTANTIATING;
    comps[0].restarts = 2; /* not its first start: b must not wait for it */
    evaluate();
    expect(0, "assign", "b", HALO_HA_ACTIVE);
}

TEST(previous_active_is_preferred_after_restart) {
    setup(2);
    si.preferred_active = "b";
    settle();
    ASSERT_STREQ(role_of("b"), "ACTIVE");
    ASSERT_STREQ(role_of("a"), "STANDBY");
}

TEST(active_failure_promotes_standby_not_quiesced) {
    setup(3);
    settle();
    fail_su(&sus[0]);
    size_t base = n_actions;
    evaluate();
    expect(base, "assign", "b", HALO_HA_ACTIVE);
    ASSERT_EQ(actions[base].transition, HALO_CSI_NOT_QUIESCED);
    confirm_all();
    evaluate(); /* and a new standby from the remaining in-service unit */
    expect(base + 1, "assign", "c", HALO_HA_STANDBY);
}

TEST(failover_waits_while_the_failed_active_is_fenced) {
    setup(2);
    settle();
    fail_su(&sus[0]);
    si.fencing = &sus[0];
    size_t base = n_actions;
    evaluate();
    ASSERT_EQ(n_actions, base); /* the dead ACTIVE is not reaped yet */
    si.fencing = NULL;
    evaluate();
    expect(base, "assign", "b", HALO_HA_ACTIVE);
}

TEST(failed_unit_comes_back_as_standby) {
    setup(2);
    settle();
    fail_su(&sus[0]);
    settle();
    ASSERT_STREQ(role_of("b"), "ACTIVE");
    ASSERT_STREQ(role_of("a"), "NONE");
    sus[0].failing = false; /* restarted and registered again */
    settle();
    ASSERT_STREQ(role_of("a"), "STANDBY");
    ASSERT_STREQ(role_of("b"), "ACTIVE"); /* no failback by default */
}

TEST(standby_failure_assigns_no_active_change) {
    setup(2);
    settle();
    fail_su(&sus[1]);
    ASSERT_EQ(settle(), 0);
    ASSERT_STREQ(role_of("a"), "ACTIVE");
}

TEST(no_unit_in_service_leaves_si_unassigned) {
    setup(2);
    sus[0].oper = SU_DISABLED;
    sus[1].admin = SU_LOCKED;
    ASSERT_EQ(settle(), 0);
    ASSERT(si.unassigned_since > 0);
}

TEST(switchover_quiesces_then_promotes_then_demotes) {
    setup(2);
    settle();
    size_t base = n_actions;
    si.switchover = true;
    evaluate();
    expect(base, "assign", "a", HALO_HA_QUIESCING);
    evaluate(); /* waits for quiescing complete */
    ASSERT_EQ(n_actions, base + 1);
    confirm_all();
    ASSERT_STREQ(role_of("a"), "QUIESCED");
    evaluate();
    expect(base + 1, "assign", "b", HALO_HA_ACTIVE);
    ASSERT_EQ(actions[base + 1].transition, HALO_CSI_QUIESCED);
    confirm_all();
    evaluate();
    expect(base + 2, "assign", "a", HALO_HA_STANDBY);
    expect(base + 3, "switchover", NULL, 0);
    ASSERT_EQ(actions[base + 3].error, 0);
    confirm_all();
    ASSERT_EQ(settle(), 0);
    ASSERT_STREQ(role_of("b"), "ACTIVE");
    ASSERT_STREQ(role_of("a"), "STANDBY");
}

TEST(switchover_without_standby_is_refused_and_changes_nothing) {
    setup(2);
    settle();
    fail_su(&sus[1]);
    size_t base = n_actions;
    si.switchover = true;
    evaluate();
    expect(base, "switchover", NULL, 0);
    ASSERT_EQ(actions[base].error, -HALO_EBADSTATE);
    ASSERT_EQ(n_actions, base + 1);
    ASSERT_STREQ(role_of("a"), "ACTIVE");
}

TEST(new_active_failing_during_switchover_gives_back_to_quiesced) {
    setup(2);
    settle();
    si.switchover = true;
    evaluate();
    confirm_all(); /* a QUIESCED */
    evaluate();    /* b asked to be ACTIVE */
    fail_su(&sus[1]);
    size_t base = n_actions;
    evaluate();
    /* The quiesced a is still healthy: it takes ACTIVE back. */
    expect(base, "switchover", NULL, 0);
    ASSERT(actions[base].error < 0);
    expect(base + 1, "assign", "a", HALO_HA_ACTIVE);
    ASSERT_EQ(actions[base + 1].transition, HALO_CSI_STILL_ACTIVE);
}

TEST(lock_active_moves_work_to_standby_and_removes_it) {
    setup(2);
    settle();
    sus[0].admin = SU_LOCKED;
    size_t base = n_actions;
    settle();
    expect(base, "assign", "a", HALO_HA_QUIESCING);
    expect(base + 1, "assign", "b", HALO_HA_ACTIVE);
    expect(base + 2, "unassign", "a", 0);
    ASSERT_STREQ(role_of("b"), "ACTIVE");
    ASSERT_STREQ(role_of("a"), "NONE");
    /* Unlock: back as STANDBY. */
    sus[0].admin = SU_UNLOCKED;
    settle();
    ASSERT_STREQ(role_of("a"), "STANDBY");
}

TEST(a_standby_not_ready_is_not_made_active) {
    /* b is STANDBY but not ready (a pool process still recovering): locking
     * or losing a leaves the SI without ACTIVE until b is ready. */
    setup(2);
    settle();
    not_ready[1] = true;
    sus[0].admin = SU_LOCKED;
    size_t base = n_actions;
    settle();
    expect(base, "assign", "a", HALO_HA_QUIESCING);
    expect(base + 1, "unassign", "a", 0);
    ASSERT_EQ(n_actions, base + 2);
    ASSERT_STREQ(role_of("b"), "STANDBY");
    not_ready[1] = false;
    settle();
    ASSERT_STREQ(role_of("b"), "ACTIVE");
    /* Nor does a failover give ACTIVE to a STANDBY that is not ready. */
    sus[0].admin = SU_UNLOCKED;
    settle();
    not_ready[0] = true;
    ASSERT_STREQ(role_of("a"), "STANDBY");
    fail_su(&sus[1]);
    settle();
    ASSERT_STREQ(role_of("a"), "STANDBY");
    ASSERT_STREQ(role_of("b"), "NONE");
}

TEST(lock_standby_removes_it) {
    setup(2);
    settle();
    sus[1].admin = SU_LOCKED;
    size_t base = n_actions;
    settle();
    expect(base, "unassign", "b", 0);
    ASSERT_EQ(n_actions, base + 1);
    ASSERT_STREQ(role_of("a"), "ACTIVE");
}

TEST(lock_active_without_standby_quiesces_and_removes) {
    setup(2);
    settle();
    fail_su(&sus[1]);
    sus[0].admin = SU_LOCKED;
    size_t base = n_actions;
    settle();
    expect(base, "assign", "a", HALO_HA_QUIESCING);
    expect(base + 1, "unassign", "a", 0);
    ASSERT_STREQ(role_of("a"), "NONE");
}

TEST(units_on_other_nodes_are_never_assigned_here) {
    setup(2);
    sus[0].local = false;
    settle();
    ASSERT_STREQ(role_of("a"), "NONE");
    ASSERT_STREQ(role_of("b"), "ACTIVE");
}

TEST(auto_failback_returns_active_to_the_preferred_unit) {
    setup(2);
    sg_cfg.auto_failback = true;
    settle();
    fail_su(&sus[0]);
    settle();
    ASSERT_STREQ(role_of("b"), "ACTIVE");
    sus[0].failing = false; /* a is back: STANDBY first, then ACTIVE again, gracefully */
    size_t base = n_actions;
    settle();
    expect(base, "assign", "a", HALO_HA_STANDBY);
    expect(base + 1, "assign", "b", HALO_HA_QUIESCING);
    expect(base + 2, "assign", "a", HALO_HA_ACTIVE);
    ASSERT_EQ(actions[base + 2].transition, HALO_CSI_QUIESCED);
    ASSERT_STREQ(role_of("a"), "ACTIVE");
    ASSERT_STREQ(role_of("b"), "STANDBY");
}

TEST(no_failback_without_auto_failback) {
    setup(2);
    settle();
    fail_su(&sus[0]);
    settle();
    sus[0].failing = false;
    settle();
    ASSERT_STREQ(role_of("b"), "ACTIVE");
    ASSERT_STREQ(role_of("a"), "STANDBY");
}
