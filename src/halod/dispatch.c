/* SPDX-License-Identifier: MIT */
/*
 * The HA link's messages, each to its owner: one switch per peer (components
 * and haloctl's admin commands), one line per case.  The link has decoded,
 * size-checked and validated every message before it gets here
 * (src/proto/link.c); the owners answer on the connection themselves.
 */
#define LOG_AREA LOG_AREA_LINK
#include <errno.h>
#include <jansson.h>
#include <signal.h>
#include <stdlib.h>
#include <unistd.h>

#include "link-pack.h"
#include "log-level.h"
#include "log.h"
#include "macro.h"
#include "manager-internal.h"

/* The numbers the AMF, the store's admin/ keys and the wire share. */
_Static_assert((int)AMF_OP_SWITCHOVER == (int)HALO__LINK__ADMIN__OP__SWITCHOVER, "AMF_OP_SWITCHOVER");
_Static_assert((int)AMF_OP_LOCK == (int)HALO__LINK__ADMIN__OP__LOCK, "AMF_OP_LOCK");
_Static_assert((int)AMF_OP_UNLOCK == (int)HALO__LINK__ADMIN__OP__UNLOCK, "AMF_OP_UNLOCK");
_Static_assert((int)AMF_OP_RESTART == (int)HALO__LINK__ADMIN__OP__RESTART, "AMF_OP_RESTART");
_Static_assert((int)AMF_OP_REPAIR == (int)HALO__LINK__ADMIN__OP__REPAIR, "AMF_OP_REPAIR");
_Static_assert((int)AMF_OP_SHUTDOWN == (int)HALO__LINK__ADMIN__OP__AMF_SHUTDOWN, "AMF_OP_SHUTDOWN");
_Static_assert((int)AMF_OP_LOCK_INSTANTIATION == (int)HALO__LINK__ADMIN__OP__LOCK_INSTANTIATION, "LOCK_INST");
_Static_assert((int)AMF_OP_UNLOCK_INSTANTIATION == (int)HALO__LINK__ADMIN__OP__UNLOCK_INSTANTIATION, "UNLOCK_INST");
_Static_assert((int)AMF_OP_SG_ADJUST == (int)HALO__LINK__ADMIN__OP__SG_ADJUST, "AMF_OP_SG_ADJUST");
_Static_assert((int)AMF_OP_NODE_SWITCHOVER == (int)HALO__LINK__ADMIN__OP__NODE_SWITCHOVER, "AMF_OP_NODE_SWITCHOVER");
_Static_assert((int)AMF_OP_EAM_START == (int)HALO__LINK__ADMIN__OP__EAM_START, "AMF_OP_EAM_START");
_Static_assert((int)AMF_OP_EAM_STOP == (int)HALO__LINK__ADMIN__OP__EAM_STOP, "AMF_OP_EAM_STOP");
_Static_assert((int)HALO_PROCESS_STARTING == (int)HALO__LINK__PROCESS_EVENT__EVENT__STARTING &&
                   (int)HALO_PROCESS_RECOVERY_FAILED == (int)HALO__LINK__PROCESS_EVENT__EVENT__RECOVERY_FAILED,
               "halo_lifecycle");

/* haloctl waiting for a command the AMF runs here (switchover, lock). */
struct admin_wait {
    struct amf_waiter w;
    LIST_FIELDS(struct admin_wait, waits);
    struct manager *m;
    struct conn *conn;
    uint64_t seq;
};

static void wait_done(struct amf_waiter *aw, int error) {
    struct admin_wait *w = (struct admin_wait *)aw;
    (void)server_conn_reply(w->conn, w->seq, error, NULL);
    LIST_REMOVE(waits, &w->m->waits, w);
    free(w);
}

