/* SPDX-License-Identifier: MIT */
/*
 * The AMF's model as this node sees it: service groups, their service units
 * and components, service instances and their assignments.
 *
 * The layers above the AMF (cluster sync, CDB roles, recovery, events,
 * status) read these structures, in the observer callbacks and between
 * them, and never write them: every change goes through a verb of amf.h, so
 * that the AMF alone decides what a change implies.
 */
#pragma once

#include <stdbool.h>
#include <stdint.h>
#include <sys/types.h>
#include <uv.h>

#include "config.h"
#include "halo/halo.h"
#include "time-util.h"

struct amf;
struct conn;
struct proc;
struct hc;

enum presence {
    PRESENCE_UNINSTANTIATED,
    PRESENCE_INSTANTIATING, /* spawned (or adopted), not registered yet */
    PRESENCE_INSTANTIATED,  /* registered */
    PRESENCE_TERMINATING,   /* terminate callback sent or being killed */
    PRESENCE_RESTARTING,    /* dead, waiting for the restart delay */
    PRESENCE_FAILED,        /* not restarted: restart limit reached or spawn failed */
    _PRESENCE_MAX,
};
const char *presence_to_string(enum presence p);

/* The administrative state of a unit (SA Forum AMF): LOCKED and SHUTTING_DOWN
 * take it out of service (its ACTIVEs go QUIESCED at once, or QUIESCING and
 * it waits for quiescing complete), LOCKED_INSTANTIATION stops its processes. */
enum su_admin { SU_UNLOCKED, SU_LOCKED, SU_LOCKED_INSTANTIATION, SU_SHUTTING_DOWN, _SU_ADMIN_MAX };
const char *su_admin_to_string(enum su_admin s);
int su_admin_from_string(const char *s); /* the state, or -EINVAL */
/* The administrative state of an SI: LOCKED and SHUTTING_DOWN remove its assignments. */
enum si_admin { SI_UNLOCKED, SI_LOCKED, SI_SHUTTING_DOWN, _SI_ADMIN_MAX };
const char *si_admin_to_string(enum si_admin s);
int si_admin_from_string(const char *s); /* the state, or -EINVAL */
enum su_oper { SU_ENABLED, SU_DISABLED };
/* AMF_HELD_INST_BY_NODE: a unit locked by itself whose processes a node switchover stopped (it is
 * LOCKED-INSTANTIATION through the node's operation, LOCKED by itself): the node's unlock-instantiation
 * starts them again, and leaves it LOCKED. */
enum { AMF_HELD_BY_SG = 1u << 0, AMF_HELD_BY_NODE = 1u << 1, AMF_HELD_INST_BY_NODE = 1u << 2 };
#define AMF_HELD_LOCKS (AMF_HELD_BY_SG | AMF_HELD_BY_NODE)

/*
 * Someone waiting for an operator command to complete (haloctl on this node,
 * or another node that forwarded the command).  The AMF calls done() exactly
 * once, with 0 or -errno, and forgets the waiter: done() frees it if it must.
 */
struct amf_waiter {
    void (*done)(struct amf_waiter *w, int error);
};

