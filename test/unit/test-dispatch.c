/* SPDX-License-Identifier: MIT */
/*
 * Unit tests of dispatch.c: every message type a component or haloctl may
 * send reaches its owner and is answered on its link.  The layers above io
 * are the real ones (AMF, queue on the memory store, recovery, events), built
 * as the manager builds them for one node; processes and links are fakes
 * (fake-io.c), so each test sends a message by hand and reads what halod
 * answered.
 */
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "fake-io.h"
#include "keys.h"
#include "macro.h"
#include "manager-internal.h"
#include "store-engine.h"
#include "tests.h"

#define DESCRIPTION                         \
    "cluster: t\n"                          \
    "nodes:\n"                              \
    "  n1: {}\n"                            \
    "service-groups:\n"                     \
    "  g:\n"                                \
    "    component: {command: /bin/true}\n" \
    "    service-units:\n"                  \
    "      a: {}\n"                         \
    "      b: {}\n"                         \
    "    service-instances:\n"              \
    "      si:\n"                           \
    "        entrypoint: true\n"            \
    "        csis:\n"                       \
    "          csi: {attributes: {port: \"7\"}}\n"
static const char description[] = DESCRIPTION;
/* The same, a and b a pool: a restarted a recovers before it is ONLINE. */
static const char pooled[] = DESCRIPTION "pools: {p: {processes: [a, b], tolerate: 1}}\n";

struct fixture {
    const char *description;                 /* NULL: description */
    void (*before_start)(struct fixture *f); /* the store is open, nothing has read it yet */
    uv_loop_t loop;
    struct manager m;
    char path[64];
    struct conn a, b, admin, stranger;
    struct conn a2; /* a's process after a restart */
};

static void run(struct fixture *f) {
    for (int i = 0; i < 20; i++)
        uv_run(&f->loop, UV_RUN_NOWAIT);
}

static void fixture_start(struct fixture *f) {
    struct manager *m = &f->m;
    char *errors = NULL;
    snprintf(f->path, sizeof(f->path), "/tmp/test-dispatch-%d.yaml", (int)getpid());
    FILE *fp = fopen(f->path, "w");
    ASSERT(fp);
    fputs(f->description ?: description, fp);
    fclose(fp);
    if (config_load(f->path, &m->config, &errors) < 0)
        CHECK_FAIL("the description does not load: %s", errors ?: "?");
    ASSERT_OK(uv_loop_init(&f->loop));
    m->loop = &f->loop;
    m->node = "n1";
    ASSERT_OK(key_prefix(m->prefix, "t"));
    ASSERT_OK(store_memory_new(m->loop, &m->store));
    if (f->before_start)
        f->before_start(f);
    struct amf_params ap = {.loop = m->loop, .config = m->config, .node = m->node, .socket_path = "/x"};
    ASSERT_OK(amf_new(&ap, &m->amf));
    ASSERT_OK(manager_build_observers(m)); /* as halod wires them */
    ASSERT_OK(manager_build_coord(m));
    ASSERT_OK(events_start(m->events));
    ASSERT_OK(recovery_local_start(m->recovery));
    recovery_coord_set(m->coord, true);
    amf_set_ready(m->amf);
    f->a.pid = amf_find_comp(m->amf, "a")->pid;
    f->b.pid = amf_find_comp(m->amf, "b")->pid;
    f->admin.admin = true;
    f->stranger.pid = 4242;
    run(f);
}

static void fixture_stop(struct fixture *f) {
    struct manager *m = &f->m;
    struct conn *conns[] = {&f->a, &f->b, &f->admin, &f->stranger, &f->a2};
    for (size_t i = 0; i < ELEMENTSOF(conns); i++)
        dispatch_conn_closed(m, conns[i], "the test ends");
    m->queue = queue_free(m->queue);
    m->coord = recovery_coord_free(m->coord);
    m->txnsvc = txnsvc_free(m->txnsvc);
    m->logsvc = logsvc_free(m->logsvc);
    m->events = events_free(m->events);
    m->recovery = recovery_local_free(m->recovery);
    m->reporter = queue_reporter_free(m->reporter);
    amf_close(m->amf);
    m->store = store_free(m->store);
    uv_run(&f->loop, UV_RUN_DEFAULT);
    dispatch_free(m);
    m->amf = amf_free(m->amf);
    m->model = rm_free(m->model);
    m->config = config_free(m->config);
    ASSERT_OK(uv_loop_close(&f->loop));
    for (size_t i = 0; i < ELEMENTSOF(conns); i++)
        fake_conn_done(conns[i]);
    unlink(f->path);
}

