/* SPDX-License-Identifier: MIT */
/*
 * Unit tests of the 2N redundancy model (src/halod/amf/amf-2n.c and the
 * reconciler it runs) on its own, with the recording stubs of amf-fixture.c.
 */
#include "amf-fixture.h"
#include "macro.h"

static void setup(size_t n_sus) {
    fx_setup(&amf_2n_ops, n_sus, 1);
}

static const char *role_of(const char *su) {
    return fx_role(0, su);
}

/* ---- tests --------------------------------------------------------------- */

TEST(initial_assignment_active_then_standby_in_rank_order) {
    setup(2);
    fx_evaluate();
    ASSERT_EQ(n_actions, 1); /* only ACTIVE first: the standby waits for it */
    fx_expect(0, "assign", "a", HALO_HA_ACTIVE);
    ASSERT_EQ(actions[0].transition, HALO_CSI_NEW_ASSIGN);
    fx_evaluate(); /* nothing while the CSI set is in flight */
    ASSERT_EQ(n_actions, 1);
    fx_confirm_all();
    fx_evaluate();
    fx_expect(1, "assign", "b", HALO_HA_STANDBY);
    fx_confirm_all();
    ASSERT_EQ(fx_settle(), 0);
    ASSERT_STREQ(role_of("a"), "ACTIVE");
    ASSERT_STREQ(role_of("b"), "STANDBY");
}

TEST(waits_for_preferred_unit_still_instantiating) {
    setup(2);
    comps[0].presence = PRESENCE_INSTANTIATING; /* a is slower to start than b */
    fx_evaluate();
    ASSERT_EQ(n_actions, 0);
    comps[0].presence = PRESENCE_INSTANTIATED;
    fx_evaluate();
    fx_expect(0, "assign", "a", HALO_HA_ACTIVE);
}

TEST(does_not_wait_for_a_restarting_preferred_unit) {
    setup(2);
    comps[0].presence = PRESENCE_INSTANTIATING;
    comps[0].restarts = 2; /* not its first start: b must not wait for it */
    fx_evaluate();
    fx_expect(0, "assign", "b", HALO_HA_ACTIVE);
}

TEST(previous_active_is_preferred_after_restart) {
    setup(2);
    sis[0].preferred_active = "b";
    fx_settle();
    ASSERT_STREQ(role_of("b"), "ACTIVE");
    ASSERT_STREQ(role_of("a"), "STANDBY");
}

TEST(active_failure_promotes_standby_not_quiesced) {
    setup(3);
    fx_settle();
    fx_fail_su(&sus[0]);
    size_t base = n_actions;
    fx_evaluate();
    fx_expect(base, "assign", "b", HALO_HA_ACTIVE);
    ASSERT_EQ(actions[base].transition, HALO_CSI_NOT_QUIESCED);
    fx_confirm_all();
    fx_evaluate(); /* and a new standby from the remaining in-service unit */
    fx_expect(base + 1, "assign", "c", HALO_HA_STANDBY);
}

TEST(failover_waits_while_the_failed_active_is_fenced) {
    setup(2);
    fx_settle();
    fx_fail_su(&sus[0]);
    sis[0].fencing = &sus[0];
    size_t base = n_actions;
    fx_evaluate();
    ASSERT_EQ(n_actions, base); /* the dead ACTIVE is not reaped yet */
    sis[0].fencing = NULL;
    fx_evaluate();
    fx_expect(base, "assign", "b", HALO_HA_ACTIVE);
}

TEST(failed_unit_comes_back_as_standby) {
    setup(2);
    fx_settle();
    fx_fail_su(&sus[0]);
    fx_settle();
    ASSERT_STREQ(role_of("b"), "ACTIVE");
    ASSERT_STREQ(role_of("a"), "NONE");
    sus[0].failing = false; /* restarted and registered again */
    fx_settle();
    ASSERT_STREQ(role_of("a"), "STANDBY");
    ASSERT_STREQ(role_of("b"), "ACTIVE"); /* no failback by default */
}

TEST(standby_failure_assigns_no_active_change) {
    setup(2);
    fx_settle();
    fx_fail_su(&sus[1]);
    ASSERT_EQ(fx_settle(), 0);
    ASSERT_STREQ(role_of("a"), "ACTIVE");
}

