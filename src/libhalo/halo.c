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
 */
#include "halo/halo.h"

#include <poll.h>
#include <pthread.h>
#include <stdbool.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <time.h>

#include "link.h"
#include "macro.h"

#define HALO_EXPORT __attribute__((visibility("default")))

#define CALL_TIMEOUT_MSEC 5000 /* hello, and every request waiting for its Reply */
#define PUMP_BATCH 64          /* packets read in one go before callbacks get a turn */

/* A message received but not yet dispatched. */
struct queued {
    LinkMsg *msg;
    struct queued *next;
};

/* A thread waiting for the Reply that carries seq; lives on that thread's stack. */
struct waiter {
    uint64_t seq;
    LinkMsg *reply; /* set by whichever thread reads it */
    struct waiter *next;
};

struct halo {
    pthread_mutex_t lock; /* protects everything below except the immutable fds and callbacks */
    pthread_cond_t cond;  /* a reply arrived, the reader role was released, or the handle closed */
    unsigned n_refs;      /* 1 while open, plus 1 per call in progress */

    int fd;   /* the HA link */
    int evfd; /* signalled while queue is non-empty, and after halo_close() */
    int epfd; /* the selection object: fd + evfd */

    halo_callbacks cb;
    void *userdata;

    char *comp;   /* the registered component; NULL if none */
    uint64_t seq; /* last seq used */
    struct queued *head, *tail;
    struct waiter *waiters;
    bool reading;      /* a thread is polling the socket without the lock */
    bool disconnected; /* halod closed the link (or it failed) */
    bool closed;       /* halo_close() was called */
};

