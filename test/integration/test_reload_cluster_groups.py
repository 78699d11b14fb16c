# SPDX-License-Identifier: MIT
"""Reloading on several nodes, a group removed while the coordinator dies: the new coordinator assigns
the group again when it still has it, and deletes what the dead one left of it in the store when no
live node has it; haloctl status names each group the coordinator does not assign because it does
not have it.  (docs/configuration.md, Reload on several nodes; docs/store.md, Several nodes)"""
import os
import signal

from halo_harness import pid_alive, start_nodes, testcomp_events as events, wait_for
from test_reload import rewrite
from test_reload_cluster import MINE, groups, h_keys, reload, roles, texts, two_nodes

THREE = {"n1": "p", "n2": "q", "n3": "r"}  # each node's unit of h, on three nodes


def texts3(log):
    """texts() on three nodes: h has a unit on each."""
    without, with_h = (t.replace("nodes: {n1: {}, n2: {}}", "nodes: {n1: {}, n2: {}, n3: {}}") for t in texts(log))
    return without, with_h.replace("{p: {node: n1}, q: {node: n2}}", "{p: {node: n1}, q: {node: n2}, r: {node: n3}}")


def kill9(h):
    h.proc.send_signal(signal.SIGKILL)
    h.proc.wait()


def active(log, comp):
    """Whether comp's last CSI set or remove (its unit's SI is u) made it ACTIVE, as it logged it."""
    ev = [e for e in events(log, comp) if e[1] in ("CSI_SET", "CSI_REMOVE")]
    return bool(ev) and ev[-1][1] == "CSI_SET" and ev[-1][3] == "ACTIVE"


def leftovers(etcd):
    """h's keys, and a lock of its SI u (adminstate/si:u, but for an unlocked one)."""
    return h_keys(etcd) + [k for k, v in etcd.get_prefix("/halo/").items()
                           if k.endswith("/adminstate/si:u") and '"UNLOCKED"' not in v]


def test_a_group_removed_by_a_coordinator_that_dies_is_assigned_again(etcd, halod_factory, tmp_path):
    """h on three nodes; the coordinator reloads without it and is killed (SIGKILL) at once.  The new
    coordinator still has h: it assigns u again, to its own unit and the third node's, never beside
    a second ACTIVE (the dead node's unit is gone with it).  Then the others reload: h is gone, and
    so are its keys."""
    log = str(tmp_path / "comp.log")
    without, with_h = texts3(log)
    hs, _ = start_nodes(halod_factory, with_h, etcd.endpoints, nodes=("n1", "n2", "n3"))
    for h in hs.values():
        h.wait_assigned("u", timeout=30)
    coord = hs["n1"].status()["coordinator"]
    wait_for(lambda: all(h.status()["coordinator"] == coord for h in hs.values()), what="one coordinator")
    rest = [n for n in hs if n != coord]
    dead_pid = hs[coord].pid_of(THREE[coord])

    rewrite(hs[coord], without)
    reload(hs[coord], "1 service group removed")
    kill9(hs[coord])
    new = wait_for(lambda: (lambda c: c if c in rest else None)(hs[rest[0]].status()["coordinator"]), timeout=30,
                   what="a new coordinator")
    survivors = {THREE[n] for n in rest}
    for n in rest:
        wait_for(lambda: set(hs[n].wait_assigned("u", timeout=30)) == survivors, timeout=40,
                 what=f"u assigned again to the survivors' units, as {n} sees it")
    assert not pid_alive(dead_pid)  # the dead node's unit, whatever it held, runs no more
    act = hs[new].si("u")["active"]
    assert act in survivors and wait_for(lambda: [c for c in survivors if active(log, c)] == [act],
                                         what="one ACTIVE, as the components see it")

    # The others reload too: h gone everywhere, its keys and its SI's lock with it.
    hs[coord].start()
    for n in [new] + [n for n in rest if n != new]:
        rewrite(hs[n], without)
        reload(hs[n], "1 service group removed")
        wait_for(lambda: "h" not in groups(hs[n]), timeout=30, what=f"h gone from {n}")
    wait_for(lambda: not leftovers(etcd), timeout=30, what="no key of h left")
    for h in hs.values():
        assert h.stop() == 0


