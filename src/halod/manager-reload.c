/* SPDX-License-Identifier: MIT */
/*
 * Reloading the description (SIGHUP, haloctl reload): the file is loaded and verified as at
 * start, compared with the running one key by key (config_diff()), and applied only when every
 * change can be applied live; else the whole reload is refused and the running description
 * stays.  Live today: a CSI's attributes (a CSI set to its holders, amf_csi_reload()), a CSI
 * added to or removed from an SI (amf_si_csis_reload()), a group added or removed (on several nodes
 * too: cluster_sync_reload_begin()), an SI added to or removed from a running group (amf_si_add(),
 * amf_si_remove(); on several nodes too: the coordinator reads an SI added's keys when it reloads,
 * and takes an SI removed from every node's units), a unit added to a running group (amf_su_add();
 * on several nodes too, its state read by the coordinator as a group's) or removed from one
 * (amf_su_remove(); on several nodes too: its node locks and stops it, the others count it as locked
 * until it holds nothing), a component's settings (a restart in place, or none for those read when
 * it fails or takes a CSI; on several nodes too: its unit stays in service meanwhile; also through
 * defaults or a template, as the descriptions resolve them: template_refusal()), but its type,
 * proxy, OCF agent, services and devices, or csi-types that move a CSI (manager-reload-settings.c
 * says what to do instead), a group's settings but its redundancy model and cdb-roles (its model
 * evaluates it again, manager_apply_group_settings()), an SA-aware or non-SA-aware component added
 * (with the CSIs the same reload adds: their CSI sets come after the adds) or a component removed
 * (with the CSIs it takes: their CSI removes come before its stop, comp_remove_refusal()), these two
 * on several nodes too (only the unit's node runs it, and the unit stays in service meanwhile:
 * comp_add_refusal()).
 * The nodes, pools and cdb sections are manager-reload-cluster.c's: a node added or removed (its
 * units and halod gone), a node's su-failover and failfast, a pool's tolerate and participants while
 * it recovers nothing, the CDB replication's mode and intervals; the new description then runs (the
 * AMF's and the recovery model's nodes are its).  An OCF component added runs its agent's
 * meta-data and probe while its unit stays in service without it; a proxied one is instantiated through its proxy,
 * which must be registered; one removed gets its CSI removes, then its proxy's terminate; a proxy goes only once
 * nothing uses it.  A cdb-roles group is added (its roles drive the CDB from then on: cdb_roles_add_refusal(),
 * apply_cdb_roles()), and its SIs, units and components change as any group's, the CDB roles following the assignments;
 * a unit that holds the primary with no STANDBY to hand it to is not removed (member_refusal()).
 */
#define LOG_AREA LOG_AREA_MAIN
#include <errno.h>
#include <jansson.h>
#include <nettle/sha2.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "log.h"
#include "macro.h"
#include "manager-internal.h"

#define SWAP(a, b)              \
    do {                        \
        __typeof__(a) _t = (a); \
        (a) = (b);              \
        (b) = _t;               \
    } while (0)

DEFINE_TRIVIAL_CLEANUP_FUNC(struct config *, config_free);
DEFINE_TRIVIAL_CLEANUP_FUNC(struct config_diff *, config_diff_free);

void manager_digest(const struct config *c, char ret[static MANAGER_DIGEST_MAX]) {
    struct sha256_ctx ctx;
    uint8_t d[SHA256_DIGEST_SIZE];
    sha256_init(&ctx);
    sha256_update(&ctx, c->text_size, (const uint8_t *)(c->text ?: ""));
    sha256_digest(&ctx, sizeof(d), d);
    for (size_t i = 0; i < sizeof(d); i++)
        snprintf(ret + 2 * i, 3, "%02x", d[i]);
}

void manager_publish_description(struct manager *m) {
    if (!m->cluster)
        return;
    json_t *names = json_array();
    for (size_t g = 0; names && g < m->config->n_sgs; g++)
        json_array_append_new(names, json_string(m->config->sgs[g].name));
    _cleanup_free_ char *groups = names ? json_dumps(names, JSON_COMPACT) : NULL;
    json_decref(names);
    cluster_set_description(m->cluster, m->digest, groups);
}

static struct config_csi *find_csi(struct config *c, const char *sg, const char *si, const char *csi) {
    for (size_t g = 0; g < c->n_sgs; g++)
        for (size_t i = 0; streq(c->sgs[g].name, sg) && i < c->sgs[g].n_sis; i++)
            for (size_t k = 0; streq(c->sgs[g].sis[i].name, si) && k < c->sgs[g].sis[i].n_csis; k++)
                if (streq(c->sgs[g].sis[i].csis[k].name, csi))
                    return &c->sgs[g].sis[i].csis[k];
    return NULL;
}

