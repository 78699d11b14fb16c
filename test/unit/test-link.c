/* SPDX-License-Identifier: MIT */
/* Tests of the HA link codec: round trips, validation, hostile input, and the socket edge cases. */
#include <errno.h>
#include <stdint.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "halo/halo.h"
#include "halo/log.h"
#include "link.h"
#include "macro.h"
#include "tests.h"

/* Every body case the protocol defines. */
static const int all_cases[] = {
    HALO__LINK__MSG__BODY_HELLO,
    HALO__LINK__MSG__BODY_HELLO_REPLY,
    HALO__LINK__MSG__BODY_REPLY,
    HALO__LINK__MSG__BODY_REGISTER,
    HALO__LINK__MSG__BODY_UNREGISTER,
    HALO__LINK__MSG__BODY_RESPONSE,
    HALO__LINK__MSG__BODY_HC_START,
    HALO__LINK__MSG__BODY_HC_CONFIRM,
    HALO__LINK__MSG__BODY_HC_STOP,
    HALO__LINK__MSG__BODY_ERROR_REPORT,
    HALO__LINK__MSG__BODY_PG_TRACK,
    HALO__LINK__MSG__BODY_PG_TRACK_STOP,
    HALO__LINK__MSG__BODY_HA_STATE_GET,
    HALO__LINK__MSG__BODY_CSI_SET,
    HALO__LINK__MSG__BODY_CSI_REMOVE,
    HALO__LINK__MSG__BODY_TERMINATE,
    HALO__LINK__MSG__BODY_HEALTHCHECK,
    HALO__LINK__MSG__BODY_PG_TRACK_NOTIFY,
    HALO__LINK__MSG__BODY_ADMIN,
    HALO__LINK__MSG__BODY_CDB_GET,
    HALO__LINK__MSG__BODY_CDB_LIST,
    HALO__LINK__MSG__BODY_CDB_COMMIT,
    HALO__LINK__MSG__BODY_CDB_SUBSCRIBE,
    HALO__LINK__MSG__BODY_CDB_UNSUBSCRIBE,
    HALO__LINK__MSG__BODY_CDB_CHANGE,
    HALO__LINK__MSG__BODY_PROCESS_EVENT,
    HALO__LINK__MSG__BODY_RECOVERY_NOTE,
    HALO__LINK__MSG__BODY_PARTICIPANT_DONE,
    HALO__LINK__MSG__BODY_PROXIED_INSTANTIATE,
    HALO__LINK__MSG__BODY_PROXIED_CLEANUP,
};

/*
 * Builds a valid message of body case `which` with every field set to a
 * non-default value, and encodes it into buf.  Returns the length.
 */
