# SPDX-License-Identifier: MIT
"""The log service (issue 17, point 4; docs/logging.md "Components' records"): components write
records through libhalo's halo_log(), halod logs them tagged with the component and the stream, or
appends them to the file of a stream of the description's log-streams (rotated at its size), and an
operator changes a component's or a stream's level at runtime (haloctl log-level comp:NAME LEVEL),
which the component's libhalo applies before it formats a record; the levels outlive halod."""
import os
import re
import shutil
import signal
import subprocess
import tempfile

from halo_harness import BUILD, HALOD, start_nodes, wait_for

LOGCOMP = os.path.join(BUILD, "test", "logcomp")


def yaml(tmp, nodes=None, streams=""):
    where = (lambda u: f"node: {nodes[u]}, ") if nodes else (lambda u: "")
    head = "cluster: test\nnodes:\n" + "".join(f"  {n}: {{}}\n" for n in sorted(set(nodes.values()))) if nodes else ""
    units = "".join(f"      {u}: {{{where(u)}component: {{env: {{LOGCOMP_FILE: {tmp}/{u}.ticks}}}}}}\n"
                    for u in ("a", "b"))
    return f"""{head}
{streams}
service-groups:
  g:
    redundancy: 2N
    component:
      command: {LOGCOMP}
    service-units:
{units}    service-instances: {{s: {{csis: {{c: {{}}}}}}}}
"""


def ticks(tmp, unit):
    """The last tick line the unit's logcomp wrote: {"n": N, "debug": 0|1, ...}."""
    try:
        with open(f"{tmp}/{unit}.ticks") as f:
            lines = f.read().splitlines()
    except OSError:
        return None
    lines = [ln for ln in lines if ln.startswith("tick ")]
    m = re.fullmatch(r"tick (\d+) debug=(\d) trace=(\d) audit-debug=(\d)", lines[-1]) if lines else None
    return m and {"n": int(m[1]), "debug": int(m[2]), "trace": int(m[3]), "audit-debug": int(m[4])}


def wait_ticks(tmp, unit, **want):
    """Waits for two tick lines that show want (the levels reached the component); returns the
    number of the first: every record of that tick and later ones was written at those levels
    (libhalo takes new levels only when it reads its link, between ticks)."""
    seen = []

    def ok():
        t = ticks(tmp, unit)
        if t and all(t[k] == v for k, v in want.items()):
            seen.append(t["n"])
        return len(set(seen)) >= 2
    wait_for(ok, timeout=15, what=f"{unit}'s logcomp to see {want}")
    return seen[0]


def records(h, unit, stream, severity, since=0):
    """The tick numbers (since tick `since`) of unit's records of that stream and severity in halod's log."""
    ns = [int(n) for n in re.findall(rf"\b{unit}\[{stream}\] {severity}: tick (\d+)", h.logtext())]
    return [n for n in ns if n >= since]


def test_levels_change_at_runtime_and_libhalo_drops_what_is_below(halod_factory, tmp_path):
    h = halod_factory(yaml(tmp_path), log_level="info").start()
    h.wait_assigned("s")
    wait_for(lambda: records(h, "a", "app", "error") and records(h, "b", "app", "info"), what="the first records")
    t = wait_ticks(tmp_path, "a", debug=0, trace=0)
    # The defaults: info and above pass; debug and trace are dropped in the component.
    assert not records(h, "a", "app", "debug") and not records(h, "a", "app", "trace")
    assert "HALO_COMPONENT" not in h.logtext()  # fields go to the journal only
    # A record's newline cannot forge a line of halod's log.
    wait_for(lambda: re.search(r"a\[app\] warning: tick \d+ forged FAKE", h.logtext()), what="the forged record")
    assert not re.search(r"^FAKE", h.logtext(), re.M)

    r = h.ctl("log-level", "comp:a", "debug")
    assert "comp:a logs at 'debug' from now on" in r.stdout
    assert "Log level of comp:a=debug set by client pid" in h.logtext()
    t = wait_ticks(tmp_path, "a", debug=1, trace=0, **{"audit-debug": 1})
    wait_for(lambda: records(h, "a", "app", "debug", t), what="a's debug records")
    wait_for(lambda: records(h, "a", "audit", "debug"), what="a's audit records at its level")
    # Only a's level changed.
    assert ticks(tmp_path, "b")["debug"] == 0 and not records(h, "b", "app", "debug")

    # A stream's level wins over the component's.
    h.ctl("log-level", "stream:audit", "error")
    t = wait_ticks(tmp_path, "a", debug=1, **{"audit-debug": 0})
    wait_for(lambda: len(records(h, "a", "app", "debug", t)) >= 3, what="a's debug records still")
    assert not records(h, "a", "audit", "debug", t)
    listed = h.ctl("log-level").stdout
    assert re.search(r"^comp:a\s+debug$", listed, re.M) and re.search(r"^stream:audit\s+error$", listed, re.M)

    h.ctl("log-level", "comp:a", "trace")
    wait_ticks(tmp_path, "a", trace=1)
    wait_for(lambda: records(h, "a", "app", "trace"), what="a's trace records")

    h.ctl("log-level", "comp:a", "default")
    h.ctl("log-level", "stream:audit", "default")
    t = wait_ticks(tmp_path, "a", debug=0, trace=0, **{"audit-debug": 0})
    wait_for(lambda: len(records(h, "a", "app", "info", t)) >= 3, what="a's info records")
    assert not records(h, "a", "app", "debug", t) and not records(h, "a", "audit", "debug", t)
    assert "comp:a" not in h.ctl("log-level").stdout


