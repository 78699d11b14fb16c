/* SPDX-License-Identifier: MIT */
/*
 * The operator's maintenance operations on several units at once (a service
 * group, a node), on SIs (lock, shutdown, unlock, si-swap), sg-adjust and the
 * node switchover; and amf_run_op(), which reads "KIND:NAME" and runs the
 * operation that applies (the per-unit ones are in amf-admin.c).
 *
 * A node switchover is planned maintenance without a failover: every unit of
 * the node is shut down (each ACTIVE goes QUIESCING, and its standby takes
 * over with transition QUIESCED once the quiescing is complete), then its
 * processes are stopped (lock-instantiation).  Every unit goes its own way;
 * the operator is answered when the last one is done.
 *
 * A group and a node have an administrative state of their own (SA Forum
 * AMF): their lock marks the units it takes out of service as held by it
 * (su->held_by), and their unlock gives back those, and no others.  A group
 * whose units run on several nodes sends each other node its part
 * ("sg:NAME@NODE") through the placement, and answers once every part is done.
 */
#define LOG_AREA LOG_AREA_AMF
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "amf-internal.h"
#include "log.h"
#include "macro.h"

enum kind { KIND_SU, KIND_SG, KIND_SI, KIND_NODE, KIND_COMP, _KIND_MAX };
static const char *const kind_prefix[_KIND_MAX] = {"su:", "sg:", "si:", "node:", "comp:"};

/* The kind and name of target; a bare name is of kind bare. */
static enum kind target_parse(const char *target, enum kind bare, const char **ret_name) {
    for (size_t k = 0; k < _KIND_MAX; k++)
        if (strncmp(target, kind_prefix[k], strlen(kind_prefix[k])) == 0) {
            *ret_name = target + strlen(kind_prefix[k]);
            return (enum kind)k;
        }
    *ret_name = target;
    return bare;
}

static struct sg *sg_named(struct amf *a, const char *name, size_t len);

/* The kind a bare name is of, for each command (what it took before kinds). */
static enum kind bare_kind(int op) {
    switch (op) {
    case AMF_OP_SWITCHOVER:
        return KIND_SI;
    case AMF_OP_RESTART:
    case AMF_OP_FAIL:
    case AMF_OP_EAM_START:
    case AMF_OP_EAM_STOP:
        return KIND_COMP;
    case AMF_OP_SG_ADJUST:
        return KIND_SG;
    case AMF_OP_NODE_SWITCHOVER:
        return KIND_NODE;
    default:
        return KIND_SU;
    }
}

/* ---- several units, one answer ------------------------------------------ */

struct group_op;
struct part {
    struct amf_waiter w;
    struct group_op *g;
    struct su *su;
    bool then_stop; /* a node switchover: lock-instantiation once the shutdown is done */
    bool remote;    /* another node's units of the group: sent to their node as "sg:NAME@NODE" */
};
struct group_op {
    struct group_op *next; /* in amf->groups while an answer is awaited */
    struct amf *amf;
    struct amf_waiter *outer;
    unsigned left;
    int error;
    int op;
    unsigned held;        /* AMF_HELD_BY_SG or _NODE: whose operation this is */
    enum su_admin *state; /* the group's own state, or NULL (a part of an operation on a group) */
    struct sg *sg;        /* the group, NULL for a node */
    size_t n;
    struct part parts[];
};

static void group_set_admin(struct amf *a, struct sg *sg, enum su_admin *state, enum su_admin to) {
    if (*state == to)
        return;
    log_info("%s '%s' is %s (was %s)", sg ? "Service group" : "Node", sg ? sg->name : a->node, su_admin_to_string(to),
             su_admin_to_string(*state));
    *state = to;
    amf_notify_group_admin(a, sg); /* persisted */
}

static void group_part_end(struct group_op *g, int error) {
    if (error < 0 && error != -HALO_EEXIST && g->error == 0)
        g->error = error;
    if (--g->left > 0)
        return;
    struct amf_waiter *outer = g->outer;
    int r = g->error;
    if (r == 0 && g->state && *g->state == SU_SHUTTING_DOWN)
        group_set_admin(g->amf, g->sg, g->state, g->op == AMF_OP_NODE_SWITCHOVER ? SU_LOCKED_INSTANTIATION : SU_LOCKED);
    else if (g->state && *g->state == SU_SHUTTING_DOWN)
        /* Some units hold what they held: the state says so, and the operation may be asked again. */
        log_warning("%s '%s' stays SHUTTING-DOWN: a part of its %s failed (%s); ask it again, or lock or unlock it",
                    g->sg ? "Service group" : "Node", g->sg ? g->sg->name : g->amf->node,
                    g->op == AMF_OP_NODE_SWITCHOVER ? "switchover" : "shutdown", halo_strerror(r));
    for (struct group_op **p = &g->amf->groups; *p; p = &(*p)->next)
        if (*p == g) {
            *p = g->next;
            break;
        }
    free(g);
    if (outer)
        outer->done(outer, r);
}

