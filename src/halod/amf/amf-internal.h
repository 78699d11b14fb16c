/* SPDX-License-Identifier: MIT */
/* AMF runtime objects, shared by amf.c, the redundancy models (amf-2n.c) and status.c only. */
#pragma once

#include <jansson.h>
#include <stdbool.h>
#include <stdint.h>

#include "amf.h"
#include "halo/halo.h"
#include "time-util.h"

enum presence {
    PRESENCE_UNINSTANTIATED,
    PRESENCE_INSTANTIATING, /* spawned, not registered yet */
    PRESENCE_INSTANTIATED,  /* registered */
    PRESENCE_TERMINATING,   /* terminate callback sent or being killed */
    PRESENCE_RESTARTING,    /* dead, waiting for the restart delay */
    PRESENCE_FAILED,        /* not restarted: restart limit reached or spawn failed */
};

enum su_admin { SU_UNLOCKED, SU_LOCKED };
enum su_oper { SU_ENABLED, SU_DISABLED };

struct admin_waiter {
    struct conn *conn; /* NULL: nobody waits here */
    uint64_t seq;
    char *request; /* or: the key of a command another node forwarded, answered in the store */
    int64_t lease; /* that key's lease (its node's) */
    struct amf *amf;
};

/* A command this halod forwarded to another node (amf-cluster.c), waiting for its result. */
struct forward {
    struct forward *next;
    char *key;
    struct conn *conn; /* haloctl, waiting */
    uint64_t seq;
};

struct hc {
    struct hc *next;
    struct comp *comp;
    char *key;
    halo_hc_invoked invoked;
    halo_recovery recovery;
    uv_timer_t period; /* AMF-invoked: next check */
    uv_timer_t timeout;
    uint64_t pending; /* invocation of the check in flight */
    unsigned closing; /* timers still closing */
};

struct comp {
    struct amf *amf;
    struct su *su;
    const struct config_component *cfg;
    const char *name;
    enum presence presence;
    struct proc *proc;
    pid_t pid;
    struct conn *conn; /* the link it registered on */
    uv_timer_t timer;  /* instantiate or terminate timeout */
    struct hc *hcs;
    usec_t spawned_at;
    unsigned restarts; /* total, for status */
    char *last_exit;
    bool adopted;       /* started by a previous halod, watched through a pidfd */
    bool object_states; /* it wants the BQ's object states (Register.object_states) */
    bool states_resync; /* notes held back from a slow reader: a snapshot follows once it caught up */
};

struct su {
    struct amf *amf;
    struct sg *sg;
    const struct config_su *cfg;
    const char *name;
    bool local; /* on this node */
    struct comp *comps;
    size_t n_comps;
    enum su_admin admin;
    enum su_oper oper;
    bool failing;                          /* a failure is being recovered: waiting for its processes to end */
    bool admin_restart;                    /* the failure is an operator's restart: no backoff, not counted */
    bool adopting;                         /* its processes outlived a previous halod: waiting for them to register
                                            * again; its assignments were restored and stand still meanwhile */
    usec_t *fail_times;                    /* recent failures within the restart window, at most restart.max + 1 */
    unsigned n_fail_times, cap_fail_times; /* grown as failures come: most units never fail */
    usec_t delay;                          /* next restart delay */
    uv_timer_t restart_timer;
    uv_timer_t fence_timer; /* bounds the wait for fenced processes to die */
    char *last_failure;
    struct admin_waiter waiter; /* lock: replied when the SU holds no assignment */

    /* Several nodes.  A local SU: what was last published in sustate/<su>.
     * A remote one: what its node published there. */
    struct su_report {
        bool known; /* published (local) / the key exists (remote) */
        bool in_service;
        bool failing; /* fencing or restarting after a failure */
        bool fenced;  /* none of its processes runs */
    } report;
};

struct assignment {
    struct su *su;        /* NULL: slot unused */
    halo_ha_state state;  /* confirmed */
    halo_ha_state target; /* requested; == state when nothing is in flight */
    unsigned pending;     /* invocations in flight */
    bool removing;        /* CSI remove in flight: the slot frees when pending reaches 0 */
    bool confirmed;       /* state was confirmed at least once */
    uint64_t gen;         /* several nodes: the generation of the target (target/<si>/<su>) */
};

#define SI_ASSIGNMENTS_MAX 2

