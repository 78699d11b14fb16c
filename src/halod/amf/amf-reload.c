/* SPDX-License-Identifier: MIT */
/*
 * A reloaded description, as far as the AMF applies it live: a CSI whose attributes changed
 * goes again, by a CSI set with the state it holds, to the components of this node that hold
 * it; a CSI added to or removed from an SI goes to (a CSI set) or leaves (a CSI remove) the
 * components that hold the SI; a new service group joins the model and starts.  What else a reload may change is
 * decided above (manager-reload.c), which refuses it.
 */
#define LOG_AREA LOG_AREA_AMF
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>

#include "amf-internal.h"
#include "log.h"
#include "macro.h"

/* Whether a, of this node, holds a confirmed ACTIVE or STANDBY that no change is taking away. */
static bool holds(const struct assignment *a) {
    return a->su && a->su->local && a->confirmed && !a->removing && a->state == a->target &&
           (a->state == HALO_HA_ACTIVE || a->state == HALO_HA_STANDBY);
}

/* Whether a holds a role that a CSI set may repeat: held, nothing in flight. */
static bool steady(const struct assignment *a) {
    return holds(a) && !a->pending;
}

int amf_csi_reload_check(struct amf *a, const char *si_name) {
    struct si *si = amf_find_si(a, si_name);
    if (!si)
        return -HALO_EUNKNOWN;
    for (size_t i = 0; i < si->n_asg; i++) {
        const struct assignment *as = &si->asg[i];
        if (as->su && as->su->local && (as->pending || as->removing || as->state != as->target))
            return -EBUSY;
    }
    return 0;
}

int amf_csi_reload(struct amf *a, const char *si_name, const char *csi_name) {
    const struct config_csi *csi = NULL;
    struct si *si = amf_find_csi(a, csi_name, &csi);
    if (!si || !streq(si->name, si_name))
        return -HALO_EUNKNOWN;
    int sent = 0;
    for (size_t i = 0; i < si->n_asg; i++) {
        struct assignment *as = &si->asg[i];
        if (!steady(as))
            continue;
        struct comp *c = amf_csi_comp(as->su, csi);
        /* A non-SA-aware or OCF component reads its CSI's attributes when it starts: not told now. */
        if (!c || !amf_comp_sa_aware(c) || !c->conn)
            continue;
        log_info("CSI '%s' of '%s' changed: CSI set %s to '%s' again", csi->name, si->name,
                 halo_ha_state_to_string(as->state), c->name);
        as->pending++;
        int r = amf_asg_send_csi_set(si, c, csi, as->state, HALO_CSI_STILL_ACTIVE,
                                     as->state == HALO_HA_STANDBY ? amf_asg_active_comp(si, csi) : NULL);
        if (r < 0) {
            as->pending--;
            return r;
        }
        if (as->su) /* else the send failed, which failed the unit and dropped its assignment */
            sent++;
    }
    return sent;
}

static const struct config_csi *csi_in(const struct config_si *cfg, const char *name) {
    for (size_t k = 0; k < cfg->n_csis; k++)
        if (streq(cfg->csis[k].name, name))
            return &cfg->csis[k];
    return NULL;
}

/* The description of the unit named name in ncg, or NULL. */
static const struct config_su *new_su(const struct config_sg *ncg, const char *name) {
    for (size_t u = 0; u < ncg->n_sus; u++)
        if (streq(ncg->sus[u].name, name))
            return &ncg->sus[u];
    return NULL;
}

static bool lists(const struct config_su *nsu, const char *comp) {
    for (size_t i = 0; i < nsu->n_components; i++)
        if (streq(nsu->components[i].name, comp))
            return true;
    return false;
}

/* Whether a component that is not SA-aware and stays in ncg would have to stop (csi removed) or start
 * (csi added) in a unit of si's group: its process is its assignment.  One that the same reload
 * removes stops by the CSI remove; one that it adds starts by the CSI set. */
static bool taken_by_nsa(struct si *si, const struct config_csi *csi, const struct config_sg *ncg, bool added) {
    for (size_t u = 0; u < si->sg->n_sus; u++) {
        struct su *su = &si->sg->sus[u];
        if (su->removed)
            continue;
        const struct config_su *nsu = new_su(ncg, su->name);
        if (!added || !nsu) { /* a unit the same reload removes: as the running description says */
            struct comp *c = amf_csi_comp(su, csi);
            if (c && !amf_comp_sa_aware(c) && (!nsu || lists(nsu, c->name)))
                return true;
            continue;
        }
        size_t i = config_csi_component(nsu, csi);
        struct comp *c = i < nsu->n_components ? amf_find_comp(su->amf, nsu->components[i].name) : NULL;
        if (c && c->su == su && !amf_comp_sa_aware(c))
            return true;
    }
    return false;
}

