/* SPDX-License-Identifier: MIT */
/*
 * The Availability Management Framework: component life cycle, assignments,
 * failover, health checks, protection-group tracking and the operator's verbs.
 *
 * The AMF owns the model (amf-model.h) and nothing else.  What it decides it
 * announces to its observers (persistence, cluster sync, CDB roles, recovery,
 * events); where a decision is carried out is its placement's business: here
 * on one node, or published for the unit's own node on several.  It talks to
 * components through io/server and runs them through io/supervisor; it never
 * touches the store.
 */
#pragma once

#include <stdint.h>
#include <stdio.h>
#include <uv.h>

#include "amf-model.h"
#include "config.h"
#include "supervisor.h"

struct amf;
struct conn;

struct amf_params {
    uv_loop_t *loop;
    const struct config *config;
    const char *node;        /* this node's name */
    const char *socket_path; /* given to components as HALO_SOCKET */
    const char *crash_dir;   /* where libhalo writes a component's crash (amf-crash.c); NULL: nowhere */
    /* This halod's state directory, absolute: put in each process it starts for a component (HALO_OWNER), which
     * the next halod on the same directory finds again (amf_restore_survivors()); NULL: neither. */
    const char *owner;
    struct supervisor *sup;
};

/* Builds the model of config for node.  0, -ENOMEM. */
int amf_new(const struct amf_params *p, struct amf **ret);
/* Closes the AMF's libuv handles; run the loop until they are closed, then amf_free(). */
void amf_close(struct amf *a);
/* Every waiter still registered is done with -ECANCELED.  Accepts NULL; returns NULL. */
struct amf *amf_free(struct amf *a);
/* On several nodes: halo-guard's path, the lease file it watches, and the directory of the guarded components'
 * files (docs/design.md, "The lease's fence of what libhalo cannot fence").  0 or -ENOMEM. */
int amf_set_guard(struct amf *a, const char *guard, const char *lease, const char *dir);

/* ---- observers ---------------------------------------------------------- */

enum amf_su_event {
    AMF_SU_STATE,   /* in service, failing or fenced may have changed */
    AMF_SU_ADMIN,   /* locked, unlocked, disabled or repaired */
    AMF_SU_ADOPTED, /* every component of an adopted unit registered again */
};

enum amf_comp_event {
    AMF_COMP_SPAWNED,    /* a process runs it (pid, start time) */
    AMF_COMP_REGISTERED, /* it registered on its HA link (after the reply); a non-SA-aware one, which never
                          * registers: its process runs, or its OCF resource is up (started or adopted) */
    AMF_COMP_FAILED,     /* its unit failed (it, or a sibling, or the unit as a whole); reason says why */
    AMF_COMP_EXITED,     /* its process ended (reason: how), or halod stopped watching it */
};

/*
 * What the AMF tells whoever listens.  Every callback is optional and runs
 * from inside the AMF's own processing: it reads the model and must not call
 * a verb of this header (schedule the work instead).
 */
struct amf_observer {
    /* A target or a confirmed role of si changed, or is about to (a decision,
     * a target applied here, another node's assignment mirrored): called
     * before any CSI set goes out, so read the outcome later. */
    void (*assignment_changed)(void *userdata, struct si *si);
    /* The confirmed assignments of si changed (its record). */
    void (*si_changed)(void *userdata, struct si *si);
    /* The model looked at sg again: the units' readiness may have changed. */
    void (*sg_changed)(void *userdata, struct sg *sg);
    void (*su_event)(void *userdata, struct su *su, enum amf_su_event ev);
    void (*comp_event)(void *userdata, struct comp *c, enum amf_comp_event ev, const char *reason);
    /* The administrative state of si changed (the deciding node's operator command, or a shutdown done). */
    void (*si_admin_changed)(void *userdata, struct si *si);
    /* The administrative state of sg of its own, or (sg NULL) of this node, changed. */
    void (*group_admin_changed)(void *userdata, struct sg *sg);
};
#define AMF_OBSERVERS_MAX 16
/* Observers are called in the order they were added.  0, -ENOSPC. */
int amf_observe(struct amf *a, const struct amf_observer *o, void *userdata);
/* Removes an observer (o and userdata as added); nothing if it is not there. */
void amf_unobserve(struct amf *a, const struct amf_observer *o, void *userdata);