struct comp {
    struct amf *amf;
    struct su *su;
    const struct config_component *cfg;
    /* A reload's description that its restart in place applies: its old process is stopped as
     * cfg says, the new one started as this says (amf_comp_take_cfg()); NULL: none. */
    const struct config_component *cfg_next;
    const char *name;
    enum presence presence;
    struct proc *proc;
    pid_t pid;
    struct conn *conn; /* the HA link it registered on; NULL when not registered */
    uv_timer_t timer;  /* instantiate or terminate timeout */
    struct hc *hcs;
    usec_t spawned_at;
    unsigned restarts;    /* processes started, for status */
    uint64_t hc_failures; /* health checks missed or failed, for halo_health_check_failures_total */
    char *last_exit;
    bool adopted;       /* started by a previous halod, watched through a pidfd */
    bool object_states; /* its registration asked for the cluster's object states */
    /* A non-SA-aware component (amf-nsa.c): its process runs while its unit holds its CSI ACTIVE. */
    struct proc *helper; /* its terminate or cleanup command, while it runs */
    bool helper_cleanup; /* the helper is the cleanup command */
    bool starting;       /* proc is the command that starts a pidfile daemon, not the daemon yet */
    bool unclean;        /* a process of it ran and did not stop cleanly: its cleanup is due */
    bool killed;         /* its process got SIGKILL */
    pid_t last_pid;      /* the process it had, for its terminate and cleanup commands */
    /* A proxied component (amf-proxied.c): the component acting for it (NULL on another node). */
    struct comp *proxy;
    bool proxy_asked; /* its proxy was asked to instantiate it (or has: it registered it) */
    /* Restart in place (amf-ladder.c), for a failure (the ladder's component-restart rung) or an
     * operator's restart: its unit keeps its roles, and the new process gets its CSIs again. */
    bool restart_in_place;
    bool restart_at_once; /* an operator's restart: no restart delay, no failure */
    bool restart_spawned; /* the new process runs: its end before registering is a failure */
    bool spawn_deferred;  /* its spawn waits for the next loop iteration (c->timer: amf_comp_instantiate()) */
    /* External active monitoring (amf-monitor.c): the description's monitor, or an OCF agent's. */
    struct {
        uv_timer_t timer;     /* the next run; while one runs, its timeout */
        struct proc *proc;    /* the run in flight */
        unsigned incarnation; /* restarts when it was armed: a run of an earlier process is void */
        bool stopped;         /* haloctl eam-stop */
    } monitor;
    /* A reload removed it from its unit (amf_comp_remove(), one node): removing while its CSI
     * removes and then its stop are under way (its unit does not wait for it to be in service);
     * removed once it runs nothing: no lookup, status, start or CSI finds it any more.  Kept,
     * unused, until halod exits: a unit's components never move. */
    bool removing, removed;
    /* An OCF resource agent (amf-ocf.c). */
    struct {
        struct proc *prep; /* its meta-data action, then its probe, before the unit is first in service */
        bool ready;        /* its meta-data was read (or could not be: the defaults apply) */
        bool up;           /* its start succeeded and no stop or cleanup succeeded since */
        bool probed;       /* its probe ran in this halod's life, and a resource it found left running was dealt with */
        bool joining;      /* a reload added it to a running unit: its unit stays in service without it until probed */
        usec_t start, stop, monitor_timeout, monitor_interval; /* the timeouts that apply */
        usec_t meta[4]; /* those its meta-data advertises (0: none), in that order: amf_ocf_timeouts() */
    } ocf;
};

/* Whether c registers and answers callbacks (itself, or through its proxy); else halod carries out its CSIs itself. */
static inline bool amf_comp_sa_aware(const struct comp *c) {
    return c->cfg->type == CONFIG_COMP_SA_AWARE || c->cfg->type == CONFIG_COMP_PROXIED;
}

/* Whether c has no process of halod's: its proxy instantiates it, registers it and takes its callbacks. */
static inline bool amf_comp_proxied(const struct comp *c) {
    return c->cfg->type == CONFIG_COMP_PROXIED;
}

/* A rung of the escalation ladder (amf-ladder.c): its recoveries within the probation. */
struct amf_rung_count {
    unsigned count;
    uv_timer_t probation; /* the count goes back to 0 when it fires */
};
/* Whether c is an OCF resource agent (a kind of non-SA-aware component whose actions halod runs). */
static inline bool amf_comp_ocf(const struct comp *c) {
    return c->cfg->type == CONFIG_COMP_OCF;
}

/* What another node's halod published of one of its units (several nodes). */
struct su_remote {
    bool known; /* its node published it */
    bool in_service;
    bool failing;  /* fencing or restarting after a failure */
    bool fenced;   /* none of its processes runs */
    bool probing;  /* an OCF resource of it may run unknown to halo: probed, or found running and being stopped */
    int64_t lease; /* the lease of its node when it published: the unit's incarnation */
    enum su_admin admin;
    int64_t rev;      /* the store revision of that state (not compared: a newer copy of the same state) */
    unsigned stop_ms; /* the longest stop timeout of its OCF resources (0: it has none): they may still be
                       * being stopped that long after its node's lease ended (amf_su_ocf_stop_msec()) */
};

