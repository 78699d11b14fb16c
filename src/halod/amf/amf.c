/* SPDX-License-Identifier: MIT */
/*
 * The Availability Management Framework: component life cycle (spawn,
 * register, health checks, terminate, restart with backoff), invocations and
 * their timeouts, assignments of SIs to SUs, failure recovery, protection-group
 * tracking, operator commands, and the state kept in the store.  Which SU gets
 * which role is the redundancy model's decision (amf-2n.c); this file carries
 * the decisions out.
 *
 * Failover is the hot path: a component's death is seen on its HA link (EOF)
 * or its pidfd, whichever comes first; su_fail() fences the SU (SIGKILL to its
 * process groups), drops its assignments and asks the model, which sends
 * CSI set ACTIVE to the standby in the same loop iteration.  The store is
 * written after, asynchronously.
 */
#define LOG_AREA LOG_AREA_AMF
#include "amf.h"

#include <errno.h>
#include <inttypes.h>
#include <jansson.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <poll.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "amf-internal.h"
#include "cluster.h"
#include "log.h"
#include "macro.h"

enum inv_kind { INV_CSI_SET, INV_CSI_REMOVE, INV_TERMINATE, INV_HEALTHCHECK };

struct invocation {
    struct invocation *next, **pprev;
    struct amf *amf;
    uint64_t id;
    enum inv_kind kind;
    struct comp *comp;
    struct si *si; /* CSI set/remove */
    struct su *su; /* the assignment's SU (the slot is found again by SU) */
    halo_ha_state state;
    struct hc *hc; /* health check */
    bool acked;    /* QUIESCING: answered, waiting for quiescing complete */
    uv_timer_t timer;
};

struct tracker {
    struct tracker *next;
    struct conn *conn;
    char *csi;
    unsigned flags;
    size_t n_last;
    char **last_comp; /* members last reported */
    halo_ha_state *last_state;
};

static void su_fail(struct su *su, const char *why);
static void on_fence_timeout(uv_timer_t *t);
static void comp_instantiate(struct comp *c);
static void sg_evaluate(struct sg *sg);
static void pg_notify(struct amf *a, struct si *si);
static void persist_si(struct si *si);
static void persist_su(struct su *su);
static void persist_comp(struct comp *c);
static void stop_check(struct amf *a);

const char *presence_to_string(enum presence p) {
    static const char *const s[] = {"UNINSTANTIATED", "INSTANTIATING", "INSTANTIATED",
                                    "TERMINATING",    "RESTARTING",    "FAILED"};
    return p < ELEMENTSOF(s) ? s[p] : "?";
}

/* ---- lookups ------------------------------------------------------------ */

static struct comp *find_comp(struct amf *a, const char *name) {
    for (size_t g = 0; g < a->n_sgs; g++)
        for (size_t u = 0; u < a->sgs[g].n_sus; u++) {
            struct su *su = &a->sgs[g].sus[u];
            for (size_t i = 0; i < su->n_comps; i++)
                if (streq(su->comps[i].name, name))
                    return &su->comps[i];
        }
    return NULL;
}

/* The local component registered on conn (a process registers one component). */
static struct comp *find_comp_by_conn(struct amf *a, const struct conn *conn) {
    for (size_t g = 0; g < a->n_sgs; g++)
        for (size_t u = 0; u < a->sgs[g].n_sus; u++) {
            struct su *su = &a->sgs[g].sus[u];
            for (size_t i = 0; su->local && i < su->n_comps; i++)
                if (su->comps[i].conn == conn && su->comps[i].presence == PRESENCE_INSTANTIATED)
                    return &su->comps[i];
        }
    return NULL;
}

static struct su *find_su(struct amf *a, const char *name) {
    for (size_t g = 0; g < a->n_sgs; g++)
        for (size_t u = 0; u < a->sgs[g].n_sus; u++)
            if (streq(a->sgs[g].sus[u].name, name))
                return &a->sgs[g].sus[u];
    return NULL;
}

static struct si *find_si(struct amf *a, const char *name) {
    for (size_t g = 0; g < a->n_sgs; g++)
        for (size_t i = 0; i < a->sgs[g].n_sis; i++)
            if (streq(a->sgs[g].sis[i].name, name))
                return &a->sgs[g].sis[i];
    return NULL;
}

/* The SI owning a CSI, and the CSI's config. */
struct su *amf_find_su(struct amf *a, const char *name) {
    return find_su(a, name);
}

struct si *amf_find_si(struct amf *a, const char *name) {
    return find_si(a, name);
}

static struct si *find_csi(struct amf *a, const char *csi, const struct config_csi **ret) {
    for (size_t g = 0; g < a->n_sgs; g++)
        for (size_t i = 0; i < a->sgs[g].n_sis; i++) {
            struct si *si = &a->sgs[g].sis[i];
            for (size_t k = 0; k < si->cfg->n_csis; k++)
                if (streq(si->cfg->csis[k].name, csi)) {
                    *ret = &si->cfg->csis[k];
                    return si;
                }
        }
    return NULL;
}

/* The component of su that takes csi: the only one, else the first listing
 * the CSI's type, else the first that takes any type (no csi-types). */
static struct comp *csi_comp(struct su *su, const struct config_csi *csi) {
    struct comp *any = NULL;
    if (su->n_comps == 1)
        return &su->comps[0];
    for (size_t i = 0; i < su->n_comps; i++) {
        const struct config_component *cc = su->comps[i].cfg;
        if (cc->n_csi_types == 0 && !any)
            any = &su->comps[i];
        for (size_t t = 0; t < cc->n_csi_types; t++)
            if (csi->type && streq(cc->csi_types[t], csi->type))
                return &su->comps[i];
    }
    return any;
}

bool amf_su_in_service(const struct su *su) {
    if (!su->local)
        return su->report.known && su->report.in_service && !su->report.failing && !su->amf->stopping;
    if (su->admin != SU_UNLOCKED || su->oper != SU_ENABLED || su->failing || su->amf->stopping)
        return false;
    for (size_t i = 0; i < su->n_comps; i++)
        if (su->comps[i].presence != PRESENCE_INSTANTIATED || !su->comps[i].conn)
            return false;
    return true;
}

/* ---- invocations -------------------------------------------------------- */

static void inv_close_cb(uv_handle_t *h) {
    free(h->data);
}

static void inv_free(struct invocation *inv) {
    *inv->pprev = inv->next;
    if (inv->next)
        inv->next->pprev = inv->pprev;
    uv_timer_stop(&inv->timer);
    uv_close((uv_handle_t *)&inv->timer, inv_close_cb);
}

static struct invocation *inv_find(struct amf *a, uint64_t id) {
    for (struct invocation *i = a->invs; i; i = i->next)
        if (i->id == id)
            return i;
    return NULL;
}

static void on_inv_timeout(uv_timer_t *t);

static struct invocation *inv_new(struct comp *c, enum inv_kind kind, usec_t timeout) {
    struct amf *a = c->amf;
    struct invocation *inv = calloc(1, sizeof(*inv));
    if (!inv)
        return NULL;
    inv->amf = a;
    inv->id = a->next_inv++;
    inv->kind = kind;
    inv->comp = c;
    uv_timer_init(a->loop, &inv->timer);
    inv->timer.data = inv;
    uv_timer_start(&inv->timer, on_inv_timeout, (timeout + 999) / 1000, 0);
    inv->next = a->invs;
    if (a->invs)
        a->invs->pprev = &inv->next;
    inv->pprev = &a->invs;
    a->invs = inv;
    return inv;
}

/* Forgets every invocation of a component (it failed or went away). */
static void inv_cancel_comp(struct comp *c) {
    struct invocation *i = c->amf->invs, *next;
    for (; i; i = next) {
        next = i->next;
        if (i->comp == c)
            inv_free(i);
    }
}

/* ---- assignments -------------------------------------------------------- */

static struct assignment *asg_slot(struct si *si, struct su *su) {
    struct assignment *a = amf_si_find_su(si, su);
    if (a)
        return a;
    for (size_t i = 0; i < SI_ASSIGNMENTS_MAX; i++)
        if (!si->asg[i].su) {
            si->asg[i] = (struct assignment){.su = su};
            return &si->asg[i];
        }
    return NULL;
}

static void asg_clear(struct si *si, struct assignment *a) {
    struct su *su = a->su;
    if (su && si->amf->cluster && si->amf->coordinator)
        cl_forget(si, su);
    *a = (struct assignment){0};
    if (su)
        amf_su_check_lock_done(su);
    (void)si;
}

