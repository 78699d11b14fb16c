/* SPDX-License-Identifier: MIT */
/*
 * The checkpoint service's requests on sections (write, read, list, delete), unlink, and
 * haloctl ckpt.  Each goes to the store and is answered from its callback: a write once the store
 * has it (etcd: committed by a majority of its members).  Reads go to the store too, so that
 * whoever reads after a failover sees every write acknowledged before it (docs/checkpoints.md),
 * except those of an opener that asked for local reads (ckpt-replica.c).
 */
#include <errno.h>
#include <jansson.h>
#include <stdlib.h>
#include <string.h>

#include "amf-model.h"
#include "ckpt-internal.h"
#include "halo/ckpt.h"
#include "log.h"
#include "macro.h"
#include "svc.h"

/* How many times a write that timed out in etcd goes again (write_again()). */
#define WRITE_RETRIES 2

/* A batch: as many writes as the compares allow (two each), under etcd's request limit (1.5 MiB). */
#define BATCH_MAX (STORE_TXN_OPS_MAX / 2)
#define BATCH_BYTES (1024 * 1024)

/* What a list reply may hold: a packet, less the Reply's own fields.  One full section always fits. */
#define LIST_REPLY_MAX (LINK_MSG_MAX - 2048)
#define LIST_ITEM_FRAMING 16

static bool key_is(const store_kv *kv, const char *key) {
    return kv->key_len == strlen(key) && memcmp(kv->key, key, kv->key_len) == 0;
}

/* The checkpoint as c has it open: 0, -EBADF (not open on this connection), -EINVAL. */
static int opened(struct ckpt_svc *s, struct conn *c, const char *name, struct ckpt **ret) {
    if (!svc_name_valid(name, SVC_NAME_MAX))
        return -EINVAL;
    struct ckpt *k = ckpt_find(s, name);
    if (!k || !ckpt_opener_find(k, c))
        return -EBADF;
    *ret = k;
    return 0;
}

/* A collocated checkpoint is written by the component its handle registered, while the unit of
 * that component holds the checkpoint's CSI with ACTIVE as its target (told ACTIVE, or already). */
static int may_write(struct ckpt_svc *s, const struct ckpt *k, struct conn *c) {
    if (!(k->attrs.flags & HALO_CKPT_COLLOCATED))
        return 0;
    const struct config_csi *csi;
    struct comp *comp = amf_comp_by_conn(s->amf, c);
    struct si *si = amf_find_csi(s->amf, k->attrs.csi, &csi);
    struct assignment *as = comp && si ? amf_si_find_su(si, comp->su) : NULL;
    if (as && as->target == HALO_HA_ACTIVE)
        return 0;
    log_debug("%s (%s) may not write collocated checkpoint '%s': not ACTIVE for CSI '%s'", server_conn_name(c),
              comp ? comp->name : "no component", k->name, k->attrs.csi);
    return -EPERM;
}

/* The common start of a request on a section (list: section is "after", may be empty): the
 * checkpoint open on c, the id valid, a writer allowed; then the request, with the id copied and
 * the section's key (list: the sections' prefix) in key.  0 or the error to answer. */
static int section_req(struct ckpt_svc *s, struct conn *c, uint64_t seq, int kind, const char *name,
                       const char *section, size_t len, char key[static STORE_KEY_MAX], struct ckpt **ret_k,
                       struct ckpt_req **ret) {
    bool list = kind == HALO__LINK__MSG__BODY_CKPT_LIST;
    bool writes = kind == HALO__LINK__MSG__BODY_CKPT_WRITE || kind == HALO__LINK__MSG__BODY_CKPT_DELETE;
    struct ckpt *k;
    int r = opened(s, c, name, &k);
    if (r < 0)
        return r;
    if (!(list && !*section) && !svc_name_valid(section, SVC_NAME_MAX))
        return -EINVAL;
    if (kind == HALO__LINK__MSG__BODY_CKPT_WRITE && len > k->attrs.max_section_size)
        return -E2BIG;
    if (writes && (r = may_write(s, k, c)) < 0)
        return r;
    r = list ? ckpt_key_sections(s, key, name) : ckpt_key_section(s, key, name, section);
    if (r >= 0)
        r = ckpt_req_new(s, c, seq, kind, name, len, ret);
    if (r < 0)
        return r;
    strcpy((*ret)->section, section);
    *ret_k = k;
    return 0;
}

