# SPDX-License-Identifier: MIT
"""`make demo` when its ports are taken by something else: it says at once
which port is busy when the ports were asked for, and picks free ones when
the example's own are taken (examples/demo-lib.sh, pick_ports)."""
import os
import socket
import subprocess
import time

from halo_harness import BUILD
from test_examples import TOP, free_block

DEMO = os.path.join(TOP, "examples", "demo.sh")
RECOVERY_DEMO = os.path.join(TOP, "examples", "recovery-demo.sh")


def occupy(port):
    """A socket listening on 127.0.0.1:port, or None if something else holds it already (busy either way)."""
    s = socket.socket()
    try:
        s.bind(("127.0.0.1", port))
    except OSError:
        s.close()
        return None
    s.listen(1)
    return s


def run(script, timeout=120, **env):
    t0 = time.monotonic()
    r = subprocess.run([script, BUILD], env=dict(os.environ, **env), stdin=subprocess.DEVNULL,
                       capture_output=True, text=True, timeout=timeout)
    return r, time.monotonic() - t0


def test_a_busy_port_that_was_asked_for_is_named_at_once():
    base = free_block(3)
    holder = occupy(base + 1)
    try:
        r, took = run(RECOVERY_DEMO, HALO_DEMO_REPLOG_PORT=str(base))
    finally:
        if holder:
            holder.close()
    assert r.returncode != 0
    assert f"demo: port {base + 1} is busy (HALO_DEMO_REPLOG_PORT={base})" in r.stderr, r.stderr
    assert "Start halod" not in r.stdout and took < 10, (took, r.stdout)

    port = free_block(1)
    holder = occupy(port)
    try:
        r, took = run(DEMO, HALO_DEMO_PORT=str(port))
    finally:
        if holder:
            holder.close()
    assert r.returncode != 0 and f"demo: port {port} is busy (HALO_DEMO_PORT={port})" in r.stderr, r.stderr
    assert "Start halod" not in r.stdout and took < 10


def test_the_demo_picks_free_ports_when_its_own_are_taken():
    env = {k: v for k, v in os.environ.items() if not k.startswith("HALO_DEMO_")}
    holders = [occupy(7700), occupy(7712)]  # the service's port and counter-b's standby port
    try:
        r = subprocess.run([DEMO, BUILD], env=env, stdin=subprocess.DEVNULL, capture_output=True, text=True,
                           timeout=120)
    finally:
        for h in holders:
            if h:
                h.close()
    assert r.returncode == 0, r.stdout + r.stderr
    assert "demo: port 7700 is busy: using " in r.stderr, r.stderr
    assert "demo: port 7712 is busy: using " in r.stderr, r.stderr
    used = int(r.stderr.split("demo: port 7700 is busy: using ")[1].split()[0])
    assert used != 7700 and f"the ACTIVE instance listens on port {used}" in r.stdout, r.stdout
    assert "(the count survived the failover)" in r.stdout and "Demo complete." in r.stdout, r.stdout
