/* SPDX-License-Identifier: MIT */
/*
 * The AMF object: the model built from the description, its observers and
 * placement, lookups, and the stop of every component.
 *
 * Failover is the hot path: a component's death is seen on its HA link (EOF)
 * or its pidfd, whichever comes first; amf_su_fail() fences the SU (SIGKILL to
 * its process groups), drops its assignments and asks the model, which sends
 * CSI set ACTIVE to the standby in the same loop iteration.  Observers (the
 * store, the cluster, the event queue) hear of it as it happens and write
 * after, asynchronously.
 */
#define LOG_AREA LOG_AREA_AMF
#include "amf.h"

#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "amf-internal.h"
#include "log.h"
#include "macro.h"
#include "string-table.h"

static const char *const presence_table[_PRESENCE_MAX] = {
    [PRESENCE_UNINSTANTIATED] = "UNINSTANTIATED", [PRESENCE_INSTANTIATING] = "INSTANTIATING",
    [PRESENCE_INSTANTIATED] = "INSTANTIATED",     [PRESENCE_TERMINATING] = "TERMINATING",
    [PRESENCE_RESTARTING] = "RESTARTING",         [PRESENCE_FAILED] = "FAILED",
};
DEFINE_STRING_TABLE_TO_STRING(presence, enum presence);

static const char *const su_admin_table[_SU_ADMIN_MAX] = {
    [SU_UNLOCKED] = "UNLOCKED",
    [SU_LOCKED] = "LOCKED",
    [SU_LOCKED_INSTANTIATION] = "LOCKED-INSTANTIATION",
    [SU_SHUTTING_DOWN] = "SHUTTING-DOWN",
};
DEFINE_STRING_TABLE_LOOKUP(su_admin, enum su_admin);

static const char *const si_admin_table[_SI_ADMIN_MAX] = {
    [SI_UNLOCKED] = "UNLOCKED",
    [SI_LOCKED] = "LOCKED",
    [SI_SHUTTING_DOWN] = "SHUTTING-DOWN",
};
DEFINE_STRING_TABLE_LOOKUP(si_admin, enum si_admin);

/* ---- observers ----------------------------------------------------------- */

int amf_observe(struct amf *a, const struct amf_observer *o, void *userdata) {
    if (a->n_observers == AMF_OBSERVERS_MAX)
        return -ENOSPC;
    a->observers[a->n_observers].ops = o;
    a->observers[a->n_observers].userdata = userdata;
    a->n_observers++;
    return 0;
}

void amf_unobserve(struct amf *a, const struct amf_observer *o, void *userdata) {
    for (size_t i = 0; i < a->n_observers; i++)
        if (a->observers[i].ops == o && a->observers[i].userdata == userdata) {
            memmove(&a->observers[i], &a->observers[i + 1], (a->n_observers - i - 1) * sizeof(a->observers[0]));
            a->n_observers--;
            return;
        }
}

#define NOTIFY(a, cb, ...)                                                            \
    do {                                                                              \
        for (size_t _k = 0; _k < (a)->n_observers; _k++)                              \
            if ((a)->observers[_k].ops->cb)                                           \
                (a)->observers[_k].ops->cb((a)->observers[_k].userdata, __VA_ARGS__); \
    } while (0)

void amf_notify_assignment(struct si *si) {
    NOTIFY(si->amf, assignment_changed, si);
    /* Mirrors of other nodes' assignments change here too: a tracker on a
     * node that is neither the coordinator nor a member hears of them. */
    amf_pg_notify(si->amf, si);
}

void amf_notify_si(struct si *si) {
    NOTIFY(si->amf, si_changed, si);
}

void amf_notify_si_admin(struct si *si) {
    NOTIFY(si->amf, si_admin_changed, si);
}

void amf_notify_group_admin(struct amf *a, struct sg *sg) {
    NOTIFY(a, group_admin_changed, sg);
}

void amf_notify_sg(struct sg *sg) {
    NOTIFY(sg->amf, sg_changed, sg);
}

void amf_notify_su(struct su *su, enum amf_su_event ev) {
    NOTIFY(su->amf, su_event, su, ev);
}

void amf_notify_comp(struct comp *c, enum amf_comp_event ev, const char *reason) {
    NOTIFY(c->amf, comp_event, c, ev, reason);
}