static size_t build(int which, uint8_t *buf) {
    LinkMsg m = HALO__LINK__MSG__INIT;
    Halo__Link__Hello hello = HALO__LINK__HELLO__INIT;
    Halo__Link__HelloReply hello_reply = HALO__LINK__HELLO_REPLY__INIT;
    Halo__Link__Reply reply = HALO__LINK__REPLY__INIT;
    Halo__Link__Register reg = HALO__LINK__REGISTER__INIT;
    Halo__Link__Unregister unreg = HALO__LINK__UNREGISTER__INIT;
    Halo__Link__Response resp = HALO__LINK__RESPONSE__INIT;
    Halo__Link__HealthcheckStart hcs = HALO__LINK__HEALTHCHECK_START__INIT;
    Halo__Link__HealthcheckConfirm hcc = HALO__LINK__HEALTHCHECK_CONFIRM__INIT;
    Halo__Link__HealthcheckStop hcx = HALO__LINK__HEALTHCHECK_STOP__INIT;
    Halo__Link__ErrorReport er = HALO__LINK__ERROR_REPORT__INIT;
    Halo__Link__PgTrack pt = HALO__LINK__PG_TRACK__INIT;
    Halo__Link__PgTrackStop pts = HALO__LINK__PG_TRACK_STOP__INIT;
    Halo__Link__HaStateGet hsg = HALO__LINK__HA_STATE_GET__INIT;
    Halo__Link__CsiSet cs = HALO__LINK__CSI_SET__INIT;
    Halo__Link__Attr a1 = HALO__LINK__ATTR__INIT, a2 = HALO__LINK__ATTR__INIT;
    Halo__Link__Attr *attrs[] = {&a1, &a2};
    Halo__Link__CsiRemove cr = HALO__LINK__CSI_REMOVE__INIT;
    Halo__Link__Terminate term = HALO__LINK__TERMINATE__INIT;
    Halo__Link__ProxiedInstantiate pinst = HALO__LINK__PROXIED_INSTANTIATE__INIT;
    Halo__Link__ProxiedCleanup pclean = HALO__LINK__PROXIED_CLEANUP__INIT;
    Halo__Link__Healthcheck hc = HALO__LINK__HEALTHCHECK__INIT;
    Halo__Link__PgTrackNotify pn = HALO__LINK__PG_TRACK_NOTIFY__INIT;
    Halo__Link__PgMember p1 = HALO__LINK__PG_MEMBER__INIT, p2 = HALO__LINK__PG_MEMBER__INIT;
    Halo__Link__PgMember *members[] = {&p1, &p2};
    Halo__Link__Admin adm = HALO__LINK__ADMIN__INIT;
    Halo__Link__CdbGet cg = HALO__LINK__CDB_GET__INIT;
    Halo__Link__CdbList cl = HALO__LINK__CDB_LIST__INIT;
    Halo__Link__CdbCommit cc = HALO__LINK__CDB_COMMIT__INIT;
    Halo__Link__CdbSubscribe csub = HALO__LINK__CDB_SUBSCRIBE__INIT;
    Halo__Link__CdbUnsubscribe cun = HALO__LINK__CDB_UNSUBSCRIBE__INIT;
    Halo__Link__ProcessEvent pev = HALO__LINK__PROCESS_EVENT__INIT;
    Halo__Link__ObjectState ost = HALO__LINK__OBJECT_STATE__INIT, *posts[] = {&ost};
    Halo__Link__RecoveryNote rnote = HALO__LINK__RECOVERY_NOTE__INIT;
    Halo__Link__Participant part = HALO__LINK__PARTICIPANT__INIT, *parts[] = {&part};
    Halo__Link__ParticipantDone pdone = HALO__LINK__PARTICIPANT_DONE__INIT;
    Halo__Link__CdbChange cch = HALO__LINK__CDB_CHANGE__INIT;
    Halo__Link__CdbOp o1 = HALO__LINK__CDB_OP__INIT, o2 = HALO__LINK__CDB_OP__INIT;
    Halo__Link__CdbOp *cops[] = {&o1, &o2};

    m.body_case = (Halo__Link__Msg__BodyCase)which;
    switch (which) {
    case HALO__LINK__MSG__BODY_HELLO:
        hello.version = LINK_PROTOCOL_VERSION;
        hello.pid = 4242;
        hello.client = (char *)"libhalo/0.1";
        m.hello = &hello;
        break;
    case HALO__LINK__MSG__BODY_HELLO_REPLY:
        hello_reply.error = -HALO_EVERSION;
        hello_reply.version = 7;
        hello_reply.node = (char *)"node-1";
        m.hello_reply = &hello_reply;
        break;
    case HALO__LINK__MSG__BODY_REPLY:
        reply.seq = UINT64_MAX;
        reply.error = -HALO_EBADINVOCATION;
        reply.json = (char *)"{\"nodes\":[]}";
        reply.ha_state = HALO_HA_QUIESCING;
        m.reply = &reply;
        break;
    case HALO__LINK__MSG__BODY_REGISTER:
        reg.seq = 1;
        reg.comp = (char *)"web-a";
        reg.proxy = (char *)"proxy-a";
        m.register_ = &reg;
        break;
    case HALO__LINK__MSG__BODY_UNREGISTER:
        unreg.seq = 2;
        unreg.comp = (char *)"web-a";
        m.unregister = &unreg;
        break;
    case HALO__LINK__MSG__BODY_RESPONSE:
        resp.invocation = 1234567890123ULL;
        resp.error = -ENOSPC;
        resp.quiescing_complete = 1;
        resp.seq = 3;
        m.response = &resp;
        break;
    case HALO__LINK__MSG__BODY_HC_START:
        hcs.seq = 4;
        hcs.comp = (char *)"web-a";
        hcs.key = (char *)"default";
        hcs.invoked = HALO_HC_COMPONENT_INVOKED;
        hcs.recovery = HALO_RECOVERY_NODE_FAILOVER;
        m.hc_start = &hcs;
        break;
    case HALO__LINK__MSG__BODY_HC_CONFIRM:
        hcc.seq = 5;
        hcc.comp = (char *)"web-a";
        hcc.key = (char *)"deep";
        hcc.result = -EIO;
        m.hc_confirm = &hcc;
        break;
    case HALO__LINK__MSG__BODY_HC_STOP:
        hcx.seq = 6;
        hcx.comp = (char *)"web-a";
        hcx.key = (char *)"deep";
        m.hc_stop = &hcx;
        break;
    case HALO__LINK__MSG__BODY_ERROR_REPORT:
        er.seq = 7;
        er.comp = (char *)"web-a";
        er.recovery = HALO_RECOVERY_COMPONENT_RESTART;
        m.error_report = &er;
        break;
    case HALO__LINK__MSG__BODY_PG_TRACK:
        pt.seq = 8;
        pt.csi = (char *)"web-csi";
        pt.flags = HALO_TRACK_CURRENT | HALO_TRACK_CHANGES_ONLY;
        m.pg_track = &pt;
        break;
    case HALO__LINK__MSG__BODY_PG_TRACK_STOP:
        pts.seq = 9;
        pts.csi = (char *)"web-csi";
        m.pg_track_stop = &pts;
        break;
    case HALO__LINK__MSG__BODY_HA_STATE_GET:
        hsg.seq = 10;
        hsg.comp = (char *)"web-a";
        hsg.csi = (char *)"web-csi";
        m.ha_state_get = &hsg;
        break;
    case HALO__LINK__MSG__BODY_CSI_SET:
        a1.name = (char *)"port";
        a1.value = (char *)"7700";
        a2.name = (char *)"empty";
        a2.value = (char *)"";
        cs.invocation = 11;
        cs.comp = (char *)"web-a";
        cs.ha_state = HALO_HA_ACTIVE;
        cs.flags = HALO_CSI_ADD_ONE;
        cs.csi = (char *)"web-csi";
        cs.si = (char *)"web-si";
        cs.n_attrs = 2;
        cs.attrs = attrs;
        cs.transition = HALO_CSI_NOT_QUIESCED;
        cs.active_comp = (char *)"web-b";
        m.csi_set = &cs;
        break;
    case HALO__LINK__MSG__BODY_CSI_REMOVE:
        cr.invocation = 12;
        cr.comp = (char *)"web-a";
        cr.csi = (char *)"web-csi";
        cr.flags = HALO_CSI_TARGET_ONE;
        m.csi_remove = &cr;
        break;
    case HALO__LINK__MSG__BODY_TERMINATE:
        term.invocation = 13;
        term.comp = (char *)"web-a";
        m.terminate = &term;
        break;
    case HALO__LINK__MSG__BODY_PROXIED_INSTANTIATE:
        pinst.invocation = 15;
        pinst.comp = (char *)"px-a";
        m.proxied_instantiate = &pinst;
        break;
    case HALO__LINK__MSG__BODY_PROXIED_CLEANUP:
        pclean.invocation = 16;
        pclean.comp = (char *)"px-a";
        m.proxied_cleanup = &pclean;
        break;
    case HALO__LINK__MSG__BODY_HEALTHCHECK:
        hc.invocation = 14;
        hc.comp = (char *)"web-a";
        hc.key = (char *)"default";
        m.healthcheck = &hc;
        break;
    case HALO__LINK__MSG__BODY_PG_TRACK_NOTIFY:
        p1.comp = (char *)"web-a";
        p1.ha_state = HALO_HA_ACTIVE;
        p1.change = HALO_PG_STATE_CHANGED;
        p2.comp = (char *)"web-b";
        p2.ha_state = HALO_HA_STANDBY;
        p2.change = HALO_PG_ADDED;
        pn.csi = (char *)"web-csi";
        pn.n_members = 2;
        pn.members = members;
        pn.error = -HALO_EUNKNOWN;
        m.pg_track_notify = &pn;
        break;
    case HALO__LINK__MSG__BODY_ADMIN:
        adm.seq = 15;
        adm.op = HALO__LINK__ADMIN__OP__REPAIR;
        adm.target = (char *)"su-a";
        m.admin = &adm;
        break;
    case HALO__LINK__MSG__BODY_CDB_GET:
        cg.seq = 16;
        cg.path = (char *)"/a/b";
        m.cdb_get = &cg;
        break;
    case HALO__LINK__MSG__BODY_CDB_LIST:
        cl.seq = 17;
        cl.path = (char *)"/a";
        cl.after = (char *)"/a/b";
        m.cdb_list = &cl;
        break;
    case HALO__LINK__MSG__BODY_CDB_COMMIT:
    case HALO__LINK__MSG__BODY_CDB_CHANGE:
        o1.path = (char *)"/a/b";
        o1.value.data = (uint8_t *)"\0binary\xff";
        o1.value.len = 9;
        o2.path = (char *)"/a";
        o2.del = 1;
        if (which == HALO__LINK__MSG__BODY_CDB_COMMIT) {
            cc.seq = 18;
            cc.ops = cops;
            cc.n_ops = 2;
            m.cdb_commit = &cc;
        } else {
            cch.id = 3;
            cch.txid = (char *)"117663894132686848@n1";
            cch.ops = cops;
            cch.n_ops = 2;
            m.cdb_change = &cch;
        }
        break;
    case HALO__LINK__MSG__BODY_CDB_SUBSCRIBE:
        csub.seq = 19;
        csub.id = 7;
        csub.path = (char *)"/";
        m.cdb_subscribe = &csub;
        break;
    case HALO__LINK__MSG__BODY_CDB_UNSUBSCRIBE:
        cun.seq = 20;
        cun.id = 7;
        m.cdb_unsubscribe = &cun;
        break;
    case HALO__LINK__MSG__BODY_PROCESS_EVENT:
        pev.seq = 21;
        pev.event = HALO__LINK__PROCESS_EVENT__EVENT__RECOVERED;
        pev.reason = (char *)"caught up";
        m.process_event = &pev;
        break;
    case HALO__LINK__MSG__BODY_RECOVERY_NOTE:
        ost.object = (char *)"process:ios-b";
        ost.state = (char *)"FAILED";
        ost.hlc = 117663894132686848ULL;
        ost.seq = 12;
        rnote.epoch = 2;
        rnote.state = (char *)"recover";
        rnote.reason = (char *)"";
        rnote.events = posts;
        rnote.n_events = 1;
        rnote.last = 1;
        rnote.nr_failures = 1;
        part.object = (char *)"process:ios-a";
        part.name = (char *)"ios-a";
        part.node = (char *)"n1";
        part.state = (char *)"ONLINE";
        rnote.participants = parts;
        rnote.n_participants = 1;
        m.recovery_note = &rnote;
        break;
    case HALO__LINK__MSG__BODY_PARTICIPANT_DONE:
        pdone.seq = 22;
        pdone.process = (char *)"process:ios-b";
        pdone.attempt = 41;
        m.participant_done = &pdone;
        break;
    default:
        CHECK_FAIL("unknown case %d", which);
    }
    ASSERT_EQ(link_validate(&m), 0);
    int n = link_encode(&m, buf, LINK_MSG_MAX);
    ASSERT(n > 0);
    return (size_t)n;
}

