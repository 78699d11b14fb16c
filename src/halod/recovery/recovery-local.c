/* SPDX-License-Identifier: MIT */
/*
 * The recovery of this node's pool processes (seed 003; docs/recovery.md):
 * only the halod local to a restarted process drives it.
 *
 *   IDLE --process fails--> FAILED --entrypoint request--> TRANSIENT (the
 *   vector sent, TRANSIENT reported) --STARTING--> RECOVERING (reported)
 *   --RECOVERED--> IDLE (ONLINE reported; the coordinator opens the next epoch)
 *
 * RECOVERING stays RECOVERING when the process dies (its next start recovers
 * again); RECOVERY_FAILED goes back to TRANSIENT and waits for the next
 * STARTING.  The entrypoint request of a process with a FAILED device, or
 * of a pool with more failures than it tolerates, is REFUSED (the reason is
 * in haloctl status; the next entrypoint request asks again).  Each state is
 * written to P recovery/<process> before it is reported, so a new halod (or
 * a restarted process) carries on from it.
 */
#define LOG_AREA LOG_AREA_AMF
#include <errno.h>
#include <inttypes.h>
#include <jansson.h>
#include <stdlib.h>
#include <string.h>

#include "amf-internal.h"
#include "failvec.h"
#include "log.h"
#include "macro.h"
#include "queue.h"
#include "recovery-model.h"
#include "strprintf.h"

enum rl_state { RL_IDLE, RL_FAILED, RL_TRANSIENT, RL_RECOVERING, RL_REFUSED, _RL_MAX };

static const char *const rl_names[_RL_MAX] = {
    [RL_IDLE] = "idle",       [RL_FAILED] = "failed", [RL_TRANSIENT] = "transient", [RL_RECOVERING] = "recovering",
    [RL_REFUSED] = "refused",
};

struct rl {
    struct comp *c;
    const struct rm_process *p;
    char *key; /* P recovery/<process> */
    enum rl_state state;
    int64_t epoch;
    char *reason;
    bool loaded, entrypoint_waiting, reading;
    bool online_waiting; /* registered before its state was read: ONLINE, if idle, once it is */
    unsigned gen;        /* bumped when a vector read goes stale */
};

struct recovery {
    struct amf *a;
    struct rl *rls;
    size_t n;
    bool closed;
    unsigned refs;
};

static void rec_unref(struct recovery *r) {
    if (--r->refs > 0)
        return;
    for (size_t i = 0; i < r->n; i++) {
        free(r->rls[i].key);
        free(r->rls[i].reason);
    }
    free(r->rls);
    free(r);
}

static struct rl *rl_of(struct amf *a, const struct comp *c) {
    struct recovery *r = a->recovery;
    for (size_t i = 0; r && i < r->n; i++)
        if (r->rls[i].c == c)
            return &r->rls[i];
    return NULL;
}

static int published(struct amf *a, const char *object) {
    return amf_events_state(a, object);
}

/* ---- persistence ---- */

static void on_saved(store *s, int error, const store_result *res, void *userdata) {
    struct recovery *r = userdata;
    if (error < 0 && error != -ECANCELED && !r->closed)
        log_warning_errno(error, "Failed to write a recovery state: %m");
    rec_unref(r);
}

static void rl_set(struct amf *a, struct rl *rl, enum rl_state st, const char *reason) {
    struct recovery *r = a->recovery;
    if (rl->state != st)
        log_info("Recovery of '%s': %s -> %s%s%s", rl->c->name, rl_names[rl->state], rl_names[st], reason ? ": " : "",
                 reason ? reason : "");
    rl->state = st;
    free(rl->reason);
    rl->reason = reason ? strdup(reason) : NULL;
    json_t *j = json_pack("{s:s, s:I}", "state", rl_names[st], "epoch", (json_int_t)rl->epoch);
    if (j && reason)
        json_object_set_new(j, "reason", json_string(reason));
    char *text = j ? json_dumps(j, JSON_COMPACT | JSON_SORT_KEYS) : NULL;
    json_decref(j);
    if (!text) {
        log_warning("Out of memory writing the recovery state of '%s'", rl->c->name);
        return;
    }
    r->refs++;
    int e = store_put(a->store, rl->key, text, strlen(text), 0, on_saved, r);
    if (e < 0) {
        r->refs--;
        log_warning_errno(e, "Failed to write the recovery state of '%s': %m", rl->c->name);
    }
    free(text);
}

