# SPDX-License-Identifier: MIT
"""The chaos checker's verdicts on made-up run directories: each kind of
violation is found, and a clean history gives none."""
import json
import os
import subprocess
import sys
import threading
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import checker  # noqa: E402
import cluster  # noqa: E402  (puts test/integration on the path)
import nemesis  # noqa: E402

T0 = 1000.0


def make_run(tmp_path, intervals, watcher=(), timeline=(), end=60.0, cdb=None, acks=(), pools=None, teardown=(),
             wall_t0=None, unsettled=(), sis=None, views=None, cdb_groups=None):
    """A run directory: SI g1 with units g1-a on n1 and g1-b on n2 (or sis); times relative to T0.
    An intervals line is (kind, t, pid) or (kind, t, pid, word...): "x" when no word is given."""
    sis = sis or {"g1": {"units": {"g1-a": "n1", "g1-b": "n2"}}}
    final = {"views": {"n1": views or {"g1": "g1-b"}}, "pools": pools or {}, "unsettled": list(unsettled),
             "teardown": list(teardown)}
    if cdb is not None:
        final["cdb"] = cdb
    for g, (final_g, acks_g) in (cdb_groups or {}).items():  # {group: (its final, its acks)}
        final.setdefault("cdb_groups", {})[g] = final_g
        (tmp_path / f"cdb-{g}.jsonl").write_text("".join(json.dumps({**a, "t": T0 + a["t"]}) + "\n" for a in acks_g))
    meta = {"seed": 1, "seconds": end, "t0": T0, "t_check": T0, "t_end": T0 + end,
            "comps": [u for d in sis.values() for u in d["units"]], "sis": sis, "final": final, "wall_t0": wall_t0}
    (tmp_path / "meta.json").write_text(json.dumps(meta))
    for comp, lines in intervals.items():
        (tmp_path / f"comp.{comp}.intervals").write_text(
            "".join(f"{k} {int((T0 + t) * 1e9)} {pid} {' '.join(rest) or 'x'}\n" for k, t, pid, *rest in lines))
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


def test_each_cdb_roles_groups_database_is_checked_on_its_own_primary(tmp_path):
    ivs = {"g1-b": [("ACTIVE", 1.0, 20)]}
    acks = [{"path": f"/chaos/c{i}", "node": "n1", "ok": True, "t": 2.0 + i} for i in range(2)]
    bill = [{"path": f"/bill/chaos/c{i}", "node": "n2", "ok": True, "t": 2.0 + i} for i in range(3)]
    whole = {"primary": "n1", "paths": [a["path"] for a in acks]}
    run = make_run(tmp_path, ivs, watcher=UP, acks=acks, cdb=whole,
                   cdb_groups={"bill": ({"primary": "n1", "paths": ["/bill/chaos/c0"]}, bill)})
    k, _, v = kinds(run)
    assert k == ["cdb"] and "CDB bill's LOST 2 acknowledged" in v[0]["text"] and \
        "/bill/chaos/c1 .. /bill/chaos/c2" in v[0]["text"], v
    v, notes = checker.check(run)
    text = "\n".join(checker.summary(run, v, notes))
    assert "cdb: main: 2 commits acknowledged, 0 refused or failed; bill's 3 commits acknowledged" in text, text
    run = make_run(tmp_path, ivs, watcher=UP, acks=acks, cdb=whole,
                   cdb_groups={"bill": ({"error": "not one PRIMARY at the end: []"}, bill)})
    k, _, v = kinds(run)
    assert k == ["cdb"] and v[0]["text"] == "CDB bill's not one PRIMARY at the end: []", v
    run = make_run(tmp_path, ivs, watcher=UP, acks=acks, cdb=whole,
                   cdb_groups={"bill": ({"primary": "n2", "paths": [a["path"] for a in bill]}, bill)})
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


# N-way-active, active-assignments 2, over three units (as the cluster's web group).
WEB = {"web": {"units": {"web-a": "n1", "web-b": "n2", "web-c": "n3"}, "model": "N-way-active", "actives": 2}}
WEB_UP = [("UP", u, p, 0.0) for u, p in (("web-a", 10), ("web-b", 20), ("web-c", 30))]


