# SPDX-License-Identifier: MIT
"""The recovery ladder end to end: real halods, real testcomp processes.

A component restarts alone; repeated failures escalate to an SU restart, then an SU
failover; counts reset after their probation; the recovery an error report recommends
is honoured; the description's health-check keys start by themselves.
"""
import os
import signal
import pytest

from halo_harness import TESTCOMP, start_nodes, testcomp_events as events, wait_for

def two_by_two(log, escalation="", recovery="component-restart", nodes=None, other=None, modes="",
               health_check="{period: 200ms, timeout: 600ms}"):
    """Group g: units of two testcomp components each (x takes cx, y takes cy); optionally
    group h (units of one component) and nodes."""
    nodes = nodes or {"n1": ""}
    units = other or {}
    node_lines = "".join(f"  {n}: {{{keys}}}\n" for n, keys in nodes.items())
    su = "".join(f"      {u}: {{node: {n}, components: {{x: {{csi-types: [tx]}}, y: {{csi-types: [ty]}}}}}}\n"
                 for u, n in (units.get("g") or {"a": "n1", "b": "n1"}).items())
    h = ""
    if "h" in units:
        h = ("  h:\n    component: {command: " + TESTCOMP + ", env: {TESTCOMP_LOG: \"" + log + "\"}}\n"
             "    service-units:\n" + "".join(f"      {u}: {{node: {n}}}\n" for u, n in units["h"].items()) +
             "    service-instances: {sj: {csis: {cj: {}}}}\n")
    return f"""
cluster: esc
nodes:
{node_lines}defaults:
  component:
    health-check: {health_check}
    restart: {{max: 10, window: 60s, delay: 50ms, delay-max: 1s}}
    timeouts: {{terminate: 2s}}
service-groups:
  g:
    {"escalation: " + escalation if escalation else ""}
    component:
      command: {TESTCOMP}
      recovery: {recovery}
      env: {{TESTCOMP_LOG: "{log}", TESTCOMP: "{modes}"}}
    service-units:
{su}    service-instances:
      si: {{csis: {{cx: {{type: tx}}, cy: {{type: ty}}}}}}
{h}"""


ESCALATE = "{component-restart: {max: 2, probation: 1m}, su-restart: {max: 1, probation: 1m}}"


def actives(h, si="si"):
    s = h.si(si)
    if any(a["pending"] for a in s["assignments"]):
        return None
    return s["actives"]


def wait_active(h, su, si="si", timeout=15):
    wait_for(lambda: actives(h, si) == [su], timeout=timeout, what=f"{si} ACTIVE on {su}")


def pids(h, comps):
    return {c: h.pid_of(c) for c in comps}


def active_sets(log, comp):
    return [e for e in events(log, comp, "CSI_SET") if e[3] == "ACTIVE"]


def report(log, comp):
    """Makes comp's testcomp (mode report=...) send its error report."""
    path = f"{log}.{comp}.report"  # the component's name has a '/': a directory of its unit
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with open(path, "w"):
        pass


def crash(h, log, comp, watch_active_on="a"):
    """SIGKILLs comp; waits until a new process of it has its CSI ACTIVE again; checks that
    the SI's ACTIVE stayed on watch_active_on all along."""
    before = h.pid_of(comp)
    n = len(active_sets(log, comp))
    os.kill(before, signal.SIGKILL)

    def back():
        assert actives(h) in (None, [watch_active_on]), h.si("si")
        return h.pid_of(comp) not in (None, before) and len(active_sets(log, comp)) > n

    wait_for(back, what=f"{comp} restarted with its ACTIVE")
    wait_active(h, watch_active_on)


def test_a_crashed_component_restarts_alone(halod_factory, tmp_path):
    log = str(tmp_path / "comp.log")
    h = halod_factory(two_by_two(log, ESCALATE)).start()
    wait_active(h, "a")
    wait_for(lambda: h.si("si")["standbys"] == ["b"], what="b STANDBY")
    before = pids(h, ["a/x", "a/y", "b/x", "b/y"])
    b_sets = len(events(log, "b/x", "CSI_SET")) + len(events(log, "b/y", "CSI_SET"))
    ay_sets = len(events(log, "a/y", "CSI_SET"))

    crash(h, log, "a/x")
    after = pids(h, ["a/x", "a/y", "b/x", "b/y"])
    assert after["a/x"] != before["a/x"]
    assert {c: after[c] for c in ("a/y", "b/x", "b/y")} == {c: before[c] for c in ("a/y", "b/x", "b/y")}
    # The new process got its CSI ACTIVE again; nobody else heard of anything.
    assert active_sets(log, "a/x")[-1][2] == "cx"
    assert len(events(log, "a/y", "CSI_SET")) == ay_sets
    assert len(events(log, "b/x", "CSI_SET")) + len(events(log, "b/y", "CSI_SET")) == b_sets
    su = h.su("a")
    assert su["last_recovery"].startswith("component-restart 1/2: component 'a/x'"), su
    assert "last recovery: component-restart 1/2" in h.ctl("status").stdout
    h.stop()