static void report(struct amf *a, struct rl *rl, const char *state) {
    amf_event_epoch(a, "process", rl->c->name, state, rl->reason, rl->epoch);
}

/* ---- the vector, sent in parts ---- */

static void send_note(struct rl *rl, const char *state, const char *reason, Halo__Link__ObjectState **evs, size_t n,
                      bool last, uint64_t total) {
    if (!rl->c->conn)
        return;
    Halo__Link__RecoveryNote note = HALO__LINK__RECOVERY_NOTE__INIT;
    LinkMsg m = HALO__LINK__MSG__INIT;
    m.body_case = HALO__LINK__MSG__BODY_RECOVERY_NOTE;
    m.recovery_note = &note;
    note.epoch = rl->epoch < 0 ? 0 : (uint64_t)rl->epoch;
    note.state = (char *)state;
    note.reason = (char *)(reason ? reason : "");
    note.events = evs;
    note.n_events = n;
    note.last = last;
    note.nr_failures = total;
    (void)server_conn_send(rl->c->conn, &m);
}

struct read_call {
    struct recovery *r;
    size_t idx;
    unsigned gen;
    int step; /* 0: the epoch; 1: the vector */
};

static void read_vector(struct amf *a, struct rl *rl, int step);

static bool is_count(const store_kv *kv) {
    static const char suffix[] = "/nr_failures";
    size_t n = sizeof(suffix) - 1;
    return kv->key_len >= n && memcmp(kv->key + kv->key_len - n, suffix, n) == 0;
}

static void vector_send(struct rl *rl, const store_result *res) {
    /* The chunks in key order (seq, 20 digits); each a JSON array of published events. */
    Halo__Link__ObjectState st[LINK_OBJECTS_MAX], *pst[LINK_OBJECTS_MAX];
    char objects[LINK_OBJECTS_MAX][QUEUE_OBJECT_MAX], states[LINK_OBJECTS_MAX][17];
    /* The vector's length, written with its keys (the range has it: "nr_failures" sorts after the digits). */
    uint64_t total = 0;
    for (size_t i = 0; i < res->n_kvs; i++)
        if (is_count(&res->kvs[i])) {
            char buf[24] = "";
            memcpy(buf, res->kvs[i].value, MIN(res->kvs[i].value_len, sizeof(buf) - 1));
            total = strtoull(buf, NULL, 10);
        }
    size_t n = 0;
    for (size_t i = 0; i < res->n_kvs; i++) {
        const store_kv *kv = &res->kvs[i];
        if (is_count(kv))
            continue;
        json_t *arr = json_loadb(kv->value, kv->value_len, 0, NULL);
        size_t k;
        json_t *ev;
        json_array_foreach(arr, k, ev) {
            struct queue_event qe;
            if (queue_event_from_json(ev, &qe) < 0)
                continue;
            halo__link__object_state__init(&st[n]);
            (void)queue_event_object(&qe, objects[n]);
            snprintf(states[n], sizeof(states[n]), "%s", queue_ha_state_to_string(qe.state));
            st[n].object = objects[n];
            st[n].state = states[n];
            st[n].hlc = qe.hlc;
            json_t *s = json_object_get(ev, "seq");
            st[n].seq = json_is_integer(s) ? (uint64_t)json_integer_value(s) : 0;
            pst[n] = &st[n];
            if (++n == LINK_OBJECTS_MAX) {
                send_note(rl, "recover", NULL, pst, n, false, total);
                n = 0;
            }
        }
        json_decref(arr);
    }
    send_note(rl, "recover", NULL, pst, n, true, total);
}

