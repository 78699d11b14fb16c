/* SPDX-License-Identifier: MIT */
/* Checks of the parsed description as a whole: unique names, nodes, CSI types, cdb roles, proxies and pools. */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "cdb-path.h"
#include "config-internal.h"

struct named {
    const char *name;
    struct config_pos pos;
};

static int named_cmp(const void *a, const void *b) {
    const struct named *x = a, *y = b;
    int c = strcmp(x->name, y->name);
    if (c != 0)
        return c;
    if (x->pos.line != y->pos.line)
        return x->pos.line < y->pos.line ? -1 : 1;
    return x->pos.column < y->pos.column ? -1 : x->pos.column > y->pos.column;
}

/* Reports names used twice (sorted by name and position, so the first one is "first"). */
static void names_check(struct loader *l, struct named *v, size_t n, const char *kind) {
    if (n < 2)
        return;
    qsort(v, n, sizeof(*v), named_cmp);
    size_t first = 0;
    for (size_t i = 1; i < n; i++) {
        if (!streq(v[i].name, v[first].name)) {
            first = i;
            continue;
        }
        config_diag_at(l, v[i].pos, "duplicate %s name '%s' (first defined at line %u column %u)", kind, Q(v[i].name),
                       v[first].pos.line, v[first].pos.column);
    }
}

static int names_verify(struct loader *l, const struct config *c) {
    size_t n_su = 0, n_si = 0, n_csi = 0;

    for (size_t g = 0; g < c->n_sgs; g++) {
        n_su += c->sgs[g].n_sus;
        n_si += c->sgs[g].n_sis;
        for (size_t i = 0; i < c->sgs[g].n_sis; i++)
            n_csi += c->sgs[g].sis[i].n_csis;
    }
    _cleanup_free_ struct named *sgs = calloc(c->n_sgs + 1, sizeof(struct named));
    _cleanup_free_ struct named *sus = calloc(n_su + 1, sizeof(struct named));
    _cleanup_free_ struct named *sis = calloc(n_si + 1, sizeof(struct named));
    _cleanup_free_ struct named *csis = calloc(n_csi + 1, sizeof(struct named));
    if (!sgs || !sus || !sis || !csis)
        return -ENOMEM;

    n_su = n_si = n_csi = 0;
    for (size_t g = 0; g < c->n_sgs; g++) {
        const struct config_sg *sg = &c->sgs[g];
        sgs[g] = (struct named){sg->name, sg->pos};
        for (size_t i = 0; i < sg->n_sus; i++)
            sus[n_su++] = (struct named){sg->sus[i].name, sg->sus[i].pos};
        for (size_t i = 0; i < sg->n_sis; i++) {
            sis[n_si++] = (struct named){sg->sis[i].name, sg->sis[i].pos};
            for (size_t j = 0; j < sg->sis[i].n_csis; j++)
                csis[n_csi++] = (struct named){sg->sis[i].csis[j].name, sg->sis[i].csis[j].pos};
        }
    }
    /* Component names need no check: SU names are unique and carry no '/', the components of an
     * SU are keys of one map, and an explicit component's name is "SU/name". */
    names_check(l, sgs, c->n_sgs, "service group");
    names_check(l, sus, n_su, "service unit");
    names_check(l, sis, n_si, "service instance");
    names_check(l, csis, n_csi, "CSI");
    return 0;
}

static bool component_takes(const struct config_component *cc, const char *type) {
    if (!cc->csi_types)
        return true;
    for (size_t i = 0; i < cc->n_csi_types; i++)
        if (streq(cc->csi_types[i], type))
            return true;
    return false;
}

static int su_nodes_verify(struct loader *l, struct config *c) {
    if (c->n_nodes == 0)
        return 0; /* 'nodes' was wrong: reported already, and every check here would repeat it */
    for (size_t g = 0; g < c->n_sgs; g++)
        for (size_t i = 0; i < c->sgs[g].n_sus; i++) {
            struct config_su *su = &c->sgs[g].sus[i];
            if (su->node) {
                if (!config_find_node(c, su->node))
                    config_diag_at(l, su->node_pos, "service unit '%s': node '%s' is not defined in 'nodes'",
                                   Q(su->name), Q(su->node));
            } else if (su->node_pos.line > 0)
                continue; /* given but wrong: reported already */
            else if (c->n_nodes == 1) {
                su->node = strdup(c->nodes[0].name);
                if (!su->node)
                    return -ENOMEM;
            } else if (c->n_nodes > 1)
                config_diag_at(l, su->pos, "service unit '%s' needs a 'node' (%zu nodes are defined)", Q(su->name),
                               c->n_nodes);
        }
    return 0;
}