def test_repeated_crashes_escalate_to_su_restart_then_su_failover(halod_factory, tmp_path):
    log = str(tmp_path / "comp.log")
    h = halod_factory(two_by_two(log, ESCALATE)).start()
    wait_active(h, "a")
    for i in (1, 2):
        crash(h, log, "a/x")
        assert h.su("a")["last_recovery"].startswith(f"component-restart {i}/2")
    # The third within the probation: the whole unit restarts in place, still ACTIVE.
    before = pids(h, ["a/x", "a/y", "b/x"])
    crash(h, log, "a/x")
    wait_for(lambda: h.pid_of("a/y") not in (None, before["a/y"]) and
             active_sets(log, "a/y") and h.comp("a/y")["registered"], what="a/y restarted too")
    wait_active(h, "a")
    assert h.pid_of("b/x") == before["b/x"]
    assert h.su("a")["last_recovery"].startswith("escalated to su-restart (more than 2 component restarts"), \
        h.su("a")
    assert "su-restart 1/1" in h.su("a")["last_recovery"]
    # Two more component restarts, then past max again: a second SU restart is past su-restart's
    # max 1, so the unit fails over.
    crash(h, log, "a/x")
    crash(h, log, "a/x")
    b_pid = h.pid_of("b/x")
    os.kill(h.pid_of("a/x"), signal.SIGKILL)
    wait_active(h, "b")
    assert h.pid_of("b/x") == b_pid
    assert h.su("a")["last_failure"].startswith("escalated to su-failover (more than 1 su restarts"), h.su("a")
    h.stop()


def test_counts_reset_after_the_probation(halod_factory, tmp_path):
    log = str(tmp_path / "comp.log")
    # The probation is long enough for a restart under load, and short enough to wait out.
    h = halod_factory(two_by_two(log, "{component-restart: {max: 1, probation: 4s}}")).start()
    wait_active(h, "a")
    crash(h, log, "a/x")
    assert h.su("a")["component_restarts"] == 1
    # The probation ends: the count is 0 again, and the next crash is a restart in place again.
    wait_for(lambda: h.su("a")["component_restarts"] == 0, timeout=10, what="the count reset")
    crash(h, log, "a/x")
    assert h.su("a")["last_recovery"].startswith("component-restart 1/1")
    # Within the probation the next one climbs (su-restart max 0 by default: failover).
    os.kill(h.pid_of("a/x"), signal.SIGKILL)
    wait_active(h, "b")
    h.stop()


@pytest.mark.parametrize("recommended,configured,moves", [
    ("component-restart", "component-restart", False),
    ("component-failover", "component-restart", True),
    ("component-restart", "component-failover", True),  # never less than configured either
])
def test_the_recommended_recovery_on_one_node(halod_factory, tmp_path, recommended, configured, moves):
    log = str(tmp_path / "comp.log")
    h = halod_factory(two_by_two(log, ESCALATE, recovery=configured, modes=f"report={recommended}")).start()
    wait_active(h, "a")
    wait_for(lambda: h.si("si")["standbys"] == ["b"], what="b STANDBY")
    before = pids(h, ["a/x", "a/y", "b/x", "b/y"])
    n = len(active_sets(log, "a/x"))
    report(log, "a/x")
    if moves:
        wait_active(h, "b")
        wait_for(lambda: h.pid_of("a/y") not in (None, before["a/y"]), what="a/y restarted with its unit")
        assert pids(h, ["b/x", "b/y"]) == {c: before[c] for c in ("b/x", "b/y")}
    else:
        wait_for(lambda: h.pid_of("a/x") not in (None, before["a/x"]) and len(active_sets(log, "a/x")) > n,
                 what="a/x restarted with its ACTIVE")
        wait_active(h, "a")
        assert pids(h, ["a/y", "b/x", "b/y"]) == {c: before[c] for c in ("a/y", "b/x", "b/y")}
    rung = {"component-restart": "component-restart", "component-failover": "su-failover"}[recommended]
    assert f"reported an error (recommended recovery: {rung})" in h.su("a")["last_recovery"], h.su("a")
    h.stop()