static void on_read(store *s, int error, const store_result *res, void *userdata) {
    struct read_call *k = userdata;
    struct recovery *r = k->r;
    struct rl *rl = r->closed ? NULL : &r->rls[k->idx];
    if (!rl || k->gen != rl->gen)
        goto out;
    rl->reading = false;
    if (error < 0) {
        log_warning_errno(error, "Failed to read the failure vector of '%s': %m", rl->c->name);
        if (error != -ECANCELED)
            rl->entrypoint_waiting = true; /* the next entrypoint request tries again */
        goto out;
    }
    if (k->step == 0) {
        int64_t e = 0;
        if (res->n_kvs > 0) {
            char buf[24];
            size_t len = MIN(res->kvs[0].value_len, sizeof(buf) - 1);
            memcpy(buf, res->kvs[0].value, len);
            buf[len] = 0;
            e = strtoll(buf, NULL, 10);
        }
        rl->epoch = e < 0 ? 0 : e;
        read_vector(r->a, rl, 1);
        goto out;
    }
    /* The vector is read: the process gets it, then the cluster is told TRANSIENT. */
    vector_send(rl, res);
    rl_set(r->a, rl, RL_TRANSIENT, NULL);
    report(r->a, rl, "TRANSIENT");
out:
    free(k);
    rec_unref(r);
}

static void read_vector(struct amf *a, struct rl *rl, int step) {
    struct recovery *r = a->recovery;
    struct read_call *k = calloc(1, sizeof(*k));
    char *key = NULL;
    if (k) {
        key = step == 0 ? failvec_epoch_key(a->prefix, rl->p->object)
                        : failvec_prefix(a->prefix, rl->p->object, rl->epoch);
        char *under = key && step == 1 ? strprintf("%s/", key) : NULL;
        if (step == 1) {
            free(key);
            key = under;
        }
    }
    if (!k || !key) {
        free(k);
        log_warning("Out of memory reading the failure vector of '%s'", rl->c->name);
        return;
    }
    *k = (struct read_call){.r = r, .idx = (size_t)(rl - r->rls), .gen = rl->gen, .step = step};
    r->refs++;
    rl->reading = true;
    int e = step == 0 ? store_get(a->store, key, on_read, k) : store_range(a->store, key, on_read, k);
    free(key);
    if (e < 0) {
        r->refs--;
        rl->reading = false;
        free(k);
        log_warning_errno(e, "Failed to read the failure vector of '%s': %m", rl->c->name);
    }
}

/* ---- transient or permanent, tolerated or not ---- */

static bool device_failed(int st) {
    return st == QUEUE_HA_FAILED || st == QUEUE_HA_REPAIR || st == QUEUE_HA_REPAIRED || st == QUEUE_HA_REBALANCE;
}

/* NULL if the recovery may start, else why not (malloc'ed). */
static char *refusal(struct amf *a, struct rl *rl) {
    const struct rm_process *p = rl->p;
    char obj[QUEUE_OBJECT_MAX + QUEUE_NAME_MAX + 2];
    const char *part = p->object + strlen("process:");
    for (size_t i = 0; i < p->cc->n_devices; i++) {
        snprintf(obj, sizeof(obj), "device:%s:%s", part, p->cc->devices[i]);
        int st = published(a, obj);
        if (device_failed(st))
            return strprintf("%s is %s: not a transient failure; it recovers once the device is repaired", obj,
                             queue_ha_state_to_string((enum queue_ha_state)st));
    }
    const struct rm_process *members[CONFIG_POOL_PROCESSES_MAX];
    size_t n = MIN(rm_pool_members(amf_events_model(a), p->pool, members, ELEMENTSOF(members)), ELEMENTSOF(members));
    unsigned failures = 0;
    char list[512] = "";
    for (size_t i = 0; i < n; i++) {
        if (members[i] == p)
            continue;
        int st = published(a, members[i]->object);
        bool bad = st != QUEUE_HA_ONLINE;
        const char *mpart = members[i]->object + strlen("process:");
        for (size_t d = 0; !bad && d < members[i]->cc->n_devices; d++) {
            snprintf(obj, sizeof(obj), "device:%s:%s", mpart, members[i]->cc->devices[d]);
            bad = device_failed(published(a, obj));
        }
        if (bad) {
            failures++;
            size_t len = strlen(list);
            snprintf(list + len, sizeof(list) - len, "%s%s %s", len ? ", " : "", members[i]->name,
                     st >= 0 ? queue_ha_state_to_string((enum queue_ha_state)st) : "unknown");
        }
    }
    if (failures > p->pool->tolerate)
        return strprintf("%u failures in pool '%s' (%s), which tolerates %u", failures, p->pool->name, list,
                         p->pool->tolerate);
    return NULL;
}

