/* SPDX-License-Identifier: MIT */
/* halo.ha: the HA control API for Python, the drop-in for NCS/ConfD's _ncs.ha (seed 002), over libhalo. */
#define PY_SSIZE_T_CLEAN
#include <Python.h>

#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>

#include "halo/ha.h"

static PyObject *HaError;

/* ConfD's confd_errno values (confd_errcode(3)), which _ncs.error.Error carries. */
enum {
    CONFD_ERR_BADSTATE = 17,
    CONFD_ERR_INTERNAL = 18,
    CONFD_ERR_OS = 24,
    CONFD_ERR_HA_CONNECT = 25,
    CONFD_ERR_HA_CLOSED = 26,
    CONFD_ERR_HA_BADFXS = 27,
    CONFD_ERR_HA_BADTOKEN = 28,
    CONFD_ERR_HA_BADNAME = 29,
    CONFD_ERR_HA_BIND = 30,
    CONFD_ERR_HA_NOTICK = 31,
};

/* halo's errors and their ConfD counterparts, with the words str() gives. */
static const struct {
    int halo;
    int confd;
    const char *text;
} confd_errors[] = {
    {-HALO_EBADSTATE, CONFD_ERR_BADSTATE, "bad state"},
    {-HALO_ECONNECT, CONFD_ERR_HA_CONNECT, "HA: cannot connect"},
    {-HALO_ECLOSED, CONFD_ERR_HA_CLOSED, "HA: connection closed"},
    {-HALO_EBADTOKEN, CONFD_ERR_HA_BADTOKEN, "HA: bad token"},
    {-HALO_EBADNAME, CONFD_ERR_HA_BADNAME, "HA: bad node name"},
    {-HALO_EBIND, CONFD_ERR_HA_BIND, "HA: cannot bind"},
    {-ETIMEDOUT, CONFD_ERR_HA_NOTICK, "HA: no tick"}, /* a peer silent for dead-after */
};

/* The confd_errno of a negative return of libhalo (or of an error a notification carries). */
static int confd_errno_of(int r) {
    if (r == 0)
        return 0;
    for (size_t i = 0; i < sizeof(confd_errors) / sizeof(confd_errors[0]); i++)
        if (confd_errors[i].halo == r)
            return confd_errors[i].confd;
    return r > -HALO_EBADSTATE ? CONFD_ERR_OS : CONFD_ERR_INTERNAL; /* below HALO_E*: an errno */
}

static const char *confd_strerror_of(int code) {
    for (size_t i = 0; i < sizeof(confd_errors) / sizeof(confd_errors[0]); i++)
        if (confd_errors[i].confd == code)
            return confd_errors[i].text;
    return code == CONFD_ERR_OS ? "system call failed" : "internal error";
}

/* Sets o.name = v and drops the reference to v; false (an exception set) if v is NULL or it failed. */
static bool set_attr(PyObject *o, const char *name, PyObject *v) {
    bool ok = v && PyObject_SetAttrString(o, name, v) == 0;
    Py_XDECREF(v);
    return ok;
}

/*
 * Raises halo.error.Error as _ncs.error.Error is raised: the message "STRERROR (ERRNO):
 * LASTERR", and the attributes confd_errno, confd_strerror, confd_lasterr, and errno for
 * CONFD_ERR_OS.
 */
static PyObject *raise_error(int r) {
    int code = confd_errno_of(r);
    const char *str = confd_strerror_of(code), *last = halo_strerror(r);
    PyObject *e = PyObject_CallFunction(HaError, "s", "");
    if (!e)
        return NULL;
    PyObject *msg = PyUnicode_FromFormat("%s (%d): %s", str, code, last);
    bool ok = set_attr(e, "args", msg ? PyTuple_Pack(1, msg) : NULL) &&
              set_attr(e, "confd_errno", PyLong_FromLong(code)) &&
              set_attr(e, "confd_strerror", PyUnicode_FromString(str)) &&
              set_attr(e, "confd_lasterr", PyUnicode_FromString(last)) &&
              (code != CONFD_ERR_OS || set_attr(e, "errno", PyLong_FromLong(-r)));
    Py_XDECREF(msg);
    if (ok)
        PyErr_SetObject(HaError, e);
    Py_DECREF(e);
    return NULL;
}

