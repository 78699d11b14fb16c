/* SPDX-License-Identifier: MIT */
/* Loads the cluster description: YAML in, a verified struct config out, problems as FILE:LINE:COL.
 */
#include "config.h"

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include <yaml.h>

#include "macro.h"

/*
 * Limits that keep a hostile or broken description from hurting the daemon.
 * libyaml's scanner is quadratic in the flow nesting depth and its loader is
 * quadratic in the number of anchors, so both are checked on the event stream
 * before the document is built.  Aliases and inheritance can still multiply
 * a small file into a lot of work (a "billion laughs"), so every node visited
 * and every byte copied is charged against a budget.
 */
#define CONFIG_FILE_MAX (1024 * 1024)
#define CONFIG_DEPTH_MAX 32
#define CONFIG_ANCHORS_MAX 1000
#define CONFIG_ALIASES_MAX 10000
#define CONFIG_WORK_MAX ((size_t)64 * 1024 * 1024)
#define COST_NODE 16
#define MESSAGE_MAX 512
#define QUOTE_MAX 64

#define NAME_CHARS "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789._-"

/* ---- problems ---------------------------------------------------------------------------- */

struct problem {
    unsigned line, column; /* line 0: about the file as a whole */
    size_t seq;
    char *msg;
};

struct loader {
    const char *path;
    const char *basedir;
    yaml_document_t *doc;
    struct problem *problems;
    size_t n_problems, n_problems_alloc;
    size_t work;
    bool oom;     /* a problem could not be recorded; config_load returns -ENOMEM */
    bool too_big; /* the work budget ran out; everything stops */
};

/* Copies s into buf (QUOTE_MAX + 4 bytes), shortened at a UTF-8 boundary. */
static const char *quote(char *buf, const char *s) {
    size_t n = strlen(s);
    if (n <= QUOTE_MAX)
        return s;
    n = QUOTE_MAX;
    while (n > 0 && ((unsigned char)s[n] & 0xc0) == 0x80)
        n--;
    memcpy(buf, s, n);
    strcpy(buf + n, "...");
    return buf;
}
#define Q(s) quote((char[QUOTE_MAX + 4]){0}, (s))

static struct config_pos mark_pos(yaml_mark_t m) {
    return (struct config_pos){.line = (unsigned)m.line + 1, .column = (unsigned)m.column + 1};
}

static struct config_pos node_pos(const yaml_node_t *n) {
    return mark_pos(n->start_mark);
}

/* Records a problem.  Never fails: an allocation failure is remembered in l->oom. */
_printf_(3, 0) static void vproblem(struct loader *l, struct config_pos pos, const char *fmt, va_list ap) {
    char buf[MESSAGE_MAX];

    if (l->oom)
        return;
    int k = vsnprintf(buf, sizeof(buf), fmt, ap);
    if (k < 0)
        snprintf(buf, sizeof(buf), "(unprintable message)");
    else if ((size_t)k >= sizeof(buf)) {
        size_t n = sizeof(buf) - 4;
        while (n > 0 && ((unsigned char)buf[n] & 0xc0) == 0x80)
            n--;
        strcpy(buf + n, "...");
    }
    /* One problem is one line, whatever the user's strings contain. */
    for (char *p = buf; *p; p++)
        if ((unsigned char)*p < 0x20 || *p == 0x7f)
            *p = '?';

    if (l->n_problems == l->n_problems_alloc) {
        size_t n = MAX(l->n_problems_alloc * 2, (size_t)16);
        struct problem *p = reallocarray(l->problems, n, sizeof(*p));
        if (!p) {
            l->oom = true;
            return;
        }
        l->problems = p;
        l->n_problems_alloc = n;
    }
    char *msg = strdup(buf);
    if (!msg) {
        l->oom = true;
        return;
    }
    l->problems[l->n_problems] = (struct problem){pos.line, pos.column, l->n_problems, msg};
    l->n_problems++;
    l->work += strlen(msg) + COST_NODE;
}

_printf_(3, 4) static void problem_pos(struct loader *l, struct config_pos pos, const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    vproblem(l, pos, fmt, ap);
    va_end(ap);
}

_printf_(3, 4) static void problem(struct loader *l, const yaml_node_t *n, const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    vproblem(l, node_pos(n), fmt, ap);
    va_end(ap);
}

/* Charges work against the budget; false once it is exhausted (reported once). */
static bool charge(struct loader *l, size_t cost) {
    if (l->too_big)
        return false;
    l->work += cost;
    if (l->work <= CONFIG_WORK_MAX)
        return true;
    l->too_big = true;
    problem_pos(l, (struct config_pos){1, 1},
                "the description is too large to process: aliases, inherited settings or many "
                "service units times many CSIs multiply it beyond the limit");
    return false;
}

/* strdup() charged against the budget.  NULL only on -ENOMEM. */
static char *l_strdup(struct loader *l, const char *s) {
    (void)charge(l, strlen(s) + 1);
    return strdup(s);
}

/* ---- YAML node helpers ------------------------------------------------------------------ */

static yaml_node_t *node_get(struct loader *l, int id) {
    return yaml_document_get_node(l->doc, id);
}

/* A plain empty scalar, "~" or "null": "key:" with nothing after it. */
static bool is_null(const yaml_node_t *n) {
    if (n->type != YAML_SCALAR_NODE || n->data.scalar.style != YAML_PLAIN_SCALAR_STYLE)
        return false;
    const char *s = (const char *)n->data.scalar.value;
    return streq(s, "") || streq(s, "~") || streq(s, "null") || streq(s, "Null") || streq(s, "NULL");
}

static const char *describe(char *buf, size_t size, const yaml_node_t *n) {
    switch (n->type) {
    case YAML_MAPPING_NODE:
        return "a map";
    case YAML_SEQUENCE_NODE:
        return "a list";
    case YAML_SCALAR_NODE:
        if (is_null(n))
            return "an empty value";
        snprintf(buf, size, "'%s'", Q((const char *)n->data.scalar.value));
        return buf;
    default:
        return "nothing";
    }
}
#define DESCRIBE(n) describe((char[QUOTE_MAX + 8]){0}, QUOTE_MAX + 8, (n))

/* The text of a scalar, or NULL (problem recorded) for a map, a list or an embedded NUL. */
static const char *scalar_text(struct loader *l, const yaml_node_t *n, const char *what) {
    if (n->type != YAML_SCALAR_NODE) {
        problem(l, n, "%s must be a single value, got %s", what, DESCRIBE(n));
        return NULL;
    }
    const char *s = (const char *)n->data.scalar.value;
    if (strlen(s) != n->data.scalar.length) {
        problem(l, n, "%s contains a NUL character", what);
        return NULL;
    }
    return s;
}

/* Like scalar_text() but also rejects an empty value. */
static const char *string_get(struct loader *l, const yaml_node_t *n, const char *what) {
    const char *s = scalar_text(l, n, what);
    if (s && !*s) {
        problem(l, n, "%s must not be empty", what);
        return NULL;
    }
    return s;
}

static bool name_is_valid(const char *s) {
    size_t n = strlen(s);
    return n >= 1 && n <= CONFIG_NAME_MAX && strspn(s, NAME_CHARS) == n && !streq(s, ".") && !streq(s, "..");
}

/* A name (of a service group, a node, ...); NULL with a problem when it is not one. */
static const char *name_get(struct loader *l, const yaml_node_t *n, const char *kind) {
    const char *s = scalar_text(l, n, kind);
    if (s && !name_is_valid(s)) {
        problem(l, n,
                "invalid %s name '%s': use 1 to %d of the characters A-Z a-z 0-9 . _ - "
                "('.' and '..' are reserved)",
                kind, Q(s), CONFIG_NAME_MAX);
        return NULL;
    }
    return s;
}

static bool parse_uint_node(const yaml_node_t *n, unsigned *ret) {
    if (n->type != YAML_SCALAR_NODE || n->data.scalar.style != YAML_PLAIN_SCALAR_STYLE)
        return false;
    const char *s = (const char *)n->data.scalar.value;
    if (!*s || strspn(s, "0123456789") != strlen(s) || strlen(s) > 10)
        return false;
    unsigned long long v = strtoull(s, NULL, 10);
    if (v > UINT_MAX)
        return false;
    *ret = (unsigned)v;
    return true;
}

