# SPDX-License-Identifier: MIT
"""Recovery of a restarted pool process (seed 003's sequence diagrams) on real
halods over a real etcd: what each process is told, and in which order."""
import json
import os
import signal
import subprocess

import pytest

from etcd_harness import Etcd
from halo_harness import HALOCTL, TESTCOMP, free_port, wait_for
from test_events import notes, post

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


def cluster(etcd, halod_factory, log, tolerate=1, ttl=1):
    http = {n: free_port() for n in NODES}
    hs = {}
    for n in NODES:
        hs[n] = halod_factory(yaml(log, tolerate), name=n, extra_args=[
            "--node", n, "--etcd", etcd.endpoints, "--lease-ttl", str(ttl), "--http", f"127.0.0.1:{http[n]}"]).start()
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

    # Every pool process was told each step once; the outsider got all but RECOVERING (the pool's only).
    for p in ("ios-a", "ios-c"):
        wait_for(lambda p=p: told(log, p, "process:ios-b")[-1:] == ["ONLINE"], timeout=10, what=f"{p} told ONLINE")
        assert told(log, p, "process:ios-b") == ["ONLINE", "FAILED", "TRANSIENT", "RECOVERING", "ONLINE"]
    wait_for(lambda: told(log, "outsider", "process:ios-b")[-1:] == ["ONLINE"], timeout=10, what="outsider ONLINE")
    assert told(log, "outsider", "process:ios-b") == ["ONLINE", "FAILED", "TRANSIENT", "ONLINE"]

    # Trigger once: only n2's halod reported the recovery steps; the next epoch is open.
    kv = etcd.get_prefix("/halo/rc/")
    assert kv["/halo/rc/process:ios-b/current_epoch"] == "1"
    assert json.loads(kv["/halo/rc/recovery/process:ios-b"]) == {"state": "idle", "epoch": 1}
    assert hs["n2"].comp("ios-b")["recovery"] == {"pool": "storage", "state": "idle", "epoch": 1}

    # What an operator sees: the vectors, the broadcast queue (also as it goes), the recovery states.
    out = hs["n1"].ctl("failvec", "ios-b").stdout
    assert "process:ios-b: current epoch 1" in out and "epoch 0: " in out and "epoch 1: 0 events" in out, out
    assert "process:ios-b" in out and "FAILED" in out and "TRANSIENT" in out
    doc = json.loads(hs["n3"].ctl("--json", "failvec", "process:ios-b").stdout)
    assert doc["current_epoch"] == 1 and [e["epoch"] for e in doc["epochs"]] == [0, 1]
    assert doc["epochs"][0]["nr_failures"] == len(doc["epochs"][0]["events"]) > 0
    bad = hs["n1"].ctl("failvec", "outsider", check=False)
    assert bad.returncode == 1 and "not a pool process" in bad.stderr
    bad = hs["n1"].ctl("failvec", "nobody", check=False)
    assert bad.returncode == 1 and "no such process" in bad.stderr
    out = hs["n1"].ctl("events").stdout
    rows = [ln.split() for ln in out.splitlines()[1:]]
    b = [r[3] for r in rows if r[2] == "process:ios-b"]
    assert b[-4:] == ["FAILED", "TRANSIENT", "RECOVERING", "ONLINE"], out
    assert all(r[1].startswith("20") and r[1].endswith("Z") or "Z+" in r[1] for r in rows), out
    assert "recovery in pool 'storage': idle, epoch 1" in hs["n2"].ctl("status").stdout
    follow = subprocess.Popen([HALOCTL, "--socket", hs["n3"].socket, "events", "--follow", "--json"],
                              stdout=subprocess.PIPE, text=True)
    try:
        assert post(http["n1"], {"object": "device:ios-a:sda", "state": "FAILED"})[0] == 202
        seen = []
        while not any(e["object"] == "device:ios-a:sda" for e in seen):
            seen.append(json.loads(follow.stdout.readline()))
        assert seen[-1]["state"] == "FAILED" and seen[-1]["seq"] > max(e["seq"] for e in seen[:-1])
    finally:
        follow.kill()
        follow.wait()
    for h in hs.values():
        assert h.stop() == 0


def lines_seq(log):
    return [x[2] for x in lines(log, "ios-b", "FV")]


def test_refused_with_a_failed_device_and_past_tolerance(etcd, halod_factory, tmp_path):
    log = str(tmp_path / "comp.log")
    hs, http = cluster(etcd, halod_factory, log, tolerate=0)

    # Its own device FAILED: a permanent failure, not recovered by the protocol.
    assert post(http["n1"], {"object": "device:ios-b:sda", "state": "FAILED"})[0] == 202
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


