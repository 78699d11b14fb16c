/* SPDX-License-Identifier: MIT */
/*
 * The recovery of this node's pool processes (seed 003; docs/recovery.md):
 * only the halod local to a restarted process drives it.
 *
 *   IDLE --process fails--> FAILED --entrypoint request--> TRANSIENT (the
 *   vector sent, TRANSIENT reported) --STARTING--> RECOVERING (reported)
 *   --RECOVERED--> IDLE (ONLINE reported; the coordinator opens the next epoch)
 *
 * In a pool with `participants: report`, RECOVERED goes to WAITING until
 * every participant still ONLINE has reported serving the attempt
 * (recovery-dtm.h).  RECOVERING (and WAITING) stays so when the process dies
 * (its next start recovers again); RECOVERY_FAILED goes back to TRANSIENT
 * and waits for the next STARTING, and so does an attempt aborted by a
 * failed device of its own or failures in its pool past its limit.  The
 * entrypoint request of a process with a FAILED device, or of a pool with
 * more failures than it tolerates, is REFUSED (the reason is in haloctl
 * status; the next entrypoint request asks again).  Each state is written to
 * P recovery/<process> before it is reported, so a new halod (or a restarted
 * process) carries on from it.  A store read that fails (the vector, or the
 * recovery states at the start) is no refusal: it is tried again after
 * 100 ms, doubling to 2 s, until it succeeds or the process goes.
 */
#define LOG_AREA LOG_AREA_AMF
#include <errno.h>
#include <inttypes.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "recovery-local.h"

#include "recovery-dtm.h"

#include "keys.h"
#include "link-pack.h"
#include "log.h"
#include "macro.h"
#include "parse-util.h"
#include "server.h"
#include "strprintf.h"
#include "string-table.h"

/* A failed store read is tried again after this long, doubled each time up to the most. */
#define RETRY_FIRST_MSEC 100
#define RETRY_MAX_MSEC 2000

/* The backoff of a read that failed; the timer is set up when first needed. */
struct retry {
    uv_timer_t timer; /* data: the struct recovery_local */
    bool inited;
    unsigned msec; /* the last delay; 0: no failure since the last success */
};

enum rl_state { RL_IDLE, RL_FAILED, RL_TRANSIENT, RL_RECOVERING, RL_REFUSED, RL_WAITING, _RL_MAX };

static const char *const rl_state_table[_RL_MAX] = {
    [RL_IDLE] = "idle",       [RL_FAILED] = "failed",   [RL_TRANSIENT] = "transient", [RL_RECOVERING] = "recovering",
    [RL_REFUSED] = "refused", [RL_WAITING] = "waiting",
};
DEFINE_PRIVATE_STRING_TABLE_LOOKUP(rl_state, enum rl_state);

struct rl {
    struct comp *c;
    const struct rm_process *p;
    char *key; /* P recovery/<process> */
    enum rl_state state;
    int64_t epoch;
    char *reason;
    bool loaded, entrypoint_waiting, reading;
    bool online_waiting;   /* registered before its state was read: ONLINE, if idle, once it is */
    bool force;            /* haloctl recover --force: the next recovery skips the pool's tolerance */
    unsigned gen;          /* bumped when a vector read goes stale */
    struct retry retry;    /* the vector's read failed: tried again */
    struct dtm_list parts; /* the recovery's participants */
    unsigned limit;        /* the failures among the others an attempt may not pass */
    unsigned attempts;     /* attempts started here (the RECOVERING's reason); 0: unknown (a new halod) */
    uint64_t attempt;      /* the seq of the attempt's published RECOVERING; 0 until seen */
    uint64_t down_seq;     /* the seq of the published state with which it left ONLINE; 0: ONLINE, or not known */
    bool online_unseen;    /* its recovery's ONLINE was reported and has not been seen published */
    bool transient_seen;   /* the TRANSIENT this node reported last has been seen published */
};

struct recovery_local {
    uv_loop_t *loop;
    struct amf *amf;
    store *store;
    char *prefix;
    struct queue *q;
    struct queue_reporter *reporter;
    const struct recovery_model *model;
    struct dtm *dtm;
    struct rl *rls;
    size_t n;
    struct retry load_retry; /* the first read of the recovery states failed: tried again */
    bool closed;
    unsigned refs; /* the owner, store calls in flight, retry timers not yet closed */
};

static void rec_unref(struct recovery_local *r) {
    if (--r->refs > 0)
        return;
    for (size_t i = 0; i < r->n; i++) {
        free(r->rls[i].key);
        free(r->rls[i].reason);
    }
    free(r->rls);
    free(r->prefix);
    dtm_free(r->dtm);
    free(r);
}

/* ---- a failed read, tried again ---- */

static void on_retry_closed(uv_handle_t *h) {
    rec_unref(h->data);
}

/* Arms t for the next try (cb) after the next delay of its backoff; returns the delay in ms, 0 if it cannot. */
static unsigned retry_arm(struct recovery_local *r, struct retry *t, uv_timer_cb cb) {
    if (!t->inited) {
        int e = uv_timer_init(r->loop, &t->timer);
        if (e < 0) {
            log_warning("Failed to set up a timer to read the store again: %s", uv_strerror(e));
            return 0;
        }
        t->inited = true;
        t->timer.data = r;
        r->refs++; /* until the timer is closed */
    }
    t->msec = t->msec ? MIN(t->msec * 2, RETRY_MAX_MSEC) : RETRY_FIRST_MSEC;
    (void)uv_timer_start(&t->timer, cb, t->msec, 0);
    return t->msec;
}

