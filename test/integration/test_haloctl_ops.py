# SPDX-License-Identifier: MIT
"""haloctl as an operator's scripts use it: --version, the documented exit
statuses (docs/haloctl.md), and the cluster-wide status on several nodes."""
import json
import os
import re
import signal
import subprocess
import urllib.request

import pytest

from halo_harness import HALOCTL, free_port, wait_for
from test_2n import counter_yaml

# docs/haloctl.md, "Exit status"; haloctl --help lists the same.
OK, FAILURE, USAGE, UNREACHABLE, NO_OBJECT, REFUSED, TIMEOUT = range(7)


def run(*args, timeout=30):
    return subprocess.run([HALOCTL, *args], capture_output=True, text=True, timeout=timeout)


@pytest.fixture
def h(halod_factory, tmp_path):
    http = free_port()
    # Health checks far apart: a stopped component is not failed over while a test waits on it.
    h = halod_factory(counter_yaml(tmp_path, free_port(), hc_period="60s", hc_timeout="60s"),
                      extra_args=["--http", f"127.0.0.1:{http}"]).start()
    h.http = http
    assert h.wait_assigned("counter") == ("counter-a", "counter-b")
    yield h
    h.stop()


def test_version_is_the_same_everywhere(h):
    r = run("--version")
    assert r.returncode == OK and re.fullmatch(r"haloctl \d+\.\d+\.\d+\n", r.stdout), r.stdout
    version = r.stdout.split()[1]
    assert h.status()["version"] == version
    with urllib.request.urlopen(f"http://127.0.0.1:{h.http}/v1/health", timeout=5) as resp:
        assert json.loads(resp.read())["version"] == version
    halod = subprocess.run([os.path.join(os.path.dirname(HALOCTL), "..", "halod", "halod"), "--version"],
                           capture_output=True, text=True, timeout=10)
    assert halod.stdout == f"halod {version}\n"


def test_help_documents_the_exit_statuses():
    r = run("--help")
    assert r.returncode == OK
    text = r.stdout[r.stdout.index("Exit status:"):]
    for code, words in ((USAGE, "usage"), (UNREACHABLE, "halod unreachable"), (NO_OBJECT, "no such object"),
                        (REFUSED, "refused in this state"), (TIMEOUT, "timeout")):
        assert re.search(rf"^  {code}  {words}", text, re.M), (code, text)


def test_usage(h):
    assert h.ctl("no-such-command", check=False).returncode == USAGE
    assert h.ctl("lock", check=False).returncode == USAGE  # its argument is missing
    assert h.ctl("--no-such-option", "status", check=False).returncode == USAGE
    assert h.ctl("admin", "lock", "bogus:x", check=False).returncode == USAGE


def test_unreachable(tmp_path):
    r = run("--socket", str(tmp_path / "nobody.sock"), "status")
    assert r.returncode == UNREACHABLE and "cannot reach halod" in r.stderr, r.stderr
    r = run("--socket", str(tmp_path / "nobody.sock"), "admin", "lock", "su:x")
    assert r.returncode == UNREACHABLE
    r = run("--socket", str(tmp_path / "nobody.sock"), "cdb", "get", "/x")
    assert r.returncode == UNREACHABLE
    # A file that is not a listening socket.
    (tmp_path / "plain").write_text("")
    assert run("--socket", str(tmp_path / "plain"), "lock", "counter-a").returncode == UNREACHABLE


def test_no_such_object(h):
    for args in (("lock", "no-such-unit"), ("switchover", "no-such-si"), ("restart", "no-such-component"),
                 ("admin", "lock", "su:no-such-unit"), ("failvec", "no-such-process")):
        r = h.ctl(*args, check=False)
        assert r.returncode == NO_OBJECT, (args, r.returncode, r.stderr)
    r = h.ctl("cdb", "get", "/no/such/path", check=False)
    assert r.returncode == NO_OBJECT and "no value at this path" in r.stderr, r.stderr


def test_refused_in_this_state(h):
    r = h.ctl("unlock", "counter-a", check=False)  # unlocked already
    assert r.returncode == REFUSED, (r.returncode, r.stderr)
    r = h.ctl("repair", "counter-a", check=False)  # not disabled
    assert r.returncode == REFUSED, (r.returncode, r.stderr)
    assert h.si("counter")["active"] == "counter-a"  # nothing moved


def test_timeout(h):
    victim = h.pid_of("counter-a")
    os.kill(victim, signal.SIGSTOP)  # it cannot answer the QUIESCED its lock asks for
    try:
        r = h.ctl("--timeout", "0.5", "lock", "counter-a", check=False)
        assert r.returncode == TIMEOUT, (r.returncode, r.stderr)
        assert "timed out" in r.stderr
    finally:
        os.kill(victim, signal.SIGCONT)
    wait_for(lambda: h.si("counter")["active"] == "counter-b", timeout=30, what="the lock to complete")
    h.ctl("unlock", "counter-a")


# ---- several nodes ------------------------------------------------------------------------------


def rows(text):
    """The component table of haloctl status: {component: (node, type, presence, pid)}."""
    out, inside = {}, False
    for line in text.splitlines():
        if line.strip().startswith("COMPONENT"):
            inside = True
            continue
        if inside and not line.strip():
            inside = False
        if inside and not line.startswith("   "):  # not a continuation line
            f = line.split()
            if f[3] == "unit":  # "unit IN-SERVICE"
                f[3:5] = [f[3] + " " + f[4]]
            out[f[0]] = (f[1], f[2], f[3], f[4])
    return out


def test_status_on_several_nodes_lists_every_nodes_components(etcd, halod_factory, tmp_path):
    from test_cluster import cluster_yaml
    yaml = cluster_yaml(tmp_path, free_port())
    hs = {n: halod_factory(yaml, name=n, extra_args=["--node", n, "--etcd", etcd.endpoints, "--lease-ttl", "1",
                                                     "--http", "none"]).start() for n in ("n1", "n2")}
    for h in hs.values():
        wait_for(lambda: h.si("counter")["active"] == "counter-0" and h.si("counter")["standby"] == "counter-1",
                 timeout=20, what="counter-0 ACTIVE and counter-1 STANDBY")
    t1, t2 = rows(hs["n1"].ctl("status").stdout), rows(hs["n2"].ctl("status").stdout)
    pid0, pid1 = hs["n1"].pid_of("counter-0"), hs["n2"].pid_of("counter-1")
    assert t1 == {"counter-0": ("n1", "sa-aware", "INSTANTIATED", str(pid0)),
                  "counter-1": ("n2", "sa-aware", "unit IN-SERVICE", "-")}
    assert t2 == {"counter-0": ("n1", "sa-aware", "unit IN-SERVICE", "-"),
                  "counter-1": ("n2", "sa-aware", "INSTANTIATED", str(pid1))}
    # n2 goes away: n1 no longer knows its unit, and says so.
    hs["n2"].kill_all()
    wait_for(lambda: rows(hs["n1"].ctl("status").stdout)["counter-1"][2] == "unit UNKNOWN", timeout=15,
             what="n1 to see n2's unit gone")
    assert hs["n1"].stop() == 0