/* ---- messages, built as libhalo and haloctl send them ---------------------- */

static void send_register(struct fixture *f, struct conn *c, uint64_t seq, const char *comp) {
    Halo__Link__Register r = HALO__LINK__REGISTER__INIT;
    LinkMsg m = HALO__LINK__MSG__INIT;
    r.seq = seq;
    r.comp = (char *)comp;
    r.proxy = "";
    m.body_case = HALO__LINK__MSG__BODY_REGISTER;
    m.register_ = &r;
    dispatch_msg(&f->m, c, &m);
}

static void send_response(struct fixture *f, struct conn *c, uint64_t seq, uint64_t inv, bool complete) {
    Halo__Link__Response r = HALO__LINK__RESPONSE__INIT;
    LinkMsg m = HALO__LINK__MSG__INIT;
    r.seq = seq;
    r.invocation = inv;
    r.quiescing_complete = complete;
    m.body_case = HALO__LINK__MSG__BODY_RESPONSE;
    m.response = &r;
    dispatch_msg(&f->m, c, &m);
}

static void send_admin(struct fixture *f, struct conn *c, uint64_t seq, Halo__Link__Admin__Op op, const char *target) {
    Halo__Link__Admin a = HALO__LINK__ADMIN__INIT;
    LinkMsg m = HALO__LINK__MSG__INIT;
    a.seq = seq;
    a.op = op;
    a.target = (char *)target;
    m.body_case = HALO__LINK__MSG__BODY_ADMIN;
    m.admin = &a;
    dispatch_msg(&f->m, c, &m);
}

/* The reply to seq on c: its error (and JSON). */
static int reply_to(struct conn *c, uint64_t seq, const char **ret_json) {
    for (size_t i = c->n_replies; i > 0; i--)
        if (c->reply_seq[i - 1] == seq) {
            if (ret_json)
                *ret_json = c->reply_json[i - 1];
            return c->reply_err[i - 1];
        }
    CHECK_FAIL("no reply to seq %llu", (unsigned long long)seq);
}

static bool has_reply(const struct conn *c, uint64_t seq) {
    for (size_t i = 0; i < c->n_replies; i++)
        if (c->reply_seq[i] == seq)
            return true;
    return false;
}

/* c asks for its entrypoint: halod's answer (and its JSON). */
static int entrypoint_get(struct fixture *f, struct conn *c, uint64_t seq, const char **ret_json) {
    Halo__Link__EntrypointGet eg = HALO__LINK__ENTRYPOINT_GET__INIT;
    LinkMsg m = HALO__LINK__MSG__INIT;
    eg.seq = seq;
    m.body_case = HALO__LINK__MSG__BODY_ENTRYPOINT_GET, m.entrypoint_get = &eg;
    dispatch_msg(&f->m, c, &m);
    return reply_to(c, seq, ret_json);
}

/* The next CSI set on c (messages that are not, skipped), which the test answers. */
static const Halo__Link__CsiSet *next_csi_set(struct conn *c) {
    LinkMsg *m;
    while ((m = fake_conn_next(c)))
        if (m->body_case == HALO__LINK__MSG__BODY_CSI_SET)
            return m->csi_set;
    CHECK_FAIL("no CSI set");
}

/* Both registered through the dispatch; a ACTIVE and b STANDBY, answered. */
static void assigned(struct fixture *f) {
    send_register(f, &f->a, 1, "a");
    send_register(f, &f->b, 1, "b");
    ASSERT_EQ(reply_to(&f->a, 1, NULL), 0);
    ASSERT_EQ(reply_to(&f->b, 1, NULL), 0);
    const Halo__Link__CsiSet *cs = next_csi_set(&f->a);
    ASSERT_EQ(cs->ha_state, HALO_HA_ACTIVE);
    send_response(f, &f->a, 2, cs->invocation, false);
    ASSERT_EQ(reply_to(&f->a, 2, NULL), 0);
    cs = next_csi_set(&f->b);
    ASSERT_EQ(cs->ha_state, HALO_HA_STANDBY);
    send_response(f, &f->b, 2, cs->invocation, false);
    run(f);
}

/* ---- tests -------------------------------------------------------------- */