static bool parse_bool_node(const yaml_node_t *n, bool *ret) {
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

static bool parse_duration_node(const yaml_node_t *n, usec_t *ret) {
    if (n->type != YAML_SCALAR_NODE || strlen((const char *)n->data.scalar.value) != n->data.scalar.length)
        return false;
    return parse_duration((const char *)n->data.scalar.value, ret) >= 0;
}

/* ---- maps and lists --------------------------------------------------------------------- */

struct entry {
    const char *key;
    yaml_node_t *key_node;
    yaml_node_t *value;
};

static int entry_ptr_cmp(const void *a, const void *b) {
    const struct entry *x = *(const struct entry *const *)a, *y = *(const struct entry *const *)b;
    int c = strcmp(x->key, y->key);
    return c != 0 ? c : (x < y ? -1 : x > y);
}

/*
 * The entries of a map, in order, with string keys; a duplicate key is reported and dropped (the
 * first one wins).  A null value counts as an empty map.  Returns 1 for a map, 0 when n is not a
 * map (problem recorded, no entries), -ENOMEM.
 */
static int map_entries(struct loader *l, yaml_node_t *n, const char *what, struct entry **ret, size_t *ret_n) {
    *ret = NULL;
    *ret_n = 0;
    if (is_null(n))
        return 1;
    if (n->type != YAML_MAPPING_NODE) {
        problem(l, n, "%s must be a map, got %s", what, DESCRIBE(n));
        return 0;
    }
    size_t total = (size_t)(n->data.mapping.pairs.top - n->data.mapping.pairs.start);
    if (!charge(l, (total + 1) * COST_NODE))
        return 0;
    if (total == 0)
        return 1;

    _cleanup_free_ struct entry *e = calloc(total, sizeof(*e));
    if (!e)
        return -ENOMEM;
    size_t k = 0;
    for (yaml_node_pair_t *p = n->data.mapping.pairs.start; p < n->data.mapping.pairs.top; p++) {
        yaml_node_t *key = node_get(l, p->key), *value = node_get(l, p->value);
        if (!key || !value)
            continue;
        const char *s = scalar_text(l, key, "a key");
        if (!s)
            continue;
        e[k++] = (struct entry){s, key, value};
    }

    if (k > 1) {
        _cleanup_free_ struct entry **sorted = calloc(k, sizeof(*sorted));
        if (!sorted)
            return -ENOMEM;
        for (size_t i = 0; i < k; i++)
            sorted[i] = &e[i];
        qsort(sorted, k, sizeof(*sorted), entry_ptr_cmp);
        struct entry *first = sorted[0];
        for (size_t i = 1; i < k; i++) {
            if (!streq(sorted[i]->key, first->key)) {
                first = sorted[i];
                continue;
            }
            struct config_pos fp = node_pos(first->key_node);
            problem(l, sorted[i]->key_node, "duplicate key '%s' (first defined at line %u column %u)",
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
 * the nodes of allowed[i] or NULL.  Unknown keys are reported.  Returns like map_entries().
 */
static int map_fields(struct loader *l, yaml_node_t *n, const char *what, const char *const allowed[],
                      yaml_node_t *ret_keys[], yaml_node_t *ret_values[]) {
    _cleanup_free_ struct entry *e = NULL;
    size_t n_e, n_allowed = 0;

    while (allowed[n_allowed])
        n_allowed++;
    for (size_t i = 0; i < n_allowed; i++)
        ret_keys[i] = ret_values[i] = NULL;

    int r = map_entries(l, n, what, &e, &n_e);
    if (r <= 0)
        return r;

    for (size_t i = 0; i < n_e; i++) {
        size_t j = 0;
        while (j < n_allowed && !streq(e[i].key, allowed[j]))
            j++;
        if (j < n_allowed) {
            ret_keys[j] = e[i].key_node;
            ret_values[j] = e[i].value;
            continue;
        }
        if (n_allowed == 0) {
            problem(l, e[i].key_node, "unknown key '%s' in %s (no keys are supported here yet)", Q(e[i].key), what);
            continue;
        }
        char list[256] = "";
        for (size_t a = 0; a < n_allowed; a++) {
            if (a > 0)
                strncat(list, ", ", sizeof(list) - strlen(list) - 1);
            strncat(list, allowed[a], sizeof(list) - strlen(list) - 1);
        }
        problem(l, e[i].key_node, "unknown key '%s' in %s (allowed: %s)", Q(e[i].key), what, list);
    }
    return 1;
}

/* The items of a list; a null value is an empty list.  False (problem recorded) for anything else
 */
static bool seq_items(struct loader *l, yaml_node_t *n, const char *what, yaml_node_item_t **ret, size_t *ret_n) {
    *ret = NULL;
    *ret_n = 0;
    if (is_null(n))
        return true;
    if (n->type != YAML_SEQUENCE_NODE) {
        problem(l, n, "%s must be a list, got %s", what, DESCRIBE(n));
        return false;
    }
    size_t total = (size_t)(n->data.sequence.items.top - n->data.sequence.items.start);
    if (!charge(l, (total + 1) * COST_NODE))
        return false;
    *ret = n->data.sequence.items.start;
    *ret_n = total;
    return true;
}

/* ---- freeing ---------------------------------------------------------------------------- */

static void strv_free(char **v, size_t n) {
    if (!v)
        return;
    for (size_t i = 0; i < n; i++)
        free(v[i]);
    free(v);
}

static void kv_free(struct config_kv *kv, size_t n) {
    if (!kv)
        return;
    for (size_t i = 0; i < n; i++) {
        free(kv[i].name);
        free(kv[i].value);
    }
    free(kv);
}

static void component_done(struct config_component *c) {
    free(c->name);
    free(c->command);
    strv_free(c->args, c->n_args);
    kv_free(c->env, c->n_env);
    free(c->workdir);
    strv_free(c->csi_types, c->n_csi_types);
    strv_free(c->services, c->n_services);
    strv_free(c->devices, c->n_devices);
}

static void su_done(struct config_su *su) {
    free(su->name);
    free(su->node);
    for (size_t i = 0; i < su->n_components; i++)
        component_done(&su->components[i]);
    free(su->components);
}

static void si_done(struct config_si *si) {
    free(si->name);
    for (size_t i = 0; i < si->n_csis; i++) {
        free(si->csis[i].name);
        free(si->csis[i].type);
        kv_free(si->csis[i].attrs, si->csis[i].n_attrs);
    }
    free(si->csis);
}

static void sg_done(struct config_sg *sg) {
    free(sg->name);
    for (size_t i = 0; i < sg->n_sus; i++)
        su_done(&sg->sus[i]);
    free(sg->sus);
    for (size_t i = 0; i < sg->n_sis; i++)
        si_done(&sg->sis[i]);
    free(sg->sis);
}

struct config *config_free(struct config *c) {
    if (!c)
        return NULL;
    free(c->path);
    free(c->basedir);
    free(c->cluster);
    for (size_t i = 0; i < c->n_nodes; i++) {
        free(c->nodes[i].name);
        free(c->nodes[i].cdb_address);
    }
    free(c->nodes);
    free(c->cdb.token_file);
    for (size_t i = 0; i < c->n_sgs; i++)
        sg_done(&c->sgs[i]);
    free(c->sgs);
    for (size_t i = 0; i < c->n_pools; i++) {
        free(c->pools[i].name);
        strv_free(c->pools[i].processes, c->pools[i].n_processes);
    }
    free(c->pools);
    free(c);
    return NULL;
}

DEFINE_TRIVIAL_CLEANUP_FUNC(struct config *, config_free);

const struct config_node *config_find_node(const struct config *c, const char *name) {
    if (!c || !name)
        return NULL;
    for (size_t i = 0; i < c->n_nodes; i++)
        if (streq(c->nodes[i].name, name))
            return &c->nodes[i];
    return NULL;
}

const struct config_component *config_find_component(const struct config *c, const char *name, const char **ret_node) {
    for (size_t g = 0; c && name && g < c->n_sgs; g++)
        for (size_t u = 0; u < c->sgs[g].n_sus; u++)
            for (size_t k = 0; k < c->sgs[g].sus[u].n_components; k++)
                if (streq(c->sgs[g].sus[u].components[k].name, name)) {
                    if (ret_node)
                        *ret_node = c->sgs[g].sus[u].node;
                    return &c->sgs[g].sus[u].components[k];
                }
    return NULL;
}

const struct config_pool *config_find_pool_of(const struct config *c, const char *component) {
    for (size_t i = 0; c && component && i < c->n_pools; i++)
        for (size_t k = 0; k < c->pools[i].n_processes; k++)
            if (streq(c->pools[i].processes[k], component))
                return &c->pools[i];
    return NULL;
}

/* ---- component settings and their inheritance ------------------------------------------- */

enum value_type {
    VALUE_COUNT,    /* non-negative integer */
    VALUE_DURATION, /* duration, may be 0 */
    VALUE_POSITIVE, /* duration, must be > 0 */
};

/* The keys of restart/health-check/timeouts; keys[i] is numeric_fields[first + i]. */
static const struct section {
    const char *name;
    size_t first;
    const char *const keys[6]; /* NULL-terminated */
} sections[] = {
    {"restart", 0, {"max", "window", "delay", "delay-max", "stable", NULL}},
    {"health-check", 5, {"period", "timeout", NULL}},
    {"timeouts", 7, {"instantiate", "csi-set", "csi-remove", "quiescing", "terminate", NULL}},
};

static const struct numeric_field {
    enum value_type type;
    size_t offset; /* in struct config_component */
    uint64_t def;  /* built-in default */
} numeric_fields[] = {
    {VALUE_COUNT, offsetof(struct config_component, restart.max), 3},
    {VALUE_POSITIVE, offsetof(struct config_component, restart.window), 60 * USEC_PER_SEC},
    {VALUE_DURATION, offsetof(struct config_component, restart.delay), 100 * USEC_PER_MSEC},
    {VALUE_DURATION, offsetof(struct config_component, restart.delay_max), 5 * USEC_PER_SEC},
    {VALUE_DURATION, offsetof(struct config_component, restart.stable), 10 * USEC_PER_SEC},
    {VALUE_POSITIVE, offsetof(struct config_component, healthcheck.period), 1 * USEC_PER_SEC},
    {VALUE_POSITIVE, offsetof(struct config_component, healthcheck.timeout), 3 * USEC_PER_SEC},
    {VALUE_POSITIVE, offsetof(struct config_component, timeouts.instantiate), 10 * USEC_PER_SEC},
    {VALUE_POSITIVE, offsetof(struct config_component, timeouts.csi_set), 5 * USEC_PER_SEC},
    {VALUE_POSITIVE, offsetof(struct config_component, timeouts.csi_remove), 5 * USEC_PER_SEC},
    {VALUE_POSITIVE, offsetof(struct config_component, timeouts.quiescing), 5 * USEC_PER_SEC},
    {VALUE_POSITIVE, offsetof(struct config_component, timeouts.terminate), 5 * USEC_PER_SEC},
};
#define NUMERIC_RESTART_DELAY 2
#define NUMERIC_RESTART_DELAY_MAX 3

enum {
    CK_COMMAND,
    CK_ARGS,
    CK_ENV,
    CK_WORKDIR,
    CK_CSI_TYPES,
    CK_SERVICES,
    CK_DEVICES,
    CK_RESTART,
    CK_HEALTH_CHECK,
    CK_TIMEOUTS,
    _CK_KEYS,              /* the keys of a component map end here */
    CK_NUMERIC = _CK_KEYS, /* then numeric_fields[i] is setting CK_NUMERIC + i */
    _CK_MAX = CK_NUMERIC + ELEMENTSOF(numeric_fields),
};

static const char *const component_keys[] = {
    [CK_COMMAND] = "command",           [CK_ARGS] = "args",         [CK_ENV] = "env",         [CK_WORKDIR] = "workdir",
    [CK_CSI_TYPES] = "csi-types",       [CK_SERVICES] = "services", [CK_DEVICES] = "devices", [CK_RESTART] = "restart",
    [CK_HEALTH_CHECK] = "health-check", [CK_TIMEOUTS] = "timeouts", [_CK_KEYS] = NULL,
};

/*
 * One level of component settings (defaults.component, an SG's or SU's `component`, or an explicit
 * component): the YAML node of each setting it gives.  Values are checked when the layer is read,
 * so each mistake is reported once however many components inherit it; bad[] marks a setting that
 * was given but wrong, so that nothing derived from it is reported again.
 */
struct layer {
    yaml_node_t *v[_CK_MAX];
    bool bad[_CK_MAX];
};

static bool env_name_is_valid(const char *s) {
    return *s && !strchr(s, '=');
}

/* Reads restart, health-check or timeouts (sections[section]) into layer, key by key. */
static int layer_numeric(struct loader *l, yaml_node_t *n, size_t section, struct layer *layer) {
    yaml_node_t *keys[6], *values[6];
    size_t first = sections[section].first;
    char what[64];

    snprintf(what, sizeof(what), "'%s'", sections[section].name);
    int r = map_fields(l, n, what, sections[section].keys, keys, values);
    if (r <= 0)
        return r;
    for (size_t i = 0; sections[section].keys[i]; i++) {
        yaml_node_t *v = values[i];
        const struct numeric_field *f = &numeric_fields[first + i];
        const char *key = sections[section].keys[i];
        unsigned u;
        usec_t d;
        bool ok;

        if (!v)
            continue;
        if (f->type == VALUE_COUNT) {
            ok = parse_uint_node(v, &u);
            if (!ok)
                problem(l, v, "'%s' must be a non-negative integer (without quotes), got %s", key, DESCRIBE(v));
        } else {
            ok = parse_duration_node(v, &d);
            if (!ok)
                problem(l, v, "'%s' must be a duration such as 500ms, 2s or 1m, got %s", key, DESCRIBE(v));
            else if (f->type == VALUE_POSITIVE && d == 0) {
                problem(l, v, "'%s' must be longer than 0", key);
                ok = false;
            }
        }
        layer->v[CK_NUMERIC + first + i] = v;
        layer->bad[CK_NUMERIC + first + i] = !ok;
    }
    return 0;
}

/* Reads one layer of component settings from n (NULL: an empty layer). */
static int layer_parse(struct loader *l, yaml_node_t *n, const char *what, struct layer *ret) {
    yaml_node_t *keys[_CK_KEYS], *values[_CK_KEYS];
    struct layer layer = {};
    int r;

    *ret = layer;
    if (!n)
        return 0;
    r = map_fields(l, n, what, component_keys, keys, values);
    if (r <= 0)
        return r;

    for (size_t k = CK_COMMAND; k <= CK_DEVICES; k++) {
        yaml_node_t *v = values[k];
        yaml_node_item_t *items;
        size_t n_items;
        char item_what[64];
        bool ok = true;

        if (!v)
            continue;
        snprintf(item_what, sizeof(item_what), "each item of '%s'", component_keys[k]);
        switch (k) {
        case CK_COMMAND:
            ok = string_get(l, v, "'command'");
            break;
        case CK_WORKDIR:
            ok = string_get(l, v, "'workdir'");
            break;
        case CK_ARGS:
            ok = seq_items(l, v, "'args'", &items, &n_items);
            for (size_t i = 0; i < n_items; i++) {
                yaml_node_t *item = node_get(l, items[i]);
                if (!item || !scalar_text(l, item, item_what))
                    ok = false;
            }
            break;
        case CK_CSI_TYPES:
            ok = seq_items(l, v, "'csi-types'", &items, &n_items);
            if (ok && n_items == 0) {
                problem(l, v, "'csi-types' must not be empty (leave it out to take any CSI type)");
                ok = false;
            }
            for (size_t i = 0; i < n_items; i++) {
                yaml_node_t *item = node_get(l, items[i]);
                if (!item || !name_get(l, item, "CSI type"))
                    ok = false;
            }
            break;
        case CK_SERVICES:
        case CK_DEVICES: {
            const char *kind = k == CK_SERVICES ? "service" : "device";
            snprintf(item_what, sizeof(item_what), "'%s'", component_keys[k]);
            ok = seq_items(l, v, item_what, &items, &n_items);
            for (size_t i = 0; i < n_items; i++) {
                yaml_node_t *item = node_get(l, items[i]);
                const char *name = item ? name_get(l, item, kind) : NULL;
                if (!name)
                    ok = false;
                for (size_t j = 0; name && j < i; j++) {
                    yaml_node_t *prev = node_get(l, items[j]);
                    if (prev && prev->type == YAML_SCALAR_NODE && streq((const char *)prev->data.scalar.value, name)) {
                        problem(l, item, "%s '%s' is listed twice", kind, Q(name));
                        ok = false;
                        break;
                    }
                }
            }
            break;
        }
        case CK_ENV: {
            _cleanup_free_ struct entry *e = NULL;
            size_t n_e;
            r = map_entries(l, v, "'env'", &e, &n_e);
            if (r < 0)
                return r;
            ok = r > 0;
            for (size_t i = 0; i < n_e; i++) {
                if (!env_name_is_valid(e[i].key)) {
                    problem(l, e[i].key_node, "invalid environment variable name '%s'", Q(e[i].key));
                    ok = false;
                }
                char vwhat[QUOTE_MAX + 32];
                snprintf(vwhat, sizeof(vwhat), "environment variable '%s'", Q(e[i].key));
                if (!scalar_text(l, e[i].value, vwhat))
                    ok = false;
            }
            break;
        }
        }
        layer.v[k] = v;
        layer.bad[k] = !ok;
    }

    for (size_t s = 0; s < ELEMENTSOF(sections); s++)
        if (values[CK_RESTART + s]) {
            r = layer_numeric(l, values[CK_RESTART + s], s, &layer);
            if (r < 0)
                return r;
        }

    *ret = layer;
    return 0;
}

static int check_executable(const char *p) {
    struct stat st;
    if (stat(p, &st) < 0)
        return -errno;
    if (S_ISDIR(st.st_mode))
        return -EISDIR;
    if (!S_ISREG(st.st_mode))
        return -EACCES;
    if (access(p, X_OK) < 0)
        return -errno;
    return 0;
}

/* basedir + "/" + rel, without leading "./" in rel.  NULL on -ENOMEM. */
static char *path_join(const char *basedir, const char *rel) {
    char *p;
    while (rel[0] == '.' && rel[1] == '/') {
        rel += 2;
        while (*rel == '/')
            rel++;
    }
    const char *sep = basedir[0] && basedir[strlen(basedir) - 1] == '/' ? "" : "/";
    if (asprintf(&p, "%s%s%s", basedir, sep, rel) < 0)
        return NULL;
    return p;
}

/*
 * An existing file's path with its directory canonical ("dir/../bin/x" -> "/abs/bin/x"); the file
 * name itself stays, so that a program reached through a symlink keeps the name it was given.
 */
static int path_tidy(const char *p, char **ret) {
    _cleanup_free_ char *dir = strdup(p), *real = NULL;
    char *slash;

    if (!dir)
        return -ENOMEM;
    slash = strrchr(dir, '/');
    if (!slash || slash == dir)
        real = NULL;
    else {
        *slash = 0;
        real = realpath(dir, NULL);
    }
    if (!real)
        /* Cannot happen for a file that was just found; keep the path as it is. */
        return (*ret = strdup(p)) ? 0 : -ENOMEM;
    *ret = path_join(real, strrchr(p, '/') + 1);
    return *ret ? 0 : -ENOMEM;
}

static const char *executable_error(int r) {
    switch (r) {
    case -ENOENT:
    case -ENOTDIR:
        return "does not exist";
    case -EISDIR:
        return "is a directory";
    case -EACCES:
        return "is not an executable file";
    default:
        return strerror(-r);
    }
}

/*
 * Resolves a command: absolute as is; with a '/' relative to the description's directory;
 * without one, in that directory first and then in the absolute directories of $PATH.
 * *ret is the absolute path, or NULL when it does not resolve (problem recorded).
 */
static int command_resolve(struct loader *l, yaml_node_t *n, const char *cmd, char **ret) {
    _cleanup_free_ char *p = NULL;
    int r;

    *ret = NULL;
    if (cmd[0] == '/' || strchr(cmd, '/')) {
        p = cmd[0] == '/' ? strdup(cmd) : path_join(l->basedir, cmd);
        if (!p)
            return -ENOMEM;
        r = check_executable(p);
        if (r < 0) {
            if (streq(p, cmd))
                problem(l, n, "command '%s' %s", Q(cmd), executable_error(r));
            else
                problem(l, n, "command '%s' ('%s') %s", Q(cmd), Q(p), executable_error(r));
            return 0;
        }
        if (cmd[0] != '/')
            return path_tidy(p, ret);
        *ret = TAKE_PTR(p);
        return 0;
    }

    p = path_join(l->basedir, cmd);
    if (!p)
        return -ENOMEM;
    if (check_executable(p) >= 0) {
        *ret = TAKE_PTR(p);
        return 0;
    }

    const char *path = getenv("PATH");
    if (!path)
        path = "/usr/local/bin:/usr/bin:/bin";
    for (const char *d = path; *d;) {
        size_t len = strcspn(d, ":");
        /* Relative entries would depend on halod's working directory: skipped. */
        if (d[0] == '/') {
            free(p);
            if (asprintf(&p, "%.*s/%s", (int)len, d, cmd) < 0) {
                p = NULL;
                return -ENOMEM;
            }
            if (check_executable(p) >= 0) {
                *ret = TAKE_PTR(p);
                return 0;
            }
        }
        d += len;
        if (*d == ':')
            d++;
    }
    problem(l, n, "command '%s' not found in '%s' or $PATH", Q(cmd), Q(l->basedir));
    return 0;
}

static int workdir_resolve(struct loader *l, yaml_node_t *n, const char *dir, char **ret) {
    _cleanup_free_ char *p = dir[0] == '/' ? strdup(dir) : path_join(l->basedir, dir);
    struct stat st;

    if (!p)
        return -ENOMEM;
    if (stat(p, &st) < 0)
        problem(l, n, "workdir '%s' %s", Q(p),
                errno == ENOENT || errno == ENOTDIR ? "does not exist" : strerror(errno));
    else if (!S_ISDIR(st.st_mode))
        problem(l, n, "workdir '%s' is not a directory", Q(p));
    else if (dir[0] != '/') {
        /* "../data" relative to the description: give the daemon a clean absolute path. */
        char *real = realpath(p, NULL);
        if (real) {
            free(p);
            p = real;
        } else if (errno == ENOMEM)
            return -ENOMEM;
    }
    *ret = TAKE_PTR(p);
    return 0;
}

static int strv_from_seq(struct loader *l, yaml_node_t *n, char ***ret, size_t *ret_n) {
    yaml_node_item_t *items;
    size_t n_items, k = 0;

    if (!seq_items(l, n, "a list", &items, &n_items))
        n_items = 0;
    char **v = calloc(n_items + 1, sizeof(char *));
    if (!v)
        return -ENOMEM;
    for (size_t i = 0; i < n_items; i++) {
        yaml_node_t *item = node_get(l, items[i]);
        if (!item || item->type != YAML_SCALAR_NODE)
            continue;
        v[k] = l_strdup(l, (const char *)item->data.scalar.value);
        if (!v[k]) {
            strv_free(v, k);
            return -ENOMEM;
        }
        k++;
    }
    *ret = v;
    *ret_n = k;
    return 0;
}

/* A map of scalars to scalars as config_kv; entries that are not scalars (reported) are skipped. */
static int kv_from_map(struct loader *l, yaml_node_t *n, const char *what, struct config_kv **ret, size_t *ret_n) {
    _cleanup_free_ struct entry *e = NULL;
    size_t n_e, k = 0;

    *ret = NULL;
    *ret_n = 0;
    int r = map_entries(l, n, what, &e, &n_e);
    if (r <= 0 || n_e == 0)
        return r < 0 ? r : 0;
    struct config_kv *kv = calloc(n_e, sizeof(*kv));
    if (!kv)
        return -ENOMEM;
    for (size_t i = 0; i < n_e; i++) {
        if (e[i].value->type != YAML_SCALAR_NODE)
            continue;
        kv[k].name = l_strdup(l, e[i].key);
        kv[k].value = l_strdup(l, (const char *)e[i].value->data.scalar.value);
        k++;
        if (!kv[k - 1].name || !kv[k - 1].value) {
            kv_free(kv, k);
            return -ENOMEM;
        }
    }
    *ret = kv;
    *ret_n = k;
    return 0;
}

/* Moves the n_add entries of add into *kv (add's array is left for the caller
 * to free, its strings are taken); an entry with an existing name replaces it. */
static int kv_merge(struct config_kv **kv, size_t *n, struct config_kv *add, size_t n_add) {
    struct config_kv *m = realloc(*kv, (*n + n_add) * sizeof(*m) ?: 1);
    if (!m) {
        for (size_t i = 0; i < n_add; i++) {
            free(add[i].name);
            free(add[i].value);
        }
        return -ENOMEM;
    }
    *kv = m;
    for (size_t i = 0; i < n_add; i++) {
        size_t j;
        for (j = 0; j < *n; j++)
            if (strcmp(m[j].name, add[i].name) == 0)
                break;
        if (j < *n) {
            free(m[j].name);
            free(m[j].value);
        } else
            (*n)++;
        m[j] = add[i];
    }
    return 0;
}

/* Builds one component from its layers (later wins, setting by setting). */
static int component_build(struct loader *l, const struct layer *const layers[], size_t n_layers, const char *name,
                           struct config_pos pos, struct config_component *c) {
    struct layer m = {};
    int r;

    for (size_t i = 0; i < n_layers; i++)
        for (size_t k = 0; k < _CK_MAX; k++)
            if (layers[i] && layers[i]->v[k]) {
                m.v[k] = layers[i]->v[k];
                m.bad[k] = layers[i]->bad[k];
            }

    if (!charge(l, COST_NODE * _CK_MAX))
        return 0;
    c->pos = pos;
    c->name = l_strdup(l, name);
    if (!c->name)
        return -ENOMEM;

    for (size_t i = 0; i < ELEMENTSOF(numeric_fields); i++) {
        const struct numeric_field *f = &numeric_fields[i];
        yaml_node_t *v = m.bad[CK_NUMERIC + i] ? NULL : m.v[CK_NUMERIC + i];
        void *p = (uint8_t *)c + f->offset;
        if (f->type == VALUE_COUNT) {
            unsigned u = (unsigned)f->def;
            if (v)
                (void)parse_uint_node(v, &u);
            *(unsigned *)p = u;
        } else {
            usec_t d = f->def;
            if (v)
                (void)parse_duration_node(v, &d);
            *(usec_t *)p = d;
        }
    }
    if (c->restart.delay > c->restart.delay_max) {
        /* At the effective 'delay' if it was given, else at 'delay-max' (both built-in is fine). */
        yaml_node_t *v = m.v[CK_NUMERIC + NUMERIC_RESTART_DELAY];
        if (!v || m.bad[CK_NUMERIC + NUMERIC_RESTART_DELAY])
            v = m.v[CK_NUMERIC + NUMERIC_RESTART_DELAY_MAX];
        char a[32], b[32];
        problem_pos(l, v ? node_pos(v) : pos, "restart 'delay' (%s) is longer than 'delay-max' (%s)",
                    format_duration(a, sizeof(a), c->restart.delay),
                    format_duration(b, sizeof(b), c->restart.delay_max));
    }

    if (!m.v[CK_COMMAND])
        problem_pos(l, pos, "component '%s' has no 'command'", Q(name));
    else if (!m.bad[CK_COMMAND]) {
        r = command_resolve(l, m.v[CK_COMMAND], (const char *)m.v[CK_COMMAND]->data.scalar.value, &c->command);
        if (r < 0)
            return r;
    }

    if (m.v[CK_ARGS] && !m.bad[CK_ARGS])
        r = strv_from_seq(l, m.v[CK_ARGS], &c->args, &c->n_args);
    else {
        c->args = calloc(1, sizeof(char *));
        r = c->args ? 0 : -ENOMEM;
    }
    if (r < 0)
        return r;

    /* env merges variable by variable across the layers (later wins), so a
     * unit can add one variable to its group's environment. */
    for (size_t i = 0; i < n_layers; i++) {
        if (!layers[i] || !layers[i]->v[CK_ENV] || layers[i]->bad[CK_ENV])
            continue;
        struct config_kv *add = NULL;
        size_t n_add = 0;
        r = kv_from_map(l, layers[i]->v[CK_ENV], "'env'", &add, &n_add);
        if (r >= 0)
            r = kv_merge(&c->env, &c->n_env, add, n_add);
        free(add);
        if (r < 0)
            return r;
    }

    if (m.v[CK_WORKDIR] && !m.bad[CK_WORKDIR])
        r = workdir_resolve(l, m.v[CK_WORKDIR], (const char *)m.v[CK_WORKDIR]->data.scalar.value, &c->workdir);
    else
        r = (c->workdir = strdup(l->basedir)) ? 0 : -ENOMEM;
    if (r < 0)
        return r;

    if (m.v[CK_CSI_TYPES] && !m.bad[CK_CSI_TYPES]) {
        r = strv_from_seq(l, m.v[CK_CSI_TYPES], &c->csi_types, &c->n_csi_types);
        if (r < 0)
            return r;
    }
    if (m.v[CK_SERVICES] && !m.bad[CK_SERVICES]) {
        r = strv_from_seq(l, m.v[CK_SERVICES], &c->services, &c->n_services);
        if (r < 0)
            return r;
    }
    if (m.v[CK_DEVICES] && !m.bad[CK_DEVICES]) {
        r = strv_from_seq(l, m.v[CK_DEVICES], &c->devices, &c->n_devices);
        if (r < 0)
            return r;
    }
    return 0;
}

/* ---- the description, top down --------------------------------------------------------- */

static int csi_parse(struct loader *l, const struct entry *e, struct config_csi *csi) {
    enum { CSI_TYPE, CSI_ATTRIBUTES, _CSI_MAX };
    static const char *const keys[] = {"type", "attributes", NULL};
    yaml_node_t *k[_CSI_MAX], *v[_CSI_MAX];
    char what[QUOTE_MAX + 32];

    csi->pos = node_pos(e->key_node);
    csi->name = l_strdup(l, e->key);
    if (!csi->name)
        return -ENOMEM;
    (void)name_get(l, e->key_node, "CSI");
    snprintf(what, sizeof(what), "CSI '%s'", Q(e->key));
    int r = map_fields(l, e->value, what, keys, k, v);
    if (r <= 0)
        return r;

    if (v[CSI_TYPE]) {
        csi->type_pos = node_pos(v[CSI_TYPE]);
        const char *t = name_get(l, v[CSI_TYPE], "CSI type");
        if (t && !(csi->type = l_strdup(l, t)))
            return -ENOMEM;
    }
    if (v[CSI_ATTRIBUTES]) {
        _cleanup_free_ struct entry *a = NULL;
        size_t n_a;
        r = map_entries(l, v[CSI_ATTRIBUTES], "'attributes'", &a, &n_a);
        if (r < 0)
            return r;
        for (size_t i = 0; i < n_a; i++) {
            if (strlen(a[i].key) == 0 || strlen(a[i].key) > CONFIG_NAME_MAX)
                problem(l, a[i].key_node, "attribute names must have 1 to %d characters", CONFIG_NAME_MAX);
            char awhat[QUOTE_MAX + 32];
            snprintf(awhat, sizeof(awhat), "attribute '%s'", Q(a[i].key));
            (void)scalar_text(l, a[i].value, awhat);
        }
        r = kv_from_map(l, v[CSI_ATTRIBUTES], "'attributes'", &csi->attrs, &csi->n_attrs);
        if (r < 0)
            return r;
    }
    return 0;
}

static int si_parse(struct loader *l, const struct entry *e, struct config_si *si) {
    static const char *const keys[] = {"csis", "entrypoint", NULL};
    yaml_node_t *k[2], *v[2];
    _cleanup_free_ struct entry *csis = NULL;
    size_t n_csis = 0;
    char what[QUOTE_MAX + 32];

    si->pos = node_pos(e->key_node);
    si->name = l_strdup(l, e->key);
    if (!si->name)
        return -ENOMEM;
    (void)name_get(l, e->key_node, "service instance");
    snprintf(what, sizeof(what), "service instance '%s'", Q(e->key));
    int r = map_fields(l, e->value, what, keys, k, v);
    if (r <= 0)
        return r;

    if (v[1] && !parse_bool_node(v[1], &si->entrypoint))
        problem(l, v[1], "'entrypoint' must be true or false, got %s", DESCRIBE(v[1]));
    if (v[0]) {
        r = map_entries(l, v[0], "'csis'", &csis, &n_csis);
        if (r < 0)
            return r;
        if (r > 0 && n_csis == 0)
            problem(l, v[0], "service instance '%s' needs at least one CSI in 'csis'", Q(e->key));
    } else
        problem(l, e->key_node, "service instance '%s' needs at least one CSI in 'csis'", Q(e->key));
    if (n_csis == 0)
        return 0;

    si->csis = calloc(n_csis, sizeof(*si->csis));
    if (!si->csis)
        return -ENOMEM;
    for (size_t i = 0; i < n_csis && !l->too_big; i++) {
        si->n_csis++;
        r = csi_parse(l, &csis[i], &si->csis[i]);
        if (r < 0)
            return r;
    }
    return 0;
}

static int su_parse(struct loader *l, const struct entry *e, const struct layer *defaults, const struct layer *sg_layer,
                    unsigned rank, struct config_su *su) {
    enum { SU_NODE, SU_COMPONENT, SU_COMPONENTS, _SU_MAX };
    static const char *const keys[] = {"node", "component", "components", NULL};
    yaml_node_t *k[_SU_MAX], *v[_SU_MAX];
    struct layer su_layer;
    char what[QUOTE_MAX + 32];
    int r;

    su->pos = node_pos(e->key_node);
    su->rank = rank;
    su->name = l_strdup(l, e->key);
    if (!su->name)
        return -ENOMEM;
    (void)name_get(l, e->key_node, "service unit");
    snprintf(what, sizeof(what), "service unit '%s'", Q(e->key));
    r = map_fields(l, e->value, what, keys, k, v);
    if (r <= 0)
        return r;

    if (v[SU_NODE]) {
        su->node_pos = node_pos(v[SU_NODE]);
        const char *s = string_get(l, v[SU_NODE], "'node'");
        if (s && !(su->node = l_strdup(l, s)))
            return -ENOMEM;
    }

    r = layer_parse(l, v[SU_COMPONENT], "'component'", &su_layer);
    if (r < 0)
        return r;

    if (!v[SU_COMPONENTS]) {
        const struct layer *layers[] = {defaults, sg_layer, &su_layer};
        su->components = calloc(1, sizeof(*su->components));
        if (!su->components)
            return -ENOMEM;
        su->n_components = 1;
        return component_build(l, layers, ELEMENTSOF(layers), su->name, su->pos, &su->components[0]);
    }

    _cleanup_free_ struct entry *comps = NULL;
    size_t n_comps;
    r = map_entries(l, v[SU_COMPONENTS], "'components'", &comps, &n_comps);
    if (r < 0)
        return r;
    if (r > 0 && n_comps == 0)
        problem(l, v[SU_COMPONENTS],
                "'components' must not be empty (leave it out for one component named after the "
                "service unit)");
    if (n_comps == 0)
        return 0;

    su->components = calloc(n_comps, sizeof(*su->components));
    if (!su->components)
        return -ENOMEM;
    for (size_t i = 0; i < n_comps && !l->too_big; i++) {
        _cleanup_free_ char *qualified = NULL;
        struct layer own;

        (void)name_get(l, comps[i].key_node, "component");
        if (asprintf(&qualified, "%s/%s", su->name, comps[i].key) < 0) {
            qualified = NULL;
            return -ENOMEM;
        }
        if (strlen(qualified) > CONFIG_NAME_MAX)
            problem(l, comps[i].key_node, "component name '%s' is longer than %d characters", Q(qualified),
                    CONFIG_NAME_MAX);
        snprintf(what, sizeof(what), "component '%s'", Q(qualified));
        r = layer_parse(l, comps[i].value, what, &own);
        if (r < 0)
            return r;
        const struct layer *layers[] = {defaults, sg_layer, &su_layer, &own};
        su->n_components++;
        r = component_build(l, layers, ELEMENTSOF(layers), qualified, node_pos(comps[i].key_node), &su->components[i]);
        if (r < 0)
            return r;
    }
    return 0;
}

static void redundancy_parse(struct loader *l, yaml_node_t *n, struct config_sg *sg) {
    static const char *const later[] = {"N+M",          "NWay",         "N-Way",        "NWayActive",
                                        "N-Way-Active", "NoRedundancy", "No-Redundancy"};
    const char *s = scalar_text(l, n, "'redundancy'");

    if (!s)
        return;
    if (streq(s, "2N")) {
        sg->redundancy = CONFIG_REDUNDANCY_2N;
        return;
    }
    for (size_t i = 0; i < ELEMENTSOF(later); i++)
        if (strcasecmp(s, later[i]) == 0) {
            problem(l, n, "redundancy model '%s' is not supported yet (supported: 2N)", Q(s));
            return;
        }
    problem(l, n, "unknown redundancy model '%s' (supported: 2N)", Q(s));
}

static int sg_parse(struct loader *l, const struct entry *e, const struct layer *defaults, struct config_sg *sg) {
    enum { SG_REDUNDANCY, SG_AUTO_FAILBACK, SG_COMPONENT, SG_SUS, SG_SIS, SG_CDB_ROLES, _SG_MAX };
    static const char *const keys[] = {"redundancy",        "auto-failback", "component", "service-units",
                                       "service-instances", "cdb-roles",     NULL};
    yaml_node_t *k[_SG_MAX], *v[_SG_MAX];
    _cleanup_free_ struct entry *sus = NULL, *sis = NULL;
    size_t n_sus = 0, n_sis = 0;
    struct layer sg_layer;
    char what[QUOTE_MAX + 32];
    int r;

    sg->pos = node_pos(e->key_node);
    sg->redundancy = CONFIG_REDUNDANCY_2N;
    sg->name = l_strdup(l, e->key);
    if (!sg->name)
        return -ENOMEM;
    (void)name_get(l, e->key_node, "service group");
    snprintf(what, sizeof(what), "service group '%s'", Q(e->key));
    r = map_fields(l, e->value, what, keys, k, v);
    if (r <= 0)
        return r;

    if (v[SG_REDUNDANCY])
        redundancy_parse(l, v[SG_REDUNDANCY], sg);
    if (v[SG_AUTO_FAILBACK] && !parse_bool_node(v[SG_AUTO_FAILBACK], &sg->auto_failback))
        problem(l, v[SG_AUTO_FAILBACK], "'auto-failback' must be true or false, got %s", DESCRIBE(v[SG_AUTO_FAILBACK]));
    if (v[SG_CDB_ROLES]) {
        sg->cdb_roles_pos = node_pos(v[SG_CDB_ROLES]);
        if (!parse_bool_node(v[SG_CDB_ROLES], &sg->cdb_roles))
            problem(l, v[SG_CDB_ROLES], "'cdb-roles' must be true or false, got %s", DESCRIBE(v[SG_CDB_ROLES]));
    }
    r = layer_parse(l, v[SG_COMPONENT], "'component'", &sg_layer);
    if (r < 0)
        return r;

    if (v[SG_SUS]) {
        r = map_entries(l, v[SG_SUS], "'service-units'", &sus, &n_sus);
        if (r < 0)
            return r;
        if (r > 0 && n_sus == 0)
            problem(l, v[SG_SUS], "service group '%s' needs at least one service unit in 'service-units'", Q(e->key));
    } else
        problem(l, e->key_node, "service group '%s' needs at least one service unit in 'service-units'", Q(e->key));
    if (n_sus > 0) {
        sg->sus = calloc(n_sus, sizeof(*sg->sus));
        if (!sg->sus)
            return -ENOMEM;
        for (size_t i = 0; i < n_sus && !l->too_big; i++) {
            sg->n_sus++;
            r = su_parse(l, &sus[i], defaults, &sg_layer, (unsigned)i, &sg->sus[i]);
            if (r < 0)
                return r;
        }
    }

    if (v[SG_SIS]) {
        r = map_entries(l, v[SG_SIS], "'service-instances'", &sis, &n_sis);
        if (r < 0)
            return r;
        if (r > 0 && n_sis == 0)
            problem(l, v[SG_SIS], "service group '%s' needs at least one service instance in 'service-instances'",
                    Q(e->key));
    } else
        problem(l, e->key_node, "service group '%s' needs at least one service instance in 'service-instances'",
                Q(e->key));
    if (n_sis > 0) {
        sg->sis = calloc(n_sis, sizeof(*sg->sis));
        if (!sg->sis)
            return -ENOMEM;
        for (size_t i = 0; i < n_sis && !l->too_big; i++) {
            sg->n_sis++;
            r = si_parse(l, &sis[i], &sg->sis[i]);
            if (r < 0)
                return r;
        }
    }
    return 0;
}

/* "1.2.3.4:5" or "[::1]:5": a numeric address and a port. */
static bool address_is_valid(const char *s) {
    char host[INET6_ADDRSTRLEN + 2];
    const char *colon = strrchr(s, ':');
    unsigned char buf[sizeof(struct in6_addr)];
    if (!colon || colon == s || (size_t)(colon - s) >= sizeof(host))
        return false;
    memcpy(host, s, (size_t)(colon - s));
    host[colon - s] = '\0';
    char *end;
    long port = strtol(colon + 1, &end, 10);
    if (!colon[1] || *end || port < 1 || port > 65535)
        return false;
    if (host[0] == '[') {
        size_t n = strlen(host);
        if (n < 3 || host[n - 1] != ']')
            return false;
        host[n - 1] = '\0';
        return inet_pton(AF_INET6, host + 1, buf) == 1;
    }
    return inet_pton(AF_INET, host, buf) == 1;
}

static int nodes_parse(struct loader *l, yaml_node_t *n, struct config *c) {
    _cleanup_free_ struct entry *e = NULL;
    size_t n_e = 0;

    if (!n) {
        c->nodes = calloc(1, sizeof(*c->nodes));
        if (!c->nodes || !(c->nodes[0].name = strdup("local")))
            return -ENOMEM;
        c->n_nodes = 1;
        return 0;
    }
    int r = map_entries(l, n, "'nodes'", &e, &n_e);
    if (r < 0)
        return r;
    if (r > 0 && n_e == 0)
        problem(l, n, "'nodes' must name at least one node (leave it out for one node named 'local')");
    if (n_e == 0)
        return 0;

    c->nodes = calloc(n_e, sizeof(*c->nodes));
    if (!c->nodes)
        return -ENOMEM;
    for (size_t i = 0; i < n_e; i++) {
        yaml_node_t *k[1], *v[1] = {NULL};
        char what[QUOTE_MAX + 16];
        static const char *const keys[] = {"cdb-address", NULL};

        (void)name_get(l, e[i].key_node, "node");
        c->nodes[i].pos = node_pos(e[i].key_node);
        c->nodes[i].name = l_strdup(l, e[i].key);
        if (!c->nodes[i].name)
            return -ENOMEM;
        c->n_nodes++;
        snprintf(what, sizeof(what), "node '%s'", Q(e[i].key));
        r = map_fields(l, e[i].value, what, keys, k, v);
        if (r < 0)
            return r;
        if (v[0]) {
            const char *a = string_get(l, v[0], "'cdb-address'");
            if (a && !address_is_valid(a))
                problem(l, v[0],
                        "'cdb-address' must be a numeric ADDR:PORT such as 10.0.0.1:4570 or [fd00::1]:4570, got %s",
                        DESCRIBE(v[0]));
            else if (a && !(c->nodes[i].cdb_address = l_strdup(l, a)))
                return -ENOMEM;
        }
    }
    return 0;
}

/* cdb: {replication: sync|async, tick: DURATION, dead-after: DURATION} */
static void cdb_parse(struct loader *l, yaml_node_t *n, struct config_cdb *cdb) {
    enum { CDB_REPLICATION, CDB_TICK, CDB_DEAD_AFTER, CDB_TOKEN_FILE, _CDB_MAX };
    static const char *const keys[] = {"replication", "tick", "dead-after", "token-file", NULL};
    yaml_node_t *k[_CDB_MAX], *v[_CDB_MAX];

    cdb->tick = 500 * USEC_PER_MSEC;
    cdb->dead_after = 2 * USEC_PER_SEC;
    if (!n || map_fields(l, n, "'cdb'", keys, k, v) <= 0)
        return;
    if (v[CDB_REPLICATION]) {
        const char *s =
            v[CDB_REPLICATION]->type == YAML_SCALAR_NODE ? (const char *)v[CDB_REPLICATION]->data.scalar.value : "";
        if (streq(s, "async"))
            cdb->async = true;
        else if (!streq(s, "sync"))
            problem(l, v[CDB_REPLICATION], "'replication' must be sync or async, got %s", DESCRIBE(v[CDB_REPLICATION]));
    }
    if (v[CDB_TICK] && (!parse_duration_node(v[CDB_TICK], &cdb->tick) || cdb->tick < 10 * USEC_PER_MSEC))
        problem(l, v[CDB_TICK], "'tick' must be a duration of at least 10ms, such as 500ms, got %s",
                DESCRIBE(v[CDB_TICK]));
    if (v[CDB_TOKEN_FILE]) {
        const char *f = string_get(l, v[CDB_TOKEN_FILE], "'token-file'");
        if (f && !(cdb->token_file = l_strdup(l, f)))
            l->oom = true;
    }
    if (v[CDB_DEAD_AFTER] &&
        (!parse_duration_node(v[CDB_DEAD_AFTER], &cdb->dead_after) || cdb->dead_after < 2 * cdb->tick))
        problem(l, v[CDB_DEAD_AFTER], "'dead-after' must be a duration of at least twice 'tick', got %s",
                DESCRIBE(v[CDB_DEAD_AFTER]));
}

/* pools: {NAME: {processes: [COMPONENT, ...], tolerate: N}} */
static int pools_parse(struct loader *l, yaml_node_t *n, struct config *c) {
    enum { POOL_PROCESSES, POOL_TOLERATE, _POOL_MAX };
    static const char *const keys[] = {"processes", "tolerate", NULL};
    _cleanup_free_ struct entry *e = NULL;
    size_t n_e = 0;

    if (!n)
        return 0;
    int r = map_entries(l, n, "'pools'", &e, &n_e);
    if (r <= 0 || n_e == 0)
        return r < 0 ? r : 0;
    c->pools = calloc(n_e, sizeof(*c->pools));
    if (!c->pools)
        return -ENOMEM;
    for (size_t i = 0; i < n_e; i++) {
        struct config_pool *pool = &c->pools[c->n_pools++];
        yaml_node_t *k[_POOL_MAX], *v[_POOL_MAX] = {NULL};
        char what[QUOTE_MAX + 16];

        (void)name_get(l, e[i].key_node, "pool");
        pool->pos = node_pos(e[i].key_node);
        pool->name = l_strdup(l, e[i].key);
        if (!pool->name)
            return -ENOMEM;
        pool->tolerate = 1;
        snprintf(what, sizeof(what), "pool '%s'", Q(e[i].key));
        r = map_fields(l, e[i].value, what, keys, k, v);
        if (r < 0)
            return r;
        if (r == 0)
            continue;
        if (!v[POOL_PROCESSES])
            problem(l, e[i].value, "pool '%s' has no 'processes'", Q(e[i].key));
        else {
            yaml_node_item_t *items;
            size_t n_items;
            bool ok = seq_items(l, v[POOL_PROCESSES], "'processes'", &items, &n_items);
            for (size_t j = 0; ok && j < n_items; j++) {
                yaml_node_t *item = node_get(l, items[j]);
                if (!item || !scalar_text(l, item, "each item of 'processes'"))
                    ok = false;
            }
            if (ok && n_items == 0)
                problem(l, v[POOL_PROCESSES], "pool '%s' has no processes", Q(e[i].key));
            else if (ok && n_items > CONFIG_POOL_PROCESSES_MAX)
                problem(l, v[POOL_PROCESSES], "pool '%s' has %zu processes; at most %d are allowed", Q(e[i].key),
                        n_items, CONFIG_POOL_PROCESSES_MAX);
            else if (ok) {
                r = strv_from_seq(l, v[POOL_PROCESSES], &pool->processes, &pool->n_processes);
                if (r < 0)
                    return r;
            }
        }
        if (v[POOL_TOLERATE] && !parse_uint_node(v[POOL_TOLERATE], &pool->tolerate) && !(pool->tolerate = 0))
            problem(l, v[POOL_TOLERATE], "'tolerate' must be a non-negative integer (without quotes), got %s",
                    DESCRIBE(v[POOL_TOLERATE]));
    }
    return 0;
}

static int description_parse(struct loader *l, yaml_node_t *root, struct config *c) {
    enum { TOP_CLUSTER, TOP_NODES, TOP_DEFAULTS, TOP_SGS, TOP_CDB, TOP_POOLS, _TOP_MAX };
    static const char *const keys[] = {"cluster", "nodes", "defaults", "service-groups", "cdb", "pools", NULL};
    static const char *const defaults_keys[] = {"component", NULL};
    yaml_node_t *k[_TOP_MAX], *v[_TOP_MAX], *dk[1], *dv[1] = {NULL};
    _cleanup_free_ struct entry *sgs = NULL;
    size_t n_sgs = 0;
    struct layer defaults;
    int r;

    r = map_fields(l, root, "the description", keys, k, v);
    if (r <= 0)
        return r;

    const char *cluster = "halo";
    if (v[TOP_CLUSTER]) {
        const char *s = name_get(l, v[TOP_CLUSTER], "cluster");
        if (s)
            cluster = s;
    }
    c->cluster = l_strdup(l, cluster);
    if (!c->cluster)
        return -ENOMEM;

    r = nodes_parse(l, v[TOP_NODES], c);
    if (r < 0)
        return r;
    cdb_parse(l, v[TOP_CDB], &c->cdb);
    r = pools_parse(l, v[TOP_POOLS], c);
    if (r < 0)
        return r;

    if (v[TOP_DEFAULTS]) {
        r = map_fields(l, v[TOP_DEFAULTS], "'defaults'", defaults_keys, dk, dv);
        if (r < 0)
            return r;
    }
    r = layer_parse(l, dv[0], "'component'", &defaults);
    if (r < 0)
        return r;

    if (v[TOP_SGS]) {
        r = map_entries(l, v[TOP_SGS], "'service-groups'", &sgs, &n_sgs);
        if (r < 0)
            return r;
        /* An empty map is allowed: a node that only serves the configuration database. */
    } else
        problem(l, root,
                "the description has no 'service-groups' (write 'service-groups: {}' for a node that only serves "
                "the configuration database)");
    if (n_sgs == 0)
        return 0;

    c->sgs = calloc(n_sgs, sizeof(*c->sgs));
    if (!c->sgs)
        return -ENOMEM;
    for (size_t i = 0; i < n_sgs && !l->too_big; i++) {
        c->n_sgs++;
        r = sg_parse(l, &sgs[i], &defaults, &c->sgs[i]);
        if (r < 0)
            return r;
    }
    return 0;
}

/* ---- verification of the whole --------------------------------------------------------- */

struct named {
    const char *name;
    struct config_pos pos;
};

static int named_cmp(const void *a, const void *b) {
    const struct named *x = a, *y = b;
    int c = strcmp(x->name, y->name);
    if (c != 0)
        return c;
    if (x->pos.line != y->pos.line)
        return x->pos.line < y->pos.line ? -1 : 1;
    return x->pos.column < y->pos.column ? -1 : x->pos.column > y->pos.column;
}

/* Reports names used twice (sorted by name and position, so the first one is "first"). */
static void names_check(struct loader *l, struct named *v, size_t n, const char *kind) {
    if (n < 2)
        return;
    qsort(v, n, sizeof(*v), named_cmp);
    size_t first = 0;
    for (size_t i = 1; i < n; i++) {
        if (!streq(v[i].name, v[first].name)) {
            first = i;
            continue;
        }
        problem_pos(l, v[i].pos, "duplicate %s name '%s' (first defined at line %u column %u)", kind, Q(v[i].name),
                    v[first].pos.line, v[first].pos.column);
    }
}

static int names_verify(struct loader *l, const struct config *c) {
    size_t n_su = 0, n_si = 0, n_csi = 0;

    for (size_t g = 0; g < c->n_sgs; g++) {
        n_su += c->sgs[g].n_sus;
        n_si += c->sgs[g].n_sis;
        for (size_t i = 0; i < c->sgs[g].n_sis; i++)
            n_csi += c->sgs[g].sis[i].n_csis;
    }
    _cleanup_free_ struct named *sgs = calloc(c->n_sgs + 1, sizeof(struct named));
    _cleanup_free_ struct named *sus = calloc(n_su + 1, sizeof(struct named));
    _cleanup_free_ struct named *sis = calloc(n_si + 1, sizeof(struct named));
    _cleanup_free_ struct named *csis = calloc(n_csi + 1, sizeof(struct named));
    if (!sgs || !sus || !sis || !csis)
        return -ENOMEM;

    n_su = n_si = n_csi = 0;
    for (size_t g = 0; g < c->n_sgs; g++) {
        const struct config_sg *sg = &c->sgs[g];
        sgs[g] = (struct named){sg->name, sg->pos};
        for (size_t i = 0; i < sg->n_sus; i++)
            sus[n_su++] = (struct named){sg->sus[i].name, sg->sus[i].pos};
        for (size_t i = 0; i < sg->n_sis; i++) {
            sis[n_si++] = (struct named){sg->sis[i].name, sg->sis[i].pos};
            for (size_t j = 0; j < sg->sis[i].n_csis; j++)
                csis[n_csi++] = (struct named){sg->sis[i].csis[j].name, sg->sis[i].csis[j].pos};
        }
    }
    /* Component names need no check: SU names are unique and carry no '/', the components of an
     * SU are keys of one map, and an explicit component's name is "SU/name". */
    names_check(l, sgs, c->n_sgs, "service group");
    names_check(l, sus, n_su, "service unit");
    names_check(l, sis, n_si, "service instance");
    names_check(l, csis, n_csi, "CSI");
    return 0;
}

static bool component_takes(const struct config_component *cc, const char *type) {
    if (!cc->csi_types)
        return true;
    for (size_t i = 0; i < cc->n_csi_types; i++)
        if (streq(cc->csi_types[i], type))
            return true;
    return false;
}

static int su_nodes_verify(struct loader *l, struct config *c) {
    if (c->n_nodes == 0)
        return 0; /* 'nodes' was wrong: reported already, and every check here would repeat it */
    for (size_t g = 0; g < c->n_sgs; g++)
        for (size_t i = 0; i < c->sgs[g].n_sus; i++) {
            struct config_su *su = &c->sgs[g].sus[i];
            if (su->node) {
                if (!config_find_node(c, su->node))
                    problem_pos(l, su->node_pos, "service unit '%s': node '%s' is not defined in 'nodes'", Q(su->name),
                                Q(su->node));
            } else if (su->node_pos.line > 0)
                continue; /* given but wrong: reported already */
            else if (c->n_nodes == 1) {
                su->node = strdup(c->nodes[0].name);
                if (!su->node)
                    return -ENOMEM;
            } else if (c->n_nodes > 1)
                problem_pos(l, su->pos, "service unit '%s' needs a 'node' (%zu nodes are defined)", Q(su->name),
                            c->n_nodes);
        }
    return 0;
}

static void sg_verify(struct loader *l, const struct config_sg *sg) {
    if (sg->redundancy == CONFIG_REDUNDANCY_2N && sg->n_sus == 1)
        problem_pos(l, sg->pos, "service group '%s': redundancy 2N needs at least 2 service units, found 1",
                    Q(sg->name));

    for (size_t i = 0; i < sg->n_sis; i++)
        for (size_t j = 0; j < sg->sis[i].n_csis; j++) {
            const struct config_csi *csi = &sg->sis[i].csis[j];
            if (!csi->type && csi->type_pos.line > 0)
                continue; /* given but wrong: reported already */
            for (size_t u = 0; u < sg->n_sus; u++) {
                const struct config_su *su = &sg->sus[u];
                bool taken = false;

                if (!charge(l, su->n_components + 1))
                    return;
                if (su->n_components == 0)
                    continue;
                if (!csi->type) {
                    if (su->n_components > 1) {
                        problem_pos(l, csi->pos,
                                    "CSI '%s' has no 'type', but service unit '%s' has %zu components: "
                                    "set 'type' to choose one",
                                    Q(csi->name), Q(su->name), su->n_components);
                        break;
                    }
                    continue;
                }
                for (size_t k = 0; k < su->n_components && !taken; k++)
                    taken = component_takes(&su->components[k], csi->type);
                if (!taken) {
                    problem_pos(l, csi->type_pos, "CSI '%s': no component of service unit '%s' takes type '%s'",
                                Q(csi->name), Q(su->name), Q(csi->type));
                    break;
                }
            }
        }
}

/* cdb-roles: one 2N group whose units sit on different nodes, each with a cdb-address, and a token. */
static void cdb_roles_verify(struct loader *l, const struct config *c) {
    const struct config_sg *first = NULL;
    for (size_t g = 0; g < c->n_sgs; g++) {
        const struct config_sg *sg = &c->sgs[g];
        if (!sg->cdb_roles)
            continue;
        if (first) {
            problem_pos(l, sg->cdb_roles_pos,
                        "service group '%s': 'cdb-roles' is already set by service group '%s' (a node has one role)",
                        Q(sg->name), Q(first->name));
            continue;
        }
        first = sg;
        if (!c->cdb.token_file)
            problem_pos(l, sg->cdb_roles_pos,
                        "service group '%s': 'cdb-roles' needs the nodes' shared token: set 'token-file' in 'cdb'",
                        Q(sg->name));
        for (size_t u = 0; u < sg->n_sus; u++) {
            const struct config_su *su = &sg->sus[u];
            const struct config_node *node = su->node ? config_find_node(c, su->node) : NULL;
            if (!node)
                continue; /* reported already */
            if (!node->cdb_address)
                problem_pos(l, su->pos, "service unit '%s' of '%s' (cdb-roles): node '%s' needs a 'cdb-address'",
                            Q(su->name), Q(sg->name), Q(node->name));
            for (size_t v = 0; v < u; v++)
                if (sg->sus[v].node && streq(sg->sus[v].node, su->node))
                    problem_pos(l, su->pos,
                                "service unit '%s' of '%s' (cdb-roles) is on node '%s' like '%s': the roles need "
                                "one unit per node",
                                Q(su->name), Q(sg->name), Q(su->node), Q(sg->sus[v].name));
        }
    }
}

/* Every pool process is a component of the description, in one pool only; 'tolerate' leaves one to recover from. */
static void pools_verify(struct loader *l, const struct config *c) {
    /* Object names ("service:<su>:<comp>:<service>" and the like) have at most 255 characters after the kind. */
    for (size_t g = 0; g < c->n_sgs; g++)
        for (size_t u = 0; u < c->sgs[g].n_sus; u++)
            for (size_t k = 0; k < c->sgs[g].sus[u].n_components; k++) {
                const struct config_component *cc = &c->sgs[g].sus[u].components[k];
                size_t len = strlen(cc->name), longest = len;
                for (size_t i = 0; i < cc->n_services; i++)
                    longest = MAX(longest, len + 1 + strlen(cc->services[i]));
                for (size_t i = 0; i < cc->n_devices; i++)
                    longest = MAX(longest, len + 1 + strlen(cc->devices[i]));
                if ((cc->n_services || cc->n_devices || config_find_pool_of(c, cc->name)) && longest > CONFIG_NAME_MAX)
                    problem_pos(l, cc->pos,
                                "component '%s': its service and device object names ('%s:' and a name) would be "
                                "longer than %d characters",
                                Q(cc->name), Q(cc->name), CONFIG_NAME_MAX);
            }
    for (size_t i = 0; i < c->n_pools && !l->too_big; i++) {
        const struct config_pool *pool = &c->pools[i];
        if (pool->n_processes > 0 && pool->tolerate >= pool->n_processes)
            problem_pos(l, pool->pos, "pool '%s': 'tolerate' (%u) must be below its number of processes (%zu)",
                        Q(pool->name), pool->tolerate, pool->n_processes);
        for (size_t k = 0; k < pool->n_processes; k++) {
            const char *p = pool->processes[k];
            if (!charge(l, c->n_sgs + i + k + 1))
                return;
            if (!config_find_component(c, p, NULL)) {
                problem_pos(l, pool->pos, "pool '%s': process '%s' is not a component of the description",
                            Q(pool->name), Q(p));
                continue;
            }
            for (size_t j = 0; j < k; j++)
                if (streq(pool->processes[j], p))
                    problem_pos(l, pool->pos, "pool '%s' lists process '%s' twice", Q(pool->name), Q(p));
            const struct config_pool *first = config_find_pool_of(c, p);
            if (first && first != pool && first < pool)
                problem_pos(l, pool->pos, "process '%s' is in pool '%s' and in pool '%s' (a process is in one pool)",
                            Q(p), Q(first->name), Q(pool->name));
        }
    }
}

static int description_verify(struct loader *l, struct config *c) {
    int r = su_nodes_verify(l, c);
    if (r < 0)
        return r;
    for (size_t g = 0; g < c->n_sgs && !l->too_big; g++)
        sg_verify(l, &c->sgs[g]);
    cdb_roles_verify(l, c);
    pools_verify(l, c);
    return names_verify(l, c);
}

/* ---- reading and YAML ------------------------------------------------------------------- */

static int file_read(struct loader *l, char **ret, size_t *ret_size) {
    _cleanup_close_ int fd = -1;
    _cleanup_free_ char *buf = NULL;
    size_t size = 0;
    struct stat st;

    fd = open(l->path, O_RDONLY | O_CLOEXEC | O_NOCTTY);
    if (fd < 0) {
        int r = -errno;
        problem_pos(l, (struct config_pos){0, 0}, "cannot open: %s", strerror(-r));
        return r;
    }
    if (fstat(fd, &st) < 0) {
        int r = -errno;
        problem_pos(l, (struct config_pos){0, 0}, "cannot read: %s", strerror(-r));
        return r;
    }
    if (S_ISDIR(st.st_mode)) {
        problem_pos(l, (struct config_pos){0, 0}, "is a directory, not a description file");
        return -EISDIR;
    }
    if (S_ISREG(st.st_mode) && st.st_size > CONFIG_FILE_MAX) {
        problem_pos(l, (struct config_pos){1, 1}, "the description is larger than 1 MiB (%lld bytes)",
                    (long long)st.st_size);
        return -EFBIG;
    }

    buf = malloc(CONFIG_FILE_MAX + 1);
    if (!buf)
        return -ENOMEM;
    while (size <= CONFIG_FILE_MAX) {
        ssize_t k = read(fd, buf + size, CONFIG_FILE_MAX + 1 - size);
        if (k < 0) {
            if (errno == EINTR)
                continue;
            int r = -errno;
            problem_pos(l, (struct config_pos){0, 0}, "cannot read: %s", strerror(-r));
            return r;
        }
        if (k == 0)
            break;
        size += (size_t)k;
    }
    if (size > CONFIG_FILE_MAX) {
        problem_pos(l, (struct config_pos){1, 1}, "the description is larger than 1 MiB");
        return -EFBIG;
    }
    *ret = TAKE_PTR(buf);
    *ret_size = size;
    return 0;
}

/* Reports libyaml's error with its position. */
static void yaml_problem(struct loader *l, const yaml_parser_t *p, const char *buf, size_t size) {
    struct config_pos pos = mark_pos(p->problem_mark);

    if (p->error == YAML_MEMORY_ERROR) {
        l->oom = true;
        return;
    }
    if (p->error == YAML_READER_ERROR) {
        /* The reader gives a byte offset, not a mark. */
        size_t off = MIN(p->problem_offset, size);
        pos = (struct config_pos){1, 1};
        for (size_t i = 0; i < off; i++)
            if (buf[i] == '\n')
                pos = (struct config_pos){pos.line + 1, 1};
            else if (((unsigned char)buf[i] & 0xc0) != 0x80)
                pos.column++;
        if (p->problem_value != -1)
            problem_pos(l, pos, "invalid YAML: %s (byte 0x%02x)", p->problem ? p->problem : "cannot read",
                        (unsigned)p->problem_value & 0xff);
        else
            problem_pos(l, pos, "invalid YAML: %s", p->problem ? p->problem : "cannot read");
        return;
    }
    if (p->context) {
        struct config_pos cp = mark_pos(p->context_mark);
        problem_pos(l, pos, "invalid YAML: %s (%s at line %u column %u)", p->problem ? p->problem : "error", p->context,
                    cp.line, cp.column);
    } else
        problem_pos(l, pos, "invalid YAML: %s", p->problem ? p->problem : "error");
}

/*
 * Walks the event stream once before the document is built: syntax errors, nesting depth,
 * anchors and aliases, the number of documents.  Returns true when the document may be loaded.
 */
static bool yaml_precheck(struct loader *l, const char *buf, size_t size) {
    yaml_parser_t p;
    unsigned depth = 0, anchors = 0, aliases = 0, documents = 0;
    bool ok = false, done = false;

    if (!yaml_parser_initialize(&p)) {
        l->oom = true;
        return false;
    }
    yaml_parser_set_input_string(&p, (const unsigned char *)buf, size);
    while (!done) {
        yaml_event_t ev;
        const char *anchor = NULL;

        if (!yaml_parser_parse(&p, &ev)) {
            yaml_problem(l, &p, buf, size);
            break;
        }
        switch (ev.type) {
        case YAML_STREAM_END_EVENT:
            ok = done = true;
            break;
        case YAML_DOCUMENT_START_EVENT:
            if (++documents > 1) {
                problem_pos(l, mark_pos(ev.start_mark), "only one YAML document is allowed");
                done = true;
            }
            break;
        case YAML_SEQUENCE_START_EVENT:
        case YAML_MAPPING_START_EVENT:
            anchor = ev.type == YAML_SEQUENCE_START_EVENT ? (const char *)ev.data.sequence_start.anchor
                                                          : (const char *)ev.data.mapping_start.anchor;
            if (++depth > CONFIG_DEPTH_MAX) {
                problem_pos(l, mark_pos(ev.start_mark), "nesting deeper than %d levels", CONFIG_DEPTH_MAX);
                done = true;
            }
            break;
        case YAML_SEQUENCE_END_EVENT:
        case YAML_MAPPING_END_EVENT:
            depth--;
            break;
        case YAML_SCALAR_EVENT:
            anchor = (const char *)ev.data.scalar.anchor;
            break;
        case YAML_ALIAS_EVENT:
            if (++aliases > CONFIG_ALIASES_MAX) {
                problem_pos(l, mark_pos(ev.start_mark), "more than %d aliases", CONFIG_ALIASES_MAX);
                done = true;
            }
            break;
        default:
            break;
        }
        if (anchor && ++anchors > CONFIG_ANCHORS_MAX) {
            problem_pos(l, mark_pos(ev.start_mark), "more than %d anchors", CONFIG_ANCHORS_MAX);
            done = true;
        }
        yaml_event_delete(&ev);
    }
    yaml_parser_delete(&p);
    return ok;
}

static int problem_cmp(const void *a, const void *b) {
    const struct problem *x = a, *y = b;
    if (x->line != y->line)
        return x->line < y->line ? -1 : 1;
    if (x->column != y->column)
        return x->column < y->column ? -1 : 1;
    return x->seq < y->seq ? -1 : x->seq > y->seq;
}

static int problem_msg_cmp(const void *a, const void *b) {
    const struct problem *x = a, *y = b;
    if (x->line != y->line || x->column != y->column)
        return problem_cmp(a, b);
    int c = strcmp(x->msg, y->msg);
    return c != 0 ? c : problem_cmp(a, b);
}

/*
 * Sorts the problems by position, in the order they were found within one position, and drops
 * repeats: a setting inherited by many components, or reached through an alias many times, is
 * reported once.
 */
static void problems_sort(struct loader *l) {
    size_t k = 0;

    if (l->n_problems == 0)
        return;
    qsort(l->problems, l->n_problems, sizeof(*l->problems), problem_msg_cmp);
    for (size_t i = 0; i < l->n_problems; i++) {
        struct problem *p = &l->problems[i];
        if (k > 0 && l->problems[k - 1].line == p->line && l->problems[k - 1].column == p->column &&
            streq(l->problems[k - 1].msg, p->msg)) {
            free(p->msg);
            continue;
        }
        l->problems[k++] = *p;
    }
    l->n_problems = k;
    qsort(l->problems, l->n_problems, sizeof(*l->problems), problem_cmp);
}

/* Appends the problems to *errors, one line each. */
static int problems_format(struct loader *l, char **errors) {
    size_t total = 0, old = *errors ? strlen(*errors) : 0;

    for (size_t i = 0; i < l->n_problems; i++)
        total += strlen(l->path) + strlen(l->problems[i].msg) + 32;
    char *s = realloc(*errors, old + total + 1);
    if (!s)
        return -ENOMEM;
    *errors = s;
    s += old;
    *s = 0;
    for (size_t i = 0; i < l->n_problems; i++) {
        const struct problem *p = &l->problems[i];
        if (p->line == 0)
            s += sprintf(s, "%s: %s\n", l->path, p->msg);
        else
            s += sprintf(s, "%s:%u:%u: %s\n", l->path, p->line, p->column, p->msg);
    }
    return 0;
}

static void loader_done(struct loader *l) {
    for (size_t i = 0; i < l->n_problems; i++)
        free(l->problems[i].msg);
    free(l->problems);
}

static int config_parse(struct loader *l, struct config *c) {
    _cleanup_free_ char *buf = NULL;
    size_t size = 0;
    int r;

    r = file_read(l, &buf, &size);
    if (r < 0)
        return r;
    if (size == 0) {
        problem_pos(l, (struct config_pos){1, 1}, "the description is empty");
        return 0;
    }
    if (!yaml_precheck(l, buf, size))
        return 0;

    yaml_parser_t p;
    yaml_document_t doc;
    if (!yaml_parser_initialize(&p))
        return -ENOMEM;
    yaml_parser_set_input_string(&p, (const unsigned char *)buf, size);
    if (!yaml_parser_load(&p, &doc)) {
        yaml_problem(l, &p, buf, size);
        yaml_parser_delete(&p);
        return 0;
    }
    yaml_parser_delete(&p);

    l->doc = &doc;
    yaml_node_t *root = yaml_document_get_root_node(&doc);
    if (!root || is_null(root))
        problem_pos(l, (struct config_pos){1, 1}, "the description is empty");
    else {
        r = description_parse(l, root, c);
        if (r >= 0 && !l->too_big)
            r = description_verify(l, c);
    }
    l->doc = NULL;
    yaml_document_delete(&doc);
    return r < 0 ? r : 0;
}

int config_load(const char *path, struct config **ret, char **errors) {
    _cleanup_(config_freep) struct config *c = NULL;
    _cleanup_free_ char *dir = NULL, *basedir = NULL;
    struct loader l = {.path = path};
    int r;

    assert_return(path && *path, -EINVAL);
    assert_return(ret, -EINVAL);

    dir = strdup(path);
    if (!dir)
        return -ENOMEM;
    char *slash = strrchr(dir, '/');
    if (slash == dir)
        dir[1] = 0;
    else if (slash)
        *slash = 0;
    else
        strcpy(dir, ".");
    basedir = realpath(dir, NULL);
    if (!basedir) {
        r = -errno;
        if (r == -ENOMEM)
            return r;
        /* Reported by file_read(); the directory is only needed once the file was read. */
        basedir = strdup(dir);
        if (!basedir)
            return -ENOMEM;
    }
    l.basedir = basedir;

    c = calloc(1, sizeof(*c));
    if (!c)
        return -ENOMEM;
    c->path = strdup(path);
    c->basedir = strdup(basedir);
    if (!c->path || !c->basedir)
        return -ENOMEM;

    r = config_parse(&l, c);
    if (r >= 0 && l.oom)
        r = -ENOMEM;
    if (r >= 0 && l.n_problems > 0)
        r = -EINVAL;
    problems_sort(&l);
    if (l.n_problems > 0 && errors && problems_format(&l, errors) < 0)
        r = -ENOMEM;
    loader_done(&l);
    if (r < 0)
        return r;

    *ret = TAKE_PTR(c);
    return 0;
}
