# SPDX-License-Identifier: MIT
"""The redundancy models besides 2N, end to end: real halods, real components (testcomp)."""
import json
import os
import signal
import subprocess
import urllib.request

from halo_harness import HALOD, TESTCOMP, start_nodes, testcomp_events as events, wait_for


def group_yaml(log, redundancy, sus, sis, sg_keys="", nodes=None, modes="", delay="50ms"):
    """One group of testcomp units (sus: names, or {name: node}) and SIs of one CSI each."""
    if nodes:
        node_lines = "nodes:\n" + "".join(f"  {n}: {{}}\n" for n in nodes)
        su_lines = "".join(f"      {su}: {{node: {node}}}\n" for su, node in sus.items())
    else:
        node_lines = ""
        su_lines = "".join(f"      {su}: {{}}\n" for su in sus)
    si_lines = "".join(f"      {si}: {{{keys}csis: {{{si}-csi: {{}}}}}}\n" for si, keys in sis.items())
    return f"""
cluster: models
{node_lines}defaults:
  component:
    health-check: {{period: 200ms, timeout: 600ms}}
    restart: {{max: 10, window: 60s, delay: {delay}, delay-max: 5s}}
    timeouts: {{terminate: 2s}}
service-groups:
  g:
    redundancy: {redundancy}
{sg_keys}    component:
      command: {TESTCOMP}
      env: {{TESTCOMP_LOG: "{log}", TESTCOMP: "{modes}"}}
    service-units:
{su_lines}    service-instances:
{si_lines}"""


def confirmed(h, si, state):
    """The units holding si in state, confirmed, with nothing in flight; None while something is."""
    s = h.si(si)
    if any(a["pending"] for a in s["assignments"]):
        return None
    return sorted(a["su"] for a in s["assignments"] if a["ha_state"] == state)


def wait_roles(h, si, state, units, timeout=15):
    wait_for(lambda: confirmed(h, si, state) == sorted(units), timeout=timeout,
             what=f"{si} {state} on {sorted(units)}")


def test_n_way_active_three_units_losing_one(halod_factory, tmp_path):
    log = str(tmp_path / "comp.log")
    h = halod_factory(group_yaml(log, "N-way-active", ["w-a", "w-b", "w-c"], {"web": ""},
                                 modes="track=web-csi")).start()
    wait_roles(h, "web", "ACTIVE", ["w-a", "w-b", "w-c"])
    assert h.si("web")["assignment"] == "FULLY-ASSIGNED"
    assert h.si("web")["actives"] == ["w-a", "w-b", "w-c"]
    # A protection-group tracker sees every member, not two.
    wait_for(lambda: any(all(f"w-{x}:ACTIVE" in " ".join(e) for x in "abc") for e in events(log, "w-a", "PG")),
             what="all three members reported")
    pids = {su: h.pid_of(su) for su in ("w-a", "w-b", "w-c")}
    sets_before = {su: len(events(log, su, "CSI_SET")) for su in ("w-a", "w-c")}
    n_pg = len(events(log, "w-a", "PG"))

    os.kill(pids["w-b"], signal.SIGKILL)
    wait_for(lambda: any("w-b:ACTIVE:3" in " ".join(e) for e in events(log, "w-a", "PG")[n_pg:]),
             what="w-b reported REMOVED to the tracker")
    # The lost unit comes back as a new process, ACTIVE again.
    wait_for(lambda: h.pid_of("w-b") not in (None, pids["w-b"]), what="w-b restarted")
    wait_roles(h, "web", "ACTIVE", ["w-a", "w-b", "w-c"])
    assert events(log, "w-b", "CSI_SET")[-1][3] == "ACTIVE"
    wait_for(lambda: any("w-b:ACTIVE:2" in " ".join(e) for e in events(log, "w-a", "PG")[n_pg:]),
             what="w-b reported ADDED to the tracker")
    # The other two stayed ACTIVE throughout: same processes, no new CSI set.
    for su in ("w-a", "w-c"):
        assert h.pid_of(su) == pids[su]
        assert len(events(log, su, "CSI_SET")) == sets_before[su]
    h.stop()


def test_n_way_active_lock_removes_one_the_others_stay(halod_factory, tmp_path):
    log = str(tmp_path / "comp.log")
    h = halod_factory(group_yaml(log, "NWayActive", ["w-a", "w-b", "w-c"], {"web": "active-assignments: 2, "})).start()
    wait_roles(h, "web", "ACTIVE", ["w-a", "w-b"])
    h.ctl("admin", "shutdown", "su:w-a")
    # QUIESCING first (gracefully), then removed; the spare w-c takes its place.
    wait_roles(h, "web", "ACTIVE", ["w-b", "w-c"])
    assert [e[3] for e in events(log, "w-a", "CSI_SET")][-1] == "QUIESCING"
    assert events(log, "w-a", "CSI_REMOVE")
    h.ctl("unlock", "w-a")
    h.stop()


