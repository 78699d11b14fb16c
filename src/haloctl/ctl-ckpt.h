/* SPDX-License-Identifier: MIT */
/* haloctl ckpt: the checkpoints of the cluster, or one checkpoint's sections (docs/checkpoints.md). */
#pragma once

#include <stdbool.h>

/* argv[0] is "ckpt", argv[1] an optional checkpoint name.  Returns the exit status. */
int ctl_ckpt_main(int argc, char **argv, bool json);
