/* SPDX-License-Identifier: MIT */
/*
 * Unit tests of the operator's maintenance operations (src/halod/amf/amf-admin.c,
 * amf-admin-group.c) on the AMF core with fake processes and HA links: which
 * CSI set each component gets, in what order, which processes stop and start,
 * the administrative state each unit ends in and when the operator is answered.
 */
#include <errno.h>
#include <signal.h>
#include <string.h>

#include "amf-core-fixture.h"

static struct fixture f;
static struct conn *a, *b;

static void start(const char *yaml) {
    memset(&f, 0, sizeof(f));
    fixture_start(&f, yaml);
    fully_assigned(&f, &a, &b);
    n_events = 0;
}

static struct su *su(const char *name) {
    return amf_find_su(f.amf, name);
}

static struct assignment *active(void) {
    return amf_si_find(amf_find_si(f.amf, "si"), HALO_HA_ACTIVE);
}

static struct sg *first_sg(void) {
    size_t n;
    return &amf_sgs(f.amf, &n)[0];
}

static void expect_remove(struct conn *c) {
    LinkMsg *m = next_msg(c);
    if (!m || m->body_case != HALO__LINK__MSG__BODY_CSI_REMOVE)
        CHECK_FAIL("expected CSI remove, got %s", m ? link_msg_type_name(m) : "nothing");
    amf_response(f.amf, c, 0, m->csi_remove->invocation, 0, false);
}

/* The component's process was asked to terminate; it answers and exits. */
static void terminates(struct conn *c, const char *comp) {
    LinkMsg *m = next_msg(c);
    if (!m || m->body_case != HALO__LINK__MSG__BODY_TERMINATE)
        CHECK_FAIL("expected terminate, got %s", m ? link_msg_type_name(m) : "nothing");
    amf_response(f.amf, c, 0, m->terminate->invocation, 0, false);
    amf_conn_closed(f.amf, c, "exited");
    proc_exit(amf_find_comp(f.amf, comp), 0);
}

TEST(admin_lock_quiesces_at_once_hands_over_then_removes) {
    start(TWO_UNITS("{max: 3, window: 1m, delay: 10ms}"));
    struct amf_waiter w = {.done = waiter_done};
    ASSERT_EQ(amf_run_op(f.amf, AMF_OP_LOCK, "su:a", &w), 1);
    ASSERT(seen("su a admin"));
    ASSERT_STREQ(su_admin_to_string(su("a")->admin), "LOCKED");
    ASSERT_EQ(amf_run_op(f.amf, AMF_OP_LOCK, "su:a", &w), -HALO_EEXIST);
    /* QUIESCED, not QUIESCING: a lock does not wait for the work to complete. */
    answer(&f, a, expect_csi_set(a, HALO_HA_QUIESCED));
    const Halo__Link__CsiSet *act = expect_csi_set(b, HALO_HA_ACTIVE);
    ASSERT_EQ(act->transition, HALO_CSI_QUIESCED);
    answer(&f, b, act);
    ASSERT(!seen("waiter ok"));
    expect_remove(a);
    ASSERT(seen("waiter ok"));
    ASSERT(amf_si_find_su(amf_find_si(f.amf, "si"), su("a")) == NULL);
    ASSERT(amf_find_comp(f.amf, "a")->proc); /* locked, not stopped */
    ASSERT_EQ(amf_su_unlock(f.amf, "a"), 0);
    answer(&f, a, expect_csi_set(a, HALO_HA_STANDBY));
    fixture_stop(&f);
}

