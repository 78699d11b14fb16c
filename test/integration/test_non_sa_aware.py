# SPDX-License-Identifier: MIT
"""Non-SA-aware components end to end: unmodified programs (python3 -m http.server,
sh, sleep) run by a real halod as a 2N group, only while they are ACTIVE."""
import json
import os
import shutil
import sqlite3
import signal
import subprocess
import tempfile
import urllib.error
import urllib.request

import pytest

from halo_harness import HALOD, TESTCOMP, free_port, pid_alive, proc_state, wait_for

PYTHON = "/usr/bin/python3"


def http_yaml(ports, extra=""):
    return f"""
cluster: test
defaults:
  component:
    restart: {{max: 10, window: 60s, delay: 50ms, delay-max: 500ms}}
    timeouts: {{terminate: 2s}}
service-groups:
  web:
    component:
      type: non-sa-aware
      command: {PYTHON}
{extra}    service-units:
      web-a: {{component: {{args: ["-m", "http.server", "{ports[0]}", "--bind", "127.0.0.1"]}}}}
      web-b: {{component: {{args: ["-m", "http.server", "{ports[1]}", "--bind", "127.0.0.1"]}}}}
    service-instances:
      web:
        csis:
          www: {{attributes: {{port: "{ports[0]}"}}}}
"""


def answers(port):
    """Whether an HTTP server answers on 127.0.0.1:port."""
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/", timeout=2) as r:
            return r.status == 200
    except (urllib.error.URLError, ConnectionError, OSError):
        return False


@pytest.fixture
def web(halod_factory):
    ports = (free_port(), free_port())
    h = halod_factory(http_yaml(ports)).start()
    h.ports = dict(zip(("web-a", "web-b"), ports))
    assert h.wait_assigned("web") == ("web-a", "web-b")
    wait_for(lambda: answers(h.ports["web-a"]), what="web-a's server answering")
    yield h
    if h.proc.poll() is None:
        assert h.stop() == 0


def test_only_the_active_runs_and_kill9_moves_it(web):
    h = web
    assert h.comp("web-a")["type"] == "non-sa-aware"
    assert h.comp("web-a")["presence"] == "INSTANTIATED" and h.pid_of("web-a")
    # Cold standby: nothing runs for web-b.
    assert h.comp("web-b")["presence"] == "UNINSTANTIATED" and h.pid_of("web-b") is None
    assert not answers(h.ports["web-b"])
    status = h.ctl("status").stdout
    assert "non-sa-aware" in status
    victim = h.pid_of("web-a")
    h.remember_children()
    os.kill(victim, signal.SIGKILL)
    wait_for(lambda: h.si("web")["active"] == "web-b", timeout=5, what="web-b ACTIVE")
    wait_for(lambda: answers(h.ports["web-b"]), what="web-b's server answering")
    # web-a comes back as STANDBY, running nothing; its old process was reaped.
    assert h.wait_assigned("web") == ("web-b", "web-a")
    assert h.pid_of("web-a") is None and not answers(h.ports["web-a"])
    wait_for(lambda: proc_state(victim) is None, timeout=5, what="the killed server reaped")
    assert "killed by signal 9" in h.comp("web-a")["last_exit"]
    assert "component 'web-a' killed by signal 9" in h.su("web-a")["last_failure"]


def stored(h, suffix):
    """The JSON value of the key of halod's store ending in suffix (one node), or None."""
    db = sqlite3.connect(f"file:{h.state}/store.db?mode=ro", uri=True, timeout=5)
    try:
        row = db.execute("SELECT value FROM kv WHERE CAST(key AS TEXT) LIKE ?", (f"%/{suffix}",)).fetchone()
    finally:
        db.close()
    return json.loads(row[0]) if row else None


def recorded(h, si):
    """(ACTIVE unit, STANDBY unit) of si as its record in halod's store says (one node): what a halod killed now
    leaves to the next one."""
    rec = stored(h, f"assignments/{si}")
    roles = {a["ha_state"]: a["su"] for a in rec["assignments"]} if rec else {}
    return roles.get("ACTIVE"), roles.get("STANDBY")


