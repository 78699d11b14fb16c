/* SPDX-License-Identifier: MIT */
/*
 * What the cluster is told of this node's processes, and the recovery of its
 * pool processes (seed 003; docs/recovery.md): only the halod local to a
 * restarted process drives it.  An observer of the AMF: a process that
 * registers is reported ONLINE (a pool process that must recover first is
 * not), one that fails is reported FAILED.
 */
#pragma once

#include <jansson.h>
#include <stdbool.h>
#include <uv.h>

#include "amf.h"
#include "queue-report.h"
#include "queue.h"
#include "recovery-model.h"
#include "store.h"

struct recovery_local;
struct conn;

struct recovery_local_params {
    uv_loop_t *loop; /* for the timers of reads tried again */
    struct amf *amf;
    store *store;
    const char *prefix;  /* copied */
    struct queue *queue; /* the published states */
    struct queue_reporter *reporter;
    const struct recovery_model *model; /* NULL: no recovery model (no pools) */
};
/* Registers itself as an observer of the AMF.  0, -ENOMEM, -ENOSPC. */
int recovery_local_new(const struct recovery_local_params *p, struct recovery_local **ret);
/* Reads this node's pool processes' recovery states (recovery/<process>).  0 or -errno. */
int recovery_local_start(struct recovery_local *r);
/* The memory goes when the store's callbacks in flight have run and its
 * timers are closed (run the loop).  Accepts NULL; returns NULL. */
struct recovery_local *recovery_local_free(struct recovery_local *r);

/* A registered process asked for its entrypoint: true if a recovery (or its
 * refusal) follows by RecoveryNote, and the answer says "recovery": true. */
bool recovery_local_entrypoint(struct recovery_local *r, struct comp *c);
/* haloctl recover --force: the next recovery (or attempt) of comp (a pool
 * process of this node, refused, failed, or transient with its STARTING
 * refused) skips its pool's tolerance check (its own devices are still
 * checked); a refused one that asked already recovers now.  0,
 * -HALO_EUNKNOWN (not a pool process here), -HALO_EBADSTATE (not waiting). */
int recovery_local_force(struct recovery_local *r, const char *comp);
/* A process event of a registered process: 0 or -HALO_EBADSTATE. */
int recovery_local_event(struct recovery_local *r, struct comp *c, halo_lifecycle event, const char *reason);
/* A process (comp) served its part of the recovery of process (an object
 * name), attempt the seq of the RECOVERING it served (0: the current one):
 * recorded for the recovering process's halod (recovery-dtm.h).  0,
 * -HALO_EUNKNOWN, -HALO_EBADSTATE, or -errno. */
int recovery_local_participant_done(struct recovery_local *r, struct comp *c, const char *process, uint64_t attempt);
/* Adds "recovery": {pool, state, epoch, reason} to a component's status object. */
void recovery_local_status(struct recovery_local *r, const struct comp *c, json_t *obj);
