/* SPDX-License-Identifier: MIT */
/*
 * The documents composed from every subsystem: the cluster status (what
 * haloctl status and GET /v1/status show), the Prometheus metrics, and the
 * entrypoint a process asks for.
 */
#include <errno.h>
#include <jansson.h>
#include <stdint.h>
#include <stdlib.h>

#include "amf-status.h"
#include "macro.h"
#include "manager-internal.h"

const char *status_coordinator(struct manager *m) {
    return m->cluster ? cluster_coordinator(m->cluster) : m->node;
}

static bool node_up(struct manager *m, const char *name) {
    if (streq(name, m->node)) /* this node: whether it holds its lease now, not what the watch has shown yet */
        return !m->cluster || cluster_lease(m->cluster) > 0;
    return m->sync && cluster_sync_node(m->sync, name) == 1;
}

static void decorate_comp(void *userdata, const struct comp *c, json_t *obj) {
    struct manager *m = userdata;
    if (m->recovery)
        recovery_local_status(m->recovery, c, obj);
}

/* The digest of node's description: this node's own, another's as its node key says (NULL: unknown). */
static const char *node_digest(struct manager *m, const char *node) {
    if (streq(node, m->node))
        return m->digest;
    return m->sync ? cluster_sync_node_digest(m->sync, node) : NULL;
}

static json_t *nodes_json(struct manager *m) {
    const char *coordinator = status_coordinator(m);
    json_t *nodes = json_array();
    for (size_t i = 0; nodes && i < m->config->n_nodes; i++) {
        const char *n = m->config->nodes[i].name, *digest = node_digest(m, n);
        const char *state = node_up(m, n) ? "ONLINE" : m->cluster ? "OFFLINE" : "UNKNOWN";
        json_t *o = json_pack("{s:s, s:s, s:b, s:b}", "name", n, "state", state, "local", streq(n, m->node),
                              "coordinator", coordinator && streq(n, coordinator));
        if (o && digest)
            json_object_set_new(o, "description", json_string(digest));
        json_array_append_new(nodes, o);
    }
    return nodes;
}

/* "description differs: n1 abc123…, n2 def456…" when the nodes that published a digest disagree; else NULL. */
static char *digest_warning(struct manager *m) {
    const char *first = NULL;
    bool differ = false;
    for (size_t i = 0; i < m->config->n_nodes; i++) {
        const char *d = node_digest(m, m->config->nodes[i].name);
        if (d && first && !streq(d, first))
            differ = true;
        first = first ?: d;
    }
    if (!differ)
        return NULL;
    _cleanup_free_ char *s = strdup("description differs:");
    const char *sep = " ";
    for (size_t i = 0; s && i < m->config->n_nodes; i++) {
        const char *d = node_digest(m, m->config->nodes[i].name);
        char *t = NULL;
        if (!d)
            continue;
        if (asprintf(&t, "%s%s%s %.12s\u2026", s, sep, m->config->nodes[i].name, d) < 0)
            return NULL;
        free(s);
        s = t;
        sep = ", ";
    }
    return TAKE_PTR(s);
}

static bool names_have(json_t *names, const char *name) {
    size_t i;
    json_t *v;
    json_array_foreach(names, i, v) if (json_string_value(v) && streq(json_string_value(v), name)) return true;
    return false;
}

/* The names of node's service groups: this node's own (mine), another's as its node key says (NULL:
 * unknown, or it holds no lease). */
static json_t *node_groups(struct manager *m, const char *node, json_t *mine) {
    if (streq(node, m->node))
        return mine;
    return m->sync ? cluster_sync_node_groups(m->sync, node) : NULL;
}

/* The entry [name, nodes] of missing for group g, or NULL. */
static json_t *missing_entry(json_t *missing, const char *g) {
    size_t i;
    json_t *e;
    json_array_foreach(missing, i, e) if (streq(json_string_value(json_array_get(e, 0)), g)) return e;
    return NULL;
}

/* One warning for each group that this node or a live node has and the coordinator does not: nothing
 * assigns it (docs/configuration.md, Reload on several nodes).  false when the coordinator's groups
 * are not known (a halod that does not publish them). */
