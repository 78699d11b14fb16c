/* SPDX-License-Identifier: MIT */
/* halo.component's transactions across participants: Handle.txn_participate(), txn_vote(), txn_begin() and the
 * Txn type (docs/python.md). */
#include "comp.h"
#include "halo/txn.h"

#include <errno.h>
#include <limits.h>
#include <stdlib.h>

/* ---- participant ---- */

/* The vote prepare's result r says: None or 0 yes, a negative errno no, TXN_VOTE_LATER; anything else is an error. */
static int vote_of(PyObject *r) {
    if (r == Py_None)
        return 0;
    int overflow = 0;
    long v = PyLong_Check(r) && !PyBool_Check(r) ? PyLong_AsLongAndOverflow(r, &overflow) : 1 + HALO_TXN_VOTE_LATER;
    if (!overflow && v <= HALO_TXN_VOTE_LATER && v > -4096)
        return (int)v;
    PyErr_Format(PyExc_ValueError,
                 "prepare must return None or 0 (yes), a negative errno (no) or TXN_VOTE_LATER, not %.100R", r);
    return INT_MIN;
}

static int on_prepare(halo *h, const char *txid, const char *comp, const void *data, size_t len, void *userdata) {
    Handle *self = userdata;
    PyGILState_STATE g = PyGILState_Ensure();
    int vote = -ECANCELED; /* a callback that raised, or whose answer is not a vote, votes no */
    PyObject *key = PyUnicode_FromString("txn_prepare");
    PyObject *cb = comp_cb_get(self, key);
    if (cb) {
        PyObject *r = comp_invoke_result(
            self, cb, Py_BuildValue("(Ossy#)", self, txid, comp, (const char *)data, (Py_ssize_t)len));
        int v = r ? vote_of(r) : INT_MIN;
        if (r && v == INT_MIN)
            comp_keep_error(self, cb);
        if (v != INT_MIN)
            vote = v;
        Py_XDECREF(r);
    }
    Py_XDECREF(cb);
    Py_XDECREF(key);
    PyGILState_Release(g);
    return vote;
}

static void on_outcome(halo *h, const char *txid, const char *comp, bool commit, void *userdata) {
    Handle *self = userdata;
    PyGILState_STATE g = PyGILState_Ensure();
    PyObject *key = PyUnicode_FromString("txn_outcome");
    PyObject *cb = comp_cb_get(self, key);
    if (cb)
        comp_invoke(self, cb, Py_BuildValue("(OssO)", self, txid, comp, commit ? Py_True : Py_False));
    Py_XDECREF(cb);
    Py_XDECREF(key);
    PyGILState_Release(g);
}

static PyObject *txn_participate(Handle *self, PyObject *args, PyObject *kw) {
    static char *kwlist[] = {"prepare", "outcome", NULL};
    PyObject *cb[2];
    if (!PyArg_ParseTupleAndKeywords(args, kw, "OO", kwlist, &cb[0], &cb[1]))
        return NULL;
    if ((cb[0] == Py_None) != (cb[1] == Py_None))
        return PyErr_Format(PyExc_ValueError, "txn_participate(): give both prepare and outcome, or neither");
    for (int i = 0; i < 2; i++)
        if (cb[i] != Py_None && !PyCallable_Check(cb[i]))
            return PyErr_Format(PyExc_TypeError, "txn_participate(): %s must be callable, not %.100s", kwlist[i],
                                Py_TYPE(cb[i])->tp_name);
    halo *h = comp_handle(self);
    if (!h)
        return NULL;
    bool on = cb[0] != Py_None;
    for (int i = 0; i < 2; i++) {
        const char *key = i == 0 ? "txn_prepare" : "txn_outcome";
        if (on ? PyDict_SetItemString(self->cbs, key, cb[i]) < 0
               : PyDict_DelItemString(self->cbs, key) < 0 && !PyErr_ExceptionMatches(PyExc_KeyError))
            return NULL;
        PyErr_Clear();
    }
    int r = COMP_CALL(self, halo_txn_participate(h, on ? on_prepare : NULL, on ? on_outcome : NULL, self));
    if (r < 0)
        return comp_raise(r, "txn_participate");
    Py_RETURN_NONE;
}

