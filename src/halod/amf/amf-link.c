/* SPDX-License-Identifier: MIT */
/*
 * What components ask of the AMF on their HA link: register and unregister,
 * health checks, error reports; and what a link that goes away means.  Each
 * request is answered (io/server) before its effects go out, so that a
 * component hears "registered" before its first CSI set.
 */
#define LOG_AREA LOG_AREA_AMF
#include <errno.h>
#include <stdio.h>
#include <unistd.h>

#include "amf-internal.h"
#include "log.h"
#include "macro.h"
#include "server.h"

/* The component c names, if this connection registered it. */
static struct comp *conn_comp(struct amf *a, struct conn *conn, const char *name, int *ret_err) {
    struct comp *c = amf_find_comp(a, name);
    if (!c) {
        *ret_err = -HALO_EUNKNOWN;
        return NULL;
    }
    if (c->conn != conn) {
        *ret_err = -HALO_ENOTREG;
        return NULL;
    }
    return c;
}

static int comp_register(struct amf *a, struct conn *conn, struct comp *c, const char *proxy, bool resume) {
    /* Until the previous state is read back we do not know whom we adopt:
     * a process resuming early asks again (libhalo retries on ETRYAGAIN). */
    if (!a->ready)
        return -HALO_ETRYAGAIN;
    if (!c || !c->su->local)
        return -HALO_EUNKNOWN;
    if (proxy && *proxy)
        return amf_proxied_may_register(c, conn, proxy, resume);
    if (amf_comp_proxied(c)) {
        log_warning("Process %d tried to register '%s', which is proxied: its proxy '%s' registers it; refused",
                    (int)server_conn_pid(conn), c->name, c->cfg->proxy);
        return -HALO_EBADSTATE;
    }
    if (c->conn)
        return -HALO_EEXIST;
    if (!amf_comp_sa_aware(c)) {
        log_warning("Process %d tried to register '%s', which is non-sa-aware; refused", (int)server_conn_pid(conn),
                    c->name);
        return -HALO_EBADSTATE;
    }
    if (c->presence != PRESENCE_INSTANTIATING || !c->proc)
        return -HALO_EBADSTATE;
    if (resume && !c->adopted) {
        log_warning("Component '%s' asked to resume, but this halod did not adopt it; refused", c->name);
        return -HALO_EBADSTATE;
    }
    /* Only the process halod started for this component (or one of its
     * process group) may register it. */
    pid_t pid = server_conn_pid(conn);
    if (pid != c->pid && getpgid(pid) != c->pid) {
        log_warning("Process %d tried to register '%s', which runs as pid %d; refused", (int)pid, c->name, (int)c->pid);
        return -EPERM;
    }
    return 0;
}

void amf_su_adoption_check(struct su *su) {
    if (!su->adopting)
        return;
    for (size_t i = 0; i < su->n_comps; i++)
        if ((amf_comp_sa_aware(&su->comps[i]) && su->comps[i].presence != PRESENCE_INSTANTIATED) ||
            (amf_comp_ocf(&su->comps[i]) && !su->comps[i].ocf.probed))
            return;
    su->adopting = false;
    log_notice("Service unit '%s' adopted with its assignments", su->name);
    amf_notify_su(su, AMF_SU_ADOPTED);
}

void amf_comp_register(struct amf *a, struct conn *conn, uint64_t seq, const char *name, const char *proxy, bool resume,
                       bool object_states) {
    struct comp *c = amf_find_comp(a, name);
    int r = comp_register(a, conn, c, proxy, resume);
    if (r == 0) {
        /* Registered before the reply: a reply that fails closes the link, which fails it. */
        c->conn = conn;
        c->presence = PRESENCE_INSTANTIATED;
        c->object_states = object_states;
        uv_timer_stop(&c->timer);
        amf_monitor_arm(c);
        if (amf_comp_proxied(c))
            log_info("Component '%s' registered by its proxy '%s'", c->name, c->cfg->proxy);
        else
            log_info("Component '%s' registered (pid %d)%s", c->name, (int)c->pid, c->adopted ? ", adopted" : "");
        amf_su_adoption_check(c->su);
    }
    (void)server_conn_reply(conn, seq, r, NULL);
    if (r < 0 || c->conn != conn)
        return;
    /* The description's health checks start by themselves. */
    for (size_t i = 0; i < c->cfg->n_hc_keys && c->conn == conn; i++)
        if (!amf_hc_find(c, c->cfg->hc_keys[i]) &&
            amf_hc_add(c, c->cfg->hc_keys[i], HALO_HC_AMF_INVOKED, HALO_RECOVERY_NONE) == 0)
            amf_hc_find(c, c->cfg->hc_keys[i])->configured = true;
    amf_notify_comp(c, AMF_COMP_REGISTERED, NULL);
    if (c->conn == conn) /* an observer's send may have failed the component */
        amf_ladder_comp_registered(c);
    if (c->conn == conn)
        amf_sg_evaluate(c->su->sg);
    if (c->conn == conn)
        amf_proxied_proxy_registered(c);
}

