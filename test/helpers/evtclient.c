/* SPDX-License-Identifier: MIT */
/*
 * An event-channel client for the integration tests (include/halo/events.h).
 *
 *   evtclient local|cluster CHANNEL sub [FILTER ...]
 *       opens the channel, subscribes ("SUBSCRIBED <result>") and prints each
 *       event: "EV <pub_seq> <publisher> <hlc> <lost> <fields, comma-separated> <payload length> <payload>"
 *       (the payload printed only if text).  FILTER: all, prefix:V, suffix:V, exact:V,
 *       mask:HEXVALUE/HEXMASK.  With $EVTCLIENT_NO_READ it subscribes and then never reads.
 *   evtclient local|cluster CHANNEL pub COUNT FIELDS [PAYLOAD_BYTES [RETENTION_MS]]
 *       publishes COUNT events, FIELDS comma-separated with "#" replaced by the event's
 *       number (from 0); the payload is "n=<number>" padded with 'x' to PAYLOAD_BYTES;
 *       prints "PUB <number> <result> <pub_seq>" each, then "DONE".
 * Every line is flushed at once.
 */
#include <errno.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "halo/events.h"
#include "halo/halo.h"

static void on_event(halo *h, const halo_evt_event *ev, void *userdata) {
    char fields[HALO_EVT_FIELDS_MAX * (HALO_EVT_FIELD_MAX + 1) + 1] = "";
    size_t at = 0;
    for (size_t i = 0; i < ev->n_pattern; i++) {
        if (i)
            fields[at++] = ',';
        for (size_t k = 0; k < ev->pattern[i].len; k++) {
            char c = ((const char *)ev->pattern[i].data)[k];
            fields[at++] = c > 0x20 && c < 0x7f && c != ',' ? c : '?';
        }
    }
    fields[at] = '\0';
    int text = ev->payload_len < 64;
    printf("EV %llu %s %llu %llu %s %zu %.*s\n", (unsigned long long)ev->pub_seq, ev->publisher,
           (unsigned long long)ev->hlc, (unsigned long long)ev->lost, at ? fields : "-", ev->payload_len,
           text ? (int)ev->payload_len : 1, text ? (const char *)ev->payload : "-");
    fflush(stdout);
}

static int unhex(const char *s, unsigned char *out, size_t max) {
    size_t n = strlen(s) / 2;
    if (n > max || strlen(s) % 2)
        return -1;
    for (size_t i = 0; i < n; i++)
        if (sscanf(s + 2 * i, "%2hhx", &out[i]) != 1)
            return -1;
    return (int)n;
}

static int parse_filter(const char *s, halo_evt_filter *f, unsigned char *vbuf, unsigned char *mbuf) {
    const char *colon = strchr(s, ':');
    *f = (halo_evt_filter){.type = HALO_EVT_PASS_ALL};
    if (strcmp(s, "all") == 0)
        return 0;
    if (!colon)
        return -1;
    const char *v = colon + 1;
    if (strncmp(s, "mask:", 5) == 0) {
        const char *slash = strchr(v, '/');
        char val[1024];
        if (!slash || (size_t)(slash - v) >= sizeof(val))
            return -1;
        memcpy(val, v, (size_t)(slash - v));
        val[slash - v] = '\0';
        int n = unhex(val, vbuf, 512), m = unhex(slash + 1, mbuf, 512);
        *f = (halo_evt_filter){.type = HALO_EVT_MASK, .value = vbuf, .len = (size_t)n, .mask = mbuf};
        return n < 0 || n != m ? -1 : 0;
    }
    f->value = v;
    f->len = strlen(v);
    f->type = strncmp(s, "prefix:", 7) == 0   ? HALO_EVT_PREFIX
              : strncmp(s, "suffix:", 7) == 0 ? HALO_EVT_SUFFIX
              : strncmp(s, "exact:", 6) == 0  ? HALO_EVT_EXACT
                                              : (halo_evt_filter_type)99; /* refused: a test of the check */
    return 0;
}

