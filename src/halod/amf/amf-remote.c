/* SPDX-License-Identifier: MIT */
/*
 * The AMF on several nodes: what the store says of other nodes' units and of
 * the deciding node's targets, applied to the model.  Every halod keeps the
 * same view of every SI's assignments; only the deciding one (the
 * coordinator) runs the redundancy models over it, and each node applies the
 * targets of its own units.
 *
 * A failover to another node: the failed unit's node fences it (SIGKILL,
 * waits until reaped) and reports it failing, then fenced; the coordinator
 * drops the unit's assignments at once but promotes the standby only once it
 * is fenced: its node says so, or its node's lease is gone by the store's
 * rules (a node that cannot renew its lease has fenced itself before etcd
 * lets it expire) and the stop timeout of its OCF resources has passed since,
 * or a TTL after an end the store cannot vouch for (cluster-fence.c), or it
 * is back under a new lease (it fenced itself first).
 */
#define LOG_AREA LOG_AREA_AMF
#include <stdlib.h>

#include "amf-internal.h"
#include "log.h"
#include "macro.h"

/* A remote unit stopped being in service: forget its assignments; a non-STANDBY
 * one blocks the SI until the unit is fenced.  keep_keys: its keys in the
 * store are left for the next target to overwrite (a unit back under a new
 * lease: deleting its target would make its node fail what it runs). */
static void remote_su_down(struct su *su, bool fenced, bool keep_keys) {
    struct sg *sg = su->sg;
    for (size_t i = 0; i < sg->n_sis; i++) {
        struct si *si = &sg->sis[i];
        struct assignment *as = amf_si_find_su(si, su);
        if (as) {
            if (!fenced && as->target != HALO_HA_STANDBY)
                si->fencing = su;
            if (si->switchover)
                amf_switchover_done(si, -HALO_ECOMPFAILED);
            if (keep_keys)
                amf_asg_drop(si, as);
            else
                amf_asg_clear(si, as);
            amf_pg_notify(su->amf, si);
        }
        if (fenced && si->fencing == su)
            si->fencing = NULL;
    }
}

/* A remote unit back under a new lease: what it held is void, the models decide
 * again.  Its node may still hold a STANDBY the fence spared (its other roles
 * went with the fence); where the new decision leaves the unit out of such an
 * SI, the coordinator tells it so with a removal target (chaos seed 406 --cut:
 * an N+M STANDBY went to another unit, and the spared one kept its CSI for
 * good, two STANDBYs in its node's view).  A node that holds nothing confirms
 * the removal at once.  A model that would have given the STANDBY back a step
 * later does so once the removal is confirmed. */
static void reincarnated_down(struct su *su) {
    struct sg *sg = su->sg;
    bool *held = calloc(sg->n_sis ? sg->n_sis : 1, sizeof(*held)); /* NULL: every SI */
    for (size_t i = 0; held && i < sg->n_sis; i++) {
        const struct assignment *as = amf_si_find_su(&sg->sis[i], su);
        held[i] = as && !as->removing && (as->target == HALO_HA_STANDBY || as->state == HALO_HA_STANDBY);
    }
    remote_su_down(su, true, true);
    amf_sg_evaluate(sg);
    for (size_t i = 0; su->amf->deciding && su->remote.known && i < sg->n_sis; i++) {
        struct si *si = &sg->sis[i];
        struct assignment *as;
        if ((held && !held[i]) || amf_si_find_su(si, su) || !(as = amf_asg_slot(si, su)))
            continue;
        (void)amf_unassign(si, as);
    }
    free(held);
}

