/* SPDX-License-Identifier: MIT */
/*
 * Reloading the description: which changes of components' and groups' settings, and of a unit's
 * node, apply live, and why the others do not (manager-reload.c calls these).  A component's
 * settings are compared as both descriptions resolve them (config_component_differ()): a restart
 * in place applies most, its restart policy, recovery and csi-types need none (the AMF reads them
 * when it fails or takes a CSI, amf-reload-comp.c), and what would change what it is (its type,
 * its proxy, its OCF agent), which CSI it takes, or the recovery model built at start (its services
 * and devices) is refused with what to do instead.  A group's settings but its redundancy model
 * and cdb-roles go to its model, which looks at its assignments again (amf_sg_settings_reload()).
 */
#define LOG_AREA LOG_AREA_MAIN
#include <errno.h>
#include <stdio.h>
#include <string.h>

#include "log.h"
#include "macro.h"
#include "manager-internal.h"

static const struct config_su *unit_of(const struct config_sg *g, const char *name) {
    for (size_t u = 0; g && u < g->n_sus; u++)
        if (streq(g->sus[u].name, name))
            return &g->sus[u];
    return NULL;
}

static const struct config_component *comp_of(const struct config_su *su, const char *name) {
    for (size_t i = 0; su && i < su->n_components; i++)
        if (streq(su->components[i].name, name))
            return &su->components[i];
    return NULL;
}

/* The name of the component of su that takes csi, or "none". */
static const char *taker(const struct config_su *su, const struct config_csi *csi) {
    size_t i = config_csi_component(su, csi);
    return i < su->n_components ? su->components[i].name : "none";
}

/* Why unit ou -> nu (one of both descriptions of a group og -> ng) cannot take its components'
 * new csi-types live: a CSI of an SI of both would change component.  Else NULL. */
static const char *csi_moves(const struct config_sg *og, const struct config_sg *ng, const struct config_su *ou,
                             const struct config_su *nu, char *buf, size_t size) {
    for (size_t i = 0; i < ng->n_sis; i++)
        for (size_t o = 0; o < og->n_sis; o++)
            for (size_t k = 0; streq(og->sis[o].name, ng->sis[i].name) && k < ng->sis[i].n_csis; k++)
                for (size_t j = 0; j < og->sis[o].n_csis; j++) {
                    const struct config_csi *oc = &og->sis[o].csis[j], *nc = &ng->sis[i].csis[k];
                    const char *was = taker(ou, oc), *now = taker(nu, nc);
                    if (!streq(oc->name, nc->name) || streq(was, now))
                        continue;
                    snprintf(buf, size,
                             "the csi-types of unit '%s' move CSI '%s' of '%s' from component '%s' to '%s': not "
                             "live (its SI would change hands); remove that CSI from its SI in one reload and add "
                             "it back in the next",
                             nu->name, nc->name, ng->sis[i].name, was, now);
                    return buf;
                }
    return NULL;
}

/* Why what differs (differ) of component name cannot be applied live, or NULL. */
static const char *differ_refusal(unsigned differ, const char *name, char *buf, size_t size) {
    const char *why =
        differ & CONFIG_DIFFER_TYPE ? "its type does not change live: remove it from its unit (or its unit, when it is "
                                      "the only component) in one reload and add it back in the next, or restart halod"
        : differ & CONFIG_DIFFER_PROXY ? "its proxy does not change live (restart halod to apply it)"
        : differ & CONFIG_DIFFER_AGENT ? "its OCF agent does not change live: its meta-data is read once (restart "
                                         "halod to apply it)"
        : differ & CONFIG_DIFFER_RECOVERY_MODEL ? "its services and devices feed the recovery model halod builds at "
                                                  "start (restart halod to apply it)"
                                                : NULL;
    if (!why)
        return NULL;
    snprintf(buf, size, "component '%s': %s", name, why);
    return buf;
}

