/* SPDX-License-Identifier: MIT */
/* haloctl admin: the AMF's maintenance operations on units, groups, SIs, nodes and components. */
#pragma once

#include <stdbool.h>
#include <stddef.h>

#include "link.h"

/* Sends one admin request to halod and waits for its answer (haloctl.c); *ret_json gets its JSON. */
int ctl_request(Halo__Link__Admin__Op op, const char *target, char **ret_json);

/* haloctl admin OPERATION KIND:NAME; argv[0] is "admin".  The exit status. */
int ctl_admin_main(int argc, char **argv, bool json);

/* Why halod refused op on target (error < 0), in words a user can act on; written to buf. */
const char *ctl_admin_explain(Halo__Link__Admin__Op op, const char *target, int error, char *buf, size_t size);

/* The usage lines of 'admin', for haloctl --help. */
void ctl_admin_help(void);
