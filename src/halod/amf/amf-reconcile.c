/* SPDX-License-Identifier: MIT */
/*
 * The reconciler every redundancy model runs (amf-2n.c, amf-npm.c,
 * amf-nway.c, amf-nwayactive.c, amf-nored.c): it compares each SI's
 * assignments with what the model wants and issues the next step, one step per
 * SI at a time; every finished step (a confirmed CSI set or remove, a failure)
 * calls it again.  A model says how many ACTIVE and STANDBY assignments an SI
 * wants and which units may take a role (struct amf_policy); the steps, the
 * fencing rules and the SI order and dependencies are the same for all.
 *
 * The steps for one SI, in priority order:
 *   1. ACTIVE on an SU that must give it up (out of service; a switchover):
 *      quiesce it, once no dependent SI is ACTIVE on that SU any more.
 *   2. A QUIESCED assignment and too few ACTIVEs: hand ACTIVE to a STANDBY
 *      that may take it; else take it back, or remove it.
 *   3. A sponsor (depends-on) left without any assignment: remove this SI's
 *      ACTIVEs.
 *   4. Too few ACTIVEs: promote a STANDBY (on a unit below
 *      max-active-sis-per-su), else a new ACTIVE on the best unit
 *      the model allows, else (none at all) make room by dropping a
 *      lower-ranked SI.  Only once every sponsor is ACTIVE.
 *   5. ACTIVE confirmed and an old QUIESCED one left: STANDBY, or remove it.
 *   6. A STANDBY on an SU out of service, one the model no longer allows, or
 *      one too many: remove it.
 *   7. Too few STANDBYs: assign one to the best unit the model allows, else
 *      (none at all) make room by dropping a lower-ranked SI's.
 *   8. sg-adjust (auto-adjust: once the unit's probation has passed since it
 *      came back): a STANDBY that ranks before the ACTIVE gets ACTIVE back
 *      through a switchover.
 * An ACTIVE leaves a unit out of service by QUIESCING (a failure, a shutdown),
 * or at once by QUIESCED when an operator locked the unit.  A locked or
 * shutting-down SI gives up every assignment the same way.
 * The SIs of a group are evaluated in rank order (amf.c sorts them), so a
 * higher-ranked SI takes the capacity first.
 */
#define LOG_AREA LOG_AREA_AMF
#include <string.h>

#include "amf-internal.h"
#include "log.h"
#include "macro.h"

/* Whether the role counts as ACTIVE work (it may hold the service's resources). */
static bool activeish(halo_ha_state s) {
    return s == HALO_HA_ACTIVE || s == HALO_HA_QUIESCING || s == HALO_HA_QUIESCED;
}

unsigned amf_su_load(const struct su *su, halo_ha_state role) {
    const struct sg *sg = su->sg;
    unsigned n = 0;
    for (size_t i = 0; i < sg->n_sis; i++) {
        struct assignment *a = amf_si_find_su(&sg->sis[i], su);
        if (a && a->target && (role == HALO_HA_STANDBY ? a->target == HALO_HA_STANDBY : activeish(a->target)))
            n++;
    }
    return n;
}

bool amf_su_has_room(const struct su *su, halo_ha_state role) {
    const struct config_sg *c = su->sg->cfg;
    unsigned max = role == HALO_HA_STANDBY ? c->max_standby_sis_per_su : c->max_active_sis_per_su;
    return max == 0 || amf_su_load(su, role) < max;
}

unsigned amf_si_count(struct si *si, halo_ha_state role) {
    unsigned n = 0;
    for (size_t i = 0; i < si->n_asg; i++)
        n += si->asg[i].su && si->asg[i].target == role;
    return n;
}

/* The SI of si's group named name, or NULL. */
static struct si *sg_si(struct sg *sg, const char *name) {
    for (size_t i = 0; i < sg->n_sis; i++)
        if (!sg->sis[i].removed && streq(sg->sis[i].name, name))
            return &sg->sis[i];
    return NULL;
}

/* Every sponsor holds a confirmed ACTIVE: si may be given ACTIVE. */
static bool sponsors_active(struct si *si) {
    for (size_t d = 0; d < si->cfg->n_depends_on; d++) {
        struct si *sp = sg_si(si->sg, si->cfg->depends_on[d]);
        bool ok = false;
        for (size_t i = 0; sp && i < sp->n_asg; i++)
            ok = ok || (sp->asg[i].su && sp->asg[i].confirmed && sp->asg[i].state == HALO_HA_ACTIVE &&
                        sp->asg[i].target == HALO_HA_ACTIVE);
        if (sp && !ok)
            return false;
    }
    return true;
}

