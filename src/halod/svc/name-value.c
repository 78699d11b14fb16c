/* SPDX-License-Identifier: MIT */
/*
 * A name registration's store value (docs/store.md, names/):
 *   {"ref": "<hex>", "attrs": [["name", "value"], ...], "priority": N, "pid": P, "starttime": T}
 * and "gone": "deregistered" | "failed" once its node's halod removes it (the delete follows),
 * so that every node's trackers learn why it went; a key deleted without it went with its lease.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "keys.h"
#include "link.h"
#include "macro.h"
#include "name-internal.h"

static const char *const gone_table[] = {
    [HALO__LINK__NAME_NOTE__REASON__DEREGISTERED] = "deregistered",
    [HALO__LINK__NAME_NOTE__REASON__COMPONENT_FAILED] = "failed",
};

struct name_reg *name_reg_free(struct name_reg *r) {
    if (!r)
        return NULL;
    free(r->key);
    free(r->ref);
    json_decref(r->attrs);
    free(r);
    return NULL;
}

static char *hex(const uint8_t *p, size_t n) {
    char *s = malloc(2 * n + 1);
    if (!s)
        return NULL;
    for (size_t i = 0; i < n; i++)
        sprintf(s + 2 * i, "%02x", p[i]);
    s[2 * n] = '\0';
    return s;
}

static int unhex(const char *s, uint8_t **ret, size_t *ret_len) {
    size_t n = strlen(s);
    if (n % 2 || n / 2 > HALO_NAME_REF_MAX)
        return -EINVAL;
    uint8_t *p = malloc(n / 2 + 1);
    if (!p)
        return -ENOMEM;
    for (size_t i = 0; i < n / 2; i++) {
        unsigned v;
        if (sscanf(s + 2 * i, "%2x", &v) != 1) {
            free(p);
            return -EINVAL;
        }
        p[i] = (uint8_t)v;
    }
    p[n / 2] = '\0';
    *ret = p;
    *ret_len = n / 2;
    return 0;
}

char *name_reg_value(const struct name_reg *r, int gone) {
    _cleanup_free_ char *ref = hex(r->ref, r->ref_len);
    json_t *v =
        ref ? json_pack("{s:s, s:O, s:I, s:I, s:I}", "ref", ref, "attrs", r->attrs, "priority", (json_int_t)r->priority,
                        "pid", (json_int_t)r->pid, "starttime", (json_int_t)r->starttime)
            : NULL;
    if (v && gone > 0 && (size_t)gone < ELEMENTSOF(gone_table) && gone_table[gone])
        json_object_set_new(v, "gone", json_string(gone_table[gone]));
    char *s = v ? json_dumps(v, JSON_COMPACT) : NULL;
    json_decref(v);
    return s;
}

/* attrs: an array of at most HALO_NAME_ATTRS_MAX pairs of strings. */
static bool attrs_valid(json_t *attrs) {
    size_t i;
    json_t *a;
    if (!json_is_array(attrs) || json_array_size(attrs) > HALO_NAME_ATTRS_MAX)
        return false;
    json_array_foreach(attrs, i, a) if (json_array_size(a) != 2 || !json_is_string(json_array_get(a, 0)) ||
                                        !json_is_string(json_array_get(a, 1))) return false;
    return true;
}

static int parse_fields(struct name_reg *r, json_t *v) {
    const char *ref = NULL, *gone = NULL;
    json_int_t priority = 0, pid = 0, starttime = 0;
    json_t *attrs = NULL;
    if (json_unpack(v, "{s:s, s:o, s:I, s?I, s?I, s?s}", "ref", &ref, "attrs", &attrs, "priority", &priority, "pid",
                    &pid, "starttime", &starttime, "gone", &gone) < 0)
        return -EINVAL;
    if (!attrs_valid(attrs) || priority < 0 || priority > UINT32_MAX || pid < 0 || starttime < 0)
        return -EINVAL;
    int k = unhex(ref, &r->ref, &r->ref_len);
    if (k < 0)
        return k;
    r->attrs = json_incref(attrs);
    r->priority = (uint32_t)priority;
    r->pid = (pid_t)pid;
    r->starttime = (unsigned long long)starttime;
    r->gone = 0;
    for (size_t i = 0; gone && i < ELEMENTSOF(gone_table); i++)
        if (gone_table[i] && streq(gone, gone_table[i]))
            r->gone = (int)i;
    if (gone && !r->gone)
        r->gone = HALO__LINK__NAME_NOTE__REASON__COMPONENT_FAILED;
    return 0;
}

static int parse_value(struct name_reg *r, const char *value, size_t len) {
    json_error_t err;
    json_t *v = json_loadb(value, len, 0, &err);
    int k = v ? parse_fields(r, v) : -EINVAL;
    json_decref(v);
    return k;
}