static int send_csi_set(struct si *si, struct comp *c, const struct config_csi *csi, halo_ha_state state,
                        halo_csi_transition transition, const char *active_comp) {
    struct amf *a = si->amf;
    usec_t timeout = state == HALO_HA_QUIESCING ? c->cfg->timeouts.quiescing : c->cfg->timeouts.csi_set;
    struct invocation *inv = inv_new(c, INV_CSI_SET, timeout);
    if (!inv)
        return -ENOMEM;
    inv->si = si;
    inv->su = c->su;
    inv->state = state;

    Halo__Link__CsiSet cs = HALO__LINK__CSI_SET__INIT;
    LinkMsg m = HALO__LINK__MSG__INIT;
    Halo__Link__Attr attrs[LINK_ATTRS_MAX];
    Halo__Link__Attr *pattrs[LINK_ATTRS_MAX];
    size_t n = MIN(csi->n_attrs, (size_t)LINK_ATTRS_MAX);

    for (size_t i = 0; i < n; i++) {
        halo__link__attr__init(&attrs[i]);
        attrs[i].name = csi->attrs[i].name;
        attrs[i].value = csi->attrs[i].value;
        pattrs[i] = &attrs[i];
    }
    cs.invocation = inv->id;
    cs.comp = (char *)c->name;
    cs.ha_state = state;
    cs.flags = HALO_CSI_ADD_ONE;
    cs.csi = csi->name;
    cs.si = (char *)si->name;
    cs.n_attrs = n;
    cs.attrs = pattrs;
    cs.transition = state == HALO_HA_ACTIVE ? transition : 0;
    cs.active_comp = (char *)(active_comp ?: "");
    m.body_case = HALO__LINK__MSG__BODY_CSI_SET;
    m.csi_set = &cs;
    log_debug("CSI set '%s' %s -> '%s' (invocation %" PRIu64 ")", csi->name, halo_ha_state_to_string(state), c->name,
              inv->id);
    /* A send failure closes the link, which fails the component: the
     * invocation is cancelled there. */
    (void)server_conn_send(c->conn, &m);
    (void)a;
    return 0;
}

/* The component of the active assignment holding csi, for a STANDBY's descriptor. */
static const char *active_comp_for(struct si *si, const struct config_csi *csi) {
    struct assignment *act = amf_si_find(si, HALO_HA_ACTIVE);
    if (!act)
        return NULL;
    struct comp *c = csi_comp(act->su, csi);
    return c ? c->name : NULL;
}

int amf_assign(struct si *si, struct su *su, halo_ha_state state, halo_csi_transition transition) {
    struct assignment *a = asg_slot(si, su);
    if (!a)
        return -ENOSPC;
    log_info("Assigning '%s' to '%s' as %s", si->name, su->name, halo_ha_state_to_string(state));
    a->target = state;
    if (si->sg == si->amf->cdb_sg)
        amf_cdb_roles_schedule(si->amf, 0); /* before the component can act on its new role */
    a->removing = false;
    if (si->amf->cluster && si->amf->coordinator) {
        a->gen = ++si->generation;
        cl_publish_target(si, a);
        if (!su->local) { /* its node applies it and confirms */
            a->pending = 1;
            return 0;
        }
    }
    if (!si->cfg->n_csis)
        return 0;
    for (size_t k = 0; k < si->cfg->n_csis; k++) {
        const struct config_csi *csi = &si->cfg->csis[k];
        struct comp *c = csi_comp(su, csi);
        if (!c || !c->conn)
            continue;
        a->pending++;
        int r = send_csi_set(si, c, csi, state, transition, state == HALO_HA_STANDBY ? active_comp_for(si, csi) : NULL);
        if (r < 0) {
            a->pending--;
            return r;
        }
        if (!a->su) /* the send failed and the SU failed with it */
            return -ENOTCONN;
    }
    return 0;
}

int amf_unassign(struct si *si, struct assignment *a) {
    struct su *su = a->su;
    log_info("Removing '%s' from '%s'", si->name, su->name);
    a->removing = true;
    if (si->sg == si->amf->cdb_sg)
        amf_cdb_roles_schedule(si->amf, 0);
    if (si->amf->cluster && si->amf->coordinator) {
        a->gen = ++si->generation;
        cl_publish_target(si, a);
        if (!su->local) {
            a->pending = 1;
            return 0;
        }
    }
    for (size_t k = 0; k < si->cfg->n_csis && a->su; k++) {
        const struct config_csi *csi = &si->cfg->csis[k];
        struct comp *c = csi_comp(su, csi);
        if (!c || !c->conn)
            continue;
        struct invocation *inv = inv_new(c, INV_CSI_REMOVE, c->cfg->timeouts.csi_remove);
        if (!inv)
            return -ENOMEM;
        inv->si = si;
        inv->su = su;
        a->pending++;
        Halo__Link__CsiRemove cr = HALO__LINK__CSI_REMOVE__INIT;
        LinkMsg m = HALO__LINK__MSG__INIT;
        cr.invocation = inv->id;
        cr.comp = (char *)c->name;
        cr.csi = csi->name;
        cr.flags = HALO_CSI_TARGET_ONE;
        m.body_case = HALO__LINK__MSG__BODY_CSI_REMOVE;
        m.csi_remove = &cr;
        (void)server_conn_send(c->conn, &m);
    }
    if (a->su && a->pending == 0) {
        if (si->amf->cluster)
            cl_publish_confirmed(si, a, true);
        asg_clear(si, a);
        persist_si(si);
        pg_notify(si->amf, si);
    }
    return 0;
}

/* One CSI set or remove for su's assignment of si finished well. */
static void asg_step_done(struct si *si, struct su *su) {
    struct assignment *a = amf_si_find_su(si, su);
    if (!a || a->pending == 0)
        return;
    if (--a->pending > 0)
        return;
    if (a->removing) {
        if (si->amf->cluster && su->local)
            cl_publish_confirmed(si, a, true);
        asg_clear(si, a);
    } else {
        a->state = a->target == HALO_HA_QUIESCING ? HALO_HA_QUIESCED : a->target;
        a->target = a->state;
        a->confirmed = true;
        log_info("'%s' is %s for '%s'", su->name, halo_ha_state_to_string(a->state), si->name);
        if (si->amf->cluster && su->local)
            cl_publish_confirmed(si, a, false);
    }
    if (!si->amf->cluster)
        si->generation++;
    persist_si(si);
    pg_notify(si->amf, si);
    sg_evaluate(si->sg);
}

void amf_asg_step_done(struct si *si, struct su *su) {
    asg_step_done(si, su);
}

static void reply_waiter(struct admin_waiter *w, int error) {
    if (w->request) {
        cl_admin_result(w, error);
        return;
    }
    if (!w->conn)
        return;
    (void)server_conn_reply(w->conn, w->seq, error, NULL);
    w->conn = NULL;
}

void amf_switchover_done(struct si *si, int error) {
    si->switchover = false;
    reply_waiter(&si->waiter, error);
}

void amf_su_check_lock_done(struct su *su) {
    if (!su->waiter.conn && !su->waiter.request)
        return;
    struct sg *sg = su->sg;
    for (size_t i = 0; i < sg->n_sis; i++)
        if (amf_si_find_su(&sg->sis[i], su))
            return;
    reply_waiter(&su->waiter, 0);
}

void amf_asg_clear(struct si *si, struct assignment *a) {
    asg_clear(si, a);
}

/* ---- failures and restarts ---------------------------------------------- */

static void on_restart_timer(uv_timer_t *t) {
    struct su *su = t->data;
    if (su->amf->stopping || su->oper == SU_DISABLED)
        return;
    su->failing = false;
    su->admin_restart = false;
    log_info("Restarting service unit '%s'", su->name);
    for (size_t i = 0; i < su->n_comps; i++)
        comp_instantiate(&su->comps[i]);
}

/* The SIs waiting for su's processes to be gone may now fail over. */
static void su_fence_done(struct su *su) {
    struct sg *sg = su->sg;
    bool any = false;
    uv_timer_stop(&su->fence_timer);
    if (su->amf->cluster)
        cl_publish_sustate(su);
    for (size_t i = 0; i < sg->n_sis; i++)
        if (sg->sis[i].fencing == su) {
            sg->sis[i].fencing = NULL;
            any = true;
        }
    if (any && su->amf->coordinator)
        sg_evaluate(sg);
}

static void on_fence_timeout(uv_timer_t *t) {
    struct su *su = t->data;
    log_error("Processes of service unit '%s' did not die within its terminate timeout after SIGKILL; "
              "failing over anyway",
              su->name);
    su_fence_done(su);
}

