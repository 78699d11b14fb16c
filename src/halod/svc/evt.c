/* SPDX-License-Identifier: MIT */
/* Event channels: subscriptions, filters, delivery, retention (evt.h). */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#define LOG_AREA LOG_AREA_MAIN
#include "evt-internal.h"
#include "log.h"
#include "macro.h"
#include "server.h"
#include "svc.h"
#include "time-util.h"

uint64_t evt_now_ms(void) {
    return now_monotonic_usec() / 1000;
}

struct evt_chan *evt_chan_find(struct evt *e, const char *name, bool cluster) {
    struct evt_chan *ch;
    LIST_FOREACH (chans, ch, &e->chans)
        if (ch->cluster == cluster && streq(ch->name, name))
            return ch;
    return NULL;
}

struct evt_chan *evt_chan_get(struct evt *e, const char *name, bool cluster) {
    struct evt_chan *ch = evt_chan_find(e, name, cluster);
    if (ch || e->n_chans >= EVT_CHANNELS_MAX)
        return ch;
    ch = calloc(1, sizeof(*ch) + strlen(name) + 1);
    if (!ch)
        return NULL;
    ch->cluster = cluster;
    strcpy(ch->name, name);
    LIST_APPEND(chans, &e->chans, ch);
    e->n_chans++;
    return ch;
}

static void event_free(struct evt_event *ev) {
    halo__link__evt_event__free_unpacked(ev->ev, NULL);
    free(ev);
}

/* Drops the oldest retained events past EVT_RETAINED_MAX, and every one past its time: the list is
 * in publish order, so one that expired may sit behind one that has not (a longer retention); the
 * whole list is looked at only once the earliest expiry has come. */
void evt_chan_expire(struct evt_chan *ch) {
    struct evt_event *ev, *next;
    while (ch->n_retained > EVT_RETAINED_MAX && (ev = ch->retained.first)) {
        LIST_REMOVE(events, &ch->retained, ev);
        ch->n_retained--;
        event_free(ev);
    }
    uint64_t now = evt_now_ms();
    if (!ch->first_expiry_ms || ch->first_expiry_ms > now)
        return;
    ch->first_expiry_ms = 0;
    LIST_FOREACH_SAFE (events, ev, next, &ch->retained) {
        if (ev->expires_ms > now) {
            if (!ch->first_expiry_ms || ev->expires_ms < ch->first_expiry_ms)
                ch->first_expiry_ms = ev->expires_ms;
            continue;
        }
        LIST_REMOVE(events, &ch->retained, ev);
        ch->n_retained--;
        event_free(ev);
    }
}

void evt_chan_retain(struct evt_chan *ch, struct evt_event *ev) {
    LIST_APPEND(events, &ch->retained, ev);
    ch->n_retained++;
    if (!ch->first_expiry_ms || ev->expires_ms < ch->first_expiry_ms)
        ch->first_expiry_ms = ev->expires_ms;
    evt_chan_expire(ch);
}

static void sub_free(struct evt_sub *s) {
    LIST_REMOVE(subs, &s->ch->subs, s);
    free(s);
}

/* A send may cut off any connection (its own, or the one with the most
 * waiting when halod's queues are full), whose close forgets its
 * subscriptions: while a channel sends, they are only marked (conn NULL),
 * and freed here after. */
static void chan_sweep(struct evt_chan *ch) {
    struct evt_sub *s, *next;
    ch->delivering = false;
    LIST_FOREACH_SAFE (subs, s, next, &ch->subs)
        if (!s->conn)
            sub_free(s);
}

/* Sends ev to sub unless its connection holds EVT_QUEUE_MAX unread bytes:
 * then the event is dropped for it and counted, and the next one it gets says
 * how many it lost. */
static void send_to(struct evt_sub *s, Halo__Link__EvtEvent *ev) {
    if (server_conn_queued(s->conn) > EVT_QUEUE_MAX) {
        if (s->lost_untold++ == 0)
            log_notice("%s does not read its events of channel '%s': dropping them until it does",
                       server_conn_name(s->conn), s->ch->name);
        s->lost++;
        return;
    }
    LinkMsg m = HALO__LINK__MSG__INIT;
    ev->id = s->id;
    ev->lost = s->lost_untold;
    m.body_case = HALO__LINK__MSG__BODY_EVT_EVENT;
    m.evt_event = ev;
    if (server_conn_send(s->conn, &m) < 0)
        return; /* the connection was cut off: its close forgets the subscription */
    s->lost_untold = 0;
    s->delivered++;
}

/* An event of ch, published here or (cluster) read from the store: to each
 * subscriber whose filters pass it, then retained if it asked to be. */
