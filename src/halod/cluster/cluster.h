/* SPDX-License-Identifier: MIT */
/*
 * Membership and the coordinator, for halods that share an etcd store.
 *
 * Each halod holds a node lease and puts its node key under it; one halod
 * wins the leader key by compare-and-swap (create revision 0) under its lease
 * and is the coordinator until its lease ends.  A halod that cannot renew its
 * lease fences itself before the lease can expire in etcd (on_fence), stops
 * being the coordinator, and once the store answers again takes a new lease
 * and rejoins (on_joined).
 */
#pragma once

#include <stdbool.h>
#include <stdint.h>
#include <uv.h>

#include "store.h"

struct cluster;

/* How long before the lease can expire the local processes must be gone if
 * halod is: later than halod's own fence, so that a living halod fences
 * first and its STANDBY processes survive (it has 100 ms to say so, with a
 * 250 ms fence margin), and early enough that a process slow to die still
 * dies before another node promotes (DOOM_SLACK_USEC, cluster-sync.c). */
#define CLUSTER_PROCESS_MARGIN_USEC (150 * 1000)

struct cluster_handlers {
    /* The lease is held (first time, or again after a fence): keys may be put under it. */
    void (*on_joined)(struct cluster *c, void *userdata);
    /* This node became the coordinator, or stopped being it. */
    void (*on_coordinator)(struct cluster *c, bool coordinator, void *userdata);
    /* The lease may expire before the next renewal: stop every ACTIVE now.
     * If some of the processes killed are not gone yet (or OCF resources
     * not stopped), call cluster_fence_wait() from here, and
     * cluster_fence_done() once they are: the lease is revoked (and another
     * node may promote) only then, or after max_msec (at least 5 s). */
    void (*on_fence)(struct cluster *c, void *userdata);
    /* The lease was renewed: it is held at least until deadline_usec
     * (CLOCK_MONOTONIC), CLUSTER_PROCESS_MARGIN_USEC before it can expire
     * and after this node would fence itself. */
    void (*on_renewed)(struct cluster *c, uint64_t deadline_usec, void *userdata);
};

struct cluster_params {
    uv_loop_t *loop;
    store *store;
    const char *prefix; /* "/halo/<cluster>/" */
    const char *node;
    int64_t ttl; /* node lease TTL asked for, seconds; etcd may grant more */
    const struct cluster_handlers *handlers;
    void *userdata;
};

/* A description's digest: 64 hex digits and the NUL. */
#define CLUSTER_DIGEST_MAX 65
/* The digest of this node's description (hex; docs/store.md) and its service groups' names (a JSON
 * array, or NULL), published in its node key from the next write of it on (sent now when joined). */
void cluster_set_description(struct cluster *c, const char *digest, const char *groups);
/* That digest ("": none). */
const char *cluster_digest(const struct cluster *c);

int cluster_new(const struct cluster_params *p, struct cluster **ret);
int cluster_start(struct cluster *c);
/* Revokes the lease (a clean leave: the others take over at once), then closes. */
void cluster_leave(struct cluster *c);
/* Closes the timers and the watch: no handler runs afterwards.  Idempotent. */
void cluster_close(struct cluster *c);
/* Closes (if cluster_close() did not) and frees; accepts NULL, returns NULL.
 * Safe at any time: the memory itself goes once the loop has run the timers'
 * close callbacks and the store has answered every call in flight. */
struct cluster *cluster_free(struct cluster *c);

void cluster_fence_wait(struct cluster *c, unsigned max_msec);
void cluster_fence_done(struct cluster *c);

bool cluster_joined(const struct cluster *c);
bool cluster_is_coordinator(const struct cluster *c);
int64_t cluster_lease(const struct cluster *c); /* 0 while none is held */
int64_t cluster_ttl(const struct cluster *c);   /* the TTL etcd granted */
/* The coordinator's node name as last seen, or NULL. */
const char *cluster_coordinator(const struct cluster *c);
/* A compare that holds only while this node still is the coordinator it won
 * as (the leader key's create revision); for the writes only it may do. */
void cluster_guard(const struct cluster *c, store_compare *cmp);
/* The coordinator's write was refused by the guard: it was deposed. */
void cluster_deposed(struct cluster *c);
