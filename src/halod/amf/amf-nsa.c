/* SPDX-License-Identifier: MIT */
/*
 * Non-SA-aware components: unmodified programs that know nothing of halo.
 * halod carries out their one CSI itself: the process runs while the unit
 * holds the CSI ACTIVE (cold standby) and is stopped for anything else.  A
 * CSI set or remove is an invocation like any other (its timeout, its
 * cancellation by a failure), answered by halod once the process runs (ACTIVE)
 * or is gone (STANDBY, QUIESCING, remove); the answer comes from the next turn
 * of the loop, never inside the call that asked.  The process ending by
 * itself is a failure of the component, as for any other.
 *
 * What a later kind of component driven by commands needs (an OCF agent's
 * start, stop and monitor) is here already: a step is "run this, then
 * answer", the stop is a command or a signal bounded by timeouts.terminate,
 * and a cleanup runs once a failed process is gone, before anything takes its
 * place.
 */
#define LOG_AREA LOG_AREA_AMF
#include <ctype.h>
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "amf-internal.h"
#include "log.h"
#include "macro.h"
#include "parse-util.h"
#include "strprintf.h"

/* The CSI c takes (the description gives a non-SA-aware component exactly one) and its SI. */
static const struct config_csi *comp_csi(struct comp *c, struct si **ret_si) {
    struct sg *sg = c->su->sg;
    for (size_t i = 0; i < sg->n_sis; i++)
        for (size_t k = 0; k < sg->sis[i].cfg->n_csis; k++) {
            const struct config_csi *csi = &sg->sis[i].cfg->csis[k];
            if (amf_csi_comp(c->su, csi) == c) {
                if (ret_si)
                    *ret_si = &sg->sis[i];
                return csi;
            }
        }
    return NULL;
}

/* "HALO_CSI_<CSI>_<ATTR>=value": upper-cased, every character but letters and digits as '_'. */
static char *csi_env(const char *csi, const char *attr, const char *value) {
    char *s = strprintf("HALO_CSI_%s_%s=%s", csi, attr, value);
    char *end = s ? s + strlen("HALO_CSI_") + strlen(csi) + 1 + strlen(attr) : NULL;
    for (char *p = s ? s + strlen("HALO_CSI_") : NULL; p && p < end; p++)
        *p = isalnum((unsigned char)*p) ? (char)toupper((unsigned char)*p) : '_';
    return s;
}

/*
 * The environment of c's commands over the description's env: HALO_COMPONENT,
 * HALO_NODE, every attribute of its CSI, and HALO_HA_STATE (the command) or
 * HALO_PID (terminate and cleanup: the process they act on).  NULL-terminated;
 * *ret_n entries to free.  0 or -ENOMEM.
 */
static int env_build(struct comp *c, const char *ha_state, pid_t pid, char ***ret, size_t *ret_n) {
    const struct config_csi *csi = comp_csi(c, NULL);
    size_t n_attrs = csi ? csi->n_attrs : 0, n = 0;
    char **env = calloc(n_attrs + 4, sizeof(char *));
    if (!env)
        return -ENOMEM;
    env[n++] = strprintf("HALO_COMPONENT=%s", c->name);
    env[n++] = strprintf("HALO_NODE=%s", amf_node(c->amf));
    env[n++] = ha_state ? strprintf("HALO_HA_STATE=%s", ha_state) : strprintf("HALO_PID=%d", (int)pid);
    for (size_t i = 0; i < n_attrs; i++)
        env[n++] = csi_env(csi->name, csi->attrs[i].name, csi->attrs[i].value);
    return amf_env_finish(env, n, ret, ret_n);
}

int amf_env_finish(char **env, size_t n, char ***ret, size_t *ret_n) {
    for (size_t i = 0; i < n; i++)
        if (!env[i]) {
            amf_env_free(env, n);
            return -ENOMEM;
        }
    *ret = env;
    *ret_n = n;
    return 0;
}

void amf_env_free(char **env, size_t n) {
    for (size_t i = 0; env && i < n; i++)
        free(env[i]);
    free(env);
}

