# SPDX-License-Identifier: MIT
"""halo.component's services (docs/python.md): checkpoints, names, event channels and transactions across
participants, from Python components that one real halod drives and from this process, and their argument checks.

Run as a program, this file is that component (see component_main): pa (ACTIVE) and pb (STANDBY) of a 2N group,
both participants of transactions.  It logs what it sees as JSON lines to $PYSVC_LOG and obeys JSON commands
([op, args...]) on the UNIX socket $PYSVC_CTL/<component>."""
import errno
import gc
import json
import os
import select
import socket
import sys
import time
import weakref

import pytest

from halo_harness import BUILD, Halod, local_defaults, wait_for

PYPATH = os.path.join(BUILD, "src", "python")
sys.path.insert(0, PYPATH)
from halo import component as hc  # noqa: E402
from test_python_cdb import dispatch_until  # noqa: E402


# ---- the component ---------------------------------------------------------------------------------------

class Comp:
    def __init__(self):
        self.name = os.environ["HALO_COMPONENT"]
        self.log_f = open(os.environ["PYSVC_LOG"], "a")
        self.later = []  # transactions whose vote prepare left for later
        self.exit = False
        self.h = hc.open(csi_set=self.csi_set, csi_remove=self.csi_remove, terminate=self.terminate)
        self.h.txn_participate(self.prepare, self.outcome)

    def log(self, ev, **kw):
        self.log_f.write(json.dumps({"ev": ev, "comp": self.name, "pid": os.getpid(), **kw}) + "\n")
        self.log_f.flush()

    def csi_set(self, h, inv, comp, state, csi):
        h.response(inv)

    def csi_remove(self, h, inv, comp, csi_name, flags):
        h.response(inv)

    def terminate(self, h, inv, comp):
        h.response(inv)
        sys.exit(0)

    def prepare(self, h, txid, comp, data):
        self.log("prepare", txid=txid, data=data.decode())
        if data == b"no":
            return -errno.EPERM
        if data == b"later":
            self.later.append(txid)
            return hc.TXN_VOTE_LATER
        if data == b"raise":
            raise RuntimeError(f"prepare raised in {self.name}")
        if data == b"not-a-vote":
            return "yes"
        return None

    def outcome(self, h, txid, comp, commit):
        self.log("outcome", txid=txid, commit=commit)

    def command(self, cmd):
        op, args = cmd[0], cmd[1:]
        if op == "ckpt_write":  # name, section, data, csi
            with self.h.ckpt_open(args[0], True, retention_msec=60000, csi=args[3]) as c:
                return c.write(args[1], args[2])
        if op == "vote":
            return self.h.txn_vote(self.later.pop(0))
        if op == "exit":
            self.exit = True
            return None
        return getattr(self.h, op)(*args)

    def serve_ctl(self, conn):
        with conn:
            cmd = json.loads(conn.makefile().readline())
            try:
                reply = {"ok": self.command(cmd)}
            except hc.Error as e:
                reply = {"err": "Error", "errno": e.errno, "msg": str(e)}
            except Exception as e:
                reply = {"err": type(e).__name__, "msg": str(e)}
            conn.sendall((json.dumps(reply) + "\n").encode())
        if self.exit:
            sys.exit(3)  # a failure to halod: it removes what the component registered

    def run(self):
        ctl = socket.socket(socket.AF_UNIX)
        path = os.path.join(os.environ["PYSVC_CTL"], self.name)
        if os.path.exists(path):  # a predecessor's
            os.unlink(path)
        ctl.bind(path)
        ctl.listen()
        self.h.register()
        while True:
            for fd in select.select([self.h.fileno(), ctl], [], [])[0]:
                if fd is ctl:
                    self.serve_ctl(ctl.accept()[0])
                    continue
                try:
                    self.h.dispatch()
                except Exception as e:  # a callback's: the component goes on
                    self.log("dispatch_raised", msg=str(e))


def component_main():
    Comp().run()


# ---- the tests --------------------------------------------------------------------------------------------

def yaml(tmp):
    return f"""
cluster: pytest
{local_defaults(timeouts="terminate: 2s, instantiate: 60s")}service-groups:
  py:
    redundancy: 2N
    component:
      command: {sys.executable}
      args: ["{os.path.abspath(__file__)}"]
      env: {{PYTHONPATH: "{PYPATH}", PYSVC_LOG: "{tmp}/events.log", PYSVC_CTL: "{tmp}"}}
    service-units:
      pa: {{node: local}}
      pb: {{node: local}}
    service-instances:
      si:
        csis:
          csi: {{}}
"""


