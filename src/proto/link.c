/* SPDX-License-Identifier: MIT */
/* The HA link codec: size-checked, validated protobuf messages over SOCK_SEQPACKET. */
#include "link.h"

#include <assert.h>
#include <errno.h>
#include <limits.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>

#include "cdb-path.h"
#include "halo/halo.h"
#include "halo/log.h"
#include "macro.h"

int link_encode(const LinkMsg *msg, uint8_t *buf, size_t size) {
    /* A Msg without a body packs to zero bytes, which the peer would read as EOF. */
    if (msg->body_case == HALO__LINK__MSG__BODY__NOT_SET)
        return -EINVAL;
    size_t n = halo__link__msg__get_packed_size(msg);
    if (n > size || n > LINK_MSG_MAX)
        return -EMSGSIZE;
    return (int)halo__link__msg__pack(msg, buf);
}

int link_send_packed(int fd, const uint8_t *buf, size_t n) {
    if (n == 0 || n > LINK_MSG_MAX)
        return -EMSGSIZE;
    for (;;) {
        ssize_t k = send(fd, buf, n, MSG_NOSIGNAL | MSG_DONTWAIT);
        if (k >= 0)
            return 0;
        if (errno != EINTR)
            return -errno;
    }
}

/* Packets per sendmmsg(2) call. */
#define LINK_SEND_BATCH 64

int link_send_packed_many(int fd, const struct iovec *pkts, size_t n) {
    struct mmsghdr msgs[LINK_SEND_BATCH];
    size_t sent = 0;
    if (n > INT_MAX)
        return -EMSGSIZE;
    for (size_t i = 0; i < n; i++)
        if (pkts[i].iov_len == 0 || pkts[i].iov_len > LINK_MSG_MAX)
            return -EMSGSIZE;
    while (sent < n) {
        size_t k = MIN(n - sent, (size_t)LINK_SEND_BATCH);
        for (size_t i = 0; i < k; i++)
            msgs[i] = (struct mmsghdr){.msg_hdr = {.msg_iov = (struct iovec *)&pkts[sent + i], .msg_iovlen = 1}};
        int r = sendmmsg(fd, msgs, (unsigned)k, MSG_NOSIGNAL | MSG_DONTWAIT);
        if (r < 0) {
            if (errno == EINTR)
                continue;
            if (errno == EAGAIN || sent > 0)
                return (int)sent;
            return -errno;
        }
        sent += (size_t)r;
        if ((size_t)r < k)
            break; /* full; an error, if that is what stopped it, comes with the next send */
    }
    return (int)sent;
}

int link_send(int fd, const LinkMsg *msg) {
    uint8_t buf[LINK_MSG_MAX];
    int n = link_encode(msg, buf, sizeof(buf));
    if (n < 0)
        return n;
    return link_send_packed(fd, buf, (size_t)n);
}

/* A name: present, not empty when required, bounded, no control characters. */
static int check_name(const char *s, int required) {
    if (!s || !*s)
        return required ? -EBADMSG : 0;
    size_t n = strnlen(s, LINK_NAME_MAX + 1);
    if (n > LINK_NAME_MAX)
        return -EBADMSG;
    for (size_t i = 0; i < n; i++)
        if ((unsigned char)s[i] < 0x20 || s[i] == 0x7f)
            return -EBADMSG;
    return 0;
}

int link_cdb_path_check(const char *s, int root_ok) {
    return cdb_path_check(s, LINK_CDB_PATH_MAX, root_ok);
}

int link_log_stream_check(const char *s) {
    size_t n = s ? strnlen(s, LINK_LOG_STREAM_MAX + 1) : 0;
    if (n > LINK_LOG_STREAM_MAX)
        return -EINVAL;
    for (size_t i = 0; i < n; i++) {
        char c = s[i];
        if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '-' || c == '_' ||
              c == '.'))
            return -EINVAL;
    }
    return 0;
}

static int check_range(uint32_t v, uint32_t lo, uint32_t hi) {
    return v >= lo && v <= hi ? 0 : -EBADMSG;
}

#define CSI_FLAGS_KNOWN (HALO_CSI_ADD_ONE | HALO_CSI_TARGET_ONE | HALO_CSI_TARGET_ALL)

#define CHECK(x)             \
    do {                     \
        if ((x) < 0)         \
            return -EBADMSG; \
    } while (0)

