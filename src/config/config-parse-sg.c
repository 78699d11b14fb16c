/* SPDX-License-Identifier: MIT */
/* One service group: its redundancy model, its service units with their components, its service instances and CSIs. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "config-internal.h"
#include "string-table.h"

static int csi_parse(struct loader *l, const struct map_entry *e, struct config_csi *csi) {
    enum { CSI_TYPE, CSI_ATTRIBUTES, _CSI_MAX };
    static const char *const keys[] = {"type", "attributes", NULL};
    yaml_node_t *k[_CSI_MAX], *v[_CSI_MAX];
    char what[QUOTE_MAX + 32];

    csi->pos = config_yaml_pos(e->key_node);
    csi->name = config_diag_strdup(l, e->key);
    if (!csi->name)
        return -ENOMEM;
    (void)config_yaml_name(l, e->key_node, "CSI");
    snprintf(what, sizeof(what), "CSI '%s'", Q(e->key));
    int r = config_yaml_fields(l, e->value, what, keys, k, v);
    if (r <= 0)
        return r;

    if (v[CSI_TYPE]) {
        csi->type_pos = config_yaml_pos(v[CSI_TYPE]);
        const char *t = config_yaml_name(l, v[CSI_TYPE], "CSI type");
        if (t && !(csi->type = config_diag_strdup(l, t)))
            return -ENOMEM;
    }
    if (v[CSI_ATTRIBUTES]) {
        _cleanup_free_ struct map_entry *a = NULL;
        size_t n_a;
        r = config_yaml_map(l, v[CSI_ATTRIBUTES], "'attributes'", &a, &n_a);
        if (r < 0)
            return r;
        for (size_t i = 0; i < n_a; i++) {
            if (strlen(a[i].key) == 0 || strlen(a[i].key) > CONFIG_NAME_MAX)
                config_diag(l, a[i].key_node, "attribute names must have 1 to %d characters", CONFIG_NAME_MAX);
            char awhat[QUOTE_MAX + 32];
            snprintf(awhat, sizeof(awhat), "attribute '%s'", Q(a[i].key));
            (void)config_yaml_scalar(l, a[i].value, awhat);
        }
        r = config_yaml_kv(l, v[CSI_ATTRIBUTES], "'attributes'", &csi->attrs, &csi->n_attrs);
        if (r < 0)
            return r;
    }
    return 0;
}

static int si_parse(struct loader *l, const struct map_entry *e, struct config_si *si) {
    static const char *const keys[] = {"csis", "entrypoint", NULL};
    yaml_node_t *k[2], *v[2];
    _cleanup_free_ struct map_entry *csis = NULL;
    size_t n_csis = 0;
    char what[QUOTE_MAX + 32];

    si->pos = config_yaml_pos(e->key_node);
    si->name = config_diag_strdup(l, e->key);
    if (!si->name)
        return -ENOMEM;
    (void)config_yaml_name(l, e->key_node, "service instance");
    snprintf(what, sizeof(what), "service instance '%s'", Q(e->key));
    int r = config_yaml_fields(l, e->value, what, keys, k, v);
    if (r <= 0)
        return r;

    if (v[1] && !config_yaml_bool(v[1], &si->entrypoint))
        config_diag(l, v[1], "'entrypoint' must be true or false, got %s", DESCRIBE(v[1]));
    if (v[0]) {
        r = config_yaml_map(l, v[0], "'csis'", &csis, &n_csis);
        if (r < 0)
            return r;
        if (r > 0 && n_csis == 0)
            config_diag(l, v[0], "service instance '%s' needs at least one CSI in 'csis'", Q(e->key));
    } else
        config_diag(l, e->key_node, "service instance '%s' needs at least one CSI in 'csis'", Q(e->key));
    if (n_csis == 0)
        return 0;

    si->csis = calloc(n_csis, sizeof(*si->csis));
    if (!si->csis)
        return -ENOMEM;
    for (size_t i = 0; i < n_csis && !l->too_big; i++) {
        si->n_csis++;
        r = csi_parse(l, &csis[i], &si->csis[i]);
        if (r < 0)
            return r;
    }
    return 0;
}

static int su_parse(struct loader *l, const struct map_entry *e, const struct config_layer *defaults,
                    const struct config_layer *sg_layer, unsigned rank, struct config_su *su) {
    enum { SU_NODE, SU_COMPONENT, SU_COMPONENTS, _SU_MAX };
    static const char *const keys[] = {"node", "component", "components", NULL};
    yaml_node_t *k[_SU_MAX], *v[_SU_MAX];
    struct config_layer su_layer;
    char what[QUOTE_MAX + 32];
    int r;

    su->pos = config_yaml_pos(e->key_node);
    su->rank = rank;
    su->name = config_diag_strdup(l, e->key);
    if (!su->name)
        return -ENOMEM;
    (void)config_yaml_name(l, e->key_node, "service unit");
    snprintf(what, sizeof(what), "service unit '%s'", Q(e->key));
    r = config_yaml_fields(l, e->value, what, keys, k, v);
    if (r <= 0)
        return r;

    if (v[SU_NODE]) {
        su->node_pos = config_yaml_pos(v[SU_NODE]);
        const char *s = config_yaml_string(l, v[SU_NODE], "'node'");
        if (s && !(su->node = config_diag_strdup(l, s)))
            return -ENOMEM;
    }

    r = config_inherit_layer(l, v[SU_COMPONENT], "'component'", &su_layer);
    if (r < 0)
        return r;

    if (!v[SU_COMPONENTS]) {
        const struct config_layer *layers[] = {defaults, sg_layer, &su_layer};
        su->components = calloc(1, sizeof(*su->components));
        if (!su->components)
            return -ENOMEM;
        su->n_components = 1;
        return config_inherit_component(l, layers, ELEMENTSOF(layers), su->name, su->pos, &su->components[0]);
    }

    _cleanup_free_ struct map_entry *comps = NULL;
    size_t n_comps;
    r = config_yaml_map(l, v[SU_COMPONENTS], "'components'", &comps, &n_comps);
    if (r < 0)
        return r;
    if (r > 0 && n_comps == 0)
        config_diag(l, v[SU_COMPONENTS],
                    "'components' must not be empty (leave it out for one component named after the "
                    "service unit)");
    if (n_comps == 0)
        return 0;

    su->components = calloc(n_comps, sizeof(*su->components));
    if (!su->components)
        return -ENOMEM;
    for (size_t i = 0; i < n_comps && !l->too_big; i++) {
        _cleanup_free_ char *qualified = NULL;
        struct config_layer own;

        (void)config_yaml_name(l, comps[i].key_node, "component");
        if (asprintf(&qualified, "%s/%s", su->name, comps[i].key) < 0) {
            qualified = NULL;
            return -ENOMEM;
        }
        if (strlen(qualified) > CONFIG_NAME_MAX)
            config_diag(l, comps[i].key_node, "component name '%s' is longer than %d characters", Q(qualified),
                        CONFIG_NAME_MAX);
        snprintf(what, sizeof(what), "component '%s'", Q(qualified));
        r = config_inherit_layer(l, comps[i].value, what, &own);
        if (r < 0)
            return r;
        const struct config_layer *layers[] = {defaults, sg_layer, &su_layer, &own};
        su->n_components++;
        r = config_inherit_component(l, layers, ELEMENTSOF(layers), qualified, config_yaml_pos(comps[i].key_node),
                                     &su->components[i]);
        if (r < 0)
            return r;
    }
    return 0;
}

static const char *const config_redundancy_table[] = {
    [CONFIG_REDUNDANCY_2N] = "2N",
};
DEFINE_PRIVATE_STRING_TABLE_LOOKUP(config_redundancy, enum config_redundancy);

static void redundancy_parse(struct loader *l, yaml_node_t *n, struct config_sg *sg) {
    /* Models of the AMF specification halo does not implement (yet), told apart from typos. */
    static const char *const later[] = {"N+M",          "NWay",         "N-Way",        "NWayActive",
                                        "N-Way-Active", "NoRedundancy", "No-Redundancy"};
    const char *s = config_yaml_scalar(l, n, "'redundancy'");

    if (!s)
        return;
    int r = config_redundancy_from_string(s);
    if (r >= 0) {
        sg->redundancy = r;
        return;
    }
    for (size_t i = 0; i < ELEMENTSOF(later); i++)
        if (strcasecmp(s, later[i]) == 0) {
            config_diag(l, n, "redundancy model '%s' is not supported yet (supported: 2N)", Q(s));
            return;
        }
    config_diag(l, n, "unknown redundancy model '%s' (supported: 2N)", Q(s));
}

