# SPDX-License-Identifier: MIT
"""The coordinator's HA state rules and failure expansion (docs/recovery.md) on
real halods over a real etcd: what the processes are told, in order."""
import json

from halo_harness import TESTCOMP, free_port, start_nodes, wait_for
from test_events import notes, post
from test_recovery import sim  # noqa: F401 (the fixture)


def yaml(log):
    return f"""
cluster: rr
nodes: {{n1: {{}}, n2: {{}}, n3: {{}}}}
defaults:
  component:
    command: {TESTCOMP}
    env: {{TESTCOMP: "object-states", TESTCOMP_LOG: "{log}"}}
    services: [ios, dtm]
service-groups:
  svc:
    service-units:
      svc-a: {{node: n1, component: {{devices: [sda]}}}}
      svc-b: {{node: n2}}
    service-instances: {{si: {{csis: {{c: {{}}}}}}}}
  solo:
    service-units:
      solo-a: {{node: n1, component: {{services: []}}}}
      solo-b: {{node: n2, component: {{services: []}}}}
    service-instances: {{si2: {{csis: {{c2: {{}}}}}}}}
pools:
  p: {{processes: [svc-a, svc-b]}}
"""


def told(log, comp):
    return [(o, s) for o, s, _ in notes(log, comp)]


def after(log, comp, obj, state):
    """What comp was told after the last (obj, state), with seqs."""
    n = notes(log, comp)
    last = max(i for i, (o, s, _) in enumerate(n) if (o, s) == (obj, state))
    return n[last:]