/* The read succeeded, or is no longer wanted: the next failure waits the first delay again. */
static void retry_reset(struct retry *t) {
    t->msec = 0;
    if (t->inited)
        (void)uv_timer_stop(&t->timer);
}

static void retry_close(struct retry *t) {
    if (t->inited)
        uv_close((uv_handle_t *)&t->timer, on_retry_closed);
    t->inited = false;
}

static struct rl *rl_of(struct recovery_local *r, const struct comp *c) {
    for (size_t i = 0; r && i < r->n; i++)
        if (r->rls[i].c == c)
            return &r->rls[i];
    return NULL;
}

static int published(struct recovery_local *r, const char *object) {
    return queue_state_get(r->q, object);
}

/* ---- persistence ---- */

static void on_saved(store *s, int error, const store_result *res, void *userdata) {
    struct recovery_local *r = userdata;
    if (error < 0 && error != -ECANCELED && !r->closed)
        log_warning_errno(error, "Failed to write a recovery state: %m");
    rec_unref(r);
}

static void rl_set(struct recovery_local *r, struct rl *rl, enum rl_state st, const char *reason) {
    if (rl->state != st)
        log_info("Recovery of '%s': %s -> %s%s%s", rl->c->name, rl_state_to_string(rl->state), rl_state_to_string(st),
                 reason ? ": " : "", reason ? reason : "");
    rl->state = st;
    free(rl->reason);
    rl->reason = reason ? strdup(reason) : NULL;
    json_t *j = json_pack("{s:s, s:I}", "state", rl_state_to_string(st), "epoch", (json_int_t)rl->epoch);
    if (j && reason)
        json_object_set_new(j, "reason", json_string(reason));
    if (j && st != RL_IDLE && rl->down_seq)
        json_object_set_new(j, "down", json_integer((json_int_t)rl->down_seq));
    if (j && st != RL_IDLE && rl->limit > rl->p->pool->tolerate)
        json_object_set_new(j, "limit", json_integer(rl->limit));
    if (j && st != RL_IDLE && rl->p->pool->report) {
        json_t *a = json_array();
        for (size_t i = 0; a && i < rl->parts.n; i++)
            json_array_append_new(a, json_string(rl->parts.parts[i].p->name));
        json_object_set_new(j, "participants", a);
    }
    char *text = j ? json_dumps(j, JSON_COMPACT | JSON_SORT_KEYS) : NULL;
    json_decref(j);
    if (!text) {
        log_warning("Out of memory writing the recovery state of '%s'", rl->c->name);
        return;
    }
    r->refs++;
    int e = store_put(r->store, rl->key, text, strlen(text), 0, on_saved, r);
    if (e < 0) {
        r->refs--;
        log_warning_errno(e, "Failed to write the recovery state of '%s': %m", rl->c->name);
    }
    free(text);
}

/* The process's current epoch as this node knows it: its recovery's, or the
 * one its published state carries if that is later (a first start opened
 * epoch 0 without a recovery here). */
static int64_t current_epoch(struct recovery_local *r, const struct rl *rl) {
    struct queue_state st;
    int64_t e = rl->epoch;
    if (queue_state_of(r->q, rl->p->object, &st) == 0 && st.epoch > e)
        e = st.epoch;
    return e < 0 ? QUEUE_EPOCH_NONE : e;
}

static void report(struct recovery_local *r, struct rl *rl, enum queue_ha_state state) {
    if (state == QUEUE_HA_TRANSIENT)
        rl->transient_seen = false;
    queue_report(r->reporter, QUEUE_KIND_PROCESS, rl->c->name, state, rl->reason, rl->epoch);
}

/* ---- the vector, sent in parts ---- */

static void send_note(struct rl *rl, const char *state, const char *reason, const struct link_object_state *evs,
                      size_t n, bool last, uint64_t total) {
    if (!rl->c->conn)
        return;
    /* The last part of a vector lists the participants. */
    struct link_participant parts[CONFIG_POOL_PROCESSES_MAX];
    size_t n_parts = 0;
    for (size_t i = 0; last && streq(state, "recover") && i < rl->parts.n; i++) {
        const struct rm_process *p = rl->parts.parts[i].p;
        parts[n_parts++] = (struct link_participant){
            .object = p->object, .name = p->name, .node = p->node, .state = queue_ha_state_to_string(QUEUE_HA_ONLINE)};
    }
    struct link_recovery_note note = {
        .participants = parts,
        .n_participants = n_parts,
        .epoch = rl->epoch < 0 ? 0 : (uint64_t)rl->epoch,
        .state = state,
        .reason = reason,
        .events = evs,
        .n_events = n,
        .last = last,
        .nr_failures = total,
    };
    uint8_t buf[LINK_MSG_MAX];
    int len = link_pack_recovery_note(&note, buf, sizeof(buf));
    if (len < 0)
        log_warning_errno(len, "Failed to encode a recovery note for '%s': %m", rl->c->name);
    else
        (void)server_conn_send_packed(rl->c->conn, buf, (size_t)len);
}

struct read_call {
    struct recovery_local *r;
    size_t idx;
    unsigned gen;
    int step; /* 0: the epoch; 1: the vector */
};

static void read_vector(struct recovery_local *r, struct rl *rl, int step);
static void begin(struct recovery_local *r, struct rl *rl);

static void on_read_retry(uv_timer_t *t) {
    struct recovery_local *r = t->data;
    struct rl *rl = (struct rl *)((char *)t - offsetof(struct rl, retry.timer));
    if (!r->closed && rl->c->conn && rl->state != RL_IDLE)
        begin(r, rl); /* the checks again (time has passed), then the read */
}