/* Runs argv for c (ha_state: the command, with HALO_HA_STATE; else a helper, with HALO_PID). */
static int run(struct comp *c, char *const *argv, const char *ha_state, proc_exit_cb cb, struct proc **ret) {
    char **env;
    size_t n;
    int r = env_build(c, ha_state, c->last_pid, &env, &n);
    if (r < 0)
        return r;
    r = amf_comp_spawn(c, argv, env, n, ha_state != NULL, cb, ret); /* the command is its process */
    amf_env_free(env, n);
    return r;
}

/* The CSI set or remove in flight for c and not answered yet: the newest one. */
static struct invocation *pending_inv(struct comp *c) {
    struct invocation *i;
    LIST_FOREACH (invs, i, &c->amf->invs)
        if (i->comp == c && (i->kind == INV_CSI_SET || i->kind == INV_CSI_REMOVE) && !i->answered)
            return i;
    return NULL;
}

static void helper_exited(struct proc *p, int status, void *userdata);
static void progress(struct comp *c);
static void after_stop(struct comp *c);

/* Whether c holds anything: its process, or an OCF resource it started. */
static bool present(const struct comp *c) {
    return c->proc || c->ocf.up;
}

/* Whether a failure of c needs a cleanup: its cleanup command, or an OCF agent's stop. */
static bool has_cleanup(const struct comp *c) {
    return c->cfg->cleanup || amf_comp_ocf(c);
}

/* "terminate command", "OCF stop action"... for the log. */
static const char *helper_name(const struct comp *c, bool cleanup) {
    if (amf_comp_ocf(c))
        return cleanup ? "OCF stop action (cleanup)" : "OCF stop action";
    return cleanup ? "cleanup command" : "terminate command";
}

/* The stop, or what is left of it: SIGTERM and SIGKILL, or an OCF agent's stop. */
static usec_t stop_timeout(const struct comp *c) {
    return amf_comp_ocf(c) ? c->ocf.stop : c->cfg->timeouts.terminate;
}

static void start_helper(struct comp *c, bool cleanup) {
    char *const *argv = cleanup ? c->cfg->cleanup : c->cfg->terminate;
    int r = amf_comp_ocf(c) ? amf_ocf_run(c, "stop", c->ocf.stop, 0, helper_exited, &c->helper)
                            : run(c, argv, NULL, helper_exited, &c->helper);
    if (r < 0) {
        log_error_errno(r, "Failed to run the %s of component '%s': %m", helper_name(c, cleanup), c->name);
        c->helper = NULL;
        return;
    }
    c->helper_cleanup = cleanup;
    log_info("Running the %s of component '%s' (pid %d)", helper_name(c, cleanup), c->name, (int)proc_pid(c->helper));
    if (cleanup) /* bounded like a stop */
        uv_timer_start(&c->timer, amf_comp_on_timer, stop_timeout(c) / 1000, 0);
}

/* An OCF agent's stop or cleanup ended: its resource is gone, or its stop failed. */
static bool ocf_stop_done(struct comp *c, struct proc *p, int status, bool cleanup) {
    char why[640];
    c->ocf.probed = true; /* what a probe found running is stopped, or its failure is recovered */
    if (status == 0) {
        c->ocf.up = false;
        amf_guard_end(c); /* its resource is down */
        if (!cleanup && c->presence == PRESENCE_TERMINATING)
            c->presence = c->su->oper == SU_DISABLED ? PRESENCE_FAILED : PRESENCE_UNINSTANTIATED;
        if (!cleanup)
            c->unclean = false;
        return false;
    }
    amf_ocf_failure(p, "stop", status, why, sizeof(why));
    free(c->last_exit);
    c->last_exit = strdup(why);
    if (c->amf->stopping) {
        log_error("Component '%s': %s; its resource may still be held", c->name, why);
        return false;
    }
    if (cleanup) {
        /* Its resource may still be held: nothing of it starts here again until an operator looks. */
        log_error_fields(AMF_FIELDS_COMP(c, AMF_MESSAGE_ID_SU_DISABLED),
                         "Component '%s': %s; service unit '%s' is disabled until 'haloctl repair %s'", c->name, why,
                         c->su->name, c->su->name);
        c->su->oper = SU_DISABLED;
        c->presence = PRESENCE_FAILED;
        amf_notify_su(c->su, AMF_SU_ADMIN);
        return false;
    }
    if (c->su->failing)
        return false;
    /* A stop that failed: a failure of the component, whose cleanup is the stop once more. */
    amf_comp_fail(c, why);
    return true;
}

