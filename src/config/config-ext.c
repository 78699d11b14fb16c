/* SPDX-License-Identifier: MIT */
/* A component's external monitor, its OCF agent and params, and the user and group it runs as. */
#include <errno.h>
#include <grp.h>
#include <pwd.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "config-internal.h"

/* Where Pacemaker and Debian's resource-agents put the agents: OCF_ROOT/resource.d/PROVIDER/TYPE. */
#define OCF_ROOT "/usr/lib/ocf"

enum { EXT_MONITOR, EXT_AGENT, EXT_PARAMS, EXT_USER, EXT_GROUP };

static const char *const monitor_keys[] = {"command", "period", "timeout", NULL};

/* monitor: {command: [...], period: D, timeout: D}. */
static int monitor_parse(struct loader *l, yaml_node_t *n, struct config_component *c) {
    yaml_node_t *keys[3], *values[3];
    int r = config_yaml_fields(l, n, "'monitor'", monitor_keys, keys, values);
    if (r <= 0)
        return r;
    c->monitor.given = true;
    for (size_t i = 1; i <= 2; i++) {
        usec_t *d = i == 1 ? &c->monitor.period : &c->monitor.timeout;
        if (values[i] && (!config_yaml_duration(values[i], d) || *d == 0)) {
            config_diag(l, values[i], "monitor '%s' must be a duration longer than 0, such as 500ms, 2s or 1m, got %s",
                        monitor_keys[i], DESCRIBE(values[i]));
            *d = 0;
        }
    }
    yaml_node_t *cmd = values[0];
    if (c->type == CONFIG_COMP_OCF) {
        if (cmd)
            config_diag(l, cmd, "monitor 'command' is not for ocf components: their agent's monitor action is run");
        return 0;
    }
    if (!cmd) {
        config_diag(l, n, "'monitor' must have a 'command': [COMMAND, ARGS...]");
        return 0;
    }
    yaml_node_item_t *items;
    size_t n_items;
    if (!config_yaml_seq(l, cmd, "monitor 'command'", &items, &n_items))
        return 0;
    if (n_items == 0) {
        config_diag(l, cmd, "monitor 'command' must name a command: [COMMAND, ARGS...]");
        return 0;
    }
    for (size_t i = 0; i < n_items; i++) {
        yaml_node_t *item = config_yaml_node(l, items[i]);
        if (!item || !(i == 0 ? config_yaml_string(l, item, "each item of monitor 'command'")
                              : config_yaml_scalar(l, item, "each item of monitor 'command'")))
            return 0;
    }
    return config_command_list(l, cmd, "monitor", &c->monitor.command, &c->monitor.n_command);
}

static bool ocf_name_ok(const char *s, size_t n) {
    if (n == 0 || (n == 1 && s[0] == '.') || (n == 2 && s[0] == '.' && s[1] == '.'))
        return false;
    for (size_t i = 0; i < n; i++)
        if (s[i] == '/' || s[i] == ':')
            return false;
    return true;
}

/* agent: [ocf:]PROVIDER:TYPE, an executable OCF_ROOT/resource.d/PROVIDER/TYPE. */
static int agent_parse(struct loader *l, yaml_node_t *n, struct config_component *c) {
    const char *a = config_yaml_string(l, n, "'agent'");
    if (!a)
        return 0;
    const char *s = strncmp(a, "ocf:", 4) == 0 ? a + 4 : a, *colon = strchr(s, ':');
    if (!colon || !ocf_name_ok(s, (size_t)(colon - s)) || !ocf_name_ok(colon + 1, strlen(colon + 1))) {
        config_diag(l, n, "'agent' must be PROVIDER:TYPE (ocf:PROVIDER:TYPE also), such as heartbeat:IPaddr2, got %s",
                    DESCRIBE(n));
        return 0;
    }
    c->ocf_provider = strndup(s, (size_t)(colon - s));
    c->ocf_type = strdup(colon + 1);
    if (!c->ocf_provider || !c->ocf_type)
        return -ENOMEM;
    if (asprintf(&c->command, OCF_ROOT "/resource.d/%s/%s", c->ocf_provider, c->ocf_type) < 0) {
        c->command = NULL;
        return -ENOMEM;
    }
    if (access(c->command, X_OK) < 0) {
        config_diag(l, n,
                    "'agent' '%s': '%s' is not an executable agent (%s; Debian's resource-agents package has "
                    "the heartbeat agents)",
                    Q(a), c->command, strerror(errno));
        free(c->command);
        c->command = NULL;
    }
    return 0;
}

