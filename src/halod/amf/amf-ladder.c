/* SPDX-License-Identifier: MIT */
/*
 * The recovery of a failed component and its escalation ladder (SA Forum AMF
 * §3.11, OpenSAF amfnd/err.cc).  A failure asks for the stronger of the
 * component's configured `recovery` and what its error report or health
 * check recommended: the AMF never does less.  Then, rung by rung:
 *
 *   component restart  the process alone is killed and started again; its
 *                      unit keeps its assignments, and the new process gets
 *                      its CSIs again with the same HA state
 *   SU restart         every component of the unit, the same way
 *   SU failover        the unit is fenced, its SIs fail over, it restarts
 *                      (amf-failure.c; its restart limit disables it)
 *   node failover      every unit of this node fails over
 *   node failfast      with the node's `failfast` action: every component of
 *                      the node is killed, then the action runs (halod's
 *                      top); without one, a node failover
 *
 * Each rung counts its recoveries (component restarts and SU restarts per
 * unit, SU failovers per node); one more than its `max` within its
 * `probation` climbs to the next rung.  A count goes back to 0 when its
 * probation ends: a timer started with its first recovery, no polling.
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

static const char *const rung_names[_AMF_RUNG_MAX] = {
    [AMF_RUNG_COMP_RESTART] = "component-restart", [AMF_RUNG_SU_RESTART] = "su-restart",
    [AMF_RUNG_SU_FAILOVER] = "su-failover",        [AMF_RUNG_NODE_SWITCHOVER] = "node-switchover",
    [AMF_RUNG_NODE_FAILOVER] = "node-failover",    [AMF_RUNG_NODE_FAILFAST] = "node-failfast",
};

const char *amf_rung_to_string(enum amf_rung r) {
    return (size_t)r < ELEMENTSOF(rung_names) ? rung_names[r] : "?";
}

enum amf_rung amf_rung_of(enum config_recovery configured, halo_recovery recommended) {
    static const enum amf_rung of_config[_CONFIG_RECOVERY_MAX] = {
        [CONFIG_RECOVERY_COMPONENT_RESTART] = AMF_RUNG_COMP_RESTART,
        [CONFIG_RECOVERY_COMPONENT_FAILOVER] = AMF_RUNG_SU_FAILOVER,
        [CONFIG_RECOVERY_NODE_SWITCHOVER] = AMF_RUNG_NODE_SWITCHOVER,
        [CONFIG_RECOVERY_NODE_FAILOVER] = AMF_RUNG_NODE_FAILOVER,
        [CONFIG_RECOVERY_NODE_FAILFAST] = AMF_RUNG_NODE_FAILFAST,
    };
    enum amf_rung r = (size_t)configured < ELEMENTSOF(of_config) ? of_config[configured] : AMF_RUNG_SU_FAILOVER;
    enum amf_rung rec = AMF_RUNG_COMP_RESTART;
    switch (recommended) {
    case HALO_RECOVERY_COMPONENT_FAILOVER:
        rec = AMF_RUNG_SU_FAILOVER;
        break;
    case HALO_RECOVERY_NODE_SWITCHOVER:
        rec = AMF_RUNG_NODE_SWITCHOVER;
        break;
    case HALO_RECOVERY_NODE_FAILOVER:
        rec = AMF_RUNG_NODE_FAILOVER;
        break;
    case HALO_RECOVERY_NODE_FAILFAST:
        rec = AMF_RUNG_NODE_FAILFAST;
        break;
    default: /* none, or a component restart: the least there is */
        break;
    }
    return MAX(r, rec);
}

/* ---- the counts ---- */

static void on_probation(uv_timer_t *t) {
    struct amf_rung_count *r = t->data;
    if (r->count)
        log_debug("Probation over: the count of %u recoveries is reset", r->count);
    r->count = 0;
}

void amf_rung_count_init(uv_loop_t *loop, struct amf_rung_count *r) {
    r->count = 0;
    uv_timer_init(loop, &r->probation);
    r->probation.data = r;
}

void amf_rung_count_reset(struct amf_rung_count *r) {
    r->count = 0;
    uv_timer_stop(&r->probation);
}

bool amf_rung_count_climb(struct amf_rung_count *r, const struct config_escalation *e) {
    if (r->count == 0)
        uv_timer_start(&r->probation, on_probation, (e->probation + 999) / 1000, 0);
    r->count++;
    if (r->count <= e->max)
        return true;
    amf_rung_count_reset(r);
    return false;
}

/* ---- restart in place ---- */

