# SPDX-License-Identifier: MIT
"""halo on several nodes: real halods sharing a real etcd, real counter components."""
import json
import os
import re
import signal
import socket
import subprocess
import time

from halo_harness import COUNTER, HALOCTL, free_port, pid_alive, wait_for


def cluster_yaml(tmpdir, port, nodes=("n1", "n2")):
    units = "\n".join(
        f'      counter-{i}: {{node: {n}, component: {{args: ["--standby-port", "{port + 1 + i}"]}}}}'
        for i, n in enumerate(nodes))
    node_lines = "\n".join(f"  {n}: {{}}" for n in nodes)
    return f"""
cluster: test
nodes:
{node_lines}
defaults:
  component:
    health-check: {{period: 200ms, timeout: 600ms}}
    restart: {{max: 10, window: 60s, delay: 50ms, delay-max: 500ms}}
    timeouts: {{terminate: 2s}}
service-groups:
  counter:
    redundancy: 2N
    component:
      command: {COUNTER}
    service-units:
{units}
    service-instances:
      counter:
        csis:
          counter:
            attributes: {{port: "{port}", state-file: "{tmpdir}/counter.state"}}
"""


def ask(port, line, timeout=2):
    with socket.create_connection(("127.0.0.1", port), timeout=timeout) as s:
        s.sendall((line + "\n").encode())
        return s.makefile().readline().strip()


class Cluster:
    def __init__(self, etcd, factory, tmp_path, nodes=("n1", "n2"), ttl=1, endpoints=None, args=()):
        """args: more halod options for every node (etcd TLS or authentication)."""
        self.etcd = etcd
        self.args = list(args)
        self.endpoints = endpoints or etcd.endpoints
        self.ttl = ttl
        self.port = free_port()
        self.yaml = cluster_yaml(tmp_path, self.port, nodes)
        self.nodes = {}
        self.factory = factory
        for n in nodes:
            self.nodes[n] = self.make(n)

    def make(self, n):
        return self.factory(self.yaml, name=n,
                            extra_args=["--node", n, "--etcd", self.endpoints, "--lease-ttl", str(self.ttl),
                                        *self.args])

    def start(self):
        for h in self.nodes.values():
            h.start()
        return self

    def coordinator(self, via):
        return via.status()["coordinator"]

    def si(self, via):
        return via.si("counter")

    def settled(self, via):
        """(active SU, standby SU) once via sees the SI fully assigned with nothing pending."""
        s = self.si(via)
        if s["active"] and s["standby"] and not any(a["pending"] for a in s["assignments"]):
            return s["active"], s["standby"]
        return None


def node_of(su):
    return {"counter-0": "n1", "counter-1": "n2", "counter-2": "n3"}[su]


def test_two_nodes_agree_on_roles(etcd, halod_factory, tmp_path):
    c = Cluster(etcd, halod_factory, tmp_path).start()
    h1, h2 = c.nodes["n1"], c.nodes["n2"]
    act, sb = wait_for(lambda: c.settled(h1), timeout=20, what="SI assigned (seen by n1)")
    assert {act, sb} == {"counter-0", "counter-1"}
    # Both nodes show the same placement, the same coordinator and both nodes online.
    assert wait_for(lambda: c.settled(h2) == (act, sb), what="n2 agrees")
    coord = c.coordinator(h1)
    assert coord in ("n1", "n2") and c.coordinator(h2) == coord
    for h in (h1, h2):
        st = {n["name"]: n["state"] for n in h.status()["nodes"]}
        assert st == {"n1": "ONLINE", "n2": "ONLINE"}
    # The ACTIVE one serves; the standby one refuses writes.
    assert wait_for(lambda: ask(c.port, "PING") == "PONG", what="ACTIVE serves")
    # The store holds the decisions, readable with any etcd client.
    keys = etcd.get_prefix("/halo/test/")
    assert '"ACTIVE"' in keys[f"/halo/test/confirmed/counter/{act}"]
    assert '"STANDBY"' in keys[f"/halo/test/confirmed/counter/{sb}"]
    assert "/halo/test/leader" in keys and "/halo/test/nodes/n1" in keys and "/halo/test/nodes/n2" in keys
    for h in (h1, h2):
        assert h.stop() == 0