def process_state(h, comp):
    """The object state of comp's process as published (the cluster's object states, kept in the store)."""
    rec = stored(h, f"state/process:{comp}")
    return rec and rec["state"]


def test_the_server_is_published_online_when_it_runs_again(web):
    h = web
    wait_for(lambda: process_state(h, "web-a") == "ONLINE", timeout=20, what="web-a ONLINE")
    assert process_state(h, "web-b") is None  # never ran
    victim = h.pid_of("web-a")
    os.kill(victim, signal.SIGKILL)
    wait_for(lambda: h.si("web")["active"] == "web-b", timeout=20, what="web-b ACTIVE")
    # web-b's server started: ONLINE; web-a failed, and it runs nothing as the standby: FAILED stays.
    wait_for(lambda: process_state(h, "web-b") == "ONLINE", timeout=20, what="web-b ONLINE")
    wait_for(lambda: process_state(h, "web-a") == "FAILED", timeout=20, what="web-a FAILED")
    assert h.wait_assigned("web", timeout=30) == ("web-b", "web-a")
    assert process_state(h, "web-a") == "FAILED"
    # A switchover starts web-a's server again: ONLINE again.
    h.ctl("switchover", "web")
    assert h.wait_assigned("web", timeout=30) == ("web-a", "web-b")
    wait_for(lambda: process_state(h, "web-a") == "ONLINE", timeout=20, what="web-a ONLINE again")


def test_switchover_stops_one_server_then_starts_the_other(web):
    h = web
    old = h.pid_of("web-a")
    h.ctl("switchover", "web")
    assert h.si("web")["active"] == "web-b"
    wait_for(lambda: answers(h.ports["web-b"]), what="web-b's server answering")
    assert not pid_alive(old) and not answers(h.ports["web-a"])
    assert h.su("web-a").get("last_failure") is None  # a stop, not a failure


def test_an_operators_restart_restarts_the_server_in_place(web):
    h = web
    for n, cmd in enumerate((("restart", "web-a"), ("admin", "restart", "comp:web-a"))):
        pid = h.pid_of("web-a")
        mark = len(h.logtext())
        assert h.ctl(*cmd).returncode == 0
        # A new process on the same unit, with the same HA state; the standby is told nothing and runs nothing.
        wait_for(lambda: h.pid_of("web-a") not in (None, pid) and answers(h.ports["web-a"]), timeout=10,
                 what="web-a's new server answering")
        assert h.wait_assigned("web") == ("web-a", "web-b")
        assert h.pid_of("web-b") is None and not answers(h.ports["web-b"])
        after = h.logtext()[mark:]
        assert "Restarting component 'web-a' in place" in after
        assert "web-b" not in after, after
        assert not pid_alive(pid)
    # Not a failure, and not counted by the ladder.
    assert h.su("web-a").get("last_failure") is None and h.su("web-a").get("last_recovery") is None
    # The standby has nothing to restart.
    r = h.ctl("restart", "web-b", check=False)
    assert r.returncode != 0 and h.pid_of("web-b") is None


def test_the_csi_attributes_reach_the_environment(halod_factory, tmp_path):
    out = tmp_path / "env"
    h = halod_factory(f"""
service-groups:
  g:
    component:
      type: non-sa-aware
      command: /bin/sh
      args: ["-c", "env > {out}.$HALO_COMPONENT; exec sleep 600"]
      env: {{MY_SETTING: on}}
    service-units: {{a: {{}}, b: {{}}}}
    service-instances:
      si: {{csis: {{web-csi: {{attributes: {{doc-root: /srv/www, port: 8080}}}}}}}}
""").start()
    h.wait_assigned("si")
    env = wait_for(lambda: (lambda t: dict(line.split("=", 1) for line in t.splitlines() if "=" in line)
                            if "MY_SETTING" in t else None)(open(f"{out}.a").read()), what="a's environment")
    assert env["HALO_CSI_WEB_CSI_DOC_ROOT"] == "/srv/www"
    assert env["HALO_CSI_WEB_CSI_PORT"] == "8080"
    assert env["HALO_HA_STATE"] == "ACTIVE"
    assert env["HALO_COMPONENT"] == "a" and env["HALO_NODE"] == "local"
    assert env["MY_SETTING"] == "on"
    assert "HALO_SOCKET" not in env
    assert not os.path.exists(f"{out}.b")  # the STANDBY ran nothing
    assert h.stop() == 0


