/* SPDX-License-Identifier: MIT */
/*
 * A reloaded description that changes components' settings (config_component_differ() says
 * which): each component of this node whose settings differ takes its new description.  When a
 * restart applies them (command, health-check, monitor, user, ...), it restarts in place, as
 * `haloctl restart` of it does: its unit keeps its roles, and the new process gets its CSIs again
 * with the same HA states.  A non-SA-aware or OCF component runs only while its unit is ACTIVE: it
 * restarts then, else the new settings apply when it next starts.  Its restart policy, recovery
 * and csi-types are read when it fails or takes a CSI: no restart.  Nothing else restarts.
 *
 * A component added to a running unit starts as a restart in place does (SA-aware: its CSIs once
 * it registers; proxied: through its proxy, registered already), or, not SA-aware, runs once its
 * unit holds its CSI ACTIVE (OCF: after its agent's meta-data and probe, which its unit does not
 * wait for to stay in service).  One removed is stopped once the CSI removes of the same reload are
 * answered, as a lock-instantiation stops it (proxied: its proxy's terminate), and is then gone;
 * its unit keeps its roles meanwhile.  A proxy goes only once no component uses it.
 */
#define LOG_AREA LOG_AREA_AMF
#include <errno.h>
#include <string.h>

#include "amf-internal.h"
#include "log.h"
#include "macro.h"

/* The description of c's in cg (its group's new one), or NULL (its unit or itself left it). */
static const struct config_component *new_cfg(const struct comp *c, const struct config_sg *cg) {
    for (size_t u = 0; u < cg->n_sus; u++)
        for (size_t i = 0; streq(cg->sus[u].name, c->su->name) && i < cg->sus[u].n_components; i++)
            if (streq(cg->sus[u].components[i].name, c->name))
                return &cg->sus[u].components[i];
    return NULL;
}

/* Whether c runs a process (or an OCF resource) now that a restart would replace. */
static bool runs(const struct comp *c) {
    return amf_comp_sa_aware(c) ? c->presence != PRESENCE_UNINSTANTIATED && c->presence != PRESENCE_RESTARTING &&
                                      c->presence != PRESENCE_FAILED
                                : amf_nsa_running(c) || c->presence == PRESENCE_INSTANTIATING;
}

/* Whether c, running, can restart in place now: registered (or running, non-SA-aware), its unit
 * holding its roles steadily. */
static bool restartable(const struct comp *c) {
    bool up = amf_comp_sa_aware(c) ? c->conn != NULL : amf_nsa_running(c);
    return c->presence == PRESENCE_INSTANTIATED && up && !c->restart_in_place && !amf_comp_restart_refused(c);
}

/* The running group named name, or NULL. */
static struct sg *running_sg(struct amf *a, const char *name) {
    for (size_t g = 0; g < a->n_sgs; g++)
        if (!a->sgs[g].removed && streq(a->sgs[g].name, name))
            return &a->sgs[g];
    return NULL;
}

/* fn(c, its new description, what differs) for each component of the running group cg->name's units
 * of this node whose settings cg changes: the sum of what fn returns, or the first error; -HALO_EUNKNOWN. */
static int each_changed(struct amf *a, const struct config_sg *cg,
                        int (*fn)(struct comp *c, const struct config_component *nc, unsigned differ)) {
    struct sg *sg = running_sg(a, cg->name);
    if (!sg)
        return -HALO_EUNKNOWN;
    int n = 0;
    for (size_t u = 0; u < sg->n_sus; u++) {
        struct su *su = &sg->sus[u];
        for (size_t i = 0; !su->removed && su->local && i < su->n_comps; i++) {
            const struct config_component *nc = new_cfg(&su->comps[i], cg);
            const struct config_component *was = su->comps[i].cfg_next ?: su->comps[i].cfg;
            unsigned differ = nc ? config_component_differ(was, nc) : 0;
            int r = differ ? fn(&su->comps[i], nc, differ) : 0;
            if (r < 0)
                return r;
            n += r;
        }
    }
    return n;
}

static int check_one(struct comp *c, const struct config_component *nc, unsigned differ) {
    return (differ & CONFIG_DIFFER_RESTART) && runs(c) && !restartable(c) ? -EBUSY : 0;
}

int amf_comps_reload_check(struct amf *a, const struct config_sg *cg) {
    return each_changed(a, cg, check_one);
}