void amf_comp_unregister(struct amf *a, struct conn *conn, uint64_t seq, const char *name) {
    int r = 0;
    struct comp *c = conn_comp(a, conn, name, &r);
    if (c) {
        /* From now on the component may exit; if it still holds work, that is a failure. */
        c->conn = NULL;
        amf_hc_stop_all(c);
        log_info("Component '%s' unregistered", c->name);
    }
    (void)server_conn_reply(conn, seq, r, NULL);
    /* A proxied component is there while its proxy has it registered. */
    if (c && r == 0 && amf_comp_proxied(c) && c->presence != PRESENCE_TERMINATING)
        amf_comp_fail(c, "was unregistered by its proxy");
}

void amf_hc_start(struct amf *a, struct conn *conn, uint64_t seq, const char *name, const char *key,
                  halo_hc_invoked invoked, halo_recovery recovery) {
    int r = 0;
    struct comp *c = conn_comp(a, conn, name, &r);
    struct hc *old = c ? amf_hc_find(c, key) : NULL;
    if (old && old->configured) /* the component's own start of a described check: its terms win */
        (void)amf_hc_remove(c, key);
    if (c)
        r = amf_hc_add(c, key, invoked, recovery);
    (void)server_conn_reply(conn, seq, r, NULL);
}

void amf_hc_confirm(struct amf *a, struct conn *conn, uint64_t seq, const char *name, const char *key, int result) {
    int r = 0;
    struct comp *c = conn_comp(a, conn, name, &r);
    struct hc *hc = c ? amf_hc_find(c, key) : NULL;
    if (c && !hc)
        r = -ENOENT;
    else if (hc && hc->invoked != HALO_HC_COMPONENT_INVOKED)
        r = -HALO_EBADSTATE;
    if (r == 0 && result < 0) {
        char buf[160];
        snprintf(buf, sizeof(buf), "reported a failed health check '%s'", key);
        c->hc_failures++;
        amf_comp_recover(c, buf, hc->recovery);
    } else if (r == 0)
        amf_hc_rearm(hc);
    /* Last: a reply that cannot be sent closes the link and fails the
     * component, which frees its checks (hc among them). */
    (void)server_conn_reply(conn, seq, r, NULL);
}

void amf_hc_stop(struct amf *a, struct conn *conn, uint64_t seq, const char *name, const char *key) {
    int r = 0;
    struct comp *c = conn_comp(a, conn, name, &r);
    if (c)
        r = amf_hc_remove(c, key);
    (void)server_conn_reply(conn, seq, r, NULL);
}

void amf_error_report(struct amf *a, struct conn *conn, uint64_t seq, const char *name, halo_recovery recommended) {
    struct comp *c = amf_find_comp(a, name);
    int r = 0;
    if (!c || !c->su->local)
        r = -HALO_EUNKNOWN;
    else if (!c->proc && !(amf_comp_proxied(c) && c->conn)) /* a proxied one runs while registered */
        r = -HALO_EBADSTATE;
    (void)server_conn_reply(conn, seq, r, NULL);
    if (r == 0 && recommended > HALO_RECOVERY_NONE) {
        char buf[96];
        snprintf(buf, sizeof(buf), "reported an error (recommended recovery: %s)",
                 amf_rung_to_string(amf_rung_of(CONFIG_RECOVERY_COMPONENT_RESTART, recommended)));
        amf_comp_recover(c, buf, recommended);
    } else if (r == 0)
        amf_comp_fail(c, "reported an error");
}

void amf_conn_closed(struct amf *a, struct conn *conn, const char *reason) {
    amf_pg_conn_closed(a, conn);
    /* A registered component whose link broke has failed: this is usually the
     * first sign of a crash, before the pidfd reports the exit. */
    for (size_t g = 0; g < a->n_sgs; g++)
        for (size_t u = 0; u < a->sgs[g].n_sus; u++) {
            struct su *su = &a->sgs[g].sus[u];
            for (size_t i = 0; i < su->n_comps; i++)
                if (su->comps[i].conn == conn) {
                    su->comps[i].conn = NULL;
                    if (!a->stopping && su->comps[i].presence != PRESENCE_TERMINATING) {
                        char buf[128];
                        snprintf(buf, sizeof(buf), "lost its HA link (%s)", reason);
                        amf_comp_fail(&su->comps[i], buf);
                    }
                }
        }
}
