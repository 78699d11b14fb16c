/* SPDX-License-Identifier: MIT */
/* The configuration database on the HA link: get, list, commit and subscribe for local processes and haloctl. */
#pragma once

#include <stdbool.h>

#include "cdb.h"
#include "server.h"

struct cdb_link;

/*
 * What the HA role says about writes (ha-roles.c): may_write returns 0, or
 * -HALO_EREADONLY on a secondary; replicated runs done(arg, error) once
 * transaction id may be acknowledged (at once, or when every secondary in
 * sync has it).  Without a role, every write is allowed and acknowledged
 * once durable here.
 */
struct cdb_link_role {
    int (*may_write)(void *userdata);
    void (*replicated)(void *userdata, const cdb_txid *id, void (*done)(void *arg, int error), void *arg);
};

int cdb_link_new(struct cdb *db, struct cdb_link **ret);
struct cdb_link *cdb_link_free(struct cdb_link *l);
void cdb_link_set_role(struct cdb_link *l, const struct cdb_link_role *role, void *userdata);

/* Handles a Cdb* message; returns false for any other. */
bool cdb_link_handle_msg(struct cdb_link *l, struct conn *c, const LinkMsg *m);
/* Forgets the connection's subscriptions and requests. */
void cdb_link_conn_closed(struct cdb_link *l, struct conn *c);