static void helper_exited(struct proc *p, int status, void *userdata) {
    struct comp *c = userdata;
    struct amf *a = c->amf;
    char buf[128];
    bool cleanup = c->helper_cleanup, probe_stop = amf_comp_ocf(c) && !c->ocf.probed;

    c->helper = NULL;
    if (amf_comp_ocf(c))
        amf_ocf_status_to_string(status, buf, sizeof(buf));
    else
        proc_status_to_string(status, buf, sizeof(buf));
    if (status == 0)
        log_info("The %s of component '%s' %s%s", helper_name(c, cleanup), c->name, amf_comp_ocf(c) ? "ended: " : "",
                 buf);
    else
        log_warning("The %s of component '%s' %s%s", helper_name(c, cleanup), c->name, amf_comp_ocf(c) ? "ended: " : "",
                    buf);
    if (cleanup || !c->proc)
        uv_timer_stop(&c->timer); /* what it bounded is over */
    if (amf_comp_ocf(c) && ocf_stop_done(c, p, status, cleanup))
        return;
    if (amf_comp_ocf(c) && !cleanup && status == 0 && c->restart_in_place && !a->stopping && !c->su->failing) {
        amf_ladder_comp_gone(c); /* an operator's restart in place: its start again, with its CSI */
        return;
    }
    if (probe_stop && !a->stopping && !c->su->failing) {
        /* What the probe found running is stopped: the unit may be in service, and the models go on. */
        amf_su_adoption_check(c->su);
        amf_nsa_ready(c);
        return;
    }
    if (!cleanup && status != 0 && c->proc) {
        /* It could not stop it: as when it takes too long. */
        c->killed = true;
        (void)proc_kill(c->proc, SIGKILL);
    }
    if (a->stopping)
        amf_stop_check(a);
    else if (c->su->failing)
        amf_su_failure_settled(c->su);
    else if (!cleanup && !c->proc)
        after_stop(c);
    else
        progress(c);
}

/* The pid a pidfile names: decimal digits, a newline after them allowed.  0 or -errno. */
static int pidfile_read(const char *path, pid_t *ret) {
    _cleanup_close_ int fd = open(path, O_RDONLY | O_CLOEXEC | O_NONBLOCK | O_NOCTTY);
    struct stat st;
    char buf[32];
    uint64_t pid;

    if (fd < 0)
        return -errno;
    if (fstat(fd, &st) < 0)
        return -errno;
    if (!S_ISREG(st.st_mode))
        return -EBADF;
    ssize_t n = read(fd, buf, sizeof(buf));
    if (n < 0)
        return -errno;
    while (n > 0 && (buf[n - 1] == '\n' || buf[n - 1] == ' '))
        n--;
    int r = parse_u64_n(buf, (size_t)n, &pid);
    if (r < 0)
        return r;
    if (pid <= 1 || pid > INT32_MAX || (pid_t)pid == getpid())
        return -ERANGE;
    *ret = (pid_t)pid;
    return 0;
}

/* c serves as a registered component would: published ONLINE (recovery-local), as at a registration. */
static void serves(struct comp *c) {
    amf_notify_comp(c, AMF_COMP_REGISTERED, NULL);
}

static void started(struct comp *c) {
    struct invocation *inv = pending_inv(c);
    c->presence = PRESENCE_INSTANTIATED;
    amf_monitor_arm(c);
    serves(c);
    if (inv && inv->kind == INV_CSI_SET && inv->state == HALO_HA_ACTIVE)
        amf_inv_succeed_soon(inv);
    else if (amf_comp_ocf(c))
        progress(c); /* its CSI went while it started */
}

