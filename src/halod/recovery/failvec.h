/* SPDX-License-Identifier: MIT */
/*
 * Epochs and failure vectors of the pool processes (seed 003; the layout is
 * docs/recovery.md's contract), kept by the coordinator: an eq_writer whose
 * writes go into the consumer's transactions, atomic with the BQ entry that
 * publishes the events.  Under the prefix P:
 *
 *   P <process>/current_epoch               the epoch, an integer
 *   P failvec/<process>/<epoch>             the epoch's record {"epoch","seq","hlc"}
 *   P failvec/<process>/<epoch>/<seq>       a chunk of the vector: the objects whose first
 *                                           event of the epoch came in the BQ entry of <seq>,
 *                                           each as its latest event, a JSON array
 *   P failvec/<process>/<epoch>/nr_failures how many objects the vector holds
 *
 *   P state/<process>                       the process's own state (the event that set
 *                                           it), written here too, so that the epoch, the
 *                                           vector and the state are one transaction
 *
 * <process> is the object name ("process:ios-a"), <seq> the seq of the first
 * event the chunk took (20 digits).  A vector is compacted per object: one
 * entry per object, its latest event of the epoch, at the place of its first
 * one (an event on an object with an entry rewrites that entry's chunk), so
 * it is bounded by the pool's objects, not by the number of events.  The
 * coordinator keeps the current vectors in memory (read back at start).  An
 * epoch opens when the process goes ONLINE (that event and its services'
 * ONLINE are not in its vector), or at its own first event if it has no
 * epoch yet; events about others are recorded for a process from then on.
 * The epoch two before is deleted when one opens, so a process keeps its
 * current and previous vectors.  Writes that do not fit one transaction with
 * the rest of the batch close it (queue.h).
 */
#pragma once

#include <stdint.h>

#include "queue.h"
#include "recovery-model.h"
#include "store.h"

struct failvec;

/* prefix is copied; store, q and model must outlive it. */
int failvec_new(store *s, struct queue *q, const char *prefix, const struct recovery_model *model,
                struct failvec **ret);
/* Stops; the memory goes when the store's callbacks in flight have run. */
void failvec_free(struct failvec *f);

/* The writer to give eq_consumer_set_writer() with f as its userdata. */
extern const struct eq_writer failvec_writer;

/* A pool process's epoch as the consumer sees it now (the batch being built
 * included), QUEUE_EPOCH_NONE if it has none or is not known yet. */
int64_t failvec_epoch(const struct failvec *f, const struct rm_process *p);
