/* SPDX-License-Identifier: MIT */
/*
 * What cluster-sync.c shares with cluster-doom.c: the state of the AMF kept in
 * step through the store, and the helpers both use.  Not for other modules
 * (cluster-sync.h is their interface).
 */
#pragma once

#include <jansson.h>
#include <stdbool.h>
#include <stdint.h>
#include <uv.h>

#include "amf.h"
#include "cluster-sync.h"
#include "hashmap.h"
#include "keys.h"
#include "store.h"
#include "time-util.h"

/* How many units and SIs a group has (before a reload: those after are the reload's, added). */
struct group_members {
    size_t sus, sis;
};

struct node_info {
    char *name;
    bool alive;       /* its node key exists (its lease is held) */
    int64_t lease;    /* the lease its node key was last seen under: its incarnation */
    usec_t fenced_at; /* its lease ended in a way the store could not vouch for: its units count
                       * as fenced from then on (0: no such wait) */
    bool beats;       /* it rewrites its node key at each renewal (cluster.c) */
    int64_t beat_rev; /* the mod revision of its node key as last seen */
    int64_t ttl_ms;   /* its lease TTL */
    usec_t doom_at;   /* no beat since: it is dead by then, whatever it does (0: not watched) */
    bool dooming;     /* the doom transaction is in flight */
    char digest[65];  /* of its description, as its node key says (cluster.c); "": not published */
    json_t *groups;   /* the names of its service groups (a JSON array), as its node key says; NULL: none */
};

/* What this node last published in sustate/<su> of one of its units. */
struct published {
    struct su *su;
    bool known;
    struct su_remote r;
    /* The unit's failures: begun, and covered by a state written since (the first write after a
     * failure, at revision fail_rev).  A target decided on a state older than that failure is void. */
    bool was_failing;
    unsigned failures, failures_written;
    int64_t fail_rev;
};

/* Another node's unit gone with its node's lease, whose OCF resources may still be being stopped there
 * (cluster-fence.c): it counts as fenced at `at` (CLOCK_MONOTONIC), or when its node joins again. */
struct stop_wait {
    char *su;
    usec_t at;
};

/* A confirmation being written, or whose write failed: the coordinator waits for it. */
struct unwritten {
    struct cluster_sync *s;
    char *key, *value;
    int64_t lease; /* this node's when it was written: void under another */
};

struct cluster_sync {
    store *store;
    char *prefix, *node;
    struct amf *amf;
    struct cluster *cluster;
    struct cluster_forward *forward;
    struct queue_reporter *reporter;
    void (*node_left)(void *userdata, const char *node); /* cluster_sync_on_node_left() */
    void *node_left_userdata;
    struct store_follow *follow;
    bool synced;      /* the first read is applied */
    bool taking_over; /* this node is the coordinator: take over once synced */
    unsigned refs;    /* store calls in flight, and the owner */
    cluster_sync_loaded_cb loaded;
    void *loaded_userdata;
    struct node_info *nodes;
    size_t n_nodes;
    struct published *pub; /* this node's units (grows with a reload's groups: never keep an entry) */
    size_t n_pub, cap_pub;
    size_t n_sgs_known; /* the AMF's groups published so far: those after are a reload's, added */
    bool held;          /* the coordinator stopped deciding until the groups a reload added are read */
    unsigned rereads;   /* those reads in flight */
    usec_t reread_at;   /* such a read failed: read again then (0: none), for the groups below */
    size_t reread_from, reread_to;
    struct group_members *reread_since; /* and the units and SIs added to the groups that stay (struct
                                         * reread), or NULL */
    size_t n_reread_since;
    unsigned reread_failed;       /* the reads that failed, folded into that one */
    bool sweeping, sweep_again;   /* the keys no live node has: being read; to be read again after */
    struct group_members *before; /* a reload under way: each group's units and SIs before it, or NULL */
    size_t n_before;
    bool fence_waiting;           /* this node fenced itself; processes it killed still run */
    bool decided;                 /* it decided as the coordinator since the targets were last read */
    bool fenced_since;            /* this node fenced itself since it last took over as the coordinator */
    struct hashmap cdb_alone;     /* cdb-alone/<sg> of each cdb-roles group that has one: its name -> the node
                                   * (char *) whose CDB acknowledged commits alone */
    bool cdb_alone_lost;          /* a record could not be kept (out of memory): no unit of a cdb-roles group
                                   * may take an ACTIVE until they are all read again (handle_cdb_alone()) */
    usec_t cdb_alone_read_at;     /* then: when to read them (0: read under way, or none needed) */
    uv_timer_t node_timer;        /* the earliest node_info.fenced_at or doom_at, pub_retry_at, targets_again */
    usec_t pub_retry_at;          /* a unit state's write failed: written again then (0: none) */
    unsigned pub_retry_msec;      /* its backoff: 100 ms, doubled up to 2 s, reset by a write that succeeds */
    bool targets_again;           /* a remote unit came back under a new lease: read the targets again */
    bool targets_at_join;         /* a target of ours came before this node held a lease: read them again then */
    struct unwritten **unwritten; /* confirmations whose write failed, written again with the unit states */
    size_t n_unwritten;
    int64_t doom_rev;             /* the revision of the last doom/<node> seen: its deletions are proven fences */
    int64_t seen_rev;             /* the newest mod revision of a key handled (read or watched) */
    struct hashmap pair_revs;     /* target/ and confirmed/ keys -> int64_t *: the mod revision handled last */
    struct stop_wait *stop_waits; /* the units whose OCF resources' stop may still run on their gone node */
    size_t n_stop_waits;
};

