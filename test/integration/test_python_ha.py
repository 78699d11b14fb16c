# SPDX-License-Identifier: MIT
"""The halo.ha Python module (a C extension over libhalo) against seed 002's _ncs.ha and the shapes the real
_ncs.ha, _ncs.error and _ncs.events give (status's node dicts, confd_errno, HA notification dicts), and against
real halods."""
import inspect
import os
import socket
import sys

import pytest

from halo_harness import BUILD, cdb_only_yaml, free_port

sys.path.insert(0, os.path.join(BUILD, "src", "python"))
from halo import error, events, ha  # noqa: E402

# Seed 002: the functions of _ncs.ha and their parameters, and its constants.
SEED_FUNCTIONS = {
    "bemaster": ["sock", "mynodeid"],
    "benone": ["sock"],
    "beprimary": ["sock", "mynodeid"],
    "berelay": ["sock"],
    "besecondary": ["sock", "mynodeid", "primary_id", "primary_ip", "waitreply"],
    "beslave": ["sock", "mynodeid", "primary_id", "primary_ip", "waitreply"],
    "connect": ["sock", "token", "ip", "port", "pstr"],
    "secondary_dead": ["sock", "nodeid"],
    "slave_dead": ["sock", "nodeid"],
    "status": ["sock"],
}
SEED_CONSTANTS = {"STATE_MASTER": 3, "STATE_NONE": 1, "STATE_PRIMARY": 3, "STATE_SECONDARY": 2,
                  "STATE_SECONDARY_RELAY": 4, "STATE_SLAVE": 2, "STATE_SLAVE_RELAY": 4}

YAML = cdb_only_yaml("py", "{tick: 100ms, dead-after: 600ms}")


def test_functions_and_constants_have_the_seed_signatures():
    for name, params in SEED_FUNCTIONS.items():
        fn = getattr(ha, name)
        got = list(inspect.signature(fn).parameters)
        assert got == params, (name, got)
        # Called by keyword with the seed's names, as a script may: every argument is taken, and
        # the call fails on the socket (-1 is no socket), not on a name.
        values = {"sock": -1, "port": 4570, "waitreply": True}
        with pytest.raises(ValueError) as e:
            fn(**{p: values.get(p, "x") for p in params})
        assert "negative" in str(e.value), (name, e.value)
    for name, value in SEED_CONSTANTS.items():
        assert getattr(ha, name) == value, name
    assert issubclass(ha.error, Exception)


class Node:
    def __init__(self, factory, name, control_port=None, token_file=None):
        self.port = free_port()
        self.addr = f"127.0.0.1:{self.port}"
        args = ["--http", "none", "--cdb-listen", self.addr]
        yaml = YAML
        if control_port:  # TCP: the token comes from the description, and a client proves it
            args += ["--ha-control", f"127.0.0.1:{control_port}"]
            yaml = cdb_only_yaml("py", f"{{tick: 100ms, dead-after: 600ms, token-file: '{token_file}'}}")
        self.h = factory(yaml, name=f"py-{name}", extra_args=args).start()
        self.ha_sock = os.path.join(os.path.dirname(self.h.socket), "ha.sock")


def test_the_error_and_events_modules_have_ncs_shapes():
    assert ha.error is error.Error and issubclass(error.Error, Exception)
    assert (ha.ERR_BADSTATE, ha.ERR_OS, ha.ERR_HA_CONNECT, ha.ERR_HA_CLOSED, ha.ERR_HA_BADTOKEN, ha.ERR_HA_BADNAME,
            ha.ERR_HA_BIND, ha.ERR_HA_NOTICK) == (17, 24, 25, 26, 28, 29, 30, 31)  # confd_errcode(3)
    assert events.NOTIF_HA_INFO == 1 << 6
    assert [ha.HA_INFO_NOPRIMARY, ha.HA_INFO_SECONDARY_DIED, ha.HA_INFO_SECONDARY_ARRIVED,
            ha.HA_INFO_SECONDARY_INITIALIZED, ha.HA_INFO_IS_PRIMARY, ha.HA_INFO_IS_NONE,
            ha.HA_INFO_BESECONDARY_RESULT] == list(range(1, 8))
    assert list(inspect.signature(events.notifications_connect).parameters)[:5] == ["sock", "mask", "ip", "port",
                                                                                     "path"]
    assert list(inspect.signature(events.read_notification).parameters) == ["sock"]


def raises(confd_errno, fn, *args):
    """Calls fn, which must raise halo.error.Error as _ncs.error.Error would: its confd_errno, and str()
    'STRERROR (ERRNO): LASTERR'."""
    with pytest.raises(error.Error) as e:
        fn(*args)
    assert e.value.confd_errno == confd_errno, (e.value.confd_errno, str(e.value))
    assert str(e.value) == f"{e.value.confd_strerror} ({confd_errno}): {e.value.confd_lasterr}"
    return e.value


