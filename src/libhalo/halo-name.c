/* SPDX-License-Identifier: MIT */
/* libhalo's name service calls (the contract is include/halo/name.h; halod's side is src/halod/svc/name*.c). */
#include "halo/name.h"

#include <errno.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#include "halo-internal.h"
#include "macro.h"

struct halo_name_track {
    LIST_FIELDS(struct halo_name_track, tracks);
    unsigned id;
    halo_name_track_cb cb;
    void *userdata;
    char *name; /* into context's block */
    char context[];
};

/* What halod would refuse anyway, refused here without a round trip. */
static bool name_valid(const char *s, size_t max) {
    size_t n = s ? strnlen(s, max + 1) : 0;
    if (n == 0 || n > max)
        return false;
    for (size_t i = 0; i < n; i++) {
        char c = s[i];
        if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || strchr("-_.:@", c)))
            return false;
    }
    return true;
}

static int check_names(const char *context, const char *name) {
    if (!name_valid(context, HALO_NAME_MAX) || !name_valid(name, HALO_NAME_MAX))
        return context && name && (strlen(context) > HALO_NAME_MAX || strlen(name) > HALO_NAME_MAX) ? -ENAMETOOLONG
                                                                                                    : -EINVAL;
    return 0;
}

static int check_attrs(const halo_name_attr *attrs, size_t n) {
    if (n > HALO_NAME_ATTRS_MAX)
        return -E2BIG;
    for (size_t i = 0; i < n; i++) {
        if (!attrs[i].value || !name_valid(attrs[i].name, HALO_NAME_ATTR_NAME_MAX))
            return -EINVAL;
        if (strlen(attrs[i].value) > HALO_NAME_ATTR_VALUE_MAX)
            return -E2BIG;
    }
    return 0;
}

HALO_EXPORT int halo_name_register(halo *h, const char *context, const char *name, const void *ref, size_t ref_len,
                                   const halo_name_attr *attrs, size_t n_attrs, unsigned priority) {
    Halo__Link__NameRegister reg = HALO__LINK__NAME_REGISTER__INIT;
    Halo__Link__NameEntry e = HALO__LINK__NAME_ENTRY__INIT;
    LinkMsg m = HALO__LINK__MSG__INIT;

    assert_return(h && (ref || ref_len == 0) && (attrs || n_attrs == 0), -EINVAL);
    int r = check_names(context, name);
    if (r < 0)
        return r;
    if (ref_len > HALO_NAME_REF_MAX)
        return -E2BIG;
    if ((r = check_attrs(attrs, n_attrs)) < 0)
        return r;
    Halo__Link__Attr a[HALO_NAME_ATTRS_MAX], *pa[HALO_NAME_ATTRS_MAX];
    for (size_t i = 0; i < n_attrs; i++) {
        halo__link__attr__init(&a[i]);
        a[i].name = (char *)attrs[i].name;
        a[i].value = (char *)attrs[i].value;
        pa[i] = &a[i];
    }
    e.context = (char *)context;
    e.name = (char *)name;
    e.ref.data = (uint8_t *)ref;
    e.ref.len = ref_len;
    e.attrs = pa;
    e.n_attrs = n_attrs;
    e.priority = priority;
    reg.entry = &e;
    m.body_case = HALO__LINK__MSG__BODY_NAME_REGISTER;
    m.name_register = &reg;
    return halo__request(h, &m, &reg.seq, NULL);
}

static int deregister(halo *h, const char *context, const char *name, bool all) {
    Halo__Link__NameDeregister d = HALO__LINK__NAME_DEREGISTER__INIT;
    LinkMsg m = HALO__LINK__MSG__INIT;
    d.context = (char *)(context ?: "");
    d.name = (char *)(name ?: "");
    d.all = all;
    m.body_case = HALO__LINK__MSG__BODY_NAME_DEREGISTER;
    m.name_deregister = &d;
    return halo__request(h, &m, &d.seq, NULL);
}

HALO_EXPORT int halo_name_deregister(halo *h, const char *context, const char *name) {
    assert_return(h, -EINVAL);
    int r = check_names(context, name);
    return r < 0 ? r : deregister(h, context, name, false);
}

HALO_EXPORT int halo_name_component_deregister(halo *h) {
    assert_return(h, -EINVAL);
    return deregister(h, NULL, NULL, true);
}

/* ---- lookups ------------------------------------------------------------- */

