# SPDX-License-Identifier: MIT
"""The AMF's maintenance operations end to end (haloctl admin): real halods, real
components (testcomp), one node and two nodes over a real etcd."""
import os
import re
import signal
import subprocess
import time

from halo_harness import HALOCTL, TESTCOMP, pid_alive, start_nodes, testcomp_events as events, wait_for
from test_redundancy_models import confirmed, group_yaml, wait_roles


def two_units(halod_factory, tmp_path, sg_keys="", modes="quiesce-hold", delay="50ms"):
    log = str(tmp_path / "comp.log")
    h = halod_factory(group_yaml(log, "2N", ["a", "b"], {"s": ""}, sg_keys=sg_keys, modes=modes,
                                 delay=delay)).start()
    wait_roles(h, "s", "ACTIVE", ["a"])
    wait_roles(h, "s", "STANDBY", ["b"])
    return h, log


def index_of(log, comp, *words):
    """The index, in the whole log, of comp's first line holding words (in order from the second word), or -1."""
    for i, e in enumerate(events(log)):
        if e[0] == comp and e[1:1 + len(words)] == list(words):
            return i
    return -1


def sets(log, comp, state):
    return [e for e in events(log, comp, "CSI_SET") if e[3] == state]


def failures(h):
    """The unit failures halod logged."""
    return re.findall(r"Service unit '\S+' failed.*", h.logtext())


def gone(pid):
    """The process is gone, not even a zombie left behind."""
    return not pid_alive(pid) and not os.path.exists(f"/proc/{pid}")


def test_lock_quiesces_at_once_shutdown_waits_for_quiescing_complete(halod_factory, tmp_path):
    h, log = two_units(halod_factory, tmp_path)
    hold = log + ".a.quiesce-hold"
    open(hold, "w").close()  # a would never complete a QUIESCING: a lock does not ask it to
    h.ctl("admin", "lock", "su:a")
    wait_roles(h, "s", "ACTIVE", ["b"])
    assert [e[3] for e in events(log, "a", "CSI_SET")] == ["ACTIVE", "QUIESCED"]  # no QUIESCING
    assert sets(log, "b", "ACTIVE")[-1][4] == "transition=2"  # QUIESCED: the old one was quiesced first
    assert index_of(log, "a", "CSI_SET", "s-csi", "QUIESCED") < index_of(log, "b", "CSI_SET", "s-csi", "ACTIVE")
    assert h.su("a")["admin"] == "LOCKED"
    assert h.si("s")["standby"] is None
    h.ctl("admin", "unlock", "su:a")
    wait_roles(h, "s", "STANDBY", ["a"])
    os.unlink(hold)

    # Shutdown of b (ACTIVE now): QUIESCING, and the SI stays on b until it completes.
    open(log + ".b.quiesce-hold", "w").close()
    ctl = subprocess.Popen([HALOCTL, "-s", h.socket, "admin", "shutdown", "su:b"], stdout=subprocess.PIPE,
                           stderr=subprocess.PIPE, text=True)
    wait_for(lambda: sets(log, "b", "QUIESCING"), what="b told QUIESCING")
    assert h.su("b")["admin"] == "SHUTTING-DOWN"
    assert h.si("s")["actives"] == ["b"]
    assert ctl.poll() is None  # answered only once b holds nothing
    assert len(sets(log, "a", "ACTIVE")) == 1
    os.unlink(log + ".b.quiesce-hold")
    out, err = ctl.communicate(timeout=20)
    assert ctl.returncode == 0, err
    assert "admin shutdown su:b: done" in out
    wait_roles(h, "s", "ACTIVE", ["a"])
    assert sets(log, "a", "ACTIVE")[-1][4] == "transition=2"
    assert index_of(log, "b", "QUIESCING_COMPLETE") < len(events(log)) - 1
    assert index_of(log, "b", "QUIESCING_COMPLETE") < [i for i, e in enumerate(events(log))
                                                      if e[:2] == ["a", "CSI_SET"] and e[3] == "ACTIVE"][-1]
    assert h.su("b")["admin"] == "LOCKED"
    h.stop()


