/* SPDX-License-Identifier: MIT */
/*
 * libhalo's AMF calls (the contract is include/halo/halo.h): register, answer
 * invocations, health checks, error reports, protection-group tracks, object
 * states, process events, the entry point and HA states.
 *
 * The component-invoked health checks and the tracks with CHANGES are kept in
 * the handle, so that halo-link.c can start them again on a new link; what
 * halod commits to is applied to those lists when its Reply is read (the
 * commit_* functions), in the order the Replies arrived.
 */
#include "halo/halo.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "halo-internal.h"
#include "macro.h"

/* ---- arguments ----------------------------------------------------------- */

/* A name sent to halod: what link_validate() accepts, with errors a caller can act on. */
static int check_name(const char *s) {
    if (!s || !*s)
        return -EINVAL;
    size_t n = strnlen(s, LINK_NAME_MAX + 1);
    if (n > LINK_NAME_MAX)
        return -ENAMETOOLONG;
    for (size_t i = 0; i < n; i++)
        if ((unsigned char)s[i] < 0x20 || s[i] == 0x7f)
            return -EINVAL;
    return 0;
}

/* A component argument: NULL (the registered component) or a name. */
static int check_comp(const char *comp) {
    return comp ? check_name(comp) : 0;
}

static bool recovery_valid(halo_recovery r) {
    return r >= HALO_RECOVERY_NONE && r <= HALO_RECOVERY_NODE_FAILFAST;
}

/* Copies a string known to be NUL-terminated, truncated to size - 1 bytes. */
static void copy_string(char *d, size_t size, const char *s) {
    size_t n = strnlen(s, size - 1);
    memcpy(d, s, n);
    d[n] = '\0';
}

/* Every field written: the states of a note are delivered straight from malloc(). */
void halo__amf_object_state_copy(halo_object_state *d, const Halo__Link__ObjectState *s) {
    copy_string(d->object, sizeof(d->object), s->object);
    copy_string(d->state, sizeof(d->state), s->state);
    d->hlc = s->hlc;
    d->seq = s->seq;
}

/* ---- what the handle keeps of the component ------------------------------ */

static struct hc *hc_free(struct hc *e) {
    if (e) {
        free(e->comp);
        free(e->key);
        free(e);
    }
    return NULL;
}
DEFINE_TRIVIAL_CLEANUP_FUNC(struct hc *, hc_free);

/* The registered component forgot its checks and tracks. */
void halo__amf_tracked_clear(halo *h) {
    struct hc *c;
    struct pg *g;
    struct proxied *p;

    while ((c = LIST_POP(hcs, &h->hcs)))
        hc_free(c);
    while ((g = LIST_POP(pgs, &h->pgs)))
        free(g);
    while ((p = LIST_POP(proxied, &h->proxied)))
        free(p);
}

/*
 * Queues a pg_track callback with error for a group halod refused to track
 * again: the documented way to say "no more notes for this group".  The
 * message goes through the codec, so that it is freed like any other.
 */
static void queue_pg_error(halo *h, const char *csi, int error) {
    Halo__Link__PgTrackNotify pn = HALO__LINK__PG_TRACK_NOTIFY__INIT;
    LinkMsg m = HALO__LINK__MSG__INIT;
    uint8_t buf[LINK_NAME_MAX + 64];
    LinkMsg *copy = NULL;

    pn.csi = (char *)csi;
    pn.error = error;
    m.body_case = HALO__LINK__MSG__BODY_PG_TRACK_NOTIFY;
    m.pg_track_notify = &pn;
    int n = link_encode(&m, buf, sizeof(buf));
    if (n < 0 || link_decode(buf, (size_t)n, &copy) < 0)
        return;
    struct queued *q = malloc(sizeof(*q));
    if (!q) {
        link_msg_free(copy);
        return;
    }
    halo__dispatch_push(h, q, copy);
}

