/* SPDX-License-Identifier: MIT */
/* Loads the cluster description: YAML in, a verified struct config out, problems as FILE:LINE:COL. */
#include "config.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "config-internal.h"

void config_strv_free(char **v, size_t n) {
    if (!v)
        return;
    for (size_t i = 0; i < n; i++)
        free(v[i]);
    free(v);
}

int config_kv_dup(const struct config_kv *kv, size_t n, struct config_kv **ret) {
    struct config_kv *c = calloc(n ?: 1, sizeof(*c));
    if (!c)
        return -ENOMEM;
    for (size_t i = 0; i < n; i++)
        if (!(c[i].name = strdup(kv[i].name)) || !(c[i].value = strdup(kv[i].value))) {
            config_kv_free(c, i + 1);
            return -ENOMEM;
        }
    *ret = c;
    return 0;
}

void config_kv_free(struct config_kv *kv, size_t n) {
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
    config_strv_free(c->args, c->n_args);
    config_kv_free(c->env, c->n_env);
    free(c->workdir);
    free(c->output_file);
    config_strv_free(c->csi_types, c->n_csi_types);
    config_strv_free(c->services, c->n_services);
    config_strv_free(c->devices, c->n_devices);
    config_strv_free(c->terminate, c->n_terminate);
    config_strv_free(c->cleanup, c->n_cleanup);
    free(c->pidfile);
    free(c->proxy);
    config_strv_free(c->hc_keys, c->n_hc_keys);
    config_strv_free(c->monitor.command, c->monitor.n_command);
    free(c->ids.groups);
    free(c->ocf_provider);
    free(c->ocf_type);
    config_kv_free(c->ocf_params, c->n_ocf_params);
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
        config_kv_free(si->csis[i].attrs, si->csis[i].n_attrs);
    }
    free(si->csis);
    config_strv_free(si->depends_on, si->n_depends_on);
}

static void sg_done(struct config_sg *sg) {
    free(sg->name);
    free(sg->cdb_subtree);
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
    free(c->text);
    free(c->cluster);
    for (size_t i = 0; i < c->n_nodes; i++) {
        free(c->nodes[i].name);
        free(c->nodes[i].cdb_address);
        config_strv_free(c->nodes[i].failfast_command, c->nodes[i].n_failfast_command);
    }
    free(c->nodes);
    free(c->cdb.token_file);
    if (c->cdb.token)
        explicit_bzero(c->cdb.token, strlen(c->cdb.token));
    free(c->cdb.token);
    for (size_t i = 0; i < c->n_sgs; i++)
        sg_done(&c->sgs[i]);
    free(c->sgs);
    for (size_t i = 0; i < c->n_pools; i++) {
        free(c->pools[i].name);
        config_strv_free(c->pools[i].processes, c->pools[i].n_processes);
    }
    free(c->pools);
    for (size_t i = 0; i < c->n_log_streams; i++) {
        free(c->log_streams[i].name);
        free(c->log_streams[i].file);
    }
    free(c->log_streams);
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

size_t config_csi_component(const struct config_su *su, const struct config_csi *csi) {
    size_t any = SIZE_MAX;
    if (su->n_components == 1)
        return 0;
    for (size_t i = 0; i < su->n_components; i++) {
        const struct config_component *cc = &su->components[i];
        if (cc->n_csi_types == 0 && any == SIZE_MAX)
            any = i;
        for (size_t t = 0; t < cc->n_csi_types; t++)
            if (csi->type && streq(cc->csi_types[t], csi->type))
                return i;
    }
    return any;
}

const struct config_log_stream *config_find_log_stream(const struct config *c, const char *name) {
    for (size_t i = 0; c && name && i < c->n_log_streams; i++)
        if (streq(c->log_streams[i].name, name))
            return &c->log_streams[i];
    return NULL;
}

const struct config_pool *config_find_pool_of(const struct config *c, const char *component) {
    for (size_t i = 0; c && component && i < c->n_pools; i++)
        for (size_t k = 0; k < c->pools[i].n_processes; k++)
            if (streq(c->pools[i].processes[k], component))
                return &c->pools[i];
    return NULL;
}

/* The file through every pass; problems are recorded in l. */
static int parse_file(struct loader *l, struct config *c) {
    yaml_document_t doc;
    int r;

    r = config_read(l, &doc);
    if (r <= 0)
        return r;

    l->doc = &doc;
    yaml_node_t *root = yaml_document_get_root_node(&doc);
    if (!root || config_yaml_is_null(root))
        config_diag_at(l, (struct config_pos){1, 1}, "the description is empty");
    else {
        r = config_parse(l, root, c);
        if (r >= 0 && !l->too_big)
            r = config_verify(l, c);
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
        /* Reported by config_read(); the directory is only needed once the file was read. */
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

    r = parse_file(&l, c);
    if (r >= 0 && l.oom)
        r = -ENOMEM;
    if (r >= 0 && l.n_problems > 0)
        r = -EINVAL;
    config_diag_sort(&l);
    if (l.n_problems > 0 && errors && config_diag_format(&l, errors) < 0)
        r = -ENOMEM;
    config_diag_done(&l);
    c->text = TAKE_PTR(l.text);
    c->text_size = l.text_size;
    if (r < 0)
        return r;

    *ret = TAKE_PTR(c);
    return 0;
}