static LinkMsg *decode_ok(const uint8_t *buf, size_t n) {
    LinkMsg *m = NULL;
    ASSERT_EQ(link_decode(buf, n, &m), 0);
    ASSERT(m);
    return m;
}

TEST(roundtrip_every_type_is_byte_identical) {
    static uint8_t a[LINK_MSG_MAX], b[LINK_MSG_MAX];
    for (size_t i = 0; i < ELEMENTSOF(all_cases); i++) {
        size_t n = build(all_cases[i], a);
        LinkMsg *m = decode_ok(a, n);
        ASSERT_EQ(m->body_case, all_cases[i]);
        int k = link_encode(m, b, sizeof(b));
        ASSERT_EQ(k, (long long)n);
        ASSERT(memcmp(a, b, n) == 0);
        ASSERT(strcmp(link_msg_type_name(m), "unknown") != 0);
        link_msg_free(m);
    }
}

TEST(roundtrip_fields) {
    static uint8_t buf[LINK_MSG_MAX];
    LinkMsg *m;

    m = decode_ok(buf, build(HALO__LINK__MSG__BODY_CSI_SET, buf));
    ASSERT_STREQ(link_msg_type_name(m), "csi_set");
    ASSERT_EQ(m->csi_set->invocation, 11);
    ASSERT_STREQ(m->csi_set->comp, "web-a");
    ASSERT_EQ(m->csi_set->ha_state, HALO_HA_ACTIVE);
    ASSERT_EQ(m->csi_set->flags, HALO_CSI_ADD_ONE);
    ASSERT_STREQ(m->csi_set->csi, "web-csi");
    ASSERT_STREQ(m->csi_set->si, "web-si");
    ASSERT_EQ(m->csi_set->n_attrs, 2);
    ASSERT_STREQ(m->csi_set->attrs[0]->name, "port");
    ASSERT_STREQ(m->csi_set->attrs[0]->value, "7700");
    ASSERT_STREQ(m->csi_set->attrs[1]->name, "empty");
    ASSERT_STREQ(m->csi_set->attrs[1]->value, "");
    ASSERT_EQ(m->csi_set->transition, HALO_CSI_NOT_QUIESCED);
    ASSERT_STREQ(m->csi_set->active_comp, "web-b");
    link_msg_free(m);

    m = decode_ok(buf, build(HALO__LINK__MSG__BODY_RESPONSE, buf));
    ASSERT_EQ(m->response->invocation, 1234567890123LL);
    ASSERT_EQ(m->response->error, -ENOSPC); /* sint32 keeps negative errors small and intact */
    ASSERT_EQ(m->response->quiescing_complete, 1);
    ASSERT_EQ(m->response->seq, 3);
    link_msg_free(m);

    m = decode_ok(buf, build(HALO__LINK__MSG__BODY_REPLY, buf));
    ASSERT(m->reply->seq == UINT64_MAX);
    ASSERT_EQ(m->reply->error, -HALO_EBADINVOCATION);
    ASSERT_STREQ(m->reply->json, "{\"nodes\":[]}");
    ASSERT_EQ(m->reply->ha_state, HALO_HA_QUIESCING);
    link_msg_free(m);

    m = decode_ok(buf, build(HALO__LINK__MSG__BODY_PG_TRACK_NOTIFY, buf));
    ASSERT_STREQ(m->pg_track_notify->csi, "web-csi");
    ASSERT_EQ(m->pg_track_notify->n_members, 2);
    ASSERT_STREQ(m->pg_track_notify->members[1]->comp, "web-b");
    ASSERT_EQ(m->pg_track_notify->members[1]->ha_state, HALO_HA_STANDBY);
    ASSERT_EQ(m->pg_track_notify->members[1]->change, HALO_PG_ADDED);
    ASSERT_EQ(m->pg_track_notify->error, -HALO_EUNKNOWN);
    link_msg_free(m);

    m = decode_ok(buf, build(HALO__LINK__MSG__BODY_HELLO, buf));
    ASSERT_EQ(m->hello->version, LINK_PROTOCOL_VERSION);
    ASSERT_EQ(m->hello->pid, 4242);
    ASSERT_STREQ(m->hello->client, "libhalo/0.1");
    link_msg_free(m);
}

/* ---- link_validate ------------------------------------------------------- */

static LinkMsg reg_msg(Halo__Link__Register *r, const char *comp) {
    LinkMsg m = HALO__LINK__MSG__INIT;
    r->comp = (char *)comp;
    m.body_case = HALO__LINK__MSG__BODY_REGISTER;
    m.register_ = r;
    return m;
}

TEST(validate_names) {
    Halo__Link__Register r = HALO__LINK__REGISTER__INIT;
    char name[LINK_NAME_MAX + 2];
    LinkMsg m;

    m = reg_msg(&r, "");
    ASSERT_EQ(link_validate(&m), -EBADMSG); /* required name empty */

    memset(name, 'x', sizeof(name) - 1);
    name[LINK_NAME_MAX] = '\0';
    m = reg_msg(&r, name);
    ASSERT_EQ(link_validate(&m), 0); /* exactly LINK_NAME_MAX is fine */
    name[LINK_NAME_MAX] = 'x';
    name[LINK_NAME_MAX + 1] = '\0';
    m = reg_msg(&r, name);
    ASSERT_EQ(link_validate(&m), -EBADMSG);

    const char *bad[] = {"a\nb", "tab\there", "\x01", "del\x7f", "esc\x1b[0m"};
    for (size_t i = 0; i < ELEMENTSOF(bad); i++) {
        m = reg_msg(&r, bad[i]);
        ASSERT_EQ(link_validate(&m), -EBADMSG);
    }
    m = reg_msg(&r, "ok-name_1.2:\xc3\xa9"); /* UTF-8 is not a control character */
    ASSERT_EQ(link_validate(&m), 0);

    /* Optional names may be empty, but not malformed. */
    r.proxy = (char *)"";
    m = reg_msg(&r, "web-a");
    ASSERT_EQ(link_validate(&m), 0);
    r.proxy = (char *)"p\r";
    ASSERT_EQ(link_validate(&m), -EBADMSG);
}

