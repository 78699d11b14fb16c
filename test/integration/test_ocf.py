# SPDX-License-Identifier: MIT
"""OCF resource agents end to end: Debian's resource-agents (ocf:heartbeat:Dummy,
ocf:heartbeat:IPaddr2) run by a real halod as 2N groups, started while ACTIVE,
monitored, stopped as the cleanup of a failure, validated by halod --check."""
import ctypes
import json
import os
import shutil
import subprocess
import time
import uuid

import pytest

from halo_harness import HALOD, wait_for
from test_non_sa_aware import process_state, recorded

AGENTS = "/usr/lib/ocf/resource.d/heartbeat"
pytestmark = pytest.mark.skipif(not os.access(f"{AGENTS}/Dummy", os.X_OK),
                                reason="Debian's resource-agents package is not installed (tools/install-deps)")


def dummy_yaml(tmp_path, period="300ms"):
    return f"""
cluster: test
defaults:
  component:
    restart: {{max: 10, window: 60s, delay: 50ms, delay-max: 500ms}}
service-groups:
  g:
    component:
      type: ocf
      agent: ocf:heartbeat:Dummy
      monitor: {{period: {period}}}
    service-units:
      a: {{component: {{params: {{state: {tmp_path}/a.state}}}}}}
      b: {{component: {{params: {{state: {tmp_path}/b.state}}}}}}
    service-instances: {{si: {{csis: {{c: {{}}}}}}}}
"""


def test_dummy_fails_over_when_its_monitor_says_not_running(halod_factory, tmp_path):
    h = halod_factory(dummy_yaml(tmp_path)).start()
    active, standby = h.wait_assigned("si")
    c = h.comp(active)
    assert c["type"] == "ocf" and c["presence"] == "INSTANTIATED" and c["monitor"] == "enabled"
    assert h.comp(standby)["presence"] == "UNINSTANTIATED"
    # Cold standby: only the ACTIVE's start ran (Dummy's start writes its state file).
    assert os.path.exists(tmp_path / f"{active}.state")
    assert not os.path.exists(tmp_path / f"{standby}.state")
    assert "ocf" in h.ctl("status").stdout
    # The resource goes away behind halod's back: its monitor exits 7 (not running).
    os.unlink(tmp_path / f"{active}.state")
    wait_for(lambda: h.si("si")["active"] == standby, timeout=10, what=f"{standby} ACTIVE")
    # The new ACTIVE ran its start; the failed one comes back as STANDBY, holding nothing.
    assert os.path.exists(tmp_path / f"{standby}.state")
    assert h.wait_assigned("si") == (standby, active)
    assert not os.path.exists(tmp_path / f"{active}.state")
    failure = h.su(active)["last_failure"]
    assert f"component '{active}' OCF monitor failed: OCF_NOT_RUNNING (7: not running)" in failure
    # Published as processes are: ONLINE once started, FAILED.
    wait_for(lambda: process_state(h, active) == "FAILED", timeout=20, what=f"{active} FAILED")
    wait_for(lambda: process_state(h, standby) == "ONLINE", timeout=20, what=f"{standby} ONLINE")
    log = h.logtext()
    assert f"Running the OCF stop action (cleanup) of component '{active}'" in log
    # halod's stop stops the ACTIVE's resource with the agent's stop action.
    assert h.stop() == 0
    assert not os.path.exists(tmp_path / f"{standby}.state")


def test_a_switchover_stops_one_resource_then_starts_the_other(halod_factory, tmp_path):
    h = halod_factory(dummy_yaml(tmp_path, period="10s")).start()
    # At start the unit preferred for ACTIVE (the first) gets it, whichever agent answered meta-data first.
    active, standby = h.wait_assigned("si")
    assert (active, standby) == ("a", "b")
    h.ctl("switchover", "si")
    assert h.wait_assigned("si") == (standby, active)
    assert os.path.exists(tmp_path / f"{standby}.state") and not os.path.exists(tmp_path / f"{active}.state")
    assert h.su(active).get("last_failure") is None  # a stop, not a failure
    assert h.stop() == 0


def test_an_operators_restart_stops_and_starts_the_resource_in_place(halod_factory, tmp_path, flaky):
    h = halod_factory(flaky_yaml(flaky, tmp_path)).start()
    active, standby = h.wait_assigned("si")
    for cmd in (("restart", active), ("admin", "restart", f"comp:{active}")):
        os.unlink(tmp_path / "log")
        assert h.ctl(*cmd).returncode == 0
        wait_for(lambda: os.path.exists(tmp_path / "log") and ["start", active] in
                 [line.split()[:2] for line in open(tmp_path / "log")] and h.comp(active)["presence"] ==
                 "INSTANTIATED", timeout=10, what=f"{active} started again")
        # The agent's stop, then its start, on the same unit; nothing for the standby.
        acts = [line.split()[:2] for line in open(tmp_path / "log") if line.split()[0] != "monitor"]
        assert acts == [["stop", active], ["stopped", active], ["start", active]], acts
        assert h.wait_assigned("si") == (active, standby)
        assert os.path.exists(tmp_path / f"up-{active}") and not os.path.exists(tmp_path / f"up-{standby}")
    assert h.su(active).get("last_failure") is None and h.su(active).get("last_recovery") is None
    assert h.stop() == 0


