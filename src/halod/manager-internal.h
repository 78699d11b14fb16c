/* SPDX-License-Identifier: MIT */
/* The manager's state, read by the top layer's files: dispatch.c, status.c (not below them). */
#pragma once

#include "amf-persist.h"
#include "amf-roles.h"
#include "amf.h"
#include "cdb-link.h"
#include "cdb.h"
#include "cluster-forward.h"
#include "cluster-sync.h"
#include "cluster.h"
#include "config.h"
#include "events.h"
#include "evt.h"
#include "ha.h"
#include "http.h"
#include "lease-file.h"
#include "link.h"
#include "list.h"
#include "logsvc.h"
#include "txnsvc.h"
#include "manager.h"
#include "metrics.h"
#include "name.h"
#include "notify.h"
#include "queue-report.h"
#include "queue.h"
#include "recovery-coord.h"
#include "recovery-local.h"
#include "recovery-model.h"
#include "server.h"
#include "store.h"
#include "supervisor.h"

struct admin_wait;

/* A description's digest: sha256 in hex, and the NUL. */
#define MANAGER_DIGEST_MAX 65

struct manager {
    uv_loop_t *loop;
    struct manager_options opt;
    struct config *config;
    struct config **retired; /* descriptions a reload replaced: the AMF's older objects point into them */
    size_t n_retired;
    const char *node;
    char prefix[STORE_KEY_MAX]; /* "/halo/<cluster>/" */
    char socket[PATH_MAX];
    char store_name[PATH_MAX];
    store *store;
    struct supervisor *sup;
    struct server *server;
    struct http_server *http;
    char *http_token, *http_cert_pem, *http_key_pem; /* read at start; kept while the server runs */
    struct lease_file *lease;                        /* several nodes: the deadline the processes enforce */
    /* The AMF and its observers. */
    struct amf *amf;
    struct amf_persist *persist;
    struct metrics *metrics; /* failovers and their durations (metrics.c) */
    struct queue *queue;
    struct queue_reporter *reporter;
    struct recovery_model *model;
    struct recovery_local *recovery;
    struct recovery_coord *coord;
    struct events *events;
    struct logsvc *logsvc;
    struct txnsvc *txnsvc;
    /* Several nodes (etcd). */
    struct cluster *cluster;
    struct cluster_forward *forward;
    struct cluster_sync *sync;
    /* The configuration database. */
    struct cdb *cdb;
    struct cdb_link *cdb_link;
    struct evt *evt; /* the event channels (svc/evt.h) */
    struct ha *ha;
    struct amf_roles *roles;
    struct cdb_group *cdb_groups; /* the cdb-roles groups with a cdb-subtree (manager-cdb.c) */
    size_t n_cdb_groups;
    struct ckpt_svc *ckpt; /* the checkpoint service (svc/ckpt.h) */
    /* The services (svc/). */
    struct name_service *names;
    /* haloctl's commands waiting for the AMF (dispatch.c). */
    LIST_HEAD(struct admin_wait) waits;
    struct notifier *notify; /* the service manager (systemd), if it listens */
    uv_signal_t sigterm, sigint, sighup;
    bool signals;        /* sigterm, sigint and sighup are open */
    bool amf_closed;     /* its handles are closing */
    bool cluster_closed; /* the lease is given up, the timers are closing */
    unsigned n_term;
    int lock_fd;
    struct failfast *failfast;       /* a node failfast's action, armed once every component is gone */
    bool failed_fast;                /* halod ends because of a node failfast: it exits with a failure */
    char digest[MANAGER_DIGEST_MAX]; /* sha256 of the running description's bytes, hex (docs/store.md) */
};

/* A cdb-roles group with a cdb-subtree: its subtree of the CDB is a database of its own on every node
 * (<state-dir>/cdb-<group>.db) whose roles follow the group's assignments, replicated over the node's
 * replication listener, reached by the clients through the main link by path (cdb-link.c). */
struct cdb_group {
    char *sg, *subtree; /* copies: a reload replaces the description */
    struct cdb *cdb;
    struct ha *ha;
    struct amf_roles *roles;
};

/* manager-cdb.c: opens them after the main database (m->cdb, m->cdb_link, m->ha); closes them
 * (roles and ha first, then the files once the link is gone). */
