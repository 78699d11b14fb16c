/* SPDX-License-Identifier: MIT */
/* Tests for the cluster description loader: inheritance, defaults, every error and its position. */
#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <limits.h>
#include <stdarg.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "config.h"
#include "macro.h"
#include "tests.h"

/* ---- helpers ---------------------------------------------------------------------------- */

/*
 * The runner forks each test and ends it with _exit(), so a test cannot clean up after itself on
 * success.  The runner process therefore owns one root directory, removed when it exits, and each
 * test makes its own directory inside it.
 */
static char root[64];
static pid_t root_owner;
static char dir[PATH_MAX]; /* this test's directory */

static int remove_one(const char *p, const struct stat *st, int flag, struct FTW *f) {
    return remove(p);
}

static void remove_root(void) {
    if (root[0] && getpid() == root_owner)
        (void)nftw(root, remove_one, 16, FTW_DEPTH | FTW_PHYS);
}

__attribute__((constructor)) static void make_root(void) {
    snprintf(root, sizeof(root), "/tmp/halo-test-config.XXXXXX");
    if (!mkdtemp(root)) {
        perror("mkdtemp");
        exit(1);
    }
    root_owner = getpid();
    atexit(remove_root);
}

static const char *tmpdir(void) {
    if (!dir[0]) {
        snprintf(dir, sizeof(dir), "%s/XXXXXX", root);
        ASSERT(mkdtemp(dir));
    }
    return dir;
}

/* Writes content to name in the test's directory; returns the path (static buffer per slot). */
static const char *write_file_mode(const char *name, const char *content, size_t size, mode_t mode) {
    static char paths[4][PATH_MAX];
    static unsigned slot;
    char *p = paths[slot++ % 4];

    snprintf(p, PATH_MAX, "%s/%s", tmpdir(), name);
    int fd = open(p, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, mode);
    ASSERT(fd >= 0);
    for (size_t off = 0; off < size;) {
        ssize_t k = write(fd, content + off, size - off);
        ASSERT(k > 0);
        off += (size_t)k;
    }
    ASSERT_OK(fchmod(fd, mode));
    close(fd);
    return p;
}

static const char *write_yaml(const char *content) {
    return write_file_mode("halo.yaml", content, strlen(content), 0644);
}

/* Loads content; the returned errors string is freed by the caller. */
static int load(const char *content, struct config **ret, char **errors, const char **ret_path) {
    const char *p = write_yaml(content);
    if (ret_path)
        *ret_path = p;
    return config_load(p, ret, errors);
}

static struct config *load_ok(const char *content) {
    struct config *c = NULL;
    char *errors = NULL;
    int r = load(content, &c, &errors, NULL);
    if (r < 0)
        CHECK_FAIL("config_load failed: %s\n%s", strerror(-r), errors ? errors : "");
    ASSERT(!errors);
    ASSERT(c);
    return c;
}

/* Loads content, which must fail with -EINVAL; returns the errors (caller frees). */
static char *load_fail(const char *content, const char **ret_path) {
    struct config *c = NULL;
    char *errors = NULL;
    ASSERT_EQ(load(content, &c, &errors, ret_path), -EINVAL);
    ASSERT(!c);
    ASSERT(errors && *errors);
    return errors;
}

static size_t count_lines(const char *s) {
    size_t n = 0;
    for (; *s; s++)
        n += *s == '\n';
    return n;
}

/* Asserts that errors has a line "PATH:LINE:COLUMN: ..." containing text. */
#define ASSERT_ERROR(errors, path, line, column, text)                              \
    do {                                                                            \
        char _prefix[PATH_MAX + 64];                                                \
        snprintf(_prefix, sizeof(_prefix), "%s:%d:%d: ", (path), (line), (column)); \
        if (!has_error((errors), _prefix, (text)))                                  \
            CHECK_FAIL("no error \"%s...%s\" in:\n%s", _prefix, (text), (errors));  \
    } while (0)

static bool has_error(const char *errors, const char *prefix, const char *text) {
    for (const char *s = errors; s && *s;) {
        const char *end = strchr(s, '\n');
        size_t len = end ? (size_t)(end - s) : strlen(s);
        if (strncmp(s, prefix, strlen(prefix)) == 0) {
            char *line = strndup(s, len);
            bool found = line && strstr(line, text);
            free(line);
            if (found)
                return true;
        }
        s += len + (end ? 1 : 0);
    }
    return false;
}

#define LONG_NAME_65 "xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx"

/* One valid service group; prepend or append lines to make variants. */
#define SG_OK                                \
    "service-groups:\n"                      \
    "  g:\n"                                 \
    "    component: {command: /bin/sleep}\n" \
    "    service-units: {a: {}, b: {}}\n"    \
    "    service-instances: {si: {csis: {csi: {}}}}\n"

static const struct config_su *find_su(const struct config *c, const char *name) {
    for (size_t g = 0; g < c->n_sgs; g++)
        for (size_t i = 0; i < c->sgs[g].n_sus; i++)
            if (streq(c->sgs[g].sus[i].name, name))
                return &c->sgs[g].sus[i];
    CHECK_FAIL("no service unit '%s'", name);
}

/* ---- loading and inheritance ------------------------------------------------------------ */

TEST(example_2n_inherits) {
    setenv("PATH", "/bin", 1);
    struct config *c = load_ok("cluster: demo\n"
                               "nodes: {n1: {}, n2: ~}\n"
                               "defaults:\n"
                               "  component:\n"
                               "    restart: {max: 5, delay: 200ms}\n"
                               "    timeouts: {terminate: 2s}\n"
                               "service-groups:\n"
                               "  counter:\n"
                               "    auto-failback: true\n"
                               "    component:\n"
                               "      command: sleep\n"
                               "      args: [\"600\"]\n"
                               "      env: {FOO: bar, N: 1}\n"
                               "      restart: {delay: 300ms, window: 2m}\n"
                               "      health-check: {period: 250ms}\n"
                               "    service-units:\n"
                               "      counter-b: {node: n2}\n"
                               "      counter-a:\n"
                               "        node: n1\n"
                               "        component: {args: [\"--port\", 7700], restart: {max: 0}}\n"
                               "    service-instances:\n"
                               "      counter-si:\n"
                               "        csis:\n"
                               "          counter-csi: {attributes: {port: 7700, bind: \"127.0.0.1\"}}\n");
    char base[PATH_MAX];
    ASSERT(realpath(tmpdir(), base));

    ASSERT_STREQ(c->cluster, "demo");
    ASSERT_STREQ(c->basedir, base);
    ASSERT_EQ(c->n_nodes, 2);
    ASSERT_STREQ(c->nodes[0].name, "n1");
    ASSERT_STREQ(c->nodes[1].name, "n2");
    ASSERT(config_find_node(c, "n2") == &c->nodes[1]);
    ASSERT(!config_find_node(c, "n3"));
    ASSERT_EQ(c->n_sgs, 1);

    const struct config_sg *sg = &c->sgs[0];
    ASSERT_STREQ(sg->name, "counter");
    ASSERT_EQ(sg->pos.line, 8);
    ASSERT_EQ(sg->pos.column, 3);
    ASSERT_EQ(sg->redundancy, CONFIG_REDUNDANCY_2N);
    ASSERT(sg->auto_failback);
    ASSERT_EQ(sg->auto_adjust_probation, 10 * USEC_PER_SEC); /* the default */
    ASSERT_EQ(sg->n_sus, 2);

    /* rank is the order in the file, not alphabetical */
    const struct config_su *b = &sg->sus[0], *a = &sg->sus[1];
    ASSERT_STREQ(b->name, "counter-b");
    ASSERT_EQ(b->rank, 0);
    ASSERT_STREQ(b->node, "n2");
    ASSERT_STREQ(a->name, "counter-a");
    ASSERT_EQ(a->rank, 1);
    ASSERT_STREQ(a->node, "n1");
    ASSERT_EQ(a->pos.line, 18);
    ASSERT_EQ(a->pos.column, 7);

    /* counter-b: the SG template over defaults over built-ins */
    ASSERT_EQ(b->n_components, 1);
    const struct config_component *cb = &b->components[0];
    ASSERT_STREQ(cb->name, "counter-b");
    ASSERT_STREQ(cb->command, "/bin/sleep");
    ASSERT_EQ(cb->n_args, 1);
    ASSERT_STREQ(cb->args[0], "600");
    ASSERT(cb->args[1] == NULL);
    ASSERT_EQ(cb->n_env, 2);
    ASSERT_STREQ(cb->env[0].name, "FOO");
    ASSERT_STREQ(cb->env[0].value, "bar");
    ASSERT_STREQ(cb->env[1].name, "N");
    ASSERT_STREQ(cb->env[1].value, "1");
    ASSERT_STREQ(cb->workdir, base);
    ASSERT(cb->csi_types == NULL);
    ASSERT_EQ(cb->restart.max, 5);                          /* defaults.component */
    ASSERT_EQ(cb->restart.delay, 300 * USEC_PER_MSEC);      /* SG wins over defaults */
    ASSERT_EQ(cb->restart.window, 120 * USEC_PER_SEC);      /* SG */
    ASSERT_EQ(cb->restart.delay_max, 5 * USEC_PER_SEC);     /* built-in */
    ASSERT_EQ(cb->restart.stable, 10 * USEC_PER_SEC);       /* built-in */
    ASSERT_EQ(cb->healthcheck.period, 250 * USEC_PER_MSEC); /* SG */
    ASSERT_EQ(cb->healthcheck.timeout, 3 * USEC_PER_SEC);   /* built-in, same map as period */
    ASSERT_EQ(cb->timeouts.terminate, 2 * USEC_PER_SEC);    /* defaults.component */
    ASSERT_EQ(cb->timeouts.instantiate, 10 * USEC_PER_SEC);
    ASSERT_EQ(cb->timeouts.csi_set, 5 * USEC_PER_SEC);

    /* counter-a: its own `component` wins over the SG template, key by key */
    const struct config_component *ca = &a->components[0];
    ASSERT_STREQ(ca->name, "counter-a");
    ASSERT_STREQ(ca->command, "/bin/sleep");
    ASSERT_EQ(ca->n_args, 2);
    ASSERT_STREQ(ca->args[0], "--port");
    ASSERT_STREQ(ca->args[1], "7700");
    ASSERT(ca->args[2] == NULL);
    ASSERT_EQ(ca->restart.max, 0);
    ASSERT_EQ(ca->restart.delay, 300 * USEC_PER_MSEC);
    ASSERT_EQ(ca->n_env, 2);

    ASSERT_EQ(sg->n_sis, 1);
    ASSERT_STREQ(sg->sis[0].name, "counter-si");
    ASSERT_EQ(sg->sis[0].n_csis, 1);
    const struct config_csi *csi = &sg->sis[0].csis[0];
    ASSERT_STREQ(csi->name, "counter-csi");
    ASSERT(csi->type == NULL);
    ASSERT_EQ(csi->n_attrs, 2);
    ASSERT_STREQ(csi->attrs[0].name, "port");
    ASSERT_STREQ(csi->attrs[0].value, "7700");
    ASSERT_STREQ(csi->attrs[1].value, "127.0.0.1");
    config_free(c);
}

