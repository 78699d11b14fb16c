/* SPDX-License-Identifier: MIT */
/* A recovery's participants, the failures that abort it, and the participants' completion reports (recovery-dtm.h). */
#define LOG_AREA LOG_AREA_AMF
#include "recovery-dtm.h"

#include <errno.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "halo/halo.h"
#include "keys.h"
#include "log.h"
#include "macro.h"
#include "store-follow.h"
#include "strprintf.h"

/* ---- from the published states ---- */

static int published(const struct queue *q, const char *object) {
    return queue_state_get(q, object);
}

void dtm_list_live(struct dtm_list *l, const struct queue *q, const struct recovery_model *m,
                   const struct rm_process *p) {
    const struct rm_process *members[CONFIG_POOL_PROCESSES_MAX];
    size_t n = MIN(rm_pool_members(m, p->pool, members, ELEMENTSOF(members)), ELEMENTSOF(members));
    l->n = 0;
    for (size_t i = 0; i < n; i++)
        if (members[i] != p && published(q, members[i]->object) == QUEUE_HA_ONLINE)
            l->parts[l->n++] = (struct dtm_part){.p = members[i]};
}

struct dtm_part *dtm_list_find(struct dtm_list *l, const struct rm_process *p) {
    for (size_t i = 0; i < l->n; i++)
        if (l->parts[i].p == p)
            return &l->parts[i];
    return NULL;
}

void dtm_list_restart(struct dtm_list *l, const struct queue *q) {
    for (size_t i = 0; i < l->n; i++)
        l->parts[i].struck = published(q, l->parts[i].p->object) != QUEUE_HA_ONLINE;
}

size_t dtm_awaited(struct dtm_list *l, const struct queue *q, uint64_t attempt, char *names, size_t size) {
    size_t n = 0, len = 0;
    if (size)
        names[0] = '\0';
    for (size_t i = 0; i < l->n; i++) {
        struct dtm_part *pt = &l->parts[i];
        if (published(q, pt->p->object) != QUEUE_HA_ONLINE)
            pt->struck = true; /* it failed during the attempt: no longer awaited */
        if (pt->struck || (attempt && pt->reported == attempt))
            continue;
        n++;
        if (len < size) {
            int k = snprintf(names + len, size - len, "%s%s", len ? ", " : "", pt->p->name);
            len += k > 0 ? (size_t)k : 0;
        }
    }
    return n;
}

bool dtm_device_state_failed(int st) {
    return st == QUEUE_HA_FAILED || st == QUEUE_HA_REPAIR || st == QUEUE_HA_REPAIRED || st == QUEUE_HA_REBALANCE;
}

/* The state of p's device d, its object name in obj. */
static int device_state(const struct queue *q, const struct rm_process *p, size_t d, char *obj, size_t size) {
    snprintf(obj, size, "device:%s:%s", p->object + strlen("process:"), p->cc->devices[d]);
    return published(q, obj);
}

int dtm_device_failed(const struct queue *q, const struct rm_process *p, char *obj, size_t size) {
    for (size_t i = 0; i < p->cc->n_devices; i++) {
        int st = device_state(q, p, i, obj, size);
        if (dtm_device_state_failed(st))
            return st;
    }
    return -ENOENT;
}

unsigned dtm_failures(const struct queue *q, const struct recovery_model *m, const struct rm_process *p, char *list,
                      size_t size) {
    const struct rm_process *members[CONFIG_POOL_PROCESSES_MAX];
    size_t n = MIN(rm_pool_members(m, p->pool, members, ELEMENTSOF(members)), ELEMENTSOF(members));
    char obj[QUEUE_OBJECT_MAX + QUEUE_NAME_MAX + 2];
    unsigned failures = 0;
    size_t len = 0;
    if (size)
        list[0] = '\0';
    for (size_t i = 0; i < n; i++) {
        if (members[i] == p)
            continue;
        int st = published(q, members[i]->object);
        if (st == QUEUE_HA_ONLINE && dtm_device_failed(q, members[i], obj, sizeof(obj)) < 0)
            continue;
        failures++;
        if (len < size) {
            int k = snprintf(list + len, size - len, "%s%s %s", len ? ", " : "", members[i]->name,
                             st >= 0 ? queue_ha_state_to_string((enum queue_ha_state)st) : "unknown");
            len += k > 0 ? (size_t)k : 0;
        }
    }
    return failures;
}

/*
 * Newest data first.  Beyond its tolerance a pool that failed as a whole (a
 * power cut, every node fenced at once) could never recover the usual way:
 * each process is refused because of the others.  Then the processes recover
 * in the order they failed, the last one first: it holds the newest data.  p
 * may recover once every member whose current state was published after p's
 * is ONLINE again, and no member is ONLINE that has been so since before p
 * failed (then the pool did not fail as a whole: the tolerance stands).
 * "After" is by the broadcast seq of the entry with which each left ONLINE;
 * ties go by name.  An aborted attempt, or a crash while it recovers, does not
 * make a process's data newer than that of a member that failed after it, nor
 * than that of one that came back meanwhile (a member's aborted attempt made
 * the member look newer, and the two waited for each other for good).
 */
