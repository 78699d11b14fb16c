# SPDX-License-Identifier: MIT
"""halo.component, the Python binding of libhalo's component API, against real halods: Python components
that halod starts, assigns, health-checks, quiesces, fails over and terminates (docs/python.md).

Run as a program, this file is that component (see component_main): it logs every callback as a JSON line
to $PYCOMP_LOG and obeys JSON commands ([method, args...]) on the UNIX socket $PYCOMP_CTL/<component>."""
import json
import os
import signal
import socket
import subprocess
import sys
import time

import pytest

from halo_harness import BUILD, HALOCTL, local_defaults, wait_for

PYPATH = os.path.join(BUILD, "src", "python")
sys.path.insert(0, PYPATH)
from halo import component as hc  # noqa: E402

STATES = {1: "ACTIVE", 2: "STANDBY", 3: "QUIESCED", 4: "QUIESCING"}


# ---- the component ---------------------------------------------------------------------------------------

class Comp:
    def __init__(self):
        self.name = os.environ["HALO_COMPONENT"]
        self.log_f = open(os.environ["PYCOMP_LOG"], "a")
        self.answer_hc = True
        self.hc_count = 0
        self.hold_quiescing = None  # the invocation of a QUIESCING held until a "complete" command
        self.raise_in = os.environ.get("PYCOMP_RAISE_IN")
        self.h = hc.open(csi_set=self.csi_set, csi_remove=self.csi_remove, terminate=self.terminate,
                         healthcheck=self.healthcheck, pg_track=self.pg_track, link_state=self.link_state)

    def log(self, ev, **kw):
        self.log_f.write(json.dumps({"ev": ev, "comp": self.name, "pid": os.getpid(), **kw}) + "\n")
        self.log_f.flush()

    def maybe_raise(self, where):
        if self.raise_in == where:
            self.raise_in = None  # once
            raise RuntimeError(f"raised in {where} by {self.name}")

    def csi_set(self, h, inv, comp, state, csi):
        self.log("csi_set", state=STATES[state], csi=csi.csi_name, si=csi.si_name, attrs=csi.attributes,
                 transition=csi.transition, active_comp=csi.active_comp)
        if state == hc.QUIESCING:
            self.hold_quiescing = inv
        else:
            h.response(inv)
        self.maybe_raise("csi_set")

    def csi_remove(self, h, inv, comp, csi_name, flags):
        self.log("csi_remove", csi=csi_name, flags=flags)
        h.response(inv)

    def terminate(self, h, inv, comp):
        self.log("terminate")
        h.response(inv)
        sys.exit(0)

    def healthcheck(self, h, inv, comp, key):
        self.hc_count += 1
        if self.answer_hc:
            h.response(inv)

    def pg_track(self, h, csi, members, error):
        self.log("pg_track", csi=csi, error=error,
                 members=sorted([m.comp_name, STATES.get(m.ha_state), m.change] for m in members))

    def link_state(self, h, state, error):
        self.log("link_state", state={hc.LINK_LOST: "LOST", hc.LINK_RESTORED: "RESTORED",
                                      hc.LINK_FAILED: "FAILED"}[state], error=error)

    def command(self, cmd):
        op, args = cmd[0], cmd[1:]
        if op == "blocks":  # for a leak check: the interpreter's allocated blocks, and the checks answered
            import gc
            gc.collect()
            return [sys.getallocatedblocks(), self.hc_count]
        if op == "hc_silent":
            self.answer_hc = False
            return None
        if op == "complete":
            inv, self.hold_quiescing = self.hold_quiescing, None
            return self.h.quiescing_complete(inv)
        return getattr(self.h, op)(*args)

    def serve_ctl(self, conn):
        with conn:
            cmd = json.loads(conn.makefile().readline())
            try:
                reply = {"ok": self.command(cmd)}
            except hc.Error as e:
                reply = {"err": "Error", "code": e.code, "msg": str(e)}
            conn.sendall((json.dumps(reply) + "\n").encode())

    def run(self):
        import selectors
        ctl = socket.socket(socket.AF_UNIX)
        path = os.path.join(os.environ["PYCOMP_CTL"], self.name)
        if os.path.exists(path):  # a killed predecessor's
            os.unlink(path)
        ctl.bind(path)
        ctl.listen()
        sel = selectors.DefaultSelector()
        sel.register(self.h.fileno(), selectors.EVENT_READ, "halo")
        sel.register(ctl, selectors.EVENT_READ, "ctl")
        self.h.register()
        self.h.healthcheck_start("default")
        self.log("registered")
        while True:
            for key, _ in sel.select():
                if key.data == "ctl":
                    self.serve_ctl(ctl.accept()[0])
                    continue
                try:
                    self.h.dispatch()
                except RuntimeError as e:  # a callback's: dispatch() raised it, with the callback's traceback
                    tb = e.__traceback__
                    while tb.tb_next:
                        tb = tb.tb_next
                    self.log("dispatch_raised", msg=str(e), where=tb.tb_frame.f_code.co_name)