static PyObject *txn_vote(Handle *self, PyObject *args, PyObject *kw) {
    static char *kwlist[] = {"txid", "vote", "reason", NULL};
    const char *txid, *reason = NULL;
    int vote = 0;
    if (!PyArg_ParseTupleAndKeywords(args, kw, "s|iz", kwlist, &txid, &vote, &reason))
        return NULL;
    if (vote > 0)
        return PyErr_Format(PyExc_ValueError, "txn_vote(): vote must be 0 (yes) or a negative errno (no), not %d",
                            vote);
    halo *h = comp_handle(self);
    if (!h)
        return NULL;
    int r = COMP_CALL(self, halo_txn_vote(h, txid, vote, reason));
    if (r == -EINVAL)
        return PyErr_Format(PyExc_ValueError, "txn_vote(): bad transaction id '%s'", txid);
    if (r < 0)
        return comp_raise(r, "txn_vote");
    Py_RETURN_NONE;
}

/* The outcome of a transaction asked by id: (result, reason) as a commit's done() gets them, or
 * (-EINPROGRESS, None) while undecided; an unknown one raises. */
static PyObject *txn_outcome(Handle *self, PyObject *args, PyObject *kw) {
    static char *kwlist[] = {"txid", NULL};
    const char *txid;
    char *reason = NULL;
    if (!PyArg_ParseTupleAndKeywords(args, kw, "s", kwlist, &txid))
        return NULL;
    halo *h = comp_handle(self);
    if (!h)
        return NULL;
    int r = COMP_CALL(self, halo_txn_outcome(h, txid, &reason));
    if (r == -EINVAL)
        return PyErr_Format(PyExc_ValueError, "txn_outcome(): bad transaction id '%s'", txid);
    if (r < 0 && r != -ECANCELED && r != -EINPROGRESS)
        return comp_raise(r, "txn_outcome");
    PyObject *o = Py_BuildValue("(iz)", r, reason);
    free(reason);
    return o;
}

/* ---- initiator ---- */

typedef struct {
    PyObject_HEAD Handle *handle; /* owned */
    halo_txn *t;                  /* NULL once committed or aborted */
    PyObject *txid;               /* the commit's id, or None */
} Txn;

static PyTypeObject TxnType;

static PyObject *txn_begin(Handle *self, PyObject *unused) {
    halo *h = comp_handle(self);
    if (!h)
        return NULL;
    Txn *x = PyObject_GC_New(Txn, &TxnType);
    if (!x)
        return NULL;
    x->handle = (Handle *)Py_NewRef(self);
    x->t = NULL;
    x->txid = Py_NewRef(Py_None);
    PyObject_GC_Track(x);
    int r = halo_txn_begin(h, &x->t);
    if (r < 0) {
        Py_DECREF(x);
        return comp_raise(r, "txn_begin");
    }
    return (PyObject *)x;
}

static bool txn_open(Txn *x, const char *fn) {
    return comp_txn_live(x->t, fn);
}

static PyObject *txn_add(Txn *x, PyObject *args, PyObject *kw) {
    static char *kwlist[] = {"comp", "data", NULL};
    const char *comp;
    PyObject *data;
    Py_buffer buf;
    if (!PyArg_ParseTupleAndKeywords(args, kw, "sO", kwlist, &comp, &data) || !txn_open(x, "add") ||
        !comp_bytes_of(data, &buf, "add", "data"))
        return NULL;
    int r = halo_txn_add(x->t, comp, buf.buf, (size_t)buf.len);
    PyBuffer_Release(&buf);
    if (r == -EINVAL)
        return PyErr_Format(PyExc_ValueError, "add(): bad component name '%s', or named twice", comp);
    if (r == -EMSGSIZE)
        return PyErr_Format(PyExc_ValueError, "add(): data is %zd bytes, more than TXN_DATA_MAX (%d)", buf.len,
                            HALO_TXN_DATA_MAX);
    if (r == -E2BIG)
        return PyErr_Format(PyExc_ValueError, "add(): more than %d participants", HALO_TXN_PARTICIPANTS_MAX);
    if (r < 0)
        return comp_raise(r, "add");
    Py_RETURN_NONE;
}