/* Whether c's unit may restart components in place: not while a role of the unit changes (a
 * CSI set or remove in flight, QUIESCING or QUIESCED: the new process could not be given that
 * state again; as OpenSAF, such a failure fails over).  NULL, or why not. */
const char *amf_comp_restart_refused(const struct comp *c) {
    struct su *su = c->su;
    struct sg *sg = su->sg;
    for (size_t i = 0; i < sg->n_sis; i++) {
        struct assignment *a = amf_si_find_su(&sg->sis[i], su);
        if (a && (a->pending || a->removing || a->target != a->state || a->state == HALO_HA_QUIESCING ||
                  a->state == HALO_HA_QUIESCED))
            return "its unit was changing roles";
    }
    if (su->oper != SU_ENABLED || !su->local || su->failing || su->adopting ||
        (su->admin != SU_UNLOCKED && su->admin != SU_LOCKED))
        return "its unit is not in service";
    return NULL;
}

/* Its CSIs again, with the roles its unit holds (a non-SA-aware component: halod's own CSI
 * step runs it again): the target, which is the confirmed state unless another node's
 * coordinator, seeing the unit in service, changed it meanwhile (the components that were
 * there got it then; this one had no link).  Called as c registers, before anything else
 * can have been sent to it. */
static void comp_csis_again(struct comp *c) {
    struct sg *sg = c->su->sg;
    for (size_t i = 0; i < sg->n_sis; i++) {
        struct assignment *a = amf_si_find_su(&sg->sis[i], c->su);
        if (a && !a->removing && (a->target == HALO_HA_ACTIVE || a->target == HALO_HA_STANDBY))
            (void)amf_asg_send_set_comp(&sg->sis[i], c, a);
    }
}

/* c restarted in place is back (its unit is whole again once every component is). */
static void comp_back(struct comp *c) {
    c->restart_in_place = false;
    c->restart_at_once = false;
    c->restart_spawned = false;
}

static void comp_start_again(struct comp *c) {
    if (c->amf->stopping || c->su->failing || !c->restart_in_place || c->proc)
        return;
    log_info_fields(AMF_FIELDS_COMP(c, NULL), "Restarting component '%s' in place", c->name);
    if (amf_comp_sa_aware(c)) {
        c->restart_spawned = true; /* its end before it registers is a failure */
        amf_comp_instantiate(c);   /* its CSIs once it registers */
        return;
    }
    /* Its cleanup first if it failed (or needed SIGKILL to stop), then its CSI set again starts it. */
    c->presence = PRESENCE_UNINSTANTIATED;
    c->killed = c->killed || !c->restart_at_once;
    comp_back(c);
    amf_nsa_stopped(c);
    comp_csis_again(c);
    amf_notify_su(c->su, AMF_SU_STATE);
}

static void on_comp_restart_timer(uv_timer_t *t) {
    comp_start_again(t->data);
}

void amf_ladder_comp_gone(struct comp *c) {
    if (c->su->failing || c->amf->stopping)
        return;
    c->presence = PRESENCE_RESTARTING;
    if (c->restart_at_once)
        comp_start_again(c);
    else
        uv_timer_start(&c->timer, on_comp_restart_timer, c->cfg->restart.delay / 1000, 0);
}

void amf_comp_restart_in_place(struct comp *c, const char *failed) {
    c->restart_in_place = true;
    c->restart_at_once = !failed;
    c->restart_spawned = false;
    if (failed) {
        amf_notify_comp(c, AMF_COMP_FAILED, failed);
        amf_comp_kill(c);
        amf_proxied_proxy_lost(c); /* the proxied components it acts for fail with it */
    } else {
        log_info_fields(AMF_FIELDS_COMP(c, NULL),
                        "Restarting component '%s' in place (pid %d): its unit '%s' keeps its roles", c->name,
                        (int)c->pid, c->su->name);
        amf_comp_terminate(c);
    }
    /* Else amf_proc_exited() calls amf_ladder_comp_gone(), or for a proxied component its
     * proxy's answer to the terminate (amf-proxied.c). */
    if (!c->proc && !(amf_comp_proxied(c) && c->presence == PRESENCE_TERMINATING))
        amf_ladder_comp_gone(c);
}

void amf_ladder_comp_registered(struct comp *c) {
    if (!c->restart_in_place)
        return;
    log_info_fields(AMF_FIELDS_COMP(c, NULL), "Component '%s' restarted in place (pid %d); setting its CSIs again",
                    c->name, (int)c->pid);
    comp_back(c);
    comp_csis_again(c);
    amf_notify_su(c->su, AMF_SU_STATE);
}

