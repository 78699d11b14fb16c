/* SPDX-License-Identifier: MIT */
/*
 * libhalo: the component side of the HA link (the contract is include/halo/halo.h).
 *
 * One handle owns one SOCK_SEQPACKET connection to halod.  Requests that
 * expect an answer carry a fresh seq and the caller waits for the Reply with
 * that seq; everything else halod sends (CSI set, terminate, health checks,
 * protection-group notes) is queued and handed to callbacks by
 * halo_dispatch().  There are no threads: whichever thread needs a packet
 * reads the socket, one at a time (the "reader"), and hands replies meant for
 * other threads to them through a list of waiters.
 *
 * The selection object is an epoll fd watching the socket and an eventfd that
 * is kept signalled exactly while the queue is non-empty, so it polls readable
 * while a callback is pending, whether or not its packet was read already.
 *
 * Lifetime: the open handle holds one reference and every call in progress
 * another; halo_close() drops the first, wakes the others, and the last
 * reference frees the handle.  So halo_close() may be called from a callback
 * or while another thread blocks in halo_dispatch().
 *
 * Reconnection: when the link of a handle with a registered component ends,
 * the handle goes from UP to RECONNECTING instead of DOWN.  A timerfd in the
 * epoll set makes the selection object readable when the next attempt is due,
 * and halo_dispatch() makes it (RESUMING): connect, Hello, Register with
 * resume, then the health checks and tracks the handle keeps a list of.  Only
 * the thread in RESUMING touches the new link, so the others need not wait
 * for it: their calls fail at once with -HALO_ETRYAGAIN.  Each link has an
 * epoch; a request waits only for a Reply of its own link, and what the
 * Replies commit to the lists is applied under the lock in the order the
 * packets arrived, so a reconnection never misses a check started just before
 * the link ended.  The link-state callbacks are not queued but kept as two
 * pending flags (lost, then the outcome), delivered before any queued message:
 * everything queued belongs to the newest link.
 */
#include "halo/halo.h"
#include "halo/cdb.h"

#include <assert.h>
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdio.h>
#include <string.h>
#include <signal.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/timerfd.h>
#include <sys/un.h>
#include <time.h>

#include "halo-internal.h"
#include "link.h"
#include "macro.h"

#define CALL_TIMEOUT_MSEC 5000 /* hello, and every request waiting for its Reply */
#define PUMP_BATCH 64          /* packets read in one go before callbacks get a turn */
#define RECONNECT_FIRST_MSEC 10
#define RECONNECT_BACKOFF_MAX_MSEC 1000

/* A message received but not yet dispatched. */
struct queued {
    LinkMsg *msg;
    struct queued *next;
};

/*
 * Applies a request's outcome to the handle's state, given halod's error (0 or
 * negative).  Runs under the lock when the Reply is read, before any later
 * packet of the link (its end included) is looked at.  arg is the request's.
 */
typedef void (*commit_fn)(halo *h, int error, const Halo__Link__Reply *reply, void *arg);

/* A thread waiting for the Reply that carries seq; lives on that thread's stack. */
struct waiter {
    uint64_t seq;
    uint64_t epoch; /* of the link the request went out on */
    LinkMsg *reply; /* set by whichever thread reads it */
    commit_fn commit;
    void *arg;
    struct waiter *next;
};

/* A component-invoked health check halod runs for us: started again after a reconnection. */
struct hc {
    struct hc *next;
    char *comp; /* as given to halo_healthcheck_start(); NULL: the registered component */
    char *key;
    halo_recovery recovery;
    int refused; /* halod's answer when started again, if an error */
};

/* A protection group tracked with CHANGES or CHANGES_ONLY: tracked again after a reconnection. */
struct pg {
    struct pg *next;
    unsigned flags;
    int refused; /* halod's answer when tracked again, if an error */
    char csi[];
};

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
    halo_recovery_cb recovery_cb; /* since 0.4 */
    void *userdata;
    char *path; /* halod's socket, for reconnecting */
    int reconnect_max_msec;

    char *comp;   /* the registered component; NULL if none */
    uint64_t seq; /* last seq used */
    struct queued *head, *tail;
    struct waiter *waiters;
    struct hc *hcs;
    struct pg *pgs;
    struct halo_cdb_sub *cdb_subs; /* cdb.c's */
    bool reading;                  /* a thread is polling the socket without the lock */
    bool closed;                   /* halo_close() was called */
    bool leased;                   /* counted in lease.users */
    bool evfd_on;
    unsigned dispatching; /* threads in halo_dispatch(): the eventfd is brought up to date when they leave */

    enum link_state state;
    uint64_t epoch; /* counts link losses */
    struct timespec next_attempt, give_up_at;
    int backoff_msec;
    uint32_t rnd; /* jitter */

    /* Link-state callbacks not delivered yet: LOST first, then the outcome. */
    bool lost_pending;
    int lost_error;
    halo_link_state outcome_pending; /* 0: none */
    int outcome_error;
};

static struct hc *hc_free(struct hc *e) {
    if (e) {
        free(e->comp);
        free(e->key);
        free(e);
    }
    return NULL;
}
DEFINE_TRIVIAL_CLEANUP_FUNC(struct hc *, hc_free);

/* The registered component forgot its checks and tracks. */
static void tracked_clear(halo *h) {
    while (h->hcs) {
        struct hc *e = h->hcs;
        h->hcs = e->next;
        hc_free(e);
    }
    while (h->pgs) {
        struct pg *e = h->pgs;
        h->pgs = e->next;
        free(e);
    }
}

static void queue_flush(halo *h);

/* ---- the node lease -------------------------------------------------------- */

/*
 * On several nodes halod names a file (HelloReply.lease_file) holding the
 * CLOCK_MONOTONIC time in microseconds until which this node's lease is known
 * to be held, moved forward at every renewal (0: no deadline runs).  Once the
 * lease can have expired another node's standby takes over, so a process
 * whose halod is gone must be stopped by then, even if the application does
 * not call halo_dispatch() (or is stuck): a POSIX timer whose callback runs in
 * a thread of its own checks the file at the deadline and kills the process
 * with SIGKILL if the deadline was not moved.  One per process (a process has
 * one halod), never freed, so that a callback can never find it gone.
 */
#define LEASE_IDLE_CHECK_USEC (500 * 1000ULL) /* while no deadline runs */

static struct {
    pthread_mutex_t lock;
    const uint64_t *deadline; /* mapped, read-only */
    size_t size;
    dev_t dev;
    ino_t ino;
    timer_t timer;
    bool have_timer;
    unsigned users; /* open handles that watch it */
} lease = {.lock = PTHREAD_MUTEX_INITIALIZER};

static uint64_t monotonic_usec(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000ULL + (uint64_t)ts.tv_nsec / 1000;
}

/* Lease lock held. */
static void lease_arm(uint64_t at_usec) {
    struct itimerspec its = {
        .it_value = {.tv_sec = (time_t)(at_usec / 1000000), .tv_nsec = (long)(at_usec % 1000000) * 1000}};
    if (lease.have_timer)
        (void)timer_settime(lease.timer, TIMER_ABSTIME, &its, NULL);
}

static void lease_check(union sigval v) {
    pthread_mutex_lock(&lease.lock);
    if (lease.deadline && lease.users > 0) {
        uint64_t d = __atomic_load_n(lease.deadline, __ATOMIC_ACQUIRE), now = monotonic_usec();
        if (d != LINK_LEASE_NONE && now >= d) {
            char msg[160];
            int n = snprintf(msg, sizeof(msg),
                             "libhalo: pid %d: halod did not renew this node's lease in time; stopping, as another "
                             "node may take over\n",
                             (int)getpid());
            if (n > 0)
                (void)!write(STDERR_FILENO, msg, (size_t)MIN((size_t)n, sizeof(msg) - 1));
            kill(getpid(), SIGKILL);
        }
        lease_arm(d == LINK_LEASE_NONE ? now + LEASE_IDLE_CHECK_USEC : d);
    }
    pthread_mutex_unlock(&lease.lock);
}