/* None, or the exception for a negative return. */
static PyObject *result(int r) {
    if (r < 0)
        return raise_error(r);
    Py_RETURN_NONE;
}

/* The socket's fd: a socket.socket (fileno()) or an int. */
static int sock_fd(PyObject *sock) {
    int fd = PyObject_AsFileDescriptor(sock);
    return fd < 0 ? -1 : fd;
}

/* A node id "Value or string": whatever str() gives.  Returns a new reference or NULL. */
static PyObject *name_of(PyObject *v) {
    return PyUnicode_Check(v) ? (Py_INCREF(v), v) : PyObject_Str(v);
}

#define CALL(expr)                          \
    ({                                      \
        int _r;                             \
        Py_BEGIN_ALLOW_THREADS _r = (expr); \
        Py_END_ALLOW_THREADS _r;            \
    })

static PyObject *do_connect(PyObject *args, PyObject *kw, bool notifications) {
    static char *kwlist[] = {"sock", "token", "ip", "port", "pstr", NULL};
    PyObject *sock;
    const char *token, *ip = NULL, *pstr = NULL;
    int port = 0;
    struct sockaddr_storage ss;
    socklen_t len = 0;

    if (!PyArg_ParseTupleAndKeywords(args, kw, "Os|ziz", kwlist, &sock, &token, &ip, &port, &pstr))
        return NULL;
    int fd = sock_fd(sock);
    if (fd < 0)
        return NULL;
    memset(&ss, 0, sizeof(ss));
    if (pstr) {
        struct sockaddr_un *su = (struct sockaddr_un *)&ss;
        if (strlen(pstr) >= sizeof(su->sun_path)) {
            PyErr_SetString(PyExc_ValueError, "pstr: path too long");
            return NULL;
        }
        su->sun_family = AF_UNIX;
        strcpy(su->sun_path, pstr);
        len = sizeof(*su);
    } else if (ip) {
        struct sockaddr_in *s4 = (struct sockaddr_in *)&ss;
        struct sockaddr_in6 *s6 = (struct sockaddr_in6 *)&ss;
        if (port <= 0 || port > 65535) {
            PyErr_SetString(PyExc_ValueError, "port: give the HA control port (halod --ha-control)");
            return NULL;
        }
        if (inet_pton(AF_INET, ip, &s4->sin_addr) == 1) {
            s4->sin_family = AF_INET;
            s4->sin_port = htons((uint16_t)port);
            len = sizeof(*s4);
        } else if (inet_pton(AF_INET6, ip, &s6->sin6_addr) == 1) {
            s6->sin6_family = AF_INET6;
            s6->sin6_port = htons((uint16_t)port);
            len = sizeof(*s6);
        } else {
            PyErr_SetString(PyExc_ValueError, "ip: not a numeric IPv4 or IPv6 address");
            return NULL;
        }
    } else {
        PyErr_SetString(PyExc_ValueError, "give ip and port, or pstr");
        return NULL;
    }
    return result(notifications ? CALL(halo_ha_notifications_connect(fd, token, (struct sockaddr *)&ss, len))
                                : CALL(halo_ha_connect(fd, token, (struct sockaddr *)&ss, len)));
}

static PyObject *ha_connect(PyObject *self, PyObject *args, PyObject *kw) {
    return do_connect(args, kw, false);
}

static PyObject *ha_notifications_connect(PyObject *self, PyObject *args, PyObject *kw) {
    return do_connect(args, kw, true);
}