def web_run(tmp_path, ivs, watcher=WEB_UP, views=None, **kw):
    return make_run(tmp_path, ivs, watcher=watcher, sis=WEB, views=views or {"web": ["web-a", "web-b"]}, **kw)


def test_n_way_active_two_actives_at_once_and_a_handover_to_the_spare_are_legal(tmp_path):
    # web-b is killed at 5.0; the spare web-c takes its place at 5.3; web-b comes back as the spare.
    timeline = [{"phase": "fault", "kind": "comp-kill", "target": "web-b", "pid": 20, "t": 5.0}]
    ivs = {"web-a": [("ACTIVE", 1.0, 10)], "web-b": [("ACTIVE", 1.0, 20)], "web-c": [("ACTIVE", 5.3, 30)]}
    watcher = WEB_UP + [("DOWN", "web-b", 20, 5.01), ("UP", "web-b", 21, 5.2)]
    run = web_run(tmp_path, ivs, watcher=watcher, timeline=timeline, views={"web": ["web-c", "web-a"]})
    assert kinds(run)[:2] == ([], [])


def test_n_way_active_more_actives_than_active_assignments(tmp_path):
    ivs = {"web-a": [("ACTIVE", 1.0, 10)], "web-b": [("ACTIVE", 1.0, 20), ("END", 5.05, 20)],
           "web-c": [("ACTIVE", 5.0, 30)]}
    k, _, v = kinds(web_run(tmp_path, ivs, views={"web": ["web-a", "web-c"]}))
    assert k == ["overlap"] and "more than its 2 ACTIVE at once (N-way-active) for 50.0 ms" in v[0]["text"]
    assert all(u in v[0]["text"] for u in ("web-a", "web-b", "web-c"))
    # An end and a start at the same instant are a handover, not three at once.
    ivs["web-b"][1] = ("END", 5.0, 20)
    assert kinds(web_run(tmp_path, ivs, views={"web": ["web-a", "web-c"]}))[0] == []


def test_a_unit_holding_its_si_twice_is_an_overlap_in_every_model(tmp_path):
    # web-a's first process (pid 10) was not fenced when its restart (pid 11) took the SI: two
    # ACTIVEs, within active-assignments, but one unit holds the SI twice.
    ivs = {"web-a": [("ACTIVE", 1.0, 10), ("ACTIVE", 5.0, 11)], "web-b": []}
    watcher = WEB_UP + [("DOWN", "web-a", 10, 5.2), ("UP", "web-a", 11, 4.9)]
    k, _, v = kinds(web_run(tmp_path, ivs, watcher=watcher, views={"web": ["web-a"]}, end=5.5))
    assert "overlap" in k and any("unit web-a holds it twice" in x["text"] for x in v)


def test_n_way_active_short_of_its_actives_while_enough_units_are_healthy(tmp_path):
    # Only web-a ACTIVE from 5.0 on, web-b's END logged, web-b and web-c running and idle.
    ivs = {"web-a": [("ACTIVE", 1.0, 10)], "web-b": [("ACTIVE", 1.0, 20), ("END", 5.0, 20)],
           "web-c": []}
    k, _, v = kinds(web_run(tmp_path, ivs, views={"web": ["web-a"]}, end=5.0 + checker.MAX_GAP + 1))
    assert k[0] == "short" and "SHORT si web: 1 ACTIVE of its 2" in v[0]["text"]
    # With web-b and web-c both on disturbed nodes, one ACTIVE is all there can be.
    timeline = [{"phase": "fault", "kind": "halod-stop", "target": n, "pid": 1, "t": 4.9} for n in ("n2", "n3")]
    timeline += [{"phase": "restore", "fault": "halod-stop", "target": n, "pid": 1, "t": 60.0} for n in ("n2", "n3")]
    run = web_run(tmp_path, ivs, views={"web": ["web-a"]}, end=5.0 + checker.MAX_GAP + 1, timeline=timeline)
    assert "short" not in kinds(run)[0]
    # The end wants both ACTIVEs.
    assert kinds(web_run(tmp_path, ivs, views={"web": ["web-a"]}, end=5.5))[0] == ["end"]


