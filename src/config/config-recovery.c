/* SPDX-License-Identifier: MIT */
/* The recovery keys: a component's `recovery`, an SG's `escalation` and a node's `su-failover`. */
#include <stdio.h>

#include "config-internal.h"
#include "string-table.h"

static const char *const config_recovery_table[_CONFIG_RECOVERY_MAX] = {
    [CONFIG_RECOVERY_COMPONENT_RESTART] = "component-restart",
    [CONFIG_RECOVERY_COMPONENT_FAILOVER] = "component-failover",
    [CONFIG_RECOVERY_NODE_SWITCHOVER] = "node-switchover",
    [CONFIG_RECOVERY_NODE_FAILOVER] = "node-failover",
    [CONFIG_RECOVERY_NODE_FAILFAST] = "node-failfast",
};
DEFINE_STRING_TABLE_TO_STRING(config_recovery, enum config_recovery);

bool config_recovery_parse(struct loader *l, yaml_node_t *v, enum config_recovery *ret) {
    const char *s = config_yaml_scalar(l, v, "'recovery'");
    if (!s)
        return false;
    ssize_t i = string_table_lookup(config_recovery_table, _CONFIG_RECOVERY_MAX, s);
    if (i >= 0) {
        *ret = (enum config_recovery)i;
        return true;
    }
    config_diag(l, v,
                "'recovery' must be component-restart, component-failover, node-switchover, node-failover or "
                "node-failfast, got %s",
                DESCRIBE(v));
    return false;
}

/* {max: N, probation: DURATION} of key, over the defaults already in *e. */
void config_escalation_parse(struct loader *l, yaml_node_t *n, const char *key, struct config_escalation *e) {
    static const char *const keys[] = {"max", "probation", NULL};
    yaml_node_t *k[2], *v[2];
    char what[64];

    snprintf(what, sizeof(what), "'%s'", key);
    if (config_yaml_fields(l, n, what, keys, k, v) <= 0)
        return;
    e->given = true;
    if (v[0] && !config_yaml_uint(v[0], &e->max))
        config_diag(l, v[0], "'max' must be a non-negative integer (without quotes), got %s", DESCRIBE(v[0]));
    if (v[1] && !config_yaml_duration(v[1], &e->probation))
        config_diag(l, v[1], "'probation' must be a duration such as 500ms, 2s or 1m, got %s", DESCRIBE(v[1]));
    else if (v[1] && e->probation == 0)
        config_diag(l, v[1], "'probation' must be longer than 0");
}

void config_sg_escalation_parse(struct loader *l, yaml_node_t *n, struct config_sg *sg) {
    static const char *const keys[] = {"component-restart", "su-restart", NULL};
    yaml_node_t *k[2], *v[2] = {NULL, NULL};

    sg->comp_restart = (struct config_escalation){.max = 0, .probation = CONFIG_PROBATION_DEFAULT};
    sg->su_restart = sg->comp_restart;
    if (!n || config_yaml_fields(l, n, "'escalation'", keys, k, v) <= 0)
        return;
    if (v[0])
        config_escalation_parse(l, v[0], "component-restart", &sg->comp_restart);
    if (v[1])
        config_escalation_parse(l, v[1], "su-restart", &sg->su_restart);
}
