/* SPDX-License-Identifier: MIT */
/* This node's reports to the event queue, batched per loop iteration (queue-report.h). */
#define LOG_AREA LOG_AREA_AMF
#include "queue-report.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "log.h"
#include "macro.h"

struct queue_reporter {
    struct queue *q;
    char *node;
    struct queue_event *pending; /* reports of this iteration */
    size_t n_pending;
    uint64_t lost;
    uv_timer_t flush;
};

void queue_object_part(char *out, size_t n, const char *name) {
    snprintf(out, n, "%s", name);
    for (char *p = out; *p; p++)
        if (*p == '/')
            *p = ':';
}

static void on_appended(struct queue *q, int error, size_t n, void *userdata) {
    struct queue_reporter *r = userdata;
    if (error < 0 && error != -ECANCELED) {
        log_warning_errno(error, "Failed to append HA events to the event queue: %m");
        r->lost++;
    }
}

static void on_flush(uv_timer_t *t) {
    struct queue_reporter *r = t->data;
    if (r->n_pending == 0)
        return;
    int e = eq_append(r->q, r->pending, r->n_pending, on_appended, r);
    if (e < 0 && e != -ECANCELED) {
        log_warning_errno(e, "Failed to append %zu HA events to the event queue: %m", r->n_pending);
        r->lost += r->n_pending;
    }
    r->n_pending = 0;
}

static void report(struct queue_reporter *r, enum queue_kind kind, const char *name, enum queue_ha_state state,
                   const char *reason, int64_t epoch, int64_t lease) {
    if (r->n_pending >= QUEUE_REPORTS_PENDING_MAX) {
        r->lost++;
        return;
    }
    char object[QUEUE_OBJECT_MAX], part[QUEUE_NAME_MAX + 1];
    queue_object_part(part, sizeof(part), name);
    snprintf(object, sizeof(object), "%s:%s", queue_kind_to_string(kind) ?: "?", part);
    struct queue_event *ev = &r->pending[r->n_pending];
    if (queue_event_init(ev, object, state) < 0) {
        r->lost++;
        return;
    }
    snprintf(ev->node, sizeof(ev->node), "%s", r->node);
    ev->epoch = epoch;
    ev->lease = lease;
    if (reason)
        snprintf(ev->reason, sizeof(ev->reason), "%s", reason);
    r->n_pending++;
    if (!uv_is_active((uv_handle_t *)&r->flush))
        uv_timer_start(&r->flush, on_flush, QUEUE_REPORT_GROUP_MSEC, 0);
}

void queue_report(struct queue_reporter *r, enum queue_kind kind, const char *name, enum queue_ha_state state,
                  const char *reason, int64_t epoch) {
    report(r, kind, name, state, reason, epoch, 0);
}

void queue_report_node(struct queue_reporter *r, const char *node, enum queue_ha_state state, const char *reason,
                       int64_t lease) {
    report(r, QUEUE_KIND_NODE, node, state, reason, QUEUE_EPOCH_NONE, lease > 0 ? lease : 0);
}

uint64_t queue_reporter_lost(const struct queue_reporter *r) {
    return r ? r->lost : 0;
}

int queue_reporter_new(uv_loop_t *loop, struct queue *q, const char *node, struct queue_reporter **ret) {
    struct queue_reporter *r = calloc(1, sizeof(*r));
    if (!r)
        return -ENOMEM;
    r->q = q;
    r->node = strdup(node);
    r->pending = calloc(QUEUE_REPORTS_PENDING_MAX, sizeof(*r->pending));
    if (!r->node || !r->pending) {
        free(r->node);
        free(r->pending);
        free(r);
        return -ENOMEM;
    }
    uv_timer_init(loop, &r->flush);
    r->flush.data = r;
    *ret = r;
    return 0;
}

static void on_closed(uv_handle_t *h) {
    struct queue_reporter *r = h->data;
    free(r->node);
    free(r->pending);
    free(r);
}

struct queue_reporter *queue_reporter_free(struct queue_reporter *r) {
    if (r)
        uv_close((uv_handle_t *)&r->flush, on_closed);
    return NULL;
}
