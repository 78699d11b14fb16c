/* SPDX-License-Identifier: MIT */
/* Unit tests of what every model shares (src/halod/amf/amf-reconcile.c): fencing, switchover, SI dependencies. */
#include "amf-fixture.h"
#include "macro.h"

static char *s1_name[] = {"s1"};

/* s0 depends on s1 (s0 is evaluated first: the order alone does not help). */
static void depends(void) {
    si_cfg[0].depends_on = s1_name;
    si_cfg[0].n_depends_on = 1;
}

TEST(a_dependent_si_is_assigned_active_only_after_its_sponsor) {
    fx_setup(&amf_2n_ops, 2, 2);
    depends();
    fx_evaluate();
    ASSERT_EQ(n_actions, 1);
    fx_expect_si(0, "assign", "s1", "a", HALO_HA_ACTIVE);
    fx_evaluate(); /* s1 not confirmed yet: s0 waits, unassigned */
    ASSERT_EQ(n_actions, 1);
    ASSERT(sis[0].unassigned_since > 0);
    fx_confirm_all();
    fx_evaluate();
    fx_expect_si(1, "assign", "s0", "a", HALO_HA_ACTIVE);
    fx_settle();
    ASSERT_STREQ(fx_role(0, "a"), "ACTIVE");
    ASSERT_STREQ(fx_role(0, "b"), "STANDBY");
}

TEST(failover_promotes_the_sponsor_first) {
    fx_setup(&amf_2n_ops, 2, 2);
    depends();
    fx_settle();
    fx_fail_su(&sus[0]);
    size_t base = n_actions;
    fx_evaluate();
    ASSERT_EQ(n_actions, base + 1);
    fx_expect_si(base, "assign", "s1", "b", HALO_HA_ACTIVE);
    fx_confirm_all();
    fx_evaluate();
    fx_expect_si(base + 1, "assign", "s0", "b", HALO_HA_ACTIVE);
}

TEST(lock_removes_the_dependent_first) {
    fx_setup(&amf_2n_ops, 2, 2);
    depends();
    fx_settle();
    sus[0].admin = SU_LOCKED;
    size_t base = n_actions;
    fx_evaluate();
    ASSERT_EQ(n_actions, base + 1); /* the sponsor waits */
    fx_expect_si(base, "assign", "s0", "a", HALO_HA_QUIESCING);
    fx_settle();
    /* s1 quiesced only once s0 had left a. */
    size_t q1 = 0, gone0 = 0;
    for (size_t i = base; i < n_actions; i++) {
        if (streq(actions[i].si, "s1") && actions[i].state == HALO_HA_QUIESCING)
            q1 = i;
        if (streq(actions[i].si, "s0") && streq(actions[i].what, "unassign"))
            gone0 = i;
    }
    ASSERT(gone0 > 0 && q1 > gone0);
    ASSERT_STREQ(fx_role(0, "b"), "ACTIVE");
    ASSERT_STREQ(fx_role(1, "b"), "ACTIVE");
}

TEST(a_dependent_is_removed_when_its_sponsor_is_left_without_a_unit) {
    fx_setup(&amf_nored_ops, 2, 2);
    depends();
    fx_settle();
    ASSERT_STREQ(fx_role(1, "a"), "ACTIVE"); /* the sponsor first, on the best unit */
    ASSERT_STREQ(fx_role(0, "b"), "ACTIVE");
    fx_fail_su(&sus[0]); /* s1 has nowhere to go: b holds s0, which ranks before it */
    size_t base = n_actions;
    fx_settle();
    fx_expect_si(base, "unassign", "s0", "b", 0);
    /* b is free now: the sponsor takes it, then nothing for s0. */
    ASSERT_STREQ(fx_role(1, "b"), "ACTIVE");
    ASSERT_STREQ(fx_role(0, "b"), "NONE");
    fx_repair_su(&sus[0]);
    fx_settle();
    ASSERT_STREQ(fx_role(0, "a"), "ACTIVE");
}

static const struct redundancy_ops *const one_active[] = {&amf_2n_ops, &amf_npm_ops, &amf_nway_ops, &amf_nored_ops};

TEST(never_two_actives_while_the_failed_active_is_fenced_in_any_model) {
    for (size_t m = 0; m < ELEMENTSOF(one_active); m++) {
        fx_setup(one_active[m], 3, 1);
        sg_cfg.active_sus = 1; /* N+M: 1+1 and a spare */
        sg_cfg.standby_sus = 1;
        fx_settle();
        ASSERT_STREQ(fx_role(0, "a"), "ACTIVE");
        fx_fail_su(&sus[0]);
        sis[0].fencing = &sus[0]; /* its processes are not reaped yet */
        ASSERT_EQ(fx_settle(), 0);
        sis[0].fencing = NULL;
        fx_settle();
        ASSERT_EQ(fx_count(0, HALO_HA_ACTIVE), 1);
        ASSERT_STREQ(fx_role(0, "a"), "NONE");
    }
}

TEST(switchover_without_a_standby_model_is_refused) {
    const struct redundancy_ops *ops[] = {&amf_nored_ops, &amf_nwayactive_ops};
    for (size_t m = 0; m < ELEMENTSOF(ops); m++) {
        fx_setup(ops[m], 2, 1);
        fx_settle();
        size_t base = n_actions;
        sis[0].switchover = true;
        fx_evaluate();
        fx_expect(base, "switchover", NULL, 0);
        ASSERT_EQ(actions[base].error, -HALO_EBADSTATE);
        ASSERT_EQ(n_actions, base + 1);
        ASSERT_STREQ(fx_role(0, "a"), "ACTIVE");
    }
}
