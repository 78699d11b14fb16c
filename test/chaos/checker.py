# SPDX-License-Identifier: MIT
"""The chaos checker's verdict, from the files of a run directory only: the
components' own ACTIVE intervals, the death watcher's log, the nemesis's
timeline, what CDB clients were told was committed, and what the cluster held
at the end.  It does not ask halo whether halo was right.

    /usr/bin/python3 test/chaos/checker.py RUNDIR             # checks a kept run again
    /usr/bin/python3 test/chaos/checker.py RUNDIR --timeline  # faults and ACTIVE intervals in order
    /usr/bin/python3 test/chaos/checker.py RUNDIR --strict    # known gaps count as violations too

Times are CLOCK_MONOTONIC seconds; reports show them relative to the run's t0."""
import bisect
import json
import os
import re
import sys
import time

# The longest an SI may go without an ACTIVE while one of its units is healthy.
# From docs/design.md "Several nodes" and docs/benchmarks.md "Several nodes"
# (lease TTL 1 s, as the cluster here runs): a node failure is noticed when its
# lease expires, the TTL plus up to 500 ms (etcd 3.4 sweeps expired leases twice
# a second; bench/node-failover: max 1.45 s).  An etcd leader lost on the way
# adds one election (--election-timeout 500 ms), and the new leader extends
# every lease by its TTL (1 s); and a lease that ends while etcd cannot vouch
# for how it ended (an etcd member down, or within about 2 s of an election:
# docs/design.md "A lease end etcd cannot vouch for") counts as the node's fence
# only a TTL (1 s) later: 1 + 0.5 + 0.5 + 1 + 1 = 4 s.  That sum has no time for
# the work itself (the store's transactions and watches, halod's decisions, the
# new ACTIVE's start: a non-sa-aware one is spawned only then) on 2 cores that
# run 3 etcd members, 3 halods and 19 components: 1 s more for it.  Gaps of
# 4.1 to 4.5 s after an etcd leader kill on top of a halod kill were seen on a
# slower machine (2026-12-07).  And a node may fence itself twice around one
# leader kill, the second time as it rejoins while the new leader settles
# (CI18, 2026-12-07: n3 fenced at 59.036 and again 1.04 s later; nsa without
# ACTIVE for 5.02 s): 1 s more.  A longer gap while a healthy unit waits is a
# failover that did not happen.
MAX_GAP = 6.0

# A unit counts as healthy once its process has run this long (spawn,
# registration and, for a pool process, its recovery: milliseconds, see
# docs/recovery.md) and was neither stopped nor killed by the nemesis meanwhile.
COMP_SETTLE = 1.0

# A node counts as healthy this long after its halod was restarted or continued
# (or its link to etcd healed): a halod that missed its lease renews or joins
# anew within one TTL (1 s), and its units then restart and register.
NODE_SETTLE = 2.0

# An etcd member counts as back this long after it was restarted or continued
# (it catches up with the leader; an election takes 500 ms).
ETCD_SETTLE = 1.0

# An ACTIVE interval that ends by the process's death as the watcher saw it
# ends at most this late (the watcher runs SCHED_FIFO and wakes on the closed
# connection; a real handover needs at least one etcd round trip, several ms).
# An overlap no longer than this, against such an end, is reported as a note.
WATCH_SLACK = 0.002

# Known gaps (docs/design.md, "Known gaps"): violations that come from a limit halo
# documents, reported apart ("KNOWN GAP", not counted; --strict counts them).  None today.
# unfenced-nsa (a non-SA-aware copy outliving its killed or stopped halod's lease) was one
# until halo-guard fenced such components (docs/design.md, "The lease's fence of non-SA-aware
# and OCF components"); ocf-guard-stop (a cut-off node's guard began the agent's stop at the
# lease deadline, and the stop outlasted the 150 ms before a peer promoted) was one until the
# peers waited the agent's stop timeout after a lease end (cluster-fence.c).  Both are
# overlaps like any other now.
KNOWN_GAPS = {}

# Sampling step of the gap check.
STEP = 0.01


def read_jsonl(path):
    try:
        with open(path) as f:
            return [json.loads(line) for line in f if line.strip()]
    except FileNotFoundError:
        return []