TEST(no_unit_in_service_leaves_si_unassigned) {
    setup(2);
    sus[0].oper = SU_DISABLED;
    sus[1].admin = SU_LOCKED;
    ASSERT_EQ(fx_settle(), 0);
    ASSERT(sis[0].unassigned_since > 0);
}

TEST(switchover_quiesces_then_promotes_then_demotes) {
    setup(2);
    fx_settle();
    size_t base = n_actions;
    sis[0].switchover = true;
    fx_evaluate();
    fx_expect(base, "assign", "a", HALO_HA_QUIESCING);
    fx_evaluate(); /* waits for quiescing complete */
    ASSERT_EQ(n_actions, base + 1);
    fx_confirm_all();
    ASSERT_STREQ(role_of("a"), "QUIESCED");
    fx_evaluate();
    fx_expect(base + 1, "assign", "b", HALO_HA_ACTIVE);
    ASSERT_EQ(actions[base + 1].transition, HALO_CSI_QUIESCED);
    fx_confirm_all();
    fx_evaluate();
    fx_expect(base + 2, "assign", "a", HALO_HA_STANDBY);
    fx_expect(base + 3, "switchover", NULL, 0);
    ASSERT_EQ(actions[base + 3].error, 0);
    fx_confirm_all();
    ASSERT_EQ(fx_settle(), 0);
    ASSERT_STREQ(role_of("b"), "ACTIVE");
    ASSERT_STREQ(role_of("a"), "STANDBY");
}

TEST(switchover_without_standby_is_refused_and_changes_nothing) {
    setup(2);
    fx_settle();
    fx_fail_su(&sus[1]);
    size_t base = n_actions;
    sis[0].switchover = true;
    fx_evaluate();
    fx_expect(base, "switchover", NULL, 0);
    ASSERT_EQ(actions[base].error, -HALO_EBADSTATE);
    ASSERT_EQ(n_actions, base + 1);
    ASSERT_STREQ(role_of("a"), "ACTIVE");
}

TEST(new_active_failing_during_switchover_gives_back_to_quiesced) {
    setup(2);
    fx_settle();
    sis[0].switchover = true;
    fx_evaluate();
    fx_confirm_all(); /* a QUIESCED */
    fx_evaluate();    /* b asked to be ACTIVE */
    fx_fail_su(&sus[1]);
    size_t base = n_actions;
    fx_evaluate();
    /* The quiesced a is still healthy: it takes ACTIVE back. */
    fx_expect(base, "switchover", NULL, 0);
    ASSERT(actions[base].error < 0);
    fx_expect(base + 1, "assign", "a", HALO_HA_ACTIVE);
    ASSERT_EQ(actions[base + 1].transition, HALO_CSI_STILL_ACTIVE);
}

/* a, ACTIVE, leaves by q (QUIESCED for a lock, QUIESCING for a shutdown);
 * b takes over once a is quiesced, then a holds nothing. */
static void active_leaves(enum su_admin admin, halo_ha_state q) {
    setup(2);
    fx_settle();
    sus[0].admin = admin;
    size_t base = n_actions;
    fx_evaluate();
    fx_expect(base, "assign", "a", q);
    fx_evaluate(); /* nothing more until a is quiesced */
    ASSERT_EQ(n_actions, base + 1);
    fx_settle();
    fx_expect(base + 1, "assign", "b", HALO_HA_ACTIVE);
    ASSERT_EQ(actions[base + 1].transition, HALO_CSI_QUIESCED);
    fx_expect(base + 2, "unassign", "a", 0);
    ASSERT_STREQ(role_of("b"), "ACTIVE");
    ASSERT_STREQ(role_of("a"), "NONE");
}

TEST(lock_active_quiesces_it_at_once_then_hands_over_and_removes_it) {
    active_leaves(SU_LOCKED, HALO_HA_QUIESCED); /* a lock does not wait for the work to complete */
    /* Unlock: back as STANDBY. */
    sus[0].admin = SU_UNLOCKED;
    fx_settle();
    ASSERT_STREQ(role_of("a"), "STANDBY");
}