/* Field by field: memcmp() would compare the padding too, which nobody sets. */
static inline bool amf_su_remote_equal(const struct su_remote *a, const struct su_remote *b) {
    return a->known == b->known && a->in_service == b->in_service && a->failing == b->failing &&
           a->fenced == b->fenced && a->probing == b->probing && a->lease == b->lease && a->admin == b->admin &&
           a->stop_ms == b->stop_ms;
}

struct su {
    struct amf *amf;
    struct sg *sg;
    const struct config_su *cfg;
    const char *name;
    bool local;         /* on this node */
    struct comp *comps; /* cap_comps allocated, n_comps in use: a reload adds components without moving any */
    size_t n_comps, cap_comps;
    enum su_admin admin;
    /* Whose lock holds it out of service (AMF_HELD_BY_*): its group's, its node's; 0 when its
     * own state is its own (unlocked, or locked as a unit).  Their unlock unlocks it. */
    unsigned held_by;
    enum su_oper oper;
    bool failing;                          /* a failure is being recovered: waiting for its processes to end */
    bool admin_restart;                    /* the failure is an operator's restart: no backoff, not counted */
    bool adopting;                         /* its processes outlived a previous halod: waiting for them to register
                                            * again; its assignments were restored and stand still meanwhile */
    usec_t *fail_times;                    /* recent failures within the restart window, at most restart.max + 1 */
    unsigned n_fail_times, cap_fail_times; /* grown as failures come: most units never fail */
    usec_t delay;                          /* next restart delay */
    uv_timer_t restart_timer;
    uv_timer_t fence_timer; /* says when fenced processes outlive their terminate timeout */
    bool unkillable;        /* they did: its SIs wait until they die, or 'haloctl repair' */
    bool kill_waived;       /* the operator said they are gone: counted as fenced until they are reaped */
    char *last_failure;
    struct amf_waiter *waiter; /* lock: done when the SU holds no assignment */
    struct su_remote remote;   /* a unit of another node: what its node published */
    /* Another node's unit this halod never saw published, whose node held no lease when this halod
     * first read the store: its OCF resources may still be being stopped by a fence this halod did
     * not see, so a target for it other than STANDBY blocks the SI until it counts as fenced
     * (amf_su_unseen_stopping()). */
    bool unseen_stopping;
    bool was_in_service; /* as the deciding node saw it last (amf-reconcile.c) */
    usec_t back_at;      /* when it last came (back) into service, as the deciding node saw it */
    struct amf_rung_count comp_restarts, su_restarts; /* the escalation ladder's counts (amf-ladder.c) */
    char *last_recovery;                              /* which rung acted last and why */
    uint64_t restarts_total; /* started again after a failure (su-restart, or after failover): metrics */
    /* A reload removed it from the description (amf_su_remove()): it was locked, its processes
     * stopped; no lookup, operation, status or model finds or uses it any more.  Kept, unused,
     * until halod exits, as the other layers may still point into it. */
    bool removed;
    /* A reload removed it, on several nodes, and it is another node's (amf_su_remove()): it counts as
     * locked whatever its node publishes, so that its roles leave it as a lock's do; it is removed
     * once it holds nothing in this node's view (amf_unit_left()). */
    bool leaving;
};

struct assignment {
    struct su *su;        /* NULL: slot unused */
    halo_ha_state state;  /* confirmed */
    halo_ha_state target; /* requested; == state when nothing is in flight */
    unsigned pending;     /* invocations in flight (or: another node's confirmation awaited) */
    bool removing;        /* CSI remove in flight: the slot frees when pending reaches 0 */
    bool confirmed;       /* state was confirmed at least once */
    uint64_t gen;         /* several nodes: the generation of the target (target/<si>/<su>) */
};

struct si {
    struct amf *amf;
    struct sg *sg;
    const struct config_si *cfg;
    const char *name;
    /* One slot per SU of the group (an SU holds an SI once at most), so a
     * model may give an SI as many assignments as the group has SUs; sg->cap_sus
     * allocated, n_asg (the group's n_sus) in use. */
    struct assignment *asg;
    size_t n_asg;
    bool switchover;        /* an operator asked to move ACTIVE to the standby */
    uint64_t generation;    /* bumped on every confirmed change, persisted */
    char *preferred_active; /* from the store after a restart */
    struct amf_waiter *waiter;
    usec_t unassigned_since;
    struct su *fencing; /* the failed former ACTIVE: promote only once its processes are gone */
    enum si_admin admin;
    bool removal_lock; /* its lock is its group's removal's, not an operator's (amf-persist.c) */
    /* A reload removed it from the description (amf_si_remove()): no lookup, operation, status or
     * metric finds it; the model takes it from its units as a lock does (ACTIVE QUIESCED, then
     * removed), then it holds nothing for good.  Kept, unused, until halod exits (pointers). */
    bool removed;
    bool gone; /* removed, and its units hold nothing of it any more (logged once) */
};

