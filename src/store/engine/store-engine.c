/* SPDX-License-Identifier: MIT */
/* The in-memory revisioned key-value engine shared by the local store backends (see store-engine.h). */
#include "store-engine.h"

#include <assert.h>
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "macro.h"

#define engine_container_of(ptr, type, member) ((type *)((char *)(ptr)-offsetof(type, member)))

/* Intrusive circular doubly-linked list. */
struct link {
    struct link *prev, *next;
};

static void link_init(struct link *head) {
    head->prev = head->next = head;
}

static bool link_empty(const struct link *head) {
    return head->next == head;
}

static void link_append(struct link *head, struct link *l) {
    l->prev = head->prev;
    l->next = head;
    head->prev->next = l;
    head->prev = l;
}

static void link_remove(struct link *l) {
    l->prev->next = l->next;
    l->next->prev = l->prev;
    l->prev = l->next = l;
}

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
    struct link link;
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

struct engine_watch {
    struct store_watch head; /* must be first: store_watch * points here */
    struct link link;        /* in store_engine.watches while linked */
    struct work work;        /* in store_engine.queue while queued */
    char *prefix;
    size_t prefix_len;
    int64_t min_revision; /* events of older revisions are not for this watch */
    store_watch_cb cb;
    void *userdata;
    store_event *pending; /* each holds a reference on its entry */
    size_t n_pending, cap_pending;
    int error; /* < 0: deliver this and end */
    bool linked, queued, in_callback, cancelled, ended;
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

    struct link watches; /* engine_watch.link */
    struct link queue;   /* work.link */
    size_t n_queued;

    uv_idle_t idle;
    uv_timer_t timer;
    unsigned n_handles_open;
    bool started, closing;
};

static store_engine *engine_of(store *s) {
    return (store_engine *)s;
}

static struct engine_watch *watch_of(store_watch *w) {
    return (struct engine_watch *)w;
}

static uint64_t now_msec(void) {
    return uv_hrtime() / 1000000;
}

/* Grows *array to hold at least want elements of size sz. */
static int grow(void **array, size_t *cap, size_t want, size_t sz) {
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
static int bytes_cmp(const char *a, size_t a_len, const char *b, size_t b_len) {
    size_t n = MIN(a_len, b_len);
    int r = n > 0 ? memcmp(a, b, n) : 0;
    if (r != 0)
        return r;
    return a_len < b_len ? -1 : a_len > b_len ? 1 : 0;
}

static bool has_prefix(const store_kv *kv, const char *prefix, size_t prefix_len) {
    return kv->key_len >= prefix_len && (prefix_len == 0 || memcmp(kv->key, prefix, prefix_len) == 0);
}

/* ---- entries ---- */

static struct kv_entry *entry_new(const char *key, size_t key_len, const char *value, size_t value_len) {
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

static struct kv_entry *entry_ref(struct kv_entry *x) {
    x->refs++;
    return x;
}

static struct kv_entry *entry_unref(struct kv_entry *x) {
    if (x && --x->refs == 0)
        free(x);
    return NULL;
}

/* The entry a store_kv handed out by this engine belongs to: kv.key is data[0]. */
static struct kv_entry *entry_of(const store_kv *kv) {
    return engine_container_of(kv->key, struct kv_entry, data);
}

static void kvs_unref(store_kv *kvs, size_t n) {
    for (size_t i = 0; i < n; i++)
        entry_unref(entry_of(&kvs[i]));
}

/* ---- index ---- */

/* Position of the first key >= key. */
static size_t index_lower_bound(const store_engine *e, const char *key, size_t key_len) {
    size_t lo = 0, hi = e->n_index;
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        const store_kv *kv = &e->index[mid]->kv;
        if (bytes_cmp(kv->key, kv->key_len, key, key_len) < 0)
            lo = mid + 1;
        else
            hi = mid;
    }
    return lo;
}

/* Returns true and the key's position, or false and where it would go. */
static bool index_search(const store_engine *e, const char *key, size_t key_len, size_t *ret_pos) {
    size_t pos = index_lower_bound(e, key, key_len);
    *ret_pos = pos;
    if (pos >= e->n_index)
        return false;
    const store_kv *kv = &e->index[pos]->kv;
    return bytes_cmp(kv->key, kv->key_len, key, key_len) == 0;
}

static struct kv_entry *index_find(const store_engine *e, const char *key, size_t key_len) {
    size_t pos;
    return index_search(e, key, key_len, &pos) ? e->index[pos] : NULL;
}

static int index_reserve(store_engine *e, size_t more) {
    return grow((void **)&e->index, &e->cap_index, e->n_index + more, sizeof(e->index[0]));
}

/* Takes over the caller's reference; room must have been reserved. */
static void index_insert_at(store_engine *e, size_t pos, struct kv_entry *x) {
    assert(e->n_index < e->cap_index);
    memmove(e->index + pos + 1, e->index + pos, (e->n_index - pos) * sizeof(e->index[0]));
    e->index[pos] = x;
    e->n_index++;
}

/* Returns the index's reference to the caller. */
static struct kv_entry *index_remove_at(store_engine *e, size_t pos) {
    struct kv_entry *x = e->index[pos];
    memmove(e->index + pos, e->index + pos + 1, (e->n_index - pos - 1) * sizeof(e->index[0]));
    e->n_index--;
    return x;
}

/* ---- history ---- */

static struct hist_item *hist_at(const store_engine *e, size_t i) {
    return &e->hist[(e->hist_head + i) & (e->cap_hist - 1)];
}

static int64_t hist_rev(const store_engine *e, size_t i) {
    return hist_at(e, i)->entry->kv.mod_revision;
}

static int history_reserve(store_engine *e, size_t want) {
    if (want <= e->cap_hist)
        return 0;
    size_t n = e->cap_hist ? e->cap_hist : 64;
    while (n < want)
        n *= 2;
    struct hist_item *h = calloc(n, sizeof(h[0]));
    if (!h)
        return -ENOMEM;
    for (size_t i = 0; i < e->n_hist; i++)
        h[i] = *hist_at(e, i);
    free(e->hist);
    e->hist = h;
    e->cap_hist = n;
    e->hist_head = 0;
    return 0;
}

static void history_pop_front(store_engine *e) {
    struct hist_item *h = hist_at(e, 0);
    entry_unref(h->entry);
    *h = (struct hist_item){};
    e->hist_head = (e->hist_head + 1) & (e->cap_hist - 1);
    e->n_hist--;
}

/* Room must have been reserved; takes a new reference. */
static void history_push(store_engine *e, store_event_type type, struct kv_entry *x) {
    assert(e->n_hist < e->cap_hist);
    e->n_hist++;
    *hist_at(e, e->n_hist - 1) = (struct hist_item){.entry = entry_ref(x), .type = type};
}

/* The compact revision after appending n_new events of revision new_rev:
 * whole revisions are dropped from the oldest until at most
 * STORE_ENGINE_HISTORY_MAX events remain. */
static int64_t history_compact_after(const store_engine *e, size_t n_new, int64_t new_rev) {
    size_t total = e->n_hist + n_new, i = 0;
    int64_t compact = e->compact_revision;

    while (total > STORE_ENGINE_HISTORY_MAX) {
        if (i == e->n_hist)
            return new_rev + 1; /* this write alone is too big to keep */
        int64_t rev = hist_rev(e, i);
        while (i < e->n_hist && hist_rev(e, i) == rev) {
            i++;
            total--;
        }
        compact = rev + 1;
    }
    return compact;
}

/* Drops the events of revisions older than compact. */
static void history_trim(store_engine *e, int64_t compact) {
    while (e->n_hist > 0 && hist_rev(e, 0) < compact)
        history_pop_front(e);
    e->compact_revision = MAX(e->compact_revision, compact);
}

/* First history position with revision >= rev. */
static size_t history_lower_bound(const store_engine *e, int64_t rev) {
    size_t lo = 0, hi = e->n_hist;
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        if (hist_rev(e, mid) < rev)
            lo = mid + 1;
        else
            hi = mid;
    }
    return lo;
}

