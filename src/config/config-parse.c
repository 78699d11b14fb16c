/* SPDX-License-Identifier: MIT */
/* The description's top level: cluster, nodes, cdb, pools, log-streams (config-logs.c), defaults, and the list
 * of service groups. */
#include <arpa/inet.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "config-internal.h"
#include "parse-util.h"

/* "1.2.3.4:5" or "[::1]:5": a numeric address and a port other than 0. */
static bool address_is_valid(const char *s) {
    char host[INET6_ADDRSTRLEN];
    unsigned char buf[sizeof(struct in6_addr)];
    uint16_t port;

    if (parse_host_port(s, host, sizeof(host), &port) < 0 || port == 0)
        return false;
    /* parse_host_port() removed the brackets, which only an IPv6 address has. */
    return inet_pton(s[0] == '[' ? AF_INET6 : AF_INET, host, buf) == 1;
}

/* failfast: halt | reboot | {command: [COMMAND, ARGS...]}.  0 or -ENOMEM; problems are recorded. */
static int failfast_parse(struct loader *l, yaml_node_t *n, struct config_node *node) {
    static const char *const keys[] = {"command", NULL};
    static const char usage[] = "'failfast' must be halt, reboot or {command: [COMMAND, ARGS...]}";
    yaml_node_t *k[1], *v[1];
    yaml_node_item_t *items;
    size_t n_items;

    if (n->type == YAML_SCALAR_NODE) {
        const char *s = (const char *)n->data.scalar.value;
        if (streq(s, "halt"))
            node->failfast = CONFIG_FAILFAST_HALT;
        else if (streq(s, "reboot"))
            node->failfast = CONFIG_FAILFAST_REBOOT;
        else
            config_diag(l, n, "%s, got %s", usage, DESCRIBE(n));
        return 0;
    }
    if (n->type != YAML_MAPPING_NODE) {
        config_diag(l, n, "%s, got %s", usage, DESCRIBE(n));
        return 0;
    }
    int r = config_yaml_fields(l, n, "'failfast'", keys, k, v);
    if (r <= 0)
        return r;
    if (!v[0]) {
        config_diag(l, n, "%s: 'command' is missing", usage);
        return 0;
    }
    if (!config_yaml_seq(l, v[0], "failfast 'command'", &items, &n_items))
        return 0;
    if (n_items == 0) {
        config_diag(l, v[0], "failfast 'command' must name a command: [COMMAND, ARGS...]");
        return 0;
    }
    for (size_t i = 0; i < n_items; i++) {
        yaml_node_t *item = config_yaml_node(l, items[i]);
        if (!item || !config_yaml_scalar(l, item, "each item of failfast 'command'"))
            return 0;
    }
    r = config_command_list(l, v[0], "failfast", &node->failfast_command, &node->n_failfast_command);
    if (r >= 0 && node->failfast_command)
        node->failfast = CONFIG_FAILFAST_COMMAND;
    return r;
}

static int nodes_parse(struct loader *l, yaml_node_t *n, struct config *c) {
    _cleanup_free_ struct map_entry *e = NULL;
    size_t n_e = 0;

    if (!n) {
        c->nodes = calloc(1, sizeof(*c->nodes));
        if (!c->nodes || !(c->nodes[0].name = strdup("local")))
            return -ENOMEM;
        c->n_nodes = 1;
        return 0;
    }
    int r = config_yaml_map(l, n, "'nodes'", &e, &n_e);
    if (r < 0)
        return r;
    if (r > 0 && n_e == 0)
        config_diag(l, n, "'nodes' must name at least one node (leave it out for one node named 'local')");
    if (n_e == 0)
        return 0;

    c->nodes = calloc(n_e, sizeof(*c->nodes));
    if (!c->nodes)
        return -ENOMEM;
    for (size_t i = 0; i < n_e; i++) {
        yaml_node_t *k[3], *v[3] = {NULL, NULL, NULL};
        char what[QUOTE_MAX + 16];
        static const char *const keys[] = {"cdb-address", "su-failover", "failfast", NULL};

        (void)config_yaml_name(l, e[i].key_node, "node");
        c->nodes[i].pos = config_yaml_pos(e[i].key_node);
        c->nodes[i].name = config_diag_strdup(l, e[i].key);
        if (!c->nodes[i].name)
            return -ENOMEM;
        c->n_nodes++;
        snprintf(what, sizeof(what), "node '%s'", Q(e[i].key));
        r = config_yaml_fields(l, e[i].value, what, keys, k, v);
        if (r < 0)
            return r;
        c->nodes[i].su_failover.probation = CONFIG_PROBATION_DEFAULT;
        if (v[1])
            config_escalation_parse(l, v[1], "su-failover", &c->nodes[i].su_failover);
        if (v[2] && (r = failfast_parse(l, v[2], &c->nodes[i])) < 0)
            return r;
        if (v[0]) {
            const char *a = config_yaml_string(l, v[0], "'cdb-address'");
            if (a && !address_is_valid(a))
                config_diag(l, v[0],
                            "'cdb-address' must be a numeric ADDR:PORT such as 10.0.0.1:4570 or [fd00::1]:4570, got %s",
                            DESCRIBE(v[0]));
            else if (a && !(c->nodes[i].cdb_address = config_diag_strdup(l, a)))
                return -ENOMEM;
        }
    }
    return 0;
}

