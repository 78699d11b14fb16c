/* SPDX-License-Identifier: MIT */
/* haloctl ha: the HA control calls of the configuration database's roles, through libhalo. */
#include "ctl-ha.h"

#include <errno.h>
#include <getopt.h>
#include <jansson.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include "halo/ha.h"
#include "macro.h"
#include "string-table.h"

static const char *const ha_info_table[] = {
    [HALO_HA_INFO_NOPRIMARY] = "NOPRIMARY",
    [HALO_HA_INFO_SECONDARY_DIED] = "SECONDARY_DIED",
    [HALO_HA_INFO_SECONDARY_ARRIVED] = "SECONDARY_ARRIVED",
    [HALO_HA_INFO_SECONDARY_INITIALIZED] = "SECONDARY_INITIALIZED",
    [HALO_HA_INFO_IS_PRIMARY] = "IS_PRIMARY",
    [HALO_HA_INFO_IS_NONE] = "IS_NONE",
    [HALO_HA_INFO_BESECONDARY_RESULT] = "BESECONDARY_RESULT",
};
DEFINE_PRIVATE_STRING_TABLE_LOOKUP(ha_info, int);

/* The HA control socket: --ha-socket, $HALO_HA_SOCKET, or ha.sock next to halod's socket. */
static void ha_socket_path(const char *ha_socket, const char *socket, char *out, size_t n) {
    const char *env = getenv("HALO_HA_SOCKET");
    if (ha_socket || (env && *env)) {
        snprintf(out, n, "%s", ha_socket ?: env);
        return;
    }
    const char *slash = strrchr(socket, '/');
    snprintf(out, n, "%.*s/ha.sock", slash ? (int)(slash - socket) : 1, slash ? socket : ".");
}

static int open_socket(const char *path, bool notifications, const char *token, int *ret) {
    struct sockaddr_un sa = {.sun_family = AF_UNIX};
    if (strlen(path) >= sizeof(sa.sun_path))
        return -ENAMETOOLONG;
    strcpy(sa.sun_path, path);
    int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd < 0)
        return -errno;
    int r = notifications ? halo_ha_notifications_connect(fd, token, (struct sockaddr *)&sa, sizeof(sa))
                          : halo_ha_connect(fd, token, (struct sockaddr *)&sa, sizeof(sa));
    if (r < 0) {
        close(fd);
        return r;
    }
    *ret = fd;
    return 0;
}

/* Prints o as one line of JSON (jansson escapes what a name may hold) and frees it. */
static void print_json(json_t *o) {
    char *s = o ? json_dumps(o, JSON_COMPACT) : NULL;
    printf("%s\n", s ? s : "null");
    free(s);
    json_decref(o);
}

static volatile sig_atomic_t stop;

static void on_signal(int sig) {
    stop = 1;
}

static int follow_notifications(int fd, bool json) {
    struct sigaction sa = {.sa_handler = on_signal}; /* no SA_RESTART: a signal ends the read */
    sigaction(SIGINT, &sa, NULL);
    sigaction(SIGTERM, &sa, NULL);
    setvbuf(stdout, NULL, _IOLBF, 0);
    /* Everything from now on will be seen: say so, for scripts that act next. */
    fprintf(stderr, "haloctl: following HA notifications (^C to stop)\n");
    while (!stop) {
        halo_ha_info in;
        int r = halo_ha_notification_read(fd, &in);
        if (r == -EINTR)
            continue;
        if (r < 0)
            return r;
        const char *name = ha_info_to_string((int)in.type) ?: "UNKNOWN";
        if (json) {
            json_t *o = json_pack("{s:s, s:s, s:i, s:b, s:s}", "type", name, "nodeid", in.nodeid, "error", in.error,
                                  "full_copy", in.full_copy, "reason", in.reason);
            print_json(o);
        } else {
            printf("%s", name);
            if (*in.nodeid)
                printf(" %s", in.nodeid);
            if (in.type == HALO_HA_INFO_SECONDARY_INITIALIZED ||
                (in.type == HALO_HA_INFO_BESECONDARY_RESULT && in.error == 0))
                printf(" (%s)", in.full_copy ? "full copy" : "no copy needed");
            if (in.error)
                printf(": %s", halo_strerror(in.error));
            if (*in.reason)
                printf(" (%s)", in.reason);
            putchar('\n');
        }
    }
    return 0;
}

static void usage_error(const char *what) {
    fprintf(stderr, "haloctl: %s. Try 'haloctl --help'.\n", what);
}