/* c takes its new description nc, and restarts in place if it runs and a restart applies what differs:
 * 1 if it did.  Its restart policy, recovery and csi-types (no CSI moves: manager-reload-settings.c)
 * are read when it fails or takes a CSI: from now on. */
static int apply_one(struct comp *c, const struct config_component *nc, unsigned differ) {
    bool restart = (differ & CONFIG_DIFFER_RESTART) && runs(c) && restartable(c);
    /* The description the reload applies outlives the AMF.  A process restarting in place is
     * stopped as its old one says (its terminate command, an OCF agent's params: its resource). */
    c->cfg_next = nc;
    if (!restart)
        amf_comp_take_cfg(c);
    log_info("Component '%s': its settings changed, %s", c->name,
             restart                          ? "restarting it in place"
             : differ & CONFIG_DIFFER_RESTART ? "they apply when it next starts"
                                              : "they apply from now on, without a restart");
    if ((differ & CONFIG_DIFFER_RESTART) && runs(c) && !restart) {
        log_warning("Component '%s' cannot restart now: its new settings apply when it next starts", c->name);
        return 0;
    }
    if (restart)
        amf_comp_restart_in_place(c, NULL);
    return restart;
}

void amf_comp_take_cfg(struct comp *c) {
    if (!c->cfg_next)
        return;
    c->cfg = c->cfg_next;
    c->cfg_next = NULL;
    if (amf_comp_ocf(c) && c->ocf.ready)
        amf_ocf_timeouts(c); /* its timeouts and monitor given, or else its agent's */
}

/* The units of the running group cg->name take their new descriptions: which component takes
 * which CSI goes by them (amf_csi_comp()); a unit's components and node are the same in both. */
static void units_take(struct amf *a, const struct config_sg *cg) {
    for (size_t u = 0; u < cg->n_sus; u++) {
        struct su *su = amf_find_su(a, cg->sus[u].name);
        if (su && !su->removed && streq(su->sg->name, cg->name))
            su->cfg = &cg->sus[u];
    }
}

int amf_comps_reload(struct amf *a, const struct config_sg *cg) {
    int r = each_changed(a, cg, apply_one);
    if (r >= 0)
        units_take(a, cg);
    return r;
}

int amf_sg_settings_reload(struct amf *a, const struct config_sg *cg) {
    struct sg *sg = running_sg(a, cg->name);
    if (!sg)
        return -HALO_EUNKNOWN;
    /* Its model reads them from its description when it decides (its redundancy model, its
     * SIs' and units' descriptions are no group setting: they stay). */
    sg->cfg = cg;
    log_info("Service group '%s': its settings changed; its assignments are looked at again", sg->name);
    amf_sg_evaluate(sg);
    return 0;
}

/* The component of cfg (a unit's description) that takes csi, by name; NULL when none. */
static const char *taker(const struct config_su *cfg, const struct config_csi *csi) {
    size_t i = config_csi_component(cfg, csi);
    return i < cfg->n_components ? cfg->components[i].name : NULL;
}

int amf_comp_add_check(struct amf *a, const struct config_su *nsu, const char *name, size_t n_before) {
    struct su *su = amf_find_su(a, nsu->name);
    const struct config_component *nc = NULL;
    for (size_t i = 0; i < nsu->n_components; i++)
        if (streq(nsu->components[i].name, name))
            nc = &nsu->components[i];
    if (!su || !nc)
        return -HALO_EUNKNOWN;
    if (su->n_comps + n_before >= su->cap_comps)
        return -ENOSPC;
    if (amf_find_comp(a, name))
        return -HALO_EEXIST;
    /* A proxied one is instantiated through its proxy (of its unit's node) at once: registered. */
    struct comp *proxy = nc->type == CONFIG_COMP_PROXIED ? amf_find_comp(a, nc->proxy) : NULL;
    if (nc->type == CONFIG_COMP_PROXIED && su->local && (!amf_proxied_proxy_ready(proxy) || proxy->removing))
        return -ENOTCONN;
    /* Every CSI of the group's SIs stays with the component that takes it: the new one takes none. */
    struct sg *sg = su->sg;
    for (size_t i = 0; i < sg->n_sis; i++)
        for (size_t k = 0; !sg->sis[i].removed && k < sg->sis[i].cfg->n_csis; k++) {
            const struct config_csi *csi = &sg->sis[i].cfg->csis[k];
            const char *was = taker(su->cfg, csi), *now = taker(nsu, csi);
            if ((was == NULL) != (now == NULL) || (was && !streq(was, now)))
                return -EXDEV;
        }
    /* Its unit steady: not failing, restarting or adopting. */
    if (su->failing || su->adopting || amf_su_restarting(su) || uv_is_active((uv_handle_t *)&su->restart_timer))
        return -EBUSY;
    return 0;
}

