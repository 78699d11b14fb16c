/* SPDX-License-Identifier: MIT */
/*
 * CDB roles driven by the AMF (amf-roles.h).  Evaluated on a zero timer, so
 * once per loop turn whatever changed, after every change of the group's
 * assignments as this node sees them:
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
 * and the roles are looked at again after AMF_ROLES_RETRY_MSEC.
 */
#define LOG_AREA LOG_AREA_AMF
#include "amf-roles.h"

#include <errno.h>
#include <stdlib.h>

#include "log.h"
#include "macro.h"

#define AMF_ROLES_RETRY_MSEC 300

struct amf_roles {
    struct amf *amf;
    struct ha *ha;
    struct sg *sg;
    uv_timer_t timer;
};

static void schedule(struct amf_roles *r, uint64_t delay_msec);

static void evaluate(struct amf_roles *r) {
    struct sg *sg = r->sg;
    if (amf_stopping(r->amf) || sg->n_sis == 0)
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
        const struct config_node *n = config_find_node(amf_config(r->amf), act->su->cfg->node);
        if (mine && mine->target == HALO_HA_STANDBY && n && n->cdb_address) {
            want = HA_STATE_SECONDARY;
            primary = n->name;
            addr = n->cdb_address;
        }
    }
    int e = ha_follow(r->ha, want, amf_node(r->amf), primary, addr);
    if (e < 0) {
        log_warning_errno(e, "Service group '%s': cannot make this node the CDB %s%s%s: %m", sg->name,
                          ha_state_name(want), primary ? " of " : "", primary ?: "");
        schedule(r, AMF_ROLES_RETRY_MSEC);
    }
}

static void on_timer(uv_timer_t *t) {
    evaluate(t->data);
}

static void schedule(struct amf_roles *r, uint64_t delay_msec) {
    if (amf_stopping(r->amf))
        return;
    if (delay_msec == 0 || !uv_is_active((uv_handle_t *)&r->timer))
        uv_timer_start(&r->timer, on_timer, delay_msec, 0);
}

static void on_assignment_changed(void *userdata, struct si *si) {
    struct amf_roles *r = userdata;
    if (si->sg == r->sg)
        schedule(r, 0); /* before the component can act on its new role */
}

static void on_sg_changed(void *userdata, struct sg *sg) {
    struct amf_roles *r = userdata;
    if (sg == r->sg)
        schedule(r, 0);
}

static void on_ha_changed(void *userdata) {
    schedule(userdata, AMF_ROLES_RETRY_MSEC);
}

static const struct amf_observer observer = {
    .assignment_changed = on_assignment_changed,
    .sg_changed = on_sg_changed,
};

int amf_roles_new(uv_loop_t *loop, struct amf *a, struct ha *ha, const char *token, struct amf_roles **ret) {
    size_t n_sgs;
    struct sg *sgs = amf_sgs(a, &n_sgs), *sg = NULL;
    *ret = NULL;
    for (size_t g = 0; g < n_sgs; g++)
        if (sgs[g].cfg->cdb_roles)
            sg = &sgs[g];
    if (!sg || !ha || !token)
        return 0;
    struct amf_roles *r = calloc(1, sizeof(*r));
    if (!r)
        return -ENOMEM;
    *r = (struct amf_roles){.amf = a, .ha = ha, .sg = sg};
    int e = amf_observe(a, &observer, r);
    if (e < 0) {
        free(r);
        return e;
    }
    uv_timer_init(loop, &r->timer);
    r->timer.data = r;
    log_info("The CDB roles follow service group '%s'", sg->name);
    e = ha_set_driven(ha, sg->name, token, on_ha_changed, r);
    if (e < 0) {
        amf_roles_free(r);
        return e;
    }
    *ret = r;
    return 0;
}

static void on_closed(uv_handle_t *h) {
    free(h->data);
}

struct amf_roles *amf_roles_free(struct amf_roles *r) {
    if (!r)
        return NULL;
    amf_unobserve(r->amf, &observer, r);
    uv_close((uv_handle_t *)&r->timer, on_closed);
    return NULL;
}

const char *amf_roles_sg(const struct amf_roles *r) {
    return r ? r->sg->name : NULL;
}
