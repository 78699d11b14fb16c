/* SPDX-License-Identifier: MIT */
/*
 * The checkpoint service (ckpt.h, docs/checkpoints.md): opens, closes and retention.  The
 * sections' requests are in ckpt-io.c; the node's replica, its updates and local reads in
 * ckpt-replica.c.
 *
 * Every checkpoint lives in the store: its attributes at ckpt/<name>, its sections at
 * ckpt/<name>/<section>.  What a node has open is ckpt-open/<name>/<node>; every open also puts
 * ckpt-open/<name> (the stamp), so that a retention's deletion, guarded by the stamp's revision,
 * loses to any open that came after it looked.
 */
#include "ckpt-internal.h"

#include <errno.h>
#include <jansson.h>
#include <stdlib.h>
#include <string.h>

#include "halo/ckpt.h"
#include "keys.h"
#include "log.h"
#include "macro.h"
#include "svc.h"

/* ---- keys ---------------------------------------------------------------------------------- */

static int key_result(int r) {
    return r < 0 ? r : 0;
}

int ckpt_key_meta(struct ckpt_svc *s, char *buf, const char *name) {
    return key_result(key_name(buf, s->prefix, KEY_CKPT, name));
}

int ckpt_key_sections(struct ckpt_svc *s, char *buf, const char *name) {
    return key_result(key_name_dir(buf, s->prefix, KEY_CKPT, name));
}

int ckpt_key_section(struct ckpt_svc *s, char *buf, const char *name, const char *section) {
    return key_result(key_pair(buf, s->prefix, KEY_CKPT, name, section));
}

int ckpt_key_stamp(struct ckpt_svc *s, char *buf, const char *name) {
    return key_result(key_name(buf, s->prefix, KEY_CKPT_OPEN, name));
}

int ckpt_key_openers(struct ckpt_svc *s, char *buf, const char *name) {
    return key_result(key_name_dir(buf, s->prefix, KEY_CKPT_OPEN, name));
}

int ckpt_key_opener(struct ckpt_svc *s, char *buf, const char *name, const char *node) {
    return key_result(key_pair(buf, s->prefix, KEY_CKPT_OPEN, name, node));
}

/* ---- attributes ---------------------------------------------------------------------------- */

static char *attrs_format(const struct ckpt_attrs *a) {
    json_t *j = json_pack("{s:I, s:I, s:I, s:I, s:s}", "flags", (json_int_t)a->flags, "retention_msec",
                          (json_int_t)a->retention_msec, "max_sections", (json_int_t)a->max_sections,
                          "max_section_size", (json_int_t)a->max_section_size, "csi", a->csi);
    char *s = j ? json_dumps(j, JSON_COMPACT) : NULL;
    json_decref(j);
    return s;
}

int ckpt_attrs_parse(const char *json, size_t len, struct ckpt_attrs *ret) {
    json_int_t flags, retention, sections, size;
    const char *csi;
    json_t *j = json_loadb(json, len, 0, NULL);
    int r = json_unpack(j, "{s:I, s:I, s:I, s:I, s:s}", "flags", &flags, "retention_msec", &retention, "max_sections",
                        &sections, "max_section_size", &size, "csi", &csi);
    if (r == 0 && strlen(csi) <= LINK_NAME_MAX) {
        *ret = (struct ckpt_attrs){.flags = (uint32_t)flags,
                                   .retention_msec = (uint64_t)retention,
                                   .max_sections = (uint32_t)sections,
                                   .max_section_size = (uint32_t)size};
        strcpy(ret->csi, csi);
    }
    json_decref(j);
    return r == 0 ? 0 : -EBADMSG;
}

/* A creator's attributes, with the defaults filled in: 0 or -EINVAL, -HALO_EUNKNOWN. */
static int attrs_from_msg(struct ckpt_svc *s, const Halo__Link__CkptAttrs *m, struct ckpt_attrs *a) {
    if (!m || (m->flags & ~(uint32_t)HALO_CKPT_COLLOCATED) || m->retention_msec > CKPT_RETENTION_MAX_MSEC ||
        m->max_sections > CKPT_SECTIONS_MAX || m->max_section_size > LINK_CKPT_SECTION_MAX)
        return -EINVAL;
    bool collocated = m->flags & HALO_CKPT_COLLOCATED;
    if (collocated != (m->csi && *m->csi))
        return -EINVAL;
    const struct config_csi *csi;
    if (collocated && !amf_find_csi(s->amf, m->csi, &csi))
        return -HALO_EUNKNOWN;
    *a = (struct ckpt_attrs){.flags = m->flags,
                             .retention_msec = m->retention_msec,
                             .max_sections = m->max_sections ?: CKPT_SECTIONS_DEFAULT,
                             .max_section_size = m->max_section_size ?: LINK_CKPT_SECTION_MAX};
    snprintf(a->csi, sizeof(a->csi), "%s", m->csi ?: "");
    return 0;
}

