# SPDX-License-Identifier: MIT
"""HA roles of the configuration database: real halods on loopback, driven through haloctl ha."""
import hashlib
import hmac
import json
import os
import select
import signal
import socket
import struct
import subprocess
import time

from halo_harness import CDBCLIENT, HALOCTL, Lines, cdb_only_yaml, commits_until, free_port, wait_for
from rawlink import field_bytes, field_varint, parse, unzigzag

TOKEN = "s3cret"

YAML = cdb_only_yaml("ha", "{tick: 100ms, dead-after: 600ms}")


class Node:
    """One halod and its replication port; with a token file, the token comes from the description
    (and the HA control listens on TCP too, at self.control)."""

    def __init__(self, factory, name, token_file=None):
        self.name = name
        self.port = free_port()
        self.addr = f"127.0.0.1:{self.port}"
        args = ["--http", "none", "--cdb-listen", self.addr]
        yaml = YAML
        if token_file:
            self.control = free_port()
            args += ["--ha-control", f"127.0.0.1:{self.control}"]
            yaml = cdb_only_yaml("ha", f"{{tick: 100ms, dead-after: 600ms, token-file: '{token_file}'}}")
        self.h = factory(yaml, name=f"ha-{name}", extra_args=args).start()
        self.ha_sock = os.path.join(os.path.dirname(self.h.socket), "ha.sock")

    def ha(self, *args, token=TOKEN, check=True):
        r = self.h.ctl("ha", "--token", token, *args, check=False)
        if check and r.returncode != 0:
            raise AssertionError(f"{self.name}: haloctl ha {' '.join(args)}: {r.stderr}")
        return r

    def state(self):
        return json.loads(self.ha("status", "--json").stdout)

    def cdb(self, *args, check=True):
        return self.h.ctl("cdb", *args, check=check)

    def items(self, path="/"):
        return {i["path"]: i["value"] for i in json.loads(self.cdb("list", path, "--json").stdout)}


