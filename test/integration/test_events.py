# SPDX-License-Identifier: MIT
"""The event queue and the broadcast queue on real halods sharing a real etcd:
events reported by several nodes are published once, every node delivers the
same entries in the same order, processes can ask for object states."""
import json
import os
import urllib.error
import urllib.request

from halo_harness import AUTH, TESTCOMP, free_port, start_nodes, wait_for


def yaml(log):
    return f"""
cluster: ev
nodes:
  n1: {{}}
  n2: {{}}
  n3: {{}}
service-groups:
  svc:
    redundancy: 2N
    component:
      command: {TESTCOMP}
      env: {{TESTCOMP: "object-states,entrypoint", TESTCOMP_LOG: "{log}"}}
    service-units:
      svc-a: {{node: n1}}
      svc-b: {{node: n2}}
    service-instances:
      si: {{entrypoint: true, csis: {{c: {{attributes: {{port: "7999"}}}}}}}}
"""


def post(port, body):
    req = urllib.request.Request(f"http://127.0.0.1:{port}/v1/events", data=json.dumps(body).encode(),
                                 method="POST", headers={"Content-Type": "application/json", **AUTH})
    try:
        with urllib.request.urlopen(req, timeout=5) as r:
            return r.status, json.loads(r.read())
    except urllib.error.HTTPError as e:
        return e.code, json.loads(e.read())


def notes(log, comp):
    """[(object, state, seq)] that comp logged, in order."""
    out = []
    try:
        with open(log) as f:
            for line in f:
                p = line.split()
                if len(p) == 5 and p[0] == comp and p[1] == "OBJ":
                    out.append((p[2], p[3], int(p[4])))
    except FileNotFoundError:
        pass
    return out


def test_events_deduplicated_ordered_and_queried(etcd, halod_factory, tmp_path):
    log = str(tmp_path / "comp.log")
    hs, http = start_nodes(halod_factory, yaml(log), etcd.endpoints)
    wait_for(lambda: (lambda s: s["active"] and s["standby"])(hs["n1"].si("si")), timeout=20, what="SI assigned")
    # Both processes registered: their ONLINE went through the queues.
    for c in ("svc-a", "svc-b"):
        wait_for(lambda c=c: ("process:svc-a", "ONLINE") in [(o, s) for o, s, _ in notes(log, c)] and
                 ("process:svc-b", "ONLINE") in [(o, s) for o, s, _ in notes(log, c)], timeout=20,
                 what=f"{c} told both processes are ONLINE")

    # The entrypoint, through libhalo: the coordinator, the quorum, where the SI's ACTIVE runs.
    def entrypoint():
        for line in open(log):
            if line.startswith("svc-b ENTRYPOINT {"):
                return json.loads(line.split(" ", 2)[2])
    ep = wait_for(entrypoint, what="svc-b got the entrypoint")
    assert ep["coordinator"] in ("n1", "n2") and ep["nodes"] == 3 and ep["online"] in (1, 2)
    assert ep["quorum"] == ep["online"] // 2 + 1
    # Asked before the election was over, it was told when to ask again.
    assert all(int(line.split()[2]) > 0 for line in open(log) if " ENTRYPOINT_RETRY " in line)
    assert ep["entrypoints"][0]["si"] == "si" and ep["entrypoints"][0]["csis"][0]["attributes"]["port"] == "7999"

    # The same failure reported through both nodes is published once.
    ev = {"object": "node:n3", "state": "FAILED", "reason": "monitor says so"}
    assert post(http["n1"], ev)[0] == 202
    assert post(http["n2"], {"events": [ev]})[0] == 202
    assert post(http["n2"], [ev])[0] == 202
    for c in ("svc-a", "svc-b"):
        wait_for(lambda c=c: ("node:n3", "FAILED") in [(o, s) for o, s, _ in notes(log, c)], timeout=10,
                 what=f"{c} told node:n3 FAILED")
    # n3 was never started: an outside ONLINE for it contradicts its (missing) lease.
    code, err = post(http["n1"], {"object": "node:n3", "state": "ONLINE"})
    assert code == 409 and "holds no lease" in err["message"], err
    for c in ("svc-a", "svc-b"):
        assert [(o, s) for o, s, _ in notes(log, c)].count(("node:n3", "FAILED")) == 1, notes(log, c)

    # A process asks for the current states (nvec get).
    with open(f"{log}.svc-a.query", "w") as f:
        f.write("node:n3\nprocess:svc-b\nnode:nobody\n")
    wait_for(lambda: "svc-a QUERY node:nobody -" in open(log).read(), what="query answered")
    text = open(log).read()
    assert "svc-a QUERY node:n3 FAILED" in text and "svc-a QUERY process:svc-b ONLINE" in text
    # With the seq and HLC time of the entry that set each state, as the notes carry them
    # (they used to be 0 and 0).
    q = {p[2]: p[3:] for p in (line.split() for line in text.splitlines()) if p[:2] == ["svc-a", "QUERY"]}
    n3 = [(s, seq) for o, s, seq in notes(log, "svc-a") if o == "node:n3"][-1]
    assert q["node:n3"][0] == "FAILED" and int(q["node:n3"][1]) == n3[1], (q, n3)
    assert int(q["node:n3"][2]) > 0 and int(q["process:svc-b"][1]) > 0 and int(q["process:svc-b"][2]) > 0
    assert q["node:nobody"] == ["-", "0", "0"]

    # A real node failure: n2 dies; n1 reports it, and its process is told.
    hs["n2"].kill_all()
    wait_for(lambda: ("node:n2", "FAILED") in [(o, s) for o, s, _ in notes(log, "svc-a")], timeout=20,
             what="svc-a told node:n2 FAILED")

    # Every node delivered the same entries in the same order, each once.
    a, b = notes(log, "svc-a"), notes(log, "svc-b")
    for seq_list in (a, b):
        seqs = [s for _, _, s in seq_list]
        assert seqs == sorted(seqs) and len(seqs) == len(set(seqs)), seq_list
    common = {s for _, _, s in a} & {s for _, _, s in b}
    assert len(common) >= 3
    assert [e for e in a if e[2] in common] == [e for e in b if e[2] in common]

    # Bad input on the HTTP API: clear errors, nothing published.
    code, err = post(http["n1"], {"object": "device:disk9", "state": "FAILED"})
    assert code == 404 and "not in the cluster description" in err["message"]
    code, err = post(http["n1"], {"object": "node:n3", "state": "SLEEPY"})
    assert code == 400 and err["error"]
    code, err = post(http["n1"], {"object": "node:../x", "state": "FAILED"})
    assert code == 400
    assert hs["n1"].stop() == 0


