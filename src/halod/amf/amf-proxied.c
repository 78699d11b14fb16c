/* SPDX-License-Identifier: MIT */
/*
 * Proxied components (`type: proxied`, `proxy: COMP`): halod runs no process
 * for one.  Its proxy, an SA-aware component of another unit of the same
 * node, is asked to instantiate it (ProxiedInstantiate), registers it on its
 * own link (Register with proxy set), and from then on gets its CSI sets,
 * removes and terminate with comp naming it; a failure of it asks the proxy
 * to clean it up (ProxiedCleanup).  The proxied component is INSTANTIATED
 * while its proxy has it registered: a proxy that fails takes its proxied
 * components down with it (their SIs fail over), and they are instantiated
 * again through the proxy once it registers again.
 */
#define LOG_AREA LOG_AREA_AMF
#include <errno.h>
#include <stdio.h>

#include "amf-internal.h"
#include "link-pack.h"
#include "log.h"
#include "macro.h"

bool amf_proxied_proxy_ready(const struct comp *p) {
    return p && p->conn && p->presence == PRESENCE_INSTANTIATED;
}

/* Sends c's proxy an invocation of kind for c; NULL when it could not (out of memory, or no proxy). */
static struct invocation *proxy_invoke(struct comp *c, enum inv_kind kind, usec_t timeout) {
    struct comp *p = c->proxy;
    if (!amf_proxied_proxy_ready(p))
        return NULL;
    struct invocation *inv = amf_inv_new(c, kind, timeout);
    if (!inv)
        return NULL;
    uint8_t buf[LINK_MSG_MAX];
    uint64_t id = inv->id;
    int n = kind == INV_TERMINATE ? link_pack_terminate(id, c->name, buf, sizeof(buf))
                                  : link_pack_proxied(id, c->name, kind == INV_PROXIED_CLEANUP, buf, sizeof(buf));
    /* Last: a send that fails closes the proxy's link, which fails it (and c). */
    amf_comp_send(p, buf, n);
    return inv;
}

static void ask(struct comp *c) {
    const struct config_component *cc = c->cfg;
    if (!amf_proxied_proxy_ready(c->proxy)) {
        log_info("Component '%s' waits for its proxy '%s' to register", c->name, cc->proxy);
        return;
    }
    c->proxy_asked = true;
    c->adopted = false; /* asked by this halod: registered, not resumed */
    c->spawned_at = now_monotonic_usec();
    c->restarts++;
    uv_timer_start(&c->timer, amf_comp_on_timer, cc->timeouts.instantiate / 1000, 0);
    log_info("Asking proxy '%s' to instantiate component '%s'", cc->proxy, c->name);
    if (!proxy_invoke(c, INV_PROXIED_INSTANTIATE, cc->timeouts.instantiate)) {
        c->proxy_asked = false;
        amf_su_fail(c->su, "out of memory asking its proxy");
    }
}

void amf_proxied_instantiate(struct comp *c) {
    if (c->proxy_asked || c->conn)
        return; /* instantiated, or being */
    c->adopted = false;
    c->object_states = false;
    c->presence = PRESENCE_INSTANTIATING;
    ask(c);
}

void amf_proxied_proxy_registered(struct comp *p) {
    struct amf *a = p->amf;
    for (size_t g = 0; g < a->n_sgs; g++)
        for (size_t u = 0; u < a->sgs[g].n_sus; u++) {
            struct su *su = &a->sgs[g].sus[u];
            for (size_t i = 0; su->local && !su->failing && i < su->n_comps; i++) {
                struct comp *c = &su->comps[i];
                if (c->proxy == p && c->presence == PRESENCE_INSTANTIATING && !c->proxy_asked)
                    ask(c);
            }
        }
}

/* c is no longer on its proxy's link. */
static void gone(struct comp *c, const char *how) {
    c->conn = NULL;
    c->proxy_asked = false;
    uv_timer_stop(&c->timer);
    c->presence = c->su->oper == SU_DISABLED ? PRESENCE_FAILED : PRESENCE_UNINSTANTIATED;
    amf_notify_comp(c, AMF_COMP_EXITED, how);
    if (c->amf->stopping)
        amf_stop_check(c->amf);
    else if (c->removing)
        amf_comp_removal_step(c); /* a reload removed it: its proxy terminated it, it is gone */
    else if (c->restart_in_place && !c->restart_spawned && !c->su->failing)
        amf_ladder_comp_gone(c); /* an operator's restart: its proxy instantiates it again */
}

void amf_proxied_terminate(struct comp *c) {
    amf_inv_cancel_comp(c); /* an instantiate in flight: the proxy is not waited for */
    amf_hc_stop_all(c);
    amf_monitor_cancel(c);
    if (!c->conn) {
        c->proxy_asked = false;
        if (c->presence == PRESENCE_INSTANTIATING)
            c->presence = PRESENCE_UNINSTANTIATED;
        return;
    }
    c->presence = PRESENCE_TERMINATING;
    uv_timer_start(&c->timer, amf_comp_on_timer, c->cfg->timeouts.terminate / 1000, 0);
    if (!proxy_invoke(c, INV_TERMINATE, c->cfg->timeouts.terminate))
        gone(c, "terminated (its proxy could not be asked)");
}