TEST(dispatch_register_response_and_refusals) {
    struct fixture f = {0};
    fixture_start(&f);
    send_register(&f, &f.stranger, 9, "a"); /* not the process halod started */
    ASSERT_EQ(reply_to(&f.stranger, 9, NULL), -EPERM);
    send_register(&f, &f.a, 1, "nope");
    ASSERT_EQ(reply_to(&f.a, 1, NULL), -HALO_EUNKNOWN);
    assigned(&f);
    send_register(&f, &f.a, 3, "a"); /* twice */
    ASSERT_EQ(reply_to(&f.a, 3, NULL), -HALO_EEXIST);
    send_response(&f, &f.a, 4, 12345, false); /* an invocation it does not hold */
    ASSERT_EQ(reply_to(&f.a, 4, NULL), -HALO_EBADINVOCATION);
    ASSERT(!f.a.closed); /* an error, not an attack */
    fixture_stop(&f);
}

/* from reports an error of comp; returns halod's answer. */
static int error_report(struct fixture *f, struct conn *from, uint64_t seq, const char *comp) {
    Halo__Link__ErrorReport er = HALO__LINK__ERROR_REPORT__INIT;
    LinkMsg m = HALO__LINK__MSG__INIT;
    er.seq = seq, er.comp = (char *)comp, er.recovery = 1;
    m.body_case = HALO__LINK__MSG__BODY_ERROR_REPORT, m.error_report = &er;
    dispatch_msg(&f->m, from, &m);
    return reply_to(from, seq, NULL);
}

TEST(dispatch_health_checks_and_error_report) {
    struct fixture f = {0};
    fixture_start(&f);
    assigned(&f);
    Halo__Link__HealthcheckStart hs = HALO__LINK__HEALTHCHECK_START__INIT;
    Halo__Link__HealthcheckConfirm hc = HALO__LINK__HEALTHCHECK_CONFIRM__INIT;
    Halo__Link__HealthcheckStop hp = HALO__LINK__HEALTHCHECK_STOP__INIT;
    LinkMsg m = HALO__LINK__MSG__INIT;
    hs.seq = 10, hs.comp = "a", hs.key = "k", hs.invoked = HALO_HC_COMPONENT_INVOKED, hs.recovery = 1;
    m.body_case = HALO__LINK__MSG__BODY_HC_START, m.hc_start = &hs;
    dispatch_msg(&f.m, &f.a, &m);
    ASSERT_EQ(reply_to(&f.a, 10, NULL), 0);
    hc.seq = 11, hc.comp = "a", hc.key = "other";
    m.body_case = HALO__LINK__MSG__BODY_HC_CONFIRM, m.hc_confirm = &hc;
    dispatch_msg(&f.m, &f.a, &m);
    ASSERT_EQ(reply_to(&f.a, 11, NULL), -ENOENT);
    hc.seq = 12, hc.key = "k";
    dispatch_msg(&f.m, &f.a, &m);
    ASSERT_EQ(reply_to(&f.a, 12, NULL), 0);
    hp.seq = 13, hp.comp = "a", hp.key = "k";
    m.body_case = HALO__LINK__MSG__BODY_HC_STOP, m.hc_stop = &hp;
    dispatch_msg(&f.m, &f.a, &m);
    ASSERT_EQ(reply_to(&f.a, 13, NULL), 0);
    /* b's link reports a as failed: b is promoted. */
    ASSERT_EQ(error_report(&f, &f.b, 14, "a"), 0);
    ASSERT(amf_find_su(f.m.amf, "a")->failing);
    fixture_stop(&f);
}

TEST(dispatch_pg_track_and_ha_state) {
    struct fixture f = {0};
    fixture_start(&f);
    assigned(&f);
    Halo__Link__PgTrack pt = HALO__LINK__PG_TRACK__INIT;
    LinkMsg m = HALO__LINK__MSG__INIT;
    pt.seq = 20, pt.csi = "csi", pt.flags = HALO_TRACK_CURRENT;
    m.body_case = HALO__LINK__MSG__BODY_PG_TRACK, m.pg_track = &pt;
    dispatch_msg(&f.m, &f.stranger, &m);
    ASSERT_EQ(reply_to(&f.stranger, 20, NULL), 0);
    LinkMsg *n = fake_conn_next(&f.stranger);
    ASSERT(n && n->body_case == HALO__LINK__MSG__BODY_PG_TRACK_NOTIFY && n->pg_track_notify->n_members == 2);
    Halo__Link__PgTrackStop ps = HALO__LINK__PG_TRACK_STOP__INIT;
    ps.seq = 21, ps.csi = "csi";
    m.body_case = HALO__LINK__MSG__BODY_PG_TRACK_STOP, m.pg_track_stop = &ps;
    dispatch_msg(&f.m, &f.stranger, &m); /* CURRENT only: nothing kept to stop */
    ASSERT_EQ(reply_to(&f.stranger, 21, NULL), -ENOENT);
    Halo__Link__HaStateGet hg = HALO__LINK__HA_STATE_GET__INIT;
    hg.seq = 22, hg.comp = "b", hg.csi = "csi";
    m.body_case = HALO__LINK__MSG__BODY_HA_STATE_GET, m.ha_state_get = &hg;
    dispatch_msg(&f.m, &f.stranger, &m);
    n = NULL;
    for (LinkMsg *x; (x = fake_conn_next(&f.stranger));)
        if (x->body_case == HALO__LINK__MSG__BODY_REPLY && x->reply->seq == 22)
            n = x;
    ASSERT(n && n->reply->error == 0 && n->reply->ha_state == HALO_HA_STANDBY);
    fixture_stop(&f);
}

