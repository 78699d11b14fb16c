/* SPDX-License-Identifier: MIT */
/*
 * libhalo: the component side of the HA link, modelled on the SA Forum AMF API.
 *
 * A component links libhalo, opens a handle with halo_open(), registers, and
 * then polls halo_fd() and calls halo_dispatch() when it is readable (the SA
 * Forum selection-object pattern).  Callbacks run only on the thread that
 * calls halo_dispatch().  libhalo starts one thread of its own, on several
 * nodes only: the node lease's timer, which SIGKILLs the process when its
 * halod is gone past the lease (so an application that does not dispatch, or
 * is stuck, is stopped too); it runs no callback and touches nothing of the
 * handle.  Every call is safe from any thread, and callbacks may call back
 * into libhalo.
 *
 * Errors are negative errno values, or negative HALO_E* values from the table
 * below; halo_strerror() names both.  A call that fails never runs its callback.
 * Besides the codes listed per function, every call that asks halod something
 * waits at most 5 seconds for the answer (-ETIMEDOUT), returns -ENOTCONN once
 * the link is gone for good, and rejects a name longer than 255 bytes with
 * -ENAMETOOLONG.
 *
 * When halod goes away from a handle with a registered component, libhalo
 * reconnects (see halo_link_state): meanwhile those calls return
 * -HALO_ETRYAGAIN, and answers to invocations received before
 * -HALO_EBADINVOCATION.
 */
#ifndef HALO_HALO_H
#define HALO_HALO_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

#define HALO_VERSION_MAJOR 0
#define HALO_VERSION_MINOR 4

/* Project errors extend errno; values are chosen far above any errno. */
#define HALO_ERRNO_MAP(X)                                                                   \
    X(HALO_EBADSTATE, 10001, "operation not allowed in the current state")                  \
    X(HALO_ENOTREG, 10002, "component is not registered")                                   \
    X(HALO_EUNKNOWN, 10003, "no such object in the cluster model")                          \
    X(HALO_EPROTO, 10004, "HA link protocol violation")                                     \
    X(HALO_EVERSION, 10005, "HA link protocol version not supported")                       \
    X(HALO_EBADINVOCATION, 10006, "unknown or already answered invocation")                 \
    X(HALO_ETRYAGAIN, 10007, "try again later")                                             \
    X(HALO_EEXIST, 10008, "already exists or already done")                                 \
    X(HALO_ECOMPFAILED, 10009, "component reported a failure")                              \
    X(HALO_EREADONLY, 10010, "the configuration database is read-only on a secondary")      \
    X(HALO_EBADTOKEN, 10011, "HA: bad token (the nodes' tokens differ, or no token given)") \
    X(HALO_EBADNAME, 10012, "HA: bad node name (not the primary named, or empty)")          \
    X(HALO_ECONNECT, 10013, "HA: cannot connect to the primary")                            \
    X(HALO_EBIND, 10014, "HA: cannot listen on the replication address")                    \
    X(HALO_ECLOSED, 10015, "HA: the connection was closed")

enum {
#define HALO__ERRNO_ENUM(name, value, text) name = (value),
    HALO_ERRNO_MAP(HALO__ERRNO_ENUM)
#undef HALO__ERRNO_ENUM
};

/* Returns a static description of a negative errno or HALO_E* value. */
const char *halo_strerror(int err);

/* HA state of a component for a CSI; the values are the SA Forum ones. */
typedef enum halo_ha_state {
    HALO_HA_ACTIVE = 1,
    HALO_HA_STANDBY = 2,
    HALO_HA_QUIESCED = 3,
    HALO_HA_QUIESCING = 4,
} halo_ha_state;

/* Returns "ACTIVE", "STANDBY", ...; "UNKNOWN" for any other value. */
const char *halo_ha_state_to_string(halo_ha_state s);

typedef enum halo_dispatch_flags {
    HALO_DISPATCH_ONE = 1,      /* run at most one pending callback */
    HALO_DISPATCH_ALL = 2,      /* run every pending callback, then return */
    HALO_DISPATCH_BLOCKING = 3, /* run callbacks until halo_close() or the link is gone for good */
} halo_dispatch_flags;

