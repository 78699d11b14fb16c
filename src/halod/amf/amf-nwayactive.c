/* SPDX-License-Identifier: MIT */
/*
 * The N-way-active model: per SI `active-assignments` ACTIVE assignments (by
 * default one on every unit of the group) and no STANDBY.  A failed unit's
 * assignment goes to a spare unit if there is one, and the unit gets ACTIVE
 * again when it is back; a lock quiesces the unit's assignment and removes
 * it while the others stay ACTIVE.  `max-active-sis-per-su` bounds the SIs one
 * unit serves.  The steps are the reconciler's (amf-reconcile.c).
 */
#include "amf-internal.h"

static unsigned actives(const struct si *si) {
    unsigned units = 0; /* those a reload removed are no more */
    for (size_t u = 0; u < si->sg->n_sus; u++)
        units += !si->sg->sus[u].removed;
    return si->cfg->active_assignments ?: units;
}

static const struct amf_policy policy = {
    .actives = actives,
    .standbys = amf_policy_none,
    .allowed = amf_policy_room,
};

const struct redundancy_ops amf_nwayactive_ops = {
    .name = "N-way-active",
    .policy = &policy,
};