def test_a_failing_start_is_a_failure_with_the_agents_words(halod_factory, tmp_path):
    # Dummy cannot write its state file in a directory that does not exist: its start fails, on each unit.
    h = halod_factory(f"""
defaults:
  component:
    restart: {{max: 0}}
service-groups:
  g:
    component: {{type: ocf, agent: heartbeat:Dummy, params: {{state: {tmp_path}/no/such/dir/x.state}}}}
    service-units: {{a: {{}}, b: {{}}}}
    service-instances: {{si: {{csis: {{c: {{}}}}}}}}
""").start()
    for su in ("a", "b"):
        wait_for(lambda: h.su(su)["oper"] == "DISABLED", what=f"{su} disabled")
        assert f"component '{su}' OCF start failed: OCF_ERR_GENERIC (1: generic error)" in h.su(su)["last_failure"]
    assert h.si("si")["active"] is None
    assert h.stop() == 0


def test_check_runs_validate_all_and_reports_the_agents_message(tmp_path):
    cfg = tmp_path / "cluster.yaml"
    cfg.write_text("""
service-groups:
  g:
    component: {type: ocf, agent: heartbeat:IPaddr2}
    service-units:
      a: {component: {params: {ip: 999.1.1.1, cidr_netmask: 16}}}
      b: {component: {params: {ip: 999.1.1.1, cidr_netmask: 16}}}
    service-instances: {si: {csis: {c: {}}}}
""")
    r = subprocess.run([HALOD, "--check", str(cfg)], capture_output=True, text=True, timeout=60)
    assert r.returncode == 1
    assert "configuration OK" not in r.stdout
    assert (f"{cfg}:6:7: component 'a': agent heartbeat:IPaddr2 refused its params (validate-all: "
            "OCF_ERR_CONFIGURED (6: not configured: the parameters are wrong)): IP address [999.1.1.1] not valid."
            in r.stderr), r.stderr
    assert f"{cfg}:7:7: component 'b'" in r.stderr
    # Valid params pass.
    cfg.write_text(dummy_yaml(tmp_path))
    r = subprocess.run([HALOD, "--check", str(cfg)], capture_output=True, text=True, timeout=60)
    assert r.returncode == 0 and r.stdout == "configuration OK\n", r.stderr


# ---- a restarted halod probes first (as Pacemaker does) ---------------------------------------

def kill9(h, si="si"):
    """SIGKILL halod (its resources stay as they are) once what it shows of si is recorded (one node); the offset
    of the next halod's log."""
    if "--etcd" not in h.extra_args:
        roles = (h.si(si)["active"], h.si(si)["standby"])
        wait_for(lambda: recorded(h, si) == roles, what="the roles recorded")
    h.proc.kill()
    h.proc.wait()
    h.log.close()
    return len(h.logtext())


def test_a_restarted_halod_adopts_the_running_resource_of_its_active_and_stops_a_stray_one(halod_factory, tmp_path):
    h = halod_factory(dummy_yaml(tmp_path)).start()
    active, standby = h.wait_assigned("si")
    st = os.stat(tmp_path / f"{active}.state")
    mark = kill9(h)
    # Left behind as if the previous halod died while the standby's resource was up too.
    (tmp_path / f"{standby}.state").touch()
    h.start()
    wait_for(lambda: not os.path.exists(tmp_path / f"{standby}.state"), timeout=10, what="the stray resource stopped")
    assert h.wait_assigned("si") == (active, standby)
    # wait_assigned may answer before the active's probe has ended (seen under load): its adoption is awaited.
    adopted = f"Adopting component '{active}': its resource runs, and its unit '{active}' holds it ACTIVE"
    wait_for(lambda: adopted in h.logtext()[mark:], timeout=10, what=f"{active} adopted")
    after = h.logtext()[mark:]
    # Probed (monitor first), adopted: its start did not run again, its state file is the one it wrote.
    assert f"Probing component '{active}'" in after and f"Probing component '{standby}'" in after
    assert adopted in after
    assert "OCF start of" not in after, after
    assert os.stat(tmp_path / f"{active}.state").st_ino == st.st_ino
    assert os.stat(tmp_path / f"{active}.state").st_mtime_ns == st.st_mtime_ns
    assert f"Component '{standby}': its resource runs, but its unit '{standby}' does not hold it ACTIVE" in after
    assert h.comp(active)["presence"] == "INSTANTIATED" and h.comp(standby)["presence"] == "UNINSTANTIATED"
    assert h.su(active).get("last_failure") is None and h.su(standby).get("last_failure") is None
    # The periodic monitor resumed: the resource going away fails it over.
    os.unlink(tmp_path / f"{active}.state")
    wait_for(lambda: h.si("si")["active"] == standby, timeout=10, what=f"{standby} ACTIVE")
    assert os.path.exists(tmp_path / f"{standby}.state")
    assert h.stop() == 0