void amf_set_placement(struct amf *a, const struct amf_placement_ops *ops, void *p) {
    a->placement = ops;
    a->placement_data = p;
}

/* ---- lookups --------------------------------------------------------------- */

const char *amf_node(const struct amf *a) {
    return a->node;
}

const struct config *amf_config(const struct amf *a) {
    return a->config;
}

struct sg *amf_sgs(struct amf *a, size_t *ret_n) {
    *ret_n = a->n_sgs;
    return a->sgs;
}

struct comp *amf_find_comp(struct amf *a, const char *name) {
    for (size_t g = 0; g < a->n_sgs; g++)
        for (size_t u = 0; !a->sgs[g].removed && u < a->sgs[g].n_sus; u++) {
            struct su *su = &a->sgs[g].sus[u];
            for (size_t i = 0; !su->removed && i < su->n_comps; i++)
                if (!su->comps[i].removed && streq(su->comps[i].name, name))
                    return &su->comps[i];
        }
    return NULL;
}

struct comp *amf_comp_by_conn(struct amf *a, const struct conn *conn) {
    for (size_t g = 0; g < a->n_sgs; g++)
        for (size_t u = 0; u < a->sgs[g].n_sus; u++) {
            struct su *su = &a->sgs[g].sus[u];
            for (size_t i = 0; su->local && i < su->n_comps; i++)
                if (su->comps[i].conn == conn && su->comps[i].presence == PRESENCE_INSTANTIATED &&
                    !amf_comp_proxied(&su->comps[i])) /* those its proxy registered on the same link */
                    return &su->comps[i];
        }
    return NULL;
}

struct sg *amf_find_sg(struct amf *a, const char *name) {
    for (size_t g = 0; g < a->n_sgs; g++)
        if (!a->sgs[g].removed && streq(a->sgs[g].name, name))
            return &a->sgs[g];
    return NULL;
}

struct su *amf_find_su(struct amf *a, const char *name) {
    for (size_t g = 0; g < a->n_sgs; g++)
        for (size_t u = 0; !a->sgs[g].removed && u < a->sgs[g].n_sus; u++)
            if (!a->sgs[g].sus[u].removed && streq(a->sgs[g].sus[u].name, name))
                return &a->sgs[g].sus[u];
    return NULL;
}

struct si *amf_find_si(struct amf *a, const char *name) {
    for (size_t g = 0; g < a->n_sgs; g++)
        for (size_t i = 0; !a->sgs[g].removed && i < a->sgs[g].n_sis; i++)
            if (!a->sgs[g].sis[i].removed && streq(a->sgs[g].sis[i].name, name))
                return &a->sgs[g].sis[i];
    return NULL;
}

struct si *amf_find_csi(struct amf *a, const char *csi, const struct config_csi **ret) {
    for (size_t g = 0; g < a->n_sgs; g++)
        for (size_t i = 0; !a->sgs[g].removed && i < a->sgs[g].n_sis; i++) {
            struct si *si = &a->sgs[g].sis[i];
            for (size_t k = 0; !si->removed && k < si->cfg->n_csis; k++)
                if (streq(si->cfg->csis[k].name, csi)) {
                    if (ret)
                        *ret = &si->cfg->csis[k];
                    return si;
                }
        }
    return NULL;
}

struct comp *amf_csi_comp(struct su *su, const struct config_csi *csi) {
    size_t i = config_csi_component(su->cfg, csi);
    if (i >= su->cfg->n_components)
        return NULL;
    /* By name: a component a reload added comes last in comps, wherever su->cfg lists it (and one
     * removed may have left a slot of the same name). */
    for (size_t k = 0; k < su->n_comps; k++) {
        struct comp *c = &su->comps[(i + k) % su->n_comps];
        if (!c->removed && streq(c->name, su->cfg->components[i].name))
            return c;
    }
    return NULL;
}

