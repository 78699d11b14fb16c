/* SPDX-License-Identifier: MIT */
/* Inside the checkpoint service: ckpt.c (opens, closes, retention, updates), ckpt-io.c (sections, haloctl ckpt). */
#pragma once

#include <stdbool.h>
#include <stdint.h>

#include "ckpt.h"
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
};

/* A checkpoint this node has open, or whose retention runs here. */
struct ckpt {
    LIST_FIELDS(struct ckpt, ckpts);
    struct ckpt_svc *svc;
    char *name;
    struct ckpt_attrs attrs;
    LIST_HEAD(struct ckpt_opener) openers;
    struct store_follow *follow; /* while an opener wants updates */
    uv_timer_t *retention;       /* while nobody here has it open: its end (closed and freed apart) */
    bool notifying;              /* sending updates: a send may close any opener's connection */
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
    bool batched; /* the write that is the batch in flight on its own: its end lets the next go */
    struct ckpt_svc *svc;
    struct conn *conn;
    uint64_t seq;
    int kind; /* the message's body_case, or an internal step */
    uint32_t mode;
    unsigned step;    /* a write: 0 the section exists, 1 it is created (ckpt-io.c) */
    unsigned retries; /* a write sent again after etcd's timeout */
    bool create, updates;
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