def test_a_restarted_halod_fails_over_an_active_whose_resource_is_gone(halod_factory, tmp_path):
    h = halod_factory(dummy_yaml(tmp_path)).start()
    active, standby = h.wait_assigned("si")
    mark = kill9(h)
    os.unlink(tmp_path / f"{active}.state")  # gone while nobody watched
    h.start()
    wait_for(lambda: h.si("si")["active"] == standby, timeout=10, what=f"{standby} ACTIVE")
    assert os.path.exists(tmp_path / f"{standby}.state")
    assert ("is not running (OCF probe: not running), though its unit held its CSI ACTIVE"
            in h.su(active)["last_failure"])
    # Its start ran once, on the new ACTIVE only.
    after = h.logtext()[mark:]
    assert f"Starting component '{standby}': OCF start" in after
    assert f"Starting component '{active}': OCF start" not in after
    assert h.stop() == 0


@pytest.mark.parametrize("how", ["fails", "hangs"])
def test_a_probe_that_fails_is_a_failure_whose_cleanup_stops_the_resource(halod_factory, tmp_path, flaky, how):
    h = halod_factory(flaky_yaml(flaky, tmp_path)).start()
    active, standby = h.wait_assigned("si")
    kill9(h)
    (tmp_path / f"monitor-{how}-{active}").touch()
    os.unlink(tmp_path / "log")
    h.start()
    wait_for(lambda: h.si("si")["active"] == standby, timeout=10, what=f"{standby} ACTIVE")
    # Hanging: killed past the monitor timeout the agent advertises (2 s).
    why = "OCF_ERR_GENERIC (1: generic error)" if how == "fails" else "killed by signal 9"
    assert f"OCF probe (monitor) failed: {why}" in h.su(active)["last_failure"], h.su(active)["last_failure"]

    def actions(su):
        return [line.split()[0] for line in open(tmp_path / "log") if line.split()[1] == su]
    # The failed unit: probed, then stopped (the cleanup), before the other's start.
    acts = actions(active)
    assert acts[:3] == ["meta-data", "monitor", "stop"], acts
    os.unlink(tmp_path / f"monitor-{how}-{active}")
    assert h.stop() == 0


def test_no_unit_is_given_active_while_a_stray_resource_is_being_stopped(halod_factory, tmp_path, flaky):
    h = halod_factory(flaky_yaml(flaky, tmp_path, "a", "b", "c")).start()
    active, standby = h.wait_assigned("si")
    spare = ({"a", "b", "c"} - {active, standby}).pop()
    kill9(h)
    # The ACTIVE's resource went while nobody watched, and the spare's runs (its stop is slow): the SI goes to the
    # standby, but only once the spare's resource is stopped, never two at once.
    os.unlink(tmp_path / f"up-{active}")
    (tmp_path / f"up-{spare}").touch()
    (tmp_path / f"stop-slow-{spare}").touch()
    os.unlink(tmp_path / "log")
    h.start()

    def log():
        return [line.split()[:2] for line in open(tmp_path / "log")]
    wait_for(lambda: h.si("si")["active"] == standby and os.path.exists(tmp_path / f"up-{standby}") and
             ["stopped", spare] in log(), timeout=15, what=f"{standby} ACTIVE, {spare}'s resource stopped")
    log = log()
    assert log.index(["stopped", spare]) < log.index(["start", standby]), log
    assert not os.path.exists(tmp_path / f"up-{spare}")
    assert h.stop() == 0


def test_two_nodes_a_failed_resource_is_stopped_before_the_other_node_starts_its_own(etcd, halod_factory, tmp_path,
                                                                                       flaky):
    """Unit a on n1, b on n2, over etcd: the ACTIVE's monitor fails on the node that is not the
    coordinator, and its stop (the failure's cleanup) takes a second; the coordinator's node
    starts its resource only once that stop has ended
    (the failed unit is published fenced only then; the chaos checker's seed 202 saw 26 ms of
    both resources started)."""
    yaml_text = flaky_yaml(flaky, tmp_path).replace("a: {}, b: {}", "a: {node: n1}, b: {node: n2}")
    yaml_text = "cluster: test\nnodes: {n1: {}, n2: {}}\n" + yaml_text
    hs = {n: halod_factory(yaml_text, name=n, extra_args=["--node", n, "--etcd", etcd.endpoints,
                                                          "--lease-ttl", "3"]).start() for n in ("n1", "n2")}
    wait_for(lambda: settled(hs["n1"]) and settled(hs["n2"]), timeout=20, what="si assigned")
    # The failing unit is the other node's: the coordinator learns of its fence from the store.
    coord = hs["n1"].status()["coordinator"]
    active, standby = ("b", "a") if coord == "n1" else ("a", "b")
    if settled(hs[coord])[0] != active:
        hs[coord].ctl("switchover", "si")
        wait_for(lambda: settled(hs["n1"]) == (active, standby) and settled(hs["n2"]) == (active, standby),
                 timeout=20, what=f"{active} ACTIVE")
    (tmp_path / f"stop-slow-{active}").touch()
    os.unlink(tmp_path / "log")
    (tmp_path / f"monitor-fails-{active}").touch()

    def log():
        return [line.split()[:2] for line in open(tmp_path / "log")]
    wait_for(lambda: os.path.exists(tmp_path / f"up-{standby}") and ["stopped", active] in log(), timeout=20,
             what=f"{standby}'s resource started, {active}'s stopped")
    log = log()
    assert log.index(["stopped", active]) < log.index(["start", standby]), log
    assert hs["n1"].stop() == 0 and hs["n2"].stop() == 0


