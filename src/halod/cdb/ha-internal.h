/* SPDX-License-Identifier: MIT */
/* The HA object, shared by ha-roles.c (the role state machine) and ha-control.c (the control socket) only. */
#pragma once

#include <stdbool.h>
#include <stddef.h>
#include <uv.h>

#include "frame.h"
#include "ha.h"
#include "list.h"
#include "repl.h"

struct ctl; /* a control socket connection (ha-control.c) */

struct ha {
    uv_loop_t *loop;
    struct cdb *db;
    struct cdb_link *link;
    struct repl *repl;
    char *label; /* after "CDB" in log lines: "" for the main database, " /sub" */
    enum ha_state state;
    char nodeid[LINK_NAME_MAX + 1];
    char *token;
    bool token_fixed; /* from the description: control connections prove it and never replace it */
    bool initialized; /* SECONDARY: the join completed */

    /* the control socket */
    uv_pipe_t pipe;
    uv_tcp_t tcp;
    bool pipe_open, tcp_open;
    unsigned open_handles; /* the listeners: the last close frees h once freeing */
    bool freeing;
    char *control_path;
    LIST_HEAD(struct ctl) conns; /* newest first */
    size_t n_conns;
    struct ctl *control; /* the controlling connection */

    /* besecondary's waiter */
    void (*join_done)(void *arg, int error);
    void *join_arg;

    /* roles driven by the AMF */
    char *driven_by; /* the service group; NULL: the control socket sets the roles */
    void (*changed)(void *userdata);
    void *changed_userdata;
};

/* ha-control.c */
/* Listens on path (AF_UNIX, mode 0600) and, if tcp is not NULL, on that loopback "ADDR:PORT".
 * Returns 0, -EINVAL (tcp is no ADDR:PORT), -EADDRNOTAVAIL (not loopback), -ENOMEM, or libuv's error. */
int ha_control_listen(struct ha *h, const char *path, const char *tcp);
void ha_control_close_conns(struct ha *h);
/* Removes the socket file and closes the listeners; the last close frees h once h->freeing. */
void ha_control_close_listeners(struct ha *h);
/* Sends a Notification to every notifications connection. */
void ha_control_notify(struct ha *h, Halo__Ha__Notification__Type type, const char *nodeid, int error, bool full_copy,
                       const char *reason);