TEST(shutdown_of_the_active_quiesces_gracefully_then_hands_over_and_removes_it) {
    active_leaves(SU_SHUTTING_DOWN, HALO_HA_QUIESCING);
}

TEST(a_lock_of_every_unit_leaves_nothing_assigned) {
    setup(2);
    fx_settle();
    sus[0].admin = SU_LOCKED;
    sus[1].admin = SU_LOCKED;
    fx_settle();
    ASSERT_STREQ(role_of("a"), "NONE");
    ASSERT_STREQ(role_of("b"), "NONE"); /* no ACTIVE left: the STANDBY of a locked unit goes too */
}

TEST(a_locked_si_quiesces_its_active_at_once_then_gives_up_everything) {
    setup(2);
    fx_settle();
    sis[0].admin = SI_LOCKED;
    size_t base = n_actions;
    fx_settle();
    fx_expect(base, "assign", "a", HALO_HA_QUIESCED);
    ASSERT_STREQ(role_of("a"), "NONE");
    ASSERT_STREQ(role_of("b"), "NONE");
    fx_expect(n_actions - 1, "drained", NULL, 0);
    sis[0].admin = SI_UNLOCKED;
    fx_settle();
    ASSERT_STREQ(role_of("a"), "ACTIVE");
    ASSERT_STREQ(role_of("b"), "STANDBY");
}

TEST(a_removed_si_is_drained_as_a_locked_one_then_never_assigned_again) {
    /* amf_si_remove() (a reload): its admin stays UNLOCKED (the store keeps no lock of it), and the
     * model takes it from its units as a lock does, at once (QUIESCED, not QUIESCING). */
    fx_setup(&amf_2n_ops, 2, 2);
    fx_settle();
    ASSERT_STREQ(fx_role(1, "a"), "ACTIVE");
    sis[1].removed = true;
    size_t base = n_actions;
    fx_settle();
    fx_expect_si(base, "assign", "s1", "a", HALO_HA_QUIESCED);
    ASSERT_STREQ(fx_role(1, "a"), "NONE");
    ASSERT_STREQ(fx_role(1, "b"), "NONE");
    fx_expect_si(n_actions - 1, "drained", "s1", NULL, 0);
    ASSERT_EQ(sis[1].admin, SI_UNLOCKED);
    /* The other SI keeps its roles, and the removed one stays empty whatever happens next. */
    ASSERT_STREQ(fx_role(0, "a"), "ACTIVE");
    ASSERT_STREQ(fx_role(0, "b"), "STANDBY");
    fx_fail_su(&sus[0]);
    fx_settle();
    fx_repair_su(&sus[0]);
    fx_settle();
    ASSERT_STREQ(fx_role(0, "b"), "ACTIVE");
    ASSERT_EQ(fx_count(1, HALO_HA_ACTIVE) + fx_count(1, HALO_HA_STANDBY), 0);
}

TEST(a_shutting_down_si_quiesces_its_active_gracefully) {
    setup(2);
    fx_settle();
    sis[0].admin = SI_SHUTTING_DOWN;
    size_t base = n_actions;
    fx_settle();
    fx_expect(base, "assign", "a", HALO_HA_QUIESCING);
    ASSERT_EQ(fx_count(0, HALO_HA_ACTIVE) + fx_count(0, HALO_HA_STANDBY), 0);
    ASSERT_EQ(sis[0].admin, SI_LOCKED);
}

TEST(a_standby_restarting_in_place_is_not_promoted) {
    setup(3);
    fx_settle();
    ASSERT_STREQ(role_of("b"), "STANDBY");
    comps[1].restart_in_place = true; /* b's process is being restarted: in service meanwhile (amf.c) */
    fx_fail_su(&sus[0]);
    size_t base = n_actions;
    fx_evaluate();
    fx_expect(base, "assign", "c", HALO_HA_ACTIVE);
    ASSERT_STREQ(role_of("b"), "STANDBY");
}

