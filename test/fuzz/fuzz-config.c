/* SPDX-License-Identifier: MIT */
/* libFuzzer entry point for the cluster description loader (and its diff): any bytes in, no crash, no leak. */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "config.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static char path[PATH_MAX];

static void cleanup(void) {
    if (!path[0])
        return;
    (void)unlink(path);
    char *slash = strrchr(path, '/');
    if (slash) {
        *slash = 0;
        (void)rmdir(path);
    }
}

/* One private directory for the whole run; the input is rewritten for each case. */
static int setup(void) {
    char dir[] = "/tmp/halo-fuzz-config.XXXXXX";

    if (!mkdtemp(dir))
        return -errno;
    snprintf(path, sizeof(path), "%s/halo.yaml", dir);
    atexit(cleanup);
    return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    if (!path[0] && setup() < 0)
        abort();

    int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
    if (fd < 0)
        abort();
    for (size_t off = 0; off < size;) {
        ssize_t k = write(fd, data + off, size - off);
        if (k <= 0)
            abort();
        off += (size_t)k;
    }
    close(fd);

    struct config *c = NULL;
    char *errors = NULL;
    int r = config_load(path, &c, &errors);
    /* The contract: a configuration exactly on success, and every failure explained. */
    if ((r == 0) != (c != NULL))
        abort();
    if (r == -EINVAL && (!errors || !*errors))
        abort();
    /* A reload of the same file changes nothing (config_diff()). */
    struct config_diff *d = NULL;
    if (c && config_diff(c, c, &d) == 0 && d->n_changes != 0)
        abort();
    config_diff_free(d);
    config_free(c);
    free(errors);
    return 0;
}