def ocf_pair_on_two_nodes(halod_factory, tmp_path, flaky, ends, component=""):
    """a on n1, b on n2 (2 s leases), each halod on its own etcd endpoints; a ACTIVE once settled.
    component: more keys of the group's component ("key: value, ")."""
    text = flaky_yaml(flaky, tmp_path).replace("a: {}, b: {}", "a: {node: n1}, b: {node: n2}")
    text = text.replace("component: {type: ocf,", "component: {" + component + "type: ocf,")
    text = "cluster: test\nnodes: {n1: {}, n2: {}}\n" + text
    hs = {n: halod_factory(text, name=n, extra_args=["--node", n, "--etcd", ends[n], "--lease-ttl", "2"]).start()
          for n in ("n1", "n2")}
    wait_for(lambda: settled(hs["n1"]) and settled(hs["n2"]), timeout=20, what="si assigned")
    if settled(hs["n2"])[0] != "a":
        hs["n2"].ctl("switchover", "si")
        wait_for(lambda: settled(hs["n2"]) == ("a", "b"), timeout=20, what="a ACTIVE")
    return hs


def agent_log(tmp_path):
    return [line.split()[:2] for line in open(tmp_path / "log")]


def test_a_fenced_nodes_slow_stop_ends_before_the_other_node_starts_the_resource(halod_factory, tmp_path, flaky):
    """n1 holds the ACTIVE resource, whose stop takes a second, and talks to one etcd member only; that
    member is SIGSTOPped and stays stopped: n1 fences itself (its lease not renewed) and stops the
    resource, and n2 declares n1 dead (its beats stopped; the other two members keep the quorum, so
    etcd vouches for that end).  The lease's end proves that n1's processes are gone, not that its OCF
    resource's stop has ended: n2 starts its own only once the stop's timeout (2 s, the agent's) has
    passed since.  Before, n2 started it while n1's stop still ran (chaos seed 202: two ACTIVEs for
    0.4 to 2.3 s)."""
    from etcd_harness import Etcd
    etcd = Etcd(members=3).start()
    try:
        leader = wait_for(lambda: etcd.leader() is not None, what="an etcd leader") and etcd.leader()
        f = (leader + 1) % 3
        others = ",".join(f"http://127.0.0.1:{m['client']}" for i, m in enumerate(etcd.members) if i != f)
        hs = ocf_pair_on_two_nodes(halod_factory, tmp_path, flaky,
                                   {"n1": f"http://127.0.0.1:{etcd.members[f]['client']}", "n2": others})
        (tmp_path / "stop-slow-a").touch()
        os.unlink(tmp_path / "log")
        etcd.pause_member(f)
        try:
            wait_for(lambda: os.path.exists(tmp_path / "up-b") and ["stopped", "a"] in agent_log(tmp_path),
                     timeout=30, what="b's resource started, a's stopped")
            assert "Fencing node 'n1'" in hs["n1"].logtext()
            log = agent_log(tmp_path)
            assert log.index(["stopped", "a"]) < log.index(["start", "b"]), log
        finally:
            etcd.resume_member(f)
        assert hs["n1"].stop() == 0 and hs["n2"].stop() == 0
    finally:
        etcd.stop()


def test_a_killed_halods_slow_guard_stop_ends_before_the_other_node_starts_the_resource(halod_factory, tmp_path,
                                                                                        flaky, etcd):
    """n1's halod is SIGKILLed while its resource, whose stop takes a second, is ACTIVE: its halo-guard
    runs the stop at the lease deadline, and n2, which declares n1 dead a moment later, starts its own
    resource only once the stop's timeout has passed (before: 'start b' while the guard's stop ran)."""
    hs = ocf_pair_on_two_nodes(halod_factory, tmp_path, flaky, {"n1": etcd.endpoints, "n2": etcd.endpoints})
    (tmp_path / "stop-slow-a").touch()
    os.unlink(tmp_path / "log")
    hs["n1"].proc.kill()
    hs["n1"].proc.wait()
    wait_for(lambda: os.path.exists(tmp_path / "up-b") and ["stopped", "a"] in agent_log(tmp_path), timeout=30,
             what="b's resource started, a's stopped by n1's guard")
    log = agent_log(tmp_path)
    assert log.index(["stopped", "a"]) < log.index(["start", "b"]), log
    assert hs["n2"].si("si")["active"] == "b"
    assert hs["n2"].stop() == 0


