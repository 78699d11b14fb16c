/* SPDX-License-Identifier: MIT */
/* Inside the checkpoint service: ckpt.c (opens, closes, retention, updates), ckpt-io.c (sections, haloctl ckpt). */
#pragma once

#include <stdbool.h>
#include <stdint.h>

#include "ckpt.h"
#include "hashmap.h"
#include "list.h"

/* What a checkpoint gets when its creator leaves a limit at 0. */
#define CKPT_SECTIONS_DEFAULT 1024
#define CKPT_SECTIONS_MAX 65536
#define CKPT_RETENTION_MAX_MSEC (366ULL * 24 * 3600 * 1000)

struct ckpt_attrs {
    uint32_t flags; /* HALO_CKPT_COLLOCATED */
    uint64_t retention_msec;
    uint32_t max_sections;
    uint32_t max_section_size;
    char csi[LINK_NAME_MAX + 1];
};

struct ckpt_opener {
    LIST_FIELDS(struct ckpt_opener, openers);
    struct conn *conn; /* NULL: closed while updates went out, removed after */
    bool updates;      /* told of every change of a section (CkptUpdate) */
    bool local_reads;  /* reads and lists answered from this node's replica (ckpt-replica.c) */
};

/* A checkpoint this node has open, or whose retention runs here. */
struct ckpt {
    LIST_FIELDS(struct ckpt, ckpts);
    struct ckpt_svc *svc;
    char *name;
    struct ckpt_attrs attrs;
    LIST_HEAD(struct ckpt_opener) openers;
    uv_timer_t *retention; /* while nobody here has it open: its end (closed and freed apart) */
    bool notifying;        /* sending updates: a send may close any opener's connection */
    /* The replica, while a process here has it open (ckpt-replica.c): the follower of its sections,
     * and the sections (id -> struct ckpt_section) once loaded. */
    struct store_follow *follow;
    struct hashmap sections;
    bool loaded;
    int64_t floor;                     /* the newest revision of a write or delete of it this halod acknowledged */
    LIST_HEAD(struct ckpt_req) parked; /* local reads waiting for the replica to reach their floor */
    size_t n_parked;
};

struct ckpt_batch;

struct ckpt_svc {
    uv_loop_t *loop;
    store *store;
    struct amf *amf;
    char *prefix, *node;
    LIST_HEAD(struct ckpt) ckpts;
    LIST_HEAD(struct ckpt_req) reqs;
    /* Writes wait here while a batch is in flight, and go together in the next (ckpt-io.c). */
    LIST_HEAD(struct ckpt_req) queued;
    bool batching;            /* a batch is in flight: a write alone (batched), or ... */
    struct ckpt_batch *batch; /* ... several in one transaction */
};

/* A request waiting for the store.  conn NULL: it closed meanwhile; svc NULL: the service is gone. */
struct ckpt_req {
    LIST_FIELDS(struct ckpt_req, reqs);
    LIST_FIELDS(struct ckpt_req, queued);
    LIST_FIELDS(struct ckpt_req, parked);
    int64_t wait; /* parked: the replica's revision it waits for */
    bool batched; /* the write that is the batch in flight on its own: its end lets the next go */
    struct ckpt_svc *svc;
    struct conn *conn;
    uint64_t seq;
    int kind; /* the message's body_case, or an internal step */
    uint32_t mode;
    unsigned step;    /* a write: 0 the section exists, 1 it is created (ckpt-io.c) */
    unsigned retries; /* a write sent again after etcd's timeout */
    bool create, updates, local_reads;
    struct ckpt_attrs attrs;
    char name[LINK_NAME_MAX + 1];
    char section[LINK_NAME_MAX + 1];
    size_t len;
    uint8_t data[]; /* a write's data, len bytes */
};

/* ckpt.c */
struct ckpt *ckpt_find(struct ckpt_svc *s, const char *name);
struct ckpt_opener *ckpt_opener_find(struct ckpt *k, const struct conn *c);
int ckpt_req_new(struct ckpt_svc *s, struct conn *c, uint64_t seq, int kind, const char *name, size_t len,
                 struct ckpt_req **ret);
