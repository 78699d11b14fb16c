/* SPDX-License-Identifier: MIT */
/*
 * haloctl sim: a whole halo cluster on this one machine, to try halo on several nodes and to test it.
 *
 * "sim up" starts an etcd of M members and N halods (nodes n1..nN) as daemons of their own (a new session,
 * stdin /dev/null, output to a log file), records every process with its start time in DIR/sim.json and waits
 * until the cluster has settled.  "sim down" stops the recorded processes, signalling a pid only while it still
 * has the start time recorded for it (the pid may belong to another process by then), and removes DIR.  This file
 * has the verbs and their options; sim-internal.h says where the rest is.
 */
#include <errno.h>
#include <getopt.h>
#include <limits.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include "macro.h"
#include "parse-util.h"
#include "sim-internal.h"
#include "sim.h"
#include "strprintf.h"

/* The arguments of a verb. */
struct sim_args {
    unsigned nodes, members;
    unsigned lease_ttl;  /* seconds; 0: the default */
    unsigned first_port; /* --ports: the first of a block; 0: ports picked at random */
    const char *dir, *config;
    const char *node; /* start-node */
    bool json;
};

static int self_exe(char **ret) {
    char buf[PATH_MAX];
    ssize_t n = readlink("/proc/self/exe", buf, sizeof(buf) - 1);
    if (n < 0)
        return -errno;
    buf[n] = '\0';
    char *s = strdup(buf);
    if (!s)
        return -ENOMEM;
    *ret = s;
    return 0;
}

/* The program $env names, else the first of rels (relative to haloctl's own directory) that can be run.
 * Returns 0 and its absolute path, or -ENOENT. */
static int find_program(const char *env, const char *self, const char *const *rels, size_t n_rels, char **ret) {
    const char *e = getenv(env);
    if (e && *e) {
        char *p = realpath(e, NULL);
        if (!p || access(p, X_OK) < 0) {
            free(p);
            return -ENOENT;
        }
        *ret = p;
        return 0;
    }
    for (size_t i = 0; i < n_rels; i++) {
        const char *slash = strrchr(self, '/');
        _cleanup_free_ char *rel = strprintf("%.*s/%s", (int)(slash ? slash - self : 1), slash ? self : ".", rels[i]);
        if (!rel)
            return -ENOMEM;
        char *p = realpath(rel, NULL);
        if (p && access(p, X_OK) == 0) {
            *ret = p;
            return 0;
        }
        free(p);
    }
    return -ENOENT;
}

/* halod: $HALO_HALOD, else beside haloctl, where the build tree and an installation have it. */
static int find_halod(const char *self, char **ret) {
    static const char *const halod_paths[] = {"../halod/halod", "halod"};
    if (find_program("HALO_HALOD", self, halod_paths, ELEMENTSOF(halod_paths), ret) < 0) {
        fprintf(stderr, "haloctl: cannot find halod beside '%s'; set $HALO_HALOD\n", self);
        return -ENOENT;
    }
    return 0;
}

/* ---- sim up ------------------------------------------------------------------ */

static void on_signal(int sig) {
    sim_interrupted = 1;
}

/* The node an SU runs on, from a status. */
static const char *su_node(json_t *sg, const char *su) {
    size_t i;
    json_t *u;
    json_array_foreach(json_object_get(sg, "service_units"), i, u) {
        if (streq(jstr(u, "name"), su))
            return jstr(u, "node");
    }
    return "?";
}

