# SPDX-License-Identifier: MIT
"""CDB roles driven by the AMF: a service group with cdb-roles makes its ACTIVE unit's node the
primary and its STANDBY unit's node the secondary; on node failover the new primary holds every
commit the old one acknowledged.  Two real halods over a real etcd."""
import json
import os
import re
import select
import selectors
import signal
import socket
import struct
import subprocess
import threading
import time

from halo_harness import CDBCLIENT, HALOCTL, TESTCOMP, commits_until, free_port, wait_for
from test_reload import rewrite

TOKEN = "roles-token"


def roles_yaml(tmp_path, ports):
    token = tmp_path / "token"
    token.write_text(TOKEN + "\n")
    return f"""
cluster: roles
nodes:
  n1: {{cdb-address: "127.0.0.1:{ports['n1']}"}}
  n2: {{cdb-address: "127.0.0.1:{ports['n2']}"}}
cdb: {{token-file: "{token}", tick: 100ms, dead-after: 600ms}}
defaults:
  component:
    restart: {{max: 10, window: 60s, delay: 50ms, delay-max: 500ms}}
service-groups:
  db:
    cdb-roles: true
    component: {{command: {TESTCOMP}}}
    service-units:
      db-a: {{node: n1}}
      db-b: {{node: n2}}
    service-instances:
      db: {{csis: {{db-csi: {{}}}}}}
"""


class StallProxy:
    """Forwards a port of its own to target_port, both ways, in one thread; stall() holds every byte
    and every new connection until resume(): a replication link that goes silent without breaking."""

    def __init__(self, target_port):
        self.target_port = target_port
        self.flowing = threading.Event()
        self.flowing.set()
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.port = self.listener.getsockname()[1]
        self.sel = selectors.DefaultSelector()
        self.sel.register(self.listener, selectors.EVENT_READ)
        self.closed = False
        self.thread = threading.Thread(target=self.run, daemon=True)
        self.thread.start()

    def run(self):
        while not self.closed:
            if not self.flowing.wait(0.05):
                continue
            for key, _ in self.sel.select(0.05):
                if key.fileobj.fileno() < 0:
                    continue  # its pair ended earlier in this round
                if key.fileobj is self.listener:
                    a, _ = self.listener.accept()
                    b = socket.create_connection(("127.0.0.1", self.target_port))
                    self.sel.register(a, selectors.EVENT_READ, b)
                    self.sel.register(b, selectors.EVENT_READ, a)
                    continue
                try:
                    data = key.fileobj.recv(65536)
                    if data:
                        key.data.sendall(data)
                        continue
                except OSError:
                    pass
                for s in (key.fileobj, key.data):
                    self.sel.unregister(s)
                    s.close()
        for key in list(self.sel.get_map().values()):
            key.fileobj.close()

    def stall(self):
        self.flowing.clear()

    def resume(self):
        self.flowing.set()

    def close(self):
        self.closed = True
        self.thread.join(5)


class Roles:
    """Two halods over etcd with a cdb-roles group.  proxied: each node's cdb-address is a StallProxy
    (self.proxies) in front of its --cdb-listen, so that a replication link can be made to stall."""

    def __init__(self, etcd, factory, tmp_path, proxied=False):
        self.listen = {"n1": free_port(), "n2": free_port()}
        self.proxies = {n: StallProxy(p) for n, p in self.listen.items()} if proxied else {}
        self.ports = {n: self.proxies[n].port for n in self.listen} if proxied else self.listen
        self.yaml = roles_yaml(tmp_path, self.ports)
        self.etcd, self.factory = etcd, factory
        self.nodes = {n: self.make(n) for n in ("n1", "n2")}

    def make(self, n):
        return self.factory(self.yaml, name=f"roles-{n}",
                            extra_args=["--node", n, "--etcd", self.etcd.endpoints, "--lease-ttl", "1",
                                        "--http", "none", "--cdb-listen", f"127.0.0.1:{self.listen[n]}"])

    def close(self):
        for p in self.proxies.values():
            p.close()

    def ha_state(self, n):
        r = self.nodes[n].ctl("ha", "--token", TOKEN, "status", "--json", check=False)
        return json.loads(r.stdout) if r.returncode == 0 else None

    def start(self):
        """Starts both halods; returns the nodes of the ACTIVE and the STANDBY unit once settled."""
        for h in self.nodes.values():
            h.start()
        act, sb = wait_for(self.settled, timeout=20, what="the SI assigned")
        return node_of(act), node_of(sb)

    def settled(self):
        s = self.nodes["n1"].si("db")
        if s["active"] and s["standby"] and not any(a["pending"] for a in s["assignments"]):
            return s["active"], s["standby"]
        return None


    def settle_roles(self):
        """Starts both halods; returns (primary, secondary) once the ACTIVE unit's node is PRIMARY and the
        STANDBY unit's node its secondary."""
        primary, secondary = self.start()
        wait_for(lambda: (self.ha_state(primary) or {}).get("state") == "PRIMARY", timeout=10,
                 what="ACTIVE's node PRIMARY")
        wait_for(lambda: (self.ha_state(secondary) or {}).get("state") == "SECONDARY" and
                 self.nodes[primary].status()["cdb"]["secondaries"], timeout=10, what="STANDBY's node SECONDARY")
        return primary, secondary


