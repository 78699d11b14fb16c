/* SPDX-License-Identifier: MIT */
/*
 * The entrypoint context (docs/names.md): read-only, derived from the AMF.  Each SI the
 * description marks `entrypoint: true` is a name; its registrations are its confirmed ACTIVE
 * assignments (several with N-way-active), best-ranked first, each with the ACTIVE's node as
 * its reference and the unit as an attribute: where GET /v1/entrypoint says it is ACTIVE.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "macro.h"
#include "name-internal.h"

static struct name_reg *entry_new(const struct si *si, const struct su *su) {
    struct name_reg *r = calloc(1, sizeof(*r));
    const char *node = su->cfg->node;
    if (!r || !(r->ref = (uint8_t *)strdup(node)) || !(r->key = strdup(si->name)) ||
        !(r->attrs = json_pack("[[s, s]]", "su", su->name)))
        return name_reg_free(r);
    snprintf(r->context, sizeof(r->context), "%s", HALO_NAME_CONTEXT_ENTRYPOINT);
    snprintf(r->name, sizeof(r->name), "%s", si->name);
    snprintf(r->node, sizeof(r->node), "%s", node);
    r->ref_len = strlen(node);
    /* Best-ranked first: name_reg_compare() orders equal priorities by this. */
    r->create_revision = su->cfg->rank;
    return r;
}

static const struct si *find_si(struct amf *a, const char *name) {
    size_t n_sgs;
    struct sg *sgs = amf_sgs(a, &n_sgs);
    for (size_t g = 0; g < n_sgs; g++)
        for (size_t i = 0; !sgs[g].removed && i < sgs[g].n_sis; i++) {
            const struct si *si = &sgs[g].sis[i];
            if (si->cfg->entrypoint && !si->removed && streq(si->name, name))
                return si;
        }
    return NULL;
}

static int si_entries(const struct si *si, struct name_reg ***ret, size_t *ret_n) {
    struct name_reg **regs = calloc(si->n_asg ?: 1, sizeof(*regs));
    size_t n = 0;
    if (!regs)
        return -ENOMEM;
    for (size_t k = 0; k < si->n_asg; k++) {
        const struct assignment *as = &si->asg[k];
        if (!as->su || !as->confirmed || as->state != HALO_HA_ACTIVE)
            continue;
        if (!(regs[n] = entry_new(si, as->su))) {
            while (n)
                name_reg_free(regs[--n]);
            free(regs);
            return -ENOMEM;
        }
        n++;
    }
    qsort(regs, n, sizeof(*regs), name_reg_compare);
    *ret = regs;
    *ret_n = n;
    return 0;
}

int name_entry_lookup(struct amf *a, const char *si_name, bool all, struct name_reg ***ret, size_t *ret_n) {
    const struct si *si = find_si(a, si_name);
    if (!si)
        return -ENOENT;
    int r = si_entries(si, ret, ret_n);
    if (r < 0)
        return r;
    if (*ret_n == 0) {
        free(*ret);
        return -ENOENT;
    }
    while (!all && *ret_n > 1)
        name_reg_free((*ret)[--*ret_n]);
    return 0;
}

int name_entry_json(struct amf *a, json_t *array) {
    size_t n_sgs;
    struct sg *sgs = amf_sgs(a, &n_sgs);
    for (size_t g = 0; g < n_sgs; g++)
        for (size_t i = 0; !sgs[g].removed && i < sgs[g].n_sis; i++) {
            const struct si *si = &sgs[g].sis[i];
            struct name_reg **regs;
            size_t n;
            if (!si->cfg->entrypoint || si->removed)
                continue;
            if (si_entries(si, &regs, &n) < 0)
                return -ENOMEM;
            for (size_t k = 0; k < n; k++) {
                json_array_append_new(array, name_reg_json(regs[k]));
                name_reg_free(regs[k]);
            }
            free(regs);
        }
    return 0;
}

/* ---- trackers ------------------------------------------------------------------------------------ */

/* The same ACTIVE: the same unit on the same node. */
static bool same(const struct name_reg *a, const struct name_reg *b) {
    return streq(a->node, b->node) && json_equal(a->attrs, b->attrs);
}

static bool among(const struct name_reg *r, struct name_reg **regs, size_t n) {
    for (size_t i = 0; i < n; i++)
        if (same(r, regs[i]))
            return true;
    return false;
}

static void snapshot(struct amf *a, const char *si, struct name_reg ***ret, size_t *ret_n) {
    *ret = NULL;
    *ret_n = 0;
    if (name_entry_lookup(a, si, true, ret, ret_n) < 0) {
        *ret = NULL; /* none ACTIVE, no such SI, or out of memory: nothing */
        *ret_n = 0;
    }
}

int name_entry_track(struct name_service *s, struct name_track *t) {
    snapshot(s->amf, t->name, &t->last, &t->n_last);
    return 0;
}

static void refresh_track(struct name_service *s, struct name_track *t) {
    struct name_reg **now;
    size_t n;
    snapshot(s->amf, t->name, &now, &n);
    for (size_t i = 0; i < t->n_last; i++)
        if (!among(t->last[i], now, n))
            name_notify_one(t, HALO__LINK__NAME_NOTE__CHANGE__REMOVED, HALO__LINK__NAME_NOTE__REASON__DEREGISTERED,
                            t->last[i]);
    for (size_t i = 0; i < n; i++)
        if (!among(now[i], t->last, t->n_last))
            name_notify_one(t, HALO__LINK__NAME_NOTE__CHANGE__ADDED, HALO__LINK__NAME_NOTE__REASON__REGISTERED, now[i]);
    for (size_t i = 0; i < t->n_last; i++)
        name_reg_free(t->last[i]);
    free(t->last);
    t->last = now;
    t->n_last = n;
}

void name_entry_refresh(struct name_service *s) {
    struct name_track *t;
    s->notifying = true;
    LIST_FOREACH (tracks, t, &s->tracks)
        if (t->conn && streq(t->context, HALO_NAME_CONTEXT_ENTRYPOINT))
            refresh_track(s, t);
    s->notifying = false;
    name_tracks_sweep(s);
}
