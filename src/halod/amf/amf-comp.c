/* SPDX-License-Identifier: MIT */
/*
 * The life cycle of a component's process: spawn with its environment, the
 * instantiate and terminate timeouts, its exit.
 */
#define LOG_AREA LOG_AREA_AMF
#include <errno.h>
#include <limits.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "amf-internal.h"
#include "link-pack.h"
#include "log.h"
#include "macro.h"

void amf_proc_exited(struct proc *p, int status, void *userdata) {
    struct comp *c = userdata;
    char buf[2048];

    if (c->starting && amf_nsa_start_done(c, status))
        return;
    (void)amf_crash_describe(c, proc_pid(p), status, buf, sizeof(buf));
    free(c->last_exit);
    c->last_exit = strdup(buf);
    c->proc = NULL;
    c->pid = 0;
    uv_timer_stop(&c->timer);
    if (!amf_comp_sa_aware(c) && !amf_comp_ocf(c))
        amf_guard_end(c); /* its process is gone */
    amf_notify_comp(c, AMF_COMP_EXITED, buf);
    if (c->restart_in_place && !c->restart_spawned && !c->su->failing && !c->amf->stopping) {
        log_debug("Component '%s' (%s) %s; it restarts in place", c->name, c->su->name, buf);
        amf_ladder_comp_gone(c);
        return;
    }
    if (c->su->failing || c->amf->stopping || c->presence == PRESENCE_TERMINATING) {
        log_debug("Component '%s' (%s) %s", c->name, c->su->name, buf);
        c->presence = c->su->oper == SU_DISABLED ? PRESENCE_FAILED : PRESENCE_UNINSTANTIATED;
        if (c->amf->stopping)
            amf_stop_check(c->amf);
        else if (c->su->failing)
            amf_su_failure_settled(c->su);
        else if (!amf_comp_sa_aware(c))
            amf_nsa_stopped(c);
        else if (!amf_admin_comp_stopped(c)) /* an operator's lock-instantiation */
            amf_comp_fail(c, "ended after terminate");
        return;
    }
    amf_comp_fail(c, buf);
}

void amf_comp_on_timer(uv_timer_t *t) {
    struct comp *c = t->data;
    char buf[32];
    if (c->spawn_deferred) { /* its turn to be spawned, unless its unit stopped meanwhile */
        c->spawn_deferred = false;
        if (!c->amf->stopping && !c->su->failing && c->su->oper != SU_DISABLED &&
            c->su->admin != SU_LOCKED_INSTANTIATION)
            amf_comp_instantiate(c);
    } else if (amf_comp_proxied(c))
        amf_proxied_on_timer(c);
    else if (!amf_comp_sa_aware(c))
        amf_nsa_on_timer(c);
    else if (c->presence == PRESENCE_INSTANTIATING)
        amf_comp_fail(c, "did not register within its instantiate timeout");
    else if (c->presence == PRESENCE_TERMINATING && c->proc) {
        log_warning("Component '%s' did not exit within %s of terminate; killing it", c->name,
                    format_duration(buf, sizeof(buf), c->cfg->timeouts.terminate));
        (void)proc_kill(c->proc, SIGKILL);
    }
}

/* own_output: its stdout and stderr where the component's `stdout` says (its command, and a
 * non-SA-aware one's terminate and cleanup); else halod's, or captured. */