/* A read of the process's epoch or vector failed: not a refusal (nothing
 * was checked and found wanting); the recovery waits and tries again. */
static void read_failed(struct recovery_local *r, struct rl *rl, int error) {
    unsigned msec = retry_arm(r, &rl->retry, on_read_retry);
    log_warning_errno(error, "Failed to read the failure vector of '%s' (%m): store read failed, retrying in %u ms",
                      rl->c->name, msec);
    _cleanup_free_ char *why = strprintf("store read failed, retrying: %s", strerror(-error));
    /* Said once (a state written as it changes), not at every try. */
    enum rl_state st = rl->state == RL_REFUSED ? RL_FAILED : rl->state;
    if (why && (st != rl->state || !rl->reason || !streq(rl->reason, why)))
        rl_set(r, rl, st, why);
}

static bool is_count(const store_kv *kv) {
    return key_failvec_is_count(kv->key, kv->key_len);
}

static void vector_send(struct rl *rl, const store_result *res) {
    /* The chunks in key order (seq, 20 digits); each a JSON array of published events. */
    struct link_object_state st[LINK_OBJECTS_MAX];
    char objects[LINK_OBJECTS_MAX][QUEUE_OBJECT_MAX];
    /* The vector's length, written with its keys (the range has it: "nr_failures" sorts after the digits). */
    uint64_t total = 0;
    for (size_t i = 0; i < res->n_kvs; i++)
        if (is_count(&res->kvs[i]) && parse_u64_n(res->kvs[i].value, res->kvs[i].value_len, &total) < 0)
            total = 0;
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
            (void)queue_event_object(&qe, objects[n]);
            json_t *s = json_object_get(ev, "seq");
            st[n] = (struct link_object_state){.object = objects[n],
                                               .state = queue_ha_state_to_string(qe.state),
                                               .hlc = qe.hlc,
                                               .seq = json_is_integer(s) ? (uint64_t)json_integer_value(s) : 0};
            if (++n == LINK_OBJECTS_MAX) {
                send_note(rl, "recover", NULL, st, n, false, total);
                n = 0;
            }
        }
        json_decref(arr);
    }
    send_note(rl, "recover", NULL, st, n, true, total);
}

static void on_read(store *s, int error, const store_result *res, void *userdata) {
    struct read_call *k = userdata;
    struct recovery_local *r = k->r;
    struct rl *rl = r->closed ? NULL : &r->rls[k->idx];
    if (!rl || k->gen != rl->gen)
        goto out;
    rl->reading = false;
    if (error < 0) {
        if (error != -ECANCELED)
            read_failed(r, rl, error);
        goto out;
    }
    if (k->step == 0) {
        int64_t e = 0;
        if (res->n_kvs > 0 && parse_i64_n(res->kvs[0].value, res->kvs[0].value_len, &e) < 0)
            e = 0;
        rl->epoch = e < 0 ? 0 : e;
        read_vector(r, rl, 1);
        goto out;
    }
    /* The vector is read: the process gets it with its participants, then the cluster is told TRANSIENT. */
    retry_reset(&rl->retry);
    dtm_list_live(&rl->parts, r->q, r->model, rl->p);
    rl->attempt = 0;
    vector_send(rl, res);
    rl_set(r, rl, RL_TRANSIENT, NULL);
    report(r, rl, QUEUE_HA_TRANSIENT);
out:
    free(k);
    rec_unref(r);
}

/* Step 0 reads the process's current epoch, step 1 that epoch's vector. */
static void read_vector(struct recovery_local *r, struct rl *rl, int step) {
    char key[STORE_KEY_MAX];
    int n = step == 0 ? key_current_epoch(key, r->prefix, rl->p->object)
                      : key_failvec_chunks(key, r->prefix, rl->p->object, rl->epoch);
    struct read_call *k = n >= 0 ? calloc(1, sizeof(*k)) : NULL;
    if (!k) {
        log_warning("Out of memory reading the failure vector of '%s'", rl->c->name);
        return;
    }
    *k = (struct read_call){.r = r, .idx = (size_t)(rl - r->rls), .gen = rl->gen, .step = step};
    r->refs++;
    rl->reading = true;
    int e = step == 0 ? store_get(r->store, key, on_read, k) : store_range(r->store, key, on_read, k);
    if (e < 0) {
        r->refs--;
        rl->reading = false;
        free(k);
        read_failed(r, rl, e);
    }
}

/* ---- transient or permanent, tolerated or not ---- */

/* NULL if the recovery may start, else why not (malloc'ed).  Sets the limit
 * of its attempts: the pool's tolerance, or the failures it was let through
 * with beyond it. */
static char *refusal(struct recovery_local *r, struct rl *rl) {
    const struct rm_process *p = rl->p;
    char obj[QUEUE_OBJECT_MAX + QUEUE_NAME_MAX + 2], list[512];
    int st = dtm_device_failed(r->q, p, obj, sizeof(obj));
    if (st >= 0)
        return strprintf("%s is %s: not a transient failure; it recovers once the device is repaired", obj,
                         queue_ha_state_to_string((enum queue_ha_state)st));
    unsigned failures = dtm_failures(r->q, r->model, p, list, sizeof(list));
    if (failures <= p->pool->tolerate) {
        rl->limit = p->pool->tolerate;
        return NULL;
    }
    if (rl->force) {
        log_notice("'%s' recovers past the tolerance of pool '%s' (%u failures: %s): forced by the operator", p->name,
                   p->pool->name, failures, list);
        rl->limit = failures;
        return NULL;
    }
    if (dtm_newest_first(r->q, r->model, p, rl->down_seq)) {
        log_notice("'%s' recovers beyond the tolerance of pool '%s' (%u failures: %s): newest data first, and every "
                   "process that failed after it is back",
                   p->name, p->pool->name, failures, list);
        rl->limit = failures;
        return NULL;
    }
    if (failures > p->pool->tolerate)
        return strprintf("%u failures in pool '%s' (%s), which tolerates %u; it recovers once every process that "
                         "failed after it is ONLINE (newest data first)",
                         failures, p->pool->name, list, p->pool->tolerate);
    return NULL;
}