/* An OCF agent's start ended: its resource is up, or its start failed (a failure of c). */
static void ocf_start_done(struct comp *c, int status) {
    char why[640];
    uv_timer_stop(&c->timer);
    if (status != 0)
        amf_ocf_failure(c->proc, "start", status, why, sizeof(why));
    c->proc = NULL; /* the action, not the resource */
    c->pid = 0;
    if (status != 0) {
        free(c->last_exit);
        c->last_exit = strdup(why);
        amf_comp_fail(c, why); /* its cleanup, the stop action, runs before anything takes its place */
        return;
    }
    log_info_fields(AMF_FIELDS_COMP(c, NULL), "Component '%s' started (OCF start of %s:%s succeeded)", c->name,
                    c->cfg->ocf_provider, c->cfg->ocf_type);
    c->ocf.up = true;
    started(c);
}

bool amf_nsa_start_done(struct comp *c, int status) {
    char buf[PATH_MAX + 96];
    pid_t pid = 0;

    c->starting = false;
    if (amf_comp_ocf(c) && c->amf->stopping) {
        /* halod stops while the agent started it: whatever the start did, the stop undoes. */
        uv_timer_stop(&c->timer);
        c->proc = NULL;
        c->pid = 0;
        start_helper(c, true);
        if (!c->helper)
            amf_stop_check(c->amf);
        return true;
    }
    if (c->su->failing || c->amf->stopping || c->presence == PRESENCE_TERMINATING)
        return false; /* its end is the component's process ending */
    if (amf_comp_ocf(c)) {
        ocf_start_done(c, status);
        return true;
    }
    if (status != 0)
        return false;
    uv_timer_stop(&c->timer);
    int r = pidfile_read(c->cfg->pidfile, &pid);
    if (r >= 0)
        r = supervisor_adopt(c->amf->sup, pid, amf_proc_exited, c, &c->proc);
    if (r < 0) {
        /* The start command's process is ending: it is not the component's any more. */
        c->proc = NULL;
        c->pid = 0;
        snprintf(buf, sizeof(buf), "left no running process in its pidfile '%s' (%s)", c->cfg->pidfile,
                 r == -ESRCH ? "no such process" : strerror(-r));
        free(c->last_exit);
        c->last_exit = strdup(buf);
        amf_comp_fail(c, buf);
        return true;
    }
    log_info("Component '%s' runs as pid %d (from its pidfile)", c->name, (int)pid);
    c->pid = c->last_pid = pid;
    amf_notify_comp(c, AMF_COMP_SPAWNED, NULL); /* recorded: the next halod adopts the daemon */
    started(c);
    return true;
}

/* Starts c's command for si's ACTIVE; false when that failed c. */
static bool start(struct comp *c) {
    amf_comp_take_cfg(c);
    const struct config_component *cc = c->cfg;
    char **argv = calloc(cc->n_args + 2, sizeof(char *));
    int r = -ENOMEM;

    /* A stale pidfile would name another process. */
    if (cc->pidfile && unlink(cc->pidfile) < 0 && errno != ENOENT)
        log_warning_errno(errno, "Failed to remove the old pidfile '%s' of component '%s': %m", cc->pidfile, c->name);
    if (amf_comp_ocf(c)) {
        /* Guarded before its start runs: a half-started resource is stopped too if halod goes. */
        r = amf_guard_begin(c, 0);
        if (r >= 0)
            r = amf_ocf_run(c, "start", c->ocf.start, 0, amf_proc_exited, &c->proc);
    } else if (argv) {
        argv[0] = cc->command;
        for (size_t i = 0; i < cc->n_args; i++)
            argv[i + 1] = cc->args[i];
        r = run(c, argv, "ACTIVE", amf_proc_exited, &c->proc);
    }
    free(argv);
    c->spawned_at = now_monotonic_usec();
    if (r < 0) {
        char buf[128];
        c->proc = NULL;
        log_error_errno(r, "Failed to start component '%s': %m", c->name);
        snprintf(buf, sizeof(buf), "could not be started (%s)", strerror(-r));
        amf_comp_fail(c, buf);
        return false;
    }
    c->pid = c->last_pid = proc_pid(c->proc);
    c->restarts++;
    c->unclean = true;
    c->killed = false;
    c->adopted = false;
    if (amf_comp_ocf(c)) {
        /* Present once its start exits 0; the action is no process to adopt after a restart of halod. */
        log_info("Starting component '%s': OCF start of %s:%s (pid %d)", c->name, cc->ocf_provider, cc->ocf_type,
                 (int)c->pid);
        c->starting = true;
        c->presence = PRESENCE_INSTANTIATING;
        uv_timer_start(&c->timer, amf_comp_on_timer, c->ocf.start / 1000, 0);
        return true;
    }
    log_info_fields(AMF_FIELDS_COMP(c, NULL), "Started component '%s' as pid %d", c->name, (int)c->pid);
    r = amf_guard_begin(c, c->pid);
    if (r < 0) {
        char buf[128];
        /* Unguarded, it could outlive a killed halod into another node's ACTIVE: it does not run. */
        log_error_errno(r, "Failed to guard component '%s': %m; stopping it", c->name);
        c->killed = true;
        (void)proc_kill(c->proc, SIGKILL);
        snprintf(buf, sizeof(buf), "could not be guarded (%s)", strerror(-r));
        amf_comp_fail(c, buf);
        return false;
    }
    amf_notify_comp(c, AMF_COMP_SPAWNED, NULL);
    if (cc->pidfile) {
        /* Its own process is the start command; the daemon's pid comes from the pidfile once it exits 0. */
        c->starting = true;
        c->presence = PRESENCE_INSTANTIATING;
        uv_timer_start(&c->timer, amf_comp_on_timer, cc->timeouts.instantiate / 1000, 0);
        return true;
    }
    started(c);
    return true;
}