/* ---- placement: where a decision is carried out ------------------------- */

struct amf_placement_ops {
    /* Several nodes: other nodes' units are run by their own halod, and
     * operator commands for them are refused here. */
    bool distributed;
    /* The deciding node set a's target: 0 to apply it here now (CSI set or
     * remove to the unit's components), 1 when another node applies it (a
     * waits for that node's confirmation: amf_confirmed()). */
    int (*publish_target)(void *p, struct si *si, struct assignment *a);
    /* This node has applied the target of one of its units: what it holds now (removed: nothing). */
    void (*publish_confirmed)(void *p, struct si *si, const struct assignment *a, bool removed);
    /* The deciding node dropped su's assignment of si. */
    void (*forget)(void *p, struct si *si, struct su *su);
    /* Asks another node to run op (enum amf_op) on target, as haloctl would from here: the node
     * to, or "" the deciding one.  w (NULL: nobody waits) is told the answer, or -ECANCELED if
     * it never comes before halod stops.  0 when sent, else -errno and w is never told.  May be NULL. */
    int (*request)(void *p, int op, const char *target, const char *to, struct amf_waiter *w);
};
/* One node: everything is applied here (amf-placement-local.c); the default. */
extern const struct amf_placement_ops amf_placement_local;
void amf_set_placement(struct amf *a, const struct amf_placement_ops *ops, void *p);

/* ---- readiness: who may be ACTIVE ---------------------------------------- */

/* Whether su may be given ACTIVE now.  The models ask it before they hand
 * ACTIVE to a unit (a switchover, a failover, a new assignment); a unit that
 * is not ready may still be STANDBY.  halod asks the recovery (a pool process
 * that has not caught up must not serve) and, for a cdb-roles group, whether
 * the unit's node holds every commit acknowledged (cluster-sync).  The answer must not change
 * without amf_readiness_changed(). */
typedef bool (*amf_ready_fn)(void *userdata, const struct su *su);
/* Adds a hook: a unit is ready when every hook says so (and it is in
 * service).  0, -ENOSPC (more than AMF_READINESS_MAX). */
#define AMF_READINESS_MAX 4
int amf_add_active_readiness(struct amf *a, amf_ready_fn fn, void *userdata);
void amf_remove_active_readiness(struct amf *a, amf_ready_fn fn, void *userdata);
/* The readiness of the unit of component comp may have changed: its group
 * is looked at again (if this AMF decides).  Not from an observer callback. */
void amf_readiness_changed(struct amf *a, const char *comp);

/* ---- life cycle ----------------------------------------------------------- */

/* The state a previous halod left is restored (amf_*_restore()): registrations
 * are taken from now on, and this node's components are started. */
void amf_set_ready(struct amf *a);
/* Whether this AMF runs the redundancy models (one node: always; several: the coordinator). */
void amf_set_deciding(struct amf *a, bool deciding);
bool amf_deciding(const struct amf *a);

/* Graceful stop: terminate callbacks, then SIGKILL after each component's
 * terminate timeout.  cb runs once every component process has exited. */
typedef void (*amf_stopped_cb)(struct amf *a, void *userdata);
void amf_stop(struct amf *a, amf_stopped_cb cb, void *userdata);
bool amf_stopping(const struct amf *a);
/* Immediate stop: SIGKILL every component now (second SIGTERM). */
void amf_kill_all(struct amf *a);

/* A node failfast (a component's recovery or recommendation) on a node whose description gives
 * a `failfast` action: the AMF stops at once, as amf_stop() but with SIGKILL to every component
 * and helper (no terminate callback, no cleanup command), and fn runs once every one of them
 * has been reaped; why says which component asked and how.  The action is fn's (halod's top).
 * Without fn, or without an action, a failfast is a node failover. */