static void begin(struct recovery_local *r, struct rl *rl) {
    rl->entrypoint_waiting = false;
    if (rl->retry.inited)
        (void)uv_timer_stop(&rl->retry.timer); /* a try now; the backoff goes on if it fails too */
    char *why = refusal(r, rl);
    if (!why)
        rl->force = false; /* used: it recovers now */
    if (why) {
        rl_set(r, rl, RL_REFUSED, why);
        send_note(rl, "refused", why, NULL, 0, true, 0);
        free(why);
        return;
    }
    if (!rl->reading) {
        rl->gen++;
        read_vector(r, rl, 0);
    }
}

/* ---- the end of an attempt: complete, waiting, aborted ---- */

/* The reasons of a TRANSIENT after an abort (attempt_start() reads them back). */
#define ABORTED_PREFIX "the recovery was aborted: "
#define REFUSED_START_PREFIX "it may not start recovering: "

/* The seq of the published RECOVERING of the attempt in progress, 0 if not
 * known yet.  A new halod (attempts 0) takes the published one of its epoch. */
static uint64_t current_attempt(struct recovery_local *r, struct rl *rl) {
    struct queue_state st;
    if (rl->attempt == 0 && rl->attempts == 0 && queue_state_of(r->q, rl->p->object, &st) == 0 &&
        st.state == QUEUE_HA_RECOVERING && st.epoch == rl->epoch)
        rl->attempt = st.seq;
    return rl->attempt;
}

static void go_online(struct recovery_local *r, struct rl *rl) {
    free(rl->reason);
    rl->reason = NULL;
    report(r, rl, QUEUE_HA_ONLINE);
    rl->online_unseen = true;
    rl->epoch++; /* the ONLINE opens the next epoch */
    rl->parts.n = 0;
    rl->attempt = 0;
    rl_set(r, rl, RL_IDLE, NULL);
}

/* The process said RECOVERED (state WAITING): ONLINE once no participant is awaited. */
static void try_complete(struct recovery_local *r, struct rl *rl) {
    char names[512];
    size_t n = dtm_awaited(&rl->parts, r->q, current_attempt(r, rl), names, sizeof(names));
    if (n == 0) {
        go_online(r, rl);
        return;
    }
    _cleanup_free_ char *why = strprintf("waiting for %zu participant%s: %s", n, n == 1 ? "" : "s", names);
    if (why && (rl->state != RL_WAITING || !rl->reason || !streq(rl->reason, why)))
        rl_set(r, rl, RL_WAITING, why);
}

/* The attempt in progress is over: back to TRANSIENT; the process is told, and its next STARTING tries again. */
static void abort_attempt(struct recovery_local *r, struct rl *rl, const char *why) {
    _cleanup_free_ char *reason = strprintf(ABORTED_PREFIX "%s", why);
    if (!reason)
        return;
    log_notice("Recovery of '%s' aborted (epoch %" PRId64 "): %s", rl->c->name, rl->epoch, why);
    rl->attempt = 0;
    rl_set(r, rl, RL_TRANSIENT, reason);
    report(r, rl, QUEUE_HA_TRANSIENT);
    send_note(rl, "aborted", reason, NULL, 0, true, 0);
}

/* Something was published about a member of rl's pool (about: the process it
 * concerns) while rl recovers: abort, strike a participant, or complete. */
static void attempt_check(struct recovery_local *r, struct rl *rl, const struct rm_process *about) {
    if (rl->state != RL_RECOVERING && rl->state != RL_WAITING)
        return;
    _cleanup_free_ char *why = dtm_abort_reason(r->q, r->model, rl->p, rl->limit);
    struct dtm_part *pt = dtm_list_find(&rl->parts, about);
    if (pt && published(r, about->object) != QUEUE_HA_ONLINE && !pt->struck) {
        pt->struck = true;
        log_info("Recovery of '%s': participant '%s' is not ONLINE any more; no longer awaited%s", rl->c->name,
                 about->name, why ? "" : " (within the pool's tolerance: the recovery goes on)");
    }
    if (why)
        abort_attempt(r, rl, why);
    else if (rl->state == RL_WAITING)
        try_complete(r, rl);
}

/* A participant reported serving an attempt (completed/ in the store). */
static void on_completed(void *userdata, const struct rm_process *x, const struct rm_process *y, uint64_t attempt) {
    struct recovery_local *r = userdata;
    for (size_t i = 0; i < r->n; i++) {
        struct rl *rl = &r->rls[i];
        struct dtm_part *pt = rl->p == x ? dtm_list_find(&rl->parts, y) : NULL;
        if (!pt || pt->reported == attempt)
            continue;
        pt->reported = attempt;
        log_info("Recovery of '%s': participant '%s' reported attempt %llu%s", rl->c->name, y->name,
                 (unsigned long long)attempt, attempt == current_attempt(r, rl) ? "" : " (not the current one)");
        if (rl->state == RL_WAITING)
            try_complete(r, rl);
    }
}

/* ---- what the AMF tells ---- */

