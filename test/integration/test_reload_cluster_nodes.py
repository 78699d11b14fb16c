# SPDX-License-Identifier: MIT
"""Reloading the description's nodes, pools and cdb sections (issue 16, point 3; docs/configuration.md,
Reload): a node added to running halods, whose halod then joins and later runs a unit; a node removed,
refused while its units remain or its halod runs, applied once neither; a pool's tolerance changed, refused
while a recovery of the pool is under way; the cdb section's timing applied, its token refused."""
import os

from halo_harness import start_nodes, wait_for
from test_recovery import device_failed_and_killed, held_recovering, kill, lines, recovered, told
from test_recovery import yaml as pool_yaml
from test_reload import NEW_GROUP, rewrite, yaml


def description(log, nodes, h_units=None):
    """Groups g and other (units a, x on n1, b, y on n2) on these nodes; with h_units ({unit: node}), the
    group h too."""
    text = f"nodes: {{{', '.join(f'{n}: {{}}' for n in nodes)}}}\n" + yaml(log) \
        .replace("service-units: {a: {}, b: {}}", "service-units: {a: {node: n1}, b: {node: n2}}") \
        .replace("service-units: {x: {}, y: {}}", "service-units: {x: {node: n1}, y: {node: n2}}")
    if h_units:
        units = ", ".join(f"{u}: {{node: {n}}}" for u, n in h_units.items())
        text += NEW_GROUP.replace("@LOG@", log).replace("{p: {}, q: {}}", f"{{{units}}}")
    return text


def reload(h, want):
    r = h.ctl("reload", check=False)
    assert r.returncode == 0 and f"applied: {want}" in r.stdout, r.stdout + r.stderr


def refused(h, why):
    r = h.ctl("reload", check=False)
    assert r.returncode == 5 and why in r.stderr, r.stdout + r.stderr
    return r.stderr


def listed(h):
    return {n["name"]: n["state"] for n in h.status()["nodes"]}


def test_a_node_added_joins_and_runs_a_unit_added_later(etcd, halod_factory, tmp_path):
    log = str(tmp_path / "comp.log")
    hs, http = start_nodes(halod_factory, description(log, ("n1", "n2")), etcd.endpoints)
    for h in hs.values():
        h.wait_assigned("s", timeout=30)
    pids = {c: hs[n].pid_of(c) for c, n in (("a", "n1"), ("b", "n2"), ("x", "n1"), ("y", "n2"))}

    # n3 added on both running halods: they list it (no halod yet), nothing else moves.
    three = description(log, ("n1", "n2", "n3"))
    for h in hs.values():
        rewrite(h, three)
        reload(h, "1 node added")
        assert listed(h) == {"n1": "ONLINE", "n2": "ONLINE", "n3": "OFFLINE"}

    # Its halod starts and joins: every node counts it.
    hs.update(start_nodes(halod_factory, three, etcd.endpoints, nodes=("n3",))[0])
    for h in hs.values():
        wait_for(lambda: listed(h) == {"n1": "ONLINE", "n2": "ONLINE", "n3": "ONLINE"}, timeout=30,
                 what="n3 listed ONLINE")
    assert {c: hs[n].pid_of(c) for c, n in (("a", "n1"), ("b", "n2"), ("x", "n1"), ("y", "n2"))} == pids

    # Removing it while its halod runs is refused, and changes nothing.
    rewrite(hs["n1"], description(log, ("n1", "n2")))
    refused(hs["n1"], "'nodes.n3' removed (line 1 of the running description): its halod is running: "
                      "stop its halod first")
    assert "n3" in listed(hs["n1"])

    # A group whose preferred unit is on n3, added by a later reload of every node, the coordinator last
    # (it then finds both units in service): its SI is ACTIVE there.
    with_h = description(log, ("n1", "n2", "n3"), {"p": "n3", "q": "n1"})
    coord = hs["n1"].status()["coordinator"]
    for n in sorted(hs, key=lambda n: n == coord):
        rewrite(hs[n], with_h)
        reload(hs[n], "1 service group added")
        wait_for(lambda: hs[n].comp("p")["presence"] == "INSTANTIATED" or n != "n3", what="p running on n3")
    for h in hs.values():
        assert h.wait_assigned("u", timeout=30) == ("p", "q"), h.si("u")
    assert hs["n3"].pid_of("p") and os.path.exists(f"/proc/{hs['n3'].pid_of('p')}")

    # Removing n3 with its unit p in one reload (its place taken by a unit r on n2): refused, p runs on.
    rewrite(hs["n1"], description(log, ("n1", "n2"), {"q": "n1", "r": "n2"}))
    refused(hs["n1"], "its service units (p) still run there: move or remove its units first")
    assert "n3" in listed(hs["n1"]) and hs["n1"].si("u")["active"] == "p"

    # The others stopped, n3's halod becomes the coordinator, and u stays ACTIVE there.
    for n in ("n1", "n2"):
        assert hs[n].stop() == 0
    wait_for(lambda: hs["n3"].status()["coordinator"] == "n3", timeout=30, what="n3 the coordinator")
    assert hs["n3"].si("u")["active"] == "p" and listed(hs["n3"])["n3"] == "ONLINE"
    assert hs["n3"].stop() == 0


