/* SPDX-License-Identifier: MIT */
/*
 * A reload on several nodes, as far as the store is concerned (cluster-sync.h): the units of a
 * group added, or added to a group that stays, are published, and their keys and those of the SIs
 * added read again; the keys of a group or unit removed are deleted; the keys of groups, SIs and
 * units that no live node has any more are deleted by the coordinator.
 */
#define LOG_AREA LOG_AREA_CLUSTER
#include "cluster-sync-internal.h"
#include "cluster-sync.h"

#include <errno.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "keys.h"
#include "log.h"
#include "macro.h"
#include "time-util.h"

/* ---- the table of this node's units ---- */

int cluster_sync__pub_add(struct cluster_sync *s, struct su *su) {
    if (cluster_sync__published(s, su))
        return 0;
    if (s->n_pub == s->cap_pub) {
        /* Entries are looked up by unit each time (cluster_sync__published()), never kept: the table may move. */
        size_t cap = s->cap_pub ? 2 * s->cap_pub : 8;
        struct published *p = reallocarray(s->pub, cap, sizeof(*p));
        if (!p)
            return -ENOMEM;
        s->pub = p;
        s->cap_pub = cap;
    }
    s->pub[s->n_pub++] = (struct published){.su = su};
    return 1;
}

static void pub_drop(struct cluster_sync *s, const struct su *su) {
    for (size_t i = 0; i < s->n_pub; i++)
        if (s->pub[i].su == su) {
            s->pub[i] = s->pub[--s->n_pub];
            return;
        }
}

/* ---- a group added ---- */

/* A read again of the keys of the groups added by one reload, sgs[from..to), and of the units and
 * SIs it added to groups that stay: sgs[g].sus[since[g].sus..] and sgs[g].sis[since[g].sis..] for g
 * below n_since. */
struct reread {
    struct cluster_sync *s;
    size_t from, to;
    struct group_members *since; /* owned; NULL: no unit or SI added */
    size_t n_since;
    unsigned reads; /* the reads it stands for (reads that failed, folded into this one) */
};

static void reread_free(struct reread *rr) {
    free(rr->since);
    free(rr);
}

static bool fresh(const struct reread *rr, const struct sg *sg) {
    size_t n_sgs;
    struct sg *sgs = amf_sgs(rr->s->amf, &n_sgs);
    return sg && !sg->removed && sg >= sgs + rr->from && sg < sgs + rr->to;
}

/* Whether su is of a group of rr, or a unit rr's reload added to a group that stays. */
static bool fresh_su(const struct reread *rr, const struct su *su) {
    size_t n_sgs;
    struct sg *sgs = amf_sgs(rr->s->amf, &n_sgs);
    size_t g = su ? (size_t)(su->sg - sgs) : 0;
    return su && !su->sg->removed &&
           (fresh(rr, su->sg) || (g < rr->n_since && (size_t)(su - su->sg->sus) >= rr->since[g].sus));
}

/* Whether si is of a group of rr, or an SI rr's reload added to a group that stays. */
static bool fresh_si(const struct reread *rr, const struct si *si) {
    size_t n_sgs;
    struct sg *sgs = amf_sgs(rr->s->amf, &n_sgs);
    size_t g = si ? (size_t)(si->sg - sgs) : 0;
    return si && !si->sg->removed &&
           (fresh(rr, si->sg) || (g < rr->n_since && (size_t)(si - si->sg->sis) >= rr->since[g].sis));
}