int amf_si_csis_check(struct amf *a, const char *si_name, const struct config_si *cfg, const struct config_sg *ncg) {
    int r = amf_csi_reload_check(a, si_name);
    if (r < 0)
        return r;
    struct si *si = amf_find_si(a, si_name);
    for (size_t k = 0; k < si->cfg->n_csis; k++)
        if (!csi_in(cfg, si->cfg->csis[k].name) && taken_by_nsa(si, &si->cfg->csis[k], ncg, false))
            return -EOPNOTSUPP;
    for (size_t k = 0; k < cfg->n_csis; k++)
        if (!csi_in(si->cfg, cfg->csis[k].name) && taken_by_nsa(si, &cfg->csis[k], ncg, true))
            return -EOPNOTSUPP;
    return 0;
}

/* The component taking csi in a's unit when a holds its role and it can be told: SA-aware and
 * linked, or not SA-aware (halod carries its CSI out: a remove stops it, a set ACTIVE starts it). */
static struct comp *holder(struct assignment *as, const struct config_csi *csi) {
    struct comp *c = holds(as) ? amf_csi_comp(as->su, csi) : NULL;
    return c && (!amf_comp_sa_aware(c) || c->conn) ? c : NULL;
}

/* To each holder of si, for each CSI of from that in lacks: a CSI set of it (add) or a CSI remove.
 * The count sent, or -errno. */
static int send_missing(struct si *si, const struct config_si *from, const struct config_si *in, bool add) {
    int sent = 0;
    for (size_t k = 0; k < from->n_csis; k++) {
        const struct config_csi *csi = &from->csis[k];
        for (size_t i = 0; !csi_in(in, csi->name) && i < si->n_asg; i++) {
            struct assignment *as = &si->asg[i];
            struct comp *c = holder(as, csi);
            if (!c)
                continue;
            if (add)
                log_info("CSI '%s' joined '%s': CSI set %s to '%s'", csi->name, si->name,
                         halo_ha_state_to_string(as->state), c->name);
            else
                log_info("CSI '%s' left '%s': CSI remove to '%s'", csi->name, si->name, c->name);
            bool nsa = !amf_comp_sa_aware(c);
            as->pending += add || nsa;
            int r = nsa    ? amf_nsa_csi(si, c, add ? as->state : 0)
                    : !add ? amf_asg_send_csi_remove(si, c, csi, as)
                           : amf_asg_send_csi_set(si, c, csi, as->state, HALO_CSI_NEW_ASSIGN,
                                                  as->state == HALO_HA_STANDBY ? amf_asg_active_comp(si, csi) : NULL);
            if (r < 0) {
                as->pending -= add || nsa;
                return r;
            }
            sent += as->su != NULL; /* else the send failed, which failed the unit */
        }
    }
    return sent;
}

int amf_si_csis_reload(struct amf *a, const char *si_name, const struct config_si *cfg) {
    struct si *si = amf_find_si(a, si_name);
    if (!si)
        return -HALO_EUNKNOWN;
    /* The CSIs gone first, from the description the holders got; then the new ones. */
    const struct config_si *old = si->cfg;
    int removes = send_missing(si, old, cfg, false);
    if (removes < 0)
        return removes;
    si->cfg = cfg;
    int sets = send_missing(si, cfg, old, true);
    return sets < 0 ? sets : removes + sets;
}

/* A unit a reload added: its proxied components find their proxies, and its components of this node start. */
static void unit_start(struct su *su) {
    struct amf *a = su->amf;
    for (size_t i = 0; i < su->n_comps; i++) {
        struct comp *c = &su->comps[i];
        c->proxy = c->cfg->proxy ? amf_find_comp(a, c->cfg->proxy) : NULL;
    }
    if (a->ready && !a->stopping)
        for (size_t i = 0; su->local && i < su->n_comps; i++)
            amf_comp_instantiate(&su->comps[i]);
}

void amf_set_config(struct amf *a, const struct config *config) {
    a->config = config;
}

