/* SPDX-License-Identifier: MIT */
/*
 * The N-way model: per SI one ACTIVE and `standby-assignments` STANDBYs (1 by
 * default); a unit may be ACTIVE for some SIs and STANDBY for others.  A failed
 * ACTIVE's SI goes to its best-ranked STANDBY, and a new STANDBY is found.
 * `max-active-sis-per-su` and `max-standby-sis-per-su` bound what one unit
 * holds.  The steps are the reconciler's (amf-reconcile.c).
 */
#include "amf-internal.h"

static unsigned standbys(const struct si *si) {
    return si->cfg->standby_assignments ?: 1;
}

static const struct amf_policy policy = {
    .actives = amf_policy_one,
    .standbys = standbys,
    .allowed = amf_policy_room,
};

const struct redundancy_ops amf_nway_ops = {
    .name = "N-way",
    .policy = &policy,
};
