/* SPDX-License-Identifier: MIT */
/*
 * The no-redundancy model: per SI one ACTIVE and no STANDBY, one SI per SU at
 * most.  A failed or locked unit's SI goes to a spare unit (one holding
 * nothing), the most preferred first; with fewer units than SIs the
 * lowest-ranked SIs stay unassigned.  The steps are the reconciler's
 * (amf-reconcile.c).
 */
#include "amf-internal.h"

/* A unit serves one SI at most. */
static bool allowed(struct si *si, struct su *su, halo_ha_state role) {
    return amf_su_load(su, HALO_HA_ACTIVE) + amf_su_load(su, HALO_HA_STANDBY) == 0;
}

static const struct amf_policy policy = {
    .actives = amf_policy_one,
    .standbys = amf_policy_none,
    .allowed = allowed,
};

const struct redundancy_ops amf_nored_ops = {
    .name = "no-redundancy",
    .policy = &policy,
};