/* Recovery a component recommends with an error report or a health check. */
typedef enum halo_recovery {
    HALO_RECOVERY_NONE = 1,
    HALO_RECOVERY_COMPONENT_RESTART = 2,
    HALO_RECOVERY_COMPONENT_FAILOVER = 3,
    HALO_RECOVERY_NODE_SWITCHOVER = 4,
    HALO_RECOVERY_NODE_FAILOVER = 5,
    HALO_RECOVERY_NODE_FAILFAST = 6,
} halo_recovery;

/* Who drives a health check. */
typedef enum halo_hc_invoked {
    HALO_HC_AMF_INVOKED = 1,       /* halod calls the healthcheck callback */
    HALO_HC_COMPONENT_INVOKED = 2, /* the component calls halo_healthcheck_confirm() */
} halo_hc_invoked;

/* Flags of a CSI set or remove. */
enum {
    HALO_CSI_ADD_ONE = 1,    /* this one CSI */
    HALO_CSI_TARGET_ONE = 2, /* an existing assignment of this one CSI changes */
    HALO_CSI_TARGET_ALL = 4, /* every CSI assigned to the component */
};

/* Why a CSI went ACTIVE, as in SaAmfCSITransitionDescriptorT. */
typedef enum halo_csi_transition {
    HALO_CSI_NEW_ASSIGN = 1,
    HALO_CSI_QUIESCED = 2,     /* the previous active was quiesced (switchover) */
    HALO_CSI_NOT_QUIESCED = 3, /* the previous active failed (failover) */
    HALO_CSI_STILL_ACTIVE = 4,
} halo_csi_transition;

typedef struct halo_csi_attr {
    const char *name;
    const char *value;
} halo_csi_attr;

/* Valid only during the callback that receives it. */
typedef struct halo_csi_descriptor {
    unsigned flags;       /* HALO_CSI_* */
    const char *csi_name; /* NULL with HALO_CSI_TARGET_ALL */
    const char *si_name;
    size_t n_attrs;
    const halo_csi_attr *attrs;
    halo_csi_transition transition; /* meaningful for ACTIVE only */
    const char *active_comp;        /* the ACTIVE component, for STANDBY; may be NULL */
} halo_csi_descriptor;

/* Protection-group tracking. */
enum {
    HALO_TRACK_CURRENT = 1,      /* report the current members once */
    HALO_TRACK_CHANGES = 2,      /* report all members on every change */
    HALO_TRACK_CHANGES_ONLY = 4, /* report only the changed members */
};

typedef enum halo_pg_change {
    HALO_PG_NO_CHANGE = 1,
    HALO_PG_ADDED = 2,
    HALO_PG_REMOVED = 3,
    HALO_PG_STATE_CHANGED = 4,
} halo_pg_change;

typedef struct halo_pg_member {
    const char *comp_name;
    halo_ha_state ha_state;
    halo_pg_change change;
} halo_pg_member;

typedef struct halo halo;
typedef uint64_t halo_invocation;

/*
 * The HA link of a handle with a registered component, as the link_state
 * callback reports it.  When halod goes away (it crashed or is restarted),
 * libhalo reconnects to the same socket from halo_dispatch(): first after
 * about 10 ms, then backing off to one attempt a second.  Once connected it
 * registers the component again, saying it resumes (a restarted halod adopts
 * the processes its predecessor started, with their assignments: no CSI set
 * follows), and starts the component-invoked health checks and the
 * protection-group tracks (CHANGES or CHANGES_ONLY) it had started again;
 * halod restarts AMF-invoked checks itself.  While it reconnects, calls that
 * need halod return -HALO_ETRYAGAIN, and answers to invocations received
 * before the loss -HALO_EBADINVOCATION (halod forgot them).
 */