/* Whether kv is a key of a unit, SI or pair of a group of rr; its pass (below) into ret_pass. */
static bool of_fresh(const struct reread *rr, const store_kv *kv, int *ret_pass) {
    struct cluster_sync *s = rr->s;
    const char *rest;
    size_t len = 0;
    char a[STORE_KEY_MAX], b[STORE_KEY_MAX];
    int d = key_parse(s->prefix, kv->key, kv->key_len, &rest, &len);
    if (d < 0 || len == 0 || len >= STORE_KEY_MAX) /* not a key of a dir (the event queues' among them) */
        return false;
    memcpy(a, rest, len);
    a[len] = '\0';
    switch (d) {
    case KEY_SUSTATE:
        *ret_pass = 0;
        return fresh_su(rr, amf_find_su(s->amf, a));
    case KEY_TARGET:
    case KEY_CONFIRMED: {
        struct si *si = key_split_pair(rest, len, a, b) >= 0 ? amf_find_si(s->amf, a) : NULL;
        struct su *su = si ? amf_find_su(s->amf, b) : NULL;
        *ret_pass = d == KEY_TARGET ? 1 : 2;
        return si && (fresh_si(rr, si) || (su && su->sg == si->sg && fresh_su(rr, su)));
    }
    case KEY_ADMINSTATE: {
        struct si *si = strncmp(a, "si:", 3) == 0 ? amf_find_si(s->amf, a + 3) : NULL;
        *ret_pass = 2;
        return fresh_si(rr, si);
    }
    default:
        return false;
    }
}

/* Keys of pairs of a unit or SI of rr's added to a group that stays with no assignment in this
 * node's view are left over (a coordinator died mid-change): deleted. */
static void forget_fresh_members(struct cluster_sync *s, const struct reread *rr) {
    size_t n_sgs;
    struct sg *sgs = amf_sgs(s->amf, &n_sgs);
    for (size_t g = 0; g < rr->n_since && g < n_sgs; g++)
        for (size_t u = 0; !sgs[g].removed && u < sgs[g].n_sus; u++)
            for (size_t i = 0; !sgs[g].sus[u].removed && i < sgs[g].n_sis; i++) {
                struct si *si = &sgs[g].sis[i];
                bool added = u >= rr->since[g].sus || i >= rr->since[g].sis;
                if (added && !si->removed && !amf_si_find_su(si, &sgs[g].sus[u]))
                    cluster_sync__forget_pair(s, si, &sgs[g].sus[u]);
            }
}

/* Decides again once every read again is in (cluster_sync_reload_begin() stopped it). */
static void resume(struct cluster_sync *s, const struct reread *rr) {
    s->rereads -= MIN(s->rereads, rr->reads);
    if (!s->held || s->rereads > 0)
        return;
    s->held = false;
    if (!cluster_is_coordinator(s->cluster) || !s->synced || s->taking_over)
        return;
    cluster_sync__forget_leftovers(s, rr->from, rr->to);
    forget_fresh_members(s, rr);
    amf_set_deciding(s->amf, true);
}

static void reread_start(struct reread *rr);

/* rr's units and SIs added to groups that stay join those of the reads that failed (the first of
 * each group's the smallest). */
static int merge_members(struct cluster_sync *s, const struct reread *rr) {
    size_t n = MAX(s->n_reread_since, rr->n_since);
    if (n > s->n_reread_since) {
        struct group_members *p = reallocarray(s->reread_since, n, sizeof(*p));
        if (!p)
            return -ENOMEM;
        for (size_t g = s->n_reread_since; g < n; g++)
            p[g] = (struct group_members){SIZE_MAX, SIZE_MAX};
        s->reread_since = p;
        s->n_reread_since = n;
    }
    for (size_t g = 0; g < rr->n_since; g++) {
        s->reread_since[g].sus = MIN(s->reread_since[g].sus, rr->since[g].sus);
        s->reread_since[g].sis = MIN(s->reread_since[g].sis, rr->since[g].sis);
    }
    return 0;
}

/* The read failed: deciding without it could give a second ACTIVE (a role an earlier coordinator
 * gave), so it is done again in a while (the node timer), when the store may answer.  Frees rr. */
