# SPDX-License-Identifier: MIT
"""The chaos checker's verdicts on made-up run directories: each kind of
violation is found, and a clean history gives none."""
import json
import os
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import checker  # noqa: E402

T0 = 1000.0


def make_run(tmp_path, intervals, watcher=(), timeline=(), end=60.0, cdb=None, acks=(), pools=None, teardown=(),
             wall_t0=None, unsettled=()):
    """A run directory: SI g1 with units g1-a on n1 and g1-b on n2; times relative to T0."""
    final = {"views": {"n1": {"g1": "g1-b"}}, "pools": pools or {}, "unsettled": list(unsettled), "teardown": list(teardown)}
    if cdb is not None:
        final["cdb"] = cdb
    meta = {"seed": 1, "seconds": end, "t0": T0, "t_check": T0, "t_end": T0 + end, "comps": ["g1-a", "g1-b"],
            "sis": {"g1": {"units": {"g1-a": "n1", "g1-b": "n2"}}}, "final": final, "wall_t0": wall_t0}
    (tmp_path / "meta.json").write_text(json.dumps(meta))
    for comp, lines in intervals.items():
        (tmp_path / f"comp.{comp}.intervals").write_text(
            "".join(f"{k} {int((T0 + t) * 1e9)} {pid} x\n" for k, t, pid in lines))
    (tmp_path / "watcher.log").write_text("".join(f"{k} {c} {pid} {T0 + t:.6f}\n" for k, c, pid, t in watcher))
    (tmp_path / "timeline.jsonl").write_text("".join(json.dumps({**e, "t": T0 + e["t"]}) + "\n" for e in timeline))
    (tmp_path / "cdb.jsonl").write_text("".join(json.dumps({**a, "t": T0 + a["t"]}) + "\n" for a in acks))
    return checker.Run(str(tmp_path))


UP = [("UP", "g1-a", 10, 0.0), ("UP", "g1-b", 20, 0.0)]


def kinds(run):
    v, notes = checker.check(run)
    return [x["kind"] for x in v], [x["kind"] for x in notes], v


def test_a_clean_handover_is_no_violation(tmp_path):
    run = make_run(tmp_path, {"g1-a": [("ACTIVE", 1.0, 10), ("END", 5.0, 10)], "g1-b": [("ACTIVE", 5.01, 20)]},
                   watcher=UP)
    assert kinds(run)[:2] == ([], [])


def test_two_actives_overlapping_by_their_own_logs(tmp_path):
    run = make_run(tmp_path, {"g1-a": [("ACTIVE", 1.0, 10), ("END", 5.03, 10)], "g1-b": [("ACTIVE", 5.01, 20)]},
                   watcher=UP)
    k, _, v = kinds(run)
    assert k == ["overlap"] and "20.0 ms both ACTIVE" in v[0]["text"]


def test_an_active_killed_without_end_lasts_until_its_death(tmp_path):
    # g1-a never logs END: the nemesis killed it at 5.2, after g1-b began at 5.1.
    timeline = [{"phase": "fault", "kind": "comp-kill", "target": "g1-a", "pid": 10, "t": 5.2}]
    run = make_run(tmp_path, {"g1-a": [("ACTIVE", 1.0, 10)], "g1-b": [("ACTIVE", 5.1, 20)]},
                   watcher=UP + [("DOWN", "g1-a", 10, 5.25)], timeline=timeline)
    k, _, v = kinds(run)
    assert k == ["overlap"] and "100.0 ms" in v[0]["text"] and "SIGKILL by the nemesis" in v[0]["text"]
    # Killed before the other began: no overlap.
    timeline[0]["t"] = 5.0
    run = make_run(tmp_path, {"g1-a": [("ACTIVE", 1.0, 10)], "g1-b": [("ACTIVE", 5.1, 20)]},
                   watcher=UP + [("DOWN", "g1-a", 10, 5.05)], timeline=timeline)
    assert kinds(run)[0] == []


def test_an_overlap_within_the_watchers_latency_is_a_note(tmp_path):
    run = make_run(tmp_path, {"g1-a": [("ACTIVE", 1.0, 10)], "g1-b": [("ACTIVE", 5.0, 20)]},
                   watcher=UP + [("DOWN", "g1-a", 10, 5.001)])
    assert kinds(run)[:2] == ([], ["overlap"])