struct si {
    struct amf *amf;
    struct sg *sg;
    const struct config_si *cfg;
    const char *name;
    struct assignment asg[SI_ASSIGNMENTS_MAX];
    bool switchover;        /* an operator asked to move ACTIVE to the standby */
    uint64_t generation;    /* bumped on every confirmed change, persisted */
    char *preferred_active; /* from the store after a restart */
    struct admin_waiter waiter;
    usec_t unassigned_since;
    struct su *fencing; /* the failed former ACTIVE: promote only once its processes are gone */
};

struct node_info {
    char *name;
    bool alive; /* its node key exists (its lease is held) */
};

struct invocation;
struct tracker;

struct amf {
    uv_loop_t *loop;
    const struct config *config;
    char *node;
    char *socket_path;
    char *prefix; /* "/halo/<cluster>/" */
    struct supervisor *sup;
    store *store;
    struct sg *sgs;
    size_t n_sgs;
    struct invocation *invs;
    uint64_t next_inv;
    struct tracker *trackers;
    bool stopping;
    amf_stopped_cb stopped_cb;
    void *stopped_userdata;
    uv_idle_t stop_check;

    /* Several nodes (etcd): NULL on a single node, where this halod decides everything. */
    struct cluster *cluster;
    bool coordinator; /* this halod runs the redundancy models: always true on a single node */
    store_watch *watch;
    int64_t loaded_revision;
    struct node_info *nodes; /* nodes seen in the store */
    size_t n_nodes;
    struct events *events;     /* the EQ and the BQ (amf-events.c) */
    struct recovery *recovery; /* this node's pool processes (amf-recovery.c); NULL without pools */
    struct forward *forwards;  /* commands sent to the node that runs them */
    uint64_t n_forwarded;
    int64_t ran[16]; /* create revisions of the forwarded commands run lately */
    size_t ran_next;
    bool restored; /* the previous state was read back: registrations are taken */

    /* CDB roles driven by a service group (amf-cdb.c) */
    struct ha *ha;
    struct sg *cdb_sg;
    uv_timer_t cdb_timer;
};

struct redundancy_ops {
    const char *name;
    /* Looks at the SG and issues the next actions; called after every change. */
    void (*evaluate)(struct sg *sg);
};

struct sg {
    struct amf *amf;
    const struct config_sg *cfg;
    const char *name;
    struct su *sus;
    size_t n_sus;
    struct si *sis;
    size_t n_sis;
    const struct redundancy_ops *ops;
};

extern const struct redundancy_ops amf_2n_ops;

/* amf-cdb.c */
struct ha;
int amf_cdb_roles_init(struct amf *a, struct ha *ha, const char *token);
void amf_cdb_roles_schedule(struct amf *a, uint64_t delay_msec);
void amf_cdb_roles_evaluate(struct amf *a);

/* Helpers the redundancy models use. */
bool amf_su_in_service(const struct su *su);

/* The SI's assignment whose target is state, or NULL. */
static inline struct assignment *amf_si_find(struct si *si, halo_ha_state state) {
    for (size_t i = 0; i < SI_ASSIGNMENTS_MAX; i++)
        if (si->asg[i].su && si->asg[i].target == state)
            return &si->asg[i];
    return NULL;
}

/* The SI's assignment on su, or NULL. */
static inline struct assignment *amf_si_find_su(struct si *si, const struct su *su) {
    for (size_t i = 0; i < SI_ASSIGNMENTS_MAX; i++)
        if (si->asg[i].su == su)
            return &si->asg[i];
    return NULL;
}

/* Whether an invocation for one of the SI's assignments is in flight. */
static inline bool amf_si_busy(const struct si *si) {
    for (size_t i = 0; i < SI_ASSIGNMENTS_MAX; i++)
        if (si->asg[i].su && si->asg[i].pending)
            return true;
    return false;
}
/* Sends CSI set for every CSI of si to su's components; returns 0 or -errno. */
int amf_assign(struct si *si, struct su *su, halo_ha_state state, halo_csi_transition transition);
/* Sends CSI remove to the assignment's components. */
int amf_unassign(struct si *si, struct assignment *a);
/* Called by the model when a switchover it drove has completed or was abandoned. */
void amf_switchover_done(struct si *si, int error);
/* Lock waiters: called when an SU may have lost its last assignment. */
void amf_su_check_lock_done(struct su *su);

