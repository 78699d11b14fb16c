/* SPDX-License-Identifier: MIT */
/* haloctl ha: the HA control calls of the configuration database's roles, through libhalo. */
#pragma once

#include <stdbool.h>

/* argv[0] is "ha".  Returns the exit status. */
int ctl_ha_main(const char *socket, int argc, char **argv, bool json);