def test_recovering_process_failure_recovers_again(etcd, halod_factory, tmp_path):
    """Seed 003, "recovering process failure" and "DTM recovery states": the
    recovering process dies; it stays RECOVERING (the failure reports are
    dropped); its next start recovers again."""
    log = str(tmp_path / "comp.log")
    hs, http = cluster(etcd, halod_factory, log)
    hold = f"{log}.ios-b.hold"
    open(hold, "w").close()
    kill(hs["n2"], "ios-b")
    wait_for(lambda: told(log, "ios-a", "process:ios-b")[-1:] == ["RECOVERING"], timeout=30,
             what="ios-b RECOVERING")
    assert '"state":"recovering"' in etcd.get_prefix("/halo/rc/recovery/")["/halo/rc/recovery/process:ios-b"]
    # It dies while recovering: its halod reports the failure, and so does a monitor on n1; both dropped.
    kill(hs["n2"], "ios-b")
    assert post(http["n1"], {"object": "process:ios-b", "state": "FAILED"})[0] == 202
    # Restarted, it asks again: a second recovery, TRANSIENT then RECOVERING, without a FAILED between.
    wait_for(lambda: len(lines(log, "ios-b", "RECOVERY")) == 2, timeout=30, what="a second recovery")
    wait_for(lambda: told(log, "ios-a", "process:ios-b")[-2:] == ["TRANSIENT", "RECOVERING"], timeout=30,
             what="RECOVERING again")
    os.unlink(hold)
    wait_for(lambda: told(log, "ios-a", "process:ios-b")[-1:] == ["ONLINE"], timeout=30, what="ONLINE")
    assert told(log, "ios-a", "process:ios-b") == ["ONLINE", "FAILED", "TRANSIENT", "RECOVERING", "TRANSIENT",
                                                   "RECOVERING", "ONLINE"]
    # Both attempts had the vector of epoch 0, with its failure once.
    assert [r[1] for r in lines(log, "ios-b", "RECOVERY")] == ["0", "0"]
    for h in hs.values():
        assert h.stop() == 0


def test_participant_failure_during_recovery(etcd, halod_factory, tmp_path):
    """Seed 003, "participating process failure": a participant fails while
    ios-b recovers; FAILED is broadcast to the pool; ios-b's recovery fails,
    it goes back to TRANSIENT and recovers on its next attempt."""
    log = str(tmp_path / "comp.log")
    hs, http = cluster(etcd, halod_factory, log)
    hold, fail = f"{log}.ios-b.hold", f"{log}.ios-b.fail"
    open(hold, "w").close()
    kill(hs["n2"], "ios-b")
    wait_for(lambda: told(log, "ios-a", "process:ios-b")[-1:] == ["RECOVERING"], timeout=30,
             what="ios-b RECOVERING")
    before = len(told(log, "ios-b", "process:ios-c"))
    kill(hs["n3"], "ios-c")
    wait_for(lambda: "FAILED" in told(log, "ios-b", "process:ios-c")[before:], timeout=30,
             what="the recovering process told that a participant FAILED")
    open(fail, "w").close()
    os.unlink(hold)
    wait_for(lambda: told(log, "ios-a", "process:ios-b")[-1:] == ["TRANSIENT"], timeout=30,
             what="back to TRANSIENT")
    assert "reason" in hs["n2"].comp("ios-b")["recovery"]
    # The participant recovers by itself (one failure in the pool: tolerated); then ios-b's next attempt.
    wait_for(lambda: told(log, "ios-a", "process:ios-c")[-1:] == ["ONLINE"], timeout=30, what="ios-c back")
    os.unlink(fail)
    wait_for(lambda: told(log, "ios-a", "process:ios-b")[-1:] == ["ONLINE"], timeout=30, what="ios-b ONLINE")
    assert told(log, "ios-a", "process:ios-b") == ["ONLINE", "FAILED", "TRANSIENT", "RECOVERING", "TRANSIENT",
                                                   "RECOVERING", "ONLINE"]
    ev = [x[0] for x in lines(log, "ios-b", "PROCESS_EVENT")]
    assert ev == ["STARTING", "RECOVERY_FAILED", "STARTING", "RECOVERED"], ev
    for h in hs.values():
        assert h.stop() == 0


