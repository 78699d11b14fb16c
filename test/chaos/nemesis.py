# SPDX-License-Identifier: MIT
"""The chaos checker's nemesis: a schedule of faults drawn from the seed alone
(so a seed replays the same kinds, targets and durations in the same order),
carried out on the processes the checker started, every one logged to
timeline.jsonl with its CLOCK_MONOTONIC time.

Faults, each undone after its duration (a kill by a restart, a stop by SIGCONT):
  halod-kill  SIGKILL of a node's halod alone (its components keep running), restarted later
  halod-stop  SIGSTOP of a node's halod
  comp-kill   SIGKILL of a test component (halod restarts it; nothing to undo)
  comp-stop   SIGSTOP of a test component
  crashloop   SIGKILL of a component of a group with a recovery ladder (of another unit of
              its group if it runs nothing), again each time it comes back, up to `count`
              kills within the duration: the ladder climbs (component restart, SU restart,
              SU failover)
  cut         (with --cut only) a node's halod cut off from every etcd member by its
              proxies (connections dropped, new ones black-holed), healed later
  monitor-fail  the external monitor of a monitored unit (of its group's running unit when
              the one drawn runs nothing) fails while DIR/monitor-fail.<unit> exists: the
              file is created, and removed after the duration
At most one etcd member and at most one node (its halod) are disturbed at a time,
so etcd keeps its quorum and every SI has a node left; components any time."""
import heapq
import json
import os
import random
import signal
import threading
import time

from halo_harness import proc_start_time as start_time  # noqa: F401 (test_teardown takes it from here)
from halo_harness import proc_state

KINDS = {  # kind: (weight, what it disturbs, shortest and longest duration in s)
    "halod-kill": (2, "node", 0.3, 4.0),
    "halod-stop": (2, "node", 0.5, 6.0),
    "comp-kill": (3, "comp", 0.0, 0.0),
    "comp-stop": (2, "comp", 0.3, 3.0),
    "etcd-kill": (1.5, "etcd", 1.0, 5.0),
    "etcd-stop": (2, "etcd", 1.0, 8.0),
    "cut": (2, "node", 1.0, 5.0),
    "crashloop": (1.5, "comp", 2.0, 8.0),
    "monitor-fail": (1.5, "comp", 1.0, 4.0),
}
CRASHLOOP_KILLS = (2, 5)  # how many kills a crashloop makes at most
CRASHLOOP_POLL = 0.05  # s between looks for the next process to kill
GAP = (0.5, 3.0)  # between the starts of two faults, s
REST = 1.0  # a node or etcd member rests this long after a fault before the next one on its class


def schedule(seed, seconds, nodes, comps, cut=False, ladder=(), monitored=()):
    """[{"at", "kind", "target", "duration", "pick"}], at relative to the start of the faults
    (and "count" for a crashloop).  A crashloop targets a component of ladder (none without), a
    monitor-fail one of monitored (none without)."""
    rng = random.Random(seed)
    busy = {"node": 0.0, "etcd": 0.0, "comp": 0.0}
    out = []
    t = rng.uniform(*GAP)
    kinds = sorted(k for k in KINDS if (cut or k != "cut") and (ladder or k != "crashloop") and
                   (monitored or k != "monitor-fail"))
    weights = [KINDS[k][0] for k in kinds]
    while t < seconds:
        kind = rng.choices(kinds, weights)[0]
        _, cls, lo, hi = KINDS[kind]
        duration = round(min(rng.uniform(lo, hi), max(seconds - t, 0.0)), 3)
        if cls == "node":
            target = rng.choice(nodes)
        elif cls == "etcd":
            target = rng.choice(["leader", "follower"])
        elif kind == "crashloop":
            target = rng.choice(list(ladder))
        elif kind == "monitor-fail":
            target = rng.choice(list(monitored))
        else:
            target = rng.choice(comps)
        pick = round(rng.random(), 3)  # which follower, when there are two
        extra = {"count": rng.randint(*CRASHLOOP_KILLS)} if kind == "crashloop" else {}
        if busy[cls] <= t:
            out.append({"at": round(t, 3), "kind": kind, "target": target, "duration": duration, "pick": pick,
                        **extra})
            if cls != "comp":
                busy[cls] = t + duration + REST
        t += rng.uniform(*GAP)
    return out