TEST(validate_enums) {
    LinkMsg m = HALO__LINK__MSG__INIT;

    Halo__Link__HealthcheckStart hcs = HALO__LINK__HEALTHCHECK_START__INIT;
    hcs.comp = (char *)"c";
    hcs.key = (char *)"k";
    hcs.invoked = HALO_HC_AMF_INVOKED;
    hcs.recovery = HALO_RECOVERY_NONE;
    m.body_case = HALO__LINK__MSG__BODY_HC_START;
    m.hc_start = &hcs;
    ASSERT_EQ(link_validate(&m), 0);
    hcs.invoked = 0;
    ASSERT_EQ(link_validate(&m), -EBADMSG);
    hcs.invoked = HALO_HC_COMPONENT_INVOKED + 1;
    ASSERT_EQ(link_validate(&m), -EBADMSG);
    hcs.invoked = HALO_HC_AMF_INVOKED;
    hcs.recovery = 0;
    ASSERT_EQ(link_validate(&m), -EBADMSG);
    hcs.recovery = HALO_RECOVERY_NODE_FAILFAST + 1;
    ASSERT_EQ(link_validate(&m), -EBADMSG);

    Halo__Link__ErrorReport er = HALO__LINK__ERROR_REPORT__INIT;
    er.comp = (char *)"c";
    er.recovery = 99;
    m.body_case = HALO__LINK__MSG__BODY_ERROR_REPORT;
    m.error_report = &er;
    ASSERT_EQ(link_validate(&m), -EBADMSG);

    Halo__Link__CsiSet cs = HALO__LINK__CSI_SET__INIT;
    cs.invocation = 1;
    cs.comp = (char *)"c";
    cs.csi = (char *)"x";
    cs.flags = HALO_CSI_ADD_ONE;
    m.body_case = HALO__LINK__MSG__BODY_CSI_SET;
    m.csi_set = &cs;
    for (uint32_t s = 0; s <= 6; s++) {
        cs.ha_state = s;
        ASSERT_EQ(link_validate(&m), s >= HALO_HA_ACTIVE && s <= HALO_HA_QUIESCING ? 0 : -EBADMSG);
    }
    cs.ha_state = HALO_HA_ACTIVE;
    cs.transition = HALO_CSI_STILL_ACTIVE + 1;
    ASSERT_EQ(link_validate(&m), -EBADMSG);
    cs.transition = 0;
    cs.flags = 8;
    ASSERT_EQ(link_validate(&m), -EBADMSG);
    /* TARGET_ALL needs no CSI name; otherwise one is required. */
    cs.flags = HALO_CSI_TARGET_ALL;
    cs.csi = (char *)"";
    ASSERT_EQ(link_validate(&m), 0);
    cs.flags = HALO_CSI_TARGET_ONE;
    ASSERT_EQ(link_validate(&m), -EBADMSG);

    Halo__Link__PgTrack pt = HALO__LINK__PG_TRACK__INIT;
    pt.csi = (char *)"x";
    m.body_case = HALO__LINK__MSG__BODY_PG_TRACK;
    m.pg_track = &pt;
    unsigned bad_flags[] = {0, 8, HALO_TRACK_CHANGES | HALO_TRACK_CHANGES_ONLY};
    for (size_t i = 0; i < ELEMENTSOF(bad_flags); i++) {
        pt.flags = bad_flags[i];
        ASSERT_EQ(link_validate(&m), -EBADMSG);
    }
    pt.flags = HALO_TRACK_CURRENT | HALO_TRACK_CHANGES;
    ASSERT_EQ(link_validate(&m), 0);

    Halo__Link__PgTrackNotify pn = HALO__LINK__PG_TRACK_NOTIFY__INIT;
    Halo__Link__PgMember pm = HALO__LINK__PG_MEMBER__INIT;
    Halo__Link__PgMember *pms[] = {&pm};
    pm.comp = (char *)"c";
    pm.ha_state = HALO_HA_ACTIVE;
    pm.change = HALO_PG_STATE_CHANGED + 1;
    pn.csi = (char *)"x";
    pn.n_members = 1;
    pn.members = pms;
    m.body_case = HALO__LINK__MSG__BODY_PG_TRACK_NOTIFY;
    m.pg_track_notify = &pn;
    ASSERT_EQ(link_validate(&m), -EBADMSG);
    pm.change = HALO_PG_ADDED;
    pm.ha_state = 0;
    ASSERT_EQ(link_validate(&m), -EBADMSG);
    pm.ha_state = HALO_HA_QUIESCED;
    ASSERT_EQ(link_validate(&m), 0);

    Halo__Link__Admin adm = HALO__LINK__ADMIN__INIT;
    m.body_case = HALO__LINK__MSG__BODY_ADMIN;
    m.admin = &adm;
    adm.op = HALO__LINK__ADMIN__OP__OP_UNSPECIFIED;
    ASSERT_EQ(link_validate(&m), -EBADMSG);
    adm.op = (Halo__Link__Admin__Op)(HALO__LINK__ADMIN__OP__NODE_SWITCHOVER + 1);
    ASSERT_EQ(link_validate(&m), -EBADMSG);
    adm.op = HALO__LINK__ADMIN__OP__STATUS;
    ASSERT_EQ(link_validate(&m), 0);

    /* No body at all: nothing to act on. */
    LinkMsg empty = HALO__LINK__MSG__INIT;
    ASSERT_EQ(link_validate(&empty), -EBADMSG);
}

TEST(validate_cdb_paths_and_ops) {
    const char *good[] = {"/a", "/a/b", "/a b/c-d.e", "/\xc3\xa9t\xc3\xa9"};
    const char *bad[] = {NULL, "", "a", "a/b", "//", "/a/", "/a//b", "/a\tb", "/a\x7f"};
    for (size_t i = 0; i < ELEMENTSOF(good); i++)
        ASSERT_EQ(link_cdb_path_check(good[i], 0), 0);
    for (size_t i = 0; i < ELEMENTSOF(bad); i++)
        ASSERT_EQ(link_cdb_path_check(bad[i], 1), -EINVAL);
    ASSERT_EQ(link_cdb_path_check("/", 0), -EINVAL);
    ASSERT_EQ(link_cdb_path_check("/", 1), 0);
    char longest[LINK_CDB_PATH_MAX + 2];
    memset(longest, 'x', sizeof(longest));
    longest[0] = '/';
    longest[LINK_CDB_PATH_MAX] = '\0';
    ASSERT_EQ(link_cdb_path_check(longest, 0), 0);
    longest[LINK_CDB_PATH_MAX] = 'x';
    longest[LINK_CDB_PATH_MAX + 1] = '\0';
    ASSERT_EQ(link_cdb_path_check(longest, 0), -EINVAL);

    LinkMsg m = HALO__LINK__MSG__INIT;
    Halo__Link__CdbCommit cc = HALO__LINK__CDB_COMMIT__INIT;
    Halo__Link__CdbOp op = HALO__LINK__CDB_OP__INIT;
    Halo__Link__CdbOp *ops[] = {&op};
    m.body_case = HALO__LINK__MSG__BODY_CDB_COMMIT;
    m.cdb_commit = &cc;
    ASSERT_EQ(link_validate(&m), -EBADMSG); /* no ops */
    cc.ops = ops;
    cc.n_ops = 1;
    op.path = (char *)"/";
    ASSERT_EQ(link_validate(&m), -EBADMSG); /* the root cannot be set */
    op.del = 1;
    ASSERT_EQ(link_validate(&m), 0); /* but it can be deleted */
    op.value.data = (uint8_t *)"x";
    op.value.len = 1;
    ASSERT_EQ(link_validate(&m), -EBADMSG); /* a delete carries no value */

    Halo__Link__CdbSubscribe sub = HALO__LINK__CDB_SUBSCRIBE__INIT;
    m.body_case = HALO__LINK__MSG__BODY_CDB_SUBSCRIBE;
    m.cdb_subscribe = &sub;
    sub.path = (char *)"/a";
    ASSERT_EQ(link_validate(&m), -EBADMSG); /* id 0 */
    sub.id = 1;
    ASSERT_EQ(link_validate(&m), 0);
}