static void reread_later(struct reread *rr, int error) {
    struct cluster_sync *s = rr->s;
    log_warning_errno(error, "Failed to read the keys of the service groups added (read again in 200 ms): %m");
    s->reread_from = s->reread_failed ? MIN(s->reread_from, rr->from) : rr->from;
    s->reread_to = s->reread_failed ? MAX(s->reread_to, rr->to) : rr->to;
    if (!s->reread_failed) {
        free(s->reread_since);
        s->reread_since = NULL;
        s->n_reread_since = 0;
    }
    if (merge_members(s, rr) < 0)
        log_warning("Out of memory: the keys of the units and SIs added to running groups are not read again");
    s->reread_failed += rr->reads;
    s->reread_at = now_monotonic_usec() + 200 * USEC_PER_MSEC;
    cluster_sync__arm_node_timer(s);
    reread_free(rr);
}

static void on_reread(store *st, int error, const store_result *r, void *userdata) {
    struct reread *rr = userdata;
    struct cluster_sync *s = rr->s;
    if (error < 0 && error != -ECANCELED && s->amf) {
        reread_later(rr, error);
        cluster_sync__unref(s);
        return;
    }
    if (error >= 0 && s->amf && r->revision < s->seen_rev) {
        reread_start(rr); /* the watch is ahead of this read: a key it holds may be older than the watch's */
        cluster_sync__unref(s);
        return;
    }
    /* Unit states first (a target is only taken for a unit whose state is known), then the targets,
     * then the confirmations: as at the first read. */
    for (int pass = 0; error >= 0 && s->amf && pass < 3; pass++)
        for (size_t i = 0; i < r->n_kvs; i++) {
            int want = -1;
            if (of_fresh(rr, &r->kvs[i], &want) && want == pass)
                cluster_sync__handle_kv(s, &r->kvs[i]);
        }
    if (s->amf)
        resume(s, rr);
    reread_free(rr);
    cluster_sync__unref(s);
}

static void reread_start(struct reread *rr) {
    struct cluster_sync *s = rr->s;
    s->refs++;
    int r = store_range(s->store, s->prefix, on_reread, rr);
    if (r < 0) {
        s->refs--;
        reread_later(rr, r);
    }
}

void cluster_sync_reload_begin(struct cluster_sync *s) {
    s->rereads++; /* this reload's, until cluster_sync_reload_end() */
    /* Each group's units and SIs so far: those after, at the end, are the reload's, added. */
    size_t n_sgs;
    struct sg *sgs = amf_sgs(s->amf, &n_sgs);
    free(s->before);
    s->n_before = 0;
    if ((s->before = n_sgs ? malloc(n_sgs * sizeof(*s->before)) : NULL))
        s->n_before = n_sgs;
    else if (n_sgs)
        log_warning("Out of memory: the units and SIs a reload adds to running groups are not read");
    for (size_t g = 0; g < s->n_before; g++)
        s->before[g] = (struct group_members){.sus = sgs[g].n_sus, .sis = sgs[g].n_sis};
    if (!amf_deciding(s->amf))
        return;
    /* The coordinator decides for a group, unit or SI added once it knows what the store says of it:
     * the units' states published before it knew them, and the roles another coordinator gave. */
    s->held = true;
    amf_set_deciding(s->amf, false);
}

/* The first unit of sgs[g] that the reload added (n_sus: none). */
static size_t first_added(const struct cluster_sync *s, const struct sg *sgs, size_t g) {
    return g >= s->n_sgs_known ? 0 : g < s->n_before ? s->before[g].sus : sgs[g].n_sus;
}

