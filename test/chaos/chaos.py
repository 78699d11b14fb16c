# SPDX-License-Identifier: MIT
"""halo's chaos checker: a 3-node cluster over 3 etcd members, a seeded nemesis,
and a checker that judges from the components' own logs (see README.md).

    test/chaos/run [--seconds N] [--seed S] [--keep] [--dir DIR]

Prints the seed first.  Exits 0 when no violation was found, 1 when some were
(the run directory, with every halod's and etcd member's log, is kept and
printed), 2 when the cluster could not be set up, 3 when the checker itself
failed, 128 + N when stopped by signal N (SIGTERM, SIGINT, SIGHUP).  Every
process of the run is stopped and the OCF agent's directory removed on every
one of those exits."""
import argparse
import json
import os
import random
import shutil
import signal
import sys
import tempfile
import time
import traceback

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)

import checker  # noqa: E402
import cluster as chaos_cluster  # noqa: E402  (puts test/integration on the path)
import nemesis  # noqa: E402
from halo_harness import become_subreaper, descendants  # noqa: E402

SETUP_TIMEOUT = 60  # s for the cluster to settle before the faults
SETTLE_TIMEOUT = 60  # s for it to settle again once every fault is undone


def parse():
    ap = argparse.ArgumentParser(description="halo's chaos checker")
    ap.add_argument("--seconds", type=float, default=120, help="how long the nemesis injects faults (default 120)")
    ap.add_argument("--seed", type=int, default=None, help="the nemesis's seed (default: random, printed)")
    ap.add_argument("--keep", action="store_true", help="keep the run directory even when nothing was found")
    ap.add_argument("--dir", default=None, help="where to make the run directory (default: $TMPDIR or /tmp)")
    ap.add_argument("--cut", action="store_true",
                    help="every halod reaches etcd through proxies, and the nemesis also cuts nodes off")
    ap.add_argument("--plan", action="store_true", help="print the seed's fault schedule and exit")
    ap.add_argument("--strict", action="store_true",
                    help="count the known gaps (checker.KNOWN_GAPS) as violations too")
    return ap.parse_args()


class Stopped(BaseException):
    """SIGTERM, SIGINT or SIGHUP arrived: the run stops, cleans up, and exits 128 + the signal."""

    def __init__(self, signum):
        super().__init__(signum)
        self.signum = signum


STOP_SIGNALS = (signal.SIGTERM, signal.SIGINT, signal.SIGHUP)


def on_signal(signum, frame):
    for s in STOP_SIGNALS:  # the clean-up that follows is not interrupted by a second one
        signal.signal(s, signal.SIG_IGN)
    raise Stopped(signum)


def sweep(timeout=10):
    """SIGKILLs every process of the run and reaps it: they are all our descendants (we are
    their subreaper, so the orphans of a killed halod are too), by pid.  Rounds until none is
    left, zombies included (a halod restarts a component until it is killed itself); returns
    the pids still there after timeout."""
    deadline = time.monotonic() + timeout
    while True:
        left = descendants(os.getpid())
        for p in left:
            try:
                os.kill(p, signal.SIGKILL)
            except OSError:
                pass
        while True:
            try:
                if os.waitpid(-1, os.WNOHANG)[0] == 0:
                    break
            except ChildProcessError:
                break
        if not left or time.monotonic() > deadline:
            return sorted(descendants(os.getpid()))
        time.sleep(0.02)


def say(text):
    """Prints text; a reader that went away (a killed pipeline) does not stop the clean-up."""
    try:
        print(text, flush=True)
    except OSError:
        pass


def main():
    a = parse()
    seed = a.seed if a.seed is not None else random.SystemRandom().randrange(1, 2**31)
    replay = f"test/chaos/run --seconds {a.seconds:g} --seed {seed} --cut" if a.cut else \
        f"make chaos SECONDS={a.seconds:g} SEED={seed}"
    print(f"chaos: seed {seed} (replay: {replay})", flush=True)
    comps = [u for units in chaos_cluster.GROUPS.values() for u in units]
    # The processes the nemesis may kill or stop (an OCF resource is none), and the units whose monitor it breaks.
    procs = [u for g, units in chaos_cluster.GROUPS.items() if chaos_cluster.MODELS[g]["type"] != "ocf" for u in units]
    ladder = [u for g in sorted(chaos_cluster.LADDER) for u in chaos_cluster.GROUPS[g]]
    monitored = [u for g in sorted(chaos_cluster.MONITORED) for u in chaos_cluster.GROUPS[g]]
    plan = nemesis.schedule(seed, a.seconds, list(chaos_cluster.NODES), procs, cut=a.cut, ladder=ladder,
                            monitored=monitored)
    if a.plan:
        for s in plan:
            print(json.dumps(s))
        return 0
    # Held until the try below, where a stop signal cleans up (its handler is in place before
    # the run directory exists, and no child inherits the mask: none is started before).
    signal.pthread_sigmask(signal.SIG_BLOCK, STOP_SIGNALS)
    for s in STOP_SIGNALS:
        signal.signal(s, on_signal)
    d = tempfile.mkdtemp(prefix=f"halo-chaos-{seed}-", dir=a.dir)
    tempfile.tempdir = d  # the harness's halods and etcd make their directories in here
    print(f"chaos: run directory {d}", flush=True)
    become_subreaper()
    # Whatever happens below, every process of the run ends and the OCF agent's directory goes;
    # the run directory stays when it holds a finding (violations, a cluster that would not
    # set up, an error of the checker's own) or with --keep.
    keep = [a.keep]
    try:
        try:
            signal.pthread_sigmask(signal.SIG_UNBLOCK, STOP_SIGNALS)
            rc = run(a, seed, plan, comps, d, keep)
        except Exception:
            say("chaos: the checker failed:\n" + traceback.format_exc())
            keep[0] = True
            rc = 3
        finally:
            for s in STOP_SIGNALS:  # nothing interrupts the clean-up below
                signal.signal(s, signal.SIG_IGN)
    except Stopped as e:  # on_signal raises it once at most: it ignores the signals that follow
        say(f"chaos: stopped by {signal.Signals(e.signum).name}; stopping every process of the run")
        rc = 128 + e.signum
    left = sweep()
    shutil.rmtree(os.path.join(chaos_cluster.OCF_RESOURCE_D, chaos_cluster.ocf_provider()), ignore_errors=True)
    if left:
        say(f"chaos: processes that would not end: {left}")
        rc = rc or 3
    if keep[0]:
        say(f"chaos: run directory kept: {d} (halod-N.log, etcd-mN.log, timeline.jsonl, comp.*.intervals, "
            "watcher.log, cdb.jsonl, report.txt; checker.py DIR --timeline)")
    else:
        shutil.rmtree(d, ignore_errors=True)
    return rc


