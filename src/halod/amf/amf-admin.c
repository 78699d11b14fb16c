/* SPDX-License-Identifier: MIT */
/*
 * The operator's maintenance operations on one service unit or component, as
 * the SA Forum AMF defines them: lock (its ACTIVEs go QUIESCED at once),
 * shutdown (QUIESCING: their work completes first), unlock, lock- and
 * unlock-instantiation (its processes stop and start), restart in place of a
 * component or of the whole unit (the unit keeps its roles; the new processes
 * get their CSIs again), repair, and the report of a failure from outside.
 * The operations on groups, nodes and SIs are in amf-admin-group.c.
 */
#define LOG_AREA LOG_AREA_AMF
#include <errno.h>

#include "amf-internal.h"
#include "log.h"
#include "macro.h"

/* On several nodes a unit's own halod locks, restarts and repairs it. */
static bool su_ours(const struct amf *a, const struct su *su) {
    return su->local || !a->placement->distributed;
}

static bool su_holds_any(struct su *su) {
    struct sg *sg = su->sg;
    for (size_t i = 0; i < sg->n_sis; i++)
        if (amf_si_find_su(&sg->sis[i], su))
            return true;
    return false;
}

static bool su_has_processes(const struct su *su) {
    for (size_t i = 0; i < su->n_comps; i++)
        if (su->comps[i].proc || su->comps[i].helper)
            return true;
    return false;
}

static void set_admin(struct su *su, enum su_admin admin) {
    log_info("Service unit '%s' is %s (was %s)", su->name, su_admin_to_string(admin), su_admin_to_string(su->admin));
    su->admin = admin;
    amf_notify_su(su, AMF_SU_ADMIN);
}

/* A waiter is told once: a second command on a unit already waited for answers at once. */
static int wait_for(struct su *su, struct amf_waiter *w) {
    if (su->waiter || !w)
        return 0;
    su->waiter = w;
    return 1;
}

int amf_su_op_lock(struct su *su, bool shutdown, struct amf_waiter *w) {
    if (su->admin == SU_LOCKED || su->admin == SU_LOCKED_INSTANTIATION || (shutdown && su->admin == SU_SHUTTING_DOWN))
        return -HALO_EEXIST;
    /* A lock during a shutdown stops waiting for the quiescing: what is left goes at once. */
    set_admin(su, shutdown ? SU_SHUTTING_DOWN : SU_LOCKED);
    int r = wait_for(su, w);
    amf_sg_evaluate(su->sg);
    amf_su_check_lock_done(su); /* holds nothing: w is told from inside this call */
    return r;
}

int amf_su_held(const struct su *su) {
    if (!(su->held_by & AMF_HELD_LOCKS))
        log_warning("Service unit '%s' stays %s while its node's switchover holds it: unlock-instantiation the node",
                    su->name, su_admin_to_string(su->admin));
    else
        log_warning("Service unit '%s' stays %s while the lock of its %s holds it: unlock that", su->name,
                    su_admin_to_string(su->admin), su->held_by & AMF_HELD_BY_SG ? "service group" : "node");
    return -EACCES;
}

int amf_su_op_unlock_own(struct su *su) {
    return su->held_by ? amf_su_held(su) : amf_su_op_unlock(su);
}

int amf_su_op_unlock(struct su *su) {
    if (su->admin == SU_UNLOCKED)
        return -HALO_EEXIST;
    if (su->admin == SU_LOCKED_INSTANTIATION)
        return -HALO_EBADSTATE; /* its processes first: unlock-instantiation */
    set_admin(su, SU_UNLOCKED);
    amf_waiter_done(&su->waiter, -ECANCELED); /* a lock or shutdown still under way is called off */
    amf_sg_evaluate(su->sg);
    return 0;
}

/* Its processes are all gone: a lock-instantiation is done. */
static void lock_instantiation_check(struct su *su) {
    if (su->admin != SU_LOCKED_INSTANTIATION || su_has_processes(su))
        return;
    log_info("Service unit '%s': every process stopped", su->name);
    amf_notify_su(su, AMF_SU_STATE);
    amf_waiter_done(&su->waiter, 0);
    amf_sg_evaluate(su->sg);
}

int amf_su_op_lock_instantiation(struct su *su, struct amf_waiter *w) {
    if (su->admin == SU_LOCKED_INSTANTIATION)
        return -HALO_EEXIST;
    if (su->admin != SU_LOCKED || su_holds_any(su) || su->failing)
        return -HALO_EBADSTATE; /* locked first, its work gone, no failure being recovered */
    set_admin(su, SU_LOCKED_INSTANTIATION);
    uv_timer_stop(&su->restart_timer);
    for (size_t i = 0; i < su->n_comps; i++) {
        struct comp *c = &su->comps[i];
        c->restart_in_place = false;
        if (c->proc)
            amf_comp_terminate(c);
        else if (c->presence == PRESENCE_RESTARTING)
            c->presence = PRESENCE_UNINSTANTIATED;
    }
    if (!su_has_processes(su)) {
        amf_notify_su(su, AMF_SU_STATE);
        return 0;
    }
    return wait_for(su, w);
}

