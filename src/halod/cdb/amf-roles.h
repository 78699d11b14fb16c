/* SPDX-License-Identifier: MIT */
/*
 * CDB roles driven by the AMF: the node of a cdb-roles service group's ACTIVE
 * unit is the configuration database's primary, its STANDBY's a secondary.
 * An observer of the AMF's assignments of that group.
 */
#pragma once

#include <uv.h>

#include "amf.h"
#include "ha.h"
#include "store.h"

struct amf_roles;

/* Follows service group sg (a cdb-roles group of a's) with token (the nodes'
 * shared one; NULL when not set: then the roles are not driven).  st and
 * prefix: the cluster's store (several nodes), where a primary that
 * acknowledges commits alone records so first, in cdb-alone/<sg> (NULL on one
 * node).  *ret is NULL when nothing is driven.  0, -ENOENT (a has no group
 * sg), -ENOMEM, -ENOSPC, -ENAMETOOLONG. */
int amf_roles_new(uv_loop_t *loop, struct amf *a, const char *sg, struct ha *ha, const char *token, store *st,
                  const char *prefix, struct amf_roles **ret);
/* Accepts NULL; returns NULL.  Run the loop once more for its timer to close. */
struct amf_roles *amf_roles_free(struct amf_roles *r);
/* The service group the roles follow (for the status), NULL if none. */
const char *amf_roles_sg(const struct amf_roles *r);
/* The node that takes writes as this node sees it (its unit is the ACTIVE target), NULL if none. */
const char *amf_roles_writer(const struct amf_roles *r);