static void sg_verify(struct loader *l, const struct config_sg *sg) {
    for (size_t i = 0; i < sg->n_sis; i++)
        for (size_t j = 0; j < sg->sis[i].n_csis; j++) {
            const struct config_csi *csi = &sg->sis[i].csis[j];
            if (!csi->type && csi->type_pos.line > 0)
                continue; /* given but wrong: reported already */
            for (size_t u = 0; u < sg->n_sus; u++) {
                const struct config_su *su = &sg->sus[u];
                bool taken = false;

                if (!config_diag_charge(l, su->n_components + 1))
                    return;
                if (su->n_components == 0)
                    continue;
                if (!csi->type) {
                    if (su->n_components > 1) {
                        config_diag_at(l, csi->pos,
                                       "CSI '%s' has no 'type', but service unit '%s' has %zu components: "
                                       "set 'type' to choose one",
                                       Q(csi->name), Q(su->name), su->n_components);
                        break;
                    }
                    continue;
                }
                for (size_t k = 0; k < su->n_components && !taken; k++)
                    taken = component_takes(&su->components[k], csi->type);
                if (!taken) {
                    config_diag_at(l, csi->type_pos, "CSI '%s': no component of service unit '%s' takes type '%s'",
                                   Q(csi->name), Q(su->name), Q(csi->type));
                    break;
                }
            }
        }
}

/* A non-SA-aware component's process is its one assignment: it takes exactly one CSI of its group. */
static void non_sa_aware_verify(struct loader *l, const struct config_sg *sg) {
    size_t n_csis = 0;
    for (size_t i = 0; i < sg->n_sis; i++)
        n_csis += sg->sis[i].n_csis;
    for (size_t u = 0; u < sg->n_sus; u++) {
        const struct config_su *su = &sg->sus[u];
        for (size_t k = 0; k < su->n_components; k++) {
            const struct config_component *cc = &su->components[k];
            const struct config_csi *first = NULL;
            if (cc->type == CONFIG_COMP_SA_AWARE)
                continue;
            if (!config_diag_charge(l, n_csis + 1))
                return;
            for (size_t i = 0; i < sg->n_sis; i++)
                for (size_t j = 0; j < sg->sis[i].n_csis; j++) {
                    const struct config_csi *csi = &sg->sis[i].csis[j];
                    if (config_csi_component(su, csi) != k)
                        continue;
                    if (first)
                        config_diag_at(l, csi->pos,
                                       "component '%s' is %s and takes CSI '%s' and CSI '%s': it takes one "
                                       "(its process is its assignment)",
                                       Q(cc->name), cc->type == CONFIG_COMP_OCF ? "ocf" : "non-sa-aware",
                                       Q(first->name), Q(csi->name));
                    first = first ?: csi;
                }
            if (!first && sg->n_sis > 0)
                config_diag_at(l, cc->pos, "component '%s' is %s and takes no CSI of its group: it would never run",
                               Q(cc->name), cc->type == CONFIG_COMP_OCF ? "ocf" : "non-sa-aware");
        }
    }
}

/* The component named name, and its unit; NULL if none. */
static const struct config_component *component_find(const struct config *c, const char *name,
                                                     const struct config_su **ret_su) {
    for (size_t g = 0; g < c->n_sgs; g++)
        for (size_t u = 0; u < c->sgs[g].n_sus; u++)
            for (size_t k = 0; k < c->sgs[g].sus[u].n_components; k++)
                if (streq(c->sgs[g].sus[u].components[k].name, name)) {
                    *ret_su = &c->sgs[g].sus[u];
                    return &c->sgs[g].sus[u].components[k];
                }
    return NULL;
}

/*
 * A proxied component's proxy: an SA-aware component (so no chain of proxies,
 * and no cycle), of another unit (one failure would fence both), of the same
 * node (its halod hands the proxy its callbacks).
 */
static void proxied_verify(struct loader *l, const struct config *c) {
    for (size_t g = 0; g < c->n_sgs; g++)
        for (size_t u = 0; u < c->sgs[g].n_sus; u++) {
            const struct config_su *su = &c->sgs[g].sus[u], *psu = NULL;
            for (size_t k = 0; k < su->n_components; k++) {
                const struct config_component *cc = &su->components[k];
                if (cc->type != CONFIG_COMP_PROXIED || !cc->proxy)
                    continue;
                if (!config_diag_charge(l, 1))
                    return;
                const struct config_component *p = component_find(c, cc->proxy, &psu);
                if (!p)
                    config_diag_at(l, cc->proxy_pos, "component '%s': proxy '%s' is no component of the description",
                                   Q(cc->name), Q(cc->proxy));
                else if (p->type != CONFIG_COMP_SA_AWARE)
                    config_diag_at(l, cc->proxy_pos,
                                   "component '%s': proxy '%s' is %s; a proxy is sa-aware (it links libhalo), so "
                                   "proxies do not chain or form a cycle",
                                   Q(cc->name), Q(cc->proxy), config_comp_type_to_string(p->type));
                else if (psu == su)
                    config_diag_at(l, cc->proxy_pos,
                                   "component '%s': proxy '%s' is in its own service unit '%s', which a failure of "
                                   "either would fence as a whole; give the proxy a unit of its own",
                                   Q(cc->name), Q(cc->proxy), Q(su->name));
                else if (!streq(psu->node, su->node))
                    config_diag_at(l, cc->proxy_pos,
                                   "component '%s' is on node '%s' and its proxy '%s' on node '%s': a proxy acts "
                                   "for the components of its own node",
                                   Q(cc->name), Q(su->node), Q(cc->proxy), Q(psu->node));
            }
        }
}

