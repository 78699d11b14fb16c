/* SPDX-License-Identifier: MIT */
/* The event service's state, shared by its files (svc/evt*.c only). */
#pragma once

#include "evt.h"
#include "hlc.h"
#include "list.h"

struct evt_event {
    LIST_FIELDS(struct evt_event, events);
    Halo__Link__EvtEvent *ev; /* owned, unpacked */
    uint64_t expires_ms;      /* CLOCK_MONOTONIC: retained until then */
};

struct evt_sub {
    LIST_FIELDS(struct evt_sub, subs);
    struct evt_chan *ch;
    struct conn *conn;
    uint32_t id;
    uint64_t delivered, lost, lost_untold; /* lost_untold: since the last event it was sent */
    size_t n_filters;
    struct evt_filter filters[];
};

struct evt_chan {
    LIST_FIELDS(struct evt_chan, chans);
    bool cluster;
    bool delivering;                         /* sending: a closed subscriber is only marked (evt.c's chan_sweep()) */
    uint64_t pub_seq;                        /* this halod's events of it */
    uint64_t published, delivered, filtered; /* events seen here; sent to subscribers; kept from one by its filters */
    LIST_HEAD(struct evt_event) retained;    /* oldest first (in publish order, not of expiry) */
    size_t n_retained;
    uint64_t first_expiry_ms; /* the earliest expires_ms of them, or earlier (0: none) */
    LIST_HEAD(struct evt_sub) subs;
    char name[];
};

struct evt_pub;    /* evt-store.c: a cluster-wide publish on its way to the store */
struct evt_own;    /* evt-store.c: a key this halod wrote, deleted once its time is past */
struct evt_batch;  /* evt-store.c: the transaction in flight */
struct evt_range;  /* evt-store.c: the first read in flight */
struct evt_orphan; /* evt-sweep.c: an event of a node that left, deleted here once its time is past */
struct evt_reap;   /* evt-sweep.c: a read of evt/ or a deletion in flight */

/* How long a key with no retention stays in the store: the others read it meanwhile. */
#define EVT_STORE_KEEP_MS 2000

struct evt {
    uv_loop_t *loop;
    store *store;
    char *prefix, *node;
    struct hlc clock;
    LIST_HEAD(struct evt_chan) chans;
    size_t n_chans;
    uv_timer_t prune;
    /* evt-store.c */
    store_watch *watch;
    struct evt_range *range;
    bool committing;
    LIST_HEAD(struct evt_pub) pubs;
    LIST_HEAD(struct evt_own) owns;
    struct evt_batch *inflight;
    /* evt-sweep.c: the events of nodes that left, on the coordinator */
    bool (*takes_over)(void *userdata, const char *node);
    void *userdata;
    bool sweeping, scan_again, scan_on_timer; /* scan_on_timer: a failed call is done again */
    struct evt_reap *scan, *reap;             /* in flight */
    uv_timer_t *sweep;
    LIST_HEAD(struct evt_orphan) orphans;
};

uint64_t evt_now_ms(void);
struct evt_chan *evt_chan_find(struct evt *e, const char *name, bool cluster);
/* The channel, created if new; NULL when out of memory or past EVT_CHANNELS_MAX. */
struct evt_chan *evt_chan_get(struct evt *e, const char *name, bool cluster);
void evt_chan_expire(struct evt_chan *ch);
/* Keeps ev (its expires_ms set) among ch's retained events, the newest. */
void evt_chan_retain(struct evt_chan *ch, struct evt_event *ev);
/* Takes ev. */
void evt_chan_deliver(struct evt_chan *ch, struct evt_event *ev);
Halo__Link__EvtEvent *evt_event_copy(const Halo__Link__EvtEvent *in);

/* evt-store.c: cluster-wide channels.  Publish answers conn once the store has
 * the event (0 or -errno now if it cannot be queued). */
int evt_store_start(struct evt *e);
void evt_store_stop(struct evt *e);
/* Reads every key of evt/ (the result to cb): 0 or -errno (cb does not run). */
int evt_store_read(struct evt *e, store_cb cb, void *userdata);
int evt_store_publish(struct evt *e, struct conn *conn, uint64_t seq, const Halo__Link__EvtEvent *ev);
void evt_store_conn_closed(struct evt *e, struct conn *conn);
void evt_store_prune(struct evt *e);
void evt_admin_channels(struct evt *e, struct conn *conn, uint64_t seq);
/* What is left of a retention of an event of HLC time hlc, in ms: it counts from the publication,
 * so that every halod forgets the event, and the store loses it, at the same time. */
uint64_t evt_left_ms(uint64_t hlc, uint64_t retention_ms);

/* evt-sweep.c */
int evt_sweep_new(struct evt *e);
void evt_sweep_free(struct evt *e);
