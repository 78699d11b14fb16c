/* SPDX-License-Identifier: MIT */
/* Interest filters on the object-state notes (include/halo/events.h). */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "halo-internal.h"
#include "halo/events.h"
#include "macro.h"

/* What halod's link check and rule check accept, checked here so the caller hears -EINVAL at once. */
static bool rule_ok(const halo_interest_rule *r) {
    const char *v = r->value ? r->value : "";
    if (r->kind == HALO_INTEREST_ALL || r->kind == HALO_INTEREST_GROUP || r->kind == HALO_INTEREST_POOL)
        return !*v;
    if (r->kind != HALO_INTEREST_OBJECT && r->kind != HALO_INTEREST_PREFIX)
        return false;
    if (!*v || strlen(v) >= HALO_OBJECT_MAX || (r->kind == HALO_INTEREST_OBJECT && !strchr(v, ':')))
        return false;
    for (const char *p = v; *p; p++)
        if ((unsigned char)*p <= 0x20 || *p == 0x7f || *p == '/')
            return false;
    return true;
}

static void rules_free(Halo__Link__InterestRule **rules, size_t n) {
    for (size_t i = 0; rules && i < n; i++) {
        if (rules[i])
            free(rules[i]->value);
        free(rules[i]);
    }
    free(rules);
}

/* A copy as the link message wants it, kept by the handle for a reconnection. */
static int rules_copy(const halo_interest_rule *rules, size_t n, Halo__Link__InterestRule ***ret) {
    Halo__Link__InterestRule **v = calloc(n ?: 1, sizeof(*v));
    if (!v)
        return -ENOMEM;
    for (size_t i = 0; i < n; i++) {
        v[i] = malloc(sizeof(*v[i]));
        if (!v[i]) {
            rules_free(v, n);
            return -ENOMEM;
        }
        halo__link__interest_rule__init(v[i]);
        v[i]->kind = (Halo__Link__InterestRule__Kind)rules[i].kind;
        v[i]->value = strdup(rules[i].value ? rules[i].value : "");
        if (!v[i]->value) {
            rules_free(v, n);
            return -ENOMEM;
        }
    }
    *ret = v;
    return 0;
}

struct interest_commit {
    Halo__Link__InterestRule **rules;
    size_t n;
};

/* halod took the rules: the handle keeps them (under the lock). */
static void commit_interest(halo *h, int error, const Halo__Link__Reply *reply, void *arg) {
    struct interest_commit *c = arg;
    if (error < 0)
        return;
    rules_free(h->interest, h->n_interest);
    h->interest = c->rules;
    h->n_interest = c->n;
    h->interest_set = true;
    c->rules = NULL;
}

HALO_EXPORT int halo_object_interest(halo *h, const halo_interest_rule *rules, size_t n) {
    Halo__Link__ObjectInterest oi = HALO__LINK__OBJECT_INTEREST__INIT;
    LinkMsg m = HALO__LINK__MSG__INIT;

    assert_return(h, -EINVAL);
    assert_return(n <= HALO_INTEREST_RULES_MAX && (rules || n == 0), -EINVAL);
    for (size_t i = 0; i < n; i++)
        if (!rule_ok(&rules[i]))
            return -EINVAL;
    struct interest_commit c = {.n = n};
    int r = rules_copy(rules, n, &c.rules);
    if (r < 0)
        return r;
    oi.rules = c.rules;
    oi.n_rules = n;
    m.body_case = HALO__LINK__MSG__BODY_OBJECT_INTEREST;
    m.object_interest = &oi;
    r = halo__request_full(h, &m, &oi.seq, NULL, commit_interest, &c, NULL);
    rules_free(c.rules, c.n);
    return r;
}

int halo__events_resume(halo *h, const struct timespec *deadline) {
    Halo__Link__ObjectInterest oi = HALO__LINK__OBJECT_INTEREST__INIT;
    LinkMsg m = HALO__LINK__MSG__INIT;
    int e = 0;

    if (!h->interest_set)
        return 0;
    oi.rules = h->interest;
    oi.n_rules = h->n_interest;
    m.body_case = HALO__LINK__MSG__BODY_OBJECT_INTEREST;
    m.object_interest = &oi;
    return halo__request_resume(h, &m, &oi.seq, deadline, &e);
}

