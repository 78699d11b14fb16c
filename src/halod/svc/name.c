/* SPDX-License-Identifier: MIT */
/*
 * The name service's registrations (name.h).  Two lists: the cache, every node's registrations
 * as the store holds them (followed: the trackers are told from its changes), and the own list,
 * this node's as this halod wrote them, which decides what a component's end removes: a
 * registration put a moment ago is there before the store's watch brings it back.
 *
 * A removal is two writes: the value again with "gone" (every node's trackers learn why), then
 * the delete.  A key deleted without it went with its node's lease.
 */
#define LOG_AREA LOG_AREA_MAIN
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "keys.h"
#include "log.h"
#include "macro.h"
#include "name-internal.h"
#include "store-follow.h"

/* ---- requests ------------------------------------------------------------------------------ */

void name_req_answer(struct name_req *q, int error) {
    if (q->conn)
        (void)server_conn_reply(q->conn, q->seq, error, NULL);
    if (q->svc)
        LIST_REMOVE(reqs, &q->svc->reqs, q);
    free(q->prefix);
    free(q);
}

static void on_written(store *st, int error, const store_result *r, void *userdata) {
    struct name_req *q = userdata;
    if (q)
        name_req_answer(q, error);
}

/* ---- the own list ------------------------------------------------------------------------------ */

static struct name_reg *own_find(struct name_service *s, const char *context, const char *name, const char *comp) {
    struct name_reg *r;
    LIST_FOREACH (regs, r, &s->own)
        if (streq(r->context, context) && streq(r->name, name) && streq(r->comp, comp))
            return r;
    return NULL;
}

static int put(struct name_service *s, struct name_reg *r, int gone, struct name_req *q) {
    _cleanup_free_ char *v = name_reg_value(r, gone);
    if (!v)
        return -ENOMEM;
    return store_put(s->store, r->key, v, strlen(v), r->lease, q ? on_written : NULL, q);
}

static void own_free(struct name_reg *r) {
    if (r->pending)
        name_req_answer(r->pending, -ECANCELED);
    name_reg_free(r);
}

/* Removes r from the own list and the store; q, if any, is answered after the delete (or with
 * the error that kept it from being sent). */
static int own_remove(struct name_service *s, struct name_reg *r, int reason, struct name_req *q) {
    LIST_REMOVE(regs, &s->own, r);
    int k = 0;
    if (s->cluster && !r->lease && q) /* never written: it waited for a lease */
        name_req_answer(q, 0);
    else if (!s->cluster || r->lease) {
        k = put(s, r, reason, NULL);
        if (k >= 0)
            k = store_delete(s->store, r->key, q ? on_written : NULL, q);
    }
    if (k < 0 && q)
        name_req_answer(q, k);
    if (k < 0)
        log_warning_errno(k, "Failed to remove the name registration '%s': %m", r->key);
    else
        log_debug("Name '%s/%s' of '%s' removed (%s)", r->context, r->name, r->comp,
                  reason == HALO__LINK__NAME_NOTE__REASON__DEREGISTERED ? "deregistered" : "its component ended");
    own_free(r);
    return k;
}

int name_register(struct name_service *s, const Halo__Link__NameEntry *e, const char *comp, pid_t pid,
                  unsigned long long starttime, struct name_req *q) {
    char key[STORE_KEY_MAX];
    /* No lease to bind it to (joining, or fenced): put once this node holds one. */
    int64_t lease = s->cluster ? cluster_lease(s->cluster) : 0;
    if (key_names_reg(key, s->prefix, e->context, e->name, s->node, comp) < 0)
        return -ENAMETOOLONG;
    struct name_reg *r = own_find(s, e->context, e->name, comp), *n = calloc(1, sizeof(*n));
    json_t *attrs = json_array();
    if (!n || !attrs || !(n->key = strdup(key)) || !(n->ref = malloc(e->ref.len + 1))) {
        json_decref(attrs);
        name_reg_free(n);
        return -ENOMEM;
    }
    for (size_t i = 0; i < e->n_attrs; i++)
        json_array_append_new(attrs, json_pack("[s, s]", e->attrs[i]->name, e->attrs[i]->value));
    snprintf(n->context, sizeof(n->context), "%s", e->context);
    snprintf(n->name, sizeof(n->name), "%s", e->name);
    snprintf(n->node, sizeof(n->node), "%s", s->node);
    snprintf(n->comp, sizeof(n->comp), "%s", comp);
    memcpy(n->ref, e->ref.data, e->ref.len);
    n->ref_len = e->ref.len;
    n->attrs = attrs;
    n->priority = e->priority;
    n->pid = pid;
    n->starttime = starttime;
    n->lease = lease;
    int k = 0;
    if (s->cluster && !lease)
        n->pending = q;
    else
        k = put(s, n, 0, q);
    if (k < 0) {
        n->pending = NULL;
        name_reg_free(n);
        return k;
    }
    if (r) {
        LIST_REMOVE(regs, &s->own, r);
        own_free(r);
    }
    LIST_PREPEND(regs, &s->own, n);
    log_debug("Name '%s/%s' registered by '%s' (priority %u)", n->context, n->name, comp, n->priority);
    return 0;
}

