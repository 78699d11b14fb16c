/* SPDX-License-Identifier: MIT */
/*
 * Failures of service units: fencing (SIGKILL to every process of the unit),
 * dropping its assignments so the model promotes the standby at once, the
 * restart limit with its window, and the restart with bounded backoff.
 */
#define LOG_AREA LOG_AREA_AMF
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "amf-internal.h"
#include "log.h"
#include "macro.h"
#include "server.h"

static void on_restart_timer(uv_timer_t *t) {
    struct su *su = t->data;
    if (su->amf->stopping || su->oper == SU_DISABLED)
        return;
    su->restarts_total += !su->admin_restart;
    su->failing = false;
    su->admin_restart = false;
    log_info_fields(AMF_FIELDS_SU(su, NULL), "Restarting service unit '%s'", su->name);
    for (size_t i = 0; i < su->n_comps; i++)
        if (!su->comps[i].proc)
            amf_comp_instantiate(&su->comps[i]);
}

/* The SIs waiting for su's processes to be gone may now fail over. */
static void su_fence_done(struct su *su) {
    struct sg *sg = su->sg;
    bool any = false;
    uv_timer_stop(&su->fence_timer);
    su->unkillable = false;
    for (size_t i = 0; i < sg->n_sis; i++)
        if (sg->sis[i].fencing == su) {
            sg->sis[i].fencing = NULL;
            any = true;
        }
    amf_notify_su(su, AMF_SU_STATE); /* now fenced (amf_su_fenced()): published so */
    if (any && su->amf->deciding)
        amf_sg_evaluate(sg);
}

/* The OCF component of su whose resource may still be held after its fence: its stop has not
 * succeeded (it failed, was killed past its timeout, or still runs), or NULL. */
static const struct comp *ocf_held(const struct su *su) {
    for (size_t i = 0; i < su->n_comps; i++)
        if (amf_comp_ocf(&su->comps[i]) && (su->comps[i].ocf.up || su->comps[i].helper))
            return &su->comps[i];
    return NULL;
}

static void on_fence_timeout(uv_timer_t *t) {
    struct su *su = t->data;
    const struct comp *c = ocf_held(su);
    if (c) {
        /* A resource (an address, a mount) is no process that dies in the end: its SIs wait for
         * its stop, which its own timeout ends; if that fails, for an operator's repair. */
        log_warning("The OCF resource of component '%s' is not stopped yet: service unit '%s' is not fenced", c->name,
                    su->name);
        return;
    }
    /* Stuck in the kernel (a disk or a file system that does not answer): SIGKILL is pending, so
     * the process runs no more code of its own, but a write it has in the kernel may still land.
     * Its SIs go elsewhere when it is gone, as Pacemaker's resource waits for a stop that did not
     * succeed, or once an operator who checked says so. */
    log_error_fields(AMF_FIELDS_SU(su, NULL),
                     "Processes of service unit '%s' did not die within its terminate timeout after SIGKILL: "
                     "its service instances wait until they have (if they never do, end them, then "
                     "'haloctl repair %s')",
                     su->name, su->name);
    su->unkillable = true;
    amf_notify_su(su, AMF_SU_STATE);
}

void amf_su_repaired_fence(struct su *su) {
    if (su->unkillable) {
        log_notice("The operator says the processes of service unit '%s' are gone: its service instances fail over",
                   su->name);
        su->kill_waived = true;
        su_fence_done(su);
    }
    bool held = false;
    for (size_t i = 0; i < su->n_comps; i++) {
        struct comp *c = &su->comps[i];
        if (amf_comp_ocf(c) && c->ocf.up && !c->helper) {
            log_notice("The operator says the OCF resource of component '%s' is stopped", c->name);
            c->ocf.up = false;
            amf_guard_end(c);
            held = true;
        }
    }
    for (size_t i = 0; !held && i < su->sg->n_sis; i++)
        held = su->sg->sis[i].fencing == su;
    if (held && !ocf_held(su))
        su_fence_done(su);
}

bool amf_su_fenced(const struct su *su) {
    for (size_t i = 0; i < su->n_comps && !su->kill_waived; i++)
        if (su->comps[i].proc && !proc_has_exited(su->comps[i].proc))
            return false;
    for (size_t i = 0; i < su->sg->n_sis; i++)
        if (su->sg->sis[i].fencing == su)
            return false;
    return true;
}

