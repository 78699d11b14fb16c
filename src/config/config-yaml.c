/* SPDX-License-Identifier: MIT */
/* The loader's view of YAML nodes: positions, scalars as names, numbers and booleans, maps and lists. */
#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "config-internal.h"
#include "parse-util.h"
#include "string-table.h"

#define NAME_CHARS "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789._-"

struct config_pos config_yaml_mark_pos(yaml_mark_t m) {
    return (struct config_pos){.line = (unsigned)m.line + 1, .column = (unsigned)m.column + 1};
}

struct config_pos config_yaml_pos(const yaml_node_t *n) {
    return config_yaml_mark_pos(n->start_mark);
}

yaml_node_t *config_yaml_node(struct loader *l, int id) {
    return yaml_document_get_node(l->doc, id);
}

/* A plain empty scalar, "~" or "null": "key:" with nothing after it. */
bool config_yaml_is_null(const yaml_node_t *n) {
    if (n->type != YAML_SCALAR_NODE || n->data.scalar.style != YAML_PLAIN_SCALAR_STYLE)
        return false;
    const char *s = (const char *)n->data.scalar.value;
    return streq(s, "") || streq(s, "~") || streq(s, "null") || streq(s, "Null") || streq(s, "NULL");
}

const char *config_yaml_describe(char *buf, size_t size, const yaml_node_t *n) {
    switch (n->type) {
    case YAML_MAPPING_NODE:
        return "a map";
    case YAML_SEQUENCE_NODE:
        return "a list";
    case YAML_SCALAR_NODE:
        if (config_yaml_is_null(n))
            return "an empty value";
        snprintf(buf, size, "'%s'", Q((const char *)n->data.scalar.value));
        return buf;
    default:
        return "nothing";
    }
}

/* The text of a scalar, or NULL (problem recorded) for a map, a list or an embedded NUL. */
const char *config_yaml_scalar(struct loader *l, const yaml_node_t *n, const char *what) {
    if (n->type != YAML_SCALAR_NODE) {
        config_diag(l, n, "%s must be a single value, got %s", what, DESCRIBE(n));
        return NULL;
    }
    const char *s = (const char *)n->data.scalar.value;
    if (strlen(s) != n->data.scalar.length) {
        config_diag(l, n, "%s contains a NUL character", what);
        return NULL;
    }
    return s;
}

/* Like config_yaml_scalar() but also rejects an empty value. */
const char *config_yaml_string(struct loader *l, const yaml_node_t *n, const char *what) {
    const char *s = config_yaml_scalar(l, n, what);
    if (s && !*s) {
        config_diag(l, n, "%s must not be empty", what);
        return NULL;
    }
    return s;
}

static bool name_is_valid(const char *s) {
    size_t n = strlen(s);
    return n >= 1 && n <= CONFIG_NAME_MAX && strspn(s, NAME_CHARS) == n && !streq(s, ".") && !streq(s, "..");
}

/* A name (of a service group, a node, ...); NULL with a problem when it is not one. */
const char *config_yaml_name(struct loader *l, const yaml_node_t *n, const char *kind) {
    const char *s = config_yaml_scalar(l, n, kind);
    if (s && !name_is_valid(s)) {
        config_diag(l, n,
                    "invalid %s name '%s': use 1 to %d of the characters A-Z a-z 0-9 . _ - "
                    "('.' and '..' are reserved)",
                    kind, Q(s), CONFIG_NAME_MAX);
        return NULL;
    }
    return s;
}

bool config_yaml_uint(const yaml_node_t *n, unsigned *ret) {
    uint64_t v;

    if (n->type != YAML_SCALAR_NODE || n->data.scalar.style != YAML_PLAIN_SCALAR_STYLE)
        return false;
    if (parse_u64_n((const char *)n->data.scalar.value, n->data.scalar.length, &v) < 0 || v > UINT_MAX)
        return false;
    *ret = (unsigned)v;
    return true;
}

