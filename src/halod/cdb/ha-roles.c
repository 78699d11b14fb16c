/* SPDX-License-Identifier: MIT */
/* HA roles of the configuration database (NONE, SECONDARY, PRIMARY, SECONDARY_RELAY): the role state machine. */

/*
 * Transitions (seed 002's calls; anything else is -HALO_EBADSTATE):
 *
 *   call \ state     NONE        SECONDARY          PRIMARY             RELAY
 *   beprimary        PRIMARY     PRIMARY (leaves    PRIMARY (same       PRIMARY (leaves its
 *                                its primary)       name; another:      primary, drops its
 *                                                   BADNAME)            secondaries)
 *   besecondary      SECONDARY   SECONDARY (new     SECONDARY (drops    SECONDARY (drops its
 *                                primary)           its secondaries)    secondaries)
 *   berelay          BADSTATE    RELAY (once        BADSTATE            RELAY (no change)
 *                                initialized)
 *   benone           NONE        NONE               NONE                NONE
 *   secondary_dead   no change   no change          closes it           closes it
 *   status           any state
 *
 * SECONDARY starts at besecondary (writes are refused from then on); a join
 * that fails ends in NONE.  A secondary or relay that loses its primary goes
 * to NONE, and a relay closes its own secondaries, which go to NONE too.
 * Writes are allowed in NONE (a database of its own) and PRIMARY; with
 * roles driven by the AMF in PRIMARY only.  The
 * calls come from the control socket (ha-control.c) or, in driven mode,
 * from the AMF (ha_follow()).
 */
#include <errno.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "halo/halo.h"
#include "ha-internal.h"
#include "log.h"
#include "macro.h"
#include "repl-internal.h" /* repl_parse_addr(): besecondary checks its address first */
#include "string-table.h"

static const char *const ha_state_table[] = {
    [HA_STATE_NONE] = "NONE",
    [HA_STATE_SECONDARY] = "SECONDARY",
    [HA_STATE_PRIMARY] = "PRIMARY",
    [HA_STATE_SECONDARY_RELAY] = "SECONDARY_RELAY",
};

DEFINE_PRIVATE_STRING_TABLE_LOOKUP(ha_state, enum ha_state);

const char *ha_state_name(enum ha_state s) {
    return ha_state_to_string(s) ?: "UNKNOWN";
}

enum ha_state ha_state(const struct ha *h) {
    return h->state;
}

static void set_state(struct ha *h, enum ha_state s) {
    if (h->state != s)
        log_info("CDB%s HA state %s -> %s", h->label, ha_state_name(h->state), ha_state_name(s));
    h->state = s;
}

/* ---- the role calls ----------------------------------------------------------- */

static void join_finish(struct ha *h, int error) {
    void (*done)(void *, int) = h->join_done;
    h->join_done = NULL;
    if (done)
        done(h->join_arg, error);
}

int ha_beprimary(struct ha *h, const char *nodeid) {
    if (!nodeid || !*nodeid || strlen(nodeid) > LINK_NAME_MAX)
        return -HALO_EBADNAME;
    if (h->state == HA_STATE_PRIMARY) {
        if (!streq(nodeid, h->nodeid))
            return -HALO_EBADNAME;
        return 0;
    }
    if (!h->token)
        return -HALO_EBADTOKEN;
    if (h->state == HA_STATE_SECONDARY || h->state == HA_STATE_SECONDARY_RELAY) {
        repl_unfollow(h->repl);
        join_finish(h, -HALO_ECLOSED);
    }
    if (h->state == HA_STATE_SECONDARY_RELAY)
        repl_stop_serving(h->repl, "the relay became a primary");
    (void)repl_set_nodeid(h->repl, nodeid);
    int r = repl_serve(h->repl);
    if (r < 0) {
        set_state(h, HA_STATE_NONE);
        return r;
    }
    snprintf(h->nodeid, sizeof(h->nodeid), "%s", nodeid);
    set_state(h, HA_STATE_PRIMARY);
    ha_control_notify(h, HALO__HA__NOTIFICATION__TYPE__IS_PRIMARY, nodeid, 0, false, NULL);
    return 0;
}

