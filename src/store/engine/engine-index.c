/* SPDX-License-Identifier: MIT */
/* The engine's keys: immutable, reference-counted entries in one array sorted by key. */
#include "engine-internal.h"

#include <assert.h>
#include <errno.h>

struct kv_entry *engine_entry_new(const char *key, size_t key_len, const char *value, size_t value_len) {
    struct kv_entry *x = malloc(offsetof(struct kv_entry, data) + key_len + 1 + value_len + 1);
    if (!x)
        return NULL;
    x->refs = 1;
    x->kv = (store_kv){
        .key = x->data,
        .key_len = key_len,
        .value = x->data + key_len + 1,
        .value_len = value_len,
    };
    if (key_len > 0)
        memcpy(x->kv.key, key, key_len);
    x->kv.key[key_len] = 0;
    if (value_len > 0)
        memcpy(x->kv.value, value, value_len);
    x->kv.value[value_len] = 0;
    return x;
}

/* ---- index ---- */

/* Position of the first key >= key. */
size_t engine_index_lower_bound(const store_engine *e, const char *key, size_t key_len) {
    size_t lo = 0, hi = e->n_index;
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        const store_kv *kv = &e->index[mid]->kv;
        if (engine_bytes_cmp(kv->key, kv->key_len, key, key_len) < 0)
            lo = mid + 1;
        else
            hi = mid;
    }
    return lo;
}

/* Returns true and the key's position, or false and where it would go. */
bool engine_index_search(const store_engine *e, const char *key, size_t key_len, size_t *ret_pos) {
    size_t pos = engine_index_lower_bound(e, key, key_len);
    *ret_pos = pos;
    if (pos >= e->n_index)
        return false;
    const store_kv *kv = &e->index[pos]->kv;
    return engine_bytes_cmp(kv->key, kv->key_len, key, key_len) == 0;
}

struct kv_entry *engine_index_find(const store_engine *e, const char *key, size_t key_len) {
    size_t pos;
    return engine_index_search(e, key, key_len, &pos) ? e->index[pos] : NULL;
}

int engine_index_reserve(store_engine *e, size_t more) {
    return engine_grow((void **)&e->index, &e->cap_index, e->n_index + more, sizeof(e->index[0]));
}

/* Takes over the caller's reference; room must have been reserved. */
void engine_index_insert_at(store_engine *e, size_t pos, struct kv_entry *x) {
    assert(e->n_index < e->cap_index);
    memmove(e->index + pos + 1, e->index + pos, (e->n_index - pos) * sizeof(e->index[0]));
    e->index[pos] = x;
    e->n_index++;
}

/* Returns the index's reference to the caller. */
struct kv_entry *engine_index_remove_at(store_engine *e, size_t pos) {
    struct kv_entry *x = e->index[pos];
    memmove(e->index + pos, e->index + pos + 1, (e->n_index - pos - 1) * sizeof(e->index[0]));
    e->n_index--;
    return x;
}