def two_nodes(etcd, halod_factory, yaml_text):
    """n1 and n2 over etcd; a (n1) ACTIVE for si and c (n1) for sj, b and d (n2) STANDBY."""
    hs, _ = start_nodes(halod_factory, yaml_text, etcd.endpoints)
    n1, n2 = hs["n1"], hs["n2"]
    for si, act, sb in (("si", "a", "b"), ("sj", "c", "d")):
        wait_for(lambda: actives(n1, si) and n1.si(si)["standbys"], timeout=30, what=f"{si} assigned")
        if actives(n1, si) != [act]:  # n2's unit was known first: the operator moves it
            n1.ctl("switchover", si)
        wait_active(n1, act, si=si, timeout=30)
        wait_for(lambda: n1.si(si)["standbys"] == [sb], timeout=30, what=f"{sb} STANDBY")
    return n1, n2


@pytest.mark.parametrize("recommended", ["node-failover", "node-failfast"])
def test_a_recommended_node_recovery_fails_every_unit_of_the_node_over(etcd, halod_factory, tmp_path, recommended):
    log = str(tmp_path / "comp.log")
    yaml_text = two_by_two(log, ESCALATE, nodes={"n1": "", "n2": ""}, modes=f"report={recommended}",
                           other={"g": {"a": "n1", "b": "n2"}, "h": {"c": "n1", "d": "n2"}})
    n1, n2 = two_nodes(etcd, halod_factory, yaml_text)
    on_n1 = pids(n1, ["a/x", "a/y", "c"])
    on_n2 = pids(n2, ["b/x", "b/y", "d"])
    report(log, "a/x")
    # Every ACTIVE of n1 lands on n2; n2's processes are the same; every process of n1 is new.
    wait_active(n2, "b", timeout=20)
    wait_active(n2, "d", si="sj", timeout=20)
    assert pids(n2, ["b/x", "b/y", "d"]) == on_n2
    wait_for(lambda: all(n1.pid_of(c) not in (None, on_n1[c]) for c in on_n1), timeout=20,
             what="every process of n1 restarted")
    assert f"reported an error (recommended recovery: {recommended})" in n1.su("c")["last_failure"], n1.su("c")
    for h in (n1, n2):
        h.stop()


def test_su_failovers_past_the_node_max_fail_the_node_over(etcd, halod_factory, tmp_path):
    log = str(tmp_path / "comp.log")
    yaml_text = two_by_two(log, recovery="component-failover",
                           nodes={"n1": "su-failover: {max: 1, probation: 1m}", "n2": ""},
                           other={"g": {"a": "n1", "b": "n2"}, "h": {"c": "n1", "d": "n2"}})
    n1, n2 = two_nodes(etcd, halod_factory, yaml_text)
    # One SU failover on n1: within its max 1; c comes back as STANDBY.
    os.kill(n1.pid_of("c"), signal.SIGKILL)
    wait_active(n2, "d", si="sj", timeout=20)
    wait_for(lambda: n1.si("sj")["standbys"] == ["c"], timeout=20, what="c STANDBY again")
    c_pid, ay_pid = n1.pid_of("c"), n1.pid_of("a/y")
    # The second: n1 fails over as a whole; c restarts though it did not fail.
    os.kill(n1.pid_of("a/x"), signal.SIGKILL)
    wait_active(n2, "b", timeout=20)
    wait_for(lambda: n1.pid_of("c") not in (None, c_pid) and n1.pid_of("a/y") not in (None, ay_pid),
             timeout=20, what="c and a/y restarted with their node")
    assert n1.su("a")["last_failure"].startswith("escalated to node-failover (more than 1 su failovers on node "
                                                 "'n1'"), n1.su("a")
    for h in (n1, n2):
        h.stop()


def test_a_described_health_check_fails_a_stopped_component_over(halod_factory, tmp_path):
    log = str(tmp_path / "comp.log")
    h = halod_factory(two_by_two(log, health_check="{period: 200ms, timeout: 600ms, keys: [alive]}")).start()
    wait_active(h, "a")
    wait_for(lambda: h.si("si")["standbys"] == ["b"], what="b STANDBY")
    # halod asks by itself: the component never called halo_healthcheck_start().
    wait_for(lambda: events(log, "a/x", "HC"), what="a/x asked for 'alive'")
    assert events(log, "a/x", "HC")[0][2] == "alive"
    assert not events(log, None, "HC_START_FAILED")
    assert [c["key"] for c in h.comp("a/x")["health_checks"]] == ["alive"]
    pid = h.pid_of("a/x")
    os.kill(pid, signal.SIGSTOP)
    try:
        wait_active(h, "b", timeout=10)
        assert "missed health check 'alive'" in h.su("a")["last_failure"], h.su("a")
        wait_for(lambda: h.pid_of("a/x") not in (None, pid), what="a/x replaced")
    finally:
        try:
            os.kill(pid, signal.SIGCONT)
        except ProcessLookupError:
            pass
    h.stop()