static int comp_spawn(struct comp *c, char *const *argv, char *const *extra, size_t n_extra, bool capture,
                      bool own_output, bool owned, proc_exit_cb cb, struct proc **ret) {
    const struct config_component *cc = c->cfg;
    char **env = calloc(cc->n_env + n_extra + 1, sizeof(char *));
    _cleanup_free_ char *owner = NULL;
    const struct config_ids *ids = &cc->ids;
    struct spawn_params sp = {.path = argv[0],
                              .argv = argv,
                              .env = env,
                              .workdir = cc->workdir,
                              .capture = capture,
                              .output_tag = own_output && cc->output == CONFIG_OUTPUT_JOURNAL ? c->name : NULL,
                              .output_file = own_output && cc->output == CONFIG_OUTPUT_FILE ? cc->output_file : NULL,
                              .set_uid = ids->set_uid,
                              .set_gid = ids->set_gid,
                              .uid = ids->uid,
                              .gid = ids->gid,
                              .groups = ids->groups,
                              .n_groups = ids->n_groups};
    size_t k = 0;
    int r = -ENOMEM;

    if (!env)
        return -ENOMEM;
    /* First in its environment, where the next halod's bounded read of each process's finds it. */
    if (owned && c->amf->owner && asprintf(&owner, "HALO_OWNER=%s@%s", c->name, c->amf->owner) < 0) {
        owner = NULL;
        goto out;
    }
    sp.env_first = owner;
    for (; k < cc->n_env; k++)
        if (asprintf(&env[k], "%s=%s", cc->env[k].name, cc->env[k].value) < 0) {
            env[k] = NULL;
            goto out;
        }
    if (n_extra) /* the caller's: only the first k are freed */
        memcpy(env + k, extra, n_extra * sizeof(char *));
    r = supervisor_spawn(c->amf->sup, &sp, cb, c, ret);
out:
    for (size_t i = 0; i < k; i++)
        free(env[i]);
    free(env);
    return r;
}

int amf_comp_spawn(struct comp *c, char *const *argv, char *const *extra, size_t n_extra, bool owned, proc_exit_cb cb,
                   struct proc **ret) {
    return comp_spawn(c, argv, extra, n_extra, false, true, owned, cb, ret);
}

int amf_comp_spawn_capture(struct comp *c, char *const *argv, char *const *extra, size_t n_extra, bool capture,
                           proc_exit_cb cb, struct proc **ret) {
    return comp_spawn(c, argv, extra, n_extra, capture, false, false, cb, ret);
}

/*
 * A spawn is a fork() of halod: 5 to 40 ms each on a paravirtualised machine with a halod of
 * 70 MB.  Hundreds at once (a node's start, or its restart after a fence, with 333 components)
 * held the loop for seconds: every new process's hello timed out, and it was restarted again,
 * for ever.  So once 8 were spawned in one loop iteration, the spawns take 20 ms at most; the
 * components after wait 1 ms on their timer, that is the next iteration, once the loop has
 * read what came meanwhile.  (A few spawns are never put off: a slow fork, as under the
 * sanitizers, does not change when a small node's components start.)
 */
#define SPAWN_SLICE_USEC (20 * USEC_PER_MSEC)
#define SPAWN_SLICE_MIN 8 /* spawned in one iteration before the slice counts: a few are never put off */

static bool spawn_later(struct comp *c) {
    struct amf *a = c->amf;
    uint64_t t = uv_now(a->loop);
    if (a->spawn_slice_loop_ms != t) {
        a->spawn_slice_loop_ms = t;
        a->spawn_slice_spent = 0;
        a->spawn_slice_n = 0;
    }
    if (a->spawn_slice_n < SPAWN_SLICE_MIN || a->spawn_slice_spent < SPAWN_SLICE_USEC)
        return false;
    c->spawn_deferred = true;
    uv_timer_start(&c->timer, amf_comp_on_timer, 1, 0);
    return true;
}

