/* SPDX-License-Identifier: MIT */
/* halo.component's checkpoints: Handle.ckpt_open(), ckpt_unlink() and the Checkpoint type (docs/python.md). */
#include "comp.h"
#include "halo/ckpt.h"

#include <errno.h>
#include <stdlib.h>

static PyTypeObject *AttrsType;

typedef struct {
    PyObject_HEAD Handle *handle; /* owned: the halo the checkpoint belongs to stays open while it lives */
    halo_ckpt *c;                 /* NULL once closed; freed by halo_close() when the handle closes first */
    PyObject *name;               /* str */
    PyObject *key;                /* its updates callable's key in handle->cbs, or NULL */
} Ckpt;

static PyTypeObject CkptType;

static PyObject *ckpt_key(const halo_ckpt *c) {
    return Py_BuildValue("(sN)", "ckpt", PyLong_FromVoidPtr((void *)c));
}

static void on_update(halo_ckpt *c, const char *section, const void *data, size_t len, int deleted, uint64_t revision,
                      void *userdata) {
    Handle *self = userdata;
    PyGILState_STATE g = PyGILState_Ensure();
    PyObject *key = ckpt_key(c);
    PyObject *cb = comp_cb_get(self, key);
    if (cb)
        comp_invoke(self, cb,
                    Py_BuildValue("(OssNK)", self, halo_ckpt_name(c), section,
                                  deleted ? Py_NewRef(Py_None) : PyBytes_FromStringAndSize(data, (Py_ssize_t)len),
                                  (unsigned long long)revision));
    Py_XDECREF(cb);
    Py_XDECREF(key);
    PyGILState_Release(g);
}

/* Closes the checkpoint while its handle is open.  Once the handle is closed, halo_close() frees it (or will, when
 * another thread's call returns): its callable stays in handle->cbs, for a dispatch() still running to find. */
static void ckpt_release(Ckpt *x) {
    halo_ckpt *c = x->c;
    x->c = NULL;
    if (!c || !x->handle || !x->handle->h)
        return;
    (void)COMP_CALL(x->handle, (halo_ckpt_close(c), 0));
    if (x->key && x->handle->cbs && PyDict_DelItem(x->handle->cbs, x->key) < 0)
        PyErr_Clear();
    Py_CLEAR(x->key);
}

static PyObject *ckpt_open(Handle *self, PyObject *args, PyObject *kw) {
    static char *kwlist[] = {
        "name", "create", "retention_msec", "max_sections", "max_section_size", "csi", "updates", "local_reads", NULL};
    const char *name;
    int create = 0, local_reads = 0;
    unsigned long long retention = 0;
    unsigned max_sections = 0, max_size = 0;
    halo_ckpt_attrs attrs = {0};
    PyObject *updates = NULL;
    if (!PyArg_ParseTupleAndKeywords(args, kw, "s|p$KIIzOp", kwlist, &name, &create, &retention, &max_sections,
                                     &max_size, &attrs.csi, &updates, &local_reads))
        return NULL;
    if (updates == Py_None)
        updates = NULL;
    if (updates && !PyCallable_Check(updates))
        return PyErr_Format(PyExc_TypeError, "ckpt_open(): updates must be callable, not %.100s",
                            Py_TYPE(updates)->tp_name);
    attrs.flags = attrs.csi ? HALO_CKPT_COLLOCATED : 0;
    attrs.retention_msec = retention;
    attrs.max_sections = max_sections;
    attrs.max_section_size = max_size;
    halo *h = comp_handle(self);
    if (!h)
        return NULL;
    Ckpt *x = PyObject_GC_New(Ckpt, &CkptType);
    if (!x)
        return NULL;
    x->handle = (Handle *)Py_NewRef(self);
    x->c = NULL;
    x->key = NULL;
    x->name = PyUnicode_FromString(name);
    PyObject_GC_Track(x);
    unsigned flags =
        (create ? HALO_CKPT_CREATE : 0) | (updates ? HALO_CKPT_UPDATES : 0) | (local_reads ? HALO_CKPT_LOCAL_READS : 0);
    int r = COMP_CALL(self,
                      halo_ckpt_open(h, name, flags, create ? &attrs : NULL, updates ? on_update : NULL, self, &x->c));
    if (r == -EINVAL) {
        Py_DECREF(x);
        return PyErr_Format(PyExc_ValueError,
                            "ckpt_open(): bad name '%s' (1 to 255 letters, digits and \"-_.:@\") or attribute "
                            "(max_sections at most 65536, max_section_size at most %d)",
                            name, HALO_CKPT_SECTION_MAX);
    }
    if (r < 0) {
        Py_DECREF(x);
        return comp_raise(r, "ckpt_open");
    }
    /* Updates run only from dispatch(), which needs the GIL held here: the callable is found. */
    if (!x->name || (updates && (!(x->key = ckpt_key(x->c)) || PyDict_SetItem(self->cbs, x->key, updates) < 0))) {
        Py_CLEAR(x->key);
        Py_DECREF(x);
        return NULL;
    }
    return (PyObject *)x;
}