def test_lock_instantiation_stops_the_processes_and_unlock_instantiation_starts_them(halod_factory, tmp_path):
    h, log = two_units(halod_factory, tmp_path, modes="")
    pid_a, pid_b = h.pid_of("a"), h.pid_of("b")
    r = h.ctl("admin", "lock-instantiation", "su:b", check=False)
    assert r.returncode != 0 and "lock-instantiation needs su:b locked first" in r.stderr
    h.ctl("admin", "lock", "su:b")
    h.ctl("admin", "lock-instantiation", "su:b")
    assert gone(pid_b)  # answered once the process is gone, and reaped
    su = h.su("b")
    assert su["admin"] == "LOCKED-INSTANTIATION"
    assert su["components"][0]["presence"] == "UNINSTANTIATED" and su["components"][0]["pid"] is None
    assert not failures(h)
    assert events(log, "b", "TERMINATE")  # asked to terminate, not killed
    r = h.ctl("admin", "unlock", "su:b", check=False)
    assert r.returncode != 0 and "unlock-instantiation su:b" in r.stderr
    h.ctl("admin", "unlock-instantiation", "su:b")
    wait_for(lambda: h.pid_of("b") not in (None, pid_b), what="b started again")
    assert h.su("b")["admin"] == "LOCKED"
    h.ctl("admin", "unlock", "su:b")
    wait_roles(h, "s", "STANDBY", ["b"])
    assert h.pid_of("a") == pid_a
    assert "UNLOCKED" in h.ctl("status").stdout
    h.stop()


def test_restart_in_place_keeps_the_role(halod_factory, tmp_path):
    h, log = two_units(halod_factory, tmp_path, modes="")
    pid_a, pid_b = h.pid_of("a"), h.pid_of("b")
    h.ctl("admin", "restart", "su:a")
    wait_for(lambda: h.pid_of("a") not in (None, pid_a), what="a restarted")
    wait_for(lambda: len(sets(log, "a", "ACTIVE")) == 2, what="a's new process set ACTIVE again")
    wait_roles(h, "s", "ACTIVE", ["a"])
    assert not sets(log, "b", "ACTIVE")  # the SI never left a
    assert h.pid_of("b") == pid_b
    wait_for(lambda: gone(pid_a), what="a's old process reaped")
    # The shortcut restarts a component the same way.
    pid_a = h.pid_of("a")
    h.ctl("restart", "a")
    wait_for(lambda: len(sets(log, "a", "ACTIVE")) == 3, what="a's next process set ACTIVE again")
    assert h.pid_of("a") != pid_a and not sets(log, "b", "ACTIVE")
    assert not failures(h)
    h.stop()


def test_si_swap_and_sg_adjust(halod_factory, tmp_path):
    h, log = two_units(halod_factory, tmp_path, modes="")
    pids = (h.pid_of("a"), h.pid_of("b"))
    h.ctl("admin", "si-swap", "si:s")
    wait_roles(h, "s", "ACTIVE", ["b"])
    wait_roles(h, "s", "STANDBY", ["a"])
    assert sets(log, "b", "ACTIVE")[-1][4] == "transition=2"
    h.ctl("admin", "sg-adjust", "sg:g")  # a ranks first: ACTIVE back to it, gracefully
    wait_roles(h, "s", "ACTIVE", ["a"])
    wait_roles(h, "s", "STANDBY", ["b"])
    assert sets(log, "a", "ACTIVE")[-1][4] == "transition=2"
    assert len(sets(log, "b", "QUIESCING")) == 1
    assert (h.pid_of("a"), h.pid_of("b")) == pids
    h.stop()


