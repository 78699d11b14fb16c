/* SPDX-License-Identifier: MIT */
/* halo.component's name service: Handle.name_register(), name_lookup(), name_track(), ... (docs/python.md). */
#include "comp.h"
#include "halo/name.h"

#include <errno.h>
#include <stdlib.h>

static PyTypeObject *EntryType;

/* Raises for r of fn: ValueError for what the caller got wrong, else Error. */
static PyObject *name_error(int r, const char *fn, const char *context, const char *name) {
    if (r == -EINVAL)
        return PyErr_Format(PyExc_ValueError,
                            "%s(): bad context '%s' or name '%s' (1 to %d letters, digits and \"-_.:@\"), or "
                            "attribute name",
                            fn, context, name, HALO_NAME_MAX);
    return comp_raise(r, fn);
}

/* attrs: a dict of str to str, or None; into ret (borrowed UTF-8 of the dict's own strings). */
static bool attrs_of(PyObject *d, halo_name_attr *ret, size_t *ret_n) {
    *ret_n = 0;
    if (d == Py_None)
        return true;
    if (!PyDict_Check(d)) {
        PyErr_Format(PyExc_TypeError, "name_register(): attributes must be a dict, not %.100s", Py_TYPE(d)->tp_name);
        return false;
    }
    if (PyDict_GET_SIZE(d) > HALO_NAME_ATTRS_MAX) {
        PyErr_Format(PyExc_ValueError, "name_register(): %zd attributes, more than %d", PyDict_GET_SIZE(d),
                     HALO_NAME_ATTRS_MAX);
        return false;
    }
    PyObject *k, *v;
    Py_ssize_t pos = 0;
    while (PyDict_Next(d, &pos, &k, &v)) {
        if (!PyUnicode_Check(k) || !PyUnicode_Check(v)) {
            PyErr_SetString(PyExc_TypeError, "name_register(): attributes must map str to str");
            return false;
        }
        halo_name_attr *a = &ret[(*ret_n)++];
        if (!(a->name = PyUnicode_AsUTF8(k)) || !(a->value = PyUnicode_AsUTF8(v)))
            return false;
    }
    return true;
}

static PyObject *name_register(Handle *self, PyObject *args, PyObject *kw) {
    static char *kwlist[] = {"context", "name", "ref", "attributes", "priority", NULL};
    const char *context, *name;
    PyObject *ref, *attrs = Py_None;
    unsigned priority = 0;
    if (!PyArg_ParseTupleAndKeywords(args, kw, "ssO|OI", kwlist, &context, &name, &ref, &attrs, &priority))
        return NULL;
    halo_name_attr a[HALO_NAME_ATTRS_MAX];
    size_t n;
    Py_buffer buf;
    if (!attrs_of(attrs, a, &n) || !comp_bytes_of(ref, &buf, "name_register", "ref"))
        return NULL;
    halo *h = comp_handle(self);
    int r = h ? COMP_CALL(self, halo_name_register(h, context, name, buf.buf, (size_t)buf.len, a, n, priority)) : 0;
    PyBuffer_Release(&buf);
    if (!h)
        return NULL;
    if (r == -E2BIG)
        return PyErr_Format(PyExc_ValueError,
                            "name_register(): ref over %d bytes, or an attribute over its limits (name %d bytes, "
                            "value %d)",
                            HALO_NAME_REF_MAX, HALO_NAME_ATTR_NAME_MAX, HALO_NAME_ATTR_VALUE_MAX);
    if (r < 0)
        return name_error(r, "name_register", context, name);
    Py_RETURN_NONE;
}

static PyObject *name_deregister(Handle *self, PyObject *args, PyObject *kw) {
    static char *kwlist[] = {"context", "name", NULL};
    const char *context, *name;
    if (!PyArg_ParseTupleAndKeywords(args, kw, "ss", kwlist, &context, &name))
        return NULL;
    halo *h = comp_handle(self);
    if (!h)
        return NULL;
    int r = COMP_CALL(self, halo_name_deregister(h, context, name));
    if (r < 0)
        return name_error(r, "name_deregister", context, name);
    Py_RETURN_NONE;
}

