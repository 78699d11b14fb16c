/* SPDX-License-Identifier: MIT */
/*
 * haloctl sim: the record of a simulation, DIR/sim.json, which sim up writes before anything starts and after each
 * start (so that sim down finds whatever a crash of ours would leave behind), and the files a simulation keeps in
 * DIR, all that sim down removes there:
 *
 *   sim.json  cluster.yaml  counter.state  http.token  etcd/mK/ (data)  etcd/mK.log  nK/ (state dir: halod.sock,
 *   halod.log)
 */
#include <errno.h>
#include <ftw.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "macro.h"
#include "parse-util.h"
#include "sim-internal.h"
#include "strprintf.h"

int sim_record_save(const struct sim *s) {
    _cleanup_free_ char *eps = sim_layout_endpoints(s), *path = strprintf("%s/sim.json", s->dir),
                        *tmp = strprintf("%s/sim.json.tmp", s->dir);
    if (!eps || !path || !tmp)
        return -ENOMEM;
    json_t *etcd = json_array(), *nodes = json_array();
    for (size_t i = 0; i < s->n_members; i++) {
        const struct member *m = &s->members[i];
        char client[64], peer[64];
        snprintf(client, sizeof(client), "http://127.0.0.1:%d", m->client_port);
        snprintf(peer, sizeof(peer), "http://127.0.0.1:%d", m->peer_port);
        json_array_append_new(etcd,
                              json_pack("{s:s, s:i, s:I, s:s, s:s, s:s, s:s}", "name", m->proc.name, "pid",
                                        (int)m->proc.pid, "start_time", (json_int_t)m->proc.start_time, "client_url",
                                        client, "peer_url", peer, "data_dir", m->data_dir, "log", m->proc.log));
    }
    for (size_t i = 0; i < s->n_nodes; i++) {
        const struct node *n = &s->nodes[i];
        char http[64];
        snprintf(http, sizeof(http), "http://127.0.0.1:%d/", n->http_port);
        json_array_append_new(nodes, json_pack("{s:s, s:i, s:I, s:s, s:s, s:s, s:s}", "name", n->proc.name, "pid",
                                               (int)n->proc.pid, "start_time", (json_int_t)n->proc.start_time, "socket",
                                               n->socket, "state_dir", n->state_dir, "log", n->proc.log, "http", http));
    }
    json_t *root = json_pack("{s:i, s:s, s:s, s:b, s:s, s:o, s:i, s:o, s:o}", "version", 1, "dir", s->dir, "config",
                             s->config, "generated", s->generated, "endpoints", eps, "counter_port",
                             s->port ? json_integer(s->port) : json_null(), "lease_ttl", (int)s->lease_ttl, "etcd",
                             etcd, "nodes", nodes);
    if (!root)
        return -ENOMEM;
    int r = json_dump_file(root, tmp, JSON_INDENT(2));
    json_decref(root);
    if (r < 0)
        return -EIO;
    if (rename(tmp, path) < 0)
        return -errno;
    return 0;
}

/* The port of an "http://127.0.0.1:PORT" URL (with or without a '/' after it), as sim_record_save() writes them. */
static int url_port(const char *url, int *ret) {
    static const char scheme[] = "http://";
    char host_port[64], host[32];
    uint16_t port;

    if (strncmp(url, scheme, strlen(scheme)) != 0)
        return -EINVAL;
    url += strlen(scheme);
    size_t n = strcspn(url, "/");
    if (n >= sizeof(host_port) || (url[n] && !streq(url + n, "/")))
        return -EINVAL;
    memcpy(host_port, url, n);
    host_port[n] = '\0';
    if (parse_host_port(host_port, host, sizeof(host), &port) < 0 || !streq(host, "127.0.0.1"))
        return -EINVAL;
    *ret = port;
    return 0;
}

/* Reads DIR/sim.json into s (s->dir set by the caller).  Returns 0; -ENOENT when there is none; -EBADMSG, after
 * saying why, when it is not a record sim up wrote. */
int sim_record_load(struct sim *s) {
    _cleanup_free_ char *path = strprintf("%s/sim.json", s->dir);
    if (!path)
        return -ENOMEM;
    if (access(path, F_OK) < 0)
        return -errno;
    json_error_t e;
    json_t *root = json_load_file(path, 0, &e), *etcd = NULL, *nodes = NULL, *port = NULL;
    const char *config = NULL, *why = e.text;
    int generated = 0, r = -EBADMSG;
    if (!root)
        goto out;
    why = "the fields of a simulation record are missing";
    if (json_unpack(root, "{s:s, s:b, s:o, s:o, s:o}", "config", &config, "generated", &generated, "counter_port",
                    &port, "etcd", &etcd, "nodes", &nodes) < 0 ||
        !json_is_array(etcd) || !json_is_array(nodes) || json_array_size(etcd) < 1 ||
        json_array_size(etcd) > SIM_MEMBERS_MAX || json_array_size(nodes) < 1 || json_array_size(nodes) > SIM_NODES_MAX)
        goto out;
    s->n_members = json_array_size(etcd);
    s->n_nodes = json_array_size(nodes);
    s->generated = generated;
    s->port = json_is_integer(port) ? (int)json_integer_value(port) : 0;
    /* Missing in a record of an earlier haloctl: its halods ran with the default. */
    json_int_t ttl = json_integer_value(json_object_get(root, "lease_ttl"));
    s->lease_ttl = ttl >= 1 && ttl <= SIM_LEASE_TTL_MAX ? (unsigned)ttl : SIM_LEASE_TTL_DEFAULT;
    s->config = strdup(config);
    if (!s->config || (r = sim_layout(s)) < 0) {
        r = r == -EBADMSG ? -ENOMEM : r;
        why = strerror(-r);
        goto out;
    }
    r = -EBADMSG;
    why = "a process's record is not what sim up writes";
    for (size_t i = 0; i < s->n_members + s->n_nodes; i++) {
        bool member = i < s->n_members;
        json_t *o = member ? json_array_get(etcd, i) : json_array_get(nodes, i - s->n_members);
        struct sim_proc *p = sim_proc_nth(s, i);
        const char *name, *client = "";
        int pid;
        json_int_t start;
        if (json_unpack(o, "{s:s, s:i, s:I}", "name", &name, "pid", &pid, "start_time", &start) < 0 ||
            !streq(name, p->name) || pid < 0 || start < 0)
            goto out;
        if (member &&
            (json_unpack(o, "{s:s}", "client_url", &client) < 0 || url_port(client, &s->members[i].client_port) < 0))
            goto out;
        if (!member && (json_unpack(o, "{s:s}", "http", &client) < 0 ||
                        url_port(client, &s->nodes[i - s->n_members].http_port) < 0))
            goto out;
        p->pid = pid;
        p->start_time = (uint64_t)start;
    }
    r = 0;
out:
    if (r == -EBADMSG)
        fprintf(stderr, "haloctl: '%s' is not a simulation record: %s\n", path, why);
    json_decref(root);
    return r;
}

