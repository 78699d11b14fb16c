/* SPDX-License-Identifier: MIT */
/*
 * The AMF on several nodes.  Every halod keeps the same view of every SI's
 * assignments, built from the store; only the coordinator runs the redundancy
 * models over it.  Keys (under /halo/<cluster>/, values JSON):
 *
 *   sustate/<su>        the SU's node: whether it is in service, failing, and
 *                       whether its processes are all gone (under the node lease,
 *                       so a dead node's SUs vanish with it)
 *   target/<si>/<su>    the coordinator: the role su must hold for si, with a
 *                       generation; written only while the leader key is still
 *                       the one it won (a deposed coordinator's write is refused)
 *   confirmed/<si>/<su> the SU's node: the role it holds after applying the
 *                       target of that generation
 *
 * A failover to another node: the failed SU's node fences it (SIGKILL, waits
 * until reaped) and reports sustate failing, then fenced; the coordinator drops
 * the SU's assignments at once but promotes the standby only once fenced (or
 * once the node's lease is gone: a node that cannot renew its lease has fenced
 * itself before etcd lets it expire).
 */
#define LOG_AREA LOG_AREA_AMF
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <jansson.h>
#include <stdlib.h>
#include <string.h>

#include "amf-internal.h"
#include "cluster.h"
#include "log.h"
#include "macro.h"

#define STATE_REMOVED "REMOVED"

static const char *const ha_names[] = {
    [HALO_HA_ACTIVE] = "ACTIVE",
    [HALO_HA_STANDBY] = "STANDBY",
    [HALO_HA_QUIESCED] = "QUIESCED",
    [HALO_HA_QUIESCING] = "QUIESCING",
};

/* 0 for REMOVED, a halo_ha_state, or -EINVAL. */
static int ha_from_string(const char *s) {
    if (!s)
        return -EINVAL;
    if (streq(s, STATE_REMOVED))
        return 0;
    for (size_t i = 0; i < ELEMENTSOF(ha_names); i++)
        if (ha_names[i] && streq(ha_names[i], s))
            return (int)i;
    return -EINVAL;
}

/* ---- writes ---- */

static void on_written(store *s, int error, const store_result *r, void *userdata) {
    struct amf *a = userdata;
    if (error == -ECANCELED)
        return;
    if (error < 0) {
        log_warning_errno(error, "Failed to write the cluster state: %m");
        return;
    }
    if (!r->succeeded && a->cluster)
        cluster_deposed(a->cluster);
}

static void on_put(store *s, int error, const store_result *r, void *userdata) {
    if (error < 0 && error != -ECANCELED)
        log_warning_errno(error, "Failed to write the cluster state: %m");
}

/* Runs ops under the coordinator's guard. */
static void guarded(struct amf *a, const store_op *ops, size_t n) {
    store_compare cmp;
    cluster_guard(a->cluster, &cmp);
    store_txn txn = {.compares = &cmp, .n_compares = 1, .success = ops, .n_success = n};
    int r = store_transaction(a->store, &txn, on_written, a);
    if (r < 0)
        log_warning_errno(r, "Failed to write the cluster state: %m");
}

static char *dump(json_t *j) {
    if (!j)
        return NULL;
    char *v = json_dumps(j, JSON_COMPACT | JSON_SORT_KEYS);
    json_decref(j);
    return v;
}

void cl_publish_target(struct si *si, struct assignment *as) {
    struct amf *a = si->amf;
    char key[STORE_KEY_MAX];
    const char *st = as->removing ? STATE_REMOVED : ha_names[as->target];
    _cleanup_free_ char *v = dump(json_pack("{s:s, s:s, s:s, s:s, s:I}", "si", si->name, "su", as->su->name, "node",
                                            as->su->cfg->node, "state", st, "gen", (json_int_t)as->gen));
    if (!v)
        return;
    snprintf(key, sizeof(key), "%starget/%s/%s", a->prefix, si->name, as->su->name);
    store_op op = {.type = STORE_OP_PUT, .key = key, .key_len = strlen(key), .value = v, .value_len = strlen(v)};
    guarded(a, &op, 1);
}