TEST(builtin_defaults) {
    struct config *c = load_ok("# only what is required\n" SG_OK);
    ASSERT_STREQ(c->cluster, "halo");
    ASSERT_EQ(c->n_nodes, 1);
    ASSERT_STREQ(c->nodes[0].name, "local");
    const struct config_sg *sg = &c->sgs[0];
    ASSERT_EQ(sg->redundancy, CONFIG_REDUNDANCY_2N);
    ASSERT(!sg->auto_failback);
    ASSERT_STREQ(sg->sus[0].node, "local");
    ASSERT_STREQ(sg->sus[1].node, "local");
    const struct config_component *cc = &sg->sus[1].components[0];
    ASSERT_EQ(cc->n_args, 0);
    ASSERT(cc->args && cc->args[0] == NULL);
    ASSERT_EQ(cc->n_env, 0);
    ASSERT_EQ(cc->restart.max, 3);
    ASSERT_EQ(cc->restart.window, 60 * USEC_PER_SEC);
    ASSERT_EQ(cc->restart.delay, 100 * USEC_PER_MSEC);
    ASSERT_EQ(cc->restart.delay_max, 5 * USEC_PER_SEC);
    ASSERT_EQ(cc->restart.stable, 10 * USEC_PER_SEC);
    ASSERT_EQ(cc->healthcheck.period, 1 * USEC_PER_SEC);
    ASSERT_EQ(cc->healthcheck.timeout, 3 * USEC_PER_SEC);
    ASSERT_EQ(cc->timeouts.instantiate, 10 * USEC_PER_SEC);
    ASSERT_EQ(cc->timeouts.csi_set, 5 * USEC_PER_SEC);
    ASSERT_EQ(cc->timeouts.csi_remove, 5 * USEC_PER_SEC);
    ASSERT_EQ(cc->timeouts.quiescing, 5 * USEC_PER_SEC);
    ASSERT_EQ(cc->timeouts.terminate, 5 * USEC_PER_SEC);
    config_free(c);
}

TEST(explicit_components_are_qualified) {
    struct config *c = load_ok("service-groups:\n"
                               "  g:\n"
                               "    component: {command: /bin/sleep, args: [\"1\"], restart: {max: 7}}\n"
                               "    service-units:\n"
                               "      a:\n"
                               "        component: {args: [\"2\"]}\n"
                               "        components:\n"
                               "          db: {csi-types: [db], restart: {max: 1}}\n"
                               "          web: {csi-types: [web, db]}\n"
                               "      b:\n"
                               "        components:\n"
                               "          db: {csi-types: [db]}\n"
                               "          web: {args: [], csi-types: [web]}\n"
                               "    service-instances:\n"
                               "      si: {csis: {c-db: {type: db}, c-web: {type: web}}}\n");
    const struct config_su *a = find_su(c, "a"), *b = find_su(c, "b");
    ASSERT_EQ(a->n_components, 2);
    ASSERT_STREQ(a->components[0].name, "a/db");
    ASSERT_STREQ(a->components[1].name, "a/web");
    ASSERT_STREQ(b->components[0].name, "b/db");
    ASSERT_EQ(a->components[0].pos.line, 8);
    ASSERT_EQ(a->components[0].pos.column, 11);
    /* SG template -> SU component -> the component's own keys */
    ASSERT_EQ(a->components[0].restart.max, 1);
    ASSERT_EQ(a->components[1].restart.max, 7);
    ASSERT_STREQ(a->components[0].args[0], "2");
    ASSERT_STREQ(b->components[0].args[0], "1");
    ASSERT_EQ(b->components[1].n_args, 0);
    ASSERT_EQ(a->components[1].n_csi_types, 2);
    ASSERT_STREQ(a->components[1].csi_types[1], "db");
    ASSERT_STREQ(c->sgs[0].sis[0].csis[0].type, "db");
    ASSERT_EQ(c->sgs[0].sis[0].csis[0].type_pos.line, 15);
    config_free(c);
}

TEST(command_resolution) {
    const char *script = "#!/bin/sh\nexit 0\n";
    char base[PATH_MAX], expect[PATH_MAX + 32];
    ASSERT(realpath(tmpdir(), base));
    char sub[PATH_MAX];
    snprintf(sub, sizeof(sub), "%s/bin", tmpdir());
    ASSERT_OK(mkdir(sub, 0755));
    write_file_mode("bin/tool", script, strlen(script), 0755);
    write_file_mode("sleep", script, strlen(script), 0755); /* shadows $PATH's sleep */
    setenv("PATH", "/bin", 1);

    struct config *c = load_ok("service-groups:\n"
                               "  g:\n"
                               "    component: {command: ./bin/tool, workdir: bin}\n"
                               "    service-units:\n"
                               "      a: {}\n"
                               "      b: {component: {command: sleep}}\n"
                               "      c: {component: {command: bin/tool, workdir: /}}\n"
                               "      d: {component: {command: true}}\n"
                               "      e: {component: {command: ./bin/../bin/./tool, workdir: bin/..}}\n"
                               "    service-instances: {si: {csis: {csi: {}}}}\n");
    snprintf(expect, sizeof(expect), "%s/bin/tool", base);
    ASSERT_STREQ(find_su(c, "a")->components[0].command, expect);
    ASSERT_STREQ(find_su(c, "c")->components[0].command, expect);
    ASSERT_STREQ(find_su(c, "e")->components[0].command, expect); /* tidied */
    snprintf(expect, sizeof(expect), "%s/sleep", base);           /* the description's directory first */
    ASSERT_STREQ(find_su(c, "b")->components[0].command, expect);
    ASSERT_STREQ(find_su(c, "d")->components[0].command, "/bin/true"); /* then $PATH */
    snprintf(expect, sizeof(expect), "%s/bin", base);
    ASSERT_STREQ(find_su(c, "a")->components[0].workdir, expect);
    ASSERT_STREQ(find_su(c, "c")->components[0].workdir, "/");
    ASSERT_STREQ(find_su(c, "e")->components[0].workdir, base);
    config_free(c);
}

TEST(null_values_are_empty) {
    /* "key:" with nothing after it is an empty map or list where one is expected */
    struct config *c = load_ok("nodes:\n"
                               "  n1:\n"
                               "defaults:\n"
                               "service-groups:\n"
                               "  g:\n"
                               "    component: {command: /bin/sleep, args: ~}\n"
                               "    service-units:\n"
                               "      a:\n"
                               "      b:\n"
                               "    service-instances: {si: {csis: {csi: }}}\n");
    ASSERT_STREQ(find_su(c, "a")->node, "n1");
    ASSERT_EQ(find_su(c, "b")->components[0].n_args, 0);
    config_free(c);
}

TEST(aliases_are_expanded) {
    struct config *c = load_ok("defaults:\n"
                               "  component: &tmpl {command: /bin/sleep, args: [\"5\"]}\n"
                               "service-groups:\n"
                               "  g:\n"
                               "    service-units: {a: {component: *tmpl}, b: {}}\n"
                               "    service-instances: {si: {csis: {csi: {}}}}\n");
    ASSERT_STREQ(find_su(c, "a")->components[0].args[0], "5");
    ASSERT_STREQ(find_su(c, "b")->components[0].args[0], "5");
    config_free(c);
}

/* ---- errors ----------------------------------------------------------------------------- */

TEST(error_not_a_map) {
    const char *p;
    char *e = load_fail("service-groups:\n"
                        "  - g\n",
                        &p);
    ASSERT_ERROR(e, p, 2, 3, "'service-groups' must be a map, got a list");
    free(e);

    e = load_fail("just a string\n", &p);
    ASSERT_ERROR(e, p, 1, 1, "the description must be a map, got 'just a string'");
    free(e);

    e = load_fail("nodes: [a]\n" SG_OK, &p);
    ASSERT_ERROR(e, p, 1, 8, "'nodes' must be a map, got a list");
    free(e);
}

TEST(error_auto_adjust) {
    const char *p;
    char *e = load_fail("service-groups:\n"
                        "  g:\n"
                        "    auto-failback: true\n"
                        "    auto-adjust: maybe\n"
                        "    auto-adjust-probation: soon\n"
                        "    component: {command: /bin/sleep}\n"
                        "    service-units: {a: {}, b: {}}\n"
                        "    service-instances: {si: {csis: {csi: {}}}}\n",
                        &p);
    ASSERT_ERROR(e, p, 3, 20, "'auto-failback' is the old name of 'auto-adjust': give one of them");
    ASSERT_ERROR(e, p, 4, 18, "'auto-adjust' must be true or false, got 'maybe'");
    ASSERT_ERROR(e, p, 5, 28, "'auto-adjust-probation' must be a duration (like 10s), got 'soon'");
    ASSERT_EQ(count_lines(e), 3);
    free(e);
}

TEST(error_wrong_scalar_type) {
    const char *p;
    char *e = load_fail("defaults:\n"
                        "  component:\n"
                        "    restart: {max: -1}\n"
                        "    args: [[x], {y: z}]\n"
                        "    command: {a: b}\n"
                        "service-groups:\n"
                        "  g:\n"
                        "    auto-failback: maybe\n"
                        "    component: {command: /bin/sleep, restart: {max: 1.5}}\n"
                        "    service-units: {a: {component: {restart: {max: \"3\"}}}, b: {}}\n"
                        "    service-instances: {si: {csis: {csi: {attributes: {k: [1]}}}}}\n",
                        &p);
    ASSERT_ERROR(e, p, 3, 20, "'max' must be a non-negative integer (without quotes), got '-1'");
    ASSERT_ERROR(e, p, 4, 12, "each item of 'args' must be a single value, got a list");
    ASSERT_ERROR(e, p, 4, 17, "each item of 'args' must be a single value, got a map");
    ASSERT_ERROR(e, p, 5, 14, "'command' must be a single value, got a map");
    ASSERT_ERROR(e, p, 8, 20, "'auto-failback' must be true or false, got 'maybe'");
    ASSERT_ERROR(e, p, 9, 53, "'max' must be a non-negative integer (without quotes), got '1.5'");
    ASSERT_ERROR(e, p, 10, 52, "'max' must be a non-negative integer (without quotes), got '3'");
    ASSERT_ERROR(e, p, 11, 59, "attribute 'k' must be a single value, got a list");
    ASSERT_EQ(count_lines(e), 8);
    free(e);
}

TEST(error_malformed_yaml) {
    const char *p;
    char *e = load_fail("service-groups:\n"
                        "  g:\n"
                        "    component: {command: /bin/sleep\n"
                        "    service-units: {}\n",
                        &p);
    ASSERT(strstr(e, "invalid YAML: "));
    ASSERT_ERROR(e, p, 4, 18,
                 "invalid YAML: did not find expected ',' or '}' (while parsing a flow mapping at "
                 "line 3 column 16)");
    ASSERT_EQ(count_lines(e), 1);
    free(e);

    e = load_fail("a: b\n c: d\n", &p);
    ASSERT_ERROR(e, p, 2, 3, "invalid YAML: mapping values are not allowed in this context");
    free(e);

    e = load_fail("a: \"\xff\"\n", &p);
    ASSERT_ERROR(e, p, 1, 5, "invalid YAML: invalid leading UTF-8 octet");
    free(e);

    e = load_fail("a: *nothing\n", &p);
    ASSERT_ERROR(e, p, 1, 4, "invalid YAML: found undefined alias");
    free(e);

    e = load_fail(SG_OK "---\n" SG_OK, &p);
    ASSERT_ERROR(e, p, 6, 1, "only one YAML document is allowed");
    free(e);
}

TEST(error_unknown_keys) {
    const char *p;
    char *e = load_fail("clster: demo\n"
                        "nodes: {n1: {address: 10.0.0.1}}\n"
                        "service-groups:\n"
                        "  g:\n"
                        "    component: {command: /bin/sleep, restart: {maxx: 3}, healthcheck: {}}\n"
                        "    service-units: {a: {nod: n1}, b: {}}\n"
                        "    service-instances: {si: {csis: {csi: {attrs: {}}}}}\n",
                        &p);
    ASSERT_ERROR(e, p, 1, 1,
                 "unknown key 'clster' in the description (allowed: cluster, nodes, defaults, "
                 "service-groups, cdb, pools, log-streams)");
    ASSERT_ERROR(e, p, 2, 14, "unknown key 'address' in node 'n1' (allowed: cdb-address, su-failover, failfast)");
    ASSERT_ERROR(e, p, 5, 48, "unknown key 'maxx' in 'restart' (allowed: max, window, delay, delay-max, stable)");
    ASSERT_ERROR(e, p, 5, 58,
                 "unknown key 'healthcheck' in 'component' (allowed: command, args, env, workdir, "
                 "csi-types, services, devices, type, terminate, cleanup, pidfile, proxy, recovery, stdout, monitor, "
                 "agent, params, "
                 "user, group, restart, health-check, timeouts)");
    ASSERT_ERROR(e, p, 6, 25, "unknown key 'nod' in service unit 'a' (allowed: node, component, components)");
    ASSERT_ERROR(e, p, 7, 43, "unknown key 'attrs' in CSI 'csi' (allowed: type, attributes)");
    ASSERT_EQ(count_lines(e), 6);
    free(e);
}

