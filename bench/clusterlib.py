# SPDX-License-Identifier: MIT
"""Plumbing of the multi-node benchmarks: a real etcd (the integration tests'
launcher, test/integration/etcd_harness.py) and one benchlib.Run per node,
all on loopback.  Nodes n1 and n2 each run one bench-component SU of a 2N
group; the node lease TTL is 1 s, the minimum etcd grants with
--election-timeout=500."""
import os
import sys

import benchlib as B

sys.path.insert(0, os.path.join(B.TOP, "test", "integration"))
from etcd_harness import Etcd  # noqa: E402
from halo_harness import free_port  # noqa: E402,F401



class DiskEtcd(Etcd):
    """The tests' etcd with its members' data on the disk, as a user's etcd has it: the tests keep
    theirs on tmpfs (not about etcd's disk), which would flatter every figure that waits for a
    raft commit (each one an fsync on every member).  Between ae3dae0 and this class the
    benchmarks' etcd ran on tmpfs too, without saying so."""

    on_tmpfs = False


PLACEMENT = {"svc-a": "n1", "svc-b": "n2"}
NODE_OF = {"svc-a": "n1", "svc-b": "n2"}


class Cluster:
    def __init__(self, name, etcd_members=3):
        self.etcd = DiskEtcd(members=etcd_members, heartbeat=50, election=500)
        self.runs = {}
        self.name = name
        self.log = None

    def start(self):
        self.etcd.start()
        first = B.Run(self.name)
        self.log = first.path("bench.log")
        self.yaml = B.description([("svc", ["svc-a", "svc-b"], "svc-si", "svc-csi")], self.log,
                                  placement=PLACEMENT)
        self.runs["n1"] = first
        self.runs["n2"] = B.Run(self.name)
        for n in ("n1", "n2"):
            self.start_node(n)
        return self

    def start_node(self, n):
        self.runs[n].start(self.yaml, extra_args=["--node", n, "--etcd", self.etcd.endpoints, "--lease-ttl", "1"])

    def status(self, n):
        return self.runs[n].status()

    def vouched(self):
        """Every halod's etcd client vouches for lease ends again (docs/design.md, "A lease end etcd
        cannot vouch for"): about 2 s after a halod starts; until then a node failover it sees waits
        a lease TTL more."""
        return all(self.status(n).get("lease_ends_vouched") for n in self.runs)

    def assigned(self, via):
        st = self.status(via)
        si = B.sis(st)["svc-si"]
        return (st, si) if B.fully_assigned(si) else None

    def close(self):
        try:
            for r in self.runs.values():
                r.close()
        finally:
            self.etcd.stop()