static PyObject *ckpt_unlink(Handle *self, PyObject *args, PyObject *kw) {
    static char *kwlist[] = {"name", NULL};
    const char *name;
    if (!PyArg_ParseTupleAndKeywords(args, kw, "s", kwlist, &name))
        return NULL;
    halo *h = comp_handle(self);
    if (!h)
        return NULL;
    int r = COMP_CALL(self, halo_ckpt_unlink(h, name));
    if (r == -EINVAL)
        return PyErr_Format(PyExc_ValueError, "ckpt_unlink(): bad name '%s'", name);
    if (r < 0)
        return comp_raise(r, "ckpt_unlink");
    Py_RETURN_NONE;
}

/* The open checkpoint, or NULL with ValueError set. */
static halo_ckpt *ckpt_get(Ckpt *x, const char *fn) {
    if (x->c && (!x->handle || !x->handle->h))
        x->c = NULL; /* halo_close() frees it */
    if (!x->c)
        PyErr_Format(PyExc_ValueError, "%s(): the checkpoint is closed", fn);
    return x->c;
}

/* Raises for r of fn on section: ValueError for a bad id, else Error. */
static PyObject *section_error(int r, const char *fn, const char *section) {
    if (r == -EINVAL)
        return PyErr_Format(PyExc_ValueError, "%s(): bad section id '%s' (1 to 255 letters, digits and \"-_.:@\")", fn,
                            section);
    return comp_raise(r, fn);
}

static PyObject *write_mode(Ckpt *x, PyObject *args, PyObject *kw, const char *fn, int mode) {
    static char *with_mode[] = {"section", "data", "mode", NULL}, *without[] = {"section", "data", NULL};
    const char *section;
    PyObject *data;
    bool given = mode < 0; /* write() takes a mode, overwrite() is one */
    if (given)
        mode = HALO_CKPT_WRITE;
    if (!PyArg_ParseTupleAndKeywords(args, kw, given ? "sO|i" : "sO", given ? with_mode : without, &section, &data,
                                     &mode))
        return NULL;
    if (mode < HALO_CKPT_WRITE || mode > HALO_CKPT_OVERWRITE)
        return PyErr_Format(PyExc_ValueError, "%s(): mode must be CKPT_WRITE, CKPT_CREATE_ONLY or CKPT_OVERWRITE", fn);
    Py_buffer buf;
    halo_ckpt *c = ckpt_get(x, fn);
    if (!c || !comp_bytes_of(data, &buf, fn, "data"))
        return NULL;
    if (buf.len > HALO_CKPT_SECTION_MAX) {
        PyErr_Format(PyExc_ValueError, "%s(): data is %zd bytes, more than a section holds (%d)", fn, buf.len,
                     HALO_CKPT_SECTION_MAX);
        PyBuffer_Release(&buf);
        return NULL;
    }
    int r = COMP_CALL(x->handle, halo_ckpt_write(c, section, buf.buf, (size_t)buf.len, mode));
    PyBuffer_Release(&buf);
    if (r < 0)
        return section_error(r, fn, section);
    Py_RETURN_NONE;
}

static PyObject *ckpt_write(Ckpt *x, PyObject *args, PyObject *kw) {
    return write_mode(x, args, kw, "write", -1);
}

static PyObject *ckpt_overwrite(Ckpt *x, PyObject *args, PyObject *kw) {
    return write_mode(x, args, kw, "overwrite", HALO_CKPT_OVERWRITE);
}

static PyObject *ckpt_read(Ckpt *x, PyObject *args, PyObject *kw) {
    static char *kwlist[] = {"section", "default", NULL};
    const char *section;
    PyObject *dflt = NULL;
    if (!PyArg_ParseTupleAndKeywords(args, kw, "s|O", kwlist, &section, &dflt))
        return NULL;
    halo_ckpt *c = ckpt_get(x, "read");
    if (!c)
        return NULL;
    void *data = NULL;
    size_t len = 0;
    int r = COMP_CALL(x->handle, halo_ckpt_read(c, section, &data, &len));
    if (r == -ENOENT && dflt)
        return Py_NewRef(dflt);
    if (r < 0)
        return section_error(r, "read", section);
    PyObject *ret = PyBytes_FromStringAndSize(data, (Py_ssize_t)len);
    free(data);
    return ret;
}