/* ---- the recoveries ---- */

static void set_note(struct su *su, const char *note) {
    free(su->last_recovery);
    su->last_recovery = strdup(note);
}

/* other, a unit of the node that did not fail, fails over: not counted, no backoff. */
static void fail_bystander(struct su *other, const char *why) {
    other->admin_restart = true;
    amf_su_fail(other, why);
}

/* The ACTIVE SI of other that a node switchover hands over (i from 0 on), or NULL when none is left. */
static struct si *next_active(struct su *other, size_t *i) {
    struct sg *sg = other->sg;
    for (; *i < sg->n_sis; (*i)++) {
        struct si *si = &sg->sis[*i];
        struct assignment *as = amf_si_find_su(si, other);
        if (as && as->confirmed && as->state == HALO_HA_ACTIVE && as->target == HALO_HA_ACTIVE && !si->switchover)
            return &sg->sis[(*i)++];
        /* Else not ACTIVE here (or only becoming so), or going along with another SI. */
    }
    return NULL;
}

/* Whether other switched every ACTIVE SI it holds over (switchover, QUIESCING first): the
 * deciding halod moves the roles; another node asks it to, as haloctl switchover would from
 * here.  None is moved unless every one may be, as this node sees them (an SI without a
 * standby ready, or with several ACTIVEs, cannot). */
static bool switch_over(struct amf *a, struct su *other) {
    struct si *si;
    size_t i = 0;
    if (!a->deciding && !a->placement->request)
        return false;
    while ((si = next_active(other, &i)))
        if (!amf_si_may_switch_over(si))
            return false;
    struct su *along = NULL; /* a model keeping the SIs together (2N) swaps them all with the first */
    bool moved = false;
    for (i = 0; (si = next_active(other, &i));) {
        struct assignment *sba = amf_si_find(si, HALO_HA_STANDBY);
        struct su *sb = sba ? sba->su : NULL;
        if (!a->deciding && other->sg->ops->policy->together && sb && sb == along)
            continue;
        int r = a->deciding ? amf_si_switchover(a, si->name, NULL)
                            : a->placement->request(a->placement_data, AMF_OP_SWITCHOVER, si->name, "", NULL);
        if (r < 0 && !moved)
            return false; /* nothing moved yet: the unit fails over */
        if (r < 0)
            log_warning("Node switchover: '%s' stays ACTIVE on '%s': %s", si->name, other->name, halo_strerror(r));
        moved = true;
        along = sb;
    }
    return true;
}

/*
 * Node failover: the failed unit (su, counted against its restart limit) and
 * every other unit of this node fail over.  Node switchover (graceful): the
 * failed unit fails over, the others hand their ACTIVE SIs over gracefully
 * and keep running, or fail over where they cannot.
 */
static void node_recover(struct amf *a, struct su *su, const char *why, struct comp *c, const char *c_why,
                         bool graceful) {
    amf_su_failover(su, why, c, c_why);
    for (size_t g = 0; g < a->n_sgs; g++)
        for (size_t u = 0; u < a->sgs[g].n_sus; u++) {
            struct su *other = &a->sgs[g].sus[u];
            if (!other->local || other->failing || other == su || other->oper == SU_DISABLED)
                continue;
            set_note(other, why);
            if (!graceful || !switch_over(a, other))
                fail_bystander(other, why);
        }
}

/* ---- node failfast ---- */

void amf_set_failfast(struct amf *a, amf_failfast_fn fn, void *userdata) {
    a->failfast_fn = fn;
    a->failfast_userdata = userdata;
}

/* The action's turn, once (the fence is over, or timed out). */
static void failfast_fenced(struct amf *a) {
    _cleanup_free_ char *why = TAKE_PTR(a->failfast_why);
    if (!why)
        return;
    a->stopped_cb = NULL;
    for (size_t g = 0; g < a->n_sgs; g++)
        for (size_t u = 0; u < a->sgs[g].n_sus; u++)
            uv_timer_stop(&a->sgs[g].sus[u].fence_timer);
    a->failfast_fn(a, why, a->failfast_userdata);
}

