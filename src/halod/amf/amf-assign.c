/* SPDX-License-Identifier: MIT */
/*
 * Assignments of SIs to SUs: the slots, the CSI sets and removes that carry a
 * target out on this node's components, and their completion.  Which SU gets
 * which role is the redundancy model's decision (amf-2n.c); where it is
 * carried out, its placement's (amf.h).
 */
#define LOG_AREA LOG_AREA_AMF
#include <errno.h>
#include <inttypes.h>

#include "amf-internal.h"
#include "link-pack.h"
#include "log.h"
#include "macro.h"
#include "server.h"

struct assignment *amf_asg_slot(struct si *si, struct su *su) {
    struct assignment *a = amf_si_find_su(si, su);
    if (a)
        return a;
    for (size_t i = 0; i < si->n_asg; i++)
        if (!si->asg[i].su) {
            si->asg[i] = (struct assignment){.su = su};
            return &si->asg[i];
        }
    return NULL;
}

void amf_asg_drop(struct si *si, struct assignment *a) {
    struct su *su = a->su;
    *a = (struct assignment){0};
    if (su)
        amf_su_check_lock_done(su);
    if (su && su->leaving)
        amf_unit_left(su);
}

void amf_asg_clear(struct si *si, struct assignment *a) {
    struct amf *amf = si->amf;
    if (a->su && amf->deciding)
        amf->placement->forget(amf->placement_data, si, a->su);
    amf_asg_drop(si, a);
}

void amf_comp_send(struct comp *c, const uint8_t *buf, int len) {
    if (len < 0) {
        log_warning_errno(len, "Failed to encode a message for component '%s': %m", c->name);
        return;
    }
    /* A send failure closes the link, which fails the component: its
     * invocations are cancelled there. */
    (void)server_conn_send_packed(c->conn, buf, (size_t)len);
}

int amf_asg_send_csi_set(struct si *si, struct comp *c, const struct config_csi *csi, halo_ha_state state,
                         halo_csi_transition transition, const char *active_comp) {
    usec_t timeout = state == HALO_HA_QUIESCING ? c->cfg->timeouts.quiescing : c->cfg->timeouts.csi_set;
    struct invocation *inv = amf_inv_new(c, INV_CSI_SET, timeout);
    if (!inv)
        return -ENOMEM;
    inv->si = si;
    inv->su = c->su;
    inv->state = state;

    halo_csi_attr attrs[LINK_ATTRS_MAX];
    size_t n = MIN(csi->n_attrs, (size_t)LINK_ATTRS_MAX);
    for (size_t i = 0; i < n; i++)
        attrs[i] = (halo_csi_attr){.name = csi->attrs[i].name, .value = csi->attrs[i].value};
    struct link_csi_set m = {
        .invocation = inv->id,
        .comp = c->name,
        .csi = csi->name,
        .si = si->name,
        .state = state,
        .flags = HALO_CSI_ADD_ONE,
        .transition = state == HALO_HA_ACTIVE ? transition : 0,
        .active_comp = active_comp,
        .attrs = attrs,
        .n_attrs = n,
    };
    uint8_t buf[LINK_MSG_MAX];
    log_debug("CSI set '%s' %s -> '%s' (invocation %" PRIu64 ")", csi->name, halo_ha_state_to_string(state), c->name,
              inv->id);
    amf_comp_send(c, buf, link_pack_csi_set(&m, buf, sizeof(buf)));
    return 0;
}

const char *amf_asg_active_comp(struct si *si, const struct config_csi *csi) {
    struct assignment *act = amf_si_find(si, HALO_HA_ACTIVE);
    if (!act)
        return NULL;
    struct comp *c = amf_csi_comp(act->su, csi);
    return c ? c->name : NULL;
}

/* The CSI sets of a to su's components (only: to that one alone). */
static int send_set(struct si *si, struct su *su, struct assignment *a, halo_csi_transition transition,
                    const struct comp *only) {
    halo_ha_state state = a->target;
    for (size_t k = 0; k < si->cfg->n_csis; k++) {
        const struct config_csi *csi = &si->cfg->csis[k];
        struct comp *c = amf_csi_comp(su, csi);
        if (!c || (!c->conn && amf_comp_sa_aware(c)) || (only && c != only))
            continue;
        a->pending++;
        int r = !amf_comp_sa_aware(c)
                    ? amf_nsa_csi(si, c, state)
                    : amf_asg_send_csi_set(si, c, csi, state, transition,
                                           state == HALO_HA_STANDBY ? amf_asg_active_comp(si, csi) : NULL);
        if (r < 0) {
            a->pending--;
            return r;
        }
        if (!a->su) /* the send failed and the SU failed with it */
            return -ENOTCONN;
    }
    return 0;
}

int amf_asg_send_set(struct si *si, struct su *su, struct assignment *a, halo_csi_transition transition) {
    return send_set(si, su, a, transition, NULL);
}

int amf_asg_send_set_comp(struct si *si, struct comp *c, struct assignment *a) {
    return send_set(si, c->su, a, HALO_CSI_NEW_ASSIGN, c);
}