bool config_yaml_bool(const yaml_node_t *n, bool *ret) {
    static const char *const yes[] = {"true", "True", "TRUE", "yes", "Yes", "YES", "on", "On", "ON"};
    static const char *const no[] = {"false", "False", "FALSE", "no", "No", "NO", "off", "Off", "OFF"};

    if (n->type != YAML_SCALAR_NODE || n->data.scalar.style != YAML_PLAIN_SCALAR_STYLE)
        return false;
    const char *s = (const char *)n->data.scalar.value;
    for (size_t i = 0; i < ELEMENTSOF(yes); i++)
        if (streq(s, yes[i]) || streq(s, no[i])) {
            *ret = streq(s, yes[i]);
            return true;
        }
    return false;
}

bool config_yaml_duration(const yaml_node_t *n, usec_t *ret) {
    if (n->type != YAML_SCALAR_NODE || strlen((const char *)n->data.scalar.value) != n->data.scalar.length)
        return false;
    return parse_duration((const char *)n->data.scalar.value, ret) >= 0;
}

static int entry_ptr_cmp(const void *a, const void *b) {
    const struct map_entry *x = *(const struct map_entry *const *)a, *y = *(const struct map_entry *const *)b;
    int c = strcmp(x->key, y->key);
    return c != 0 ? c : (x < y ? -1 : x > y);
}

/*
 * The entries of a map, in order, with string keys; a duplicate key is reported and dropped (the
 * first one wins).  A null value counts as an empty map.  Returns 1 for a map, 0 when n is not a
 * map (problem recorded, no entries), -ENOMEM.
 */
int config_yaml_map(struct loader *l, yaml_node_t *n, const char *what, struct map_entry **ret, size_t *ret_n) {
    *ret = NULL;
    *ret_n = 0;
    if (config_yaml_is_null(n))
        return 1;
    if (n->type != YAML_MAPPING_NODE) {
        config_diag(l, n, "%s must be a map, got %s", what, DESCRIBE(n));
        return 0;
    }
    size_t total = (size_t)(n->data.mapping.pairs.top - n->data.mapping.pairs.start);
    if (!config_diag_charge(l, (total + 1) * COST_NODE))
        return 0;
    if (total == 0)
        return 1;

    _cleanup_free_ struct map_entry *e = calloc(total, sizeof(*e));
    if (!e)
        return -ENOMEM;
    size_t k = 0;
    for (yaml_node_pair_t *p = n->data.mapping.pairs.start; p < n->data.mapping.pairs.top; p++) {
        yaml_node_t *key = config_yaml_node(l, p->key), *value = config_yaml_node(l, p->value);
        if (!key || !value)
            continue;
        const char *s = config_yaml_scalar(l, key, "a key");
        if (!s)
            continue;
        e[k++] = (struct map_entry){s, key, value};
    }

    if (k > 1) {
        _cleanup_free_ struct map_entry **sorted = calloc(k, sizeof(*sorted));
        if (!sorted)
            return -ENOMEM;
        for (size_t i = 0; i < k; i++)
            sorted[i] = &e[i];
        qsort(sorted, k, sizeof(*sorted), entry_ptr_cmp);
        struct map_entry *first = sorted[0];
        for (size_t i = 1; i < k; i++) {
            if (!streq(sorted[i]->key, first->key)) {
                first = sorted[i];
                continue;
            }
            struct config_pos fp = config_yaml_pos(first->key_node);
            config_diag(l, sorted[i]->key_node, "duplicate key '%s' (first defined at line %u column %u)",
                        Q(sorted[i]->key), fp.line, fp.column);
            sorted[i]->key_node = NULL;
        }
        size_t j = 0;
        for (size_t i = 0; i < k; i++)
            if (e[i].key_node)
                e[j++] = e[i];
        k = j;
    }

    *ret = TAKE_PTR(e);
    *ret_n = k;
    return 1;
}

/*
 * A map with a fixed set of keys (allowed, NULL-terminated): ret_keys[i] and ret_values[i] are
 * the nodes of allowed[i] or NULL.  Unknown keys are reported.  Returns like config_yaml_map().
 */
