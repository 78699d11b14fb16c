/* SPDX-License-Identifier: MIT */
/* The nodes as the store shows them (nodes/<node>): found or added, alive, their description's digest
 * and service groups. */
#define LOG_AREA LOG_AREA_CLUSTER
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "cluster-sync-internal.h"
#include "macro.h"

struct node_info *cluster_sync__node_find(struct cluster_sync *s, const char *name, bool create) {
    for (size_t i = 0; i < s->n_nodes; i++)
        if (streq(s->nodes[i].name, name))
            return &s->nodes[i];
    if (!create)
        return NULL;
    struct node_info *n = realloc(s->nodes, (s->n_nodes + 1) * sizeof(*n));
    if (!n)
        return NULL;
    s->nodes = n;
    n = &s->nodes[s->n_nodes];
    *n = (struct node_info){.name = strdup(name)};
    if (!n->name)
        return NULL;
    s->n_nodes++;
    return n;
}

void cluster_sync__node_left(struct cluster_sync *s, struct node_info *n) {
    /* Every node that sees it reports it; the coordinator publishes it once. */
    queue_report_node(s->reporter, n->name, QUEUE_HA_FAILED, "its lease ended", n->lease);
    if (s->node_left)
        s->node_left(s->node_left_userdata, n->name);
}

void cluster_sync_on_node_left(struct cluster_sync *s, void (*cb)(void *userdata, const char *node), void *userdata) {
    s->node_left = cb;
    s->node_left_userdata = userdata;
}

int cluster_sync_node(const struct cluster_sync *s, const char *node) {
    for (size_t i = 0; i < s->n_nodes; i++)
        if (streq(s->nodes[i].name, node))
            return s->nodes[i].alive;
    return -ENOENT;
}

const char *cluster_sync_node_digest(const struct cluster_sync *s, const char *node) {
    for (size_t i = 0; i < s->n_nodes; i++)
        if (streq(s->nodes[i].name, node))
            return s->nodes[i].alive && *s->nodes[i].digest ? s->nodes[i].digest : NULL;
    return NULL;
}

void cluster_sync__node_description(struct cluster_sync *s, struct node_info *n, json_t *j) {
    const char *digest = json_string_value(json_object_get(j, "description"));
    json_t *groups = json_object_get(j, "groups");
    bool changed = !streq(n->digest, digest ?: "");
    snprintf(n->digest, sizeof(n->digest), "%s", digest ?: "");
    json_decref(n->groups);
    n->groups = json_is_array(groups) ? json_incref(groups) : NULL;
    if (changed) /* a node left, joined or reloaded */
        cluster_sync__sweep(s);
}

json_t *cluster_sync_node_groups(const struct cluster_sync *s, const char *node) {
    for (size_t i = 0; i < s->n_nodes; i++)
        if (streq(s->nodes[i].name, node))
            return s->nodes[i].alive ? s->nodes[i].groups : NULL;
    return NULL;
}

size_t cluster_sync_live_nodes(const struct cluster_sync *s, const char **out, size_t max) {
    size_t n = 0;
    for (size_t i = 0; i < s->n_nodes; i++)
        if (s->nodes[i].alive) {
            if (n < max)
                out[n] = s->nodes[i].name;
            n++;
        }
    return n;
}
