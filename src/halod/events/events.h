/* SPDX-License-Identifier: MIT */
/*
 * The HA state of the cluster's objects as this node's processes see it: the
 * broadcast queue (BQ) delivered to the local processes that asked for object
 * states, a snapshot for a process that just registered, states on request,
 * haloctl's reads of the queues and failure vectors, and the events external
 * monitors POST to the HTTP API.
 *
 * Delivery: the BQ entries delivered in one loop iteration are sent to each
 * interested process as ObjectStateNotes (LINK_OBJECTS_MAX states each),
 * packed once and handed to each process's socket together, so a burst costs
 * one wake-up per process, not one per event or per note.
 */
#pragma once

#include <stdint.h>
#include <uv.h>

#include "amf.h"
#include "queue.h"
#include "recovery-model.h"
#include "store.h"

struct events;
struct conn;

struct events_params {
    uv_loop_t *loop;
    store *store;
    const char *prefix; /* copied */
    struct amf *amf;
    struct queue *queue;
    const struct recovery_model *model; /* may be NULL */
};
/* Registers itself as an observer of the AMF.  0, -ENOMEM, -ENOSPC. */
int events_new(const struct events_params *p, struct events **ret);
/* Starts reading the BQ.  0 or -errno. */
int events_start(struct events *e);
/* Accepts NULL; returns NULL.  Run the loop once more for its timer to close. */
struct events *events_free(struct events *e);

/* A process asks for the states of objects (at most LINK_OBJECTS_MAX; "" for unknown ones). */
void events_object_state_get(struct events *e, struct conn *conn, uint64_t seq, char *const *objects, size_t n);
/* A process says which object-state notes it wants (ObjectInterest; no rules:
 * every note); answered with a Reply, EINVAL for a bad rule. */
void events_interest_set(struct events *e, struct conn *conn, uint64_t seq, Halo__Link__InterestRule *const *rules,
                         size_t n);
/* Everything queued for conn was sent: a process held back gets the current states. */
void events_conn_drained(struct events *e, struct conn *conn);
void events_conn_closed(struct events *e, struct conn *conn);

/* haloctl: the BQ as kept in the store, in parts (follow: then every entry
 * delivered here, as ObjectStateNotes); a process's epochs and failure vectors. */
void events_admin_events(struct events *e, struct conn *conn, uint64_t seq, bool follow);
void events_admin_failvec(struct events *e, struct conn *conn, uint64_t seq, const char *process);

/* What the rest of halod says of the objects the AMF and the membership own
 * (their states come from their halods, never from outside). */
struct events_owners {
    /* An outside report that component comp FAILED: an error report into the
     * AMF, on the component's node.  0 or -errno. */
    int (*fail)(void *userdata, const char *comp);
    /* Whether node holds its lease (is in the cluster): 1 or 0. */
    int (*node_alive)(void *userdata, const char *node);
    void *userdata;
};

/* POST /v1/events: an event, an array of them, or {"events": [...]}, checked
 * against the model.  Events about devices and services are appended to the
 * event queue; a FAILED about a process, component or unit is an error report
 * into the AMF (owners->fail); a node's FAILED or OFFLINE is taken only for
 * a node out of the cluster, its ONLINE only for one in it.  Nothing is done
 * unless every event is taken.  0 (*reply: JSON), -EINVAL / -ENOENT / -EAGAIN
 * / -EPERM (contradicts what halo knows) with *error set, -ENOMEM. */
int events_post(struct events *e, const char *body, size_t len, const struct events_owners *owners, char **reply,
                const char **error);
/* Posted events whose append failed. */
uint64_t events_lost(const struct events *e);