/* A change acknowledged at revision; floor: a local read after it waits for this node's replica to
 * have that revision (ckpt-replica.c), which it will: the change was under the sections. */
static void reply_revision(struct ckpt_req *q, int64_t revision, bool floor) {
    if (q->svc && floor)
        ckpt_replica_acked(q->svc, q->name, revision);
    Halo__Link__Reply rep = HALO__LINK__REPLY__INIT;
    rep.json = (char *)"";
    rep.txid = (char *)"";
    rep.ckpt_revision = (uint64_t)revision;
    ckpt_req_done(q, 0, &rep);
}

/* ---- write --------------------------------------------------------------------------------- */

static int write_send(struct ckpt_req *q);

/* The store's write timed out, or its connection broke (an etcd member died under it): it may or
 * may not be applied.  A write that replaces (mode WRITE or OVERWRITE) gives the same outcome
 * applied twice, so it goes again from its first step, a few times (the store has moved to
 * another endpoint meanwhile); anything else gets the error.  Returns whether it went again. */
static bool write_again(struct ckpt_req *q, int error) {
    if ((error != -ETIMEDOUT && error != -EIO) || !q->svc || q->mode == HALO_CKPT_CREATE_ONLY ||
        q->retries >= WRITE_RETRIES)
        return false;
    q->retries++;
    q->step = 0;
    log_debug_errno(error, "Write of section '%s' of checkpoint '%s' failed (%m); sending it again", q->section,
                    q->name);
    int e = write_send(q);
    if (e < 0)
        ckpt_req_done(q, e, NULL);
    return true;
}

static void on_written(store *st, int error, const store_result *r, void *userdata) {
    struct ckpt_req *q = userdata;
    if (write_again(q, error))
        return;
    if (!q->svc || error < 0) {
        ckpt_req_done(q, error < 0 ? error : -ECANCELED, NULL);
        return;
    }
    if (q->step == 1) { /* the section was missing: created, or someone was faster */
        if (r->succeeded)
            reply_revision(q, r->revision, true);
        else if (q->mode == HALO_CKPT_CREATE_ONLY)
            ckpt_req_done(q, -HALO_EEXIST, NULL);
        else
            ckpt_req_done(q, -HALO_ETRYAGAIN, NULL);
        return;
    }
    if (r->succeeded) { /* the section exists */
        if (q->mode == HALO_CKPT_CREATE_ONLY)
            ckpt_req_done(q, -HALO_EEXIST, NULL);
        else
            reply_revision(q, r->revision, true);
        return;
    }
    /* The failure branch read the checkpoint's key and its sections' keys. */
    char meta[STORE_KEY_MAX];
    bool exists = false;
    size_t n_sections = 0;
    if (ckpt_key_meta(q->svc, meta, q->name) < 0) {
        ckpt_req_done(q, -ENAMETOOLONG, NULL);
        return;
    }
    for (size_t i = 0; i < r->n_kvs; i++) {
        if (key_is(&r->kvs[i], meta))
            exists = true;
        else
            n_sections++;
    }
    struct ckpt *k = ckpt_find(q->svc, q->name);
    if (!exists || q->mode == HALO_CKPT_OVERWRITE)
        ckpt_req_done(q, -ENOENT, NULL);
    else if (k && n_sections >= k->attrs.max_sections)
        ckpt_req_done(q, -ENOSPC, NULL);
    else {
        q->step = 1;
        int e = write_send(q);
        if (e < 0)
            ckpt_req_done(q, e, NULL);
    }
}

