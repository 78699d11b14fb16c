/* SPDX-License-Identifier: MIT */
/*
 * CDB roles driven by the AMF (amf-roles.h), after every change of the
 * group's assignments as this node sees them:
 *
 *   this node's unit is the ACTIVE target           -> PRIMARY, and every
 *                                                      commit waits for the
 *                                                      STANDBY unit's node
 *   this node's unit is the STANDBY target, and
 *   another node's unit the ACTIVE target           -> SECONDARY of that node
 *   this node has no unit of the group, and
 *   another node's unit is the ACTIVE target        -> SECONDARY of that node
 *                                                      (a copy to read; the
 *                                                      primary never expects
 *                                                      it, never waits for it
 *                                                      when it is gone)
 *   anything else (QUIESCED, no assignment, ...)    -> NONE
 *
 * Only the PRIMARY takes writes (ha-roles.c refuses them in NONE when the
 * roles are driven): so a node whose unit is not the ACTIVE target never
 * commits, whatever its replication link does.  Leaving PRIMARY happens in
 * the AMF's own call that took the ACTIVE away (a fence, a failure, a
 * switchover), before the loop reads anything more; the other changes are
 * looked at on a zero timer, once per loop turn whatever changed, so the
 * primary changes within the same loop turn as the CSI set ACTIVE is sent,
 * before the component can answer or commit.  A join that fails (the new
 * primary is not listening yet) or a primary lost makes ha.c call back, and
 * the roles are looked at again after AMF_ROLES_RETRY_MSEC.
 */
#define LOG_AREA LOG_AREA_AMF
#include "amf-roles.h"

#include <errno.h>
#include <stdlib.h>

#include "keys.h"
#include "log.h"
#include "macro.h"

#define AMF_ROLES_RETRY_MSEC 300

/* The record that this node's CDB acknowledges commits alone (cdb-alone/<sg>). */
enum alone {
    ALONE_UNKNOWN,  /* a previous halod of this node may have left one */
    ALONE_WRITING,  /* being put: commits wait for it */
    ALONE_WRITTEN,  /* in the store: commits may be acknowledged alone */
    ALONE_DELETING, /* the standby has every commit: being deleted */
    ALONE_CLEAN,    /* none of ours in the store */
};

struct amf_roles {
    struct amf *amf;
    struct ha *ha;
    struct sg *sg;
    uv_timer_t timer;
    store *store; /* NULL on one node: nobody else could take over */
    char key[STORE_KEY_MAX], value[STORE_KEY_MAX];
    enum alone alone;
    unsigned refs; /* store calls in flight, and the owner */
};

static void roles_unref(struct amf_roles *r) {
    if (--r->refs == 0)
        free(r);
}

/* What this node's role should be. */
struct roles_want {
    enum ha_state state;
    const char *primary, *addr; /* SECONDARY: of whom, where */
    const char *expect;         /* PRIMARY: the standby's node, whose acknowledgement every commit waits for */
};

static void schedule(struct amf_roles *r, uint64_t delay_msec);

/* The node of su, if it takes secondaries (has a cdb-address). */
static const struct config_node *cdb_node(struct amf_roles *r, const struct su *su) {
    const struct config_node *n = config_find_node(amf_config(r->amf), su->cfg->node);
    return n && n->cdb_address ? n : NULL;
}

/* The SI's assignment of target state that is not going away. */
static struct assignment *live_target(struct si *si, halo_ha_state state) {
    struct assignment *a = amf_si_find(si, state);
    return a && !a->removing ? a : NULL;
}

/* The group's first SI that a reload did not remove: 2N, every SI of the group is ACTIVE on the same unit. */
static struct si *first_si(struct sg *sg) {
    for (size_t i = 0; i < sg->n_sis; i++)
        if (!sg->sis[i].removed)
            return &sg->sis[i];
    return NULL;
}

/* Whether this node has a unit of sg (one a reload has not removed). */
static bool has_unit(const struct sg *sg) {
    for (size_t i = 0; i < sg->n_sus; i++)
        if (sg->sus[i].local && !sg->sus[i].removed)
            return true;
    return false;
}