def test_a_slow_reader_is_held_back_then_resynced_not_cut_off(etcd, halod_factory, tmp_path):
    """A process that stops reading its link while a burst of object states
    arrives is not disconnected (it would fail over): halod queues a bounded
    amount, holds the rest back, and sends it the current states once it has
    read what was queued."""
    log = str(tmp_path / "comp.log")
    long = "L" * 200  # long object names: fewer events fill the queue
    cfg = f"""
cluster: slow
service-groups:
  svc:
    component:
      command: {TESTCOMP}
      env: {{TESTCOMP: "object-states,stall-states", TESTCOMP_LOG: "{log}"}}
    service-units:
      svc-a: {{}}
      svc-b: {{}}
    service-instances:
      si: {{csis: {{c: {{}}}}}}
  other:
    component:
      command: {TESTCOMP}
      devices: [d]
    service-units:
      {long}-a: {{}}
      {long}-b: {{}}
    service-instances:
      other-si: {{csis: {{oc: {{}}}}}}
"""
    port = free_port()
    h = halod_factory(cfg, extra_args=["--etcd", etcd.endpoints, "--http", f"127.0.0.1:{port}"]).start()
    wait_for(lambda: h.si("si")["active"] and h.si("other-si")["active"], timeout=20, what="SIs assigned")
    wait_for(lambda: notes(log, "svc-a"), timeout=20, what="svc-a got its snapshot")
    pid = h.pid_of("svc-a")
    stall = f"{log}.svc-a.stall"
    open(stall, "w").close()
    obj = f"device:{long}-a:d"
    state = "ONLINE"
    for _ in range(50):  # 12,000 flips of one long-named object, in requests under the 64 KiB body limit
        evs = []
        for _ in range(240):
            state = "TRANSIENT" if state == "ONLINE" else "ONLINE"
            evs.append({"object": obj, "state": state})
        assert post(port, {"events": evs})[0] == 202
    wait_for(lambda: "reads its object states slowly" in h.logtext(), timeout=30,
             what="halod held notes back for the stalled process")
    os.unlink(stall)
    wait_for(lambda: "caught up" in h.logtext(), timeout=30, what="the process caught up")
    wait_for(lambda: [s for o, s, _ in notes(log, "svc-a") if o == obj][-1:] == [state], timeout=30,
             what="the process has the final state")
    assert h.pid_of("svc-a") == pid, "the slow process was restarted"
    assert "not reading its HA link" not in h.logtext()
    assert h.stop() == 0