/*
 * Step 0: if the checkpoint and the section exist, put it (create-only: nothing); else read the
 * checkpoint's key and its sections' (to count them).  Step 1: put the section if the
 * checkpoint exists and the section does not.  Most writes replace a section: one round trip.
 */
static int write_send(struct ckpt_req *q) {
    char meta[STORE_KEY_MAX], sections[STORE_KEY_MAX], section[STORE_KEY_MAX];
    if (ckpt_key_meta(q->svc, meta, q->name) < 0 || ckpt_key_sections(q->svc, sections, q->name) < 0 ||
        ckpt_key_section(q->svc, section, q->name, q->section) < 0)
        return -ENAMETOOLONG;
    store_compare cmp[] = {
        {.key = meta, .key_len = strlen(meta), .target = STORE_CMP_VERSION, .result = STORE_CMP_GREATER},
        {.key = section,
         .key_len = strlen(section),
         .target = STORE_CMP_VERSION,
         .result = q->step == 0 ? STORE_CMP_GREATER : STORE_CMP_EQUAL},
    };
    store_op put = {.type = STORE_OP_PUT,
                    .key = section,
                    .key_len = strlen(section),
                    .value = (const char *)q->data,
                    .value_len = q->len};
    store_op reads[] = {
        {.type = STORE_OP_GET, .key = meta, .key_len = strlen(meta), .keys_only = true},
        {.type = STORE_OP_GET_PREFIX, .key = sections, .key_len = strlen(sections), .keys_only = true},
    };
    store_txn t = {.compares = cmp, .n_compares = ELEMENTSOF(cmp), .success = &put, .n_success = 1};
    if (q->step == 0 && q->mode == HALO_CKPT_CREATE_ONLY)
        t.n_success = 0;
    if (q->step == 0) {
        t.failure = reads;
        t.n_failure = ELEMENTSOF(reads);
    }
    return store_transaction(q->svc->store, &t, on_written, q);
}

/* ---- batches --------------------------------------------------------------------------------
 *
 * halod's etcd client sends one call at a time, so the writes of many processes would queue one
 * round trip each.  While a write is in flight the next ones wait here; then they go together:
 * one transaction that puts every section if each one's checkpoint and section exist.  If any
 * compare fails, each write of the batch goes again alone, with its own answers (missing, full,
 * created).  A write whose section is already in the batch waits for the next one. */

struct ckpt_batch {
    struct ckpt_svc *svc; /* NULL: the service is gone */
    size_t n;
    struct ckpt_req *q[BATCH_MAX];
};

static void on_batch(store *st, int error, const store_result *r, void *userdata) {
    struct ckpt_batch *b = userdata;
    if (b->svc && error >= 0)
        log_debug("%zu section writes in one transaction: %s", b->n, r->succeeded ? "written" : "each again alone");
    for (size_t i = 0; i < b->n; i++) {
        struct ckpt_req *q = b->q[i];
        if (write_again(q, error))
            continue;
        if (!q->svc || error < 0)
            ckpt_req_done(q, error < 0 ? error : -ECANCELED, NULL);
        else if (r->succeeded)
            reply_revision(q, r->revision, true);
        else {
            int e = write_send(q);
            if (e < 0)
                ckpt_req_done(q, e, NULL);
        }
    }
    struct ckpt_svc *s = b->svc;
    free(b);
    if (s) {
        s->batch = NULL;
        ckpt_batch_next(s);
    }
}

static bool batch_has(const struct ckpt_batch *b, const struct ckpt_req *q) {
    for (size_t i = 0; i < b->n; i++)
        if (streq(b->q[i]->name, q->name) && streq(b->q[i]->section, q->section))
            return true;
    return false;
}