void amf_su_remote(struct su *su, const struct su_remote *r, bool gone) {
    if (su->local)
        return; /* ours: we know better */
    /* Gone: r (NULL: fenced) says whether its processes can be counted as
     * dead; the lease it was last seen under is kept, to know it again. */
    struct su_remote now =
        gone ? (struct su_remote){.fenced = !r || r->fenced, .lease = su->remote.lease, .stop_ms = su->remote.stop_ms}
             : *r;
    now.known = !gone;
    if (su->leaving && !gone) { /* a reload removed it: locked, whatever its node says (amf_su_remove()) */
        now.in_service = false;
        now.admin = SU_LOCKED;
    }
    if (gone)
        now.rev = su->remote.rev;
    if (amf_su_remote_equal(&now, &su->remote)) {
        su->remote.rev = MAX(su->remote.rev, now.rev); /* the same state, written again */
        return;
    }
    /* Published under another lease of its node: a new incarnation.  Its
     * node fenced itself and rejoined; what the old one held is void (its
     * non-STANDBY processes are gone: a node gives up a lease, or joins
     * after losing one, only once they are), and a target written for the
     * old lease, still pending, will never be carried out (cluster-sync
     * ignores it).  Decide again.  Likewise for a unit gone with a lease end
     * nobody could vouch for: the new lease says it fenced. */
    bool reincarnated =
        !gone && su->remote.lease && now.lease != su->remote.lease && (su->remote.known || !su->remote.fenced);
    bool was_known = su->remote.known;
    su->remote = now;
    su->unseen_stopping = false; /* known now, or counted as fenced */
    if (gone && was_known)
        log_info("Service unit '%s' is gone with its node%s", su->name, now.fenced ? "" : "; it is not fenced yet");
    else if (gone && now.fenced)
        log_info("Service unit '%s' counts as fenced now", su->name);
    if (reincarnated) {
        log_info("Service unit '%s' is back under a new lease of its node: what it held is void", su->name);
        reincarnated_down(su);
        return;
    } else if (!now.in_service && (now.failing || now.admin == SU_UNLOCKED || gone))
        remote_su_down(su, now.fenced, false);
    else if (now.in_service)
        /* Back in service under the same lease: its node restarted it, and a
         * node restarts a unit only once every process of it is gone (a
         * failure it had before it rejoined was never published as fenced). */
        for (size_t i = 0; i < su->sg->n_sis; i++)
            if (su->sg->sis[i].fencing == su)
                su->sg->sis[i].fencing = NULL;
    /* Out of service only because an operator locked it or shuts it down: its
     * roles leave it as on this node, QUIESCED or QUIESCING first (amf-reconcile.c). */
    amf_sg_evaluate(su->sg);
}

/* A mirror of another node's assignment, for status and for a takeover. */
static void mirror_target(struct si *si, struct su *su, halo_ha_state state, uint64_t gen) {
    struct assignment *as = amf_asg_slot(si, su);
    if (!as)
        return;
    as->gen = gen;
    as->removing = state == 0;
    if (state)
        as->target = state;
    as->pending = 1;
    amf_notify_assignment(si);
}

/* Another unit holds si quiesced, or was told to quiesce it (its target was
 * written, and mirrored here, before the one that hands ACTIVE over). */
static bool other_quiesced(struct si *si, struct su *su) {
    for (size_t i = 0; i < si->n_asg; i++) {
        const struct assignment *o = &si->asg[i];
        if (o->su && o->su != su && !o->removing &&
            (o->target == HALO_HA_QUIESCED || o->target == HALO_HA_QUIESCING || o->state == HALO_HA_QUIESCED))
            return true;
    }
    return false;
}

