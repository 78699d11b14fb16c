/* SPDX-License-Identifier: MIT */
/* Length-prefixed protobuf messages on byte streams (the HA control socket and replication between nodes). */
#include "frame.h"

#include <errno.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

#include "link.h"
#include "macro.h"

static void put_be32(uint8_t *p, uint32_t v) {
    p[0] = (uint8_t)(v >> 24);
    p[1] = (uint8_t)(v >> 16);
    p[2] = (uint8_t)(v >> 8);
    p[3] = (uint8_t)v;
}

static uint32_t get_be32(const uint8_t *p) {
    return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | p[3];
}

static int pack(size_t n, size_t max, size_t (*packer)(const void *, uint8_t *), const void *m, uint8_t **ret,
                size_t *ret_len) {
    if (n > max)
        return -EMSGSIZE;
    uint8_t *buf = malloc(FRAME_HEADER + n);
    if (!buf)
        return -ENOMEM;
    put_be32(buf, (uint32_t)n);
    packer(m, buf + FRAME_HEADER);
    *ret = buf;
    *ret_len = FRAME_HEADER + n;
    return 0;
}

static size_t pack_control(const void *m, uint8_t *out) {
    return halo__ha__control__pack(m, out);
}

static size_t pack_repl(const void *m, uint8_t *out) {
    return halo__ha__repl__pack(m, out);
}

int frame_pack_control(const HaControl *m, uint8_t **ret, size_t *ret_len) {
    if (m->body_case == HALO__HA__CONTROL__BODY__NOT_SET)
        return -EINVAL;
    return pack(halo__ha__control__get_packed_size(m), FRAME_CONTROL_MAX, pack_control, m, ret, ret_len);
}

int frame_pack_repl(const HaRepl *m, uint8_t **ret, size_t *ret_len) {
    if (m->body_case == HALO__HA__REPL__BODY__NOT_SET)
        return -EINVAL;
    return pack(halo__ha__repl__get_packed_size(m), FRAME_REPL_MAX, pack_repl, m, ret, ret_len);
}

/* ---- validation ---------------------------------------------------------- */

/* A node name, address or token: bounded, no control characters; required: not empty. */
static bool text_ok(const char *s, size_t max, bool required) {
    if (!s || !*s)
        return !required;
    size_t n = strnlen(s, max + 1);
    if (n > max)
        return false;
    for (size_t i = 0; i < n; i++)
        if ((unsigned char)s[i] < 0x20 || s[i] == 0x7f)
            return false;
    return true;
}

static bool ops_ok(Halo__Link__CdbOp *const *ops, size_t n, bool rows) {
    for (size_t i = 0; i < n; i++)
        if (link_cdb_path_check(ops[i]->path, ops[i]->del && !rows) < 0 || (ops[i]->del && (rows || ops[i]->value.len)))
            return false;
    return true;
}

static int validate_control(const HaControl *m) {
    switch (m->body_case) {
    case HALO__HA__CONTROL__BODY_REQUEST: {
        const Halo__Ha__Request *q = m->request;
        if (q->op == HALO__HA__REQUEST__OP__OP_UNSPECIFIED || q->op > HALO__HA__REQUEST__OP__AUTH)
            return -EBADMSG;
        if ((q->nonce.len && q->nonce.len != FRAME_NONCE_LEN) || (q->mac.len && q->mac.len != FRAME_MAC_LEN))
            return -EBADMSG;
        if (!text_ok(q->token, LINK_NAME_MAX, false) || !text_ok(q->nodeid, LINK_NAME_MAX, false) ||
            !text_ok(q->primary_id, LINK_NAME_MAX, false) || !text_ok(q->primary_addr, LINK_NAME_MAX, false))
            return -EBADMSG;
        return 0;
    }
    case HALO__HA__CONTROL__BODY_REPLY:
        if (m->reply->n_nodes > FRAME_NODES_MAX || m->reply->state > 4 ||
            (m->reply->nonce.len && m->reply->nonce.len != FRAME_NONCE_LEN) ||
            (m->reply->mac.len && m->reply->mac.len != FRAME_MAC_LEN))
            return -EBADMSG;
        for (size_t i = 0; i < m->reply->n_nodes; i++)
            if (!text_ok(m->reply->nodes[i]->nodeid, LINK_NAME_MAX, true) ||
                !text_ok(m->reply->nodes[i]->addr, LINK_NAME_MAX, false))
                return -EBADMSG;
        return 0;
    case HALO__HA__CONTROL__BODY_NOTIFICATION:
        if (m->notification->type == HALO__HA__NOTIFICATION__TYPE__TYPE_UNSPECIFIED ||
            m->notification->type > HALO__HA__NOTIFICATION__TYPE__BESECONDARY_RESULT ||
            !text_ok(m->notification->nodeid, LINK_NAME_MAX, false) ||
            !text_ok(m->notification->reason, LINK_NAME_MAX, false))
            return -EBADMSG;
        return 0;
    default:
        return -EBADMSG;
    }
}

