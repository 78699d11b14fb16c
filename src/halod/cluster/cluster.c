/* SPDX-License-Identifier: MIT */
/*
 * Membership, coordinator election and self-fencing (see cluster.h).
 *
 * The fence deadline is computed from the moment the last successful
 * keepalive was *sent*: etcd starts the lease's new TTL when it receives the
 * request, which is later, so the lease cannot expire in etcd before
 * sent + TTL.  We fence CLUSTER_FENCE_MARGIN before that.  After a fence the
 * node never reuses its lease: it revokes it (if etcd answers) and joins anew,
 * so every other node sees it leave and come back.
 */
#define LOG_AREA LOG_AREA_CLUSTER
#include "cluster.h"

#include <errno.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "keys.h"
#include "log.h"
#include "macro.h"
#include "store-follow.h"
#include "time-util.h"

#define CLUSTER_RETRY_MSEC 100
#define CLUSTER_FENCE_MARGIN_USEC (250 * USEC_PER_MSEC)
/* How long a fence waits for the processes it killed before it gives up the
 * lease anyway (a process stuck in the kernel); the lease ends by itself by
 * then, since nothing renews it. */
#define CLUSTER_FENCE_WAIT_MAX_MSEC 5000 /* unless cluster_fence_wait() is given longer */

enum cluster_phase {
    PHASE_IDLE,
    PHASE_GRANTING,
    PHASE_REGISTERING, /* node key being put */
    PHASE_JOINED,
    PHASE_FENCED, /* waiting for the store to answer, then a new lease */
    PHASE_LEAVING,
};

struct cluster {
    uv_loop_t *loop;
    store *store;
    char *prefix;
    char *node;
    char *node_key, *leader_key, *doom_key;
    int64_t ttl_asked, ttl;
    const struct cluster_handlers *h;
    void *userdata;

    enum cluster_phase phase;
    int64_t lease;
    unsigned grant_failures; /* lease grants failed in a row: logged at the first, then every few seconds */
    usec_t grant_logged;
    unsigned epoch;      /* bumped on each new lease: callbacks of an older one are ignored */
    usec_t renewed;      /* min(ka_ok, beat_ok): the processes' deadline and the fence follow it */
    usec_t ka_ok;        /* when the last successful keepalive (or the grant) was sent */
    usec_t beat_ok;      /* when the last successful beat (or the registration) was sent; 0: none yet */
    int64_t node_create; /* create revision of our node key: what a beat compares */
    bool takeover;       /* the lease was taken over from the previous halod: no deadline before a beat */
    bool ka_inflight, lead_inflight, beat_inflight;
    unsigned inflight;     /* store calls whose callbacks still refer to us */
    unsigned handles_open; /* timers initialised and not yet closed (their close callbacks refer to us) */
    bool closed;           /* cluster_close() ran: no callback acts any more */
    bool closing;          /* cluster_free() ran: the last call or handle to end frees us */

    bool coordinator;
    bool fence_waiting;       /* the fence's killed processes are not all gone: no revoke, no rejoin yet */
    unsigned fence_wait_msec; /* and how long to wait for them at most */
    int64_t leader_rev;       /* create revision of the leader key we won */
    char *leader_name;

    struct store_follow *follow; /* the leader key */
    uv_timer_t keepalive, fence, retry;
    char digest[CLUSTER_DIGEST_MAX]; /* of this node's description, published in its node key; "": none */
    char *groups;                    /* its service groups, a JSON array published beside it; NULL: none */
};

struct call {
    struct cluster *c;
    unsigned epoch;
    usec_t sent;
};

static void join(struct cluster *c);
static void try_lead(struct cluster *c);

static void on_retry_join(uv_timer_t *t) {
    join(t->data);
}

static void on_retry_lead(uv_timer_t *t) {
    try_lead(t->data);
}

static struct call *call_new(struct cluster *c) {
    struct call *k = malloc(sizeof(*k));
    if (!k)
        return NULL;
    *k = (struct call){.c = c, .epoch = c->epoch, .sent = now_monotonic_usec()};
    c->inflight++;
    return k;
}

/* Drops a call that could not be sent (k may be NULL: call_new() failed). */
static void call_abandon(struct call *k) {
    if (k) {
        k->c->inflight--;
        free(k);
    }
}

/* Frees c once cluster_free() ran and nothing refers to it any more: no
 * store call in flight, no timer still closing. */