TEST(error_duplicate_keys) {
    const char *p;
    char *e = load_fail("cluster: a\n"
                        "cluster: b\n"
                        "service-groups:\n"
                        "  g:\n"
                        "    component: {command: /bin/sleep, env: {A: 1, A: 2}}\n"
                        "    service-units: {a: {}, b: {}, a: {}}\n"
                        "    service-instances: {si: {csis: {csi: {}}}}\n"
                        "  g:\n"
                        "    bogus: 1\n",
                        &p);
    ASSERT_ERROR(e, p, 2, 1, "duplicate key 'cluster' (first defined at line 1 column 1)");
    ASSERT_ERROR(e, p, 5, 50, "duplicate key 'A' (first defined at line 5 column 44)");
    ASSERT_ERROR(e, p, 6, 35, "duplicate key 'a' (first defined at line 6 column 21)");
    ASSERT_ERROR(e, p, 8, 3, "duplicate key 'g' (first defined at line 4 column 3)");
    /* the duplicate is dropped, so its contents are not reported */
    ASSERT_EQ(count_lines(e), 4);
    free(e);
}

TEST(error_duplicate_names_across_groups) {
    const char *p;
    char *e = load_fail("service-groups:\n"
                        "  g1:\n"
                        "    component: {command: /bin/sleep}\n"
                        "    service-units: {a: {}, b: {}}\n"
                        "    service-instances: {si: {csis: {csi: {}}}}\n"
                        "  g2:\n"
                        "    component: {command: /bin/sleep}\n"
                        "    service-units: {c: {}, a: {}}\n"
                        "    service-instances: {si: {csis: {csi: {}}}}\n",
                        &p);
    ASSERT_ERROR(e, p, 8, 28, "duplicate service unit name 'a' (first defined at line 4 column 21)");
    ASSERT_ERROR(e, p, 9, 25, "duplicate service instance name 'si' (first defined at line 5 column 25)");
    ASSERT_ERROR(e, p, 9, 37, "duplicate CSI name 'csi' (first defined at line 5 column 37)");
    ASSERT_EQ(count_lines(e), 3);
    free(e);
}

TEST(error_invalid_names) {
    char longname[300];
    memset(longname, 'x', 256);
    longname[256] = 0;
    char yaml[2048];
    snprintf(yaml, sizeof(yaml),
             "cluster: \"my cluster\"\n"
             "nodes: {..: {}}\n"
             "service-groups:\n"
             "  %s:\n"
             "    component: {command: /bin/sleep, csi-types: [\"a b\"]}\n"
             "    service-units:\n"
             "      \"a/b\": {node: ..}\n"
             "      b: {components: {\"db!\": {}}}\n"
             "    service-instances: {si: {csis: {\"\": {}}}}\n",
             longname);
    const char *p;
    char *e = load_fail(yaml, &p);
    ASSERT_ERROR(e, p, 1, 10, "invalid cluster name 'my cluster': use 1 to 255 of the characters A-Z a-z 0-9 . _ -");
    ASSERT_ERROR(e, p, 2, 9, "invalid node name '..'");
    ASSERT_ERROR(e, p, 4, 3, "invalid service group name 'xxxxxxxx");
    ASSERT_ERROR(e, p, 5, 50, "invalid CSI type name 'a b'");
    ASSERT_ERROR(e, p, 7, 7, "invalid service unit name 'a/b'");
    ASSERT_ERROR(e, p, 8, 24, "invalid component name 'db!'");
    ASSERT_ERROR(e, p, 9, 37, "invalid CSI name ''");
    free(e);

    /* a qualified component name is limited like any other name */
    memset(longname, 'y', 200);
    longname[200] = 0;
    snprintf(yaml, sizeof(yaml),
             "service-groups:\n"
             "  g:\n"
             "    component: {command: /bin/sleep}\n"
             "    service-units:\n"
             "      %s: {components: {%s: {}}}\n"
             "      b: {}\n"
             "    service-instances: {si: {csis: {csi: {}}}}\n",
             longname, longname);
    e = load_fail(yaml, &p);
    ASSERT_ERROR(e, p, 5, 223, "component name 'yyyy");
    ASSERT(strstr(e, "is longer than 255 characters"));
    free(e);
}

TEST(error_missing_command) {
    const char *p;
    char *e = load_fail("service-groups:\n"
                        "  g:\n"
                        "    service-units:\n"
                        "      a: {component: {command: /bin/sleep}}\n"
                        "      b: {components: {x: {command: /bin/sleep}, y: {}}}\n"
                        "    service-instances: {si: {csis: {csi: {type: t}}}}\n",
                        &p);
    ASSERT_ERROR(e, p, 5, 50, "component 'b/y' has no 'command'");
    ASSERT_EQ(count_lines(e), 1);
    free(e);
}

TEST(error_command_does_not_resolve) {
    write_file_mode("data.txt", "x\n", 2, 0644);
    setenv("PATH", "/bin:relative/dir", 1);
    const char *p;
    char *e = load_fail("service-groups:\n"
                        "  g:\n"
                        "    component: {command: no-such-command-halo}\n"
                        "    service-units:\n"
                        "      a: {component: {command: /no/such/file}}\n"
                        "      b: {component: {command: ./data.txt}}\n"
                        "      c: {component: {command: /tmp}}\n"
                        "      d: {}\n"
                        "      e: {}\n"
                        "    service-instances: {si: {csis: {csi: {}}}}\n",
                        &p);
    ASSERT_ERROR(e, p, 3, 26, "command 'no-such-command-halo' not found in '");
    ASSERT_ERROR(e, p, 5, 32, "command '/no/such/file' does not exist");
    ASSERT_ERROR(e, p, 6, 32, "command './data.txt' ('");
    ASSERT_ERROR(e, p, 6, 32, "/data.txt') is not an executable file");
    ASSERT_ERROR(e, p, 7, 32, "command '/tmp' is a directory");
    /* reported once, although d and e both inherit it */
    ASSERT_EQ(count_lines(e), 4);
    free(e);
}

TEST(error_workdir_not_a_directory) {
    const char *p;
    char *e = load_fail("service-groups:\n"
                        "  g:\n"
                        "    component: {command: /bin/sleep, workdir: halo.yaml}\n"
                        "    service-units: {a: {component: {workdir: /no/such/dir}}, b: {}}\n"
                        "    service-instances: {si: {csis: {csi: {}}}}\n",
                        &p);
    ASSERT_ERROR(e, p, 3, 47, "/halo.yaml' is not a directory");
    ASSERT_ERROR(e, p, 4, 46, "workdir '/no/such/dir' does not exist");
    ASSERT_EQ(count_lines(e), 2);
    free(e);
}

TEST(error_durations) {
    const char *p;
    char *e = load_fail("defaults:\n"
                        "  component:\n"
                        "    health-check: {period: 0, timeout: 5 s}\n"
                        "    timeouts: {instantiate: 0ms, terminate: -1s, csi-set: 1y}\n"
                        "    restart: {delay: 10s, delay-max: 1s, window: 0}\n" SG_OK,
                        &p);
    ASSERT_ERROR(e, p, 3, 28, "'period' must be longer than 0");
    ASSERT_ERROR(e, p, 3, 40, "'timeout' must be a duration such as 500ms, 2s or 1m, got '5 s'");
    ASSERT_ERROR(e, p, 4, 29, "'instantiate' must be longer than 0");
    ASSERT_ERROR(e, p, 4, 45, "'terminate' must be a duration such as 500ms, 2s or 1m, got '-1s'");
    ASSERT_ERROR(e, p, 4, 59, "'csi-set' must be a duration");
    ASSERT_ERROR(e, p, 5, 22, "restart 'delay' (10s) is longer than 'delay-max' (1s)");
    ASSERT_ERROR(e, p, 5, 50, "'window' must be longer than 0");
    ASSERT_EQ(count_lines(e), 7);
    free(e);
}

TEST(cdb_settings_and_their_defaults) {
    struct config *c = load_ok(SG_OK);
    ASSERT(!c->cdb.async);
    ASSERT_EQ(c->cdb.tick, 500 * USEC_PER_MSEC);
    ASSERT_EQ(c->cdb.dead_after, 2 * USEC_PER_SEC);
    config_free(c);
    c = load_ok("cdb: {replication: async, tick: 100ms, dead-after: 1s}\n" SG_OK);
    ASSERT(c->cdb.async);
    ASSERT_EQ(c->cdb.tick, 100 * USEC_PER_MSEC);
    ASSERT_EQ(c->cdb.dead_after, USEC_PER_SEC);
    config_free(c);

    const char *p;
    char *e = load_fail("cdb: {replication: eventually, tick: 1ms, dead-after: 1s, port: 1}\n" SG_OK, &p);
    ASSERT_ERROR(e, p, 1, 59, "unknown key 'port' in 'cdb' (allowed: replication, tick, dead-after, token-file)");
    ASSERT_ERROR(e, p, 1, 20, "'replication' must be sync or async, got 'eventually'");
    ASSERT_ERROR(e, p, 1, 38, "'tick' must be a duration of at least 10ms, such as 500ms, got '1ms'");
    ASSERT_EQ(count_lines(e), 3);
    free(e);
    e = load_fail("cdb: {tick: 1s, dead-after: 1s}\n" SG_OK, &p);
    ASSERT_ERROR(e, p, 1, 29, "'dead-after' must be a duration of at least twice 'tick', got '1s'");
    free(e);
}

TEST(cdb_roles_and_their_checks) {
    write_file_mode("token", "s3cret\n", 7, 0600);
    struct config *c = load_ok("nodes: {n1: {cdb-address: 127.0.0.1:4571}, n2: {cdb-address: '[::1]:4572'}}\n"
                               "cdb: {token-file: token}\n"
                               "service-groups:\n"
                               "  g:\n"
                               "    cdb-roles: true\n"
                               "    component: {command: /bin/sleep}\n"
                               "    service-units: {a: {node: n1}, b: {node: n2}}\n"
                               "    service-instances: {si: {csis: {csi: {}}}}\n");
    ASSERT(c->sgs[0].cdb_roles);
    ASSERT_STREQ(c->nodes[0].cdb_address, "127.0.0.1:4571");
    ASSERT_STREQ(c->nodes[1].cdb_address, "[::1]:4572");
    ASSERT_STREQ(c->cdb.token_file, "token");
    ASSERT_STREQ(c->cdb.token, "s3cret"); /* relative to the description's directory, the newline dropped */
    config_free(c);

    const char *p;
    char *e = load_fail("nodes: {n1: {cdb-address: 'db1:4571'}, n2: {}}\n"
                        "service-groups:\n"
                        "  g:\n"
                        "    cdb-roles: true\n"
                        "    component: {command: /bin/sleep}\n"
                        "    service-units: {a: {node: n1}, b: {node: n2}, c: {node: n2}}\n"
                        "    service-instances: {si: {csis: {csi: {}}}}\n"
                        "  h:\n"
                        "    cdb-roles: yes\n"
                        "    component: {command: /bin/sleep}\n"
                        "    service-units: {d: {node: n1}, f: {node: n2}}\n"
                        "    service-instances: {si2: {csis: {csi2: {}}}}\n",
                        &p);
    ASSERT_ERROR(e, p, 1, 27,
                 "'cdb-address' must be a numeric ADDR:PORT such as 10.0.0.1:4570 or [fd00::1]:4570, got 'db1:4571'");
    ASSERT_ERROR(e, p, 4, 16,
                 "service group 'g': 'cdb-roles' needs the nodes' shared token: set 'token-file' in 'cdb'");
    ASSERT_ERROR(e, p, 6, 36, "service unit 'b' of 'g' (cdb-roles): node 'n2' needs a 'cdb-address'");
    ASSERT_ERROR(e, p, 6, 51,
                 "service unit 'c' of 'g' (cdb-roles) is on node 'n2' like 'b': the roles need one unit per node");
    ASSERT_ERROR(e, p, 9, 16,
                 "service group 'h': 'cdb-roles' without 'cdb-subtree' is already set by service group 'g' (one "
                 "group drives the main database: give the others a 'cdb-subtree' each)");
    free(e);

    e = load_fail("nodes: {n1: {cdb-address: 127.0.0.1:4571}, n2: {cdb-address: 127.0.0.1:4572}}\n"
                  "cdb: {token-file: token}\n"
                  "service-groups:\n"
                  "  g:\n"
                  "    redundancy: N-way-active\n"
                  "    cdb-roles: true\n"
                  "    component: {command: /bin/sleep}\n"
                  "    service-units: {a: {node: n1}, b: {node: n2}}\n"
                  "    service-instances: {si: {csis: {csi: {}}}}\n",
                  &p);
    ASSERT_ERROR(e, p, 6, 16,
                 "service group 'g': 'cdb-roles' needs redundancy 2N (one primary, one secondary), not N-way-active");
    ASSERT_EQ(count_lines(e), 1);
    free(e);
}

