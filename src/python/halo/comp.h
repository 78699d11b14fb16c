/* SPDX-License-Identifier: MIT */
/* halo.component's shared parts: the Handle type, its errors and callback plumbing (compmodule.c, cdbcomp.c). */
#ifndef HALO_PY_COMP_H
#define HALO_PY_COMP_H

#define PY_SSIZE_T_CLEAN
#include <Python.h>

#include <stdbool.h>

#include "halo/cdb.h"
#include "halo/halo.h"

/* The Python callables a Handle holds, one slot each. */
enum {
    CB_CSI_SET,
    CB_CSI_REMOVE,
    CB_TERMINATE,
    CB_HEALTHCHECK,
    CB_PG_TRACK,
    CB_LINK_STATE,
    CB_OBJECT_STATES,
    CB_RECOVERY,
    CB_MAX,
};

typedef struct {
    PyObject_HEAD halo *h; /* NULL once closed */
    PyObject *cb[CB_MAX];  /* owned; NULL when not given */
    PyObject *subs;        /* dict: subscription id -> callable */
    /* The services' callables (ckptcomp.c, namecomp.c, evtcomp.c, txncomp.c): dict, keyed by
     * ("ckpt", address), ("name", track), ("evt", sub), "txn_prepare", "txn_outcome", and by
     * address for a commit's waiter. */
    PyObject *cbs;
    /* The first exception a callback raised during the current dispatch(), re-raised by it. */
    PyObject *exc_type, *exc_value, *exc_tb;
    unsigned long ncalls; /* callbacks run by the current dispatch() */
    /* Calls in progress with the GIL released.  close() while another thread is in one leaves
     * halo_close() to the last to return (it would free the halo that a call about to start
     * holds), and wakes a blocking dispatch() through wake_fd. */
    unsigned busy;
    halo *closing;
    int wake_fd;                   /* an eventfd */
    unsigned long dispatch_thread; /* the thread in dispatch(), 0 when none */
} Handle;

void comp_leave(Handle *self);

/* Runs a blocking libhalo call on self's halo with the GIL released. */
#define COMP_CALL(self, expr)                  \
    ({                                         \
        int _r;                                \
        (self)->busy++;                        \
        Py_BEGIN_ALLOW_THREADS _r = (expr);    \
        Py_END_ALLOW_THREADS comp_leave(self); \
        _r;                                    \
    })

/* Raises halo.component.Error for libhalo's negative r returned by function fn; returns NULL. */
PyObject *comp_raise(int r, const char *fn);
/* The open handle's halo, or NULL with ValueError set when it was closed. */
halo *comp_handle(Handle *self);
/* Calls callable(*args) (a new tuple, consumed) for a libhalo callback: with the GIL taken
 * by the caller; an exception is kept for dispatch() to raise (the first) or reported as
 * unraisable (any later one). */
void comp_invoke(Handle *self, PyObject *callable, PyObject *args);
/* Keeps the exception set, raised by callable or about its result, as comp_invoke() does. */
void comp_keep_error(Handle *self, PyObject *callable);
/* comp_invoke() that returns the callable's result (a new reference), or NULL when it raised. */
PyObject *comp_invoke_result(Handle *self, PyObject *callable, PyObject *args);

/* A new struct sequence of type from n values (new references, consumed; NULL when one could not
 * be made, with its exception set): NULL if any is. */
PyObject *comp_record(PyTypeObject *type, PyObject *const *vals, int n);

/* cdbcomp.c: the Handle's CDB methods, and the Transaction and Change types. */
extern PyMethodDef comp_cdb_methods[];
int comp_cdb_init(PyObject *module);

/* The services' methods and types (docs/python.md), each file's like cdbcomp.c's. */
extern PyMethodDef comp_ckpt_methods[], comp_name_methods[], comp_evt_methods[], comp_txn_methods[];
int comp_ckpt_init(PyObject *module);
int comp_name_init(PyObject *module);
int comp_evt_init(PyObject *module);
int comp_txn_init(PyObject *module);

typedef struct {
    const char *name;
    long value;
} comp_constant;
/* Adds the n int constants to module; -1 with an exception set when one could not be. */
int comp_add_constants(PyObject *module, const comp_constant *constants, size_t n);

/* A list of n items of size bytes each from array items, each made by make (NULL: failed); NULL if one is. */
PyObject *comp_list(const void *items, size_t size, size_t n, PyObject *(*make)(const void *item));
/* Whether a transaction t (CDB or across participants) is still open; ValueError for fn if not. */
bool comp_txn_live(const void *t, const char *fn);

/* fn(id) (the id's keyword argname): ends, with stop(h, id), what the callable under key(id) in self->cbs
 * was called for, and drops it. */
PyObject *comp_cb_stop(Handle *self, PyObject *args, PyObject *kw, const char *fn, char *argname,
                       int (*stop)(halo *, unsigned), PyObject *(*key)(unsigned));

/* The callable under key in self->cbs (a new reference), or NULL (an error, if any, is reported unraisable). */
PyObject *comp_cb_get(Handle *self, PyObject *key);
/* Bytes of o (bytes-like, or str as UTF-8) into ret; TypeError naming what for fn if neither. */
bool comp_bytes_of(PyObject *o, Py_buffer *ret, const char *fn, const char *what);

#endif