static void maybe_free(struct cluster *c) {
    if (c->closing && c->inflight == 0 && c->handles_open == 0)
        free(c);
}

/* Ends a call; returns the cluster if its answer still matters, else NULL. */
static struct cluster *call_end(struct call *k, struct call *out) {
    struct cluster *c = k->c;
    *out = *k;
    free(k);
    c->inflight--;
    if (c->closed) {
        maybe_free(c);
        return NULL;
    }
    return out->epoch == c->epoch ? c : NULL;
}

static void set_coordinator(struct cluster *c, bool on) {
    if (c->coordinator == on)
        return;
    c->coordinator = on;
    if (on) {
        free(c->leader_name);
        c->leader_name = strdup(c->node);
        log_notice("Node '%s' is the coordinator", c->node);
    } else
        log_notice("Node '%s' is no longer the coordinator", c->node);
    if (c->h->on_coordinator)
        c->h->on_coordinator(c, on, c->userdata);
}

static void arm_fence(struct cluster *c);

static void fence(struct cluster *c, const char *why) {
    if (c->closed || c->phase == PHASE_FENCED || c->phase == PHASE_LEAVING)
        return;
    log_error("Fencing node '%s': %s", c->node, why);
    c->phase = PHASE_FENCED;
    uv_timer_stop(&c->fence);
    uv_timer_stop(&c->keepalive);
    set_coordinator(c, false);
    c->fence_waiting = false;
    if (c->h->on_fence)
        c->h->on_fence(c, c->userdata);
    /* Rejoin with a new lease as soon as the store answers; the old one is
     * revoked then, which lets another node promote at once: not before
     * every process the fence killed is gone (cluster_fence_done()). */
    uv_timer_start(&c->retry, on_retry_join, c->fence_waiting ? c->fence_wait_msec : CLUSTER_RETRY_MSEC, 0);
}

void cluster_fence_wait(struct cluster *c, unsigned max_msec) {
    if (c->phase != PHASE_FENCED)
        return;
    c->fence_waiting = true;
    c->fence_wait_msec = MAX(max_msec, (unsigned)CLUSTER_FENCE_WAIT_MAX_MSEC);
}

void cluster_fence_done(struct cluster *c) {
    if (!c->fence_waiting || c->closed)
        return;
    c->fence_waiting = false;
    if (c->phase == PHASE_FENCED)
        uv_timer_start(&c->retry, on_retry_join, 0, 0);
}

static void on_fence_timer(uv_timer_t *t) {
    fence(t->data, "the node lease could not be renewed in time");
}

/* After each renewal: the fence timer, and the processes' deadline. */
static void arm_fence(struct cluster *c) {
    usec_t deadline = c->renewed + (usec_t)c->ttl * USEC_PER_SEC - CLUSTER_FENCE_MARGIN_USEC;
    usec_t now = now_monotonic_usec();
    uv_timer_start(&c->fence, on_fence_timer, deadline > now ? (deadline - now + 999) / 1000 : 0, 0);
    if (c->h->on_renewed)
        c->h->on_renewed(c, c->renewed + (usec_t)c->ttl * USEC_PER_SEC - CLUSTER_PROCESS_MARGIN_USEC, c->userdata);
}

/* A keepalive or a beat succeeded: the lease is held, and no other node can
 * have declared this one dead, until min(both) + TTL (docs/design.md, "Beats"). */
static void renewed(struct cluster *c) {
    usec_t r = MIN(c->ka_ok, c->beat_ok);
    if (c->beat_ok == 0 || r <= c->renewed)
        return;
    c->renewed = r;
    arm_fence(c);
}

static void send_keepalive(uv_timer_t *t);