def test_outside_reports_never_contradict_what_halo_knows(etcd, halod_factory, tmp_path):
    """One source of truth.  A monitor's `process:svc-a FAILED`, posted to
    another node's halod, is an error report on svc-a's node: its unit fails
    over, and the FAILED every process is told is the one its halod publishes
    when the process really ended, so it agrees with haloctl status.  It used
    to be broadcast while svc-a stayed ACTIVE and serving.  A `node:n1 FAILED`
    for a node that holds its lease, or a process state other than FAILED, is
    refused (409) and nothing is published."""
    log = str(tmp_path / "comp.log")
    hs, http = start_nodes(halod_factory, yaml(log), etcd.endpoints)
    si = wait_for(lambda: (lambda s: s if s["active"] and s["standby"] else None)(hs["n1"].si("si")), timeout=20,
                  what="SI assigned")
    act, sb = si["active"], si["standby"]
    node_of = {"svc-a": "n1", "svc-b": "n2"}
    for c in (act, sb):
        wait_for(lambda c=c: ("process:" + act, "ONLINE") in [(o, s) for o, s, _ in notes(log, c)], timeout=20,
                 what=f"{c} told {act} ONLINE")
    pid = hs[node_of[act]].pid_of(act)

    code, err = post(http["n1"], {"object": "node:n1", "state": "FAILED"})
    assert code == 409 and "holds its lease" in err["message"], err
    code, err = post(http["n2"], {"object": f"process:{act}", "state": "ONLINE"})
    assert code == 409, err
    # One refused event refuses the whole request: the device event is not taken either.
    code, err = post(http["n1"], [{"object": "node:n2", "state": "FAILED"}, {"object": f"process:{sb}", "state": "ONLINE"}])
    assert code == 409

    other = "n2" if node_of[act] == "n1" else "n1"
    code, body = post(http[other], {"object": f"process:{act}", "state": "FAILED", "reason": "probe timed out"})
    assert code == 202 and body["error_reports"] == 1 and body["events"] == 0, body
    # The unit fails over: its process was killed by its own halod, the standby is ACTIVE.
    wait_for(lambda: hs["n1"].si("si")["active"] == sb, timeout=20, what="failover after the outside report")
    assert wait_for(lambda: hs[node_of[act]].pid_of(act) not in (None, pid), timeout=20, what="the unit restarted")
    assert "reported FAILED by an external monitor" in hs[node_of[act]].logtext()
    # What the processes were told agrees with status: the FAILED came with the process's end,
    # and no node was ever published FAILED.
    for c in (act, sb):
        seen = [(o, s) for o, s, _ in notes(log, c)]
        assert ("node:n1", "FAILED") not in seen and ("node:n2", "FAILED") not in seen
    wait_for(lambda: ("process:" + act, "FAILED") in [(o, s) for o, s, _ in notes(log, sb)], timeout=20,
             what=f"{sb} told {act} FAILED")
    for h in hs.values():
        assert h.stop() == 0


def test_every_process_of_a_failed_unit_is_published_failed_then_online(etcd, halod_factory, tmp_path):
    """A unit of two components fails because one of them dies: halod kills
    the other with it, and both are published FAILED, then ONLINE again once
    the unit restarted.  Only the first used to be published; its sibling was
    never FAILED, so its ONLINE after the restart was dropped as a duplicate."""
    log = str(tmp_path / "comp.log")
    cfg = f"""
cluster: multi
service-groups:
  watch:
    component:
      command: {TESTCOMP}
      env: {{TESTCOMP: "object-states", TESTCOMP_LOG: "{log}"}}
    service-units:
      watch-a: {{}}
      watch-b: {{}}
    service-instances:
      wsi: {{csis: {{w: {{}}}}}}
  multi:
    component:
      command: {TESTCOMP}
    service-units:
      m-a: {{components: {{x: {{csi-types: [tx]}}, y: {{csi-types: [ty]}}}}}}
      m-b: {{components: {{x: {{csi-types: [tx]}}, y: {{csi-types: [ty]}}}}}}
    service-instances:
      msi: {{csis: {{cx: {{type: tx}}, cy: {{type: ty}}}}}}
"""
    h = halod_factory(cfg, extra_args=["--etcd", etcd.endpoints]).start()
    wait_for(lambda: h.si("msi")["active"] and h.si("msi")["standby"], timeout=20, what="msi assigned")

    def told():
        return [(o, s) for o, s, _ in notes(log, "watch-a")]
    wait_for(lambda: {("process:m-a:x", "ONLINE"), ("process:m-a:y", "ONLINE")} <= set(told()), timeout=20,
             what="both processes of m-a ONLINE")
    pid_y = h.pid_of("m-a/y")
    os.kill(h.pid_of("m-a/x"), 9)
    wait_for(lambda: {("process:m-a:x", "FAILED"), ("process:m-a:y", "FAILED")} <= set(told()), timeout=20,
             what="both processes of m-a FAILED")
    wait_for(lambda: h.pid_of("m-a/y") not in (None, pid_y) and h.comp("m-a/y")["registered"], timeout=20,
             what="m-a restarted")
    for p in ("process:m-a:x", "process:m-a:y"):
        wait_for(lambda p=p: [s for o, s in told() if o == p][-1:] == ["ONLINE"], timeout=20,
                 what=f"{p} ONLINE again")
        assert [s for o, s in told() if o == p] == ["ONLINE", "FAILED", "ONLINE"], told()
    assert h.stop() == 0