/* Sends m (seq: its seq field) on the new link; *ret_refused is halod's error, if any ("already" is none). */
static int resume_one(halo *h, LinkMsg *m, uint64_t *seq, const struct timespec *deadline, int *ret_refused) {
    int e = 0, r = halo__request_resume(h, m, seq, deadline, &e);
    if (r >= 0)
        *ret_refused = e == -HALO_EEXIST ? 0 : e;
    return r;
}

int halo__amf_resume(halo *h, const struct timespec *deadline) {
    LinkMsg m = HALO__LINK__MSG__INIT;
    struct proxied *p;
    struct hc *c;
    struct pg *g;
    int r, e = 0;

    /* The proxied components first: their health checks name them. */
    LIST_FOREACH (proxied, p, &h->proxied) {
        Halo__Link__Register reg = HALO__LINK__REGISTER__INIT;
        reg.comp = p->comp;
        reg.proxy = h->comp;
        reg.resume = true;
        m.body_case = HALO__LINK__MSG__BODY_REGISTER;
        m.register_ = &reg;
        r = resume_one(h, &m, &reg.seq, deadline, &p->refused);
        if (r < 0)
            return r;
    }

    LIST_FOREACH (hcs, c, &h->hcs) {
        Halo__Link__HealthcheckStart hc = HALO__LINK__HEALTHCHECK_START__INIT;
        hc.comp = c->comp ? c->comp : h->comp;
        hc.key = c->key;
        hc.invoked = c->invoked;
        hc.recovery = c->recovery;
        m.body_case = HALO__LINK__MSG__BODY_HC_START;
        m.hc_start = &hc;
        r = resume_one(h, &m, &hc.seq, deadline, &c->refused);
        if (r < 0)
            return r;
    }

    LIST_FOREACH (pgs, g, &h->pgs) {
        Halo__Link__PgTrack pt = HALO__LINK__PG_TRACK__INIT;
        pt.csi = g->csi;
        pt.flags = g->flags;
        m.body_case = HALO__LINK__MSG__BODY_PG_TRACK;
        m.pg_track = &pt;
        r = halo__request_resume(h, &m, &pt.seq, deadline, &e);
        if (r < 0)
            return r;
        g->refused = e;
    }
    return 0;
}

void halo__amf_resume_done(halo *h) {
    struct proxied *p, *pn;
    struct hc *c, *cn;
    struct pg *g, *gn;

    /* A proxied component halod did not adopt: it asks the proxy to instantiate it again, or to clean it up. */
    LIST_FOREACH_SAFE (proxied, p, pn, &h->proxied)
        if (p->refused < 0) {
            LIST_REMOVE(proxied, &h->proxied, p);
            free(p);
        }

    /* A check halod will not run: the next halo_healthcheck_confirm() says why. */
    LIST_FOREACH_SAFE (hcs, c, cn, &h->hcs)
        if (c->refused < 0) {
            LIST_REMOVE(hcs, &h->hcs, c);
            hc_free(c);
        }
    /* A group halod will not track: the pg_track callback says so with the error. */
    LIST_FOREACH_SAFE (pgs, g, gn, &h->pgs)
        if (g->refused < 0) {
            queue_pg_error(h, g->csi, g->refused);
            LIST_REMOVE(pgs, &h->pgs, g);
            free(g);
        }
}

/* ---- the calls ----------------------------------------------------------- */

static void commit_register(halo *h, int error, const Halo__Link__Reply *reply, void *arg) {
    char **comp = arg;
    if (error == 0 && !h->comp)
        h->comp = TAKE_PTR(*comp);
}

/* Forgets proxied component comp, if the handle registered it.  Lock held. */
static void proxied_forget(halo *h, const char *comp) {
    struct proxied *p;
    LIST_FOREACH (proxied, p, &h->proxied)
        if (streq(p->comp, comp)) {
            LIST_REMOVE(proxied, &h->proxied, p);
            free(p);
            return;
        }
}