static halo *halo_free(halo *h) {
    if (!h)
        return NULL;
    while (h->head) {
        struct queued *q = h->head;
        h->head = q->next;
        link_msg_free(q->msg);
        free(q);
    }
    safe_close(h->epfd);
    safe_close(h->evfd);
    safe_close(h->fd);
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

static void queue_push(halo *h, struct queued *q, LinkMsg *m) {
    q->msg = m;
    q->next = NULL;
    if (h->tail)
        h->tail->next = q;
    else {
        h->head = q;
        (void)eventfd_write(h->evfd, 1);
    }
    h->tail = q;
}

static LinkMsg *queue_pop(halo *h) {
    struct queued *q = h->head;
    if (!q)
        return NULL;
    h->head = q->next;
    if (!h->head) {
        h->tail = NULL;
        /* Empty: reset the eventfd, unless halo_close() wants every poller awake. */
        eventfd_t v;
        if (!h->closed)
            (void)eventfd_read(h->evfd, &v);
    }
    LinkMsg *m = q->msg;
    free(q);
    return m;
}

/* halod is gone: nothing queued can be answered any more, so it is dropped. */
static void mark_disconnected(halo *h) {
    LinkMsg *m;
    h->disconnected = true;
    while ((m = queue_pop(h)))
        link_msg_free(m);
    pthread_cond_broadcast(&h->cond);
}

static bool is_callback(const LinkMsg *m) {
    switch (m->body_case) {
    case HALO__LINK__MSG__BODY_CSI_SET:
    case HALO__LINK__MSG__BODY_CSI_REMOVE:
    case HALO__LINK__MSG__BODY_TERMINATE:
    case HALO__LINK__MSG__BODY_HEALTHCHECK:
    case HALO__LINK__MSG__BODY_PG_TRACK_NOTIFY:
        return true;
    default:
        return false;
    }
}

/* Hands a Reply to the thread waiting for its seq; one nobody waits for (the caller timed out) is dropped. */
static void deliver_reply(halo *h, LinkMsg *m) {
    for (struct waiter *w = h->waiters; w; w = w->next)
        if (w->seq == m->reply->seq && !w->reply) {
            w->reply = m;
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

    if (h->disconnected)
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
            mark_disconnected(h);
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

/* Sends one packet, waiting for room until deadline.  Lock held. */
static int send_locked(halo *h, const LinkMsg *m, const struct timespec *deadline) {
    for (;;) {
        if (h->closed)
            return -EBADF;
        if (h->disconnected)
            return -ENOTCONN;
        int r = link_send(h->fd, m);
        if (r == 0)
            return 0;
        if (r == -EPIPE || r == -ECONNRESET || r == -ENOTCONN) {
            mark_disconnected(h);
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
 */
static int wait_reply(halo *h, struct waiter *w, const struct timespec *deadline) {
    for (;;) {
        if (w->reply)
            return 0;
        if (h->closed)
            return -EBADF;
        if (h->disconnected)
            return -ENOTCONN;
        if (msec_until(deadline) == 0)
            return -ETIMEDOUT;

        if (h->reading) {
            /* The reader hands us our reply, or wakes us when it stops reading. */
            pthread_cond_timedwait(&h->cond, &h->lock, deadline);
            continue;
        }

        h->reading = true;
        pthread_mutex_unlock(&h->lock);
        int r = poll_one(h->fd, POLLIN, deadline);
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
 * Sends req, whose seq field is *seq, and waits for halod's Reply.  When
 * *comp is NULL it becomes the registered component (-HALO_ENOTREG if none).
 * Returns the Reply's error (0 or negative) and, on success, *ret_reply if
 * asked for; or -ETIMEDOUT, -ENOTCONN, -EBADF, -ENOMEM.
 */
static int request(halo *h, LinkMsg *req, uint64_t *seq, char **comp, LinkMsg **ret_reply) {
    struct waiter w = {.seq = 0};
    int r = enter(h);
    if (r < 0)
        return r;

    if (h->disconnected) {
        r = -ENOTCONN;
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

    *seq = w.seq = ++h->seq;
    struct timespec deadline = deadline_after_msec(CALL_TIMEOUT_MSEC);
    r = send_locked(h, req, &deadline);
    if (r < 0)
        goto finish;

    w.next = h->waiters;
    h->waiters = &w;
    r = wait_reply(h, &w, &deadline);
    for (struct waiter **p = &h->waiters; *p; p = &(*p)->next)
        if (*p == &w) {
            *p = w.next;
            break;
        }
    if (r == 0)
        r = negative(w.reply->reply->error);
    if (r == 0 && ret_reply)
        *ret_reply = TAKE_PTR(w.reply);

finish:
    leave(h);
    link_msg_free(w.reply);
    return r;
}

/* ---- open and close ------------------------------------------------------ */

static int connect_unix(const char *path) {
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

    _cleanup_close_ int fd = socket(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0);
    if (fd < 0)
        return -errno;
    while (connect(fd, (struct sockaddr *)&sa, len) < 0)
        if (errno != EINTR)
            return -errno;
    return TAKE_FD(fd);
}

/* Sends Hello and waits for HelloReply.  Single-threaded: the handle is not published yet. */
static int hello(halo *h) {
    Halo__Link__Hello hi = HALO__LINK__HELLO__INIT;
    LinkMsg m = HALO__LINK__MSG__INIT;
    struct timespec deadline = deadline_after_msec(CALL_TIMEOUT_MSEC);
    int r;

    hi.version = LINK_PROTOCOL_VERSION;
    hi.pid = (uint32_t)getpid();
    hi.client = (char *)"libhalo/0.1";
    m.body_case = HALO__LINK__MSG__BODY_HELLO;
    m.hello = &hi;
    r = send_locked(h, &m, &deadline);
    if (r < 0)
        return r;

    for (;;) {
        LinkMsg *reply = NULL;
        r = poll_one(h->fd, POLLIN, &deadline);
        if (r < 0)
            return r;
        if (r == 0)
            return -ETIMEDOUT;
        r = link_recv(h->fd, &reply);
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
        link_msg_free(reply);
        return r;
    }
}

HALO_EXPORT int halo_open(const char *socket_path, const halo_callbacks *callbacks, void *userdata, halo **ret) {
    _cleanup_(halo_freep) halo *h = NULL;
    pthread_condattr_t ca;
    int r;

    assert_return(ret, -EINVAL);

    if (!socket_path)
        socket_path = getenv("HALO_SOCKET");
    if (!socket_path || !*socket_path)
        return -ENOENT;

    h = calloc(1, sizeof(*h));
    if (!h)
        return -ENOMEM;
    h->fd = h->evfd = h->epfd = -1;
    h->n_refs = 1;
    if (callbacks)
        h->cb = *callbacks;
    h->userdata = userdata;

    r = pthread_condattr_init(&ca);
    if (r != 0) {
        free(TAKE_PTR(h));
        return -r;
    }
    (void)pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
    r = pthread_cond_init(&h->cond, &ca);
    pthread_condattr_destroy(&ca);
    if (r != 0) {
        free(TAKE_PTR(h));
        return -r;
    }
    r = pthread_mutex_init(&h->lock, NULL);
    if (r != 0) {
        pthread_cond_destroy(&h->cond);
        free(TAKE_PTR(h));
        return -r;
    }

    h->fd = connect_unix(socket_path);
    if (h->fd < 0)
        return h->fd;
    h->evfd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
    if (h->evfd < 0)
        return -errno;
    h->epfd = epoll_create1(EPOLL_CLOEXEC);
    if (h->epfd < 0)
        return -errno;
    struct epoll_event ev = {.events = EPOLLIN, .data.fd = h->fd};
    if (epoll_ctl(h->epfd, EPOLL_CTL_ADD, h->fd, &ev) < 0)
        return -errno;
    ev.data.fd = h->evfd;
    if (epoll_ctl(h->epfd, EPOLL_CTL_ADD, h->evfd, &ev) < 0)
        return -errno;

    r = hello(h);
    if (r < 0)
        return r;

    *ret = TAKE_PTR(h);
    return 0;
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
    /* Wake every thread of ours: a reader polling the socket, a dispatcher
     * polling the selection object, and waiters on the condition. */
    (void)shutdown(h->fd, SHUT_RDWR);
    (void)eventfd_write(h->evfd, 1);
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

    for (;;) {
        LinkMsg *m = queue_pop(h);
        if (m) {
            pthread_mutex_unlock(&h->lock);
            bool ran = run_callback(h, m);
            link_msg_free(m);
            pthread_mutex_lock(&h->lock);
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
        if (h->closed) {
            r = -EBADF;
            break;
        }
        if (h->disconnected) {
            r = -ENOTCONN;
            break;
        }

        if (!h->reading) {
            /* Non-blocking, under the lock: nobody else reads meanwhile. */
            r = pump(h);
            if (r == -ENOMEM) {
                r = n > 0 ? n : -ENOMEM;
                break;
            }
            if (r != 0)
                continue; /* read something, or the link is gone */
            if (flags != HALO_DISPATCH_BLOCKING) {
                r = n;
                break;
            }
            /* Wait for a packet, a callback queued by another thread's call, or halo_close(). */
            pthread_mutex_unlock(&h->lock);
            r = poll_one(h->epfd, POLLIN, NULL);
            pthread_mutex_lock(&h->lock);
            if (r < 0)
                break;
            continue;
        }

        /* Another thread is reading: it queues what arrives and wakes us when done. */
        if (flags != HALO_DISPATCH_BLOCKING) {
            r = n;
            break;
        }
        pthread_cond_wait(&h->cond, &h->lock);
    }

    leave(h);
    return r;
}

/* ---- calls --------------------------------------------------------------- */

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

    reg.comp = copy;
    m.body_case = HALO__LINK__MSG__BODY_REGISTER;
    m.register_ = &reg;
    r = request(h, &m, &reg.seq, NULL, NULL);
    if (r < 0)
        return r;

    /* The handle cannot have been freed: the caller still owns its reference. */
    pthread_mutex_lock(&h->lock);
    if (!h->comp)
        h->comp = TAKE_PTR(copy);
    pthread_mutex_unlock(&h->lock);
    return 0;
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
    r = request(h, &m, &unreg.seq, &unreg.comp, NULL);
    if (r < 0)
        return r;

    pthread_mutex_lock(&h->lock);
    if (h->comp && (!comp || streq(comp, h->comp))) {
        free(h->comp);
        h->comp = NULL;
    }
    pthread_mutex_unlock(&h->lock);
    return 0;
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
    return request(h, &m, &resp.seq, NULL, NULL);
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

HALO_EXPORT int halo_healthcheck_start(halo *h, const char *comp, const char *key, halo_hc_invoked invoked,
                                       halo_recovery recommended) {
    Halo__Link__HealthcheckStart hc = HALO__LINK__HEALTHCHECK_START__INIT;
    LinkMsg m = HALO__LINK__MSG__INIT;
    int r;

    assert_return(h, -EINVAL);
    assert_return(invoked == HALO_HC_AMF_INVOKED || invoked == HALO_HC_COMPONENT_INVOKED, -EINVAL);
    assert_return(recovery_valid(recommended), -EINVAL);
    r = check_comp_key(comp, &key);
    if (r < 0)
        return r;
    hc.comp = (char *)comp;
    hc.key = (char *)key;
    hc.invoked = invoked;
    hc.recovery = recommended;
    m.body_case = HALO__LINK__MSG__BODY_HC_START;
    m.hc_start = &hc;
    return request(h, &m, &hc.seq, &hc.comp, NULL);
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
    return request(h, &m, &hc.seq, &hc.comp, NULL);
}

HALO_EXPORT int halo_healthcheck_stop(halo *h, const char *comp, const char *key) {
    Halo__Link__HealthcheckStop hc = HALO__LINK__HEALTHCHECK_STOP__INIT;
    LinkMsg m = HALO__LINK__MSG__INIT;
    int r;

    assert_return(h, -EINVAL);
    r = check_comp_key(comp, &key);
    if (r < 0)
        return r;
    hc.comp = (char *)comp;
    hc.key = (char *)key;
    m.body_case = HALO__LINK__MSG__BODY_HC_STOP;
    m.hc_stop = &hc;
    return request(h, &m, &hc.seq, &hc.comp, NULL);
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
    return request(h, &m, &er.seq, &er.comp, NULL);
}

HALO_EXPORT int halo_pg_track(halo *h, const char *csi_name, unsigned flags) {
    Halo__Link__PgTrack pt = HALO__LINK__PG_TRACK__INIT;
    LinkMsg m = HALO__LINK__MSG__INIT;
    const unsigned known = HALO_TRACK_CURRENT | HALO_TRACK_CHANGES | HALO_TRACK_CHANGES_ONLY;
    int r;

    assert_return(h, -EINVAL);
    assert_return(h->cb.pg_track, -EINVAL);
    assert_return(flags != 0 && !(flags & ~known), -EINVAL);
    assert_return(!((flags & HALO_TRACK_CHANGES) && (flags & HALO_TRACK_CHANGES_ONLY)), -EINVAL);
    r = check_name(csi_name);
    if (r < 0)
        return r;
    pt.csi = (char *)csi_name;
    pt.flags = flags;
    m.body_case = HALO__LINK__MSG__BODY_PG_TRACK;
    m.pg_track = &pt;
    return request(h, &m, &pt.seq, NULL, NULL);
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
    return request(h, &m, &ps.seq, NULL, NULL);
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
    r = request(h, &m, &g.seq, &g.comp, &reply);
    if (r < 0)
        return r;

    uint32_t s = reply->reply->ha_state;
    link_msg_free(reply);
    if (s < HALO_HA_ACTIVE || s > HALO_HA_QUIESCING)
        return -HALO_EPROTO;
    *ret_state = (halo_ha_state)s;
    return 0;
}
