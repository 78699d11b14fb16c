/* SPDX-License-Identifier: MIT */
/* Where halod and haloctl meet by default (docs/configuration.md, the halod command line). */
#pragma once

#define HALO_RUNTIME_DIR "/run/halo"   /* halod's socket when no --state-dir or --socket is given */
#define HALO_STATE_DIR "/var/lib/halo" /* halod's state directory by default */
