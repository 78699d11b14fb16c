/* SPDX-License-Identifier: MIT */
/*
 * What the parts of libhalo share: the handle (struct halo) and the internal
 * calls between its files.  halo-handle.c opens, closes and frees the handle;
 * halo-link.c keeps its link to halod up (connect, Hello, receive, reconnect);
 * halo-request.c sends a request and waits for its Reply; halo-dispatch.c
 * queues what halod sends and runs the callbacks; halo-amf.c, halo-cdb.c and
 * halo-ha.c are the calls of include/halo/halo.h, cdb.h and ha.h;
 * halo-lease.c enforces the node lease; halo-crash.c captures a crash for halod.
 *
 * Locking: h->lock protects everything in struct halo but the fds and the
 * callbacks, which do not change while the handle is open.  A function whose
 * comment says "Lock held" is called with it and returns with it, even if it
 * drops it meanwhile.
 */
#pragma once

#include <errno.h>
#include <poll.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdint.h>
#include <time.h>

#include "halo/halo.h"
#include "halo/txn.h"
#include "link.h"
#include "list.h"

#define HALO_EXPORT __attribute__((visibility("default")))

#define CALL_TIMEOUT_MSEC 5000 /* hello, and every request waiting for its Reply */
#define PUMP_BATCH 64          /* packets read in one go before callbacks get a turn */
#define RECONNECT_FIRST_MSEC 10
#define RECONNECT_BACKOFF_MAX_MSEC 1000

/* A message received but not yet dispatched. */
struct queued {
    LinkMsg *msg;
    LIST_FIELDS(struct queued, queue);
};

/*
 * Applies a request's outcome to the handle's state, given halod's error (0 or
 * negative).  Runs under the lock when the Reply is read, before any later
 * packet of the link (its end included) is looked at.  arg is the request's.
 */
typedef void (*halo__commit_fn)(halo *h, int error, const Halo__Link__Reply *reply, void *arg);

/* A thread waiting for the Reply that carries seq; lives on that thread's stack. */
struct waiter {
    uint64_t seq;
    uint64_t epoch; /* of the link the request went out on */
    LinkMsg *reply; /* set by whichever thread reads it */
    halo__commit_fn commit;
    void *arg;
    LIST_FIELDS(struct waiter, waiters);
};

/* A component-invoked health check halod runs for us: started again after a reconnection. */
struct hc {
    LIST_FIELDS(struct hc, hcs);
    char *comp; /* as given to halo_healthcheck_start(); NULL: the registered component */
    char *key;
    halo_hc_invoked invoked;
    halo_recovery recovery;
    int refused; /* halod's answer when started again, if an error */
};

/* A protection group tracked with CHANGES or CHANGES_ONLY: tracked again after a reconnection. */
struct pg {
    LIST_FIELDS(struct pg, pgs);
    unsigned flags;
    int refused; /* halod's answer when tracked again, if an error */
    char csi[];
};

/* A proxied component this handle registered as its proxy: registered again after a reconnection. */
struct proxied {
    LIST_FIELDS(struct proxied, proxied);
    int refused; /* halod's answer when registered again, if an error */
    char comp[];
};

struct halo_cdb_sub;    /* halo-cdb.c's */
struct halo_name_track; /* halo-name.c's */
struct halo_evt_sub;    /* halo-events.c's */

enum link_state {
    LINK_UP,           /* connected */
    LINK_RECONNECTING, /* halod went away; the timer says when halo_dispatch() tries again */
    LINK_RESUMING,     /* one halo_dispatch() connects and registers again; nobody else uses fd */
    LINK_DOWN,         /* for good: calls return -ENOTCONN */
};

struct halo {
    pthread_mutex_t lock; /* protects everything below except the immutable fds and callbacks */
    pthread_cond_t cond;  /* a reply arrived, the reader role was released, the link changed, or the handle closed */
    unsigned n_refs;      /* 1 while open, plus 1 per call in progress */

    int fd;   /* the HA link; replaced only in RESUMING, with no reader polling it */
    int evfd; /* signalled while a callback is pending, when DOWN, and after halo_close() */
    int tfd;  /* timerfd: expires when the next reconnection attempt is due */
    int epfd; /* the selection object: fd + evfd + tfd */

