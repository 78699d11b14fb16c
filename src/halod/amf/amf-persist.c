/* SPDX-License-Identifier: MIT */
/* The AMF's own records in the store: written as it announces changes, read back at start (amf-persist.h). */
#define LOG_AREA LOG_AREA_AMF
#include "amf-persist.h"

#include <errno.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "keys.h"
#include "list.h"
#include "log.h"
#include "macro.h"

/* An object whose record is to be written: built when it is, from the model as it is then. */
struct record {
    LIST_FIELDS(struct record, records);
    enum key_dir dir;   /* KEY_ASSIGNMENTS, KEY_SU, KEY_COMPONENTS or KEY_ADMINSTATE */
    const void *object; /* struct si, su or comp; for KEY_ADMINSTATE a struct si, sg, or amf (this node) */
    char kind;          /* KEY_ADMINSTATE: 'i' an SI, 'g' an SG, 'n' this node */
};

struct amf_persist {
    struct amf *amf;
    store *store;
    char *prefix;
    bool adopt_assignments;
    bool loading;
    unsigned refs; /* the owner, the timer, a read in flight */
    amf_persist_loaded_cb loaded;
    void *loaded_userdata;
    LIST_HEAD(struct record) records; /* one per object */
    size_t n_records;
    uv_timer_t timer;
    unsigned retry_msec; /* a write failed: its records are written again after this backoff (0: none failed) */
};

/* A transaction in flight: which records it carries, to write them again if it fails. */
struct written {
    struct amf_persist *p;
    size_t n;
    struct record recs[STORE_TXN_OPS_MAX];
};

#define PERSIST_RETRY_MIN_MSEC 100
#define PERSIST_RETRY_MAX_MSEC 2000

static void persist_unref(struct amf_persist *p) {
    if (--p->refs > 0)
        return;
    struct record *rec;
    while ((rec = LIST_POP(records, &p->records)))
        free(rec);
    free(p->prefix);
    free(p);
}

static bool enqueue(struct amf_persist *p, enum key_dir dir, const void *object, char kind);
static void on_timer(uv_timer_t *t);

/* A write that failed is not lost: its records are built again from the model as it is then, and written
 * after a backoff.  A component's record lost this way (etcd unreachable when it was started) left its
 * process unknown to the next halod, which started a second one beside it (chaos seed 308 --cut). */
static void on_persisted(store *s, int error, const store_result *r, void *userdata) {
    struct written *w = userdata;
    struct amf_persist *p = w->p;
    if (error < 0 && error != -ECANCELED && p->amf) {
        p->retry_msec = MIN(MAX(p->retry_msec * 2, PERSIST_RETRY_MIN_MSEC), PERSIST_RETRY_MAX_MSEC);
        log_warning_errno(error, "Failed to write state to the store: %m; writing it again in %u ms", p->retry_msec);
        for (size_t i = 0; i < w->n; i++)
            (void)enqueue(p, w->recs[i].dir, w->recs[i].object, w->recs[i].kind);
        uv_timer_start(&p->timer, on_timer, p->retry_msec, 0);
    } else if (error >= 0)
        p->retry_msec = 0;
    free(w);
    persist_unref(p);
}

static json_t *si_record(const struct si *si) {
    json_t *arr = json_array();
    for (size_t i = 0; i < si->n_asg; i++)
        if (si->asg[i].su && si->asg[i].confirmed)
            json_array_append_new(arr, json_pack("{s:s, s:s}", "su", si->asg[i].su->name, "ha_state",
                                                 halo_ha_state_to_string(si->asg[i].state)));
    return json_pack("{s:s, s:I, s:o}", "si", si->name, "generation", (json_int_t)si->generation, "assignments", arr);
}

static json_t *su_record(const struct su *su) {
    json_t *held = json_array();
    if (su->held_by & AMF_HELD_BY_SG)
        json_array_append_new(held, json_string("sg"));
    if (su->held_by & AMF_HELD_BY_NODE)
        json_array_append_new(held, json_string("node"));
    if (su->held_by & AMF_HELD_INST_BY_NODE)
        json_array_append_new(held, json_string("node-instantiation"));
    return json_pack("{s:s, s:s, s:s, s:o}", "su", su->name, "admin", su_admin_to_string(su->admin), "oper",
                     su->oper == SU_DISABLED ? "DISABLED" : "ENABLED", "held_by", held);
}

