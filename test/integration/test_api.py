# SPDX-License-Identifier: MIT
"""The component API against a real halod: what a component sees and what halod does with its calls."""
import os
import signal

from halo_harness import TESTCOMP, proc_state, testcomp_events as events, wait_for


def svc_yaml(log, modes_a="", modes_b="", extra_sg=""):
    return f"""
cluster: api
defaults:
  component:
    health-check: {{period: 200ms, timeout: 600ms}}
    restart: {{max: 10, window: 60s, delay: 20ms}}
service-groups:
  svc:
    component:
      command: {TESTCOMP}
      env: {{TESTCOMP_LOG: "{log}"}}
    service-units:
      svc-a: {{component: {{env: {{TESTCOMP: "{modes_a}"}}}}}}
      svc-b: {{component: {{env: {{TESTCOMP: "{modes_b}"}}}}}}
    service-instances:
      svc:
        csis:
          svc-csi: {{attributes: {{colour: blue, size: "3"}}}}
{extra_sg}"""


def test_descriptor_carries_attributes_transitions_and_active_name(halod_factory, tmp_path):
    log = str(tmp_path / "comp.log")
    h = halod_factory(svc_yaml(log)).start()
    assert h.wait_assigned("svc") == ("svc-a", "svc-b")
    a = events(log, "svc-a", "CSI_SET")
    b = events(log, "svc-b", "CSI_SET")
    assert a[0][2:5] == ["svc-csi", "ACTIVE", "transition=1"]  # NEW_ASSIGN
    assert a[0][6] == "attrs=2"
    assert b[0][2:4] == ["svc-csi", "STANDBY"]
    assert b[0][5] == "active_comp=svc-a"  # the STANDBY learns who is ACTIVE
    # Failover: NOT_QUIESCED.
    os.kill(h.pid_of("svc-a"), signal.SIGKILL)
    wait_for(lambda: len(events(log, "svc-b", "CSI_SET")) >= 2, what="svc-b ACTIVE")
    assert events(log, "svc-b", "CSI_SET")[1][3:5] == ["ACTIVE", "transition=3"]
    # Switchover: QUIESCING first, then the new ACTIVE hears QUIESCED.
    h.wait_assigned("svc")
    h.ctl("switchover", "svc")
    # haloctl's answer comes as the old ACTIVE is sent STANDBY (docs/design.md, "Switchover"),
    # which it logs a moment later.
    wait_for(lambda: events(log, "svc-b", "CSI_SET")[-1][3] == "STANDBY", what="svc-b told STANDBY")
    a = events(log, "svc-a", "CSI_SET")
    b = events(log, "svc-b", "CSI_SET")
    assert b[-2][3] == "QUIESCING" and b[-1][3] == "STANDBY"
    assert a[-1][3:5] == ["ACTIVE", "transition=2"]  # QUIESCED
    h.stop()
    # SIGTERM gives every component its terminate callback.
    assert len(events(log, None, "TERMINATE")) == 2


def test_error_report_fails_over(halod_factory, tmp_path):
    log = str(tmp_path / "comp.log")
    h = halod_factory(svc_yaml(log, modes_a="error-report")).start()
    # halod fences the reporter at once, so it may die before it logs the reply.
    wait_for(lambda: h.si("svc")["active"] == "svc-b", what="failover after the error report")
    assert "reported an error" in h.su("svc-a")["last_failure"]
    h.stop()


def test_refused_csi_set_fails_the_unit(halod_factory, tmp_path):
    log = str(tmp_path / "comp.log")
    h = halod_factory(svc_yaml(log, modes_a="refuse-active")).start()
    wait_for(lambda: h.si("svc")["active"] == "svc-b", what="svc-b ACTIVE")
    assert "CSI set ACTIVE with error" in h.su("svc-a")["last_failure"]
    h.stop()