# A non-SA-aware 2N group (as the cluster's nsa group): only the ACTIVE runs (nsacomp), its
# interval ends with its process.
NSA = {"nsa": {"units": {"nsa-a": "n3", "nsa-b": "n1"}, "model": "2N", "actives": 1, "cold": True}}


def nsa_run(tmp_path, ivs, watcher, **kw):
    return make_run(tmp_path, ivs, watcher=watcher, sis=NSA, views={"nsa": "nsa-b"}, **kw)


def test_a_non_sa_aware_active_lasts_until_its_process_dies(tmp_path):
    ivs = {"nsa-a": [("ACTIVE", 1.0, 10)], "nsa-b": [("ACTIVE", 5.1, 20)]}
    up = [("UP", "nsa-a", 10, 1.0), ("UP", "nsa-b", 20, 5.1)]
    # nsa-a died at 5.0 (its halod stopped it): a clean handover.
    assert kinds(nsa_run(tmp_path, ivs, up + [("DOWN", "nsa-a", 10, 5.0)]))[:2] == ([], [])
    # nsa-a still ran when nsa-b started: two copies.
    k, _, v = kinds(nsa_run(tmp_path, ivs, up + [("DOWN", "nsa-a", 10, 5.6)]))
    assert k == ["overlap"] and "500.0 ms both ACTIVE" in v[0]["text"] and "death seen by the watcher" in v[0]["text"]
    # It never died: both run at the end.
    k, _, v = kinds(nsa_run(tmp_path, ivs, up))
    assert k == ["overlap", "end"]


def test_a_cold_standby_counts_as_healthy_without_a_process(tmp_path):
    # nsa-a dies at 5.0 and nobody starts nsa-b: nsa-b runs nothing, yet its node is fine.
    ivs = {"nsa-a": [("ACTIVE", 1.0, 10)], "nsa-b": [("ACTIVE", 5.0 + checker.MAX_GAP + 1, 20)]}
    watcher = [("UP", "nsa-a", 10, 1.0), ("DOWN", "nsa-a", 10, 5.0), ("UP", "nsa-b", 20, 5.0 + checker.MAX_GAP + 1)]
    k, _, v = kinds(nsa_run(tmp_path, ivs, watcher))
    assert k == ["gap"] and "e.g. nsa-a, nsa-b" in v[0]["text"]
    # Not while both units' nodes are disturbed.
    timeline = [{"phase": "fault", "kind": "halod-kill", "target": n, "pid": 1, "t": 4.0} for n in ("n1", "n3")]
    timeline += [{"phase": "restore", "fault": "halod-kill", "target": n, "pid": 2, "t": 5.0 + checker.MAX_GAP}
                 for n in ("n1", "n3")]
    assert kinds(nsa_run(tmp_path, ivs, watcher, timeline=timeline))[0] == []


def test_a_non_sa_aware_copy_left_running_by_a_stopped_halod_is_an_overlap(tmp_path):
    # nsa-a's halod (n3) is stopped 3.0-8.0; nsa-b starts at 5.0; nsa-a dies at 8.1: its guard
    # should have killed it at the lease deadline, before nsa-b started (it was a known gap,
    # unfenced-nsa, before halo-guard).
    ivs = {"nsa-a": [("ACTIVE", 1.0, 10)], "nsa-b": [("ACTIVE", 5.0, 20)]}
    watcher = [("UP", "nsa-a", 10, 1.0), ("UP", "nsa-b", 20, 5.0), ("DOWN", "nsa-a", 10, 8.1)]
    timeline = [{"phase": "fault", "kind": "halod-stop", "target": "n3", "pid": 1, "t": 3.0},
                {"phase": "restore", "fault": "halod-stop", "target": "n3", "pid": 1, "t": 8.0}]
    v, notes = checker.check(nsa_run(tmp_path, ivs, watcher, timeline=timeline))
    assert [x["kind"] for x in v] == ["overlap"] and not [n for n in notes if n.get("known")]
    # Killed at the deadline, before the other copy began: no overlap.
    fenced = watcher[:1] + [("DOWN", "nsa-a", 10, 4.5)] + watcher[1:2]
    assert kinds(nsa_run(tmp_path, {"nsa-a": [("ACTIVE", 1.0, 10)], "nsa-b": [("ACTIVE", 5.0, 20)]}, fenced,
                         timeline=timeline))[0] == []


