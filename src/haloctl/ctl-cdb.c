/* SPDX-License-Identifier: MIT */
/* haloctl cdb: read, write and watch the configuration database through libhalo. */
#include "ctl-cdb.h"

#include <errno.h>
#include <jansson.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cdb-path.h"
#include "ctl-exit.h"
#include "halo/cdb.h"
#include "macro.h"

/* Text values as JSON strings; a value that is not UTF-8 text (or holds a NUL) as null. */
static json_t *value_json(const void *v, size_t len) {
    json_t *s = memchr(v, '\0', len) ? NULL : json_stringn(v, len);
    return s ? s : json_null();
}

static void print_value(const char *path, const void *v, size_t len) {
    printf("%s = ", path);
    fwrite(v, 1, len, stdout);
    putchar('\n');
}

static int do_get(halo *h, int argc, char **argv, bool json) {
    _cleanup_free_ void *v = NULL;
    size_t len = 0;
    if (argc != 1) {
        fprintf(stderr, "haloctl: 'cdb get' takes one PATH.\n");
        return -EINVAL;
    }
    int r = halo_cdb_get(h, argv[0], &v, &len);
    if (r < 0) {
        fprintf(stderr, "haloctl: cdb get '%s': %s\n", argv[0],
                r == -ENOENT   ? "no value at this path"
                : r == -EINVAL ? "not a valid path"
                               : halo_strerror(r));
        return r;
    }
    if (json) {
        json_t *o = json_pack("{s:s, s:o}", "path", argv[0], "value", value_json(v, len));
        char *s = json_dumps(o, JSON_COMPACT);
        printf("%s\n", s ? s : "null");
        free(s);
        json_decref(o);
    } else {
        fwrite(v, 1, len, stdout);
        putchar('\n');
    }
    return 0;
}

static int do_list(halo *h, int argc, char **argv, bool json) {
    _cleanup_free_ halo_cdb_item *items = NULL;
    size_t n = 0;
    const char *path = argc ? argv[0] : "/";
    if (argc > 1) {
        fprintf(stderr, "haloctl: 'cdb list' takes at most one PATH.\n");
        return -EINVAL;
    }
    int r = halo_cdb_list(h, path, &items, &n);
    if (r < 0) {
        fprintf(stderr, "haloctl: cdb list '%s': %s\n", path, halo_strerror(r));
        return r;
    }
    if (json) {
        json_t *a = json_array();
        for (size_t i = 0; i < n; i++)
            json_array_append_new(
                a, json_pack("{s:s, s:o}", "path", items[i].path, "value", value_json(items[i].value, items[i].len)));
        char *s = json_dumps(a, JSON_COMPACT);
        printf("%s\n", s ? s : "[]");
        free(s);
        json_decref(a);
    } else
        for (size_t i = 0; i < n; i++)
            print_value(items[i].path, items[i].value, items[i].len);
    return 0;
}

/* A write refused: names the node that takes writes of path, as halod sees it (the main database's,
 * or the cdb-roles group's whose subtree holds path). */
static void print_not_primary(const char *what, const char *path) {
    _cleanup_free_ char *text = NULL;
    json_t *root = ctl_status_json(&text) >= 0 ? json_loads(text, 0, NULL) : NULL;
    json_t *cdb = json_object_get(root, "cdb"), *sub;
    size_t i;
    json_array_foreach(json_object_get(cdb, "subtrees"), i, sub) {
        const char *subtree = json_string_value(json_object_get(sub, "subtree"));
        if (subtree && cdb_path_under(path, subtree)) {
            cdb = sub;
            break;
        }
    }
    const char *state = json_string_value(json_object_get(cdb, "state")) ?: "not the primary";
    const char *primary = json_string_value(json_object_get(cdb, "writer"));
    bool driven = json_object_get(cdb, "roles_follow") != NULL;
    if (!driven)
        primary = json_string_value(json_object_get(cdb, "primary"));
    fprintf(stderr, "haloctl: cdb %s: not primary: ", what);
    if (primary)
        fprintf(stderr, "the primary is node '%s'", primary);
    else
        fprintf(stderr, "no node is the primary now");
    fprintf(stderr, "; this node is %s (%s)\n", state,
            driven ? "only the node of the ACTIVE unit takes writes" : halo_strerror(-HALO_EREADONLY));
    json_decref(root);
}

