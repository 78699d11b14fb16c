# SPDX-License-Identifier: MIT
"""The lease's fence of what libhalo cannot fence: on several nodes, a non-SA-aware
process and an OCF resource of a node whose halod is SIGKILLed are stopped by their
halo-guard at the node's lease deadline, before another node's unit takes the work
(docs/design.md, "The lease's fence of non-SA-aware and OCF components")."""
import os
import select
import signal
import time

from halo_harness import wait_for

PY = "/usr/bin/python3"
# A program that knows nothing of halo: logs its start on CLOCK_MONOTONIC (the test's clock too), then sleeps.
PROG = "import os, sys, time; open(sys.argv[1], 'a').write(f'{time.monotonic()} {os.getpid()}' + chr(10)); time.sleep(1000)"


def two_nodes(etcd, halod_factory, yaml_text):
    hs = {n: halod_factory(yaml_text, name=n, extra_args=["--node", n, "--etcd", etcd.endpoints,
                                                          "--lease-ttl", "1"]).start() for n in ("n1", "n2")}
    return hs


def starts(log):
    try:
        with open(log) as f:
            return [(float(t), int(p)) for t, p in (line.split() for line in f if line.strip())]
    except FileNotFoundError:
        return []


def nsa_yaml(tmp_path):
    """A 2N group of PROG, unit a on n1 and b on n2; ({unit: its start log}, the description)."""
    log = {u: str(tmp_path / f"{u}.log") for u in ("a", "b")}
    return log, f"""
cluster: guard
nodes: {{n1: {{}}, n2: {{}}}}
service-groups:
  g:
    component: {{type: non-sa-aware, command: {PY}}}
    service-units:
      a: {{node: n1, component: {{args: ["-c", "{PROG}", "{log['a']}"]}}}}
      b: {{node: n2, component: {{args: ["-c", "{PROG}", "{log['b']}"]}}}}
    service-instances: {{si: {{csis: {{c: {{}}}}}}}}
"""


def test_a_killed_halods_non_sa_aware_process_dies_before_the_other_node_starts_its_copy(etcd, halod_factory,
                                                                                          tmp_path):
    log, yaml_text = nsa_yaml(tmp_path)
    hs = two_nodes(etcd, halod_factory, yaml_text)
    wait_for(lambda: starts(log["a"]) or starts(log["b"]), timeout=30, what="the ACTIVE's process started")
    unit, other = ("a", "b") if starts(log["a"]) else ("b", "a")
    node = {"a": "n1", "b": "n2"}[unit]
    _, pid = starts(log[unit])[0]
    assert wait_for(lambda: os.path.exists(f"{hs[node].state}/guards/{unit}"), what="its guard's file")
    fd = os.pidfd_open(pid)
    hs[node].proc.kill()  # SIGKILL of halod: the program itself runs on
    hs[node].proc.wait()
    assert select.select([fd], [], [], 10)[0], "the process outlived its node's lease"
    died = time.monotonic()
    os.close(fd)
    t_other, _ = wait_for(lambda: starts(log[other]) and starts(log[other])[0], timeout=30,
                          what="the other node's copy started")
    assert died < t_other, f"two copies ran for {1000 * (died - t_other):.1f} ms"
    assert f"The guard of component" not in hs[{"n1": "n2", "n2": "n1"}[node]].logtext()


def test_a_killed_halods_ocf_resource_is_stopped_by_its_agent_at_the_deadline(etcd, halod_factory, tmp_path):
    state = {u: tmp_path / f"{u}.state" for u in ("a", "b")}
    yaml_text = f"""
cluster: guard
nodes: {{n1: {{}}, n2: {{}}}}
service-groups:
  g:
    component: {{type: ocf, agent: "ocf:heartbeat:Dummy", monitor: {{period: 1s}}}}
    service-units:
      a: {{node: n1, component: {{params: {{state: {state['a']}}}}}}}
      b: {{node: n2, component: {{params: {{state: {state['b']}}}}}}}
    service-instances: {{si: {{csis: {{c: {{}}}}}}}}
"""
    hs = two_nodes(etcd, halod_factory, yaml_text)
    wait_for(lambda: state["a"].exists() or state["b"].exists(), timeout=30, what="the resource started")
    unit, other = ("a", "b") if state["a"].exists() else ("b", "a")
    node = {"a": "n1", "b": "n2"}[unit]
    hs[node].proc.kill()
    hs[node].proc.wait()
    # The agent's stop, run by the guard, removes the state file; the other unit starts its own.
    wait_for(lambda: not state[unit].exists(), timeout=10, what="the killed node's resource stopped")
    wait_for(lambda: state[other].exists(), timeout=30, what="the other node's resource started")


def test_a_stopped_component_leaves_no_guard(halod_factory, etcd, tmp_path):
    log, yaml_text = nsa_yaml(tmp_path)
    hs = two_nodes(etcd, halod_factory, yaml_text)
    wait_for(lambda: starts(log["a"]) or starts(log["b"]), timeout=30, what="the ACTIVE's process started")
    unit = "a" if starts(log["a"]) else "b"
    node = {"a": "n1", "b": "n2"}[unit]
    guards = f"{hs[node].state}/guards"
    assert wait_for(lambda: os.path.exists(f"{guards}/{unit}"), what="its guard's file")
    wait_for(lambda: (lambda s: s["active"] and s["standby"] and not any(a["pending"] for a in s["assignments"]))(
        hs[node].si("si")), timeout=30, what="si fully assigned")
    hs[node].ctl("switchover", "si")
    wait_for(lambda: not os.path.exists(f"{guards}/{unit}"), what="the guard's file removed after the stop")
    for h in hs.values():
        assert h.stop() == 0


def test_a_restarted_halod_keeps_its_non_sa_aware_standby(etcd, halod_factory, tmp_path):
    """A non-SA-aware STANDBY runs nothing: a halod killed and back within its lease learns that role from the
    coordinator's target alone, read before its takeover of the lease completes.  It used to drop it (a target for
    a lease it did not hold yet), its view showing the SI without its STANDBY for good (chaos seed 310)."""
    log, yaml_text = nsa_yaml(tmp_path)
    hs = two_nodes(etcd, halod_factory, yaml_text)
    node = {"a": "n1", "b": "n2"}

    def roles(h):
        s = h.si("si")
        return (s["active"], s["standby"]) if not any(a["pending"] for a in s["assignments"]) else None
    act, sb = wait_for(lambda: roles(hs["n1"]) and roles(hs["n1"])[1] and roles(hs["n1"]), timeout=30,
                       what="si ACTIVE and STANDBY")
    h = hs[node[sb]]
    wait_for(lambda: roles(h) == (act, sb), timeout=20, what="the STANDBY's node sees it")
    h.proc.kill()
    h.proc.wait()
    h.start()
    wait_for(lambda: "Taking over the lease" in h.logtext(), timeout=20, what="the lease taken over")
    assert wait_for(lambda: roles(h) == (act, sb), timeout=20, what=f"{sb} STANDBY again in its node's view")
    for x in hs.values():
        assert x.stop() == 0