def test_component_crash_fails_over_to_the_other_node(etcd, halod_factory, tmp_path):
    c = Cluster(etcd, halod_factory, tmp_path).start()
    h1 = c.nodes["n1"]
    act, sb = wait_for(lambda: c.settled(h1), timeout=20, what="SI assigned")
    assert ask(c.port, "INCR k") == "1"
    owner = c.nodes[node_of(act)]
    pid = owner.pid_of(act)
    owner.remember_children()
    owner.kill_pids([pid])
    # The standby on the other node takes over; the failed one comes back as STANDBY.
    assert wait_for(lambda: c.settled(h1) == (sb, act), timeout=20, what="failover to the other node")
    assert wait_for(lambda: ask(c.port, "GET k") == "1", what="new ACTIVE serves the state")
    for h in c.nodes.values():
        assert h.stop() == 0


def test_node_failover_and_coordinator_takeover(etcd, halod_factory, tmp_path):
    c = Cluster(etcd, halod_factory, tmp_path).start()
    h1 = c.nodes["n1"]
    act, sb = wait_for(lambda: c.settled(h1), timeout=20, what="SI assigned")
    dead = node_of(act)
    alive = "n2" if dead == "n1" else "n1"
    hd, ha = c.nodes[dead], c.nodes[alive]
    coord_before = c.coordinator(ha)
    # SIGKILL the node holding ACTIVE: halod and its components together.
    hd.kill_all()
    assert wait_for(lambda: ha.si("counter")["active"] == sb and
                    not any(a["pending"] for a in ha.si("counter")["assignments"]),
                    timeout=20, what="ACTIVE on the surviving node")
    assert wait_for(lambda: ask(c.port, "PING") == "PONG", what="the survivor serves")
    assert c.coordinator(ha) == alive
    st = {n["name"]: n["state"] for n in ha.status()["nodes"]}
    assert st[dead] == "OFFLINE" and st[alive] == "ONLINE"
    # n1 starts first and is the coordinator when it holds ACTIVE too; either
    # way the survivor coordinates now.
    print(f"coordinator before: {coord_before}, killed: {dead}")
    # The dead node comes back and gets STANDBY; ACTIVE does not move.
    hd2 = c.make(dead)
    c.nodes[dead] = hd2
    hd2.start()
    assert wait_for(lambda: c.settled(ha) == (sb, act), timeout=20, what="the returning node is STANDBY")
    for h in (ha, hd2):
        assert h.stop() == 0


class Proxy:
    """A TCP proxy of the test's own between one node and etcd.  cut() makes a
    partition: every connection is dropped and new ones are accepted but
    never answered (a black hole, so the node sees timeouts, not refusals)."""

    def __init__(self, target_port):
        import threading
        self.target = target_port
        self.lsock = socket.socket()
        self.lsock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.lsock.bind(("127.0.0.1", 0))
        self.lsock.listen(64)
        self.port = self.lsock.getsockname()[1]
        self.cut_off = False
        self.socks = []
        self.lock = threading.Lock()
        self.closed = False
        threading.Thread(target=self.accept_loop, daemon=True).start()

    def accept_loop(self):
        import threading
        while not self.closed:
            try:
                c, _ = self.lsock.accept()
            except OSError:
                return
            with self.lock:
                self.socks.append(c)
                if self.cut_off:
                    continue  # held open, never answered
            try:
                u = socket.create_connection(("127.0.0.1", self.target))
            except OSError:
                c.close()
                continue
            with self.lock:
                self.socks.append(u)
            threading.Thread(target=self.pump, args=(c, u), daemon=True).start()
            threading.Thread(target=self.pump, args=(u, c), daemon=True).start()

    def pump(self, a, b):
        try:
            while True:
                d = a.recv(65536)
                if not d or self.cut_off:
                    break
                b.sendall(d)
        except OSError:
            pass
        for s in (a, b):
            try:
                s.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass

    def cut(self):
        with self.lock:
            self.cut_off = True
            for s in self.socks:
                try:
                    s.shutdown(socket.SHUT_RDWR)
                except OSError:
                    pass
            self.socks = []

    def heal(self):
        with self.lock:
            self.cut_off = False
            for s in self.socks:  # the held ones: let the node reconnect
                try:
                    s.shutdown(socket.SHUT_RDWR)
                except OSError:
                    pass
            self.socks = []

    def close(self):
        self.closed = True
        self.cut()
        self.lsock.close()


def read_intervals(path):
    """[(kind, usec)] from a counter's --log-intervals file."""
    try:
        with open(path) as f:
            return [(k, int(t)) for k, t in (line.split() for line in f if line.strip())]
    except FileNotFoundError:
        return []