/* A sponsor holds nothing that may be ACTIVE soon (no ACTIVE, no hand-over,
 * no STANDBY): si's ACTIVEs must go. */
static bool sponsor_lost(struct si *si) {
    for (size_t d = 0; d < si->cfg->n_depends_on; d++) {
        struct si *sp = sg_si(si->sg, si->cfg->depends_on[d]);
        bool holds = false;
        for (size_t i = 0; sp && i < sp->n_asg; i++)
            holds = holds || (sp->asg[i].su && !sp->asg[i].removing);
        if (sp && !holds)
            return true;
    }
    return false;
}

/* An SI depending on si is ACTIVE (or quiescing) on su: si leaves su after it. */
static bool dependent_on(struct si *si, struct su *su) {
    struct sg *sg = si->sg;
    for (size_t i = 0; i < sg->n_sis; i++) {
        struct si *o = &sg->sis[i];
        for (size_t d = 0; d < o->cfg->n_depends_on; d++) {
            if (!streq(o->cfg->depends_on[d], si->name))
                continue;
            struct assignment *a = amf_si_find_su(o, su);
            if (a && activeish(a->target) && !a->removing)
                return true;
        }
    }
    return false;
}

/* How much an SU would be wanted for role in si if it could serve now
 * (higher is better, never negative), or -1. */
static long long su_fit(struct si *si, struct su *su, halo_ha_state role, const struct amf_policy *p) {
    if (amf_si_find_su(si, su) || (p->allowed && !p->allowed(si, su, role)))
        return -1;
    /* Rank, then the unit's load (together or spread), then the ACTIVE before a restart. */
    long long score = (1LL << 50) - (long long)su->cfg->rank;
    if (role == HALO_HA_ACTIVE && si->preferred_active && streq(si->preferred_active, su->name))
        score += 1LL << 48;
    if (p->together)
        score += (long long)amf_su_load(su, role) << 24;
    if (p->spread)
        score -= (long long)amf_su_load(su, role) << 24;
    return score;
}

/* How much an SU is wanted for role in si now, or -1. */
static long long su_score(struct si *si, struct su *su, halo_ha_state role, const struct amf_policy *p) {
    /* A unit restarting in place keeps its roles and takes nothing new. */
    if (!amf_su_in_service(su) || amf_su_restarting(su) || (role == HALO_HA_ACTIVE && !amf_su_may_be_active(su)))
        return -1;
    return su_fit(si, su, role, p);
}

/* Whether a component of su is still being instantiated for the first time (any of them:
 * a unit whose first component registered first is not in service before its others). */
static bool first_instantiation(const struct su *su) {
    for (size_t i = 0; i < su->n_comps; i++)
        if (su->comps[i].restarts <= 1 && su->comps[i].presence == PRESENCE_INSTANTIATING)
            return true;
    return false;
}

/* The best unit for role in si, or NULL; *ret_wait: NULL because a better
 * unit is still starting for the first time. */
static struct su *best_su(struct si *si, halo_ha_state role, const struct amf_policy *p, bool *ret_wait) {
    struct sg *sg = si->sg;
    struct su *best = NULL;
    long long best_score = -1;
    *ret_wait = false;
    for (size_t u = 0; u < sg->n_sus; u++) {
        long long s = su_score(si, &sg->sus[u], role, p);
        if (s > best_score) {
            best_score = s;
            best = &sg->sus[u];
        }
    }
    /* At start, do not hand ACTIVE to whichever unit registered first: wait
     * for a better one still being instantiated for the first time (its
     * instantiate timeout bounds the wait). */
    if (best && role == HALO_HA_ACTIVE)
        for (size_t u = 0; u < sg->n_sus; u++) {
            struct su *o = &sg->sus[u];
            if (o != best && o->local && o->admin == SU_UNLOCKED && !o->failing && first_instantiation(o) &&
                su_fit(si, o, role, p) > best_score) {
                *ret_wait = true;
                return NULL;
            }
        }
    return best;
}

