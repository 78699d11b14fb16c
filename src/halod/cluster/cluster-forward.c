/* SPDX-License-Identifier: MIT */
/* Operator commands run on another node, through admin/ keys in the store (cluster-forward.h). */
#define LOG_AREA LOG_AREA_CLUSTER
#include "cluster-forward.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "keys.h"
#include "list.h"
#include "log.h"
#include "macro.h"
#include "server.h"

/* Create revisions of the commands run lately: a key is run once, though the
 * first read and the watch may both show it. */
#define FORWARD_RAN_MAX 16

/* A command this node sent, waiting for its result. */
struct forward {
    LIST_FIELDS(struct forward, forwards);
    char *key;
    struct conn *conn; /* haloctl, waiting */
    uint64_t seq;
    struct amf_waiter *w; /* or halod itself (an operation on several nodes' units) */
};

/* A command another node sent, running here; answered in its key. */
struct run {
    struct amf_waiter w;
    store *store;
    char *key;
    int64_t lease; /* the key's lease (its sender's) */
};

struct cluster_forward {
    store *store;
    char *prefix, *node;
    struct amf *amf;
    struct cluster *cluster;
    int (*run_other)(void *userdata, int op, const char *target);
    void *userdata;
    LIST_HEAD(struct forward) forwards;
    uint64_t n_sent;
    int64_t ran[FORWARD_RAN_MAX];
    size_t ran_next;
    bool reading; /* the waiting commands are being read */
};

static void on_written(store *s, int error, const store_result *r, void *userdata) {
    if (error < 0 && error != -ECANCELED)
        log_warning_errno(error, "Failed to write an operator command to the store: %m");
}

static struct forward *forward_free(struct forward *fw) {
    free(fw->key);
    free(fw);
    return NULL;
}

static int forward_put(struct cluster_forward *f, int op, const char *target, const char *to, struct forward **ret) {
    char key[STORE_KEY_MAX];
    int64_t lease = cluster_lease(f->cluster);
    if (!lease)
        return -HALO_ETRYAGAIN; /* not in the cluster right now */
    if (key_admin(key, f->prefix, f->node, f->n_sent + 1) < 0)
        return -ENAMETOOLONG;
    json_t *j = json_pack("{s:i, s:s, s:s}", "op", op, "target", target, "to", to);
    _cleanup_free_ char *value = j ? json_dumps(j, JSON_COMPACT) : NULL;
    json_decref(j);
    struct forward *fw = calloc(1, sizeof(*fw));
    if (!fw || !value || !(fw->key = strdup(key))) {
        free(fw);
        return -ENOMEM;
    }
    int r = store_put(f->store, key, value, strlen(value), lease, on_written, NULL);
    if (r < 0) {
        forward_free(fw);
        return r;
    }
    f->n_sent++;
    log_info("Operator command for '%s' sent to %s%s", target, *to ? "node " : "the coordinator", to);
    LIST_PREPEND(forwards, &f->forwards, fw);
    *ret = fw;
    return 0;
}

int cluster_forward_send(struct cluster_forward *f, struct conn *conn, uint64_t seq, int op, const char *target,
                         const char *to) {
    struct forward *fw;
    int r = forward_put(f, op, target, to, &fw);
    if (r >= 0) {
        fw->conn = conn;
        fw->seq = seq;
    }
    return r;
}

int cluster_forward_request(struct cluster_forward *f, int op, const char *target, const char *to,
                            struct amf_waiter *w) {
    struct forward *fw;
    int r = forward_put(f, op, target, to, &fw);
    if (r >= 0)
        fw->w = w;
    return r;
}

void cluster_forward_conn_closed(struct cluster_forward *f, struct conn *conn) {
    /* Nobody waits for these any more (haloctl timed out or was stopped). */
    struct forward *fw, *next;
    LIST_FOREACH_SAFE (forwards, fw, next, &f->forwards) {
        if (fw->conn != conn)
            continue;
        if (store_delete(f->store, fw->key, on_written, NULL) < 0)
            log_debug("Cannot delete the abandoned command '%s'", fw->key);
        LIST_REMOVE(forwards, &f->forwards, fw);
        forward_free(fw);
    }
}

static void run_done(struct amf_waiter *w, int error) {
    struct run *run = (struct run *)w;
    if (error != -ECANCELED) { /* -ECANCELED: halod stops, the store with it */
        json_t *j = json_pack("{s:i}", "result", error);
        _cleanup_free_ char *value = j ? json_dumps(j, JSON_COMPACT) : NULL;
        json_decref(j);
        int r = value ? store_put(run->store, run->key, value, strlen(value), run->lease, on_written, NULL) : -ENOMEM;
        if (r < 0)
            log_warning_errno(r, "Failed to answer the operator command '%s': %m", run->key);
    }
    free(run->key);
    free(run);
}

