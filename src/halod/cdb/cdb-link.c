/* SPDX-License-Identifier: MIT */
/* The configuration database on the HA link: get, list, commit and subscribe for local processes and haloctl. */
#include "cdb-link.h"

#include <assert.h>
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "halo/halo.h"
#include "list.h"
#include "log.h"
#include "macro.h"

struct sub {
    LIST_FIELDS(struct sub, subs);
    struct conn *conn; /* NULL: closed while notes were going out, freed after */
    uint32_t id;
    char path[];
};

/* A commit waiting to be durable (and replicated); conn NULL once it closed. */
struct req {
    LIST_FIELDS(struct req, reqs);
    const struct region *region; /* where it commits, whose role acknowledges it; NULL once the link is gone */
    struct conn *conn;
    uint64_t seq;
    cdb_txid id;
};

/* A database the link serves, and the paths it holds. */
struct region {
    char *subtree; /* NULL: the main database, every path outside the subtrees */
    struct cdb *db;
    const struct cdb_link_role *role;
    void *role_userdata;
    struct cdb_link *link;
};

struct cdb_link {
    struct region regions[1 + CDB_LINK_SUBTREES_MAX]; /* [0]: the main database */
    size_t n_regions;
    LIST_HEAD(struct sub) subs; /* newest first */
    LIST_HEAD(struct req) reqs;
    bool notifying; /* in on_change(): a send may close any subscriber's connection */
};

static void on_change(struct cdb *db, const cdb_txid *id, const struct cdb_op *ops, size_t n, void *userdata);

int cdb_link_new(struct cdb *db, struct cdb_link **ret) {
    struct cdb_link *l = calloc(1, sizeof(*l));
    if (!l)
        return -ENOMEM;
    l->regions[0] = (struct region){.db = db, .link = l};
    int r = cdb_observe(db, on_change, NULL, &l->regions[0]);
    if (r < 0) {
        free(l);
        return r;
    }
    l->n_regions = 1;
    *ret = l;
    return 0;
}

struct cdb_link *cdb_link_free(struct cdb_link *l) {
    if (!l)
        return NULL;
    for (size_t i = 0; i < l->n_regions; i++) {
        cdb_unobserve(l->regions[i].db, on_change, &l->regions[i]);
        free(l->regions[i].subtree);
    }
    struct sub *s;
    while ((s = LIST_POP(subs, &l->subs)))
        free(s);
    /* Requests still in flight end with their callbacks (cdb_close runs them): detach them. */
    struct req *q;
    while ((q = LIST_POP(reqs, &l->reqs))) {
        q->conn = NULL;
        q->region = NULL;
    }
    free(l);
    return NULL;
}

int cdb_link_add_subtree(struct cdb_link *l, const char *subtree, struct cdb *db) {
    if (link_cdb_path_check(subtree, 0) < 0)
        return -EINVAL;
    for (size_t i = 0; i < l->n_regions; i++) {
        const struct region *g = &l->regions[i];
        if (g->db == db || (g->subtree && (cdb_path_under(subtree, g->subtree) || cdb_path_under(g->subtree, subtree))))
            return -EEXIST;
    }
    if (l->n_regions == ELEMENTSOF(l->regions))
        return -ENOSPC;
    struct region *g = &l->regions[l->n_regions];
    *g = (struct region){.subtree = strdup(subtree), .db = db, .link = l};
    if (!g->subtree)
        return -ENOMEM;
    int r = cdb_observe(db, on_change, NULL, g);
    if (r < 0) {
        free(g->subtree);
        g->subtree = NULL;
        return r;
    }
    l->n_regions++;
    return 0;
}

void cdb_link_set_role(struct cdb_link *l, struct cdb *db, const struct cdb_link_role *role, void *userdata) {
    for (size_t i = 0; i < l->n_regions; i++) {
        if (l->regions[i].db == db) {
            l->regions[i].role = role;
            l->regions[i].role_userdata = userdata;
            return;
        }
    }
    assert(!"cdb_link_set_role: a database the link does not serve");
}