/* userdata: the waiter (handle, done) that commit() put in handle->cbs under its own address; there until now,
 * since halo_close() drops the outcomes still to come. */
static void on_done(halo *h, const char *txid, int result, const char *reason, void *userdata) {
    PyObject *w = userdata;
    PyGILState_STATE g = PyGILState_Ensure();
    Py_INCREF(w);
    Handle *self = (Handle *)PyTuple_GET_ITEM(w, 0);
    PyObject *done = PyTuple_GET_ITEM(w, 1);
    PyObject *key = PyLong_FromVoidPtr(w);
    if (!key || PyDict_DelItem(self->cbs, key) < 0)
        PyErr_WriteUnraisable((PyObject *)self);
    if (done != Py_None)
        comp_invoke(self, done, Py_BuildValue("(Osis)", self, txid, result, reason ? reason : ""));
    Py_XDECREF(key);
    Py_DECREF(w);
    PyGILState_Release(g);
}

static PyObject *txn_commit(Txn *x, PyObject *args, PyObject *kw) {
    static char *kwlist[] = {"done", "timeout_msec", NULL};
    PyObject *done = Py_None;
    unsigned timeout = 0;
    if (!PyArg_ParseTupleAndKeywords(args, kw, "|OI", kwlist, &done, &timeout) || !txn_open(x, "commit"))
        return NULL;
    if (done != Py_None && !PyCallable_Check(done))
        return PyErr_Format(PyExc_TypeError, "commit(): done must be callable, not %.100s", Py_TYPE(done)->tp_name);
    halo *h = comp_handle(x->handle);
    if (!h)
        return NULL;
    /* The waiter is in cbs before halod can answer: a dispatch() on another thread finds it. */
    PyObject *w = PyTuple_Pack(2, (PyObject *)x->handle, done);
    PyObject *key = w ? PyLong_FromVoidPtr(w) : NULL;
    if (!key || PyDict_SetItem(x->handle->cbs, key, w) < 0) {
        Py_XDECREF(key);
        Py_XDECREF(w);
        return NULL;
    }
    halo_txn *t = x->t;
    x->t = NULL; /* committed and freed whatever the result */
    char *txid = NULL;
    int r = COMP_CALL(x->handle, halo_txn_commit(t, timeout, on_done, w, &txid));
    Py_DECREF(w); /* cbs holds it */
    PyObject *ret = NULL;
    if (r < 0) {
        if (PyDict_DelItem(x->handle->cbs, key) < 0)
            PyErr_Clear();
        if (r == -EINVAL)
            PyErr_Format(PyExc_ValueError, "commit(): no participant, or timeout_msec not 0 nor 100 to 600000");
        else
            comp_raise(r, "commit");
    } else if ((ret = PyUnicode_FromString(txid)))
        Py_SETREF(x->txid, Py_NewRef(ret));
    free(txid);
    Py_DECREF(key);
    return ret;
}

static PyObject *txn_abort(Txn *x, PyObject *unused) {
    halo_txn_free(x->t);
    x->t = NULL;
    Py_RETURN_NONE;
}

static PyObject *txn_get_txid(Txn *x, void *unused) {
    return Py_NewRef(x->txid);
}

static int txn_traverse(Txn *x, visitproc visit, void *arg) {
    Py_VISIT(x->handle);
    return 0;
}

static int txn_clear(Txn *x) {
    Py_CLEAR(x->handle);
    return 0;
}

static void txn_dealloc(Txn *x) {
    PyObject_GC_UnTrack(x);
    halo_txn_free(x->t); /* never committed: dropped */
    txn_clear(x);
    Py_XDECREF(x->txid);
    PyObject_GC_Del(x);
}

