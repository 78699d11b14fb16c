# SPDX-License-Identifier: MIT
"""2N on one node, end to end: real halod, real counter components, real sockets."""
import json
import os
import signal
import socket
import subprocess
import time

import pytest

from halo_harness import COUNTER, HALOD, free_port, local_defaults, pid_alive, wait_for


def counter_yaml(tmpdir, port, hc_period="200ms", hc_timeout="600ms", extra_sg=""):
    return f"""
cluster: test
{local_defaults(hc_period, hc_timeout)}service-groups:
  counter:
    redundancy: 2N
    component:
      command: {COUNTER}
    service-units:
      counter-a: {{node: local, component: {{args: ["--standby-port", "{port + 1}"]}}}}
      counter-b: {{node: local, component: {{args: ["--standby-port", "{port + 2}"]}}}}
    service-instances:
      counter:
        csis:
          counter:
            attributes: {{port: "{port}", state-file: "{tmpdir}/counter.state"}}
{extra_sg}"""


def ask(port, line, timeout=2):
    with socket.create_connection(("127.0.0.1", port), timeout=timeout) as s:
        s.sendall((line + "\n").encode())
        return s.makefile().readline().strip()


@pytest.fixture
def cluster(halod_factory, tmp_path):
    port = free_port()
    h = halod_factory(counter_yaml(tmp_path, port)).start()
    h.port = port
    h.wait_assigned("counter")
    yield h
    h.stop()


def test_initial_assignment_is_deterministic_and_serves(cluster):
    active, standby = cluster.wait_assigned("counter")
    assert (active, standby) == ("counter-a", "counter-b")  # rank order
    assert ask(cluster.port, "PING") == "PONG"
    assert ask(cluster.port, "INCR k") == "1"
    # The STANDBY refuses writes on its own port.
    assert "ERR" in ask(cluster.port + 2, "INCR k")


def test_kill9_of_active_fails_over_and_returns_as_standby(cluster):
    assert ask(cluster.port, "INCR hits") == "1"
    victim = cluster.pid_of("counter-a")
    os.kill(victim, signal.SIGKILL)
    wait_for(lambda: cluster.si("counter")["active"] == "counter-b", timeout=5, what="counter-b ACTIVE")
    assert ask(cluster.port, "INCR hits") == "2"  # served by the new ACTIVE, state carried over
    # The failed unit is restarted as a new process and made STANDBY.
    active, standby = cluster.wait_assigned("counter")
    assert (active, standby) == ("counter-b", "counter-a")
    new_pid = cluster.pid_of("counter-a")
    assert new_pid != victim
    assert not pid_alive(victim)
    assert "killed by signal 9" in cluster.comp("counter-a")["last_exit"]


def test_hung_component_is_detected_by_health_check(cluster):
    victim = cluster.pid_of("counter-a")
    os.kill(victim, signal.SIGSTOP)
    try:
        wait_for(lambda: cluster.si("counter")["active"] == "counter-b", timeout=10,
                 what="failover after a missed health check")
        assert "health check" in cluster.su("counter-a")["last_failure"]
        # The hung process was killed (fenced), not left stopped.
        wait_for(lambda: not pid_alive(victim), timeout=5, what="hung process killed")
        active, standby = cluster.wait_assigned("counter")
        assert standby == "counter-a"
    finally:
        if pid_alive(victim):
            os.kill(victim, signal.SIGCONT)


def test_switchover_moves_active_gracefully(cluster):
    assert ask(cluster.port, "INCR s") == "1"
    pids = (cluster.pid_of("counter-a"), cluster.pid_of("counter-b"))
    r = cluster.ctl("switchover", "counter")
    assert "switched over" in r.stdout
    si = cluster.si("counter")
    assert (si["active"], si["standby"]) == ("counter-b", "counter-a")
    # Nothing was restarted: a switchover is not a failure.
    assert (cluster.pid_of("counter-a"), cluster.pid_of("counter-b")) == pids
    assert ask(cluster.port, "INCR s") == "2"
    # And back.
    cluster.ctl("switchover", "counter")
    assert cluster.si("counter")["active"] == "counter-a"
    assert "QUIESCING" in cluster.logtext()


def test_switchover_refused_without_standby(cluster):
    cluster.ctl("lock", "counter-b")
    r = cluster.ctl("switchover", "counter", check=False)
    assert r.returncode != 0
    assert "not allowed" in r.stderr
    assert cluster.si("counter")["active"] == "counter-a"


