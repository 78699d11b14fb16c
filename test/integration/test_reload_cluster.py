# SPDX-License-Identifier: MIT
"""Reloading on several nodes (halod --etcd): a service group added or removed, a CSI added to or
removed from an SI, a component added or removed or its settings changed (also through the defaults),
each node reloaded on its own, one after the other; and the coordinator killed
between two reloads.  (issue 16, point 3; docs/configuration.md, Reload)"""
import os
import re
import signal

from halo_harness import start_nodes, testcomp_events as events, wait_for
from test_reload import NEW_GROUP, rewrite, with_csi, with_si, yaml

UNITS = {"a": "n1", "b": "n2", "x": "n1", "y": "n2", "p": "n1", "q": "n2"}
MINE = {"n1": "p", "n2": "q"}  # each node's unit of h
UNITS_OF = {"n1": "a", "n2": "b"}  # each node's unit of g


def texts(log):
    """The description without the group h, and with it: each unit on its node."""
    base = "nodes: {n1: {}, n2: {}}\n" + yaml(log) \
        .replace("service-units: {a: {}, b: {}}", "service-units: {a: {node: n1}, b: {node: n2}}") \
        .replace("service-units: {x: {}, y: {}}", "service-units: {x: {node: n1}, y: {node: n2}}")
    return base, base + NEW_GROUP.replace("@LOG@", log).replace("{p: {}, q: {}}", "{p: {node: n1}, q: {node: n2}}")


def two_nodes(etcd, halod_factory, tmp_path, h=False, edit=lambda t: t):
    """Both halods, with h or not, every SI assigned: ({node: halod}, coordinator node, other node,
    the description without h, with h, the components' log); edit() changes both texts first."""
    log = str(tmp_path / "comp.log")
    without, with_h = (edit(t) for t in texts(log))
    # A 2 s lease: these tests are about reloads, and the sanitizer build under CI's load once
    # stalled a halod 1.75 s, which fences a node with a 1 s lease (every test of the file failed).
    hs, _ = start_nodes(halod_factory, with_h if h else without, etcd.endpoints, ttl=2)
    for h in hs.values():
        h.wait_assigned("s", timeout=30)
        h.wait_assigned("t", timeout=30)
    coord = hs["n1"].status()["coordinator"]
    wait_for(lambda: hs["n2"].status()["coordinator"] == coord, what="both nodes agree on the coordinator")
    return hs, coord, "n2" if coord == "n1" else "n1", without, with_h, log


def own_pids(hs, comps):
    """The pid of each component, as its own node says."""
    return {c: hs[UNITS[c]].pid_of(c) for c in comps}


def groups(h):
    return [sg["name"] for sg in h.status()["service_groups"]]


def roles(h, si):
    s = h.si(si)
    return s["active"], s["standby"]


def reload(h, want):
    r = h.ctl("reload")
    assert f"applied: {want}" in r.stdout, r.stdout


def unassigned(coord, has, group="h"):
    """haloctl status's warning for a group that nodes have and the coordinator lacks."""
    return (f"group '{group}' is not assigned: the coordinator ({coord}) does not have it "
            f"(reload {coord} to add it, or {has} to remove it)")


def h_keys(etcd):
    """The store's keys of the group h (its SI u, its units p and q)."""
    return sorted(k for k in etcd.get_prefix("/halo/") if k.endswith(("/u/p", "/u/q", "/sustate/p", "/sustate/q")))


def test_a_group_added_then_removed_node_by_node(etcd, halod_factory, tmp_path):
    hs, coord, other, without, with_h, log = two_nodes(etcd, halod_factory, tmp_path)
    before = own_pids(hs, "abxy")
    s_roles = roles(hs["n1"], "s")

    # The other node first: its unit of h starts and publishes its state; the coordinator does not
    # know the group yet, so nothing is assigned for it anywhere, and status warns.
    rewrite(hs[other], with_h)
    reload(hs[other], "1 service group added")
    wait_for(lambda: hs[other].comp(MINE[other])["presence"] == "INSTANTIATED", what="its unit of h running")
    assert "h" not in groups(hs[coord])
    for h in hs.values():
        wait_for(lambda: h.status().get("warnings"), what="the digest warning")
        assert "description differs" in h.status()["warnings"][0]
    # Why u is not assigned: on the node that has it, and on the coordinator, which lacks it.
    for h in hs.values():
        wait_for(lambda: h.status()["warnings"][1:] == [unassigned(coord, other)], what="the group named")
        assert f"WARNING: {unassigned(coord, other)}" in h.ctl("status").stdout
    assert roles(hs[other], "u") == (None, None)

    # Then the coordinator: it reads what the other node published, and assigns h; both nodes agree.
    rewrite(hs[coord], with_h)
    reload(hs[coord], "1 service group added")
    act, sb = hs[coord].wait_assigned("u", timeout=30)
    assert {act, sb} == {"p", "q"}
    assert wait_for(lambda: hs[other].wait_assigned("u") == (act, sb), what="the other node agrees")
    for h in hs.values():
        wait_for(lambda: not h.status().get("warnings"), what="the warning gone once both reloaded")
    assert own_pids(hs, "abxy") == before and roles(hs["n1"], "s") == s_roles  # nobody else restarted or moved
    assert "blue" in " ".join(events(log, act, "CSI_SET")[-1])

    # Removed, the other node first: its unit locks and stops; the coordinator, which still has h,
    # gives u to its own unit alone.
    p_pid = hs[coord].pid_of(MINE[coord])
    rewrite(hs[other], without)
    reload(hs[other], "1 service group removed")
    wait_for(lambda: "h" not in groups(hs[other]), timeout=30, what="h gone from the other node")
    wait_for(lambda: roles(hs[coord], "u") == (MINE[coord], None), timeout=30, what="u ACTIVE on the coordinator")
    assert hs[coord].pid_of(MINE[coord]) == p_pid
    assert [e[1] for e in events(log, MINE[other])][-1] == "TERMINATE"

    # Then the coordinator: h is gone everywhere, and so are its keys.
    rewrite(hs[coord], without)
    reload(hs[coord], "1 service group removed")
    wait_for(lambda: "h" not in groups(hs[coord]), timeout=30, what="h gone from the coordinator")
    wait_for(lambda: not h_keys(etcd), what="h's keys deleted from the store")
    for h in hs.values():
        wait_for(lambda: not h.status().get("warnings"), what="no warning")
    assert own_pids(hs, "abxy") == before and roles(hs["n1"], "s") == s_roles
    for h in hs.values():
        assert h.stop() == 0


