/* SPDX-License-Identifier: MIT */
/* The node lease deadline shared with the local processes (see lease-file.h). */
#include "lease-file.h"

#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include "link.h"

struct lease_file {
    uint64_t *deadline; /* the first 8 bytes of the mapped page */
    size_t size;
    char *path;
};

int lease_file_open(const char *path, struct lease_file **ret) {
    struct lease_file *f = calloc(1, sizeof(*f));
    if (!f || !(f->path = strdup(path))) {
        free(f);
        return -ENOMEM;
    }
    int fd = open(path, O_RDWR | O_CREAT | O_CLOEXEC | O_NOFOLLOW, 0644);
    struct stat st;
    int r = fd < 0 || fstat(fd, &st) < 0 ? -errno : 0;
    if (r == 0 && !S_ISREG(st.st_mode))
        r = -EINVAL;
    f->size = (size_t)sysconf(_SC_PAGESIZE);
    /* Never shrunk nor replaced: the processes map this inode. */
    if (r == 0 && st.st_size < (off_t)f->size && ftruncate(fd, (off_t)f->size) < 0)
        r = -errno;
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
