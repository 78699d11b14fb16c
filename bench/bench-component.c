/* SPDX-License-Identifier: MIT */
/*
 * The benchmarks' component: registers, answers every callback at once, and
 * after answering a CSI set ACTIVE appends "ACTIVE <component> <CLOCK_MONOTONIC ns>"
 * to the file named by $HALO_BENCH_LOG (one write(2) with O_APPEND, so lines
 * from several components never interleave).
 *
 * With $HALO_BENCH_STATES it also asks for the cluster's object states:
 * "count" just takes them, "log" appends "S <object> <state> <ns> <pid> <age>" per
 * state (one write(2) per note), for bench/events; <age> is the note's age in
 * ms when it arrived: CLOCK_REALTIME minus the physical part of its HLC, the
 * time the halod that took the event stamped it (-1 without one).  $HALO_BENCH_INTEREST ("group",
 * "pool", "object:OBJ", "prefix:P", '+'-separated) asks only for those notes
 * (halo_object_interest(), before registering).
 *
 * With $HALO_BENCH_RECOVERY (a pool process, bench/recovery) it asks for its
 * entrypoint after registering and, when halod says it must recover, takes
 * its failure vector, reports STARTING then RECOVERED at once, appending
 * "R <step> <component> <ns> <count>" for each step: REGISTERED, ENTRYPOINT
 * (count 1 if a recovery follows), VECTOR_FIRST, VECTOR_LAST (count: the
 * events received), STARTING, RECOVERED.
 */
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "halo/events.h"
#include "halo/halo.h"

static int log_fd = -1;
static int done;
static const char *me;
static bool recovery, vector_done, vector_started;
static unsigned long long vector_events;

static long long mono_ns(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (long long)ts.tv_sec * 1000000000LL + ts.tv_nsec;
}

static void rnote(const char *step, unsigned long long count) {
    char line[256];
    int n = snprintf(line, sizeof(line), "R %s %s %lld %llu\n", step, me, mono_ns(), count);
    if (log_fd >= 0 && n > 0 && (size_t)n < sizeof(line))
        (void)!write(log_fd, line, (size_t)n);
}

static void on_recovery(halo *h, const halo_recovery_note *n, void *userdata) {
    if (!vector_started) {
        vector_started = true;
        rnote("VECTOR_FIRST", n->nr_failures);
    }
    vector_events += n->n_events;
    if (n->last) {
        rnote("VECTOR_LAST", vector_events);
        vector_done = true;
    }
}

static void note(const char *what, const char *comp) {
    struct timespec ts;
    char line[512];
    clock_gettime(CLOCK_MONOTONIC, &ts);
    int n = snprintf(line, sizeof(line), "%s %s %lld\n", what, comp, (long long)ts.tv_sec * 1000000000LL + ts.tv_nsec);
    if (log_fd >= 0 && n > 0 && (size_t)n < sizeof(line))
        (void)!write(log_fd, line, (size_t)n);
}

static void on_csi_set(halo *h, halo_invocation inv, const char *comp, halo_ha_state state,
                       const halo_csi_descriptor *csi, void *userdata) {
    if (state == HALO_HA_QUIESCING) {
        halo_quiescing_complete(h, inv, 0);
        return;
    }
    halo_response(h, inv, 0);
    if (state == HALO_HA_ACTIVE)
        note("ACTIVE", comp);
}

static void on_csi_remove(halo *h, halo_invocation inv, const char *comp, const char *csi, unsigned flags,
                          void *userdata) {
    halo_response(h, inv, 0);
}

static void on_terminate(halo *h, halo_invocation inv, const char *comp, void *userdata) {
    halo_response(h, inv, 0);
    done = 1;
}

static void on_healthcheck(halo *h, halo_invocation inv, const char *comp, const char *key, void *userdata) {
    halo_response(h, inv, 0);
}

static bool log_states;

