/* SPDX-License-Identifier: MIT */
/* The latencies a load generator records (bench/cdb-load.c, bench/ckpt-load.c): one per call, merged and sorted at the
 * end. */
#pragma once

#include <stdlib.h>
#include <string.h>
#include <time.h>

struct lat {
    double *ms; /* one per call, grown as needed */
    size_t n, cap;
};

static inline double now_s(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static inline void lat_add(struct lat *l, double ms) {
    if (l->n == l->cap) {
        size_t cap = l->cap ? 2 * l->cap : 4096;
        double *p = realloc(l->ms, cap * sizeof(*p));
        if (!p)
            return;
        l->ms = p;
        l->cap = cap;
    }
    l->ms[l->n++] = ms;
}

static inline int lat_cmp(const void *a, const void *b) {
    double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y;
}

/* The calls of n recorders (each freed): how many, and their p50 and p99 in ms. */
static inline size_t lat_merge(struct lat *ls, size_t n, double *ret_p50, double *ret_p99) {
    size_t total = 0, k = 0;
    for (size_t i = 0; i < n; i++)
        total += ls[i].n;
    double *all = malloc((total ? total : 1) * sizeof(*all));
    for (size_t i = 0; i < n; i++) {
        if (all && ls[i].n)
            memcpy(all + k, ls[i].ms, ls[i].n * sizeof(*all));
        k += ls[i].n;
        free(ls[i].ms);
        ls[i] = (struct lat){0};
    }
    if (!all)
        total = 0;
    else
        qsort(all, total, sizeof(*all), lat_cmp);
    *ret_p50 = total ? all[total / 2] : 0;
    *ret_p99 = total ? all[(size_t)((double)(total - 1) * 0.99)] : 0;
    free(all);
    return total;
}
