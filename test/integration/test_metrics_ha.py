# SPDX-License-Identifier: MIT
"""The metrics an HA operator alerts on (docs/metrics.md), scraped from a real
halod's /metrics while its ACTIVE is killed, hung or switched over; every
answer passes `promtool check metrics` (Debian's prometheus package)."""
import os
import re
import shutil
import signal
import subprocess
import urllib.request

import pytest

from halo_harness import free_port, wait_for
from test_2n import ask, counter_yaml

PROMTOOL = shutil.which("promtool")
SAMPLE = re.compile(r'^([a-zA-Z_:][a-zA-Z0-9_:]*)(?:\{(.*)\})? (\S+)$')
LABEL = re.compile(r'([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\]|\\.)*)"')


def scrape(port):
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5) as r:
        return r.read().decode()


def samples(text):
    """[(name, {label: value}, value)] of an exposition."""
    out = []
    for line in text.splitlines():
        if line.startswith("#") or not line:
            continue
        m = SAMPLE.match(line)
        assert m, f"not a sample line: {line!r}"
        out.append((m.group(1), dict(LABEL.findall(m.group(2) or "")), float(m.group(3))))
    return out


def value(text, name, **labels):
    """The value of the one sample of name with exactly these labels (None: absent)."""
    found = [v for n, ls, v in samples(text) if n == name and ls == labels]
    assert len(found) <= 1, (name, labels, found)
    return found[0] if found else None


def family(text, name):
    return [(ls, v) for n, ls, v in samples(text) if n == name]


def promtool_ok(text):
    """promtool check metrics: no error and no lint problem on the live answer."""
    assert PROMTOOL, "promtool is missing: apt-get install prometheus (tools/install-deps does)"
    r = subprocess.run([PROMTOOL, "check", "metrics"], input=text, capture_output=True, text=True, timeout=30)
    assert r.returncode == 0 and not r.stdout.strip() and not r.stderr.strip(), r.stdout + r.stderr


@pytest.fixture
def h(halod_factory, tmp_path):
    port, http = free_port(), free_port()
    h = halod_factory(counter_yaml(tmp_path, port), extra_args=["--http", f"127.0.0.1:{http}"]).start()
    h.port, h.http = port, http
    assert h.wait_assigned("counter") == ("counter-a", "counter-b")
    yield h
    h.stop()


def test_before_any_failover(h):
    text = scrape(h.http)
    promtool_ok(text)
    node = h.su("counter-a")["node"]
    assert value(text, "halo_si_active", si="counter", su="counter-a", node=node) == 1
    assert [ls for ls, _ in family(text, "halo_si_active")] == [{"si": "counter", "su": "counter-a", "node": node}]
    for reason in ("failure", "node", "switchover", "admin"):
        assert value(text, "halo_failovers_total", sg="counter", si="counter", reason=reason) == 0
    assert value(text, "halo_failover_duration_seconds_count") == 0
    assert value(text, "halo_failover_duration_seconds_bucket", le="+Inf") == 0
    assert value(text, "halo_su_restarts_total", su="counter-a") == 0
    assert value(text, "halo_health_check_failures_total", component="counter-a") == 0
    assert value(text, "halo_coordinator") == 1
    version = h.status()["version"]
    assert re.fullmatch(r"\d+\.\d+\.\d+", version)
    assert value(text, "halo_build_info", version=version) == 1
    assert "# TYPE halo_si_generation gauge" in text
    assert "# TYPE halo_failover_duration_seconds histogram" in text


def test_kill9_of_the_active_counts_one_failover(h):
    node = h.su("counter-a")["node"]
    os.kill(h.pid_of("counter-a"), signal.SIGKILL)
    wait_for(lambda: h.si("counter")["active"] == "counter-b", timeout=10, what="counter-b ACTIVE")
    assert h.wait_assigned("counter") == ("counter-b", "counter-a")
    text = scrape(h.http)
    promtool_ok(text)
    assert value(text, "halo_failovers_total", sg="counter", si="counter", reason="failure") == 1
    for reason in ("node", "switchover", "admin"):
        assert value(text, "halo_failovers_total", sg="counter", si="counter", reason=reason) == 0
    assert value(text, "halo_failover_duration_seconds_count") == 1
    took = value(text, "halo_failover_duration_seconds_sum")
    assert 0 < took < 10
    # The one observation sits in every bucket from the first bound at or above it.
    for ls, v in family(text, "halo_failover_duration_seconds_bucket"):
        assert v == (1 if float(ls["le"]) >= took else 0), (ls, v, took)
    assert [ls for ls, _ in family(text, "halo_si_active")] == [{"si": "counter", "su": "counter-b", "node": node}]
    # The killed unit was started again after its failover.
    assert value(text, "halo_su_restarts_total", su="counter-a") == 1
    assert ask(h.port, "PING") == "PONG"


