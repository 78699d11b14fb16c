/* SPDX-License-Identifier: MIT */
/* The AMF's part of the status document (JSON) and of the Prometheus metrics. */
#include <errno.h>
#include <jansson.h>
#include <stdlib.h>

#include "amf-internal.h"
#include "amf-status.h"
#include "http.h"
#include "macro.h"

static json_t *comp_json(const struct comp *c, amf_status_decorate_cb decorate, void *userdata) {
    json_t *j = json_pack("{s:s, s:s, s:b}", "name", c->name, "presence", presence_to_string(c->presence), "registered",
                          c->conn != NULL);
    if (!j)
        return NULL;
    json_object_set_new(j, "type", json_string(config_comp_type_to_string(c->cfg->type)));
    if (c->cfg->proxy)
        json_object_set_new(j, "proxy", json_string(c->cfg->proxy));
    if (amf_comp_monitor_state(c))
        json_object_set_new(j, "monitor", json_string(amf_comp_monitor_state(c)));
    json_object_set_new(j, "pid", c->pid ? json_integer(c->pid) : json_null());
    json_object_set_new(j, "instantiations", json_integer(c->restarts));
    if (c->last_exit)
        json_object_set_new(j, "last_exit", json_string(c->last_exit));
    json_t *hcs = json_array();
    for (const struct hc *hc = c->hcs; hc; hc = hc->next)
        json_array_append_new(hcs, json_pack("{s:s, s:s}", "key", hc->key, "invoked",
                                             hc->invoked == HALO_HC_AMF_INVOKED ? "amf" : "component"));
    json_object_set_new(j, "health_checks", hcs);
    if (decorate)
        decorate(userdata, c, j);
    return j;
}

static const char *su_readiness(const struct su *su) {
    if (!su->local && !su->amf->placement->distributed)
        return "OTHER-NODE";
    if (!su->local && !su->remote.known)
        return "UNKNOWN";
    return amf_su_in_service(su) ? "IN-SERVICE" : "OUT-OF-SERVICE";
}

static json_t *su_json(const struct su *su, amf_status_decorate_cb decorate, void *userdata) {
    json_t *j = json_pack("{s:s, s:s, s:i, s:s, s:s, s:s}", "name", su->name, "node", su->cfg->node, "rank",
                          (int)su->cfg->rank, "admin", su_admin_to_string(amf_su_admin(su)), "oper",
                          su->oper == SU_DISABLED ? "DISABLED" : "ENABLED", "readiness", su_readiness(su));
    if (!j)
        return NULL;
    if (su->last_failure)
        json_object_set_new(j, "last_failure", json_string(su->last_failure));
    json_object_set_new(j, "recent_failures", json_integer(su->n_fail_times));
    if (su->unkillable)
        json_object_set_new(j, "unkillable", json_true());
    if (su->last_recovery)
        json_object_set_new(j, "last_recovery", json_string(su->last_recovery));
    json_object_set_new(j, "component_restarts", json_integer(su->comp_restarts.count));
    json_object_set_new(j, "su_restarts", json_integer(su->su_restarts.count));
    json_t *comps = json_array();
    for (size_t i = 0; i < su->n_comps; i++)
        if (!su->comps[i].removed)
            json_array_append_new(comps, comp_json(&su->comps[i], decorate, userdata));
    json_object_set_new(j, "components", comps);
    return j;
}

static json_t *si_json(const struct si *si) {
    json_t *asg = json_array(), *actives = json_array(), *standbys = json_array();
    unsigned n_act = 0, n_sb = 0;
    for (size_t i = 0; i < si->n_asg; i++) {
        const struct assignment *a = &si->asg[i];
        if (!a->su)
            continue;
        json_t *e =
            json_pack("{s:s, s:s, s:b}", "su", a->su->name, "ha_state",
                      a->confirmed || a->state ? halo_ha_state_to_string(a->state) : "NONE", "pending", a->pending > 0);
        if (e && a->pending)
            json_object_set_new(e, "target", json_string(a->removing ? "REMOVED" : halo_ha_state_to_string(a->target)));
        json_array_append_new(asg, e);
        if (a->confirmed && a->state == HALO_HA_ACTIVE) {
            n_act++;
            json_array_append_new(actives, json_string(a->su->name));
        }
        if (a->confirmed && a->state == HALO_HA_STANDBY) {
            n_sb++;
            json_array_append_new(standbys, json_string(a->su->name));
        }
    }
    json_t *csis = json_array();
    for (size_t k = 0; k < si->cfg->n_csis; k++)
        json_array_append_new(csis, json_string(si->cfg->csis[k].name));
    /* Fully assigned: every ACTIVE and STANDBY the model wants is there. */
    const struct amf_policy *p = si->sg->ops->policy;
    bool full = n_act >= p->actives(si) && n_sb >= p->standbys(si);
    const char *state = n_act ? (full ? "FULLY-ASSIGNED" : "PARTIALLY-ASSIGNED") : "UNASSIGNED";
    json_t *first_act = json_array_get(actives, 0), *first_sb = json_array_get(standbys, 0);
    return json_pack("{s:s, s:s, s:s, s:O, s:O, s:o, s:o, s:o, s:o, s:I, s:b, s:s?}", "name", si->name, "admin",
                     si_admin_to_string(si->admin), "assignment", state, "active", first_act ? first_act : json_null(),
                     "standby", first_sb ? first_sb : json_null(), "actives", actives, "standbys", standbys,
                     "assignments", asg, "csis", csis, "generation", (json_int_t)si->generation, "switchover",
                     si->switchover, "waits_for", si->fencing ? si->fencing->name : NULL);
}