static PyObject *node_call(PyObject *args, PyObject *kw, const char *argname, int (*fn)(int, const char *)) {
    char *kwlist[] = {"sock", (char *)argname, NULL};
    PyObject *sock, *node;
    if (!PyArg_ParseTupleAndKeywords(args, kw, "OO", kwlist, &sock, &node))
        return NULL;
    int fd = sock_fd(sock);
    if (fd < 0)
        return NULL;
    PyObject *s = name_of(node);
    if (!s)
        return NULL;
    const char *name = PyUnicode_AsUTF8(s);
    int r = name ? CALL(fn(fd, name)) : 0;
    Py_DECREF(s);
    return name ? result(r) : NULL;
}

static PyObject *ha_beprimary(PyObject *self, PyObject *args, PyObject *kw) {
    return node_call(args, kw, "mynodeid", halo_ha_beprimary);
}

static PyObject *ha_bemaster(PyObject *self, PyObject *args, PyObject *kw) {
    return node_call(args, kw, "mynodeid", halo_ha_bemaster);
}

static PyObject *ha_secondary_dead(PyObject *self, PyObject *args, PyObject *kw) {
    return node_call(args, kw, "nodeid", halo_ha_secondary_dead);
}

static PyObject *ha_slave_dead(PyObject *self, PyObject *args, PyObject *kw) {
    return node_call(args, kw, "nodeid", halo_ha_slave_dead);
}

static PyObject *sock_call(PyObject *args, PyObject *kw, int (*fn)(int)) {
    static char *kwlist[] = {"sock", NULL};
    PyObject *sock;
    if (!PyArg_ParseTupleAndKeywords(args, kw, "O", kwlist, &sock))
        return NULL;
    int fd = sock_fd(sock);
    if (fd < 0)
        return NULL;
    return result(CALL(fn(fd)));
}

static PyObject *ha_benone(PyObject *self, PyObject *args, PyObject *kw) {
    return sock_call(args, kw, halo_ha_benone);
}

static PyObject *ha_berelay(PyObject *self, PyObject *args, PyObject *kw) {
    return sock_call(args, kw, halo_ha_berelay);
}

static PyObject *secondary_call(PyObject *args, PyObject *kw) {
    static char *kwlist[] = {"sock", "mynodeid", "primary_id", "primary_ip", "waitreply", NULL};
    PyObject *sock, *me, *primary, *ip;
    int wait;
    if (!PyArg_ParseTupleAndKeywords(args, kw, "OOOOp", kwlist, &sock, &me, &primary, &ip, &wait))
        return NULL;
    int fd = sock_fd(sock);
    if (fd < 0)
        return NULL;
    PyObject *a = name_of(me), *b = a ? name_of(primary) : NULL, *c = b ? name_of(ip) : NULL;
    const char *sa = a ? PyUnicode_AsUTF8(a) : NULL, *sb = b ? PyUnicode_AsUTF8(b) : NULL,
               *sc = c ? PyUnicode_AsUTF8(c) : NULL;
    int r = 0;
    if (sa && sb && sc)
        r = CALL(halo_ha_besecondary(fd, sa, sb, sc, wait));
    bool ok = sa && sb && sc;
    if (ok && r == -EINVAL) {
        /* As _ncs.ha: halod refused the address before it touched the node's role. */
        PyErr_Format(PyExc_ValueError, "Invalid primary_ip address: '%s'.", sc);
        ok = false;
    }
    Py_XDECREF(a);
    Py_XDECREF(b);
    Py_XDECREF(c);
    return ok ? result(r) : NULL;
}

static PyObject *ha_besecondary(PyObject *self, PyObject *args, PyObject *kw) {
    return secondary_call(args, kw);
}

static PyObject *ha_beslave(PyObject *self, PyObject *args, PyObject *kw) {
    return secondary_call(args, kw);
}

/* The IP address in "ip", "ip:port" or "[ipv6]:port" (what _ncs.ha's status gives as 'address'), in buf. */
static const char *address_of(const char *addr, char buf[HALO_HA_NAME_MAX]) {
    const char *colon = strrchr(addr, ':');
    if (addr[0] == '[') {
        const char *end = strchr(addr, ']');
        snprintf(buf, HALO_HA_NAME_MAX, "%.*s", end ? (int)(end - addr - 1) : 0, addr + 1);
    } else if (colon && colon == strchr(addr, ':'))
        snprintf(buf, HALO_HA_NAME_MAX, "%.*s", (int)(colon - addr), addr);
    else
        snprintf(buf, HALO_HA_NAME_MAX, "%s", addr);
    return buf;
}