def test_a_hung_active_counts_a_health_check_failure(h):
    victim = h.pid_of("counter-a")
    os.kill(victim, signal.SIGSTOP)
    try:
        wait_for(lambda: h.si("counter")["active"] == "counter-b", timeout=10, what="failover of the hung ACTIVE")
    finally:
        try:
            os.kill(victim, signal.SIGCONT)  # never left stopped if the failover did not come
        except ProcessLookupError:
            pass  # SIGKILLed by its unit's fencing, and reaped
    text = scrape(h.http)
    promtool_ok(text)
    assert value(text, "halo_health_check_failures_total", component="counter-a") >= 1
    assert value(text, "halo_health_check_failures_total", component="counter-b") == 0
    assert value(text, "halo_failovers_total", sg="counter", si="counter", reason="failure") == 1


def test_switchover_is_counted_as_such(h):
    h.ctl("switchover", "counter")
    wait_for(lambda: h.si("counter")["active"] == "counter-b", timeout=10, what="counter-b ACTIVE")
    assert h.wait_assigned("counter") == ("counter-b", "counter-a")
    text = scrape(h.http)
    promtool_ok(text)
    assert value(text, "halo_failovers_total", sg="counter", si="counter", reason="switchover") == 1
    assert value(text, "halo_failovers_total", sg="counter", si="counter", reason="failure") == 0
    assert value(text, "halo_failover_duration_seconds_count") == 1
    assert value(text, "halo_su_restarts_total", su="counter-a") == 0


def test_health_answers_with_the_version(h):
    import json
    with urllib.request.urlopen(f"http://127.0.0.1:{h.http}/v1/health", timeout=5) as r:
        doc = json.loads(r.read())
    assert doc == {"status": "ok", "version": h.status()["version"]}


# ---- several nodes ------------------------------------------------------------------------------


@pytest.fixture
def two(etcd, halod_factory, tmp_path):
    from test_cluster import cluster_yaml
    yaml = cluster_yaml(tmp_path, free_port())
    http = {n: free_port() for n in ("n1", "n2")}
    hs = {n: halod_factory(yaml, name=n, extra_args=[
        "--node", n, "--etcd", etcd.endpoints, "--lease-ttl", "1", "--http", f"127.0.0.1:{http[n]}"]).start()
        for n in ("n1", "n2")}
    for h in hs.values():
        wait_for(lambda: h.si("counter")["active"] == "counter-0" and h.si("counter")["standby"] == "counter-1",
                 timeout=20, what="counter-0 ACTIVE and counter-1 STANDBY")
    yield hs, http
    for h in hs.values():
        if h.proc.poll() is None:
            h.stop()


def test_two_nodes_count_a_failover_once_and_agree_on_placement(two):
    hs, http = two
    texts = {n: scrape(http[n]) for n in hs}
    assert sorted(value(t, "halo_coordinator") for t in texts.values()) == [0, 1]
    for t in texts.values():
        promtool_ok(t)
        assert [ls for ls, _ in family(t, "halo_si_active")] == [{"si": "counter", "su": "counter-0", "node": "n1"}]
    os.kill(hs["n1"].pid_of("counter-0"), signal.SIGKILL)
    for h in hs.values():
        wait_for(lambda: h.si("counter")["active"] == "counter-1", timeout=15, what="counter-1 ACTIVE")
    texts = {n: scrape(http[n]) for n in hs}
    total = 0
    for n, t in texts.items():
        promtool_ok(t)
        assert [ls for ls, _ in family(t, "halo_si_active")] == [{"si": "counter", "su": "counter-1", "node": "n2"}]
        failures = value(t, "halo_failovers_total", sg="counter", si="counter", reason="failure")
        # Only the coordinator counts (and observes) it.
        assert failures == value(t, "halo_coordinator") == value(t, "halo_failover_duration_seconds_count"), n
        total += failures
    assert total == 1


