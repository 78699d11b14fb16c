# SPDX-License-Identifier: MIT
"""The halo.ha Python module (a C extension over libhalo) against seed 002's _ncs.ha, and against real halods."""
import inspect
import os
import socket
import sys

import pytest

from halo_harness import BUILD, cdb_only_yaml, free_port

sys.path.insert(0, os.path.join(BUILD, "src", "python"))
from halo import ha  # noqa: E402

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
    assert ha.status(t) == (ha.STATE_SECONDARY, ["n1"])
    assert ha.status(s) == (ha.STATE_PRIMARY, ["n2"])
    ha.berelay(t)
    assert ha.status(t)[0] == ha.STATE_SECONDARY_RELAY == ha.STATE_SLAVE_RELAY

    # Refusals raise ha.error(errno, message) with distinct codes.
    with pytest.raises(ha.error) as e:
        ha.berelay(s)
    assert e.value.args[0] == ha.ERR_HA_BADSTATE
    with pytest.raises(ha.error) as e:
        ha.beprimary(s, "another-name")
    assert e.value.args[0] == ha.ERR_HA_BADNAME
    ha.slave_dead(s, "n2")  # the deprecated names work
    ha.benone(t)
    with pytest.raises(ha.error) as e:
        ha.beslave(t, "n2", "n1", f"127.0.0.1:{free_port()}", True)
    assert e.value.args[0] == ha.ERR_HA_CONNECT

    # A new connection replaces the older one: the older one's next call fails as closed.
    u = socket.socket()
    ha.connect(u, "tok", ip="127.0.0.1", port=control)
    with pytest.raises(ha.error) as e:
        ha.status(s)
    assert e.value.args[0] == ha.ERR_HA_CLOSED
    ha.bemaster(u, "n1")
    for x in (s, t, u):
        x.close()
    assert a.h.stop() == 0 and b.h.stop() == 0


def test_notifications_from_python(halod_factory):
    a, b = Node(halod_factory, "a"), Node(halod_factory, "b")
    ctl_a = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    ha.connect(ctl_a, "tok", pstr=a.ha_sock)
    notes = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    ha.notifications_connect(notes, "tok", pstr=a.ha_sock)
    ha.beprimary(ctl_a, "n1")
    assert ha.read_notification(notes)["type"] == ha.INFO_IS_PRIMARY
    ctl_b = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    ha.connect(ctl_b, "tok", pstr=b.ha_sock)
    ha.besecondary(ctl_b, "n2", "n1", a.addr, True)
    n = ha.read_notification(notes)
    assert n["type"] == ha.INFO_SECONDARY_ARRIVED and n["nodeid"] == "n2"
    with pytest.raises(ha.error) as e:
        wrong = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        ha.notifications_connect(wrong, "not the token", pstr=a.ha_sock)
    assert e.value.args[0] == ha.ERR_HA_BADTOKEN
    for x in (ctl_a, ctl_b, notes, wrong):
        x.close()
    assert a.h.stop() == 0 and b.h.stop() == 0
