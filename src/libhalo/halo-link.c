/* SPDX-License-Identifier: MIT */
/*
 * The handle's link to halod: connect, Hello, send, receive, and what happens
 * when it ends.
 *
 * One handle owns one SOCK_SEQPACKET connection to halod.  When the link of a
 * handle with a registered component ends, the handle goes from UP to
 * RECONNECTING instead of DOWN.  A timerfd in the epoll set makes the
 * selection object readable when the next attempt is due, and halo_dispatch()
 * makes it (RESUMING): connect, Hello, Register with resume, then the health
 * checks, tracks and subscriptions the handle keeps a list of.  Only the
 * thread in RESUMING touches the new link, so the others need not wait for
 * it: their calls fail at once with -HALO_ETRYAGAIN.  Attempts back off from
 * RECONNECT_FIRST_MSEC to RECONNECT_BACKOFF_MAX_MSEC, with jitter, until the
 * handle's reconnect_max_msec has passed.
 */
#include <assert.h>
#include <errno.h>
#include <pthread.h>
#include <stddef.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <sys/timerfd.h>
#include <sys/un.h>
#include <unistd.h>

#include "halo-internal.h"
#include "macro.h"

/* ---- the link's life ----------------------------------------------------- */

/* Gives up the link for good: every call returns -ENOTCONN from now on.  Lock held. */
static void give_up(halo *h, int error) {
    const struct itimerspec off = {{0, 0}, {0, 0}};

    h->state = LINK_DOWN;
    halo__dispatch_flush(h);
    (void)timerfd_settime(h->tfd, 0, &off, NULL);
    if (h->comp && !h->closed)
        halo__dispatch_notify(h, HALO_LINK_FAILED, error);
    halo__dispatch_update(h);
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
void halo__link_lost(halo *h, int error) {
    if (h->state == LINK_DOWN || h->state == LINK_RECONNECTING)
        return;
    h->epoch++;
    halo__dispatch_flush(h);
    halo__txn_link_lost(h);
    halo__log_reset(h);
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
            halo__dispatch_notify(h, HALO_LINK_LOST, error);
            schedule_attempt(h);
        }
    }
    pthread_cond_broadcast(&h->cond);
}

/* ---- receive and send ---------------------------------------------------- */

/* The messages halo_dispatch() hands to a callback. */
static bool is_callback(const LinkMsg *m) {
    switch (m->body_case) {
    case HALO__LINK__MSG__BODY_CSI_SET:
    case HALO__LINK__MSG__BODY_CSI_REMOVE:
    case HALO__LINK__MSG__BODY_TERMINATE:
    case HALO__LINK__MSG__BODY_PROXIED_INSTANTIATE:
    case HALO__LINK__MSG__BODY_PROXIED_CLEANUP:
    case HALO__LINK__MSG__BODY_HEALTHCHECK:
    case HALO__LINK__MSG__BODY_PG_TRACK_NOTIFY:
    case HALO__LINK__MSG__BODY_OBJECT_STATE_NOTE:
    case HALO__LINK__MSG__BODY_CDB_CHANGE:
    case HALO__LINK__MSG__BODY_CKPT_UPDATE:
    case HALO__LINK__MSG__BODY_NAME_NOTE:
    case HALO__LINK__MSG__BODY_EVT_EVENT:
    case HALO__LINK__MSG__BODY_RECOVERY_NOTE:
    case HALO__LINK__MSG__BODY_TXN_DONE:
    case HALO__LINK__MSG__BODY_TXN_PREPARE:
    case HALO__LINK__MSG__BODY_TXN_OUTCOME:
        return true;
    default:
        return false;
    }
}

/*
 * Reads the packets waiting on the socket, at most PUMP_BATCH: replies go to
 * their waiters, callbacks to the queue, anything else is dropped (unknown or
 * malformed packets too: a newer halod is not fatal).  Lock held; the caller is
 * the only reader.  Returns the number of packets read, -ENOTCONN when the
 * link is gone, -ENOMEM.
 */
int halo__link_pump(halo *h) {
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
            halo__link_lost(h, r < 0 ? r : -ECONNRESET);
            return -ENOTCONN;
        }
        if (m->body_case == HALO__LINK__MSG__BODY_REPLY)
            halo__request_deliver(h, m);
        else if (m->body_case == HALO__LINK__MSG__BODY_LOG_LEVELS) {
            /* Applied as read: the next record is filtered by them, dispatched or not. */
            halo__log_levels(h, m->log_levels);
            link_msg_free(m);
        } else if (is_callback(m))
            halo__dispatch_push(h, TAKE_PTR(q), m);
        else
            link_msg_free(m);
    }
    return n;
}

