/* SPDX-License-Identifier: MIT */
/*
 * The 2N redundancy model: per SI one SU ACTIVE and one STANDBY, and an SG's
 * SIs together on one SU per role (a unit already holding the role for another
 * SI of the group is preferred).  The steps are the reconciler's
 * (amf-reconcile.c); with auto-failback a STANDBY that ranks before the ACTIVE
 * gets ACTIVE back through a switchover.
 */
#include "amf-internal.h"

static const struct amf_policy policy = {
    .actives = amf_policy_one,
    .standbys = amf_policy_one,
    .together = true,
};

const struct redundancy_ops amf_2n_ops = {
    .name = "2N",
    .policy = &policy,
};