def component_main():
    Comp().run()


# ---- the tests --------------------------------------------------------------------------------------------

def yaml(tmp, hc_period="200ms", hc_timeout="600ms", env=""):
    return f"""
cluster: pytest
{local_defaults(hc_period, hc_timeout, "terminate: 2s, quiescing: 10s")}service-groups:
  py:
    redundancy: 2N
    component:
      command: {sys.executable}
      args: ["{os.path.abspath(__file__)}"]
      env: {{PYTHONPATH: "{PYPATH}", PYCOMP_LOG: "{tmp}/events.log", PYCOMP_CTL: "{tmp}"{env}}}
    service-units:
      py-a: {{node: local}}
      py-b: {{node: local}}
    service-instances:
      si:
        csis:
          csi: {{attributes: {{color: blue}}}}
"""


class Cluster:
    def __init__(self, h, tmp):
        self.h, self.tmp = h, tmp

    def events(self, ev=None, comp=None):
        try:
            with open(os.path.join(self.tmp, "events.log")) as f:
                out = [json.loads(line) for line in f]
        except FileNotFoundError:
            return []
        return [e for e in out if (ev is None or e["ev"] == ev) and (comp is None or e["comp"] == comp)]

    def wait_event(self, ev, comp=None, pred=lambda e: True, n=1, timeout=15):
        return wait_for(lambda: (lambda es: es[n - 1] if len(es) >= n else None)(
            [e for e in self.events(ev, comp) if pred(e)]), timeout=timeout, what=f"{ev} of {comp}")

    def call(self, comp, *cmd):
        """Runs a command in comp's process; its JSON reply."""
        with socket.socket(socket.AF_UNIX) as s:
            s.settimeout(10)
            s.connect(os.path.join(self.tmp, comp))
            s.sendall((json.dumps(cmd) + "\n").encode())
            line = s.makefile().readline()
            return json.loads(line) if line else None  # None: the process ended before it answered


def start(halod_factory, tmp_path, **kw):
    h = halod_factory(yaml(tmp_path, **kw)).start()
    h.wait_assigned("si")
    c = Cluster(h, str(tmp_path))
    for comp in ("py-a", "py-b"):
        wait_for(lambda: os.path.exists(os.path.join(c.tmp, comp)), what=f"{comp}'s control socket")
    return c


@pytest.fixture
def cluster(halod_factory, tmp_path):
    c = start(halod_factory, tmp_path)
    yield c
    c.h.stop()


def test_python_components_register_and_get_active_and_standby(cluster):
    assert cluster.h.wait_assigned("si") == ("py-a", "py-b")
    a = cluster.wait_event("csi_set", "py-a")
    b = cluster.wait_event("csi_set", "py-b")
    assert (a["state"], a["csi"], a["si"], a["attrs"]) == ("ACTIVE", "csi", "si", {"color": "blue"})
    assert a["transition"] == hc.CSI_NEW_ASSIGN
    assert (b["state"], b["active_comp"]) == ("STANDBY", "py-a")
    # The pid halod shows is the Python process that registered.
    assert cluster.h.pid_of("py-a") == a["pid"]
    assert cluster.call("py-a", "ha_state_get", "csi") == {"ok": hc.ACTIVE}
    assert cluster.call("py-b", "ha_state_get", "csi") == {"ok": hc.STANDBY}
    r = cluster.call("py-a", "ha_state_get", "no-such-csi")
    assert r["err"] == "Error" and r["code"] in (-hc.EUNKNOWN, -2), r


