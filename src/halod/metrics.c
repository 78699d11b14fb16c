/* SPDX-License-Identifier: MIT */
/*
 * The metrics an HA operator alerts on (docs/metrics.md): failovers by
 * reason and how long each took, where each SI is ACTIVE, unit restarts,
 * health-check failures, the CDB's role, the build and the coordinator.
 *
 * Failovers are seen as an observer of the AMF: for each SI, the unit last
 * confirmed ACTIVE; the moment that unit is lost (it fails, its node goes,
 * an operator moves or locks it); and the moment another unit is confirmed
 * ACTIVE.  The deciding node counts it, so that a sum over the nodes counts
 * each failover once.
 */
#include <errno.h>
#include <jansson.h>
#include <stdlib.h>

#include "macro.h"
#include "manager-internal.h"
#include "metrics.h"
#include "time-util.h"

enum reason { REASON_FAILURE, REASON_NODE, REASON_SWITCHOVER, REASON_ADMIN, _REASON_MAX };
static const char *const reason_names[_REASON_MAX] = {"failure", "node", "switchover", "admin"};

static const double buckets[] = {METRICS_FAILOVER_BUCKETS};

struct metrics_si {
    struct si *si;
    const struct su *active; /* the unit last seen confirmed ACTIVE, NULL: none yet */
    usec_t lost_at;          /* when active was seen lost, 0: it was not */
    enum reason reason;      /* why, as seen then */
    uint64_t failovers[_REASON_MAX];
};

/* One failover as this node saw it, for the status document's "failovers" (the live page). */
struct metrics_failover {
    const struct si *si;
    const struct su *from, *to;
    enum reason reason; /* known on the deciding node only */
    bool counted;       /* this node decided it, and counted it in halo_failovers_total */
    double seconds;
    usec_t at; /* wall clock, when the new ACTIVE was confirmed */
};

struct metrics {
    struct amf *amf;
    struct metrics_si *sis;
    size_t n_sis;
    struct metrics_failover recent[METRICS_RECENT_FAILOVERS]; /* a ring, the newest at recent[n_recent - 1] */
    uint64_t n_recent;                                        /* recorded in all; the ring keeps the last ones */
    uint64_t counts[ELEMENTSOF(buckets)];                     /* observations <= buckets[i] (not cumulative) */
    uint64_t n_observed;
    double sum;
};

static bool confirmed_active(const struct si *si, const struct su *su) {
    for (size_t i = 0; i < si->n_asg; i++)
        if (si->asg[i].su == su)
            return si->asg[i].confirmed && si->asg[i].state == HALO_HA_ACTIVE;
    return false;
}

/* Whether su still serves si as its ACTIVE; if not, *ret_reason says why it stopped. */
static bool still_active(const struct si *si, const struct su *su, enum reason *ret_reason) {
    const struct assignment *as = NULL;
    for (size_t i = 0; i < si->n_asg; i++)
        if (si->asg[i].su == su)
            as = &si->asg[i];
    bool failed = su->local ? su->failing || su->oper == SU_DISABLED : su->remote.failing;
    bool gone = !su->local && !su->remote.known;
    if (as && as->confirmed && as->state == HALO_HA_ACTIVE && as->target == HALO_HA_ACTIVE && !failed && !gone &&
        amf_su_keeps(su))
        return true;
    if (si->switchover)
        *ret_reason = REASON_SWITCHOVER;
    else if (gone)
        *ret_reason = REASON_NODE;
    else if (failed)
        *ret_reason = REASON_FAILURE;
    else if (amf_su_admin(su) != SU_UNLOCKED || amf_su_keeps(su))
        *ret_reason = REASON_ADMIN; /* locked, shut down, or a decision moved it (sg-adjust) */
    else
        *ret_reason = REASON_FAILURE; /* out of service otherwise */
    return false;
}

static void observe(struct metrics *mt, double seconds) {
    for (size_t i = 0; i < ELEMENTSOF(buckets); i++)
        if (seconds <= buckets[i]) {
            mt->counts[i]++;
            break;
        }
    mt->n_observed++;
    mt->sum += seconds;
}

static void look(struct metrics *mt, struct metrics_si *ms) {
    const struct si *si = ms->si;
    usec_t now = now_monotonic_usec();
    enum reason why;
    if (ms->active && ms->lost_at && still_active(si, ms->active, &why))
        ms->lost_at = 0; /* the same unit serves again (no other could take over): no failover */
    if (ms->active && !ms->lost_at && !still_active(si, ms->active, &why)) {
        ms->lost_at = now;
        ms->reason = why;
        /* Several ACTIVEs (N-way-active): another one serves on; that is no failover. */
        for (size_t i = 0; i < si->n_asg; i++)
            if (si->asg[i].su && si->asg[i].su != ms->active && confirmed_active(si, si->asg[i].su)) {
                ms->active = si->asg[i].su;
                ms->lost_at = 0;
                break;
            }
    }
    if (ms->active && !ms->lost_at)
        return;
    const struct su *next = NULL; /* the best-ranked unit confirmed ACTIVE now */
    for (size_t i = 0; i < si->n_asg; i++) {
        const struct su *su = si->asg[i].su;
        if (su && (!ms->lost_at || su != ms->active) && confirmed_active(si, su) &&
            (!next || su->cfg->rank < next->cfg->rank))
            next = su;
    }
    if (!next)
        return;
    if (ms->lost_at) {
        double seconds = (double)(now - ms->lost_at) / USEC_PER_SEC;
        bool deciding = amf_deciding(mt->amf);
        mt->recent[mt->n_recent++ % METRICS_RECENT_FAILOVERS] = (struct metrics_failover){.si = si,
                                                                                          .from = ms->active,
                                                                                          .to = next,
                                                                                          .reason = ms->reason,
                                                                                          .counted = deciding,
                                                                                          .seconds = seconds,
                                                                                          .at = now_realtime_usec()};
        if (deciding) {
            ms->failovers[ms->reason]++;
            observe(mt, seconds);
        }
    }
    ms->active = next;
    ms->lost_at = 0;
}