void cluster_sync_reload_end(struct cluster_sync *s) {
    size_t n_sgs;
    struct sg *sgs = amf_sgs(s->amf, &n_sgs);
    bool members = false; /* units or SIs added to a group that stays */
    for (size_t g = 0; g < s->n_before && g < s->n_sgs_known && g < n_sgs; g++)
        members = members || sgs[g].n_sis > s->before[g].sis || sgs[g].n_sus > s->before[g].sus;
    for (size_t g = 0; g < n_sgs; g++)
        for (size_t u = first_added(s, sgs, g); !sgs[g].removed && u < sgs[g].n_sus; u++)
            if (sgs[g].sus[u].local && cluster_sync__pub_add(s, &sgs[g].sus[u]) < 0)
                log_warning("Out of memory: unit '%s' is not published", sgs[g].sus[u].name);
    for (size_t g = 0; g < n_sgs; g++)
        for (size_t u = first_added(s, sgs, g); !sgs[g].removed && u < sgs[g].n_sus; u++)
            if (sgs[g].sus[u].local)
                cluster_sync__publish_sustate(s, &sgs[g].sus[u], true);
    size_t from = s->n_sgs_known;
    s->n_sgs_known = n_sgs;
    struct reread *rr = from < n_sgs || members ? malloc(sizeof(*rr)) : NULL;
    if (rr) {
        *rr = (struct reread){.s = s, .from = from, .to = n_sgs, .reads = 1};
        if (members) {
            rr->since = TAKE_PTR(s->before);
            rr->n_since = MIN(s->n_before, from);
        }
        s->rereads++;
        reread_start(rr);
    }
    free(s->before);
    s->before = NULL;
    s->n_before = 0;
    resume(s, &(struct reread){.from = from, .to = n_sgs, .reads = 1}); /* cluster_sync_reload_begin()'s */
}

void cluster_sync__reread_again(struct cluster_sync *s) {
    s->reread_at = 0;
    struct reread *rr = malloc(sizeof(*rr));
    if (!rr) {
        s->reread_at = now_monotonic_usec() + 200 * USEC_PER_MSEC; /* armed by the caller */
        return;
    }
    *rr = (struct reread){.s = s,
                          .from = s->reread_from,
                          .to = s->reread_to,
                          .since = TAKE_PTR(s->reread_since),
                          .n_since = s->n_reread_since,
                          .reads = s->reread_failed};
    s->n_reread_since = 0;
    s->reread_failed = 0;
    reread_start(rr);
}

/* ---- a group removed ---- */

static void on_deleted(store *st, int error, const store_result *r, void *userdata) {
    struct cluster_sync *s = userdata;
    if (error < 0 && error != -ECANCELED)
        log_warning_errno(error, "Failed to delete the state of a unit of a service group removed: %m");
    cluster_sync__unref(s);
}

void cluster_sync__group_removed(struct cluster_sync *s, struct sg *sg) {
    char key[STORE_KEY_MAX];
    /* This node's units: no longer published, their states gone (the coordinator, if it still has
     * the group, sees them out of service). */
    for (size_t u = 0; u < sg->n_sus; u++) {
        struct su *su = &sg->sus[u];
        if (!su->local)
            continue;
        pub_drop(s, su);
        if (key_name(key, s->prefix, KEY_SUSTATE, su->name) < 0)
            continue;
        s->refs++;
        if (store_delete(s->store, key, on_deleted, s) < 0)
            s->refs--;
    }
    if (!amf_deciding(s->amf))
        return;
    /* The coordinator: every key of the group, so that the group added back starts as a new one. */
    log_info("Service group '%s' removed: deleting its targets, confirmations and unit states", sg->name);
    char k1[STORE_KEY_MAX], k2[STORE_KEY_MAX];
    for (size_t u = 0; u < sg->n_sus; u++) {
        for (size_t i = 0; i < sg->n_sis; i++) {
            int n1 = key_pair(k1, s->prefix, KEY_TARGET, sg->sis[i].name, sg->sus[u].name);
            int n2 = key_pair(k2, s->prefix, KEY_CONFIRMED, sg->sis[i].name, sg->sus[u].name);
            store_op ops[] = {
                {.type = STORE_OP_DELETE, .key = k1, .key_len = (size_t)n1},
                {.type = STORE_OP_DELETE, .key = k2, .key_len = (size_t)n2},
            };
            if (n1 >= 0 && n2 >= 0)
                cluster_sync__guarded(s, ops, ELEMENTSOF(ops));
        }
        int n = key_name(k1, s->prefix, KEY_SUSTATE, sg->sus[u].name);
        store_op op = {.type = STORE_OP_DELETE, .key = k1, .key_len = (size_t)n};
        if (n >= 0 && !sg->sus[u].local)
            cluster_sync__guarded(s, &op, 1);
    }
}

