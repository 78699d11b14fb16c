/* SPDX-License-Identifier: MIT */
/*
 * Protection-group tracking: a process asks for the members of a CSI's
 * protection group (the components holding it, with their HA states) once, or
 * to be told of every change (all members, or the changed ones only).
 */
#define LOG_AREA LOG_AREA_AMF
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "amf-internal.h"
#include "link-pack.h"
#include "log.h"
#include "macro.h"
#include "server.h"

struct tracker {
    LIST_FIELDS(struct tracker, trackers);
    struct conn *conn;
    char *csi;
    unsigned flags;
    size_t n_last;
    char **last_comp; /* members last reported */
    halo_ha_state *last_state;
};

static struct tracker *tracker_free(struct tracker *t) {
    for (size_t i = 0; i < t->n_last; i++)
        free(t->last_comp[i]);
    free(t->last_comp);
    free(t->last_state);
    free(t->csi);
    free(t);
    return NULL;
}

static void tracker_remove(struct amf *a, struct tracker *t) {
    LIST_REMOVE(trackers, &a->trackers, t);
    tracker_free(t);
}

static bool tracker_listed(struct amf *a, const struct tracker *t) {
    struct tracker *x;
    LIST_FOREACH (trackers, x, &a->trackers)
        if (x == t)
            return true;
    return false;
}

/* Current members of a CSI's protection group. */
static size_t pg_members(struct si *si, const struct config_csi *csi, const char **comps, halo_ha_state *states) {
    size_t n = 0;
    for (size_t i = 0; i < si->n_asg; i++) {
        struct assignment *a = &si->asg[i];
        if (!a->su || !a->confirmed || a->removing)
            continue;
        struct comp *c = amf_csi_comp(a->su, csi);
        if (!c)
            continue;
        comps[n] = c->name;
        states[n] = a->state;
        n++;
    }
    return n;
}

/* Remembers what was reported. */
static void tracker_remember(struct tracker *t, const char **comps, const halo_ha_state *states, size_t n) {
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
}

static void tracker_send(struct amf *a, struct tracker *t, bool initial) {
    const struct config_csi *csi;
    struct si *si = amf_find_csi(a, t->csi, &csi);
    size_t max = si ? si->n_asg : 0;
    /* Every member of the group, and every one last reported (REMOVED), as the
     * HA link carries them (LINK_ATTRS_MAX at most: a group that large is cut). */
    _cleanup_free_ const char **comps = calloc(max ?: 1, sizeof(char *));
    _cleanup_free_ halo_ha_state *states = calloc(max ?: 1, sizeof(halo_ha_state));
    _cleanup_free_ halo_pg_member *mem = calloc(max + t->n_last ?: 1, sizeof(halo_pg_member));
    if (!comps || !states || !mem) {
        log_warning("Out of memory telling the protection group of '%s'", t->csi);
        return;
    }
    size_t n = si ? pg_members(si, csi, comps, states) : 0;
    size_t room = MIN(max + t->n_last, (size_t)LINK_ATTRS_MAX);

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
        if ((ch == HALO_PG_NO_CHANGE && (t->flags & HALO_TRACK_CHANGES_ONLY) && !initial) || k >= room)
            continue;
        mem[k++] = (halo_pg_member){.comp_name = comps[i], .ha_state = states[i], .change = ch};
    }
    for (size_t j = 0; j < t->n_last && !initial; j++) {
        bool still = false;
        for (size_t i = 0; i < n; i++)
            still = still || streq(t->last_comp[j], comps[i]);
        if (still || k >= room)
            continue;
        changed = true;
        mem[k++] =
            (halo_pg_member){.comp_name = t->last_comp[j], .ha_state = t->last_state[j], .change = HALO_PG_REMOVED};
    }
    if (changed) {
        uint8_t buf[LINK_MSG_MAX];
        int len = link_pack_pg_notify(t->csi, mem, k, buf, sizeof(buf));
        if (len >= 0)
            (void)server_conn_send_packed(t->conn, buf, (size_t)len);
    }
    /* The send above may have closed the conn, which frees t: only touch t if it is still listed. */
    if (tracker_listed(a, t))
        tracker_remember(t, comps, states, n);
}

void amf_pg_notify(struct amf *a, struct si *si) {
    struct tracker *t, *next;
    LIST_FOREACH_SAFE (trackers, t, next, &a->trackers) {
        if (!(t->flags & (HALO_TRACK_CHANGES | HALO_TRACK_CHANGES_ONLY)))
            continue;
        const struct config_csi *csi;
        if (amf_find_csi(a, t->csi, &csi) == si)
            tracker_send(a, t, false);
    }
}

void amf_pg_track(struct amf *a, struct conn *conn, uint64_t seq, const char *csi_name, unsigned flags) {
    const struct config_csi *csi;
    if (!amf_find_csi(a, csi_name, &csi)) {
        (void)server_conn_reply(conn, seq, -HALO_EUNKNOWN, NULL);
        return;
    }
    struct tracker *t = NULL, *x;
    LIST_FOREACH (trackers, x, &a->trackers)
        if (x->conn == conn && streq(x->csi, csi_name))
            t = x;
    if (!t) {
        t = calloc(1, sizeof(*t));
        if (!t || !(t->csi = strdup(csi_name))) {
            free(t);
            (void)server_conn_reply(conn, seq, -ENOMEM, NULL);
            return;
        }
        t->conn = conn;
        LIST_PREPEND(trackers, &a->trackers, t);
    }
    t->flags = flags;
    (void)server_conn_reply(conn, seq, 0, NULL);
    tracker_send(a, t, true);
    if (!(t->flags & (HALO_TRACK_CHANGES | HALO_TRACK_CHANGES_ONLY)) && tracker_listed(a, t))
        tracker_remove(a, t);
}

void amf_pg_track_stop(struct amf *a, struct conn *conn, uint64_t seq, const char *csi) {
    struct tracker *t;
    LIST_FOREACH (trackers, t, &a->trackers)
        if (t->conn == conn && streq(t->csi, csi)) {
            tracker_remove(a, t);
            (void)server_conn_reply(conn, seq, 0, NULL);
            return;
        }
    (void)server_conn_reply(conn, seq, -ENOENT, NULL);
}

void amf_pg_conn_closed(struct amf *a, struct conn *conn) {
    struct tracker *t, *next;
    LIST_FOREACH_SAFE (trackers, t, next, &a->trackers)
        if (t->conn == conn)
            tracker_remove(a, t);
}

void amf_pg_free_all(struct amf *a) {
    struct tracker *t;
    while ((t = LIST_POP(trackers, &a->trackers)))
        tracker_free(t);
}

void amf_ha_state_get(struct amf *a, struct conn *conn, uint64_t seq, const char *comp, const char *csi_name) {
    const struct config_csi *csi;
    struct si *si = amf_find_csi(a, csi_name, &csi);
    struct comp *c = amf_find_comp(a, comp);
    if (!si || !c) {
        (void)server_conn_reply(conn, seq, -HALO_EUNKNOWN, NULL);
        return;
    }
    struct assignment *as = amf_si_find_su(si, c->su);
    if (!as || !as->confirmed || amf_csi_comp(c->su, csi) != c) {
        (void)server_conn_reply(conn, seq, -ENOENT, NULL);
        return;
    }
    uint8_t buf[LINK_MSG_MAX];
    int len = link_pack_reply_ha_state(seq, as->state, buf, sizeof(buf));
    if (len >= 0)
        (void)server_conn_send_packed(conn, buf, (size_t)len);
}