void cdb_link_conn_closed(struct cdb_link *l, struct conn *c) {
    struct sub *s, *next;
    struct req *q;
    LIST_FOREACH_SAFE (subs, s, next, &l->subs) {
        if (s->conn != c)
            continue;
        if (l->notifying) {
            s->conn = NULL;
            continue;
        }
        LIST_REMOVE(subs, &l->subs, s);
        free(s);
    }
    LIST_FOREACH (reqs, q, &l->reqs) {
        if (q->conn == c)
            q->conn = NULL;
    }
}

/* ---- routing ------------------------------------------------------------------ */

/* The region that holds path: the subtree it lies in, else the main database. */
static const struct region *region_of(const struct cdb_link *l, const char *path) {
    for (size_t i = 1; i < l->n_regions; i++)
        if (cdb_path_under(path, l->regions[i].subtree))
            return &l->regions[i];
    return &l->regions[0];
}

/* Whether a subtree lies under path (or is path): deleting path would delete in two regions. */
static bool holds_subtree(const struct cdb_link *l, const char *path) {
    for (size_t i = 1; i < l->n_regions; i++)
        if (cdb_path_under(l->regions[i].subtree, path))
            return true;
    return false;
}

/* The one region every op of a commit falls in (no ops: the main database), or NULL when they fall
 * in several or an op deletes an ancestor of a subtree. */
static const struct region *commit_region(const struct cdb_link *l, Halo__Link__CdbOp *const *ops, size_t n) {
    const struct region *g = NULL;
    for (size_t i = 0; i < n; i++) {
        const struct region *h = region_of(l, ops[i]->path);
        if ((!h->subtree && ops[i]->del && holds_subtree(l, ops[i]->path)) || (g && h != g))
            return NULL;
        g = h;
    }
    return g ? g : &l->regions[0];
}

/* Whether a subscription to path may see anything of region g: whether a full copy of g's
 * database concerns it. */
static bool sub_overlaps(const struct region *g, const char *path) {
    if (g->subtree)
        return cdb_path_under(path, g->subtree) || cdb_path_under(g->subtree, path);
    return !region_of(g->link, path)->subtree;
}

/* ---- change notes ---------------------------------------------------------- */

static bool op_touches(const struct cdb_op *op, const char *sub) {
    return cdb_path_under(op->path, sub) || (op->del && cdb_path_under(sub, op->path));
}

static void on_change(struct cdb *db, const cdb_txid *id, const struct cdb_op *ops, size_t n, void *userdata) {
    const struct region *g = userdata;
    struct cdb_link *l = g->link;
    char txid[CDB_TXID_STRING_MAX];
    Halo__Link__CdbOp *mops = NULL, **pops = NULL;
    struct sub *s;

    if (LIST_IS_EMPTY(&l->subs))
        return;
    cdb_txid_format(id, txid);
    if (n) {
        mops = calloc(n, sizeof(*mops));
        pops = calloc(n, sizeof(*pops));
        if (!mops || !pops) {
            log_error("Out of memory: CDB change notes of transaction %s not sent", txid);
            goto finish;
        }
    }
    l->notifying = true;
    LIST_FOREACH (subs, s, &l->subs) {
        if (!s->conn)
            continue;
        Halo__Link__CdbChange ch = HALO__LINK__CDB_CHANGE__INIT;
        LinkMsg m = HALO__LINK__MSG__INIT;
        size_t k = 0;
        for (size_t i = 0; i < n; i++) {
            if (!op_touches(&ops[i], s->path))
                continue;
            halo__link__cdb_op__init(&mops[k]);
            mops[k].path = (char *)ops[i].path;
            mops[k].value.data = (uint8_t *)ops[i].value;
            mops[k].value.len = ops[i].len;
            mops[k].del = ops[i].del;
            pops[k] = &mops[k];
            k++;
        }
        /* A region's ops all lie in it (a commit spans none): only its full copy needs the test. */
        if (n ? k == 0 : !sub_overlaps(g, s->path))
            continue;
        ch.id = s->id;
        ch.txid = txid;
        ch.ops = pops;
        ch.n_ops = k;
        ch.reset = n == 0;
        m.body_case = HALO__LINK__MSG__BODY_CDB_CHANGE;
        m.cdb_change = &ch;
        /* A failure closed the connection (and logged why). */
        (void)server_conn_send(s->conn, &m);
    }
    l->notifying = false;
    struct sub *next;
    LIST_FOREACH_SAFE (subs, s, next, &l->subs)
        if (!s->conn) {
            LIST_REMOVE(subs, &l->subs, s);
            free(s);
        }
finish:
    free(mops);
    free(pops);
}