/* ---- leases ---- */

static bool lease_search(const store_engine *e, int64_t id, size_t *ret_pos) {
    size_t lo = 0, hi = e->n_leases;
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        if (e->leases[mid].id < id)
            lo = mid + 1;
        else
            hi = mid;
    }
    *ret_pos = lo;
    return lo < e->n_leases && e->leases[lo].id == id;
}

static void lease_insert(store_engine *e, int64_t id, int64_t ttl, uint64_t deadline) {
    size_t pos;
    bool found = lease_search(e, id, &pos);
    assert(!found && e->n_leases < e->cap_leases);
    (void)found;
    memmove(e->leases + pos + 1, e->leases + pos, (e->n_leases - pos) * sizeof(e->leases[0]));
    e->leases[pos] = (struct lease){.id = id, .ttl = ttl, .deadline_msec = deadline};
    e->n_leases++;
}

static void lease_remove_at(store_engine *e, size_t pos) {
    memmove(e->leases + pos, e->leases + pos + 1, (e->n_leases - pos - 1) * sizeof(e->leases[0]));
    e->n_leases--;
}

static void on_lease_timer(uv_timer_t *t);

/* Arms the timer for the earliest deadline (a linear scan: a node has tens of leases). */
static void lease_arm_timer(store_engine *e) {
    if (!e->started || e->closing)
        return;
    if (e->n_leases == 0) {
        (void)uv_timer_stop(&e->timer);
        return;
    }
    uint64_t first = UINT64_MAX, now = now_msec();
    for (size_t i = 0; i < e->n_leases; i++)
        first = MIN(first, e->leases[i].deadline_msec);
    /* At least 1 ms: the loop's clock may lag ours, and the callback re-checks. */
    (void)uv_timer_start(&e->timer, on_lease_timer, first > now ? first - now : 1, 0);
}

static uint64_t lease_deadline(int64_t ttl) {
    return now_msec() + (uint64_t)ttl * 1000;
}

/* ---- the work queue ---- */

static void on_idle(uv_idle_t *h);

