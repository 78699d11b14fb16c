/* SPDX-License-Identifier: MIT */
/* The Availability Management Framework: component life cycle, assignments, failover. */
#pragma once

#include <uv.h>

#include "config.h"
#include "link.h"
#include "server.h"
#include "store.h"
#include "supervisor.h"

struct amf;

struct amf_params {
    uv_loop_t *loop;
    const struct config *config;
    const char *node;        /* this node's name */
    const char *socket_path; /* given to components as HALO_SOCKET */
    struct supervisor *sup;
    store *store;
};

int amf_new(const struct amf_params *p, struct amf **ret);
/* Closes the AMF's libuv handles; run the loop until they are closed, then amf_free(). */
void amf_close(struct amf *a);
struct amf *amf_free(struct amf *a);

/* The configuration database's roles (shown in the status); a service group with
 * cdb-roles drives them, with token, the nodes' shared one (cdb.token-file;
 * NULL when not set).  Call once after amf_new().  Returns 0 or -ENOMEM. */
struct ha;
int amf_set_cdb(struct amf *a, struct ha *ha, const char *token);

/* Reads the state a previous halod left in the store, then instantiates the
 * components of this node.  Returns 0 or -errno (the store read failed to start). */
int amf_start(struct amf *a);

/* Messages from components and haloctl, after the server validated them. */
void amf_handle_msg(struct amf *a, struct conn *c, const LinkMsg *m);
void amf_conn_closed(struct amf *a, struct conn *c, const char *reason);
/* Everything queued for c was sent (server_handlers.on_drained). */
void amf_conn_drained(struct amf *a, struct conn *c);

/* Graceful stop: terminate callbacks, then SIGKILL after each component's
 * terminate timeout.  cb runs once every component process has exited. */
typedef void (*amf_stopped_cb)(struct amf *a, void *userdata);
void amf_stop(struct amf *a, amf_stopped_cb cb, void *userdata);
/* Immediate stop: SIGKILL every component now (second SIGTERM). */
void amf_kill_all(struct amf *a);

/* Several nodes: the membership module's events (cluster.h). */
struct cluster;
void amf_set_cluster(struct amf *a, struct cluster *c);
void amf_cluster_joined(struct amf *a);
void amf_cluster_coordinator(struct amf *a, bool coordinator);
void amf_cluster_fence(struct amf *a);

/* The cluster status as JSON (malloc'ed), the document haloctl and the HTTP API show. */
char *amf_status_json(struct amf *a);
/* POST /v1/events: an event, an array of them, or {"events": [...]}, checked
 * against the model and appended to the event queue.  0 (*reply: JSON),
 * -EINVAL / -ENOENT / -EAGAIN with *error set. */
int amf_events_post(struct amf *a, const char *body, size_t len, char **reply, const char **error);

/* The entrypoint document (coordinator, quorum, the ACTIVE of every SI marked
 * `entrypoint`); -EAGAIN while no coordinator is known. */
int amf_entrypoint_json(struct amf *a, char **ret);
/* Prometheus text exposition of the cluster as this node sees it. */
int amf_metrics_text(struct amf *a, char **ret);
