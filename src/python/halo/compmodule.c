/* SPDX-License-Identifier: MIT */
/* halo.component: libhalo's component API for Python (docs/python.md); the CDB half is in cdbcomp.c. */
#include "comp.h"
#include "halo/log.h"

#include <errno.h>
#include <poll.h>
#include <stdlib.h>
#include <sys/eventfd.h>
#include <unistd.h>

static PyObject *CompError;
static PyTypeObject HandleType;
static PyTypeObject *CSIType, *MemberType, *ObjectStateType;

PyObject *comp_raise(int r, const char *fn) {
    const char *text = halo_strerror(r);
    PyObject *e = PyObject_CallFunction(CompError, "s", "");
    if (!e)
        return NULL;
    PyObject *msg = PyUnicode_FromFormat("%s: %s (%d)", fn, text, r);
    PyObject *args = msg ? PyTuple_Pack(1, msg) : NULL;
    PyObject *vals[] = {args, PyLong_FromLong(r), PyLong_FromLong(-r), PyUnicode_FromString(text),
                        PyUnicode_FromString(fn)};
    const char *names[] = {"args", "code", "errno", "strerror", "function"};
    bool ok = true;
    for (size_t i = 0; i < sizeof(vals) / sizeof(vals[0]); i++) {
        ok = ok && vals[i] && PyObject_SetAttrString(e, names[i], vals[i]) == 0;
        Py_XDECREF(vals[i]);
    }
    Py_XDECREF(msg);
    if (ok)
        PyErr_SetObject(CompError, e);
    Py_DECREF(e);
    return NULL;
}

void comp_leave(Handle *self) {
    if (--self->busy > 0 || !self->closing)
        return;
    halo *h = self->closing;
    self->closing = NULL;
    Py_BEGIN_ALLOW_THREADS halo_close(h);
    Py_END_ALLOW_THREADS
}

halo *comp_handle(Handle *self) {
    if (!self->h)
        PyErr_SetString(PyExc_ValueError, "the handle is closed");
    return self->h;
}

void comp_keep_error(Handle *self, PyObject *callable) {
    if (self->exc_type) {
        /* Only one exception can leave dispatch(): a later one goes to sys.unraisablehook. */
        PyErr_WriteUnraisable(callable);
        return;
    }
    PyErr_Fetch(&self->exc_type, &self->exc_value, &self->exc_tb);
    PyErr_NormalizeException(&self->exc_type, &self->exc_value, &self->exc_tb);
    if (self->exc_tb)
        PyException_SetTraceback(self->exc_value, self->exc_tb);
}

PyObject *comp_invoke_result(Handle *self, PyObject *callable, PyObject *args) {
    self->ncalls++;
    PyObject *r = args ? PyObject_Call(callable, args, NULL) : NULL;
    Py_XDECREF(args);
    if (!r)
        comp_keep_error(self, callable);
    return r;
}

void comp_invoke(Handle *self, PyObject *callable, PyObject *args) {
    Py_XDECREF(comp_invoke_result(self, callable, args));
}

PyObject *comp_list(const void *items, size_t size, size_t n, PyObject *(*make)(const void *item)) {
    PyObject *list = PyList_New((Py_ssize_t)n);
    for (size_t i = 0; list && i < n; i++) {
        PyObject *o = make((const char *)items + i * size);
        if (!o) {
            Py_CLEAR(list);
            break;
        }
        PyList_SET_ITEM(list, (Py_ssize_t)i, o);
    }
    return list;
}

bool comp_txn_live(const void *t, const char *fn) {
    if (t)
        return true;
    PyErr_Format(PyExc_ValueError, "%s(): the transaction was already committed or aborted", fn);
    return false;
}

int comp_add_constants(PyObject *module, const comp_constant *constants, size_t n) {
    for (size_t i = 0; i < n; i++)
        if (PyModule_AddIntConstant(module, constants[i].name, constants[i].value) < 0)
            return -1;
    return 0;
}

PyObject *comp_cb_stop(Handle *self, PyObject *args, PyObject *kw, const char *fn, char *argname,
                       int (*stop)(halo *, unsigned), PyObject *(*key)(unsigned)) {
    char *kwlist[] = {argname, NULL};
    unsigned int id;
    if (!PyArg_ParseTupleAndKeywords(args, kw, "I", kwlist, &id))
        return NULL;
    halo *h = comp_handle(self);
    if (!h)
        return NULL;
    int r = COMP_CALL(self, stop(h, id));
    if (r < 0)
        return comp_raise(r, fn);
    PyObject *k = key(id);
    if (!k || PyDict_DelItem(self->cbs, k) < 0)
        PyErr_Clear();
    Py_XDECREF(k);
    Py_RETURN_NONE;
}

PyObject *comp_cb_get(Handle *self, PyObject *key) {
    PyObject *cb = key && self->cbs ? PyDict_GetItemWithError(self->cbs, key) : NULL;
    if (!cb && PyErr_Occurred())
        PyErr_WriteUnraisable((PyObject *)self);
    return Py_XNewRef(cb); /* the callback may drop its own entry */
}

PyObject *comp_record(PyTypeObject *type, PyObject *const *vals, int n) {
    PyObject *o = PyStructSequence_New(type);
    bool ok = o != NULL;
    for (int i = 0; i < n; i++) {
        ok = ok && vals[i];
        if (o)
            PyStructSequence_SetItem(o, i, vals[i] ? vals[i] : Py_NewRef(Py_None));
        else
            Py_XDECREF(vals[i]);
    }
    if (!ok)
        Py_CLEAR(o);
    return o;
}

/* ---- callbacks from libhalo: run inside halo_dispatch(), with the GIL released there ---- */

/* Takes the GIL and calls slot's callable with fmt's values after the handle, if it is set. */
static void trampoline(Handle *self, int slot, const char *fmt, ...) {
    PyGILState_STATE g = PyGILState_Ensure();
    PyObject *callable = self->cb[slot];
    if (callable) {
        Py_INCREF(callable); /* the callback may replace it or close the handle */
        va_list ap;
        va_start(ap, fmt);
        PyObject *rest = Py_VaBuildValue(fmt, ap);
        va_end(ap);
        PyObject *head = rest ? PyTuple_Pack(1, (PyObject *)self) : NULL;
        PyObject *args = head ? PySequence_Concat(head, rest) : NULL;
        Py_XDECREF(head);
        Py_XDECREF(rest);
        comp_invoke(self, callable, args);
        Py_DECREF(callable);
    }
    PyGILState_Release(g);
}