#define KW (METH_VARARGS | METH_KEYWORDS)
static PyMethodDef txn_methods[] = {
    {"add", (PyCFunction)(void (*)(void))txn_add, KW,
     "add($self, /, comp, data)\n--\n\nComponent comp will be asked to apply data (bytes, or str as UTF-8)."},
    {"commit", (PyCFunction)(void (*)(void))txn_commit, KW,
     "commit($self, /, done=None, timeout_msec=0)\n--\n\nCommits: returns the transaction id (also .txid) once "
     "halod has its record;\ndone(handle, txid, result, reason) runs later from dispatch(): result 0 committed, "
     "-ECANCELED aborted,\n-ECONNRESET unknown (the link ended first).  The transaction is over either way."},
    {"abort", (PyCFunction)txn_abort, METH_NOARGS, "abort($self, /)\n--\n\nDrops the transaction, not committed."},
    {NULL, NULL, 0, NULL},
};

static PyGetSetDef txn_getset[] = {
    {"txid", (getter)txn_get_txid, NULL, "The id of the commit, or None before it.", NULL},
    {NULL, NULL, NULL, NULL, NULL},
};

static PyTypeObject TxnType = {
    PyVarObject_HEAD_INIT(NULL, 0).tp_name = "halo.component.Txn",
    .tp_basicsize = sizeof(Txn),
    .tp_flags = Py_TPFLAGS_DEFAULT | Py_TPFLAGS_HAVE_GC,
    .tp_doc = "A transaction across participants from Handle.txn_begin(): a two-phase commit halod coordinates.",
    .tp_dealloc = (destructor)txn_dealloc,
    .tp_traverse = (traverseproc)txn_traverse,
    .tp_clear = (inquiry)txn_clear,
    .tp_methods = txn_methods,
    .tp_getset = txn_getset,
};

PyMethodDef comp_txn_methods[] = {
    {"txn_participate", (PyCFunction)(void (*)(void))txn_participate, KW,
     "txn_participate($self, /, prepare, outcome)\n--\n\nMakes this component a participant: prepare(handle, txid, "
     "comp, data) from dispatch()\nreturns None or 0 (yes), a negative errno (no) or TXN_VOTE_LATER (then "
     "txn_vote()); an exception\nvotes no.  outcome(handle, txid, comp, commit) applies or forgets it.  None, None: "
     "every prepare is voted no."},
    {"txn_vote", (PyCFunction)(void (*)(void))txn_vote, KW,
     "txn_vote($self, /, txid, vote=0, reason=None)\n--\n\nThe vote a prepare left for later: 0 yes, a negative "
     "errno no (reason: why)."},
    {"txn_begin", (PyCFunction)txn_begin, METH_NOARGS, "txn_begin($self, /)\n--\n\nA new Txn, empty."},
    {"txn_outcome", (PyCFunction)(void (*)(void))txn_outcome, KW,
     "txn_outcome($self, /, txid)\n--\n\nThe outcome of transaction txid, asked of halod (any node, kept an "
     "hour):\n(0, None) committed, (-errno.ECANCELED, reason) aborted, (-errno.EINPROGRESS, None)\nnot decided yet; "
     "an unknown transaction raises Error (HALO_EUNKNOWN)."},
    {NULL, NULL, 0, NULL},
};

int comp_txn_init(PyObject *module) {
    if (PyType_Ready(&TxnType) < 0 || PyModule_AddObjectRef(module, "Txn", (PyObject *)&TxnType) < 0)
        return -1;
    static const comp_constant constants[] = {
        {"TXN_VOTE_LATER", HALO_TXN_VOTE_LATER},
        {"TXN_DATA_MAX", HALO_TXN_DATA_MAX},
        {"TXN_PARTICIPANTS_MAX", HALO_TXN_PARTICIPANTS_MAX},
    };
    return comp_add_constants(module, constants, sizeof(constants) / sizeof(constants[0]));
}