def test_callbacks_leak_nothing(halod_factory, tmp_path):
    """Each health check runs the healthcheck callback through the module: over 100 more of them the
    component's interpreter holds about as many memory blocks as before (a leak of one object per callback
    would show 100).  Its own halod checks every 20 ms, so the 100 take 2 s, not the 20 s of the usual
    200 ms.  The test asks for the count twice a second only: each question is a call into the component
    too, and polled every 20 ms their own leftovers came near the bound (45 blocks once, in CI under
    sanitizers)."""
    cluster = start(halod_factory, tmp_path, hc_period="20ms", hc_timeout="2s")
    def blocks_after(k):
        wait_for(lambda: cluster.call("py-a", "blocks")["ok"][1] >= k, timeout=60, interval=0.5,
                 what=f"{k} health checks")
        return cluster.call("py-a", "blocks")["ok"]
    _, n = blocks_after(10)  # warmed up
    before, n = blocks_after(n + 1)
    after, _ = blocks_after(n + 100)
    assert after - before < 40, (before, after)
    cluster.h.stop()


def test_kill9_of_the_python_active_and_the_python_standby_takes_over(cluster):
    victim = cluster.h.pid_of("py-a")
    os.kill(victim, signal.SIGKILL)
    wait_for(lambda: cluster.h.si("si")["active"] == "py-b", timeout=5, what="py-b ACTIVE")
    e = cluster.wait_event("csi_set", "py-b", lambda e: e["state"] == "ACTIVE")
    assert e["transition"] == hc.CSI_NOT_QUIESCED  # a failover: the old ACTIVE was not quiesced
    assert cluster.h.wait_assigned("si") == ("py-b", "py-a")
    assert cluster.h.pid_of("py-a") != victim


def test_a_missed_health_check_fails_the_python_active_over(cluster):
    pid = cluster.h.pid_of("py-a")
    assert cluster.call("py-a", "hc_silent") == {"ok": None}
    wait_for(lambda: cluster.h.si("si")["active"] == "py-b", timeout=10, what="py-b ACTIVE after the missed check")
    wait_for(lambda: cluster.h.pid_of("py-a") not in (None, pid), timeout=10, what="py-a restarted")


def test_error_report_fails_the_python_active_over(cluster):
    pid = cluster.h.pid_of("py-a")
    # halod answers, then stops py-a: its reply to us may be cut short with it.
    assert cluster.call("py-a", "error_report", hc.RECOVERY_COMPONENT_FAILOVER) in ({"ok": None}, None)
    wait_for(lambda: cluster.h.si("si")["active"] == "py-b", timeout=10, what="py-b ACTIVE after error_report")
    assert "reported an error (recommended recovery" in cluster.h.logtext()
    wait_for(lambda: cluster.h.pid_of("py-a") not in (None, pid), timeout=10, what="py-a restarted")


def test_component_invoked_health_check_confirmed_then_failed(cluster):
    assert cluster.call("py-a", "healthcheck_stop", "default") == {"ok": None}
    assert cluster.call("py-a", "healthcheck_stop", "default")["code"] == -2  # -ENOENT: not started
    assert cluster.call("py-a", "healthcheck_start", "default", hc.HC_COMPONENT_INVOKED) == {"ok": None}
    assert cluster.call("py-a", "healthcheck_start", "default")["code"] == -hc.EEXIST
    assert cluster.call("py-a", "healthcheck_confirm", "default", 0) == {"ok": None}
    assert cluster.h.si("si")["active"] == "py-a"
    # A confirmed failure fails it over (the reply may be cut short as halod stops py-a).
    assert cluster.call("py-a", "healthcheck_confirm", "default", -5) in ({"ok": None}, None)
    wait_for(lambda: cluster.h.si("si")["active"] == "py-b", timeout=10, what="py-b ACTIVE after the failed check")


def test_switchover_quiesces_the_python_active_until_it_completes(cluster):
    # haloctl switchover waits for the switchover's end: in the background.
    sw = subprocess.Popen([HALOCTL, "--socket", cluster.h.socket, "switchover", "si"], stdout=subprocess.PIPE,
                          stderr=subprocess.STDOUT, text=True)
    cluster.wait_event("csi_set", "py-a", lambda e: e["state"] == "QUIESCING")
    # Until py-a says it is done, py-b is not made ACTIVE.
    time.sleep(0.5)  # a chance for a wrong early ACTIVE to show; not a correctness bound
    assert [e["state"] for e in cluster.events("csi_set", "py-b")] == ["STANDBY"]
    assert sw.poll() is None
    assert cluster.call("py-a", "complete") == {"ok": None}
    assert sw.wait(15) == 0, sw.stdout.read() + cluster.h.logtext()[-3000:]
    e = cluster.wait_event("csi_set", "py-b", lambda e: e["state"] == "ACTIVE")
    assert e["transition"] == hc.CSI_QUIESCED
    assert cluster.h.wait_assigned("si") == ("py-b", "py-a")