static PyObject *name_component_deregister(Handle *self, PyObject *unused) {
    halo *h = comp_handle(self);
    if (!h)
        return NULL;
    int r = COMP_CALL(self, halo_name_component_deregister(h));
    if (r < 0)
        return comp_raise(r, "name_component_deregister");
    Py_RETURN_NONE;
}

static PyObject *entry_object(const void *item) {
    const halo_name_entry *e = item;
    PyObject *attrs = PyDict_New();
    for (size_t i = 0; attrs && i < e->n_attrs; i++) {
        PyObject *v = PyUnicode_FromString(e->attrs[i].value);
        if (!v || PyDict_SetItemString(attrs, e->attrs[i].name, v) < 0)
            Py_CLEAR(attrs);
        Py_XDECREF(v);
    }
    PyObject *vals[] = {PyUnicode_FromString(e->context),
                        PyUnicode_FromString(e->name),
                        PyBytes_FromStringAndSize(e->ref, (Py_ssize_t)e->ref_len),
                        attrs,
                        PyLong_FromUnsignedLong(e->priority),
                        PyUnicode_FromString(e->comp),
                        PyUnicode_FromString(e->node)};
    return comp_record(EntryType, vals, 7);
}

static PyObject *name_lookup(Handle *self, PyObject *args, PyObject *kw) {
    static char *kwlist[] = {"context", "name", "all", NULL};
    const char *context, *name;
    int all = 0;
    if (!PyArg_ParseTupleAndKeywords(args, kw, "ss|p", kwlist, &context, &name, &all))
        return NULL;
    halo *h = comp_handle(self);
    if (!h)
        return NULL;
    halo_name_entry *e = NULL;
    size_t n = 0;
    int r = COMP_CALL(self, halo_name_lookup(h, context, name, all ? HALO_NAME_LOOKUP_ALL : 0, &e, &n));
    if (r < 0)
        return name_error(r, "name_lookup", context, name);
    PyObject *list = comp_list(e, sizeof(*e), n, entry_object);
    free(e);
    return list;
}

static PyObject *track_key(unsigned track) {
    return Py_BuildValue("(sk)", "name", (unsigned long)track);
}

static void on_track(halo *h, unsigned track, halo_name_change change, halo_name_reason reason,
                     const halo_name_entry *entry, void *userdata) {
    Handle *self = userdata;
    PyGILState_STATE g = PyGILState_Ensure();
    PyObject *key = track_key(track);
    PyObject *cb = comp_cb_get(self, key);
    if (cb) {
        PyObject *e = entry ? entry_object(entry) : Py_NewRef(Py_None);
        comp_invoke(self, cb,
                    e ? Py_BuildValue("(OkiiN)", self, (unsigned long)track, (int)change, (int)reason, e) : NULL);
    }
    Py_XDECREF(cb);
    Py_XDECREF(key);
    PyGILState_Release(g);
}

static PyObject *name_track(Handle *self, PyObject *args, PyObject *kw) {
    static char *kwlist[] = {"context", "name", "callback", NULL};
    const char *context, *name;
    PyObject *cb;
    if (!PyArg_ParseTupleAndKeywords(args, kw, "ssO", kwlist, &context, &name, &cb))
        return NULL;
    if (!PyCallable_Check(cb))
        return PyErr_Format(PyExc_TypeError, "name_track(): callback must be callable, not %.100s",
                            Py_TYPE(cb)->tp_name);
    halo *h = comp_handle(self);
    if (!h)
        return NULL;
    unsigned track = 0;
    /* Changes run only from dispatch(), which needs the GIL held here: the callable is in cbs first. */
    int r = COMP_CALL(self, halo_name_track(h, context, name, on_track, self, &track));
    if (r < 0)
        return name_error(r, "name_track", context, name);
    PyObject *key = track_key(track);
    if (!key || PyDict_SetItem(self->cbs, key, cb) < 0) {
        Py_XDECREF(key);
        (void)COMP_CALL(self, halo_name_track_stop(h, track));
        return NULL;
    }
    Py_DECREF(key);
    return PyLong_FromUnsignedLong(track);
}