int config_parse_sg(struct loader *l, const struct map_entry *e, const struct config_layer *defaults,
                    struct config_sg *sg) {
    enum { SG_REDUNDANCY, SG_AUTO_FAILBACK, SG_COMPONENT, SG_SUS, SG_SIS, SG_CDB_ROLES, _SG_MAX };
    static const char *const keys[] = {"redundancy",        "auto-failback", "component", "service-units",
                                       "service-instances", "cdb-roles",     NULL};
    yaml_node_t *k[_SG_MAX], *v[_SG_MAX];
    _cleanup_free_ struct map_entry *sus = NULL, *sis = NULL;
    size_t n_sus = 0, n_sis = 0;
    struct config_layer sg_layer;
    char what[QUOTE_MAX + 32];
    int r;

    sg->pos = config_yaml_pos(e->key_node);
    sg->redundancy = CONFIG_REDUNDANCY_2N;
    sg->name = config_diag_strdup(l, e->key);
    if (!sg->name)
        return -ENOMEM;
    (void)config_yaml_name(l, e->key_node, "service group");
    snprintf(what, sizeof(what), "service group '%s'", Q(e->key));
    r = config_yaml_fields(l, e->value, what, keys, k, v);
    if (r <= 0)
        return r;

    if (v[SG_REDUNDANCY])
        redundancy_parse(l, v[SG_REDUNDANCY], sg);
    if (v[SG_AUTO_FAILBACK] && !config_yaml_bool(v[SG_AUTO_FAILBACK], &sg->auto_failback))
        config_diag(l, v[SG_AUTO_FAILBACK], "'auto-failback' must be true or false, got %s",
                    DESCRIBE(v[SG_AUTO_FAILBACK]));
    if (v[SG_CDB_ROLES]) {
        sg->cdb_roles_pos = config_yaml_pos(v[SG_CDB_ROLES]);
        if (!config_yaml_bool(v[SG_CDB_ROLES], &sg->cdb_roles))
            config_diag(l, v[SG_CDB_ROLES], "'cdb-roles' must be true or false, got %s", DESCRIBE(v[SG_CDB_ROLES]));
    }
    r = config_inherit_layer(l, v[SG_COMPONENT], "'component'", &sg_layer);
    if (r < 0)
        return r;

    if (v[SG_SUS]) {
        r = config_yaml_map(l, v[SG_SUS], "'service-units'", &sus, &n_sus);
        if (r < 0)
            return r;
        if (r > 0 && n_sus == 0)
            config_diag(l, v[SG_SUS], "service group '%s' needs at least one service unit in 'service-units'",
                        Q(e->key));
    } else
        config_diag(l, e->key_node, "service group '%s' needs at least one service unit in 'service-units'", Q(e->key));
    if (n_sus > 0) {
        sg->sus = calloc(n_sus, sizeof(*sg->sus));
        if (!sg->sus)
            return -ENOMEM;
        for (size_t i = 0; i < n_sus && !l->too_big; i++) {
            sg->n_sus++;
            r = su_parse(l, &sus[i], defaults, &sg_layer, (unsigned)i, &sg->sus[i]);
            if (r < 0)
                return r;
        }
    }

    if (v[SG_SIS]) {
        r = config_yaml_map(l, v[SG_SIS], "'service-instances'", &sis, &n_sis);
        if (r < 0)
            return r;
        if (r > 0 && n_sis == 0)
            config_diag(l, v[SG_SIS], "service group '%s' needs at least one service instance in 'service-instances'",
                        Q(e->key));
    } else
        config_diag(l, e->key_node, "service group '%s' needs at least one service instance in 'service-instances'",
                    Q(e->key));
    if (n_sis > 0) {
        sg->sis = calloc(n_sis, sizeof(*sg->sis));
        if (!sg->sis)
            return -ENOMEM;
        for (size_t i = 0; i < n_sis && !l->too_big; i++) {
            sg->n_sis++;
            r = si_parse(l, &sis[i], &sg->sis[i]);
            if (r < 0)
                return r;
        }
    }
    return 0;
}