void amf_proxied_on_timer(struct comp *c) {
    if (c->presence == PRESENCE_INSTANTIATING)
        amf_comp_fail(c, "was not registered by its proxy within its instantiate timeout");
    else if (c->presence == PRESENCE_TERMINATING) {
        log_warning("Proxy '%s' did not answer the terminate of component '%s' in time; cleaning it up", c->cfg->proxy,
                    c->name);
        amf_inv_cancel_comp(c);
        (void)proxy_invoke(c, INV_PROXIED_CLEANUP, c->cfg->timeouts.terminate);
        gone(c, "cleaned up after its terminate timed out");
    }
}

void amf_proxied_answered(struct comp *c, enum inv_kind kind, int error) {
    char buf[160];
    switch (kind) {
    case INV_PROXIED_INSTANTIATE:
        if (error != 0) {
            snprintf(buf, sizeof(buf), "could not be instantiated by its proxy: %s", halo_strerror(error));
            amf_comp_fail(c, buf);
        }
        return; /* else: registered, or soon (the instantiate timer runs until it is) */
    case INV_PROXIED_CLEANUP:
        if (error != 0)
            log_warning("Proxy '%s' failed to clean up component '%s': %s", c->cfg->proxy, c->name,
                        halo_strerror(error));
        return;
    case INV_TERMINATE:
        if (c->presence == PRESENCE_TERMINATING)
            gone(c, error == 0 ? "terminated by its proxy" : "terminated (its proxy answered with an error)");
        return;
    default:
        return;
    }
}

void amf_proxied_fence(struct comp *c) {
    bool held = c->conn || c->proxy_asked;
    c->conn = NULL;
    c->proxy_asked = false;
    if (held && amf_proxied_proxy_ready(c->proxy)) {
        log_info("Asking proxy '%s' to clean up component '%s'", c->cfg->proxy, c->name);
        (void)proxy_invoke(c, INV_PROXIED_CLEANUP, c->cfg->timeouts.terminate);
    }
}

int amf_proxied_may_register(struct comp *c, struct conn *conn, const char *proxy, bool resume) {
    if (!amf_comp_proxied(c)) {
        log_warning("Component '%s' is not proxied; '%s' cannot register it as its proxy", c->name, proxy);
        return -HALO_EBADSTATE;
    }
    if (!c->proxy || !streq(c->proxy->name, proxy)) {
        log_warning("'%s' tried to register component '%s', whose proxy is '%s'; refused", proxy, c->name,
                    c->cfg->proxy);
        return -EPERM;
    }
    if (c->proxy->conn != conn)
        return -HALO_ENOTREG;
    if (c->conn)
        return -HALO_EEXIST;
    if (c->presence != PRESENCE_INSTANTIATING || !c->proxy_asked)
        return -HALO_EBADSTATE;
    if (resume != c->adopted) {
        /* Not adopted: its proxy is asked to instantiate it again (and registers it then, not resuming). */
        log_warning("Proxy '%s' %s component '%s', which this halod %s; refused", proxy,
                    resume ? "resumed" : "registered", c->name, resume ? "did not adopt" : "waits to be resumed");
        return -HALO_EBADSTATE;
    }
    return 0;
}

void amf_proxied_proxy_lost(struct comp *p) {
    struct amf *a = p->amf;
    if (a->stopping)
        return;
    for (size_t g = 0; g < a->n_sgs; g++)
        for (size_t u = 0; u < a->sgs[g].n_sus; u++) {
            struct su *other = &a->sgs[g].sus[u];
            for (size_t i = 0; other->local && i < other->n_comps; i++) {
                struct comp *c = &other->comps[i];
                if (c->proxy != p || other->failing || (!c->conn && !c->proxy_asked))
                    continue;
                /* Its proxy's link is of no use any more: no cleanup goes there. */
                c->conn = NULL;
                c->proxy_asked = false;
                char buf[CONFIG_NAME_MAX + 64];
                snprintf(buf, sizeof(buf), "lost its proxy '%s'", p->name);
                amf_comp_fail(c, buf);
            }
        }
}

void amf_proxied_proxy_failed(struct su *su) {
    for (size_t i = 0; i < su->n_comps; i++)
        amf_proxied_proxy_lost(&su->comps[i]);
}

struct conn *amf_proxied_conn(const struct comp *c, enum inv_kind kind) {
    if (kind == INV_PROXIED_INSTANTIATE || kind == INV_PROXIED_CLEANUP)
        return c->proxy ? c->proxy->conn : NULL;
    return c->conn;
}
