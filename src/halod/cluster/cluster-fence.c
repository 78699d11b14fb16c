/* SPDX-License-Identifier: MIT */
/*
 * When another node's unit counts as fenced once its node's lease ended
 * (cluster-sync-internal.h).
 *
 * A lease's end by the store's rules, or a doom (cluster-doom.c), proves that
 * the node's processes are gone: libhalo killed them at the node's deadline,
 * 150 ms before anyone could see that end.  It does not prove that its OCF
 * resources are: the node's fence (its halod's, or its halo-guard's at that
 * same deadline) only begins their stop, and an agent's stop may take up to
 * its timeout (unmounting a file system takes seconds).  So a unit with OCF
 * resources counts as fenced only that timeout after the end was seen (its
 * node publishes the longest of them as "stop_ms"), or as soon as its node is
 * back under a new lease: a node joins again only once its fence's stops have
 * ended (cluster_fence_wait()).  An end the store cannot vouch for waits a TTL
 * first (cluster-sync.c), then the same.
 *
 * This node's own side: after a fence it takes a new lease only once what the
 * fence killed is gone and its OCF stops have succeeded, waiting for them at
 * least their longest timeout.
 */
#define LOG_AREA LOG_AREA_CLUSTER
#include <stdlib.h>
#include <string.h>

#include "cluster-sync-internal.h"
#include "log.h"
#include "macro.h"
#include "time-util.h"

bool cluster_sync__local_fenced(struct cluster_sync *s) {
    size_t n_sgs;
    struct sg *sgs = amf_sgs(s->amf, &n_sgs);
    for (size_t g = 0; g < n_sgs; g++)
        for (size_t u = 0; u < sgs[g].n_sus; u++) {
            struct su *su = &sgs[g].sus[u];
            for (size_t i = 0; su->local && su->failing && i < su->n_comps; i++) {
                const struct comp *c = &su->comps[i];
                /* An OCF resource is gone once its agent's stop succeeded (ocf.up), not with a process. */
                if ((c->proc && !proc_has_exited(c->proc)) || c->ocf.up || (c->helper && !proc_has_exited(c->helper)))
                    return false;
            }
        }
    return true;
}

unsigned cluster_sync__local_stop_msec(struct cluster_sync *s) {
    size_t n_sgs;
    unsigned longest = 0;
    struct sg *sgs = amf_sgs(s->amf, &n_sgs);
    for (size_t g = 0; g < n_sgs; g++)
        for (size_t u = 0; u < sgs[g].n_sus; u++)
            if (sgs[g].sus[u].local)
                longest = MAX(longest, amf_su_ocf_stop_msec(&sgs[g].sus[u]));
    return longest;
}

static struct stop_wait *wait_find(struct cluster_sync *s, const struct su *su) {
    for (size_t i = 0; i < s->n_stop_waits; i++)
        if (streq(s->stop_waits[i].su, su->name))
            return &s->stop_waits[i];
    return NULL;
}

static void wait_drop(struct cluster_sync *s, struct stop_wait *w) {
    free(w->su);
    *w = s->stop_waits[--s->n_stop_waits];
}

/* How long su's OCF resources may take to stop: what its node published; for a unit this halod
 * never saw published (its node left before this halod started), the stop timeout the description
 * gives, the default OCF timeout where it gives none (the agent's meta-data is read on its own
 * node only).  0: it has none. */
static unsigned stop_msec(const struct su *su) {
    if (su->remote.stop_ms || su->remote.lease)
        return su->remote.stop_ms;
    return amf_su_ocf_stop_msec(su);
}

/* su counts as fenced once its OCF resources' stop timeout has passed from now.  Without
 * the memory to wait, at once: the only other choice would be to wait for good. */