@pytest.mark.parametrize("after_takeover", [False, True], ids=["at-once", "after-takeover"])
def test_a_halod_started_during_a_dead_nodes_slow_stop_waits_for_it(halod_factory, tmp_path, flaky, etcd,
                                                                   after_takeover):
    """n1's halod is SIGKILLed while its resource, whose stop takes a second, is ACTIVE; its halo-guard
    runs the stop at the lease deadline.  Right after n2 sees n1's lease end (at once, or once n2 took
    over as the coordinator), n2's halod is SIGKILLed too and started again: the new halod never saw
    n1's units, nor the stop timeout n1 published, and takes the store's ACTIVE target for n1's unit
    as a unit gone with its node.  It must still not start b while a's stop may run: it waits the stop
    timeout the description gives (2 s).  Before, it started b at once, while the guard's stop still
    ran; and the takeover deleted that target as a leftover (CI, once), so the new halod did not know
    that a held the SI."""
    hs = ocf_pair_on_two_nodes(halod_factory, tmp_path, flaky, {"n1": etcd.endpoints, "n2": etcd.endpoints},
                               component="timeouts: {terminate: 2s}, ")
    (tmp_path / "stop-slow-a").touch()
    os.unlink(tmp_path / "log")
    n2 = hs["n2"]
    before = len(n2.logtext())
    hs["n1"].proc.kill()
    hs["n1"].proc.wait()
    wait_for(lambda: "Node 'n1' left the cluster" in n2.logtext()[before:], timeout=15, interval=0.01,
             what="n2 to see n1's lease end")
    if after_takeover:
        left = n2.logtext().index("Node 'n1' left the cluster", before)
        wait_for(lambda: "Node 'n2' is the coordinator" in n2.logtext()[left:], timeout=5, interval=0.01,
                 what="n2 the coordinator")
        time.sleep(0.2)  # its takeover's writes
    assert ["stopped", "a"] not in agent_log(tmp_path), "the stop was quicker than the test: it proves nothing"
    n2.proc.kill()
    n2.proc.wait()
    n2.log.close()
    n2.start()
    wait_for(lambda: os.path.exists(tmp_path / "up-b") and ["stopped", "a"] in agent_log(tmp_path), timeout=30,
             what="b's resource started, a's stopped by n1's guard")
    log = agent_log(tmp_path)
    assert log.index(["stopped", "a"]) < log.index(["start", "b"]), log
    assert "may still be stopping its OCF resources" in n2.logtext()
    wait_for(lambda: n2.si("si")["active"] == "b", timeout=10, what="b ACTIVE")
    assert n2.stop() == 0


def settled(h):
    """(active, standby) once h sees si fully assigned with nothing pending."""
    s = h.si("si")
    if s["active"] and s["standby"] and not any(a["pending"] for a in s["assignments"]):
        return s["active"], s["standby"]
    return None


def two_nodes(etcd, halod_factory, text):
    """halods n1 and n2 over etcd running text (unit a on n1, b on n2) once si is assigned: (halods, coordinator's
    name, the other's halod, the other's unit, the coordinator's unit)."""
    hs = {n: halod_factory(text, name=n, extra_args=["--node", n, "--etcd", etcd.endpoints,
                                                     "--lease-ttl", "3"]).start() for n in ("n1", "n2")}
    unit = {"n1": "a", "n2": "b"}
    wait_for(lambda: settled(hs["n1"]) and settled(hs["n2"]), timeout=20, what="si assigned")
    coord = hs["n1"].status()["coordinator"]
    other = "n2" if coord == "n1" else "n1"
    return hs, coord, hs[other], unit[other], unit[coord]


def test_two_nodes_a_restarted_non_coordinator_adopts_or_stops_what_it_left(etcd, halod_factory, tmp_path):
    """Unit a on n1, b on n2, over etcd; the non-coordinator's halod is killed and back within its lease."""
    yaml_text = dummy_yaml(tmp_path).replace("cluster: test\n", "cluster: test\nnodes: {n1: {}, n2: {}}\n").replace(
        "a: {component:", "a: {node: n1, component:").replace("b: {component:", "b: {node: n2, component:")
    hs, coord, h, mine, theirs = two_nodes(etcd, halod_factory, yaml_text)
    if settled(h)[0] != mine:
        hs[coord].ctl("switchover", "si")
        wait_for(lambda: settled(h) == (mine, theirs) and settled(hs[coord]) == (mine, theirs), timeout=20,
                 what=f"{mine} ACTIVE")
    for holds, stray in (("ACTIVE", False), ("STANDBY", True)):
        gen = hs[coord].si("si")["generation"]
        mark = kill9(h)
        if stray:  # left running by the previous halod on a unit that is the STANDBY
            (tmp_path / f"{mine}.state").touch()
        h.start()
        wait_for(lambda: f"Service unit '{mine}' adopted with its assignments" in h.logtext()[mark:], timeout=20,
                 what=f"{mine} adopted")
        after = h.logtext()[mark:]
        assert f"Probing component '{mine}'" in after and "OCF start of" not in after, after
        want = (mine, theirs) if holds == "ACTIVE" else (theirs, mine)
        wait_for(lambda: not os.path.exists(tmp_path / f"{mine}.state") if stray else True, timeout=10,
                 what="the stray resource stopped")
        for n in hs:
            assert wait_for(lambda: settled(hs[n]), timeout=20, what="si settled") == want
        assert hs[coord].si("si")["generation"] == gen, "the coordinator saw a change of assignment"
        assert os.path.exists(tmp_path / f"{want[0]}.state") and not os.path.exists(tmp_path / f"{want[1]}.state")
        if holds == "ACTIVE":
            assert f"Adopting component '{mine}'" in after
            hs[coord].ctl("switchover", "si")
            wait_for(lambda: settled(h) == (theirs, mine) and settled(hs[coord]) == (theirs, mine), timeout=20,
                     what=f"{theirs} ACTIVE")
        else:
            assert f"Component '{mine}': its resource runs, but its unit '{mine}' does not hold it ACTIVE" in after
    for x in hs.values():
        assert x.stop() == 0