TEST(admin_shutdown_waits_for_quiescing_complete_then_ends_locked) {
    start(TWO_UNITS("{max: 3, window: 1m, delay: 10ms}"));
    struct amf_waiter w = {.done = waiter_done};
    ASSERT_EQ(amf_run_op(f.amf, AMF_OP_SHUTDOWN, "su:a", &w), 1);
    ASSERT_STREQ(su_admin_to_string(su("a")->admin), "SHUTTING-DOWN");
    const Halo__Link__CsiSet *q = expect_csi_set(a, HALO_HA_QUIESCING);
    /* Answered, not complete: the SI stays on a, nothing moves. */
    amf_response(f.amf, a, 0, q->invocation, 0, false);
    ASSERT(next_msg(b) == NULL);
    ASSERT(amf_si_find_su(amf_find_si(f.amf, "si"), su("a"))->state == HALO_HA_ACTIVE);
    amf_response(f.amf, a, 0, q->invocation, 0, true);
    const Halo__Link__CsiSet *act = expect_csi_set(b, HALO_HA_ACTIVE);
    ASSERT_EQ(act->transition, HALO_CSI_QUIESCED);
    answer(&f, b, act);
    expect_remove(a);
    ASSERT(seen("waiter ok"));
    ASSERT_STREQ(su_admin_to_string(su("a")->admin), "LOCKED");
    /* An unlock calls off a shutdown still under way. */
    ASSERT_EQ(amf_su_unlock(f.amf, "a"), 0);
    answer(&f, a, expect_csi_set(a, HALO_HA_STANDBY));
    n_events = 0;
    ASSERT_EQ(amf_run_op(f.amf, AMF_OP_SHUTDOWN, "su:b", &w), 1);
    (void)expect_csi_set(b, HALO_HA_QUIESCING);
    ASSERT_EQ(amf_su_unlock(f.amf, "b"), 0);
    ASSERT(seen("waiter error"));
    fixture_stop(&f);
}

TEST(admin_lock_instantiation_needs_locked_and_stops_the_processes) {
    start(TWO_UNITS("{max: 3, window: 1m, delay: 10ms}"));
    struct amf_waiter w = {.done = waiter_done};
    ASSERT_EQ(amf_run_op(f.amf, AMF_OP_LOCK_INSTANTIATION, "su:b", &w), -HALO_EBADSTATE);
    ASSERT_EQ(amf_run_op(f.amf, AMF_OP_LOCK_INSTANTIATION, "si:si", &w), -EINVAL); /* not for an SI */
    ASSERT_EQ(amf_run_op(f.amf, AMF_OP_LOCK, "su:b", &w), 1);
    expect_remove(b);
    ASSERT(seen("waiter ok"));
    n_events = 0;
    ASSERT_EQ(amf_run_op(f.amf, AMF_OP_LOCK_INSTANTIATION, "su:b", &w), 1);
    ASSERT_STREQ(su_admin_to_string(su("b")->admin), "LOCKED-INSTANTIATION");
    terminates(b, "b");
    ASSERT(seen("waiter ok"));
    ASSERT(!seen("comp b failed")); /* stopped, not failed */
    struct comp *cb = amf_find_comp(f.amf, "b");
    ASSERT(!cb->proc);
    ASSERT_STREQ(presence_to_string(cb->presence), "UNINSTANTIATED");
    ASSERT(!su("b")->failing);
    /* Its processes come back only with unlock-instantiation; unlock is refused before. */
    ASSERT_EQ(amf_run_op(f.amf, AMF_OP_UNLOCK, "su:b", &w), -HALO_EBADSTATE);
    ASSERT_EQ(amf_run_op(f.amf, AMF_OP_UNLOCK_INSTANTIATION, "su:b", &w), 0);
    ASSERT_STREQ(su_admin_to_string(su("b")->admin), "LOCKED");
    ASSERT(cb->proc);
    struct conn *b2 = registered(&f, 2, "b");
    ASSERT(next_msg(b2) == NULL); /* still locked: nothing assigned */
    ASSERT_EQ(amf_run_op(f.amf, AMF_OP_UNLOCK, "su:b", &w), 0);
    answer(&f, b2, expect_csi_set(b2, HALO_HA_STANDBY));
    fixture_stop(&f);
}