static void queue_push(store_engine *e, struct work *w) {
    link_append(&e->queue, &w->link);
    if (e->n_queued++ == 0)
        (void)uv_idle_start(&e->idle, on_idle);
}

static void queue_remove(store_engine *e, struct work *w) {
    link_remove(&w->link);
    e->n_queued--;
}

static struct work *queue_pop(store_engine *e) {
    if (link_empty(&e->queue))
        return NULL;
    struct work *w = engine_container_of(e->queue.next, struct work, link);
    queue_remove(e, w);
    return w;
}

/* ---- completions ---- */

static struct completion *completion_new(bool lease_call, store_cb cb, store_lease_cb lease_cb, void *userdata) {
    struct completion *c = calloc(1, sizeof(*c));
    if (!c)
        return NULL;
    c->work.type = WORK_COMPLETION;
    link_init(&c->work.link);
    c->lease_call = lease_call;
    c->cb = cb;
    c->lease_cb = lease_cb;
    c->userdata = userdata;
    return c;
}

static struct completion *completion_free(struct completion *c) {
    if (!c)
        return NULL;
    kvs_unref(c->kvs, c->result.n_kvs);
    free(c->kvs);
    free(c);
    return NULL;
}

static void completion_run(store_engine *e, struct completion *c) {
    if (c->lease_call) {
        if (c->lease_cb)
            c->lease_cb(&e->head, c->error, c->lease, c->error < 0 ? 0 : c->ttl, c->userdata);
    } else if (c->cb)
        c->cb(&e->head, c->error, c->error < 0 ? NULL : &c->result, c->userdata);
    completion_free(c);
}

/* ---- watches ---- */

static void watch_drop_pending(struct engine_watch *w) {
    for (size_t i = 0; i < w->n_pending; i++)
        entry_unref(entry_of(&w->pending[i].kv));
    w->n_pending = 0;
}

static void watch_free(store_engine *e, struct engine_watch *w) {
    if (w->linked) {
        link_remove(&w->link);
        w->linked = false;
    }
    if (w->queued) {
        queue_remove(e, &w->work);
        w->queued = false;
    }
    watch_drop_pending(w);
    free(w->pending);
    free(w->prefix);
    free(w);
}

static void watch_schedule(store_engine *e, struct engine_watch *w) {
    if (w->ended || w->cancelled)
        return;
    if (!w->queued && (w->error < 0 || w->n_pending > 0)) {
        w->queued = true;
        queue_push(e, &w->work);
    }
}

/* Ends the watch with error: what was pending is dropped, the error is delivered. */
static void watch_fail(store_engine *e, struct engine_watch *w, int error) {
    watch_drop_pending(w);
    w->error = error;
    watch_schedule(e, w);
}

static int watch_push(struct engine_watch *w, store_event_type type, struct kv_entry *x) {
    if (grow((void **)&w->pending, &w->cap_pending, w->n_pending + 1, sizeof(w->pending[0])) < 0)
        return -ENOMEM;
    w->pending[w->n_pending++] = (store_event){.type = type, .kv = entry_ref(x)->kv};
    return 0;
}

static bool watch_wants(const struct engine_watch *w, int64_t rev, const store_kv *kv) {
    return rev >= w->min_revision && has_prefix(kv, w->prefix, w->prefix_len);
}

/* Delivers a terminal error to a watch that has not ended yet. */
static void watch_end(struct engine_watch *w, int error) {
    w->ended = true;
    w->in_callback = true;
    w->cb(&w->head, error, NULL, 0, w->userdata);
    w->in_callback = false;
}

static void watch_run(store_engine *e, struct engine_watch *w) {
    w->queued = false;
    if (w->error < 0) {
        /* Stays linked (and skipped by writes) until cancelled or store_free(). */
        watch_drop_pending(w);
        watch_end(w, w->error);
    } else {
        /* Take the batch: events that arrive during the callback start a new one. */
        store_event *events = TAKE_PTR(w->pending);
        size_t n = w->n_pending;
        w->n_pending = w->cap_pending = 0;

        w->in_callback = true;
        w->cb(&w->head, 0, events, n, w->userdata);
        w->in_callback = false;

        for (size_t i = 0; i < n; i++)
            entry_unref(entry_of(&events[i].kv));
        free(events);
    }

    if (w->cancelled)
        watch_free(e, w);
    else if (e->closing) {
        /* store_free() ran inside the callback and left this watch to us. */
        if (!w->ended)
            watch_end(w, -ECANCELED);
        watch_free(e, w);
    }
}

/* ---- writes ---- */

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

static void write_init(store_engine *e, struct write *w) {
    *w = (struct write){.revision = e->revision + 1};
}

/* Releases what the write still holds (after a commit or a rollback). */
static void write_release(struct write *w) {
    for (size_t i = 0; i < w->n_changes; i++) {
        entry_unref(w->changes[i].old);
        entry_unref(w->changes[i].entry);
    }
    free(w->changes);
    kvs_unref(w->kvs, w->n_kvs);
    free(w->kvs);
    *w = (struct write){};
}

static int write_reserve_change(struct write *w) {
    return grow((void **)&w->changes, &w->cap_changes, w->n_changes + 1, sizeof(w->changes[0]));
}