typedef void (*amf_failfast_fn)(struct amf *a, const char *why, void *userdata);
void amf_set_failfast(struct amf *a, amf_failfast_fn fn, void *userdata);

/* ---- the model, read-only ------------------------------------------------ */

const char *amf_node(const struct amf *a);
const struct config *amf_config(const struct amf *a);
struct sg *amf_sgs(struct amf *a, size_t *ret_n);
struct sg *amf_find_sg(struct amf *a, const char *name);
struct su *amf_find_su(struct amf *a, const char *name);
struct si *amf_find_si(struct amf *a, const char *name);
struct comp *amf_find_comp(struct amf *a, const char *name);
/* The SI owning a CSI, and the CSI's description; NULL if none. */
struct si *amf_find_csi(struct amf *a, const char *csi, const struct config_csi **ret);
/* The registered component of this node on conn (a process registers one, besides the proxied
 * components a proxy registers on its link, which are not it), or NULL. */
struct comp *amf_comp_by_conn(struct amf *a, const struct conn *conn);
/* The start time of c's process (clock ticks since boot, /proc/PID/stat), 0 if none or unknown. */
unsigned long long amf_comp_starttime(const struct comp *c);

/* ---- restoring a previous halod's state ------------------------------------ */

/* Keeps a unit's administrative state and/or disabled, as a previous halod left it. */
void amf_su_restore(struct su *su, enum su_admin admin, bool disabled);
/* A process a previous halod started for c (pid, start time in clock ticks
 * since boot): adopted if it still runs and c may run, else killed and waited
 * for.  Before amf_set_ready() only. */
void amf_comp_restore(struct comp *c, pid_t pid, unsigned long long starttime);
/* The processes that a previous halod on this state directory started for
 * components (HALO_OWNER) and that still run, the store's records restored
 * before (amf_comp_restore()): each component without a process restored gets
 * the first one started of its own, adopted or killed as a record's would be.
 * It needs no store: a record that was lost (halod killed before the store
 * took it) does not make two processes of one component.  Before
 * amf_set_ready() only, before the assignments are restored. */
void amf_restore_survivors(struct amf *a);
/* The SI's generation and its ACTIVE unit when the previous halod stopped. */
void amf_si_restore(struct si *si, uint64_t generation, const char *active_su);
/* The administrative state of target ("si:NAME", "sg:NAME", "node:NAME": this node's only) as
 * the halod that ran the operation left it in the store
 * (adminstate/ records; admin as haloctl shows it, anything else reads as UNLOCKED): kept at
 * start, and mirrored on the other nodes so that one taking over decides with it.  Ignored by
 * the deciding node once ready (its own writes come back to it, perhaps after a later change),
 * and for a target not in the description.  A lock that a group's removal made (its record says
 * "removal") is given as NULL (unlocked) by the callers. */
void amf_admin_state_restore(struct amf *a, const char *target, const char *admin);
/* This node's own administrative state (haloctl admin lock node:NAME), as haloctl shows it. */
const char *amf_node_admin(const struct amf *a);
/* One node: what an adopted unit held (ACTIVE or STANDBY) stands until it registers again. */
void amf_si_restore_assignment(struct si *si, struct su *su, halo_ha_state state);

/* ---- requests of components on the HA link (amf-link.c) --------------------
 * Each answers on conn with the request's seq (io/server), then acts. */

void amf_comp_register(struct amf *a, struct conn *conn, uint64_t seq, const char *comp, const char *proxy, bool resume,
                       bool object_states);
void amf_comp_unregister(struct amf *a, struct conn *conn, uint64_t seq, const char *comp);
/* seq 0: no answer wanted. */
void amf_response(struct amf *a, struct conn *conn, uint64_t seq, uint64_t invocation, int error,
                  bool quiescing_complete);
void amf_hc_start(struct amf *a, struct conn *conn, uint64_t seq, const char *comp, const char *key,
                  halo_hc_invoked invoked, halo_recovery recovery);