/* str, or None for NULL: a new reference or NULL. */
static PyObject *str_or_none(const char *s) {
    return s ? PyUnicode_FromString(s) : Py_NewRef(Py_None);
}

static PyObject *csi_object(const halo_csi_descriptor *csi) {
    PyObject *attrs = PyDict_New();
    for (size_t i = 0; attrs && i < csi->n_attrs; i++) {
        PyObject *v = PyUnicode_FromString(csi->attrs[i].value);
        if (!v || PyDict_SetItemString(attrs, csi->attrs[i].name, v) < 0)
            Py_CLEAR(attrs);
        Py_XDECREF(v);
    }
    if (!attrs)
        return NULL;
    PyObject *vals[] = {PyLong_FromUnsignedLong(csi->flags), str_or_none(csi->csi_name),
                        str_or_none(csi->si_name),           attrs,
                        PyLong_FromLong(csi->transition),    str_or_none(csi->active_comp)};
    return comp_record(CSIType, vals, 6);
}

static void on_csi_set(halo *h, halo_invocation inv, const char *comp, halo_ha_state state,
                       const halo_csi_descriptor *csi, void *userdata) {
    Handle *self = userdata;
    PyGILState_STATE g = PyGILState_Ensure();
    PyObject *c = csi_object(csi);
    if (c)
        trampoline(self, CB_CSI_SET, "(KsiN)", (unsigned long long)inv, comp, (int)state, c);
    else /* the descriptor could not be built: the error is the callback's */
        comp_invoke(self, self->cb[CB_CSI_SET], NULL);
    PyGILState_Release(g);
}

static void on_csi_remove(halo *h, halo_invocation inv, const char *comp, const char *csi_name, unsigned flags,
                          void *userdata) {
    trampoline(userdata, CB_CSI_REMOVE, "(Kszk)", (unsigned long long)inv, comp, csi_name, (unsigned long)flags);
}

static void on_terminate(halo *h, halo_invocation inv, const char *comp, void *userdata) {
    trampoline(userdata, CB_TERMINATE, "(Ks)", (unsigned long long)inv, comp);
}

static void on_healthcheck(halo *h, halo_invocation inv, const char *comp, const char *key, void *userdata) {
    trampoline(userdata, CB_HEALTHCHECK, "(Ksz)", (unsigned long long)inv, comp, key);
}

static void on_pg_track(halo *h, const char *csi_name, const halo_pg_member *members, size_t n, int error,
                        void *userdata) {
    Handle *self = userdata;
    PyGILState_STATE g = PyGILState_Ensure();
    PyObject *list = PyList_New((Py_ssize_t)n);
    for (size_t i = 0; list && i < n; i++) {
        PyObject *vals[] = {PyUnicode_FromString(members[i].comp_name), PyLong_FromLong(members[i].ha_state),
                            PyLong_FromLong(members[i].change)};
        PyObject *m = comp_record(MemberType, vals, 3);
        if (!m) {
            Py_CLEAR(list);
            break;
        }
        PyList_SET_ITEM(list, (Py_ssize_t)i, m);
    }
    if (list)
        trampoline(self, CB_PG_TRACK, "(sNi)", csi_name, list, error);
    else
        comp_invoke(self, self->cb[CB_PG_TRACK], NULL);
    PyGILState_Release(g);
}

static void on_link_state(halo *h, halo_link_state state, int error, void *userdata) {
    trampoline(userdata, CB_LINK_STATE, "(ii)", (int)state, error);
}

static PyObject *object_state(const void *item) {
    const halo_object_state *s = item;
    PyObject *vals[] = {PyUnicode_FromString(s->object), PyUnicode_FromString(s->state),
                        PyLong_FromUnsignedLongLong(s->hlc), PyLong_FromUnsignedLongLong(s->seq)};
    return comp_record(ObjectStateType, vals, 4);
}

static PyObject *object_states(const halo_object_state *states, size_t n) {
    return comp_list(states, sizeof(*states), n, object_state);
}

static void on_object_states(halo *h, const halo_object_state *states, size_t n, void *userdata) {
    Handle *self = userdata;
    PyGILState_STATE g = PyGILState_Ensure();
    PyObject *list = object_states(states, n);
    if (list)
        trampoline(self, CB_OBJECT_STATES, "(N)", list);
    else
        comp_invoke(self, self->cb[CB_OBJECT_STATES], NULL);
    PyGILState_Release(g);
}

static void on_recovery(halo *h, const halo_recovery_note *note, void *userdata) {
    Handle *self = userdata;
    PyGILState_STATE g = PyGILState_Ensure();
    PyObject *parts = PyList_New((Py_ssize_t)note->n_participants);
    for (size_t i = 0; parts && i < note->n_participants; i++) {
        const halo_participant *p = &note->participants[i];
        PyObject *d = Py_BuildValue("{s:s, s:s, s:s, s:s}", "object", p->object, "name", p->name, "node", p->node,
                                    "state", p->state);
        if (!d) {
            Py_CLEAR(parts);
            break;
        }
        PyList_SET_ITEM(parts, (Py_ssize_t)i, d);
    }
    PyObject *events = parts ? object_states(note->events, note->n_events) : NULL;
    PyObject *d = events ? Py_BuildValue("{s:K, s:s, s:s, s:N, s:K, s:O, s:N}", "epoch",
                                         (unsigned long long)note->epoch, "state", note->state, "reason", note->reason,
                                         "events", events, "nr_failures", (unsigned long long)note->nr_failures, "last",
                                         note->last ? Py_True : Py_False, "participants", parts)
                         : NULL;
    if (!events)
        Py_XDECREF(parts);
    if (d)
        trampoline(self, CB_RECOVERY, "(N)", d);
    else
        comp_invoke(self, self->cb[CB_RECOVERY], NULL);
    PyGILState_Release(g);
}

