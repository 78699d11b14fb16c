/* SPDX-License-Identifier: MIT */
/* The AMF on several nodes, kept in step through the store (cluster-sync.h). */
#define LOG_AREA LOG_AREA_CLUSTER
#include "cluster-sync.h"
#include "cluster-sync-internal.h"

#include <errno.h>
#include <jansson.h>
#include <stdlib.h>
#include <string.h>

#include "keys.h"
#include "log.h"
#include "macro.h"
#include "store-follow.h"
#include "string-table.h"
#include "time-util.h"

/* The roles as target/ and confirmed/ spell them; 0 is REMOVED. */
static const char *const role_table[] = {
    [0] = "REMOVED",
    [HALO_HA_ACTIVE] = "ACTIVE",
    [HALO_HA_STANDBY] = "STANDBY",
    [HALO_HA_QUIESCED] = "QUIESCED",
    [HALO_HA_QUIESCING] = "QUIESCING",
};
DEFINE_PRIVATE_STRING_TABLE_LOOKUP(role, int);

static void unwritten_free(struct unwritten *u) {
    free(u->key);
    free(u->value);
    free(u);
}

static void unwritten_drop(struct cluster_sync *s, size_t i) {
    unwritten_free(s->unwritten[i]);
    s->unwritten[i] = s->unwritten[--s->n_unwritten];
}

void cluster_sync__unref(struct cluster_sync *s) {
    if (--s->refs > 0)
        return;
    while (s->n_unwritten)
        unwritten_drop(s, 0);
    free(s->unwritten);
    hashmap_done(&s->cdb_alone, free);
    hashmap_done(&s->pair_revs, free);
    for (size_t i = 0; i < s->n_nodes; i++) {
        free(s->nodes[i].name);
        json_decref(s->nodes[i].groups);
    }
    free(s->nodes);
    cluster_sync__stop_waits_free(s);
    free(s->pub);
    free(s->reread_since);
    free(s->before);
    free(s->prefix);
    free(s->node);
    free(s);
}

static void on_written(store *st, int error, const store_result *r, void *userdata) {
    struct cluster_sync *s = userdata;
    if (error == -ECANCELED || !s) {
        if (s)
            cluster_sync__unref(s);
        return;
    }
    if (error < 0)
        log_warning_errno(error, "Failed to write the cluster state: %m");
    else if (!r->succeeded && s->cluster)
        cluster_deposed(s->cluster);
    cluster_sync__unref(s);
}

/* A unit state or a confirmation not written: they are written again after
 * a backoff. */
static void write_again_later(struct cluster_sync *s, int error, const char *what) {
    s->pub_retry_msec = s->pub_retry_msec ? MIN(s->pub_retry_msec * 2, 2000U) : 100U;
    log_warning_errno(error, "Failed to write %s (written again in %u ms): %m", what, s->pub_retry_msec);
    s->pub_retry_at = now_monotonic_usec() + s->pub_retry_msec * USEC_PER_MSEC;
    cluster_sync__arm_node_timer(s);
}

/* A unit state not written: every one is written again (a node that rejoined
 * and could not say so under its new lease would have the others ignore the
 * targets written for its units for good: chaos seed 303). */
static void sustate_failed(struct cluster_sync *s, int error) {
    for (size_t i = 0; i < s->n_pub; i++)
        s->pub[i].known = false;
    write_again_later(s, error, "a unit state");
}

/* A unit state being written: which unit, and how many of its failures it covers. */
struct sustate_put {
    struct cluster_sync *s;
    const struct su *su;
    unsigned failures;
};

static void on_sustate_put(store *st, int error, const store_result *r, void *userdata) {
    struct sustate_put *w = userdata;
    struct cluster_sync *s = w->s;
    struct published *pb = error >= 0 && s->amf ? cluster_sync__published(s, w->su) : NULL;
    if (pb && w->failures > pb->failures_written) {
        pb->failures_written = w->failures;
        pb->fail_rev = r->revision;
    }
    if (error >= 0)
        s->pub_retry_msec = 0;
    else if (error != -ECANCELED && s->amf)
        sustate_failed(s, error);
    free(w);
    cluster_sync__unref(s);
}

void cluster_sync__guarded(struct cluster_sync *s, const store_op *ops, size_t n) {
    store_compare cmp;
    cluster_guard(s->cluster, &cmp);
    store_txn txn = {.compares = &cmp, .n_compares = 1, .success = ops, .n_success = n};
    s->refs++;
    int r = store_transaction(s->store, &txn, on_written, s);
    if (r < 0) {
        s->refs--;
        log_warning_errno(r, "Failed to write the cluster state: %m");
    }
}

static char *dump(json_t *j) {
    if (!j)
        return NULL;
    char *v = json_dumps(j, JSON_COMPACT | JSON_SORT_KEYS);
    json_decref(j);
    return v;
}

/* lease: the lease of the unit's node, its incarnation (docs/store.md). */
static char *pair_value(const struct si *si, const struct su *su, const char *node, int state, uint64_t gen,
                        int64_t lease) {
    return dump(json_pack("{s:s, s:s, s:s, s:s, s:I, s:I}", "si", si->name, "su", su->name, "node", node, "state",
                          role_to_string(state) ?: "?", "gen", (json_int_t)gen, "lease", (json_int_t)lease));
}

/* A target's: with "seen", the revision of the unit's state the coordinator decided on (for one of
 * ours, the revision of its last failure's state: it knows of it). */