def two_nodes_logging_intervals(etcd, halod_factory, tmp_path, n1_etcd):
    """n1 (reaching etcd at n1_etcd) holds counter's ACTIVE, n2 its STANDBY,
    lease TTL 1 s; each counter logs its ACTIVE intervals.  Returns h1, h2,
    the log paths by node, and the ACTIVE process's pid."""
    port = free_port()
    logs = {n: str(tmp_path / f"intervals-{n}") for n in ("n1", "n2")}
    yaml = cluster_yaml(tmp_path, port)
    for i, n in enumerate(("n1", "n2")):
        yaml = yaml.replace(f'"--standby-port", "{port + 1 + i}"]',
                            f'"--standby-port", "{port + 1 + i}", "--log-intervals", "{logs[n]}"]')
    h1 = halod_factory(yaml, name="n1", extra_args=["--node", "n1", "--etcd", n1_etcd, "--lease-ttl", "1"])
    h1.start()
    wait_for(lambda: h1.status()["coordinator"] == "n1", timeout=20, what="n1 coordinator")
    h2 = halod_factory(yaml, name="n2", extra_args=["--node", "n2", "--etcd", etcd.endpoints, "--lease-ttl", "1"])
    h2.start()
    act_sb = wait_for(lambda: (lambda s: (s["active"], s["standby"]) if s["active"] and s["standby"] and
                               not any(a["pending"] for a in s["assignments"]) else None)(h2.si("counter")),
                      timeout=20, what="SI assigned")
    assert act_sb == ("counter-0", "counter-1")
    victim = h1.pid_of("counter-0")
    h1.remember_children()
    return h1, h2, logs, victim, port


def n1_dies_before_n2_takes_over(h2, logs, victim, why):
    """Watches n1's ACTIVE process (victim) from outside until it is gone,
    then n2's counter until it logs ACTIVE; asserts the intervals do not
    overlap.  Returns (n1's ACTIVE died, n2's ACTIVE began), in usec."""
    died = None
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline and died is None:
        if not pid_alive(victim):
            died = time.time_ns() // 1000
        time.sleep(0.002)
    assert died, why
    wait_for(lambda: h2.si("counter")["active"] == "counter-1", timeout=20, what="n2 ACTIVE")
    wait_for(lambda: any(k == "ACTIVE" for k, _ in read_intervals(logs["n2"])), what="n2 logs ACTIVE")
    n2_start = [t for k, t in read_intervals(logs["n2"]) if k == "ACTIVE"][0]
    assert n2_start > died, f"ACTIVE intervals overlap: n2 began at {n2_start}, n1's died at {died} (usec)"
    return died, n2_start


def test_partition_fences_the_cut_off_node(etcd, halod_factory, tmp_path):
    """n1 holds ACTIVE and loses etcd: it must stop its ACTIVE before n2's
    starts; an external checker compares the ACTIVE intervals the counters log."""
    proxy = Proxy(etcd.members[0]["client"])
    try:
        h1, h2, logs, victim, port = two_nodes_logging_intervals(etcd, halod_factory, tmp_path,
                                                                 f"http://127.0.0.1:{proxy.port}")

        proxy.cut()
        # The cut-off node's ACTIVE stops, then the other node takes over.
        died, n2_start = n1_dies_before_n2_takes_over(h2, logs, victim,
                                                      "the cut-off node never stopped its ACTIVE component")
        n1_starts = [t for k, t in read_intervals(logs["n1"]) if k == "ACTIVE"]
        assert n1_starts and n1_starts[0] < died
        print(f"n1 ACTIVE died {died}, n2 ACTIVE from {n2_start} (+{(n2_start - died) / 1000:.1f} ms)")
        assert "lost its lease" in h1.logtext() or "Fencing node" in h1.logtext()

        # Healed, n1 rejoins as STANDBY; ACTIVE stays on n2.
        proxy.heal()
        wait_for(lambda: (lambda s: s["active"] == "counter-1" and s["standby"] == "counter-0" and
                          not any(a["pending"] for a in s["assignments"]))(h2.si("counter")),
                 timeout=30, what="n1 back as STANDBY")
        assert ask(port, "PING") == "PONG"
        for h in (h1, h2):
            assert h.stop() == 0
    finally:
        proxy.close()


