/* SPDX-License-Identifier: MIT */
/*
 * What a previous halod left, taken back before this one serves: locked and
 * disabled units, the processes it started (adopted, or killed when they
 * cannot be), the generation and ACTIVE unit of each SI.
 */
#define LOG_AREA LOG_AREA_AMF
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "amf-internal.h"
#include "log.h"
#include "macro.h"
#include "process-util.h"

unsigned long long amf_comp_starttime(const struct comp *c) {
    return c->pid ? process_start_time(c->pid) : 0;
}

/* SIGKILLs the leftover process pid of the component name (its process group, if it leads one) and waits
 * for its end. */
static void kill_leftover(const char *name, pid_t pid) {
    /* Its pidfd polls readable once it has exited, reaped or not (it is not our child). */
    int pidfd = process_pidfd_open(pid);
    if (kill(-pid, SIGKILL) < 0)
        (void)kill(pid, SIGKILL);
    if (pidfd < 0)
        return;
    /* Wait before anything new starts, or the old and the new instance would overlap:
     * this runs once at start, before the loop serves anyone, and is bounded. */
    struct pollfd p = {.fd = pidfd, .events = POLLIN};
    if (poll(&p, 1, 2000) == 0)
        log_error("Leftover component '%s' (pid %d) did not die within 2 s of SIGKILL", name, (int)pid);
    close(pidfd);
}

/* A previous halod died and left component processes behind (they are ours
 * by pid and start time).  Adopt them: they keep running and serving, their
 * assignments are restored, and they have their instantiate timeout to
 * register again (libhalo reconnects by itself).  A process that cannot be
 * adopted is killed and waited for, or two instances would serve. */
void amf_comp_restore(struct comp *c, pid_t pid, unsigned long long starttime) {
    struct amf *a = c->amf;
    if (!c->su->local || pid <= 1 || starttime == 0 || a->ready)
        return;
    if (process_start_time(pid) != starttime)
        return;
    /* A unit shutting down still holds its work: adopted too, its shutdown goes on. */
    if (c->su->oper != SU_DISABLED && (c->su->admin == SU_UNLOCKED || c->su->admin == SU_SHUTTING_DOWN) && !c->proc &&
        supervisor_adopt(a->sup, pid, amf_proc_exited, c, &c->proc) == 0) {
        log_notice("Adopting component '%s' (pid %d), left running by the previous halod", c->name, (int)pid);
        c->pid = pid;
        c->adopted = true;
        c->su->adopting = true;
        c->spawned_at = now_monotonic_usec();
        if (!amf_comp_sa_aware(c)) {
            /* It never registers: it runs, so it was started for ACTIVE (amf_nsa_adopted_check()). */
            c->presence = PRESENCE_INSTANTIATED;
            c->unclean = true;
            c->last_pid = pid;
            amf_monitor_arm(c);
            return;
        }
        c->presence = PRESENCE_INSTANTIATING;
        uv_timer_start(&c->timer, amf_comp_on_timer, c->cfg->timeouts.instantiate / 1000, 0);
        return;
    }
    log_warning("Component '%s' (pid %d) survived a previous halod and cannot be adopted; stopping it", c->name,
                (int)pid);
    kill_leftover(c->name, pid);
}

/* A process of a previous halod found in /proc by its mark. */
struct survivor {
    struct comp *comp;
    pid_t pid;
    uint64_t start_time;
};

/* For each component, the first one started. */
struct survivors {
    struct amf *a;
    struct survivor *list; /* n_comps allocated, n in use: one per component */
    size_t n, n_comps;
};

static void on_survivor(pid_t pid, const char *rest, uint64_t start_time, uid_t uid, void *userdata) {
    struct survivors *sv = userdata;
    /* COMPONENT@DIR: the prefix read said DIR already; a component's name has no '@'. */
    size_t len = strcspn(rest, "@");
    char name[CONFIG_NAME_MAX * 2 + 2];
    if (rest[len] != '@' || len >= sizeof(name) || !streq(rest + len + 1, sv->a->owner))
        return;
    memcpy(name, rest, len);
    name[len] = '\0';
    struct comp *c = amf_find_comp(sv->a, name);
    if (!c || !c->su->local) {
        /* Started here for a component this node no longer runs (removed from the description, or
         * its unit moved to another node, while no halod ran here, or by a reload its halod died
         * in): nothing would ever stop it. */
        log_warning("Process %d was started for component '%s' by a previous halod, and this node has no such "
                    "component any more; stopping it",
                    (int)pid, name);
        kill_leftover(name, pid);
        return;
    }
    /* Anyone may start a process with the mark: only the user halod starts c as could have, or root. */
    uid_t as = c->cfg->ids.set_uid ? c->cfg->ids.uid : geteuid();
    if (uid != as && uid != 0) {
        log_warning("Process %d carries the mark of component '%s' but runs as user %u, not %u; ignored", (int)pid,
                    c->name, (unsigned)uid, (unsigned)as);
        return;
    }
    /* Its descendants that made process groups of their own carry the mark too: the component started first. */
    for (size_t i = 0; i < sv->n; i++)
        if (sv->list[i].comp == c) {
            if (start_time < sv->list[i].start_time)
                sv->list[i] = (struct survivor){c, pid, start_time};
            return;
        }
    if (sv->n < sv->n_comps)
        sv->list[sv->n++] = (struct survivor){c, pid, start_time};
}