static void print_summary(const struct sim *s, json_t *st, const char *dir_opt) {
    size_t i, j;
    json_t *sg, *si;
    const char *coord = jstr(st, "coordinator");
    printf("A halo cluster runs in '%s': %zu nodes on %zu etcd member%s.\n\n", s->dir, s->n_nodes, s->n_members,
           s->n_members == 1 ? "" : "s");
    for (i = 0; i < s->n_members; i++)
        printf("  etcd  %-3s pid %-8d http://127.0.0.1:%d\n", s->members[i].proc.name, (int)s->members[i].proc.pid,
               s->members[i].client_port);
    for (i = 0; i < s->n_nodes; i++)
        printf("  halod %-3s pid %-8d %s  http://127.0.0.1:%d/%s\n", s->nodes[i].proc.name, (int)s->nodes[i].proc.pid,
               s->nodes[i].socket, s->nodes[i].http_port, streq(coord, s->nodes[i].proc.name) ? "  (coordinator)" : "");
    printf("\n  HTTP writes (POST /v1/events) take 'Authorization: Bearer <the token in %s/http.token>'\n\n", s->dir);
    json_array_foreach(json_object_get(st, "service_groups"), i, sg) {
        json_array_foreach(json_object_get(sg, "service_instances"), j, si) {
            printf("  SI %s: ACTIVE %s on %s, STANDBY %s on %s\n", jstr(si, "name"), jstr(si, "active"),
                   su_node(sg, jstr(si, "active")), jstr(si, "standby"), su_node(sg, jstr(si, "standby")));
        }
    }
    if (s->port)
        printf("  The counter's ACTIVE answers on 127.0.0.1:%d (INCR key, GET key, PING).\n", s->port);
    printf("\nLogs:        %s/etcd/mK.log, %s/nK/halod.log\n"
           "Look at it:  haloctl --socket %s status\n"
           "             haloctl sim status%s\n"
           "Stop it:     haloctl sim down%s\n",
           s->dir, s->dir, s->nodes[0].socket, dir_opt, dir_opt);
}

/* Records s in DIR/sim.json, or says why it cannot. */
static int save_or_say(const struct sim *s) {
    int r = sim_record_save(s);
    if (r < 0)
        fprintf(stderr, "haloctl: cannot write '%s/sim.json': %s\n", s->dir, strerror(-r));
    return r;
}

