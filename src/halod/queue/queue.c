/* SPDX-License-Identifier: MIT */
/* The cluster's event and broadcast queues in the store: append, consume once, deliver in order (see queue.h). */
#define LOG_AREA LOG_AREA_CLUSTER
#include "queue.h"

#include <assert.h>
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "log.h"
#include "macro.h"

#define QUEUE_PREFIX_MAX 512
/* Width of the zero-padded numbers in keys: every uint64_t fits. */
#define KEY_NUMBER_DIGITS 20
#define RETRY_MIN_MSEC 100
#define RETRY_MAX_MSEC 2000
/* Attempts of one append transaction before its error is reported. */
#define APPEND_ATTEMPTS 5
/* EQ entries in one append transaction, and the bytes of their values: well
 * under etcd's default request limit (1.5 MiB, base64 in the gateway). */
#define APPEND_TXN_ENTRIES 16
#define APPEND_TXN_BYTES (512 * 1024)
/* Events published by one consumer transaction, and the bytes of the BQ
 * entry (the state/ values repeat them). */
#define BATCH_EVENTS_MAX 2048
#define BATCH_BYTES (256 * 1024)
/* Ops of a batch besides the deletes and state puts: the BQ entry and bq-seq. */
#define BATCH_FIXED_OPS 2
/* State puts per checkpoint transaction (and state-seq), and how long a round
 * waits for more changes. */
#define CHECKPOINT_PUTS (STORE_TXN_OPS_MAX - 1)
#define CHECKPOINT_MSEC 200
/* A reader writes its offset at most this often: a restart delivers again at
 * most this much (delivery is at least once across restarts). */
#define OFFSET_SAVE_MSEC 200
/* The longest entry text parsed: a full entry of the longest events. */
#define ENTRY_JSON_MAX ((size_t)QUEUE_ENTRY_EVENTS_MAX * (QUEUE_EVENT_JSON_MAX + 32))

static const char *const kind_names[_QUEUE_KIND_MAX] = {
    [QUEUE_KIND_NODE] = "node",     [QUEUE_KIND_PROCESS] = "process", [QUEUE_KIND_SERVICE] = "service",
    [QUEUE_KIND_DEVICE] = "device", [QUEUE_KIND_SU] = "su",           [QUEUE_KIND_COMP] = "comp",
};

static const char *const state_names[_QUEUE_HA_MAX] = {
    [QUEUE_HA_ONLINE] = "ONLINE",         [QUEUE_HA_FAILED] = "FAILED",     [QUEUE_HA_TRANSIENT] = "TRANSIENT",
    [QUEUE_HA_REPAIR] = "REPAIR",         [QUEUE_HA_REPAIRED] = "REPAIRED", [QUEUE_HA_REBALANCE] = "REBALANCE",
    [QUEUE_HA_RECOVERING] = "RECOVERING", [QUEUE_HA_OFFLINE] = "OFFLINE",
};

/* ---- events ---- */

const char *queue_kind_to_string(enum queue_kind k) {
    return (unsigned)k < _QUEUE_KIND_MAX ? kind_names[k] : NULL;
}

const char *queue_ha_state_to_string(enum queue_ha_state s) {
    return (unsigned)s < _QUEUE_HA_MAX ? state_names[s] : NULL;
}

static int lookup(const char *const *names, size_t n, const char *s, size_t len) {
    if (!s)
        return -EINVAL;
    for (size_t i = 0; i < n; i++)
        if (strlen(names[i]) == len && memcmp(names[i], s, len) == 0)
            return (int)i;
    return -EINVAL;
}

int queue_kind_from_string(const char *s) {
    return lookup(kind_names, _QUEUE_KIND_MAX, s, s ? strlen(s) : 0);
}

int queue_ha_state_from_string(const char *s) {
    return lookup(state_names, _QUEUE_HA_MAX, s, s ? strlen(s) : 0);
}

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
    const char *colon = memchr(object, ':', n);
    if (!colon)
        return -EINVAL;
    int k = lookup(kind_names, _QUEUE_KIND_MAX, object, (size_t)(colon - object));
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
    if (ev->epoch < 0 && ev->epoch != QUEUE_EPOCH_NONE)
        return -EINVAL;
    return 0;
}