static void part_done(struct amf_waiter *w, int error) {
    struct part *p = (struct part *)w;
    if (error < 0 && error != -HALO_EEXIST)
        log_warning("Operation on the units of '%s': '%s' (node '%s') refused or failed: %s", p->su->sg->name,
                    p->su->name, p->su->cfg->node, halo_strerror(error));
    if (p->then_stop && error == 0) {
        p->then_stop = false;
        log_info("Node switchover: '%s' holds nothing any more; stopping its processes", p->su->name);
        int r = amf_su_op_lock_instantiation(p->su, &p->w);
        if (r == 1)
            return;
        error = r;
    }
    group_part_end(p->g, error);
}

/* Whether g has a part for su's node already (another node's units of a group: one request). */
static bool remote_part_of(struct su *su, struct group_op *g, size_t upto) {
    for (size_t i = 0; i < upto; i++)
        if (g->parts[i].remote && streq(g->parts[i].su->cfg->node, su->cfg->node))
            return true;
    return false;
}

/* The units of sg (or, sg NULL, of node; sg and node: sg's units of this node, a part sent here).
 * Another node's units are one part per node, sent there; -HALO_EBADSTATE for a node's units on
 * another node, or where nothing can be sent. */
static int collect(struct amf *a, struct sg *only, const char *node, struct group_op **ret) {
    size_t n = 0;
    bool local_only = only && node; /* a part of an operation on the group, sent here */
    for (int pass = 0; pass < 2; pass++) {
        for (size_t g = 0; g < a->n_sgs; g++)
            for (size_t u = 0; u < a->sgs[g].n_sus; u++) {
                struct su *su = &a->sgs[g].sus[u];
                if (su->removed || (only ? su->sg != only : !streq(su->cfg->node, node) || su->sg->removed))
                    continue;
                bool remote = !su->local && a->placement->distributed;
                if (remote && (local_only || (pass == 1 && remote_part_of(su, *ret, (*ret)->n))))
                    continue; /* another node's part, or one sent to that node already */
                if (remote && (!only || !a->placement->request)) {
                    log_warning("Operation on the units of '%s' refused: '%s' runs on node '%s'; ask each node",
                                only ? only->name : node, su->name, su->cfg->node);
                    return -HALO_EBADSTATE;
                }
                if (pass == 1)
                    (*ret)->parts[(*ret)->n++] = (struct part){.su = su, .g = *ret, .remote = remote};
                n += pass == 0;
            }
        if (pass == 0) {
            *ret = calloc(1, sizeof(struct group_op) + (n + 1) * sizeof(struct part));
            if (!*ret)
                return -ENOMEM;
            (*ret)->amf = a;
        }
    }
    return 0;
}

/* Whether op on the group g applies to its unit su (of this node): a group's lock takes the units
 * that are unlocked, or held by another group's lock, and marks them held by this group; its
 * unlock and instantiation operations apply to the units it holds, and no others. */
static bool applies(const struct group_op *g, int op, const struct su *su) {
    if (op == AMF_OP_NODE_SWITCHOVER)
        return true; /* every process of the node stops; the unlocked units are held by the node's lock */
    if (op == AMF_OP_LOCK || op == AMF_OP_SHUTDOWN)
        return su->admin == SU_UNLOCKED || (su->held_by & AMF_HELD_LOCKS);
    if (op == AMF_OP_UNLOCK_INSTANTIATION && g->held == AMF_HELD_BY_NODE)
        return su->held_by & (AMF_HELD_BY_NODE | AMF_HELD_INST_BY_NODE);
    return su->held_by & g->held;
}

/* Whether an operation on the group whose own state is state is under way. */
static bool group_busy(const struct amf *a, const enum su_admin *state) {
    for (const struct group_op *g = a->groups; g; g = g->next)
        if (g->state == state)
            return true;
    return false;
}

