/* SPDX-License-Identifier: MIT */
/*
 * What changed between two descriptions, for a reload: their YAML trees are compared key by
 * key, so that a change is named by the key the operator edited (and its line), whatever the
 * defaults and templates it feeds.  Maps compare by key (their order is not a change), lists
 * item by item, values by their text.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <yaml.h>

#include "config-internal.h"

/* Deeper than any description halod reads; a difference below is reported at this depth. */
#define DIFF_DEPTH_MAX 32

struct walk {
    yaml_document_t *old, *new;
    const char *path[DIFF_DEPTH_MAX];
    size_t depth;
    struct config_diff *d;
    int error;
};

static bool scalar_eq(const yaml_node_t *a, const yaml_node_t *b) {
    return a->data.scalar.length == b->data.scalar.length &&
           memcmp(a->data.scalar.value, b->data.scalar.value, a->data.scalar.length) == 0;
}

static const char *scalar_text(const yaml_node_t *n) {
    return n && n->type == YAML_SCALAR_NODE ? (const char *)n->data.scalar.value : NULL;
}

/* Whether path (6 segments or more) starts with service-groups.SG.service-instances.SI.csis.CSI. */
static bool path_is_csi(const char *const *path) {
    return streq(path[0], "service-groups") && streq(path[2], "service-instances") && streq(path[4], "csis");
}

/* Whether path (depth segments) is service-groups.SG.service-instances.SI.csis.CSI.attributes[...]:
 * a change there is carried out by a CSI set. */
static bool path_is_csi_attributes(const char *const *path, size_t depth) {
    return depth >= 7 && path_is_csi(path) && streq(path[6], "attributes");
}

/* Whether path (depth segments) is a component's setting: COMP.KEY... where COMP is
 * service-groups.SG.component, ...service-units.SU.component or ...service-units.SU.components.C. */
static bool path_is_comp_setting(const char *const *path, size_t depth) {
    if (depth < 4 || !streq(path[0], "service-groups"))
        return false;
    if (streq(path[2], "component"))
        return true;
    return streq(path[2], "service-units") &&
           ((depth >= 6 && streq(path[4], "component")) || (depth >= 7 && streq(path[4], "components")));
}

/* Whether path (depth segments) is a group's setting: service-groups.SG.KEY..., KEY none of its maps. */
static bool path_is_group_setting(const char *const *path, size_t depth) {
    return depth >= 3 && streq(path[0], "service-groups") && !streq(path[2], "component") &&
           !streq(path[2], "service-units") && !streq(path[2], "service-instances");
}

/* Whether path (depth segments) is under defaults, or is a group's or unit's component template or
 * under one (service-groups.SG.component..., service-groups.SG.service-units.SU.component...). */
static bool path_is_template(const char *const *path, size_t depth) {
    if (depth >= 1 && streq(path[0], "defaults"))
        return true;
    if (depth < 3 || !streq(path[0], "service-groups"))
        return false;
    return streq(path[2], "component") ||
           (depth >= 5 && streq(path[2], "service-units") && streq(path[4], "component"));
}