/* Takes over both references; room must have been reserved. */
static void write_add_change(struct write *w, store_event_type type, struct kv_entry *old, struct kv_entry *x) {
    assert(w->n_changes < w->cap_changes);
    w->changes[w->n_changes++] = (struct key_change){.type = type, .old = old, .entry = x};
}

static int write_put(store_engine *e, struct write *w, const char *key, size_t key_len, const char *value,
                     size_t value_len, int64_t lease) {
    size_t pos;

    if (lease != 0 && !lease_search(e, lease, &pos))
        return -ENOENT;
    if (index_reserve(e, 1) < 0 || write_reserve_change(w) < 0)
        return -ENOMEM;

    struct kv_entry *x = entry_new(key, key_len, value, value_len);
    if (!x)
        return -ENOMEM;
    bool found = index_search(e, key, key_len, &pos);
    struct kv_entry *old = found ? e->index[pos] : NULL;
    x->kv.create_revision = old ? old->kv.create_revision : w->revision;
    x->kv.mod_revision = w->revision;
    x->kv.version = old ? old->kv.version + 1 : 1;
    x->kv.lease = lease;
    if (old)
        e->index[pos] = x;
    else
        index_insert_at(e, pos, x);
    write_add_change(w, STORE_EVENT_PUT, old, entry_ref(x));
    return 0;
}

static int write_delete_at(store_engine *e, struct write *w, size_t pos) {
    if (write_reserve_change(w) < 0)
        return -ENOMEM;
    const store_kv *kv = &e->index[pos]->kv;
    struct kv_entry *t = entry_new(kv->key, kv->key_len, NULL, 0);
    if (!t)
        return -ENOMEM;
    t->kv.mod_revision = w->revision;
    w->n_deleted++;
    write_add_change(w, STORE_EVENT_DELETE, index_remove_at(e, pos), t);
    return 0;
}

static int write_delete(store_engine *e, struct write *w, const char *key, size_t key_len, bool prefix) {
    size_t pos;

    if (!prefix)
        return index_search(e, key, key_len, &pos) ? write_delete_at(e, w, pos) : 0;

    /* Deleting at pos moves the next key there. */
    pos = index_lower_bound(e, key, key_len);
    while (pos < e->n_index && has_prefix(&e->index[pos]->kv, key, key_len)) {
        int r = write_delete_at(e, w, pos);
        if (r < 0)
            return r;
    }
    return 0;
}

static int write_get_add(struct write *w, struct kv_entry *x, bool keys_only) {
    static char empty[1];
    if (grow((void **)&w->kvs, &w->cap_kvs, w->n_kvs + 1, sizeof(w->kvs[0])) < 0)
        return -ENOMEM;
    store_kv *kv = &w->kvs[w->n_kvs++];
    *kv = entry_ref(x)->kv;
    if (keys_only) { /* the entry is found again by its key, never its value */
        kv->value = empty;
        kv->value_len = 0;
    }
    return 0;
}

static int write_get(store_engine *e, struct write *w, const store_op *op) {
    const char *key = op->key;
    size_t key_len = op->key_len, pos;

    if (op->type == STORE_OP_GET)
        return index_search(e, key, key_len, &pos) ? write_get_add(w, e->index[pos], op->keys_only) : 0;

    for (pos = index_lower_bound(e, key, key_len); pos < e->n_index && has_prefix(&e->index[pos]->kv, key, key_len);
         pos++) {
        int r = write_get_add(w, e->index[pos], op->keys_only);
        if (r < 0)
            return r;
    }
    return 0;
}

static int write_op(store_engine *e, struct write *w, const store_op *op) {
    switch (op->type) {
    case STORE_OP_PUT:
        return write_put(e, w, op->key, op->key_len, op->value, op->value_len, op->lease);
    case STORE_OP_DELETE:
        return write_delete(e, w, op->key, op->key_len, false);
    case STORE_OP_DELETE_PREFIX:
        return write_delete(e, w, op->key, op->key_len, true);
    case STORE_OP_GET:
    case STORE_OP_GET_PREFIX:
        return write_get(e, w, op);
    }
    return -EINVAL;
}

/* Undoes the write's changes to the index, newest first.  Cannot fail: the
 * index never shrinks during a write, so re-inserting needs no allocation. */
static void write_rollback(store_engine *e, struct write *w) {
    for (size_t i = w->n_changes; i-- > 0;) {
        struct key_change *c = &w->changes[i];
        size_t pos;
        bool found;

        if (c->type == STORE_EVENT_PUT) {
            found = index_search(e, c->entry->kv.key, c->entry->kv.key_len, &pos);
            assert(found && e->index[pos] == c->entry);
            if (c->old)
                e->index[pos] = c->old;
            else
                (void)index_remove_at(e, pos);
            entry_unref(c->entry); /* the index's reference */
        } else {
            found = index_search(e, c->old->kv.key, c->old->kv.key_len, &pos);
            assert(!found);
            index_insert_at(e, pos, c->old);
        }
        (void)found;
        c->old = NULL; /* back in the index */
        c->entry = entry_unref(c->entry);
    }
    w->n_changes = 0;
}

