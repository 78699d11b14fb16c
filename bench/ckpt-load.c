/* SPDX-License-Identifier: MIT */
/*
 * ckpt-load: the load of bench/ckpt, on $HALO_SOCKET.
 *
 *   ckpt-load write NAME THREADS SECONDS [BYTES]
 *       THREADS threads, each with its own handle, open (create) checkpoint NAME, write their
 *       SECTIONS sections once (not measured: creating a section costs a read more), then
 *       replace them, in turn, with BYTES bytes for SECONDS, recording each write's latency;
 *       prints one JSON object:
 *       {"created": C, "writes": N, "seconds": S, "writes_per_s": R, "p50_ms": ..., "p99_ms": ..., "errors": E}
 *   ckpt-load read NAME SECONDS store|local
 *       opens (creates) NAME, with HALO_CKPT_LOCAL_READS for "local", makes sure its section
 *       "r" exists, then reads it for SECONDS, one read at a time, recording each read's latency;
 *       prints {"reads": N, "reads_per_s": R, "p50_ms": ..., "p99_ms": ..., "errors": E}
 *   ckpt-load watch NAME
 *       opens (creates) NAME asking for updates, prints "ready", and counts them until
 *       SIGTERM; then prints {"updates": N}.  The STANDBY's replica of the benchmark.
 */
#include <errno.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "halo/ckpt.h"
#include "load-stats.h"

#define SECTIONS 8 /* per thread */

static const halo_ckpt_attrs attrs = {.retention_msec = 60000, .max_sections = 4096};

struct worker {
    pthread_t thread;
    int id;
    const char *name;
    double seconds;
    size_t bytes;
    struct lat lat;
    unsigned errors;
    int first_error;
    double t0, t1; /* the measured loop */
};

static void record(struct worker *w, int r, double ms) {
    if (r < 0) {
        if (!w->errors++)
            w->first_error = r;
        return;
    }
    lat_add(&w->lat, ms);
}

static void *work(void *arg) {
    static const halo_callbacks cb = {0};
    struct worker *w = arg;
    halo_ckpt *c = NULL;
    halo *h = NULL;
    char value[HALO_CKPT_SECTION_MAX];

    memset(value, 'v', sizeof(value));
    int r = halo_open(NULL, &cb, NULL, &h);
    if (r >= 0)
        r = halo_ckpt_open(h, w->name, HALO_CKPT_CREATE, &attrs, NULL, NULL, &c);
    if (r < 0) {
        record(w, r, 0);
        halo_close(h);
        return NULL;
    }
    for (unsigned long i = 0; i < SECTIONS && r >= 0; i++) {
        char section[64];
        snprintf(section, sizeof(section), "t%d-k%lu", w->id, i);
        r = halo_ckpt_write(c, section, value, w->bytes, HALO_CKPT_WRITE);
    }
    w->t0 = now_s();
    double end = w->t0 + w->seconds;
    for (unsigned long i = 0; now_s() < end; i++) {
        char section[64];
        snprintf(section, sizeof(section), "t%d-k%lu", w->id, i % SECTIONS);
        double t0 = now_s();
        r = halo_ckpt_write(c, section, value, w->bytes, HALO_CKPT_WRITE);
        record(w, r, (now_s() - t0) * 1000.0);
    }
    w->t1 = now_s();
    halo_ckpt_close(c);
    halo_close(h);
    return NULL;
}

static int run_write(const char *name, int threads, double seconds, size_t bytes) {
    struct worker *ws = calloc((size_t)threads, sizeof(*ws));
    size_t total = 0;
    unsigned errors = 0;
    int first_error = 0;

    if (!ws)
        return 1;
    double t0 = 0, t1 = 0;
    for (int i = 0; i < threads; i++) {
        ws[i] = (struct worker){.id = i, .name = name, .seconds = seconds, .bytes = bytes};
        pthread_create(&ws[i].thread, NULL, work, &ws[i]);
    }
    for (int i = 0; i < threads; i++) {
        pthread_join(ws[i].thread, NULL);
        errors += ws[i].errors;
        if (!first_error)
            first_error = ws[i].first_error;
        if (ws[i].t1 > 0 && (t0 == 0 || ws[i].t0 < t0))
            t0 = ws[i].t0;
        if (ws[i].t1 > t1)
            t1 = ws[i].t1;
    }
    double elapsed = t1 > t0 ? t1 - t0 : 1;
    double p50 = 0, p99 = 0;
    struct lat *ls = calloc((size_t)threads, sizeof(*ls));
    for (int i = 0; ls && i < threads; i++)
        ls[i] = ws[i].lat;
    total = ls ? lat_merge(ls, (size_t)threads, &p50, &p99) : 0;
    free(ls);
    printf("{\"created\": %d, \"writes\": %zu, \"seconds\": %.3f, \"writes_per_s\": %.0f, \"p50_ms\": %.3f, "
           "\"p99_ms\": %.3f, "
           "\"errors\": %u, \"first_error\": \"%s\"}\n",
           threads * SECTIONS, total, elapsed, (double)total / elapsed, p50, p99, errors,
           first_error ? halo_strerror(first_error) : "");
    free(ws);
    return errors ? 1 : 0;
}

