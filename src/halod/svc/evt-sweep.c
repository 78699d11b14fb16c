/* SPDX-License-Identifier: MIT */
/*
 * The events of nodes that left (evt.h, evt_sweep_scan()).  A halod deletes its own keys of evt/
 * once their retention is past (evt-store.c); a node that died for good is not there to, so the
 * coordinator does: when it becomes the coordinator, when a node leaves, and once the nodes are
 * known, it reads evt/ and keeps the events of the nodes that are not live (the orphans), and
 * deletes each when its retention ends, counted from its HLC time as its publisher counts it (at
 * least EVT_STORE_KEEP_MS), with one timer at the earliest.  Until then the event stays: a halod
 * that starts meanwhile reads it and retains it for its subscribers.
 *
 * A deletion is guarded by each key's mod revision as read: a key its node, back meanwhile,
 * deleted (or anything that wrote the key again) fails the guard, and evt/ is read again.  A new
 * coordinator reads evt/ itself, so what one that died had not deleted yet is not left behind.
 */
#define LOG_AREA LOG_AREA_MAIN
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "evt-internal.h"
#include "keys.h"
#include "log.h"
#include "macro.h"
#include "svc.h"

/* Keys deleted in one transaction: a compare and a delete each (STORE_TXN_OPS_MAX). */
#define EVT_REAP_MAX 64
/* A read or a deletion that failed is tried again after this. */
#define EVT_SWEEP_RETRY_MS 1000

struct evt_orphan {
    LIST_FIELDS(struct evt_orphan, orphans);
    uint64_t expires_ms; /* CLOCK_MONOTONIC */
    int64_t mod;         /* the key's mod revision as read: the deletion's guard */
    const char *node;    /* after the key, in the same allocation */
    char key[];
};

/* A read of evt/ or a deletion in flight; e is NULL once the sweep stopped (or evt was freed). */
struct evt_reap {
    struct evt *e;
    LIST_HEAD(struct evt_orphan) orphans; /* a deletion's keys */
};

/* Frees every orphan of a list (head: a LIST_HEAD of them). */
#define ORPHANS_FREE(head)                     \
    do {                                       \
        struct evt_orphan *o_;                 \
        while ((o_ = LIST_POP(orphans, head))) \
            free(o_);                          \
    } while (0)

static void on_timer(uv_timer_t *t);

/* The read of evt/ again, in EVT_SWEEP_RETRY_MS: a store call failed. */
static void retry_later(struct evt *e) {
    e->scan_on_timer = true;
    uv_timer_start(e->sweep, on_timer, EVT_SWEEP_RETRY_MS, 0);
}

static void on_reaped(store *s, int error, const store_result *result, void *userdata);

/* Deletes the orphans whose time is past (EVT_REAP_MAX at a time, one transaction in flight),
 * then waits for the next. */
static void reap(struct evt *e) {
    if (!e->sweeping || e->reap || e->scan_on_timer)
        return;
    uint64_t now = evt_now_ms(), first = UINT64_MAX;
    struct evt_reap *g = calloc(1, sizeof(*g));
    if (!g) {
        retry_later(e);
        return;
    }
    store_compare cmps[EVT_REAP_MAX];
    store_op ops[EVT_REAP_MAX];
    size_t n = 0;
    struct evt_orphan *o, *next;
    LIST_FOREACH_SAFE (orphans, o, next, &e->orphans) {
        if (o->expires_ms > now || n == EVT_REAP_MAX) {
            first = MIN(first, o->expires_ms);
            continue;
        }
        LIST_REMOVE(orphans, &e->orphans, o);
        if (!e->takes_over(e->userdata, o->node)) {
            free(o); /* its node is back: its halod read it at its start, and deletes it */
            continue;
        }
        cmps[n] = (store_compare){.key = o->key,
                                  .key_len = strlen(o->key),
                                  .target = STORE_CMP_MOD,
                                  .result = STORE_CMP_EQUAL,
                                  .number = o->mod};
        ops[n++] = (store_op){.type = STORE_OP_DELETE, .key = o->key, .key_len = strlen(o->key)};
        LIST_APPEND(orphans, &g->orphans, o);
    }
    if (first != UINT64_MAX)
        uv_timer_start(e->sweep, on_timer, first > now ? first - now : 0, 0);
    if (n == 0) {
        free(g);
        return;
    }
    g->e = e;
    e->reap = g;
    store_txn txn = {.compares = cmps, .n_compares = n, .success = ops, .n_success = n};
    int r = store_transaction(e->store, &txn, on_reaped, g);
    if (r < 0)
        on_reaped(e->store, r, NULL, g);
}