    halo_callbacks cb;
    halo_recovery_cb recovery_cb;                         /* since 0.4 */
    halo_proxied_cb proxied_instantiate, proxied_cleanup; /* since 0.6 */
    void *userdata;
    char *path; /* halod's socket, for reconnecting */
    int reconnect_max_msec;

    char *comp;   /* the registered component; NULL if none */
    uint64_t seq; /* last seq used */
    LIST_HEAD(struct queued) queue;
    LIST_HEAD(struct waiter) waiters;
    LIST_HEAD(struct hc) hcs;          /* newest first: started again in that order */
    LIST_HEAD(struct pg) pgs;          /* likewise */
    LIST_HEAD(struct proxied) proxied; /* likewise */
    LIST_HEAD(struct halo_cdb_sub) cdb_subs;
    /* halo_object_interest()'s rules as halod took them, given again on a reconnection. */
    Halo__Link__InterestRule **interest;
    size_t n_interest;
    bool interest_set;
    LIST_HEAD(struct halo_evt_sub) evt_subs; /* halo-events.c's */
    LIST_HEAD(struct halo_ckpt) ckpts;       /* open checkpoints (halo-ckpt.c) */
    LIST_HEAD(struct halo_name_track) name_tracks;
    /* Transactions (halo-txn.c): the participant's callbacks, the commits waiting for an outcome. */
    halo_txn_prepare_cb txn_prepare;
    halo_txn_outcome_cb txn_outcome;
    void *txn_userdata;
    LIST_HEAD(struct halo_txn_wait) txn_waits;
    bool reading; /* a thread is polling the socket without the lock */
    bool closed;  /* halo_close() was called */
    bool leased;  /* counted in the lease's users */
    bool evfd_on;
    unsigned dispatching; /* threads in halo_dispatch(): the eventfd is brought up to date when they leave */

    enum link_state state;
    uint64_t epoch; /* counts link losses */
    struct timespec next_attempt, give_up_at;
    int backoff_msec;
    uint32_t rnd; /* jitter */

    /* The log service's levels, as halod last sent them (halo-log.c), and the records dropped since
     * the last one sent. */
    int log_level;
    unsigned n_log_streams;
    struct {
        char name[LINK_LOG_STREAM_MAX + 1];
        int level;
    } log_streams[LINK_LOG_STREAMS_MAX];
    uint32_t log_dropped;

    /* Link-state callbacks not delivered yet: LOST first, then the outcome. */
    bool lost_pending;
    int lost_error;
    halo_link_state outcome_pending; /* 0: none */
    int outcome_error;
};

/* ---- time ------------------------------------------------------------------ */

static inline struct timespec deadline_after_msec(int msec) {
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    t.tv_sec += msec / 1000;
    t.tv_nsec += (long)(msec % 1000) * 1000000L;
    if (t.tv_nsec >= 1000000000L) {
        t.tv_sec++;
        t.tv_nsec -= 1000000000L;
    }
    return t;
}

static inline bool timespec_after(const struct timespec *a, const struct timespec *b) {
    return a->tv_sec > b->tv_sec || (a->tv_sec == b->tv_sec && a->tv_nsec > b->tv_nsec);
}

/* Milliseconds left until deadline, rounded up; 0 once it passed. */
static inline int msec_until(const struct timespec *deadline) {
    struct timespec now;
    clock_gettime(CLOCK_MONOTONIC, &now);
    long long ns = (long long)(deadline->tv_sec - now.tv_sec) * 1000000000LL + (deadline->tv_nsec - now.tv_nsec);
    if (ns <= 0)
        return 0;
    return (int)((ns + 999999) / 1000000);
}

/* Polls one fd; returns > 0 ready, 0 timeout, -errno.  EINTR restarts with the time left. */
static inline int poll_one(int fd, short events, const struct timespec *deadline) {
    for (;;) {
        struct pollfd p = {.fd = fd, .events = events};
        int r = poll(&p, 1, deadline ? msec_until(deadline) : -1);
        if (r >= 0)
            return r;
        if (errno != EINTR)
            return -errno;
    }
}