def test_a_group_removed_by_the_coordinator_first(etcd, halod_factory, tmp_path):
    """The coordinator reloads first: u is taken from both nodes' units (no failover to the node that
    has not reloaded), the coordinator's unit stops, the other node's keeps running, holding
    nothing, until its node reloads.  Added back, the group starts as a new one."""
    hs, coord, other, without, with_h, log = two_nodes(etcd, halod_factory, tmp_path, h=True)
    for h in hs.values():
        h.wait_assigned("u", timeout=30)
    kept = hs[other].pid_of(MINE[other])

    rewrite(hs[coord], without)
    reload(hs[coord], "1 service group removed")
    wait_for(lambda: "h" not in groups(hs[coord]), timeout=30, what="h gone from the coordinator")
    wait_for(lambda: roles(hs[other], "u") == (None, None), timeout=30, what="u held nowhere")
    wait_for(lambda: not h_keys(etcd) or h_keys(etcd) == [k for k in h_keys(etcd) if k.endswith("/sustate/" +
                                                                                              MINE[other])],
             what="h's keys deleted (but for a state the other node writes again)")
    assert hs[other].pid_of(MINE[other]) == kept  # still running, holding nothing
    assert hs[other].status()["warnings"][1:] == [unassigned(coord, other)]
    assert [e[1:3] for e in events(log, MINE[other]) if e[1] in ("CSI_SET", "CSI_REMOVE")][-1][0] == "CSI_REMOVE"

    rewrite(hs[other], without)
    reload(hs[other], "1 service group removed")
    wait_for(lambda: "h" not in groups(hs[other]), timeout=30, what="h gone from the other node")
    wait_for(lambda: not h_keys(etcd), what="no key of h left")

    # Back on both: a new group, assigned again.
    for n in (coord, other):
        rewrite(hs[n], with_h)
        reload(hs[n], "1 service group added")
    act, sb = hs[coord].wait_assigned("u", timeout=30)
    assert {act, sb} == {"p", "q"} and hs[other].wait_assigned("u", timeout=30) == (act, sb)
    for h in hs.values():
        assert h.stop() == 0


def test_a_csi_added_and_removed_node_by_node(etcd, halod_factory, tmp_path):
    """Each node sends the CSI set or remove to its own holder of the SI when it reloads; the roles
    stay where they are."""
    hs, coord, other, without, _, log = two_nodes(etcd, halod_factory, tmp_path)
    before = own_pids(hs, "abxy")
    act, sb = roles(hs["n1"], "s")
    holder = {UNITS[act]: act, UNITS[sb]: sb}
    added = with_csi(without, "          c2: {}\n")

    def c2(comp, kind):
        return [e for e in events(log, comp, kind) if e[2] == "c2"]

    for n in ("n1", "n2"):
        rewrite(hs[n], added)
        reload(hs[n], "1 CSI added or removed, 1 CSI set or remove sent")
        wait_for(lambda: c2(holder[n], "CSI_SET"), what=f"the CSI set of c2 to {holder[n]}")
        assert c2(holder[n], "CSI_SET")[-1][3] == ("ACTIVE" if holder[n] == act else "STANDBY")
        if n == "n1":  # the other node's holder is told only once its node reloads
            assert not c2(holder["n2"], "CSI_SET")
    for n in ("n2", "n1"):
        rewrite(hs[n], without)
        reload(hs[n], "1 CSI added or removed, 1 CSI set or remove sent")
        wait_for(lambda: c2(holder[n], "CSI_REMOVE"), what=f"the CSI remove of c2 to {holder[n]}")
    assert roles(hs["n1"], "s") == (act, sb) and roles(hs["n2"], "s") == (act, sb)
    assert own_pids(hs, "abxy") == before
    for h in hs.values():
        assert h.stop() == 0


def test_the_coordinator_killed_between_the_reloads(etcd, halod_factory, tmp_path):
    """h added on the other node only, then the coordinator's halod is killed (SIGKILL): the other
    node takes over, knows h and gives u to its own unit, the only one in service.  The killed node
    comes back with h in its description: its unit is STANDBY, never a second ACTIVE."""
    hs, coord, other, without, with_h, log = two_nodes(etcd, halod_factory, tmp_path)

    rewrite(hs[other], with_h)
    reload(hs[other], "1 service group added")
    wait_for(lambda: hs[other].comp(MINE[other])["presence"] == "INSTANTIATED", what="its unit of h running")
    assert roles(hs[other], "u") == (None, None)

    rewrite(hs[coord], with_h)  # read when it starts again
    hs[coord].proc.send_signal(signal.SIGKILL)
    hs[coord].proc.wait()
    wait_for(lambda: hs[other].status()["coordinator"] == other, timeout=30, what="the other node takes over")
    wait_for(lambda: roles(hs[other], "u") == (MINE[other], None), timeout=30, what="u ACTIVE on the survivor")
    wait_for(lambda: hs[other].si("s")["active"] in ("a", "b") and UNITS[hs[other].si("s")["active"]] == other,
             timeout=30, what="s ACTIVE on the survivor")

    hs[coord].start()
    assert wait_for(lambda: hs[other].wait_assigned("u", timeout=30) == (MINE[other], MINE[coord]),
                    timeout=40, what="the restarted node's unit STANDBY")
    wait_for(lambda: hs[coord].si("u")["active"] == MINE[other], timeout=30, what="the restarted node agrees")
    for h in hs.values():
        wait_for(lambda: not h.status().get("warnings"), what="no warning: both have h")
    for h in hs.values():
        assert h.stop() == 0


