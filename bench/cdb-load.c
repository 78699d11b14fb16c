/* SPDX-License-Identifier: MIT */
/*
 * cdb-load: the load of bench/cdb.  THREADS threads, each with its own
 * handle on $HALO_SOCKET, commit small transactions in a loop for SECONDS and
 * record each commit's latency; the output is one JSON object:
 *   {"commits": N, "seconds": S, "commits_per_s": R, "p50_ms": ..., "p99_ms": ..., "errors": E}
 *
 *   cdb-load commit THREADS SECONDS [VALUE_BYTES]
 *   cdb-load fill MEGABYTES          one thread, transactions of one ~56 KiB value each
 */
#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "halo/cdb.h"
#include "load-stats.h"

struct worker {
    pthread_t thread;
    int id;
    double seconds;
    size_t value_bytes;
    struct lat lat;
    unsigned errors;
    int first_error;
};

static void *work(void *arg) {
    static const halo_callbacks cb = {0};
    struct worker *w = arg;
    halo *h = NULL;
    char value[4096];

    memset(value, 'v', sizeof(value));
    int r = halo_open(NULL, &cb, NULL, &h);
    if (r < 0) {
        w->errors++;
        w->first_error = r;
        return NULL;
    }
    double end = now_s() + w->seconds;
    for (unsigned long i = 0; now_s() < end; i++) {
        char path[64];
        halo_cdb_txn *t = NULL;
        snprintf(path, sizeof(path), "/bench/t%d/k%lu", w->id, i % 1000);
        double t0 = now_s();
        r = halo_cdb_txn_begin(h, &t);
        if (r >= 0)
            r = halo_cdb_txn_set(t, path, value, w->value_bytes);
        if (r >= 0)
            r = halo_cdb_txn_commit(t, NULL);
        else
            halo_cdb_txn_abort(t);
        double ms = (now_s() - t0) * 1000.0;
        if (r < 0) {
            if (!w->errors++)
                w->first_error = r;
            continue;
        }
        lat_add(&w->lat, ms);
    }
    halo_close(h);
    return NULL;
}

static int run_commit(int threads, double seconds, size_t value_bytes) {
    struct worker *ws = calloc((size_t)threads, sizeof(*ws));
    size_t total = 0;
    unsigned errors = 0;
    int first_error = 0;

    if (!ws)
        return 1;
    double t0 = now_s();
    for (int i = 0; i < threads; i++) {
        ws[i].id = i;
        ws[i].seconds = seconds;
        ws[i].value_bytes = value_bytes;
        pthread_create(&ws[i].thread, NULL, work, &ws[i]);
    }
    for (int i = 0; i < threads; i++) {
        pthread_join(ws[i].thread, NULL);
        errors += ws[i].errors;
        if (!first_error)
            first_error = ws[i].first_error;
    }
    double elapsed = now_s() - t0;
    double p50 = 0, p99 = 0;
    struct lat *ls = calloc((size_t)threads, sizeof(*ls));
    for (int i = 0; ls && i < threads; i++)
        ls[i] = ws[i].lat;
    total = ls ? lat_merge(ls, (size_t)threads, &p50, &p99) : 0;
    free(ls);
    printf("{\"commits\": %zu, \"seconds\": %.3f, \"commits_per_s\": %.0f, \"p50_ms\": %.3f, \"p99_ms\": %.3f, "
           "\"errors\": %u, \"first_error\": \"%s\"}\n",
           total, elapsed, (double)total / elapsed, p50, p99, errors, first_error ? halo_strerror(first_error) : "");
    free(ws);
    return errors ? 1 : 0;
}

static int run_fill(double megabytes) {
    static const halo_callbacks cb = {0};
    halo *h = NULL;
    size_t chunk = HALO_CDB_TXN_MAX - 64;
    char *value = malloc(chunk);
    int r = halo_open(NULL, &cb, NULL, &h);
    if (r < 0 || !value) {
        fprintf(stderr, "cdb-load: %s\n", halo_strerror(r < 0 ? r : -ENOMEM));
        return 1;
    }
    size_t want = (size_t)(megabytes * 1e6), done = 0;
    for (unsigned long i = 0; done < want; i++) {
        char path[64];
        halo_cdb_txn *t = NULL;
        for (size_t j = 0; j < chunk; j++)
            value[j] = (char)('a' + (i + j) % 26);
        snprintf(path, sizeof(path), "/fill/%08lu", i);
        r = halo_cdb_txn_begin(h, &t);
        if (r >= 0)
            r = halo_cdb_txn_set(t, path, value, chunk);
        if (r >= 0)
            r = halo_cdb_txn_commit(t, NULL);
        if (r < 0) {
            fprintf(stderr, "cdb-load: fill: %s\n", halo_strerror(r));
            return 1;
        }
        done += chunk + strlen(path);
    }
    printf("{\"bytes\": %zu}\n", done);
    halo_close(h);
    free(value);
    return 0;
}

int main(int argc, char **argv) {
    if (argc >= 4 && strcmp(argv[1], "commit") == 0)
        return run_commit(atoi(argv[2]), atof(argv[3]), argc > 4 ? (size_t)atoi(argv[4]) : 16);
    if (argc == 3 && strcmp(argv[1], "fill") == 0)
        return run_fill(atof(argv[2]));
    fprintf(stderr, "usage: cdb-load commit THREADS SECONDS [VALUE_BYTES] | cdb-load fill MEGABYTES\n");
    return 2;
}