TEST(admin_restart_of_the_active_component_is_in_place) {
    start(TWO_UNITS("{max: 3, window: 1m, delay: 10ms}"));
    struct comp *ca = amf_find_comp(f.amf, "a");
    pid_t old = ca->pid;
    ASSERT_EQ(amf_run_op(f.amf, AMF_OP_RESTART, "comp:a", NULL), 0);
    ASSERT_EQ(amf_run_op(f.amf, AMF_OP_RESTART, "comp:a", NULL), -HALO_EBADSTATE); /* under way */
    terminates(a, "a");
    /* A new process at once; a stays ACTIVE, b is told nothing. */
    ASSERT(ca->proc && ca->pid != old);
    ASSERT(!seen("comp a failed"));
    ASSERT(active()->su == su("a"));
    ASSERT(next_msg(b) == NULL);
    struct conn *a2 = registered(&f, 2, "a");
    const Halo__Link__CsiSet *cs = expect_csi_set(a2, HALO_HA_ACTIVE);
    answer(&f, a2, cs);
    ASSERT(active()->su == su("a") && active()->confirmed);
    ASSERT(next_msg(b) == NULL);
    ASSERT(!ca->restart_in_place);
    fixture_stop(&f);
}

TEST(admin_restart_of_a_unit_restarts_its_processes_in_place) {
    start(TWO_UNITS("{max: 3, window: 1m, delay: 10ms}"));
    ASSERT_EQ(amf_run_op(f.amf, AMF_OP_RESTART, "su:b", NULL), 0);
    terminates(b, "b");
    struct conn *b2 = registered(&f, 2, "b");
    answer(&f, b2, expect_csi_set(b2, HALO_HA_STANDBY));
    ASSERT(next_msg(a) == NULL);
    ASSERT_STREQ(amf_find_si(f.amf, "si")->asg[1].su->name, "b");
    fixture_stop(&f);
}

TEST(admin_a_restart_in_place_that_fails_to_register_is_a_failure) {
    start(TWO_UNITS("{max: 3, window: 1m, delay: 10ms}"));
    ASSERT_EQ(amf_run_op(f.amf, AMF_OP_RESTART, "comp:a", NULL), 0);
    terminates(a, "a");
    /* The new process dies before registering: a's failure, b takes over. */
    proc_exit(amf_find_comp(f.amf, "a"), 9);
    ASSERT(su("a")->failing);
    ASSERT(!amf_find_comp(f.amf, "a")->restart_in_place);
    (void)expect_csi_set(b, HALO_HA_ACTIVE);
    fixture_stop(&f);
}

TEST(admin_node_switchover_drains_then_stops_every_unit) {
    start(TWO_UNITS("{max: 3, window: 1m, delay: 10ms}"));
    struct amf_waiter w = {.done = waiter_done};
    ASSERT_EQ(amf_run_op(f.amf, AMF_OP_NODE_SWITCHOVER, "node:nope", &w), -HALO_EUNKNOWN);
    ASSERT_EQ(amf_run_op(f.amf, AMF_OP_NODE_SWITCHOVER, "su:a", &w), -EINVAL);
    /* b first: locked already, so only its processes stop. */
    ASSERT_EQ(amf_run_op(f.amf, AMF_OP_LOCK, "su:b", &w), 1);
    expect_remove(b);
    n_events = 0;
    ASSERT_EQ(amf_run_op(f.amf, AMF_OP_NODE_SWITCHOVER, "node:n1", &w), 1);
    terminates(b, "b");
    /* a gracefully: QUIESCING, then removed (nobody to take over), then stopped. */
    const Halo__Link__CsiSet *q = expect_csi_set(a, HALO_HA_QUIESCING);
    amf_response(f.amf, a, 0, q->invocation, 0, true);
    expect_remove(a);
    ASSERT(!seen("waiter ok"));
    terminates(a, "a");
    ASSERT(seen("waiter ok"));
    ASSERT(!seen("comp a failed") && !seen("comp b failed"));
    ASSERT_STREQ(su_admin_to_string(su("a")->admin), "LOCKED-INSTANTIATION");
    ASSERT_STREQ(su_admin_to_string(su("b")->admin), "LOCKED-INSTANTIATION");
    ASSERT_EQ(amf_run_op(f.amf, AMF_OP_UNLOCK_INSTANTIATION, "node:n1", &w), 0);
    ASSERT_EQ(amf_run_op(f.amf, AMF_OP_UNLOCK, "node:n1", &w), 0);
    ASSERT_STREQ(su_admin_to_string(su("a")->admin), "UNLOCKED");
    fixture_stop(&f);
}