/* Starts watching path (HelloReply.lease_file), or the same file again after a reconnection. */
static void lease_watch(halo *h, const char *path) {
    if (!path || !*path)
        return;
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    struct stat st;
    if (fd < 0 || fstat(fd, &st) < 0 || st.st_size < (off_t)sizeof(uint64_t)) {
        /* Cannot watch: say so, the process then relies on halod's own fencing. */
        fprintf(stderr, "libhalo: cannot watch the node lease in '%s': %s\n", path, strerror(fd < 0 ? errno : EINVAL));
        if (fd >= 0)
            close(fd);
        return;
    }
    pthread_mutex_lock(&lease.lock);
    if (!lease.deadline || lease.dev != st.st_dev || lease.ino != st.st_ino) {
        void *p = mmap(NULL, sizeof(uint64_t), PROT_READ, MAP_SHARED, fd, 0);
        if (p != MAP_FAILED) {
            if (lease.deadline)
                munmap((void *)lease.deadline, lease.size);
            lease.deadline = p;
            lease.size = sizeof(uint64_t);
            lease.dev = st.st_dev;
            lease.ino = st.st_ino;
        }
    }
    if (!lease.have_timer) {
        struct sigevent sev = {.sigev_notify = SIGEV_THREAD, .sigev_notify_function = lease_check};
        lease.have_timer = timer_create(CLOCK_MONOTONIC, &sev, &lease.timer) == 0;
        if (!lease.have_timer)
            fprintf(stderr, "libhalo: cannot watch the node lease: timer_create: %s\n", strerror(errno));
    }
    if (!h->leased) {
        h->leased = true;
        lease.users++;
    }
    if (lease.deadline) {
        uint64_t d = __atomic_load_n(lease.deadline, __ATOMIC_ACQUIRE);
        lease_arm(d == LINK_LEASE_NONE ? monotonic_usec() + LEASE_IDLE_CHECK_USEC : d);
    }
    pthread_mutex_unlock(&lease.lock);
    close(fd);
}

/* A handle closes: with the last one, nothing is enforced any more. */
static void lease_unwatch(halo *h) {
    if (!h->leased)
        return;
    pthread_mutex_lock(&lease.lock);
    h->leased = false;
    if (--lease.users == 0 && lease.have_timer) {
        struct itimerspec off = {0};
        (void)timer_settime(lease.timer, 0, &off, NULL);
    }
    pthread_mutex_unlock(&lease.lock);
}

static halo *halo_free(halo *h) {
    if (!h)
        return NULL;
    lease_unwatch(h);
    queue_flush(h);
    tracked_clear(h);
    halo__cdb_free(h);
    safe_close(h->epfd);
    safe_close(h->tfd);
    safe_close(h->evfd);
    safe_close(h->fd);
    free(h->path);
    free(h->comp);
    pthread_cond_destroy(&h->cond);
    pthread_mutex_destroy(&h->lock);
    free(h);
    return NULL;
}
DEFINE_TRIVIAL_CLEANUP_FUNC(halo *, halo_free);

/* ---- time ---------------------------------------------------------------- */