typedef enum halo_link_state {
    HALO_LINK_LOST = 1,     /* halod went away; libhalo reconnects.  error: why the link ended */
    HALO_LINK_RESTORED = 2, /* connected and registered again; error is 0 */
    HALO_LINK_FAILED = 3,   /* libhalo gave up, every call returns -ENOTCONN from now on.  error:
                             * halod's refusal of the registration (such as -HALO_EBADSTATE or
                             * -EPERM: it did not adopt this process), -HALO_EVERSION or
                             * -HALO_EPROTO, or -ETIMEDOUT (no halod took it back within
                             * HALO_RECONNECT_MAX_MSEC) */
} halo_link_state;

/* How long libhalo tries to reconnect before HALO_LINK_FAILED. */
#define HALO_RECONNECT_MAX_MSEC 30000

/*
 * Callbacks.  Any may be NULL when the component does not use it; a NULL
 * csi_set or terminate makes halo_register() fail with -EINVAL, since halod
 * could not drive such a component.  Strings and arrays passed in are valid only
 * during the callback.
 */
/* The HA state of a cluster object as the broadcast queue published it (0.2). */
#define HALO_OBJECT_MAX 273 /* "kind:name" and its NUL */
typedef struct halo_object_state {
    char object[HALO_OBJECT_MAX]; /* "node:n1", "process:counter-a", ... */
    char state[17];               /* "ONLINE", "FAILED", "TRANSIENT", "REPAIR", "REPAIRED", "REBALANCE",
                                   * "RECOVERING", "OFFLINE"; "" when unknown */
    uint64_t hlc;                 /* when it happened (hybrid logical clock), 0 if unknown */
    uint64_t seq;                 /* the broadcast-queue entry that published it, 0 if unknown */
} halo_object_state;

typedef struct halo_callbacks {
    /* Assign (or change) a CSI; answer with halo_response(), or for QUIESCING
     * with halo_quiescing_complete() once the work in progress is done. */
    void (*csi_set)(halo *h, halo_invocation inv, const char *comp, halo_ha_state state, const halo_csi_descriptor *csi,
                    void *userdata);
    /* Remove a CSI (csi_name NULL with HALO_CSI_TARGET_ALL); answer with halo_response(). */
    void (*csi_remove)(halo *h, halo_invocation inv, const char *comp, const char *csi_name, unsigned flags,
                       void *userdata);
    /* Terminate: release resources, answer with halo_response(), then exit. */
    void (*terminate)(halo *h, halo_invocation inv, const char *comp, void *userdata);
    /* AMF-invoked health check; answer with halo_response(inv, 0) if healthy. */
    void (*healthcheck)(halo *h, halo_invocation inv, const char *comp, const char *key, void *userdata);
    /* Protection-group change for a tracked CSI.  members lists n_members
     * entries; error is 0 or a negative error (the group can no longer be tracked). */
    void (*pg_track)(halo *h, const char *csi_name, const halo_pg_member *members, size_t n_members, int error,
                     void *userdata);
    /* The HA link of a registered component was lost, restored, or given up
     * (since 0.2; see halo_link_state).  Delivered by halo_dispatch() like the
     * others; a handle without a registered component never gets it. */
    void (*link_state)(halo *h, halo_link_state state, int error, void *userdata);
    /* HA states of cluster objects (nodes, processes, ...), in the order the
     * coordinator's broadcast queue published them: the seeds' nvec set
     * (since 0.2).  Setting it asks halod, at registration, to send them. */
    void (*object_states)(halo *h, const halo_object_state *states, size_t n_states, void *userdata);
} halo_callbacks;

/*
 * Opens the HA link to the local halod at $HALO_SOCKET (or socket_path when
 * not NULL) and negotiates the protocol version.  callbacks is copied: a
 * program built against the 0.1 header, whose struct has no link_state, is
 * linked to the HALO_0.1 version of this function, which copies only the
 * fields the 0.1 struct has.
 * Returns 0 and *ret, or -EINVAL, -ENOENT (no socket given, or no such file),
 * -ECONNREFUSED, -ENOMEM, -ETIMEDOUT (no answer to the version handshake),
 * -HALO_EVERSION, -HALO_EPROTO.
 */