def test_a_node_removed_and_a_nodes_settings_changed(etcd, halod_factory, tmp_path):
    log = str(tmp_path / "comp.log")
    hs, _ = start_nodes(halod_factory, description(log, ("n1", "n2", "n3")).replace("n2: {}", "n2: null", 1),
                        etcd.endpoints)
    for h in hs.values():
        h.wait_assigned("s", timeout=30)
        assert listed(h) == {"n1": "ONLINE", "n2": "ONLINE", "n3": "OFFLINE"}
    # n3, with no unit and no halod, removed; n1's failfast and su-failover changed (n2 from no value to a map).
    two = description(log, ("n1", "n2")).replace("n1: {}", "n1: {failfast: reboot, su-failover: {max: 1, probation: 1m}}", 1) \
        .replace("n2: {}", "n2: {su-failover: {max: 2, probation: 1m}}", 1)
    for h in hs.values():
        rewrite(h, two)
        reload(h, "1 node removed, nodes' settings changed")
        assert listed(h) == {"n1": "ONLINE", "n2": "ONLINE"}
    # This node's own cdb-address: it listens where it started.
    rewrite(hs["n1"], two.replace("n2: {", "n2: {cdb-address: 127.0.0.1:4599, ").replace(
        "n1: {", "n1: {cdb-address: 127.0.0.1:4598, "))
    refused(hs["n1"], "'nodes.n1.cdb-address' added: this halod listens for CDB secondaries on the address it "
                      "started with (restart halod to apply it)")
    for h in hs.values():
        assert h.stop() == 0


def test_cdb_timing_applied_and_token_refused(halod_factory, tmp_path):
    log = str(tmp_path / "comp.log")
    token = tmp_path / "token"
    token.write_text("secret\n")
    base = yaml(log) + f"cdb: {{token-file: {token}}}\n"
    h = halod_factory(base).start()
    h.wait_assigned("s")
    assert h.status()["cdb"]["replication"] == {"mode": "sync", "tick_ms": 500, "dead_after_ms": 2000}

    rewrite(h, base.replace("cdb: {", "cdb: {replication: async, tick: 300ms, dead-after: 1s, "))
    reload(h, "CDB replication settings changed")
    assert h.status()["cdb"]["replication"] == {"mode": "async", "tick_ms": 300, "dead_after_ms": 1000}

    # Both at once past what a node still running the old ones would take: refused, with the way.
    rewrite(h, base.replace("cdb: {", "cdb: {replication: async, tick: 2s, dead-after: 5s, "))
    refused(h, "could take this one for dead, or be taken for dead: change tick and dead-after in two reloads")
    other = tmp_path / "token2"
    other.write_text("other\n")
    rewrite(h, base.replace(str(token), str(other)))
    refused(h, "the nodes' token: the CDB secondaries and control clients authenticated with the old one would be "
               "cut off")
    assert h.status()["cdb"]["replication"]["tick_ms"] == 300
    assert h.stop() == 0


def test_a_pools_tolerance_refused_while_it_recovers_then_applied(etcd, halod_factory, tmp_path):
    log = str(tmp_path / "comp.log")
    hs, http = start_nodes(halod_factory, pool_yaml(log, tolerate=0), etcd.endpoints, nodes=("n1", "n2", "n3"))
    for p in ("ios-a", "ios-b", "ios-c"):
        wait_for(lambda p=p: "ONLINE" in told(log, "outsider", f"process:{p}"), timeout=30, what=f"{p} ONLINE")

    # A recovery of the pool under way: refused on every node, to be done again later.
    hold = held_recovering(hs, log)
    one = pool_yaml(log, tolerate=1)
    for h in hs.values():
        rewrite(h, one)
        refused(h, "a recovery of its pool is under way (process 'ios-b' is RECOVERING): reload again later")
    os.unlink(hold)
    recovered(log)
    for h in hs.values():
        reload(h, "1 pool changed")

    # In effect: ios-b down for good (its device FAILED), ios-c's recovery passes with one failure.
    device_failed_and_killed(hs, http, log)
    kill(hs["n3"], "ios-c")
    wait_for(lambda: lines(log, "ios-c", "RECOVERY"), timeout=30, what="ios-c told")
    assert lines(log, "ios-c", "RECOVERY")[0][0] != "refused", lines(log, "ios-c", "RECOVERY")
    wait_for(lambda: hs["n3"].comp("ios-c")["recovery"]["state"] == "idle", timeout=30, what="ios-c recovered")
    # The pool's processes were told its RECOVERING, as before the reload (the running description is another).
    wait_for(lambda: told(log, "ios-a", "process:ios-c")[-2:] == ["RECOVERING", "ONLINE"], timeout=10,
             what="ios-a told ios-c's recovery")
    for h in hs.values():
        assert h.stop() == 0