void amf_hc_confirm(struct amf *a, struct conn *conn, uint64_t seq, const char *comp, const char *key, int result);
void amf_hc_stop(struct amf *a, struct conn *conn, uint64_t seq, const char *comp, const char *key);
void amf_error_report(struct amf *a, struct conn *conn, uint64_t seq, const char *comp, halo_recovery recommended);
void amf_pg_track(struct amf *a, struct conn *conn, uint64_t seq, const char *csi, unsigned flags);
void amf_pg_track_stop(struct amf *a, struct conn *conn, uint64_t seq, const char *csi);
void amf_ha_state_get(struct amf *a, struct conn *conn, uint64_t seq, const char *comp, const char *csi);
/* conn is going away: its component has failed unless it unregistered. */
void amf_conn_closed(struct amf *a, struct conn *conn, const char *reason);

/* ---- operator verbs ---------------------------------------------------------
 * Each returns 0 when done; 1 when w is told how it ends (switchover, lock:
 * maybe already, from inside the call); or -HALO_EUNKNOWN, -HALO_EBADSTATE,
 * -HALO_EEXIST, -ENOMEM, and then w is never called. */

/* The commands, numbered as the HA link and the store's admin/ keys number them.
 * The target is "KIND:NAME" (KIND su, sg, si, node or comp), or a bare name of
 * the kind the command took before kinds existed (the first listed). */
enum amf_op {
    AMF_OP_SWITCHOVER = 2,            /* si (si-swap) */
    AMF_OP_LOCK = 3,                  /* su, sg, node, si: ACTIVEs go QUIESCED at once, then removed */
    AMF_OP_UNLOCK = 4,                /* su, sg, node, si */
    AMF_OP_RESTART = 5,               /* comp, su: in place, the unit keeps its roles */
    AMF_OP_REPAIR = 7,                /* su */
    AMF_OP_SHUTDOWN = 13,             /* su, sg, node, si: QUIESCING, waits for quiescing complete */
    AMF_OP_LOCK_INSTANTIATION = 14,   /* su, sg, node: stop the processes of a locked unit */
    AMF_OP_UNLOCK_INSTANTIATION = 15, /* su, sg, node: start them again (the unit stays locked) */
    AMF_OP_SG_ADJUST = 16,            /* sg: ACTIVEs back to the most preferred units, gracefully */
    AMF_OP_NODE_SWITCHOVER = 17,      /* node: shut down every unit, then lock-instantiation */
    AMF_OP_EAM_START = 30,            /* comp: its external monitor runs again */
    AMF_OP_EAM_STOP = 31,             /* comp: its external monitor stops */
    AMF_OP_FAIL = 100,                /* comp; an outside report of its failure (never on the link) */
};
/* Runs op on target; -EOPNOTSUPP for another number, -EINVAL for a kind op
 * does not take. */
int amf_run_op(struct amf *a, int op, const char *target, struct amf_waiter *w);
/* Where op on target runs: NULL here, "" the deciding node (the coordinator), else a node's name. */
const char *amf_op_where(struct amf *a, int op, const char *target);

int amf_si_switchover(struct amf *a, const char *si, struct amf_waiter *w);
int amf_su_lock(struct amf *a, const char *su, struct amf_waiter *w);
int amf_su_shutdown(struct amf *a, const char *su, struct amf_waiter *w);
int amf_su_unlock(struct amf *a, const char *su);
int amf_comp_restart(struct amf *a, const char *comp);
/* An outside report (POST /v1/events) that comp FAILED: an error report, with
 * the same recovery and counted as one.  0 (also when it has no process: its
 * end was published already), -HALO_EUNKNOWN. */
int amf_comp_report_failed(struct amf *a, const char *comp);
int amf_su_repair(struct amf *a, const char *su);
/* Stop or start comp's external monitor (its `monitor`, or its OCF agent's): 0, -HALO_EUNKNOWN,
 * -HALO_EBADSTATE (it has none), -HALO_EEXIST (stopped or running already). */
