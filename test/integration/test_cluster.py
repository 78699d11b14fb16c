# SPDX-License-Identifier: MIT
"""halo on several nodes: real halods sharing a real etcd, real counter components."""
import socket

import pytest

from etcd_harness import Etcd
from halo_harness import COUNTER, free_port, wait_for


def cluster_yaml(tmpdir, port, nodes=("n1", "n2")):
    units = "\n".join(
        f'      counter-{i}: {{node: {n}, component: {{args: ["--standby-port", "{port + 1 + i}"]}}}}'
        for i, n in enumerate(nodes))
    node_lines = "\n".join(f"  {n}: {{}}" for n in nodes)
    return f"""
cluster: test
nodes:
{node_lines}
defaults:
  component:
    health-check: {{period: 200ms, timeout: 600ms}}
    restart: {{max: 10, window: 60s, delay: 50ms, delay-max: 500ms}}
    timeouts: {{terminate: 2s}}
service-groups:
  counter:
    redundancy: 2N
    component:
      command: {COUNTER}
    service-units:
{units}
    service-instances:
      counter:
        csis:
          counter:
            attributes: {{port: "{port}", state-file: "{tmpdir}/counter.state"}}
"""


def ask(port, line, timeout=2):
    with socket.create_connection(("127.0.0.1", port), timeout=timeout) as s:
        s.sendall((line + "\n").encode())
        return s.makefile().readline().strip()


@pytest.fixture
def etcd():
    e = Etcd(members=1).start()
    yield e
    e.stop()


class Cluster:
    def __init__(self, etcd, factory, tmp_path, nodes=("n1", "n2")):
        self.etcd = etcd
        self.port = free_port()
        self.yaml = cluster_yaml(tmp_path, self.port, nodes)
        self.nodes = {}
        self.factory = factory
        for n in nodes:
            self.nodes[n] = self.make(n)

    def make(self, n):
        return self.factory(self.yaml, name=n,
                            extra_args=["--node", n, "--etcd", self.etcd.endpoints, "--lease-ttl", "1"])

    def start(self):
        for h in self.nodes.values():
            h.start()
        return self

    def coordinator(self, via):
        return via.status()["coordinator"]

    def si(self, via):
        return via.si("counter")

    def settled(self, via):
        """(active SU, standby SU) once via sees the SI fully assigned with nothing pending."""
        s = self.si(via)
        if s["active"] and s["standby"] and not any(a["pending"] for a in s["assignments"]):
            return s["active"], s["standby"]
        return None


def node_of(su):
    return {"counter-0": "n1", "counter-1": "n2", "counter-2": "n3"}[su]


def test_two_nodes_agree_on_roles(etcd, halod_factory, tmp_path):
    c = Cluster(etcd, halod_factory, tmp_path).start()
    h1, h2 = c.nodes["n1"], c.nodes["n2"]
    act, sb = wait_for(lambda: c.settled(h1), timeout=20, what="SI assigned (seen by n1)")
    assert {act, sb} == {"counter-0", "counter-1"}
    # Both nodes show the same placement, the same coordinator and both nodes online.
    assert wait_for(lambda: c.settled(h2) == (act, sb), what="n2 agrees")
    coord = c.coordinator(h1)
    assert coord in ("n1", "n2") and c.coordinator(h2) == coord
    for h in (h1, h2):
        st = {n["name"]: n["state"] for n in h.status()["nodes"]}
        assert st == {"n1": "ONLINE", "n2": "ONLINE"}
    # The ACTIVE one serves; the standby one refuses writes.
    assert wait_for(lambda: ask(c.port, "PING") == "PONG", what="ACTIVE serves")
    # The store holds the decisions, readable with any etcd client.
    keys = etcd.get_prefix("/halo/test/")
    assert '"ACTIVE"' in keys[f"/halo/test/confirmed/counter/{act}"]
    assert '"STANDBY"' in keys[f"/halo/test/confirmed/counter/{sb}"]
    assert "/halo/test/leader" in keys and "/halo/test/nodes/n1" in keys and "/halo/test/nodes/n2" in keys
    for h in (h1, h2):
        assert h.stop() == 0


def test_component_crash_fails_over_to_the_other_node(etcd, halod_factory, tmp_path):
    c = Cluster(etcd, halod_factory, tmp_path).start()
    h1 = c.nodes["n1"]
    act, sb = wait_for(lambda: c.settled(h1), timeout=20, what="SI assigned")
    assert ask(c.port, "INCR k") == "1"
    owner = c.nodes[node_of(act)]
    pid = owner.pid_of(act)
    owner.remember_children()
    owner.kill_pids([pid])
    # The standby on the other node takes over; the failed one comes back as STANDBY.
    assert wait_for(lambda: c.settled(h1) == (sb, act), timeout=20, what="failover to the other node")
    assert wait_for(lambda: ask(c.port, "GET k") == "1", what="new ACTIVE serves the state")
    for h in c.nodes.values():
        assert h.stop() == 0


def test_node_failover_and_coordinator_takeover(etcd, halod_factory, tmp_path):
    c = Cluster(etcd, halod_factory, tmp_path).start()
    h1, h2 = c.nodes["n1"], c.nodes["n2"]
    act, sb = wait_for(lambda: c.settled(h1), timeout=20, what="SI assigned")
    dead = node_of(act)
    alive = "n2" if dead == "n1" else "n1"
    hd, ha = c.nodes[dead], c.nodes[alive]
    coord_before = c.coordinator(ha)
    # SIGKILL the node holding ACTIVE: halod and its components together.
    hd.kill_all()
    assert wait_for(lambda: ha.si("counter")["active"] == sb and
                    not any(a["pending"] for a in ha.si("counter")["assignments"]),
                    timeout=20, what="ACTIVE on the surviving node")
    assert wait_for(lambda: ask(c.port, "PING") == "PONG", what="the survivor serves")
    assert c.coordinator(ha) == alive
    st = {n["name"]: n["state"] for n in ha.status()["nodes"]}
    assert st[dead] == "OFFLINE" and st[alive] == "ONLINE"
    if coord_before == dead:
        pass  # the takeover was exercised as well
    # The dead node comes back and gets STANDBY; ACTIVE does not move.
    hd2 = c.make(dead)
    c.nodes[dead] = hd2
    hd2.start()
    assert wait_for(lambda: c.settled(ha) == (sb, act), timeout=20, what="the returning node is STANDBY")
    for h in (ha, hd2):
        assert h.stop() == 0
