/* SPDX-License-Identifier: MIT */
/* The cluster status document (JSON): what haloctl status and the HTTP API show. */
#include <errno.h>
#include <jansson.h>
#include <stdlib.h>

#include "amf-internal.h"
#include "ha.h"
#include "http.h"
#include "queue.h"
#include "macro.h"

static json_t *comp_json(const struct comp *c) {
    json_t *j = json_pack("{s:s, s:s, s:b}", "name", c->name, "presence", presence_to_string(c->presence), "registered",
                          c->conn != NULL);
    if (c->pid)
        json_object_set_new(j, "pid", json_integer(c->pid));
    else
        json_object_set_new(j, "pid", json_null());
    json_object_set_new(j, "instantiations", json_integer(c->restarts));
    if (c->last_exit)
        json_object_set_new(j, "last_exit", json_string(c->last_exit));
    json_t *hcs = json_array();
    for (const struct hc *hc = c->hcs; hc; hc = hc->next)
        json_array_append_new(hcs, json_pack("{s:s, s:s}", "key", hc->key, "invoked",
                                             hc->invoked == HALO_HC_AMF_INVOKED ? "amf" : "component"));
    json_object_set_new(j, "health_checks", hcs);
    amf_recovery_status(c->amf, c, j);
    return j;
}

static const char *su_readiness(const struct su *su) {
    if (!su->local && !su->amf->cluster)
        return "OTHER-NODE";
    if (!su->local && !su->report.known)
        return "UNKNOWN";
    return amf_su_in_service(su) ? "IN-SERVICE" : "OUT-OF-SERVICE";
}

static json_t *su_json(const struct su *su) {
    json_t *j = json_pack("{s:s, s:s, s:i, s:s, s:s, s:s}", "name", su->name, "node", su->cfg->node, "rank",
                          (int)su->cfg->rank, "admin", su->admin == SU_LOCKED ? "LOCKED" : "UNLOCKED", "oper",
                          su->oper == SU_DISABLED ? "DISABLED" : "ENABLED", "readiness", su_readiness(su));
    if (su->last_failure)
        json_object_set_new(j, "last_failure", json_string(su->last_failure));
    json_object_set_new(j, "recent_failures", json_integer(su->n_fail_times));
    json_t *comps = json_array();
    for (size_t i = 0; i < su->n_comps; i++)
        json_array_append_new(comps, comp_json(&su->comps[i]));
    json_object_set_new(j, "components", comps);
    return j;
}

static json_t *si_json(const struct si *si) {
    json_t *asg = json_array();
    const char *active = NULL, *standby = NULL;
    for (size_t i = 0; i < SI_ASSIGNMENTS_MAX; i++) {
        const struct assignment *a = &si->asg[i];
        if (!a->su)
            continue;
        json_t *e =
            json_pack("{s:s, s:s, s:b}", "su", a->su->name, "ha_state",
                      a->confirmed || a->state ? halo_ha_state_to_string(a->state) : "NONE", "pending", a->pending > 0);
        if (a->pending)
            json_object_set_new(e, "target", json_string(a->removing ? "REMOVED" : halo_ha_state_to_string(a->target)));
        json_array_append_new(asg, e);
        if (a->confirmed && a->state == HALO_HA_ACTIVE)
            active = a->su->name;
        if (a->confirmed && a->state == HALO_HA_STANDBY)
            standby = a->su->name;
    }
    json_t *csis = json_array();
    for (size_t k = 0; k < si->cfg->n_csis; k++)
        json_array_append_new(csis, json_string(si->cfg->csis[k].name));
    const char *state = active ? (standby ? "FULLY-ASSIGNED" : "PARTIALLY-ASSIGNED") : "UNASSIGNED";
    return json_pack("{s:s, s:s, s:o, s:o, s:o, s:o, s:I, s:b}", "name", si->name, "assignment", state, "active",
                     active ? json_string(active) : json_null(), "standby",
                     standby ? json_string(standby) : json_null(), "assignments", asg, "csis", csis, "generation",
                     (json_int_t)si->generation, "switchover", si->switchover);
}

char *amf_status_json(struct amf *a) {
    struct amf_view v;
    amf_view(a, &v);
    json_t *nodes = json_array();
    for (size_t i = 0; i < v.config->n_nodes; i++) {
        const char *n = v.config->nodes[i].name, *state = "UNKNOWN";
        if (!a->cluster)
            state = streq(n, v.node) ? "ONLINE" : "UNKNOWN";
        else {
            state = "OFFLINE";
            for (size_t k = 0; k < a->n_nodes; k++)
                if (streq(a->nodes[k].name, n) && a->nodes[k].alive)
                    state = "ONLINE";
        }
        json_array_append_new(nodes,
                              json_pack("{s:s, s:s, s:b, s:b}", "name", n, "state", state, "local", streq(n, v.node),
                                        "coordinator", v.coordinator && streq(n, v.coordinator)));
    }
    json_t *sgs = json_array();
    for (size_t g = 0; g < v.n_sgs; g++) {
        const struct sg *sg = &v.sgs[g];
        json_t *sus = json_array(), *sis = json_array();
        for (size_t u = 0; u < sg->n_sus; u++)
            json_array_append_new(sus, su_json(&sg->sus[u]));
        for (size_t i = 0; i < sg->n_sis; i++)
            json_array_append_new(sis, si_json(&sg->sis[i]));
        json_array_append_new(sgs, json_pack("{s:s, s:s, s:o, s:o}", "name", sg->name, "redundancy", sg->ops->name,
                                             "service_units", sus, "service_instances", sis));
    }
    json_t *root = json_pack(
        "{s:s, s:s, s:s, s:o, s:o, s:o}", "cluster", v.cluster, "node", v.node, "store", a->cluster ? "etcd" : "sqlite",
        "coordinator", v.coordinator ? json_string(v.coordinator) : json_null(), "nodes", nodes, "service_groups", sgs);
    if (root && a->ha) {
        /* The configuration database's role on this node. */
        char *cdb = ha_status_json(a->ha);
        json_t *j = cdb ? json_loads(cdb, 0, NULL) : NULL;
        free(cdb);
        if (j && a->cdb_sg)
            json_object_set_new(j, "roles_follow", json_string(a->cdb_sg->name));
        if (j)
            json_object_set_new(root, "cdb", j);
    }
    char *s = root ? json_dumps(root, JSON_COMPACT) : NULL;
    json_decref(root);
    return s;
}

