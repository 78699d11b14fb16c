/* SPDX-License-Identifier: MIT */
/*
 * libhalo: the component side of the HA link (the contract is include/halo/halo.h).
 * This file has the handle: open, close, free, its selection object and options.
 *
 * One handle owns one SOCK_SEQPACKET connection to halod (halo-link.c).
 * Requests that expect an answer wait for their Reply (halo-request.c);
 * everything else halod sends (CSI set, terminate, health checks,
 * protection-group notes) is queued and handed to callbacks by
 * halo_dispatch() (halo-dispatch.c).
 *
 * Lifetime: the open handle holds one reference and every call in progress
 * another; halo_close() drops the first, wakes the others, and the last
 * reference frees the handle.  So halo_close() may be called from a callback
 * or while another thread blocks in halo_dispatch().
 */
#include "halo/halo.h"

#include <errno.h>
#include <pthread.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <sys/socket.h>
#include <sys/timerfd.h>
#include <time.h>
#include <unistd.h>

#include "halo-internal.h"
#include "macro.h"
#include "parse-util.h"

static halo *halo_free(halo *h) {
    if (!h)
        return NULL;
    halo__lease_unwatch(h);
    halo__dispatch_flush(h);
    halo__amf_tracked_clear(h);
    halo__cdb_free(h);
    halo__ckpt_free(h);
    halo__name_free(h);
    halo__events_free(h);
    halo__evt_free(h);
    halo__txn_free(h);
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

/* ---- references ---------------------------------------------------------- */

/* Starts a call: returns 0 with the lock held and a reference taken, or -EBADF after halo_close(). */
int halo__enter(halo *h) {
    pthread_mutex_lock(&h->lock);
    if (h->closed) {
        pthread_mutex_unlock(&h->lock);
        return -EBADF;
    }
    h->n_refs++;
    return 0;
}

/* Ends a call: drops the lock and the reference; the last reference frees the handle. */
void halo__leave(halo *h) {
    bool last = --h->n_refs == 0;
    pthread_mutex_unlock(&h->lock);
    if (last)
        halo_free(h);
}

/* ---- open and close ------------------------------------------------------ */

/* HALO_RECONNECT_MAX_MSEC, or $HALO_RECONNECT_MAX_MSEC: a knob for tests. */
static int reconnect_max_msec(void) {
    const char *s = getenv("HALO_RECONNECT_MAX_MSEC");
    uint64_t v;

    if (s && parse_u64_range(s, 0, 24ULL * 3600 * 1000, &v) == 0)
        return (int)v;
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
    halo__log_reset(h);
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

    h->fd = halo__link_connect(socket_path, 0);
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
    r = halo__link_hello(h, &deadline);
    pthread_mutex_unlock(&h->lock);
    if (r < 0)
        return r == -ENOTCONN ? -ECONNRESET : r;

    halo__crash_install();
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
    halo__dispatch_update(h);
    pthread_cond_broadcast(&h->cond);
    halo__leave(h);
    return NULL;
}

HALO_EXPORT int halo_fd(halo *h) {
    assert_return(h, -EINVAL);
    return h->epfd;
}

HALO_EXPORT int halo_recovery_set_callback(halo *h, halo_recovery_cb cb) {
    assert_return(h, -EINVAL);
    pthread_mutex_lock(&h->lock);
    h->recovery_cb = cb;
    pthread_mutex_unlock(&h->lock);
    return 0;
}