int ha_besecondary(struct ha *h, const char *nodeid, const char *primary_id, const char *primary_addr,
                   void (*done)(void *arg, int error), void *arg) {
    if (!nodeid || !*nodeid || strlen(nodeid) > LINK_NAME_MAX || !primary_id || !*primary_id ||
        strlen(primary_id) > LINK_NAME_MAX || streq(nodeid, primary_id))
        return -HALO_EBADNAME;
    /* Every argument is checked before the role is touched: a typo leaves the node as it was. */
    struct sockaddr_storage sa;
    if (!primary_addr || strlen(primary_addr) > LINK_NAME_MAX || repl_parse_addr(primary_addr, 1, &sa) < 0)
        return -EINVAL;
    if (!h->token)
        return -HALO_EBADTOKEN;
    if (h->state == HA_STATE_PRIMARY || h->state == HA_STATE_SECONDARY_RELAY)
        repl_stop_serving(h->repl, "the node became a secondary");
    join_finish(h, -HALO_ECLOSED); /* an earlier besecondary still joining */
    (void)repl_set_nodeid(h->repl, nodeid);
    int r = repl_follow(h->repl, primary_id, primary_addr);
    if (r < 0) {
        set_state(h, HA_STATE_NONE);
        return r;
    }
    snprintf(h->nodeid, sizeof(h->nodeid), "%s", nodeid);
    h->initialized = false;
    h->join_done = done;
    h->join_arg = arg;
    set_state(h, HA_STATE_SECONDARY);
    return 0;
}

int ha_berelay(struct ha *h) {
    if (h->state == HA_STATE_SECONDARY_RELAY)
        return 0;
    if (h->state != HA_STATE_SECONDARY || !h->initialized)
        return -HALO_EBADSTATE;
    int r = repl_serve(h->repl);
    if (r < 0)
        return r;
    set_state(h, HA_STATE_SECONDARY_RELAY);
    return 0;
}

int ha_benone(struct ha *h) {
    if (h->state == HA_STATE_PRIMARY || h->state == HA_STATE_SECONDARY_RELAY)
        repl_stop_serving(h->repl, "the node left its HA role");
    repl_unfollow(h->repl);
    join_finish(h, -HALO_ECLOSED);
    bool was_none = h->state == HA_STATE_NONE;
    set_state(h, HA_STATE_NONE);
    if (!was_none)
        ha_control_notify(h, HALO__HA__NOTIFICATION__TYPE__IS_NONE, h->nodeid, 0, false, NULL);
    return 0;
}

int ha_secondary_dead(struct ha *h, const char *nodeid) {
    if (!nodeid || !*nodeid || strlen(nodeid) > LINK_NAME_MAX)
        return -HALO_EBADNAME;
    /* Accepted in every state, as ConfD does: a node that serves no secondaries has none to drop. */
    if (h->state == HA_STATE_PRIMARY || h->state == HA_STATE_SECONDARY_RELAY)
        repl_secondary_dead(h->repl, nodeid);
    return 0;
}

int ha_set_token(struct ha *h, const char *token) {
    char *t = strdup(token);
    if (!t)
        return -ENOMEM;
    int r = repl_set_token(h->repl, token);
    if (r < 0) {
        free(t);
        return r;
    }
    free(h->token);
    h->token = t;
    return 0;
}

int ha_set_tls(struct ha *h, const char *cert, const char *key, const char *ca, char *why, size_t n) {
    return repl_set_tls(h->repl, cert, key, ca, why, n);
}

/* ---- what replication tells us ------------------------------------------------------- */

static void on_secondary_arrived(void *userdata, const char *nodeid) {
    ha_control_notify(userdata, HALO__HA__NOTIFICATION__TYPE__SECONDARY_ARRIVED, nodeid, 0, false, NULL);
}

static void on_secondary_died(void *userdata, const char *nodeid, const char *reason) {
    ha_control_notify(userdata, HALO__HA__NOTIFICATION__TYPE__SECONDARY_DIED, nodeid, 0, false, reason);
}

