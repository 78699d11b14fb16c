# SPDX-License-Identifier: MIT
"""Checkpoint replicas and local reads (docs/checkpoints.md, "Replicas and local reads") through the
Python module, on two nodes over a real etcd.  Apart from test_ckpt.py: the module of a sanitized
build needs the sanitizer runtimes preloaded (test/run-all runs test_python_*.py so)."""
import os
import re
import sys
import time

from etcd_harness import Etcd
from halo_harness import BUILD, wait_for

sys.path.insert(0, os.path.join(BUILD, "src", "python"))
from halo import component as hc  # noqa: E402


def test_local_reads_answer_from_the_nodes_replica_even_without_the_store(halod_factory):
    """Two nodes over a one-member etcd.  n2 writes; a process of n1 that opened the checkpoint
    with local reads sees each write once n1's watch brought it, its own writes at once, and goes
    on reading (and listing) while etcd is stopped (SIGSTOP): no read of it goes to the store."""
    etcd = Etcd(members=1).start()
    try:
        yaml = "cluster: rep\nnodes: {n1: {}, n2: {}}\nservice-groups: {}\n"
        nodes = {n: halod_factory(yaml, name=f"rep-{n}", extra_args=["--node", n, "--etcd", etcd.endpoints,
                                                                     "--lease-ttl", "10"]).start()
                 for n in ("n1", "n2")}
        with hc.open(nodes["n1"].socket) as h1, hc.open(nodes["n2"].socket) as h2:
            with h2.ckpt_open("rep", True, retention_msec=600000) as w, h1.ckpt_open("rep", local_reads=True) as r:
                for i in range(20):
                    w.write("s", str(i))
                wait_for(lambda: r.read("s", None) == b"19", timeout=10, what="n2's writes in n1's replica")
                for i in range(100):  # n1's own: read back at once
                    r.write("mine", str(i))
                    assert r.read("mine") == str(i).encode(), i
                r.delete("mine")
                assert r.read("mine", None) is None
                assert list(r) == [("s", b"19")]
                text = nodes["n1"].ctl("ckpt", "rep").stdout
                assert re.search(r"replica here: 1 sections at revision [1-9]", text), text

                etcd.pause_member(0)
                try:
                    t0 = time.monotonic()
                    for _ in range(100):
                        assert r.read("s") == b"19"
                    assert list(r) == [("s", b"19")]
                    assert time.monotonic() - t0 < 5, "the local reads waited for the store"
                finally:
                    etcd.resume_member(0)
                w.write("s", "after")
                wait_for(lambda: r.read("s", None) == b"after", timeout=10, what="the replica after etcd's return")
        for h in nodes.values():
            assert h.stop() == 0
    finally:
        etcd.stop()
