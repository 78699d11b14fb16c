/* SPDX-License-Identifier: MIT */
/* The AMF's private state and the calls its files make to each other (amf/ only). */
#pragma once

#include <stdbool.h>
#include <stdint.h>

#include "amf.h"
#include "list.h"
#include "log.h"

struct invocation;
struct tracker;
struct group_op;

struct amf {
    uv_loop_t *loop;
    const struct config *config;
    char *node;
    char *socket_path;
    char *crash_dir; /* NULL: no crash capture by libhalo */
    char *owner;     /* the state directory (amf_params.owner); NULL: processes are not marked */
    struct {
        char *path;  /* halo-guard; NULL: nothing is guarded (one node, no lease) */
        char *lease; /* the lease file it watches */
        char *dir;   /* the components' --while files */
    } guard;
    struct supervisor *sup;
    uint64_t spawn_slice_loop_ms; /* the loop time (uv_now()) of the iteration whose spawns are counted */
    usec_t spawn_slice_spent;     /* the time those spawns took (amf_comp_instantiate()) */
    unsigned spawn_slice_n;       /* and how many they were */
    struct sg *sgs;               /* cap_sgs allocated, n_sgs in use: a reload adds groups without moving any */
    size_t n_sgs, cap_sgs;
    LIST_HEAD(struct invocation) invs;
    uint64_t next_inv;
    LIST_HEAD(struct tracker) trackers;
    bool stopping;
    amf_stopped_cb stopped_cb;
    void *stopped_userdata;
    uv_idle_t stop_check;
    bool deciding; /* runs the redundancy models: one node always, several the coordinator */
    bool ready;    /* the previous state was restored: registrations are taken */
    struct {
        const struct amf_observer *ops;
        void *userdata;
    } observers[AMF_OBSERVERS_MAX];
    size_t n_observers;
    const struct amf_placement_ops *placement;
    void *placement_data;
    struct {
        amf_ready_fn fn;
        void *data;
    } active_ready[AMF_READINESS_MAX];  /* amf_add_active_readiness() */
    struct amf_rung_count su_failovers; /* of this node's units: the node's rung of the ladder */
    struct group_op *groups;            /* operations on several units under way (amf-admin-group.c) */
    enum su_admin node_admin;           /* this node's own administrative state (lock node:NAME), persisted */
    amf_failfast_fn failfast_fn;        /* amf_set_failfast(); NULL: a failfast is a node failover */
    void *failfast_userdata;
    char *failfast_why;    /* a node failfast under way: what asked for it */
    bool failfast_cleaned; /* its OCF stops and cleanup commands ran */
};

/* A health check of a component (amf-health.c). */
struct hc {
    struct hc *next;
    struct comp *comp;
    char *key;
    halo_hc_invoked invoked;
    halo_recovery recovery;
    uv_timer_t period; /* AMF-invoked: next check */
    uv_timer_t timeout;
    uint64_t pending; /* invocation of the check in flight */
    uint64_t due;     /* loop time (ms) the timeout is due */
    bool grace;       /* given one more timeout after a stall of halod's loop */
    bool configured;  /* started by halod from the description (health-check keys) */
    unsigned closing; /* timers still closing */
};

/* ---- the model's construction (amf.c) ---- */
/* Room for the SIs reloads may add to one group (amf_si_add()): a group's SIs never move. */
#define AMF_SIS_ADDED_MAX 16
/* Room for the units reloads may add to one group (amf_su_add()), and so for each SI's assignment slots. */
#define AMF_SUS_ADDED_MAX 8
/* Room for the components reloads may add to one unit (amf_comp_add()). */
#define AMF_COMPS_ADDED_MAX 4
/* sg's arrays for cg (0, -ENOMEM: free what was allocated with amf_sg_free()); then its handles and names. */
int amf_sg_alloc(struct sg *sg, const struct config_sg *cg);
void amf_sg_init(struct amf *a, struct sg *sg, const struct config_sg *cg);
/* su of sg (its comps allocated) for cfg: its handles and names. */
void amf_su_init(struct sg *sg, struct su *su, const struct config_su *cfg);
/* c of su for cfg: its handles and names. */
void amf_comp_init(struct su *su, struct comp *c, const struct config_component *cfg);
void amf_sg_free(struct sg *sg);