static int validate_repl(const HaRepl *m) {
    switch (m->body_case) {
    case HALO__HA__REPL__BODY_HELLO:
        /* db is empty exactly in a version-1 Hello (the main database). */
        return text_ok(m->hello->nodeid, LINK_NAME_MAX, true) && m->hello->nonce.len == FRAME_NONCE_LEN &&
                       text_ok(m->hello->db, LINK_NAME_MAX, false) &&
                       (m->hello->version == FRAME_REPL_VERSION) == !*m->hello->db
                   ? 0
                   : -EBADMSG;
    case HALO__HA__REPL__BODY_AUTH:
        return m->auth->mac.len == FRAME_MAC_LEN ? 0 : -EBADMSG;
    case HALO__HA__REPL__BODY_JOIN:
        return text_ok(m->join->primary_id, LINK_NAME_MAX, true) &&
                       text_ok(m->join->last_txid, LINK_CDB_TXID_MAX, true) &&
                       text_ok(m->join->subtree, LINK_CDB_PATH_MAX, false)
                   ? 0
                   : -EBADMSG;
    case HALO__HA__REPL__BODY_WELCOME:
        return text_ok(m->welcome->txid, LINK_CDB_TXID_MAX, false) &&
                       text_ok(m->welcome->upstream, LINK_CDB_TXID_MAX, false)
                   ? 0
                   : -EBADMSG;
    case HALO__HA__REPL__BODY_ROWS:
        return ops_ok(m->rows->rows, m->rows->n_rows, true) ? 0 : -EBADMSG;
    case HALO__HA__REPL__BODY_COPY_END:
        return text_ok(m->copy_end->txid, LINK_CDB_TXID_MAX, true) ? 0 : -EBADMSG;
    case HALO__HA__REPL__BODY_TXN:
        if (m->txn->seq == 0 || m->txn->n_ops == 0 || m->txn->n_ops > LINK_CDB_OPS_MAX ||
            !text_ok(m->txn->txid, LINK_CDB_TXID_MAX, true))
            return -EBADMSG;
        return ops_ok(m->txn->ops, m->txn->n_ops, false) ? 0 : -EBADMSG;
    case HALO__HA__REPL__BODY_ACK:
    case HALO__HA__REPL__BODY_TICK:
        return 0;
    case HALO__HA__REPL__BODY_ERROR:
        return text_ok(m->error->text, LINK_NAME_MAX, false) ? 0 : -EBADMSG;
    default:
        return -EBADMSG;
    }
}

/*
 * protobuf-c takes a field number 0, which protobuf forbids, as an unknown
 * field when its tag is written as a longer varint (it refuses the one-byte
 * form, so the message would not decode once re-encoded): such a message,
 * or one nesting it, is refused with the other malformed ones.
 */
