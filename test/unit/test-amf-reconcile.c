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
    sus[0].admin = SU_SHUTTING_DOWN;
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

/* ---- random sequences: what must hold whatever happens ---- */

/* At most one ACTIVE (or QUIESCING: still serving) per SI where the model allows one. */
static void check_one_active(size_t n_sis) {
    for (size_t s = 0; s < n_sis; s++) {
        unsigned n = 0;
        for (size_t i = 0; i < sis[s].n_asg; i++)
            n += sis[s].asg[i].su &&
                 (sis[s].asg[i].target == HALO_HA_ACTIVE || sis[s].asg[i].target == HALO_HA_QUIESCING);
        ASSERT(n <= 1);
    }
}

/* Settled: the limits and roles of the model hold. */
static void check_settled(const struct redundancy_ops *ops, size_t n_sus, size_t n_sis) {
    for (size_t u = 0; u < n_sus; u++) {
        unsigned act = 0, sb = 0;
        for (size_t s = 0; s < n_sis; s++) {
            act += streq(fx_role(s, sus[u].name), "ACTIVE");
            sb += streq(fx_role(s, sus[u].name), "STANDBY");
        }
        if (sg_cfg.max_active_sis_per_su)
            ASSERT(act <= sg_cfg.max_active_sis_per_su);
        if (ops == &amf_nored_ops)
            ASSERT(act + sb <= 1);
        if (ops == &amf_npm_ops)
            ASSERT(act == 0 || sb == 0);
        if (!amf_su_in_service(&sus[u]))
            ASSERT(act + sb == 0);
    }
}

TEST(random_failures_locks_and_repairs_keep_every_models_rules) {
    const struct redundancy_ops *models[] = {&amf_2n_ops, &amf_npm_ops, &amf_nway_ops, &amf_nwayactive_ops,
                                             &amf_nored_ops};
    srand(15);
    for (size_t m = 0; m < ELEMENTSOF(models); m++)
        for (int round = 0; round < 20; round++) {
            size_t n_sus = 3 + (size_t)(rand() % 3), n_sis = 1 + (size_t)(rand() % 3);
            fx_setup(models[m], n_sus, n_sis);
            sg_cfg.active_sus = (unsigned)n_sus - 1;
            sg_cfg.standby_sus = 1;
            if (models[m] != &amf_2n_ops && models[m] != &amf_nored_ops && rand() % 2)
                sg_cfg.max_active_sis_per_su = 1 + (unsigned)(rand() % 2);
            for (int step = 0; step < 60; step++) {
                struct su *su = &sus[rand() % (int)n_sus];
                switch (rand() % 5) {
                case 0:
                    fx_fail_su(su);
                    break;
                case 1:
                    fx_repair_su(su);
                    break;
                case 2:
                    su->admin = su->admin == SU_LOCKED ? SU_UNLOCKED : SU_LOCKED;
                    break;
                case 3:
                    not_ready[su - sus] = !not_ready[su - sus];
                    break;
                default:
                    sis[rand() % (int)n_sis].switchover = models[m] != &amf_nwayactive_ops;
                    break;
                }
                /* Some steps complete, some are still in flight at the next change. */
                fx_evaluate();
                if (models[m] != &amf_nwayactive_ops)
                    check_one_active(n_sis);
                if (rand() % 3)
                    fx_confirm_all();
            }
            fx_settle();
            check_settled(models[m], n_sus, n_sis);
            /* Everything healthy again: every SI gets what the model wants (units allowing). */
            for (size_t u = 0; u < n_sus; u++) {
                fx_repair_su(&sus[u]);
                sus[u].admin = SU_UNLOCKED;
                not_ready[u] = false;
            }
            fx_settle();
            check_settled(models[m], n_sus, n_sis);
            if (sg_cfg.max_active_sis_per_su)
                continue; /* the limit may leave SIs unassigned */
            const struct amf_policy *p = models[m]->policy;
            for (size_t s = 0; s < n_sis; s++) {
                ASSERT_EQ(fx_count(s, HALO_HA_ACTIVE), p->actives(&sis[s]));
                ASSERT_EQ(fx_count(s, HALO_HA_STANDBY), p->standbys(&sis[s]));
            }
        }
}