bool amf_su_in_service(const struct su *su) {
    if (!su->local)
        return su->remote.known && su->remote.in_service && !su->remote.failing && !su->amf->stopping;
    if (su->admin != SU_UNLOCKED || su->oper != SU_ENABLED || su->failing || su->amf->stopping || su->removed)
        return false;
    /* An operator's restart in place: the unit keeps its roles meanwhile
     * (the models give it nothing new, amf-reconcile.c). */
    if (amf_su_restarting(su))
        return true;
    for (size_t i = 0; i < su->n_comps; i++) {
        const struct comp *c = &su->comps[i];
        if (c->removing || c->removed)
            continue; /* a reload takes it out: its unit keeps its roles without it */
        if (!amf_comp_sa_aware(c)) {
            /* It runs only once it is ACTIVE: ready once this halod has taken
             * over what a previous one left, and not failed. */
            if (!su->amf->ready || c->presence == PRESENCE_RESTARTING || c->presence == PRESENCE_FAILED ||
                (amf_comp_ocf(c) && !c->ocf.joining && (!c->ocf.ready || !c->ocf.probed)))
                return false;
        } else if (c->presence != PRESENCE_INSTANTIATED || !c->conn)
            return false;
    }
    return true;
}

bool amf_su_may_be_active(const struct su *su) {
    const struct amf *a = su->amf;
    if (!amf_su_in_service(su))
        return false;
    for (size_t i = 0; i < AMF_READINESS_MAX; i++)
        if (a->active_ready[i].fn && !a->active_ready[i].fn(a->active_ready[i].data, su))
            return false;
    return true;
}

int amf_add_active_readiness(struct amf *a, amf_ready_fn fn, void *userdata) {
    for (size_t i = 0; i < AMF_READINESS_MAX; i++)
        if (!a->active_ready[i].fn) {
            a->active_ready[i].fn = fn;
            a->active_ready[i].data = userdata;
            return 0;
        }
    return -ENOSPC;
}

void amf_remove_active_readiness(struct amf *a, amf_ready_fn fn, void *userdata) {
    for (size_t i = 0; i < AMF_READINESS_MAX; i++)
        if (a->active_ready[i].fn == fn && a->active_ready[i].data == userdata)
            a->active_ready[i].fn = NULL;
}

void amf_readiness_changed(struct amf *a, const char *comp) {
    struct comp *c = amf_find_comp(a, comp);
    if (c)
        amf_sg_evaluate(c->su->sg);
}

/* ---- the model ------------------------------------------------------------- */

void amf_sg_evaluate(struct sg *sg) {
    if (sg->removed) /* by a reload: nothing of it runs any more (amf_sg_remove()) */
        return;
    amf_notify_sg(sg);
    if (sg->amf->stopping || !sg->amf->deciding)
        return;
    if (sg->ops->evaluate)
        sg->ops->evaluate(sg);
    else
        amf_reconcile(sg, sg->ops->policy);
}

void amf_set_deciding(struct amf *a, bool deciding) {
    if (a->deciding == deciding)
        return;
    a->deciding = deciding;
    if (!deciding)
        return;
    /* Take over: what every unit holds is known (from the store on several
     * nodes); decide from there. */
    for (size_t g = 0; g < a->n_sgs; g++)
        amf_sg_evaluate(&a->sgs[g]);
}

bool amf_deciding(const struct amf *a) {
    return a->deciding;
}

void amf_set_ready(struct amf *a) {
    a->ready = true;
    if (a->stopping)
        return;
    for (size_t g = 0; g < a->n_sgs; g++)
        for (size_t u = 0; u < a->sgs[g].n_sus; u++) {
            struct su *su = &a->sgs[g].sus[u];
            /* An adopted non-SA-aware process never registers: it is ours
             * now, if its unit holds its CSI ACTIVE. */
            for (size_t i = 0; su->local && i < su->n_comps; i++)
                amf_nsa_adopted_check(&su->comps[i]);
            if (su->local && su->adopting)
                amf_su_adoption_check(su);
            /* A unit that failed (an adopted process found gone) is being
             * fenced or waits for its restart, which starts it. */
            if (!su->local || su->oper == SU_DISABLED || su->admin == SU_LOCKED_INSTANTIATION || su->failing ||
                uv_is_active((uv_handle_t *)&su->restart_timer))
                continue;
            for (size_t i = 0; i < su->n_comps; i++)
                if (!su->comps[i].proc)
                    amf_comp_instantiate(&su->comps[i]);
        }
}

void amf_waiter_done(struct amf_waiter **w, int error) {
    struct amf_waiter *x = *w;
    *w = NULL;
    if (x)
        x->done(x, error);
}