static char *target_value(struct cluster_sync *s, const struct si *si, const struct su *su, int state, uint64_t gen,
                          int64_t lease) {
    const struct published *pb = su->local ? cluster_sync__published(s, su) : NULL;
    int64_t seen = su->local ? (pb ? pb->fail_rev : 0) : su->remote.rev;
    return dump(json_pack("{s:s, s:s, s:s, s:s, s:I, s:I, s:I}", "si", si->name, "su", su->name, "node", su->cfg->node,
                          "state", role_to_string(state) ?: "?", "gen", (json_int_t)gen, "lease", (json_int_t)lease,
                          "seen", (json_int_t)seen));
}

/* The incarnation of a unit as this node knows it: for one of ours, the
 * lease we hold; for another node's, the lease its state was published under. */
static int64_t unit_lease(const struct cluster_sync *s, const struct su *su) {
    return su->local ? cluster_lease(s->cluster) : su->remote.lease;
}

/* ---- the placement: what the AMF decides and holds, published ---- */

static int publish_target(void *p, struct si *si, struct assignment *as) {
    struct cluster_sync *s = p;
    char key[STORE_KEY_MAX];
    as->gen = amf_si_next_generation(si);
    _cleanup_free_ char *v =
        target_value(s, si, as->su, as->removing ? 0 : (int)as->target, as->gen, unit_lease(s, as->su));
    int n = key_pair(key, s->prefix, KEY_TARGET, si->name, as->su->name);
    if (v && n >= 0) {
        store_op op = {.type = STORE_OP_PUT, .key = key, .key_len = (size_t)n, .value = v, .value_len = strlen(v)};
        cluster_sync__guarded(s, &op, 1);
    }
    return as->su->local ? 0 : 1; /* another node's unit: its node applies it and confirms */
}

static void on_confirm_put(store *st, int error, const store_result *r, void *userdata) {
    struct unwritten *u = userdata, **list;
    struct cluster_sync *s = u->s;
    bool superseded = false;
    for (size_t i = 0; i < s->n_unwritten; i++)
        superseded = superseded || streq(s->unwritten[i]->key, u->key);
    if (error < 0 && error != -ECANCELED && s->amf && !superseded &&
        (list = reallocarray(s->unwritten, s->n_unwritten + 1, sizeof(*list)))) {
        s->unwritten = list;
        list[s->n_unwritten++] = TAKE_PTR(u);
        write_again_later(s, error, "a confirmation");
    }
    if (u)
        unwritten_free(u);
    cluster_sync__unref(s);
}

/* Writes a confirmation; one that fails is written again after a backoff,
 * unless a newer one of the same key was written meanwhile (the coordinator
 * would wait for it for good: the SI's step never ends). */
static void confirm_put(struct cluster_sync *s, const char *key, const char *value) {
    for (size_t i = 0; i < s->n_unwritten; i++)
        if (streq(s->unwritten[i]->key, key))
            unwritten_drop(s, i--);
    struct unwritten *u = calloc(1, sizeof(*u));
    if (u)
        *u = (struct unwritten){.s = s, .key = strdup(key), .value = strdup(value), .lease = cluster_lease(s->cluster)};
    if (!u || !u->key || !u->value) {
        log_warning("Out of memory writing '%s'", key);
        if (u)
            unwritten_free(u);
        return;
    }
    s->refs++;
    int r = store_put(s->store, key, value, strlen(value), 0, on_confirm_put, u);
    if (r < 0)
        on_confirm_put(s->store, r, NULL, u);
}

static void publish_confirmed(void *p, struct si *si, const struct assignment *as, bool removed) {
    struct cluster_sync *s = p;
    char key[STORE_KEY_MAX];
    _cleanup_free_ char *v =
        pair_value(si, as->su, s->node, removed ? 0 : (int)as->state, as->gen, cluster_lease(s->cluster));
    if (!v || key_pair(key, s->prefix, KEY_CONFIRMED, si->name, as->su->name) < 0)
        return;
    confirm_put(s, key, v);
}

static void forget(void *p, struct si *si, struct su *su) {
    struct cluster_sync *s = p;
    char k1[STORE_KEY_MAX], k2[STORE_KEY_MAX];
    int n1 = key_pair(k1, s->prefix, KEY_TARGET, si->name, su->name);
    int n2 = key_pair(k2, s->prefix, KEY_CONFIRMED, si->name, su->name);
    if (n1 < 0 || n2 < 0)
        return;
    store_op ops[] = {
        {.type = STORE_OP_DELETE, .key = k1, .key_len = (size_t)n1},
        {.type = STORE_OP_DELETE, .key = k2, .key_len = (size_t)n2},
    };
    cluster_sync__guarded(s, ops, ELEMENTSOF(ops));
}

void cluster_sync__forget_pair(struct cluster_sync *s, struct si *si, struct su *su) {
    forget(s, si, su);
}

/* Keys of pairs of sgs[from..to) with no assignment in this node's view are left over (a node
 * restarted, a coordinator died mid-change): deleted.  Not those of another node's unit that is
 * neither known nor fenced (gone with its node, its fence not over: its OCF resources may still be
 * stopping): its target is what tells a halod started meanwhile that the unit held the SI
 * (amf_target_unseen()).  They go at a later takeover; a unit's target for a lease gone is
 * ignored meanwhile. */
void cluster_sync__forget_leftovers(struct cluster_sync *s, size_t from, size_t to) {
    size_t n_sgs;
    struct sg *sgs = amf_sgs(s->amf, &n_sgs);
    for (size_t g = from; g < to && g < n_sgs; g++)
        for (size_t i = 0; !sgs[g].removed && i < sgs[g].n_sis; i++)
            for (size_t u = 0; u < sgs[g].n_sus; u++) {
                struct su *su = &sgs[g].sus[u];
                if (!amf_si_find_su(&sgs[g].sis[i], su) && (su->local || su->remote.known || su->remote.fenced))
                    forget(s, &sgs[g].sis[i], su);
            }
}