/* ---- requests ---------------------------------------------------------------- */

static void req_free(struct req *q) {
    if (q->region)
        LIST_REMOVE(reqs, &q->region->link->reqs, q);
    free(q);
}

static void req_answer(struct req *q, int error) {
    if (q->conn) {
        char txid[CDB_TXID_STRING_MAX];
        Halo__Link__Reply rep = HALO__LINK__REPLY__INIT;
        rep.seq = q->seq;
        rep.error = error;
        rep.json = (char *)"";
        rep.txid = error < 0 ? (char *)"" : cdb_txid_format(&q->id, txid);
        (void)server_conn_send_reply(q->conn, &rep);
    }
    req_free(q);
}

static void on_replicated(void *arg, int error) {
    req_answer(arg, error);
}

static void on_committed(struct cdb *db, int error, const cdb_txid *id, void *userdata) {
    struct req *q = userdata;
    if (error < 0) {
        log_error_errno(error, "Failed to commit a CDB transaction: %m");
        req_answer(q, error);
        return;
    }
    q->id = *id;
    if (q->region && q->region->role && q->region->role->replicated)
        q->region->role->replicated(q->region->role_userdata, id, on_replicated, q);
    else
        req_answer(q, 0);
}

static int handle_commit(struct cdb_link *l, struct conn *c, const Halo__Link__CdbCommit *m) {
    size_t bytes = 0;
    int r;

    const struct region *g = commit_region(l, m->ops, m->n_ops);
    if (!g)
        return -EXDEV;
    if (g->role && g->role->may_write) {
        r = g->role->may_write(g->role_userdata);
        if (r < 0)
            return r;
    }
    for (size_t i = 0; i < m->n_ops; i++)
        bytes += strlen(m->ops[i]->path) + m->ops[i]->value.len + LINK_CDB_OP_FRAMING;
    if (bytes > LINK_CDB_TXN_MAX)
        return -E2BIG;
    _cleanup_free_ struct cdb_op *ops = calloc(m->n_ops, sizeof(*ops));
    struct req *q = calloc(1, sizeof(*q));
    if (!ops || !q) {
        free(q);
        return -ENOMEM;
    }
    for (size_t i = 0; i < m->n_ops; i++)
        ops[i] = (struct cdb_op){.path = m->ops[i]->path,
                                 .value = m->ops[i]->value.data,
                                 .len = m->ops[i]->value.len,
                                 .del = m->ops[i]->del};
    q->conn = c;
    q->seq = m->seq;
    r = cdb_commit(g->db, NULL, ops, m->n_ops, on_committed, q);
    if (r < 0) {
        free(q);
        return r;
    }
    q->region = g;
    LIST_PREPEND(reqs, &l->reqs, q);
    return 0;
}

/* What one list reply may hold: a packet, less the Reply's own fields.  Any one item fits (a
 * path of LINK_CDB_PATH_MAX and a value of LINK_CDB_TXN_MAX, the most a commit can set). */
#define LIST_REPLY_MAX (LINK_MSG_MAX - 256)

static size_t item_cost(const Halo__Link__CdbOp *op) {
    return strlen(op->path) + 1 + op->value.len + CDB_LINK_ITEM_FRAMING;
}

