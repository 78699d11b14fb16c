/* SPDX-License-Identifier: MIT */
/*
 * The cdb-roles groups with a cdb-subtree (manager-internal.h, docs/cdb.md
 * "Several groups, one subtree each"): each group's subtree is a database file
 * of its own on every node, whose roles follow the group's assignments as the
 * main database's follow the group without a subtree.  Opened at start, after
 * the main database, and refused there when what is on disk would hide or mix
 * data: a file bound to another subtree, or main-database rows under the
 * group's subtree (written before the group had one).
 */
#define LOG_AREA LOG_AREA_MAIN
#include <errno.h>
#include <jansson.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "manager-internal.h"

#include "cdb-link.h"
#include "cdb.h"
#include "ha.h"
#include "log.h"
#include "macro.h"

static int count_one(const char *path, const uint8_t *value, size_t len, void *userdata) {
    (*(size_t *)userdata)++;
    return 0;
}

static int group_open(struct manager *m, const struct config_sg *sg, const char *listen, struct cdb_group *g) {
    char path[PATH_MAX], why[LINK_CDB_PATH_MAX + 64];
    size_t hidden = 0;
    g->sg = strdup(sg->name);
    g->subtree = strdup(sg->cdb_subtree);
    if (!g->sg || !g->subtree)
        return log_error("Out of memory opening the database of service group '%s'", sg->name), -ENOMEM;
    int r = cdb_list(m->cdb, g->subtree, NULL, count_one, &hidden);
    if (r < 0)
        return log_error_errno(r, "Failed to read the configuration database: %m");
    if (hidden > 0)
        return log_error("The configuration database holds %zu path%s under %s, the cdb-subtree of service group "
                         "'%s', which its own database would hide: delete them on the primary under the previous "
                         "description first (haloctl cdb list %s --json keeps a copy), or, on a node that joins as "
                         "a secondary, remove %s/cdb.db",
                         hidden, hidden == 1 ? "" : "s", g->subtree, g->sg, g->subtree, m->opt.state_dir),
               -ENOTEMPTY;
    snprintf(path, sizeof(path), "%s/cdb-%s.db", m->opt.state_dir, g->sg);
    r = cdb_open(m->loop, path, m->node, &g->cdb);
    if (r < 0)
        return log_error_errno(r, "Failed to open the configuration database of service group '%s' '%s': %m", g->sg,
                               path);
    r = cdb_bind_subtree(g->cdb, g->subtree, why, sizeof(why));
    if (r == -EEXIST || r == -ENOTEMPTY)
        return log_error("The database of service group '%s' (%s) is not its cdb-subtree %s: %s (move the file "
                         "away to start it over; a secondary takes a full copy from the primary)",
                         g->sg, path, g->subtree, why),
               r;
    if (r < 0)
        return log_error_errno(r, "Failed to read the database of service group '%s' (%s): %m", g->sg, path);
    r = cdb_link_add_subtree(m->cdb_link, g->subtree, g->cdb);
    if (r < 0)
        return log_error_errno(r, "Failed to serve the subtree %s of service group '%s': %m", g->subtree, g->sg);
    struct ha_params hp = {.loop = m->loop,
                           .db = g->cdb,
                           .link = m->cdb_link,
                           .share = m->ha,
                           .name = g->sg,
                           .subtree = g->subtree,
                           .repl_listen = listen,
                           .token = m->config->cdb.token,
                           .tick_msec = m->config->cdb.tick / USEC_PER_MSEC,
                           .dead_msec = m->config->cdb.dead_after / USEC_PER_MSEC,
                           .async = m->config->cdb.async};
    r = ha_new(&hp, &g->ha);
    if (r < 0)
        return log_error_errno(r, "Failed to set up the replication of service group '%s': %m", g->sg);
    r = amf_roles_new(m->loop, m->amf, g->sg, g->ha, m->config->cdb.token, m->opt.etcd ? m->store : NULL, m->prefix,
                      &g->roles);
    if (r < 0)
        return log_error_errno(r, "Failed to set up the CDB roles of service group '%s': %m", g->sg);
    log_info("Configuration database: %s is service group '%s''s (%s), its roles follow the group", g->subtree, g->sg,
             path);
    return 0;
}

int manager_cdb_groups_open(struct manager *m, const char *listen) {
    size_t n = 0;
    for (size_t i = 0; i < m->config->n_sgs; i++)
        n += m->config->sgs[i].cdb_roles && m->config->sgs[i].cdb_subtree;
    if (n == 0)
        return 0;
    m->cdb_groups = calloc(n, sizeof(*m->cdb_groups));
    if (!m->cdb_groups)
        return log_error("Out of memory opening the databases of the cdb-roles groups"), -ENOMEM;
    for (size_t i = 0; i < m->config->n_sgs; i++) {
        const struct config_sg *sg = &m->config->sgs[i];
        if (!sg->cdb_roles || !sg->cdb_subtree)
            continue;
        int r = group_open(m, sg, listen, &m->cdb_groups[m->n_cdb_groups++]);
        if (r < 0)
            return r;
    }
    return 0;
}

void manager_cdb_groups_set_replication(struct manager *m, const struct config_cdb *c) {
    for (size_t i = 0; i < m->n_cdb_groups; i++)
        if (m->cdb_groups[i].ha)
            ha_set_replication(m->cdb_groups[i].ha, c->tick / USEC_PER_MSEC, c->dead_after / USEC_PER_MSEC, c->async);
}

void manager_cdb_groups_stop(struct manager *m) {
    for (size_t i = 0; i < m->n_cdb_groups; i++) {
        struct cdb_group *g = &m->cdb_groups[i];
        g->roles = amf_roles_free(g->roles);
        g->ha = ha_free(g->ha);
    }
}

void manager_cdb_groups_close(struct manager *m) {
    manager_cdb_groups_stop(m);
    for (size_t i = 0; i < m->n_cdb_groups; i++) {
        struct cdb_group *g = &m->cdb_groups[i];
        g->cdb = cdb_close(g->cdb);
        free(g->sg);
        free(g->subtree);
    }
    free(m->cdb_groups);
    m->cdb_groups = NULL;
    m->n_cdb_groups = 0;
}

json_t *manager_cdb_groups_json(struct manager *m) {
    if (m->n_cdb_groups == 0)
        return NULL;
    json_t *a = json_array();
    for (size_t i = 0; a && i < m->n_cdb_groups; i++) {
        const struct cdb_group *g = &m->cdb_groups[i];
        _cleanup_free_ char *text = g->ha ? ha_status_json(g->ha) : NULL;
        json_t *j = text ? json_loads(text, 0, NULL) : json_object();
        if (!j)
            continue;
        const char *writer = amf_roles_writer(g->roles);
        json_object_set_new(j, "subtree", json_string(g->subtree));
        json_object_set_new(j, "roles_follow", json_string(g->sg));
        json_object_set_new(j, "writer", writer ? json_string(writer) : json_null());
        json_array_append_new(a, j);
    }
    return a;
}