#define CDB_NODES                                                                     \
    "nodes: {n1: {cdb-address: 127.0.0.1:4571}, n2: {cdb-address: 127.0.0.1:4572}}\n" \
    "cdb: {token-file: token}\n"                                                      \
    "service-groups:\n"
#define CDB_GROUP(name, extra)                                              \
    "  " name ":\n"                                                         \
    "    cdb-roles: true\n" extra "    component: {command: /bin/sleep}\n"  \
    "    service-units: {" name "-a: {node: n1}, " name "-b: {node: n2}}\n" \
    "    service-instances: {" name "-si: {csis: {" name "-csi: {}}}}\n"

/* Several cdb-roles groups: one drives the main database, each other one a subtree of its own. */
TEST(cdb_roles_groups_with_subtrees) {
    write_file_mode("token", "s3cret\n", 7, 0600);
    struct config *c = load_ok(CDB_NODES CDB_GROUP("g", "") CDB_GROUP("bill", "    cdb-subtree: /bill\n")
                                   CDB_GROUP("acct", "    cdb-subtree: /acct/v1\n"));
    ASSERT(c->sgs[0].cdb_roles && !c->sgs[0].cdb_subtree);
    ASSERT_STREQ(c->sgs[1].cdb_subtree, "/bill");
    ASSERT_STREQ(c->sgs[2].cdb_subtree, "/acct/v1");
    config_free(c);
    /* Subtrees only: the main database keeps the roles the HA control gives it. */
    c = load_ok(CDB_NODES CDB_GROUP("bill", "    cdb-subtree: /bill\n"));
    config_free(c);

    const char *p;
    char *e = load_fail(
        CDB_NODES CDB_GROUP("bill", "    cdb-subtree: /bill\n") CDB_GROUP("billing", "    cdb-subtree: /bill/2026\n")
            CDB_GROUP("root", "    cdb-subtree: /\n")
                CDB_GROUP("bad", "    cdb-subtree: a//b\n") "  plain:\n"
                                                            "    cdb-subtree: /plain\n"
                                                            "    component: {command: /bin/sleep}\n"
                                                            "    service-units: {p-a: {node: n1}, p-b: {node: n2}}\n"
                                                            "    service-instances: {p-si: {csis: {p-csi: {}}}}\n",
        &p);
    ASSERT_ERROR(e, p, 12, 18,
                 "service group 'billing': 'cdb-subtree' /bill/2026 overlaps /bill of service group 'bill' (each "
                 "subtree has one group's roles: none may hold another)");
    ASSERT_ERROR(e, p, 18, 18,
                 "'cdb-subtree' must be a path of the configuration database other than / (like /billing: a '/' "
                 "before each part, no empty part, at most 255 bytes), got '/'");
    ASSERT_ERROR(e, p, 24, 18,
                 "'cdb-subtree' must be a path of the configuration database other than / (like /billing: a '/' "
                 "before each part, no empty part, at most 255 bytes), got 'a//b'");
    ASSERT_ERROR(e, p, 29, 18,
                 "service group 'plain': 'cdb-subtree' needs 'cdb-roles: true' (the group's roles drive it)");
    ASSERT_EQ(count_lines(e), 4);
    free(e);
}

/* What the start opens, --check opens the same way: a token file that cannot be read is an error of the
 * description, at its line, not a surprise at the start. */
TEST(error_token_file) {
    const char *p;
    char path[PATH_MAX], yaml[PATH_MAX + 64];
    snprintf(path, sizeof(path), "%s/loop", tmpdir());
    ASSERT_OK(symlink(path, path)); /* a link to itself: ELOOP */
    char *e = load_fail("cdb: {token-file: loop}\n" SG_OK, &p);
    ASSERT_ERROR(e, p, 1, 19, "'token-file' 'loop': cannot open: Too many levels of symbolic links");
    free(e);
    e = load_fail("cdb: {token-file: missing}\n" SG_OK, &p);
    ASSERT_ERROR(e, p, 1, 19, "'token-file' 'missing': cannot open: No such file or directory");
    free(e);
    snprintf(path, sizeof(path), "%s/fifo", tmpdir());
    ASSERT_OK(mkfifo(path, 0600)); /* nobody writes it: opening it to read would wait forever */
    e = load_fail("cdb: {token-file: fifo}\n" SG_OK, &p);
    ASSERT_ERROR(e, p, 1, 19, "'token-file' 'fifo': is a FIFO, not a regular file");
    free(e);
    e = load_fail("cdb: {token-file: .}\n" SG_OK, &p);
    ASSERT_ERROR(e, p, 1, 19, "'token-file' '.': is a directory, not a regular file");
    free(e);
    static const char *const bad[] = {"", "\n", "two\nlines\n", "tab\there\n"};
    for (size_t i = 0; i < ELEMENTSOF(bad); i++) {
        write_file_mode("bad-token", bad[i], strlen(bad[i]), 0600);
        e = load_fail("cdb: {token-file: bad-token}\n" SG_OK, &p);
        ASSERT_ERROR(e, p, 1, 19, "'token-file' 'bad-token': the token must be one line of 1 to 255 printable bytes");
        free(e);
    }
    char big[300];
    memset(big, 'x', sizeof(big));
    write_file_mode("big-token", big, sizeof(big), 0600);
    e = load_fail("cdb: {token-file: big-token}\n" SG_OK, &p);
    ASSERT_ERROR(e, p, 1, 19, "the token must be one line of 1 to 255 printable bytes");
    free(e);
    /* An absolute path is taken as it is. */
    write_file_mode("abs-token", "abc", 3, 0600);
    snprintf(yaml, sizeof(yaml), "cdb: {token-file: '%s/abs-token'}\n" SG_OK, tmpdir());
    struct config *c = load_ok(yaml);
    ASSERT_STREQ(c->cdb.token, "abc");
    config_free(c);
}

TEST(log_streams_and_their_checks) {
    struct config *c = load_ok(SG_OK);
    ASSERT_EQ(c->n_log_streams, 0u);
    config_free(c);
    c = load_ok("log-streams:\n"
                "  audit: {file: audit.log}\n"
                "  trade.x-1: {file: ./t.log, max-size: 16KiB, keep: 0}\n"
                "  big: {file: /tmp/big.log, max-size: 2G, keep: 99}\n"
                "  plain: {file: plain.log, max-size: 20000, keep: 1}\n" SG_OK);
    ASSERT_EQ(c->n_log_streams, 4u);
    char want[PATH_MAX + 16];
    const struct config_log_stream *s = config_find_log_stream(c, "audit");
    snprintf(want, sizeof(want), "%s/audit.log", tmpdir());
    ASSERT(s);
    ASSERT_STREQ(s->file, want);
    ASSERT_EQ(s->max_size, 10u * 1024 * 1024); /* the defaults */
    ASSERT_EQ(s->keep, 5u);
    s = config_find_log_stream(c, "trade.x-1");
    snprintf(want, sizeof(want), "%s/t.log", tmpdir());
    ASSERT_STREQ(s->file, want);
    ASSERT_EQ(s->max_size, 16u * 1024);
    ASSERT_EQ(s->keep, 0u);
    s = config_find_log_stream(c, "big");
    ASSERT_STREQ(s->file, "/tmp/big.log");
    ASSERT_EQ(s->max_size, 2ull << 30);
    ASSERT_EQ(s->keep, 99u);
    ASSERT_EQ(config_find_log_stream(c, "plain")->max_size, 20000u);
    ASSERT(!config_find_log_stream(c, "app"));
    config_free(c);

    const char *p;
    char *e = load_fail("log-streams:\n"
                        "  a: {file: /nonexistent/dir/a.log}\n"
                        "  b: {file: ., max-size: 1K}\n"
                        "  c: {file: c.log, keep: 100, max-size: '10M'}\n"
                        "  e: {file: e.log, max-size: 10TB}\n"
                        "  f: {}\n"
                        "  'g h': {file: g.log}\n"
                        "  dup: {file: e.log}\n"
                        "  x: {file: x.log, rotate: 1}\n"
                        "  n: {file: halo.yaml/x.log}\n"
                        "  " LONG_NAME_65 ": {file: l.log}\n" SG_OK,
                        &p);
    static const struct {
        int line, column;
        const char *text;
    } errors[] = {
        {2, 13, "log stream 'a': the directory '/nonexistent/dir' of its file does not exist"},
        {3, 13, "log stream 'b': '"},
        {3, 13, "/.' is a directory, not a file"},
        {3, 26, "'max-size' must be a size from 16KiB to 1024GiB such as 10MiB (without quotes), got '1K'"},
        {4, 26, "'keep' must be an integer from 0 to 99 (without quotes), got '100'"},
        {4, 41, "'max-size' must be a size from 16KiB to 1024GiB such as 10MiB (without quotes), got '10M'"},
        {5, 30, "'max-size' must be a size from 16KiB to 1024GiB such as 10MiB (without quotes), got '10TB'"},
        {6, 6, "log stream 'f' has no 'file'"},
        {7, 3, "invalid log stream name 'g h'"},
        {8, 15, "/e.log' is log stream 'e''s too"},
        {9, 20, "unknown key 'rotate' in log stream 'x' (allowed: file, max-size, keep)"},
        {10, 13, "/halo.yaml' of its file is not a directory"},
        {11, 3, "is longer than 64 bytes"},
    };
    for (size_t i = 0; i < ELEMENTSOF(errors); i++)
        ASSERT_ERROR(e, p, errors[i].line, errors[i].column, errors[i].text);
    ASSERT_EQ(count_lines(e), 12u);
    free(e);
}

TEST(error_nodes) {
    const char *p;
    char *e = load_fail("nodes: {n1: {}, n2: {}}\n"
                        "service-groups:\n"
                        "  g:\n"
                        "    component: {command: /bin/sleep}\n"
                        "    service-units: {a: {node: n3}, b: {}}\n"
                        "    service-instances: {si: {csis: {csi: {}}}}\n",
                        &p);
    ASSERT_ERROR(e, p, 5, 31, "service unit 'a': node 'n3' is not defined in 'nodes'");
    ASSERT_ERROR(e, p, 5, 36, "service unit 'b' needs a 'node' (2 nodes are defined)");
    ASSERT_EQ(count_lines(e), 2);
    free(e);

    /* without `nodes` the only node is "local" */
    e = load_fail("service-groups:\n"
                  "  g:\n"
                  "    component: {command: /bin/sleep}\n"
                  "    service-units: {a: {node: n1}, b: {}}\n"
                  "    service-instances: {si: {csis: {csi: {}}}}\n",
                  &p);
    ASSERT_ERROR(e, p, 4, 31, "node 'n1' is not defined in 'nodes'");
    free(e);

    e = load_fail("nodes: {}\n" SG_OK, &p);
    ASSERT_ERROR(e, p, 1, 8, "'nodes' must name at least one node");
    free(e);
}