def test_lock_and_unlock(cluster):
    pid_a = cluster.pid_of("counter-a")
    cluster.ctl("lock", "counter-a")
    si = cluster.si("counter")
    assert si["active"] == "counter-b"
    assert si["standby"] is None
    assert si["assignment"] == "PARTIALLY-ASSIGNED"
    su = cluster.su("counter-a")
    assert su["admin"] == "LOCKED"
    assert su["readiness"] == "OUT-OF-SERVICE"
    assert cluster.pid_of("counter-a") == pid_a  # locked, not killed
    # A second lock is refused with a clear error.
    r = cluster.ctl("lock", "counter-a", check=False)
    assert r.returncode != 0 and "already" in r.stderr
    cluster.ctl("unlock", "counter-a")
    active, standby = cluster.wait_assigned("counter")
    assert (active, standby) == ("counter-b", "counter-a")


def test_restart_component(cluster):
    old = cluster.pid_of("counter-b")
    cluster.ctl("restart", "counter-b")
    wait_for(lambda: cluster.pid_of("counter-b") not in (None, old), timeout=10, what="new counter-b pid")
    active, standby = cluster.wait_assigned("counter")
    assert (active, standby) == ("counter-a", "counter-b")
    assert not pid_alive(old)


def test_unknown_objects_give_errors(cluster):
    for args in (("switchover", "nope"), ("lock", "nope"), ("restart", "nope")):
        r = cluster.ctl(*args, check=False)
        assert r.returncode != 0
        assert "no such object" in r.stderr
    r = cluster.ctl("frobnicate", check=False)
    assert r.returncode != 0 and "unknown command" in r.stderr


def test_sigterm_stops_everything(halod_factory, tmp_path):
    port = free_port()
    h = halod_factory(counter_yaml(tmp_path, port)).start()
    h.wait_assigned("counter")
    pids = [h.pid_of("counter-a"), h.pid_of("counter-b")]
    assert h.stop() == 0  # stop() also asserts nothing is left behind, zombies included
    assert all(not pid_alive(p) for p in pids)
    assert not os.path.exists(h.socket)


def test_restart_limit_disables_then_repair(halod_factory, tmp_path):
    bad = tmp_path / "crash.sh"
    bad.write_text("#!/bin/sh\nexit 3\n")
    bad.chmod(0o755)
    port = free_port()
    extra = f"""  crashy:
    component:
      command: {bad}
      restart: {{max: 9, window: 60s, delay: 10ms, delay-max: 20ms}}
    service-units:
      crashy-a: {{node: local}}
      crashy-b: {{node: local}}
    service-instances:
      crashy:
        csis:
          crashy: {{}}
"""
    h = halod_factory(counter_yaml(tmp_path, port, extra_sg=extra)).start()
    wait_for(lambda: h.su("crashy-a")["oper"] == "DISABLED" and h.su("crashy-b")["oper"] == "DISABLED",
             timeout=15, what="crashy units disabled")
    assert "exited with status 3" in h.comp("crashy-a")["last_exit"]
    # Started once and restarted 9 times (max), then disabled: the limit holds
    # however far the record of failures has to grow.
    assert h.comp("crashy-a")["instantiations"] == 10
    assert h.su("crashy-a")["recent_failures"] == 10
    # The healthy service group is untouched.
    assert h.wait_assigned("counter") == ("counter-a", "counter-b")
    # A restarted halod keeps the units disabled instead of crash-looping them again.
    assert h.stop() == 0
    h.start()
    h.wait_assigned("counter")
    assert h.su("crashy-a")["oper"] == "DISABLED"
    assert h.comp("crashy-a")["instantiations"] == 0
    assert "stays disabled" in h.logtext()
    # Repair restarts it (and it fails again, as the command still exits 3).
    h.ctl("repair", "crashy-a")
    wait_for(lambda: h.comp("crashy-a")["instantiations"] >= 1, timeout=10, what="repair restarted crashy-a")
    h.stop()