def test_crashloops_are_drawn_for_the_ladder_groups_only():
    ladder = [u for g in sorted(cluster.LADDER) for u in cluster.GROUPS[g]]
    comps = [u for units in cluster.GROUPS.values() for u in units]
    plan = nemesis.schedule(5, 600, list(cluster.NODES), comps, ladder=ladder)
    loops = [s for s in plan if s["kind"] == "crashloop"]
    assert loops and all(s["target"] in ladder and nemesis.CRASHLOOP_KILLS[0] <= s["count"] <=
                         nemesis.CRASHLOOP_KILLS[1] for s in loops)
    assert plan == nemesis.schedule(5, 600, list(cluster.NODES), comps, ladder=ladder)  # a seed replays
    assert all(s["kind"] != "crashloop" for s in nemesis.schedule(5, 600, list(cluster.NODES), comps))


class Respawner:
    """A stand-in for a cluster: one cold group whose ACTIVE, a sleep, is started again 30 ms
    after it dies (as a component restart would), its pid known to a watcher stand-in."""

    def __init__(self):
        self.groups = {"nsa": {"nsa-a": "n1", "nsa-b": "n2"}}
        self.halods = {}
        self.watcher = self
        self.pids = []
        self.proc = None
        self.done = threading.Event()
        self.spawn()
        self.thread = threading.Thread(target=self.loop, daemon=True)
        self.thread.start()

    def spawn(self):
        self.proc = subprocess.Popen(["sleep", "60"])
        self.pids.append(self.proc.pid)

    def loop(self):
        while not self.done.is_set():
            if self.proc.poll() is not None:
                time.sleep(0.03)
                self.spawn()
            time.sleep(0.005)

    def pid(self, comp):
        p = self.proc
        return p.pid if comp == "nsa-b" and p.poll() is None else None

    def stop(self):
        self.done.set()
        self.thread.join()
        self.proc.kill()
        self.proc.wait()


def test_a_crashloop_kills_each_new_process_up_to_its_count(tmp_path):
    c = Respawner()
    try:
        # Its target nsa-a runs nothing (a cold STANDBY): the loop takes nsa-b, which runs.
        plan = [{"at": 0.0, "kind": "crashloop", "target": "nsa-a", "duration": 5.0, "pick": 0.0, "count": 3}]
        nem = nemesis.Nemesis(c, plan, str(tmp_path / "timeline.jsonl"))
        nem.run(time.monotonic())
        nem.close()
    finally:
        c.stop()
    log = [json.loads(x) for x in (tmp_path / "timeline.jsonl").read_text().splitlines()]
    kills = [e for e in log if e["phase"] == "fault"]
    assert [e["kind"] for e in kills] == ["comp-kill"] * 3 and {e["target"] for e in kills} == {"nsa-b"}
    assert [e["pid"] for e in kills] == c.pids[:3] and [e["left"] for e in kills] == [3, 2, 1]
    assert log[0]["phase"] == "crashloop" and log[0]["target"] == "nsa-b"


def test_the_summary_counts_the_ladders_rungs_from_the_halods_logs(tmp_path):
    (tmp_path / "halod-n1.log").write_text(
        "18:39:27.514 halod[amf] warning: Component 'web-a' of 'web-a' failed (lost its HA link (closed the link)): "
        "component-restart 1/2\n"
        "18:39:27.614 halod[amf] warning: Component 'web-a' of 'web-a' failed (killed by signal 9 (KILL)): "
        "component-restart 2/2\n"
        "18:39:57.784 halod[amf] warning: Service unit 'web-a' restarts in place: escalated to su-restart (more than "
        "2 component restarts within 30s), su-restart 1/1: component 'web-a' killed by signal 9 (KILL)\n")
    (tmp_path / "halod-n2.log").write_text(
        "18:40:01.994 halod[amf] warning: Service unit 'web-b' failed: escalated to su-failover (more than 1 su "
        "restarts within 30s): component 'web-b' killed by signal 9 (KILL)\n")
    run = web_run(tmp_path, {"web-a": [("ACTIVE", 1.0, 10)], "web-b": [("ACTIVE", 1.0, 20)]})
    lines = checker.summary(run, *checker.check(run))
    assert "ladder: component-restart 2, su-failover 1, su-restart 1 (the halods' logs)" in lines