def test_the_coordinator_killed_after_reloading_alone(etcd, halod_factory, tmp_path):
    """h added on the coordinator only (its unit ACTIVE, the other node's not in service), then the
    coordinator's halod is killed: the other node takes over without h, so u is held nowhere.  Once
    it reloads, it reads what the dead coordinator left of u, takes none of it (that unit is gone
    with its node), and gives u to its own unit; the killed node, back, is STANDBY."""
    hs, coord, other, without, with_h, log = two_nodes(etcd, halod_factory, tmp_path)

    rewrite(hs[coord], with_h)
    reload(hs[coord], "1 service group added")
    wait_for(lambda: roles(hs[coord], "u") == (MINE[coord], None), timeout=30, what="u ACTIVE on the coordinator")
    hs[coord].proc.send_signal(signal.SIGKILL)
    hs[coord].proc.wait()
    wait_for(lambda: hs[other].status()["coordinator"] == other, timeout=30, what="the other node takes over")
    assert "h" not in groups(hs[other])

    rewrite(hs[other], with_h)
    reload(hs[other], "1 service group added")
    wait_for(lambda: roles(hs[other], "u") == (MINE[other], None), timeout=30, what="u ACTIVE on the survivor")
    hs[coord].start()
    assert hs[other].wait_assigned("u", timeout=40) == (MINE[other], MINE[coord])
    wait_for(lambda: roles(hs[coord], "u") == (MINE[other], MINE[coord]), timeout=30, what="the restarted node agrees")
    for h in hs.values():
        assert h.stop() == 0


def with_mode(mode):
    """An edit of the description: the components of the units of s take MODE=mode."""
    return lambda t: t.replace("{a: {node: n1}, b: {node: n2}}", f"{{a: {{node: n1, component: {{env: {{MODE: {mode}}}}}}}, "
                               f"b: {{node: n2, component: {{env: {{MODE: {mode}}}}}}}}}")


def environ(pid):
    with open(f"/proc/{pid}/environ", "rb") as f:
        return f.read().decode(errors="replace").split("\0")


def test_a_component_changed_restarts_in_place_on_its_node(etcd, halod_factory, tmp_path):
    """s ACTIVE on the unit of the node that is not the coordinator: its component's settings change,
    each node reloading on its own (the coordinator first, then last).  Each restarts its own
    components in place; the coordinator moves no role meanwhile (the STANDBY never becomes ACTIVE)
    and nobody else restarts."""
    hs, coord, other, one, _, log = two_nodes(etcd, halod_factory, tmp_path, edit=with_mode("one"))
    two = with_mode("two")(texts(log)[0])
    mine = "a" if other == "n1" else "b"  # the unit of s on the other node
    if roles(hs[coord], "s")[0] != mine:
        hs[coord].ctl("switchover", "s")
    wait_for(lambda: all(h.wait_assigned("s") == (mine, "b" if mine == "a" else "a") for h in hs.values()),
             what=f"s ACTIVE on {mine}, as both nodes see it")
    placement = roles(hs[coord], "s")
    theirs = placement[1]

    def active_sets(comp):
        return len([e for e in events(log, comp, "CSI_SET") if e[3] == "ACTIVE"])

    for text, mode, order in ((two, "two", (coord, other)), (one, "one", (other, coord))):
        before = own_pids(hs, "abxy")
        standby_actives = active_sets(theirs)
        for n in order:
            rewrite(hs[n], text)
            reload(hs[n], f"components' settings changed (1 restarted in place)")
            # Restarted on its own node alone: the other node's unit waits for its node's reload.
            wait_for(lambda: hs[n].pid_of(UNITS_OF[n]) not in (None, 0, before[UNITS_OF[n]]) and
                     hs[n].comp(UNITS_OF[n])["presence"] == "INSTANTIATED", what=f"{UNITS_OF[n]}'s new process")
            assert f"MODE={mode}" in environ(hs[n].pid_of(UNITS_OF[n]))
            for h in hs.values():
                assert h.wait_assigned("s", timeout=30) == placement  # the roles stayed where they were
        wait_for(lambda: [e[1:4] for e in events(log, mine, "CSI_SET")][-1] == ["CSI_SET", "c", "ACTIVE"],
                 what=f"{mine}'s new process given its ACTIVE again")
        assert active_sets(theirs) == standby_actives  # the STANDBY never took over
        assert own_pids(hs, "xy") == {c: before[c] for c in "xy"}
    for h in hs.values():
        assert h.stop() == 0


def with_units(text, *units):
    """text with units added to g, each on its node: (name, node) pairs."""
    added = "".join(f", {u}: {{node: {n}}}" for u, n in units)
    return text.replace("{a: {node: n1}, b: {node: n2}}", "{a: {node: n1}, b: {node: n2}" + added + "}")


def units_of(h, sg="g"):
    return [su["name"] for g in h.status()["service_groups"] if g["name"] == sg for su in g["service_units"]]


def test_a_unit_added_node_by_node(etcd, halod_factory, tmp_path):
    """Units added to g on the node that is not the coordinator, s's STANDBY locked (so the model wants
    a unit for it): c with that node reloading first, then the coordinator, which reads c's state from
    the store and makes it the STANDBY; then d with the coordinator reloading first, which uses d once
    its node reloads and publishes it.  Nobody else restarts or moves."""
    hs, coord, other, without, _, log = two_nodes(etcd, halod_factory, tmp_path)
    act, sb = roles(hs[coord], "s")
    before = own_pids(hs, "abxy")
    hs[UNITS[sb]].ctl("admin", "lock", f"su:{sb}")
    for h in hs.values():
        wait_for(lambda: roles(h, "s") == (act, None), timeout=30, what="s without its STANDBY")

    # c: its node first.  It starts and publishes its state; the coordinator does not know it yet.
    one = with_units(without, ("c", other))
    rewrite(hs[other], one)
    reload(hs[other], "1 service unit added")
    wait_for(lambda: hs[other].comp("c")["presence"] == "INSTANTIATED", what="c running")
    assert "c" not in units_of(hs[coord]) and roles(hs[coord], "s") == (act, None)
    rewrite(hs[coord], one)
    reload(hs[coord], "1 service unit added")
    for h in hs.values():
        assert h.wait_assigned("s", timeout=30) == (act, "c")
    assert [e[1:4] for e in events(log, "c", "CSI_SET")] == [["CSI_SET", "c", "STANDBY"]]

    # d: the coordinator first.  It knows d but not its state: not in service, given nothing.
    hs[other].ctl("admin", "lock", "su:c")
    for h in hs.values():
        wait_for(lambda: roles(h, "s") == (act, None), timeout=30, what="s without its STANDBY")
    two = with_units(without, ("c", other), ("d", other))
    rewrite(hs[coord], two)
    reload(hs[coord], "1 service unit added")
    assert hs[coord].su("d")["readiness"] != "IN-SERVICE" and roles(hs[coord], "s") == (act, None)
    assert "d" not in units_of(hs[other])
    rewrite(hs[other], two)
    reload(hs[other], "1 service unit added")
    for h in hs.values():
        assert h.wait_assigned("s", timeout=30) == (act, "d")
    assert own_pids(hs, "abxy") == before and roles(hs[coord], "t") == roles(hs[other], "t")
    for h in hs.values():
        wait_for(lambda: not h.status().get("warnings"), what="no warning: both have c and d")
        assert h.stop() == 0