static void on_failfast_fenced(struct amf *a, void *userdata) {
    if (!a->failfast_cleaned) {
        /* Every process is gone; what they held outside themselves is not: an OCF resource (a floating
         * address) and what a non-SA-aware component's cleanup releases.  Their stop and cleanup run
         * now, each bounded by its own timeout, before the lease is given up and a peer takes over. */
        a->failfast_cleaned = true;
        bool any = false;
        for (size_t g = 0; g < a->n_sgs; g++)
            for (size_t u = 0; u < a->sgs[g].n_sus; u++)
                if (a->sgs[g].sus[u].local)
                    any = amf_nsa_cleanup(&a->sgs[g].sus[u]) || any;
        if (any) {
            log_notice("Node failfast of '%s': every process is gone; stopping its OCF resources and running "
                       "cleanup commands",
                       a->node);
            for (size_t g = 0; g < a->n_sgs; g++)
                for (size_t u = 0; u < a->sgs[g].n_sus; u++)
                    uv_timer_stop(&a->sgs[g].sus[u].fence_timer); /* each cleanup has its own bound */
            a->stopped_cb = on_failfast_fenced;
            amf_stop_check(a);
            return;
        }
    }
    log_notice("Node failfast of '%s': every component of the node is gone", a->node);
    failfast_fenced(a);
}

/* A process that SIGKILL does not end (stuck in the kernel) does not hold the node up for ever:
 * the action (a halt or reboot ends it anyway) runs after the unit's terminate timeout. */
static void on_failfast_fence_timeout(uv_timer_t *t) {
    struct su *su = t->data;
    log_error("Node failfast: processes of service unit '%s' did not die within its terminate timeout after "
              "SIGKILL; the failfast action runs anyway",
              su->name);
    failfast_fenced(su->amf);
}

/*
 * Whether the node's failfast action takes the failure over: the AMF stops at
 * once (no restart, no assignment, no terminate callback, no cleanup: the node
 * goes down), every component and helper of the node gets SIGKILL, and the
 * action runs only once all of them are reaped.  A peer takes the work only
 * after that (this node's lease is given up, or runs out, then; a coordinator
 * elsewhere waits for the units to be fenced), so two ACTIVEs never overlap.
 */
static bool node_failfast(struct amf *a, struct su *su, const char *why, struct comp *c) {
    const struct config_node *n = config_find_node(a->config, a->node);
    if (!n || n->failfast == CONFIG_FAILFAST_NONE || !a->failfast_fn || a->stopping)
        return false;
    free(a->failfast_why);
    if (!(a->failfast_why = strdup(why)))
        return false; /* out of memory: a node failover instead */
    log_error("Node failfast of '%s': %s; every component of the node is killed, then its failfast action runs",
              a->node, why);
    free(su->last_failure);
    su->last_failure = strdup(why);
    amf_notify_comp(c, AMF_COMP_FAILED, why);
    a->stopping = true;
    a->stopped_cb = on_failfast_fenced;
    a->stopped_userdata = NULL;
    for (size_t g = 0; g < a->n_sgs; g++)
        for (size_t u = 0; u < a->sgs[g].n_sus; u++) {
            struct su *other = &a->sgs[g].sus[u];
            if (!other->local)
                continue;
            uv_timer_stop(&other->restart_timer);
            uv_timer_start(&other->fence_timer, on_failfast_fence_timeout,
                           other->comps[0].cfg->timeouts.terminate / 1000, 0);
            for (size_t i = 0; i < other->n_comps; i++) {
                struct comp *k = &other->comps[i];
                if (k->helper)
                    (void)proc_kill(k->helper, SIGKILL);
                k->restart_in_place = false;
                amf_comp_kill(k);
            }
        }
    amf_stop_check(a);
    return true;
}

/* A failure restarts in place only in an unlocked unit (a locked one holds nothing to keep). */
static const char *restart_refused(struct su *su) {
    return su->admin != SU_UNLOCKED ? "its unit is not in service" : amf_comp_restart_refused(&su->comps[0]);
}

/* The rung a failure of c climbs to from start, counting on the way; note says which and why. */
static enum amf_rung climb(struct comp *c, enum amf_rung start, char *note, size_t size) {
    struct su *su = c->su;
    const struct config_sg *sg = su->sg->cfg;
    enum amf_rung r = start;
    const char *refused;
    char d[32];

