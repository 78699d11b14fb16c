# SPDX-License-Identifier: MIT
"""Recovery of a restarted pool process (seed 003's sequence diagrams) on real
halods over a real etcd: what each process is told, and in which order."""
import os
import signal

import pytest

from etcd_harness import Etcd
from halo_harness import TESTCOMP, free_port, wait_for
from test_events import notes

NODES = ("n1", "n2", "n3")


def yaml(log, tolerate=1):
    return f"""
cluster: rc
nodes: {{n1: {{}}, n2: {{}}, n3: {{}}}}
defaults:
  component:
    command: {TESTCOMP}
    env: {{TESTCOMP: "object-states,entrypoint,recovery", TESTCOMP_LOG: "{log}"}}
    services: [ios]
    restart: {{max: 100, delay: 100ms}}
service-groups:
  s1:
    service-units:
      ios-a: {{node: n1, component: {{devices: [sda]}}}}
      ios-b: {{node: n2, component: {{devices: [sda]}}}}
    service-instances: {{si1: {{csis: {{c1: {{}}}}}}}}
  s2:
    service-units:
      ios-c: {{node: n3, component: {{devices: [sda]}}}}
      outsider: {{node: n1}}
    service-instances: {{si2: {{csis: {{c2: {{}}}}}}}}
pools:
  storage: {{processes: [ios-a, ios-b, ios-c], tolerate: {tolerate}}}
"""


@pytest.fixture
def etcd():
    e = Etcd(members=1).start()
    yield e
    e.stop()


def lines(log, comp, kind):
    try:
        with open(log) as f:
            return [ln.split()[2:] for ln in f if ln.startswith(f"{comp} {kind} ")]
    except FileNotFoundError:
        return []


def told(log, comp, obj):
    return [s for o, s, _ in notes(log, comp) if o == obj]


def cluster(etcd, halod_factory, log, tolerate=1):
    http = {n: free_port() for n in NODES}
    hs = {}
    for n in NODES:
        hs[n] = halod_factory(yaml(log, tolerate), name=n, extra_args=[
            "--node", n, "--etcd", etcd.endpoints, "--lease-ttl", "1", "--http", f"127.0.0.1:{http[n]}"]).start()
    for p in ("ios-a", "ios-b", "ios-c"):
        wait_for(lambda p=p: "ONLINE" in told(log, "outsider", f"process:{p}"), timeout=30, what=f"{p} ONLINE")
    return hs, http


def kill(h, comp):
    pid = h.pid_of(comp)
    os.kill(pid, signal.SIGKILL)
    return pid


def test_happy_path_trigger_once_and_participants_only(etcd, halod_factory, tmp_path):
    log = str(tmp_path / "comp.log")
    hs, http = cluster(etcd, halod_factory, log)
    # A first start needs no recovery.
    assert lines(log, "ios-b", "RECOVERY") == []

    # ios-b crashes; its halod restarts it; it asks for its entrypoint and recovers.
    kill(hs["n2"], "ios-b")
    wait_for(lambda: ["ONLINE", "FAILED", "TRANSIENT", "RECOVERING", "ONLINE"] ==
             told(log, "ios-a", "process:ios-b"), timeout=30, what="ios-a told ios-b's whole recovery")
    rec = lines(log, "ios-b", "RECOVERY")
    assert len(rec) == 1 and rec[0][0] == "recover" and rec[0][1] == "0", rec
    # Its failure vector (epoch 0): its own failure and its services', in order, each once.
    fv = [(o, s) for o, s, _ in lines(log, "ios-b", "FV")]
    assert ("process:ios-b", "FAILED") in fv and ("service:ios-b:ios", "FAILED") in fv, fv
    assert int(rec[0][2]) == len(fv) and len(fv) == len(set(lines_seq(log)))
    ev = [x[0] + " " + x[1] for x in lines(log, "ios-b", "PROCESS_EVENT")]
    assert ev == ["STARTING 0", "RECOVERED 0"], ev

    # Every pool process was told each step once; the outsider got FAILED and ONLINE, not the recovery steps.
    for p in ("ios-a", "ios-c"):
        wait_for(lambda p=p: told(log, p, "process:ios-b")[-1:] == ["ONLINE"], timeout=10, what=f"{p} told ONLINE")
        assert told(log, p, "process:ios-b") == ["ONLINE", "FAILED", "TRANSIENT", "RECOVERING", "ONLINE"]
    wait_for(lambda: told(log, "outsider", "process:ios-b")[-1:] == ["ONLINE"], timeout=10, what="outsider ONLINE")
    assert told(log, "outsider", "process:ios-b") == ["ONLINE", "FAILED", "ONLINE"]

    # Trigger once: only n2's halod reported the recovery steps; the next epoch is open.
    kv = etcd.get_prefix("/halo/rc/")
    assert kv["/halo/rc/process:ios-b/current_epoch"] == "1"
    assert '"state":"idle"' in kv["/halo/rc/recovery/process:ios-b"]
    st = hs["n2"].comp("ios-b")
    assert st["recovery"]["state"] == "idle" and st["recovery"]["pool"] == "storage"
    for h in hs.values():
        assert h.stop() == 0


def lines_seq(log):
    return [x[2] for x in lines(log, "ios-b", "FV")]


def test_refused_with_a_failed_device_and_past_tolerance(etcd, halod_factory, tmp_path):
    import json
    import urllib.request
    log = str(tmp_path / "comp.log")
    hs, http = cluster(etcd, halod_factory, log, tolerate=0)

    def post(node, ev):
        req = urllib.request.Request(f"http://127.0.0.1:{http[node]}/v1/events", data=json.dumps(ev).encode(),
                                     method="POST", headers={"Content-Type": "application/json"})
        with urllib.request.urlopen(req, timeout=5) as r:
            assert r.status == 202

    # Its own device FAILED: a permanent failure, not recovered by the protocol.
    post("n1", {"object": "device:ios-b:sda", "state": "FAILED"})
    wait_for(lambda: told(log, "ios-a", "device:ios-b:sda") == ["FAILED"], timeout=10, what="device FAILED")
    kill(hs["n2"], "ios-b")
    wait_for(lambda: lines(log, "ios-b", "RECOVERY"), timeout=30, what="ios-b told")
    rec = lines(log, "ios-b", "RECOVERY")[0]
    assert rec[0] == "refused" and "device:ios-b:sda is FAILED" in " ".join(rec[3:]), rec
    wait_for(lambda: hs["n2"].comp("ios-b").get("recovery", {}).get("state") == "refused", timeout=10,
             what="status says refused")
    assert "not a transient failure" in hs["n2"].comp("ios-b")["recovery"]["reason"]
    assert told(log, "ios-a", "process:ios-b")[-1] == "FAILED"

    # A pool member down past the pool's tolerance (0): ios-c's recovery is refused, with the reason.
    kill(hs["n3"], "ios-c")
    wait_for(lambda: lines(log, "ios-c", "RECOVERY"), timeout=30, what="ios-c told")
    rec = lines(log, "ios-c", "RECOVERY")[0]
    assert rec[0] == "refused" and "failures in pool 'storage'" in " ".join(rec[3:]), rec
    reason = hs["n3"].comp("ios-c")["recovery"]["reason"]
    assert "ios-b FAILED" in reason and "which tolerates 0" in reason, reason
    out = hs["n3"].ctl("status").stdout
    assert "refused" in out, out
    for h in hs.values():
        assert h.stop() == 0