TEST(a_standby_not_ready_is_not_made_active) {
    /* b is STANDBY but not ready (a pool process still recovering): locking
     * or losing a leaves the SI without ACTIVE until b is ready. */
    setup(2);
    fx_settle();
    not_ready[1] = true;
    sus[0].admin = SU_SHUTTING_DOWN;
    size_t base = n_actions;
    fx_settle();
    fx_expect(base, "assign", "a", HALO_HA_QUIESCING);
    fx_expect(base + 1, "unassign", "a", 0);
    ASSERT_EQ(n_actions, base + 2);
    ASSERT_STREQ(role_of("b"), "STANDBY");
    not_ready[1] = false;
    fx_settle();
    ASSERT_STREQ(role_of("b"), "ACTIVE");
    /* Nor does a failover give ACTIVE to a STANDBY that is not ready. */
    sus[0].admin = SU_UNLOCKED;
    fx_settle();
    not_ready[0] = true;
    ASSERT_STREQ(role_of("a"), "STANDBY");
    fx_fail_su(&sus[1]);
    fx_settle();
    ASSERT_STREQ(role_of("a"), "STANDBY");
    ASSERT_STREQ(role_of("b"), "NONE");
}

TEST(lock_standby_removes_it) {
    setup(2);
    fx_settle();
    sus[1].admin = SU_LOCKED;
    size_t base = n_actions;
    fx_settle();
    fx_expect(base, "unassign", "b", 0);
    ASSERT_EQ(n_actions, base + 1);
    ASSERT_STREQ(role_of("a"), "ACTIVE");
}

TEST(lock_active_without_standby_quiesces_and_removes) {
    setup(2);
    fx_settle();
    fx_fail_su(&sus[1]);
    sus[0].admin = SU_SHUTTING_DOWN;
    size_t base = n_actions;
    fx_settle();
    fx_expect(base, "assign", "a", HALO_HA_QUIESCING);
    fx_expect(base + 1, "unassign", "a", 0);
    ASSERT_STREQ(role_of("a"), "NONE");
}

TEST(units_on_other_nodes_are_never_assigned_here) {
    setup(2);
    sus[0].local = false;
    fx_settle();
    ASSERT_STREQ(role_of("a"), "NONE");
    ASSERT_STREQ(role_of("b"), "ACTIVE");
}

TEST(auto_failback_returns_active_to_the_preferred_unit) {
    setup(2);
    sg_cfg.auto_failback = true;
    fx_settle();
    fx_fail_su(&sus[0]);
    fx_settle();
    ASSERT_STREQ(role_of("b"), "ACTIVE");
    sus[0].failing = false; /* a is back: STANDBY first, then ACTIVE again, gracefully */
    size_t base = n_actions;
    fx_settle();
    fx_expect(base, "assign", "a", HALO_HA_STANDBY);
    fx_expect(base + 1, "assign", "b", HALO_HA_QUIESCING);
    fx_expect(base + 2, "assign", "a", HALO_HA_ACTIVE);
    ASSERT_EQ(actions[base + 2].transition, HALO_CSI_QUIESCED);
    ASSERT_STREQ(role_of("a"), "ACTIVE");
    ASSERT_STREQ(role_of("b"), "STANDBY");
}

TEST(no_failback_without_auto_failback) {
    setup(2);
    fx_settle();
    fx_fail_su(&sus[0]);
    fx_settle();
    sus[0].failing = false;
    fx_settle();
    ASSERT_STREQ(role_of("b"), "ACTIVE");
    ASSERT_STREQ(role_of("a"), "STANDBY");
}

TEST(the_groups_sis_stay_together_on_one_unit_per_role) {
    fx_setup(&amf_2n_ops, 3, 2);
    fx_settle();
    ASSERT_STREQ(fx_role(0, "a"), "ACTIVE");
    ASSERT_STREQ(fx_role(1, "a"), "ACTIVE");
    ASSERT_STREQ(fx_role(0, "b"), "STANDBY");
    ASSERT_STREQ(fx_role(1, "b"), "STANDBY");
    fx_fail_su(&sus[0]);
    fx_settle();
    for (size_t i = 0; i < 2; i++) {
        ASSERT_STREQ(fx_role(i, "b"), "ACTIVE");
        ASSERT_STREQ(fx_role(i, "c"), "STANDBY");
    }
}