def test_no_active_while_a_healthy_unit_waits(tmp_path):
    ivs = {"g1-a": [("ACTIVE", 1.0, 10), ("END", 5.0, 10)], "g1-b": [("ACTIVE", 5.0 + checker.MAX_GAP + 1, 20)]}
    k, _, v = kinds(make_run(tmp_path, ivs, watcher=UP))
    assert k == ["gap"] and "NO ACTIVE si g1" in v[0]["text"]
    # The same gap while both units' nodes are disturbed (halod stopped) is no violation.
    timeline = [{"phase": "fault", "kind": "halod-stop", "target": n, "pid": 1, "t": 4.9} for n in ("n1", "n2")]
    timeline += [{"phase": "restore", "fault": "halod-stop", "target": n, "pid": 1, "t": 7.0} for n in ("n1", "n2")]
    assert kinds(make_run(tmp_path, ivs, watcher=UP, timeline=timeline))[0] == []
    # Nor while etcd has lost its quorum (two members stopped).
    timeline = [{"phase": "fault", "kind": "etcd-stop", "target": m, "pid": 1, "t": 4.9} for m in ("m0", "m1")]
    timeline += [{"phase": "restore", "fault": "etcd-stop", "target": m, "pid": 1, "t": 7.0} for m in ("m0", "m1")]
    assert kinds(make_run(tmp_path, ivs, watcher=UP, timeline=timeline))[0] == []


def test_the_end_needs_one_running_active_that_every_halod_shows(tmp_path):
    run = make_run(tmp_path, {"g1-a": [("ACTIVE", 1.0, 10), ("END", 5.0, 10)]}, watcher=UP, end=7.0)
    assert kinds(run)[0] == ["end"]
    run = make_run(tmp_path, {"g1-a": [("ACTIVE", 1.0, 10)]}, watcher=UP)
    k, _, v = kinds(run)
    assert k == ["view"] and "halod n1 shows ACTIVE 'g1-b'" in v[0]["text"]


def test_an_acknowledged_commit_missing_on_the_final_primary(tmp_path):
    ivs = {"g1-b": [("ACTIVE", 1.0, 20)]}
    acks = [{"path": f"/chaos/c{i}", "node": "n1", "ok": True, "t": 2.0 + i} for i in range(4)]
    run = make_run(tmp_path, ivs, watcher=UP, acks=acks,
                   cdb={"primary": "n2", "paths": ["/chaos/c0", "/chaos/c3"]})
    k, _, v = kinds(run)
    assert k == ["cdb"] and "LOST 2 acknowledged" in v[0]["text"] and "/chaos/c1 .. /chaos/c2" in v[0]["text"]
    run = make_run(tmp_path, ivs, watcher=UP, acks=acks,
                   cdb={"primary": "n2", "paths": [f"/chaos/c{i}" for i in range(4)]})
    assert kinds(run)[0] == []


def test_pool_processes_end_online_or_with_a_reason_that_can_change(tmp_path):
    ivs = {"g1-b": [("ACTIVE", 1.0, 20)]}
    ok = {"p1": {"state": "ONLINE"}, "p2": {"state": "FAILED", "reason": "device:p2:sda is FAILED"}}
    assert kinds(make_run(tmp_path, ivs, watcher=UP, pools=ok))[0] == []
    silent = {"p1": {"state": "ONLINE"}, "p2": {"state": "TRANSIENT"}}
    assert kinds(make_run(tmp_path, ivs, watcher=UP, pools=silent))[0] == ["pool"]
    why = "1 failures in pool 'storage' (p{} FAILED), which tolerates 0"
    stuck = {"p1": {"state": "FAILED", "reason": why.format(2)}, "p2": {"state": "FAILED", "reason": why.format(1)}}
    k, _, v = kinds(make_run(tmp_path, ivs, watcher=UP, pools=stuck))
    assert k == ["pool"] and "POOL STUCK" in v[0]["text"]
    # The same wording after an aborted attempt ("past N") is stuck too.
    stuck["p2"]["reason"] = "it may not start recovering: 2 failures in pool 'storage' (p1 FAILED), past 0"
    assert kinds(make_run(tmp_path, ivs, watcher=UP, pools=stuck))[0] == ["pool"]
    # With a member ONLINE the pool did not fail as a whole: it waits for the operator, reasons stated.
    stuck["p3"] = {"state": "ONLINE"}
    assert kinds(make_run(tmp_path, ivs, watcher=UP, pools=stuck))[0] == []