static int cmd_up(const struct sim_args *a) {
    static const char *const counter_paths[] = {"../../examples/counter"};
    _cleanup_(sim_layout_done) struct sim s = {
        .n_nodes = a->nodes, .n_members = a->members, .lease_ttl = a->lease_ttl ?: SIM_LEASE_TTL_DEFAULT};
    _cleanup_free_ char *self = NULL, *halod = NULL, *counter = NULL, *eps = NULL, *dir_opt = NULL;
    int ports[SIM_PORTS_MAX], r;
    json_t *status = NULL;

    r = sim_layout_dir(a->dir, &s.dir);
    if (r < 0)
        return r;
    r = self_exe(&self);
    if (r < 0) {
        fprintf(stderr, "haloctl: cannot tell where haloctl is: %s\n", strerror(-r));
        return r;
    }
    r = find_halod(self, &halod);
    if (r < 0)
        return r;
    const char *etcd = getenv("HALO_ETCD_BINARY") ?: ETCD_DEFAULT;
    if (access(etcd, X_OK) < 0) {
        r = -errno;
        fprintf(stderr,
                "haloctl: cannot run etcd '%s': %s; install it (Debian: etcd-server) or set $HALO_ETCD_BINARY\n", etcd,
                strerror(-r));
        return r;
    }
    if (a->config) {
        s.config = realpath(a->config, NULL);
        if (!s.config) {
            r = -errno;
            fprintf(stderr, "haloctl: cannot open '%s': %s\n", a->config, strerror(-r));
            return r;
        }
        r = sim_describe_check(halod, s.config, s.n_nodes);
        if (r < 0)
            return r;
    } else {
        if (s.n_nodes < 2) {
            fprintf(stderr, "haloctl: the example service (2N, one unit per node) needs --nodes 2 or more; "
                            "describe another layout with --config\n");
            return -EINVAL;
        }
        if (find_program("HALO_COUNTER", self, counter_paths, ELEMENTSOF(counter_paths), &counter) < 0) {
            fprintf(stderr,
                    "haloctl: cannot find the example counter (build/examples/counter) beside '%s'; "
                    "set $HALO_COUNTER or pass --config\n",
                    self);
            return -ENOENT;
        }
        s.generated = true;
        s.config = strprintf("%s/cluster.yaml", s.dir);
        if (!s.config)
            return -ENOMEM;
    }
    dir_opt = a->dir ? strprintf(" --dir %s", s.dir) : strdup("");
    if (!dir_opt)
        return -ENOMEM;
    r = sim_layout(&s);
    if (r < 0)
        return r;
    r = sim_record_prepare(&s);
    if (r < 0)
        return r;

    /* Ports: each member's client and peer port, the SI's port, each unit's
     * standby port, each node's HTTP API. */
    r = sim_layout_ports(2 * s.n_members + 1 + 2 * s.n_nodes, a->first_port, ports);
    if (r < 0) {
        if (!(r == -EADDRINUSE && a->first_port)) /* which port of the block, said already */
            fprintf(stderr, "haloctl: cannot find free loopback ports: %s\n", strerror(-r));
        return r;
    }
    for (size_t i = 0; i < s.n_members; i++) {
        s.members[i].client_port = ports[2 * i];
        s.members[i].peer_port = ports[2 * i + 1];
    }
    for (size_t i = 0; i < s.n_nodes; i++)
        s.nodes[i].http_port = ports[2 * s.n_members + 1 + s.n_nodes + i];
    if (s.generated) {
        s.port = ports[2 * s.n_members];
        r = sim_describe_write(&s, counter, ports + 2 * s.n_members + 1);
        if (r < 0) {
            fprintf(stderr, "haloctl: cannot write '%s': %s\n", s.config, strerror(-r));
            return r;
        }
    }
    _cleanup_free_ char *etcd_dir = strprintf("%s/etcd", s.dir);
    if (!etcd_dir)
        return -ENOMEM;
    for (size_t i = 0; i <= s.n_nodes; i++) {
        const char *d = i == 0 ? etcd_dir : s.nodes[i - 1].state_dir;
        if (mkdir(d, 0700) < 0 && errno != EEXIST) {
            r = -errno;
            fprintf(stderr, "haloctl: cannot create '%s': %s\n", d, strerror(-r));
            return r;
        }
    }
    eps = sim_layout_endpoints(&s);
    if (!eps)
        return -ENOMEM;

    struct sigaction sa = {.sa_handler = on_signal}; /* no SA_RESTART: a signal cuts the waits short */
    sigaction(SIGINT, &sa, NULL);
    sigaction(SIGTERM, &sa, NULL);
    sigaction(SIGHUP, &sa, NULL);
    usec_t deadline = now_monotonic_usec() + UP_TIMEOUT_USEC;

    /* Recorded before anything starts and after each start, so that sim down finds whatever a crash of ours would
     * leave behind. */
    r = save_or_say(&s);
    for (size_t i = 0; r >= 0 && i < s.n_members; i++)
        if ((r = sim_proc_start_member(&s, i, etcd)) >= 0)
            r = save_or_say(&s);
    if (r >= 0)
        r = sim_wait_etcd(&s, deadline);
    for (size_t i = 0; r >= 0 && i < s.n_nodes; i++)
        if ((r = sim_proc_start_node(&s, i, halod, eps)) >= 0)
            r = save_or_say(&s);
    if (r >= 0)
        r = sim_wait_settled(&s, self, deadline, &status);
    if (r < 0) {
        if (r == -EINTR)
            fprintf(stderr, "haloctl: interrupted\n");
        fprintf(stderr,
                "haloctl: stopping what sim up started; the logs stay in '%s' (haloctl sim down%s removes it)\n", s.dir,
                dir_opt);
        (void)sim_proc_stop_all(&s, true);
        (void)sim_record_save(&s);
        return r;
    }
    print_summary(&s, status, dir_opt);
    json_decref(status);
    return 0;
}

/* ---- sim down, sim status, sim start-node -------------------------------------- */

static int load_or_say(struct sim *s, const struct sim_args *a) {
    int r = sim_layout_dir(a->dir, &s->dir);
    if (r < 0)
        return r;
    r = sim_record_load(s);
    if (r == -ENOENT)
        fprintf(stderr, "haloctl: no simulation in '%s' (it has no sim.json)\n", s->dir);
    else if (r < 0 && r != -EBADMSG)
        fprintf(stderr, "haloctl: cannot read '%s/sim.json': %s\n", s->dir, strerror(-r));
    return r;
}

