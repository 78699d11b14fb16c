/* SPDX-License-Identifier: MIT */
/* haloctl: the command-line client of halod, over the HA link. */
#include <errno.h>
#include <getopt.h>
#include <jansson.h>
#include <limits.h>
#include <poll.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

#include "halo/halo.h"
#include "hlc.h"
#include "link.h"
#include "macro.h"
#include "ctl-admin.h"
#include "ctl-cdb.h"
#include "ctl-ckpt.h"
#include "ctl-evt.h"
#include "ctl-txn.h"
#include "ctl-exit.h"
#include "paths.h"
#include "ctl-ha.h"
#include "ctl-names.h"
#include "sim.h"

static const char *arg_socket;
static bool arg_json;
static bool arg_follow;
static bool arg_force;
static int arg_timeout_ms = 30000;
/* connect_halod() failed: the command's error means "halod unreachable" (CTL_EXIT_UNREACHABLE). */
static bool halod_unreachable;

int ctl_exit_code(int r) {
    if (r >= 0)
        return CTL_EXIT_OK;
    if (halod_unreachable)
        return CTL_EXIT_UNREACHABLE;
    switch (r) {
    case -HALO_EUNKNOWN:
    case -ENOENT:
        return CTL_EXIT_NO_OBJECT;
    case -HALO_EBADSTATE:
    case -HALO_EEXIST:
    case -HALO_EREADONLY:
    case -EBUSY:
        return CTL_EXIT_REFUSED;
    case -ETIMEDOUT:
        return CTL_EXIT_TIMEOUT;
    default:
        return CTL_EXIT_FAILURE;
    }
}