def test_auto_adjust_moves_back_only_after_the_probation(halod_factory, tmp_path):
    h, log = two_units(halod_factory, tmp_path, modes="",
                       sg_keys="    auto-adjust: true\n    auto-adjust-probation: 3s\n")
    pid_a = h.pid_of("a")
    os.kill(pid_a, signal.SIGKILL)
    wait_roles(h, "s", "ACTIVE", ["b"])
    wait_for(lambda: h.su("a")["readiness"] == "IN-SERVICE", what="a back in service")
    back = time.monotonic()
    wait_roles(h, "s", "STANDBY", ["a"])
    wait_roles(h, "s", "ACTIVE", ["a"], timeout=20)
    waited = time.monotonic() - back
    assert waited >= 2.8, f"ACTIVE moved back {waited:.2f} s after a came back, within its 3 s probation"
    assert sets(log, "a", "ACTIVE")[-1][4] == "transition=2"  # gracefully, as a switchover
    h.stop()


def test_wrong_operations_give_clear_errors(halod_factory, tmp_path):
    h, log = two_units(halod_factory, tmp_path, modes="")
    cases = [
        (("admin", "lock-instantiation", "si:s"), "does not apply to si:s"),
        (("admin", "restart", "si:s"), "it applies to su, comp"),
        (("admin", "lock", "a"), "KIND:NAME"),
        (("admin", "frobnicate", "su:a"), "unknown operation"),
        (("admin", "lock", "su:nope"), "no such object: su:nope"),
        (("admin", "unlock", "su:a"), "su:a is unlocked already"),
        (("admin", "unlock-instantiation", "su:a"), "su:a is not LOCKED-INSTANTIATION"),
        (("admin", "repaired", "su:a"), "su:a is neither DISABLED nor unkillable"),
        (("admin", "switchover", "node:nowhere"), "no such object: node:nowhere"),
        (("lock", "nope"), "no such object"),
    ]
    for args, text in cases:
        r = h.ctl(*args, check=False)
        assert r.returncode != 0 and text in r.stderr, (args, r.stderr)
    h.ctl("admin", "lock", "su:b")
    r = h.ctl("admin", "lock", "su:b", check=False)
    assert r.returncode != 0 and "su:b is locked already" in r.stderr
    # 'shutdown' alone still stops halod, saying it is the old name of stop-halod.
    r = h.ctl("shutdown")
    assert "deprecated" in r.stderr and "stop-halod" in r.stderr
    assert h.proc.wait(timeout=20) == 0


def test_admin_state_survives_a_halod_kill(halod_factory, tmp_path):
    h, log = two_units(halod_factory, tmp_path, modes="")
    h.ctl("admin", "lock", "su:b")
    h.ctl("admin", "lock-instantiation", "su:b")
    h.remember_children()
    h.proc.kill()
    h.proc.wait()
    h.start()
    wait_roles(h, "s", "ACTIVE", ["a"])
    su = h.su("b")
    assert su["admin"] == "LOCKED-INSTANTIATION" and su["components"][0]["pid"] is None
    assert "LOCKED-INSTANTIATION" in h.ctl("status").stdout
    h.ctl("admin", "unlock-instantiation", "su:b")
    h.ctl("admin", "unlock", "su:b")
    wait_roles(h, "s", "STANDBY", ["b"])
    assert h.stop() == 0


def two_groups_yaml(log):
    """Two 2N groups on two nodes: g1's units a1 (n1) and b1 (n2), g2's a2 (n2) and b2 (n1)."""
    groups = "".join(f"""
  g{i}:
    component:
      command: {TESTCOMP}
      env: {{TESTCOMP_LOG: "{log}", TESTCOMP: ""}}
    service-units:
      a{i}: {{node: {first}}}
      b{i}: {{node: {second}}}
    service-instances:
      s{i}: {{csis: {{s{i}-csi: {{}}}}}}""" for i, first, second in ((1, "n1", "n2"), (2, "n2", "n1")))
    return f"""
cluster: admin
nodes:
  n1: {{}}
  n2: {{}}
defaults:
  component:
    restart: {{max: 10, window: 60s, delay: 50ms, delay-max: 5s}}
    timeouts: {{terminate: 2s}}
service-groups:{groups}
"""