/* Appends one problem to errors ("FILE:LINE:COLUMN: message"): the reload is refused. */
static int problem(json_t *errors, const char *path, const struct config_change *ch, const char *why) {
    _cleanup_free_ char *s = NULL;
    int r = ch->kind == CONFIG_CHANGE_REMOVED /* its line is the running description's, not the file's */
                ? asprintf(&s, "%s: '%s' removed (line %u of the running description): %s", path, ch->key, ch->pos.line,
                           why)
                : asprintf(&s, "%s:%u:%u: '%s' %s: %s", path, ch->pos.line, ch->pos.column, ch->key,
                           config_change_kind_to_string(ch->kind), why);
    if (r < 0)
        return -ENOMEM;
    return json_array_append_new(errors, json_string(s)) < 0 ? -ENOMEM : 0;
}

static const struct config_sg *find_sg(const struct config *c, const char *name) {
    for (size_t g = 0; g < c->n_sgs; g++)
        if (streq(c->sgs[g].name, name))
            return &c->sgs[g];
    return NULL;
}

static const struct config_si *find_si(const struct config *c, const char *sg, const char *si) {
    const struct config_sg *g = find_sg(c, sg);
    for (size_t i = 0; g && i < g->n_sis; i++)
        if (streq(g->sis[i].name, si))
            return &g->sis[i];
    return NULL;
}

/* Why the cdb-roles group added cannot be added now, or NULL.  The CDB roles follow it from then on, as at
 * start (apply_cdb_roles()): only the ACTIVE unit's node is the primary.  They replace no role set through the
 * HA control: a node whose CDB has one refuses, and one whose CDB has none is no primary before it reloads. */
static const char *cdb_roles_add_refusal(struct manager *m) {
    if (m->roles)
        return "a cdb-roles group ran earlier in this halod's life (removed since): restart halod to apply it";
    if (m->ha && ha_state(m->ha) != HA_STATE_NONE)
        return "this node's CDB has a role set through the HA control ('haloctl ha status'), which the group's roles "
               "would replace: make it NONE on every node first ('haloctl ha benone'), then reload";
    return NULL;
}

/* Why a change cannot be applied now, or NULL. */
static const char *refusal(struct manager *m, const struct config *new, const struct config_change *ch) {
    if (ch->group_setting || ch->unit_node)
        return manager_settings_refusal(find_sg(m->config, ch->sg), find_sg(new, ch->sg), ch);
    if (ch->service_group && ch->kind == CONFIG_CHANGE_REMOVED) {
        /* Its roles would be left to nobody: every node's CDB NONE, refusing writes, until a restart. */
        const struct config_sg *old = find_sg(m->config, ch->sg);
        return old && old->cdb_roles ? "a cdb-roles group is not removed live: the CDB roles it drives would be "
                                       "left to nobody (every node NONE, refusing writes); restart halod to apply it"
                                     : NULL;
    }
    if (ch->service_group && ch->kind == CONFIG_CHANGE_ADDED) {
        const struct config_sg *sg = find_sg(new, ch->sg);
        if (sg && sg->cdb_roles && sg->cdb_subtree)
            return "a cdb-roles group with a cdb-subtree is added by a restart of halod on every node (its "
                   "database is opened at start)";
        return sg && sg->cdb_roles ? cdb_roles_add_refusal(m) : NULL;
    }
    if (ch->whole_csi) {
        const struct config_si *si = find_si(new, ch->sg, ch->si);
        int r = si ? amf_si_csis_check(m->amf, ch->si, si, find_sg(new, ch->sg)) : -HALO_EUNKNOWN;
        return r == -EBUSY ? "its service instance is changing its assignments; reload again later"
               : r == -EOPNOTSUPP
                   ? "its component is not SA-aware: cannot be applied live unless the same reload adds or removes "
                     "that component (restart halod to apply it)"
               : r < 0 ? "its service instance is not found"
                       : NULL;
    }
    if (!ch->csi_attributes)
        return "cannot be applied live (restart halod to apply it)";
    if (!find_csi(m->config, ch->sg, ch->si, ch->csi) || !find_csi((struct config *)new, ch->sg, ch->si, ch->csi))
        return "its CSI is new or gone: cannot be applied live";
    if (amf_csi_reload_check(m->amf, ch->si) == -EBUSY)
        return "its service instance is changing its assignments; reload again later";
    return NULL;
}

static const struct config_su *find_su(const struct config *c, const char *sg, const char *su) {
    const struct config_sg *g = find_sg(c, sg);
    size_t u = 0;
    while (g && u < g->n_sus && !streq(g->sus[u].name, su))
        u++;
    return g && u < g->n_sus ? &g->sus[u] : NULL;
}

/* Whether ch is an SI (si) or a unit (!si) added to or removed from a running group. */
static bool member(const struct config_change *ch, bool si) {
    return si ? ch->whole_si : ch->whole_su;
}