static PyObject *name_track_stop(Handle *self, PyObject *args, PyObject *kw) {
    return comp_cb_stop(self, args, kw, "name_track_stop", "track", halo_name_track_stop, track_key);
}

#define KW (METH_VARARGS | METH_KEYWORDS)
PyMethodDef comp_name_methods[] = {
    {"name_register", (PyCFunction)(void (*)(void))name_register, KW,
     "name_register($self, /, context, name, ref, attributes=None, priority=0)\n--\n\nRegisters name in context "
     "for this handle's registered component, with ref (bytes, or str\nas UTF-8) and attributes (a dict of str); "
     "gone when the component fails or its node dies."},
    {"name_deregister", (PyCFunction)(void (*)(void))name_deregister, KW,
     "name_deregister($self, /, context, name)\n--\n\nRemoves this component's registration of name."},
    {"name_component_deregister", (PyCFunction)name_component_deregister, METH_NOARGS,
     "name_component_deregister($self, /)\n--\n\nRemoves every registration of this component."},
    {"name_lookup", (PyCFunction)(void (*)(void))name_lookup, KW,
     "name_lookup($self, /, context, name, all=False)\n--\n\n[NameEntry, ...] of name's live registrations, best "
     "first: only the best unless all\n(none: Error with errno ENOENT)."},
    {"name_track", (PyCFunction)(void (*)(void))name_track, KW,
     "name_track($self, /, context, name, callback)\n--\n\ncallback(handle, track, change, reason, NameEntry) from "
     "dispatch() for every change of\nname's registrations (NAME_ADDED, NAME_REMOVED; NAME_REGISTERED, ...).  "
     "Returns track."},
    {"name_track_stop", (PyCFunction)(void (*)(void))name_track_stop, KW,
     "name_track_stop($self, /, track)\n--\n\nEnds a track."},
    {NULL, NULL, 0, NULL},
};

static PyStructSequence_Field entry_fields[] = {{"context", NULL},
                                                {"name", NULL},
                                                {"ref", "the object reference, bytes"},
                                                {"attributes", "dict of str"},
                                                {"priority", "the highest wins a lookup"},
                                                {"comp", "the component that registered it"},
                                                {"node", "its node"},
                                                {NULL, NULL}};
static PyStructSequence_Desc entry_desc = {"halo.component.NameEntry", "A registration of the name service.",
                                           entry_fields, 7};

int comp_name_init(PyObject *module) {
    EntryType = PyStructSequence_NewType(&entry_desc);
    if (!EntryType || PyModule_AddObjectRef(module, "NameEntry", (PyObject *)EntryType) < 0)
        return -1;
    static const comp_constant constants[] = {
        {"NAME_ADDED", HALO_NAME_ADDED},
        {"NAME_REMOVED", HALO_NAME_REMOVED},
        {"NAME_REGISTERED", HALO_NAME_REGISTERED},
        {"NAME_DEREGISTERED", HALO_NAME_DEREGISTERED},
        {"NAME_COMPONENT_FAILED", HALO_NAME_COMPONENT_FAILED},
        {"NAME_NODE_LEFT", HALO_NAME_NODE_LEFT},
        {"NAME_REF_MAX", HALO_NAME_REF_MAX},
    };
    if (comp_add_constants(module, constants, sizeof(constants) / sizeof(constants[0])) < 0)
        return -1;
    return PyModule_AddStringConstant(module, "NAME_CONTEXT_ENTRYPOINT", HALO_NAME_CONTEXT_ENTRYPOINT);
}