def test_two_nodes_no_unit_is_given_active_while_another_nodes_probe_may_find_a_stray(etcd, halod_factory, tmp_path,
                                                                                         flaky):
    """The coordinator holds the group while a restarted non-coordinator probes: its resource may run (here a stray,
    found by a slow probe and stopped slowly), and only once it is stopped may the SI's resource start elsewhere."""
    text = flaky_yaml(flaky, tmp_path).replace("defaults:", "nodes: {n1: {}, n2: {}}\ndefaults:", 1).replace(
        "a: {}", "a: {node: n1}").replace("b: {}", "b: {node: n2}")
    hs, coord, h, mine, theirs = two_nodes(etcd, halod_factory, text)
    hs[coord].ctl("admin", "lock", "si:si")
    wait_for(lambda: not os.path.exists(tmp_path / f"up-{mine}") and not os.path.exists(tmp_path / f"up-{theirs}"),
             timeout=10, what="both resources stopped by the lock")
    kill9(h)
    # Left running where halo does not know it, found by a slow probe, stopped slowly.
    for f in (f"up-{mine}", f"monitor-slow-{mine}", f"stop-slow-{mine}"):
        (tmp_path / f).touch()
    os.unlink(tmp_path / "log")
    h.start()

    def published():
        for k, v in etcd.get_prefix("/").items():
            if k.endswith(f"/sustate/{mine}"):
                return json.loads(v)
        return {}
    # The restarted node says its unit is probing before its probe ends; then the operator unlocks the SI.
    wait_for(lambda: published().get("probing"), timeout=20, what=f"{mine} published as probing")
    hs[coord].ctl("admin", "unlock", "si:si")
    wait_for(lambda: ["stopped", mine] in [ln.split()[:2] for ln in open(tmp_path / "log")], timeout=20,
             what="the stray resource stopped")
    wait_for(lambda: settled(hs[coord]) and os.path.exists(tmp_path / f"up-{settled(hs[coord])[0]}"), timeout=20,
             what="si ACTIVE again")
    log = [ln.split()[:2] for ln in open(tmp_path / "log")]
    starts = [i for i, x in enumerate(log) if x[0] == "start"]
    assert starts and log.index(["stopped", mine]) < starts[0], log
    wait_for(lambda: published().get("probing") is False, timeout=10, what=f"{mine} no longer probing")
    os.unlink(tmp_path / f"monitor-slow-{mine}")
    for x in hs.values():
        assert x.stop() == 0


# ---- IPaddr2 in a network namespace ------------------------------------------------------------

CLONE_NEWNET = 0x40000000
FLOATING = "169.254.77.77"


def ip(*args, check=True):
    return subprocess.run(["ip", *args], capture_output=True, text=True, check=check)


@pytest.fixture
def netns():
    """A namespace with two veth links, ha (unit a's side) and hb (unit b's), deleted afterwards."""
    name = f"halo-ocf-{uuid.uuid4().hex[:8]}"
    r = ip("netns", "add", name, check=False)
    if r.returncode != 0:
        pytest.skip(f"cannot create a network namespace: {r.stderr.strip()}")
    try:
        ip("-n", name, "link", "set", "lo", "up")
        for side, addr in (("ha", "169.254.10.1/16"), ("hb", "169.254.20.1/16")):
            ip("-n", name, "link", "add", side, "type", "veth", "peer", "name", side + "p")
            ip("-n", name, "link", "set", side, "up")
            ip("-n", name, "link", "set", side + "p", "up")
            ip("-n", name, "addr", "add", addr, "dev", side)
        yield name
    finally:
        ip("netns", "del", name, check=False)


def in_netns(name):
    """A preexec_fn: halod (and so its agents) runs in the namespace, as under `ip netns exec`."""
    def enter():
        libc = ctypes.CDLL(None, use_errno=True)
        fd = os.open(f"/run/netns/{name}", os.O_RDONLY)
        if libc.setns(fd, CLONE_NEWNET) != 0:
            os._exit(111)
        os.close(fd)
    return enter


