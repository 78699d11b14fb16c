/* SPDX-License-Identifier: MIT */
/* Typed builders of the HA-link messages halod sends (link-pack.h). */
#include "link-pack.h"

#include <errno.h>
#include <stdbool.h>

#include "macro.h"

static int pack(LinkMsg *m, uint8_t *buf, size_t size) {
    return link_encode(m, buf, size);
}

static void object_state_fill(Halo__Link__ObjectState *o, const struct link_object_state *s) {
    halo__link__object_state__init(o);
    o->object = (char *)s->object;
    o->state = (char *)(s->state ? s->state : "");
    o->hlc = s->hlc;
    o->seq = s->seq;
}

int link_pack_csi_set(const struct link_csi_set *m, uint8_t *buf, size_t size) {
    Halo__Link__CsiSet cs = HALO__LINK__CSI_SET__INIT;
    LinkMsg msg = HALO__LINK__MSG__INIT;
    Halo__Link__Attr attrs[LINK_ATTRS_MAX], *pattrs[LINK_ATTRS_MAX];
    size_t n = MIN(m->n_attrs, (size_t)LINK_ATTRS_MAX);
    if (!m->comp || !m->csi || !m->si)
        return -EINVAL;
    for (size_t i = 0; i < n; i++) {
        halo__link__attr__init(&attrs[i]);
        attrs[i].name = (char *)m->attrs[i].name;
        attrs[i].value = (char *)m->attrs[i].value;
        pattrs[i] = &attrs[i];
    }
    cs.invocation = m->invocation;
    cs.comp = (char *)m->comp;
    cs.ha_state = m->state;
    cs.flags = m->flags;
    cs.csi = (char *)m->csi;
    cs.si = (char *)m->si;
    cs.n_attrs = n;
    cs.attrs = pattrs;
    cs.transition = m->transition;
    cs.active_comp = (char *)(m->active_comp ? m->active_comp : "");
    msg.body_case = HALO__LINK__MSG__BODY_CSI_SET;
    msg.csi_set = &cs;
    return pack(&msg, buf, size);
}

int link_pack_csi_remove(uint64_t invocation, const char *comp, const char *csi, unsigned flags, uint8_t *buf,
                         size_t size) {
    Halo__Link__CsiRemove cr = HALO__LINK__CSI_REMOVE__INIT;
    LinkMsg msg = HALO__LINK__MSG__INIT;
    if (!comp || !csi)
        return -EINVAL;
    cr.invocation = invocation;
    cr.comp = (char *)comp;
    cr.csi = (char *)csi;
    cr.flags = flags;
    msg.body_case = HALO__LINK__MSG__BODY_CSI_REMOVE;
    msg.csi_remove = &cr;
    return pack(&msg, buf, size);
}

int link_pack_terminate(uint64_t invocation, const char *comp, uint8_t *buf, size_t size) {
    Halo__Link__Terminate t = HALO__LINK__TERMINATE__INIT;
    LinkMsg msg = HALO__LINK__MSG__INIT;
    if (!comp)
        return -EINVAL;
    t.invocation = invocation;
    t.comp = (char *)comp;
    msg.body_case = HALO__LINK__MSG__BODY_TERMINATE;
    msg.terminate = &t;
    return pack(&msg, buf, size);
}

int link_pack_proxied(uint64_t invocation, const char *comp, bool cleanup, uint8_t *buf, size_t size) {
    Halo__Link__ProxiedInstantiate pi = HALO__LINK__PROXIED_INSTANTIATE__INIT;
    Halo__Link__ProxiedCleanup pc = HALO__LINK__PROXIED_CLEANUP__INIT;
    LinkMsg msg = HALO__LINK__MSG__INIT;
    if (!comp)
        return -EINVAL;
    if (cleanup) {
        pc.invocation = invocation;
        pc.comp = (char *)comp;
        msg.body_case = HALO__LINK__MSG__BODY_PROXIED_CLEANUP;
        msg.proxied_cleanup = &pc;
    } else {
        pi.invocation = invocation;
        pi.comp = (char *)comp;
        msg.body_case = HALO__LINK__MSG__BODY_PROXIED_INSTANTIATE;
        msg.proxied_instantiate = &pi;
    }
    return pack(&msg, buf, size);
}

int link_pack_healthcheck(uint64_t invocation, const char *comp, const char *key, uint8_t *buf, size_t size) {
    Halo__Link__Healthcheck h = HALO__LINK__HEALTHCHECK__INIT;
    LinkMsg msg = HALO__LINK__MSG__INIT;
    if (!comp || !key)
        return -EINVAL;
    h.invocation = invocation;
    h.comp = (char *)comp;
    h.key = (char *)key;
    msg.body_case = HALO__LINK__MSG__BODY_HEALTHCHECK;
    msg.healthcheck = &h;
    return pack(&msg, buf, size);
}

int link_pack_pg_notify(const char *csi, const halo_pg_member *members, size_t n, uint8_t *buf, size_t size) {
    Halo__Link__PgTrackNotify pn = HALO__LINK__PG_TRACK_NOTIFY__INIT;
    LinkMsg msg = HALO__LINK__MSG__INIT;
    Halo__Link__PgMember mem[LINK_OBJECTS_MAX], *pm[LINK_OBJECTS_MAX];
    if (!csi || n > LINK_OBJECTS_MAX)
        return -EINVAL;
    for (size_t i = 0; i < n; i++) {
        halo__link__pg_member__init(&mem[i]);
        mem[i].comp = (char *)members[i].comp_name;
        mem[i].ha_state = members[i].ha_state;
        mem[i].change = members[i].change;
        pm[i] = &mem[i];
    }
    pn.csi = (char *)csi;
    pn.n_members = n;
    pn.members = pm;
    msg.body_case = HALO__LINK__MSG__BODY_PG_TRACK_NOTIFY;
    msg.pg_track_notify = &pn;
    return pack(&msg, buf, size);
}