int halo_open(const char *socket_path, const halo_callbacks *callbacks, void *userdata, halo **ret);

/*
 * Closes the link and frees the handle; accepts NULL; returns NULL.  May be
 * called from a callback or while another thread is inside a call: those calls
 * return -EBADF and the handle is freed when the last one returns.  The handle
 * must not be passed to a new call afterwards.
 */
halo *halo_close(halo *h);

/*
 * The selection object: a file descriptor that polls readable while a callback
 * is pending or a reconnection attempt is due.  Owned by the handle; the same
 * fd for the handle's whole life, across reconnections.  Returns the fd or
 * -EINVAL.
 */
int halo_fd(halo *h);

/*
 * Runs pending callbacks on the calling thread, and reconnects when an attempt
 * is due.  Returns the number of callbacks run (>= 0), or -ENOTCONN when the
 * link is gone for good (halod closed it and the handle has no registered
 * component, or reconnecting failed), -EINVAL, -EBADF when halo_close() was
 * called meanwhile (by a callback or another thread).
 */
int halo_dispatch(halo *h, halo_dispatch_flags flags);

/*
 * Registers a component (comp NULL: $HALO_COMPONENT) with halod; from then on
 * halod may assign CSIs to it.
 *
 * With proxy NULL, comp is the caller's own component; a handle registers one.
 * With proxy set (since 0.6), the caller is a proxy: proxy is the component
 * this handle registered, and comp a proxied component of it (`type: proxied`,
 * `proxy: PROXY` in the description) that halod asked it to instantiate (the
 * proxied_instantiate callback, see halo_proxy_set_callbacks()).  From then on
 * the CSI sets, removes and terminate of comp come to this handle's
 * callbacks with comp naming it; comp (NULL for a proxied one is -EINVAL)
 * counts as running until its proxy's link ends or halod cleans it up.  The
 * handle keeps comp's name until it unregisters it: after a reconnection to a
 * restarted halod it registers comp again (resuming) after its own component.
 *
 * Returns 0, -EINVAL, -HALO_EUNKNOWN (not in the model), -HALO_EEXIST (already
 * registered), -EPERM (the caller is not the process halod started for comp, nor
 * in its process group; or, with proxy, proxy is not comp's proxy),
 * -HALO_EBADSTATE (comp is not being started; or a proxied comp registered
 * without its proxy, or a proxy given for a component that is not proxied),
 * -HALO_ENOTREG (proxy is not registered on this handle), -ENOTCONN.
 */
int halo_register(halo *h, const char *comp, const char *proxy);

/* Unregisters: halod stops health checks and expects the process to exit; its
 * assignments stay until it does, and its exit is then handled as a failure
 * (the standby takes over).  A proxy unregistering a proxied component that
 * halod did not terminate fails it.  Returns 0, -HALO_ENOTREG, -ENOTCONN. */
int halo_unregister(halo *h, const char *comp);

/* ---- proxies (since 0.6) ---------------------------------------------------- */

/*
 * A proxy's callback for a proxied component comp: instantiate it (start or
 * take charge of whatever it is, then halo_register(h, comp, proxy) and
 * halo_response(h, inv, 0); an error answer fails comp), or clean it up
 * (it failed, or its unit did: stop it by force and release what it holds,
 * then halo_response()).  comp is valid during the callback only.
 */
typedef void (*halo_proxied_cb)(halo *h, halo_invocation inv, const char *comp, void *userdata);

/*
 * Makes the handle a proxy: halo_dispatch() calls instantiate and cleanup
 * (with the handle's userdata) for the proxied components halod hands it.
 * Set it before registering the proxy's own component: halod asks the proxy
 * to instantiate its proxied components as soon as it registers.  A handle
 * without them answers halod's asks with -EOPNOTSUPP (the proxied component
 * fails).  Returns 0, -EINVAL (a NULL handle or instantiate).
 */