void cl_forget(struct si *si, struct su *su) {
    struct amf *a = si->amf;
    char k1[STORE_KEY_MAX], k2[STORE_KEY_MAX];
    snprintf(k1, sizeof(k1), "%starget/%s/%s", a->prefix, si->name, su->name);
    snprintf(k2, sizeof(k2), "%sconfirmed/%s/%s", a->prefix, si->name, su->name);
    store_op ops[] = {
        {.type = STORE_OP_DELETE, .key = k1, .key_len = strlen(k1)},
        {.type = STORE_OP_DELETE, .key = k2, .key_len = strlen(k2)},
    };
    guarded(a, ops, ELEMENTSOF(ops));
}

void cl_publish_confirmed(struct si *si, struct assignment *as, bool removed) {
    struct amf *a = si->amf;
    char key[STORE_KEY_MAX];
    const char *st = removed ? STATE_REMOVED : ha_names[as->state];
    _cleanup_free_ char *v = dump(json_pack("{s:s, s:s, s:s, s:s, s:I}", "si", si->name, "su", as->su->name, "node",
                                            a->node, "state", st, "gen", (json_int_t)as->gen));
    if (!v)
        return;
    snprintf(key, sizeof(key), "%sconfirmed/%s/%s", a->prefix, si->name, as->su->name);
    int r = store_put(a->store, key, v, strlen(v), 0, on_put, NULL);
    if (r < 0)
        log_warning_errno(r, "Failed to write '%s': %m", key);
}

static void publish_sustate(struct su *su, bool force) {
    struct amf *a = su->amf;
    int64_t lease = cluster_lease(a->cluster);
    bool fenced = true;
    for (size_t i = 0; i < su->n_comps; i++)
        if (su->comps[i].proc)
            fenced = false;
    struct su_report now = {
        .known = true,
        .in_service = amf_su_in_service(su) || su->adopting, /* adopted: it still serves */
        .failing = su->failing,
        .fenced = fenced,
    };
    if (!lease || (!force && memcmp(&now, &su->report, sizeof(now)) == 0))
        return;
    su->report = now;
    char key[STORE_KEY_MAX];
    _cleanup_free_ char *v = dump(json_pack("{s:s, s:s, s:b, s:b, s:b}", "su", su->name, "node", a->node, "in_service",
                                            now.in_service, "failing", now.failing, "fenced", fenced));
    if (!v)
        return;
    snprintf(key, sizeof(key), "%ssustate/%s", a->prefix, su->name);
    int r = store_put(a->store, key, v, strlen(v), lease, on_put, NULL);
    if (r < 0)
        log_warning_errno(r, "Failed to write '%s': %m", key);
}

void cl_publish_sustate(struct su *su) {
    publish_sustate(su, false);
}

/* ---- what the store says ---- */

static struct node_info *node_find(struct amf *a, const char *name, bool create) {
    for (size_t i = 0; i < a->n_nodes; i++)
        if (streq(a->nodes[i].name, name))
            return &a->nodes[i];
    if (!create)
        return NULL;
    struct node_info *n = realloc(a->nodes, (a->n_nodes + 1) * sizeof(*n));
    if (!n)
        return NULL;
    a->nodes = n;
    n = &a->nodes[a->n_nodes];
    *n = (struct node_info){.name = strdup(name)};
    if (!n->name)
        return NULL;
    a->n_nodes++;
    return n;
}

/* A remote SU stopped being in service: forget its assignments; a non-STANDBY
 * one blocks the SI until the SU is fenced. */
static void remote_su_down(struct su *su, bool fenced) {
    struct sg *sg = su->sg;
    for (size_t i = 0; i < sg->n_sis; i++) {
        struct si *si = &sg->sis[i];
        struct assignment *as = amf_si_find_su(si, su);
        if (as) {
            if (!fenced && as->target != HALO_HA_STANDBY)
                si->fencing = su;
            if (si->switchover)
                amf_switchover_done(si, -HALO_ECOMPFAILED);
            amf_asg_clear(si, as);
        }
        if (fenced && si->fencing == su)
            si->fencing = NULL;
    }
}

static void handle_sustate(struct amf *a, struct su *su, json_t *j, bool deleted) {
    if (su->local)
        return; /* ours: we know better */
    struct su_report old = su->report;
    if (deleted)
        su->report = (struct su_report){.fenced = true};
    else
        su->report = (struct su_report){
            .known = true,
            .in_service = json_is_true(json_object_get(j, "in_service")),
            .failing = json_is_true(json_object_get(j, "failing")),
            .fenced = json_is_true(json_object_get(j, "fenced")),
        };
    if (memcmp(&old, &su->report, sizeof(old)) == 0)
        return;
    if (deleted)
        log_info("Service unit '%s' is gone with its node", su->name);
    if (!su->report.in_service)
        remote_su_down(su, su->report.fenced);
    amf_sg_changed(su->sg);
}