static bool group_warnings(struct manager *m, const char *coordinator, json_t *warnings) {
    json_t *mine = json_array(), *missing = json_array(); /* [[name, "n2, n3"], ...] in order */
    for (size_t g = 0; mine && g < m->config->n_sgs; g++)
        json_array_append_new(mine, json_string(m->config->sgs[g].name));
    json_t *theirs = node_groups(m, coordinator, mine);
    for (size_t i = 0; theirs && missing && i < m->config->n_nodes; i++) {
        const char *n = m->config->nodes[i].name;
        size_t k;
        json_t *name;
        json_array_foreach(node_groups(m, n, mine), k, name) {
            const char *g = json_string_value(name);
            json_t *e = g && !names_have(theirs, g) ? missing_entry(missing, g) : NULL;
            if (e)
                json_array_set_new(e, 1, json_sprintf("%s, %s", json_string_value(json_array_get(e, 1)), n));
            else if (g && !names_have(theirs, g))
                json_array_append_new(missing, json_pack("[s,s]", g, n));
        }
    }
    size_t i;
    json_t *e;
    json_array_foreach(missing, i, e)
        json_array_append_new(warnings, json_sprintf("group '%s' is not assigned: the coordinator (%s) does not have "
                                                     "it (reload %s to add it, or %s to remove it)",
                                                     json_string_value(json_array_get(e, 0)), coordinator, coordinator,
                                                     json_string_value(json_array_get(e, 1))));
    json_decref(mine);
    json_decref(missing);
    return theirs != NULL;
}

/* The configuration database's role on this node. */
static json_t *cdb_json(struct manager *m) {
    _cleanup_free_ char *cdb = m->ha ? ha_status_json(m->ha) : NULL;
    json_t *j = cdb ? json_loads(cdb, 0, NULL) : NULL;
    if (j && amf_roles_sg(m->roles)) {
        const char *writer = amf_roles_writer(m->roles);
        json_object_set_new(j, "roles_follow", json_string(amf_roles_sg(m->roles)));
        json_object_set_new(j, "writer", writer ? json_string(writer) : json_null());
    }
    json_t *subtrees = manager_cdb_groups_json(m);
    if (j && subtrees)
        json_object_set_new(j, "subtrees", subtrees);
    else
        json_decref(subtrees);
    return j;
}

char *status_json(struct manager *m) {
    const char *coordinator = status_coordinator(m);
    json_t *root =
        json_pack("{s:s, s:s, s:s, s:o, s:o, s:o}", "cluster", m->config->cluster, "node", m->node, "store",
                  store_backend_name(m->store), "coordinator", coordinator ? json_string(coordinator) : json_null(),
                  "nodes", nodes_json(m), "service_groups", amf_status_sgs(m->amf, decorate_comp, m));
    if (root)
        json_object_set_new(root, "version", json_string(HALO_VERSION_STRING));
    json_t *cdb = root ? cdb_json(m) : NULL;
    if (cdb)
        json_object_set_new(root, "cdb", cdb);
    if (root) /* the failovers this node saw, for the live page (docs/http.md) */
        json_object_set_new(root, "failovers", metrics_failovers_json(m->metrics));
    if (root) /* this node's own administrative state (haloctl admin lock node:NAME) */
        json_object_set_new(root, "node_admin", json_string(amf_node_admin(m->amf)));
    if (root)
        json_object_set_new(root, "description",
                            json_pack("{s:s, s:s}", "path", m->opt.config_path, "digest", m->digest));
    _cleanup_free_ char *warning = root ? digest_warning(m) : NULL;
    const char *cd = coordinator && !streq(coordinator, m->node) ? node_digest(m, coordinator) : NULL;
    json_t *warnings = json_array();
    if (warning)
        json_array_append_new(warnings, json_string(warning));
    /* docs/configuration.md, Reload on several nodes */
    bool named = warnings && coordinator && m->cluster && group_warnings(m, coordinator, warnings);
    if (!named && warning && cd && !streq(cd, m->digest))
        json_array_append_new(warnings, json_sprintf("the coordinator (%s) runs another description: the service "
                                                     "groups it does not have are not assigned",
                                                     coordinator));
    if (root && json_array_size(warnings))
        json_object_set(root, "warnings", warnings);
    json_decref(warnings);
    if (root && m->cluster) /* whether a node's lease end now counts as its fence (docs/design.md) */
        json_object_set_new(root, "lease_ends_vouched", json_boolean(store_lease_end_trusted(m->store, INT64_MAX)));
    char *s = root ? json_dumps(root, JSON_COMPACT) : NULL;
    json_decref(root);
    return s;
}