static int request(void *p, int op, const char *target, const char *to, struct amf_waiter *w) {
    struct cluster_sync *s = p;
    return s->forward ? cluster_forward_request(s->forward, op, target, to, w) : -EOPNOTSUPP;
}

static const struct amf_placement_ops placement = {
    .distributed = true,
    .publish_target = publish_target,
    .publish_confirmed = publish_confirmed,
    .forget = forget,
    .request = request,
};

/* ---- this node's units, published ---- */

struct published *cluster_sync__published(struct cluster_sync *s, const struct su *su) {
    for (size_t i = 0; i < s->n_pub; i++)
        if (s->pub[i].su == su)
            return &s->pub[i];
    return NULL;
}

void cluster_sync__publish_sustate(struct cluster_sync *s, struct su *su, bool force) {
    struct published *pb = cluster_sync__published(s, su);
    int64_t lease = cluster_lease(s->cluster);
    if (pb && su->failing && !pb->was_failing)
        pb->failures++; /* counted even while no state can be written */
    if (pb)
        pb->was_failing = su->failing;
    if (!pb || !lease)
        return;
    bool fenced = amf_su_fenced(su); /* an ended process may not be reaped yet; a cleanup must have run */
    struct su_remote now = {
        .stop_ms = amf_su_ocf_stop_msec(su),
        .known = true,
        .in_service = amf_su_keeps(su) || su->adopting, /* adopted or restarting in place: it still serves */
        .failing = su->failing,
        .fenced = fenced,
        .probing = amf_su_probing(su),
        .lease = lease,
        .admin = su->admin,
    };
    if (!force && pb->known && amf_su_remote_equal(&now, &pb->r))
        return;
    pb->known = true;
    pb->r = now;
    char key[STORE_KEY_MAX];
    json_t *j = json_pack("{s:s, s:s, s:b, s:b, s:b, s:b, s:s}", "su", su->name, "node", s->node, "in_service",
                          now.in_service, "failing", now.failing, "fenced", fenced, "probing", now.probing, "admin",
                          su_admin_to_string(su->admin));
    if (j && now.stop_ms)
        json_object_set_new(j, "stop_ms", json_integer(now.stop_ms));
    _cleanup_free_ char *v = dump(j);
    if (!v || key_name(key, s->prefix, KEY_SUSTATE, su->name) < 0)
        return;
    struct sustate_put *w = malloc(sizeof(*w));
    if (!w) {
        sustate_failed(s, -ENOMEM);
        return;
    }
    *w = (struct sustate_put){.s = s, .su = su, .failures = pb->failures};
    s->refs++;
    int r = store_put(s->store, key, v, strlen(v), lease, on_sustate_put, w);
    if (r < 0) {
        free(w);
        s->refs--;
        sustate_failed(s, r);
    }
}

static void on_read_again(store *st, int error, const store_result *r, void *userdata);

/* Reads the keys of dir d again; cb takes them (on_read_again(), unless told otherwise). */
int cluster_sync__read_again_with(struct cluster_sync *s, enum key_dir d, const char *what, store_cb cb) {
    char key[STORE_KEY_MAX];
    int r = key_dir(key, s->prefix, d);
    if (r < 0)
        return r;
    s->refs++;
    r = store_range(s->store, key, cb, s);
    if (r < 0) {
        s->refs--;
        log_warning_errno(r, "Failed to read %s: %m", what);
    }
    return r;
}

static void read_again(struct cluster_sync *s, enum key_dir d, const char *what) {
    (void)cluster_sync__read_again_with(s, d, what, on_read_again);
}

static void on_sg_changed(void *userdata, struct sg *sg) {
    struct cluster_sync *s = userdata;
    for (size_t u = 0; u < sg->n_sus; u++)
        if (sg->sus[u].local)
            cluster_sync__publish_sustate(s, &sg->sus[u], false);
}

static void on_su_event(void *userdata, struct su *su, enum amf_su_event ev) {
    struct cluster_sync *s = userdata;
    if (ev == AMF_SU_STATE && su->local && s->fence_waiting && cluster_sync__local_fenced(s)) {
        s->fence_waiting = false;
        cluster_fence_done(s->cluster);
    }
    if (ev == AMF_SU_ADMIN && su->removed) /* by a reload (cluster-sync-reload.c) */
        cluster_sync__unit_removed(s, su);
    else if (ev == AMF_SU_STATE && su->local)
        cluster_sync__publish_sustate(s, su, false);
    else if (ev == AMF_SU_ADOPTED) /* a target may have changed while nobody could apply it */
        read_again(s, KEY_TARGET, "the targets after an adoption");
}

static void on_group_admin_changed(void *userdata, struct sg *sg) {
    if (sg && sg->removed) /* by a reload, done: its units hold nothing and run nothing here */
        cluster_sync__group_removed(userdata, sg);
}

static const struct amf_observer observer = {
    .sg_changed = on_sg_changed,
    .su_event = on_su_event,
    .group_admin_changed = on_group_admin_changed,
};

/* ---- what the store says ---- */

/* ---- lease ends the store cannot vouch for ---- */

/* A node's lease that ended in a way the store cannot vouch for (a stalled
 * etcd leader that ran again may have revoked it: store.h,
 * store_lease_end_trusted()) may have been renewed a moment before: its
 * processes are certainly gone only once a TTL has passed (the node fences
 * itself, and libhalo kills them, a TTL after its last renewal), or once the
 * node is back under a new lease (it rejoins only after its fence).  One
 * timer serves these waits and the beats' (below): the earliest of them. */