TEST(validate_zero_invocations) {
    LinkMsg m = HALO__LINK__MSG__INIT;
    Halo__Link__Response resp = HALO__LINK__RESPONSE__INIT;
    Halo__Link__CsiSet cs = HALO__LINK__CSI_SET__INIT;
    Halo__Link__CsiRemove cr = HALO__LINK__CSI_REMOVE__INIT;
    Halo__Link__Terminate t = HALO__LINK__TERMINATE__INIT;
    Halo__Link__Healthcheck hc = HALO__LINK__HEALTHCHECK__INIT;

    m.body_case = HALO__LINK__MSG__BODY_RESPONSE;
    m.response = &resp;
    ASSERT_EQ(link_validate(&m), -EBADMSG);
    resp.invocation = 1;
    ASSERT_EQ(link_validate(&m), 0);

    cs.comp = cs.csi = (char *)"c";
    cs.ha_state = HALO_HA_STANDBY;
    m.body_case = HALO__LINK__MSG__BODY_CSI_SET;
    m.csi_set = &cs;
    ASSERT_EQ(link_validate(&m), -EBADMSG);
    cs.invocation = 1;
    ASSERT_EQ(link_validate(&m), 0);

    cr.comp = cr.csi = (char *)"c";
    m.body_case = HALO__LINK__MSG__BODY_CSI_REMOVE;
    m.csi_remove = &cr;
    ASSERT_EQ(link_validate(&m), -EBADMSG);
    cr.invocation = 1;
    ASSERT_EQ(link_validate(&m), 0);

    t.comp = (char *)"c";
    m.body_case = HALO__LINK__MSG__BODY_TERMINATE;
    m.terminate = &t;
    ASSERT_EQ(link_validate(&m), -EBADMSG);
    t.invocation = 1;
    ASSERT_EQ(link_validate(&m), 0);

    /* A proxy's instantiate and cleanup: an invocation and a component name. */
    Halo__Link__ProxiedInstantiate pi = HALO__LINK__PROXIED_INSTANTIATE__INIT;
    pi.comp = (char *)"c";
    m.body_case = HALO__LINK__MSG__BODY_PROXIED_INSTANTIATE;
    m.proxied_instantiate = &pi;
    ASSERT_EQ(link_validate(&m), -EBADMSG);
    pi.invocation = 1;
    ASSERT_EQ(link_validate(&m), 0);
    pi.comp = (char *)"";
    ASSERT_EQ(link_validate(&m), -EBADMSG);
    Halo__Link__ProxiedCleanup pc = HALO__LINK__PROXIED_CLEANUP__INIT;
    pc.comp = (char *)"c\n";
    pc.invocation = 1;
    m.body_case = HALO__LINK__MSG__BODY_PROXIED_CLEANUP;
    m.proxied_cleanup = &pc;
    ASSERT_EQ(link_validate(&m), -EBADMSG);
    pc.comp = (char *)"c";
    ASSERT_EQ(link_validate(&m), 0);

    hc.comp = hc.key = (char *)"c";
    m.body_case = HALO__LINK__MSG__BODY_HEALTHCHECK;
    m.healthcheck = &hc;
    ASSERT_EQ(link_validate(&m), -EBADMSG);
    hc.invocation = 1;
    ASSERT_EQ(link_validate(&m), 0);
}

TEST(validate_attrs) {
    static Halo__Link__Attr attr[LINK_ATTRS_MAX + 1];
    static Halo__Link__Attr *attrs[LINK_ATTRS_MAX + 1];
    static char value[LINK_VALUE_MAX + 2];
    LinkMsg m = HALO__LINK__MSG__INIT;
    Halo__Link__CsiSet cs = HALO__LINK__CSI_SET__INIT;

    for (size_t i = 0; i < ELEMENTSOF(attr); i++) {
        attr[i] = (Halo__Link__Attr)HALO__LINK__ATTR__INIT;
        attr[i].name = (char *)"k";
        attr[i].value = (char *)"v";
        attrs[i] = &attr[i];
    }
    cs.invocation = 1;
    cs.comp = cs.csi = (char *)"c";
    cs.ha_state = HALO_HA_ACTIVE;
    cs.attrs = attrs;
    m.body_case = HALO__LINK__MSG__BODY_CSI_SET;
    m.csi_set = &cs;

    cs.n_attrs = LINK_ATTRS_MAX;
    ASSERT_EQ(link_validate(&m), 0);
    cs.n_attrs = LINK_ATTRS_MAX + 1;
    ASSERT_EQ(link_validate(&m), -EBADMSG);

    cs.n_attrs = 1;
    memset(value, 'v', LINK_VALUE_MAX);
    attr[0].value = value;
    ASSERT_EQ(link_validate(&m), 0);
    value[LINK_VALUE_MAX] = 'v';
    ASSERT_EQ(link_validate(&m), -EBADMSG);
    attr[0].value = (char *)"v";
    attr[0].name = (char *)"";
    ASSERT_EQ(link_validate(&m), -EBADMSG); /* attribute names are required */
}

/* ---- link_encode / link_decode on hostile input -------------------------- */

TEST(encode_rejects_oversized_and_empty) {
    static uint8_t buf[LINK_MSG_MAX];
    static char json[LINK_MSG_MAX + 16];
    LinkMsg m = HALO__LINK__MSG__INIT;
    Halo__Link__Reply reply = HALO__LINK__REPLY__INIT;

    memset(json, 'j', sizeof(json) - 1);
    reply.json = json;
    m.body_case = HALO__LINK__MSG__BODY_REPLY;
    m.reply = &reply;
    ASSERT_EQ(link_encode(&m, buf, sizeof(buf)), -EMSGSIZE);
    json[100] = '\0';
    ASSERT_EQ(link_encode(&m, buf, 50), -EMSGSIZE); /* the caller's buffer is respected too */
    ASSERT(link_encode(&m, buf, sizeof(buf)) > 100);

    LinkMsg empty = HALO__LINK__MSG__INIT;
    ASSERT_EQ(link_encode(&empty, buf, sizeof(buf)), -EINVAL);
}

TEST(decode_rejects_oversized) {
    static uint8_t buf[LINK_MSG_MAX + 1];
    LinkMsg *m = NULL;
    size_t n = build(HALO__LINK__MSG__BODY_HELLO, buf);
    ASSERT_EQ(link_decode(buf, LINK_MSG_MAX + 1, &m), -EMSGSIZE);
    ASSERT(!m);
    /* The length check comes before parsing: a valid prefix does not help. */
    ASSERT(n < 64);
    ASSERT_EQ(link_decode(buf, 1 << 20, &m), -EMSGSIZE);
    ASSERT(!m);
}

/* Decodes hostile bytes: a message that validates, -EBADMSG, or -EPROTONOSUPPORT (a
 * well-formed message of an unknown type); never anything else. */
static unsigned decode_any(const uint8_t *buf, size_t n) {
    LinkMsg *m = NULL;
    int r = link_decode(buf, n, &m);
    if (r == 0) {
        ASSERT(m);
        ASSERT_EQ(link_validate(m), 0);
        link_msg_free(m);
        return 1;
    }
    ASSERT(r == -EBADMSG || r == -EPROTONOSUPPORT);
    ASSERT(!m);
    return 0;
}