class Notifications:
    """haloctl ha notifications --json of a node, once it follows them."""

    def __init__(self, node):
        self.p = subprocess.Popen([HALOCTL, "--socket", node.h.socket, "ha", "notifications", "--json",
                                   "--token", TOKEN], stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        self.out = Lines(self.p.stdout.fileno())
        r, _, _ = select.select([self.p.stderr], [], [], 10)
        assert r and b"following" in self.p.stderr.readline(), "haloctl ha notifications did not start"
        self.seen = []

    def next(self, kind, timeout=10):
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            n = self.out.next(deadline - time.monotonic())
            self.seen.append(n)
            if n["type"] == kind:
                return n
        raise AssertionError(f"no {kind} notification; saw {self.seen}")

    def close(self):
        self.p.send_signal(signal.SIGTERM)
        self.p.wait(10)


def primary_and_secondary(factory):
    a, b = Node(factory, "a"), Node(factory, "b")
    a.ha("beprimary", "n1")
    b.ha("besecondary", "n2", "n1", a.addr)
    return a, b


def test_transitions_allowed_and_refused(halod_factory):
    a, b = Node(halod_factory, "a"), Node(halod_factory, "b")
    assert a.state() == {"state": "NONE", "nodes": []}

    # From NONE: berelay is refused; benone and secondary-dead (as ConfD: in any state) change nothing.
    r = a.ha("berelay", check=False)
    assert r.returncode == 1 and "not allowed in the current state" in r.stderr, r.stderr
    a.ha("secondary-dead", "n9")
    a.ha("benone")
    assert a.state()["state"] == "NONE"

    a.ha("beprimary", "n1")
    assert a.state()["state"] == "PRIMARY"
    a.ha("beprimary", "n1")  # again, same name: nothing changes
    r = a.ha("beprimary", "other", check=False)
    assert r.returncode == 1 and "bad node name" in r.stderr
    assert a.ha("berelay", check=False).returncode == 1  # a primary is no relay
    a.ha("secondary-dead", "nobody")  # allowed on a primary

    b.ha("besecondary", "n2", "n1", a.addr)
    assert b.state() == {"state": "SECONDARY", "nodes": [{"nodeid": "n1", "addr": a.addr}]}
    wait_for(lambda: [n["nodeid"] for n in a.state()["nodes"]] == ["n2"], what="n2 listed by the primary")
    b.ha("secondary-dead", "n9")  # a secondary has no secondaries to drop: accepted, nothing changes
    assert b.state()["state"] == "SECONDARY"
    # A typo in the address is refused before the role is touched: b stays n1's secondary.
    r = b.ha("besecondary", "n2", "n1", "127.0.0.1:nope", check=False)
    assert r.returncode == 1, r.stderr
    assert b.state() == {"state": "SECONDARY", "nodes": [{"nodeid": "n1", "addr": a.addr}]}
    r = b.ha("besecondary", "n2", "n2", a.addr, check=False)
    assert r.returncode == 1 and "bad node name" in r.stderr  # its own primary
    b.ha("berelay")
    assert b.state()["state"] == "SECONDARY_RELAY"
    b.ha("berelay")  # already a relay

    # A relay and a secondary may become primary; a primary may become secondary.
    b.ha("beprimary", "n2")
    assert b.state()["state"] == "PRIMARY"
    a.ha("besecondary", "n1", "n2", b.addr)
    assert a.state()["state"] == "SECONDARY"
    a.ha("benone")
    assert a.state() == {"state": "NONE", "nodes": []}
    b.ha("benone")
    assert b.state()["state"] == "NONE"

    # The database is writable in NONE and PRIMARY, read-only in SECONDARY.
    b.cdb("set", "/own", "1")
    b.ha("beprimary", "n2")
    b.cdb("set", "/own", "2")
    a.ha("besecondary", "n1", "n2", b.addr)
    r = a.cdb("set", "/x", "1", check=False)
    assert r.returncode == 5 and "read-only on a secondary" in r.stderr  # 5: refused in this state
    assert a.h.stop() == 0 and b.h.stop() == 0


def test_commits_reach_the_secondary_and_a_new_connection_replaces_the_token(halod_factory):
    a, b = primary_and_secondary(halod_factory)
    a.cdb("set", "/net/mtu", "9000")
    # Synchronous by default: once the commit returned, the secondary has it.
    assert b.items() == {"/net/mtu": "9000"}
    a.cdb("delete", "/net")
    assert b.items() == {}

    # A new controlling connection with another token: the nodes' tokens now differ.
    a.ha("status", token="other")
    b.ha("benone")
    r = b.ha("besecondary", "n2", "n1", a.addr, check=False)
    assert r.returncode == 1 and "bad token" in r.stderr, r.stderr
    assert b.state()["state"] == "NONE"
    # With the primary's token again, it joins.
    b.ha("status", token="other")
    b.ha("besecondary", "n2", "n1", a.addr, token="other")
    assert b.state()["state"] == "SECONDARY"
    assert a.h.stop() == 0 and b.h.stop() == 0


# ---- the control protocol by hand (src/proto/ha.proto), as a client that is not libhalo would speak it ----

CONNECT, BEPRIMARY, STATUS, AUTH = 1, 2, 7, 9


def request(op, token=b"", nodeid=b"", nonce=b"", mac=b""):
    """A framed Control{request: Request{op, token, nodeid, nonce, mac}}."""
    req = field_varint(1, op)
    for num, v in ((2, token), (3, nodeid), (7, nonce), (8, mac)):
        if v:
            req += field_bytes(num, v)
    ctl = field_bytes(1, req)
    return struct.pack(">I", len(ctl)) + ctl


def read_reply(s):
    """The next Reply's fields: {"error": int, "nonce": bytes, "mac": bytes}, or None when halod closed."""
    def exactly(n):
        buf = b""
        while len(buf) < n:
            d = s.recv(n - len(buf))
            if not d:
                return None
            buf += d
        return buf
    hdr = exactly(4)
    body = hdr and exactly(struct.unpack(">I", hdr)[0])
    if body is None:
        return None
    rep = parse(parse(body)[2][0])
    return {"error": unzigzag(rep.get(1, [0])[0]), "nonce": rep.get(4, [b""])[0], "mac": rep.get(5, [b""])[0]}


HALO_EBADTOKEN = -10011


def mac(token, label, first, second):
    """control-auth.c's proof: HMAC-SHA256(token, each field length-prefixed)."""
    m = hmac.new(token, digestmod=hashlib.sha256)
    for f in (b"halo ha-control", label, first, second):
        m.update(struct.pack(">H", len(f)) + f)
    return m.digest()


def control(sock, token):
    """CONNECT proving token by hand; returns the last Reply."""
    mine = os.urandom(32)
    sock.sendall(request(CONNECT, nonce=mine))
    rep = read_reply(sock)
    if not rep or rep["error"]:
        return rep
    if rep["mac"]:
        assert rep["mac"] == mac(token, b"halod", mine, rep["nonce"]), "halod's proof is wrong"
        sock.sendall(request(AUTH, mac=mac(token, b"client", rep["nonce"], mine)))
    else:
        sock.sendall(request(AUTH, token=token))
    return read_reply(sock)


def test_the_older_control_connection_is_closed(halod_factory, tmp_path):
    a = Node(halod_factory, "a")
    first = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    first.connect(a.ha_sock)
    first.settimeout(5)
    assert control(first, b"tok")["error"] == 0
    a.ha("status")  # haloctl takes over
    assert first.recv(100) == b""  # halod closed the older one
    first.close()
    assert a.h.stop() == 0


def test_the_tcp_control_needs_the_token_from_the_description(halod_factory, tmp_path):
    """With --ha-control on TCP any local user can connect: the token from the description is the
    secret a client must prove (HMAC over fresh nonces).  A client that cannot gets HA_BADTOKEN and
    runs nothing, and no CONNECT replaces the token: it cannot make a second node PRIMARY."""
    token_file = tmp_path / "token"
    token_file.write_text(TOKEN + "\n")
    a, b = Node(halod_factory, "a", str(token_file)), Node(halod_factory, "b", str(token_file))
    a.ha("beprimary", "n1")  # haloctl proves the token on the AF_UNIX socket
    b.ha("besecondary", "n2", "n1", a.addr)
    a.cdb("set", "/k", "1")
    assert b.items() == {"/k": "1"}

    def attempt(*frames, family=socket.AF_INET):
        """Sends frames on a new connection to b's control; returns halod's replies until it closed."""
        s = socket.socket(family, socket.SOCK_STREAM)
        s.settimeout(5)
        s.connect(("127.0.0.1", b.control) if family == socket.AF_INET else b.ha_sock)
        replies = []
        try:
            for f in frames:
                s.sendall(f)
                rep = read_reply(s)
                if rep is None:
                    break
                replies.append(rep["error"])
            else:
                extra = read_reply(s)  # None: halod closed it
                if extra is not None:
                    replies.append(extra["error"])
        except (ConnectionResetError, BrokenPipeError):
            pass
        except socket.timeout:
            replies.append("still open")
        finally:
            s.close()
        return replies

    # ConfD's way: CONNECT with a token of one's own choosing, then BEPRIMARY.  Refused, closed.
    assert attempt(request(CONNECT, token=b"mine"), request(BEPRIMARY, nodeid=b"n2")) == [HALO_EBADTOKEN]
    # A request with no CONNECT at all, and an AUTH with a proof made without the token.
    assert attempt(request(BEPRIMARY, nodeid=b"n2")) == [HALO_EBADTOKEN]
    s = socket.create_connection(("127.0.0.1", b.control), timeout=5)
    s.sendall(request(CONNECT, nonce=os.urandom(32)))
    rep = read_reply(s)
    assert rep["error"] == 0 and len(rep["nonce"]) == 32 and len(rep["mac"]) == 32
    s.sendall(request(AUTH, mac=b"\x01" * 32))
    assert read_reply(s)["error"] == HALO_EBADTOKEN
    assert read_reply(s) is None  # closed
    s.close()
    # The right handshake with a wrong token fails, over TCP and over the AF_UNIX socket alike.
    for family in (socket.AF_INET, socket.AF_UNIX):
        s = socket.socket(family, socket.SOCK_STREAM)
        s.settimeout(5)
        s.connect(("127.0.0.1", b.control) if family == socket.AF_INET else b.ha_sock)
        mine = os.urandom(32)
        s.sendall(request(CONNECT, nonce=mine))
        rep = read_reply(s)
        assert rep["mac"] != mac(b"guess", b"halod", mine, rep["nonce"])  # halod proved another token
        s.sendall(request(AUTH, mac=mac(b"guess", b"client", rep["nonce"], mine)))
        assert read_reply(s)["error"] == HALO_EBADTOKEN
        s.close()
    r = b.ha("beprimary", "n2", token="guess", check=False)
    assert r.returncode == 1 and "bad token" in r.stderr, r.stderr

    # Nothing ran: one PRIMARY, b still its secondary, taking no writes, with the same token as a.
    assert a.state()["state"] == "PRIMARY" and b.state()["state"] == "SECONDARY"
    assert b.cdb("set", "/x", "2", check=False).returncode == 5  # refused: read-only
    a.cdb("set", "/k", "3")
    assert b.items() == {"/k": "3"}
    # A client that knows the token gets control over TCP too.
    s = socket.create_connection(("127.0.0.1", b.control), timeout=5)
    assert control(s, TOKEN.encode())["error"] == 0
    s.sendall(request(STATUS))
    assert read_reply(s)["error"] == 0
    s.close()
    assert a.h.stop() == 0 and b.h.stop() == 0


def test_the_tcp_control_is_refused_without_a_token(halod_factory):
    """--ha-control without a token in the description: halod does not start (TCP would have no secret)."""
    h = halod_factory(YAML, name="ha-notoken", extra_args=["--http", "none", "--ha-control", f"127.0.0.1:{free_port()}"])
    h.start(wait=False)
    assert h.proc.wait(20) != 0
    assert "--ha-control needs the nodes' token" in h.logtext()


def test_full_copy_only_when_the_last_transactions_differ(halod_factory):
    a, b = Node(halod_factory, "a"), Node(halod_factory, "b")
    a.ha("beprimary", "n1")
    for i in range(50):
        a.cdb("set", f"/k/{i}", str(i))
    b.cdb("set", "/b/only", "lost in the copy")
    notes = Notifications(b)
    try:
        b.ha("besecondary", "n2", "n1", a.addr)
        n = notes.next("SECONDARY_INITIALIZED")
        assert n["full_copy"] is True and n["nodeid"] == "n1"
        assert b.items() == {f"/k/{i}": str(i) for i in range(50)}

        # Leave and come back with the same last transaction: no copy.
        b.ha("benone")
        notes.next("IS_NONE")
        b.ha("besecondary", "n2", "n1", a.addr)
        n = notes.next("SECONDARY_INITIALIZED")
        assert n["full_copy"] is False

        # Leave, let the primary move on, come back: a copy again.
        b.ha("benone")
        a.cdb("set", "/k/new", "x")
        b.ha("besecondary", "n2", "n1", a.addr)
        assert notes.next("SECONDARY_INITIALIZED")["full_copy"] is True
        assert b.items()["/k/new"] == "x"
    finally:
        notes.close()
    assert a.h.stop() == 0 and b.h.stop() == 0


def test_besecondary_without_waiting_reports_through_a_notification(halod_factory):
    a, b = Node(halod_factory, "a"), Node(halod_factory, "b")
    notes = Notifications(b)
    try:
        # Nobody listens there yet: cannot connect.
        b.ha("besecondary", "n2", "n1", a.addr, "--nowait")
        n = notes.next("BESECONDARY_RESULT")
        assert n["error"] != 0 and "connect" in n["reason"] and n["nodeid"] == "n1", n
        assert b.state()["state"] == "NONE"
        a.ha("beprimary", "n1")
        b.ha("besecondary", "n2", "n1", a.addr, "--nowait")
        n = notes.next("BESECONDARY_RESULT")
        assert n["error"] == 0 and n["nodeid"] == "n1"
        # The primary is not the one named.
        b.ha("besecondary", "n2", "someone-else", a.addr, "--nowait")
        n = notes.next("BESECONDARY_RESULT")
        assert n["error"] != 0 and "'n1'" in n["reason"], n
    finally:
        notes.close()
    assert a.h.stop() == 0 and b.h.stop() == 0


def test_relay_chain_and_losing_the_primary(halod_factory):
    a, b, c = Node(halod_factory, "a"), Node(halod_factory, "b"), Node(halod_factory, "c")
    a.ha("beprimary", "n1")
    a.cdb("set", "/before", "1")
    b.ha("besecondary", "n2", "n1", a.addr)
    b.ha("berelay")
    c.ha("besecondary", "n3", "n2", b.addr)
    a.cdb("set", "/after", "2")
    wait_for(lambda: c.items() == {"/before": "1", "/after": "2"}, what="the relay's secondary to have both")
    assert c.cdb("set", "/x", "1", check=False).returncode == 5  # read-only down the chain

    notes_c = Notifications(c)
    try:
        a.h.remember_children()
        a.h.proc.send_signal(signal.SIGKILL)
        a.h.proc.wait()
        # The relay loses its primary (ticks stop) and drops to NONE; so does its secondary.
        wait_for(lambda: b.state()["state"] == "NONE", timeout=10, what="the relay to drop to NONE")
        n = notes_c.next("NOPRIMARY")
        assert n["error"] != 0
        assert c.state()["state"] == "NONE"
    finally:
        notes_c.close()
    a.h.kill_all()
    assert b.h.stop() == 0 and c.h.stop() == 0


def test_a_secondary_killed_mid_stream_rejoins_with_everything(halod_factory):
    a, b = primary_and_secondary(halod_factory)
    env = dict(os.environ, HALO_SOCKET=a.h.socket)
    client = subprocess.Popen([CDBCLIENT, "commit", "/s", "3000"], stdout=subprocess.PIPE, text=True, env=env)
    killed = False
    for line in client.stdout:
        if not killed and line.startswith("ok 500 "):
            b.h.remember_children()
            b.h.proc.send_signal(signal.SIGKILL)
            b.h.proc.wait()
            killed = True
    assert client.wait(60) == 0
    assert killed
    # Commits went on without it; it comes back, rejoins and catches up.
    b.h.start()
    b.ha("besecondary", "n2", "n1", a.addr)
    items = b.items("/s")
    assert len(items) == 3000 and items["/s/2999"] == "2999"
    assert a.items("/s") == items
    assert a.h.stop() == 0 and b.h.stop() == 0


def test_failover_loses_no_acknowledged_commit(halod_factory):
    a, b = primary_and_secondary(halod_factory)

    def kill_primary():
        a.h.remember_children()
        a.h.proc.send_signal(signal.SIGKILL)
        a.h.proc.wait()

    acked = commits_until(a.h.socket, "/f", 2000, kill_primary)
    assert len(acked) >= 2000
    # The application promotes the secondary: every commit the old primary acknowledged is there.
    wait_for(lambda: b.state()["state"] == "NONE", timeout=10, what="the secondary to notice")
    b.ha("beprimary", "n2")
    have = b.items("/f")
    lost = [i for i in acked if f"/f/{i}" not in have]
    assert not lost, f"{len(lost)} acknowledged commits lost, first {lost[:5]}"
    a.h.kill_all()
    assert b.h.stop() == 0


def hello_frame(nodeid, nonce=b"\0" * 32):
    hello = bytes([0x08, 1, 0x12, len(nodeid)]) + nodeid + bytes([0x1A, len(nonce)]) + nonce
    repl = bytes([0x0A, len(hello)]) + hello
    return struct.pack(">I", len(repl)) + repl


def test_garbage_and_bad_tokens_on_the_replication_port(halod_factory):
    a, b = primary_and_secondary(halod_factory)
    host, port = "127.0.0.1", a.port

    def closed_by_halod(payload):
        s = socket.create_connection((host, port), timeout=5)
        try:
            s.sendall(payload)
            while True:
                d = s.recv(65536)
                if not d:
                    return True
        except (ConnectionResetError, BrokenPipeError):
            return True
        finally:
            s.close()

    assert closed_by_halod(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")          # not our protocol
    assert closed_by_halod(struct.pack(">I", 0xFFFFFFF0) + b"x" * 100)   # announces 4 GB
    assert closed_by_halod(hello_frame(b"evil") + struct.pack(">I", 3) + b"\xff\xff\xff")  # garbage after a hello
    # A hello, then an Auth with a MAC made without the token.
    auth = bytes([0x0A, 32]) + b"\x01" * 32
    assert closed_by_halod(hello_frame(b"evil") + struct.pack(">I", len(auth) + 2) + bytes([0x12, len(auth)]) + auth)

    # The primary kept serving its real secondary all along.
    a.cdb("set", "/still", "here")
    assert b.items() == {"/still": "here"}
    assert [n["nodeid"] for n in a.state()["nodes"]] == ["n2"]
    assert a.h.stop() == 0 and b.h.stop() == 0


HALO_ECONNECT = -10013


def db_hello_frame(nodeid, db, version=2, nonce=b"\0" * 32):
    """A framed Repl{hello: Hello{version, nodeid, nonce, db}}: a secondary of a cdb-roles group's subtree."""
    hello = field_varint(1, version) + field_bytes(2, nodeid) + field_bytes(3, nonce) + field_bytes(4, db)
    repl = field_bytes(1, hello)
    return struct.pack(">I", len(repl)) + repl


def repl_frames_until_closed(s):
    """Every Repl message halod sends on s, parsed one level, until it closes the connection."""
    buf = b""
    s.settimeout(10)
    try:
        while d := s.recv(65536):
            buf += d
    except ConnectionResetError:
        pass
    frames = []
    while len(buf) >= 4:
        n = struct.unpack(">I", buf[:4])[0]
        frames.append(parse(buf[4:4 + n]))
        buf = buf[4 + n:]
    return frames


def test_a_hello_naming_a_database_the_node_does_not_serve_gets_an_error(halod_factory):
    """A version-2 Hello names the database it wants (a cdb-roles group's subtree): a node that does
    not serve it says so with Error -HALO_ECONNECT and closes, before it sends anything of its own;
    its secondary of the main database goes on as before."""
    a, b = primary_and_secondary(halod_factory)
    s = socket.create_connection(("127.0.0.1", a.port), timeout=5)
    s.sendall(db_hello_frame(b"n9", b"nosuch"))
    frames = repl_frames_until_closed(s)
    s.close()
    assert len(frames) == 1 and 10 in frames[0], frames  # Repl.error, and nothing else
    error = parse(frames[0][10][0])
    assert unzigzag(error[1][0]) == HALO_ECONNECT, error
    assert error[2][0] == b"this node does not serve the CDB of group 'nosuch' now", error

    # The main database's handshake is as it was: a version-1 Hello gets the primary's Hello (version 1, no db).
    s = socket.create_connection(("127.0.0.1", a.port), timeout=5)
    s.sendall(hello_frame(b"n9"))
    hdr = s.recv(4, socket.MSG_WAITALL)
    hello = parse(parse(s.recv(struct.unpack(">I", hdr)[0], socket.MSG_WAITALL))[1][0])
    assert hello[1] == [1] and hello[2] == [b"n1"] and 4 not in hello, hello
    s.close()

    a.cdb("set", "/still", "here")
    assert b.items() == {"/still": "here"}
    assert [n["nodeid"] for n in a.state()["nodes"]] == ["n2"]
    assert "Lost the CDB primary" not in b.h.logtext()
    assert a.h.stop() == 0 and b.h.stop() == 0


def test_bind_failure_and_a_dead_secondary_notified(halod_factory):
    a, b = Node(halod_factory, "a"), Node(halod_factory, "b")
    # Something else holds a's replication port: beprimary cannot listen.
    squatter = socket.socket()
    squatter.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    squatter.bind(("127.0.0.1", a.port))
    squatter.listen(1)
    r = a.ha("beprimary", "n1", check=False)
    assert r.returncode == 1 and "cannot listen on the replication address" in r.stderr, r.stderr
    assert a.state()["state"] == "NONE"
    squatter.close()
    a.ha("beprimary", "n1")

    notes = Notifications(a)
    try:
        b.ha("besecondary", "n2", "n1", a.addr)
        assert notes.next("SECONDARY_ARRIVED")["nodeid"] == "n2"
        # The secondary's node dies: the primary notices within dead-after (600 ms here).
        b.h.remember_children()
        b.h.proc.send_signal(signal.SIGSTOP)  # silent, its connection still open
        n = notes.next("SECONDARY_DIED", timeout=10)
        assert n["nodeid"] == "n2" and "silent" in n["reason"], n
        assert a.state()["nodes"] == []
        # Commits do not wait for a dead secondary.
        a.cdb("set", "/alone", "1")
        b.h.proc.send_signal(signal.SIGCONT)
    finally:
        notes.close()
    assert a.h.stop() == 0 and b.h.stop() == 0


def test_asynchronous_replication(halod_factory):
    yaml = cdb_only_yaml("ha", "{replication: async}")

    class AsyncNode(Node):
        def __init__(self, factory, name):
            self.name = name
            self.port = free_port()
            self.addr = f"127.0.0.1:{self.port}"
            self.h = factory(yaml, name=f"ha-{name}", extra_args=["--http", "none", "--cdb-listen", self.addr]).start()

    a, b = AsyncNode(halod_factory, "a"), AsyncNode(halod_factory, "b")
    a.ha("beprimary", "n1")
    b.ha("besecondary", "n2", "n1", a.addr)
    # A stopped secondary does not hold an asynchronous commit back ...
    b.h.proc.send_signal(signal.SIGSTOP)
    t0 = time.monotonic()
    a.cdb("set", "/async", "1")
    assert time.monotonic() - t0 < 1.0
    b.h.proc.send_signal(signal.SIGCONT)
    # ... and the commit reaches it all the same.
    wait_for(lambda: b.items() == {"/async": "1"}, what="the commit on the secondary")
    assert a.h.stop() == 0 and b.h.stop() == 0


def test_a_flood_of_connections_is_bounded_and_the_secondary_kept(halod_factory):
    a, b = primary_and_secondary(halod_factory)
    idle = []
    try:
        for _ in range(100):  # more than the 64 a primary keeps
            idle.append(socket.create_connection(("127.0.0.1", a.port), timeout=5))
        # The ones over the limit are closed at once; the secondary keeps replicating.
        closed = 0
        for s in idle[64:]:
            s.settimeout(5)
            try:
                closed += s.recv(1) == b""
            except ConnectionResetError:
                closed += 1
        assert closed >= 36 - 1, closed  # the secondary's own connection counts among the 64
        a.cdb("set", "/flood", "1")
        assert b.items() == {"/flood": "1"}
    finally:
        for s in idle:
            s.close()
    # Once they are gone, a secondary connects again.
    b.ha("benone")
    b.ha("besecondary", "n2", "n1", a.addr)
    a.cdb("set", "/flood", "2")
    assert b.items() == {"/flood": "2"}
    assert a.h.stop() == 0 and b.h.stop() == 0


def test_halod_stops_cleanly_with_a_commit_waiting_for_a_secondary(halod_factory):
    a, b = primary_and_secondary(halod_factory)
    b.h.remember_children()
    b.h.proc.send_signal(signal.SIGSTOP)  # its acknowledgement never comes
    try:
        waiting = subprocess.Popen([HALOCTL, "--socket", a.h.socket, "cdb", "set", "/pending", "1"],
                                   stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        time.sleep(0.2)
        assert waiting.poll() is None  # synchronous: held back by the stopped secondary
        assert a.h.stop() == 0          # SIGTERM: answered, then gone, with nothing left behind
        out, err = waiting.communicate(timeout=10)
        assert waiting.returncode == 1 and "not confirmed by the secondaries" in err, (out, err)
    finally:
        b.h.proc.send_signal(signal.SIGCONT)
    assert b.h.stop() == 0


def test_a_secondary_notices_a_silent_primary(halod_factory):
    a, b = primary_and_secondary(halod_factory)
    notes = Notifications(b)
    try:
        a.h.remember_children()
        a.h.proc.send_signal(signal.SIGSTOP)  # no ticks, its connection still open
        t0 = time.monotonic()
        n = notes.next("NOPRIMARY", timeout=10)
        assert "silent" in n["reason"] and n["error"] != 0, n
        assert time.monotonic() - t0 < 5  # dead-after is 600 ms here
        assert b.state()["state"] == "NONE"
        b.cdb("set", "/own", "1")  # a database of its own again
    finally:
        a.h.proc.send_signal(signal.SIGCONT)
        notes.close()
    assert a.h.stop() == 0 and b.h.stop() == 0