/* A transaction's id: present, bounded, no control characters (halod checks the rest). */
static int check_txn_id(const char *s) {
    if (!s || !*s || strnlen(s, LINK_TXN_ID_MAX + 1) > LINK_TXN_ID_MAX)
        return -EBADMSG;
    for (; *s; s++)
        if ((unsigned char)*s < 0x20 || *s == 0x7f)
            return -EBADMSG;
    return 0;
}

static int check_txn_commit(const Halo__Link__TxnCommit *c) {
    if (c->n_parts == 0 || c->n_parts > LINK_TXN_PARTS_MAX)
        return -EBADMSG;
    for (size_t i = 0; i < c->n_parts; i++) {
        CHECK(check_name(c->parts[i]->comp, 1));
        if (c->parts[i]->data.len > LINK_TXN_DATA_MAX)
            return -EBADMSG;
    }
    return 0;
}

/* "kind:name": a short kind, then a name. */
static int check_object(const char *s) {
    if (!s || !*s || strnlen(s, LINK_OBJECT_MAX + 1) > LINK_OBJECT_MAX || !strchr(s, ':'))
        return -EBADMSG;
    for (const char *p = s; *p; p++)
        if ((unsigned char)*p <= 0x20 || *p == 0x7f || *p == '/')
            return -EBADMSG;
    return 0;
}

static int check_object_states(Halo__Link__ObjectState *const *st, size_t n) {
    if (n > LINK_OBJECTS_MAX)
        return -EBADMSG;
    for (size_t i = 0; i < n; i++) {
        CHECK(check_object(st[i]->object));
        CHECK(check_name(st[i]->state, 0));
        if (strlen(st[i]->state) > 16)
            return -EBADMSG;
    }
    return 0;
}

/* Interest rules: bounded count, known kinds, values short enough to be an
 * object's name (what each kind accepts is halod's to say, with EINVAL). */
static int check_interest(const Halo__Link__ObjectInterest *oi) {
    if (oi->n_rules > LINK_INTEREST_RULES_MAX)
        return -EBADMSG;
    for (size_t i = 0; i < oi->n_rules; i++) {
        CHECK(check_range(oi->rules[i]->kind, HALO__LINK__INTEREST_RULE__KIND__ALL,
                          HALO__LINK__INTEREST_RULE__KIND__POOL));
        if (strnlen(oi->rules[i]->value, LINK_OBJECT_MAX + 1) > LINK_OBJECT_MAX)
            return -EBADMSG;
    }
    return 0;
}

/* An event's pattern: bounded fields of bounded bytes. */
static int check_evt_pattern(const ProtobufCBinaryData *f, size_t n) {
    if (n > LINK_EVT_FIELDS_MAX)
        return -EBADMSG;
    for (size_t i = 0; i < n; i++)
        if (f[i].len > LINK_EVT_FIELD_MAX)
            return -EBADMSG;
    return 0;
}

/* A subscription's filters: bounded, known types, bounded values; what each type accepts is halod's to say. */
static int check_evt_filters(Halo__Link__EvtFilter *const *f, size_t n) {
    if (n > LINK_EVT_FIELDS_MAX)
        return -EBADMSG;
    for (size_t i = 0; i < n; i++) {
        CHECK(check_range(f[i]->type, HALO__LINK__EVT_FILTER__TYPE__PASS_ALL, HALO__LINK__EVT_FILTER__TYPE__MASK));
        if (f[i]->value.len > LINK_EVT_FIELD_MAX || f[i]->mask.len > LINK_EVT_FIELD_MAX)
            return -EBADMSG;
    }
    return 0;
}

/* CDB ops: valid paths (the root only in a delete), a delete carries no value,
 * bounded counts.  items: a list's answer, every one a set. */
static int check_cdb_ops(Halo__Link__CdbOp *const *ops, size_t n, bool items) {
    if (n > LINK_CDB_OPS_MAX)
        return -EBADMSG;
    for (size_t i = 0; i < n; i++) {
        if (link_cdb_path_check(ops[i]->path, ops[i]->del) < 0 || (ops[i]->del && (items || ops[i]->value.len)))
            return -EBADMSG;
    }
    return 0;
}

/* Checkpoints: names bounded (halod answers a bad one with EINVAL), data within a section's limit. */
static int check_ckpt_data(const char *name, const char *section, size_t len) {
    CHECK(check_name(name, 0));
    CHECK(check_name(section, 0));
    return len > LINK_CKPT_SECTION_MAX ? -EBADMSG : 0;
}