bool dtm_newest_first(const struct queue *q, const struct recovery_model *m, const struct rm_process *p,
                      uint64_t failed) {
    const struct rm_process *members[CONFIG_POOL_PROCESSES_MAX];
    size_t n = MIN(rm_pool_members(m, p->pool, members, ELEMENTSOF(members)), ELEMENTSOF(members));
    struct queue_state mine;
    if (queue_state_of(q, p->object, &mine) < 0)
        return false;
    if (failed == 0 || failed > mine.seq)
        failed = mine.down_seq ? mine.down_seq : mine.seq;
    for (size_t i = 0; i < n; i++) {
        struct queue_state st;
        if (members[i] == p)
            continue;
        if (queue_state_of(q, members[i]->object, &st) < 0)
            return false; /* unknown: it may hold newer data */
        if (st.state == QUEUE_HA_ONLINE && st.seq > failed)
            continue; /* back after p failed: a newer one, recovered first */
        if (st.state == QUEUE_HA_ONLINE)
            return false; /* ONLINE since before p failed: not a whole-pool failure */
        uint64_t down = st.down_seq ? st.down_seq : st.seq;
        if (down > failed || (down == failed && strcmp(members[i]->name, p->name) < 0))
            return false; /* newer data elsewhere, not back yet */
    }
    return true;
}

char *dtm_abort_reason(const struct queue *q, const struct recovery_model *m, const struct rm_process *p,
                       unsigned limit) {
    char obj[QUEUE_OBJECT_MAX + QUEUE_NAME_MAX + 2], list[512];
    int st = dtm_device_failed(q, p, obj, sizeof(obj));
    if (st >= 0)
        return strprintf("%s is %s: not a transient failure any more", obj,
                         queue_ha_state_to_string((enum queue_ha_state)st));
    unsigned failures = dtm_failures(q, m, p, list, sizeof(list));
    if (failures > limit)
        return strprintf("%u failures in pool '%s' (%s), past %u", failures, p->pool->name, list, limit);
    return NULL;
}

/* ---- the completion reports in the store ---- */

struct dtm {
    store *store;
    char *prefix;
    const struct queue *q;
    const struct recovery_model *model;
    dtm_completed_cb completed;
    void *userdata;
    struct store_follow *follow;
};

int dtm_new(store *s, const char *prefix, const struct queue *q, const struct recovery_model *m,
            dtm_completed_cb completed, void *userdata, struct dtm **ret) {
    struct dtm *d = calloc(1, sizeof(*d));
    if (!d)
        return -ENOMEM;
    *d = (struct dtm){
        .store = s, .prefix = strdup(prefix), .q = q, .model = m, .completed = completed, .userdata = userdata};
    if (!d->prefix) {
        free(d);
        return -ENOMEM;
    }
    *ret = d;
    return 0;
}

struct dtm *dtm_free(struct dtm *d) {
    if (!d)
        return NULL;
    store_follow_free(d->follow);
    free(d->prefix);
    free(d);
    return NULL;
}

/* completed/<process>/<participant> = {"attempt":S,...}: to the callback. */
static void handle(struct dtm *d, const store_kv *kv) {
    const char *rest;
    size_t len;
    char a[STORE_KEY_MAX], b[STORE_KEY_MAX];
    if (key_parse(d->prefix, kv->key, kv->key_len, &rest, &len) != KEY_COMPLETED || key_split_pair(rest, len, a, b) < 0)
        return;
    const struct rm_process *x = rm_find(d->model, a), *y = rm_find(d->model, b);
    json_t *j = json_loadb(kv->value, kv->value_len, 0, NULL);
    json_t *at = json_object_get(j, "attempt");
    if (x && y && json_is_integer(at) && json_integer_value(at) > 0)
        d->completed(d->userdata, x, y, (uint64_t)json_integer_value(at));
    json_decref(j);
}

static void on_loaded(struct store_follow *f, const store_result *r, void *userdata) {
    for (size_t i = 0; i < r->n_kvs; i++)
        handle(userdata, &r->kvs[i]);
}

static void on_changed(struct store_follow *f, const store_event *events, size_t n, void *userdata) {
    for (size_t i = 0; i < n; i++)
        if (events[i].type == STORE_EVENT_PUT)
            handle(userdata, &events[i].kv);
}

static const struct store_follow_ops follow_ops = {
    .loaded = on_loaded,
    .changed = on_changed,
};

int dtm_follow(struct dtm *d) {
    char prefix[STORE_KEY_MAX];
    if (d->follow)
        return -EBUSY;
    if (key_dir(prefix, d->prefix, KEY_COMPLETED) < 0)
        return -ENAMETOOLONG;
    struct store_follow_params p = {.prefix = prefix};
    return store_follow(d->store, &p, &follow_ops, d, &d->follow);
}

static void on_written(store *s, int error, const store_result *res, void *userdata) {
    if (error < 0 && error != -ECANCELED)
        log_warning_errno(error, "Failed to record a participant's completion report: %m");
}

int dtm_report(struct dtm *d, const struct rm_process *participant, const char *process, uint64_t attempt) {
    const struct rm_process *x = rm_find(d->model, process);
    struct queue_state st;
    char key[STORE_KEY_MAX];
    if (!x || !x->pool || x->pool != participant->pool || x == participant)
        return -HALO_EUNKNOWN;
    if (queue_state_of(d->q, process, &st) < 0 || st.state != QUEUE_HA_RECOVERING)
        return -HALO_EBADSTATE; /* not recovering (any more) */
    if (attempt && attempt != st.seq)
        return -HALO_EBADSTATE; /* an attempt that is over */
    if (!x->pool->report)
        return 0; /* RECOVERED alone ends its recovery: nothing to record */
    if (key_pair(key, d->prefix, KEY_COMPLETED, x->object, participant->object) < 0)
        return -ENAMETOOLONG;
    _cleanup_free_ char *text =
        strprintf("{\"attempt\":%llu,\"epoch\":%lld}", (unsigned long long)st.seq, (long long)st.epoch);
    if (!text)
        return -ENOMEM;
    log_info("'%s' served its part of the recovery of '%s' (attempt %llu)", participant->name, x->name,
             (unsigned long long)st.seq);
    return store_put(d->store, key, text, strlen(text), 0, on_written, NULL);
}