int amf_comp_eam_stop(struct amf *a, const char *comp);
int amf_comp_eam_start(struct amf *a, const char *comp);
/* "enabled" or "stopped" (eam-stop), or NULL when c has no external monitor. */
const char *amf_comp_monitor_state(const struct comp *c);
/* A waiter's requester went away: the command goes on, nobody is told. */
void amf_waiter_forget(struct amf *a, struct amf_waiter *w);

/* halod --check: runs validate-all of every OCF component's agent with its params, and writes a
 * "FILE:LINE:COLUMN: ..." line with the agent's message to err for each that fails.  The number that failed. */
int amf_ocf_check(const struct config *c, FILE *err);

/* ---- several nodes: what the store says (cluster/cluster-sync.c) ------------ */

/* Another node's unit as its node published it (gone: its key is gone with the node's lease). */
void amf_su_remote(struct su *su, const struct su_remote *r, bool gone);
/* Another node's unit, never published as this halod watched, whose node held no lease at this
 * halod's first read of the store, and which has OCF resources: a fence this halod did not see
 * may still be stopping them, so an ACTIVE (or QUIESCED...) target for it in the store blocks its
 * SI until amf_su_remote() says it is fenced (cluster-fence.c waits its stop timeout) or its node
 * publishes it again. */
void amf_su_unseen_stopping(struct su *su);
/* A target in the store for such a unit (written for its node's old lease, so not carried out): one
 * other than STANDBY blocks si (si->fencing) until the unit counts as fenced. */
void amf_target_unseen(struct si *si, struct su *su, halo_ha_state state);
/* A target for this node's unit su that its node does not carry out (decided before the unit's
 * last failure): if the unit holds nothing for si, its node confirms that for decision gen. */
void amf_target_void(struct si *si, struct su *su, uint64_t gen);
/* The deciding node's target for su's assignment of si: state, or 0 for
 * REMOVED, with its generation.  A unit of this node applies it; another
 * node's is mirrored. */
void amf_target(struct si *si, struct su *su, halo_ha_state state, uint64_t gen);
/* The deciding node deleted that target. */
void amf_target_deleted(struct si *si, struct su *su);
/* su's node confirmed it holds state (0: nothing) for gen. */
void amf_confirmed(struct si *si, struct su *su, halo_ha_state state, uint64_t gen);
/* This node lost its lease: the units holding more than a STANDBY (or adopted) fail now. */
void amf_fence_local(struct amf *a, const char *why);
/* The next generation of si, for a decision being published. */
uint64_t amf_si_next_generation(struct si *si);

/* ---- reload (amf-reload.c) ---------------------------------------------------- */

/* Whether si's CSIs may be set again now: 0; -EBUSY while an assignment of it on this node changes
 * (its CSI sets or removes are in flight); -HALO_EUNKNOWN. */
int amf_csi_reload_check(struct amf *a, const char *si);
/* The attributes of csi of si changed in the description the AMF was built from (its caller
 * changed them in place): each of this node's SA-aware components holding it ACTIVE or STANDBY
 * gets a CSI set with the same state and the new attributes.  The count sent, -HALO_EUNKNOWN, -ENOMEM. */
int amf_csi_reload(struct amf *a, const char *si, const char *csi);
/* Whether si's CSIs may change to those of cfg (of ncg, its group's new description) now: 0; -EBUSY as
 * amf_csi_reload_check(); -EOPNOTSUPP when a CSI removed is taken, in a unit of si's group, by a
 * component that is not SA-aware and stays in ncg (it would have to stop), or a CSI added would be
 * taken by a running one (it would have to start: one added by the same reload is started by it);
 * -HALO_EUNKNOWN. */
int amf_si_csis_check(struct amf *a, const char *si, const struct config_si *cfg, const struct config_sg *ncg);
/* si's CSIs become cfg's (a description that outlives the AMF): each of this node's units holding
 * si ACTIVE or STANDBY gets a CSI remove for each CSI gone, then a CSI set (its state; an ACTIVE's
 * transition NEW_ASSIGN) for each CSI added.  One node only.  The count sent, -HALO_EUNKNOWN, -ENOMEM. */
