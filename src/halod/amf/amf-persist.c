/* SPDX-License-Identifier: MIT */
/* The AMF's own records in the store: written as it announces changes, read back at start (amf-persist.h). */
#define LOG_AREA LOG_AREA_AMF
#include "amf-persist.h"

#include <errno.h>
#include <jansson.h>
#include <stdlib.h>
#include <string.h>

#include "keys.h"
#include "log.h"
#include "macro.h"

struct amf_persist {
    struct amf *amf;
    store *store;
    char *prefix;
    bool adopt_assignments;
    bool loading;
    amf_persist_loaded_cb loaded;
    void *loaded_userdata;
};

static void on_persisted(store *s, int error, const store_result *r, void *userdata) {
    if (error < 0 && error != -ECANCELED)
        log_warning_errno(error, "Failed to write state to the store: %m");
}

static void put_json(struct amf_persist *p, enum key_dir d, const char *name, json_t *j) {
    char key[STORE_KEY_MAX];
    if (!j)
        return;
    _cleanup_free_ char *v = json_dumps(j, JSON_COMPACT | JSON_SORT_KEYS);
    json_decref(j);
    if (!v || key_name(key, p->prefix, d, name) < 0)
        return;
    int r = store_put(p->store, key, v, strlen(v), 0, on_persisted, NULL);
    if (r < 0)
        log_warning_errno(r, "Failed to write '%s' to the store: %m", key);
}

static void on_si_changed(void *userdata, struct si *si) {
    struct amf_persist *p = userdata;
    if (!amf_deciding(p->amf))
        return; /* several nodes: only the coordinator writes the SI's record */
    json_t *arr = json_array();
    for (size_t i = 0; i < SI_ASSIGNMENTS_MAX; i++)
        if (si->asg[i].su && si->asg[i].confirmed)
            json_array_append_new(arr, json_pack("{s:s, s:s}", "su", si->asg[i].su->name, "ha_state",
                                                 halo_ha_state_to_string(si->asg[i].state)));
    put_json(
        p, KEY_ASSIGNMENTS, si->name,
        json_pack("{s:s, s:I, s:o}", "si", si->name, "generation", (json_int_t)si->generation, "assignments", arr));
}

static void on_su_event(void *userdata, struct su *su, enum amf_su_event ev) {
    struct amf_persist *p = userdata;
    if (ev != AMF_SU_ADMIN)
        return;
    put_json(p, KEY_SU, su->name,
             json_pack("{s:s, s:s, s:s}", "su", su->name, "admin", su->admin == SU_LOCKED ? "LOCKED" : "UNLOCKED",
                       "oper", su->oper == SU_DISABLED ? "DISABLED" : "ENABLED"));
}

static void on_comp_event(void *userdata, struct comp *c, enum amf_comp_event ev, const char *reason) {
    struct amf_persist *p = userdata;
    if (ev != AMF_COMP_SPAWNED && ev != AMF_COMP_EXITED)
        return;
    put_json(p, KEY_COMPONENTS, c->name,
             json_pack("{s:s, s:s, s:i, s:I}", "component", c->name, "node", amf_node(p->amf), "pid", (int)c->pid,
                       "starttime", (json_int_t)amf_comp_starttime(c)));
}

static const struct amf_observer observer = {
    .si_changed = on_si_changed,
    .su_event = on_su_event,
    .comp_event = on_comp_event,
};

int amf_persist_new(struct amf *a, store *s, const char *prefix, bool adopt_assignments, struct amf_persist **ret) {
    struct amf_persist *p = calloc(1, sizeof(*p));
    if (!p)
        return -ENOMEM;
    *p = (struct amf_persist){.amf = a, .store = s, .adopt_assignments = adopt_assignments, .prefix = strdup(prefix)};
    int r = p->prefix ? amf_observe(a, &observer, p) : -ENOMEM;
    if (r < 0) {
        free(p->prefix);
        free(p);
        return r;
    }
    *ret = p;
    return 0;
}

struct amf_persist *amf_persist_free(struct amf_persist *p) {
    if (!p)
        return NULL;
    if (p->amf)
        amf_unobserve(p->amf, &observer, p);
    if (p->loading) {
        p->amf = NULL; /* the read's callback frees it */
        return NULL;
    }
    free(p->prefix);
    free(p);
    return NULL;
}

/* ---- reading back ---- */

/* Units first (a locked or disabled one is not adopted), then the processes
 * to adopt, then the assignments they hold. */
static const enum key_dir load_order[] = {KEY_SU, KEY_COMPONENTS, KEY_ASSIGNMENTS};

static void restore_su(struct amf *a, json_t *j) {
    struct su *su = amf_find_su(a, json_string_value(json_object_get(j, "su")) ?: "");
    const char *admin = json_string_value(json_object_get(j, "admin"));
    const char *oper = json_string_value(json_object_get(j, "oper"));
    if (su)
        amf_su_restore(su, admin && streq(admin, "LOCKED"), oper && streq(oper, "DISABLED"));
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
        amf_persist_free(p);
        return;
    }
    if (error < 0)
        log_warning_errno(error, "Failed to read the previous state from the store, starting afresh: %m");
    /* The transaction's reads come in load_order, each in key order. */
    for (size_t i = 0; error >= 0 && i < r->n_kvs; i++) {
        const store_kv *kv = &r->kvs[i];
        const char *rest;
        size_t n;
        int d = key_parse(p->prefix, kv->key, kv->key_len, &rest, &n);
        json_t *j = json_loadb(kv->value, kv->value_len, 0, NULL);
        if (j && d == KEY_SU)
            restore_su(p->amf, j);
        else if (j && d == KEY_COMPONENTS)
            restore_comp(p->amf, j);
        else if (j && d == KEY_ASSIGNMENTS)
            restore_si(p, j);
        json_decref(j);
    }
    p->loaded(p->loaded_userdata, error < 0 ? error : 0);
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
    p->loaded = cb;
    p->loaded_userdata = userdata;
    return 0;
}