TEST(error_2n_needs_two_units) {
    const char *p;
    char *e = load_fail("service-groups:\n"
                        "  g:\n"
                        "    component: {command: /bin/sleep}\n"
                        "    service-units: {a: {}}\n"
                        "    service-instances: {si: {csis: {csi: {}}}}\n",
                        &p);
    ASSERT_ERROR(e, p, 2, 3, "service group 'g': redundancy 2N needs at least 2 service units, found 1");
    ASSERT_EQ(count_lines(e), 1);
    free(e);
}

TEST(error_redundancy_unknown) {
    const char *p;
    char *e = load_fail("service-groups:\n"
                        "  h:\n"
                        "    redundancy: 3N\n",
                        &p);
    ASSERT_ERROR(e, p, 3, 17, "unknown redundancy model '3N' (supported: 2N, N+M, N-way, N-way-active, no-redundancy)");
    ASSERT_ERROR(e, p, 2, 3, "service group 'h' needs at least one service unit in 'service-units'");
    ASSERT_EQ(count_lines(e), 3);
    free(e);
}

/* The canonical spellings, the SA Forum's and any case give the same model. */
TEST(redundancy_spellings) {
    static const struct {
        const char *text;
        enum config_redundancy model;
    } cases[] = {
        {"2N", CONFIG_REDUNDANCY_2N},
        {"N+M", CONFIG_REDUNDANCY_N_PLUS_M},
        {"n+m", CONFIG_REDUNDANCY_N_PLUS_M},
        {"N-way", CONFIG_REDUNDANCY_N_WAY},
        {"NWay", CONFIG_REDUNDANCY_N_WAY},
        {"N-Way-Active", CONFIG_REDUNDANCY_N_WAY_ACTIVE},
        {"NWayActive", CONFIG_REDUNDANCY_N_WAY_ACTIVE},
        {"n-way-active", CONFIG_REDUNDANCY_N_WAY_ACTIVE},
        {"no-redundancy", CONFIG_REDUNDANCY_NO_REDUNDANCY},
        {"NoRedundancy", CONFIG_REDUNDANCY_NO_REDUNDANCY},
    };
    for (size_t i = 0; i < ELEMENTSOF(cases); i++) {
        char y[512];
        snprintf(y, sizeof(y),
                 "service-groups:\n"
                 "  g:\n"
                 "    redundancy: %s\n"
                 "    component: {command: /bin/sleep}\n"
                 "    service-units: {a: {}, b: {}}\n"
                 "    service-instances: {si: {csis: {csi: {}}}}\n",
                 cases[i].text);
        struct config *c = load_ok(y);
        ASSERT_EQ(c->sgs[0].redundancy, cases[i].model);
        config_free(c);
    }
}

TEST(models_keys) {
    struct config *c = load_ok("service-groups:\n"
                               "  g:\n"
                               "    redundancy: N+M\n"
                               "    max-active-sis-per-su: 2\n"
                               "    max-standby-sis-per-su: 3\n"
                               "    component: {command: /bin/sleep}\n"
                               "    service-units: {a: {}, b: {}, c: {}, d: {}}\n"
                               "    service-instances:\n"
                               "      x: {csis: {x: {}}}\n"
                               "      y: {rank: 0, depends-on: [x], csis: {y: {}}}\n"
                               "  w:\n"
                               "    redundancy: N-way-active\n"
                               "    component: {command: /bin/sleep}\n"
                               "    service-units: {e: {}, f: {}, h: {}}\n"
                               "    service-instances: {z: {active-assignments: 2, csis: {z: {}}}}\n");
    const struct config_sg *g = &c->sgs[0];
    ASSERT_EQ(g->active_sus, 3); /* N defaults to the units besides M, M to 1 */
    ASSERT_EQ(g->standby_sus, 1);
    ASSERT_EQ(g->max_active_sis_per_su, 2);
    ASSERT_EQ(g->max_standby_sis_per_su, 3);
    ASSERT_EQ(g->sis[0].rank, 0); /* its position */
    ASSERT_EQ(g->sis[1].rank, 0); /* given */
    ASSERT_EQ(g->sis[1].n_depends_on, 1);
    ASSERT_STREQ(g->sis[1].depends_on[0], "x");
    ASSERT_EQ(c->sgs[1].sis[0].active_assignments, 2);
    config_free(c);
}

TEST(error_models_impossible) {
    const char *p;
    char *e = load_fail("service-groups:\n"
                        "  g:\n"
                        "    redundancy: N+M\n"
                        "    active-sus: 2\n"
                        "    standby-sus: 2\n"
                        "    component: {command: /bin/sleep}\n"
                        "    service-units: {a: {}, b: {}, c: {}}\n"
                        "    service-instances:\n"
                        "      x: {active-assignments: 2, depends-on: [y], csis: {x: {}}}\n"
                        "      y: {depends-on: [x], csis: {y: {}}}\n"
                        "      q: {depends-on: [nope, q], csis: {q: {}}}\n"
                        "  w:\n"
                        "    redundancy: N-way-active\n"
                        "    active-sus: 1\n"
                        "    component: {command: /bin/sleep}\n"
                        "    service-units: {e: {}, f: {}}\n"
                        "    service-instances: {z: {active-assignments: 3, csis: {z: {}}}}\n"
                        "  v:\n"
                        "    redundancy: no-redundancy\n"
                        "    component: {command: /bin/sleep}\n"
                        "    service-units: {h: {}}\n"
                        "    service-instances: {s1: {csis: {s1: {}}}, s2: {csis: {s2: {}}}}\n"
                        "  u:\n"
                        "    redundancy: N-way\n"
                        "    component: {command: /bin/sleep}\n"
                        "    service-units: {i: {}, j: {}}\n"
                        "    service-instances: {t: {standby-assignments: 2, csis: {t: {}}}}\n",
                        &p);
    ASSERT_ERROR(e, p, 4, 17,
                 "service group 'g': redundancy N+M with 2 active and 2 standby service units needs 4 service units, "
                 "found 3");
    ASSERT_ERROR(e, p, 9, 31, "'active-assignments' is for redundancy N-way-active only; service group 'g' is N+M");
    ASSERT_ERROR(e, p, 10, 23, "service instance 'y': 'depends-on' makes a cycle through 'x'");
    ASSERT_ERROR(e, p, 11, 23,
                 "service instance 'q': 'depends-on' names 'nope', which is not a service instance of service group "
                 "'g'");
    ASSERT_ERROR(e, p, 11, 23, "service instance 'q' depends on itself");
    ASSERT_ERROR(e, p, 14, 17, "'active-sus' is for redundancy N+M only; service group 'w' is N-way-active");
    ASSERT_ERROR(e, p, 17, 49,
                 "service instance 'z': 'active-assignments' 3 is more than the 2 service units of service group 'w'");
    ASSERT_ERROR(e, p, 18, 3,
                 "service group 'v': with redundancy no-redundancy a service unit takes one service instance at most: "
                 "2 service instances need at least 2 service units, found 1");
    ASSERT_ERROR(e, p, 27, 50,
                 "service instance 't': 'standby-assignments' 2 needs 2 service units besides the ACTIVE one; service "
                 "group 'u' has 2 in all");
    ASSERT_EQ(count_lines(e), 9);
    free(e);

    e = load_fail("service-groups:\n"
                  "  g:\n"
                  "    redundancy: N-way-active\n"
                  "    active-sus: 0\n"
                  "    component: {command: /bin/sleep}\n"
                  "    service-units: {a: {}, b: {}}\n"
                  "    service-instances: {x: {rank: -1, active-assignments: 0, csis: {x: {}}}}\n",
                  &p);
    ASSERT_ERROR(e, p, 4, 17, "'active-sus' must be at least 1");
    ASSERT_ERROR(e, p, 7, 35, "'rank' must be a non-negative integer (without quotes), got '-1'");
    ASSERT_ERROR(e, p, 7, 59, "'active-assignments' must be at least 1");
    free(e);
}

TEST(error_required_maps) {
    const char *p;
    char *e = load_fail("cluster: x\n", &p);
    ASSERT_ERROR(e, p, 1, 1,
                 "the description has no 'service-groups' (write 'service-groups: {}' for a node that only serves "
                 "the configuration database)");
    free(e);

    /* Written out empty, it is a node that only serves the configuration database. */
    struct config *c = load_ok("service-groups: {}\n");
    ASSERT_EQ(c->n_sgs, 0);
    config_free(c);

    e = load_fail("service-groups:\n"
                  "  g:\n"
                  "    component: {command: /bin/sleep}\n"
                  "    service-units: {a: {}, b: {components: {}}}\n"
                  "    service-instances:\n"
                  "      si1: {}\n"
                  "      si2: {csis: {}}\n",
                  &p);
    ASSERT_ERROR(e, p, 4, 44, "'components' must not be empty");
    ASSERT_ERROR(e, p, 6, 7, "service instance 'si1' needs at least one CSI in 'csis'");
    ASSERT_ERROR(e, p, 7, 19, "service instance 'si2' needs at least one CSI in 'csis'");
    ASSERT_EQ(count_lines(e), 3);
    free(e);
}

TEST(error_csi_types) {
    const char *p;
    char *e = load_fail("service-groups:\n"
                        "  g:\n"
                        "    component: {command: /bin/sleep}\n"
                        "    service-units:\n"
                        "      a: {components: {db: {csi-types: [db]}, web: {csi-types: [web]}}}\n"
                        "      b: {components: {db: {csi-types: [db]}, web: {csi-types: []}}}\n"
                        "    service-instances:\n"
                        "      si:\n"
                        "        csis:\n"
                        "          c1: {type: web}\n"
                        "          c2: {}\n"
                        "          c3: {type: db}\n"
                        "  h:\n"
                        "    component: {command: /bin/sleep, csi-types: [x]}\n"
                        "    service-units: {c: {}, d: {component: {csi-types: [y]}}}\n"
                        "    service-instances: {si2: {csis: {c4: {type: x}, c5: {}}}}\n",
                        &p);
    ASSERT_ERROR(e, p, 6, 64, "'csi-types' must not be empty (leave it out to take any CSI type)");
    /* b/web takes any type, since its csi-types was wrong: no second error for c1 */
    ASSERT_ERROR(e, p, 11, 11, "CSI 'c2' has no 'type', but service unit 'a' has 2 components: set 'type'");
    ASSERT_ERROR(e, p, 16, 49, "CSI 'c4': no component of service unit 'd' takes type 'x'");
    ASSERT_EQ(count_lines(e), 3);
    free(e);
}

TEST(error_empty_file) {
    const char *p;
    char *e = load_fail("", &p);
    ASSERT_ERROR(e, p, 1, 1, "the description is empty");
    free(e);
    e = load_fail("# nothing but a comment\n\n", &p);
    ASSERT_ERROR(e, p, 1, 1, "the description is empty");
    free(e);
    e = load_fail("---\n", &p);
    ASSERT_ERROR(e, p, 1, 1, "the description is empty");
    free(e);
}

TEST(error_file_cannot_be_read) {
    struct config *c = NULL;
    char *e = NULL;
    char p[PATH_MAX];
    snprintf(p, sizeof(p), "%s/missing.yaml", tmpdir());
    ASSERT_EQ(config_load(p, &c, &e), -ENOENT);
    ASSERT(!c);
    char expect[PATH_MAX + 64];
    snprintf(expect, sizeof(expect), "%s: cannot open: No such file or directory\n", p);
    ASSERT_STREQ(e, expect);
    free(e);
    e = NULL;
    ASSERT_EQ(config_load(tmpdir(), &c, &e), -EISDIR);
    free(e);
    /* A FIFO is refused at once: neither --check nor the start waits for a writer. */
    snprintf(p, sizeof(p), "%s/fifo.yaml", tmpdir());
    ASSERT_OK(mkfifo(p, 0600));
    e = NULL;
    ASSERT_EQ(config_load(p, &c, &e), -EINVAL);
    snprintf(expect, sizeof(expect), "%s: is a FIFO, not a regular file\n", p);
    ASSERT_STREQ(e, expect);
    free(e);
    e = NULL;
    snprintf(p, sizeof(p), "%s/missing.yaml", tmpdir());
    ASSERT_EQ(config_load(p, &c, NULL), -ENOENT);
    ASSERT_EQ(config_load(NULL, &c, NULL), -EINVAL);
    ASSERT_EQ(config_load(p, NULL, NULL), -EINVAL);
}