/* ---- the Handle ---- */

static const char *const cb_names[CB_MAX] = {"csi_set",  "csi_remove", "terminate",     "healthcheck",
                                             "pg_track", "link_state", "object_states", "recovery"};

static PyObject *comp_open(PyObject *module, PyObject *args, PyObject *kw) {
    static char *kwlist[] = {"socket",   "csi_set",    "csi_remove",    "terminate", "healthcheck",
                             "pg_track", "link_state", "object_states", "recovery",  NULL};
    const char *path = NULL;
    PyObject *cb[CB_MAX] = {NULL};
    if (!PyArg_ParseTupleAndKeywords(args, kw, "|z$OOOOOOOO", kwlist, &path, &cb[0], &cb[1], &cb[2], &cb[3], &cb[4],
                                     &cb[5], &cb[6], &cb[7]))
        return NULL;
    for (int i = 0; i < CB_MAX; i++) {
        if (cb[i] == Py_None)
            cb[i] = NULL;
        if (cb[i] && !PyCallable_Check(cb[i]))
            return PyErr_Format(PyExc_TypeError, "open(): %s must be callable, not %.100s", cb_names[i],
                                Py_TYPE(cb[i])->tp_name);
    }
    Handle *self = PyObject_GC_New(Handle, &HandleType);
    if (!self)
        return NULL;
    self->h = NULL;
    self->exc_type = self->exc_value = self->exc_tb = NULL;
    self->ncalls = 0;
    self->busy = 0;
    self->closing = NULL;
    self->dispatch_thread = 0;
    self->wake_fd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
    for (int i = 0; i < CB_MAX; i++)
        self->cb[i] = Py_XNewRef(cb[i]);
    self->subs = PyDict_New();
    self->cbs = PyDict_New();
    PyObject_GC_Track(self);
    if (self->wake_fd < 0) {
        int r = -errno;
        Py_DECREF(self);
        return comp_raise(r, "open");
    }
    if (!self->subs || !self->cbs) {
        Py_DECREF(self);
        return NULL;
    }
    /* Only the callbacks given are set: halod sends object states only to a handle that asks. */
    const halo_callbacks c = {
        .csi_set = cb[CB_CSI_SET] ? on_csi_set : NULL,
        .csi_remove = cb[CB_CSI_REMOVE] ? on_csi_remove : NULL,
        .terminate = cb[CB_TERMINATE] ? on_terminate : NULL,
        .healthcheck = cb[CB_HEALTHCHECK] ? on_healthcheck : NULL,
        .pg_track = cb[CB_PG_TRACK] ? on_pg_track : NULL,
        .link_state = cb[CB_LINK_STATE] ? on_link_state : NULL,
        .object_states = cb[CB_OBJECT_STATES] ? on_object_states : NULL,
    };
    halo *h = NULL;
    int r;
    Py_BEGIN_ALLOW_THREADS r = halo_open(path, &c, self, &h);
    Py_END_ALLOW_THREADS if (r >= 0 && cb[CB_RECOVERY]) r = halo_recovery_set_callback(h, on_recovery);
    if (r < 0) {
        halo_close(h);
        Py_DECREF(self);
        return comp_raise(r, "open");
    }
    self->h = h;
    return (PyObject *)self;
}

static PyObject *handle_close(Handle *self, PyObject *unused) {
    halo *h = self->h;
    self->h = NULL;
    if (!h)
        Py_RETURN_NONE;
    /* From a callback, the dispatch() in progress on this thread is libhalo's to end (-EBADF). */
    bool in_callback = self->dispatch_thread == PyThread_get_thread_ident();
    if (self->busy > (in_callback ? 1u : 0u)) {
        self->closing = h;
        uint64_t one = 1;
        (void)!write(self->wake_fd, &one, sizeof(one));
        Py_RETURN_NONE;
    }
    Py_BEGIN_ALLOW_THREADS halo_close(h);
    Py_END_ALLOW_THREADS Py_RETURN_NONE;
}

static int handle_traverse(Handle *self, visitproc visit, void *arg) {
    for (int i = 0; i < CB_MAX; i++)
        Py_VISIT(self->cb[i]);
    Py_VISIT(self->subs);
    Py_VISIT(self->cbs);
    Py_VISIT(self->exc_type);
    Py_VISIT(self->exc_value);
    Py_VISIT(self->exc_tb);
    return 0;
}

static int handle_clear(Handle *self) {
    for (int i = 0; i < CB_MAX; i++)
        Py_CLEAR(self->cb[i]);
    Py_CLEAR(self->subs);
    Py_CLEAR(self->cbs);
    Py_CLEAR(self->exc_type);
    Py_CLEAR(self->exc_value);
    Py_CLEAR(self->exc_tb);
    return 0;
}

static void handle_dealloc(Handle *self) {
    PyObject_GC_UnTrack(self);
    halo_close(self->h); /* no callback can run any more: only dispatch() runs them; no call is busy */
    self->h = NULL;
    if (self->wake_fd >= 0)
        close(self->wake_fd);
    handle_clear(self);
    PyObject_GC_Del(self);
}

/* halo_dispatch() once; returns its result, the callbacks' count kept in self->ncalls. */
static int dispatch_once(Handle *self, halo *h, halo_dispatch_flags flags) {
    return COMP_CALL(self, halo_dispatch(h, flags));
}

/* Re-raises a callback's exception kept by comp_invoke(); true if there was one. */
static bool reraise(Handle *self) {
    if (!self->exc_type)
        return false;
    PyErr_Restore(self->exc_type, self->exc_value, self->exc_tb);
    self->exc_type = self->exc_value = self->exc_tb = NULL;
    return true;
}

