# SPDX-License-Identifier: MIT
"""examples/pycounter.py, the Python example component, run 2N by a real halod with examples/pycounter.yaml:
it serves, and when its ACTIVE is killed the Python standby takes over and counts on from the CDB."""
import os
import signal
import socket
import subprocess
import sys

from halo_harness import BUILD, HALOD, free_port, wait_for

EXAMPLES = os.path.join(os.path.dirname(__file__), "..", "..", "examples")


def example_yaml(port):
    """The example's description as shipped, with this build's module path, the example's absolute path and
    a free port."""
    with open(os.path.join(EXAMPLES, "pycounter.yaml")) as f:
        text = f.read()
    for old, new in ((": ../build/src/python", f": {os.path.join(BUILD, 'src', 'python')}"),
                     ('["pycounter.py"]', f'["{os.path.abspath(os.path.join(EXAMPLES, "pycounter.py"))}"]'),
                     ("/usr/bin/python3", sys.executable), ('"7800"', f'"{port}"')):
        assert old in text, old
        text = text.replace(old, new)
    return text


def ask(port, line):
    with socket.create_connection(("127.0.0.1", port), timeout=5) as s:
        s.sendall((line + "\n").encode())
        return s.makefile().readline().strip()


def test_the_shipped_description_is_valid():
    r = subprocess.run([HALOD, "--check", os.path.join(EXAMPLES, "pycounter.yaml")], capture_output=True,
                       text=True, timeout=60)
    assert r.returncode == 0 and "configuration OK" in r.stdout + r.stderr, r.stdout + r.stderr


def test_kill9_of_the_python_active_and_the_python_standby_counts_on(halod_factory):
    port = free_port()
    h = halod_factory(example_yaml(port), name="pycounter").start()
    assert h.wait_assigned("pycounter") == ("pycounter-a", "pycounter-b")
    assert ask(port, "WHO") == "pycounter-a ACTIVE"
    assert [ask(port, "INCR") for _ in range(3)] == ["1", "2", "3"]
    # The STANDBY follows the count through its subscription (halod logs its stderr).
    wait_for(lambda: "pycounter pycounter-b: count /pycounter/count 3" in h.logtext(), what="the standby's log")

    victim = h.pid_of("pycounter-a")
    os.kill(victim, signal.SIGKILL)
    wait_for(lambda: h.si("pycounter")["active"] == "pycounter-b", timeout=10, what="pycounter-b ACTIVE")
    assert wait_for(lambda: ask(port, "WHO"), what="the new ACTIVE serving") == "pycounter-b ACTIVE"
    assert ask(port, "INCR") == "4"  # on from the CDB
    assert h.wait_assigned("pycounter") == ("pycounter-b", "pycounter-a")
    assert h.pid_of("pycounter-a") != victim
    assert h.stop() == 0
    # Its stderr is halod's log (inherited): written by the component itself, maybe a moment after.
    try:
        wait_for(lambda: "pycounter pycounter-b: terminated" in h.logtext(), timeout=5, what="pycounter-b's last line")
    except AssertionError as e:  # seen twice in CI, never here: what halod said of it
        raise AssertionError(f"{e}\n" + "\n".join(ln for ln in h.logtext().splitlines() if "pycounter-b" in ln)[-3000:])