static struct roles_want compute(struct amf_roles *r) {
    struct roles_want w = {.state = HA_STATE_NONE};
    struct si *si = first_si(r->sg);
    if (!si)
        return w;
    struct assignment *act = live_target(si, HALO_HA_ACTIVE), *sb = live_target(si, HALO_HA_STANDBY);
    if (!act)
        return w; /* its unit failed or was locked: no primary anywhere */
    if (act->su->local) {
        const struct config_node *n = sb && !sb->su->local ? cdb_node(r, sb->su) : NULL;
        w.state = HA_STATE_PRIMARY;
        w.expect = n ? n->name : NULL;
    } else if ((sb && sb->su->local) || !has_unit(r->sg)) {
        const struct config_node *n = cdb_node(r, act->su);
        if (n) {
            w.state = HA_STATE_SECONDARY;
            w.primary = n->name;
            w.addr = n->cdb_address;
        }
    }
    return w;
}

static void on_alone_done(store *s, int error, const store_result *res, void *userdata) {
    struct amf_roles *r = userdata;
    bool closed = r->refs == 1;
    if (!closed && r->alone == ALONE_WRITING) {
        if (error < 0)
            log_warning_errno(error, "Failed to record that the CDB acknowledges commits alone (they wait): %m");
        r->alone = error < 0 ? ALONE_UNKNOWN : ALONE_WRITTEN;
        schedule(r, error < 0 ? AMF_ROLES_RETRY_MSEC : 0);
    } else if (!closed && r->alone == ALONE_DELETING) {
        r->alone = error < 0 ? ALONE_UNKNOWN : ALONE_CLEAN; /* deleted, or not ours any more */
        if (error < 0)
            schedule(r, AMF_ROLES_RETRY_MSEC);
    }
    roles_unref(r);
}

/*
 * A primary with no standby acknowledges commits alone: first it records so
 * in the store (cdb-alone/<sg>, its node), and commits wait until the record
 * is in.  While it is, the group's ACTIVE goes only to this node's unit
 * (cluster-sync's readiness hook): the other node lacks those commits.  Once
 * a standby's node has every commit, the record goes (if it is still ours).
 */
static bool alone_hold(struct amf_roles *r, const struct roles_want *w) {
    if (!r->store || w->state != HA_STATE_PRIMARY)
        return false;
    if (w->expect) {
        if ((r->alone == ALONE_WRITTEN || r->alone == ALONE_UNKNOWN) && ha_expected_caught_up(r->ha)) {
            store_compare cmp = {.key = r->key,
                                 .key_len = strlen(r->key),
                                 .target = STORE_CMP_VALUE,
                                 .result = STORE_CMP_EQUAL,
                                 .value = r->value,
                                 .value_len = strlen(r->value)};
            store_op del = {.type = STORE_OP_DELETE, .key = r->key, .key_len = strlen(r->key)};
            store_txn txn = {.compares = &cmp, .n_compares = 1, .success = &del, .n_success = 1};
            r->refs++;
            if (store_transaction(r->store, &txn, on_alone_done, r) < 0)
                r->refs--;
            else
                r->alone = ALONE_DELETING;
        }
        return false;
    }
    if (r->alone == ALONE_WRITTEN)
        return false; /* acknowledged alone */
    if (r->alone != ALONE_WRITING) {
        r->refs++;
        if (store_put(r->store, r->key, r->value, strlen(r->value), 0, on_alone_done, r) < 0) {
            r->refs--;
            schedule(r, AMF_ROLES_RETRY_MSEC);
        } else
            r->alone = ALONE_WRITING;
    }
    return true;
}

static void apply(struct amf_roles *r, const struct roles_want *w) {
    int e = ha_follow(r->ha, w->state, amf_node(r->amf), w->primary, w->addr);
    if (e < 0) {
        log_warning_errno(e, "Service group '%s': cannot make this node the CDB %s%s%s: %m", r->sg->name,
                          ha_state_name(w->state), w->primary ? " of " : "", w->primary ?: "");
        schedule(r, AMF_ROLES_RETRY_MSEC);
    }
    /* Held before the expected secondary changes (a change releases what it can). */
    bool hold = alone_hold(r, w);
    if (hold)
        ha_hold_commits(r->ha, true);
    ha_expect_secondary(r->ha, w->state == HA_STATE_PRIMARY ? w->expect : NULL);
    if (!hold)
        ha_hold_commits(r->ha, false);
}