/* ---- observers (amf.c) ---- */
void amf_notify_assignment(struct si *si);
void amf_notify_si(struct si *si);
void amf_notify_si_admin(struct si *si);
/* An SG's (sg) or this node's (sg NULL) own administrative state changed. */
void amf_notify_group_admin(struct amf *a, struct sg *sg);
/* Whether si's ACTIVE may be switched over to its STANDBY now (as this node sees them). */
bool amf_si_may_switch_over(struct si *si);
void amf_notify_sg(struct sg *sg);
void amf_notify_su(struct su *su, enum amf_su_event ev);
void amf_notify_comp(struct comp *c, enum amf_comp_event ev, const char *reason);

/* ---- the redundancy models ---- */
struct amf_policy;
struct redundancy_ops {
    const char *name;
    /* What it wants of each SI (status reads it too). */
    const struct amf_policy *policy;
    /* Looks at the SG and issues the next actions; called after every
     * change.  NULL: the reconciler with the policy (amf_reconcile()). */
    void (*evaluate)(struct sg *sg);
};
extern const struct redundancy_ops amf_2n_ops;
extern const struct redundancy_ops amf_npm_ops;
extern const struct redundancy_ops amf_nway_ops;
extern const struct redundancy_ops amf_nwayactive_ops;
extern const struct redundancy_ops amf_nored_ops;

/* What a model wants of each SI, for the reconciler every model runs (amf-reconcile.c). */
struct amf_policy {
    unsigned (*actives)(const struct si *si);  /* ACTIVE assignments wanted */
    unsigned (*standbys)(const struct si *si); /* STANDBY assignments wanted */
    /* Whether su (in service, holding nothing of si) may take role for si; NULL: any unit. */
    bool (*allowed)(struct si *si, struct su *su, halo_ha_state role);
    /* Whether su may keep its STANDBY of si; NULL: while it is in service. */
    bool (*keep_standby)(struct si *si, struct su *su);
    bool together; /* prefer the unit holding the same role for the group's other SIs */
    bool spread;   /* prefer the unit holding the fewest SIs in that role */
};
/* Policy parts several models share: 1 and 0 assignments; a unit with room (amf_su_has_room()). */
unsigned amf_policy_one(const struct si *si);
unsigned amf_policy_none(const struct si *si);
bool amf_policy_room(struct si *si, struct su *su, halo_ha_state role);
/* Runs the reconciler over sg's SIs (in rank order) with the model's policy. */
void amf_reconcile(struct sg *sg, const struct amf_policy *p);
/* The SIs of su's group su holds as role (ACTIVE: also quiescing or quiesced), targets included. */
unsigned amf_su_load(const struct su *su, halo_ha_state role);
/* Whether su holds fewer SIs as role than the group's max-active/standby-sis-per-su. */
bool amf_su_has_room(const struct su *su, halo_ha_state role);
/* The assignments of si whose target is role. */
unsigned amf_si_count(struct si *si, halo_ha_state role);
/* Runs the model of sg if this node decides (after telling the observers). */
void amf_sg_evaluate(struct sg *sg);

/* ---- what a model asks of the AMF (amf-assign.c) ---- */
/* Sets su's target for si (state) and carries it out where the placement says; 0 or -errno. */
int amf_assign(struct si *si, struct su *su, halo_ha_state state, halo_csi_transition transition);
/* Removes the assignment (CSI remove to its components, where the placement says). */
int amf_unassign(struct si *si, struct assignment *a);
/* A switchover the model drove has completed or was abandoned. */
void amf_switchover_done(struct si *si, int error);
/* Lock waiters: su may have lost its last assignment (a shutdown ends LOCKED). */
void amf_su_check_lock_done(struct su *su);
/* A waiter's requester went away: an operation on several units forgets it (amf-admin-group.c). */
void amf_admin_forget(struct amf *a, struct amf_waiter *w);
/* A locked or shutting-down SI holds nothing any more (amf-admin.c). */
void amf_si_drained(struct si *si);
/* Looks at sg again after delay (auto-adjust's probation; amf-admin.c). */
void amf_sg_adjust_later(struct sg *sg, usec_t delay);