/* Why the SI or unit added to or removed from a running group by d's change at cannot be applied
 * now, or NULL.  On several nodes too: a unit or SI added, the coordinator reads its keys when it
 * reloads (cluster_sync_reload_end()); a unit removed, its node locks and stops it, and every other
 * node counts it as locked until it holds nothing (amf_su_remove()); an SI removed, the coordinator
 * takes it from every node's units once it has reloaded (amf_si_remove()). */
static const char *member_refusal(struct manager *m, const struct config *new, const struct config_diff *d, size_t at) {
    const struct config_change *ch = &d->changes[at];
    bool removed = ch->kind == CONFIG_CHANGE_REMOVED, si = ch->whole_si;
    const struct config_sg *sg = find_sg(removed ? m->config : new, ch->sg);
    /* A cdb-roles group's roles follow its assignments: a unit removed hands its ACTIVE, and so the CDB
     * primary, over as a lock of it does, but not to nobody. */
    if (sg && sg->cdb_roles && removed && !si && amf_su_sole_active(m->amf, ch->su))
        return "it holds the ACTIVE of its cdb-roles group, so its node is the CDB primary, and no other unit holds "
               "the STANDBY to take it over: the CDB would have no primary.  Bring the other unit in service (or "
               "'haloctl switchover'), then reload";
    size_t before = 0; /* SIs or units added to the same group by earlier changes */
    for (size_t j = 0; j < at; j++)
        before +=
            member(&d->changes[j], si) && d->changes[j].kind == CONFIG_CHANGE_ADDED && streq(d->changes[j].sg, ch->sg);
    const struct config_si *nsi = si ? find_si(new, ch->sg, ch->si) : NULL;
    const struct config_su *nsu = si ? NULL : find_su(new, ch->sg, ch->su);
    int r = removed ? amf_member_remove_check(m->amf, !si, si ? ch->si : ch->su)
            : nsi   ? amf_si_add_check(m->amf, ch->sg, nsi, before)
            : nsu   ? amf_su_add_check(m->amf, ch->sg, nsu, before)
                    : -HALO_EUNKNOWN;
    if (r == -ENOSPC)
        return si ? "more service instances added to its group since halod started than it has room for (restart "
                    "halod)"
                  : "more service units added to its group since halod started than it has room for (restart halod)";
    return r == -EACCES  ? "its service group or this node is locked, or an operation on several units is under way: "
                           "unlock it, then reload"
           : r == -EBUSY ? "its service group is changing its assignments; reload again later"
           : r == -HALO_EEXIST ? "its name or a CSI's or component's is still a running one's (one this reload "
                                 "removes, or one removed whose removal is under way): add it in a later reload"
           : r < 0             ? "its service group, service instance or service unit is not found"
                               : NULL;
}

/* Why a component setting changed (ch->component_setting) cannot be applied now, or NULL; the
 * reason may be written into buf. */
static const char *comp_refusal(struct manager *m, const struct config *new, const struct config_diff *d,
                                const struct config_change *ch, char *buf, size_t size) {
    const struct config_sg *sg = find_sg(new, ch->sg);
    const char *why = manager_comp_settings_refusal(find_sg(m->config, ch->sg), sg, d, buf, size);
    if (why)
        return why;
    bool members = false; /* the model would assign them while the components restart: one thing at a time */
    for (size_t j = 0; j < d->n_changes; j++)
        members = members || ((d->changes[j].whole_si || d->changes[j].whole_su) && streq(d->changes[j].sg, ch->sg));
    if (members)
        return "its group's SIs or units are added or removed by the same reload: change its components in a reload "
               "of their own";
    /* On several nodes too: the restart is this node's alone, and its units stay in service meanwhile (their
     * published state says so, cluster_sync__publish_sustate()), so the coordinator moves no role. */
    int r = sg && !sg->cdb_roles ? amf_comps_reload_check(m->amf, sg) : 0;
    return sg && sg->cdb_roles ? "the components of a cdb-roles group are not restarted by a reload (restart halod "
                                 "to apply it)"
           : r == -EBUSY       ? "a component it changes is starting or stopping, or its unit is changing its roles; "
                                 "reload again later"
           : r < 0             ? "its service group is not found"
                               : NULL;
}

/* Whether o changes the SIs, units or components' settings of ch's group (a template: any group's). */
static bool same_group_change(const struct config_change *o, const struct config_change *ch) {
    return o->template || ((o->whole_si || o->whole_su || o->component_setting) && streq(o->sg, ch->sg));
}

/* Why the component removed from a running unit by d's change at (ch->whole_comp) cannot be removed
 * now, or NULL.  Each CSI it takes must leave by the same reload (its CSI remove goes first).  On
 * several nodes too: only its unit's node runs it, and that unit stays in service without it in the
 * state its node publishes (amf_su_in_service() skips it), so the coordinator, which decides per unit,
 * moves no role; another node drops it from its view of the unit, which it runs nothing of. */