static void watches_notify(store_engine *e, const struct write *w) {
    for (struct link *l = e->watches.next; l != &e->watches; l = l->next) {
        struct engine_watch *wt = engine_container_of(l, struct engine_watch, link);
        if (wt->error < 0 || wt->cancelled || w->revision < wt->min_revision)
            continue;
        for (size_t i = 0; i < w->n_changes; i++) {
            const struct key_change *c = &w->changes[i];
            if (!watch_wants(wt, w->revision, &c->entry->kv))
                continue;
            if (watch_push(wt, c->type, c->entry) < 0) {
                /* Never a silent gap: the watch ends and its owner re-watches. */
                watch_fail(e, wt, -ENOMEM);
                break;
            }
        }
        watch_schedule(e, wt);
    }
}

/*
 * Makes the write durable through the hook, then moves the revision, history
 * and watches.  lease_change (may be NULL) goes with it.  Returns 0, or the
 * hook's error / -ENOMEM with nothing of the write committed (the caller
 * rolls the index back).
 */
static int write_commit(store_engine *e, struct write *w, const store_change *lease_change, int64_t lease_max) {
    size_t n = w->n_changes + (lease_change ? 1 : 0);
    if (n == 0)
        return 0;

    bool keys = w->n_changes > 0;
    int64_t compact = keys ? history_compact_after(e, w->n_changes, w->revision) : e->compact_revision;
    if (keys && history_reserve(e, MIN(e->n_hist + w->n_changes, (size_t)STORE_ENGINE_HISTORY_MAX)) < 0)
        return -ENOMEM;

    if (e->persist) {
        _cleanup_free_ store_change *changes = calloc(n, sizeof(changes[0]));
        if (!changes)
            return -ENOMEM;
        for (size_t i = 0; i < w->n_changes; i++)
            changes[i] = (store_change){
                .type = w->changes[i].type == STORE_EVENT_PUT ? STORE_CHANGE_PUT : STORE_CHANGE_DELETE,
                .kv = &w->changes[i].entry->kv,
            };
        if (lease_change)
            changes[n - 1] = *lease_change;
        store_commit c = {
            .revision = keys ? w->revision : e->revision,
            .compact_revision = compact,
            .lease_max = lease_max,
            .changes = changes,
            .n_changes = n,
        };
        int r = e->persist->commit(e->persist_userdata, &c);
        if (r < 0)
            return r;
    }

    /* Committed: nothing below may fail. */
    if (keys) {
        e->revision = w->revision;
        history_trim(e, compact);
        if (w->revision >= compact)
            for (size_t i = 0; i < w->n_changes; i++)
                history_push(e, w->changes[i].type, w->changes[i].entry);
        assert(e->n_hist <= STORE_ENGINE_HISTORY_MAX);
        watches_notify(e, w);
    }
    return 0;
}

/* ---- txn and get ---- */

static bool compare_holds(const store_engine *e, const store_compare *cmp) {
    const struct kv_entry *x = index_find(e, cmp->key, cmp->key_len);
    int c;

    if (cmp->target == STORE_CMP_VALUE) {
        if (!x)
            return false; /* as etcd: a value compare on a missing key always fails */
        c = bytes_cmp(x->kv.value, x->kv.value_len, cmp->value, cmp->value_len);
    } else {
        int64_t v = !x                                 ? 0
                    : cmp->target == STORE_CMP_VERSION ? x->kv.version
                    : cmp->target == STORE_CMP_CREATE  ? x->kv.create_revision
                                                       : x->kv.mod_revision;
        c = v < cmp->number ? -1 : v > cmp->number ? 1 : 0;
    }

    switch (cmp->result) {
    case STORE_CMP_EQUAL:
        return c == 0;
    case STORE_CMP_NOT_EQUAL:
        return c != 0;
    case STORE_CMP_LESS:
        return c < 0;
    case STORE_CMP_GREATER:
        return c > 0;
    }
    return false;
}

/* Runs txn into c (its result or its error). */
static void txn_execute(store_engine *e, const store_txn *txn, struct completion *c) {
    bool ok = true;
    for (size_t i = 0; ok && i < txn->n_compares; i++)
        ok = compare_holds(e, &txn->compares[i]);
    const store_op *ops = ok ? txn->success : txn->failure;
    size_t n_ops = ok ? txn->n_success : txn->n_failure;

    struct write w;
    write_init(e, &w);
    int r = 0;
    for (size_t i = 0; r >= 0 && i < n_ops; i++)
        r = write_op(e, &w, &ops[i]);
    if (r >= 0)
        r = write_commit(e, &w, NULL, e->lease_max);
    if (r < 0) {
        write_rollback(e, &w);
        write_release(&w);
        c->error = r;
        return;
    }

    c->kvs = TAKE_PTR(w.kvs);
    c->result = (store_result){
        .revision = e->revision,
        .succeeded = ok,
        .kvs = c->kvs,
        .n_kvs = w.n_kvs,
        .n_deleted = w.n_deleted,
    };
    w.n_kvs = 0;
    write_release(&w);
}