static void on_keepalive(store *s, int error, int64_t lease, int64_t ttl, void *userdata) {
    struct call k;
    struct cluster *c = call_end(userdata, &k);
    if (!c)
        return;
    c->ka_inflight = false;
    if (c->phase != PHASE_JOINED && c->phase != PHASE_REGISTERING)
        return;
    if (error == -ENOENT || (error == 0 && ttl <= 0)) {
        fence(c, "the node lease expired");
        return;
    }
    if (error < 0) {
        log_warning_errno(error, "Node lease keepalive failed: %m");
        uv_timer_start(&c->keepalive, send_keepalive, CLUSTER_RETRY_MSEC, 0);
        return;
    }
    if (k.sent > c->ka_ok)
        c->ka_ok = k.sent;
    renewed(c);
    /* The next one TTL/3 after this one was sent, not after its answer: through an etcd slow to
     * answer, the renewals would otherwise drift apart by that latency each time, and the fence
     * point (a TTL after the last one sent) come closer. */
    usec_t next = k.sent + (usec_t)c->ttl * USEC_PER_SEC / 3, now = now_monotonic_usec();
    uv_timer_start(&c->keepalive, send_keepalive, next > now ? (next - now) / USEC_PER_MSEC : 0, 0);
}

static char *node_value(const struct cluster *c) {
    char *v = NULL;
    /* "beats": its renewals rewrite this key, so that another node may declare
     * it dead when they stop (a halod that does not say so is left to its lease). */
    if (asprintf(&v, "{\"node\":\"%s\",\"pid\":%d,\"lease\":\"%lld\",\"ttl\":%lld,\"beats\":true%s%s%s%s%s}", c->node,
                 (int)getpid(), (long long)c->lease, (long long)c->ttl, *c->digest ? ",\"description\":\"" : "",
                 c->digest, *c->digest ? "\"" : "", c->groups ? ",\"groups\":" : "", c->groups ?: "") < 0)
        return NULL;
    return v;
}

/* What a beat and a takeover's registration hold on: no other node declared this one dead. */
static store_compare no_doom(const struct cluster *c) {
    return (store_compare){.key = c->doom_key,
                           .key_len = strlen(c->doom_key),
                           .target = STORE_CMP_VERSION,
                           .result = STORE_CMP_EQUAL,
                           .number = 0};
}

/* The node key under the lease held, with value (a registration or a beat). */
static store_op node_put(const struct cluster *c, const char *value) {
    return (store_op){.type = STORE_OP_PUT,
                      .key = c->node_key,
                      .key_len = strlen(c->node_key),
                      .value = value,
                      .value_len = value ? strlen(value) : 0,
                      .lease = c->lease};
}

/* The beat: the node key written again, only while it is the one this
 * incarnation created and no other node has declared this one dead
 * (doom/<node>).  Another node that sees no beat for a TTL declares it dead
 * (cluster-sync.c); the two transactions exclude each other. */
static void on_beat(store *s, int error, const store_result *r, void *userdata) {
    struct call k;
    struct cluster *c = call_end(userdata, &k);
    if (!c)
        return;
    c->beat_inflight = false;
    if (c->phase != PHASE_JOINED)
        return;
    if (error == 0 && !r->succeeded) {
        fence(c, "another node found this node's renewals too late and declared it dead");
        return;
    }
    if (error < 0) {
        log_warning_errno(error, "Node beat failed: %m");
        return; /* the next round tries again */
    }
    if (k.sent > c->beat_ok)
        c->beat_ok = k.sent;
    renewed(c);
}

static void send_beat(struct cluster *c) {
    if (c->beat_inflight || c->phase != PHASE_JOINED || !c->node_create)
        return;
    char *v = node_value(c);
    struct call *k = v ? call_new(c) : NULL;
    store_compare cmp[2] = {
        {.key = c->node_key,
         .key_len = strlen(c->node_key),
         .target = STORE_CMP_CREATE,
         .result = STORE_CMP_EQUAL,
         .number = c->node_create},
        no_doom(c),
    };
    store_op put = node_put(c, v);
    store_txn t = {.compares = cmp, .n_compares = 2, .success = &put, .n_success = 1, .renewal = true};
    if (!k || store_transaction(c->store, &t, on_beat, k) < 0)
        call_abandon(k);
    else
        c->beat_inflight = true;
    free(v);
}

static void send_keepalive(uv_timer_t *t) {
    struct cluster *c = t->data;
    send_beat(c);
    if (c->ka_inflight || !c->lease)
        return;
    struct call *k = call_new(c);
    if (!k || store_lease_keepalive(c->store, c->lease, on_keepalive, k) < 0) {
        call_abandon(k);
        uv_timer_start(&c->keepalive, send_keepalive, CLUSTER_RETRY_MSEC, 0);
        return;
    }
    c->ka_inflight = true;
}

/* ---- the coordinator ---- */

