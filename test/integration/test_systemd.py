# SPDX-License-Identifier: MIT
"""halod under a service manager: sd_notify(3) READY=1 once it serves, STATUS=,
WATCHDOG=1 from its loop, STOPPING=1 on SIGTERM; the components do not inherit
the manager's variables.  The service manager is a datagram socket of the test's."""
import os
import re
import signal
import socket
import time

import pytest

from halo_harness import wait_for

YAML = """
cluster: test
service-groups:
  svc:
    component:
      type: non-sa-aware
      command: /bin/sh
      args: ["-c", "env > {env_file}.$$; exec sleep 1000"]
    service-units:
      a: {{}}
      b: {{}}
    service-instances:
      svc: {{csis: {{c: {{}}}}}}
"""


def read_messages(sock, until, timeout=10.0):
    """Datagrams received until until(messages) holds; each a dict of its KEY=VALUE lines."""
    got, deadline = [], time.monotonic() + timeout
    while not until(got):
        left = deadline - time.monotonic()
        assert left > 0, f"no such notification within {timeout} s; got {got}"
        sock.settimeout(left)
        try:
            data = sock.recv(4096)
        except socket.timeout:
            continue
        got.append(dict(line.split("=", 1) for line in data.decode().splitlines() if "=" in line))
    return got


def has(key):
    return lambda got: any(key in m for m in got)


@pytest.fixture
def manager(tmp_path):
    path = str(tmp_path / "notify")
    s = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    s.bind(path)
    yield s, path
    s.close()


def test_ready_status_watchdog_and_stopping(halod_factory, manager, tmp_path):
    sock, path = manager
    env_file = str(tmp_path / "env")

    def as_a_service():  # in halod's process: what systemd sets for Type=notify, WatchdogSec=200ms
        os.environ["NOTIFY_SOCKET"] = path
        os.environ["WATCHDOG_USEC"] = "200000"
        os.environ["WATCHDOG_PID"] = str(os.getpid())

    h = halod_factory(YAML.format(env_file=env_file), preexec_fn=as_a_service).start(wait=False)
    got = read_messages(sock, has("READY"))
    ready = next(m for m in got if "READY" in m)
    assert ready["READY"] == "1"
    assert ready["STATUS"].startswith("Serving node 'local' of cluster 'test' on " + h.socket), ready
    # Ready means serving: the socket answers at once, and the model runs.
    assert h.status()["service_groups"][0]["name"] == "svc"
    active, _ = h.wait_assigned("svc")
    # The watchdog, from the loop, every 100 ms (half of WATCHDOG_USEC).
    t0 = time.monotonic()
    got = read_messages(sock, lambda g: sum("WATCHDOG" in m for m in g) >= 5)
    assert time.monotonic() - t0 < 2.0, "the watchdog came slower than every 100 ms, by far"
    # The component got none of the service manager's variables.
    pid = h.pid_of(f"{active}")
    env = wait_for(lambda: open(f"{env_file}.{pid}").read() if os.path.exists(f"{env_file}.{pid}") else None,
                   what="the component's environment")
    for name in ("NOTIFY_SOCKET", "WATCHDOG_USEC", "WATCHDOG_PID"):
        assert f"\n{name}=" not in "\n" + env, env
    assert "HALO_HA_STATE=ACTIVE" in env  # and what halod gives it
    h.proc.send_signal(signal.SIGTERM)
    got = read_messages(sock, has("STOPPING"))
    assert next(m for m in got if "STOPPING" in m)["STOPPING"] == "1"
    assert h.proc.wait(20) == 0


def test_no_service_manager_no_notification(halod_factory, manager):
    """Without NOTIFY_SOCKET halod sends nothing (and runs as ever)."""
    sock, path = manager
    h = halod_factory(YAML.format(env_file="/dev/null")).start()
    h.wait_assigned("svc")
    sock.settimeout(0.5)
    with pytest.raises(socket.timeout):
        sock.recv(4096)
    assert h.stop() == 0


def test_sighup_does_not_end_halod(halod_factory):
    """A terminal that closes sends SIGHUP: halod reloads its description (unchanged:
    nothing to do) and goes on serving, its components untouched (test_reload.py)."""
    h = halod_factory(YAML.format(env_file="/dev/null")).start()
    active, _ = h.wait_assigned("svc")
    pid = h.pid_of(active)
    h.proc.send_signal(signal.SIGHUP)
    wait_for(lambda: "(asked by SIGHUP)" in h.logtext() and ": no change (description " in h.logtext(),
             what="the reload by SIGHUP logged")
    assert h.proc.poll() is None
    assert h.pid_of(active) == pid and h.si("svc")["active"] == active
    assert h.stop() == 0


def journal_stream(path):
    """What systemd puts in $JOURNAL_STREAM for the stream it gave as stderr: DEVICE:INODE."""
    st = os.stat(path)
    return f"{st.st_dev}:{st.st_ino}"


@pytest.mark.parametrize("stream", ["journald's", "another file's"])
def test_log_lines_carry_their_priority_when_stderr_is_journald(stream, halod_factory, tmp_path):
    """Under journald (stderr is the stream named by $JOURNAL_STREAM) each line starts
    with its syslog priority, so `journalctl -p err` finds the errors; with stderr
    elsewhere (redirected since), lines stay as they are, with their time."""
    other = tmp_path / "other"
    other.write_text("")
    h = halod_factory(YAML.format(env_file="/dev/null"))
    named = h.log_path if stream == "journald's" else str(other)

    def under_systemd():  # halod's stderr is h.log_path, opened before the exec
        os.environ["JOURNAL_STREAM"] = journal_stream(named)

    open(h.log_path, "ab").close()
    h.preexec_fn = under_systemd
    h.start()
    active, _ = h.wait_assigned("svc")
    os.kill(h.pid_of(active), signal.SIGKILL)  # a failure: logged as a warning
    wait_for(lambda: "failed" in h.logtext(), what="the failure logged")
    assert h.stop() == 0
    lines = [x for x in h.logtext().splitlines() if x]
    failure = next(x for x in lines if f"Service unit '{active}' failed" in x)
    if stream == "journald's":
        assert all(re.match(r"<[3-7]>\[[a-z]+\] ", x) for x in lines), lines[:5]
        assert failure.startswith("<4>[amf] "), failure
        assert any(x.startswith("<6>[main] ") for x in lines)
    else:
        assert not any(x.startswith("<") for x in lines)
        assert re.match(r"\d\d:\d\d:\d\d\.\d{3} halod\[amf\] warning: ", failure), failure
