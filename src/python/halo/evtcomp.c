/* SPDX-License-Identifier: MIT */
/* halo.component's event channels: Handle.evt_open(), evt_publish(), evt_subscribe(), ... (docs/python.md). */
#include "comp.h"
#include "halo/events.h"

#include <errno.h>

static PyTypeObject *EventType;

/* Raises for r of fn: ValueError for what the caller got wrong, else Error. */
static PyObject *evt_error(int r, const char *fn, const char *channel) {
    if (r == -EINVAL)
        return PyErr_Format(PyExc_ValueError,
                            "%s(): bad channel name '%s' (1 to 255 letters, digits and \"-_.:@\"), scope, or "
                            "count of fields or filters (at most %d)",
                            fn, channel, HALO_EVT_FIELDS_MAX);
    if (r == -EMSGSIZE)
        return PyErr_Format(PyExc_ValueError,
                            "%s(): a field or filter over %d bytes, a payload over %d, or a retention over %u ms", fn,
                            HALO_EVT_FIELD_MAX, HALO_EVT_PAYLOAD_MAX, HALO_EVT_RETENTION_MAX_MS);
    return comp_raise(r, fn);
}

static PyObject *evt_open(Handle *self, PyObject *args, PyObject *kw) {
    static char *kwlist[] = {"channel", "scope", NULL};
    const char *channel;
    int scope = HALO_EVT_CLUSTER;
    if (!PyArg_ParseTupleAndKeywords(args, kw, "s|i", kwlist, &channel, &scope))
        return NULL;
    halo *h = comp_handle(self);
    if (!h)
        return NULL;
    int r = COMP_CALL(self, halo_evt_open(h, channel, (halo_evt_scope)scope));
    if (r < 0)
        return evt_error(r, "evt_open", channel);
    Py_RETURN_NONE;
}

/* Up to HALO_EVT_FIELDS_MAX buffers of a sequence's items, released together. */
typedef struct {
    Py_buffer b[2 * HALO_EVT_FIELDS_MAX];
    size_t n;
} buffers;

static void buffers_release(buffers *bs) {
    for (size_t i = 0; i < bs->n; i++)
        PyBuffer_Release(&bs->b[i]);
    bs->n = 0;
}

static const Py_buffer *buffers_add(buffers *bs, PyObject *o, const char *fn, const char *what) {
    if (!comp_bytes_of(o, &bs->b[bs->n], fn, what))
        return NULL;
    return &bs->b[bs->n++];
}

/* The items of seq, at most HALO_EVT_FIELDS_MAX of them (a new reference), or NULL with an exception set. */
static PyObject *items_of(PyObject *seq, const char *fn, const char *what) {
    /* A str or bytes is a field, not a sequence of one-character fields. */
    PyObject *fast = PyUnicode_Check(seq) || PyObject_CheckBuffer(seq) ? NULL : PySequence_Fast(seq, "");
    if (!fast) {
        PyErr_Clear();
        PyErr_Format(PyExc_TypeError, "%s(): %s must be a sequence, not %.100s", fn, what, Py_TYPE(seq)->tp_name);
        return NULL;
    }
    if (PySequence_Fast_GET_SIZE(fast) > HALO_EVT_FIELDS_MAX) {
        PyErr_Format(PyExc_ValueError, "%s(): %zd %s, more than %d", fn, PySequence_Fast_GET_SIZE(fast), what,
                     HALO_EVT_FIELDS_MAX);
        Py_DECREF(fast);
        return NULL;
    }
    return fast;
}

static PyObject *evt_publish(Handle *self, PyObject *args, PyObject *kw) {
    static char *kwlist[] = {"channel", "pattern", "payload", "scope", "retention_ms", NULL};
    const char *channel;
    PyObject *pattern, *payload = NULL;
    int scope = HALO_EVT_CLUSTER;
    unsigned retention = 0;
    if (!PyArg_ParseTupleAndKeywords(args, kw, "sO|O$iI", kwlist, &channel, &pattern, &payload, &scope, &retention))
        return NULL;
    PyObject *fast = items_of(pattern, "evt_publish", "pattern fields");
    if (!fast)
        return NULL;
    buffers bs = {.n = 0};
    halo_evt_field fields[HALO_EVT_FIELDS_MAX];
    Py_ssize_t n = PySequence_Fast_GET_SIZE(fast);
    PyObject *ret = NULL;
    for (Py_ssize_t i = 0; i < n; i++) {
        const Py_buffer *b = buffers_add(&bs, PySequence_Fast_GET_ITEM(fast, i), "evt_publish", "a pattern field");
        if (!b)
            goto out;
        fields[i] = (halo_evt_field){b->buf, (size_t)b->len};
    }
    const Py_buffer *p = payload ? buffers_add(&bs, payload, "evt_publish", "payload") : NULL;
    if (payload && !p)
        goto out;
    halo *h = comp_handle(self);
    if (!h)
        goto out;
    uint64_t id = 0;
    int r = COMP_CALL(self, halo_evt_publish(h, channel, (halo_evt_scope)scope, fields, (size_t)n, p ? p->buf : NULL,
                                             p ? (size_t)p->len : 0, retention, &id));
    ret = r < 0 ? evt_error(r, "evt_publish", channel) : PyLong_FromUnsignedLongLong(id);
out:
    buffers_release(&bs);
    Py_DECREF(fast);
    return ret;
}