def settled(h, si):
    """(ACTIVE unit, STANDBY unit) of si once both are confirmed, else None."""
    act, sb = confirmed(h, si, "ACTIVE"), confirmed(h, si, "STANDBY")
    return (act[0], sb[0]) if act and sb and len(act) == len(sb) == 1 else None


def actives_onto(hs, roles, node, onto, asked_of):
    """Swaps each SI of roles ({si: (ACTIVE, STANDBY)}, updated) whose ACTIVE is not on node onto."""
    for si in roles:
        if node[roles[si][0]] != onto:
            hs[asked_of].ctl("admin", "si-swap", f"si:{si}")
            roles[si] = roles[si][::-1]
        for h in hs.values():
            wait_for(lambda: settled(h, si) == roles[si], timeout=20, what=f"{si} ACTIVE on {onto}")


def drain(hs, log, node, drained, asked_of):
    """Node switchover of drained, asked of node asked_of: every ACTIVE it holds
    moves to the other node gracefully, its processes stop, nothing fails."""
    other = "n1" if drained == "n2" else "n2"
    gone_units = [u for u in node if node[u] == drained]
    kept_units = [u for u in node if node[u] == other]
    roles = {si: settled(hs[other], si) for si in ("s1", "s2")}
    moved = {si: roles[si][1] for si in roles if node[roles[si][0]] == drained}
    assert moved, "the drained node holds no ACTIVE: nothing to check"
    old_pids = {c: hs[drained].pid_of(c) for c in gone_units}
    kept_pids = {c: hs[other].pid_of(c) for c in kept_units}
    n_sets = {c: len(sets(log, c, "ACTIVE")) for c in kept_units}
    n_terms = {c: len(events(log, c, "TERMINATE")) for c in gone_units}
    hs[asked_of].ctl("admin", "switchover", f"node:{drained}")
    for h in hs.values():
        for si in ("s1", "s2"):
            wait_for(lambda: confirmed(h, si, "ACTIVE") == [u for u in kept_units if u[1] == si[1]] and
                     confirmed(h, si, "STANDBY") == [], timeout=20, what=f"{si} ACTIVE on {other} alone")
    # Every new ACTIVE was told QUIESCED (a switchover, not a failover), after
    # the old one had been told QUIESCING.
    for si, new in moved.items():
        assert len(sets(log, new, "ACTIVE")) == n_sets[new] + 1
        assert sets(log, new, "ACTIVE")[-1][4] == "transition=2", si
        last_quiescing = [i for i, e in enumerate(events(log)) if e[:2] == [roles[si][0], "CSI_SET"] and
                          e[3] == "QUIESCING"][-1]
        assert last_quiescing < [i for i, e in enumerate(events(log)) if e[:2] == [new, "CSI_SET"] and
                                 e[3] == "ACTIVE"][-1]
    # The drained node's processes stopped (terminated, not killed), the
    # other's kept running: no process killed, no failure.
    for c, pid in old_pids.items():
        assert gone(pid), c
        assert len(events(log, c, "TERMINATE")) == n_terms[c] + 1, c
    assert {c: hs[other].pid_of(c) for c in kept_units} == kept_pids
    for h in hs.values():
        assert not failures(h)
    for su in gone_units:
        assert hs[drained].su(su)["admin"] == "LOCKED-INSTANTIATION"
        wait_for(lambda: hs[other].su(su)["admin"] == "LOCKED-INSTANTIATION", what=f"{other} sees {su} stopped")
    # Back: processes first, then into service, as STANDBYs.
    hs[other].ctl("admin", "unlock-instantiation", f"node:{drained}")
    hs[drained].ctl("admin", "unlock", f"node:{drained}")
    for h in hs.values():
        for si in ("s1", "s2"):
            wait_roles(h, si, "STANDBY", [u for u in gone_units if u[1] == si[1]], timeout=20)
    assert {c: hs[other].pid_of(c) for c in kept_units} == kept_pids