/* set PATH VALUE [PATH VALUE]... or delete PATH...: one transaction. */
static int do_write(halo *h, int argc, char **argv, bool del, bool json) {
    halo_cdb_txn *t = NULL;
    char txid[HALO_CDB_TXID_MAX];
    const char *what = del ? "delete" : "set";
    int r;

    if (argc == 0 || (!del && argc % 2)) {
        fprintf(stderr, del ? "haloctl: 'cdb delete' takes one or more PATHs.\n"
                            : "haloctl: 'cdb set' takes PATH VALUE pairs.\n");
        return -EINVAL;
    }
    r = halo_cdb_txn_begin(h, &t);
    for (int i = 0; r >= 0 && i < argc; i += del ? 1 : 2) {
        r = del ? halo_cdb_txn_delete(t, argv[i]) : halo_cdb_txn_set(t, argv[i], argv[i + 1], strlen(argv[i + 1]));
        if (r < 0)
            fprintf(stderr, "haloctl: cdb %s '%s': %s\n", what, argv[i],
                    r == -EINVAL ? "not a valid path"
                    : r == -E2BIG
                        ? "the transaction is too big (at most 60 KiB of paths and values, 16 bytes more per change, "
                          "and 1,024 changes)"
                        : halo_strerror(r));
    }
    if (r < 0) {
        halo_cdb_txn_abort(t);
        return r;
    }
    r = halo_cdb_txn_commit(t, txid);
    if (r == -HALO_EREADONLY) {
        print_not_primary(what, argv[0]);
        return r;
    }
    if (r == -EXDEV) {
        fprintf(stderr,
                "haloctl: cdb %s: the paths lie in different replicated subtrees (the cdb-subtree of a "
                "cdb-roles group, or the rest): commit them separately\n",
                what);
        return r;
    }
    if (r < 0) {
        fprintf(stderr, "haloctl: cdb %s: %s\n", what,
                r == -ESHUTDOWN || r == -HALO_ECLOSED
                    ? "durable on this node, but not confirmed by the secondaries (halod stopped, or this node "
                      "left its primary role, first)"
                    : halo_strerror(r));
        return r;
    }
    if (json)
        printf("{\"txid\":\"%s\"}\n", txid); /* digits, '@' and a node name of printable characters */
    else
        printf("committed %s\n", txid);
    return 0;
}

static volatile sig_atomic_t stop;

static void on_signal(int sig) {
    stop = 1;
}

static void on_change(halo *h, unsigned sub, const char *txid, const halo_cdb_change *ch, size_t n, void *userdata) {
    bool json = *(bool *)userdata;
    if (json) {
        json_t *a = json_array();
        for (size_t i = 0; i < n; i++)
            json_array_append_new(a, ch[i].op == HALO_CDB_DELETE
                                         ? json_pack("{s:s, s:s}", "op", "delete", "path", ch[i].path)
                                         : json_pack("{s:s, s:s, s:o}", "op", "set", "path", ch[i].path, "value",
                                                     value_json(ch[i].value, ch[i].len)));
        json_t *o = json_pack("{s:s, s:o, s:b}", "txid", txid, "changes", a, "reset", n == 0);
        char *s = json_dumps(o, JSON_COMPACT);
        printf("%s\n", s ? s : "null");
        free(s);
        json_decref(o);
    } else if (n == 0)
        printf("%s: replaced by a full copy from the primary\n", txid);
    else
        for (size_t i = 0; i < n; i++) {
            if (ch[i].op == HALO_CDB_DELETE)
                printf("%s: delete %s\n", txid, ch[i].path);
            else {
                printf("%s: set ", txid);
                print_value(ch[i].path, ch[i].value, ch[i].len);
            }
        }
    fflush(stdout);
}

static int do_watch(halo *h, int argc, char **argv, bool json) {
    unsigned sub;
    const char *path = argc ? argv[0] : "/";
    if (argc > 1) {
        fprintf(stderr, "haloctl: 'cdb watch' takes at most one PATH.\n");
        return -EINVAL;
    }
    int r = halo_cdb_subscribe(h, path, on_change, &json, &sub);
    if (r < 0) {
        fprintf(stderr, "haloctl: cdb watch '%s': %s\n", path, halo_strerror(r));
        return r;
    }
    struct sigaction sa = {.sa_handler = on_signal};
    sigaction(SIGINT, &sa, NULL);
    sigaction(SIGTERM, &sa, NULL);
    while (!stop) {
        struct pollfd p = {.fd = halo_fd(h), .events = POLLIN};
        if (poll(&p, 1, -1) < 0) {
            if (errno == EINTR)
                continue;
            return -errno;
        }
        r = halo_dispatch(h, HALO_DISPATCH_ALL);
        if (r < 0) {
            fprintf(stderr, "haloctl: cdb watch: %s\n", halo_strerror(r));
            return r;
        }
    }
    return 0;
}

int ctl_cdb_main(const char *socket, int argc, char **argv, bool json) {
    static const halo_callbacks cb = {0};
    halo *h = NULL;
    int r;

    if (argc < 2) {
        fprintf(stderr, "haloctl: 'cdb' wants get, list, set, delete or watch. Try 'haloctl --help'.\n");
        return 2;
    }
    const char *verb = argv[1];
    if (!streq(verb, "get") && !streq(verb, "list") && !streq(verb, "set") && !streq(verb, "delete") &&
        !streq(verb, "watch")) {
        fprintf(stderr, "haloctl: unknown command 'cdb %s'. Try 'haloctl --help'.\n", verb);
        return 2;
    }
    r = halo_open(socket, &cb, NULL, &h);
    if (r < 0) {
        fprintf(stderr, "haloctl: cannot reach halod at '%s': %s\n", socket, halo_strerror(r));
        return CTL_EXIT_UNREACHABLE;
    }
    argc -= 2;
    argv += 2;
    if (streq(verb, "get"))
        r = do_get(h, argc, argv, json);
    else if (streq(verb, "list"))
        r = do_list(h, argc, argv, json);
    else if (streq(verb, "set"))
        r = do_write(h, argc, argv, false, json);
    else if (streq(verb, "delete"))
        r = do_write(h, argc, argv, true, json);
    else
        r = do_watch(h, argc, argv, json);
    halo_close(h);
    return r == -EINVAL ? CTL_EXIT_USAGE : ctl_exit_code(r);
}
