/* SPDX-License-Identifier: MIT */
/* The recovery model and the coordinator's HA state rules (see recovery.h). */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "macro.h"
#include "recovery-model.h"

struct recovery_model {
    const struct config *config;
    struct rm_process *procs; /* every component, description order */
    size_t n_procs;
    const struct rm_process **sorted; /* by object, for lookups */
};

static bool startswith(const char *s, const char *prefix) {
    return strncmp(s, prefix, strlen(prefix)) == 0;
}

static int proc_cmp(const void *a, const void *b) {
    const struct rm_process *const *x = a, *const *y = b;
    return strcmp((*x)->object, (*y)->object);
}

int rm_new(const struct config *c, struct recovery_model **ret) {
    size_t n = 0;
    for (size_t g = 0; g < c->n_sgs; g++)
        for (size_t u = 0; u < c->sgs[g].n_sus; u++)
            n += c->sgs[g].sus[u].n_components;
    struct recovery_model *m = calloc(1, sizeof(*m));
    if (!m)
        return -ENOMEM;
    m->config = c;
    m->procs = calloc(n ? n : 1, sizeof(*m->procs));
    m->sorted = calloc(n ? n : 1, sizeof(*m->sorted));
    if (!m->procs || !m->sorted) {
        rm_free(m);
        return -ENOMEM;
    }
    for (size_t g = 0; g < c->n_sgs; g++)
        for (size_t u = 0; u < c->sgs[g].n_sus; u++)
            for (size_t k = 0; k < c->sgs[g].sus[u].n_components; k++) {
                const struct config_component *cc = &c->sgs[g].sus[u].components[k];
                struct rm_process *p = &m->procs[m->n_procs];
                char part[QUEUE_OBJECT_MAX];
                queue_object_part(part, sizeof(part), cc->name);
                size_t longest = strlen(part);
                for (size_t i = 0; i < cc->n_services; i++)
                    longest = MAX(longest, strlen(part) + 1 + strlen(cc->services[i]));
                for (size_t i = 0; i < cc->n_devices; i++)
                    longest = MAX(longest, strlen(part) + 1 + strlen(cc->devices[i]));
                if (longest > QUEUE_NAME_MAX) {
                    rm_free(m);
                    return -ENAMETOOLONG;
                }
                snprintf(p->object, sizeof(p->object), "process:%.*s", QUEUE_NAME_MAX, part);
                p->name = cc->name;
                p->node = c->sgs[g].sus[u].node;
                p->cc = cc;
                p->pool = config_find_pool_of(c, cc->name);
                p->index = m->n_procs;
                m->sorted[m->n_procs++] = p;
            }
    qsort(m->sorted, m->n_procs, sizeof(*m->sorted), proc_cmp);
    *ret = m;
    return 0;
}

struct recovery_model *rm_free(struct recovery_model *m) {
    if (m) {
        free(m->procs);
        free(m->sorted);
        free(m);
    }
    return NULL;
}

const struct rm_process *rm_component(const struct recovery_model *m, const char *component) {
    for (size_t i = 0; m && i < m->n_procs; i++)
        if (streq(m->procs[i].name, component))
            return &m->procs[i];
    return NULL;
}

size_t rm_n_processes(const struct recovery_model *m) {
    return m ? m->n_procs : 0;
}

const struct rm_process *rm_process_at(const struct recovery_model *m, size_t i) {
    return m && i < m->n_procs ? &m->procs[i] : NULL;
}

const struct rm_process *rm_find(const struct recovery_model *m, const char *object) {
    struct rm_process key;
    const struct rm_process *k = &key;
    if (!m || strlen(object) >= sizeof(key.object))
        return NULL;
    memcpy(key.object, object, strlen(object) + 1);
    const struct rm_process *const *p = bsearch(&k, m->sorted, m->n_procs, sizeof(*m->sorted), proc_cmp);
    return p ? *p : NULL;
}

/* The process of "service:<P>:<S>" or "device:<P>:<D>" and the item's name
 * (<S> or <D>, which has no ':'), or NULL. */
static const struct rm_process *item_owner(const struct recovery_model *m, const char *object, const char *kind,
                                           const char **ret_item) {
    size_t kl = strlen(kind);
    if (strncmp(object, kind, kl) != 0 || object[kl] != ':')
        return NULL;
    const char *rest = object + kl + 1, *colon = strrchr(rest, ':');
    if (!colon || colon == rest)
        return NULL;
    char proc[QUEUE_OBJECT_MAX];
    if (snprintf(proc, sizeof(proc), "process:%.*s", (int)(colon - rest), rest) >= (int)sizeof(proc))
        return NULL;
    const struct rm_process *p = rm_find(m, proc);
    if (!p)
        return NULL;
    bool service = streq(kind, "service");
    char *const *items = service ? p->cc->services : p->cc->devices;
    size_t n = service ? p->cc->n_services : p->cc->n_devices;
    for (size_t i = 0; i < n; i++)
        if (streq(items[i], colon + 1)) {
            if (ret_item)
                *ret_item = items[i];
            return p;
        }
    return NULL;
}