/* The answer to one of ours. */
static void handle_result(struct cluster_forward *f, const store_kv *kv, json_t *res) {
    struct forward *fw;
    LIST_FOREACH (forwards, fw, &f->forwards) {
        if (strlen(fw->key) != kv->key_len || memcmp(fw->key, kv->key, kv->key_len) != 0)
            continue;
        int error = json_is_integer(res) ? (int)json_integer_value(res) : -EIO;
        struct amf_waiter *w = fw->w;
        if (fw->conn)
            (void)server_conn_reply(fw->conn, fw->seq, error, NULL);
        (void)store_delete(f->store, fw->key, on_written, NULL);
        LIST_REMOVE(forwards, &f->forwards, fw);
        forward_free(fw);
        if (w)
            w->done(w, error);
        return;
    }
}

static bool ran_before(struct cluster_forward *f, int64_t create_revision) {
    for (size_t i = 0; i < ELEMENTSOF(f->ran); i++)
        if (f->ran[i] == create_revision)
            return true;
    f->ran[f->ran_next++ % ELEMENTSOF(f->ran)] = create_revision;
    return false;
}

void cluster_forward_key(struct cluster_forward *f, const store_kv *kv, json_t *j, bool deleted) {
    if (deleted || !json_is_object(j))
        return;
    json_t *res = json_object_get(j, "result");
    if (res) {
        handle_result(f, kv, res);
        return;
    }
    const char *to = json_string_value(json_object_get(j, "to"));
    const char *target = json_string_value(json_object_get(j, "target"));
    json_t *op = json_object_get(j, "op");
    if (!to || !target || !json_is_integer(op) || !(*to ? streq(to, f->node) : amf_deciding(f->amf)))
        return;
    /* Run once: the key gets its result right after, or when the command completes. */
    if (ran_before(f, kv->create_revision))
        return;
    struct run *run = calloc(1, sizeof(*run));
    if (!run || !(run->key = strndup(kv->key, kv->key_len))) {
        free(run);
        return;
    }
    run->w.done = run_done;
    run->store = f->store;
    run->lease = kv->lease;
    log_info("Running the operator command %.*s forwarded by another node", (int)kv->key_len, kv->key);
    int r = amf_run_op(f->amf, (int)json_integer_value(op), target, &run->w);
    if (r == -EOPNOTSUPP && f->run_other)
        r = f->run_other(f->userdata, (int)json_integer_value(op), target);
    if (r != 1)
        run_done(&run->w, r);
}

static void on_waiting(store *s, int error, const store_result *r, void *userdata) {
    struct cluster_forward *f = userdata;
    f->reading = false;
    if (!f->amf) {
        cluster_forward_free(f);
        return;
    }
    if (error < 0) {
        if (error != -ECANCELED)
            log_warning_errno(error, "Failed to read the operator commands waiting for a coordinator: %m");
        return;
    }
    for (size_t i = 0; i < r->n_kvs; i++) {
        json_t *j = json_loadb(r->kvs[i].value, r->kvs[i].value_len, 0, NULL);
        cluster_forward_key(f, &r->kvs[i], j, false);
        json_decref(j);
    }
}

void cluster_forward_run_waiting(struct cluster_forward *f) {
    /* Answered ones have a result and are skipped; the watch brings whatever comes next. */
    char key[STORE_KEY_MAX];
    if (f->reading || key_dir(key, f->prefix, KEY_ADMIN) < 0)
        return;
    int r = store_range(f->store, key, on_waiting, f);
    if (r < 0)
        log_warning_errno(r, "Failed to read the operator commands waiting for a coordinator: %m");
    else
        f->reading = true;
}

int cluster_forward_new(const struct cluster_forward_params *p, struct cluster_forward **ret) {
    struct cluster_forward *f = calloc(1, sizeof(*f));
    if (!f)
        return -ENOMEM;
    *f = (struct cluster_forward){
        .store = p->store, .amf = p->amf, .cluster = p->cluster, .run_other = p->run_other, .userdata = p->userdata};
    f->prefix = strdup(p->prefix);
    f->node = strdup(p->node);
    if (!f->prefix || !f->node) {
        free(f->prefix);
        free(f->node);
        free(f);
        return -ENOMEM;
    }
    *ret = f;
    return 0;
}

struct cluster_forward *cluster_forward_free(struct cluster_forward *f) {
    if (!f)
        return NULL;
    struct forward *fw;
    while ((fw = LIST_POP(forwards, &f->forwards))) {
        struct amf_waiter *w = fw->w;
        forward_free(fw);
        if (w)
            w->done(w, -ECANCELED);
    }
    if (f->reading) {
        f->amf = NULL; /* the read's callback frees the rest */
        return NULL;
    }
    free(f->prefix);
    free(f->node);
    free(f);
    return NULL;
}
