# SPDX-License-Identifier: MIT
"""halo-guard, the node lease's fence for what cannot fence itself (an unmodified
program, an OCF resource): run here on its own, against a lease file the test writes
as halod does (one uint64_t, the CLOCK_MONOTONIC deadline in microseconds, 0: none)."""
import os
import signal
import struct
import subprocess
import time

from halo_harness import BUILD, wait_for

GUARD = os.path.join(BUILD, "src", "halo-guard", "halo-guard")


class Lease:
    def __init__(self, path):
        self.path = path
        self.set(0)

    def set(self, deadline_usec):
        with open(self.path, "r+b" if os.path.exists(self.path) else "wb") as f:
            f.write(struct.pack("=Q", deadline_usec))

    def expires_in(self, seconds):
        self.set(int((time.monotonic() + seconds) * 1e6))


def group_leader():
    """A sleeping process in a session (and group) of its own, with a child in that group."""
    return subprocess.Popen(["sh", "-c", "sleep 1000 & exec sleep 1000"], start_new_session=True)


def start_time(pid):
    with open(f"/proc/{pid}/stat") as f:
        return f.read().rsplit(")", 1)[1].split()[19]


def guard(lease, *args):
    return subprocess.Popen([GUARD, "--lease", lease.path, *args], stderr=subprocess.PIPE, text=True)


def test_a_deadline_that_passes_unrenewed_kills_the_group_and_runs_the_stop(tmp_path):
    lease = Lease(str(tmp_path / "lease"))
    p = group_leader()
    marker = tmp_path / "stopped"
    lease.expires_in(1.0)
    g = guard(lease, "--pid", str(p.pid), "--start-time", start_time(p.pid), "--", "/bin/sh", "-c",
              f"echo stopped > {marker}")
    # Renewed like halod does (every TTL/3): nothing happens.
    t_end = time.monotonic() + 2.0
    while time.monotonic() < t_end:
        lease.expires_in(0.5)
        time.sleep(0.1)
    assert p.poll() is None and g.poll() is None
    # halod is gone: no renewal.
    t0 = time.monotonic()
    assert g.wait(5) == 3
    assert p.wait(5) == -signal.SIGKILL
    assert 0.3 < time.monotonic() - t0 < 2.0  # at the deadline, not before
    assert marker.read_text() == "stopped\n"
    assert "the node lease was not renewed by its deadline" in g.stderr.read()
    wait_for(lambda: group_gone(p.pid), what="the whole group gone (its background child too)")


def group_gone(pgid):
    """Whether no process of group pgid is left (its orphans come to us, the subreaper: reaped here)."""
    try:
        while os.waitpid(-1, os.WNOHANG)[0] > 0:
            pass
    except ChildProcessError:
        pass
    try:
        os.killpg(pgid, 0)
        return False
    except ProcessLookupError:
        return True


def test_no_deadline_means_nothing_is_done_until_one_runs(tmp_path):
    lease = Lease(str(tmp_path / "lease"))
    p = group_leader()
    g = guard(lease, "--pid", str(p.pid))
    time.sleep(1.0)
    assert p.poll() is None and g.poll() is None
    lease.expires_in(0.2)
    assert g.wait(5) == 3 and p.wait(5) == -signal.SIGKILL


def test_it_ends_with_its_process_or_when_halod_stops_it(tmp_path):
    lease = Lease(str(tmp_path / "lease"))
    lease.expires_in(30)
    p = group_leader()
    g = guard(lease, "--pid", str(p.pid))
    time.sleep(0.2)
    p.kill()
    p.wait()
    assert g.wait(5) == 0
    p = group_leader()
    g = guard(lease, "--pid", str(p.pid))
    time.sleep(0.2)
    g.send_signal(signal.SIGTERM)
    assert g.wait(5) == 0 and p.poll() is None  # halod stops the component itself
    lease.expires_in(0.1)
    time.sleep(0.5)
    assert p.poll() is None
    os.killpg(p.pid, signal.SIGKILL)
    p.wait()


