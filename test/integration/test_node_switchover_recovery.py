# SPDX-License-Identifier: MIT
"""A component's `recovery: node-switchover` on a node that is not the coordinator (two
nodes over a real etcd): the failed unit fails over, the node's other unit hands its
ACTIVE over gracefully through the coordinator and keeps its process."""
import os
import signal

from halo_harness import start_nodes, testcomp_events as events, wait_for
from test_admin import actives_onto, failures, settled, two_groups_yaml
from test_redundancy_models import confirmed

NODE = {"a1": "n1", "b2": "n1", "b1": "n2", "a2": "n2"}


def sets(log, comp, state):
    return [e for e in events(log, comp, "CSI_SET") if e[3] == state]


def test_node_switchover_recovery_on_a_node_that_is_not_the_coordinator(etcd, halod_factory, tmp_path):
    log = str(tmp_path / "comp.log")
    yaml = two_groups_yaml(log).replace("    timeouts: {terminate: 2s}\n",
                                        "    timeouts: {terminate: 2s}\n    recovery: node-switchover\n")
    hs, _ = start_nodes(halod_factory, yaml, etcd.endpoints)
    roles = {si: wait_for(lambda: settled(hs["n1"], si), timeout=30, what=f"{si} settled") for si in ("s1", "s2")}
    coord = hs["n1"].status()["coordinator"]
    failing_node = "n2" if coord == "n1" else "n1"
    actives_onto(hs, roles, NODE, failing_node, asked_of=coord)  # both on the node that is not the coordinator
    failed, failed_sb = roles["s1"]
    bystander, new_active = roles["s2"]
    pids = {u: hs[NODE[u]].pid_of(u) for u in NODE}
    n_active_sets = len(sets(log, new_active, "ACTIVE"))
    n_quiescing = len(sets(log, bystander, "QUIESCING"))
    os.kill(pids[failed], signal.SIGKILL)
    for h in hs.values():
        wait_for(lambda: confirmed(h, "s1", "ACTIVE") == [failed_sb], timeout=20, what="s1 failed over")
        wait_for(lambda: settled(h, "s2") == (new_active, bystander), timeout=20, what="s2 switched over")
    # The bystander was switched over: QUIESCING first, then its standby took
    # the SI with transition QUIESCED; its process kept running.
    assert len(sets(log, bystander, "QUIESCING")) == n_quiescing + 1
    assert len(sets(log, new_active, "ACTIVE")) == n_active_sets + 1
    assert sets(log, new_active, "ACTIVE")[-1][4] == "transition=2"
    kept = {u: hs[NODE[u]].pid_of(u) for u in NODE if u != failed}
    assert kept == {u: pids[u] for u in kept}
    wait_for(lambda: hs[failing_node].pid_of(failed) not in (None, pids[failed]), what="the failed unit restarted")
    assert [f for f in failures(hs[failing_node]) if bystander in f] == []
    assert "node-switchover" in hs[failing_node].su(failed)["last_recovery"]
    for h in hs.values():
        assert h.stop() == 0