def test_a_bad_level_or_name_is_a_usage_error_and_changes_nothing(halod_factory, tmp_path):
    h = halod_factory(yaml(tmp_path), log_level="info").start()
    h.wait_assigned("s")
    for what, level in (("comp:a", "loud"), ("comp:a/b c", "debug"), ("stream:a b", "debug"),
                        ("stream:" + "x" * 65, "debug"), ("comp:", "debug")):
        r = h.ctl("log-level", what, level, check=False)
        assert r.returncode == 2 and "want comp:NAME or stream:NAME" in r.stderr, (what, r.stderr)
    assert "comp:" not in h.ctl("log-level").stdout and "stream:" not in h.ctl("log-level").stdout
    wait_ticks(tmp_path, "a", debug=0)


def test_a_component_that_floods_loses_records_not_halod(halod_factory, tmp_path):
    """A component writing far faster than halod logs: its records are dropped in its own libhalo
    (halo_log never waits), halod says how many, and keeps serving everyone else."""
    text = yaml(tmp_path).replace(f"command: {LOGCOMP}", f"command: {LOGCOMP}\n      env: {{LOGCOMP: flood}}")
    text = text.replace("component: {env: {LOGCOMP_FILE", "component: {env: {LOGCOMP: flood, LOGCOMP_FILE")
    h = halod_factory(text, log_level="info").start()
    h.wait_assigned("s")
    wait_for(lambda: re.search(r"\b[ab]: \d+ log records dropped \(its link to halod was full\)", h.logtext()),
             timeout=30, what="halod to report dropped records")
    for _ in range(3):  # halod answers its operator meanwhile
        assert h.ctl("status", timeout=10).returncode == 0
    h.ctl("switchover", "s")
    h.wait_assigned("s")


def test_a_level_set_on_one_node_reaches_a_component_on_another(etcd, halod_factory, tmp_path):
    hs, _ = start_nodes(halod_factory, yaml(tmp_path, {"a": "n1", "b": "n2"}), etcd.endpoints)
    hs["n1"].wait_assigned("s")
    wait_ticks(tmp_path, "b", debug=0)
    hs["n1"].ctl("log-level", "comp:b", "debug")
    wait_ticks(tmp_path, "b", debug=1)
    wait_for(lambda: records(hs["n2"], "b", "app", "debug"), what="b's debug records in n2's log")
    assert "Log level of comp:b=debug set by another node's operator" in hs["n2"].logtext()


def kill_and_restart(h):
    """kill -9 of halod, and a new one that adopts the components: when a is registered again."""
    pid = h.pid_of("a")
    h.proc.send_signal(signal.SIGKILL)
    h.proc.wait()
    h.start()
    wait_for(lambda: h.comp("a")["pid"] == pid and h.comp("a")["registered"], what="a adopted and registered again")