def test_a_reused_pid_is_left_alone_and_a_forking_daemon_is_found_by_its_pidfile(tmp_path):
    lease = Lease(str(tmp_path / "lease"))
    p = group_leader()
    g = guard(lease, "--pid", str(p.pid), "--start-time", "1")  # not its start time: another process's pid
    assert g.wait(5) == 0 and p.poll() is None
    os.killpg(p.pid, signal.SIGKILL)
    p.wait()
    # A daemon in a session of its own, known by its pidfile; the guard watches the launcher's pid.
    pidfile = tmp_path / "d.pid"
    d = subprocess.Popen(["sleep", "1000"], start_new_session=True)
    pidfile.write_text(f"{d.pid}\n")
    launcher = group_leader()
    lease.expires_in(0.3)
    g = guard(lease, "--pid", str(launcher.pid), "--pidfile", str(pidfile))
    assert g.wait(5) == 3
    assert d.wait(5) == -signal.SIGKILL and launcher.wait(5) == -signal.SIGKILL


def test_a_stop_that_outlasts_its_timeout_is_killed_then(tmp_path):
    """The other nodes start the resource elsewhere once its stop timeout has passed after the lease
    end: the guard's stop must not run on past it."""
    lease = Lease(str(tmp_path / "lease"))
    lease.expires_in(0.2)
    t0 = time.monotonic()
    g = guard(lease, "--stop-timeout", "700", "--", "/bin/sleep", "30")
    assert g.wait(10) == 3
    took = time.monotonic() - t0
    assert 0.8 < took < 3.0, took  # 0.2 s to the deadline, then 0.7 s of stop (not the 20 s default)
    assert "'/bin/sleep' took more than 700 ms: killed" in g.stderr.read()


def test_bad_arguments_are_a_usage_error(tmp_path):
    lease = Lease(str(tmp_path / "lease"))
    for args in ([], ["--lease", lease.path], ["--lease", lease.path, "--pid", "x"],
                 ["--lease", lease.path, "--", "relative-stop"], ["--lease", str(tmp_path / "none"), "--pid", "1"],
                 ["--lease", lease.path, "--stop-timeout", "0", "--", "/bin/true"],
                 ["--lease", lease.path, "--stop-timeout", "1s", "--", "/bin/true"]):
        r = subprocess.run([GUARD, *args], capture_output=True, text=True, timeout=10)
        assert r.returncode == 2, (args, r.stderr)


def test_every_guard_of_a_component_ends_when_its_while_file_goes(tmp_path):
    """halod marks a component it must fence with a file; a guard of a previous halod and
    the current one's both end when it is removed (the component was stopped for good)."""
    lease = Lease(str(tmp_path / "lease"))
    lease.expires_in(30)
    mark = tmp_path / "comp"
    mark.write_text("")
    stop = ["--", "/bin/true"]  # an OCF resource: no process, a stop command
    g1 = guard(lease, "--while", str(mark), *stop)
    g2 = guard(lease, "--while", str(mark), *stop)
    time.sleep(0.3)
    assert g1.poll() is None and g2.poll() is None
    (tmp_path / "other").write_text("")
    (tmp_path / "other").unlink()  # another file of the directory: nothing
    time.sleep(0.3)
    assert g1.poll() is None and g2.poll() is None
    mark.unlink()
    assert g1.wait(5) == 0 and g2.wait(5) == 0
    # A file already gone: nothing to guard.
    assert guard(lease, "--while", str(mark), *stop).wait(5) == 0


def test_a_pidfile_daemon_is_guarded_after_its_launcher_ended(tmp_path):
    lease = Lease(str(tmp_path / "lease"))
    lease.expires_in(1.0)
    launcher = subprocess.Popen(["sleep", "0.2"], start_new_session=True)
    d = subprocess.Popen(["sleep", "1000"], start_new_session=True)
    pidfile = tmp_path / "d.pid"
    pidfile.write_text(f"{d.pid}\n")
    g = guard(lease, "--pid", str(launcher.pid), "--pidfile", str(pidfile))
    launcher.wait()
    time.sleep(0.3)
    assert g.poll() is None  # the launcher's end is not the daemon's
    assert g.wait(5) == 3 and d.wait(5) == -signal.SIGKILL