static int cmd_down(const struct sim_args *a) {
    _cleanup_(sim_layout_done) struct sim s = {};
    int r = load_or_say(&s, a);
    if (r < 0)
        return r;
    r = sim_proc_stop_all(&s, false);
    if (r < 0) {
        fprintf(stderr, "haloctl: not every process of the simulation stopped; '%s' stays\n", s.dir);
        return r;
    }
    r = sim_record_remove(&s, false);
    if (r < 0)
        fprintf(stderr, "haloctl: cannot remove the simulation's files in '%s': %s\n", s.dir, strerror(-r));
    else if (r == 0)
        printf("removed the simulation's files; '%s' stays: it holds files of someone else's\n", s.dir);
    else
        printf("removed '%s'\n", s.dir);
    return r < 0 ? r : 0;
}

static bool socket_answers(const char *path) {
    struct sockaddr_un sa = {.sun_family = AF_UNIX};
    if (strlen(path) >= sizeof(sa.sun_path))
        return false;
    strcpy(sa.sun_path, path);
    _cleanup_close_ int fd = socket(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0);
    return fd >= 0 && connect(fd, (struct sockaddr *)&sa, sizeof(sa)) == 0;
}

static int cmd_status(const struct sim_args *a) {
    _cleanup_(sim_layout_done) struct sim s = {};
    _cleanup_free_ char *self = NULL;
    int r = load_or_say(&s, a);
    if (r < 0)
        return r;
    r = self_exe(&self);
    if (r < 0)
        return r;
    for (size_t i = 0; i < s.n_nodes; i++) {
        if (!socket_answers(s.nodes[i].socket))
            continue;
        char *argv[] = {"haloctl", "--socket", s.nodes[i].socket, "status", a->json ? "--json" : NULL, NULL};
        fflush(stdout);
        execv(self, argv);
        r = -errno;
        fprintf(stderr, "haloctl: cannot run '%s': %s\n", self, strerror(-r));
        return r;
    }
    fprintf(stderr, "haloctl: no halod of the simulation in '%s' answers (tried n1..n%zu)\n", s.dir, s.n_nodes);
    return -ECONNREFUSED;
}

/* Starts a node's halod again (after it died or was killed), as sim up started it. */
static int cmd_start_node(const struct sim_args *a) {
    _cleanup_(sim_layout_done) struct sim s = {};
    _cleanup_free_ char *self = NULL, *halod = NULL, *eps = NULL;
    int r = load_or_say(&s, a);
    if (r < 0)
        return r;
    struct node *n = NULL;
    for (size_t i = 0; i < s.n_nodes; i++)
        if (streq(s.nodes[i].proc.name, a->node))
            n = &s.nodes[i];
    if (!n) {
        fprintf(stderr, "haloctl: the simulation in '%s' has no node '%s' (n1..n%zu)\n", s.dir, a->node, s.n_nodes);
        return -ENOENT;
    }
    if (sim_proc_alive(&n->proc)) {
        fprintf(stderr, "haloctl: the halod of node '%s' runs already (pid %d)\n", a->node, (int)n->proc.pid);
        return -EEXIST;
    }
    r = self_exe(&self);
    if (r >= 0)
        r = find_halod(self, &halod);
    if (r < 0)
        return r;
    if (!(eps = sim_layout_endpoints(&s)))
        return -ENOMEM;
    (void)unlink(n->socket); /* a killed halod leaves it: wait for the new one's */
    r = sim_proc_start_node(&s, (size_t)(n - s.nodes), halod, eps);
    if (r < 0 || (r = save_or_say(&s)) < 0)
        return r;
    for (int i = 0; i < 200 && !socket_answers(n->socket); i++) {
        if (!sim_proc_alive(&n->proc)) {
            fprintf(stderr, "haloctl: the halod of node '%s' exited at start; see '%s'\n", a->node, n->proc.log);
            return -ECHILD;
        }
        sim_wait_msec(50);
    }
    if (!socket_answers(n->socket)) {
        fprintf(stderr, "haloctl: the halod of node '%s' does not answer on '%s'\n", a->node, n->socket);
        return -ETIMEDOUT;
    }
    printf("started the halod of node '%s' (pid %d)\n", a->node, (int)n->proc.pid);
    return 0;
}

/* ---- the command ----------------------------------------------------------------- */

struct sim_verb {
    const char *name;
    const char *options; /* the short names of the options it takes */
    int (*run)(const struct sim_args *a);
};