def test_processes_stop_when_halod_stays_away_past_the_lease(etcd, halod_factory, tmp_path):
    """SIGKILL of the ACTIVE node's halod alone, not restarted: its processes
    keep running for a while, but libhalo stops them before the lease can
    expire, so the other node's ACTIVE never overlaps them (an external
    checker reads the intervals the counters log)."""
    h1, h2, logs, victim, _ = two_nodes_logging_intervals(etcd, halod_factory, tmp_path, etcd.endpoints)
    killed = time.time_ns() // 1000
    h1.proc.kill()
    h1.proc.wait()
    h1.log.close()

    died, n2_start = n1_dies_before_n2_takes_over(h2, logs, victim,
                                                  "the ACTIVE process of a node whose halod is gone outlived the lease")
    print(f"halod killed {killed}, its ACTIVE died +{(died - killed) / 1000:.1f} ms, "
          f"n2 ACTIVE +{(n2_start - killed) / 1000:.1f} ms")
    assert died - killed > 100_000, "the process stopped at once: it should outlive halod within the lease"
    assert h2.stop() == 0


def test_a_stopped_process_dies_at_its_lease_deadline(etcd, halod_factory, tmp_path):
    """The ACTIVE process is frozen (SIGSTOP: a debugger, a stalled VM) and
    its node's halod is SIGKILLed: no thread of the process can run libhalo's
    check at the deadline, and once n2 takes over two processes hold the same
    ACTIVE (chaos seed 404: 438 ms).  The deadline is the kernel's: a POSIX
    timer sends SIGKILL at it, which kills a stopped process; it is dead
    before n2's ACTIVE starts, without ever being resumed."""
    h1, h2, logs, victim, _ = two_nodes_logging_intervals(etcd, halod_factory, tmp_path, etcd.endpoints)
    os.kill(victim, signal.SIGSTOP)
    try:
        h1.proc.kill()
        h1.proc.wait()
        h1.log.close()
        n1_dies_before_n2_takes_over(h2, logs, victim, "a stopped ACTIVE process outlived its node's lease")
    finally:
        if pid_alive(victim):
            os.kill(victim, signal.SIGCONT)
    assert h2.stop() == 0


def test_switchover_across_nodes(etcd, halod_factory, tmp_path):
    c = Cluster(etcd, halod_factory, tmp_path).start()
    h1, h2 = c.nodes["n1"], c.nodes["n2"]
    act, sb = wait_for(lambda: c.settled(h1), timeout=20, what="SI assigned")
    assert ask(c.port, "INCR k") == "1"
    coord = c.nodes[c.coordinator(h1)]
    other = h2 if coord is h1 else h1
    # Through the coordinator: QUIESCING on one node, ACTIVE on the other, state kept.
    coord.ctl("switchover", "counter")
    assert wait_for(lambda: c.settled(h1) == (sb, act) and c.settled(h2) == (sb, act), timeout=20,
                    what="roles swapped on both nodes")
    assert wait_for(lambda: ask(c.port, "GET k") == "1", what="the new ACTIVE serves the state")
    # Through the other node: it sends the command to the coordinator and
    # answers once the coordinator has run it.
    other.ctl("switchover", "counter")
    assert c.settled(h1) == (act, sb) or wait_for(lambda: c.settled(h1) == (act, sb), timeout=20,
                                                  what="roles swapped back")
    assert "sent to the coordinator" in other.logtext()
    assert "forwarded by another node" in coord.logtext()
    # An unknown SI is refused at once, wherever it is asked.
    assert other.ctl("switchover", "nope", check=False).returncode != 0
    # Lock from the other node: the SU's own node runs it, and the answer
    # comes once the unit holds nothing (ACTIVE moved back, no standby).
    act, sb = sb, act
    coord.ctl("switchover", "counter")
    assert wait_for(lambda: c.settled(h1) == (act, sb), timeout=20, what="roles swapped again")
    owner_of_sb = c.nodes[node_of(sb)]
    not_owner = h2 if owner_of_sb is h1 else h1
    not_owner.ctl("lock", sb)
    assert (lambda s: s["active"] == act and not s["standby"])(owner_of_sb.si("counter"))
    assert wait_for(lambda: (lambda s: s["active"] == act and not s["standby"])(h1.si("counter")), timeout=20,
                    what="ACTIVE back, no standby while locked")
    assert ask(c.port, "GET k") == "1"
    owner_of_sb.ctl("unlock", sb)
    assert wait_for(lambda: c.settled(h1) == (act, sb), timeout=20, what="standby again after unlock")
    for h in (h1, h2):
        assert h.stop() == 0