int queue_event_object(const struct queue_event *ev, char buf[static QUEUE_OBJECT_MAX]) {
    assert_return(ev, -EINVAL);
    assert_return((unsigned)ev->kind < _QUEUE_KIND_MAX, -EINVAL);
    size_t n = strnlen(ev->name, sizeof(ev->name));
    assert_return(name_valid_n(ev->name, n), -EINVAL);
    snprintf(buf, QUEUE_OBJECT_MAX, "%s:%.*s", kind_names[ev->kind], (int)n, ev->name);
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
        r = set_string(o, "state", state_names[ev->state]);
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

/* The decimal form only: 1 to 20 digits that fit a uint64_t. */
static int parse_u64(const char *s, size_t n, uint64_t *ret) {
    uint64_t v = 0;
    if (n == 0 || n > KEY_NUMBER_DIGITS)
        return -EINVAL;
    for (size_t i = 0; i < n; i++) {
        if (s[i] < '0' || s[i] > '9')
            return -EINVAL;
        unsigned d = (unsigned)(s[i] - '0');
        if (v > (UINT64_MAX - d) / 10)
            return -EINVAL;
        v = v * 10 + d;
    }
    *ret = v;
    return 0;
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
    if (!s || (r = lookup(state_names, _QUEUE_HA_MAX, s, n)) < 0)
        return -EINVAL;
    ev.state = (enum queue_ha_state)r;

    s = json_cstring(json_object_get(j, "node"), &n);
    if (!s || !name_valid_n(s, n))
        return -EINVAL;
    memcpy(ev.node, s, n);

    v = json_object_get(j, "hlc");
    if (v) {
        s = json_cstring(v, &n);
        if (!s || parse_u64(s, n, &ev.hlc) < 0)
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

/* The compact, key-sorted text of ev, with "seq" when seq > 0.  Caller frees. */
static int event_dump(const struct queue_event *ev, uint64_t seq, char **ret) {
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
static int published_parse(const char *buf, size_t len, struct queue_event *ev, uint64_t *ret_seq) {
    if (len == 0 || len > QUEUE_EVENT_JSON_MAX)
        return -EINVAL;
    json_t *j = json_loadb(buf, len, JSON_REJECT_DUPLICATES, NULL);
    if (!j)
        return -EINVAL;
    int r = queue_event_from_json(j, ev);
    json_t *s = json_object_get(j, "seq");
    *ret_seq = r >= 0 && json_is_integer(s) && json_integer_value(s) > 0 ? (uint64_t)json_integer_value(s) : 0;
    json_decref(j);
    return r;
}

/* The events of an EQ entry, into evs (room for QUEUE_ENTRY_EVENTS_MAX): a
 * JSON array of 1 to QUEUE_ENTRY_EVENTS_MAX events, or one event object (as
 * an operator may write by hand).  An invalid event in an array gets kind
 * _QUEUE_KIND_MAX and the others are kept.  Returns how many, or -EINVAL. */
static int entry_parse(const char *buf, size_t len, struct queue_event *evs) {
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
static uint64_t event_seq(const json_t *o) {
    json_t *s = json_object_get(o, "seq");
    return json_is_integer(s) && json_integer_value(s) > 0 ? (uint64_t)json_integer_value(s) : 0;
}

/* A BQ entry bq/<key_seq>: an array of published events whose seqs ascend
 * and end at key_seq (or, as written by hand, one event with seq key_seq).
 * Returns the JSON (caller decrefs) or NULL if it is not one. */
static json_t *bq_entry_load(const char *buf, size_t len, uint64_t key_seq) {
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
        uint64_t seq = event_seq(json_array_get(j, i));
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
static int counter_parse(const char *buf, size_t len, uint64_t *ret) {
    json_t *j = json_loadb(buf, len, JSON_DECODE_ANY, NULL);
    int r = json_is_integer(j) && json_integer_value(j) >= 0 ? 0 : -EINVAL;
    if (r == 0)
        *ret = (uint64_t)json_integer_value(j);
    json_decref(j);
    return r;
}

/* ---- object states: a small chained hash table ---- */

struct obj_state {
    struct obj_state *next;
    uint64_t seq; /* the BQ entry that set it; 0 if unknown */
    int state;
    /* Only in the consumer's map of states not yet written to state/: */
    char *value;   /* the event as published (owned) */
    bool in_round; /* to be written before the round's state-seq */
    char object[];
};

struct objmap {
    struct obj_state **buckets;
    size_t n_buckets, n;
};

static uint64_t hash_string(const char *s) {
    uint64_t h = UINT64_C(14695981039346656037);
    for (; *s; s++)
        h = (h ^ (unsigned char)*s) * UINT64_C(1099511628211);
    return h;
}

static struct obj_state *objmap_find(const struct objmap *m, const char *object) {
    if (m->n_buckets == 0)
        return NULL;
    for (struct obj_state *o = m->buckets[hash_string(object) & (m->n_buckets - 1)]; o; o = o->next)
        if (streq(o->object, object))
            return o;
    return NULL;
}

static int objmap_grow(struct objmap *m) {
    size_t nb = m->n_buckets ? m->n_buckets * 2 : 64;
    struct obj_state **b = calloc(nb, sizeof(*b));
    if (!b)
        return -ENOMEM;
    for (size_t i = 0; i < m->n_buckets; i++)
        for (struct obj_state *o = m->buckets[i], *next; o; o = next) {
            next = o->next;
            size_t k = hash_string(o->object) & (nb - 1);
            o->next = b[k];
            b[k] = o;
        }
    free(m->buckets);
    m->buckets = b;
    m->n_buckets = nb;
    return 0;
}

/* Records a state unless a later one (greater seq) is known already; takes
 * value (may be NULL), freed if not kept. */
static int objmap_put(struct objmap *m, const char *object, int state, uint64_t seq, char *value) {
    struct obj_state *o = objmap_find(m, object);
    if (o) {
        if (seq >= o->seq) {
            o->state = state;
            o->seq = seq;
            free(o->value);
            o->value = value;
        } else
            free(value);
        return 0;
    }
    if (m->n >= m->n_buckets && objmap_grow(m) < 0) {
        free(value);
        return -ENOMEM;
    }
    size_t len = strlen(object);
    o = malloc(sizeof(*o) + len + 1);
    if (!o) {
        free(value);
        return -ENOMEM;
    }
    *o = (struct obj_state){.seq = seq, .state = state, .value = value};
    memcpy(o->object, object, len + 1);
    size_t k = hash_string(object) & (m->n_buckets - 1);
    o->next = m->buckets[k];
    m->buckets[k] = o;
    m->n++;
    return 0;
}

static int objmap_set(struct objmap *m, const char *object, int state, uint64_t seq) {
    return objmap_put(m, object, state, seq, NULL);
}

static void objmap_remove(struct objmap *m, struct obj_state *gone) {
    for (struct obj_state **p = &m->buckets[hash_string(gone->object) & (m->n_buckets - 1)]; *p; p = &(*p)->next)
        if (*p == gone) {
            *p = gone->next;
            free(gone->value);
            free(gone);
            m->n--;
            return;
        }
}

static void objmap_done(struct objmap *m) {
    for (size_t i = 0; i < m->n_buckets; i++)
        for (struct obj_state *o = m->buckets[i], *next; o; o = next) {
            next = o->next;
            free(o->value);
            free(o);
        }
    free(m->buckets);
    *m = (struct objmap){0};
}

/* ---- the queue ---- */

/* An EQ entry waiting for the consumer, or consumed by a batch in flight. */
struct pending {
    struct pending *next;
    int64_t revision;
    size_t key_len, value_len;
    char *key, *value; /* in data[], each NUL-terminated */
    char data[];
};

/* An event a batch publishes. */
struct pub {
    char *text; /* the event as published, with its seq */
    char *object;
    int state;
    uint64_t seq;
};

/* One transaction of the consumer: whole EQ entries, one BQ entry. */
struct batch {
    struct pending *entries; /* consumed, in order; deleted by this batch */
    struct pending **tail;
    size_t n_entries, n_events;
    struct pub *pubs; /* seqs consumer.seq + 1 ... + n_pubs */
    size_t n_pubs, cap_pubs, pub_bytes;
    uint64_t n_duplicates, n_dropped;
    size_t writer_ops;       /* ops the writer adds (its cost() so far) */
    bool writer_used;        /* the writer took events: tell it the outcome */
    struct pending *partial; /* the head entry, partly consumed: rewritten with rest */
    char *rest;              /* its events not published yet, a JSON array */
    store_op ops[STORE_TXN_OPS_MAX];
    char bq_key[STORE_KEY_MAX + 1];
    char *bq_value;
    char seq_value[HLC_DECIMAL_MAX];
};

/* The coordinator writes the published states to state/ behind the BQ, in
 * rounds: the objects changed since the last round, in transactions of
 * CHECKPOINT_PUTS, the last one with state-seq (the seq every state up to
 * which is in state/).  Pruning keeps the BQ after state-seq. */
struct checkpoint {
    struct objmap dirty; /* published, not yet written; value set */
    bool round, inflight;
    uint64_t round_seq; /* state-seq once the round's objects are written */
    size_t n_in_round;
    unsigned backoff_msec;
};

struct consumer {
    bool running, loading, reload;
    unsigned gen; /* bumped on every stop: older callbacks are ignored */
    store_compare guard;
    bool has_guard;
    char *guard_key, *guard_value;
    eq_decide_cb decide;
    eq_expand_cb expand;
    const struct eq_writer *writer;
    void *writer_userdata;
    queue_stopped_cb stopped;
    void *userdata;
    store_watch *watch;
    struct pending *head, **tail;
    size_t n_pending;
    struct objmap decided;   /* each object's last published state, as this consumer knows it */
    uint64_t seq;            /* the last seq published (bq-seq) */
    int64_t seq_mod;         /* bq-seq's mod revision as last read or written; 0: missing */
    struct batch *batch;     /* in flight */
    struct queue_event *evs; /* QUEUE_ENTRY_EVENTS_MAX, for parsing an entry */
    unsigned backoff_msec;
    struct checkpoint cp;
};

struct reader {
    bool running, loading;
    unsigned gen;
    bq_deliver_cb deliver;
    queue_stopped_cb stopped;
    void *userdata;
    store_watch *watch;
    uint64_t delivered; /* kept across stop/start: never deliver a seq twice */
    uint64_t saved;     /* the offset in the store, as far as we know */
    uint64_t saved_at;  /* uv_now() of the last offset write sent */
    bool save_inflight;
    unsigned backoff_msec;
};

/* An eq_append() call: its events wait in the FIFO until transactions have
 * taken all of them. */
struct append_op {
    struct append_op *next; /* in queue.appends, in call order */
    eq_append_cb cb;
    void *userdata;
    char **values; /* each event's JSON */
    size_t *value_lens;
    size_t n, done; /* done: appended (a prefix) */
};

/* The one append transaction in flight or waiting to be sent again: EQ
 * entries made of the next events of the FIFO, in order. */
struct append_txn {
    size_t n_entries, n_events;
    char keys[APPEND_TXN_ENTRIES][STORE_KEY_MAX + 1];
    char *values[APPEND_TXN_ENTRIES];
    size_t value_lens[APPEND_TXN_ENTRIES];
    bool stamped, waiting;
    unsigned attempts, collisions;
};

struct prune_op {
    struct queue *q;
    bq_prune_cb cb;
    void *userdata;
    char **nodes;
    size_t n_nodes;
    uint64_t *seqs; /* entries to delete, ascending */
    size_t n_seqs, next, chunk;
    char *keys;
    size_t key_size;
    uint64_t deleted;
    bool inflight, cancelled;
};

struct queue {
    uv_loop_t *loop;
    store *store;
    char *node;
    struct hlc own_clock;
    struct hlc *clock;
    char *eq_prefix, *eq_node_prefix, *state_prefix, *state_seq_key, *bq_prefix, *bq_seq_key, *delivered_prefix,
        *delivered_key;

    /* Store calls in flight, callbacks in progress and open timers: the memory
     * is released when this drops to 0 after queue_free(). */
    unsigned refs;
    bool closing;
    bool store_gone; /* the store said -ECANCELED: never call it again */

    struct objmap states;
    struct queue_stats stats;
    struct consumer consumer;
    struct reader reader;
    struct append_op *appends, **appends_tail; /* FIFO */
    size_t n_appends;
    struct append_txn *append_txn; /* NULL: none */
    struct prune_op *prune;
    uv_timer_t consumer_timer, reader_timer, append_timer, checkpoint_timer;
};

/* One store call: holds a reference on the queue until its callback ends. */
struct call;
typedef void (*call_fn)(struct queue *q, struct call *k, int error, const store_result *r);

struct call {
    struct queue *q;
    call_fn done; /* runs from the store's callback; the call is freed after it */
    unsigned gen;
    void *data;
    uint64_t offset; /* an offset write: the offset written */
};

static void queue_destroy(struct queue *q) {
    objmap_done(&q->states);
    objmap_done(&q->consumer.decided);
    objmap_done(&q->consumer.cp.dirty);
    free(q->consumer.evs);
    free(q->consumer.guard_key);
    free(q->consumer.guard_value);
    free(q->node);
    free(q->eq_prefix);
    free(q->eq_node_prefix);
    free(q->state_prefix);
    free(q->state_seq_key);
    free(q->bq_prefix);
    free(q->bq_seq_key);
    free(q->delivered_prefix);
    free(q->delivered_key);
    free(q);
}

static void queue_ref(struct queue *q) {
    q->refs++;
}

static void queue_unref(struct queue *q) {
    assert(q->refs > 0);
    if (--q->refs == 0 && q->closing)
        queue_destroy(q);
}

static struct call *call_new(struct queue *q, call_fn done, unsigned gen, void *data) {
    struct call *k = malloc(sizeof(*k));
    if (!k)
        return NULL;
    *k = (struct call){.q = q, .done = done, .gen = gen, .data = data};
    queue_ref(q);
    return k;
}

/* The store callback of every call: its handler, then the call's reference goes. */
static void on_call(store *s, int error, const store_result *r, void *userdata) {
    struct call *k = userdata;
    struct queue *q = k->q;
    k->done(q, k, error, r);
    free(k);
    queue_unref(q);
}

/* For a call that could not be made: its callback will not run. */
static void call_drop(struct call *k) {
    if (k) {
        struct queue *q = k->q;
        free(k);
        queue_unref(q);
    }
}

/* Whether the store may still be called; records its -ECANCELED. */
static bool store_usable(struct queue *q, int error) {
    if (error == -ECANCELED)
        q->store_gone = true;
    return !q->store_gone && !q->closing;
}

static unsigned backoff_next(unsigned *msec) {
    unsigned now = *msec ? *msec : RETRY_MIN_MSEC;
    *msec = MIN(now * 2, RETRY_MAX_MSEC);
    return now;
}

static size_t key_number(char *buf, size_t size, const char *prefix, uint64_t n) {
    return (size_t)snprintf(buf, size, "%s%0*" PRIu64, prefix, KEY_NUMBER_DIGITS, n);
}

/* The number at the end of key after prefix (exactly KEY_NUMBER_DIGITS digits). */
static int key_number_parse(const char *key, size_t key_len, const char *prefix, uint64_t *ret) {
    size_t p = strlen(prefix);
    if (key_len != p + KEY_NUMBER_DIGITS || memcmp(key, prefix, p) != 0)
        return -EINVAL;
    return parse_u64(key + p, KEY_NUMBER_DIGITS, ret);
}

static bool has_prefix(const store_kv *kv, const char *prefix) {
    size_t n = strlen(prefix);
    return kv->key_len >= n && memcmp(kv->key, prefix, n) == 0;
}

static bool key_is(const store_kv *kv, const char *key) {
    return kv->key_len == strlen(key) && memcmp(kv->key, key, kv->key_len) == 0;
}

/* Records the state in a state/ value; -EINVAL (logged) or -ENOMEM. */
static int state_value_apply(struct objmap *m, const store_kv *kv) {
    struct queue_event ev;
    uint64_t seq;
    char object[QUEUE_OBJECT_MAX];
    if (published_parse(kv->value, kv->value_len, &ev, &seq) < 0) {
        log_warning("Ignoring the invalid state value of '%.*s'", (int)kv->key_len, kv->key);
        return -EINVAL;
    }
    (void)queue_event_object(&ev, object);
    return objmap_set(m, object, (int)ev.state, seq);
}

/* Records the states a BQ entry published; with dirty, also the events after
 * state_seq, as published (not in state/ yet).  -EINVAL or -ENOMEM. */
static int bq_entry_apply(struct objmap *m, const store_kv *kv, const char *bq_prefix, struct objmap *dirty,
                          uint64_t state_seq) {
    uint64_t key_seq;
    json_t *j;
    int r = 0;
    if (key_number_parse(kv->key, kv->key_len, bq_prefix, &key_seq) < 0 ||
        !(j = bq_entry_load(kv->value, kv->value_len, key_seq)))
        return -EINVAL;
    for (size_t i = 0; i < json_array_size(j) && r != -ENOMEM; i++) {
        struct queue_event ev;
        char object[QUEUE_OBJECT_MAX];
        const json_t *o = json_array_get(j, i);
        if (queue_event_from_json(o, &ev) < 0)
            continue;
        (void)queue_event_object(&ev, object);
        uint64_t seq = event_seq(o);
        r = objmap_set(m, object, (int)ev.state, seq);
        if (r >= 0 && dirty && seq > state_seq) {
            char *text = json_dumps(o, JSON_COMPACT | JSON_SORT_KEYS);
            r = text ? objmap_put(dirty, object, (int)ev.state, seq, text) : -ENOMEM;
        }
    }
    json_decref(j);
    return r;
}

static void on_timer_closed(uv_handle_t *h) {
    queue_unref(h->data);
}

static int make_key(char **ret, const char *a, const char *b, const char *c) {
    return asprintf(ret, "%s%s%s", a, b, c) < 0 ? -ENOMEM : 0;
}

int queue_new(const struct queue_params *p, struct queue **ret) {
    assert_return(p && ret, -EINVAL);
    assert_return(p->loop && p->store && p->prefix, -EINVAL);
    assert_return(strlen(p->prefix) <= QUEUE_PREFIX_MAX, -EINVAL);
    assert_return(queue_name_valid(p->node), -EINVAL);

    struct queue *q = calloc(1, sizeof(*q));
    if (!q)
        return -ENOMEM;
    q->loop = p->loop;
    q->store = p->store;
    hlc_init(&q->own_clock, NULL, NULL);
    q->clock = p->clock ? p->clock : &q->own_clock;
    q->consumer.tail = &q->consumer.head;
    q->appends_tail = &q->appends;
    q->node = strdup(p->node);
    if (!q->node || make_key(&q->eq_prefix, p->prefix, "eq/", "") < 0 ||
        asprintf(&q->eq_node_prefix, "%seq/%s/", p->prefix, p->node) < 0 ||
        make_key(&q->state_prefix, p->prefix, "state/", "") < 0 || make_key(&q->bq_prefix, p->prefix, "bq/", "") < 0 ||
        make_key(&q->bq_seq_key, p->prefix, "bq-seq", "") < 0 ||
        make_key(&q->state_seq_key, p->prefix, "state-seq", "") < 0 ||
        make_key(&q->delivered_prefix, p->prefix, "bq-delivered/", "") < 0 ||
        make_key(&q->delivered_key, p->prefix, "bq-delivered/", p->node) < 0) {
        queue_destroy(q);
        return -ENOMEM;
    }
    uv_timer_t *timers[] = {&q->consumer_timer, &q->reader_timer, &q->append_timer, &q->checkpoint_timer};
    for (size_t i = 0; i < ELEMENTSOF(timers); i++) {
        (void)uv_timer_init(q->loop, timers[i]);
        timers[i]->data = q;
        queue_ref(q); /* released when the timer has closed */
    }
    *ret = q;
    return 0;
}

int queue_state_get(const struct queue *q, const char *object) {
    assert_return(q && object, -EINVAL);
    const struct obj_state *o = objmap_find(&q->states, object);
    const struct obj_state *d = objmap_find(&q->consumer.decided, object);
    if (d && (!o || d->seq > o->seq))
        o = d; /* decided by this node's consumer, not yet delivered here */
    return o ? o->state : -ENOENT;
}

void queue_state_foreach(const struct queue *q, queue_state_cb cb, void *userdata) {
    for (size_t i = 0; q && i < q->states.n_buckets; i++)
        for (const struct obj_state *o = q->states.buckets[i]; o; o = o->next)
            cb(o->object, (enum queue_ha_state)o->state, o->seq, userdata);
}

void queue_get_stats(const struct queue *q, struct queue_stats *ret) {
    *ret = q->stats;
    ret->last_seq = q->consumer.seq;
}

/* ---- the consumer ---- */

static void pending_free_list(struct pending *p) {
    while (p) {
        struct pending *next = p->next;
        free(p);
        p = next;
    }
}

static struct pending *pending_new(const store_kv *kv) {
    struct pending *p = malloc(sizeof(*p) + kv->key_len + 1 + kv->value_len + 1);
    if (!p)
        return NULL;
    p->next = NULL;
    /* EQ order: when the entry was appended (a rest rewritten by the consumer keeps its place). */
    p->revision = kv->create_revision ? kv->create_revision : kv->mod_revision;
    p->key_len = kv->key_len;
    p->value_len = kv->value_len;
    p->key = p->data;
    p->value = p->data + kv->key_len + 1;
    memcpy(p->key, kv->key, kv->key_len);
    p->key[kv->key_len] = '\0';
    if (kv->value_len)
        memcpy(p->value, kv->value, kv->value_len);
    p->value[kv->value_len] = '\0';
    return p;
}

static void pending_push(struct consumer *c, struct pending *p) {
    *c->tail = p;
    c->tail = &p->next;
    c->n_pending++;
}

static struct pending *pending_pop(struct consumer *c) {
    struct pending *p = c->head;
    c->head = p->next;
    if (!c->head)
        c->tail = &c->head;
    p->next = NULL;
    c->n_pending--;
    return p;
}

static void pending_clear(struct consumer *c) {
    pending_free_list(c->head);
    c->head = NULL;
    c->tail = &c->head;
    c->n_pending = 0;
}

static struct batch *batch_free(struct batch *b) {
    if (!b)
        return NULL;
    pending_free_list(b->entries);
    free(b->rest);
    for (size_t i = 0; i < b->n_pubs; i++) {
        free(b->pubs[i].text);
        free(b->pubs[i].object);
    }
    free(b->pubs);
    free(b->bq_value);
    free(b);
    return NULL;
}

/* Frees a batch that was not committed, telling the writer. */
static struct batch *batch_drop(struct queue *q, struct batch *b) {
    struct consumer *c = &q->consumer;
    if (b && b->writer_used && c->writer)
        c->writer->done(q, false, c->writer_userdata);
    return batch_free(b);
}

/* Stops without telling anyone; a batch in flight is left to its callback. */
static void consumer_halt(struct queue *q) {
    struct consumer *c = &q->consumer;
    c->running = c->loading = c->reload = false;
    c->gen++;
    c->watch = store_watch_cancel(c->watch);
    pending_clear(c);
    c->batch = NULL; /* owned by the call in flight */
    uv_timer_stop(&q->consumer_timer);
    /* What is not in state/ yet is on the BQ, which the next coordinator reads. */
    objmap_done(&c->cp.dirty);
    c->cp = (struct checkpoint){0};
    uv_timer_stop(&q->checkpoint_timer);
}

static void consumer_fail(struct queue *q, int error) {
    struct consumer *c = &q->consumer;
    consumer_halt(q);
    if (c->stopped && !q->closing)
        c->stopped(q, error, c->userdata);
}

static void consumer_load(struct queue *q);
static void consumer_kick(struct queue *q);
static void checkpoint_schedule(struct queue *q);
static void on_consumer_timer(uv_timer_t *t);

/* Re-reads everything after backoff (error < 0) or at once. */
static void consumer_schedule_reload(struct queue *q, int error) {
    struct consumer *c = &q->consumer;
    c->reload = true;
    c->watch = store_watch_cancel(c->watch);
    pending_clear(c);
    if (c->batch || c->loading)
        return; /* its callback reloads */
    uv_timer_start(&q->consumer_timer, on_consumer_timer, error < 0 ? backoff_next(&c->backoff_msec) : 0, 0);
}

static void on_consumer_timer(uv_timer_t *t) {
    struct queue *q = t->data;
    queue_ref(q);
    if (q->consumer.running && !q->closing)
        consumer_kick(q);
    queue_unref(q);
}

static int pending_cmp(const void *a, const void *b) {
    const struct pending *x = *(struct pending *const *)a, *y = *(struct pending *const *)b;
    if (x->revision != y->revision)
        return x->revision < y->revision ? -1 : 1;
    return strcmp(x->key, y->key);
}

static void on_consumer_watch(store_watch *w, int error, const store_event *ev, size_t n, void *userdata) {
    struct queue *q = userdata;
    struct consumer *c = &q->consumer;
    queue_ref(q);
    if (error < 0) {
        c->watch = store_watch_cancel(c->watch);
        if (!store_usable(q, error))
            consumer_fail(q, -ECANCELED);
        else {
            log_warning_errno(error, "The event queue's watch ended, reading it again: %m");
            consumer_schedule_reload(q, error == -ESTALE ? 0 : error);
        }
        goto out;
    }
    for (size_t i = 0; i < n; i++) {
        /* version > 1: the consumer's own rewrite of a partly consumed entry, which it holds already. */
        if (ev[i].type != STORE_EVENT_PUT || !has_prefix(&ev[i].kv, q->eq_prefix) || ev[i].kv.version > 1)
            continue;
        struct pending *p = pending_new(&ev[i].kv);
        if (!p) {
            log_warning("Out of memory queueing EQ events, reading the EQ again later");
            consumer_schedule_reload(q, -ENOMEM);
            goto out;
        }
        pending_push(c, p);
    }
    consumer_kick(q);
out:
    queue_unref(q);
}

static void consumer_loaded(struct queue *q, struct call *k, int error, const store_result *r) {
    struct consumer *c = &q->consumer;
    if (q->closing || k->gen != c->gen)
        return;
    c->loading = false;
    if (!store_usable(q, error)) {
        consumer_fail(q, -ECANCELED);
        return;
    }
    if (error < 0) {
        log_warning_errno(error, "Failed to read the event queue: %m");
        consumer_schedule_reload(q, error);
        return;
    }

    /* The unconsumed events, in the order they were appended. */
    size_t n_eq = 0;
    for (size_t i = 0; i < r->n_kvs; i++)
        n_eq += has_prefix(&r->kvs[i], q->eq_prefix);
    struct pending **sorted = calloc(n_eq ? n_eq : 1, sizeof(*sorted));
    if (!sorted) {
        consumer_schedule_reload(q, -ENOMEM);
        return;
    }
    size_t m = 0;
    c->seq = 0;
    c->seq_mod = 0;
    /* The published states: state/ and, newer, the BQ after state-seq, whose
     * states this consumer writes to state/ (again, maybe) before it moves
     * state-seq. */
    objmap_done(&c->decided);
    bool nomem = false;
    uint64_t state_seq = 0;
    for (size_t i = 0; i < r->n_kvs; i++)
        if (key_is(&r->kvs[i], q->state_seq_key) && counter_parse(r->kvs[i].value, r->kvs[i].value_len, &state_seq) < 0)
            state_seq = 0;
    for (size_t i = 0; i < r->n_kvs && !nomem; i++) {
        const store_kv *kv = &r->kvs[i];
        if (has_prefix(kv, q->eq_prefix)) {
            struct pending *p = pending_new(kv);
            if (!p)
                break;
            sorted[m++] = p;
        } else if (has_prefix(kv, q->state_prefix))
            nomem = state_value_apply(&c->decided, kv) == -ENOMEM;
        else if (has_prefix(kv, q->bq_prefix))
            nomem = bq_entry_apply(&c->decided, kv, q->bq_prefix, &c->cp.dirty, state_seq) == -ENOMEM;
        else if (key_is(kv, q->bq_seq_key)) {
            if (counter_parse(kv->value, kv->value_len, &c->seq) < 0)
                log_warning("Ignoring the invalid value of '%s'", kv->key);
            c->seq_mod = kv->mod_revision;
        }
    }
    if (m < n_eq || nomem) {
        for (size_t i = 0; i < m; i++)
            free(sorted[i]);
        free(sorted);
        consumer_schedule_reload(q, -ENOMEM);
        return;
    }
    qsort(sorted, m, sizeof(*sorted), pending_cmp);
    for (size_t i = 0; i < m; i++)
        pending_push(c, sorted[i]);
    free(sorted);

    int ret = store_watch_prefix(q->store, q->eq_prefix, r->revision + 1, on_consumer_watch, q, &c->watch);
    if (ret < 0) {
        c->watch = NULL;
        if (!store_usable(q, ret))
            consumer_fail(q, -ECANCELED);
        else
            consumer_schedule_reload(q, ret);
        return;
    }
    c->reload = false;
    log_debug("Event queue loaded: %zu events pending, last seq %" PRIu64, c->n_pending, c->seq);
    checkpoint_schedule(q);
    consumer_kick(q);
}

static void consumer_load(struct queue *q) {
    struct consumer *c = &q->consumer;
    store_op ops[] = {
        {.type = STORE_OP_GET_PREFIX, .key = q->eq_prefix, .key_len = strlen(q->eq_prefix)},
        {.type = STORE_OP_GET_PREFIX, .key = q->state_prefix, .key_len = strlen(q->state_prefix)},
        {.type = STORE_OP_GET_PREFIX, .key = q->bq_prefix, .key_len = strlen(q->bq_prefix)},
        {.type = STORE_OP_GET, .key = q->bq_seq_key, .key_len = strlen(q->bq_seq_key)},
        {.type = STORE_OP_GET, .key = q->state_seq_key, .key_len = strlen(q->state_seq_key)},
    };
    store_txn txn = {.success = ops, .n_success = ELEMENTSOF(ops)};
    pending_clear(c);
    if (c->writer)
        c->writer->reset(q, c->writer_userdata); /* it reads its part again */
    struct call *k = call_new(q, consumer_loaded, c->gen, NULL);
    int r = k ? store_transaction(q->store, &txn, on_call, k) : -ENOMEM;
    if (r < 0) {
        call_drop(k);
        if (!store_usable(q, r))
            consumer_fail(q, -ECANCELED);
        else
            consumer_schedule_reload(q, r);
        return;
    }
    c->loading = true;
}

/* Whether compare holds for kv (NULL: the key is missing), as the store decides it. */
static bool compare_holds(const store_compare *cmp, const store_kv *kv) {
    int d;
    if (cmp->target == STORE_CMP_VALUE) {
        if (!kv)
            return false;
        size_t n = MIN(kv->value_len, cmp->value_len);
        d = n ? memcmp(kv->value, cmp->value, n) : 0;
        if (d == 0)
            d = kv->value_len < cmp->value_len ? -1 : kv->value_len > cmp->value_len;
    } else {
        int64_t have = !kv                                ? 0
                       : cmp->target == STORE_CMP_VERSION ? kv->version
                       : cmp->target == STORE_CMP_CREATE  ? kv->create_revision
                                                          : kv->mod_revision;
        d = have < cmp->number ? -1 : have > cmp->number;
    }
    switch (cmp->result) {
    case STORE_CMP_EQUAL:
        return d == 0;
    case STORE_CMP_NOT_EQUAL:
        return d != 0;
    case STORE_CMP_LESS:
        return d < 0;
    case STORE_CMP_GREATER:
        return d > 0;
    }
    return false;
}

/* Adds a published event; takes text (NULL: out of memory). */
static int batch_push(struct batch *b, char *text, const char *object, int state, uint64_t seq) {
    char *o = text ? strdup(object) : NULL;
    if (!o) {
        free(text);
        return -ENOMEM;
    }
    if (b->n_pubs == b->cap_pubs) {
        size_t cap = b->cap_pubs ? b->cap_pubs * 2 : 64;
        struct pub *p = realloc(b->pubs, cap * sizeof(*p));
        if (!p) {
            free(text);
            free(o);
            return -ENOMEM;
        }
        b->pubs = p;
        b->cap_pubs = cap;
    }
    b->pubs[b->n_pubs++] = (struct pub){.text = text, .object = o, .state = state, .seq = seq};
    b->pub_bytes += strlen(text) + 1;
    return 0;
}

/* Moves the head of the pending entries into b. */
static void batch_consume_head(struct consumer *c, struct batch *b, size_t n_events) {
    struct pending *p = pending_pop(c);
    *b->tail = p;
    b->tail = &p->next;
    b->n_entries++;
    b->n_events += n_events;
}

enum { TAKE_DUPLICATE, TAKE_DROP, TAKE_PUBLISH };

/* Publishes one event in b (the next seq) and records its state, if its
 * writes fit the transaction: 1, 0 (full: nothing done), or -errno. */
static int batch_publish(struct queue *q, struct batch *b, struct queue_event *ev, const char *object) {
    struct consumer *c = &q->consumer;
    size_t cost = 0;
    if (c->writer) {
        cost = c->writer->cost(q, ev, c->writer_userdata);
        if (b->n_entries + 1 + BATCH_FIXED_OPS + b->writer_ops + cost > STORE_TXN_OPS_MAX)
            return 0;
    }
    uint64_t seq = c->seq + b->n_pubs + 1;
    char *text = NULL;
    int r = event_dump(ev, seq, &text);
    if (r < 0 || (r = batch_push(b, text, object, (int)ev->state, seq)) < 0 ||
        (r = objmap_set(&c->decided, object, (int)ev->state, seq)) < 0)
        return r;
    if (c->writer) {
        c->writer->add(q, ev, seq, b->pubs[b->n_pubs - 1].text, c->writer_userdata);
        b->writer_ops += cost;
        b->writer_used = true;
    }
    return 1;
}

/* What a derived event does: 1 publish, 0 skip (a duplicate, or refused). */
static int derived_decide(struct queue *q, struct queue_event *d, char object[static QUEUE_OBJECT_MAX]) {
    struct consumer *c = &q->consumer;
    if (queue_event_validate(d, false) < 0 || queue_event_object(d, object) < 0)
        return 0;
    const struct obj_state *o = objmap_find(&c->decided, object);
    int cur = o ? o->state : -ENOENT;
    if ((int)d->state == cur)
        return 0;
    enum queue_ha_state decided = d->state;
    if (c->decide && c->decide(q, d, cur, &decided, c->userdata) <= 0)
        return 0; /* refused, or cannot say now: a derived event is not retried */
    if ((unsigned)decided >= _QUEUE_HA_MAX || (int)decided == cur)
        return 0;
    d->state = decided;
    return 1;
}

/* The events not published yet, as an entry's value (a JSON array). */
static int rest_dump(const struct queue_event *a, size_t n_a, const struct queue_event *b, size_t n_b, char **ret) {
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

/*
 * Adds the next EQ entry (the head of the pending ones) to b if it fits: its
 * delete, and its events on the BQ entry.  An entry always fits an empty
 * batch.  The decisions go into the consumer's map of states at once (a
 * failed batch reads everything again).  Returns 1 (taken), 0 (it does not
 * fit: send b first), -EAGAIN (decide failed for one of its events: nothing
 * changed, retry later), -ECANCELED (decide stopped the consumer), -ENOMEM.
 */
static int batch_take(struct queue *q, struct batch *b) {
    struct consumer *c = &q->consumer;
    struct pending *p = c->head;
    struct queue_event *evs = c->evs;
    char objects[QUEUE_ENTRY_EVENTS_MAX][QUEUE_OBJECT_MAX];
    size_t first[QUEUE_ENTRY_EVENTS_MAX]; /* the event that first names the same object */
    int current[QUEUE_ENTRY_EVENTS_MAX];  /* by first: the object's state so far */
    unsigned char what[QUEUE_ENTRY_EVENTS_MAX];
    unsigned gen = c->gen;

    if (b->n_entries + 1 + BATCH_FIXED_OPS + b->writer_ops >= STORE_TXN_OPS_MAX)
        return 0;
    int n = entry_parse(p->value, p->value_len, evs);
    if (n < 0) {
        log_warning("Dropping the invalid entry '%s' from the event queue", p->key);
        b->n_dropped++;
        batch_consume_head(c, b, 1);
        return 1;
    }
    if (b->n_entries > 0 &&
        (b->n_pubs + (size_t)n > BATCH_EVENTS_MAX || b->pub_bytes + p->value_len + 32 * (size_t)n > BATCH_BYTES))
        return 0;

    /* Decide every event first: a failure changes nothing. */
    for (size_t i = 0; i < (size_t)n; i++) {
        if (evs[i].kind == _QUEUE_KIND_MAX) {
            log_warning("Dropping an invalid event of '%s' from the event queue", p->key);
            what[i] = TAKE_DROP;
            continue;
        }
        (void)queue_event_object(&evs[i], objects[i]);
        first[i] = i;
        for (size_t k = 0; k < i; k++)
            if (evs[k].kind != _QUEUE_KIND_MAX && streq(objects[k], objects[i])) {
                first[i] = first[k];
                break;
            }
        if (first[i] == i) {
            const struct obj_state *o = objmap_find(&c->decided, objects[i]);
            current[i] = o ? o->state : -ENOENT;
        }
        int cur = current[first[i]];
        if ((int)evs[i].state == cur) {
            what[i] = TAKE_DUPLICATE;
            continue;
        }
        enum queue_ha_state decided = evs[i].state;
        int d = 1;
        if (c->decide) {
            d = c->decide(q, &evs[i], cur, &decided, c->userdata);
            if (q->closing || c->gen != gen)
                return -ECANCELED;
        }
        if (d < 0) {
            log_debug_errno(d, "Deciding on '%s' failed, retrying later: %m", objects[i]);
            return -EAGAIN;
        }
        if (d == 0 || (unsigned)decided >= _QUEUE_HA_MAX)
            what[i] = TAKE_DROP;
        else if ((int)decided == cur)
            what[i] = TAKE_DUPLICATE;
        else {
            what[i] = TAKE_PUBLISH;
            evs[i].state = decided;
            current[first[i]] = (int)decided;
        }
    }

    /* Publish in order, each event followed by what it implies, while the
     * writes fit one transaction; what does not fit stays in the entry. */
    uint64_t dups = 0, drops = 0;
    bool any = false;
    struct queue_event *derived = NULL;
    size_t n_derived = 0, at = 0, i;
    int r = 1;
    for (i = 0; i < (size_t)n; i++) {
        if (what[i] != TAKE_PUBLISH) {
            dups += what[i] == TAKE_DUPLICATE;
            drops += what[i] == TAKE_DROP;
            continue;
        }
        if (c->expand) {
            /* An earlier event's expansion may have published this state already. */
            const struct obj_state *o = objmap_find(&c->decided, objects[i]);
            if (o && o->state == (int)evs[i].state) {
                dups++;
                continue;
            }
        }
        r = batch_publish(q, b, &evs[i], objects[i]);
        if (r <= 0)
            break;
        any = true;
        if (!c->expand)
            continue;
        n_derived = c->expand(q, &evs[i], NULL, 0, c->userdata);
        if (n_derived == 0)
            continue;
        derived = calloc(n_derived, sizeof(*derived));
        if (!derived) {
            r = -ENOMEM;
            break;
        }
        n_derived = MIN(n_derived, c->expand(q, &evs[i], derived, n_derived, c->userdata));
        for (at = 0; at < n_derived; at++) {
            char object[QUEUE_OBJECT_MAX];
            if (derived_decide(q, &derived[at], object) == 0)
                continue;
            r = batch_publish(q, b, &derived[at], object);
            if (r <= 0)
                break;
        }
        if (r <= 0)
            break;
        free(derived);
        derived = NULL;
        n_derived = at = 0;
    }
    if (r < 0) {
        free(derived);
        return r;
    }
    if (r == 0 && !any && b->n_entries > 0) {
        free(derived);
        return 0; /* the entry waits for the next batch, untouched */
    }
    b->n_duplicates += dups;
    b->n_dropped += drops;
    if (r == 0) {
        /* Full: the rest of the entry (the derived events not published, then
         * its events after the last published one) is written back in its place. */
        size_t from = i + (n_derived > 0);
        if (!any && b->n_pubs == 0) {
            /* Cannot happen within the description's limits (a pool's size bounds an event's writes). */
            log_error("Dropping an event of '%s' whose writes exceed one transaction", p->key);
            b->n_dropped++;
            from = i + 1;
        }
        r = rest_dump(derived ? derived + at : NULL, derived ? n_derived - at : 0, evs + from,
                      from < (size_t)n ? (size_t)n - from : 0, &b->rest);
        free(derived);
        if (r < 0)
            return r;
        b->partial = c->head;
        b->n_events += i;
        return 0;
    }
    batch_consume_head(c, b, (size_t)n);
    return 1;
}

/* The ops of b: its entries' deletes, the BQ entry, bq-seq. */
static int batch_ops(struct queue *q, struct batch *b, size_t *ret_n) {
    struct consumer *c = &q->consumer;
    size_t n = 0;
    for (struct pending *p = b->entries; p; p = p->next)
        b->ops[n++] = (store_op){.type = STORE_OP_DELETE, .key = p->key, .key_len = p->key_len};
    if (b->partial)
        b->ops[n++] = (store_op){.type = STORE_OP_PUT,
                                 .key = b->partial->key,
                                 .key_len = b->partial->key_len,
                                 .value = b->rest,
                                 .value_len = strlen(b->rest)};
    if (b->n_pubs > 0) {
        /* bq/<the last seq>: the events as one JSON array. */
        char *v = malloc(b->pub_bytes + 2), *at = v;
        if (!v)
            return -ENOMEM;
        b->bq_value = v;
        *at++ = '[';
        for (size_t i = 0; i < b->n_pubs; i++) {
            size_t len = strlen(b->pubs[i].text);
            if (i > 0)
                *at++ = ',';
            memcpy(at, b->pubs[i].text, len);
            at += len;
        }
        *at++ = ']';
        key_number(b->bq_key, sizeof(b->bq_key), q->bq_prefix, c->seq + b->n_pubs);
        b->ops[n++] = (store_op){.type = STORE_OP_PUT,
                                 .key = b->bq_key,
                                 .key_len = strlen(b->bq_key),
                                 .value = v,
                                 .value_len = (size_t)(at - v)};
        snprintf(b->seq_value, sizeof(b->seq_value), "%" PRIu64, c->seq + b->n_pubs);
        b->ops[n++] = (store_op){.type = STORE_OP_PUT,
                                 .key = q->bq_seq_key,
                                 .key_len = strlen(q->bq_seq_key),
                                 .value = b->seq_value,
                                 .value_len = strlen(b->seq_value)};
    }
    if (b->writer_used) {
        int k = c->writer->ops(q, b->ops + n, STORE_TXN_OPS_MAX - n, c->writer_userdata);
        if (k < 0)
            return k;
        n += (size_t)k;
    }
    assert(n <= STORE_TXN_OPS_MAX);
    *ret_n = n;
    return 0;
}

static void consumer_batch_done(struct queue *q, struct call *k, int error, const store_result *r);

/* Sends b, the consumer's batch. */
static void consumer_send(struct queue *q, struct batch *b) {
    struct consumer *c = &q->consumer;
    store_compare cmps[2];
    size_t n_cmps = 0, n_ops = 0;
    if (c->has_guard)
        cmps[n_cmps++] = c->guard;
    cmps[n_cmps++] = (store_compare){.key = q->bq_seq_key,
                                     .key_len = strlen(q->bq_seq_key),
                                     .target = STORE_CMP_MOD,
                                     .result = STORE_CMP_EQUAL,
                                     .number = c->seq_mod};
    /* Tells a deposed coordinator from a moved bq-seq. */
    store_op failure[2];
    size_t n_failure = 0;
    if (c->has_guard)
        failure[n_failure++] = (store_op){.type = STORE_OP_GET, .key = c->guard.key, .key_len = c->guard.key_len};
    failure[n_failure++] = (store_op){.type = STORE_OP_GET, .key = q->bq_seq_key, .key_len = strlen(q->bq_seq_key)};

    int r = batch_ops(q, b, &n_ops);
    store_txn txn = {.compares = cmps,
                     .n_compares = n_cmps,
                     .success = b->ops,
                     .n_success = n_ops,
                     .failure = failure,
                     .n_failure = n_failure};
    struct call *k = r < 0 ? NULL : call_new(q, consumer_batch_done, c->gen, b);
    r = r < 0 ? r : k ? store_transaction(q->store, &txn, on_call, k) : -ENOMEM;
    if (r < 0) {
        call_drop(k);
        batch_drop(q, b);
        if (!store_usable(q, r))
            consumer_fail(q, -ECANCELED);
        else {
            log_warning_errno(r, "Failed to send a batch of the event queue: %m");
            consumer_schedule_reload(q, r);
        }
        return;
    }
    c->batch = b;
}

/* Builds the next batch from the pending entries and sends it. */
static void consumer_kick(struct queue *q) {
    struct consumer *c = &q->consumer;
    if (!c->running || q->closing || c->loading || c->batch)
        return;
    if (c->reload) {
        consumer_load(q);
        return;
    }
    if (!c->head)
        return;
    if (c->writer && !c->writer->ready(q, c->writer_userdata))
        return; /* it calls eq_consumer_kick() when it is */

    struct batch *b = calloc(1, sizeof(*b));
    if (!c->evs)
        c->evs = calloc(QUEUE_ENTRY_EVENTS_MAX, sizeof(*c->evs));
    if (!b || !c->evs) {
        free(b);
        consumer_schedule_reload(q, -ENOMEM);
        return;
    }
    b->tail = &b->entries;
    int r = 0;
    while (c->head) {
        r = batch_take(q, b);
        if (r == -ECANCELED) {
            batch_drop(q, b); /* stopped from inside decide */
            return;
        }
        if (r == -EAGAIN) {
            /* Not now: keep the entry at the head, send what we have, retry later. */
            uv_timer_start(&q->consumer_timer, on_consumer_timer, backoff_next(&c->backoff_msec), 0);
            r = 0;
            break;
        }
        if (r <= 0)
            break;
    }
    if (r < 0) {
        batch_drop(q, b);
        consumer_schedule_reload(q, r);
        return;
    }
    if (b->n_entries == 0 && !b->partial) {
        batch_drop(q, b);
        return;
    }
    consumer_send(q, b);
}

/* ---- the consumer's checkpoints of state/ ---- */

static void checkpoint_send(struct queue *q);

static void on_checkpoint_timer(uv_timer_t *t) {
    struct queue *q = t->data;
    queue_ref(q);
    if (q->consumer.running && !q->closing)
        checkpoint_send(q);
    queue_unref(q);
}

/* A round starts CHECKPOINT_MSEC after the first state it has to write, so
 * that an object changed many times is written once. */
static void checkpoint_schedule(struct queue *q) {
    struct checkpoint *cp = &q->consumer.cp;
    if (cp->inflight || uv_is_active((uv_handle_t *)&q->checkpoint_timer) || (!cp->round && cp->dirty.n == 0))
        return;
    uv_timer_start(&q->checkpoint_timer, on_checkpoint_timer, cp->round ? 0 : CHECKPOINT_MSEC, 0);
}

/* One transaction of a checkpoint: the keys it wrote and the seqs they had. */
struct checkpoint_call {
    size_t n;
    bool last; /* it writes state-seq: the round ends */
    uint64_t seqs[CHECKPOINT_PUTS];
    char objects[CHECKPOINT_PUTS][QUEUE_OBJECT_MAX];
};

static void checkpoint_done(struct queue *q, struct call *k, int error, const store_result *r) {
    struct consumer *c = &q->consumer;
    struct checkpoint *cp = &c->cp;
    struct checkpoint_call *w = k->data;
    if (q->closing || k->gen != c->gen)
        return; /* a stopped consumer's: the next coordinator reads the BQ */
    cp->inflight = false;
    if (!store_usable(q, error)) {
        consumer_fail(q, -ECANCELED);
        return;
    }
    if (error < 0) {
        log_warning_errno(error, "Failed to write object states to the store, retrying: %m");
        uv_timer_start(&q->checkpoint_timer, on_checkpoint_timer, backoff_next(&cp->backoff_msec), 0);
        return;
    }
    if (!r->succeeded) {
        log_warning("The event queue's guard failed: no longer the coordinator");
        consumer_fail(q, -EPERM);
        return;
    }
    cp->backoff_msec = 0;
    for (size_t i = 0; i < w->n; i++) {
        struct obj_state *o = objmap_find(&cp->dirty, w->objects[i]);
        if (!o)
            continue;
        if (o->in_round)
            cp->n_in_round--;
        if (o->seq == w->seqs[i])
            objmap_remove(&cp->dirty, o);
        else
            o->in_round = false; /* changed since: the next round writes it */
    }
    if (w->last) {
        cp->round = false;
        q->stats.checkpoints++;
        q->stats.state_seq = cp->round_seq;
    }
    checkpoint_schedule(q);
}

static void checkpoint_call_done(struct queue *q, struct call *k, int error, const store_result *r) {
    checkpoint_done(q, k, error, r);
    free(k->data);
}

static void checkpoint_send(struct queue *q) {
    struct consumer *c = &q->consumer;
    struct checkpoint *cp = &c->cp;
    store_op ops[CHECKPOINT_PUTS + 1];
    char *keys[CHECKPOINT_PUTS];
    char seq_value[HLC_DECIMAL_MAX];
    size_t n = 0;

    if (cp->inflight)
        return;
    if (!cp->round) {
        if (cp->dirty.n == 0)
            return;
        /* Everything published up to now. */
        cp->round = true;
        cp->round_seq = c->seq;
        cp->n_in_round = 0;
        for (size_t i = 0; i < cp->dirty.n_buckets; i++)
            for (struct obj_state *o = cp->dirty.buckets[i]; o; o = o->next)
                if (o->seq <= c->seq) {
                    o->in_round = true;
                    cp->n_in_round++;
                }
    }
    struct checkpoint_call *w = malloc(sizeof(*w));
    if (!w) {
        uv_timer_start(&q->checkpoint_timer, on_checkpoint_timer, backoff_next(&cp->backoff_msec), 0);
        return;
    }
    int r = 0;
    for (size_t i = 0; i < cp->dirty.n_buckets && n < CHECKPOINT_PUTS; i++)
        for (struct obj_state *o = cp->dirty.buckets[i]; o && n < CHECKPOINT_PUTS; o = o->next) {
            if (!o->in_round)
                continue;
            if (make_key(&keys[n], q->state_prefix, o->object, "") < 0) {
                r = -ENOMEM;
                goto out;
            }
            ops[n] = (store_op){.type = STORE_OP_PUT,
                                .key = keys[n],
                                .key_len = strlen(keys[n]),
                                .value = o->value,
                                .value_len = strlen(o->value)};
            snprintf(w->objects[n], sizeof(w->objects[n]), "%s", o->object);
            w->seqs[n] = o->seq;
            n++;
        }
    w->n = n;
    w->last = n == cp->n_in_round;
    size_t n_ops = n;
    if (w->last) {
        snprintf(seq_value, sizeof(seq_value), "%" PRIu64, cp->round_seq);
        ops[n_ops++] = (store_op){.type = STORE_OP_PUT,
                                  .key = q->state_seq_key,
                                  .key_len = strlen(q->state_seq_key),
                                  .value = seq_value,
                                  .value_len = strlen(seq_value)};
    }
    store_txn txn = {
        .compares = c->has_guard ? &c->guard : NULL, .n_compares = c->has_guard, .success = ops, .n_success = n_ops};
    struct call *k = call_new(q, checkpoint_call_done, c->gen, w);
    r = k ? store_transaction(q->store, &txn, on_call, k) : -ENOMEM;
    if (r < 0)
        call_drop(k);
    else {
        cp->inflight = true;
        w = NULL;
    }
out:
    for (size_t i = 0; i < n; i++)
        free(keys[i]);
    free(w);
    if (r < 0) {
        if (!store_usable(q, r))
            consumer_fail(q, -ECANCELED);
        else
            uv_timer_start(&q->checkpoint_timer, on_checkpoint_timer, backoff_next(&cp->backoff_msec), 0);
    }
}

static void consumer_batch_done(struct queue *q, struct call *k, int error, const store_result *r) {
    struct consumer *c = &q->consumer;
    struct batch *b = k->data;
    if (q->closing || k->gen != c->gen) {
        batch_free(b);
        return;
    }
    c->batch = NULL;
    if (!store_usable(q, error)) {
        batch_drop(q, b);
        consumer_fail(q, -ECANCELED);
        return;
    }
    if (error < 0) {
        /* It may or may not have been applied: read the truth back. */
        log_warning_errno(error, "A batch of the event queue failed, reading it again: %m");
        batch_drop(q, b);
        consumer_schedule_reload(q, error);
        return;
    }
    if (!r->succeeded) {
        const store_kv *guard_kv = NULL;
        for (size_t i = 0; c->has_guard && i < r->n_kvs; i++)
            if (r->kvs[i].key_len == c->guard.key_len && memcmp(r->kvs[i].key, c->guard.key, c->guard.key_len) == 0)
                guard_kv = &r->kvs[i];
        batch_drop(q, b);
        if (c->has_guard && !compare_holds(&c->guard, guard_kv)) {
            log_warning("The event queue's guard failed: no longer the coordinator");
            consumer_fail(q, -EPERM);
        } else {
            log_notice("bq-seq moved under the event queue's consumer, reading it again");
            consumer_schedule_reload(q, 0);
        }
        return;
    }

    /* Committed: the new states go to state/ behind it. */
    if (b->writer_used)
        c->writer->done(q, true, c->writer_userdata);
    if (b->partial && c->head == b->partial) {
        /* The entry keeps its place with what remains of it. */
        store_kv kv = {.key = b->partial->key,
                       .key_len = b->partial->key_len,
                       .value = b->rest,
                       .value_len = strlen(b->rest),
                       .create_revision = b->partial->revision};
        struct pending *rest = pending_new(&kv);
        if (!rest) {
            batch_free(b);
            consumer_schedule_reload(q, -ENOMEM);
            return;
        }
        rest->next = b->partial->next;
        if (c->tail == &b->partial->next)
            c->tail = &rest->next;
        free(c->head);
        c->head = rest;
    }
    c->seq += b->n_pubs;
    if (b->n_pubs > 0)
        c->seq_mod = r->revision;
    for (size_t i = 0; i < b->n_pubs; i++)
        if (objmap_put(&c->cp.dirty, b->pubs[i].object, b->pubs[i].state, b->pubs[i].seq, TAKE_PTR(b->pubs[i].text)) <
            0)
            log_warning("Out of memory recording the state of '%s'", b->pubs[i].object);
    q->stats.consumed += b->n_events;
    q->stats.duplicates += b->n_duplicates;
    q->stats.dropped += b->n_dropped;
    q->stats.published += b->n_pubs;
    q->stats.consumer_txns++;
    c->backoff_msec = 0;
    batch_free(b);
    checkpoint_schedule(q);
    consumer_kick(q);
}

int eq_consumer_start(struct queue *q, const store_compare *guard, eq_decide_cb decide, queue_stopped_cb stopped,
                      void *userdata) {
    assert_return(q, -EINVAL);
    assert_return(!guard || (guard->key && guard->key_len > 0 && guard->key_len <= STORE_KEY_MAX), -EINVAL);
    assert_return(!guard || guard->target != STORE_CMP_VALUE || guard->value || guard->value_len == 0, -EINVAL);
    if (q->closing || q->store_gone)
        return -ECANCELED;
    struct consumer *c = &q->consumer;
    if (c->running)
        return -EBUSY;

    char *key = NULL, *value = NULL;
    if (guard) {
        key = malloc(guard->key_len + 1);
        value = malloc(guard->value_len + 1);
        if (!key || !value) {
            free(key);
            free(value);
            return -ENOMEM;
        }
        memcpy(key, guard->key, guard->key_len);
        key[guard->key_len] = '\0';
        if (guard->value_len)
            memcpy(value, guard->value, guard->value_len);
        value[guard->value_len] = '\0';
    }
    free(c->guard_key);
    free(c->guard_value);
    c->guard_key = key;
    c->guard_value = value;
    c->has_guard = guard != NULL;
    if (guard) {
        c->guard = *guard;
        c->guard.key = key;
        c->guard.value = value;
    }
    c->decide = decide;
    c->stopped = stopped;
    c->userdata = userdata;
    c->running = true;
    c->backoff_msec = 0;
    c->reload = true;
    consumer_kick(q); /* a failure here is retried by the timer, or ends in stopped */
    return 0;
}

void eq_consumer_set_expand(struct queue *q, eq_expand_cb expand) {
    if (q)
        q->consumer.expand = expand;
}

void eq_consumer_set_writer(struct queue *q, const struct eq_writer *w, void *userdata) {
    if (q) {
        q->consumer.writer = w;
        q->consumer.writer_userdata = userdata;
    }
}

void eq_consumer_kick(struct queue *q) {
    if (q && q->consumer.running)
        consumer_kick(q);
}

void eq_consumer_stop(struct queue *q) {
    if (q && q->consumer.running)
        consumer_halt(q);
}

bool eq_consumer_running(const struct queue *q) {
    return q && q->consumer.running;
}

/* ---- the BQ reader ---- */

static void reader_load(struct queue *q);
static void reader_save(struct queue *q);

static void reader_halt(struct queue *q) {
    struct reader *rd = &q->reader;
    rd->running = rd->loading = false;
    rd->gen++;
    rd->watch = store_watch_cancel(rd->watch);
}

static void reader_fail(struct queue *q, int error) {
    struct reader *rd = &q->reader;
    reader_halt(q);
    if (rd->stopped && !q->closing)
        rd->stopped(q, error, rd->userdata);
}

static void on_reader_timer(uv_timer_t *t) {
    struct queue *q = t->data;
    queue_ref(q);
    if (!q->closing) {
        if (q->reader.running && !q->reader.loading && !q->reader.watch)
            reader_load(q);
        reader_save(q);
    }
    queue_unref(q);
}

static void reader_retry_later(struct queue *q, unsigned *backoff) {
    if (!q->closing && !q->store_gone && !uv_is_active((uv_handle_t *)&q->reader_timer))
        uv_timer_start(&q->reader_timer, on_reader_timer, backoff_next(backoff), 0);
}

/* Delivers the events of one BQ entry after the last delivered; returns
 * false if the reader was stopped by the callback. */
static bool reader_deliver(struct queue *q, unsigned gen, const store_kv *kv) {
    struct reader *rd = &q->reader;
    uint64_t key_seq;

    if (key_number_parse(kv->key, kv->key_len, q->bq_prefix, &key_seq) < 0 || key_seq == 0) {
        log_warning("Ignoring the unexpected key '%s' in the broadcast queue", kv->key);
        return true;
    }
    if (key_seq <= rd->delivered)
        return true; /* delivered already (a rewrite, or read at start and then seen again) */
    json_t *j = bq_entry_load(kv->value, kv->value_len, key_seq);
    if (!j) {
        log_warning("Skipping the invalid broadcast queue entry '%s'", kv->key);
        rd->delivered = key_seq;
        return true;
    }
    bool going = true;
    for (size_t i = 0; i < json_array_size(j) && going; i++) {
        const json_t *o = json_array_get(j, i);
        uint64_t seq = event_seq(o);
        struct queue_event ev;
        char object[QUEUE_OBJECT_MAX];
        if (seq <= rd->delivered)
            continue;
        if (seq > rd->delivered + 1)
            log_warning("Broadcast queue entries %" PRIu64 "-%" PRIu64 " were pruned before node '%s' read them",
                        rd->delivered + 1, seq - 1, q->node);
        rd->delivered = seq;
        if (queue_event_from_json(o, &ev) < 0) {
            log_warning("Skipping the invalid event %" PRIu64 " of the broadcast queue", seq);
            continue;
        }
        (void)queue_event_object(&ev, object);
        if (objmap_set(&q->states, object, (int)ev.state, seq) < 0)
            log_warning("Out of memory recording the state of '%s'", object);
        q->stats.delivered++;
        if (rd->deliver)
            rd->deliver(q, seq, &ev, rd->userdata);
        going = !q->closing && rd->gen == gen;
    }
    json_decref(j);
    return going;
}

static void on_reader_watch(store_watch *w, int error, const store_event *ev, size_t n, void *userdata) {
    struct queue *q = userdata;
    struct reader *rd = &q->reader;
    queue_ref(q);
    if (error < 0) {
        rd->watch = store_watch_cancel(rd->watch);
        if (!store_usable(q, error))
            reader_fail(q, -ECANCELED);
        else {
            log_warning_errno(error, "The broadcast queue's watch ended, reading it again: %m");
            if (error == -ESTALE)
                reader_load(q);
            else
                reader_retry_later(q, &rd->backoff_msec);
        }
        goto out;
    }
    unsigned gen = rd->gen;
    for (size_t i = 0; i < n; i++)
        if (ev[i].type == STORE_EVENT_PUT && !reader_deliver(q, gen, &ev[i].kv))
            break;
    reader_save(q);
out:
    queue_unref(q);
}

static void reader_loaded(struct queue *q, struct call *k, int error, const store_result *r) {
    struct reader *rd = &q->reader;
    if (q->closing || k->gen != rd->gen)
        return;
    rd->loading = false;
    if (!store_usable(q, error)) {
        reader_fail(q, -ECANCELED);
        return;
    }
    if (error < 0) {
        log_warning_errno(error, "Failed to read the broadcast queue: %m");
        reader_retry_later(q, &rd->backoff_msec);
        return;
    }
    rd->backoff_msec = 0;

    /* The offset and the snapshot first, then the entries after the offset, in seq (key) order. */
    rd->saved = 0;
    for (size_t i = 0; i < r->n_kvs; i++) {
        const store_kv *kv = &r->kvs[i];
        if (key_is(kv, q->delivered_key)) {
            uint64_t offset;
            if (counter_parse(kv->value, kv->value_len, &offset) < 0)
                log_warning("Ignoring the invalid offset in '%s'", kv->key);
            else {
                rd->saved = offset;
                rd->delivered = MAX(rd->delivered, offset);
            }
        } else if ((has_prefix(kv, q->state_prefix) && state_value_apply(&q->states, kv) == -ENOMEM) ||
                   (has_prefix(kv, q->bq_prefix) && bq_entry_apply(&q->states, kv, q->bq_prefix, NULL, 0) == -ENOMEM))
            /* state/ lags the BQ (state-seq): the snapshot is both. */
            log_warning("Out of memory reading the object states");
    }
    unsigned gen = rd->gen;
    for (size_t i = 0; i < r->n_kvs; i++)
        if (has_prefix(&r->kvs[i], q->bq_prefix) && !reader_deliver(q, gen, &r->kvs[i]))
            goto save; /* stopped by the callback */

    int ret = store_watch_prefix(q->store, q->bq_prefix, r->revision + 1, on_reader_watch, q, &rd->watch);
    if (ret < 0) {
        rd->watch = NULL;
        if (!store_usable(q, ret)) {
            reader_fail(q, -ECANCELED);
            return;
        }
        reader_retry_later(q, &rd->backoff_msec);
    }
save:
    reader_save(q);
}

static void reader_load(struct queue *q) {
    struct reader *rd = &q->reader;
    store_op ops[] = {
        {.type = STORE_OP_GET, .key = q->delivered_key, .key_len = strlen(q->delivered_key)},
        {.type = STORE_OP_GET_PREFIX, .key = q->bq_prefix, .key_len = strlen(q->bq_prefix)},
        {.type = STORE_OP_GET_PREFIX, .key = q->state_prefix, .key_len = strlen(q->state_prefix)},
    };
    store_txn txn = {.success = ops, .n_success = ELEMENTSOF(ops)};
    struct call *k = call_new(q, reader_loaded, rd->gen, NULL);
    int r = k ? store_transaction(q->store, &txn, on_call, k) : -ENOMEM;
    if (r < 0) {
        call_drop(k);
        if (!store_usable(q, r))
            reader_fail(q, -ECANCELED);
        else
            reader_retry_later(q, &rd->backoff_msec);
        return;
    }
    rd->loading = true;
}

static void offset_saved(struct queue *q, struct call *k, int error, const store_result *r) {
    struct reader *rd = &q->reader;
    uint64_t offset = k->offset;
    rd->save_inflight = false;
    if (!store_usable(q, error))
        return;
    if (error < 0) {
        log_warning_errno(error, "Failed to save the broadcast queue offset of node '%s': %m", q->node);
        reader_retry_later(q, &rd->backoff_msec);
        return;
    }
    rd->saved = MAX(rd->saved, offset);
    q->stats.offset_writes++;
    reader_save(q); /* the latest, if more was delivered meanwhile */
}

/* Writes the offset if it moved, one write at a time and at most one per
 * OFFSET_SAVE_MSEC; the latest wins. */
static void reader_save(struct queue *q) {
    struct reader *rd = &q->reader;
    if (q->closing || q->store_gone || rd->save_inflight || rd->delivered <= rd->saved)
        return;
    uint64_t now = uv_now(q->loop);
    if (rd->saved_at && now < rd->saved_at + OFFSET_SAVE_MSEC) {
        if (!uv_is_active((uv_handle_t *)&q->reader_timer))
            uv_timer_start(&q->reader_timer, on_reader_timer, rd->saved_at + OFFSET_SAVE_MSEC - now, 0);
        return;
    }
    rd->saved_at = now;
    char value[HLC_DECIMAL_MAX];
    snprintf(value, sizeof(value), "%" PRIu64, rd->delivered);
    struct call *k = call_new(q, offset_saved, rd->gen, NULL);
    if (k)
        k->offset = rd->delivered;
    int r = k ? store_put(q->store, q->delivered_key, value, strlen(value), 0, on_call, k) : -ENOMEM;
    if (r < 0) {
        call_drop(k);
        if (store_usable(q, r))
            reader_retry_later(q, &rd->backoff_msec);
        return;
    }
    rd->save_inflight = true;
}

int bq_reader_start(struct queue *q, bq_deliver_cb deliver, queue_stopped_cb stopped, void *userdata) {
    assert_return(q, -EINVAL);
    if (q->closing || q->store_gone)
        return -ECANCELED;
    struct reader *rd = &q->reader;
    if (rd->running)
        return -EBUSY;
    rd->deliver = deliver;
    rd->stopped = stopped;
    rd->userdata = userdata;
    rd->running = true;
    rd->backoff_msec = 0;
    reader_load(q);
    return 0;
}

void bq_reader_stop(struct queue *q) {
    if (q && q->reader.running)
        reader_halt(q);
}

uint64_t bq_reader_delivered(const struct queue *q) {
    return q ? q->reader.delivered : 0;
}

/* ---- appending ---- */

/*
 * One append transaction at a time, taking the next events of the FIFO of
 * eq_append() calls (group commit): the EQ's order is then the order of the
 * calls, even when a transaction is retried, and keys stamped later are
 * committed later.
 */

static struct append_op *append_op_free(struct append_op *op) {
    if (!op)
        return NULL;
    for (size_t i = 0; i < op->n; i++)
        free(op->values[i]);
    free(op->values);
    free(op->value_lens);
    free(op);
    return NULL;
}

static struct append_txn *append_txn_free(struct append_txn *t) {
    if (!t)
        return NULL;
    for (size_t i = 0; i < t->n_entries; i++)
        free(t->values[i]);
    free(t);
    return NULL;
}

/* Takes the head op off the FIFO. */
static struct append_op *append_pop(struct queue *q) {
    struct append_op *op = q->appends;
    q->appends = op->next;
    if (!q->appends)
        q->appends_tail = &q->appends;
    op->next = NULL;
    q->n_appends--;
    return op;
}

/* Runs the callbacks of finished ops (a list), and frees them. */
static void append_report(struct queue *q, struct append_op *list, int error) {
    while (list) {
        struct append_op *op = list;
        list = op->next;
        eq_append_cb cb = op->cb;
        void *userdata = op->userdata;
        size_t done = op->done;
        append_op_free(op);
        if (cb)
            cb(q, error, done, userdata);
    }
}

/* The next transaction: entries of at most QUEUE_ENTRY_EVENTS_MAX events. */
static struct append_txn *append_txn_build(struct queue *q) {
    struct append_txn *t = calloc(1, sizeof(*t));
    if (!t)
        return NULL;
    struct append_op *op = q->appends;
    size_t at = op ? op->done : 0, bytes = 0;
    while (op && t->n_entries < APPEND_TXN_ENTRIES) {
        /* One entry: "[e1,e2,...]". */
        size_t n = 0, len = 2;
        struct append_op *o = op;
        size_t k = at;
        while (o && n < QUEUE_ENTRY_EVENTS_MAX) {
            size_t add = o->value_lens[k] + (n > 0);
            if (n > 0 && bytes + len + add > APPEND_TXN_BYTES)
                break;
            len += add;
            n++;
            if (++k == o->n) {
                o = o->next;
                k = 0;
            }
        }
        if (n == 0 || (t->n_entries > 0 && bytes + len > APPEND_TXN_BYTES))
            break;
        char *v = malloc(len + 1), *p = v;
        if (!v)
            return append_txn_free(t);
        *p++ = '[';
        for (size_t e = 0; e < n; e++) {
            if (e > 0)
                *p++ = ',';
            memcpy(p, op->values[at], op->value_lens[at]);
            p += op->value_lens[at];
            if (++at == op->n) {
                op = op->next;
                at = 0;
            }
        }
        *p++ = ']';
        *p = '\0';
        t->values[t->n_entries] = v;
        t->value_lens[t->n_entries] = len;
        t->n_entries++;
        t->n_events += n;
        bytes += len;
    }
    return t;
}

static void append_send(struct queue *q);

static void on_append_timer(uv_timer_t *t) {
    struct queue *q = t->data;
    queue_ref(q);
    if (!q->closing && q->append_txn && q->append_txn->waiting) {
        q->append_txn->waiting = false;
        append_send(q);
    }
    queue_unref(q);
}

static void append_retry_later(struct queue *q) {
    struct append_txn *t = q->append_txn;
    t->waiting = true;
    uv_timer_start(&q->append_timer, on_append_timer, RETRY_MIN_MSEC << MIN(t->attempts, 4u), 0);
}

/* The transaction failed for good: the calls whose events it holds fail. */
static void append_fail(struct queue *q, int error) {
    struct append_txn *t = TAKE_PTR(q->append_txn);
    struct append_op *failed = NULL, **tail = &failed;
    /* With the store gone, every call fails. */
    size_t left = q->store_gone || q->closing ? SIZE_MAX : t->n_events;
    while (left > 0 && q->appends) {
        if (left != SIZE_MAX)
            left -= MIN(left, q->appends->n - q->appends->done);
        *tail = append_pop(q);
        tail = &(*tail)->next;
    }
    append_txn_free(t);
    append_send(q); /* the calls after it go on */
    append_report(q, failed, error);
}

static void appended(struct queue *q, struct call *k, int error, const store_result *r);

/* Sends the transaction in progress, or the next one. */
static void append_send(struct queue *q) {
    store_compare cmps[APPEND_TXN_ENTRIES];
    store_op puts[APPEND_TXN_ENTRIES], gets[APPEND_TXN_ENTRIES];

    if (q->closing || q->store_gone)
        return;
    if (!q->append_txn) {
        if (!q->appends)
            return;
        if (!(q->append_txn = append_txn_build(q))) {
            log_warning("Out of memory appending to the event queue, retrying");
            uv_timer_start(&q->append_timer, on_append_timer, RETRY_MIN_MSEC, 0);
            return;
        }
    }
    struct append_txn *t = q->append_txn;
    if (!t->stamped) {
        for (size_t i = 0; i < t->n_entries; i++)
            key_number(t->keys[i], sizeof(t->keys[i]), q->eq_node_prefix, hlc_now(q->clock));
        t->stamped = true;
    }
    for (size_t i = 0; i < t->n_entries; i++) {
        size_t key_len = strlen(t->keys[i]);
        cmps[i] = (store_compare){
            .key = t->keys[i], .key_len = key_len, .target = STORE_CMP_CREATE, .result = STORE_CMP_EQUAL, .number = 0};
        puts[i] = (store_op){.type = STORE_OP_PUT,
                             .key = t->keys[i],
                             .key_len = key_len,
                             .value = t->values[i],
                             .value_len = t->value_lens[i]};
        gets[i] = (store_op){.type = STORE_OP_GET, .key = t->keys[i], .key_len = key_len};
    }
    store_txn txn = {.compares = cmps,
                     .n_compares = t->n_entries,
                     .success = puts,
                     .n_success = t->n_entries,
                     .failure = gets,
                     .n_failure = t->n_entries};
    struct call *k = call_new(q, appended, 0, t);
    int r = k ? store_transaction(q->store, &txn, on_call, k) : -ENOMEM;
    if (r < 0) {
        call_drop(k);
        if (!store_usable(q, r) || ++t->attempts >= APPEND_ATTEMPTS)
            append_fail(q, store_usable(q, r) ? r : -ECANCELED);
        else
            append_retry_later(q);
    }
}

/* The transaction's keys were taken: ours from an earlier attempt whose
 * answer was lost (all of them, same values), or another incarnation's. */
static bool append_was_applied(const struct append_txn *t, const store_result *r) {
    if (r->n_kvs != t->n_entries)
        return false;
    for (size_t i = 0; i < t->n_entries; i++) {
        const store_kv *kv = &r->kvs[i];
        if (!key_is(kv, t->keys[i]) || kv->value_len != t->value_lens[i] ||
            memcmp(kv->value, t->values[i], kv->value_len) != 0)
            return false;
    }
    return true;
}

static void appended(struct queue *q, struct call *k, int error, const store_result *r) {
    struct append_txn *t = k->data;
    if (q->closing || q->append_txn != t) {
        append_txn_free(t); /* queue_free() reported its calls already */
        return;
    }
    if (!store_usable(q, error)) {
        append_fail(q, -ECANCELED);
        return;
    }
    if (error < 0) {
        log_warning_errno(error, "Failed to append to the event queue (attempt %u): %m", t->attempts + 1);
        if (++t->attempts >= APPEND_ATTEMPTS)
            append_fail(q, error);
        else
            append_retry_later(q);
        return;
    }
    if (!r->succeeded && !(t->attempts > 0 && append_was_applied(t, r))) {
        /* Keys of an earlier incarnation of this node with a clock that ran
         * ahead: move our clock past them and stamp the entries again. */
        uint64_t max = 0, stamp;
        for (size_t i = 0; i < r->n_kvs; i++)
            if (key_number_parse(r->kvs[i].key, r->kvs[i].key_len, q->eq_node_prefix, &stamp) == 0)
                max = MAX(max, stamp);
        hlc_witness(q->clock, max);
        t->stamped = false;
        if (++t->collisions >= APPEND_ATTEMPTS)
            append_fail(q, -EEXIST);
        else
            append_send(q);
        return;
    }

    /* Committed: the calls it completes are done. */
    q->stats.appended += t->n_events;
    q->stats.append_txns++;
    struct append_op *finished = NULL, **tail = &finished;
    size_t left = t->n_events;
    while (left > 0 && q->appends) {
        struct append_op *op = q->appends;
        size_t taken = MIN(left, op->n - op->done);
        op->done += taken;
        left -= taken;
        if (op->done < op->n)
            break;
        *tail = append_pop(q);
        tail = &(*tail)->next;
    }
    q->append_txn = append_txn_free(t);
    append_send(q);
    append_report(q, finished, 0);
}

int eq_append(struct queue *q, const struct queue_event *events, size_t n, eq_append_cb cb, void *userdata) {
    assert_return(q, -EINVAL);
    assert_return(events && n > 0, -EINVAL);
    for (size_t i = 0; i < n; i++)
        if (queue_event_validate(&events[i], true) < 0)
            return -EINVAL;
    if (q->closing || q->store_gone)
        return -ECANCELED;
    if (q->n_appends >= QUEUE_APPENDS_MAX)
        return -EBUSY;
    for (size_t i = 0; i < n; i++)
        if (events[i].hlc && hlc_update(q->clock, events[i].hlc, NULL) < 0)
            return -ERANGE;

    struct append_op *op = calloc(1, sizeof(*op));
    if (!op)
        return -ENOMEM;
    op->cb = cb;
    op->userdata = userdata;
    op->values = calloc(n, sizeof(*op->values));
    op->value_lens = calloc(n, sizeof(*op->value_lens));
    if (!op->values || !op->value_lens) {
        append_op_free(op);
        return -ENOMEM;
    }
    for (size_t i = 0; i < n; i++, op->n++) {
        struct queue_event ev = events[i];
        if (!ev.node[0])
            snprintf(ev.node, sizeof(ev.node), "%s", q->node);
        if (!ev.hlc)
            ev.hlc = hlc_now(q->clock);
        if (event_dump(&ev, 0, &op->values[i]) < 0) {
            append_op_free(op);
            return -ENOMEM;
        }
        op->value_lens[i] = strlen(op->values[i]);
    }
    *q->appends_tail = op;
    q->appends_tail = &op->next;
    q->n_appends++;
    if (!q->append_txn)
        append_send(q);
    return 0;
}

/* ---- pruning ---- */

static struct prune_op *prune_op_free(struct prune_op *op) {
    if (!op)
        return NULL;
    for (size_t i = 0; i < op->n_nodes; i++)
        free(op->nodes[i]);
    free(op->nodes);
    free(op->seqs);
    free(op->keys);
    free(op);
    return NULL;
}

static void prune_finish(struct queue *q, struct prune_op *op, int error) {
    if (q->prune == op)
        q->prune = NULL;
    bq_prune_cb cb = op->cb;
    void *userdata = op->userdata;
    uint64_t deleted = op->deleted;
    prune_op_free(op);
    if (cb)
        cb(q, error, deleted, userdata);
}

static void pruned(struct queue *q, struct call *k, int error, const store_result *r);

static void prune_send(struct queue *q, struct prune_op *op) {
    store_op dels[STORE_TXN_OPS_MAX];
    op->chunk = MIN(op->n_seqs - op->next, (size_t)STORE_TXN_OPS_MAX);
    for (size_t i = 0; i < op->chunk; i++) {
        char *key = op->keys + i * op->key_size;
        size_t n = key_number(key, op->key_size, q->bq_prefix, op->seqs[op->next + i]);
        dels[i] = (store_op){.type = STORE_OP_DELETE, .key = key, .key_len = n};
    }
    store_txn txn = {.success = dels, .n_success = op->chunk};
    struct call *k = call_new(q, pruned, 0, op);
    int r = k ? store_transaction(q->store, &txn, on_call, k) : -ENOMEM;
    if (r < 0) {
        call_drop(k);
        prune_finish(q, op, store_usable(q, r) ? r : -ECANCELED);
        return;
    }
    op->inflight = true;
}

static void pruned(struct queue *q, struct call *k, int error, const store_result *r) {
    struct prune_op *op = k->data;
    op->inflight = false;
    if (op->cancelled) {
        prune_op_free(op);
        return;
    }
    if (!store_usable(q, error) || error < 0) {
        prune_finish(q, op, store_usable(q, error) ? error : -ECANCELED);
        return;
    }
    op->deleted += (uint64_t)MAX(r->n_deleted, 0);
    q->stats.pruned += (uint64_t)MAX(r->n_deleted, 0);
    op->next += op->chunk;
    if (op->next >= op->n_seqs)
        prune_finish(q, op, 0);
    else
        prune_send(q, op);
}

/* The offsets are read: what is below all of them goes. */
static void prune_read(struct queue *q, struct call *k, int error, const store_result *r) {
    struct prune_op *op = k->data;
    op->inflight = false;
    if (op->cancelled) {
        prune_op_free(op);
        return;
    }
    if (!store_usable(q, error) || error < 0) {
        prune_finish(q, op, store_usable(q, error) ? error : -ECANCELED);
        return;
    }
    uint64_t min = UINT64_MAX;
    size_t plen = strlen(q->delivered_prefix);
    for (size_t i = 0; i < op->n_nodes && min > 0; i++) {
        bool found = false;
        for (size_t j = 0; j < r->n_kvs; j++) {
            const store_kv *kv = &r->kvs[j];
            uint64_t offset;
            if (!has_prefix(kv, q->delivered_prefix) || kv->key_len - plen != strlen(op->nodes[i]) ||
                memcmp(kv->key + plen, op->nodes[i], kv->key_len - plen) != 0)
                continue;
            found = counter_parse(kv->value, kv->value_len, &offset) == 0;
            if (found)
                min = MIN(min, offset);
            break;
        }
        if (!found)
            min = 0; /* nothing read (or unreadable): nothing to prune */
    }
    /* And what state/ holds: the BQ after state-seq is the rest of the snapshot. */
    uint64_t state_seq = 0;
    for (size_t j = 0; j < r->n_kvs; j++)
        if (key_is(&r->kvs[j], q->state_seq_key) && counter_parse(r->kvs[j].value, r->kvs[j].value_len, &state_seq) < 0)
            state_seq = 0;
    min = MIN(min, state_seq);
    if (min == 0 || min == UINT64_MAX) {
        prune_finish(q, op, 0);
        return;
    }
    size_t n = 0;
    for (size_t j = 0; j < r->n_kvs; j++) {
        uint64_t seq;
        n += key_number_parse(r->kvs[j].key, r->kvs[j].key_len, q->bq_prefix, &seq) == 0 && seq <= min;
    }
    if (n == 0) {
        prune_finish(q, op, 0);
        return;
    }
    op->key_size = strlen(q->bq_prefix) + KEY_NUMBER_DIGITS + 1;
    op->seqs = calloc(n, sizeof(*op->seqs));
    op->keys = malloc(MIN(n, (size_t)STORE_TXN_OPS_MAX) * op->key_size);
    if (!op->seqs || !op->keys) {
        prune_finish(q, op, -ENOMEM);
        return;
    }
    for (size_t j = 0; j < r->n_kvs; j++) {
        uint64_t seq;
        if (key_number_parse(r->kvs[j].key, r->kvs[j].key_len, q->bq_prefix, &seq) == 0 && seq <= min)
            op->seqs[op->n_seqs++] = seq;
    }
    prune_send(q, op);
}

int bq_prune(struct queue *q, const char *const *live_nodes, size_t n, bq_prune_cb cb, void *userdata) {
    assert_return(q, -EINVAL);
    assert_return(live_nodes && n > 0, -EINVAL);
    for (size_t i = 0; i < n; i++)
        assert_return(queue_name_valid(live_nodes[i]), -EINVAL);
    if (q->closing || q->store_gone)
        return -ECANCELED;
    if (q->prune)
        return -EBUSY;

    struct prune_op *op = calloc(1, sizeof(*op));
    if (!op)
        return -ENOMEM;
    op->q = q;
    op->cb = cb;
    op->userdata = userdata;
    op->nodes = calloc(n, sizeof(*op->nodes));
    if (!op->nodes) {
        prune_op_free(op);
        return -ENOMEM;
    }
    for (; op->n_nodes < n; op->n_nodes++)
        if (!(op->nodes[op->n_nodes] = strdup(live_nodes[op->n_nodes]))) {
            prune_op_free(op);
            return -ENOMEM;
        }

    store_op ops[] = {
        {.type = STORE_OP_GET_PREFIX, .key = q->delivered_prefix, .key_len = strlen(q->delivered_prefix)},
        /* Only the keys: after a burst the entries hold megabytes that etcd
         * would encode and this loop parse, holding appends and the consumer. */
        {.type = STORE_OP_GET_PREFIX, .key = q->bq_prefix, .key_len = strlen(q->bq_prefix), .keys_only = true},
        {.type = STORE_OP_GET, .key = q->state_seq_key, .key_len = strlen(q->state_seq_key)},
    };
    store_txn txn = {.success = ops, .n_success = ELEMENTSOF(ops)};
    struct call *k = call_new(q, prune_read, 0, op);
    int r = k ? store_transaction(q->store, &txn, on_call, k) : -ENOMEM;
    if (r < 0) {
        call_drop(k);
        prune_op_free(op);
        if (r == -ECANCELED)
            q->store_gone = true;
        return r;
    }
    op->inflight = true;
    q->prune = op;
    return 0;
}

/* ---- freeing ---- */

struct queue *queue_free(struct queue *q) {
    if (!q || q->closing)
        return NULL;
    queue_ref(q); /* callbacks below may not free it under us */
    q->closing = true;
    consumer_halt(q);
    reader_halt(q);

    /* The callbacks of calls in progress run now, with -ECANCELED; a
     * transaction in flight is freed by its store callback. */
    struct append_txn *t = TAKE_PTR(q->append_txn);
    if (t && t->waiting)
        append_txn_free(t);
    struct append_op *ops = TAKE_PTR(q->appends);
    q->appends_tail = &q->appends;
    q->n_appends = 0;
    append_report(q, ops, -ECANCELED);
    if (q->prune) {
        struct prune_op *op = TAKE_PTR(q->prune);
        bq_prune_cb cb = op->cb;
        void *userdata = op->userdata;
        uint64_t deleted = op->deleted;
        if (op->inflight)
            op->cancelled = true;
        else
            prune_op_free(op);
        if (cb)
            cb(q, -ECANCELED, deleted, userdata);
    }

    uv_close((uv_handle_t *)&q->consumer_timer, on_timer_closed);
    uv_close((uv_handle_t *)&q->reader_timer, on_timer_closed);
    uv_close((uv_handle_t *)&q->append_timer, on_timer_closed);
    uv_close((uv_handle_t *)&q->checkpoint_timer, on_timer_closed);
    queue_unref(q);
    return NULL;
}