/* cdb: {replication: sync|async, tick: DURATION, dead-after: DURATION, token-file: PATH} */
static void cdb_parse(struct loader *l, yaml_node_t *n, struct config_cdb *cdb) {
    enum { CDB_REPLICATION, CDB_TICK, CDB_DEAD_AFTER, CDB_TOKEN_FILE, _CDB_MAX };
    static const char *const keys[] = {"replication", "tick", "dead-after", "token-file", NULL};
    yaml_node_t *k[_CDB_MAX], *v[_CDB_MAX];

    cdb->tick = 500 * USEC_PER_MSEC;
    cdb->dead_after = 2 * USEC_PER_SEC;
    if (!n || config_yaml_fields(l, n, "'cdb'", keys, k, v) <= 0)
        return;
    if (v[CDB_REPLICATION]) {
        const char *s =
            v[CDB_REPLICATION]->type == YAML_SCALAR_NODE ? (const char *)v[CDB_REPLICATION]->data.scalar.value : "";
        if (streq(s, "async"))
            cdb->async = true;
        else if (!streq(s, "sync"))
            config_diag(l, v[CDB_REPLICATION], "'replication' must be sync or async, got %s",
                        DESCRIBE(v[CDB_REPLICATION]));
    }
    if (v[CDB_TICK] && (!config_yaml_duration(v[CDB_TICK], &cdb->tick) || cdb->tick < 10 * USEC_PER_MSEC))
        config_diag(l, v[CDB_TICK], "'tick' must be a duration of at least 10ms, such as 500ms, got %s",
                    DESCRIBE(v[CDB_TICK]));
    if (v[CDB_TOKEN_FILE]) {
        const char *f = config_yaml_string(l, v[CDB_TOKEN_FILE], "'token-file'");
        if (f && !(cdb->token_file = config_diag_strdup(l, f)))
            l->oom = true;
        else if (f && config_token_read(l, v[CDB_TOKEN_FILE], f, &cdb->token) == -ENOMEM)
            l->oom = true;
    }
    if (v[CDB_DEAD_AFTER] &&
        (!config_yaml_duration(v[CDB_DEAD_AFTER], &cdb->dead_after) || cdb->dead_after < 2 * cdb->tick))
        config_diag(l, v[CDB_DEAD_AFTER], "'dead-after' must be a duration of at least twice 'tick', got %s",
                    DESCRIBE(v[CDB_DEAD_AFTER]));
}