static const char *comp_remove_refusal(struct manager *m, const struct config *new, const struct config_diff *d,
                                       size_t at, char *buf, size_t size) {
    const struct config_change *ch = &d->changes[at];
    const struct config_sg *sg = find_sg(new, ch->sg);
    const struct config_su *su = find_su(new, ch->sg, ch->su);
    if (!sg || !su)
        return "its service unit is not found";
    for (size_t j = 0; j < d->n_changes; j++) {
        const struct config_change *o = &d->changes[j];
        if (same_group_change(o, ch) || (o->whole_comp && o->kind == CONFIG_CHANGE_ADDED && streq(o->su, ch->su)))
            return "its group's SIs, units or components' settings change in the same reload, or a component is "
                   "added to its unit: remove it in a reload of its own";
    }
    int r = amf_comp_remove_check(m->amf, sg, su, ch->comp);
    if (r == -ENOTEMPTY) {
        snprintf(buf, size,
                 "it is the proxy of component '%s', which would fail with it: remove that one first (a reload of its "
                 "own, once its removal is logged), then this one",
                 amf_comp_proxy_of(m->amf, ch->comp) ?: "?");
        return buf;
    }
    return r == -EXDEV         ? "it takes a CSI of its group's SIs that stays, or its going would move one to another "
                                 "component: its unit could no longer take its SIs (remove its CSIs in the same reload)"
           : r == -HALO_EEXIST ? "its removal is under way"
           : r == -EBUSY ? "it or its unit is starting, stopping, failing, restarting or changing its roles; reload "
                           "again later"
           : r < 0       ? "its service unit is not found"
                         : NULL;
}

/* Why the component added to a running unit by d's change at (ch->whole_comp) cannot be applied now, or NULL.
 * On several nodes too: only its unit's node starts it (amf_comp_add()), SA-aware as a restart in place,
 * so the unit stays in service in the state its node publishes until it registers; not SA-aware, it
 * runs only where its unit holds its CSI ACTIVE.  The coordinator decides per unit: it moves no role. */
static const char *comp_add_refusal(struct manager *m, const struct config *new, const struct config_diff *d, size_t at,
                                    char *buf, size_t size) {
    const struct config_change *ch = &d->changes[at];
    const struct config_sg *sg = find_sg(new, ch->sg);
    if (ch->kind == CONFIG_CHANGE_REMOVED)
        return comp_remove_refusal(m, new, d, at, buf, size);
    if (!sg)
        return "its service group is not found";
    size_t before = 0;
    bool other = false; /* the group's SIs, units or components' settings changed by the same reload */
    for (size_t j = 0; j < d->n_changes; j++) {
        const struct config_change *o = &d->changes[j];
        before += j < at && o->whole_comp && o->kind == CONFIG_CHANGE_ADDED && streq(o->su, ch->su);
        other = other || same_group_change(o, ch) ||
                (o->whole_comp && o->kind == CONFIG_CHANGE_REMOVED && streq(o->su, ch->su));
    }
    if (other)
        return "its group's SIs, units or components' settings change in the same reload, or a component of its unit "
               "is removed: add it in a reload of its own";
    int r = amf_comp_add_check(m->amf, find_su(new, ch->sg, ch->su), ch->comp, before);
    return r == -ENOSPC        ? "more components added to its unit since halod started than it has room for (restart "
                                 "halod)"
           : r == -ENOTCONN    ? "it is proxied, and its proxy is not registered (or is being removed): reload again "
                                 "once its proxy runs"
           : r == -HALO_EEXIST ? "a running component has its name: add it in a later reload"
           : r == -EXDEV       ? "it would take a CSI of its group's SIs from another component (restart halod to "
                                 "apply it)"
           : r == -EBUSY       ? "its unit is failing, restarting or adopting its processes; reload again later"
           : r < 0             ? "its service unit is not found"
                               : NULL;
}

/* Why the changes under defaults or the component templates (ch->template) cannot be applied now,
 * or NULL; told once, at the first of them.  Compared as the descriptions resolve every component
 * of a group both have: applied when only the settings a restart applies differ, as a change of
 * those is (comp_refusal(), apply_comps()), on several nodes too.  The reason may be written into buf. */
static const char *template_refusal(struct manager *m, const struct config *new, const struct config_diff *d,
                                    const struct config_change *ch, char *buf, size_t size) {
    if (ch != &d->changes[0])
        for (const struct config_change *o = d->changes; o < ch; o++)
            if (o->template)
                return NULL;
    for (size_t g = 0; g < m->config->n_sgs; g++) {
        const struct config_sg *og = &m->config->sgs[g], *ng = find_sg(new, og->name);
        if (!ng || !manager_comps_differ(og, ng))
            continue;
        char why_buf[512];
        const struct config_change same = {.component_setting = true, .sg = ng->name};
        const char *why = comp_refusal(m, new, d, &same, why_buf, sizeof(why_buf));
        for (size_t j = 0; !why && j < d->n_changes; j++)
            if (d->changes[j].whole_comp && streq(d->changes[j].sg, ng->name))
                why = "a component is added to or removed from a unit of a group it changes: change it in a reload "
                      "of its own";
        if (why) {
            snprintf(buf, size, "group '%s': %s", ng->name, why);
            return buf;
        }
    }
    return NULL;
}