static void handle_target(struct amf *a, struct si *si, struct su *su, json_t *j, bool deleted) {
    struct assignment *as = amf_si_find_su(si, su);
    if (deleted) {
        if (!as || a->coordinator)
            return;
        if (su->local && !su->failing) {
            /* The coordinator dropped what we hold: it saw this node die. */
            amf_su_fail(su, "the coordinator withdrew its assignment", false);
            return;
        }
        amf_asg_clear(si, as);
        amf_sg_changed(si->sg);
        return;
    }
    int st = ha_from_string(json_string_value(json_object_get(j, "state")));
    json_int_t gen = json_integer_value(json_object_get(j, "gen"));
    if (st < 0 || gen <= 0)
        return;
    if ((uint64_t)gen > si->generation)
        si->generation = (uint64_t)gen;
    if (a->coordinator)
        return; /* our own decision coming back */
    if (as && as->gen >= (uint64_t)gen)
        return;
    if (!su->local) {
        /* Mirror another node's assignment, for status and for a takeover. */
        if (!as) {
            for (size_t i = 0; i < SI_ASSIGNMENTS_MAX && !as; i++)
                if (!si->asg[i].su) {
                    si->asg[i] = (struct assignment){.su = su};
                    as = &si->asg[i];
                }
            if (!as)
                return;
        }
        as->gen = (uint64_t)gen;
        as->removing = st == 0;
        if (st)
            as->target = (halo_ha_state)st;
        as->pending = 1;
        return;
    }
    /* Ours: apply it. */
    if (st == 0) {
        if (!as) {
            struct assignment tmp = {.su = su, .gen = (uint64_t)gen};
            cl_publish_confirmed(si, &tmp, true);
            return;
        }
        as->gen = (uint64_t)gen;
        (void)amf_unassign(si, as);
        return;
    }
    if (!amf_su_in_service(su)) {
        log_info("Target %s of '%s' for '%s' ignored: the unit is not in service", ha_names[st], si->name, su->name);
        return;
    }
    halo_csi_transition tr = HALO_CSI_NEW_ASSIGN;
    if (st == HALO_HA_ACTIVE && as)
        tr = as->state == HALO_HA_QUIESCED ? HALO_CSI_STILL_ACTIVE : HALO_CSI_NOT_QUIESCED;
    else if (st == HALO_HA_ACTIVE && amf_si_find(si, HALO_HA_QUIESCED))
        tr = HALO_CSI_QUIESCED;
    if (amf_assign(si, su, (halo_ha_state)st, tr) == 0) {
        as = amf_si_find_su(si, su);
        if (as)
            as->gen = (uint64_t)gen;
    }
}

static void handle_confirmed(struct amf *a, struct si *si, struct su *su, json_t *j, bool deleted) {
    if (deleted)
        return;
    struct assignment *as = amf_si_find_su(si, su);
    int st = ha_from_string(json_string_value(json_object_get(j, "state")));
    json_int_t gen = json_integer_value(json_object_get(j, "gen"));
    if (su->local) {
        /* What our adopted processes hold, as the previous halod confirmed it. */
        if (su->adopting && !as && (st == HALO_HA_ACTIVE || st == HALO_HA_STANDBY) && gen > 0) {
            for (size_t i = 0; i < SI_ASSIGNMENTS_MAX && !as; i++)
                if (!si->asg[i].su)
                    as = &si->asg[i];
            if (!as)
                return;
            *as = (struct assignment){.su = su,
                                      .state = (halo_ha_state)st,
                                      .target = (halo_ha_state)st,
                                      .confirmed = true,
                                      .gen = (uint64_t)gen};
            if ((uint64_t)gen > si->generation)
                si->generation = (uint64_t)gen;
            log_info("'%s' stays %s for '%s' (adopted)", su->name, ha_names[st], si->name);
        }
        return;
    }
    if (!as || st < 0 || (uint64_t)gen != as->gen || !as->pending)
        return;
    if (a->coordinator) {
        amf_asg_step_done(si, su);
        return;
    }
    /* A mirror. */
    as->pending = 0;
    if (si->sg == a->cdb_sg)
        amf_cdb_roles_schedule(a, 0);
    if (st == 0) {
        amf_asg_clear(si, as);
        return;
    }
    as->state = as->target = (halo_ha_state)st;
    as->confirmed = true;
}