static int check_ckpt(const LinkMsg *m) {
    switch (m->body_case) {
    case HALO__LINK__MSG__BODY_CKPT_OPEN:
        CHECK(check_name(m->ckpt_open->name, 0));
        return m->ckpt_open->attrs ? check_name(m->ckpt_open->attrs->csi, 0) : 0;
    case HALO__LINK__MSG__BODY_CKPT_WRITE:
        CHECK(check_range(m->ckpt_write->mode, 0, LINK_CKPT_MODE_MAX));
        return check_ckpt_data(m->ckpt_write->name, m->ckpt_write->section, m->ckpt_write->data.len);
    case HALO__LINK__MSG__BODY_CKPT_READ:
        return check_ckpt_data(m->ckpt_read->name, m->ckpt_read->section, 0);
    case HALO__LINK__MSG__BODY_CKPT_LIST:
        return check_ckpt_data(m->ckpt_list->name, m->ckpt_list->after, 0);
    case HALO__LINK__MSG__BODY_CKPT_DELETE:
        return check_ckpt_data(m->ckpt_delete->name, m->ckpt_delete->section, 0);
    case HALO__LINK__MSG__BODY_CKPT_CLOSE:
        return check_name(m->ckpt_close->name, 0);
    case HALO__LINK__MSG__BODY_CKPT_UNLINK:
        return check_name(m->ckpt_unlink->name, 0);
    case HALO__LINK__MSG__BODY_CKPT_UPDATE:
        return check_ckpt_data(m->ckpt_update->name, m->ckpt_update->section, m->ckpt_update->data.len);
    default:
        return -EBADMSG;
    }
}

/* Text of the name service: bounded, no control characters (its own rules are halod's). */
static int check_name_text(const char *s, int required) {
    if (!s || !*s)
        return required ? -EBADMSG : 0;
    size_t n = strnlen(s, LINK_NAME_TEXT_MAX + 1);
    if (n > LINK_NAME_TEXT_MAX)
        return -EBADMSG;
    for (size_t i = 0; i < n; i++)
        if ((unsigned char)s[i] < 0x20 || s[i] == 0x7f)
            return -EBADMSG;
    return 0;
}

static int check_name_entry(const Halo__Link__NameEntry *e) {
    if (!e || e->ref.len > LINK_NAME_REF_MAX || e->n_attrs > LINK_ATTRS_MAX)
        return -EBADMSG;
    CHECK(check_name_text(e->context, 1));
    CHECK(check_name_text(e->name, 1));
    CHECK(check_name_text(e->comp, 0));
    CHECK(check_name_text(e->node, 0));
    for (size_t i = 0; i < e->n_attrs; i++) {
        CHECK(check_name_text(e->attrs[i]->name, 1));
        if (strnlen(e->attrs[i]->value, LINK_VALUE_MAX + 1) > LINK_VALUE_MAX)
            return -EBADMSG;
    }
    return 0;
}

static int validate_name_msg(const LinkMsg *m) {
    switch (m->body_case) {
    case HALO__LINK__MSG__BODY_NAME_REGISTER:
        return check_name_entry(m->name_register->entry);
    case HALO__LINK__MSG__BODY_NAME_DEREGISTER:
        CHECK(check_name_text(m->name_deregister->comp, 0));
        if (m->name_deregister->all)
            return *m->name_deregister->context || *m->name_deregister->name ? -EBADMSG : 0;
        CHECK(check_name_text(m->name_deregister->context, 1));
        return check_name_text(m->name_deregister->name, 1);
    case HALO__LINK__MSG__BODY_NAME_LOOKUP:
        CHECK(check_name_text(m->name_lookup->context, 1));
        return check_name_text(m->name_lookup->name, 1);
    case HALO__LINK__MSG__BODY_NAME_TRACK:
        CHECK(check_name_text(m->name_track->context, 1));
        CHECK(check_name_text(m->name_track->name, 1));
        return m->name_track->id == 0 ? -EBADMSG : 0;
    case HALO__LINK__MSG__BODY_NAME_TRACK_STOP:
        return m->name_track_stop->id == 0 ? -EBADMSG : 0;
    case HALO__LINK__MSG__BODY_NAME_NOTE:
        CHECK(check_range(m->name_note->change, HALO__LINK__NAME_NOTE__CHANGE__ADDED,
                          HALO__LINK__NAME_NOTE__CHANGE__REMOVED));
        CHECK(check_range(m->name_note->reason, HALO__LINK__NAME_NOTE__REASON__REGISTERED,
                          HALO__LINK__NAME_NOTE__REASON__NODE_LEFT));
        return m->name_note->id == 0 ? -EBADMSG : check_name_entry(m->name_note->entry);
    default:
        return -EBADMSG;
    }
}

