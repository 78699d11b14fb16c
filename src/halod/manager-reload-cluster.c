/* SPDX-License-Identifier: MIT */
/*
 * What a reload does with the description's `nodes`, `pools` and `cdb` sections (manager-reload.c
 * asks for each change under them).  Live: a node added (the running halods count it as soon as its
 * halod joins: membership and the coordinator come from the store, status and the locks and events
 * that name a node from the running description), a node removed once no unit of the running
 * description is on it and its halod is gone, a node's su-failover and failfast (read when they
 * act), another node's cdb-address while no group has cdb-roles; a pool's tolerate and
 * participants while no recovery of it is under way; the cdb section's replication, tick and
 * dead-after when a node still running the old ones cannot take this one for dead, nor be taken for
 * dead.  Everything else is refused with its reason.
 */
#define LOG_AREA LOG_AREA_MAIN
#include <errno.h>
#include <stdio.h>
#include <string.h>

#include "log.h"
#include "macro.h"
#include "manager-internal.h"

enum section { SECTION_NONE, SECTION_NODES, SECTION_POOLS, SECTION_CDB };

/* The section ch is under, and the rest of its key after "SECTION." ("" for the section itself). */
static enum section section_of(const struct config_change *ch, const char **ret_rest) {
    static const struct {
        const char *name;
        enum section s;
    } table[] = {{"nodes", SECTION_NODES}, {"pools", SECTION_POOLS}, {"cdb", SECTION_CDB}};
    for (size_t i = 0; i < ELEMENTSOF(table); i++) {
        size_t n = strlen(table[i].name);
        if (strncmp(ch->key, table[i].name, n) == 0 && (ch->key[n] == '\0' || ch->key[n] == '.')) {
            *ret_rest = ch->key + n + (ch->key[n] == '.');
            return table[i].s;
        }
    }
    return SECTION_NONE;
}

/* Whether rest ("NAME" or "NAME.KEY...") names name; then *ret_key is KEY... ("" for the item itself). */
static bool names(const char *rest, const char *name, const char **ret_key) {
    size_t n = strlen(name);
    if (strncmp(rest, name, n) != 0 || (rest[n] != '\0' && rest[n] != '.'))
        return false;
    *ret_key = rest + n + (rest[n] == '.');
    return true;
}

static const struct config_pool *find_pool(const struct config *c, const char *name) {
    for (size_t i = 0; i < c->n_pools; i++)
        if (streq(c->pools[i].name, name))
            return &c->pools[i];
    return NULL;
}

/* The node (or pool) of either description that rest names (the longest name: a name may hold dots),
 * and its key. */
static const char *item_named(const struct config *old, const struct config *new, bool pools, const char *rest,
                              const char **ret_key) {
    const char *best = NULL;
    const struct config *both[] = {old, new};
    for (size_t c = 0; c < ELEMENTSOF(both); c++)
        for (size_t i = 0; i < (pools ? both[c]->n_pools : both[c]->n_nodes); i++) {
            const char *key, *name = pools ? both[c]->pools[i].name : both[c]->nodes[i].name;
            if (names(rest, name, &key) && (!best || strlen(name) > strlen(best))) {
                best = name;
                *ret_key = key;
            }
        }
    return best;
}

static bool any_cdb_roles(const struct config *c) {
    for (size_t g = 0; g < c->n_sgs; g++)
        if (c->sgs[g].cdb_roles)
            return true;
    return false;
}

/* Why node name, removed, cannot be now, or NULL: the running description's units on it are listed in buf. */
static const char *node_removal_refusal(struct manager *m, const char *name, char *buf, size_t size) {
    if (streq(name, m->node))
        return "it is this node (stop this halod instead)";
    size_t n = (size_t)snprintf(buf, size, "its service units (");
    bool units = false;
    for (size_t g = 0; g < m->config->n_sgs; g++)
        for (size_t u = 0; u < m->config->sgs[g].n_sus; u++) {
            const struct config_su *su = &m->config->sgs[g].sus[u];
            if (!streq(su->node, name) || n >= size)
                continue;
            n += (size_t)snprintf(buf + n, size - n, "%s%s", units ? ", " : "", su->name);
            units = true;
        }
    if (units) {
        snprintf(buf + MIN(n, size - 1), size - MIN(n, size - 1),
                 ") still run there: move or remove its units first, in a reload of their own");
        return buf;
    }
    if (m->sync && cluster_sync_node(m->sync, name) > 0)
        return "its halod is running: stop its halod first, then reload";
    return NULL;
}

