/* SPDX-License-Identifier: MIT */
/*
 * The name service through libhalo (since 0.7; docs/names.md): a registered
 * component registers a name in a context with an object reference,
 * attributes and a priority; any handle looks a name up (the highest priority
 * live registration wins) or tracks it.  halod keeps the registrations in its
 * store (etcd on several nodes, so every node sees them) and removes them
 * when their component fails, is terminated or closes its link without
 * unregistering, and when their node's lease ends (the node died).
 *
 * Contexts and names are 1 to HALO_NAME_MAX bytes of letters, digits and
 * "-_.:@".  The context HALO_NAME_CONTEXT_ENTRYPOINT is read-only: halod
 * derives it from the ACTIVE assignments of the service instances the
 * description marks `entrypoint: true` (a lookup of an SI's name answers
 * where it is ACTIVE).
 */
#ifndef HALO_NAME_H
#define HALO_NAME_H

#include <stddef.h>

#include "halo/halo.h"

#ifdef __cplusplus
extern "C" {
#endif

#define HALO_NAME_MAX 255            /* a context or a name */
#define HALO_NAME_REF_MAX 1024       /* an object reference's bytes */
#define HALO_NAME_ATTRS_MAX 16       /* attributes per registration */
#define HALO_NAME_ATTR_NAME_MAX 64   /* an attribute's name (as a name: letters, digits, "-_.:@") */
#define HALO_NAME_ATTR_VALUE_MAX 256 /* an attribute's value (text without control characters) */
#define HALO_NAME_LOOKUP_MAX 64      /* registrations one lookup answers at most */
#define HALO_NAME_CONTEXT_ENTRYPOINT "entrypoint"

typedef struct halo_name_attr {
    const char *name;
    const char *value;
} halo_name_attr;

/* One registration. */
typedef struct halo_name_entry {
    const char *context;
    const char *name;
    const void *ref; /* ref_len bytes, a NUL follows */
    size_t ref_len;
    const halo_name_attr *attrs;
    size_t n_attrs;
    unsigned priority; /* the highest wins a lookup; equal ones: the older registration */
    const char *comp;  /* the component that registered it ("" in the entrypoint context) */
    const char *node;  /* its node */
} halo_name_entry;

/*
 * Registers name in context for this handle's registered component, or
 * updates its registration (a component has one registration per name).
 * Returns once the store holds it (on several nodes under this node's lease:
 * while the node holds none, joining or fenced, halod waits for one): 0,
 * -EINVAL (a bad context, name or attribute name), -ENAMETOOLONG, -E2BIG
 * (reference or attributes past their limits), -EROFS (the entrypoint
 * context), -HALO_ENOTREG (the handle has no registered component),
 * -ETIMEDOUT, -ENOTCONN, -HALO_ETRYAGAIN (the link went away), -ENOMEM, or the
 * store's error.
 */
int halo_name_register(halo *h, const char *context, const char *name, const void *ref, size_t ref_len,
                       const halo_name_attr *attrs, size_t n_attrs, unsigned priority);
/* Removes this handle's component's registration of name.  Returns 0, -ENOENT, -EINVAL, -EROFS, -HALO_ENOTREG,
 * -ENOTCONN. */
int halo_name_deregister(halo *h, const char *context, const char *name);
/* Removes every registration of this handle's component (clNameComponentDeregister).  Returns 0 (also when it had
 * none), -HALO_ENOTREG, -ENOTCONN. */
int halo_name_component_deregister(halo *h);

enum {
    HALO_NAME_LOOKUP_ALL = 1, /* every live registration, best first; else only the best */
};

/*
 * The live registrations of name in context: *ret_entries is one allocation
 * (free() it) of *ret_n entries, best first.  Returns 0, -ENOENT (none),
 * -EINVAL, -ENOTCONN, -HALO_ETRYAGAIN, -ENOMEM.
 */
int halo_name_lookup(halo *h, const char *context, const char *name, unsigned flags, halo_name_entry **ret_entries,
                     size_t *ret_n);

typedef enum halo_name_change {
    HALO_NAME_ADDED = 1, /* a registration was added or updated */
    HALO_NAME_REMOVED = 2,
} halo_name_change;

typedef enum halo_name_reason {
    HALO_NAME_REGISTERED = 1,       /* its component registered it */
    HALO_NAME_DEREGISTERED = 2,     /* its component deregistered it */
    HALO_NAME_COMPONENT_FAILED = 3, /* its component failed, was terminated, or closed its link */
    HALO_NAME_NODE_LEFT = 4,        /* its node's lease ended: the node died or left */
} halo_name_reason;

/* A registration of a tracked name changed.  Run by halo_dispatch(); entry is valid during the call. */
typedef void (*halo_name_track_cb)(halo *h, unsigned track, halo_name_change change, halo_name_reason reason,
                                   const halo_name_entry *entry, void *userdata);

/*
 * From now on, calls cb for every change of name's registrations in context
 * (in the entrypoint context: an ACTIVE added, or gone, told as
 * HALO_NAME_DEREGISTERED).  Look the name up after this call to know where it
 * starts.  A registered component's tracks are made again
 * after libhalo reconnects to a restarted halod (changes meanwhile are not
 * replayed: look up again on HALO_LINK_RESTORED); an unregistered handle's
 * end with its link.  Returns 0, -EINVAL, -ENOSPC (64 per handle),
 * -ENOTCONN, -HALO_ETRYAGAIN, -ENOMEM.
 */
int halo_name_track(halo *h, const char *context, const char *name, halo_name_track_cb cb, void *userdata,
                    unsigned *ret_track);
/* Returns 0, -ENOENT, -ENOTCONN. */
int halo_name_track_stop(halo *h, unsigned track);

#ifdef __cplusplus
}
#endif

#endif