def test_node_switchover_on_two_nodes_without_a_failover(etcd, halod_factory, tmp_path):
    log = str(tmp_path / "comp.log")
    hs, _ = start_nodes(halod_factory, two_groups_yaml(log), etcd.endpoints)
    node = {"a1": "n1", "b2": "n1", "b1": "n2", "a2": "n2"}
    roles = {si: wait_for(lambda: settled(hs["n1"], si), timeout=30, what=f"{si} settled") for si in ("s1", "s2")}
    for si in ("s1", "s2"):
        wait_for(lambda: settled(hs["n2"], si) == roles[si], timeout=30, what=f"n2 sees {si} as n1 does")
    # First the node that is not the coordinator: the coordinator moves its
    # roles as that node's units shut down, through the store.  Both ACTIVEs
    # there first (whoever registered first took them).
    coord = hs["n1"].status()["coordinator"]
    drained, other = ("n2", "n1") if coord == "n1" else ("n1", "n2")
    actives_onto(hs, roles, node, drained, asked_of=other)
    # Asked of the other node, run by the drained node's own halod.
    drain(hs, log, node, drained, asked_of=other)
    # Then the coordinator's own node, which now holds every ACTIVE.
    drain(hs, log, node, other, asked_of=other)
    for h in hs.values():
        assert h.stop() == 0


def test_lock_of_an_active_on_another_node_hands_over_without_a_failover(etcd, halod_factory, tmp_path):
    log = str(tmp_path / "comp.log")
    hs, _ = start_nodes(halod_factory, two_groups_yaml(log), etcd.endpoints)
    node = {"a1": "n1", "b2": "n1", "b1": "n2", "a2": "n2"}
    act, sb = wait_for(lambda: settled(hs["n1"], "s1"), timeout=30, what="s1 settled")
    coord = hs["n1"].status()["coordinator"]
    if node[act] == coord:  # the ACTIVE on the node that is not the coordinator
        hs[coord].ctl("admin", "si-swap", "si:s1")
        act, sb = sb, act
    for h in hs.values():
        wait_for(lambda: settled(h, "s1") == (act, sb), timeout=20, what="s1 ACTIVE off the coordinator")
    pids = {u: hs[node[u]].pid_of(u) for u in (act, sb)}
    hs[coord].ctl("admin", "lock", f"su:{act}")  # forwarded to the unit's node
    for h in hs.values():
        wait_for(lambda: confirmed(h, "s1", "ACTIVE") == [sb] and confirmed(h, "s1", "STANDBY") == [],
                 timeout=20, what="s1 handed over")
    assert sets(log, act, "QUIESCED") and not sets(log, act, "QUIESCING")
    assert sets(log, sb, "ACTIVE")[-1][4] == "transition=2"
    assert {u: hs[node[u]].pid_of(u) for u in (act, sb)} == pids
    for h in hs.values():
        assert not failures(h)
    assert hs[coord].su(act)["admin"] == "LOCKED"
    hs[coord].ctl("admin", "unlock", f"su:{act}")
    for h in hs.values():
        wait_roles(h, "s1", "STANDBY", [act], timeout=20)
    for h in hs.values():
        assert h.stop() == 0


