/* SPDX-License-Identifier: MIT */
/*
 * The N+M model: `active-sus` units (N) hold the ACTIVE assignments, one per
 * SI, and `standby-sus` units (M) their STANDBYs; a unit is ACTIVE or STANDBY,
 * never both.  When an active unit fails, the STANDBYs of its SIs take over:
 * their unit becomes an active unit and gives up its other STANDBYs, which go
 * to a unit with no role (the failed one, once it is back).  The SIs spread
 * over the units of a role, the least loaded first; a unit's share is
 * bounded by `max-active-sis-per-su` and `max-standby-sis-per-su`.  The steps
 * are the reconciler's (amf-reconcile.c).
 */
#include "amf-internal.h"

/* The units of the group holding role for any SI. */
static unsigned units_in_role(struct sg *sg, halo_ha_state role) {
    unsigned n = 0;
    for (size_t u = 0; u < sg->n_sus; u++)
        n += amf_su_load(&sg->sus[u], role) > 0;
    return n;
}

/* Whether a unit can serve soon: in service, or still starting (not locked, disabled or failed). */
static bool available(const struct su *su) {
    if (!su->local)
        return amf_su_in_service(su);
    return su->admin == SU_UNLOCKED && su->oper == SU_ENABLED && !su->failing && !su->removed;
}

/* Whether an SI of the group has nothing that serves (no ACTIVE, QUIESCING or QUIESCED). */
static bool si_without_active(struct sg *sg) {
    for (size_t i = 0; i < sg->n_sis; i++)
        if (!sg->sis[i].removed && !amf_si_find(&sg->sis[i], HALO_HA_ACTIVE) &&
            !amf_si_find(&sg->sis[i], HALO_HA_QUIESCING) && !amf_si_find(&sg->sis[i], HALO_HA_QUIESCED))
            return true;
    return false;
}

/* Whether su, holding no role, is among the best-ranked available units
 * without a role that the active units still lack while an SI waits for an
 * ACTIVE: kept for ACTIVE. */
static bool kept_for_active(struct sg *sg, const struct su *su) {
    unsigned acts = units_in_role(sg, HALO_HA_ACTIVE), before = 0;
    if (acts >= sg->cfg->active_sus || !si_without_active(sg))
        return false;
    for (size_t u = 0; u < sg->n_sus; u++) {
        const struct su *o = &sg->sus[u];
        if (o != su && o->cfg->rank < su->cfg->rank && available(o) && amf_su_load(o, HALO_HA_ACTIVE) == 0 &&
            amf_su_load(o, HALO_HA_STANDBY) == 0)
            before++;
    }
    return before < sg->cfg->active_sus - acts;
}

static bool allowed(struct si *si, struct su *su, halo_ha_state role) {
    halo_ha_state other = role == HALO_HA_STANDBY ? HALO_HA_ACTIVE : HALO_HA_STANDBY;
    const struct config_sg *c = si->sg->cfg;
    if (amf_su_load(su, other) > 0)
        return false;
    if (amf_su_load(su, role) > 0)
        return amf_su_has_room(su, role);
    /* A unit with no role yet: only while the role has fewer units than
     * wanted, and the best-ranked ones go to the active units first. */
    if (role == HALO_HA_STANDBY)
        return units_in_role(si->sg, role) < c->standby_sus && !kept_for_active(si->sg, su);
    return units_in_role(si->sg, role) < c->active_sus;
}

/* A unit that became ACTIVE for an SI (it took over) gives up its STANDBYs. */
static bool keep_standby(struct si *si, struct su *su) {
    return amf_su_load(su, HALO_HA_ACTIVE) == 0;
}

static const struct amf_policy policy = {
    .actives = amf_policy_one,
    .standbys = amf_policy_one,
    .allowed = allowed,
    .keep_standby = keep_standby,
    .spread = true,
};

const struct redundancy_ops amf_npm_ops = {
    .name = "N+M",
    .policy = &policy,
};