TEST(dispatch_entrypoint_process_event_object_states) {
    struct fixture f = {0};
    fixture_start(&f);
    assigned(&f);
    const char *json = NULL;
    ASSERT_EQ(entrypoint_get(&f, &f.b, 30, &json), 0);
    LinkMsg m = HALO__LINK__MSG__INIT;
    ASSERT(json && strstr(json, "\"si\":\"si\"") && strstr(json, "\"active\":\"a\"") && !strstr(json, "recovery"));
    Halo__Link__ProcessEvent pe = HALO__LINK__PROCESS_EVENT__INIT;
    pe.seq = 31, pe.event = HALO__LINK__PROCESS_EVENT__EVENT__STARTED, pe.reason = "";
    m.body_case = HALO__LINK__MSG__BODY_PROCESS_EVENT, m.process_event = &pe;
    dispatch_msg(&f.m, &f.stranger, &m); /* not a registered process */
    ASSERT_EQ(reply_to(&f.stranger, 31, NULL), -HALO_ENOTREG);
    pe.seq = 32;
    dispatch_msg(&f.m, &f.b, &m); /* in no pool: refused, nothing to recover */
    ASSERT_EQ(reply_to(&f.b, 32, NULL), -HALO_EBADSTATE);
    pe.seq = 33, pe.event = HALO__LINK__PROCESS_EVENT__EVENT__RECOVERED;
    dispatch_msg(&f.m, &f.b, &m); /* nothing to recover */
    ASSERT_EQ(reply_to(&f.b, 33, NULL), -HALO_EBADSTATE);
    /* The registrations were reported ONLINE and published: the states are known. */
    for (int i = 0; i < 200 && queue_state_get(f.m.queue, "process:a") < 0; i++)
        uv_run(&f.loop, UV_RUN_ONCE);
    char *objects[] = {"process:a", "process:nope"};
    Halo__Link__ObjectStateGet og = HALO__LINK__OBJECT_STATE_GET__INIT;
    og.seq = 34, og.objects = objects, og.n_objects = 2;
    m.body_case = HALO__LINK__MSG__BODY_OBJECT_STATE_GET, m.object_state_get = &og;
    dispatch_msg(&f.m, &f.stranger, &m);
    LinkMsg *r = NULL;
    for (LinkMsg *x; (x = fake_conn_next(&f.stranger));)
        if (x->body_case == HALO__LINK__MSG__BODY_REPLY && x->reply->seq == 34)
            r = x;
    ASSERT(r && r->reply->n_states == 2);
    ASSERT_STREQ(r->reply->states[0]->state, "ONLINE");
    ASSERT_STREQ(r->reply->states[1]->state, "");
    fixture_stop(&f);
}

