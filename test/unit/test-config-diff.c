/* SPDX-License-Identifier: MIT */
/* Tests for config_diff(): what a reload sees changed between two descriptions, named by key and line. */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <unistd.h>

#include "config.h"
#include "macro.h"
#include "tests.h"

/* A description of one group whose SI has the CSIs given (a YAML map). */
#define WITH_CSIS(csis)                                   \
    "service-groups:\n"                                   \
    "  g:\n"                                              \
    "    component: {command: /bin/sleep, args: ['1']}\n" \
    "    service-units: {a: {}, b: {}}\n"                 \
    "    service-instances:\n"                            \
    "      si:\n"                                         \
    "        csis: " csis "\n"

#define BASE WITH_CSIS("{csi: {attributes: {port: 7700, bind: 127.0.0.1}}}")

/* Loads text from a file of its own (the description is read from a file, as halod reads it). */
static struct config *load(const char *text) {
    char path[] = "/tmp/halo-test-diff.XXXXXX";
    int fd = mkstemp(path);
    ASSERT(fd >= 0);
    ASSERT_EQ(write(fd, text, strlen(text)), (ssize_t)strlen(text));
    close(fd);
    struct config *c = NULL;
    char *errors = NULL;
    int r = config_load(path, &c, &errors);
    unlink(path);
    if (r < 0)
        CHECK_FAIL("config_load: %s\n%s", strerror(-r), errors ?: "");
    return c;
}

static struct config_diff *diff(const char *a, const char *b) {
    struct config *ca = load(a), *cb = load(b);
    struct config_diff *d = NULL;
    ASSERT_OK(config_diff(ca, cb, &d));
    config_free(ca);
    config_free(cb);
    return d;
}

TEST(same_text_no_change) {
    struct config_diff *d = diff(BASE, BASE);
    ASSERT_EQ(d->n_changes, 0u);
    config_diff_free(d);
}

TEST(comments_and_key_order_are_no_change) {
    struct config_diff *d = diff(BASE, "# a comment\n"
                                       "service-groups:\n"
                                       "  g:\n"
                                       "    service-units: {b: {}, a: {}}\n"
                                       "    component: {args: ['1'], command: /bin/sleep}\n"
                                       "    service-instances:\n"
                                       "      si: {csis: {csi: {attributes: {bind: 127.0.0.1, port: 7700}}}}\n");
    ASSERT_EQ(d->n_changes, 0u);
    config_diff_free(d);
}

TEST(csi_attribute_changed) {
    struct config_diff *d = diff(BASE, WITH_CSIS("{csi: {attributes: {port: 7701, bind: 127.0.0.1, x: y}}}"));
    ASSERT_EQ(d->n_changes, 2u);
    for (size_t i = 0; i < d->n_changes; i++) {
        ASSERT(d->changes[i].csi_attributes && !d->changes[i].whole_csi);
        ASSERT_STREQ(d->changes[i].sg, "g");
        ASSERT_STREQ(d->changes[i].si, "si");
        ASSERT_STREQ(d->changes[i].csi, "csi");
        ASSERT_EQ(d->changes[i].pos.line, 7u);
    }
    ASSERT_STREQ(d->changes[0].key, "service-groups.g.service-instances.si.csis.csi.attributes.x");
    ASSERT_EQ(d->changes[0].kind, CONFIG_CHANGE_ADDED);
    ASSERT_STREQ(d->changes[1].key, "service-groups.g.service-instances.si.csis.csi.attributes.port");
    ASSERT_EQ(d->changes[1].kind, CONFIG_CHANGE_CHANGED);
    config_diff_free(d);
}

