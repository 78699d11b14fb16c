/* SPDX-License-Identifier: MIT */
/*
 * The name service (docs/names.md): components register names in contexts, any client looks
 * them up or tracks them.  Registrations live in the store under names/ (docs/store.md), put
 * under the node's lease on several nodes, so that every node's halod sees them and a dead
 * node's go with its lease; this halod removes its own node's when their component fails, is
 * terminated or closes its link (the AMF's observer), and, after a restart, those of the
 * components it did not adopt.  The context "entrypoint" is read-only, derived from the AMF's
 * ACTIVE assignments.
 */
#pragma once

#include <stdbool.h>
#include <uv.h>

#include "amf.h"
#include "cluster.h"
#include "link.h"
#include "server.h"
#include "store.h"

struct name_service;

struct name_params {
    uv_loop_t *loop;
    store *store;
    const char *prefix; /* "/halo/<cluster>/" (copied) */
    const char *node;   /* copied */
    struct amf *amf;
    struct cluster *cluster; /* several nodes: registrations go under its lease; NULL on one node */
};

/* 0, -ENOMEM, -ENOSPC (too many AMF observers). */
int name_service_new(const struct name_params *p, struct name_service **ret);
/* Accepts NULL; returns NULL.  Call before store_free(). */
struct name_service *name_service_free(struct name_service *s);
/* The AMF has restored what a previous halod left (its adopted components run): reads the
 * registrations, drops this node's stale ones, then follows them.  0 or -errno. */
int name_service_start(struct name_service *s);
/* This node holds a new lease: its registrations are put under it. */
void name_service_joined(struct name_service *s);
/* Takes the name service's messages (and haloctl's NAMES): true if it took m. */
bool name_service_handle_msg(struct name_service *s, struct conn *c, const LinkMsg *m);
void name_service_conn_closed(struct name_service *s, struct conn *c);