void amf_waiter_forget(struct amf *a, struct amf_waiter *w) {
    amf_admin_forget(a, w);
    for (size_t g = 0; g < a->n_sgs; g++) {
        struct sg *sg = &a->sgs[g];
        for (size_t i = 0; i < sg->n_sis; i++)
            if (sg->sis[i].waiter == w)
                sg->sis[i].waiter = NULL;
        for (size_t u = 0; u < sg->n_sus; u++)
            if (sg->sus[u].waiter == w)
                sg->sus[u].waiter = NULL;
    }
}

/* ---- stop -------------------------------------------------------------------- */

static void on_stop_idle(uv_idle_t *h) {
    struct amf *a = h->data;
    uv_idle_stop(h);
    if (a->stopped_cb) {
        amf_stopped_cb cb = a->stopped_cb;
        a->stopped_cb = NULL;
        cb(a, a->stopped_userdata);
    }
}

void amf_stop_check(struct amf *a) {
    if (!a->stopping)
        return;
    for (size_t g = 0; g < a->n_sgs; g++)
        for (size_t u = 0; u < a->sgs[g].n_sus; u++)
            for (size_t i = 0; i < a->sgs[g].sus[u].n_comps; i++)
                if (a->sgs[g].sus[u].comps[i].proc || a->sgs[g].sus[u].comps[i].helper ||
                    a->sgs[g].sus[u].comps[i].ocf.prep)
                    return;
    /* Report from the loop, not from inside whatever callback got us here. */
    uv_idle_start(&a->stop_check, on_stop_idle);
}

void amf_stop(struct amf *a, amf_stopped_cb cb, void *userdata) {
    if (a->stopping)
        return;
    a->stopping = true;
    a->stopped_cb = cb;
    a->stopped_userdata = userdata;
    log_info("Stopping all components");
    /* Proxied components first, while their proxies still run to hear it. */
    for (int proxied = 1; proxied >= 0; proxied--)
        for (size_t g = 0; g < a->n_sgs; g++)
            for (size_t u = 0; u < a->sgs[g].n_sus; u++) {
                struct su *su = &a->sgs[g].sus[u];
                uv_timer_stop(&su->restart_timer);
                for (size_t i = 0; i < su->n_comps; i++)
                    if (amf_comp_proxied(&su->comps[i]) == proxied)
                        amf_comp_terminate(&su->comps[i]);
            }
    amf_stop_check(a);
}

bool amf_stopping(const struct amf *a) {
    return a->stopping;
}

void amf_kill_all(struct amf *a) {
    for (size_t g = 0; g < a->n_sgs; g++)
        for (size_t u = 0; u < a->sgs[g].n_sus; u++)
            for (size_t i = 0; i < a->sgs[g].sus[u].n_comps; i++) {
                struct comp *c = &a->sgs[g].sus[u].comps[i];
                if (c->proc)
                    (void)proc_kill(c->proc, SIGKILL);
                if (c->helper)
                    (void)proc_kill(c->helper, SIGKILL);
            }
}

/* ---- construction ------------------------------------------------------------ */

static const struct redundancy_ops *const model_ops[_CONFIG_REDUNDANCY_MAX] = {
    [CONFIG_REDUNDANCY_2N] = &amf_2n_ops,
    [CONFIG_REDUNDANCY_N_PLUS_M] = &amf_npm_ops,
    [CONFIG_REDUNDANCY_N_WAY] = &amf_nway_ops,
    [CONFIG_REDUNDANCY_N_WAY_ACTIVE] = &amf_nwayactive_ops,
    [CONFIG_REDUNDANCY_NO_REDUNDANCY] = &amf_nored_ops,
};

void amf_su_init(struct sg *sg, struct su *su, const struct config_su *cfg) {
    struct amf *a = sg->amf;
    su->amf = a;
    su->sg = sg;
    su->cfg = cfg;
    su->name = su->cfg->name;
    su->local = streq(su->cfg->node, a->node);
    uv_timer_init(a->loop, &su->restart_timer);
    su->restart_timer.data = su;
    uv_timer_init(a->loop, &su->fence_timer);
    su->fence_timer.data = su;
    amf_rung_count_init(a->loop, &su->comp_restarts);
    amf_rung_count_init(a->loop, &su->su_restarts);
    su->n_comps = su->cfg->n_components;
    for (size_t i = 0; i < su->n_comps; i++)
        amf_comp_init(su, &su->comps[i], &su->cfg->components[i]);
}