/* The group's own state allows op (busy: an operation on it is under way); -HALO_EEXIST, -HALO_EBADSTATE. */
static int group_state_check(enum su_admin st, bool busy, int op) {
    switch (op) {
    case AMF_OP_LOCK:
        return st == SU_LOCKED || st == SU_LOCKED_INSTANTIATION ? -HALO_EEXIST : 0;
    case AMF_OP_SHUTDOWN: /* again after a shutdown that ended with a part failed: what is left shuts down */
        return st != SU_UNLOCKED && (st != SU_SHUTTING_DOWN || busy) ? -HALO_EEXIST : 0;
    case AMF_OP_UNLOCK:
        return st == SU_UNLOCKED ? -HALO_EEXIST : st == SU_LOCKED_INSTANTIATION ? -HALO_EBADSTATE : 0;
    case AMF_OP_LOCK_INSTANTIATION:
        return st == SU_LOCKED_INSTANTIATION ? -HALO_EEXIST : st != SU_LOCKED ? -HALO_EBADSTATE : 0;
    case AMF_OP_UNLOCK_INSTANTIATION:
        return st != SU_LOCKED_INSTANTIATION ? -HALO_EBADSTATE : 0;
    default:
        return 0;
    }
}

static enum su_admin group_state_after(int op) {
    switch (op) {
    case AMF_OP_LOCK:
    case AMF_OP_UNLOCK_INSTANTIATION:
        return SU_LOCKED;
    case AMF_OP_UNLOCK:
        return SU_UNLOCKED;
    case AMF_OP_LOCK_INSTANTIATION:
        return SU_LOCKED_INSTANTIATION;
    default: /* shutdown, node switchover: LOCKED or LOCKED-INSTANTIATION once done */
        return SU_SHUTTING_DOWN;
    }
}

/* Whether op may start on every unit it applies to; the first refusal's error. */
static int group_check(struct group_op *g, int op) {
    for (size_t i = 0; i < g->n; i++) {
        struct su *su = g->parts[i].su;
        enum su_admin admin = su->admin;
        bool ok;
        if (g->parts[i].remote || !applies(g, op, su))
            continue; /* its node checks it; or not the group's */
        switch (op) {
        case AMF_OP_LOCK_INSTANTIATION:
            ok = admin == SU_LOCKED || admin == SU_LOCKED_INSTANTIATION;
            break;
        case AMF_OP_UNLOCK:
            ok = admin != SU_LOCKED_INSTANTIATION;
            break;
        case AMF_OP_NODE_SWITCHOVER:
            ok = admin != SU_SHUTTING_DOWN || !su->waiter;
            break;
        default:
            ok = true;
        }
        if (!ok) {
            log_warning("Operation refused: service unit '%s' is %s", su->name, su_admin_to_string(admin));
            return -HALO_EBADSTATE;
        }
    }
    return 0;
}