static void on_reaped(store *s, int error, const store_result *result, void *userdata) {
    struct evt_reap *g = userdata;
    struct evt *e = g->e;
    size_t n = 0;
    struct evt_orphan *o;
    LIST_FOREACH (orphans, o, &g->orphans)
        n++;
    ORPHANS_FREE(&g->orphans);
    free(g);
    if (!e)
        return;
    e->reap = NULL;
    if (error == -ECANCELED)
        return;
    if (error < 0) {
        log_warning_errno(error, "Failed to delete the events of nodes that left: %m; reading them again in %d ms",
                          EVT_SWEEP_RETRY_MS);
        retry_later(e);
    } else if (!result->succeeded) {
        log_debug("An event of a node that left went or changed meanwhile; reading evt/ again");
        evt_sweep_scan(e);
    } else {
        log_debug("Deleted %zu events of nodes that left: their retention is over", n);
        reap(e);
    }
}

/* kv, if its node is one this node takes over: an orphan, deleted when its retention ends. */
static bool orphan_take(struct evt *e, const store_kv *kv) {
    Halo__Link__EvtEvent *ev = halo__link__evt_event__unpack(NULL, kv->value_len, (const uint8_t *)kv->value);
    char node[LINK_NAME_MAX + 1], key[STORE_KEY_MAX];
    const char *slash = ev && ev->publisher ? strrchr(ev->publisher, '/') : NULL;
    size_t len = slash ? (size_t)(slash - ev->publisher) : 0;
    bool ok = len > 0 && len < sizeof(node) && svc_name_valid(ev->channel, SVC_NAME_MAX);
    if (ok) {
        memcpy(node, ev->publisher, len);
        node[len] = '\0';
        /* Its own key (the publisher's node is the one the key names), of a node that is gone. */
        ok = !streq(node, e->node) && key_evt_entry(key, e->prefix, ev->channel, node, ev->hlc) >= 0 &&
             streq(key, kv->key) && e->takes_over(e->userdata, node);
    }
    uint64_t left = ok ? evt_left_ms(ev->hlc, MAX(ev->retention_ms, (uint32_t)EVT_STORE_KEEP_MS)) : 0;
    if (ev)
        halo__link__evt_event__free_unpacked(ev, NULL);
    struct evt_orphan *o = ok ? malloc(sizeof(*o) + kv->key_len + 1 + len + 1) : NULL;
    if (!o)
        return false; /* a later read finds it again */
    o->expires_ms = evt_now_ms() + left;
    o->mod = kv->mod_revision;
    strcpy(o->key, kv->key);
    o->node = strcpy(o->key + kv->key_len + 1, node);
    LIST_APPEND(orphans, &e->orphans, o);
    return true;
}

static void on_scanned(store *s, int error, const store_result *result, void *userdata) {
    _cleanup_free_ struct evt_reap *g = userdata;
    struct evt *e = g->e;
    if (!e)
        return;
    e->scan = NULL;
    if (error == -ECANCELED)
        return;
    if (error < 0) {
        log_warning_errno(error, "Failed to read the events of nodes that left: %m; reading them again in %d ms",
                          EVT_SWEEP_RETRY_MS);
        retry_later(e);
        return;
    }
    ORPHANS_FREE(&e->orphans);
    size_t n = 0;
    for (size_t i = 0; i < result->n_kvs; i++)
        n += orphan_take(e, &result->kvs[i]);
    if (n > 0)
        log_info("Nodes that left published %zu events still in the store: each is deleted here when its "
                 "retention ends",
                 n);
    if (e->scan_again) /* a node left meanwhile: its events may be past this read's */
        evt_sweep_scan(e);
    reap(e);
}

void evt_sweep_scan(struct evt *e) {
    if (!e || !e->sweep)
        return;
    e->sweeping = true;
    if (e->scan) {
        e->scan_again = true;
        return;
    }
    e->scan_again = e->scan_on_timer = false;
    struct evt_reap *g = calloc(1, sizeof(*g));
    int r = -ENOMEM;
    if (g) {
        g->e = e;
        e->scan = g;
        r = evt_store_read(e, on_scanned, g);
    }
    if (r < 0) {
        e->scan = NULL;
        free(g);
        log_warning_errno(r, "Failed to read the events of nodes that left: %m");
        retry_later(e);
    }
}

void evt_sweep_stop(struct evt *e) {
    if (!e || !e->sweep)
        return;
    e->sweeping = e->scan_again = e->scan_on_timer = false;
    if (e->scan)
        e->scan->e = NULL;
    if (e->reap)
        e->reap->e = NULL;
    e->scan = e->reap = NULL;
    ORPHANS_FREE(&e->orphans);
    uv_timer_stop(e->sweep);
}

static void on_timer(uv_timer_t *t) {
    struct evt *e = t->data;
    if (e->scan_on_timer)
        evt_sweep_scan(e);
    else
        reap(e);
}

int evt_sweep_new(struct evt *e) {
    if (!e->store || !e->takes_over)
        return 0;
    e->sweep = malloc(sizeof(*e->sweep));
    if (!e->sweep)
        return -ENOMEM;
    uv_timer_init(e->loop, e->sweep);
    e->sweep->data = e;
    uv_unref((uv_handle_t *)e->sweep);
    return 0;
}

void evt_sweep_free(struct evt *e) {
    evt_sweep_stop(e);
    if (e->sweep)
        uv_close((uv_handle_t *)e->sweep, (uv_close_cb)free);
    e->sweep = NULL;
}