/* Runs op here, or on the node that runs it. */
static void admin_command(struct manager *m, struct conn *conn, uint64_t seq, int op, const char *target) {
    const char *to = amf_op_where(m->amf, op, target);
    int r;
    if (to && m->forward) {
        r = cluster_forward_send(m->forward, conn, seq, op, target, to);
        if (r < 0)
            (void)server_conn_reply(conn, seq, r, NULL);
        return;
    }
    struct admin_wait *w = calloc(1, sizeof(*w));
    if (!w) {
        (void)server_conn_reply(conn, seq, -ENOMEM, NULL);
        return;
    }
    *w = (struct admin_wait){.w.done = wait_done, .m = m, .conn = conn, .seq = seq};
    LIST_APPEND(waits, &m->waits, w);
    r = amf_run_op(m->amf, op, target, &w->w);
    if (r != 1)
        wait_done(&w->w, r);
}

/* An operator command that is not the AMF's, run here (forwarded, or asked of this node). */
int dispatch_run_other(void *userdata, int op, const char *target) {
    struct manager *m = userdata;
    if (op == HALO__LINK__ADMIN__OP__RECOVER_FORCE)
        return m->recovery ? recovery_local_force(m->recovery, target) : -HALO_EUNKNOWN;
    if (op == HALO__LINK__ADMIN__OP__LOG_SERVICE && m->logsvc) {
        int r = logsvc_set(m->logsvc, target);
        if (r >= 0)
            log_notice("Log level of %s set by another node's operator", target);
        return r;
    }
    return -EOPNOTSUPP;
}

/* haloctl recover --force: on the process's own node. */
static void admin_recover_force(struct manager *m, struct conn *conn, uint64_t seq, const char *process) {
    const char *to = amf_op_where(m->amf, AMF_OP_FAIL, process); /* where the component runs */
    int r;
    if (!amf_find_comp(m->amf, process))
        r = -HALO_EUNKNOWN;
    else if (to && m->forward)
        r = cluster_forward_send(m->forward, conn, seq, HALO__LINK__ADMIN__OP__RECOVER_FORCE, process, to);
    else
        r = dispatch_run_other(m, HALO__LINK__ADMIN__OP__RECOVER_FORCE, process);
    if (r != 0 || !to || !m->forward)
        (void)server_conn_reply(conn, seq, r, NULL);
}

static void admin_status(struct manager *m, struct conn *conn, uint64_t seq) {
    char *json = status_json(m);
    if (json)
        (void)server_conn_reply_parts(conn, seq, json);
    else
        (void)server_conn_reply(conn, seq, -ENOMEM, NULL);
}

/* haloctl log-level: the levels of every area, or a new one (operators only, as every Admin). */
static void admin_log_level(struct conn *conn, uint64_t seq, const char *spec) {
    if (*spec) {
        int r = log_set_level_spec(spec);
        if (r >= 0)
            log_notice("Log level set to '%s' by %s", spec, server_conn_name(conn));
        (void)server_conn_reply(conn, seq, r, NULL);
        return;
    }
    _cleanup_free_ char *json = log_level_json();
    (void)server_conn_reply(conn, seq, json ? 0 : -ENOMEM, json);
}

/* haloctl log-level comp:NAME LEVEL, stream:NAME LEVEL: set here, then on every other live node
 * (a component's level follows it wherever its unit runs; a node down meanwhile keeps its own). */
static void admin_log_service(struct manager *m, struct conn *conn, uint64_t seq, const char *spec) {
    if (!*spec) {
        _cleanup_free_ char *json = logsvc_json(m->logsvc);
        (void)server_conn_reply(conn, seq, json ? 0 : -ENOMEM, json);
        return;
    }
    int r = logsvc_set(m->logsvc, spec);
    if (r >= 0) {
        log_notice("Log level of %s set by %s", spec, server_conn_name(conn));
        size_t n = m->sync && m->forward ? cluster_sync_live_nodes(m->sync, NULL, 0) : 0;
        _cleanup_free_ const char **nodes = n ? calloc(n, sizeof(*nodes)) : NULL;
        n = nodes ? cluster_sync_live_nodes(m->sync, nodes, n) : 0;
        for (size_t i = 0; i < n; i++)
            if (!streq(nodes[i], m->node) &&
                cluster_forward_request(m->forward, HALO__LINK__ADMIN__OP__LOG_SERVICE, spec, nodes[i], NULL) < 0)
                log_warning("Log level of %s not sent to node '%s'", spec, nodes[i]);
    }
    (void)server_conn_reply(conn, seq, r, NULL);
}