def test_halod_restart_within_the_lease_changes_nothing(etcd, halod_factory, tmp_path):
    """SIGKILL of the ACTIVE node's halod alone, back within its lease: the
    components keep serving, nobody fails over, the roles and processes stay."""
    c = Cluster(etcd, halod_factory, tmp_path, ttl=3).start()
    h1 = c.nodes["n1"]
    act, sb = wait_for(lambda: c.settled(h1), timeout=20, what="SI assigned")
    owner = c.nodes[node_of(act)]
    other = c.nodes[node_of(sb)]
    pid = owner.pid_of(act)
    gen = other.si("counter")["generation"]
    assert ask(c.port, "INCR k") == "1"
    owner.remember_children()
    owner.proc.kill()
    owner.proc.wait()
    owner.log.close()
    assert ask(c.port, "INCR k") == "2"
    owner.start()
    wait_for(lambda: owner.comp(act)["registered"], timeout=15, what="ACTIVE registered again")
    assert owner.pid_of(act) == pid
    assert wait_for(lambda: c.settled(owner) == (act, sb), what="roles restored on the restarted node")
    assert c.settled(other) == (act, sb)
    assert other.si("counter")["generation"] == gen, "the other node saw a change of assignment"
    assert "Taking over the lease" in owner.logtext()
    assert ask(c.port, "INCR k") == "3"
    for h in c.nodes.values():
        assert h.stop() == 0


def test_a_new_coordinator_runs_the_commands_the_old_one_left(etcd, halod_factory, tmp_path):
    """A switchover forwarded to the coordinator (admin/<node>/<n> in the store) that the coordinator
    never ran, because it stopped: the next coordinator runs it and answers in the key."""
    c = Cluster(etcd, halod_factory, tmp_path).start()
    h1 = c.nodes["n1"]
    wait_for(lambda: c.settled(h1), timeout=20, what="SI assigned")
    coord = c.coordinator(h1)
    other = "n2" if coord == "n1" else "n1"
    hc, ho = c.nodes[coord], c.nodes[other]
    hc.remember_children()
    hc.proc.send_signal(signal.SIGSTOP)  # the coordinator sees nothing more
    key = f"/halo/test/admin/{other}/999"
    etcd.put(key, json.dumps({"op": 2, "target": "counter", "to": ""}))  # as a forwarded switchover
    hc.kill_all()                        # its lease runs out; the other node takes over
    wait_for(lambda: c.coordinator(ho) == other, timeout=20, what="the other node coordinating")
    answered = wait_for(lambda: "result" in json.loads(etcd.get_prefix(key).get(key, "{}")), timeout=20,
                        what="the command answered by the new coordinator")
    assert answered
    assert ho.stop() == 0


def test_one_etcd_member_killed_changes_nothing_and_failover_still_works(halod_factory, tmp_path):
    """Three etcd members, every halod given all three, the first one each
    halod talks to SIGKILLed: the halods move to the others without fencing
    (both nodes stay ONLINE, nobody fails over), and a component crash after
    that still moves the ACTIVE to the other node with its state."""
    from etcd_harness import Etcd
    etcd = Etcd(members=3).start()
    try:
        c = Cluster(etcd, halod_factory, tmp_path, ttl=3).start()
        h1, h2 = c.nodes["n1"], c.nodes["n2"]
        act, sb = wait_for(lambda: c.settled(h1), timeout=20, what="SI assigned")
        assert ask(c.port, "INCR k") == "1"
        gen = h2.si("counter")["generation"]

        etcd.kill_member(0)
        # Several keepalive rounds (TTL 3 s, a renewal a second) on the two left.
        time.sleep(4)
        for h in (h1, h2):
            assert h.proc.poll() is None
            assert {n["name"]: n["state"] for n in h.status()["nodes"]} == {"n1": "ONLINE", "n2": "ONLINE"}
            assert "Fencing node" not in h.logtext() and "lost its lease" not in h.logtext()
        assert c.settled(h1) == (act, sb) and c.settled(h2) == (act, sb)
        assert h2.si("counter")["generation"] == gen, "an assignment changed while etcd lost a member"
        assert ask(c.port, "INCR k") == "2"

        owner = c.nodes[node_of(act)]
        owner.remember_children()
        owner.kill_pids([owner.pid_of(act)])
        assert wait_for(lambda: c.settled(h1) == (sb, act), timeout=20, what="failover to the other node")
        assert wait_for(lambda: c.settled(h2) == (sb, act), what="n2 agrees")
        assert wait_for(lambda: ask(c.port, "GET k") == "2", what="the new ACTIVE serves the state")
        keys = etcd.get_prefix("/halo/test/")
        assert '"ACTIVE"' in keys[f"/halo/test/confirmed/counter/{sb}"]
        for h in c.nodes.values():
            assert h.stop() == 0
    finally:
        etcd.stop()


