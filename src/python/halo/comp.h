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

/* A new struct sequence of type from n values (new references, consumed; NULL when one could not
 * be made, with its exception set): NULL if any is. */
PyObject *comp_record(PyTypeObject *type, PyObject *const *vals, int n);

/* cdbcomp.c: the Handle's CDB methods, and the Transaction and Change types. */
extern PyMethodDef comp_cdb_methods[];
int comp_cdb_init(PyObject *module);

#endif