int name_deregister(struct name_service *s, const char *comp, const char *context, const char *name, bool all,
                    struct name_req *q) {
    if (!all) {
        struct name_reg *r = own_find(s, context, name, comp);
        if (!r)
            return -ENOENT;
        (void)own_remove(s, r, HALO__LINK__NAME_NOTE__REASON__DEREGISTERED, q);
        return 0;
    }
    struct name_reg *r, *next, *last = NULL;
    LIST_FOREACH (regs, r, &s->own)
        if (streq(r->comp, comp))
            last = r;
    LIST_FOREACH_SAFE (regs, r, next, &s->own)
        if (streq(r->comp, comp))
            (void)own_remove(s, r, HALO__LINK__NAME_NOTE__REASON__DEREGISTERED, r == last ? q : NULL);
    if (!last)
        name_req_answer(q, 0);
    return 0;
}

/* The component ended (failed, terminated, its link closed): its registrations go. */
static void comp_ended(struct name_service *s, const char *comp) {
    struct name_reg *r, *next;
    LIST_FOREACH_SAFE (regs, r, next, &s->own)
        if (streq(r->comp, comp))
            (void)own_remove(s, r, HALO__LINK__NAME_NOTE__REASON__COMPONENT_FAILED, NULL);
}

static void on_comp_event(void *userdata, struct comp *c, enum amf_comp_event ev, const char *reason) {
    struct name_service *s = userdata;
    if ((ev == AMF_COMP_FAILED || ev == AMF_COMP_EXITED) && c->su->local)
        comp_ended(s, c->name);
}

static void on_refresh(uv_timer_t *t) {
    name_entry_refresh(t->data);
}

/* The entrypoint trackers are told after the AMF's turn, not from inside it: a note that fails
 * closes its connection, which the AMF hears of. */
static void refresh_later(struct name_service *s) {
    struct name_track *t;
    LIST_FOREACH (tracks, t, &s->tracks)
        if (streq(t->context, HALO_NAME_CONTEXT_ENTRYPOINT)) {
            uv_timer_start(s->refresh, on_refresh, 0, 0);
            return;
        }
}

static void on_si_changed(void *userdata, struct si *si) {
    refresh_later(userdata);
}

static void on_sg_changed(void *userdata, struct sg *sg) {
    refresh_later(userdata);
}

static void on_su_event(void *userdata, struct su *su, enum amf_su_event ev) {
    refresh_later(userdata);
}

/* Its own node's records come as si_changed, another node's mirrored as assignment_changed; a
 * dead node's units' roles go with their state (su_event) or the model's next look (sg_changed). */
static const struct amf_observer observer = {.comp_event = on_comp_event,
                                             .si_changed = on_si_changed,
                                             .assignment_changed = on_si_changed,
                                             .sg_changed = on_sg_changed,
                                             .su_event = on_su_event};

void name_service_joined(struct name_service *s) {
    int64_t lease = s ? cluster_lease(s->cluster) : 0;
    struct name_reg *r;
    if (!lease)
        return;
    LIST_FOREACH (regs, r, &s->own) {
        if (r->lease == lease)
            continue;
        r->lease = lease;
        struct name_req *q = TAKE_PTR(r->pending);
        int k = put(s, r, 0, q);
        if (k < 0 && q)
            name_req_answer(q, k);
        if (k < 0)
            log_warning_errno(k, "Failed to put the name registration '%s' under the new lease: %m", r->key);
    }
}