static PyObject *sub_key(unsigned sub) {
    return Py_BuildValue("(sk)", "evt", (unsigned long)sub);
}

static PyObject *event_object(const halo_evt_event *ev) {
    PyObject *pattern = PyTuple_New((Py_ssize_t)ev->n_pattern);
    for (size_t i = 0; pattern && i < ev->n_pattern; i++) {
        PyObject *f = PyBytes_FromStringAndSize(ev->pattern[i].data, (Py_ssize_t)ev->pattern[i].len);
        if (!f)
            Py_CLEAR(pattern);
        else
            PyTuple_SET_ITEM(pattern, (Py_ssize_t)i, f);
    }
    PyObject *vals[] = {PyLong_FromUnsignedLong(ev->subscription),
                        PyUnicode_FromString(ev->channel),
                        pattern,
                        PyBytes_FromStringAndSize(ev->payload, (Py_ssize_t)ev->payload_len),
                        PyUnicode_FromString(ev->publisher),
                        PyLong_FromUnsignedLongLong(ev->pub_seq),
                        PyLong_FromUnsignedLongLong(ev->hlc),
                        PyLong_FromUnsignedLongLong(ev->lost),
                        PyLong_FromUnsignedLong(ev->retention_ms)};
    return comp_record(EventType, vals, 9);
}

static void on_event(halo *h, const halo_evt_event *ev, void *userdata) {
    Handle *self = userdata;
    PyGILState_STATE g = PyGILState_Ensure();
    PyObject *key = sub_key(ev->subscription);
    PyObject *cb = comp_cb_get(self, key);
    if (cb) {
        PyObject *e = event_object(ev);
        comp_invoke(self, cb, e ? Py_BuildValue("(ON)", self, e) : NULL);
    }
    Py_XDECREF(cb);
    Py_XDECREF(key);
    PyGILState_Release(g);
}

/* A filter: FILTER_TYPE, or (FILTER_TYPE[, value[, mask]]) with value and mask bytes or str. */
static bool filter_of(PyObject *o, buffers *bs, halo_evt_filter *ret) {
    PyObject *type = o, *value = NULL, *mask = NULL;
    if (PyTuple_Check(o) && !PyArg_UnpackTuple(o, "filter", 1, 3, &type, &value, &mask))
        return false;
    long t = PyLong_Check(type) ? PyLong_AsLong(type) : -1;
    if (t < HALO_EVT_PASS_ALL || t > HALO_EVT_MASK) {
        PyErr_Clear();
        PyErr_SetString(PyExc_TypeError, "evt_subscribe(): a filter must be EVT_PASS_ALL, EVT_PREFIX, EVT_SUFFIX, "
                                         "EVT_EXACT or EVT_MASK, or a tuple (type, value[, mask])");
        return false;
    }
    const Py_buffer *v = value ? buffers_add(bs, value, "evt_subscribe", "a filter's value") : NULL;
    const Py_buffer *m = v && mask ? buffers_add(bs, mask, "evt_subscribe", "a filter's mask") : NULL;
    if ((value && !v) || (mask && !m))
        return false;
    if (m && m->len != v->len) {
        PyErr_SetString(PyExc_ValueError, "evt_subscribe(): a filter's mask must be as long as its value");
        return false;
    }
    *ret = (halo_evt_filter){(halo_evt_filter_type)t, v ? v->buf : NULL, v ? (size_t)v->len : 0, m ? m->buf : NULL};
    return true;
}