static void on_node_timer(uv_timer_t *t);

void cluster_sync__arm_node_timer(struct cluster_sync *s) {
    usec_t first = s->targets_again ? 1 : s->pub_retry_at, now = now_monotonic_usec();
    if (s->reread_at && (!first || s->reread_at < first))
        first = s->reread_at;
    if (s->cdb_alone_read_at && (!first || s->cdb_alone_read_at < first))
        first = s->cdb_alone_read_at;
    for (size_t i = 0; i < s->n_nodes; i++) {
        if (s->nodes[i].fenced_at && (!first || s->nodes[i].fenced_at < first))
            first = s->nodes[i].fenced_at;
        if (s->nodes[i].doom_at && !s->nodes[i].dooming && (!first || s->nodes[i].doom_at < first))
            first = s->nodes[i].doom_at;
    }
    usec_t stop = cluster_sync__stop_waits_first(s);
    if (stop && (!first || stop < first))
        first = stop;
    if (!first)
        uv_timer_stop(&s->node_timer);
    else
        uv_timer_start(&s->node_timer, on_node_timer, first > now ? (first - now + 999) / USEC_PER_MSEC : 0, 0);
}

static void on_node_timer(uv_timer_t *t) {
    struct cluster_sync *s = t->data;
    usec_t now = now_monotonic_usec();
    if (s->targets_again) {
        s->targets_again = false;
        /* The confirmations too, after them: those that followed the ignored targets were dropped. */
        read_again(s, KEY_TARGET, "the targets after a unit came back under a new lease");
        read_again(s, KEY_CONFIRMED, "the confirmations after a unit came back under a new lease");
    }
    if (s->reread_at && s->reread_at <= now)
        cluster_sync__reread_again(s);
    if (s->cdb_alone_read_at && s->cdb_alone_read_at <= now) {
        s->cdb_alone_read_at = 0;
        cluster_sync__cdb_alone_read(s);
    }
    if (s->pub_retry_at && s->pub_retry_at <= now) {
        s->pub_retry_at = 0;
        for (size_t i = 0; i < s->n_pub; i++)
            cluster_sync__publish_sustate(s, s->pub[i].su, false);
        /* Confirmations of this lease; one of an earlier lease is void (its node fenced since). */
        size_t n = s->n_unwritten;
        struct unwritten **u = TAKE_PTR(s->unwritten);
        s->n_unwritten = 0;
        for (size_t i = 0; i < n; i++) {
            if (u[i]->lease == cluster_lease(s->cluster))
                confirm_put(s, u[i]->key, u[i]->value);
            unwritten_free(u[i]);
        }
        free(u);
    }
    for (size_t i = 0; i < s->n_nodes; i++) {
        struct node_info *n = &s->nodes[i];
        if (n->doom_at && !n->dooming && n->doom_at <= now)
            cluster_doom(s, n);
        if (!n->fenced_at || n->fenced_at > now)
            continue;
        n->fenced_at = 0;
        cluster_sync__node_units_fenced(s, n->name, false);
    }
    cluster_sync__stop_waits_due(s, now);
    cluster_sync__arm_node_timer(s);
}

static void handle_node(struct cluster_sync *s, const char *name, int64_t lease, bool deleted, bool trusted) {
    struct node_info *n = cluster_sync__node_find(s, name, true);
    if (n && !deleted)
        n->lease = lease;
    if (n && deleted)
        n->doom_at = 0;
    if (n && !deleted && (n->fenced_at || cluster_sync__node_stopping(s, name))) {
        /* Back: it fenced itself first (and its OCF stops ended).  Each unit
         * it publishes under the new lease is taken back (amf_su_remote());
         * one whose state has not come yet (its write failed, and is done
         * again later) counts as fenced now, not when that state comes (chaos
         * seed 403: an SI it held ACTIVE waited 4.4 s for it, while the
         * node's other units were back). */
        n->fenced_at = 0;
        cluster_sync__node_units_fenced(s, name, true);
        cluster_sync__arm_node_timer(s);
    }
    if (!n || n->alive == !deleted)
        return;
    n->alive = !deleted;
    if (streq(name, s->node))
        return;
    log_notice("Node '%s' %s", name, deleted ? "left the cluster" : "joined the cluster");
    if (deleted && !trusted && s->cluster) {
        int64_t ttl_ms = cluster_ttl(s->cluster) * 1000;
        log_warning("The lease of node '%s' ended while etcd could not vouch for it (its raft term changed "
                    "and not every member has answered since): its units count as fenced in %lld ms, or "
                    "when it rejoins",
                    name, (long long)ttl_ms);
        n->fenced_at = now_monotonic_usec() + (usec_t)ttl_ms * USEC_PER_MSEC;
        cluster_sync__arm_node_timer(s);
    }
    if (deleted)
        cluster_sync__node_left(s, n);
}

/* A unit state's "stop_ms": an OCF stop timeout (amf_su_ocf_stop_msec()), at most a day. */
static unsigned stop_ms_of(json_t *j) {
    json_int_t v = json_integer_value(json_object_get(j, "stop_ms"));
    return v <= 0 ? 0 : (unsigned)MIN(v, (json_int_t)24 * 3600 * 1000);
}