/* halod may send errors with either sign; callers always see them negative. */
static inline int negative(int32_t e) {
    return e > 0 ? -e : e;
}

/* ---- halo-handle.c: references ------------------------------------------- */

/* Starts a call: returns 0 with the lock held and a reference taken, or -EBADF after halo_close(). */
int halo__enter(halo *h);
/* Ends a call: drops the lock and the reference; the last reference frees the handle. */
void halo__leave(halo *h);

/* ---- halo-lease.c --------------------------------------------------------- */

/* Starts watching path (HelloReply.lease_file), or the same file again after a reconnection. */
void halo__lease_watch(halo *h, const char *path);
/* A handle closes: with the last one, nothing is enforced any more. */
void halo__lease_unwatch(halo *h);
/* Arms the lease timers for the deadline in the file now (before a CSI set reaches the application). */
void halo__lease_refresh(void);

/* ---- halo-crash.c -------------------------------------------------------- */

/* Installs the fatal-signal handler of crash capture, once per process (see halo-crash.c). */
void halo__crash_install(void);

/* ---- halo-log.c ----------------------------------------------------------- */

/* Back to the levels before halod sent any (a new link: its halod sends its own).  Lock held. */
void halo__log_reset(halo *h);
/* halod sent the levels that apply from now on.  Lock held. */
void halo__log_levels(halo *h, const Halo__Link__LogLevels *l);

/* ---- halo-txn.c ----------------------------------------------------------- */

/* Run the participant's callback and answer halod (lock not held); false if none ran. */
bool halo__txn_prepare(halo *h, const Halo__Link__TxnPrepare *p);
bool halo__txn_outcome(halo *h, const Halo__Link__TxnOutcome *o);
/* Runs the commit's done callback (lock not held); false if none ran. */
bool halo__txn_done(halo *h, const Halo__Link__TxnDone *d);
/* The link ended: every commit waiting is told so through halo_dispatch().  Lock held. */
void halo__txn_link_lost(halo *h);
/* Frees the commits waiting (the handle is going). */
void halo__txn_free(halo *h);

/* ---- halo-link.c ---------------------------------------------------------- */

/* Connects a SOCK_SEQPACKET socket to path ('@': abstract); flags as socket()'s.  Returns the fd or -errno. */
int halo__link_connect(const char *path, int flags);
/* Sends Hello and waits for HelloReply.  Lock held; released while waiting. */
int halo__link_hello(halo *h, const struct timespec *deadline);
/* Sends one packet, waiting for room until deadline.  Lock held.  -ENOTCONN: the link is gone. */
int halo__link_send(halo *h, const LinkMsg *m, const struct timespec *deadline);
/* The link ended: reconnect if a component is registered, else DOWN.  Lock held. */
void halo__link_lost(halo *h, int error);
/* Reads what waits on the socket.  Lock held, the caller the only reader.  Count, -ENOTCONN, -ENOMEM. */
int halo__link_pump(halo *h);
/* One reconnection attempt, when due.  Lock held, RECONNECTING, no reader. */
void halo__link_reconnect(halo *h);

/* ---- halo-request.c ------------------------------------------------------- */

/*
 * Sends req, whose seq field is *seq, and waits for halod's Reply.  When comp
 * is not NULL and *comp is, *comp becomes the registered component
 * (-HALO_ENOTREG if none).  commit, if not NULL, runs with arg when the Reply
 * is read.  Returns the Reply's error (0 or negative) and, on success,
 * *ret_reply if asked for (free with link_msg_free()); or -ETIMEDOUT,
 * -ENOTCONN, -HALO_ETRYAGAIN or -HALO_EBADINVOCATION (the link went away),
 * -EBADF, -ENOMEM.  Lock not held.
 */
int halo__request_full(halo *h, LinkMsg *req, uint64_t *seq, char **comp, halo__commit_fn commit, void *arg,
                       LinkMsg **ret_reply);