def test_terminate_and_cleanup_run_when_they_should(halod_factory, tmp_path):
    log = tmp_path / "events"
    h = halod_factory(f"""
defaults:
  component:
    restart: {{max: 10, window: 60s, delay: 50ms}}
service-groups:
  g:
    component:
      type: non-sa-aware
      command: /bin/sh
      args: ["-c", "echo start $HALO_COMPONENT >> {log}; exec sleep 600"]
      terminate: [/bin/sh, -c, "echo terminate $HALO_PID ${{HALO_OWNER:+marked}} >> {log}; kill $HALO_PID"]
      cleanup: [/bin/sh, -c, "sleep 0.3; echo cleanup $HALO_PID ${{HALO_OWNER:+marked}} >> {log}"]
    service-units: {{a: {{}}, b: {{}}}}
    service-instances: {{si: {{csis: {{c: {{}}}}}}}}
""").start()
    assert h.wait_assigned("si") == ("a", "b")

    def events():
        return [e.strip() for e in open(log).read().split("\n")[:-1]] if os.path.exists(log) else []

    wait_for(lambda: events() == ["start a"], what="a started")
    pid_a = h.pid_of("a")
    # The command's process carries the mark a restarted halod finds it by (the shell's exec moved it from
    # the first place); its helpers do not ("marked").
    with open(f"/proc/{pid_a}/environ", "rb") as f:
        assert f"HALO_OWNER=a@{os.path.realpath(h.state)}".encode() in f.read().split(b"\0")
    # A switchover stops a with its terminate command (on its pid); a clean stop needs no cleanup.
    h.ctl("switchover", "si")
    wait_for(lambda: len(events()) == 3, what="b started")
    assert events() == ["start a", f"terminate {pid_a}", "start b"]
    assert h.wait_assigned("si") == ("b", "a")
    # b is killed: a failure; its cleanup runs, on its pid, before a starts again.
    pid_b = h.pid_of("b")
    os.kill(pid_b, signal.SIGKILL)
    wait_for(lambda: len(events()) == 5, what="a started again")
    assert events()[3:] == [f"cleanup {pid_b}", "start a"]
    assert h.wait_assigned("si") == ("a", "b")
    # An operator's restart in place: its terminate command, no cleanup (a clean stop), then its command again.
    pid_a = h.pid_of("a")
    h.ctl("restart", "a")
    wait_for(lambda: len(events()) == 7, what="a restarted")
    assert events()[5:] == [f"terminate {pid_a}", "start a"]
    assert h.wait_assigned("si") == ("a", "b")
    # halod's stop stops the ACTIVE with its terminate command too.
    pid_a = h.pid_of("a")
    assert h.stop() == 0
    assert events()[7:] == [f"terminate {pid_a}"]


def pidfile_yaml(tmp_path, head=""):
    """Two units whose shell starts a daemon and writes its pid: a pidfile component each."""
    return head + f"""
defaults:
  component:
    restart: {{max: 10, window: 60s, delay: 50ms}}
service-groups:
  g:
    component:
      type: non-sa-aware
      command: /bin/sh
    service-units:
      a: {{component: {{args: ["-c", "sleep 600 & echo $! > {tmp_path}/a.pid"], pidfile: {tmp_path}/a.pid}}}}
      b: {{component: {{args: ["-c", "sleep 600 & echo $! > {tmp_path}/b.pid"], pidfile: {tmp_path}/b.pid}}}}
    service-instances: {{si: {{csis: {{c: {{}}}}}}}}
"""