static void on_joined(void *userdata, int error, bool full_copy, const char *reason) {
    struct ha *h = userdata;
    char primary[LINK_NAME_MAX + 1] = "";
    const char *p = repl_primary(h->repl, NULL);
    if (p)
        snprintf(primary, sizeof(primary), "%s", p);
    if (error < 0) {
        set_state(h, HA_STATE_NONE);
        ha_control_notify(h, HALO__HA__NOTIFICATION__TYPE__BESECONDARY_RESULT, primary, error, false, reason);
        if (h->changed)
            h->changed(h->changed_userdata);
    } else {
        h->initialized = true;
        /* reason: what a full copy discarded of this node's own commits, if anything */
        ha_control_notify(h, HALO__HA__NOTIFICATION__TYPE__SECONDARY_INITIALIZED, primary, 0, full_copy, reason);
        ha_control_notify(h, HALO__HA__NOTIFICATION__TYPE__BESECONDARY_RESULT, primary, 0, full_copy, NULL);
    }
    join_finish(h, error);
}

static void on_lost(void *userdata, int error, const char *reason) {
    struct ha *h = userdata;
    if (h->state == HA_STATE_SECONDARY_RELAY)
        repl_stop_serving(h->repl, "the relay lost its primary");
    set_state(h, HA_STATE_NONE);
    h->initialized = false;
    ha_control_notify(h, HALO__HA__NOTIFICATION__TYPE__NOPRIMARY, "", error, false, reason);
    if (h->changed)
        h->changed(h->changed_userdata);
}

static void on_expected_caught_up(void *userdata) {
    struct ha *h = userdata;
    if (h->changed)
        h->changed(h->changed_userdata);
}

static const struct repl_handlers repl_handlers = {
    .expected_caught_up = on_expected_caught_up,
    .secondary_arrived = on_secondary_arrived,
    .secondary_died = on_secondary_died,
    .joined = on_joined,
    .lost = on_lost,
};

static int may_write(void *userdata) {
    struct ha *h = userdata;
    if (h->driven_by && h->state != HA_STATE_PRIMARY)
        return -HALO_EREADONLY; /* roles driven by the AMF: the ACTIVE unit's node only, never NONE */
    return h->state == HA_STATE_SECONDARY || h->state == HA_STATE_SECONDARY_RELAY ? -HALO_EREADONLY : 0;
}

static void replicated(void *userdata, const cdb_txid *id, void (*done)(void *arg, int error), void *arg) {
    struct ha *h = userdata;
    if (h->driven_by && h->state != HA_STATE_PRIMARY)
        done(arg, -HALO_ECLOSED); /* taken as primary, written once it no longer was: not replicated */
    else if (h->state == HA_STATE_PRIMARY)
        repl_wait(h->repl, id, done, arg);
    else
        done(arg, 0);
}

static const struct cdb_link_role link_role = {.may_write = may_write, .replicated = replicated};

/* ---- setup ------------------------------------------------------------------ */

int ha_new(const struct ha_params *p, struct ha **ret) {
    const char *name = p->name ?: "", *subtree = p->subtree ?: "";
    int r;
    if (p->control_tcp && !p->control_path)
        return -EINVAL;
    if (p->control_tcp && !p->token)
        return -ENOKEY;
    struct ha *h = calloc(1, sizeof(*h));
    if (!h)
        return -ENOMEM;
    h->loop = p->loop;
    h->db = p->db;
    h->link = p->link;
    h->state = HA_STATE_NONE;
    if (asprintf(&h->label, "%s%s", *name ? " " : "", *subtree ? subtree : name) < 0) {
        free(h);
        return -ENOMEM;
    }
    struct repl_params rp = {.loop = p->loop,
                             .db = p->db,
                             .listen = p->repl_listen,
                             .share = p->share ? p->share->repl : NULL,
                             .name = name,
                             .subtree = subtree,
                             .tick_msec = p->tick_msec,
                             .dead_msec = p->dead_msec,
                             .async = p->async,
                             .handlers = &repl_handlers,
                             .userdata = h};
    r = repl_new(&rp, &h->repl);
    if (r < 0) {
        free(h->label);
        free(h);
        return r;
    }
    if (p->token) {
        r = ha_set_token(h, p->token);
        if (r < 0) {
            ha_free(h);
            return r;
        }
        h->token_fixed = true;
    }
    r = p->control_path ? ha_control_listen(h, p->control_path, p->control_tcp) : 0;
    if (r < 0) {
        ha_free(h);
        return r;
    }
    if (p->link)
        cdb_link_set_role(p->link, p->db, &link_role, h);
    *ret = h;
    return 0;
}