/* All processes of a failed SU are gone: schedule its restart, or disable it. */
static void su_failure_settled(struct su *su) {
    struct amf *a = su->amf;
    for (size_t i = 0; i < su->n_comps; i++)
        if (su->comps[i].proc)
            return;
    su_fence_done(su);
    if (a->stopping) {
        stop_check(a);
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
    log_info("Service unit '%s' restarts in %s", su->name, format_duration(buf, sizeof(buf), delay));
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

static void hc_stop_all(struct comp *c);

/*
 * Recovery of an SU (SU failover, the 2N default): fence it, drop its
 * assignments so the model promotes the standby at once, then restart it.
 */
static void su_fail(struct su *su, const char *why) {
    struct amf *a = su->amf;
    if (su->failing)
        return;
    su->failing = true;
    su->adopting = false;
    free(su->last_failure);
    su->last_failure = strdup(why);
    if (!a->stopping)
        log_warning("Service unit '%s' failed: %s", su->name, why);

    /* Fence first: nothing of the failed SU may run once the standby is ACTIVE. */
    for (size_t i = 0; i < su->n_comps; i++) {
        struct comp *c = &su->comps[i];
        if (c->proc)
            (void)proc_kill(c->proc, SIGKILL);
        uv_timer_stop(&c->timer);
        hc_stop_all(c);
        inv_cancel_comp(c);
        if (c->conn) {
            struct conn *conn = c->conn;
            c->conn = NULL;
            /* The link of a fenced process is of no further use. */
            server_conn_set_data(conn, NULL);
        }
        c->presence = c->proc ? PRESENCE_TERMINATING : PRESENCE_RESTARTING;
    }

    bool may_restart = su->admin_restart || a->stopping || su_count_failure(su);
    if (!may_restart) {
        su->oper = SU_DISABLED;
        log_error("Service unit '%s' failed %u times within its restart window; disabled until 'haloctl repair %s'",
                  su->name, su->n_fail_times, su->name);
        for (size_t i = 0; i < su->n_comps; i++)
            if (!su->comps[i].proc)
                su->comps[i].presence = PRESENCE_FAILED;
        persist_su(su);
    }

    bool alive = false;
    for (size_t i = 0; i < su->n_comps; i++)
        alive = alive || su->comps[i].proc;

    /* Drop every assignment of the SU; the model reacts in sg_evaluate(). */
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
        asg_clear(si, as);
        si->generation++;
        if (si->switchover)
            amf_switchover_done(si, -HALO_ECOMPFAILED);
    }
    sg_evaluate(sg);
    for (size_t i = 0; i < sg->n_sis; i++) {
        persist_si(&sg->sis[i]);
        pg_notify(a, &sg->sis[i]);
    }
    su_failure_settled(su);
}

void amf_su_fail(struct su *su, const char *why, bool counted) {
    if (su->failing)
        return;
    su->admin_restart = !counted;
    su_fail(su, why);
}

static void comp_fail(struct comp *c, const char *why) {
    char buf[512];
    snprintf(buf, sizeof(buf), "component '%s' %s", c->name, why);
    if (!c->su->failing)
        amf_event(c->amf, "process", c->name, "FAILED", why);
    su_fail(c->su, buf);
}

static void on_proc_exit(struct proc *p, int status, void *userdata) {
    struct comp *c = userdata;
    char buf[128];

    proc_status_to_string(status, buf, sizeof(buf));
    free(c->last_exit);
    c->last_exit = strdup(buf);
    c->proc = NULL;
    c->pid = 0;
    uv_timer_stop(&c->timer);
    persist_comp(c);
    if (!c->amf->stopping)
        amf_recovery_failed(c->amf, c);
    if (c->su->failing || c->amf->stopping || c->presence == PRESENCE_TERMINATING) {
        log_debug("Component '%s' (%s) %s", c->name, c->su->name, buf);
        c->presence = c->su->oper == SU_DISABLED ? PRESENCE_FAILED : PRESENCE_UNINSTANTIATED;
        if (c->amf->stopping)
            stop_check(c->amf);
        else if (c->su->failing)
            su_failure_settled(c->su);
        else
            comp_fail(c, "ended after terminate");
        return;
    }
    comp_fail(c, buf);
}

static void on_comp_timer(uv_timer_t *t) {
    struct comp *c = t->data;
    char buf[32];
    if (c->presence == PRESENCE_INSTANTIATING)
        comp_fail(c, "did not register within its instantiate timeout");
    else if (c->presence == PRESENCE_TERMINATING && c->proc) {
        log_warning("Component '%s' did not exit within %s of terminate; killing it", c->name,
                    format_duration(buf, sizeof(buf), c->cfg->timeouts.terminate));
        (void)proc_kill(c->proc, SIGKILL);
    }
}

static void comp_instantiate(struct comp *c) {
    struct amf *a = c->amf;
    c->adopted = false;
    c->object_states = c->states_resync = false;
    const struct config_component *cc = c->cfg;
    char **argv = calloc(cc->n_args + 2, sizeof(char *));
    char env_sock[PATH_MAX + 16], env_comp[CONFIG_NAME_MAX + 32], env_node[CONFIG_NAME_MAX + 16];
    char **env = calloc(cc->n_env + 4, sizeof(char *));
    char **envbufs = calloc(cc->n_env + 1, sizeof(char *));
    int r = -ENOMEM;

    if (!argv || !env || !envbufs)
        goto out;
    argv[0] = cc->command;
    for (size_t i = 0; i < cc->n_args; i++)
        argv[i + 1] = cc->args[i];
    size_t k = 0;
    for (size_t i = 0; i < cc->n_env; i++) {
        if (asprintf(&envbufs[i], "%s=%s", cc->env[i].name, cc->env[i].value) < 0) {
            envbufs[i] = NULL;
            goto out;
        }
        env[k++] = envbufs[i];
    }
    snprintf(env_sock, sizeof(env_sock), "HALO_SOCKET=%s", a->socket_path);
    snprintf(env_comp, sizeof(env_comp), "HALO_COMPONENT=%s", c->name);
    snprintf(env_node, sizeof(env_node), "HALO_NODE=%s", a->node);
    env[k++] = env_sock;
    env[k++] = env_comp;
    env[k++] = env_node;

    struct spawn_params sp = {.path = cc->command, .argv = argv, .env = env, .workdir = cc->workdir};
    r = supervisor_spawn(a->sup, &sp, on_proc_exit, c, &c->proc);
out:
    if (envbufs)
        for (size_t i = 0; i < cc->n_env; i++)
            free(envbufs[i]);
    free(envbufs);
    free(env);
    free(argv);
    if (r < 0) {
        log_error_errno(r, "Failed to spawn component '%s': %m", c->name);
        c->proc = NULL;
        su_fail(c->su, "spawn failed");
        return;
    }
    c->pid = proc_pid(c->proc);
    c->presence = PRESENCE_INSTANTIATING;
    c->spawned_at = now_monotonic_usec();
    c->restarts++;
    log_info("Started component '%s' as pid %d", c->name, (int)c->pid);
    uv_timer_start(&c->timer, on_comp_timer, cc->timeouts.instantiate / 1000, 0);
    persist_comp(c);
}

/* ---- health checks ------------------------------------------------------ */

/* Both timers must be closed before the struct goes; libuv does not promise
 * the order of close callbacks. */
static void hc_close_cb(uv_handle_t *h) {
    struct hc *hc = h->data;
    if (--hc->closing == 0) {
        free(hc->key);
        free(hc);
    }
}

static void hc_free(struct hc *hc) {
    struct invocation *inv = hc->pending ? inv_find(hc->comp->amf, hc->pending) : NULL;
    if (inv)
        inv_free(inv);
    uv_timer_stop(&hc->period);
    uv_timer_stop(&hc->timeout);
    hc->closing = 2;
    uv_close((uv_handle_t *)&hc->period, hc_close_cb);
    uv_close((uv_handle_t *)&hc->timeout, hc_close_cb);
}

static void hc_stop_all(struct comp *c) {
    while (c->hcs) {
        struct hc *hc = c->hcs;
        c->hcs = hc->next;
        hc_free(hc);
    }
}

static void on_hc_timeout(uv_timer_t *t) {
    struct hc *hc = t->data;
    char buf[160], d[32];
    snprintf(buf, sizeof(buf), "missed health check '%s' (no answer within %s)", hc->key,
             format_duration(d, sizeof(d), hc->comp->cfg->healthcheck.timeout));
    comp_fail(hc->comp, buf);
}

static void on_hc_period(uv_timer_t *t) {
    struct hc *hc = t->data;
    struct comp *c = hc->comp;
    if (hc->pending || !c->conn)
        return; /* the previous check is still out; its timeout decides */
    struct invocation *inv = inv_new(c, INV_HEALTHCHECK, c->cfg->healthcheck.timeout + USEC_PER_SEC);
    if (!inv)
        return;
    inv->hc = hc;
    hc->pending = inv->id;
    uv_timer_start(&hc->timeout, on_hc_timeout, c->cfg->healthcheck.timeout / 1000, 0);
    Halo__Link__Healthcheck h = HALO__LINK__HEALTHCHECK__INIT;
    LinkMsg m = HALO__LINK__MSG__INIT;
    h.invocation = inv->id;
    h.comp = (char *)c->name;
    h.key = hc->key;
    m.body_case = HALO__LINK__MSG__BODY_HEALTHCHECK;
    m.healthcheck = &h;
    (void)server_conn_send(c->conn, &m);
}

static struct hc *hc_find(struct comp *c, const char *key) {
    for (struct hc *hc = c->hcs; hc; hc = hc->next)
        if (streq(hc->key, key))
            return hc;
    return NULL;
}

static int hc_start(struct comp *c, const char *key, halo_hc_invoked invoked, halo_recovery recovery) {
    if (hc_find(c, key))
        return -HALO_EEXIST;
    struct hc *hc = calloc(1, sizeof(*hc));
    if (!hc || !(hc->key = strdup(key))) {
        free(hc);
        return -ENOMEM;
    }
    hc->comp = c;
    hc->invoked = invoked;
    hc->recovery = recovery;
    uv_timer_init(c->amf->loop, &hc->period);
    uv_timer_init(c->amf->loop, &hc->timeout);
    hc->period.data = hc->timeout.data = hc;
    hc->next = c->hcs;
    c->hcs = hc;
    uint64_t period = c->cfg->healthcheck.period / 1000;
    if (invoked == HALO_HC_AMF_INVOKED)
        uv_timer_start(&hc->period, on_hc_period, period, period);
    else
        uv_timer_start(&hc->timeout, on_hc_timeout, (c->cfg->healthcheck.period + c->cfg->healthcheck.timeout) / 1000,
                       0);
    log_debug("Health check '%s' of '%s' started (%s-invoked)", key, c->name,
              invoked == HALO_HC_AMF_INVOKED ? "AMF" : "component");
    return 0;
}

static int hc_stop(struct comp *c, const char *key) {
    for (struct hc **p = &c->hcs; *p; p = &(*p)->next)
        if (streq((*p)->key, key)) {
            struct hc *hc = *p;
            *p = hc->next;
            hc_free(hc);
            return 0;
        }
    return -ENOENT;
}

/* ---- protection-group tracking ------------------------------------------ */

static void tracker_free(struct tracker *t) {
    for (size_t i = 0; i < t->n_last; i++)
        free(t->last_comp[i]);
    free(t->last_comp);
    free(t->last_state);
    free(t->csi);
    free(t);
}

/* Current members of a CSI's protection group. */
static size_t pg_members(struct si *si, const struct config_csi *csi, const char **comps, halo_ha_state *states) {
    size_t n = 0;
    for (size_t i = 0; i < SI_ASSIGNMENTS_MAX; i++) {
        struct assignment *a = &si->asg[i];
        if (!a->su || !a->confirmed || a->removing)
            continue;
        struct comp *c = csi_comp(a->su, csi);
        if (!c)
            continue;
        comps[n] = c->name;
        states[n] = a->state;
        n++;
    }
    return n;
}

static void tracker_send(struct amf *a, struct tracker *t, bool initial) {
    const struct config_csi *csi;
    struct si *si = find_csi(a, t->csi, &csi);
    const char *comps[SI_ASSIGNMENTS_MAX];
    halo_ha_state states[SI_ASSIGNMENTS_MAX];
    size_t n = si ? pg_members(si, csi, comps, states) : 0;

    Halo__Link__PgMember mem[2 * SI_ASSIGNMENTS_MAX], *pm[2 * SI_ASSIGNMENTS_MAX];
    size_t k = 0;
    bool changed = initial;
    for (size_t i = 0; i < n; i++) {
        halo_pg_change ch = HALO_PG_ADDED;
        for (size_t j = 0; j < t->n_last; j++)
            if (streq(t->last_comp[j], comps[i]))
                ch = t->last_state[j] == states[i] ? HALO_PG_NO_CHANGE : HALO_PG_STATE_CHANGED;
        if (initial)
            ch = HALO_PG_NO_CHANGE;
        if (ch != HALO_PG_NO_CHANGE)
            changed = true;
        if (ch == HALO_PG_NO_CHANGE && (t->flags & HALO_TRACK_CHANGES_ONLY) && !initial)
            continue;
        halo__link__pg_member__init(&mem[k]);
        mem[k].comp = (char *)comps[i];
        mem[k].ha_state = states[i];
        mem[k].change = ch;
        pm[k] = &mem[k];
        k++;
    }
    for (size_t j = 0; j < t->n_last && !initial; j++) {
        bool still = false;
        for (size_t i = 0; i < n; i++)
            still = still || streq(t->last_comp[j], comps[i]);
        if (still || k >= ELEMENTSOF(mem))
            continue;
        changed = true;
        halo__link__pg_member__init(&mem[k]);
        mem[k].comp = t->last_comp[j];
        mem[k].ha_state = t->last_state[j];
        mem[k].change = HALO_PG_REMOVED;
        pm[k] = &mem[k];
        k++;
    }
    if (changed) {
        Halo__Link__PgTrackNotify pn = HALO__LINK__PG_TRACK_NOTIFY__INIT;
        LinkMsg m = HALO__LINK__MSG__INIT;
        pn.csi = t->csi;
        pn.n_members = k;
        pn.members = pm;
        m.body_case = HALO__LINK__MSG__BODY_PG_TRACK_NOTIFY;
        m.pg_track_notify = &pn;
        (void)server_conn_send(t->conn, &m);
    }
    /* Remember what was reported (the send above may have closed the conn,
     * which frees t: only touch t if it is still listed). */
    for (struct tracker *x = a->trackers; x; x = x->next)
        if (x == t) {
            for (size_t j = 0; j < t->n_last; j++)
                free(t->last_comp[j]);
            t->n_last = 0;
            char **lc = realloc(t->last_comp, (n ?: 1) * sizeof(char *));
            halo_ha_state *ls = realloc(t->last_state, (n ?: 1) * sizeof(halo_ha_state));
            if (lc)
                t->last_comp = lc;
            if (ls)
                t->last_state = ls;
            if (!lc || !ls)
                return;
            for (size_t i = 0; i < n; i++) {
                t->last_comp[i] = strdup(comps[i]);
                t->last_state[i] = states[i];
                if (t->last_comp[i])
                    t->n_last++;
            }
            break;
        }
}

static void pg_notify(struct amf *a, struct si *si) {
    struct tracker *t, *next;
    for (t = a->trackers; t; t = next) {
        next = t->next;
        if (!(t->flags & (HALO_TRACK_CHANGES | HALO_TRACK_CHANGES_ONLY)))
            continue;
        const struct config_csi *csi;
        if (find_csi(a, t->csi, &csi) == si)
            tracker_send(a, t, false);
    }
}

/* ---- the model ---------------------------------------------------------- */

static void sg_evaluate(struct sg *sg) {
    if (sg->amf->cdb_sg == sg)
        amf_cdb_roles_schedule(sg->amf, 0);
    if (sg->amf->cluster)
        for (size_t u = 0; u < sg->n_sus; u++)
            if (sg->sus[u].local)
                cl_publish_sustate(&sg->sus[u]);
    if (sg->amf->stopping || !sg->amf->coordinator)
        return;
    sg->ops->evaluate(sg);
}

void amf_sg_changed(struct sg *sg) {
    sg_evaluate(sg);
}

/* ---- persistence -------------------------------------------------------- */

static void on_persisted(store *s, int error, const store_result *r, void *userdata) {
    if (error < 0)
        log_warning_errno(error, "Failed to write state to the store: %m");
}

static void persist_json(struct amf *a, const char *kind, const char *name, json_t *j) {
    char key[STORE_KEY_MAX];
    if (!j)
        return;
    char *v = json_dumps(j, JSON_COMPACT | JSON_SORT_KEYS);
    json_decref(j);
    if (!v)
        return;
    snprintf(key, sizeof(key), "%s%s/%s", a->prefix, kind, name);
    int r = store_put(a->store, key, v, strlen(v), 0, on_persisted, NULL);
    if (r < 0)
        log_warning_errno(r, "Failed to write '%s' to the store: %m", key);
    free(v);
}

static void persist_si(struct si *si) {
    if (!si->amf->coordinator)
        return; /* several nodes: only the coordinator writes the SI's record */
    json_t *arr = json_array();
    for (size_t i = 0; i < SI_ASSIGNMENTS_MAX; i++)
        if (si->asg[i].su && si->asg[i].confirmed)
            json_array_append_new(arr, json_pack("{s:s, s:s}", "su", si->asg[i].su->name, "ha_state",
                                                 halo_ha_state_to_string(si->asg[i].state)));
    persist_json(
        si->amf, "assignments", si->name,
        json_pack("{s:s, s:I, s:o}", "si", si->name, "generation", (json_int_t)si->generation, "assignments", arr));
}

static void persist_su(struct su *su) {
    persist_json(su->amf, "su", su->name,
                 json_pack("{s:s, s:s, s:s}", "su", su->name, "admin", su->admin == SU_LOCKED ? "LOCKED" : "UNLOCKED",
                           "oper", su->oper == SU_DISABLED ? "DISABLED" : "ENABLED"));
}

/* Start time of a process in clock ticks since boot, from /proc; 0 if unknown. */
static unsigned long long proc_starttime(pid_t pid) {
    char path[64], buf[1024];
    snprintf(path, sizeof(path), "/proc/%d/stat", (int)pid);
    FILE *f = fopen(path, "re");
    if (!f)
        return 0;
    size_t n = fread(buf, 1, sizeof(buf) - 1, f);
    fclose(f);
    buf[n] = 0;
    char *p = strrchr(buf, ')');
    if (!p)
        return 0;
    unsigned long long st = 0;
    /* Field 22 (starttime); p points at field 2's end. */
    if (sscanf(p + 2, "%*c %*d %*d %*d %*d %*d %*u %*u %*u %*u %*u %*u %*u %*d %*d %*d %*d %*d %*d %llu", &st) != 1)
        return 0;
    return st;
}

static void persist_comp(struct comp *c) {
    persist_json(c->amf, "components", c->name,
                 json_pack("{s:s, s:s, s:i, s:I}", "component", c->name, "node", c->amf->node, "pid", (int)c->pid,
                           "starttime", (json_int_t)(c->pid ? proc_starttime(c->pid) : 0)));
}

/* A previous halod died and left component processes behind (they are ours
 * by pid and start time).  Adopt them: they keep running and serving, their
 * assignments are restored, and they have their instantiate timeout to
 * register again (libhalo reconnects by itself).  A process that cannot be
 * adopted is killed and waited for, or two instances would serve. */
static void restore_comp(struct amf *a, json_t *j) {
    const char *name = json_string_value(json_object_get(j, "component"));
    json_int_t pid = json_integer_value(json_object_get(j, "pid"));
    json_int_t st = json_integer_value(json_object_get(j, "starttime"));
    struct comp *c = name ? find_comp(a, name) : NULL;
    if (!c || !c->su->local || pid <= 1 || st <= 0)
        return;
    if (proc_starttime((pid_t)pid) != (unsigned long long)st)
        return;
    if (c->su->oper != SU_DISABLED && c->su->admin == SU_UNLOCKED && !c->proc &&
        supervisor_adopt(a->sup, (pid_t)pid, on_proc_exit, c, &c->proc) == 0) {
        log_notice("Adopting component '%s' (pid %d), left running by the previous halod", name, (int)pid);
        c->pid = (pid_t)pid;
        c->adopted = true;
        c->presence = PRESENCE_INSTANTIATING;
        c->su->adopting = true;
        c->spawned_at = now_monotonic_usec();
        uv_timer_start(&c->timer, on_comp_timer, c->cfg->timeouts.instantiate / 1000, 0);
        return;
    }
    log_warning("Component '%s' (pid %d) survived a previous halod and cannot be adopted; stopping it", name, (int)pid);
    /* Its pidfd polls readable once it has exited, reaped or not (it is not our child). */
    int pidfd = (int)syscall(SYS_pidfd_open, (pid_t)pid, 0);
    if (kill(-(pid_t)pid, SIGKILL) < 0)
        (void)kill((pid_t)pid, SIGKILL);
    if (pidfd < 0)
        return;
    /* Wait before anything new starts, or the old and the new instance would overlap:
     * this runs once at start, before the loop serves anyone, and is bounded. */
    struct pollfd p = {.fd = pidfd, .events = POLLIN};
    if (poll(&p, 1, 2000) == 0)
        log_error("Leftover component '%s' (pid %d) did not die within 2 s of SIGKILL", name, (int)pid);
    close(pidfd);
}

static void restore_su(struct amf *a, json_t *j) {
    struct su *su = find_su(a, json_string_value(json_object_get(j, "su")) ?: "");
    const char *admin = json_string_value(json_object_get(j, "admin"));
    const char *oper = json_string_value(json_object_get(j, "oper"));
    if (su && admin && streq(admin, "LOCKED")) {
        su->admin = SU_LOCKED;
        log_info("Service unit '%s' stays locked, as it was before the restart", su->name);
    }
    if (su && oper && streq(oper, "DISABLED")) {
        su->oper = SU_DISABLED;
        for (size_t i = 0; i < su->n_comps; i++)
            su->comps[i].presence = PRESENCE_FAILED;
        log_warning("Service unit '%s' stays disabled, as it was before the restart; 'haloctl repair %s' starts it",
                    su->name, su->name);
    }
}

static void restore_si(struct amf *a, json_t *j) {
    struct si *si = find_si(a, json_string_value(json_object_get(j, "si")) ?: "");
    if (!si)
        return;
    si->generation = (uint64_t)json_integer_value(json_object_get(j, "generation"));
    size_t i;
    json_t *e;
    json_array_foreach(json_object_get(j, "assignments"), i, e) {
        const char *st = json_string_value(json_object_get(e, "ha_state"));
        const char *su = json_string_value(json_object_get(e, "su"));
        if (st && su && streq(st, "ACTIVE") && find_su(a, su)) {
            free(si->preferred_active);
            si->preferred_active = strdup(su);
        }
        struct su *u = su ? find_su(a, su) : NULL;
        if (u && u->adopting && !a->cluster && st && (streq(st, "ACTIVE") || streq(st, "STANDBY"))) {
            struct assignment *as = asg_slot(si, u);
            if (as) {
                as->state = as->target = streq(st, "ACTIVE") ? HALO_HA_ACTIVE : HALO_HA_STANDBY;
                as->confirmed = true;
                log_info("'%s' stays %s for '%s' (adopted)", u->name, st, si->name);
            }
        }
    }
}

static void instantiate_all(struct amf *a) {
    for (size_t g = 0; g < a->n_sgs; g++)
        for (size_t u = 0; u < a->sgs[g].n_sus; u++) {
            struct su *su = &a->sgs[g].sus[u];
            if (!su->local || su->oper == SU_DISABLED)
                continue;
            for (size_t i = 0; i < su->n_comps; i++)
                if (!su->comps[i].proc)
                    comp_instantiate(&su->comps[i]);
        }
}

static void on_restored(store *s, int error, const store_result *r, void *userdata) {
    struct amf *a = userdata;
    if (error < 0)
        log_warning_errno(error, "Failed to read the previous state from the store, starting afresh: %m");
    /* Units first (a locked or disabled one is not adopted), then the
     * processes to adopt, then the assignments they hold. */
    for (int pass = 0; pass < 3; pass++)
        for (size_t i = 0; r && i < r->n_kvs; i++) {
            const store_kv *kv = &r->kvs[i];
            const char *rest = kv->key + strlen(a->prefix);
            int want = strncmp(rest, "su/", 3) == 0             ? 0
                       : strncmp(rest, "components/", 11) == 0  ? 1
                       : strncmp(rest, "assignments/", 12) == 0 ? 2
                                                                : -1;
            if (want != pass)
                continue;
            json_t *j = json_loadb(kv->value, kv->value_len, 0, NULL);
            if (!j)
                continue;
            if (pass == 0)
                restore_su(a, j);
            else if (pass == 1)
                restore_comp(a, j);
            else
                restore_si(a, j);
            json_decref(j);
        }
    if (a->cluster) {
        /* SU reports first: a target is only taken for an SU whose state is known. */
        for (int pass = 0; pass < 3; pass++)
            for (size_t i = 0; r && i < r->n_kvs; i++) {
                const char *rest = r->kvs[i].key + strlen(a->prefix);
                bool first = strncmp(rest, "sustate/", 8) == 0 || strncmp(rest, "nodes/", 6) == 0;
                bool second = strncmp(rest, "target/", 7) == 0;
                if ((pass == 0 && first) || (pass == 1 && second) || (pass == 2 && !first && !second))
                    cl_handle_kv(a, &r->kvs[i], false);
            }
        int w = cl_watch_start(a, r ? r->revision + 1 : 0);
        if (w < 0)
            log_error_errno(w, "Failed to watch the cluster's keys: %m");
    }
    a->restored = true;
    if (!a->events) {
        int e = amf_events_start(a);
        if (e < 0)
            log_error_errno(e, "Failed to start the event queues: %m");
        else if ((e = amf_recovery_start(a)) < 0)
            log_error_errno(e, "Failed to start the recovery of this node's pool processes: %m");
    }
    if (!a->stopping)
        instantiate_all(a);
}

int amf_start(struct amf *a) {
    return store_range(a->store, a->prefix, on_restored, a);
}

/* ---- messages ----------------------------------------------------------- */

/* The component c names, if this connection registered it. */
static struct comp *conn_comp(struct amf *a, struct conn *conn, const char *name, int *ret_err) {
    struct comp *c = find_comp(a, name);
    if (!c) {
        *ret_err = -HALO_EUNKNOWN;
        return NULL;
    }
    if (c->conn != conn) {
        *ret_err = -HALO_ENOTREG;
        return NULL;
    }
    return c;
}

static int handle_register(struct amf *a, struct conn *conn, const Halo__Link__Register *m) {
    /* Until the previous state is read back we do not know whom we adopt:
     * a process resuming early asks again (libhalo retries on ETRYAGAIN). */
    if (!a->restored)
        return -HALO_ETRYAGAIN;
    struct comp *c = find_comp(a, m->comp);
    if (!c || !c->su->local)
        return -HALO_EUNKNOWN;
    if (m->proxy && *m->proxy)
        return -EOPNOTSUPP;
    if (c->conn)
        return -HALO_EEXIST;
    if (c->presence != PRESENCE_INSTANTIATING || !c->proc)
        return -HALO_EBADSTATE;
    if (m->resume && !c->adopted) {
        log_warning("Component '%s' asked to resume, but this halod did not adopt it; refused", c->name);
        return -HALO_EBADSTATE;
    }
    /* Only the process halod started for this component (or one of its
     * process group) may register it. */
    pid_t pid = server_conn_pid(conn);
    if (pid != c->pid && getpgid(pid) != c->pid) {
        log_warning("Process %d tried to register '%s', which runs as pid %d; refused", (int)pid, c->name, (int)c->pid);
        return -EPERM;
    }
    c->conn = conn;
    c->presence = PRESENCE_INSTANTIATED;
    uv_timer_stop(&c->timer);
    if (!amf_recovery_registered(a, c))
        amf_event(a, "process", c->name, "ONLINE", NULL);
    log_info("Component '%s' registered (pid %d)%s", c->name, (int)c->pid, c->adopted ? ", adopted" : "");
    if (c->su->adopting) {
        bool all = true;
        for (size_t i = 0; i < c->su->n_comps; i++)
            if (c->su->comps[i].presence != PRESENCE_INSTANTIATED)
                all = false;
        if (all) {
            c->su->adopting = false;
            log_notice("Service unit '%s' adopted with its assignments", c->su->name);
            if (a->cluster)
                cl_adopted(c->su);
        }
    }
    return 0;
}

static void handle_response(struct amf *a, struct conn *conn, const Halo__Link__Response *m) {
    struct invocation *inv = inv_find(a, m->invocation);
    if (!inv || inv->comp->conn != conn) {
        log_debug("Response for unknown invocation %" PRIu64 " from %s", m->invocation, server_conn_name(conn));
        if (m->seq)
            (void)server_conn_reply(conn, m->seq, -HALO_EBADINVOCATION, NULL);
        return;
    }
    if (m->seq)
        (void)server_conn_reply(conn, m->seq, 0, NULL);
    struct comp *c = inv->comp;
    struct si *si = inv->si;
    struct su *su = inv->su;
    char buf[160];

    switch (inv->kind) {
    case INV_CSI_SET:
        if (m->error != 0) {
            snprintf(buf, sizeof(buf), "answered CSI set %s with error: %s", halo_ha_state_to_string(inv->state),
                     halo_strerror(m->error));
            comp_fail(c, buf);
            return;
        }
        if (inv->state == HALO_HA_QUIESCING && !m->quiescing_complete) {
            inv->acked = true; /* wait for quiescing complete */
            return;
        }
        inv_free(inv);
        asg_step_done(si, su);
        return;
    case INV_CSI_REMOVE:
        inv_free(inv);
        if (m->error != 0) {
            comp_fail(c, "failed a CSI remove");
            return;
        }
        asg_step_done(si, su);
        return;
    case INV_TERMINATE:
        inv_free(inv);
        /* Now it should exit; the terminate timer still runs and kills it if not. */
        return;
    case INV_HEALTHCHECK: {
        struct hc *hc = inv->hc;
        inv_free(inv);
        hc->pending = 0;
        uv_timer_stop(&hc->timeout);
        if (m->error != 0) {
            snprintf(buf, sizeof(buf), "failed health check '%s'", hc->key);
            comp_fail(c, buf);
        }
        return;
    }
    }
}

static void on_inv_timeout(uv_timer_t *t) {
    struct invocation *inv = t->data;
    struct comp *c = inv->comp;
    char buf[128];
    switch (inv->kind) {
    case INV_CSI_SET:
        snprintf(buf, sizeof(buf), "did not answer CSI set %s in time", halo_ha_state_to_string(inv->state));
        comp_fail(c, buf);
        break;
    case INV_CSI_REMOVE:
        comp_fail(c, "did not answer CSI remove in time");
        break;
    case INV_TERMINATE:
    case INV_HEALTHCHECK:
        inv_free(inv); /* the terminate / health check timers decide */
        break;
    }
}

static void handle_admin(struct amf *a, struct conn *conn, const Halo__Link__Admin *m);

void amf_handle_msg(struct amf *a, struct conn *conn, const LinkMsg *m) {
    int r = 0;
    uint64_t seq = 0;
    struct comp *c;

    switch (m->body_case) {
    case HALO__LINK__MSG__BODY_REGISTER:
        seq = m->register_->seq;
        r = handle_register(a, conn, m->register_);
        (void)server_conn_reply(conn, seq, r, NULL);
        if (r == 0) {
            c = find_comp(a, m->register_->comp);
            if (m->register_->object_states) { /* what is known now; the BQ follows */
                amf_events_snapshot(a, conn);
                c->object_states = true;
                c->states_resync = false;
            }
            sg_evaluate(c->su->sg);
        }
        return;
    case HALO__LINK__MSG__BODY_UNREGISTER:
        seq = m->unregister->seq;
        c = conn_comp(a, conn, m->unregister->comp, &r);
        if (c) {
            /* From now on the component may exit; if it still holds work, that is a failure. */
            c->conn = NULL;
            hc_stop_all(c);
            log_info("Component '%s' unregistered", c->name);
        }
        break;
    case HALO__LINK__MSG__BODY_RESPONSE:
        handle_response(a, conn, m->response);
        return;
    case HALO__LINK__MSG__BODY_HC_START:
        seq = m->hc_start->seq;
        c = conn_comp(a, conn, m->hc_start->comp, &r);
        if (c)
            r = hc_start(c, m->hc_start->key, m->hc_start->invoked, m->hc_start->recovery);
        break;
    case HALO__LINK__MSG__BODY_HC_CONFIRM: {
        seq = m->hc_confirm->seq;
        c = conn_comp(a, conn, m->hc_confirm->comp, &r);
        struct hc *hc = c ? hc_find(c, m->hc_confirm->key) : NULL;
        if (c && !hc)
            r = -ENOENT;
        else if (hc && hc->invoked != HALO_HC_COMPONENT_INVOKED)
            r = -HALO_EBADSTATE;
        if (r == 0 && hc) {
            (void)server_conn_reply(conn, seq, 0, NULL);
            if (m->hc_confirm->result < 0) {
                comp_fail(c, "reported a failed health check");
                return;
            }
            uv_timer_start(&hc->timeout, on_hc_timeout,
                           (c->cfg->healthcheck.period + c->cfg->healthcheck.timeout) / 1000, 0);
            return;
        }
        break;
    }
    case HALO__LINK__MSG__BODY_HC_STOP:
        seq = m->hc_stop->seq;
        c = conn_comp(a, conn, m->hc_stop->comp, &r);
        if (c)
            r = hc_stop(c, m->hc_stop->key);
        break;
    case HALO__LINK__MSG__BODY_ERROR_REPORT:
        seq = m->error_report->seq;
        c = find_comp(a, m->error_report->comp);
        if (!c || !c->su->local)
            r = -HALO_EUNKNOWN;
        else if (!c->proc)
            r = -HALO_EBADSTATE;
        (void)server_conn_reply(conn, seq, r, NULL);
        if (r == 0)
            comp_fail(c, "reported an error");
        return;
    case HALO__LINK__MSG__BODY_PG_TRACK: {
        seq = m->pg_track->seq;
        const struct config_csi *csi;
        if (!find_csi(a, m->pg_track->csi, &csi)) {
            r = -HALO_EUNKNOWN;
            break;
        }
        struct tracker *t = NULL;
        for (struct tracker *x = a->trackers; x; x = x->next)
            if (x->conn == conn && streq(x->csi, m->pg_track->csi))
                t = x;
        if (!t) {
            t = calloc(1, sizeof(*t));
            if (!t || !(t->csi = strdup(m->pg_track->csi))) {
                free(t);
                r = -ENOMEM;
                break;
            }
            t->conn = conn;
            t->next = a->trackers;
            a->trackers = t;
        }
        t->flags = m->pg_track->flags;
        (void)server_conn_reply(conn, seq, 0, NULL);
        tracker_send(a, t, true);
        if (!(t->flags & (HALO_TRACK_CHANGES | HALO_TRACK_CHANGES_ONLY))) {
            for (struct tracker **p = &a->trackers; *p; p = &(*p)->next)
                if (*p == t) {
                    *p = t->next;
                    tracker_free(t);
                    break;
                }
        }
        return;
    }
    case HALO__LINK__MSG__BODY_PG_TRACK_STOP:
        seq = m->pg_track_stop->seq;
        r = -ENOENT;
        for (struct tracker **p = &a->trackers; *p; p = &(*p)->next)
            if ((*p)->conn == conn && streq((*p)->csi, m->pg_track_stop->csi)) {
                struct tracker *t = *p;
                *p = t->next;
                tracker_free(t);
                r = 0;
                break;
            }
        break;
    case HALO__LINK__MSG__BODY_HA_STATE_GET: {
        seq = m->ha_state_get->seq;
        const struct config_csi *csi;
        struct si *si = find_csi(a, m->ha_state_get->csi, &csi);
        c = find_comp(a, m->ha_state_get->comp);
        if (!si || !c) {
            r = -HALO_EUNKNOWN;
            break;
        }
        struct assignment *as = amf_si_find_su(si, c->su);
        if (!as || !as->confirmed || csi_comp(c->su, csi) != c) {
            r = -ENOENT;
            break;
        }
        Halo__Link__Reply rep = HALO__LINK__REPLY__INIT;
        rep.seq = seq;
        rep.ha_state = as->state;
        (void)server_conn_send_reply(conn, &rep);
        return;
    }
    case HALO__LINK__MSG__BODY_ENTRYPOINT_GET: {
        _cleanup_free_ char *json = NULL;
        r = amf_entrypoint_json(a, &json);
        /* A restarted pool process: "recovery": true, and its recovery (the
         * vector by RecoveryNote, then TRANSIENT) follows the answer. */
        c = r == 0 ? find_comp_by_conn(a, conn) : NULL;
        if (c && amf_recovery_entrypoint(a, c)) {
            json_t *j = json_loads(json, 0, NULL);
            if (j && json_object_set_new(j, "recovery", json_true()) == 0) {
                free(json);
                json = json_dumps(j, JSON_COMPACT);
            }
            json_decref(j);
            if (!json)
                r = -ENOMEM;
        }
        Halo__Link__Reply rep = HALO__LINK__REPLY__INIT;
        rep.seq = m->entrypoint_get->seq;
        rep.error = r == -EAGAIN ? -HALO_ETRYAGAIN : r;
        rep.json = json ?: "";
        rep.retry_msec = r == -EAGAIN ? 100 : 0; /* an election takes a round trip or two */
        (void)server_conn_send_reply(conn, &rep);
        return;
    }
    case HALO__LINK__MSG__BODY_PROCESS_EVENT:
        seq = m->process_event->seq;
        c = find_comp_by_conn(a, conn);
        r = c ? amf_recovery_event(a, c, (int)m->process_event->event, m->process_event->reason) : -HALO_ENOTREG;
        break;
    case HALO__LINK__MSG__BODY_OBJECT_STATE_GET: {
        /* Any connected process may ask (the seeds' nvec get); the link validated the names. */
        const Halo__Link__ObjectStateGet *g = m->object_state_get;
        Halo__Link__ObjectState st[LINK_OBJECTS_MAX], *pst[LINK_OBJECTS_MAX];
        size_t n = MIN(g->n_objects, (size_t)LINK_OBJECTS_MAX);
        (void)amf_object_states(a, g->objects, n, st);
        for (size_t i = 0; i < n; i++)
            pst[i] = &st[i];
        Halo__Link__Reply rep = HALO__LINK__REPLY__INIT;
        rep.seq = g->seq;
        rep.states = pst;
        rep.n_states = n;
        (void)server_conn_send_reply(conn, &rep);
        return;
    }
    case HALO__LINK__MSG__BODY_ADMIN:
        if (!server_conn_is_admin(conn)) {
            (void)server_conn_reply(conn, m->admin->seq, -EPERM, NULL);
            return;
        }
        handle_admin(a, conn, m->admin);
        return;
    default:
        /* Messages only halod sends, or types this version does not know. */
        log_warning("%s sent unexpected %s; disconnecting", server_conn_name(conn), link_msg_type_name(m));
        server_conn_close(conn, "unexpected message");
        return;
    }
    (void)server_conn_reply(conn, seq, r, NULL);
}

void amf_conn_closed(struct amf *a, struct conn *conn, const char *reason) {
    cl_admin_conn_closed(a, conn);
    amf_events_conn_closed(a, conn);
    /* Trackers and waiters of this connection go away with it. */
    for (struct tracker **p = &a->trackers; *p;) {
        if ((*p)->conn == conn) {
            struct tracker *t = *p;
            *p = t->next;
            tracker_free(t);
        } else
            p = &(*p)->next;
    }
    for (size_t g = 0; g < a->n_sgs; g++) {
        struct sg *sg = &a->sgs[g];
        for (size_t i = 0; i < sg->n_sis; i++)
            if (sg->sis[i].waiter.conn == conn)
                sg->sis[i].waiter.conn = NULL;
        for (size_t u = 0; u < sg->n_sus; u++)
            if (sg->sus[u].waiter.conn == conn)
                sg->sus[u].waiter.conn = NULL;
    }
    /* A registered component whose link broke has failed: this is usually the
     * first sign of a crash, before the pidfd reports the exit. */
    for (size_t g = 0; g < a->n_sgs; g++)
        for (size_t u = 0; u < a->sgs[g].n_sus; u++) {
            struct su *su = &a->sgs[g].sus[u];
            for (size_t i = 0; i < su->n_comps; i++)
                if (su->comps[i].conn == conn) {
                    su->comps[i].conn = NULL;
                    if (!a->stopping && su->comps[i].presence != PRESENCE_TERMINATING) {
                        char buf[128];
                        snprintf(buf, sizeof(buf), "lost its HA link (%s)", reason);
                        comp_fail(&su->comps[i], buf);
                    }
                }
        }
}

void amf_conn_drained(struct amf *a, struct conn *c) {
    amf_events_drained(a, c);
}

/* ---- operator commands -------------------------------------------------- */

void amf_admin_run(struct amf *a, int op, const char *target, struct admin_waiter w) {
    struct si *si;
    struct su *su;
    struct comp *c;
    int r = 0;

    switch (op) {
    case HALO__LINK__ADMIN__OP__SWITCHOVER: {
        if (!(si = find_si(a, target))) {
            r = -HALO_EUNKNOWN;
            break;
        }
        if (!a->coordinator) {
            log_warning("Switchover of '%s' refused: only the coordinator's halod moves roles", si->name);
            r = -HALO_EBADSTATE;
            break;
        }
        struct assignment *act = amf_si_find(si, HALO_HA_ACTIVE), *sb = amf_si_find(si, HALO_HA_STANDBY);
        if (si->switchover || amf_si_busy(si) || !act || !act->confirmed || !sb || !sb->confirmed ||
            !amf_su_in_service(sb->su)) {
            r = -HALO_EBADSTATE; /* nothing to switch to, or a change is already under way */
            break;
        }
        log_info("Switchover of '%s' from '%s' to '%s' requested", si->name, act->su->name, sb->su->name);
        si->switchover = true;
        si->waiter = w;
        sg_evaluate(si->sg);
        return;
    }
    case HALO__LINK__ADMIN__OP__LOCK:
        if (!(su = find_su(a, target))) {
            r = -HALO_EUNKNOWN;
            break;
        }
        if (!su->local && a->cluster) {
            log_warning("Lock or unlock of '%s' refused: send it to its node, '%s'", su->name, su->cfg->node);
            r = -HALO_EBADSTATE;
            break;
        }
        if (su->admin == SU_LOCKED) {
            r = -HALO_EEXIST;
            break;
        }
        log_info("Locking service unit '%s'", su->name);
        su->admin = SU_LOCKED;
        persist_su(su);
        su->waiter = w;
        sg_evaluate(su->sg);
        amf_su_check_lock_done(su);
        return;
    case HALO__LINK__ADMIN__OP__UNLOCK:
        if (!(su = find_su(a, target))) {
            r = -HALO_EUNKNOWN;
            break;
        }
        if (!su->local && a->cluster) {
            log_warning("Lock or unlock of '%s' refused: send it to its node, '%s'", su->name, su->cfg->node);
            r = -HALO_EBADSTATE;
            break;
        }
        if (su->admin == SU_UNLOCKED) {
            r = -HALO_EEXIST;
            break;
        }
        log_info("Unlocking service unit '%s'", su->name);
        su->admin = SU_UNLOCKED;
        persist_su(su);
        sg_evaluate(su->sg);
        break;
    case HALO__LINK__ADMIN__OP__RESTART:
        if (!(c = find_comp(a, target)) || !c->su->local) {
            r = -HALO_EUNKNOWN;
            break;
        }
        if (c->presence != PRESENCE_INSTANTIATED || c->su->failing) {
            r = -HALO_EBADSTATE;
            break;
        }
        log_info("Restart of component '%s' requested", c->name);
        c->su->admin_restart = true;
        comp_fail(c, "restarted by the operator");
        break;
    case HALO__LINK__ADMIN__OP__REPAIR:
        if (!(su = find_su(a, target)) || !su->local) {
            r = -HALO_EUNKNOWN;
            break;
        }
        if (su->oper != SU_DISABLED) {
            r = -HALO_EBADSTATE;
            break;
        }
        log_info("Service unit '%s' repaired by the operator", su->name);
        su->oper = SU_ENABLED;
        su->n_fail_times = 0;
        su->delay = 0;
        su->failing = false;
        persist_su(su);
        for (size_t i = 0; i < su->n_comps; i++)
            if (!su->comps[i].proc)
                comp_instantiate(&su->comps[i]);
        break;
    default:
        r = -EOPNOTSUPP;
        break;
    }
    reply_waiter(&w, r);
}

static void handle_admin(struct amf *a, struct conn *conn, const Halo__Link__Admin *m) {
    const char *target = m->target ?: "";
    struct su *su;
    struct comp *c;
    int r = 0;

    switch (m->op) {
    case HALO__LINK__ADMIN__OP__STATUS: {
        char *json = amf_status_json(a);
        if (json)
            (void)server_conn_reply_parts(conn, m->seq, json);
        else
            (void)server_conn_reply(conn, m->seq, -ENOMEM, NULL);
        return;
    }
    case HALO__LINK__ADMIN__OP__STATUS_MORE:
        (void)server_conn_reply_next_part(conn, m->seq);
        return;
    case HALO__LINK__ADMIN__OP__EVENTS:
    case HALO__LINK__ADMIN__OP__EVENTS_FOLLOW:
    case HALO__LINK__ADMIN__OP__FAILVEC:
        amf_events_admin(a, conn, m->op, m->seq, target);
        return;
    case HALO__LINK__ADMIN__OP__SWITCHOVER:
    case HALO__LINK__ADMIN__OP__LOCK:
    case HALO__LINK__ADMIN__OP__UNLOCK:
    case HALO__LINK__ADMIN__OP__RESTART:
    case HALO__LINK__ADMIN__OP__REPAIR: {
        /* On several nodes a command goes to the node that runs it: the
         * coordinator moves roles, an SU's own node locks or restarts it. */
        const char *to = NULL;
        if (a->cluster && m->op == HALO__LINK__ADMIN__OP__SWITCHOVER && find_si(a, target) && !a->coordinator)
            to = "";
        else if (a->cluster && m->op == HALO__LINK__ADMIN__OP__RESTART && (c = find_comp(a, target)) && !c->su->local)
            to = c->su->cfg->node;
        else if (a->cluster && m->op != HALO__LINK__ADMIN__OP__SWITCHOVER && m->op != HALO__LINK__ADMIN__OP__RESTART &&
                 (su = find_su(a, target)) && !su->local)
            to = su->cfg->node;
        if (to) {
            r = cl_admin_forward(a, conn, m->seq, m->op, target, to);
            if (r >= 0)
                return;
            break;
        }
        amf_admin_run(a, m->op, target, (struct admin_waiter){.conn = conn, .seq = m->seq});
        return;
    }
    case HALO__LINK__ADMIN__OP__SHUTDOWN:
        (void)server_conn_reply(conn, m->seq, 0, NULL);
        raise(SIGTERM);
        return;
    default:
        r = -EOPNOTSUPP;
        break;
    }
    (void)server_conn_reply(conn, m->seq, r, NULL);
}

/* ---- stop --------------------------------------------------------------- */

static void on_stop_idle(uv_idle_t *h) {
    struct amf *a = h->data;
    uv_idle_stop(h);
    if (a->stopped_cb) {
        amf_stopped_cb cb = a->stopped_cb;
        a->stopped_cb = NULL;
        cb(a, a->stopped_userdata);
    }
}

static void stop_check(struct amf *a) {
    if (!a->stopping)
        return;
    for (size_t g = 0; g < a->n_sgs; g++)
        for (size_t u = 0; u < a->sgs[g].n_sus; u++)
            for (size_t i = 0; i < a->sgs[g].sus[u].n_comps; i++)
                if (a->sgs[g].sus[u].comps[i].proc)
                    return;
    /* Report from the loop, not from inside whatever callback got us here. */
    uv_idle_start(&a->stop_check, on_stop_idle);
}

static void comp_terminate(struct comp *c) {
    if (!c->proc)
        return;
    c->presence = PRESENCE_TERMINATING;
    hc_stop_all(c);
    uv_timer_start(&c->timer, on_comp_timer, c->cfg->timeouts.terminate / 1000, 0);
    if (!c->conn) {
        (void)proc_kill(c->proc, SIGTERM);
        return;
    }
    struct invocation *inv = inv_new(c, INV_TERMINATE, c->cfg->timeouts.terminate);
    if (!inv) {
        (void)proc_kill(c->proc, SIGKILL);
        return;
    }
    Halo__Link__Terminate t = HALO__LINK__TERMINATE__INIT;
    LinkMsg m = HALO__LINK__MSG__INIT;
    t.invocation = inv->id;
    t.comp = (char *)c->name;
    m.body_case = HALO__LINK__MSG__BODY_TERMINATE;
    m.terminate = &t;
    (void)server_conn_send(c->conn, &m);
}

void amf_stop(struct amf *a, amf_stopped_cb cb, void *userdata) {
    if (a->stopping)
        return;
    a->stopping = true;
    a->stopped_cb = cb;
    a->stopped_userdata = userdata;
    log_info("Stopping all components");
    for (size_t g = 0; g < a->n_sgs; g++)
        for (size_t u = 0; u < a->sgs[g].n_sus; u++) {
            struct su *su = &a->sgs[g].sus[u];
            uv_timer_stop(&su->restart_timer);
            for (size_t i = 0; i < su->n_comps; i++)
                comp_terminate(&su->comps[i]);
        }
    stop_check(a);
}

void amf_kill_all(struct amf *a) {
    for (size_t g = 0; g < a->n_sgs; g++)
        for (size_t u = 0; u < a->sgs[g].n_sus; u++)
            for (size_t i = 0; i < a->sgs[g].sus[u].n_comps; i++)
                if (a->sgs[g].sus[u].comps[i].proc)
                    (void)proc_kill(a->sgs[g].sus[u].comps[i].proc, SIGKILL);
}

/* ---- construction ------------------------------------------------------- */

void amf_view(struct amf *a, struct amf_view *ret) {
    *ret = (struct amf_view){.node = a->node,
                             .coordinator = a->cluster ? cluster_coordinator(a->cluster) : a->node,
                             .cluster = a->config->cluster,
                             .config = a->config,
                             .sgs = a->sgs,
                             .n_sgs = a->n_sgs};
}

int amf_new(const struct amf_params *p, struct amf **ret) {
    struct amf *a = calloc(1, sizeof(*a));
    if (!a)
        return -ENOMEM;
    a->loop = p->loop;
    a->config = p->config;
    a->sup = p->sup;
    a->store = p->store;
    a->coordinator = true; /* until amf_set_cluster() */
    a->node = strdup(p->node);
    a->socket_path = strdup(p->socket_path);
    a->next_inv = now_realtime_usec(); /* never reuse a previous halod's ids */
    if (asprintf(&a->prefix, "/halo/%s/", p->config->cluster) < 0)
        a->prefix = NULL;
    a->sgs = calloc(p->config->n_sgs ?: 1, sizeof(struct sg));
    if (!a->node || !a->socket_path || !a->prefix || !a->sgs)
        return amf_free(a), -ENOMEM; /* no handle started yet */
    uv_idle_init(a->loop, &a->stop_check);
    uv_timer_init(a->loop, &a->cdb_timer);
    a->cdb_timer.data = a;
    a->stop_check.data = a;
    a->n_sgs = p->config->n_sgs;
    for (size_t g = 0; g < a->n_sgs; g++) {
        const struct config_sg *cg = &p->config->sgs[g];
        struct sg *sg = &a->sgs[g];
        sg->amf = a;
        sg->cfg = cg;
        sg->name = cg->name;
        sg->ops = &amf_2n_ops;
        sg->sus = calloc(cg->n_sus ?: 1, sizeof(struct su));
        sg->sis = calloc(cg->n_sis ?: 1, sizeof(struct si));
        if (!sg->sus || !sg->sis)
            return amf_free(a), -ENOMEM; /* no handle started yet */
        sg->n_sus = cg->n_sus;
        sg->n_sis = cg->n_sis;
        for (size_t u = 0; u < cg->n_sus; u++) {
            struct su *su = &sg->sus[u];
            su->amf = a;
            su->sg = sg;
            su->cfg = &cg->sus[u];
            su->name = su->cfg->name;
            su->local = streq(su->cfg->node, a->node);
            uv_timer_init(a->loop, &su->restart_timer);
            su->restart_timer.data = su;
            uv_timer_init(a->loop, &su->fence_timer);
            su->fence_timer.data = su;
            su->comps = calloc(su->cfg->n_components ?: 1, sizeof(struct comp));
            if (!su->comps)
                return amf_free(a), -ENOMEM; /* no handle started yet */
            su->n_comps = su->cfg->n_components;
            for (size_t i = 0; i < su->n_comps; i++) {
                struct comp *c = &su->comps[i];
                c->amf = a;
                c->su = su;
                c->cfg = &su->cfg->components[i];
                c->name = c->cfg->name;
                uv_timer_init(a->loop, &c->timer);
                c->timer.data = c;
            }
        }
        for (size_t i = 0; i < cg->n_sis; i++) {
            struct si *si = &sg->sis[i];
            si->amf = a;
            si->sg = sg;
            si->cfg = &cg->sis[i];
            si->name = si->cfg->name;
        }
    }
    *ret = a;
    return 0;
}

static void noop_close(uv_handle_t *h) {
}

void amf_close(struct amf *a) {
    while (a->invs)
        inv_free(a->invs);
    for (size_t g = 0; g < a->n_sgs; g++) {
        struct sg *sg = &a->sgs[g];
        for (size_t u = 0; sg->sus && u < sg->n_sus; u++) {
            struct su *su = &sg->sus[u];
            uv_close((uv_handle_t *)&su->restart_timer, noop_close);
            uv_close((uv_handle_t *)&su->fence_timer, noop_close);
            for (size_t i = 0; su->comps && i < su->n_comps; i++) {
                struct comp *c = &su->comps[i];
                hc_stop_all(c);
                if (c->proc)
                    proc_detach(c->proc);
                uv_close((uv_handle_t *)&c->timer, noop_close);
            }
        }
    }
    uv_close((uv_handle_t *)&a->stop_check, noop_close);
    uv_close((uv_handle_t *)&a->cdb_timer, noop_close);
    cl_close(a);
    amf_recovery_close(a);
    amf_events_close(a);
}

int amf_set_cdb(struct amf *a, struct ha *ha, const char *token) {
    return amf_cdb_roles_init(a, ha, token);
}

struct amf *amf_free(struct amf *a) {
    if (!a)
        return NULL;
    cl_free(a);
    amf_events_free(a);
    while (a->trackers) {
        struct tracker *t = a->trackers;
        a->trackers = t->next;
        tracker_free(t);
    }
    for (size_t g = 0; a->sgs && g < a->n_sgs; g++) {
        struct sg *sg = &a->sgs[g];
        for (size_t u = 0; sg->sus && u < sg->n_sus; u++) {
            struct su *su = &sg->sus[u];
            free(su->last_failure);
            free(su->fail_times);
            for (size_t i = 0; su->comps && i < su->n_comps; i++)
                free(su->comps[i].last_exit);
            free(su->comps);
        }
        for (size_t i = 0; sg->sis && i < sg->n_sis; i++)
            free(sg->sis[i].preferred_active);
        free(sg->sus);
        free(sg->sis);
    }
    free(a->sgs);
    free(a->node);
    free(a->socket_path);
    free(a->prefix);
    free(a);
    return NULL;
}
