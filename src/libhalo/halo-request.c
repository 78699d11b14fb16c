/* SPDX-License-Identifier: MIT */
/*
 * Requests to halod and their Replies.
 *
 * Requests that expect an answer carry a fresh seq and the caller waits for
 * the Reply with that seq.  There are no threads of ours: whichever thread
 * needs a packet reads the socket, one at a time (the "reader"), and hands
 * replies meant for other threads to them through the list of waiters.  Each
 * link has an epoch; a request waits only for a Reply of its own link, and
 * what the Replies commit to the handle's lists is applied under the lock in
 * the order the packets arrived, so a reconnection never misses a check
 * started just before the link ended.
 */
#include <errno.h>
#include <pthread.h>

#include "halo-internal.h"
#include "macro.h"

/* What a call that needs halod returns when the link is not up, or ended while it waited. */
static int link_gone_error(halo *h, const LinkMsg *req) {
    if (h->state == LINK_DOWN)
        return -ENOTCONN;
    /* Whatever the invocation was, it came from a halod that is gone: the next one does not know it. */
    if (req->body_case == HALO__LINK__MSG__BODY_RESPONSE)
        return -HALO_EBADINVOCATION;
    return -HALO_ETRYAGAIN;
}

/* Hands a Reply to the thread waiting for its seq; one nobody waits for (the caller timed out) is dropped. */
void halo__request_deliver(halo *h, LinkMsg *m) {
    struct waiter *w;

    LIST_FOREACH (waiters, w, &h->waiters)
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
            r = halo__link_pump(h);
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
    int r = halo__link_send(h, req, deadline);
    if (r < 0)
        return r;

    LIST_APPEND(waiters, &h->waiters, w);
    r = wait_reply(h, w, deadline);
    LIST_REMOVE(waiters, &h->waiters, w);
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
int halo__request_full(halo *h, LinkMsg *req, uint64_t *seq, char **comp, halo__commit_fn commit, void *arg,
                       LinkMsg **ret_reply) {
    struct waiter w = {.commit = commit, .arg = arg};
    int r = halo__enter(h);
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
    halo__leave(h);
    link_msg_free(w.reply);
    return r;
}

int halo__request(halo *h, LinkMsg *req, uint64_t *seq, LinkMsg **ret_reply) {
    return halo__request_full(h, req, seq, NULL, NULL, NULL, ret_reply);
}

/* Sends one request of a reconnection and returns halod's verdict in *ret_error.  As transact(). */
int halo__request_resume(halo *h, LinkMsg *req, uint64_t *seq, const struct timespec *deadline, int *ret_error) {
    struct waiter w = {.seq = 0};
    int r = transact(h, req, seq, &w, deadline);
    if (r == 0)
        *ret_error = negative(w.reply->reply->error);
    link_msg_free(w.reply);
    return r;
}
