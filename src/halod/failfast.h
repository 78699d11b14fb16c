/* SPDX-License-Identifier: MIT */
/*
 * A node's failfast action (the node's `failfast` key): halt or reboot the
 * host, or run a command.  halod's top starts it once the AMF has killed every
 * component of the node (amf_set_failfast()), and runs it once this node has
 * left the cluster, or after FAILFAST_WAIT_MSEC if the store does not answer.
 */
#pragma once

#include <uv.h>

#include "config.h"

/* How long the action waits for the store (the lease given up, the last records written). */
#define FAILFAST_WAIT_MSEC 2000

struct failfast;

/* Arms the action of node n (n->failfast other than CONFIG_FAILFAST_NONE); why is what asked
 * for it, given to a command as $HALO_FAILFAST_REASON.  done(userdata) runs once when the action
 * is over without ending halod: a command ended, or halt/reboot failed.  0, -ENOMEM. */
int failfast_new(uv_loop_t *loop, const struct config_node *n, const char *why, void (*done)(void *userdata),
                 void *userdata, struct failfast **ret);
/* Runs the action now (once; the timer armed by failfast_new() runs it otherwise). */
void failfast_act(struct failfast *f);
/* Closes its handles (a command still running is left to run); accepts NULL, returns NULL. */
struct failfast *failfast_free(struct failfast *f);