TEST(admin_a_node_operation_whose_requester_went_away_tells_nobody) {
    start(TWO_UNITS("{max: 3, window: 1m, delay: 10ms}"));
    struct amf_waiter w = {.done = waiter_done};
    ASSERT_EQ(amf_run_op(f.amf, AMF_OP_LOCK, "node:n1", &w), 1);
    amf_waiter_forget(f.amf, &w); /* haloctl gave up */
    answer(&f, a, expect_csi_set(a, HALO_HA_QUIESCED));
    expect_remove(a);
    expect_remove(b);
    ASSERT(!seen("waiter ok") && !seen("waiter error"));
    ASSERT_STREQ(su_admin_to_string(su("a")->admin), "LOCKED");
    ASSERT_STREQ(su_admin_to_string(su("b")->admin), "LOCKED");
    fixture_stop(&f);
}

TEST(admin_a_group_operation_acts_on_each_unit_and_answers_once) {
    start(TWO_UNITS("{max: 3, window: 1m, delay: 10ms}"));
    struct amf_waiter w = {.done = waiter_done};
    ASSERT_EQ(amf_run_op(f.amf, AMF_OP_LOCK_INSTANTIATION, "sg:g", &w), -HALO_EBADSTATE); /* not locked */
    ASSERT_EQ(amf_run_op(f.amf, AMF_OP_SG_ADJUST, "sg:nope", &w), -HALO_EUNKNOWN);
    ASSERT_EQ(amf_run_op(f.amf, AMF_OP_SHUTDOWN, "sg:g", &w), 1);
    amf_response(f.amf, a, 0, expect_csi_set(a, HALO_HA_QUIESCING)->invocation, 0, true);
    expect_remove(a);
    ASSERT(!seen("waiter ok"));
    expect_remove(b);
    size_t told = 0;
    for (size_t i = 0; i < n_events; i++)
        told += streq(events[i], "waiter ok");
    ASSERT_EQ(told, 1); /* one answer for the group */
    ASSERT_STREQ(su_admin_to_string(su("a")->admin), "LOCKED");
    ASSERT_STREQ(su_admin_to_string(su("b")->admin), "LOCKED");
    ASSERT_EQ(amf_run_op(f.amf, AMF_OP_UNLOCK, "sg:g", &w), 0);
    answer(&f, a, expect_csi_set(a, HALO_HA_ACTIVE));
    answer(&f, b, expect_csi_set(b, HALO_HA_STANDBY));
    fixture_stop(&f);
}

/* a fails, b takes over, a comes back STANDBY. */
static void failed_over_and_back(void) {
    struct comp *ca = amf_find_comp(f.amf, "a");
    proc_exit(ca, 9);
    answer(&f, b, expect_csi_set(b, HALO_HA_ACTIVE));
    while (!ca->proc)
        uv_run(&f.loop, UV_RUN_ONCE);
    a = registered(&f, 2, "a");
    answer(&f, a, expect_csi_set(a, HALO_HA_STANDBY));
}

TEST(admin_sg_adjust_moves_active_back_to_the_preferred_unit_gracefully) {
    start(TWO_UNITS("{max: 3, window: 1m, delay: 1ms}"));
    failed_over_and_back();
    ASSERT(next_msg(b) == NULL); /* no auto-adjust */
    ASSERT_EQ(amf_run_op(f.amf, AMF_OP_SG_ADJUST, "sg:g", NULL), 0);
    answer(&f, b, expect_csi_set(b, HALO_HA_QUIESCING));
    const Halo__Link__CsiSet *act = expect_csi_set(a, HALO_HA_ACTIVE);
    ASSERT_EQ(act->transition, HALO_CSI_QUIESCED);
    answer(&f, a, act);
    answer(&f, b, expect_csi_set(b, HALO_HA_STANDBY));
    ASSERT(active()->su == su("a"));
    fixture_stop(&f);
}