/* An OCF resource stops by its agent's stop action; a start in flight is killed, and its cleanup stops it. */
static void ocf_stop(struct comp *c) {
    c->presence = PRESENCE_TERMINATING;
    amf_monitor_cancel(c);
    uv_timer_start(&c->timer, amf_comp_on_timer, c->ocf.stop / 1000, 0);
    if (c->proc) {
        c->killed = true;
        (void)proc_kill(c->proc, SIGKILL);
        return;
    }
    if (!c->helper)
        start_helper(c, false);
    if (!c->helper && !c->amf->stopping)
        amf_comp_fail(c, "could not run its OCF stop action");
}

void amf_nsa_stop(struct comp *c) {
    if (!present(c) || c->presence == PRESENCE_TERMINATING)
        return;
    if (amf_comp_ocf(c)) {
        ocf_stop(c);
        return;
    }
    c->presence = PRESENCE_TERMINATING;
    amf_monitor_cancel(c);
    log_info_fields(AMF_FIELDS_COMP(c, NULL), "Stopping component '%s' (pid %d)", c->name, (int)c->pid);
    uv_timer_start(&c->timer, amf_comp_on_timer, c->cfg->timeouts.terminate / 1000, 0);
    if (c->cfg->terminate && !c->starting && !c->helper) {
        start_helper(c, false);
        if (c->helper)
            return;
    }
    (void)proc_kill(c->proc, SIGTERM);
}

void amf_nsa_on_timer(struct comp *c) {
    char buf[32];
    if (c->ocf.prep) {
        log_warning("The OCF %s action of component '%s' did not end in time; killing it",
                    c->ocf.ready ? "monitor (probe)" : "meta-data", c->name);
        (void)proc_kill(c->ocf.prep, SIGKILL);
        return;
    }
    format_duration(buf, sizeof(buf),
                    c->starting ? (amf_comp_ocf(c) ? c->ocf.start : c->cfg->timeouts.instantiate) : stop_timeout(c));
    if (c->starting) {
        char why[96];
        snprintf(why, sizeof(why), "did not start within its %s timeout (%s)",
                 amf_comp_ocf(c) ? "OCF start" : "instantiate", buf);
        amf_comp_fail(c, why);
        return;
    }
    if (c->proc && c->presence == PRESENCE_TERMINATING) {
        log_warning("Component '%s' did not exit within %s of terminate; killing it", c->name, buf);
        c->killed = true;
        (void)proc_kill(c->proc, SIGKILL);
    }
    if (c->helper) {
        log_warning("The %s of component '%s' did not end within %s; killing it", helper_name(c, c->helper_cleanup),
                    c->name, buf);
        (void)proc_kill(c->helper, SIGKILL);
    }
}