/* ---- assignments (amf-assign.c) ---- */
struct assignment *amf_asg_slot(struct si *si, struct su *su);
void amf_asg_clear(struct si *si, struct assignment *a);
/* The same without deleting its keys in the store (the next target overwrites them). */
void amf_asg_drop(struct si *si, struct assignment *a);
/* amf-reload.c: su, another node's unit a reload removed (leaving), is removed if it holds nothing. */
void amf_unit_left(struct su *su);
/* One CSI set or remove of su's assignment of si finished well. */
void amf_asg_step_done(struct si *si, struct su *su);
/* Sends CSI set (state) to su's components for every CSI of si, or CSI remove; 0 or -errno. */
int amf_asg_send_set(struct si *si, struct su *su, struct assignment *a, halo_csi_transition transition);
int amf_asg_send_remove(struct si *si, struct assignment *a);
/* One CSI remove of csi to c (SA-aware, linked), a step of a, c's unit's assignment of si; 0, -ENOMEM. */
int amf_asg_send_csi_remove(struct si *si, struct comp *c, const struct config_csi *csi, struct assignment *a);
/* One CSI set of csi (state) to c, an invocation whose answer completes a step of c's unit's assignment of si. */
int amf_asg_send_csi_set(struct si *si, struct comp *c, const struct config_csi *csi, halo_ha_state state,
                         halo_csi_transition transition, const char *active_comp);
/* The component of si's ACTIVE assignment taking csi (a STANDBY's descriptor names it), or NULL. */
const char *amf_asg_active_comp(struct si *si, const struct config_csi *csi);
/* The same to component c alone, with the state a holds (a restart in place); 0 or -errno. */
int amf_asg_send_set_comp(struct si *si, struct comp *c, struct assignment *a);
void amf_waiter_done(struct amf_waiter **w, int error);

/* ---- invocations (amf-invoke.c) ---- */
enum inv_kind {
    INV_CSI_SET,
    INV_CSI_REMOVE,
    INV_TERMINATE,
    INV_HEALTHCHECK,
    INV_PROXIED_INSTANTIATE,
    INV_PROXIED_CLEANUP
};
struct invocation {
    LIST_FIELDS(struct invocation, invs);
    struct amf *amf;
    uint64_t id;
    enum inv_kind kind;
    struct comp *comp;
    struct si *si; /* CSI set/remove */
    struct su *su; /* the assignment's SU (the slot is found again by SU) */
    halo_ha_state state;
    struct hc *hc; /* health check */
    bool acked;    /* QUIESCING: answered, waiting for quiescing complete */
    bool answered; /* amf_inv_succeed_soon(): its success is on its way */
    uv_timer_t timer;
};
struct invocation *amf_inv_new(struct comp *c, enum inv_kind kind, usec_t timeout);
void amf_inv_extend(struct invocation *inv, usec_t timeout);
struct invocation *amf_inv_find(struct amf *a, uint64_t id);
void amf_inv_free(struct invocation *inv);
/* Forgets every invocation of a component (it failed or went away). */
void amf_inv_cancel_comp(struct comp *c);
/* The invocation is answered (error 0 or -errno), as amf_response() does for the component's answer. */
void amf_inv_complete(struct invocation *inv, int error, bool quiescing_complete);
/* Answers it with success from the next turn of the loop: a step halod carried out itself
 * (a non-SA-aware component) completes as an answer would, never inside the call that asked it. */
void amf_inv_succeed_soon(struct invocation *inv);
/* Sends a packed message to c's link; a failure closes the link, which fails c. */
void amf_comp_send(struct comp *c, const uint8_t *buf, int len);

