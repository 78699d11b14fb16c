/* SPDX-License-Identifier: MIT */
/* CDB roles driven by the AMF: the node of a cdb-roles service group's ACTIVE unit is the primary, its STANDBY's a
 * secondary. */

/*
 * Evaluated (on a zero timer, so once per loop turn whatever changed) after
 * every change of the group's assignments, as this node sees them:
 *
 *   this node's unit is the ACTIVE target           -> PRIMARY
 *   this node's unit is STANDBY, and another node's
 *   unit is confirmed ACTIVE                        -> SECONDARY of that node
 *   anything else (QUIESCED, no assignment, ...)    -> NONE (writes refused
 *                                                      nowhere, replicated nowhere)
 *
 * The primary changes within the same loop turn as the CSI set ACTIVE is
 * sent, before the component can answer or commit.  A join that fails (the
 * new primary is not listening yet) or a primary lost makes ha.c call back,
 * and the roles are looked at again after AMF_CDB_RETRY_MSEC.
 */
#include <stdlib.h>

#include "amf-internal.h"
#include "ha.h"
#include "log.h"
#include "macro.h"

#define AMF_CDB_RETRY_MSEC 300

static void on_roles_timer(uv_timer_t *t) {
    amf_cdb_roles_evaluate(t->data);
}

void amf_cdb_roles_schedule(struct amf *a, uint64_t delay_msec) {
    if (!a->ha || !a->cdb_sg || a->stopping)
        return;
    if (delay_msec == 0 || !uv_is_active((uv_handle_t *)&a->cdb_timer))
        uv_timer_start(&a->cdb_timer, on_roles_timer, delay_msec, 0);
}

static void on_ha_changed(void *userdata) {
    amf_cdb_roles_schedule(userdata, AMF_CDB_RETRY_MSEC);
}

void amf_cdb_roles_evaluate(struct amf *a) {
    struct sg *sg = a->cdb_sg;
    if (!a->ha || !sg || a->stopping || sg->n_sis == 0)
        return;
    struct si *si = &sg->sis[0]; /* 2N: every SI of the group is ACTIVE on the same unit */
    struct assignment *act = amf_si_find(si, HALO_HA_ACTIVE);
    if (act && act->removing)
        act = NULL; /* its unit failed or was locked: no primary there any more */
    struct su *local = NULL;
    for (size_t u = 0; u < sg->n_sus; u++)
        if (sg->sus[u].local)
            local = &sg->sus[u];
    enum ha_state want = HA_STATE_NONE;
    const char *primary = NULL, *addr = NULL;
    if (act && act->su->local)
        want = HA_STATE_PRIMARY;
    else if (local && act && act->confirmed && act->state == HALO_HA_ACTIVE) {
        struct assignment *mine = amf_si_find_su(si, local);
        const struct config_node *n = config_find_node(a->config, act->su->cfg->node);
        if (mine && mine->target == HALO_HA_STANDBY && n && n->cdb_address) {
            want = HA_STATE_SECONDARY;
            primary = n->name;
            addr = n->cdb_address;
        }
    }
    int r = ha_follow(a->ha, want, a->node, primary, addr);
    if (r < 0) {
        log_warning_errno(r, "Service group '%s': cannot make this node the CDB %s%s%s: %m", sg->name,
                          ha_state_name(want), primary ? " of " : "", primary ?: "");
        amf_cdb_roles_schedule(a, AMF_CDB_RETRY_MSEC);
    }
}

int amf_cdb_roles_init(struct amf *a, struct ha *ha, const char *token) {
    a->ha = ha; /* for the status, in any case */
    for (size_t g = 0; g < a->n_sgs; g++)
        if (a->sgs[g].cfg->cdb_roles)
            a->cdb_sg = &a->sgs[g];
    if (!a->cdb_sg || !ha || !token)
        return 0;
    log_info("The CDB roles follow service group '%s'", a->cdb_sg->name);
    return ha_set_driven(ha, a->cdb_sg->name, token, on_ha_changed, a);
}