/* Why the group or unit that ch removes cannot go while a component that it does not remove uses one
 * of its components as its proxy, or NULL (into buf): that component would fail with its proxy. */
static const char *proxy_refusal(struct manager *m, const struct config_change *ch, char *buf, size_t size) {
    bool gone = ch->kind == CONFIG_CHANGE_REMOVED && (ch->service_group || ch->whole_su);
    const char *user = gone ? amf_proxy_user_outside(m->amf, ch->sg, ch->whole_su ? ch->su : NULL) : NULL;
    if (!user)
        return NULL;
    snprintf(buf, size,
             "it holds the proxy of component '%s', which would fail with it: remove that component first (a reload "
             "of its own), then this",
             user);
    return buf;
}

/* What of d cannot be applied now, into errors. */
static int check(struct manager *m, const struct config *new, const struct config_diff *d, json_t *errors) {
    size_t added = 0;
    for (size_t i = 0; i < d->n_changes; i++) {
        const struct config_change *ch = &d->changes[i];
        bool adds = ch->service_group && ch->kind == CONFIG_CHANGE_ADDED;
        char buf[512];
        const char *cwhy = NULL;
        added += adds;
        const char *why = manager_reload_cluster_check(m, new, ch, &cwhy, buf, sizeof(buf)) ? cwhy
                          : adds && added > amf_sg_room(m->amf)
                              ? "more service groups added since halod started than it has room for (restart halod)"
                          : ch->whole_si || ch->whole_su ? member_refusal(m, new, d, i)
                          : ch->component_setting        ? comp_refusal(m, new, d, ch, buf, sizeof(buf))
                          : ch->whole_comp               ? comp_add_refusal(m, new, d, i, buf, sizeof(buf))
                          : ch->template                 ? template_refusal(m, new, d, ch, buf, sizeof(buf))
                                                         : refusal(m, new, ch);
        why = why ?: proxy_refusal(m, ch, buf, sizeof(buf));
        int r = why ? problem(errors, new->path, &d->changes[i], why) : 0;
        if (r < 0)
            return r;
    }
    if (d->truncated && json_array_append_new(errors, json_sprintf("%s: more changes than %d: not applied live",
                                                                   new->path, CONFIG_DIFF_MAX)) < 0)
        return -ENOMEM;
    return 0;
}

/* The new attributes of a CSI go into the description its SI was built from, then to its holders:
 * the count of CSI sets sent. */
static size_t apply_attributes(struct manager *m, const struct config *new, const struct config_change *ch) {
    const struct config_csi *run = NULL, *nc = find_csi((struct config *)new, ch->sg, ch->si, ch->csi);
    struct config_kv *kv = NULL;
    int r = amf_find_csi(m->amf, ch->csi, &run) && nc ? config_kv_dup(nc->attrs, nc->n_attrs, &kv) : -ENOENT;
    if (r >= 0) {
        /* The manager owns every description the AMF was built from (the running one, retired ones). */
        struct config_csi *w = (struct config_csi *)run;
        config_kv_free(w->attrs, w->n_attrs);
        w->attrs = kv;
        w->n_attrs = nc->n_attrs;
        r = amf_csi_reload(m->amf, ch->si, ch->csi);
    }
    if (r < 0)
        log_warning_errno(r, "CSI '%s' of '%s': cannot send its new attributes: %m", ch->csi, ch->si);
    return r > 0 ? (size_t)r : 0;
}

/* The SIs that gained or lost a CSI take their CSIs from the new running description (m->config):
 * the count of CSI sets and removes sent. */
static size_t apply_csis(struct manager *m, const struct config_diff *d) {
    size_t sent = 0;
    for (size_t i = 0; i < d->n_changes; i++) {
        const struct config_change *ch = &d->changes[i];
        bool seen = false; /* several CSIs of one SI: once */
        for (size_t j = 0; ch->whole_csi && j < i; j++)
            seen = seen || (d->changes[j].whole_csi && streq(d->changes[j].si, ch->si));
        if (!ch->whole_csi || seen)
            continue;
        int r = amf_si_csis_reload(m->amf, ch->si, find_si(m->config, ch->sg, ch->si));
        if (r < 0)
            log_warning_errno(r, "Service instance '%s': cannot send its CSIs added or removed: %m", ch->si);
        sent += r > 0 ? (size_t)r : 0;
    }
    return sent;
}