static PyObject *ckpt_delete(Ckpt *x, PyObject *args, PyObject *kw) {
    static char *kwlist[] = {"section", NULL};
    const char *section;
    if (!PyArg_ParseTupleAndKeywords(args, kw, "s", kwlist, &section))
        return NULL;
    halo_ckpt *c = ckpt_get(x, "delete");
    if (!c)
        return NULL;
    int r = COMP_CALL(x->handle, halo_ckpt_delete(c, section));
    if (r < 0)
        return section_error(r, "delete", section);
    Py_RETURN_NONE;
}

static PyObject *section_item(const void *item) {
    const halo_ckpt_section *s = item;
    return Py_BuildValue("(sy#)", s->id, (const char *)s->data, (Py_ssize_t)s->len);
}

static PyObject *ckpt_sections(Ckpt *x, PyObject *unused) {
    halo_ckpt *c = ckpt_get(x, "sections");
    if (!c)
        return NULL;
    halo_ckpt_section *s = NULL;
    size_t n = 0;
    int r = COMP_CALL(x->handle, halo_ckpt_sections(c, &s, &n));
    if (r < 0)
        return comp_raise(r, "sections");
    PyObject *list = comp_list(s, sizeof(*s), n, section_item);
    free(s);
    return list;
}

static PyObject *ckpt_iter(Ckpt *x) {
    PyObject *list = ckpt_sections(x, NULL);
    PyObject *it = list ? PyObject_GetIter(list) : NULL;
    Py_XDECREF(list);
    return it;
}

static PyObject *ckpt_close(Ckpt *x, PyObject *unused) {
    ckpt_release(x);
    Py_RETURN_NONE;
}

static PyObject *ckpt_enter(Ckpt *x, PyObject *unused) {
    return ckpt_get(x, "__enter__") ? Py_NewRef(x) : NULL;
}

static PyObject *ckpt_exit(Ckpt *x, PyObject *args) {
    ckpt_release(x);
    Py_RETURN_FALSE;
}

static PyObject *ckpt_get_name(Ckpt *x, void *unused) {
    return Py_NewRef(x->name);
}

static PyObject *ckpt_get_attributes(Ckpt *x, void *unused) {
    halo_ckpt *c = ckpt_get(x, "attributes");
    if (!c)
        return NULL;
    const halo_ckpt_attrs *a = halo_ckpt_attributes(c);
    PyObject *vals[] = {PyBool_FromLong(a->flags & HALO_CKPT_COLLOCATED),
                        PyLong_FromUnsignedLongLong(a->retention_msec), PyLong_FromUnsignedLong(a->max_sections),
                        PyLong_FromUnsignedLong(a->max_section_size),
                        a->csi && *a->csi ? PyUnicode_FromString(a->csi) : Py_NewRef(Py_None)};
    return comp_record(AttrsType, vals, 5);
}

static int ckpt_traverse(Ckpt *x, visitproc visit, void *arg) {
    Py_VISIT(x->handle);
    return 0;
}

/* Only garbage with its handle (a checkpoint holds nothing else that could lead back to it): the handle's
 * halo_close() frees it. */
static int ckpt_clear(Ckpt *x) {
    x->c = NULL;
    Py_CLEAR(x->handle);
    Py_CLEAR(x->key);
    return 0;
}

static void ckpt_dealloc(Ckpt *x) {
    PyObject_GC_UnTrack(x);
    PyObject *t, *v, *tb;
    PyErr_Fetch(&t, &v, &tb);
    ckpt_release(x);
    PyErr_Restore(t, v, tb);
    ckpt_clear(x);
    Py_CLEAR(x->name);
    PyObject_GC_Del(x);
}