/* Runs op on each unit of g; frees g.  0, 1 (w is told when the last is done), -errno. */
static int group_run(struct group_op *g, int op, struct amf_waiter *w) {
    int r = g->state ? group_state_check(*g->state, group_busy(g->amf, g->state), op) : 0;
    if (r >= 0)
        r = group_check(g, op);
    if (r < 0) {
        free(g);
        return r;
    }
    g->op = op;
    if (g->state)
        group_set_admin(g->amf, g->sg, g->state, group_state_after(op));
    if (g->n == 0) {
        g->left = 1;
        group_part_end(g, 0);
        return 0;
    }
    g->left = (unsigned)g->n + 1; /* one for this call, so that nothing ends it early */
    for (size_t i = 0; i < g->n; i++) {
        struct part *p = &g->parts[i];
        struct su *su = p->su;
        p->w.done = part_done;
        if (p->remote) {
            char target[512];
            snprintf(target, sizeof(target), "sg:%s@%s", su->sg->name, su->cfg->node);
            struct amf *a = g->amf;
            r = a->placement->request(a->placement_data, op, target, su->cfg->node, &p->w);
            if (r < 0)
                part_done(&p->w, r);
            continue;
        }
        if (!applies(g, op, su)) {
            part_done(&p->w, 0);
            continue;
        }
        if ((op == AMF_OP_LOCK || op == AMF_OP_SHUTDOWN || op == AMF_OP_NODE_SWITCHOVER) &&
            (su->admin == SU_UNLOCKED || (su->held_by & AMF_HELD_LOCKS))) {
            su->held_by |= g->held;
            amf_notify_su(su, AMF_SU_ADMIN);
        } else if (op == AMF_OP_NODE_SWITCHOVER && su->admin == SU_LOCKED) {
            /* Locked by itself: it stays so, but its processes stop by the node's operation, whose
             * unlock-instantiation starts them again. */
            su->held_by |= AMF_HELD_INST_BY_NODE;
            amf_notify_su(su, AMF_SU_ADMIN);
        }
        switch (op) {
        case AMF_OP_LOCK:
        case AMF_OP_SHUTDOWN:
            r = amf_su_op_lock(su, op == AMF_OP_SHUTDOWN, &p->w);
            break;
        case AMF_OP_UNLOCK:
            su->held_by &= ~g->held;
            r = su->held_by ? 0 : amf_su_op_unlock(su); /* still held by the other's lock */
            amf_notify_su(su, AMF_SU_ADMIN);
            break;
        case AMF_OP_LOCK_INSTANTIATION:
            r = amf_su_op_lock_instantiation(su, &p->w);
            break;
        case AMF_OP_UNLOCK_INSTANTIATION:
            su->held_by &= ~AMF_HELD_INST_BY_NODE;
            r = amf_su_op_unlock_instantiation(su);
            amf_notify_su(su, AMF_SU_ADMIN);
            break;
        case AMF_OP_NODE_SWITCHOVER:
            p->then_stop = su->admin != SU_LOCKED_INSTANTIATION;
            if (su->admin == SU_UNLOCKED)
                r = amf_su_op_lock(su, true, &p->w);
            else if (su->admin == SU_SHUTTING_DOWN) { /* one restored from before a restart: wait for it */
                su->waiter = &p->w;
                amf_su_check_lock_done(su);
                r = 1;
            } else
                r = 0; /* locked already: its processes stop next */
            break;
        default:
            r = -EINVAL;
        }
        if (r != 1)
            part_done(&p->w, r == -HALO_EEXIST ? 0 : r);
    }
    if (g->left == 1) { /* every part done already */
        r = g->error;
        group_part_end(g, 0);
        return r;
    }
    g->outer = w;
    g->next = g->amf->groups;
    g->amf->groups = g;
    group_part_end(g, 0);
    return 1;
}

void amf_admin_forget(struct amf *a, struct amf_waiter *w) {
    for (struct group_op *g = a->groups; g; g = g->next)
        if (g->outer == w)
            g->outer = NULL;
}

/* ---- SIs and groups ------------------------------------------------------ */

bool amf_si_may_switch_over(struct si *si) {
    struct assignment *act = amf_si_find(si, HALO_HA_ACTIVE), *sb = amf_si_find(si, HALO_HA_STANDBY);
    return !si->switchover && si->admin == SI_UNLOCKED && !amf_si_busy(si) && act && act->confirmed && sb &&
           sb->confirmed && amf_su_may_be_active(sb->su);
}

int amf_si_switchover(struct amf *a, const char *name, struct amf_waiter *w) {
    struct si *si = amf_find_si(a, name);
    if (!si)
        return -HALO_EUNKNOWN;
    if (!a->deciding) {
        log_warning("Switchover of '%s' refused: only the coordinator's halod moves roles", si->name);
        return -HALO_EBADSTATE;
    }
    if (!amf_si_may_switch_over(si))
        return -HALO_EBADSTATE; /* nothing to switch to, or a change is already under way */
    struct assignment *act = amf_si_find(si, HALO_HA_ACTIVE), *sb = amf_si_find(si, HALO_HA_STANDBY);
    log_info("Switchover of '%s' from '%s' to '%s' requested", si->name, act->su->name, sb->su->name);
    si->switchover = true;
    si->waiter = w;
    /* A model keeping the group's SIs together (2N) swaps them all, as the SA
     * Forum's SI swap does: those ACTIVE on the same unit go along. */
    struct sg *sg = si->sg;
    for (size_t i = 0; sg->ops->policy->together && i < sg->n_sis; i++) {
        struct si *o = &sg->sis[i];
        struct assignment *oa = amf_si_find(o, HALO_HA_ACTIVE), *osb = amf_si_find(o, HALO_HA_STANDBY);
        if (o != si && !o->removed && !o->switchover && !amf_si_busy(o) && oa && oa->confirmed && oa->su == act->su &&
            osb && osb->confirmed && osb->su == sb->su) {
            log_info("Switchover of '%s' from '%s' to '%s' along with '%s'", o->name, oa->su->name, osb->su->name,
                     si->name);
            o->switchover = true;
        }
    }
    amf_sg_evaluate(sg);
    return 1;
}

