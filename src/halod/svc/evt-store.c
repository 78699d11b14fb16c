/* SPDX-License-Identifier: MIT */
/*
 * Cluster-wide event channels through the store (evt.h): a publish is a key
 * evt/<channel>/<node>/<hlc> holding the packed EvtEvent; this halod's
 * publishes go out one transaction at a time (all that waited, together), so
 * their store revisions follow publish order; every halod watches evt/ and
 * delivers what it reads, in revision order, to its own subscribers.  The
 * publishing halod deletes its keys once their retention (at least
 * EVT_STORE_KEEP_MS, time for the others to read them) is past.
 */
#define LOG_AREA LOG_AREA_MAIN
#include <errno.h>
#include <jansson.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "evt-internal.h"
#include "keys.h"
#include "log.h"
#include "macro.h"
#include "server.h"
#include "svc.h"

/* Publishes waiting for the store, past which a publish is refused (-EAGAIN). */
#define EVT_PUBS_MAX 4096

struct evt_pub {
    LIST_FIELDS(struct evt_pub, pubs);
    struct conn *conn; /* NULL once it closed */
    uint64_t seq, pub_seq;
    uint32_t retention_ms;
    size_t len;
    char key[STORE_KEY_MAX];
    uint8_t buf[];
};

/* The first read of evt/ in flight, and whether evt is still there. */
struct evt_range {
    struct evt *e;
};

struct evt_own {
    LIST_FIELDS(struct evt_own, owns);
    uint64_t expires_ms;
    char key[];
};

/* A transaction in flight: its publishes, and whether evt is still there. */
struct evt_batch {
    struct evt *e; /* NULL: evt was freed; the callback only frees the batch */
    LIST_HEAD(struct evt_pub) pubs;
};

static void commit_next(struct evt *e);

static void own_add(struct evt *e, const char *key, uint64_t expires_ms) {
    struct evt_own *o = malloc(sizeof(*o) + strlen(key) + 1);
    if (!o)
        return; /* the key stays until a restarted halod finds it expired */
    o->expires_ms = expires_ms;
    strcpy(o->key, key);
    LIST_APPEND(owns, &e->owns, o);
}

static void on_committed(store *s, int error, const store_result *result, void *userdata) {
    struct evt_batch *b = userdata;
    struct evt *e = b->e;
    struct evt_pub *p;
    if (e)
        e->inflight = NULL;
    while ((p = LIST_POP(pubs, &b->pubs))) {
        if (e && p->conn) {
            Halo__Link__Reply r = HALO__LINK__REPLY__INIT;
            r.seq = p->seq;
            r.error = error;
            r.evt_id = error < 0 ? 0 : p->pub_seq;
            (void)server_conn_send_reply(p->conn, &r);
        }
        if (e && error >= 0)
            own_add(e, p->key, evt_now_ms() + MAX(p->retention_ms, (uint32_t)EVT_STORE_KEEP_MS));
        free(p);
    }
    if (error < 0 && e)
        log_warning_errno(error, "Failed to publish cluster-wide events: %m");
    free(b);
    if (e) {
        e->committing = false;
        commit_next(e);
    }
}

/* Every publish that waits, in one transaction. */
static void commit_next(struct evt *e) {
    if (e->committing || LIST_IS_EMPTY(&e->pubs))
        return;
    struct evt_batch *b = calloc(1, sizeof(*b));
    size_t n = 0;
    struct evt_pub *p;
    LIST_FOREACH (pubs, p, &e->pubs)
        n++;
    store_op *ops = b ? calloc(n, sizeof(*ops)) : NULL;
    if (!ops) {
        free(b);
        return; /* the next publish or prune tries again */
    }
    b->e = e;
    size_t i = 0;
    while ((p = LIST_POP(pubs, &e->pubs))) {
        ops[i++] = (store_op){.type = STORE_OP_PUT,
                              .key = p->key,
                              .key_len = strlen(p->key),
                              .value = (const char *)p->buf,
                              .value_len = p->len};
        LIST_APPEND(pubs, &b->pubs, p);
    }
    store_txn txn = {.success = ops, .n_success = n};
    e->committing = true;
    e->inflight = b;
    int r = store_transaction(e->store, &txn, on_committed, b);
    free(ops);
    if (r < 0)
        on_committed(e->store, r, NULL, b);
}