#define KW (METH_VARARGS | METH_KEYWORDS)
static PyMethodDef ckpt_methods[] = {
    {"write", (PyCFunction)(void (*)(void))ckpt_write, KW,
     "write($self, /, section, data, mode=CKPT_WRITE)\n--\n\nWrites data (bytes, or str as UTF-8) to section: "
     "CKPT_WRITE creates or replaces it,\nCKPT_CREATE_ONLY only creates, CKPT_OVERWRITE only replaces.  Returns once "
     "the store has it."},
    {"overwrite", (PyCFunction)(void (*)(void))ckpt_overwrite, KW,
     "overwrite($self, /, section, data)\n--\n\nReplaces section's data (Error ENOENT when it is missing)."},
    {"read", (PyCFunction)(void (*)(void))ckpt_read, KW,
     "read($self, /, section, default=<raise>)\n--\n\nThe section's data (bytes); default, if given, when it is "
     "missing\n(otherwise Error with errno ENOENT)."},
    {"delete", (PyCFunction)(void (*)(void))ckpt_delete, KW, "delete($self, /, section)\n--\n\nDeletes section."},
    {"sections", (PyCFunction)ckpt_sections, METH_NOARGS,
     "sections($self, /)\n--\n\n[(section, data), ...] of every section, in byte order of their ids (also iter())."},
    {"close", (PyCFunction)ckpt_close, METH_NOARGS,
     "close($self, /)\n--\n\nCloses the checkpoint: its retention time runs once no process has it open."},
    {"__enter__", (PyCFunction)ckpt_enter, METH_NOARGS, NULL},
    {"__exit__", (PyCFunction)ckpt_exit, METH_VARARGS, NULL},
    {NULL, NULL, 0, NULL},
};

static PyGetSetDef ckpt_getset[] = {
    {"name", (getter)ckpt_get_name, NULL, "The checkpoint's name.", NULL},
    {"attributes", (getter)ckpt_get_attributes, NULL, "Its CheckpointAttributes.", NULL},
    {NULL, NULL, NULL, NULL, NULL},
};

static PyTypeObject CkptType = {
    PyVarObject_HEAD_INIT(NULL, 0).tp_name = "halo.component.Checkpoint",
    .tp_basicsize = sizeof(Ckpt),
    .tp_flags = Py_TPFLAGS_DEFAULT | Py_TPFLAGS_HAVE_GC,
    .tp_doc = "An open checkpoint from Handle.ckpt_open(): sections of bytes kept by halod's store; a context "
              "manager\nthat closes it.",
    .tp_dealloc = (destructor)ckpt_dealloc,
    .tp_traverse = (traverseproc)ckpt_traverse,
    .tp_clear = (inquiry)ckpt_clear,
    .tp_iter = (getiterfunc)ckpt_iter,
    .tp_methods = ckpt_methods,
    .tp_getset = ckpt_getset,
};

PyMethodDef comp_ckpt_methods[] = {
    {"ckpt_open", (PyCFunction)(void (*)(void))ckpt_open, KW,
     "ckpt_open($self, /, name, create=False, *, retention_msec=0, max_sections=0, max_section_size=0, csi=None, "
     "updates=None, local_reads=False)\n--\n\nOpens checkpoint name (create: makes it if missing, with these "
     "attributes; csi: collocated,\nwritten only by the component ACTIVE for csi).  updates(handle, name, section, "
     "data, revision) runs\nfrom dispatch() for every change of a section (data None: deleted).  local_reads: "
     "reads and\nlists from this node's replica.  Returns a Checkpoint."},
    {"ckpt_unlink", (PyCFunction)(void (*)(void))ckpt_unlink, KW,
     "ckpt_unlink($self, /, name)\n--\n\nDeletes checkpoint name and its sections now."},
    {NULL, NULL, 0, NULL},
};

static PyStructSequence_Field attrs_fields[] = {{"collocated", "True: written only by the component ACTIVE for csi"},
                                                {"retention_msec", "kept this long once no process has it open"},
                                                {"max_sections", NULL},
                                                {"max_section_size", NULL},
                                                {"csi", "the CSI of a collocated checkpoint, else None"},
                                                {NULL, NULL}};
static PyStructSequence_Desc attrs_desc = {"halo.component.CheckpointAttributes", "A checkpoint's attributes.",
                                           attrs_fields, 5};

int comp_ckpt_init(PyObject *module) {
    if (PyType_Ready(&CkptType) < 0 || PyModule_AddObjectRef(module, "Checkpoint", (PyObject *)&CkptType) < 0)
        return -1;
    AttrsType = PyStructSequence_NewType(&attrs_desc);
    if (!AttrsType || PyModule_AddObjectRef(module, "CheckpointAttributes", (PyObject *)AttrsType) < 0)
        return -1;
    static const comp_constant constants[] = {
        {"CKPT_WRITE", HALO_CKPT_WRITE},
        {"CKPT_CREATE_ONLY", HALO_CKPT_CREATE_ONLY},
        {"CKPT_OVERWRITE", HALO_CKPT_OVERWRITE},
        {"CKPT_SECTION_MAX", HALO_CKPT_SECTION_MAX},
    };
    return comp_add_constants(module, constants, sizeof(constants) / sizeof(constants[0]));
}