static void begin(struct amf *a, struct rl *rl) {
    rl->entrypoint_waiting = false;
    char *why = refusal(a, rl);
    if (why) {
        rl_set(a, rl, RL_REFUSED, why);
        send_note(rl, "refused", why, NULL, 0, true, 0);
        free(why);
        return;
    }
    if (!rl->reading) {
        rl->gen++;
        read_vector(a, rl, 0);
    }
}

/* ---- the AMF's calls ---- */

static void on_loaded(store *s, int error, const store_result *res, void *userdata) {
    struct read_call *k = userdata;
    struct recovery *r = k->r;
    if (r->closed)
        goto out;
    for (size_t i = 0; error >= 0 && i < res->n_kvs; i++) {
        const store_kv *kv = &res->kvs[i];
        for (size_t j = 0; j < r->n; j++) {
            struct rl *rl = &r->rls[j];
            if (kv->key_len != strlen(rl->key) || memcmp(kv->key, rl->key, kv->key_len) != 0)
                continue;
            json_t *jv = json_loadb(kv->value, kv->value_len, 0, NULL);
            const char *st = json_string_value(json_object_get(jv, "state"));
            for (int x = 0; st && x < _RL_MAX; x++)
                if (streq(st, rl_names[x]))
                    rl->state = (enum rl_state)x;
            json_t *ep = json_object_get(jv, "epoch");
            rl->epoch = json_is_integer(ep) ? json_integer_value(ep) : -1;
            const char *why = json_string_value(json_object_get(jv, "reason"));
            free(rl->reason);
            rl->reason = why ? strdup(why) : NULL;
            json_decref(jv);
            if (rl->state != RL_IDLE)
                log_info("Recovery of '%s' carries on: %s (epoch %" PRId64 ")", rl->c->name, rl_names[rl->state],
                         rl->epoch);
        }
    }
    if (error < 0 && error != -ECANCELED)
        log_warning_errno(error, "Failed to read the recovery states: %m");
    for (size_t j = 0; j < r->n; j++) {
        struct rl *rl = &r->rls[j];
        rl->loaded = true;
        if (rl->online_waiting && rl->c->conn) {
            rl->online_waiting = false;
            if (!amf_recovery_registered(r->a, rl->c))
                amf_event(r->a, "process", rl->c->name, "ONLINE", NULL);
        }
        if (rl->entrypoint_waiting)
            amf_recovery_entrypoint(r->a, rl->c);
    }
out:
    free(k);
    rec_unref(r);
}

int amf_recovery_start(struct amf *a) {
    const struct recovery_model *m = amf_events_model(a);
    if (!m || a->config->n_pools == 0)
        return 0;
    struct recovery *r = calloc(1, sizeof(*r));
    if (!r)
        return -ENOMEM;
    r->a = a;
    r->refs = 1;
    r->rls = calloc(rm_n_processes(m) ? rm_n_processes(m) : 1, sizeof(*r->rls));
    if (!r->rls) {
        rec_unref(r);
        return -ENOMEM;
    }
    a->recovery = r;
    for (size_t g = 0; g < a->n_sgs; g++)
        for (size_t u = 0; u < a->sgs[g].n_sus; u++) {
            struct su *su = &a->sgs[g].sus[u];
            for (size_t i = 0; su->local && i < su->n_comps; i++) {
                const struct rm_process *p = rm_component(m, su->comps[i].name);
                if (!p || !p->pool)
                    continue;
                struct rl *rl = &r->rls[r->n++];
                *rl = (struct rl){.c = &su->comps[i], .p = p, .epoch = -1};
                rl->key = strprintf("%srecovery/%s", a->prefix, p->object);
                if (!rl->key)
                    return -ENOMEM;
            }
        }
    if (r->n == 0)
        return 0;
    struct read_call *k = calloc(1, sizeof(*k));
    char *prefix = strprintf("%srecovery/", a->prefix);
    if (!k || !prefix) {
        free(k);
        free(prefix);
        return -ENOMEM;
    }
    k->r = r;
    r->refs++;
    int e = store_range(a->store, prefix, on_loaded, k);
    free(prefix);
    if (e < 0) {
        r->refs--;
        free(k);
        return e;
    }
    return 0;
}

void amf_recovery_close(struct amf *a) {
    struct recovery *r = a->recovery;
    if (!r)
        return;
    a->recovery = NULL;
    r->closed = true;
    rec_unref(r);
}