def test_no_redundancy_moves_a_failed_units_si_to_the_spare(halod_factory, tmp_path):
    log = str(tmp_path / "comp.log")
    h = halod_factory(group_yaml(log, "no-redundancy", ["n-a", "n-b", "n-c"], {"s0": "", "s1": ""})).start()
    wait_roles(h, "s0", "ACTIVE", ["n-a"])
    wait_roles(h, "s1", "ACTIVE", ["n-b"])
    assert h.si("s0")["standby"] is None
    assert not events(log, "n-c", "CSI_SET")  # the spare holds nothing
    pid_b = h.pid_of("n-b")
    os.kill(h.pid_of("n-a"), signal.SIGKILL)
    wait_roles(h, "s0", "ACTIVE", ["n-c"])
    # n-a is back and spare; s1 never moved.
    wait_for(lambda: h.su("n-a")["readiness"] == "IN-SERVICE", what="n-a back in service")
    assert confirmed(h, "s0", "ACTIVE") == ["n-c"] and confirmed(h, "s1", "ACTIVE") == ["n-b"]
    assert h.pid_of("n-b") == pid_b
    h.stop()


def test_rank_not_the_listing_order_says_which_si_gives_way(halod_factory, tmp_path):
    log = str(tmp_path / "comp.log")
    h = halod_factory(group_yaml(log, "no-redundancy", ["r-a", "r-b"], {"low": "rank: 5, ", "high": "rank: 0, "},
                                 delay="3s")).start()
    wait_for(lambda: confirmed(h, "low", "ACTIVE") and confirmed(h, "high", "ACTIVE"), what="both SIs assigned")
    high_unit, low_unit = confirmed(h, "high", "ACTIVE")[0], confirmed(h, "low", "ACTIVE")[0]
    os.kill(h.pid_of(high_unit), signal.SIGKILL)
    # One unit left: the SI of higher rank takes it, though it is listed second.
    wait_roles(h, "high", "ACTIVE", [low_unit])
    assert confirmed(h, "low", "ACTIVE") == []
    assert h.si("low")["assignment"] == "UNASSIGNED"
    wait_roles(h, "low", "ACTIVE", [high_unit])  # back after its restart delay
    h.stop()


def test_n_plus_m_three_plus_one(halod_factory, tmp_path):
    log = str(tmp_path / "comp.log")
    h = halod_factory(group_yaml(log, "N+M", ["p-a", "p-b", "p-c", "p-d"], {"s0": "", "s1": "", "s2": ""},
                                 sg_keys="    active-sus: 3\n    standby-sus: 1\n")).start()
    for si, su in (("s0", "p-a"), ("s1", "p-b"), ("s2", "p-c")):
        wait_roles(h, si, "ACTIVE", [su])
        wait_roles(h, si, "STANDBY", ["p-d"])
    os.kill(h.pid_of("p-b"), signal.SIGKILL)
    # The standby unit takes s1 over; the back p-b becomes the standby unit of all three.
    wait_roles(h, "s1", "ACTIVE", ["p-d"])
    for si in ("s0", "s1", "s2"):
        wait_roles(h, si, "STANDBY", ["p-b"])
    assert confirmed(h, "s0", "ACTIVE") == ["p-a"] and confirmed(h, "s2", "ACTIVE") == ["p-c"]
    h.stop()


def test_n_way_two_standbys_the_best_one_takes_over(halod_factory, tmp_path):
    log = str(tmp_path / "comp.log")
    h = halod_factory(group_yaml(log, "N-way", ["y-a", "y-b", "y-c"], {"s0": "standby-assignments: 2, "})).start()
    wait_roles(h, "s0", "ACTIVE", ["y-a"])
    wait_roles(h, "s0", "STANDBY", ["y-b", "y-c"])
    pid_c = h.pid_of("y-c")
    os.kill(h.pid_of("y-a"), signal.SIGKILL)
    wait_roles(h, "s0", "ACTIVE", ["y-b"])  # the best-ranked STANDBY, failed over (NOT_QUIESCED)
    assert events(log, "y-b", "CSI_SET")[-1][3:5] == ["ACTIVE", "transition=3"]
    wait_roles(h, "s0", "STANDBY", ["y-a", "y-c"])  # y-a back as STANDBY; y-c untouched
    assert h.pid_of("y-c") == pid_c and len(events(log, "y-c", "CSI_SET")) == 1
    h.stop()


def test_check_rejects_impossible_models(tmp_path):
    path = tmp_path / "bad.yaml"
    path.write_text(group_yaml("/dev/null", "N+M", ["a", "b"], {"s0": "depends-on: [nope], "},
                               sg_keys="    active-sus: 2\n    standby-sus: 1\n"))
    r = subprocess.run([HALOD, "--check", str(path)], capture_output=True, text=True)
    assert r.returncode != 0
    assert "redundancy N+M with 2 active and 1 standby service units needs 3 service units, found 2" in r.stderr
    assert "'depends-on' names 'nope', which is not a service instance of service group 'g'" in r.stderr