TEST(csi_added_and_removed_within_an_si) {
    struct config_diff *d = diff(BASE, WITH_CSIS("{other: {}}"));
    ASSERT_EQ(d->n_changes, 2u);
    ASSERT_STREQ(d->changes[0].key, "service-groups.g.service-instances.si.csis.csi");
    ASSERT_EQ(d->changes[0].kind, CONFIG_CHANGE_REMOVED);
    ASSERT_STREQ(d->changes[0].csi, "csi");
    ASSERT_STREQ(d->changes[1].key, "service-groups.g.service-instances.si.csis.other");
    ASSERT_EQ(d->changes[1].kind, CONFIG_CHANGE_ADDED);
    ASSERT_STREQ(d->changes[1].csi, "other");
    for (size_t i = 0; i < d->n_changes; i++) {
        ASSERT(d->changes[i].whole_csi && !d->changes[i].csi_attributes && !d->changes[i].service_group);
        ASSERT_STREQ(d->changes[i].sg, "g");
        ASSERT_STREQ(d->changes[i].si, "si");
        ASSERT_EQ(d->changes[i].pos.line, 7u);
    }
    config_diff_free(d);
}

TEST(si_added_and_removed_within_a_group) {
    struct config_diff *d = diff(BASE, "service-groups:\n"
                                       "  g:\n"
                                       "    component: {command: /bin/sleep, args: ['1']}\n"
                                       "    service-units: {a: {}, b: {}}\n"
                                       "    service-instances:\n"
                                       "      si2: {csis: {csi2: {}}}\n");
    ASSERT_EQ(d->n_changes, 2u);
    ASSERT_STREQ(d->changes[0].key, "service-groups.g.service-instances.si");
    ASSERT_EQ(d->changes[0].kind, CONFIG_CHANGE_REMOVED);
    ASSERT_EQ(d->changes[0].pos.line, 6u); /* in the old description */
    ASSERT_STREQ(d->changes[0].si, "si");
    ASSERT_STREQ(d->changes[1].key, "service-groups.g.service-instances.si2");
    ASSERT_EQ(d->changes[1].kind, CONFIG_CHANGE_ADDED);
    ASSERT_EQ(d->changes[1].pos.line, 6u);
    ASSERT_STREQ(d->changes[1].si, "si2");
    for (size_t i = 0; i < d->n_changes; i++) {
        ASSERT(d->changes[i].whole_si && !d->changes[i].whole_csi && !d->changes[i].service_group);
        ASSERT_STREQ(d->changes[i].sg, "g");
    }
    config_diff_free(d);
}

TEST(other_changes_are_named_by_key_and_line) {
    struct config_diff *d = diff(BASE, "service-groups:\n"
                                       "  g:\n"
                                       "    component: {command: /bin/sleep, args: ['2']}\n"
                                       "    service-units: {a: {}, c: {}}\n"
                                       "    service-instances:\n"
                                       "      si:\n"
                                       "        csis: {csi: {attributes: {port: 7700, bind: 127.0.0.1}}}\n"
                                       "  h:\n"
                                       "    component: {command: /bin/sleep}\n"
                                       "    service-units: {d: {}, e: {}}\n"
                                       "    service-instances: {si2: {csis: {csi2: {}}}}\n");
    ASSERT_EQ(d->n_changes, 4u);
    ASSERT_STREQ(d->changes[0].key, "service-groups.h"); /* the new group, as a whole */
    ASSERT_EQ(d->changes[0].kind, CONFIG_CHANGE_ADDED);
    ASSERT_EQ(d->changes[0].pos.line, 8u);
    ASSERT(d->changes[0].service_group);
    ASSERT_STREQ(d->changes[0].sg, "h");
    ASSERT_STREQ(d->changes[1].key, "service-groups.g.component.args[0]");
    ASSERT(d->changes[1].component_setting && !d->changes[0].component_setting && !d->changes[2].component_setting);
    ASSERT_EQ(d->changes[1].pos.line, 3u);
    ASSERT_STREQ(d->changes[2].key, "service-groups.g.service-units.b");
    ASSERT(d->changes[2].whole_su && d->changes[3].whole_su);
    ASSERT_STREQ(d->changes[2].su, "b");
    ASSERT_STREQ(d->changes[3].su, "c");
    ASSERT_STREQ(d->changes[2].sg, "g");
    ASSERT_EQ(d->changes[2].kind, CONFIG_CHANGE_REMOVED);
    ASSERT_EQ(d->changes[2].pos.line, 4u); /* in the old description */
    ASSERT_STREQ(d->changes[3].key, "service-groups.g.service-units.c");
    ASSERT_EQ(d->changes[3].kind, CONFIG_CHANGE_ADDED);
    for (size_t i = 0; i < d->n_changes; i++)
        ASSERT(!d->changes[i].csi_attributes && !d->changes[i].whole_csi && !d->changes[i].whole_si &&
               (i == 0) == d->changes[i].service_group);
    config_diff_free(d);
}