class Cluster:
    def __init__(self, h, tmp):
        self.h, self.tmp = h, tmp

    def events(self, ev, comp=None):
        try:
            with open(os.path.join(self.tmp, "events.log")) as f:
                out = [json.loads(line) for line in f]
        except FileNotFoundError:
            return []
        return [e for e in out if e["ev"] == ev and (comp is None or e["comp"] == comp)]

    def wait_event(self, ev, comp, pred):
        return wait_for(lambda: next((e for e in self.events(ev, comp) if pred(e)), None), timeout=15,
                        what=f"{ev} of {comp}")

    def call(self, comp, *cmd):
        """Runs a command in comp's process; its JSON reply (None: the process ended before it answered)."""
        with socket.socket(socket.AF_UNIX) as s:
            s.settimeout(10)
            s.connect(os.path.join(self.tmp, comp))
            s.sendall((json.dumps(cmd) + "\n").encode())
            line = s.makefile().readline()
            return json.loads(line) if line else None

    def ready(self, comp):
        wait_for(lambda: self.call(comp, "fileno").get("ok"), timeout=30, what=f"{comp} answering")


@pytest.fixture(scope="module")
def svc(tmp_path_factory):
    tmp = str(tmp_path_factory.mktemp("pysvc"))
    h = Halod(yaml(tmp), name="pysvc")
    try:
        h.start()
        # Python under the sanitizer build's preloaded runtimes takes seconds to start on a loaded machine.
        assert h.wait_assigned("si", timeout=90) == ("pa", "pb")
        c = Cluster(h, tmp)
        for comp in ("pa", "pb"):
            c.ready(comp)
        yield c
    finally:
        h.kill_all()


@pytest.fixture
def handle(svc):
    with hc.open(svc.h.socket) as h:
        yield h


# ---- checkpoints ----

def test_a_checkpoint_written_by_a_component_is_read_and_followed_by_another_process(svc, handle):
    assert svc.call("pa", "ckpt_write", "py-state", "counter", "41", None) == {"ok": None}
    seen = []
    with handle.ckpt_open("py-state", updates=lambda h, *a: seen.append(a)) as c:
        assert c.read("counter") == b"41"
        assert c.name == "py-state"
        a = c.attributes
        assert (a.collocated, a.retention_msec, a.csi) == (False, 60000, None)
        # The component's next write reaches this process's updates callback.
        assert svc.call("pa", "ckpt_write", "py-state", "counter", "42", None) == {"ok": None}
        dispatch_until(handle, lambda: seen)
        assert seen[0][:3] == ("py-state", "counter", b"42") and seen[0][3] > 0
        c.write("extra", b"\x00\xff")
        c.write("b", "text")  # str is stored as UTF-8
        assert list(c) == [("b", b"text"), ("counter", b"42"), ("extra", b"\x00\xff")]
        assert c.sections() == list(c)
        c.overwrite("b", b"again")
        with pytest.raises(hc.Error) as e:
            c.overwrite("missing", b"x")
        assert (e.value.errno, e.value.function) == (errno.ENOENT, "overwrite")
        with pytest.raises(hc.Error) as e:
            c.write("b", b"x", hc.CKPT_CREATE_ONLY)
        assert e.value.code == -hc.EEXIST
        c.delete("extra")
        assert c.read("extra", None) is None
        dispatch_until(handle, lambda: ("py-state", "extra", None) in [s[:3] for s in seen])
    with pytest.raises(ValueError, match="closed"):
        c.read("b")
    # What a component wrote outlives its openers; unlinked, it is gone for everyone.
    with handle.ckpt_open("py-state") as c2:
        assert c2.read("b") == b"again"
    handle.ckpt_unlink("py-state")
    with pytest.raises(hc.Error) as e:
        handle.ckpt_open("py-state")
    assert e.value.errno == errno.ENOENT


def test_a_collocated_checkpoint_is_written_by_the_active_only(svc):
    assert svc.call("pa", "ckpt_write", "py-col", "s", "from-active", "csi") == {"ok": None}
    r = svc.call("pb", "ckpt_write", "py-col", "s", "from-standby", "csi")
    assert (r["err"], r["errno"]) == ("Error", errno.EPERM), r