static void si_set_admin(struct si *si, enum si_admin to) {
    si->admin = to;
    amf_notify_si_admin(si); /* persisted: a new coordinator keeps it */
}

void amf_si_drained(struct si *si) {
    if (si->removed && !si->gone) {
        si->gone = true;
        log_notice("Service instance '%s' removed: its units hold nothing of it any more", si->name);
    }
    if (si->admin == SI_SHUTTING_DOWN) {
        log_info("Service instance '%s' is LOCKED: its shutdown is complete", si->name);
        si_set_admin(si, SI_LOCKED);
    }
    amf_waiter_done(&si->waiter, 0);
}

const char *amf_node_admin(const struct amf *a) {
    return su_admin_to_string(a->node_admin);
}

/* An SG's or this node's own state: whoever ran the operation wrote it; every node follows. */
static void group_admin_restore(struct amf *a, struct sg *sg, enum su_admin *state, const char *admin) {
    int st = su_admin_from_string(admin);
    enum su_admin to = st < 0 ? SU_UNLOCKED : (enum su_admin)st;
    if (*state == to)
        return;
    log_info("%s '%s' is %s, as the store says", sg ? "Service group" : "Node", sg ? sg->name : a->node,
             su_admin_to_string(to));
    *state = to;
}

void amf_admin_state_restore(struct amf *a, const char *target, const char *admin) {
    const char *name;
    enum kind k = target_parse(target, KIND_SU, &name);
    if (k == KIND_SG && sg_named(a, name, strlen(name))) {
        struct sg *sg = sg_named(a, name, strlen(name));
        group_admin_restore(a, sg, &sg->admin, admin);
        return;
    }
    if (k == KIND_NODE && streq(name, a->node)) {
        group_admin_restore(a, NULL, &a->node_admin, admin);
        return;
    }
    struct si *si = k == KIND_SI ? amf_find_si(a, name) : NULL;
    int st = si_admin_from_string(admin);
    if (!si || (a->deciding && a->ready) || si->admin == (st < 0 ? SI_UNLOCKED : (enum si_admin)st))
        return;
    si->admin = st < 0 ? SI_UNLOCKED : (enum si_admin)st;
    log_info("Service instance '%s' is %s, as the coordinator left it", si->name, si_admin_to_string(si->admin));
}

static int si_op(struct amf *a, int op, struct si *si, struct amf_waiter *w) {
    if (!a->deciding) {
        log_warning("Operation on '%s' refused: only the coordinator's halod moves roles", si->name);
        return -HALO_EBADSTATE;
    }
    if (op == AMF_OP_SWITCHOVER)
        return amf_si_switchover(a, si->name, w);
    enum si_admin to = op == AMF_OP_UNLOCK ? SI_UNLOCKED : op == AMF_OP_LOCK ? SI_LOCKED : SI_SHUTTING_DOWN;
    if (si->admin == to || (to == SI_SHUTTING_DOWN && si->admin == SI_LOCKED))
        return -HALO_EEXIST;
    if (si->waiter && si->switchover)
        return -HALO_EBADSTATE; /* a switchover is under way */
    log_info("Service instance '%s' is %s", si->name, si_admin_to_string(to));
    si_set_admin(si, to);
    amf_waiter_done(&si->waiter, to == SI_UNLOCKED ? -ECANCELED : 0);
    if (to != SI_UNLOCKED && w)
        si->waiter = w;
    amf_sg_evaluate(si->sg);
    return to != SI_UNLOCKED && w && si->waiter == w ? 1 : 0;
}

static void on_adjust_timer(uv_timer_t *t) {
    amf_sg_evaluate(t->data);
}

void amf_sg_adjust_later(struct sg *sg, usec_t delay) {
    uint64_t ms = (delay + 999) / 1000;
    if (uv_is_active((uv_handle_t *)&sg->adjust_timer) && uv_timer_get_due_in(&sg->adjust_timer) <= ms)
        return;
    uv_timer_start(&sg->adjust_timer, on_adjust_timer, ms, 0);
}