def test_halod_failure_during_recovery(etcd, halod_factory, tmp_path):
    """Seed 003, "hax failure": the halod driving a recovery is killed; the
    new one reads the persisted state and carries on; the process keeps
    running and its RECOVERED ends the recovery."""
    log = str(tmp_path / "comp.log")
    hs, http = cluster(etcd, halod_factory, log, ttl=3)
    hold = f"{log}.ios-b.hold"
    open(hold, "w").close()
    kill(hs["n2"], "ios-b")
    wait_for(lambda: told(log, "ios-a", "process:ios-b")[-1:] == ["RECOVERING"], timeout=30,
             what="ios-b RECOVERING")
    h2 = hs["n2"]
    pid = h2.pid_of("ios-b")
    h2.remember_children()
    h2.proc.kill()
    h2.proc.wait()
    h2.log.close()
    h2.start()
    wait_for(lambda: h2.comp("ios-b")["registered"], timeout=15, what="ios-b registered again")
    assert h2.pid_of("ios-b") == pid, "the process kept running"
    wait_for(lambda: h2.comp("ios-b").get("recovery", {}).get("state") == "recovering", timeout=10,
             what="the new halod carries on")
    assert "Recovery of 'ios-b' carries on: recovering" in h2.logtext()
    os.unlink(hold)
    wait_for(lambda: told(log, "ios-a", "process:ios-b")[-1:] == ["ONLINE"], timeout=30, what="ONLINE")
    assert told(log, "ios-a", "process:ios-b") == ["ONLINE", "FAILED", "TRANSIENT", "RECOVERING", "ONLINE"]
    for h in hs.values():
        assert h.stop() == 0


def test_failvec_update_with_duplicate_reports(etcd, halod_factory, tmp_path):
    """Seed 003, "failvec update": the same failure reported by every node is
    one event of the vector; "failvec build": the restarted process gets the
    events of its epoch, in order."""
    log = str(tmp_path / "comp.log")
    hs, http = cluster(etcd, halod_factory, log)
    hold = f"{log}.ios-b.hold"
    open(hold, "w").close()

    # Every node's monitor reports the device failure of a participant and its repair path.
    for st in ("FAILED", "REPAIR"):
        for n in NODES:
            assert post(http[n], {"object": "device:ios-c:sda", "state": st, "reason": f"monitor on {n}"})[0] == 202
        wait_for(lambda st=st: told(log, "ios-a", "device:ios-c:sda")[-1:] == [st], timeout=10, what=st)
    kill(hs["n2"], "ios-b")
    for n in NODES:
        assert post(http[n], {"object": "process:ios-b", "state": "FAILED"})[0] == 202
    wait_for(lambda: lines(log, "ios-b", "FV") and lines(log, "ios-b", "RECOVERY"), timeout=30, what="vector")
    fv = [(o, s) for o, s, _ in lines(log, "ios-b", "FV")]
    assert fv.count(("device:ios-c:sda", "FAILED")) == 1 and fv.count(("process:ios-b", "FAILED")) == 1, fv
    assert fv.index(("device:ios-c:sda", "FAILED")) < fv.index(("device:ios-c:sda", "REPAIR")) < \
        fv.index(("process:ios-b", "FAILED")), fv
    seqs = [int(q) for _, _, q in lines(log, "ios-b", "FV")]
    assert seqs == sorted(seqs) and len(set(seqs)) == len(seqs)
    assert int(lines(log, "ios-b", "RECOVERY")[0][2]) == len(fv)
    # The stored vector: what was sent, then the recovery's own steps (the epoch is still 0).
    wait_for(lambda: told(log, "ios-a", "process:ios-b")[-1:] == ["RECOVERING"], timeout=30, what="RECOVERING")
    kv = etcd.get_prefix("/halo/rc/failvec/process:ios-b/0/")
    stored = [(e["object"], e["state"]) for k in sorted(kv) if not k.endswith("nr_failures")
              for e in json.loads(kv[k])]
    assert int(kv["/halo/rc/failvec/process:ios-b/0/nr_failures"]) == len(stored)
    assert stored[:len(fv)] == fv and stored[len(fv):] == [("process:ios-b", "TRANSIENT"),
                                                           ("process:ios-b", "RECOVERING")], stored
    os.unlink(hold)
    wait_for(lambda: told(log, "ios-a", "process:ios-b")[-1:] == ["ONLINE"], timeout=30, what="ONLINE")
    for h in hs.values():
        assert h.stop() == 0