int ctl_ha_main(const char *socket, int argc, char **argv, bool json) {
    static const struct option opts[] = {
        {"token", required_argument, NULL, 'k'},
        {"ha-socket", required_argument, NULL, 'a'},
        {"nowait", no_argument, NULL, 'W'},
        {"json", no_argument, NULL, 'j'},
        {},
    };
    const char *token = getenv("HALO_HA_TOKEN"), *ha_socket = NULL;
    bool wait = true;
    char path[108];
    int c, fd = -1, r;

    optind = 0; /* 0: GNU getopt starts over (the first pass left state behind) */
    while ((c = getopt_long(argc, argv, "", opts, NULL)) >= 0) {
        switch (c) {
        case 'k':
            token = optarg;
            break;
        case 'a':
            ha_socket = optarg;
            break;
        case 'W':
            wait = false;
            break;
        case 'j':
            json = true;
            break;
        default:
            return 2;
        }
    }
    if (optind >= argc) {
        usage_error("'ha' wants status, beprimary, besecondary, berelay, benone, secondary-dead or notifications");
        return 2;
    }
    const char *verb = argv[optind];
    int nargs = argc - optind - 1;
    char **args = argv + optind + 1;
    static const struct {
        const char *name;
        int nargs;
    } verbs[] = {{"status", 0}, {"beprimary", 1},      {"besecondary", 3},  {"berelay", 0},
                 {"benone", 0}, {"secondary-dead", 1}, {"notifications", 0}};
    size_t v;
    for (v = 0; v < ELEMENTSOF(verbs); v++)
        if (streq(verbs[v].name, verb))
            break;
    if (v == ELEMENTSOF(verbs)) {
        fprintf(stderr, "haloctl: unknown command 'ha %s'. Try 'haloctl --help'.\n", verb);
        return 2;
    }
    if (nargs != verbs[v].nargs) {
        fprintf(stderr, "haloctl: 'ha %s' takes %d argument%s.\n", verb, verbs[v].nargs,
                verbs[v].nargs == 1 ? "" : "s");
        return 2;
    }
    bool notif = streq(verb, "notifications");
    if (!notif && (!token || !*token)) {
        fprintf(stderr, "haloctl: 'ha %s' needs the cluster's token: --token TOKEN or $HALO_HA_TOKEN\n", verb);
        return 2;
    }
    ha_socket_path(ha_socket, socket, path, sizeof(path));
    r = open_socket(path, notif, token, &fd);
    if (r < 0) {
        fprintf(stderr, "haloctl: cannot use the HA control socket '%s': %s\n", path, halo_strerror(r));
        return 1;
    }
    if (notif)
        r = follow_notifications(fd, json);
    else if (streq(verb, "status")) {
        halo_ha_status st;
        r = halo_ha_status_get(fd, &st);
        if (r >= 0 && json) {
            json_t *nodes = json_array();
            for (size_t i = 0; i < st.n_nodes; i++)
                json_array_append_new(nodes,
                                      json_pack("{s:s, s:s}", "nodeid", st.nodes[i].nodeid, "addr", st.nodes[i].addr));
            print_json(json_pack("{s:s, s:o}", "state", halo_ha_role_to_string(st.state), "nodes", nodes));
        } else if (r >= 0) {
            printf("%s\n", halo_ha_role_to_string(st.state));
            for (size_t i = 0; i < st.n_nodes; i++)
                printf("  %s %s (%s)\n", st.state == HALO_HA_STATE_SECONDARY ? "primary" : "secondary",
                       st.nodes[i].nodeid, st.nodes[i].addr);
        }
    } else if (streq(verb, "beprimary"))
        r = halo_ha_beprimary(fd, args[0]);
    else if (streq(verb, "besecondary"))
        r = halo_ha_besecondary(fd, args[0], args[1], args[2], wait);
    else if (streq(verb, "berelay"))
        r = halo_ha_berelay(fd);
    else if (streq(verb, "benone"))
        r = halo_ha_benone(fd);
    else
        r = halo_ha_secondary_dead(fd, args[0]);
    close(fd);
    if (r < 0) {
        fprintf(stderr, "haloctl: ha %s: %s\n", verb, halo_strerror(r));
        return 1;
    }
    if (!notif && !streq(verb, "status")) {
        if (json)
            printf("{\"ok\":true}\n");
        else
            printf("ha %s: done\n", verb);
    }
    return 0;
}
