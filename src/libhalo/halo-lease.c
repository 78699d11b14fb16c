/* SPDX-License-Identifier: MIT */
/*
 * The node lease, enforced in the component's process (libhalo's part of fencing).
 *
 * On several nodes halod names a file (HelloReply.lease_file) holding the
 * CLOCK_MONOTONIC time in microseconds until which this node's lease is known
 * to be held, moved forward at every renewal (0: no deadline runs).  Once the
 * lease can have expired another node's standby takes over, so a process
 * whose halod is gone must be stopped by then, even if the application does
 * not call halo_dispatch(), is stuck, or is stopped (SIGSTOP: no thread of it
 * runs): the kernel enforces the deadline, a POSIX timer that sends SIGKILL
 * at it.  A second timer, whose callback runs in a thread of its own, reads
 * the file CHECK_AHEAD before the deadline and moves the kill timer with it
 * (halod renews every TTL/3, so by then the deadline has moved if halod
 * lives), and once more LAST_CHECK before it, for the "no deadline" a halod
 * writes once it fenced itself (its STANDBY processes stay).  One per process
 * (a process has one halod), never freed, so that a callback can never find
 * it gone.
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
#define CHECK_AHEAD_USEC (300 * 1000ULL)      /* the file is read this long before the deadline */
#define LAST_CHECK_USEC (20 * 1000ULL)        /* and once more this long before it */

static struct {
    pthread_mutex_t lock;
    const uint64_t *deadline; /* mapped, read-only */
    size_t size;
    dev_t dev;
    ino_t ino;
    timer_t timer;      /* the check, in a thread */
    timer_t kill_timer; /* SIGKILL at the deadline, from the kernel */
    bool have_timer, have_kill_timer;
    unsigned users; /* open handles that watch it */
} lease = {.lock = PTHREAD_MUTEX_INITIALIZER};

static uint64_t monotonic_usec(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000ULL + (uint64_t)ts.tv_nsec / 1000;
}

static void timer_at(timer_t t, uint64_t at_usec) {
    struct itimerspec its = {
        .it_value = {.tv_sec = (time_t)(at_usec / 1000000), .tv_nsec = (long)(at_usec % 1000000) * 1000}};
    (void)timer_settime(t, at_usec ? TIMER_ABSTIME : 0, &its, NULL); /* 0: disarmed */
}

/* Arms both timers for deadline d (LINK_LEASE_NONE: none runs).  Lease lock held. */
static void lease_arm(uint64_t d, uint64_t now) {
    if (lease.have_kill_timer)
        timer_at(lease.kill_timer, d == LINK_LEASE_NONE ? 0 : d);
    if (!lease.have_timer)
        return;
    uint64_t at = d == LINK_LEASE_NONE         ? now + LEASE_IDLE_CHECK_USEC
                  : d > now + CHECK_AHEAD_USEC ? d - CHECK_AHEAD_USEC
                  : d > now + LAST_CHECK_USEC  ? d - LAST_CHECK_USEC
                                               : d;
    timer_at(lease.timer, MAX(at, now + 1));
}

static void lease_check(union sigval v) {
    pthread_mutex_lock(&lease.lock);
    if (lease.deadline && lease.users > 0) {
        uint64_t d = __atomic_load_n(lease.deadline, __ATOMIC_ACQUIRE), now = monotonic_usec();
        if (d != LINK_LEASE_NONE && now + LAST_CHECK_USEC >= d) {
            char msg[160];
            int n = snprintf(msg, sizeof(msg),
                             "libhalo: pid %d: halod did not renew this node's lease in time; stopping, as another "
                             "node may take over\n",
                             (int)getpid());
            if (n > 0)
                (void)!write(STDERR_FILENO, msg, (size_t)MIN((size_t)n, sizeof(msg) - 1));
            if (now >= d || !lease.have_kill_timer)
                kill(getpid(), SIGKILL);
        }
        lease_arm(d, now);
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
    if (!lease.have_kill_timer) {
        struct sigevent sev = {.sigev_notify = SIGEV_SIGNAL, .sigev_signo = SIGKILL};
        lease.have_kill_timer = timer_create(CLOCK_MONOTONIC, &sev, &lease.kill_timer) == 0;
        if (!lease.have_kill_timer)
            fprintf(stderr, "libhalo: the node lease is checked, not enforced while stopped: timer_create: %s\n",
                    strerror(errno));
    }
    if (!h->leased) {
        h->leased = true;
        lease.users++;
    }
    if (lease.deadline)
        lease_arm(__atomic_load_n(lease.deadline, __ATOMIC_ACQUIRE), monotonic_usec());
    pthread_mutex_unlock(&lease.lock);
    close(fd);
}

/* Before the application takes a role: the deadline as it is now is enforced
 * (a deadline that began since the last check, ahead of a process stopped
 * right after it became ACTIVE, would not be: the check reads the file only
 * every LEASE_IDLE_CHECK_USEC while none runs). */
void halo__lease_refresh(void) {
    pthread_mutex_lock(&lease.lock);
    if (lease.deadline && lease.users > 0)
        lease_arm(__atomic_load_n(lease.deadline, __ATOMIC_ACQUIRE), monotonic_usec());
    pthread_mutex_unlock(&lease.lock);
}

/* A handle closes: with the last one, nothing is enforced any more. */
void halo__lease_unwatch(halo *h) {
    if (!h->leased)
        return;
    pthread_mutex_lock(&lease.lock);
    h->leased = false;
    if (--lease.users == 0) {
        if (lease.have_timer)
            timer_at(lease.timer, 0);
        if (lease.have_kill_timer)
            timer_at(lease.kill_timer, 0);
    }
    pthread_mutex_unlock(&lease.lock);
}