/* cdb-roles: 2N groups whose units sit on different nodes, each with a cdb-address, and a token.
 * One of them drives the main database; each other one drives a subtree of its own
 * (cdb-subtree), none inside another. */
static void cdb_roles_verify(struct loader *l, const struct config *c) {
    const struct config_sg *main_sg = NULL;
    size_t n_subtrees = 0;
    for (size_t g = 0; g < c->n_sgs; g++) {
        const struct config_sg *sg = &c->sgs[g];
        if (sg->cdb_subtree && !sg->cdb_roles) {
            config_diag_at(l, sg->cdb_subtree_pos,
                           "service group '%s': 'cdb-subtree' needs 'cdb-roles: true' (the group's roles drive it)",
                           Q(sg->name));
            continue;
        }
        if (!sg->cdb_roles || (!sg->cdb_subtree && sg->cdb_subtree_pos.line))
            continue; /* a cdb-subtree that is not a path: reported already */
        if (!sg->cdb_subtree && main_sg) {
            config_diag_at(l, sg->cdb_roles_pos,
                           "service group '%s': 'cdb-roles' without 'cdb-subtree' is already set by service group "
                           "'%s' (one group drives the main database: give the others a 'cdb-subtree' each)",
                           Q(sg->name), Q(main_sg->name));
            continue;
        }
        if (!sg->cdb_subtree)
            main_sg = sg;
        else if (++n_subtrees == CONFIG_CDB_SUBTREES_MAX + 1)
            config_diag_at(l, sg->cdb_subtree_pos,
                           "service group '%s': more than %d cdb-roles groups with a 'cdb-subtree' (each is a "
                           "database of its own on every node)",
                           Q(sg->name), CONFIG_CDB_SUBTREES_MAX);
        for (size_t o = 0; sg->cdb_subtree && o < g; o++) {
            const struct config_sg *other = &c->sgs[o];
            if (other->cdb_roles && other->cdb_subtree &&
                (cdb_path_under(sg->cdb_subtree, other->cdb_subtree) ||
                 cdb_path_under(other->cdb_subtree, sg->cdb_subtree)))
                config_diag_at(l, sg->cdb_subtree_pos,
                               "service group '%s': 'cdb-subtree' %s overlaps %s of service group '%s' (each "
                               "subtree has one group's roles: none may hold another)",
                               Q(sg->name), Q(sg->cdb_subtree), Q(other->cdb_subtree), Q(other->name));
        }
        if (sg->redundancy != CONFIG_REDUNDANCY_2N)
            config_diag_at(l, sg->cdb_roles_pos,
                           "service group '%s': 'cdb-roles' needs redundancy 2N (one primary, one secondary), not %s",
                           Q(sg->name), config_redundancy_to_string(sg->redundancy));
        if (!c->cdb.token_file)
            config_diag_at(l, sg->cdb_roles_pos,
                           "service group '%s': 'cdb-roles' needs the nodes' shared token: set 'token-file' in 'cdb'",
                           Q(sg->name));
        for (size_t u = 0; u < sg->n_sus; u++) {
            const struct config_su *su = &sg->sus[u];
            const struct config_node *node = su->node ? config_find_node(c, su->node) : NULL;
            if (!node)
                continue; /* reported already */
            if (!node->cdb_address)
                config_diag_at(l, su->pos, "service unit '%s' of '%s' (cdb-roles): node '%s' needs a 'cdb-address'",
                               Q(su->name), Q(sg->name), Q(node->name));
            for (size_t v = 0; v < u; v++)
                if (sg->sus[v].node && streq(sg->sus[v].node, su->node))
                    config_diag_at(l, su->pos,
                                   "service unit '%s' of '%s' (cdb-roles) is on node '%s' like '%s': the roles need "
                                   "one unit per node",
                                   Q(su->name), Q(sg->name), Q(su->node), Q(sg->sus[v].name));
        }
    }
}