int store_engine_txn(store *s, const store_txn *txn, store_cb cb, void *userdata) {
    store_engine *e = engine_of(s);

    assert(e->started);
    if (e->closing)
        return -ECANCELED;
    struct completion *c = completion_new(false, cb, NULL, userdata);
    if (!c)
        return -ENOMEM;
    /* Queued first, so that it runs before the watch deliveries of its own write. */
    queue_push(e, &c->work);
    txn_execute(e, txn, c);
    return 0;
}

int store_engine_get(store *s, const char *key, size_t key_len, bool prefix, store_cb cb, void *userdata) {
    store_op op = {.type = prefix ? STORE_OP_GET_PREFIX : STORE_OP_GET, .key = key, .key_len = key_len};
    store_txn txn = {.success = &op, .n_success = 1};
    return store_engine_txn(s, &txn, cb, userdata);
}

int64_t store_engine_revision(store *s) {
    return engine_of(s)->revision;
}

/* ---- leases ---- */

int store_engine_lease_grant(store *s, int64_t ttl, store_lease_cb cb, void *userdata) {
    store_engine *e = engine_of(s);

    if (e->closing)
        return -ECANCELED;
    struct completion *c = completion_new(true, NULL, cb, userdata);
    if (!c)
        return -ENOMEM;

    queue_push(e, &c->work);
    int64_t id = e->lease_max + 1;
    store_change change = {.type = STORE_CHANGE_LEASE_GRANT, .lease = id, .ttl = ttl};
    struct write w;
    write_init(e, &w);
    int r = grow((void **)&e->leases, &e->cap_leases, e->n_leases + 1, sizeof(e->leases[0]));
    if (r >= 0)
        r = write_commit(e, &w, &change, id);
    write_release(&w);
    if (r < 0)
        c->error = r;
    else {
        lease_insert(e, id, ttl, lease_deadline(ttl));
        e->lease_max = id;
        lease_arm_timer(e);
        c->lease = id;
        c->ttl = ttl;
    }
    return 0;
}

int store_engine_lease_keepalive(store *s, int64_t lease, store_lease_cb cb, void *userdata) {
    store_engine *e = engine_of(s);
    size_t pos;

    if (e->closing)
        return -ECANCELED;
    struct completion *c = completion_new(true, NULL, cb, userdata);
    if (!c)
        return -ENOMEM;

    queue_push(e, &c->work);
    c->lease = lease;
    if (!lease_search(e, lease, &pos))
        c->error = -ENOENT;
    else {
        e->leases[pos].deadline_msec = lease_deadline(e->leases[pos].ttl);
        c->ttl = e->leases[pos].ttl;
        lease_arm_timer(e);
    }
    return 0;
}

/* Revokes the lease at pos: deletes its keys in one revision, then forgets it.
 * Returns 0, or an error with nothing changed. */
static int lease_revoke_at(store_engine *e, size_t pos) {
    int64_t id = e->leases[pos].id;
    store_change change = {.type = STORE_CHANGE_LEASE_REVOKE, .lease = id};
    struct write w;
    int r = 0;

    /* A scan of every key: leases are revoked far less often than keys change. */
    write_init(e, &w);
    for (size_t i = 0; r >= 0 && i < e->n_index;)
        if (e->index[i]->kv.lease == id)
            r = write_delete_at(e, &w, i); /* the next key moves to i */
        else
            i++;
    if (r >= 0)
        r = write_commit(e, &w, &change, e->lease_max);
    if (r < 0)
        write_rollback(e, &w);
    write_release(&w);
    if (r < 0)
        return r;

    lease_remove_at(e, pos);
    lease_arm_timer(e);
    return 0;
}

int store_engine_lease_revoke(store *s, int64_t lease, store_lease_cb cb, void *userdata) {
    store_engine *e = engine_of(s);
    size_t pos;

    if (e->closing)
        return -ECANCELED;
    struct completion *c = completion_new(true, NULL, cb, userdata);
    if (!c)
        return -ENOMEM;

    queue_push(e, &c->work);
    c->lease = lease;
    c->error = lease_search(e, lease, &pos) ? lease_revoke_at(e, pos) : -ENOENT;
    return 0;
}

static void on_lease_timer(uv_timer_t *t) {
    store_engine *e = t->data;
    uint64_t now = now_msec();

    for (size_t i = 0; i < e->n_leases;) {
        if (e->leases[i].deadline_msec <= now) {
            if (lease_revoke_at(e, i) >= 0)
                continue; /* the next lease moved to i */
            /* Not persisted, so not applied: the keys stay until a retry works. */
            e->leases[i].deadline_msec = now + STORE_ENGINE_LEASE_RETRY_MSEC;
        }
        i++;
    }
    lease_arm_timer(e);
}

/* ---- watches ---- */