int config_yaml_fields(struct loader *l, yaml_node_t *n, const char *what, const char *const allowed[],
                       yaml_node_t *ret_keys[], yaml_node_t *ret_values[]) {
    _cleanup_free_ struct map_entry *e = NULL;
    size_t n_e, n_allowed = 0;

    while (allowed[n_allowed])
        n_allowed++;
    for (size_t i = 0; i < n_allowed; i++)
        ret_keys[i] = ret_values[i] = NULL;

    int r = config_yaml_map(l, n, what, &e, &n_e);
    if (r <= 0)
        return r;

    for (size_t i = 0; i < n_e; i++) {
        ssize_t j = string_table_lookup(allowed, n_allowed, e[i].key);
        if (j >= 0) {
            ret_keys[j] = e[i].key_node;
            ret_values[j] = e[i].value;
            continue;
        }
        if (n_allowed == 0) {
            config_diag(l, e[i].key_node, "unknown key '%s' in %s (no keys are supported here yet)", Q(e[i].key), what);
            continue;
        }
        char list[256] = "";
        for (size_t a = 0; a < n_allowed; a++) {
            if (a > 0)
                strncat(list, ", ", sizeof(list) - strlen(list) - 1);
            strncat(list, allowed[a], sizeof(list) - strlen(list) - 1);
        }
        config_diag(l, e[i].key_node, "unknown key '%s' in %s (allowed: %s)", Q(e[i].key), what, list);
    }
    return 1;
}

/* The items of a list; a null value is an empty list.  False (problem recorded) for anything else
 */
bool config_yaml_seq(struct loader *l, yaml_node_t *n, const char *what, yaml_node_item_t **ret, size_t *ret_n) {
    *ret = NULL;
    *ret_n = 0;
    if (config_yaml_is_null(n))
        return true;
    if (n->type != YAML_SEQUENCE_NODE) {
        config_diag(l, n, "%s must be a list, got %s", what, DESCRIBE(n));
        return false;
    }
    size_t total = (size_t)(n->data.sequence.items.top - n->data.sequence.items.start);
    if (!config_diag_charge(l, (total + 1) * COST_NODE))
        return false;
    *ret = n->data.sequence.items.start;
    *ret_n = total;
    return true;
}

int config_yaml_strv(struct loader *l, yaml_node_t *n, char ***ret, size_t *ret_n) {
    yaml_node_item_t *items;
    size_t n_items, k = 0;

    if (!config_yaml_seq(l, n, "a list", &items, &n_items))
        n_items = 0;
    char **v = calloc(n_items + 1, sizeof(char *));
    if (!v)
        return -ENOMEM;
    for (size_t i = 0; i < n_items; i++) {
        yaml_node_t *item = config_yaml_node(l, items[i]);
        if (!item || item->type != YAML_SCALAR_NODE)
            continue;
        v[k] = config_diag_strdup(l, (const char *)item->data.scalar.value);
        if (!v[k]) {
            config_strv_free(v, k);
            return -ENOMEM;
        }
        k++;
    }
    *ret = v;
    *ret_n = k;
    return 0;
}

/* A map of scalars to scalars as config_kv; entries that are not scalars (reported) are skipped. */
int config_yaml_kv(struct loader *l, yaml_node_t *n, const char *what, struct config_kv **ret, size_t *ret_n) {
    _cleanup_free_ struct map_entry *e = NULL;
    size_t n_e, k = 0;

    *ret = NULL;
    *ret_n = 0;
    int r = config_yaml_map(l, n, what, &e, &n_e);
    if (r <= 0 || n_e == 0)
        return r < 0 ? r : 0;
    struct config_kv *kv = calloc(n_e, sizeof(*kv));
    if (!kv)
        return -ENOMEM;
    for (size_t i = 0; i < n_e; i++) {
        if (e[i].value->type != YAML_SCALAR_NODE)
            continue;
        kv[k].name = config_diag_strdup(l, e[i].key);
        kv[k].value = config_diag_strdup(l, (const char *)e[i].value->data.scalar.value);
        k++;
        if (!kv[k - 1].name || !kv[k - 1].value) {
            config_kv_free(kv, k);
            return -ENOMEM;
        }
    }
    *ret = kv;
    *ret_n = k;
    return 0;
}