static void dispatch_admin(struct manager *m, struct conn *conn, const Halo__Link__Admin *a) {
    const char *target = a->target ?: "";
    if (!server_conn_is_admin(conn)) {
        (void)server_conn_reply(conn, a->seq, -EPERM, NULL);
        return;
    }
    switch (a->op) {
    case HALO__LINK__ADMIN__OP__STATUS:
        admin_status(m, conn, a->seq);
        return;
    case HALO__LINK__ADMIN__OP__STATUS_MORE:
        (void)server_conn_reply_next_part(conn, a->seq);
        return;
    case HALO__LINK__ADMIN__OP__EVENTS:
        events_admin_events(m->events, conn, a->seq, false);
        return;
    case HALO__LINK__ADMIN__OP__EVENTS_FOLLOW:
        events_admin_events(m->events, conn, a->seq, true);
        return;
    case HALO__LINK__ADMIN__OP__FAILVEC:
        events_admin_failvec(m->events, conn, a->seq, target);
        return;
    case HALO__LINK__ADMIN__OP__SWITCHOVER:
    case HALO__LINK__ADMIN__OP__LOCK:
    case HALO__LINK__ADMIN__OP__UNLOCK:
    case HALO__LINK__ADMIN__OP__RESTART:
    case HALO__LINK__ADMIN__OP__REPAIR:
    case HALO__LINK__ADMIN__OP__AMF_SHUTDOWN:
    case HALO__LINK__ADMIN__OP__LOCK_INSTANTIATION:
    case HALO__LINK__ADMIN__OP__UNLOCK_INSTANTIATION:
    case HALO__LINK__ADMIN__OP__SG_ADJUST:
    case HALO__LINK__ADMIN__OP__NODE_SWITCHOVER:
    case HALO__LINK__ADMIN__OP__EAM_START:
    case HALO__LINK__ADMIN__OP__EAM_STOP:
        admin_command(m, conn, a->seq, (int)a->op, target);
        return;
    case HALO__LINK__ADMIN__OP__RECOVER_FORCE:
        admin_recover_force(m, conn, a->seq, target);
        return;
    case HALO__LINK__ADMIN__OP__SHUTDOWN:
        (void)server_conn_reply(conn, a->seq, 0, NULL);
        raise(SIGTERM);
        return;
    case HALO__LINK__ADMIN__OP__LOG_LEVEL:
        admin_log_level(conn, a->seq, target);
        return;
    case HALO__LINK__ADMIN__OP__LOG_SERVICE:
        admin_log_service(m, conn, a->seq, target);
        return;
    case HALO__LINK__ADMIN__OP__TXN_LIST: {
        _cleanup_free_ char *json = m->txnsvc ? txnsvc_json(m->txnsvc) : NULL;
        (void)server_conn_reply(conn, a->seq, json ? 0 : -ENOMEM, json);
        return;
    }
    case HALO__LINK__ADMIN__OP__TXN_SHOW: {
        _cleanup_free_ char *json = NULL;
        int r = m->txnsvc ? txnsvc_show_json(m->txnsvc, target, &json) : -HALO_EUNKNOWN;
        (void)server_conn_reply(conn, a->seq, r, json);
        return;
    }
    case HALO__LINK__ADMIN__OP__TXN_FORGET:
    case HALO__LINK__ADMIN__OP__TXN_ABORT:
        if (!m->txnsvc)
            (void)server_conn_reply(conn, a->seq, -HALO_EUNKNOWN, NULL);
        else if (a->op == HALO__LINK__ADMIN__OP__TXN_ABORT)
            txnsvc_abort(m->txnsvc, conn, a->seq, target);
        else
            txnsvc_forget(m->txnsvc, conn, a->seq, target);
        return;
    case HALO__LINK__ADMIN__OP__RELOAD: {
        _cleanup_free_ char *json = NULL;
        int r = manager_reload(m, server_conn_name(conn), &json);
        (void)server_conn_reply(conn, a->seq, r, json);
        return;
    }
    default:
        (void)server_conn_reply(conn, a->seq, -EOPNOTSUPP, NULL);
        return;
    }
}

