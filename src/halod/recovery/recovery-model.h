/* SPDX-License-Identifier: MIT */
/*
 * The recovery model (seed 003, docs/recovery.md): the processes of the
 * description with their services, devices, node and pool, and the rules the
 * coordinator applies to their HA states.  Pure: no I/O, no loop.
 *
 * Object names (queue.h's "kind:name"):
 *   process:<P>        a component; <P> is its name with '/' written ':'
 *   service:<P>:<S>    service S of that process
 *   device:<P>:<D>     storage device D it uses
 *   node:<N>
 *
 * Only the processes of a pool take part in the recovery protocol: they have
 * epochs and failure vectors, and their ONLINE comes from recovery.  The
 * others keep the plain rules (any reported change is published).
 */
#pragma once

#include <stdbool.h>
#include <stddef.h>

#include "config.h"
#include "queue-report.h"
#include "queue.h"

struct rm_process {
    char object[QUEUE_OBJECT_MAX]; /* "process:<P>" */
    const char *name;              /* the component's name in the description */
    const char *node;
    const struct config_component *cc;
    const struct config_pool *pool; /* NULL: not in a pool */
    size_t index;                   /* its position in the model: 0 .. rm_n_processes() - 1 */
};

struct recovery_model;

/* Builds the model of c (which must outlive it).  0, -ENAMETOOLONG (an
 * object name longer than QUEUE_NAME_MAX: halod --check reports it), -ENOMEM. */
int rm_new(const struct config *c, struct recovery_model **ret);
struct recovery_model *rm_free(struct recovery_model *m); /* accepts NULL; returns NULL */

/* The nodes are c's from now on (a reload that changed them; c must outlive the model): the
 * processes stay those of the description the model was built from. */
void rm_set_nodes(struct recovery_model *m, const struct config *c);

/* The process an object is or belongs to (its service or device); NULL for
 * nodes and objects outside the model. */
const struct rm_process *rm_owner(const struct recovery_model *m, const char *object);
const struct rm_process *rm_find(const struct recovery_model *m, const char *process_object);
/* The process of a component, by its name in the description. */
const struct rm_process *rm_component(const struct recovery_model *m, const char *component);
/* Every component, in description order. */
size_t rm_n_processes(const struct recovery_model *m);
const struct rm_process *rm_process_at(const struct recovery_model *m, size_t i);
/* The pool's processes, in description order. */
size_t rm_pool_members(const struct recovery_model *m, const struct config_pool *pool, const struct rm_process **out,
                       size_t max);
/* Whether an object ("kind:name") is in the model: processes, their services
 * and devices, nodes. */
bool rm_known(const struct recovery_model *m, const char *object);

/*
 * The pool processes whose failure vector takes an event on object: the
 * members of its owner's pool (the owner too); for a node, the pool
 * processes on it.  Returns how many (at most max are written).
 */
size_t rm_concerned(const struct recovery_model *m, const char *object, const struct rm_process **out, size_t max);

/*
 * The events a published one implies (failure expansion, as Hare does): a
 * process FAILED or ONLINE takes its services along; a node FAILED fails
 * its processes and their services.  Devices keep their own state (a node
 * that fails has not lost its storage).  Each derived event copies ev's node
 * and hlc, with a reason naming ev.  Returns how many there are (at most
 * max are written; call with max 0 to count).
 */
size_t rm_expand(const struct recovery_model *m, const struct queue_event *ev, struct queue_event *out, size_t max);

/*
 * The coordinator's rule for an event that changes an object's state:
 * current is the object's published state (an enum queue_ha_state) or
 * -ENOENT; incarnation is, for a node, the lease its published state
 * carries (0 if none), else the owner process's current epoch
 * (QUEUE_EPOCH_NONE if it has none).  Returns 1 (publish ev->state) or 0
 * (refused: *why says why, for the log).
 *
 * Pool processes: a first report is taken as it comes; then
 *   ONLINE -> FAILED | TRANSIENT
 *   FAILED -> TRANSIENT                 (recovery starts)
 *   TRANSIENT -> RECOVERING | FAILED
 *   RECOVERING -> ONLINE | TRANSIENT    (done | failed: wait for the next trigger)
 * TRANSIENT, RECOVERING and the ONLINE that ends a recovery come only from
 * the process's own node with the current epoch (the halod that drives its
 * recovery; trigger once).  FAILED of a RECOVERING process is dropped: it
 * stays RECOVERING and its next start recovers again.  A FAILED that names
 * an epoch older than the current one is late (the process recovered
 * since): refused.
 * Devices: FAILED -> REPAIR -> REPAIRED -> REBALANCE -> ONLINE; ONLINE <->
 * TRANSIENT; anything -> FAILED.  Nodes: ONLINE, FAILED, OFFLINE; the FAILED
 * of an ONLINE node for a lease other than the one it is ONLINE with is late
 * (it joined again since): refused.  No object but a pool process is
 * RECOVERING.
 */
int rm_decide(const struct recovery_model *m, const struct queue_event *ev, int current, int64_t incarnation,
              const char **why);
