/* SPDX-License-Identifier: MIT */
/* libhalo's configuration database calls (the contract is include/halo/cdb.h). */
#include "halo/cdb.h"

#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "halo-internal.h"
#include "macro.h"

struct halo_cdb_sub {
    LIST_FIELDS(struct halo_cdb_sub, subs);
    unsigned id;
    halo_cdb_change_cb cb;
    void *userdata;
    char path[];
};

struct halo_cdb_txn {
    halo *h;
    Halo__Link__CdbOp *ops;
    Halo__Link__CdbOp **pops;
    size_t n, cap, bytes;
};

/* ---- reads --------------------------------------------------------------- */

HALO_EXPORT int halo_cdb_get(halo *h, const char *path, void **ret_value, size_t *ret_len) {
    Halo__Link__CdbGet g = HALO__LINK__CDB_GET__INIT;
    LinkMsg m = HALO__LINK__MSG__INIT;
    LinkMsg *reply = NULL;

    assert_return(h && ret_value && ret_len, -EINVAL);
    if (link_cdb_path_check(path, 0) < 0)
        return -EINVAL;
    g.path = (char *)path;
    m.body_case = HALO__LINK__MSG__BODY_CDB_GET;
    m.cdb_get = &g;
    int r = halo__request(h, &m, &g.seq, &reply);
    if (r < 0)
        return r;
    size_t n = reply->reply->value.len;
    char *v = malloc(n + 1);
    if (!v) {
        link_msg_free(reply);
        return -ENOMEM;
    }
    if (n)
        memcpy(v, reply->reply->value.data, n);
    v[n] = '\0';
    link_msg_free(reply);
    *ret_value = v;
    *ret_len = n;
    return 0;
}

/* Items collected part by part, then packed into one block. */
struct items {
    LinkMsg **parts;
    size_t n_parts, n_items, bytes;
};

static void items_done(struct items *x) {
    for (size_t i = 0; i < x->n_parts; i++)
        link_msg_free(x->parts[i]);
    free(x->parts);
}

HALO_EXPORT int halo_cdb_list(halo *h, const char *path, halo_cdb_item **ret_items, size_t *ret_n) {
    struct items x = {0};
    char *after = NULL;
    int r;

    assert_return(h && ret_items && ret_n, -EINVAL);
    if (link_cdb_path_check(path, 1) < 0)
        return -EINVAL;
    for (;;) {
        Halo__Link__CdbList l = HALO__LINK__CDB_LIST__INIT;
        LinkMsg m = HALO__LINK__MSG__INIT;
        LinkMsg *reply = NULL;
        l.path = (char *)path;
        l.after = after ? after : (char *)"";
        m.body_case = HALO__LINK__MSG__BODY_CDB_LIST;
        m.cdb_list = &l;
        r = halo__request(h, &m, &l.seq, &reply);
        if (r < 0)
            goto finish;
        LinkMsg **parts = realloc(x.parts, (x.n_parts + 1) * sizeof(*parts));
        if (!parts) {
            link_msg_free(reply);
            r = -ENOMEM;
            goto finish;
        }
        x.parts = parts;
        x.parts[x.n_parts++] = reply;
        const Halo__Link__Reply *rep = reply->reply;
        for (size_t i = 0; i < rep->n_items; i++)
            x.bytes += strlen(rep->items[i]->path) + 1 + rep->items[i]->value.len + 1;
        x.n_items += rep->n_items;
        /* More is asked for from the last path; a part without items cannot say where to go on. */
        if (!rep->more || rep->n_items == 0)
            break;
        after = rep->items[rep->n_items - 1]->path;
    }

    halo_cdb_item *items = malloc(x.n_items * sizeof(*items) + x.bytes + 1);
    if (!items) {
        r = -ENOMEM;
        goto finish;
    }
    char *q = (char *)(items + x.n_items);
    size_t k = 0;
    for (size_t p = 0; p < x.n_parts; p++) {
        const Halo__Link__Reply *rep = x.parts[p]->reply;
        for (size_t i = 0; i < rep->n_items; i++, k++) {
            size_t pl = strlen(rep->items[i]->path) + 1, vl = rep->items[i]->value.len;
            items[k].path = memcpy(q, rep->items[i]->path, pl);
            q += pl;
            if (vl)
                memcpy(q, rep->items[i]->value.data, vl);
            q[vl] = '\0';
            items[k].value = q;
            items[k].len = vl;
            q += vl + 1;
        }
    }
    *ret_items = items;
    *ret_n = x.n_items;
    r = 0;
finish:
    items_done(&x);
    return r;
}

/* ---- transactions -------------------------------------------------------- */

