/* SPDX-License-Identifier: MIT */
/*
 * Which HA object-state notes a process asked for (ObjectInterest, docs/events.md):
 * rules parsed and checked, and the match of one note.  Pure: no I/O, no loop.
 *
 * A note matches when any rule matches: ALL (everything), OBJECT (one
 * "kind:name"), PREFIX (the start of "kind:name"), GROUP (an object of a
 * process of the caller's service group: the process, its services and
 * devices) or POOL (likewise for the caller's pool).  GROUP and POOL know a
 * note's process through the recovery model, so they match the objects the
 * model knows (process:, service:, device:), not nodes or units: add those
 * with OBJECT or PREFIX.
 */
#pragma once

#include <stdbool.h>
#include <stddef.h>

#include "config.h"
#include "hashmap.h"
#include "link.h"

struct interest {
    bool all;               /* an ALL rule: every note, as without rules */
    bool group, pool;       /* the caller's group's, pool's objects */
    struct hashmap objects; /* OBJECT rules: the names (values unused) */
    char **prefixes;        /* PREFIX rules */
    size_t n_prefixes;
};

/* What a note's object belongs to: its process's group (0: none known) and pool (NULL: none). */
struct interest_owner {
    unsigned group;
    const struct config_pool *pool;
};

/*
 * Parses rules (the link validated counts, kinds and lengths).  0 and *ret
 * (free with interest_free()), or -EINVAL with *error saying which rule is
 * wrong and why, -ENOMEM.
 */
int interest_new(Halo__Link__InterestRule *const *rules, size_t n, struct interest **ret, const char **error);
struct interest *interest_free(struct interest *in); /* accepts NULL; returns NULL */

/* Whether a note on object, owned as owner says, goes to a process of group
 * me->group (0: none) and pool me->pool that asked for in (NULL: everything). */
bool interest_match(const struct interest *in, const char *object, const struct interest_owner *owner,
                    const struct interest_owner *me);
