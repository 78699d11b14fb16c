/* SPDX-License-Identifier: MIT */
/*
 * A checkpoint's replica on this node (docs/checkpoints.md, "Replicas"): while any process of this
 * node has a checkpoint open, halod follows its sections in the store (store_follow(): a read,
 * then every change in revision order) and keeps them in memory.  The same follower feeds the
 * openers that asked for updates.
 *
 * An opener that asked for local reads (HALO_CKPT_LOCAL_READS) reads and lists from the replica,
 * with no store round trip and while the store is out of reach.  What it reads is never older
 * than a write or delete this halod acknowledged for the checkpoint (k->floor: a read waits here,
 * parked, until the replica has that revision), and never goes back (the replica only moves
 * forward); a write acknowledged on another node shows once this node's watch brought it.
 */
#include "ckpt-internal.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "halo/ckpt.h"
#include "log.h"
#include "macro.h"
#include "store-follow.h"

/* Reads of one checkpoint waiting for its replica; more get HALO_ETRYAGAIN. */
#define PARKED_MAX 1024

struct ckpt_section {
    int64_t revision;
    size_t len;
    uint8_t data[]; /* len bytes and a NUL */
};

static void replica_clear(struct ckpt *k) {
    hashmap_done(&k->sections, free);
    k->loaded = false;
}

bool ckpt_section_id(const store_kv *kv, size_t skip, char id[static LINK_NAME_MAX + 1]) {
    size_t n = kv->key_len - skip;
    if (kv->key_len <= skip || n > LINK_NAME_MAX || kv->value_len > LINK_CKPT_SECTION_MAX)
        return false;
    memcpy(id, kv->key + skip, n);
    id[n] = '\0';
    return true;
}

static int replica_put(struct ckpt *k, const char *id, const store_kv *kv) {
    struct ckpt_section *s = malloc(sizeof(*s) + kv->value_len + 1);
    if (!s)
        return -ENOMEM;
    s->revision = kv->mod_revision;
    s->len = kv->value_len;
    if (kv->value_len)
        memcpy(s->data, kv->value, kv->value_len);
    s->data[kv->value_len] = '\0';
    free(hashmap_remove(&k->sections, id));
    int r = hashmap_put(&k->sections, id, s);
    if (r < 0)
        free(s);
    return r;
}

/* ---- updates ------------------------------------------------------------------------------- */

static void send_update(struct ckpt *k, const store_event *ev, const char *id) {
    Halo__Link__CkptUpdate u = HALO__LINK__CKPT_UPDATE__INIT;
    LinkMsg m = HALO__LINK__MSG__INIT;
    u.name = k->name;
    u.section = (char *)id;
    u.deleted = ev->type == STORE_EVENT_DELETE;
    u.data.data = (uint8_t *)ev->kv.value;
    u.data.len = u.deleted ? 0 : ev->kv.value_len;
    u.revision = (uint64_t)ev->kv.mod_revision;
    m.body_case = HALO__LINK__MSG__BODY_CKPT_UPDATE;
    m.ckpt_update = &u;
    /* A send that fails closes that connection at once: ckpt_conn_closed() marks its opener. */
    struct ckpt_opener *o;
    LIST_FOREACH (openers, o, &k->openers)
        if (o->updates && o->conn)
            (void)server_conn_send(o->conn, &m);
}

/* ---- local reads --------------------------------------------------------------------------- */

static bool replica_has(const struct ckpt *k, int64_t revision) {
    return k->loaded && store_follow_revision(k->follow) >= revision;
}

static void answer_read(struct ckpt *k, struct ckpt_req *q) {
    const struct ckpt_section *s = hashmap_get(&k->sections, q->section);
    if (!s) {
        ckpt_req_done(q, -ENOENT, NULL);
        return;
    }
    Halo__Link__Reply rep = HALO__LINK__REPLY__INIT;
    rep.json = (char *)"";
    rep.txid = (char *)"";
    rep.ckpt_data.data = (uint8_t *)s->data;
    rep.ckpt_data.len = s->len;
    ckpt_req_done(q, 0, &rep);
}

static int cmp_ids(const void *a, const void *b) {
    return strcmp(*(const char *const *)a, *(const char *const *)b);
}

/* A list's page from the replica: the sections after q->section, in byte order of their ids. */
static void answer_list(struct ckpt *k, struct ckpt_req *q) {
    size_t n_ids = 0;
    struct ckpt_page page;
    _cleanup_free_ char **ids = malloc(MAX(hashmap_size(&k->sections), 1) * sizeof(*ids));
    if (!ids || ckpt_page_init(&page) < 0) {
        ckpt_req_done(q, -ENOMEM, NULL);
        return;
    }
    struct hashmap_iter it = {0};
    const char *id;
    while (hashmap_iterate(&k->sections, &it, &id, NULL))
        if (!*q->section || strcmp(id, q->section) > 0)
            ids[n_ids++] = (char *)id;
    qsort(ids, n_ids, sizeof(*ids), cmp_ids);
    for (size_t i = 0; i < n_ids; i++) {
        const struct ckpt_section *s = hashmap_get(&k->sections, ids[i]);
        if (!ckpt_page_add(&page, ids[i], s->data, s->len))
            break;
    }
    ckpt_page_reply(q, &page);
}