void cluster_sync__unref(struct cluster_sync *s);
/* What this node last published of su (one of its units), or NULL; the table may move: not kept. */
struct published *cluster_sync__published(struct cluster_sync *s, const struct su *su);
/* Adds su to the units published: 1, 0 (there already), -ENOMEM. */
int cluster_sync__pub_add(struct cluster_sync *s, struct su *su);
void cluster_sync__publish_sustate(struct cluster_sync *s, struct su *su, bool force);
/* Runs ops under the coordinator's guard: a deposed coordinator writes nothing. */
void cluster_sync__guarded(struct cluster_sync *s, const store_op *ops, size_t n);
/* A key read or watched, applied to the AMF. */
void cluster_sync__handle_kv(struct cluster_sync *s, const store_kv *kv);
/* Reads the keys of dir d (what: for the log, if the read cannot start); cb takes them with a
 * reference to s, which it drops (cluster_sync__unref()).  0, or the error of a read that did not
 * start (then cb never runs). */
int cluster_sync__read_again_with(struct cluster_sync *s, enum key_dir d, const char *what, store_cb cb);
/* Whether r holds the key dir/name. */
bool cluster_sync__read_has(struct cluster_sync *s, const store_result *r, enum key_dir dir, const char *name);

/* cluster-cdb.c: the record cdb-alone/<sg_name> says j (deleted: gone). */
void cluster_sync__cdb_alone(struct cluster_sync *s, const char *sg_name, json_t *j, bool deleted);
/* The readiness for an ACTIVE that the records allow su (amf_add_active_readiness()). */
bool cluster_sync__cdb_ready(void *userdata, const struct su *su);
/* Reads every record again, after one could not be kept (the node timer, at cdb_alone_read_at). */
void cluster_sync__cdb_alone_read(struct cluster_sync *s);
void cluster_sync__forget_leftovers(struct cluster_sync *s, size_t from, size_t to);
/* Deletes the keys of the pair of si and su (under the coordinator's guard). */
void cluster_sync__forget_pair(struct cluster_sync *s, struct si *si, struct su *su);
/* cluster-sync-reload.c: a reload removed sg (its units stopped). */
void cluster_sync__reread_again(struct cluster_sync *s);
void cluster_sync__group_removed(struct cluster_sync *s, struct sg *sg);
/* The coordinator, once every live node runs its description: deletes what the store keeps of groups,
 * SIs and units it does not have (left by a coordinator that died in a group's removal). */
void cluster_sync__sweep(struct cluster_sync *s);
/* A reload removed su from a group that stays: its state (its node) and its pairs (the coordinator) deleted. */
void cluster_sync__unit_removed(struct cluster_sync *s, struct su *su);
/* n's node key says j (NULL: deleted): its description's digest and groups; a change sweeps (cluster-sync-reload.c). */
void cluster_sync__node_description(struct cluster_sync *s, struct node_info *n, json_t *j);
struct node_info *cluster_sync__node_find(struct cluster_sync *s, const char *name, bool create);
/* Another node n left (it counts as not live now): reported FAILED, and told to cluster_sync_on_node_left()'s. */
void cluster_sync__node_left(struct cluster_sync *s, struct node_info *n);
/* The node timer at the earliest of its waits (struct cluster_sync.node_timer). */
void cluster_sync__arm_node_timer(struct cluster_sync *s);

/* cluster-fence.c: whether every process and OCF resource of this node's failed units is gone. */
bool cluster_sync__local_fenced(struct cluster_sync *s);
/* The longest stop timeout of this node's OCF resources, in milliseconds (0: none). */
unsigned cluster_sync__local_stop_msec(struct cluster_sync *s);
/* su, another node's unit, is gone with its node's lease; trusted: the end is vouched
 * for (or a doom's).  It counts as fenced now, or once its OCF resources' stop timeout has passed. */
void cluster_sync__unit_gone(struct cluster_sync *s, struct su *su, bool trusted);
/* The units of node gone without being fenced count as fenced now: it joined again (rejoined), or a TTL
 * has passed since an end nobody vouched for (then those with OCF resources wait their stop timeout). */
void cluster_sync__node_units_fenced(struct cluster_sync *s, const char *node, bool rejoined);
/* At this halod's first read of the store, the units with OCF resources of the nodes that hold no
 * lease, which this halod has never seen: a fence it did not see may still be stopping them, so
 * they count as fenced only their stop timeout from now (or when their node joins again), and an
 * SI targeted at one of them waits as long (amf_su_unseen_stopping()). */
void cluster_sync__unseen_units(struct cluster_sync *s);
/* Whether a unit of node waits for its OCF resources' stop timeout. */
bool cluster_sync__node_stopping(struct cluster_sync *s, const char *node);
/* The earliest of those waits' ends (0: none); the units whose wait has ended count as fenced. */
usec_t cluster_sync__stop_waits_first(struct cluster_sync *s);
void cluster_sync__stop_waits_due(struct cluster_sync *s, usec_t now);
void cluster_sync__stop_waits_free(struct cluster_sync *s);

/* cluster-doom.c: node n, whose key has not changed since its deadline, is declared dead. */
void cluster_doom(struct cluster_sync *s, struct node_info *n);
/* n's node key changed (a beat, or its registration) at revision rev, with value j. */
void cluster_doom_beat_seen(struct cluster_sync *s, struct node_info *n, int64_t rev, json_t *j);
