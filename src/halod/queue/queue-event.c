/* SPDX-License-Identifier: MIT */
/* The events of the queues and their JSON: names, validation, parsing, and the body of a POST of events. */
#include "queue-event.h"

#include <assert.h>
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "hlc.h"
#include "macro.h"
#include "parse-util.h"
#include "string-table.h"

/* The longest kind name ("process", "service") and its NUL, with room to spare. */
#define KIND_NAME_MAX 16

static const char *const queue_kind_table[_QUEUE_KIND_MAX] = {
    [QUEUE_KIND_NODE] = "node",     [QUEUE_KIND_PROCESS] = "process", [QUEUE_KIND_SERVICE] = "service",
    [QUEUE_KIND_DEVICE] = "device", [QUEUE_KIND_SU] = "su",           [QUEUE_KIND_COMP] = "comp",
};
DEFINE_STRING_TABLE_LOOKUP(queue_kind, enum queue_kind);

static const char *const queue_ha_state_table[_QUEUE_HA_MAX] = {
    [QUEUE_HA_ONLINE] = "ONLINE",         [QUEUE_HA_FAILED] = "FAILED",     [QUEUE_HA_TRANSIENT] = "TRANSIENT",
    [QUEUE_HA_REPAIR] = "REPAIR",         [QUEUE_HA_REPAIRED] = "REPAIRED", [QUEUE_HA_REBALANCE] = "REBALANCE",
    [QUEUE_HA_RECOVERING] = "RECOVERING", [QUEUE_HA_OFFLINE] = "OFFLINE",
};
DEFINE_STRING_TABLE_LOOKUP(queue_ha_state, enum queue_ha_state);

static bool name_valid_n(const char *name, size_t n) {
    if (n == 0 || n > QUEUE_NAME_MAX)
        return false;
    for (size_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char)name[i];
        if (c <= ' ' || c >= 0x7f || c == '/')
            return false;
    }
    return true;
}

bool queue_name_valid(const char *name) {
    return name && name_valid_n(name, strnlen(name, QUEUE_NAME_MAX + 1));
}

/* Well-formed UTF-8 (no overlong forms, surrogates or code points past U+10FFFF). */
static bool utf8_valid(const unsigned char *s, size_t n) {
    size_t i = 0;
    while (i < n) {
        unsigned char c = s[i];
        size_t len;
        uint32_t cp, min;
        if (c < 0x80) {
            i++;
            continue;
        } else if ((c & 0xe0) == 0xc0) {
            len = 2, cp = c & 0x1f, min = 0x80;
        } else if ((c & 0xf0) == 0xe0) {
            len = 3, cp = c & 0x0f, min = 0x800;
        } else if ((c & 0xf8) == 0xf0) {
            len = 4, cp = c & 0x07, min = 0x10000;
        } else
            return false;
        if (n - i < len)
            return false;
        for (size_t k = 1; k < len; k++) {
            if ((s[i + k] & 0xc0) != 0x80)
                return false;
            cp = (cp << 6) | (s[i + k] & 0x3f);
        }
        if (cp < min || cp > 0x10ffff || (cp >= 0xd800 && cp <= 0xdfff))
            return false;
        i += len;
    }
    return true;
}

/* At most QUEUE_REASON_MAX bytes of UTF-8 without control characters. */
static bool reason_valid_n(const char *s, size_t n) {
    if (n > QUEUE_REASON_MAX)
        return false;
    for (size_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char)s[i];
        if (c < ' ' || c == 0x7f)
            return false;
    }
    return utf8_valid((const unsigned char *)s, n);
}

/* Splits "kind:name" (name may itself contain ':'). */
static int object_parse(const char *object, size_t n, enum queue_kind *ret_kind, const char **ret_name,
                        size_t *ret_name_len) {
    char kind[KIND_NAME_MAX];
    const char *colon = memchr(object, ':', n);
    if (!colon || (size_t)(colon - object) >= sizeof(kind))
        return -EINVAL;
    memcpy(kind, object, (size_t)(colon - object));
    kind[colon - object] = '\0';
    int k = queue_kind_from_string(kind);
    if (k < 0)
        return k;
    size_t name_len = n - (size_t)(colon - object) - 1;
    if (!name_valid_n(colon + 1, name_len))
        return -EINVAL;
    *ret_kind = (enum queue_kind)k;
    *ret_name = colon + 1;
    *ret_name_len = name_len;
    return 0;
}
int queue_event_init(struct queue_event *ev, const char *object, enum queue_ha_state state) {
    enum queue_kind kind;
    const char *name;
    size_t name_len;

    assert_return(ev, -EINVAL);
    assert_return(object, -EINVAL);
    assert_return((unsigned)state < _QUEUE_HA_MAX, -EINVAL);
    if (object_parse(object, strlen(object), &kind, &name, &name_len) < 0)
        return -EINVAL;
    *ev = (struct queue_event){.kind = kind, .state = state, .epoch = QUEUE_EPOCH_NONE};
    memcpy(ev->name, name, name_len);
    return 0;
}