json_t *amf_status_sgs(struct amf *a, amf_status_decorate_cb decorate, void *userdata) {
    json_t *sgs = json_array();
    for (size_t g = 0; sgs && g < a->n_sgs; g++) {
        const struct sg *sg = &a->sgs[g];
        if (sg->removed)
            continue;
        json_t *sus = json_array(), *sis = json_array();
        for (size_t u = 0; u < sg->n_sus; u++)
            if (!sg->sus[u].removed) /* by a reload */
                json_array_append_new(sus, su_json(&sg->sus[u], decorate, userdata));
        for (size_t i = 0; i < sg->n_sis; i++)
            if (!sg->sis[i].removed) /* by a reload */
                json_array_append_new(sis, si_json(&sg->sis[i]));
        json_array_append_new(sgs, json_pack("{s:s, s:s, s:s, s:o, s:o}", "name", sg->name, "admin",
                                             su_admin_to_string(sg->admin), "redundancy", sg->ops->name,
                                             "service_units", sus, "service_instances", sis));
    }
    return sgs;
}

int amf_status_metrics(struct amf *a, struct http_metrics_buf *b) {
    char l[512];
    int r = 0;
#define ADD(name, help, type, value)                             \
    do {                                                         \
        if (r >= 0)                                              \
            r = http_metrics_add(b, name, help, type, l, value); \
    } while (0)
    for (size_t g = 0; g < a->n_sgs; g++) {
        const struct sg *sg = &a->sgs[g];
        if (sg->removed)
            continue;
        for (size_t u = 0; u < sg->n_sus; u++) {
            const struct su *su = &sg->sus[u];
            if (su->removed) /* by a reload; its name may be a new unit's */
                continue;
            http_metrics_labels(l, sizeof(l), "su", su->name, "node", su->cfg->node, NULL);
            ADD("halo_su_in_service", "Whether the service unit is in service.", "gauge", amf_su_in_service(su));
            if (!su->local)
                continue;
            for (size_t c = 0; c < su->n_comps; c++) {
                if (su->comps[c].removed)
                    continue;
                http_metrics_labels(l, sizeof(l), "component", su->comps[c].name, NULL);
                ADD("halo_component_registered", "Whether the component is registered on its HA link.", "gauge",
                    su->comps[c].conn != NULL);
                ADD("halo_component_instantiations_total", "Processes started for the component.", "counter",
                    su->comps[c].restarts);
            }
        }
        for (size_t i = 0; i < sg->n_sis; i++) {
            const struct si *si = &sg->sis[i];
            if (si->removed) /* by a reload; its name may be a new SI's */
                continue;
            unsigned act = 0, sb = 0;
            for (size_t k = 0; k < si->n_asg; k++)
                if (si->asg[k].su && si->asg[k].confirmed) {
                    act += si->asg[k].state == HALO_HA_ACTIVE;
                    sb += si->asg[k].state == HALO_HA_STANDBY;
                }
            http_metrics_labels(l, sizeof(l), "si", si->name, "role", "active", NULL);
            ADD("halo_si_assignments", "Confirmed assignments of the service instance, by role.", "gauge", act);
            http_metrics_labels(l, sizeof(l), "si", si->name, "role", "standby", NULL);
            ADD("halo_si_assignments", "Confirmed assignments of the service instance, by role.", "gauge", sb);
            http_metrics_labels(l, sizeof(l), "si", si->name, NULL);
            ADD("halo_si_generation",
                "The version of the service instance's assignments (bumped on each confirmed change; persisted).",
                "gauge", (double)si->generation);
        }
    }
#undef ADD
    return r;
}
