/* SPDX-License-Identifier: MIT */
/* Unit tests of the no-redundancy model (src/halod/amf/amf-nored.c) with the stubs of amf-fixture.c. */
#include "amf-fixture.h"

TEST(each_si_active_on_its_own_unit_one_step_at_a_time) {
    fx_setup(&amf_nored_ops, 3, 2);
    fx_evaluate();
    ASSERT_EQ(n_actions, 2); /* one step per SI */
    fx_expect(0, "assign", "a", HALO_HA_ACTIVE);
    ASSERT_EQ(actions[0].transition, HALO_CSI_NEW_ASSIGN);
    fx_expect(1, "assign", "b", HALO_HA_ACTIVE);
    fx_evaluate(); /* nothing while the CSI sets are in flight */
    ASSERT_EQ(n_actions, 2);
    fx_confirm_all();
    ASSERT_EQ(fx_settle(), 0); /* no STANDBY, c stays a spare */
    ASSERT_STREQ(fx_role(0, "a"), "ACTIVE");
    ASSERT_STREQ(fx_role(1, "b"), "ACTIVE");
    ASSERT_STREQ(fx_role(0, "c"), "NONE");
    ASSERT_STREQ(fx_role(1, "c"), "NONE");
}

TEST(a_failed_units_si_goes_to_the_spare) {
    fx_setup(&amf_nored_ops, 3, 2);
    fx_settle();
    fx_fail_su(&sus[0]);
    size_t base = n_actions;
    fx_evaluate();
    fx_expect(base, "assign", "c", HALO_HA_ACTIVE);
    ASSERT_EQ(actions[base].transition, HALO_CSI_NEW_ASSIGN);
    ASSERT_EQ(n_actions, base + 1); /* s1 on b is left alone */
    fx_confirm_all();
    fx_repair_su(&sus[0]);
    ASSERT_EQ(fx_settle(), 0); /* a is the spare now: nothing moves back */
    ASSERT_STREQ(fx_role(0, "c"), "ACTIVE");
    ASSERT_STREQ(fx_role(1, "b"), "ACTIVE");
}

TEST(capacity_short_the_lower_ranked_si_is_dropped) {
    fx_setup(&amf_nored_ops, 2, 2);
    fx_settle();
    ASSERT_STREQ(fx_role(1, "b"), "ACTIVE");
    fx_fail_su(&sus[0]); /* s0 (rank 0) lost its unit; only b is left */
    size_t base = n_actions;
    fx_evaluate();
    fx_expect_si(base, "unassign", "s1", "b", 0);
    fx_confirm_all();
    fx_evaluate();
    fx_expect_si(base + 1, "assign", "s0", "b", HALO_HA_ACTIVE);
    fx_confirm_all();
    ASSERT_EQ(fx_settle(), 0);
    ASSERT_STREQ(fx_role(0, "b"), "ACTIVE");
    ASSERT_STREQ(fx_role(1, "b"), "NONE");
    ASSERT(sis[1].unassigned_since > 0);
    fx_repair_su(&sus[0]); /* back: s1 gets it */
    fx_settle();
    ASSERT_STREQ(fx_role(1, "a"), "ACTIVE");
}

TEST(lock_quiesces_removes_and_moves_to_the_spare) {
    fx_setup(&amf_nored_ops, 2, 1);
    fx_settle();
    sus[0].admin = SU_SHUTTING_DOWN;
    size_t base = n_actions;
    fx_settle();
    fx_expect(base, "assign", "a", HALO_HA_QUIESCING);
    fx_expect(base + 1, "unassign", "a", 0);
    fx_expect(base + 2, "assign", "b", HALO_HA_ACTIVE);
    ASSERT_EQ(n_actions, base + 3);
    sus[0].admin = SU_UNLOCKED;
    ASSERT_EQ(fx_settle(), 0);
    ASSERT_STREQ(fx_role(0, "b"), "ACTIVE");
}

TEST(a_unit_not_ready_is_not_made_active) {
    fx_setup(&amf_nored_ops, 2, 1);
    not_ready[0] = true;
    fx_settle();
    ASSERT_STREQ(fx_role(0, "a"), "NONE");
    ASSERT_STREQ(fx_role(0, "b"), "ACTIVE");
}