def read_watcher(path):
    """{pid: {"comp", "up", "down"}} from the watcher's log."""
    procs = {}
    try:
        with open(path) as f:
            for line in f:
                w = line.split()
                if len(w) != 4 or w[0] not in ("UP", "DOWN"):
                    continue
                p = procs.setdefault(int(w[2]), {"comp": w[1], "up": None, "down": None})
                p["up" if w[0] == "UP" else "down"] = float(w[3])
    except FileNotFoundError:
        pass
    return procs


def read_interval_lines(path):
    """[(kind, t, pid, what, csi)] of one component's intervals file: "ACTIVE <ns> <pid> <csi>",
    "END <ns> <pid> <why> [<csi>]" (without a CSI: every CSI the pid held), and an OCF
    agent's "STOP <ns> <id> <caller>" (its stop began; the END follows once it is done)."""
    out = []
    try:
        with open(path) as f:
            for line in f:
                w = line.split()
                if len(w) >= 3 and w[0] in ("ACTIVE", "END", "STOP"):
                    what = w[3] if len(w) > 3 else "-"
                    csi = what if w[0] == "ACTIVE" else w[4] if w[0] == "END" and len(w) > 4 else None
                    out.append((w[0], int(w[1]) / 1e9, int(w[2]), what, csi))
    except FileNotFoundError:
        pass
    return out


# "Recovery of 'X': A -> B" in a halod's log (recovery-local.c): X's recovery
# state on its own node.  While it is not idle, the AMF gives X's unit no
# ACTIVE (docs/recovery.md, "Who may be ACTIVE"): failed, refused (the pool
# lost more than it tolerates, newest data first), transient, recovering.
RECOVERY_LINE = re.compile(r"^(\d\d):(\d\d):(\d\d)\.(\d{3}) \S+ info: Recovery of '([^']+)': \w+ -> (\w+)")


def read_recovery(path, wall_t0, t0):
    """{process: [(t, state)]} from one halod log, on the run's clock: the log's
    wall-clock times of day, taken on the day of wall_t0."""
    out = {}
    if not wall_t0:
        return out
    lt = time.localtime(wall_t0)
    tod0 = lt.tm_hour * 3600 + lt.tm_min * 60 + lt.tm_sec + wall_t0 % 1
    try:
        with open(path, errors="replace") as f:
            for line in f:
                m = RECOVERY_LINE.match(line)
                if not m:
                    continue
                tod = int(m[1]) * 3600 + int(m[2]) * 60 + int(m[3]) + int(m[4]) / 1000
                d = tod - tod0
                if d < -43200:
                    d += 86400  # past midnight
                out.setdefault(m[5], []).append((t0 + d, m[6]))
    except FileNotFoundError:
        pass
    return out


def kill_times(timeline):
    """{pid: time of the nemesis's SIGKILL} for the components it killed."""
    return {e["pid"]: e["t"] for e in timeline if e.get("kind") == "comp-kill" and e.get("pid")}


def build_intervals(lines, procs, kills, t_end):
    """One component's ACTIVE intervals: [{"start", "end", "pid", "csi", "end_by", "stop"}], one
    per CSI it held.  An interval without its END line ends when its process died (the
    nemesis's SIGKILL, or the watcher's view of the death, whichever is first), or is still
    open at t_end.  "stop" is (time, caller) of the OCF stop that began before its END, or None.
    For an OCF resource, pass no procs and no kills: its id is no process."""
    out = []
    open_ = {}  # (pid, csi) -> interval
    for kind, t, pid, what, csi in lines:
        if kind == "ACTIVE":
            open_.setdefault((pid, csi), {"start": t, "end": None, "pid": pid, "csi": csi, "end_by": None,
                                          "stop": None})
            continue
        for key in [k for k in open_ if k[0] == pid and (csi is None or k[1] == csi)]:
            if kind == "STOP":
                open_[key]["stop"] = open_[key]["stop"] or (t, what)
                continue
            iv = open_.pop(key)
            iv["end"], iv["end_by"] = t, "END " + what
            out.append(iv)
    for (pid, _), iv in open_.items():
        ends = []
        if pid in kills and kills[pid] >= iv["start"]:
            ends.append((kills[pid], "SIGKILL by the nemesis"))
        down = procs.get(pid, {}).get("down")
        if down is not None and down >= iv["start"]:
            ends.append((down, "death seen by the watcher"))
        if ends:
            iv["end"], iv["end_by"] = min(ends)
        else:
            iv["end"], iv["end_by"] = t_end, "open at the end"
        out.append(iv)
    out = [iv for iv in out if iv["start"] < t_end]
    for iv in out:  # what happened after t_end (the teardown) is not judged
        if iv["end"] > t_end:
            iv["end"], iv["end_by"] = t_end, "open at the end"
    return sorted(out, key=lambda i: i["start"])