const char *manager_comp_settings_refusal(const struct config_sg *og, const struct config_sg *ng,
                                          const struct config_diff *d, char *buf, size_t size) {
    for (size_t u = 0; og && ng && u < og->n_sus; u++) {
        const struct config_su *ou = &og->sus[u], *nu = unit_of(ng, ou->name);
        bool csi_types = false;
        for (size_t i = 0; nu && i < ou->n_components; i++) {
            const struct config_component *nc = comp_of(nu, ou->components[i].name);
            unsigned differ = nc ? config_component_differ(&ou->components[i], nc) : 0;
            const char *why = differ_refusal(differ, ou->components[i].name, buf, size);
            if (why)
                return why;
            csi_types = csi_types || (differ & CONFIG_DIFFER_CSI_TYPES);
        }
        if (!csi_types)
            continue;
        for (size_t j = 0; j < d->n_changes; j++)
            if (d->changes[j].whole_csi && streq(d->changes[j].sg, ng->name))
                return "csi-types change while CSIs of its group are added or removed: change them in a reload of "
                       "their own";
        const char *why = csi_moves(og, ng, ou, nu, buf, size);
        if (why)
            return why;
    }
    return NULL;
}

bool manager_comps_differ(const struct config_sg *og, const struct config_sg *ng) {
    for (size_t u = 0; og && ng && u < og->n_sus; u++) {
        const struct config_su *ou = &og->sus[u], *nu = unit_of(ng, ou->name);
        for (size_t i = 0; nu && i < ou->n_components; i++) {
            const struct config_component *nc = comp_of(nu, ou->components[i].name);
            if (nc && config_component_differ(&ou->components[i], nc))
                return true;
        }
    }
    return false;
}

/* The group setting ch names: what follows "service-groups.SG." in its key. */
static const char *setting_of(const struct config_change *ch) {
    size_t n = strlen("service-groups.") + strlen(ch->sg) + 1;
    return strlen(ch->key) > n ? ch->key + n : "";
}

static bool starts(const char *s, const char *word) {
    size_t n = strlen(word);
    return strncmp(s, word, n) == 0 && (s[n] == '\0' || s[n] == '.' || s[n] == '[');
}

/* Why a group setting change ch (og -> ng) is not applied live, or NULL. */
static const char *group_setting_refusal(const struct config_sg *og, const struct config_sg *ng,
                                         const struct config_change *ch) {
    const char *setting = setting_of(ch);
    if (starts(setting, "redundancy") && og->redundancy != ng->redundancy)
        return "a group's redundancy model does not change live: remove the group in one reload and add it back "
               "in the next, or add it under a new name and remove the old one";
    if (starts(setting, "cdb-roles") && og->cdb_roles != ng->cdb_roles)
        return "a group's cdb-roles does not change live (restart halod to apply it)";
    if (starts(setting, "cdb-subtree") &&
        (!og->cdb_subtree != !ng->cdb_subtree || (og->cdb_subtree && !streq(og->cdb_subtree, ng->cdb_subtree))))
        return "a group's cdb-subtree does not change live (its database is opened at start: restart every halod "
               "to apply it)";
    return NULL;
}

const char *manager_settings_refusal(const struct config_sg *og, const struct config_sg *ng,
                                     const struct config_change *ch) {
    if (!og || !ng)
        return "its service group is not found";
    if (ch->group_setting)
        return group_setting_refusal(og, ng, ch);
    const struct config_su *ou = unit_of(og, ch->su), *nu = unit_of(ng, ch->su);
    if (!ou || !nu || streq(ou->node, nu->node)) /* the node it defaulted to, now given: no move */
        return NULL;
    return "a unit does not move to another node live: remove the unit in one reload and add it back on its new "
           "node in the next";
}

size_t manager_apply_group_settings(struct manager *m, const struct config_diff *d) {
    size_t n = 0;
    for (size_t i = 0; i < d->n_changes; i++) {
        const struct config_change *ch = &d->changes[i];
        bool seen = false; /* several settings of one group: once */
        for (size_t j = 0; ch->group_setting && j < i; j++)
            seen = seen || (d->changes[j].group_setting && streq(d->changes[j].sg, ch->sg));
        if (!ch->group_setting || seen)
            continue;
        const struct config_sg *g = NULL;
        for (size_t k = 0; k < m->config->n_sgs; k++)
            g = streq(m->config->sgs[k].name, ch->sg) ? &m->config->sgs[k] : g;
        int r = g ? amf_sg_settings_reload(m->amf, g) : -HALO_EUNKNOWN;
        if (r < 0)
            log_warning_errno(r, "Service group '%s': cannot apply its new settings: %m", ch->sg);
        n += r >= 0;
    }
    return n;
}
