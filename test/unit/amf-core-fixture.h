/* SPDX-License-Identifier: MIT */
/*
 * A fixture for the unit tests of the AMF core (test-amf.c, test-amf-admin.c,
 * test-amf-ladder.c):
 * the AMF library linked with no io; processes and HA links are fakes
 * (fake-io.c), the observers record what they hear ("comp a spawned",
 * "su a admin", "assignment si", "waiter ok"), and a placement of several
 * nodes records what it is asked.
 */
#pragma once

#include "amf-internal.h"
#include "fake-io.h"
#include "link.h"
#include "macro.h"
#include "tests.h"

extern char events[256][96];
extern size_t n_events;
_printf_(1, 2) void record(const char *fmt, ...);
/* Whether what was recorded; its index in the record, or -1. */
bool seen(const char *what);
int seen_at(const char *what);

extern const struct amf_observer observer;
/* Several nodes: targets of other nodes' units are published (1), this node's applied here. */
extern const struct amf_placement_ops remote_placement;

/* The process of a component ends, as its pidfd would tell. */
void proc_exit(struct comp *c, int status);
LinkMsg *next_msg(struct conn *c);
/* The next message on c is a CSI set of state (else the test fails). */
const Halo__Link__CsiSet *expect_csi_set(struct conn *c, halo_ha_state state);

#define AMF_CORE_PATH_MAX 64

/* Writes yaml to path (a file of this process), loads it into *ret_cfg (a failure fails the
 * test), inits loop and makes *ret_amf, an AMF of node n1 on it.  The loop gets an
 * unreferenced 5 ms tick, so that a test may wait with `while (!cond) uv_run(UV_RUN_ONCE)`:
 * no poll sleeps past a callback that was due already (amf-core-fixture.c says why). */
void amf_core_start(uv_loop_t *loop, const char *yaml, char path[AMF_CORE_PATH_MAX], struct config **ret_cfg,
                    struct amf **ret_amf);
/* Closes and frees *amf and *cfg, runs loop until its handles are closed and closes it, removes path. */
void amf_core_stop(uv_loop_t *loop, const char *path, struct config **cfg, struct amf **amf);

struct fixture {
    uv_loop_t loop;
    struct config *cfg;
    struct amf *amf;
    char path[AMF_CORE_PATH_MAX];
    struct conn conns[4];
};

void fixture_start(struct fixture *f, const char *yaml);
void fixture_stop(struct fixture *f);
/* The component's process registers on the fixture's link i. */
struct conn *registered(struct fixture *f, size_t i, const char *comp);
/* The component answers the CSI set it was sent (and completes a quiescing). */
void answer(struct fixture *f, struct conn *conn, const Halo__Link__CsiSet *cs);
/* Both units of TWO_UNITS registered, a ACTIVE and b STANDBY, every CSI set answered. */
void fully_assigned(struct fixture *f, struct conn **ret_a, struct conn **ret_b);
/* A waiter that records "waiter ok" or "waiter error". */
void waiter_done(struct amf_waiter *w, int error);

#define TWO_UNITS(restart)         \
    "cluster: t\n"                 \
    "nodes:\n"                     \
    "  n1: {}\n"                   \
    "  n2: {}\n"                   \
    "service-groups:\n"            \
    "  g:\n"                       \
    "    component:\n"             \
    "      command: /bin/true\n"   \
    "      restart: " restart "\n" \
    "    service-units:\n"         \
    "      a: {node: n1}\n"        \
    "      b: {node: n1}\n"        \
    "    service-instances:\n"     \
    "      si:\n"                  \
    "        csis:\n"              \
    "          csi: {attributes: {port: \"7\"}}\n"
