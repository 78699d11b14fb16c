/* SPDX-License-Identifier: MIT */
/* haloctl registrations: the name service's registrations (docs/names.md). */
#pragma once

#include <stdbool.h>

/* haloctl registrations [CONTEXT]; argv[0] is "registrations".  Returns the exit status. */
int ctl_names_main(int argc, char **argv, bool json);