class Faults:
    """The nemesis's timeline as windows: when each target was disturbed."""

    def __init__(self, timeline, t_end):
        self.windows = []  # (kind, target, start, end_or_None, restored_at)
        opened = {}
        def key(kind, e):
            # Two stops of one unit may overlap (halod killed the first stopped process and
            # restarted it): those are told apart by pid.  A restart has a new pid.
            return (kind, e["target"], e.get("pid") if kind == "comp-stop" else None)
        for e in timeline:
            if e.get("phase") == "fault":
                w = [e["kind"], e["target"], e["t"], None]
                self.windows.append(w)
                if e["kind"] != "comp-kill":
                    opened[key(e["kind"], e)] = w
            elif e.get("phase") == "restore":
                w = opened.pop(key(e["fault"], e), None)
                if w:
                    w[3] = e["t"]
        for w in self.windows:
            if w[3] is None:
                w[3] = t_end if w[0] != "comp-kill" else w[2]

    def node_disturbed(self, node, t):
        return any(w[1] == node and w[0] in ("halod-kill", "halod-stop", "cut") and
                   w[2] <= t <= w[3] + NODE_SETTLE for w in self.windows)

    def comp_disturbed(self, comp, t):
        return any(w[1] == comp and w[0] in ("comp-kill", "comp-stop", "monitor-fail") and
                   w[2] <= t <= w[3] + COMP_SETTLE for w in self.windows)

    def etcd_down(self, t):
        """How many etcd members are disturbed at t."""
        return len({w[1] for w in self.windows if w[0] in ("etcd-kill", "etcd-stop") and
                    w[2] <= t <= w[3] + ETCD_SETTLE})

    def before(self, t, span=10.0):
        """The faults that started or ended in the span before t."""
        return [w for w in self.windows if t - span <= w[2] <= t or t - span <= w[3] <= t]


class Run:
    """A run directory, read."""

    def __init__(self, d):
        self.dir = d
        with open(os.path.join(d, "meta.json")) as f:
            self.meta = json.load(f)
        self.t0 = self.meta["t0"]
        self.t_end = self.meta["t_end"]
        self.timeline = read_jsonl(os.path.join(d, "timeline.jsonl"))
        self.procs = read_watcher(os.path.join(d, "watcher.log"))
        kills = kill_times(self.timeline)
        ocf = {c for si in self.meta["sis"].values() if si.get("type") == "ocf" for c in si["units"]}
        self.intervals = {}
        for comp in self.meta["comps"]:
            lines = read_interval_lines(os.path.join(d, f"comp.{comp}.intervals"))
            self.intervals[comp] = build_intervals(lines, {} if comp in ocf else self.procs,
                                                   {} if comp in ocf else kills, self.t_end)
        self.faults = Faults(self.timeline, self.t_end)
        self._si_ivs = {}
        self.recovery = {}
        for node in self.nodes():
            self.recovery.update(read_recovery(os.path.join(d, f"halod-{node}.log"), self.meta.get("wall_t0"),
                                               self.t0))

    def free_units(self, si, t):
        """The healthy units (healthy_units()) that may take si at t: with a max-active-sis-per-su
        ("max_active"), those holding fewer of its group's SIs ACTIVE, or si itself."""
        units = self.healthy_units(si, t)
        cap = self.meta["sis"][si].get("max_active")
        if not cap:
            return units
        others = [s for s in self.group_sis(si) if s != si]
        return [u for u in units if self.load(u, [si], t) or self.load(u, others, t) < cap]

    def si_intervals(self, si):
        """[(interval, unit)] of si's CSIs (every interval of its units when it names none), by start."""
        if si not in self._si_ivs:
            d = self.meta["sis"][si]
            csis = d.get("csis")
            ivs = [(iv, comp) for comp in d["units"] for iv in self.intervals[comp] if not csis or iv["csi"] in csis]
            self._si_ivs[si] = sorted(ivs, key=lambda x: x[0]["start"])
        return self._si_ivs[si]

    def group_sis(self, si):
        """The SIs of si's group (si alone when the meta names no group)."""
        g = self.meta["sis"][si].get("group")
        return [s for s, d in self.meta["sis"].items() if g and d.get("group") == g] or [si]

    def load(self, comp, sis, t):
        """How many of sis comp holds ACTIVE at t (by its intervals)."""
        return sum(1 for si in sis if any(c == comp and iv["start"] <= t < iv["end"]
                                          for iv, c in self.si_intervals(si)))

    def nodes(self):
        return sorted({n for d in self.meta["sis"].values() for n in d["units"].values()})

    def held(self, comp, t):
        """Whether the pool's rules keep comp's unit from ACTIVE at t: its recovery,
        as its own halod logged it, is not over (not idle)."""
        state = None
        for ts, st in self.recovery.get(comp, ()):
            if ts > t:
                break
            state = st
        return state is not None and state != "idle"

    def rel(self, t):
        return f"{t - self.t0:.3f}"

    def describe_faults(self, t, span=10.0):
        out = []
        for kind, target, s, e in self.faults.before(t, span):
            dur = "" if kind == "comp-kill" else f" until {self.rel(e)}"
            out.append(f"{kind} {target} at {self.rel(s)}{dur}")
        return out or ["no fault in the 10 s before"]

    def healthy_units(self, si, t):
        """The units of si that are healthy at t (see COMP_SETTLE, NODE_SETTLE, ETCD_SETTLE), and
        that the pool's rules let be ACTIVE (held())."""
        if self.faults.etcd_down(t) > 1:
            return []
        units = []
        d = self.meta["sis"][si]
        for comp, node in d["units"].items():
            if self.faults.node_disturbed(node, t) or self.faults.comp_disturbed(comp, t) or self.held(comp, t):
                continue
            # A cold STANDBY (non-SA-aware) runs nothing: it is ready as long as its node is.
            if d.get("cold") or any(p["comp"] == comp and p["up"] is not None and p["up"] + COMP_SETTLE <= t and
                                    (p["down"] is None or p["down"] > t) for p in self.procs.values()):
                units.append(comp)
        return units