def test_a_pidfile_daemon_is_watched_by_its_pid(halod_factory, tmp_path):
    h = halod_factory(pidfile_yaml(tmp_path)).start()
    assert h.wait_assigned("si") == ("a", "b")
    daemon = h.pid_of("a")
    assert daemon == int(open(tmp_path / "a.pid").read())

    def argv():
        with open(f"/proc/{daemon}/cmdline", "rb") as f:
            return f.read().split(b"\0")[:2]
    # The shell writes $! right after its fork: the child may not have exec'd sleep yet (CI, once).
    wait_for(lambda: argv() == [b"sleep", b"600"], timeout=5, what="the daemon's exec of sleep")
    h.remember_children()
    # The daemon dies: a failure of a, b's daemon takes over.
    os.kill(daemon, signal.SIGKILL)
    wait_for(lambda: h.si("si")["active"] == "b", timeout=5, what="b ACTIVE")
    assert "component 'a'" in h.su("a")["last_failure"]
    assert h.pid_of("b") == int(open(tmp_path / "b.pid").read())
    wait_for(lambda: proc_state(daemon) is None, timeout=5, what="the dead daemon reaped")
    assert h.wait_assigned("si") == ("b", "a")
    assert h.stop() == 0


def test_halod_kill9_and_restart_keeps_the_active_server(web):
    h = web
    pid = h.pid_of("web-a")
    wait_for(lambda: recorded(h, "web") == ("web-a", "web-b"), what="the roles recorded")
    h.remember_children()
    h.proc.kill()
    h.proc.wait()
    h.log.close()
    assert answers(h.ports["web-a"])  # nobody supervises it, and it serves
    mark = len(h.logtext())
    h.start()
    wait_for(lambda: h.si("web")["active"] == "web-a" and h.pid_of("web-a") == pid, timeout=10,
             what="web-a adopted")
    assert h.wait_assigned("web") == ("web-a", "web-b")
    assert answers(h.ports["web-a"]) and not answers(h.ports["web-b"])
    after = h.logtext()[mark:]
    assert "Service unit 'web-a' adopted with its assignments" in after
    assert "Started component" not in after, after
    # Still a normal unit: its death is a failover.
    os.kill(pid, signal.SIGKILL)
    wait_for(lambda: h.si("web")["active"] == "web-b", timeout=5, what="failover after the adoption")
    wait_for(lambda: answers(h.ports["web-b"]), what="web-b's server answering")


def test_a_server_whose_record_was_lost_is_adopted_by_its_mark(web):
    """halod SIGKILLed before the store took the ACTIVE server's record: the next halod finds the
    server by the mark in its environment and adopts it, with its ACTIVE; it does not start a
    second one."""
    h = web
    pid = h.pid_of("web-a")
    wait_for(lambda: recorded(h, "web") == ("web-a", "web-b"), what="the roles recorded")
    h.remember_children()
    h.proc.kill()
    h.proc.wait()
    h.log.close()
    db = sqlite3.connect(f"{h.state}/store.db", timeout=5)
    with db:
        lost = '{"component":"web-a","node":"local","pid":0,"starttime":0}'
        assert db.execute("UPDATE kv SET value = ? WHERE key = ?",
                          (lost.encode(), b"/halo/test/components/web-a")).rowcount == 1
    db.close()
    mark = len(h.logtext())
    h.start()
    wait_for(lambda: h.si("web")["active"] == "web-a" and h.pid_of("web-a") == pid, timeout=10,
             what="web-a adopted")
    assert h.wait_assigned("web") == ("web-a", "web-b")
    after = h.logtext()[mark:]
    assert "found by its mark" in after and "Started component" not in after, after
    assert answers(h.ports["web-a"]) and not answers(h.ports["web-b"])