def test_checkpoint_bad_input_is_refused_clearly(svc, handle):
    with pytest.raises(TypeError):
        handle.ckpt_open(5)
    with pytest.raises(ValueError, match="bad name 'bad/name'"):
        handle.ckpt_open("bad/name", True)
    with pytest.raises(TypeError, match="updates must be callable"):
        handle.ckpt_open("py-bad", True, updates=3)
    with handle.ckpt_open("py-bad", True, max_section_size=8) as c:
        with pytest.raises(TypeError, match=r"write\(\): data must be bytes or str, not int"):
            c.write("s", 12)
        with pytest.raises(ValueError, match="more than a section holds"):
            c.write("s", b"x" * (hc.CKPT_SECTION_MAX + 1))
        with pytest.raises(hc.Error) as e:
            c.write("s", b"123456789")  # over this checkpoint's max_section_size
        assert e.value.errno == errno.E2BIG
        with pytest.raises(ValueError, match="bad section id 'a/b'"):
            c.write("a/b", b"")
        with pytest.raises(ValueError, match="mode must be"):
            c.write("s", b"", 7)
        # A checkpoint whose handle was closed refuses calls (halo_close() freed it), and is freed safely.
        other = hc.open(svc.h.socket)
        c2 = other.ckpt_open("py-bad", updates=print)
        other.close()
        with pytest.raises(ValueError, match="the checkpoint is closed"):
            c2.read("s")
        del c2, other
    # Closed by its only opener with no retention time: halod deletes it.
    def gone():
        try:
            handle.ckpt_open("py-bad").close()
        except hc.Error as e:
            return e.errno == errno.ENOENT
    wait_for(gone, what="py-bad deleted")


# ---- event channels ----

def test_an_event_reaches_only_the_subscriptions_whose_filters_match(svc, handle):
    got = {"disk": [], "net": [], "mask": []}
    with hc.open(svc.h.socket) as pub:
        for h in (handle, pub):
            h.evt_open("py-alarms")
        s_disk = handle.evt_subscribe("py-alarms", [(hc.EVT_PREFIX, b"disk"), hc.EVT_PASS_ALL],
                                      lambda h, ev: got["disk"].append(ev))
        s_net = handle.evt_subscribe("py-alarms", [(hc.EVT_EXACT, "net")], lambda h, ev: got["net"].append(ev))
        handle.evt_subscribe("py-alarms", [hc.EVT_PASS_ALL, (hc.EVT_MASK, b"\x80", b"\xf0")],
                             lambda h, ev: got["mask"].append(ev))
        seq = pub.evt_publish("py-alarms", [b"disk-3", b"\x8f"], b"payload")
        dispatch_until(handle, lambda: got["disk"] and got["mask"])
        ev = got["disk"][0]
        assert (ev.subscription, ev.channel, ev.pattern, ev.payload, ev.pub_seq) == \
            (s_disk, "py-alarms", (b"disk-3", b"\x8f"), b"payload", seq)
        assert ev.publisher.endswith(f"/{os.getpid()}") and ev.hlc > 0 and ev.lost == 0
        pub.evt_publish("py-alarms", ["net", b"\x70"], "second")
        dispatch_until(handle, lambda: got["net"])
        assert [e.payload for e in got["net"]] == [b"second"]
        # Unsubscribed: a later matching event is not delivered; one published after it is.
        handle.evt_unsubscribe(s_net)
        pub.evt_publish("py-alarms", ["net"], "third")
        pub.evt_publish("py-alarms", ["disk-4"], "fourth")
        dispatch_until(handle, lambda: len(got["disk"]) == 2)
        assert [e.payload for e in got["disk"]] == [b"payload", b"fourth"]
        assert [e.payload for e in got["net"]] == [b"second"]
        assert [e.payload for e in got["mask"]] == [b"payload"]


def test_an_exception_in_an_event_callback_leaves_dispatch(svc, handle):
    def boom(h, ev):
        raise KeyError("from the callback")
    handle.evt_open("py-raise", hc.EVT_LOCAL)
    assert handle.evt_subscribe("py-raise", [], boom, scope=hc.EVT_LOCAL) >= 0
    handle.evt_publish("py-raise", [b"x"], scope=hc.EVT_LOCAL)
    with pytest.raises(KeyError, match="from the callback"):
        dispatch_until(handle, lambda: False)
    assert handle.evt_publish("py-raise", [b"y"], scope=hc.EVT_LOCAL) > 0  # the handle works on