# N+M (as the cluster's npm group): three SIs, one CSI each, over four units, at most two
# ACTIVE SIs per unit.
NPM_UNITS = {"npm-a": "n1", "npm-b": "n2", "npm-c": "n3", "npm-d": "n2"}
NPM = {f"npm-{i}": {"group": "npm", "units": NPM_UNITS, "csis": [f"npm-{i}-csi"], "model": "N+M", "actives": 1,
                    "max_active": 2} for i in (1, 2, 3)}
NPM_UP = [("UP", u, p, 0.0) for u, p in (("npm-a", 10), ("npm-b", 20), ("npm-c", 30), ("npm-d", 40))]


def npm_run(tmp_path, ivs, views=None, **kw):
    views = views or {"npm-1": ["npm-a"], "npm-2": ["npm-b"], "npm-3": ["npm-c"]}
    return make_run(tmp_path, ivs, watcher=kw.pop("watcher", NPM_UP), sis=NPM, views=views, **kw)


def test_n_plus_m_two_actives_of_one_si_overlap_but_two_sis_of_one_unit_do_not(tmp_path):
    # npm-b fails over npm-2 to npm-a, which holds npm-1 too (two SIs: its limit).  The END
    # lines name their CSI: npm-a's REMOVE of npm-2 ends npm-2 only.
    ivs = {"npm-a": [("ACTIVE", 1.0, 10, "npm-1-csi"), ("ACTIVE", 5.0, 10, "npm-2-csi")],
           "npm-b": [("ACTIVE", 1.0, 20, "npm-2-csi"), ("END", 4.9, 20, "TERMINATE", "npm-2-csi")],
           "npm-c": [("ACTIVE", 1.0, 30, "npm-3-csi")]}
    views = {"npm-1": ["npm-a"], "npm-2": ["npm-a"], "npm-3": ["npm-c"]}
    assert kinds(npm_run(tmp_path, ivs, views=views))[:2] == ([], [])
    # npm-b's END comes 100 ms after npm-a's start: two ACTIVEs of npm-2.
    ivs["npm-b"][1] = ("END", 5.1, 20, "TERMINATE", "npm-2-csi")
    k, _, v = kinds(npm_run(tmp_path, ivs, views=views))
    assert k == ["overlap"] and "OVERLAP si npm-2" in v[0]["text"] and "100.0 ms both ACTIVE" in v[0]["text"]
    # An END naming another CSI ends nothing of npm-2: npm-b holds it to the end.
    ivs["npm-b"][1] = ("END", 4.9, 20, "TERMINATE", "npm-3-csi")
    k, _, v = kinds(npm_run(tmp_path, ivs, views=views))
    assert "overlap" in k and "end" in k


def test_n_plus_m_a_unit_over_max_active_sis_per_su(tmp_path):
    ivs = {"npm-a": [("ACTIVE", 1.0, 10, "npm-1-csi"), ("ACTIVE", 1.0, 10, "npm-2-csi"),
                     ("ACTIVE", 5.0, 10, "npm-3-csi"), ("END", 5.2, 10, "REMOVE", "npm-3-csi")],
           "npm-c": [("ACTIVE", 5.3, 30, "npm-3-csi")]}
    views = {"npm-1": ["npm-a"], "npm-2": ["npm-a"], "npm-3": ["npm-c"]}
    k, _, v = kinds(npm_run(tmp_path, ivs, views=views))
    assert k == ["capacity"] and "CAPACITY unit npm-a of group npm" in v[0]["text"] and "200.0 ms" in v[0]["text"]