def test_python_components_ride_through_a_halod_restart(cluster):
    h = cluster.h
    pids = {c: h.pid_of(c) for c in ("py-a", "py-b")}
    h.remember_children()
    h.proc.kill()
    h.proc.wait()
    h.log.close()
    for c in pids:
        cluster.wait_event("link_state", c, lambda e: e["state"] == "LOST")
    h.start()
    for c in pids:
        # halod starts again and adopts them; libhalo retries with a growing delay: generous on a slow machine.
        e = cluster.wait_event("link_state", c, lambda e: e["state"] == "RESTORED", timeout=30)
        assert e["error"] == 0
    # Adopted with their roles: same processes, no new CSI set.
    assert {c: h.pid_of(c) for c in pids} == pids
    assert h.wait_assigned("si") == ("py-a", "py-b")
    assert len(cluster.events("csi_set")) == 2


def test_halod_stop_terminates_python_components(halod_factory, tmp_path):
    c = start(halod_factory, tmp_path)
    pids = {comp: c.h.pid_of(comp) for comp in ("py-a", "py-b")}
    assert c.h.stop() == 0  # and no process left behind
    got = {e["comp"]: e["pid"] for e in c.events("terminate")}
    assert got == pids


def test_pg_track_sees_both_members_and_the_change(cluster):
    assert cluster.call("py-b", "pg_track", "csi", hc.TRACK_CURRENT | hc.TRACK_CHANGES) == {"ok": None}
    e = cluster.wait_event("pg_track", "py-b")
    assert (e["csi"], e["error"]) == ("csi", 0)
    assert [m[:2] for m in e["members"]] == [["py-a", "ACTIVE"], ["py-b", "STANDBY"]]
    os.kill(cluster.h.pid_of("py-a"), signal.SIGKILL)
    e = cluster.wait_event("pg_track", "py-b", lambda e: ["py-b", "ACTIVE"] in [m[:2] for m in e["members"]])
    assert cluster.call("py-b", "pg_track_stop", "csi") == {"ok": None}
    assert cluster.call("py-b", "pg_track_stop", "csi")["code"] == -2  # -ENOENT: no longer tracked


def test_an_exception_in_a_callback_leaves_dispatch_and_the_answer_stands(halod_factory, tmp_path):
    h = halod_factory(yaml(tmp_path, env=', PYCOMP_RAISE_IN: "csi_set"')).start()
    c = Cluster(h, str(tmp_path))
    # Both raised inside their first csi_set, after answering: dispatch() raised the callback's exception
    # in the component's loop, with the traceback of the callback.
    for comp in ("py-a", "py-b"):
        e = c.wait_event("dispatch_raised", comp)
        assert (e["msg"], e["where"]) == (f"raised in csi_set by {comp}", "maybe_raise")
    assert h.wait_assigned("si") == ("py-a", "py-b")
    h.stop()


if __name__ == "__main__":
    component_main()


def test_python_log_records_follow_the_level_halod_sets(cluster):
    """halo.component's log() and log_enabled(): the log service from Python (docs/logging.md)."""
    assert cluster.call("py-a", "log_enabled", hc.LOG_DEBUG) == {"ok": False}
    assert cluster.call("py-a", "log", hc.LOG_WARNING, "hello from python", "audit") == {"ok": None}
    wait_for(lambda: "py-a[audit] warning: hello from python" in cluster.h.logtext(), what="the record")
    cluster.call("py-a", "log", hc.LOG_DEBUG, "not yet")
    cluster.h.ctl("log-level", "comp:py-a", "debug")
    wait_for(lambda: cluster.call("py-a", "log_enabled", hc.LOG_DEBUG) == {"ok": True}, what="the new level")
    cluster.call("py-a", "log", hc.LOG_DEBUG, "now")
    wait_for(lambda: "py-a[app] debug: now" in cluster.h.logtext(), what="the debug record")
    assert "not yet" not in cluster.h.logtext()