int evt_store_publish(struct evt *e, struct conn *conn, uint64_t seq, const Halo__Link__EvtEvent *ev) {
    size_t n = 0;
    struct evt_pub *p;
    LIST_FOREACH (pubs, p, &e->pubs)
        if (++n >= EVT_PUBS_MAX)
            return -EAGAIN;
    size_t len = halo__link__evt_event__get_packed_size(ev);
    p = calloc(1, sizeof(*p) + len);
    if (!p)
        return -ENOMEM;
    int r = key_evt_entry(p->key, e->prefix, ev->channel, e->node, ev->hlc);
    if (r < 0) {
        free(p);
        return r;
    }
    p->conn = conn;
    p->seq = seq;
    p->pub_seq = ev->pub_seq;
    p->retention_ms = ev->retention_ms;
    p->len = len;
    halo__link__evt_event__pack(ev, p->buf);
    LIST_APPEND(pubs, &e->pubs, p);
    commit_next(e);
    return 0;
}

void evt_store_conn_closed(struct evt *e, struct conn *conn) {
    struct evt_pub *p;
    LIST_FOREACH (pubs, p, &e->pubs)
        if (p->conn == conn)
            p->conn = NULL;
    if (e->inflight)
        LIST_FOREACH (pubs, p, &e->inflight->pubs)
            if (p->conn == conn)
                p->conn = NULL;
}

static void on_deleted(store *s, int error, const store_result *result, void *userdata) {
    if (error < 0 && error != -ECANCELED)
        log_debug_errno(error, "Failed to delete an expired event: %m");
}

void evt_store_prune(struct evt *e) {
    uint64_t now = evt_now_ms();
    struct evt_own *o;
    while ((o = e->owns.first) && o->expires_ms <= now) {
        LIST_REMOVE(owns, &e->owns, o);
        if (e->store)
            (void)store_delete(e->store, o->key, on_deleted, NULL);
        free(o);
    }
    commit_next(e);
}

static uint64_t realtime_ms(void) {
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;
}

uint64_t evt_left_ms(uint64_t hlc, uint64_t retention_ms) {
    uint64_t end = hlc_physical(hlc) + retention_ms, now = realtime_ms();
    return end > now ? end - now : 0;
}

/* A key of evt/ read from the store: delivered (fresh) or retained for its time left (at start). */
static void on_kv(struct evt *e, const store_kv *kv, bool fresh) {
    Halo__Link__EvtEvent *ev = halo__link__evt_event__unpack(NULL, kv->value_len, (const uint8_t *)kv->value);
    if (!ev || !svc_name_valid(ev->channel, SVC_NAME_MAX) || ev->n_pattern > LINK_EVT_FIELDS_MAX ||
        ev->payload.len > LINK_EVT_PAYLOAD_MAX) {
        log_debug("Ignoring a malformed event in the store");
        if (ev)
            halo__link__evt_event__free_unpacked(ev, NULL);
        return;
    }
    uint64_t left = ev->retention_ms;
    if (!fresh) {
        left = evt_left_ms(ev->hlc, ev->retention_ms);
        char mine[STORE_KEY_MAX];
        if (key_evt_entry(mine, e->prefix, ev->channel, e->node, ev->hlc) >= 0 && streq(mine, kv->key))
            own_add(e, mine, evt_now_ms() + left); /* a previous run's: deleted in its time */
    }
    struct evt_chan *ch = evt_chan_find(e, ev->channel, true);
    struct evt_event *item = (ch || left > 0) ? calloc(1, sizeof(*item)) : NULL;
    if (!ch && item) /* retained for a subscriber to come: the channel is known from now on */
        ch = evt_chan_get(e, ev->channel, true);
    if (!item || !ch) {
        free(item);
        halo__link__evt_event__free_unpacked(ev, NULL);
        return;
    }
    item->ev = ev;
    if (!fresh) {
        ev->retention_ms = (uint32_t)left;
        if (left == 0) {
            free(item);
            halo__link__evt_event__free_unpacked(ev, NULL);
            return;
        }
        item->expires_ms = evt_now_ms() + left;
        evt_chan_retain(ch, item);
        return;
    }
    evt_chan_deliver(ch, item);
}

static int watch_from(struct evt *e, int64_t revision);

