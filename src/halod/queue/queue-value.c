/* SPDX-License-Identifier: MIT */
/* The values the queues keep in the store: events as appended and published, EQ and BQ entries, counters. */
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "queue-internal.h"

/* The longest entry text parsed: a full entry of the longest events. */
#define ENTRY_JSON_MAX ((size_t)QUEUE_ENTRY_EVENTS_MAX * (QUEUE_EVENT_JSON_MAX + 32))

/* The compact, key-sorted text of ev, with "seq" when seq > 0.  Caller frees. */
int queue_value_event_dump(const struct queue_event *ev, uint64_t seq, char **ret) {
    json_t *j;
    int r = queue_event_to_json(ev, &j);
    if (r < 0)
        return r;
    if (seq > 0) {
        json_t *s = json_integer((json_int_t)seq);
        if (!s || json_object_set_new(j, "seq", s) < 0) {
            json_decref(j);
            return -ENOMEM;
        }
    }
    char *text = json_dumps(j, JSON_COMPACT | JSON_SORT_KEYS);
    json_decref(j);
    if (!text)
        return -ENOMEM;
    *ret = text;
    return 0;
}

/* A published event (BQ entry or state/ value) and its "seq" (0 if absent). */
int queue_value_published_parse(const char *buf, size_t len, struct queue_event *ev, uint64_t *ret_seq) {
    if (len == 0 || len > QUEUE_EVENT_JSON_MAX)
        return -EINVAL;
    json_t *j = json_loadb(buf, len, JSON_REJECT_DUPLICATES, NULL);
    if (!j)
        return -EINVAL;
    int r = queue_event_from_json(j, ev);
    *ret_seq = r >= 0 ? queue_value_event_seq(j) : 0;
    json_decref(j);
    return r;
}

/* The events of an EQ entry, into evs (room for QUEUE_ENTRY_EVENTS_MAX): a
 * JSON array of 1 to QUEUE_ENTRY_EVENTS_MAX events, or one event object (as
 * an operator may write by hand).  An invalid event in an array gets kind
 * _QUEUE_KIND_MAX and the others are kept.  Returns how many, or -EINVAL. */
int queue_value_entry_parse(const char *buf, size_t len, struct queue_event *evs) {
    if (len == 0 || len > ENTRY_JSON_MAX)
        return -EINVAL;
    json_t *j = json_loadb(buf, len, JSON_REJECT_DUPLICATES, NULL);
    int r = -EINVAL;
    if (json_is_object(j))
        r = queue_event_from_json(j, &evs[0]) < 0 ? -EINVAL : 1;
    else if (json_is_array(j) && json_array_size(j) >= 1 && json_array_size(j) <= QUEUE_ENTRY_EVENTS_MAX) {
        r = (int)json_array_size(j);
        for (size_t i = 0; i < json_array_size(j); i++)
            if (queue_event_from_json(json_array_get(j, i), &evs[i]) < 0)
                evs[i].kind = _QUEUE_KIND_MAX;
    }
    json_decref(j);
    return r;
}

/* The "seq" of a published event, 0 if absent or invalid. */
uint64_t queue_value_event_seq(const json_t *o) {
    json_t *s = json_object_get(o, "seq");
    return json_is_integer(s) && json_integer_value(s) > 0 ? (uint64_t)json_integer_value(s) : 0;
}

/* A BQ entry bq/<key_seq>: an array of published events whose seqs ascend
 * and end at key_seq (or, as written by hand, one event with seq key_seq).
 * Returns the JSON (caller decrefs) or NULL if it is not one. */
json_t *queue_value_bq_entry_load(const char *buf, size_t len, uint64_t key_seq) {
    if (len == 0 || len > STORE_VALUE_MAX)
        return NULL;
    json_t *j = json_loadb(buf, len, JSON_REJECT_DUPLICATES, NULL);
    if (json_is_object(j)) {
        json_t *a = json_array();
        if (!a || json_array_append_new(a, j) < 0) {
            json_decref(a);
            json_decref(j);
            return NULL;
        }
        j = a;
    }
    if (!json_is_array(j) || json_array_size(j) == 0) {
        json_decref(j);
        return NULL;
    }
    uint64_t last = 0;
    for (size_t i = 0; i < json_array_size(j); i++) {
        uint64_t seq = queue_value_event_seq(json_array_get(j, i));
        if (seq <= last) {
            json_decref(j);
            return NULL;
        }
        last = seq;
    }
    if (last != key_seq) {
        json_decref(j);
        return NULL;
    }
    return j;
}

/* A JSON integer >= 0 as written for bq-seq and bq-delivered/<node>. */
int queue_value_counter_parse(const char *buf, size_t len, uint64_t *ret) {
    json_t *j = json_loadb(buf, len, JSON_DECODE_ANY, NULL);
    int r = json_is_integer(j) && json_integer_value(j) >= 0 ? 0 : -EINVAL;
    if (r == 0)
        *ret = (uint64_t)json_integer_value(j);
    json_decref(j);
    return r;
}

/* The events not published yet, as an entry's value (a JSON array). */
int queue_value_entry_dump(const struct queue_event *a, size_t n_a, const struct queue_event *b, size_t n_b,
                           char **ret) {
    json_t *arr = json_array();
    if (!arr)
        return -ENOMEM;
    for (size_t i = 0; i < n_a + n_b; i++) {
        json_t *j;
        int r = queue_event_to_json(i < n_a ? &a[i] : &b[i - n_a], &j);
        if (r < 0 || json_array_append_new(arr, j) < 0) {
            json_decref(arr);
            return r < 0 ? r : -ENOMEM;
        }
    }
    *ret = json_dumps(arr, JSON_COMPACT | JSON_SORT_KEYS);
    json_decref(arr);
    return *ret ? 0 : -ENOMEM;
}

void queue_value_counter(uint64_t n, char buf[static QUEUE_COUNTER_MAX]) {
    snprintf(buf, QUEUE_COUNTER_MAX, "%" PRIu64, n);
}