def node_of(su):
    return {"db-a": "n1", "db-b": "n2"}[su]


def unit_of(node):
    return {"n1": "db-a", "n2": "db-b"}[node]


def notifications(h):
    """haloctl ha notifications --json of halod h, once it follows them; read what it printed with
    notifications_seen() after."""
    p = subprocess.Popen([HALOCTL, "--socket", h.socket, "ha", "notifications", "--json", "--token", TOKEN],
                         stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    assert "following" in p.stderr.readline(), "haloctl ha notifications did not start"
    return p


def notifications_seen(p, until=None, timeout=20):
    """What p printed; with until, first waits (up to timeout) for a notification of that type:
    halod sends it after the log line a test waits for, and a slow (sanitized) build takes a while.
    Reads the pipe's descriptor itself: communicate() reads the descriptors too, past any buffer."""
    got = b""
    deadline = time.monotonic() + timeout
    fd = p.stdout.fileno()
    while until and time.monotonic() < deadline:
        if not select.select([fd], [], [], 0.1)[0]:
            continue
        chunk = os.read(fd, 65536)
        if not chunk:
            break
        got += chunk
        complete = got.decode().split("\n")[:-1]  # what follows the last newline is not a line yet
        if any(json.loads(line).get("type") == until for line in complete if line.strip()):
            break
    p.send_signal(signal.SIGTERM)
    out, _ = p.communicate(timeout=10)
    return [json.loads(line) for line in (got.decode() + out).splitlines() if line.strip()]


def items(h, path):
    return {i["path"] for i in json.loads(h.ctl("cdb", "list", path, "--json").stdout)}


def test_roles_follow_the_active_unit_and_survive_node_failover(etcd, halod_factory, tmp_path):
    r = Roles(etcd, halod_factory, tmp_path)
    primary, secondary = r.start()
    sb = {"n1": "db-a", "n2": "db-b"}[secondary]
    wait_for(lambda: (r.ha_state(primary) or {}).get("state") == "PRIMARY", timeout=10, what="ACTIVE's node PRIMARY")
    wait_for(lambda: r.ha_state(secondary) == {"state": "SECONDARY",
                                               "nodes": [{"nodeid": primary,
                                                          "addr": f"127.0.0.1:{r.ports[primary]}"}]},
             timeout=10, what="STANDBY's node the SECONDARY of ACTIVE's")

    # The application cannot move the roles itself, and a wrong token is refused.
    refused = r.nodes[primary].ctl("ha", "--token", TOKEN, "benone", check=False)
    assert refused.returncode == 1 and "not allowed" in refused.stderr
    wrong = r.nodes[primary].ctl("ha", "--token", "guess", "status", check=False)
    assert wrong.returncode == 1 and "bad token" in wrong.stderr

    # A stream of commits on the primary; the primary's node dies (halod and components, SIGKILL).
    hp = r.nodes[primary]
    acked = commits_until(hp.socket, "/roles", 1000, hp.kill_all)
    assert len(acked) >= 1000

    # The survivor's unit goes ACTIVE, its halod becomes the primary by itself, and every
    # commit the old primary acknowledged is there.
    hs = r.nodes[secondary]
    wait_for(lambda: hs.si("db")["active"] == sb, timeout=20, what="failover to the survivor")
    wait_for(lambda: (r.ha_state(secondary) or {}).get("state") == "PRIMARY", timeout=10, what="survivor PRIMARY")
    items = {i["path"] for i in json.loads(hs.ctl("cdb", "list", "/roles", "--json").stdout)}
    lost = [i for i in acked if f"/roles/{i}" not in items]
    assert not lost, f"{len(lost)} acknowledged commits lost, first {lost[:5]}"
    hs.ctl("cdb", "set", "/after", "failover")  # the new primary takes writes

    # The dead node comes back: its unit is STANDBY, its halod the new primary's secondary,
    # with a full copy (it may hold commits it never got acknowledged).
    back = r.make(primary)
    r.nodes[primary] = back
    back.start()
    wait_for(lambda: (r.ha_state(primary) or {}).get("state") == "SECONDARY", timeout=20,
             what="the returning node SECONDARY")
    wait_for(lambda: back.ctl("cdb", "get", "/after", check=False).stdout == "failover\n", timeout=10,
             what="the returning node's copy")
    hs.ctl("cdb", "set", "/later", "x")
    assert back.ctl("cdb", "get", "/later").stdout == "x\n"
    for h in (hs, back):
        assert h.stop() == 0


def test_status_shows_the_roles(etcd, halod_factory, tmp_path):
    r = Roles(etcd, halod_factory, tmp_path)
    primary, secondary = r.start()
    h = r.nodes[primary]
    wait_for(lambda: h.status()["cdb"]["secondaries"], timeout=10, what="the secondary listed")
    cdb = h.status()["cdb"]
    assert cdb["state"] == "PRIMARY" and cdb["nodeid"] == primary and cdb["roles_follow"] == "db"
    assert [s["nodeid"] for s in cdb["secondaries"]] == [secondary]
    text = h.ctl("status").stdout
    assert f"Configuration database: PRIMARY as {primary}, secondaries {secondary} (roles follow service group db)" \
        in text, text
    other = r.nodes[secondary].status()["cdb"]
    assert other["state"] == "SECONDARY" and other["primary"] == primary
    for n in r.nodes.values():
        assert n.stop() == 0


def test_a_standby_whose_link_stalls_takes_no_writes(etcd, halod_factory, tmp_path):
    r = Roles(etcd, halod_factory, tmp_path, proxied=True)
    try:
        primary, secondary = r.settle_roles()
        hp, hs = r.nodes[primary], r.nodes[secondary]
        hp.ctl("cdb", "set", "/before", "1")

        # The primary's replication link goes silent (its halod, its unit and etcd are fine): the
        # standby's node leaves SECONDARY within dead-after (600 ms here) ...
        r.proxies[primary].stall()
        wait_for(lambda: (r.ha_state(secondary) or {}).get("state") == "NONE", timeout=10,
                 what="the standby's node NONE")
        # ... and takes no write in NONE: the ACTIVE never moved, its node is the only writer.
        refused = hs.ctl("cdb", "set", "/standby", "x", check=False)
        assert refused.returncode == 5, refused.stdout  # refused in this state (docs/haloctl.md)
        # NONE, or SECONDARY again if the roles already had it join anew (joining: not in sync, no write).
        assert re.search(f"not primary: the primary is node '{primary}'; this node is (NONE|SECONDARY) ",
                         refused.stderr), refused.stderr
        # Meanwhile a commit on the primary waits for its standby instead of being acknowledged alone.
        waiting = subprocess.Popen([HALOCTL, "--socket", hp.socket, "cdb", "set", "/during", "2"],
                                   stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        time.sleep(1.0)
        assert waiting.poll() is None, "a commit was acknowledged while the standby could not have it"

        # The link comes back: the standby joins again, the waiting commit is acknowledged, and the
        # standby still takes no write.
        r.proxies[primary].resume()
        out, err = waiting.communicate(timeout=20)
        assert waiting.returncode == 0, err
        wait_for(lambda: (r.ha_state(secondary) or {}).get("state") == "SECONDARY", timeout=10,
                 what="the standby's node SECONDARY again")
        assert hs.ctl("cdb", "get", "/during").stdout == "2\n"
        refused = hs.ctl("cdb", "set", "/standby", "y", check=False)
        assert refused.returncode == 5 and f"the primary is node '{primary}'" in refused.stderr, refused.stderr
        assert hs.si("db")["active"] == unit_of(primary)
        assert items(hs, "/") == items(hp, "/") == {"/before", "/during"}
        for h in r.nodes.values():
            assert h.stop() == 0
    finally:
        r.close()


def test_a_rejoin_keeps_every_acknowledged_commit_and_names_what_it_discards(etcd, halod_factory, tmp_path):
    r = Roles(etcd, halod_factory, tmp_path, proxied=True)
    try:
        primary, secondary = r.settle_roles()
        hp, hs = r.nodes[primary], r.nodes[secondary]
        acked = subprocess.run([CDBCLIENT, "commit", "/acked", "200"], capture_output=True, text=True, timeout=60,
                               env={"HALO_SOCKET": hp.socket}).stdout.split("\n")
        acked = [line.split()[1] for line in acked if line.startswith("ok ")]
        assert len(acked) == 200
        notes = notifications(hp)

        # The link stalls, and a commit on the primary waits for the standby (it is durable there only).
        r.proxies[primary].stall()
        wait_for(lambda: (r.ha_state(secondary) or {}).get("state") == "NONE", timeout=10,
                 what="the standby's node NONE")
        waiting = subprocess.Popen([HALOCTL, "--socket", hp.socket, "cdb", "set", "/unacked", "1"],
                                   stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        time.sleep(1.0)
        assert waiting.poll() is None, "a commit was acknowledged while the standby could not have it"

        # The primary's halod stops: the standby's unit takes over, its node becomes the primary.
        hp.remember_children()
        hp.proc.send_signal(signal.SIGSTOP)
        try:
            wait_for(lambda: hs.si("db")["active"] == unit_of(secondary), timeout=20, what="failover")
            wait_for(lambda: (r.ha_state(secondary) or {}).get("state") == "PRIMARY", timeout=10,
                     what="the survivor PRIMARY")
            hs.ctl("cdb", "set", "/after", "failover")
        finally:
            hp.proc.send_signal(signal.SIGCONT)

        # The old primary finds it lost its lease: the waiting commit is not acknowledged (the client
        # is told so, or, a process of the fenced node, stopped by libhalo) ...
        out, err = waiting.communicate(timeout=20)
        assert waiting.returncode != 0 and "committed" not in out, (out, err)
        # ... its node joins the new primary with a full copy, which drops that commit, and says so.
        wait_for(lambda: (r.ha_state(primary) or {}).get("state") == "SECONDARY", timeout=30,
                 what="the old primary SECONDARY")
        said = f"discarded 1 transaction of this node that primary '{secondary}' does not have: "
        wait_for(lambda: said in hp.logtext(), timeout=10, what="the discarded commit named in the log")
        seen = notifications_seen(notes, until="SECONDARY_INITIALIZED")
        init = [n for n in seen if n["type"] == "SECONDARY_INITIALIZED"]
        assert init and init[-1]["full_copy"], init
        assert said in init[-1]["reason"] and init[-1]["reason"].endswith(f"@{primary} (/unacked)"), init

        # Every acknowledged commit is on both nodes; the unacknowledged one on neither.
        for h in (hs, hp):
            have = items(h, "/")
            lost = [i for i in acked if f"/acked/{i}" not in have]
            assert not lost, f"{len(lost)} acknowledged commits lost, first {lost[:5]}"
            assert "/after" in have and "/unacked" not in have
        for h in r.nodes.values():
            assert h.stop() == 0
    finally:
        r.close()


def hello_frame(nodeid, nonce=b"\0" * 32):
    hello = bytes([0x08, 1, 0x12, len(nodeid)]) + nodeid + bytes([0x1A, len(nonce)]) + nonce
    repl = bytes([0x0A, len(hello)]) + hello
    return struct.pack(">I", len(repl)) + repl


def test_a_hello_naming_the_secondary_without_the_token_changes_nothing(etcd, halod_factory, tmp_path):
    r = Roles(etcd, halod_factory, tmp_path)
    primary, secondary = r.settle_roles()
    hp, hs = r.nodes[primary], r.nodes[secondary]
    notes = notifications(hp)

    # A stranger on the replication port names the connected secondary, and never authenticates.
    s = socket.create_connection(("127.0.0.1", r.ports[primary]), timeout=5)
    s.sendall(hello_frame(secondary.encode()))
    assert s.recv(4), "the primary did not answer the Hello"  # it read the Hello
    hp.ctl("cdb", "set", "/after-hello", "1")
    # The real secondary is still connected and has the commit the primary acknowledged.
    assert hs.ctl("cdb", "get", "/after-hello").stdout == "1\n"
    assert [n["nodeid"] for n in hp.status()["cdb"]["secondaries"]] == [secondary]

    # The stranger is closed once it has not authenticated within max(dead-after, 2 s).
    t0 = time.monotonic()
    s.settimeout(10)
    while s.recv(65536):
        pass
    assert time.monotonic() - t0 < 5
    s.close()
    # A SECONDARY_DIED the stranger caused would have come at its Hello or at its close, seconds ago:
    # 3 s more cover a slow (sanitized) halod, not the 20 s of a wait for something that should come.
    died = [n for n in notifications_seen(notes, until="SECONDARY_DIED", timeout=3) if n["type"] == "SECONDARY_DIED"]
    assert not died and "Lost the CDB primary" not in hs.logtext(), died

    # The primary fails over: everything it acknowledged is on the new primary.
    acked = commits_until(hp.socket, "/h", 200, hp.kill_all)
    wait_for(lambda: (r.ha_state(secondary) or {}).get("state") == "PRIMARY", timeout=20, what="survivor PRIMARY")
    have = items(hs, "/")
    lost = [i for i in acked if f"/h/{i}" not in have]
    assert not lost and "/after-hello" in have, f"{len(lost)} acknowledged commits lost, first {lost[:5]}"
    assert hs.stop() == 0


def test_commits_acknowledged_alone_keep_the_active_on_their_node(etcd, halod_factory, tmp_path):
    """The standby's node dies: the primary acknowledges commits alone, after it has recorded so
    in the store (cdb-alone/db, its node).  The dead node comes back but cannot catch up (its
    replication link to the primary stalls).  Now the primary's component dies: the ACTIVE must
    not go to the other node, which lacks those commits (it used to: the other node became the
    primary without them, and they were discarded when the old primary rejoined, as the chaos
    checker found); the unit restarts in place and its node stays the primary with every commit.
    Once the other node has them, the record goes and a failover may move the ACTIVE again."""
    r = Roles(etcd, halod_factory, tmp_path, proxied=True)
    try:
        primary, secondary = r.settle_roles()
        hp = r.nodes[primary]
        key = "/halo/roles/cdb-alone/db"
        r.nodes[secondary].kill_all()
        wait_for(lambda: hp.si("db")["standby"] is None, timeout=20, what="no standby")
        acked = [str(i) for i in range(20)]
        for i in acked:
            hp.ctl("cdb", "set", f"/alone/{i}", i, timeout=10)
        assert json.loads(etcd.get_prefix(key)[key])["node"] == primary

        r.proxies[primary].stall()  # the returning node cannot get the commits
        back = r.make(secondary)
        r.nodes[secondary] = back
        back.start()
        wait_for(lambda: hp.si("db")["standby"] == unit_of(secondary), timeout=20, what="the other unit STANDBY")
        os.kill(hp.pid_of(unit_of(primary)), signal.SIGKILL)
        time.sleep(3)  # a failover would have happened by now
        assert (r.ha_state(secondary) or {}).get("state") != "PRIMARY"
        wait_for(lambda: hp.si("db")["active"] == unit_of(primary), timeout=20, what="the ACTIVE back on its node")
        wait_for(lambda: (r.ha_state(primary) or {}).get("state") == "PRIMARY", timeout=10, what="still PRIMARY")
        assert {f"/alone/{i}" for i in acked} <= items(hp, "/alone")

        # The link flows: the other node catches up, the record goes, and a failover works again.
        r.proxies[primary].resume()
        wait_for(lambda: key not in etcd.get_prefix(key), timeout=20, what="the record deleted")
        assert {f"/alone/{i}" for i in acked} <= items(back, "/alone")
        os.kill(hp.pid_of(unit_of(primary)), signal.SIGKILL)
        wait_for(lambda: back.si("db")["active"] == unit_of(secondary), timeout=20, what="failover to the other node")
        wait_for(lambda: (r.ha_state(secondary) or {}).get("state") == "PRIMARY", timeout=10, what="it is PRIMARY")
        assert {f"/alone/{i}" for i in acked} <= items(back, "/alone")
        for h in r.nodes.values():
            assert h.stop() == 0
    finally:
        r.close()


def test_a_cdb_roles_group_added_and_changed_by_reloads_drives_the_roles(etcd, halod_factory, tmp_path):
    """Added on both nodes by a reload: the ACTIVE unit's node becomes the primary, the STANDBY's its
    secondary, the other groups run on (refused on a node whose CDB has a role of the HA control's).
    Its SIs added and removed: the roles stay.  The ACTIVE's unit removed: it hands the ACTIVE, and so
    the primary, over to the STANDBY's node, never two primaries; a unit holding the primary with no
    STANDBY to take it over is not removed."""
    r = Roles(etcd, halod_factory, tmp_path)
    other = f"""  other:
    component: {{command: {TESTCOMP}}}
    service-units: {{o-a: {{node: n1}}, o-b: {{node: n2}}}}
    service-instances: {{o: {{csis: {{o-csi: {{}}}}}}}}
"""
    # A third node, running nothing: a unit moved there is a unit removed and one added.
    r.yaml = r.yaml.replace("nodes:\n", f"nodes:\n  n3: {{cdb-address: \"127.0.0.1:{free_port()}\"}}\n")
    db = r.yaml[r.yaml.index("  db:\n"):]
    without = r.yaml.replace(db, other)
    # Its units' components named, so that one can be added beside them.
    for old, new in ((f"command: {TESTCOMP}}}", f"command: {TESTCOMP}, csi-types: [main]}}"),
                     ("db-csi: {}", "db-csi: {type: main}"), ("db-a: {node: n1}", "db-a: {node: n1, components: {m: {}}}"),
                     ("db-b: {node: n2}", "db-b: {node: n2, components: {m: {}}}")):
        assert old in db, old
        db = db.replace(old, new)

    def unit(u, n, extra=""):
        return f"      {u}: {{node: {n}, components: {{m: {{}}{extra}}}}}\n"
    for h in r.nodes.values():
        rewrite(h, without)
        h.start()
    r.nodes["n1"].wait_assigned("o")
    pids = {c: r.nodes[n].pid_of(c) for n, c in (("n1", "o-a"), ("n2", "o-b"))}
    assert all((r.ha_state(n) or {}).get("state") == "NONE" for n in r.nodes)

    h1 = r.nodes["n1"]
    h1.ctl("ha", "--token", TOKEN, "beprimary", "n1")
    rewrite(h1, without + db)
    refused = h1.ctl("reload", check=False)
    assert refused.returncode == 5 and "'service-groups.db' added: this node's CDB has a role set through the HA " \
        "control" in refused.stderr, refused.stderr
    h1.ctl("ha", "--token", TOKEN, "benone")

    def reload_both(text, summary):
        """Each node in turn; the second one again while the first one's change is still settling."""
        for h in r.nodes.values():
            rewrite(h, without + text)

            def applied():
                p = h.ctl("reload", check=False)
                assert p.returncode == 0 or "reload again later" in p.stderr, p.stderr
                return p.stdout if p.returncode == 0 else None
            out = wait_for(applied, timeout=20, what="the reload applied")
            assert summary in out, out

    def roles():
        return {n: (r.ha_state(n) or {}).get("state") for n in r.nodes}

    reload_both(db, "applied: 1 service group added")
    act, sb = wait_for(r.settled, timeout=20, what="db assigned")
    primary, secondary = node_of(act), node_of(sb)
    wait_for(lambda: roles() == {primary: "PRIMARY", secondary: "SECONDARY"} and
             r.nodes[primary].status()["cdb"]["secondaries"], timeout=10, what="the roles on the units' nodes")
    assert r.nodes[primary].status()["cdb"]["roles_follow"] == "db"
    r.nodes[primary].ctl("cdb", "set", "/added", "live")
    wait_for(lambda: r.nodes[secondary].ctl("cdb", "get", "/added", check=False).stdout == "live\n", timeout=10,
             what="the commit on the secondary")
    assert {c: r.nodes[n].pid_of(c) for n, c in (("n1", "o-a"), ("n2", "o-b"))} == pids

    # A component added to each unit, then removed: the roles stay where they are.
    xs = db
    for u in (act, sb):
        xs = xs.replace(unit(u, node_of(u)), unit(u, node_of(u), ", x: {csi-types: [none]}"))
    reload_both(xs, "applied: 2 components added")
    wait_for(lambda: r.nodes[primary].pid_of(f"{act}/x") and r.nodes[secondary].pid_of(f"{sb}/x"), timeout=20,
             what="the components added running")
    assert roles() == {primary: "PRIMARY", secondary: "SECONDARY"} and r.settled() == (act, sb)
    x = r.nodes[primary].pid_of(f"{act}/x")
    reload_both(db, "applied: 2 components removed")
    wait_for(lambda: [c["name"] for c in r.nodes[primary].su(act)["components"]] == [f"{act}/m"], timeout=20,
             what="the components removed")
    assert not os.path.exists(f"/proc/{x}/cmdline") or not open(f"/proc/{x}/cmdline").read()
    assert roles() == {primary: "PRIMARY", secondary: "SECONDARY"} and r.settled() == (act, sb)

    # An SI added, then the first one removed: the roles stay where they are.
    dbline = "      db: {csis: {db-csi: {type: main}}}\n"
    db2 = db.replace(dbline, dbline + "      db2: {csis: {db2-csi: {type: main}}}\n")
    assert db2 != db
    reload_both(db2, "applied: 1 service instance added")
    wait_for(lambda: r.nodes[primary].si("db2")["active"] == act and r.nodes[primary].si("db2")["standby"] == sb,
             timeout=20, what="db2 assigned with db")
    reload_both(db2.replace(dbline, ""), "applied: 1 service instance removed")
    wait_for(lambda: "Service instance 'db' removed" in r.nodes[primary].logtext(), timeout=20, what="db removed")
    assert roles() == {primary: "PRIMARY", secondary: "SECONDARY"}
    r.nodes[primary].ctl("cdb", "set", "/after-si", "x")
    db2 = db2.replace(dbline, "")

    # The ACTIVE's unit moved to n3 (which runs nothing): the primary goes over to the STANDBY's node.
    seen = set()
    moved = db2.replace(unit(act, primary), unit("db-c", "n3"))
    assert moved != db2
    reload_both(moved, "applied: 1 service unit added, 1 service unit removed")

    def handed_over():
        # Asked one node after the other, the old primary last: it leaves its role before the new
        # one takes it, so a sample with two PRIMARYs is a real overlap, never one that fell
        # between the two answers (CI, once, with the old primary asked first).
        now = {n: (r.ha_state(n) or {}).get("state") for n in sorted(r.nodes, key=lambda n: n == primary)}
        seen.add(tuple(sorted(now.values())))
        return now[secondary] == "PRIMARY" and now[primary] == "SECONDARY"
    # The old primary's node has no unit of the group now: it follows the new primary.
    wait_for(handed_over, timeout=20, what="the primary handed over")
    assert not any(states.count("PRIMARY") > 1 for states in seen), seen
    r.nodes[secondary].ctl("cdb", "set", "/after-move", "y")
    assert r.nodes[secondary].ctl("cdb", "get", "/added").stdout == "live\n"

    # Now its unit holds the ACTIVE alone: not removed (the CDB would have no primary).
    hs = r.nodes[secondary]
    rewrite(hs, without + moved.replace(unit(sb, secondary), unit("db-d", primary)))
    refused = hs.ctl("reload", check=False)
    assert refused.returncode == 5 and f"'service-groups.db.service-units.{sb}' removed" in refused.stderr and \
        "the CDB would have no primary" in refused.stderr, refused.stderr
    assert roles()[secondary] == "PRIMARY"

    # The group removed: refused (no group would drive the roles: every node NONE, no writes).
    rewrite(hs, without)
    refused = hs.ctl("reload", check=False)
    assert refused.returncode == 5 and "'service-groups.db' removed" in refused.stderr and \
        "a cdb-roles group is not removed live" in refused.stderr, refused.stderr
    assert roles()[secondary] == "PRIMARY"
    hs.ctl("cdb", "set", "/after-refusal", "z")
    for h in r.nodes.values():
        assert h.stop() == 0