def holder(ns):
    """The link that holds the floating address, or None."""
    out = ip("-n", ns, "-o", "-4", "addr", "show").stdout
    sides = [line.split()[1] for line in out.splitlines() if f" {FLOATING}/16 " in line]
    assert len(sides) <= 1, f"the floating address is on several links: {out}"
    return sides[0] if sides else None


def test_ipaddr2_floating_address_follows_the_active(halod_factory, netns):
    h = halod_factory(f"""
cluster: test
defaults:
  component:
    restart: {{max: 10, window: 60s, delay: 50ms, delay-max: 500ms}}
service-groups:
  vip:
    component:
      type: ocf
      agent: heartbeat:IPaddr2
      monitor: {{period: 300ms}}
    # Gratuitous ARPs sent by the start itself (arp_bg: false): no process of the agent outlives its action,
    # which halod's stop (and this test) would find left behind.
    service-units:
      a: {{component: {{params: {{ip: {FLOATING}, cidr_netmask: 16, nic: ha, arp_count: 1, arp_bg: "false"}}}}}}
      b: {{component: {{params: {{ip: {FLOATING}, cidr_netmask: 16, nic: hb, arp_count: 1, arp_bg: "false"}}}}}}
    service-instances: {{vip: {{csis: {{addr: {{}}}}}}}}
""", extra_args=("--http", "none"), preexec_fn=in_netns(netns)).start()
    active, standby = h.wait_assigned("vip")
    side = {"a": "ha", "b": "hb"}
    assert holder(netns) == side[active]
    # The ACTIVE unit fails (its address is taken away: IPaddr2's monitor says not running).
    ip("-n", netns, "addr", "del", f"{FLOATING}/16", "dev", side[active])
    wait_for(lambda: h.si("vip")["active"] == standby, timeout=10, what=f"{standby} ACTIVE")
    wait_for(lambda: holder(netns) == side[standby], timeout=5, what="the address on the new ACTIVE's link")
    assert h.wait_assigned("vip") == (standby, active)
    assert holder(netns) == side[standby]
    # A switchover moves it back: stopped on one side, then started on the other.
    h.ctl("switchover", "vip")
    assert h.wait_assigned("vip") == (active, standby)
    assert holder(netns) == side[active]
    assert h.stop() == 0
    assert holder(netns) is None


# ---- an agent of the test's own, to make each action hang or fail ------------------------------

FLAKY = r"""#!/bin/sh
# A test agent: every action is logged; files in $OCF_RESKEY_dir make one hang or fail.
d=$OCF_RESKEY_dir; i=$OCF_RESOURCE_INSTANCE
echo "$1 $i $OCF_RESKEY_CRM_meta_timeout" >> "$d/log"
case "$1" in
meta-data) cat <<END
<?xml version="1.0"?>
<resource-agent name="Flaky" version="1.0"><version>1.1</version>
<parameters><parameter name="dir" required="1"><content type="string"/></parameter></parameters>
<actions>
<action name="start" timeout="1s" />
<action name="stop" timeout="2s" />
<action name="monitor" timeout="2s" interval="200ms" />
<action name="meta-data" timeout="5s" />
</actions></resource-agent>
END
    exit 0;;
start) test -e "$d/start-hangs-$i" && exec sleep 600
    touch "$d/up-$i"; exit 0;;
stop) test -e "$d/stop-fails-$i" && { echo "ERROR: $i cannot stop" >&2; exit 1; }
    test -e "$d/stop-slow-$i" && sleep 1
    rm -f "$d/up-$i"; echo "stopped $i" >> "$d/log"; exit 0;;
monitor) test -e "$d/monitor-hangs-$i" && exec sleep 600; test -e "$d/monitor-slow-$i" && sleep 1.5; test -e "$d/monitor-fails-$i" && exit 1; test -e "$d/up-$i" && exit 0; exit 7;;
validate-all) exit 0;;
*) exit 3;;
esac
"""


@pytest.fixture
def flaky():
    """A provider of the test's own under /usr/lib/ocf/resource.d, removed afterwards: its agent spec."""
    provider = f"halotest{uuid.uuid4().hex[:8]}"
    d = f"/usr/lib/ocf/resource.d/{provider}"
    try:
        os.makedirs(d)
    except OSError as e:
        pytest.skip(f"cannot add an agent under /usr/lib/ocf: {e}")
    try:
        with open(f"{d}/Flaky", "w") as f:
            f.write(FLAKY)
        os.chmod(f"{d}/Flaky", 0o755)
        yield f"ocf:{provider}:Flaky"
    finally:
        shutil.rmtree(d, ignore_errors=True)


def flaky_yaml(flaky, tmp_path, *units):
    """A 2N group of Flaky agents (units a and b, unless named), restarts allowed."""
    sus = ", ".join(f"{u}: {{}}" for u in units or ("a", "b"))
    return f"""
defaults:
  component:
    restart: {{max: 10, window: 60s, delay: 50ms, delay-max: 200ms}}
service-groups:
  g:
    component: {{type: ocf, agent: "{flaky}", params: {{dir: {tmp_path}}}}}
    service-units: {{{sus}}}
    service-instances: {{si: {{csis: {{c: {{}}}}}}}}
"""