void amf_su_failure_settled(struct su *su) {
    struct amf *a = su->amf;
    for (size_t i = 0; i < su->n_comps; i++)
        if (su->comps[i].proc || su->comps[i].helper)
            return;
    su->kill_waived = false; /* they are gone now */
    /* What the processes held is released before anything takes their place. */
    if (amf_nsa_cleanup(su))
        return;
    const struct comp *held = ocf_held(su);
    if (held && !a->stopping) {
        /* Its stop failed: the resource may still be held here.  Starting it elsewhere could make
         * two of it (two nodes with one address, one file system mounted twice): its SIs wait
         * until an operator has looked and runs 'haloctl repair' (OpenSAF reboots the node). */
        log_error_fields(AMF_FIELDS_SU(su, NULL),
                         "The OCF resource of component '%s' may still be held (its stop did not succeed): the "
                         "service instances of unit '%s' wait; stop it by hand, then 'haloctl repair %s'",
                         held->name, su->name, su->name);
        amf_notify_su(su, AMF_SU_STATE);
        return;
    }
    su_fence_done(su);
    if (a->stopping) {
        amf_stop_check(a);
        return;
    }
    if (su->oper == SU_DISABLED)
        return;
    usec_t delay = 0;
    if (!su->admin_restart) {
        const struct config_restart *rc = &su->comps[0].cfg->restart;
        delay = su->delay ? su->delay : rc->delay;
        su->delay = MIN(delay * 2, rc->delay_max);
    }
    char buf[32];
    log_info_fields(AMF_FIELDS_SU(su, NULL), "Service unit '%s' restarts in %s", su->name,
                    format_duration(buf, sizeof(buf), delay));
    for (size_t i = 0; i < su->n_comps; i++)
        su->comps[i].presence = PRESENCE_RESTARTING;
    uv_timer_start(&su->restart_timer, on_restart_timer, delay / 1000, 0);
}

/* Counts a failure against the restart limit; returns true if the SU may restart. */
static bool su_count_failure(struct su *su) {
    const struct config_restart *rc = &su->comps[0].cfg->restart;
    usec_t now = now_monotonic_usec();
    unsigned k = 0;

    for (unsigned i = 0; i < su->n_fail_times; i++)
        if (now - su->fail_times[i] < rc->window)
            su->fail_times[k++] = su->fail_times[i];
    su->n_fail_times = k;
    if (su->n_fail_times < rc->max + 1) {
        if (su->n_fail_times == su->cap_fail_times) {
            unsigned cap = MIN(MAX(su->cap_fail_times * 2, 4u), rc->max + 1);
            usec_t *t = reallocarray(su->fail_times, cap, sizeof(*t));
            if (!t) {
                /* Never past the limit for want of memory: no restart. */
                log_error("Out of memory counting the failures of service unit '%s': not restarting it", su->name);
                return false;
            }
            su->fail_times = t;
            su->cap_fail_times = cap;
        }
        su->fail_times[su->n_fail_times++] = now;
    }
    /* A run longer than `stable` resets the backoff. */
    bool stable = true;
    for (size_t i = 0; i < su->n_comps; i++)
        if (su->comps[i].spawned_at && now - su->comps[i].spawned_at < rc->stable)
            stable = false;
    if (stable)
        su->delay = 0;
    return su->n_fail_times <= rc->max;
}

/* Fence first: nothing of the failed SU may run once the standby is ACTIVE. */
static void su_fence(struct su *su) {
    for (size_t i = 0; i < su->n_comps; i++) {
        struct comp *c = &su->comps[i];
        if (c->helper && !c->helper_cleanup) /* a terminate command: the process is killed */
            (void)proc_kill(c->helper, SIGKILL);
        c->restart_in_place = false; /* the unit's failure recovery takes over */
        amf_comp_kill(c);
    }
}

void amf_comp_kill(struct comp *c) {
    c->spawn_deferred = false; /* its timer stops below */
    if (c->proc) {
        c->killed = true;
        (void)proc_kill(c->proc, SIGKILL);
    }
    uv_timer_stop(&c->timer);
    amf_hc_stop_all(c);
    amf_monitor_cancel(c);
    amf_inv_cancel_comp(c);
    if (amf_comp_proxied(c))
        amf_proxied_fence(c); /* the link is its proxy's, which is not killed: the proxy cleans it up */
    else if (c->conn) {
        struct conn *conn = c->conn;
        c->conn = NULL;
        /* The link of a killed process is of no further use. */
        server_conn_set_data(conn, NULL);
    }
    c->presence = c->proc ? PRESENCE_TERMINATING : PRESENCE_RESTARTING;
}

