/* SPDX-License-Identifier: MIT */
/*
 * The cdb-alone/<sg> records of the cdb-roles groups (docs/store.md): a record names the node whose
 * CDB acknowledged commits alone, and no unit of that group on another node may take its ACTIVE
 * until it is gone (the other node has those commits).  A record that cannot be kept (out of
 * memory) fails safe: no unit of a cdb-roles group takes an ACTIVE until they are all read again.
 */
#define LOG_AREA LOG_AREA_CLUSTER
#include <stdlib.h>
#include <string.h>

#include "cluster-sync-internal.h"
#include "keys.h"
#include "log.h"
#include "macro.h"
#include "time-util.h"

/* Every cdb-roles group's readiness for an ACTIVE may have changed. */
static void cdb_groups_readiness_changed(struct cluster_sync *s) {
    size_t n_sgs;
    struct sg *sgs = amf_sgs(s->amf, &n_sgs);
    for (size_t g = 0; g < n_sgs; g++)
        if (sgs[g].cfg->cdb_roles && sgs[g].n_sus && sgs[g].sus[0].n_comps)
            amf_readiness_changed(s->amf, sgs[g].sus[0].comps[0].name);
}

/* A record could not be kept: failing safe, no cdb-roles unit takes an ACTIVE until the records
 * are read again (in 100 ms, then every second while that fails). */
static void cdb_alone_lost(struct cluster_sync *s, const char *sg_name, usec_t retry) {
    if (!s->cdb_alone_lost) {
        log_error("Out of memory keeping the CDB record of service group '%s': no unit of a cdb-roles group "
                  "takes an ACTIVE until the records are read again",
                  sg_name);
        s->cdb_alone_lost = true;
        cdb_groups_readiness_changed(s);
    }
    if (!s->cdb_alone_read_at) {
        s->cdb_alone_read_at = now_monotonic_usec() + retry;
        cluster_sync__arm_node_timer(s);
    }
}

void cluster_sync__cdb_alone(struct cluster_sync *s, const char *sg_name, json_t *j, bool deleted) {
    struct sg *sg = amf_find_sg(s->amf, sg_name);
    const char *node = deleted ? NULL : json_string_value(json_object_get(j, "node"));
    const char *was = sg ? hashmap_get(&s->cdb_alone, sg->name) : NULL;
    if (!sg || !sg->cfg->cdb_roles || (!node && !was) || (node && was && streq(node, was)))
        return;
    char *copy = node ? strdup(node) : NULL;
    if (node && !copy) {
        cdb_alone_lost(s, sg->name, 100 * USEC_PER_MSEC);
        return;
    }
    free(hashmap_remove(&s->cdb_alone, sg->name));
    if (copy && hashmap_put(&s->cdb_alone, sg->name, copy) < 0) {
        free(copy);
        cdb_alone_lost(s, sg->name, 100 * USEC_PER_MSEC);
        return;
    }
    if (node)
        log_notice("The CDB of node '%s' acknowledged commits alone: the ACTIVE of '%s' stays on its unit until "
                   "the other node has them",
                   node, sg->name);
    else
        log_info("Every node of '%s' holds every acknowledged CDB commit again", sg->name);
    if (sg->n_sus && sg->sus[0].n_comps)
        amf_readiness_changed(s->amf, sg->sus[0].comps[0].name);
}

/* A unit of a cdb-roles group may be ACTIVE unless its group's record names another node, or a
 * record could not be kept. */
bool cluster_sync__cdb_ready(void *userdata, const struct su *su) {
    struct cluster_sync *s = userdata;
    if (!su->sg->cfg->cdb_roles)
        return true;
    const char *alone = hashmap_get(&s->cdb_alone, su->sg->name);
    return !s->cdb_alone_lost && (!alone || streq(alone, su->cfg->node));
}

static void on_cdb_alone_read(store *st, int error, const store_result *r, void *userdata) {
    struct cluster_sync *s = userdata;
    if (error < 0 || !s->amf) {
        if (error < 0 && error != -ECANCELED) {
            log_warning_errno(error, "Failed to read the CDB records: %m");
            cdb_alone_lost(s, "(all)", USEC_PER_SEC);
        }
        cluster_sync__unref(s);
        return;
    }
    s->cdb_alone_lost = false; /* unless one is lost again below */
    for (size_t i = 0; i < r->n_kvs; i++)
        cluster_sync__handle_kv(s, &r->kvs[i]);
    size_t n_sgs;
    struct sg *sgs = amf_sgs(s->amf, &n_sgs);
    for (size_t g = 0; g < n_sgs; g++)
        if (hashmap_contains(&s->cdb_alone, sgs[g].name) && !cluster_sync__read_has(s, r, KEY_CDB_ALONE, sgs[g].name))
            cluster_sync__cdb_alone(s, sgs[g].name, NULL, true);
    if (!s->cdb_alone_lost) {
        log_notice("The CDB records are known again: the units of cdb-roles groups may take an ACTIVE");
        cdb_groups_readiness_changed(s);
    }
    cluster_sync__unref(s);
}

void cluster_sync__cdb_alone_read(struct cluster_sync *s) {
    if (cluster_sync__read_again_with(s, KEY_CDB_ALONE, "the CDB records", on_cdb_alone_read) < 0)
        cdb_alone_lost(s, "(all)", USEC_PER_SEC); /* again in a second */
}