/* Whether c is an OCF component whose meta-data or probe has not ended yet (a reload added it to a running
 * unit, and the same reload's CSI set came meanwhile): its CSI waits, amf_nsa_ready() goes on with it. */
static bool ocf_preparing(const struct comp *c) {
    return amf_comp_ocf(c) && (c->ocf.prep || !c->ocf.ready || !c->ocf.probed);
}

/*
 * The next step of c's CSI in flight: ACTIVE wants its process running, any
 * other state (or a remove) none.  Never two copies: a start waits until the
 * previous process and its terminate or cleanup command are gone.
 */
static void progress(struct comp *c) {
    struct invocation *inv = pending_inv(c);
    if (!inv && c->removing && !c->helper) {
        amf_comp_removal_step(c); /* a reload removes it: stopped, it is gone */
        return;
    }
    if (!inv || c->helper || c->su->failing || c->amf->stopping || ocf_preparing(c))
        return;
    if (inv->kind == INV_CSI_SET && inv->state == HALO_HA_ACTIVE) {
        if (!present(c))
            (void)start(c);
        else if (c->presence == PRESENCE_INSTANTIATED)
            amf_inv_succeed_soon(inv); /* runs already (adopted, or ACTIVE again) */
        return;                        /* else starting, or the previous copy is going */
    }
    if (present(c))
        amf_nsa_stop(c);
    else
        amf_inv_succeed_soon(inv);
}

/* c's process is gone after a stop: its cleanup if it needed SIGKILL, then the next step. */
static void after_stop(struct comp *c) {
    if (c->helper)
        return; /* its terminate command still runs */
    if (c->killed && c->unclean && has_cleanup(c)) {
        c->unclean = false;
        start_helper(c, true);
        if (c->helper)
            return;
    }
    if (!c->killed)
        c->unclean = false; /* a clean stop leaves nothing to clean up */
    progress(c);
}

void amf_nsa_stopped(struct comp *c) {
    if (c->helper) /* its terminate command outlives it: still bounded by the terminate timeout */
        uv_timer_start(&c->timer, amf_comp_on_timer, stop_timeout(c) / 1000, 0);
    after_stop(c);
}

int amf_nsa_csi(struct si *si, struct comp *c, halo_ha_state state) {
    usec_t timeout = state == HALO_HA_ACTIVE ? c->cfg->timeouts.instantiate + c->cfg->timeouts.csi_set
                                             : c->cfg->timeouts.terminate + c->cfg->timeouts.csi_remove;
    /* A newer target replaces one still in flight (several nodes): the older one is done. */
    struct invocation *old = pending_inv(c);
    if (old)
        amf_inv_succeed_soon(old);
    struct invocation *inv = amf_inv_new(c, state ? INV_CSI_SET : INV_CSI_REMOVE, timeout);
    if (!inv)
        return -ENOMEM;
    inv->si = si;
    inv->su = c->su;
    inv->state = state;
    log_debug("CSI %s '%s' %s -> '%s' (non-sa-aware)", state ? "set" : "remove", comp_csi(c, NULL)->name,
              state ? halo_ha_state_to_string(state) : "", c->name);
    progress(c);
    return 0;
}

void amf_nsa_ready(struct comp *c) {
    if (amf_comp_ocf(c) && !amf_ocf_prepare(c))
        return; /* once its meta-data is read */
    if (amf_comp_ocf(c) && !c->proc && !c->helper && c->ocf.up) {
        /* Only a repair starts a unit whose cleanup failed: the operator took care of what it left. */
        log_info("Component '%s': its resource is taken as stopped (repaired)", c->name);
        c->ocf.up = false;
    }
    if (present(c) || c->helper)
        return;
    c->presence = PRESENCE_UNINSTANTIATED;
    c->ocf.joining = false;
    amf_sg_evaluate(c->su->sg); /* its unit may be in service now */
    if (pending_inv(c))
        progress(c); /* its CSI set came while its agent was prepared (a reload added it) */
}