/* A process asks where the services are: a restarted pool process is told
 * "recovery": true, and its recovery (the vector by RecoveryNote, then
 * TRANSIENT) follows the answer. */
static void dispatch_entrypoint(struct manager *m, struct conn *conn, uint64_t seq) {
    _cleanup_free_ char *json = NULL;
    int r = -EAGAIN;
    if (status_coordinator(m)) {
        struct comp *c = amf_comp_by_conn(m->amf, conn);
        r = status_entrypoint(m, c && recovery_local_entrypoint(m->recovery, c), &json);
    }
    uint8_t buf[LINK_MSG_MAX];
    /* An election takes a round trip or two: ask again shortly. */
    int len =
        link_pack_reply_retry(seq, r == -EAGAIN ? -HALO_ETRYAGAIN : r, json, r == -EAGAIN ? 100 : 0, buf, sizeof(buf));
    if (len < 0)
        (void)server_conn_reply(conn, seq, len, NULL);
    else
        (void)server_conn_send_packed(conn, buf, (size_t)len);
}

static void dispatch_process_event(struct manager *m, struct conn *conn, const Halo__Link__ProcessEvent *e) {
    struct comp *c = amf_comp_by_conn(m->amf, conn);
    int r = c ? recovery_local_event(m->recovery, c, (halo_lifecycle)e->event, e->reason) : -HALO_ENOTREG;
    (void)server_conn_reply(conn, e->seq, r, NULL);
}

/* A participant served its part of a pool peer's recovery. */
static void dispatch_participant_done(struct manager *m, struct conn *conn, const Halo__Link__ParticipantDone *d) {
    struct comp *c = amf_comp_by_conn(m->amf, conn);
    int r = !c            ? -HALO_ENOTREG
            : m->recovery ? recovery_local_participant_done(m->recovery, c, d->process, d->attempt)
                          : -HALO_EUNKNOWN;
    (void)server_conn_reply(conn, d->seq, r, NULL);
}

/*
 * Whether conn may change the state of component name on its behalf (an
 * error report fails it over): root and halod's own user may, and so may the
 * component's own process or a member of its process group, as for Register,
 * and for a proxied component its proxy.
 * Anyone else in the socket's group may not.  A name the AMF does not know is
 * left to it to refuse.
 */
static bool may_act_for(struct manager *m, struct conn *conn, const char *name) {
    const struct comp *c = amf_find_comp(m->amf, name);
    if (!c || server_conn_is_privileged(conn))
        return true;
    if (c->proxy && c->proxy->conn == conn) /* a proxied component's proxy acts for it */
        return true;
    pid_t pid = server_conn_pid(conn);
    return c->pid > 0 && (pid == c->pid || getpgid(pid) == c->pid);
}

static void dispatch_error_report(struct manager *m, struct conn *conn, const Halo__Link__ErrorReport *e) {
    if (!may_act_for(m, conn, e->comp)) {
        log_warning("%s reported an error of component '%s', which is not its own; refused", server_conn_name(conn),
                    e->comp);
        (void)server_conn_reply(conn, e->seq, -EPERM, NULL);
        return;
    }
    amf_error_report(m->amf, conn, e->seq, e->comp, (halo_recovery)e->recovery);
}

