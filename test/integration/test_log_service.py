# SPDX-License-Identifier: MIT
"""The log service (issue 17, point 4; docs/logging.md "Components' records"): components write
records through libhalo's halo_log(), halod logs them tagged with the component and the stream, and
an operator changes a component's or a stream's level at runtime (haloctl log-level comp:NAME LEVEL),
which the component's libhalo applies before it formats a record."""
import os
import re

from halo_harness import BUILD, start_nodes, wait_for

LOGCOMP = os.path.join(BUILD, "test", "logcomp")


def yaml(tmp, nodes=None):
    where = (lambda u: f"node: {nodes[u]}, ") if nodes else (lambda u: "")
    head = "cluster: test\nnodes:\n" + "".join(f"  {n}: {{}}\n" for n in sorted(set(nodes.values()))) if nodes else ""
    units = "".join(f"      {u}: {{{where(u)}component: {{env: {{LOGCOMP_FILE: {tmp}/{u}.ticks}}}}}}\n"
                    for u in ("a", "b"))
    return f"""{head}
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


def test_a_restarted_halod_starts_from_the_defaults_and_says_so_to_the_components(halod_factory, tmp_path):
    """The levels live in halod's memory: after a kill -9 and a restart the adopted components
    log at the defaults again, as the new halod says (their libhalo forgot the old ones with the
    link), not at a level nobody can see any more."""
    import signal
    h = halod_factory(yaml(tmp_path), log_level="info").start()
    h.wait_assigned("s")
    h.ctl("log-level", "comp:a", "debug")
    wait_ticks(tmp_path, "a", debug=1)
    pid = h.pid_of("a")
    h.proc.send_signal(signal.SIGKILL)
    h.proc.wait()
    h.start()
    wait_for(lambda: h.comp("a")["pid"] == pid and h.comp("a")["registered"], what="a adopted and registered again")
    wait_ticks(tmp_path, "a", debug=0)
    assert "comp:a" not in h.ctl("log-level").stdout