/* Several queued writes: one transaction.  0, or an error (the writes taken are answered with it). */
static int batch_send(struct ckpt_svc *s, struct ckpt_batch *b) {
    size_t bytes = 0;
    struct ckpt_req *q;
    while ((q = s->queued.first) && b->n < BATCH_MAX && bytes + q->len <= BATCH_BYTES && !batch_has(b, q)) {
        LIST_REMOVE(queued, &s->queued, q);
        b->q[b->n++] = q;
        bytes += q->len;
    }
    _cleanup_free_ char *keys = malloc(2 * b->n * STORE_KEY_MAX);
    store_compare cmp[2 * BATCH_MAX];
    store_op put[BATCH_MAX];
    if (!keys)
        return -ENOMEM;
    for (size_t i = 0; i < b->n; i++) {
        char *meta = keys + 2 * i * STORE_KEY_MAX, *section = meta + STORE_KEY_MAX;
        q = b->q[i];
        if (ckpt_key_meta(s, meta, q->name) < 0 || ckpt_key_section(s, section, q->name, q->section) < 0)
            return -ENAMETOOLONG;
        cmp[2 * i] = (store_compare){
            .key = meta, .key_len = strlen(meta), .target = STORE_CMP_VERSION, .result = STORE_CMP_GREATER};
        cmp[2 * i + 1] = (store_compare){
            .key = section, .key_len = strlen(section), .target = STORE_CMP_VERSION, .result = STORE_CMP_GREATER};
        put[i] = (store_op){.type = STORE_OP_PUT,
                            .key = section,
                            .key_len = strlen(section),
                            .value = (const char *)q->data,
                            .value_len = q->len};
    }
    store_txn t = {.compares = cmp, .n_compares = 2 * b->n, .success = put, .n_success = b->n};
    return store_transaction(s->store, &t, on_batch, b);
}

static void batch_flush(struct ckpt_svc *s) {
    struct ckpt_req *q = s->queued.first;
    if (s->batching || !q)
        return;
    s->batching = true;
    if (!q->queued_next) { /* alone: the usual write, which reads what it needs if it fails */
        LIST_REMOVE(queued, &s->queued, q);
        q->batched = true;
        int e = write_send(q);
        if (e < 0)
            ckpt_req_done(q, e, NULL); /* and the next */
        return;
    }
    struct ckpt_batch *b = calloc(1, sizeof(*b));
    int e = b ? batch_send(s, b) : -ENOMEM;
    if (e >= 0) {
        b->svc = s;
        s->batch = b;
        return;
    }
    for (size_t i = 0; b && i < b->n; i++)
        ckpt_req_done(b->q[i], e, NULL);
    free(b);
    ckpt_batch_next(s);
}

void ckpt_batch_next(struct ckpt_svc *s) {
    s->batching = false;
    batch_flush(s);
}

void ckpt_batch_drop(struct ckpt_svc *s) {
    struct ckpt_req *q;
    if (s->batch)
        s->batch->svc = NULL;
    s->batch = NULL;
    s->batching = true; /* nothing goes any more */
    while ((q = LIST_POP(queued, &s->queued))) {
        LIST_REMOVE(reqs, &s->reqs, q);
        free(q);
    }
}

int ckpt_write(struct ckpt_svc *s, struct conn *c, const Halo__Link__CkptWrite *m) {
    char key[STORE_KEY_MAX];
    struct ckpt_req *q;
    struct ckpt *k;
    int r = section_req(s, c, m->seq, HALO__LINK__MSG__BODY_CKPT_WRITE, m->name, m->section, m->data.len, key, &k, &q);
    if (r < 0)
        return r;
    if (m->data.len)
        memcpy(q->data, m->data.data, m->data.len);
    q->mode = m->mode;
    if (q->mode == HALO_CKPT_CREATE_ONLY) { /* its answer depends on the section missing: alone */
        r = write_send(q);
        if (r < 0)
            ckpt_req_done(q, r, NULL);
        return 0;
    }
    LIST_APPEND(queued, &s->queued, q);
    batch_flush(s);
    return 0;
}

/* ---- read, list, delete, unlink ------------------------------------------------------------ */

/* Whether c opened k asking for its reads from this node's replica (ckpt-replica.c). */
static bool local_reads(struct ckpt *k, struct conn *c) {
    struct ckpt_opener *o = ckpt_opener_find(k, c);
    return o && o->local_reads;
}

