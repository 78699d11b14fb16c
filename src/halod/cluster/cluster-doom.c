/* SPDX-License-Identifier: MIT */
/* Beats: a node whose renewals stopped is declared dead (cluster-sync-internal.h). */
#define LOG_AREA LOG_AREA_CLUSTER
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cluster-sync-internal.h"
#include "cluster.h"
#include "keys.h"
#include "log.h"
#include "macro.h"

/*
 * A node that says it beats rewrites its node key with every renewal, and
 * extends its processes' deadline (libhalo: the last renewal sent + TTL -
 * CLUSTER_PROCESS_MARGIN_USEC) only once that write succeeded.  When its key
 * has not changed for that long since this node saw it change, plus
 * DOOM_SLACK_USEC, its processes are dead, whatever its halod does: this node
 * writes doom/<node> in a transaction that holds only if the key is still at
 * the revision it saw, deletes the node's key and its units' states in the
 * same transaction (a proven fence: amf_su_remote() counts them fenced), and
 * revokes its lease.  The node's next beat, which holds only while no doom
 * exists, fails, and it fences itself.  Faster than etcd's own expiry (the
 * TTL plus up to 500 ms): docs/design.md, "Beats".  The slack is the time a
 * process killed at its deadline has to be gone: one took 143 ms to die on a
 * loaded machine (chaos seed 909 --cut, 50 ms of slack then: 8 ms of two
 * ACTIVEs).
 */
#define DOOM_SLACK_USEC (150 * USEC_PER_MSEC)

struct doom_call {
    struct cluster_sync *s;
    char name[]; /* the node declared dead */
};

static void on_doomed(store *st, int error, const store_result *r, void *userdata) {
    struct doom_call *k = userdata;
    struct cluster_sync *s = k->s;
    struct node_info *n = s->amf ? cluster_sync__node_find(s, k->name, false) : NULL;
    if (n) {
        n->dooming = false;
        if (error < 0 && n->alive)
            n->doom_at = now_monotonic_usec() + 100 * USEC_PER_MSEC; /* the store did not answer: again soon */
        else if (error == 0 && r->succeeded) {
            n->doom_at = 0;
            log_notice("Node '%s' renewed nothing for its lease TTL (%lld ms): declared dead, its lease revoked",
                       n->name, (long long)n->ttl_ms);
            (void)store_lease_revoke(s->store, n->lease, NULL, NULL);
        }
        /* else a newer beat: its event set the next wait */
        cluster_sync__arm_node_timer(s);
    }
    free(k);
    cluster_sync__unref(s);
}

void cluster_doom(struct cluster_sync *s, struct node_info *n) {
    n->doom_at = 0;
    if (!s->cluster || !cluster_joined(s->cluster) || !n->alive || !n->beats)
        return;
    size_t n_sgs, n_ops = 0, n_keys = 0;
    struct sg *sgs = amf_sgs(s->amf, &n_sgs);
    for (size_t g = 0; g < n_sgs; g++)
        n_keys += sgs[g].n_sus;
    char node_key[STORE_KEY_MAX], doom_key[STORE_KEY_MAX], value[256];
    char(*keys)[STORE_KEY_MAX] = calloc(n_keys ?: 1, STORE_KEY_MAX);
    store_op *ops = calloc(n_keys + 2, sizeof(*ops));
    struct doom_call *k = malloc(sizeof(*k) + strlen(n->name) + 1);
    if (!keys || !ops || !k || key_name(node_key, s->prefix, KEY_NODES, n->name) < 0 ||
        key_name(doom_key, s->prefix, KEY_DOOM, n->name) < 0)
        goto fail;
    snprintf(value, sizeof(value), "{\"node\":\"%s\",\"lease\":\"%lld\",\"by\":\"%s\"}", n->name, (long long)n->lease,
             s->node);
    /* The doom first: its event comes before the deletions it proves. */
    ops[n_ops++] = (store_op){
        .type = STORE_OP_PUT, .key = doom_key, .key_len = strlen(doom_key), .value = value, .value_len = strlen(value)};
    ops[n_ops++] = (store_op){.type = STORE_OP_DELETE, .key = node_key, .key_len = strlen(node_key)};
    for (size_t g = 0, i = 0; g < n_sgs; g++)
        for (size_t u = 0; u < sgs[g].n_sus && n_ops < STORE_TXN_OPS_MAX; u++)
            if (streq(sgs[g].sus[u].cfg->node, n->name) &&
                key_name(keys[i], s->prefix, KEY_SUSTATE, sgs[g].sus[u].name) >= 0) {
                ops[n_ops++] = (store_op){.type = STORE_OP_DELETE, .key = keys[i], .key_len = strlen(keys[i])};
                i++;
            }
    store_compare cmp = {.key = node_key,
                         .key_len = strlen(node_key),
                         .target = STORE_CMP_MOD,
                         .result = STORE_CMP_EQUAL,
                         .number = n->beat_rev};
    store_txn t = {.compares = &cmp, .n_compares = 1, .success = ops, .n_success = n_ops};
    k->s = s;
    strcpy(k->name, n->name);
    s->refs++;
    if (store_transaction(s->store, &t, on_doomed, k) < 0) {
        s->refs--;
        goto fail;
    }
    n->dooming = true;
    free(keys);
    free(ops);
    return;
fail:
    free(keys);
    free(ops);
    free(k);
    n->doom_at = now_monotonic_usec() + 100 * USEC_PER_MSEC;
}

/* Its node key changed (a beat, or its registration): dead a TTL later without another. */
void cluster_doom_beat_seen(struct cluster_sync *s, struct node_info *n, int64_t rev, json_t *j) {
    n->beats = json_is_true(json_object_get(j, "beats"));
    int64_t ttl = json_integer_value(json_object_get(j, "ttl"));
    n->ttl_ms = ttl > 0 ? ttl * 1000 : (s->cluster ? cluster_ttl(s->cluster) * 1000 : 0);
    if (!n->beats || n->ttl_ms <= 0 || streq(n->name, s->node) || rev <= n->beat_rev)
        return;
    n->beat_rev = rev;
    n->doom_at =
        now_monotonic_usec() + (usec_t)n->ttl_ms * USEC_PER_MSEC - CLUSTER_PROCESS_MARGIN_USEC + DOOM_SLACK_USEC;
    cluster_sync__arm_node_timer(s);
}