int halo_proxy_set_callbacks(halo *h, halo_proxied_cb instantiate, halo_proxied_cb cleanup);

/* Answers a callback: error 0 for success, or a negative error.
 * Returns 0, -HALO_EBADINVOCATION (unknown or already answered), -EINVAL
 * (invocation 0, error > 0), -ENOTCONN. */
int halo_response(halo *h, halo_invocation inv, int error);

/* Ends a QUIESCING assignment: the component has finished its work in progress.
 * Returns as halo_response(). */
int halo_quiescing_complete(halo *h, halo_invocation inv, int error);

/*
 * Starts a health check named key (NULL: "default") on a component (NULL: the
 * registered one).  Period and timeout come from the cluster description.
 * recommended is the recovery when the check fails.
 * Returns 0, -HALO_EEXIST (already started), -HALO_ENOTREG, -EINVAL, -ENOTCONN.
 */
int halo_healthcheck_start(halo *h, const char *comp, const char *key, halo_hc_invoked invoked,
                           halo_recovery recommended);

/* Confirms a component-invoked check; result 0 is healthy, negative reports a failure. */
int halo_healthcheck_confirm(halo *h, const char *comp, const char *key, int result);

/* Stops a health check.  Returns 0, -ENOENT (not started), -ENOTCONN. */
int halo_healthcheck_stop(halo *h, const char *comp, const char *key);

/* Reports an error detected by the component itself; halod runs the recovery
 * (this version always fails the SU over to its standby and restarts it, whatever
 * is recommended; the value is validated).  Returns 0, -HALO_EUNKNOWN, -ENOTCONN. */
int halo_error_report(halo *h, const char *comp, halo_recovery recommended);

/*
 * Tracks the protection group of a CSI.  With HALO_TRACK_CURRENT the current
 * members are delivered through the pg_track callback by the next dispatch;
 * with CHANGES or CHANGES_ONLY every later change is too.
 * Returns 0, -HALO_EUNKNOWN, -EINVAL (no pg_track callback, bad flags), -ENOTCONN.
 */
int halo_pg_track(halo *h, const char *csi_name, unsigned flags);

/* Stops tracking.  Returns 0, -ENOENT (not tracked), -ENOTCONN. */
int halo_pg_track_stop(halo *h, const char *csi_name);

/*
 * The HA state of a component (NULL: the registered one) for a CSI.
 * Returns 0 and *ret_state, -ENOENT (no assignment), -HALO_EUNKNOWN, -ENOTCONN.
 */
int halo_ha_state_get(halo *h, const char *comp, const char *csi_name, halo_ha_state *ret_state);

/*
 * The current HA states of n cluster objects ("kind:name", 1 <= n <= 256): the
 * seeds' nvec get.  Fills ret_states[0 .. n-1] in the order asked; an object
 * with no published state gets state "".  Any connected handle may ask.
 * Returns 0, -EINVAL (a bad name or count), -ENOTCONN, -HALO_ETRYAGAIN (since 0.2).
 */
int halo_object_state_get(halo *h, const char *const *objects, size_t n, halo_object_state *ret_states);

/*
 * Where the cluster's services are (the seeds' entrypoint): *ret_json (free()
 * it) is a JSON object {"coordinator": node, "nodes": N, "online": K,
 * "quorum": N/2+1, "entrypoints": [{"si", "active", "node", "csis": [{"name",
 * "attributes": {...}}]}]} listing the SIs the description marks
 * `entrypoint: true` (active and node are null while the SI has no ACTIVE).
 * For a pool process that restarted after a failure (since 0.4), the object
 * also has "recovery": true, and its recovery notes follow (see below).
 * Returns 0, -HALO_ETRYAGAIN while the cluster has no coordinator (then
 * *ret_retry_msec, if not NULL, says when to ask again), -ENOTCONN (since 0.2).
 */
int halo_entrypoint(halo *h, char **ret_json, unsigned *ret_retry_msec);