int queue_event_validate(const struct queue_event *ev, bool allow_no_node) {
    assert_return(ev, -EINVAL);
    if ((unsigned)ev->kind >= _QUEUE_KIND_MAX || (unsigned)ev->state >= _QUEUE_HA_MAX)
        return -EINVAL;
    if (!name_valid_n(ev->name, strnlen(ev->name, sizeof(ev->name))))
        return -EINVAL;
    size_t node_len = strnlen(ev->node, sizeof(ev->node));
    if (!(allow_no_node && node_len == 0) && !name_valid_n(ev->node, node_len))
        return -EINVAL;
    if (!reason_valid_n(ev->reason, strnlen(ev->reason, sizeof(ev->reason))))
        return -EINVAL;
    if ((ev->epoch < 0 && ev->epoch != QUEUE_EPOCH_NONE) || ev->lease < 0)
        return -EINVAL;
    return 0;
}

int queue_event_object(const struct queue_event *ev, char buf[static QUEUE_OBJECT_MAX]) {
    assert_return(ev, -EINVAL);
    assert_return((unsigned)ev->kind < _QUEUE_KIND_MAX, -EINVAL);
    size_t n = strnlen(ev->name, sizeof(ev->name));
    assert_return(name_valid_n(ev->name, n), -EINVAL);
    snprintf(buf, QUEUE_OBJECT_MAX, "%s:%.*s", queue_kind_table[ev->kind], (int)n, ev->name);
    return 0;
}

static int set_string(json_t *o, const char *key, const char *value) {
    json_t *v = json_string(value);
    return v && json_object_set_new(o, key, v) == 0 ? 0 : -ENOMEM;
}

int queue_event_to_json(const struct queue_event *ev, json_t **ret) {
    char object[QUEUE_OBJECT_MAX], hlc[HLC_DECIMAL_MAX];
    int r;

    assert_return(ret, -EINVAL);
    r = queue_event_validate(ev, false);
    if (r < 0)
        return r;
    (void)queue_event_object(ev, object);
    snprintf(hlc, sizeof(hlc), "%" PRIu64, ev->hlc);

    json_t *o = json_object();
    if (!o)
        return -ENOMEM;
    r = set_string(o, "object", object);
    if (r >= 0)
        r = set_string(o, "state", queue_ha_state_table[ev->state]);
    if (r >= 0)
        r = set_string(o, "node", ev->node);
    if (r >= 0)
        r = set_string(o, "hlc", hlc);
    if (r >= 0 && ev->reason[0])
        r = set_string(o, "reason", ev->reason);
    if (r >= 0 && ev->epoch != QUEUE_EPOCH_NONE) {
        json_t *e = json_integer((json_int_t)ev->epoch);
        r = e && json_object_set_new(o, "epoch", e) == 0 ? 0 : -ENOMEM;
    }
    if (r >= 0 && ev->lease > 0) {
        json_t *e = json_integer((json_int_t)ev->lease);
        r = e && json_object_set_new(o, "lease", e) == 0 ? 0 : -ENOMEM;
    }
    if (r < 0) {
        json_decref(o);
        return r;
    }
    *ret = o;
    return 0;
}

/* A JSON string without NUL bytes, or NULL. */
static const char *json_cstring(const json_t *v, size_t *ret_len) {
    if (!json_is_string(v))
        return NULL;
    const char *s = json_string_value(v);
    size_t n = json_string_length(v);
    if (strlen(s) != n)
        return NULL;
    *ret_len = n;
    return s;
}