void halo__events_free(halo *h) {
    rules_free(h->interest, h->n_interest);
    h->interest = NULL;
    h->n_interest = 0;
}

/* ---- event channels ---- */

struct halo_evt_sub {
    LIST_FIELDS(struct halo_evt_sub, subs);
    unsigned id;
    halo_evt_cb cb;
    void *userdata;
    /* The EvtSubscribe as sent (seq 0), given again to a new halod after a reconnection. */
    uint8_t *packed;
    size_t len;
};

static int check_channel(const char *channel, halo_evt_scope scope) {
    if (!channel || !*channel || strlen(channel) > LINK_NAME_MAX ||
        (scope != HALO_EVT_LOCAL && scope != HALO_EVT_CLUSTER))
        return -EINVAL;
    for (const char *p = channel; *p; p++)
        if (!((*p >= 'a' && *p <= 'z') || (*p >= 'A' && *p <= 'Z') || (*p >= '0' && *p <= '9') || strchr("-_.:@", *p)))
            return -EINVAL;
    return 0;
}

HALO_EXPORT int halo_evt_open(halo *h, const char *channel, halo_evt_scope scope) {
    Halo__Link__EvtOpen o = HALO__LINK__EVT_OPEN__INIT;
    LinkMsg m = HALO__LINK__MSG__INIT;

    assert_return(h, -EINVAL);
    int r = check_channel(channel, scope);
    if (r < 0)
        return r;
    o.channel = (char *)channel;
    o.cluster = scope == HALO_EVT_CLUSTER;
    m.body_case = HALO__LINK__MSG__BODY_EVT_OPEN;
    m.evt_open = &o;
    return halo__request(h, &m, &o.seq, NULL);
}

HALO_EXPORT int halo_evt_publish(halo *h, const char *channel, halo_evt_scope scope, const halo_evt_field *pattern,
                                 size_t n, const void *payload, size_t len, unsigned retention_ms, uint64_t *ret_id) {
    Halo__Link__EvtPublish p = HALO__LINK__EVT_PUBLISH__INIT;
    LinkMsg m = HALO__LINK__MSG__INIT;
    ProtobufCBinaryData fields[HALO_EVT_FIELDS_MAX];
    LinkMsg *reply = NULL;

    assert_return(h, -EINVAL);
    int r = check_channel(channel, scope);
    if (r < 0)
        return r;
    if (n > HALO_EVT_FIELDS_MAX || (n && !pattern) || (len && !payload))
        return -EINVAL;
    if (len > HALO_EVT_PAYLOAD_MAX || retention_ms > HALO_EVT_RETENTION_MAX_MS)
        return -EMSGSIZE;
    for (size_t i = 0; i < n; i++) {
        if (pattern[i].len > HALO_EVT_FIELD_MAX)
            return -EMSGSIZE;
        if (pattern[i].len && !pattern[i].data)
            return -EINVAL;
        fields[i] = (ProtobufCBinaryData){.len = pattern[i].len, .data = (uint8_t *)pattern[i].data};
    }
    p.channel = (char *)channel;
    p.cluster = scope == HALO_EVT_CLUSTER;
    p.pattern = fields;
    p.n_pattern = n;
    p.payload = (ProtobufCBinaryData){.len = len, .data = (uint8_t *)payload};
    p.retention_ms = retention_ms;
    m.body_case = HALO__LINK__MSG__BODY_EVT_PUBLISH;
    m.evt_publish = &p;
    r = halo__request(h, &m, &p.seq, &reply);
    if (r < 0)
        return r;
    if (ret_id)
        *ret_id = reply->reply->evt_id;
    link_msg_free(reply);
    return 0;
}

