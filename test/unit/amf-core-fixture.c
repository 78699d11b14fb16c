/* SPDX-License-Identifier: MIT */
/* The AMF core's test fixture (amf-core-fixture.h): fakes, recording observers and placement. */
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "amf-core-fixture.h"
#include "macro.h"

/* The process of a component ends, as its pidfd would tell. */
void proc_exit(struct comp *c, int status) {
    fake_proc_exit(c->proc, status);
}

LinkMsg *next_msg(struct conn *c) {
    return fake_conn_next(c);
}

const Halo__Link__CsiSet *expect_csi_set(struct conn *c, halo_ha_state state) {
    LinkMsg *m = next_msg(c);
    if (!m || m->body_case != HALO__LINK__MSG__BODY_CSI_SET)
        CHECK_FAIL("expected CSI set %s, got %s", halo_ha_state_to_string(state),
                   m ? link_msg_type_name(m) : "nothing");
    if (m->csi_set->ha_state != (uint32_t)state)
        CHECK_FAIL("expected CSI set %s, got %s", halo_ha_state_to_string(state),
                   halo_ha_state_to_string((halo_ha_state)m->csi_set->ha_state));
    return m->csi_set;
}

/* ---- observers and placement: recording stubs ------------------------------ */

char events[256][96];
size_t n_events;

void record(const char *fmt, ...) {
    va_list ap;
    ASSERT(n_events < ELEMENTSOF(events));
    va_start(ap, fmt);
    vsnprintf(events[n_events++], sizeof(events[0]), fmt, ap);
    va_end(ap);
}

bool seen(const char *what) {
    for (size_t i = 0; i < n_events; i++)
        if (streq(events[i], what))
            return true;
    return false;
}

/* The index of what in the record, or -1. */
int seen_at(const char *what) {
    for (size_t i = 0; i < n_events; i++)
        if (streq(events[i], what))
            return (int)i;
    return -1;
}

static const char *const comp_event_names[] = {"spawned", "registered", "failed", "exited"};
static const char *const su_event_names[] = {"state", "admin", "adopted"};

static void obs_assignment(void *u, struct si *si) {
    record("assignment %s", si->name);
}

static void obs_si(void *u, struct si *si) {
    record("si %s", si->name);
}

static void obs_su(void *u, struct su *su, enum amf_su_event ev) {
    record("su %s %s", su->name, su_event_names[ev]);
}

static void obs_comp(void *u, struct comp *c, enum amf_comp_event ev, const char *reason) {
    record("comp %s %s", c->name, comp_event_names[ev]);
}

const struct amf_observer observer = {
    .assignment_changed = obs_assignment,
    .si_changed = obs_si,
    .su_event = obs_su,
    .comp_event = obs_comp,
};

static int remote_publish_target(void *p, struct si *si, struct assignment *a) {
    a->gen = amf_si_next_generation(si);
    record("target %s %s", a->su->name, a->removing ? "REMOVED" : halo_ha_state_to_string(a->target));
    return a->su->local ? 0 : 1;
}

static void remote_publish_confirmed(void *p, struct si *si, const struct assignment *a, bool removed) {
    record("confirmed %s %s", a->su->name, removed ? "REMOVED" : halo_ha_state_to_string(a->state));
}

static void remote_forget(void *p, struct si *si, struct su *su) {
    record("forget %s %s", si->name, su->name);
}

const struct amf_placement_ops remote_placement = {
    .distributed = true,
    .publish_target = remote_publish_target,
    .publish_confirmed = remote_publish_confirmed,
    .forget = remote_forget,
};

/* ---- the fixture: a description, an AMF, two units' links ------------------- */

/* The tests wait with `while (!cond) uv_run(UV_RUN_ONCE)`.  A callback that was
 * already due runs at the top of that iteration, and the poll after it then
 * sleeps until the next timer: seconds or minutes away (a step timeout), and the
 * wait hangs.  A tick every 5 ms bounds that sleep; unreferenced, it keeps no
 * loop running by itself.  (test-amf-ladder hung in about 5 % of its runs
 * without it: a 1 ms restart delay had passed when the wait began.)  One AMF,
 * one loop, one tick per test process. */