#define ADJUSTING(probation)                            \
    "cluster: t\n"                                      \
    "nodes: {n1: {}}\n"                                 \
    "service-groups:\n"                                 \
    "  g:\n"                                            \
    "    auto-adjust: true\n"                           \
    "    auto-adjust-probation: " probation "\n"        \
    "    component:\n"                                  \
    "      command: /bin/true\n"                        \
    "      restart: {max: 3, window: 1m, delay: 1ms}\n" \
    "    service-units: {a: {}, b: {}}\n"               \
    "    service-instances: {si: {csis: {csi: {}}}}\n"

TEST(admin_auto_adjust_waits_for_the_probation) {
    start(ADJUSTING("150ms"));
    usec_t t0 = now_monotonic_usec();
    failed_over_and_back();
    /* Within the probation nothing moves back; a timer looks again when it ends. */
    ASSERT(next_msg(b) == NULL);
    ASSERT(uv_is_active((uv_handle_t *)&first_sg()->adjust_timer));
    while (!(b->n_msgs > b->taken))
        uv_run(&f.loop, UV_RUN_ONCE);
    ASSERT(now_monotonic_usec() - t0 >= 150 * USEC_PER_MSEC);
    answer(&f, b, expect_csi_set(b, HALO_HA_QUIESCING));
    answer(&f, a, expect_csi_set(a, HALO_HA_ACTIVE));
    ASSERT(active()->su == su("a"));
    fixture_stop(&f);
}

TEST(admin_auto_failback_is_an_alias_of_auto_adjust) {
    start("cluster: t\n"
          "nodes: {n1: {}}\n"
          "service-groups:\n"
          "  g:\n"
          "    auto-failback: true\n"
          "    component: {command: /bin/true, restart: {max: 3, window: 1m, delay: 1ms}}\n"
          "    service-units: {a: {node: n1}, b: {node: n1}}\n"
          "    service-instances: {si: {csis: {csi: {}}}}\n");
    ASSERT(f.cfg->sgs[0].auto_failback);
    ASSERT_EQ(f.cfg->sgs[0].auto_adjust_probation, 10 * USEC_PER_SEC);
    fixture_stop(&f);
}

TEST(admin_si_lock_and_unlock) {
    start(TWO_UNITS("{max: 3, window: 1m, delay: 10ms}"));
    struct amf_waiter w = {.done = waiter_done};
    ASSERT_EQ(amf_run_op(f.amf, AMF_OP_LOCK, "si:si", &w), 1);
    answer(&f, a, expect_csi_set(a, HALO_HA_QUIESCED));
    expect_remove(a);
    ASSERT(!seen("waiter ok"));
    expect_remove(b);
    ASSERT(seen("waiter ok"));
    ASSERT(active() == NULL);
    ASSERT_EQ(amf_run_op(f.amf, AMF_OP_UNLOCK, "si:si", &w), 0);
    answer(&f, a, expect_csi_set(a, HALO_HA_ACTIVE));
    answer(&f, b, expect_csi_set(b, HALO_HA_STANDBY));
    fixture_stop(&f);
}