/* ---- what no live node has ---- */

/* Whether every live node runs the description this node runs: then none has a group, SI or unit
 * that this node lacks, and what the store keeps of one was left by a node gone (a coordinator that
 * died in the middle of a group's removal). */
static bool one_description(struct cluster_sync *s) {
    const char *mine = s->cluster ? cluster_digest(s->cluster) : "";
    bool me = false;
    for (size_t i = 0; *mine && i < s->n_nodes; i++) {
        if (!s->nodes[i].alive)
            continue;
        if (!streq(s->nodes[i].digest, mine))
            return false;
        me = me || streq(s->nodes[i].name, s->node);
    }
    return me;
}

/* Whether a group of this node that a reload has not removed has an SI (si) or a unit named name (one
 * that a reload is taking out of the group counts: its removal deletes its keys). */
static bool known(struct cluster_sync *s, const char *name, bool si) {
    size_t n_sgs;
    struct sg *sgs = amf_sgs(s->amf, &n_sgs);
    for (size_t g = 0; g < n_sgs; g++)
        for (size_t i = 0; !sgs[g].removed && i < (si ? sgs[g].n_sis : sgs[g].n_sus); i++)
            if (streq(si ? sgs[g].sis[i].name : sgs[g].sus[i].name, name))
                return true;
    return false;
}

static bool group_known(struct cluster_sync *s, const char *name) {
    size_t n_sgs;
    struct sg *sgs = amf_sgs(s->amf, &n_sgs);
    for (size_t g = 0; g < n_sgs; g++)
        if (!sgs[g].removed && streq(sgs[g].name, name))
            return true;
    return false;
}

/* Whether kv is a target/, confirmed/ or adminstate/ key (si: or sg:) of an SI, unit or group that this
 * node does not have.  Unit states are left to their nodes: they are leased, and a node deletes its
 * own when a reload removes their group. */
static bool unknown(struct cluster_sync *s, const store_kv *kv) {
    const char *rest;
    size_t len = 0;
    char a[STORE_KEY_MAX], b[STORE_KEY_MAX];
    int d = key_parse(s->prefix, kv->key, kv->key_len, &rest, &len);
    if (d < 0 || len == 0 || len >= STORE_KEY_MAX)
        return false;
    switch (d) {
    case KEY_TARGET:
    case KEY_CONFIRMED:
        return key_split_pair(rest, len, a, b) >= 0 && (!known(s, a, true) || !known(s, b, false));
    case KEY_ADMINSTATE:
        memcpy(a, rest, len);
        a[len] = '\0';
        return strncmp(a, "si:", 3) == 0   ? !known(s, a + 3, true)
               : strncmp(a, "sg:", 3) == 0 ? !group_known(s, a + 3)
                                           : false;
    default:
        return false;
    }
}

static void on_swept(store *st, int error, const store_result *r, void *userdata) {
    struct cluster_sync *s = userdata;
    if (error < 0 && error != -ECANCELED)
        log_warning_errno(error, "Failed to delete a key no live node has: %m");
    cluster_sync__unref(s);
}

/* Deletes kv under the coordinator's guard, and only if it did not change since it was read. */
static void sweep_key(struct cluster_sync *s, const store_kv *kv) {
    store_compare cmp[2];
    cluster_guard(s->cluster, &cmp[0]);
    cmp[1] = (store_compare){.key = kv->key,
                             .key_len = kv->key_len,
                             .target = STORE_CMP_MOD,
                             .result = STORE_CMP_EQUAL,
                             .number = kv->mod_revision};
    store_op op = {.type = STORE_OP_DELETE, .key = kv->key, .key_len = kv->key_len};
    store_txn txn = {.compares = cmp, .n_compares = ELEMENTSOF(cmp), .success = &op, .n_success = 1};
    s->refs++;
    if (store_transaction(s->store, &txn, on_swept, s) < 0)
        s->refs--;
}