/* BLOCKING: poll and dispatch until closed or the link is gone, stopping at a callback's exception or a signal's. */
static int dispatch_blocking(Handle *self) {
    for (;;) {
        halo *h = self->h;
        if (!h)
            return 0;
        struct pollfd p[2] = {{.fd = halo_fd(h), .events = POLLIN}, {.fd = self->wake_fd, .events = POLLIN}};
        int n = COMP_CALL(self, poll(p, 2, -1) < 0 ? -errno : 1);
        h = self->h; /* closed meanwhile by another thread: the wake fd said so */
        if (!h)
            return 0;
        if (n == -EINTR) {
            if (PyErr_CheckSignals() < 0)
                return -EINTR;
            continue;
        }
        int r = n < 0 ? n : dispatch_once(self, h, HALO_DISPATCH_ALL);
        if (r < 0 || self->exc_type)
            return r;
    }
}

static PyObject *handle_dispatch(Handle *self, PyObject *args, PyObject *kw) {
    static char *kwlist[] = {"flags", NULL};
    int flags = HALO_DISPATCH_ALL;
    if (!PyArg_ParseTupleAndKeywords(args, kw, "|i", kwlist, &flags))
        return NULL;
    if (flags < HALO_DISPATCH_ONE || flags > HALO_DISPATCH_BLOCKING)
        return PyErr_Format(PyExc_ValueError,
                            "dispatch(): flags must be DISPATCH_ONE, DISPATCH_ALL or "
                            "DISPATCH_BLOCKING, not %d",
                            flags);
    halo *h = comp_handle(self);
    if (!h)
        return NULL;
    Py_INCREF(self); /* a callback may drop the last other reference */
    self->ncalls = 0;
    unsigned long outer = self->dispatch_thread;
    self->dispatch_thread = PyThread_get_thread_ident();
    int r = flags == HALO_DISPATCH_BLOCKING ? dispatch_blocking(self) : dispatch_once(self, h, flags);
    self->dispatch_thread = outer;
    PyObject *ret = NULL;
    if (reraise(self) || (r == -EINTR && PyErr_Occurred()))
        ret = NULL;
    else if (r == -EBADF && !self->h) /* a callback closed the handle */
        ret = PyLong_FromUnsignedLong(self->ncalls);
    else if (r < 0)
        ret = comp_raise(r, "dispatch");
    else
        ret = PyLong_FromUnsignedLong(self->ncalls);
    Py_DECREF(self);
    return ret;
}

static PyObject *handle_fileno(Handle *self, PyObject *unused) {
    halo *h = comp_handle(self);
    return h ? PyLong_FromLong(halo_fd(h)) : NULL;
}

static PyObject *result(int r, const char *fn) {
    if (r < 0)
        return comp_raise(r, fn);
    Py_RETURN_NONE;
}

static PyObject *handle_register(Handle *self, PyObject *args, PyObject *kw) {
    static char *kwlist[] = {"comp", "proxy", NULL};
    const char *comp = NULL, *proxy = NULL;
    if (!PyArg_ParseTupleAndKeywords(args, kw, "|zz", kwlist, &comp, &proxy))
        return NULL;
    halo *h = comp_handle(self);
    if (!h)
        return NULL;
    if (!self->cb[CB_CSI_SET] || !self->cb[CB_TERMINATE])
        return PyErr_Format(PyExc_ValueError, "register(): open() needs the csi_set and terminate callbacks "
                                              "for a component halod can drive");
    return result(COMP_CALL(self, halo_register(h, comp, proxy)), "register");
}

/* A call f(h, comp) with comp an optional string. */
static PyObject *comp_call(Handle *self, PyObject *args, PyObject *kw, const char *fn, int (*f)(halo *, const char *)) {
    static char *kwlist[] = {"comp", NULL};
    const char *comp = NULL;
    if (!PyArg_ParseTupleAndKeywords(args, kw, "|z", kwlist, &comp))
        return NULL;
    halo *h = comp_handle(self);
    return h ? result(COMP_CALL(self, f(h, comp)), fn) : NULL;
}

static PyObject *handle_unregister(Handle *self, PyObject *args, PyObject *kw) {
    return comp_call(self, args, kw, "unregister", halo_unregister);
}

/* An invocation: a positive int. */
static bool invocation_of(PyObject *o, halo_invocation *ret) {
    if (!PyLong_Check(o)) {
        PyErr_Format(PyExc_TypeError, "invocation must be an int, not %.100s", Py_TYPE(o)->tp_name);
        return false;
    }
    unsigned long long v = PyLong_AsUnsignedLongLong(o);
    if ((v == (unsigned long long)-1 && PyErr_Occurred()) || v == 0) {
        PyErr_Clear();
        PyErr_SetString(PyExc_ValueError, "invocation must be a positive int given to a callback");
        return false;
    }
    *ret = v;
    return true;
}

/* error: 0 for success or a negative errno / HALO_E* value. */
static bool error_ok(int error, const char *fn) {
    if (error <= 0)
        return true;
    PyErr_Format(PyExc_ValueError, "%s(): error must be 0 or a negative errno value (such as -errno.EIO), not %d", fn,
                 error);
    return false;
}

static PyObject *answer(Handle *self, PyObject *args, PyObject *kw, const char *fn,
                        int (*f)(halo *, halo_invocation, int)) {
    static char *kwlist[] = {"invocation", "error", NULL};
    PyObject *inv_o;
    int error = 0;
    halo_invocation inv;
    if (!PyArg_ParseTupleAndKeywords(args, kw, "O|i", kwlist, &inv_o, &error) || !invocation_of(inv_o, &inv) ||
        !error_ok(error, fn))
        return NULL;
    halo *h = comp_handle(self);
    return h ? result(COMP_CALL(self, f(h, inv, error)), fn) : NULL;
}

static PyObject *handle_response(Handle *self, PyObject *args, PyObject *kw) {
    return answer(self, args, kw, "response", halo_response);
}

static PyObject *handle_quiescing_complete(Handle *self, PyObject *args, PyObject *kw) {
    return answer(self, args, kw, "quiescing_complete", halo_quiescing_complete);
}

static bool recovery_ok(int v, const char *fn) {
    if (v >= HALO_RECOVERY_NONE && v <= HALO_RECOVERY_NODE_FAILFAST)
        return true;
    PyErr_Format(PyExc_ValueError, "%s(): recovery must be one of the RECOVERY_* constants, not %d", fn, v);
    return false;
}

