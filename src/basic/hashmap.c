/* SPDX-License-Identifier: MIT */
/* A hash table from strings to pointers (hashmap.h). */
#include "hashmap.h"

#include <errno.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#define HASHMAP_BUCKETS_MIN 64

struct hashmap_entry {
    struct hashmap_entry *next;
    uint64_t hash;
    void *value;
    char key[];
};

/* FNV-1a: short keys, no adversary (the keys are object names of the cluster's own description). */
static uint64_t hash_string(const char *s) {
    uint64_t h = UINT64_C(14695981039346656037);
    for (; *s; s++)
        h = (h ^ (unsigned char)*s) * UINT64_C(1099511628211);
    return h;
}

static struct hashmap_entry **bucket_of(const struct hashmap *m, uint64_t hash) {
    return &m->buckets[hash & (m->n_buckets - 1)];
}

/* The link that points at key's entry (the bucket's head or an entry's next), or NULL. */
static struct hashmap_entry **find_link(const struct hashmap *m, const char *key) {
    if (m->n_buckets == 0)
        return NULL;
    uint64_t h = hash_string(key);
    for (struct hashmap_entry **p = bucket_of(m, h); *p; p = &(*p)->next)
        if ((*p)->hash == h && strcmp((*p)->key, key) == 0)
            return p;
    return NULL;
}

static int grow(struct hashmap *m) {
    size_t nb = m->n_buckets ? m->n_buckets * 2 : HASHMAP_BUCKETS_MIN;
    struct hashmap_entry **b = calloc(nb, sizeof(*b));
    if (!b)
        return -ENOMEM;
    for (size_t i = 0; i < m->n_buckets; i++)
        for (struct hashmap_entry *e = m->buckets[i], *next; e; e = next) {
            next = e->next;
            size_t k = e->hash & (nb - 1);
            e->next = b[k];
            b[k] = e;
        }
    free(m->buckets);
    m->buckets = b;
    m->n_buckets = nb;
    return 0;
}

int hashmap_put(struct hashmap *m, const char *key, void *value) {
    if (!m || !key)
        return -EINVAL;
    if (find_link(m, key))
        return -EEXIST;
    if (m->n >= m->n_buckets && grow(m) < 0)
        return -ENOMEM;
    size_t len = strlen(key);
    struct hashmap_entry *e = malloc(sizeof(*e) + len + 1);
    if (!e)
        return -ENOMEM;
    e->hash = hash_string(key);
    e->value = value;
    memcpy(e->key, key, len + 1);
    struct hashmap_entry **b = bucket_of(m, e->hash);
    e->next = *b;
    *b = e;
    m->n++;
    return 0;
}

void *hashmap_get(const struct hashmap *m, const char *key) {
    struct hashmap_entry **p = m && key ? find_link(m, key) : NULL;
    return p ? (*p)->value : NULL;
}

bool hashmap_contains(const struct hashmap *m, const char *key) {
    return m && key && find_link(m, key);
}

void *hashmap_remove(struct hashmap *m, const char *key) {
    struct hashmap_entry **p = m && key ? find_link(m, key) : NULL;
    if (!p)
        return NULL;
    struct hashmap_entry *e = *p;
    void *value = e->value;
    *p = e->next;
    free(e);
    m->n--;
    return value;
}

size_t hashmap_size(const struct hashmap *m) {
    return m ? m->n : 0;
}

bool hashmap_iterate(const struct hashmap *m, struct hashmap_iter *i, const char **ret_key, void **ret_value) {
    struct hashmap_entry *e = i->next;
    while (!e && m && i->bucket < m->n_buckets)
        e = m->buckets[i->bucket++];
    if (!e)
        return false;
    /* Taken now: the caller may remove e. */
    i->next = e->next;
    if (ret_key)
        *ret_key = e->key;
    if (ret_value)
        *ret_value = e->value;
    return true;
}

void hashmap_done(struct hashmap *m, void (*free_value)(void *value)) {
    if (!m)
        return;
    for (size_t i = 0; i < m->n_buckets; i++)
        for (struct hashmap_entry *e = m->buckets[i], *next; e; e = next) {
            next = e->next;
            if (free_value)
                free_value(e->value);
            free(e);
        }
    free(m->buckets);
    *m = (struct hashmap){0};
}
