/* SPDX-License-Identifier: MIT */
/*
 * Checkpoints through libhalo (since 0.7; docs/checkpoints.md): named checkpoints made of
 * sections, which halod keeps in its store, so that a component's state outlives the component
 * and its node.  On several nodes the store is etcd: a write returns once etcd committed it on
 * a majority of its members, so no acknowledged write is lost when any one node dies (halod, its
 * components and its disk).  On one node it is SQLite: a write returns once it is on disk.
 *
 * Any handle from halo_open() may open checkpoints, registered or not.  A *collocated*
 * checkpoint is bound to a CSI: only the component holding that CSI ACTIVE (its handle
 * registered it) may write or delete its sections; any opener may read them.  An opener that
 * asks for updates is told of every change to a section through halo_dispatch(): a STANDBY
 * keeps a warm copy that way.
 *
 * Every node where a process has a checkpoint open keeps a replica of it: halod follows its
 * sections in the store and holds them in memory.  Reads go to the store (a read sees every
 * write acknowledged anywhere before it), unless the checkpoint was opened with
 * HALO_CKPT_LOCAL_READS: then halo_ckpt_read() and halo_ckpt_sections() answer from the
 * replica, with no round trip and while the store is out of reach.  Such a read sees every write
 * and delete acknowledged on this node before it (it waits for the replica to have them), never
 * goes back in time, and sees another node's write once this node's watch brought it (within
 * milliseconds while the store is reachable): not for a new ACTIVE reading what the old one
 * wrote.
 *
 * Names of checkpoints and section ids are 1 to 255 bytes of letters, digits and "-_.:@".
 * A section holds 0 to HALO_CKPT_SECTION_MAX bytes.
 */
#ifndef HALO_CKPT_H
#define HALO_CKPT_H

#include <stddef.h>
#include <stdint.h>

#include "halo/halo.h"