static void handle_sustate(struct cluster_sync *s, const char *name, json_t *j, int64_t lease, int64_t rev,
                           bool deleted, bool trusted) {
    struct su *su = amf_find_su(s->amf, name);
    if (!su)
        return;
    struct su_remote r = {
        .known = true,
        .in_service = json_is_true(json_object_get(j, "in_service")),
        .failing = json_is_true(json_object_get(j, "failing")),
        .fenced = deleted ? trusted : json_is_true(json_object_get(j, "fenced")),
        .probing = !deleted && json_is_true(json_object_get(j, "probing")),
        .lease = lease,
        .rev = rev,
        .admin = (enum su_admin)MAX(su_admin_from_string(json_string_value(json_object_get(j, "admin"))), 0),
        .stop_ms = stop_ms_of(j),
    };
    /* Back under a new lease of its node: a target written for that lease
     * before this state arrived was ignored (written for a lease the unit
     * did not have yet, handle_pair()); read the targets again.  The node's
     * state write may have failed and come late (sustate_failed()). */
    if (!deleted && !su->local && su->remote.lease && lease != su->remote.lease && !s->targets_again) {
        s->targets_again = true;
        cluster_sync__arm_node_timer(s);
    }
    if (deleted)
        cluster_sync__unit_gone(s, su, trusted);
    else
        amf_su_remote(su, &r, false);
}

/* cdb-alone/<sg>: the primary of cdb-roles group sg acknowledged CDB commits alone (the record names its
 * node), or no longer does (deleted).  While it does, that group's ACTIVE may go only to that node's unit:
 * the other lacks those commits (amf-roles.c).  The record of a group without cdb-roles is ignored. */
static void handle_pair(struct cluster_sync *s, enum key_dir d, const char *rest, size_t len, json_t *j, bool deleted) {
    char a[STORE_KEY_MAX], b[STORE_KEY_MAX];
    if (key_split_pair(rest, len, a, b) < 0)
        return;
    struct si *si = amf_find_si_or_removed(s->amf, a); /* the targets that take a removed one from its units */
    struct su *su = amf_find_su(s->amf, b);
    if (!si || !su || su->sg != si->sg)
        return;
    if (deleted) {
        if (d == KEY_TARGET)
            amf_target_deleted(si, su);
        return;
    }
    int st = role_from_string(json_string_value(json_object_get(j, "state")));
    json_int_t gen = json_integer_value(json_object_get(j, "gen"));
    if (st < 0)
        return;
    if (d == KEY_TARGET && su->local && cluster_lease(s->cluster) == 0) {
        /* No lease held yet (a halod taking over its predecessor's, or joining): which incarnation
         * the target is for is known once it is held; the targets are read again then. */
        s->targets_at_join = true;
        return;
    }
    if (d == KEY_TARGET && json_integer_value(json_object_get(j, "lease")) != unit_lease(s, su)) {
        /* A unit of a node that left before this halod started: what it held may still be stopping. */
        amf_target_unseen(si, su, (halo_ha_state)st);
        /* Written for an earlier incarnation of the unit: its node has since
         * lost that lease (and fenced what it held), or this is a late copy.
         * Carrying it out could make a second ACTIVE: the coordinator has
         * promoted another unit since that lease ended. */
        log_debug("Target %s of '%s' for '%s' ignored: written for lease %lld, the unit's is %lld",
                  role_to_string(st) ?: "?", si->name, su->name,
                  (long long)json_integer_value(json_object_get(j, "lease")), (long long)unit_lease(s, su));
        return;
    }
    const struct published *pb = d == KEY_TARGET && su->local ? cluster_sync__published(s, su) : NULL;
    json_int_t seen = json_integer_value(json_object_get(j, "seen"));
    if (pb && (pb->failures_written < pb->failures || seen < pb->fail_rev)) {
        /* Decided on a state of the unit older than its last failure (the coordinator had not seen
         * it yet): the unit's roles went with the failure, and the coordinator decides again once it
         * sees it.  Carried out by the restarted unit, a late copy could make a second ACTIVE (chaos
         * seed 302 --cut: a watch 500 ms late, 249 ms of two ACTIVEs of an N+M SI). */
        log_debug("Target %s of '%s' for '%s' ignored: decided on its state of revision %lld, before its failure "
                  "(%s)",
                  role_to_string(st) ?: "?", si->name, su->name, (long long)seen,
                  pb->failures_written < pb->failures ? "not written yet" : "written since");
        if (gen > 0)
            amf_target_void(si, su, (uint64_t)gen);
        return;
    }
    if (d == KEY_TARGET) {
        if (gen > 0)
            amf_target(si, su, (halo_ha_state)st, (uint64_t)gen);
    } else
        amf_confirmed(si, su, (halo_ha_state)st, gen > 0 ? (uint64_t)gen : 0);
}

/* Whether kv, a pair's target or confirmation, is older than what was handled of its key: a read
 * again answered after the watch brought a newer version (the read and the watch are two streams).
 * Applied, it would take a mirror back to an older target, pending for good for a confirmation
 * that came already (chaos seed 406 --cut: a STANDBY pending in a node's view for good). */
static bool pair_stale(struct cluster_sync *s, const store_kv *kv) {
    char key[STORE_KEY_MAX];
    if (kv->key_len >= sizeof(key))
        return false;
    memcpy(key, kv->key, kv->key_len);
    key[kv->key_len] = '\0';
    int64_t *rev = hashmap_get(&s->pair_revs, key);
    if (rev && kv->mod_revision < *rev)
        return true;
    if (rev)
        *rev = kv->mod_revision;
    else if ((rev = malloc(sizeof(*rev)))) {
        *rev = kv->mod_revision;
        if (hashmap_put(&s->pair_revs, key, rev) < 0)
            free(rev); /* not remembered: a stale read of it is taken, as before */
    }
    return false;
}

