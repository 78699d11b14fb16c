/* SPDX-License-Identifier: MIT */
/* A listening socket on the loop: accepts what comes, and pauses instead of spinning when out of file descriptors. */
#pragma once

#include <stdint.h>
#include <sys/socket.h>
#include <uv.h>

struct listener;

/* fd: the accepted connection (O_CLOEXEC, O_NONBLOCK), the callee's to keep or close; addr: its peer. */
typedef void (*listener_accept_cb)(int fd, const struct sockaddr *addr, socklen_t len, void *userdata);

/* How long accepting pauses when accept() fails for want of resources
 * (EMFILE, ENFILE, ENOBUFS, ENOMEM) or for a reason it does not know. */
#define LISTENER_PAUSE_MS 250
/* At most one warning about it per this many ms (with a count of the others). */
#define LISTENER_LOG_INTERVAL_MS 10000

/*
 * Watches the listening socket fd (non-blocking; taken in every case) and
 * calls cb for every connection accepted.  what names the socket in logs
 * ("HA link", "HTTP").  When accept() fails for want of descriptors the
 * socket is not watched for LISTENER_PAUSE_MS or until listener_resume():
 * the connections wait in its backlog, and the loop does not spin on them.
 * Returns 0 and *ret, or -errno.
 */
int listener_new(uv_loop_t *loop, int fd, const char *what, listener_accept_cb cb, void *userdata,
                 struct listener **ret);
/* Stops watching and closes the socket.  Accepts NULL; returns NULL. */
struct listener *listener_free(struct listener *l);
/* A descriptor was freed (a connection closed): a paused listener accepts again now. */
void listener_resume(struct listener *l);
/* How many times accepting paused since the start. */
uint64_t listener_pauses(const struct listener *l);
