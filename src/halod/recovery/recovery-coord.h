/* SPDX-License-Identifier: MIT */
/*
 * The coordinator's duties on the event queues (seed 003's recovery
 * coordinator): consume the EQ under its guard with the HA state rules and
 * failure expansion of the recovery model, keep the pool processes' epochs and
 * failure vectors in the same transactions, and prune the BQ that every live
 * node has read.  One node: always on; several: while this node is the
 * coordinator.
 */
#pragma once

#include <stdbool.h>
#include <uv.h>

#include "cluster.h"
#include "queue.h"
#include "recovery-model.h"
#include "store.h"

struct recovery_coord;

struct recovery_coord_params {
    uv_loop_t *loop;
    store *store;
    const char *prefix; /* copied */
    const char *node;   /* copied: one node's only reader */
    struct queue *queue;
    const struct recovery_model *model; /* NULL: every event's own state is published */
    bool pools;                         /* keep epochs and failure vectors */
    struct cluster *cluster;            /* several nodes: the guard; NULL on one node */
    /* Several nodes: the live nodes, every one of them (writes at most max
     * into out, returns how many there are); NULL on one node. */
    size_t (*live_nodes)(void *userdata, const char **out, size_t max);
    void *live_userdata;
};
int recovery_coord_new(const struct recovery_coord_params *p, struct recovery_coord **ret);
/* Accepts NULL; returns NULL.  Run the loop once more for its timer to close. */
struct recovery_coord *recovery_coord_free(struct recovery_coord *c);
/* Starts or stops consuming and pruning. */
void recovery_coord_set(struct recovery_coord *c, bool coordinator);