static size_t entry_bytes(const Halo__Link__NameEntry *e) {
    size_t n = strlen(e->context) + strlen(e->name) + strlen(e->comp) + strlen(e->node) + e->ref.len + 5;
    n += e->n_attrs * sizeof(halo_name_attr) + _Alignof(halo_name_attr);
    for (size_t i = 0; i < e->n_attrs; i++)
        n += strlen(e->attrs[i]->name) + strlen(e->attrs[i]->value) + 2;
    return n;
}

static char *put_string(char **q, const char *s, size_t n) {
    char *p = *q;
    if (n)
        memcpy(p, s, n);
    p[n] = '\0';
    *q = p + n + 1;
    return p;
}

/* Copies e into d, its strings and attributes into the block at *q (entry_bytes() of room). */
static void entry_copy(halo_name_entry *d, const Halo__Link__NameEntry *e, char **q) {
    uintptr_t at = ((uintptr_t)*q + _Alignof(halo_name_attr) - 1) & ~(uintptr_t)(_Alignof(halo_name_attr) - 1);
    halo_name_attr *attrs = (halo_name_attr *)at;
    *q = (char *)(attrs + e->n_attrs);
    for (size_t i = 0; i < e->n_attrs; i++) {
        attrs[i].name = put_string(q, e->attrs[i]->name, strlen(e->attrs[i]->name));
        attrs[i].value = put_string(q, e->attrs[i]->value, strlen(e->attrs[i]->value));
    }
    *d = (halo_name_entry){.context = put_string(q, e->context, strlen(e->context)),
                           .name = put_string(q, e->name, strlen(e->name)),
                           .ref = put_string(q, (const char *)e->ref.data, e->ref.len),
                           .ref_len = e->ref.len,
                           .attrs = attrs,
                           .n_attrs = e->n_attrs,
                           .priority = e->priority,
                           .comp = put_string(q, e->comp, strlen(e->comp)),
                           .node = put_string(q, e->node, strlen(e->node))};
}

HALO_EXPORT int halo_name_lookup(halo *h, const char *context, const char *name, unsigned flags,
                                 halo_name_entry **ret_entries, size_t *ret_n) {
    Halo__Link__NameLookup l = HALO__LINK__NAME_LOOKUP__INIT;
    LinkMsg m = HALO__LINK__MSG__INIT;
    LinkMsg *reply = NULL;

    assert_return(h && ret_entries && ret_n && !(flags & ~HALO_NAME_LOOKUP_ALL), -EINVAL);
    int r = check_names(context, name);
    if (r < 0)
        return r;
    l.context = (char *)context;
    l.name = (char *)name;
    l.all = flags & HALO_NAME_LOOKUP_ALL;
    m.body_case = HALO__LINK__MSG__BODY_NAME_LOOKUP;
    m.name_lookup = &l;
    r = halo__request(h, &m, &l.seq, &reply);
    if (r < 0)
        return r;
    const Halo__Link__Reply *rep = reply->reply;
    if (rep->n_names == 0) {
        link_msg_free(reply);
        return -ENOENT;
    }
    size_t bytes = rep->n_names * sizeof(halo_name_entry);
    for (size_t i = 0; i < rep->n_names; i++)
        bytes += entry_bytes(rep->names[i]);
    halo_name_entry *entries = malloc(bytes);
    if (!entries) {
        link_msg_free(reply);
        return -ENOMEM;
    }
    char *q = (char *)(entries + rep->n_names);
    for (size_t i = 0; i < rep->n_names; i++)
        entry_copy(&entries[i], rep->names[i], &q);
    *ret_n = rep->n_names;
    *ret_entries = entries;
    link_msg_free(reply);
    return 0;
}

/* ---- tracks -------------------------------------------------------------- */

static int send_track(halo *h, const struct halo_name_track *t) {
    Halo__Link__NameTrack tr = HALO__LINK__NAME_TRACK__INIT;
    LinkMsg m = HALO__LINK__MSG__INIT;
    tr.id = t->id;
    tr.context = (char *)t->context;
    tr.name = t->name;
    m.body_case = HALO__LINK__MSG__BODY_NAME_TRACK;
    m.name_track = &tr;
    return halo__request(h, &m, &tr.seq, NULL);
}