def test_a_halod_that_crashed_is_a_violation_processes_left_behind_a_note(tmp_path):
    ivs = {"g1-b": [("ACTIVE", 1.0, 20)]}
    run = make_run(tmp_path, ivs, watcher=UP, teardown=[("crash", "halod n1 ended by signal 6 (SIGABRT)"),
                                                        ("teardown", "halod n2: processes left behind")])
    k, notes, _ = kinds(run)
    assert k == ["crash"] and notes == ["teardown"]


def test_a_unit_the_pool_holds_back_is_not_a_healthy_one(tmp_path):
    # g1-b runs but its recovery was refused (its pool lost more than it
    # tolerates): the SI may wait without ACTIVE (docs/recovery.md).
    ivs = {"g1-a": [("ACTIVE", 1.0, 10), ("END", 5.0, 10)], "g1-b": [("ACTIVE", 5.0 + checker.MAX_GAP + 1, 20)]}
    timeline = [{"phase": "fault", "kind": "halod-stop", "target": "n1", "pid": 1, "t": 4.9},
                {"phase": "restore", "fault": "halod-stop", "target": "n1", "pid": 1, "t": 60.0}]
    wall_t0 = 1796550901.5

    def log_line(t, state):
        w = wall_t0 + t
        hms = time.strftime("%H:%M:%S", time.localtime(w))
        return f"{hms}.{int(w % 1 * 1000):03d} halod[amf] info: Recovery of 'g1-b': failed -> {state}: why\n"

    (tmp_path / "halod-n2.log").write_text(log_line(4.0, "refused") + log_line(5.0 + checker.MAX_GAP + 0.5, "idle"))
    run = make_run(tmp_path, ivs, watcher=UP, timeline=timeline, wall_t0=wall_t0)
    assert run.held("g1-b", 6.0 + T0) and not run.held("g1-b", 5.0 + checker.MAX_GAP + 0.6 + T0)
    assert kinds(run)[0] == []
    # Without the refusal, the same history is a gap.
    (tmp_path / "halod-n2.log").write_text("")
    assert kinds(make_run(tmp_path, ivs, watcher=UP, timeline=timeline, wall_t0=wall_t0))[0] == ["gap"]


def test_an_si_whose_every_unit_its_pool_holds_may_end_without_active(tmp_path):
    # The pool lost more than it tolerates: halo waits for the operator and
    # says why; the SI ending without ACTIVE is then a note, not a violation.
    ivs = {"g1-a": [("ACTIVE", 1.0, 10), ("END", 5.0, 10)]}
    why = "3 failures in pool 'storage' (...), which tolerates 2"
    unsettled = ["not settled 60 s after the last fault was undone: n1 sees SI g1 active=None standby=None pending=[]"]
    held = {"g1-a": {"state": "FAILED", "reason": why}, "g1-b": {"state": "TRANSIENT", "reason": why},
            "p3": {"state": "ONLINE"}}
    k, notes, _ = kinds(make_run(tmp_path, ivs, watcher=UP, end=7.0, pools=held, unsettled=unsettled))
    assert k == [] and sorted(notes) == ["end", "settle"]
    # One unit free (ONLINE, or no reason stated): both are violations.
    for free in ({"state": "ONLINE"}, {"state": "TRANSIENT"}):
        pools = {**held, "g1-b": free}
        k, _, _ = kinds(make_run(tmp_path, ivs, watcher=UP, end=7.0, pools=pools, unsettled=unsettled))
        assert sorted(set(k) - {"pool"}) == ["end", "settle"]
    # A halod that did not settle for another reason stays a violation.
    other = ["not settled 60 s after the last fault was undone: n1 sees SI g1 active='g1-a' standby=None pending=['x']"]
    k, _, _ = kinds(make_run(tmp_path, ivs, watcher=UP, end=7.0, pools=held, unsettled=other))
    assert k == ["settle"]
