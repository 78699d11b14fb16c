/* SPDX-License-Identifier: MIT */
/*
 * Operator commands run on another node (several nodes).  haloctl talks to
 * any halod; a command for a unit of another node goes to that node, a
 * switchover to the coordinator.  Through the store:
 *
 *   admin/<from>/<n>  {"op": 2, "target": "si", "to": "n2" or "" (the coordinator)},
 *                     put under the sending node's lease; the node it names runs
 *                     the command and writes {"result": errno} into the same key
 *                     (same lease); the sender answers haloctl and deletes the key.
 *
 * A key whose sender died goes with its lease.
 */
#pragma once

#include <jansson.h>
#include <stdint.h>

#include "amf.h"
#include "cluster.h"
#include "store.h"

struct cluster_forward;
struct conn;

struct cluster_forward_params {
    store *store;
    const char *prefix; /* copied */
    const char *node;   /* copied */
    struct amf *amf;
    struct cluster *cluster;
    /* Runs a command that is not the AMF's (amf_run_op() says -EOPNOTSUPP):
     * 0 or -errno.  May be NULL. */
    int (*run_other)(void *userdata, int op, const char *target);
    void *userdata;
};
int cluster_forward_new(const struct cluster_forward_params *p, struct cluster_forward **ret);
/* Forgets the commands waiting for an answer.  Accepts NULL; returns NULL. */
struct cluster_forward *cluster_forward_free(struct cluster_forward *f);

/* Sends op on target to the node to names ("": the coordinator); haloctl on
 * conn gets the reply (seq) once it ran.  0, -HALO_ETRYAGAIN (not in the
 * cluster now), -ENOMEM, or a store error. */
int cluster_forward_send(struct cluster_forward *f, struct conn *conn, uint64_t seq, int op, const char *target,
                         const char *to);
/* The same for halod itself: w (NULL: nobody) is told the result, or -ECANCELED when f is freed
 * first.  0, or -errno and w is never told. */
int cluster_forward_request(struct cluster_forward *f, int op, const char *target, const char *to,
                            struct amf_waiter *w);
/* haloctl closed its connection: nobody waits for its commands any more. */
void cluster_forward_conn_closed(struct cluster_forward *f, struct conn *conn);
/* An admin/ key as the store shows it (j: its value, NULL when deleted). */
void cluster_forward_key(struct cluster_forward *f, const store_kv *kv, json_t *j, bool deleted);
/* This node became the coordinator: run the commands sent to the coordinator
 * that the previous one never answered (it died, or there was none). */
void cluster_forward_run_waiting(struct cluster_forward *f);
