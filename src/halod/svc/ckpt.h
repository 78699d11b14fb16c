/* SPDX-License-Identifier: MIT */
/*
 * The checkpoint service (docs/checkpoints.md): named checkpoints of sections, kept in the store
 * (etcd on several nodes: a write is answered once etcd committed it, so it survives the loss of
 * any one node; SQLite on one node), opened, written and read by local processes over the HA link.
 */
#pragma once

#include <stdbool.h>
#include <uv.h>

#include "amf.h"
#include "server.h"
#include "store.h"

struct ckpt_svc;

struct ckpt_params {
    uv_loop_t *loop;
    store *store;
    const char *prefix; /* "/halo/<cluster>/" (copied) */
    const char *node;   /* this node (copied) */
    struct amf *amf;    /* who holds which assignment: a collocated checkpoint's writer */
};

int ckpt_svc_new(const struct ckpt_params *p, struct ckpt_svc **ret);
/* Requests still waiting for the store are forgotten (their callbacks find nobody); accepts NULL. */
struct ckpt_svc *ckpt_svc_free(struct ckpt_svc *s);
/* Handles a Ckpt* message or the CKPT admin op; returns false for any other. */
bool ckpt_handle_msg(struct ckpt_svc *s, struct conn *c, const LinkMsg *m);
/* The connection's checkpoints are closed (their retention starts where nobody else holds them). */
void ckpt_conn_closed(struct ckpt_svc *s, struct conn *c);