static PyObject *handle_healthcheck_start(Handle *self, PyObject *args, PyObject *kw) {
    static char *kwlist[] = {"key", "invoked", "recovery", "comp", NULL};
    const char *key = NULL, *comp = NULL;
    int invoked = HALO_HC_AMF_INVOKED, rec = HALO_RECOVERY_COMPONENT_FAILOVER;
    if (!PyArg_ParseTupleAndKeywords(args, kw, "|zii$z", kwlist, &key, &invoked, &rec, &comp) ||
        !recovery_ok(rec, "healthcheck_start"))
        return NULL;
    if (invoked != HALO_HC_AMF_INVOKED && invoked != HALO_HC_COMPONENT_INVOKED)
        return PyErr_Format(PyExc_ValueError,
                            "healthcheck_start(): invoked must be HC_AMF_INVOKED or "
                            "HC_COMPONENT_INVOKED, not %d",
                            invoked);
    halo *h = comp_handle(self);
    return h ? result(COMP_CALL(self, halo_healthcheck_start(h, comp, key, invoked, rec)), "healthcheck_start") : NULL;
}

static PyObject *handle_healthcheck_confirm(Handle *self, PyObject *args, PyObject *kw) {
    static char *kwlist[] = {"key", "result", "comp", NULL};
    const char *key = NULL, *comp = NULL;
    int res = 0;
    if (!PyArg_ParseTupleAndKeywords(args, kw, "|zi$z", kwlist, &key, &res, &comp) ||
        !error_ok(res, "healthcheck_confirm"))
        return NULL;
    halo *h = comp_handle(self);
    return h ? result(COMP_CALL(self, halo_healthcheck_confirm(h, comp, key, res)), "healthcheck_confirm") : NULL;
}

static PyObject *handle_healthcheck_stop(Handle *self, PyObject *args, PyObject *kw) {
    static char *kwlist[] = {"key", "comp", NULL};
    const char *key = NULL, *comp = NULL;
    if (!PyArg_ParseTupleAndKeywords(args, kw, "|z$z", kwlist, &key, &comp))
        return NULL;
    halo *h = comp_handle(self);
    return h ? result(COMP_CALL(self, halo_healthcheck_stop(h, comp, key)), "healthcheck_stop") : NULL;
}

static PyObject *handle_error_report(Handle *self, PyObject *args, PyObject *kw) {
    static char *kwlist[] = {"recovery", "comp", NULL};
    const char *comp = NULL;
    int rec = HALO_RECOVERY_COMPONENT_FAILOVER;
    if (!PyArg_ParseTupleAndKeywords(args, kw, "|i$z", kwlist, &rec, &comp) || !recovery_ok(rec, "error_report"))
        return NULL;
    halo *h = comp_handle(self);
    return h ? result(COMP_CALL(self, halo_error_report(h, comp, rec)), "error_report") : NULL;
}

static PyObject *handle_pg_track(Handle *self, PyObject *args, PyObject *kw) {
    static char *kwlist[] = {"csi", "flags", NULL};
    const char *csi;
    int flags = HALO_TRACK_CURRENT | HALO_TRACK_CHANGES;
    if (!PyArg_ParseTupleAndKeywords(args, kw, "s|i", kwlist, &csi, &flags))
        return NULL;
    if (!self->cb[CB_PG_TRACK])
        return PyErr_Format(PyExc_ValueError, "pg_track(): open() was given no pg_track callback");
    if (flags <= 0 || (flags & ~(HALO_TRACK_CURRENT | HALO_TRACK_CHANGES | HALO_TRACK_CHANGES_ONLY)) ||
        (flags & HALO_TRACK_CHANGES && flags & HALO_TRACK_CHANGES_ONLY))
        return PyErr_Format(PyExc_ValueError,
                            "pg_track(): flags must be TRACK_CURRENT, TRACK_CHANGES or "
                            "TRACK_CHANGES_ONLY (CURRENT may be or-ed with one of the others), "
                            "not %d",
                            flags);
    halo *h = comp_handle(self);
    return h ? result(COMP_CALL(self, halo_pg_track(h, csi, (unsigned)flags)), "pg_track") : NULL;
}

static PyObject *handle_pg_track_stop(Handle *self, PyObject *args, PyObject *kw) {
    static char *kwlist[] = {"csi", NULL};
    const char *csi;
    if (!PyArg_ParseTupleAndKeywords(args, kw, "s", kwlist, &csi))
        return NULL;
    halo *h = comp_handle(self);
    return h ? result(COMP_CALL(self, halo_pg_track_stop(h, csi)), "pg_track_stop") : NULL;
}

static PyObject *handle_ha_state_get(Handle *self, PyObject *args, PyObject *kw) {
    static char *kwlist[] = {"csi", "comp", NULL};
    const char *csi, *comp = NULL;
    if (!PyArg_ParseTupleAndKeywords(args, kw, "s|$z", kwlist, &csi, &comp))
        return NULL;
    halo *h = comp_handle(self);
    if (!h)
        return NULL;
    halo_ha_state st;
    int r = COMP_CALL(self, halo_ha_state_get(h, comp, csi, &st));
    return r < 0 ? comp_raise(r, "ha_state_get") : PyLong_FromLong(st);
}

static PyObject *handle_object_state_get(Handle *self, PyObject *args, PyObject *kw) {
    static char *kwlist[] = {"objects", NULL};
    PyObject *objs;
    if (!PyArg_ParseTupleAndKeywords(args, kw, "O", kwlist, &objs))
        return NULL;
    if (PyUnicode_Check(objs))
        return PyErr_Format(PyExc_TypeError, "object_state_get(): objects must be a list of names, not a str");
    PyObject *seq = PySequence_Fast(objs, "object_state_get(): objects must be a list of 'kind:name' strings");
    if (!seq)
        return NULL;
    Py_ssize_t n = PySequence_Fast_GET_SIZE(seq);
    if (n < 1 || n > 256) {
        Py_DECREF(seq);
        return PyErr_Format(PyExc_ValueError, "object_state_get(): give 1 to 256 objects, not %zd", n);
    }
    const char **names = PyMem_Calloc((size_t)n, sizeof(*names));
    halo_object_state *st = PyMem_Calloc((size_t)n, sizeof(*st));
    PyObject *ret = NULL;
    if (!names || !st) {
        PyErr_NoMemory();
        goto out;
    }
    for (Py_ssize_t i = 0; i < n; i++) {
        PyObject *o = PySequence_Fast_GET_ITEM(seq, i);
        if (!PyUnicode_Check(o)) {
            PyErr_Format(PyExc_TypeError, "object_state_get(): objects[%zd] must be a str, not %.100s", i,
                         Py_TYPE(o)->tp_name);
            goto out;
        }
        if (!(names[i] = PyUnicode_AsUTF8(o)))
            goto out;
    }
    halo *h = comp_handle(self);
    if (!h)
        goto out;
    int r = COMP_CALL(self, halo_object_state_get(h, names, (size_t)n, st));
    ret = r < 0 ? comp_raise(r, "object_state_get") : object_states(st, (size_t)n);
out:
    PyMem_Free(names);
    PyMem_Free(st);
    Py_DECREF(seq);
    return ret;
}