TEST(error_file_too_large) {
    size_t size = 1024 * 1024 + 1;
    char *big = malloc(size);
    ASSERT(big);
    memset(big, '#', size);
    big[size - 1] = '\n';
    const char *p = write_file_mode("big.yaml", big, size, 0644);
    free(big);
    struct config *c = NULL;
    char *e = NULL;
    ASSERT_EQ(config_load(p, &c, &e), -EFBIG);
    ASSERT_ERROR(e, p, 1, 1, "the description is larger than 1 MiB");
    free(e);
}

static double elapsed(const struct timespec *a) {
    struct timespec b;
    clock_gettime(CLOCK_MONOTONIC, &b);
    return (double)(b.tv_sec - a->tv_sec) + (double)(b.tv_nsec - a->tv_nsec) / 1e9;
}

TEST(error_nesting_too_deep) {
    const char *p;
    char *e = load_fail("service-groups:\n"
                        "  g: [[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]\n",
                        &p);
    ASSERT_ERROR(e, p, 2, 36, "nesting deeper than 32 levels");
    ASSERT_EQ(count_lines(e), 1);
    free(e);

    /* libyaml alone takes minutes on this: it must be refused fast */
    size_t size = 1024 * 1024;
    char *deep = malloc(size + 1);
    ASSERT(deep);
    memset(deep, '[', size);
    deep[size] = 0;
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    e = load_fail(deep, &p);
    ASSERT(elapsed(&t) < 10.0); /* a bound against a blow-up, with room for ASan on a busy machine */
    ASSERT_ERROR(e, p, 1, 33, "nesting deeper than 32 levels");
    free(deep);
    free(e);

    /* block style: one "- " per level */
    char block[256] = "";
    for (int i = 0; i < 40; i++)
        strcat(block, "- ");
    strcat(block, "x\n");
    e = load_fail(block, &p);
    ASSERT_ERROR(e, p, 1, 65, "nesting deeper than 32 levels");
    free(e);
}

TEST(error_alias_bombs) {
    /* 100 groups x 100 units x 100 components x 100 variables from about 60 KB of aliases */
    size_t size = 128 * 1024, n = 0;
    char *yaml = malloc(size);
    ASSERT(yaml);
    n += (size_t)snprintf(yaml + n, size - n, "e: &e {");
    for (int i = 0; i < 100; i++)
        n += (size_t)snprintf(yaml + n, size - n, "%sV%d: x", i ? ", " : "", i);
    n += (size_t)snprintf(yaml + n, size - n, "}\nc: &c {");
    for (int i = 0; i < 100; i++)
        n += (size_t)snprintf(yaml + n, size - n, "%sc%d: {command: /bin/sleep, env: *e}", i ? ", " : "", i);
    n += (size_t)snprintf(yaml + n, size - n, "}\ns: &s {");
    for (int i = 0; i < 100; i++)
        n += (size_t)snprintf(yaml + n, size - n, "%ss%d: {components: *c}", i ? ", " : "", i);
    n += (size_t)snprintf(yaml + n, size - n, "}\nservice-groups: {");
    for (int i = 0; i < 100; i++)
        n += (size_t)snprintf(yaml + n, size - n, "%sg%d: {service-units: *s}", i ? ", " : "", i);
    n += (size_t)snprintf(yaml + n, size - n, "}\n");
    ASSERT(n < size);

    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    const char *p;
    char *e = load_fail(yaml, &p);
    /* A bound, not a figure: an explosion takes minutes; 15 s leaves room for ASan on a busy machine. */
    ASSERT(elapsed(&t) < 15.0);
    ASSERT_ERROR(e, p, 1, 1,
                 "the description is too large to process: aliases, inherited settings or many "
                 "service units times many CSIs multiply it beyond the limit");
    free(yaml);
    free(e);

    /* the same through inheritance alone: one long argument copied into many components */
    size = 1000 * 1000;
    yaml = malloc(size);
    ASSERT(yaml);
    n = (size_t)snprintf(yaml, size, "defaults: {component: {command: /bin/sleep, args: [");
    memset(yaml + n, 'a', 500 * 1000);
    n += 500 * 1000;
    n += (size_t)snprintf(yaml + n, size - n, "]}}\nservice-groups: {g: {service-units: {");
    for (int i = 0; n < size - 100; i++)
        n += (size_t)snprintf(yaml + n, size - n, "%su%d: ~", i ? ", " : "", i);
    n += (size_t)snprintf(yaml + n, size - n, "}}}\n");
    ASSERT(n < size);
    clock_gettime(CLOCK_MONOTONIC, &t);
    e = load_fail(yaml, &p);
    /* A bound, not a figure: an explosion takes minutes; 15 s leaves room for ASan on a busy machine. */
    ASSERT(elapsed(&t) < 15.0);
    ASSERT_ERROR(e, p, 1, 1, "the description is too large to process");
    free(yaml);
    free(e);

    /* too many anchors would make libyaml's loader quadratic */
    size = 1001 * 16 + 1;
    char *many = malloc(size);
    ASSERT(many);
    many[0] = 0;
    for (int i = 0; i < 1001; i++)
        sprintf(many + strlen(many), "k%d: &a%d 1\n", i, i);
    e = load_fail(many, &p);
    ASSERT(strstr(e, "more than 1000 anchors"));
    free(many);
    free(e);
}

TEST(several_errors_all_reported_in_order) {
    const char *p;
    char *e = load_fail("cluster: bad!\n"
                        "service-groups:\n"
                        "  g:\n"
                        "    component: {command: /bin/sleep, restart: {window: soon}}\n"
                        "    service-units: {a: {node: elsewhere}}\n"
                        "    service-instances: {si: {csis: {}}}\n"
                        "    extra: 1\n",
                        &p);
    ASSERT_ERROR(e, p, 1, 10, "invalid cluster name 'bad!'");
    ASSERT_ERROR(e, p, 3, 3, "redundancy 2N needs at least 2 service units, found 1");
    ASSERT_ERROR(e, p, 4, 56, "'window' must be a duration");
    ASSERT_ERROR(e, p, 5, 31, "node 'elsewhere' is not defined in 'nodes'");
    ASSERT_ERROR(e, p, 6, 36, "service instance 'si' needs at least one CSI");
    ASSERT_ERROR(e, p, 7, 5, "unknown key 'extra' in service group 'g'");
    ASSERT_EQ(count_lines(e), 6);
    /* sorted by position */
    ASSERT(strstr(e, ":1:10:") < strstr(e, ":3:3:"));
    ASSERT(strstr(e, ":3:3:") < strstr(e, ":4:56:"));
    ASSERT(strstr(e, ":6:36:") < strstr(e, ":7:5:"));
    free(e);
}

TEST(errors_are_appended) {
    struct config *c = NULL;
    char *e = strdup("earlier\n");
    ASSERT(e);
    const char *p;
    ASSERT_EQ(load("service-groups: 1\n", &c, &e, &p), -EINVAL);
    ASSERT(strncmp(e, "earlier\n", 8) == 0);
    ASSERT_ERROR(e + 8, p, 1, 17, "'service-groups' must be a map, got '1'");
    free(e);
}

TEST(control_characters_stay_on_one_line) {
    const char *p;
    char *e = load_fail("\"bad\\nkey\": 1\n" SG_OK, &p);
    ASSERT_ERROR(e, p, 1, 1, "unknown key 'bad?key'");
    ASSERT_EQ(count_lines(e), 1);
    free(e);
}

static const char *env_of(const struct config_component *c, const char *name) {
    for (size_t i = 0; i < c->n_env; i++)
        if (strcmp(c->env[i].name, name) == 0)
            return c->env[i].value;
    return NULL;
}

TEST(env_merges_variable_by_variable) {
    setenv("PATH", "/bin", 1);
    struct config *c = load_ok("defaults:\n"
                               "  component: {env: {LEVEL: defaults, KEEP: d}}\n"
                               "service-groups:\n"
                               "  g:\n"
                               "    component: {command: sleep, env: {LEVEL: group, GROUP: g}}\n"
                               "    service-units:\n"
                               "      a: {component: {env: {LEVEL: unit, UNIT: a}}}\n"
                               "      b: {}\n"
                               "    service-instances:\n"
                               "      si: {csis: {c: {}}}\n");
    const struct config_component *a = &find_su(c, "a")->components[0];
    const struct config_component *b = &find_su(c, "b")->components[0];
    ASSERT_EQ(a->n_env, 4);
    ASSERT_STREQ(env_of(a, "LEVEL"), "unit");
    ASSERT_STREQ(env_of(a, "KEEP"), "d");
    ASSERT_STREQ(env_of(a, "GROUP"), "g");
    ASSERT_STREQ(env_of(a, "UNIT"), "a");
    ASSERT_EQ(b->n_env, 3);
    ASSERT_STREQ(env_of(b, "LEVEL"), "group");
    ASSERT(env_of(b, "UNIT") == NULL);
    config_free(c);
}

#include "pooled.h"

TEST(pools_services_and_devices) {
    setenv("PATH", "/bin", 1);
    struct config *c = load_ok(POOLED);
    const struct config_component *a = &find_su(c, "a")->components[0];
    ASSERT_EQ(a->n_services, 2);
    ASSERT_STREQ(a->services[1], "dtm");
    ASSERT_EQ(a->n_devices, 2);
    ASSERT_STREQ(a->devices[0], "sda");
    ASSERT_EQ(find_su(c, "b")->components[0].n_devices, 0);
    ASSERT_EQ(c->n_pools, 2);
    ASSERT_STREQ(c->pools[0].name, "p1");
    ASSERT_EQ(c->pools[0].tolerate, 1); /* the default */
    ASSERT_EQ(c->pools[0].n_processes, 3);
    ASSERT_EQ(c->pools[1].tolerate, 0);
    ASSERT(!c->pools[0].report); /* participants: list, the default */
    ASSERT(c->pools[1].report);
    const char *node = NULL;
    ASSERT(config_find_component(c, "d/x", &node) != NULL);
    ASSERT_STREQ(node, "n1");
    ASSERT(config_find_pool_of(c, "d/y") == &c->pools[1]);
    ASSERT(config_find_pool_of(c, "d/x") == NULL);
    ASSERT(config_find_pool_of(c, "a") == &c->pools[0]);
    ASSERT(config_find_component(c, "d", NULL) == NULL);
    config_free(c);
}

TEST(pool_errors) {
    setenv("PATH", "/bin", 1);
    const char *path;
    char *e = load_fail("nodes: {n1: {}, n2: {}}\n"
                        "defaults:\n"
                        "  component: {command: sleep, services: [ios, ios, 'x y'], devices: 3}\n"
                        "service-groups:\n"
                        "  s1:\n"
                        "    service-units: {a: {node: n1}, b: {node: n2}}\n"
                        "    service-instances: {si: {csis: {c: {}}}}\n"
                        "pools:\n"
                        "  p1: {processes: [a, b, zz, a], tolerate: 2}\n"
                        "  p2: {processes: [b], tolerate: x}\n"
                        "  p3: {}\n"
                        "  p4: {processes: []}\n"
                        "  p5: {processes: [a], tolerate: 0, members: 1}\n"
                        "  p6: {processes: [c], tolerate: 0, participants: all}\n",
                        &path);
    ASSERT(has_error(e, path, "3:47: service 'ios' is listed twice"));
    ASSERT(has_error(e, path, "3:52: invalid service name 'x y'"));
    ASSERT(has_error(e, path, "3:69: 'devices' must be a list"));
    ASSERT(has_error(e, path, "9:3: pool 'p1': process 'zz' is not a component of the description"));
    ASSERT(has_error(e, path, "9:3: pool 'p1' lists process 'a' twice"));
    ASSERT(has_error(e, path, "10:3: process 'b' is in pool 'p1' and in pool 'p2'"));
    ASSERT(has_error(e, path, "10:34: 'tolerate' must be a non-negative integer"));
    ASSERT(has_error(e, path, "11:7: pool 'p3' has no 'processes'"));
    ASSERT(has_error(e, path, "12:19: pool 'p4' has no processes"));
    ASSERT(has_error(e, path, "13:37: unknown key 'members'"));
    ASSERT(has_error(e, path, "14:51: 'participants' must be list or report, got 'all'"));
    /* 'tolerate: 2' of a pool of 4 listed names is fine; 'tolerate: x' is reported once. */
    ASSERT(!strstr(e, "'tolerate' (2)"));
    ASSERT(!strstr(e, "'tolerate' (1)"));
    free(e);

    e = load_fail("defaults: {component: {command: sleep}}\n"
                  "service-groups:\n"
                  "  s1:\n"
                  "    service-units: {a: {}, b: {}}\n"
                  "    service-instances: {si: {csis: {c: {}}}}\n"
                  "pools:\n"
                  "  p: {processes: [a, b], tolerate: 2}\n",
                  &path);
    ASSERT(has_error(e, path, "7:3: pool 'p': 'tolerate' (2) must be below its number of processes (2)"));
    free(e);
}