def test_n_plus_m_an_si_waits_only_while_a_healthy_unit_has_room(tmp_path):
    # npm-3 loses its ACTIVE at 5.0 and gets none again; every other unit's node is down but
    # npm-a's, which holds npm-1 and npm-2: at its limit, so npm-3 may wait.
    ivs = {"npm-a": [("ACTIVE", 1.0, 10, "npm-1-csi"), ("ACTIVE", 1.0, 10, "npm-2-csi")],
           "npm-c": [("ACTIVE", 1.0, 30, "npm-3-csi"), ("END", 5.0, 30, "TERMINATE", "npm-3-csi")]}
    timeline = [{"phase": "fault", "kind": "halod-kill", "target": n, "pid": 1, "t": 4.9} for n in ("n2", "n3")]
    views = {"npm-1": ["npm-a"], "npm-2": ["npm-a"]}
    run = npm_run(tmp_path, ivs, views=views, timeline=timeline, end=5.0 + checker.MAX_GAP + 2)
    assert "gap" not in kinds(run)[0]
    # With npm-a holding one SI only, it had room: a gap.
    ivs["npm-a"].append(("END", 2.0, 10, "REMOVE", "npm-2-csi"))
    run = npm_run(tmp_path, ivs, views=views, timeline=timeline, end=5.0 + checker.MAX_GAP + 2)
    k, _, v = kinds(run)
    assert "gap" in k and any("NO ACTIVE si npm-3" in x["text"] and "e.g. npm-a" in x["text"] for x in v)


# An OCF 2N group (as the cluster's ocf group): ocf-logged's lines, the resource's id its start's pid.
OCF = {"ocf": {"group": "ocf", "units": {"ocf-a": "n2", "ocf-b": "n3"}, "csis": ["ocf-csi"], "model": "2N",
               "actives": 1, "cold": True, "type": "ocf"}}


def ocf_run(tmp_path, ivs, **kw):
    return make_run(tmp_path, ivs, sis=OCF, views={"ocf": "ocf-b"}, **kw)


def test_ocf_resources_of_two_nodes_started_at_once(tmp_path):
    # ocf-a's halod is stopped at 3.0; its guard stops the resource (STOP at 4.0, END at 4.01);
    # ocf-b starts at 4.2: a fence in time.
    timeline = [{"phase": "fault", "kind": "halod-stop", "target": "n2", "pid": 1, "t": 3.0},
                {"phase": "restore", "fault": "halod-stop", "target": "n2", "pid": 1, "t": 8.0}]
    ivs = {"ocf-a": [("ACTIVE", 1.0, 100, "ocf-csi"), ("STOP", 4.0, 100, "halo-guard"),
                     ("END", 4.01, 100, "stop-by-halo-guard", "ocf-csi")],
           "ocf-b": [("ACTIVE", 4.2, 200, "ocf-csi")]}
    assert kinds(ocf_run(tmp_path, ivs, timeline=timeline))[:2] == ([], [])
    # The guard's stop began 50 ms before ocf-b's start but took 300 ms: the peers wait the agent's
    # stop timeout after a lease end, so this is an overlap like any other (it was a known gap,
    # ocf-guard-stop, until they did).
    ivs["ocf-a"][1:] = [("STOP", 4.15, 100, "halo-guard"), ("END", 4.45, 100, "stop-by-halo-guard", "ocf-csi")]
    v, notes = checker.check(ocf_run(tmp_path, ivs, timeline=timeline))
    assert [x["kind"] for x in v] == ["overlap"] and "250.0 ms both" in v[0]["text"]
    assert not [n for n in notes if n.get("known")]
    # Beyond the lease's bound: the guard's stop began after ocf-b's start.
    ivs["ocf-a"][1:] = [("STOP", 4.3, 100, "halo-guard"), ("END", 4.32, 100, "stop-by-halo-guard", "ocf-csi")]
    v, notes = checker.check(ocf_run(tmp_path, ivs, timeline=timeline))
    assert [x["kind"] for x in v] == ["overlap"] and not v[0].get("known") and "120.0 ms both" in v[0]["text"]
    # Stopped by halod itself, which must wait for the stop before the work moves: no allowance.
    ivs["ocf-a"][1:] = [("STOP", 4.15, 100, "halod"), ("END", 4.45, 100, "stop-by-halod", "ocf-csi")]
    v, _ = checker.check(ocf_run(tmp_path, ivs, timeline=timeline))
    assert [x["kind"] for x in v] == ["overlap"] and not v[0].get("known")
    # Never stopped at all: both held at the end.
    del ivs["ocf-a"][1:]
    k, _, _ = kinds(ocf_run(tmp_path, ivs, timeline=timeline))
    assert k == ["overlap", "end"]


