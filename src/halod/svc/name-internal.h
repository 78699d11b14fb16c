/* SPDX-License-Identifier: MIT */
/* The name service's parts (name.h): the registrations (name.c), the HA link (name-link.c), the
 * entrypoint context (name-entry.c), the store's values (name-value.c). */
#pragma once

#include <jansson.h>
#include <stdint.h>
#include <sys/types.h>

#include "halo/name.h"
#include "list.h"
#include "name.h"
#include "svc.h"

/* A registration, as the store holds it: every node's in the cache, this node's in the own list. */
struct name_reg {
    LIST_FIELDS(struct name_reg, regs);
    char *key;
    char context[HALO_NAME_MAX + 1], name[HALO_NAME_MAX + 1];
    char node[SVC_NAME_MAX + 1], comp[SVC_NAME_MAX + 1];
    uint8_t *ref;
    size_t ref_len;
    json_t *attrs; /* [[name, value], ...] */
    uint32_t priority;
    pid_t pid;                      /* the process that registered it */
    unsigned long long starttime;   /* its start time (0: unknown) */
    int gone;                       /* 0: live; else the NameNote reason its removal gave */
    int64_t create_revision, lease; /* own: the lease it was put under */
    struct name_req *pending;       /* own: registered while this node held no lease, answered once put */
};

/* A request answered once the store has answered. */
struct name_req {
    LIST_FIELDS(struct name_req, reqs);
    struct name_service *svc;
    struct conn *conn; /* NULL once it closed */
    uint64_t seq;
    bool all;     /* a lookup: every registration */
    char *prefix; /* a lookup: names/<ctx>/<name>/ */
};

struct name_track {
    LIST_FIELDS(struct name_track, tracks);
    struct conn *conn; /* NULL: closed while notes were going out, freed after */
    uint32_t id;
    char context[HALO_NAME_MAX + 1], name[HALO_NAME_MAX + 1];
    struct name_reg **last; /* the entrypoint context: what the tracker was last told of */
    size_t n_last;
};

struct name_service {
    uv_loop_t *loop;
    store *store;
    char *prefix, *node;
    struct amf *amf;
    struct cluster *cluster;
    struct store_follow *follow;
    LIST_HEAD(struct name_reg) cache; /* every node's, as followed */
    LIST_HEAD(struct name_reg) own;   /* this node's, as this halod wrote them */
    LIST_HEAD(struct name_req) reqs;
    LIST_HEAD(struct name_track) tracks;
    uv_timer_t *refresh; /* an SI's assignments changed: the entrypoint trackers are told after the AMF's turn */
    bool loaded;         /* the first read is in: this node's stale registrations were dropped */
    bool notifying;      /* sending notes: a send may close any tracker's connection */
};

/* ---- name-value.c: a registration's store value --------------------------------------------- */

struct name_reg *name_reg_free(struct name_reg *r);
/* The value to store (free()), with gone's reason when not 0, or NULL (out of memory). */
char *name_reg_value(const struct name_reg *r, int gone);
/* A registration from a store key and value (NULL value: the key alone).  0, -EINVAL, -ENOMEM. */
int name_reg_parse(const char *prefix, const store_kv *kv, struct name_reg **ret);
/* The registration as the HA link carries it (pointers into r; attrs into the arrays given, of
 * HALO_NAME_ATTRS_MAX). */
void name_reg_entry(const struct name_reg *r, Halo__Link__NameEntry *e, Halo__Link__Attr *attrs,
                    Halo__Link__Attr **pattrs);
/* As haloctl names shows it. */
json_t *name_reg_json(const struct name_reg *r);
/* How many of regs[0 .. n) fit one answer on the HA link, at most HALO_NAME_LOOKUP_MAX (the first always
 * does: the limits bound it). */
size_t name_regs_that_fit(struct name_reg **regs, size_t n);
/* Best first: the highest priority, then the oldest. */
int name_reg_compare(const void *a, const void *b);
/* Whether a registration's fields are within docs/names.md's limits: 0, -EINVAL, -ENAMETOOLONG, -E2BIG. */
int name_entry_check(const Halo__Link__NameEntry *e);

/* ---- name.c ----------------------------------------------------------------------------------- */

/* Registers (or updates) e for comp (pid, starttime) on this node; q answered once stored. */
int name_register(struct name_service *s, const Halo__Link__NameEntry *e, const char *comp, pid_t pid,
                  unsigned long long starttime, struct name_req *q);
/* Removes comp's registration of context/name (all: every one of comp's); q answered once done
 * (at once if comp had none with all).  -ENOENT. */
int name_deregister(struct name_service *s, const char *comp, const char *context, const char *name, bool all,
                    struct name_req *q);
void name_req_answer(struct name_req *q, int error);

/* ---- name-link.c ------------------------------------------------------------------------------ */

/* Tells the trackers of r's name that it changed. */
void name_notify(struct name_service *s, int change, int reason, const struct name_reg *r);
/* Tells one tracker (s->notifying set by the caller, which then calls name_tracks_sweep()). */
void name_notify_one(struct name_track *t, int change, int reason, const struct name_reg *r);
/* Frees the trackers whose connection closed while notes went out. */
void name_tracks_sweep(struct name_service *s);
struct name_track *name_track_free(struct name_track *t);

/* ---- name-entry.c: the entrypoint context ----------------------------------------------------- */

/* The registrations of SI si in the entrypoint context, best first (every one if all), as
 * name_reg_parse() would give them: *ret (name_reg_free() each, free() the array), *ret_n.
 * -ENOENT: no such entrypoint SI, or it has no ACTIVE. */
int name_entry_lookup(struct amf *a, const char *si, bool all, struct name_reg ***ret, size_t *ret_n);
/* Appends every entrypoint SI's registrations to array (haloctl names). */
int name_entry_json(struct amf *a, json_t *array);
/* t tracks the entrypoint context: what it starts from.  0, -ENOMEM. */
int name_entry_track(struct name_service *s, struct name_track *t);
/* The assignments may have changed: each entrypoint tracker is told what changed since it was last told. */
void name_entry_refresh(struct name_service *s);