/* ---- requests ------------------------------------------------------------------------------ */

int ckpt_req_new(struct ckpt_svc *s, struct conn *c, uint64_t seq, int kind, const char *name, size_t len,
                 struct ckpt_req **ret) {
    if (!svc_name_valid(name, SVC_NAME_MAX))
        return -EINVAL;
    struct ckpt_req *q = calloc(1, sizeof(*q) + len);
    if (!q)
        return -ENOMEM;
    q->svc = s;
    q->conn = c;
    q->seq = seq;
    q->kind = kind;
    q->len = len;
    strcpy(q->name, name);
    LIST_PREPEND(reqs, &s->reqs, q);
    *ret = q;
    return 0;
}

void ckpt_req_done(struct ckpt_req *q, int error, Halo__Link__Reply *rep) {
    struct ckpt_svc *s = q->batched ? q->svc : NULL;
    if (q->conn && q->svc) {
        if (error < 0 || !rep)
            (void)server_conn_reply(q->conn, q->seq, error, NULL);
        else {
            rep->seq = q->seq;
            (void)server_conn_send_reply(q->conn, rep);
        }
    }
    if (q->svc)
        LIST_REMOVE(reqs, &q->svc->reqs, q);
    free(q);
    if (s)
        ckpt_batch_next(s);
}

/* ---- local checkpoints --------------------------------------------------------------------- */

struct ckpt *ckpt_find(struct ckpt_svc *s, const char *name) {
    struct ckpt *k;
    LIST_FOREACH (ckpts, k, &s->ckpts)
        if (streq(k->name, name))
            return k;
    return NULL;
}

struct ckpt_opener *ckpt_opener_find(struct ckpt *k, const struct conn *c) {
    struct ckpt_opener *o;
    LIST_FOREACH (openers, o, &k->openers)
        if (o->conn == c)
            return o;
    return NULL;
}

static void on_timer_closed(uv_handle_t *h) {
    free(h);
}

static void retention_stop(struct ckpt *k) {
    if (k->retention) {
        uv_close((uv_handle_t *)k->retention, on_timer_closed);
        k->retention = NULL;
    }
}

static void ckpt_free(struct ckpt *k) {
    retention_stop(k);
    ckpt_replica_stop(k, -ECANCELED);
    struct ckpt_opener *o;
    while ((o = LIST_POP(openers, &k->openers)))
        free(o);
    LIST_REMOVE(ckpts, &k->svc->ckpts, k);
    free(k->name);
    free(k);
}

static struct ckpt *ckpt_get(struct ckpt_svc *s, const char *name, const struct ckpt_attrs *a) {
    struct ckpt *k = ckpt_find(s, name);
    if (!k) {
        k = calloc(1, sizeof(*k));
        if (!k || !(k->name = strdup(name))) {
            free(k);
            return NULL;
        }
        k->svc = s;
        LIST_PREPEND(ckpts, &s->ckpts, k);
    }
    k->attrs = *a;
    return k;
}

/* ---- retention ----------------------------------------------------------------------------- */

static void on_retention_deleted(store *st, int error, const store_result *r, void *userdata) {
    struct ckpt_req *q = userdata;
    if (q->svc && error >= 0 && r->succeeded)
        log_info("Checkpoint '%s' deleted: nobody had it open for its retention time", q->name);
    else if (q->svc && error < 0)
        log_warning_errno(error, "Failed to delete checkpoint '%s' after its retention time: %m", q->name);
    ckpt_req_done(q, 0, NULL);
}

