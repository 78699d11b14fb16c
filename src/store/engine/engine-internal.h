/* SPDX-License-Identifier: MIT */
/* What the files of the store engine share: its structs, small helpers, and the functions one file calls in another. */
#pragma once

/*
 * The engine by role (store-engine.h describes the whole):
 *   engine-index.c    key entries (immutable, reference-counted) and the sorted index
 *   engine-history.c  the ring of recent events that watches replay
 *   engine-write.c    writes: applied with an undo log, persisted, committed; txn and get
 *   engine-lease.c    leases: the table, the expiry timer, grant/keepalive/revoke
 *   engine-watch.c    watches: their queues of pending events and their callbacks
 *   engine-queue.c    the work queue run from the idle handle: completions and watch deliveries
 *   store-engine.c    creating, loading, starting and freeing an engine
 */

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <uv.h>

#include "list.h"
#include "macro.h"
#include "store-engine.h"

#define engine_container_of(ptr, type, member) ((type *)((char *)(ptr)-offsetof(type, member)))

/* A key's state, immutable once in the index, shared by reference count with
 * results, history and watch queues.  key and value point into data[], each
 * followed by a NUL.  A DELETE event uses an entry with only the key and
 * mod_revision set (a tombstone). */
struct kv_entry {
    unsigned refs;
    store_kv kv;
    char data[];
};

struct hist_item {
    struct kv_entry *entry; /* kv.mod_revision is the event's revision */
    store_event_type type;
};

struct lease {
    int64_t id;
    int64_t ttl;
    uint64_t deadline_msec;
};

enum work_type {
    WORK_COMPLETION,
    WORK_WATCH,
};

/* Something for the idle handle to run: a completion or a watch delivery. */
struct work {
    LIST_FIELDS(struct work, queue); /* in store_engine.queue while queued */
    enum work_type type;
};

struct completion {
    struct work work;
    bool lease_call;
    int error;
    store_cb cb;
    store_lease_cb lease_cb;
    void *userdata;
    store_result result; /* result.kvs == kvs */
    store_kv *kvs;       /* each holds a reference on its entry */
    int64_t lease, ttl;
};

struct engine_watch;
typedef LIST_HEAD(struct engine_watch) engine_watch_list;

struct engine_watch {
    struct store_watch head;                   /* must be first: store_watch * points here */
    LIST_FIELDS(struct engine_watch, watches); /* on *list */
    engine_watch_list *list;                   /* the engine's watches, or the ended ones while it closes; NULL: none */
    struct work work;                          /* in store_engine.queue while queued */
    char *prefix;
    size_t prefix_len;
    int64_t min_revision; /* events of older revisions are not for this watch */
    store_watch_cb cb;
    void *userdata;
    store_event *pending; /* each holds a reference on its entry */
    size_t n_pending, cap_pending;
    int error; /* < 0: deliver this and end */
    bool queued, in_callback, cancelled, ended;
};

struct store_engine {
    struct store head; /* must be first: store * points here */
    const store_engine_persist *persist;
    void *persist_userdata;

    struct kv_entry **index; /* sorted by key; each holds a reference */
    size_t n_index, cap_index;
    int64_t revision;
    int64_t compact_revision;

    struct hist_item *hist; /* ring: cap_hist is 0 or a power of two */
    size_t hist_head, n_hist, cap_hist;

    struct lease *leases; /* sorted by id */
    size_t n_leases, cap_leases;
    int64_t lease_max;

    engine_watch_list watches;
    LIST_HEAD(struct work) queue;
    size_t n_queued;

    uv_idle_t idle;
    uv_timer_t timer;
    unsigned n_handles_open;
    bool started, closing;

    /* store_engine_fail_reads(): the next fail_reads reads under fail_prefix fail with fail_error. */
    char *fail_prefix;
    unsigned fail_reads;
    int fail_error;
};

struct key_change {
    store_event_type type;
    struct kv_entry *old;   /* the index's previous entry (its reference), NULL if the key was absent */
    struct kv_entry *entry; /* PUT: the new entry; DELETE: the tombstone; holds a reference */
};

/* One write in progress: applied to the index, not yet committed. */
struct write {
    int64_t revision; /* the revision it gets if it changes a key */
    struct key_change *changes;
    size_t n_changes, cap_changes;
    store_kv *kvs; /* results of GET ops, each holding a reference */
    size_t n_kvs, cap_kvs;
    int64_t n_deleted;
};

/* ---- small helpers ---- */

static inline store_engine *engine_of(store *s) {
    return (store_engine *)s;
}

static inline uint64_t engine_now_msec(void) {
    return uv_hrtime() / 1000000;
}

/* Grows *array to hold at least want elements of size sz. */
static inline int engine_grow(void **array, size_t *cap, size_t want, size_t sz) {
    if (want <= *cap)
        return 0;
    size_t n = *cap ? *cap : 8;
    while (n < want)
        n *= 2;
    void *p = reallocarray(*array, n, sz);
    if (!p)
        return -ENOMEM;
    *array = p;
    *cap = n;
    return 0;
}