def test_a_pidfile_daemon_whose_record_was_lost_is_adopted_by_its_mark(halod_factory, tmp_path):
    """The daemon of a pidfile outlives the command that started it, in that command's process group: a
    restarted halod whose store lost its record finds it by its mark all the same, and adopts it."""
    h = halod_factory(pidfile_yaml(tmp_path, "cluster: test\n")).start()
    assert h.wait_assigned("si") == ("a", "b")
    daemon = h.pid_of("a")
    wait_for(lambda: recorded(h, "si") == ("a", "b"), what="the roles recorded")
    h.remember_children()
    h.proc.kill()
    h.proc.wait()
    h.log.close()
    db = sqlite3.connect(f"{h.state}/store.db", timeout=5)
    with db:
        lost = '{"component":"a","node":"local","pid":0,"starttime":0}'
        assert db.execute("UPDATE kv SET value = ? WHERE key = ?",
                          (lost.encode(), b"/halo/test/components/a")).rowcount == 1
    db.close()
    mark = len(h.logtext())
    h.start()
    wait_for(lambda: h.si("si")["active"] == "a" and h.pid_of("a") == daemon, timeout=10, what="a's daemon adopted")
    assert h.wait_assigned("si") == ("a", "b")
    after = h.logtext()[mark:]
    assert "found by its mark" in after and "Started component" not in after, after
    assert h.stop() == 0


def test_check_names_the_mistakes(tmp_path):
    p = tmp_path / "bad.yaml"
    p.write_text("""service-groups:
  g:
    component: {command: /bin/sleep, pidfile: x.pid}
    service-units:
      a: {}
      b: {component: {type: non-sa-aware, terminate: [no-such-command-halo]}}
    service-instances: {si: {csis: {c: {}}}}
""")
    r = subprocess.run([HALOD, "--check", str(p)], capture_output=True, text=True)
    assert r.returncode != 0
    assert f"{p}:3:47: 'pidfile' is for non-sa-aware components only" in r.stderr
    assert f"{p}:6:55: 'terminate' command 'no-such-command-halo' not found" in r.stderr


def test_two_nodes_over_etcd_fail_the_server_over(etcd, halod_factory):
    """Each node's halod runs its own unit's server; the coordinator moves ACTIVE."""
    ports = (free_port(), free_port())
    yaml_text = http_yaml(ports).replace("cluster: test\n", "cluster: test\nnodes: {n1: {}, n2: {}}\n").replace(
        "web-a: {component:", "web-a: {node: n1, component:").replace("web-b: {component:", "web-b: {node: n2, component:")
    hs = {n: halod_factory(yaml_text, name=n, extra_args=["--node", n, "--etcd", etcd.endpoints,
                                                          "--lease-ttl", "1"]).start() for n in ("n1", "n2")}
    port = {"web-a": ports[0], "web-b": ports[1]}
    node = {"web-a": "n1", "web-b": "n2"}
    act, sb = wait_for(lambda: (lambda s: (s["active"], s["standby"]) if s["active"] and s["standby"] and not any(
        a["pending"] for a in s["assignments"]) else None)(hs["n1"].si("web")), timeout=20, what="web assigned")
    wait_for(lambda: answers(port[act]), what="the ACTIVE's server answering")
    assert not answers(port[sb]) and hs[node[sb]].pid_of(sb) is None
    owner = hs[node[act]]
    victim = owner.pid_of(act)
    owner.remember_children()
    os.kill(victim, signal.SIGKILL)
    wait_for(lambda: answers(port[sb]), timeout=20, what="the other node's server answering")
    wait_for(lambda: hs["n2"].si("web")["active"] == sb, timeout=20, what="the other unit ACTIVE")
    wait_for(lambda: proc_state(victim) is None, timeout=5, what="the killed server reaped")
    for h in hs.values():
        assert h.stop() == 0


def monitored_yaml(tmp_path, monitor):
    return f"""
defaults:
  component:
    restart: {{max: 10, window: 60s, delay: 50ms}}
service-groups:
  g:
    component:
      type: non-sa-aware
      command: /bin/sleep
      args: ["600"]
      monitor: {monitor}
    service-units: {{a: {{}}, b: {{}}}}
    service-instances: {{si: {{csis: {{c: {{}}}}}}}}
"""


