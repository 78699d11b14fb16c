# SPDX-License-Identifier: MIT
"""Node failfast end to end: the node's `failfast` action (halt, reboot or a command) runs once
every component of the node is gone, and another node's unit takes the ACTIVE.

halt and reboot are real reboot(2) calls, made by a halod that is the init of a PID namespace of
the test's own (unshare): there reboot(2) ends the namespace, its init dying of SIGHUP (reboot)
or SIGINT (halt), instead of the host (reboot(2), "Behavior inside PID namespaces")."""
import os
import shutil
import signal
import time

import pytest

from halo_harness import TESTCOMP, free_port, testcomp_events as events, wait_for

UNSHARE = shutil.which("unshare")
# halod as the init of a new PID namespace (unshare execs it as pid 1 there only once the
# namespace exists); the namespace dies with unshare (--kill-child).
IN_PID_NS = [UNSHARE, "--pid", "--fork", "--mount-proc", "--kill-child"] if UNSHARE else []

needs_pid_ns = pytest.mark.skipif(os.geteuid() != 0 or not UNSHARE,
                                  reason="a PID namespace of the test's own needs root and unshare(1)")


def description(log, nodes, b_node="n1"):
    node_lines = "".join(f"  {n}: {{{keys}}}\n" for n, keys in nodes.items())
    return f"""cluster: ff
nodes:
{node_lines}defaults:
  component:
    restart: {{max: 10, window: 60s, delay: 50ms, delay-max: 500ms}}
    timeouts: {{terminate: 2s}}
service-groups:
  g:
    component:
      command: {TESTCOMP}
      env: {{TESTCOMP_LOG: "{log}", TESTCOMP: "report=node-failfast"}}
    service-units: {{a: {{node: n1}}, b: {{node: {b_node}}}}}
    service-instances: {{si: {{csis: {{c: {{}}}}}}}}
"""


def ask_failfast(log, comp):
    """testcomp (mode report=node-failfast) sends its error report when this file appears."""
    with open(f"{log}.{comp}.report", "w"):
        pass


def pid_ns_members(h):
    """Host pids of every process in the PID namespace whose init is h's halod (under unshare)."""
    init = [p for p in os.listdir("/proc") if p.isdigit() and _ppid(p) == h.proc.pid]
    assert len(init) == 1, init
    ns = os.readlink(f"/proc/{init[0]}/ns/pid")
    assert ns != os.readlink("/proc/self/ns/pid")  # never the host's: reboot(2) would reboot it

    def member(p):
        try:
            return os.readlink(f"/proc/{p}/ns/pid") == ns
        except OSError:
            return False
    return {int(p) for p in os.listdir("/proc") if p.isdigit() and member(p)}


def _ppid(p):
    try:
        with open(f"/proc/{p}/stat") as f:
            st = f.read()
        return int(st[st.rindex(")") + 2:].split()[1])
    except (OSError, ValueError):
        return None


def assert_node_ended(h, members, sig, what):
    """h's PID namespace ended by its init dying of sig (unshare dies of it in turn), and none of
    its processes is left, not even as a zombie."""
    rc = h.proc.wait(timeout=30)
    assert rc == -sig, f"unshare ended with {rc}, not -{sig.name}:\n{h.logtext()[-3000:]}"
    left = [p for p in members if os.path.exists(f"/proc/{p}")]
    assert not left, left
    text = h.logtext()
    # The components went first, the action after.
    assert text.index("every component of the node is gone") < text.index(f"Node failfast: {what} of the host now")


@needs_pid_ns
@pytest.mark.parametrize("action,sig,what", [("reboot", signal.SIGHUP, "reboot"),
                                             ("halt", signal.SIGINT, "power-off")])
def test_reboot_and_halt_call_reboot2_once_every_component_is_gone(halod_factory, tmp_path, action, sig, what):
    log = str(tmp_path / "comp.log")
    h = halod_factory(description(log, {"n1": f"failfast: {action}"}), wrapper=IN_PID_NS).start()
    assert h.wait_assigned("si") == ("a", "b")
    members = pid_ns_members(h)
    assert len(members) >= 3, members  # halod and the two components
    ask_failfast(log, "a")
    assert_node_ended(h, members, sig, what)
    assert "component 'a' reported an error (recommended recovery: node-failfast)" in h.logtext()


@needs_pid_ns
def test_a_reboot_that_fails_ends_halod_with_a_failure(halod_factory, tmp_path):
    # Without CAP_SYS_BOOT reboot(2) fails (EPERM): halod says so and exits with status 1, its
    # components gone all the same (in the PID namespace still, should the drop not hold).
    log = str(tmp_path / "comp.log")
    wrapper = IN_PID_NS + [shutil.which("setpriv"), "--bounding-set=-sys_boot"]
    h = halod_factory(description(log, {"n1": "failfast: reboot"}), wrapper=wrapper).start()
    assert h.wait_assigned("si") == ("a", "b")
    members = pid_ns_members(h)
    ask_failfast(log, "a")
    assert h.proc.wait(timeout=30) == 1, h.logtext()[-3000:]
    assert "Node failfast: failed to reboot the host: Operation not permitted; halod exits" in h.logtext()
    assert not [p for p in members if os.path.exists(f"/proc/{p}")]