def test_rules_and_expansion(etcd, halod_factory, tmp_path):
    log = str(tmp_path / "comp.log")
    hs, http = start_nodes(halod_factory, yaml(log), etcd.endpoints)
    # A process that registers is ONLINE, and its services with it (expansion).
    want = [("process:svc-a", "ONLINE"), ("service:svc-a:ios", "ONLINE"), ("service:svc-a:dtm", "ONLINE"),
            ("process:svc-b", "ONLINE"), ("service:svc-b:dtm", "ONLINE")]
    wait_for(lambda: all(w in told(log, "solo-a") for w in want), timeout=30, what="processes and services ONLINE")
    n = after(log, "solo-a", "process:svc-a", "ONLINE")
    assert [(o, s) for o, s, _ in n[:3]] == want[:3], n
    assert [q for _, _, q in n[:3]] == [n[0][2], n[0][2] + 1, n[0][2] + 2], "expansion is published right after"

    # A device: FAILED -> ONLINE is refused; the repair path is taken.
    def dev():
        return [s for o, s in told(log, "solo-a") if o == "device:svc-a:sda"]
    # One node's reports are consumed in the order posted: the refused ONLINE before REPAIR.
    for i, st in enumerate(("FAILED", "ONLINE", "REPAIR", "REPAIRED", "ONLINE")):
        assert post(http["n2"], {"object": "device:svc-a:sda", "state": st})[0] == 202
        if i != 1:
            wait_for(lambda st=st: dev()[-1:] == [st], timeout=10, what=f"device {st}")
    dev = dev()
    assert dev == ["FAILED", "REPAIR", "REPAIRED", "ONLINE"], dev

    # A pool process: a monitor cannot make it TRANSIENT or bring it back ONLINE (its halod
    # says what it is: refused at the door); its FAILED is an error report: its halod kills
    # it, and publishes its failure, which takes its services along, once.
    code, err = post(http["n1"], {"object": "process:svc-b", "state": "TRANSIENT"})
    assert code == 409, err
    code, body = post(http["n1"], {"object": "process:svc-b", "state": "FAILED", "reason": "monitor"})
    assert code == 202 and body["error_reports"] == 1, body
    wait_for(lambda: ("service:svc-b:dtm", "FAILED") in told(log, "solo-a"), timeout=10, what="svc-b FAILED")
    assert post(http["n2"], {"object": "process:svc-b", "state": "ONLINE"})[0] == 409
    # A process outside every pool: the monitor's FAILED fails it over; its halod restarts it
    # and publishes its end, then its ONLINE when it registers again.
    code, body = post(http["n2"], {"object": "process:solo-b", "state": "FAILED"})
    assert code == 202 and body["error_reports"] == 1, body
    wait_for(lambda: [s for o, s in told(log, "solo-a") if o == "process:solo-b"][-2:] == ["FAILED", "ONLINE"],
             timeout=20, what="solo-b FAILED, then ONLINE again")
    t = told(log, "solo-a")
    b = [s for o, s in t if o == "process:svc-b"]
    assert b == ["ONLINE", "FAILED"], b  # no TRANSIENT, no ONLINE from the monitor, FAILED once
    assert [s for o, s in t if o == "service:svc-b:ios"] == ["ONLINE", "FAILED"]
    n = after(log, "solo-a", "process:svc-b", "FAILED")
    assert [(o, s) for o, s, _ in n[:3]] == [("process:svc-b", "FAILED"), ("service:svc-b:ios", "FAILED"),
                                             ("service:svc-b:dtm", "FAILED")], n

    # Unknown services and devices are refused at the door; so is a node FAILED while it holds its lease.
    code, err = post(http["n2"], {"object": "service:svc-a:nfs", "state": "FAILED"})
    assert code == 404 and "not in the cluster description" in err["message"]
    code, err = post(http["n2"], {"object": "device:svc-b:sda", "state": "FAILED"})
    assert code == 404
    code, err = post(http["n2"], {"object": "node:n1", "state": "FAILED", "reason": "monitor"})
    assert code == 409, err

    # A node failure (its lease ends) fails its processes and their services (not its devices).
    hs["n1"].kill_all()
    wait_for(lambda: ("process:solo-a", "FAILED") in told(log, "solo-b"), timeout=20, what="n1's processes FAILED")
    n = after(log, "solo-b", "node:n1", "FAILED")
    assert [(o, s) for o, s, _ in n[:5]] == [("node:n1", "FAILED"), ("process:svc-a", "FAILED"),
                                             ("service:svc-a:ios", "FAILED"), ("service:svc-a:dtm", "FAILED"),
                                             ("process:solo-a", "FAILED")], n
    assert [s for o, s in told(log, "solo-b") if o == "device:svc-a:sda"][-1] == "ONLINE"

    # Epochs and failure vectors (docs/recovery.md's layout), written with the events.
    P = "/halo/rr/"
    kv = etcd.get_prefix(P)
    assert kv[P + "process:svc-a/current_epoch"] == "0" and kv[P + "process:svc-b/current_epoch"] == "0"
    assert P + "process:solo-a/current_epoch" not in kv  # in no pool
    rec = json.loads(kv[P + "failvec/process:svc-b/0"])
    assert rec["epoch"] == 0 and rec["seq"] > 0 and int(rec["hlc"]) > 0

    def vector(proc, epoch):
        under = f"{P}failvec/{proc}/{epoch}/"
        chunks = sorted(k for k in kv if k.startswith(under) and not k.endswith("/nr_failures"))
        evs = [e for k in chunks for e in json.loads(kv[k])]
        assert int(kv[under + "nr_failures"]) == len(evs)
        objects = [e["object"] for e in evs]
        assert len(objects) == len(set(objects)), "compacted: one entry per object"
        return [(e["object"], e["state"]) for e in evs], evs

    b, evs_b = vector("process:svc-b", 0)
    # svc-b's vector, one entry per object with its last state, in the order of its first event:
    # the device (its whole path ends ONLINE), its own failure, then what node n1's failure took.
    d = dict(b)
    objs = [o for o, _ in b]
    tail = [("device:svc-a:sda", "ONLINE"), ("process:svc-b", "FAILED"), ("service:svc-b:ios", "FAILED"),
            ("service:svc-b:dtm", "FAILED"), ("process:svc-a", "FAILED"), ("service:svc-a:ios", "FAILED"),
            ("service:svc-a:dtm", "FAILED")]
    assert all(d.get(o) == s for o, s in tail), b
    assert objs.index("device:svc-a:sda") < objs.index("process:svc-b") < objs.index("service:svc-b:dtm"), b
    assert "process:solo-b" not in d and "node:n1" not in d  # not its pool, not its node
    # Events about svc-a's objects carry svc-a's epoch.
    assert all(e.get("epoch") == 0 for e in evs_b if e["object"].endswith(":svc-a") or ":svc-a:" in e["object"])
    a, _ = vector("process:svc-a", 0)
    assert ("node:n1", "FAILED") in a and a[-3:] == tail[-3:]
    assert ("service:svc-a:ios", "ONLINE") not in a  # its epoch started with them

    assert hs["n2"].stop() == 0


