/* SPDX-License-Identifier: MIT */
/*
 * The node lease, enforced in the component's process (libhalo's part of fencing).
 *
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
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "halo-internal.h"
#include "macro.h"

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
void halo__lease_watch(halo *h, const char *path) {
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
void halo__lease_unwatch(halo *h) {
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