int amf_si_csis_reload(struct amf *a, const char *si, const struct config_si *cfg);
/* A service group of config (the description the reload applies, which outlives the AMF) joins the
 * model: its units' components of this node start, and its SIs are assigned as they register.
 * One node only (the other layers of several nodes learn their units at start).  0, -ENOSPC (too
 * many groups added since halod started), -HALO_EEXIST, -ENOMEM. */
int amf_sg_add(struct amf *a, const struct config *config, const struct config_sg *cg);
/* config (which outlives the AMF) is the running description from now on: its nodes' settings
 * (su-failover, failfast) and the nodes a lock or an event may name.  A reload that changes the
 * nodes; the objects keep the descriptions they were built from. */
void amf_set_config(struct amf *a, const struct config *config);
/* How many more groups amf_sg_add() takes. */
size_t amf_sg_room(const struct amf *a);
/* Whether the SI cfg may join the running group sg now (after n_before SIs added to it by the same
 * reload): 0; -HALO_EUNKNOWN (no such group); -ENOSPC (no room: at most AMF_SIS_ADDED_MAX SIs are
 * added to a group in halod's life); -HALO_EEXIST (an SI of the model still has its name or one of
 * its CSIs' names: one being removed); -EBUSY (an SI of the group is changing its assignments). */
int amf_si_add_check(struct amf *a, const char *sg, const struct config_si *cfg, size_t n_before);
/* The SI cfg (of the description the reload applies, which outlives the AMF) joins the running
 * group sg, after its SIs: the group's model assigns it as at start (on several nodes, the deciding
 * node).  0, -errno. */
int amf_si_add(struct amf *a, const char *sg, const struct config_si *cfg);
/* Whether the unit (unit) or SI name may leave the model now: 0, -HALO_EUNKNOWN, -EACCES (a unit:
 * as amf_su_add_check()), -EBUSY (an SI of its group is changing its assignments, or an operation
 * on one is under way). */
int amf_member_remove_check(struct amf *a, bool unit, const char *name);
/* Whether the unit name holds the ACTIVE of an SI that no other unit holds STANDBY in service: its
 * removal would leave the SI with no ACTIVE (a cdb-roles group: the CDB with no primary). */
bool amf_su_sole_active(struct amf *a, const char *name);
/* The SI name left the description: no operation finds it any more, and the model takes it from
 * its units as haloctl admin lock si:NAME does (its ACTIVE QUIESCED, then every assignment removed);
 * what the store kept of its lock is cleared.  On several nodes, the deciding node does so, on every
 * node's units.  0 when under way, -HALO_EUNKNOWN. */
int amf_si_remove(struct amf *a, const char *name);
/* The SI name (as amf_find_si()), or else the last one of that name a reload removed from a group
 * that stays: on several nodes, the coordinator's targets take it from this node's units.  NULL if
 * none. */
struct si *amf_find_si_or_removed(struct amf *a, const char *name);
/* Whether the unit cfg may join the running group sg now (after n_before units added to it by the
 * same reload): 0; -HALO_EUNKNOWN; -ENOSPC (at most AMF_SUS_ADDED_MAX units are added to a group in
 * halod's life); -HALO_EEXIST (a unit or component of the model still has its name or one of its
 * components' names: one being removed); -EACCES (the group or this node is locked, or an operation on
 * several units is under way); -EBUSY (an SI of the group is changing its assignments). */
int amf_su_add_check(struct amf *a, const char *sg, const struct config_su *cfg, size_t n_before);
/* The unit cfg (of the description the reload applies) joins the running group sg: its components
 * of this node start, and the model may give it roles once it is in service.  One node only. */
int amf_su_add(struct amf *a, const char *sg, const struct config_su *cfg);
/* The unit name left the description: it is locked (its ACTIVEs QUIESCED and handed to their
 * STANDBYs, as haloctl admin lock su:NAME does), then its processes are stopped (lock-instantiation),
 * then it is no object of the cluster's any more and the store keeps no lock of it.  On several
 * nodes, another node's unit counts as locked here from now on (its roles leave it), and is no
 * object of this node's once it holds nothing; its own node stops it when it reloads.
 * 0 when under way, -HALO_EUNKNOWN, -ENOMEM. */
