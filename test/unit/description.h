/* SPDX-License-Identifier: MIT */
/* A cluster description from text, loaded as halod loads it (through a file), for the unit tests. */
#pragma once

#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "config.h"
#include "tests.h"

/* config_load()'s result, with *ret_errors (the caller frees them). */
static inline int description_load_errors(const char *text, struct config **ret, char **ret_errors) {
    char path[] = "/tmp/halo-test-description-XXXXXX";
    int fd = mkstemp(path);
    ASSERT(fd >= 0);
    ASSERT_EQ(write(fd, text, strlen(text)), (long long)strlen(text));
    close(fd);
    setenv("PATH", "/bin", 1);
    int r = config_load(path, ret, ret_errors);
    unlink(path);
    return r;
}

/* The description, which must load. */
static inline struct config *description_load(const char *text) {
    struct config *c = NULL;
    char *errors = NULL;
    int r = description_load_errors(text, &c, &errors);
    if (r < 0)
        CHECK_FAIL("config_load: %s\n%s", strerror(-r), errors ? errors : "");
    free(errors);
    return c;
}