/* adminstate/<kind>:<name>: the record's target into buf, and the record. */
static json_t *admin_state_record(const struct amf_persist *p, const struct record *rec, char *buf, size_t size) {
    const char *admin;
    if (rec->kind == 'i') {
        const struct si *si = rec->object;
        snprintf(buf, size, "si:%s", si->name);
        admin = si_admin_to_string(si->admin);
        /* A lock that a group's removal made is no operator's: a node that still has the group (a
         * coordinator that died in the removal) assigns the SI again (docs/store.md). */
        if (si->removal_lock && si->admin != SI_UNLOCKED)
            return json_pack("{s:s, s:s, s:b}", "target", buf, "admin", admin, "removal", true);
    } else if (rec->kind == 'g') {
        const struct sg *sg = rec->object;
        snprintf(buf, size, "sg:%s", sg->name);
        admin = su_admin_to_string(sg->admin);
    } else {
        snprintf(buf, size, "node:%s", amf_node(p->amf));
        admin = amf_node_admin(p->amf);
    }
    return json_pack("{s:s, s:s}", "target", buf, "admin", admin);
}

static json_t *comp_record(const struct amf_persist *p, const struct comp *c) {
    return json_pack("{s:s, s:s, s:i, s:I}", "component", c->name, "node", amf_node(p->amf), "pid", (int)c->pid,
                     "starttime", (json_int_t)amf_comp_starttime(c));
}

/* The record's key and value (both malloc'ed), or -errno. */
static int record_build(const struct amf_persist *p, const struct record *rec, char **ret_key, char **ret_value) {
    char key[STORE_KEY_MAX];
    char target[STORE_KEY_MAX];
    const char *name;
    json_t *j;
    switch (rec->dir) {
    case KEY_ADMINSTATE:
        j = admin_state_record(p, rec, target, sizeof(target));
        name = target;
        break;
    case KEY_ASSIGNMENTS:
        name = ((const struct si *)rec->object)->name;
        j = si_record(rec->object);
        break;
    case KEY_SU:
        name = ((const struct su *)rec->object)->name;
        j = su_record(rec->object);
        break;
    default:
        name = ((const struct comp *)rec->object)->name;
        j = comp_record(p, rec->object);
        break;
    }
    char *v = j ? json_dumps(j, JSON_COMPACT | JSON_SORT_KEYS) : NULL;
    json_decref(j);
    if (!v)
        return -ENOMEM;
    int r = key_name(key, p->prefix, rec->dir, name);
    char *k = r >= 0 ? strdup(key) : NULL;
    if (!k) {
        free(v);
        return r < 0 ? r : -ENOMEM;
    }
    *ret_key = k;
    *ret_value = v;
    return 0;
}

/* Writes the records waiting, in transactions of at most STORE_TXN_OPS_MAX puts. */
static void flush(struct amf_persist *p) {
    uv_timer_stop(&p->timer);
    while (!LIST_IS_EMPTY(&p->records)) {
        store_op ops[STORE_TXN_OPS_MAX];
        char *keys[STORE_TXN_OPS_MAX], *values[STORE_TXN_OPS_MAX];
        struct record *rec;
        size_t n = 0;
        struct written *w = calloc(1, sizeof(*w));
        if (!w) {
            log_warning("Out of memory: records are not written to the store");
            return;
        }
        w->p = p;
        while (n < ELEMENTSOF(ops) && (rec = LIST_POP(records, &p->records))) {
            p->n_records--;
            int r = record_build(p, rec, &keys[n], &values[n]);
            w->recs[n] = (struct record){.dir = rec->dir, .object = rec->object, .kind = rec->kind};
            free(rec);
            if (r < 0) {
                log_warning_errno(r, "Failed to build a record for the store: %m");
                continue;
            }
            ops[n] = (store_op){.type = STORE_OP_PUT,
                                .key = keys[n],
                                .key_len = strlen(keys[n]),
                                .value = values[n],
                                .value_len = strlen(values[n])};
            n++;
        }
        store_txn txn = {.success = ops, .n_success = n};
        w->n = n;
        p->refs++;
        int r = n ? store_transaction(p->store, &txn, on_persisted, w) : -ENODATA;
        if (r < 0) {
            if (r != -ENODATA)
                log_warning_errno(r, "Failed to write %zu records to the store: %m", n);
            free(w);
            p->refs--;
        }
        for (size_t i = 0; i < n; i++) {
            free(keys[i]);
            free(values[i]);
        }
    }
}

static void on_timer(uv_timer_t *t) {
    flush(t->data);
}

/*
 * Records nobody waits for are grouped over PERSIST_GROUP_MSEC into one
 * transaction, and built then: the turn of the loop that fails a unit over
 * neither builds JSON nor touches the store, so the new ACTIVE's answer is
 * read (and the component let go) before the bookkeeping is done.  now:
 * write at once, with what waits.
 */
#define PERSIST_GROUP_MSEC 1

static void mark_kind(struct amf_persist *p, enum key_dir dir, const void *object, char kind, bool now);

static void mark(struct amf_persist *p, enum key_dir dir, const void *object, bool now) {
    mark_kind(p, dir, object, 0, now);
}

