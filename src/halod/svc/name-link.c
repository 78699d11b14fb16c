/* SPDX-License-Identifier: MIT */
/* The name service on the HA link: register, deregister, lookup, track, and haloctl's NAMES. */
#define LOG_AREA LOG_AREA_LINK
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "keys.h"
#include "log.h"
#include "macro.h"
#include "name-internal.h"

static struct name_req *req_new(struct name_service *s, struct conn *c, uint64_t seq) {
    struct name_req *q = calloc(1, sizeof(*q));
    if (!q)
        return NULL;
    q->svc = s;
    q->conn = c;
    q->seq = seq;
    LIST_PREPEND(reqs, &s->reqs, q);
    return q;
}

static void req_drop(struct name_req *q) {
    q->conn = NULL;
    name_req_answer(q, 0);
}

/* The component this connection registered; a claim of another one is refused. */
static int caller(struct name_service *s, struct conn *c, const char *claimed, struct comp **ret) {
    struct comp *comp = amf_comp_by_conn(s->amf, c);
    if (!comp) {
        log_info("%s is no registered component: its name service request is refused", server_conn_name(c));
        return -HALO_ENOTREG;
    }
    if (*claimed && !streq(claimed, comp->name)) {
        log_warning("%s (component '%s') claimed to be '%s' in a name service request; refused", server_conn_name(c),
                    comp->name, claimed);
        return -EPERM;
    }
    *ret = comp;
    return 0;
}

static int handle_register(struct name_service *s, struct conn *c, const Halo__Link__NameRegister *m) {
    struct comp *comp;
    /* Bad input is answered as such whoever sends it. */
    int r = name_entry_check(m->entry);
    if (r < 0)
        return r;
    if (streq(m->entry->context, HALO_NAME_CONTEXT_ENTRYPOINT))
        return -EROFS;
    if ((r = caller(s, c, m->entry->comp, &comp)) < 0)
        return r;
    struct name_req *q = req_new(s, c, m->seq);
    if (!q)
        return -ENOMEM;
    r = name_register(s, m->entry, comp->name, comp->pid, amf_comp_starttime(comp), q);
    if (r < 0)
        req_drop(q);
    return r;
}

static int handle_deregister(struct name_service *s, struct conn *c, const Halo__Link__NameDeregister *m) {
    struct comp *comp;
    int r = caller(s, c, m->comp, &comp);
    if (r < 0)
        return r;
    if (!m->all && streq(m->context, HALO_NAME_CONTEXT_ENTRYPOINT))
        return -EROFS;
    if (!m->all && (!svc_name_valid(m->context, HALO_NAME_MAX) || !svc_name_valid(m->name, HALO_NAME_MAX)))
        return -EINVAL;
    struct name_req *q = req_new(s, c, m->seq);
    if (!q)
        return -ENOMEM;
    r = name_deregister(s, comp->name, m->context, m->name, m->all, q);
    if (r < 0)
        req_drop(q);
    return r;
}

/* ---- lookups ---------------------------------------------------------------------------------- */

static void reply_entries(struct conn *c, uint64_t seq, struct name_reg **regs, size_t n) {
    Halo__Link__NameEntry *e = calloc(n, sizeof(*e));
    Halo__Link__NameEntry **pe = calloc(n, sizeof(*pe));
    Halo__Link__Attr *a = calloc(n * HALO_NAME_ATTRS_MAX, sizeof(*a));
    Halo__Link__Attr **pa = calloc(n * HALO_NAME_ATTRS_MAX, sizeof(*pa));
    if (!e || !pe || !a || !pa)
        (void)server_conn_reply(c, seq, -ENOMEM, NULL);
    else {
        for (size_t i = 0; i < n; i++) {
            name_reg_entry(regs[i], &e[i], &a[i * HALO_NAME_ATTRS_MAX], &pa[i * HALO_NAME_ATTRS_MAX]);
            pe[i] = &e[i];
        }
        Halo__Link__Reply rep = HALO__LINK__REPLY__INIT;
        rep.seq = seq;
        rep.json = (char *)"";
        rep.txid = (char *)"";
        rep.names = pe;
        rep.n_names = n;
        (void)server_conn_send_reply(c, &rep);
    }
    free(e);
    free(pe);
    free(a);
    free(pa);
}

static void regs_free(struct name_reg **regs, size_t n) {
    for (size_t i = 0; i < n; i++)
        name_reg_free(regs[i]);
    free(regs);
}