TEST(dispatch_admin_commands) {
    struct fixture f = {0};
    fixture_start(&f);
    assigned(&f);
    send_admin(&f, &f.a, 40, HALO__LINK__ADMIN__OP__STATUS, ""); /* not haloctl */
    ASSERT_EQ(reply_to(&f.a, 40, NULL), -EPERM);
    const char *json = NULL;
    send_admin(&f, &f.admin, 41, HALO__LINK__ADMIN__OP__STATUS, "");
    ASSERT_EQ(reply_to(&f.admin, 41, &json), 0);
    ASSERT(json && strstr(json, "\"service_groups\"") && strstr(json, "\"coordinator\":\"n1\""));
    ASSERT(strstr(json, "\"store\":\"memory\"")); /* the backend it runs on, whatever it is */
    send_admin(&f, &f.admin, 42, HALO__LINK__ADMIN__OP__REPAIR, "a");
    ASSERT_EQ(reply_to(&f.admin, 42, NULL), -HALO_EBADSTATE); /* not disabled */
    send_admin(&f, &f.admin, 43, HALO__LINK__ADMIN__OP__UNLOCK, "a");
    ASSERT_EQ(reply_to(&f.admin, 43, NULL), -HALO_EEXIST);
    send_admin(&f, &f.admin, 44, HALO__LINK__ADMIN__OP__FAILVEC, "a");
    ASSERT_EQ(reply_to(&f.admin, 44, NULL), -EINVAL); /* in no pool */
    /* A switchover is answered once it is done. */
    send_admin(&f, &f.admin, 45, HALO__LINK__ADMIN__OP__SWITCHOVER, "si");
    ASSERT(!has_reply(&f.admin, 45));
    const Halo__Link__CsiSet *q = next_csi_set(&f.a);
    ASSERT_EQ(q->ha_state, HALO_HA_QUIESCING);
    send_response(&f, &f.a, 0, q->invocation, true);
    send_response(&f, &f.b, 0, next_csi_set(&f.b)->invocation, false);
    ASSERT_EQ(reply_to(&f.admin, 45, NULL), 0);
    /* haloctl goes away during a lock: the lock goes on, nobody is answered. */
    send_response(&f, &f.a, 0, next_csi_set(&f.a)->invocation, false); /* a: STANDBY */
    send_admin(&f, &f.admin, 46, HALO__LINK__ADMIN__OP__LOCK, "a");
    ASSERT(!has_reply(&f.admin, 46));
    dispatch_conn_closed(&f.m, &f.admin, "haloctl timed out");
    LinkMsg *rm = fake_conn_next(&f.a);
    ASSERT(rm && rm->body_case == HALO__LINK__MSG__BODY_CSI_REMOVE);
    send_response(&f, &f.a, 0, rm->csi_remove->invocation, false);
    ASSERT(!has_reply(&f.admin, 46));
    ASSERT(amf_find_su(f.m.amf, "a")->admin == SU_LOCKED);
    send_admin(&f, &f.stranger, 47, 99, "");
    ASSERT_EQ(reply_to(&f.stranger, 47, NULL), -EPERM);
    f.stranger.admin = true;
    send_admin(&f, &f.stranger, 48, 99, ""); /* an op this version does not know */
    ASSERT_EQ(reply_to(&f.stranger, 48, NULL), -EOPNOTSUPP);
    send_admin(&f, &f.stranger, 49, HALO__LINK__ADMIN__OP__RESTART, "b");
    ASSERT_EQ(reply_to(&f.stranger, 49, NULL), 0);
    /* In place: b keeps its role while its process restarts. */
    ASSERT(!amf_find_su(f.m.amf, "b")->failing && amf_find_comp(f.m.amf, "b")->restart_in_place);
    fixture_stop(&f);
}

TEST(dispatch_events_read_and_follow) {
    struct fixture f = {0};
    fixture_start(&f);
    assigned(&f);
    for (int i = 0; i < 200 && queue_state_get(f.m.queue, "process:b") < 0; i++)
        uv_run(&f.loop, UV_RUN_ONCE);
    send_admin(&f, &f.admin, 50, HALO__LINK__ADMIN__OP__EVENTS, "");
    for (int i = 0; i < 100 && !has_reply(&f.admin, 50); i++)
        uv_run(&f.loop, UV_RUN_ONCE);
    const char *json = NULL;
    ASSERT_EQ(reply_to(&f.admin, 50, &json), 0);
    ASSERT(json && strstr(json, "\"process:a\"") && strstr(json, "\"ONLINE\""));
    send_admin(&f, &f.admin, 51, HALO__LINK__ADMIN__OP__EVENTS_FOLLOW, "");
    ASSERT_EQ(reply_to(&f.admin, 51, NULL), 0);
    /* What is published next comes to the follower as a note. */
    fake_proc_exit(amf_find_comp(f.m.amf, "b")->proc, 9);
    LinkMsg *note = NULL;
    for (int i = 0; i < 200 && !note; i++) {
        uv_run(&f.loop, UV_RUN_ONCE);
        for (LinkMsg *x; (x = fake_conn_next(&f.admin));)
            if (x->body_case == HALO__LINK__MSG__BODY_OBJECT_STATE_NOTE)
                note = x;
    }
    ASSERT(note && note->object_state_note->n_states >= 1);
    ASSERT_STREQ(note->object_state_note->states[0]->object, "process:b");
    ASSERT_STREQ(note->object_state_note->states[0]->state, "FAILED");
    fixture_stop(&f);
}

