/* SPDX-License-Identifier: MIT */
/* The keys of the queues under the cluster's prefix, built and read here only (queue.h has the layout). */
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "keys.h"
#include "macro.h"
#include "parse-util.h"
#include "queue-internal.h"
#include "strprintf.h"

void queue_keys_done(struct queue_keys *k) {
    char *all[] = {k->eq, k->eq_node, k->bq, k->bq_seq, k->delivered, k->delivered_node, k->state, k->state_seq};
    for (size_t i = 0; i < ELEMENTSOF(all); i++)
        free(all[i]);
    *k = (struct queue_keys){0};
}

/* A key built into buf (n: the builder's result), copied; NULL on failure. */
static char *dup_key(int n, const char *buf) {
    return n < 0 ? NULL : strdup(buf);
}

int queue_keys_init(struct queue_keys *k, const char *prefix, const char *node) {
    char b[STORE_KEY_MAX];
    *k = (struct queue_keys){
        .eq = dup_key(key_dir(b, prefix, KEY_EQ), b),
        .eq_node = dup_key(key_eq_node(b, prefix, node), b),
        .bq = dup_key(key_dir(b, prefix, KEY_BQ), b),
        .bq_seq = dup_key(key_bq_seq(b, prefix), b),
        .delivered = dup_key(key_dir(b, prefix, KEY_BQ_DELIVERED), b),
        .delivered_node = dup_key(key_name(b, prefix, KEY_BQ_DELIVERED, node), b),
        .state = dup_key(key_dir(b, prefix, KEY_STATE), b),
        .state_seq = dup_key(key_state_seq(b, prefix), b),
    };
    if (!k->eq || !k->eq_node || !k->bq || !k->bq_seq || !k->delivered || !k->delivered_node || !k->state ||
        !k->state_seq) {
        queue_keys_done(k);
        return -ENOMEM;
    }
    return 0;
}

static size_t key_number(char *buf, size_t size, const char *prefix, uint64_t n) {
    return (size_t)snprintf(buf, size, "%s%0*" PRIu64, prefix, KEY_NUMBER_DIGITS, n);
}

/* The number at the end of key after prefix (exactly KEY_NUMBER_DIGITS digits). */
static int key_number_parse(const char *key, size_t key_len, const char *prefix, uint64_t *ret) {
    size_t p = strlen(prefix);
    if (key_len != p + KEY_NUMBER_DIGITS || memcmp(key, prefix, p) != 0)
        return -EINVAL;
    return parse_u64_n(key + p, KEY_NUMBER_DIGITS, ret) < 0 ? -EINVAL : 0;
}

size_t queue_keys_eq_entry(const struct queue_keys *k, uint64_t hlc, char *buf, size_t size) {
    return key_number(buf, size, k->eq_node, hlc);
}

size_t queue_keys_bq_entry(const struct queue_keys *k, uint64_t seq, char *buf, size_t size) {
    return key_number(buf, size, k->bq, seq);
}

int queue_keys_eq_entry_parse(const struct queue_keys *k, const char *key, size_t key_len, uint64_t *ret_hlc) {
    return key_number_parse(key, key_len, k->eq_node, ret_hlc);
}

int queue_keys_bq_entry_parse(const struct queue_keys *k, const char *key, size_t key_len, uint64_t *ret_seq) {
    return key_number_parse(key, key_len, k->bq, ret_seq);
}

int queue_keys_state(const struct queue_keys *k, const char *object, char **ret) {
    char *key = strprintf("%s%s", k->state, object);
    if (!key)
        return -ENOMEM;
    *ret = key;
    return 0;
}

bool queue_keys_is_delivered(const struct queue_keys *k, const store_kv *kv, const char *node) {
    size_t plen = strlen(k->delivered);
    return queue_keys_match_prefix(kv, k->delivered) && kv->key_len - plen == strlen(node) &&
           memcmp(kv->key + plen, node, kv->key_len - plen) == 0;
}

bool queue_keys_match_prefix(const store_kv *kv, const char *prefix) {
    size_t n = strlen(prefix);
    return kv->key_len >= n && memcmp(kv->key, prefix, n) == 0;
}

bool queue_keys_match(const store_kv *kv, const char *key) {
    return kv->key_len == strlen(key) && memcmp(kv->key, key, kv->key_len) == 0;
}
