/* SPDX-License-Identifier: MIT */
/*
 * libFuzzer entry point for the queue's event codec: any bytes in as one
 * event (queue_event_parse()) and as the body of POST /v1/events
 * (queue_events_parse_body()); no crash, no leak, and what is accepted is
 * valid and survives a round trip through its JSON.
 */
#include <errno.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "queue-event.h"

/* Small, so that generated inputs reach the limit. */
#define FUZZ_EVENTS_MAX 8

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/* ev's JSON must parse back to ev. */
static void round_trip(const struct queue_event *ev) {
    struct queue_event back;
    json_t *j;
    if (queue_event_to_json(ev, &j) < 0)
        abort();
    char *text = json_dumps(j, JSON_COMPACT | JSON_SORT_KEYS);
    json_decref(j);
    if (!text || queue_event_parse(text, strlen(text), &back) < 0 || memcmp(ev, &back, sizeof(back)) != 0)
        abort();
    free(text);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    const char *text = (const char *)data;
    struct queue_event ev, *evs = NULL;
    size_t n = 0;
    const char *error = NULL;

    if (queue_event_parse(text, size, &ev) == 0) {
        if (queue_event_validate(&ev, false) < 0)
            abort();
        round_trip(&ev);
    }

    int r = queue_events_parse_body(text, size, "fuzz", FUZZ_EVENTS_MAX, &evs, &n, &error);
    if (r == 0) {
        if (n == 0 || n > FUZZ_EVENTS_MAX || error)
            abort();
        for (size_t i = 0; i < n; i++) {
            if (queue_event_validate(&evs[i], false) < 0 || evs[i].epoch != QUEUE_EPOCH_NONE)
                abort();
            round_trip(&evs[i]);
        }
        free(evs);
    } else if (r != -ENOMEM && !(r == -EINVAL && error && evs == NULL))
        abort();
    return 0;
}