def test_a_failing_monitor_fails_the_unit_over_and_eam_stop_silences_it(halod_factory, tmp_path):
    # The monitor counts its runs and fails while a file names its component, its last line saying why.
    h = halod_factory(monitored_yaml(tmp_path, f"""{{period: 200ms, command: [/bin/sh, -c,
        "echo >> {tmp_path}/runs-$HALO_COMPONENT; kill -0 $HALO_PID || exit 3; ! test -e {tmp_path}/fail-$HALO_COMPONENT ||
         {{ seq 1 2000; echo $HALO_COMPONENT is broken; exit 1; }}"]}}""")).start()
    assert h.wait_assigned("si") == ("a", "b")

    def runs(comp):
        return open(tmp_path / f"runs-{comp}").read().count("\n") if os.path.exists(tmp_path / f"runs-{comp}") else 0

    wait_for(lambda: runs("a") >= 2, what="a's monitor running")
    assert runs("b") == 0  # a STANDBY runs nothing, its monitor neither
    assert h.comp("a")["monitor"] == "enabled"
    victim = h.pid_of("a")
    (tmp_path / "fail-a").touch()
    wait_for(lambda: h.si("si")["active"] == "b", timeout=5, what="b ACTIVE")
    assert not pid_alive(victim)
    assert ("component 'a' failed its monitor: the monitor command exited with status 1: a is broken"
            in h.su("a")["last_failure"])
    assert h.wait_assigned("si") == ("b", "a")
    # eam-stop: b's monitor stops; a failure it would see goes unseen.
    wait_for(lambda: runs("b") >= 1, what="b's monitor running")
    r = h.ctl("eam-stop", "b")
    assert "stopped the monitor of 'b'" in r.stdout
    assert h.comp("b")["monitor"] == "stopped"
    assert h.ctl("eam-stop", "b", check=False).returncode != 0  # stopped already
    seen = runs("b")
    (tmp_path / "fail-b").touch()
    # 5 periods without a run (and so without a failover); then eam-start runs it again, and it fails b over.
    with pytest.raises(AssertionError):
        wait_for(lambda: runs("b") > seen or h.si("si")["active"] != "b", timeout=1, what="b's monitor to run")
    assert h.si("si")["active"] == "b"
    os.unlink(tmp_path / "fail-a")
    h.ctl("eam-start", "b")
    assert h.comp("b")["monitor"] == "enabled"
    wait_for(lambda: h.si("si")["active"] == "a", timeout=5, what="a ACTIVE again")
    assert "component 'b' failed its monitor" in h.su("b")["last_failure"]
    assert h.ctl("eam-stop", "no-such-comp", check=False).returncode != 0
    assert h.stop() == 0


def test_a_monitor_that_hangs_is_killed_and_is_a_failure(halod_factory, tmp_path):
    h = halod_factory(monitored_yaml(tmp_path, f"""{{period: 100ms, timeout: 300ms, command: [/bin/sh, -c,
        "test $HALO_COMPONENT = b || {{ echo $$ > {tmp_path}/hung-$HALO_COMPONENT; exec sleep 600; }}"]}}""")).start()
    wait_for(lambda: os.path.exists(tmp_path / "hung-a"), what="a's monitor running")
    h.remember_children()
    wait_for(lambda: h.si("si")["active"] == "b", timeout=5, what="b ACTIVE")
    assert "component 'a' failed its monitor: no answer within its timeout (300ms)" in h.su("a")["last_failure"]
    hung = int(open(tmp_path / "hung-a").read())
    wait_for(lambda: proc_state(hung) is None, timeout=5, what="the hung monitor killed and reaped")
    h.kill_all()


def test_a_component_runs_as_its_user(halod_factory, tmp_path):
    # Somewhere the user nobody may write: the test's own directory is root's alone.
    out = tempfile.mkdtemp(prefix="halo-user-")
    os.chmod(out, 0o777)
    try:
        h = halod_factory(f"""
service-groups:
  g:
    component:
      type: non-sa-aware
      command: /bin/sleep
      args: ["600"]
      user: nobody
      workdir: /
      # Each run rewrites the files: written aside and renamed, a read never finds one empty.
      monitor: {{period: 100ms, command: [/bin/sh, -c, "id -u > {out}/u; id -G > {out}/g; mv {out}/u {out}/monitor-uid; mv {out}/g {out}/monitor-groups"]}}
    service-units: {{a: {{}}, b: {{}}}}
    service-instances: {{si: {{csis: {{c: {{}}}}}}}}
""").start()
        assert h.wait_assigned("si") == ("a", "b")
        pid = h.pid_of("a")
        with open(f"/proc/{pid}/status") as f:
            ids = dict(line.split(":", 1) for line in f.read().splitlines())
        assert ids["Uid"].split() == ["65534"] * 4
        assert ids["Gid"].split() == ["65534"] * 4  # nobody's primary group, nogroup
        assert ids["Groups"].split() == ["65534"]   # its own groups, not halod's
        wait_for(lambda: os.path.exists(f"{out}/monitor-groups"), what="the monitor's run")
        assert open(f"{out}/monitor-uid").read().strip() == "65534"
        assert h.stop() == 0
    finally:
        shutil.rmtree(out, ignore_errors=True)