static void evaluate(struct amf_roles *r) {
    if (amf_stopping(r->amf))
        return;
    struct roles_want w = compute(r);
    apply(r, &w);
}

/* Now if this node is the primary and should not be: no write may come in between. */
static void changed(struct amf_roles *r) {
    if (!amf_stopping(r->amf) && ha_state(r->ha) == HA_STATE_PRIMARY) {
        struct roles_want w = compute(r);
        if (w.state != HA_STATE_PRIMARY) {
            apply(r, &w);
            return;
        }
    }
    schedule(r, 0); /* before the component can act on its new role */
}

static void on_timer(uv_timer_t *t) {
    evaluate(t->data);
}

static void schedule(struct amf_roles *r, uint64_t delay_msec) {
    if (amf_stopping(r->amf))
        return;
    if (delay_msec == 0 || !uv_is_active((uv_handle_t *)&r->timer))
        uv_timer_start(&r->timer, on_timer, delay_msec, 0);
}

static void on_assignment_changed(void *userdata, struct si *si) {
    struct amf_roles *r = userdata;
    if (si->sg == r->sg)
        changed(r);
}

static void on_sg_changed(void *userdata, struct sg *sg) {
    struct amf_roles *r = userdata;
    if (sg == r->sg)
        changed(r);
}

static void on_ha_changed(void *userdata) {
    struct amf_roles *r = userdata;
    /* A standby that caught up lets the record go at once; a failed join is retried later. */
    bool release = (r->alone == ALONE_WRITTEN || r->alone == ALONE_UNKNOWN) && ha_expected_caught_up(r->ha);
    schedule(r, release ? 0 : AMF_ROLES_RETRY_MSEC);
}

static const struct amf_observer observer = {
    .assignment_changed = on_assignment_changed,
    .sg_changed = on_sg_changed,
};

int amf_roles_new(uv_loop_t *loop, struct amf *a, const char *sg_name, struct ha *ha, const char *token, store *st,
                  const char *prefix, struct amf_roles **ret) {
    struct sg *sg = amf_find_sg(a, sg_name);
    *ret = NULL;
    if (!sg)
        return -ENOENT;
    if (!ha || !token)
        return 0;
    struct amf_roles *r = calloc(1, sizeof(*r));
    if (!r)
        return -ENOMEM;
    *r = (struct amf_roles){.amf = a, .ha = ha, .sg = sg, .store = st, .refs = 1};
    if (st && (key_name(r->key, prefix, KEY_CDB_ALONE, sg->name) < 0 ||
               snprintf(r->value, sizeof(r->value), "{\"node\":\"%s\"}", amf_node(a)) >= (int)sizeof(r->value))) {
        free(r);
        return -ENAMETOOLONG;
    }
    int e = amf_observe(a, &observer, r);
    if (e < 0) {
        free(r);
        return e;
    }
    uv_timer_init(loop, &r->timer);
    r->timer.data = r;
    log_info("The CDB roles follow service group '%s'", sg->name);
    e = ha_set_driven(ha, sg->name, token, on_ha_changed, r);
    if (e < 0) {
        amf_roles_free(r);
        return e;
    }
    *ret = r;
    return 0;
}

static void on_closed(uv_handle_t *h) {
    roles_unref(h->data);
}

struct amf_roles *amf_roles_free(struct amf_roles *r) {
    if (!r)
        return NULL;
    amf_unobserve(r->amf, &observer, r);
    uv_close((uv_handle_t *)&r->timer, on_closed);
    return NULL;
}

const char *amf_roles_sg(const struct amf_roles *r) {
    return r ? r->sg->name : NULL;
}

const char *amf_roles_writer(const struct amf_roles *r) {
    struct si *si = r ? first_si(r->sg) : NULL;
    if (!si)
        return NULL;
    struct assignment *act = live_target(si, HALO_HA_ACTIVE);
    return act ? act->su->cfg->node : NULL;
}
