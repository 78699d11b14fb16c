# SPDX-License-Identifier: MIT
"""A chaos run that is stopped (SIGTERM, SIGINT: a timeout, a Ctrl-C) or fails leaves
nothing behind: no process of the run, alive or zombie, no OCF agent directory, no
temporary files."""
import json
import os
import pathlib
import shutil
import signal
import subprocess
import sys
import tempfile
import threading

import pytest

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "integration"))
from halo_harness import become_subreaper, descendants, wait_for  # noqa: E402
from nemesis import start_time  # noqa: E402

RUN = os.path.join(HERE, "run")
OCF_RESOURCE_D = "/usr/lib/ocf/resource.d"

pytestmark = pytest.mark.skipif(os.geteuid() != 0, reason="a chaos run needs root (its OCF agent directory)")


@pytest.fixture
def tmp_path():
    """A short directory for the run (pytest's own is too long for the halods' socket paths)."""
    d = tempfile.mkdtemp(prefix="halo-td-")
    yield pathlib.Path(d)
    shutil.rmtree(d, ignore_errors=True)


class Output:
    """The run's output, read by a thread of its own, so that a test can wait for a line."""

    def __init__(self, proc):
        self.lines = []
        self.thread = threading.Thread(target=self.read, args=(proc.stdout,), daemon=True)
        self.thread.start()

    def read(self, f):
        for line in f:
            self.lines.append(line.rstrip("\n"))

    def text(self):
        return "\n".join(self.lines)


def comm(pid):
    try:
        with open(f"/proc/{pid}/comm") as f:
            return f.read().strip()
    except OSError:
        return None


def faults(run_dir):
    try:
        with open(os.path.join(run_dir, "timeline.jsonl")) as f:
            return [json.loads(ln) for ln in f if ln.strip()]
    except (OSError, ValueError):
        return []


def start(tmp_path, seed, **env):
    # What the run would leave behind is re-parented to this process, so it is seen below.
    become_subreaper()
    p = subprocess.Popen([RUN, "--seconds", "30", "--seed", str(seed), "--dir", str(tmp_path)],
                         stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=dict(os.environ, **env))
    return p, Output(p)


def leftovers(before):
    """Of before ({pid: start time}), those still there (a zombie too); and any process that
    was re-parented to this test."""
    left = [p for p, st in before.items() if start_time(p) == st]
    return left, sorted(descendants(os.getpid()))


def kill_leftovers():
    for p in descendants(os.getpid()):
        try:
            os.kill(p, signal.SIGKILL)
        except OSError:
            pass
    for p in descendants(os.getpid()):
        try:
            os.waitpid(p, 0)
        except ChildProcessError:
            pass


# Seed 3's third fault SIGKILLs n3's halod (its components, orphans, are the run's to stop)
# while an etcd follower is SIGSTOPped; seed 1's first SIGSTOPs n2's halod.
@pytest.mark.parametrize("sig,seed,fault", [(signal.SIGTERM, 3, "halod-kill"), (signal.SIGINT, 1, "halod-stop")])
def test_a_stopped_run_stops_everything_it_started(tmp_path, sig, seed, fault):
    p, out = start(tmp_path, seed)
    try:
        wait_for(lambda: "cluster settled" in out.text() or p.poll() is not None, timeout=120,
                 what="the chaos cluster to settle")
        assert p.poll() is None, out.text()
        run_dir = next(str(tmp_path / n) for n in os.listdir(tmp_path) if n.startswith("halo-chaos-"))
        wait_for(lambda: any(e.get("phase") == "fault" and e.get("kind") == fault for e in faults(run_dir)),
                 timeout=30, what=f"the nemesis's first {fault}")
        # A process that ended between the listing and its start time (an OCF monitor runs every
        # 300 ms) has none: left out, or it would count as left (None == None; CI, once).
        procs = {q: st for q in descendants(p.pid) if (st := start_time(q)) is not None}
        names = sorted(filter(None, (comm(q) for q in procs)))
        # Not a vacuous check: the run's halods, etcd members and components are there.
        assert names.count("halod") >= 2 and names.count("etcd") == 3 and "testcomp" in names, names
        agent = os.path.join(OCF_RESOURCE_D, f"halochaos{p.pid}")
        assert os.path.isfile(os.path.join(agent, "Logged"))

        p.send_signal(sig)
        rc = p.wait(60)
        out.thread.join(10)
        assert rc == 128 + sig, out.text()
        assert f"stopped by {signal.Signals(sig).name}" in out.text()
        left, adopted = leftovers(procs)
        assert not left, f"processes of the run left: {[(q, comm(q)) for q in left]}"
        assert not adopted, f"processes re-parented to the test: {[(q, comm(q)) for q in adopted]}"
        assert not os.path.exists(agent)
        assert os.listdir(tmp_path) == []  # the run directory, with the halods' and etcd's, is gone
    finally:
        if p.poll() is None:
            p.kill()
            p.wait()
        kill_leftovers()


def test_a_run_that_fails_stops_everything_it_started(tmp_path):
    """etcd cannot start: the checker fails after its death watcher started; exit 3, the
    watcher stopped, the agent directory gone, the run directory kept (it shows why)."""
    p, out = start(tmp_path, 3, HALO_ETCD_BINARY="/bin/false")
    try:
        rc = p.wait(120)
        out.thread.join(10)
        assert rc == 3, out.text()
        assert "the checker failed" in out.text() and "etcd member m0 exited" in out.text()
        assert not descendants(os.getpid())
        assert not [n for n in os.listdir(OCF_RESOURCE_D) if n == f"halochaos{p.pid}"]
        kept = os.listdir(tmp_path)
        assert len(kept) == 1 and os.path.exists(tmp_path / kept[0] / "watcher.log")
        assert f"run directory kept: {tmp_path / kept[0]}" in out.text()
    finally:
        if p.poll() is None:
            p.kill()
            p.wait()
        kill_leftovers()