def test_a_component_restarts_in_place_on_two_nodes(etcd, halod_factory, tmp_path):
    """Over etcd the coordinator, on either node, leaves the restarting unit its ACTIVE."""
    log = str(tmp_path / "comp.log")
    yaml_text = two_by_two(log, ESCALATE, nodes={"n1": "", "n2": ""},
                           other={"g": {"a": "n1", "b": "n2"}, "h": {"c": "n1", "d": "n2"}})
    n1, n2 = two_nodes(etcd, halod_factory, yaml_text)
    on_n2 = pids(n2, ["b/x", "b/y"])
    ay = n1.pid_of("a/y")
    for i in (1, 2):
        crash(n1, log, "a/x")
        assert n2.si("si")["actives"] == ["a"]
    assert n1.pid_of("a/y") == ay and pids(n2, ["b/x", "b/y"]) == on_n2
    assert not [e for e in events(log, "b/x", "CSI_SET") if e[3] == "ACTIVE"]
    assert n1.su("a")["last_recovery"].startswith("component-restart 2/2")
    for h in (n1, n2):
        h.stop()


def test_a_non_sa_aware_component_restarts_alone(halod_factory, tmp_path):
    """An unmodified program beside an SA-aware component: its crash runs its cleanup and its
    command again for the ACTIVE its unit kept; its sibling and the standby are untouched."""
    log = str(tmp_path / "comp.log")
    marks = tmp_path / "cleanups"
    yaml_text = two_by_two(log, ESCALATE).replace(
        "y: {csi-types: [ty]}",
        "y: {csi-types: [ty], type: non-sa-aware, command: /bin/sleep, args: ['1000'], "
        f"cleanup: [/bin/sh, -c, 'echo $HALO_PID >> {marks}']}}")
    h = halod_factory(yaml_text).start()
    wait_active(h, "a")
    wait_for(lambda: h.si("si")["standbys"] == ["b"], what="b STANDBY")
    before = pids(h, ["a/x", "a/y", "b/x"])
    assert h.pid_of("b/y") is None  # cold standby: nothing runs on b for cy
    os.kill(before["a/y"], signal.SIGKILL)

    def back():
        assert actives(h) in (None, ["a"]), h.si("si")
        return h.pid_of("a/y") not in (None, before["a/y"]) and actives(h) == ["a"]

    wait_for(back, what="a/y running again")
    assert pids(h, ["a/x", "b/x"]) == {c: before[c] for c in ("a/x", "b/x")}
    assert h.pid_of("b/y") is None
    assert marks.read_text().split() == [str(before["a/y"])]
    assert h.su("a")["last_recovery"].startswith("component-restart 1/2: component 'a/y'")
    h.stop()


def test_a_recommended_node_switchover_hands_the_other_units_over(halod_factory, tmp_path):
    """The reporting unit fails over; the node's other unit hands its ACTIVE over gracefully:
    QUIESCING, its standby ACTIVE with transition QUIESCED, and its process is kept."""
    log = str(tmp_path / "comp.log")
    h = halod_factory(two_by_two(log, ESCALATE, modes="report=node-switchover",
                                 other={"g": {"a": "n1", "b": "n1"}, "h": {"c": "n1", "d": "n1"}})).start()
    wait_active(h, "a")
    wait_active(h, "c", si="sj")
    wait_for(lambda: h.si("si")["standbys"] == ["b"] and h.si("sj")["standbys"] == ["d"], what="b and d STANDBY")
    before = pids(h, ["a/x", "a/y", "b/x", "c", "d"])
    report(log, "a/x")
    wait_active(h, "b")
    wait_active(h, "d", si="sj")
    wait_for(lambda: h.si("sj")["standbys"] == ["c"], what="c STANDBY")
    assert pids(h, ["b/x", "c", "d"]) == {k: before[k] for k in ("b/x", "c", "d")}
    wait_for(lambda: h.pid_of("a/y") not in (None, before["a/y"]), what="a restarted")
    assert [e[3] for e in events(log, "c", "CSI_SET")][-2:] == ["QUIESCING", "STANDBY"]
    assert events(log, "d", "CSI_SET")[-1][3:5] == ["ACTIVE", "transition=2"]  # HALO_CSI_QUIESCED
    h.stop()