def test_stopped_etcd_follower_neither_fences_nor_freezes_the_cluster(halod_factory, tmp_path):
    """Three etcd members, the one every halod talks to first is a follower,
    SIGSTOPped for 8 s (quorum intact; a stopped member still accepts
    connections and answers nothing).  With a 2 s lease (fence 1.5 s after
    the last renewal) no node may fence: renewals stuck on the member must move
    to another well before that, and the member stays stopped four times as
    long.  (A 1 s lease left 333 ms a renewal, which this machine's scheduling
    alone sometimes took: the test is about the stopped member, not the margin.)  And the watches must move too: a component
    crash during the stall fails over to the other node while the member is
    still stopped, and both nodes see it."""
    import time
    from etcd_harness import Etcd
    etcd = Etcd(members=3).start()
    stopped = None
    try:
        leader = wait_for(lambda: etcd.leader() is not None, what="an etcd leader") and etcd.leader()
        f = (leader + 1) % 3
        c = Cluster(etcd, halod_factory, tmp_path, ttl=2, endpoints=etcd.endpoints_from(f)).start()
        h1, h2 = c.nodes["n1"], c.nodes["n2"]
        act, sb = wait_for(lambda: c.settled(h1), timeout=20, what="SI assigned")
        assert wait_for(lambda: c.settled(h2) == (act, sb), what="n2 agrees")
        assert ask(c.port, "INCR k") == "1"
        gen = h2.si("counter")["generation"]

        etcd.pause_member(f)
        stopped = f
        t0 = time.monotonic()
        time.sleep(2)  # several renewals (one every 667 ms)
        for n, h in c.nodes.items():
            assert "Fencing node" not in h.logtext(), f"{n} fenced itself while etcd kept its quorum"
        assert c.settled(h1) == (act, sb) and c.settled(h2) == (act, sb)
        assert h2.si("counter")["generation"] == gen, "an assignment changed while a follower was stopped"

        owner = c.nodes[node_of(act)]
        owner.remember_children()
        owner.kill_pids([owner.pid_of(act)])
        assert wait_for(lambda: c.settled(h1) == (sb, act), timeout=5, what="failover seen by n1 during the stall")
        assert wait_for(lambda: c.settled(h2) == (sb, act), timeout=2, what="failover seen by n2 during the stall")
        assert wait_for(lambda: ask(c.port, "GET k") == "1", what="the new ACTIVE serves the state")
        assert time.monotonic() - t0 < 8, "the failover waited for the stopped member"
        time.sleep(max(0.0, 8 - (time.monotonic() - t0)))
        etcd.resume_member(f)
        stopped = None
        time.sleep(1)
        for h in (h1, h2):
            assert h.proc.poll() is None
            assert "Fencing node" not in h.logtext()
            assert {n["name"]: n["state"] for n in h.status()["nodes"]} == {"n1": "ONLINE", "n2": "ONLINE"}
        assert c.settled(h1) == (sb, act) and c.settled(h2) == (sb, act)
        for h in c.nodes.values():
            assert h.stop() == 0
    finally:
        if stopped is not None:
            etcd.resume_member(stopped)
        etcd.stop()


def test_an_etcd_slow_to_answer_still_renews_the_lease(etcd, halod_factory, tmp_path):
    """A running node's etcd starts answering everything 300 ms late (a machine short of CPU, a disk
    busy with a compile): each renewal's first attempt times out at 200 ms, the next one waits
    400 ms and is answered.  The node keeps its lease and its process for three TTLs.  Before,
    every renewal timed out at 200 ms and the node fenced itself within its TTL."""
    from etcd_harness import LateWatchProxy
    proxy = LateWatchProxy(etcd.members[0]["client"], 0.3)
    try:
        h = halod_factory(cluster_yaml(tmp_path, free_port()), name="n1",  # n2 never starts
                          extra_args=["--node", "n1", "--etcd", proxy.endpoint, "--lease-ttl", "2"]).start()
        active = wait_for(lambda: h.si("counter")["active"], timeout=30, what="counter ACTIVE")
        pid = h.pid_of(active)
        proxy.every = True
        time.sleep(6)
        assert "Fencing node" not in h.logtext(), "a slow etcd made the node fence itself"
        assert pid_alive(pid) and h.pid_of(active) == pid, "the ACTIVE process did not outlive a slow etcd"
        assert h.stop() == 0
    finally:
        proxy.close()


