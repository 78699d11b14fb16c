/* SPDX-License-Identifier: MIT */
/* POST /v1/events: what external monitors report (hax's watcher endpoints), checked and appended to the EQ. */
#define LOG_AREA LOG_AREA_AMF
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "events-internal.h"
#include "log.h"
#include "macro.h"
#include "queue-report.h"

/* At most this many events in one request. */
#define EVENTS_POST_MAX QUEUE_REPORTS_PENDING_MAX

static void on_appended(struct queue *q, int error, size_t n, void *userdata) {
    struct events *e = userdata;
    if (error < 0 && error != -ECANCELED) {
        log_warning_errno(error, "Failed to append HA events to the event queue: %m");
        e->lost++;
    }
}

/* The component a process, component or unit event is about (a unit's first:
 * the unit fails as a whole), or NULL for another kind of object. */
static const char *owned_comp(struct events *e, const struct queue_event *ev) {
    if (ev->kind == QUEUE_KIND_SU) {
        struct su *su = amf_find_su(e->amf, ev->name);
        return su && su->n_comps ? su->comps[0].name : NULL;
    }
    if (ev->kind != QUEUE_KIND_PROCESS && ev->kind != QUEUE_KIND_COMP)
        return NULL;
    size_t n_sgs;
    struct sg *sgs = amf_sgs(e->amf, &n_sgs);
    for (size_t g = 0; g < n_sgs; g++)
        for (size_t u = 0; u < sgs[g].n_sus; u++)
            for (size_t c = 0; c < sgs[g].sus[u].n_comps; c++) {
                char n[QUEUE_NAME_MAX + 1];
                queue_object_part(n, sizeof(n), sgs[g].sus[u].comps[c].name);
                if (streq(n, ev->name))
                    return sgs[g].sus[u].comps[c].name;
            }
    return NULL;
}

/* The objects an outside report may name. */
static bool object_known(struct events *e, const struct queue_event *ev) {
    switch (ev->kind) {
    case QUEUE_KIND_NODE:
        return config_find_node(amf_config(e->amf), ev->name) != NULL;
    case QUEUE_KIND_SERVICE:
    case QUEUE_KIND_DEVICE: {
        char object[QUEUE_OBJECT_MAX];
        return e->model && queue_event_object(ev, object) == 0 && rm_known(e->model, object);
    }
    case QUEUE_KIND_SU:
        return amf_find_su(e->amf, ev->name) != NULL;
    case QUEUE_KIND_PROCESS:
    case QUEUE_KIND_COMP:
        return owned_comp(e, ev) != NULL;
    default:
        return false;
    }
}

/*
 * Whether an outside report agrees with what halo knows of an object it owns
 * (one source of truth: every state published equals what haloctl status
 * shows).  A process's state comes from its halod: the only outside report
 * taken is FAILED, as an error report (*fail set).  A node's comes from its
 * lease: FAILED or OFFLINE only for a node that holds none, ONLINE only for
 * one that does.  Devices and services are the monitors' to report.
 */
static int owned_check(struct events *e, const struct queue_event *ev, const struct events_owners *o, const char **fail,
                       const char **error) {
    *fail = NULL;
    if (ev->kind == QUEUE_KIND_NODE) {
        int alive = o && o->node_alive ? o->node_alive(o->userdata, ev->name) : 0;
        if (alive && ev->state != QUEUE_HA_ONLINE) {
            *error = "the node holds its lease: halo sees it in the cluster (a node fails when its lease ends)";
            return -EPERM;
        }
        if (!alive && ev->state == QUEUE_HA_ONLINE) {
            *error = "the node holds no lease: it is not in the cluster";
            return -EPERM;
        }
        return 0;
    }
    if (ev->kind != QUEUE_KIND_PROCESS && ev->kind != QUEUE_KIND_COMP && ev->kind != QUEUE_KIND_SU)
        return 0;
    if (ev->state != QUEUE_HA_FAILED) {
        *error = "a process's state comes from its halod; an outside report can only say it FAILED";
        return -EPERM;
    }
    *fail = owned_comp(e, ev);
    return 0;
}

int events_post(struct events *e, const char *body, size_t len, const struct events_owners *owners, char **reply,
                const char **error) {
    struct queue_event *evs = NULL;
    const char **fails = NULL;
    size_t n = 0, n_queued = 0, n_fails = 0;
    int r = queue_events_parse_body(body, len, amf_node(e->amf), EVENTS_POST_MAX, &evs, &n, error);
    if (r < 0)
        return r;
    fails = calloc(n ?: 1, sizeof(*fails));
    if (!fails)
        r = -ENOMEM;
    for (size_t i = 0; i < n && r == 0; i++) {
        const char *comp;
        if (!object_known(e, &evs[i])) {
            *error = "an event names an object that is not in the cluster description";
            r = -ENOENT;
        } else if ((r = owned_check(e, &evs[i], owners, &comp, error)) == 0) {
            if (comp)
                fails[n_fails++] = comp;
            else
                evs[n_queued++] = evs[i];
        }
    }
    if (r == 0 && n_queued > 0) {
        r = eq_append(e->q, evs, n_queued, on_appended, e);
        if (r == -EBUSY || r == -ERANGE) {
            *error = r == -EBUSY ? "the event queue is busy; retry" : "an event's hlc is too far ahead";
            r = r == -EBUSY ? -EAGAIN : -EINVAL;
        }
    }
    /* Error reports last: nothing is done for a request refused above. */
    for (size_t i = 0; r == 0 && i < n_fails; i++) {
        int k = owners && owners->fail ? owners->fail(owners->userdata, fails[i]) : -EOPNOTSUPP;
        if (k < 0)
            log_warning_errno(k, "Failed to report component '%s' FAILED: %m", fails[i]);
    }
    free(evs);
    free(fails);
    if (r == 0) {
        json_t *ok =
            json_pack("{s:b, s:i, s:i}", "accepted", 1, "events", (int)n_queued, "error_reports", (int)n_fails);
        *reply = ok ? json_dumps(ok, JSON_COMPACT) : NULL;
        json_decref(ok);
    }
    return r;
}