size_t cdb_link_merge_pages(const struct cdb_link_page *pages, size_t n_pages, size_t max_items, size_t max_bytes,
                            Halo__Link__CdbOp **out, bool *ret_more) {
    size_t at[1 + CDB_LINK_SUBTREES_MAX] = {0};
    const char *limit = NULL;
    bool more = false;

    assert(n_pages <= ELEMENTSOF(at));
    for (size_t p = 0; p < n_pages; p++) {
        if (!pages[p].more)
            continue;
        assert(pages[p].n > 0);
        const char *last = pages[p].items[pages[p].n - 1]->path;
        if (!limit || strcmp(last, limit) < 0)
            limit = last;
        more = true;
    }
    size_t k = 0, bytes = 0;
    for (;;) {
        Halo__Link__CdbOp *next = NULL;
        size_t from = 0;
        for (size_t p = 0; p < n_pages; p++) {
            if (at[p] < pages[p].n && (!next || strcmp(pages[p].items[at[p]]->path, next->path) < 0)) {
                next = pages[p].items[at[p]];
                from = p;
            }
        }
        if (!next || (limit && strcmp(next->path, limit) > 0))
            break;
        size_t cost = item_cost(next);
        if (k == max_items || (k > 0 && bytes + cost > max_bytes)) {
            more = true;
            break;
        }
        out[k++] = next;
        bytes += cost;
        at[from]++;
    }
    *ret_more = more;
    return k;
}

/* One database's page of a list, collected by cdb_list(). */
struct list_ctx {
    Halo__Link__CdbOp *ops;
    Halo__Link__CdbOp **pops;
    uint8_t *store; /* copies of paths and values: SQLite's are valid only per row */
    size_t n, used, encoded;
    const struct cdb_link *hide; /* the main database's page beside subtrees': skip what they hold */
};

static int list_one(const char *path, const uint8_t *value, size_t len, void *userdata) {
    struct list_ctx *x = userdata;
    size_t pl = strlen(path) + 1;
    if (x->hide && region_of(x->hide, path)->subtree)
        return 0;
    if (x->n == LINK_CDB_OPS_MAX || x->encoded + pl + len + CDB_LINK_ITEM_FRAMING > LIST_REPLY_MAX)
        return x->n ? 1 : -E2BIG;
    uint8_t *p = x->store + x->used;
    memcpy(p, path, pl);
    if (len)
        memcpy(p + pl, value, len);
    x->used += pl + len;
    x->encoded += pl + len + CDB_LINK_ITEM_FRAMING;
    halo__link__cdb_op__init(&x->ops[x->n]);
    x->ops[x->n].path = (char *)p;
    x->ops[x->n].value.data = p + pl;
    x->ops[x->n].value.len = len;
    x->pops[x->n] = &x->ops[x->n];
    x->n++;
    return 0;
}

/* The regions a list of path reads: the one that holds path, or, when path is an ancestor of
 * subtrees, the main database and each of them. */
static size_t list_sources(const struct cdb_link *l, const char *path, const struct region **ret) {
    size_t n = 0;
    ret[n++] = region_of(l, path);
    if (ret[0]->subtree)
        return n;
    for (size_t i = 1; i < l->n_regions; i++)
        if (cdb_path_under(l->regions[i].subtree, path))
            ret[n++] = &l->regions[i];
    return n;
}

/* Lists source g's page into x: path in its own region, else g's whole subtree (never a path
 * outside it).  Returns cdb_list()'s result. */
static int list_source(const struct region *g, const char *path, const char *after, size_t n_sources,
                       struct list_ctx *x) {
    x->ops = calloc(LINK_CDB_OPS_MAX, sizeof(*x->ops));
    x->pops = calloc(LINK_CDB_OPS_MAX, sizeof(*x->pops));
    x->store = malloc(LIST_REPLY_MAX);
    if (!x->ops || !x->pops || !x->store)
        return -ENOMEM;
    if (g->subtree && !cdb_path_under(path, g->subtree)) {
        path = g->subtree;
        /* The subtree's own path sorts before all it holds, and cdb_list() gives it only without after. */
        if (after && strcmp(after, path) < 0)
            after = NULL;
    }
    x->hide = !g->subtree && n_sources > 1 ? g->link : NULL;
    return cdb_list(g->db, path, after, list_one, x);
}