struct redundancy_ops;

struct sg {
    struct amf *amf;
    const struct config_sg *cfg;
    const char *name;
    struct su *sus; /* cap_sus allocated, n_sus in use: a reload adds units without moving any */
    size_t n_sus, cap_sus;
    struct si *sis; /* cap_sis allocated, n_sis in use: a reload adds SIs without moving any */
    size_t n_sis, cap_sis;
    const struct redundancy_ops *ops;
    bool adjusting;          /* sg-adjust: ACTIVEs move back to the most preferred units in this pass */
    enum su_admin admin;     /* its own administrative state (lock sg:NAME), persisted */
    uv_timer_t adjust_timer; /* auto-adjust: the end of the earliest probation */
    /* A reload removed it from the description (amf_sg_remove()): its processes stopped, it is no
     * object of the cluster's any more (no lookup, operation or status finds it); kept, unused,
     * until halod exits, as the other layers may still point into it. */
    bool removed;
};

/* The SI's (first) assignment whose target is state, or NULL. */
static inline struct assignment *amf_si_find(struct si *si, halo_ha_state state) {
    for (size_t i = 0; i < si->n_asg; i++)
        if (si->asg[i].su && si->asg[i].target == state)
            return &si->asg[i];
    return NULL;
}

/* The SI's assignment on su, or NULL. */
static inline struct assignment *amf_si_find_su(struct si *si, const struct su *su) {
    for (size_t i = 0; i < si->n_asg; i++)
        if (si->asg[i].su == su)
            return &si->asg[i];
    return NULL;
}

/* Whether an invocation for one of the SI's assignments is in flight. */
static inline bool amf_si_busy(const struct si *si) {
    for (size_t i = 0; i < si->n_asg; i++)
        if (si->asg[i].su && si->asg[i].pending)
            return true;
    return false;
}

/* The unit's administrative state (on another node: as its node last published). */
static inline enum su_admin amf_su_admin(const struct su *su) {
    return su->local ? su->admin : su->remote.admin;
}
/* Whether a component of the unit restarts in place (its roles stand meanwhile). */
static inline bool amf_su_restarting(const struct su *su) {
    for (size_t i = 0; su->local && !su->failing && i < su->n_comps; i++)
        if (su->comps[i].restart_in_place)
            return true;
    return false;
}

/* Whether nothing of this node's unit may still hold what it held: none of its processes
 * runs, and no SI waits for it to be fenced (its cleanup command or OCF stop still to run,
 * amf_su_failover()).  Published to the other nodes as the unit's "fenced". */
bool amf_su_fenced(const struct su *su);
/* Whether the unit can take an assignment now (on another node: as its node last published). */
bool amf_su_in_service(const struct su *su);
/* Whether the unit keeps what it holds: in service, or restarting in place after a component failure. */
static inline bool amf_su_keeps(const struct su *su) {
    return amf_su_in_service(su) || (amf_su_restarting(su) && su->admin == SU_UNLOCKED);
}
/* Whether a unit of this node may hold an OCF resource nobody knows of yet: probed, or found running and being
 * stopped (amf-reconcile.c).  No unit of its group is given ACTIVE meanwhile, on any node. */
bool amf_su_probing(const struct su *su);
/* The longest stop timeout of the unit's OCF resources, in milliseconds (0: it has none): once its
 * node fences itself (or its halo-guard does, at the lease deadline), their stop may take that long,
 * so another node's unit takes their work only then (cluster-fence.c).  Published as "stop_ms". */
unsigned amf_su_ocf_stop_msec(const struct su *su);
/* Whether it can be given ACTIVE now: in service, and ready as the readiness
 * hooks say (amf_add_active_readiness()); a unit that is not may be STANDBY. */
bool amf_su_may_be_active(const struct su *su);