/* ---- the cache, followed ------------------------------------------------------------------------ */

static struct name_reg *cache_find(struct name_service *s, const char *key, size_t len) {
    struct name_reg *r;
    LIST_FOREACH (regs, r, &s->cache)
        if (strlen(r->key) == len && memcmp(r->key, key, len) == 0)
            return r;
    return NULL;
}

/* Whether a registration a previous halod of this node left belongs to a process that still
 * runs for its component (adopted): the same pid and, when both are known, start time. */
static bool survives(struct name_service *s, const struct name_reg *r) {
    struct comp *c = amf_find_comp(s->amf, r->comp);
    if (!c || !c->su->local || c->pid <= 0 || c->pid != r->pid)
        return false;
    unsigned long long st = amf_comp_starttime(c);
    return !st || !r->starttime || st == r->starttime;
}

/* The first read: this node's registrations are this halod's own if their process survived,
 * else they are stale (a previous halod's, of a component that did not outlive it). */
static void sweep(struct name_service *s) {
    struct name_reg *r;
    LIST_FOREACH (regs, r, &s->cache) {
        if (r->gone || !streq(r->node, s->node) || own_find(s, r->context, r->name, r->comp))
            continue;
        struct name_reg *o = calloc(1, sizeof(*o));
        if (!o || !(o->key = strdup(r->key)) || !(o->ref = malloc(r->ref_len + 1))) {
            name_reg_free(o);
            log_error("Out of memory: this node's name registrations were not all checked");
            return;
        }
        memcpy(o->ref, r->ref, r->ref_len);
        o->ref_len = r->ref_len;
        o->attrs = json_incref(r->attrs);
        memcpy(o->context, r->context, sizeof(o->context));
        memcpy(o->name, r->name, sizeof(o->name));
        memcpy(o->node, r->node, sizeof(o->node));
        memcpy(o->comp, r->comp, sizeof(o->comp));
        o->priority = r->priority;
        o->pid = r->pid;
        o->starttime = r->starttime;
        o->lease = r->lease;
        LIST_PREPEND(regs, &s->own, o);
        if (survives(s, r))
            log_info("Name '%s/%s' of '%s' kept: its process %d was adopted", r->context, r->name, r->comp,
                     (int)r->pid);
        else {
            log_info("Name '%s/%s' of '%s' removed: its process %d did not survive halod", r->context, r->name, r->comp,
                     (int)r->pid);
            (void)own_remove(s, o, HALO__LINK__NAME_NOTE__REASON__COMPONENT_FAILED, NULL);
        }
    }
    if (s->cluster)
        name_service_joined(s); /* a lease taken anew meanwhile */
}

static void cache_put(struct name_service *s, struct name_reg *n) {
    struct name_reg *o = cache_find(s, n->key, strlen(n->key));
    if (n->gone) {
        if (o && !o->gone)
            name_notify(s, HALO__LINK__NAME_NOTE__CHANGE__REMOVED, n->gone, n);
    } else
        name_notify(s, HALO__LINK__NAME_NOTE__CHANGE__ADDED, HALO__LINK__NAME_NOTE__REASON__REGISTERED, n);
    if (o) {
        LIST_REMOVE(regs, &s->cache, o);
        name_reg_free(o);
    }
    LIST_PREPEND(regs, &s->cache, n);
}

static void cache_delete(struct name_service *s, const char *key, size_t len) {
    struct name_reg *o = cache_find(s, key, len);
    if (!o)
        return;
    LIST_REMOVE(regs, &s->cache, o);
    if (!o->gone) /* no halod said why: its lease ended */
        name_notify(s, HALO__LINK__NAME_NOTE__CHANGE__REMOVED, HALO__LINK__NAME_NOTE__REASON__NODE_LEFT, o);
    name_reg_free(o);
}