def allowed(d):
    """How many ACTIVEs an SI (its meta entry) has at most, and wants when its units are
    healthy: 1 (2N and the other one-ACTIVE models), or N-way-active's active-assignments."""
    return d.get("actives", 1)


def describe_iv(run, iv, comp):
    return f"{comp} (pid {iv['pid']}) ACTIVE {run.rel(iv['start'])}-{run.rel(iv['end'])} ({iv['end_by']})"


def excess(ivs, k):
    """[(from, to, members, n)]: the spans in which more than k of ivs [(interval, x)] are open
    at once (an end and a start at one instant are a handover, not both open), members the
    indexes of every interval open in the span, n the one whose end closed it."""
    events = sorted([(iv["start"], 1, n) for n, (iv, _) in enumerate(ivs)] +
                    [(iv["end"], 0, n) for n, (iv, _) in enumerate(ivs)])
    live, cur, out = set(), None, []
    for t, starts, n in events:
        if starts:
            live.add(n)
            if len(live) > k:
                cur = (t, set(live)) if cur is None else (cur[0], cur[1] | live)
            continue
        live.discard(n)
        if cur is not None and len(live) <= k:
            out.append((cur[0], t, sorted(cur[1]), n))
            cur = None
    return out


def check_overlaps(run):
    """No SI has more ACTIVE intervals at once than its model allows (allowed()), and no unit
    holds one SI twice at once (two processes of it ACTIVE: the old one not fenced)."""
    violations, notes = [], []
    for si, d in run.meta["sis"].items():
        k = allowed(d)
        ivs = run.si_intervals(si)
        found = []  # (start, duration, text, the interval whose end closed it)
        for i, (a, ca) in enumerate(ivs):
            for b, cb in ivs[i + 1:]:
                if b["start"] >= a["end"]:
                    break
                if k > 1 and ca != cb:
                    continue  # the count below judges these
                overlap = min(a["end"], b["end"]) - b["start"]
                twice = f" (unit {ca} holds it twice)" if ca == cb else ""
                found.append((b["start"], overlap,
                              f"OVERLAP si {si}{twice}: {ca} (pid {a['pid']}) ACTIVE {run.rel(a['start'])}-"
                              f"{run.rel(a['end'])} ({a['end_by']}) and {cb} (pid {b['pid']}) ACTIVE from "
                              f"{run.rel(b['start'])}-{run.rel(b['end'])}: {overlap * 1000:.1f} ms both ACTIVE",
                              a if a["end"] <= b["end"] else b, a))
        if k > 1:
            for t0, t, members, n in excess(ivs, k):
                what = "; ".join(describe_iv(run, ivs[m][0], ivs[m][1]) for m in members)
                found.append((t0, t - t0, f"OVERLAP si {si}: more than its {k} ACTIVE at once "
                                          f"({d.get('model', '2N')}) for {(t - t0) * 1000:.1f} ms from "
                                          f"{run.rel(t0)}: {what}", ivs[n][0], ivs[members[0]][0]))
        for t, overlap, text, ended, first in found:
            entry = {"kind": "overlap", "si": si, "text": text, "t": t, "context": run.describe_faults(t)}
            if overlap <= WATCH_SLACK and ended["end_by"] == "death seen by the watcher":
                notes.append(entry)
            else:
                violations.append(entry)
    return violations + check_capacity(run), notes