static void commit_register_proxied(halo *h, int error, const Halo__Link__Reply *reply, void *arg) {
    struct proxied **p = arg;
    if (error != 0)
        return;
    proxied_forget(h, (*p)->comp); /* registered again: one entry */
    LIST_PREPEND(proxied, &h->proxied, *p);
    *p = NULL; /* the list owns it */
}

/* A proxy registers one of its proxied components: the handle's own component stays what it is.  The handle
 * keeps its name, to register it again after a reconnection. */
static int register_proxied(halo *h, const char *comp, const char *proxy) {
    Halo__Link__Register reg = HALO__LINK__REGISTER__INIT;
    LinkMsg m = HALO__LINK__MSG__INIT;
    _cleanup_free_ struct proxied *p = NULL;
    int r;

    r = check_name(comp);
    if (r < 0)
        return r;
    r = check_name(proxy);
    if (r < 0)
        return r;
    p = calloc(1, sizeof(*p) + strlen(comp) + 1);
    if (!p)
        return -ENOMEM;
    strcpy(p->comp, comp);
    reg.comp = (char *)comp;
    reg.proxy = (char *)proxy;
    m.body_case = HALO__LINK__MSG__BODY_REGISTER;
    m.register_ = &reg;
    return halo__request_full(h, &m, &reg.seq, NULL, commit_register_proxied, &p, NULL);
}

HALO_EXPORT int halo_proxy_set_callbacks(halo *h, halo_proxied_cb instantiate, halo_proxied_cb cleanup) {
    assert_return(h && instantiate, -EINVAL);
    pthread_mutex_lock(&h->lock);
    h->proxied_instantiate = instantiate;
    h->proxied_cleanup = cleanup;
    pthread_mutex_unlock(&h->lock);
    return 0;
}

HALO_EXPORT int halo_register(halo *h, const char *comp, const char *proxy) {
    Halo__Link__Register reg = HALO__LINK__REGISTER__INIT;
    LinkMsg m = HALO__LINK__MSG__INIT;
    int r;

    assert_return(h, -EINVAL);
    assert_return(h->cb.csi_set && h->cb.terminate, -EINVAL);
    if (proxy)
        return register_proxied(h, comp, proxy);
    if (!comp)
        comp = getenv("HALO_COMPONENT");
    r = check_name(comp);
    if (r < 0)
        return r;

    _cleanup_free_ char *copy = strdup(comp);
    if (!copy)
        return -ENOMEM;

    pthread_mutex_lock(&h->lock);
    bool registered = h->comp != NULL;
    pthread_mutex_unlock(&h->lock);
    if (registered)
        return -HALO_EEXIST;

    reg.comp = (char *)comp;
    reg.object_states = h->cb.object_states != NULL;
    m.body_case = HALO__LINK__MSG__BODY_REGISTER;
    m.register_ = &reg;
    /* The name is the handle's from the moment halod accepts it: a link lost
     * right after is then reconnected. */
    return halo__request_full(h, &m, &reg.seq, NULL, commit_register, &copy, NULL);
}

static void commit_unregister(halo *h, int error, const Halo__Link__Reply *reply, void *arg) {
    const char *comp = arg;
    if (error == 0 && h->comp && (!comp || streq(comp, h->comp))) {
        free(h->comp);
        h->comp = NULL;
        halo__amf_tracked_clear(h);
    } else if (error == 0 && comp)
        proxied_forget(h, comp);
}

HALO_EXPORT int halo_unregister(halo *h, const char *comp) {
    Halo__Link__Unregister unreg = HALO__LINK__UNREGISTER__INIT;
    LinkMsg m = HALO__LINK__MSG__INIT;
    int r;

    assert_return(h, -EINVAL);
    r = check_comp(comp);
    if (r < 0)
        return r;
    unreg.comp = (char *)comp;
    m.body_case = HALO__LINK__MSG__BODY_UNREGISTER;
    m.unregister = &unreg;
    return halo__request_full(h, &m, &unreg.seq, &unreg.comp, commit_unregister, (void *)comp, NULL);
}

