/* SPDX-License-Identifier: MIT */
/*
 * The AMF on several nodes, kept in step through the store.  Every halod
 * follows the cluster's keys (docs/store.md, Several nodes) and applies them
 * to its AMF; it publishes what the AMF decides (targets, on the coordinator)
 * and what it holds (confirmed roles, the units' state).  Registers itself as
 * the AMF's placement and as one of its observers.
 *
 *   sustate/<su>        the SU's node: whether it is in service, failing, and
 *                       whether its processes are all gone (under the node lease,
 *                       so a dead node's SUs vanish with it)
 *   target/<si>/<su>    the coordinator: the role su must hold for si, with a
 *                       generation; written only while the leader key is still
 *                       the one it won (a deposed coordinator's write is refused)
 *   confirmed/<si>/<su> the SU's node: the role it holds after applying the
 *                       target of that generation
 */
#pragma once

#include <jansson.h>
#include <stdbool.h>
#include <uv.h>

#include "amf.h"
#include "cluster-forward.h"
#include "cluster.h"
#include "queue-report.h"
#include "store.h"

struct cluster_sync;

struct cluster_sync_params {
    store *store;
    const char *prefix; /* copied */
    const char *node;   /* copied */
    struct amf *amf;
    struct cluster *cluster;
    struct cluster_forward *forward;
    struct queue_reporter *reporter; /* nodes seen leaving are reported FAILED */
};
int cluster_sync_new(const struct cluster_sync_params *p, struct cluster_sync **ret);
/* Stops following.  Accepts NULL; returns NULL. */
struct cluster_sync *cluster_sync_free(struct cluster_sync *s);

/* Reads the cluster's keys into the AMF, then follows them (store-follow.h:
 * a failed read is retried, a watch that fell behind reads again); cb runs
 * once the first read is applied (error is 0).  0 or -errno (cb does not run). */
typedef void (*cluster_sync_loaded_cb)(void *userdata, int error);
int cluster_sync_start(struct cluster_sync *s, cluster_sync_loaded_cb cb, void *userdata);

/* A reload adds or removes service groups (docs/configuration.md, Reload): begin before the AMF
 * adds them (the coordinator stops deciding), end after; the units of the groups added are published
 * and the store's keys of those groups read again, after which the coordinator decides again.  A
 * group removed is dealt with once its removal is done (its keys deleted). */
void cluster_sync_reload_begin(struct cluster_sync *s);
void cluster_sync_reload_end(struct cluster_sync *s);

/* The membership's events (cluster.h). */
void cluster_sync_joined(struct cluster_sync *s);
void cluster_sync_coordinator(struct cluster_sync *s, bool coordinator);
void cluster_sync_fenced(struct cluster_sync *s);

/* cb(userdata, node) when another node left (its lease ended), once it counts as not live here. */
void cluster_sync_on_node_left(struct cluster_sync *s, void (*cb)(void *userdata, const char *node), void *userdata);
/* Whether node holds its lease, as the store says: 1, 0 (it left), -ENOENT (never seen). */
int cluster_sync_node(const struct cluster_sync *s, const char *node);
/* The digest of node's description as its node key published it (docs/store.md); NULL when it holds no
 * lease or published none. */
const char *cluster_sync_node_digest(const struct cluster_sync *s, const char *node);
/* The names of node's service groups (a JSON array of strings, borrowed) as its node key published
 * them; NULL when it holds no lease or published none. */
json_t *cluster_sync_node_groups(const struct cluster_sync *s, const char *node);
/* The nodes holding their lease: writes at most max into out, returns how many there are (max 0: counts). */
size_t cluster_sync_live_nodes(const struct cluster_sync *s, const char **out, size_t max);