/* The live registrations among kvs, best first: as many as fit one answer (all), or one. */
static void answer_lookup(struct name_req *q, const store_kv *kvs, size_t n_kvs) {
    struct name_reg **regs = calloc(n_kvs ?: 1, sizeof(*regs));
    size_t n = 0;
    if (!regs) {
        name_req_answer(q, -ENOMEM);
        return;
    }
    for (size_t i = 0; i < n_kvs; i++)
        if (name_reg_parse(q->svc->prefix, &kvs[i], &regs[n]) >= 0) {
            if (regs[n]->gone)
                regs[n] = name_reg_free(regs[n]);
            else
                n++;
        }
    qsort(regs, n, sizeof(*regs), name_reg_compare);
    if (n == 0)
        name_req_answer(q, -ENOENT);
    else {
        if (q->conn)
            reply_entries(q->conn, q->seq, regs, q->all ? name_regs_that_fit(regs, n) : 1);
        req_drop(q);
    }
    regs_free(regs, n);
}

static void on_range(store *st, int error, const store_result *r, void *userdata) {
    struct name_req *q = userdata;
    if (!q->svc || error < 0) {
        name_req_answer(q, error < 0 ? error : -ECANCELED);
        return;
    }
    answer_lookup(q, r->kvs, r->n_kvs);
}

static int handle_lookup(struct name_service *s, struct conn *c, const Halo__Link__NameLookup *m) {
    char prefix[STORE_KEY_MAX];
    if (!svc_name_valid(m->context, HALO_NAME_MAX) || !svc_name_valid(m->name, HALO_NAME_MAX))
        return strlen(m->context) > HALO_NAME_MAX || strlen(m->name) > HALO_NAME_MAX ? -ENAMETOOLONG : -EINVAL;
    if (streq(m->context, HALO_NAME_CONTEXT_ENTRYPOINT)) {
        struct name_reg **regs = NULL;
        size_t n = 0;
        int r = name_entry_lookup(s->amf, m->name, m->all, &regs, &n);
        if (r < 0)
            return r;
        reply_entries(c, m->seq, regs, name_regs_that_fit(regs, n));
        regs_free(regs, n);
        return 1;
    }
    if (key_names_of(prefix, s->prefix, m->context, m->name) < 0)
        return -ENAMETOOLONG;
    struct name_req *q = req_new(s, c, m->seq);
    if (!q)
        return -ENOMEM;
    q->all = m->all;
    int r = store_range(s->store, prefix, on_range, q);
    if (r < 0)
        req_drop(q);
    return r;
}

/* ---- tracks ------------------------------------------------------------------------------------ */

struct name_track *name_track_free(struct name_track *t) {
    for (size_t i = 0; i < t->n_last; i++)
        name_reg_free(t->last[i]);
    free(t->last);
    free(t);
    return NULL;
}

static void send_note(struct name_track *t, int change, int reason, Halo__Link__NameEntry *e) {
    Halo__Link__NameNote note = HALO__LINK__NAME_NOTE__INIT;
    LinkMsg m = HALO__LINK__MSG__INIT;
    note.id = t->id;
    note.change = change;
    note.reason = reason;
    note.entry = e;
    m.body_case = HALO__LINK__MSG__BODY_NAME_NOTE;
    m.name_note = &note;
    /* A failure closed the connection (and logged why). */
    (void)server_conn_send(t->conn, &m);
}

void name_notify_one(struct name_track *t, int change, int reason, const struct name_reg *r) {
    Halo__Link__Attr a[HALO_NAME_ATTRS_MAX], *pa[HALO_NAME_ATTRS_MAX];
    Halo__Link__NameEntry e;
    if (!t->conn)
        return;
    name_reg_entry(r, &e, a, pa);
    send_note(t, change, reason, &e);
}

void name_tracks_sweep(struct name_service *s) {
    struct name_track *t, *next;
    LIST_FOREACH_SAFE (tracks, t, next, &s->tracks)
        if (!t->conn) {
            LIST_REMOVE(tracks, &s->tracks, t);
            name_track_free(t);
        }
}

void name_notify(struct name_service *s, int change, int reason, const struct name_reg *r) {
    struct name_track *t;
    Halo__Link__Attr a[HALO_NAME_ATTRS_MAX], *pa[HALO_NAME_ATTRS_MAX];
    Halo__Link__NameEntry e;
    name_reg_entry(r, &e, a, pa);
    s->notifying = true;
    LIST_FOREACH (tracks, t, &s->tracks)
        if (t->conn && streq(t->context, r->context) && streq(t->name, r->name))
            send_note(t, change, reason, &e);
    s->notifying = false;
    name_tracks_sweep(s);
}