size_t amf_sg_room(const struct amf *a) {
    return a->cap_sgs - a->n_sgs;
}

int amf_sg_add(struct amf *a, const struct config *config, const struct config_sg *cg) {
    if (a->n_sgs >= a->cap_sgs)
        return -ENOSPC;
    for (size_t g = 0; g < a->n_sgs; g++)
        if (!a->sgs[g].removed && streq(a->sgs[g].name, cg->name))
            return -HALO_EEXIST; /* still there (its removal under way) */
    struct sg *sg = &a->sgs[a->n_sgs];
    int r = amf_sg_alloc(sg, cg);
    if (r < 0) {
        amf_sg_free(sg);
        *sg = (struct sg){0};
        return r;
    }
    amf_sg_init(a, sg, cg);
    a->n_sgs++;
    a->config = config; /* the same nodes; the new group's description lives there */
    log_info("Service group '%s' added (%s, %zu units, %zu SIs)", sg->name, sg->ops->name, sg->n_sus, sg->n_sis);
    for (size_t u = 0; u < sg->n_sus; u++)
        unit_start(&sg->sus[u]);
    amf_sg_evaluate(sg);
    return 0;
}

/* A group being removed: locked (its SIs removed from its units), then its processes stopped.  On
 * several nodes, only this node's units ("sg:NAME@NODE"): another node stops its own when it reloads;
 * the deciding node first locks each SI of the group, which takes them from every node's units
 * without moving them (a group it no longer has is assigned nowhere). */
struct removal {
    struct amf_waiter w; /* first: the AMF hands it back */
    struct amf *amf;
    struct sg *sg;
    int op;         /* the operation under way */
    size_t si_next; /* the SIs locked so far (the deciding node of several) */
    bool locked;    /* the units' lock is asked */
    char target[2 * CONFIG_NAME_MAX + 8];
};

static void removal_step(struct removal *rm, int error);

/* The group, or on several nodes this node's part of it. */
static void removal_target(struct removal *rm) {
    if (rm->amf->placement->distributed)
        snprintf(rm->target, sizeof(rm->target), "sg:%s@%s", rm->sg->name, rm->amf->node);
    else
        snprintf(rm->target, sizeof(rm->target), "sg:%s", rm->sg->name);
}

static void removal_done(struct amf_waiter *w, int error) {
    removal_step((struct removal *)w, error);
}

/* The operation rm->op ended with error (0, -errno); the next one, or the end. */
static void removal_step(struct removal *rm, int error) {
    if (error == -HALO_EEXIST) /* already so */
        error = 0;
    for (;;) {
        if (error == -ECANCELED || (error < 0 && rm->op == AMF_OP_LOCK_INSTANTIATION)) {
            log_error("Service group '%s' removed from the description, but %s: %s; it stays until halod restarts",
                      rm->sg->name, rm->op == AMF_OP_LOCK ? "not locked" : "its processes were not stopped",
                      halo_strerror(error));
            free(rm);
            return;
        }
        if (rm->op == AMF_OP_LOCK_INSTANTIATION) {
            struct sg *sg = rm->sg;
            sg->removed = true;
            for (size_t i = 0; i < rm->si_next; i++) {
                sg->sis[i].admin = SI_UNLOCKED; /* the SI locks above, cleared from the store */
                amf_notify_si_admin(&sg->sis[i]);
            }
            /* What the store keeps of its states goes back to unlocked: the group added again,
             * by a reload or at a restart, starts as a new one. */
            for (size_t u = 0; u < sg->n_sus; u++) {
                sg->sus[u].admin = SU_UNLOCKED;
                sg->sus[u].held_by = 0;
                amf_notify_su(&sg->sus[u], AMF_SU_ADMIN);
            }
            sg->admin = SU_UNLOCKED;
            amf_notify_group_admin(rm->amf, sg);
            log_notice("Service group '%s' removed: its SIs were taken from its units and its processes stopped",
                       rm->sg->name);
            free(rm);
            return;
        }
        int r;
        if (!rm->locked && rm->si_next < rm->sg->n_sis && rm->amf->placement->distributed && rm->amf->deciding) {
            struct si *si = &rm->sg->sis[rm->si_next++];
            /* An SI an operator locked before stays the operator's lock. */
            si->removal_lock = si->admin == SI_UNLOCKED;
            snprintf(rm->target, sizeof(rm->target), "si:%s", si->name);
            r = amf_run_op(rm->amf, AMF_OP_LOCK, rm->target, &rm->w);
        } else if (!rm->locked) {
            rm->locked = true;
            removal_target(rm);
            r = amf_run_op(rm->amf, AMF_OP_LOCK, rm->target, &rm->w);
        } else {
            /* Locked (or not lockable: a lock-instantiation takes the units out anyway): stop the processes. */
            rm->op = AMF_OP_LOCK_INSTANTIATION;
            removal_target(rm);
            r = amf_run_op(rm->amf, rm->op, rm->target, &rm->w);
        }
        if (r == 1)
            return; /* removal_done() follows */
        error = r;
    }
}