static void on_lead(store *s, int error, const store_result *r, void *userdata) {
    struct call k;
    struct cluster *c = call_end(userdata, &k);
    if (!c)
        return;
    c->lead_inflight = false;
    if (c->phase != PHASE_JOINED)
        return;
    if (error < 0) {
        log_warning_errno(error, "Coordinator election failed: %m");
        uv_timer_start(&c->retry, on_retry_lead, CLUSTER_RETRY_MSEC, 0);
        return;
    }
    if (r->succeeded) {
        c->leader_rev = r->revision;
        set_coordinator(c, true);
        return;
    }
    /* Someone else leads: remember who (the watch tells us when that ends). */
    for (size_t i = 0; i < r->n_kvs; i++) {
        json_t *j = json_loadb(r->kvs[i].value, r->kvs[i].value_len, 0, NULL);
        const char *n = json_string_value(json_object_get(j, "node"));
        if (n) {
            free(c->leader_name);
            c->leader_name = strdup(n);
            if (streq(n, c->node) && r->kvs[i].lease == c->lease) {
                /* Our own key from before (the answer to an earlier try was lost). */
                c->leader_rev = r->kvs[i].create_revision;
                set_coordinator(c, true);
            }
        }
        json_decref(j);
    }
    if (!r->n_kvs) /* it went away in between */
        uv_timer_start(&c->retry, on_retry_lead, 0, 0);
}

static void try_lead(struct cluster *c) {
    if (c->phase != PHASE_JOINED || c->coordinator || c->lead_inflight)
        return;
    char value[512];
    snprintf(value, sizeof(value), "{\"node\":\"%s\",\"pid\":%d}", c->node, (int)getpid());
    store_compare cmp = {.key = c->leader_key,
                         .key_len = strlen(c->leader_key),
                         .target = STORE_CMP_CREATE,
                         .result = STORE_CMP_EQUAL,
                         .number = 0};
    store_op put = {.type = STORE_OP_PUT,
                    .key = c->leader_key,
                    .key_len = strlen(c->leader_key),
                    .value = value,
                    .value_len = strlen(value),
                    .lease = c->lease};
    store_op get = {.type = STORE_OP_GET, .key = c->leader_key, .key_len = strlen(c->leader_key)};
    store_txn txn = {
        .compares = &cmp, .n_compares = 1, .success = &put, .n_success = 1, .failure = &get, .n_failure = 1};
    struct call *k = call_new(c);
    if (!k || store_transaction(c->store, &txn, on_lead, k) < 0) {
        call_abandon(k);
        uv_timer_start(&c->retry, on_retry_lead, CLUSTER_RETRY_MSEC, 0);
        return;
    }
    c->lead_inflight = true;
}

static bool is_leader_key(const struct cluster *c, const store_kv *kv) {
    return kv->key_len == strlen(c->leader_key) && memcmp(kv->key, c->leader_key, kv->key_len) == 0;
}

static void leader_gone(struct cluster *c) {
    log_info("The coordinator '%s' left", c->leader_name ?: "?");
    free(c->leader_name);
    c->leader_name = NULL;
    if (c->coordinator) /* our lease ended in etcd before we noticed */
        fence(c, "the leader key was deleted under us");
    else
        try_lead(c);
}

static void leader_is(struct cluster *c, const store_kv *kv) {
    json_t *j = json_loadb(kv->value, kv->value_len, 0, NULL);
    const char *nm = json_string_value(json_object_get(j, "node"));
    if (nm && (!c->leader_name || !streq(nm, c->leader_name))) {
        free(c->leader_name);
        c->leader_name = strdup(nm);
        log_info("Node '%s' is the coordinator", nm);
    }
    json_decref(j);
}

/* The leader key as it is now: at start, and again after the watch fell behind. */
static void on_leader_loaded(struct store_follow *f, const store_result *r, void *userdata) {
    struct cluster *c = userdata;
    for (size_t i = 0; i < r->n_kvs; i++)
        if (is_leader_key(c, &r->kvs[i])) {
            leader_is(c, &r->kvs[i]);
            return;
        }
    if (c->leader_name || c->coordinator)
        leader_gone(c);
    else
        try_lead(c);
}

static void on_leader_changed(struct store_follow *f, const store_event *ev, size_t n, void *userdata) {
    struct cluster *c = userdata;
    for (size_t i = 0; i < n; i++) {
        if (!is_leader_key(c, &ev[i].kv))
            continue;
        if (ev[i].type == STORE_EVENT_DELETE)
            leader_gone(c);
        else
            leader_is(c, &ev[i].kv);
    }
}

