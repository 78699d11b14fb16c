# SPDX-License-Identifier: MIT
"""Administrative states that outlive the halod that set them (an SI's, kept in the
store's adminstate/ keys), on one node and over a real etcd with two nodes."""
from halo_harness import pid_alive, start_nodes, testcomp_events as events, wait_for
from test_admin import settled, two_groups_yaml, two_units
from test_redundancy_models import confirmed, wait_roles


def unassigned(h, si):
    return confirmed(h, si, "ACTIVE") == [] and confirmed(h, si, "STANDBY") == []


def test_a_locked_si_stays_locked_after_halod_is_killed(halod_factory, tmp_path):
    h, log = two_units(halod_factory, tmp_path, modes="")
    h.ctl("admin", "lock", "si:s")
    wait_for(lambda: unassigned(h, "s"), what="s gave up its assignments")
    assert h.si("s")["admin"] == "LOCKED"
    h.remember_children()
    h.proc.kill()
    h.proc.wait()
    h.start()
    # Both units back in service: an unlocked SI would be assigned by now.
    for su in ("a", "b"):
        wait_for(lambda: h.su(su)["readiness"] == "IN-SERVICE", what=f"{su} in service")
    assert h.si("s")["assignments"] == [] and h.si("s")["admin"] == "LOCKED"
    assert "admin: LOCKED" in h.ctl("status").stdout
    h.ctl("admin", "unlock", "si:s")
    wait_roles(h, "s", "ACTIVE", ["a"])
    wait_roles(h, "s", "STANDBY", ["b"])
    assert h.si("s")["admin"] == "UNLOCKED"
    assert h.stop() == 0


def test_a_new_coordinator_keeps_a_locked_si_unassigned(etcd, halod_factory, tmp_path):
    log = str(tmp_path / "comp.log")
    hs, _ = start_nodes(halod_factory, two_groups_yaml(log), etcd.endpoints)
    node = {"a1": "n1", "b2": "n1", "b1": "n2", "a2": "n2"}
    for si in ("s1", "s2"):
        roles = wait_for(lambda: settled(hs["n1"], si), timeout=30, what=f"{si} settled")
        wait_for(lambda: settled(hs["n2"], si) == roles, timeout=30, what=f"n2 sees {si} as n1 does")
    coord = hs["n1"].status()["coordinator"]
    other = "n2" if coord == "n1" else "n1"
    hs[other].ctl("admin", "lock", "si:s1")  # forwarded to the coordinator
    for h in hs.values():
        wait_for(lambda: unassigned(h, "s1"), timeout=20, what="s1 gave up its assignments")
    wait_for(lambda: hs[other].si("s1")["admin"] == "LOCKED", what="the other node knows s1 is locked")
    survivor_s1 = [u for u in ("a1", "b1") if node[u] == other][0]
    survivor_s2 = [u for u in ("a2", "b2") if node[u] == other][0]
    n_sets = len([e for e in events(log, survivor_s1, "CSI_SET")])
    # The coordinator's halod dies (kill -9): the other node takes over.
    hs[coord].remember_children()
    hs[coord].proc.kill()
    hs[coord].proc.wait()
    h = hs[other]
    wait_for(lambda: h.status()["coordinator"] == other, timeout=30, what=f"{other} coordinator")
    # s2 fails over to the survivor: the new coordinator has decided on every group.
    wait_roles(h, "s2", "ACTIVE", [survivor_s2], timeout=30)
    assert unassigned(h, "s1") and h.si("s1")["admin"] == "LOCKED"
    assert len([e for e in events(log, survivor_s1, "CSI_SET")]) == n_sets
    h.ctl("admin", "unlock", "si:s1")
    wait_roles(h, "s1", "ACTIVE", [survivor_s1], timeout=20)
    assert h.si("s1")["admin"] == "UNLOCKED"
    assert h.stop() == 0


def sg_admin(h, name):
    return [sg for sg in h.status()["service_groups"] if sg["name"] == name][0]["admin"]