def test_a_lost_node_is_counted_as_reason_node(two):
    hs, http = two
    hs["n1"].kill_all()  # halod and its components: the node is gone, its lease ends
    wait_for(lambda: hs["n2"].si("counter")["active"] == "counter-1", timeout=20, what="counter-1 ACTIVE on n2")
    text = scrape(http["n2"])
    promtool_ok(text)
    assert value(text, "halo_coordinator") == 1
    assert value(text, "halo_failovers_total", sg="counter", si="counter", reason="node") == 1
    assert value(text, "halo_failovers_total", sg="counter", si="counter", reason="failure") == 0
    assert value(text, "halo_failover_duration_seconds_count") == 1


def test_the_same_unit_back_is_no_failover_and_starts_no_clock(h):
    """With its standby locked, the killed ACTIVE comes back ACTIVE itself: no failover.  A later
    failover's duration starts at its own failure, not at that earlier one."""
    import time
    h.ctl("lock", "counter-b")
    wait_for(lambda: not h.si("counter")["standby"], what="counter-b out of the SI")
    first = h.pid_of("counter-a")
    os.kill(first, signal.SIGKILL)
    wait_for(lambda: h.pid_of("counter-a") not in (None, first) and h.si("counter")["active"] == "counter-a",
             timeout=10, what="counter-a ACTIVE again")
    text = scrape(h.http)
    assert all(v == 0 for _, v in family(text, "halo_failovers_total")), family(text, "halo_failovers_total")
    assert value(text, "halo_failover_duration_seconds_count") == 0
    time.sleep(1.5)  # lets a clock wrongly started at the first failure run visibly
    h.ctl("unlock", "counter-b")
    assert h.wait_assigned("counter") == ("counter-a", "counter-b")
    t0 = time.monotonic()
    os.kill(h.pid_of("counter-a"), signal.SIGKILL)
    wait_for(lambda: h.si("counter")["active"] == "counter-b", timeout=10, what="counter-b ACTIVE")
    took = time.monotonic() - t0
    text = scrape(h.http)
    assert value(text, "halo_failovers_total", sg="counter", si="counter", reason="failure") == 1
    assert value(text, "halo_failover_duration_seconds_count") == 1
    assert value(text, "halo_failover_duration_seconds_sum") <= took


def test_a_lock_is_counted_as_admin_and_an_operators_restart_is_no_restart(h):
    h.ctl("admin", "restart", "su:counter-a")
    wait_for(lambda: h.comp("counter-a")["instantiations"] == 2 and h.comp("counter-a")["presence"] == "INSTANTIATED",
             timeout=10, what="counter-a restarted by the operator")
    h.ctl("lock", "counter-a")
    assert h.si("counter")["active"] == "counter-b"
    text = scrape(h.http)
    promtool_ok(text)
    assert value(text, "halo_failovers_total", sg="counter", si="counter", reason="admin") == 1
    assert value(text, "halo_failovers_total", sg="counter", si="counter", reason="failure") == 0
    assert value(text, "halo_su_restarts_total", su="counter-a") == 0


def test_the_cdb_role_follows_the_ha_calls(halod_factory):
    from halo_harness import cdb_only_yaml
    http, repl = free_port(), free_port()
    h = halod_factory(cdb_only_yaml("ha", "{tick: 100ms, dead-after: 600ms}"),
                      extra_args=["--http", f"127.0.0.1:{http}", "--cdb-listen", f"127.0.0.1:{repl}"]).start()

    def roles():
        text = scrape(http)
        promtool_ok(text)
        return {ls["role"]: v for ls, v in family(text, "halo_cdb_role")}

    assert roles() == {"NONE": 1, "SECONDARY": 0, "PRIMARY": 0, "SECONDARY_RELAY": 0}
    h.ctl("ha", "--token", "s3cret", "beprimary", "n1")
    assert roles() == {"NONE": 0, "SECONDARY": 0, "PRIMARY": 1, "SECONDARY_RELAY": 0}
    assert h.stop() == 0
