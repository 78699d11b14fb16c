/* SPDX-License-Identifier: MIT */
/*
 * Interest filters on the HA object-state notes (since 0.7; docs/events.md).
 *
 * A process that sets the object_states callback gets, by default, every
 * note of the broadcast queue.  With halo_object_interest() it says which
 * objects it wants instead, and halod filters before it sends: a process is
 * woken only for the notes it asked for.
 */
#ifndef HALO_EVENTS_H
#define HALO_EVENTS_H

#include <stddef.h>

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

#ifdef __cplusplus
}
#endif

#endif