def test_sg_and_node_locks_are_states_of_their_own(halod_factory, tmp_path):
    """A lock of a group or a node is its own state: persisted, shown, and its unlock undoes
    exactly what it did (a unit locked by itself before stays locked; a unit the group's lock
    holds cannot be unlocked alone)."""
    h, log = two_units(halod_factory, tmp_path, modes="")
    h.ctl("admin", "lock", "su:b")
    h.ctl("admin", "lock", "sg:g")
    wait_for(lambda: unassigned(h, "s"), what="s gave up its assignments")
    assert sg_admin(h, "g") == "LOCKED" and h.su("a")["admin"] == "LOCKED"
    assert "Service group g (2N), admin LOCKED" in h.ctl("status").stdout
    r = h.ctl("admin", "unlock", "su:a", check=False)
    assert r.returncode != 0 and "su:a stays locked while the lock of its service group or node" in r.stderr
    r = h.ctl("admin", "lock", "sg:g", check=False)
    assert r.returncode != 0 and "sg:g is locked already" in r.stderr
    # Kept across a kill -9.
    h.remember_children()
    h.proc.kill()
    h.proc.wait()
    h.start()
    for su in ("a", "b"):
        wait_for(lambda: h.su(su)["components"][0]["registered"], what=f"{su} registered")
    assert sg_admin(h, "g") == "LOCKED" and h.si("s")["assignments"] == []
    # The group's unlock unlocks a (its lock took it), not b (locked by itself before).
    h.ctl("admin", "unlock", "sg:g")
    wait_roles(h, "s", "ACTIVE", ["a"])
    assert sg_admin(h, "g") == "UNLOCKED" and h.su("b")["admin"] == "LOCKED"
    assert confirmed(h, "s", "STANDBY") == []
    # The same for the node: its unlock gives back what its lock took.
    node = h.status()["node"]
    h.ctl("admin", "lock", f"node:{node}")
    wait_for(lambda: unassigned(h, "s"), what="s gave up its assignments")
    assert h.status()["node_admin"] == "LOCKED" and ", admin LOCKED" in h.ctl("status").stdout
    r = h.ctl("admin", "unlock", "su:a", check=False)
    assert r.returncode != 0 and "stays locked while the lock" in r.stderr
    h.ctl("admin", "unlock", f"node:{node}")
    wait_roles(h, "s", "ACTIVE", ["a"])
    assert h.status()["node_admin"] == "UNLOCKED" and h.su("b")["admin"] == "LOCKED"
    h.ctl("admin", "unlock", "su:b")
    wait_roles(h, "s", "STANDBY", ["b"])
    assert h.stop() == 0


def test_a_node_switchover_stops_a_unit_locked_by_itself_and_its_undo_starts_it_again_still_locked(
        halod_factory, tmp_path):
    """A unit the operator locked before a node switchover: the switchover stops its processes too; the node's
    unlock-instantiation starts them again (across a kill -9 of halod), and the unit stays LOCKED, as it was."""
    h, log = two_units(halod_factory, tmp_path, modes="")
    node = h.status()["node"]
    h.ctl("admin", "lock", "su:b")
    pid_b = h.pid_of("b")
    h.ctl("admin", "switchover", f"node:{node}")
    for su in ("a", "b"):
        wait_for(lambda: h.su(su)["admin"] == "LOCKED-INSTANTIATION" and h.pid_of(su) is None,
                 what=f"{su}'s processes stopped")
    assert not pid_alive(pid_b)
    r = h.ctl("admin", "unlock-instantiation", "su:b", check=False)
    assert r.returncode != 0 and "su:b stays locked" in r.stderr and "switchover" in r.stderr, r
    h.remember_children()
    h.proc.kill()
    h.proc.wait()
    h.start()
    wait_for(lambda: h.status()["node_admin"] == "LOCKED-INSTANTIATION", what="the node's state restored")
    h.ctl("admin", "unlock-instantiation", f"node:{node}")
    for su in ("a", "b"):
        wait_for(lambda: h.su(su)["components"][0]["registered"], what=f"{su} started again")
        assert h.su(su)["admin"] == "LOCKED"
    h.ctl("admin", "unlock", f"node:{node}")
    wait_roles(h, "s", "ACTIVE", ["a"])
    assert h.su("b")["admin"] == "LOCKED" and confirmed(h, "s", "STANDBY") == []
    h.ctl("admin", "unlock", "su:b")
    wait_roles(h, "s", "STANDBY", ["b"])
    assert h.stop() == 0