/* The object's record waits to be written (once, whatever the number of changes); false: out of memory. */
static bool enqueue(struct amf_persist *p, enum key_dir dir, const void *object, char kind) {
    struct record *rec;
    LIST_FOREACH (records, rec, &p->records)
        if (rec->object == object && rec->dir == dir)
            return true;
    rec = calloc(1, sizeof(*rec));
    if (!rec) {
        log_warning("Out of memory: a record is not written to the store");
        return false;
    }
    *rec = (struct record){.dir = dir, .object = object, .kind = kind};
    LIST_APPEND(records, &p->records, rec);
    p->n_records++;
    return true;
}

static void mark_kind(struct amf_persist *p, enum key_dir dir, const void *object, char kind, bool now) {
    if (!enqueue(p, dir, object, kind))
        return;
    if (now || p->n_records >= STORE_TXN_OPS_MAX)
        flush(p);
    else if (!uv_is_active((uv_handle_t *)&p->timer))
        uv_timer_start(&p->timer, on_timer, PERSIST_GROUP_MSEC, 0);
}

static void on_si_changed(void *userdata, struct si *si) {
    struct amf_persist *p = userdata;
    if (amf_deciding(p->amf)) /* several nodes: only the coordinator writes the SI's record */
        mark(p, KEY_ASSIGNMENTS, si, false);
}

static void on_si_admin_changed(void *userdata, struct si *si) {
    /* At once: the operator is answered soon after, and a coordinator killed then must leave it. */
    mark_kind(userdata, KEY_ADMINSTATE, si, 'i', true);
}

static void on_group_admin_changed(void *userdata, struct sg *sg) {
    struct amf_persist *p = userdata;
    mark_kind(p, KEY_ADMINSTATE, sg ? (const void *)sg : (const void *)p->amf, sg ? 'g' : 'n', true);
}

static void on_su_event(void *userdata, struct su *su, enum amf_su_event ev) {
    if (ev == AMF_SU_ADMIN)
        mark(userdata, KEY_SU, su, false);
}

static void on_comp_event(void *userdata, struct comp *c, enum amf_comp_event ev, const char *reason) {
    /* A process halod started is recorded at once: a halod that dies right
     * after must find it to adopt it (or kill it), or two would run. */
    if (ev == AMF_COMP_SPAWNED || ev == AMF_COMP_EXITED)
        mark(userdata, KEY_COMPONENTS, c, ev == AMF_COMP_SPAWNED);
}

static const struct amf_observer observer = {
    .si_changed = on_si_changed,
    .su_event = on_su_event,
    .comp_event = on_comp_event,
    .si_admin_changed = on_si_admin_changed,
    .group_admin_changed = on_group_admin_changed,
};

int amf_persist_new(uv_loop_t *loop, struct amf *a, store *s, const char *prefix, bool adopt_assignments,
                    struct amf_persist **ret) {
    struct amf_persist *p = calloc(1, sizeof(*p));
    if (!p)
        return -ENOMEM;
    *p = (struct amf_persist){
        .amf = a, .store = s, .adopt_assignments = adopt_assignments, .prefix = strdup(prefix), .refs = 1};
    int r = p->prefix ? amf_observe(a, &observer, p) : -ENOMEM;
    if (r < 0) {
        free(p->prefix);
        free(p);
        return r;
    }
    uv_timer_init(loop, &p->timer);
    p->timer.data = p;
    p->refs++;
    *ret = p;
    return 0;
}

static void on_timer_closed(uv_handle_t *h) {
    persist_unref(h->data);
}

struct amf_persist *amf_persist_free(struct amf_persist *p) {
    if (!p)
        return NULL;
    flush(p);
    amf_unobserve(p->amf, &observer, p);
    p->amf = NULL; /* a read in flight ends with nobody told */
    uv_close((uv_handle_t *)&p->timer, on_timer_closed);
    persist_unref(p);
    return NULL;
}

/* ---- reading back ---- */

/* Units first (a locked or disabled one is not adopted), then the processes
 * to adopt, then the assignments they hold. */
static const enum key_dir load_order[] = {KEY_SU, KEY_ADMINSTATE, KEY_COMPONENTS, KEY_ASSIGNMENTS};

static void restore_su(struct amf *a, json_t *j) {
    struct su *su = amf_find_su(a, json_string_value(json_object_get(j, "su")) ?: "");
    const char *admin = json_string_value(json_object_get(j, "admin"));
    const char *oper = json_string_value(json_object_get(j, "oper"));
    int st = su_admin_from_string(admin);
    if (!su)
        return;
    amf_su_restore(su, st < 0 ? SU_UNLOCKED : (enum su_admin)st, oper && streq(oper, "DISABLED"));
    size_t i;
    json_t *h;
    json_array_foreach(json_object_get(j, "held_by"), i, h) {
        const char *by = json_string_value(h);
        su->held_by |= !by                               ? 0
                       : streq(by, "sg")                 ? AMF_HELD_BY_SG
                       : streq(by, "node")               ? AMF_HELD_BY_NODE
                       : streq(by, "node-instantiation") ? AMF_HELD_INST_BY_NODE
                                                         : 0;
    }
}