/* A pool process registered: true if it must recover before it is ONLINE. */
static bool must_recover(struct recovery_local *r, struct comp *c) {
    struct rl *rl = rl_of(r, c);
    if (!rl)
        return false;
    if (!rl->loaded) {
        rl->online_waiting = true; /* decided once its recovery state is read */
        return true;
    }
    if (rl->state == RL_IDLE) {
        int st = published(r, rl->p->object);
        if (st < 0 || st == QUEUE_HA_ONLINE || st == QUEUE_HA_OFFLINE)
            return false;      /* a first start, or a halod restart: ONLINE as usual */
        rl->state = RL_FAILED; /* it failed while nobody here knew */
    }
    if (c->adopted && (rl->state == RL_FAILED || rl->state == RL_REFUSED)) {
        /* It outlived the previous halod, and may have asked that one for its entrypoint already: it
         * will not ask again.  Told now, as a running process is when the cluster says it FAILED
         * (chaos seed 401: it stayed FAILED for good, and its pool past its tolerance). */
        log_info("'%s' was adopted and must recover: it is told now", c->name);
        begin(r, rl);
        return true;
    }
    log_info("'%s' started again: it recovers once it asks for its entrypoint", c->name);
    return true;
}

/* Its process ended. */
static void process_ended(struct recovery_local *r, struct comp *c) {
    struct rl *rl = rl_of(r, c);
    if (!rl)
        return;
    retry_reset(&rl->retry); /* no read to try again for a process that is gone */
    if (rl->state == RL_RECOVERING || rl->state == RL_WAITING || rl->state == RL_FAILED)
        return; /* RECOVERING (WAITING) stays: its next start recovers again */
    rl->gen++;  /* a vector being read is for a process that is gone */
    rl->reading = false;
    rl_set(r, rl, RL_FAILED, NULL);
}

static void on_comp_event(void *userdata, struct comp *c, enum amf_comp_event ev, const char *reason) {
    struct recovery_local *r = userdata;
    switch (ev) {
    case AMF_COMP_REGISTERED:
        if (!must_recover(r, c))
            queue_report(r->reporter, QUEUE_KIND_PROCESS, c->name, QUEUE_HA_ONLINE, NULL, QUEUE_EPOCH_NONE);
        break;
    case AMF_COMP_FAILED: {
        /* With the epoch it failed in: the coordinator refuses the report if
         * it arrives after the process has recovered (a later epoch). */
        struct rl *rl = rl_of(r, c);
        queue_report(r->reporter, QUEUE_KIND_PROCESS, c->name, QUEUE_HA_FAILED, reason,
                     rl ? current_epoch(r, rl) : QUEUE_EPOCH_NONE);
        break;
    }
    case AMF_COMP_EXITED:
        if (!amf_stopping(r->amf))
            process_ended(r, c);
        break;
    default:
        break;
    }
}

static const struct amf_observer observer = {
    .comp_event = on_comp_event,
};

/* ---- following the published states ---- */

/* A FAILED published for one of this node's pool processes that runs and
 * counts as recovered here, or is recovering (its node's lease ended, and the
 * coordinator failed its processes with it): the cluster's view wins, and the
 * process recovers again, as after a restart; an attempt under way is void
 * (its RECOVERING and ONLINE would be refused: they must follow a TRANSIENT,
 * chaos seed 404).  A FAILED of an earlier epoch than this node's is old news
 * (delivered late; the process recovered since). */
static void published_failed(struct recovery_local *r, struct rl *rl, const struct queue_event *ev) {
    if (!rl->loaded || !rl->c->conn || rl->reading ||
        (rl->state != RL_IDLE && rl->state != RL_TRANSIENT && rl->state != RL_RECOVERING && rl->state != RL_WAITING))
        return; /* not running, failed or refused already, or decided when its state is read */
    /* Old news, unless it is of the epoch this node's ONLINE closed, after
     * the recovery's TRANSIENT was published and before its ONLINE was: the
     * coordinator refuses the RECOVERING or ONLINE that follows it (chaos
     * seed 404: the process counted recovered here, FAILED everywhere else,
     * for good).  A FAILED published before that TRANSIENT is followed by the
     * whole recovery, which stands. */
    if (ev->epoch != QUEUE_EPOCH_NONE && rl->epoch != QUEUE_EPOCH_NONE && ev->epoch < rl->epoch &&
        !(rl->online_unseen && rl->transient_seen && ev->epoch == rl->epoch - 1))
        return;
    log_notice("'%s' runs%s, but the cluster was told it FAILED (epoch %lld, reported by '%s'%s%s): it recovers again",
               rl->c->name, rl->state == RL_IDLE ? "" : " and recovers", (long long)ev->epoch, ev->node,
               ev->reason[0] ? ": " : "", ev->reason);
    rl_set(r, rl, RL_FAILED, NULL);
    begin(r, rl);
}

/* Our own RECOVERING, published: the seq that names the attempt (its reason says which attempt it is). */
static void own_recovering(struct recovery_local *r, struct rl *rl, uint64_t seq, const struct queue_event *ev) {
    char mine[32];
    snprintf(mine, sizeof(mine), "attempt %u", rl->attempts);
    if ((rl->state != RL_RECOVERING && rl->state != RL_WAITING) || ev->epoch != rl->epoch ||
        (rl->attempts > 0 && !streq(ev->reason, mine)))
        return; /* an earlier attempt's, or not recovering here */
    rl->attempt = seq;
    if (rl->state == RL_WAITING)
        try_complete(r, rl);
}