int amf_su_remove(struct amf *a, const char *name);
/* Whether the components of the running group cg->name whose settings cg (its new description)
 * changes may take them now (amf-reload-comp.c): 0; -EBUSY (one runs and cannot restart in place
 * now: starting, stopping, or its unit changing roles); -HALO_EUNKNOWN. */
int amf_comps_reload_check(struct amf *a, const struct config_sg *cg);
/* They take their new descriptions (cg outlives the AMF, and so do its units') and those that run
 * restart in place where a restart applies what changed, as haloctl restart does (their units keep
 * their roles); this node's only.  The count restarted, or -errno. */
int amf_comps_reload(struct amf *a, const struct config_sg *cg);
/* The running group cg->name takes the settings of cg (its new description: auto-adjust, its
 * escalation, SIs per unit, N+M's counts; not its redundancy model) and its model looks at its
 * assignments again (amf-reload-comp.c): 0, -HALO_EUNKNOWN. */
int amf_sg_settings_reload(struct amf *a, const struct config_sg *cg);
/* Whether the component name of nsu (a running unit's new description) may join that unit now,
 * after n_before added to it by the same reload: 0; -HALO_EUNKNOWN; -ENOSPC (at most
 * AMF_COMPS_ADDED_MAX per unit in halod's life); -ENOTCONN (proxied, of this node, and its proxy is
 * not registered or is being removed); -HALO_EEXIST (a component has its name); -EXDEV (a CSI of the group's SIs would
 * change component: the new one would take one); -EBUSY (its unit is failing, restarting or adopting). */
int amf_comp_add_check(struct amf *a, const struct config_su *nsu, const char *name, size_t n_before);
/* It joins the unit (nsu outlives the AMF), and starts as a restart in place does (a proxied one
 * through its proxy): the unit keeps its roles while it registers.  Not SA-aware, it runs once its
 * unit holds its CSI ACTIVE; an OCF one's meta-data and probe run first, its unit in service
 * meanwhile.  One node only.  0 or -errno. */
int amf_comp_add(struct amf *a, const struct config_su *nsu, const char *name);
/* Whether the component name may leave its running unit, whose new description is nsu, of the group
 * whose new description is ncg: 0; -HALO_EUNKNOWN; -EXDEV (a CSI of the group's running SIs that
 * ncg keeps would change component: it takes one, or its going moves one); -ENOTEMPTY (the proxy of a
 * component that is not removed yet: amf_comp_proxy_of()); -HALO_EEXIST (being removed); -EBUSY (its unit is failing,
 * restarting or adopting, changing its roles, or it is starting or stopping). */
int amf_comp_remove_check(struct amf *a, const struct config_sg *ncg, const struct config_su *nsu, const char *name);
/* The name of a component whose proxy is the component name (one whose removal is under way too), or NULL. */
const char *amf_comp_proxy_of(struct amf *a, const char *name);
/* The name of a component outside the group sg (su: outside its unit su) whose proxy is one of its
 * components, or NULL: removing the group (the unit), the component would fail with its proxy. */
const char *amf_proxy_user_outside(struct amf *a, const char *sg, const char *su);
/* It leaves its unit (nsu, its new description, outlives the AMF): once the CSI removes the same
 * reload sent it are answered, it is stopped as a lock-instantiation stops it (terminate callback,
 * SIGKILL after its terminate timeout; a non-SA-aware one by its CSI remove, its terminate command or
 * SIGTERM; a proxied one by its proxy's terminate callback), then it is gone.  Its unit keeps its roles.  One node
 * only.  0 when under way, -errno. */
int amf_comp_remove(struct amf *a, const struct config_su *nsu, const char *name);
/* The service group name left the description: it is locked (its SIs removed from its units, as
 * haloctl admin lock sg:NAME does), then its processes are stopped (lock-instantiation), and then
 * it is no object of the cluster's any more.  One node only.  0 when under way, -HALO_EUNKNOWN, -ENOMEM. */
int amf_sg_remove(struct amf *a, const char *name);