SPARE_OF = {"n1": "c", "n2": "d"}  # each node's spare unit of g (four_units())


def settle(hs, si, want):
    """Waits until every node sees si's roles as want (ACTIVE, STANDBY), none pending."""
    for h in hs.values():
        wait_for(lambda: (lambda x: x["active"] == want[0] and x["standby"] == want[1] and
                          not any(a["pending"] for a in x["assignments"]))(h.si(si)), timeout=30,
                 what=f"{si} {want} on {h.config}")


def unit_keys(etcd, su):
    """The store's keys of unit su: its state, its targets and confirmations."""
    return sorted(k for k in etcd.get_prefix("/halo/")
                  if k.endswith("/" + su) and any(d in k for d in ("/sustate/", "/target/", "/confirmed/")))


def four_units(base, gone=()):
    """base with a spare unit of g on each node (c, d), but for those gone."""
    kept = ", ".join(f"{u}: {{node: {n}}}" for u, n in (("a", "n1"), ("b", "n2"), ("c", "n1"), ("d", "n2"))
                     if u not in gone)
    return base.replace("{a: {node: n1}, b: {node: n2}}", "{" + kept + "}")


def test_a_unit_of_the_coordinator_removed_by_the_other_node_first(etcd, halod_factory, tmp_path):
    """The coordinator's unit holds s ACTIVE (the spares locked).  The other node reloads first: it
    counts the unit as locked but decides nothing, so nothing moves and it still shows the unit's
    roles.  Then the coordinator locks and stops its unit: s's ACTIVE goes QUIESCED, then to the
    other node's unit, and the other node forgets the removed unit once it holds nothing there
    either."""
    hs, coord, other, _, _, log = two_nodes(etcd, halod_factory, tmp_path, edit=four_units)
    base = texts(log)[0]
    victim, theirs = UNITS_OF[coord], UNITS_OF[other]
    for n in hs:  # s on a and b alone
        hs[n].ctl("admin", "lock", f"su:{SPARE_OF[n]}")
    wait_for(lambda: set(hs[coord].wait_assigned("s", timeout=30)) == {victim, theirs}, timeout=30,
             what=f"s on {victim} and {theirs}")
    if roles(hs[coord], "s")[0] != victim:
        hs[coord].ctl("switchover", "s")
    settle(hs, "s", (victim, theirs))
    pid = hs[coord].pid_of(victim)

    rewrite(hs[other], four_units(base, victim))
    reload(hs[other], "1 service unit removed")
    assert roles(hs[other], "s") == (victim, theirs) and victim in units_of(hs[other])
    assert roles(hs[coord], "s") == (victim, theirs) and hs[coord].pid_of(victim) == pid
    rewrite(hs[coord], four_units(base, victim))
    reload(hs[coord], "1 service unit removed")
    settle(hs, "s", (theirs, None))
    for h in hs.values():
        wait_for(lambda: victim not in units_of(h), timeout=30, what=f"{victim} gone")
    after = [e[:4] for e in events(log) if e[1] == "CSI_SET" and e[0] in (victim, theirs)]
    assert after.index([victim, "CSI_SET", "c", "QUIESCED"]) < len(after) - 1
    assert after[-1] == [theirs, "CSI_SET", "c", "ACTIVE"], after
    assert [e[1] for e in events(log, victim)][-1] == "TERMINATE"
    wait_for(lambda: not unit_keys(etcd, victim), what=f"{victim}'s keys deleted")
    for h in hs.values():
        assert h.stop() == 0