static void handle_node(struct amf *a, const char *name, bool deleted) {
    struct node_info *n = node_find(a, name, true);
    if (!n || n->alive == !deleted)
        return;
    n->alive = !deleted;
    if (!streq(name, a->node)) {
        log_notice("Node '%s' %s", name, deleted ? "left the cluster" : "joined the cluster");
        /* Every node that sees it reports it; the coordinator publishes it once. */
        if (deleted)
            amf_event(a, "node", name, "FAILED", "its lease ended");
    }
}

/* The parts of the prefix the model follows: the event queues' entries,
 * large and many, are not even parsed. */
static const char *const watched[] = {"admin/", "confirmed/", "nodes/", "sustate/", "target/"};

static void handle_admin_key(struct amf *a, const store_kv *kv, const char *rest, json_t *j, bool deleted);

void cl_handle_kv(struct amf *a, const store_kv *kv, bool deleted) {
    size_t plen = strlen(a->prefix);
    if (kv->key_len <= plen || kv->key_len >= STORE_KEY_MAX)
        return;
    char rest[STORE_KEY_MAX];
    memcpy(rest, kv->key + plen, kv->key_len - plen);
    rest[kv->key_len - plen] = 0;

    bool ours = false;
    for (size_t i = 0; i < ELEMENTSOF(watched) && !ours; i++)
        ours = strncmp(rest, watched[i], strlen(watched[i])) == 0;
    if (!ours)
        return; /* the event queues' keys, among others: not parsed for nothing */
    json_t *j = deleted ? NULL : json_loadb(kv->value, kv->value_len, 0, NULL);
    if (!deleted && !json_is_object(j)) {
        json_decref(j);
        return;
    }
    char *slash;
    if (strncmp(rest, "admin/", 6) == 0)
        handle_admin_key(a, kv, rest, j, deleted);
    else if (strncmp(rest, "nodes/", 6) == 0)
        handle_node(a, rest + 6, deleted);
    else if (strncmp(rest, "sustate/", 8) == 0) {
        struct su *su = amf_find_su(a, rest + 8);
        if (su)
            handle_sustate(a, su, j, deleted);
    } else if ((strncmp(rest, "target/", 7) == 0 || strncmp(rest, "confirmed/", 10) == 0) &&
               (slash = strchr(strchr(rest, '/') + 1, '/'))) {
        bool target = rest[0] == 't';
        *slash = 0;
        struct si *si = amf_find_si(a, strchr(rest, '/') + 1);
        struct su *su = amf_find_su(a, slash + 1);
        if (si && su && su->sg == si->sg) {
            if (target)
                handle_target(a, si, su, j, deleted);
            else
                handle_confirmed(a, si, su, j, deleted);
        }
    }
    json_decref(j);
}

static void on_watch(store_watch *w, int error, const store_event *ev, size_t n, void *userdata) {
    struct amf *a = userdata;
    if (error < 0) {
        a->watch = store_watch_cancel(a->watch);
        if (error == -ECANCELED)
            return;
        /* Compacted past us: start over from the current state. */
        log_warning_errno(error, "Watch of the cluster's keys ended, reading them again: %m");
        int r = amf_start(a);
        if (r < 0)
            log_error_errno(r, "Failed to read the cluster's keys: %m");
        return;
    }
    for (size_t i = 0; i < n; i++)
        cl_handle_kv(a, &ev[i].kv, ev[i].type == STORE_EVENT_DELETE);
}

/* One watch of the whole prefix: the model needs its keys' changes in
 * revision order (a confirmation after its target), which separate watches
 * of the parts it follows would not keep. */
int cl_watch_start(struct amf *a, int64_t revision) {
    if (a->watch)
        return 0;
    return store_watch_prefix(a->store, a->prefix, revision, on_watch, a, &a->watch);
}

void cl_close(struct amf *a) {
    if (a->watch)
        a->watch = store_watch_cancel(a->watch);
}

void cl_free(struct amf *a) {
    while (a->forwards) {
        struct forward *f = a->forwards;
        a->forwards = f->next;
        free(f->key);
        free(f);
    }
    for (size_t g = 0; g < a->n_sgs; g++) {
        for (size_t i = 0; i < a->sgs[g].n_sis; i++)
            free(a->sgs[g].sis[i].waiter.request);
        for (size_t u = 0; u < a->sgs[g].n_sus; u++)
            free(a->sgs[g].sus[u].waiter.request);
    }
    for (size_t i = 0; i < a->n_nodes; i++)
        free(a->nodes[i].name);
    free(a->nodes);
    a->nodes = NULL;
    a->n_nodes = 0;
}