static int handle_list(struct cdb_link *l, struct conn *c, const Halo__Link__CdbList *m) {
    const struct region *sources[1 + CDB_LINK_SUBTREES_MAX];
    struct list_ctx x[1 + CDB_LINK_SUBTREES_MAX] = {0};
    struct cdb_link_page pages[1 + CDB_LINK_SUBTREES_MAX];
    Halo__Link__CdbOp **items = NULL;
    size_t n = list_sources(l, m->path, sources);
    int r = 0;

    for (size_t i = 0; i < n && r >= 0; i++) {
        r = list_source(sources[i], m->path, *m->after ? m->after : NULL, n, &x[i]);
        pages[i] = (struct cdb_link_page){.items = x[i].pops, .n = x[i].n, .more = r > 0};
    }
    if (r >= 0 && !(items = calloc(LINK_CDB_OPS_MAX, sizeof(*items))))
        r = -ENOMEM;
    if (r >= 0) {
        Halo__Link__Reply rep = HALO__LINK__REPLY__INIT;
        bool more;
        rep.n_items = cdb_link_merge_pages(pages, n, LINK_CDB_OPS_MAX, LIST_REPLY_MAX, items, &more);
        rep.seq = m->seq;
        rep.json = (char *)"";
        rep.txid = (char *)"";
        rep.items = items;
        rep.more = more;
        (void)server_conn_send_reply(c, &rep);
    }
    free(items);
    for (size_t i = 0; i < n; i++) {
        free(x[i].ops);
        free(x[i].pops);
        free(x[i].store);
    }
    return r < 0 ? r : 1;
}

static int handle_get(struct cdb_link *l, struct conn *c, const Halo__Link__CdbGet *m) {
    _cleanup_free_ uint8_t *v = NULL;
    size_t n = 0;
    int r = cdb_get(region_of(l, m->path)->db, m->path, &v, &n);
    if (r < 0)
        return r;
    Halo__Link__Reply rep = HALO__LINK__REPLY__INIT;
    rep.seq = m->seq;
    rep.json = (char *)"";
    rep.txid = (char *)"";
    rep.value.data = v;
    rep.value.len = n;
    (void)server_conn_send_reply(c, &rep);
    return 1;
}

static int handle_subscribe(struct cdb_link *l, struct conn *c, const Halo__Link__CdbSubscribe *m) {
    struct sub *s;
    size_t n = 0;
    LIST_FOREACH (subs, s, &l->subs) {
        if (s->conn == c) {
            if (s->id == m->id)
                return -HALO_EEXIST;
            n++;
        }
    }
    if (n >= LINK_CDB_SUBS_MAX)
        return -ENOSPC;
    s = malloc(sizeof(*s) + strlen(m->path) + 1);
    if (!s)
        return -ENOMEM;
    s->conn = c;
    s->id = m->id;
    strcpy(s->path, m->path);
    LIST_PREPEND(subs, &l->subs, s);
    return 0;
}

static int handle_unsubscribe(struct cdb_link *l, struct conn *c, const Halo__Link__CdbUnsubscribe *m) {
    struct sub *s;
    LIST_FOREACH (subs, s, &l->subs) {
        if (s->conn == c && s->id == m->id) {
            LIST_REMOVE(subs, &l->subs, s);
            free(s);
            return 0;
        }
    }
    return -ENOENT;
}

bool cdb_link_handle_msg(struct cdb_link *l, struct conn *c, const LinkMsg *m) {
    uint64_t seq;
    int r;

    switch (m->body_case) {
    case HALO__LINK__MSG__BODY_CDB_GET:
        seq = m->cdb_get->seq;
        r = handle_get(l, c, m->cdb_get);
        break;
    case HALO__LINK__MSG__BODY_CDB_LIST:
        seq = m->cdb_list->seq;
        r = handle_list(l, c, m->cdb_list);
        break;
    case HALO__LINK__MSG__BODY_CDB_COMMIT:
        seq = m->cdb_commit->seq;
        r = handle_commit(l, c, m->cdb_commit);
        if (r == 0)
            return true; /* answered once durable */
        break;
    case HALO__LINK__MSG__BODY_CDB_SUBSCRIBE:
        seq = m->cdb_subscribe->seq;
        r = handle_subscribe(l, c, m->cdb_subscribe);
        break;
    case HALO__LINK__MSG__BODY_CDB_UNSUBSCRIBE:
        seq = m->cdb_unsubscribe->seq;
        r = handle_unsubscribe(l, c, m->cdb_unsubscribe);
        break;
    default:
        return false;
    }
    if (r <= 0)
        (void)server_conn_reply(c, seq, r, NULL);
    return true;
}
