/* SPDX-License-Identifier: MIT */
/* Unit tests of the N-way-active model (src/halod/amf/amf-nwayactive.c) with the stubs of amf-fixture.c. */
#include "amf-fixture.h"
#include "macro.h"

TEST(active_on_every_unit_by_default) {
    fx_setup(&amf_nwayactive_ops, 3, 1);
    fx_evaluate();
    ASSERT_EQ(n_actions, 1); /* one step per SI at a time */
    fx_expect(0, "assign", "a", HALO_HA_ACTIVE);
    fx_confirm_all();
    fx_evaluate();
    fx_expect(1, "assign", "b", HALO_HA_ACTIVE);
    fx_confirm_all();
    fx_evaluate();
    fx_expect(2, "assign", "c", HALO_HA_ACTIVE);
    ASSERT_EQ(actions[2].transition, HALO_CSI_NEW_ASSIGN);
    fx_confirm_all();
    ASSERT_EQ(fx_settle(), 0);
    ASSERT_EQ(fx_count(0, HALO_HA_ACTIVE), 3);
    ASSERT_EQ(fx_count(0, HALO_HA_STANDBY), 0);
}

TEST(losing_one_unit_leaves_the_others_active_and_it_comes_back_active) {
    fx_setup(&amf_nwayactive_ops, 3, 1);
    fx_settle();
    fx_fail_su(&sus[1]);
    ASSERT_EQ(fx_settle(), 0); /* nobody else to take it: a and c untouched */
    ASSERT_STREQ(fx_role(0, "a"), "ACTIVE");
    ASSERT_STREQ(fx_role(0, "c"), "ACTIVE");
    ASSERT_STREQ(fx_role(0, "b"), "NONE");
    fx_repair_su(&sus[1]);
    size_t base = n_actions;
    ASSERT_EQ(fx_settle(), 1);
    fx_expect(base, "assign", "b", HALO_HA_ACTIVE);
    ASSERT_EQ(fx_count(0, HALO_HA_ACTIVE), 3);
}

TEST(active_assignments_bounds_the_actives_and_a_spare_takes_over) {
    fx_setup(&amf_nwayactive_ops, 3, 1);
    si_cfg[0].active_assignments = 2;
    fx_settle();
    ASSERT_STREQ(fx_role(0, "a"), "ACTIVE");
    ASSERT_STREQ(fx_role(0, "b"), "ACTIVE");
    ASSERT_STREQ(fx_role(0, "c"), "NONE");
    fx_fail_su(&sus[0]);
    size_t base = n_actions;
    fx_settle();
    fx_expect(base, "assign", "c", HALO_HA_ACTIVE);
    ASSERT_EQ(fx_count(0, HALO_HA_ACTIVE), 2);
    fx_repair_su(&sus[0]); /* back, but two are ACTIVE already */
    ASSERT_EQ(fx_settle(), 0);
}

TEST(lock_quiesces_and_removes_one_the_others_stay) {
    fx_setup(&amf_nwayactive_ops, 3, 1);
    fx_settle();
    sus[1].admin = SU_SHUTTING_DOWN;
    size_t base = n_actions;
    fx_settle();
    fx_expect(base, "assign", "b", HALO_HA_QUIESCING);
    fx_expect(base + 1, "unassign", "b", 0);
    ASSERT_EQ(n_actions, base + 2);
    ASSERT_EQ(fx_count(0, HALO_HA_ACTIVE), 2);
    sus[1].admin = SU_UNLOCKED;
    fx_settle();
    ASSERT_STREQ(fx_role(0, "b"), "ACTIVE");
}

TEST(a_failure_while_fenced_waits) {
    fx_setup(&amf_nwayactive_ops, 3, 1);
    si_cfg[0].active_assignments = 2;
    fx_settle();
    fx_fail_su(&sus[0]);
    sis[0].fencing = &sus[0];
    ASSERT_EQ(fx_settle(), 0);
    sis[0].fencing = NULL;
    ASSERT_EQ(fx_settle(), 1);
    ASSERT_STREQ(fx_role(0, "c"), "ACTIVE");
}

TEST(max_active_sis_per_su_and_the_lower_ranked_si_gives_way) {
    fx_setup(&amf_nwayactive_ops, 2, 2);
    sg_cfg.max_active_sis_per_su = 1;
    si_cfg[0].active_assignments = 1;
    si_cfg[1].active_assignments = 1;
    fx_settle();
    ASSERT_STREQ(fx_role(0, "a"), "ACTIVE");
    ASSERT_STREQ(fx_role(1, "b"), "ACTIVE"); /* a is full */
    fx_fail_su(&sus[0]);
    size_t base = n_actions;
    fx_settle();
    fx_expect_si(base, "unassign", "s1", "b", 0);
    fx_expect_si(base + 1, "assign", "s0", "b", HALO_HA_ACTIVE);
    ASSERT_STREQ(fx_role(1, "b"), "NONE");
}

TEST(a_unit_not_ready_is_not_made_active) {
    fx_setup(&amf_nwayactive_ops, 3, 1);
    not_ready[2] = true;
    fx_settle();
    ASSERT_EQ(fx_count(0, HALO_HA_ACTIVE), 2);
    ASSERT_STREQ(fx_role(0, "c"), "NONE");
    not_ready[2] = false;
    fx_settle();
    ASSERT_STREQ(fx_role(0, "c"), "ACTIVE");
}

TEST(no_si_is_dropped_for_an_extra_active_of_another) {
    fx_setup(&amf_nwayactive_ops, 3, 2);
    sg_cfg.max_active_sis_per_su = 1;
    si_cfg[0].active_assignments = 2;
    si_cfg[1].active_assignments = 1;
    fx_settle();
    ASSERT_EQ(fx_count(0, HALO_HA_ACTIVE), 2);
    ASSERT_EQ(fx_count(1, HALO_HA_ACTIVE), 1);
    /* s0 loses one of its units, keeps the other: s1 keeps its unit. */
    size_t s1_unit = streq(fx_role(1, "a"), "ACTIVE") ? 0 : streq(fx_role(1, "b"), "ACTIVE") ? 1 : 2;
    fx_fail_su(&sus[s1_unit == 0 ? 1 : 0]);
    ASSERT_EQ(fx_settle(), 0);
    ASSERT_EQ(fx_count(0, HALO_HA_ACTIVE), 1);
    ASSERT_STREQ(fx_role(1, sus[s1_unit].name), "ACTIVE");
}