def test_event_bad_input_is_refused_clearly(handle):
    handle.evt_open("py-bad")
    with pytest.raises(ValueError, match="bad channel name 'no/such'"):
        handle.evt_open("no/such")
    with pytest.raises(TypeError, match="pattern fields must be a sequence"):
        handle.evt_publish("py-bad", 5)
    with pytest.raises(TypeError, match="pattern fields must be a sequence, not str"):
        handle.evt_publish("py-bad", "one field")
    with pytest.raises(TypeError, match="a pattern field must be bytes or str, not int"):
        handle.evt_publish("py-bad", [1])
    with pytest.raises(ValueError, match="17 pattern fields, more than 16"):
        handle.evt_publish("py-bad", [b"x"] * 17)
    with pytest.raises(ValueError, match="payload over 4096"):
        handle.evt_publish("py-bad", [b"x"], b"p" * (hc.EVT_PAYLOAD_MAX + 1))
    with pytest.raises(TypeError, match="a filter must be"):
        handle.evt_subscribe("py-bad", [(9, b"x")], print)
    with pytest.raises(ValueError, match="mask must be as long as its value"):
        handle.evt_subscribe("py-bad", [(hc.EVT_MASK, b"ab", b"\xff")], print)
    with pytest.raises(TypeError, match="callback must be callable"):
        handle.evt_subscribe("py-bad", [], None)
    with pytest.raises(hc.Error) as e:
        handle.evt_publish("py-never-opened", [b"x"])
    assert e.value.errno == errno.ENOENT


# ---- transactions across participants ----

def commit(svc, h, parts):
    done = []
    t = h.txn_begin()
    for comp, data in parts:
        t.add(comp, data)
    txid = t.commit(lambda h, txid, result, reason: done.append((txid, result, reason)))
    assert t.txid == txid
    dispatch_until(h, lambda: done, timeout=20)
    assert done[0][0] == txid
    return txid, done[0][1], done[0][2]


def outcomes(svc, txid, comps=("pa", "pb")):
    """What each of comps was told of txid: True commit, False abort."""
    return {comp: svc.wait_event("outcome", comp, lambda e: e["txid"] == txid)["commit"] for comp in comps}


def test_a_2pc_commits_on_two_python_participants_and_a_no_vote_rolls_it_back(svc, handle):
    txid, result, _ = commit(svc, handle, [("pa", b"set x=1"), ("pb", b"set x=1")])
    assert result == 0
    assert outcomes(svc, txid) == {"pa": True, "pb": True}
    assert {e["comp"]: e["data"] for e in svc.events("prepare") if e["txid"] == txid} == \
        {"pa": "set x=1", "pb": "set x=1"}
    assert handle.txn_outcome(txid) == (0, None)  # asked again by id, as a restarted initiator would
    txid, result, reason = commit(svc, handle, [("pa", b"set y=2"), ("pb", b"no")])
    assert result == -errno.ECANCELED and "pb" in reason, reason
    assert outcomes(svc, txid, ["pa"]) == {"pa": False}  # the yes voter rolls back
    assert handle.txn_outcome(txid=txid) == (-errno.ECANCELED, reason)


def test_a_participant_votes_later_and_one_that_raises_votes_no_and_lives(svc, handle):
    done = []
    t = handle.txn_begin()
    t.add("pa", "later")
    t.add("pb", "ok")
    txid = t.commit(lambda h, txid, result, reason: done.append(result))
    svc.wait_event("prepare", "pa", lambda e: e["txid"] == txid)
    assert svc.call("pa", "vote") == {"ok": None}
    dispatch_until(handle, lambda: done, timeout=20)
    assert done == [0] and outcomes(svc, txid) == {"pa": True, "pb": True}
    pid = svc.h.pid_of("pb")
    txid, result, _ = commit(svc, handle, [("pa", b"ok"), ("pb", b"raise")])
    assert result == -errno.ECANCELED
    # pb's dispatch() raised the callback's exception in its loop, which went on.
    assert svc.wait_event("dispatch_raised", "pb", lambda e: True)["msg"] == "prepare raised in pb"
    assert outcomes(svc, txid, ["pa"]) == {"pa": False}
    # An answer that is not a vote is a no too, and dispatch() says why.
    txid, result, _ = commit(svc, handle, [("pa", b"ok"), ("pb", b"not-a-vote")])
    assert result == -errno.ECANCELED
    assert "prepare must return None or 0 (yes)" in svc.wait_event(
        "dispatch_raised", "pb", lambda e: e["msg"] != "prepare raised in pb")["msg"]
    assert svc.h.pid_of("pb") == pid


