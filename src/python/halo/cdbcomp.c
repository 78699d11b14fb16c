/* SPDX-License-Identifier: MIT */
/* halo.component's configuration database: Handle.cdb_* and the Transaction context manager (docs/python.md). */
#include "comp.h"

#include <errno.h>
#include <stdlib.h>

static PyTypeObject *ChangeType;

/* Bytes as they are, str as UTF-8. */
bool comp_bytes_of(PyObject *o, Py_buffer *ret, const char *fn, const char *what) {
    if (PyUnicode_Check(o)) {
        Py_ssize_t len;
        const char *s = PyUnicode_AsUTF8AndSize(o, &len);
        return s && PyBuffer_FillInfo(ret, o, (void *)s, len, 1, PyBUF_SIMPLE) == 0;
    }
    if (PyObject_CheckBuffer(o))
        return PyObject_GetBuffer(o, ret, PyBUF_SIMPLE) == 0;
    PyErr_Format(PyExc_TypeError, "%s(): %s must be bytes or str, not %.100s", fn, what, Py_TYPE(o)->tp_name);
    return false;
}

static PyObject *cdb_get(Handle *self, PyObject *args, PyObject *kw) {
    static char *kwlist[] = {"path", "default", NULL};
    const char *path;
    PyObject *dflt = NULL;
    if (!PyArg_ParseTupleAndKeywords(args, kw, "s|O", kwlist, &path, &dflt))
        return NULL;
    halo *h = comp_handle(self);
    if (!h)
        return NULL;
    void *v = NULL;
    size_t len = 0;
    int r = COMP_CALL(self, halo_cdb_get(h, path, &v, &len));
    if (r == -ENOENT && dflt)
        return Py_NewRef(dflt);
    if (r < 0)
        return comp_raise(r, "cdb_get");
    PyObject *ret = PyBytes_FromStringAndSize(v, (Py_ssize_t)len);
    free(v);
    return ret;
}

static PyObject *item_pair(const void *p) {
    const halo_cdb_item *item = p;
    return Py_BuildValue("(sy#)", item->path, (const char *)item->value, (Py_ssize_t)item->len);
}

static PyObject *cdb_list(Handle *self, PyObject *args, PyObject *kw) {
    static char *kwlist[] = {"path", NULL};
    const char *path = "/";
    if (!PyArg_ParseTupleAndKeywords(args, kw, "|s", kwlist, &path))
        return NULL;
    halo *h = comp_handle(self);
    if (!h)
        return NULL;
    halo_cdb_item *items = NULL;
    size_t n = 0;
    int r = COMP_CALL(self, halo_cdb_list(h, path, &items, &n));
    if (r < 0)
        return comp_raise(r, "cdb_list");
    PyObject *list = comp_list(items, sizeof(*items), n, item_pair);
    free(items);
    return list;
}

/* ---- subscriptions ---- */

static PyObject *change(const void *item) {
    const halo_cdb_change *c = item;
    PyObject *vals[] = {PyLong_FromLong(c->op), PyUnicode_FromString(c->path),
                        c->op == HALO_CDB_SET ? PyBytes_FromStringAndSize(c->value, (Py_ssize_t)c->len)
                                              : Py_NewRef(Py_None)};
    return comp_record(ChangeType, vals, 3);
}

static PyObject *changes_list(const halo_cdb_change *changes, size_t n) {
    return comp_list(changes, sizeof(*changes), n, change);
}

static void on_change(halo *h, unsigned sub, const char *txid, const halo_cdb_change *changes, size_t n,
                      void *userdata) {
    Handle *self = userdata;
    PyGILState_STATE g = PyGILState_Ensure();
    PyObject *key = PyLong_FromUnsignedLong(sub);
    PyObject *cb = key && self->subs ? PyDict_GetItemWithError(self->subs, key) : NULL;
    Py_XINCREF(cb); /* the callback may unsubscribe itself */
    if (cb) {
        PyObject *list = changes_list(changes, n);
        comp_invoke(self, cb, list ? Py_BuildValue("(OksN)", self, (unsigned long)sub, txid, list) : NULL);
    } else if (PyErr_Occurred())
        PyErr_WriteUnraisable((PyObject *)self);
    Py_XDECREF(cb);
    Py_XDECREF(key);
    PyGILState_Release(g);
}

static PyObject *cdb_subscribe(Handle *self, PyObject *args, PyObject *kw) {
    static char *kwlist[] = {"path", "callback", NULL};
    const char *path;
    PyObject *cb;
    if (!PyArg_ParseTupleAndKeywords(args, kw, "sO", kwlist, &path, &cb))
        return NULL;
    if (!PyCallable_Check(cb))
        return PyErr_Format(PyExc_TypeError, "cdb_subscribe(): callback must be callable, not %.100s",
                            Py_TYPE(cb)->tp_name);
    halo *h = comp_handle(self);
    if (!h)
        return NULL;
    unsigned sub = 0;
    /* Changes are delivered only by dispatch() on the thread holding the GIL: the id is in subs first. */
    int r = COMP_CALL(self, halo_cdb_subscribe(h, path, on_change, self, &sub));
    if (r < 0)
        return comp_raise(r, "cdb_subscribe");
    PyObject *key = PyLong_FromUnsignedLong(sub);
    if (!key || PyDict_SetItem(self->subs, key, cb) < 0) {
        Py_XDECREF(key);
        (void)COMP_CALL(self, halo_cdb_unsubscribe(h, sub));
        return NULL;
    }
    return key;
}

