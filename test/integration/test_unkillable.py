# SPDX-License-Identifier: MIT
"""A process that SIGKILL does not end (stuck in the kernel: a disk or a file system that does not
answer) keeps its service instances where they are: they go to the standby once the process is
gone, or once an operator says so with 'haloctl repair', never while it may still write.

A process in a frozen cgroup v1 freezer group is such a process: it sleeps in the kernel (state D)
with SIGKILL pending until the group is thawed, then dies.  Two halods over a real etcd."""
import os
import time
import uuid

import pytest

from halo_harness import TESTCOMP, pid_alive, start_nodes, wait_for

FREEZER = "/sys/fs/cgroup/freezer"

pytestmark = pytest.mark.skipif(not os.access(os.path.join(FREEZER, "cgroup.procs"), os.W_OK),
                                reason="needs a writable cgroup v1 freezer hierarchy (root) to make a process "
                                       "that SIGKILL does not end")


class Frozen:
    """pid, frozen in a freezer group of its own until thaw()."""

    def __init__(self, pid):
        self.pid = pid
        self.dir = os.path.join(FREEZER, f"halo-test-{uuid.uuid4().hex[:12]}")
        os.mkdir(self.dir)
        self.write("cgroup.procs", str(pid))
        self.write("freezer.state", "FROZEN")
        wait_for(lambda: self.read("freezer.state") == "FROZEN", timeout=5, what="the group frozen")

    def read(self, name):
        with open(os.path.join(self.dir, name)) as f:
            return f.read().strip()

    def write(self, name, value):
        with open(os.path.join(self.dir, name), "w") as f:
            f.write(value)

    def state(self):
        """The process's state letter (D: in the kernel, uninterruptible), or None once it is gone."""
        try:
            with open(f"/proc/{self.pid}/stat") as f:
                return f.read().rsplit(")", 1)[1].split()[0]
        except OSError:
            return None

    def thaw(self):
        if os.path.isdir(self.dir):
            self.write("freezer.state", "THAWED")
            wait_for(lambda: not self.read("cgroup.procs"), timeout=10, what="the thawed group empty")
            os.rmdir(self.dir)


def coordinator(hs):
    """The coordinator's halod, as n1 says."""
    return hs[next(n["name"] for n in hs["n1"].status()["nodes"] if n["coordinator"])]


YAML = f"""
cluster: unkillable
nodes:
  n1: {{}}
  n2: {{}}
defaults:
  component:
    health-check: {{period: 200ms, timeout: 600ms}}
    restart: {{max: 10, window: 60s, delay: 50ms, delay-max: 500ms}}
    timeouts: {{terminate: 1s}}
service-groups:
  g:
    component:
      command: {TESTCOMP}
      env: {{TESTCOMP: amf-hc}}
    service-units:
      a: {{node: n1}}
      b: {{node: n2}}
    service-instances:
      s: {{csis: {{s-csi: {{}}}}}}
"""


def test_a_process_sigkill_does_not_end_holds_its_sis_until_it_dies_or_an_operator_repairs(
        etcd, halod_factory):
    hs, _ = start_nodes(halod_factory, YAML, etcd.endpoints, ttl=3)
    n1, n2 = hs["n1"], hs["n2"]
    assert n1.wait_assigned("s", timeout=20) == ("a", "b")
    frozen = []
    try:
        # a's process stops answering its health checks: halod SIGKILLs it, and it stays, in D.
        pid = n1.pid_of("a")
        frozen.append(Frozen(pid))
        wait_for(lambda: (n2.su("a").get("last_failure") or n1.su("a").get("last_failure") or "").find(
            "health check") >= 0, timeout=10, what="a's missed health check")
        wait_for(lambda: n1.su("a").get("unkillable"), timeout=10, what="a's process past its terminate timeout")
        assert frozen[0].state() == "D" and pid_alive(pid)
        assert "did not die within its terminate timeout after SIGKILL: its service instances wait" in n1.logtext()
        # Neither node gives the SI to b meanwhile, for twice the terminate timeout; the unit's node
        # and the coordinator say what it waits for.
        end = time.monotonic() + 2
        while time.monotonic() < end:
            for h in (n1, n2):
                s = h.si("s")
                assert s["active"] is None and s["waits_for"] == ("a" if h in (n1, coordinator(hs)) else None), \
                    (h.dir, s)
            time.sleep(0.1)
        text = n1.ctl("status").stdout
        assert "waits for unit a to be fenced" in text, text
        assert "outlived SIGKILL" in n1.ctl("status").stdout
        # The process ends (its group thawed): b takes the SI at once, and a comes back as STANDBY.
        frozen.pop().thaw()
        wait_for(lambda: not pid_alive(pid), timeout=5, what="the thawed process gone")
        wait_for(lambda: n2.si("s")["active"] == "b", timeout=10, what="b ACTIVE once a's process is gone")
        assert n2.wait_assigned("s", timeout=20) == ("b", "a")
        assert not n1.su("a").get("unkillable") and n1.si("s")["waits_for"] is None

        # b's process stuck the same way, on the other node: the operator checked and says it is
        # gone ('haloctl repair'): a takes the SI while the process is still there.
        pid = n2.pid_of("b")
        frozen.append(Frozen(pid))
        wait_for(lambda: n2.su("b").get("unkillable"), timeout=15, what="b's process past its terminate timeout")
        for h in (n1, n2):
            s = h.si("s")
            assert s["active"] is None and s["waits_for"] == ("b" if h in (n2, coordinator(hs)) else None), (h.dir, s)
        r = n2.ctl("repair", "b", check=False)
        assert r.returncode == 0, r.stderr
        wait_for(lambda: n1.si("s")["active"] == "a", timeout=10, what="a ACTIVE after the repair")
        assert frozen[0].state() == "D"
        frozen.pop().thaw()
        wait_for(lambda: not pid_alive(pid), timeout=5, what="the thawed process gone")
        assert n1.wait_assigned("s", timeout=20) == ("a", "b")
        # A repair of a unit that is neither disabled nor stuck is refused, as before.
        assert n2.ctl("repair", "b", check=False).returncode == 5
    finally:
        for f in frozen:
            f.thaw()
    for h in (n1, n2):
        assert h.stop() == 0