/* ---- entrypoint ---------------------------------------------------------- */

int amf_entrypoint_json(struct amf *a, char **ret) {
    struct amf_view v;
    amf_view(a, &v);
    if (!v.coordinator)
        return -EAGAIN; /* no coordinator yet: ask again shortly */
    size_t online = 0;
    if (!a->cluster)
        online = 1;
    for (size_t k = 0; a->cluster && k < a->n_nodes; k++)
        online += a->nodes[k].alive;
    json_t *eps = json_array();
    for (size_t g = 0; g < v.n_sgs; g++)
        for (size_t i = 0; i < v.sgs[g].n_sis; i++) {
            const struct si *si = &v.sgs[g].sis[i];
            if (!si->cfg->entrypoint)
                continue;
            const struct assignment *act = NULL;
            for (size_t k = 0; k < SI_ASSIGNMENTS_MAX; k++)
                if (si->asg[k].su && si->asg[k].confirmed && si->asg[k].state == HALO_HA_ACTIVE)
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
    json_t *root = json_pack("{s:s, s:i, s:i, s:i, s:o}", "coordinator", v.coordinator, "nodes", (int)v.config->n_nodes,
                             "online", (int)online, "quorum", (int)(v.config->n_nodes / 2 + 1), "entrypoints", eps);
    *ret = root ? json_dumps(root, JSON_COMPACT) : NULL;
    json_decref(root);
    return *ret ? 0 : -ENOMEM;
}

/* ---- metrics (Prometheus) -------------------------------------------------- */

int amf_metrics_text(struct amf *a, char **ret) {
    struct amf_view v;
    struct http_metrics_buf b = {0};
    char l[512];
    int r = 0;
    amf_view(a, &v);

#define ADD(name, help, type, value)                              \
    do {                                                          \
        if (r >= 0)                                               \
            r = http_metrics_add(&b, name, help, type, l, value); \
    } while (0)
    for (size_t i = 0; i < v.config->n_nodes; i++) {
        const char *n = v.config->nodes[i].name;
        bool up = streq(n, v.node);
        for (size_t k = 0; a->cluster && k < a->n_nodes; k++)
            if (streq(a->nodes[k].name, n))
                up = a->nodes[k].alive;
        http_metrics_labels(l, sizeof(l), "node", n, NULL);
        ADD("halo_node_up", "Whether the node holds its lease (1) or not (0).", "gauge", up);
        ADD("halo_node_coordinator", "Whether the node is the coordinator.", "gauge",
            v.coordinator && streq(n, v.coordinator));
    }
    for (size_t g = 0; g < v.n_sgs; g++) {
        const struct sg *sg = &v.sgs[g];
        for (size_t u = 0; u < sg->n_sus; u++) {
            const struct su *su = &sg->sus[u];
            http_metrics_labels(l, sizeof(l), "su", su->name, "node", su->cfg->node, NULL);
            ADD("halo_su_in_service", "Whether the service unit is in service.", "gauge", amf_su_in_service(su));
            if (!su->local)
                continue;
            for (size_t c = 0; c < su->n_comps; c++) {
                http_metrics_labels(l, sizeof(l), "component", su->comps[c].name, NULL);
                ADD("halo_component_registered", "Whether the component is registered on its HA link.", "gauge",
                    su->comps[c].conn != NULL);
                ADD("halo_component_instantiations_total", "Processes started for the component.", "counter",
                    su->comps[c].restarts);
            }
        }
        for (size_t i = 0; i < sg->n_sis; i++) {
            const struct si *si = &sg->sis[i];
            unsigned act = 0, sb = 0;
            for (size_t k = 0; k < SI_ASSIGNMENTS_MAX; k++)
                if (si->asg[k].su && si->asg[k].confirmed) {
                    act += si->asg[k].state == HALO_HA_ACTIVE;
                    sb += si->asg[k].state == HALO_HA_STANDBY;
                }
            http_metrics_labels(l, sizeof(l), "si", si->name, "role", "active", NULL);
            ADD("halo_si_assignments", "Confirmed assignments of the service instance, by role.", "gauge", act);
            http_metrics_labels(l, sizeof(l), "si", si->name, "role", "standby", NULL);
            ADD("halo_si_assignments", "Confirmed assignments of the service instance, by role.", "gauge", sb);
            http_metrics_labels(l, sizeof(l), "si", si->name, NULL);
            ADD("halo_si_generation", "Changes of the service instance's assignments.", "counter",
                (double)si->generation);
        }
    }
    struct queue_stats qs;
    uint64_t lost;
    amf_events_stats(a, &qs, &lost);
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
#undef ADD
    if (r >= 0)
        r = http_metrics_finish(&b, ret);
    http_metrics_done(&b);
    return r;
}