/* Whether a, a STANDBY of si, may be promoted: confirmed, its unit may be
 * ACTIVE and has room for one more (max-active-sis-per-su). */
static bool may_promote(const struct assignment *a) {
    return a->su && a->target == HALO_HA_STANDBY && a->confirmed && !a->removing && amf_su_may_be_active(a->su) &&
           !amf_su_restarting(a->su) && amf_su_has_room(a->su, HALO_HA_ACTIVE);
}

/* The STANDBY of si to promote, the lowest rank; or NULL. */
static struct assignment *promotable(struct si *si) {
    struct assignment *best = NULL;
    for (size_t i = 0; i < si->n_asg; i++)
        if (may_promote(&si->asg[i]) && (!best || si->asg[i].su->cfg->rank < best->su->cfg->rank))
            best = &si->asg[i];
    return best;
}

/* No unit can take role for si: drop the lowest-ranked SI after si holding
 * role on a unit that would then be allowed.  true if one is being dropped. */
static bool make_room(struct si *si, halo_ha_state role, const struct amf_policy *p) {
    struct sg *sg = si->sg;
    for (size_t v = sg->n_sis; v-- > (size_t)(si - sg->sis) + 1;) {
        struct si *victim = &sg->sis[v];
        if (amf_si_busy(victim))
            continue;
        for (size_t i = 0; i < victim->n_asg; i++) {
            struct assignment *a = &victim->asg[i];
            if (!a->su || a->removing ||
                (role == HALO_HA_STANDBY ? a->target != HALO_HA_STANDBY : !activeish(a->target)))
                continue;
            /* Would a->su take si without a, or its STANDBY of si be promoted?
             * (The counts ignore a target of 0.) */
            struct assignment *own = amf_si_find_su(si, a->su);
            halo_ha_state t = a->target;
            a->target = 0;
            bool ok = su_score(si, a->su, role, p) >= 0 || (role == HALO_HA_ACTIVE && own && may_promote(own));
            a->target = t;
            if (!ok)
                continue;
            log_notice("Dropping '%s' from '%s' to make room for '%s', which ranks before it", victim->name,
                       a->su->name, si->name);
            (void)amf_unassign(victim, a);
            return true;
        }
    }
    return false;
}

/* The assignment of si with target state that the model wants least (highest rank). */
static struct assignment *worst(struct si *si, halo_ha_state state) {
    struct assignment *w = NULL;
    for (size_t i = 0; i < si->n_asg; i++) {
        struct assignment *a = &si->asg[i];
        if (a->su && a->target == state && !a->removing && (!w || a->su->cfg->rank > w->su->cfg->rank))
            w = a;
    }
    return w;
}

/* How an ACTIVE leaves su: QUIESCED at once when an operator locked the unit,
 * else QUIESCING (its work completes first: a shutdown, a switchover). */
static halo_ha_state quiesce_state(struct si *si, struct su *su) {
    return amf_su_admin(su) == SU_LOCKED && !si->switchover ? HALO_HA_QUIESCED : HALO_HA_QUIESCING;
}

/* A locked, shutting-down or removed SI: its ACTIVEs are quiesced (at once, or
 * QUIESCING for a shutdown), then every assignment is removed. */
static void si_drain(struct si *si) {
    halo_ha_state q = si->admin == SI_LOCKED || si->removed ? HALO_HA_QUIESCED : HALO_HA_QUIESCING;
    if (si->switchover)
        amf_switchover_done(si, -HALO_EBADSTATE);
    for (size_t i = 0; i < si->n_asg; i++)
        if (si->asg[i].su && !si->asg[i].removing && si->asg[i].target == HALO_HA_ACTIVE) {
            (void)amf_assign(si, si->asg[i].su, q, 0);
            return;
        }
    for (size_t i = 0; i < si->n_asg; i++)
        if (si->asg[i].su && !si->asg[i].removing) {
            (void)amf_unassign(si, &si->asg[i]);
            return;
        }
    amf_si_drained(si);
}

/* sg-adjust, or auto-adjust once su's probation has passed since it came
 * back (the group is looked at again when it ends). */
static bool may_adjust_to(struct si *si, struct su *su) {
    const struct config_sg *c = si->sg->cfg;
    if (si->sg->adjusting)
        return true;
    if (!c->auto_failback)
        return false;
    usec_t now = now_monotonic_usec(), end = su->back_at + c->auto_adjust_probation;
    if (now >= end)
        return true;
    amf_sg_adjust_later(si->sg, end - now);
    return false;
}