static bool field_numbers_ok(const ProtobufCMessage *m) {
    const char *base = (const char *)m;
    for (unsigned i = 0; i < m->n_unknown_fields; i++)
        if (m->unknown_fields[i].tag == 0)
            return false;
    for (unsigned i = 0; i < m->descriptor->n_fields; i++) {
        const ProtobufCFieldDescriptor *f = &m->descriptor->fields[i];
        if (f->type != PROTOBUF_C_TYPE_MESSAGE)
            continue;
        if (f->label == PROTOBUF_C_LABEL_REPEATED) {
            size_t n = *(const size_t *)(base + f->quantifier_offset);
            ProtobufCMessage *const *v = *(ProtobufCMessage *const *const *)(base + f->offset);
            for (size_t k = 0; k < n; k++)
                if (!field_numbers_ok(v[k]))
                    return false;
            continue;
        }
        /* The members of a oneof share their place: only the one set is there. */
        if ((f->flags & PROTOBUF_C_FIELD_FLAG_ONEOF) && *(const uint32_t *)(base + f->quantifier_offset) != f->id)
            continue;
        const ProtobufCMessage *sub = *(ProtobufCMessage *const *)(base + f->offset);
        if (sub && !field_numbers_ok(sub))
            return false;
    }
    return true;
}

/* Decodes a message of the given type, at most max bytes, and validates it; NULL if any fails. */
static ProtobufCMessage *unpack(const ProtobufCMessageDescriptor *d, size_t max, const uint8_t *buf, size_t len,
                                int (*validate)(const void *m)) {
    if (len > max)
        return NULL;
    ProtobufCMessage *m = protobuf_c_message_unpack(d, NULL, len, buf);
    if (m && (!field_numbers_ok(m) || validate(m) < 0)) {
        protobuf_c_message_free_unpacked(m, NULL);
        return NULL;
    }
    return m;
}

static int validate_control_any(const void *m) {
    return validate_control(m);
}

static int validate_repl_any(const void *m) {
    return validate_repl(m);
}

int frame_unpack_control(const uint8_t *buf, size_t len, HaControl **ret) {
    HaControl *m =
        (HaControl *)unpack(&halo__ha__control__descriptor, FRAME_CONTROL_MAX, buf, len, validate_control_any);
    if (!m)
        return -EBADMSG;
    *ret = m;
    return 0;
}

int frame_unpack_repl(const uint8_t *buf, size_t len, HaRepl **ret) {
    HaRepl *m = (HaRepl *)unpack(&halo__ha__repl__descriptor, FRAME_REPL_MAX, buf, len, validate_repl_any);
    if (!m)
        return -EBADMSG;
    *ret = m;
    return 0;
}

HaControl *frame_control_free(HaControl *m) {
    if (m)
        halo__ha__control__free_unpacked(m, NULL);
    return NULL;
}

HaRepl *frame_repl_free(HaRepl *m) {
    if (m)
        halo__ha__repl__free_unpacked(m, NULL);
    return NULL;
}

/* ---- the reader ------------------------------------------------------------ */

void frame_reader_init(struct frame_reader *r, size_t max) {
    *r = (struct frame_reader){.max = max};
}

void frame_reader_done(struct frame_reader *r) {
    free(r->buf);
    *r = (struct frame_reader){.max = r->max};
}

static void drop_consumed(struct frame_reader *r) {
    if (!r->consumed)
        return;
    memmove(r->buf, r->buf + r->consumed, r->len - r->consumed);
    r->len -= r->consumed;
    r->consumed = 0;
}

int frame_reader_feed(struct frame_reader *r, const uint8_t *data, size_t n) {
    drop_consumed(r);
    if (r->len + n > r->cap) {
        size_t cap = r->cap ? r->cap : 4096;
        while (cap < r->len + n)
            cap *= 2;
        uint8_t *buf = realloc(r->buf, cap);
        if (!buf)
            return -ENOMEM;
        r->buf = buf;
        r->cap = cap;
    }
    memcpy(r->buf + r->len, data, n);
    r->len += n;
    if (r->len >= FRAME_HEADER && get_be32(r->buf) > r->max)
        return -EMSGSIZE;
    return 0;
}

int frame_reader_next(struct frame_reader *r, const uint8_t **ret_body, size_t *ret_len) {
    drop_consumed(r);
    if (r->len < FRAME_HEADER)
        return 0;
    uint32_t n = get_be32(r->buf);
    if (n > r->max || r->len < FRAME_HEADER + (size_t)n)
        return 0;
    *ret_body = r->buf + FRAME_HEADER;
    *ret_len = n;
    r->consumed = FRAME_HEADER + (size_t)n;
    return 1;
}