/* Keys read again (a range), handled as the watch would have. */
static void handle_read(struct amf *a, int error, const store_result *r, const char *what) {
    if (error < 0) {
        if (error != -ECANCELED)
            log_warning_errno(error, "Failed to read %s: %m", what);
        return;
    }
    for (size_t i = 0; i < r->n_kvs; i++)
        cl_handle_kv(a, &r->kvs[i], false);
}

static void on_targets(store *s, int error, const store_result *r, void *userdata) {
    handle_read(userdata, error, r, "the targets after an adoption");
}

void cl_adopted(struct su *su) {
    /* A target may have changed while nobody could apply it. */
    char key[STORE_KEY_MAX];
    snprintf(key, sizeof(key), "%starget/", su->amf->prefix);
    int r = store_range(su->amf->store, key, on_targets, su->amf);
    if (r < 0)
        log_warning_errno(r, "Failed to read the targets after an adoption: %m");
}

/* ---- operator commands run on another node ----
 *
 * admin/<from>/<n>: {"op": 2, "target": "si", "to": "n2" or "" (the
 * coordinator)}, put under the sending node's lease; the node it names runs
 * the command and writes {"result": errno} into the same key (same lease);
 * the sender answers haloctl and deletes the key.  A key whose sender died
 * goes with its lease. */

static void on_admin_written(store *s, int error, const store_result *r, void *userdata) {
    if (error < 0 && error != -ECANCELED)
        log_warning_errno(error, "Failed to write an operator command to the store: %m");
}

int cl_admin_forward(struct amf *a, struct conn *conn, uint64_t seq, int op, const char *target, const char *to) {
    int64_t lease = cluster_lease(a->cluster);
    if (!lease)
        return -HALO_ETRYAGAIN; /* not in the cluster right now */
    struct forward *f = calloc(1, sizeof(*f));
    json_t *j = json_pack("{s:i, s:s, s:s}", "op", op, "target", target, "to", to);
    char *value = j ? json_dumps(j, JSON_COMPACT) : NULL;
    json_decref(j);
    if (!f || !value || asprintf(&f->key, "%sadmin/%s/%" PRIu64, a->prefix, a->node, ++a->n_forwarded) < 0) {
        free(f);
        free(value);
        return -ENOMEM;
    }
    int r = store_put(a->store, f->key, value, strlen(value), lease, on_admin_written, NULL);
    free(value);
    if (r < 0) {
        free(f->key);
        free(f);
        return r;
    }
    log_info("Operator command for '%s' sent to %s%s", target, *to ? "node " : "the coordinator", to);
    f->conn = conn;
    f->seq = seq;
    f->next = a->forwards;
    a->forwards = f;
    return 0;
}

void cl_admin_result(struct admin_waiter *w, int error) {
    struct amf *a = w->amf;
    json_t *j = json_pack("{s:i}", "result", error);
    char *value = j ? json_dumps(j, JSON_COMPACT) : NULL;
    json_decref(j);
    int r = value ? store_put(a->store, w->request, value, strlen(value), w->lease, on_admin_written, NULL) : -ENOMEM;
    if (r < 0)
        log_warning_errno(r, "Failed to answer the operator command '%s': %m", w->request);
    free(value);
    free(w->request);
    *w = (struct admin_waiter){0};
}

void cl_admin_conn_closed(struct amf *a, struct conn *conn) {
    /* Nobody waits for these any more (haloctl timed out or was stopped). */
    for (struct forward **p = &a->forwards; *p;) {
        struct forward *f = *p;
        if (f->conn != conn) {
            p = &f->next;
            continue;
        }
        if (store_delete(a->store, f->key, on_admin_written, NULL) < 0)
            log_debug("Cannot delete the abandoned command '%s'", f->key);
        *p = f->next;
        free(f->key);
        free(f);
    }
}