/* A key under the prefix, from the first read or the watch.  The event
 * queues' keys, among others, are not even parsed. */
static void handle_kv(struct cluster_sync *s, const store_kv *kv, bool deleted) {
    const char *rest;
    size_t len;
    if (kv->mod_revision > s->seen_rev)
        s->seen_rev = kv->mod_revision;
    int d = key_parse(s->prefix, kv->key, kv->key_len, &rest, &len);
    if (d != KEY_ADMIN && d != KEY_NODES && d != KEY_SUSTATE && d != KEY_TARGET && d != KEY_CONFIRMED &&
        d != KEY_CDB_ALONE && d != KEY_DOOM && d != KEY_ADMINSTATE)
        return;
    if (len == 0 || len >= STORE_KEY_MAX || ((d == KEY_TARGET || d == KEY_CONFIRMED) && pair_stale(s, kv)))
        return;
    json_t *j = deleted ? NULL : json_loadb(kv->value, kv->value_len, 0, NULL);
    if (!deleted && !json_is_object(j)) {
        json_decref(j);
        return;
    }
    char name[STORE_KEY_MAX];
    memcpy(name, rest, len);
    name[len] = '\0';
    /* A doom's deletions are proven fences (beats, above). */
    bool trusted = !deleted || kv->mod_revision == s->doom_rev || store_lease_end_trusted(s->store, kv->mod_revision);
    switch (d) {
    case KEY_ADMIN:
        if (s->forward)
            cluster_forward_key(s->forward, kv, j, deleted);
        break;
    case KEY_NODES: {
        handle_node(s, name, kv->lease, deleted, trusted);
        struct node_info *n = cluster_sync__node_find(s, name, false);
        if (n)
            cluster_sync__node_description(s, n, deleted ? NULL : j);
        if (n && !deleted)
            cluster_doom_beat_seen(s, n, kv->mod_revision, j);
        break;
    }
    case KEY_DOOM:
        if (!deleted) {
            s->doom_rev = kv->mod_revision;
            log_warning("Node '%s' was declared dead: it renewed nothing for a lease TTL", name);
        }
        break;
    case KEY_SUSTATE:
        handle_sustate(s, name, j, kv->lease, kv->mod_revision, deleted, trusted);
        break;
    case KEY_CDB_ALONE:
        cluster_sync__cdb_alone(s, name, j, deleted);
        break;
    case KEY_ADMINSTATE: /* the coordinator's: this node decides with it if it takes over */
        /* A group removal's lock: this node still has the group (else it finds no such SI), and
         * assigns it again if it takes over (docs/configuration.md, Reload on several nodes). */
        amf_admin_state_restore(s->amf, name,
                                deleted || json_is_true(json_object_get(j, "removal"))
                                    ? NULL
                                    : json_string_value(json_object_get(j, "admin")));
        break;
    default:
        handle_pair(s, (enum key_dir)d, rest, len, j, deleted);
        break;
    }
    json_decref(j);
}

void cluster_sync__handle_kv(struct cluster_sync *s, const store_kv *kv) {
    handle_kv(s, kv, false);
}

static void on_read_again(store *st, int error, const store_result *r, void *userdata) {
    struct cluster_sync *s = userdata;
    if (error < 0 && error != -ECANCELED)
        log_warning_errno(error, "Failed to read the cluster's keys again: %m");
    for (size_t i = 0; error >= 0 && s->amf && i < r->n_kvs; i++)
        handle_kv(s, &r->kvs[i], false);
    cluster_sync__unref(s);
}

/* The first read, or a read again after the watch fell behind the store's
 * history: nodes and unit states first (a target is only taken for a unit
 * whose state is known), then the targets, then the rest. */
static void take_over(struct cluster_sync *s);

/* Whether r holds the key dir/name. */
bool cluster_sync__read_has(struct cluster_sync *s, const store_result *r, enum key_dir dir, const char *name) {
    char key[STORE_KEY_MAX];
    int n = key_name(key, s->prefix, dir, name);
    for (size_t i = 0; n >= 0 && i < r->n_kvs; i++)
        if (r->kvs[i].key_len == (size_t)n && memcmp(r->kvs[i].key, key, (size_t)n) == 0)
            return true;
    return false;
}

/* A read again after the watch fell behind: what is no longer there was
 * deleted meanwhile (a node's lease ended with its unit states). */
static void forget_missing(struct cluster_sync *s, const store_result *r) {
    size_t n_sgs;
    struct sg *sgs = amf_sgs(s->amf, &n_sgs);
    for (size_t g = 0; g < n_sgs; g++)
        if (hashmap_contains(&s->cdb_alone, sgs[g].name) && !cluster_sync__read_has(s, r, KEY_CDB_ALONE, sgs[g].name))
            cluster_sync__cdb_alone(s, sgs[g].name, NULL, true);
    /* When they went is not known: no lease end here is vouched for. */
    bool trusted = store_lease_end_trusted(s->store, 0);
    for (size_t i = 0; i < s->n_nodes; i++)
        if (s->nodes[i].alive && !cluster_sync__read_has(s, r, KEY_NODES, s->nodes[i].name))
            handle_node(s, s->nodes[i].name, 0, true, trusted);
    for (size_t g = 0; g < n_sgs; g++)
        for (size_t u = 0; u < sgs[g].n_sus; u++) {
            struct su *su = &sgs[g].sus[u];
            if (!su->local && su->remote.known && !cluster_sync__read_has(s, r, KEY_SUSTATE, su->name))
                cluster_sync__unit_gone(s, su, trusted);
        }
}