def test_vector_compacted_under_device_flips(sim, tmp_path):
    """Thousands of flips of a participant's device within one epoch: the failure
    vectors in etcd stay bounded (one entry per object, docs/recovery.md), and the
    restarted process still gets each object's last state, in first-event order."""
    from test_recovery import SimStore, cluster, down, kill, lines, recovered, told as told_obj
    log = str(tmp_path / "comp.log")
    hs, http = cluster(sim, log)
    flips = 2000  # TRANSIENT, ONLINE, ...: ends ONLINE
    for start in range(0, flips, 100):
        body = [{"object": "device:ios-c:sda", "state": "TRANSIENT" if i % 2 == 0 else "ONLINE"}
                for i in range(start, start + 100)]
        code, err = post(http["n1"], body)
        assert code == 202, err
    wait_for(lambda: len(told_obj(log, "ios-a", "device:ios-c:sda")) >= flips, timeout=60, what="every flip told")
    kv = SimStore(sim).get_prefix("/halo/rc/failvec/")
    size = sum(len(k) + len(v) for k, v in kv.items())
    # Three processes' vectors of a few objects each (was ~150 bytes per flip per process: ~900 kB).
    assert 0 < size < 16 * 1024, size
    kill(hs["n2"], "ios-b")
    recovered(log)
    fv = [(o, s) for o, s, _ in lines(log, "ios-b", "FV")]
    assert [s for o, s in fv if o == "device:ios-c:sda"] == ["ONLINE"], fv
    assert fv.index(("device:ios-c:sda", "ONLINE")) < fv.index(("process:ios-b", "FAILED")), fv
    assert len(set(o for o, _ in fv)) == len(fv) and int(lines(log, "ios-b", "RECOVERY")[0][2]) == len(fv)
    down(sim)


def test_bq_times_ascend_with_a_node_clock_behind(etcd, halod_factory, tmp_path, monkeypatch):
    """r.outgoing.msg.timestamp: n2's wall clock is 50 s behind n1's.  Every
    event published on the broadcast queue is at or after the one before it
    (the coordinator merges each reporter's clock into its own), and n2's
    own reports, once it has read the queue, come after what it read."""
    log = str(tmp_path / "comp.log")
    http = {n: free_port() for n in ("n1", "n2")}

    def start(n):
        return halod_factory(yaml(log), name=n, extra_args=[
            "--node", n, "--etcd", etcd.endpoints, "--lease-ttl", "1", "--http", f"127.0.0.1:{http[n]}"]).start()
    h1 = start("n1")
    wait_for(lambda: "process:svc-a" in dict(told(log, "solo-a")), timeout=30, what="n1 up")
    monkeypatch.setenv("HALO_TEST_CLOCK_OFFSET_MSEC", "-50000")
    h2 = start("n2")
    monkeypatch.delenv("HALO_TEST_CLOCK_OFFSET_MSEC")
    wait_for(lambda: ("process:svc-b", "ONLINE") in told(log, "solo-a"), timeout=30, what="n2's processes ONLINE")
    # The device's path, reported from both nodes in turn.
    for n, st in (("n2", "FAILED"), ("n1", "REPAIR"), ("n2", "REPAIRED")):
        assert post(http[n], {"object": "device:svc-a:sda", "state": st})[0] == 202
        wait_for(lambda st=st: ("device:svc-a:sda", st) in told(log, "solo-b"), timeout=10, what=f"device {st}")
    evs = json.loads(h1.ctl("--json", "events").stdout)["events"]
    by_node = {e["node"] for e in evs}
    assert {"n1", "n2"} <= by_node, by_node
    times = [int(e["hlc"]) for e in sorted(evs, key=lambda e: e["seq"])]
    back = [(i, times[i - 1] - times[i]) for i in range(1, len(times)) if times[i] < times[i - 1]]
    assert not back, f"the broadcast queue's times go back: {back}"
    assert h2.stop() == 0 and h1.stop() == 0