static int64_t now_ms(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* Waits for one packet until the deadline.  Returns 1 and *ret, or -errno. */
static int recv_until(int fd, int64_t deadline, LinkMsg **ret) {
    for (;;) {
        int64_t left = deadline - now_ms();
        if (left <= 0)
            return -ETIMEDOUT;
        struct pollfd p = {.fd = fd, .events = POLLIN};
        int r = poll(&p, 1, left > INT_MAX ? INT_MAX : (int)left); /* INT64_MAX: no deadline (events --follow) */
        if (r < 0 && errno != EINTR)
            return -errno;
        if (r <= 0)
            continue;
        r = link_recv(fd, ret);
        if (r == -EAGAIN)
            continue;
        if (r == 0)
            return -ECONNRESET;
        return r;
    }
}

static int connect_halod_once(int *ret_fd);

/* --socket, $HALO_SOCKET, else where halod puts it by default: under
 * /run/halo (halod.service, or halod without --state-dir), else in its default
 * state directory. */
static const char *default_socket(void) {
    if (arg_socket)
        return arg_socket;
    if (getenv("HALO_SOCKET") && *getenv("HALO_SOCKET"))
        return getenv("HALO_SOCKET");
    if (access(HALO_RUNTIME_DIR "/halod.sock", F_OK) == 0)
        return HALO_RUNTIME_DIR "/halod.sock";
    return HALO_STATE_DIR "/halod.sock";
}

static int connect_halod(int *ret_fd) {
    int r = connect_halod_once(ret_fd);
    halod_unreachable = r < 0;
    return r;
}

static int connect_halod_once(int *ret_fd) {
    const char *path = default_socket();
    struct sockaddr_un sa = {.sun_family = AF_UNIX};
    if (strlen(path) >= sizeof(sa.sun_path))
        return -ENAMETOOLONG;
    strcpy(sa.sun_path, path);
    _cleanup_close_ int fd = socket(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0);
    if (fd < 0)
        return -errno;
    if (connect(fd, (struct sockaddr *)&sa, sizeof(sa)) < 0) {
        int r = -errno;
        fprintf(stderr, "haloctl: cannot reach halod at '%s': %s\n", path, strerror(-r));
        return r;
    }
    Halo__Link__Hello h = HALO__LINK__HELLO__INIT;
    LinkMsg m = HALO__LINK__MSG__INIT;
    h.version = LINK_PROTOCOL_VERSION;
    h.pid = (uint32_t)getpid();
    h.client = "haloctl/0.1";
    m.body_case = HALO__LINK__MSG__BODY_HELLO;
    m.hello = &h;
    int r = link_send(fd, &m);
    if (r < 0)
        return r;
    LinkMsg *rep = NULL;
    r = recv_until(fd, now_ms() + 5000, &rep);
    if (r < 0)
        return r;
    if (rep->body_case != HALO__LINK__MSG__BODY_HELLO_REPLY || rep->hello_reply->error) {
        r = rep->body_case == HALO__LINK__MSG__BODY_HELLO_REPLY ? rep->hello_reply->error : -EPROTO;
        link_msg_free(rep);
        fprintf(stderr, "haloctl: halod refused the connection: %s\n", halo_strerror(r));
        return r;
    }
    link_msg_free(rep);
    *ret_fd = TAKE_FD(fd);
    return 0;
}

/* The longest answer haloctl takes (a status of tens of thousands of components). */
#define HALOCTL_REPLY_MAX (64 * 1024 * 1024)

/* Sends one admin request and waits for its reply.  *ret_json gets the reply's JSON. */
static int admin(Halo__Link__Admin__Op op, const char *target, char **ret_json) {
    _cleanup_close_ int fd = -1;
    int r = connect_halod(&fd);
    if (r < 0)
        return r;
    Halo__Link__Admin a = HALO__LINK__ADMIN__INIT;
    LinkMsg m = HALO__LINK__MSG__INIT;
    a.seq = 1;
    a.op = op;
    a.target = (char *)(target ?: "");
    m.body_case = HALO__LINK__MSG__BODY_ADMIN;
    m.admin = &a;
    r = link_send(fd, &m);
    if (r < 0)
        return r;
    int64_t deadline = now_ms() + arg_timeout_ms;
    /* A long answer comes in parts: each Reply with "more" asks for the next. */
    _cleanup_free_ char *json = NULL;
    size_t len = 0;
    for (;;) {
        LinkMsg *rep = NULL;
        r = recv_until(fd, deadline, &rep);
        if (r < 0)
            return r;
        if (rep->body_case != HALO__LINK__MSG__BODY_REPLY || rep->reply->seq != a.seq) {
            link_msg_free(rep);
            continue;
        }
        r = rep->reply->error;
        const char *part = rep->reply->json ?: "";
        size_t n = strlen(part);
        bool more = rep->reply->more;
        char *grown = r == 0 && len + n < HALOCTL_REPLY_MAX ? realloc(json, len + n + 1) : NULL;
        if (grown) {
            memcpy(grown + len, part, n + 1);
            json = grown;
            len += n;
        } else if (r == 0)
            r = len + n >= HALOCTL_REPLY_MAX ? -EMSGSIZE : -ENOMEM;
        if (r < 0 && ret_json && *part && !json) /* a refusal that says why (reload) */
            json = strdup(part);
        link_msg_free(rep);
        if (r < 0 || !more)
            break;
        a.seq++;
        a.op = HALO__LINK__ADMIN__OP__STATUS_MORE;
        r = link_send(fd, &m);
        if (r < 0)
            return r;
    }
    if (ret_json)
        *ret_json = TAKE_PTR(json);
    return r;
}

int ctl_request(Halo__Link__Admin__Op op, const char *target, char **ret_json) {
    return admin(op, target, ret_json);
}

int ctl_status_json(char **ret_json) {
    return admin(HALO__LINK__ADMIN__OP__STATUS, NULL, ret_json);
}

/* ---- status ------------------------------------------------------------- */

static const char *jstr(json_t *o, const char *k) {
    const char *s = json_string_value(json_object_get(o, k));
    return s ?: "-";
}

/* The names of a JSON list joined by ',' ("-" for none), cut to size. */
static const char *join_names(json_t *list, char *buf, size_t size) {
    size_t i, len = 0;
    json_t *v;
    buf[0] = 0;
    json_array_foreach(list, i, v) {
        if (json_is_string(v) && len < size)
            len += (size_t)snprintf(buf + len, size - len, "%s%s", i ? "," : "", json_string_value(v));
    }
    return buf[0] ? buf : "-";
}

/* A database's role on this node: the main one, or a cdb-roles group's subtree. */
static void print_cdb_role(const char *what, json_t *cdb) {
    size_t i;
    json_t *sec;
    printf("%s: %s", what, jstr(cdb, "state"));
    if (json_is_string(json_object_get(cdb, "nodeid")))
        printf(" as %s", jstr(cdb, "nodeid"));
    if (json_is_string(json_object_get(cdb, "primary")))
        printf(", primary %s", jstr(cdb, "primary"));
    json_array_foreach(json_object_get(cdb, "secondaries"), i, sec)
        printf("%s%s", i ? ", " : ", secondaries ", jstr(sec, "nodeid"));
    if (json_is_string(json_object_get(cdb, "roles_follow")))
        printf(" (roles follow service group %s)", jstr(cdb, "roles_follow"));
    printf("; last transaction %s\n", jstr(cdb, "last_txid"));
}

static void print_status(json_t *root) {
    size_t i, j, k, l;
    json_t *n, *sg, *su, *c, *si;

    printf("Cluster %s, node %s, store %s, coordinator %s\n\n", jstr(root, "cluster"), jstr(root, "node"),
           jstr(root, "store"), jstr(root, "coordinator"));
    json_array_foreach(json_object_get(root, "warnings"), i, n) printf("WARNING: %s\n", json_string_value(n) ?: "?");
    if (json_array_size(json_object_get(root, "warnings")))
        printf("\n");
    printf("%-20s %s\n", "NODE", "STATE");
    json_array_foreach(json_object_get(root, "nodes"), i, n)
        printf("%-20s %s%s%s%s%s\n", jstr(n, "name"), jstr(n, "state"),
               json_is_true(json_object_get(n, "coordinator")) ? " (coordinator)" : "",
               json_is_true(json_object_get(n, "local")) ? " (this node)" : "",
               json_is_true(json_object_get(n, "local")) ? ", admin " : "",
               json_is_true(json_object_get(n, "local")) ? jstr(root, "node_admin") : "");

    json_t *cdb = json_object_get(root, "cdb");
    if (json_is_object(cdb)) {
        json_t *sub;
        printf("\n");
        print_cdb_role("Configuration database", cdb);
        json_array_foreach(json_object_get(cdb, "subtrees"), j, sub) {
            char what[300];
            snprintf(what, sizeof(what), "Configuration database %.256s", jstr(sub, "subtree"));
            print_cdb_role(what, sub);
        }
    }

    json_array_foreach(json_object_get(root, "service_groups"), i, sg) {
        printf("\nService group %s (%s), admin %s\n", jstr(sg, "name"), jstr(sg, "redundancy"), jstr(sg, "admin"));
        printf("  %-22s %-10s %-20s %-8s %-15s %s\n", "SERVICE UNIT", "NODE", "ADMIN", "OPER", "READINESS", "HA STATE");
        json_array_foreach(json_object_get(sg, "service_units"), j, su) {
            /* The SU's roles, from the SIs. */
            char roles[256] = "";
            json_array_foreach(json_object_get(sg, "service_instances"), k, si) {
                json_t *a;
                json_array_foreach(json_object_get(si, "assignments"), l, a) {
                    if (strcmp(jstr(a, "su"), jstr(su, "name")) != 0)
                        continue;
                    size_t len = strlen(roles);
                    snprintf(roles + len, sizeof(roles) - len, "%s%s(%s)%s", len ? " " : "", jstr(a, "ha_state"),
                             jstr(si, "name"), json_is_true(json_object_get(a, "pending")) ? "*" : "");
                }
            }
            printf("  %-22s %-10s %-20s %-8s %-15s %s\n", jstr(su, "name"), jstr(su, "node"), jstr(su, "admin"),
                   jstr(su, "oper"), jstr(su, "readiness"), *roles ? roles : "-");
            if (json_is_string(json_object_get(su, "last_recovery")))
                printf("  %-22s last recovery: %s\n", "", jstr(su, "last_recovery"));
            if (json_is_true(json_object_get(su, "unkillable")))
                printf("  %-22s its processes outlived SIGKILL past the terminate timeout: its service instances "
                       "wait for them to die (or 'haloctl repair %s')\n",
                       "", jstr(su, "name"));
        }
        printf("\n  %-22s %-10s %-12s %-20s %-8s %s\n", "COMPONENT", "NODE", "TYPE", "PRESENCE", "PID", "LAST EXIT");
        json_array_foreach(json_object_get(sg, "service_units"), j, su) {
            /* Another node's: what its node published of the unit (the processes are known there). */
            bool here = strcmp(jstr(su, "node"), jstr(root, "node")) == 0;
            json_array_foreach(json_object_get(su, "components"), k, c) {
                char pid[16] = "-", presence[32];
                if (here && json_is_integer(json_object_get(c, "pid")))
                    snprintf(pid, sizeof(pid), "%lld", (long long)json_integer_value(json_object_get(c, "pid")));
                if (here)
                    snprintf(presence, sizeof(presence), "%s", jstr(c, "presence"));
                else if (strcmp(jstr(su, "readiness"), "OTHER-NODE") == 0)
                    snprintf(presence, sizeof(presence), "not known here");
                else
                    snprintf(presence, sizeof(presence), "unit %s", jstr(su, "readiness"));
                printf("  %-22s %-10s %-12s %-20s %-8s %s\n", jstr(c, "name"), jstr(su, "node"), jstr(c, "type"),
                       presence, pid, here ? jstr(c, "last_exit") : "-");
                json_t *rec = json_object_get(c, "recovery");
                if (rec && here)
                    printf("  %-22s recovery in pool '%s': %s, epoch %lld%s%s\n", "", jstr(rec, "pool"),
                           jstr(rec, "state"), (long long)json_integer_value(json_object_get(rec, "epoch")),
                           json_object_get(rec, "reason") ? ": " : "",
                           json_object_get(rec, "reason") ? jstr(rec, "reason") : "");
            }
        }
        printf("\n  %-22s %-19s %-20s %s\n", "SERVICE INSTANCE", "ASSIGNMENT", "ACTIVE", "STANDBY");
        json_array_foreach(json_object_get(sg, "service_instances"), k, si) {
            char act[256], sb[256];
            printf("  %-22s %-19s %-20s %s\n", jstr(si, "name"), jstr(si, "assignment"),
                   join_names(json_object_get(si, "actives"), act, sizeof(act)),
                   join_names(json_object_get(si, "standbys"), sb, sizeof(sb)));
            if (json_is_string(json_object_get(si, "admin")) && strcmp(jstr(si, "admin"), "UNLOCKED") != 0)
                printf("  %-22s admin: %s\n", "", jstr(si, "admin"));
            if (json_is_string(json_object_get(si, "waits_for")))
                printf("  %-22s waits for unit %s to be fenced (its processes gone, its resources stopped)\n", "",
                       jstr(si, "waits_for"));
        }
    }
}

static int cmd_status(int argc, char **argv) {
    _cleanup_free_ char *json = NULL;
    int r = admin(HALO__LINK__ADMIN__OP__STATUS, NULL, &json);
    if (r < 0)
        return r;
    if (arg_json) {
        printf("%s\n", json);
        return 0;
    }
    json_error_t err;
    json_t *root = json_loads(json, 0, &err);
    if (!root) {
        fprintf(stderr, "haloctl: halod sent a status that is not JSON: %s\n", err.text);
        return -EBADMSG;
    }
    print_status(root);
    json_decref(root);
    return 0;
}

/* haloctl names KIND: the names of the cluster's objects of one kind, one a line (for scripts and
 * bash completion), from the status document. */
static int cmd_names(int argc, char **argv) {
    static const char *const kinds[] = {"node", "sg", "su", "si", "comp"};
    size_t k = 0;
    while (argc == 1 && k < ELEMENTSOF(kinds) && !streq(kinds[k], argv[0]))
        k++;
    if (argc != 1 || k == ELEMENTSOF(kinds)) {
        fprintf(stderr, "haloctl: 'names' takes one kind: node, sg, su, si or comp.\n");
        return CTL_EXIT_USAGE;
    }
    _cleanup_free_ char *json = NULL;
    int r = admin(HALO__LINK__ADMIN__OP__STATUS, NULL, &json);
    json_t *root = r >= 0 ? json_loads(json, 0, NULL) : NULL;
    if (r >= 0 && !root)
        r = -EBADMSG;
    if (r < 0) {
        if (!halod_unreachable)
            fprintf(stderr, "haloctl: names: %s\n", halo_strerror(r));
        return ctl_exit_code(r);
    }
    size_t i, j, c;
    json_t *n, *sg, *su, *si, *comp;
    if (k == 0)
        json_array_foreach(json_object_get(root, "nodes"), i, n) printf("%s\n", jstr(n, "name"));
    json_array_foreach(json_object_get(root, "service_groups"), i, sg) {
        if (k == 1)
            printf("%s\n", jstr(sg, "name"));
        json_array_foreach(json_object_get(sg, "service_units"), j, su) {
            if (k == 2)
                printf("%s\n", jstr(su, "name"));
            json_array_foreach(json_object_get(su, "components"), c, comp) if (k == 4)
                printf("%s\n", jstr(comp, "name"));
        }
        json_array_foreach(json_object_get(sg, "service_instances"), j, si) if (k == 3)
            printf("%s\n", jstr(si, "name"));
    }
    json_decref(root);
    return 0;
}

/* ---- events and failure vectors ----------------------------------------- */

static void print_event_row(json_t *ev) {
    json_t *ep = json_object_get(ev, "epoch");
    char epoch[24] = "-";
    if (json_is_integer(ep))
        snprintf(epoch, sizeof(epoch), "%lld", (long long)json_integer_value(ep));
    printf("%-8lld %-28s %-32s %-10s %-8s %-6s %s\n", (long long)json_integer_value(json_object_get(ev, "seq")),
           json_string_value(json_object_get(ev, "time")) ?: "-", jstr(ev, "object"), jstr(ev, "state"),
           json_string_value(json_object_get(ev, "node")) ?: "-", epoch,
           json_string_value(json_object_get(ev, "reason")) ?: "");
}

static void print_event_header(void) {
    printf("%-8s %-28s %-32s %-10s %-8s %-6s %s\n", "SEQ", "TIME", "OBJECT", "STATE", "NODE", "EPOCH", "REASON");
}

/* Prints the events of doc ({"events": [...]}) after seq *last; *last becomes the highest printed. */
static void print_events(json_t *doc, uint64_t *last) {
    size_t i;
    json_t *ev;
    json_array_foreach(json_object_get(doc, "events"), i, ev) {
        uint64_t seq = (uint64_t)json_integer_value(json_object_get(ev, "seq"));
        if (seq <= *last)
            continue;
        *last = seq;
        if (arg_json) {
            char *t = json_dumps(ev, JSON_COMPACT | JSON_SORT_KEYS);
            printf("%s\n", t ?: "{}");
            free(t);
        } else
            print_event_row(ev);
    }
    fflush(stdout);
}

static int cmd_events(bool follow) {
    _cleanup_close_ int fd = -1;
    int r;
    /* Following starts first, so that nothing falls between the dump and the notes. */
    if (follow) {
        r = connect_halod(&fd);
        if (r < 0)
            return r;
        Halo__Link__Admin a = HALO__LINK__ADMIN__INIT;
        LinkMsg m = HALO__LINK__MSG__INIT;
        a.seq = 1;
        a.op = HALO__LINK__ADMIN__OP__EVENTS_FOLLOW;
        a.target = "";
        m.body_case = HALO__LINK__MSG__BODY_ADMIN;
        m.admin = &a;
        r = link_send(fd, &m);
        LinkMsg *rep = NULL;
        while (r >= 0) {
            r = recv_until(fd, now_ms() + arg_timeout_ms, &rep);
            if (r < 0)
                break;
            bool mine = rep->body_case == HALO__LINK__MSG__BODY_REPLY && rep->reply->seq == 1;
            r = mine ? rep->reply->error : 0;
            link_msg_free(rep);
            if (mine)
                break;
        }
        if (r < 0)
            return r;
    }
    _cleanup_free_ char *json = NULL;
    r = admin(HALO__LINK__ADMIN__OP__EVENTS, NULL, &json);
    if (r < 0)
        return r;
    json_t *doc = json_loads(json, 0, NULL);
    if (!doc)
        return -EBADMSG;
    uint64_t last = 0;
    if (!arg_json)
        print_event_header();
    if (arg_json && !follow) {
        printf("%s\n", json);
        json_decref(doc);
        return 0;
    }
    print_events(doc, &last);
    json_decref(doc);
    while (follow) {
        LinkMsg *m = NULL;
        r = recv_until(fd, INT64_MAX, &m);
        if (r < 0)
            return r == -ECONNRESET ? 0 : r;
        if (m->body_case == HALO__LINK__MSG__BODY_OBJECT_STATE_NOTE) {
            json_t *evs = json_array();
            for (size_t i = 0; i < m->object_state_note->n_states; i++) {
                const Halo__Link__ObjectState *st = m->object_state_note->states[i];
                char when[HLC_STRING_MAX];
                json_t *ev =
                    json_pack("{s:s, s:s, s:I}", "object", st->object, "state", st->state, "seq", (json_int_t)st->seq);
                if (st->hlc)
                    json_object_set_new(ev, "time", json_string(hlc_format(st->hlc, when)));
                json_array_append_new(evs, ev);
            }
            json_t *d = json_pack("{s:o}", "events", evs);
            print_events(d, &last);
            json_decref(d);
        }
        link_msg_free(m);
    }
    return 0;
}

static int cmd_failvec(const char *process) {
    _cleanup_free_ char *json = NULL;
    int r = admin(HALO__LINK__ADMIN__OP__FAILVEC, process, &json);
    if (r < 0)
        return r;
    if (arg_json) {
        printf("%s\n", json);
        return 0;
    }
    json_t *doc = json_loads(json, 0, NULL);
    if (!doc)
        return -EBADMSG;
    json_t *cur = json_object_get(doc, "current_epoch");
    if (json_is_integer(cur))
        printf("%s: current epoch %lld\n", jstr(doc, "process"), (long long)json_integer_value(cur));
    else
        printf("%s: no epoch yet\n", jstr(doc, "process"));
    size_t i;
    json_t *ep;
    json_array_foreach(json_object_get(doc, "epochs"), i, ep) {
        json_t *rec = json_object_get(ep, "record");
        /* Compacted: one line per object, its last state in the epoch, in the order of its first event. */
        printf("\nepoch %lld: %lld objects", (long long)json_integer_value(json_object_get(ep, "epoch")),
               (long long)json_integer_value(json_object_get(ep, "nr_failures")));
        if (json_is_object(rec))
            printf(" (opened by seq %lld)", (long long)json_integer_value(json_object_get(rec, "seq")));
        printf("\n");
        if (json_array_size(json_object_get(ep, "events")) > 0)
            print_event_header();
        size_t k;
        json_t *ev;
        json_array_foreach(json_object_get(ep, "events"), k, ev) print_event_row(ev); /* seqs need not ascend */
    }
    json_decref(doc);
    return 0;
}

/* ---- commands ----------------------------------------------------------- */

struct verb {
    const char *name;
    const char *arg; /* NULL: takes no argument */
    Halo__Link__Admin__Op op;
    const char *done;
    const char *help;
};

static const struct verb verbs[] = {
    {"status", NULL, HALO__LINK__ADMIN__OP__STATUS, NULL, "show nodes, service groups, units, components, instances"},
    {"switchover", "SI", HALO__LINK__ADMIN__OP__SWITCHOVER, "switched over",
     "move ACTIVE of SI to its standby, gracefully (admin si-swap si:SI)"},
    {"lock", "SU", HALO__LINK__ADMIN__OP__LOCK, "locked",
     "take SU out of service at once: QUIESCED, then removed (admin lock su:SU)"},
    {"unlock", "SU", HALO__LINK__ADMIN__OP__UNLOCK, "unlocked", "put SU back into service (admin unlock su:SU)"},
    {"restart", "COMPONENT", HALO__LINK__ADMIN__OP__RESTART, "restarted in place",
     "restart a component in place: its SU keeps its roles (admin restart comp:COMPONENT)"},
    {"repair", "SU", HALO__LINK__ADMIN__OP__REPAIR, "repaired",
     "clear a disabled SU and start it again, or say an unkillable SU's processes are gone (admin repaired su:SU)"},
    {"stop-halod", NULL, HALO__LINK__ADMIN__OP__SHUTDOWN, "halod is stopping",
     "stop halod and every component of this node"},
    {"shutdown", NULL, HALO__LINK__ADMIN__OP__SHUTDOWN, "halod is stopping",
     "deprecated name of stop-halod (the AMF's shutdown is 'admin shutdown')"},
    {"eam-start", "COMPONENT", HALO__LINK__ADMIN__OP__EAM_START, "started the monitor of",
     "run the component's external monitor again"},
    {"eam-stop", "COMPONENT", HALO__LINK__ADMIN__OP__EAM_STOP, "stopped the monitor of",
     "stop the component's external monitor (its failures are not seen)"},
    {"failvec", "PROCESS", HALO__LINK__ADMIN__OP__FAILVEC, NULL,
     "a pool process's epochs and failure vectors (docs/recovery.md)"},
    {"recover", "PROCESS", HALO__LINK__ADMIN__OP__RECOVER_FORCE, "forced the recovery of",
     "with --force: a refused pool process recovers past its pool's tolerance"},
};

/* haloctl log-level comp:NAME LEVEL, stream:NAME LEVEL: a component's or a stream's level (the log
 * service, docs/logging.md), on every node. */
static int log_level_service(const char *what, const char *level) {
    _cleanup_free_ char *spec = NULL;
    if (asprintf(&spec, "%s=%s", what, level) < 0)
        return CTL_EXIT_FAILURE;
    int r = admin(HALO__LINK__ADMIN__OP__LOG_SERVICE, spec, NULL);
    if (r == -EINVAL) {
        fprintf(stderr,
                "haloctl: log-level %s %s: want comp:NAME or stream:NAME, then a level: emergency alert critical "
                "error warning notice info debug trace, or default\n",
                what, level);
        return CTL_EXIT_USAGE;
    }
    if (r < 0) {
        if (!halod_unreachable)
            fprintf(stderr, "haloctl: log-level %s: %s\n", what, halo_strerror(r));
        return ctl_exit_code(r);
    }
    if (arg_json)
        printf("{\"ok\":true}\n");
    else
        printf("log-level: %s logs at '%s' from now on\n", what, level);
    return 0;
}

/* The components' and streams' levels set, one per line, after halod's areas. */
static void print_service_levels(void) {
    _cleanup_free_ char *json = NULL;
    if (admin(HALO__LINK__ADMIN__OP__LOG_SERVICE, NULL, &json) < 0)
        return;
    json_t *doc = json_loads(json ?: "", 0, NULL);
    static const char *const kinds[][2] = {{"components", "comp"}, {"streams", "stream"}};
    for (size_t k = 0; k < ELEMENTSOF(kinds); k++) {
        const char *name;
        json_t *lvl;
        json_object_foreach(json_object_get(doc, kinds[k][0]), name, lvl) {
            char what[300];
            snprintf(what, sizeof(what), "%s:%s", kinds[k][1], name);
            printf("%-12s %s\n", what, json_string_value(lvl) ?: "?");
        }
    }
    json_decref(doc);
}

/* haloctl log-level [[AREA=]LEVEL]: halod's levels, or a new one from now on. */
static int cmd_log_level(int argc, char **argv) {
    if (argc == 2 && (strncmp(argv[0], "comp:", 5) == 0 || strncmp(argv[0], "stream:", 7) == 0))
        return log_level_service(argv[0], argv[1]);
    if (argc > 1) {
        fprintf(stderr, "haloctl: 'log-level' takes LEVEL, AREA=LEVEL, or comp:NAME LEVEL or stream:NAME LEVEL.\n");
        return CTL_EXIT_USAGE;
    }
    _cleanup_free_ char *json = NULL;
    int r = admin(HALO__LINK__ADMIN__OP__LOG_LEVEL, argc ? argv[0] : NULL, &json);
    if (r == -EINVAL || r == -ENOENT) {
        fprintf(stderr,
                "haloctl: log-level '%s': %s; levels: error warning notice info debug; areas: main amf link "
                "supervisor store cluster\n",
                argv[0], r == -EINVAL ? "unknown level" : "unknown area");
        return CTL_EXIT_USAGE;
    }
    if (r < 0) {
        if (!halod_unreachable)
            fprintf(stderr, "haloctl: log-level: %s\n", halo_strerror(r));
        return ctl_exit_code(r);
    }
    if (argc) {
        if (arg_json)
            printf("{\"ok\":true}\n");
        else
            printf("log-level: halod logs '%s' from now on\n", argv[0]);
        return 0;
    }
    if (arg_json) {
        printf("%s\n", json ?: "{}");
        return 0;
    }
    json_t *doc = json_loads(json ?: "", 0, NULL);
    const char *area;
    json_t *lvl;
    json_object_foreach(doc, area, lvl) printf("%-12s %s\n", area, json_string_value(lvl) ?: "?");
    json_decref(doc);
    if (doc)
        print_service_levels();
    return doc ? 0 : CTL_EXIT_FAILURE;
}

/* haloctl reload: halod reads its description again and applies it, or refuses it with its errors. */
static int cmd_reload(int argc) {
    if (argc > 0) {
        fprintf(stderr, "haloctl: 'reload' takes no argument.\n");
        return CTL_EXIT_USAGE;
    }
    _cleanup_free_ char *json = NULL;
    int r = admin(HALO__LINK__ADMIN__OP__RELOAD, NULL, &json);
    json_t *doc = json ? json_loads(json, 0, NULL) : NULL;
    if (arg_json && doc)
        printf("%s\n", json);
    else if (r == 0)
        printf("reload: applied: %s\n", jstr(doc, "summary"));
    else if (r == -HALO_EBADSTATE && doc) {
        size_t i;
        json_t *e;
        fprintf(stderr, "haloctl: reload refused; halod keeps its running description:\n");
        json_array_foreach(json_object_get(doc, "errors"), i, e) fprintf(stderr, "  %s\n", json_string_value(e));
    } else if (!halod_unreachable)
        fprintf(stderr, "haloctl: reload: %s\n", halo_strerror(r));
    json_decref(doc);
    return ctl_exit_code(r);
}

static void help(void) {
    printf("Usage: haloctl [OPTIONS] COMMAND [ARG]\n\nCommands:\n");
    for (size_t i = 0; i < ELEMENTSOF(verbs); i++)
        printf("  %-12s %-10s %s\n", verbs[i].name, verbs[i].arg ?: "", verbs[i].help);
    ctl_admin_help();
    printf("  names KIND              the names of the cluster's objects of KIND (node, sg, su, si, comp),\n"
           "                          one a line\n");
    printf("  registrations [CONTEXT] the name service's live registrations (docs/names.md), best first\n");
    printf("  reload                  read the description again: apply what changed, or refuse it all\n"
           "                          with its errors (exit 5)\n");
    printf("  log-level comp:NAME LEVEL  a component's or stream's (stream:NAME) level, on every node (LEVEL:\n"
           "                            emergency ... info debug trace, or default)\n");
    printf("  txn [TXID]              the transactions in flight: state, each participant's vote; or one,\n"
           "                          in flight or finished in the last hour\n");
    printf("  txn abort TXID          abort a transaction not decided yet\n");
    printf("  txn forget TXID         finish a decided transaction without the acknowledgements still missing\n");
    printf("  log-level [[AREA=]LEVEL]  halod's log levels, or set one from now on (LEVEL: error warning\n"
           "                          notice info debug; AREA: main amf link supervisor store cluster)\n");
    printf("  event-channels          this node's event channels, their subscribers, what each was sent\n"
           "                          and lost (docs/events.md)\n");
    printf("  events [--follow]       the broadcast queue as kept in the store (seq, time, object, state);\n"
           "                          --follow: then every entry as it is delivered, until ^C\n");
    printf("  sim up [--nodes N] [--etcd-members M] [--dir DIR] [--config FILE] [--lease-ttl S] [--ports P]\n"
           "                          run a cluster on this machine: M etcd members (default 1), N halods\n"
           "                          n1..nN (default 3) with leases of S seconds (default 1), the example\n"
           "                          counter service unless --config; its ports P, P+1, ... (2M + 2N + 1\n"
           "                          of them) with --ports, else free ones picked at random\n"
           "  sim down [--dir DIR]    stop that cluster and remove DIR\n"
           "  sim status [--dir DIR]  status through the first of its halods that answers\n"
           "                          (DIR defaults to $XDG_RUNTIME_DIR/halo-sim, else /tmp/halo-sim-$UID)\n"
           "  sim start-node NODE [--dir DIR]\n"
           "                          start a node's halod again after it died or was killed\n"
           "  cdb get PATH            the configuration database: a value\n"
           "  cdb list [PATH]         PATH and everything under it (default /)\n"
           "  cdb set PATH VALUE...   set one or more paths, in one transaction\n"
           "  cdb delete PATH...      delete paths and everything under them, in one transaction\n"
           "  cdb watch [PATH]        print every change under PATH as it is committed, until ^C\n"
           "  ckpt [NAME]             the checkpoints (docs/checkpoints.md), or one checkpoint's sections\n"
           "  ha [--token T] [--ha-socket PATH] COMMAND\n"
           "                          the CDB's HA roles (token: also $HALO_HA_TOKEN; this connection\n"
           "                          takes over from the application's):\n"
           "      status | beprimary NODEID | besecondary NODEID PRIMARY_ID PRIMARY_ADDR [--nowait]\n"
           "      | berelay | benone | secondary-dead NODEID | notifications (until ^C)\n");
    printf("\nOptions:\n"
           "  -s, --socket PATH   halod's socket (default $HALO_SOCKET, else " HALO_RUNTIME_DIR "/halod.sock if it\n"
           "                      exists, else " HALO_STATE_DIR "/halod.sock)\n"
           "  -j, --json          print JSON (read commands; events --follow: one object a line)\n"
           "  -f, --follow        events: keep printing them as they come\n"
           "      --force         recover: skip the pool's tolerance check\n"
           "  -t, --timeout SEC   how long to wait for halod (default 30)\n"
           "  -V, --version       print haloctl's version (halod's: status --json, GET /v1/health)\n"
           "  -h, --help          this text\n");
    printf("\nExit status:\n"
           "  0  done\n"
           "  1  failed otherwise (the message says why)\n"
           "  2  usage: unknown command or option, wrong arguments\n"
           "  3  halod unreachable: no socket, nobody listening, or no answer to the hello\n"
           "  4  no such object (unit, SI, group, node, component, process, CDB path)\n"
           "  5  refused in this state (not allowed now, already so, a read-only CDB)\n"
           "  6  timeout: halod did not answer within --timeout\n");
}

/* Parses the global options.  Returns -1 to go on, or the exit status. */
static int parse_options(int argc, char **argv, const char *optstring) {
    static const struct option opts[] = {
        {"socket", required_argument, NULL, 's'}, {"json", no_argument, NULL, 'j'},
        {"follow", no_argument, NULL, 'f'},       {"timeout", required_argument, NULL, 't'},
        {"help", no_argument, NULL, 'h'},         {"force", no_argument, NULL, 'F'},
        {"version", no_argument, NULL, 'V'},      {},
    };
    int c;
    while ((c = getopt_long(argc, argv, optstring, opts, NULL)) >= 0) {
        switch (c) {
        case 's':
            arg_socket = optarg;
            break;
        case 'j':
            arg_json = true;
            break;
        case 'f':
            arg_follow = true;
            break;
        case 'F':
            arg_force = true;
            break;
        case 't': {
            char *end;
            double t = strtod(optarg, &end);
            if (*end || t <= 0 || t > 86400) {
                fprintf(stderr, "haloctl: bad timeout '%s'\n", optarg);
                return CTL_EXIT_USAGE;
            }
            arg_timeout_ms = (int)(t * 1000);
            break;
        }
        case 'h':
            help();
            return 0;
        case 'V':
            printf("haloctl %s\n", HALO_VERSION_STRING);
            return 0;
        default:
            fprintf(stderr, "Try 'haloctl --help'.\n");
            return CTL_EXIT_USAGE;
        }
    }
    return -1;
}

int main(int argc, char **argv) {
    /* Up to the command only ('+'): 'sim' has options of its own. */
    int r = parse_options(argc, argv, "+s:jft:hV");
    if (r >= 0)
        return r;
    if (optind < argc && streq(argv[optind], "sim"))
        return sim_main(argc - optind, argv + optind, arg_json);
    if (optind < argc && streq(argv[optind], "ha"))
        return ctl_ha_main(default_socket(), argc - optind, argv + optind, arg_json);
    /* The other commands take the global options after them too ('haloctl status --json'). */
    optind = 0;
    r = parse_options(argc, argv, "s:jft:hV");
    if (r >= 0)
        return r;
    if (optind >= argc) {
        fprintf(stderr, "haloctl: missing command. Try 'haloctl --help'.\n");
        return CTL_EXIT_USAGE;
    }
    const char *cmd = argv[optind];
    if (arg_follow && !streq(cmd, "events")) {
        fprintf(stderr, "haloctl: --follow goes with 'events' only.\n");
        return CTL_EXIT_USAGE;
    }
    if (streq(cmd, "events")) {
        if (optind + 1 < argc) {
            fprintf(stderr, "haloctl: 'events' takes no argument.\n");
            return CTL_EXIT_USAGE;
        }
        r = cmd_events(arg_follow);
        if (r < 0 && !halod_unreachable)
            fprintf(stderr, "haloctl: events: %s\n", halo_strerror(r));
        return ctl_exit_code(r);
    }
    if (streq(cmd, "names"))
        return cmd_names(argc - optind - 1, argv + optind + 1);
    if (streq(cmd, "log-level"))
        return cmd_log_level(argc - optind - 1, argv + optind + 1);
    if (streq(cmd, "event-channels"))
        return ctl_evt_main(argc - optind - 1, argv + optind + 1, arg_json);
    if (streq(cmd, "reload"))
        return cmd_reload(argc - optind - 1);
    if (streq(cmd, "txn"))
        return ctl_txn_main(argc - optind, argv + optind, arg_json);
    if (streq(cmd, "admin"))
        return ctl_admin_main(argc - optind, argv + optind, arg_json);
    if (streq(cmd, "registrations"))
        return ctl_names_main(argc - optind, argv + optind, arg_json);
    if (streq(cmd, "cdb"))
        return ctl_cdb_main(default_socket(), argc - optind, argv + optind, arg_json);
    if (streq(cmd, "ckpt"))
        return ctl_ckpt_main(argc - optind, argv + optind, arg_json);
    const struct verb *v = NULL;
    for (size_t i = 0; i < ELEMENTSOF(verbs); i++)
        if (streq(verbs[i].name, cmd))
            v = &verbs[i];
    if (!v) {
        fprintf(stderr, "haloctl: unknown command '%s'. Try 'haloctl --help'.\n", cmd);
        return CTL_EXIT_USAGE;
    }
    int nargs = argc - optind - 1;
    if ((v->arg && nargs != 1) || (!v->arg && nargs != 0)) {
        fprintf(stderr, v->arg ? "haloctl: '%s' takes one argument, %s.\n" : "haloctl: '%s' takes no argument.\n",
                v->name, v->arg);
        return CTL_EXIT_USAGE;
    }
    if (v->op == HALO__LINK__ADMIN__OP__RECOVER_FORCE && !arg_force) {
        fprintf(stderr, "haloctl: 'recover' needs --force: it skips the tolerance check of the process's pool, "
                        "which is there to protect its data (docs/recovery.md).\n");
        return CTL_EXIT_USAGE;
    }
    if (streq(v->name, "shutdown"))
        fprintf(stderr, "haloctl: 'shutdown' is deprecated: it stops halod; say 'haloctl stop-halod' (the AMF's "
                        "shutdown of a unit is 'haloctl admin shutdown su:NAME')\n");
    if (v->op == HALO__LINK__ADMIN__OP__STATUS)
        r = cmd_status(argc, argv);
    else if (v->op == HALO__LINK__ADMIN__OP__FAILVEC) {
        r = cmd_failvec(argv[optind + 1]);
        if (r < 0 && !halod_unreachable)
            fprintf(stderr, "haloctl: failvec '%s': %s\n", argv[optind + 1],
                    r == -HALO_EUNKNOWN ? "no such process"
                    : r == -EINVAL      ? "not a pool process"
                                        : halo_strerror(r));
    } else {
        const char *target = v->arg ? argv[optind + 1] : NULL;
        r = admin(v->op, target, NULL);
        if (r == 0) {
            if (arg_json)
                printf("{\"ok\":true}\n");
            else if (target)
                printf("%s: %s '%s'\n", v->name, v->done, target);
            else
                printf("%s\n", v->done);
        } else if (!halod_unreachable) {
            char why[512] = "";
            if (target)
                ctl_admin_explain(v->op, target, r, why, sizeof(why));
            fprintf(stderr, "haloctl: %s%s%s%s: %s%s%s\n", v->name, target ? " '" : "", target ?: "", target ? "'" : "",
                    halo_strerror(r), *why ? ": " : "", why);
        }
    }
    if (r < 0 && v->op == HALO__LINK__ADMIN__OP__STATUS && !halod_unreachable)
        fprintf(stderr, "haloctl: status: %s\n", halo_strerror(r));
    return ctl_exit_code(r);
}