int manager_cdb_groups_open(struct manager *m, const char *listen);
void manager_cdb_groups_stop(struct manager *m);
/* A reload changed the replication's timing (cdb: tick, dead-after, replication). */
void manager_cdb_groups_set_replication(struct manager *m, const struct config_cdb *c);
void manager_cdb_groups_close(struct manager *m);
/* The status of each, or NULL when there is none (status.c). */
struct json_t *manager_cdb_groups_json(struct manager *m);

/* manager.c, also for the unit tests that wire the layers above io as halod does:
 * the AMF's observers (the event queues, the reporter, the recovery model,
 * recovery-local, events) once m->amf exists, and the event queue's consumer
 * (recovery-coord) once they and, with several nodes, the cluster exist. */
int manager_build_observers(struct manager *m);
/* dispatch.c: an operator command that is not the AMF's (for cluster-forward too). */
int dispatch_run_other(void *userdata, int op, const char *target);
int manager_build_coord(struct manager *m);
/* manager-wire.c: whether this node finishes what node left (node is not live, this node is the
 * cluster's coordinator); userdata is the manager. */
bool manager_takes_over(void *userdata, const char *node);

/* manager-reload.c: SIGHUP and haloctl reload (who: for the log).  Loads the description again and
 * applies what changed, or refuses it all: 0 applied, -HALO_EBADSTATE refused (the errors logged),
 * -ENOMEM.  *ret_json (may be NULL) gets the outcome: {"applied": true, "summary", "digest"} or
 * {"applied": false, "errors": ["FILE:LINE:COLUMN: message", ...]}. */
int manager_reload(struct manager *m, const char *who, char **ret_json);
/* manager-reload-settings.c: why the changes of components' settings of group og -> ng (its running
 * and its new description) that d holds are not applied live, or NULL (the reason may be written
 * into buf); whether any component of both differs. */
const char *manager_comp_settings_refusal(const struct config_sg *og, const struct config_sg *ng,
                                          const struct config_diff *d, char *buf, size_t size);
bool manager_comps_differ(const struct config_sg *og, const struct config_sg *ng);
/* Why a group's setting changed or a unit's node (ch->group_setting, ch->unit_node; og -> ng) is not
 * applied live, or NULL (nothing to do for a unit's node given as the one it had). */
const char *manager_settings_refusal(const struct config_sg *og, const struct config_sg *ng,
                                     const struct config_change *ch);
/* The groups whose settings d changes take them (m->config, the new description): the count. */
size_t manager_apply_group_settings(struct manager *m, const struct config_diff *d);
/* manager-reload-cluster.c: the changes under the nodes, pools and cdb sections.  Whether ch is one;
 * then *ret_why is why it cannot be applied now, or NULL (the reason may be written into buf). */
bool manager_reload_cluster_check(struct manager *m, const struct config *new, const struct config_change *ch,
                                  const char **ret_why, char *buf, size_t size);
/* How many of d's changes are under those sections: the new description must then run (retired). */
size_t manager_reload_cluster_changes(const struct config_diff *d);
/* Applies them, once m->config is the new description and old the one it replaced; their summary
 * (", 1 node added, ...") into text (size bytes): the length written. */
size_t manager_reload_cluster_apply(struct manager *m, const struct config *old, const struct config_diff *d,
                                    char *text, size_t size);
/* The sha256 of c's bytes as read, in hex. */
void manager_digest(const struct config *c, char ret[static MANAGER_DIGEST_MAX]);
/* Publishes m->digest and the names of the description's service groups in this node's key (several
 * nodes): haloctl status names the groups the coordinator does not have (docs/store.md). */
void manager_publish_description(struct manager *m);

/* dispatch.c: the HA link's messages, one switch per peer. */
void dispatch_msg(struct manager *m, struct conn *c, const LinkMsg *msg);
void dispatch_conn_closed(struct manager *m, struct conn *c, const char *reason);
void dispatch_conn_drained(struct manager *m, struct conn *c);
void dispatch_free(struct manager *m);

/* status.c: the documents composed from every subsystem. */
/* The coordinator's name (one node: this one), NULL while none is known. */
const char *status_coordinator(struct manager *m);
char *status_json(struct manager *m);
int status_metrics(struct manager *m, char **ret_text);
/* The entrypoint document; recovery: the asking process must recover first. -EAGAIN while no coordinator is known. */
int status_entrypoint(struct manager *m, bool recovery, char **ret_json);
