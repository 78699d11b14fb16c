/* SPDX-License-Identifier: MIT */
/*
 * The log service (seed 001: "log-levels can be changed during the operation"; include/halo/log.h):
 * components' records into halod's log, tagged with the component and the stream, and the levels
 * an operator sets per component and per stream, sent to the components so that their libhalo
 * drops what is below before formatting it.  For a record of component C into stream S, S's level
 * applies if one is set, else C's, else info.  The levels are kept in STATE_DIR/log-levels.json,
 * written whole after each change, so that a restarted halod tells the components it adopts the
 * same levels.  A stream of the description's log-streams goes to a file of its own instead of
 * halod's log (logsvc-file.h).
 */
#pragma once

#include <stdbool.h>

#include <uv.h>

#include "link.h"

struct amf;
struct config;
struct comp;
struct conn;
struct logsvc;

/* Components and streams with a level of their own, at most. */
#define LOGSVC_LEVELS_MAX 1024

/* The largest levels file read at start. */
#define LOGSVC_LEVELS_FILE_MAX (256 * 1024)

struct logsvc_params {
    uv_loop_t *loop;
    struct amf *amf;
    const struct config *config; /* its log-streams (copied); NULL: none */
    const char *node;            /* this node's name, in a file stream's lines (kept) */
    const char *state_dir;       /* where the levels are kept (log-levels.json); NULL: nowhere */
};

/* Reads the levels kept (a file that is not what halod writes: a warning, the defaults). */
int logsvc_new(const struct logsvc_params *p, struct logsvc **ret);
struct logsvc *logsvc_free(struct logsvc *s); /* accepts NULL; returns NULL */

/* Takes the log service's messages of the HA link: whether msg was one. */
bool logsvc_handle_msg(struct logsvc *s, struct conn *c, const LinkMsg *msg);
/* c closed: it is told nothing any more. */
void logsvc_conn_closed(struct logsvc *s, struct conn *c);
/* Component comp registered on c: c is told its levels. */
void logsvc_registered(struct logsvc *s, struct comp *comp, struct conn *c);

/*
 * "comp:NAME=LEVEL" or "stream:NAME=LEVEL" (LEVEL: emergency alert critical error warning notice
 * info debug trace, or "default" to drop the setting): set from now on, and sent to the processes
 * it applies to.  Returns 0, -EINVAL (malformed, unknown level, bad name), -ENOSPC (too many
 * levels set), -ENOMEM.
 */
int logsvc_set(struct logsvc *s, const char *spec);
/* The streams' files are closed and opened again by their path (SIGHUP, haloctl reload: an
 * external logrotate moved them). */
void logsvc_reopen(struct logsvc *s);
/* {"default":"info","components":{NAME:LEVEL,...},"streams":{NAME:LEVEL,...}}, or NULL (no memory). */
char *logsvc_json(const struct logsvc *s);