static void apply_target(struct si *si, struct su *su, halo_ha_state state, uint64_t gen) {
    struct amf *a = si->amf;
    struct assignment *as = amf_si_find_su(si, su);
    if (state == 0) {
        if (!as) {
            struct assignment tmp = {.su = su, .gen = gen};
            a->placement->publish_confirmed(a->placement_data, si, &tmp, true);
            return;
        }
        log_info("Removing '%s' from '%s'", si->name, su->name);
        as->gen = gen;
        as->removing = true;
        amf_notify_assignment(si);
        (void)amf_asg_send_remove(si, as);
        return;
    }
    /* A unit an operator locked or shuts down still quiesces what it holds; a unit
     * restarting in place is published in service: its components get the target as
     * they register again (amf-ladder.c). */
    bool quiesce = (state == HALO_HA_QUIESCING || state == HALO_HA_QUIESCED) && as && !su->failing;
    if (!amf_su_keeps(su) && !quiesce) {
        log_info("Target %s of '%s' for '%s' ignored: the unit is not in service", halo_ha_state_to_string(state),
                 si->name, su->name);
        if (!su->failing && su->admin != SU_UNLOCKED && (!as || as->confirmed)) {
            /* Locked meanwhile (an operation on its group, from another node, crossed the
             * coordinator's decision): the coordinator learns what the unit holds instead, and
             * takes its roles away as from any locked unit.  A failing unit's roles are dropped. */
            struct assignment held = as ? *as : (struct assignment){.su = su};
            held.gen = gen;
            a->placement->publish_confirmed(a->placement_data, si, &held, !as);
        }
        return;
    }
    halo_csi_transition tr = HALO_CSI_NEW_ASSIGN;
    if (state == HALO_HA_ACTIVE && as && as->state == HALO_HA_QUIESCED)
        tr = HALO_CSI_STILL_ACTIVE;
    else if (state == HALO_HA_ACTIVE && other_quiesced(si, su))
        tr = HALO_CSI_QUIESCED; /* a switchover, a shutdown: the old ACTIVE was quiesced first */
    else if (state == HALO_HA_ACTIVE && as)
        tr = HALO_CSI_NOT_QUIESCED;
    as = amf_asg_slot(si, su);
    if (!as)
        return;
    log_info("Assigning '%s' to '%s' as %s", si->name, su->name, halo_ha_state_to_string(state));
    as->target = state;
    as->removing = false;
    as->gen = gen;
    amf_notify_assignment(si);
    (void)amf_asg_send_set(si, su, as, tr);
}

void amf_target(struct si *si, struct su *su, halo_ha_state state, uint64_t gen) {
    struct amf *a = si->amf;
    if (gen > si->generation)
        si->generation = gen;
    if (a->deciding)
        return; /* our own decision coming back */
    struct assignment *as = amf_si_find_su(si, su);
    /* Ours: an older target is a late copy.  Another node's unit: the store's
     * target is the truth, even one older than what we hold, a decision of
     * ours as a coordinator that was deposed before it was written
     * (cluster-sync reads the targets again then). */
    if (as && (su->local ? as->gen >= gen : as->gen == gen))
        return;
    if (su->local)
        apply_target(si, su, state, gen);
    else if (su->remote.known)
        mirror_target(si, su, state, gen);
    /* else: a unit gone with its node holds nothing, whatever target is
     * still in the store for it (nobody deletes a dead node's targets before
     * it counts as fenced; a read again finds them).  Mirrored, it would come back as an ACTIVE
     * that a takeover quiesces for ever (chaos seed 202). */
}

void amf_su_unseen_stopping(struct su *su) {
    if (!su->local && !su->remote.known && !su->remote.fenced)
        su->unseen_stopping = true;
}

void amf_target_unseen(struct si *si, struct su *su, halo_ha_state state) {
    if (!su->unseen_stopping || su->local || su->remote.known || !state || state == HALO_HA_STANDBY ||
        si->fencing == su)
        return;
    /* Not mirrored (amf_target()), but its OCF resources may still be stopping: no other unit
     * takes the SI before that stop's timeout. */
    log_notice("SI '%s' waits: its unit '%s' of node '%s', which left before this halod started, may still be "
               "stopping its OCF resources",
               si->name, su->name, su->cfg->node);
    si->fencing = su;
    amf_sg_evaluate(si->sg);
}

