/* SPDX-License-Identifier: MIT */
/*
 * Interest filters on the HA object-state notes, and event channels (since
 * 0.7; docs/events.md).
 *
 * A process that sets the object_states callback gets, by default, every
 * note of the broadcast queue.  With halo_object_interest() it says which
 * objects it wants instead, and halod filters before it sends: a process is
 * woken only for the notes it asked for.
 *
 * Event channels (the SA Forum / SAFplus Event Service): a process opens a
 * channel (cluster-wide or this node only), publishes events (a pattern of
 * byte strings and a payload) and subscribes with filters on the pattern's
 * fields; halod filters before it wakes a subscriber.  Any handle from
 * halo_open() may use them, registered or not.
 */
#ifndef HALO_EVENTS_H
#define HALO_EVENTS_H

#include <stddef.h>
#include <stdint.h>

#include "halo/halo.h"

#ifdef __cplusplus
extern "C" {
#endif

/* The most rules in one call. */
#define HALO_INTEREST_RULES_MAX 64

typedef enum halo_interest_kind {
    HALO_INTEREST_ALL = 0,    /* every note: the default */
    HALO_INTEREST_OBJECT = 1, /* value: one object, "kind:name" ("node:n1", "process:ios-3") */
    HALO_INTEREST_PREFIX = 2, /* value: the start of "kind:name" ("process:ios-", "node:") */
    HALO_INTEREST_GROUP = 3,  /* the processes of the registered component's service group (its peers and
                               * itself), with their services and devices; no value */
    HALO_INTEREST_POOL = 4,   /* likewise for its pool (none: nothing); no value */
} halo_interest_kind;

typedef struct halo_interest_rule {
    halo_interest_kind kind;
    const char *value; /* OBJECT, PREFIX: at most HALO_OBJECT_MAX - 1 bytes, printable, no space or '/'; else NULL */
} halo_interest_rule;

/*
 * From now on, object-state notes (the object_states callback) only for the
 * objects that match one of the n rules; n 0 (rules may be NULL) or an ALL
 * rule: every note again.  Called before halo_register(), it also filters the
 * snapshot of the current states that registering sends.  The rules are kept
 * and given again to the halod a lost link reconnects to.
 * Returns 0, -EINVAL (a bad rule or count: halod would refuse it too),
 * -ENOTCONN, -ENOMEM.
 */
int halo_object_interest(halo *h, const halo_interest_rule *rules, size_t n);

/* ---- event channels ---- */

#define HALO_EVT_FIELDS_MAX 16    /* fields in a pattern, filters in a subscription */
#define HALO_EVT_FIELD_MAX 255    /* bytes in a field, a filter's value or mask */
#define HALO_EVT_PAYLOAD_MAX 4096 /* bytes of payload */
#define HALO_EVT_RETENTION_MAX_MS (24u * 3600 * 1000)
#define HALO_EVT_SUBS_MAX 64 /* subscriptions of a handle */

typedef enum halo_evt_scope {
    HALO_EVT_LOCAL = 0,   /* this node's processes only, kept in its halod */
    HALO_EVT_CLUSTER = 1, /* every node's, through the store */
} halo_evt_scope;

/* A field of a pattern: bytes, not NUL-terminated. */
typedef struct halo_evt_field {
    const void *data;
    size_t len;
} halo_evt_field;

typedef enum halo_evt_filter_type {
    HALO_EVT_PASS_ALL = 0, /* any field (no value) */
    HALO_EVT_PREFIX = 1,   /* the field starts with value */
    HALO_EVT_SUFFIX = 2,   /* the field ends with value */
    HALO_EVT_EXACT = 3,    /* the field is value */
    HALO_EVT_MASK = 4,     /* the field has at least len bytes and (field & mask) == (value & mask) */
} halo_evt_filter_type;

/* Filter i of a subscription applies to field i of an event's pattern (a field the event lacks is empty). */
typedef struct halo_evt_filter {
    halo_evt_filter_type type;
    const void *value; /* len bytes */
    size_t len;
    const void *mask; /* HALO_EVT_MASK: len bytes; else NULL */
} halo_evt_filter;

/* An event as a subscriber gets it; valid during the callback only. */
typedef struct halo_evt_event {
    unsigned subscription;
    const char *channel;
    const halo_evt_field *pattern;
    size_t n_pattern;
    const void *payload;
    size_t payload_len;
    const char *publisher; /* "<node>/<pid>" */
    uint64_t pub_seq;      /* increasing per channel and publishing node, in publish order */
    uint64_t hlc;          /* when it was published (hybrid logical clock) */
    uint64_t lost;         /* events of this subscription dropped before this one: it did not read */
    unsigned retention_ms;
} halo_evt_event;

typedef void (*halo_evt_cb)(halo *h, const halo_evt_event *ev, void *userdata);

/* Opens (creates if new) a channel: a name of 1 to 255 letters, digits and "-_.:@".
 * Returns 0, -EINVAL, -ENOSPC (halod knows too many channels), -ENOTCONN. */
int halo_evt_open(halo *h, const char *channel, halo_evt_scope scope);

/*
 * Publishes an event on an open channel; *ret_id (may be NULL) is its pub_seq.
 * Returns once halod has it (cluster: once the store has it).  Returns 0,
 * -EINVAL (bad name or field count), -EMSGSIZE (a field, the payload or the
 * retention over its limit), -ENOENT (channel not open on this node),
 * -EAGAIN (too many publishes waiting for the store), -ENOTCONN, -HALO_ETRYAGAIN.
 */
int halo_evt_publish(halo *h, const char *channel, halo_evt_scope scope, const halo_evt_field *pattern, size_t n,
                     const void *payload, size_t len, unsigned retention_ms, uint64_t *ret_id);

/*
 * Subscribes to an open channel with n filters: cb, through halo_dispatch(),
 * gets each event that passes them (the events the channel retains first).
 * Returns 0 and *ret_sub, -EINVAL (a bad filter), -EMSGSIZE, -ENOENT,
 * -ENOSPC (HALO_EVT_SUBS_MAX), -ENOTCONN.  A registered component's handle,
 * whose link reconnects to a new halod, subscribes there again (events
 * published meanwhile are not replayed, except those the channel retains).
 */
int halo_evt_subscribe(halo *h, const char *channel, halo_evt_scope scope, const halo_evt_filter *filters, size_t n,
                       halo_evt_cb cb, void *userdata, unsigned *ret_sub);
int halo_evt_unsubscribe(halo *h, unsigned sub);

#ifdef __cplusplus
}
#endif

#endif