def check_capacity(run):
    """No unit holds more ACTIVE SIs of its group at once than the group's max-active-sis-per-su
    ("max_active" in the meta)."""
    out, seen = [], set()
    for si, d in run.meta["sis"].items():
        cap, group = d.get("max_active"), d.get("group")
        if not cap or group in seen:
            continue
        seen.add(group)
        sis = run.group_sis(si)
        for comp in d["units"]:
            ivs = [(iv, s) for s in sis for iv, c in run.si_intervals(s) if c == comp]
            for t0, t, members, _ in excess(ivs, cap):
                what = "; ".join(f"{ivs[m][1]} (pid {ivs[m][0]['pid']}) {run.rel(ivs[m][0]['start'])}-"
                                 f"{run.rel(ivs[m][0]['end'])}" for m in members)
                out.append({"kind": "capacity", "si": si, "t": t0, "context": run.describe_faults(t0),
                            "text": f"CAPACITY unit {comp} of group {group} holds more than its "
                                    f"max-active-sis-per-su {cap} ACTIVE SIs at once for "
                                    f"{(t - t0) * 1000:.1f} ms from {run.rel(t0)}: {what}"})
    return out


def active_counts(ivs, t_from, t_to):
    """[(start, end, n)]: how many of ivs [(start, end)] are open, piecewise, over [t_from, t_to]."""
    points = sorted({t_from, t_to, *(x for iv in ivs for x in iv if t_from < x < t_to)})
    out = []
    for a, b in zip(points, points[1:]):
        n = sum(1 for s, e in ivs if s <= a and e > a)
        if out and out[-1][2] == n:
            out[-1] = (out[-1][0], b, n)
        else:
            out.append((a, b, n))
    return out


def check_gaps(run):
    """No SI with fewer ACTIVEs than it wants (allowed()) for longer than MAX_GAP while
    enough healthy units wait: none ("gap") while one does, fewer than k ("short", N-way-active)
    while k do."""
    violations = []
    start = run.meta["t_check"]
    for si, d in run.meta["sis"].items():
        k = allowed(d)
        ivs = [(iv["start"], iv["end"]) for iv, _ in run.si_intervals(si)]
        counts = active_counts(ivs, start, run.t_end)
        starts = [a for a, _, _ in counts]
        # Spans with fewer than k ACTIVEs (merged), longer than MAX_GAP: sampled.
        spans = []
        for a, b, n in counts:
            if n >= k:
                continue
            if spans and spans[-1][1] == a:
                spans[-1][1] = b
            else:
                spans.append([a, b])
        # An OCF SI whose ACTIVE's node lost its lease waits its stop timeout more (cluster-fence.c).
        max_gap = MAX_GAP + d.get("stop_timeout", 0.0)
        for g0, g1 in spans:
            if g1 - g0 <= max_gap:
                continue
            best, run_start, low, t = (0.0, None, None, k), None, k, g0
            while t <= g1:
                n = counts[max(0, bisect.bisect_right(starts, t) - 1)][2]
                if n < min(k, len(run.free_units(si, t))):
                    if run_start is None:
                        run_start, low = t, n
                    low = min(low, n)
                    if t - run_start > best[0]:
                        best = (t - run_start, run_start, t, low)
                else:
                    run_start = None
                t += STEP
            if best[0] <= max_gap:
                continue
            healthy = run.free_units(si, best[1] + max_gap)
            waiting = (f"healthy unit(s) waiting {run.rel(best[1])}-{run.rel(best[2])} ({best[0]:.2f} s > "
                       f"{max_gap:g} s), e.g. {', '.join(healthy)}")
            if best[3] == 0:
                text = f"NO ACTIVE si {si}: from {run.rel(g0)} to {run.rel(g1)} ({g1 - g0:.2f} s); {waiting}"
                kind = "gap"
            else:
                text = (f"SHORT si {si}: {best[3]} ACTIVE of its {k} ({d.get('model', '2N')}) from {run.rel(g0)} "
                        f"to {run.rel(g1)} ({g1 - g0:.2f} s); {waiting}")
                kind = "short"
            violations.append({"kind": kind, "si": si, "text": text, "t": g0, "context": run.describe_faults(g0)})
    return violations