/* The group's lock holds the units it took out of service, and its unlock gives back those only. */
TEST(admin_a_group_unlock_undoes_exactly_what_its_lock_did) {
    start(TWO_UNITS("{max: 3, window: 1m, delay: 10ms}"));
    struct amf_waiter w = {.done = waiter_done};
    ASSERT_EQ(amf_run_op(f.amf, AMF_OP_LOCK, "su:b", &w), 1);
    expect_remove(b);
    ASSERT_EQ(amf_run_op(f.amf, AMF_OP_LOCK, "sg:g", &w), 1);
    ASSERT_STREQ(su_admin_to_string(first_sg()->admin), "LOCKED");
    ASSERT_EQ(amf_run_op(f.amf, AMF_OP_LOCK, "sg:g", &w), -HALO_EEXIST);
    answer(&f, a, expect_csi_set(a, HALO_HA_QUIESCED));
    expect_remove(a);
    ASSERT_EQ(su("a")->held_by, AMF_HELD_BY_SG);
    ASSERT_EQ(su("b")->held_by, 0u); /* locked by itself before */
    ASSERT_EQ(amf_run_op(f.amf, AMF_OP_UNLOCK, "su:a", &w), -EACCES);
    ASSERT_EQ(amf_su_unlock(f.amf, "a"), -EACCES);
    /* The node's lock holds a too: the group's unlock alone does not bring it back. */
    ASSERT_EQ(amf_run_op(f.amf, AMF_OP_LOCK, "node:n1", &w), 0);
    ASSERT_EQ(su("a")->held_by, AMF_HELD_BY_SG | AMF_HELD_BY_NODE);
    ASSERT_EQ(amf_run_op(f.amf, AMF_OP_UNLOCK, "sg:g", &w), 0);
    ASSERT_STREQ(su_admin_to_string(su("a")->admin), "LOCKED");
    ASSERT_EQ(amf_run_op(f.amf, AMF_OP_UNLOCK, "node:n1", &w), 0);
    ASSERT_STREQ(su_admin_to_string(su("a")->admin), "UNLOCKED");
    ASSERT_STREQ(su_admin_to_string(su("b")->admin), "LOCKED");
    ASSERT_STREQ(amf_node_admin(f.amf), "UNLOCKED");
    answer(&f, a, expect_csi_set(a, HALO_HA_ACTIVE));
    ASSERT(amf_si_find_su(amf_find_si(f.amf, "si"), su("b")) == NULL);
    fixture_stop(&f);
}

/* The state the store holds: the deciding node, once ready, keeps its own (its writes come back). */
TEST(admin_si_state_from_the_store) {
    start(TWO_UNITS("{max: 3, window: 1m, delay: 10ms}"));
    amf_admin_state_restore(f.amf, "si:si", "LOCKED");
    ASSERT_STREQ(si_admin_to_string(amf_find_si(f.amf, "si")->admin), "UNLOCKED");
    amf_set_deciding(f.amf, false);
    amf_admin_state_restore(f.amf, "si:si", "LOCKED");
    ASSERT_STREQ(si_admin_to_string(amf_find_si(f.amf, "si")->admin), "LOCKED");
    amf_admin_state_restore(f.amf, "si:si", "bogus"); /* reads as UNLOCKED */
    ASSERT_STREQ(si_admin_to_string(amf_find_si(f.amf, "si")->admin), "UNLOCKED");
    amf_admin_state_restore(f.amf, "si:nope", "LOCKED"); /* not in the description: nothing */
    amf_admin_state_restore(f.amf, "sg:g", "LOCKED");
    ASSERT_STREQ(su_admin_to_string(first_sg()->admin), "LOCKED");
    amf_admin_state_restore(f.amf, "node:elsewhere", "LOCKED"); /* another node's: not ours to keep */
    ASSERT_STREQ(amf_node_admin(f.amf), "UNLOCKED");
    amf_set_deciding(f.amf, true);
    fixture_stop(&f);
}

/* The other node's part of a group operation: refused (the store was unreachable), or carried out. */
static int request_error;
static int fake_request(void *p, int op, const char *target, const char *to, struct amf_waiter *w) {
    record("request %s to %s", target, to);
    if (request_error < 0)
        return request_error;
    w->done(w, 0);
    return 1;
}

/* A group's shutdown whose other node's part failed stays SHUTTING-DOWN, says so, and may be asked again:
 * then it ends LOCKED (it answered "shutting down already" before). */
