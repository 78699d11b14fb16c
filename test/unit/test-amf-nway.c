/* SPDX-License-Identifier: MIT */
/* Unit tests of the N-way model (src/halod/amf/amf-nway.c) with the stubs of amf-fixture.c. */
#include "amf-fixture.h"

TEST(one_active_and_standby_assignments_standbys_in_rank_order) {
    fx_setup(&amf_nway_ops, 3, 1);
    si_cfg[0].standby_assignments = 2;
    fx_evaluate();
    fx_expect(0, "assign", "a", HALO_HA_ACTIVE);
    fx_confirm_all();
    fx_evaluate();
    fx_expect(1, "assign", "b", HALO_HA_STANDBY);
    fx_confirm_all();
    fx_evaluate();
    fx_expect(2, "assign", "c", HALO_HA_STANDBY);
    fx_confirm_all();
    ASSERT_EQ(fx_settle(), 0);
    ASSERT_EQ(fx_count(0, HALO_HA_ACTIVE), 1);
    ASSERT_EQ(fx_count(0, HALO_HA_STANDBY), 2);
}

TEST(one_standby_by_default) {
    fx_setup(&amf_nway_ops, 3, 1);
    fx_settle();
    ASSERT_EQ(fx_count(0, HALO_HA_STANDBY), 1);
    ASSERT_STREQ(fx_role(0, "c"), "NONE");
}

TEST(the_actives_failure_promotes_the_best_ranked_standby) {
    fx_setup(&amf_nway_ops, 3, 1);
    si_cfg[0].standby_assignments = 2;
    fx_settle();
    fx_fail_su(&sus[0]);
    size_t base = n_actions;
    fx_evaluate();
    fx_expect(base, "assign", "b", HALO_HA_ACTIVE);
    ASSERT_EQ(actions[base].transition, HALO_CSI_NOT_QUIESCED);
    fx_confirm_all();
    ASSERT_EQ(fx_settle(), 0); /* c stays STANDBY; nobody else to take a second one */
    ASSERT_STREQ(fx_role(0, "c"), "STANDBY");
    fx_repair_su(&sus[0]);
    fx_settle();
    ASSERT_STREQ(fx_role(0, "a"), "STANDBY");
    ASSERT_STREQ(fx_role(0, "b"), "ACTIVE");
}

TEST(a_unit_is_active_for_one_si_and_standby_for_another) {
    fx_setup(&amf_nway_ops, 2, 2);
    sg_cfg.max_active_sis_per_su = 1;
    fx_settle();
    ASSERT_STREQ(fx_role(0, "a"), "ACTIVE");
    ASSERT_STREQ(fx_role(0, "b"), "STANDBY");
    ASSERT_STREQ(fx_role(1, "b"), "ACTIVE");
    ASSERT_STREQ(fx_role(1, "a"), "STANDBY");
}

TEST(max_standby_sis_per_su_is_kept) {
    fx_setup(&amf_nway_ops, 3, 2);
    sg_cfg.max_standby_sis_per_su = 1;
    fx_settle();
    ASSERT_STREQ(fx_role(0, "b"), "STANDBY");
    ASSERT_STREQ(fx_role(1, "c"), "STANDBY");
}

TEST(lock_of_the_active_hands_over_to_a_standby) {
    fx_setup(&amf_nway_ops, 3, 1);
    si_cfg[0].standby_assignments = 2;
    fx_settle();
    sus[0].admin = SU_SHUTTING_DOWN;
    size_t base = n_actions;
    fx_settle();
    fx_expect(base, "assign", "a", HALO_HA_QUIESCING);
    fx_expect(base + 1, "assign", "b", HALO_HA_ACTIVE);
    ASSERT_EQ(actions[base + 1].transition, HALO_CSI_QUIESCED);
    fx_expect(base + 2, "unassign", "a", 0);
    ASSERT_STREQ(fx_role(0, "b"), "ACTIVE");
    ASSERT_STREQ(fx_role(0, "c"), "STANDBY");
}

TEST(a_promotion_keeps_max_active_sis_per_su_the_lower_ranked_si_gives_way) {
    fx_setup(&amf_nway_ops, 2, 2);
    sg_cfg.max_active_sis_per_su = 1;
    fx_settle();
    ASSERT_STREQ(fx_role(0, "b"), "STANDBY");
    ASSERT_STREQ(fx_role(1, "b"), "ACTIVE");
    fx_fail_su(&sus[0]); /* s0's STANDBY is on b, which holds s1 ACTIVE already */
    size_t base = n_actions;
    fx_settle();
    fx_expect_si(base, "unassign", "s1", "b", 0);
    fx_expect_si(base + 1, "assign", "s0", "b", HALO_HA_ACTIVE);
    ASSERT_EQ(actions[base + 1].transition, HALO_CSI_NOT_QUIESCED);
    ASSERT_STREQ(fx_role(1, "b"), "NONE"); /* never two ACTIVEs on b */
    fx_repair_su(&sus[0]);
    fx_settle();
    ASSERT_STREQ(fx_role(1, "a"), "ACTIVE");
    ASSERT_STREQ(fx_role(0, "a"), "STANDBY");
    ASSERT_STREQ(fx_role(1, "b"), "STANDBY");
}