def pool_holds(run, si):
    """Why every unit of si is kept from ACTIVE at the end by its pool's rules, as halo
    states it (a pool past its tolerance waits for the operator: docs/recovery.md), or None."""
    pools = run.meta.get("final", {}).get("pools", {})
    units = run.meta["sis"][si]["units"]
    why = []
    for comp in units:
        st = pools.get(comp)
        if not st or st.get("state") == "ONLINE" or not st.get("reason"):
            return None
        why.append(f"{comp} {st['state']}: {st['reason']}")
    return "; ".join(why) if why else None


def check_end(run):
    """At the end: every SI has one running ACTIVE, and every halod shows that one.  An SI
    whose every unit its pool holds back, with the reason stated, may end without one
    (a note)."""
    violations, notes = [], []
    final = run.meta.get("final", {})
    for si, d in run.meta["sis"].items():
        active = sorted(comp for iv, comp in run.si_intervals(si) if iv["end_by"] == "open at the end")
        held = not active and pool_holds(run, si)
        if held:
            notes.append({"kind": "end", "si": si, "t": run.t_end, "context": [],
                          "text": f"END si {si}: no ACTIVE at the end, every unit held by its pool ({held})"})
            continue
        want = min(allowed(d), len(d["units"]))
        if len(active) != want:
            violations.append({"kind": "end", "si": si, "t": run.t_end, "context": [],
                               "text": f"END si {si}: {len(active)} running ACTIVE components at the end {active}, "
                                       f"not {want}"})
            continue
        for node, view in final.get("views", {}).items():
            shown = view.get(si)
            shown = sorted(shown) if isinstance(shown, list) else [shown] if shown else []
            if shown != active:
                violations.append({"kind": "view", "si": si, "t": run.t_end, "context": [],
                                   "text": f"VIEW si {si}: halod {node} shows ACTIVE "
                                           f"{', '.join(shown) if shown else None!r}, the running "
                                           f"ACTIVE component{'s are' if len(active) > 1 else ' is'} "
                                           f"{', '.join(active)}"})
    return violations, notes


def cdb_databases(run):
    """[(name, its final {"primary", "paths"} or {"error"}, its writer's log)]: the main database's
    (cdb.jsonl), then each cdb-roles group's with a subtree of its own (cdb-<group>.jsonl)."""
    final = run.meta.get("final", {})
    out = [("", final["cdb"], "cdb.jsonl")] if final.get("cdb") is not None else []
    return out + [(f"{g}'s ", f, f"cdb-{g}.jsonl") for g, f in sorted(final.get("cdb_groups", {}).items())]


def check_cdb(run):
    """Every commit a client was told was committed is on the final primary, of each database."""
    return [v for name, final, log in cdb_databases(run) for v in check_cdb_one(run, name, final, log)]


def check_cdb_one(run, name, final, log):
    acks = [e for e in read_jsonl(os.path.join(run.dir, log)) if e["ok"]]
    if final.get("error"):
        return [{"kind": "cdb", "si": "-", "t": run.t_end, "context": [], "text": f"CDB {name}{final['error']}"}]
    held = set(final["paths"])
    # Episodes: runs of lost acknowledgements, in the order the client got them.
    episodes, cur = [], None
    for e in sorted(acks, key=lambda e: e["t"]):
        if e["path"] in held:
            cur = None
        elif cur and cur[-1]["node"] == e["node"]:
            cur.append(e)
        else:
            cur = [e]
            episodes.append(cur)
    out = []
    for es in episodes:
        text = (f"CDB {name}LOST {len(es)} acknowledged commit(s) made through {es[0]['node']} from {run.rel(es[0]['t'])} "
                f"to {run.rel(es[-1]['t'])} ({es[0]['path']} .. {es[-1]['path']}) are missing on the final "
                f"primary {final['primary']}")
        out.append({"kind": "cdb", "si": "-", "t": es[0]["t"], "text": text, "context": run.describe_faults(es[0]["t"])})
    return out