int amf_comp_add(struct amf *a, const struct config_su *nsu, const char *name) {
    int r = amf_comp_add_check(a, nsu, name, 0);
    if (r < 0)
        return r;
    struct su *su = amf_find_su(a, nsu->name);
    struct comp *c = &su->comps[su->n_comps];
    for (size_t i = 0; i < nsu->n_components; i++)
        if (streq(nsu->components[i].name, name))
            amf_comp_init(su, c, &nsu->components[i]);
    su->n_comps++;
    su->cfg = nsu; /* which component takes which CSI: by name (amf_csi_comp()) */
    c->proxy = c->cfg->proxy ? amf_find_comp(a, c->cfg->proxy) : NULL;
    log_info("Component '%s' added to service unit '%s'", c->name, su->name);
    if (!a->ready || a->stopping || !su->local || su->admin == SU_LOCKED_INSTANTIATION || su->oper != SU_ENABLED)
        return 0; /* it starts with its unit's other components */
    if (!amf_comp_sa_aware(c)) {
        /* ready: it runs once its unit holds its CSI ACTIVE (the same reload's CSI set); an OCF agent's
         * meta-data and probe first, while its unit stays in service without it (amf_su_in_service()) */
        c->ocf.joining = amf_comp_ocf(c);
        amf_comp_instantiate(c);
        return 0;
    }
    /* Started as a restart in place is (a proxied one: through its proxy): its unit keeps its roles
     * until it registers, and its end before that is a failure of it (amf-ladder.c). */
    c->restart_in_place = true;
    c->restart_at_once = true;
    c->restart_spawned = true;
    amf_comp_instantiate(c);
    return 0;
}

/* The description of the SI named name in ncg, or NULL. */
static const struct config_si *new_si(const struct config_sg *ncg, const char *name) {
    for (size_t i = 0; i < ncg->n_sis; i++)
        if (streq(ncg->sis[i].name, name))
            return &ncg->sis[i];
    return NULL;
}

static const struct config_csi *new_csi(const struct config_si *nsi, const char *name) {
    for (size_t k = 0; nsi && k < nsi->n_csis; k++)
        if (streq(nsi->csis[k].name, name))
            return &nsi->csis[k];
    return NULL;
}

/* A component of the model whose proxy is c (its removal under way too), or NULL. */
static const struct comp *proxied_by(struct amf *a, const struct comp *c) {
    for (size_t g = 0; g < a->n_sgs; g++)
        for (size_t u = 0; u < a->sgs[g].n_sus; u++)
            for (size_t i = 0; i < a->sgs[g].sus[u].n_comps; i++)
                if (a->sgs[g].sus[u].comps[i].proxy == c && !a->sgs[g].sus[u].comps[i].removed)
                    return &a->sgs[g].sus[u].comps[i];
    return NULL;
}

const char *amf_comp_proxy_of(struct amf *a, const char *name) {
    const struct comp *c = amf_find_comp(a, name), *p = c ? proxied_by(a, c) : NULL;
    return p ? p->name : NULL;
}

const char *amf_proxy_user_outside(struct amf *a, const char *sg, const char *su) {
    for (size_t g = 0; g < a->n_sgs; g++)
        for (size_t u = 0; !a->sgs[g].removed && u < a->sgs[g].n_sus; u++)
            for (size_t i = 0; i < a->sgs[g].sus[u].n_comps; i++) {
                const struct comp *c = &a->sgs[g].sus[u].comps[i], *p = c->proxy;
                bool in = p && !c->removed && !p->su->sg->removed && streq(p->su->sg->name, sg) &&
                          (!su || streq(p->su->name, su));
                if (in && (!streq(c->su->sg->name, sg) || (su && !streq(c->su->name, su))))
                    return c->name;
            }
    return NULL;
}

/* Whether an assignment of su is changing (a CSI set or remove in flight, a role on its way). */
static bool su_changing(struct su *su) {
    struct sg *sg = su->sg;
    for (size_t i = 0; i < sg->n_sis; i++) {
        const struct assignment *as = amf_si_find_su(&sg->sis[i], su);
        if (as && (as->pending || as->removing || as->state != as->target))
            return true;
    }
    return false;
}

