/* SPDX-License-Identifier: MIT */
/*
 * The wiring of the layers above io that halod builds the same way on one
 * node and on several: the AMF's observers and the event queue's consumer.
 * Apart from manager.c so that test-dispatch wires them as halod does without
 * linking the real io (manager-internal.h).
 */
#define LOG_AREA LOG_AREA_MAIN
#include "log.h"
#include "manager-internal.h"

/* What a node that is not live any more left (its transactions, its events) is the cluster
 * coordinator's to finish. */
bool manager_takes_over(void *userdata, const char *node) {
    struct manager *m = userdata;
    if (!m->cluster || !m->sync || !cluster_is_coordinator(m->cluster))
        return false;
    const char *live[256];
    size_t n = cluster_sync_live_nodes(m->sync, live, ELEMENTSOF(live));
    for (size_t i = 0; i < n && i < ELEMENTSOF(live); i++)
        if (streq(live[i], node))
            return false;
    return n > 0 && n <= ELEMENTSOF(live);
}

int manager_build_observers(struct manager *m) {
    struct queue_params qp = {.loop = m->loop, .store = m->store, .prefix = m->prefix, .node = m->node};
    int r = queue_new(&qp, &m->queue);
    if (r >= 0)
        r = queue_reporter_new(m->loop, m->queue, m->node, &m->reporter);
    if (r < 0)
        return log_error_errno(r, "Failed to set up the event queues: %m");
    r = rm_new(m->config, &m->model);
    if (r < 0) /* halod --check refuses what rm_new() would */
        log_warning_errno(r, "No recovery model (HA state rules and failure expansion are off): %m");
    struct recovery_local_params rp = {.loop = m->loop,
                                       .amf = m->amf,
                                       .store = m->store,
                                       .prefix = m->prefix,
                                       .queue = m->queue,
                                       .reporter = m->reporter,
                                       .model = m->model};
    r = recovery_local_new(&rp, &m->recovery);
    if (r >= 0) {
        struct events_params ep = {.loop = m->loop,
                                   .store = m->store,
                                   .prefix = m->prefix,
                                   .amf = m->amf,
                                   .queue = m->queue,
                                   .model = m->model};
        r = events_new(&ep, &m->events);
    }
    if (r < 0)
        return log_error_errno(r, "Failed to set up the recovery and the events: %m");
    struct logsvc_params lp = {
        .loop = m->loop, .amf = m->amf, .config = m->config, .node = m->node, .state_dir = m->opt.state_dir};
    r = logsvc_new(&lp, &m->logsvc);
    if (r < 0)
        return log_error_errno(r, "Failed to set up the log service: %m");
    struct txnsvc_params tp = {.loop = m->loop,
                               .store = m->store,
                               .prefix = m->prefix,
                               .node = m->node,
                               .amf = m->amf,
                               .takes_over = manager_takes_over,
                               .userdata = m};
    r = txnsvc_new(&tp, &m->txnsvc);
    if (r < 0)
        return log_error_errno(r, "Failed to set up the transactions: %m");
    return 0;
}

static size_t live_nodes(void *userdata, const char **out, size_t max) {
    return cluster_sync_live_nodes(userdata, out, max);
}

int manager_build_coord(struct manager *m) {
    struct recovery_coord_params cp = {.loop = m->loop,
                                       .store = m->store,
                                       .prefix = m->prefix,
                                       .node = m->node,
                                       .queue = m->queue,
                                       .model = m->model,
                                       .pools = m->config->n_pools > 0,
                                       .cluster = m->cluster,
                                       .live_nodes = m->sync ? live_nodes : NULL,
                                       .live_userdata = m->sync};
    int r = recovery_coord_new(&cp, &m->coord);
    if (r < 0)
        return log_error_errno(r, "Failed to set up the event queue's consumer: %m");
    return 0;
}