def check_pools(run):
    """Every pool process ends ONLINE, or halo states why it is not; and not every one that is
    not ONLINE is refused only because the others are not ONLINE either (a pool that can never
    recover by itself, issue 14 point 10)."""
    out = []
    pools = run.meta.get("final", {}).get("pools", {})
    for proc, st in pools.items():
        if st.get("state") == "ONLINE" or st.get("reason"):
            continue
        out.append({"kind": "pool", "si": "-", "t": run.t_end, "context": [],
                    "text": f"POOL process:{proc} ends {st.get('state')!r} with no reason stated "
                            f"(its halod's recovery state: {st.get('recovery')!r})"})
    # A whole pool down, each member refused for the others' failures: newest data first
    # must let one through.  (Past its tolerance with members still ONLINE, a pool waits
    # for the operator's recover --force, with the reason stated: docs/recovery.md.)
    by_pool = {}
    for proc, st in pools.items():
        by_pool.setdefault((st.get("recovery") or {}).get("pool"), {})[proc] = st
    for members in by_pool.values():
        stuck = {p: st for p, st in members.items() if st.get("state") != "ONLINE"}
        if stuck and len(stuck) == len(members) and \
                all(re.search(r"which tolerates|, past \d", st.get("reason") or "") for st in stuck.values()):
            out.append({"kind": "pool", "si": "-", "t": run.t_end, "context": [],
                        "text": f"POOL STUCK: every pool process ({', '.join(sorted(stuck))}) is refused its "
                                f"recovery because of the others' failures: none can ever recover; "
                                f"e.g. {next(iter(stuck))}: {next(iter(stuck.values()))['reason']}"})
    return out


def check_settle(run):
    """(violations, notes): a halod whose view did not settle; an SI it shows without ACTIVE
    because its pool holds every unit back (pool_holds()) is a note."""
    v, notes = [], []
    for why in run.meta.get("final", {}).get("unsettled", []):
        m = re.search(r" sees SI (\S+) active=None ", why)
        held = m and m.group(1) in run.meta["sis"] and pool_holds(run, m.group(1))
        (notes if held else v).append({"kind": "settle", "si": m.group(1) if m else "-", "t": run.t_end,
                                       "context": [], "text": f"SETTLE {why}" + (" (held by its pool)" if held else "")})
    return v, notes


def check_teardown(run):
    """A halod that crashed (during the run or at the final SIGTERM) is a violation; processes
    left behind at the final SIGTERM are notes."""
    v, notes = [], []
    for item in run.meta.get("final", {}).get("teardown", []):
        what, text = ("crash", item) if isinstance(item, str) else item
        e = {"kind": what, "si": "-", "t": run.t_end, "context": [], "text": f"{what.upper()} {text}"}
        (v if what == "crash" else notes).append(e)
    return v, notes


def check(run, strict=False):
    """(violations, notes), each a list of dicts with "kind" and "text".  A violation that is a
    known gap (KNOWN_GAPS; it has "known") is a note unless strict."""
    overlaps, notes = check_overlaps(run)
    crashes, leftovers = check_teardown(run)
    end, end_notes = check_end(run)
    settle, settle_notes = check_settle(run)
    v = overlaps + check_gaps(run) + end + check_cdb(run) + check_pools(run) + settle + crashes
    known = [] if strict else [x for x in v if x.get("known")]
    return [x for x in v if x not in known], notes + end_notes + settle_notes + leftovers + known


# The recovery ladder's rungs as the halods log them (amf-ladder.c): "...: component-restart
# 1/2", "... escalated to su-restart (...)", "... escalated to su-failover (...)".
LADDER_LINE = re.compile(r"(?:\): (component-restart) \d+/\d+$|escalated to (su-restart|su-failover) )")