static size_t count_comps(struct amf *a) {
    size_t n = 0;
    for (size_t g = 0; g < a->n_sgs; g++)
        for (size_t u = 0; u < a->sgs[g].n_sus; u++)
            n += a->sgs[g].sus[u].n_comps;
    return n;
}

void amf_restore_survivors(struct amf *a) {
    if (!a->owner || a->ready)
        return;
    struct survivors sv = {.a = a, .n_comps = count_comps(a)};
    sv.list = calloc(MAX(sv.n_comps, 1u), sizeof(*sv.list));
    if (!sv.list) {
        log_error("Out of memory: the processes a previous halod left are not looked for");
        return;
    }
    int r = process_scan_env("HALO_OWNER=", on_survivor, &sv);
    if (r < 0)
        log_error_errno(r, "Failed to look for the processes a previous halod left in /proc: %m");
    for (size_t i = 0; i < sv.n; i++) {
        struct comp *c = sv.list[i].comp;
        if (c->proc && c->pid == sv.list[i].pid)
            continue; /* the store named it */
        if (c->proc) {
            log_debug("Process %d carries the mark of component '%s', adopted as pid %d; left alone",
                      (int)sv.list[i].pid, c->name, (int)c->pid);
            continue;
        }
        log_notice("Component '%s' (pid %d) survived a previous halod, found by its mark (the store did not name it)",
                   c->name, (int)sv.list[i].pid);
        amf_comp_restore(c, sv.list[i].pid, sv.list[i].start_time);
    }
    free(sv.list);
}

/* Whether c is adopted without a process of its own: an OCF resource (its probe says what runs), or a proxied
 * component whose proxy was adopted (it registers it again, resuming). */
static bool adopts_without_process(const struct comp *c) {
    return amf_comp_ocf(c) || (amf_comp_proxied(c) && c->proxy && c->proxy->adopted);
}

bool amf_su_adopts(struct su *su) {
    bool any = false;
    if (!su->local || su->amf->ready || su->oper == SU_DISABLED ||
        (su->admin != SU_UNLOCKED && su->admin != SU_SHUTTING_DOWN))
        return false;
    for (size_t i = 0; i < su->n_comps; i++) {
        if (!adopts_without_process(&su->comps[i]) && !su->comps[i].adopted)
            return false; /* a process of it must start again, and would get no CSI */
        any = any || adopts_without_process(&su->comps[i]);
    }
    if (!any)
        return false;
    su->adopting = true;
    for (size_t i = 0; i < su->n_comps; i++) {
        struct comp *c = &su->comps[i];
        if (!amf_comp_proxied(c) || c->adopted)
            continue;
        /* Its proxy registers it again once it resumed; within its instantiate timeout, or it has failed. */
        log_notice("Adopting component '%s', which its proxy '%s' registers again", c->name, c->proxy->name);
        c->adopted = c->proxy_asked = true;
        c->presence = PRESENCE_INSTANTIATING;
        c->spawned_at = now_monotonic_usec();
        uv_timer_start(&c->timer, amf_comp_on_timer, c->cfg->timeouts.instantiate / 1000, 0);
    }
    return true;
}

void amf_su_restore(struct su *su, enum su_admin admin, bool disabled) {
    if (admin != SU_UNLOCKED) {
        su->admin = admin;
        log_info("Service unit '%s' stays %s, as it was before the restart", su->name, su_admin_to_string(admin));
    }
    if (disabled) {
        su->oper = SU_DISABLED;
        for (size_t i = 0; i < su->n_comps; i++)
            su->comps[i].presence = PRESENCE_FAILED;
        log_warning_fields(
            AMF_FIELDS_SU(su, AMF_MESSAGE_ID_SU_DISABLED),
            "Service unit '%s' stays disabled, as it was before the restart; 'haloctl repair %s' starts it", su->name,
            su->name);
    }
}

void amf_si_restore(struct si *si, uint64_t generation, const char *active_su) {
    si->generation = generation;
    if (active_su) {
        free(si->preferred_active);
        si->preferred_active = strdup(active_su);
    }
}

void amf_si_restore_assignment(struct si *si, struct su *su, halo_ha_state state) {
    if ((!su->adopting && !amf_su_adopts(su)) || su->sg != si->sg)
        return;
    struct assignment *as = amf_asg_slot(si, su);
    if (!as)
        return;
    as->state = as->target = state;
    as->confirmed = true;
    log_info("'%s' stays %s for '%s' (adopted)", su->name, halo_ha_state_to_string(state), si->name);
}