static void on_loaded(struct store_follow *f, const store_result *res, void *userdata) {
    struct name_service *s = userdata;
    struct name_reg *r, *next;
    /* Read anew (the first time, or the watch fell behind): what went meanwhile is told as gone. */
    LIST_FOREACH_SAFE (regs, r, next, &s->cache) {
        bool still = false;
        for (size_t i = 0; i < res->n_kvs && !still; i++)
            still = res->kvs[i].key_len == strlen(r->key) && memcmp(res->kvs[i].key, r->key, strlen(r->key)) == 0;
        if (!still)
            cache_delete(s, r->key, strlen(r->key));
    }
    for (size_t i = 0; i < res->n_kvs; i++) {
        struct name_reg *n = NULL;
        if (name_reg_parse(s->prefix, &res->kvs[i], &n) < 0) {
            log_warning("Ignoring the malformed name registration '%.*s'", (int)res->kvs[i].key_len, res->kvs[i].key);
            continue;
        }
        struct name_reg *o = cache_find(s, n->key, strlen(n->key));
        if (o && o->create_revision == n->create_revision && o->gone == n->gone) {
            name_reg_free(n); /* unchanged as far as a tracker can tell */
            continue;
        }
        cache_put(s, n);
    }
    if (!s->loaded) {
        s->loaded = true;
        sweep(s);
    }
}

static void on_changed(struct store_follow *f, const store_event *ev, size_t n_ev, void *userdata) {
    struct name_service *s = userdata;
    for (size_t i = 0; i < n_ev; i++) {
        if (ev[i].type == STORE_EVENT_DELETE) {
            cache_delete(s, ev[i].kv.key, ev[i].kv.key_len);
            continue;
        }
        struct name_reg *n = NULL;
        if (name_reg_parse(s->prefix, &ev[i].kv, &n) < 0)
            log_warning("Ignoring the malformed name registration '%.*s'", (int)ev[i].kv.key_len, ev[i].kv.key);
        else
            cache_put(s, n);
    }
}

static const struct store_follow_ops follow_ops = {.loaded = on_loaded, .changed = on_changed};

int name_service_start(struct name_service *s) {
    char dir[STORE_KEY_MAX];
    if (!s)
        return 0;
    if (key_dir(dir, s->prefix, KEY_NAMES) < 0)
        return -ENAMETOOLONG;
    struct store_follow_params p = {.prefix = dir};
    return store_follow(s->store, &p, &follow_ops, s, &s->follow);
}

/* ---- life ---------------------------------------------------------------------------------------- */

int name_service_new(const struct name_params *p, struct name_service **ret) {
    struct name_service *s = calloc(1, sizeof(*s));
    if (!s)
        return -ENOMEM;
    *s = (struct name_service){
        .loop = p->loop, .store = p->store, .amf = p->amf, .cluster = p->cluster, .prefix = strdup(p->prefix)};
    s->node = strdup(p->node);
    s->refresh = malloc(sizeof(*s->refresh));
    int r = s->prefix && s->node && s->refresh ? amf_observe(p->amf, &observer, s) : -ENOMEM;
    if (r < 0) {
        free(s->refresh);
        free(s->prefix);
        free(s->node);
        free(s);
        return r;
    }
    uv_timer_init(s->loop, s->refresh);
    s->refresh->data = s;
    *ret = s;
    return 0;
}

static void on_refresh_closed(uv_handle_t *h) {
    free(h);
}

struct name_service *name_service_free(struct name_service *s) {
    struct name_reg *r;
    struct name_req *q;
    struct name_track *t;
    if (!s)
        return NULL;
    amf_unobserve(s->amf, &observer, s);
    uv_close((uv_handle_t *)s->refresh, on_refresh_closed); /* freed once the loop runs */
    s->follow = store_follow_free(s->follow);
    while ((r = LIST_POP(regs, &s->cache)))
        name_reg_free(r);
    while ((r = LIST_POP(regs, &s->own)))
        own_free(r);
    /* Writes still in flight end with their callbacks (store_free() runs them): detach them. */
    while ((q = LIST_POP(reqs, &s->reqs))) {
        q->conn = NULL;
        q->svc = NULL;
    }
    while ((t = LIST_POP(tracks, &s->tracks)))
        name_track_free(t);
    free(s->prefix);
    free(s->node);
    free(s);
    return NULL;
}