static int subscribe(halo *h, const char *ch, halo_evt_scope scope, char **args, int n) {
    static halo_evt_filter f[HALO_EVT_FIELDS_MAX + 4];
    static unsigned char vb[HALO_EVT_FIELDS_MAX + 4][512], mb[HALO_EVT_FIELDS_MAX + 4][512];
    if (n > HALO_EVT_FIELDS_MAX + 4)
        n = HALO_EVT_FIELDS_MAX + 4;
    for (int i = 0; i < n; i++)
        if (parse_filter(args[i], &f[i], vb[i], mb[i]) < 0) {
            fprintf(stderr, "evtclient: bad filter '%s'\n", args[i]);
            return 2;
        }
    unsigned sub = 0;
    int r = halo_evt_subscribe(h, ch, scope, f, (size_t)n, on_event, NULL, &sub);
    printf("SUBSCRIBED %d\n", r);
    fflush(stdout);
    if (r < 0)
        return 1;
    if (getenv("EVTCLIENT_NO_READ"))
        for (;;)
            pause();
    for (;;) {
        struct pollfd p = {.fd = halo_fd(h), .events = POLLIN};
        if (poll(&p, 1, -1) < 0 && errno != EINTR)
            return 1;
        if (halo_dispatch(h, HALO_DISPATCH_ALL) < 0)
            return 1;
    }
}

static int publish(halo *h, const char *ch, halo_evt_scope scope, char **args, int n) {
    if (n < 2)
        return 2;
    long count = strtol(args[0], NULL, 10);
    size_t size = n > 2 ? (size_t)strtoul(args[2], NULL, 10) : 0;
    unsigned retention = n > 3 ? (unsigned)strtoul(args[3], NULL, 10) : 0;
    char *payload = calloc(1, size + 64);
    for (long i = 0; i < count; i++) {
        char spec[8192], buf[HALO_EVT_FIELDS_MAX + 8][1024];
        halo_evt_field fields[HALO_EVT_FIELDS_MAX + 8];
        size_t nf = 0;
        snprintf(spec, sizeof(spec), "%s", args[1]);
        for (char *save = NULL, *t = strtok_r(spec, ",", &save); t && nf < HALO_EVT_FIELDS_MAX + 8;
             t = strtok_r(NULL, ",", &save)) {
            char *hash = strchr(t, '#');
            if (hash)
                snprintf(buf[nf], sizeof(buf[nf]), "%.*s%ld%s", (int)(hash - t), t, i, hash + 1);
            else
                snprintf(buf[nf], sizeof(buf[nf]), "%s", strcmp(t, "-") == 0 ? "" : t);
            fields[nf] = (halo_evt_field){.data = buf[nf], .len = strlen(buf[nf])};
            nf++;
        }
        int k = snprintf(payload, size + 64, "n=%ld", i);
        size_t len = size > (size_t)k ? size : (size_t)k;
        memset(payload + k, 'x', len - (size_t)k);
        uint64_t id = 0;
        int r = halo_evt_publish(h, ch, scope, fields, nf, payload, len, retention, &id);
        printf("PUB %ld %d %llu\n", i, r, (unsigned long long)id);
        fflush(stdout);
    }
    free(payload);
    printf("DONE\n");
    fflush(stdout);
    return 0;
}

int main(int argc, char **argv) {
    if (argc < 4) {
        fprintf(stderr, "usage: evtclient local|cluster CHANNEL sub [FILTER ...] | pub COUNT FIELDS [BYTES [MS]]\n");
        return 2;
    }
    halo_evt_scope scope = strcmp(argv[1], "cluster") == 0 ? HALO_EVT_CLUSTER : HALO_EVT_LOCAL;
    halo_callbacks cb = {0};
    halo *h;
    int r = halo_open(NULL, &cb, NULL, &h);
    if (r < 0) {
        fprintf(stderr, "evtclient: halo_open: %s\n", halo_strerror(r));
        return 1;
    }
    r = halo_evt_open(h, argv[2], scope);
    printf("OPEN %d\n", r);
    fflush(stdout);
    if (r < 0)
        return 1;
    if (strcmp(argv[3], "sub") == 0)
        return subscribe(h, argv[2], scope, argv + 4, argc - 4);
    return publish(h, argv[2], scope, argv + 4, argc - 4);
}
