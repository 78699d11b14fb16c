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
    case QUEUE_KIND_COMP: {
        size_t n_sgs;
        struct sg *sgs = amf_sgs(e->amf, &n_sgs);
        for (size_t g = 0; g < n_sgs; g++)
            for (size_t u = 0; u < sgs[g].n_sus; u++)
                for (size_t c = 0; c < sgs[g].sus[u].n_comps; c++) {
                    char n[QUEUE_NAME_MAX + 1];
                    queue_object_part(n, sizeof(n), sgs[g].sus[u].comps[c].name);
                    if (streq(n, ev->name))
                        return true;
                }
        return false;
    }
    default:
        return false;
    }
}

int events_post(struct events *e, const char *body, size_t len, char **reply, const char **error) {
    struct queue_event *evs = NULL;
    size_t n = 0;
    int r = queue_events_parse_body(body, len, amf_node(e->amf), EVENTS_POST_MAX, &evs, &n, error);
    if (r < 0)
        return r;
    for (size_t i = 0; i < n && r == 0; i++)
        if (!object_known(e, &evs[i])) {
            *error = "an event names an object that is not in the cluster description";
            r = -ENOENT;
        }
    if (r == 0) {
        r = eq_append(e->q, evs, n, on_appended, e);
        if (r == -EBUSY || r == -ERANGE) {
            *error = r == -EBUSY ? "the event queue is busy; retry" : "an event's hlc is too far ahead";
            r = r == -EBUSY ? -EAGAIN : -EINVAL;
        }
    }
    free(evs);
    if (r == 0) {
        json_t *ok = json_pack("{s:b, s:i}", "accepted", 1, "events", (int)n);
        *reply = ok ? json_dumps(ok, JSON_COMPACT) : NULL;
        json_decref(ok);
    }
    return r;
}
