/* SPDX-License-Identifier: MIT */
/*
 * The 2N redundancy model: per SI one SU ACTIVE and one STANDBY.
 *
 * evaluate() is a reconciler: it compares each SI's assignments with what 2N
 * wants and issues the next step, one step per SI at a time; every finished
 * step (a confirmed CSI set or remove, a failure) calls it again.  Steps, in
 * priority order:
 *   1. ACTIVE on an SU that must give it up (locked, or a switchover was
 *      asked): quiesce it.
 *   2. A QUIESCED assignment: hand ACTIVE to an in-service STANDBY; with no
 *      standby, take it back (if the SU is still in service) or remove it.
 *   3. No ACTIVE (after a failure, or at start): promote the STANDBY, else
 *      assign ACTIVE to the best in-service SU.
 *   4. ACTIVE confirmed and an old QUIESCED one left: make it STANDBY, or
 *      remove it if its SU is out of service.
 *   5. A STANDBY on an SU out of service: remove it.
 *   6. No STANDBY: assign one to the best other in-service SU.
 *   7. With auto-failback, a STANDBY that ranks before the ACTIVE gets ACTIVE
 *      back through a switchover.
 */
#define LOG_AREA LOG_AREA_AMF
#include <string.h>

#include "amf-internal.h"
#include "log.h"
#include "macro.h"

/* How much an SU is wanted for a role in this SI (higher is better), or -1. */
static int su_score(struct si *si, struct su *su, halo_ha_state role) {
    if (!amf_su_in_service(su) || amf_si_find_su(si, su))
        return -1;
    if (role == HALO_HA_ACTIVE && !amf_su_may_be_active(su))
        return -1;
    int score = 1000 - (int)su->cfg->rank;
    if (role == HALO_HA_ACTIVE && si->preferred_active && streq(si->preferred_active, su->name))
        score += 100000;
    /* Keep an SG's SIs together on one SU per role, as 2N intends. */
    struct sg *sg = si->sg;
    for (size_t i = 0; i < sg->n_sis; i++) {
        struct assignment *a = amf_si_find_su(&sg->sis[i], su);
        if (a && a->target == role)
            score += 10000;
    }
    return score;
}

/* Whether su would be preferred for ACTIVE if it were in service. */
static int su_preference(struct si *si, struct su *su) {
    int score = 1000 - (int)su->cfg->rank;
    if (si->preferred_active && streq(si->preferred_active, su->name))
        score += 100000;
    return score;
}

static struct su *best_su(struct si *si, halo_ha_state role) {
    struct sg *sg = si->sg;
    struct su *best = NULL;
    int best_score = -1;
    for (size_t u = 0; u < sg->n_sus; u++) {
        int s = su_score(si, &sg->sus[u], role);
        if (s > best_score) {
            best_score = s;
            best = &sg->sus[u];
        }
    }
    /* At start, do not hand ACTIVE to whichever unit registered first: wait
     * for a more preferred one still being instantiated for the first time
     * (its instantiate timeout bounds the wait). */
    if (best && role == HALO_HA_ACTIVE)
        for (size_t u = 0; u < sg->n_sus; u++) {
            struct su *o = &sg->sus[u];
            if (o != best && o->local && o->admin == SU_UNLOCKED && !o->failing && o->comps[0].restarts <= 1 &&
                o->comps[0].presence == PRESENCE_INSTANTIATING && su_preference(si, o) > su_preference(si, best))
                return NULL;
        }
    return best;
}

static void evaluate_si(struct si *si) {
    /* Never two ACTIVEs: while the failed former ACTIVE is still dying
     * (SIGKILL sent, not yet reaped) it may hold the service's resources. */
    if (amf_si_busy(si) || si->fencing)
        return;
    /* A restarted halod adopted running processes: their roles stand until they registered again. */
    for (size_t i = 0; i < si->n_asg; i++)
        if (si->asg[i].su && si->asg[i].su->adopting)
            return;

    struct assignment *act = amf_si_find(si, HALO_HA_ACTIVE);
    struct assignment *q = amf_si_find(si, HALO_HA_QUIESCED);
    struct assignment *sb = amf_si_find(si, HALO_HA_STANDBY);
    /* Whether the STANDBY can take ACTIVE over (every use of it below gives ACTIVE). */
    bool sb_ok = sb && sb->confirmed && amf_su_may_be_active(sb->su);

    /* 1. (Once an assignment is QUIESCED the hand-over is under way: step 4.) */
    if (act && !q && (!amf_su_in_service(act->su) || si->switchover)) {
        if (si->switchover && !sb_ok) {
            amf_switchover_done(si, -HALO_EBADSTATE);
            return evaluate_si(si);
        }
        (void)amf_assign(si, act->su, HALO_HA_QUIESCING, 0);
        return;
    }
    /* 2. */
    if (q && !act) {
        if (sb_ok) {
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
    if (!act) {
        if (sb_ok) {
            log_notice("Failing over '%s' to '%s'", si->name, sb->su->name);
            (void)amf_assign(si, sb->su, HALO_HA_ACTIVE, HALO_CSI_NOT_QUIESCED);
            return;
        }
        struct su *su = best_su(si, HALO_HA_ACTIVE);
        if (su)
            (void)amf_assign(si, su, HALO_HA_ACTIVE, HALO_CSI_NEW_ASSIGN);
        else if (!si->unassigned_since) {
            si->unassigned_since = now_monotonic_usec();
            log_debug("No service unit in service for '%s'", si->name);
        }
        return;
    }
    si->unassigned_since = 0;
    if (!act->confirmed)
        return;
    /* 4. */
    if (q) {
        if (amf_su_in_service(q->su))
            (void)amf_assign(si, q->su, HALO_HA_STANDBY, 0);
        else
            (void)amf_unassign(si, q);
        if (si->switchover)
            amf_switchover_done(si, 0);
        return;
    }
    /* 5. */
    if (sb && !amf_su_in_service(sb->su) && !sb->removing) {
        (void)amf_unassign(si, sb);
        return;
    }
    /* 6. */
    if (!sb) {
        struct su *su = best_su(si, HALO_HA_STANDBY);
        if (su)
            (void)amf_assign(si, su, HALO_HA_STANDBY, 0);
        return;
    }
    /* 7. auto-failback: the STANDBY ranks before the ACTIVE (it came back after a
     * failure): hand ACTIVE back to it, gracefully, as a switchover would. */
    if (si->sg->cfg->auto_failback && sb_ok && !si->switchover && sb->su->cfg->rank < act->su->cfg->rank) {
        log_notice("Failing '%s' back to '%s'", si->name, sb->su->name);
        si->switchover = true;
        evaluate_si(si);
    }
}

static void evaluate(struct sg *sg) {
    for (size_t i = 0; i < sg->n_sis; i++)
        evaluate_si(&sg->sis[i]);
    for (size_t u = 0; u < sg->n_sus; u++)
        amf_su_check_lock_done(&sg->sus[u]);
}

const struct redundancy_ops amf_2n_ops = {
    .name = "2N",
    .evaluate = evaluate,
};