static int handle_track(struct name_service *s, struct conn *c, const Halo__Link__NameTrack *m) {
    struct name_track *t;
    size_t n = 0;
    if (!svc_name_valid(m->context, HALO_NAME_MAX) || !svc_name_valid(m->name, HALO_NAME_MAX))
        return strlen(m->context) > HALO_NAME_MAX || strlen(m->name) > HALO_NAME_MAX ? -ENAMETOOLONG : -EINVAL;
    LIST_FOREACH (tracks, t, &s->tracks)
        if (t->conn == c) {
            if (t->id == m->id)
                return -HALO_EEXIST;
            n++;
        }
    if (n >= LINK_CDB_SUBS_MAX)
        return -ENOSPC;
    t = calloc(1, sizeof(*t));
    if (!t)
        return -ENOMEM;
    t->conn = c;
    t->id = m->id;
    strcpy(t->context, m->context);
    strcpy(t->name, m->name);
    if (streq(t->context, HALO_NAME_CONTEXT_ENTRYPOINT) && name_entry_track(s, t) < 0) {
        free(t);
        return -ENOMEM;
    }
    LIST_PREPEND(tracks, &s->tracks, t);
    return 0;
}

static int handle_track_stop(struct name_service *s, struct conn *c, const Halo__Link__NameTrackStop *m) {
    struct name_track *t;
    LIST_FOREACH (tracks, t, &s->tracks)
        if (t->conn == c && t->id == m->id) {
            LIST_REMOVE(tracks, &s->tracks, t);
            name_track_free(t);
            return 0;
        }
    return -ENOENT;
}

void name_service_conn_closed(struct name_service *s, struct conn *c) {
    struct name_track *t, *next;
    struct name_req *q;
    LIST_FOREACH_SAFE (tracks, t, next, &s->tracks) {
        if (t->conn != c)
            continue;
        if (s->notifying) {
            t->conn = NULL;
            continue;
        }
        LIST_REMOVE(tracks, &s->tracks, t);
        name_track_free(t);
    }
    LIST_FOREACH (reqs, q, &s->reqs)
        if (q->conn == c)
            q->conn = NULL;
}

/* ---- haloctl names ------------------------------------------------------------------------------ */

/* Every live registration this node follows (of context, if not ""), as JSON. */
static int handle_names(struct name_service *s, struct conn *c, uint64_t seq, const char *context) {
    struct name_reg *r;
    json_t *a = json_array();
    size_t n = 0;
    if (!a)
        return -ENOMEM;
    LIST_FOREACH (regs, r, &s->cache)
        n += !r->gone && (!*context || streq(context, r->context));
    _cleanup_free_ struct name_reg **regs = calloc(n ?: 1, sizeof(*regs));
    if (!regs) {
        json_decref(a);
        return -ENOMEM;
    }
    n = 0;
    LIST_FOREACH (regs, r, &s->cache)
        if (!r->gone && (!*context || streq(context, r->context)))
            regs[n++] = r;
    qsort(regs, n, sizeof(*regs), name_reg_compare);
    for (size_t i = 0; i < n; i++)
        json_array_append_new(a, name_reg_json(regs[i]));
    if (!*context || streq(context, HALO_NAME_CONTEXT_ENTRYPOINT))
        (void)name_entry_json(s->amf, a);
    json_t *root = json_pack("{s:o, s:b}", "names", a, "loaded", s->loaded);
    char *json = root ? json_dumps(root, JSON_COMPACT) : NULL;
    json_decref(root);
    if (!json)
        return -ENOMEM;
    (void)server_conn_reply_parts(c, seq, json);
    return 1;
}

bool name_service_handle_msg(struct name_service *s, struct conn *c, const LinkMsg *m) {
    uint64_t seq;
    int r;

    switch (m->body_case) {
    case HALO__LINK__MSG__BODY_NAME_REGISTER:
        seq = m->name_register->seq;
        r = handle_register(s, c, m->name_register);
        if (r == 0)
            return true; /* answered once stored */
        break;
    case HALO__LINK__MSG__BODY_NAME_DEREGISTER:
        seq = m->name_deregister->seq;
        r = handle_deregister(s, c, m->name_deregister);
        if (r == 0)
            return true;
        break;
    case HALO__LINK__MSG__BODY_NAME_LOOKUP:
        seq = m->name_lookup->seq;
        r = handle_lookup(s, c, m->name_lookup);
        if (r == 0)
            return true;
        break;
    case HALO__LINK__MSG__BODY_NAME_TRACK:
        seq = m->name_track->seq;
        r = handle_track(s, c, m->name_track);
        break;
    case HALO__LINK__MSG__BODY_NAME_TRACK_STOP:
        seq = m->name_track_stop->seq;
        r = handle_track_stop(s, c, m->name_track_stop);
        break;
    case HALO__LINK__MSG__BODY_ADMIN:
        if (m->admin->op != HALO__LINK__ADMIN__OP__NAMES)
            return false;
        seq = m->admin->seq;
        r = handle_names(s, c, seq, m->admin->target);
        break;
    default:
        return false;
    }
    if (r <= 0)
        (void)server_conn_reply(c, seq, r, NULL);
    return true;
}