    snprintf(note, size, "%s", amf_rung_to_string(start));
    if (r == AMF_RUNG_COMP_RESTART) {
        if ((refused = restart_refused(su))) {
            snprintf(note, size, "su-failover (%s)", refused);
            return AMF_RUNG_SU_FAILOVER;
        }
        if (amf_rung_count_climb(&su->comp_restarts, &sg->comp_restart)) {
            snprintf(note, size, "component-restart %u/%u", su->comp_restarts.count, sg->comp_restart.max);
            return r;
        }
        r = AMF_RUNG_SU_RESTART; /* the note says so below */
    }
    if (r == AMF_RUNG_SU_RESTART) {
        char esc[160] = "";
        amf_rung_count_reset(&su->comp_restarts);
        if (start != r && sg->comp_restart.max > 0)
            snprintf(esc, sizeof(esc), "escalated to su-restart (more than %u component restarts within %s), ",
                     sg->comp_restart.max, format_duration(d, sizeof(d), sg->comp_restart.probation));
        if ((refused = restart_refused(su))) {
            snprintf(note, size, "su-failover (%s)", refused);
            r = AMF_RUNG_SU_FAILOVER;
        } else if (amf_rung_count_climb(&su->su_restarts, &sg->su_restart)) {
            snprintf(note, size, "%ssu-restart %u/%u", esc, su->su_restarts.count, sg->su_restart.max);
            return r;
        } else {
            r = AMF_RUNG_SU_FAILOVER;
            snprintf(note, size, "su-failover");
            if (sg->su_restart.max > 0)
                snprintf(note, size, "escalated to su-failover (more than %u su restarts within %s)",
                         sg->su_restart.max, format_duration(d, sizeof(d), sg->su_restart.probation));
        }
    }
    if (r == AMF_RUNG_SU_FAILOVER) {
        amf_rung_count_reset(&su->su_restarts);
        const struct config_node *n = config_find_node(su->amf->config, su->amf->node);
        if (n && n->su_failover.given && !amf_rung_count_climb(&su->amf->su_failovers, &n->su_failover)) {
            snprintf(note, size, "escalated to node-failover (more than %u su failovers on node '%s' within %s)",
                     n->su_failover.max, n->name, format_duration(d, sizeof(d), n->su_failover.probation));
            r = AMF_RUNG_NODE_FAILOVER;
        }
    }
    return r;
}

void amf_comp_recover(struct comp *c, const char *why, halo_recovery recommended) {
    struct su *su = c->su;
    struct amf *a = c->amf;
    char note[320], buf[840], cwhy[512];

    if (su->failing)
        return;
    snprintf(cwhy, sizeof(cwhy), "component '%s' %s", c->name, why);
    if (a->stopping || su->admin_restart || su->adopting) {
        /* Stopping, an operator's restart, or an adopted unit not trusted yet: as ever, the unit. */
        amf_su_failover(su, cwhy, c, why);
        return;
    }
    enum amf_rung r = climb(c, amf_rung_of(c->cfg->recovery, recommended), note, sizeof(note));
    snprintf(buf, sizeof(buf), "%s: %s", note, cwhy);
    set_note(su, buf);
    switch (r) {
    case AMF_RUNG_COMP_RESTART:
        log_warning_fields(AMF_FIELDS_COMP(c, NULL), "Component '%s' of '%s' failed (%s): %s", c->name, su->name, why,
                           note);
        amf_comp_restart_in_place(c, buf);
        break;
    case AMF_RUNG_SU_RESTART:
        log_warning_fields(AMF_FIELDS_SU(su, NULL), "Service unit '%s' restarts in place: %s", su->name, buf);
        su->restarts_total++;
        for (size_t i = 0; i < su->n_comps; i++)
            amf_comp_restart_in_place(&su->comps[i], buf);
        break;
    case AMF_RUNG_SU_FAILOVER:
        amf_su_failover(su, buf, c, why);
        break;
    case AMF_RUNG_NODE_FAILFAST:
        if (node_failfast(a, su, buf, c))
            break;
        log_error("Node failfast of '%s' asked by component '%s', and the node has no 'failfast' action: every unit "
                  "of the node is killed and fails over",
                  a->node, c->name);
        node_recover(a, su, buf, c, why, false);
        break;
    case AMF_RUNG_NODE_SWITCHOVER:
        log_warning_fields(AMF_FIELDS_COMP(c, NULL), "Node switchover of '%s': %s", a->node, buf);
        node_recover(a, su, buf, c, why, true);
        break;
    case AMF_RUNG_NODE_FAILOVER:
        log_warning_fields(AMF_FIELDS_COMP(c, NULL), "Node failover of '%s': %s", a->node, buf);
        node_recover(a, su, buf, c, why, false);
        break;
    default:
        break;
    }
    amf_notify_su(su, AMF_SU_STATE);
}

void amf_comp_fail(struct comp *c, const char *why) {
    amf_comp_recover(c, why, 0);
}