int amf_su_op_unlock_instantiation(struct su *su) {
    if (su->admin != SU_LOCKED_INSTANTIATION)
        return -HALO_EBADSTATE;
    if (su->waiter || su_has_processes(su))
        return -EBUSY; /* still stopping */
    set_admin(su, SU_LOCKED);
    for (size_t i = 0; su->oper == SU_ENABLED && i < su->n_comps; i++)
        amf_comp_instantiate(&su->comps[i]);
    return 0;
}

bool amf_admin_comp_stopped(struct comp *c) {
    if (c->removing) { /* a reload's removal stopped it */
        amf_comp_removal_step(c);
        return true;
    }
    if (c->su->admin != SU_LOCKED_INSTANTIATION)
        return false;
    lock_instantiation_check(c->su);
    return true;
}

/* Whether c may restart in place now: running, registered, its unit holding its roles steadily. */
static int restart_check(struct comp *c) {
    /* A non-SA-aware component runs while ACTIVE only: its process, or its OCF resource (amf-nsa.c). */
    bool running = amf_comp_sa_aware(c) ? c->conn != NULL : amf_nsa_running(c);
    if (c->presence != PRESENCE_INSTANTIATED || !running || c->restart_in_place || amf_comp_restart_refused(c))
        return -HALO_EBADSTATE;
    return 0;
}

/* The ladder's restart in place (amf-ladder.c), not counted and not a failure. */
int amf_comp_op_restart(struct comp *c) {
    int r = restart_check(c);
    if (r < 0)
        return r;
    amf_comp_restart_in_place(c, NULL);
    return 0;
}

/* A non-SA-aware component that runs nothing (its unit is not ACTIVE) has nothing to restart. */
static bool restart_skipped(const struct comp *c) {
    return !amf_comp_sa_aware(c) && c->presence == PRESENCE_UNINSTANTIATED && !amf_nsa_running(c);
}

int amf_su_op_restart(struct su *su) {
    for (size_t i = 0; i < su->n_comps; i++) {
        int r = restart_skipped(&su->comps[i]) ? 0 : restart_check(&su->comps[i]);
        if (r < 0)
            return r;
    }
    log_info("Restarting service unit '%s' in place", su->name);
    for (size_t i = 0; i < su->n_comps; i++)
        if (!restart_skipped(&su->comps[i]))
            amf_comp_restart_in_place(&su->comps[i], NULL);
    return 0;
}

int amf_su_repair(struct amf *a, const char *name) {
    struct su *su = amf_find_su(a, name);
    if (!su || !su->local)
        return -HALO_EUNKNOWN;
    return amf_su_op_repair(su);
}

int amf_su_op_repair(struct su *su) {
    if (su->oper != SU_DISABLED) {
        if (!su->unkillable)
            return -HALO_EBADSTATE;
        amf_su_repaired_fence(su); /* its processes outlived SIGKILL: the operator says they are gone */
        return 0;
    }
    log_info("Service unit '%s' repaired by the operator", su->name);
    amf_su_repaired_fence(su); /* an OCF resource its failed stop left: the operator says it is gone */
    su->oper = SU_ENABLED;
    su->n_fail_times = 0;
    su->delay = 0;
    su->failing = false;
    amf_notify_su(su, AMF_SU_ADMIN);
    for (size_t i = 0; su->admin != SU_LOCKED_INSTANTIATION && i < su->n_comps; i++)
        if (!su->comps[i].proc)
            amf_comp_instantiate(&su->comps[i]);
        else
            su->comps[i].presence = PRESENCE_UNINSTANTIATED;
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

/* ---- the verbs of amf.h on one unit -------------------------------------- */

static struct su *su_for_op(struct amf *a, const char *name, int *ret) {
    struct su *su = amf_find_su(a, name);
    if (!su) {
        *ret = -HALO_EUNKNOWN;
        return NULL;
    }
    if (!su_ours(a, su)) {
        log_warning("Operation on '%s' refused: send it to its node, '%s'", su->name, su->cfg->node);
        *ret = -HALO_EBADSTATE;
        return NULL;
    }
    return su;
}

int amf_su_lock(struct amf *a, const char *name, struct amf_waiter *w) {
    int r = 0;
    struct su *su = su_for_op(a, name, &r);
    return su ? amf_su_op_lock(su, false, w) : r;
}

int amf_su_shutdown(struct amf *a, const char *name, struct amf_waiter *w) {
    int r = 0;
    struct su *su = su_for_op(a, name, &r);
    return su ? amf_su_op_lock(su, true, w) : r;
}

int amf_su_unlock(struct amf *a, const char *name) {
    int r = 0;
    struct su *su = su_for_op(a, name, &r);
    return su ? amf_su_op_unlock_own(su) : r;
}

int amf_comp_restart(struct amf *a, const char *name) {
    struct comp *c = amf_find_comp(a, name);
    if (!c || !c->su->local)
        return -HALO_EUNKNOWN;
    return amf_comp_op_restart(c);
}