/* Why the change of node name's key (under nodes.NAME; "": the node itself) cannot be applied now, or NULL. */
static const char *node_refusal(struct manager *m, const struct config *new, const struct config_change *ch,
                                const char *name, const char *key, char *buf, size_t size) {
    const struct config_node *o = config_find_node(m->config, name), *n = config_find_node(new, name);
    if (!*key && ch->kind != CONFIG_CHANGE_CHANGED)
        return ch->kind == CONFIG_CHANGE_ADDED ? NULL : node_removal_refusal(m, name, buf, size);
    if (!*key) /* its value changed as a whole ("n1:" to "n1: {...}"): as each setting it changes */
        key = o && n && !streq(o->cdb_address ?: "", n->cdb_address ?: "") ? "cdb-address" : "su-failover";
    if (strncmp(key, "su-failover", strlen("su-failover")) == 0 || strncmp(key, "failfast", strlen("failfast")) == 0)
        return NULL; /* read when they act (amf-ladder.c, failfast.c) */
    if (!streq(key, "cdb-address"))
        return "cannot be applied live (restart halod to apply it)";
    if (streq(name, m->node))
        return m->opt.cdb_listen ? NULL /* --cdb-listen: the address is not used */
                                 : "this halod listens for CDB secondaries on the address it started with (restart "
                                   "halod to apply it)";
    /* Another node's address: where this node follows that node's halod as its CDB primary (cdb-roles). */
    return any_cdb_roles(m->config)
               ? "a cdb-roles group follows the CDB primary at its node's cdb-address, and that node's halod listens "
                 "where it started (restart that halod, then reload the others)"
               : NULL;
}

/* Why pool name's tolerate or participants cannot change now, or NULL: while a recovery of the pool is under
 * way (a member TRANSIENT or RECOVERING, on any node, as the published states show), its attempt counts the
 * failures and waits for the participants it started with. */
static const char *pool_busy(struct manager *m, const char *name, char *buf, size_t size) {
    const struct config_pool *pool = find_pool(m->config, name);
    if (!pool || !m->model || !m->queue)
        return "the recovery model was not built (restart halod to apply it)";
    for (size_t i = 0; i < pool->n_processes; i++) {
        const struct rm_process *p = rm_component(m->model, pool->processes[i]);
        int s = p ? queue_state_get(m->queue, p->object) : -ENOENT;
        if (!p || !p->pool)
            return "its processes are not those halod started with (restart halod to apply it)";
        if (s == QUEUE_HA_TRANSIENT || s == QUEUE_HA_RECOVERING) {
            snprintf(buf, size, "a recovery of its pool is under way (process '%s' is %s): reload again later", p->name,
                     queue_ha_state_to_string(s));
            return buf;
        }
    }
    return NULL;
}

static bool same_processes(const struct config_pool *a, const struct config_pool *b) {
    bool same = a && b && a->n_processes == b->n_processes;
    for (size_t i = 0; same && i < a->n_processes; i++)
        same = streq(a->processes[i], b->processes[i]);
    return same;
}

static const char *pool_refusal(struct manager *m, const struct config *new, const struct config_change *ch,
                                const char *name, const char *key, char *buf, size_t size) {
    if (!*key && ch->kind == CONFIG_CHANGE_CHANGED) /* its value changed as a whole: as what it changes */
        key = same_processes(find_pool(m->config, name), find_pool(new, name)) ? "tolerate" : "processes";
    if (!*key)
        return "a pool added or removed: its processes' epochs and failure vectors are set up when halod starts "
               "(restart halod to apply it)";
    if (strncmp(key, "processes", strlen("processes")) == 0)
        return "a pool's processes: its members' failure vectors are kept for the processes halod started with "
               "(restart halod to apply it)";
    if (streq(key, "tolerate") || streq(key, "participants"))
        return pool_busy(m, name, buf, size);
    return "cannot be applied live (restart halod to apply it)";
}

static bool same_text(const char *a, const char *b) {
    return streq(a ?: "", b ?: "");
}

/* Why the cdb section's new tick and dead-after cannot be applied now, or NULL.  A node still running
 * the old ones ticks every old tick and waits the old dead-after: each side must tick at least twice
 * within the other's dead-after (the check a description passes, across the two). */
static const char *cdb_timing_refusal(const struct config_cdb *o, const struct config_cdb *n, char *buf, size_t size) {
    if (2 * n->tick <= o->dead_after && 2 * o->tick <= n->dead_after)
        return NULL;
    snprintf(buf, size,
             "a node still running the old tick (%llu ms) and dead-after (%llu ms) could take this one for dead, or "
             "be taken for dead: change tick and dead-after in two reloads of every node (each keeping dead-after at "
             "least twice the other's tick)",
             (unsigned long long)(o->tick / USEC_PER_MSEC), (unsigned long long)(o->dead_after / USEC_PER_MSEC));
    return buf;
}

static const char *cdb_refusal(struct manager *m, const struct config *new, const char *key, char *buf, size_t size) {
    const struct config_cdb *o = &m->config->cdb, *n = &new->cdb;
    bool token = streq(key, "token-file") ||
                 (!*key && (!same_text(o->token_file, n->token_file) || !same_text(o->token, n->token)));
    if (token)
        return "the nodes' token: the CDB secondaries and control clients authenticated with the old one would be "
               "cut off, and a node still running it could not join this one (restart every halod to apply it)";
    if (!*key || streq(key, "tick") || streq(key, "dead-after"))
        return cdb_timing_refusal(o, n, buf, size);
    return streq(key, "replication") ? NULL : "cannot be applied live (restart halod to apply it)";
}