static struct metrics_si *find(struct metrics *mt, struct si *si) {
    for (size_t i = 0; i < mt->n_sis; i++)
        if (mt->sis[i].si == si)
            return &mt->sis[i];
    /* An SI of a group a reload added. */
    struct metrics_si *sis = realloc(mt->sis, (mt->n_sis + 1) * sizeof(*sis));
    if (!sis)
        return NULL;
    mt->sis = sis;
    sis[mt->n_sis] = (struct metrics_si){.si = si};
    return &sis[mt->n_sis++];
}

static void on_si(void *userdata, struct si *si) {
    struct metrics_si *ms = find(userdata, si);
    if (ms)
        look(userdata, ms);
}

static void on_sg(void *userdata, struct sg *sg) {
    for (size_t i = 0; i < sg->n_sis; i++)
        on_si(userdata, &sg->sis[i]);
}

static void on_su(void *userdata, struct su *su, enum amf_su_event ev) {
    on_sg(userdata, su->sg);
}

static void on_comp(void *userdata, struct comp *c, enum amf_comp_event ev, const char *reason) {
    if (ev == AMF_COMP_FAILED) /* the earliest a failure is seen here */
        on_sg(userdata, c->su->sg);
}

static const struct amf_observer observer = {
    .assignment_changed = on_si,
    .si_changed = on_si,
    .sg_changed = on_sg,
    .su_event = on_su,
    .comp_event = on_comp,
};

int metrics_new(struct amf *a, struct metrics **ret) {
    _cleanup_free_ struct metrics *mt = calloc(1, sizeof(*mt));
    if (!mt)
        return -ENOMEM;
    mt->amf = a;
    size_t n_sgs;
    struct sg *sgs = amf_sgs(a, &n_sgs);
    for (size_t g = 0; g < n_sgs; g++)
        mt->n_sis += sgs[g].n_sis;
    mt->sis = calloc(MAX(mt->n_sis, (size_t)1), sizeof(*mt->sis));
    if (!mt->sis)
        return -ENOMEM;
    for (size_t g = 0, k = 0; g < n_sgs; g++)
        for (size_t i = 0; i < sgs[g].n_sis; i++)
            mt->sis[k++].si = &sgs[g].sis[i];
    int r = amf_observe(a, &observer, mt);
    if (r < 0) {
        free(mt->sis);
        return r;
    }
    *ret = TAKE_PTR(mt);
    return 0;
}

struct metrics *metrics_free(struct metrics *mt) {
    if (!mt)
        return NULL;
    amf_unobserve(mt->amf, &observer, mt);
    free(mt->sis);
    free(mt);
    return NULL;
}

json_t *metrics_failovers_json(const struct metrics *mt) {
    json_t *a = json_array();
    uint64_t n = mt ? MIN(mt->n_recent, (uint64_t)METRICS_RECENT_FAILOVERS) : 0;
    for (uint64_t i = 0; a && i < n; i++) { /* the newest first */
        const struct metrics_failover *f = &mt->recent[(mt->n_recent - 1 - i) % METRICS_RECENT_FAILOVERS];
        json_array_append_new(a, json_pack("{s:s, s:s, s:s, s:s, s:s, s:s, s:o, s:b, s:f, s:f}", "sg", f->si->sg->name,
                                           "si", f->si->name, "from", f->from->name, "from_node", f->from->cfg->node,
                                           "to", f->to->name, "to_node", f->to->cfg->node, "reason",
                                           f->counted ? json_string(reason_names[f->reason]) : json_null(), "counted",
                                           f->counted, "seconds", f->seconds, "at", (double)f->at / USEC_PER_SEC));
    }
    return a;
}

/* ---- the exposition ---- */

#define ADD(name, help, type, value)                             \
    do {                                                         \
        if (r >= 0)                                              \
            r = http_metrics_add(b, name, help, type, l, value); \
    } while (0)