/* Every pool process is a component of the description, in one pool only; 'tolerate' leaves one to recover from. */
static void pools_verify(struct loader *l, const struct config *c) {
    /* Object names ("service:<su>:<comp>:<service>" and the like) have at most 255 characters after the kind. */
    for (size_t g = 0; g < c->n_sgs; g++)
        for (size_t u = 0; u < c->sgs[g].n_sus; u++)
            for (size_t k = 0; k < c->sgs[g].sus[u].n_components; k++) {
                const struct config_component *cc = &c->sgs[g].sus[u].components[k];
                size_t len = strlen(cc->name), longest = len;
                for (size_t i = 0; i < cc->n_services; i++)
                    longest = MAX(longest, len + 1 + strlen(cc->services[i]));
                for (size_t i = 0; i < cc->n_devices; i++)
                    longest = MAX(longest, len + 1 + strlen(cc->devices[i]));
                if ((cc->n_services || cc->n_devices || config_find_pool_of(c, cc->name)) && longest > CONFIG_NAME_MAX)
                    config_diag_at(l, cc->pos,
                                   "component '%s': its service and device object names ('%s:' and a name) would be "
                                   "longer than %d characters",
                                   Q(cc->name), Q(cc->name), CONFIG_NAME_MAX);
            }
    for (size_t i = 0; i < c->n_pools && !l->too_big; i++) {
        const struct config_pool *pool = &c->pools[i];
        if (pool->n_processes > 0 && pool->tolerate >= pool->n_processes)
            config_diag_at(l, pool->pos, "pool '%s': 'tolerate' (%u) must be below its number of processes (%zu)",
                           Q(pool->name), pool->tolerate, pool->n_processes);
        for (size_t k = 0; k < pool->n_processes; k++) {
            const char *p = pool->processes[k];
            if (!config_diag_charge(l, c->n_sgs + i + k + 1))
                return;
            const struct config_component *cc = config_find_component(c, p, NULL);
            if (!cc) {
                config_diag_at(l, pool->pos, "pool '%s': process '%s' is not a component of the description",
                               Q(pool->name), Q(p));
                continue;
            }
            if (cc->type != CONFIG_COMP_SA_AWARE)
                config_diag_at(l, pool->pos,
                               "pool '%s': process '%s' is %s (a pool process takes part in recovery "
                               "through libhalo)",
                               Q(pool->name), Q(p), config_comp_type_to_string(cc->type));
            for (size_t j = 0; j < k; j++)
                if (streq(pool->processes[j], p))
                    config_diag_at(l, pool->pos, "pool '%s' lists process '%s' twice", Q(pool->name), Q(p));
            const struct config_pool *first = config_find_pool_of(c, p);
            if (first && first != pool && first < pool)
                config_diag_at(l, pool->pos, "process '%s' is in pool '%s' and in pool '%s' (a process is in one pool)",
                               Q(p), Q(first->name), Q(pool->name));
        }
    }
}

/* At most CONFIG_NODE_POOL_PROCESSES_MAX pool processes on one node. */
static int node_pools_verify(struct loader *l, const struct config *c) {
    if (c->n_pools == 0 || c->n_nodes == 0 || l->too_big)
        return 0;
    _cleanup_free_ size_t *count = calloc(c->n_nodes, sizeof(*count));
    if (!count)
        return -ENOMEM;
    for (size_t g = 0; g < c->n_sgs; g++)
        for (size_t u = 0; u < c->sgs[g].n_sus; u++) {
            const struct config_su *su = &c->sgs[g].sus[u];
            size_t n = 0;
            while (n < c->n_nodes && !streq(c->nodes[n].name, su->node))
                n++;
            for (size_t k = 0; n < c->n_nodes && k < su->n_components; k++)
                count[n] += config_find_pool_of(c, su->components[k].name) != NULL;
        }
    for (size_t n = 0; n < c->n_nodes; n++)
        if (count[n] > CONFIG_NODE_POOL_PROCESSES_MAX)
            config_diag_at(l, c->nodes[n].pos,
                           "node '%s' runs %zu pool processes; at most %d are allowed (its failure is written to "
                           "each one's failure vector in one store transaction)",
                           Q(c->nodes[n].name), count[n], CONFIG_NODE_POOL_PROCESSES_MAX);
    return 0;
}

int config_verify(struct loader *l, struct config *c) {
    int r = su_nodes_verify(l, c);
    if (r < 0)
        return r;
    for (size_t g = 0; g < c->n_sgs && !l->too_big; g++) {
        sg_verify(l, &c->sgs[g]);
        non_sa_aware_verify(l, &c->sgs[g]);
    }
    r = config_models_verify(l, c);
    if (r < 0)
        return r;
    cdb_roles_verify(l, c);
    proxied_verify(l, c);
    pools_verify(l, c);
    r = node_pools_verify(l, c);
    if (r < 0)
        return r;
    return names_verify(l, c);
}
