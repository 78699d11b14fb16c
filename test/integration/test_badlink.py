# SPDX-License-Identifier: MIT
"""Bad input on the HA link: halod cuts the offender off and keeps serving the others."""
import os
import pwd
import subprocess
import time

from halo_harness import wait_for
from rawlink import RawLink, error_report, register, response
from test_2n import cluster, counter_yaml, free_port  # noqa: F401  (fixture)

HERE = os.path.dirname(os.path.abspath(__file__))


def test_garbage_from_a_client_disconnects_it_only(cluster):
    pids = (cluster.pid_of("counter-a"), cluster.pid_of("counter-b"))
    for junk in (b"\xff\xfe\xfd garbage", b"\x0a\x05\x08", b"\x00" * 10):
        link = RawLink(cluster.socket)
        assert link.hello() == 0
        link.send(junk)
        assert link.closed_by_peer(), f"halod kept a client that sent {junk!r}"
        link.close()
    # Before hello, too.
    link = RawLink(cluster.socket)
    link.send(b"\x08\x01 not a hello")
    assert link.closed_by_peer()
    assert cluster.wait_assigned("counter") == ("counter-a", "counter-b")
    assert (cluster.pid_of("counter-a"), cluster.pid_of("counter-b")) == pids


def test_oversize_message_disconnects(cluster):
    link = RawLink(cluster.socket)
    assert link.hello() == 0
    link.send(b"\x0a" + b"\xff" * (70 * 1024))
    assert link.closed_by_peer()
    assert cluster.status()["cluster"] == "test"


def test_wrong_version_is_refused(cluster):
    link = RawLink(cluster.socket)
    err = link.hello(version=99)
    assert err == -10005  # HALO_EVERSION
    assert link.closed_by_peer()


def test_response_with_unknown_invocation_gets_an_error(cluster):
    link = RawLink(cluster.socket)
    assert link.hello() == 0
    link.send(response(invocation=123456789, error=0, seq=7))
    assert link.reply() == (7, -10006)  # HALO_EBADINVOCATION
    # The client stays connected: an unknown invocation is an error, not an attack.
    link.send(response(invocation=987654321, error=0, seq=8))
    assert link.reply() == (8, -10006)


def test_register_of_a_component_halod_did_not_start_is_refused(cluster):
    link = RawLink(cluster.socket)
    assert link.hello() == 0
    link.send(register("counter-a", seq=3))
    seq, err = link.reply()
    assert seq == 3 and err < 0  # already registered by the real process
    link.send(register("no-such-component", seq=4))
    assert link.reply() == (4, -10003)  # HALO_EUNKNOWN


def test_component_sending_garbage_is_failed_and_others_keep_running(halod_factory, tmp_path):
    script = tmp_path / "garbage.py"
    script.write_text(f"""#!/usr/bin/env python3
import os, sys, time
sys.path.insert(0, {HERE!r})
from rawlink import RawLink, register
link = RawLink(os.environ["HALO_SOCKET"])
link.hello()
link.send(register(os.environ["HALO_COMPONENT"]))
link.reply()
time.sleep(0.3)
link.send(b"\\xff\\xff\\xff garbage")
time.sleep(30)
""")
    script.chmod(0o755)
    port = free_port()
    extra = f"""  bad:
    component:
      command: {script}
      restart: {{max: 1, window: 60s, delay: 10ms}}
    service-units:
      bad-a: {{node: local}}
      bad-b: {{node: local}}
    service-instances:
      bad:
        csis:
          bad: {{}}
"""
    h = halod_factory(counter_yaml(tmp_path, port, extra_sg=extra)).start()
    h.wait_assigned("counter")
    good = (h.pid_of("counter-a"), h.pid_of("counter-b"))
    # Generous bounds: each failure is a Python start (4 s under CI's load, seen).
    wait_for(lambda: "malformed message" in (h.su("bad-a").get("last_failure") or ""), timeout=30,
             what="bad-a failed for its garbage")
    wait_for(lambda: h.su("bad-a")["oper"] == "DISABLED", timeout=30, what="bad-a disabled")
    # The counter service never noticed.
    assert h.wait_assigned("counter") == ("counter-a", "counter-b")
    assert (h.pid_of("counter-a"), h.pid_of("counter-b")) == good
    assert h.stop() == 0


def test_unknown_message_type_is_dropped_and_the_client_kept(cluster):
    from rawlink import field_bytes
    link = RawLink(cluster.socket)
    assert link.hello() == 0
    link.send(field_bytes(99, b""))  # a message type from a newer protocol
    assert not link.closed_by_peer(timeout=0.5)
    link.send(response(invocation=5, error=0, seq=11))  # and the link still works
    assert link.reply() == (11, -10006)
    assert "does not know; dropped" in cluster.logtext()


def test_another_user_of_the_socket_group_cannot_fail_over_a_component(cluster):
    """The socket is mode 0660: a user of its group may connect, but may not report an error of a
    component that is not its own (it would fail it over).  Root, halod's user, still may."""
    nobody = pwd.getpwnam("nobody").pw_uid
    group = os.stat(cluster.socket).st_gid
    os.chmod(cluster.dir, 0o750)  # the group may reach the socket (the test's directory is 0700)
    pids = (cluster.pid_of("counter-a"), cluster.pid_of("counter-b"))
    script = f"""
import sys
sys.path.insert(0, {HERE!r})
from rawlink import RawLink, error_report
link = RawLink({cluster.socket!r})
assert link.hello() == 0
link.send(error_report("counter-a", seq=5))
print(*link.reply())
"""
    r = subprocess.run(["/usr/bin/python3", "-c", script], user=nobody, group=group, extra_groups=[],
                       capture_output=True, text=True, timeout=30)
    assert r.returncode == 0, r.stderr
    assert r.stdout.split() == ["5", "-1"], r.stdout  # -EPERM
    assert "reported an error of component 'counter-a', which is not its own; refused" in cluster.logtext()
    assert cluster.wait_assigned("counter") == ("counter-a", "counter-b")
    assert (cluster.pid_of("counter-a"), cluster.pid_of("counter-b")) == pids
    # Root may report for any component: an external monitor's report still fails it over.
    link = RawLink(cluster.socket)
    assert link.hello() == 0
    link.send(error_report("counter-a", seq=6))
    assert link.reply() == (6, 0)
    wait_for(lambda: cluster.si("counter")["active"] == "counter-b", timeout=10, what="failover to counter-b")


def test_a_client_that_never_sends_hello_is_closed_after_10_s(cluster):
    """A connection that sends nothing holds a slot of the HA link only for the Hello timeout
    (10 s); one that said Hello and then nothing stays, and so do the components."""
    silent, quiet = RawLink(cluster.socket), RawLink(cluster.socket)
    assert quiet.hello() == 0
    t0 = time.monotonic()
    assert not silent.closed_by_peer(timeout=8), "closed before its 10 s"
    assert silent.closed_by_peer(timeout=7), "still open 15 s after its connect"
    assert time.monotonic() - t0 < 15
    assert "sent no hello within 10 s of its connect, disconnecting" in cluster.logtext()
    assert not quiet.closed_by_peer(timeout=0.5)
    assert cluster.wait_assigned("counter") == ("counter-a", "counter-b")
    quiet.close()