void evt_chan_deliver(struct evt_chan *ch, struct evt_event *ev) {
    struct evt_sub *s;
    ch->published++;
    ch->delivering = true;
    LIST_FOREACH (subs, s, &ch->subs) {
        if (!s->conn)
            continue;
        if (!evt_filters_match(s->filters, s->n_filters, ev->ev->pattern, ev->ev->n_pattern)) {
            ch->filtered++;
            continue;
        }
        send_to(s, ev->ev);
        ch->delivered++;
    }
    chan_sweep(ch);
    if (ev->ev->retention_ms == 0) {
        event_free(ev);
        return;
    }
    ev->expires_ms = evt_now_ms() + evt_left_ms(ev->ev->hlc, ev->ev->retention_ms);
    evt_chan_retain(ch, ev);
}

/* A copy of what the link handed in (freed when the handler returns): packed, then unpacked. */
Halo__Link__EvtEvent *evt_event_copy(const Halo__Link__EvtEvent *in) {
    uint8_t buf[LINK_MSG_MAX];
    size_t len = halo__link__evt_event__get_packed_size(in);
    if (len > sizeof(buf))
        return NULL;
    halo__link__evt_event__pack(in, buf);
    return halo__link__evt_event__unpack(NULL, len, buf);
}

static void reply(struct conn *conn, uint64_t seq, int error, uint64_t id) {
    Halo__Link__Reply r = HALO__LINK__REPLY__INIT;
    r.seq = seq;
    r.error = error;
    r.evt_id = id;
    (void)server_conn_send_reply(conn, &r);
}

static bool channel_ok(struct evt *e, struct conn *conn, uint64_t seq, const char *name) {
    if (svc_name_valid(name, SVC_NAME_MAX))
        return true;
    log_warning("%s named an event channel '%s': letters, digits and \"-_.:@\" only; refused", server_conn_name(conn),
                name);
    reply(conn, seq, -EINVAL, 0);
    return false;
}

static void handle_open(struct evt *e, struct conn *conn, const Halo__Link__EvtOpen *o) {
    if (!channel_ok(e, conn, o->seq, o->channel))
        return;
    if (o->cluster && !e->store) {
        reply(conn, o->seq, -EOPNOTSUPP, 0);
        return;
    }
    reply(conn, o->seq, evt_chan_get(e, o->channel, o->cluster) ? 0 : -ENOSPC, 0);
}

static void handle_publish(struct evt *e, struct conn *conn, const Halo__Link__EvtPublish *p) {
    if (!channel_ok(e, conn, p->seq, p->channel))
        return;
    struct evt_chan *ch = evt_chan_find(e, p->channel, p->cluster);
    if (!ch) {
        reply(conn, p->seq, -ENOENT, 0); /* open it first */
        return;
    }
    char publisher[LINK_NAME_MAX + 1];
    snprintf(publisher, sizeof(publisher), "%s/%d", e->node, (int)server_conn_pid(conn));
    Halo__Link__EvtEvent ev = HALO__LINK__EVT_EVENT__INIT;
    ev.channel = ch->name;
    ev.pattern = p->pattern;
    ev.n_pattern = p->n_pattern;
    ev.payload = p->payload;
    ev.publisher = publisher;
    ev.pub_seq = ++ch->pub_seq;
    ev.hlc = hlc_now(&e->clock);
    ev.retention_ms = p->retention_ms;
    if (ch->cluster) {
        int r = evt_store_publish(e, conn, p->seq, &ev);
        if (r < 0)
            reply(conn, p->seq, r, 0);
        return; /* answered once the store has it */
    }
    struct evt_event *item = calloc(1, sizeof(*item));
    if (item)
        item->ev = evt_event_copy(&ev);
    if (!item || !item->ev) {
        free(item);
        reply(conn, p->seq, -ENOMEM, 0);
        return;
    }
    reply(conn, p->seq, 0, ev.pub_seq);
    evt_chan_deliver(ch, item);
}

static struct evt_sub *sub_find(struct evt *e, const struct conn *conn, uint32_t id, size_t *ret_n) {
    struct evt_chan *ch;
    struct evt_sub *s, *found = NULL;
    size_t n = 0;
    LIST_FOREACH (chans, ch, &e->chans)
        LIST_FOREACH (subs, s, &ch->subs)
            if (s->conn == conn) {
                n++;
                if (s->id == id)
                    found = s;
            }
    if (ret_n)
        *ret_n = n;
    return found;
}