/* A description of n pool processes on node n1 in pools of at most 'per' (and one more SU on n2). */
static char *many_pool_processes(int n, int per) {
    size_t cap = 64 * 1024, len = 0;
    char *t = malloc(cap);
    ASSERT(t);
    len += (size_t)snprintf(t + len, cap - len,
                            "nodes: {n1: {}, n2: {}}\n"
                            "defaults: {component: {command: sleep}}\n"
                            "service-groups:\n"
                            "  g:\n"
                            "    service-units:\n"
                            "      other: {node: n2}\n");
    for (int i = 0; i < n; i++)
        len += (size_t)snprintf(t + len, cap - len, "      p%d: {node: n1}\n", i);
    len += (size_t)snprintf(t + len, cap - len, "    service-instances: {si: {csis: {c: {}}}}\npools:\n");
    for (int i = 0; i < n; i++) {
        if (i % per == 0)
            len += (size_t)snprintf(t + len, cap - len, "  pool%d: {processes: [p%d", i / per, i);
        else
            len += (size_t)snprintf(t + len, cap - len, ", p%d", i);
        if ((i + 1) % per == 0 || i + 1 == n)
            len += (size_t)snprintf(t + len, cap - len, "]}\n");
    }
    return t;
}

/* The caps of the recovery protocol are checked, each with its reason: 32
 * processes in a pool, 62 pool processes on a node (its failure is written to
 * each one's vector in one transaction); at the caps the description loads. */
TEST(pool_caps) {
    setenv("PATH", "/bin", 1);
    const char *path;
    char *t = many_pool_processes(33, 33);
    char *e = load_fail(t, &path);
    ASSERT(strstr(e, "pool 'pool0' has 33 processes; at most 32 are allowed"));
    free(e);
    free(t);
    t = many_pool_processes(63, 32);
    e = load_fail(t, &path);
    ASSERT(has_error(e, path, "1:9: node 'n1' runs 63 pool processes; at most 62 are allowed"));
    free(e);
    free(t);
    t = many_pool_processes(62, 31);
    struct config *c = load_ok(t);
    ASSERT_EQ(c->n_pools, 2);
    config_free(c);
    free(t);
}

TEST(non_sa_aware_settings) {
    struct config *c = load_ok("service-groups:\n"
                               "  web:\n"
                               "    component:\n"
                               "      type: non-sa-aware\n"
                               "      command: /bin/sleep\n"
                               "      terminate: [sh, -c, \"kill $HALO_PID\"]\n"
                               "      cleanup: [/bin/rm, -f, /tmp/lock]\n"
                               "      pidfile: run/web.pid\n"
                               "    service-units:\n"
                               "      a: {}\n"
                               "      b: {component: {type: sa-aware, terminate: ~, cleanup: ~, pidfile: ~}}\n"
                               "    service-instances: {web: {csis: {www: {}}}}\n");
    ASSERT(c);
    const struct config_component *a = &c->sgs[0].sus[0].components[0];
    ASSERT_EQ(a->type, CONFIG_COMP_NON_SA_AWARE);
    ASSERT_EQ(a->n_terminate, 3);
    ASSERT(a->terminate[0][0] == '/' && strstr(a->terminate[0], "/sh"));
    ASSERT_STREQ(a->terminate[2], "kill $HALO_PID");
    ASSERT(a->terminate[3] == NULL);
    ASSERT_EQ(a->n_cleanup, 3);
    ASSERT_STREQ(a->cleanup[0], "/bin/rm");
    ASSERT(a->pidfile && a->pidfile[0] == '/' && strstr(a->pidfile, "/run/web.pid"));
    /* b goes back to the default: no command of its own is kept. */
    const struct config_component *b = &c->sgs[0].sus[1].components[0];
    ASSERT_EQ(b->type, CONFIG_COMP_SA_AWARE);
    config_free(c);
}

TEST(proxied_settings) {
    struct config *c = load_ok("service-groups:\n"
                               "  proxies:\n"
                               "    component: {command: /bin/sleep}\n"
                               "    service-units: {pa: {}, pb: {}}\n"
                               "    service-instances: {p: {csis: {p: {}}}}\n"
                               "  px:\n"
                               "    component: {type: proxied}\n"
                               "    service-units:\n"
                               "      xa: {component: {proxy: pa}}\n"
                               "      xb: {component: {proxy: pb}}\n"
                               "    service-instances: {x: {csis: {x: {}}}}\n");
    ASSERT(c);
    const struct config_component *xa = &c->sgs[1].sus[0].components[0];
    ASSERT_EQ(xa->type, CONFIG_COMP_PROXIED);
    ASSERT_STREQ(xa->proxy, "pa");
    ASSERT(!xa->command);
    ASSERT_STREQ(config_comp_type_to_string(xa->type), "proxied");
    config_free(c);
}

TEST(error_proxied_settings) {
    const char *p;
    char *e = load_fail("nodes: {n1: {}, n2: {}}\n"
                        "service-groups:\n"
                        "  px:\n"
                        "    component: {type: proxied}\n"
                        "    service-units:\n"
                        "      a: {node: n1, component: {proxy: nobody}}\n"
                        "      b: {node: n1, component: {proxy: c}}\n"
                        "      c: {node: n1, component: {proxy: sa}}\n"
                        "      d: {node: n1, component: {command: /bin/sleep}}\n"
                        "      e: {node: n1, components: {p: {proxy: e/q}, q: {type: sa-aware, command: /bin/sleep}}}\n"
                        "      f: {node: n1, component: {proxy: sb}}\n"
                        "      g: {node: n1, component: {type: sa-aware, command: /bin/sleep, proxy: sa}}\n"
                        "      h: {node: n1, component: {proxy: nsa}}\n"
                        "    service-instances: {x: {csis: {x: {}}}}\n"
                        "  plain:\n"
                        "    component: {command: /bin/sleep}\n"
                        "    service-units:\n"
                        "      sa: {node: n1}\n"
                        "      sb: {node: n2}\n"
                        "      nsa: {node: n1, component: {type: non-sa-aware}}\n"
                        "    service-instances: {y: {csis: {y: {}}}}\n",
                        &p);
    ASSERT_ERROR(e, p, 6, 40, "component 'a': proxy 'nobody' is no component of the description");
    ASSERT_ERROR(e, p, 7, 40,
                 "component 'b': proxy 'c' is proxied; a proxy is sa-aware (it links libhalo), so "
                 "proxies do not chain or form a cycle");
    ASSERT_ERROR(e, p, 9, 42, "component 'd' is proxied: it has no 'command' (its proxy instantiates it)");
    ASSERT_ERROR(e, p, 9, 7, "component 'd' is proxied and has no 'proxy'");
    ASSERT_ERROR(e, p, 10, 45, "component 'e/p': proxy 'e/q' is in its own service unit 'e'");
    ASSERT_ERROR(e, p, 11, 40, "component 'f' is on node 'n1' and its proxy 'sb' on node 'n2'");
    ASSERT_ERROR(e, p, 12, 77, "'proxy' is for proxied components only (set 'type: proxied')");
    ASSERT_ERROR(e, p, 13, 40, "component 'h': proxy 'nsa' is non-sa-aware; a proxy is sa-aware");
    free(e);
}

TEST(error_non_sa_aware_settings) {
    const char *p;
    char *e = load_fail("service-groups:\n"
                        "  g:\n"
                        "    component: {command: /bin/sleep, pidfile: x.pid, terminate: [/bin/true]}\n"
                        "    service-units:\n"
                        "      a: {component: {type: nonsa}}\n"
                        "      b: {component: {type: non-sa-aware, cleanup: [], terminate: [/no/such/kill]}}\n"
                        "    service-instances: {si: {csis: {c1: {}, c2: {}}}}\n"
                        "  h:\n"
                        "    component: {command: /bin/sleep, type: non-sa-aware, csi-types: [x]}\n"
                        "    service-units:\n"
                        "      c: {components: {p: {}, q: {type: sa-aware, csi-types: [y]}}}\n"
                        "      d: {components: {p: {}, q: {type: sa-aware, csi-types: [y]}}}\n"
                        "    service-instances: {si2: {csis: {c3: {type: y}}}}\n"
                        "pools: {pool: {processes: [c/q, d/p]}}\n",
                        &p);
    ASSERT_ERROR(e, p, 3, 47, "'pidfile' is for non-sa-aware components only (set 'type: non-sa-aware')");
    ASSERT_ERROR(e, p, 3, 65, "'terminate' is for non-sa-aware components only");
    ASSERT_ERROR(e, p, 5, 29, "'type' must be sa-aware, non-sa-aware, ocf or proxied, got 'nonsa'");
    ASSERT_ERROR(e, p, 6, 52, "'cleanup' must name a command: [COMMAND, ARGS...]");
    ASSERT_ERROR(e, p, 6, 68, "'terminate' command '/no/such/kill' does not exist");
    ASSERT_ERROR(e, p, 7, 45, "component 'b' is non-sa-aware and takes CSI 'c1' and CSI 'c2': it takes one");
    ASSERT_ERROR(e, p, 11, 24, "component 'c/p' is non-sa-aware and takes no CSI of its group: it would never run");
    ASSERT_ERROR(e, p, 14, 9, "pool 'pool': process 'd/p' is non-sa-aware");
    free(e);
}

TEST(recovery_escalation_and_health_check_keys) {
    struct config *c = load_ok("nodes: {n1: {su-failover: {max: 2, probation: 30s}}, n2: {}}\n"
                               "defaults: {component: {recovery: component-failover}}\n"
                               "service-groups:\n"
                               "  g:\n"
                               "    escalation: {component-restart: {max: 3, probation: 10s}, su-restart: {max: 1}}\n"
                               "    component: {command: /bin/sleep, health-check: {period: 2s, keys: [alive, deep]}}\n"
                               "    service-units:\n"
                               "      a: {node: n1, component: {recovery: component-restart}}\n"
                               "      b: {node: n2, component: {recovery: node-failfast}}\n"
                               "    service-instances: {si: {csis: {csi: {}}}}\n"
                               "  h:\n"
                               "    component: {command: /bin/sleep}\n"
                               "    service-units: {c: {node: n1}, d: {node: n2}}\n"
                               "    service-instances: {sj: {csis: {csj: {}}}}\n");
    const struct config_sg *g = &c->sgs[0], *h = &c->sgs[1];
    ASSERT_EQ(g->comp_restart.max, 3u);
    ASSERT_EQ(g->comp_restart.probation, 10 * USEC_PER_SEC);
    ASSERT_EQ(g->su_restart.max, 1u);
    ASSERT_EQ(g->su_restart.probation, 60 * USEC_PER_SEC); /* the default */
    /* No escalation: the first failure climbs to an SU failover, as before the ladder. */
    ASSERT_EQ(h->comp_restart.max, 0u);
    ASSERT_EQ(h->su_restart.max, 0u);
    ASSERT(config_find_node(c, "n1")->su_failover.given);
    ASSERT_EQ(config_find_node(c, "n1")->su_failover.max, 2u);
    ASSERT(!config_find_node(c, "n2")->su_failover.given);
    ASSERT_EQ(find_su(c, "a")->components[0].recovery, CONFIG_RECOVERY_COMPONENT_RESTART);
    ASSERT_EQ(find_su(c, "b")->components[0].recovery, CONFIG_RECOVERY_NODE_FAILFAST);
    ASSERT_EQ(find_su(c, "c")->components[0].recovery, CONFIG_RECOVERY_COMPONENT_FAILOVER);
    const struct config_component *ca = &find_su(c, "a")->components[0];
    ASSERT_EQ(ca->n_hc_keys, 2u);
    ASSERT_STREQ(ca->hc_keys[0], "alive");
    ASSERT_STREQ(ca->hc_keys[1], "deep");
    ASSERT_EQ(ca->healthcheck.period, 2 * USEC_PER_SEC);
    ASSERT_EQ(find_su(c, "c")->components[0].n_hc_keys, 0u);
    ASSERT_STREQ(config_recovery_to_string(CONFIG_RECOVERY_NODE_SWITCHOVER), "node-switchover");
    config_free(c);
}