struct ha *ha_free(struct ha *h) {
    if (!h)
        return NULL;
    if (h->link)
        cdb_link_set_role(h->link, h->db, NULL, NULL);
    ha_control_close_conns(h);
    h->join_done = NULL;
    h->repl = repl_free(h->repl);
    free(h->token);
    free(h->driven_by);
    free(h->label);
    h->token = h->driven_by = h->label = NULL;
    h->freeing = true;
    /* The listeners live in h: the last close callback frees it. */
    ha_control_close_listeners(h);
    if (h->open_handles == 0)
        free(h);
    return NULL;
}

/* ---- roles driven by the AMF ------------------------------------------------------ */

int ha_set_driven(struct ha *h, const char *sg, const char *token, void (*changed)(void *userdata), void *userdata) {
    char *s = strdup(sg);
    if (!s)
        return -ENOMEM;
    int r = ha_set_token(h, token);
    if (r < 0) {
        free(s);
        return r;
    }
    free(h->driven_by);
    h->driven_by = s;
    h->changed = changed;
    h->changed_userdata = userdata;
    return 0;
}

int ha_follow(struct ha *h, enum ha_state want, const char *self, const char *primary, const char *addr) {
    const char *following = repl_primary(h->repl, NULL);
    switch (want) {
    case HA_STATE_PRIMARY:
        return h->state == HA_STATE_PRIMARY ? 0 : ha_beprimary(h, self);
    case HA_STATE_SECONDARY:
        if (h->state == HA_STATE_SECONDARY && following && streq(following, primary))
            return 0; /* joined, or joining */
        if (h->state == HA_STATE_PRIMARY)
            (void)ha_benone(h); /* first stop taking writes, then join */
        return ha_besecondary(h, self, primary, addr, NULL, NULL);
    case HA_STATE_NONE:
        return h->state == HA_STATE_NONE ? 0 : ha_benone(h);
    case HA_STATE_SECONDARY_RELAY:
    default:
        return -EINVAL;
    }
}

void ha_expect_secondary(struct ha *h, const char *nodeid) {
    repl_expect(h->repl, nodeid);
}

void ha_hold_commits(struct ha *h, bool hold) {
    repl_hold(h->repl, hold);
}

bool ha_expected_caught_up(const struct ha *h) {
    return h->state == HA_STATE_PRIMARY && repl_expected_caught_up(h->repl);
}

/* ---- status ------------------------------------------------------------------------ */

static void add_secondary(const char *nodeid, const char *addr, void *userdata) {
    json_t *secs = userdata;
    if (json_array_size(secs) < FRAME_NODES_MAX) /* as many as a STATUS reply holds */
        json_array_append_new(secs, json_pack("{s:s, s:s}", "nodeid", nodeid, "addr", addr));
}

void ha_set_replication(struct ha *h, uint64_t tick_msec, uint64_t dead_msec, bool async) {
    repl_set_timing(h->repl, tick_msec, dead_msec, async);
}

char *ha_status_json(struct ha *h) {
    json_t *o = json_object(), *secs = json_array();
    char txid[CDB_TXID_STRING_MAX];
    const char *primary = repl_primary(h->repl, NULL);
    repl_secondaries(h->repl, add_secondary, secs);
    json_object_set_new(o, "state", json_string(ha_state_name(h->state)));
    json_object_set_new(o, "nodeid", *h->nodeid ? json_string(h->nodeid) : json_null());
    json_object_set_new(o, "primary", primary ? json_string(primary) : json_null());
    json_object_set_new(o, "secondaries", secs);
    json_object_set_new(o, "last_txid", json_string(cdb_txid_format(cdb_last(h->db), txid)));
    uint64_t tick, dead;
    bool async = repl_timing(h->repl, &tick, &dead);
    json_object_set_new(o, "replication",
                        json_pack("{s:s, s:I, s:I}", "mode", async ? "async" : "sync", "tick_ms", (json_int_t)tick,
                                  "dead_after_ms", (json_int_t)dead));
    char *s = json_dumps(o, JSON_COMPACT);
    json_decref(o);
    return s;
}