static int send_subscribe(halo *h, const char *channel, halo_evt_scope scope, const halo_evt_filter *filters, size_t n,
                          unsigned id) {
    Halo__Link__EvtSubscribe q = HALO__LINK__EVT_SUBSCRIBE__INIT;
    LinkMsg m = HALO__LINK__MSG__INIT;
    Halo__Link__EvtFilter f[HALO_EVT_FIELDS_MAX], *fp[HALO_EVT_FIELDS_MAX];

    for (size_t i = 0; i < n; i++) {
        halo__link__evt_filter__init(&f[i]);
        f[i].type = (Halo__Link__EvtFilter__Type)filters[i].type;
        f[i].value = (ProtobufCBinaryData){.len = filters[i].len, .data = (uint8_t *)filters[i].value};
        if (filters[i].type == HALO_EVT_MASK)
            f[i].mask = (ProtobufCBinaryData){.len = filters[i].len, .data = (uint8_t *)filters[i].mask};
        fp[i] = &f[i];
    }
    q.channel = (char *)channel;
    q.cluster = scope == HALO_EVT_CLUSTER;
    q.id = id;
    q.filters = fp;
    q.n_filters = n;
    m.body_case = HALO__LINK__MSG__BODY_EVT_SUBSCRIBE;
    m.evt_subscribe = &q;
    int r = halo__request(h, &m, &q.seq, NULL);
    if (r < 0)
        return r;
    q.seq = 0;
    uint8_t *packed = malloc(halo__link__evt_subscribe__get_packed_size(&q));
    if (!packed)
        return 0; /* subscribed; only a reconnection will not subscribe again */
    size_t len = halo__link__evt_subscribe__pack(&q, packed);
    pthread_mutex_lock(&h->lock);
    struct halo_evt_sub *s;
    LIST_FOREACH (subs, s, &h->evt_subs)
        if (s->id == id) {
            s->packed = packed;
            s->len = len;
            packed = NULL;
        }
    pthread_mutex_unlock(&h->lock);
    free(packed);
    return 0;
}

/* What halod would refuse, refused here with the clearer error. */
static int check_filters(const halo_evt_filter *filters, size_t n) {
    if (n > HALO_EVT_FIELDS_MAX || (n && !filters))
        return -EINVAL;
    for (size_t i = 0; i < n; i++) {
        const halo_evt_filter *f = &filters[i];
        if (f->len > HALO_EVT_FIELD_MAX)
            return -EMSGSIZE;
        if ((unsigned)f->type > HALO_EVT_MASK || (f->len && !f->value) || (f->type == HALO_EVT_PASS_ALL && f->len) ||
            (f->type == HALO_EVT_MASK && (!f->mask || f->len == 0)))
            return -EINVAL;
    }
    return 0;
}

HALO_EXPORT int halo_evt_subscribe(halo *h, const char *channel, halo_evt_scope scope, const halo_evt_filter *filters,
                                   size_t n, halo_evt_cb cb, void *userdata, unsigned *ret_sub) {
    static unsigned next_id; /* ids need only differ per handle */
    struct halo_evt_sub *i;
    size_t count = 0;

    assert_return(h && cb && ret_sub, -EINVAL);
    int r = check_channel(channel, scope);
    if (r >= 0)
        r = check_filters(filters, n);
    if (r < 0)
        return r;
    struct halo_evt_sub *s = calloc(1, sizeof(*s));
    if (!s)
        return -ENOMEM;
    s->cb = cb;
    s->userdata = userdata;
    /* Listed before asking, so that an event arriving right behind the Reply finds it. */
    pthread_mutex_lock(&h->lock);
    LIST_FOREACH (subs, i, &h->evt_subs)
        count++;
    if (count >= HALO_EVT_SUBS_MAX) {
        pthread_mutex_unlock(&h->lock);
        free(s);
        return -ENOSPC;
    }
    do
        s->id = __atomic_add_fetch(&next_id, 1, __ATOMIC_RELAXED);
    while (s->id == 0);
    LIST_PREPEND(subs, &h->evt_subs, s);
    pthread_mutex_unlock(&h->lock);

    r = send_subscribe(h, channel, scope, filters, n, s->id);
    if (r < 0) {
        pthread_mutex_lock(&h->lock);
        LIST_REMOVE(subs, &h->evt_subs, s);
        pthread_mutex_unlock(&h->lock);
        free(s);
        return r;
    }
    *ret_sub = s->id;
    return 0;
}