static void on_object_states(halo *h, const halo_object_state *st, size_t n, void *userdata) {
    static char buf[256 * 320];
    struct timespec ts;
    size_t len = 0;
    if (!log_states || log_fd < 0)
        return;
    struct timespec wall;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    clock_gettime(CLOCK_REALTIME, &wall);
    long long ns = (long long)ts.tv_sec * 1000000000LL + ts.tv_nsec;
    long long wall_ms = (long long)wall.tv_sec * 1000LL + wall.tv_nsec / 1000000;
    for (size_t i = 0; i < n; i++) {
        long long age = st[i].hlc ? wall_ms - (long long)(st[i].hlc >> 16) : -1;
        int k = snprintf(buf + len, sizeof(buf) - len, "S %s %s %lld %d %lld\n", st[i].object, st[i].state, ns,
                         (int)getpid(), age);
        if (k < 0 || (size_t)k >= sizeof(buf) - len)
            break;
        len += (size_t)k;
    }
    (void)!write(log_fd, buf, len);
}

/* $HALO_BENCH_INTEREST into rules; 0 or -EINVAL. */
static int set_interest(halo *h, const char *spec) {
    halo_interest_rule rules[HALO_INTEREST_RULES_MAX];
    size_t n = 0;
    char copy[1024];
    snprintf(copy, sizeof(copy), "%s", spec);
    for (char *save = NULL, *t = strtok_r(copy, "+", &save); t && n < HALO_INTEREST_RULES_MAX;
         t = strtok_r(NULL, "+", &save), n++) {
        rules[n].value = NULL;
        if (strcmp(t, "group") == 0)
            rules[n].kind = HALO_INTEREST_GROUP;
        else if (strcmp(t, "pool") == 0)
            rules[n].kind = HALO_INTEREST_POOL;
        else if (strncmp(t, "object:", 7) == 0 || strncmp(t, "prefix:", 7) == 0) {
            rules[n].kind = t[0] == 'o' ? HALO_INTEREST_OBJECT : HALO_INTEREST_PREFIX;
            rules[n].value = t + 7;
        } else
            return -EINVAL;
    }
    return halo_object_interest(h, rules, n);
}

int main(void) {
    const char *path = getenv("HALO_BENCH_LOG");
    if (path)
        log_fd = open(path, O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC, 0644);

    const char *states = getenv("HALO_BENCH_STATES");
    log_states = states && strcmp(states, "log") == 0;
    halo_callbacks cb = {.csi_set = on_csi_set,
                         .csi_remove = on_csi_remove,
                         .terminate = on_terminate,
                         .healthcheck = on_healthcheck,
                         .object_states = states && strcmp(states, "none") != 0 ? on_object_states : NULL};
    me = getenv("HALO_COMPONENT") ?: "?";
    recovery = getenv("HALO_BENCH_RECOVERY") != NULL;
    halo *h;
    int r = halo_open(NULL, &cb, NULL, &h);
    if (r == 0 && recovery)
        r = halo_recovery_set_callback(h, on_recovery);
    if (r == 0 && getenv("HALO_BENCH_INTEREST"))
        r = set_interest(h, getenv("HALO_BENCH_INTEREST"));
    if (r < 0) {
        fprintf(stderr, "bench-component: halo_open: %s\n", halo_strerror(r));
        return 1;
    }
    r = halo_register(h, NULL, NULL);
    if (r < 0) {
        fprintf(stderr, "bench-component: halo_register: %s\n", halo_strerror(r));
        return 1;
    }
    if (recovery) {
        rnote("REGISTERED", 0);
        for (;;) {
            char *json = NULL;
            unsigned retry = 0;
            r = halo_entrypoint(h, &json, &retry);
            if (r != -HALO_ETRYAGAIN) {
                rnote("ENTRYPOINT", r == 0 && strstr(json, "\"recovery\":true") ? 1 : 0);
                free(json);
                break;
            }
            usleep((retry ? retry : 100) * 1000);
        }
    }
    while (!done) {
        if (vector_done) {
            vector_done = false;
            r = halo_process_event(h, HALO_PROCESS_STARTING, NULL);
            rnote("STARTING", r < 0 ? 0 : 1);
            r = halo_process_event(h, HALO_PROCESS_RECOVERED, NULL);
            rnote("RECOVERED", r < 0 ? 0 : 1);
        }
        struct pollfd p = {.fd = halo_fd(h), .events = POLLIN};
        if (poll(&p, 1, -1) < 0 && errno != EINTR)
            break;
        if (halo_dispatch(h, HALO_DISPATCH_ALL) < 0)
            break;
    }
    halo_close(h);
    return 0;
}