bool manager_reload_cluster_check(struct manager *m, const struct config *new, const struct config_change *ch,
                                  const char **ret_why, char *buf, size_t size) {
    const char *rest, *key = "", *name;
    switch (section_of(ch, &rest)) {
    case SECTION_NONE:
        return false;
    case SECTION_NODES:
        name = *rest ? item_named(m->config, new, false, rest, &key) : NULL;
        *ret_why = name ? node_refusal(m, new, ch, name, key, buf, size)
                        : "the nodes section added or removed changes which node this halod is (restart halod to "
                          "apply it)";
        return true;
    case SECTION_POOLS:
        name = *rest ? item_named(m->config, new, true, rest, &key) : NULL;
        *ret_why = name ? pool_refusal(m, new, ch, name, key, buf, size)
                        : "the pools section added or removed: the pool processes' epochs and failure vectors are set "
                          "up when halod starts (restart halod to apply it)";
        return true;
    case SECTION_CDB:
        *ret_why = cdb_refusal(m, new, rest, buf, size);
        return true;
    }
    return false;
}

size_t manager_reload_cluster_changes(const struct config_diff *d) {
    size_t n = 0;
    for (size_t i = 0; i < d->n_changes; i++) {
        const char *rest;
        n += section_of(&d->changes[i], &rest) != SECTION_NONE;
    }
    return n;
}

/* The new tolerate and participants of the pools both descriptions have go into the pools the recovery
 * model was built from (the manager owns every description): the count changed. */
static size_t apply_pools(struct manager *m, const struct config *old) {
    size_t n = 0;
    for (size_t i = 0; m->model && i < m->config->n_pools; i++) {
        const struct config_pool *np = &m->config->pools[i], *op = find_pool(old, np->name);
        const struct rm_process *p = np->n_processes ? rm_component(m->model, np->processes[0]) : NULL;
        if (!op || !p || !p->pool || (op->tolerate == np->tolerate && op->report == np->report))
            continue;
        struct config_pool *w = (struct config_pool *)p->pool;
        w->tolerate = np->tolerate;
        w->report = np->report;
        log_info("Pool '%s': tolerate %u, participants %s", np->name, np->tolerate, np->report ? "report" : "list");
        n++;
    }
    return n;
}

static size_t count_nodes(const struct config *a, const struct config *b) {
    size_t n = 0;
    for (size_t i = 0; i < a->n_nodes; i++)
        n += !config_find_node(b, a->nodes[i].name);
    return n;
}

/* Whether d changes a setting of a node that both descriptions have (nodes.NAME.KEY). */
static bool node_settings(const struct config *old, const struct config *new, const struct config_diff *d) {
    for (size_t i = 0; i < d->n_changes; i++) {
        const char *rest, *key = "";
        if (section_of(&d->changes[i], &rest) == SECTION_NODES && *rest && item_named(old, new, false, rest, &key) &&
            (*key || d->changes[i].kind == CONFIG_CHANGE_CHANGED))
            return true;
    }
    return false;
}

size_t manager_reload_cluster_apply(struct manager *m, const struct config *old, const struct config_diff *d,
                                    char *text, size_t size) {
    amf_set_config(m->amf, m->config);
    if (m->model)
        rm_set_nodes(m->model, m->config);
    size_t added = count_nodes(m->config, old), removed = count_nodes(old, m->config), pools = apply_pools(m, old);
    const struct config_cdb *o = &old->cdb, *c = &m->config->cdb;
    bool cdb = o->tick != c->tick || o->dead_after != c->dead_after || o->async != c->async;
    if (cdb && m->ha)
        ha_set_replication(m->ha, c->tick / USEC_PER_MSEC, c->dead_after / USEC_PER_MSEC, c->async);
    if (cdb)
        manager_cdb_groups_set_replication(m, c);
    size_t n = 0;
    if (added)
        n += (size_t)snprintf(text + n, size - MIN(n, size), ", %zu node%s added", added, added == 1 ? "" : "s");
    if (removed && n < size)
        n += (size_t)snprintf(text + n, size - n, ", %zu node%s removed", removed, removed == 1 ? "" : "s");
    if (pools && n < size)
        n += (size_t)snprintf(text + n, size - n, ", %zu pool%s changed", pools, pools == 1 ? "" : "s");
    if (cdb && n < size)
        n += (size_t)snprintf(text + n, size - n, ", CDB replication settings changed");
    if (node_settings(old, m->config, d) && n < size)
        n += (size_t)snprintf(text + n, size - n, ", nodes' settings changed");
    return MIN(n, size);
}
