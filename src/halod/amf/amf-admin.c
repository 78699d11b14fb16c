/* SPDX-License-Identifier: MIT */
/* The operator's verbs: switchover of an SI, lock and unlock of an SU, restart of a component, repair of an SU. */
#define LOG_AREA LOG_AREA_AMF
#include <errno.h>

#include "amf-internal.h"
#include "log.h"
#include "macro.h"

/* On several nodes a unit's own halod locks, restarts and repairs it. */
static bool su_ours(const struct amf *a, const struct su *su) {
    return su->local || !a->placement->distributed;
}

int amf_si_switchover(struct amf *a, const char *name, struct amf_waiter *w) {
    struct si *si = amf_find_si(a, name);
    if (!si)
        return -HALO_EUNKNOWN;
    if (!a->deciding) {
        log_warning("Switchover of '%s' refused: only the coordinator's halod moves roles", si->name);
        return -HALO_EBADSTATE;
    }
    struct assignment *act = amf_si_find(si, HALO_HA_ACTIVE), *sb = amf_si_find(si, HALO_HA_STANDBY);
    if (si->switchover || amf_si_busy(si) || !act || !act->confirmed || !sb || !sb->confirmed ||
        !amf_su_may_be_active(sb->su))
        return -HALO_EBADSTATE; /* nothing to switch to, or a change is already under way */
    log_info("Switchover of '%s' from '%s' to '%s' requested", si->name, act->su->name, sb->su->name);
    si->switchover = true;
    si->waiter = w;
    /* A model keeping the group's SIs together (2N) swaps them all, as the SA
     * Forum's SI swap does: those ACTIVE on the same unit go along. */
    struct sg *sg = si->sg;
    for (size_t i = 0; sg->ops->policy->together && i < sg->n_sis; i++) {
        struct si *o = &sg->sis[i];
        struct assignment *oa = amf_si_find(o, HALO_HA_ACTIVE), *osb = amf_si_find(o, HALO_HA_STANDBY);
        if (o != si && !o->switchover && !amf_si_busy(o) && oa && oa->confirmed && oa->su == act->su && osb &&
            osb->confirmed && osb->su == sb->su) {
            log_info("Switchover of '%s' from '%s' to '%s' along with '%s'", o->name, oa->su->name, osb->su->name,
                     si->name);
            o->switchover = true;
        }
    }
    amf_sg_evaluate(sg);
    return 1;
}

static struct su *su_for_lock(struct amf *a, const char *name, int *ret) {
    struct su *su = amf_find_su(a, name);
    if (!su) {
        *ret = -HALO_EUNKNOWN;
        return NULL;
    }
    if (!su_ours(a, su)) {
        log_warning("Lock or unlock of '%s' refused: send it to its node, '%s'", su->name, su->cfg->node);
        *ret = -HALO_EBADSTATE;
        return NULL;
    }
    return su;
}

int amf_su_lock(struct amf *a, const char *name, struct amf_waiter *w) {
    int r = 0;
    struct su *su = su_for_lock(a, name, &r);
    if (!su)
        return r;
    if (su->admin == SU_LOCKED)
        return -HALO_EEXIST;
    log_info("Locking service unit '%s'", su->name);
    su->admin = SU_LOCKED;
    amf_notify_su(su, AMF_SU_ADMIN);
    su->waiter = w;
    amf_sg_evaluate(su->sg);
    amf_su_check_lock_done(su);
    return 1;
}

int amf_su_unlock(struct amf *a, const char *name) {
    int r = 0;
    struct su *su = su_for_lock(a, name, &r);
    if (!su)
        return r;
    if (su->admin == SU_UNLOCKED)
        return -HALO_EEXIST;
    log_info("Unlocking service unit '%s'", su->name);
    su->admin = SU_UNLOCKED;
    amf_notify_su(su, AMF_SU_ADMIN);
    amf_sg_evaluate(su->sg);
    return 0;
}

int amf_comp_restart(struct amf *a, const char *name) {
    struct comp *c = amf_find_comp(a, name);
    if (!c || !c->su->local)
        return -HALO_EUNKNOWN;
    if (c->presence != PRESENCE_INSTANTIATED || c->su->failing)
        return -HALO_EBADSTATE;
    log_info("Restart of component '%s' requested", c->name);
    c->su->admin_restart = true;
    amf_comp_fail(c, "restarted by the operator");
    return 0;
}

int amf_comp_report_failed(struct amf *a, const char *name) {
    struct comp *c = amf_find_comp(a, name);
    if (!c || !su_ours(a, c->su))
        return -HALO_EUNKNOWN;
    if (!c->proc || c->su->failing)
        return 0; /* not running: its end was reported when it ended */
    amf_comp_fail(c, "reported FAILED by an external monitor (POST /v1/events)");
    return 0;
}

int amf_su_repair(struct amf *a, const char *name) {
    struct su *su = amf_find_su(a, name);
    if (!su || !su->local)
        return -HALO_EUNKNOWN;
    if (su->oper != SU_DISABLED)
        return -HALO_EBADSTATE;
    log_info("Service unit '%s' repaired by the operator", su->name);
    su->oper = SU_ENABLED;
    su->n_fail_times = 0;
    su->delay = 0;
    su->failing = false;
    amf_notify_su(su, AMF_SU_ADMIN);
    for (size_t i = 0; i < su->n_comps; i++)
        if (!su->comps[i].proc)
            amf_comp_instantiate(&su->comps[i]);
    return 0;
}

int amf_run_op(struct amf *a, int op, const char *target, struct amf_waiter *w) {
    switch (op) {
    case AMF_OP_SWITCHOVER:
        return amf_si_switchover(a, target, w);
    case AMF_OP_LOCK:
        return amf_su_lock(a, target, w);
    case AMF_OP_UNLOCK:
        return amf_su_unlock(a, target);
    case AMF_OP_RESTART:
        return amf_comp_restart(a, target);
    case AMF_OP_REPAIR:
        return amf_su_repair(a, target);
    case AMF_OP_FAIL:
        return amf_comp_report_failed(a, target);
    case AMF_OP_EAM_START:
        return amf_comp_eam_start(a, target);
    case AMF_OP_EAM_STOP:
        return amf_comp_eam_stop(a, target);
    default:
        return -EOPNOTSUPP;
    }
}

const char *amf_op_where(struct amf *a, int op, const char *target) {
    struct su *su;
    struct comp *c;
    if (!a->placement->distributed)
        return NULL;
    switch (op) {
    case AMF_OP_SWITCHOVER:
        /* The coordinator moves roles. */
        return amf_find_si(a, target) && !a->deciding ? "" : NULL;
    case AMF_OP_RESTART:
    case AMF_OP_FAIL:
    case AMF_OP_EAM_START:
    case AMF_OP_EAM_STOP:
        c = amf_find_comp(a, target);
        return c && !c->su->local ? c->su->cfg->node : NULL;
    case AMF_OP_LOCK:
    case AMF_OP_UNLOCK:
    case AMF_OP_REPAIR:
        /* A unit's own node locks, unlocks and repairs it. */
        su = amf_find_su(a, target);
        return su && !su->local ? su->cfg->node : NULL;
    default:
        return NULL;
    }
}