def test_node_killed_with_its_components_restarts_each_unit_once(etcd, halod_factory, tmp_path):
    """SIGKILL of a node's halod and its component together, halod started
    again after the lease ran out (bench/node-failover does this every trial):
    the next halod finds the adopted process gone and restarts the unit exactly
    once.  It used to start a second copy beside the first (once when the
    store was read, once from the restart timer): one was refused at
    registration, its exit counted as a failure of the unit, and the other was
    left running unsupervised until its lease deadline killed it."""
    import time
    from test_2n import _processes_with
    c = Cluster(etcd, halod_factory, tmp_path).start()
    h1 = c.nodes["n1"]
    act, sb = wait_for(lambda: c.settled(h1), timeout=20, what="SI assigned")
    owner, other = c.nodes[node_of(act)], c.nodes[node_of(sb)]
    owner.remember_children()
    pid = owner.pid_of(act)
    owner.proc.kill()
    os.kill(pid, signal.SIGKILL)
    owner.proc.wait()
    owner.log.close()
    assert wait_for(lambda: c.settled(other) == (sb, act) or c.si(other)["active"] == sb, timeout=20,
                    what="failover to the other node")
    mark = len(owner.logtext())
    owner.start()
    wait_for(lambda: owner.comp(act)["registered"], timeout=15, what="the unit back")
    assert wait_for(lambda: c.settled(other) == (sb, act), timeout=20, what="it is STANDBY again")
    time.sleep(0.5)
    after = owner.logtext()[mark:]
    assert after.count(f"Started component '{act}'") == 1, after
    assert "tried to register" not in after, after
    assert "exited with status" not in after, after
    assert _processes_with(COUNTER, str(c.port + 1 + int(act.split("-")[1]))) == [owner.pid_of(act)]
    for h in c.nodes.values():
        assert h.stop() == 0