def test_halod_crash_then_restart_opens_store_and_keeps_lock(halod_factory, tmp_path):
    port = free_port()
    h = halod_factory(counter_yaml(tmp_path, port)).start()
    h.wait_assigned("counter")
    h.ctl("lock", "counter-b")
    active_pid = h.pid_of("counter-a")
    h.remember_children()
    h.proc.kill()  # SIGKILL: no chance to clean up
    h.proc.wait()
    # A new halod on the same state directory opens the store, adopts the
    # running ACTIVE, and restores the lock (a locked unit is not running).
    h.start()
    wait_for(lambda: h.si("counter")["active"] == "counter-a", timeout=10, what="ACTIVE after restart")
    assert h.pid_of("counter-a") == active_pid
    assert h.su("counter-b")["admin"] == "LOCKED"
    assert h.si("counter")["standby"] is None
    h.ctl("unlock", "counter-b")
    h.wait_assigned("counter")
    assert h.stop() == 0


def test_check_reports_every_error_with_position(tmp_path):
    bad = tmp_path / "bad.yaml"
    bad.write_text("""cluster: test
service-groups:
  g:
    redundancy: 2N
    colour: blue
    service-units:
      a: {node: local}
    service-instances:
      si: {csis: {c: {}}}
""")
    r = subprocess.run([HALOD, "--check", str(bad)], capture_output=True, text=True)
    assert r.returncode != 0
    assert "configuration OK" not in r.stdout
    lines = [l for l in r.stderr.splitlines() if l.startswith(str(bad) + ":")]
    assert len(lines) >= 2, r.stderr  # unknown key and too few units, at least
    assert any(":5:5:" in l and "colour" in l for l in lines), r.stderr
    assert any("command" in l for l in lines), r.stderr


def test_bad_description_starts_nothing(tmp_path):
    bad = tmp_path / "bad.yaml"
    bad.write_text("service-groups: [1, 2\n")  # malformed YAML
    sock = tmp_path / "s.sock"
    r = subprocess.run([HALOD, "--state-dir", str(tmp_path / "state"), "--socket", str(sock), str(bad)],
                       capture_output=True, text=True, timeout=10)
    assert r.returncode != 0
    assert f"{bad}:" in r.stderr
    assert not sock.exists()


def test_good_description_checks_ok(tmp_path):
    good = tmp_path / "good.yaml"
    good.write_text(counter_yaml(tmp_path, 7000))
    r = subprocess.run([HALOD, "--check", str(good)], capture_output=True, text=True)
    assert r.returncode == 0, r.stderr
    assert r.stdout.strip() == "configuration OK"


def test_second_halod_on_same_state_dir_is_refused(cluster):
    r = subprocess.run([HALOD, "--state-dir", cluster.state, "--socket", cluster.socket + "2", cluster.config],
                       capture_output=True, text=True, timeout=10)
    assert r.returncode != 0
    assert "Another halod" in r.stderr
    assert cluster.wait_assigned("counter") == ("counter-a", "counter-b")


def test_halod_killed_at_random_moments_always_restarts_on_its_store(halod_factory, tmp_path):
    """SIGKILL halod at arbitrary points (start-up, assignment, failover); each next halod
    opens the same store and brings the service back."""
    import random
    rng = random.Random(1234)
    port = free_port()
    h = halod_factory(counter_yaml(tmp_path, port)).start()
    for round_ in range(6):
        time.sleep(rng.uniform(0, 0.15))
        if round_ % 2 and h.proc.poll() is None:
            try:  # make it busy with a failover when it dies
                os.kill(h.pid_of("counter-a"), signal.SIGKILL)
            except Exception:
                pass
        h.remember_children()
        h.proc.kill()
        h.proc.wait()
        h.log.close()
        h.start()
    assert h.wait_assigned("counter", timeout=20)
    assert ask(port, "PING") == "PONG"
    assert "Failed to open the store" not in h.logtext()
    assert h.stop() == 0