/* The SIs and then the units removed from running groups leave them, then the units and then the
 * SIs added join theirs (their descriptions in the new running one, m->config). */
static void apply_members(struct manager *m, const struct config_diff *d) {
    static const struct { bool add, si; } order[] = {{false, true}, {false, false}, {true, false}, {true, true}};
    for (size_t o = 0; o < ELEMENTSOF(order); o++)
        for (size_t i = 0; i < d->n_changes; i++) {
            const struct config_change *ch = &d->changes[i];
            bool add = order[o].add, si = order[o].si;
            if (!member(ch, si) || (ch->kind == CONFIG_CHANGE_ADDED) != add)
                continue;
            int r = si && add ? amf_si_add(m->amf, ch->sg, find_si(m->config, ch->sg, ch->si))
                    : si      ? amf_si_remove(m->amf, ch->si)
                    : add     ? amf_su_add(m->amf, ch->sg, find_su(m->config, ch->sg, ch->su))
                              : amf_su_remove(m->amf, ch->su);
            if (r < 0)
                log_error_errno(r, "Service %s '%s' not %s: %m", si ? "instance" : "unit", si ? ch->si : ch->su,
                                add ? "added" : "removed");
        }
}

static size_t apply_comps_of(struct manager *m, const char *sg) {
    int r = amf_comps_reload(m->amf, find_sg(m->config, sg));
    if (r < 0)
        log_warning_errno(r, "Service group '%s': cannot apply its components' new settings: %m", sg);
    return r > 0 ? (size_t)r : 0;
}

/* The components whose settings changed take them, once per group (a template's change: each group
 * of both descriptions, old): the count restarted in place. */
static size_t apply_comps(struct manager *m, const struct config *old, const struct config_diff *d) {
    size_t restarted = 0;
    bool templates = false;
    for (size_t i = 0; i < d->n_changes; i++)
        templates = templates || d->changes[i].template;
    for (size_t g = 0; templates && g < old->n_sgs; g++)
        if (find_sg(m->config, old->sgs[g].name))
            restarted += apply_comps_of(m, old->sgs[g].name);
    for (size_t i = 0; !templates && i < d->n_changes; i++) {
        const struct config_change *ch = &d->changes[i];
        bool seen = false;
        for (size_t j = 0; ch->component_setting && j < i; j++)
            seen = seen || (d->changes[j].component_setting && streq(d->changes[j].sg, ch->sg));
        if (ch->component_setting && !seen)
            restarted += apply_comps_of(m, ch->sg);
    }
    return restarted;
}

/* The components added to running units join them: the count added. */
static size_t apply_comp_adds(struct manager *m, const struct config_diff *d) {
    size_t n = 0;
    for (size_t i = 0; i < d->n_changes; i++) {
        const struct config_change *ch = &d->changes[i];
        if (!ch->whole_comp || ch->kind != CONFIG_CHANGE_ADDED)
            continue;
        const struct config_su *su = find_su(m->config, ch->sg, ch->su);
        int r = su ? amf_comp_add(m->amf, su, ch->comp) : -HALO_EUNKNOWN;
        if (r < 0)
            log_error_errno(r, "Component '%s' not added to '%s': %m", ch->comp, ch->su);
        n += r >= 0;
    }
    return n;
}

/* The components removed from running units leave them, once the CSI removes apply_csis() sent them
 * are answered: the count whose removal is under way. */
static size_t apply_comp_removes(struct manager *m, const struct config_diff *d) {
    size_t n = 0;
    for (size_t i = 0; i < d->n_changes; i++) {
        const struct config_change *ch = &d->changes[i];
        if (!ch->whole_comp || ch->kind != CONFIG_CHANGE_REMOVED)
            continue;
        const struct config_su *su = find_su(m->config, ch->sg, ch->su);
        int r = su ? amf_comp_remove(m->amf, su, ch->comp) : -HALO_EUNKNOWN;
        if (r < 0)
            log_error_errno(r, "Component '%s' not removed from '%s': %m", ch->comp, ch->su);
        n += r >= 0;
    }
    return n;
}

/* The cdb-roles group a reload added (cdb_roles_add_refusal()) drives the CDB roles from now on, before its
 * SIs are assigned: its units' components have only started. */
static void apply_cdb_roles(struct manager *m, const struct config_diff *d) {
    for (size_t i = 0; i < d->n_changes; i++) {
        const struct config_change *ch = &d->changes[i];
        const struct config_sg *sg = ch->service_group ? find_sg(m->config, ch->sg) : NULL;
        if (!sg || !sg->cdb_roles || sg->cdb_subtree || ch->kind != CONFIG_CHANGE_ADDED || m->roles)
            continue;
        int r = amf_roles_new(m->loop, m->amf, sg->name, m->ha, m->config->cdb.token, m->opt.etcd ? m->store : NULL,
                              m->prefix, &m->roles);
        if (r < 0)
            log_error_errno(r, "Service group '%s': the CDB roles cannot follow it: %m", sg->name);
    }
}