int name_reg_parse(const char *prefix, const store_kv *kv, struct name_reg **ret) {
    char ctx[STORE_KEY_MAX], name[STORE_KEY_MAX], node[STORE_KEY_MAX], comp[STORE_KEY_MAX];
    const char *rest;
    size_t len;
    if (key_parse(prefix, kv->key, kv->key_len, &rest, &len) != KEY_NAMES ||
        key_names_split(rest, len, ctx, name, node, comp) < 0 || !svc_name_valid(ctx, HALO_NAME_MAX) ||
        !svc_name_valid(name, HALO_NAME_MAX) || strlen(node) > SVC_NAME_MAX || strlen(comp) > SVC_NAME_MAX)
        return -EINVAL;
    struct name_reg *r = calloc(1, sizeof(*r));
    if (!r || !(r->key = strndup(kv->key, kv->key_len))) {
        free(r);
        return -ENOMEM;
    }
    strcpy(r->context, ctx);
    strcpy(r->name, name);
    strcpy(r->node, node);
    strcpy(r->comp, comp);
    r->create_revision = kv->create_revision;
    r->lease = kv->lease;
    int k = kv->value_len ? parse_value(r, kv->value, kv->value_len) : 0;
    if (k >= 0 && !r->attrs && !(r->attrs = json_array()))
        k = -ENOMEM;
    if (k < 0) {
        name_reg_free(r);
        return k;
    }
    *ret = r;
    return 0;
}

void name_reg_entry(const struct name_reg *r, Halo__Link__NameEntry *e, Halo__Link__Attr *attrs,
                    Halo__Link__Attr **pattrs) {
    size_t i;
    json_t *a;
    halo__link__name_entry__init(e);
    e->context = (char *)r->context;
    e->name = (char *)r->name;
    e->ref.data = r->ref;
    e->ref.len = r->ref_len;
    e->priority = r->priority;
    e->comp = (char *)r->comp;
    e->node = (char *)r->node;
    json_array_foreach(r->attrs, i, a) {
        if (i == HALO_NAME_ATTRS_MAX)
            break;
        halo__link__attr__init(&attrs[i]);
        attrs[i].name = (char *)json_string_value(json_array_get(a, 0));
        attrs[i].value = (char *)json_string_value(json_array_get(a, 1));
        pattrs[i] = &attrs[i];
        e->n_attrs = i + 1;
    }
    e->attrs = pattrs;
}

/* A reference of printable ASCII shows as a string, anything else in hex. */
static bool printable(const uint8_t *p, size_t n) {
    for (size_t i = 0; i < n; i++)
        if (p[i] < 0x20 || p[i] >= 0x7f)
            return false;
    return true;
}

json_t *name_reg_json(const struct name_reg *r) {
    json_t *attrs = json_object();
    size_t i;
    json_t *a;
    json_array_foreach(r->attrs, i, a)
        json_object_set(attrs, json_string_value(json_array_get(a, 0)), json_array_get(a, 1));
    json_t *j = json_pack("{s:s, s:s, s:s, s:s, s:I, s:o}", "context", r->context, "name", r->name, "comp", r->comp,
                          "node", r->node, "priority", (json_int_t)r->priority, "attributes", attrs);
    if (!j)
        return NULL;
    if (printable(r->ref, r->ref_len))
        json_object_set_new(j, "ref", json_stringn((const char *)r->ref, r->ref_len));
    else {
        _cleanup_free_ char *h = hex(r->ref, r->ref_len);
        json_object_set_new(j, "ref_hex", json_string(h ?: ""));
    }
    return j;
}

/* What r takes in a reply, generously: its texts, its reference and each field's tag and length. */
static size_t entry_size(const struct name_reg *r) {
    size_t n = strlen(r->context) + strlen(r->name) + strlen(r->comp) + strlen(r->node) + r->ref_len + 64;
    size_t i;
    json_t *a;
    json_array_foreach(r->attrs, i, a) n +=
        strlen(json_string_value(json_array_get(a, 0))) + strlen(json_string_value(json_array_get(a, 1))) + 16;
    return n;
}

size_t name_regs_that_fit(struct name_reg **regs, size_t n) {
    size_t k = 0, bytes = 0;
    while (k < n && k < HALO_NAME_LOOKUP_MAX && (k == 0 || bytes + entry_size(regs[k]) <= LINK_MSG_MAX - 1024))
        bytes += entry_size(regs[k++]);
    return k;
}

int name_reg_compare(const void *a, const void *b) {
    const struct name_reg *x = *(struct name_reg *const *)a, *y = *(struct name_reg *const *)b;
    if (x->priority != y->priority)
        return x->priority > y->priority ? -1 : 1;
    return x->create_revision < y->create_revision ? -1 : x->create_revision > y->create_revision;
}

/* Text without control characters. */
static bool text_valid(const char *s) {
    for (; *s; s++)
        if ((unsigned char)*s < 0x20 || *s == 0x7f)
            return false;
    return true;
}

int name_entry_check(const Halo__Link__NameEntry *e) {
    if (strlen(e->context) > HALO_NAME_MAX || strlen(e->name) > HALO_NAME_MAX)
        return -ENAMETOOLONG;
    if (!svc_name_valid(e->context, HALO_NAME_MAX) || !svc_name_valid(e->name, HALO_NAME_MAX))
        return -EINVAL;
    if (e->ref.len > HALO_NAME_REF_MAX || e->n_attrs > HALO_NAME_ATTRS_MAX)
        return -E2BIG;
    for (size_t i = 0; i < e->n_attrs; i++) {
        if (!svc_name_valid(e->attrs[i]->name, HALO_NAME_ATTR_NAME_MAX) || !text_valid(e->attrs[i]->value))
            return strlen(e->attrs[i]->name) > HALO_NAME_ATTR_NAME_MAX ? -E2BIG : -EINVAL;
        if (strlen(e->attrs[i]->value) > HALO_NAME_ATTR_VALUE_MAX)
            return -E2BIG;
    }
    return 0;
}
