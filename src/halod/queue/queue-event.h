/* SPDX-License-Identifier: MIT */
/*
 * The events of the queues (queue.h) and their JSON: names, validation, and
 * the body of an HTTP POST of events.
 *
 * An event, as JSON:
 *
 *   {"object":"process:ios2","state":"FAILED","node":"n1",
 *    "hlc":"116567895638343683","reason":"exit status 1","epoch":3}
 *
 *   object  "<kind>:<name>"; kind is one of node, process, service, device,
 *           su, comp; name is 1 to 255 printable ASCII characters without
 *           space or '/'.
 *   state   ONLINE, FAILED, TRANSIENT, REPAIR, REPAIRED, REBALANCE, RECOVERING
 *           or OFFLINE.
 *   node    the reporting node, a name as above.
 *   hlc     when it happened: an HLC timestamp (hlc.h) as a decimal string
 *           (JSON numbers lose precision above 2^53).  Optional on input.
 *           As published, the coordinator's time, after the reporter's.
 *   reason  optional free text, at most 511 bytes, no control characters.
 *   epoch   optional integer >= 0: the epoch of the pool process the object
 *           is or belongs to, as the reporter knows it (recovery protocol).
 *   lease   optional integer > 0: a node's incarnation, the store lease under
 *           which it is a member (its node key's), for a node's ONLINE and
 *           FAILED.
 *
 * Fields not listed are ignored (so that new ones can be added); a listed
 * field with a wrong type or value makes the whole event invalid.
 */
#pragma once

#include <jansson.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define QUEUE_NAME_MAX 255
#define QUEUE_REASON_MAX 511
/* "process:<name>" and its NUL. */
#define QUEUE_OBJECT_MAX (sizeof("process:") + QUEUE_NAME_MAX)
/* queue_event_parse() refuses longer input. */
#define QUEUE_EVENT_JSON_MAX 4096
#define QUEUE_EPOCH_NONE INT64_C(-1)

enum queue_kind {
    QUEUE_KIND_NODE,
    QUEUE_KIND_PROCESS,
    QUEUE_KIND_SERVICE,
    QUEUE_KIND_DEVICE,
    QUEUE_KIND_SU,
    QUEUE_KIND_COMP,
    _QUEUE_KIND_MAX,
};

/* Motr's M0_NC_* set, with RECOVERING (DTM) and OFFLINE. */
enum queue_ha_state {
    QUEUE_HA_ONLINE,
    QUEUE_HA_FAILED,
    QUEUE_HA_TRANSIENT,
    QUEUE_HA_REPAIR,
    QUEUE_HA_REPAIRED,
    QUEUE_HA_REBALANCE,
    QUEUE_HA_RECOVERING,
    QUEUE_HA_OFFLINE,
    _QUEUE_HA_MAX,
};

struct queue_event {
    enum queue_kind kind;
    char name[QUEUE_NAME_MAX + 1];
    enum queue_ha_state state;
    char node[QUEUE_NAME_MAX + 1]; /* the reporting node */
    uint64_t hlc;                  /* 0: none (eq_append() stamps it) */
    char reason[QUEUE_REASON_MAX + 1];
    int64_t epoch; /* QUEUE_EPOCH_NONE or >= 0 */
    int64_t lease; /* 0: none */
};

/* NULL for a value out of range. */
const char *queue_kind_to_string(enum queue_kind k);
const char *queue_ha_state_to_string(enum queue_ha_state s);
/* The enum value, or -EINVAL. */
int queue_kind_from_string(const char *s);
int queue_ha_state_from_string(const char *s);

/* 1 to QUEUE_NAME_MAX bytes of printable ASCII without space or '/'. */
bool queue_name_valid(const char *name);

/* Fills ev with defaults: empty strings, hlc 0, epoch QUEUE_EPOCH_NONE, then
 * the object ("kind:name") and state.  Returns 0 or -EINVAL. */
int queue_event_init(struct queue_event *ev, const char *object, enum queue_ha_state state);
/* Writes "kind:name" into buf; returns 0 or -EINVAL. */
int queue_event_object(const struct queue_event *ev, char buf[static QUEUE_OBJECT_MAX]);
/* 0 if ev is a valid event (an empty node is allowed only if allow_no_node), else -EINVAL. */
int queue_event_validate(const struct queue_event *ev, bool allow_no_node);

/* A new JSON object for ev (the caller owns it); 0, -EINVAL (invalid event) or -ENOMEM. */
int queue_event_to_json(const struct queue_event *ev, json_t **ret);
/* Reads and validates an event; 0, or -EINVAL for anything wrong (never a
 * crash, whatever j is).  *ret is written only on success. */
int queue_event_from_json(const json_t *j, struct queue_event *ret);
/* The same from text: at most QUEUE_EVENT_JSON_MAX bytes of one JSON object
 * (duplicate keys refused).  0 or -EINVAL. */
int queue_event_parse(const char *buf, size_t len, struct queue_event *ret);

/*
 * The body of an HTTP POST of events (POST /v1/events): one event, an array
 * of events or {"events": [...]}, duplicate keys refused.  An event without
 * "node" was reported by default_node (NULL: "node" is required).  An
 * "epoch" or "lease" is ignored: epochs and incarnations are halo's own (the
 * recovery protocol's steps carry them), and one posted from outside could
 * pass for a step of the local recovery.  Whether the objects exist is the caller's to check.
 *
 * Returns 0 with *ret_events (*ret_n events, 1 to max, hlc 0 unless given,
 * epoch QUEUE_EPOCH_NONE; the caller frees the array); -EINVAL with
 * *ret_error, a static text for the client (no event or not one of those
 * shapes, more than max events, an invalid event); or -ENOMEM.  Nothing is
 * written on failure but *ret_error.
 */
int queue_events_parse_body(const char *body, size_t len, const char *default_node, size_t max,
                            struct queue_event **ret_events, size_t *ret_n, const char **ret_error);