def test_the_levels_outlive_a_killed_halod_and_a_corrupt_file_means_the_defaults(halod_factory, tmp_path):
    """The levels are kept in the state directory: after a kill -9 and a restart, the adopted
    component's libhalo (which forgot them with its old link) is told them again and drops what is
    below them again.  A levels file that is not what halod writes is a warning and the defaults."""
    h = halod_factory(yaml(tmp_path), log_level="info").start()
    h.wait_assigned("s")
    h.ctl("log-level", "comp:a", "debug")
    h.ctl("log-level", "stream:audit", "error")
    wait_ticks(tmp_path, "a", debug=1, **{"audit-debug": 0})
    levels = os.path.join(h.state, "log-levels.json")
    wait_for(lambda: os.path.exists(levels) and "audit" in open(levels).read(), what="the levels kept")
    kill_and_restart(h)
    t = wait_ticks(tmp_path, "a", debug=1, **{"audit-debug": 0})
    wait_for(lambda: records(h, "a", "app", "debug", t), what="a's debug records after the restart")
    listed = h.ctl("log-level").stdout
    assert re.search(r"^comp:a\s+debug$", listed, re.M) and re.search(r"^stream:audit\s+error$", listed, re.M)
    assert "Log levels of 2 components and streams restored" in h.logtext()
    # Dropped, then restarted: dropped it stays.
    h.ctl("log-level", "comp:a", "default")
    wait_for(lambda: '"a"' not in open(levels).read(), what="the levels kept without comp:a")
    kill_and_restart(h)
    wait_ticks(tmp_path, "a", debug=0, **{"audit-debug": 0})
    assert "comp:a" not in h.ctl("log-level").stdout

    for corrupt in (b'{"components": {"a": "loud"}, "streams": {}}', b"\x00garbage{"):
        h.ctl("log-level", "comp:a", "debug")
        wait_ticks(tmp_path, "a", debug=1)
        h.proc.send_signal(signal.SIGKILL)
        h.proc.wait()
        with open(levels, "wb") as f:
            f.write(corrupt)
        h.start()
        wait_for(lambda: h.comp("a")["registered"], what="a adopted and registered again")
        wait_ticks(tmp_path, "a", debug=0)  # the defaults
        assert f"The log levels kept in '{levels}' are not used" in h.logtext()
        assert "comp:" not in h.ctl("log-level").stdout