/* Removes a STANDBY on a unit out of service (policy: or one the model no
 * longer allows); true if it did. */
static bool drop_standby(struct si *si, const struct amf_policy *p, bool policy) {
    for (size_t i = 0; i < si->n_asg; i++) {
        struct assignment *a = &si->asg[i];
        if (a->su && a->target == HALO_HA_STANDBY && !a->removing &&
            (!amf_su_keeps(a->su) || (policy && p->keep_standby && !p->keep_standby(si, a->su)))) {
            (void)amf_unassign(si, a);
            return true;
        }
    }
    return false;
}

/* Whether a unit of this node may hold an OCF resource nobody knows of yet: its probe (amf-ocf.c), or the stop of what
 * a probe found running on a unit that does not hold it ACTIVE, is pending.  Its node publishes it (sustate). */
bool amf_su_probing(const struct su *su) {
    if (!su->local || su->oper == SU_DISABLED || su->admin == SU_LOCKED_INSTANTIATION)
        return false; /* not instantiated: not probed either (a repair or an unlock probes it) */
    for (size_t i = 0; i < su->n_comps; i++)
        if (amf_comp_ocf(&su->comps[i]) && !su->comps[i].ocf.probed && !su->comps[i].removed)
            return true;
    return false;
}

/* Whether a unit of sg, here or on a node that said so and is still there, is probing. */
static bool ocf_probing(const struct sg *sg) {
    for (size_t u = 0; u < sg->n_sus; u++) {
        const struct su *su = &sg->sus[u];
        if (su->local ? amf_su_probing(su) : su->remote.known && su->remote.probing)
            return true;
    }
    return false;
}

