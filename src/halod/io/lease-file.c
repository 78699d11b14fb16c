/* SPDX-License-Identifier: MIT */
/* The node lease deadline shared with the local processes (see lease-file.h). */
#include "lease-file.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "link.h"
#include "macro.h"

struct lease_file {
    uint64_t *deadline; /* the first 8 bytes of the mapped page */
    size_t size;
    char *path;
};

static uint64_t monotonic_usec(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000ULL + (uint64_t)ts.tv_nsec / 1000;
}

/* Opens path (creating it), a regular file of at least size bytes.  An fd, or -errno. */
static int open_existing(const char *path, size_t size) {
    _cleanup_close_ int fd = open(path, O_RDWR | O_CREAT | O_CLOEXEC | O_NOFOLLOW, 0644);
    struct stat st;
    if (fd < 0 || fstat(fd, &st) < 0)
        return -errno;
    if (!S_ISREG(st.st_mode))
        return -EINVAL;
    /* Never shrunk: the processes map this inode. */
    if (st.st_size < (off_t)size && ftruncate(fd, (off_t)size) < 0)
        return -errno;
    return TAKE_FD(fd);
}

/*
 * A new inode at path, holding LINK_LEASE_NONE: the processes that connect from now on map it,
 * while those that mapped the old one keep its deadline, which nobody moves any more.
 */
static int replace(const char *path, size_t size) {
    _cleanup_free_ char *tmp = NULL;
    if (asprintf(&tmp, "%s.XXXXXX", path) < 0)
        return -ENOMEM;
    _cleanup_close_ int fd = mkostemp(tmp, O_CLOEXEC);
    if (fd < 0)
        return -errno;
    int r = fchmod(fd, 0644) < 0 || ftruncate(fd, (off_t)size) < 0 || rename(tmp, path) < 0 ? -errno : 0;
    if (r < 0) {
        (void)unlink(tmp);
        return r;
    }
    return TAKE_FD(fd);
}

int lease_file_open(const char *path, struct lease_file **ret) {
    struct lease_file *f = calloc(1, sizeof(*f));
    if (!f || !(f->path = strdup(path))) {
        free(f);
        return -ENOMEM;
    }
    f->size = (size_t)sysconf(_SC_PAGESIZE);
    int fd = open_existing(path, f->size), r = fd < 0 ? fd : 0;
    if (r == 0) {
        uint64_t d = LINK_LEASE_NONE;
        if (pread(fd, &d, sizeof(d), 0) == (ssize_t)sizeof(d) && d != LINK_LEASE_NONE && d <= monotonic_usec()) {
            /*
             * The previous halod's deadline is past: its processes stop (or have stopped) at it, and
             * it is nothing to a process that connects now, which would kill itself at once.  That
             * inode is left to them as it is, never moved again (a process stopped with SIGSTOP
             * meanwhile still dies when it runs again); the new ones get a file without a
             * deadline until this halod holds a lease.  A deadline still to come is kept: this
             * halod may take that lease over, and then moves it for the adopted processes.
             */
            close(fd);
            fd = replace(path, f->size);
            r = fd < 0 ? fd : 0;
        }
    }
    if (r == 0) {
        void *p = mmap(NULL, f->size, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
        if (p == MAP_FAILED)
            r = -errno;
        else
            f->deadline = p;
    }
    if (fd >= 0)
        close(fd);
    if (r < 0) {
        free(f->path);
        free(f);
        return r;
    }
    *ret = f;
    return 0;
}

void lease_file_set(struct lease_file *f, uint64_t deadline_usec) {
    if (f)
        __atomic_store_n(f->deadline, deadline_usec, __ATOMIC_RELEASE);
}

const char *lease_file_path(const struct lease_file *f) {
    return f ? f->path : NULL;
}

struct lease_file *lease_file_close(struct lease_file *f) {
    if (f) {
        munmap(f->deadline, f->size);
        free(f->path);
        free(f);
    }
    return NULL;
}