def test_halod_restart_keeps_components_and_roles(cluster):
    """SIGKILL of halod alone: the components keep serving; the next halod adopts
    them with their roles: same processes, no CSI change, no failover."""
    h = cluster
    assert ask(h.port, "INCR k") == "1"
    pids = {c: h.pid_of(c) for c in ("counter-a", "counter-b")}
    h.remember_children()
    h.proc.kill()
    h.proc.wait()
    h.log.close()
    # Nobody supervises them now, and the ACTIVE still serves.
    assert ask(h.port, "INCR k") == "2"
    mark = len(h.logtext())
    h.start()
    wait_for(lambda: all(h.comp(c)["registered"] for c in pids), timeout=15, what="components registered again")
    assert {c: h.pid_of(c) for c in pids} == pids
    assert h.wait_assigned("counter") == ("counter-a", "counter-b")
    assert ask(h.port, "INCR k") == "3"
    after = h.logtext()[mark:]
    assert "adopted with its assignments" in after
    assert "Assigning 'counter'" not in after and "CSI set" not in after, after
    # It is a normal unit again: a failure is still a failover.
    os.kill(pids["counter-a"], signal.SIGKILL)
    wait_for(lambda: h.si("counter")["active"] == "counter-b", timeout=10, what="failover after adoption")
    assert h.stop() == 0


def _processes_with(*words):
    """pids of the processes whose command line holds every word."""
    out = []
    for d in os.listdir("/proc"):
        if not d.isdigit():
            continue
        try:
            with open(f"/proc/{d}/cmdline", "rb") as f:
                argv = f.read().split(b"\0")
            with open(f"/proc/{d}/stat") as f:
                if f.read().rsplit(")", 1)[1].split()[0] == "Z":
                    continue
        except OSError:
            continue
        if all(w.encode() in argv for w in words):
            out.append(int(d))
    return out


def test_halod_and_a_component_killed_together_restart_it_once(cluster):
    """SIGKILL of halod together with the STANDBY's process: the next halod
    finds the adopted process gone and restarts its unit exactly once; it never
    starts a second copy beside the first (one copy used to be refused at
    registration, its exit counted as a failure of the unit, and the other left
    running unsupervised until its lease deadline)."""
    h = cluster
    sb_port = str(h.port + 2)
    pid_b = h.pid_of("counter-b")
    h.remember_children()
    h.proc.kill()
    os.kill(pid_b, signal.SIGKILL)
    h.proc.wait()
    h.log.close()
    mark = len(h.logtext())
    h.start()
    wait_for(lambda: h.comp("counter-b")["registered"], timeout=15, what="counter-b registered again")
    assert h.wait_assigned("counter") == ("counter-a", "counter-b")
    time.sleep(0.5)
    after = h.logtext()[mark:]
    assert after.count("Started component 'counter-b'") == 1, after
    assert "tried to register" not in after, after
    assert "exited with status" not in after, after
    assert _processes_with(COUNTER, sb_port) == [h.pid_of("counter-b")]
    assert h.stop() == 0


def _start_time(pid):
    with open(f"/proc/{pid}/stat") as f:
        return int(f.read().rsplit(")", 1)[1].split()[19])


def _owned_by(state_dir, comp):
    """pids of the live processes whose environment holds the mark halod gives comp's process."""
    mark = f"HALO_OWNER={comp}@{os.path.realpath(state_dir)}".encode()
    out = []
    for d in os.listdir("/proc"):
        try:
            with open(f"/proc/{d}/environ", "rb") as f:
                env = f.read().split(b"\0")
        except (OSError, ValueError):
            continue
        if d.isdigit() and mark in env and pid_alive(int(d)):
            out.append(int(d))
    return out