/* What the retention read found: no opener anywhere, and the stamp as it was then. */
static void on_retention_read(store *st, int error, const store_result *r, void *userdata) {
    struct ckpt_req *q = userdata;
    char stamp[STORE_KEY_MAX], meta[STORE_KEY_MAX], sections[STORE_KEY_MAX];
    int64_t stamp_mod = 0;
    bool opened = false;

    if (!q->svc || error < 0) {
        if (q->svc)
            log_warning_errno(error, "Failed to read who has checkpoint '%s' open; it is kept: %m", q->name);
        ckpt_req_done(q, 0, NULL);
        return;
    }
    struct ckpt *k = ckpt_find(q->svc, q->name);
    if (ckpt_key_stamp(q->svc, stamp, q->name) < 0 || ckpt_key_meta(q->svc, meta, q->name) < 0 ||
        ckpt_key_sections(q->svc, sections, q->name) < 0 || (k && !LIST_IS_EMPTY(&k->openers))) {
        ckpt_req_done(q, 0, NULL);
        return;
    }
    for (size_t i = 0; i < r->n_kvs; i++) {
        if (r->kvs[i].key_len == strlen(stamp) && memcmp(r->kvs[i].key, stamp, r->kvs[i].key_len) == 0)
            stamp_mod = r->kvs[i].mod_revision;
        else
            opened = true;
    }
    if (opened) { /* another node holds it: its last close starts the retention there */
        ckpt_req_done(q, 0, NULL);
        return;
    }
    store_compare cmp = {.key = stamp,
                         .key_len = strlen(stamp),
                         .target = STORE_CMP_MOD,
                         .result = STORE_CMP_EQUAL,
                         .number = stamp_mod};
    store_op ops[] = {
        {.type = STORE_OP_DELETE_PREFIX, .key = sections, .key_len = strlen(sections)},
        {.type = STORE_OP_DELETE, .key = meta, .key_len = strlen(meta)},
        {.type = STORE_OP_DELETE, .key = stamp, .key_len = strlen(stamp)},
    };
    store_txn t = {.compares = &cmp, .n_compares = 1, .success = ops, .n_success = ELEMENTSOF(ops)};
    if (store_transaction(q->svc->store, &t, on_retention_deleted, q) < 0)
        ckpt_req_done(q, 0, NULL);
}

static void on_retention(uv_timer_t *t) {
    struct ckpt *k = t->data;
    struct ckpt_svc *s = k->svc;
    char openers[STORE_KEY_MAX], stamp[STORE_KEY_MAX];
    struct ckpt_req *q = NULL;

    retention_stop(k);
    if (LIST_IS_EMPTY(&k->openers)) {
        int r = ckpt_req_new(s, NULL, 0, 0, k->name, 0, &q);
        ckpt_free(k);
        if (r < 0 || ckpt_key_openers(s, openers, q->name) < 0 || ckpt_key_stamp(s, stamp, q->name) < 0) {
            if (q)
                ckpt_req_done(q, 0, NULL);
            return;
        }
        store_op ops[] = {
            {.type = STORE_OP_GET_PREFIX, .key = openers, .key_len = strlen(openers), .keys_only = true},
            {.type = STORE_OP_GET, .key = stamp, .key_len = strlen(stamp), .keys_only = true},
        };
        store_txn txn = {.success = ops, .n_success = ELEMENTSOF(ops)};
        if (store_transaction(s->store, &txn, on_retention_read, q) < 0)
            ckpt_req_done(q, 0, NULL);
    }
}

/* The last opener here left: this node's mark goes, and the retention time runs. */
static void ckpt_last_closed(struct ckpt *k) {
    char opener[STORE_KEY_MAX];
    ckpt_replica_stop(k, -EBADF);
    if (ckpt_key_opener(k->svc, opener, k->name, k->svc->node) >= 0)
        (void)store_delete(k->svc->store, opener, NULL, NULL);
    k->retention = malloc(sizeof(*k->retention));
    if (!k->retention || uv_timer_init(k->svc->loop, k->retention) < 0) {
        free(k->retention);
        k->retention = NULL; /* kept: nothing here deletes it */
        log_error("Out of memory: checkpoint '%s' is kept past its retention time", k->name);
        return;
    }
    k->retention->data = k;
    (void)uv_timer_start(k->retention, on_retention, k->attrs.retention_msec, 0);
}

void ckpt_opener_remove(struct ckpt *k, struct ckpt_opener *o) {
    LIST_REMOVE(openers, &k->openers, o);
    free(o);
    if (LIST_IS_EMPTY(&k->openers))
        ckpt_last_closed(k);
}