const struct rm_process *rm_owner(const struct recovery_model *m, const char *object) {
    if (!m)
        return NULL;
    if (startswith(object, "process:"))
        return rm_find(m, object);
    const struct rm_process *p = item_owner(m, object, "service", NULL);
    return p ? p : item_owner(m, object, "device", NULL);
}

void rm_set_nodes(struct recovery_model *m, const struct config *c) {
    m->config = c;
}

bool rm_known(const struct recovery_model *m, const char *object) {
    if (startswith(object, "node:"))
        return config_find_node(m->config, object + strlen("node:")) != NULL;
    return rm_owner(m, object) != NULL;
}

size_t rm_pool_members(const struct recovery_model *m, const struct config_pool *pool, const struct rm_process **out,
                       size_t max) {
    size_t n = 0;
    for (size_t i = 0; pool && i < m->n_procs; i++)
        if (m->procs[i].pool == pool) {
            if (n < max)
                out[n] = &m->procs[i];
            n++;
        }
    return n;
}

size_t rm_concerned(const struct recovery_model *m, const char *object, const struct rm_process **out, size_t max) {
    if (!m)
        return 0;
    if (startswith(object, "node:")) {
        size_t n = 0;
        for (size_t i = 0; i < m->n_procs; i++)
            if (m->procs[i].pool && streq(m->procs[i].node, object + strlen("node:"))) {
                if (n < max)
                    out[n] = &m->procs[i];
                n++;
            }
        return n;
    }
    const struct rm_process *p = rm_owner(m, object);
    return p && p->pool ? rm_pool_members(m, p->pool, out, max) : 0;
}

/* Appends the derived event "<kind>:<part>:<item>" (or "<kind>:<part>" when item is NULL). */
static void derive(const struct queue_event *ev, const char *kind, const char *part, const char *item,
                   enum queue_ha_state state, const char *cause, struct queue_event *out, size_t max, size_t *n) {
    if (*n < max) {
        struct queue_event *d = &out[*n];
        char object[QUEUE_OBJECT_MAX + QUEUE_NAME_MAX + 2];
        if (item)
            snprintf(object, sizeof(object), "%s:%s:%s", kind, part, item);
        else
            snprintf(object, sizeof(object), "%s:%s", kind, part);
        if (queue_event_init(d, object, state) < 0)
            return; /* rm_new() checked the lengths */
        memcpy(d->node, ev->node, sizeof(d->node));
        d->hlc = ev->hlc;
        snprintf(d->reason, sizeof(d->reason), "%s", cause);
    }
    (*n)++;
}

static void derive_services(const struct rm_process *p, const struct queue_event *ev, enum queue_ha_state state,
                            const char *cause, struct queue_event *out, size_t max, size_t *n) {
    const char *part = p->object + strlen("process:");
    for (size_t i = 0; i < p->cc->n_services; i++)
        derive(ev, "service", part, p->cc->services[i], state, cause, out, max, n);
}

size_t rm_expand(const struct recovery_model *m, const struct queue_event *ev, struct queue_event *out, size_t max) {
    size_t n = 0;
    char object[QUEUE_OBJECT_MAX], cause[QUEUE_REASON_MAX + 1];
    if (!m || queue_event_object(ev, object) < 0)
        return 0;
    snprintf(cause, sizeof(cause), "%s is %s", object, queue_ha_state_to_string(ev->state));
    if (ev->kind == QUEUE_KIND_PROCESS && (ev->state == QUEUE_HA_FAILED || ev->state == QUEUE_HA_ONLINE)) {
        const struct rm_process *p = rm_find(m, object);
        if (p)
            derive_services(p, ev, ev->state, cause, out, max, &n);
    } else if (ev->kind == QUEUE_KIND_NODE && ev->state == QUEUE_HA_FAILED) {
        for (size_t i = 0; i < m->n_procs; i++) {
            const struct rm_process *p = &m->procs[i];
            if (!streq(p->node, ev->name))
                continue;
            derive(ev, "process", p->object + strlen("process:"), NULL, QUEUE_HA_FAILED, cause, out, max, &n);
            derive_services(p, ev, QUEUE_HA_FAILED, cause, out, max, &n);
        }
    }
    return n;
}

static int refuse(const char **why, const char *text) {
    *why = text;
    return 0;
}

/* A pool process's recovery steps come from its own node, for its current epoch. */
static bool from_recovery(const struct rm_process *p, const struct queue_event *ev, int64_t epoch) {
    return streq(ev->node, p->node) && ev->epoch != QUEUE_EPOCH_NONE && ev->epoch == epoch;
}

