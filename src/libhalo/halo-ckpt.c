/* SPDX-License-Identifier: MIT */
/* libhalo's checkpoint calls (the contract is include/halo/ckpt.h; halod's side: src/halod/svc/ckpt*.c). */
#include "halo/ckpt.h"

#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "halo-internal.h"
#include "macro.h"

struct halo_ckpt {
    LIST_FIELDS(struct halo_ckpt, ckpts);
    halo *h;
    unsigned open_flags;
    halo_ckpt_attrs attrs;
    halo_ckpt_update_cb cb;
    void *userdata;
    char csi[HALO_CKPT_NAME_MAX + 1];
    char name[HALO_CKPT_NAME_MAX + 1];
};

/* The names halod accepts (src/halod/svc/svc.c): checked here first, so that a bad one gets
 * -EINVAL at once and never reaches the link. */
static bool name_valid(const char *s) {
    size_t n = s ? strnlen(s, HALO_CKPT_NAME_MAX + 1) : 0;
    if (n == 0 || n > HALO_CKPT_NAME_MAX)
        return false;
    for (size_t i = 0; i < n; i++) {
        char c = s[i];
        if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || strchr("-_.:@", c)))
            return false;
    }
    return true;
}

static int send_open(halo *h, const halo_ckpt *c, bool create, LinkMsg **ret_reply) {
    Halo__Link__CkptOpen o = HALO__LINK__CKPT_OPEN__INIT;
    Halo__Link__CkptAttrs a = HALO__LINK__CKPT_ATTRS__INIT;
    LinkMsg m = HALO__LINK__MSG__INIT;
    o.name = (char *)c->name;
    o.create = create;
    o.updates = c->open_flags & HALO_CKPT_UPDATES;
    o.local_reads = c->open_flags & HALO_CKPT_LOCAL_READS;
    if (create) {
        a.flags = c->attrs.flags;
        a.retention_msec = c->attrs.retention_msec;
        a.max_sections = c->attrs.max_sections;
        a.max_section_size = c->attrs.max_section_size;
        a.csi = (char *)c->csi;
        o.attrs = &a;
    }
    m.body_case = HALO__LINK__MSG__BODY_CKPT_OPEN;
    m.ckpt_open = &o;
    return halo__request(h, &m, &o.seq, ret_reply);
}

HALO_EXPORT int halo_ckpt_open(halo *h, const char *name, unsigned open_flags, const halo_ckpt_attrs *attrs,
                               halo_ckpt_update_cb cb, void *userdata, halo_ckpt **ret) {
    LinkMsg *reply = NULL;

    assert_return(h && ret, -EINVAL);
    bool create = open_flags & HALO_CKPT_CREATE;
    if (!name_valid(name) || (open_flags & ~(unsigned)(HALO_CKPT_CREATE | HALO_CKPT_UPDATES | HALO_CKPT_LOCAL_READS)) ||
        (create && !attrs) || ((open_flags & HALO_CKPT_UPDATES) && !cb))
        return -EINVAL;
    if (create &&
        ((attrs->flags & ~(unsigned)HALO_CKPT_COLLOCATED) || attrs->max_section_size > HALO_CKPT_SECTION_MAX ||
         !!(attrs->flags & HALO_CKPT_COLLOCATED) != !!(attrs->csi && *attrs->csi) ||
         (attrs->csi && strlen(attrs->csi) > HALO_CKPT_NAME_MAX)))
        return -EINVAL;
    halo_ckpt *c = calloc(1, sizeof(*c));
    if (!c)
        return -ENOMEM;
    c->h = h;
    c->open_flags = open_flags;
    c->cb = cb;
    c->userdata = userdata;
    strcpy(c->name, name);
    if (create) {
        c->attrs = *attrs;
        snprintf(c->csi, sizeof(c->csi), "%s", attrs->csi ?: "");
    }
    /* Listed before asking, so that an update arriving right behind the Reply finds it. */
    pthread_mutex_lock(&h->lock);
    LIST_PREPEND(ckpts, &h->ckpts, c);
    pthread_mutex_unlock(&h->lock);
    int r = send_open(h, c, create, &reply);
    if (r >= 0 && reply->reply->ckpt_attrs) {
        const Halo__Link__CkptAttrs *a = reply->reply->ckpt_attrs;
        c->attrs = (halo_ckpt_attrs){.flags = a->flags,
                                     .retention_msec = a->retention_msec,
                                     .max_sections = a->max_sections,
                                     .max_section_size = a->max_section_size};
        snprintf(c->csi, sizeof(c->csi), "%s", a->csi);
    }
    c->attrs.csi = c->csi;
    link_msg_free(reply);
    if (r < 0) {
        pthread_mutex_lock(&h->lock);
        LIST_REMOVE(ckpts, &h->ckpts, c);
        pthread_mutex_unlock(&h->lock);
        free(c);
        return r;
    }
    *ret = c;
    return 0;
}