static int sg_adjust(struct amf *a, struct sg *sg) {
    if (!a->deciding) {
        log_warning("sg-adjust of '%s' refused: only the coordinator's halod moves roles", sg->name);
        return -HALO_EBADSTATE;
    }
    log_info("Adjusting service group '%s': ACTIVEs back to the most preferred units", sg->name);
    sg->adjusting = true;
    amf_sg_evaluate(sg);
    sg->adjusting = false;
    return 0;
}

/* ---- the dispatcher --------------------------------------------------------- */

static struct sg *sg_named(struct amf *a, const char *name, size_t len) {
    for (size_t i = 0; i < a->n_sgs; i++)
        if (!a->sgs[i].removed && strlen(a->sgs[i].name) == len && strncmp(a->sgs[i].name, name, len) == 0)
            return &a->sgs[i];
    return NULL;
}

static bool node_known(struct amf *a, const char *name) {
    return streq(name, a->node) || config_find_node(a->config, name);
}

static int su_run(struct amf *a, int op, struct su *su, struct amf_waiter *w) {
    if (!su->local && a->placement->distributed) {
        log_warning("Operation on '%s' refused: send it to its node, '%s'", su->name, su->cfg->node);
        return -HALO_EBADSTATE;
    }
    switch (op) {
    case AMF_OP_LOCK:
    case AMF_OP_SHUTDOWN:
        return amf_su_op_lock(su, op == AMF_OP_SHUTDOWN, w);
    case AMF_OP_UNLOCK:
        return amf_su_op_unlock_own(su);
    case AMF_OP_LOCK_INSTANTIATION:
        return amf_su_op_lock_instantiation(su, w);
    case AMF_OP_UNLOCK_INSTANTIATION:
        return su->held_by ? amf_su_held(su) : amf_su_op_unlock_instantiation(su);
    case AMF_OP_RESTART:
        return amf_su_op_restart(su);
    case AMF_OP_REPAIR:
        return amf_su_op_repair(su);
    default:
        return -EINVAL;
    }
}

static int comp_run(struct amf *a, int op, struct comp *c) {
    if (!c->su->local && (a->placement->distributed || op == AMF_OP_RESTART))
        return -HALO_EUNKNOWN;
    switch (op) {
    case AMF_OP_RESTART:
        return amf_comp_op_restart(c);
    case AMF_OP_FAIL:
        return amf_comp_report_failed(a, c->name);
    case AMF_OP_EAM_START:
        return amf_comp_eam_start(a, c->name);
    case AMF_OP_EAM_STOP:
        return amf_comp_eam_stop(a, c->name);
    default:
        return -EINVAL;
    }
}

/* repaired node:NAME: every DISABLED unit of the node is repaired, and the node's rung of the ladder
 * (its su-failover count) starts again from 0.  Run by the node's own halod (amf_op_where()). */
static int node_repair(struct amf *a, const char *node) {
    unsigned n = 0;
    if (a->placement->distributed && !streq(node, a->node))
        return -HALO_EBADSTATE;
    for (size_t g = 0; g < a->n_sgs; g++)
        for (size_t u = 0; u < a->sgs[g].n_sus; u++) {
            struct su *su = &a->sgs[g].sus[u];
            if (streq(su->cfg->node, node) && su->oper == SU_DISABLED && amf_su_op_repair(su) >= 0)
                n++;
        }
    bool counted = a->su_failovers.count > 0;
    amf_rung_count_reset(&a->su_failovers);
    if (n == 0 && !counted)
        return -HALO_EBADSTATE; /* nothing to repair */
    log_info("Node '%s' repaired by the operator: %u disabled unit(s) repaired, its su-failover count cleared", node,
             n);
    return 0;
}

static bool group_op(int op) {
    return op == AMF_OP_LOCK || op == AMF_OP_SHUTDOWN || op == AMF_OP_UNLOCK || op == AMF_OP_LOCK_INSTANTIATION ||
           op == AMF_OP_UNLOCK_INSTANTIATION;
}