/* Several nodes (amf-cluster.c). */
struct su *amf_find_su(struct amf *a, const char *name);
struct si *amf_find_si(struct amf *a, const char *name);
void amf_asg_clear(struct si *si, struct assignment *a);
void amf_asg_step_done(struct si *si, struct su *su);
void amf_su_fail(struct su *su, const char *why, bool counted);
void amf_sg_changed(struct sg *sg);
/* Several nodes: an adopted SU registered again; bring its targets up to date. */
void cl_adopted(struct su *su);
/* The coordinator decided: publish the target of su's assignment of si. */
void cl_publish_target(struct si *si, struct assignment *a);
/* This node finished applying a target to its SU: publish what it holds now
 * (removed: it holds nothing). */
void cl_publish_confirmed(struct si *si, struct assignment *a, bool removed);
/* The coordinator forgot an assignment: delete its keys. */
void cl_forget(struct si *si, struct su *su);
/* Publishes the local SUs' in-service state if it changed. */
void cl_publish_sustate(struct su *su);
/* Handles a key under the cluster prefix, from the first read or the watch. */
void cl_handle_kv(struct amf *a, const store_kv *kv, bool deleted);
/* The first read is done: start watching from the revision after it. */
int cl_watch_start(struct amf *a, int64_t revision);
/* Sends an operator command to the node that runs it (to: a node, or "" for the
 * coordinator); the reply to conn follows when that node has run it. */
int cl_admin_forward(struct amf *a, struct conn *conn, uint64_t seq, int op, const char *target, const char *to);
/* The result of a forwarded command this node ran. */
void cl_admin_result(struct admin_waiter *w, int error);
/* haloctl closed its connection: forget what it waits for. */
void cl_admin_conn_closed(struct amf *a, struct conn *conn);
/* Runs an operator command that changes the model; replies through w. */
void amf_admin_run(struct amf *a, int op, const char *target, struct admin_waiter w);
void cl_close(struct amf *a);
void cl_free(struct amf *a);

/* HA events (amf-events.c).  kind: "node", "process", "su"; state: "ONLINE", "FAILED", ... */
void amf_event(struct amf *a, const char *kind, const char *name, const char *state, const char *reason);
/* The same with the object's epoch (the recovery protocol's reports). */
void amf_event_epoch(struct amf *a, const char *kind, const char *name, const char *state, const char *reason,
                     int64_t epoch);
/* The state the BQ last published for object (an enum queue_ha_state), or -ENOENT. */
int amf_events_state(struct amf *a, const char *object);
const struct recovery_model *amf_events_model(struct amf *a);
/* haloctl events [--follow], haloctl failvec: answered from the store (Admin ops EVENTS, EVENTS_FOLLOW, FAILVEC). */
void amf_events_admin(struct amf *a, struct conn *conn, int op, uint64_t seq, const char *target);
void amf_events_conn_closed(struct amf *a, struct conn *conn);

/* amf-recovery.c: the local recovery of this node's pool processes (docs/recovery.md). */
int amf_recovery_start(struct amf *a);
void amf_recovery_close(struct amf *a);
/* A pool process registered: true if it must recover before it is ONLINE (no ONLINE report now). */
bool amf_recovery_registered(struct amf *a, struct comp *c);
/* Its process ended. */
void amf_recovery_failed(struct amf *a, struct comp *c);
/* It asked for its entrypoint: true if a recovery (or its refusal) follows by RecoveryNote. */
bool amf_recovery_entrypoint(struct amf *a, struct comp *c);
/* A ProcessEvent (its Event value): 0 or -HALO_EBADSTATE. */
int amf_recovery_event(struct amf *a, struct comp *c, int event, const char *reason);
/* Adds "recovery": {pool, state, epoch, reason} to a component's status object. */
void amf_recovery_status(struct amf *a, const struct comp *c, json_t *obj);
int amf_events_start(struct amf *a);
void amf_events_snapshot(struct amf *a, struct conn *conn);
/* A slow reader read what was queued for it: the snapshot it missed notes for. */
void amf_events_drained(struct amf *a, struct conn *conn);
void amf_events_coordinator(struct amf *a, bool on);
int amf_object_states(struct amf *a, char *const *objects, size_t n, Halo__Link__ObjectState *out);
struct queue_stats;
void amf_events_stats(struct amf *a, struct queue_stats *ret, uint64_t *dropped);
void amf_events_close(struct amf *a);
void amf_events_free(struct amf *a);

/* Accessors for status.c. */
struct amf_view {
    const char *node;
    const char *coordinator; /* NULL: none known */
    const char *cluster;
    const struct config *config;
    struct sg *sgs;
    size_t n_sgs;
};
void amf_view(struct amf *a, struct amf_view *ret);
const char *presence_to_string(enum presence p);