HALO_EXPORT const halo_ckpt_attrs *halo_ckpt_attributes(const halo_ckpt *c) {
    return c ? &c->attrs : NULL;
}

HALO_EXPORT const char *halo_ckpt_name(const halo_ckpt *c) {
    return c ? c->name : NULL;
}

HALO_EXPORT int halo_ckpt_write(halo_ckpt *c, const char *section, const void *data, size_t len,
                                halo_ckpt_write_mode mode) {
    Halo__Link__CkptWrite w = HALO__LINK__CKPT_WRITE__INIT;
    LinkMsg m = HALO__LINK__MSG__INIT;

    assert_return(c && (data || len == 0), -EINVAL);
    if (!name_valid(section) || (unsigned)mode > HALO_CKPT_OVERWRITE)
        return -EINVAL;
    if (len > HALO_CKPT_SECTION_MAX || len > c->attrs.max_section_size)
        return -E2BIG;
    w.name = c->name;
    w.section = (char *)section;
    w.data.data = (uint8_t *)data;
    w.data.len = len;
    w.mode = mode;
    m.body_case = HALO__LINK__MSG__BODY_CKPT_WRITE;
    m.ckpt_write = &w;
    return halo__request(c->h, &m, &w.seq, NULL);
}

HALO_EXPORT int halo_ckpt_read(halo_ckpt *c, const char *section, void **ret_data, size_t *ret_len) {
    Halo__Link__CkptRead rd = HALO__LINK__CKPT_READ__INIT;
    LinkMsg m = HALO__LINK__MSG__INIT;
    LinkMsg *reply = NULL;

    assert_return(c && ret_data && ret_len, -EINVAL);
    if (!name_valid(section))
        return -EINVAL;
    rd.name = c->name;
    rd.section = (char *)section;
    m.body_case = HALO__LINK__MSG__BODY_CKPT_READ;
    m.ckpt_read = &rd;
    int r = halo__request(c->h, &m, &rd.seq, &reply);
    if (r < 0)
        return r;
    size_t n = reply->reply->ckpt_data.len;
    char *v = malloc(n + 1);
    if (v) {
        if (n)
            memcpy(v, reply->reply->ckpt_data.data, n);
        v[n] = '\0';
        *ret_data = v;
        *ret_len = n;
    }
    link_msg_free(reply);
    return v ? 0 : -ENOMEM;
}

HALO_EXPORT int halo_ckpt_delete(halo_ckpt *c, const char *section) {
    Halo__Link__CkptDelete d = HALO__LINK__CKPT_DELETE__INIT;
    LinkMsg m = HALO__LINK__MSG__INIT;

    assert_return(c, -EINVAL);
    if (!name_valid(section))
        return -EINVAL;
    d.name = c->name;
    d.section = (char *)section;
    m.body_case = HALO__LINK__MSG__BODY_CKPT_DELETE;
    m.ckpt_delete = &d;
    return halo__request(c->h, &m, &d.seq, NULL);
}

/* Parts collected, then packed into one block. */
struct parts {
    LinkMsg **v;
    size_t n, n_items, bytes;
};

static void parts_done(struct parts *p) {
    for (size_t i = 0; i < p->n; i++)
        link_msg_free(p->v[i]);
    free(p->v);
}

static int sections_pack(struct parts *p, halo_ckpt_section **ret, size_t *ret_n) {
    halo_ckpt_section *items = malloc(p->n_items * sizeof(*items) + p->bytes + 1);
    if (!items)
        return -ENOMEM;
    char *q = (char *)(items + p->n_items);
    size_t k = 0;
    for (size_t i = 0; i < p->n; i++) {
        const Halo__Link__Reply *rep = p->v[i]->reply;
        for (size_t j = 0; j < rep->n_ckpt_sections; j++, k++) {
            size_t il = strlen(rep->ckpt_sections[j]->id) + 1, dl = rep->ckpt_sections[j]->data.len;
            items[k].id = memcpy(q, rep->ckpt_sections[j]->id, il);
            q += il;
            if (dl)
                memcpy(q, rep->ckpt_sections[j]->data.data, dl);
            q[dl] = '\0';
            items[k].data = q;
            items[k].len = dl;
            q += dl + 1;
        }
    }
    *ret = items;
    *ret_n = p->n_items;
    return 0;
}