int link_validate(const LinkMsg *m) {
    switch (m->body_case) {
    case HALO__LINK__MSG__BODY_HELLO:
        CHECK(check_name(m->hello->client, 0));
        return 0;
    case HALO__LINK__MSG__BODY_HELLO_REPLY:
        CHECK(check_name(m->hello_reply->node, 0));
        return 0;
    case HALO__LINK__MSG__BODY_REPLY:
        if (strnlen(m->reply->json, LINK_MSG_MAX) >= LINK_MSG_MAX || strlen(m->reply->txid) > LINK_CDB_TXID_MAX ||
            m->reply->ckpt_data.len > LINK_CKPT_SECTION_MAX || m->reply->n_ckpt_sections > LINK_CKPT_LIST_MAX ||
            strnlen(m->reply->txn_reason, LINK_TXN_REASON_MAX + 1) > LINK_TXN_REASON_MAX ||
            m->reply->txn_state > LINK_TXN_STATE_ABORTED)
            return -EBADMSG;
        for (size_t i = 0; i < m->reply->n_ckpt_sections; i++)
            CHECK(check_ckpt_data(NULL, m->reply->ckpt_sections[i]->id, m->reply->ckpt_sections[i]->data.len));
        if (m->reply->ckpt_attrs)
            CHECK(check_name(m->reply->ckpt_attrs->csi, 0));
        CHECK(check_cdb_ops(m->reply->items, m->reply->n_items, true));
        if (m->reply->n_names > LINK_NAME_ENTRIES_MAX)
            return -EBADMSG;
        for (size_t i = 0; i < m->reply->n_names; i++)
            CHECK(check_name_entry(m->reply->names[i]));
        return check_object_states(m->reply->states, m->reply->n_states);
    case HALO__LINK__MSG__BODY_REGISTER:
        CHECK(check_name(m->register_->comp, 1));
        CHECK(check_name(m->register_->proxy, 0));
        return 0;
    case HALO__LINK__MSG__BODY_UNREGISTER:
        CHECK(check_name(m->unregister->comp, 1));
        return 0;
    case HALO__LINK__MSG__BODY_RESPONSE:
        if (m->response->invocation == 0)
            return -EBADMSG;
        return 0;
    case HALO__LINK__MSG__BODY_HC_START:
        CHECK(check_name(m->hc_start->comp, 1));
        CHECK(check_name(m->hc_start->key, 1));
        CHECK(check_range(m->hc_start->invoked, HALO_HC_AMF_INVOKED, HALO_HC_COMPONENT_INVOKED));
        CHECK(check_range(m->hc_start->recovery, HALO_RECOVERY_NONE, HALO_RECOVERY_NODE_FAILFAST));
        return 0;
    case HALO__LINK__MSG__BODY_HC_CONFIRM:
        CHECK(check_name(m->hc_confirm->comp, 1));
        CHECK(check_name(m->hc_confirm->key, 1));
        return 0;
    case HALO__LINK__MSG__BODY_HC_STOP:
        CHECK(check_name(m->hc_stop->comp, 1));
        CHECK(check_name(m->hc_stop->key, 1));
        return 0;
    case HALO__LINK__MSG__BODY_ERROR_REPORT:
        CHECK(check_name(m->error_report->comp, 1));
        CHECK(check_range(m->error_report->recovery, HALO_RECOVERY_NONE, HALO_RECOVERY_NODE_FAILFAST));
        return 0;
    case HALO__LINK__MSG__BODY_PG_TRACK:
        CHECK(check_name(m->pg_track->csi, 1));
        if (m->pg_track->flags == 0 ||
            (m->pg_track->flags & ~(unsigned)(HALO_TRACK_CURRENT | HALO_TRACK_CHANGES | HALO_TRACK_CHANGES_ONLY)) ||
            ((m->pg_track->flags & HALO_TRACK_CHANGES) && (m->pg_track->flags & HALO_TRACK_CHANGES_ONLY)))
            return -EBADMSG;
        return 0;
    case HALO__LINK__MSG__BODY_PG_TRACK_STOP:
        CHECK(check_name(m->pg_track_stop->csi, 1));
        return 0;
    case HALO__LINK__MSG__BODY_HA_STATE_GET:
        CHECK(check_name(m->ha_state_get->comp, 1));
        CHECK(check_name(m->ha_state_get->csi, 1));
        return 0;
    case HALO__LINK__MSG__BODY_CSI_SET: {
        const Halo__Link__CsiSet *c = m->csi_set;
        CHECK(check_name(c->comp, 1));
        CHECK(check_name(c->csi, !(c->flags & HALO_CSI_TARGET_ALL)));
        CHECK(check_name(c->si, 0));
        CHECK(check_name(c->active_comp, 0));
        CHECK(check_range(c->ha_state, HALO_HA_ACTIVE, HALO_HA_QUIESCING));
        /* transition is 0 (unset) unless the state is ACTIVE; flags carry only known bits. */
        CHECK(check_range(c->transition, 0, HALO_CSI_STILL_ACTIVE));
        if (c->flags & ~(unsigned)CSI_FLAGS_KNOWN)
            return -EBADMSG;
        if (c->invocation == 0 || c->n_attrs > LINK_ATTRS_MAX)
            return -EBADMSG;
        for (size_t i = 0; i < c->n_attrs; i++) {
            CHECK(check_name(c->attrs[i]->name, 1));
            if (strnlen(c->attrs[i]->value, LINK_VALUE_MAX + 1) > LINK_VALUE_MAX)
                return -EBADMSG;
        }
        return 0;
    }
    case HALO__LINK__MSG__BODY_CSI_REMOVE:
        CHECK(check_name(m->csi_remove->comp, 1));
        CHECK(check_name(m->csi_remove->csi, !(m->csi_remove->flags & HALO_CSI_TARGET_ALL)));
        if (m->csi_remove->flags & ~(unsigned)CSI_FLAGS_KNOWN)
            return -EBADMSG;
        return m->csi_remove->invocation ? 0 : -EBADMSG;
    case HALO__LINK__MSG__BODY_TERMINATE:
        CHECK(check_name(m->terminate->comp, 1));
        return m->terminate->invocation ? 0 : -EBADMSG;
    case HALO__LINK__MSG__BODY_PROXIED_INSTANTIATE:
        CHECK(check_name(m->proxied_instantiate->comp, 1));
        return m->proxied_instantiate->invocation ? 0 : -EBADMSG;
    case HALO__LINK__MSG__BODY_PROXIED_CLEANUP:
        CHECK(check_name(m->proxied_cleanup->comp, 1));
        return m->proxied_cleanup->invocation ? 0 : -EBADMSG;
    case HALO__LINK__MSG__BODY_HEALTHCHECK:
        CHECK(check_name(m->healthcheck->comp, 1));
        CHECK(check_name(m->healthcheck->key, 1));
        return m->healthcheck->invocation ? 0 : -EBADMSG;
    case HALO__LINK__MSG__BODY_OBJECT_STATE_GET:
        if (m->object_state_get->n_objects == 0 || m->object_state_get->n_objects > LINK_OBJECTS_MAX)
            return -EBADMSG;
        for (size_t i = 0; i < m->object_state_get->n_objects; i++)
            CHECK(check_object(m->object_state_get->objects[i]));
        return 0;
    case HALO__LINK__MSG__BODY_ENTRYPOINT_GET:
        return 0;
    case HALO__LINK__MSG__BODY_CDB_GET:
        return link_cdb_path_check(m->cdb_get->path, 0) < 0 ? -EBADMSG : 0;
    case HALO__LINK__MSG__BODY_CDB_LIST:
        if (link_cdb_path_check(m->cdb_list->path, 1) < 0 ||
            (*m->cdb_list->after && link_cdb_path_check(m->cdb_list->after, 0) < 0))
            return -EBADMSG;
        return 0;
    case HALO__LINK__MSG__BODY_CDB_COMMIT:
        if (m->cdb_commit->n_ops == 0)
            return -EBADMSG;
        return check_cdb_ops(m->cdb_commit->ops, m->cdb_commit->n_ops, false);
    case HALO__LINK__MSG__BODY_CDB_SUBSCRIBE:
        return link_cdb_path_check(m->cdb_subscribe->path, 1) < 0 || m->cdb_subscribe->id == 0 ? -EBADMSG : 0;
    case HALO__LINK__MSG__BODY_CDB_UNSUBSCRIBE:
        return m->cdb_unsubscribe->id == 0 ? -EBADMSG : 0;
    case HALO__LINK__MSG__BODY_CDB_CHANGE:
        if (m->cdb_change->id == 0 || strlen(m->cdb_change->txid) > LINK_CDB_TXID_MAX ||
            (m->cdb_change->reset && m->cdb_change->n_ops))
            return -EBADMSG;
        return check_cdb_ops(m->cdb_change->ops, m->cdb_change->n_ops, false);
    case HALO__LINK__MSG__BODY_OBJECT_STATE_NOTE:
        return check_object_states(m->object_state_note->states, m->object_state_note->n_states);
    case HALO__LINK__MSG__BODY_OBJECT_INTEREST:
        return check_interest(m->object_interest);
    case HALO__LINK__MSG__BODY_EVT_OPEN:
        return check_name(m->evt_open->channel, 1);
    case HALO__LINK__MSG__BODY_EVT_PUBLISH:
        CHECK(check_name(m->evt_publish->channel, 1));
        CHECK(check_evt_pattern(m->evt_publish->pattern, m->evt_publish->n_pattern));
        return m->evt_publish->payload.len > LINK_EVT_PAYLOAD_MAX ||
                       m->evt_publish->retention_ms > LINK_EVT_RETENTION_MAX_MS
                   ? -EBADMSG
                   : 0;
    case HALO__LINK__MSG__BODY_EVT_SUBSCRIBE:
        CHECK(check_name(m->evt_subscribe->channel, 1));
        return m->evt_subscribe->id == 0 ? -EBADMSG
                                         : check_evt_filters(m->evt_subscribe->filters, m->evt_subscribe->n_filters);
    case HALO__LINK__MSG__BODY_EVT_UNSUBSCRIBE:
        return m->evt_unsubscribe->id == 0 ? -EBADMSG : 0;
    case HALO__LINK__MSG__BODY_EVT_EVENT:
        CHECK(check_name(m->evt_event->channel, 1));
        CHECK(check_name(m->evt_event->publisher, 0));
        CHECK(check_evt_pattern(m->evt_event->pattern, m->evt_event->n_pattern));
        return m->evt_event->payload.len > LINK_EVT_PAYLOAD_MAX ? -EBADMSG : 0;
    case HALO__LINK__MSG__BODY_PROCESS_EVENT:
        CHECK(check_range(m->process_event->event, HALO__LINK__PROCESS_EVENT__EVENT__STARTING,
                          HALO__LINK__PROCESS_EVENT__EVENT__RECOVERY_FAILED));
        return strnlen(m->process_event->reason, LINK_REASON_MAX + 1) > LINK_REASON_MAX ? -EBADMSG : 0;
    case HALO__LINK__MSG__BODY_RECOVERY_NOTE:
        CHECK(check_name(m->recovery_note->state, 1));
        if (strnlen(m->recovery_note->reason, LINK_REASON_MAX + 1) > LINK_REASON_MAX ||
            m->recovery_note->n_participants > LINK_PARTICIPANTS_MAX)
            return -EBADMSG;
        for (size_t i = 0; i < m->recovery_note->n_participants; i++) {
            const Halo__Link__Participant *p = m->recovery_note->participants[i];
            CHECK(check_object(p->object));
            CHECK(check_name(p->name, 1));
            CHECK(check_name(p->node, 1));
            CHECK(check_name(p->state, 0));
        }
        return check_object_states(m->recovery_note->events, m->recovery_note->n_events);
    case HALO__LINK__MSG__BODY_PARTICIPANT_DONE:
        return check_object(m->participant_done->process);
    case HALO__LINK__MSG__BODY_PG_TRACK_NOTIFY:
        CHECK(check_name(m->pg_track_notify->csi, 1));
        if (m->pg_track_notify->n_members > LINK_ATTRS_MAX)
            return -EBADMSG;
        for (size_t i = 0; i < m->pg_track_notify->n_members; i++) {
            CHECK(check_name(m->pg_track_notify->members[i]->comp, 1));
            CHECK(check_range(m->pg_track_notify->members[i]->ha_state, HALO_HA_ACTIVE, HALO_HA_QUIESCING));
            CHECK(check_range(m->pg_track_notify->members[i]->change, HALO_PG_NO_CHANGE, HALO_PG_STATE_CHANGED));
        }
        return 0;
    case HALO__LINK__MSG__BODY_LOG_RECORD:
        CHECK(check_range(m->log_record->severity, HALO_LOG_EMERGENCY, HALO_LOG_TRACE));
        if (link_log_stream_check(m->log_record->stream) < 0 ||
            strnlen(m->log_record->text, LINK_LOG_TEXT_MAX + 1) > LINK_LOG_TEXT_MAX)
            return -EBADMSG;
        return 0;
    case HALO__LINK__MSG__BODY_LOG_LEVELS:
        CHECK(check_range(m->log_levels->level, HALO_LOG_EMERGENCY, HALO_LOG_TRACE));
        if (m->log_levels->n_streams > LINK_LOG_STREAMS_MAX)
            return -EBADMSG;
        for (size_t i = 0; i < m->log_levels->n_streams; i++) {
            const Halo__Link__LogStreamLevel *l = m->log_levels->streams[i];
            CHECK(check_range(l->level, HALO_LOG_EMERGENCY, HALO_LOG_TRACE));
            if (!*l->stream || link_log_stream_check(l->stream) < 0)
                return -EBADMSG;
        }
        return 0;
    case HALO__LINK__MSG__BODY_TXN_COMMIT:
        return check_txn_commit(m->txn_commit);
    case HALO__LINK__MSG__BODY_TXN_DONE:
        CHECK(check_txn_id(m->txn_done->txn_id));
        return strnlen(m->txn_done->reason, LINK_TXN_REASON_MAX + 1) > LINK_TXN_REASON_MAX ? -EBADMSG : 0;
    case HALO__LINK__MSG__BODY_TXN_PREPARE:
        CHECK(check_txn_id(m->txn_prepare->txn_id));
        CHECK(check_name(m->txn_prepare->comp, 1));
        return m->txn_prepare->data.len > LINK_TXN_DATA_MAX ? -EBADMSG : 0;
    case HALO__LINK__MSG__BODY_TXN_VOTE:
        CHECK(check_txn_id(m->txn_vote->txn_id));
        return m->txn_vote->vote > 0 || strnlen(m->txn_vote->reason, LINK_TXN_REASON_MAX + 1) > LINK_TXN_REASON_MAX
                   ? -EBADMSG
                   : 0;
    case HALO__LINK__MSG__BODY_TXN_OUTCOME:
        CHECK(check_txn_id(m->txn_outcome->txn_id));
        return check_name(m->txn_outcome->comp, 1);
    case HALO__LINK__MSG__BODY_TXN_ACK:
        return check_txn_id(m->txn_ack->txn_id);
    case HALO__LINK__MSG__BODY_TXN_QUERY:
        return check_txn_id(m->txn_query->txn_id);
    case HALO__LINK__MSG__BODY_ADMIN:
        if (m->admin->op == HALO__LINK__ADMIN__OP__OP_UNSPECIFIED ||
            (m->admin->op > HALO__LINK__ADMIN__OP__NODE_SWITCHOVER &&
             m->admin->op != HALO__LINK__ADMIN__OP__EAM_START && m->admin->op != HALO__LINK__ADMIN__OP__EAM_STOP &&
             m->admin->op != HALO__LINK__ADMIN__OP__LOG_LEVEL && m->admin->op != HALO__LINK__ADMIN__OP__RELOAD &&
             m->admin->op != HALO__LINK__ADMIN__OP__LOG_SERVICE && m->admin->op != HALO__LINK__ADMIN__OP__CKPT &&
             m->admin->op != HALO__LINK__ADMIN__OP__NAMES && m->admin->op != HALO__LINK__ADMIN__OP__EVT_CHANNELS &&
             m->admin->op != HALO__LINK__ADMIN__OP__TXN_LIST && m->admin->op != HALO__LINK__ADMIN__OP__TXN_SHOW &&
             m->admin->op != HALO__LINK__ADMIN__OP__TXN_FORGET && m->admin->op != HALO__LINK__ADMIN__OP__TXN_ABORT))
            return -EBADMSG;
        /* A txid is longer than a name: "<node>.<n>". */
        if (m->admin->op == HALO__LINK__ADMIN__OP__TXN_SHOW || m->admin->op == HALO__LINK__ADMIN__OP__TXN_FORGET ||
            m->admin->op == HALO__LINK__ADMIN__OP__TXN_ABORT)
            return check_txn_id(m->admin->target);
        CHECK(check_name(m->admin->target, 0));
        return 0;
    case HALO__LINK__MSG__BODY_CKPT_OPEN:
    case HALO__LINK__MSG__BODY_CKPT_WRITE:
    case HALO__LINK__MSG__BODY_CKPT_READ:
    case HALO__LINK__MSG__BODY_CKPT_LIST:
    case HALO__LINK__MSG__BODY_CKPT_DELETE:
    case HALO__LINK__MSG__BODY_CKPT_CLOSE:
    case HALO__LINK__MSG__BODY_CKPT_UNLINK:
    case HALO__LINK__MSG__BODY_CKPT_UPDATE:
        return check_ckpt(m);
    case HALO__LINK__MSG__BODY_NAME_REGISTER:
    case HALO__LINK__MSG__BODY_NAME_DEREGISTER:
    case HALO__LINK__MSG__BODY_NAME_LOOKUP:
    case HALO__LINK__MSG__BODY_NAME_TRACK:
    case HALO__LINK__MSG__BODY_NAME_TRACK_STOP:
    case HALO__LINK__MSG__BODY_NAME_NOTE:
        return validate_name_msg(m);
    default:
        /* Unknown oneof (a newer peer) or no body at all. */
        return -EBADMSG;
    }
}

