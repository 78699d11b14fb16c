/* SPDX-License-Identifier: MIT */
/* A node's failfast action: halt, reboot, or a command run without blocking the loop (failfast.h). */
#define LOG_AREA LOG_AREA_MAIN
#include "failfast.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/reboot.h>
#include <unistd.h>

#include "log.h"
#include "macro.h"

extern char **environ;

struct failfast {
    const struct config_node *node;
    char *why;
    void (*done)(void *userdata);
    void *userdata;
    uv_timer_t timer;
    uv_process_t proc;
    unsigned handles_open; /* closing handles refer to us: freed when none is left */
    bool acted, spawned, freeing;
};

static void maybe_free(struct failfast *f) {
    if (f->freeing && f->handles_open == 0) {
        free(f->why);
        free(f);
    }
}

static void on_closed(uv_handle_t *h) {
    struct failfast *f = h->data;
    f->handles_open--;
    maybe_free(f);
}

static void finished(struct failfast *f) {
    if (f->done)
        f->done(f->userdata);
}

/* sync() first: what the store and the logs wrote reaches the disk before the host goes down.
 * Returns only when reboot(2) failed.  In a PID namespace other than the first, reboot(2) ends
 * the namespace (its init dies of SIGHUP for a reboot, SIGINT for a halt), not the host. */
static void power(struct failfast *f, int cmd, const char *what) {
    log_error("Node failfast: %s of the host now", what);
    sync();
    if (reboot(cmd) < 0)
        log_error_errno(-errno, "Node failfast: failed to %s the host: %m; halod exits", what);
    finished(f);
}

static void on_exit_cb(uv_process_t *p, int64_t status, int term_signal) {
    struct failfast *f = p->data;
    if (term_signal)
        log_error("Node failfast: the failfast command was killed by signal %d; halod exits", term_signal);
    else if (status)
        log_error("Node failfast: the failfast command exited with status %lld; halod exits", (long long)status);
    else
        log_notice("Node failfast: the failfast command succeeded; halod exits");
    uv_close((uv_handle_t *)p, on_closed);
    finished(f);
}

/* The command, with halod's environment and HALO_NODE, HALO_FAILFAST_REASON. */
static void run_command(struct failfast *f) {
    size_t n = 0;
    while (environ[n])
        n++;
    _cleanup_free_ char **env = calloc(n + 3, sizeof(char *));
    _cleanup_free_ char *node = NULL, *why = NULL;
    int r = -ENOMEM;
    if (env && asprintf(&node, "HALO_NODE=%s", f->node->name) >= 0 &&
        asprintf(&why, "HALO_FAILFAST_REASON=%s", f->why) >= 0) {
        size_t k = 0;
        for (size_t i = 0; i < n; i++)
            if (strncmp(environ[i], "HALO_NODE=", 10) != 0 && strncmp(environ[i], "HALO_FAILFAST_REASON=", 21) != 0)
                env[k++] = environ[i];
        env[k++] = node;
        env[k++] = why;
        uv_stdio_container_t stdio[3] = {
            {.flags = UV_IGNORE}, {.flags = UV_INHERIT_FD, .data.fd = 1}, {.flags = UV_INHERIT_FD, .data.fd = 2}};
        uv_process_options_t o = {.exit_cb = on_exit_cb,
                                  .file = f->node->failfast_command[0],
                                  .args = f->node->failfast_command,
                                  .env = env,
                                  .stdio_count = 3,
                                  .stdio = stdio};
        f->proc.data = f;
        r = uv_spawn(f->timer.loop, &f->proc, &o);
        if (r < 0) /* the handle is initialised anyway and must be closed */
            uv_close((uv_handle_t *)&f->proc, on_closed);
        f->handles_open++;
    }
    if (r < 0) {
        log_error("Node failfast: failed to run the failfast command '%s': %s; halod exits",
                  f->node->failfast_command[0], r == -ENOMEM ? strerror(ENOMEM) : uv_strerror(r));
        finished(f);
        return;
    }
    f->spawned = true;
    log_error("Node failfast: running the failfast command '%s' (pid %d)", f->node->failfast_command[0],
              (int)f->proc.pid);
}

void failfast_act(struct failfast *f) {
    if (!f || f->acted)
        return;
    f->acted = true;
    uv_timer_stop(&f->timer);
    switch (f->node->failfast) {
    case CONFIG_FAILFAST_HALT:
        power(f, RB_POWER_OFF, "power-off");
        break;
    case CONFIG_FAILFAST_REBOOT:
        power(f, RB_AUTOBOOT, "reboot");
        break;
    case CONFIG_FAILFAST_COMMAND:
        run_command(f);
        break;
    default:
        finished(f);
        break;
    }
}

static void on_timer(uv_timer_t *t) {
    log_warning("Node failfast: the store did not answer within %d ms; the failfast action runs anyway",
                FAILFAST_WAIT_MSEC);
    failfast_act(t->data);
}

int failfast_new(uv_loop_t *loop, const struct config_node *n, const char *why, void (*done)(void *userdata),
                 void *userdata, struct failfast **ret) {
    struct failfast *f = calloc(1, sizeof(*f));
    if (!f || !(f->why = strdup(why))) {
        free(f);
        return -ENOMEM;
    }
    f->node = n;
    f->done = done;
    f->userdata = userdata;
    uv_timer_init(loop, &f->timer);
    f->timer.data = f;
    f->handles_open = 1;
    uv_timer_start(&f->timer, on_timer, FAILFAST_WAIT_MSEC, 0);
    *ret = f;
    return 0;
}

struct failfast *failfast_free(struct failfast *f) {
    if (!f || f->freeing)
        return NULL;
    f->freeing = true;
    uv_close((uv_handle_t *)&f->timer, on_closed);
    if (f->spawned && !uv_is_closing((uv_handle_t *)&f->proc))
        uv_close((uv_handle_t *)&f->proc, on_closed);
    maybe_free(f);
    return NULL;
}