static void on_published(struct queue *q, uint64_t seq, const struct queue_event *ev, void *userdata) {
    struct recovery_local *r = userdata;
    char object[QUEUE_OBJECT_MAX];
    if ((ev->kind != QUEUE_KIND_PROCESS && ev->kind != QUEUE_KIND_DEVICE) || queue_event_object(ev, object) < 0)
        return;
    const struct rm_process *p = rm_owner(r->model, object);
    if (!p || !p->pool)
        return;
    if (ev->kind == QUEUE_KIND_PROCESS && ev->state == QUEUE_HA_ONLINE) { /* it may be ACTIVE again */
        amf_readiness_changed(r->amf, p->name);
        /* A member is back: this node's processes refused because of the
         * others are looked at again now, not only when they ask again. */
        for (size_t i = 0; i < r->n; i++)
            if (r->rls[i].p != p && r->rls[i].p->pool == p->pool && r->rls[i].state == RL_REFUSED && r->rls[i].c->conn)
                begin(r, &r->rls[i]);
    }
    for (size_t i = 0; i < r->n; i++) {
        struct rl *rl = &r->rls[i];
        if (rl->p->pool != p->pool)
            continue;
        if (rl->p == p && ev->kind == QUEUE_KIND_PROCESS) {
            rl->down_seq = ev->state == QUEUE_HA_ONLINE ? 0 : rl->down_seq ? rl->down_seq : seq;
            if (ev->state == QUEUE_HA_ONLINE)
                rl->online_unseen = false;
            if (ev->state == QUEUE_HA_TRANSIENT &&
                (ev->epoch == rl->epoch || (rl->online_unseen && ev->epoch == rl->epoch - 1)))
                rl->transient_seen = true;
        }
        if (rl->p == p && ev->kind == QUEUE_KIND_PROCESS && ev->state == QUEUE_HA_FAILED)
            published_failed(r, rl, ev);
        else if (rl->p == p && ev->kind == QUEUE_KIND_PROCESS && ev->state == QUEUE_HA_RECOVERING)
            own_recovering(r, rl, seq, ev);
        else
            attempt_check(r, rl, p); /* a device of its own, or a member's state */
    }
}

/* ---- who may be ACTIVE ---- */

static bool not_caught_up(int published_state) {
    return published_state == QUEUE_HA_FAILED || published_state == QUEUE_HA_TRANSIENT ||
           published_state == QUEUE_HA_RECOVERING;
}

/* The AMF's readiness hook: a unit may be given ACTIVE unless one of its pool
 * processes has not caught up: FAILED, TRANSIENT or RECOVERING as published,
 * or (one of this node's) its recovery here is not over. */
static bool may_be_active(void *userdata, const struct su *su) {
    struct recovery_local *r = userdata;
    for (size_t i = 0; i < su->n_comps; i++) {
        const struct rm_process *p = rm_component(r->model, su->comps[i].name);
        if (!p || !p->pool)
            continue;
        if (not_caught_up(published(r, p->object)))
            return false;
        const struct rl *rl = rl_of(r, &su->comps[i]);
        if (rl && rl->loaded && rl->state != RL_IDLE)
            return false;
    }
    return true;
}

static void on_load_retry(uv_timer_t *t);

static void on_loaded(store *s, int error, const store_result *res, void *userdata) {
    struct read_call *k = userdata;
    struct recovery_local *r = k->r;
    if (r->closed)
        goto out;
    for (size_t i = 0; error >= 0 && i < res->n_kvs; i++) {
        const store_kv *kv = &res->kvs[i];
        for (size_t j = 0; j < r->n; j++) {
            struct rl *rl = &r->rls[j];
            if (kv->key_len != strlen(rl->key) || memcmp(kv->key, rl->key, kv->key_len) != 0)
                continue;
            json_t *jv = json_loadb(kv->value, kv->value_len, 0, NULL);
            int st = rl_state_from_string(json_string_value(json_object_get(jv, "state")));
            if (st >= 0)
                rl->state = (enum rl_state)st;
            json_t *ep = json_object_get(jv, "epoch");
            rl->epoch = json_is_integer(ep) ? json_integer_value(ep) : -1;
            const char *why = json_string_value(json_object_get(jv, "reason"));
            free(rl->reason);
            rl->reason = why ? strdup(why) : NULL;
            json_t *down = json_object_get(jv, "down"); /* else what on_published() saw, if anything */
            if (json_is_integer(down) && json_integer_value(down) > 0 && rl->state != RL_IDLE)
                rl->down_seq = (uint64_t)json_integer_value(down);
            json_t *lim = json_object_get(jv, "limit");
            rl->limit = json_is_integer(lim) && json_integer_value(lim) > 0 ? (unsigned)json_integer_value(lim)
                                                                            : rl->p->pool->tolerate;
            json_t *ps = json_object_get(jv, "participants"), *name;
            size_t ni;
            rl->parts.n = 0;
            json_array_foreach(ps, ni, name) {
                const struct rm_process *pp = rm_component(r->model, json_string_value(name) ?: "");
                if (pp && pp->pool == rl->p->pool && pp != rl->p && rl->parts.n < ELEMENTSOF(rl->parts.parts))
                    rl->parts.parts[rl->parts.n++] = (struct dtm_part){.p = pp};
            }
            json_decref(jv);
            if (rl->state != RL_IDLE)
                log_info("Recovery of '%s' carries on: %s (epoch %" PRId64 ")", rl->c->name,
                         rl_state_to_string(rl->state), rl->epoch);
        }
    }
    if (error == -ECANCELED)
        goto out;
    if (error < 0) {
        /* Not read is not "none": a process may be in the middle of its recovery. */
        unsigned msec = retry_arm(r, &r->load_retry, on_load_retry);
        log_warning_errno(error, "Failed to read the recovery states (%m): store read failed, retrying in %u ms", msec);
        goto out;
    }
    retry_reset(&r->load_retry);
    for (size_t j = 0; j < r->n; j++) {
        struct rl *rl = &r->rls[j];
        rl->loaded = true;
        if (rl->online_waiting && rl->c->conn) {
            rl->online_waiting = false;
            if (!must_recover(r, rl->c))
                queue_report(r->reporter, QUEUE_KIND_PROCESS, rl->c->name, QUEUE_HA_ONLINE, NULL, QUEUE_EPOCH_NONE);
        }
        if (rl->entrypoint_waiting)
            recovery_local_entrypoint(r, rl->c);
    }
    /* The participants' reports, once the recoveries they count for are known. */
    bool reports = false;
    for (size_t j = 0; j < r->n; j++)
        reports = reports || r->rls[j].p->pool->report;
    int e = reports ? dtm_follow(r->dtm) : 0;
    if (e < 0 && e != -EBUSY)
        log_warning_errno(e, "Failed to follow the participants' completion reports: %m");
out:
    free(k);
    rec_unref(r);
}