int amf_sg_remove(struct amf *a, const char *name) {
    struct sg *sg = NULL;
    for (size_t g = 0; g < a->n_sgs; g++)
        if (!a->sgs[g].removed && streq(a->sgs[g].name, name))
            sg = &a->sgs[g];
    if (!sg)
        return -HALO_EUNKNOWN;
    struct removal *rm = calloc(1, sizeof(*rm));
    if (!rm)
        return -ENOMEM;
    *rm = (struct removal){.w.done = removal_done, .amf = a, .sg = sg, .op = AMF_OP_LOCK};
    log_info("Service group '%s' is no longer in the description: locking it, then stopping its processes%s", name,
             a->placement->distributed ? " (those of this node)" : "");
    removal_step(rm, 0);
    return 0;
}

static struct sg *sg_named(struct amf *a, const char *name) {
    for (size_t g = 0; g < a->n_sgs; g++)
        if (!a->sgs[g].removed && streq(a->sgs[g].name, name))
            return &a->sgs[g];
    return NULL;
}

static bool holds_any(const struct si *si) {
    for (size_t i = 0; i < si->n_asg; i++)
        if (si->asg[i].su)
            return true;
    return false;
}

/* Whether an SI of sg is changing its assignments (an invocation in flight, a switchover or an
 * operation waited for), or one removed still holds something. */
static bool sg_changing(const struct sg *sg) {
    for (size_t i = 0; i < sg->n_sis; i++) {
        const struct si *si = &sg->sis[i];
        if ((si->removed && holds_any(si)) || si->switchover || si->waiter)
            return true;
        for (size_t k = 0; k < si->n_asg; k++) {
            const struct assignment *as = &si->asg[k];
            if (as->su && (as->pending || as->removing || as->state != as->target))
                return true;
        }
    }
    return false;
}

/* Whether an SI of the model that still holds something (a removed one) or is not removed is named
 * name or has a CSI named csi. */
static bool name_taken(struct amf *a, const char *name, const char *csi) {
    for (size_t g = 0; g < a->n_sgs; g++)
        for (size_t i = 0; !a->sgs[g].removed && i < a->sgs[g].n_sis; i++) {
            const struct si *si = &a->sgs[g].sis[i];
            if (si->removed && !holds_any(si))
                continue;
            if (name && streq(si->name, name))
                return true;
            for (size_t k = 0; csi && k < si->cfg->n_csis; k++)
                if (streq(si->cfg->csis[k].name, csi))
                    return true;
        }
    return false;
}

/* The running group sg_name if it has room for n_before + 1 more units (units) or SIs; else NULL, and
 * *ret is -HALO_EUNKNOWN or -ENOSPC. */
static struct sg *room_in(struct amf *a, const char *sg_name, bool units, size_t n_before, int *ret) {
    struct sg *sg = sg_named(a, sg_name);
    bool full = sg && (units ? sg->n_sus + n_before >= sg->cap_sus : sg->n_sis + n_before >= sg->cap_sis);
    *ret = !sg ? -HALO_EUNKNOWN : full ? -ENOSPC : 0;
    return *ret < 0 ? NULL : sg;
}

int amf_si_add_check(struct amf *a, const char *sg_name, const struct config_si *cfg, size_t n_before) {
    int r;
    struct sg *sg = room_in(a, sg_name, false, n_before, &r);
    if (!sg)
        return r;
    if (name_taken(a, cfg->name, NULL))
        return -HALO_EEXIST;
    for (size_t k = 0; k < cfg->n_csis; k++)
        if (name_taken(a, NULL, cfg->csis[k].name))
            return -HALO_EEXIST;
    return sg_changing(sg) ? -EBUSY : 0;
}