def test_a_survivor_whose_record_was_lost_is_adopted_not_doubled(cluster, halod_factory, tmp_path):
    """halod restarts a component, then is SIGKILLed before the store took the new process's record (etcd
    unreachable, or simply the moment between the fork and the write): the store still names the process
    that died.  The next halod finds the survivor by the mark in its environment and adopts it; it used to
    start the component again beside it, two processes of one unit.  Another halod on the same machine (its
    own state directory, the same cluster and node names) keeps its processes: the mark names the state
    directory."""
    import sqlite3
    h = cluster
    other_port = free_port()
    other_dir = tmp_path / "other"
    other_dir.mkdir()
    other = halod_factory(counter_yaml(other_dir, other_port), name="other").start()
    other.wait_assigned("counter")
    others = {c: other.pid_of(c) for c in ("counter-a", "counter-b")}

    old = h.pid_of("counter-b")
    old_start = _start_time(old)
    h.remember_children()
    os.kill(old, signal.SIGKILL)
    wait_for(lambda: h.pid_of("counter-b") not in (None, old) and h.comp("counter-b")["registered"], timeout=10,
             what="counter-b restarted")
    assert h.wait_assigned("counter") == ("counter-a", "counter-b")
    pids = {c: h.pid_of(c) for c in ("counter-a", "counter-b")}
    assert _owned_by(h.state, "counter-b") == [pids["counter-b"]]
    h.remember_children()
    h.proc.kill()
    h.proc.wait()
    h.log.close()
    # The record of the restarted process is lost: the store names the dead one.
    lost = json.dumps({"component": "counter-b", "node": "local", "pid": old, "starttime": old_start},
                      separators=(",", ":"), sort_keys=True)
    db = sqlite3.connect(f"{h.state}/store.db", timeout=5)
    with db:
        n = db.execute("UPDATE kv SET value = ? WHERE key = ?", (lost.encode(), b"/halo/test/components/counter-b"))
        assert n.rowcount == 1
    db.close()

    mark = len(h.logtext())
    h.start()
    wait_for(lambda: all(h.comp(c)["registered"] for c in pids), timeout=15, what="components registered again")
    assert h.wait_assigned("counter") == ("counter-a", "counter-b")
    time.sleep(0.5)  # a second copy, if one were started, would be spawned by now
    after = h.logtext()[mark:]
    assert {c: h.pid_of(c) for c in pids} == pids, after
    assert "found by its mark" in after, after
    assert "Started component" not in after, after
    assert _processes_with(COUNTER, str(h.port + 2)) == [pids["counter-b"]]
    assert _owned_by(h.state, "counter-b") == [pids["counter-b"]]
    # The other halod's processes, marked with its own directory, were neither adopted nor killed.
    assert {c: other.pid_of(c) for c in others} == others
    assert all(pid_alive(p) for p in others.values())
    assert other.stop() == 0


@pytest.mark.skipif(os.geteuid() != 0, reason="starts a process as another user")
def test_a_mark_forged_by_another_user_is_ignored(cluster):
    """Anyone can start a process whose environment carries a component's mark: a restarted halod takes a
    survivor only if it runs as the user halod starts that component as (or root).  Here counter-a died with
    halod, and a process of user nobody carries its mark: halod starts counter-a anew and leaves the
    other process alone (neither adopted nor killed)."""
    h = cluster
    pid_a = h.pid_of("counter-a")
    h.remember_children()
    h.proc.kill()
    os.kill(pid_a, signal.SIGKILL)
    h.proc.wait()
    h.log.close()
    mark = f"counter-a@{os.path.realpath(h.state)}"
    forged = subprocess.Popen(["/bin/sleep", "60"], env={"HALO_OWNER": mark, "PATH": "/usr/bin:/bin"}, user=65534,
                              start_new_session=True)
    try:
        wait_for(lambda: _owned_by(h.state, "counter-a") == [forged.pid], what="the forged process to run")
        before = len(h.logtext())
        h.start()
        wait_for(lambda: h.comp("counter-a")["registered"], timeout=15, what="counter-a started again")
        after = h.logtext()[before:]
        assert h.pid_of("counter-a") != forged.pid
        assert "runs as user 65534" in after, after
        assert forged.poll() is None
        assert h.stop() == 0
    finally:
        forged.kill()
        forged.wait()


def test_health_checks_survive_a_halod_restart(cluster):
    """SIGKILL of halod alone, then a new halod adopts the components: their
    AMF-invoked health checks (200 ms period, 600 ms timeout) run again, so a
    hung (SIGSTOPped) ACTIVE is still failed over.  They used to be gone: the
    new halod knew nothing of them and the hung ACTIVE stayed ACTIVE."""
    h = cluster
    pids = {c: h.pid_of(c) for c in ("counter-a", "counter-b")}
    h.remember_children()
    h.proc.kill()
    h.proc.wait()
    h.log.close()
    h.start()
    wait_for(lambda: all(h.comp(c)["registered"] for c in pids), timeout=15, what="components registered again")
    assert h.wait_assigned("counter") == ("counter-a", "counter-b")
    wait_for(lambda: all(h.comp(c)["health_checks"] for c in pids), timeout=5, what="health checks back")
    os.kill(pids["counter-a"], signal.SIGSTOP)
    try:
        wait_for(lambda: h.si("counter")["active"] == "counter-b", timeout=8, what="the hung ACTIVE failed over")
    finally:
        try:
            os.kill(pids["counter-a"], signal.SIGCONT)
        except OSError:
            pass
    assert "missed health check" in h.logtext()
    assert h.stop() == 0

