/* SPDX-License-Identifier: MIT */
/*
 * The fence of what libhalo cannot fence (src/halo-guard/halo-guard.c): on
 * several nodes, beside each non-SA-aware or OCF component this node runs
 * ACTIVE, a halo-guard in a session of its own kills its process group (and a
 * pidfile daemon's) and runs an OCF agent's stop once the node's lease
 * deadline passes unrenewed, so that nothing of it outlives a killed or
 * stopped halod into another node's ACTIVE.
 *
 * Each guarded component has a file, GUARD_DIR/<component>, which its guards
 * watch: halod creates it before the component starts, and removes it once the
 * component is stopped for good, which ends every guard of it (a previous
 * halod's too).  A restarted halod that adopts the component starts a guard of
 * its own beside the one still running.
 */
#define LOG_AREA LOG_AREA_AMF
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "amf-internal.h"
#include "log.h"
#include "macro.h"
#include "process-util.h"

int amf_set_guard(struct amf *a, const char *guard, const char *lease, const char *dir) {
    char *g = strdup(guard), *l = strdup(lease), *d = strdup(dir);
    if (!g || !l || !d) {
        free(g), free(l), free(d);
        return -ENOMEM;
    }
    free(a->guard.path), free(a->guard.lease), free(a->guard.dir);
    a->guard.path = g, a->guard.lease = l, a->guard.dir = d;
    return 0;
}

void amf_guard_free(struct amf *a) {
    free(a->guard.path), free(a->guard.lease), free(a->guard.dir);
    a->guard.path = a->guard.lease = a->guard.dir = NULL;
}

/* GUARD_DIR/<component>, its '/' (SU/name) written '+'. */
static int file_of(const struct comp *c, char *buf, size_t n) {
    if (snprintf(buf, n, "%s/%s", c->amf->guard.dir, c->name) >= (int)n)
        return -ENAMETOOLONG;
    for (char *p = buf + strlen(c->amf->guard.dir) + 1; *p; p++)
        if (*p == '/')
            *p = '+';
    return 0;
}

static void guard_exited(struct proc *p, int status, void *userdata) {
    struct comp *c = userdata;
    if (WIFEXITED(status) && WEXITSTATUS(status) == 3)
        log_error("The guard of component '%s' fenced it: this node's lease deadline passed unrenewed", c->name);
    else if (status != 0 && !(WIFSIGNALED(status) && WTERMSIG(status) == SIGTERM))
        log_warning("The guard of component '%s' ended with status 0x%x", c->name, (unsigned)status);
}

bool amf_guarded(const struct comp *c) {
    return c->amf->guard.path && !amf_comp_sa_aware(c);
}

int amf_guard_begin(struct comp *c, pid_t pid) {
    struct amf *a = c->amf;
    char file[PATH_MAX], spid[24], start[24], stop_ms[24];
    if (!amf_guarded(c))
        return 0;
    int r = file_of(c, file, sizeof(file));
    if (r < 0)
        return r;
    _cleanup_close_ int fd = open(file, O_WRONLY | O_CREAT | O_CLOEXEC, 0600);
    if (fd < 0)
        return -errno;
    char *argv[20];
    size_t n = 0;
    argv[n++] = a->guard.path;
    argv[n++] = "--lease";
    argv[n++] = a->guard.lease;
    argv[n++] = "--while";
    argv[n++] = file;
    if (pid > 0) {
        snprintf(spid, sizeof(spid), "%d", (int)pid);
        snprintf(start, sizeof(start), "%llu", (unsigned long long)process_start_time(pid));
        argv[n++] = "--pid";
        argv[n++] = spid;
        argv[n++] = "--start-time";
        argv[n++] = start;
    }
    if (c->cfg->pidfile) {
        argv[n++] = "--pidfile";
        argv[n++] = c->cfg->pidfile;
    }
    char **env = NULL;
    size_t n_env = 0;
    if (amf_comp_ocf(c)) {
        /* The agent's stop, with the environment halod gives it, within its timeout: the other nodes
         * take the resource over that long after the lease ended (cluster-fence.c). */
        snprintf(stop_ms, sizeof(stop_ms), "%u", MAX(1u, (unsigned)(amf_ocf_stop_timeout(c) / USEC_PER_MSEC)));
        argv[n++] = "--stop-timeout";
        argv[n++] = stop_ms;
        argv[n++] = "--";
        argv[n++] = c->cfg->command;
        argv[n++] = "stop";
        r = amf_ocf_env(c->cfg, c->name, c->ocf.stop, 0, &env, &n_env);
        if (r < 0)
            return r;
    }
    argv[n] = NULL;
    struct proc *p = NULL;
    r = amf_comp_spawn_capture(c, argv, env, n_env, false, guard_exited, &p);
    if (env)
        amf_env_free(env, n_env);
    if (r < 0)
        return r;
    log_debug("Component '%s' is guarded by pid %d", c->name, (int)proc_pid(p));
    return 0;
}

void amf_guard_end(struct comp *c) {
    char file[PATH_MAX];
    if (!amf_guarded(c) || file_of(c, file, sizeof(file)) < 0)
        return;
    if (unlink(file) < 0 && errno != ENOENT)
        log_warning_errno(errno, "Failed to remove '%s', which ends the guards of component '%s': %m", file, c->name);
}