static void handle_admin_key(struct amf *a, const store_kv *kv, const char *rest, json_t *j, bool deleted) {
    if (deleted)
        return;
    json_t *res = json_object_get(j, "result");
    if (res) {
        /* The answer to one of ours. */
        for (struct forward **p = &a->forwards; *p; p = &(*p)->next) {
            struct forward *f = *p;
            if (strlen(f->key) != kv->key_len || memcmp(f->key, kv->key, kv->key_len) != 0)
                continue;
            if (f->conn)
                (void)server_conn_reply(f->conn, f->seq, json_is_integer(res) ? (int)json_integer_value(res) : -EIO,
                                        NULL);
            (void)store_delete(a->store, f->key, on_admin_written, NULL);
            *p = f->next;
            free(f->key);
            free(f);
            return;
        }
        return;
    }
    const char *to = json_string_value(json_object_get(j, "to"));
    const char *target = json_string_value(json_object_get(j, "target"));
    json_t *op = json_object_get(j, "op");
    if (!to || !target || !json_is_integer(op) || !(*to ? streq(to, a->node) : a->coordinator))
        return;
    /* Run once: the key gets its result right after, or when the command completes. */
    for (size_t i = 0; i < ELEMENTSOF(a->ran); i++)
        if (a->ran[i] == kv->create_revision)
            return;
    a->ran[a->ran_next++ % ELEMENTSOF(a->ran)] = kv->create_revision;
    char *key = strndup(kv->key, kv->key_len);
    if (!key)
        return;
    log_info("Running the operator command %s forwarded by another node", rest);
    amf_admin_run(a, (int)json_integer_value(op), target,
                  (struct admin_waiter){.request = key, .lease = kv->lease, .amf = a});
}

/* ---- the membership module's events ---- */

void amf_set_cluster(struct amf *a, struct cluster *c) {
    a->cluster = c;
    a->coordinator = false;
}

void amf_cluster_joined(struct amf *a) {
    amf_event(a, "node", a->node, "ONLINE", NULL);
    for (size_t g = 0; g < a->n_sgs; g++)
        for (size_t u = 0; u < a->sgs[g].n_sus; u++)
            if (a->sgs[g].sus[u].local)
                publish_sustate(&a->sgs[g].sus[u], true);
}

static void on_admin_pending(store *s, int error, const store_result *r, void *userdata) {
    handle_read(userdata, error, r, "the operator commands waiting for a coordinator");
}

void amf_cluster_coordinator(struct amf *a, bool coordinator) {
    a->coordinator = coordinator;
    amf_events_coordinator(a, coordinator);
    if (!coordinator)
        return;
    /* Commands forwarded to the coordinator that the previous one never answered (it died, or
     * they came while there was none) wait in admin/: run them now.  Answered ones have a result
     * and are skipped; the watch brings whatever comes next. */
    char key[STORE_KEY_MAX];
    snprintf(key, sizeof(key), "%sadmin/", a->prefix);
    int r = store_range(a->store, key, on_admin_pending, a);
    if (r < 0)
        log_warning_errno(r, "Failed to read the operator commands waiting for a coordinator: %m");
    /* Take over: what other nodes hold is known from the store; decide from
     * there.  Keys of pairs with no assignment in our view are left over
     * (a node restarted, a coordinator died mid-change): delete them. */
    for (size_t g = 0; g < a->n_sgs; g++) {
        struct sg *sg = &a->sgs[g];
        for (size_t i = 0; i < sg->n_sis; i++)
            for (size_t u = 0; u < sg->n_sus; u++)
                if (!amf_si_find_su(&sg->sis[i], &sg->sus[u]))
                    cl_forget(&sg->sis[i], &sg->sus[u]);
        amf_sg_changed(sg);
    }
}

void amf_cluster_fence(struct amf *a) {
    a->coordinator = false;
    amf_events_coordinator(a, false);
    for (size_t g = 0; g < a->n_sgs; g++) {
        struct sg *sg = &a->sgs[g];
        for (size_t u = 0; u < sg->n_sus; u++) {
            struct su *su = &sg->sus[u];
            if (!su->local)
                continue;
            su->report = (struct su_report){0}; /* republished in full on rejoin */
            if (su->adopting) {                 /* what it holds is not ours to trust any more */
                amf_su_fail(su, "this node lost its lease", false);
                continue;
            }
            for (size_t i = 0; i < sg->n_sis; i++) {
                struct assignment *as = amf_si_find_su(&sg->sis[i], su);
                if (as && as->target != HALO_HA_STANDBY) {
                    amf_su_fail(su, "this node lost its lease", false);
                    break;
                }
            }
        }
    }
}
