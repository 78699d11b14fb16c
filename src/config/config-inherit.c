/* SPDX-License-Identifier: MIT */
/* Component settings: built-in defaults, then each layer of the description, later winning setting by setting. */
#include <assert.h>
#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "config-internal.h"

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
#define NUMERIC_INSTANTIATE 7
#define NUMERIC_TERMINATE 11

enum {
    CK_COMMAND,
    CK_ARGS,
    CK_ENV,
    CK_WORKDIR,
    CK_CSI_TYPES,
    CK_SERVICES,
    CK_DEVICES,
    CK_TYPE,
    CK_TERMINATE,
    CK_CLEANUP,
    CK_PIDFILE,
    CK_PROXY,
    CK_RECOVERY,
    CK_STDOUT,
    CK_MONITOR, /* CK_MONITOR..CK_GROUP: checked by config_ext_component() */
    CK_AGENT,
    CK_PARAMS,
    CK_USER,
    CK_GROUP,
    CK_RESTART,
    CK_HEALTH_CHECK,
    CK_TIMEOUTS,
    _CK_KEYS,                                             /* the keys of a component map end here */
    CK_NUMERIC = _CK_KEYS,                                /* then numeric_fields[i] is setting CK_NUMERIC + i */
    CK_HC_KEYS = CK_NUMERIC + ELEMENTSOF(numeric_fields), /* health-check: keys */
    _CK_MAX,
};

static const char *const component_keys[] = {
    [CK_COMMAND] = "command",
    [CK_ARGS] = "args",
    [CK_ENV] = "env",
    [CK_WORKDIR] = "workdir",
    [CK_CSI_TYPES] = "csi-types",
    [CK_SERVICES] = "services",
    [CK_DEVICES] = "devices",
    [CK_TYPE] = "type",
    [CK_TERMINATE] = "terminate",
    [CK_CLEANUP] = "cleanup",
    [CK_PIDFILE] = "pidfile",
    [CK_PROXY] = "proxy",
    [CK_RECOVERY] = "recovery",
    [CK_RESTART] = "restart",
    [CK_HEALTH_CHECK] = "health-check",
    [CK_TIMEOUTS] = "timeouts",
    [CK_MONITOR] = "monitor",
    [CK_AGENT] = "agent",
    [CK_PARAMS] = "params",
    [CK_USER] = "user",
    [CK_GROUP] = "group",
    [CK_STDOUT] = "stdout",
    [_CK_KEYS] = NULL,
};

static const char *const comp_type_names[] = {
    [CONFIG_COMP_SA_AWARE] = "sa-aware",
    [CONFIG_COMP_NON_SA_AWARE] = "non-sa-aware",
    [CONFIG_COMP_OCF] = "ocf",
    [CONFIG_COMP_PROXIED] = "proxied",
};

/* The type a 'type' value names; -1 for none. */
static int comp_type_of(const char *t) {
    for (size_t i = 0; i < ELEMENTSOF(comp_type_names); i++)
        if (streq(t, comp_type_names[i]))
            return (int)i;
    return -1;
}

const char *config_comp_type_to_string(enum config_comp_type t) {
    return t < ELEMENTSOF(comp_type_names) ? comp_type_names[t] : "?";
}

/* struct config_layer is sized in config-internal.h, which does not see the tables above. */
static_assert(_CK_MAX == CONFIG_LAYER_SETTINGS, "CONFIG_LAYER_SETTINGS must count the component settings");

static bool env_name_is_valid(const char *s) {
    return *s && !strchr(s, '=');
}

/* health-check 'keys': a list of distinct names. */
static void hc_keys_check(struct loader *l, yaml_node_t *v, struct config_layer *layer) {
    yaml_node_item_t *items;
    size_t n_items;
    bool ok = config_yaml_seq(l, v, "'keys'", &items, &n_items);
    for (size_t i = 0; ok && i < n_items; i++) {
        yaml_node_t *item = config_yaml_node(l, items[i]);
        const char *name = item ? config_yaml_string(l, item, "each item of 'keys'") : NULL;
        if (!name)
            ok = false;
        for (size_t j = 0; name && j < i; j++) {
            yaml_node_t *prev = config_yaml_node(l, items[j]);
            if (prev && prev->type == YAML_SCALAR_NODE && streq((const char *)prev->data.scalar.value, name)) {
                config_diag(l, item, "health-check key '%s' is listed twice", Q(name));
                ok = false;
            }
        }
    }
    layer->v[CK_HC_KEYS] = v;
    layer->bad[CK_HC_KEYS] = !ok;
}