static int decide_pool_process(const struct rm_process *p, const struct queue_event *ev, int current, int64_t epoch,
                               const char **why) {
    enum queue_ha_state to = ev->state;
    if (current < 0)
        return to == QUEUE_HA_ONLINE || to == QUEUE_HA_FAILED || to == QUEUE_HA_OFFLINE
                   ? 1
                   : refuse(why, "a pool process starts ONLINE or FAILED");
    if (to == QUEUE_HA_FAILED) {
        if (current == QUEUE_HA_RECOVERING)
            return refuse(why, "it is RECOVERING: it stays so until its next start");
        /* A late report of a failure the process has recovered from since. */
        if (ev->epoch != QUEUE_EPOCH_NONE && epoch != QUEUE_EPOCH_NONE && ev->epoch < epoch)
            return refuse(why, "a failure in an earlier epoch: the process has recovered since");
        return 1;
    }
    if (to == QUEUE_HA_OFFLINE)
        return 1;
    if (to != QUEUE_HA_TRANSIENT && to != QUEUE_HA_RECOVERING && to != QUEUE_HA_ONLINE)
        return refuse(why, "not a process state");
    if (!from_recovery(p, ev, epoch))
        return refuse(why, "only the halod of the process's node drives its recovery, for its current epoch");
    switch (to) {
    case QUEUE_HA_TRANSIENT:
        return current == QUEUE_HA_FAILED || current == QUEUE_HA_ONLINE || current == QUEUE_HA_RECOVERING ||
                       current == QUEUE_HA_OFFLINE
                   ? 1
                   : refuse(why, "TRANSIENT follows ONLINE, FAILED or a failed recovery");
    case QUEUE_HA_RECOVERING:
        return current == QUEUE_HA_TRANSIENT ? 1 : refuse(why, "RECOVERING follows TRANSIENT");
    default: /* ONLINE */
        return current == QUEUE_HA_RECOVERING ? 1 : refuse(why, "a pool process comes back ONLINE by recovering");
    }
}

static int decide_device(const struct queue_event *ev, int current, const char **why) {
    enum queue_ha_state to = ev->state;
    if (to == QUEUE_HA_RECOVERING || to == QUEUE_HA_OFFLINE)
        return refuse(why, "not a device state");
    if (current < 0 || to == QUEUE_HA_FAILED)
        return 1;
    static const int next[_QUEUE_HA_MAX][_QUEUE_HA_MAX] = {
        [QUEUE_HA_FAILED] = {[QUEUE_HA_REPAIR] = 1},
        [QUEUE_HA_REPAIR] = {[QUEUE_HA_REPAIRED] = 1},
        [QUEUE_HA_REPAIRED] = {[QUEUE_HA_REBALANCE] = 1, [QUEUE_HA_ONLINE] = 1},
        [QUEUE_HA_REBALANCE] = {[QUEUE_HA_ONLINE] = 1},
        [QUEUE_HA_ONLINE] = {[QUEUE_HA_TRANSIENT] = 1},
        [QUEUE_HA_TRANSIENT] = {[QUEUE_HA_ONLINE] = 1},
    };
    return (unsigned)current < _QUEUE_HA_MAX && next[current][to]
               ? 1
               : refuse(why, "a device goes FAILED -> REPAIR -> REPAIRED -> (REBALANCE ->) ONLINE, or ONLINE <-> "
                             "TRANSIENT");
}

int rm_decide(const struct recovery_model *m, const struct queue_event *ev, int current, int64_t incarnation,
              const char **why) {
    *why = NULL;
    char object[QUEUE_OBJECT_MAX];
    if (queue_event_object(ev, object) < 0)
        return refuse(why, "not a valid object");
    switch (ev->kind) {
    case QUEUE_KIND_NODE:
        if (ev->state != QUEUE_HA_ONLINE && ev->state != QUEUE_HA_FAILED && ev->state != QUEUE_HA_OFFLINE)
            return refuse(why, "a node is ONLINE, FAILED or OFFLINE");
        /* The end of a lease the node no longer holds, reported late. */
        if (ev->state == QUEUE_HA_FAILED && current == QUEUE_HA_ONLINE && ev->lease > 0 && incarnation > 0 &&
            ev->lease != incarnation)
            return refuse(why, "the end of an earlier incarnation: the node has joined again since");
        return 1;
    case QUEUE_KIND_PROCESS: {
        const struct rm_process *p = rm_find(m, object);
        if (p && p->pool)
            return decide_pool_process(p, ev, current, incarnation, why);
        break;
    }
    case QUEUE_KIND_DEVICE:
        return decide_device(ev, current, why);
    default:
        break;
    }
    return ev->state == QUEUE_HA_RECOVERING ? refuse(why, "only a pool process recovers") : 1;
}