TEST(unknown_message_type_is_eprotonosupport) {
    /* Field 99 of Msg (length-delimited, empty): a type a newer peer might send. */
    static const uint8_t unknown[] = {0x9a, 0x06, 0x00};
    LinkMsg *m = NULL;
    ASSERT_EQ(link_decode(unknown, sizeof(unknown), &m), -EPROTONOSUPPORT);
    ASSERT(!m);
    /* No body at all is not "unknown", it is malformed. */
    ASSERT_EQ(link_decode(unknown, 0, &m), -EBADMSG);
}

TEST(decode_every_prefix) {
    static uint8_t buf[LINK_MSG_MAX];
    unsigned accepted = 0, total = 0;
    for (size_t i = 0; i < ELEMENTSOF(all_cases); i++) {
        size_t n = build(all_cases[i], buf);
        for (size_t len = 0; len < n; len++) {
            /* A copy of exactly len bytes, so ASan sees any read past the end. */
            uint8_t *p = malloc(len ? len : 1);
            ASSERT(p);
            memcpy(p, buf, len);
            accepted += decode_any(p, len);
            total++;
            free(p);
        }
    }
    /* Most prefixes cut a field in half; the empty prefix has no body. */
    ASSERT(accepted < total);
    ASSERT_EQ(decode_any(buf, 0), 0);
}

TEST(decode_mutations_and_garbage) {
    static uint8_t buf[LINK_MSG_MAX];
    uint32_t seed = 12345;
#define RAND() (seed = seed * 1103515245u + 12345u, (seed >> 16) & 0x7fff)

    /* Every single-byte corruption of every valid packet. */
    for (size_t i = 0; i < ELEMENTSOF(all_cases); i++) {
        size_t n = build(all_cases[i], buf);
        for (size_t pos = 0; pos < n; pos++) {
            const uint8_t vals[] = {0x00, 0xff, 0x80, (uint8_t)(buf[pos] ^ 0x01), (uint8_t)RAND()};
            uint8_t *p = malloc(n);
            ASSERT(p);
            for (size_t v = 0; v < ELEMENTSOF(vals); v++) {
                memcpy(p, buf, n);
                p[pos] = vals[v];
                (void)decode_any(p, n);
            }
            free(p);
        }
    }

    /* Random bytes of random lengths. */
    for (unsigned iter = 0; iter < 20000; iter++) {
        size_t n = RAND() % 300;
        uint8_t *p = malloc(n ? n : 1);
        ASSERT(p);
        for (size_t j = 0; j < n; j++)
            p[j] = (uint8_t)RAND();
        (void)decode_any(p, n);
        free(p);
    }

    /* A length prefix claiming far more than there is. */
    const uint8_t huge_len[] = {0x0a, 0xff, 0xff, 0xff, 0xff, 0x0f, 0x08, 0x01};
    ASSERT_EQ(decode_any(huge_len, sizeof(huge_len)), 0);
#undef RAND
}

/* ---- link_send / link_recv over a real socket ---------------------------- */

static void seqpacket_pair(int fds[2]) {
    ASSERT_OK(socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0, fds));
    int big = 4 * LINK_MSG_MAX;
    ASSERT_OK(setsockopt(fds[0], SOL_SOCKET, SO_SNDBUF, &big, sizeof(big)));
    ASSERT_OK(setsockopt(fds[1], SOL_SOCKET, SO_RCVBUF, &big, sizeof(big)));
}

TEST(recv_roundtrip_and_eagain) {
    static uint8_t buf[LINK_MSG_MAX];
    int fds[2];
    LinkMsg *m = NULL;

    seqpacket_pair(fds);
    ASSERT_EQ(link_recv(fds[1], &m), -EAGAIN);

    size_t n = build(HALO__LINK__MSG__BODY_CSI_SET, buf);
    LinkMsg *orig = decode_ok(buf, n);
    ASSERT_EQ(link_send(fds[0], orig), 0);
    link_msg_free(orig);

    ASSERT_EQ(link_recv(fds[1], &m), 1);
    ASSERT_EQ(m->body_case, HALO__LINK__MSG__BODY_CSI_SET);
    ASSERT_STREQ(m->csi_set->attrs[0]->value, "7700");
    link_msg_free(m);
    ASSERT_EQ(link_recv(fds[1], &m), -EAGAIN);
    close(fds[0]);
    close(fds[1]);
}

/* Several packets in one call arrive whole and in order; a full socket takes
 * a prefix and says how many; bad sizes send nothing; a closed peer is an error. */
TEST(send_packed_many) {
    enum { N = 600, LEN = 3000 };
    static uint8_t data[N][LEN], got[LINK_MSG_MAX + 1];
    static struct iovec pkts[N];
    int fds[2];

    for (size_t i = 0; i < N; i++) {
        memset(data[i], (int)(i % 251), LEN);
        pkts[i] = (struct iovec){.iov_base = data[i], .iov_len = 100 + i % 7};
    }
    seqpacket_pair(fds);
    ASSERT_EQ(link_send_packed_many(fds[0], pkts, 5), 5);
    for (size_t i = 0; i < 5; i++) {
        ASSERT_EQ(recv(fds[1], got, sizeof(got), MSG_DONTWAIT), (ssize_t)(100 + i % 7));
        ASSERT_EQ(got[0], (uint8_t)i);
    }
    ASSERT_EQ(recv(fds[1], got, sizeof(got), MSG_DONTWAIT), -1);

    /* More than the socket holds (and more than one sendmmsg batch). */
    for (size_t i = 0; i < N; i++)
        pkts[i].iov_len = LEN;
    int k = link_send_packed_many(fds[0], pkts, N);
    ASSERT(k > 64 && k < N);
    for (int i = 0; i < k; i++) {
        ASSERT_EQ(recv(fds[1], got, sizeof(got), MSG_DONTWAIT), (ssize_t)LEN);
        ASSERT_EQ(got[LEN - 1], (uint8_t)(i % 251));
    }
    ASSERT_EQ(recv(fds[1], got, sizeof(got), MSG_DONTWAIT), -1);
    ASSERT_EQ(errno, EAGAIN);

    /* An empty or oversized packet anywhere: nothing goes. */
    pkts[2].iov_len = 0;
    ASSERT_EQ(link_send_packed_many(fds[0], pkts, 3), -EMSGSIZE);
    pkts[2].iov_len = LINK_MSG_MAX + 1;
    ASSERT_EQ(link_send_packed_many(fds[0], pkts, 3), -EMSGSIZE);
    ASSERT_EQ(recv(fds[1], got, sizeof(got), MSG_DONTWAIT), -1);

    close(fds[1]);
    ASSERT_EQ(link_send_packed_many(fds[0], pkts, 1), -EPIPE);
    close(fds[0]);
}

TEST(recv_oversized_packet_is_emsgsize_and_consumed) {
    static uint8_t big[LINK_MSG_MAX + 100];
    static uint8_t buf[LINK_MSG_MAX];
    int fds[2];
    LinkMsg *m = NULL;

    seqpacket_pair(fds);
    memset(big, 0, sizeof(big));
    ASSERT_EQ(send(fds[0], big, LINK_MSG_MAX + 1, 0), LINK_MSG_MAX + 1);
    ASSERT_EQ(send(fds[0], big, sizeof(big), 0), (long long)sizeof(big));
    size_t n = build(HALO__LINK__MSG__BODY_HELLO, buf);
    ASSERT_EQ(send(fds[0], buf, n, 0), (long long)n);
    /* A packet of exactly LINK_MSG_MAX bytes is accepted by size (and then parsed). */
    ASSERT_EQ(send(fds[0], big, LINK_MSG_MAX, 0), LINK_MSG_MAX);

    ASSERT_EQ(link_recv(fds[1], &m), -EMSGSIZE);
    ASSERT_EQ(link_recv(fds[1], &m), -EMSGSIZE);
    /* The oversized packets were consumed whole: the next one is intact. */
    ASSERT_EQ(link_recv(fds[1], &m), 1);
    ASSERT_EQ(m->body_case, HALO__LINK__MSG__BODY_HELLO);
    link_msg_free(m);
    m = NULL;
    ASSERT_EQ(link_recv(fds[1], &m), -EBADMSG); /* zeros: field number 0 is invalid protobuf */
    ASSERT(!m);
    close(fds[0]);
    close(fds[1]);
}

