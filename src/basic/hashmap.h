/* SPDX-License-Identifier: MIT */
/*
 * A hash table from strings (copied) to pointers (not owned): chained, with a
 * power-of-two number of buckets that doubles when the table holds as many
 * items as buckets.  A zeroed struct hashmap is an empty table.
 *
 *     struct hashmap m = {0};
 *     r = hashmap_put(&m, "process:a", v);        (0, -EEXIST or -ENOMEM)
 *     v = hashmap_get(&m, "process:a");
 *     struct hashmap_iter i = {0};
 *     while (hashmap_iterate(&m, &i, &key, &v))
 *         ...;
 *     hashmap_done(&m, free);
 */
#pragma once

#include <stdbool.h>
#include <stddef.h>

struct hashmap_entry;

struct hashmap {
    struct hashmap_entry **buckets;
    size_t n_buckets, n;
};

/* Where an iteration is; zeroed before the first hashmap_iterate(). */
struct hashmap_iter {
    size_t bucket;
    struct hashmap_entry *next;
};

/* Adds key (copied) with value: 0, -EEXIST (key is there: nothing changed) or -ENOMEM. */
int hashmap_put(struct hashmap *m, const char *key, void *value);
/* The value of key, or NULL if it is not there (or its value is NULL). */
void *hashmap_get(const struct hashmap *m, const char *key);
bool hashmap_contains(const struct hashmap *m, const char *key);
/* Takes key out; returns its value (NULL if it was not there). */
void *hashmap_remove(struct hashmap *m, const char *key);
size_t hashmap_size(const struct hashmap *m);

/*
 * The next item, in no particular order: true with its key and value (either
 * out-parameter may be NULL), false at the end.  The item just returned may
 * be removed before the next call; any other change ends the iteration's
 * validity.
 */
bool hashmap_iterate(const struct hashmap *m, struct hashmap_iter *i, const char **ret_key, void **ret_value);

/* Empties m, calling free_value (may be NULL) on every value; m is then a zeroed, empty table. */
void hashmap_done(struct hashmap *m, void (*free_value)(void *value));