def test_a_unit_removed_node_by_node(etcd, halod_factory, tmp_path):
    """g has a spare unit on each node (c, d).  The unit of the node that is not the coordinator holds
    s ACTIVE and is removed, that node reloading first: it is locked there (its ACTIVE goes to the
    coordinator's unit, the STANDBY to that node's spare) and stopped; the coordinator forgets it when
    it reloads, and its keys go.  Then that spare, made ACTIVE, is removed with the coordinator
    reloading first: the coordinator takes its roles as from a unit locked (QUIESCED, then removed,
    before its own unit is ACTIVE) and forgets it; its node stops it when it reloads."""
    text = four_units
    hs, coord, other, _, _, log = two_nodes(etcd, halod_factory, tmp_path, edit=text)
    base = texts(log)[0]
    victim, mine, spare = UNITS_OF[other], UNITS_OF[coord], SPARE_OF[other]
    hs[coord].ctl("admin", "lock", f"su:{SPARE_OF[coord]}")  # the STANDBY goes to the other node's spare
    wait_for(lambda: set(hs[coord].wait_assigned("s", timeout=30)) == {victim, mine}, timeout=30,
             what=f"s on {victim} and {mine}")
    if roles(hs[coord], "s")[0] != victim:
        hs[coord].ctl("switchover", "s")
    settle(hs, "s", (victim, mine))
    before, t_roles = own_pids(hs, "xy"), roles(hs[coord], "t")

    # Its node first: locked there, its roles move as a lock moves them, then stopped.
    rewrite(hs[other], text(base, victim))
    reload(hs[other], "1 service unit removed")
    settle(hs, "s", (mine, spare))
    wait_for(lambda: victim not in units_of(hs[other]), timeout=30, what=f"{victim} gone from its node")
    assert [e[1] for e in events(log, victim)][-1] == "TERMINATE"
    assert victim in units_of(hs[coord])
    rewrite(hs[coord], text(base, victim))
    reload(hs[coord], "1 service unit removed")
    wait_for(lambda: victim not in units_of(hs[coord]), what=f"{victim} gone from the coordinator")
    wait_for(lambda: not unit_keys(etcd, victim), what=f"{victim}'s keys deleted")
    assert roles(hs[coord], "s") == (mine, spare)

    # The coordinator first: the spare, made ACTIVE, is QUIESCED and then loses s before the
    # coordinator's unit is ACTIVE; it keeps running, holding nothing, until its node reloads.
    hs[coord].ctl("switchover", "s")
    settle(hs, "s", (spare, mine))
    pid, n = hs[other].pid_of(spare), len(events(log))
    rewrite(hs[coord], text(base, (victim, spare)))
    reload(hs[coord], "1 service unit removed")
    wait_for(lambda: spare not in units_of(hs[coord]), timeout=30, what=f"{spare} forgotten by the coordinator")
    for h in hs.values():
        wait_for(lambda: roles(h, "s") == (mine, None), timeout=30, what=f"s ACTIVE on {mine} alone")
    after = [e[:4] for e in events(log)[n:] if e[1] in ("CSI_SET", "CSI_REMOVE") and e[0] in (spare, mine)]
    assert after.index([spare, "CSI_SET", "c", "QUIESCED"]) < after.index([mine, "CSI_SET", "c", "ACTIVE"]), after
    assert [spare, "CSI_REMOVE", "c"] in [e[:3] for e in after], after
    assert hs[other].pid_of(spare) == pid and spare in units_of(hs[other])
    rewrite(hs[other], text(base, (victim, spare)))
    reload(hs[other], "1 service unit removed")
    wait_for(lambda: spare not in units_of(hs[other]), timeout=30, what=f"{spare} gone from its node")
    assert [e[1] for e in events(log, spare)][-1] == "TERMINATE"
    wait_for(lambda: not unit_keys(etcd, spare), what=f"{spare}'s keys deleted")
    assert own_pids(hs, "xy") == before and roles(hs[coord], "t") == t_roles
    for h in hs.values():
        wait_for(lambda: not h.status().get("warnings"), what="no warning")
        assert h.stop() == 0


def si_keys(etcd, si):
    """The store's keys of SI si: its targets and confirmations, its lock."""
    return sorted(k for k in etcd.get_prefix("/halo/") if f"/{si}/" in k or k.endswith(f"si:{si}"))


def test_an_si_added_and_removed_node_by_node(etcd, halod_factory, tmp_path):
    """s2 joins g, whose SIs are ACTIVE on the unit of the node that is not the coordinator.  Added by
    the coordinator first: it gives s2's ACTIVE to that unit, whose node, not knowing s2 yet, takes
    nothing until it reloads (no other unit is ACTIVE meanwhile).  Removed by that node first: it
    keeps serving s2 until the coordinator reloads and takes s2 from both units (QUIESCED, then
    removed), and its keys go.  Then the other way round: added by that node first (nothing
    assigned until the coordinator reloads), removed by the coordinator first (taken from both
    units, its node's copy left holding nothing until it reloads)."""
    hs, coord, other, without, _, log = two_nodes(etcd, halod_factory, tmp_path)
    theirs, mine = UNITS_OF[other], UNITS_OF[coord]
    if roles(hs[coord], "s")[0] != theirs:
        hs[coord].ctl("switchover", "s")
    settle(hs, "s", (theirs, mine))
    before, t_roles = own_pids(hs, "abxy"), roles(hs[coord], "t")
    added = with_si(without)

    def c2(comp=None):
        return [e[:4] for e in events(log, comp) if e[1] in ("CSI_SET", "CSI_REMOVE") and e[2] == "c2"]

    def sis(h):
        return [si["name"] for g in h.status()["service_groups"] if g["name"] == "g" for si in g["service_instances"]]

    for first in (coord, other):
        second = other if first == coord else coord
        n = len(c2())
        rewrite(hs[first], added)
        reload(hs[first], "1 service instance added")
        assert "s2" in sis(hs[first]) and "s2" not in sis(hs[second])
        if first == coord:  # its ACTIVE given to a unit whose node does not know s2 yet: held nowhere
            wait_for(lambda: hs[coord].si("s2")["assignments"], what="s2's ACTIVE decided")
        assert not c2(theirs)[n:] and not [e for e in c2()[n:] if e[3] == "ACTIVE"]
        rewrite(hs[second], added)
        reload(hs[second], "1 service instance added")
        settle(hs, "s2", (theirs, mine))
        assert [e for e in c2()[n:] if e[3] == "ACTIVE"] == [[theirs, "CSI_SET", "c2", "ACTIVE"]]

        n = len(c2())
        rewrite(hs[second], without)
        reload(hs[second], "1 service instance removed")
        assert "s2" not in sis(hs[second]) and "s2" in sis(hs[first])
        if second == other:  # still served: the coordinator has it
            assert roles(hs[coord], "s2") == (theirs, mine) and not c2()[n:]
        else:  # the coordinator takes it from both units, the other node carrying its targets out
            wait_for(lambda: len(c2()[n:]) == 3, timeout=30, what="s2 taken from both units")
            assert c2()[n:].index([theirs, "CSI_SET", "c2", "QUIESCED"]) < c2()[n:].index([theirs, "CSI_REMOVE", "c2"])
            assert [mine, "CSI_REMOVE", "c2"] in [e[:3] for e in c2()[n:]]
            # Its view follows the confirmations through the store, after the components' callbacks.
            wait_for(lambda: roles(hs[other], "s2") == (None, None), what="s2 held nowhere in the other node's view")
        rewrite(hs[first], without)
        reload(hs[first], "1 service instance removed")
        for h in hs.values():
            wait_for(lambda: "s2" not in sis(h), what="s2 gone")
        wait_for(lambda: len(c2()[n:]) == 3, timeout=30, what="s2 taken from both units")
        assert sorted(e[:3] for e in c2()[n:] if e[1] == "CSI_REMOVE") == sorted([[theirs, "CSI_REMOVE", "c2"],
                                                                                   [mine, "CSI_REMOVE", "c2"]])
        wait_for(lambda: not si_keys(etcd, "s2"), what="s2's keys deleted")
    assert own_pids(hs, "abxy") == before and roles(hs[coord], "t") == t_roles
    settle(hs, "s", (theirs, mine))
    for h in hs.values():
        wait_for(lambda: not h.status().get("warnings"), what="no warning")
        assert h.stop() == 0