static const struct store_follow_ops leader_ops = {
    .loaded = on_leader_loaded,
    .changed = on_leader_changed,
};

/* ---- joining ---- */

static void on_registered(store *s, int error, const store_result *r, void *userdata) {
    struct call k;
    struct cluster *c = call_end(userdata, &k);
    if (!c || c->phase != PHASE_REGISTERING)
        return;
    if (error == 0 && (!r->succeeded || r->n_kvs != 1)) {
        /* A takeover of a lease whose node was declared dead meanwhile. */
        fence(c, "another node declared this node dead before this halod took its lease over");
        return;
    }
    if (error < 0) {
        /* A fence, not a mere retry: a takeover's adopted processes run, and
         * the rejoin revokes this lease (another node may promote at once). */
        log_warning_errno(error, "Failed to register node '%s': %m", c->node);
        fence(c, "its registration failed");
        return;
    }
    c->node_create = r->kvs[0].create_revision;
    if (k.sent > c->beat_ok)
        c->beat_ok = k.sent; /* the registration is the first beat */
    c->takeover = false;
    renewed(c);
    c->phase = PHASE_JOINED;
    log_notice("Node '%s' joined (lease %lld, TTL %llds)", c->node, (long long)c->lease, (long long)c->ttl);
    if (c->h->on_joined)
        c->h->on_joined(c, c->userdata);
    if (c->phase == PHASE_JOINED)
        try_lead(c);
}

/* Puts the node key under the lease held, and reads its create revision
 * back.  A new incarnation clears a doom left for an earlier one; a takeover
 * holds only if its node was not declared dead meanwhile. */
static void register_node(struct cluster *c) {
    char *value = node_value(c);
    c->phase = PHASE_REGISTERING;
    store_compare absent = no_doom(c);
    store_op ops[3] = {
        node_put(c, value),
        {.type = STORE_OP_GET, .key = c->node_key, .key_len = strlen(c->node_key), .keys_only = true},
        {.type = STORE_OP_DELETE, .key = c->doom_key, .key_len = strlen(c->doom_key)},
    };
    store_txn t = {.compares = c->takeover ? &absent : NULL,
                   .n_compares = c->takeover ? 1 : 0,
                   .success = ops,
                   .n_success = c->takeover ? 2 : 3};
    struct call *k = value ? call_new(c) : NULL;
    if (!k || store_transaction(c->store, &t, on_registered, k) < 0) {
        call_abandon(k);
        c->phase = PHASE_FENCED;
        uv_timer_start(&c->retry, on_retry_join, CLUSTER_RETRY_MSEC, 0);
    }
    free(value);
}

/* The lease is ours (granted, or taken over from the previous halod): the
 * fence, the renewals and the node key follow it. */
static void lease_held(struct cluster *c, int64_t lease, int64_t ttl, usec_t sent) {
    c->lease = lease;
    c->ttl = ttl;
    c->ka_ok = sent;
    c->node_create = 0;
    c->beat_inflight = false;
    if (!c->takeover) {
        /* A new incarnation: no other node can have seen a beat of it before
         * the grant, nor have its processes been given anything. */
        c->renewed = c->beat_ok = sent;
        arm_fence(c);
    } else
        c->renewed = c->beat_ok = 0; /* the previous halod's deadline stands until a beat */
    /* The first renewal TTL/3 after the grant was asked for (on_keepalive()). */
    usec_t next = sent + (usec_t)ttl * USEC_PER_SEC / 3, now = now_monotonic_usec();
    uv_timer_start(&c->keepalive, send_keepalive, next > now ? (next - now) / USEC_PER_MSEC : 0, 0);
    register_node(c);
}