/* The new description runs from now on (a group was added): the old one is kept, as the AMF's
 * existing objects still point into it. */
static int retire(struct manager *m, struct config **new) {
    struct config **r = realloc(m->retired, (m->n_retired + 1) * sizeof(*r));
    if (!r)
        return -ENOMEM;
    m->retired = r;
    m->retired[m->n_retired++] = m->config;
    m->config = TAKE_PTR(*new);
    return 0;
}

/* Applies d (checked): the new attributes go to their holders, new groups start. */
static int apply(struct manager *m, struct config **new, const struct config_diff *d, char **ret_summary) {
    _cleanup_free_ char *summary = NULL;
    size_t n_csis = 0, n_sets = 0, n_sgs = 0, n_removed = 0, n_whole = 0, n_calls = 0, n_si_added = 0, n_si_removed = 0,
           n_su_added = 0, n_su_removed = 0, n_settings = 0, n_restarted = 0, n_comps = 0, n_comps_added = 0,
           n_comps_removed = 0, n_cluster = manager_reload_cluster_changes(d), n_groups = 0;
    for (size_t i = 0; i < d->n_changes; i++) {
        const struct config_change *ch = &d->changes[i];
        bool seen = false; /* several attributes of one CSI: one CSI set */
        for (size_t j = 0; j < i; j++)
            seen = seen || (ch->csi_attributes && d->changes[j].csi_attributes && streq(d->changes[j].si, ch->si) &&
                            streq(d->changes[j].csi, ch->csi));
        n_sgs += ch->service_group && ch->kind == CONFIG_CHANGE_ADDED;
        n_removed += ch->service_group && ch->kind == CONFIG_CHANGE_REMOVED;
        n_whole += ch->whole_csi;
        n_si_added += ch->whole_si && ch->kind == CONFIG_CHANGE_ADDED;
        n_si_removed += ch->whole_si && ch->kind == CONFIG_CHANGE_REMOVED;
        n_su_added += ch->whole_su && ch->kind == CONFIG_CHANGE_ADDED;
        n_su_removed += ch->whole_su && ch->kind == CONFIG_CHANGE_REMOVED;
        n_settings += ch->component_setting || ch->template;
        n_comps += ch->whole_comp;
        n_groups += ch->group_setting;
        if (seen || !ch->csi_attributes)
            continue;
        n_sets += apply_attributes(m, *new, ch);
        n_csis++;
    }
    if (n_sgs == 0 && n_removed == 0 && n_whole == 0 &&
        n_si_added + n_si_removed + n_su_added + n_su_removed + n_settings + n_comps + n_cluster + n_groups == 0) {
        SWAP(m->config->text, (*new)->text);
        SWAP(m->config->text_size, (*new)->text_size);
    } else {
        int r = retire(m, new);
        if (r < 0)
            return r;
        /* The groups removed first: on several nodes, the coordinator takes their SIs from every unit
         * before a group added holds its decisions (cluster-sync.h). */
        for (size_t i = 0; i < d->n_changes; i++)
            if (d->changes[i].service_group && d->changes[i].kind == CONFIG_CHANGE_REMOVED &&
                (r = amf_sg_remove(m->amf, d->changes[i].sg)) < 0)
                log_error_errno(r, "Service group '%s' not removed: %m", d->changes[i].sg);
        /* On several nodes, the coordinator decides for the groups and units added once it has read their
         * keys (cluster-sync.h). */
        bool held = m->sync && (n_sgs || n_su_added || n_si_added);
        if (held)
            cluster_sync_reload_begin(m->sync);
        for (size_t i = 0; i < d->n_changes; i++)
            if (d->changes[i].service_group && d->changes[i].kind == CONFIG_CHANGE_ADDED &&
                (r = amf_sg_add(m->amf, m->config, find_sg(m->config, d->changes[i].sg))) < 0)
                log_error_errno(r, "Service group '%s' not added: %m", d->changes[i].sg);
        /* Restarts first (of other groups than those whose SIs or units change, comp_refusal()), after
         * the groups' new settings (which the model reads as the units restart) and the CDB roles of a
         * cdb-roles group added. */
        n_groups = manager_apply_group_settings(m, d);
        apply_cdb_roles(m, d);
        n_restarted = apply_comps(m, m->retired[m->n_retired - 1], d);
        apply_members(m, d);
        if (held)
            cluster_sync_reload_end(m->sync);
        n_comps_added = apply_comp_adds(m, d);
        n_calls = apply_csis(m, d);
        n_comps_removed = apply_comp_removes(m, d);
    }
    /* "1 service group added, 1 service group removed, attributes of 2 CSIs changed, 3 CSI sets sent" */
    char text[512] = "";
    size_t n = 0;
    const struct {
        size_t n;
        const char *what, *done;
    } counts[] = {
        {n_sgs, "service group", "added"},         {n_removed, "service group", "removed"},
        {n_su_added, "service unit", "added"},     {n_su_removed, "service unit", "removed"},
        {n_si_added, "service instance", "added"}, {n_si_removed, "service instance", "removed"},
    };
    for (size_t k = 0; k < ELEMENTSOF(counts); k++)
        if (counts[k].n)
            n += (size_t)snprintf(text + n, sizeof(text) - n, ", %zu %s%s %s", counts[k].n, counts[k].what,
                                  counts[k].n == 1 ? "" : "s", counts[k].done);
    if (n_cluster)
        n += manager_reload_cluster_apply(m, m->retired[m->n_retired - 1], d, text + n, sizeof(text) - n);
    if (n_comps_added)
        n += (size_t)snprintf(text + n, sizeof(text) - n, ", %zu component%s added", n_comps_added,
                              n_comps_added == 1 ? "" : "s");
    if (n_comps_removed)
        n += (size_t)snprintf(text + n, sizeof(text) - n, ", %zu component%s removed", n_comps_removed,
                              n_comps_removed == 1 ? "" : "s");
    if (n_groups)
        n += (size_t)snprintf(text + n, sizeof(text) - n, ", settings of %zu service group%s changed", n_groups,
                              n_groups == 1 ? "" : "s");
    if (n_settings)
        n += (size_t)snprintf(text + n, sizeof(text) - n, ", components' settings changed (%zu restarted in place)",
                              n_restarted);
    if (n_csis)
        n += (size_t)snprintf(text + n, sizeof(text) - n, ", attributes of %zu CSI%s changed, %zu CSI set%s sent",
                              n_csis, n_csis == 1 ? "" : "s", n_sets, n_sets == 1 ? "" : "s");
    if (n_whole)
        n += (size_t)snprintf(text + n, sizeof(text) - n,
                              ", %zu CSI%s added or removed, %zu CSI set%s or remove%s sent", n_whole,
                              n_whole == 1 ? "" : "s", n_calls, n_calls == 1 ? "" : "s", n_calls == 1 ? "" : "s");
    summary = strdup(n ? text + 2 : "no change");
    if (!summary)
        return -ENOMEM;
    *ret_summary = TAKE_PTR(summary);
    return 0;
}