def test_component_invoked_health_check(halod_factory, tmp_path):
    log = str(tmp_path / "comp.log")
    h = halod_factory(svc_yaml(log, modes_a="component-hc", modes_b="component-hc")).start()
    assert h.wait_assigned("svc") == ("svc-a", "svc-b")
    assert not events(log, None, "HC_START_FAILED")
    hcs = h.comp("svc-a")["health_checks"]
    assert {"key": "self", "invoked": "component"} in hcs
    # Confirming keeps it healthy well past period + timeout...
    pid = h.pid_of("svc-a")
    import time
    time.sleep(1.5)
    assert h.pid_of("svc-a") == pid and h.si("svc")["active"] == "svc-a"
    # ... and stopping the confirms fails it.
    open(log + ".svc-a.stop-confirm", "w").close()
    wait_for(lambda: h.si("svc")["active"] == "svc-b", timeout=5, what="failover after missed confirms")
    assert "health check 'self'" in h.su("svc-a")["last_failure"]
    os.unlink(log + ".svc-a.stop-confirm")
    h.stop()


def test_protection_group_tracking_and_ha_state_get(halod_factory, tmp_path):
    log = str(tmp_path / "comp.log")
    watcher = f"""  watch:
    component:
      command: {TESTCOMP}
      env: {{TESTCOMP_LOG: "{log}", TESTCOMP: "track=svc-csi"}}
    service-units:
      watch-a: {{}}
      watch-b: {{}}
    service-instances:
      watch:
        csis:
          watch-csi: {{}}
"""
    h = halod_factory(svc_yaml(log, modes_a="state-get", modes_b="state-get", extra_sg=watcher)).start()
    h.wait_assigned("svc")
    h.wait_assigned("watch")
    # halo_ha_state_get() agrees with the CSI set each component got.
    wait_for(lambda: events(log, "svc-b", "STATE_GET"), what="svc-b state get")
    assert events(log, "svc-a", "STATE_GET")[0][2:5] == ["svc-csi", "ACTIVE", "0"]
    assert events(log, "svc-b", "STATE_GET")[0][2:5] == ["svc-csi", "STANDBY", "0"]
    assert all(e[3] == "0" for e in events(log, None, "TRACK"))
    # Each watcher got the group's members, and every later change.
    wait_for(lambda: any("svc-a:ACTIVE" in " ".join(e) and "svc-b:STANDBY" in " ".join(e)
                         for e in events(log, "watch-a", "PG")), what="the full group reported")
    n_before = len(events(log, "watch-a", "PG"))
    os.kill(h.pid_of("svc-a"), signal.SIGKILL)
    wait_for(lambda: any("svc-a:ACTIVE:3" in " ".join(e) for e in events(log, "watch-a", "PG")[n_before:]),
             what="svc-a reported REMOVED")
    wait_for(lambda: any("svc-b:ACTIVE:4" in " ".join(e) for e in events(log, "watch-a", "PG")[n_before:]),
             what="svc-b reported STATE_CHANGED to ACTIVE")
    h.stop()


def test_component_ignoring_terminate_is_killed_after_the_timeout(halod_factory, tmp_path):
    import time
    log = str(tmp_path / "comp.log")
    yaml = svc_yaml(log, modes_a="ignore-terminate").replace(
        "restart: {max: 10, window: 60s, delay: 20ms}",
        "restart: {max: 10, window: 60s, delay: 20ms}\n    timeouts: {terminate: 700ms}")
    h = halod_factory(yaml).start()
    h.wait_assigned("svc")
    stubborn = h.pid_of("svc-a")
    t0 = time.monotonic()
    assert h.stop() == 0  # asserts nothing is left behind
    took = time.monotonic() - t0
    assert len(events(log, None, "TERMINATE")) == 2  # both were asked politely first
    assert took >= 0.6, f"halod did not wait for the terminate timeout ({took:.2f}s)"
    assert "did not exit within" in h.logtext()
    assert proc_state(stubborn) is None