TEST(error_recovery_escalation_and_health_check_keys) {
    const char *p;
    char *e = load_fail("nodes: {n1: {su-failover: {max: -1}}}\n"
                        "service-groups:\n"
                        "  g:\n"
                        "    escalation: {component-restart: {probation: 0s}, su-restrat: {}}\n"
                        "    component: {command: /bin/sleep, recovery: node-reboot, health-check: {keys: [a, a]}}\n"
                        "    service-units: {a: {}, b: {component: {type: non-sa-aware, health-check: {keys: [x]}}}}\n"
                        "    service-instances: {si: {csis: {csi: {}}}}\n",
                        &p);
    ASSERT_ERROR(e, p, 1, 33, "'max' must be a non-negative integer (without quotes), got '-1'");
    ASSERT_ERROR(e, p, 4, 49, "'probation' must be longer than 0");
    ASSERT_ERROR(e, p, 4, 54, "unknown key 'su-restrat' in 'escalation' (allowed: component-restart, su-restart)");
    ASSERT_ERROR(e, p, 5, 48,
                 "'recovery' must be component-restart, component-failover, node-switchover, node-failover or "
                 "node-failfast, got 'node-reboot'");
    ASSERT_ERROR(e, p, 5, 86, "health-check key 'a' is listed twice");
    ASSERT_ERROR(e, p, 6, 85,
                 "health-check 'keys' are for sa-aware components only (halod asks the component "
                 "through libhalo)");
    free(e);
}

TEST(monitor_agent_user) {
    struct config *c =
        load_ok("service-groups:\n"
                "  g:\n"
                "    service-units:\n"
                "      a: {component: {type: non-sa-aware, command: /bin/sleep, user: nobody, group: nogroup,\n"
                "                      monitor: {command: [/bin/true, x], period: 250ms}}}\n"
                "      b: {component: {type: ocf, agent: ocf:heartbeat:Dummy, params: {state: /x}}}\n"
                "    service-instances: {si: {csis: {c: {}}}}\n");
    const struct config_component *a = &c->sgs[0].sus[0].components[0], *b = &c->sgs[0].sus[1].components[0];
    ASSERT(a->monitor.given);
    ASSERT_STREQ(a->monitor.command[0], "/bin/true");
    ASSERT_STREQ(a->monitor.command[1], "x");
    ASSERT_EQ(a->monitor.period, 250 * USEC_PER_MSEC);
    ASSERT_EQ(a->monitor.timeout, 0u); /* halod's default */
    ASSERT(a->ids.set_uid && a->ids.uid == 65534 && a->ids.set_gid && a->ids.gid == 65534);
    ASSERT_EQ(b->type, CONFIG_COMP_OCF);
    ASSERT_STREQ(b->command, "/usr/lib/ocf/resource.d/heartbeat/Dummy");
    ASSERT_STREQ(b->ocf_provider, "heartbeat");
    ASSERT_STREQ(b->ocf_type, "Dummy");
    ASSERT_EQ(b->n_ocf_params, 1u);
    ASSERT_STREQ(b->ocf_params[0].name, "state");
    ASSERT(!b->ids.set_uid && !b->monitor.given);
    config_free(c);
}

TEST(error_monitor_agent_user) {
    const char *p;
    char *e = load_fail("service-groups:\n"
                        "  g:\n"
                        "    component: {command: /bin/sleep, type: non-sa-aware}\n"
                        "    service-units:\n"
                        "      a: {component: {monitor: {period: 0s}, user: no-such-user-here, params: {x: 1}}}\n"
                        "      b: {component: {type: ocf, agent: heartbeat:NoSuchAgent, user: nobody}}\n"
                        "      c: {component: {type: ocf, agent: Dummy, monitor: {command: [/bin/true]}}}\n"
                        "      d: {component: {type: sa-aware, group: no-such-group-here, agent: heartbeat:Dummy}}\n"
                        "      e: {component: {type: ocf}}\n"
                        "    service-instances: {si: {csis: {c: {}}}}\n",
                        &p);
    ASSERT_ERROR(e, p, 5, 32, "'monitor' must have a 'command'");
    ASSERT_ERROR(e, p, 5, 41, "monitor 'period' must be a duration longer than 0");
    ASSERT_ERROR(e, p, 5, 52, "'user' 'no-such-user-here' is not a user of this system");
    ASSERT_ERROR(e, p, 5, 79, "'params' is for ocf components only (set 'type: ocf')");
    ASSERT_ERROR(e, p, 6, 41,
                 "'agent' 'heartbeat:NoSuchAgent': '/usr/lib/ocf/resource.d/heartbeat/NoSuchAgent' is "
                 "not an executable agent");
    ASSERT_ERROR(e, p, 6, 70, "'user' is for non-sa-aware components only: an ocf agent runs as root");
    ASSERT_ERROR(e, p, 3, 26, "'command' is not for ocf components");
    ASSERT_ERROR(e, p, 7, 41, "'agent' must be PROVIDER:TYPE (ocf:PROVIDER:TYPE also)");
    ASSERT_ERROR(e, p, 7, 67, "monitor 'command' is not for ocf components");
    ASSERT_ERROR(e, p, 8, 46, "'group' is for non-sa-aware components only: an sa-aware one must reach halod's socket");
    ASSERT_ERROR(e, p, 8, 73, "'agent' is for ocf components only (set 'type: ocf')");
    ASSERT_ERROR(e, p, 9, 7, "component 'e' is of type ocf and has no 'agent'");
    free(e);
}

TEST(node_failfast_action) {
    struct config *c = load_ok("nodes: {n1: {failfast: reboot}, n2: {failfast: halt},\n"
                               "        n3: {failfast: {command: [/bin/sh, -c, 'echo $HALO_NODE']}}, n4: {}}\n"
                               "service-groups:\n"
                               "  g:\n"
                               "    component: {command: /bin/sleep}\n"
                               "    service-units: {a: {node: n1}, b: {node: n2}}\n"
                               "    service-instances: {si: {csis: {csi: {}}}}\n");
    ASSERT_EQ(config_find_node(c, "n1")->failfast, CONFIG_FAILFAST_REBOOT);
    ASSERT_EQ(config_find_node(c, "n2")->failfast, CONFIG_FAILFAST_HALT);
    const struct config_node *n3 = config_find_node(c, "n3");
    ASSERT_EQ(n3->failfast, CONFIG_FAILFAST_COMMAND);
    ASSERT_EQ(n3->n_failfast_command, 3u);
    ASSERT_STREQ(n3->failfast_command[0], "/bin/sh");
    ASSERT_STREQ(n3->failfast_command[2], "echo $HALO_NODE");
    ASSERT(!n3->failfast_command[3]);
    /* Not given: a node failfast is a node failover, as before the key. */
    ASSERT_EQ(config_find_node(c, "n4")->failfast, CONFIG_FAILFAST_NONE);
    config_free(c);
}

TEST(error_node_failfast_action) {
    const char *p;
    char *e = load_fail("nodes:\n"
                        "  n1: {failfast: shutdown}\n"
                        "  n2: {failfast: {command: []}}\n"
                        "  n3: {failfast: {cmd: [/bin/true]}}\n"
                        "  n4: {failfast: {command: [no-such-command-here]}}\n"
                        "  n5: {failfast: [/bin/true]}\n"
                        "service-groups:\n"
                        "  g:\n"
                        "    component: {command: /bin/sleep}\n"
                        "    service-units: {a: {node: n1}, b: {node: n2}}\n"
                        "    service-instances: {si: {csis: {csi: {}}}}\n",
                        &p);
    ASSERT_ERROR(e, p, 2, 18, "'failfast' must be halt, reboot or {command: [COMMAND, ARGS...]}, got 'shutdown'");
    ASSERT_ERROR(e, p, 3, 28, "failfast 'command' must name a command: [COMMAND, ARGS...]");
    ASSERT_ERROR(e, p, 4, 19, "unknown key 'cmd' in 'failfast' (allowed: command)");
    ASSERT_ERROR(e, p, 5, 29, "'failfast' command");
    ASSERT_ERROR(e, p, 6, 18, "'failfast' must be halt, reboot or {command: [COMMAND, ARGS...]}, got a list");
    free(e);
}

TEST(component_stdout) {
    const char *p;
    char base[PATH_MAX], expect[PATH_MAX + 32];
    ASSERT(realpath(tmpdir(), base));
    struct config *c = load_ok("service-groups:\n"
                               "  g:\n"
                               "    component: {command: /bin/sleep, stdout: journal}\n"
                               "    service-units:\n"
                               "      a: {}\n"
                               "      b: {component: {stdout: inherit}}\n"
                               "      c: {component: {stdout: c.log}}\n"
                               "      d: {component: {stdout: /dev/null}}\n"
                               "    service-instances: {si: {csis: {csi: {}}}}\n"
                               "  h:\n"
                               "    component: {command: /bin/sleep}\n"
                               "    service-units: {e: {}, f: {}}\n"
                               "    service-instances: {si2: {csis: {csi2: {}}}}\n");
    ASSERT_EQ(find_su(c, "a")->components[0].output, CONFIG_OUTPUT_JOURNAL);
    ASSERT_EQ(find_su(c, "b")->components[0].output, CONFIG_OUTPUT_INHERIT);
    ASSERT_EQ(find_su(c, "c")->components[0].output, CONFIG_OUTPUT_FILE);
    snprintf(expect, sizeof(expect), "%s/c.log", base); /* relative to the description */
    ASSERT_STREQ(find_su(c, "c")->components[0].output_file, expect);
    ASSERT_STREQ(find_su(c, "d")->components[0].output_file, "/dev/null");
    ASSERT_EQ(find_su(c, "e")->components[0].output, CONFIG_OUTPUT_INHERIT); /* the default */
    config_free(c);

    char *e = load_fail("service-groups:\n"
                        "  g:\n"
                        "    component: {command: /bin/sleep}\n"
                        "    service-units:\n"
                        "      a: {component: {stdout: /nonexistent/dir/a.log}}\n"
                        "      b: {component: {stdout: [journal]}}\n"
                        "      c: {component: {stdout: /tmp}}\n"
                        "      d: {component: {stdout: /tmp/}}\n"
                        "      e: {component: {type: ocf, agent: \"heartbeat:Dummy\", stdout: journal}}\n"
                        "    service-instances: {si: {csis: {csi: {}}}}\n",
                        &p);
    static const struct {
        int line, column;
        const char *text;
    } want[] = {
        {5, 31, "'stdout' '/nonexistent/dir/a.log': its directory does not exist"},
        {6, 31, "'stdout' (journal, inherit or a file) must be a single value, got a list"},
        {7, 31, "'stdout' '/tmp' is not a regular file"},
        {8, 31, "'stdout' '/tmp/' names a directory, not a file"},
        {9, 68, "'stdout' is for sa-aware and non-sa-aware components only (an OCF agent's output"},
    };
    for (size_t i = 0; i < ELEMENTSOF(want); i++)
        ASSERT_ERROR(e, p, want[i].line, want[i].column, want[i].text);
    free(e);
}