static void on_read(store *st, int error, const store_result *r, void *userdata) {
    struct ckpt_req *q = userdata;
    if (!q->svc || error < 0 || r->n_kvs == 0 || r->kvs[0].value_len > LINK_CKPT_SECTION_MAX) {
        ckpt_req_done(q, error < 0 ? error : q->svc && r->n_kvs == 0 ? -ENOENT : -EIO, NULL);
        return;
    }
    Halo__Link__Reply rep = HALO__LINK__REPLY__INIT;
    rep.json = (char *)"";
    rep.txid = (char *)"";
    rep.ckpt_data.data = (uint8_t *)r->kvs[0].value;
    rep.ckpt_data.len = r->kvs[0].value_len;
    ckpt_req_done(q, 0, &rep);
}

int ckpt_read(struct ckpt_svc *s, struct conn *c, const Halo__Link__CkptRead *m) {
    char key[STORE_KEY_MAX];
    struct ckpt_req *q;
    struct ckpt *k;
    int r = section_req(s, c, m->seq, HALO__LINK__MSG__BODY_CKPT_READ, m->name, m->section, 0, key, &k, &q);
    if (r < 0)
        return r;
    if (local_reads(k, c) && ckpt_replica_read(k, q))
        return 0;
    r = store_get(s->store, key, on_read, q);
    if (r < 0)
        ckpt_req_done(q, r, NULL);
    return 0;
}

static void on_listed(store *st, int error, const store_result *r, void *userdata) {
    struct ckpt_req *q = userdata;
    char prefix[STORE_KEY_MAX];
    if (!q->svc || error < 0 || ckpt_key_sections(q->svc, prefix, q->name) < 0) {
        ckpt_req_done(q, error < 0 ? error : -ECANCELED, NULL);
        return;
    }
    size_t skip = strlen(prefix);
    struct ckpt_page page;
    _cleanup_free_ char *ids = malloc(LINK_CKPT_LIST_MAX * (LINK_NAME_MAX + 1));
    if (!ids || ckpt_page_init(&page) < 0) {
        ckpt_req_done(q, -ENOMEM, NULL);
        return;
    }
    for (size_t i = 0; i < r->n_kvs; i++) {
        const store_kv *kv = &r->kvs[i];
        char *id = ids + page.n * (LINK_NAME_MAX + 1);
        if (!ckpt_section_id(kv, skip, id) || (*q->section && strcmp(id, q->section) <= 0))
            continue;
        if (!ckpt_page_add(&page, id, kv->value, kv->value_len))
            break;
    }
    ckpt_page_reply(q, &page);
}

int ckpt_page_init(struct ckpt_page *p) {
    *p = (struct ckpt_page){.items = calloc(LINK_CKPT_LIST_MAX, sizeof(*p->items)),
                            .pitems = calloc(LINK_CKPT_LIST_MAX, sizeof(*p->pitems))};
    if (p->items && p->pitems)
        return 0;
    free(p->items);
    free(p->pitems);
    return -ENOMEM;
}

bool ckpt_page_add(struct ckpt_page *p, char *id, const void *data, size_t len) {
    size_t idl = strlen(id);
    if (p->n == LINK_CKPT_LIST_MAX || (p->n && p->bytes + idl + len + LIST_ITEM_FRAMING > LIST_REPLY_MAX)) {
        p->more = true;
        return false;
    }
    Halo__Link__CkptSection *it = &p->items[p->n];
    halo__link__ckpt_section__init(it);
    it->id = id;
    it->data.data = (uint8_t *)data;
    it->data.len = len;
    p->pitems[p->n++] = it;
    p->bytes += idl + len + LIST_ITEM_FRAMING;
    return true;
}

void ckpt_page_reply(struct ckpt_req *q, struct ckpt_page *p) {
    Halo__Link__Reply rep = HALO__LINK__REPLY__INIT;
    rep.json = (char *)"";
    rep.txid = (char *)"";
    rep.ckpt_sections = p->pitems;
    rep.n_ckpt_sections = p->n;
    rep.more = p->more;
    ckpt_req_done(q, 0, &rep);
    free(p->items);
    free(p->pitems);
}