void amf_target_void(struct si *si, struct su *su, uint64_t gen) {
    struct amf *a = si->amf;
    if (a->deciding || !su->local || amf_si_find_su(si, su))
        return; /* what it holds (from a newer target) is confirmed as it goes */
    /* It holds nothing for si: said so for that decision, the coordinator decides again. */
    struct assignment none = {.su = su, .gen = gen};
    a->placement->publish_confirmed(a->placement_data, si, &none, true);
}

void amf_target_deleted(struct si *si, struct su *su) {
    struct amf *a = si->amf;
    struct assignment *as = amf_si_find_su(si, su);
    if (!as || a->deciding)
        return;
    if (su->local && !su->failing && as->target == HALO_HA_STANDBY && as->state == HALO_HA_STANDBY && as->confirmed) {
        /* A STANDBY withdrawn: nothing to fence, the CSI is removed. */
        log_info("The coordinator withdrew '%s' from '%s' (STANDBY)", si->name, su->name);
        as->removing = true;
        amf_notify_assignment(si);
        (void)amf_asg_send_remove(si, as);
        return;
    }
    if (su->local && !su->failing) {
        /* The coordinator dropped what else we hold: it saw this node die. */
        su->admin_restart = true;
        amf_su_fail(su, "the coordinator withdrew its assignment");
        return;
    }
    amf_asg_clear(si, as);
    amf_pg_notify(a, si);
    amf_sg_evaluate(si->sg);
}

/* What our adopted processes hold, as the previous halod confirmed it. */
static void adopt_confirmed(struct si *si, struct su *su, halo_ha_state state, uint64_t gen) {
    if ((!su->adopting && !amf_su_adopts(su)) || amf_si_find_su(si, su) ||
        (state != HALO_HA_ACTIVE && state != HALO_HA_STANDBY) || gen == 0)
        return;
    struct assignment *as = amf_asg_slot(si, su);
    if (!as)
        return;
    *as = (struct assignment){.su = su, .state = state, .target = state, .confirmed = true, .gen = gen};
    if (gen > si->generation)
        si->generation = gen;
    log_info("'%s' stays %s for '%s' (adopted)", su->name, halo_ha_state_to_string(state), si->name);
}

void amf_confirmed(struct si *si, struct su *su, halo_ha_state state, uint64_t gen) {
    struct amf *a = si->amf;
    if (su->local) {
        adopt_confirmed(si, su, state, gen);
        return;
    }
    struct assignment *as = amf_si_find_su(si, su);
    if (as && a->deciding && state == 0 && gen == as->gen && !as->pending && !as->removing && as->confirmed) {
        /* Its node holds nothing for this decision, which it confirmed before: a restarted halod whose
         * unit failed before it could say so, and which will not carry out a target decided before that
         * failure (amf_target_void()). */
        log_info("'%s' holds nothing for '%s' any more (its node says so)", su->name, si->name);
        amf_asg_clear(si, as);
        amf_notify_assignment(si);
        amf_notify_si(si);
        amf_sg_evaluate(si->sg);
        return;
    }
    if (!as || gen != as->gen || !as->pending)
        return;
    /* Its node did not carry the target out (the unit was locked meanwhile): it holds state. */
    bool refused = a->deciding && !as->removing && state != as->target &&
                   !(as->target == HALO_HA_QUIESCING && state == HALO_HA_QUIESCED);
    if (a->deciding && !refused) {
        amf_asg_step_done(si, su);
        return;
    }
    if (refused)
        log_info("'%s' did not take %s for '%s': it holds %s", su->name, halo_ha_state_to_string(as->target), si->name,
                 state ? halo_ha_state_to_string(state) : "nothing");
    /* A mirror, or what a unit that refused holds. */
    as->pending = 0;
    if (state == 0)
        amf_asg_clear(si, as);
    else {
        as->state = as->target = state;
        as->confirmed = true;
    }
    amf_notify_assignment(si);
    if (refused) {
        amf_notify_si(si);
        amf_sg_evaluate(si->sg);
    }
}
