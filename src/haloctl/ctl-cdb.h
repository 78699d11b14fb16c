/* SPDX-License-Identifier: MIT */
/* haloctl cdb: read, write and watch the configuration database through libhalo. */
#pragma once

#include <stdbool.h>

/* argv[0] is "cdb".  Returns the exit status. */
int ctl_cdb_main(const char *socket, int argc, char **argv, bool json);
/* halod's status, as 'haloctl status --json' prints it (haloctl.c).  0 with *ret_json (free() it), or an error. */
int ctl_status_json(char **ret_json);
