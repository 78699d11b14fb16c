# SPDX-License-Identifier: MIT
"""halo's chaos checker: a 3-node cluster over 3 etcd members, a seeded nemesis,
and a checker that judges from the components' own logs (see README.md).

    test/chaos/run [--seconds N] [--seed S] [--keep] [--dir DIR]

Prints the seed first.  Exits 0 when no violation was found, 1 when some were
(the run directory, with every halod's and etcd member's log, is kept and
printed), 2 when the cluster could not be set up."""
import argparse
import json
import os
import random
import shutil
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)

import checker  # noqa: E402
import cluster as chaos_cluster  # noqa: E402  (puts test/integration on the path)
import nemesis  # noqa: E402
from halo_harness import become_subreaper  # noqa: E402

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
    d = tempfile.mkdtemp(prefix=f"halo-chaos-{seed}-", dir=a.dir)
    tempfile.tempdir = d  # the harness's halods and etcd make their directories in here
    print(f"chaos: run directory {d}", flush=True)
    with open(os.path.join(d, "plan.jsonl"), "w") as f:
        f.writelines(json.dumps(s) + "\n" for s in plan)
    become_subreaper()

    try:
        c = chaos_cluster.Cluster(d, cut=a.cut)
    except PermissionError as e:  # the OCF agent goes under /usr/lib/ocf/resource.d
        print(f"chaos: cannot set the cluster up: {e} (the run needs root)")
        return 2
    wall_t0 = time.time() - (time.monotonic() - c.t0)  # the halods' logs show wall-clock times
    meta = {"seed": seed, "seconds": a.seconds, "cut": a.cut, "t0": c.t0, "wall_t0": wall_t0, "comps": comps,
            "sis": chaos_cluster.si_meta(),
            "halod_dirs": {}}
    nem = writer = None
    try:
        c.start()
        meta["halod_dirs"] = {n: h.dir for n, h in c.halods.items()}
        for n, h in c.halods.items():
            os.symlink(h.log_path, os.path.join(d, f"halod-{n}.log"))
        why = chaos_cluster.wait_settled(c, SETUP_TIMEOUT)
        if why:
            print("chaos: the cluster did not settle before the faults:\n  " + "\n  ".join(w for _, w in why))
            print(f"chaos: logs kept in {d}")
            c.stop()
            return 2
        meta["t_check"] = time.monotonic()
        print(f"chaos: cluster settled in {meta['t_check'] - c.t0:.1f} s; {len(plan)} faults over "
              f"{a.seconds:g} s", flush=True)
        writer = chaos_cluster.CdbWriter(c).start()
        nem = nemesis.Nemesis(c, plan, os.path.join(d, "timeline.jsonl"))
        nem.run(time.monotonic())
        meta["t_faults_end"] = time.monotonic()
        writer.stop()
        writer = None
        unsettled = chaos_cluster.wait_settled(c, SETTLE_TIMEOUT)
        meta["final"] = {
            # A pool process that is not ONLINE is judged by the pool check (it may have a reason).
            "unsettled": [f"not settled {SETTLE_TIMEOUT} s after the last fault was undone: {w}"
                          for what, w in unsettled if what != "pool"],
            "views": {n: v for n, v in ((n, c.view(n)) for n in c.halods) if v is not None},  # a dead one: CRASH
            "pools": c.pool_states(),
            "cdb": c.cdb_final(),
        }
        meta["t_end"] = time.monotonic()
    except BaseException:
        if nem:
            nem.restore_all()
        if writer:
            writer.stop()
        c.stop()
        print(f"chaos: interrupted; logs kept in {d}")
        raise
    finally:
        if nem:
            nem.close()
    c.dump_store()
    meta["final"]["teardown"] = c.stop()
    with open(os.path.join(d, "meta.json"), "w") as f:
        json.dump(meta, f, indent=1)

    run = checker.Run(d)
    violations, notes = checker.check(run, strict=a.strict)
    lines = checker.summary(run, violations, notes)
    with open(os.path.join(d, "report.txt"), "w") as f:
        f.write("\n".join(lines) + "\n")
    print("\n".join("chaos: " + ln if not ln.startswith(" ") else ln for ln in lines))
    if violations or a.keep:
        print(f"chaos: run directory kept: {d} (halod-N.log, etcd-mN.log, timeline.jsonl, comp.*.intervals, "
              "watcher.log, cdb.jsonl, report.txt; checker.py DIR --timeline)")
    else:
        shutil.rmtree(d, ignore_errors=True)
    return 1 if violations else 0


if __name__ == "__main__":
    sys.exit(main())