/* ---- components and failures (amf-comp.c, amf-failure.c) ---- */
void amf_comp_instantiate(struct comp *c);
void amf_comp_terminate(struct comp *c);
/* c failed: its configured recovery, escalated by the ladder (amf-ladder.c). */
void amf_comp_fail(struct comp *c, const char *why);
/* The same with the recovery c's error report or health check recommended: never less is done. */
void amf_comp_recover(struct comp *c, const char *why, halo_recovery recommended);
/* SU failover (fence, SIs fail over, restart): for su as a whole, or for failed (failed_why) in it. */
void amf_su_failover(struct su *su, const char *why, struct comp *failed, const char *failed_why);
void amf_su_fail(struct su *su, const char *why);
/* SIGKILL to c's process; its timer, checks, invocations and link are dropped. */
void amf_comp_kill(struct comp *c);
/* The SU's processes are all gone: its restart, or its end as disabled. */
void amf_su_failure_settled(struct su *su);
/* An operator repaired su: an OCF resource its failed stop left counts as stopped, and the SIs
 * that waited for it go on. */
void amf_su_repaired_fence(struct su *su);
void amf_comp_on_timer(uv_timer_t *t);
void amf_proc_exited(struct proc *p, int status, void *userdata);
void amf_stop_check(struct amf *a);
/* c's process ended after halod terminated it for an operator's lock-instantiation:
 * true when amf-admin.c took it over. */
bool amf_admin_comp_stopped(struct comp *c);

/* Spawns argv (argv[0] an absolute path) for c in its workdir, with halod's environment, the
 * description's env and then the n_extra "NAME=value" entries of extra laid over it, its stdout and
 * stderr where the component's `stdout` key says; 0 or -errno.  owned: the process that runs c (not a
 * helper), marked HALO_OWNER for the next halod (amf_restore_survivors()). */
int amf_comp_spawn(struct comp *c, char *const *argv, char *const *extra, size_t n_extra, bool owned, proc_exit_cb cb,
                   struct proc **ret);
/* The same, with halod's stdout and stderr whatever `stdout` says; with capture, what it writes is kept
 * for proc_output() instead. */
int amf_comp_spawn_capture(struct comp *c, char *const *argv, char *const *extra, size_t n_extra, bool capture,
                           proc_exit_cb cb, struct proc **ret);
/* Every component of an adopted unit that registers did so: the unit is ours, with its assignments. */
void amf_su_adoption_check(struct su *su);
/* Before amf_set_ready(), restoring an assignment of su: whether it stands although no process of su was adopted
 * by pid (then su is adopting).  True when every component of su is an OCF one (probed, amf-ocf.c), a proxied one
 * whose proxy was adopted (registered again, resuming), or an adopted process. */
bool amf_su_adopts(struct su *su);

/* ---- crash capture (amf-crash.c) ---- */
/* The environment entry naming c's crash file ("HALO_CRASH_FILE=..."), the file's
 * earlier content removed; false when there is none (no crash directory, or too long). */
bool amf_crash_env(struct comp *c, char *buf, size_t size);
/* Describes how c's process pid ended with status ("exited with status 3"); for a fatal
 * signal, with what libhalo captured of it ("killed by SIGSEGV (signal 11) at 0x0, backtrace:
 * ...").  Returns true for a fatal signal, which was logged. */
bool amf_crash_describe(struct comp *c, pid_t pid, int status, char *buf, size_t size);