/*
 * A decoded message and everything protobuf-c allocates for it live in one
 * block, handed out by a bump allocator (what does not fit, malloc() takes):
 * a note of 256 object states is one allocation instead of about 800.  The
 * message is the block's first allocation, so link_msg_free() finds the
 * block in front of it.
 */
#define BLOCK_MAGIC UINT64_C(0x68616c6f6d736731) /* "halomsg1" */

struct msg_block {
    uint64_t magic;
    size_t size, used;
    ProtobufCAllocator alloc;
    max_align_t data[];
};

static void *block_alloc(void *data, size_t n) {
    struct msg_block *b = data;
    n = (n + sizeof(max_align_t) - 1) & ~(sizeof(max_align_t) - 1);
    if (b->size - b->used < n)
        return malloc(n);
    void *p = (char *)b->data + b->used;
    b->used += n;
    return p;
}

static void block_free(void *data, void *p) {
    struct msg_block *b = data;
    if ((char *)p >= (char *)b->data && (char *)p < (char *)b->data + b->size)
        return;
    free(p);
}

static struct msg_block *block_of(LinkMsg *m) {
    struct msg_block *b = (struct msg_block *)((char *)m - offsetof(struct msg_block, data));
    assert(b->magic == BLOCK_MAGIC);
    return b;
}