def test_the_coordinator_killed_after_an_si_added_on_the_other_node(etcd, halod_factory, tmp_path):
    """s2 added on the node that is not the coordinator only (assigned nowhere), then the
    coordinator's halod is killed: the other node takes over, knows s2 and makes its own unit ACTIVE
    for it.  The killed node comes back with s2 in its description: its unit STANDBY, never a second
    ACTIVE."""
    hs, coord, other, without, _, log = two_nodes(etcd, halod_factory, tmp_path)
    theirs, mine = UNITS_OF[other], UNITS_OF[coord]
    added = with_si(without)
    rewrite(hs[other], added)
    reload(hs[other], "1 service instance added")
    assert roles(hs[other], "s2") == (None, None)

    rewrite(hs[coord], added)  # read when it starts again
    hs[coord].proc.send_signal(signal.SIGKILL)
    hs[coord].proc.wait()
    wait_for(lambda: hs[other].status()["coordinator"] == other, timeout=30, what="the other node takes over")
    wait_for(lambda: roles(hs[other], "s2") == (theirs, None), timeout=30, what="s2 ACTIVE on the survivor")
    hs[coord].start()
    settle(hs, "s2", (theirs, mine))
    assert [e[0] for e in events(log, None, "CSI_SET") if e[2] == "c2" and e[3] == "ACTIVE"] == [theirs]
    for h in hs.values():
        assert h.stop() == 0


def with_comps(extra=None):
    """An edit of the description: g's units list their components (a/a1, b/b1); extra = (unit, text)
    adds text to that unit's components."""
    def comps(u):
        return f"{u}1: {{csi-types: [main]}}" + (f", {extra[1]}" if extra and extra[0] == u else "")
    return lambda t: t.replace("{a: {node: n1}, b: {node: n2}}", f"{{a: {{node: n1, components: {{{comps('a')}}}}}, "
                               f"b: {{node: n2, components: {{{comps('b')}}}}}}}") \
        .replace("c: {attributes:", "c: {type: main, attributes:")


def s_active_on_the_other_node(hs, coord, other):
    """s moved to the unit of the node that is not the coordinator: (its ACTIVE, its STANDBY)."""
    mine = UNITS_OF[other]
    if roles(hs[coord], "s")[0] != mine:
        hs[coord].ctl("switchover", "s")
    placement = (mine, UNITS_OF[coord])
    wait_for(lambda: all(h.wait_assigned("s") == placement for h in hs.values()),
             what=f"s ACTIVE on {mine}, as both nodes see it")
    return placement


def test_a_component_added_and_removed_on_the_other_node(etcd, halod_factory, tmp_path):
    """An SA-aware component added to, then removed from, the unit that holds s ACTIVE on the node that
    is not the coordinator: added with that node reloading first, removed with the coordinator
    reloading first.  The process starts and stops on its node alone; the roles never move (the
    STANDBY is never made ACTIVE) and nobody else restarts."""
    hs, coord, other, base, _, log = two_nodes(etcd, halod_factory, tmp_path, edit=with_comps())
    mine, theirs = s_active_on_the_other_node(hs, coord, other)
    new = f"{mine}/{mine}2"
    added = with_comps((mine, f"{mine}2: {{csi-types: [side]}}"))(texts(log)[0])
    names = [f"{u}/{u}1" for u in "ab"]
    before = {c: hs[UNITS[c[0]]].pid_of(c) for c in names} | own_pids(hs, "xy")
    standby_actives = len([e for e in events(log, f"{theirs}/{theirs}1", "CSI_SET") if e[3] == "ACTIVE"])

    def unchanged():
        for h in hs.values():
            assert h.wait_assigned("s", timeout=30) == (mine, theirs)  # the roles stayed where they were
            assert h.wait_assigned("t", timeout=30)
        assert {c: hs[UNITS[c[0]]].pid_of(c) for c in names} | own_pids(hs, "xy") == before
        assert len([e for e in events(log, f"{theirs}/{theirs}1", "CSI_SET") if e[3] == "ACTIVE"]) == standby_actives

    # Added, its node first: it starts there and registers, its unit keeping s ACTIVE meanwhile; the
    # coordinator, which does not know it yet, moves nothing.
    rewrite(hs[other], added)
    reload(hs[other], "1 component added")
    wait_for(lambda: hs[other].pid_of(new) and hs[other].comp(new)["presence"] == "INSTANTIATED",
             what=f"{new} registered")
    pid = hs[other].pid_of(new)
    unchanged()
    assert events(log, new) and not events(log, new, "CSI_SET")  # it takes no CSI
    rewrite(hs[coord], added)
    reload(hs[coord], "1 component added")  # a component of the other node's unit: nothing starts here
    unchanged()
    assert hs[other].pid_of(new) == pid

    # Removed, the coordinator first: the process keeps running on its node until that node reloads.
    rewrite(hs[coord], base)
    reload(hs[coord], "1 component removed")
    unchanged()
    assert hs[other].pid_of(new) == pid and hs[other].comp(new)["presence"] == "INSTANTIATED"
    rewrite(hs[other], base)
    reload(hs[other], "1 component removed")
    wait_for(lambda: [c["name"] for c in hs[other].su(mine)["components"]] == [f"{mine}/{mine}1"],
             what=f"{new} removed")
    assert events(log, new)[-1][1] == "TERMINATE"
    wait_for(lambda: not os.path.exists(f"/proc/{pid}") or open(f"/proc/{pid}/stat").read().split()[2] == "Z",
             what=f"{new}'s process ended")
    unchanged()
    for h in hs.values():
        assert h.stop() == 0