def test_the_agents_timeouts_apply_and_a_stop_that_fails_disables_the_unit(halod_factory, tmp_path, flaky):
    for su in ("a", "b"):
        (tmp_path / f"start-hangs-{su}").touch()
    h = halod_factory(flaky_yaml(flaky, tmp_path)).start()
    wait_for(lambda: "Component 'b' is OCF agent" in h.logtext() and "Component 'a' is OCF agent" in h.logtext(),
             what="both meta-data read")
    assert "start 1s, stop 2s, monitor every 200ms within 2s" in h.logtext()
    # The start hangs past the 1 s the agent advertises (not halod's 20 s): a failure.
    first = wait_for(lambda: next((s for s in ("a", "b") if "did not start within its OCF start timeout (1s)"
                                   in (h.su(s).get("last_failure") or "")), None), timeout=10,
                     what="a start timed out")
    assert f"start {first} 1000" in open(tmp_path / "log").read()  # OCF_RESKEY_CRM_meta_timeout, in ms
    for su in ("a", "b"):
        os.unlink(tmp_path / f"start-hangs-{su}")
    active, standby = h.wait_assigned("si", timeout=20)
    assert os.path.exists(tmp_path / f"up-{active}") and not os.path.exists(tmp_path / f"up-{standby}")
    # The resource fails; its cleanup (stop) fails: it may still be held, so its unit is disabled,
    # and the SI waits for an operator: starting it on the standby could make two of it.
    (tmp_path / f"stop-fails-{active}").touch()
    (tmp_path / f"monitor-fails-{active}").touch()
    wait_for(lambda: h.su(active)["oper"] == "DISABLED", timeout=10, what=f"{active} disabled")
    assert "OCF stop failed: OCF_ERR_GENERIC (1: generic error): " + active + " cannot stop" in \
        h.comp(active)["last_exit"]
    assert f"service unit '{active}' is disabled until 'haloctl repair {active}'" in h.logtext()
    wait_for(lambda: f"the service instances of unit '{active}' wait" in h.logtext(), what="the SI waiting")
    time.sleep(1)
    assert not h.si("si")["active"] and os.path.exists(tmp_path / f"up-{active}")
    assert not os.path.exists(tmp_path / f"up-{standby}")
    # The operator stops it by hand and repairs the unit: the standby takes the SI, the unit is back.
    os.unlink(tmp_path / f"stop-fails-{active}")
    os.unlink(tmp_path / f"monitor-fails-{active}")
    os.unlink(tmp_path / f"up-{active}")
    h.ctl("repair", active)
    assert h.wait_assigned("si") == (standby, active)
    # A switchover whose stop fails is a failure of the old ACTIVE, whose cleanup (the stop again)
    # fails too: disabled, and the SI waits again.
    (tmp_path / f"stop-fails-{standby}").touch()
    h.ctl("switchover", "si", check=False)
    wait_for(lambda: h.su(standby)["oper"] == "DISABLED", timeout=10, what=f"{standby} disabled")
    assert f"component '{standby}' OCF stop failed" in h.su(standby)["last_failure"]
    time.sleep(1)
    assert not h.si("si")["active"] and not os.path.exists(tmp_path / f"up-{active}")
    os.unlink(tmp_path / f"stop-fails-{standby}")
    os.unlink(tmp_path / f"up-{standby}")
    h.ctl("repair", standby)
    wait_for(lambda: h.si("si")["active"] == active, timeout=10, what=f"{active} ACTIVE after the repair")
    assert h.stop() == 0



def test_halod_stopping_during_a_start_stops_the_resource(halod_factory, tmp_path, flaky):
    for su in ("a", "b"):
        (tmp_path / f"start-hangs-{su}").touch()
    h = halod_factory(f"""
service-groups:
  g:
    component: {{type: ocf, agent: "{flaky}", params: {{dir: {tmp_path}}}, timeouts: {{instantiate: 30s}}}}
    service-units: {{a: {{}}, b: {{}}}}
    service-instances: {{si: {{csis: {{c: {{}}}}}}}}
""").start()

    def actions():
        return [line.split()[:2] for line in open(tmp_path / "log")] if os.path.exists(tmp_path / "log") else []

    wait_for(lambda: ["start", "a"] in actions(), what="a's start")
    assert h.stop() == 0  # the start is killed, and then the agent's stop runs
    # a's actions (b's meta-data runs at the same time as a's, and may be logged in between)
    of_a = [x for x in actions() if x[1] == "a"]
    assert of_a[of_a.index(["start", "a"]):] == [["start", "a"], ["stop", "a"], ["stopped", "a"]]
    # Probed first, as every resource of a starting halod.
    assert of_a[:3] == [["meta-data", "a"], ["monitor", "a"], ["start", "a"]]