static int write_failovers(struct metrics *mt, struct http_metrics_buf *b) {
    char l[512];
    int r = 0;
    for (size_t i = 0; mt && i < mt->n_sis; i++)
        for (size_t k = 0; !mt->sis[i].si->sg->removed && !mt->sis[i].si->removed && k < _REASON_MAX; k++) {
            const struct si *si = mt->sis[i].si;
            http_metrics_labels(l, sizeof(l), "sg", si->sg->name, "si", si->name, "reason", reason_names[k], NULL);
            ADD("halo_failovers_total",
                "Times the ACTIVE of an SI moved to another unit, counted by the deciding node, by reason "
                "(failure, node, switchover, admin).",
                "counter", (double)mt->sis[i].failovers[k]);
        }
    uint64_t cumulative[ELEMENTSOF(buckets)], c = 0;
    for (size_t i = 0; i < ELEMENTSOF(buckets); i++)
        cumulative[i] = c += mt ? mt->counts[i] : 0;
    if (r >= 0)
        r = http_metrics_add_histogram(
            b, "halo_failover_duration_seconds",
            "From the moment this node saw an SI's ACTIVE lost to the new ACTIVE's confirmation (docs/metrics.md).",
            NULL, buckets, cumulative, ELEMENTSOF(buckets), mt ? mt->sum : 0, mt ? mt->n_observed : 0);
    return r;
}

static int write_units(struct manager *m, struct http_metrics_buf *b) {
    char l[512];
    int r = 0;
    size_t n_sgs;
    struct sg *sgs = amf_sgs(m->amf, &n_sgs);
    for (size_t g = 0; g < n_sgs; g++) {
        if (sgs[g].removed) /* by a reload; its name may be a new group's */
            continue;
        for (size_t i = 0; i < sgs[g].n_sis; i++) {
            const struct si *si = &sgs[g].sis[i];
            for (size_t k = 0; !si->removed && k < si->n_asg; k++) {
                const struct su *su = si->asg[k].su;
                if (!su || !confirmed_active(si, su))
                    continue;
                http_metrics_labels(l, sizeof(l), "si", si->name, "su", su->name, "node", su->cfg->node, NULL);
                ADD("halo_si_active", "1 for each unit confirmed ACTIVE for the SI (absent: not ACTIVE there).",
                    "gauge", 1);
            }
        }
        for (size_t u = 0; u < sgs[g].n_sus; u++) {
            const struct su *su = &sgs[g].sus[u];
            if (!su->local || su->removed)
                continue;
            http_metrics_labels(l, sizeof(l), "su", su->name, NULL);
            ADD("halo_su_restarts_total",
                "Times this node's unit was started again after a failure (su-restart, or the restart after a "
                "failover).",
                "counter", (double)su->restarts_total);
            for (size_t c = 0; c < su->n_comps; c++) {
                if (su->comps[c].removed)
                    continue;
                http_metrics_labels(l, sizeof(l), "component", su->comps[c].name, NULL);
                ADD("halo_health_check_failures_total",
                    "Health checks of this node's component that failed: missed, answered or reported failed.",
                    "counter", (double)su->comps[c].hc_failures);
            }
        }
    }
    return r;
}

int metrics_write(struct manager *m, struct http_metrics_buf *b) {
    char l[512];
    int r = write_failovers(m->metrics, b);
    if (r >= 0 && m->amf)
        r = write_units(m, b);
    static const enum ha_state roles[] = {HA_STATE_NONE, HA_STATE_SECONDARY, HA_STATE_PRIMARY,
                                          HA_STATE_SECONDARY_RELAY};
    for (size_t i = 0; m->ha && i < ELEMENTSOF(roles); i++) {
        http_metrics_labels(l, sizeof(l), "role", ha_state_name(roles[i]), NULL);
        ADD("halo_cdb_role", "1 for the configuration database's HA role on this node, 0 for the others.", "gauge",
            ha_state(m->ha) == roles[i]);
    }
    for (size_t g = 0; g < m->n_cdb_groups; g++) {
        const struct cdb_group *cg = &m->cdb_groups[g];
        /* A subtree (at most CONFIG_CDB_SUBTREE_MAX bytes) and a group's name, each escaped at worst to twice. */
        char sl[2 * (CONFIG_CDB_SUBTREE_MAX + CONFIG_NAME_MAX) + 64];
        for (size_t i = 0; cg->ha && i < ELEMENTSOF(roles); i++) {
            http_metrics_labels(sl, sizeof(sl), "subtree", cg->subtree, "sg", cg->sg, "role", ha_state_name(roles[i]),
                                NULL);
            if (r >= 0)
                r = http_metrics_add(b, "halo_cdb_subtree_role",
                                     "1 for the HA role on this node of a subtree's database (cdb-subtree), 0 for the "
                                     "others.",
                                     "gauge", sl, ha_state(cg->ha) == roles[i]);
        }
    }
    http_metrics_labels(l, sizeof(l), "version", HALO_VERSION_STRING, NULL);
    ADD("halo_build_info", "Always 1; the version of this halod in its label.", "gauge", 1);
    const char *coordinator = status_coordinator(m);
    l[0] = '\0';
    ADD("halo_coordinator", "1 when this node is the coordinator (decides failovers), else 0.", "gauge",
        coordinator && streq(coordinator, m->node));
    return r;
}