static struct timespec deadline_after_msec(int msec) {
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

static bool timespec_after(const struct timespec *a, const struct timespec *b) {
    return a->tv_sec > b->tv_sec || (a->tv_sec == b->tv_sec && a->tv_nsec > b->tv_nsec);
}

/* Milliseconds left until deadline, rounded up; 0 once it passed. */
static int msec_until(const struct timespec *deadline) {
    struct timespec now;
    clock_gettime(CLOCK_MONOTONIC, &now);
    long long ns = (long long)(deadline->tv_sec - now.tv_sec) * 1000000000LL + (deadline->tv_nsec - now.tv_nsec);
    if (ns <= 0)
        return 0;
    return (int)((ns + 999999) / 1000000);
}

/* Polls one fd; returns > 0 ready, 0 timeout, -errno.  EINTR restarts with the time left. */
static int poll_one(int fd, short events, const struct timespec *deadline) {
    for (;;) {
        struct pollfd p = {.fd = fd, .events = events};
        int r = poll(&p, 1, deadline ? msec_until(deadline) : -1);
        if (r >= 0)
            return r;
        if (errno != EINTR)
            return -errno;
    }
}

/* ---- arguments ----------------------------------------------------------- */

/* A name sent to halod: what link_validate() accepts, with errors a caller can act on. */
static int check_name(const char *s) {
    if (!s || !*s)
        return -EINVAL;
    size_t n = strnlen(s, LINK_NAME_MAX + 1);
    if (n > LINK_NAME_MAX)
        return -ENAMETOOLONG;
    for (size_t i = 0; i < n; i++)
        if ((unsigned char)s[i] < 0x20 || s[i] == 0x7f)
            return -EINVAL;
    return 0;
}

static bool recovery_valid(halo_recovery r) {
    return r >= HALO_RECOVERY_NONE && r <= HALO_RECOVERY_NODE_FAILOVER;
}

/* halod may send errors with either sign; callers always see them negative. */
static int negative(int32_t e) {
    return e > 0 ? -e : e;
}

/* ---- the queue and the selection object ---------------------------------- */

/*
 * Keeps the eventfd signalled exactly while halo_dispatch() has something to
 * do at once: a link-state callback, a queued message (held back while the
 * link is not up: it belongs to a link still being resumed), the link gone
 * for good, or halo_close() (which wants every poller awake).
 */
static void update_evfd(halo *h) {
    bool on =
        h->closed || h->state == LINK_DOWN || h->lost_pending || h->outcome_pending || (h->head && h->state == LINK_UP);
    eventfd_t v;

    /* A dispatcher takes what is queued itself; signalling it on every push and clearing it on every
     * pop would cost two system calls per message. */
    if (h->dispatching && !h->closed)
        return;
    if (on == h->evfd_on || h->evfd < 0)
        return;
    if (on)
        (void)eventfd_write(h->evfd, 1);
    else
        (void)eventfd_read(h->evfd, &v);
    h->evfd_on = on;
}

static void queue_push(halo *h, struct queued *q, LinkMsg *m) {
    q->msg = m;
    q->next = NULL;
    if (h->tail)
        h->tail->next = q;
    else
        h->head = q;
    h->tail = q;
    update_evfd(h);
}

static LinkMsg *queue_pop(halo *h) {
    struct queued *q = h->head;
    if (!q)
        return NULL;
    h->head = q->next;
    if (!h->head)
        h->tail = NULL;
    update_evfd(h);
    LinkMsg *m = q->msg;
    free(q);
    return m;
}

/* Drops every queued message: its link is gone, so nobody could hear an answer. */
static void queue_flush(halo *h) {
    LinkMsg *m;
    while ((m = queue_pop(h)))
        link_msg_free(m);
}

/* Records a link-state callback for halo_dispatch(). */
static void notify(halo *h, halo_link_state state, int error) {
    if (!h->cb.link_state)
        return;
    if (state != HALO_LINK_LOST) {
        h->outcome_pending = state;
        h->outcome_error = error;
    } else if (h->outcome_pending == HALO_LINK_RESTORED)
        /* The application has not heard of the restoration yet: for it, this
         * is the same outage going on, and it hears of its end later. */
        h->outcome_pending = 0;
    else {
        h->lost_pending = true;
        h->lost_error = error;
    }
    update_evfd(h);
}

/* Takes the next pending link-state callback, if any. */
static bool take_link_event(halo *h, halo_link_state *ret_state, int *ret_error) {
    if (h->lost_pending) {
        h->lost_pending = false;
        *ret_state = HALO_LINK_LOST;
        *ret_error = h->lost_error;
    } else if (h->outcome_pending) {
        *ret_state = h->outcome_pending;
        *ret_error = h->outcome_error;
        h->outcome_pending = 0;
    } else
        return false;
    update_evfd(h);
    return true;
}

/* ---- the link's life ----------------------------------------------------- */

/* Gives up the link for good: every call returns -ENOTCONN from now on.  Lock held. */
static void give_up(halo *h, int error) {
    const struct itimerspec off = {{0, 0}, {0, 0}};

    h->state = LINK_DOWN;
    queue_flush(h);
    (void)timerfd_settime(h->tfd, 0, &off, NULL);
    if (h->comp && !h->closed)
        notify(h, HALO_LINK_FAILED, error);
    update_evfd(h);
    pthread_cond_broadcast(&h->cond);
}

/* Spreads the attempts of components that lost the same halod: up to 1/8 of bound more. */
static int jitter(halo *h, int bound) {
    uint32_t x = h->rnd; /* xorshift32 */
    x ^= x << 13;
    x ^= x >> 17;
    x ^= x << 5;
    h->rnd = x;
    return (int)(x % (uint32_t)(bound / 8 + 1));
}

/* Arms the timer for the next attempt: after the backoff, which doubles, but not after giving up is due. */
static void schedule_attempt(halo *h) {
    struct timespec t = deadline_after_msec(h->backoff_msec + jitter(h, h->backoff_msec));

    h->backoff_msec = MIN(2 * h->backoff_msec, RECONNECT_BACKOFF_MAX_MSEC);
    if (timespec_after(&t, &h->give_up_at))
        t = h->give_up_at;
    h->next_attempt = t;
    struct itimerspec its = {.it_value = t};
    if (timerfd_settime(h->tfd, TFD_TIMER_ABSTIME, &its, NULL) < 0)
        give_up(h, -errno); /* without the timer nothing would wake the application to reconnect */
}

/*
 * The link ended: halod closed it, or it failed.  What was queued can no
 * longer be answered and is dropped; requests waiting for a Reply are woken
 * (their epoch is over).  A handle with a registered component starts
 * reconnecting, any other is DOWN.  During a reconnection attempt the attempt
 * decides.  The fd stays open until no reader can be polling it.  Lock held.
 */
static void link_lost(halo *h, int error) {
    if (h->state == LINK_DOWN || h->state == LINK_RECONNECTING)
        return;
    h->epoch++;
    queue_flush(h);
    if (h->fd >= 0) {
        (void)epoll_ctl(h->epfd, EPOLL_CTL_DEL, h->fd, NULL); /* a dead socket would poll readable forever */
        (void)shutdown(h->fd, SHUT_RDWR);
    }
    if (h->state == LINK_UP) {
        if (h->closed || !h->comp)
            give_up(h, error);
        else {
            h->state = LINK_RECONNECTING;
            h->give_up_at = deadline_after_msec(h->reconnect_max_msec);
            h->backoff_msec = RECONNECT_FIRST_MSEC;
            notify(h, HALO_LINK_LOST, error);
            schedule_attempt(h);
        }
    }
    pthread_cond_broadcast(&h->cond);
}

/* What a call that needs halod returns when the link is not up, or ended while it waited. */
static int link_gone_error(halo *h, const LinkMsg *req) {
    if (h->state == LINK_DOWN)
        return -ENOTCONN;
    /* Whatever the invocation was, it came from a halod that is gone: the next one does not know it. */
    if (req->body_case == HALO__LINK__MSG__BODY_RESPONSE)
        return -HALO_EBADINVOCATION;
    return -HALO_ETRYAGAIN;
}

static bool is_callback(const LinkMsg *m) {
    switch (m->body_case) {
    case HALO__LINK__MSG__BODY_CSI_SET:
    case HALO__LINK__MSG__BODY_CSI_REMOVE:
    case HALO__LINK__MSG__BODY_TERMINATE:
    case HALO__LINK__MSG__BODY_HEALTHCHECK:
    case HALO__LINK__MSG__BODY_PG_TRACK_NOTIFY:
    case HALO__LINK__MSG__BODY_OBJECT_STATE_NOTE:
    case HALO__LINK__MSG__BODY_CDB_CHANGE:
    case HALO__LINK__MSG__BODY_RECOVERY_NOTE:
        return true;
    default:
        return false;
    }
}

/* Copies a string known to be NUL-terminated, truncated to size - 1 bytes. */
static void copy_string(char *d, size_t size, const char *s) {
    size_t n = strnlen(s, size - 1);
    memcpy(d, s, n);
    d[n] = '\0';
}

/* Every field written: the states of a note are delivered straight from malloc(). */
static void object_state_copy(halo_object_state *d, const Halo__Link__ObjectState *s) {
    copy_string(d->object, sizeof(d->object), s->object);
    copy_string(d->state, sizeof(d->state), s->state);
    d->hlc = s->hlc;
    d->seq = s->seq;
}

/* Hands a Reply to the thread waiting for its seq; one nobody waits for (the caller timed out) is dropped. */
static void deliver_reply(halo *h, LinkMsg *m) {
    for (struct waiter *w = h->waiters; w; w = w->next)
        if (w->seq == m->reply->seq && !w->reply) {
            w->reply = m;
            if (w->commit)
                w->commit(h, negative(m->reply->error), m->reply, w->arg);
            pthread_cond_broadcast(&h->cond);
            return;
        }
    link_msg_free(m);
}

/*
 * Reads the packets waiting on the socket, at most PUMP_BATCH: replies go to
 * their waiters, callbacks to the queue, anything else is dropped (unknown or
 * malformed packets too: a newer halod is not fatal).  Lock held; the caller is
 * the only reader.  Returns the number of packets read, -ENOTCONN when the
 * link is gone, -ENOMEM.
 */
static int pump(halo *h) {
    int n;

    if (h->state != LINK_UP && h->state != LINK_RESUMING)
        return -ENOTCONN;
    for (n = 0; n < PUMP_BATCH; n++) {
        /* Allocated before receiving, so that running out of memory never loses a message. */
        _cleanup_free_ struct queued *q = malloc(sizeof(*q));
        if (!q)
            return -ENOMEM;

        LinkMsg *m = NULL;
        int r = link_recv(h->fd, &m);
        if (r == -EAGAIN)
            break;
        if (r == -EBADMSG || r == -EMSGSIZE || r == -ENOMEM || r == -EPROTONOSUPPORT)
            continue;
        if (r <= 0) {
            link_lost(h, r < 0 ? r : -ECONNRESET);
            return -ENOTCONN;
        }
        if (m->body_case == HALO__LINK__MSG__BODY_REPLY)
            deliver_reply(h, m);
        else if (is_callback(m))
            queue_push(h, TAKE_PTR(q), m);
        else
            link_msg_free(m);
    }
    return n;
}

/* ---- references ---------------------------------------------------------- */

/* Starts a call: returns 0 with the lock held and a reference taken, or -EBADF after halo_close(). */
static int enter(halo *h) {
    pthread_mutex_lock(&h->lock);
    if (h->closed) {
        pthread_mutex_unlock(&h->lock);
        return -EBADF;
    }
    h->n_refs++;
    return 0;
}

/* Ends a call: drops the lock and the reference; the last reference frees the handle. */
static void leave(halo *h) {
    bool last = --h->n_refs == 0;
    pthread_mutex_unlock(&h->lock);
    if (last)
        halo_free(h);
}

/* ---- requests ------------------------------------------------------------ */

/* Sends one packet, waiting for room until deadline.  Lock held.  -ENOTCONN: the link is gone. */
static int send_locked(halo *h, const LinkMsg *m, const struct timespec *deadline) {
    for (;;) {
        if (h->closed)
            return -EBADF;
        if (h->state != LINK_UP && h->state != LINK_RESUMING)
            return -ENOTCONN;
        int r = link_send(h->fd, m);
        if (r == 0)
            return 0;
        if (r == -EPIPE || r == -ECONNRESET || r == -ENOTCONN) {
            link_lost(h, r);
            return -ENOTCONN;
        }
        if (r != -EAGAIN)
            return r;
        r = poll_one(h->fd, POLLOUT, deadline);
        if (r < 0)
            return r;
        if (r == 0)
            return -ETIMEDOUT;
    }
}

/*
 * Waits for w->reply until deadline.  Lock held; it is released while this
 * thread polls the socket as the reader, or sleeps while another thread is.
 * Returns 0, or -ENOTCONN when the request's link ended, -EBADF, -ETIMEDOUT.
 */
static int wait_reply(halo *h, struct waiter *w, const struct timespec *deadline) {
    for (;;) {
        if (w->reply)
            return 0;
        if (h->closed)
            return -EBADF;
        if (h->epoch != w->epoch)
            return -ENOTCONN;
        if (msec_until(deadline) == 0)
            return -ETIMEDOUT;

        if (h->reading) {
            /* The reader hands us our reply, or wakes us when it stops reading. */
            pthread_cond_timedwait(&h->cond, &h->lock, deadline);
            continue;
        }

        h->reading = true;
        int fd = h->fd;
        pthread_mutex_unlock(&h->lock);
        int r = poll_one(fd, POLLIN, deadline);
        pthread_mutex_lock(&h->lock);
        if (r > 0)
            r = pump(h);
        h->reading = false;
        pthread_cond_broadcast(&h->cond);
        if (r < 0 && r != -ENOTCONN && !w->reply)
            return r;
    }
}

/*
 * Sends req, whose seq field is *seq, on the current link and waits until
 * deadline for its Reply, which lands in w->reply.  Lock held; released while
 * waiting.  Returns 0, or -ENOTCONN (the link ended meanwhile), -ETIMEDOUT,
 * -EBADF, -ENOMEM.
 */
static int transact(halo *h, LinkMsg *req, uint64_t *seq, struct waiter *w, const struct timespec *deadline) {
    *seq = w->seq = ++h->seq;
    w->epoch = h->epoch;
    int r = send_locked(h, req, deadline);
    if (r < 0)
        return r;

    w->next = h->waiters;
    h->waiters = w;
    r = wait_reply(h, w, deadline);
    for (struct waiter **p = &h->waiters; *p; p = &(*p)->next)
        if (*p == w) {
            *p = w->next;
            break;
        }
    return r;
}

/*
 * Sends req, whose seq field is *seq, and waits for halod's Reply.  When
 * *comp is NULL it becomes the registered component (-HALO_ENOTREG if none).
 * commit, if not NULL, runs with arg when the Reply is read.  Returns the
 * Reply's error (0 or negative) and, on success, *ret_reply if asked for; or
 * -ETIMEDOUT, -ENOTCONN, -HALO_ETRYAGAIN or -HALO_EBADINVOCATION (see
 * link_gone_error()), -EBADF, -ENOMEM.
 */
static int request(halo *h, LinkMsg *req, uint64_t *seq, char **comp, commit_fn commit, void *arg,
                   LinkMsg **ret_reply) {
    struct waiter w = {.commit = commit, .arg = arg};
    int r = enter(h);
    if (r < 0)
        return r;

    if (h->state != LINK_UP) {
        r = link_gone_error(h, req);
        goto finish;
    }
    if (comp && !*comp) {
        /* Used only until the request is sent, which happens before the lock is dropped. */
        *comp = h->comp;
        if (!*comp) {
            r = -HALO_ENOTREG;
            goto finish;
        }
    }

    struct timespec deadline = deadline_after_msec(CALL_TIMEOUT_MSEC);
    r = transact(h, req, seq, &w, &deadline);
    if (r == -ENOTCONN)
        r = link_gone_error(h, req);
    if (r == 0)
        r = negative(w.reply->reply->error);
    if (r == 0 && ret_reply)
        *ret_reply = TAKE_PTR(w.reply);

finish:
    leave(h);
    link_msg_free(w.reply);
    return r;
}

int halo__request(halo *h, LinkMsg *req, uint64_t *seq, LinkMsg **ret_reply) {
    return request(h, req, seq, NULL, NULL, NULL, ret_reply);
}

void halo__lock(halo *h) {
    pthread_mutex_lock(&h->lock);
}

void halo__unlock(halo *h) {
    pthread_mutex_unlock(&h->lock);
}

struct halo_cdb_sub **halo__cdb_subs(halo *h) {
    return &h->cdb_subs;
}

/* ---- open and close ------------------------------------------------------ */

static int connect_unix(const char *path, int flags) {
    struct sockaddr_un sa = {.sun_family = AF_UNIX};
    size_t n = strlen(path);
    socklen_t len;

    if (n >= sizeof(sa.sun_path))
        return -ENAMETOOLONG;
    memcpy(sa.sun_path, path, n);
    if (path[0] == '@') { /* abstract namespace */
        sa.sun_path[0] = '\0';
        len = (socklen_t)(offsetof(struct sockaddr_un, sun_path) + n);
    } else
        len = (socklen_t)(offsetof(struct sockaddr_un, sun_path) + n + 1);

    _cleanup_close_ int fd = socket(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC | flags, 0);
    if (fd < 0)
        return -errno;
    while (connect(fd, (struct sockaddr *)&sa, len) < 0)
        if (errno != EINTR)
            return -errno;
    return TAKE_FD(fd);
}

/*
 * Sends Hello and waits for HelloReply, the first packet halod sends.  Lock
 * held; released while waiting.  Nobody else uses h->fd meanwhile: at open the
 * handle is not published yet, and when reconnecting the link is RESUMING.
 */
static int hello(halo *h, const struct timespec *deadline) {
    Halo__Link__Hello hi = HALO__LINK__HELLO__INIT;
    LinkMsg m = HALO__LINK__MSG__INIT;
    int r;

    hi.version = LINK_PROTOCOL_VERSION;
    hi.pid = (uint32_t)getpid();
    hi.client = (char *)"libhalo/0.3";
    m.body_case = HALO__LINK__MSG__BODY_HELLO;
    m.hello = &hi;
    r = send_locked(h, &m, deadline);
    if (r < 0)
        return r;

    for (;;) {
        LinkMsg *reply = NULL;
        int fd = h->fd;
        pthread_mutex_unlock(&h->lock);
        r = poll_one(fd, POLLIN, deadline);
        pthread_mutex_lock(&h->lock);
        if (h->closed)
            return -EBADF;
        if (r < 0)
            return r;
        if (r == 0)
            return -ETIMEDOUT;
        r = link_recv(fd, &reply);
        if (r == -EAGAIN)
            continue;
        if (r == 0)
            return -ECONNRESET;
        if (r == -EBADMSG || r == -EMSGSIZE || r == -EPROTONOSUPPORT)
            return -HALO_EPROTO;
        if (r < 0)
            return r;
        if (reply->body_case != HALO__LINK__MSG__BODY_HELLO_REPLY) {
            link_msg_free(reply);
            return -HALO_EPROTO;
        }
        r = negative(reply->hello_reply->error);
        if (r == 0 && reply->hello_reply->version != LINK_PROTOCOL_VERSION)
            r = -HALO_EVERSION;
        if (r == 0)
            lease_watch(h, reply->hello_reply->lease_file);
        link_msg_free(reply);
        return r;
    }
}

/* ---- reconnecting -------------------------------------------------------- */

/* Sends one request of a reconnection and returns halod's verdict in *ret_error.  As transact(). */
static int resume_call(halo *h, LinkMsg *req, uint64_t *seq, const struct timespec *deadline, int *ret_error) {
    struct waiter w = {.seq = 0};
    int r = transact(h, req, seq, &w, deadline);
    if (r == 0)
        *ret_error = negative(w.reply->reply->error);
    link_msg_free(w.reply);
    return r;
}

/*
 * Queues a pg_track callback with error for a group halod refused to track
 * again: the documented way to say "no more notes for this group".  The
 * message goes through the codec, so that it is freed like any other.
 */
static void queue_pg_error(halo *h, const char *csi, int error) {
    Halo__Link__PgTrackNotify pn = HALO__LINK__PG_TRACK_NOTIFY__INIT;
    LinkMsg m = HALO__LINK__MSG__INIT;
    uint8_t buf[LINK_NAME_MAX + 64];
    LinkMsg *copy = NULL;

    pn.csi = (char *)csi;
    pn.error = error;
    m.body_case = HALO__LINK__MSG__BODY_PG_TRACK_NOTIFY;
    m.pg_track_notify = &pn;
    int n = link_encode(&m, buf, sizeof(buf));
    if (n < 0 || link_decode(buf, (size_t)n, &copy) < 0)
        return;
    struct queued *q = malloc(sizeof(*q));
    if (!q) {
        link_msg_free(copy);
        return;
    }
    queue_push(h, q, copy);
}

/*
 * Registers the component again on the new link, saying it resumes, then
 * starts its component-invoked health checks and its tracks again.  Lock held,
 * RESUMING; released while waiting.  The lists do not change meanwhile: only
 * Replies to requests sent while UP change them.  What halod refuses to take
 * back leaves the lists only once the whole attempt succeeded (a failed one is
 * repeated, and the application must hear of a lost track once).  Returns 0,
 * or an error with *ret_refused set when halod answered that this handle has
 * no future with it.
 */
static int resume(halo *h, const struct timespec *deadline, bool *ret_refused) {
    Halo__Link__Register reg = HALO__LINK__REGISTER__INIT;
    LinkMsg m = HALO__LINK__MSG__INIT;
    int r, e = 0;

    r = hello(h, deadline);
    if (r < 0) {
        *ret_refused = r == -HALO_EVERSION || r == -HALO_EPROTO;
        return r;
    }

    reg.comp = h->comp;
    reg.resume = true;
    reg.object_states = h->cb.object_states != NULL;
    m.body_case = HALO__LINK__MSG__BODY_REGISTER;
    m.register_ = &reg;
    r = resume_call(h, &m, &reg.seq, deadline, &e);
    if (r < 0)
        return r;
    if (e < 0) {
        /* A halod not ready for us yet may say so; anything else is a refusal (it did not adopt us). */
        *ret_refused = e != -HALO_ETRYAGAIN;
        return e;
    }

    for (struct hc *c = h->hcs; c; c = c->next) {
        Halo__Link__HealthcheckStart hc = HALO__LINK__HEALTHCHECK_START__INIT;
        hc.comp = c->comp ? c->comp : h->comp;
        hc.key = c->key;
        hc.invoked = HALO_HC_COMPONENT_INVOKED;
        hc.recovery = c->recovery;
        m.body_case = HALO__LINK__MSG__BODY_HC_START;
        m.hc_start = &hc;
        r = resume_call(h, &m, &hc.seq, deadline, &e);
        if (r < 0)
            return r;
        c->refused = e == -HALO_EEXIST ? 0 : e;
    }

    for (struct pg *g = h->pgs; g; g = g->next) {
        Halo__Link__PgTrack pt = HALO__LINK__PG_TRACK__INIT;
        pt.csi = g->csi;
        pt.flags = g->flags;
        m.body_case = HALO__LINK__MSG__BODY_PG_TRACK;
        m.pg_track = &pt;
        r = resume_call(h, &m, &pt.seq, deadline, &e);
        if (r < 0)
            return r;
        g->refused = e;
    }
    r = halo__cdb_resume(h, resume_call, deadline);
    if (r < 0)
        return r;

    /* A check halod will not run: the next halo_healthcheck_confirm() says why. */
    for (struct hc **p = &h->hcs; *p;)
        if ((*p)->refused < 0) {
            struct hc *c = *p;
            *p = c->next;
            hc_free(c);
        } else
            p = &(*p)->next;
    /* A group halod will not track: the pg_track callback says so with the error. */
    for (struct pg **p = &h->pgs; *p;)
        if ((*p)->refused < 0) {
            struct pg *g = *p;
            queue_pg_error(h, g->csi, g->refused);
            *p = g->next;
            free(g);
        } else
            p = &(*p)->next;
    return 0;
}

/*
 * One reconnection attempt.  Called by halo_dispatch() with the lock held,
 * RECONNECTING, when the attempt is due and no reader polls the old link; the
 * lock is released while waiting for halod, at most CALL_TIMEOUT_MSEC.  Leaves
 * the handle UP, RECONNECTING with the next attempt scheduled, or DOWN.
 */
static void reconnect(halo *h) {
    struct timespec deadline = deadline_after_msec(CALL_TIMEOUT_MSEC);
    bool refused = false;
    uint64_t ticks;
    int r;

    assert(h->state == LINK_RECONNECTING && !h->reading);
    /* Consume the expiry, or the selection object would stay readable. */
    ssize_t k = read(h->tfd, &ticks, sizeof(ticks));
    (void)k;
    h->state = LINK_RESUMING;
    h->fd = safe_close(h->fd);
    /* Non-blocking: a halod whose listen backlog is full is one that does not answer. */
    r = connect_unix(h->path, SOCK_NONBLOCK);
    if (r >= 0) {
        h->fd = r;
        r = resume(h, &deadline, &refused);
    }
    if (r >= 0 && h->closed)
        r = -EBADF;
    if (r >= 0) {
        struct epoll_event ev = {.events = EPOLLIN, .data.fd = h->fd};
        if (epoll_ctl(h->epfd, EPOLL_CTL_ADD, h->fd, &ev) < 0)
            r = -errno;
    }
    if (r >= 0) {
        h->state = LINK_UP;
        notify(h, HALO_LINK_RESTORED, 0);
        update_evfd(h); /* what arrived meanwhile may be dispatched now */
        pthread_cond_broadcast(&h->cond);
        return;
    }

    /* This connection is of no use: drop it with whatever it brought. */
    h->epoch++;
    queue_flush(h);
    h->fd = safe_close(h->fd);
    if (h->closed || refused)
        give_up(h, r);
    else if (msec_until(&h->give_up_at) == 0)
        give_up(h, -ETIMEDOUT);
    else {
        h->state = LINK_RECONNECTING;
        schedule_attempt(h);
    }
    pthread_cond_broadcast(&h->cond);
}

/* ---- open and close ------------------------------------------------------ */

/* HALO_RECONNECT_MAX_MSEC, or $HALO_RECONNECT_MAX_MSEC: a knob for tests. */
static int reconnect_max_msec(void) {
    const char *s = getenv("HALO_RECONNECT_MAX_MSEC");
    char *end;

    if (s && *s) {
        errno = 0;
        unsigned long v = strtoul(s, &end, 10);
        if (errno == 0 && !*end && v <= 24UL * 3600 * 1000)
            return (int)v;
    }
    return HALO_RECONNECT_MAX_MSEC;
}

/* Opens a handle; copies callbacks_size bytes of *callbacks, which is what the caller's struct has. */
static int open_handle(const char *socket_path, const halo_callbacks *callbacks, size_t callbacks_size, void *userdata,
                       halo **ret) {
    _cleanup_(halo_freep) halo *h = NULL;
    pthread_condattr_t ca;
    struct timespec now;
    int r;

    assert_return(ret, -EINVAL);

    if (!socket_path)
        socket_path = getenv("HALO_SOCKET");
    if (!socket_path || !*socket_path)
        return -ENOENT;

    h = calloc(1, sizeof(*h));
    if (!h)
        return -ENOMEM;
    h->fd = h->evfd = h->tfd = h->epfd = -1;
    h->n_refs = 1;
    if (callbacks)
        memcpy(&h->cb, callbacks, callbacks_size);
    h->userdata = userdata;
    h->state = LINK_UP;
    h->reconnect_max_msec = reconnect_max_msec();
    clock_gettime(CLOCK_MONOTONIC, &now);
    h->rnd = ((uint32_t)getpid() * 2654435761u) ^ (uint32_t)now.tv_nsec;
    if (h->rnd == 0)
        h->rnd = 1;
    h->path = strdup(socket_path);
    if (!h->path) {
        free(TAKE_PTR(h));
        return -ENOMEM;
    }

    r = pthread_condattr_init(&ca);
    if (r != 0) {
        free(h->path);
        free(TAKE_PTR(h));
        return -r;
    }
    (void)pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
    r = pthread_cond_init(&h->cond, &ca);
    pthread_condattr_destroy(&ca);
    if (r != 0) {
        free(h->path);
        free(TAKE_PTR(h));
        return -r;
    }
    r = pthread_mutex_init(&h->lock, NULL);
    if (r != 0) {
        pthread_cond_destroy(&h->cond);
        free(h->path);
        free(TAKE_PTR(h));
        return -r;
    }

    h->fd = connect_unix(socket_path, 0);
    if (h->fd < 0)
        return h->fd;
    h->evfd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
    if (h->evfd < 0)
        return -errno;
    h->tfd = timerfd_create(CLOCK_MONOTONIC, TFD_CLOEXEC | TFD_NONBLOCK);
    if (h->tfd < 0)
        return -errno;
    h->epfd = epoll_create1(EPOLL_CLOEXEC);
    if (h->epfd < 0)
        return -errno;
    int fds[] = {h->fd, h->evfd, h->tfd};
    for (size_t i = 0; i < ELEMENTSOF(fds); i++) {
        struct epoll_event ev = {.events = EPOLLIN, .data.fd = fds[i]};
        if (epoll_ctl(h->epfd, EPOLL_CTL_ADD, fds[i], &ev) < 0)
            return -errno;
    }

    struct timespec deadline = deadline_after_msec(CALL_TIMEOUT_MSEC);
    pthread_mutex_lock(&h->lock);
    r = hello(h, &deadline);
    pthread_mutex_unlock(&h->lock);
    if (r < 0)
        return r == -ENOTCONN ? -ECONNRESET : r;

    *ret = TAKE_PTR(h);
    return 0;
}

/*
 * halo_open() has two versions, because halo_callbacks grew link_state in 0.2
 * and is read through the caller's pointer.  A program built against the 0.1
 * header passes the shorter struct and is linked to halo_open@HALO_0.1, which
 * must not read past its end; programs built since are linked to the default,
 * halo_open@@HALO_0.2, and a 0.1 library refuses to load them rather than let
 * their link_state be ignored.
 */
HALO_EXPORT int halo__open_0_1(const char *socket_path, const halo_callbacks *callbacks, void *userdata, halo **ret);
HALO_EXPORT int halo__open_0_2(const char *socket_path, const halo_callbacks *callbacks, void *userdata, halo **ret);

__asm__(".symver halo__open_0_1, halo_open@HALO_0.1");
HALO_EXPORT int halo__open_0_1(const char *socket_path, const halo_callbacks *callbacks, void *userdata, halo **ret) {
    return open_handle(socket_path, callbacks, offsetof(halo_callbacks, link_state), userdata, ret);
}

__asm__(".symver halo__open_0_2, halo_open@@HALO_0.2");
HALO_EXPORT int halo__open_0_2(const char *socket_path, const halo_callbacks *callbacks, void *userdata, halo **ret) {
    return open_handle(socket_path, callbacks, sizeof(halo_callbacks), userdata, ret);
}

HALO_EXPORT halo *halo_close(halo *h) {
    if (!h)
        return NULL;
    pthread_mutex_lock(&h->lock);
    if (h->closed) {
        pthread_mutex_unlock(&h->lock);
        return NULL;
    }
    h->closed = true;
    /* Wake every thread of ours: a reader polling the socket (or a
     * reconnection waiting for halod), a dispatcher polling the selection
     * object, and waiters on the condition. */
    if (h->fd >= 0)
        (void)shutdown(h->fd, SHUT_RDWR);
    update_evfd(h);
    pthread_cond_broadcast(&h->cond);
    leave(h);
    return NULL;
}

HALO_EXPORT int halo_fd(halo *h) {
    assert_return(h, -EINVAL);
    return h->epfd;
}

/* ---- dispatch ------------------------------------------------------------ */

/* Answers a callback message on the application's behalf, without waiting for a Reply. */
static void auto_respond(halo *h, uint64_t invocation, int error) {
    Halo__Link__Response resp = HALO__LINK__RESPONSE__INIT;
    LinkMsg m = HALO__LINK__MSG__INIT;
    struct timespec deadline = deadline_after_msec(CALL_TIMEOUT_MSEC);

    resp.invocation = invocation;
    resp.error = error;
    m.body_case = HALO__LINK__MSG__BODY_RESPONSE;
    m.response = &resp;
    pthread_mutex_lock(&h->lock);
    if (h->state == LINK_UP)
        (void)send_locked(h, &m, &deadline);
    pthread_mutex_unlock(&h->lock);
}

static const char *empty_to_null(const char *s) {
    return s && *s ? s : NULL;
}

/* Runs the callback for m, lock not held.  Returns true if an application callback ran. */
static bool run_callback(halo *h, const LinkMsg *m) {
    switch (m->body_case) {
    case HALO__LINK__MSG__BODY_CSI_SET: {
        const Halo__Link__CsiSet *c = m->csi_set;
        halo_csi_attr attrs[LINK_ATTRS_MAX]; /* link_validate() bounds n_attrs */
        for (size_t i = 0; i < c->n_attrs; i++)
            attrs[i] = (halo_csi_attr){.name = c->attrs[i]->name, .value = c->attrs[i]->value};
        halo_csi_descriptor d = {
            .flags = c->flags,
            .csi_name = (c->flags & HALO_CSI_TARGET_ALL) ? NULL : c->csi,
            .si_name = empty_to_null(c->si),
            .n_attrs = c->n_attrs,
            .attrs = c->n_attrs ? attrs : NULL,
            .transition = (halo_csi_transition)c->transition,
            .active_comp = empty_to_null(c->active_comp),
        };
        h->cb.csi_set(h, c->invocation, c->comp, (halo_ha_state)c->ha_state, &d, h->userdata);
        return true;
    }
    case HALO__LINK__MSG__BODY_CSI_REMOVE: {
        const Halo__Link__CsiRemove *c = m->csi_remove;
        if (!h->cb.csi_remove) {
            /* A component without the callback holds nothing to release. */
            auto_respond(h, c->invocation, 0);
            return false;
        }
        h->cb.csi_remove(h, c->invocation, c->comp, (c->flags & HALO_CSI_TARGET_ALL) ? NULL : c->csi, c->flags,
                         h->userdata);
        return true;
    }
    case HALO__LINK__MSG__BODY_TERMINATE:
        h->cb.terminate(h, m->terminate->invocation, m->terminate->comp, h->userdata);
        return true;
    case HALO__LINK__MSG__BODY_HEALTHCHECK:
        if (!h->cb.healthcheck) {
            /* halod runs a check nobody can answer: say so, so it recovers now
             * rather than after the timeout. */
            auto_respond(h, m->healthcheck->invocation, -EOPNOTSUPP);
            return false;
        }
        h->cb.healthcheck(h, m->healthcheck->invocation, m->healthcheck->comp, m->healthcheck->key, h->userdata);
        return true;
    case HALO__LINK__MSG__BODY_PG_TRACK_NOTIFY: {
        const Halo__Link__PgTrackNotify *p = m->pg_track_notify;
        halo_pg_member members[LINK_ATTRS_MAX]; /* link_validate() bounds n_members */
        if (!h->cb.pg_track)
            return false;
        for (size_t i = 0; i < p->n_members; i++)
            members[i] = (halo_pg_member){
                .comp_name = p->members[i]->comp,
                .ha_state = (halo_ha_state)p->members[i]->ha_state,
                .change = (halo_pg_change)p->members[i]->change,
            };
        h->cb.pg_track(h, p->csi, p->n_members ? members : NULL, p->n_members, negative(p->error), h->userdata);
        return true;
    }
    case HALO__LINK__MSG__BODY_OBJECT_STATE_NOTE: {
        const Halo__Link__ObjectStateNote *note = m->object_state_note;
        if (!h->cb.object_states || note->n_states == 0)
            return false;
        halo_object_state *st = malloc(note->n_states * sizeof(*st)); /* link_validate() bounds it */
        if (!st)
            return false;
        for (size_t i = 0; i < note->n_states; i++)
            object_state_copy(&st[i], note->states[i]);
        h->cb.object_states(h, st, note->n_states, h->userdata);
        free(st);
        return true;
    }
    case HALO__LINK__MSG__BODY_CDB_CHANGE:
        return halo__cdb_change(h, m->cdb_change);
    case HALO__LINK__MSG__BODY_RECOVERY_NOTE: {
        const Halo__Link__RecoveryNote *rn = m->recovery_note;
        if (!h->recovery_cb)
            return false;
        halo_object_state *st =
            rn->n_events ? malloc(rn->n_events * sizeof(*st)) : NULL; /* bounded by link_validate() */
        if (rn->n_events && !st)
            return false;
        for (size_t i = 0; i < rn->n_events; i++)
            object_state_copy(&st[i], rn->events[i]);
        halo_recovery_note note = {.epoch = rn->epoch,
                                   .state = rn->state,
                                   .reason = rn->reason,
                                   .events = st,
                                   .n_events = rn->n_events,
                                   .nr_failures = rn->nr_failures,
                                   .last = rn->last};
        h->recovery_cb(h, &note, h->userdata);
        free(st);
        return true;
    }
    default:
        return false; /* is_callback() let nothing else in */
    }
}

HALO_EXPORT int halo_dispatch(halo *h, halo_dispatch_flags flags) {
    int n = 0, r;

    assert_return(h, -EINVAL);
    assert_return(flags == HALO_DISPATCH_ONE || flags == HALO_DISPATCH_ALL || flags == HALO_DISPATCH_BLOCKING, -EINVAL);
    r = enter(h);
    if (r < 0)
        return r;
    h->dispatching++;
    /* The socket was read to its end (EAGAIN) in this call: what arrives later wakes the caller's
     * poll again, so there is no need to ask the socket once more before returning. */
    bool drained = false;

    for (;;) {
        halo_link_state state;
        LinkMsg *m = NULL;
        bool ran = false;
        int error;

        if (h->closed) {
            r = -EBADF;
            break;
        }
        /* Link-state changes first: every queued message belongs to the newest link. */
        if (take_link_event(h, &state, &error)) {
            pthread_mutex_unlock(&h->lock);
            h->cb.link_state(h, state, error, h->userdata);
            pthread_mutex_lock(&h->lock);
            ran = true;
        } else if (h->state == LINK_UP && (m = queue_pop(h))) {
            pthread_mutex_unlock(&h->lock);
            ran = run_callback(h, m);
            link_msg_free(m);
            pthread_mutex_lock(&h->lock);
        }
        if (ran || m) {
            n += ran;
            if (h->closed) {
                r = -EBADF;
                break;
            }
            if (ran && flags == HALO_DISPATCH_ONE) {
                r = n;
                break;
            }
            continue;
        }
        if (h->state == LINK_DOWN) {
            r = -ENOTCONN;
            break;
        }

        if (h->state == LINK_RECONNECTING && !h->reading && msec_until(&h->next_attempt) == 0) {
            reconnect(h);
            continue;
        }

        if (h->state == LINK_UP && !h->reading && !drained) {
            /* Non-blocking, under the lock: nobody else reads meanwhile. */
            r = pump(h);
            if (r == -ENOMEM) {
                r = n > 0 ? n : -ENOMEM;
                break;
            }
            drained = r >= 0 && r < PUMP_BATCH;
            if (r != 0)
                continue; /* read something, or the link is gone */
        }
        if (flags != HALO_DISPATCH_BLOCKING) {
            r = n;
            break;
        }

        if ((h->state == LINK_UP || h->state == LINK_RECONNECTING) && !h->reading) {
            /* Wait for a packet, a callback queued by another thread's call,
             * the next reconnection attempt, or halo_close(). */
            h->dispatching--;
            update_evfd(h); /* others polling must see what is queued while this thread sleeps */
            pthread_mutex_unlock(&h->lock);
            r = poll_one(h->epfd, POLLIN, NULL);
            pthread_mutex_lock(&h->lock);
            h->dispatching++;
            drained = false;
            if (r < 0)
                break;
            continue;
        }

        /* Another thread reads or reconnects: it queues what arrives and wakes us when done. */
        h->dispatching--;
        update_evfd(h);
        pthread_cond_wait(&h->cond, &h->lock);
        h->dispatching++;
        drained = false;
    }

    h->dispatching--;
    update_evfd(h); /* what is left (HALO_DISPATCH_ONE) keeps the selection object readable */
    leave(h);
    return r;
}

/* ---- calls --------------------------------------------------------------- */

static void commit_register(halo *h, int error, const Halo__Link__Reply *reply, void *arg) {
    char **comp = arg;
    if (error == 0 && !h->comp)
        h->comp = TAKE_PTR(*comp);
}

HALO_EXPORT int halo_register(halo *h, const char *comp, const char *proxy) {
    Halo__Link__Register reg = HALO__LINK__REGISTER__INIT;
    LinkMsg m = HALO__LINK__MSG__INIT;
    int r;

    assert_return(h, -EINVAL);
    assert_return(!proxy, -EINVAL);
    assert_return(h->cb.csi_set && h->cb.terminate, -EINVAL);
    if (!comp)
        comp = getenv("HALO_COMPONENT");
    r = check_name(comp);
    if (r < 0)
        return r;

    _cleanup_free_ char *copy = strdup(comp);
    if (!copy)
        return -ENOMEM;

    pthread_mutex_lock(&h->lock);
    bool registered = h->comp != NULL;
    pthread_mutex_unlock(&h->lock);
    if (registered)
        return -HALO_EEXIST;

    reg.comp = (char *)comp;
    reg.object_states = h->cb.object_states != NULL;
    m.body_case = HALO__LINK__MSG__BODY_REGISTER;
    m.register_ = &reg;
    /* The name is the handle's from the moment halod accepts it: a link lost
     * right after is then reconnected. */
    return request(h, &m, &reg.seq, NULL, commit_register, &copy, NULL);
}

static void commit_unregister(halo *h, int error, const Halo__Link__Reply *reply, void *arg) {
    const char *comp = arg;
    if (error == 0 && h->comp && (!comp || streq(comp, h->comp))) {
        free(h->comp);
        h->comp = NULL;
        tracked_clear(h);
    }
}

HALO_EXPORT int halo_unregister(halo *h, const char *comp) {
    Halo__Link__Unregister unreg = HALO__LINK__UNREGISTER__INIT;
    LinkMsg m = HALO__LINK__MSG__INIT;
    int r;

    assert_return(h, -EINVAL);
    if (comp) {
        r = check_name(comp);
        if (r < 0)
            return r;
    }
    unreg.comp = (char *)comp;
    m.body_case = HALO__LINK__MSG__BODY_UNREGISTER;
    m.unregister = &unreg;
    return request(h, &m, &unreg.seq, &unreg.comp, commit_unregister, (void *)comp, NULL);
}

static int respond(halo *h, halo_invocation inv, int error, bool quiescing_complete) {
    Halo__Link__Response resp = HALO__LINK__RESPONSE__INIT;
    LinkMsg m = HALO__LINK__MSG__INIT;

    assert_return(h, -EINVAL);
    assert_return(inv != 0, -EINVAL);
    assert_return(error <= 0, -EINVAL);
    resp.invocation = inv;
    resp.error = error;
    resp.quiescing_complete = quiescing_complete;
    m.body_case = HALO__LINK__MSG__BODY_RESPONSE;
    m.response = &resp;
    return request(h, &m, &resp.seq, NULL, NULL, NULL, NULL);
}

HALO_EXPORT int halo_response(halo *h, halo_invocation inv, int error) {
    return respond(h, inv, error, false);
}

HALO_EXPORT int halo_quiescing_complete(halo *h, halo_invocation inv, int error) {
    return respond(h, inv, error, true);
}

/* Checks an optional component name and a health-check key (NULL: "default"). */
static int check_comp_key(const char *comp, const char **key) {
    int r;
    if (comp) {
        r = check_name(comp);
        if (r < 0)
            return r;
    }
    if (!*key)
        *key = "default";
    return check_name(*key);
}

/* Whether a kept check is the one comp (NULL: the registered component) and key name. */
static bool hc_is(halo *h, const struct hc *c, const char *comp, const char *key) {
    const char *a = c->comp ? c->comp : h->comp, *b = comp ? comp : h->comp;
    return a && b && streq(a, b) && streq(c->key, key);
}

static void commit_hc_start(halo *h, int error, const Halo__Link__Reply *reply, void *arg) {
    struct hc **c = arg;
    if (error != 0)
        return;
    for (struct hc *i = h->hcs; i; i = i->next)
        if (hc_is(h, i, (*c)->comp, (*c)->key)) {
            i->recovery = (*c)->recovery;
            return;
        }
    (*c)->next = h->hcs;
    h->hcs = TAKE_PTR(*c);
}

HALO_EXPORT int halo_healthcheck_start(halo *h, const char *comp, const char *key, halo_hc_invoked invoked,
                                       halo_recovery recommended) {
    Halo__Link__HealthcheckStart hc = HALO__LINK__HEALTHCHECK_START__INIT;
    LinkMsg m = HALO__LINK__MSG__INIT;
    _cleanup_(hc_freep) struct hc *c = NULL;
    int r;

    assert_return(h, -EINVAL);
    assert_return(invoked == HALO_HC_AMF_INVOKED || invoked == HALO_HC_COMPONENT_INVOKED, -EINVAL);
    assert_return(recovery_valid(recommended), -EINVAL);
    r = check_comp_key(comp, &key);
    if (r < 0)
        return r;
    if (invoked == HALO_HC_COMPONENT_INVOKED) {
        /* Kept to start it again after a reconnection; halod restarts AMF-invoked checks itself. */
        c = calloc(1, sizeof(*c));
        if (!c)
            return -ENOMEM;
        c->key = strdup(key);
        c->comp = comp ? strdup(comp) : NULL;
        if (!c->key || (comp && !c->comp))
            return -ENOMEM;
        c->recovery = recommended;
    }
    hc.comp = (char *)comp;
    hc.key = (char *)key;
    hc.invoked = invoked;
    hc.recovery = recommended;
    m.body_case = HALO__LINK__MSG__BODY_HC_START;
    m.hc_start = &hc;
    return request(h, &m, &hc.seq, &hc.comp, c ? commit_hc_start : NULL, &c, NULL);
}

HALO_EXPORT int halo_healthcheck_confirm(halo *h, const char *comp, const char *key, int result) {
    Halo__Link__HealthcheckConfirm hc = HALO__LINK__HEALTHCHECK_CONFIRM__INIT;
    LinkMsg m = HALO__LINK__MSG__INIT;
    int r;

    assert_return(h, -EINVAL);
    assert_return(result <= 0, -EINVAL);
    r = check_comp_key(comp, &key);
    if (r < 0)
        return r;
    hc.comp = (char *)comp;
    hc.key = (char *)key;
    hc.result = result;
    m.body_case = HALO__LINK__MSG__BODY_HC_CONFIRM;
    m.hc_confirm = &hc;
    return request(h, &m, &hc.seq, &hc.comp, NULL, NULL, NULL);
}

/* The check a halo_healthcheck_stop() names, as the caller gave it. */
struct hc_name {
    const char *comp, *key;
};

static void commit_hc_stop(halo *h, int error, const Halo__Link__Reply *reply, void *arg) {
    const struct hc_name *n = arg;
    if (error != 0 && error != -ENOENT)
        return;
    for (struct hc **p = &h->hcs; *p; p = &(*p)->next)
        if (hc_is(h, *p, n->comp, n->key)) {
            struct hc *c = *p;
            *p = c->next;
            hc_free(c);
            return;
        }
}

HALO_EXPORT int halo_healthcheck_stop(halo *h, const char *comp, const char *key) {
    Halo__Link__HealthcheckStop hc = HALO__LINK__HEALTHCHECK_STOP__INIT;
    LinkMsg m = HALO__LINK__MSG__INIT;
    int r;

    assert_return(h, -EINVAL);
    r = check_comp_key(comp, &key);
    if (r < 0)
        return r;
    struct hc_name name = {.comp = comp, .key = key};
    hc.comp = (char *)comp;
    hc.key = (char *)key;
    m.body_case = HALO__LINK__MSG__BODY_HC_STOP;
    m.hc_stop = &hc;
    return request(h, &m, &hc.seq, &hc.comp, commit_hc_stop, &name, NULL);
}

HALO_EXPORT int halo_error_report(halo *h, const char *comp, halo_recovery recommended) {
    Halo__Link__ErrorReport er = HALO__LINK__ERROR_REPORT__INIT;
    LinkMsg m = HALO__LINK__MSG__INIT;
    int r;

    assert_return(h, -EINVAL);
    assert_return(recovery_valid(recommended), -EINVAL);
    if (comp) {
        r = check_name(comp);
        if (r < 0)
            return r;
    }
    er.comp = (char *)comp;
    er.recovery = recommended;
    m.body_case = HALO__LINK__MSG__BODY_ERROR_REPORT;
    m.error_report = &er;
    return request(h, &m, &er.seq, &er.comp, NULL, NULL, NULL);
}

static void commit_pg_track(halo *h, int error, const Halo__Link__Reply *reply, void *arg) {
    struct pg **g = arg;
    if (error != 0)
        return;
    for (struct pg *i = h->pgs; i; i = i->next)
        if (streq(i->csi, (*g)->csi)) {
            i->flags = (*g)->flags;
            return;
        }
    (*g)->next = h->pgs;
    h->pgs = TAKE_PTR(*g);
}

HALO_EXPORT int halo_pg_track(halo *h, const char *csi_name, unsigned flags) {
    Halo__Link__PgTrack pt = HALO__LINK__PG_TRACK__INIT;
    LinkMsg m = HALO__LINK__MSG__INIT;
    const unsigned known = HALO_TRACK_CURRENT | HALO_TRACK_CHANGES | HALO_TRACK_CHANGES_ONLY;
    _cleanup_free_ struct pg *g = NULL;
    int r;

    assert_return(h, -EINVAL);
    assert_return(h->cb.pg_track, -EINVAL);
    assert_return(flags != 0 && !(flags & ~known), -EINVAL);
    assert_return(!((flags & HALO_TRACK_CHANGES) && (flags & HALO_TRACK_CHANGES_ONLY)), -EINVAL);
    r = check_name(csi_name);
    if (r < 0)
        return r;
    if (flags & (HALO_TRACK_CHANGES | HALO_TRACK_CHANGES_ONLY)) {
        /* Kept to track it again after a reconnection; CURRENT alone is done once answered. */
        size_t n = strlen(csi_name);
        g = malloc(sizeof(*g) + n + 1);
        if (!g)
            return -ENOMEM;
        g->next = NULL;
        g->flags = flags;
        memcpy(g->csi, csi_name, n + 1);
    }
    pt.csi = (char *)csi_name;
    pt.flags = flags;
    m.body_case = HALO__LINK__MSG__BODY_PG_TRACK;
    m.pg_track = &pt;
    return request(h, &m, &pt.seq, NULL, g ? commit_pg_track : NULL, &g, NULL);
}

static void commit_pg_track_stop(halo *h, int error, const Halo__Link__Reply *reply, void *arg) {
    const char *csi = arg;
    if (error != 0 && error != -ENOENT)
        return;
    for (struct pg **p = &h->pgs; *p; p = &(*p)->next)
        if (streq((*p)->csi, csi)) {
            struct pg *g = *p;
            *p = g->next;
            free(g);
            return;
        }
}

HALO_EXPORT int halo_pg_track_stop(halo *h, const char *csi_name) {
    Halo__Link__PgTrackStop ps = HALO__LINK__PG_TRACK_STOP__INIT;
    LinkMsg m = HALO__LINK__MSG__INIT;
    int r;

    assert_return(h, -EINVAL);
    r = check_name(csi_name);
    if (r < 0)
        return r;
    ps.csi = (char *)csi_name;
    m.body_case = HALO__LINK__MSG__BODY_PG_TRACK_STOP;
    m.pg_track_stop = &ps;
    return request(h, &m, &ps.seq, NULL, commit_pg_track_stop, (void *)csi_name, NULL);
}

HALO_EXPORT int halo_object_state_get(halo *h, const char *const *objects, size_t n, halo_object_state *ret_states) {
    Halo__Link__ObjectStateGet g = HALO__LINK__OBJECT_STATE_GET__INIT;
    LinkMsg m = HALO__LINK__MSG__INIT;
    LinkMsg *reply = NULL;

    assert_return(h, -EINVAL);
    assert_return(objects && ret_states && n >= 1 && n <= LINK_OBJECTS_MAX, -EINVAL);
    for (size_t i = 0; i < n; i++)
        if (!objects[i] || !*objects[i] || strlen(objects[i]) >= HALO_OBJECT_MAX || !strchr(objects[i], ':') ||
            strchr(objects[i], '/'))
            return -EINVAL;
    g.objects = (char **)objects;
    g.n_objects = n;
    m.body_case = HALO__LINK__MSG__BODY_OBJECT_STATE_GET;
    m.object_state_get = &g;
    int r = request(h, &m, &g.seq, NULL, NULL, NULL, &reply);
    if (r < 0)
        return r;
    for (size_t i = 0; i < n; i++) {
        memset(&ret_states[i], 0, sizeof(ret_states[i]));
        snprintf(ret_states[i].object, sizeof(ret_states[i].object), "%s", objects[i]);
        /* halod answers in the order asked; trust nothing it did not say. */
        if (i < reply->reply->n_states && streq(reply->reply->states[i]->object, objects[i]))
            object_state_copy(&ret_states[i], reply->reply->states[i]);
    }
    link_msg_free(reply);
    return 0;
}

struct retry_hint {
    unsigned msec;
};

static void commit_retry_hint(halo *h, int error, const Halo__Link__Reply *reply, void *arg) {
    ((struct retry_hint *)arg)->msec = reply->retry_msec;
}

HALO_EXPORT int halo_recovery_set_callback(halo *h, halo_recovery_cb cb) {
    assert_return(h, -EINVAL);
    pthread_mutex_lock(&h->lock);
    h->recovery_cb = cb;
    pthread_mutex_unlock(&h->lock);
    return 0;
}

HALO_EXPORT int halo_process_event(halo *h, halo_lifecycle event, const char *reason) {
    Halo__Link__ProcessEvent e = HALO__LINK__PROCESS_EVENT__INIT;
    LinkMsg m = HALO__LINK__MSG__INIT;
    LinkMsg *reply = NULL;

    assert_return(h, -EINVAL);
    assert_return(event >= HALO_PROCESS_STARTING && event <= HALO_PROCESS_RECOVERY_FAILED, -EINVAL);
    assert_return(!reason || strlen(reason) <= LINK_REASON_MAX, -EINVAL);
    e.event = (Halo__Link__ProcessEvent__Event)event;
    e.reason = (char *)(reason ? reason : "");
    m.body_case = HALO__LINK__MSG__BODY_PROCESS_EVENT;
    m.process_event = &e;
    int r = request(h, &m, &e.seq, NULL, NULL, NULL, &reply);
    if (r < 0)
        return r;
    link_msg_free(reply);
    return 0;
}

HALO_EXPORT int halo_entrypoint(halo *h, char **ret_json, unsigned *ret_retry_msec) {
    Halo__Link__EntrypointGet g = HALO__LINK__ENTRYPOINT_GET__INIT;
    LinkMsg m = HALO__LINK__MSG__INIT;
    LinkMsg *reply = NULL;

    assert_return(h && ret_json, -EINVAL);
    m.body_case = HALO__LINK__MSG__BODY_ENTRYPOINT_GET;
    m.entrypoint_get = &g;
    /* request() returns the Reply only on success: read the hint through commit. */
    struct retry_hint hint = {0};
    int r = request(h, &m, &g.seq, NULL, commit_retry_hint, &hint, &reply);
    if (ret_retry_msec)
        *ret_retry_msec = hint.msec;
    if (r < 0)
        return r;
    *ret_json = strdup(reply->reply->json);
    link_msg_free(reply);
    return *ret_json ? 0 : -ENOMEM;
}

HALO_EXPORT int halo_ha_state_get(halo *h, const char *comp, const char *csi_name, halo_ha_state *ret_state) {
    Halo__Link__HaStateGet g = HALO__LINK__HA_STATE_GET__INIT;
    LinkMsg m = HALO__LINK__MSG__INIT;
    LinkMsg *reply = NULL;
    int r;

    assert_return(h, -EINVAL);
    assert_return(ret_state, -EINVAL);
    if (comp) {
        r = check_name(comp);
        if (r < 0)
            return r;
    }
    r = check_name(csi_name);
    if (r < 0)
        return r;
    g.comp = (char *)comp;
    g.csi = (char *)csi_name;
    m.body_case = HALO__LINK__MSG__BODY_HA_STATE_GET;
    m.ha_state_get = &g;
    r = request(h, &m, &g.seq, &g.comp, NULL, NULL, &reply);
    if (r < 0)
        return r;

    uint32_t s = reply->reply->ha_state;
    link_msg_free(reply);
    if (s < HALO_HA_ACTIVE || s > HALO_HA_QUIESCING)
        return -HALO_EPROTO;
    *ret_state = (halo_ha_state)s;
    return 0;
}