static void reconcile_si(struct si *si, const struct amf_policy *p) {
    /* Never two ACTIVEs: while the failed former ACTIVE is still dying
     * (SIGKILL sent, not yet reaped) it may hold the service's resources. */
    if (amf_si_busy(si) || si->fencing)
        return;
    /* Nor while an OCF resource may be left running on a unit of the group: probed, or found running and being
     * stopped, on this node or on another that published it (a restarted halod's probe). */
    if (ocf_probing(si->sg))
        return;
    /* A restarted halod adopted running processes: their roles stand until they registered again. */
    for (size_t i = 0; i < si->n_asg; i++)
        if (si->asg[i].su && si->asg[i].su->adopting)
            return;
    if (si->admin != SI_UNLOCKED || si->removed) { /* a reload's removal drains it as a lock does */
        si_drain(si);
        return;
    }

    unsigned want_act = p->actives(si), want_sb = p->standbys(si);
    unsigned n_act = amf_si_count(si, HALO_HA_ACTIVE), n_sb = amf_si_count(si, HALO_HA_STANDBY);
    struct assignment *q = amf_si_find(si, HALO_HA_QUIESCED);
    struct assignment *sb = promotable(si);
    bool wait;

    if (si->switchover && (want_act > 1 || want_sb == 0)) {
        amf_switchover_done(si, -HALO_EBADSTATE); /* nobody to hand ACTIVE to */
        return reconcile_si(si, p);
    }
    /* 1. (With one ACTIVE: once one is QUIESCED the hand-over is under way, step 5.) */
    for (size_t i = 0; i < si->n_asg && (want_act > 1 || !q); i++) {
        struct assignment *a = &si->asg[i];
        if (!a->su || a->target != HALO_HA_ACTIVE || (amf_su_keeps(a->su) && !si->switchover))
            continue;
        if (si->switchover && !sb) {
            amf_switchover_done(si, -HALO_EBADSTATE);
            return reconcile_si(si, p);
        }
        if (!si->switchover && dependent_on(si, a->su))
            return; /* its dependents leave the unit first */
        (void)amf_assign(si, a->su, quiesce_state(si, a->su), 0);
        return;
    }
    /* 2. */
    if (q && n_act < want_act) {
        if (want_act == 1 && sb) {
            (void)amf_assign(si, sb->su, HALO_HA_ACTIVE, HALO_CSI_QUIESCED);
        } else if (amf_su_may_be_active(q->su)) {
            if (si->switchover)
                amf_switchover_done(si, -HALO_ECOMPFAILED);
            (void)amf_assign(si, q->su, HALO_HA_ACTIVE, HALO_CSI_STILL_ACTIVE);
        } else
            (void)amf_unassign(si, q);
        return;
    }
    /* 3. */
    if (n_act > 0 && sponsor_lost(si)) {
        struct assignment *a = worst(si, HALO_HA_ACTIVE);
        log_notice("Removing '%s' from '%s': an SI it depends on is not assigned", si->name, a->su->name);
        (void)amf_unassign(si, a);
        return;
    }
    /* 4. */
    if (n_act < want_act && !q && sponsors_active(si)) {
        if (want_act == 1 && sb) {
            log_notice_fields(AMF_FIELDS_SI(si, sb->su, AMF_MESSAGE_ID_FAILOVER), "Failing over '%s' to '%s'", si->name,
                              sb->su->name);
            (void)amf_assign(si, sb->su, HALO_HA_ACTIVE, HALO_CSI_NOT_QUIESCED);
            return;
        }
        struct su *su = best_su(si, HALO_HA_ACTIVE, p, &wait);
        if (su) {
            (void)amf_assign(si, su, HALO_HA_ACTIVE, HALO_CSI_NEW_ASSIGN);
            return;
        }
        /* Room is made to keep an SI in service, not for an extra ACTIVE. */
        if (!wait && n_act == 0 && make_room(si, HALO_HA_ACTIVE, p))
            return;
    }
    struct assignment *act = amf_si_find(si, HALO_HA_ACTIVE);
    /* 6, without an ACTIVE: a STANDBY on a unit out of service goes (a lock
     * of every unit would wait for it for ever). */
    if (!act && drop_standby(si, p, false))
        return;
    if (!act) {
        if (!si->unassigned_since) {
            si->unassigned_since = now_monotonic_usec();
            log_debug("No service unit can take '%s' as ACTIVE now", si->name);
        }
        return;
    }
    si->unassigned_since = 0;
    if (!act->confirmed)
        return;
    /* 5. */
    if (q) {
        if (want_sb > 0 && amf_su_in_service(q->su))
            (void)amf_assign(si, q->su, HALO_HA_STANDBY, 0);
        else
            (void)amf_unassign(si, q);
        if (si->switchover)
            amf_switchover_done(si, 0);
        return;
    }
    /* 6. */
    if (drop_standby(si, p, true))
        return;
    if (n_sb > want_sb) {
        (void)amf_unassign(si, worst(si, HALO_HA_STANDBY));
        return;
    }
    /* 7. */
    if (n_sb < want_sb) {
        struct su *su = best_su(si, HALO_HA_STANDBY, p, &wait);
        if (su)
            (void)amf_assign(si, su, HALO_HA_STANDBY, 0);
        else if (n_sb == 0)
            (void)make_room(si, HALO_HA_STANDBY, p);
        if (su || n_sb == 0)
            return;
    }
    /* 8. sg-adjust: the STANDBY ranks before the ACTIVE (it came back after a
     * failure): hand ACTIVE back to it, gracefully, as a switchover would. */
    if (want_act == 1 && sb && !si->switchover && sb->su->cfg->rank < act->su->cfg->rank && may_adjust_to(si, sb->su)) {
        log_notice("Adjusting '%s': ACTIVE back to '%s', which ranks before '%s'", si->name, sb->su->name,
                   act->su->name);
        si->switchover = true;
        reconcile_si(si, p);
    }
}

unsigned amf_policy_one(const struct si *si) {
    return 1;
}

unsigned amf_policy_none(const struct si *si) {
    return 0;
}

bool amf_policy_room(struct si *si, struct su *su, halo_ha_state role) {
    return amf_su_has_room(su, role);
}

void amf_reconcile(struct sg *sg, const struct amf_policy *p) {
    /* When each unit came (back) into service, for auto-adjust's probation. */
    for (size_t u = 0; u < sg->n_sus; u++) {
        struct su *su = &sg->sus[u];
        bool in = amf_su_in_service(su);
        if (in && !su->was_in_service)
            su->back_at = now_monotonic_usec();
        su->was_in_service = in;
    }
    for (size_t i = 0; i < sg->n_sis; i++)
        reconcile_si(&sg->sis[i], p);
    for (size_t u = 0; u < sg->n_sus; u++)
        amf_su_check_lock_done(&sg->sus[u]);
}
