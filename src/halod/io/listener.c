/* SPDX-License-Identifier: MIT */
/* A listening socket on the loop: accepts what comes, and pauses instead of spinning when out of file descriptors. */
#define LOG_AREA LOG_AREA_LINK
#include "listener.h"

#include <errno.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

#include "log.h"
#include "macro.h"

/* Connections taken per wake-up: the rest wait for the next turn of the loop. */
#define LISTENER_BATCH 64

struct listener {
    uv_poll_t poll;
    uv_timer_t timer;
    int fd;
    unsigned open_handles; /* freed when both handles have closed */
    char *what;
    listener_accept_cb cb;
    void *userdata;
    bool paused;
    bool closing; /* listener_free() ran (maybe from cb): accept no more */
    uint64_t pauses;
    uint64_t last_log; /* uv_now() of the last warning, 0: none yet */
    unsigned unlogged; /* pauses since that warning */
};

static void on_poll(uv_poll_t *h, int status, int events);

static void on_timer(uv_timer_t *t) {
    listener_resume(t->data);
}

/* Stops watching the socket for a while; warns once per LISTENER_LOG_INTERVAL_MS. */
static void pause_accepting(struct listener *l, int error) {
    uint64_t now = uv_now(l->poll.loop);
    l->paused = true;
    l->pauses++;
    (void)uv_poll_stop(&l->poll);
    (void)uv_timer_start(&l->timer, on_timer, LISTENER_PAUSE_MS, 0);
    if (l->last_log && now - l->last_log < LISTENER_LOG_INTERVAL_MS) {
        l->unlogged++;
        return;
    }
    if (l->unlogged)
        log_warning_errno(
            -error, "Cannot accept %s connections: %m; trying again every %u ms (%u pauses since the last warning)",
            l->what, LISTENER_PAUSE_MS, l->unlogged);
    else
        log_warning_errno(-error, "Cannot accept %s connections: %m; trying again every %u ms", l->what,
                          LISTENER_PAUSE_MS);
    l->last_log = now;
    l->unlogged = 0;
}

static void on_poll(uv_poll_t *h, int status, int events) {
    struct listener *l = h->data;
    for (int i = 0; i < LISTENER_BATCH && !l->paused && !l->closing; i++) {
        struct sockaddr_storage ss;
        socklen_t len = sizeof(ss);
        int fd = accept4(l->fd, (struct sockaddr *)&ss, &len, SOCK_CLOEXEC | SOCK_NONBLOCK);
        if (fd >= 0) {
            l->cb(fd, (struct sockaddr *)&ss, len, l->userdata);
            continue;
        }
        switch (errno) {
        case EAGAIN:
            return;
        case EINTR:
        case ECONNABORTED: /* the peer gave up while it waited: the next one */
        case EPROTO:
        case EPERM: /* a firewall refused this one */
            continue;
        default: /* EMFILE, ENFILE, ENOBUFS, ENOMEM, or what we do not know: never in a loop */
            pause_accepting(l, errno);
            return;
        }
    }
}

void listener_resume(struct listener *l) {
    if (!l || !l->paused || l->closing)
        return;
    l->paused = false;
    (void)uv_timer_stop(&l->timer);
    (void)uv_poll_start(&l->poll, UV_READABLE, on_poll);
}

uint64_t listener_pauses(const struct listener *l) {
    return l ? l->pauses : 0;
}

int listener_new(uv_loop_t *loop, int fd, const char *what, listener_accept_cb cb, void *userdata,
                 struct listener **ret) {
    _cleanup_close_ int owned = fd;
    struct listener *l = calloc(1, sizeof(*l));
    if (!l || !(l->what = strdup(what))) {
        free(l);
        return -ENOMEM;
    }
    int r = uv_poll_init(loop, &l->poll, fd);
    if (r < 0) {
        free(l->what);
        free(l);
        return r;
    }
    (void)uv_timer_init(loop, &l->timer); /* cannot fail */
    l->poll.data = l->timer.data = l;
    l->open_handles = 2;
    l->fd = TAKE_FD(owned);
    l->cb = cb;
    l->userdata = userdata;
    r = uv_poll_start(&l->poll, UV_READABLE, on_poll);
    if (r < 0) {
        (void)listener_free(l);
        return r;
    }
    *ret = l;
    return 0;
}

static void on_close(uv_handle_t *h) {
    struct listener *l = h->data;
    if (--l->open_handles > 0)
        return;
    safe_close(l->fd);
    free(l->what);
    free(l);
}

struct listener *listener_free(struct listener *l) {
    if (!l)
        return NULL;
    l->closing = true;
    (void)uv_poll_stop(&l->poll);
    uv_close((uv_handle_t *)&l->poll, on_close);
    uv_close((uv_handle_t *)&l->timer, on_close);
    return NULL;
}
