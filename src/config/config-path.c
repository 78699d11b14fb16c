/* SPDX-License-Identifier: MIT */
/* A component's command and working directory, resolved against the description's directory and $PATH. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "config-internal.h"

static int check_executable(const char *p) {
    struct stat st;
    if (stat(p, &st) < 0)
        return -errno;
    if (S_ISDIR(st.st_mode))
        return -EISDIR;
    if (!S_ISREG(st.st_mode))
        return -EACCES;
    if (access(p, X_OK) < 0)
        return -errno;
    return 0;
}

/* basedir + "/" + rel, without leading "./" in rel.  NULL on -ENOMEM. */
static char *path_join(const char *basedir, const char *rel) {
    char *p;
    while (rel[0] == '.' && rel[1] == '/') {
        rel += 2;
        while (*rel == '/')
            rel++;
    }
    const char *sep = basedir[0] && basedir[strlen(basedir) - 1] == '/' ? "" : "/";
    if (asprintf(&p, "%s%s%s", basedir, sep, rel) < 0)
        return NULL;
    return p;
}

char *config_path_resolve(struct loader *l, const char *path) {
    return path[0] == '/' ? strdup(path) : path_join(l->basedir, path);
}

/*
 * An existing file's path with its directory canonical ("dir/../bin/x" -> "/abs/bin/x"); the file
 * name itself stays, so that a program reached through a symlink keeps the name it was given.
 */
static int path_tidy(const char *p, char **ret) {
    _cleanup_free_ char *dir = strdup(p), *real = NULL;
    char *slash;

    if (!dir)
        return -ENOMEM;
    slash = strrchr(dir, '/');
    if (!slash || slash == dir)
        real = NULL;
    else {
        *slash = 0;
        real = realpath(dir, NULL);
    }
    if (!real)
        /* Cannot happen for a file that was just found; keep the path as it is. */
        return (*ret = strdup(p)) ? 0 : -ENOMEM;
    *ret = path_join(real, strrchr(p, '/') + 1);
    return *ret ? 0 : -ENOMEM;
}

static const char *executable_error(int r) {
    switch (r) {
    case -ENOENT:
    case -ENOTDIR:
        return "does not exist";
    case -EISDIR:
        return "is a directory";
    case -EACCES:
        return "is not an executable file";
    default:
        return strerror(-r);
    }
}

/*
 * Resolves a command: absolute as is; with a '/' relative to the description's directory;
 * without one, in that directory first and then in the absolute directories of $PATH.
 * *ret is the absolute path, or NULL when it does not resolve (problem recorded).
 */
int config_path_command(struct loader *l, yaml_node_t *n, const char *what, const char *cmd, char **ret) {
    _cleanup_free_ char *p = NULL;
    int r;

    *ret = NULL;
    if (cmd[0] == '/' || strchr(cmd, '/')) {
        p = cmd[0] == '/' ? strdup(cmd) : path_join(l->basedir, cmd);
        if (!p)
            return -ENOMEM;
        r = check_executable(p);
        if (r < 0) {
            if (streq(p, cmd))
                config_diag(l, n, "%s '%s' %s", what, Q(cmd), executable_error(r));
            else
                config_diag(l, n, "%s '%s' ('%s') %s", what, Q(cmd), Q(p), executable_error(r));
            return 0;
        }
        if (cmd[0] != '/')
            return path_tidy(p, ret);
        *ret = TAKE_PTR(p);
        return 0;
    }

    p = path_join(l->basedir, cmd);
    if (!p)
        return -ENOMEM;
    if (check_executable(p) >= 0) {
        *ret = TAKE_PTR(p);
        return 0;
    }

    const char *path = getenv("PATH");
    if (!path)
        path = "/usr/local/bin:/usr/bin:/bin";
    for (const char *d = path; *d;) {
        size_t len = strcspn(d, ":");
        /* Relative entries would depend on halod's working directory: skipped. */
        if (d[0] == '/') {
            free(p);
            if (asprintf(&p, "%.*s/%s", (int)len, d, cmd) < 0) {
                p = NULL;
                return -ENOMEM;
            }
            if (check_executable(p) >= 0) {
                *ret = TAKE_PTR(p);
                return 0;
            }
        }
        d += len;
        if (*d == ':')
            d++;
    }
    config_diag(l, n, "%s '%s' not found in '%s' or $PATH", what, Q(cmd), Q(l->basedir));
    return 0;
}

int config_path_output(struct loader *l, yaml_node_t *n, const char *file, char **ret) {
    _cleanup_free_ char *p = file[0] == '/' ? strdup(file) : path_join(l->basedir, file);
    struct stat st;

    if (!p)
        return -ENOMEM;
    char *slash = strrchr(p, '/');
    if (!slash[1]) {
        config_diag(l, n, "'stdout' '%s' names a directory, not a file", Q(p));
        return 0;
    }
    *slash = 0;
    bool dir_ok = stat(*p ? p : "/", &st) == 0 && S_ISDIR(st.st_mode);
    *slash = '/';
    if (!dir_ok)
        config_diag(l, n, "'stdout' '%s': its directory does not exist", Q(p));
    else if (stat(p, &st) == 0 && !S_ISREG(st.st_mode) && !S_ISCHR(st.st_mode))
        config_diag(l, n, "'stdout' '%s' is not a regular file", Q(p));
    else
        *ret = TAKE_PTR(p);
    return 0;
}

int config_path_workdir(struct loader *l, yaml_node_t *n, const char *dir, char **ret) {
    _cleanup_free_ char *p = dir[0] == '/' ? strdup(dir) : path_join(l->basedir, dir);
    struct stat st;

    if (!p)
        return -ENOMEM;
    if (stat(p, &st) < 0)
        config_diag(l, n, "workdir '%s' %s", Q(p),
                    errno == ENOENT || errno == ENOTDIR ? "does not exist" : strerror(errno));
    else if (!S_ISDIR(st.st_mode))
        config_diag(l, n, "workdir '%s' is not a directory", Q(p));
    else if (dir[0] != '/') {
        /* "../data" relative to the description: give the daemon a clean absolute path. */
        char *real = realpath(p, NULL);
        if (real) {
            free(p);
            p = real;
        } else if (errno == ENOMEM)
            return -ENOMEM;
    }
    *ret = TAKE_PTR(p);
    return 0;
}