TEST(component_settings_are_marked_with_their_group) {
    struct config_diff *d = diff(BASE, "service-groups:\n"
                                       "  g:\n"
                                       "    component: {command: /bin/sleep, args: ['2'], restart: {max: 5}}\n"
                                       "    service-units: {a: {}, b: {component: {env: {X: '1'}}}}\n"
                                       "    service-instances:\n"
                                       "      si:\n"
                                       "        csis: {csi: {attributes: {port: 7700, bind: 127.0.0.1}}}\n");
    ASSERT_EQ(d->n_changes, 3u);
    ASSERT_STREQ(d->changes[0].key, "service-groups.g.component.restart"); /* any key of a component */
    ASSERT(d->changes[0].component_setting);
    ASSERT_STREQ(d->changes[0].sg, "g");
    ASSERT_STREQ(d->changes[1].key, "service-groups.g.component.args[0]");
    ASSERT(d->changes[1].component_setting);
    ASSERT_STREQ(d->changes[1].sg, "g");
    ASSERT_STREQ(d->changes[2].key, "service-groups.g.service-units.b.component");
    ASSERT(!d->changes[2].component_setting); /* the unit's component map added as a whole */
    /* A template as a whole: what it changes shows in the resolved components. */
    ASSERT(!d->changes[0].template && !d->changes[1].template && d->changes[2].template);
    for (size_t i = 0; i < d->n_changes; i++)
        ASSERT(!d->changes[i].group_setting && !d->changes[i].unit_node);
    config_diff_free(d);
}

/* A 2N group on two nodes, with settings (YAML lines) and units (a YAML map). */
#define ON_NODES(settings, units)                              \
    "nodes: {n1: {}, n2: {}}\n"                                \
    "service-groups:\n"                                        \
    "  g:\n" settings "    component: {command: /bin/sleep}\n" \
    "    service-units: " units "\n"                           \
    "    service-instances: {si: {csis: {csi: {}}}}\n"

TEST(group_settings_and_a_units_node_are_marked) {
    struct config_diff *d =
        diff(ON_NODES("", "{a: {node: n1}, b: {node: n2}}"), ON_NODES("    redundancy: N-way\n"
                                                                      "    escalation: {component-restart: {max: 2}}\n",
                                                                      "{a: {node: n2}, b: {node: n2}}"));
    ASSERT_EQ(d->n_changes, 3u);
    ASSERT_STREQ(d->changes[0].key, "service-groups.g.redundancy");
    ASSERT_STREQ(d->changes[1].key, "service-groups.g.escalation");
    ASSERT(d->changes[0].group_setting && d->changes[1].group_setting && !d->changes[2].group_setting);
    ASSERT_STREQ(d->changes[0].sg, "g");
    ASSERT_STREQ(d->changes[2].key, "service-groups.g.service-units.a.node");
    ASSERT(d->changes[2].unit_node && !d->changes[0].unit_node);
    ASSERT_STREQ(d->changes[2].sg, "g");
    ASSERT_STREQ(d->changes[2].su, "a");
    for (size_t i = 0; i < d->n_changes; i++)
        ASSERT(!d->changes[i].component_setting && !d->changes[i].template && !d->changes[i].whole_su);
    config_diff_free(d);
}