/* ---- proxied components (amf-proxied.c) ---- */
/* Instead of a spawn: asks c's proxy to instantiate c, or waits until a proxy registers. */
void amf_proxied_instantiate(struct comp *c);
/* Instead of a terminate callback to a process: the proxy's terminate callback for c. */
void amf_proxied_terminate(struct comp *c);
/* c's instantiate or terminate timer fired. */
void amf_proxied_on_timer(struct comp *c);
/* Whether p, a proxy, can act for a proxied component now: registered. */
bool amf_proxied_proxy_ready(const struct comp *p);
/* An invocation of c's (instantiate, cleanup, terminate) was answered with error. */
void amf_proxied_answered(struct comp *c, enum inv_kind kind, int error);
/* c is fenced: its proxy is asked to clean it up (it is no longer on the proxy's link). */
void amf_proxied_fence(struct comp *c);
/* Whether conn may register c for its proxy named proxy: 0 or the error for the reply. */
int amf_proxied_may_register(struct comp *c, struct conn *conn, const char *proxy, bool resume);
/* Component p registered: the proxied components waiting for it are instantiated through it. */
void amf_proxied_proxy_registered(struct comp *p);
/* su failed: the proxied components its components act for fail too. */
void amf_proxied_proxy_failed(struct su *su);
/* p failed (it restarts in place): the proxied components it acts for fail too. */
void amf_proxied_proxy_lost(struct comp *p);
/* The link c's proxy registers on, for an invocation of kind to c. */
struct conn *amf_proxied_conn(const struct comp *c, enum inv_kind kind);
/* ---- the escalation ladder (amf-ladder.c) ---- */
/* In the order of their strength. */
enum amf_rung {
    AMF_RUNG_COMP_RESTART,
    AMF_RUNG_SU_RESTART,
    AMF_RUNG_SU_FAILOVER,
    AMF_RUNG_NODE_SWITCHOVER, /* the failed unit fails over, the node's others switch over */
    AMF_RUNG_NODE_FAILOVER,
    AMF_RUNG_NODE_FAILFAST,
    _AMF_RUNG_MAX,
};
const char *amf_rung_to_string(enum amf_rung r);
/* Where a failure starts on the ladder: the stronger of the configured and the recommended recovery. */
enum amf_rung amf_rung_of(enum config_recovery configured, halo_recovery recommended);
void amf_rung_count_init(uv_loop_t *loop, struct amf_rung_count *r);
void amf_rung_count_reset(struct amf_rung_count *r);
/* Counts one recovery on the rung (its probation starts with the first): true while the count is
 * within e->max; else false, and the count is reset (the failure climbs to the next rung). */
bool amf_rung_count_climb(struct amf_rung_count *r, const struct config_escalation *e);
/* Why c cannot restart in place now (its unit changes roles, or is not in service), or NULL. */
const char *amf_comp_restart_refused(const struct comp *c);
/* The one restart in place, of the ladder's component-restart and SU-restart rungs and of the
 * operator's restart: c's process alone stops, its unit keeps its roles, and the new process gets
 * its CSIs again with the same HA states.  A failure (failed: the note for its FAILED) is killed
 * and starts after its restart delay; an operator's restart (failed NULL) is terminated and
 * starts at once.  The new process ending before it registered is a failure of c. */
void amf_comp_restart_in_place(struct comp *c, const char *failed);
/* c, restarting in place, has no process any more: it starts again. */
void amf_ladder_comp_gone(struct comp *c);
/* c registered: if it restarted in place, it gets its unit's CSIs again, with the same HA states. */
void amf_ladder_comp_registered(struct comp *c);

/* ---- components a reload removes (amf-reload-comp.c) ---- */
/* The next step of c's removal, if a reload removes it (else nothing): its CSI removes answered, it
 * is stopped (terminate callback, or a non-SA-aware one's stop); stopped, it is removed.  Called
 * wherever one of them may have ended. */
void amf_comp_removal_step(struct comp *c);

/* ---- non-SA-aware components (amf-nsa.c) ---- */
/* An environment of n entries built with strprintf(): in *ret (NULL-terminated), or -ENOMEM if an entry is NULL
 * (then freed). */
int amf_env_finish(char **env, size_t n, char ***ret, size_t *ret_n);
/* amf-guard.c: the lease's fence of non-SA-aware and OCF components (halo-guard) on several nodes. */
bool amf_guarded(const struct comp *c);
/* Marks c guarded and starts a guard of pid (0: none, an OCF resource: its agent's stop).  0 or -errno. */
int amf_guard_begin(struct comp *c, pid_t pid);
/* c is stopped for good: every guard of it ends. */
void amf_guard_end(struct comp *c);
void amf_guard_free(struct amf *a);
void amf_env_free(char **env, size_t n);
/* A CSI set (state) or, with state 0, a CSI remove for c: in flight as an invocation that
 * halod itself answers once c's process runs (ACTIVE) or is gone (anything else).  0 or -ENOMEM. */