int manager_reload(struct manager *m, const char *who, char **ret_json) {
    _cleanup_(config_freep) struct config *new = NULL;
    _cleanup_(config_diff_freep) struct config_diff *d = NULL;
    _cleanup_free_ char *text = NULL, *summary = NULL;
    json_t *errors = json_array();
    int r;

    if (!errors)
        return -ENOMEM;
    log_info("Reloading '%s' (asked by %s)", m->opt.config_path, who);
    /* Whatever the reload's outcome: the logrotate that moved them sends SIGHUP (docs/logging.md). */
    if (m->logsvc)
        logsvc_reopen(m->logsvc);
    if (amf_stopping(m->amf))
        json_array_append_new(errors, json_string("halod is stopping"));
    else if ((r = config_load(m->opt.config_path, &new, &text)) < 0) {
        if (text && *text)
            for (char *line = strtok(text, "\n"); line; line = strtok(NULL, "\n"))
                json_array_append_new(errors, json_string(line));
        else
            json_array_append_new(errors, json_sprintf("%s: %s", m->opt.config_path, halo_strerror(r)));
    } else if ((r = config_diff(m->config, new, &d)) < 0)
        json_array_append_new(errors, json_sprintf("%s: cannot compare it with the running one: %s", m->opt.config_path,
                                                   halo_strerror(r)));
    else if ((r = check(m, new, d, errors)) < 0) {
        json_decref(errors);
        return r;
    }
    json_t *reply;
    if (json_array_size(errors) > 0) {
        size_t i;
        json_t *e;
        json_array_foreach(errors, i, e) log_error("%s", json_string_value(e));
        log_error("Reload refused: %zu problem%s; the running description stays", json_array_size(errors),
                  json_array_size(errors) == 1 ? "" : "s");
        reply = json_pack("{s:b, s:o}", "applied", false, "errors", errors);
        r = -HALO_EBADSTATE;
    } else {
        json_decref(errors);
        r = apply(m, &new, d, &summary);
        if (r < 0)
            return r;
        manager_digest(m->config, m->digest);
        manager_publish_description(m);
        log_notice("Reloaded '%s': %s (description %.12s)", m->opt.config_path, summary, m->digest);
        reply = json_pack("{s:b, s:s, s:s}", "applied", true, "summary", summary, "digest", m->digest);
    }
    if (ret_json)
        *ret_json = reply ? json_dumps(reply, JSON_COMPACT) : NULL;
    json_decref(reply);
    if (ret_json && !*ret_json)
        return -ENOMEM;
    return r;
}