static int respond(halo *h, halo_invocation inv, int error, bool quiescing_complete) {
    Halo__Link__Response resp = HALO__LINK__RESPONSE__INIT;
    LinkMsg m = HALO__LINK__MSG__INIT;

    assert_return(h, -EINVAL);
    assert_return(inv != 0, -EINVAL);
    assert_return(error <= 0, -EINVAL);
    resp.invocation = inv;
    resp.error = error;
    resp.quiescing_complete = quiescing_complete;
    m.body_case = HALO__LINK__MSG__BODY_RESPONSE;
    m.response = &resp;
    return halo__request_full(h, &m, &resp.seq, NULL, NULL, NULL, NULL);
}

HALO_EXPORT int halo_response(halo *h, halo_invocation inv, int error) {
    return respond(h, inv, error, false);
}

HALO_EXPORT int halo_quiescing_complete(halo *h, halo_invocation inv, int error) {
    return respond(h, inv, error, true);
}

/* Checks an optional component name and a health-check key (NULL: "default"). */
static int check_comp_key(const char *comp, const char **key) {
    int r;
    r = check_comp(comp);
    if (r < 0)
        return r;
    if (!*key)
        *key = "default";
    return check_name(*key);
}

/* Whether a kept check is the one comp (NULL: the registered component) and key name. */
static bool hc_is(halo *h, const struct hc *c, const char *comp, const char *key) {
    const char *a = c->comp ? c->comp : h->comp, *b = comp ? comp : h->comp;
    return a && b && streq(a, b) && streq(c->key, key);
}

static void commit_hc_start(halo *h, int error, const Halo__Link__Reply *reply, void *arg) {
    struct hc **c = arg, *i;
    if (error != 0)
        return;
    LIST_FOREACH (hcs, i, &h->hcs)
        if (hc_is(h, i, (*c)->comp, (*c)->key)) {
            i->recovery = (*c)->recovery;
            return;
        }
    LIST_PREPEND(hcs, &h->hcs, *c);
    *c = NULL; /* the list owns it */
}

HALO_EXPORT int halo_healthcheck_start(halo *h, const char *comp, const char *key, halo_hc_invoked invoked,
                                       halo_recovery recommended) {
    Halo__Link__HealthcheckStart hc = HALO__LINK__HEALTHCHECK_START__INIT;
    LinkMsg m = HALO__LINK__MSG__INIT;
    _cleanup_(hc_freep) struct hc *c = NULL;
    int r;

    assert_return(h, -EINVAL);
    assert_return(invoked == HALO_HC_AMF_INVOKED || invoked == HALO_HC_COMPONENT_INVOKED, -EINVAL);
    assert_return(recovery_valid(recommended), -EINVAL);
    r = check_comp_key(comp, &key);
    if (r < 0)
        return r;
    /* Kept to start it again after a reconnection: a restarted halod knows
     * nothing of the checks its predecessor ran. */
    c = calloc(1, sizeof(*c));
    if (!c)
        return -ENOMEM;
    c->key = strdup(key);
    c->comp = comp ? strdup(comp) : NULL;
    if (!c->key || (comp && !c->comp))
        return -ENOMEM;
    c->invoked = invoked;
    c->recovery = recommended;
    hc.comp = (char *)comp;
    hc.key = (char *)key;
    hc.invoked = invoked;
    hc.recovery = recommended;
    m.body_case = HALO__LINK__MSG__BODY_HC_START;
    m.hc_start = &hc;
    return halo__request_full(h, &m, &hc.seq, &hc.comp, commit_hc_start, &c, NULL);
}