static void wait_add(struct cluster_sync *s, struct su *su) {
    char d[32];
    struct stop_wait *w = wait_find(s, su);
    if (!w) {
        struct stop_wait *t = reallocarray(s->stop_waits, s->n_stop_waits + 1, sizeof(*t));
        char *name = strdup(su->name);
        if (!t || !name) {
            free(name);
            if (t)
                s->stop_waits = t;
            log_error("Out of memory: service unit '%s' counts as fenced now, its OCF resources' stop may still run",
                      su->name);
            amf_su_remote(su, &(struct su_remote){.fenced = true}, true);
            return;
        }
        s->stop_waits = t;
        w = &s->stop_waits[s->n_stop_waits++];
        w->su = name;
    }
    unsigned ms = stop_msec(su);
    w->at = now_monotonic_usec() + (usec_t)ms * USEC_PER_MSEC;
    log_notice("Service unit '%s' of node '%s' may still be stopping its OCF resources: it counts as fenced in %s "
               "(their stop timeout), or when its node joins again",
               su->name, su->cfg->node, format_duration(d, sizeof(d), (usec_t)ms * USEC_PER_MSEC));
    cluster_sync__arm_node_timer(s);
}

void cluster_sync__unit_gone(struct cluster_sync *s, struct su *su, bool trusted) {
    bool stopping = trusted && su->remote.known && su->remote.stop_ms;
    amf_su_remote(su, &(struct su_remote){.fenced = trusted && !stopping}, true);
    if (stopping)
        wait_add(s, su);
}

void cluster_sync__node_units_fenced(struct cluster_sync *s, const char *node, bool rejoined) {
    size_t n_sgs;
    struct sg *sgs = amf_sgs(s->amf, &n_sgs);
    for (size_t g = 0; g < n_sgs; g++)
        for (size_t u = 0; u < sgs[g].n_sus; u++) {
            struct su *su = &sgs[g].sus[u];
            if (su->local || su->remote.known || su->remote.fenced || !streq(su->cfg->node, node))
                continue;
            struct stop_wait *w = wait_find(s, su);
            if (!rejoined && (stop_msec(su) || w)) {
                if (!w) /* else its own timer says when */
                    wait_add(s, su);
                continue;
            }
            if (w)
                wait_drop(s, w);
            amf_su_remote(su, &(struct su_remote){.fenced = true}, true);
        }
}

void cluster_sync__unseen_units(struct cluster_sync *s) {
    size_t n_sgs;
    struct sg *sgs = amf_sgs(s->amf, &n_sgs);
    for (size_t g = 0; g < n_sgs; g++)
        for (size_t u = 0; u < sgs[g].n_sus; u++) {
            struct su *su = &sgs[g].sus[u];
            if (su->local || su->remote.known || su->remote.fenced || su->remote.lease || !stop_msec(su) ||
                wait_find(s, su))
                continue;
            const struct node_info *n = cluster_sync__node_find(s, su->cfg->node, false);
            if (n && n->alive)
                continue; /* its state is on its way (or its write failed: cluster-sync.c takes it when it comes) */
            amf_su_unseen_stopping(su);
            wait_add(s, su);
        }
}

bool cluster_sync__node_stopping(struct cluster_sync *s, const char *node) {
    for (size_t i = 0; i < s->n_stop_waits; i++) {
        struct su *su = amf_find_su(s->amf, s->stop_waits[i].su);
        if (su && streq(su->cfg->node, node))
            return true;
    }
    return false;
}

usec_t cluster_sync__stop_waits_first(struct cluster_sync *s) {
    usec_t first = 0;
    for (size_t i = 0; i < s->n_stop_waits; i++)
        if (!first || s->stop_waits[i].at < first)
            first = s->stop_waits[i].at;
    return first;
}

void cluster_sync__stop_waits_due(struct cluster_sync *s, usec_t now) {
    for (size_t i = 0; i < s->n_stop_waits;) {
        struct stop_wait *w = &s->stop_waits[i];
        if (w->at > now) {
            i++;
            continue;
        }
        /* Gone from the description, or back under a new lease meanwhile: nothing to do. */
        struct su *su = amf_find_su(s->amf, w->su);
        wait_drop(s, w);
        if (!su || su->local || su->remote.known || su->remote.fenced)
            continue;
        log_notice("Service unit '%s' counts as fenced: the stop timeout of its OCF resources has passed since its "
                   "node's lease ended",
                   su->name);
        amf_su_remote(su, &(struct su_remote){.fenced = true}, true);
    }
}

void cluster_sync__stop_waits_free(struct cluster_sync *s) {
    while (s->n_stop_waits)
        wait_drop(s, &s->stop_waits[0]);
    free(s->stop_waits);
    s->stop_waits = NULL;
}