def test_entrypoint_quorum_counts_the_nodes_online(etcd, halod_factory, tmp_path):
    """Three nodes described, one started: the entrypoint says 3 nodes, 1
    online, quorum 1 (a majority of the nodes that can answer), not 2."""
    import urllib.request
    log = str(tmp_path / "comp.log")
    hs, http = start_nodes(halod_factory, yaml(log).replace("      svc-b: {{node: n2}}", "      svc-b: {{node: n1}}")
                           .replace("svc-b: {node: n2}", "svc-b: {node: n1}"), etcd.endpoints, nodes=("n1",))

    def ep():
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{http['n1']}/v1/entrypoint", timeout=2) as r:
                return json.loads(r.read())
        except urllib.error.HTTPError:
            return None
    doc = wait_for(ep, timeout=20, what="an entrypoint")
    assert (doc["nodes"], doc["online"], doc["quorum"]) == (3, 1, 1), doc
    assert hs["n1"].stop() == 0


def test_protection_group_tracked_on_a_node_neither_coordinator_nor_member(etcd, halod_factory, tmp_path):
    """A process on n3 tracks svc's protection group; svc's units run on n1
    and n2, and n3 is not the coordinator.  A failover of svc reaches it: the
    old ACTIVE removed, the standby ACTIVE.  It used to get no notification at
    all and to believe the old ACTIVE was still active."""
    import time
    log = str(tmp_path / "comp.log")
    cfg = f"""
cluster: pg3
nodes: {{n1: {{}}, n2: {{}}, n3: {{}}}}
service-groups:
  svc:
    component:
      command: {TESTCOMP}
    service-units:
      svc-a: {{node: n1}}
      svc-b: {{node: n2}}
    service-instances:
      si: {{csis: {{svc-csi: {{}}}}}}
  watch:
    component:
      command: {TESTCOMP}
      env: {{TESTCOMP: "track=svc-csi", TESTCOMP_LOG: "{log}"}}
    service-units:
      watch-a: {{node: n3}}
      watch-b: {{node: n3}}
    service-instances:
      wsi: {{csis: {{w: {{}}}}}}
"""
    hs, http = start_nodes(halod_factory, cfg, etcd.endpoints, nodes=("n1", "n2"))
    si = wait_for(lambda: (lambda s: s if s["active"] and s["standby"] else None)(hs["n1"].si("si")), timeout=20,
                  what="si assigned")
    coord = hs["n1"].status()["coordinator"]
    assert coord in ("n1", "n2")
    more, _ = start_nodes(halod_factory, cfg, etcd.endpoints, nodes=("n3",))
    hs.update(more)

    def pg():
        with open(log) as f:
            return [ln.split() for ln in f if ln.startswith("watch-a PG ")]
    act, sb = si["active"], si["standby"]
    wait_for(lambda: any(f"{act}:ACTIVE" in " ".join(p) and f"{sb}:STANDBY" in " ".join(p) for p in pg()),
             timeout=20, what="the watcher got the group")
    assert hs["n3"].status()["coordinator"] == coord
    n = len(pg())
    node_of = {"svc-a": "n1", "svc-b": "n2"}
    os.kill(hs[node_of[act]].pid_of(act), 9)
    wait_for(lambda: any(f"{sb}:ACTIVE" in " ".join(p) for p in pg()[n:]), timeout=20,
             what="the watcher told the standby is ACTIVE")
    assert any(f"{act}:ACTIVE:3" in " ".join(p) for p in pg()[n:]), pg()[n:]  # 3: HALO_PG_REMOVED
    for h in hs.values():
        assert h.stop() == 0