HALO_EXPORT int halo_healthcheck_confirm(halo *h, const char *comp, const char *key, int result) {
    Halo__Link__HealthcheckConfirm hc = HALO__LINK__HEALTHCHECK_CONFIRM__INIT;
    LinkMsg m = HALO__LINK__MSG__INIT;
    int r;

    assert_return(h, -EINVAL);
    assert_return(result <= 0, -EINVAL);
    r = check_comp_key(comp, &key);
    if (r < 0)
        return r;
    hc.comp = (char *)comp;
    hc.key = (char *)key;
    hc.result = result;
    m.body_case = HALO__LINK__MSG__BODY_HC_CONFIRM;
    m.hc_confirm = &hc;
    return halo__request_full(h, &m, &hc.seq, &hc.comp, NULL, NULL, NULL);
}

/* The check a halo_healthcheck_stop() names, as the caller gave it. */
struct hc_name {
    const char *comp, *key;
};

static void commit_hc_stop(halo *h, int error, const Halo__Link__Reply *reply, void *arg) {
    const struct hc_name *n = arg;
    struct hc *c;
    if (error != 0 && error != -ENOENT)
        return;
    LIST_FOREACH (hcs, c, &h->hcs)
        if (hc_is(h, c, n->comp, n->key)) {
            LIST_REMOVE(hcs, &h->hcs, c);
            hc_free(c);
            return;
        }
}

HALO_EXPORT int halo_healthcheck_stop(halo *h, const char *comp, const char *key) {
    Halo__Link__HealthcheckStop hc = HALO__LINK__HEALTHCHECK_STOP__INIT;
    LinkMsg m = HALO__LINK__MSG__INIT;
    int r;

    assert_return(h, -EINVAL);
    r = check_comp_key(comp, &key);
    if (r < 0)
        return r;
    struct hc_name name = {.comp = comp, .key = key};
    hc.comp = (char *)comp;
    hc.key = (char *)key;
    m.body_case = HALO__LINK__MSG__BODY_HC_STOP;
    m.hc_stop = &hc;
    return halo__request_full(h, &m, &hc.seq, &hc.comp, commit_hc_stop, &name, NULL);
}

HALO_EXPORT int halo_error_report(halo *h, const char *comp, halo_recovery recommended) {
    Halo__Link__ErrorReport er = HALO__LINK__ERROR_REPORT__INIT;
    LinkMsg m = HALO__LINK__MSG__INIT;
    int r;

    assert_return(h, -EINVAL);
    assert_return(recovery_valid(recommended), -EINVAL);
    r = check_comp(comp);
    if (r < 0)
        return r;
    er.comp = (char *)comp;
    er.recovery = recommended;
    m.body_case = HALO__LINK__MSG__BODY_ERROR_REPORT;
    m.error_report = &er;
    return halo__request_full(h, &m, &er.seq, &er.comp, NULL, NULL, NULL);
}

static void commit_pg_track(halo *h, int error, const Halo__Link__Reply *reply, void *arg) {
    struct pg **g = arg, *i;
    if (error != 0)
        return;
    LIST_FOREACH (pgs, i, &h->pgs)
        if (streq(i->csi, (*g)->csi)) {
            i->flags = (*g)->flags;
            return;
        }
    LIST_PREPEND(pgs, &h->pgs, *g);
    *g = NULL; /* the list owns it */
}