static int remove_one(const char *path, const struct stat *st, int flag, struct FTW *ftw) {
    return remove(path) < 0 && errno != ENOENT ? -1 : 0;
}

/* Removes path and everything under it, on its file system only, following no symbolic link. */
static int remove_tree(const char *path) {
    if (nftw(path, remove_one, 16, FTW_DEPTH | FTW_PHYS | FTW_MOUNT) < 0 && errno != ENOENT)
        return -errno;
    return 0;
}

/* Removes what a simulation keeps in DIR, nothing else there; then DIR itself unless keep_dir or other files stay
 * in it.  Returns 1 if DIR is gone, 0 if it stays, -errno. */
int sim_record_remove(const struct sim *s, bool keep_dir) {
    _cleanup_free_ char *etcd = strprintf("%s/etcd", s->dir), *state = strprintf("%s/counter.state", s->dir),
                        *record = strprintf("%s/sim.json", s->dir), *tmp = strprintf("%s/sim.json.tmp", s->dir),
                        *token = strprintf("%s/http.token", s->dir);
    if (!etcd || !state || !record || !tmp || !token)
        return -ENOMEM;
    int r = remove_tree(etcd);
    for (size_t i = 0; r >= 0 && i < s->n_nodes; i++)
        r = remove_tree(s->nodes[i].state_dir);
    if (r < 0)
        return r;
    if (s->generated && ((unlink(s->config) < 0 && errno != ENOENT) || (unlink(state) < 0 && errno != ENOENT)))
        return -errno;
    if ((unlink(tmp) < 0 && errno != ENOENT) || (unlink(token) < 0 && errno != ENOENT) || unlink(record) < 0)
        return -errno;
    if (keep_dir)
        return 0;
    if (rmdir(s->dir) < 0)
        return errno == ENOTEMPTY || errno == EEXIST ? 0 : -errno;
    return 1;
}

/* Makes DIR ready for a new simulation: refuses while a recorded one runs, clears the files of one that has ended,
 * and refuses to write over files no simulation recorded. */
int sim_record_prepare(const struct sim *s) {
    struct stat st;
    if (mkdir(s->dir, 0700) < 0 && errno != EEXIST) {
        int r = -errno;
        fprintf(stderr, "haloctl: cannot create '%s': %s\n", s->dir, strerror(-r));
        return r;
    }
    if (stat(s->dir, &st) < 0 || !S_ISDIR(st.st_mode)) {
        fprintf(stderr, "haloctl: '%s' is not a directory\n", s->dir);
        return -ENOTDIR;
    }
    _cleanup_(sim_layout_done) struct sim old = {.dir = strdup(s->dir)};
    if (!old.dir)
        return -ENOMEM;
    int r = sim_record_load(&old);
    if (r < 0 && r != -ENOENT && r != -EBADMSG)
        fprintf(stderr, "haloctl: cannot read '%s/sim.json': %s\n", s->dir, strerror(-r));
    if (r == -ENOENT) {
        _cleanup_free_ char *etcd = strprintf("%s/etcd", s->dir), *state = strprintf("%s/counter.state", s->dir),
                            *token = strprintf("%s/http.token", s->dir);
        const char *mine[SIM_NODES_MAX + 4] = {etcd, s->generated ? s->config : NULL, s->generated ? state : NULL,
                                               token};
        for (size_t i = 0; i < s->n_nodes; i++)
            mine[4 + i] = s->nodes[i].state_dir;
        for (size_t i = 0; i < s->n_nodes + 4; i++)
            if (mine[i] && lstat(mine[i], &st) == 0) {
                fprintf(stderr,
                        "haloctl: '%s' exists, and no simulation recorded in '%s' made it; choose another --dir\n",
                        mine[i], s->dir);
                return -EEXIST;
            }
        return 0;
    }
    if (r < 0)
        return r;
    for (size_t i = 0; i < old.n_members + old.n_nodes; i++)
        if (sim_proc_alive(sim_proc_nth(&old, i))) {
            fprintf(stderr, "haloctl: a simulation already runs in '%s'; haloctl sim down first\n", s->dir);
            return -EBUSY;
        }
    /* The record of a simulation that has ended (its processes died, or sim up failed): start afresh. */
    r = sim_record_remove(&old, true);
    if (r < 0)
        fprintf(stderr, "haloctl: cannot clear the ended simulation in '%s': %s\n", s->dir, strerror(-r));
    return r;
}