/* Reads restart, health-check or timeouts (sections[section]) into layer, key by key. */
static int layer_numeric(struct loader *l, yaml_node_t *n, size_t section, struct config_layer *layer) {
    static const char *const hc_keys[] = {"period", "timeout", "keys", NULL};
    yaml_node_t *keys[6], *values[6];
    size_t first = sections[section].first;
    bool hc = streq(sections[section].name, "health-check");
    char what[64];

    snprintf(what, sizeof(what), "'%s'", sections[section].name);
    int r = config_yaml_fields(l, n, what, hc ? hc_keys : sections[section].keys, keys, values);
    if (r <= 0)
        return r;
    if (hc && values[2])
        hc_keys_check(l, values[2], layer);
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
            ok = config_yaml_uint(v, &u);
            if (!ok)
                config_diag(l, v, "'%s' must be a non-negative integer (without quotes), got %s", key, DESCRIBE(v));
        } else {
            ok = config_yaml_duration(v, &d);
            if (!ok)
                config_diag(l, v, "'%s' must be a duration such as 500ms, 2s or 1m, got %s", key, DESCRIBE(v));
            else if (f->type == VALUE_POSITIVE && d == 0) {
                config_diag(l, v, "'%s' must be longer than 0", key);
                ok = false;
            }
        }
        layer->v[CK_NUMERIC + first + i] = v;
        layer->bad[CK_NUMERIC + first + i] = !ok;
    }
    return 0;
}