static PyObject *handle_entrypoint(Handle *self, PyObject *unused) {
    halo *h = comp_handle(self);
    if (!h)
        return NULL;
    char *json = NULL;
    unsigned retry = 0;
    int r = COMP_CALL(self, halo_entrypoint(h, &json, &retry));
    if (r < 0) {
        comp_raise(r, "entrypoint");
        if (r == -HALO_ETRYAGAIN) { /* the caller learns when to ask again */
            PyObject *t, *v, *tb;
            PyErr_Fetch(&t, &v, &tb);
            PyObject *ms = PyLong_FromUnsignedLong(retry);
            if (v && ms)
                PyObject_SetAttrString(v, "retry_msec", ms);
            Py_XDECREF(ms);
            PyErr_Restore(t, v, tb);
        }
        return NULL;
    }
    PyObject *mod = PyImport_ImportModule("json");
    PyObject *ret = mod ? PyObject_CallMethod(mod, "loads", "s", json) : NULL;
    Py_XDECREF(mod);
    free(json);
    return ret;
}

static PyObject *handle_process_event(Handle *self, PyObject *args, PyObject *kw) {
    static char *kwlist[] = {"event", "reason", NULL};
    int event;
    const char *reason = NULL;
    if (!PyArg_ParseTupleAndKeywords(args, kw, "i|z", kwlist, &event, &reason))
        return NULL;
    if (event < HALO_PROCESS_STARTING || event > HALO_PROCESS_RECOVERY_FAILED)
        return PyErr_Format(PyExc_ValueError,
                            "process_event(): event must be one of the PROCESS_* constants, "
                            "not %d",
                            event);
    halo *h = comp_handle(self);
    return h ? result(COMP_CALL(self, halo_process_event(h, event, reason)), "process_event") : NULL;
}

static int log_args(PyObject *args, PyObject *kw, const char *fn, int *sev, const char **text, const char **stream) {
    static char *with_text[] = {"severity", "text", "stream", NULL}, *without[] = {"severity", "stream", NULL};
    if (text ? !PyArg_ParseTupleAndKeywords(args, kw, "is|z", with_text, sev, text, stream)
             : !PyArg_ParseTupleAndKeywords(args, kw, "i|z", without, sev, stream))
        return -1;
    if (*sev < HALO_LOG_EMERGENCY || *sev > HALO_LOG_TRACE) {
        PyErr_Format(PyExc_ValueError, "%s(): severity must be one of the LOG_* constants, not %d", fn, *sev);
        return -1;
    }
    return 0;
}

static PyObject *handle_log(Handle *self, PyObject *args, PyObject *kw) {
    int sev;
    const char *text, *stream = NULL;
    if (log_args(args, kw, "log", &sev, &text, &stream) < 0)
        return NULL;
    halo *h = comp_handle(self);
    if (!h)
        return NULL;
    int r = COMP_CALL(self, halo_log(h, (halo_log_severity)sev, stream, "%s", text));
    if (r == -EINVAL)
        return PyErr_Format(PyExc_ValueError, "log(): bad stream name '%s'", stream);
    /* Dropped (link full or down): counted, and halod says so; a log call never raises for it. */
    if (r < 0 && r != -EAGAIN && r != -ENOTCONN)
        return comp_raise(r, "log");
    Py_RETURN_NONE;
}

static PyObject *handle_log_enabled(Handle *self, PyObject *args, PyObject *kw) {
    int sev;
    const char *stream = NULL;
    if (log_args(args, kw, "log_enabled", &sev, NULL, &stream) < 0)
        return NULL;
    halo *h = comp_handle(self);
    return h ? PyBool_FromLong(COMP_CALL(self, halo_log_enabled(h, (halo_log_severity)sev, stream))) : NULL;
}

static PyObject *handle_enter(Handle *self, PyObject *unused) {
    return Py_NewRef(self);
}

static PyObject *handle_exit(Handle *self, PyObject *args) {
    PyObject *r = handle_close(self, NULL);
    Py_XDECREF(r);
    Py_RETURN_FALSE;
}