static void msg_free(LinkMsg *m) {
    struct msg_block *b = block_of(m);
    halo__link__msg__free_unpacked(m, &b->alloc);
    b->magic = 0;
    free(b);
}

int link_decode(const uint8_t *buf, size_t len, LinkMsg **ret) {
    if (len > LINK_MSG_MAX)
        return -EMSGSIZE;
    /* The unpacked form of a packet takes at most a few times its size. */
    size_t size = 4 * len + 1024;
    struct msg_block *b = malloc(sizeof(*b) + size);
    if (!b)
        return -ENOMEM;
    *b = (struct msg_block){.magic = BLOCK_MAGIC, .size = size};
    b->alloc = (ProtobufCAllocator){.alloc = block_alloc, .free = block_free, .allocator_data = b};
    LinkMsg *m = halo__link__msg__unpack(&b->alloc, len, buf);
    if (!m) {
        free(b);
        return -EBADMSG;
    }
    if ((void *)m != (void *)b->data) {
        /* Not protobuf-c's first allocation: cannot be found again.  Never seen. */
        halo__link__msg__free_unpacked(m, &b->alloc);
        free(b);
        return -ENOTSUP;
    }
    if (m->body_case == HALO__LINK__MSG__BODY__NOT_SET && m->base.n_unknown_fields > 0) {
        /* Well-formed, of a type a newer peer knows and we do not. */
        msg_free(m);
        return -EPROTONOSUPPORT;
    }
    if (link_validate(m) < 0) {
        msg_free(m);
        return -EBADMSG;
    }
    *ret = m;
    return 0;
}

int link_recv(int fd, LinkMsg **ret) {
    uint8_t buf[LINK_MSG_MAX + 1];
    ssize_t n;

    do
        n = recv(fd, buf, sizeof(buf), MSG_DONTWAIT | MSG_TRUNC);
    while (n < 0 && errno == EINTR);
    if (n < 0)
        return -errno;
    if (n == 0)
        return 0;
    if ((size_t)n > LINK_MSG_MAX)
        return -EMSGSIZE;
    int r = link_decode(buf, (size_t)n, ret);
    return r < 0 ? r : 1;
}

LinkMsg *link_msg_free(LinkMsg *m) {
    if (m)
        msg_free(m);
    return NULL;
}

const char *link_msg_type_name(const LinkMsg *m) {
    const ProtobufCFieldDescriptor *f =
        protobuf_c_message_descriptor_get_field(&halo__link__msg__descriptor, m->body_case);
    return f ? f->name : "unknown";
}