def ladder_rungs(run):
    """{rung: how many times} over every halod's log."""
    out = {}
    for node in run.nodes():
        try:
            with open(os.path.join(run.dir, f"halod-{node}.log"), errors="replace") as f:
                for line in f:
                    m = LADDER_LINE.search(line.rstrip("\n"))
                    if m:
                        rung = m[1] or m[2]
                        out[rung] = out.get(rung, 0) + 1
        except FileNotFoundError:
            pass
    return out


def summary(run, violations, notes):
    """The summary lines of a run."""
    m = run.meta
    kinds = {}
    for e in run.timeline:
        if e.get("phase") in ("fault", "crashloop"):
            kinds[e["kind"]] = kinds.get(e["kind"], 0) + 1
    looped = sum(1 for e in run.timeline if e.get("phase") == "fault" and "left" in e)
    if looped:
        kinds["comp-kill"] = f"{kinds['comp-kill']} ({looped} in crashloops)"
    skipped = sum(1 for e in run.timeline if e.get("phase") == "skipped")
    n_iv = sum(len(v) for v in run.intervals.values())
    cdb = []
    for name, _, log in cdb_databases(run):
        acks = read_jsonl(os.path.join(run.dir, log))
        cdb.append(f"{name or 'main: '}{sum(1 for a in acks if a['ok'])} commits acknowledged, "
                   f"{sum(1 for a in acks if not a['ok'])} refused or failed")
    rungs = ladder_rungs(run)
    wall = ""
    if m.get("wall_t0"):
        ms = int(m["wall_t0"] % 1 * 1000)
        wall = f"; times are s after t0 = {time.strftime('%H:%M:%S', time.localtime(m['wall_t0']))}.{ms:03d} " \
               "(the halods' log clock)"
    lines = [
        f"seed {m['seed']}, {m['seconds']} s of faults, {m['t_end'] - m['t0']:.1f} s in all{wall}",
        "faults: " + (", ".join(f"{k} {n}" for k, n in sorted(kinds.items())) or "none") +
        (f" ({skipped} skipped: target not running)" if skipped else ""),
        f"intervals: {n_iv} ACTIVE intervals of {len(m['comps'])} components over {len(m['sis'])} SIs",
        "cdb: " + ("; ".join(cdb) or "not part of this run"),
        f"pools: {len(m.get('final', {}).get('pools', {}))} pool processes checked",
        "ladder: " + (", ".join(f"{k} {n}" for k, n in sorted(rungs.items())) or "no rung taken") +
        " (the halods' logs)",
        f"violations: {len(violations)}" + (f" (and {len(notes)} notes)" if notes else "") +
        (f"; {n_known} known gap(s) not counted" if (n_known := sum(1 for x in notes if x.get("known"))) else ""),
    ]
    for v in violations + notes:
        lines.append(("  NOTE " if v in notes else "  ") + v["text"])
        for c in v["context"]:
            lines.append("      after: " + c)
    return lines


def timeline(run):
    """Every fault, restore and ACTIVE interval, in time order, relative to t0."""
    rows = []
    for e in run.timeline:
        what = e.get("fault", e.get("kind", ""))
        rows.append((e["t"], f"{e['phase']:8} {what} {e.get('target', '')} {e.get('role', '')} "
                             f"pid {e.get('pid', '-')} {e.get('why', '')}".rstrip()))
    for si in run.meta["sis"]:
        for iv, comp in run.si_intervals(si):
            rows.append((iv["start"], f"ACTIVE   {si}: {comp} pid {iv['pid']} until {run.rel(iv['end'])} "
                                      f"({iv['end_by']})"))
            if iv["stop"]:
                rows.append((iv["stop"][0], f"stop     {si}: {comp} pid {iv['pid']} begun by {iv['stop'][1]}"))
            rows.append((iv["end"], f"ended    {si}: {comp} pid {iv['pid']} ({iv['end_by']})"))
    for pid, p in sorted(run.procs.items()):
        if p["down"] is not None:
            rows.append((p["down"], f"died     {p['comp']} pid {pid}"))
    return [f"{run.rel(t):>9} {text}" for t, text in sorted(rows, key=lambda r: r[0])]


def main():
    run = Run(sys.argv[1])
    if "--timeline" in sys.argv[2:]:
        print("\n".join(timeline(run)))
        return
    v, notes = check(run, strict="--strict" in sys.argv[2:])
    print("\n".join(summary(run, v, notes)))
    sys.exit(1 if v else 0)


if __name__ == "__main__":
    main()