HALO_EXPORT int halo_evt_unsubscribe(halo *h, unsigned sub) {
    Halo__Link__EvtUnsubscribe u = HALO__LINK__EVT_UNSUBSCRIBE__INIT;
    LinkMsg m = HALO__LINK__MSG__INIT;
    struct halo_evt_sub *i, *found = NULL;

    assert_return(h, -EINVAL);
    pthread_mutex_lock(&h->lock);
    LIST_FOREACH (subs, i, &h->evt_subs)
        if (i->id == sub) {
            found = i;
            LIST_REMOVE(subs, &h->evt_subs, found);
            break;
        }
    pthread_mutex_unlock(&h->lock);
    if (!found)
        return -ENOENT;
    free(found->packed);
    free(found);
    u.id = sub;
    m.body_case = HALO__LINK__MSG__BODY_EVT_UNSUBSCRIBE;
    m.evt_unsubscribe = &u;
    int r = halo__request(h, &m, &u.seq, NULL);
    return r == -ENOENT || r == -HALO_ETRYAGAIN || r == -ENOTCONN ? 0 : r;
}

bool halo__evt_event(halo *h, const Halo__Link__EvtEvent *m) {
    halo_evt_cb cb = NULL;
    void *userdata = NULL;
    struct halo_evt_sub *s;
    halo_evt_field fields[HALO_EVT_FIELDS_MAX];

    pthread_mutex_lock(&h->lock);
    LIST_FOREACH (subs, s, &h->evt_subs)
        if (s->id == m->id) {
            cb = s->cb;
            userdata = s->userdata;
            break;
        }
    pthread_mutex_unlock(&h->lock);
    if (!cb || m->n_pattern > HALO_EVT_FIELDS_MAX) /* unsubscribed meanwhile; link_validate() bounds the rest */
        return false;
    for (size_t i = 0; i < m->n_pattern; i++)
        fields[i] = (halo_evt_field){.data = m->pattern[i].data, .len = m->pattern[i].len};
    halo_evt_event ev = {.subscription = m->id,
                         .channel = m->channel,
                         .pattern = fields,
                         .n_pattern = m->n_pattern,
                         .payload = m->payload.data,
                         .payload_len = m->payload.len,
                         .publisher = m->publisher,
                         .pub_seq = m->pub_seq,
                         .hlc = m->hlc,
                         .lost = m->lost,
                         .retention_ms = m->retention_ms};
    cb(h, &ev, userdata);
    return true;
}

void halo__evt_free(halo *h) {
    struct halo_evt_sub *s;
    while ((s = LIST_POP(subs, &h->evt_subs))) {
        free(s->packed);
        free(s);
    }
}

/* One subscription again on a new link: its channel opened, then the same EvtSubscribe. */
static int evt_resume_one(halo *h, const struct halo_evt_sub *s, const struct timespec *deadline) {
    Halo__Link__EvtSubscribe *q = halo__link__evt_subscribe__unpack(NULL, s->len, s->packed);
    if (!q)
        return -ENOMEM;
    Halo__Link__EvtOpen o = HALO__LINK__EVT_OPEN__INIT;
    LinkMsg m = HALO__LINK__MSG__INIT;
    int e = 0;
    o.channel = q->channel;
    o.cluster = q->cluster;
    m.body_case = HALO__LINK__MSG__BODY_EVT_OPEN;
    m.evt_open = &o;
    int r = halo__request_resume(h, &m, &o.seq, deadline, &e);
    if (r >= 0) {
        m.body_case = HALO__LINK__MSG__BODY_EVT_SUBSCRIBE;
        m.evt_subscribe = q;
        r = halo__request_resume(h, &m, &q->seq, deadline, &e);
    }
    halo__link__evt_subscribe__free_unpacked(q, NULL);
    return r;
}

int halo__evt_resume(halo *h, const struct timespec *deadline) {
    struct halo_evt_sub *s;
    LIST_FOREACH (subs, s, &h->evt_subs) {
        int r = s->packed ? evt_resume_one(h, s, deadline) : 0;
        if (r < 0)
            return r;
    }
    return 0;
}