int ckpt_list(struct ckpt_svc *s, struct conn *c, const Halo__Link__CkptList *m) {
    char prefix[STORE_KEY_MAX];
    struct ckpt_req *q;
    struct ckpt *k;
    int r = section_req(s, c, m->seq, HALO__LINK__MSG__BODY_CKPT_LIST, m->name, m->after, 0, prefix, &k, &q);
    if (r < 0)
        return r;
    if (local_reads(k, c) && ckpt_replica_read(k, q))
        return 0;
    r = store_range(s->store, prefix, on_listed, q);
    if (r < 0)
        ckpt_req_done(q, r, NULL);
    return 0;
}

static void on_deleted(store *st, int error, const store_result *r, void *userdata) {
    struct ckpt_req *q = userdata;
    if (!q->svc || error < 0 || !r->succeeded)
        ckpt_req_done(q, error < 0 ? error : q->svc ? -ENOENT : -ECANCELED, NULL);
    else
        /* An unlink that deleted no section: the replicas see no change at its revision, and a
         * local read has nothing of it to wait for. */
        reply_revision(q, r->revision, q->kind != HALO__LINK__MSG__BODY_CKPT_UNLINK || r->n_kvs > 0);
}

int ckpt_delete(struct ckpt_svc *s, struct conn *c, const Halo__Link__CkptDelete *m) {
    char key[STORE_KEY_MAX];
    struct ckpt_req *q;
    struct ckpt *k;
    int r = section_req(s, c, m->seq, HALO__LINK__MSG__BODY_CKPT_DELETE, m->name, m->section, 0, key, &k, &q);
    if (r < 0)
        return r;
    store_compare cmp = {.key = key, .key_len = strlen(key), .target = STORE_CMP_VERSION, .result = STORE_CMP_GREATER};
    store_op del = {.type = STORE_OP_DELETE, .key = key, .key_len = strlen(key)};
    store_txn t = {.compares = &cmp, .n_compares = 1, .success = &del, .n_success = 1};
    r = store_transaction(s->store, &t, on_deleted, q);
    if (r < 0)
        ckpt_req_done(q, r, NULL);
    return 0;
}

int ckpt_unlink(struct ckpt_svc *s, struct conn *c, const Halo__Link__CkptUnlink *m) {
    char meta[STORE_KEY_MAX], sections[STORE_KEY_MAX], stamp[STORE_KEY_MAX], openers[STORE_KEY_MAX];
    struct ckpt_req *q;
    int r = ckpt_req_new(s, c, m->seq, HALO__LINK__MSG__BODY_CKPT_UNLINK, m->name, 0, &q);
    if (r < 0)
        return r;
    if (ckpt_key_meta(s, meta, q->name) < 0 || ckpt_key_sections(s, sections, q->name) < 0 ||
        ckpt_key_stamp(s, stamp, q->name) < 0 || ckpt_key_openers(s, openers, q->name) < 0) {
        ckpt_req_done(q, -ENAMETOOLONG, NULL);
        return 0;
    }
    store_compare cmp = {
        .key = meta, .key_len = strlen(meta), .target = STORE_CMP_VERSION, .result = STORE_CMP_GREATER};
    store_op ops[] = {
        /* Which sections there were (before they go: a txn's ops run in order). */
        {.type = STORE_OP_GET_PREFIX, .key = sections, .key_len = strlen(sections), .keys_only = true},
        {.type = STORE_OP_DELETE_PREFIX, .key = sections, .key_len = strlen(sections)},
        {.type = STORE_OP_DELETE, .key = meta, .key_len = strlen(meta)},
        {.type = STORE_OP_DELETE_PREFIX, .key = openers, .key_len = strlen(openers)},
        {.type = STORE_OP_DELETE, .key = stamp, .key_len = strlen(stamp)},
    };
    store_txn t = {.compares = &cmp, .n_compares = 1, .success = ops, .n_success = ELEMENTSOF(ops)};
    r = store_transaction(s->store, &t, on_deleted, q);
    if (r < 0)
        ckpt_req_done(q, r, NULL);
    else
        log_info("Checkpoint '%s' unlinked by %s", q->name, server_conn_name(c));
    return 0;
}

