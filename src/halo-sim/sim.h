/* SPDX-License-Identifier: MIT */
/* haloctl sim: a whole halo cluster (etcd members and one halod per node) on this one machine. */
#pragma once

#include <stdbool.h>

/* Runs "sim up|down|status [OPTIONS]"; argv[0] is "sim".  json is haloctl's global --json (for "sim status").
 * Prints what it does and every error itself.  Returns the process exit status: 0 on success, 1 on failure,
 * 2 on a usage error. */
int sim_main(int argc, char **argv, bool json);