static void on_sweep_read(store *st, int error, const store_result *r, void *userdata) {
    struct cluster_sync *s = userdata;
    if (error < 0 && error != -ECANCELED)
        log_warning_errno(error, "Failed to read the keys of what no live node has: %m");
    s->sweeping = false;
    bool again = s->sweep_again;
    s->sweep_again = false;
    /* Decided on what holds now: a node that joined or reloaded meanwhile stops it (and sweeps again). */
    bool go = error >= 0 && s->amf && amf_deciding(s->amf) && one_description(s);
    size_t n = 0;
    for (size_t i = 0; go && i < r->n_kvs; i++)
        n += unknown(s, &r->kvs[i]);
    if (n > 0)
        log_notice("Deleting what the store keeps of service instances and units no live node has (%zu keys)", n);
    for (size_t i = 0; n > 0 && i < r->n_kvs; i++)
        if (unknown(s, &r->kvs[i])) {
            log_debug("Deleting '%.*s': no live node has its service instance, unit or group", (int)r->kvs[i].key_len,
                      r->kvs[i].key);
            sweep_key(s, &r->kvs[i]);
        }
    if (again && s->amf)
        cluster_sync__sweep(s);
    cluster_sync__unref(s);
}

/* Reads the three directories it deletes from, in one transaction (a snapshot, small: not the event
 * queues' keys). */
static void sweep_start(struct cluster_sync *s) {
    char dirs[3][STORE_KEY_MAX];
    enum key_dir d[] = {KEY_TARGET, KEY_CONFIRMED, KEY_ADMINSTATE};
    store_op ops[ELEMENTSOF(d)];
    for (size_t i = 0; i < ELEMENTSOF(d); i++) {
        int n = key_dir(dirs[i], s->prefix, d[i]);
        if (n < 0)
            return;
        ops[i] = (store_op){.type = STORE_OP_GET_PREFIX, .key = dirs[i], .key_len = (size_t)n};
    }
    store_txn txn = {.success = ops, .n_success = ELEMENTSOF(ops)};
    s->sweeping = true;
    s->refs++;
    int r = store_transaction(s->store, &txn, on_sweep_read, s);
    if (r < 0) {
        s->refs--;
        s->sweeping = false;
        log_warning_errno(r, "Failed to read the keys of what no live node has: %m");
    }
}

void cluster_sync__sweep(struct cluster_sync *s) {
    if (!amf_deciding(s->amf) || !one_description(s))
        return;
    if (s->sweeping) {
        s->sweep_again = true;
        return;
    }
    sweep_start(s);
}

/* ---- a unit removed from a group that stays ---- */

void cluster_sync__unit_removed(struct cluster_sync *s, struct su *su) {
    char key[STORE_KEY_MAX];
    int n = key_name(key, s->prefix, KEY_SUSTATE, su->name);
    if (su->local) { /* locked and stopped: no longer published, its state gone */
        pub_drop(s, su);
        s->refs++;
        if (n < 0 || store_delete(s->store, key, on_deleted, s) < 0)
            s->refs--;
    }
    if (!amf_deciding(s->amf))
        return;
    /* The coordinator: every pair of the unit (it holds nothing), and the state of another node's, so
     * that the unit added back starts as a new one.  Its node, if it has not reloaded, may write its
     * state again: ignored by the nodes that removed it, deleted when it reloads. */
    log_info("Service unit '%s' removed: deleting its targets, confirmations and state", su->name);
    for (size_t i = 0; i < su->sg->n_sis; i++)
        cluster_sync__forget_pair(s, &su->sg->sis[i], su);
    store_op op = {.type = STORE_OP_DELETE, .key = key, .key_len = (size_t)n};
    if (n >= 0 && !su->local)
        cluster_sync__guarded(s, &op, 1);
}