/* Reads one layer of component settings from n (NULL: an empty layer). */
int config_inherit_layer(struct loader *l, yaml_node_t *n, const char *what, struct config_layer *ret) {
    yaml_node_t *keys[_CK_KEYS], *values[_CK_KEYS];
    struct config_layer layer = {};
    int r;

    *ret = layer;
    if (!n)
        return 0;
    r = config_yaml_fields(l, n, what, component_keys, keys, values);
    if (r <= 0)
        return r;

    for (size_t k = CK_COMMAND; k < CK_RESTART; k++) {
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
            ok = config_yaml_string(l, v, "'command'");
            break;
        case CK_WORKDIR:
            ok = config_yaml_string(l, v, "'workdir'");
            break;
        case CK_PIDFILE:
            ok = config_yaml_is_null(v) || config_yaml_string(l, v, "'pidfile'");
            break;
        case CK_PROXY:
            ok = config_yaml_string(l, v, "'proxy'");
            break;
        case CK_STDOUT:
            ok = config_yaml_string(l, v, "'stdout' (journal, inherit or a file)");
            break;
        case CK_RECOVERY: {
            enum config_recovery rec;
            ok = config_recovery_parse(l, v, &rec);
            break;
        }
        case CK_TYPE: {
            const char *t = config_yaml_scalar(l, v, "'type'");
            ok = t && comp_type_of(t) >= 0;
            if (t && !ok)
                config_diag(l, v, "'type' must be sa-aware, non-sa-aware, ocf or proxied, got %s", DESCRIBE(v));
            break;
        }
        case CK_TERMINATE:
        case CK_CLEANUP:
            if (config_yaml_is_null(v))
                break; /* none: a unit drops what its group's template gives */
            snprintf(item_what, sizeof(item_what), "'%s'", component_keys[k]);
            ok = config_yaml_seq(l, v, item_what, &items, &n_items);
            if (ok && n_items == 0) {
                config_diag(l, v, "'%s' must name a command: [COMMAND, ARGS...]", component_keys[k]);
                ok = false;
            }
            for (size_t i = 0; ok && i < n_items; i++) {
                yaml_node_t *item = config_yaml_node(l, items[i]);
                snprintf(item_what, sizeof(item_what), "each item of '%s'", component_keys[k]);
                if (!item ||
                    !(i == 0 ? config_yaml_string(l, item, item_what) : config_yaml_scalar(l, item, item_what)))
                    ok = false;
            }
            break;
        case CK_ARGS:
            ok = config_yaml_seq(l, v, "'args'", &items, &n_items);
            for (size_t i = 0; i < n_items; i++) {
                yaml_node_t *item = config_yaml_node(l, items[i]);
                if (!item || !config_yaml_scalar(l, item, item_what))
                    ok = false;
            }
            break;
        case CK_CSI_TYPES:
            ok = config_yaml_seq(l, v, "'csi-types'", &items, &n_items);
            if (ok && n_items == 0) {
                config_diag(l, v, "'csi-types' must not be empty (leave it out to take any CSI type)");
                ok = false;
            }
            for (size_t i = 0; i < n_items; i++) {
                yaml_node_t *item = config_yaml_node(l, items[i]);
                if (!item || !config_yaml_name(l, item, "CSI type"))
                    ok = false;
            }
            break;
        case CK_SERVICES:
        case CK_DEVICES: {
            const char *kind = k == CK_SERVICES ? "service" : "device";
            snprintf(item_what, sizeof(item_what), "'%s'", component_keys[k]);
            ok = config_yaml_seq(l, v, item_what, &items, &n_items);
            for (size_t i = 0; i < n_items; i++) {
                yaml_node_t *item = config_yaml_node(l, items[i]);
                const char *name = item ? config_yaml_name(l, item, kind) : NULL;
                if (!name)
                    ok = false;
                for (size_t j = 0; name && j < i; j++) {
                    yaml_node_t *prev = config_yaml_node(l, items[j]);
                    if (prev && prev->type == YAML_SCALAR_NODE && streq((const char *)prev->data.scalar.value, name)) {
                        config_diag(l, item, "%s '%s' is listed twice", kind, Q(name));
                        ok = false;
                        break;
                    }
                }
            }
            break;
        }
        case CK_ENV: {
            _cleanup_free_ struct map_entry *e = NULL;
            size_t n_e;
            r = config_yaml_map(l, v, "'env'", &e, &n_e);
            if (r < 0)
                return r;
            ok = r > 0;
            for (size_t i = 0; i < n_e; i++) {
                if (!env_name_is_valid(e[i].key)) {
                    config_diag(l, e[i].key_node, "invalid environment variable name '%s'", Q(e[i].key));
                    ok = false;
                }
                char vwhat[QUOTE_MAX + 32];
                snprintf(vwhat, sizeof(vwhat), "environment variable '%s'", Q(e[i].key));
                if (!config_yaml_scalar(l, e[i].value, vwhat))
                    ok = false;
            }
            break;
        }
        default: /* CK_MONITOR..CK_GROUP */
            break;
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

int config_command_list(struct loader *l, yaml_node_t *n, const char *key, char ***ret, size_t *ret_n) {
    yaml_node_item_t *items;
    size_t n_items;
    char what[32];

    if (!config_yaml_seq(l, n, key, &items, &n_items) || n_items == 0)
        return 0;
    char **v = calloc(n_items + 1, sizeof(char *));
    if (!v)
        return -ENOMEM;
    snprintf(what, sizeof(what), "'%s' command", key);
    for (size_t i = 0; i < n_items; i++) {
        yaml_node_t *item = config_yaml_node(l, items[i]);
        const char *s = (const char *)item->data.scalar.value;
        int r;
        if (i == 0)
            r = config_path_command(l, item, what, s, &v[0]);
        else
            r = (v[i] = config_diag_strdup(l, s)) ? 0 : -ENOMEM;
        if (r < 0 || !v[i]) {
            config_strv_free(v, n_items);
            return r; /* 0: the command does not resolve (reported) */
        }
    }
    *ret = v;
    *ret_n = n_items;
    return 0;
}

/* proxy: given for a proxied component, and for no other. */
static int component_proxy(struct loader *l, const struct config_layer *m, struct config_component *c) {
    yaml_node_t *v = m->v[CK_PROXY];
    if (c->type != CONFIG_COMP_PROXIED) {
        if (v && !m->bad[CK_PROXY])
            config_diag(l, v, "'proxy' is for proxied components only (set 'type: proxied')");
        return 0;
    }
    if (!v) {
        config_diag_at(l, c->pos, "component '%s' is proxied and has no 'proxy' (the component that acts for it)",
                       Q(c->name));
        return 0;
    }
    if (m->bad[CK_PROXY])
        return 0;
    c->proxy_pos = config_yaml_pos(v);
    return (c->proxy = config_diag_strdup(l, (const char *)v->data.scalar.value)) ? 0 : -ENOMEM;
}

/* stdout: journal, inherit (the default) or a file, for a component halod starts a process of. */
static int component_output(struct loader *l, const struct config_layer *m, struct config_component *c) {
    yaml_node_t *v = m->v[CK_STDOUT];
    if (!v || m->bad[CK_STDOUT])
        return 0;
    if (c->type == CONFIG_COMP_OCF || c->type == CONFIG_COMP_PROXIED) {
        config_diag(l, v, "'stdout' is for sa-aware and non-sa-aware components only%s",
                    c->type == CONFIG_COMP_OCF ? " (an OCF agent's output is kept for its failure message)"
                                               : " (a proxied component has no process of its own)");
        return 0;
    }
    const char *s = (const char *)v->data.scalar.value;
    if (streq(s, "journal"))
        c->output = CONFIG_OUTPUT_JOURNAL;
    else if (streq(s, "inherit"))
        c->output = CONFIG_OUTPUT_INHERIT;
    else {
        c->output = CONFIG_OUTPUT_FILE;
        return config_path_output(l, v, s, &c->output_file);
    }
    return 0;
}

/* type, and the settings only a non-SA-aware or a proxied component takes. */
static int component_type(struct loader *l, const struct config_layer *m, struct config_component *c) {
    static const size_t nsa_keys[] = {CK_TERMINATE, CK_CLEANUP, CK_PIDFILE};
    int r = component_proxy(l, m, c);

    for (size_t i = 0; i < ELEMENTSOF(nsa_keys) && r >= 0; i++) {
        size_t k = nsa_keys[i];
        yaml_node_t *v = m->v[k];
        if (!v || m->bad[k] || config_yaml_is_null(v))
            continue;
        if (c->type != CONFIG_COMP_NON_SA_AWARE)
            config_diag(l, v, "'%s' is for non-sa-aware components only (set 'type: non-sa-aware')%s",
                        component_keys[k],
                        c->type == CONFIG_COMP_OCF ? ": an ocf component's agent starts and stops it" : "");
        else if (k == CK_PIDFILE)
            r = (c->pidfile = config_path_resolve(l, (const char *)v->data.scalar.value)) ? 0 : -ENOMEM;
        else if (k == CK_TERMINATE)
            r = config_command_list(l, v, component_keys[k], &c->terminate, &c->n_terminate);
        else
            r = config_command_list(l, v, component_keys[k], &c->cleanup, &c->n_cleanup);
    }
    return r;
}

/* Builds one component from its layers (later wins, setting by setting). */
int config_inherit_component(struct loader *l, const struct config_layer *const layers[], size_t n_layers,
                             const char *name, struct config_pos pos, struct config_component *c) {
    struct config_layer m = {};
    int r;

    for (size_t i = 0; i < n_layers; i++)
        for (size_t k = 0; k < _CK_MAX; k++)
            if (layers[i] && layers[i]->v[k]) {
                m.v[k] = layers[i]->v[k];
                m.bad[k] = layers[i]->bad[k];
            }

    if (!config_diag_charge(l, COST_NODE * _CK_MAX))
        return 0;
    c->pos = pos;
    c->name = config_diag_strdup(l, name);
    if (!c->name)
        return -ENOMEM;

    for (size_t i = 0; i < ELEMENTSOF(numeric_fields); i++) {
        const struct numeric_field *f = &numeric_fields[i];
        yaml_node_t *v = m.bad[CK_NUMERIC + i] ? NULL : m.v[CK_NUMERIC + i];
        void *p = (uint8_t *)c + f->offset;
        if (f->type == VALUE_COUNT) {
            unsigned u = (unsigned)f->def;
            if (v)
                (void)config_yaml_uint(v, &u);
            *(unsigned *)p = u;
        } else {
            usec_t d = f->def;
            if (v)
                (void)config_yaml_duration(v, &d);
            *(usec_t *)p = d;
        }
    }
    if (c->restart.delay > c->restart.delay_max) {
        /* At the effective 'delay' if it was given, else at 'delay-max' (both built-in is fine). */
        yaml_node_t *v = m.v[CK_NUMERIC + NUMERIC_RESTART_DELAY];
        if (!v || m.bad[CK_NUMERIC + NUMERIC_RESTART_DELAY])
            v = m.v[CK_NUMERIC + NUMERIC_RESTART_DELAY_MAX];
        char a[32], b[32];
        config_diag_at(l, v ? config_yaml_pos(v) : pos, "restart 'delay' (%s) is longer than 'delay-max' (%s)",
                       format_duration(a, sizeof(a), c->restart.delay),
                       format_duration(b, sizeof(b), c->restart.delay_max));
    }

    if (m.v[CK_TYPE] && !m.bad[CK_TYPE])
        c->type = (enum config_comp_type)comp_type_of((const char *)m.v[CK_TYPE]->data.scalar.value);
    c->instantiate_given = m.v[CK_NUMERIC + NUMERIC_INSTANTIATE] && !m.bad[CK_NUMERIC + NUMERIC_INSTANTIATE];
    c->terminate_given = m.v[CK_NUMERIC + NUMERIC_TERMINATE] && !m.bad[CK_NUMERIC + NUMERIC_TERMINATE];
    if (c->type == CONFIG_COMP_PROXIED) {
        if (m.v[CK_COMMAND])
            config_diag(l, m.v[CK_COMMAND],
                        "component '%s' is proxied: it has no 'command' (its proxy instantiates it)", Q(name));
    } else if (c->type == CONFIG_COMP_OCF) {
        /* Its agent is its command. */
        if (m.v[CK_COMMAND] || m.v[CK_ARGS])
            config_diag(l, m.v[CK_COMMAND] ?: m.v[CK_ARGS],
                        "'%s' is not for ocf components: halod runs their 'agent' with its actions",
                        m.v[CK_COMMAND] ? "command" : "args");
    } else if (!m.v[CK_COMMAND])
        config_diag_at(l, pos, "component '%s' has no 'command'", Q(name));
    else if (!m.bad[CK_COMMAND]) {
        r = config_path_command(l, m.v[CK_COMMAND], "command", (const char *)m.v[CK_COMMAND]->data.scalar.value,
                                &c->command);
        if (r < 0)
            return r;
    }

    if (m.v[CK_ARGS] && !m.bad[CK_ARGS])
        r = config_yaml_strv(l, m.v[CK_ARGS], &c->args, &c->n_args);
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
        r = config_yaml_kv(l, layers[i]->v[CK_ENV], "'env'", &add, &n_add);
        if (r >= 0)
            r = kv_merge(&c->env, &c->n_env, add, n_add);
        free(add);
        if (r < 0)
            return r;
    }

    if (m.v[CK_WORKDIR] && !m.bad[CK_WORKDIR])
        r = config_path_workdir(l, m.v[CK_WORKDIR], (const char *)m.v[CK_WORKDIR]->data.scalar.value, &c->workdir);
    else
        r = (c->workdir = strdup(l->basedir)) ? 0 : -ENOMEM;
    if (r < 0)
        return r;

    if (m.v[CK_CSI_TYPES] && !m.bad[CK_CSI_TYPES]) {
        r = config_yaml_strv(l, m.v[CK_CSI_TYPES], &c->csi_types, &c->n_csi_types);
        if (r < 0)
            return r;
    }
    if (m.v[CK_SERVICES] && !m.bad[CK_SERVICES]) {
        r = config_yaml_strv(l, m.v[CK_SERVICES], &c->services, &c->n_services);
        if (r < 0)
            return r;
    }
    if (m.v[CK_DEVICES] && !m.bad[CK_DEVICES]) {
        r = config_yaml_strv(l, m.v[CK_DEVICES], &c->devices, &c->n_devices);
        if (r < 0)
            return r;
    }
    if (m.v[CK_RECOVERY] && !m.bad[CK_RECOVERY])
        (void)config_recovery_parse(l, m.v[CK_RECOVERY], &c->recovery);
    if (m.v[CK_HC_KEYS] && !m.bad[CK_HC_KEYS]) {
        r = config_yaml_strv(l, m.v[CK_HC_KEYS], &c->hc_keys, &c->n_hc_keys);
        if (r < 0)
            return r;
    }
    r = component_type(l, &m, c);
    if (r >= 0)
        r = component_output(l, &m, c);
    if (r < 0)
        return r;
    if (c->n_hc_keys > 0 && c->type != CONFIG_COMP_SA_AWARE)
        config_diag(l, m.v[CK_HC_KEYS],
                    "health-check 'keys' are for sa-aware components only (halod asks the "
                    "component through libhalo)");
    return config_ext_component(l, &m.v[CK_MONITOR], c);
}
