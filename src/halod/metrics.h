/* SPDX-License-Identifier: MIT */
/* The metrics an HA operator alerts on: failovers, their durations, where each SI is ACTIVE (docs/metrics.md). */
#pragma once

#include <jansson.h>

#include "amf.h"

struct manager;
struct metrics;
struct http_metrics_buf;

/* The upper bounds of halo_failover_duration_seconds's buckets, in seconds (+Inf is added). */
#define METRICS_FAILOVER_BUCKETS 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120

/* Watches a's decisions (an observer of the AMF) from now on.  0, -ENOMEM, -ENOSPC. */
int metrics_new(struct amf *a, struct metrics **ret);
/* How many failovers the status document lists ("failovers": the newest first). */
#define METRICS_RECENT_FAILOVERS 16

/* Stops watching; before amf_free().  Accepts NULL; returns NULL. */
struct metrics *metrics_free(struct metrics *mt);

/* The last METRICS_RECENT_FAILOVERS failovers this node saw (on every node, not only the deciding one),
 * the newest first: [{"sg", "si", "from", "from_node", "to", "to_node", "reason", "counted", "seconds",
 * "at"}]: "counted" when this node decided it (its "reason" is then known; null otherwise), "seconds" from
 * when this node saw the ACTIVE lost to when it saw the new one confirmed, "at" that moment in seconds
 * since the epoch.  mt may be NULL (an empty array).  A new reference, NULL on out of memory. */
json_t *metrics_failovers_json(const struct metrics *mt);

/* Adds the failover, placement, restart, health-check, CDB, build and coordinator families of
 * m (m->metrics may be NULL: no failover is counted then).  0, -ENOMEM. */
int metrics_write(struct manager *m, struct http_metrics_buf *b);