HALO_EXPORT int halo_pg_track(halo *h, const char *csi_name, unsigned flags) {
    Halo__Link__PgTrack pt = HALO__LINK__PG_TRACK__INIT;
    LinkMsg m = HALO__LINK__MSG__INIT;
    const unsigned known = HALO_TRACK_CURRENT | HALO_TRACK_CHANGES | HALO_TRACK_CHANGES_ONLY;
    _cleanup_free_ struct pg *g = NULL;
    int r;

    assert_return(h, -EINVAL);
    assert_return(h->cb.pg_track, -EINVAL);
    assert_return(flags != 0 && !(flags & ~known), -EINVAL);
    assert_return(!((flags & HALO_TRACK_CHANGES) && (flags & HALO_TRACK_CHANGES_ONLY)), -EINVAL);
    r = check_name(csi_name);
    if (r < 0)
        return r;
    if (flags & (HALO_TRACK_CHANGES | HALO_TRACK_CHANGES_ONLY)) {
        /* Kept to track it again after a reconnection; CURRENT alone is done once answered. */
        size_t n = strlen(csi_name);
        g = malloc(sizeof(*g) + n + 1);
        if (!g)
            return -ENOMEM;
        g->flags = flags;
        memcpy(g->csi, csi_name, n + 1);
    }
    pt.csi = (char *)csi_name;
    pt.flags = flags;
    m.body_case = HALO__LINK__MSG__BODY_PG_TRACK;
    m.pg_track = &pt;
    return halo__request_full(h, &m, &pt.seq, NULL, g ? commit_pg_track : NULL, &g, NULL);
}

static void commit_pg_track_stop(halo *h, int error, const Halo__Link__Reply *reply, void *arg) {
    const char *csi = arg;
    struct pg *g;
    if (error != 0 && error != -ENOENT)
        return;
    LIST_FOREACH (pgs, g, &h->pgs)
        if (streq(g->csi, csi)) {
            LIST_REMOVE(pgs, &h->pgs, g);
            free(g);
            return;
        }
}

HALO_EXPORT int halo_pg_track_stop(halo *h, const char *csi_name) {
    Halo__Link__PgTrackStop ps = HALO__LINK__PG_TRACK_STOP__INIT;
    LinkMsg m = HALO__LINK__MSG__INIT;
    int r;

    assert_return(h, -EINVAL);
    r = check_name(csi_name);
    if (r < 0)
        return r;
    ps.csi = (char *)csi_name;
    m.body_case = HALO__LINK__MSG__BODY_PG_TRACK_STOP;
    m.pg_track_stop = &ps;
    return halo__request_full(h, &m, &ps.seq, NULL, commit_pg_track_stop, (void *)csi_name, NULL);
}

HALO_EXPORT int halo_object_state_get(halo *h, const char *const *objects, size_t n, halo_object_state *ret_states) {
    Halo__Link__ObjectStateGet g = HALO__LINK__OBJECT_STATE_GET__INIT;
    LinkMsg m = HALO__LINK__MSG__INIT;
    LinkMsg *reply = NULL;

    assert_return(h, -EINVAL);
    assert_return(objects && ret_states && n >= 1 && n <= LINK_OBJECTS_MAX, -EINVAL);
    for (size_t i = 0; i < n; i++)
        if (!objects[i] || !*objects[i] || strlen(objects[i]) >= HALO_OBJECT_MAX || !strchr(objects[i], ':') ||
            strchr(objects[i], '/'))
            return -EINVAL;
    g.objects = (char **)objects;
    g.n_objects = n;
    m.body_case = HALO__LINK__MSG__BODY_OBJECT_STATE_GET;
    m.object_state_get = &g;
    int r = halo__request_full(h, &m, &g.seq, NULL, NULL, NULL, &reply);
    if (r < 0)
        return r;
    for (size_t i = 0; i < n; i++) {
        memset(&ret_states[i], 0, sizeof(ret_states[i]));
        snprintf(ret_states[i].object, sizeof(ret_states[i].object), "%s", objects[i]);
        /* halod answers in the order asked; trust nothing it did not say. */
        if (i < reply->reply->n_states && streq(reply->reply->states[i]->object, objects[i]))
            halo__amf_object_state_copy(&ret_states[i], reply->reply->states[i]);
    }
    link_msg_free(reply);
    return 0;
}

struct retry_hint {
    unsigned msec;
};

static void commit_retry_hint(halo *h, int error, const Halo__Link__Reply *reply, void *arg) {
    ((struct retry_hint *)arg)->msec = reply->retry_msec;
}