/* ---- haloctl ckpt -------------------------------------------------------------------------- */

/* The name and the rest of a key under "<prefix>ckpt/" or "<prefix>ckpt-open/": "<name>[/<rest>]". */
static json_t *entry(json_t *all, const char *key, size_t len, size_t skip, const char **ret_rest, size_t *ret_len) {
    const char *p = key + skip, *slash = memchr(p, '/', len - skip);
    size_t nl = slash ? (size_t)(slash - p) : len - skip;
    char name[LINK_NAME_MAX + 1];
    if (len <= skip || nl == 0 || nl > LINK_NAME_MAX)
        return NULL;
    memcpy(name, p, nl);
    name[nl] = '\0';
    json_t *e = json_object_get(all, name);
    if (!e) {
        e = json_pack("{s:s, s:i, s:i, s:[]}", "name", name, "sections", 0, "bytes", 0, "open_on");
        if (!e || json_object_set_new(all, name, e) < 0)
            return NULL;
    }
    *ret_rest = slash ? slash + 1 : NULL;
    *ret_len = slash ? len - skip - nl - 1 : 0;
    return e;
}

static void add_int(json_t *e, const char *field, json_int_t n) {
    json_object_set_new(e, field, json_integer(json_integer_value(json_object_get(e, field)) + n));
}

/* One checkpoint's sections (id, size, revision) or, for every checkpoint, their counts. */
static void admin_kv(json_t *all, const store_kv *kv, size_t skip_ckpt, size_t skip_open, bool one, json_t *local) {
    const char *rest;
    size_t rl;
    bool open_key = kv->key_len > skip_open && memcmp(kv->key + skip_ckpt - 5, "ckpt-open/", 10) == 0;
    json_t *e = entry(all, kv->key, kv->key_len, open_key ? skip_open : skip_ckpt, &rest, &rl);
    if (!e)
        return;
    if (open_key) {
        if (rest && rl)
            json_array_append_new(json_object_get(e, "open_on"), json_stringn(rest, rl));
        return;
    }
    if (!rest) {
        struct ckpt_attrs a;
        if (ckpt_attrs_parse(kv->value, kv->value_len, &a) == 0)
            json_object_set_new(e, "attributes",
                                json_pack("{s:b, s:I, s:I, s:I, s:s}", "collocated", a.flags & HALO_CKPT_COLLOCATED,
                                          "retention_msec", (json_int_t)a.retention_msec, "max_sections",
                                          (json_int_t)a.max_sections, "max_section_size",
                                          (json_int_t)a.max_section_size, "csi", a.csi));
        json_t *l = json_object_get(local, json_string_value(json_object_get(e, "name")));
        json_object_set_new(e, "open_here", json_integer(json_integer_value(json_object_get(l, "open"))));
        json_t *replica = json_object_get(l, "replica");
        json_object_set(e, "replica_here", replica ? replica : json_null());
        return;
    }
    add_int(e, "sections", 1);
    add_int(e, "bytes", (json_int_t)kv->value_len);
    if (one) {
        json_t *list = json_object_get(e, "section_list");
        if (!list)
            json_object_set_new(e, "section_list", list = json_array());
        json_array_append_new(list, json_pack("{s:s%, s:I, s:I}", "id", rest, rl, "size", (json_int_t)kv->value_len,
                                              "revision", (json_int_t)kv->mod_revision));
    }
}