def test_a_halod_restarted_after_its_lease_ran_out_does_not_fence_its_new_clients(etcd, halod_factory, tmp_path):
    """SIGKILL of a node's halod, its lease runs out (its components stop themselves), and a new
    halod starts on the node.  Until that halod holds a lease of its own, no deadline runs for the
    processes it serves: a process that connects meanwhile must not find the dead halod's deadline,
    long past, and kill itself at once ("halod did not renew this node's lease in time").  The new
    halod cannot reach etcd here, so every client connects before it joins."""
    proxy = Proxy(etcd.members[0]["client"])
    try:
        port = free_port()
        yaml = cluster_yaml(tmp_path, port)
        h1 = halod_factory(yaml, name="n1", extra_args=["--node", "n1", "--etcd", etcd.endpoints, "--lease-ttl", "1"])
        h1.start()
        n2_args = ["--node", "n2", "--etcd", f"http://127.0.0.1:{proxy.port}", "--lease-ttl", "1"]
        h2 = halod_factory(yaml, name="n2", extra_args=n2_args).start()
        wait_for(lambda: h1.si("counter")["standby"] and h1.si("counter")["active"], timeout=20, what="SI assigned")
        h2.remember_children()
        comps = set(h2.known_pids)
        h2.proc.kill()
        h2.proc.wait()
        h2.log.close()
        wait_for(lambda: not any(pid_alive(p) for p in comps), timeout=10,
                 what="n2's components to stop at the lease deadline")
        wait_for(lambda: {n["name"]: n["state"] for n in h1.status()["nodes"]}["n2"] != "ONLINE", timeout=15,
                 what="n1 to see n2's lease end")

        proxy.cut()
        before = len(h2.logtext())
        h2.start()  # the same state directory and socket: the same lease file
        watch = subprocess.Popen([HALOCTL, "--socket", h2.socket, "cdb", "watch", "/"],
                                 stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
        try:
            time.sleep(1.5)  # the client stays connected: far longer than a stale deadline takes to fire
            assert watch.poll() is None, \
                f"a client of the new halod was fenced by the old halod's lease ({watch.returncode}): " \
                f"{watch.stderr.read()}"
        finally:
            watch.terminate()
            watch.wait()

        # Once it reaches etcd, the new halod joins and its component runs as STANDBY.
        proxy.heal()
        wait_for(lambda: h1.si("counter")["standby"] == "counter-1" and
                 not any(a["pending"] for a in h1.si("counter")["assignments"]), timeout=30, what="n2 STANDBY again")
        assert "did not renew" not in h2.logtext()[before:]
        for h in (h1, h2):
            assert h.stop() == 0
    finally:
        proxy.close()


def test_an_unreachable_store_is_logged_once_then_every_few_seconds(etcd, halod_factory, tmp_path):
    """halod retries its lease every 100 ms while etcd is away: the log says so once (then once every 10 s), not at
    each attempt, and says when the lease came."""
    etcd.kill_member(0)
    h = Cluster(etcd, halod_factory, tmp_path).nodes["n1"].start(wait=False)
    wait_for(lambda: "Failed to get a node lease" in h.logtext(), timeout=5, what="the first failure logged")
    time.sleep(3)  # some 30 attempts
    text = h.logtext()
    assert text.count("Failed to get a node lease") == 1 and "retrying every 100 ms" in text, text
    assert "Still no node lease" not in text
    etcd.start_member(etcd.members[0])
    wait_for(lambda: re.search(r"Got a node lease after \d+ failed attempts", h.logtext()), timeout=30,
             what="the lease, logged")
    assert h.stop() == 0


def test_a_component_restarted_while_etcd_was_unreachable_runs_once_after_halod_is_killed(etcd, halod_factory,
                                                                                           tmp_path):
    """n2 cannot reach etcd; its component fails and is restarted in place (component-restart), and the store
    cannot take the new process's record; n2's halod is SIGKILLed before it could.  etcd back, the next halod
    on n2 finds the survivor by the mark in its environment and adopts it: one process of the component, not
    two (it used to start the component again beside the survivor: two STANDBYs here, two ACTIVEs had the
    unit held ACTIVE)."""
    from test_2n import _owned_by, _processes_with
    proxy = Proxy(etcd.members[0]["client"])
    try:
        port = free_port()
        yaml = cluster_yaml(tmp_path, port).replace(
            "    redundancy: 2N\n", "    redundancy: 2N\n    escalation: {component-restart: {max: 5, probation: 1m}}\n")
        # A lease long enough that nobody fences n2 while it is cut off.
        h1 = halod_factory(yaml, name="n1", extra_args=["--node", "n1", "--etcd", etcd.endpoints, "--lease-ttl", "20"])
        h2 = halod_factory(yaml, name="n2", extra_args=["--node", "n2", "--etcd", f"http://127.0.0.1:{proxy.port}",
                                                        "--lease-ttl", "20"])
        h1.start()
        h2.start()
        wait_for(lambda: h1.si("counter")["active"] and h1.si("counter")["standby"] and
                 not any(a["pending"] for a in h1.si("counter")["assignments"]), timeout=20, what="SI assigned")
        comp = "counter-1"  # n2's
        sb_port = str(port + 2)
        old = h2.pid_of(comp)

        proxy.cut()
        h2.remember_children()
        os.kill(old, signal.SIGKILL)
        new = wait_for(lambda: (lambda p: p if p not in (None, old) and h2.comp(comp)["registered"] else None)(
            h2.pid_of(comp)), timeout=15, what="n2's component restarted while etcd is unreachable")
        h2.remember_children()
        h2.proc.kill()
        h2.proc.wait()
        h2.log.close()
        assert pid_alive(new)
        # The store never took the new process's record: it names the one that was killed.
        record = json.loads(etcd.get_prefix("/halo/test/components/")[f"/halo/test/components/{comp}"])
        assert record["pid"] in (old, 0), record
        proxy.heal()

        mark = len(h2.logtext())
        h2.start()
        wait_for(lambda: h2.comp(comp)["registered"], timeout=20, what="n2's component registered again")
        wait_for(lambda: h1.si("counter")["standby"] and
                 not any(a["pending"] for a in h1.si("counter")["assignments"]), timeout=30, what="SI assigned again")
        time.sleep(0.5)  # a second copy, if one were started, would be spawned by now
        after = h2.logtext()[mark:]
        assert h2.pid_of(comp) == new, after
        assert _processes_with(COUNTER, sb_port) == [new], after
        assert _owned_by(h2.state, comp) == [new]
        assert "Started component" not in after, after
        for h in (h1, h2):
            assert h.stop() == 0
    finally:
        proxy.close()