/* ---- recovery of a restarted pool process (since 0.4; docs/recovery.md) ---- */

/* Where a pool process is in its life, told with halo_process_event(). */
typedef enum halo_lifecycle {
    HALO_PROCESS_STARTING = 1,        /* recovering: the cluster is told RECOVERING */
    HALO_PROCESS_STARTED = 2,         /* serving; after a recovery, the same as RECOVERED */
    HALO_PROCESS_STOPPING = 3,        /* for the record; its exit tells the rest */
    HALO_PROCESS_STOPPED = 4,         /* for the record; its exit tells the rest */
    HALO_PROCESS_RECOVERED = 5,       /* caught up: the cluster is told ONLINE */
    HALO_PROCESS_RECOVERY_FAILED = 6, /* back to TRANSIENT; the next STARTING tries again */
} halo_lifecycle;

/* A participant of a recovery: a live member of the recovering process's pool (since 0.5). */
typedef struct halo_participant {
    const char *object; /* "process:ios-a" */
    const char *name;   /* its component's name */
    const char *node;   /* the node it runs on */
    const char *state;  /* its HA state as published when the recovery started ("ONLINE") */
} halo_participant;

/* What halod says of a restarted pool process's recovery, after its
 * entrypoint request: "recover" with its failure vector (the HA events of its
 * epoch that concern it, in order, in parts: last is set on the final part,
 * which also lists the recovery's participants), or "refused" with the
 * reason (a FAILED device, or more failures in its pool than the pool
 * tolerates; the next entrypoint request asks again), or "aborted" with the
 * reason (since 0.5: the attempt in progress is over, by a device of its own
 * that failed or failures in its pool past its tolerance; a RECOVERED of it
 * is refused, and the next STARTING tries again). */
typedef struct halo_recovery_note {
    uint64_t epoch;                  /* the epoch the vector belongs to */
    const char *state;               /* "recover", "refused" or "aborted" */
    const char *reason;              /* refused, aborted: why; "" otherwise */
    const halo_object_state *events; /* this part of the vector */
    size_t n_events;
    uint64_t nr_failures; /* the whole vector's length */
    int last;             /* 1 on the vector's last part */
    /* Since 0.5, on the last "recover" part (n_participants 0 otherwise). */
    const halo_participant *participants;
    size_t n_participants;
} halo_recovery_note;

typedef void (*halo_recovery_cb)(halo *h, const halo_recovery_note *note, void *userdata);

/* Sets the callback halo_dispatch() calls with recovery notes (NULL: none;
 * the notes are then dropped).  userdata is the handle's.  Returns 0, -EINVAL. */
int halo_recovery_set_callback(halo *h, halo_recovery_cb cb);

/*
 * Tells halod where the registered pool process is: STARTING once it has its
 * failure vector and begins catching up, RECOVERED when it has, or
 * RECOVERY_FAILED.  Returns 0, -HALO_EBADSTATE (not now: STARTING before the
 * vector came, RECOVERED while not recovering, or a process in no pool asked
 * RECOVERED or RECOVERY_FAILED), -HALO_ENOTREG, -EINVAL, -ENOTCONN.
 */
int halo_process_event(halo *h, halo_lifecycle event, const char *reason);

/*
 * A participant of another pool process's recovery says it has served its
 * part (since 0.5): process is that process's object ("process:ios-b"), as
 * the participant was told it RECOVERING, and seq the seq of that state as
 * told (0: whichever attempt is current).  Counted in a pool with
 * `participants: report`, whose recovering process goes ONLINE only once
 * every participant still ONLINE has reported; elsewhere accepted and not
 * recorded.  Returns 0, -HALO_EBADSTATE (process is not RECOVERING, or seq
 * names an attempt that is over), -HALO_EUNKNOWN (process is not another
 * member of the caller's pool), -HALO_ENOTREG, -EINVAL, -ENOTCONN.
 */
int halo_recovery_participant_done(halo *h, const char *process, uint64_t seq);

#ifdef __cplusplus
}
#endif

#endif
