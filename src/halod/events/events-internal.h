/* SPDX-License-Identifier: MIT */
/* The events layer's state, shared by its files (events/ only). */
#pragma once

#include <stdbool.h>
#include <sys/uio.h>

#include "events-interest.h"
#include "events.h"
#include "hashmap.h"
#include "link-pack.h"
#include "list.h"

/* haloctl events --follow at once. */
#define EVENTS_FOLLOWERS_MAX 16

/* What a process is told of a BQ entry. */
struct note {
    char object[QUEUE_OBJECT_MAX];
    enum queue_ha_state state;
    uint64_t hlc, seq;
    struct interest_owner owner;    /* what the object belongs to, for interest filters */
    const struct config_pool *only; /* NULL, or the only pool whose processes get it (note_pool()) */
};

/* A local component that may ask for object states. */
struct sub {
    struct comp *c;
    struct interest_owner me;        /* its group and pool (NULL: in no pool) */
    const struct interest *interest; /* what its connection asked for; NULL: everything */
    bool resync;                     /* notes held back from a slow reader: a snapshot follows once it caught up */
};

/* The interest a connection asked for (ObjectInterest), before or after it registered. */
struct conn_interest {
    struct conn *conn;
    struct interest *in;
};

struct admin_read;

struct events {
    struct amf *amf;
    store *store;
    char *prefix;
    struct queue *q;
    const struct recovery_model *model;
    struct note *notes; /* delivered entries not yet sent to processes */
    size_t n_notes;
    uv_timer_t flush;
    uint64_t lost; /* posted events whose append failed */
    struct sub *subs;
    size_t n_subs;
    /* A round of notes, packed once for every process: packets laid end to
     * end in pk_buf, pkts pointing at each; st (EVENTS_NOTE_MAX) holds the
     * round's states while it is packed. */
    uint8_t *pk_buf;
    size_t pk_cap;
    struct iovec *pkts;
    size_t n_pkts, pkts_cap;
    struct link_object_state *st;
    LIST_HEAD(struct admin_read) reads;           /* haloctl's reads in flight */
    struct conn *followers[EVENTS_FOLLOWERS_MAX]; /* haloctl events --follow */
    /* Interest filters: the connections' rules, each service group's id (its
     * name -> id, from 1) and each process's of the recovery model (by index). */
    struct conn_interest *interests;
    size_t n_interests;
    struct hashmap group_ids;
    unsigned *proc_group;
    uint64_t notes_sent, notes_filtered; /* states sent to processes, and held back by their filters */
};

/* events-admin.c */
void events_admin_conn_closed(struct events *e, struct conn *conn);
void events_admin_free(struct events *e);