/* pools: {NAME: {processes: [COMPONENT, ...], tolerate: N, participants: list|report}} */
static int pools_parse(struct loader *l, yaml_node_t *n, struct config *c) {
    enum { POOL_PROCESSES, POOL_TOLERATE, POOL_PARTICIPANTS, _POOL_MAX };
    static const char *const keys[] = {"processes", "tolerate", "participants", NULL};
    _cleanup_free_ struct map_entry *e = NULL;
    size_t n_e = 0;

    if (!n)
        return 0;
    int r = config_yaml_map(l, n, "'pools'", &e, &n_e);
    if (r <= 0 || n_e == 0)
        return r < 0 ? r : 0;
    c->pools = calloc(n_e, sizeof(*c->pools));
    if (!c->pools)
        return -ENOMEM;
    for (size_t i = 0; i < n_e; i++) {
        struct config_pool *pool = &c->pools[c->n_pools++];
        yaml_node_t *k[_POOL_MAX], *v[_POOL_MAX] = {NULL};
        char what[QUOTE_MAX + 16];

        (void)config_yaml_name(l, e[i].key_node, "pool");
        pool->pos = config_yaml_pos(e[i].key_node);
        pool->name = config_diag_strdup(l, e[i].key);
        if (!pool->name)
            return -ENOMEM;
        pool->tolerate = 1;
        snprintf(what, sizeof(what), "pool '%s'", Q(e[i].key));
        r = config_yaml_fields(l, e[i].value, what, keys, k, v);
        if (r < 0)
            return r;
        if (r == 0)
            continue;
        if (!v[POOL_PROCESSES])
            config_diag(l, e[i].value, "pool '%s' has no 'processes'", Q(e[i].key));
        else {
            yaml_node_item_t *items;
            size_t n_items;
            bool ok = config_yaml_seq(l, v[POOL_PROCESSES], "'processes'", &items, &n_items);
            for (size_t j = 0; ok && j < n_items; j++) {
                yaml_node_t *item = config_yaml_node(l, items[j]);
                if (!item || !config_yaml_scalar(l, item, "each item of 'processes'"))
                    ok = false;
            }
            if (ok && n_items == 0)
                config_diag(l, v[POOL_PROCESSES], "pool '%s' has no processes", Q(e[i].key));
            else if (ok && n_items > CONFIG_POOL_PROCESSES_MAX)
                config_diag(l, v[POOL_PROCESSES], "pool '%s' has %zu processes; at most %d are allowed", Q(e[i].key),
                            n_items, CONFIG_POOL_PROCESSES_MAX);
            else if (ok) {
                r = config_yaml_strv(l, v[POOL_PROCESSES], &pool->processes, &pool->n_processes);
                if (r < 0)
                    return r;
            }
        }
        if (v[POOL_TOLERATE] && !config_yaml_uint(v[POOL_TOLERATE], &pool->tolerate) && !(pool->tolerate = 0))
            config_diag(l, v[POOL_TOLERATE], "'tolerate' must be a non-negative integer (without quotes), got %s",
                        DESCRIBE(v[POOL_TOLERATE]));
        if (v[POOL_PARTICIPANTS]) {
            const char *s = v[POOL_PARTICIPANTS]->type == YAML_SCALAR_NODE
                                ? (const char *)v[POOL_PARTICIPANTS]->data.scalar.value
                                : "";
            if (streq(s, "report"))
                pool->report = true;
            else if (!streq(s, "list"))
                config_diag(l, v[POOL_PARTICIPANTS], "'participants' must be list or report, got %s",
                            DESCRIBE(v[POOL_PARTICIPANTS]));
        }
    }
    return 0;
}

int config_parse(struct loader *l, yaml_node_t *root, struct config *c) {
    enum { TOP_CLUSTER, TOP_NODES, TOP_DEFAULTS, TOP_SGS, TOP_CDB, TOP_POOLS, TOP_LOG_STREAMS, _TOP_MAX };
    static const char *const keys[] = {"cluster", "nodes", "defaults",    "service-groups",
                                       "cdb",     "pools", "log-streams", NULL};
    static const char *const defaults_keys[] = {"component", NULL};
    yaml_node_t *k[_TOP_MAX], *v[_TOP_MAX], *dk[1], *dv[1] = {NULL};
    _cleanup_free_ struct map_entry *sgs = NULL;
    size_t n_sgs = 0;
    struct config_layer defaults;
    int r;

    r = config_yaml_fields(l, root, "the description", keys, k, v);
    if (r <= 0)
        return r;

    const char *cluster = "halo";
    if (v[TOP_CLUSTER]) {
        const char *s = config_yaml_name(l, v[TOP_CLUSTER], "cluster");
        if (s)
            cluster = s;
    }
    c->cluster = config_diag_strdup(l, cluster);
    if (!c->cluster)
        return -ENOMEM;

    r = nodes_parse(l, v[TOP_NODES], c);
    if (r < 0)
        return r;
    cdb_parse(l, v[TOP_CDB], &c->cdb);
    r = pools_parse(l, v[TOP_POOLS], c);
    if (r >= 0)
        r = config_parse_log_streams(l, v[TOP_LOG_STREAMS], c);
    if (r < 0)
        return r;

    if (v[TOP_DEFAULTS]) {
        r = config_yaml_fields(l, v[TOP_DEFAULTS], "'defaults'", defaults_keys, dk, dv);
        if (r < 0)
            return r;
    }
    r = config_inherit_layer(l, dv[0], "'component'", &defaults);
    if (r < 0)
        return r;

    if (v[TOP_SGS]) {
        r = config_yaml_map(l, v[TOP_SGS], "'service-groups'", &sgs, &n_sgs);
        if (r < 0)
            return r;
        /* An empty map is allowed: a node that only serves the configuration database. */
    } else
        config_diag(l, root,
                    "the description has no 'service-groups' (write 'service-groups: {}' for a node that only serves "
                    "the configuration database)");
    if (n_sgs == 0)
        return 0;

    c->sgs = calloc(n_sgs, sizeof(*c->sgs));
    if (!c->sgs)
        return -ENOMEM;
    for (size_t i = 0; i < n_sgs && !l->too_big; i++) {
        c->n_sgs++;
        r = config_parse_sg(l, &sgs[i], &defaults, &c->sgs[i]);
        if (r < 0)
            return r;
    }
    return 0;
}