int amf_si_add(struct amf *a, const char *sg_name, const struct config_si *cfg) {
    int r;
    struct sg *sg = cfg ? room_in(a, sg_name, false, 0, &r) : NULL;
    if (!sg)
        return cfg ? r : -HALO_EUNKNOWN;
    struct si *si = &sg->sis[sg->n_sis];
    /* One slot per unit of the group, as at start (amf_sg_alloc()). */
    if (!(si->asg = calloc(sg->cap_sus, sizeof(struct assignment))))
        return -ENOMEM;
    si->n_asg = sg->n_sus;
    si->amf = a;
    si->sg = sg;
    si->cfg = cfg;
    si->name = cfg->name;
    sg->n_sis++;
    log_info("Service instance '%s' added to service group '%s' (%zu CSIs)", si->name, sg->name, cfg->n_csis);
    amf_sg_evaluate(sg);
    return 0;
}

struct si *amf_find_si_or_removed(struct amf *a, const char *name) {
    struct si *si = amf_find_si(a, name), *removed = NULL;
    for (size_t g = 0; !si && g < a->n_sgs; g++)
        for (size_t i = 0; !a->sgs[g].removed && i < a->sgs[g].n_sis; i++)
            if (a->sgs[g].sis[i].removed && streq(a->sgs[g].sis[i].name, name))
                removed = &a->sgs[g].sis[i]; /* the last one removed */
    return si ?: removed;
}

int amf_si_remove(struct amf *a, const char *name) {
    struct si *si = amf_find_si(a, name);
    if (!si)
        return -HALO_EUNKNOWN;
    /* On several nodes, a node that does not decide takes nothing itself: the coordinator, as long as
     * it has the SI, would give it back to its units; once it has reloaded, it takes the SI from every
     * node's units, whose nodes carry its targets out (amf_find_si_or_removed()). */
    log_info("Service instance '%s' is no longer in the description: %s", name,
             !a->placement->distributed || a->deciding
                 ? "taking it from its units"
                 : "the coordinator takes it from its units once it has reloaded");
    si->removed = true;
    if (si->admin != SI_UNLOCKED) { /* the store forgets its lock: added again, it starts unlocked */
        si->admin = SI_UNLOCKED;
        amf_notify_si_admin(si);
    }
    amf_sg_evaluate(si->sg);
    return 0;
}

/* Whether sg's or this node's own lock holds its units, or an operation on several units is under
 * way: a unit added would escape the lock (or the operation), one removed would be locked twice. */
static bool group_held(const struct amf *a, const struct sg *sg) {
    return sg->admin != SU_UNLOCKED || a->node_admin != SU_UNLOCKED || a->groups;
}

/* Whether a component of the model (of a unit not removed) is named name. */
static bool comp_taken(struct amf *a, const char *name) {
    for (size_t g = 0; g < a->n_sgs; g++)
        for (size_t u = 0; !a->sgs[g].removed && u < a->sgs[g].n_sus; u++)
            for (size_t i = 0; !a->sgs[g].sus[u].removed && i < a->sgs[g].sus[u].n_comps; i++)
                if (!a->sgs[g].sus[u].comps[i].removed && streq(a->sgs[g].sus[u].comps[i].name, name))
                    return true;
    return false;
}

int amf_su_add_check(struct amf *a, const char *sg_name, const struct config_su *cfg, size_t n_before) {
    int r;
    struct sg *sg = room_in(a, sg_name, true, n_before, &r);
    if (!sg)
        return r;
    if (amf_find_su(a, cfg->name))
        return -HALO_EEXIST;
    for (size_t i = 0; i < cfg->n_components; i++)
        if (comp_taken(a, cfg->components[i].name))
            return -HALO_EEXIST;
    return group_held(a, sg) ? -EACCES : sg_changing(sg) ? -EBUSY : 0;
}