int amf_nsa_csi(struct si *si, struct comp *c, halo_ha_state state);
/* Instead of a spawn: c may be assigned (its unit's restart, the start, a repair). */
void amf_nsa_ready(struct comp *c);
/* Stops c's process: its terminate command, or SIGTERM to its process group. */
void amf_nsa_stop(struct comp *c);
/* c's terminate or instantiate timer fired. */
void amf_nsa_on_timer(struct comp *c);
/* c's start command ended with status: true when its pidfile daemon took over as c's process
 * (or its failure was handled), false when the end is c's process ending. */
bool amf_nsa_start_done(struct comp *c, int status);
/* c's process ended after halod stopped it (not a failure). */
void amf_nsa_stopped(struct comp *c);
/* su failed and its processes are gone: the cleanup commands that are due start; true while any runs. */
bool amf_nsa_cleanup(struct su *su);
/* Whether c still has to be cleaned up (or is) after a failure of its unit. */
bool amf_nsa_cleanup_due(const struct comp *c);
/* The start: an adopted process of c whose unit does not hold its CSI ACTIVE is stopped as a failure. */
void amf_nsa_adopted_check(struct comp *c);
/* Whether non-SA-aware c runs: its process (started, not a pidfile daemon's start command), or its OCF resource. */
bool amf_nsa_running(const struct comp *c);
/* The probe of OCF component c ended: its resource runs, does not, or the probe failed (failure: why).  Adopted
 * where its unit holds it ACTIVE; stopped where it runs otherwise; a failure of c where it should run and does
 * not, or when the probe failed. */
void amf_nsa_probed(struct comp *c, bool running, const char *failure);

/* ---- the operator's maintenance operations (amf-admin.c, amf-admin-group.c) ----
 * Each returns 0 when done; 1 when w is told how it ends; or -errno (then w never is). */
int amf_su_op_lock(struct su *su, bool shutdown, struct amf_waiter *w);
int amf_su_op_unlock(struct su *su);
/* The operator's unlock of the unit itself: -EACCES while the lock of its group or node holds it. */
int amf_su_op_unlock_own(struct su *su);
/* Logs why su stays locked (held by its group's or node's lock); -EACCES. */
int amf_su_held(const struct su *su);
int amf_su_op_lock_instantiation(struct su *su, struct amf_waiter *w);
int amf_su_op_unlock_instantiation(struct su *su);
int amf_su_op_restart(struct su *su);
int amf_su_op_repair(struct su *su);
int amf_comp_op_restart(struct comp *c);

/* ---- OCF resource agents (amf-ocf.c) ---- */
/* The timeouts and the monitor interval an agent advertises in its meta-data; 0 where it does not. */
struct ocf_meta {
    usec_t start, stop, monitor_timeout, monitor_interval;
};
void amf_ocf_meta_parse(const char *xml, struct ocf_meta *ret);
/* The timeouts of c (OCF, its meta-data read) that apply: those its description gives, else those
 * its agent advertised, else halod's defaults; again when a reload changes its description. */
void amf_ocf_timeouts(struct comp *c);
/* c's stop timeout: amf_ocf_timeouts()'s, or what it will be once the meta-data is read. */
usec_t amf_ocf_stop_timeout(const struct comp *c);
/* c, about to start, takes the description a reload left for its restart (c->cfg_next), if any. */
void amf_comp_take_cfg(struct comp *c);
/* An OCF exit status in words: "OCF_NOT_RUNNING (7: not running)"; a signal as proc_status_to_string(). */
char *amf_ocf_status_to_string(int status, char *buf, size_t n);
/* The environment of an action of the agent of cc for resource instance: the OCF_* variables Pacemaker
 * sets and each parameter as OCF_RESKEY_<name>.  NULL-terminated, *ret_n entries to free; 0 or -ENOMEM. */
int amf_ocf_env(const struct config_component *cc, const char *instance, usec_t timeout, usec_t interval, char ***ret,
                size_t *ret_n);
