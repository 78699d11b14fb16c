/* SPDX-License-Identifier: MIT */
/*
 * Event channels (SAFplus Event Service with the Rule-Based Engine's filters;
 * docs/events.md).  A channel is a name and a scope: node-local channels live
 * in this halod only; cluster-wide ones go through the store (evt/<channel>/
 * <node>/<hlc>), which every halod watches, so that each delivers to its own
 * subscribers.  halod matches every event against each subscriber's filters
 * before it sends anything: a subscriber is woken only for what it asked.
 *
 * Order: one halod's events of a channel are committed one transaction at a
 * time and numbered (pub_seq), so a publisher's events reach every subscriber
 * in publish order, with the HLC time of their publication.  A subscriber
 * that does not read has its events dropped past EVT_QUEUE_MAX queued bytes,
 * counted, and told in the next one it gets (EvtEvent.lost); the others, and
 * its own HA link, are not held up.
 */
#pragma once

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <uv.h>

#include "link.h"
#include "store.h"

/* Bytes queued for a subscriber's connection past which its events are dropped (and counted). */
#define EVT_QUEUE_MAX (256 * 1024)
/* Retained events a channel keeps, and channels a halod knows, at most. */
#define EVT_RETAINED_MAX 1024
#define EVT_CHANNELS_MAX 1024
/* Subscriptions of one connection. */
#define EVT_SUBS_MAX 64

struct evt;
struct conn;

/* A filter of one pattern field. */
struct evt_filter {
    Halo__Link__EvtFilter__Type type;
    uint8_t value[LINK_EVT_FIELD_MAX], mask[LINK_EVT_FIELD_MAX];
    size_t len;
};

/* Checks and copies a subscription's filters: 0, or -EINVAL with *error (a
 * MASK whose mask is not as long as its value, a value on PASS_ALL). */
int evt_filters_parse(Halo__Link__EvtFilter *const *in, size_t n, struct evt_filter *out, const char **error);
/* Whether an event's pattern passes the filters: filter i applies to field i
 * (a field the event lacks is empty); fields past the filters pass. */
bool evt_filters_match(const struct evt_filter *f, size_t n_filters, const ProtobufCBinaryData *pattern,
                       size_t n_fields);

struct evt_params {
    uv_loop_t *loop;
    store *store; /* NULL: node-local channels only */
    const char *prefix;
    const char *node;
    /* Several nodes: whether this node deletes the events node published (node is not live, and
     * this node is the cluster's coordinator).  NULL: never. */
    bool (*takes_over)(void *userdata, const char *node);
    void *userdata;
};
int evt_new(const struct evt_params *p, struct evt **ret);
struct evt *evt_free(struct evt *e); /* accepts NULL; returns NULL; run the loop once more for its timer */

/* The event service's messages (EvtOpen, EvtPublish, EvtSubscribe, EvtUnsubscribe, Admin
 * EVT_CHANNELS): true if it took msg (and answered it). */
bool evt_handle_msg(struct evt *e, struct conn *conn, const LinkMsg *msg);
void evt_conn_closed(struct evt *e, struct conn *conn);

/* Several nodes: the events of a node that left stay in the store until their retention ends (a
 * promise to subscribers, not to the publisher's node), and are deleted then by the coordinator,
 * since their own halod is not there to.  evt_sweep_scan() reads evt/ and keeps the events of the
 * nodes takes_over() names, to delete each at its time: call it when this node becomes the
 * coordinator, when a node leaves, and once the nodes are known; evt_sweep_stop() when this node is
 * not the coordinator any more. */
void evt_sweep_scan(struct evt *e);
void evt_sweep_stop(struct evt *e);