int amf_asg_send_csi_remove(struct si *si, struct comp *c, const struct config_csi *csi, struct assignment *a) {
    struct invocation *inv = amf_inv_new(c, INV_CSI_REMOVE, c->cfg->timeouts.csi_remove);
    if (!inv)
        return -ENOMEM;
    inv->si = si;
    inv->su = c->su;
    a->pending++;
    uint8_t buf[LINK_MSG_MAX];
    amf_comp_send(c, buf, link_pack_csi_remove(inv->id, c->name, csi->name, HALO_CSI_TARGET_ONE, buf, sizeof(buf)));
    return 0;
}

int amf_asg_send_remove(struct si *si, struct assignment *a) {
    struct su *su = a->su;
    for (size_t k = 0; k < si->cfg->n_csis && a->su; k++) {
        const struct config_csi *csi = &si->cfg->csis[k];
        struct comp *c = amf_csi_comp(su, csi);
        if (c && !amf_comp_sa_aware(c)) {
            a->pending++;
            int r = amf_nsa_csi(si, c, 0);
            if (r < 0) {
                a->pending--;
                return r;
            }
            continue;
        }
        if (!c || !c->conn)
            continue;
        int r = amf_asg_send_csi_remove(si, c, csi, a);
        if (r < 0)
            return r;
    }
    if (a->su && a->pending == 0) {
        /* Nothing to tell (no CSI, no link): removed at once. */
        if (su->local)
            si->amf->placement->publish_confirmed(si->amf->placement_data, si, a, true);
        amf_asg_clear(si, a);
        amf_notify_si(si);
        amf_pg_notify(si->amf, si);
    }
    return 0;
}

int amf_assign(struct si *si, struct su *su, halo_ha_state state, halo_csi_transition transition) {
    struct amf *amf = si->amf;
    struct assignment *a = amf_asg_slot(si, su);
    if (!a)
        return -ENOSPC;
    log_info("Assigning '%s' to '%s' as %s", si->name, su->name, halo_ha_state_to_string(state));
    a->target = state;
    a->removing = false;
    amf_notify_assignment(si); /* before the component can act on its new role */
    if (amf->placement->publish_target(amf->placement_data, si, a) > 0) {
        a->pending = 1; /* its node applies it and confirms */
        return 0;
    }
    return amf_asg_send_set(si, su, a, transition);
}

int amf_unassign(struct si *si, struct assignment *a) {
    struct amf *amf = si->amf;
    log_info("Removing '%s' from '%s'", si->name, a->su->name);
    a->removing = true;
    amf_notify_assignment(si);
    if (amf->placement->publish_target(amf->placement_data, si, a) > 0) {
        a->pending = 1;
        return 0;
    }
    return amf_asg_send_remove(si, a);
}

void amf_asg_step_done(struct si *si, struct su *su) {
    struct amf *amf = si->amf;
    struct assignment *a = amf_si_find_su(si, su);
    if (!a || a->pending == 0)
        return;
    if (--a->pending > 0)
        return;
    if (a->removing) {
        if (su->local)
            amf->placement->publish_confirmed(amf->placement_data, si, a, true);
        amf_asg_clear(si, a);
    } else {
        a->state = a->target == HALO_HA_QUIESCING ? HALO_HA_QUIESCED : a->target;
        a->target = a->state;
        a->confirmed = true;
        log_info("'%s' is %s for '%s'", su->name, halo_ha_state_to_string(a->state), si->name);
        if (su->local)
            amf->placement->publish_confirmed(amf->placement_data, si, a, false);
    }
    amf_notify_si(si);
    amf_pg_notify(amf, si);
    amf_sg_evaluate(si->sg);
}

void amf_switchover_done(struct si *si, int error) {
    si->switchover = false;
    amf_waiter_done(&si->waiter, error);
}

void amf_su_check_lock_done(struct su *su) {
    if (!su->waiter && su->admin != SU_SHUTTING_DOWN)
        return;
    struct sg *sg = su->sg;
    for (size_t i = 0; i < sg->n_sis; i++)
        if (amf_si_find_su(&sg->sis[i], su))
            return;
    if (su->admin == SU_SHUTTING_DOWN) { /* the shutdown is complete: the unit is LOCKED */
        log_info("Service unit '%s' is LOCKED: its shutdown is complete", su->name);
        su->admin = SU_LOCKED;
        amf_notify_su(su, AMF_SU_ADMIN);
    }
    if (su->admin != SU_LOCKED_INSTANTIATION) /* that one waits for its processes */
        amf_waiter_done(&su->waiter, 0);
}

uint64_t amf_si_next_generation(struct si *si) {
    return ++si->generation;
}

/* ---- one node: every decision is applied here ---- */

static int local_publish_target(void *p, struct si *si, struct assignment *a) {
    return 0;
}

static void local_publish_confirmed(void *p, struct si *si, const struct assignment *a, bool removed) {
    si->generation++; /* one node: the generation counts confirmed changes */
}

static void local_forget(void *p, struct si *si, struct su *su) {
}

const struct amf_placement_ops amf_placement_local = {
    .distributed = false,
    .publish_target = local_publish_target,
    .publish_confirmed = local_publish_confirmed,
    .forget = local_forget,
};