static void add(struct walk *w, enum config_change_kind kind, const yaml_node_t *at) {
    struct config_diff *d = w->d;
    if (w->error < 0)
        return;
    if (d->n_changes >= CONFIG_DIFF_MAX) {
        d->truncated = true;
        return;
    }
    size_t len = 0;
    for (size_t i = 0; i < w->depth; i++)
        len += strlen(w->path[i]) + 1;
    char *key = malloc(len + 1);
    if (!key) {
        w->error = -ENOMEM;
        return;
    }
    char *p = key;
    *p = '\0';
    for (size_t i = 0; i < w->depth; i++) {
        /* A list item's segment ("[2]") follows its list without a dot. */
        if (i > 0 && w->path[i][0] != '[')
            *p++ = '.';
        p = stpcpy(p, w->path[i]);
    }
    struct config_change *c = &d->changes[d->n_changes++];
    *c = (struct config_change){.kind = kind, .key = key, .pos = config_yaml_pos(at)};
    if (w->depth == 2 && streq(w->path[0], "service-groups") && kind != CONFIG_CHANGE_CHANGED) {
        c->service_group = true;
        if (!(c->sg = strdup(w->path[1])))
            w->error = -ENOMEM;
    } else if (w->depth == 4 && streq(w->path[0], "service-groups") && kind != CONFIG_CHANGE_CHANGED &&
               (streq(w->path[2], "service-instances") || streq(w->path[2], "service-units"))) {
        c->whole_si = streq(w->path[2], "service-instances");
        c->whole_su = !c->whole_si;
        c->sg = strdup(w->path[1]);
        char **name = c->whole_si ? &c->si : &c->su;
        *name = strdup(w->path[3]);
        if (!c->sg || !*name)
            w->error = -ENOMEM;
    } else if (w->depth == 6 && streq(w->path[0], "service-groups") && streq(w->path[2], "service-units") &&
               streq(w->path[4], "components") && kind != CONFIG_CHANGE_CHANGED) {
        c->whole_comp = true;
        c->sg = strdup(w->path[1]);
        c->su = strdup(w->path[3]);
        if (asprintf(&c->comp, "%s/%s", w->path[3], w->path[5]) < 0) /* its name, as config-parse-sg.c makes it */
            c->comp = NULL;
        if (!c->sg || !c->su || !c->comp)
            w->error = -ENOMEM;
    } else if (path_is_comp_setting(w->path, w->depth) || path_is_group_setting(w->path, w->depth)) {
        c->component_setting = path_is_comp_setting(w->path, w->depth);
        c->group_setting = !c->component_setting;
        if (!(c->sg = strdup(w->path[1])))
            w->error = -ENOMEM;
    } else if (w->depth == 5 && streq(w->path[0], "service-groups") && streq(w->path[2], "service-units") &&
               streq(w->path[4], "node")) {
        c->unit_node = true;
        c->sg = strdup(w->path[1]);
        c->su = strdup(w->path[3]);
        if (!c->sg || !c->su)
            w->error = -ENOMEM;
    } else if (path_is_template(w->path, w->depth)) {
        c->template = true;
    } else if (path_is_csi_attributes(w->path, w->depth) ||
               (w->depth == 6 && path_is_csi(w->path) && kind != CONFIG_CHANGE_CHANGED)) {
        c->csi_attributes = w->depth > 6;
        c->whole_csi = w->depth == 6;
        c->sg = strdup(w->path[1]);
        c->si = strdup(w->path[3]);
        c->csi = strdup(w->path[5]);
        if (!c->sg || !c->si || !c->csi)
            w->error = -ENOMEM;
    }
}

static void walk(struct walk *w, yaml_node_t *a, yaml_node_t *b);

static bool push(struct walk *w, const char *segment) {
    if (w->depth >= DIFF_DEPTH_MAX)
        return false;
    w->path[w->depth++] = segment;
    return true;
}

static yaml_node_t *map_get(yaml_document_t *doc, const yaml_node_t *map, const yaml_node_t *key) {
    for (yaml_node_pair_t *p = map->data.mapping.pairs.start; p < map->data.mapping.pairs.top; p++) {
        yaml_node_t *k = yaml_document_get_node(doc, p->key);
        if (k && k->type == YAML_SCALAR_NODE && scalar_eq(k, key))
            return yaml_document_get_node(doc, p->value);
    }
    return NULL;
}

/* Every key of a that b lacks is kind (removed: a is the old map; added: the new one). */
static void map_missing(struct walk *w, yaml_document_t *da, const yaml_node_t *a, yaml_document_t *db,
                        const yaml_node_t *b, enum config_change_kind kind) {
    for (yaml_node_pair_t *p = a->data.mapping.pairs.start; p < a->data.mapping.pairs.top; p++) {
        yaml_node_t *k = yaml_document_get_node(da, p->key);
        if (!k || k->type != YAML_SCALAR_NODE || map_get(db, b, k))
            continue;
        if (push(w, scalar_text(k))) {
            add(w, kind, k);
            w->depth--;
        }
    }
}