static void restore_comp(struct amf *a, json_t *j) {
    const char *name = json_string_value(json_object_get(j, "component"));
    json_int_t pid = json_integer_value(json_object_get(j, "pid"));
    json_int_t st = json_integer_value(json_object_get(j, "starttime"));
    struct comp *c = name ? amf_find_comp(a, name) : NULL;
    if (c && pid > 1 && pid <= INT32_MAX && st > 0)
        amf_comp_restore(c, (pid_t)pid, (unsigned long long)st);
}

static void restore_si(struct amf_persist *p, json_t *j) {
    struct amf *a = p->amf;
    struct si *si = amf_find_si(a, json_string_value(json_object_get(j, "si")) ?: "");
    if (!si)
        return;
    const char *active = NULL;
    size_t i;
    json_t *e;
    json_array_foreach(json_object_get(j, "assignments"), i, e) {
        const char *st = json_string_value(json_object_get(e, "ha_state"));
        const char *name = json_string_value(json_object_get(e, "su"));
        struct su *su = name ? amf_find_su(a, name) : NULL;
        if (!st || !su)
            continue;
        if (streq(st, "ACTIVE"))
            active = su->name;
        if (p->adopt_assignments && (streq(st, "ACTIVE") || streq(st, "STANDBY")))
            amf_si_restore_assignment(si, su, streq(st, "ACTIVE") ? HALO_HA_ACTIVE : HALO_HA_STANDBY);
    }
    amf_si_restore(si, (uint64_t)json_integer_value(json_object_get(j, "generation")), active);
}

static void on_loaded(store *s, int error, const store_result *r, void *userdata) {
    struct amf_persist *p = userdata;
    p->loading = false;
    if (!p->amf) {
        persist_unref(p);
        return;
    }
    if (error < 0)
        log_warning_errno(error, "Failed to read the previous state from the store, starting afresh: %m");
    /* The transaction's reads come in load_order, each in key order.  The processes the store did not name
     * (their record was lost, or the store could not be read) are looked for once it named its own, before
     * the assignments, which stand for units whose processes were adopted. */
    bool survivors = false;
    for (size_t i = 0; error >= 0 && i < r->n_kvs; i++) {
        const store_kv *kv = &r->kvs[i];
        const char *rest;
        size_t n;
        int d = key_parse(p->prefix, kv->key, kv->key_len, &rest, &n);
        if (d == KEY_ASSIGNMENTS && !survivors) {
            amf_restore_survivors(p->amf);
            survivors = true;
        }
        json_t *j = json_loadb(kv->value, kv->value_len, 0, NULL);
        if (j && d == KEY_SU)
            restore_su(p->amf, j);
        else if (j && d == KEY_ADMINSTATE)
            amf_admin_state_restore(p->amf, json_string_value(json_object_get(j, "target")) ?: "",
                                    json_is_true(json_object_get(j, "removal")) /* a group removal's */
                                        ? NULL
                                        : json_string_value(json_object_get(j, "admin")));
        else if (j && d == KEY_COMPONENTS)
            restore_comp(p->amf, j);
        else if (j && d == KEY_ASSIGNMENTS)
            restore_si(p, j);
        json_decref(j);
    }
    if (!survivors)
        amf_restore_survivors(p->amf);
    p->loaded(p->loaded_userdata, error < 0 ? error : 0);
    persist_unref(p);
}

int amf_persist_load(struct amf_persist *p, amf_persist_loaded_cb cb, void *userdata) {
    char k[ELEMENTSOF(load_order)][STORE_KEY_MAX];
    store_op ops[ELEMENTSOF(load_order)];
    if (p->loading)
        return -EBUSY;
    for (size_t i = 0; i < ELEMENTSOF(load_order); i++) {
        int n = key_dir(k[i], p->prefix, load_order[i]);
        if (n < 0)
            return n;
        ops[i] = (store_op){.type = STORE_OP_GET_PREFIX, .key = k[i], .key_len = (size_t)n};
    }
    store_txn txn = {.success = ops, .n_success = ELEMENTSOF(ops)};
    int r = store_transaction(p->store, &txn, on_loaded, p);
    if (r < 0)
        return r;
    p->loading = true;
    p->refs++;
    p->loaded = cb;
    p->loaded_userdata = userdata;
    return 0;
}