void ckpt_conn_closed(struct ckpt_svc *s, struct conn *c) {
    struct ckpt *k, *next;
    struct ckpt_req *q;
    LIST_FOREACH (reqs, q, &s->reqs)
        if (q->conn == c)
            q->conn = NULL;
    LIST_FOREACH_SAFE (ckpts, k, next, &s->ckpts) {
        struct ckpt_opener *o = ckpt_opener_find(k, c);
        if (o && k->notifying)
            o->conn = NULL; /* removed once the updates are out */
        else if (o)
            ckpt_opener_remove(k, o);
    }
}

/* ---- open and close ------------------------------------------------------------------------ */

static void on_opened(store *st, int error, const store_result *r, void *userdata) {
    struct ckpt_req *q = userdata;
    struct ckpt_attrs a = q->attrs;
    if (!q->svc || error < 0) {
        ckpt_req_done(q, error < 0 ? error : -ECANCELED, NULL);
        return;
    }
    if (!q->create && !r->succeeded) {
        ckpt_req_done(q, -ENOENT, NULL);
        return;
    }
    /* Created: the attributes given; else those in the store (the one GET of either branch). */
    if ((!q->create || !r->succeeded) &&
        (r->n_kvs != 1 || ckpt_attrs_parse(r->kvs[0].value, r->kvs[0].value_len, &a) < 0)) {
        log_warning("Checkpoint '%s' has attributes this halod cannot read", q->name);
        ckpt_req_done(q, -EIO, NULL);
        return;
    }
    if (!q->conn) { /* gone meanwhile: its close is due at once */
        struct ckpt *k = ckpt_get(q->svc, q->name, &a);
        if (k && LIST_IS_EMPTY(&k->openers)) {
            retention_stop(k);
            ckpt_last_closed(k);
        }
        ckpt_req_done(q, 0, NULL);
        return;
    }
    struct ckpt *k = ckpt_get(q->svc, q->name, &a);
    struct ckpt_opener *o = k ? calloc(1, sizeof(*o)) : NULL;
    if (!o) {
        ckpt_req_done(q, -ENOMEM, NULL);
        return;
    }
    retention_stop(k);
    o->conn = q->conn;
    o->updates = q->updates;
    o->local_reads = q->local_reads;
    LIST_APPEND(openers, &k->openers, o);
    if (ckpt_replica_start(k) < 0)
        log_warning("Failed to follow checkpoint '%s': no replica here (reads go to the store, no updates)", k->name);
    Halo__Link__Reply rep = HALO__LINK__REPLY__INIT;
    Halo__Link__CkptAttrs ra = HALO__LINK__CKPT_ATTRS__INIT;
    ra.flags = a.flags;
    ra.retention_msec = a.retention_msec;
    ra.max_sections = a.max_sections;
    ra.max_section_size = a.max_section_size;
    ra.csi = k->attrs.csi;
    rep.json = (char *)"";
    rep.txid = (char *)"";
    rep.ckpt_attrs = &ra;
    ckpt_req_done(q, 0, &rep);
}

static int handle_open(struct ckpt_svc *s, struct conn *c, const Halo__Link__CkptOpen *m) {
    char meta[STORE_KEY_MAX], stamp[STORE_KEY_MAX], opener[STORE_KEY_MAX];
    struct ckpt_attrs a = {0};
    struct ckpt_req *q;

    struct ckpt *k = ckpt_find(s, m->name);
    if (k && ckpt_opener_find(k, c))
        return -HALO_EEXIST;
    int r = m->create ? attrs_from_msg(s, m->attrs, &a) : 0;
    if (r >= 0)
        r = ckpt_req_new(s, c, m->seq, HALO__LINK__MSG__BODY_CKPT_OPEN, m->name, 0, &q);
    if (r < 0)
        return r;
    _cleanup_free_ char *json = attrs_format(&a);
    if (!json || ckpt_key_meta(s, meta, q->name) < 0 || ckpt_key_stamp(s, stamp, q->name) < 0 ||
        ckpt_key_opener(s, opener, q->name, s->node) < 0) {
        ckpt_req_done(q, json ? -ENAMETOOLONG : -ENOMEM, NULL);
        return 0;
    }
    q->create = m->create;
    q->updates = m->updates;
    q->local_reads = m->local_reads;
    q->attrs = a;
    store_compare cmp = {.key = meta,
                         .key_len = strlen(meta),
                         .target = STORE_CMP_VERSION,
                         .result = m->create ? STORE_CMP_EQUAL : STORE_CMP_GREATER};
    store_op put_meta = {
        .type = STORE_OP_PUT, .key = meta, .key_len = strlen(meta), .value = json, .value_len = strlen(json)};
    store_op get_meta = {.type = STORE_OP_GET, .key = meta, .key_len = strlen(meta)};
    store_op marks[] = {
        {.type = STORE_OP_PUT, .key = stamp, .key_len = strlen(stamp), .value = s->node, .value_len = strlen(s->node)},
        {.type = STORE_OP_PUT, .key = opener, .key_len = strlen(opener), .value = "1", .value_len = 1},
    };
    /* create: [put meta, marks] if missing, else [get meta, marks]; open: [get meta, marks] if present. */
    store_op yes[3] = {m->create ? put_meta : get_meta, marks[0], marks[1]};
    store_op no[3] = {get_meta, marks[0], marks[1]};
    store_txn t = {.compares = &cmp,
                   .n_compares = 1,
                   .success = yes,
                   .n_success = 3,
                   .failure = no,
                   .n_failure = m->create ? 3 : 0};
    r = store_transaction(s->store, &t, on_opened, q);
    if (r < 0)
        ckpt_req_done(q, r, NULL);
    return 0;
}