int store_engine_watch(store *s, const char *prefix, size_t prefix_len, int64_t start_revision, store_watch_cb cb,
                       void *userdata, store_watch **ret) {
    store_engine *e = engine_of(s);

    assert(e->started);
    if (e->closing)
        return -ECANCELED;

    struct engine_watch *w = calloc(1, sizeof(*w));
    if (!w)
        return -ENOMEM;
    w->head.store = s;
    link_init(&w->link);
    link_init(&w->work.link);
    w->work.type = WORK_WATCH;
    w->cb = cb;
    w->userdata = userdata;
    w->prefix_len = prefix_len;
    w->prefix = malloc(prefix_len + 1);
    if (!w->prefix) {
        free(w);
        return -ENOMEM;
    }
    if (prefix_len > 0)
        memcpy(w->prefix, prefix, prefix_len);
    w->prefix[prefix_len] = 0;

    /* 0 is "from now on"; a start in the future waits for its revision. */
    w->min_revision = start_revision == 0 ? e->revision + 1 : start_revision;
    if (w->min_revision <= e->revision) {
        if (w->min_revision < e->compact_revision)
            w->error = -ESTALE;
        else
            for (size_t i = history_lower_bound(e, w->min_revision); i < e->n_hist; i++) {
                const struct hist_item *h = hist_at(e, i);
                if (!watch_wants(w, h->entry->kv.mod_revision, &h->entry->kv))
                    continue;
                if (watch_push(w, h->type, h->entry) < 0) {
                    watch_free(e, w);
                    return -ENOMEM;
                }
            }
    }

    link_append(&e->watches, &w->link);
    w->linked = true;
    watch_schedule(e, w);
    *ret = &w->head;
    return 0;
}

void store_engine_watch_cancel(store_watch *h) {
    struct engine_watch *w = watch_of(h);
    store_engine *e = engine_of(h->store);

    if (w->cancelled)
        return;
    w->cancelled = true;
    if (w->in_callback) {
        /* Freed by whoever runs the callback, once it returns; writes skip it meanwhile. */
        watch_drop_pending(w);
        return;
    }
    watch_free(e, w);
}

/* ---- the loop side ---- */

static void on_idle(uv_idle_t *h) {
    store_engine *e = h->data;

    /* Only what is queued now: callbacks that queue more wait for the next round. */
    for (size_t budget = e->n_queued; budget > 0 && !e->closing; budget--) {
        struct work *w = queue_pop(e);
        if (!w)
            break;
        if (w->type == WORK_COMPLETION)
            completion_run(e, engine_container_of(w, struct completion, work));
        else
            watch_run(e, engine_container_of(w, struct engine_watch, work));
    }
    if (!e->closing && e->n_queued == 0)
        (void)uv_idle_stop(&e->idle);
}

static void on_handle_closed(uv_handle_t *h) {
    store_engine *e = h->data;
    if (--e->n_handles_open == 0)
        free(e);
}

/* ---- life cycle ---- */

int store_engine_new(uv_loop_t *loop, const store_ops *ops, const store_engine_persist *persist, void *persist_userdata,
                     store_engine **ret) {
    assert(loop && ops && ret);

    store_engine *e = calloc(1, sizeof(*e));
    if (!e)
        return -ENOMEM;
    e->head = (struct store){.ops = ops, .loop = loop};
    e->persist = persist;
    e->persist_userdata = persist_userdata;
    e->revision = 1;
    e->compact_revision = 1;
    link_init(&e->watches);
    link_init(&e->queue);
    *ret = e;
    return 0;
}

store *store_engine_store(store_engine *e) {
    return &e->head;
}

static bool kv_sizes_ok(const store_kv *kv) {
    return kv->key && kv->key_len > 0 && kv->key_len <= STORE_KEY_MAX && (kv->value || kv->value_len == 0) &&
           kv->value_len <= STORE_VALUE_MAX;
}

int store_engine_load_kv(store_engine *e, const store_kv *kv) {
    size_t pos;

    assert(!e->started);
    if (!kv_sizes_ok(kv) || kv->version < 1 || kv->create_revision < 2 || kv->mod_revision < kv->create_revision ||
        kv->lease < 0)
        return -EBADMSG;
    if (index_search(e, kv->key, kv->key_len, &pos))
        return -EBADMSG;
    if (index_reserve(e, 1) < 0)
        return -ENOMEM;
    struct kv_entry *x = entry_new(kv->key, kv->key_len, kv->value, kv->value_len);
    if (!x)
        return -ENOMEM;
    x->kv.create_revision = kv->create_revision;
    x->kv.mod_revision = kv->mod_revision;
    x->kv.version = kv->version;
    x->kv.lease = kv->lease;
    index_insert_at(e, pos, x);
    return 0;
}

int store_engine_load_lease(store_engine *e, int64_t lease, int64_t ttl) {
    size_t pos;

    assert(!e->started);
    if (lease <= 0 || ttl <= 0 || lease_search(e, lease, &pos))
        return -EBADMSG;
    if (grow((void **)&e->leases, &e->cap_leases, e->n_leases + 1, sizeof(e->leases[0])) < 0)
        return -ENOMEM;
    lease_insert(e, lease, ttl, 0);
    return 0;
}