void amf_comp_init(struct su *su, struct comp *c, const struct config_component *cfg) {
    c->amf = su->amf;
    c->su = su;
    c->cfg = cfg;
    c->name = c->cfg->name;
    uv_timer_init(su->amf->loop, &c->timer);
    c->timer.data = c;
    amf_monitor_init(c);
}

void amf_sg_init(struct amf *a, struct sg *sg, const struct config_sg *cg) {
    sg->amf = a;
    sg->cfg = cg;
    sg->name = cg->name;
    sg->ops = model_ops[cg->redundancy];
    uv_timer_init(a->loop, &sg->adjust_timer);
    sg->adjust_timer.data = sg;
    sg->n_sus = cg->n_sus;
    sg->n_sis = cg->n_sis;
    for (size_t u = 0; u < cg->n_sus; u++)
        amf_su_init(sg, &sg->sus[u], &cg->sus[u]);
    /* The SIs in rank order (then as described): the models assign them in this
     * order, so a higher-ranked SI takes the capacity first. */
    for (size_t i = 0; i < cg->n_sis; i++) {
        size_t j = i;
        while (j > 0 && sg->sis[j - 1].cfg->rank > cg->sis[i].rank) {
            sg->sis[j].cfg = sg->sis[j - 1].cfg;
            j--;
        }
        sg->sis[j].cfg = &cg->sis[i];
    }
    for (size_t i = 0; i < cg->n_sis; i++) {
        struct si *si = &sg->sis[i];
        si->amf = a;
        si->sg = sg;
        si->name = si->cfg->name;
    }
}

/* sg's arrays for cg (their counts set), before any handle: a failure leaves nothing to close. */
int amf_sg_alloc(struct sg *sg, const struct config_sg *cg) {
    sg->cfg = cg;
    sg->cap_sus = cg->n_sus + AMF_SUS_ADDED_MAX;
    sg->sus = calloc(sg->cap_sus, sizeof(struct su));
    sg->cap_sis = cg->n_sis + AMF_SIS_ADDED_MAX;
    sg->sis = calloc(sg->cap_sis, sizeof(struct si));
    if (!sg->sus || !sg->sis)
        return -ENOMEM;
    sg->n_sis = cg->n_sis;
    for (size_t i = 0; i < cg->n_sis; i++) {
        if (!(sg->sis[i].asg = calloc(sg->cap_sus, sizeof(struct assignment)))) /* a slot per unit, added too */
            return -ENOMEM;
        sg->sis[i].n_asg = cg->n_sus;
    }
    sg->n_sus = cg->n_sus;
    for (size_t u = 0; u < cg->n_sus; u++) {
        sg->sus[u].cap_comps = cg->sus[u].n_components + AMF_COMPS_ADDED_MAX;
        if (!(sg->sus[u].comps = calloc(sg->sus[u].cap_comps, sizeof(struct comp))))
            return -ENOMEM;
        sg->sus[u].n_comps = cg->sus[u].n_components;
    }
    return 0;
}

void amf_sg_free(struct sg *sg) {
    for (size_t u = 0; sg->sus && u < sg->n_sus; u++) {
        struct su *su = &sg->sus[u];
        free(su->last_failure);
        free(su->last_recovery);
        free(su->fail_times);
        for (size_t i = 0; su->comps && i < su->n_comps; i++)
            free(su->comps[i].last_exit);
        free(su->comps);
    }
    for (size_t i = 0; sg->sis && i < sg->n_sis; i++) {
        free(sg->sis[i].preferred_active);
        free(sg->sis[i].asg);
    }
    free(sg->sus);
    free(sg->sis);
}

/* Room for the groups a reload may add (amf_sg_add()): the model's groups never move. */
#define AMF_SGS_ADDED_MAX 32

static int model_alloc(struct amf *a, const struct config *cfg) {
    a->cap_sgs = cfg->n_sgs + AMF_SGS_ADDED_MAX;
    a->sgs = calloc(a->cap_sgs, sizeof(struct sg));
    if (!a->sgs)
        return -ENOMEM;
    for (size_t g = 0; g < cfg->n_sgs; g++)
        if (amf_sg_alloc(&a->sgs[g], &cfg->sgs[g]) < 0)
            return -ENOMEM;
    return 0;
}

