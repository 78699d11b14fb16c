/* SPDX-License-Identifier: MIT */
/*
 * This node's reports to the event queue: typed, grouped over
 * QUEUE_REPORT_GROUP_MSEC into one eq_append() (one store transaction), in
 * the order they were made.
 */
#pragma once

#include <stdint.h>
#include <uv.h>

#include "queue.h"

/* Reports are grouped over this long into one append: the turn of the loop
 * that reports a failure (and fails its unit over) does not also write the
 * store, so the new ACTIVE's answer is read first. */
#define QUEUE_REPORT_GROUP_MSEC 1
/* Reports waiting for the next flush; past this they are dropped and counted lost. */
#define QUEUE_REPORTS_PENDING_MAX 4096

struct queue_reporter;

/* q and loop must outlive it; node is copied.  0, -ENOMEM. */
int queue_reporter_new(uv_loop_t *loop, struct queue *q, const char *node, struct queue_reporter **ret);
/* Drops what was not flushed; the memory goes once its timer has closed (run the loop).  Accepts NULL. */
struct queue_reporter *queue_reporter_free(struct queue_reporter *r);

/* Reports that object kind:name is in state (epoch QUEUE_EPOCH_NONE when it
 * has none; reason may be NULL).  A name from the description ("su/comp") is
 * written as an object name ("su:comp").  Never fails: a report that cannot
 * be queued is counted as lost. */
void queue_report(struct queue_reporter *r, enum queue_kind kind, const char *name, enum queue_ha_state state,
                  const char *reason, int64_t epoch);
/* Reports that node is in state, for its incarnation lease (the lease of its
 * node key; 0 if unknown): the coordinator refuses a node's FAILED for a
 * lease that is no longer the node's latest (docs/recovery.md). */
void queue_report_node(struct queue_reporter *r, const char *node, enum queue_ha_state state, const char *reason,
                       int64_t lease);
/* Reports lost to a full buffer or a failed append. */
uint64_t queue_reporter_lost(const struct queue_reporter *r);

/* The object-name form of a description name: '/' written ':' ("su/comp" -> "su:comp"). */
void queue_object_part(char *out, size_t n, const char *name);