static uv_timer_t tick;

static void on_tick(uv_timer_t *t) {
}

void amf_core_start(uv_loop_t *loop, const char *yaml, char path[AMF_CORE_PATH_MAX], struct config **ret_cfg,
                    struct amf **ret_amf) {
    char *errors = NULL;
    snprintf(path, AMF_CORE_PATH_MAX, "/tmp/test-amf-%d.yaml", (int)getpid());
    FILE *fp = fopen(path, "w");
    ASSERT(fp);
    fputs(yaml, fp);
    fclose(fp);
    if (config_load(path, ret_cfg, &errors) < 0)
        CHECK_FAIL("the description does not load: %s", errors ? errors : "?");
    ASSERT_OK(uv_loop_init(loop));
    struct amf_params p = {.loop = loop, .config = *ret_cfg, .node = "n1", .socket_path = "/x"};
    ASSERT_OK(amf_new(&p, ret_amf));
    ASSERT(!tick.loop || uv_is_closing((uv_handle_t *)&tick));
    uv_timer_init(loop, &tick);
    uv_timer_start(&tick, on_tick, 5, 5);
    uv_unref((uv_handle_t *)&tick);
}

void amf_core_stop(uv_loop_t *loop, const char *path, struct config **cfg, struct amf **amf) {
    uv_close((uv_handle_t *)&tick, NULL);
    amf_close(*amf);
    uv_run(loop, UV_RUN_DEFAULT);
    *amf = amf_free(*amf);
    *cfg = config_free(*cfg);
    ASSERT_OK(uv_loop_close(loop));
    unlink(path);
}

void fixture_start(struct fixture *f, const char *yaml) {
    amf_core_start(&f->loop, yaml, f->path, &f->cfg, &f->amf);
    ASSERT_OK(amf_observe(f->amf, &observer, NULL));
    n_events = 0;
}

void fixture_stop(struct fixture *f) {
    amf_core_stop(&f->loop, f->path, &f->cfg, &f->amf);
    for (size_t i = 0; i < ELEMENTSOF(f->conns); i++)
        fake_conn_done(&f->conns[i]);
    fake_io_done();
}

/* The component's process registers on the fixture's link i. */
struct conn *registered(struct fixture *f, size_t i, const char *comp) {
    struct comp *c = amf_find_comp(f->amf, comp);
    ASSERT(c && c->proc);
    struct conn *conn = &f->conns[i];
    conn->pid = c->pid;
    size_t r = conn->n_replies;
    amf_comp_register(f->amf, conn, 7, comp, NULL, false, false);
    ASSERT_EQ(conn->n_replies, r + 1);
    ASSERT_EQ(conn->reply_err[r], 0);
    return conn;
}

/* The component answers the CSI set it was sent. */
void answer(struct fixture *f, struct conn *conn, const Halo__Link__CsiSet *cs) {
    amf_response(f->amf, conn, 0, cs->invocation, 0, true);
}

/* Both units registered, a ACTIVE and b STANDBY, every CSI set answered. */
void fully_assigned(struct fixture *f, struct conn **ret_a, struct conn **ret_b) {
    amf_set_ready(f->amf);
    ASSERT(seen("comp a spawned") && seen("comp b spawned"));
    struct conn *a = registered(f, 0, "a");
    struct conn *b = registered(f, 1, "b");
    answer(f, a, expect_csi_set(a, HALO_HA_ACTIVE));
    answer(f, b, expect_csi_set(b, HALO_HA_STANDBY));
    struct si *si = amf_find_si(f->amf, "si");
    ASSERT(amf_si_find(si, HALO_HA_ACTIVE)->su == amf_find_su(f->amf, "a"));
    ASSERT(amf_si_find(si, HALO_HA_ACTIVE)->confirmed && amf_si_find(si, HALO_HA_STANDBY)->confirmed);
    *ret_a = a;
    *ret_b = b;
}

void waiter_done(struct amf_waiter *w, int error) {
    record("waiter %s", error == 0 ? "ok" : "error");
}