int amf_su_add(struct amf *a, const char *sg_name, const struct config_su *cfg) {
    int r;
    struct sg *sg = cfg ? room_in(a, sg_name, true, 0, &r) : NULL;
    if (!sg)
        return cfg ? r : -HALO_EUNKNOWN;
    struct su *su = &sg->sus[sg->n_sus];
    su->cap_comps = cfg->n_components + AMF_COMPS_ADDED_MAX;
    if (!(su->comps = calloc(su->cap_comps, sizeof(struct comp))))
        return -ENOMEM;
    amf_su_init(sg, su, cfg);
    sg->n_sus++;
    /* Each SI has a slot for it (allocated for cap_sus units, amf_sg_alloc()). */
    for (size_t i = 0; i < sg->n_sis; i++)
        sg->sis[i].n_asg = sg->n_sus;
    log_info("Service unit '%s' added to service group '%s' (%zu components)", su->name, sg->name, su->n_comps);
    unit_start(su);
    amf_sg_evaluate(sg);
    return 0;
}

int amf_member_remove_check(struct amf *a, bool unit, const char *name) {
    struct su *su = unit ? amf_find_su(a, name) : NULL;
    struct si *si = unit ? NULL : amf_find_si(a, name);
    struct sg *sg = su ? su->sg : si ? si->sg : NULL;
    return !sg ? -HALO_EUNKNOWN : unit && group_held(a, sg) ? -EACCES : sg_changing(sg) ? -EBUSY : 0;
}

/* A unit being removed: locked (its SIs leave it), then lock-instantiated (its processes stopped). */
struct unit_removal {
    struct amf_waiter w; /* first: the AMF hands it back */
    struct su *su;
    bool stopping; /* the lock is done: its lock-instantiation is under way */
};

static void unit_removal_done(struct amf_waiter *w, int error) {
    struct unit_removal *rm = (struct unit_removal *)w;
    struct su *su = rm->su;
    if (error == -HALO_EEXIST) /* already so */
        error = 0;
    if (error >= 0 && !rm->stopping) {
        rm->stopping = true;
        int r = amf_su_op_lock_instantiation(su, &rm->w);
        if (r == 1)
            return; /* here again once its processes are stopped */
        error = r == -HALO_EEXIST ? 0 : r;
    }
    free(rm);
    if (error < 0) {
        log_error("Service unit '%s' removed from the description, but %s: %s; it stays until halod restarts", su->name,
                  su->admin == SU_LOCKED ? "its processes were not stopped" : "not locked", halo_strerror(error));
        return;
    }
    su->removed = true;
    /* What the store keeps of its state goes back to unlocked: the unit added again, by a reload
     * or at a restart, starts as a new one. */
    su->admin = SU_UNLOCKED;
    su->held_by = 0;
    amf_notify_su(su, AMF_SU_ADMIN);
    log_notice("Service unit '%s' removed: its SIs were taken from it and its processes stopped", su->name);
    amf_sg_evaluate(su->sg);
}

void amf_unit_left(struct su *su) {
    for (size_t i = 0; i < su->sg->n_sis; i++)
        if (amf_si_find_su(&su->sg->sis[i], su))
            return;
    su->leaving = false;
    su->removed = true;
    log_notice("Service unit '%s' removed: it holds nothing any more (its node stops it when it reloads)", su->name);
    amf_notify_su(su, AMF_SU_ADMIN);
}

/* Another node's unit, on several nodes: its node locks and stops it when it reloads.  Here it counts
 * as locked from now on: the deciding node takes its roles as from a unit locked (its ACTIVEs QUIESCED
 * and handed over, then removed), and every node forgets it once it holds nothing.  A unit of a node
 * that is gone keeps the state it has (its roles go as with any unit gone with its node). */
static int unit_leave(struct su *su) {
    log_info("Service unit '%s' is no longer in the description: taking its roles (its node stops it when it "
             "reloads)",
             su->name);
    su->leaving = true;
    if (su->remote.known) {
        su->remote.in_service = false;
        su->remote.admin = SU_LOCKED;
    }
    amf_sg_evaluate(su->sg);
    if (su->leaving)
        amf_unit_left(su);
    return 0;
}

int amf_su_remove(struct amf *a, const char *name) {
    struct su *su = amf_find_su(a, name);
    if (su && !su->local && a->placement->distributed)
        return unit_leave(su);
    struct unit_removal *rm = su ? calloc(1, sizeof(*rm)) : NULL;
    if (!rm)
        return su ? -ENOMEM : -HALO_EUNKNOWN;
    *rm = (struct unit_removal){.w.done = unit_removal_done, .su = su};
    log_info("Service unit '%s' is no longer in the description: locking it, then stopping its processes", name);
    int r = amf_su_op_lock(su, false, &rm->w);
    if (r != 1)
        unit_removal_done(&rm->w, r);
    return 0;
}
