/* SPDX-License-Identifier: MIT */
/*
 * A fixture for the redundancy models' unit tests (test-amf-2n.c,
 * test-amf-nored.c, ...): one SG of up to FX_SUS units ("a", "b", ...) and
 * FX_SIS SIs ("s0", "s1", ...), and stubs of the AMF helpers a model calls that
 * record each action, so every decision of a model is checked without
 * processes or sockets.
 */
#pragma once

#include "amf-internal.h"
#include "tests.h"

#define FX_SUS 5
#define FX_SIS 4

struct action {
    char what[16]; /* "assign", "unassign", "switchover" */
    char si[16];
    char su[32];
    halo_ha_state state;
    halo_csi_transition transition;
    int error;
};
extern struct action actions[256];
extern size_t n_actions;

extern struct comp comps[FX_SUS];
extern struct su sus[FX_SUS];
extern struct config_su su_cfg[FX_SUS];
extern struct si sis[FX_SIS];
extern struct config_si si_cfg[FX_SIS];
extern struct config_sg sg_cfg;
extern struct sg sg;
/* The last delay the reconciler asked to be called again after (auto-adjust's probation). */
extern usec_t fx_adjust_delay;
/* The readiness hook's answer, per unit (amf.c asks the hook the recovery sets). */
extern bool not_ready[FX_SUS];

/* A fresh group of model ops with n_sus units (rank = index) and n_sis SIs; the
 * configuration (sg_cfg, si_cfg) may be changed afterwards. */
void fx_setup(const struct redundancy_ops *ops, size_t n_sus, size_t n_sis);
void fx_evaluate(void);
/* Completes every in-flight step, as the components' responses would. */
void fx_confirm_all(void);
/* Runs evaluate/confirm until nothing more happens; returns the number of actions. */
size_t fx_settle(void);
/* The confirmed role of unit su for SI number si ("NONE" without). */
const char *fx_role(size_t si, const char *su);
/* How many confirmed assignments of SI si have state. */
unsigned fx_count(size_t si, halo_ha_state state);
/* Action i is what on su (NULL: any) with state (0: any). */
void fx_expect(size_t i, const char *what, const char *su, halo_ha_state state);
/* The same, and for SI si. */
void fx_expect_si(size_t i, const char *what, const char *si, const char *su, halo_ha_state state);
/* A failure as amf.c's su_fail() leaves it: the unit's assignments dropped. */
void fx_fail_su(struct su *su);
/* The unit is back: restarted and registered again. */
void fx_repair_su(struct su *su);
void fx_dump(void);
