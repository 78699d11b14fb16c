/* SPDX-License-Identifier: MIT */
/* haloctl sim: the cluster description the simulated halods run, written for the example service or checked. */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>
#include <yaml.h>

#include "macro.h"
#include "process-util.h"
#include "sim-internal.h"
#include "strprintf.h"

static void yaml_quoted(FILE *f, const char *s) {
    fputc('"', f);
    for (; *s; s++) {
        unsigned char c = (unsigned char)*s;
        if (c == '"' || c == '\\')
            fprintf(f, "\\%c", c);
        else if (c < 0x20)
            fprintf(f, "\\x%02x", c);
        else
            fputc(c, f);
    }
    fputc('"', f);
}

/* Writes s->config: the example counter service, 2N, one service unit per node, each with its own standby port. */
int sim_describe_write(const struct sim *s, const char *counter, const int *standby_ports) {
    _cleanup_free_ char *tmp = strprintf("%s.tmp", s->config);
    _cleanup_free_ char *state = strprintf("%s/counter.state", s->dir);
    if (!tmp || !state)
        return -ENOMEM;
    _cleanup_(fclosep) FILE *f = fopen(tmp, "we");
    if (!f)
        return -errno;
    fprintf(f, "# Written by 'haloctl sim up': the example counter service, 2N, one service unit per node.\n"
               "cluster: sim\n\nnodes:\n");
    for (size_t i = 0; i < s->n_nodes; i++)
        fprintf(f, "  %s: {}\n", s->nodes[i].proc.name);
    fprintf(f, "\ndefaults:\n  component:\n    health-check: {period: 500ms, timeout: 1s}\n\n"
               "service-groups:\n  counter:\n    redundancy: 2N\n    component:\n      command: ");
    yaml_quoted(f, counter);
    fprintf(f, "\n    service-units:\n");
    for (size_t i = 0; i < s->n_nodes; i++)
        fprintf(
            f,
            "      counter-%s:\n        node: %s\n        component:\n          args: [\"--standby-port\", \"%d\"]\n",
            s->nodes[i].proc.name, s->nodes[i].proc.name, standby_ports[i]);
    fprintf(f,
            "    service-instances:\n      counter:\n        entrypoint: true\n        csis:\n          counter:\n     "
            "       attributes:\n"
            "              port: \"%d\"\n              bind: 127.0.0.1\n              state-file: ",
            s->port);
    yaml_quoted(f, state);
    fputc('\n', f);
    if (fflush(f) != 0 || ferror(f))
        return -EIO;
    if (rename(tmp, s->config) < 0)
        return -errno;
    return 0;
}

/* Checks that the description at path names exactly the nodes n1..nN.  Returns 0, or -EINVAL after saying what is
 * wrong (halod --check has found the file valid already). */
static int config_check_nodes(const char *path, size_t n_nodes) {
    _cleanup_(fclosep) FILE *f = fopen(path, "re");
    if (!f)
        return -errno;
    yaml_parser_t p;
    yaml_document_t d;
    if (!yaml_parser_initialize(&p))
        return -ENOMEM;
    yaml_parser_set_input_file(&p, f);
    int ok = yaml_parser_load(&p, &d);
    yaml_parser_delete(&p);
    if (!ok)
        return -EBADMSG;

    bool seen[SIM_NODES_MAX] = {}, good = true;
    char names[512] = "";
    yaml_node_t *root = yaml_document_get_root_node(&d), *nodes = NULL;
    if (root && root->type == YAML_MAPPING_NODE)
        for (yaml_node_pair_t *pr = root->data.mapping.pairs.start; pr < root->data.mapping.pairs.top; pr++) {
            yaml_node_t *k = yaml_document_get_node(&d, pr->key);
            if (k && k->type == YAML_SCALAR_NODE && streq((char *)k->data.scalar.value, "nodes"))
                nodes = yaml_document_get_node(&d, pr->value);
        }
    if (nodes && nodes->type == YAML_MAPPING_NODE)
        for (yaml_node_pair_t *pr = nodes->data.mapping.pairs.start; pr < nodes->data.mapping.pairs.top; pr++) {
            yaml_node_t *k = yaml_document_get_node(&d, pr->key);
            const char *name = k && k->type == YAML_SCALAR_NODE ? (char *)k->data.scalar.value : "?";
            size_t i = 0;
            for (char want[24]; i < n_nodes; i++) {
                snprintf(want, sizeof(want), "n%zu", i + 1);
                if (streq(name, want))
                    break;
            }
            if (i < n_nodes)
                seen[i] = true;
            else
                good = false;
            size_t len = strlen(names);
            snprintf(names + len, sizeof(names) - len, "%s%s", len ? ", " : "", name);
        }
    else
        good = false; /* no 'nodes': one node, 'local' */
    for (size_t i = 0; i < n_nodes; i++)
        good = good && seen[i];
    yaml_document_delete(&d);
    if (!good) {
        fprintf(stderr,
                "haloctl: '%s' must name exactly the nodes n1..n%zu of the simulation (--nodes %zu); it names %s\n",
                path, n_nodes, n_nodes, *names ? names : "none ('local' by default)");
        return -EINVAL;
    }
    return 0;
}

/* Runs halod --check on path, whose complaints go to our stderr; then checks its node names. */
int sim_describe_check(const char *halod, const char *path, size_t n_nodes) {
    char *argv[] = {"halod", "--check", (char *)path, NULL};
    _cleanup_close_ int null = open("/dev/null", O_WRONLY | O_CLOEXEC);
    struct process_spawn_options o = {
        .path = halod, .argv = argv, .stdout_fd = null, .stderr_fd = -1, .exec_error = true};
    pid_t pid;
    int st;
    if (null < 0)
        return -errno;
    int r = process_spawn(&o, &pid);
    if (r < 0 || (r = process_wait(pid, &st)) < 0) {
        fprintf(stderr, "haloctl: cannot run '%s --check': %s\n", halod, strerror(-r));
        return r;
    }
    if (!WIFEXITED(st) || WEXITSTATUS(st) != 0) {
        fprintf(stderr, "haloctl: '%s' is not a valid cluster description (see above)\n", path);
        return -EINVAL;
    }
    return config_check_nodes(path, n_nodes);
}