static PyObject *evt_subscribe(Handle *self, PyObject *args, PyObject *kw) {
    static char *kwlist[] = {"channel", "filters", "callback", "scope", NULL};
    const char *channel;
    PyObject *filters, *cb;
    int scope = HALO_EVT_CLUSTER;
    if (!PyArg_ParseTupleAndKeywords(args, kw, "sOO|$i", kwlist, &channel, &filters, &cb, &scope))
        return NULL;
    if (!PyCallable_Check(cb))
        return PyErr_Format(PyExc_TypeError, "evt_subscribe(): callback must be callable, not %.100s",
                            Py_TYPE(cb)->tp_name);
    PyObject *fast = items_of(filters, "evt_subscribe", "filters");
    if (!fast)
        return NULL;
    buffers bs = {.n = 0};
    halo_evt_filter f[HALO_EVT_FIELDS_MAX];
    Py_ssize_t n = PySequence_Fast_GET_SIZE(fast);
    PyObject *ret = NULL;
    for (Py_ssize_t i = 0; i < n; i++)
        if (!filter_of(PySequence_Fast_GET_ITEM(fast, i), &bs, &f[i]))
            goto out;
    halo *h = comp_handle(self);
    if (!h)
        goto out;
    unsigned sub = 0;
    /* Events run only from dispatch(), which needs the GIL held here: the callable is in cbs first. */
    int r = COMP_CALL(self, halo_evt_subscribe(h, channel, (halo_evt_scope)scope, f, (size_t)n, on_event, self, &sub));
    if (r < 0) {
        ret = evt_error(r, "evt_subscribe", channel);
        goto out;
    }
    PyObject *key = sub_key(sub);
    if (!key || PyDict_SetItem(self->cbs, key, cb) < 0)
        (void)COMP_CALL(self, halo_evt_unsubscribe(h, sub));
    else
        ret = PyLong_FromUnsignedLong(sub);
    Py_XDECREF(key);
out:
    buffers_release(&bs);
    Py_DECREF(fast);
    return ret;
}

static PyObject *evt_unsubscribe(Handle *self, PyObject *args, PyObject *kw) {
    return comp_cb_stop(self, args, kw, "evt_unsubscribe", "sub", halo_evt_unsubscribe, sub_key);
}

#define KW (METH_VARARGS | METH_KEYWORDS)
PyMethodDef comp_evt_methods[] = {
    {"evt_open", (PyCFunction)(void (*)(void))evt_open, KW,
     "evt_open($self, /, channel, scope=EVT_CLUSTER)\n--\n\nOpens (creates if new) a channel: EVT_CLUSTER, or "
     "EVT_LOCAL for this node only."},
    {"evt_publish", (PyCFunction)(void (*)(void))evt_publish, KW,
     "evt_publish($self, /, channel, pattern, payload=b'', *, scope=EVT_CLUSTER, retention_ms=0)\n--\n\nPublishes "
     "an event: pattern a sequence of fields (bytes, or str as UTF-8), payload bytes or str.\nReturns its pub_seq."},
    {"evt_subscribe", (PyCFunction)(void (*)(void))evt_subscribe, KW,
     "evt_subscribe($self, /, channel, filters, callback, *, scope=EVT_CLUSTER)\n--\n\ncallback(handle, Event) "
     "from dispatch() for each event whose pattern passes filters: filter i,\n(type, value) or (EVT_MASK, value, "
     "mask) or EVT_PASS_ALL, applies to field i.  Returns sub."},
    {"evt_unsubscribe", (PyCFunction)(void (*)(void))evt_unsubscribe, KW,
     "evt_unsubscribe($self, /, sub)\n--\n\nEnds a subscription."},
    {NULL, NULL, 0, NULL},
};

static PyStructSequence_Field event_fields[] = {{"subscription", NULL},
                                                {"channel", NULL},
                                                {"pattern", "tuple of bytes"},
                                                {"payload", "bytes"},
                                                {"publisher", "'<node>/<pid>'"},
                                                {"pub_seq", "increasing per channel and publishing node"},
                                                {"hlc", "when it was published (hybrid logical clock)"},
                                                {"lost", "events of this subscription dropped before this one"},
                                                {"retention_ms", NULL},
                                                {NULL, NULL}};
static PyStructSequence_Desc event_desc = {"halo.component.Event", "An event of a channel's subscription.",
                                           event_fields, 9};

int comp_evt_init(PyObject *module) {
    EventType = PyStructSequence_NewType(&event_desc);
    if (!EventType || PyModule_AddObjectRef(module, "Event", (PyObject *)EventType) < 0)
        return -1;
    static const comp_constant constants[] = {
        {"EVT_LOCAL", HALO_EVT_LOCAL},         {"EVT_CLUSTER", HALO_EVT_CLUSTER},
        {"EVT_PASS_ALL", HALO_EVT_PASS_ALL},   {"EVT_PREFIX", HALO_EVT_PREFIX},
        {"EVT_SUFFIX", HALO_EVT_SUFFIX},       {"EVT_EXACT", HALO_EVT_EXACT},
        {"EVT_MASK", HALO_EVT_MASK},           {"EVT_PAYLOAD_MAX", HALO_EVT_PAYLOAD_MAX},
        {"EVT_FIELD_MAX", HALO_EVT_FIELD_MAX}, {"EVT_FIELDS_MAX", HALO_EVT_FIELDS_MAX},
    };
    return comp_add_constants(module, constants, sizeof(constants) / sizeof(constants[0]));
}