static void walk_map(struct walk *w, yaml_node_t *a, yaml_node_t *b) {
    map_missing(w, w->old, a, w->new, b, CONFIG_CHANGE_REMOVED);
    map_missing(w, w->new, b, w->old, a, CONFIG_CHANGE_ADDED);
    for (yaml_node_pair_t *p = b->data.mapping.pairs.start; p < b->data.mapping.pairs.top; p++) {
        yaml_node_t *k = yaml_document_get_node(w->new, p->key);
        yaml_node_t *old = k && k->type == YAML_SCALAR_NODE ? map_get(w->old, a, k) : NULL;
        if (!old)
            continue;
        if (!push(w, scalar_text(k))) {
            add(w, CONFIG_CHANGE_CHANGED, b);
            return;
        }
        walk(w, old, yaml_document_get_node(w->new, p->value));
        w->depth--;
    }
}

static void walk_seq(struct walk *w, yaml_node_t *a, yaml_node_t *b) {
    size_t na = (size_t)(a->data.sequence.items.top - a->data.sequence.items.start);
    size_t nb = (size_t)(b->data.sequence.items.top - b->data.sequence.items.start);
    if (na != nb) {
        add(w, CONFIG_CHANGE_CHANGED, b);
        return;
    }
    for (size_t i = 0; i < na; i++) {
        char segment[24];
        snprintf(segment, sizeof(segment), "[%zu]", i);
        if (!push(w, segment)) {
            add(w, CONFIG_CHANGE_CHANGED, b);
            return;
        }
        walk(w, yaml_document_get_node(w->old, a->data.sequence.items.start[i]),
             yaml_document_get_node(w->new, b->data.sequence.items.start[i]));
        w->depth--;
    }
}

static void walk(struct walk *w, yaml_node_t *a, yaml_node_t *b) {
    if (!a || !b || a->type != b->type) {
        if (b || a)
            add(w, CONFIG_CHANGE_CHANGED, b ?: a);
        return;
    }
    switch (b->type) {
    case YAML_SCALAR_NODE:
        if (!scalar_eq(a, b))
            add(w, CONFIG_CHANGE_CHANGED, b);
        return;
    case YAML_MAPPING_NODE:
        walk_map(w, a, b);
        return;
    case YAML_SEQUENCE_NODE:
        walk_seq(w, a, b);
        return;
    default:
        return;
    }
}

static int load(const struct config *c, yaml_document_t *ret) {
    yaml_parser_t p;
    if (!c->text)
        return -EINVAL;
    if (!yaml_parser_initialize(&p))
        return -ENOMEM;
    yaml_parser_set_input_string(&p, (const unsigned char *)c->text, c->text_size);
    int r = yaml_parser_load(&p, ret) ? 0 : -EINVAL;
    yaml_parser_delete(&p);
    return r;
}

int config_diff(const struct config *old, const struct config *new, struct config_diff **ret) {
    assert_return(old && new &&ret, -EINVAL);
    yaml_document_t da, db;
    int r = load(old, &da);
    if (r < 0)
        return r;
    r = load(new, &db);
    if (r < 0) {
        yaml_document_delete(&da);
        return r;
    }
    struct walk w = {.old = &da, .new = &db};
    w.d = calloc(1, sizeof(*w.d));
    if (w.d && !(w.d->changes = calloc(CONFIG_DIFF_MAX, sizeof(struct config_change)))) {
        free(w.d);
        w.d = NULL;
    }
    if (!w.d)
        r = -ENOMEM;
    else {
        walk(&w, yaml_document_get_root_node(&da), yaml_document_get_root_node(&db));
        r = w.error;
    }
    yaml_document_delete(&da);
    yaml_document_delete(&db);
    if (r < 0) {
        config_diff_free(w.d);
        return r;
    }
    *ret = w.d;
    return 0;
}

struct config_diff *config_diff_free(struct config_diff *d) {
    if (!d)
        return NULL;
    for (size_t i = 0; i < d->n_changes; i++) {
        free(d->changes[i].key);
        free(d->changes[i].sg);
        free(d->changes[i].si);
        free(d->changes[i].csi);
        free(d->changes[i].su);
        free(d->changes[i].comp);
    }
    free(d->changes);
    free(d);
    return NULL;
}

const char *config_change_kind_to_string(enum config_change_kind k) {
    return k == CONFIG_CHANGE_ADDED ? "added" : k == CONFIG_CHANGE_REMOVED ? "removed" : "changed";
}