static int handle_close(struct ckpt_svc *s, struct conn *c, const Halo__Link__CkptClose *m) {
    struct ckpt *k = ckpt_find(s, m->name);
    struct ckpt_opener *o = k ? ckpt_opener_find(k, c) : NULL;
    if (!o)
        return -EBADF;
    ckpt_opener_remove(k, o);
    return 0;
}

/* ---- a predecessor's marks ----------------------------------------------------------------- *
 *
 * A halod that died (or was killed) with checkpoints open left its marks, ckpt-open/<name>/<node>:
 * nobody here holds them open now, so each is closed again as its last opener would have. */

static bool opening(struct ckpt_svc *s, const char *name) {
    struct ckpt_req *q;
    LIST_FOREACH (reqs, q, &s->reqs)
        if (q->kind == HALO__LINK__MSG__BODY_CKPT_OPEN && streq(q->name, name))
            return true;
    return false;
}

static void on_stale_meta(store *st, int error, const store_result *r, void *userdata) {
    struct ckpt_req *q = userdata;
    struct ckpt_attrs a = {0};
    char opener[STORE_KEY_MAX];
    struct ckpt_svc *s = q->svc;
    /* Opened here meanwhile: its last close does the rest. */
    if (!s || error < 0 || ckpt_find(s, q->name) || opening(s, q->name)) {
        ckpt_req_done(q, 0, NULL);
        return;
    }
    if (r->n_kvs == 1 && ckpt_attrs_parse(r->kvs[0].value, r->kvs[0].value_len, &a) >= 0) {
        struct ckpt *k = ckpt_get(s, q->name, &a);
        if (k) {
            log_info("Checkpoint '%s' was held open here by a previous halod: its retention starts", k->name);
            ckpt_last_closed(k);
        }
    } else if (ckpt_key_opener(s, opener, q->name, s->node) >= 0)
        (void)store_delete(s->store, opener, NULL, NULL); /* a mark without its checkpoint */
    ckpt_req_done(q, 0, NULL);
}

static void on_marks_read(store *st, int error, const store_result *r, void *userdata) {
    struct ckpt_req *q = userdata;
    char dir[STORE_KEY_MAX], meta[STORE_KEY_MAX];
    struct ckpt_svc *s = q->svc;
    if (!s || error < 0 || key_dir(dir, s->prefix, KEY_CKPT_OPEN) < 0) {
        if (s && error < 0)
            log_warning_errno(error, "Failed to read which checkpoints this node held open: %m");
        ckpt_req_done(q, 0, NULL);
        return;
    }
    size_t skip = strlen(dir), nl = strlen(s->node);
    for (size_t i = 0; i < r->n_kvs; i++) {
        const store_kv *kv = &r->kvs[i];
        char name[LINK_NAME_MAX + 1];
        const char *slash = kv->key_len > skip ? memchr(kv->key + skip, '/', kv->key_len - skip) : NULL;
        size_t len = slash ? (size_t)(slash - kv->key - skip) : 0;
        if (!slash || len == 0 || len > LINK_NAME_MAX || kv->key_len - (size_t)(slash + 1 - kv->key) != nl ||
            memcmp(slash + 1, s->node, nl) != 0)
            continue;
        memcpy(name, kv->key + skip, len);
        name[len] = '\0';
        struct ckpt_req *m;
        if (ckpt_req_new(s, NULL, 0, 0, name, 0, &m) < 0)
            continue;
        if (ckpt_key_meta(s, meta, name) < 0 || store_get(s->store, meta, on_stale_meta, m) < 0)
            ckpt_req_done(m, 0, NULL);
    }
    ckpt_req_done(q, 0, NULL);
}