/* Byte-wise order, a proper prefix first (etcd's and SQLite's BLOB order). */
static inline int engine_bytes_cmp(const char *a, size_t a_len, const char *b, size_t b_len) {
    size_t n = MIN(a_len, b_len);
    int r = n > 0 ? memcmp(a, b, n) : 0;
    if (r != 0)
        return r;
    return a_len < b_len ? -1 : a_len > b_len ? 1 : 0;
}

static inline bool engine_has_prefix(const store_kv *kv, const char *prefix, size_t prefix_len) {
    return kv->key_len >= prefix_len && (prefix_len == 0 || memcmp(kv->key, prefix, prefix_len) == 0);
}

static inline struct kv_entry *engine_entry_ref(struct kv_entry *x) {
    x->refs++;
    return x;
}

static inline struct kv_entry *engine_entry_unref(struct kv_entry *x) {
    if (x && --x->refs == 0)
        free(x);
    return NULL;
}

/* The entry a store_kv handed out by this engine belongs to: kv.key is data[0]. */
static inline struct kv_entry *engine_entry_of(const store_kv *kv) {
    return engine_container_of(kv->key, struct kv_entry, data);
}

static inline void engine_kvs_unref(store_kv *kvs, size_t n) {
    for (size_t i = 0; i < n; i++)
        engine_entry_unref(engine_entry_of(&kvs[i]));
}

/* engine-index.c */
/* A new entry with a copy of key and value (value may be NULL with value_len 0); NULL when out of memory. */
struct kv_entry *engine_entry_new(const char *key, size_t key_len, const char *value, size_t value_len);
/* Position of the first key >= key. */
size_t engine_index_lower_bound(const store_engine *e, const char *key, size_t key_len);
/* Returns true and the key's position, or false and where it would go. */
bool engine_index_search(const store_engine *e, const char *key, size_t key_len, size_t *ret_pos);
struct kv_entry *engine_index_find(const store_engine *e, const char *key, size_t key_len);
int engine_index_reserve(store_engine *e, size_t more);
/* Takes over the caller's reference; room must have been reserved. */
void engine_index_insert_at(store_engine *e, size_t pos, struct kv_entry *x);
/* Returns the index's reference to the caller. */
struct kv_entry *engine_index_remove_at(store_engine *e, size_t pos);

/* engine-history.c */
static inline struct hist_item *engine_history_at(const store_engine *e, size_t i) {
    return &e->hist[(e->hist_head + i) & (e->cap_hist - 1)];
}
static inline int64_t engine_history_rev(const store_engine *e, size_t i) {
    return engine_history_at(e, i)->entry->kv.mod_revision;
}
int engine_history_reserve(store_engine *e, size_t want);
void engine_history_pop_front(store_engine *e);
/* Room must have been reserved; takes a new reference. */
void engine_history_push(store_engine *e, store_event_type type, struct kv_entry *x);
/* The compact revision after appending n_new events of revision new_rev. */
int64_t engine_history_compact_after(const store_engine *e, size_t n_new, int64_t new_rev);
/* Drops the events of revisions older than compact. */
void engine_history_trim(store_engine *e, int64_t compact);
/* First history position with revision >= rev. */
size_t engine_history_lower_bound(const store_engine *e, int64_t rev);

/* engine-write.c */
void engine_write_init(store_engine *e, struct write *w);
/* Releases what the write still holds (after a commit or a rollback). */
void engine_write_release(struct write *w);
/* Deletes the key at pos within the write; the next key moves to pos.  0 or -ENOMEM. */
int engine_write_delete_at(store_engine *e, struct write *w, size_t pos);
/* Undoes the write's changes to the index.  Cannot fail. */
void engine_write_rollback(store_engine *e, struct write *w);
/* Makes the write (and lease_change, may be NULL) durable, then moves the
 * revision, history and watches.  0, or an error with nothing committed. */
int engine_write_commit(store_engine *e, struct write *w, const store_change *lease_change, int64_t lease_max);

/* engine-lease.c */
bool engine_lease_search(const store_engine *e, int64_t id, size_t *ret_pos);
/* Room must have been reserved. */
void engine_lease_insert(store_engine *e, int64_t id, int64_t ttl, uint64_t deadline);
uint64_t engine_lease_deadline(int64_t ttl);
/* Arms the timer for the earliest deadline. */
void engine_lease_arm_timer(store_engine *e);

/* engine-watch.c */
/* Queues the write's events for the watches that want them. */
void engine_watch_notify(store_engine *e, const struct write *w);
/* Runs a queued delivery (or the terminal error) of watch w. */
void engine_watch_run(store_engine *e, struct engine_watch *w);
/* Ends every watch with -ECANCELED and frees it (store_free()). */
void engine_watch_end_all(store_engine *e);

/* engine-queue.c */
void engine_queue_push(store_engine *e, struct work *w);
void engine_queue_remove(store_engine *e, struct work *w);
/* Runs every queued completion; drops the queued watch deliveries (store_free()). */
void engine_queue_flush(store_engine *e);
/* A completion for a call; NULL when out of memory. */
struct completion *engine_completion_new(bool lease_call, store_cb cb, store_lease_cb lease_cb, void *userdata);