static const struct sim_verb sim_verbs[] = {
    {"up", "nmdctp", cmd_up},
    {"down", "d", cmd_down},
    {"status", "dj", cmd_status},
    {"start-node", "d", cmd_start_node},
};

static int parse_count(const char *s, const char *opt, unsigned max, unsigned *ret) {
    uint64_t v;
    if (parse_u64_range(s, 1, max, &v) < 0) {
        fprintf(stderr, "haloctl: %s wants a number from 1 to %u, not '%s'\n", opt, max, s);
        return -EINVAL;
    }
    *ret = (unsigned)v;
    return 0;
}

int sim_main(int argc, char **argv, bool json) {
    static const struct option opts[] = {
        {"nodes", required_argument, NULL, 'n'}, {"etcd-members", required_argument, NULL, 'm'},
        {"dir", required_argument, NULL, 'd'},   {"config", required_argument, NULL, 'c'},
        {"json", no_argument, NULL, 'j'},        {"lease-ttl", required_argument, NULL, 't'},
        {"ports", required_argument, NULL, 'p'}, {},
    };
    const struct sim_verb *v = NULL;
    struct sim_args a = {.nodes = 3, .members = 1, .json = json};
    int c;

    if (argc < 2) {
        fprintf(stderr, "haloctl: 'sim' wants up, down, status or start-node. Try 'haloctl --help'.\n");
        return 2;
    }
    for (size_t i = 0; i < ELEMENTSOF(sim_verbs); i++)
        if (streq(sim_verbs[i].name, argv[1]))
            v = &sim_verbs[i];
    if (!v) {
        fprintf(stderr, "haloctl: unknown command 'sim %s'. Try 'haloctl --help'.\n", argv[1]);
        return 2;
    }
    /* The verb's own options, anywhere after it. */
    argc--, argv++;
    optind = 0;
    opterr = 0;
    for (;;) {
        int li = -1;
        c = getopt_long(argc, argv, ":n:m:d:c:jt:p:", opts, &li);
        if (c < 0)
            break;
        if (c == '?' || c == ':') {
            fprintf(stderr,
                    c == ':' ? "haloctl: 'sim %s': option '%s' needs a value\n"
                             : "haloctl: 'sim %s': unknown option '%s'. Try 'haloctl --help'.\n",
                    v->name, argv[optind - 1]);
            return 2;
        }
        if (!strchr(v->options, c)) {
            for (li = 0; opts[li].val != c; li++)
                ;
            fprintf(stderr, "haloctl: 'sim %s' takes no option '--%s'\n", v->name, opts[li].name);
            return 2;
        }
        switch (c) {
        case 'n':
            if (parse_count(optarg, "--nodes", SIM_NODES_MAX, &a.nodes) < 0)
                return 2;
            break;
        case 'm':
            if (parse_count(optarg, "--etcd-members", SIM_MEMBERS_MAX, &a.members) < 0)
                return 2;
            break;
        case 'd':
            a.dir = optarg;
            break;
        case 'c':
            a.config = optarg;
            break;
        case 'j':
            a.json = true;
            break;
        case 't':
            if (parse_count(optarg, "--lease-ttl", SIM_LEASE_TTL_MAX, &a.lease_ttl) < 0)
                return 2;
            break;
        case 'p':
            /* Room for the most ports a cluster takes after it. */
            if (parse_count(optarg, "--ports", 65535 - SIM_PORTS_MAX, &a.first_port) < 0)
                return 2;
            if (a.first_port < 1024) {
                fprintf(stderr, "haloctl: --ports wants a port from 1024, not '%s'\n", optarg);
                return 2;
            }
            break;
        }
    }
    if (v->run == cmd_start_node) {
        if (optind + 1 != argc) {
            fprintf(stderr, "haloctl: 'sim start-node' takes one node name (n1, n2, ...)\n");
            return 2;
        }
        a.node = argv[optind++];
    }
    if (optind < argc) {
        fprintf(stderr, "haloctl: 'sim %s' takes no argument '%s'\n", v->name, argv[optind]);
        return 2;
    }
    return v->run(&a) < 0 ? 1 : 0;
}