static void handle_subscribe(struct evt *e, struct conn *conn, const Halo__Link__EvtSubscribe *q) {
    if (!channel_ok(e, conn, q->seq, q->channel))
        return;
    struct evt_chan *ch = evt_chan_find(e, q->channel, q->cluster);
    size_t n;
    if (!ch || sub_find(e, conn, q->id, &n) || n >= EVT_SUBS_MAX) {
        reply(conn, q->seq, !ch ? -ENOENT : n >= EVT_SUBS_MAX ? -ENOSPC : -EEXIST, 0);
        return;
    }
    struct evt_sub *s = calloc(1, sizeof(*s) + q->n_filters * sizeof(struct evt_filter));
    if (!s) {
        reply(conn, q->seq, -ENOMEM, 0);
        return;
    }
    const char *error = NULL;
    int r = evt_filters_parse(q->filters, q->n_filters, s->filters, &error);
    if (r < 0) {
        log_warning("%s subscribed to event channel '%s' with a bad filter: %s; refused", server_conn_name(conn),
                    q->channel, error);
        free(s);
        reply(conn, q->seq, r, 0);
        return;
    }
    /* The filters are the flexible array after the struct: not reset here. */
    *s = (struct evt_sub){.ch = ch, .conn = conn, .id = q->id, .n_filters = q->n_filters};
    LIST_APPEND(subs, &ch->subs, s);
    reply(conn, q->seq, 0, 0);
    /* What the channel retains, in publish order, through the same filters (none past its time:
     * evt_chan_expire() just dropped them). */
    evt_chan_expire(ch);
    struct evt_event *ev;
    uint64_t now = evt_now_ms();
    ch->delivering = true;
    LIST_FOREACH (events, ev, &ch->retained)
        if (s->conn && ev->expires_ms > now &&
            evt_filters_match(s->filters, s->n_filters, ev->ev->pattern, ev->ev->n_pattern))
            send_to(s, ev->ev);
    chan_sweep(ch);
}

static void handle_unsubscribe(struct evt *e, struct conn *conn, const Halo__Link__EvtUnsubscribe *u) {
    struct evt_sub *s = sub_find(e, conn, u->id, NULL);
    if (s)
        sub_free(s);
    reply(conn, u->seq, s ? 0 : -ENOENT, 0);
}

bool evt_handle_msg(struct evt *e, struct conn *conn, const LinkMsg *msg) {
    switch (msg->body_case) {
    case HALO__LINK__MSG__BODY_EVT_OPEN:
        handle_open(e, conn, msg->evt_open);
        return true;
    case HALO__LINK__MSG__BODY_EVT_PUBLISH:
        handle_publish(e, conn, msg->evt_publish);
        return true;
    case HALO__LINK__MSG__BODY_EVT_SUBSCRIBE:
        handle_subscribe(e, conn, msg->evt_subscribe);
        return true;
    case HALO__LINK__MSG__BODY_EVT_UNSUBSCRIBE:
        handle_unsubscribe(e, conn, msg->evt_unsubscribe);
        return true;
    case HALO__LINK__MSG__BODY_ADMIN:
        if (msg->admin->op != HALO__LINK__ADMIN__OP__EVT_CHANNELS)
            return false;
        evt_admin_channels(e, conn, msg->admin->seq);
        return true;
    default:
        return false;
    }
}

void evt_conn_closed(struct evt *e, struct conn *conn) {
    struct evt_chan *ch;
    struct evt_sub *s, *next;
    LIST_FOREACH (chans, ch, &e->chans)
        LIST_FOREACH_SAFE (subs, s, next, &ch->subs)
            if (s->conn == conn) {
                if (ch->delivering)
                    s->conn = NULL; /* chan_sweep() frees it */
                else
                    sub_free(s);
            }
    evt_store_conn_closed(e, conn);
}

static void on_prune(uv_timer_t *t) {
    struct evt *e = t->data;
    struct evt_chan *ch;
    LIST_FOREACH (chans, ch, &e->chans)
        evt_chan_expire(ch);
    evt_store_prune(e);
}

int evt_new(const struct evt_params *p, struct evt **ret) {
    struct evt *e = calloc(1, sizeof(*e));
    if (!e)
        return -ENOMEM;
    e->loop = p->loop;
    e->store = p->store;
    e->prefix = strdup(p->prefix ? p->prefix : "");
    e->node = strdup(p->node ? p->node : "local");
    e->takes_over = p->takes_over;
    e->userdata = p->userdata;
    hlc_init(&e->clock, NULL, NULL);
    if (!e->prefix || !e->node) {
        free(e->prefix);
        free(e->node);
        free(e);
        return -ENOMEM;
    }
    uv_timer_init(p->loop, &e->prune);
    e->prune.data = e;
    uv_timer_start(&e->prune, on_prune, 1000, 1000);
    uv_unref((uv_handle_t *)&e->prune);
    int r = e->store ? evt_store_start(e) : 0;
    if (r < 0)
        log_warning_errno(r, "Cluster-wide event channels are off: %m");
    r = evt_sweep_new(e);
    if (r < 0)
        log_warning_errno(r, "The events of nodes that leave will not be deleted here: %m");
    *ret = e;
    return 0;
}

static void on_closed(uv_handle_t *h) {
    struct evt *e = h->data;
    struct evt_chan *ch;
    while ((ch = LIST_POP(chans, &e->chans))) {
        struct evt_sub *s;
        struct evt_event *ev;
        while ((s = LIST_POP(subs, &ch->subs)))
            free(s);
        while ((ev = LIST_POP(events, &ch->retained)))
            event_free(ev);
        free(ch);
    }
    free(e->prefix);
    free(e->node);
    free(e);
}

struct evt *evt_free(struct evt *e) {
    if (!e)
        return NULL;
    evt_store_stop(e);
    evt_sweep_free(e);
    uv_close((uv_handle_t *)&e->prune, on_closed);
    return NULL;
}