static PyObject *ha_status(PyObject *self, PyObject *args, PyObject *kw) {
    static char *kwlist[] = {"sock", NULL};
    PyObject *sock;
    if (!PyArg_ParseTupleAndKeywords(args, kw, "O", kwlist, &sock))
        return NULL;
    int fd = sock_fd(sock);
    if (fd < 0)
        return NULL;
    halo_ha_status *st = PyMem_Malloc(sizeof(*st));
    if (!st)
        return PyErr_NoMemory();
    int r = CALL(halo_ha_status_get(fd, st));
    if (r < 0) {
        PyMem_Free(st);
        return raise_error(r);
    }
    PyObject *nodes = PyList_New((Py_ssize_t)st->n_nodes);
    for (size_t i = 0; nodes && i < st->n_nodes; i++) {
        char ip[HALO_HA_NAME_MAX];
        PyObject *d =
            Py_BuildValue("{s:s, s:s}", "nodeid", st->nodes[i].nodeid, "address", address_of(st->nodes[i].addr, ip));
        if (!d) {
            Py_CLEAR(nodes);
            break;
        }
        PyList_SET_ITEM(nodes, (Py_ssize_t)i, d);
    }
    PyObject *ret = nodes ? Py_BuildValue("(iN)", (int)st->state, nodes) : NULL;
    PyMem_Free(st);
    return ret;
}

#define NOTIF_HA_INFO (1 << 6) /* ConfD's CONFD_NOTIF_HA_INFO */

/* A node as _ncs.events gives it: halo's notifications name the node only (no address). */
static int set_node(PyObject *hnot, const char *key, const char *old_key, const char *nodeid) {
    PyObject *n = Py_BuildValue("{s:s, s:i, s:O}", "nodeid", nodeid, "af", AF_UNSPEC, "str", Py_None);
    int r = n ? PyDict_SetItemString(hnot, key, n) | PyDict_SetItemString(hnot, old_key, n) : -1;
    Py_XDECREF(n);
    return r;
}

static int set_int(PyObject *hnot, const char *key, const char *old_key, long v) {
    PyObject *n = PyLong_FromLong(v);
    int r = n ? PyDict_SetItemString(hnot, key, n) | (old_key ? PyDict_SetItemString(hnot, old_key, n) : 0) : -1;
    Py_XDECREF(n);
    return r;
}

/* {'type': NOTIF_HA_INFO, 'hnot': {'type': HA_INFO_*, ...}}, the shape of _ncs.events.read_notification(). */
static PyObject *notification_dict(const halo_ha_info *in) {
    PyObject *hnot = Py_BuildValue("{s:i}", "type", (int)in->type);
    int r = hnot ? 0 : -1;
    switch (r == 0 ? in->type : 0) {
    case HALO_HA_INFO_NOPRIMARY:
        r = set_int(hnot, "noprimary", "nomaster", confd_errno_of(in->error));
        break;
    case HALO_HA_INFO_SECONDARY_DIED:
        r = set_node(hnot, "secondary_died", "slave_died", in->nodeid);
        break;
    case HALO_HA_INFO_SECONDARY_ARRIVED:
        r = set_node(hnot, "secondary_arrived", "slave_arrived", in->nodeid);
        break;
    case HALO_HA_INFO_SECONDARY_INITIALIZED:
        r = set_int(hnot, "cdb_initialized_by_copy", NULL, in->full_copy);
        break;
    case HALO_HA_INFO_BESECONDARY_RESULT:
        r = set_int(hnot, "besecondary_result", "beslave_result", confd_errno_of(in->error));
        break;
    default:
        break;
    }
    if (r == 0 && *in->reason) { /* halo's addition: why, in words */
        PyObject *why = PyUnicode_FromString(in->reason);
        r = why ? PyDict_SetItemString(hnot, "reason", why) : -1;
        Py_XDECREF(why);
    }
    PyObject *d = r == 0 ? Py_BuildValue("{s:i, s:O}", "type", NOTIF_HA_INFO, "hnot", hnot) : NULL;
    Py_XDECREF(hnot);
    return d;
}