def test_an_sa_aware_component_is_monitored_from_its_registration(halod_factory, tmp_path):
    # monitor: is for any component: an sa-aware one (testcomp, linking libhalo) too; STANDBY units run it as well.
    h = halod_factory(f"""
defaults:
  component:
    restart: {{max: 10, window: 60s, delay: 50ms}}
service-groups:
  g:
    component:
      command: {TESTCOMP}
      monitor: {{period: 100ms, command: [/bin/sh, -c,
        "echo >> {tmp_path}/runs-$HALO_COMPONENT; ! test -e {tmp_path}/fail-$HALO_COMPONENT"]}}
    service-units: {{a: {{}}, b: {{}}}}
    service-instances: {{si: {{csis: {{c: {{}}}}}}}}
""").start()
    assert h.wait_assigned("si") == ("a", "b")
    wait_for(lambda: os.path.exists(tmp_path / "runs-b"), what="the STANDBY's monitor running")
    victim = h.pid_of("a")
    (tmp_path / "fail-a").touch()
    wait_for(lambda: h.si("si")["active"] == "b", timeout=5, what="b ACTIVE")
    assert "component 'a' failed its monitor: the monitor command exited with status 1" in h.su("a")["last_failure"]
    wait_for(lambda: not pid_alive(victim), timeout=5, what="a's process fenced")
    os.unlink(tmp_path / "fail-a")
    assert h.wait_assigned("si") == ("b", "a")
    assert h.stop() == 0


ORPHAN_YAML = """
service-groups:
  keep:
    component: {type: non-sa-aware, command: /bin/sleep, args: ["600"]}
    service-units: {k: {}, k2: {}}
    service-instances: {ksi: {csis: {kc: {}}}}
%s"""
GONE_GROUP = """  gone:
    component: {type: non-sa-aware, command: /bin/sleep, args: ["601"]}
    service-units: {g: {}, g2: {}}
    service-instances: {gsi: {csis: {gc: {}}}}
"""


def test_a_survivor_of_a_component_no_longer_described_is_stopped(halod_factory):
    """halod is SIGKILLed; while none runs, the operator removes a group from the description. The next
    halod finds the group's process by its mark and stops it (it used to leave it running for good,
    supervised by nobody); the process of the group that stays is adopted, not restarted."""
    h = halod_factory(ORPHAN_YAML % GONE_GROUP).start()
    assert h.wait_assigned("ksi") == ("k", "k2") and h.wait_assigned("gsi") == ("g", "g2")
    keep, gone = h.pid_of("k"), h.pid_of("g")  # the ACTIVEs' (a STANDBY runs nothing)
    assert keep and gone
    h.remember_children()
    h.proc.kill()
    h.proc.wait()
    h.log.close()
    assert pid_alive(keep) and pid_alive(gone)  # components outlive their halod
    with open(h.config, "w") as f:
        f.write(ORPHAN_YAML % "")
    mark = len(h.logtext())
    h.start()
    h.wait_assigned("ksi")
    wait_for(lambda: not pid_alive(gone), timeout=10, what="the removed group's process stopped")
    after = h.logtext()[mark:]
    assert f"Process {gone} was started for component 'g' by a previous halod, and this node has no such " \
           "component any more; stopping it" in after, after
    assert h.pid_of("k") == keep, after
    assert h.stop() == 0