/* A request whose Reply carries only its error. */
static int request_ack(halo *h, LinkMsg *m, uint64_t *seq) {
    LinkMsg *reply = NULL;
    int r = halo__request_full(h, m, seq, NULL, NULL, NULL, &reply);
    if (r < 0)
        return r;
    link_msg_free(reply);
    return 0;
}

HALO_EXPORT int halo_process_event(halo *h, halo_lifecycle event, const char *reason) {
    Halo__Link__ProcessEvent e = HALO__LINK__PROCESS_EVENT__INIT;
    LinkMsg m = HALO__LINK__MSG__INIT;

    assert_return(h, -EINVAL);
    assert_return(event >= HALO_PROCESS_STARTING && event <= HALO_PROCESS_RECOVERY_FAILED, -EINVAL);
    assert_return(!reason || strlen(reason) <= LINK_REASON_MAX, -EINVAL);
    e.event = (Halo__Link__ProcessEvent__Event)event;
    e.reason = (char *)(reason ? reason : "");
    m.body_case = HALO__LINK__MSG__BODY_PROCESS_EVENT;
    m.process_event = &e;
    return request_ack(h, &m, &e.seq);
}

HALO_EXPORT int halo_recovery_participant_done(halo *h, const char *process, uint64_t seq) {
    Halo__Link__ParticipantDone d = HALO__LINK__PARTICIPANT_DONE__INIT;
    LinkMsg m = HALO__LINK__MSG__INIT;

    assert_return(h && process, -EINVAL);
    assert_return(*process && strlen(process) <= LINK_OBJECT_MAX && strchr(process, ':'), -EINVAL);
    d.process = (char *)process;
    d.attempt = seq;
    m.body_case = HALO__LINK__MSG__BODY_PARTICIPANT_DONE;
    m.participant_done = &d;
    return request_ack(h, &m, &d.seq);
}

HALO_EXPORT int halo_entrypoint(halo *h, char **ret_json, unsigned *ret_retry_msec) {
    Halo__Link__EntrypointGet g = HALO__LINK__ENTRYPOINT_GET__INIT;
    LinkMsg m = HALO__LINK__MSG__INIT;
    LinkMsg *reply = NULL;

    assert_return(h && ret_json, -EINVAL);
    m.body_case = HALO__LINK__MSG__BODY_ENTRYPOINT_GET;
    m.entrypoint_get = &g;
    /* halo__request_full() returns the Reply only on success: read the hint through commit. */
    struct retry_hint hint = {0};
    int r = halo__request_full(h, &m, &g.seq, NULL, commit_retry_hint, &hint, &reply);
    if (ret_retry_msec)
        *ret_retry_msec = hint.msec;
    if (r < 0)
        return r;
    *ret_json = strdup(reply->reply->json);
    link_msg_free(reply);
    return *ret_json ? 0 : -ENOMEM;
}

HALO_EXPORT int halo_ha_state_get(halo *h, const char *comp, const char *csi_name, halo_ha_state *ret_state) {
    Halo__Link__HaStateGet g = HALO__LINK__HA_STATE_GET__INIT;
    LinkMsg m = HALO__LINK__MSG__INIT;
    LinkMsg *reply = NULL;
    int r;

    assert_return(h, -EINVAL);
    assert_return(ret_state, -EINVAL);
    r = check_comp(comp);
    if (r < 0)
        return r;
    r = check_name(csi_name);
    if (r < 0)
        return r;
    g.comp = (char *)comp;
    g.csi = (char *)csi_name;
    m.body_case = HALO__LINK__MSG__BODY_HA_STATE_GET;
    m.ha_state_get = &g;
    r = halo__request_full(h, &m, &g.seq, &g.comp, NULL, NULL, &reply);
    if (r < 0)
        return r;

    uint32_t s = reply->reply->ha_state;
    link_msg_free(reply);
    if (s < HALO_HA_ACTIVE || s > HALO_HA_QUIESCING)
        return -HALO_EPROTO;
    *ret_state = (halo_ha_state)s;
    return 0;
}