int amf_comp_remove_check(struct amf *a, const struct config_sg *ncg, const struct config_su *nsu, const char *name) {
    struct comp *c = amf_find_comp(a, name);
    struct su *su = c ? c->su : NULL;
    if (!c || !streq(su->name, nsu->name))
        return -HALO_EUNKNOWN;
    if (c->removing)
        return -HALO_EEXIST;
    if (proxied_by(a, c))
        return -ENOTEMPTY; /* it would fail with its proxy */
    /* Every CSI of the group's SIs that stays keeps its component: the one removed takes none of
     * them (those it takes leave with it, by the same reload's CSI removes). */
    struct sg *sg = su->sg;
    for (size_t i = 0; i < sg->n_sis; i++)
        for (size_t k = 0; !sg->sis[i].removed && k < sg->sis[i].cfg->n_csis; k++) {
            const struct config_csi *csi = &sg->sis[i].cfg->csis[k];
            const struct config_csi *ncsi = new_csi(new_si(ncg, sg->sis[i].name), csi->name);
            const char *was = taker(su->cfg, csi), *now = ncsi ? taker(nsu, ncsi) : NULL;
            if (ncsi && ((was == NULL) != (now == NULL) || (was && !streq(was, now))))
                return -EXDEV;
        }
    bool moving = c->presence == PRESENCE_INSTANTIATING || c->presence == PRESENCE_TERMINATING ||
                  c->presence == PRESENCE_RESTARTING || c->helper || c->ocf.prep || c->starting;
    if (su->failing || su->adopting || amf_su_restarting(su) || uv_is_active((uv_handle_t *)&su->restart_timer) ||
        su_changing(su) || moving)
        return -EBUSY;
    return 0;
}

int amf_comp_remove(struct amf *a, const struct config_su *nsu, const char *name) {
    struct comp *c = amf_find_comp(a, name);
    if (!c || !streq(c->su->name, nsu->name))
        return -HALO_EUNKNOWN;
    /* From now on no CSI is given to it (amf_csi_comp() goes by su->cfg), and its unit is in
     * service without it (amf_su_in_service()). */
    c->su->cfg = nsu;
    c->removing = true;
    log_info("Component '%s' is no longer in the description of service unit '%s': stopping it%s", c->name, c->su->name,
             amf_comp_sa_aware(c) ? " once its CSIs are removed" : "");
    amf_comp_removal_step(c);
    return 0;
}

/* Whether a CSI set or remove of c is in flight. */
static bool csi_in_flight(struct comp *c) {
    struct invocation *i;
    LIST_FOREACH (invs, i, &c->amf->invs)
        if (i->comp == c && (i->kind == INV_CSI_SET || i->kind == INV_CSI_REMOVE))
            return true;
    return false;
}

/* Whether c still holds something to stop: its process, a helper, an OCF resource, or (proxied) its
 * registration through its proxy or the instantiate asked of it. */
static bool holds(const struct comp *c) {
    return c->proc || c->helper || c->ocf.up || (amf_comp_proxied(c) && (c->conn || c->proxy_asked));
}

void amf_comp_removal_step(struct comp *c) {
    /* A failure of its unit stops it anyway: the unit's restart (or halod's stop) comes back here. */
    if (!c->removing || c->amf->stopping || c->su->failing || csi_in_flight(c))
        return;
    if (holds(c) && c->presence != PRESENCE_TERMINATING) {
        c->restart_in_place = false;
        amf_comp_terminate(c); /* a proxied one: its proxy's terminate callback */
    }
    if (holds(c))
        return; /* here again once it ended */
    c->removing = false;
    c->removed = true;
    c->conn = NULL; /* its link, closing after its process ended, is not a failure of anything */
    c->presence = PRESENCE_UNINSTANTIATED;
    c->restart_in_place = c->restart_at_once = c->restart_spawned = false;
    c->spawn_deferred = false; /* a spawn it waited for: never (its timer stops) */
    uv_timer_stop(&c->timer);
    amf_hc_stop_all(c);
    amf_monitor_cancel(c);
    log_notice("Component '%s' removed from service unit '%s': its process stopped", c->name, c->su->name);
    amf_notify_su(c->su, AMF_SU_STATE);
    amf_sg_evaluate(c->su->sg);
}