static PyObject *cdb_unsubscribe(Handle *self, PyObject *args, PyObject *kw) {
    static char *kwlist[] = {"sub", NULL};
    unsigned long sub;
    if (!PyArg_ParseTupleAndKeywords(args, kw, "k", kwlist, &sub))
        return NULL;
    halo *h = comp_handle(self);
    if (!h)
        return NULL;
    int r = COMP_CALL(self, halo_cdb_unsubscribe(h, (unsigned)sub));
    if (r < 0)
        return comp_raise(r, "cdb_unsubscribe");
    PyObject *key = PyLong_FromUnsignedLong(sub);
    if (!key || PyDict_DelItem(self->subs, key) < 0)
        PyErr_Clear();
    Py_XDECREF(key);
    Py_RETURN_NONE;
}

/* ---- transactions ---- */

typedef struct {
    PyObject_HEAD Handle *handle; /* owned: the halo the transaction names stays open while it lives */
    halo_cdb_txn *t;              /* NULL once committed or aborted */
    PyObject *txid;               /* the commit's id, or None */
    size_t n;                     /* changes so far */
} Txn;

static PyTypeObject TxnType;

static PyObject *cdb_transaction(Handle *self, PyObject *unused) {
    halo *h = comp_handle(self);
    if (!h)
        return NULL;
    Txn *x = PyObject_New(Txn, &TxnType);
    if (!x)
        return NULL;
    x->handle = (Handle *)Py_NewRef(self);
    x->t = NULL;
    x->txid = Py_NewRef(Py_None);
    x->n = 0;
    int r = halo_cdb_txn_begin(h, &x->t);
    if (r < 0) {
        Py_DECREF(x);
        return comp_raise(r, "cdb_transaction");
    }
    return (PyObject *)x;
}

static void txn_dealloc(Txn *x) {
    halo_cdb_txn_abort(x->t); /* never committed: dropped */
    Py_XDECREF(x->handle);
    Py_XDECREF(x->txid);
    PyObject_Free(x);
}

static bool txn_open(Txn *x, const char *fn) {
    return comp_txn_live(x->t, fn);
}

static PyObject *txn_set(Txn *x, PyObject *args, PyObject *kw) {
    static char *kwlist[] = {"path", "value", NULL};
    const char *path;
    PyObject *v;
    Py_buffer buf;
    if (!PyArg_ParseTupleAndKeywords(args, kw, "sO", kwlist, &path, &v) || !txn_open(x, "set") ||
        !comp_bytes_of(v, &buf, "set", "value"))
        return NULL;
    int r = halo_cdb_txn_set(x->t, path, buf.buf, (size_t)buf.len);
    PyBuffer_Release(&buf);
    x->n += r >= 0;
    if (r == -EINVAL)
        return PyErr_Format(PyExc_ValueError,
                            "set(): bad path '%s' (absolute, no empty component, no trailing "
                            "'/', not the root)",
                            path);
    if (r < 0)
        return comp_raise(r, "set");
    Py_RETURN_NONE;
}

static PyObject *txn_delete(Txn *x, PyObject *args, PyObject *kw) {
    static char *kwlist[] = {"path", NULL};
    const char *path;
    if (!PyArg_ParseTupleAndKeywords(args, kw, "s", kwlist, &path) || !txn_open(x, "delete"))
        return NULL;
    int r = halo_cdb_txn_delete(x->t, path);
    x->n += r >= 0;
    if (r == -EINVAL)
        return PyErr_Format(PyExc_ValueError, "delete(): bad path '%s'", path);
    if (r < 0)
        return comp_raise(r, "delete");
    Py_RETURN_NONE;
}

static PyObject *txn_commit(Txn *x, PyObject *unused) {
    if (!txn_open(x, "commit"))
        return NULL;
    if (!x->handle->h) { /* the handle was closed: the transaction can only be dropped */
        x->t = halo_cdb_txn_abort(x->t);
        return comp_handle(x->handle), NULL;
    }
    char txid[HALO_CDB_TXID_MAX];
    halo_cdb_txn *t = x->t;
    x->t = NULL; /* committed and freed whatever the result */
    int r = COMP_CALL(x->handle, halo_cdb_txn_commit(t, txid));
    if (r < 0)
        return comp_raise(r, "commit");
    PyObject *id = PyUnicode_FromString(txid);
    if (!id)
        return NULL;
    Py_SETREF(x->txid, Py_NewRef(id));
    return id;
}