/* params: NAME: value, each passed as OCF_RESKEY_NAME. */
static int params_parse(struct loader *l, yaml_node_t *n, struct config_component *c) {
    _cleanup_free_ struct map_entry *e = NULL;
    size_t n_e;
    int r = config_yaml_map(l, n, "'params'", &e, &n_e);
    if (r <= 0)
        return r;
    bool ok = true;
    for (size_t i = 0; i < n_e; i++) {
        const char *k = e[i].key;
        bool name_ok = *k != '\0';
        for (const char *p = k; *p; p++)
            name_ok = name_ok &&
                      (('a' <= *p && *p <= 'z') || ('A' <= *p && *p <= 'Z') || ('0' <= *p && *p <= '9') || *p == '_');
        if (!name_ok) {
            config_diag(l, e[i].key_node, "params: '%s' is not a parameter name (letters, digits and '_')", Q(k));
            ok = false;
        }
        char what[QUOTE_MAX + 32];
        snprintf(what, sizeof(what), "parameter '%s'", Q(k));
        if (!config_yaml_scalar(l, e[i].value, what))
            ok = false;
    }
    return ok ? config_yaml_kv(l, n, "'params'", &c->ocf_params, &c->n_ocf_params) : 0;
}

/* user: NAME and group: NAME, looked up now (the process runs as them), and the user's groups. */
static int ids_parse(struct loader *l, yaml_node_t *user, yaml_node_t *group, struct config_component *c) {
    const char *u = user ? config_yaml_name(l, user, "user") : NULL;
    const char *g = group ? config_yaml_name(l, group, "group") : NULL;
    struct passwd *pw = NULL;

    if (u) {
        errno = 0;
        pw = getpwnam(u);
        if (!pw)
            config_diag(l, user, "'user' '%s' is not a user of this system", Q(u));
        else {
            c->ids.set_uid = c->ids.set_gid = true;
            c->ids.uid = pw->pw_uid;
            c->ids.gid = pw->pw_gid;
        }
    }
    if (g) {
        struct group *gr = getgrnam(g);
        if (!gr)
            config_diag(l, group, "'group' '%s' is not a group of this system", Q(g));
        else {
            c->ids.set_gid = true;
            c->ids.gid = gr->gr_gid;
        }
    }
    if (!pw)
        return 0; /* a group alone: no supplementary groups */
    int n = 16;
    for (;;) {
        gid_t *list = reallocarray(NULL, (size_t)n, sizeof(gid_t));
        if (!list)
            return -ENOMEM;
        int want = n;
        if (getgrouplist(pw->pw_name, c->ids.gid, list, &want) >= 0) {
            c->ids.groups = list;
            c->ids.n_groups = (size_t)want;
            return 0;
        }
        free(list);
        if (want <= n || want > 65536)
            return 0; /* none known beyond the primary one */
        n = want;
    }
}

int config_ext_component(struct loader *l, yaml_node_t *const v[5], struct config_component *c) {
    int r = 0;
    bool ocf = c->type == CONFIG_COMP_OCF;

    if (v[EXT_MONITOR] && !config_yaml_is_null(v[EXT_MONITOR]))
        r = monitor_parse(l, v[EXT_MONITOR], c);
    if (r >= 0 && v[EXT_AGENT] && !ocf)
        config_diag(l, v[EXT_AGENT], "'agent' is for ocf components only (set 'type: ocf')");
    else if (r >= 0 && v[EXT_AGENT])
        r = agent_parse(l, v[EXT_AGENT], c);
    else if (r >= 0 && ocf)
        config_diag_at(l, c->pos, "component '%s' is of type ocf and has no 'agent' (such as heartbeat:IPaddr2)",
                       Q(c->name));
    if (r >= 0 && v[EXT_PARAMS] && !ocf)
        config_diag(l, v[EXT_PARAMS], "'params' is for ocf components only (set 'type: ocf')");
    else if (r >= 0 && v[EXT_PARAMS])
        r = params_parse(l, v[EXT_PARAMS], c);
    for (size_t k = EXT_USER; r >= 0 && k <= EXT_GROUP; k++)
        if (v[k] && c->type != CONFIG_COMP_NON_SA_AWARE) {
            config_diag(l, v[k], "'%s' is for non-sa-aware components only: %s", k == EXT_USER ? "user" : "group",
                        ocf ? "an ocf agent runs as root, as Pacemaker runs it"
                        : c->type == CONFIG_COMP_PROXIED
                            ? "a proxied one has no process of halod's"
                            : "an sa-aware one must reach halod's socket, which only halod's user can");
            return 0;
        }
    if (r >= 0 && (v[EXT_USER] || v[EXT_GROUP]))
        r = ids_parse(l, v[EXT_USER], v[EXT_GROUP], c);
    return r;
}