int store_engine_load_event(store_engine *e, store_event_type type, const store_kv *kv) {
    struct kv_entry *x;

    assert(!e->started);
    if (!kv_sizes_ok(kv) || kv->mod_revision < 2 || (type != STORE_EVENT_PUT && type != STORE_EVENT_DELETE))
        return -EBADMSG;
    if (e->n_hist > 0 && hist_rev(e, e->n_hist - 1) > kv->mod_revision)
        return -EBADMSG;
    if (type == STORE_EVENT_PUT &&
        (kv->version < 1 || kv->create_revision < 2 || kv->create_revision > kv->mod_revision))
        return -EBADMSG;
    if (history_reserve(e, e->n_hist + 1) < 0)
        return -ENOMEM;

    /* The key's current state is often this very event: share it. */
    x = type == STORE_EVENT_PUT ? index_find(e, kv->key, kv->key_len) : NULL;
    if (x && x->kv.mod_revision == kv->mod_revision)
        entry_ref(x);
    else {
        x = entry_new(kv->key, kv->key_len, type == STORE_EVENT_PUT ? kv->value : NULL,
                      type == STORE_EVENT_PUT ? kv->value_len : 0);
        if (!x)
            return -ENOMEM;
        x->kv.mod_revision = kv->mod_revision;
        if (type == STORE_EVENT_PUT) {
            x->kv.create_revision = kv->create_revision;
            x->kv.version = kv->version;
            x->kv.lease = kv->lease;
        }
    }
    history_push(e, type, x);
    entry_unref(x); /* history_push took its own */
    return 0;
}

int store_engine_start(store_engine *e, int64_t revision, int64_t compact_revision, int64_t lease_max) {
    size_t pos;

    assert(!e->started);
    if (revision < 1 || compact_revision < 1 || compact_revision > revision + 1 || lease_max < 0)
        return -EBADMSG;
    for (size_t i = 0; i < e->n_index; i++) {
        const store_kv *kv = &e->index[i]->kv;
        if (kv->mod_revision > revision || (kv->lease != 0 && !lease_search(e, kv->lease, &pos)))
            return -EBADMSG;
    }
    if (e->n_leases > 0 && e->leases[e->n_leases - 1].id > lease_max)
        return -EBADMSG;
    if (e->n_hist > 0 && hist_rev(e, e->n_hist - 1) > revision)
        return -EBADMSG;

    e->revision = revision;
    e->compact_revision = compact_revision;
    e->lease_max = lease_max;
    /* Events older than the compact revision are of no use, and a smaller
     * STORE_ENGINE_HISTORY_MAX than the one that wrote them keeps fewer. */
    history_trim(e, compact_revision);
    history_trim(e, history_compact_after(e, 0, revision));

    /* As etcd after a leader change: every lease gets a full TTL from now. */
    for (size_t i = 0; i < e->n_leases; i++)
        e->leases[i].deadline_msec = lease_deadline(e->leases[i].ttl);

    (void)uv_idle_init(e->head.loop, &e->idle);
    (void)uv_timer_init(e->head.loop, &e->timer);
    e->idle.data = e->timer.data = e;
    e->n_handles_open = 2;
    e->started = true;
    lease_arm_timer(e);
    return 0;
}

/* Runs every queued completion and ends every watch; see store.h. */
static void engine_flush_callbacks(store_engine *e) {
    struct work *w;

    /* Queued watch deliveries are dropped here, their watches are ended below. */
    while ((w = queue_pop(e))) {
        if (w->type == WORK_COMPLETION)
            completion_run(e, engine_container_of(w, struct completion, work));
        else
            engine_container_of(w, struct engine_watch, work)->queued = false;
    }

    /* One at a time from the head, and freed only once every watch has had its
     * callback: a callback may cancel any watch, ended or not. */
    struct link ended;
    link_init(&ended);
    while (!link_empty(&e->watches)) {
        struct engine_watch *wt = engine_container_of(e->watches.next, struct engine_watch, link);
        link_remove(&wt->link);
        watch_drop_pending(wt);
        if (wt->in_callback) {
            wt->linked = false; /* watch_run() ends and frees it when its callback returns */
            continue;
        }
        link_append(&ended, &wt->link);
        if (!wt->ended && !wt->cancelled) {
            watch_end(wt, -ECANCELED);
            if (wt->cancelled)
                watch_free(e, wt);
        }
    }
    while (!link_empty(&ended))
        watch_free(e, engine_container_of(ended.next, struct engine_watch, link));
}

void store_engine_free(store *s) {
    store_engine *e = s ? engine_of(s) : NULL;

    if (!e || e->closing)
        return;
    e->closing = true;

    /* Every watch is freed by now, except one in its callback (watch_run() frees it). */
    if (e->started)
        engine_flush_callbacks(e);

    if (e->persist && e->persist->close)
        e->persist->close(e->persist_userdata);

    for (size_t i = 0; i < e->n_index; i++)
        entry_unref(e->index[i]);
    free(e->index);
    while (e->n_hist > 0)
        history_pop_front(e);
    free(e->hist);
    free(e->leases);
    e->index = NULL;
    e->hist = NULL;
    e->leases = NULL;
    e->n_index = e->n_leases = 0;

    if (!e->started) {
        free(e);
        return;
    }
    uv_close((uv_handle_t *)&e->idle, on_handle_closed);
    uv_close((uv_handle_t *)&e->timer, on_handle_closed);
}
