/* SPDX-License-Identifier: MIT */
/*
 * External active monitoring (SA Forum AMF's EAM): a command halod runs every
 * period while the component is instantiated (a non-SA-aware one: while its
 * process runs, ACTIVE), or an OCF agent's monitor action.  A run that exits
 * non-zero or outlives its timeout (its process group is killed) is an error
 * report of the component, recovered as any failure of it is.  One run at a
 * time; a run of an earlier incarnation of the component counts for nothing.
 * `haloctl eam-stop` and `eam-start` stop and start it.
 */
#define LOG_AREA LOG_AREA_AMF
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "amf-internal.h"
#include "log.h"
#include "macro.h"
#include "strprintf.h"

#define MONITOR_DEFAULT_PERIOD (10 * USEC_PER_SEC)
#define MONITOR_DEFAULT_TIMEOUT (20 * USEC_PER_SEC)

static bool configured(const struct comp *c) {
    return c->cfg->monitor.command || amf_comp_ocf(c);
}

static usec_t period(const struct comp *c) {
    return amf_comp_ocf(c) ? c->ocf.monitor_interval : c->cfg->monitor.period ?: MONITOR_DEFAULT_PERIOD;
}

static usec_t timeout(const struct comp *c) {
    return amf_comp_ocf(c) ? c->ocf.monitor_timeout : c->cfg->monitor.timeout ?: MONITOR_DEFAULT_TIMEOUT;
}

/* Whether the incarnation it was armed for is still the one that runs. */
static bool current(const struct comp *c) {
    return c->presence == PRESENCE_INSTANTIATED && !c->su->failing && !c->amf->stopping &&
           c->restarts == c->monitor.incarnation && !c->monitor.stopped &&
           (!amf_comp_ocf(c) || (c->ocf.up && !c->proc && !c->helper));
}

static void on_timer(uv_timer_t *t);

static void on_exit_(struct proc *p, int status, void *userdata) {
    struct comp *c = userdata;
    char why[512], out[256];

    c->monitor.proc = NULL;
    uv_timer_stop(&c->monitor.timer);
    if (!current(c))
        return;
    if (status == 0) {
        uv_timer_start(&c->monitor.timer, on_timer, period(c) / 1000, 0);
        return;
    }
    if (amf_comp_ocf(c))
        amf_ocf_failure(p, "monitor", status, why, sizeof(why));
    else {
        char st[128];
        proc_status_to_string(status, st, sizeof(st));
        ssize_t n = proc_output(p, out, sizeof(out), true);
        while (n > 0 && (out[n - 1] == '\n' || out[n - 1] == ' '))
            out[--n] = '\0';
        char *last = n > 0 ? strrchr(out, '\n') : NULL;
        snprintf(why, sizeof(why), "failed its monitor: the monitor command %s%s%s", st, n > 0 ? ": " : "",
                 n > 0 ? (last ? last + 1 : out) : "");
    }
    amf_comp_fail(c, why);
}

static void run(struct comp *c) {
    int r;
    if (amf_comp_ocf(c))
        r = amf_ocf_run(c, "monitor", timeout(c), period(c), on_exit_, &c->monitor.proc);
    else {
        char *env[3] = {strprintf("HALO_COMPONENT=%s", c->name), strprintf("HALO_NODE=%s", amf_node(c->amf)),
                        strprintf("HALO_PID=%d", (int)c->pid)};
        r = env[0] && env[1] && env[2] ? amf_comp_spawn_capture(c, c->cfg->monitor.command, env, ELEMENTSOF(env), true,
                                                                on_exit_, &c->monitor.proc)
                                       : -ENOMEM;
        for (size_t i = 0; i < ELEMENTSOF(env); i++)
            free(env[i]);
    }
    if (r < 0) {
        c->monitor.proc = NULL;
        log_error_errno(r, "Failed to run the monitor of component '%s': %m; trying again in one period", c->name);
        uv_timer_start(&c->monitor.timer, on_timer, period(c) / 1000, 0);
        return;
    }
    uv_timer_start(&c->monitor.timer, on_timer, timeout(c) / 1000, 0);
}

static void on_timer(uv_timer_t *t) {
    struct comp *c = t->data;
    if (!c->monitor.proc) {
        if (current(c))
            run(c);
        return;
    }
    /* The run outlived its timeout: its whole group goes, and its end counts for nothing. */
    char buf[32], why[96];
    (void)proc_kill(c->monitor.proc, SIGKILL);
    proc_detach(c->monitor.proc);
    c->monitor.proc = NULL;
    if (!current(c))
        return;
    snprintf(why, sizeof(why), "failed its monitor: no answer within its timeout (%s)",
             format_duration(buf, sizeof(buf), timeout(c)));
    amf_comp_fail(c, why);
}

void amf_monitor_init(struct comp *c) {
    uv_timer_init(c->amf->loop, &c->monitor.timer);
    c->monitor.timer.data = c;
}

void amf_monitor_close(struct comp *c) {
    if (c->monitor.proc)
        proc_detach(c->monitor.proc);
    uv_close((uv_handle_t *)&c->monitor.timer, NULL);
}

void amf_monitor_cancel(struct comp *c) {
    uv_timer_stop(&c->monitor.timer);
    if (c->monitor.proc) {
        (void)proc_kill(c->monitor.proc, SIGKILL);
        proc_detach(c->monitor.proc);
        c->monitor.proc = NULL;
    }
}

void amf_monitor_arm(struct comp *c) {
    if (!configured(c) || !c->su->local || c->monitor.stopped)
        return;
    amf_monitor_cancel(c);
    c->monitor.incarnation = c->restarts;
    uv_timer_start(&c->monitor.timer, on_timer, period(c) / 1000, 0);
}

static struct comp *eam_comp(struct amf *a, const char *name, int *ret) {
    struct comp *c = amf_find_comp(a, name);
    *ret = !c || !c->su->local ? -HALO_EUNKNOWN : !configured(c) ? -HALO_EBADSTATE : 0;
    return *ret < 0 ? NULL : c;
}

int amf_comp_eam_stop(struct amf *a, const char *name) {
    int r;
    struct comp *c = eam_comp(a, name, &r);
    if (!c)
        return r;
    if (c->monitor.stopped)
        return -HALO_EEXIST;
    log_info("External monitoring of component '%s' stopped by the operator", c->name);
    c->monitor.stopped = true;
    amf_monitor_cancel(c);
    return 0;
}

int amf_comp_eam_start(struct amf *a, const char *name) {
    int r;
    struct comp *c = eam_comp(a, name, &r);
    if (!c)
        return r;
    if (!c->monitor.stopped)
        return -HALO_EEXIST;
    log_info("External monitoring of component '%s' started by the operator", c->name);
    c->monitor.stopped = false;
    if (c->presence == PRESENCE_INSTANTIATED && !c->su->failing)
        amf_monitor_arm(c);
    return 0;
}

const char *amf_comp_monitor_state(const struct comp *c) {
    return !configured(c) ? NULL : c->monitor.stopped ? "stopped" : "enabled";
}