TEST(recv_garbage_then_eof) {
    int fds[2];
    LinkMsg *m = NULL;
    const uint8_t junk[] = {0xff, 0xff, 0xff, 0x01, 0x02};

    seqpacket_pair(fds);
    ASSERT_EQ(send(fds[0], junk, sizeof(junk), 0), (long long)sizeof(junk));
    close(fds[0]);
    ASSERT_EQ(link_recv(fds[1], &m), -EBADMSG);
    ASSERT_EQ(link_recv(fds[1], &m), 0);
    ASSERT_EQ(link_recv(fds[1], &m), 0); /* EOF stays EOF */
    ASSERT(!m);

    /* And sending to a closed peer is an error, not SIGPIPE. */
    static uint8_t buf[LINK_MSG_MAX];
    LinkMsg *hello = decode_ok(buf, build(HALO__LINK__MSG__BODY_HELLO, buf));
    ASSERT_EQ(link_send(fds[1], hello), -EPIPE);
    link_msg_free(hello);
    close(fds[1]);
}

TEST(validate_recovery_messages) {
    static uint8_t buf[LINK_MSG_MAX];
    LinkMsg m = HALO__LINK__MSG__INIT;

    Halo__Link__ProcessEvent pe = HALO__LINK__PROCESS_EVENT__INIT;
    pe.seq = 1;
    pe.event = HALO__LINK__PROCESS_EVENT__EVENT__STARTING;
    pe.reason = (char *)"";
    m.body_case = HALO__LINK__MSG__BODY_PROCESS_EVENT;
    m.process_event = &pe;
    ASSERT_EQ(link_validate(&m), 0);
    pe.event = HALO__LINK__PROCESS_EVENT__EVENT__RECOVERY_FAILED;
    ASSERT_EQ(link_validate(&m), 0);
    pe.event = HALO__LINK__PROCESS_EVENT__EVENT__EVENT_UNSPECIFIED;
    ASSERT_EQ(link_validate(&m), -EBADMSG);
    pe.event = (Halo__Link__ProcessEvent__Event)7;
    ASSERT_EQ(link_validate(&m), -EBADMSG);
    pe.event = HALO__LINK__PROCESS_EVENT__EVENT__RECOVERED;
    char reason[LINK_REASON_MAX + 2];
    memset(reason, 'r', sizeof(reason) - 1);
    reason[sizeof(reason) - 1] = 0;
    pe.reason = reason;
    ASSERT_EQ(link_validate(&m), -EBADMSG); /* one byte too long */
    reason[LINK_REASON_MAX] = 0;
    ASSERT_EQ(link_validate(&m), 0);

    Halo__Link__ObjectState st = HALO__LINK__OBJECT_STATE__INIT, *pst[LINK_OBJECTS_MAX + 1];
    st.object = (char *)"process:ios-a";
    st.state = (char *)"FAILED";
    st.seq = 7;
    for (size_t i = 0; i < ELEMENTSOF(pst); i++)
        pst[i] = &st;
    Halo__Link__RecoveryNote rn = HALO__LINK__RECOVERY_NOTE__INIT;
    rn.epoch = 3;
    rn.state = (char *)"recover";
    rn.reason = (char *)"";
    rn.events = pst;
    rn.n_events = LINK_OBJECTS_MAX;
    rn.last = 1;
    rn.nr_failures = LINK_OBJECTS_MAX;
    m.body_case = HALO__LINK__MSG__BODY_RECOVERY_NOTE;
    m.recovery_note = &rn;
    ASSERT_EQ(link_validate(&m), 0);
    int n = link_encode(&m, buf, sizeof(buf));
    ASSERT(n > 0); /* a full part fits one packet */
    LinkMsg *d = NULL;
    ASSERT_EQ(link_decode(buf, (size_t)n, &d), 0);
    ASSERT_EQ(d->recovery_note->n_events, LINK_OBJECTS_MAX);
    ASSERT_EQ(d->recovery_note->epoch, 3);
    ASSERT_STREQ(d->recovery_note->events[5]->object, "process:ios-a");
    link_msg_free(d);
    rn.n_events = LINK_OBJECTS_MAX + 1;
    ASSERT_EQ(link_validate(&m), -EBADMSG);
    rn.n_events = 1;
    rn.state = (char *)"";
    ASSERT_EQ(link_validate(&m), -EBADMSG);
    rn.state = (char *)"refused";
    st.object = (char *)"no-colon";
    ASSERT_EQ(link_validate(&m), -EBADMSG);
    st.object = (char *)"process:ios-a";

    /* The participants: a full vector part with the most a pool has still fits one packet; one more does not pass. */
    Halo__Link__Participant pa = HALO__LINK__PARTICIPANT__INIT, *ppa[LINK_PARTICIPANTS_MAX + 1];
    pa.object = (char *)"process:ios-c";
    pa.name = (char *)"ios-c";
    pa.node = (char *)"n3";
    pa.state = (char *)"ONLINE";
    for (size_t i = 0; i < ELEMENTSOF(ppa); i++)
        ppa[i] = &pa;
    rn.state = (char *)"recover";
    rn.n_events = LINK_OBJECTS_MAX;
    rn.participants = ppa;
    rn.n_participants = LINK_PARTICIPANTS_MAX;
    ASSERT_EQ(link_validate(&m), 0);
    n = link_encode(&m, buf, sizeof(buf));
    ASSERT(n > 0);
    ASSERT_EQ(link_decode(buf, (size_t)n, &d), 0);
    ASSERT_EQ(d->recovery_note->n_participants, LINK_PARTICIPANTS_MAX);
    ASSERT_STREQ(d->recovery_note->participants[3]->node, "n3");
    link_msg_free(d);
    rn.n_participants = LINK_PARTICIPANTS_MAX + 1;
    ASSERT_EQ(link_validate(&m), -EBADMSG);
    rn.n_participants = 1;
    pa.object = (char *)"ios-c"; /* not an object name */
    ASSERT_EQ(link_validate(&m), -EBADMSG);
    pa.object = (char *)"process:ios-c";
    pa.node = (char *)"";
    ASSERT_EQ(link_validate(&m), -EBADMSG);

    Halo__Link__ParticipantDone pd = HALO__LINK__PARTICIPANT_DONE__INIT;
    pd.seq = 2;
    pd.process = (char *)"process:ios-b";
    m.body_case = HALO__LINK__MSG__BODY_PARTICIPANT_DONE;
    m.participant_done = &pd;
    ASSERT_EQ(link_validate(&m), 0);
    pd.process = (char *)"ios-b";
    ASSERT_EQ(link_validate(&m), -EBADMSG);
    pd.process = (char *)"";
    ASSERT_EQ(link_validate(&m), -EBADMSG);
}