/* The agent's own words in its output out (changed): its ERROR lines and ocf-exit-reason, else its last line. */
const char *amf_ocf_reason(char *out, char *buf, size_t n);
/* Runs action of c's agent (its output kept for amf_ocf_failure()); 0 or -errno. */
int amf_ocf_run(struct comp *c, const char *action, usec_t timeout, usec_t interval, proc_exit_cb cb,
                struct proc **ret);
/* "OCF start failed: OCF_ERR_CONFIGURED (6: ...): <the agent's ocf-exit-reason>" for p's exit (in its callback). */
char *amf_ocf_failure(struct proc *p, const char *action, int status, char *buf, size_t n);
/* Whether c's meta-data is known and c was probed; else runs its meta-data action or its probe (the monitor
 * action, as Pacemaker runs it first), which calls amf_nsa_ready() or amf_nsa_probed() once done. */
bool amf_ocf_prepare(struct comp *c);

/* ---- external active monitoring (amf-monitor.c) ---- */
void amf_monitor_init(struct comp *c);
void amf_monitor_close(struct comp *c);
/* c is instantiated (a new process, or an OCF start): its monitor runs every period from now. */
void amf_monitor_arm(struct comp *c);
/* c stops or failed: no run of its monitor is left. */
void amf_monitor_cancel(struct comp *c);

/* ---- health checks (amf-health.c) ---- */
int amf_hc_add(struct comp *c, const char *key, halo_hc_invoked invoked, halo_recovery recovery);
int amf_hc_remove(struct comp *c, const char *key);
struct hc *amf_hc_find(struct comp *c, const char *key);
void amf_hc_answered(struct hc *hc);
void amf_hc_rearm(struct hc *hc);
void amf_hc_stop_all(struct comp *c);

/* ---- protection-group tracking (amf-pg.c) ---- */
int amf_pg_track_add(struct amf *a, struct conn *conn, const char *csi, unsigned flags, struct tracker **ret);
void amf_pg_track_initial(struct amf *a, struct tracker *t);
int amf_pg_track_remove(struct amf *a, struct conn *conn, const char *csi);
void amf_pg_conn_closed(struct amf *a, struct conn *conn);
void amf_pg_notify(struct amf *a, struct si *si);
void amf_pg_free_all(struct amf *a);

/* The component of su that takes csi: the only one, else the first listing
 * the CSI's type, else the first that takes any type (no csi-types). */
struct comp *amf_csi_comp(struct su *su, const struct config_csi *csi);

/*
 * The journal fields of the AMF's records (log.h, docs/logging.md): the unit, its node, and the
 * component or SI the record is about.  MESSAGE_IDs are fixed for good: journalctl MESSAGE_ID=...
 * finds every failover of every version (the catalog, docs/halo.catalog, explains each).
 */
#define AMF_MESSAGE_ID_FAILOVER "39a0b9f74ad642dfa84e8d9f4cd9213a"
#define AMF_MESSAGE_ID_SU_FAILED "259a6749245a4906892050adc5f6650e"
#define AMF_MESSAGE_ID_SU_DISABLED "36e2684b89664ba1a0da307fb6b9867d"

#define AMF_FIELDS_SU(su, id)                                                              \
    LOG_FIELDS({"MESSAGE_ID", (id)}, {"HALO_SU", (su)->name}, {"HALO_SG", (su)->sg->name}, \
               {"HALO_NODE", (su)->cfg->node})
#define AMF_FIELDS_COMP(c, id)                                                                  \
    LOG_FIELDS({"MESSAGE_ID", (id)}, {"HALO_COMPONENT", (c)->name}, {"HALO_SU", (c)->su->name}, \
               {"HALO_SG", (c)->su->sg->name}, {"HALO_NODE", (c)->su->cfg->node})
#define AMF_FIELDS_SI(si, su, id)                                                                                   \
    LOG_FIELDS({"MESSAGE_ID", (id)}, {"HALO_SI", (si)->name}, {"HALO_SU", (su)->name}, {"HALO_SG", (su)->sg->name}, \
               {"HALO_NODE", (su)->cfg->node})