def test_an_sg_whose_units_run_on_two_nodes_is_operated_at_once(etcd, halod_factory, tmp_path):
    """shutdown, lock-instantiation, unlock-instantiation, unlock of sg:g1 (a1 on n1, b1 on n2),
    asked of one node: its halod runs its own unit's part and sends the other node its part
    through the store, and answers once both are done."""
    log = str(tmp_path / "comp.log")
    hs, _ = start_nodes(halod_factory, two_groups_yaml(log), etcd.endpoints)
    node = {"a1": "n1", "b2": "n1", "b1": "n2", "a2": "n2"}
    act, sb = wait_for(lambda: settled(hs["n1"], "s1"), timeout=30, what="s1 settled")
    wait_for(lambda: settled(hs["n2"], "s1") == (act, sb), timeout=30, what="n2 sees s1 as n1 does")
    pids = {u: hs[node[u]].pid_of(u) for u in node}
    asked = hs["n2"]
    asked.ctl("admin", "shutdown", "sg:g1")  # answered once both units hold nothing
    for h in hs.values():
        assert confirmed(h, "s1", "ACTIVE") == [] or wait_for(
            lambda: confirmed(h, "s1", "ACTIVE") == [] and confirmed(h, "s1", "STANDBY") == [], timeout=20,
            what="s1 unassigned")
        for su in ("a1", "b1"):
            wait_for(lambda: h.su(su)["admin"] == "LOCKED", what=f"{su} LOCKED")
    assert sets(log, act, "QUIESCING")  # shut down gracefully
    assert {u: hs[node[u]].pid_of(u) for u in node} == pids
    for h in hs.values():  # the group's own state, which every node follows
        wait_for(lambda: [g["admin"] for g in h.status()["service_groups"] if g["name"] == "g1"] == ["LOCKED"],
                 what="g1 LOCKED")
    asked.ctl("admin", "lock-instantiation", "sg:g1")
    assert gone(pids["a1"]) and gone(pids["b1"])  # answered once both processes are gone
    r = asked.ctl("admin", "unlock", "sg:g1", check=False)
    assert r.returncode != 0 and "unlock-instantiation sg:g1" in r.stderr
    asked.ctl("admin", "unlock-instantiation", "sg:g1")
    for su in ("a1", "b1"):
        wait_for(lambda: hs[node[su]].pid_of(su) not in (None, pids[su]), what=f"{su} started again")
    hs["n1"].ctl("admin", "unlock", "sg:g1")
    for h in hs.values():
        wait_for(lambda: settled(h, "s1") is not None, timeout=20, what="s1 assigned again")
        wait_for(lambda: [g["admin"] for g in h.status()["service_groups"] if g["name"] == "g1"] == ["UNLOCKED"],
                 what="g1 UNLOCKED")
    assert {u: hs[node[u]].pid_of(u) for u in ("a2", "b2")} == {u: pids[u] for u in ("a2", "b2")}
    for h in hs.values():
        assert not failures(h)
        assert h.stop() == 0


def test_repaired_of_a_node_repairs_its_disabled_units(halod_factory, tmp_path):
    log = str(tmp_path / "comp.log")
    h = halod_factory(group_yaml(log, "2N", ["a", "b"], {"s": ""}).replace("restart: {max: 10,", "restart: {max: 0,"))
    h.start()
    wait_roles(h, "s", "ACTIVE", ["a"])
    r = h.ctl("admin", "repaired", "node:local", check=False)
    assert r.returncode == 5 and "none of its units is" in r.stderr, r.stderr  # nothing to repair
    pid = h.pid_of("a")
    os.kill(pid, signal.SIGKILL)  # max 0: the unit is disabled at its first failover
    wait_for(lambda: h.su("a")["oper"] == "DISABLED", what="a DISABLED")
    wait_roles(h, "s", "ACTIVE", ["b"])
    h.ctl("admin", "repaired", "node:local")
    wait_for(lambda: h.su("a")["oper"] == "ENABLED" and h.comp("a")["pid"] not in (None, pid), what="a repaired")
    wait_roles(h, "s", "STANDBY", ["a"])
    assert "Node 'local' repaired by the operator: 1 disabled unit(s) repaired" in h.logtext()
    assert h.stop() == 0