/* Answers q (if its connection is still there) and frees it; error < 0: a Reply with it. */
void ckpt_req_done(struct ckpt_req *q, int error, Halo__Link__Reply *rep);
/* A key of the checkpoint service (keys.c spells them): 0 or -ENAMETOOLONG. */
int ckpt_key_meta(struct ckpt_svc *s, char *buf, const char *name);
int ckpt_key_sections(struct ckpt_svc *s, char *buf, const char *name);
int ckpt_key_section(struct ckpt_svc *s, char *buf, const char *name, const char *section);
int ckpt_key_stamp(struct ckpt_svc *s, char *buf, const char *name);
int ckpt_key_openers(struct ckpt_svc *s, char *buf, const char *name);
int ckpt_key_opener(struct ckpt_svc *s, char *buf, const char *name, const char *node);
/* The attributes kept in the checkpoint's key (JSON): 0 or -EBADMSG. */
int ckpt_attrs_parse(const char *json, size_t len, struct ckpt_attrs *ret);

/* ckpt.c: takes o out of k (and frees it); the last one closes the checkpoint here. */
void ckpt_opener_remove(struct ckpt *k, struct ckpt_opener *o);

/* ckpt-replica.c.  Starts following k's sections (0 if it already does, or an error). */
int ckpt_replica_start(struct ckpt *k);
/* Stops it and forgets the replica; each read parked there is answered error. */
void ckpt_replica_stop(struct ckpt *k, int error);
/* A read or list of an opener with local reads: answered from the replica (now, or once it has
 * k's floor); false if k has no replica (its follower could not start): the store answers. */
bool ckpt_replica_read(struct ckpt *k, struct ckpt_req *q);
/* This halod acknowledged a write or delete of checkpoint name at revision. */
void ckpt_replica_acked(struct ckpt_svc *s, const char *name, int64_t revision);
/* The replica's number of sections and revision (0 and 0 before it is loaded). */
size_t ckpt_replica_sections(const struct ckpt *k, int64_t *ret_revision);

/* ckpt-replica.c: the section id of a key under a checkpoint's sections (the prefix, skip bytes,
 * left out) into id, if it is one halod would have written; false for anything else (skipped). */
bool ckpt_section_id(const store_kv *kv, size_t skip, char id[static LINK_NAME_MAX + 1]);

/* ckpt-io.c: a list's page of sections, built from the store's or from the replica. */
struct ckpt_page {
    Halo__Link__CkptSection *items, **pitems;
    size_t n, bytes;
    bool more;
};
int ckpt_page_init(struct ckpt_page *p); /* 0 or -ENOMEM */
/* Adds a section (id and data must outlive the reply); false once the page is full (more then). */
bool ckpt_page_add(struct ckpt_page *p, char *id, const void *data, size_t len);
/* Answers q with the page, and frees it. */
void ckpt_page_reply(struct ckpt_req *q, struct ckpt_page *p);

/* ckpt-io.c: the batch in flight ended (q->batched): the writes queued meanwhile go. */
void ckpt_batch_next(struct ckpt_svc *s);
/* Frees the writes still queued (the service is going). */
void ckpt_batch_drop(struct ckpt_svc *s);

/* ckpt-io.c: the requests on sections, and haloctl ckpt.  Each returns 0 (answered later) or an error to answer now. */
int ckpt_write(struct ckpt_svc *s, struct conn *c, const Halo__Link__CkptWrite *m);
int ckpt_read(struct ckpt_svc *s, struct conn *c, const Halo__Link__CkptRead *m);
int ckpt_list(struct ckpt_svc *s, struct conn *c, const Halo__Link__CkptList *m);
int ckpt_delete(struct ckpt_svc *s, struct conn *c, const Halo__Link__CkptDelete *m);
int ckpt_unlink(struct ckpt_svc *s, struct conn *c, const Halo__Link__CkptUnlink *m);
int ckpt_admin(struct ckpt_svc *s, struct conn *c, uint64_t seq, const char *target);
