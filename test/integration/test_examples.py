# SPDX-License-Identifier: MIT
"""The demos of `make demo` run as a user would run them (no terminal: no pauses)."""
import os
import subprocess

from halo_harness import BUILD, free_port

TOP = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))


def free_block(n):
    """A base port with the n ports from it free on loopback."""
    return free_port(n)


def test_recovery_demo_shows_a_catch_up():
    env = dict(os.environ, HALO_DEMO_REPLOG_PORT=str(free_block(3)))
    r = subprocess.run([os.path.join(TOP, "examples", "recovery-demo.sh"), BUILD], env=env, stdin=subprocess.DEVNULL,
                       capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, r.stdout + r.stderr
    out = r.stdout
    # replog-b missed entries 4..8 while it was down, replayed them before serving, and the cluster recorded it.
    assert "replog replog-b: restarted after a failure: waiting for my failure vector" in out, out
    assert "caught up: replayed 5 entries (3 -> 8) from replog-a" in out, out
    assert out.count("COUNT -> 8") == 3 and "entry 6 -> entry-6" in out, out
    # Its vector is compacted per object: its own entry says its last step before the ONLINE (RECOVERING).
    assert "process:replog-b: current epoch 1" in out and "RECOVERING" in out and "FAILED" in out, out
    assert "Recovery demo complete." in out


def test_failover_demo():
    env = dict(os.environ, HALO_DEMO_PORT=str(free_block(1)))
    r = subprocess.run([os.path.join(TOP, "examples", "demo.sh"), BUILD], env=env, stdin=subprocess.DEVNULL,
                       capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, r.stdout + r.stderr
    assert "answered CSI set ACTIVE" in r.stdout and "(the count survived the failover)" in r.stdout, r.stdout
    assert "no component process is left" in r.stdout and "Demo complete." in r.stdout


def test_web_demo_floating_address_follows_the_failover():
    """An unmodified python3 -m http.server behind IPaddr2's floating address, in a
    network namespace of the demo's own: the client on the floating address sees
    web-a, an outage, then web-b after the SIGKILL, and web-a again after the
    switchover; halod's stop releases the address and leaves no process."""
    r = subprocess.run([os.path.join(TOP, "examples", "web-demo.sh"), BUILD], stdin=subprocess.DEVNULL,
                       capture_output=True, text=True, timeout=180)
    assert r.returncode == 0, r.stdout + r.stderr
    out = r.stdout
    assert "web demo skipped" not in out, out
    assert "configuration OK" in out, out  # IPaddr2's validate-all took the params, in the namespace
    kill = out[out.index("Kill the ACTIVE web server"):out.index("switch the service back")]
    assert "served by web-a for" in kill and "then no answer" in kill and "then served by web-b" in kill, out
    back = out[out.index("switch the service back"):out.index("Stop halod")]
    assert "then served by web-a" in back, out
    assert "169.254.100.100" not in out[out.index("Stop halod"):], out  # released
    assert "Web demo complete." in out, out
    netns = subprocess.run(["ip", "netns", "list"], capture_output=True, text=True).stdout
    assert "halo-web-" not in netns, netns
