/* SPDX-License-Identifier: MIT */
/* The AMF core on a loop of its own for unit tests (test-amf.c, test-amf-ladder.c), with fake io. */
#pragma once

#include <uv.h>

#include "amf.h"
#include "config.h"

#define AMF_CORE_PATH_MAX 64

/* Writes yaml to path (a file of this process), loads it into *ret_cfg (a failure fails the
 * test), inits loop and makes *ret_amf, an AMF of node n1 on it. */
void amf_core_start(uv_loop_t *loop, const char *yaml, char path[AMF_CORE_PATH_MAX], struct config **ret_cfg,
                    struct amf **ret_amf);
/* Closes and frees *amf and *cfg, runs loop until its handles are closed and closes it, removes path. */
void amf_core_stop(uv_loop_t *loop, const char *path, struct config **cfg, struct amf **amf);