TEST(dispatch_drops_a_client_that_sends_what_only_halod_sends) {
    struct fixture f = {0};
    fixture_start(&f);
    Halo__Link__CsiSet cs = HALO__LINK__CSI_SET__INIT;
    LinkMsg m = HALO__LINK__MSG__INIT;
    cs.invocation = 1, cs.comp = "a", cs.csi = "csi", cs.si = "si", cs.ha_state = HALO_HA_ACTIVE;
    m.body_case = HALO__LINK__MSG__BODY_CSI_SET, m.csi_set = &cs;
    dispatch_msg(&f.m, &f.stranger, &m);
    ASSERT(f.stranger.closed);
    ASSERT(!f.a.closed);
    fixture_stop(&f);
}

TEST(dispatch_error_report_for_another_component_needs_privilege) {
    struct fixture f = {0};
    fixture_start(&f);
    assigned(&f);
    /* Another user of the socket's group: neither root nor halod's user, not a's process. */
    f.stranger.uid = f.b.uid = 65534;
    ASSERT_EQ(error_report(&f, &f.stranger, 60, "a"), -EPERM);
    ASSERT_EQ(error_report(&f, &f.b, 61, "a"), -EPERM);
    ASSERT(!amf_find_su(f.m.amf, "a")->failing);
    /* Its own process may, whatever its user. */
    f.a.uid = 65534;
    ASSERT_EQ(error_report(&f, &f.a, 62, "a"), 0);
    ASSERT(amf_find_su(f.m.amf, "a")->failing);
    fixture_stop(&f);
}

/* ---- recovery ----------------------------------------------------------- */

static void on_guard(uv_timer_t *t) {
    *(bool *)t->data = true;
}

/* Runs the loop until done(f) or msec have passed; returns done(f). */
static bool run_until(struct fixture *f, bool (*done)(struct fixture *f), uint64_t msec) {
    bool expired = false;
    uv_timer_t guard;
    ASSERT_OK(uv_timer_init(&f->loop, &guard));
    guard.data = &expired;
    ASSERT_OK(uv_timer_start(&guard, on_guard, msec, 0));
    while (!done(f) && !expired)
        uv_run(&f->loop, UV_RUN_ONCE);
    uv_close((uv_handle_t *)&guard, NULL);
    uv_run(&f->loop, UV_RUN_NOWAIT);
    return done(f);
}

static bool a_online(struct fixture *f) {
    return queue_state_get(f->m.queue, "process:a") == QUEUE_HA_ONLINE;
}

static bool a_restarted(struct fixture *f) {
    return amf_find_comp(f->m.amf, "a")->proc != NULL;
}

/* a's new process got its whole vector and the cluster was told TRANSIENT. */
static bool a_transient(struct fixture *f) {
    bool vector = false;
    for (size_t i = 0; i < f->a2.n_msgs; i++) {
        const LinkMsg *m = f->a2.msgs[i];
        if (m->body_case == HALO__LINK__MSG__BODY_RECOVERY_NOTE && streq(m->recovery_note->state, "recover") &&
            m->recovery_note->last)
            vector = true;
    }
    return vector && queue_state_get(f->m.queue, "process:a") == QUEUE_HA_TRANSIENT;
}

/* a, ACTIVE and ONLINE, dies; b takes over; a's new process (a2) registers. */
static void a_killed_and_registered_again(struct fixture *f) {
    assigned(f);
    ASSERT(run_until(f, a_online, 5000));
    struct comp *ca = amf_find_comp(f->m.amf, "a");
    fake_proc_exit(ca->proc, 9);
    dispatch_conn_closed(&f->m, &f->a, "its process died");
    send_response(f, &f->b, 3, next_csi_set(&f->b)->invocation, false); /* b: ACTIVE */
    ASSERT(run_until(f, a_restarted, 5000));
    f->a2.pid = ca->pid;
    send_register(f, &f->a2, 1, "a");
}

static const char *admin_status(struct fixture *f, uint64_t seq) {
    const char *json = NULL;
    send_admin(f, &f->admin, seq, HALO__LINK__ADMIN__OP__STATUS, "");
    ASSERT_EQ(reply_to(&f->admin, seq, &json), 0);
    ASSERT(json);
    return json;
}

/*
 * A pool process restarts and asks for its entrypoint; the first read of its
 * recovery (its current epoch) fails, as one to an etcd member that went
 * away would.  That is no refusal: haloctl status says the read is tried
 * again, it is, and the recovery goes on (the vector, TRANSIENT).  It did
 * not: the failed read was dropped, and the process waited for ever.
 */