TEST(admin_a_group_shutdown_whose_part_failed_may_be_asked_again) {
    memset(&f, 0, sizeof(f));
    fixture_start(&f, "cluster: t\n"
                      "nodes: {n1: {}, n2: {}}\n"
                      "service-groups:\n"
                      "  g:\n"
                      "    component: {command: /bin/true}\n"
                      "    service-units: {a: {node: n1}, b: {node: n2}}\n"
                      "    service-instances: {si: {csis: {csi: {}}}}\n");
    static struct amf_placement_ops ops;
    ops = remote_placement;
    ops.request = fake_request;
    amf_set_placement(f.amf, &ops, NULL);
    amf_set_ready(f.amf);
    struct amf_waiter w = {.done = waiter_done};
    request_error = -EIO;
    ASSERT_EQ(amf_run_op(f.amf, AMF_OP_SHUTDOWN, "sg:g", &w), -EIO);
    ASSERT(seen("request sg:g@n2 to n2"));
    ASSERT_STREQ(su_admin_to_string(first_sg()->admin), "SHUTTING-DOWN");
    ASSERT_STREQ(su_admin_to_string(su("a")->admin), "LOCKED");
    request_error = 0;
    ASSERT_EQ(amf_run_op(f.amf, AMF_OP_SHUTDOWN, "sg:g", &w), 0);
    ASSERT_STREQ(su_admin_to_string(first_sg()->admin), "LOCKED");
    ASSERT_EQ(amf_run_op(f.amf, AMF_OP_SHUTDOWN, "sg:g", &w), -HALO_EEXIST);
    fixture_stop(&f);
}

/* A reload (amf-reload.c): a unit removed is locked, then its processes stopped, then gone; added
 * back, it is a new unit in the next slot, started, and the model uses it. */
TEST(reload_removes_a_unit_gracefully_and_adds_it_back_in_a_new_slot) {
    start(TWO_UNITS("{max: 3, window: 1m, delay: 10ms}"));
    struct sg *sg = first_sg();
    struct su *old = su("a");
    ASSERT_EQ(amf_member_remove_check(f.amf, true, "a"), 0);
    ASSERT_EQ(amf_su_remove(f.amf, "a"), 0);
    answer(&f, a, expect_csi_set(a, HALO_HA_QUIESCED));
    answer(&f, b, expect_csi_set(b, HALO_HA_ACTIVE));
    expect_remove(a);
    ASSERT(su("a") == old); /* found until its processes are stopped: not added again meanwhile */
    ASSERT_EQ(amf_su_add_check(f.amf, "g", &f.cfg->sgs[0].sus[0], 0), -HALO_EEXIST);
    terminates(a, "a");
    ASSERT(old->removed && su("a") == NULL && amf_find_comp(f.amf, "a") == NULL);
    ASSERT(old->admin == SU_UNLOCKED && !amf_su_in_service(old)); /* the store keeps no lock of it */
    ASSERT(seen("su a admin"));

    ASSERT_EQ(amf_su_add_check(f.amf, "g", &f.cfg->sgs[0].sus[0], 0), 0);
    ASSERT_EQ(amf_su_add_check(f.amf, "g", &f.cfg->sgs[0].sus[0], AMF_SUS_ADDED_MAX), -ENOSPC);
    ASSERT_EQ(amf_su_add(f.amf, "g", &f.cfg->sgs[0].sus[0]), 0);
    ASSERT(su("a") == &sg->sus[2] && sg->n_sus == 3);
    ASSERT_EQ(amf_find_si(f.amf, "si")->n_asg, 3u); /* a slot for it in each SI */
    ASSERT(amf_find_comp(f.amf, "a")->proc);        /* started */
    struct conn *a2 = registered(&f, 2, "a");
    answer(&f, a2, expect_csi_set(a2, HALO_HA_STANDBY));
    ASSERT(amf_si_find_su(amf_find_si(f.amf, "si"), su("a"))->state == HALO_HA_STANDBY);
    fixture_stop(&f);
}