static void model_free(struct amf *a) {
    for (size_t g = 0; a->sgs && g < a->cap_sgs; g++)
        amf_sg_free(&a->sgs[g]);
    free(a->sgs);
    a->sgs = NULL;
}

int amf_new(const struct amf_params *p, struct amf **ret) {
    struct amf *a = calloc(1, sizeof(*a));
    if (!a)
        return -ENOMEM;
    *a = (struct amf){
        .loop = p->loop,
        .config = p->config,
        .sup = p->sup,
        .deciding = true, /* until a placement of several nodes says otherwise */
        .placement = &amf_placement_local,
        .next_inv = now_realtime_usec(), /* never reuse a previous halod's ids */
        .node = strdup(p->node),
        .socket_path = strdup(p->socket_path),
        .crash_dir = p->crash_dir ? strdup(p->crash_dir) : NULL,
        .owner = p->owner ? strdup(p->owner) : NULL,
    };
    if (!a->node || !a->socket_path || (p->crash_dir && !a->crash_dir) || (p->owner && !a->owner) ||
        model_alloc(a, p->config) < 0) {
        model_free(a);
        free(a->crash_dir);
        free(a->owner);
        free(a->node);
        free(a->socket_path);
        free(a);
        return -ENOMEM; /* no handle started yet */
    }
    uv_idle_init(a->loop, &a->stop_check);
    a->stop_check.data = a;
    amf_rung_count_init(a->loop, &a->su_failovers);
    a->n_sgs = p->config->n_sgs;
    for (size_t g = 0; g < a->n_sgs; g++)
        amf_sg_init(a, &a->sgs[g], &p->config->sgs[g]);
    /* A proxied component's proxy (of its node, as the description is verified to say). */
    for (size_t g = 0; g < a->n_sgs; g++)
        for (size_t u = 0; u < a->sgs[g].n_sus; u++)
            for (size_t i = 0; i < a->sgs[g].sus[u].n_comps; i++) {
                struct comp *c = &a->sgs[g].sus[u].comps[i];
                c->proxy = c->cfg->proxy ? amf_find_comp(a, c->cfg->proxy) : NULL;
            }
    *ret = a;
    return 0;
}

static void noop_close(uv_handle_t *h) {
}

void amf_close(struct amf *a) {
    struct invocation *inv;
    while ((inv = a->invs.first))
        amf_inv_free(inv);
    for (size_t g = 0; g < a->n_sgs; g++) {
        struct sg *sg = &a->sgs[g];
        uv_close((uv_handle_t *)&sg->adjust_timer, noop_close);
        for (size_t u = 0; u < sg->n_sus; u++) {
            struct su *su = &sg->sus[u];
            uv_close((uv_handle_t *)&su->restart_timer, noop_close);
            uv_close((uv_handle_t *)&su->fence_timer, noop_close);
            uv_close((uv_handle_t *)&su->comp_restarts.probation, noop_close);
            uv_close((uv_handle_t *)&su->su_restarts.probation, noop_close);
            for (size_t i = 0; i < su->n_comps; i++) {
                struct comp *c = &su->comps[i];
                amf_hc_stop_all(c);
                if (c->proc)
                    proc_detach(c->proc);
                if (c->helper)
                    proc_detach(c->helper);
                if (c->ocf.prep)
                    proc_detach(c->ocf.prep);
                amf_monitor_close(c);
                uv_close((uv_handle_t *)&c->timer, noop_close);
            }
        }
    }
    uv_close((uv_handle_t *)&a->stop_check, noop_close);
    uv_close((uv_handle_t *)&a->su_failovers.probation, noop_close);
}

struct amf *amf_free(struct amf *a) {
    if (!a)
        return NULL;
    for (size_t g = 0; g < a->n_sgs; g++) {
        struct sg *sg = &a->sgs[g];
        for (size_t i = 0; i < sg->n_sis; i++)
            amf_waiter_done(&sg->sis[i].waiter, -ECANCELED);
        for (size_t u = 0; u < sg->n_sus; u++)
            amf_waiter_done(&sg->sus[u].waiter, -ECANCELED);
    }
    amf_pg_free_all(a);
    model_free(a);
    free(a->node);
    free(a->socket_path);
    free(a->crash_dir);
    free(a->owner);
    free(a->failfast_why);
    amf_guard_free(a);
    free(a);
    return NULL;
}