static int run_read(const char *name, double seconds, bool local) {
    static const halo_callbacks cb = {0};
    halo_ckpt *c = NULL;
    halo *h = NULL;
    struct lat lat = {0};
    unsigned errors = 0;
    void *data;
    size_t len;
    int r = halo_open(NULL, &cb, NULL, &h);
    if (r >= 0)
        r = halo_ckpt_open(h, name, HALO_CKPT_CREATE | (local ? HALO_CKPT_LOCAL_READS : 0), &attrs, NULL, NULL, &c);
    if (r >= 0 && (r = halo_ckpt_read(c, "r", &data, &len)) == -ENOENT)
        r = halo_ckpt_write(c, "r", "0123456789", 10, HALO_CKPT_WRITE);
    else if (r >= 0)
        free(data);
    if (r < 0) {
        fprintf(stderr, "ckpt-load: %s\n", halo_strerror(r));
        halo_close(h);
        return 1;
    }
    double t0 = now_s(), end = t0 + seconds, t1;
    while ((t1 = now_s()) < end) {
        r = halo_ckpt_read(c, "r", &data, &len);
        if (r < 0)
            errors++;
        else {
            free(data);
            lat_add(&lat, (now_s() - t1) * 1000.0);
        }
    }
    double p50 = 0, p99 = 0;
    size_t n = lat_merge(&lat, 1, &p50, &p99);
    printf("{\"reads\": %zu, \"reads_per_s\": %.0f, \"p50_ms\": %.4f, \"p99_ms\": %.4f, \"errors\": %u}\n", n,
           (double)n / (now_s() - t0), p50, p99, errors);
    halo_ckpt_close(c);
    halo_close(h);
    return errors ? 1 : 0;
}

static unsigned long n_updates;
static volatile sig_atomic_t stop;

static void on_update(halo_ckpt *c, const char *section, const void *data, size_t len, int deleted, uint64_t revision,
                      void *userdata) {
    n_updates++;
}

static void on_term(int sig) {
    stop = 1;
}

static int run_watch(const char *name) {
    static const halo_callbacks cb = {0};
    halo_ckpt *c = NULL;
    halo *h = NULL;
    signal(SIGTERM, on_term);
    int r = halo_open(NULL, &cb, NULL, &h);
    if (r >= 0)
        r = halo_ckpt_open(h, name, HALO_CKPT_CREATE | HALO_CKPT_UPDATES, &attrs, on_update, NULL, &c);
    if (r < 0) {
        fprintf(stderr, "ckpt-load: %s\n", halo_strerror(r));
        return 1;
    }
    printf("ready\n");
    fflush(stdout);
    while (!stop) {
        struct pollfd p = {.fd = halo_fd(h), .events = POLLIN};
        if (poll(&p, 1, 200) > 0 && halo_dispatch(h, HALO_DISPATCH_ALL) < 0)
            break;
    }
    printf("{\"updates\": %lu}\n", n_updates);
    halo_ckpt_close(c);
    halo_close(h);
    return 0;
}

int main(int argc, char **argv) {
    if (argc >= 5 && strcmp(argv[1], "write") == 0)
        return run_write(argv[2], atoi(argv[3]), atof(argv[4]), argc > 5 ? strtoul(argv[5], NULL, 10) : 100);
    if (argc == 5 && strcmp(argv[1], "read") == 0)
        return run_read(argv[2], atof(argv[3]), strcmp(argv[4], "local") == 0);
    if (argc == 3 && strcmp(argv[1], "watch") == 0)
        return run_watch(argv[2]);
    fprintf(stderr, "usage: ckpt-load write NAME THREADS SECONDS [BYTES] | ckpt-load read NAME SECONDS store|local | "
                    "ckpt-load watch NAME\n");
    return 2;
}