def test_a_confd_style_script_runs_with_only_its_import_changed(halod_factory, tmp_path):
    control = free_port()
    (tmp_path / "token").write_text("tok\n")
    a = Node(halod_factory, "a", control_port=control, token_file=tmp_path / "token")
    b = Node(halod_factory, "b")

    # What a script written for _ncs.ha does, over TCP like NCS's IPC port.
    s = socket.socket()
    ha.connect(s, "tok", ip="127.0.0.1", port=control)
    ha.beprimary(s, "n1")
    assert ha.status(s) == (ha.STATE_PRIMARY, [])

    # AF_UNIX with pstr, a node id given as any object with a str().
    class Value:
        def __str__(self):
            return "n2"

    t = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    ha.connect(t, "tok", pstr=b.ha_sock)
    ha.besecondary(t, Value(), "n1", a.addr, True)
    # status() as _ncs.ha's: (state, [{'nodeid', 'address'}]), the address an IP address.
    assert ha.status(t) == (ha.STATE_SECONDARY, [{"nodeid": "n1", "address": "127.0.0.1"}])
    assert ha.status(s) == (ha.STATE_PRIMARY, [{"nodeid": "n2", "address": "127.0.0.1"}])

    # A typo in besecondary's address: ValueError as _ncs.ha raises, and the node keeps its role
    # (still n1's secondary, still getting its commits).
    for typo in ("127.0.0.1:notaport", "127.0.0.1:0", "not an address", "10.0.0.300"):
        with pytest.raises(ValueError):
            ha.besecondary(t, "n2", "n1", typo, True)
    assert ha.status(t) == (ha.STATE_SECONDARY, [{"nodeid": "n1", "address": "127.0.0.1"}])
    a.h.ctl("cdb", "set", "/after-typo", "1")
    assert b.h.ctl("cdb", "get", "/after-typo").stdout.strip() == "1"
    # A bad node id is refused before the role is touched too.
    raises(ha.ERR_HA_BADNAME, ha.besecondary, t, "n2", "n2", a.addr, True)
    assert ha.status(t)[0] == ha.STATE_SECONDARY
    # secondary_dead is accepted where ConfD accepts it: a secondary has no secondaries to drop.
    ha.secondary_dead(t, "n9")
    ha.berelay(t)
    assert ha.status(t)[0] == ha.STATE_SECONDARY_RELAY == ha.STATE_SLAVE_RELAY

    # Refusals raise halo.error.Error with ConfD's confd_errno.
    raises(ha.ERR_BADSTATE, ha.berelay, s)
    raises(ha.ERR_HA_BADNAME, ha.beprimary, s, "another-name")
    ha.slave_dead(s, "n2")  # the deprecated names work
    ha.benone(t)
    ha.secondary_dead(t, "n9")  # in NONE too
    raises(ha.ERR_HA_CONNECT, ha.beslave, t, "n2", "n1", f"127.0.0.1:{free_port()}", True)

    # The wrong token: ERR_HA_BADTOKEN, and the node's role and token stay.
    w = socket.socket()
    raises(ha.ERR_HA_BADTOKEN, ha.connect, w, "guess", "127.0.0.1", control)
    w.close()
    assert ha.status(s)[0] == ha.STATE_PRIMARY

    # A new connection replaces the older one: the older one's next call fails as closed.
    u = socket.socket()
    ha.connect(u, "tok", ip="127.0.0.1", port=control)
    raises(ha.ERR_HA_CLOSED, ha.status, s)
    ha.bemaster(u, "n1")
    for x in (s, t, u):
        x.close()
    assert a.h.stop() == 0 and b.h.stop() == 0


def test_notifications_shaped_like_ncs_events(halod_factory):
    a, b = Node(halod_factory, "a"), Node(halod_factory, "b")
    ctl_a = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    ha.connect(ctl_a, "tok", pstr=a.ha_sock)
    notes = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    events.notifications_connect(notes, events.NOTIF_HA_INFO, path=a.ha_sock, token="tok")
    ha.beprimary(ctl_a, "n1")
    assert events.read_notification(notes) == {"type": events.NOTIF_HA_INFO, "hnot": {"type": ha.HA_INFO_IS_PRIMARY}}
    ctl_b = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    ha.connect(ctl_b, "tok", pstr=b.ha_sock)
    notes_b = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    events.notifications_connect(notes_b, events.NOTIF_HA_INFO, path=b.ha_sock, token="tok")
    ha.besecondary(ctl_b, "n2", "n1", a.addr, True)
    node = {"nodeid": "n2", "af": socket.AF_UNSPEC, "str": None}
    assert events.read_notification(notes) == {
        "type": events.NOTIF_HA_INFO,
        "hnot": {"type": ha.HA_INFO_SECONDARY_ARRIVED, "secondary_arrived": node, "slave_arrived": node}}
    got = [events.read_notification(notes_b)["hnot"] for _ in range(2)]
    assert got[0]["type"] == ha.HA_INFO_SECONDARY_INITIALIZED and got[0]["cdb_initialized_by_copy"] in (0, 1)
    assert got[1]["type"] == ha.HA_INFO_BESECONDARY_RESULT
    assert got[1]["besecondary_result"] == got[1]["beslave_result"] == 0
    # The primary goes away: the secondary's NOPRIMARY carries ConfD's reason code.
    a.h.remember_children()
    a.h.kill_all()
    n = events.read_notification(notes_b)["hnot"]
    assert n["type"] == ha.HA_INFO_NOPRIMARY and n["noprimary"] == n["nomaster"]
    assert n["noprimary"] in (ha.ERR_HA_CLOSED, ha.ERR_HA_NOTICK), n
    with pytest.raises(error.Error) as e:
        wrong = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        events.notifications_connect(wrong, events.NOTIF_HA_INFO, path=b.ha_sock, token="not the token")
    assert e.value.confd_errno == ha.ERR_HA_BADTOKEN
    with pytest.raises(ValueError):
        events.notifications_connect(wrong, 1, path=b.ha_sock)  # halo has HA notifications only
    for x in (ctl_a, ctl_b, notes, notes_b, wrong):
        x.close()
    assert b.h.stop() == 0