static PyObject *txn_abort(Txn *x, PyObject *unused) {
    x->t = halo_cdb_txn_abort(x->t);
    Py_RETURN_NONE;
}

static PyObject *txn_enter(Txn *x, PyObject *unused) {
    return txn_open(x, "__enter__") ? Py_NewRef(x) : NULL;
}

/* Commits when the block ended normally (an empty block commits nothing), aborts when it raised. */
static PyObject *txn_exit(Txn *x, PyObject *args) {
    PyObject *type = PyTuple_GET_SIZE(args) > 0 ? PyTuple_GET_ITEM(args, 0) : Py_None;
    if (type != Py_None || !x->t || x->n == 0) {
        x->t = halo_cdb_txn_abort(x->t);
        Py_RETURN_FALSE;
    }
    PyObject *r = txn_commit(x, NULL);
    if (!r)
        return NULL;
    Py_DECREF(r);
    Py_RETURN_FALSE;
}

static PyObject *txn_get_txid(Txn *x, void *unused) {
    return Py_NewRef(x->txid);
}

static PyMethodDef txn_methods[] = {
    {"set", (PyCFunction)(void (*)(void))txn_set, METH_VARARGS | METH_KEYWORDS,
     "set($self, /, path, value)\n--\n\nSets path to value (bytes, or str stored as UTF-8) at commit."},
    {"delete", (PyCFunction)(void (*)(void))txn_delete, METH_VARARGS | METH_KEYWORDS,
     "delete($self, /, path)\n--\n\nDeletes path and everything under it at commit."},
    {"commit", (PyCFunction)txn_commit, METH_NOARGS,
     "commit($self, /)\n--\n\nCommits; returns the transaction id (also .txid).  The transaction is over either "
     "way."},
    {"abort", (PyCFunction)txn_abort, METH_NOARGS, "abort($self, /)\n--\n\nDrops the transaction."},
    {"__enter__", (PyCFunction)txn_enter, METH_NOARGS, NULL},
    {"__exit__", (PyCFunction)txn_exit, METH_VARARGS, NULL},
    {NULL, NULL, 0, NULL},
};

static PyGetSetDef txn_getset[] = {
    {"txid", (getter)txn_get_txid, NULL, "The id of the commit, or None before it.", NULL},
    {NULL, NULL, NULL, NULL, NULL},
};

static PyTypeObject TxnType = {
    PyVarObject_HEAD_INIT(NULL, 0).tp_name = "halo.component.Transaction",
    .tp_basicsize = sizeof(Txn),
    .tp_flags = Py_TPFLAGS_DEFAULT,
    .tp_doc = "A CDB transaction from Handle.cdb_transaction(): a context manager that commits when its block "
              "ends\nnormally and aborts when it raises.",
    .tp_dealloc = (destructor)txn_dealloc,
    .tp_methods = txn_methods,
    .tp_getset = txn_getset,
};

#define KW (METH_VARARGS | METH_KEYWORDS)
PyMethodDef comp_cdb_methods[] = {
    {"cdb_get", (PyCFunction)(void (*)(void))cdb_get, KW,
     "cdb_get($self, /, path, default=<raise>)\n--\n\nThe value at path (bytes); default, if given, when there is "
     "none\n(otherwise Error with errno ENOENT)."},
    {"cdb_list", (PyCFunction)(void (*)(void))cdb_list, KW,
     "cdb_list($self, /, path='/')\n--\n\n[(path, value), ...] of path and everything under it, in byte order."},
    {"cdb_transaction", (PyCFunction)cdb_transaction, METH_NOARGS,
     "cdb_transaction($self, /)\n--\n\nA new Transaction."},
    {"cdb_subscribe", (PyCFunction)(void (*)(void))cdb_subscribe, KW,
     "cdb_subscribe($self, /, path, callback)\n--\n\ncallback(handle, sub, txid, [Change, ...]) from dispatch() "
     "for each commit\ntouching path's subtree (no changes: a full copy replaced the database).  Returns sub."},
    {"cdb_unsubscribe", (PyCFunction)(void (*)(void))cdb_unsubscribe, KW,
     "cdb_unsubscribe($self, /, sub)\n--\n\nEnds a subscription."},
    {NULL, NULL, 0, NULL},
};

static PyStructSequence_Field change_fields[] = {
    {"op", "CDB_SET or CDB_DELETE"}, {"path", NULL}, {"value", "bytes for CDB_SET, None for CDB_DELETE"}, {NULL, NULL}};
static PyStructSequence_Desc change_desc = {"halo.component.Change", "A change of a committed transaction.",
                                            change_fields, 3};

int comp_cdb_init(PyObject *module) {
    if (PyType_Ready(&TxnType) < 0 || PyModule_AddObjectRef(module, "Transaction", (PyObject *)&TxnType) < 0)
        return -1;
    ChangeType = PyStructSequence_NewType(&change_desc);
    return ChangeType ? PyModule_AddObjectRef(module, "Change", (PyObject *)ChangeType) : -1;
}