static void on_admin_read(store *st, int error, const store_result *r, void *userdata) {
    struct ckpt_req *q = userdata;
    char ckpts[STORE_KEY_MAX], open[STORE_KEY_MAX];
    if (!q->svc || error < 0) {
        ckpt_req_done(q, error < 0 ? error : -ECANCELED, NULL);
        return;
    }
    snprintf(ckpts, sizeof(ckpts), "%sckpt/", q->svc->prefix);
    snprintf(open, sizeof(open), "%sckpt-open/", q->svc->prefix);
    json_t *all = json_object(), *local = json_object();
    struct ckpt *k;
    LIST_FOREACH (ckpts, k, &q->svc->ckpts) {
        json_int_t n = 0;
        int64_t revision;
        struct ckpt_opener *o;
        LIST_FOREACH (openers, o, &k->openers)
            n++;
        size_t sections = ckpt_replica_sections(k, &revision);
        json_object_set_new(local, k->name,
                            json_pack("{s:I, s:o}", "open", n, "replica",
                                      k->loaded ? json_pack("{s:I, s:I}", "sections", (json_int_t)sections, "revision",
                                                            (json_int_t)revision)
                                                : json_null()));
    }
    for (size_t i = 0; i < r->n_kvs; i++)
        admin_kv(all, &r->kvs[i], strlen(ckpts), strlen(open), q->step, local);
    json_t *list = json_array(), *v;
    const char *name;
    json_object_foreach(all, name, v) {
        if (json_object_get(v, "attributes")) /* a checkpoint's openers without the checkpoint: dropped */
            json_array_append(list, v);
    }
    bool none = json_array_size(list) == 0;
    json_t *doc = json_pack("{s:s, s:o}", "node", q->svc->node, "checkpoints", list);
    char *text = doc ? json_dumps(doc, JSON_COMPACT) : NULL;
    json_decref(doc);
    json_decref(all);
    json_decref(local);
    if (q->step && none) {
        free(text);
        ckpt_req_done(q, -ENOENT, NULL);
        return;
    }
    if (!text) {
        ckpt_req_done(q, -ENOMEM, NULL);
        return;
    }
    if (q->conn)
        (void)server_conn_reply_parts(q->conn, q->seq, text); /* takes text */
    else
        free(text);
    q->conn = NULL;
    ckpt_req_done(q, 0, NULL);
}

int ckpt_admin(struct ckpt_svc *s, struct conn *c, uint64_t seq, const char *target) {
    char a[STORE_KEY_MAX], b[STORE_KEY_MAX], d[STORE_KEY_MAX];
    struct ckpt_req *q;
    bool one = *target;
    int r = ckpt_req_new(s, c, seq, HALO__LINK__MSG__BODY_ADMIN, one ? target : "all", 0, &q);
    if (r < 0)
        return r;
    q->step = one;
    store_op ops[3];
    size_t n = 0;
    if (one && ckpt_key_meta(s, a, target) >= 0 && ckpt_key_sections(s, b, target) >= 0 &&
        ckpt_key_openers(s, d, target) >= 0) {
        ops[n++] = (store_op){.type = STORE_OP_GET, .key = a, .key_len = strlen(a)};
        ops[n++] = (store_op){.type = STORE_OP_GET_PREFIX, .key = b, .key_len = strlen(b)};
        ops[n++] = (store_op){.type = STORE_OP_GET_PREFIX, .key = d, .key_len = strlen(d), .keys_only = true};
    } else if (!one) {
        /* Every checkpoint's key and sections (values too: the attributes; sizes), and the openers. */
        snprintf(a, sizeof(a), "%sckpt/", s->prefix);
        snprintf(d, sizeof(d), "%sckpt-open/", s->prefix);
        ops[n++] = (store_op){.type = STORE_OP_GET_PREFIX, .key = a, .key_len = strlen(a)};
        ops[n++] = (store_op){.type = STORE_OP_GET_PREFIX, .key = d, .key_len = strlen(d), .keys_only = true};
    }
    store_txn t = {.success = ops, .n_success = n};
    r = n ? store_transaction(s->store, &t, on_admin_read, q) : -ENAMETOOLONG;
    if (r < 0)
        ckpt_req_done(q, r, NULL);
    return 0;
}