def test_n_way_active_across_three_nodes(etcd, halod_factory, tmp_path):
    log = str(tmp_path / "comp.log")
    nodes = ("n1", "n2", "n3")
    yaml = group_yaml(log, "N-way-active", {"w-1": "n1", "w-2": "n2", "w-3": "n3"}, {"web": "entrypoint: true, "},
                      nodes=nodes, modes="track=web-csi")
    hs, http = start_nodes(halod_factory, yaml, etcd.endpoints, nodes=nodes)
    for h in hs.values():  # every node sees the three ACTIVEs
        wait_roles(h, "web", "ACTIVE", ["w-1", "w-2", "w-3"], timeout=30)
    wait_for(lambda: any(all(f"w-{x}:ACTIVE" in " ".join(e) for x in "123") for e in events(log, "w-3", "PG")),
             timeout=20, what="all three members reported on n3")
    pid1, pid2 = hs["n1"].pid_of("w-1"), hs["n2"].pid_of("w-2")
    sets3 = len(events(log, "w-3", "CSI_SET"))
    n_pg = len(events(log, "w-3", "PG"))
    os.kill(pid2, signal.SIGKILL)
    wait_for(lambda: any("w-2:ACTIVE:3" in " ".join(e) for e in events(log, "w-3", "PG")[n_pg:]),
             timeout=20, what="w-2 reported REMOVED on n3")
    wait_for(lambda: hs["n2"].pid_of("w-2") not in (None, pid2), timeout=20, what="w-2 restarted")
    for h in hs.values():
        wait_roles(h, "web", "ACTIVE", ["w-1", "w-2", "w-3"], timeout=30)
    assert events(log, "w-2", "CSI_SET")[-1][3] == "ACTIVE"
    assert hs["n1"].pid_of("w-1") == pid1 and len(events(log, "w-3", "CSI_SET")) == sets3
    # The store holds one target, one confirmation per unit, and the SI's record lists all three.
    keys = etcd.get_prefix("/halo/models/")
    for su in ("w-1", "w-2", "w-3"):
        assert '"ACTIVE"' in keys[f"/halo/models/confirmed/web/{su}"]
    wait_for(lambda: sorted(a["su"] for a in json.loads(etcd.get_prefix("/halo/models/assignments/web")
                                                        ["/halo/models/assignments/web"])["assignments"])
             == ["w-1", "w-2", "w-3"], what="the assignments record lists the three")
    # Clients asking where the service is get its best-ranked ACTIVE.
    with urllib.request.urlopen(f"http://127.0.0.1:{http['n3']}/v1/entrypoint", timeout=5) as r:
        ep = json.loads(r.read())["entrypoints"][0]
    assert (ep["si"], ep["active"], ep["node"]) == ("web", "w-1", "n1")
    for h in hs.values():
        h.stop()


def test_2n_switchover_moves_the_groups_sis_together(halod_factory, tmp_path):
    log = str(tmp_path / "comp.log")
    h = halod_factory(group_yaml(log, "2N", ["t-a", "t-b", "t-c"], {"s0": "", "s1": ""})).start()
    active, standby = h.wait_assigned("s0")
    assert h.wait_assigned("s1") == (active, standby)  # together
    h.ctl("switchover", "s0")
    # Both SIs moved: still one unit ACTIVE for the group, another STANDBY.
    for si in ("s0", "s1"):
        assert h.wait_assigned(si) == (standby, active)
    h.stop()


def test_n_plus_m_two_plus_one_across_three_nodes(etcd, halod_factory, tmp_path):
    log = str(tmp_path / "comp.log")
    nodes = ("n1", "n2", "n3")
    yaml = group_yaml(log, "N+M", {"p-1": "n1", "p-2": "n2", "p-3": "n3"}, {"s0": "", "s1": ""}, nodes=nodes,
                      sg_keys="    active-sus: 2\n    standby-sus: 1\n    max-active-sis-per-su: 1\n")
    hs, _ = start_nodes(halod_factory, yaml, etcd.endpoints, nodes=nodes)
    h = hs["n3"]  # any node's view will do: every node holds the same
    wait_for(lambda: confirmed(h, "s0", "ACTIVE") and confirmed(h, "s1", "ACTIVE") and
             confirmed(h, "s0", "STANDBY") and confirmed(h, "s1", "STANDBY"), timeout=30, what="2+1 assigned")
    act = {si: confirmed(h, si, "ACTIVE")[0] for si in ("s0", "s1")}
    standby_unit = confirmed(h, "s0", "STANDBY")[0]
    assert len(set(act.values())) == 2 and confirmed(h, "s1", "STANDBY") == [standby_unit]
    assert standby_unit not in act.values()  # never ACTIVE and STANDBY on one unit
    victim = act["s0"]
    node = {"p-1": "n1", "p-2": "n2", "p-3": "n3"}[victim]
    os.kill(hs[node].pid_of(victim), signal.SIGKILL)
    for v in hs.values():
        wait_roles(v, "s0", "ACTIVE", [standby_unit], timeout=30)
        wait_roles(v, "s1", "ACTIVE", [act["s1"]], timeout=30)
        for si in ("s0", "s1"):  # the failed unit, back, is the standby unit now
            wait_roles(v, si, "STANDBY", [victim], timeout=30)
    for v in hs.values():
        v.stop()