class Nemesis:
    def __init__(self, cluster, plan, log_path):
        self.c = cluster
        self.plan = plan
        self.log = open(log_path, "w")
        self.undo = []  # heap of (time, n, action)
        self.n = 0
        self.counts = {}
        self.crashed = set()
        self.killed = {}  # node: True while its halod is killed by the nemesis
        self.stopping = threading.Event()

    def record(self, **e):
        e.setdefault("t", time.monotonic())
        self.log.write(json.dumps(e) + "\n")
        self.log.flush()
        return e

    def later(self, at, fn):
        self.n += 1
        heapq.heappush(self.undo, (at, self.n, fn))

    def run(self, t_start):
        """Carries out the plan from t_start; returns once it is done (undo steps included)."""
        for step in self.plan:
            self.undo_until(t_start + step["at"])
            if self.stopping.is_set():
                break
            self.notice_crashes()
            try:
                self.inject(step)
            except Exception as e:  # a fault that cannot be carried out is logged, not fatal
                self.record(phase="skipped", kind=step["kind"], target=step["target"], why=f"error: {e!r}")
        self.undo_until(None)

    def notice_crashes(self):
        """Logs a halod that ended without the nemesis's doing (it is not restarted)."""
        for n, h in self.c.halods.items():
            if h.proc and h.proc.poll() is not None and n not in self.crashed and not self.killed.get(n):
                self.crashed.add(n)
                self.record(phase="crash", kind="halod", target=n, pid=h.proc.pid, why=f"exit status {h.proc.returncode}")

    def undo_until(self, until):
        """Runs the undo steps due before until (all of them when until is None), sleeping in between."""
        while True:
            nxt = self.undo[0][0] if self.undo else None
            if until is not None and (nxt is None or nxt > until):
                self.stopping.wait(max(0.0, until - time.monotonic()))
                return
            if nxt is None:
                return
            if not self.stopping.is_set():
                self.stopping.wait(max(0.0, nxt - time.monotonic()))
            _, _, fn = heapq.heappop(self.undo)
            try:
                fn()
            except Exception as e:
                self.record(phase="undo-error", why=repr(e))

    def restore_all(self):
        """Undoes every fault now (SIGCONT, restarts)."""
        self.stopping.set()
        while self.undo:
            _, _, fn = heapq.heappop(self.undo)
            try:
                fn()
            except Exception as e:
                self.record(phase="undo-error", why=repr(e))

    def inject(self, step):
        kind, target, dur = step["kind"], step["target"], step["duration"]
        c = self.c
        if kind.startswith("halod-"):
            h = c.halods[target]
            if not h.proc or h.proc.poll() is not None:
                return self.record(phase="skipped", kind=kind, target=target, why="halod not running")
            pid = h.proc.pid
            if kind == "halod-kill":
                h.remember_children()
                self.killed[target] = True
                h.proc.kill()
                t = time.monotonic()
                h.proc.wait()
                h.log.close()
                self.record(phase="fault", kind=kind, target=target, pid=pid, t=t)

                def restart():
                    h.start(wait=False)
                    self.killed[target] = False
                    self.record(phase="restore", fault=kind, target=target, pid=h.proc.pid)
                self.later(time.monotonic() + dur, restart)
            else:
                os.kill(pid, signal.SIGSTOP)
                self.record(phase="fault", kind=kind, target=target, pid=pid)
                self.later(time.monotonic() + dur, lambda: self.cont(kind, target, pid, start_time(pid)))
        elif kind == "cut":
            c.proxies[target].tell("cut")
            self.record(phase="fault", kind=kind, target=target)

            def heal():
                c.proxies[target].tell("heal")
                self.record(phase="restore", fault=kind, target=target)
            self.later(time.monotonic() + dur, heal)
        elif kind == "crashloop":
            # A cold STANDBY runs nothing: its group's running unit is the one to loop on.
            group = next((units for units in c.groups.values() if target in units), {target: None})
            target = next((u for u in [target, *sorted(group)] if c.watcher.pid(u)), target)
            pid = c.watcher.pid(target)
            if not pid or start_time(pid) is None or proc_state(pid) in (None, "Z"):
                return self.record(phase="skipped", kind=kind, target=target, why="no running process")
            self.record(phase="crashloop", kind=kind, target=target, pid=pid, count=step["count"], duration=dur)
            self.crashloop(target, pid, step["count"], time.monotonic() + dur)
        elif kind == "monitor-fail":
            # The monitor runs on the running unit only (cold STANDBYs run nothing): that one.
            group = next((units for units in c.groups.values() if target in units), {target: None})
            target = next((u for u in [target, *sorted(group)] if c.running_unit(u)), target)
            path = os.path.join(c.dir, f"monitor-fail.{target}")
            if os.path.exists(path):
                return self.record(phase="skipped", kind=kind, target=target, why="its monitor fails already")
            with open(path, "w"):
                pass
            self.record(phase="fault", kind=kind, target=target)

            def fix():
                os.unlink(path)
                self.record(phase="restore", fault=kind, target=target)
            self.later(time.monotonic() + dur, fix)
        elif kind.startswith("comp-"):
            pid = c.watcher.pid(target)
            st = start_time(pid) if pid else None
            if not pid or st is None or proc_state(pid) in (None, "Z"):
                return self.record(phase="skipped", kind=kind, target=target, why="no running process")
            if kind == "comp-kill":
                os.kill(pid, signal.SIGKILL)
                self.record(phase="fault", kind=kind, target=target, pid=pid)
            else:
                os.kill(pid, signal.SIGSTOP)
                self.record(phase="fault", kind=kind, target=target, pid=pid)
                self.later(time.monotonic() + dur, lambda: self.cont(kind, target, pid, st))
        else:
            e = c.etcd
            leader = e.leader()
            live = [i for i, m in enumerate(e.members) if m["proc"] and m["proc"].poll() is None]
            if target == "leader":
                i = leader if leader is not None else live[0]
            else:
                followers = [i for i in live if i != leader]
                i = followers[int(step["pick"] * len(followers))] if followers else live[0]
            m = e.members[i]
            name = m["name"]
            role = "leader" if i == leader else "follower" if leader is not None else "unknown (no leader found)"
            pid = m["proc"].pid
            if kind == "etcd-kill":
                m["proc"].kill()
                t = time.monotonic()
                m["proc"].wait()
                self.record(phase="fault", kind=kind, target=name, role=role, pid=pid, t=t)

                def restart():
                    e.start_member(m)
                    self.record(phase="restore", fault=kind, target=name, pid=m["proc"].pid)
                self.later(time.monotonic() + dur, restart)
            else:
                os.kill(pid, signal.SIGSTOP)
                self.record(phase="fault", kind=kind, target=name, role=role, pid=pid)
                self.later(time.monotonic() + dur, lambda: self.cont(kind, name, pid, start_time(pid)))
        self.counts[kind] = self.counts.get(kind, 0) + 1

    def crashloop(self, target, pid, left, until):
        """SIGKILL of target's process pid, then of each new one as soon as the watcher sees it,
        left kills in all, none after until.  Each kill is logged as a comp-kill (with "left",
        how many the crashloop may still make counting this one)."""
        os.kill(pid, signal.SIGKILL)
        self.record(phase="fault", kind="comp-kill", target=target, pid=pid, left=left)
        if left <= 1:
            return

        def look():
            new = self.c.watcher.pid(target)
            if time.monotonic() >= until or self.stopping.is_set():
                return
            if new and new != pid and proc_state(new) not in (None, "Z"):
                self.crashloop(target, new, left - 1, until)
            else:
                self.later(time.monotonic() + CRASHLOOP_POLL, look)
        self.later(time.monotonic() + CRASHLOOP_POLL, look)

    def cont(self, kind, target, pid, st):
        """SIGCONT of a process the nemesis stopped, if it is still that process."""
        if st is not None and start_time(pid) == st:
            os.kill(pid, signal.SIGCONT)
        self.record(phase="restore", fault=kind, target=target, pid=pid)

    def close(self):
        self.log.close()