static void on_granted(store *s, int error, int64_t lease, int64_t ttl, void *userdata) {
    struct call k;
    struct cluster *c = call_end(userdata, &k);
    if (!c || c->phase != PHASE_GRANTING)
        return;
    if (error < 0 || ttl <= 0) {
        /* Retried every CLUSTER_RETRY_MSEC while the store is away: one line, then one every 10 s. */
        usec_t now = now_monotonic_usec();
        if (c->grant_failures++ == 0 || now - c->grant_logged >= 10 * USEC_PER_SEC) {
            c->grant_logged = now;
            if (c->grant_failures == 1)
                log_warning_errno(error ?: -EIO, "Failed to get a node lease: %m; retrying every %d ms",
                                  CLUSTER_RETRY_MSEC);
            else
                log_warning_errno(error ?: -EIO, "Still no node lease after %u attempts: %m", c->grant_failures);
        }
        c->phase = PHASE_FENCED;
        uv_timer_start(&c->retry, on_retry_join, CLUSTER_RETRY_MSEC, 0);
        return;
    }
    if (c->grant_failures > 0)
        log_info("Got a node lease after %u failed attempts", c->grant_failures);
    c->grant_failures = 0;
    lease_held(c, lease, ttl, k.sent);
}

static void on_revoked(store *s, int error, int64_t lease, int64_t ttl, void *userdata) {
    struct call k;
    (void)call_end(userdata, &k);
}

static void lease_end(struct cluster *c) {
    if (!c->lease)
        return;
    struct call *k = call_new(c);
    if (k && store_lease_revoke(c->store, c->lease, on_revoked, k) < 0)
        call_abandon(k);
    c->lease = 0;
}

static void join(struct cluster *c) {
    if (c->closed || c->phase == PHASE_LEAVING)
        return;
    if (c->fence_waiting) {
        log_warning("Processes killed by the fence of node '%s' are not gone, or its OCF resources not stopped, "
                    "after %u ms; rejoining anyway",
                    c->node, c->fence_wait_msec);
        c->fence_waiting = false;
    }
    lease_end(c); /* after a fence: never reuse a lease we stopped trusting */
    c->epoch++;
    c->takeover = false;
    c->ka_inflight = c->lead_inflight = false;
    c->phase = PHASE_GRANTING;
    struct call *k = call_new(c);
    if (!k || store_lease_grant(c->store, c->ttl_asked, on_granted, k) < 0) {
        call_abandon(k);
        c->phase = PHASE_FENCED;
        uv_timer_start(&c->retry, on_retry_join, CLUSTER_RETRY_MSEC, 0);
    }
}

/* ---- public ---- */

void cluster_set_description(struct cluster *c, const char *digest, const char *groups) {
    snprintf(c->digest, sizeof(c->digest), "%s", digest ?: "");
    char *g = groups ? strdup(groups) : NULL;
    if (groups && !g)
        log_warning("Out of memory: this node's service groups are not published");
    free(c->groups);
    c->groups = g;
    send_beat(c); /* now, not at the next renewal: the others see the reload at once */
}

const char *cluster_digest(const struct cluster *c) {
    return c->digest;
}

int cluster_new(const struct cluster_params *p, struct cluster **ret) {
    struct cluster *c = calloc(1, sizeof(*c));
    if (!c)
        return -ENOMEM;
    c->loop = p->loop;
    c->store = p->store;
    c->h = p->handlers;
    c->userdata = p->userdata;
    c->ttl_asked = c->ttl = p->ttl > 0 ? p->ttl : 2;
    c->prefix = strdup(p->prefix);
    c->node = strdup(p->node);
    char node_key[STORE_KEY_MAX], leader_key[STORE_KEY_MAX], doom_key[STORE_KEY_MAX];
    if (key_name(node_key, p->prefix, KEY_NODES, p->node) >= 0 && key_leader(leader_key, p->prefix) >= 0 &&
        key_name(doom_key, p->prefix, KEY_DOOM, p->node) >= 0) {
        c->node_key = strdup(node_key);
        c->leader_key = strdup(leader_key);
        c->doom_key = strdup(doom_key);
    }
    if (!c->prefix || !c->node || !c->node_key || !c->leader_key || !c->doom_key) {
        free(c->prefix);
        free(c->node);
        free(c->node_key);
        free(c->leader_key);
        free(c->doom_key);
        free(c);
        return -ENOMEM;
    }
    uv_timer_init(c->loop, &c->keepalive);
    uv_timer_init(c->loop, &c->fence);
    uv_timer_init(c->loop, &c->retry);
    c->keepalive.data = c->fence.data = c->retry.data = c;
    c->handles_open = 3;
    *ret = c;
    return 0;
}

/* The previous halod of this node died and its lease still runs: take it
 * over, so that nothing changes for the other nodes (its components were
 * adopted).  If it is gone, the others failed over: fence what was adopted. */