#define M(name, flags, doc) \
    { #name, (PyCFunction)(void (*)(void))handle_##name, flags, doc }
#define KW (METH_VARARGS | METH_KEYWORDS)

static PyMethodDef handle_methods[] = {
    M(close, METH_NOARGS,
      "close($self, /)\n--\n\nCloses the link (also from a callback); later calls raise "
      "ValueError."),
    M(fileno, METH_NOARGS, "fileno($self, /)\n--\n\nThe selection object: readable while dispatch() has work."),
    M(dispatch, KW,
      "dispatch($self, /, flags=DISPATCH_ALL)\n--\n\nRuns pending callbacks on this thread; returns "
      "how many ran.\nThe first exception a callback raised is raised here, after the others ran."),
    M(register, KW, "register($self, /, comp=None, proxy=None)\n--\n\nRegisters comp (None: $HALO_COMPONENT)."),
    M(unregister, KW, "unregister($self, /, comp=None)\n--\n\nUnregisters comp (None: the registered one)."),
    M(response, KW, "response($self, /, invocation, error=0)\n--\n\nAnswers a callback: 0 or a negative errno."),
    M(quiescing_complete, KW,
      "quiescing_complete($self, /, invocation, error=0)\n--\n\nEnds a QUIESCING "
      "assignment."),
    M(healthcheck_start, KW,
      "healthcheck_start($self, /, key=None, invoked=HC_AMF_INVOKED, "
      "recovery=RECOVERY_COMPONENT_FAILOVER, *, comp=None)\n--\n\nStarts health check key."),
    M(healthcheck_confirm, KW,
      "healthcheck_confirm($self, /, key=None, result=0, *, comp=None)\n--\n\n"
      "Confirms a component-invoked check: result 0 is healthy."),
    M(healthcheck_stop, KW, "healthcheck_stop($self, /, key=None, *, comp=None)\n--\n\nStops health check key."),
    M(error_report, KW,
      "error_report($self, /, recovery=RECOVERY_COMPONENT_FAILOVER, *, comp=None)\n--\n\n"
      "Reports a failure the component found itself."),
    M(pg_track, KW,
      "pg_track($self, /, csi, flags=TRACK_CURRENT|TRACK_CHANGES)\n--\n\nTracks csi's protection "
      "group through the pg_track callback."),
    M(pg_track_stop, KW, "pg_track_stop($self, /, csi)\n--\n\nStops tracking csi."),
    M(ha_state_get, KW,
      "ha_state_get($self, /, csi, *, comp=None)\n--\n\nThe HA state (ACTIVE, ...) of comp for "
      "csi."),
    M(object_state_get, KW, "object_state_get($self, /, objects)\n--\n\nObjectStates of 'kind:name' objects."),
    M(entrypoint, METH_NOARGS, "entrypoint($self, /)\n--\n\nWhere the cluster's entrypoint services are, a dict."),
    M(process_event, KW,
      "process_event($self, /, event, reason=None)\n--\n\nTells halod where a pool process "
      "is (PROCESS_*)."),
    M(log, KW,
      "log($self, /, severity, text, stream=None)\n--\n\nA record of the log service (LOG_*): dropped "
      "below the level halod set, or when the link is full."),
    M(log_enabled, KW,
      "log_enabled($self, /, severity, stream=None)\n--\n\nWhether a record of severity into stream "
      "would be sent now."),
    {"__enter__", (PyCFunction)handle_enter, METH_NOARGS, NULL},
    {"__exit__", (PyCFunction)handle_exit, METH_VARARGS, NULL},
    {NULL, NULL, 0, NULL},
};

static PyTypeObject HandleType = {
    PyVarObject_HEAD_INIT(NULL, 0).tp_name = "halo.component.Handle",
    .tp_basicsize = sizeof(Handle),
    .tp_flags = Py_TPFLAGS_DEFAULT | Py_TPFLAGS_HAVE_GC,
    .tp_doc = "A link to the local halod, from open().",
    .tp_dealloc = (destructor)handle_dealloc,
    .tp_traverse = (traverseproc)handle_traverse,
    .tp_clear = (inquiry)handle_clear,
};

static PyStructSequence_Field csi_fields[] = {
    {"flags", "CSI_ADD_ONE, CSI_TARGET_ONE or CSI_TARGET_ALL"},
    {"csi_name", "the CSI (None with CSI_TARGET_ALL)"},
    {"si_name", "its SI"},
    {"attributes", "dict of the CSI's attributes"},
    {"transition", "CSI_NEW_ASSIGN, CSI_QUIESCED, CSI_NOT_QUIESCED, CSI_STILL_ACTIVE (ACTIVE only)"},
    {"active_comp", "the ACTIVE component, for STANDBY (or None)"},
    {NULL, NULL},
};
static PyStructSequence_Desc csi_desc = {"halo.component.CSIDescriptor", "The CSI of a csi_set callback.", csi_fields,
                                         6};
static PyStructSequence_Field member_fields[] = {{"comp_name", NULL},
                                                 {"ha_state", NULL},
                                                 {"change", "PG_NO_CHANGE, PG_ADDED, PG_REMOVED, PG_STATE_CHANGED"},
                                                 {NULL, NULL}};
static PyStructSequence_Desc member_desc = {"halo.component.PGMember", "A protection group's member.", member_fields,
                                            3};
static PyStructSequence_Field object_fields[] = {
    {"object", "'kind:name'"}, {"state", "'ONLINE', ...; '' when unknown"}, {"hlc", NULL}, {"seq", NULL}, {NULL, NULL}};
static PyStructSequence_Desc object_desc = {"halo.component.ObjectState", "A cluster object's HA state.", object_fields,
                                            4};

static PyMethodDef module_methods[] = {
    {"open", (PyCFunction)(void (*)(void))comp_open, KW,
     "open(socket=None, *, csi_set=None, csi_remove=None, terminate=None, healthcheck=None, pg_track=None, "
     "link_state=None, object_states=None, recovery=None)\n--\n\n"
     "Opens the HA link to the local halod ($HALO_SOCKET when socket is None); returns a Handle.\n"
     "Each callback is called by dispatch() with the Handle first (docs/python.md)."},
    {NULL, NULL, 0, NULL},
};

static struct PyModuleDef module = {
    PyModuleDef_HEAD_INIT,
    "halo.component",
    "libhalo's component API and the configuration database (docs/python.md).",
    -1,
    module_methods,
};

PyMODINIT_FUNC PyInit_component(void); /* found by Python with dlsym() */

/* The Handle's methods: this file's, then the CDB's of cdbcomp.c and the services'. */
static PyMethodDef all_methods[96];

static int join_methods(void) {
    PyMethodDef *t[] = {handle_methods,    comp_cdb_methods, comp_ckpt_methods,
                        comp_name_methods, comp_evt_methods, comp_txn_methods};
    size_t n = 0;
    for (PyMethodDef **p = t; p < t + sizeof(t) / sizeof(t[0]); p++)
        for (PyMethodDef *m = *p; m->ml_name; m++) {
            if (n + 1 >= sizeof(all_methods) / sizeof(all_methods[0])) {
                PyErr_SetString(PyExc_SystemError, "halo.component: too many Handle methods");
                return -1;
            }
            all_methods[n++] = *m;
        }
    HandleType.tp_methods = all_methods;
    return 0;
}

PyMODINIT_FUNC PyInit_component(void) {
    PyObject *m = PyModule_Create(&module);
    if (!m)
        return NULL;
    if (join_methods() < 0 || PyType_Ready(&HandleType) < 0 ||
        PyModule_AddObjectRef(m, "Handle", (PyObject *)&HandleType) < 0)
        goto fail;
    CompError = PyErr_NewExceptionWithDoc("halo.component.Error",
                                          "A libhalo call failed: code is its negative return, errno the positive "
                                          "value,\nstrerror halo_strerror()'s text, function the call.",
                                          NULL, NULL);
    if (!CompError || PyModule_AddObjectRef(m, "Error", CompError) < 0)
        goto fail;
    if (!(CSIType = PyStructSequence_NewType(&csi_desc)) || !(MemberType = PyStructSequence_NewType(&member_desc)) ||
        !(ObjectStateType = PyStructSequence_NewType(&object_desc)) ||
        PyModule_AddObjectRef(m, "CSIDescriptor", (PyObject *)CSIType) < 0 ||
        PyModule_AddObjectRef(m, "PGMember", (PyObject *)MemberType) < 0 ||
        PyModule_AddObjectRef(m, "ObjectState", (PyObject *)ObjectStateType) < 0 || comp_cdb_init(m) < 0 ||
        comp_ckpt_init(m) < 0 || comp_name_init(m) < 0 || comp_evt_init(m) < 0 || comp_txn_init(m) < 0)
        goto fail;
    static const comp_constant constants[] = {{"ACTIVE", HALO_HA_ACTIVE},
                                              {"STANDBY", HALO_HA_STANDBY},
                                              {"QUIESCED", HALO_HA_QUIESCED},
                                              {"QUIESCING", HALO_HA_QUIESCING},
                                              {"DISPATCH_ONE", HALO_DISPATCH_ONE},
                                              {"DISPATCH_ALL", HALO_DISPATCH_ALL},
                                              {"DISPATCH_BLOCKING", HALO_DISPATCH_BLOCKING},
                                              {"RECOVERY_NONE", HALO_RECOVERY_NONE},
                                              {"RECOVERY_COMPONENT_RESTART", HALO_RECOVERY_COMPONENT_RESTART},
                                              {"RECOVERY_COMPONENT_FAILOVER", HALO_RECOVERY_COMPONENT_FAILOVER},
                                              {"RECOVERY_NODE_SWITCHOVER", HALO_RECOVERY_NODE_SWITCHOVER},
                                              {"RECOVERY_NODE_FAILOVER", HALO_RECOVERY_NODE_FAILOVER},
                                              {"RECOVERY_NODE_FAILFAST", HALO_RECOVERY_NODE_FAILFAST},
                                              {"HC_AMF_INVOKED", HALO_HC_AMF_INVOKED},
                                              {"HC_COMPONENT_INVOKED", HALO_HC_COMPONENT_INVOKED},
                                              {"CSI_ADD_ONE", HALO_CSI_ADD_ONE},
                                              {"CSI_TARGET_ONE", HALO_CSI_TARGET_ONE},
                                              {"CSI_TARGET_ALL", HALO_CSI_TARGET_ALL},
                                              {"CSI_NEW_ASSIGN", HALO_CSI_NEW_ASSIGN},
                                              {"CSI_QUIESCED", HALO_CSI_QUIESCED},
                                              {"CSI_NOT_QUIESCED", HALO_CSI_NOT_QUIESCED},
                                              {"CSI_STILL_ACTIVE", HALO_CSI_STILL_ACTIVE},
                                              {"TRACK_CURRENT", HALO_TRACK_CURRENT},
                                              {"TRACK_CHANGES", HALO_TRACK_CHANGES},
                                              {"TRACK_CHANGES_ONLY", HALO_TRACK_CHANGES_ONLY},
                                              {"PG_NO_CHANGE", HALO_PG_NO_CHANGE},
                                              {"PG_ADDED", HALO_PG_ADDED},
                                              {"PG_REMOVED", HALO_PG_REMOVED},
                                              {"PG_STATE_CHANGED", HALO_PG_STATE_CHANGED},
                                              {"LINK_LOST", HALO_LINK_LOST},
                                              {"LINK_RESTORED", HALO_LINK_RESTORED},
                                              {"LINK_FAILED", HALO_LINK_FAILED},
                                              {"PROCESS_STARTING", HALO_PROCESS_STARTING},
                                              {"PROCESS_STARTED", HALO_PROCESS_STARTED},
                                              {"PROCESS_STOPPING", HALO_PROCESS_STOPPING},
                                              {"PROCESS_STOPPED", HALO_PROCESS_STOPPED},
                                              {"PROCESS_RECOVERED", HALO_PROCESS_RECOVERED},
                                              {"PROCESS_RECOVERY_FAILED", HALO_PROCESS_RECOVERY_FAILED},
                                              {"LOG_EMERGENCY", HALO_LOG_EMERGENCY},
                                              {"LOG_ALERT", HALO_LOG_ALERT},
                                              {"LOG_CRITICAL", HALO_LOG_CRITICAL},
                                              {"LOG_ERROR", HALO_LOG_ERROR},
                                              {"LOG_WARNING", HALO_LOG_WARNING},
                                              {"LOG_NOTICE", HALO_LOG_NOTICE},
                                              {"LOG_INFO", HALO_LOG_INFO},
                                              {"LOG_DEBUG", HALO_LOG_DEBUG},
                                              {"LOG_TRACE", HALO_LOG_TRACE},
                                              {"CDB_SET", HALO_CDB_SET},
                                              {"CDB_DELETE", HALO_CDB_DELETE},
#define HALO__PY_ERRNO(name, value, text) {#name + 5, value},
                                              HALO_ERRNO_MAP(HALO__PY_ERRNO)
#undef HALO__PY_ERRNO
    };
    if (comp_add_constants(m, constants, sizeof(constants) / sizeof(constants[0])) < 0)
        goto fail;
    return m;
fail:
    Py_DECREF(m);
    return NULL;
}