TEST(dispatch_recovery_retries_a_failed_store_read) {
    struct fixture f = {.description = pooled};
    fixture_start(&f);
    a_killed_and_registered_again(&f);
    ASSERT_EQ(reply_to(&f.a2, 1, NULL), 0);

    char key[STORE_KEY_MAX];
    ASSERT(key_current_epoch(key, f.m.prefix, "process:a") > 0);
    ASSERT_OK(store_engine_fail_reads(f.m.store, key, 1, -ETIMEDOUT));
    const char *json = NULL;
    ASSERT_EQ(entrypoint_get(&f, &f.a2, 2, &json), 0);
    ASSERT(json && strstr(json, "\"recovery\":true"));
    run(&f); /* the read fails */
    ASSERT(!a_transient(&f));
    json = admin_status(&f, 70);
    if (!strstr(json, "store read failed, retrying") || strstr(json, "refused"))
        CHECK_FAIL("haloctl status does not say the read is tried again: %s", json);

    ASSERT(run_until(&f, a_transient, 3000));
    for (size_t i = 0; i < f.a2.n_msgs; i++)
        ASSERT(f.a2.msgs[i]->body_case != HALO__LINK__MSG__BODY_RECOVERY_NOTE ||
               !streq(f.a2.msgs[i]->recovery_note->state, "refused"));
    json = admin_status(&f, 71);
    ASSERT(strstr(json, "\"state\":\"transient\"") && !strstr(json, "store read failed"));
    fixture_stop(&f);
}

/* a's recovery was under way when halod stopped; the first read of the recovery states will fail. */
static void recovering_and_a_failing_read(struct fixture *f) {
    char key[STORE_KEY_MAX];
    const char *v = "{\"state\":\"recovering\",\"epoch\":3}";
    ASSERT(key_name(key, f->m.prefix, KEY_RECOVERY, "process:a") > 0);
    ASSERT_OK(store_put(f->m.store, key, v, strlen(v), 0, NULL, NULL));
    ASSERT(key_dir(key, f->m.prefix, KEY_RECOVERY) > 0);
    ASSERT_OK(store_engine_fail_reads(f->m.store, key, 1, -ETIMEDOUT));
}

static bool a_carries_on(struct fixture *f) {
    json_t *j = json_object();
    recovery_local_status(f->m.recovery, amf_find_comp(f->m.amf, "a"), j);
    const char *st = json_string_value(json_object_get(json_object_get(j, "recovery"), "state"));
    bool r = st && streq(st, "recovering");
    json_decref(j);
    return r;
}

/*
 * halod starts while a's recovery is under way (recovery/process:a says
 * RECOVERING), and its first read of the recovery states fails.  Not read is
 * not "none": it reads them again and carries on (a RECOVERED then ends the
 * recovery).  It took every process for idle.
 */
TEST(dispatch_recovery_states_are_read_again_after_a_failed_read) {
    struct fixture f = {.description = pooled, .before_start = recovering_and_a_failing_read};
    fixture_start(&f);
    ASSERT(!a_carries_on(&f));
    ASSERT(run_until(&f, a_carries_on, 3000));
    fixture_stop(&f);
}

static void process_event(struct fixture *f, struct conn *c, uint64_t seq, Halo__Link__ProcessEvent__Event event) {
    Halo__Link__ProcessEvent pe = HALO__LINK__PROCESS_EVENT__INIT;
    LinkMsg m = HALO__LINK__MSG__INIT;
    pe.seq = seq, pe.event = event, pe.reason = "";
    m.body_case = HALO__LINK__MSG__BODY_PROCESS_EVENT, m.process_event = &pe;
    dispatch_msg(&f->m, c, &m);
}

static bool a_failed(struct fixture *f) {
    return queue_state_get(f->m.queue, "process:a") == QUEUE_HA_FAILED;
}

/* a was sent its vector again: a second "recover" note ended. */
static bool a_told_to_recover_again(struct fixture *f) {
    int n = 0;
    for (size_t i = 0; i < f->a2.n_msgs; i++) {
        const LinkMsg *m = f->a2.msgs[i];
        n += m->body_case == HALO__LINK__MSG__BODY_RECOVERY_NOTE && streq(m->recovery_note->state, "recover") &&
             m->recovery_note->last;
    }
    return n >= 2;
}

/* The coordinator stops consuming; n2 reports a FAILED in a's current epoch
 * (its node's lease ended, say): it waits in the event queue. */
