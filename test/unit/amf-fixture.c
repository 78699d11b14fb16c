/* SPDX-License-Identifier: MIT */
/* The redundancy models' test fixture (amf-fixture.h): stubs of the AMF helpers and one SG. */
#include <stdarg.h>

#include "amf-fixture.h"
#include "log.h"
#include "macro.h"

struct action actions[256];
size_t n_actions;
struct comp comps[FX_SUS];
struct su sus[FX_SUS];
struct config_su su_cfg[FX_SUS];
struct si sis[FX_SIS];
struct config_si si_cfg[FX_SIS];
struct config_sg sg_cfg;
struct sg sg;
bool not_ready[FX_SUS];
static struct assignment asg[FX_SIS][FX_SUS];
static struct config_component fake_comp_cfg = {.name = "c"};

/* ---- stubs of amf.c and amf-assign.c ---- */

bool amf_su_in_service(const struct su *su) {
    return su->local && su->admin == SU_UNLOCKED && su->oper == SU_ENABLED && !su->failing &&
           su->comps[0].presence == PRESENCE_INSTANTIATED;
}

bool amf_su_may_be_active(const struct su *su) {
    return amf_su_in_service(su) && !not_ready[su - sus];
}

static struct action *record(const char *what, struct si *si, const char *su) {
    ASSERT(n_actions < ELEMENTSOF(actions));
    struct action *x = &actions[n_actions++];
    *x = (struct action){0};
    snprintf(x->what, sizeof(x->what), "%s", what);
    snprintf(x->si, sizeof(x->si), "%s", si ? si->name : "");
    snprintf(x->su, sizeof(x->su), "%s", su ? su : "");
    return x;
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
    struct action *x = record("assign", si, su->name);
    x->state = state;
    x->transition = transition;
    return 0;
}

int amf_unassign(struct si *si, struct assignment *a) {
    a->removing = true;
    a->pending = 1;
    record("unassign", si, a->su->name);
    return 0;
}

void amf_switchover_done(struct si *si, int error) {
    si->switchover = false;
    record("switchover", si, NULL)->error = error;
}

void amf_su_check_lock_done(struct su *su) {
}

void amf_si_drained(struct si *si) {
    if (si->admin == SI_SHUTTING_DOWN) /* as amf-admin-group.c's: a shutdown ends LOCKED */
        si->admin = SI_LOCKED;
    record("drained", si, NULL);
}

usec_t fx_adjust_delay;

void amf_sg_adjust_later(struct sg *group, usec_t delay) {
    fx_adjust_delay = delay;
}

/* ---- the fixture ---- */

void fx_setup(const struct redundancy_ops *ops, size_t n_sus, size_t n_sis) {
    static const char *su_names[FX_SUS] = {"a", "b", "c", "d", "e"};
    static const char *si_names[FX_SIS] = {"s0", "s1", "s2", "s3"};
    log_set_level(LOG_ERR_);
    memset(comps, 0, sizeof(comps));
    memset(sus, 0, sizeof(sus));
    memset(sis, 0, sizeof(sis));
    memset(asg, 0, sizeof(asg));
    memset(&sg, 0, sizeof(sg));
    memset(not_ready, 0, sizeof(not_ready));
    n_actions = 0;
    fx_adjust_delay = 0;
    sg_cfg = (struct config_sg){.name = "sg"};
    sg = (struct sg){.name = "sg", .cfg = &sg_cfg, .sus = sus, .n_sus = n_sus, .sis = sis, .n_sis = n_sis, .ops = ops};
    for (size_t i = 0; i < n_sus; i++) {
        su_cfg[i] = (struct config_su){.name = (char *)su_names[i], .rank = (unsigned)i};
        sus[i] = (struct su){
            .sg = &sg, .cfg = &su_cfg[i], .name = su_names[i], .local = true, .comps = &comps[i], .n_comps = 1};
        comps[i] = (struct comp){.su = &sus[i],
                                 .cfg = &fake_comp_cfg,
                                 .name = su_names[i],
                                 .presence = PRESENCE_INSTANTIATED,
                                 .restarts = 1};
    }
    for (size_t i = 0; i < n_sis; i++) {
        si_cfg[i] = (struct config_si){.name = (char *)si_names[i], .rank = (unsigned)i};
        sis[i] = (struct si){.sg = &sg, .cfg = &si_cfg[i], .name = si_names[i], .asg = asg[i], .n_asg = n_sus};
    }
}

void fx_evaluate(void) {
    if (sg.ops->evaluate)
        sg.ops->evaluate(&sg);
    else
        amf_reconcile(&sg, sg.ops->policy);
}

/* Returns how many steps it completed. */
static size_t confirm_all(void) {
    size_t n = 0;
    for (size_t s = 0; s < sg.n_sis; s++)
        for (size_t i = 0; i < sis[s].n_asg; i++) {
            struct assignment *a = &sis[s].asg[i];
            if (!a->su || !a->pending)
                continue;
            a->pending = 0;
            n++;
            if (a->removing) {
                *a = (struct assignment){0};
                continue;
            }
            a->state = a->target == HALO_HA_QUIESCING ? HALO_HA_QUIESCED : a->target;
            a->target = a->state;
            a->confirmed = true;
        }
    return n;
}

void fx_confirm_all(void) {
    (void)confirm_all();
}

size_t fx_settle(void) {
    size_t before = n_actions;
    for (int i = 0; i < 40; i++) {
        size_t n = n_actions;
        fx_evaluate();
        if (confirm_all() == 0 && n_actions == n)
            break;
    }
    return n_actions - before;
}

const char *fx_role(size_t si, const char *su) {
    for (size_t i = 0; i < sis[si].n_asg; i++)
        if (sis[si].asg[i].su && streq(sis[si].asg[i].su->name, su))
            return halo_ha_state_to_string(sis[si].asg[i].state);
    return "NONE";
}

unsigned fx_count(size_t si, halo_ha_state state) {
    unsigned n = 0;
    for (size_t i = 0; i < sis[si].n_asg; i++)
        n += sis[si].asg[i].su && sis[si].asg[i].confirmed && sis[si].asg[i].state == state;
    return n;
}

void fx_expect(size_t i, const char *what, const char *su, halo_ha_state state) {
    if (i >= n_actions)
        CHECK_FAIL("action %zu expected (%s %s), only %zu", i, what, su ? su : "", n_actions);
    ASSERT_STREQ(actions[i].what, what);
    if (su)
        ASSERT_STREQ(actions[i].su, su);
    if (state)
        ASSERT_EQ(actions[i].state, state);
}

void fx_expect_si(size_t i, const char *what, const char *si, const char *su, halo_ha_state state) {
    fx_expect(i, what, su, state);
    ASSERT_STREQ(actions[i].si, si);
}

void fx_fail_su(struct su *su) {
    su->failing = true;
    for (size_t s = 0; s < sg.n_sis; s++)
        for (size_t i = 0; i < sis[s].n_asg; i++)
            if (sis[s].asg[i].su == su)
                sis[s].asg[i] = (struct assignment){0};
}

void fx_repair_su(struct su *su) {
    su->failing = false;
}

void fx_dump(void) {
    for (size_t i = 0; i < n_actions; i++)
        fprintf(stderr, "%zu: %s %s %s %s\n", i, actions[i].what, actions[i].si, actions[i].su,
                actions[i].state ? halo_ha_state_to_string(actions[i].state) : "");
}