#ifdef __cplusplus
extern "C" {
#endif

#define HALO_CKPT_NAME_MAX 255
#define HALO_CKPT_SECTION_MAX (60 * 1024)

typedef struct halo_ckpt halo_ckpt;

typedef enum halo_ckpt_flags {
    HALO_CKPT_COLLOCATED = 1 << 0, /* attrs: written only by the component ACTIVE for attrs.csi */
} halo_ckpt_flags;

typedef enum halo_ckpt_open_flags {
    HALO_CKPT_CREATE = 1 << 0,      /* create it if missing (with the attributes given) */
    HALO_CKPT_UPDATES = 1 << 1,     /* call the update callback for every change of a section */
    HALO_CKPT_LOCAL_READS = 1 << 2, /* read and list from this node's replica (see above) */
} halo_ckpt_open_flags;

typedef struct halo_ckpt_attrs {
    unsigned flags;            /* halo_ckpt_flags */
    uint64_t retention_msec;   /* kept this long once no process has it open; 0: deleted at once */
    uint32_t max_sections;     /* 0: 1024; at most 65536 */
    uint32_t max_section_size; /* 0: HALO_CKPT_SECTION_MAX; at most that */
    const char *csi;           /* HALO_CKPT_COLLOCATED: the CSI whose ACTIVE component writes */
} halo_ckpt_attrs;

/*
 * A section changed: data holds its new len bytes (a NUL follows), or it was deleted (deleted
 * 1, len 0).  revision: the store's revision of the change, increasing.  Run by
 * halo_dispatch(); the arguments are valid during the call.
 */
typedef void (*halo_ckpt_update_cb)(halo_ckpt *c, const char *section, const void *data, size_t len, int deleted,
                                    uint64_t revision, void *userdata);

/*
 * Opens the checkpoint name, or with HALO_CKPT_CREATE creates it first if missing (attrs
 * required then; an existing checkpoint keeps its own attributes, which *ret_attrs gets if not
 * NULL, its csi pointing into the handle).  cb (with HALO_CKPT_UPDATES) is told of changes.
 * Returns 0 and *ret, -EINVAL (a bad name or attribute, a collocated checkpoint without a
 * CSI), -HALO_EUNKNOWN (no such CSI), -ENOENT (missing, no HALO_CKPT_CREATE), -HALO_EEXIST
 * (this handle has it open already), -ENOTCONN, -HALO_ETRYAGAIN, -ETIMEDOUT, -ENOMEM, or the
 * store's error (-EIO, -ECONNREFUSED: etcd unreachable).
 */
int halo_ckpt_open(halo *h, const char *name, unsigned open_flags, const halo_ckpt_attrs *attrs, halo_ckpt_update_cb cb,
                   void *userdata, halo_ckpt **ret);

/* The checkpoint's attributes (csi valid until halo_ckpt_close()). */
const halo_ckpt_attrs *halo_ckpt_attributes(const halo_ckpt *c);
const char *halo_ckpt_name(const halo_ckpt *c);

typedef enum halo_ckpt_write_mode {
    HALO_CKPT_WRITE = 0,   /* create or replace */
    HALO_CKPT_CREATE_ONLY, /* -HALO_EEXIST if the section exists */
    HALO_CKPT_OVERWRITE,   /* -ENOENT if the section is missing */
} halo_ckpt_write_mode;

/*
 * Writes len bytes of data (copied) to section.  Returns once the store has it (see above).
 * Returns 0, -EINVAL (bad section id), -E2BIG (more than the checkpoint's max_section_size),
 * -ENOSPC (the checkpoint has max_sections already), -EPERM (collocated, and this handle's
 * component does not hold its CSI ACTIVE), -HALO_EEXIST, -ENOENT (the section, with
 * HALO_CKPT_OVERWRITE, or the checkpoint: unlinked), -ETIMEDOUT or -EIO (the store did not
 * answer in time, or its connection broke: it may or may not be written; halod has sent a
 * replacing write again twice before saying so), -ENOTCONN, -HALO_ETRYAGAIN, the store's error.
 */
int halo_ckpt_write(halo_ckpt *c, const char *section, const void *data, size_t len, halo_ckpt_write_mode mode);
/* Reads section: *ret_data (free() it; a NUL follows the *ret_len bytes).  Returns 0, -ENOENT,
 * -EINVAL, -ENOTCONN, -HALO_ETRYAGAIN, -ETIMEDOUT, -ENOMEM, the store's error. */
int halo_ckpt_read(halo_ckpt *c, const char *section, void **ret_data, size_t *ret_len);
/* Deletes section.  Returns 0, -ENOENT, -EPERM, -EINVAL and the errors of halo_ckpt_write(). */
int halo_ckpt_delete(halo_ckpt *c, const char *section);

typedef struct halo_ckpt_section {
    const char *id;
    const void *data; /* a NUL follows the len bytes */
    size_t len;
} halo_ckpt_section;

/* Every section, in byte order of their ids: *ret (one allocation: free() it) of *ret_n.
 * Read in parts when big: writes between two parts may show in the later parts only.
 * Returns 0 (no sections once it is unlinked), -ENOTCONN, -HALO_ETRYAGAIN, -ETIMEDOUT, -ENOMEM. */
int halo_ckpt_sections(halo_ckpt *c, halo_ckpt_section **ret, size_t *ret_n);

/* Closes c (frees it, whatever the result): once no process of any node has the checkpoint
 * open, its retention time runs.  Accepts NULL; returns NULL.  halo_close() closes (and frees)
 * every checkpoint of its handle: do not close them after it. */
halo_ckpt *halo_ckpt_close(halo_ckpt *c);

/* Deletes the checkpoint name and its sections now; its openers' later calls get -ENOENT.
 * Returns 0, -ENOENT, -EINVAL, -ENOTCONN, -HALO_ETRYAGAIN, -ETIMEDOUT, the store's error. */
int halo_ckpt_unlink(halo *h, const char *name);

#ifdef __cplusplus
}
#endif

#endif
