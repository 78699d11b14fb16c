/* SPDX-License-Identifier: MIT */
/* The engine's history: the events of the last revisions, in a ring, that watches from the past replay. */
#include "engine-internal.h"

#include <assert.h>
#include <errno.h>

int engine_history_reserve(store_engine *e, size_t want) {
    if (want <= e->cap_hist)
        return 0;
    size_t n = e->cap_hist ? e->cap_hist : 64;
    while (n < want)
        n *= 2;
    struct hist_item *h = calloc(n, sizeof(h[0]));
    if (!h)
        return -ENOMEM;
    for (size_t i = 0; i < e->n_hist; i++)
        h[i] = *engine_history_at(e, i);
    free(e->hist);
    e->hist = h;
    e->cap_hist = n;
    e->hist_head = 0;
    return 0;
}

void engine_history_pop_front(store_engine *e) {
    struct hist_item *h = engine_history_at(e, 0);
    engine_entry_unref(h->entry);
    *h = (struct hist_item){};
    e->hist_head = (e->hist_head + 1) & (e->cap_hist - 1);
    e->n_hist--;
}

/* Room must have been reserved; takes a new reference. */
void engine_history_push(store_engine *e, store_event_type type, struct kv_entry *x) {
    assert(e->n_hist < e->cap_hist);
    e->n_hist++;
    *engine_history_at(e, e->n_hist - 1) = (struct hist_item){.entry = engine_entry_ref(x), .type = type};
}

/* The compact revision after appending n_new events of revision new_rev:
 * whole revisions are dropped from the oldest until at most
 * STORE_ENGINE_HISTORY_MAX events remain. */
int64_t engine_history_compact_after(const store_engine *e, size_t n_new, int64_t new_rev) {
    size_t total = e->n_hist + n_new, i = 0;
    int64_t compact = e->compact_revision;

    while (total > STORE_ENGINE_HISTORY_MAX) {
        if (i == e->n_hist)
            return new_rev + 1; /* this write alone is too big to keep */
        int64_t rev = engine_history_rev(e, i);
        while (i < e->n_hist && engine_history_rev(e, i) == rev) {
            i++;
            total--;
        }
        compact = rev + 1;
    }
    return compact;
}

/* Drops the events of revisions older than compact. */
void engine_history_trim(store_engine *e, int64_t compact) {
    while (e->n_hist > 0 && engine_history_rev(e, 0) < compact)
        engine_history_pop_front(e);
    e->compact_revision = MAX(e->compact_revision, compact);
}

/* First history position with revision >= rev. */
size_t engine_history_lower_bound(const store_engine *e, int64_t rev) {
    size_t lo = 0, hi = e->n_hist;
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        if (engine_history_rev(e, mid) < rev)
            lo = mid + 1;
        else
            hi = mid;
    }
    return lo;
}