/* Sends one packet, waiting for room until deadline.  Lock held.  -ENOTCONN: the link is gone. */
int halo__link_send(halo *h, const LinkMsg *m, const struct timespec *deadline) {
    for (;;) {
        if (h->closed)
            return -EBADF;
        if (h->state != LINK_UP && h->state != LINK_RESUMING)
            return -ENOTCONN;
        int r = link_send(h->fd, m);
        if (r == 0)
            return 0;
        if (r == -EPIPE || r == -ECONNRESET || r == -ENOTCONN) {
            halo__link_lost(h, r);
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

/* ---- connect and Hello --------------------------------------------------- */

/* Connects a SOCK_SEQPACKET socket to path ('@': in the abstract namespace).  Returns the fd or -errno. */

int halo__link_connect(const char *path, int flags) {
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
#define LIBHALO_STR_(x) #x
#define LIBHALO_STR(x) LIBHALO_STR_(x)
/* What halod logs of a client: this library's version, from halo.h. */
#define LIBHALO_CLIENT "libhalo/" LIBHALO_STR(HALO_VERSION_MAJOR) "." LIBHALO_STR(HALO_VERSION_MINOR)

int halo__link_hello(halo *h, const struct timespec *deadline) {
    Halo__Link__Hello hi = HALO__LINK__HELLO__INIT;
    LinkMsg m = HALO__LINK__MSG__INIT;
    int r;

    hi.version = LINK_PROTOCOL_VERSION;
    hi.pid = (uint32_t)getpid();
    hi.client = (char *)LIBHALO_CLIENT;
    m.body_case = HALO__LINK__MSG__BODY_HELLO;
    m.hello = &hi;
    r = halo__link_send(h, &m, deadline);
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
            halo__lease_watch(h, reply->hello_reply->lease_file);
        link_msg_free(reply);
        return r;
    }
}

/* ---- reconnecting -------------------------------------------------------- */

/*
 * Registers the component again on the new link, saying it resumes, then
 * starts its component-invoked health checks, its tracks and its CDB
 * subscriptions again.  Lock held, RESUMING; released while waiting.  The
 * lists do not change meanwhile: only Replies to requests sent while UP
 * change them.  What halod refuses to take
 * back leaves the lists only once the whole attempt succeeded (a failed one is
 * repeated, and the application must hear of a lost track once).  Returns 0,
 * or an error with *ret_refused set when halod answered that this handle has
 * no future with it.
 */
static int resume(halo *h, const struct timespec *deadline, bool *ret_refused) {
    Halo__Link__Register reg = HALO__LINK__REGISTER__INIT;
    LinkMsg m = HALO__LINK__MSG__INIT;
    int r, e = 0;

    r = halo__link_hello(h, deadline);
    if (r < 0) {
        *ret_refused = r == -HALO_EVERSION || r == -HALO_EPROTO;
        return r;
    }

    r = halo__events_resume(h, deadline);
    if (r < 0)
        return r;

    reg.comp = h->comp;
    reg.resume = true;
    reg.object_states = h->cb.object_states != NULL;
    m.body_case = HALO__LINK__MSG__BODY_REGISTER;
    m.register_ = &reg;
    r = halo__request_resume(h, &m, &reg.seq, deadline, &e);
    if (r < 0)
        return r;
    if (e < 0) {
        /* A halod not ready for us yet may say so; anything else is a refusal (it did not adopt us). */
        *ret_refused = e != -HALO_ETRYAGAIN;
        return e;
    }

    r = halo__amf_resume(h, deadline);
    if (r < 0)
        return r;
    r = halo__cdb_resume(h, deadline);
    if (r < 0)
        return r;
    r = halo__ckpt_resume(h, deadline);
    if (r < 0)
        return r;
    r = halo__name_resume(h, deadline);
    if (r < 0)
        return r;
    r = halo__evt_resume(h, deadline);
    if (r < 0)
        return r;

    halo__amf_resume_done(h);
    return 0;
}

/*
 * One reconnection attempt.  Called by halo_dispatch() with the lock held,
 * RECONNECTING, when the attempt is due and no reader polls the old link; the
 * lock is released while waiting for halod, at most CALL_TIMEOUT_MSEC.  Leaves
 * the handle UP, RECONNECTING with the next attempt scheduled, or DOWN.
 */
void halo__link_reconnect(halo *h) {
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
    r = halo__link_connect(h->path, SOCK_NONBLOCK);
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
        halo__dispatch_notify(h, HALO_LINK_RESTORED, 0);
        halo__dispatch_update(h); /* what arrived meanwhile may be dispatched now */
        pthread_cond_broadcast(&h->cond);
        return;
    }

    /* This connection is of no use: drop it with whatever it brought. */
    h->epoch++;
    halo__dispatch_flush(h);
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