static void on_watch(store_watch *w, int error, const store_event *events, size_t n, void *userdata) {
    struct evt *e = userdata;
    if (error < 0) {
        e->watch = NULL;
        if (error != -ECANCELED) {
            log_warning_errno(error, "The watch of cluster-wide events ended: %m; reading them again");
            (void)evt_store_start(e);
        }
        return;
    }
    for (size_t i = 0; i < n; i++)
        if (events[i].type == STORE_EVENT_PUT)
            on_kv(e, &events[i].kv, true);
}

static int watch_from(struct evt *e, int64_t revision) {
    char dir[STORE_KEY_MAX];
    int r = key_evt_dir(dir, e->prefix);
    return r < 0 ? r : store_watch_prefix(e->store, dir, revision, on_watch, e, &e->watch);
}

static void on_range(store *s, int error, const store_result *result, void *userdata) {
    struct evt_range *g = userdata;
    struct evt *e = g->e;
    free(g);
    if (!e)
        return; /* evt was freed meanwhile */
    e->range = NULL;
    if (error == -ECANCELED)
        return;
    if (error < 0) {
        log_warning_errno(error, "Failed to read the cluster-wide events: %m");
        return;
    }
    for (size_t i = 0; i < result->n_kvs; i++)
        on_kv(e, &result->kvs[i], false);
    int r = watch_from(e, result->revision + 1);
    if (r < 0)
        log_warning_errno(r, "Failed to watch the cluster-wide events: %m");
}

int evt_store_read(struct evt *e, store_cb cb, void *userdata) {
    char dir[STORE_KEY_MAX];
    int r = key_evt_dir(dir, e->prefix);
    return r < 0 ? r : store_range(e->store, dir, cb, userdata);
}

int evt_store_start(struct evt *e) {
    struct evt_range *g = calloc(1, sizeof(*g));
    if (!g)
        return -ENOMEM;
    g->e = e;
    e->range = g;
    int r = evt_store_read(e, on_range, g);
    if (r < 0) {
        e->range = NULL;
        free(g);
    }
    return r;
}

void evt_store_stop(struct evt *e) {
    if (e->range)
        e->range->e = NULL;
    e->range = NULL;
    e->watch = e->watch ? store_watch_cancel(e->watch) : NULL;
    if (e->inflight)
        e->inflight->e = NULL;
    e->inflight = NULL;
    struct evt_pub *p;
    while ((p = LIST_POP(pubs, &e->pubs)))
        free(p);
    struct evt_own *o;
    while ((o = LIST_POP(owns, &e->owns)))
        free(o);
}

/* ---- haloctl event-channels ---- */

static json_t *sub_json(const struct evt_sub *s) {
    return json_pack("{s:s, s:i, s:I, s:i, s:I, s:I, s:I}", "client", server_conn_name(s->conn), "pid",
                     (int)server_conn_pid(s->conn), "id", (json_int_t)s->id, "filters", (int)s->n_filters, "delivered",
                     (json_int_t)s->delivered, "lost", (json_int_t)s->lost, "queued_bytes",
                     (json_int_t)server_conn_queued(s->conn));
}

static json_t *chan_json(struct evt_chan *ch) {
    evt_chan_expire(ch);
    json_t *subs = json_array();
    struct evt_sub *s;
    LIST_FOREACH (subs, s, &ch->subs)
        json_array_append_new(subs, sub_json(s));
    return json_pack("{s:s, s:s, s:I, s:I, s:I, s:I, s:o}", "name", ch->name, "scope",
                     ch->cluster ? "cluster" : "local", "published", (json_int_t)ch->published, "delivered",
                     (json_int_t)ch->delivered, "filtered", (json_int_t)ch->filtered, "retained",
                     (json_int_t)ch->n_retained, "subscribers", subs ? subs : json_array());
}

void evt_admin_channels(struct evt *e, struct conn *conn, uint64_t seq) {
    json_t *chans = json_array();
    struct evt_chan *ch;
    LIST_FOREACH (chans, ch, &e->chans)
        json_array_append_new(chans, chan_json(ch));
    json_t *j = json_pack("{s:s, s:o}", "node", e->node, "channels", chans ? chans : json_array());
    char *text = j ? json_dumps(j, JSON_COMPACT) : NULL;
    json_decref(j);
    if (!text) {
        (void)server_conn_reply(conn, seq, -ENOMEM, NULL);
        return;
    }
    (void)server_conn_reply_parts(conn, seq, text);
}