def test_transaction_bad_input_is_refused_clearly(svc, handle):
    t = handle.txn_begin()
    with pytest.raises(TypeError):
        t.add(1, b"x")
    with pytest.raises(ValueError, match="more than TXN_DATA_MAX"):
        t.add("pa", b"x" * (hc.TXN_DATA_MAX + 1))
    with pytest.raises(ValueError, match="no participant"):
        t.commit()
    with pytest.raises(ValueError, match="already committed"):
        t.add("pa", b"x")
    t = handle.txn_begin()
    t.add("pa", b"x")
    with pytest.raises(ValueError, match="named twice"):
        t.add("pa", b"y")
    with pytest.raises(TypeError, match="done must be callable"):
        t.commit(5)
    t.abort()
    t = handle.txn_begin()
    t.add("nobody", b"x")
    with pytest.raises(hc.Error) as e:
        t.commit()
    assert e.value.code == -hc.EUNKNOWN
    with pytest.raises(ValueError, match="both prepare and outcome"):
        handle.txn_participate(print, None)
    with pytest.raises(hc.Error) as e:
        handle.txn_outcome("no-such-transaction")
    assert e.value.code == -hc.EUNKNOWN
    with pytest.raises(ValueError, match="bad transaction id"):
        handle.txn_outcome("")
    with pytest.raises(TypeError):
        handle.txn_outcome(None)


# ---- names (last: pa exits) ----

def test_name_bad_input_is_refused_clearly(svc, handle):
    with pytest.raises(ValueError, match="bad context 'svc' or name 'bad/name'"):
        handle.name_lookup("svc", "bad/name")
    with pytest.raises(hc.Error) as e:  # only a registered component registers names
        handle.name_register("svc", "mine", b"ref")
    assert e.value.code == -hc.ENOTREG
    with pytest.raises(TypeError, match="attributes must be a dict"):
        handle.name_register("svc", "mine", b"ref", ["a"])
    with pytest.raises(TypeError, match="ref must be bytes or str"):
        handle.name_register("svc", "mine", 5)
    r = svc.call("pa", "name_register", "svc", "big", "r" * (hc.NAME_REF_MAX + 1))
    assert r["err"] == "ValueError" and "ref over 1024 bytes" in r["msg"], r
    r = svc.call("pa", "name_register", "svc", "attrs", "r", {"k": 1})
    assert r["err"] == "TypeError" and "map str to str" in r["msg"], r


def test_a_name_registered_by_a_component_is_found_and_gone_when_it_exits(svc, handle):
    notes = []
    track = handle.name_track("svc", "py-db", lambda h, t, change, reason, e: notes.append((change, reason, e)))
    assert svc.call("pa", "name_register", "svc", "py-db", "addr-a", {"role": "primary"}, 10) == {"ok": None}
    assert svc.call("pb", "name_register", "svc", "py-db", "addr-b", None, 5) == {"ok": None}
    [e] = handle.name_lookup("svc", "py-db")
    assert tuple(e) == ("svc", "py-db", b"addr-a", {"role": "primary"}, 10, "pa", "local")
    assert [(e.comp, e.priority) for e in handle.name_lookup("svc", "py-db", all=True)] == [("pa", 10), ("pb", 5)]
    dispatch_until(handle, lambda: len(notes) == 2)
    assert [(n[0], n[1], n[2].comp) for n in notes] == [(hc.NAME_ADDED, hc.NAME_REGISTERED, "pa"),
                                                       (hc.NAME_ADDED, hc.NAME_REGISTERED, "pb")]
    # pa exits: halod removes its registration, and the tracker hears why.
    assert svc.call("pa", "exit") == {"ok": None}
    wait_for(lambda: [e.comp for e in handle.name_lookup("svc", "py-db", all=True)] == ["pb"],
             what="pa's registration gone")
    dispatch_until(handle, lambda: len(notes) == 3)
    assert (notes[2][0], notes[2][1], notes[2][2].comp) == (hc.NAME_REMOVED, hc.NAME_COMPONENT_FAILED, "pa")
    assert svc.call("pb", "name_deregister", "svc", "py-db") == {"ok": None}
    with pytest.raises(hc.Error) as e:
        handle.name_lookup("svc", "py-db")
    assert e.value.errno == errno.ENOENT
    handle.name_track_stop(track)
    with pytest.raises(hc.Error):
        handle.name_track_stop(track)


def test_callbacks_in_reference_cycles_are_freed(svc):
    """An application object holding its handle, whose callbacks reach it back: collected once dropped."""
    class App:
        pass
    app = App()
    app.h = hc.open(svc.h.socket)
    app.c = app.h.ckpt_open("py-cycle", True, updates=lambda *a: app)
    app.h.evt_open("py-cycle")
    app.sub = app.h.evt_subscribe("py-cycle", [], lambda *a: app)
    app.track = app.h.name_track("svc", "py-cycle", lambda *a: app)
    app.h.txn_participate(lambda *a: app, lambda *a: app)
    app.t = app.h.txn_begin()
    app.t.add("pb", b"x")
    app.t.commit(lambda *a: app)
    gone = weakref.ref(app)
    del app
    gc.collect()
    assert gone() is None


if __name__ == "__main__":
    component_main()