LINE = re.compile(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z local (\w+)\[(\w+)\] (\w+): (.*)")


def file_lines(path):
    """The whole lines of a stream's file, each split in (component, stream, severity, text); a line
    that is not of that form fails the test."""
    try:
        with open(path, errors="replace") as f:
            text = f.read()
    except OSError:
        return []
    lines = text.split("\n")[:-1]  # the last, if not ended, is being written
    out = []
    for ln in lines:
        m = LINE.fullmatch(ln)
        assert m, f"{path}: a line not of the form 'TIME NODE COMP[STREAM] SEVERITY: TEXT': {ln!r}"
        out.append(m.groups())
    return out


def test_a_file_stream_gets_its_records_as_lines_and_halods_log_does_not(halod_factory, tmp_path):
    streams = f"log-streams:\n  app: {{file: {tmp_path}/app.log}}\n"
    h = halod_factory(yaml(tmp_path, streams=streams), log_level="info").start()
    h.wait_assigned("s")
    app = str(tmp_path / "app.log")
    wait_for(lambda: {("a", "app", "error"), ("b", "app", "info")} <= {ln[:3] for ln in file_lines(app)},
             what="a's and b's records in app.log")
    assert os.stat(app).st_mode & 0o777 == 0o640
    # A forged newline is a space in the file too.
    wait_for(lambda: any(re.fullmatch(r"tick \d+ forged FAKE", ln[3]) for ln in file_lines(app)),
             what="the forged record")
    assert not re.search(r"^FAKE", open(app).read(), re.M)
    # The stream goes to its file only; the others still go to halod's log.
    h.ctl("log-level", "comp:a", "debug")
    wait_for(lambda: records(h, "a", "audit", "debug"), what="a's audit records in halod's log")
    wait_for(lambda: ("a", "app", "debug") in {ln[:3] for ln in file_lines(app)}, what="a's debug records in app.log")
    assert not records(h, "a", "app", "error") and not records(h, "b", "app", "info")
    # An external logrotate moves the file and sends SIGHUP: halod writes a new one.
    os.rename(app, app + ".old")
    h.proc.send_signal(signal.SIGHUP)
    wait_for(lambda: len(file_lines(app)) >= 3, what="records in a new app.log after SIGHUP")
    assert h.ctl("status", timeout=10).returncode == 0
    # The section does not change live.
    with open(h.config) as f:
        text = f.read()
    with open(h.config, "w") as f:
        f.write(text.replace("app.log}", "app.log, keep: 2}"))
    r = h.ctl("reload", check=False)
    assert r.returncode == 5 and re.search(r"'log-streams\.app\.keep' added: cannot be applied live \(restart halod",
                                           r.stderr), r.stderr


def test_a_file_stream_rotates_at_its_size_and_keeps_its_number_of_files(halod_factory, tmp_path):
    text = yaml(tmp_path, streams=f"log-streams:\n  app: {{file: {tmp_path}/app.log, max-size: 16KiB, keep: 2}}\n")
    text = text.replace("component: {env: {LOGCOMP_FILE", "component: {env: {LOGCOMP: flood, LOGCOMP_FILE")
    h = halod_factory(text, log_level="info").start()
    h.wait_assigned("s")
    app = str(tmp_path / "app.log")
    wait_for(lambda: os.path.exists(app + ".2") and len(file_lines(app + ".2")) > 100, timeout=20,
             what="app.log rotated twice")
    for _ in range(20):  # while it keeps rotating
        lines = 0
        for f in (app, app + ".1", app + ".2"):
            try:
                size = os.stat(f).st_size
            except FileNotFoundError:  # between its rename and the new file's creation
                continue
            assert size <= 16384, (f, size)
            lines += sum(ln[3].startswith("flood ") for ln in file_lines(f))
        assert not os.path.exists(app + ".3")
    assert lines > 300  # ~270 records of ~60 bytes fill a file: the rotated ones are full
    assert h.ctl("status", timeout=10).returncode == 0


def test_a_directory_missing_or_not_writable_refuses_the_description(tmp_path):
    missing = tmp_path / "missing"
    cfg = tmp_path / "cluster.yaml"
    cfg.write_text(yaml(tmp_path, streams=f"log-streams:\n  app: {{file: {missing}/app.log}}\n"))
    want = f"log stream 'app': the directory '{missing}' of its file does not exist"
    r = subprocess.run([HALOD, "--check", str(cfg)], capture_output=True, text=True, timeout=30)
    assert r.returncode != 0 and want in r.stdout + r.stderr, r
    r = subprocess.run([HALOD, "--state-dir", str(tmp_path / "state"), "--socket", str(tmp_path / "s.sock"), str(cfg)],
                       capture_output=True, text=True, timeout=30)
    assert r.returncode != 0 and want in r.stdout + r.stderr, r

    # A directory halod's user cannot write: root writes anywhere, so the check runs as nobody then.
    top = tempfile.mkdtemp(prefix="halo-test-logs-")
    try:
        ro = os.path.join(top, "logs")
        os.mkdir(ro)
        os.chmod(top, 0o755)
        os.chmod(ro, 0o755 if os.geteuid() == 0 else 0o555)
        cfg = os.path.join(top, "cluster.yaml")
        with open(cfg, "w") as f:
            f.write(yaml(tmp_path, streams=f"log-streams:\n  app: {{file: {ro}/app.log}}\n"))
        os.chmod(cfg, 0o644)
        who = ["setpriv", "--reuid=65534", "--regid=65534", "--clear-groups"] if os.geteuid() == 0 else []
        r = subprocess.run([*who, HALOD, "--check", cfg], capture_output=True, text=True, timeout=30)
        want = f"log stream 'app': the directory '{ro}' of its file is not writable: Permission denied"
        assert r.returncode != 0 and want in r.stdout + r.stderr, r
    finally:
        os.chmod(ro, 0o755)
        shutil.rmtree(top)


def test_a_file_that_cannot_be_written_drops_records_and_halod_serves(halod_factory, tmp_path):
    """A disk full (/dev/full) and a file replaced by a directory at run time: halod says how many
    records it dropped and why, at most once a second, serves its operator, and writes the file
    again once it can."""
    streams = f"log-streams:\n  app: {{file: {tmp_path}/app.log}}\n  audit: {{file: /dev/full}}\n"
    h = halod_factory(yaml(tmp_path, streams=streams), log_level="info").start()
    h.wait_assigned("s")
    h.ctl("log-level", "comp:a", "debug")  # audit's records, into /dev/full
    full = re.compile(r"Log stream 'audit': (\d+) records dropped \('/dev/full': cannot write: No space left on device\)")
    wait_for(lambda: len(full.findall(h.logtext())) >= 3, what="audit's drops reported thrice")
    # At most once a second: "12:00:00.123 halod[supervisor] warning: Log stream 'audit': ..."
    times = [int(m[0]) * 3600 + int(m[1]) * 60 + float(m[2])
             for m in re.findall(r"^(\d\d):(\d\d):(\d\d\.\d+) .*Log stream 'audit': \d+ records dropped", h.logtext(), re.M)]
    assert all(b - a >= 0.99 for a, b in zip(times, times[1:])), times
    app = str(tmp_path / "app.log")
    wait_for(lambda: file_lines(app), what="records in app.log")
    # Removed: halod sees it within a second, counts what went into it since it last saw it, creates it again.
    os.unlink(app)
    removed = re.compile(rf"Log stream 'app': (\d+ records dropped \('|'){re.escape(app)}' was removed")
    wait_for(lambda: removed.search(h.logtext()) and file_lines(app), what="app.log removed seen, and created again")
    os.unlink(app)
    os.mkdir(app)
    h.proc.send_signal(signal.SIGHUP)  # opens the file again: a directory now (the reload itself is refused)
    gone = re.compile(rf"Log stream 'app': (\d+) records dropped \('{re.escape(app)}': cannot open: Is a directory\)")
    wait_for(lambda: gone.search(h.logtext()), what="app's drops reported")
    for _ in range(3):
        assert h.ctl("status", timeout=10).returncode == 0
    h.ctl("switchover", "s")
    h.wait_assigned("s")
    os.rmdir(app)
    wait_for(lambda: file_lines(app), timeout=15, what="records in app.log again")
    assert h.proc.poll() is None