static void on_old_lease(store *s, int error, int64_t lease, int64_t ttl, void *userdata) {
    struct call k;
    struct cluster *c = call_end(userdata, &k);
    if (!c)
        return;
    if (error < 0 || ttl <= 0) {
        log_notice("The lease of this node's previous halod has ended%s", error < 0 ? " or is unknown" : "");
        /* A fence of what was adopted: the new lease only once the processes
         * it killed are gone (another node may count a new lease as proof). */
        c->phase = PHASE_FENCED;
        c->fence_waiting = false;
        if (c->h->on_fence)
            c->h->on_fence(c, c->userdata);
        if (c->fence_waiting)
            uv_timer_start(&c->retry, on_retry_join, c->fence_wait_msec, 0);
        else
            join(c);
        return;
    }
    log_notice("Taking over the lease of this node's previous halod (TTL %llds)", (long long)ttl);
    c->epoch++;
    c->takeover = true;
    lease_held(c, lease, ttl, k.sent);
}

static void on_old_node(store *s, int error, const store_result *r, void *userdata) {
    struct call k;
    struct cluster *c = call_end(userdata, &k);
    if (!c)
        return;
    if (error == 0 && r->n_kvs == 1 && r->kvs[0].lease) {
        struct call *k2 = call_new(c);
        if (k2 && store_lease_keepalive(c->store, r->kvs[0].lease, on_old_lease, k2) == 0)
            return;
        call_abandon(k2);
    }
    join(c);
}

int cluster_start(struct cluster *c) {
    struct store_follow_params p = {.prefix = c->leader_key, .retry_min_msec = CLUSTER_RETRY_MSEC};
    int r = store_follow(c->store, &p, &leader_ops, c, &c->follow);
    if (r < 0)
        return r;
    struct call *k = call_new(c);
    if (!k)
        return -ENOMEM;
    r = store_get(c->store, c->node_key, on_old_node, k);
    if (r < 0)
        call_abandon(k);
    return r < 0 ? r : 0;
}

void cluster_leave(struct cluster *c) {
    if (!c)
        return;
    set_coordinator(c, false);
    c->phase = PHASE_LEAVING;
    lease_end(c);
}

static void on_timer_closed(uv_handle_t *h) {
    struct cluster *c = h->data;
    c->handles_open--;
    maybe_free(c);
}

void cluster_close(struct cluster *c) {
    if (!c || c->closed)
        return;
    c->closed = true;
    c->follow = store_follow_free(c->follow);
    uv_close((uv_handle_t *)&c->keepalive, on_timer_closed);
    uv_close((uv_handle_t *)&c->fence, on_timer_closed);
    uv_close((uv_handle_t *)&c->retry, on_timer_closed);
}

/* Safe at any time, closed or not: the memory goes once the loop has run
 * the timers' close callbacks and the store has answered every call. */
struct cluster *cluster_free(struct cluster *c) {
    if (!c)
        return NULL;
    cluster_close(c);
    c->closing = true;
    free(c->prefix);
    free(c->node);
    free(c->node_key);
    free(c->leader_key);
    free(c->doom_key);
    free(c->leader_name);
    free(c->groups);
    c->prefix = c->node = c->node_key = c->leader_key = c->doom_key = c->leader_name = c->groups = NULL;
    maybe_free(c);
    return NULL;
}

bool cluster_joined(const struct cluster *c) {
    return c && c->phase == PHASE_JOINED;
}

bool cluster_is_coordinator(const struct cluster *c) {
    return c && c->coordinator;
}

int64_t cluster_lease(const struct cluster *c) {
    return c && c->phase == PHASE_JOINED ? c->lease : 0;
}

int64_t cluster_ttl(const struct cluster *c) {
    return c->ttl;
}

const char *cluster_coordinator(const struct cluster *c) {
    return c ? c->leader_name : NULL;
}

void cluster_guard(const struct cluster *c, store_compare *cmp) {
    *cmp = (store_compare){.key = c->leader_key,
                           .key_len = strlen(c->leader_key),
                           .target = STORE_CMP_CREATE,
                           .result = STORE_CMP_EQUAL,
                           .number = c->leader_rev};
}

void cluster_deposed(struct cluster *c) {
    if (c->coordinator)
        fence(c, "a coordinator write was refused: another node leads");
}