int amf_run_op(struct amf *a, int op, const char *target, struct amf_waiter *w) {
    const char *name;
    struct group_op *g = NULL;
    int r;
    if (op != AMF_OP_SWITCHOVER && op != AMF_OP_FAIL && op != AMF_OP_REPAIR && op != AMF_OP_SG_ADJUST &&
        op != AMF_OP_NODE_SWITCHOVER && op != AMF_OP_RESTART && op != AMF_OP_EAM_START && op != AMF_OP_EAM_STOP &&
        !group_op(op))
        return -EOPNOTSUPP;
    switch (target_parse(target, bare_kind(op), &name)) {
    case KIND_SU: {
        struct su *su = amf_find_su(a, name);
        return su ? su_run(a, op, su, w) : -HALO_EUNKNOWN;
    }
    case KIND_COMP: {
        struct comp *c = amf_find_comp(a, name);
        return c ? comp_run(a, op, c) : -HALO_EUNKNOWN;
    }
    case KIND_SI: {
        struct si *si = amf_find_si(a, name);
        if (!si)
            return -HALO_EUNKNOWN;
        return op == AMF_OP_SWITCHOVER || op == AMF_OP_LOCK || op == AMF_OP_SHUTDOWN || op == AMF_OP_UNLOCK
                   ? si_op(a, op, si, w)
                   : -EINVAL;
    }
    case KIND_SG: {
        /* "sg:NAME@NODE": this node's part of an operation on the group, sent by the node asked. */
        const char *at = strchr(name, '@');
        struct sg *sg = sg_named(a, name, at ? (size_t)(at - name) : strlen(name));
        if (!sg || (at && !streq(at + 1, a->node)))
            return -HALO_EUNKNOWN;
        if (op == AMF_OP_SG_ADJUST && !at)
            return sg_adjust(a, sg);
        if (!group_op(op))
            return -EINVAL;
        r = collect(a, sg, at ? a->node : NULL, &g);
        if (r < 0)
            return free(g), r;
        *g = (struct group_op){.amf = a, .held = AMF_HELD_BY_SG, .sg = sg, .state = at ? NULL : &sg->admin, .n = g->n};
        return group_run(g, op, w);
    }
    case KIND_NODE:
        if (!node_known(a, name))
            return -HALO_EUNKNOWN;
        if (op == AMF_OP_REPAIR)
            return node_repair(a, name);
        if (!group_op(op) && op != AMF_OP_NODE_SWITCHOVER)
            return -EINVAL;
        if (a->placement->distributed && !streq(name, a->node))
            return -HALO_EBADSTATE; /* its own halod runs it (amf_op_where()) */
        log_info("Node '%s': %s of every unit", name,
                 op == AMF_OP_NODE_SWITCHOVER ? "switchover (shutdown, then lock-instantiation)" : "operation");
        r = collect(a, NULL, name, &g);
        if (r < 0)
            return free(g), r;
        *g = (struct group_op){.amf = a, .held = AMF_HELD_BY_NODE, .state = &a->node_admin, .n = g->n};
        return group_run(g, op, w);
    default:
        return -EINVAL;
    }
}

const char *amf_op_where(struct amf *a, int op, const char *target) {
    const char *name;
    if (!a->placement->distributed)
        return NULL;
    switch (target_parse(target, bare_kind(op), &name)) {
    case KIND_SU: {
        /* A unit's own node locks, unlocks, restarts and repairs it. */
        struct su *su = amf_find_su(a, name);
        return su && !su->local ? su->cfg->node : NULL;
    }
    case KIND_COMP: {
        struct comp *c = amf_find_comp(a, name);
        return c && !c->su->local ? c->su->cfg->node : NULL;
    }
    case KIND_SI:
        /* The coordinator moves roles. */
        return amf_find_si(a, name) && !a->deciding ? "" : NULL;
    case KIND_NODE:
        return node_known(a, name) && !streq(name, a->node) ? name : NULL;
    case KIND_SG:
        if (strchr(name, '@'))
            return streq(strchr(name, '@') + 1, a->node) ? NULL : strchr(name, '@') + 1;
        for (size_t i = 0; i < a->n_sgs; i++) {
            struct sg *sg = &a->sgs[i];
            if (!streq(sg->name, name))
                continue;
            if (op == AMF_OP_SG_ADJUST)
                return a->deciding ? NULL : "";
            /* Its units' node, when they all run on one other node. */
            const char *node = sg->n_sus ? sg->sus[0].cfg->node : NULL;
            for (size_t u = 0; u < sg->n_sus; u++)
                if (!streq(sg->sus[u].cfg->node, node))
                    return NULL;
            return node && !streq(node, a->node) ? node : NULL;
        }
        return NULL;
    default:
        return NULL;
    }
}