bool amf_nsa_cleanup_due(const struct comp *c) {
    return !amf_comp_sa_aware(c) && ((c->unclean && has_cleanup(c)) || c->helper);
}

bool amf_nsa_cleanup(struct su *su) {
    bool any = false;
    for (size_t i = 0; i < su->n_comps; i++) {
        struct comp *c = &su->comps[i];
        if (amf_comp_sa_aware(c) || !c->unclean)
            continue;
        c->unclean = false;
        if (has_cleanup(c))
            start_helper(c, true);
        any = any || c->helper;
    }
    return any;
}

void amf_nsa_adopted_check(struct comp *c) {
    struct si *si = NULL;
    if (amf_comp_sa_aware(c) || !c->proc || !c->adopted || !comp_csi(c, &si))
        return;
    struct assignment *as = amf_si_find_su(si, c->su);
    if (as && as->target == HALO_HA_ACTIVE) {
        if (amf_guard_begin(c, c->pid) < 0) {
            amf_comp_fail(c, "was adopted, but could not be guarded");
            return;
        }
        serves(c);
        return;
    }
    amf_comp_fail(c, "was left running by the previous halod, but its unit does not hold its CSI ACTIVE");
}

bool amf_nsa_running(const struct comp *c) {
    return (c->proc && !c->starting && !amf_comp_ocf(c)) || (amf_comp_ocf(c) && c->ocf.up && !c->helper);
}

/* Whether c's unit holds c's CSI ACTIVE (restored, for a restarted halod). */
static bool holds_active(struct comp *c) {
    struct si *si = NULL;
    if (!comp_csi(c, &si))
        return false;
    struct assignment *as = amf_si_find_su(si, c->su);
    return as && as->target == HALO_HA_ACTIVE;
}

void amf_nsa_probed(struct comp *c, bool running, const char *failure) {
    struct amf *a = c->amf;
    bool active = holds_active(c);

    if (running || failure) {
        c->ocf.up = true; /* it is, or may be: a stop is due */
        c->unclean = true;
    }
    if (a->stopping || c->su->failing) {
        c->ocf.probed = true;
        if (c->ocf.up && !c->helper)
            start_helper(c, true); /* halod stops: what runs is stopped, as every ACTIVE is */
        if (a->stopping && !c->helper)
            amf_stop_check(a);
        return;
    }
    if (failure) {
        /* A failure: its cleanup, the stop, runs before anything takes its place. */
        c->ocf.probed = true;
        free(c->last_exit);
        c->last_exit = strdup(failure);
        amf_comp_fail(c, failure);
        return;
    }
    if (running && active) {
        c->ocf.probed = true;
        c->adopted = true;
        c->presence = PRESENCE_INSTANTIATED;
        log_notice("Adopting component '%s': its resource runs, and its unit '%s' holds it ACTIVE", c->name,
                   c->su->name);
        if (amf_guard_begin(c, 0) < 0) {
            amf_comp_fail(c, "was adopted, but could not be guarded");
            return;
        }
        amf_monitor_arm(c);
        serves(c);
        amf_su_adoption_check(c->su);
        amf_sg_evaluate(c->su->sg);
        if (pending_inv(c))
            progress(c); /* a reload added it with its CSI, set ACTIVE meanwhile: it runs */
        return;
    }
    if (running) {
        /* Stopped before any unit of its group may be given ACTIVE (ocf_probing(), amf-reconcile.c): never two. */
        log_warning("Component '%s': its resource runs, but its unit '%s' does not hold it ACTIVE; stopping it",
                    c->name, c->su->name);
        c->presence = PRESENCE_INSTANTIATED;
        ocf_stop(c);
        return;
    }
    c->ocf.probed = true;
    c->ocf.up = false;
    if (active && !c->ocf.joining) {
        c->ocf.up = c->unclean = true; /* whatever is left of it: its cleanup stops it */
        amf_comp_fail(c, "is not running (OCF probe: not running), though its unit held its CSI ACTIVE");
        return;
    }
    amf_su_adoption_check(c->su);
    amf_nsa_ready(c);
}
