/* SPDX-License-Identifier: MIT */
/* Unit tests of the N+M model (src/halod/amf/amf-npm.c) with the stubs of amf-fixture.c. */
#include "amf-fixture.h"

/* 3+1: units a, b, c active, d standby; SIs s0, s1, s2. */
static void setup_3_1(size_t n_sus) {
    fx_setup(&amf_npm_ops, n_sus, 3);
    sg_cfg.active_sus = 3;
    sg_cfg.standby_sus = 1;
    fx_settle();
}

TEST(three_plus_one_spreads_actives_and_standbys_on_the_standby_unit) {
    setup_3_1(4);
    ASSERT_STREQ(fx_role(0, "a"), "ACTIVE");
    ASSERT_STREQ(fx_role(1, "b"), "ACTIVE");
    ASSERT_STREQ(fx_role(2, "c"), "ACTIVE");
    for (size_t i = 0; i < 3; i++)
        ASSERT_STREQ(fx_role(i, "d"), "STANDBY");
}

TEST(a_spare_beyond_n_plus_m_gets_nothing) {
    setup_3_1(5);
    for (size_t i = 0; i < 3; i++)
        ASSERT_STREQ(fx_role(i, "e"), "NONE");
}

TEST(an_active_units_failure_promotes_the_standby_unit_which_gives_up_its_standbys) {
    setup_3_1(4);
    fx_fail_su(&sus[1]);
    size_t base = n_actions;
    fx_evaluate();
    fx_expect_si(base, "assign", "s1", "d", HALO_HA_ACTIVE);
    ASSERT_EQ(actions[base].transition, HALO_CSI_NOT_QUIESCED);
    fx_confirm_all();
    fx_settle();
    /* d is an active unit now: never ACTIVE and STANDBY at once. */
    ASSERT_STREQ(fx_role(1, "d"), "ACTIVE");
    ASSERT_STREQ(fx_role(0, "d"), "NONE");
    ASSERT_STREQ(fx_role(2, "d"), "NONE");
    ASSERT_STREQ(fx_role(0, "a"), "ACTIVE");
    ASSERT_STREQ(fx_role(2, "c"), "ACTIVE");
    /* b back: it is the standby unit. */
    fx_repair_su(&sus[1]);
    fx_settle();
    for (size_t i = 0; i < 3; i++)
        ASSERT_STREQ(fx_role(i, "b"), "STANDBY");
}

TEST(the_standby_units_failure_leaves_the_actives_alone) {
    setup_3_1(4);
    fx_fail_su(&sus[3]);
    ASSERT_EQ(fx_settle(), 0); /* no unit may become a fourth role holder */
    ASSERT_EQ(fx_count(0, HALO_HA_ACTIVE) + fx_count(1, HALO_HA_ACTIVE) + fx_count(2, HALO_HA_ACTIVE), 3);
    ASSERT_EQ(fx_count(0, HALO_HA_STANDBY), 0);
}

TEST(lock_of_an_active_unit_hands_over_gracefully) {
    setup_3_1(4);
    sus[0].admin = SU_SHUTTING_DOWN;
    size_t base = n_actions;
    fx_settle();
    fx_expect(base, "assign", "a", HALO_HA_QUIESCING);
    fx_expect(base + 1, "assign", "d", HALO_HA_ACTIVE);
    ASSERT_EQ(actions[base + 1].transition, HALO_CSI_QUIESCED);
    fx_expect(n_actions - 1, "unassign", "a", 0);
    /* d took over: it gave up its STANDBYs of s1 and s2 (no unit is left to take them). */
    ASSERT_STREQ(fx_role(1, "d"), "NONE");
    ASSERT_STREQ(fx_role(2, "d"), "NONE");
    ASSERT_STREQ(fx_role(0, "d"), "ACTIVE");
    ASSERT_STREQ(fx_role(0, "a"), "NONE");
}

TEST(max_standby_sis_per_su_leaves_the_lowest_ranked_without_standby) {
    fx_setup(&amf_npm_ops, 4, 3);
    sg_cfg.active_sus = 3;
    sg_cfg.standby_sus = 1;
    sg_cfg.max_standby_sis_per_su = 2;
    fx_settle();
    ASSERT_STREQ(fx_role(0, "d"), "STANDBY");
    ASSERT_STREQ(fx_role(1, "d"), "STANDBY");
    ASSERT_STREQ(fx_role(2, "d"), "NONE");
    ASSERT_EQ(fx_count(2, HALO_HA_STANDBY), 0);
}

TEST(max_active_sis_per_su_and_active_sus_bound_the_actives) {
    fx_setup(&amf_npm_ops, 3, 3);
    sg_cfg.active_sus = 2;
    sg_cfg.standby_sus = 1;
    sg_cfg.max_active_sis_per_su = 1;
    fx_settle();
    ASSERT_STREQ(fx_role(0, "a"), "ACTIVE");
    ASSERT_STREQ(fx_role(1, "b"), "ACTIVE");
    ASSERT_EQ(fx_count(2, HALO_HA_ACTIVE), 0); /* two active units, one SI each */
    ASSERT(sis[2].unassigned_since > 0);
}

TEST(switchover_moves_active_to_the_standby_unit) {
    setup_3_1(4);
    size_t base = n_actions;
    sis[0].switchover = true;
    fx_settle();
    fx_expect(base, "assign", "a", HALO_HA_QUIESCING);
    fx_expect(base + 1, "assign", "d", HALO_HA_ACTIVE);
    ASSERT_STREQ(fx_role(0, "d"), "ACTIVE");
    ASSERT(!sis[0].switchover);
}

TEST(an_active_unit_still_starting_is_waited_for_not_packed_over) {
    fx_setup(&amf_npm_ops, 4, 3);
    sg_cfg.active_sus = 3;
    sg_cfg.standby_sus = 1;
    comps[2].presence = PRESENCE_INSTANTIATING; /* c is slower to start */
    fx_settle();
    ASSERT_STREQ(fx_role(2, "a"), "NONE"); /* s2 waits for c: not on a, nor d */
    ASSERT_STREQ(fx_role(2, "d"), "NONE");
    comps[2].presence = PRESENCE_INSTANTIATED;
    fx_settle();
    ASSERT_STREQ(fx_role(2, "c"), "ACTIVE");
    for (size_t i = 0; i < 3; i++)
        ASSERT_STREQ(fx_role(i, "d"), "STANDBY");
}

TEST(a_unit_is_not_kept_for_active_when_no_si_needs_one) {
    fx_setup(&amf_npm_ops, 3, 1);
    sg_cfg.active_sus = 2;
    sg_cfg.standby_sus = 1;
    fx_fail_su(&sus[2]); /* c, the unit that would be the standby, is down */
    fx_settle();
    ASSERT_STREQ(fx_role(0, "a"), "ACTIVE");
    ASSERT_STREQ(fx_role(0, "b"), "STANDBY"); /* b is not idled for a second SI that does not exist */
}