/*
 * Recovery of an SU (SU failover, the 2N default): fence it, drop its
 * assignments so the model promotes the standby at once, then restart it.
 */
void amf_su_failover(struct su *su, const char *why, struct comp *failed, const char *failed_why) {
    struct amf *a = su->amf;
    if (su->failing)
        return;
    su->failing = true;
    su->adopting = false;
    /* A restart in place under way is over: the whole unit restarts now. */
    for (size_t i = 0; i < su->n_comps; i++)
        su->comps[i].restart_in_place = false;
    free(su->last_failure);
    su->last_failure = strdup(why);
    if (!a->stopping)
        log_warning_fields(AMF_FIELDS_SU(su, AMF_MESSAGE_ID_SU_FAILED), "Service unit '%s' failed: %s", su->name, why);
    /* Every process the unit loses fails, not only the one that started it:
     * each is published FAILED (and ONLINE again once it is back). */
    for (size_t i = 0; i < su->n_comps; i++) {
        struct comp *c = &su->comps[i];
        if (c == failed)
            amf_notify_comp(c, AMF_COMP_FAILED, why);
        else if (c->proc && !a->stopping) {
            char buf[512];
            snprintf(buf, sizeof(buf), "its service unit failed: %s", why);
            amf_notify_comp(c, AMF_COMP_FAILED, buf);
        }
    }
    su_fence(su);

    bool may_restart = su->admin_restart || a->stopping || su_count_failure(su);
    if (!may_restart) {
        su->oper = SU_DISABLED;
        log_error_fields(
            AMF_FIELDS_SU(su, AMF_MESSAGE_ID_SU_DISABLED),
            "Service unit '%s' failed %u times within its restart window; disabled until 'haloctl repair %s'", su->name,
            su->n_fail_times, su->name);
        for (size_t i = 0; i < su->n_comps; i++)
            if (!su->comps[i].proc)
                su->comps[i].presence = PRESENCE_FAILED;
        amf_notify_su(su, AMF_SU_ADMIN);
    }

    /* A process that has already ended (the usual case: its link broke
     * because it died) holds nothing any more: its standby is promoted now,
     * not once the loop has told us of its exit. */
    bool alive = false;
    for (size_t i = 0; i < su->n_comps; i++)
        alive =
            alive || (su->comps[i].proc && !proc_has_exited(su->comps[i].proc)) || amf_nsa_cleanup_due(&su->comps[i]);

    /* Drop every assignment of the SU; the model reacts in amf_sg_evaluate(). */
    struct sg *sg = su->sg;
    for (size_t i = 0; i < sg->n_sis; i++) {
        struct si *si = &sg->sis[i];
        struct assignment *as = amf_si_find_su(si, su);
        if (!as)
            continue;
        if (alive && as->target != HALO_HA_STANDBY && !a->stopping) {
            si->fencing = su;
            uv_timer_start(&su->fence_timer, on_fence_timeout, su->comps[0].cfg->timeouts.terminate / 1000, 0);
        }
        amf_asg_clear(si, as);
        si->generation++;
        if (si->switchover)
            amf_switchover_done(si, -HALO_ECOMPFAILED);
    }
    amf_sg_evaluate(sg);
    for (size_t i = 0; i < sg->n_sis; i++) {
        amf_notify_si(&sg->sis[i]);
        amf_pg_notify(a, &sg->sis[i]);
    }
    amf_su_failure_settled(su);
    amf_proxied_proxy_failed(su);
}

void amf_su_fail(struct su *su, const char *why) {
    amf_su_failover(su, why, NULL, NULL);
}

/* ---- several nodes ---- */

void amf_fence_local(struct amf *a, const char *why) {
    for (size_t g = 0; g < a->n_sgs; g++) {
        struct sg *sg = &a->sgs[g];
        for (size_t u = 0; u < sg->n_sus; u++) {
            struct su *su = &sg->sus[u];
            if (!su->local || su->failing)
                continue;
            bool fail = su->adopting; /* what it holds is not ours to trust any more */
            for (size_t i = 0; i < sg->n_sis && !fail; i++) {
                struct assignment *as = amf_si_find_su(&sg->sis[i], su);
                fail = as && as->target != HALO_HA_STANDBY;
            }
            if (fail) {
                su->admin_restart = true; /* not counted against its restart limit */
                amf_su_fail(su, why);
            }
        }
    }
}