int recovery_local_new(const struct recovery_local_params *p, struct recovery_local **ret) {
    struct recovery_local *r = calloc(1, sizeof(*r));
    if (!r)
        return -ENOMEM;
    *r = (struct recovery_local){.loop = p->loop,
                                 .amf = p->amf,
                                 .store = p->store,
                                 .q = p->queue,
                                 .reporter = p->reporter,
                                 .model = p->model,
                                 .refs = 1,
                                 .prefix = strdup(p->prefix)};
    size_t n = p->model ? rm_n_processes(p->model) : 0;
    r->rls = calloc(n ?: 1, sizeof(*r->rls));
    int e = r->prefix && r->rls ? 0 : -ENOMEM;
    size_t n_sgs;
    struct sg *sgs = amf_sgs(p->amf, &n_sgs);
    for (size_t g = 0; e == 0 && p->model && g < n_sgs; g++)
        for (size_t u = 0; e == 0 && u < sgs[g].n_sus; u++) {
            struct su *su = &sgs[g].sus[u];
            for (size_t i = 0; e == 0 && su->local && i < su->n_comps; i++) {
                const struct rm_process *pr = rm_component(p->model, su->comps[i].name);
                char key[STORE_KEY_MAX];
                if (!pr || !pr->pool)
                    continue;
                struct rl *rl = &r->rls[r->n++];
                *rl = (struct rl){.c = &su->comps[i], .p = pr, .epoch = -1, .limit = pr->pool->tolerate};
                if (key_name(key, r->prefix, KEY_RECOVERY, pr->object) < 0 || !(rl->key = strdup(key)))
                    e = -ENOMEM;
            }
        }
    if (e == 0 && p->model)
        e = dtm_new(p->store, p->prefix, p->queue, p->model, on_completed, r, &r->dtm);
    if (e == 0)
        e = amf_observe(p->amf, &observer, r);
    if (e < 0) {
        rec_unref(r);
        return e;
    }
    if (p->model) {
        bq_reader_watch(r->q, on_published, r);
        (void)amf_add_active_readiness(r->amf, may_be_active, r);
    }
    *ret = r;
    return 0;
}

/* Reads every recovery state of this node's pool processes. */
static int load(struct recovery_local *r) {
    char prefix[STORE_KEY_MAX];
    struct read_call *k = calloc(1, sizeof(*k));
    if (!k || key_dir(prefix, r->prefix, KEY_RECOVERY) < 0) {
        free(k);
        return -ENOMEM;
    }
    k->r = r;
    r->refs++;
    int e = store_range(r->store, prefix, on_loaded, k);
    if (e < 0) {
        r->refs--;
        free(k);
        return e;
    }
    return 0;
}

static void on_load_retry(uv_timer_t *t) {
    struct recovery_local *r = t->data;
    int e = r->closed ? 0 : load(r);
    if (e < 0) {
        unsigned msec = retry_arm(r, &r->load_retry, on_load_retry);
        log_warning_errno(e, "Failed to read the recovery states (%m): store read failed, retrying in %u ms", msec);
    }
}

int recovery_local_start(struct recovery_local *r) {
    if (r->n == 0) /* no pool process here: nothing to read */
        return 0;
    return load(r);
}

struct recovery_local *recovery_local_free(struct recovery_local *r) {
    if (!r)
        return NULL;
    amf_unobserve(r->amf, &observer, r);
    if (r->model) {
        bq_reader_watch(r->q, NULL, NULL);
        amf_remove_active_readiness(r->amf, may_be_active, r);
    }
    r->closed = true;
    retry_close(&r->load_retry);
    for (size_t i = 0; i < r->n; i++)
        retry_close(&r->rls[i].retry);
    r->dtm = dtm_free(r->dtm); /* no report after this */
    rec_unref(r);
    return NULL;
}

int recovery_local_force(struct recovery_local *r, const char *comp) {
    struct rl *rl = NULL;
    for (size_t i = 0; r && i < r->n; i++)
        if (streq(r->rls[i].c->name, comp))
            rl = &r->rls[i];
    if (!rl)
        return -HALO_EUNKNOWN; /* not a pool process of this node */
    if (rl->state != RL_REFUSED && rl->state != RL_FAILED && rl->state != RL_TRANSIENT)
        return -HALO_EBADSTATE; /* not waiting for a recovery: nothing to force */
    log_notice("Recovery of '%s' forced by the operator: the tolerance of pool '%s' is not checked", rl->c->name,
               rl->p->pool->name);
    rl->force = true;
    if (rl->state == RL_REFUSED && rl->c->conn)
        begin(r, rl); /* it asked already: now */
    return 0;
}