static PyObject *ha_read_notification(PyObject *self, PyObject *args, PyObject *kw) {
    static char *kwlist[] = {"sock", NULL};
    PyObject *sock;
    halo_ha_info in;
    if (!PyArg_ParseTupleAndKeywords(args, kw, "O", kwlist, &sock))
        return NULL;
    int fd = sock_fd(sock);
    if (fd < 0)
        return NULL;
    int r = CALL(halo_ha_notification_read(fd, &in));
    if (r == -EINTR) {
        if (PyErr_CheckSignals() < 0)
            return NULL;
    }
    if (r < 0)
        return raise_error(r);
    return notification_dict(&in);
}

#define FN(name, doc) \
    { #name, (PyCFunction)(void (*)(void))ha_##name, METH_VARARGS | METH_KEYWORDS, doc }

/* Docstrings start with a text signature, so that inspect.signature() gives the parameters. */
static PyMethodDef methods[] = {
    FN(bemaster, "bemaster($module, /, sock, mynodeid)\n--\n\nDeprecated: use beprimary()."),
    FN(benone, "benone($module, /, sock)\n--\n\nBack to the initial state: neither primary nor secondary."),
    FN(beprimary, "beprimary($module, /, sock, mynodeid)\n--\n\nBe the primary, named mynodeid."),
    FN(berelay, "berelay($module, /, sock)\n--\n\nAn established secondary also serves secondaries of its own."),
    FN(besecondary, "besecondary($module, /, sock, mynodeid, primary_id, primary_ip, waitreply)\n--\n\n"
                    "Be a secondary of primary_id at primary_ip ('ip' or 'ip:port').  waitreply: return once\n"
                    "the database is initialized; otherwise the result comes as a notification."),
    FN(beslave, "beslave($module, /, sock, mynodeid, primary_id, primary_ip, waitreply)\n--\n\n"
                "Deprecated: use besecondary()."),
    FN(connect, "connect($module, /, sock, token, ip=None, port=0, pstr=None)\n--\n\n"
                "Connects sock to halod's HA control socket (pstr: its path; or ip and port with\n"
                "halod --ha-control) with the cluster's token.  A new connection replaces the previous one."),
    FN(secondary_dead, "secondary_dead($module, /, sock, nodeid)\n--\n\nTells the primary that secondary nodeid "
                       "is dead."),
    FN(slave_dead, "slave_dead($module, /, sock, nodeid)\n--\n\nDeprecated: use secondary_dead()."),
    FN(status, "status($module, /, sock)\n--\n\nThe node's HA state and the primary or secondaries connected "
               "to it:\n(State, [{'nodeid': ..., 'address': IP}, ...]), as _ncs.ha.status()."),
    FN(notifications_connect, "notifications_connect($module, /, sock, token, ip=None, port=0, pstr=None)\n--\n\n"
                              "Connects sock as a stream of HA notifications (halo.events wraps it as\n"
                              "_ncs.events.notifications_connect)."),
    FN(read_notification, "read_notification($module, /, sock)\n--\n\nThe next notification, shaped as "
                          "_ncs.events.read_notification()\ngives an HA one: {'type': NOTIF_HA_INFO, 'hnot': "
                          "{'type': HA_INFO_*, ...}}."),
    {NULL, NULL, 0, NULL},
};

static struct PyModuleDef module = {
    PyModuleDef_HEAD_INIT,
    "halo.ha",
    "Low level module for connecting to halo's HA subsystem, shaped like NCS's _ncs.ha.",
    -1,
    methods,
};

PyMODINIT_FUNC PyInit_ha(void); /* found by Python with dlsym() */

PyMODINIT_FUNC PyInit_ha(void) {
    PyObject *m = PyModule_Create(&module);
    if (!m)
        return NULL;
    HaError = PyErr_NewExceptionWithDoc("halo.error.Error",
                                        "An HA call failed, as _ncs.error.Error: str() is 'STRERROR (ERRNO): "
                                        "LASTERR';\nattributes confd_errno, confd_strerror, confd_lasterr (and "
                                        "errno for ERR_OS).",
                                        NULL, NULL);
    if (!HaError || PyModule_AddObjectRef(m, "error", HaError) < 0) {
        Py_DECREF(m);
        return NULL;
    }
    struct {
        const char *name;
        int value;
    } constants[] = {
        {"STATE_MASTER", HALO_HA_STATE_MASTER},
        {"STATE_NONE", HALO_HA_STATE_NONE},
        {"STATE_PRIMARY", HALO_HA_STATE_PRIMARY},
        {"STATE_SECONDARY", HALO_HA_STATE_SECONDARY},
        {"STATE_SECONDARY_RELAY", HALO_HA_STATE_SECONDARY_RELAY},
        {"STATE_SLAVE", HALO_HA_STATE_SLAVE},
        {"STATE_SLAVE_RELAY", HALO_HA_STATE_SLAVE_RELAY},
        {"ERR_BADSTATE", CONFD_ERR_BADSTATE},
        {"ERR_HA_BADSTATE", CONFD_ERR_BADSTATE},
        {"ERR_INTERNAL", CONFD_ERR_INTERNAL},
        {"ERR_OS", CONFD_ERR_OS},
        {"ERR_HA_CONNECT", CONFD_ERR_HA_CONNECT},
        {"ERR_HA_CLOSED", CONFD_ERR_HA_CLOSED},
        {"ERR_HA_BADFXS", CONFD_ERR_HA_BADFXS},
        {"ERR_HA_BADTOKEN", CONFD_ERR_HA_BADTOKEN},
        {"ERR_HA_BADNAME", CONFD_ERR_HA_BADNAME},
        {"ERR_HA_BIND", CONFD_ERR_HA_BIND},
        {"ERR_HA_NOTICK", CONFD_ERR_HA_NOTICK},
        {"NOTIF_HA_INFO", NOTIF_HA_INFO},
        {"HA_INFO_NOPRIMARY", HALO_HA_INFO_NOPRIMARY},
        {"HA_INFO_SECONDARY_DIED", HALO_HA_INFO_SECONDARY_DIED},
        {"HA_INFO_SECONDARY_ARRIVED", HALO_HA_INFO_SECONDARY_ARRIVED},
        {"HA_INFO_SECONDARY_INITIALIZED", HALO_HA_INFO_SECONDARY_INITIALIZED},
        {"HA_INFO_IS_PRIMARY", HALO_HA_INFO_IS_PRIMARY},
        {"HA_INFO_IS_NONE", HALO_HA_INFO_IS_NONE},
        {"HA_INFO_BESECONDARY_RESULT", HALO_HA_INFO_BESECONDARY_RESULT},
        {"INFO_NOPRIMARY", HALO_HA_INFO_NOPRIMARY},
        {"INFO_SECONDARY_DIED", HALO_HA_INFO_SECONDARY_DIED},
        {"INFO_SECONDARY_ARRIVED", HALO_HA_INFO_SECONDARY_ARRIVED},
        {"INFO_SECONDARY_INITIALIZED", HALO_HA_INFO_SECONDARY_INITIALIZED},
        {"INFO_IS_PRIMARY", HALO_HA_INFO_IS_PRIMARY},
        {"INFO_IS_NONE", HALO_HA_INFO_IS_NONE},
        {"INFO_BESECONDARY_RESULT", HALO_HA_INFO_BESECONDARY_RESULT},
    };
    for (size_t i = 0; i < sizeof(constants) / sizeof(constants[0]); i++)
        if (PyModule_AddIntConstant(m, constants[i].name, constants[i].value) < 0) {
            Py_DECREF(m);
            return NULL;
        }
    return m;
}