def test_a_command_runs_once_every_component_is_gone_then_halod_exits(halod_factory, tmp_path):
    log, out, pids = str(tmp_path / "comp.log"), tmp_path / "failfast.out", tmp_path / "pids"
    # The command says which of the components' processes still exist, and what it was given.
    script = (f'for p in $(cat {pids}); do [ -e /proc/$p ] && echo "alive $p"; done > {out}; '
              f'echo "$HALO_NODE|$HALO_FAILFAST_REASON" >> {out}')
    h = halod_factory(description(log, {"n1": f"failfast: {{command: [/bin/sh, -c, '{script}']}}"})).start()
    assert h.wait_assigned("si") == ("a", "b")
    pids.write_text(f"{h.pid_of('a')} {h.pid_of('b')}\n")
    h.remember_children()
    ask_failfast(log, "a")
    # halod exits with a failure once the command has ended; it leaves nothing behind (stop()).
    assert h.proc.wait(timeout=30) == 1, h.logtext()[-3000:]
    assert h.stop() == 1
    lines = out.read_text().splitlines()
    assert len(lines) == 1, lines  # no component's process was left when the command ran
    node, reason = lines[0].split("|", 1)
    assert node == "n1"
    assert "component 'a' reported an error (recommended recovery: node-failfast)" in reason, reason
    assert "the failfast command succeeded; halod exits" in h.logtext()


def test_the_action_runs_after_2s_when_the_store_does_not_answer(etcd, halod_factory, tmp_path):
    log, out = str(tmp_path / "comp.log"), tmp_path / "failfast.out"
    text = description(log, {"n1": f"failfast: {{command: [/bin/sh, -c, 'echo ran > {out}']}}"})
    # A long lease: the paused store does not fence the node meanwhile.
    h = halod_factory(text, name="n1", extra_args=["--node", "n1", "--etcd", etcd.endpoints, "--lease-ttl", "30",
                                                   "--http", "none"]).start()
    assert h.wait_assigned("si", timeout=30) == ("a", "b")
    etcd.pause_member(0)
    try:
        t0 = time.monotonic()
        ask_failfast(log, "a")
        wait_for(out.exists, timeout=20, what="the failfast command")
        assert time.monotonic() - t0 >= 2
        assert "the store did not answer within 2000 ms; the failfast action runs anyway" in h.logtext()
    finally:
        etcd.resume_member(0)
    assert h.proc.wait(timeout=60) == 1, h.logtext()[-3000:]


def test_without_an_action_a_failfast_is_a_node_failover(halod_factory, tmp_path):
    log = str(tmp_path / "comp.log")
    h = halod_factory(description(log, {"n1": ""})).start()
    assert h.wait_assigned("si") == ("a", "b")
    a, b = h.pid_of("a"), h.pid_of("b")
    ask_failfast(log, "a")
    # Both units of the node fail over and restart; halod stays.
    wait_for(lambda: h.pid_of("a") not in (None, a) and h.pid_of("b") not in (None, b), what="both restarted")
    h.wait_assigned("si")
    assert "has no 'failfast' action" in h.logtext()
    assert h.stop() == 0


@needs_pid_ns
def test_the_other_node_takes_the_active_when_a_node_reboots(etcd, halod_factory, tmp_path):
    log = str(tmp_path / "comp.log")
    text = description(log, {"n1": "failfast: reboot", "n2": ""}, b_node="n2")

    def node(n, wrapper=()):
        return halod_factory(text, name=n, wrapper=wrapper, extra_args=[
            "--node", n, "--etcd", etcd.endpoints, "--lease-ttl", "1", "--http", f"127.0.0.1:{free_port()}"]).start()
    n1, n2 = node("n1", IN_PID_NS), node("n2")
    wait_for(lambda: n2.si("si")["active"] and n2.si("si")["standby"], timeout=30, what="si assigned")
    if n2.si("si")["active"] != "a":  # b was known first: the operator moves the ACTIVE to n1
        n2.ctl("switchover", "si")
    assert n2.wait_assigned("si", timeout=30) == ("a", "b")
    b = n2.pid_of("b")
    members = pid_ns_members(n1)
    ask_failfast(log, "a")
    assert_node_ended(n1, members, signal.SIGHUP, "reboot")
    # b, on n2, takes the ACTIVE: the same process, told so by a CSI set.
    wait_for(lambda: n2.si("si")["active"] == "b" and not any(x["pending"] for x in n2.si("si")["assignments"]),
             timeout=30, what="b ACTIVE on n2")
    assert n2.pid_of("b") == b
    assert [e for e in events(log, "b", "CSI_SET") if e[3] == "ACTIVE"]
    assert n2.stop() == 0


def test_a_failfast_stops_the_nodes_ocf_resources_before_its_action(halod_factory, tmp_path):
    """What the processes held outside themselves (an OCF resource: Dummy's state file stands
    for a floating address) is stopped by its agent once they are gone, before the action."""
    log, out = str(tmp_path / "comp.log"), tmp_path / "failfast.out"
    state = tmp_path / "r.state"
    script = f'[ -e {state} ] && echo "resource still up" > {out} || echo "resource stopped" > {out}'
    text = description(log, {"n1": f"failfast: {{command: [/bin/sh, -c, '{script}']}}"}) + f"""  r:
    component:
      type: ocf
      agent: "ocf:heartbeat:Dummy"
      params: {{state: {state}}}
    service-units: {{ra: {{node: n1}}, rb: {{node: n1, component: {{params: {{state: {state}.b}}}}}}}}
    service-instances: {{rs: {{csis: {{rc: {{}}}}}}}}
"""
    h = halod_factory(text).start()
    assert h.wait_assigned("si") == ("a", "b")
    h.wait_assigned("rs")
    wait_for(state.exists, what="the resource started")
    ask_failfast(log, "a")
    assert h.proc.wait(timeout=60) == 1, h.logtext()[-3000:]
    assert out.read_text() == "resource stopped\n", h.logtext()[-3000:]
    assert "stopping its OCF resources" in h.logtext()