bool recovery_local_entrypoint(struct recovery_local *r, struct comp *c) {
    struct rl *rl = rl_of(r, c);
    if (!rl)
        return false;
    if (!rl->loaded) {
        rl->entrypoint_waiting = true;
        return true;
    }
    if (rl->state == RL_IDLE) {
        /* Registered before this halod knew its published state (just started): ask it now. */
        int st = published(r, rl->p->object);
        if (st != QUEUE_HA_FAILED && st != QUEUE_HA_TRANSIENT && st != QUEUE_HA_RECOVERING)
            return false;
        rl->state = RL_FAILED;
    }
    begin(r, rl);
    return true;
}

/*
 * STARTING of a TRANSIENT process: a new attempt.  After an abort (the
 * process was told, and tries again until taken), not while one of its own
 * devices failed or its pool is past its limit.  The first STARTING after the
 * entrypoint is always taken: the entrypoint's checks let it through, and a
 * failure since is the running attempt's to abort (the process then knows to
 * try again; a refused first STARTING left it, and the pool members that wait
 * for it, newest data first, stuck for good: chaos seed 606).
 */
static int attempt_start(struct recovery_local *r, struct rl *rl) {
    char obj[QUEUE_OBJECT_MAX + QUEUE_NAME_MAX + 2];
    bool after_abort = rl->reason && (strncmp(rl->reason, ABORTED_PREFIX, strlen(ABORTED_PREFIX)) == 0 ||
                                      strncmp(rl->reason, REFUSED_START_PREFIX, strlen(REFUSED_START_PREFIX)) == 0);
    char *why = after_abort ? dtm_abort_reason(r->q, r->model, rl->p, rl->limit) : NULL;
    if (why && dtm_device_failed(r->q, rl->p, obj, sizeof(obj)) < 0) {
        /* Past its limit: the operator's --force, or newest data first, may let it through, as at the entrypoint. */
        char *again = refusal(r, rl);
        if (!again) {
            free(why);
            why = NULL;
            rl->force = false;
        }
        free(again);
    }
    if (why) {
        _cleanup_free_ char *reason = strprintf(REFUSED_START_PREFIX "%s", why);
        free(why);
        if (reason && (!rl->reason || !streq(rl->reason, reason)))
            rl_set(r, rl, RL_TRANSIENT, reason);
        return -HALO_EBADSTATE;
    }
    char attempt[32];
    rl->attempts++;
    rl->attempt = 0;
    dtm_list_restart(&rl->parts, r->q);
    rl_set(r, rl, RL_RECOVERING, NULL);
    snprintf(attempt, sizeof(attempt), "attempt %u", rl->attempts);
    queue_report(r->reporter, QUEUE_KIND_PROCESS, rl->c->name, QUEUE_HA_RECOVERING, attempt, rl->epoch);
    return 0;
}

int recovery_local_participant_done(struct recovery_local *r, struct comp *c, const char *process, uint64_t attempt) {
    struct rl *rl = rl_of(r, c);
    if (!rl)
        return -HALO_EUNKNOWN; /* in no pool: a participant of nothing */
    return dtm_report(r->dtm, rl->p, process, attempt);
}

int recovery_local_event(struct recovery_local *r, struct comp *c, halo_lifecycle event, const char *reason) {
    struct rl *rl = rl_of(r, c);
    if (!rl) {
        /* Not a pool process: nothing to recover, and its registration and
         * its end say the rest.  Refused rather than taken and dropped. */
        log_debug("Process event %d of '%s' refused: it is in no pool", (int)event, c->name);
        return -HALO_EBADSTATE;
    }
    switch (event) {
    case HALO_PROCESS_STARTING:
        if (rl->state == RL_IDLE || rl->state == RL_RECOVERING || rl->state == RL_WAITING)
            return 0;
        if (rl->state != RL_TRANSIENT)
            return -HALO_EBADSTATE; /* ask for the entrypoint first (or refused: see status) */
        return attempt_start(r, rl);
    case HALO_PROCESS_STARTED:
    case HALO_PROCESS_RECOVERED:
        if (rl->state == RL_IDLE || rl->state == RL_WAITING)
            return 0;
        if (rl->state != RL_RECOVERING)
            return -HALO_EBADSTATE; /* not recovering: never started, or the attempt was aborted */
        if (rl->p->pool->report)
            try_complete(r, rl);
        else
            go_online(r, rl);
        return 0;
    case HALO_PROCESS_RECOVERY_FAILED:
        if (rl->state != RL_RECOVERING && rl->state != RL_WAITING)
            return -HALO_EBADSTATE;
        rl->attempt = 0;
        rl_set(r, rl, RL_TRANSIENT, reason && *reason ? reason : "the recovery failed");
        report(r, rl, QUEUE_HA_TRANSIENT);
        return 0;
    default: /* STOPPING, STOPPED: for the record; its exit tells the rest */
        log_info("'%s' reports %s", c->name, event == HALO_PROCESS_STOPPING ? "STOPPING" : "STOPPED");
        return 0;
    }
}

void recovery_local_status(struct recovery_local *r, const struct comp *c, json_t *obj) {
    struct rl *rl = rl_of(r, c);
    if (!rl)
        return;
    json_t *j = json_pack("{s:s, s:s, s:I}", "pool", rl->p->pool->name, "state", rl_state_to_string(rl->state), "epoch",
                          (json_int_t)rl->epoch);
    if (j && rl->reason)
        json_object_set_new(j, "reason", json_string(rl->reason));
    if (j)
        json_object_set_new(obj, "recovery", j);
}