int queue_event_from_json(const json_t *j, struct queue_event *ret) {
    struct queue_event ev = {.epoch = QUEUE_EPOCH_NONE};
    const char *s, *name;
    size_t n, name_len;
    const json_t *v;
    int r;

    assert_return(ret, -EINVAL);
    if (!json_is_object(j))
        return -EINVAL;

    s = json_cstring(json_object_get(j, "object"), &n);
    if (!s || object_parse(s, n, &ev.kind, &name, &name_len) < 0)
        return -EINVAL;
    memcpy(ev.name, name, name_len);

    s = json_cstring(json_object_get(j, "state"), &n);
    if (!s || (r = queue_ha_state_from_string(s)) < 0)
        return -EINVAL;
    ev.state = (enum queue_ha_state)r;

    s = json_cstring(json_object_get(j, "node"), &n);
    if (!s || !name_valid_n(s, n))
        return -EINVAL;
    memcpy(ev.node, s, n);

    v = json_object_get(j, "hlc");
    if (v) {
        s = json_cstring(v, &n);
        if (!s || parse_u64_n(s, n, &ev.hlc) < 0)
            return -EINVAL;
    }

    v = json_object_get(j, "reason");
    if (v) {
        s = json_cstring(v, &n);
        if (!s || !reason_valid_n(s, n))
            return -EINVAL;
        memcpy(ev.reason, s, n);
    }

    v = json_object_get(j, "epoch");
    if (v) {
        if (!json_is_integer(v) || json_integer_value(v) < 0)
            return -EINVAL;
        ev.epoch = (int64_t)json_integer_value(v);
    }

    v = json_object_get(j, "lease");
    if (v) {
        if (!json_is_integer(v) || json_integer_value(v) < 0)
            return -EINVAL;
        ev.lease = (int64_t)json_integer_value(v);
    }

    *ret = ev;
    return 0;
}

int queue_event_parse(const char *buf, size_t len, struct queue_event *ret) {
    assert_return(buf || len == 0, -EINVAL);
    assert_return(ret, -EINVAL);
    if (len == 0 || len > QUEUE_EVENT_JSON_MAX)
        return -EINVAL;
    json_t *j = json_loadb(buf, len, JSON_REJECT_DUPLICATES, NULL);
    if (!j)
        return -EINVAL;
    int r = queue_event_from_json(j, ret);
    json_decref(j);
    return r;
}

int queue_events_parse_body(const char *body, size_t len, const char *default_node, size_t max,
                            struct queue_event **ret_events, size_t *ret_n, const char **ret_error) {
    assert_return(body || len == 0, -EINVAL);
    assert_return(ret_events && ret_n && ret_error, -EINVAL);

    json_t *j = len > 0 ? json_loadb(body, len, JSON_REJECT_DUPLICATES, NULL) : NULL;
    /* An array, {"events": ...} (anything there is taken as the events), or one event. */
    json_t *list = json_is_array(j) ? j : json_object_get(j, "events");
    if (!list && json_is_object(j) && json_object_get(j, "object"))
        list = j;
    size_t n = json_is_array(list) ? json_array_size(list) : list ? 1 : 0;
    if (n == 0 || n > max) {
        json_decref(j);
        *ret_error =
            n ? "too many events in one request" : "expected an event, an array of events, or {\"events\": [...]}";
        return -EINVAL;
    }
    struct queue_event *evs = calloc(n, sizeof(*evs));
    if (!evs) {
        json_decref(j);
        return -ENOMEM;
    }
    int r = 0;
    for (size_t i = 0; i < n && r == 0; i++) {
        json_t *o = json_is_array(list) ? json_array_get(list, i) : list;
        if (json_is_object(o)) {
            /* Should this fail, the event has no node and is refused below. */
            if (default_node && !json_object_get(o, "node"))
                (void)json_object_set_new(o, "node", json_string(default_node));
            json_object_del(o, "epoch");
            json_object_del(o, "lease");
        }
        if (queue_event_from_json(o, &evs[i]) < 0) {
            *ret_error = "an event is not valid: it needs \"object\" (kind:name; kind node, process, service, "
                         "device, su) and \"state\" (ONLINE, FAILED, ...)";
            r = -EINVAL;
        }
    }
    json_decref(j);
    if (r < 0) {
        free(evs);
        return r;
    }
    *ret_events = evs;
    *ret_n = n;
    return 0;
}