def test_components_start_clean(halod_factory, tmp_path):
    """No fd of halod leaks into a component; signals are reset; each runs in its own session."""
    log = str(tmp_path / "comp.log")
    h = halod_factory(svc_yaml(log)).start()
    h.wait_assigned("svc")
    pid = h.pid_of("svc-a")
    # stdin is /dev/null; stdout and stderr are halod's, by design (the component's output
    # goes where halod's goes); nothing else of halod's may be open in the component.
    assert os.readlink(f"/proc/{pid}/fd/0") == "/dev/null"
    targets = [os.readlink(f"/proc/{pid}/fd/{fd}") for fd in os.listdir(f"/proc/{pid}/fd") if int(fd) > 2]
    # The crash file is the component's own: libhalo opened it (docs/design.md, "Crash capture").
    crash_file = os.path.join(h.state, "crash", "svc-a")
    assert crash_file in targets
    assert not [t for t in targets if (h.state in t and t != crash_file) or t.endswith("halod.log")], targets
    halod_fds = {os.readlink(f"/proc/{h.proc.pid}/fd/{fd}") for fd in os.listdir(f"/proc/{h.proc.pid}/fd")}
    shared = [t for t in targets if t.startswith("socket:") and t in halod_fds]
    assert not shared, f"component shares halod's sockets {shared}"
    status = dict(l.split(":", 1) for l in open(f"/proc/{pid}/status").read().splitlines() if ":" in l)
    # Signals 1-31; glibc blocks its internal 32 and 33 briefly inside its own calls.
    assert int(status["SigBlk"].strip(), 16) & 0x7FFFFFFF == 0
    assert int(status["SigIgn"].strip(), 16) == 0  # halod ignores SIGPIPE; its children must not
    assert os.getsid(pid) == pid and os.getpgid(pid) == pid
    env = open(f"/proc/{pid}/environ", "rb").read().split(b"\0")
    assert b"HALO_COMPONENT=svc-a" in env
    assert f"HALO_SOCKET={h.socket}".encode() in env
    h.stop()


def test_status_longer_than_one_packet(halod_factory, tmp_path):
    """haloctl status of a cluster whose status JSON is past one HA-link packet
    (64 KiB): halod sends it in parts, haloctl puts them together."""
    import json
    long = "x" * 180
    sgs = []
    for g in range(40):
        sgs.append(f"""  g{g}{long}:
    component:
      command: {TESTCOMP}
    service-units:
      u{g}a{long}: {{}}
      u{g}b{long}: {{}}
    service-instances:
      s{g}{long}: {{csis: {{c{g}: {{}}}}}}""")
    h = halod_factory("cluster: big\nservice-groups:\n" + "\n".join(sgs) + "\n").start()
    def every_si_active():
        # 80 components starting at once on a slow machine: one may miss its first health check
        # and be restarted, its SI without an ACTIVE for a moment; what counts here is the status.
        text = h.ctl("status", "--json").stdout
        st = json.loads(text)
        return (text, st) if all(sg["service_instances"][0]["active"] for sg in st["service_groups"]) else None
    text, st = wait_for(every_si_active, timeout=30, interval=0.5, what="every SI with an ACTIVE in one status")
    assert len(text.encode()) > 64 * 1024
    assert len(st["service_groups"]) == 40
    assert f"s39{long}" in h.ctl("status").stdout  # the text form too
    assert h.stop() == 0


def test_a_stalled_halod_does_not_count_confirms_it_could_not_read(halod_factory, tmp_path):
    """halod SIGSTOPped for 3 s while its components keep confirming their
    component-invoked checks (every 100 ms; period 200 ms, timeout 600 ms):
    when it runs again its timers are late, and the confirmations are in its
    sockets.  Nothing fails: no unit restarts, nobody fails over.  It used to
    count the checks as missed and fail over healthy units."""
    import time
    log = str(tmp_path / "comp.log")
    h = halod_factory(svc_yaml(log, modes_a="component-hc", modes_b="component-hc")).start()
    assert h.wait_assigned("svc") == ("svc-a", "svc-b")
    pids = {c: h.pid_of(c) for c in ("svc-a", "svc-b")}
    h.proc.send_signal(signal.SIGSTOP)
    time.sleep(3)
    h.proc.send_signal(signal.SIGCONT)
    time.sleep(1.5)
    assert {c: h.pid_of(c) for c in pids} == pids
    assert h.si("svc")["active"] == "svc-a"
    assert "missed health check" not in h.logtext()
    assert "loop stalled" in h.logtext()
    # A check that really stops confirming still fails after the stall.
    open(log + ".svc-a.stop-confirm", "w").close()
    wait_for(lambda: h.si("svc")["active"] == "svc-b", timeout=5, what="failover after missed confirms")
    os.unlink(log + ".svc-a.stop-confirm")
    h.stop()