HALO_EXPORT int halo_ckpt_sections(halo_ckpt *c, halo_ckpt_section **ret, size_t *ret_n) {
    struct parts p = {0};
    const char *after = "";
    int r;

    assert_return(c && ret && ret_n, -EINVAL);
    for (;;) {
        Halo__Link__CkptList l = HALO__LINK__CKPT_LIST__INIT;
        LinkMsg m = HALO__LINK__MSG__INIT;
        LinkMsg *reply = NULL;
        l.name = c->name;
        l.after = (char *)after;
        m.body_case = HALO__LINK__MSG__BODY_CKPT_LIST;
        m.ckpt_list = &l;
        r = halo__request(c->h, &m, &l.seq, &reply);
        if (r < 0)
            goto finish;
        LinkMsg **v = realloc(p.v, (p.n + 1) * sizeof(*v));
        if (!v) {
            link_msg_free(reply);
            r = -ENOMEM;
            goto finish;
        }
        p.v = v;
        p.v[p.n++] = reply;
        const Halo__Link__Reply *rep = reply->reply;
        for (size_t i = 0; i < rep->n_ckpt_sections; i++)
            p.bytes += strlen(rep->ckpt_sections[i]->id) + 1 + rep->ckpt_sections[i]->data.len + 1;
        p.n_items += rep->n_ckpt_sections;
        if (!rep->more || rep->n_ckpt_sections == 0)
            break;
        after = rep->ckpt_sections[rep->n_ckpt_sections - 1]->id;
    }
    r = sections_pack(&p, ret, ret_n);
finish:
    parts_done(&p);
    return r;
}

HALO_EXPORT halo_ckpt *halo_ckpt_close(halo_ckpt *c) {
    Halo__Link__CkptClose cl = HALO__LINK__CKPT_CLOSE__INIT;
    LinkMsg m = HALO__LINK__MSG__INIT;

    if (!c)
        return NULL;
    pthread_mutex_lock(&c->h->lock);
    LIST_REMOVE(ckpts, &c->h->ckpts, c);
    pthread_mutex_unlock(&c->h->lock);
    cl.name = c->name;
    m.body_case = HALO__LINK__MSG__BODY_CKPT_CLOSE;
    m.ckpt_close = &cl;
    /* Gone from halod too, or with the link: either way it is closed there. */
    (void)halo__request(c->h, &m, &cl.seq, NULL);
    free(c);
    return NULL;
}

HALO_EXPORT int halo_ckpt_unlink(halo *h, const char *name) {
    Halo__Link__CkptUnlink u = HALO__LINK__CKPT_UNLINK__INIT;
    LinkMsg m = HALO__LINK__MSG__INIT;

    assert_return(h, -EINVAL);
    if (!name_valid(name))
        return -EINVAL;
    u.name = (char *)name;
    m.body_case = HALO__LINK__MSG__BODY_CKPT_UNLINK;
    m.ckpt_unlink = &u;
    return halo__request(h, &m, &u.seq, NULL);
}

bool halo__ckpt_update(halo *h, const Halo__Link__CkptUpdate *m) {
    halo_ckpt *c, *found = NULL;

    pthread_mutex_lock(&h->lock);
    LIST_FOREACH (ckpts, c, &h->ckpts)
        if (streq(c->name, m->name) && c->cb) {
            found = c;
            break;
        }
    pthread_mutex_unlock(&h->lock);
    if (!found)
        return false; /* closed meanwhile */
    /* The data gets a NUL, as promised. */
    char *data = malloc(m->data.len + 1);
    if (!data)
        return false;
    if (m->data.len)
        memcpy(data, m->data.data, m->data.len);
    data[m->data.len] = '\0';
    found->cb(found, m->section, data, m->data.len, m->deleted, m->revision, found->userdata);
    free(data);
    return true;
}

int halo__ckpt_resume(halo *h, const struct timespec *deadline) {
    halo_ckpt *c;

    /* Opened again, never created: a checkpoint deleted while halod was away stays deleted. */
    LIST_FOREACH (ckpts, c, &h->ckpts) {
        Halo__Link__CkptOpen o = HALO__LINK__CKPT_OPEN__INIT;
        LinkMsg m = HALO__LINK__MSG__INIT;
        int e = 0;
        o.name = c->name;
        o.updates = c->open_flags & HALO_CKPT_UPDATES;
        o.local_reads = c->open_flags & HALO_CKPT_LOCAL_READS;
        m.body_case = HALO__LINK__MSG__BODY_CKPT_OPEN;
        m.ckpt_open = &o;
        int r = halo__request_resume(h, &m, &o.seq, deadline, &e);
        if (r < 0)
            return r;
    }
    return 0;
}

void halo__ckpt_free(halo *h) {
    halo_ckpt *c;

    while ((c = LIST_POP(ckpts, &h->ckpts)))
        free(c);
}