class MonitorCluster:
    """A stand-in for a cluster: nsa's unit nsa-b runs, nsa-a (a cold STANDBY) does not."""

    def __init__(self, d):
        self.dir = d
        self.groups = {"nsa": {"nsa-a": "n1", "nsa-b": "n2"}}
        self.halods = {}

    def running_unit(self, comp):
        return comp == "nsa-b"


def test_monitor_fail_breaks_the_running_units_monitor_for_its_duration(tmp_path):
    monitored = ["nsa-a", "nsa-b"]
    plan = nemesis.schedule(5, 600, list(cluster.NODES), ["g1-a"], monitored=monitored)
    assert any(s["kind"] == "monitor-fail" for s in plan)
    assert all(s["target"] in monitored for s in plan if s["kind"] == "monitor-fail")
    assert all(s["kind"] != "monitor-fail" for s in nemesis.schedule(5, 600, list(cluster.NODES), ["g1-a"]))
    c = MonitorCluster(str(tmp_path))
    plan = [{"at": 0.0, "kind": "monitor-fail", "target": "nsa-a", "duration": 0.3, "pick": 0.0}]
    nem = nemesis.Nemesis(c, plan, str(tmp_path / "timeline.jsonl"))
    seen = []

    def look():  # whether the fault file exists, while the fault lasts
        for _ in range(4):
            seen.append((tmp_path / "monitor-fail.nsa-b").exists())
            time.sleep(0.05)
    t = threading.Thread(target=look)
    t.start()
    nem.run(time.monotonic())
    nem.close()
    t.join()
    log = [json.loads(x) for x in (tmp_path / "timeline.jsonl").read_text().splitlines()]
    assert [(e["phase"], e["target"]) for e in log] == [("fault", "nsa-b"), ("restore", "nsa-b")]
    assert log[1]["t"] - log[0]["t"] >= 0.3 and True in seen and not (tmp_path / "monitor-fail.nsa-b").exists()
    # The unit whose monitor fails is not a healthy one: no gap while only it could be ACTIVE.
    ivs = {"nsa-a": [("ACTIVE", 1.0, 10)], "nsa-b": [("ACTIVE", 5.0 + checker.MAX_GAP + 1, 20)]}
    watcher = [("UP", "nsa-a", 10, 1.0), ("DOWN", "nsa-a", 10, 5.0), ("UP", "nsa-b", 20, 5.0 + checker.MAX_GAP + 1)]
    timeline = [{"phase": "fault", "kind": "monitor-fail", "target": "nsa-a", "t": 4.9},
                {"phase": "restore", "fault": "monitor-fail", "target": "nsa-a", "t": 60.0},
                {"phase": "fault", "kind": "halod-stop", "target": "n1", "pid": 1, "t": 4.9},
                {"phase": "restore", "fault": "halod-stop", "target": "n1", "pid": 1, "t": 60.0}]
    assert kinds(nsa_run(tmp_path, ivs, watcher, timeline=timeline))[0] == []
    assert kinds(nsa_run(tmp_path, ivs, watcher, timeline=timeline[2:]))[0] == ["gap"]


def test_an_ocf_si_may_wait_its_stop_timeout_more(tmp_path):
    # After a lease end the other nodes wait the agent's stop timeout (3 s here) before they
    # start the resource: a gap that much longer than MAX_GAP is no violation; one longer is.
    sis = {"ocf": {**OCF["ocf"], "stop_timeout": 3.0}}
    for extra, want in ((2.5, []), (3.5, ["gap"])):
        ivs = {"ocf-a": [("ACTIVE", 1.0, 100, "ocf-csi"), ("END", 5.0, 100, "stop-by-halo-guard", "ocf-csi")],
               "ocf-b": [("ACTIVE", 5.0 + checker.MAX_GAP + extra, 200, "ocf-csi")]}
        k, _, _ = kinds(make_run(tmp_path, ivs, sis=sis, views={"ocf": "ocf-b"}))
        assert k == want, (extra, k)