static void on_loaded(struct store_follow *f, const store_result *r, void *userdata) {
    struct cluster_sync *s = userdata;
    forget_missing(s, r);
    for (int pass = 0; pass < 3; pass++) {
        if (pass == 1 && !s->synced)
            cluster_sync__unseen_units(s); /* before their targets */
        for (size_t i = 0; i < r->n_kvs; i++) {
            const char *rest;
            size_t len;
            int d = key_parse(s->prefix, r->kvs[i].key, r->kvs[i].key_len, &rest, &len);
            int want = d == KEY_SUSTATE || d == KEY_NODES ? 0 : d == KEY_TARGET ? 1 : 2;
            if (want == pass)
                handle_kv(s, &r->kvs[i], false);
        }
    }
    if (!s->synced) {
        s->synced = true;
        if (s->taking_over)
            take_over(s);
    }
    if (s->loaded) {
        cluster_sync_loaded_cb cb = s->loaded;
        s->loaded = NULL;
        cb(s->loaded_userdata, 0);
    }
}

static void on_changed(struct store_follow *f, const store_event *ev, size_t n, void *userdata) {
    struct cluster_sync *s = userdata;
    for (size_t i = 0; i < n; i++)
        handle_kv(s, &ev[i].kv, ev[i].type == STORE_EVENT_DELETE);
}

static const struct store_follow_ops follow_ops = {
    .loaded = on_loaded,
    .changed = on_changed,
};

int cluster_sync_start(struct cluster_sync *s, cluster_sync_loaded_cb cb, void *userdata) {
    /* One follower of the whole prefix: the model needs its keys' changes in
     * revision order (a confirmation after its target), which followers of
     * the parts it reads would not keep.  The event queues' keys come along
     * and are dropped unparsed. */
    struct store_follow_params p = {.prefix = s->prefix};
    s->loaded = cb;
    s->loaded_userdata = userdata;
    int r = store_follow(s->store, &p, &follow_ops, s, &s->follow);
    if (r < 0)
        s->loaded = NULL;
    return r;
}

/* ---- membership ---- */

/*
 * This node decided as the coordinator and no longer does.  Some of its
 * decisions may never have reached the store: once another node leads, its
 * guarded writes are refused, and a node stalled (SIGSTOP, a frozen watch)
 * decides on before it learns it was deposed.  Meanwhile it took the new
 * coordinator's targets for its own and dropped them.  Its view of other
 * nodes' units would keep such a decision pending for ever (its gen is never
 * confirmed) and show the SI without its ACTIVE: the targets and their
 * confirmations are read again, and the store's win (amf_target()).
 */
static void on_resync_targets(store *st, int error, const store_result *r, void *userdata);

static void resync_targets(struct cluster_sync *s) {
    (void)cluster_sync__read_again_with(s, KEY_TARGET, "the targets after this node stopped deciding",
                                        on_resync_targets);
}

/* Whether r holds the target key of si and su. */
static bool read_has_target(struct cluster_sync *s, const store_result *r, const struct si *si, const struct su *su) {
    char key[STORE_KEY_MAX];
    int n = key_pair(key, s->prefix, KEY_TARGET, si->name, su->name);
    for (size_t i = 0; n >= 0 && i < r->n_kvs; i++)
        if (r->kvs[i].key_len == (size_t)n && memcmp(r->kvs[i].key, key, (size_t)n) == 0)
            return true;
    return false;
}

/* The targets read again after this node stopped deciding: the store's win.  A decision of ours for
 * another node's unit whose pair has no key at all was never written (the guarded write of a deposed
 * coordinator is refused): nothing would ever overwrite or confirm it, and it would stay pending in
 * this node's view for good (chaos seed 15 --cut: an SI shown with a third unit pending).  It is
 * dropped, once the read is at least as new as everything the watch brought. */
static void on_resync_targets(store *st, int error, const store_result *r, void *userdata) {
    struct cluster_sync *s = userdata;
    if (error < 0 && error != -ECANCELED)
        log_warning_errno(error, "Failed to read the targets again: %m");
    for (size_t i = 0; error >= 0 && s->amf && i < r->n_kvs; i++)
        handle_kv(s, &r->kvs[i], false);
    if (error >= 0 && s->amf && r->revision < s->seen_rev)
        resync_targets(s); /* the watch is ahead of this read: a key it lacks may be newer */
    else if (error >= 0 && s->amf) {
        size_t n_sgs;
        struct sg *sgs = amf_sgs(s->amf, &n_sgs);
        for (size_t g = 0; g < n_sgs; g++)
            for (size_t i = 0; i < sgs[g].n_sis; i++)
                for (size_t u = 0; u < sgs[g].n_sus; u++) {
                    struct si *si = &sgs[g].sis[i];
                    struct su *su = &sgs[g].sus[u];
                    struct assignment *as = amf_si_find_su(si, su);
                    if (as && !su->local && as->pending && !read_has_target(s, r, si, su)) {
                        log_info("Dropping '%s' on '%s' from this node's view: decided here as the coordinator, "
                                 "never written",
                                 si->name, su->name);
                        amf_target_deleted(si, su);
                    }
                }
    }
    cluster_sync__unref(s);
}

static void resync(struct cluster_sync *s) {
    if (!s->decided)
        return;
    resync_targets(s);
    read_again(s, KEY_CONFIRMED, "the confirmations after this node stopped deciding");
}