HALO_EXPORT int halo_name_track(halo *h, const char *context, const char *name, halo_name_track_cb cb, void *userdata,
                                unsigned *ret_track) {
    static unsigned next_id; /* ids need only differ per handle */
    struct halo_name_track *i;
    size_t n = 0;

    assert_return(h && cb && ret_track, -EINVAL);
    int r = check_names(context, name);
    if (r < 0)
        return r;
    size_t cl = strlen(context) + 1, nl = strlen(name) + 1;
    struct halo_name_track *t = calloc(1, sizeof(*t) + cl + nl);
    if (!t)
        return -ENOMEM;
    memcpy(t->context, context, cl);
    t->name = memcpy(t->context + cl, name, nl);
    t->cb = cb;
    t->userdata = userdata;

    /* Listed before asking, so that a note arriving right behind the Reply finds it. */
    pthread_mutex_lock(&h->lock);
    LIST_FOREACH (tracks, i, &h->name_tracks)
        n++;
    if (n >= LINK_CDB_SUBS_MAX) {
        pthread_mutex_unlock(&h->lock);
        free(t);
        return -ENOSPC;
    }
    do
        t->id = __atomic_add_fetch(&next_id, 1, __ATOMIC_RELAXED);
    while (t->id == 0);
    LIST_PREPEND(tracks, &h->name_tracks, t);
    pthread_mutex_unlock(&h->lock);

    r = send_track(h, t);
    if (r < 0) {
        pthread_mutex_lock(&h->lock);
        LIST_REMOVE(tracks, &h->name_tracks, t);
        pthread_mutex_unlock(&h->lock);
        free(t);
        return r;
    }
    *ret_track = t->id;
    return 0;
}

HALO_EXPORT int halo_name_track_stop(halo *h, unsigned track) {
    Halo__Link__NameTrackStop s = HALO__LINK__NAME_TRACK_STOP__INIT;
    LinkMsg m = HALO__LINK__MSG__INIT;
    struct halo_name_track *i, *found = NULL;

    assert_return(h, -EINVAL);
    pthread_mutex_lock(&h->lock);
    LIST_FOREACH (tracks, i, &h->name_tracks)
        if (i->id == track) {
            found = i;
            LIST_REMOVE(tracks, &h->name_tracks, found);
            break;
        }
    pthread_mutex_unlock(&h->lock);
    if (!found)
        return -ENOENT;
    free(found);
    s.id = track;
    m.body_case = HALO__LINK__MSG__BODY_NAME_TRACK_STOP;
    m.name_track_stop = &s;
    int r = halo__request(h, &m, &s.seq, NULL);
    /* Gone from halod too, or with the link: either way no more notes. */
    return r == -ENOENT || r == -HALO_ETRYAGAIN || r == -ENOTCONN ? 0 : r;
}

bool halo__name_note(halo *h, const Halo__Link__NameNote *m) {
    halo_name_track_cb cb = NULL;
    void *userdata = NULL;
    struct halo_name_track *t;

    pthread_mutex_lock(&h->lock);
    LIST_FOREACH (tracks, t, &h->name_tracks)
        if (t->id == m->id) {
            cb = t->cb;
            userdata = t->userdata;
            break;
        }
    pthread_mutex_unlock(&h->lock);
    if (!cb)
        return false; /* stopped meanwhile */
    _cleanup_free_ char *block = malloc(entry_bytes(m->entry));
    if (!block)
        return false;
    halo_name_entry e;
    char *q = block;
    entry_copy(&e, m->entry, &q);
    cb(h, m->id, (halo_name_change)m->change, (halo_name_reason)m->reason, &e, userdata);
    return true;
}

int halo__name_resume(halo *h, const struct timespec *deadline) {
    struct halo_name_track *t;

    LIST_FOREACH (tracks, t, &h->name_tracks) {
        Halo__Link__NameTrack tr = HALO__LINK__NAME_TRACK__INIT;
        LinkMsg m = HALO__LINK__MSG__INIT;
        int e = 0;
        tr.id = t->id;
        tr.context = t->context;
        tr.name = t->name;
        m.body_case = HALO__LINK__MSG__BODY_NAME_TRACK;
        m.name_track = &tr;
        int r = halo__request_resume(h, &m, &tr.seq, deadline, &e);
        if (r < 0)
            return r;
    }
    return 0;
}

void halo__name_free(halo *h) {
    struct halo_name_track *t;

    while ((t = LIST_POP(tracks, &h->name_tracks)))
        free(t);
}