def test_a_dead_coordinators_leftovers_of_a_group_removed_are_deleted(etcd, halod_factory, tmp_path):
    """The other node removes h first, then the coordinator, whose halod dies in the middle of the
    removal (its unit, stopped with SIGSTOP, never answers the quiesce): the lock of u and the pair
    u/p stay in the store.  The other node, the new coordinator, has no h and is the only live
    node: it deletes them.  Added back on both, h starts as a new group (u unlocked, assigned)."""
    hs, coord, other, without, with_h, log = two_nodes(etcd, halod_factory, tmp_path, h=True)
    for h in hs.values():
        h.wait_assigned("u", timeout=30)
    rewrite(hs[other], without)
    reload(hs[other], "1 service group removed")
    wait_for(lambda: "h" not in groups(hs[other]), timeout=30, what="h gone from the other node")
    wait_for(lambda: roles(hs[coord], "u") == (MINE[coord], None), timeout=30, what="u ACTIVE on the coordinator")

    p_pid = hs[coord].pid_of(MINE[coord])
    os.kill(p_pid, signal.SIGSTOP)
    try:
        rewrite(hs[coord], without)
        reload(hs[coord], "1 service group removed")
        wait_for(lambda: any(k.endswith("/adminstate/si:u") for k in leftovers(etcd)), what="u locked")
        kill9(hs[coord])
    finally:
        os.kill(p_pid, signal.SIGKILL)  # its halod is dead: nothing else ends it while it is stopped
    left = leftovers(etcd)
    assert any(k.endswith(f"/target/u/{MINE[coord]}") for k in left), left

    wait_for(lambda: hs[other].status()["coordinator"] == other, timeout=30, what="the other node takes over")
    wait_for(lambda: not leftovers(etcd), timeout=30, what="the dead coordinator's keys of h deleted")
    assert "Deleting what the store keeps of service instances and units no live node has" in hs[other].logtext()

    hs[coord].start()
    for n in (coord, other):
        rewrite(hs[n], with_h)
        reload(hs[n], "1 service group added")
    act, sb = hs[other].wait_assigned("u", timeout=30)
    assert {act, sb} == {"p", "q"} and hs[coord].wait_assigned("u", timeout=30) == (act, sb)
    for h in hs.values():
        assert h.stop() == 0


def test_leftovers_stay_while_a_live_node_has_the_group(etcd, halod_factory, tmp_path):
    """What a dead coordinator left of h (written here as it would be: u's lock, a pair of the other
    node's unit) is not deleted while the other node has h, though the coordinator has not and
    reloads meanwhile; it is once the other node reloads without h."""
    hs, coord, other, without, with_h, log = two_nodes(etcd, halod_factory, tmp_path)
    rewrite(hs[other], with_h)
    reload(hs[other], "1 service group added")
    prefix = next(k for k in etcd.get_prefix("/halo/") if k.endswith(f"/nodes/{other}"))[:-len(f"nodes/{other}")]
    etcd.put(prefix + "adminstate/si:u", '{"admin":"LOCKED","target":"si:u"}')
    etcd.put(prefix + f"target/u/{MINE[other]}",
             f'{{"gen":1,"lease":1,"node":"{other}","seen":0,"si":"u","state":"REMOVED","su":"{MINE[other]}"}}')

    changed = without.replace("port: 7700", "port: 7701")
    rewrite(hs[coord], changed)  # its digest changes: it looks again, and the other node still has h
    reload(hs[coord], "attributes of 1 CSI changed")
    digest = hs[coord].status()["description"]["digest"]
    wait_for(lambda: {n["name"]: n.get("description") for n in hs[other].status()["nodes"]}[coord] == digest,
             what="the coordinator's new digest published")
    assert {prefix + "adminstate/si:u", prefix + f"target/u/{MINE[other]}"} <= set(leftovers(etcd))
    assert "no live node has" not in hs[coord].logtext()

    rewrite(hs[other], changed)
    reload(hs[other], "1 service group removed, attributes of 1 CSI changed")
    wait_for(lambda: not leftovers(etcd), timeout=30, what="h's keys deleted once no live node has h")
    for h in hs.values():
        assert h.stop() == 0
