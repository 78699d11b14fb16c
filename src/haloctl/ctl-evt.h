/* SPDX-License-Identifier: MIT */
/* haloctl event-channels: this node's event channels (docs/events.md). */
#pragma once

#include <stdbool.h>

/* argv: the arguments after "event-channels" (none).  The exit status. */
int ctl_evt_main(int argc, char **argv, bool json);