static void n2_reports_a_failed_while_nobody_consumes(struct fixture *f) {
    struct queue_state st;
    ASSERT_OK(queue_state_of(f->m.queue, "process:a", &st));
    recovery_coord_set(f->m.coord, false);
    struct queue_event ev;
    ASSERT_OK(queue_event_init(&ev, "process:a", QUEUE_HA_FAILED));
    snprintf(ev.node, sizeof(ev.node), "n2");
    snprintf(ev.reason, sizeof(ev.reason), "its node's lease ended");
    ev.epoch = st.epoch;
    ASSERT_OK(eq_append(f->m.queue, &ev, 1, NULL, NULL));
    run(f);
}

/*
 * a recovers; another node's report that a FAILED in the epoch being
 * recovered (its node's lease ended, say) is consumed before a's RECOVERING
 * and ONLINE: it is published, and the coordinator refuses what follows
 * ("RECOVERING follows TRANSIENT", "a pool process comes back ONLINE by
 * recovering").  a's halod counted a recovered
 * and took the FAILED for old news (of an epoch before its own): a ran,
 * FAILED for the whole cluster, for good (chaos seed 404).  It recovers again.
 */
TEST(dispatch_recovery_again_when_a_failure_is_published_before_its_online) {
    struct fixture f = {.description = pooled};
    fixture_start(&f);
    a_killed_and_registered_again(&f);
    ASSERT_EQ(entrypoint_get(&f, &f.a2, 2, NULL), 0);
    ASSERT(run_until(&f, a_transient, 3000));
    /* The coordinator pauses; n2's report goes into the event queue, then a's RECOVERING and ONLINE. */
    n2_reports_a_failed_while_nobody_consumes(&f);
    process_event(&f, &f.a2, 3, HALO__LINK__PROCESS_EVENT__EVENT__STARTING);
    ASSERT_EQ(reply_to(&f.a2, 3, NULL), 0);
    run(&f);
    process_event(&f, &f.a2, 4, HALO__LINK__PROCESS_EVENT__EVENT__RECOVERED);
    ASSERT_EQ(reply_to(&f.a2, 4, NULL), 0);
    run(&f);
    recovery_coord_set(f.m.coord, true);
    ASSERT(run_until(&f, a_failed, 3000));
    if (!run_until(&f, a_told_to_recover_again, 3000))
        CHECK_FAIL("a is published FAILED and was not told to recover again");
    fixture_stop(&f);
}

static bool a_online_here_and_published(struct fixture *f) {
    json_t *j = json_object();
    recovery_local_status(f->m.recovery, amf_find_comp(f->m.amf, "a"), j);
    const char *st = json_string_value(json_object_get(json_object_get(j, "recovery"), "state"));
    bool idle = st && streq(st, "idle");
    json_decref(j);
    return idle && a_online(f);
}

/*
 * The same report of a's failure from another node, consumed before a's
 * recovery's TRANSIENT this time: the whole recovery follows it (TRANSIENT,
 * RECOVERING, ONLINE are taken) and stands.  Recovering again then (chaos
 * seed 404, with the rule above taken too far) left a second attempt whose
 * ONLINE was refused as stale: a RECOVERING for good.
 */
TEST(dispatch_a_failure_published_before_the_recovery_is_followed_by_it) {
    struct fixture f = {.description = pooled};
    fixture_start(&f);
    assigned(&f);
    ASSERT(run_until(&f, a_online, 5000));
    n2_reports_a_failed_while_nobody_consumes(&f);
    struct comp *ca = amf_find_comp(f.m.amf, "a");
    fake_proc_exit(ca->proc, 9);
    dispatch_conn_closed(&f.m, &f.a, "its process died");
    send_response(&f, &f.b, 3, next_csi_set(&f.b)->invocation, false); /* b: ACTIVE */
    ASSERT(run_until(&f, a_restarted, 5000));
    f.a2.pid = ca->pid;
    send_register(&f, &f.a2, 1, "a");
    ASSERT_EQ(entrypoint_get(&f, &f.a2, 2, NULL), 0);
    run(&f);
    process_event(&f, &f.a2, 3, HALO__LINK__PROCESS_EVENT__EVENT__STARTING);
    run(&f);
    process_event(&f, &f.a2, 4, HALO__LINK__PROCESS_EVENT__EVENT__RECOVERED);
    ASSERT_EQ(reply_to(&f.a2, 4, NULL), 0);
    run(&f);
    recovery_coord_set(f.m.coord, true);
    if (!run_until(&f, a_online_here_and_published, 3000))
        CHECK_FAIL("a is not ONLINE, here and published, after its recovery");
    run_until(&f, a_told_to_recover_again, 300);
    ASSERT(!a_told_to_recover_again(&f));
    ASSERT(a_online_here_and_published(&f));
    fixture_stop(&f);
}