/* halo__request_full() without a component or a commit. */
int halo__request(halo *h, LinkMsg *req, uint64_t *seq, LinkMsg **ret_reply);
/* Sends one request of a reconnection and returns halod's verdict in *ret_error.  Lock held, RESUMING.
 * Returns 0, or -ENOTCONN, -ETIMEDOUT, -EBADF, -ENOMEM. */
int halo__request_resume(halo *h, LinkMsg *req, uint64_t *seq, const struct timespec *deadline, int *ret_error);
/* Hands a Reply to the thread waiting for its seq, or drops it.  Lock held; takes m. */
void halo__request_deliver(halo *h, LinkMsg *m);

/* ---- halo-dispatch.c ------------------------------------------------------ */

/* Brings the eventfd up to date with what halo_dispatch() has to do.  Lock held. */
void halo__dispatch_update(halo *h);
/* Queues m for its callback, in q (which the queue takes).  Lock held. */
void halo__dispatch_push(halo *h, struct queued *q, LinkMsg *m);
/* Drops every queued message: its link is gone, so nobody could hear an answer.  Lock held. */
void halo__dispatch_flush(halo *h);
/* Records a link-state callback for halo_dispatch().  Lock held. */
void halo__dispatch_notify(halo *h, halo_link_state state, int error);

/* ---- halo-amf.c ----------------------------------------------------------- */

/* Every field written: the states of a note are delivered straight from malloc(). */
void halo__amf_object_state_copy(halo_object_state *d, const Halo__Link__ObjectState *s);
/* The registered component forgot its checks and tracks.  Lock held (or the handle is going). */
void halo__amf_tracked_clear(halo *h);
/* Starts the kept health checks and tracks again on a new link, noting what halod refuses.  Lock held,
 * RESUMING.  Returns 0 or the error of halo__request_resume(). */
int halo__amf_resume(halo *h, const struct timespec *deadline);
/* The reconnection succeeded: forgets what halod refused, and says so of each refused track. */
void halo__amf_resume_done(halo *h);

/* ---- halo-events.c -------------------------------------------------------- */

/* Gives the new link the interest rules, before the component registers again (its
 * snapshot is then filtered).  Lock held, RESUMING.  Returns 0 or halo__request_resume()'s error. */
int halo__events_resume(halo *h, const struct timespec *deadline);
void halo__events_free(halo *h);
/* An event of a channel subscription: its callback ran (or false: none). */
bool halo__evt_event(halo *h, const Halo__Link__EvtEvent *m);
void halo__evt_free(halo *h);
/* Subscribes again on a new link, after the component registered again.  Lock held, RESUMING. */
int halo__evt_resume(halo *h, const struct timespec *deadline);

/* ---- halo-cdb.c ----------------------------------------------------------- */

/* Runs the subscription's callback for a CdbChange (lock not held); false if none ran. */
bool halo__cdb_change(halo *h, const Halo__Link__CdbChange *m);
/* Subscribes again on a new link.  Lock held, RESUMING.  As halo__amf_resume(). */
int halo__cdb_resume(halo *h, const struct timespec *deadline);
/* Frees the subscription list (lock not needed: the handle is going). */
void halo__cdb_free(halo *h);

/* ---- halo-ckpt.c ---------------------------------------------------------- */

/* Runs the opener's update callback for a CkptUpdate (lock not held); false if none ran. */
bool halo__ckpt_update(halo *h, const Halo__Link__CkptUpdate *m);
/* Opens the checkpoints again on a new link.  Lock held, RESUMING.  As halo__amf_resume(). */
int halo__ckpt_resume(halo *h, const struct timespec *deadline);
/* Frees the open checkpoints (the handle is going). */
void halo__ckpt_free(halo *h);
/* ---- halo-name.c ---------------------------------------------------------- */

/* Runs the track's callback for a NameNote (lock not held); false if none ran. */
bool halo__name_note(halo *h, const Halo__Link__NameNote *m);
/* Tracks again on a new link.  Lock held, RESUMING.  As halo__amf_resume(). */
int halo__name_resume(halo *h, const struct timespec *deadline);
/* Frees the track list (lock not needed: the handle is going). */
void halo__name_free(halo *h);