static void answer(struct ckpt *k, struct ckpt_req *q) {
    if (q->kind == HALO__LINK__MSG__BODY_CKPT_LIST)
        answer_list(k, q);
    else
        answer_read(k, q);
}

/* The parked reads the replica now has what they wait for (parked in the order of their floors),
 * then the openers whose connection a send closed meanwhile (k->notifying kept them). */
static void release_parked(struct ckpt *k) {
    struct ckpt_req *q;
    k->notifying = true;
    while ((q = k->parked.first) && replica_has(k, q->wait)) {
        LIST_REMOVE(parked, &k->parked, q);
        k->n_parked--;
        answer(k, q);
    }
    k->notifying = false;
    struct ckpt_opener *o;
    while ((o = ckpt_opener_find(k, NULL))) /* the last one stops the follower: allowed from its callback */
        ckpt_opener_remove(k, o);
}

bool ckpt_replica_read(struct ckpt *k, struct ckpt_req *q) {
    if (!k->follow)
        return false; /* no replica here (its follower could not start): the store answers */
    q->wait = k->floor;
    if (LIST_IS_EMPTY(&k->parked) && replica_has(k, q->wait))
        answer(k, q);
    else if (k->n_parked >= PARKED_MAX)
        ckpt_req_done(q, -HALO_ETRYAGAIN, NULL);
    else {
        LIST_APPEND(parked, &k->parked, q);
        k->n_parked++;
    }
    return true;
}

void ckpt_replica_acked(struct ckpt_svc *s, const char *name, int64_t revision) {
    struct ckpt *k = ckpt_find(s, name);
    if (k)
        k->floor = MAX(k->floor, revision);
}

/* ---- the follower -------------------------------------------------------------------------- */

static int follow_start(struct ckpt *k);

/* Out of memory: the replica is not whole.  It is read again from the store, a new follower. */
static void replica_restart(struct ckpt *k) {
    log_error("Out of memory keeping the replica of checkpoint '%s': reading it again", k->name);
    k->follow = store_follow_free(k->follow);
    replica_clear(k);
    if (follow_start(k) < 0)
        ckpt_replica_stop(k, -ENOMEM);
}

static void on_sections_loaded(struct store_follow *f, const store_result *r, void *userdata) {
    struct ckpt *k = userdata;
    char prefix[STORE_KEY_MAX], id[LINK_NAME_MAX + 1];
    if (ckpt_key_sections(k->svc, prefix, k->name) < 0)
        return;
    replica_clear(k);
    for (size_t i = 0; i < r->n_kvs; i++)
        if (ckpt_section_id(&r->kvs[i], strlen(prefix), id) && replica_put(k, id, &r->kvs[i]) < 0) {
            replica_restart(k);
            return;
        }
    k->loaded = true;
    /* The openers with updates read the sections themselves after opening: only changes are sent. */
    release_parked(k);
}

static void on_sections_changed(struct store_follow *f, const store_event *ev, size_t n, void *userdata) {
    struct ckpt *k = userdata;
    char prefix[STORE_KEY_MAX], id[LINK_NAME_MAX + 1];
    if (ckpt_key_sections(k->svc, prefix, k->name) < 0)
        return;
    bool whole = true;
    k->notifying = true;
    for (size_t i = 0; i < n; i++) {
        if (!ckpt_section_id(&ev[i].kv, strlen(prefix), id))
            continue;
        if (ev[i].type == STORE_EVENT_DELETE)
            free(hashmap_remove(&k->sections, id));
        else if (whole && replica_put(k, id, &ev[i].kv) < 0)
            whole = false;
        send_update(k, &ev[i], id);
    }
    k->notifying = false;
    if (!whole)
        replica_restart(k);
    release_parked(k);
}

static const struct store_follow_ops sections_follow_ops = {
    .loaded = on_sections_loaded,
    .changed = on_sections_changed,
};

static int follow_start(struct ckpt *k) {
    char prefix[STORE_KEY_MAX];
    int r = ckpt_key_sections(k->svc, prefix, k->name);
    if (r < 0)
        return r;
    struct store_follow_params p = {.prefix = prefix};
    return store_follow(k->svc->store, &p, &sections_follow_ops, k, &k->follow);
}

int ckpt_replica_start(struct ckpt *k) {
    return k->follow ? 0 : follow_start(k);
}

void ckpt_replica_stop(struct ckpt *k, int error) {
    struct ckpt_req *q;
    k->follow = store_follow_free(k->follow);
    replica_clear(k);
    while ((q = LIST_POP(parked, &k->parked))) {
        k->n_parked--;
        ckpt_req_done(q, error, NULL);
    }
}

size_t ckpt_replica_sections(const struct ckpt *k, int64_t *ret_revision) {
    *ret_revision = k->loaded ? store_follow_revision(k->follow) : 0;
    return k->loaded ? hashmap_size(&k->sections) : 0;
}