static bool str_same(const char *a, const char *b) {
    return a == b || (a && b && streq(a, b));
}

static bool strv_same(char *const *a, size_t na, char *const *b, size_t nb) {
    if (na != nb || (a == NULL) != (b == NULL))
        return false;
    for (size_t i = 0; i < na; i++)
        if (!str_same(a[i], b[i]))
            return false;
    return true;
}

static bool kv_same(const struct config_kv *a, size_t na, const struct config_kv *b, size_t nb) {
    if (na != nb)
        return false;
    for (size_t i = 0; i < na; i++)
        if (!str_same(a[i].name, b[i].name) || !str_same(a[i].value, b[i].value))
            return false;
    return true;
}

static bool ids_same(const struct config_ids *a, const struct config_ids *b) {
    if (a->set_uid != b->set_uid || a->set_gid != b->set_gid || a->uid != b->uid || a->gid != b->gid ||
        a->n_groups != b->n_groups)
        return false;
    for (size_t i = 0; i < a->n_groups; i++)
        if (a->groups[i] != b->groups[i])
            return false;
    return true;
}

/* The settings a restart in place applies. */
static bool restart_settings_same(const struct config_component *a, const struct config_component *b) {
    const struct config_timeouts *x = &a->timeouts, *y = &b->timeouts;
    const struct config_healthcheck *ha = &a->healthcheck, *hb = &b->healthcheck;
    const struct config_monitor *ma = &a->monitor, *mb = &b->monitor;
    return str_same(a->command, b->command) && strv_same(a->args, a->n_args, b->args, b->n_args) &&
           kv_same(a->env, a->n_env, b->env, b->n_env) && str_same(a->workdir, b->workdir) && a->output == b->output &&
           str_same(a->output_file, b->output_file) && x->instantiate == y->instantiate && x->csi_set == y->csi_set &&
           x->csi_remove == y->csi_remove && x->quiescing == y->quiescing && x->terminate == y->terminate &&
           a->instantiate_given == b->instantiate_given && a->terminate_given == b->terminate_given &&
           ha->period == hb->period && ha->timeout == hb->timeout &&
           strv_same(a->hc_keys, a->n_hc_keys, b->hc_keys, b->n_hc_keys) &&
           strv_same(a->terminate, a->n_terminate, b->terminate, b->n_terminate) &&
           strv_same(a->cleanup, a->n_cleanup, b->cleanup, b->n_cleanup) && str_same(a->pidfile, b->pidfile) &&
           strv_same(ma->command, ma->n_command, mb->command, mb->n_command) && ma->period == mb->period &&
           ma->timeout == mb->timeout && ma->given == mb->given && ids_same(&a->ids, &b->ids) &&
           kv_same(a->ocf_params, a->n_ocf_params, b->ocf_params, b->n_ocf_params);
}

unsigned config_component_differ(const struct config_component *a, const struct config_component *b) {
    const struct config_restart *ra = &a->restart, *rb = &b->restart;
    bool live = ra->max == rb->max && ra->window == rb->window && ra->delay == rb->delay &&
                ra->delay_max == rb->delay_max && ra->stable == rb->stable && a->recovery == b->recovery;
    return (restart_settings_same(a, b) ? 0 : CONFIG_DIFFER_RESTART) | (live ? 0 : CONFIG_DIFFER_LIVE) |
           (strv_same(a->csi_types, a->n_csi_types, b->csi_types, b->n_csi_types) ? 0 : CONFIG_DIFFER_CSI_TYPES) |
           (a->type == b->type ? 0 : CONFIG_DIFFER_TYPE) | (str_same(a->proxy, b->proxy) ? 0 : CONFIG_DIFFER_PROXY) |
           (strv_same(a->services, a->n_services, b->services, b->n_services) &&
                    strv_same(a->devices, a->n_devices, b->devices, b->n_devices)
                ? 0
                : CONFIG_DIFFER_RECOVERY_MODEL) |
           (str_same(a->ocf_provider, b->ocf_provider) && str_same(a->ocf_type, b->ocf_type) ? 0 : CONFIG_DIFFER_AGENT);
}