/* The resolved component of the only unit of a group whose template is comp (a YAML map's keys). */
static unsigned differ(const char *a, const char *b) {
    char ta[512], tb[512];
    snprintf(ta, sizeof(ta),
             "service-groups: {g: {redundancy: no-redundancy, component: {%s}, service-units: {u: {}}, "
             "service-instances: {si: {csis: {csi: {}}}}}}\n",
             a);
    snprintf(tb, sizeof(tb),
             "service-groups: {g: {redundancy: no-redundancy, component: {%s}, service-units: {u: {}}, "
             "service-instances: {si: {csis: {csi: {}}}}}}\n",
             b);
    struct config *ca = load(ta), *cb = load(tb);
    unsigned r = config_component_differ(&ca->sgs[0].sus[0].components[0], &cb->sgs[0].sus[0].components[0]);
    config_free(ca);
    config_free(cb);
    return r;
}

TEST(component_differences_are_classed_by_how_they_apply) {
    const char *sleep = "command: /bin/sleep";
    ASSERT_EQ(differ(sleep, sleep), 0u);
    ASSERT_EQ(differ(sleep, "command: /bin/sleep, health-check: {period: 3s}"), (unsigned)CONFIG_DIFFER_RESTART);
    ASSERT_EQ(differ(sleep, "command: /bin/sleep, health-check: {keys: [k]}"), (unsigned)CONFIG_DIFFER_RESTART);
    ASSERT_EQ(differ(sleep, "command: /bin/sleep, monitor: {command: [/bin/true]}"), (unsigned)CONFIG_DIFFER_RESTART);
    ASSERT_EQ(differ(sleep, "command: /bin/sleep, restart: {max: 7}"), (unsigned)CONFIG_DIFFER_LIVE);
    ASSERT_EQ(differ(sleep, "command: /bin/sleep, recovery: component-failover"), (unsigned)CONFIG_DIFFER_LIVE);
    ASSERT_EQ(differ(sleep, "command: /bin/sleep, csi-types: [t, u]"), (unsigned)CONFIG_DIFFER_CSI_TYPES);
    ASSERT_EQ(differ(sleep, "command: /bin/sleep, services: [web]"), (unsigned)CONFIG_DIFFER_RECOVERY_MODEL);
    ASSERT(differ(sleep, "command: /bin/sleep, type: non-sa-aware") & CONFIG_DIFFER_TYPE);
    ASSERT_EQ(differ(sleep, "command: /bin/true, restart: {delay: 2s}"),
              (unsigned)(CONFIG_DIFFER_RESTART | CONFIG_DIFFER_LIVE));
}

TEST(defaults_are_templates) {
    struct config_diff *d = diff(BASE, "defaults: {component: {env: {Y: '2'}}}\n" BASE);
    ASSERT_EQ(d->n_changes, 1u);
    ASSERT_STREQ(d->changes[0].key, "defaults");
    ASSERT(d->changes[0].template && !d->changes[0].component_setting && !d->changes[0].sg);
    config_diff_free(d);
}

/* A group whose units are given (a YAML map) and whose one CSI has type t. */
#define TYPED_UNITS(units)                                   \
    "service-groups:\n"                                      \
    "  g:\n"                                                 \
    "    component: {command: /bin/sleep, csi-types: [t]}\n" \
    "    service-units: " units "\n"                         \
    "    service-instances: {si: {csis: {csi: {type: t}}}}\n"

TEST(component_added_to_a_unit_is_named_as_halod_names_it) {
    struct config_diff *d = diff(TYPED_UNITS("{a: {components: {x: {}}}, b: {components: {y: {}}}}"),
                                 TYPED_UNITS("{a: {components: {x: {}, z: {}}}, b: {components: {y: {}}}}"));
    ASSERT_EQ(d->n_changes, 1u);
    ASSERT_STREQ(d->changes[0].key, "service-groups.g.service-units.a.components.z");
    ASSERT(d->changes[0].whole_comp && !d->changes[0].whole_su && !d->changes[0].component_setting);
    ASSERT_STREQ(d->changes[0].su, "a");
    ASSERT_STREQ(d->changes[0].comp, "a/z");
    config_diff_free(d);
}
