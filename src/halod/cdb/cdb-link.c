/* SPDX-License-Identifier: MIT */
/* The configuration database on the HA link: get, list, commit and subscribe for local processes and haloctl. */
#include "cdb-link.h"

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
    struct cdb_link *link;
    struct conn *conn;
    uint64_t seq;
    cdb_txid id;
};

struct cdb_link {
    struct cdb *db;
    LIST_HEAD(struct sub) subs; /* newest first */
    LIST_HEAD(struct req) reqs;
    const struct cdb_link_role *role;
    void *role_userdata;
    bool notifying; /* in on_change(): a send may close any subscriber's connection */
};

static void on_change(struct cdb *db, const cdb_txid *id, const struct cdb_op *ops, size_t n, void *userdata);

int cdb_link_new(struct cdb *db, struct cdb_link **ret) {
    struct cdb_link *l = calloc(1, sizeof(*l));
    if (!l)
        return -ENOMEM;
    l->db = db;
    int r = cdb_observe(db, on_change, NULL, l);
    if (r < 0) {
        free(l);
        return r;
    }
    *ret = l;
    return 0;
}

struct cdb_link *cdb_link_free(struct cdb_link *l) {
    if (!l)
        return NULL;
    cdb_unobserve(l->db, on_change, l);
    struct sub *s;
    while ((s = LIST_POP(subs, &l->subs)))
        free(s);
    /* Requests still in flight end with their callbacks (cdb_close runs them): detach them. */
    struct req *q;
    while ((q = LIST_POP(reqs, &l->reqs))) {
        q->conn = NULL;
        q->link = NULL;
    }
    free(l);
    return NULL;
}

void cdb_link_set_role(struct cdb_link *l, const struct cdb_link_role *role, void *userdata) {
    l->role = role;
    l->role_userdata = userdata;
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

/* ---- change notes ---------------------------------------------------------- */

static bool op_touches(const struct cdb_op *op, const char *sub) {
    return cdb_path_under(op->path, sub) || (op->del && cdb_path_under(sub, op->path));
}

static void on_change(struct cdb *db, const cdb_txid *id, const struct cdb_op *ops, size_t n, void *userdata) {
    struct cdb_link *l = userdata;
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
        if (n && k == 0)
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
    if (q->link)
        LIST_REMOVE(reqs, &q->link->reqs, q);
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
    if (q->link && q->link->role && q->link->role->replicated)
        q->link->role->replicated(q->link->role_userdata, id, on_replicated, q);
    else
        req_answer(q, 0);
}

static int handle_commit(struct cdb_link *l, struct conn *c, const Halo__Link__CdbCommit *m) {
    size_t bytes = 0;
    int r;

    if (l->role && l->role->may_write) {
        r = l->role->may_write(l->role_userdata);
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
    r = cdb_commit(l->db, NULL, ops, m->n_ops, on_committed, q);
    if (r < 0) {
        free(q);
        return r;
    }
    q->link = l;
    LIST_PREPEND(reqs, &l->reqs, q);
    return 0;
}

/* What one list reply may hold: a packet, less the Reply's own fields.  Any one item fits (a
 * path of LINK_CDB_PATH_MAX and a value of LINK_CDB_TXN_MAX, the most a commit can set). */
#define LIST_REPLY_MAX (LINK_MSG_MAX - 256)
#define LIST_ITEM_FRAMING 16 /* tags and lengths of an item, its path and its value */

struct list_ctx {
    Halo__Link__CdbOp *ops;
    Halo__Link__CdbOp **pops;
    uint8_t *store; /* copies of paths and values: SQLite's are valid only per row */
    size_t n, used, encoded;
};

static int list_one(const char *path, const uint8_t *value, size_t len, void *userdata) {
    struct list_ctx *x = userdata;
    size_t pl = strlen(path) + 1;
    if (x->n == LINK_CDB_OPS_MAX || x->encoded + pl + len + LIST_ITEM_FRAMING > LIST_REPLY_MAX)
        return x->n ? 1 : -E2BIG;
    uint8_t *p = x->store + x->used;
    memcpy(p, path, pl);
    if (len)
        memcpy(p + pl, value, len);
    x->used += pl + len;
    x->encoded += pl + len + LIST_ITEM_FRAMING;
    halo__link__cdb_op__init(&x->ops[x->n]);
    x->ops[x->n].path = (char *)p;
    x->ops[x->n].value.data = p + pl;
    x->ops[x->n].value.len = len;
    x->pops[x->n] = &x->ops[x->n];
    x->n++;
    return 0;
}

static int handle_list(struct cdb_link *l, struct conn *c, const Halo__Link__CdbList *m) {
    struct list_ctx x = {0};
    int r = -ENOMEM;

    x.ops = calloc(LINK_CDB_OPS_MAX, sizeof(*x.ops));
    x.pops = calloc(LINK_CDB_OPS_MAX, sizeof(*x.pops));
    x.store = malloc(LIST_REPLY_MAX);
    if (x.ops && x.pops && x.store)
        r = cdb_list(l->db, m->path, *m->after ? m->after : NULL, list_one, &x);
    if (r >= 0) {
        Halo__Link__Reply rep = HALO__LINK__REPLY__INIT;
        rep.seq = m->seq;
        rep.json = (char *)"";
        rep.txid = (char *)"";
        rep.items = x.pops;
        rep.n_items = x.n;
        rep.more = r > 0;
        (void)server_conn_send_reply(c, &rep);
    }
    free(x.ops);
    free(x.pops);
    free(x.store);
    return r < 0 ? r : 1;
}

static int handle_get(struct cdb_link *l, struct conn *c, const Halo__Link__CdbGet *m) {
    _cleanup_free_ uint8_t *v = NULL;
    size_t n = 0;
    int r = cdb_get(l->db, m->path, &v, &n);
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