bool amf_recovery_registered(struct amf *a, struct comp *c) {
    struct rl *rl = rl_of(a, c);
    if (!rl)
        return false;
    if (!rl->loaded) {
        rl->online_waiting = true; /* decided once its recovery state is read */
        return true;
    }
    if (rl->state == RL_IDLE) {
        int st = published(a, rl->p->object);
        if (st < 0 || st == QUEUE_HA_ONLINE || st == QUEUE_HA_OFFLINE)
            return false;      /* a first start, or a halod restart: ONLINE as usual */
        rl->state = RL_FAILED; /* it failed while nobody here knew */
    }
    log_info("'%s' started again: it recovers once it asks for its entrypoint", c->name);
    return true;
}

void amf_recovery_failed(struct amf *a, struct comp *c) {
    struct rl *rl = rl_of(a, c);
    if (!rl || rl->state == RL_RECOVERING || rl->state == RL_FAILED)
        return; /* RECOVERING stays: its next start recovers again */
    rl->gen++;  /* a vector being read is for a process that is gone */
    rl->reading = false;
    rl_set(a, rl, RL_FAILED, NULL);
}

bool amf_recovery_entrypoint(struct amf *a, struct comp *c) {
    struct rl *rl = rl_of(a, c);
    if (!rl)
        return false;
    if (!rl->loaded) {
        rl->entrypoint_waiting = true;
        return true;
    }
    if (rl->state == RL_IDLE) {
        /* Registered before this halod knew its published state (just started): ask it now. */
        int st = published(a, rl->p->object);
        if (st != QUEUE_HA_FAILED && st != QUEUE_HA_TRANSIENT && st != QUEUE_HA_RECOVERING)
            return false;
        rl->state = RL_FAILED;
    }
    begin(a, rl);
    return true;
}

int amf_recovery_event(struct amf *a, struct comp *c, int event, const char *reason) {
    struct rl *rl = rl_of(a, c);
    if (!rl)
        return event == HALO__LINK__PROCESS_EVENT__EVENT__STARTED ||
                       event == HALO__LINK__PROCESS_EVENT__EVENT__STARTING ||
                       event == HALO__LINK__PROCESS_EVENT__EVENT__STOPPING ||
                       event == HALO__LINK__PROCESS_EVENT__EVENT__STOPPED
                   ? 0
                   : -HALO_EBADSTATE; /* not a pool process: nothing to recover */
    switch (event) {
    case HALO__LINK__PROCESS_EVENT__EVENT__STARTING:
        if (rl->state == RL_IDLE || rl->state == RL_RECOVERING)
            return 0;
        if (rl->state != RL_TRANSIENT)
            return -HALO_EBADSTATE; /* ask for the entrypoint first (or refused: see status) */
        rl_set(a, rl, RL_RECOVERING, NULL);
        report(a, rl, "RECOVERING");
        return 0;
    case HALO__LINK__PROCESS_EVENT__EVENT__STARTED:
    case HALO__LINK__PROCESS_EVENT__EVENT__RECOVERED:
        if (rl->state == RL_IDLE)
            return 0;
        if (rl->state != RL_RECOVERING)
            return -HALO_EBADSTATE;
        report(a, rl, "ONLINE");
        rl->epoch++; /* the ONLINE opens the next epoch */
        rl_set(a, rl, RL_IDLE, NULL);
        return 0;
    case HALO__LINK__PROCESS_EVENT__EVENT__RECOVERY_FAILED:
        if (rl->state != RL_RECOVERING)
            return -HALO_EBADSTATE;
        rl_set(a, rl, RL_TRANSIENT, reason && *reason ? reason : "the recovery failed");
        report(a, rl, "TRANSIENT");
        return 0;
    default: /* STOPPING, STOPPED: its exit tells the rest */
        return 0;
    }
}

void amf_recovery_status(struct amf *a, const struct comp *c, json_t *obj) {
    struct rl *rl = rl_of(a, c);
    if (!rl)
        return;
    json_t *j = json_pack("{s:s, s:s, s:I}", "pool", rl->p->pool->name, "state", rl_names[rl->state], "epoch",
                          (json_int_t)rl->epoch);
    if (j && rl->reason)
        json_object_set_new(j, "reason", json_string(rl->reason));
    if (j)
        json_object_set_new(obj, "recovery", j);
}