int link_pack_object_states(const struct link_object_state *states, size_t n, size_t *ret_taken, uint8_t *buf,
                            size_t size) {
    Halo__Link__ObjectState st[LINK_OBJECTS_MAX], *pst[LINK_OBJECTS_MAX];
    Halo__Link__ObjectStateNote note = HALO__LINK__OBJECT_STATE_NOTE__INIT;
    LinkMsg msg = HALO__LINK__MSG__INIT;
    size_t k = MIN(n, (size_t)LINK_OBJECTS_MAX);
    if (k == 0)
        return -EINVAL;
    for (size_t i = 0; i < k; i++) {
        object_state_fill(&st[i], &states[i]);
        pst[i] = &st[i];
    }
    msg.body_case = HALO__LINK__MSG__BODY_OBJECT_STATE_NOTE;
    msg.object_state_note = &note;
    note.states = pst;
    for (;;) { /* long object names: fewer per note */
        note.n_states = k;
        int len = pack(&msg, buf, size);
        if (len >= 0) {
            *ret_taken = k;
            return len;
        }
        if (len != -EMSGSIZE || k == 1)
            return len;
        k /= 2;
    }
}

int link_pack_recovery_note(const struct link_recovery_note *m, uint8_t *buf, size_t size) {
    Halo__Link__ObjectState st[LINK_OBJECTS_MAX], *pst[LINK_OBJECTS_MAX];
    Halo__Link__Participant pa[LINK_PARTICIPANTS_MAX], *ppa[LINK_PARTICIPANTS_MAX];
    Halo__Link__RecoveryNote note = HALO__LINK__RECOVERY_NOTE__INIT;
    LinkMsg msg = HALO__LINK__MSG__INIT;
    if (!m->state || m->n_events > LINK_OBJECTS_MAX || m->n_participants > LINK_PARTICIPANTS_MAX)
        return -EINVAL;
    for (size_t i = 0; i < m->n_events; i++) {
        object_state_fill(&st[i], &m->events[i]);
        pst[i] = &st[i];
    }
    for (size_t i = 0; i < m->n_participants; i++) {
        const struct link_participant *p = &m->participants[i];
        if (!p->object || !p->name || !p->node)
            return -EINVAL;
        pa[i] = (Halo__Link__Participant)HALO__LINK__PARTICIPANT__INIT;
        pa[i].object = (char *)p->object;
        pa[i].name = (char *)p->name;
        pa[i].node = (char *)p->node;
        pa[i].state = (char *)(p->state ? p->state : "");
        ppa[i] = &pa[i];
    }
    note.participants = ppa;
    note.n_participants = m->n_participants;
    note.epoch = m->epoch;
    note.state = (char *)m->state;
    note.reason = (char *)(m->reason ? m->reason : "");
    note.events = pst;
    note.n_events = m->n_events;
    note.last = m->last;
    note.nr_failures = m->nr_failures;
    msg.body_case = HALO__LINK__MSG__BODY_RECOVERY_NOTE;
    msg.recovery_note = &note;
    return pack(&msg, buf, size);
}

static int pack_reply(Halo__Link__Reply *r, uint8_t *buf, size_t size) {
    LinkMsg msg = HALO__LINK__MSG__INIT;
    msg.body_case = HALO__LINK__MSG__BODY_REPLY;
    msg.reply = r;
    return pack(&msg, buf, size);
}

int link_pack_reply(uint64_t seq, int error, const char *json, uint8_t *buf, size_t size) {
    Halo__Link__Reply r = HALO__LINK__REPLY__INIT;
    r.seq = seq;
    r.error = error;
    r.json = (char *)(json ? json : "");
    return pack_reply(&r, buf, size);
}

int link_pack_reply_ha_state(uint64_t seq, halo_ha_state state, uint8_t *buf, size_t size) {
    Halo__Link__Reply r = HALO__LINK__REPLY__INIT;
    r.seq = seq;
    r.ha_state = state;
    return pack_reply(&r, buf, size);
}

int link_pack_reply_states(uint64_t seq, const struct link_object_state *states, size_t n, uint8_t *buf, size_t size) {
    Halo__Link__ObjectState st[LINK_OBJECTS_MAX], *pst[LINK_OBJECTS_MAX];
    Halo__Link__Reply r = HALO__LINK__REPLY__INIT;
    if (n > LINK_OBJECTS_MAX)
        return -EINVAL;
    for (size_t i = 0; i < n; i++) {
        object_state_fill(&st[i], &states[i]);
        pst[i] = &st[i];
    }
    r.seq = seq;
    r.states = pst;
    r.n_states = n;
    return pack_reply(&r, buf, size);
}

int link_pack_reply_retry(uint64_t seq, int error, const char *json, unsigned retry_msec, uint8_t *buf, size_t size) {
    Halo__Link__Reply r = HALO__LINK__REPLY__INIT;
    r.seq = seq;
    r.error = error;
    r.json = (char *)(json ? json : "");
    r.retry_msec = retry_msec;
    return pack_reply(&r, buf, size);
}