void cluster_sync_joined(struct cluster_sync *s) {
    queue_report_node(s->reporter, s->node, QUEUE_HA_ONLINE, NULL, cluster_lease(s->cluster));
    for (size_t i = 0; i < s->n_pub; i++)
        cluster_sync__publish_sustate(s, s->pub[i].su, true);
    resync(s); /* again: when it was deposed, the store may not have answered */
    s->decided = false;
    if (s->targets_at_join) {
        /* Read before the lease was held (a takeover): a non-SA-aware STANDBY, which runs nothing,
         * knows its role from its target alone (chaos seed 310: the view lost it for good). */
        s->targets_at_join = false;
        read_again(s, KEY_TARGET, "the targets read before this node held its lease");
    }
}

static void take_over(struct cluster_sync *s) {
    s->taking_over = false;
    if (s->forward)
        cluster_forward_run_waiting(s->forward);
    /* Take over: what other nodes hold is known from the store. */
    size_t n_sgs;
    struct sg *sgs = amf_sgs(s->amf, &n_sgs);
    s->held = false; /* a reload's read again may still come: decided from now on */
    cluster_sync__forget_leftovers(s, 0, n_sgs);
    /* After this node's fence and rejoin, what its own units hold is
     * published again, under the lease it holds now: the others voided what
     * they held under the old one (a new incarnation, amf_su_remote()), while
     * a STANDBY that the fence spared still holds its CSI here, and nobody
     * would decide for it again (chaos seed 202: the others showed the SI
     * without its STANDBY for good).  Not after a mere restart of halod
     * within its lease: nothing changed for the others. */
    bool again = s->fenced_since;
    s->fenced_since = false;
    for (size_t g = 0; again && g < n_sgs; g++)
        for (size_t i = 0; i < sgs[g].n_sis; i++)
            for (size_t u = 0; u < sgs[g].n_sus; u++) {
                struct assignment *as = amf_si_find_su(&sgs[g].sis[i], &sgs[g].sus[u]);
                if (!as || !sgs[g].sus[u].local || !as->confirmed || as->pending || as->removing ||
                    as->state != as->target)
                    continue;
                (void)publish_target(s, &sgs[g].sis[i], as);
                publish_confirmed(s, &sgs[g].sis[i], as, false);
            }
    s->decided = true;
    amf_set_deciding(s->amf, true);
    cluster_sync__sweep(s); /* what a coordinator that died in a group's removal left */
}

void cluster_sync_coordinator(struct cluster_sync *s, bool coordinator) {
    s->taking_over = coordinator;
    s->held = false;
    if (!coordinator) {
        amf_set_deciding(s->amf, false);
        resync(s);
    } else if (s->synced)
        take_over(s);
    /* else: once the first read is in; before, this node's view is empty, and
     * every pair in the store would look left over. */
}

void cluster_sync_fenced(struct cluster_sync *s) {
    s->fenced_since = true;
    for (size_t i = 0; i < s->n_pub; i++)
        s->pub[i].known = false; /* republished in full on rejoin */
    amf_set_deciding(s->amf, false);
    amf_fence_local(s->amf, "this node lost its lease");
    s->fence_waiting = !cluster_sync__local_fenced(s);
    if (s->fence_waiting) /* an OCF stop may take its timeout: wait at least that long (a second more) */
        cluster_fence_wait(s->cluster, cluster_sync__local_stop_msec(s) + 1000);
}

/* ---- life cycle ---- */

int cluster_sync_new(const struct cluster_sync_params *p, struct cluster_sync **ret) {
    struct cluster_sync *s = calloc(1, sizeof(*s));
    if (!s)
        return -ENOMEM;
    *s = (struct cluster_sync){.store = p->store,
                               .amf = p->amf,
                               .cluster = p->cluster,
                               .forward = p->forward,
                               .reporter = p->reporter,
                               .refs = 1,
                               .prefix = strdup(p->prefix),
                               .node = strdup(p->node)};
    size_t n_sgs;
    struct sg *sgs = amf_sgs(p->amf, &n_sgs);
    s->n_sgs_known = n_sgs;
    int r = s->prefix && s->node ? 0 : -ENOMEM;
    for (size_t g = 0; r >= 0 && g < n_sgs; g++)
        for (size_t u = 0; r >= 0 && u < sgs[g].n_sus; u++)
            if (sgs[g].sus[u].local)
                r = cluster_sync__pub_add(s, &sgs[g].sus[u]);
    if (r >= 0)
        r = amf_observe(p->amf, &observer, s);
    if (r < 0) {
        cluster_sync__unref(s);
        return r;
    }
    amf_set_placement(p->amf, &placement, s);
    amf_set_deciding(p->amf, false);                                    /* until this node wins the leader key */
    (void)amf_add_active_readiness(p->amf, cluster_sync__cdb_ready, s); /* at most one per layer: room enough */
    (void)uv_timer_init(p->store->loop, &s->node_timer);
    s->node_timer.data = s;
    s->refs++; /* the timer's, until it is closed */
    *ret = s;
    return 0;
}

static void on_node_timer_closed(uv_handle_t *h) {
    cluster_sync__unref(h->data);
}

struct cluster_sync *cluster_sync_free(struct cluster_sync *s) {
    if (!s)
        return NULL;
    uv_close((uv_handle_t *)&s->node_timer, on_node_timer_closed);
    s->follow = store_follow_free(s->follow);
    amf_unobserve(s->amf, &observer, s);
    amf_remove_active_readiness(s->amf, cluster_sync__cdb_ready, s);
    amf_set_placement(s->amf, &amf_placement_local, NULL);
    s->amf = NULL;
    s->cluster = NULL;
    s->forward = NULL;
    cluster_sync__unref(s);
    return NULL;
}