void dispatch_msg(struct manager *m, struct conn *c, const LinkMsg *msg) {
    struct amf *a = m->amf;
    switch (msg->body_case) {
    case HALO__LINK__MSG__BODY_REGISTER: {
        const Halo__Link__Register *r = msg->register_;
        amf_comp_register(a, c, r->seq, r->comp, r->proxy, r->resume, r->object_states);
        return;
    }
    case HALO__LINK__MSG__BODY_UNREGISTER:
        amf_comp_unregister(a, c, msg->unregister->seq, msg->unregister->comp);
        return;
    case HALO__LINK__MSG__BODY_RESPONSE: {
        const Halo__Link__Response *r = msg->response;
        amf_response(a, c, r->seq, r->invocation, r->error, r->quiescing_complete);
        return;
    }
    case HALO__LINK__MSG__BODY_HC_START: {
        const Halo__Link__HealthcheckStart *h = msg->hc_start;
        amf_hc_start(a, c, h->seq, h->comp, h->key, (halo_hc_invoked)h->invoked, (halo_recovery)h->recovery);
        return;
    }
    case HALO__LINK__MSG__BODY_HC_CONFIRM: {
        const Halo__Link__HealthcheckConfirm *h = msg->hc_confirm;
        amf_hc_confirm(a, c, h->seq, h->comp, h->key, h->result);
        return;
    }
    case HALO__LINK__MSG__BODY_HC_STOP:
        amf_hc_stop(a, c, msg->hc_stop->seq, msg->hc_stop->comp, msg->hc_stop->key);
        return;
    case HALO__LINK__MSG__BODY_ERROR_REPORT:
        dispatch_error_report(m, c, msg->error_report);
        return;
    case HALO__LINK__MSG__BODY_PG_TRACK:
        amf_pg_track(a, c, msg->pg_track->seq, msg->pg_track->csi, msg->pg_track->flags);
        return;
    case HALO__LINK__MSG__BODY_PG_TRACK_STOP:
        amf_pg_track_stop(a, c, msg->pg_track_stop->seq, msg->pg_track_stop->csi);
        return;
    case HALO__LINK__MSG__BODY_HA_STATE_GET:
        amf_ha_state_get(a, c, msg->ha_state_get->seq, msg->ha_state_get->comp, msg->ha_state_get->csi);
        return;
    case HALO__LINK__MSG__BODY_ENTRYPOINT_GET:
        dispatch_entrypoint(m, c, msg->entrypoint_get->seq);
        return;
    case HALO__LINK__MSG__BODY_PROCESS_EVENT:
        dispatch_process_event(m, c, msg->process_event);
        return;
    case HALO__LINK__MSG__BODY_PARTICIPANT_DONE:
        dispatch_participant_done(m, c, msg->participant_done);
        return;
    case HALO__LINK__MSG__BODY_OBJECT_STATE_GET: {
        /* Any connected process may ask (the seeds' nvec get); the link validated the names. */
        const Halo__Link__ObjectStateGet *g = msg->object_state_get;
        events_object_state_get(m->events, c, g->seq, g->objects, g->n_objects);
        return;
    }
    case HALO__LINK__MSG__BODY_OBJECT_INTEREST:
        events_interest_set(m->events, c, msg->object_interest->seq, msg->object_interest->rules,
                            msg->object_interest->n_rules);
        return;
    case HALO__LINK__MSG__BODY_ADMIN:
        dispatch_admin(m, c, msg->admin);
        return;
    default:
        /* Messages only halod sends: a client that sends them is broken or
         * lying about what it is.  (Types this version does not know were
         * dropped by the link, which keeps the client.) */
        log_warning("%s sent unexpected %s; disconnecting", server_conn_name(c), link_msg_type_name(msg));
        server_conn_close(c, "unexpected message");
        return;
    }
}

void dispatch_conn_closed(struct manager *m, struct conn *c, const char *reason) {
    if (m->forward)
        cluster_forward_conn_closed(m->forward, c);
    if (m->events)
        events_conn_closed(m->events, c);
    struct admin_wait *w, *next;
    LIST_FOREACH_SAFE (waits, w, next, &m->waits)
        if (w->conn == c) {
            /* The command goes on; nobody is told. */
            amf_waiter_forget(m->amf, &w->w);
            LIST_REMOVE(waits, &m->waits, w);
            free(w);
        }
    if (m->amf)
        amf_conn_closed(m->amf, c, reason);
}

void dispatch_conn_drained(struct manager *m, struct conn *c) {
    if (m->events)
        events_conn_drained(m->events, c);
}

void dispatch_free(struct manager *m) {
    struct admin_wait *w;
    while ((w = LIST_POP(waits, &m->waits))) {
        if (m->amf)
            amf_waiter_forget(m->amf, &w->w);
        free(w);
    }
}