int status_entrypoint(struct manager *m, bool recovery, char **ret) {
    const char *coordinator = status_coordinator(m);
    if (!coordinator)
        return -EAGAIN; /* no coordinator yet: ask again shortly */
    size_t online = 0, n_sgs;
    for (size_t i = 0; i < m->config->n_nodes; i++)
        online += node_up(m, m->config->nodes[i].name);
    json_t *eps = json_array();
    struct sg *sgs = amf_sgs(m->amf, &n_sgs);
    for (size_t g = 0; g < n_sgs; g++)
        for (size_t i = 0; !sgs[g].removed && i < sgs[g].n_sis; i++) {
            const struct si *si = &sgs[g].sis[i];
            if (!si->cfg->entrypoint || si->removed) /* removed by a reload */
                continue;
            const struct assignment *act = NULL; /* several (N-way-active): the best-ranked */
            for (size_t k = 0; k < si->n_asg; k++)
                if (si->asg[k].su && si->asg[k].confirmed && si->asg[k].state == HALO_HA_ACTIVE &&
                    (!act || si->asg[k].su->cfg->rank < act->su->cfg->rank))
                    act = &si->asg[k];
            json_t *csis = json_array();
            for (size_t k = 0; k < si->cfg->n_csis; k++) {
                const struct config_csi *csi = &si->cfg->csis[k];
                json_t *attrs = json_object();
                for (size_t n = 0; n < csi->n_attrs; n++)
                    json_object_set_new(attrs, csi->attrs[n].name, json_string(csi->attrs[n].value));
                json_array_append_new(csis, json_pack("{s:s, s:o}", "name", csi->name, "attributes", attrs));
            }
            json_array_append_new(eps, json_pack("{s:s, s:o, s:o, s:o}", "si", si->name, "active",
                                                 act ? json_string(act->su->name) : json_null(), "node",
                                                 act ? json_string(act->su->cfg->node) : json_null(), "csis", csis));
        }
    json_t *root = json_pack("{s:s, s:i, s:i, s:i, s:o}", "coordinator", coordinator, "nodes", (int)m->config->n_nodes,
                             "online", (int)online, "quorum", (int)(online / 2 + 1), "entrypoints", eps);
    if (root && recovery)
        json_object_set_new(root, "recovery", json_true());
    *ret = root ? json_dumps(root, JSON_COMPACT) : NULL;
    json_decref(root);
    return *ret ? 0 : -ENOMEM;
}

int status_metrics(struct manager *m, char **ret) {
    const char *coordinator = status_coordinator(m);
    struct http_metrics_buf b = {0};
    char l[512];
    int r = 0;
#define ADD(name, help, type, value)                              \
    do {                                                          \
        if (r >= 0)                                               \
            r = http_metrics_add(&b, name, help, type, l, value); \
    } while (0)
    for (size_t i = 0; i < m->config->n_nodes; i++) {
        const char *n = m->config->nodes[i].name;
        http_metrics_labels(l, sizeof(l), "node", n, NULL);
        int up = m->sync ? cluster_sync_node(m->sync, n) : -ENOENT;
        ADD("halo_node_up", "Whether the node holds its lease (1) or not (0).", "gauge",
            up >= 0 ? up : streq(n, m->node));
        ADD("halo_node_coordinator", "Whether the node is the coordinator.", "gauge",
            coordinator && streq(n, coordinator));
    }
    if (m->cluster) {
        l[0] = '\0';
        ADD("halo_store_lease_ends_vouched",
            "Whether etcd vouches now for how a node's lease ends (0: a node failover waits a lease TTL more).",
            "gauge", store_lease_end_trusted(m->store, INT64_MAX));
    }
    if (r >= 0)
        r = amf_status_metrics(m->amf, &b);
    if (r >= 0)
        r = metrics_write(m, &b);
    struct queue_stats qs = {0};
    if (m->queue)
        queue_get_stats(m->queue, &qs);
    uint64_t lost = queue_reporter_lost(m->reporter) + events_lost(m->events);
    l[0] = 0;
    ADD("halo_events_appended_total", "Events this node appended to the event queue.", "counter", (double)qs.appended);
    ADD("halo_events_consumed_total", "Events this node consumed as the coordinator.", "counter", (double)qs.consumed);
    ADD("halo_events_duplicates_total", "Consumed events dropped as duplicates.", "counter", (double)qs.duplicates);
    ADD("halo_events_published_total", "Broadcast-queue entries this node published.", "counter", (double)qs.published);
    ADD("halo_events_delivered_total", "Broadcast-queue entries this node delivered.", "counter", (double)qs.delivered);
    ADD("halo_events_append_txns_total", "Transactions that appended this node's events.", "counter",
        (double)qs.append_txns);
    ADD("halo_events_consumer_txns_total", "Transactions that published consumed events (coordinator).", "counter",
        (double)qs.consumer_txns);
    ADD("halo_events_dropped_total", "Consumed events dropped by the coordinator's rules or as invalid.", "counter",
        (double)qs.dropped);
    ADD("halo_events_lost_total", "Reports this node could not append.", "counter", (double)lost);
    ADD("halo_clients_cut_off_total", "HA-link clients disconnected for not reading what halod sent them.", "counter",
        (double)(m->server ? server_cut_off_total(m->server) : 0));
#undef ADD
    if (r >= 0)
        r = http_metrics_finish(&b, ret);
    http_metrics_done(&b);
    return r;
}
