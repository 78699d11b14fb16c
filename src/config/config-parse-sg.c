/* SPDX-License-Identifier: MIT */
/* One service group: its redundancy model, its service units with their components, its service instances and CSIs. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "cdb-path.h"
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

/* A non-negative integer key; false (problem recorded) for anything else. */
static bool uint_parse(struct loader *l, yaml_node_t *v, const char *key, unsigned *ret, struct config_pos *ret_pos) {
    if (!v)
        return true;
    if (ret_pos)
        *ret_pos = config_yaml_pos(v);
    if (config_yaml_uint(v, ret))
        return true;
    config_diag(l, v, "'%s' must be a non-negative integer (without quotes), got %s", key, DESCRIBE(v));
    return false;
}

/* A positive integer key (0 means "not given" to the models). */
static void count_parse(struct loader *l, yaml_node_t *v, const char *key, unsigned *ret, struct config_pos *ret_pos) {
    if (uint_parse(l, v, key, ret, ret_pos) && v && *ret == 0)
        config_diag(l, v, "'%s' must be at least 1", key);
}

static int si_parse(struct loader *l, const struct map_entry *e, unsigned position, struct config_si *si) {
    enum { SI_CSIS, SI_ENTRYPOINT, SI_RANK, SI_ACTIVE, SI_STANDBY, SI_DEPENDS_ON, _SI_MAX };
    static const char *const keys[] = {"csis",       "entrypoint", "rank", "active-assignments", "standby-assignments",
                                       "depends-on", NULL};
    yaml_node_t *k[_SI_MAX], *v[_SI_MAX];
    _cleanup_free_ struct map_entry *csis = NULL;
    size_t n_csis = 0;
    char what[QUOTE_MAX + 32];

    si->pos = config_yaml_pos(e->key_node);
    si->rank = position;
    si->name = config_diag_strdup(l, e->key);
    if (!si->name)
        return -ENOMEM;
    (void)config_yaml_name(l, e->key_node, "service instance");
    snprintf(what, sizeof(what), "service instance '%s'", Q(e->key));
    int r = config_yaml_fields(l, e->value, what, keys, k, v);
    if (r <= 0)
        return r;

    if (v[SI_ENTRYPOINT] && !config_yaml_bool(v[SI_ENTRYPOINT], &si->entrypoint))
        config_diag(l, v[SI_ENTRYPOINT], "'entrypoint' must be true or false, got %s", DESCRIBE(v[SI_ENTRYPOINT]));
    (void)uint_parse(l, v[SI_RANK], "rank", &si->rank, NULL);
    count_parse(l, v[SI_ACTIVE], "active-assignments", &si->active_assignments, &si->active_assignments_pos);
    count_parse(l, v[SI_STANDBY], "standby-assignments", &si->standby_assignments, &si->standby_assignments_pos);
    if (v[SI_DEPENDS_ON]) {
        yaml_node_item_t *items;
        size_t n_items;
        si->depends_on_pos = config_yaml_pos(v[SI_DEPENDS_ON]);
        if (config_yaml_seq(l, v[SI_DEPENDS_ON], "'depends-on'", &items, &n_items)) {
            for (size_t i = 0; i < n_items; i++)
                (void)config_yaml_name(l, yaml_document_get_node(l->doc, items[i]), "service instance");
            r = config_yaml_strv(l, v[SI_DEPENDS_ON], &si->depends_on, &si->n_depends_on);
            if (r < 0)
                return r;
        }
    }
    if (v[SI_CSIS]) {
        r = config_yaml_map(l, v[SI_CSIS], "'csis'", &csis, &n_csis);
        if (r < 0)
            return r;
        if (r > 0 && n_csis == 0)
            config_diag(l, v[SI_CSIS], "service instance '%s' needs at least one CSI in 'csis'", Q(e->key));
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

static const char *const config_redundancy_table[_CONFIG_REDUNDANCY_MAX] = {
    [CONFIG_REDUNDANCY_2N] = "2N",
    [CONFIG_REDUNDANCY_N_PLUS_M] = "N+M",
    [CONFIG_REDUNDANCY_N_WAY] = "N-way",
    [CONFIG_REDUNDANCY_N_WAY_ACTIVE] = "N-way-active",
    [CONFIG_REDUNDANCY_NO_REDUNDANCY] = "no-redundancy",
};
DEFINE_STRING_TABLE_TO_STRING(config_redundancy, enum config_redundancy);

/* The canonical spellings, the SA Forum's (NWayActive, NoRedundancy, ...) and
 * any case: compared without case, '-', '_' and spaces. */
static void redundancy_parse(struct loader *l, yaml_node_t *n, struct config_sg *sg) {
    const char *s = config_yaml_scalar(l, n, "'redundancy'");
    char folded[32];
    size_t k = 0;

    if (!s)
        return;
    sg->redundancy_pos = config_yaml_pos(n);
    for (const char *p = s; *p && k < sizeof(folded) - 1; p++)
        if (*p != '-' && *p != '_' && *p != ' ')
            folded[k++] = *p;
    folded[k] = 0;
    for (size_t i = 0; i < _CONFIG_REDUNDANCY_MAX; i++) {
        char canon[32];
        size_t c = 0;
        for (const char *p = config_redundancy_table[i]; *p; p++)
            if (*p != '-')
                canon[c++] = *p;
        canon[c] = 0;
        if (strcasecmp(folded, canon) == 0) {
            sg->redundancy = i;
            return;
        }
    }
    config_diag(l, n, "unknown redundancy model '%s' (supported: 2N, N+M, N-way, N-way-active, no-redundancy)", Q(s));
}

int config_parse_sg(struct loader *l, const struct map_entry *e, const struct config_layer *defaults,
                    struct config_sg *sg) {
    enum {
        SG_REDUNDANCY,
        SG_AUTO_FAILBACK,
        SG_COMPONENT,
        SG_SUS,
        SG_SIS,
        SG_CDB_ROLES,
        SG_ACTIVE_SUS,
        SG_STANDBY_SUS,
        SG_MAX_ACTIVE,
        SG_MAX_STANDBY,
        SG_AUTO_ADJUST,
        SG_AUTO_ADJUST_PROBATION,
        SG_ESCALATION,
        SG_CDB_SUBTREE,
        _SG_MAX
    };
    static const char *const keys[] = {"redundancy",
                                       "auto-failback",
                                       "component",
                                       "service-units",
                                       "service-instances",
                                       "cdb-roles",
                                       "active-sus",
                                       "standby-sus",
                                       "max-active-sis-per-su",
                                       "max-standby-sis-per-su",
                                       "auto-adjust",
                                       "auto-adjust-probation",
                                       "escalation",
                                       "cdb-subtree",
                                       NULL};
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
    count_parse(l, v[SG_ACTIVE_SUS], "active-sus", &sg->active_sus, &sg->active_sus_pos);
    count_parse(l, v[SG_STANDBY_SUS], "standby-sus", &sg->standby_sus, &sg->standby_sus_pos);
    count_parse(l, v[SG_MAX_ACTIVE], "max-active-sis-per-su", &sg->max_active_sis_per_su, &sg->max_active_pos);
    count_parse(l, v[SG_MAX_STANDBY], "max-standby-sis-per-su", &sg->max_standby_sis_per_su, &sg->max_standby_pos);
    config_sg_escalation_parse(l, v[SG_ESCALATION], sg);
    /* auto-failback is the old name of auto-adjust (kept, deprecated). */
    if (v[SG_AUTO_FAILBACK] && v[SG_AUTO_ADJUST])
        config_diag(l, v[SG_AUTO_FAILBACK], "'auto-failback' is the old name of 'auto-adjust': give one of them");
    int adjust = v[SG_AUTO_ADJUST] ? SG_AUTO_ADJUST : SG_AUTO_FAILBACK;
    if (v[adjust] && !config_yaml_bool(v[adjust], &sg->auto_failback))
        config_diag(l, v[adjust], "'%s' must be true or false, got %s", keys[adjust], DESCRIBE(v[adjust]));
    sg->auto_adjust_probation = 10 * USEC_PER_SEC;
    if (v[SG_AUTO_ADJUST_PROBATION] && !config_yaml_duration(v[SG_AUTO_ADJUST_PROBATION], &sg->auto_adjust_probation))
        config_diag(l, v[SG_AUTO_ADJUST_PROBATION], "'auto-adjust-probation' must be a duration (like 10s), got %s",
                    DESCRIBE(v[SG_AUTO_ADJUST_PROBATION]));
    if (v[SG_CDB_ROLES]) {
        sg->cdb_roles_pos = config_yaml_pos(v[SG_CDB_ROLES]);
        if (!config_yaml_bool(v[SG_CDB_ROLES], &sg->cdb_roles))
            config_diag(l, v[SG_CDB_ROLES], "'cdb-roles' must be true or false, got %s", DESCRIBE(v[SG_CDB_ROLES]));
    }
    if (v[SG_CDB_SUBTREE]) {
        const char *p = config_yaml_scalar(l, v[SG_CDB_SUBTREE], "'cdb-subtree'");
        sg->cdb_subtree_pos = config_yaml_pos(v[SG_CDB_SUBTREE]);
        if (p && cdb_path_check(p, CONFIG_CDB_SUBTREE_MAX, false) < 0)
            config_diag(l, v[SG_CDB_SUBTREE],
                        "'cdb-subtree' must be a path of the configuration database other than / (like /billing: a "
                        "'/' before each part, no empty part, at most %d bytes), got %s",
                        CONFIG_CDB_SUBTREE_MAX, DESCRIBE(v[SG_CDB_SUBTREE]));
        else if (p && !(sg->cdb_subtree = config_diag_strdup(l, p)))
            return -ENOMEM;
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
            r = si_parse(l, &sis[i], (unsigned)i, &sg->sis[i]);
            if (r < 0)
                return r;
        }
    }
    /* N+M: M defaults to 1 and N to the other units (config-models.c checks the sum). */
    if (sg->redundancy == CONFIG_REDUNDANCY_N_PLUS_M) {
        if (!sg->standby_sus)
            sg->standby_sus = 1;
        if (!sg->active_sus && sg->n_sus > sg->standby_sus)
            sg->active_sus = (unsigned)(sg->n_sus - sg->standby_sus);
    }
    return 0;
}