/* Reads this node's marks once, at the start. */
static int marks_read(struct ckpt_svc *s) {
    char dir[STORE_KEY_MAX];
    struct ckpt_req *q;
    int r = key_dir(dir, s->prefix, KEY_CKPT_OPEN);
    if (r < 0 || (r = ckpt_req_new(s, NULL, 0, 0, "marks", 0, &q)) < 0)
        return r;
    store_op op = {.type = STORE_OP_GET_PREFIX, .key = dir, .key_len = strlen(dir), .keys_only = true};
    store_txn t = {.success = &op, .n_success = 1};
    r = store_transaction(s->store, &t, on_marks_read, q);
    if (r < 0)
        ckpt_req_done(q, 0, NULL);
    return r;
}

/* ---- the service --------------------------------------------------------------------------- */

int ckpt_svc_new(const struct ckpt_params *p, struct ckpt_svc **ret) {
    struct ckpt_svc *s = calloc(1, sizeof(*s));
    if (!s)
        return -ENOMEM;
    s->loop = p->loop;
    s->store = p->store;
    s->amf = p->amf;
    s->prefix = strdup(p->prefix);
    s->node = strdup(p->node);
    int r = s->prefix && s->node ? marks_read(s) : -ENOMEM;
    if (r < 0) {
        ckpt_svc_free(s);
        return r;
    }
    *ret = s;
    return 0;
}

struct ckpt_svc *ckpt_svc_free(struct ckpt_svc *s) {
    if (!s)
        return NULL;
    struct ckpt_req *q;
    ckpt_batch_drop(s);
    while ((q = LIST_POP(reqs, &s->reqs))) {
        q->svc = NULL; /* its callback comes from store_free() and finds nobody */
        q->conn = NULL;
    }
    while (s->ckpts.first)
        ckpt_free(s->ckpts.first);
    free(s->prefix);
    free(s->node);
    free(s);
    return NULL;
}

bool ckpt_handle_msg(struct ckpt_svc *s, struct conn *c, const LinkMsg *m) {
    uint64_t seq;
    int r;

    switch (m->body_case) {
    case HALO__LINK__MSG__BODY_CKPT_OPEN:
        seq = m->ckpt_open->seq;
        r = handle_open(s, c, m->ckpt_open);
        break;
    case HALO__LINK__MSG__BODY_CKPT_WRITE:
        seq = m->ckpt_write->seq;
        r = ckpt_write(s, c, m->ckpt_write);
        break;
    case HALO__LINK__MSG__BODY_CKPT_READ:
        seq = m->ckpt_read->seq;
        r = ckpt_read(s, c, m->ckpt_read);
        break;
    case HALO__LINK__MSG__BODY_CKPT_LIST:
        seq = m->ckpt_list->seq;
        r = ckpt_list(s, c, m->ckpt_list);
        break;
    case HALO__LINK__MSG__BODY_CKPT_DELETE:
        seq = m->ckpt_delete->seq;
        r = ckpt_delete(s, c, m->ckpt_delete);
        break;
    case HALO__LINK__MSG__BODY_CKPT_UNLINK:
        seq = m->ckpt_unlink->seq;
        r = ckpt_unlink(s, c, m->ckpt_unlink);
        break;
    case HALO__LINK__MSG__BODY_CKPT_CLOSE:
        seq = m->ckpt_close->seq;
        r = handle_close(s, c, m->ckpt_close);
        if (r == 0)
            (void)server_conn_reply(c, seq, 0, NULL);
        break;
    case HALO__LINK__MSG__BODY_ADMIN:
        if (m->admin->op != HALO__LINK__ADMIN__OP__CKPT)
            return false;
        seq = m->admin->seq;
        r = server_conn_is_admin(c) ? ckpt_admin(s, c, seq, m->admin->target ?: "") : -EPERM;
        break;
    case HALO__LINK__MSG__BODY_CKPT_UPDATE:
        return false; /* halod's to send: dispatch cuts off a client that sends it */
    default:
        return false;
    }
    if (r < 0)
        (void)server_conn_reply(c, seq, r, NULL);
    return true;
}