def test_a_defaults_change_restarts_components_in_place_node_by_node(etcd, halod_factory, tmp_path):
    """The defaults' env changed, the coordinator reloading first, then the other node (whose unit
    holds s ACTIVE): each restarts its own components in place, the other node's keep their old
    settings until it reloads, and no role moves."""
    def defaults(mode):
        return lambda t: f"defaults: {{component: {{env: {{MODE: {mode}}}}}}}\n" + t
    hs, coord, other, _, _, log = two_nodes(etcd, halod_factory, tmp_path, edit=defaults("one"))
    mine, theirs = s_active_on_the_other_node(hs, coord, other)
    two = defaults("two")(texts(log)[0])
    placement = {si: roles(hs[coord], si) for si in "st"}
    standby_actives = len([e for e in events(log, theirs, "CSI_SET") if e[3] == "ACTIVE"])
    before = own_pids(hs, "abxy")
    ours = {n: [c for c in "abxy" if UNITS[c] == n] for n in hs}
    for n in (coord, other):
        rewrite(hs[n], two)
        reload(hs[n], "components' settings changed (2 restarted in place)")
        wait_for(lambda: all(hs[n].pid_of(c) not in (None, 0, before[c]) and
                             hs[n].comp(c)["presence"] == "INSTANTIATED" for c in ours[n]),
                 what=f"{ours[n]} restarted")
        assert all("MODE=two" in environ(hs[n].pid_of(c)) for c in ours[n])
        for h in hs.values():
            assert {si: h.wait_assigned(si, timeout=30) for si in "st"} == placement
        if n == coord:  # the other node's components wait for its own reload
            assert all(hs[other].pid_of(c) == before[c] and "MODE=one" in environ(before[c]) for c in ours[other])
    wait_for(lambda: [e[1:4] for e in events(log, mine, "CSI_SET")][-1] == ["CSI_SET", "c", "ACTIVE"],
             what=f"{mine}'s new process given its ACTIVE again")
    assert len([e for e in events(log, theirs, "CSI_SET") if e[3] == "ACTIVE"]) == standby_actives
    for h in hs.values():
        assert h.stop() == 0


def unchanged_check(hs, log, mine, theirs):
    """A check, from now on: s stays ACTIVE on mine and STANDBY on theirs as both nodes see it, g's
    first components keep their processes, and the STANDBY's is never set ACTIVE."""
    firsts = {u: hs[UNITS[u]].pid_of(f"{u}/{u}1") for u in "ab"}
    standby_actives = len([e for e in events(log, f"{theirs}/{theirs}1", "CSI_SET") if e[3] == "ACTIVE"])

    def unchanged():
        for h in hs.values():
            assert h.wait_assigned("s", timeout=30) == (mine, theirs)
        assert {u: hs[UNITS[u]].pid_of(f"{u}/{u}1") for u in "ab"} == firsts
        assert len([e for e in events(log, f"{theirs}/{theirs}1", "CSI_SET") if e[3] == "ACTIVE"]) == standby_actives
    return unchanged


def test_a_non_sa_aware_component_added_with_its_csi_runs_where_its_unit_is_active(etcd, halod_factory, tmp_path):
    """A non-SA-aware component added to both units of g with the CSI it takes, the node that holds s
    ACTIVE (not the coordinator) reloading first: it runs there alone, not on the STANDBY's node, and
    no role moves.  Removed with its CSI, the coordinator first: it stops once its own node reloads."""
    hs, coord, other, base, _, log = two_nodes(etcd, halod_factory, tmp_path, edit=with_comps())
    mine, theirs = s_active_on_the_other_node(hs, coord, other)
    nsa = "{type: non-sa-aware, command: /bin/sleep, args: ['1000'], csi-types: [side]}"
    added = base.replace("a1: {csi-types: [main]}", f"a1: {{csi-types: [main]}}, an: {nsa}") \
        .replace("b1: {csi-types: [main]}", f"b1: {{csi-types: [main]}}, bn: {nsa}") \
        .replace("c: {type: main,", "e: {type: side}\n          c: {type: main,")
    unchanged = unchanged_check(hs, log, mine, theirs)

    for n in (other, coord):
        rewrite(hs[n], added)
        reload(hs[n], "2 components added, 1 CSI added or removed")
        unchanged()
    wait_for(lambda: hs[other].pid_of(f"{mine}/{mine}n"), what="the ACTIVE's non-SA-aware component running")
    pid = hs[other].pid_of(f"{mine}/{mine}n")
    assert not hs[coord].pid_of(f"{theirs}/{theirs}n")  # the STANDBY's runs nothing

    for n in (coord, other):
        rewrite(hs[n], base)
        reload(hs[n], "2 components removed, 1 CSI added or removed")
        unchanged()
        if n == coord:
            assert hs[other].pid_of(f"{mine}/{mine}n") == pid  # until its own node reloads
    wait_for(lambda: not os.path.exists(f"/proc/{pid}") or open(f"/proc/{pid}/stat").read().split()[2] == "Z",
             what="the non-SA-aware process stopped")
    wait_for(lambda: [c["name"] for c in hs[other].su(mine)["components"]] == [f"{mine}/{mine}1"],
             what="it is gone from status")
    for h in hs.values():
        assert h.stop() == 0


def with_hc(period):
    """An edit of the description: g's components health-checked (key alive) every period."""
    return lambda t: t.replace("      env: {TESTCOMP_LOG:", f"      health-check: {{period: {period}, timeout: 5s, "
                               "keys: [alive]}\n      env: {TESTCOMP_LOG:", 1)