void amf_comp_instantiate(struct comp *c) {
    struct amf *a = c->amf;
    if (c->spawn_deferred) { /* asked again before its turn: once */
        c->spawn_deferred = false;
        uv_timer_stop(&c->timer);
    }
    if (c->removing || c->removed) {
        /* A reload removed it (its unit restarted meanwhile): it never starts again. */
        c->restart_in_place = c->restart_at_once = c->restart_spawned = false;
        amf_comp_removal_step(c);
        return;
    }
    amf_comp_take_cfg(c);
    if (amf_comp_proxied(c)) {
        amf_proxied_instantiate(c); /* no process: its proxy acts for it */
        return;
    }
    if (!amf_comp_sa_aware(c)) {
        amf_nsa_ready(c); /* started only for an ACTIVE assignment */
        return;
    }
    if (c->proc) {
        /* Never a second copy beside the first: the unit's restart starts it
         * once the first is gone. */
        log_warning("Component '%s' runs already as pid %d: not starting another copy", c->name, (int)c->pid);
        return;
    }
    if (spawn_later(c))
        return;
    c->adopted = false;
    c->object_states = false;
    /* A new process: the link of the one that ended, whose close may come after (the pidfd
     * first), is not its link; closing, it must not fail this one (a reload's restart in
     * place failed the unit over, in CI of 382e775). */
    c->conn = NULL;
    const struct config_component *cc = c->cfg;
    char **argv = calloc(cc->n_args + 2, sizeof(char *));
    char env_sock[PATH_MAX + 16], env_comp[CONFIG_NAME_MAX + 32], env_node[CONFIG_NAME_MAX + 16],
        env_crash[PATH_MAX + 32];
    int r = -ENOMEM;

    if (argv) {
        argv[0] = cc->command;
        for (size_t i = 0; i < cc->n_args; i++)
            argv[i + 1] = cc->args[i];
        snprintf(env_sock, sizeof(env_sock), "HALO_SOCKET=%s", a->socket_path);
        snprintf(env_comp, sizeof(env_comp), "HALO_COMPONENT=%s", c->name);
        snprintf(env_node, sizeof(env_node), "HALO_NODE=%s", a->node);
        char *const extra[] = {env_sock, env_comp, env_node, env_crash};
        bool crash = amf_crash_env(c, env_crash, sizeof(env_crash));
        usec_t t0 = now_monotonic_usec();
        r = amf_comp_spawn(c, argv, extra, ELEMENTSOF(extra) - !crash, true, amf_proc_exited, &c->proc);
        a->spawn_slice_spent += now_monotonic_usec() - t0;
        a->spawn_slice_n++;
    }
    free(argv);
    if (r < 0) {
        (void)log_full_fields(LOG_ERR_, r, AMF_FIELDS_COMP(c, NULL), "Failed to spawn component '%s': %m", c->name);
        c->proc = NULL;
        /* A run that did not even start is no stable one: the restart delay grows as after a crash. */
        c->spawned_at = now_monotonic_usec();
        amf_su_fail(c->su, "spawn failed");
        return;
    }
    c->pid = proc_pid(c->proc);
    c->presence = PRESENCE_INSTANTIATING;
    c->spawned_at = now_monotonic_usec();
    c->restarts++;
    log_info_fields(AMF_FIELDS_COMP(c, NULL), "Started component '%s' as pid %d", c->name, (int)c->pid);
    uv_timer_start(&c->timer, amf_comp_on_timer, cc->timeouts.instantiate / 1000, 0);
    amf_notify_comp(c, AMF_COMP_SPAWNED, NULL);
}

void amf_comp_terminate(struct comp *c) {
    if (c->spawn_deferred) { /* not spawned yet: it never will be */
        c->spawn_deferred = false;
        uv_timer_stop(&c->timer);
    }
    if (amf_comp_proxied(c)) {
        amf_proxied_terminate(c);
        return;
    }
    if (!amf_comp_sa_aware(c)) {
        amf_nsa_stop(c); /* an OCF resource may be up without a process */
        return;
    }
    if (!c->proc)
        return;
    c->presence = PRESENCE_TERMINATING;
    amf_hc_stop_all(c);
    amf_monitor_cancel(c);
    uv_timer_start(&c->timer, amf_comp_on_timer, c->cfg->timeouts.terminate / 1000, 0);
    if (!c->conn) {
        (void)proc_kill(c->proc, SIGTERM);
        return;
    }
    struct invocation *inv = amf_inv_new(c, INV_TERMINATE, c->cfg->timeouts.terminate);
    if (!inv) {
        (void)proc_kill(c->proc, SIGKILL);
        return;
    }
    uint8_t buf[LINK_MSG_MAX];
    amf_comp_send(c, buf, link_pack_terminate(inv->id, c->name, buf, sizeof(buf)));
}