HALO_EXPORT int halo_cdb_txn_begin(halo *h, halo_cdb_txn **ret) {
    assert_return(h && ret, -EINVAL);
    halo_cdb_txn *t = calloc(1, sizeof(*t));
    if (!t)
        return -ENOMEM;
    t->h = h;
    *ret = t;
    return 0;
}

HALO_EXPORT halo_cdb_txn *halo_cdb_txn_abort(halo_cdb_txn *t) {
    if (!t)
        return NULL;
    for (size_t i = 0; i < t->n; i++) {
        free(t->ops[i].path);
        free(t->ops[i].value.data);
    }
    free(t->ops);
    free(t->pops);
    free(t);
    return NULL;
}

static int txn_add(halo_cdb_txn *t, const char *path, const void *value, size_t len, bool del) {
    if (link_cdb_path_check(path, del) < 0)
        return -EINVAL;
    size_t bytes = strlen(path) + len + LINK_CDB_OP_FRAMING;
    if (t->n >= LINK_CDB_OPS_MAX || t->bytes + bytes > LINK_CDB_TXN_MAX)
        return -E2BIG;
    if (t->n == t->cap) {
        size_t cap = t->cap ? 2 * t->cap : 8;
        Halo__Link__CdbOp *ops = realloc(t->ops, cap * sizeof(*ops));
        if (!ops)
            return -ENOMEM;
        t->ops = ops;
        t->cap = cap;
    }
    Halo__Link__CdbOp *op = &t->ops[t->n];
    halo__link__cdb_op__init(op);
    op->path = strdup(path);
    op->value.data = len ? malloc(len) : NULL;
    if (!op->path || (len && !op->value.data)) {
        free(op->path);
        free(op->value.data);
        return -ENOMEM;
    }
    if (len)
        memcpy(op->value.data, value, len);
    op->value.len = len;
    op->del = del;
    t->n++;
    t->bytes += bytes;
    return 0;
}

HALO_EXPORT int halo_cdb_txn_set(halo_cdb_txn *t, const char *path, const void *value, size_t len) {
    assert_return(t && (value || len == 0), -EINVAL);
    return txn_add(t, path, value, len, false);
}

HALO_EXPORT int halo_cdb_txn_delete(halo_cdb_txn *t, const char *path) {
    assert_return(t, -EINVAL);
    return txn_add(t, path, NULL, 0, true);
}

HALO_EXPORT int halo_cdb_txn_commit(halo_cdb_txn *t, char ret_txid[HALO_CDB_TXID_MAX]) {
    Halo__Link__CdbCommit c = HALO__LINK__CDB_COMMIT__INIT;
    LinkMsg m = HALO__LINK__MSG__INIT;
    LinkMsg *reply = NULL;
    int r;

    assert_return(t, -EINVAL);
    if (t->n == 0) {
        halo_cdb_txn_abort(t);
        return -EINVAL;
    }
    t->pops = malloc(t->n * sizeof(*t->pops));
    if (!t->pops) {
        halo_cdb_txn_abort(t);
        return -ENOMEM;
    }
    for (size_t i = 0; i < t->n; i++)
        t->pops[i] = &t->ops[i];
    c.ops = t->pops;
    c.n_ops = t->n;
    m.body_case = HALO__LINK__MSG__BODY_CDB_COMMIT;
    m.cdb_commit = &c;
    r = halo__request(t->h, &m, &c.seq, &reply);
    if (r >= 0 && ret_txid)
        snprintf(ret_txid, HALO_CDB_TXID_MAX, "%s", reply->reply->txid);
    link_msg_free(reply);
    halo_cdb_txn_abort(t);
    return r;
}

/* ---- subscriptions ------------------------------------------------------- */

static int send_subscribe(halo *h, unsigned id, const char *path) {
    Halo__Link__CdbSubscribe s = HALO__LINK__CDB_SUBSCRIBE__INIT;
    LinkMsg m = HALO__LINK__MSG__INIT;
    s.id = id;
    s.path = (char *)path;
    m.body_case = HALO__LINK__MSG__BODY_CDB_SUBSCRIBE;
    m.cdb_subscribe = &s;
    return halo__request(h, &m, &s.seq, NULL);
}