def test_a_health_check_change_restarts_in_place_node_by_node(etcd, halod_factory, tmp_path):
    """g's health-check period changed, each node reloading on its own: each restarts its own unit's
    component in place with the new period, the roles stay.  A unit moved to the other node is
    refused, saying how to move it."""
    hs, coord, other, slow, _, log = two_nodes(etcd, halod_factory, tmp_path, edit=with_hc("30s"))
    placement = roles(hs[coord], "s")
    moved = slow.replace("{a: {node: n1}, b: {node: n2}}", "{a: {node: n2}, b: {node: n2}}")
    rewrite(hs[coord], moved)
    r = hs[coord].ctl("reload", check=False)
    assert r.returncode == 5 and "'service-groups.g.service-units.a.node' changed: a unit does not move to another " \
        "node live: remove the unit in one reload and add it back on its new node in the next" in r.stderr, r.stderr
    fast = with_hc("200ms")(texts(log)[0])
    before = own_pids(hs, "abxy")
    for n in (coord, other):
        rewrite(hs[n], fast)
        reload(hs[n], "components' settings changed (1 restarted in place)")
        comp = UNITS_OF[n]
        wait_for(lambda: hs[n].pid_of(comp) not in (None, 0, before[comp]) and
                 hs[n].comp(comp)["presence"] == "INSTANTIATED", what=f"{comp}'s new process")
        for h in hs.values():
            assert h.wait_assigned("s", timeout=30) == placement  # the roles stayed where they were
        k = len(events(log, comp, "HC"))
        wait_for(lambda: len(events(log, comp, "HC")) >= k + 5, timeout=10, what=f"{comp}'s checks at the new period")
    assert own_pids(hs, "xy") == {c: before[c] for c in "xy"}
    for h in hs.values():
        assert h.stop() == 0


def test_a_groups_auto_adjust_applies_once_the_coordinator_reloaded(etcd, halod_factory, tmp_path):
    """auto-adjust turned on for g: the coordinator decides by its own description, so the ACTIVE a
    switchover moved goes back to the preferred unit once the coordinator has reloaded; no process
    restarts."""
    hs, coord, other, base, _, log = two_nodes(etcd, halod_factory, tmp_path)
    preferred, second = roles(hs[coord], "s")
    hs[coord].ctl("switchover", "s")
    for h in hs.values():
        wait_for(lambda: roles(h, "s") == (second, preferred), what="the switchover seen by both nodes")
    before = own_pids(hs, "abxy")
    adjusting = base.replace("    service-units: {a: {node: n1}", "    auto-adjust: true\n    auto-adjust-probation: 0s\n"
                             "    service-units: {a: {node: n1}")
    assert adjusting != base
    rewrite(hs[other], adjusting)
    reload(hs[other], "settings of 1 service group changed")
    assert roles(hs[coord], "s") == (second, preferred)
    rewrite(hs[coord], adjusting)
    reload(hs[coord], "settings of 1 service group changed")
    for h in hs.values():
        wait_for(lambda: roles(h, "s") == (preferred, second), timeout=30, what="the ACTIVE back on the preferred unit")
    assert own_pids(hs, "abxy") == before
def test_an_ocf_component_added_with_its_csi_starts_where_its_unit_is_active(etcd, halod_factory, tmp_path):
    """An OCF component added to both units of g with the CSI it takes, the node that holds s ACTIVE
    (not the coordinator) reloading first: its agent's meta-data and probe run while its unit stays in
    service, then its resource starts on that node alone; no role moves.  Removed with its CSI: its
    agent stops it."""
    if not os.access("/usr/lib/ocf/resource.d/heartbeat/Dummy", os.X_OK):
        import pytest
        pytest.skip("Debian's resource-agents package is not installed (tools/install-deps)")
    def own_command(t):
        """g's template moved into its components (an OCF component takes no command), ended by '@'."""
        t = with_comps()(t)
        m = re.search(r"  g:\n    component:\n      command: (.*)\n      env: (.*)\n", t)
        comp = f"csi-types: [main], command: {m[1]}, env: {m[2]}"
        return t.replace(m[0], "  g:\n").replace("a1: {csi-types: [main]}", f"a1: {{{comp}}}@") \
            .replace("b1: {csi-types: [main]}", f"b1: {{{comp}}}@")
    hs, coord, other, base, _, log = two_nodes(etcd, halod_factory, tmp_path, edit=lambda t: own_command(t)
                                               .replace("@", ""))
    mine, theirs = s_active_on_the_other_node(hs, coord, other)

    def ocf(u):
        return f"{{type: ocf, agent: ocf:heartbeat:Dummy, params: {{state: {tmp_path}/{u}.state}}, csi-types: [side]}}"
    marked = own_command(texts(log)[0])
    added = marked.replace("}@", f"}}, ar: {ocf('a')}", 1).replace("}@", f"}}, br: {ocf('b')}", 1) \
        .replace("c: {type: main,", "e: {type: side}\n          c: {type: main,")
    assert base == marked.replace("@", "") and "@" not in added
    unchanged = unchanged_check(hs, log, mine, theirs)

    seen = set()

    def started():
        seen.add((hs[coord].si("s")["active"], hs[other].su(mine)["readiness"]))
        return os.path.exists(tmp_path / f"{mine}.state")
    rewrite(hs[other], added)
    reload(hs[other], "2 components added, 1 CSI added or removed")
    rewrite(hs[coord], added)
    reload(hs[coord], "2 components added, 1 CSI added or removed")
    wait_for(started, what="the ACTIVE's resource started")
    assert seen == {(mine, "IN-SERVICE")}, seen  # s stayed ACTIVE there, its unit in service
    unchanged()
    assert not os.path.exists(tmp_path / f"{theirs}.state")  # nothing on the STANDBY's node

    for n in (coord, other):
        rewrite(hs[n], base)
        reload(hs[n], "2 components removed, 1 CSI added or removed")
    wait_for(lambda: not os.path.exists(tmp_path / f"{mine}.state"), what="its agent's stop")
    wait_for(lambda: [c["name"] for c in hs[other].su(mine)["components"]] == [f"{mine}/{mine}1"],
             what="it is gone from status")
    unchanged()
    for h in hs.values():
        assert h.stop() == 0