TEST(validate_log_messages) {
    LinkMsg m = HALO__LINK__MSG__INIT;
    Halo__Link__LogRecord rec = HALO__LINK__LOG_RECORD__INIT;
    static char text[LINK_LOG_TEXT_MAX + 2];
    m.body_case = HALO__LINK__MSG__BODY_LOG_RECORD;
    m.log_record = &rec;
    rec.severity = HALO_LOG_TRACE;
    rec.stream = (char *)"";
    rec.text = (char *)"a record\nwith a newline"; /* halod makes it one line; the link takes it */
    ASSERT_EQ(link_validate(&m), 0);
    rec.severity = HALO_LOG_TRACE + 1;
    ASSERT_EQ(link_validate(&m), -EBADMSG);
    rec.severity = HALO_LOG_INFO;
    memset(text, 'x', LINK_LOG_TEXT_MAX);
    rec.text = text;
    ASSERT_EQ(link_validate(&m), 0); /* exactly LINK_LOG_TEXT_MAX */
    text[LINK_LOG_TEXT_MAX] = 'x';
    ASSERT_EQ(link_validate(&m), -EBADMSG);
    rec.text = (char *)"t";
    const char *bad[] = {"a b", "a/b", "a:b", "\x01",
                         "0123456789012345678901234567890123456789012345678901234567890123X"};
    for (size_t i = 0; i < ELEMENTSOF(bad); i++) {
        rec.stream = (char *)bad[i];
        ASSERT_EQ(link_validate(&m), -EBADMSG);
    }
    rec.stream = (char *)"audit-1.x_y";
    ASSERT_EQ(link_validate(&m), 0);

    Halo__Link__LogLevels lv = HALO__LINK__LOG_LEVELS__INIT;
    Halo__Link__LogStreamLevel sl = HALO__LINK__LOG_STREAM_LEVEL__INIT, *psl[LINK_LOG_STREAMS_MAX + 1];
    m.body_case = HALO__LINK__MSG__BODY_LOG_LEVELS;
    m.log_levels = &lv;
    lv.level = HALO_LOG_DEBUG;
    sl.stream = (char *)"audit";
    sl.level = HALO_LOG_ERROR;
    for (size_t i = 0; i < ELEMENTSOF(psl); i++)
        psl[i] = &sl;
    lv.streams = psl;
    lv.n_streams = LINK_LOG_STREAMS_MAX;
    ASSERT_EQ(link_validate(&m), 0);
    lv.n_streams = LINK_LOG_STREAMS_MAX + 1;
    ASSERT_EQ(link_validate(&m), -EBADMSG);
    lv.n_streams = 1;
    sl.stream = (char *)""; /* a level of its own needs a stream's name */
    ASSERT_EQ(link_validate(&m), -EBADMSG);
    sl.stream = (char *)"audit";
    sl.level = 9;
    ASSERT_EQ(link_validate(&m), -EBADMSG);
}

TEST(validate_txn_messages) {
    LinkMsg m = HALO__LINK__MSG__INIT;
    Halo__Link__TxnCommit c = HALO__LINK__TXN_COMMIT__INIT;
    Halo__Link__TxnPart part = HALO__LINK__TXN_PART__INIT, *pparts[LINK_TXN_PARTS_MAX + 1];
    static uint8_t data[LINK_TXN_DATA_MAX + 1];
    m.body_case = HALO__LINK__MSG__BODY_TXN_COMMIT;
    m.txn_commit = &c;
    ASSERT_EQ(link_validate(&m), -EBADMSG); /* no participant */
    part.comp = (char *)"a";
    part.data.data = data;
    part.data.len = LINK_TXN_DATA_MAX;
    for (size_t i = 0; i < ELEMENTSOF(pparts); i++)
        pparts[i] = &part;
    c.parts = pparts;
    c.n_parts = 1;
    ASSERT_EQ(link_validate(&m), 0);
    part.data.len = LINK_TXN_DATA_MAX + 1;
    ASSERT_EQ(link_validate(&m), -EBADMSG);
    part.data.len = 1;
    c.n_parts = LINK_TXN_PARTS_MAX + 1;
    ASSERT_EQ(link_validate(&m), -EBADMSG);
    c.n_parts = 1;
    part.comp = (char *)"";
    ASSERT_EQ(link_validate(&m), -EBADMSG);

    Halo__Link__TxnVote v = HALO__LINK__TXN_VOTE__INIT;
    static char id[LINK_TXN_ID_MAX + 2];
    m.body_case = HALO__LINK__MSG__BODY_TXN_VOTE;
    m.txn_vote = &v;
    v.txn_id = (char *)"n1.1";
    v.reason = (char *)"";
    ASSERT_EQ(link_validate(&m), 0);
    v.vote = 1; /* yes is 0, no is negative */
    ASSERT_EQ(link_validate(&m), -EBADMSG);
    v.vote = -1;
    memset(id, 'x', LINK_TXN_ID_MAX + 1);
    v.txn_id = id;
    ASSERT_EQ(link_validate(&m), -EBADMSG);
    v.txn_id = (char *)"n1\n.1";
    ASSERT_EQ(link_validate(&m), -EBADMSG);

    /* The outcome query and haloctl txn TXID, forget TXID: a txid is longer than a name may be. */
    Halo__Link__TxnQuery q = HALO__LINK__TXN_QUERY__INIT;
    m.body_case = HALO__LINK__MSG__BODY_TXN_QUERY;
    m.txn_query = &q;
    q.txn_id = (char *)"";
    ASSERT_EQ(link_validate(&m), -EBADMSG);
    memset(id, 'x', LINK_TXN_ID_MAX);
    id[LINK_TXN_ID_MAX] = '\0';
    q.txn_id = id;
    ASSERT_EQ(link_validate(&m), 0);
    Halo__Link__Admin a = HALO__LINK__ADMIN__INIT;
    m.body_case = HALO__LINK__MSG__BODY_ADMIN;
    m.admin = &a;
    a.op = HALO__LINK__ADMIN__OP__TXN_SHOW;
    a.target = id;
    ASSERT_EQ(link_validate(&m), 0);
    a.op = HALO__LINK__ADMIN__OP__TXN_ABORT;
    ASSERT_EQ(link_validate(&m), 0);
    a.op = HALO__LINK__ADMIN__OP__TXN_FORGET;
    a.target = (char *)"n1.1\n";
    ASSERT_EQ(link_validate(&m), -EBADMSG);
    a.target = (char *)"";
    ASSERT_EQ(link_validate(&m), -EBADMSG);
    a.op = HALO__LINK__ADMIN__OP__TXN_LIST;
    ASSERT_EQ(link_validate(&m), 0);

    static char reason[LINK_TXN_REASON_MAX + 2];
    Halo__Link__Reply r = HALO__LINK__REPLY__INIT;
    m.body_case = HALO__LINK__MSG__BODY_REPLY;
    m.reply = &r;
    r.txn_state = LINK_TXN_STATE_ABORTED;
    memset(reason, 'r', LINK_TXN_REASON_MAX);
    r.txn_reason = reason;
    ASSERT_EQ(link_validate(&m), 0);
    reason[LINK_TXN_REASON_MAX] = 'r';
    ASSERT_EQ(link_validate(&m), -EBADMSG);
    reason[LINK_TXN_REASON_MAX] = '\0';
    r.txn_state = LINK_TXN_STATE_ABORTED + 1;
    ASSERT_EQ(link_validate(&m), -EBADMSG);
}