def run(a, seed, plan, comps, d, keep):
    """The run itself: sets the cluster up, injects the plan, stops the cluster and judges;
    returns the exit status.  Sets keep[0] when the run directory holds a finding."""
    with open(os.path.join(d, "plan.jsonl"), "w") as f:
        f.writelines(json.dumps(s) + "\n" for s in plan)
    try:
        c = chaos_cluster.Cluster(d, cut=a.cut)
    except PermissionError as e:  # the OCF agent goes under /usr/lib/ocf/resource.d
        print(f"chaos: cannot set the cluster up: {e} (the run needs root)")
        return 2
    wall_t0 = time.time() - (time.monotonic() - c.t0)  # the halods' logs show wall-clock times
    meta = {"seed": seed, "seconds": a.seconds, "cut": a.cut, "t0": c.t0, "wall_t0": wall_t0, "comps": comps,
            "sis": chaos_cluster.si_meta(),
            "halod_dirs": {}}
    nem = None
    writers = []
    try:
        c.start()
        meta["halod_dirs"] = {n: h.dir for n, h in c.halods.items()}
        for n, h in c.halods.items():
            os.symlink(h.log_path, os.path.join(d, f"halod-{n}.log"))
        why = chaos_cluster.wait_settled(c, SETUP_TIMEOUT)
        if why:
            print("chaos: the cluster did not settle before the faults:\n  " + "\n  ".join(w for _, w in why))
            keep[0] = True
            c.stop()
            return 2
        meta["t_check"] = time.monotonic()
        print(f"chaos: cluster settled in {meta['t_check'] - c.t0:.1f} s; {len(plan)} faults over "
              f"{a.seconds:g} s", flush=True)
        writers = [chaos_cluster.CdbWriter(c, g).start() for g in chaos_cluster.CDB_GROUPS]
        nem = nemesis.Nemesis(c, plan, os.path.join(d, "timeline.jsonl"))
        nem.run(time.monotonic())
        meta["t_faults_end"] = time.monotonic()
        for w in writers:
            w.stop()
        writers = []
        unsettled = chaos_cluster.wait_settled(c, SETTLE_TIMEOUT)
        meta["final"] = {
            # A pool process that is not ONLINE is judged by the pool check (it may have a reason).
            "unsettled": [f"not settled {SETTLE_TIMEOUT} s after the last fault was undone: {w}"
                          for what, w in unsettled if what != "pool"],
            "views": {n: v for n, v in ((n, c.view(n)) for n in c.halods) if v is not None},  # a dead one: CRASH
            "pools": c.pool_states(),
            "cdb": c.cdb_final(),
            "cdb_groups": {g: c.cdb_final(g) for g in chaos_cluster.CDB_GROUPS if g != "db"},
        }
        meta["t_end"] = time.monotonic()
    except BaseException as e:
        for w in writers:
            w.stopping.set()  # no new haloctl while main() kills the run's processes
        if isinstance(e, Stopped):
            raise
        # An error of the checker's own: the cluster is stopped as at the end (its halods
        # SIGTERMed, their logs kept); main() kills whatever is left.
        if nem:
            nem.restore_all()
        for w in writers:
            w.stop()
        c.stop()
        raise
    finally:
        if nem:
            nem.close()
    c.dump_store()
    meta["final"]["teardown"] = c.stop()
    with open(os.path.join(d, "meta.json"), "w") as f:
        json.dump(meta, f, indent=1)

    result = checker.Run(d)
    violations, notes = checker.check(result, strict=a.strict)
    lines = checker.summary(result, violations, notes)
    with open(os.path.join(d, "report.txt"), "w") as f:
        f.write("\n".join(lines) + "\n")
    print("\n".join("chaos: " + ln if not ln.startswith(" ") else ln for ln in lines))
    if violations:
        keep[0] = True
    return 1 if violations else 0


if __name__ == "__main__":
    sys.exit(main())