HALO_EXPORT int halo_cdb_subscribe(halo *h, const char *path, halo_cdb_change_cb cb, void *userdata,
                                   unsigned *ret_sub) {
    static unsigned next_id; /* under the handle's lock per handle; ids need only differ per handle */
    struct halo_cdb_sub *i;
    size_t n = 0;
    int r;

    assert_return(h && cb && ret_sub, -EINVAL);
    if (link_cdb_path_check(path, 1) < 0)
        return -EINVAL;
    struct halo_cdb_sub *s = calloc(1, sizeof(*s) + strlen(path) + 1);
    if (!s)
        return -ENOMEM;
    strcpy(s->path, path);
    s->cb = cb;
    s->userdata = userdata;

    /* Listed before asking, so that a note arriving right behind the Reply finds it. */
    pthread_mutex_lock(&h->lock);
    LIST_FOREACH (subs, i, &h->cdb_subs)
        n++;
    if (n >= LINK_CDB_SUBS_MAX) {
        pthread_mutex_unlock(&h->lock);
        free(s);
        return -ENOSPC;
    }
    do
        s->id = __atomic_add_fetch(&next_id, 1, __ATOMIC_RELAXED);
    while (s->id == 0);
    LIST_PREPEND(subs, &h->cdb_subs, s);
    pthread_mutex_unlock(&h->lock);

    r = send_subscribe(h, s->id, path);
    if (r < 0) {
        pthread_mutex_lock(&h->lock);
        LIST_REMOVE(subs, &h->cdb_subs, s);
        pthread_mutex_unlock(&h->lock);
        free(s);
        return r;
    }
    *ret_sub = s->id;
    return 0;
}

HALO_EXPORT int halo_cdb_unsubscribe(halo *h, unsigned sub) {
    Halo__Link__CdbUnsubscribe u = HALO__LINK__CDB_UNSUBSCRIBE__INIT;
    LinkMsg m = HALO__LINK__MSG__INIT;
    struct halo_cdb_sub *i, *found = NULL;

    assert_return(h, -EINVAL);
    pthread_mutex_lock(&h->lock);
    LIST_FOREACH (subs, i, &h->cdb_subs)
        if (i->id == sub) {
            found = i;
            LIST_REMOVE(subs, &h->cdb_subs, found);
            break;
        }
    pthread_mutex_unlock(&h->lock);
    if (!found)
        return -ENOENT;
    free(found);
    u.id = sub;
    m.body_case = HALO__LINK__MSG__BODY_CDB_UNSUBSCRIBE;
    m.cdb_unsubscribe = &u;
    int r = halo__request(h, &m, &u.seq, NULL);
    /* Gone from halod too, or with the link: either way no more notes. */
    return r == -ENOENT || r == -HALO_ETRYAGAIN || r == -ENOTCONN ? 0 : r;
}

bool halo__cdb_change(halo *h, const Halo__Link__CdbChange *m) {
    halo_cdb_change_cb cb = NULL;
    void *userdata = NULL;
    struct halo_cdb_sub *s;

    pthread_mutex_lock(&h->lock);
    LIST_FOREACH (subs, s, &h->cdb_subs)
        if (s->id == m->id) {
            cb = s->cb;
            userdata = s->userdata;
            break;
        }
    pthread_mutex_unlock(&h->lock);
    if (!cb)
        return false; /* unsubscribed meanwhile */
    /* The values get a NUL each, as promised: one block holds the array and the copies. */
    size_t bytes = m->n_ops * sizeof(halo_cdb_change);
    for (size_t i = 0; i < m->n_ops; i++)
        bytes += m->ops[i]->value.len + 1;
    halo_cdb_change *ch = m->n_ops ? malloc(bytes) : NULL;
    if (m->n_ops && !ch)
        return false;
    char *q = (char *)(ch + m->n_ops);
    for (size_t i = 0; i < m->n_ops; i++) {
        size_t vl = m->ops[i]->value.len;
        if (vl)
            memcpy(q, m->ops[i]->value.data, vl);
        q[vl] = '\0';
        ch[i] = (halo_cdb_change){
            .op = m->ops[i]->del ? HALO_CDB_DELETE : HALO_CDB_SET, .path = m->ops[i]->path, .value = q, .len = vl};
        q += vl + 1;
    }
    cb(h, m->id, m->txid, ch, m->n_ops, userdata);
    free(ch);
    return true;
}

int halo__cdb_resume(halo *h, const struct timespec *deadline) {
    struct halo_cdb_sub *s;

    LIST_FOREACH (subs, s, &h->cdb_subs) {
        Halo__Link__CdbSubscribe sub = HALO__LINK__CDB_SUBSCRIBE__INIT;
        LinkMsg m = HALO__LINK__MSG__INIT;
        int e = 0;
        sub.id = s->id;
        sub.path = s->path;
        m.body_case = HALO__LINK__MSG__BODY_CDB_SUBSCRIBE;
        m.cdb_subscribe = &sub;
        int r = halo__request_resume(h, &m, &sub.seq, deadline, &e);
        if (r < 0)
            return r;
    }
    return 0;
}

void halo__cdb_free(halo *h) {
    struct halo_cdb_sub *s;

    while ((s = LIST_POP(subs, &h->cdb_subs)))
        free(s);
}
