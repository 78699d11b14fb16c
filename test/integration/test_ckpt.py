# SPDX-License-Identifier: MIT
"""The checkpoint service (docs/checkpoints.md): sections through libhalo on one node (SQLite) and
on two nodes with separate state directories over a 3-member etcd, the sequence number server of
examples/seqserver.c surviving the SIGKILL of its ACTIVE's whole node, and bad input refused."""
import os
import re
import signal
import socket
import subprocess
import threading
import time

import pytest

import rawlink
from etcd_harness import Etcd
from halo_harness import BUILD, Halod, free_port, wait_for

CKPTCLIENT = os.path.join(BUILD, "test", "ckptclient")
SEQSERVER = os.path.join(BUILD, "examples", "seqserver")
NODE_OF = {"seq-a": "n1", "seq-b": "n2"}


def seq_yaml(port, nodes):
    node_lines = "\n".join(f"  {n}: {{}}" for n in nodes)
    units = "\n".join(f'      {su}: {{node: {nodes[i % len(nodes)]}, component: {{args: ["--standby-port", '
                      f'"{port + 1 + i}"]}}}}' for i, su in enumerate(("seq-a", "seq-b")))
    return f"""
cluster: test
nodes:
{node_lines}
defaults:
  component:
    health-check: {{period: 200ms, timeout: 600ms}}
    timeouts: {{terminate: 2s}}
service-groups:
  seq:
    redundancy: 2N
    component:
      command: {SEQSERVER}
    service-units:
{units}
    service-instances:
      seq:
        csis:
          seq:
            attributes: {{port: "{port}"}}
"""


def ckpt(h, *words, check=True, timeout=30):
    """ckptclient's lines on h's socket."""
    r = subprocess.run([CKPTCLIENT, *words], env={**os.environ, "HALO_SOCKET": h.socket},
                       capture_output=True, text=True, timeout=timeout)
    if check:
        assert r.returncode == 0, r.stdout + r.stderr
    return r.stdout.splitlines()


def ask(port, line, timeout=2):
    with socket.create_connection(("127.0.0.1", port), timeout=timeout) as s:
        s.sendall((line + "\n").encode())
        return s.makefile().readline().strip()


class SeqClient(threading.Thread):
    """Asks for numbers one request at a time, asking a request again (same id) until it is
    answered, and records every number it was given."""

    def __init__(self, port, name="c1"):
        super().__init__(daemon=True)
        self.port, self.name = port, name
        self.numbers, self.errors = [], []
        self.stop = threading.Event()

    def run(self):
        rid = 1
        while not self.stop.is_set():
            try:
                a = ask(self.port, f"NEXT {self.name} {rid}", timeout=1)
            except OSError as e:
                self.errors.append(str(e))
                time.sleep(0.02)
                continue
            if not a.startswith("NUM "):
                self.errors.append(a)
                time.sleep(0.02)
                continue
            self.numbers.append(int(a.split()[1]))
            rid += 1

    def wait_count(self, n, timeout=30):
        wait_for(lambda: len(self.numbers) >= n, timeout=timeout, what=f"{n} numbers handed out")


# ---- one node: SQLite -------------------------------------------------------------------------

@pytest.fixture(scope="module")
def one():
    port = free_port()
    h = Halod(seq_yaml(port, ["local"]), name="ckpt")
    h.port = port
    h.start()
    try:
        yield h
    finally:
        h.kill_all()


def test_sections_written_read_listed_and_deleted(one):
    out = ckpt(one, "open", "t1", "create", "retention=60000", "write", "a", "hello", "write", "b", "two words",
               "overwrite", "a", "again", "read", "a", "list", "delete", "b", "list", "close")
    assert out == ["ok open 1024 61440 60000 -", "ok write a", "ok write b", "ok write a", "data a again",
                   "section a 5", "section b 9", "ok list 2", "section a 5", "ok list 1"]
    # Another handle finds what the first wrote: the checkpoint outlives its openers.
    assert ckpt(one, "open", "t1", "read", "a", "unlink", "t1") == ["ok open 1024 61440 60000 -", "data a again"]
    # Unlinked: gone for everyone.
    assert ckpt(one, "open", "t1", check=False) == ["err open 2 No such file or directory"]


def test_refusals_say_why(one):
    out = ckpt(one, "open", "t2", "create", "sections=2", "size=8", "open", "t2",
               "new", "s1", "x", "new", "s1", "y", "overwrite", "nope", "z",
               "write", "s2", "12345678", "write", "s3", "x", "fill", "s1", "9", "write", "a/b", "x",
               "read", "nope", "unlink", "bad/name", "open", "-x!", "create", check=False)
    assert out == [
        "ok open 2 8 0 -",
        "err open 10008 already exists or already done",  # this handle has it open already
        "ok write s1",
        "err new 10008 already exists or already done",  # create-only on an existing section
        "err overwrite 2 No such file or directory",  # overwrite of a missing section
        "ok write s2",
        "err write 28 No space left on device",  # max sections 2
        "err fill 7 Argument list too long",  # max section size 8
        "err write 22 Invalid argument",  # a section id with '/'
        "err read 2 No such file or directory",
        "err unlink 22 Invalid argument",
        "err open 22 Invalid argument",
    ]
    # haloctl says so too.
    assert one.ctl("ckpt", "a/b", check=False).returncode == 2
    assert one.ctl("ckpt", "nosuch", check=False).returncode == 4
    # A collocated checkpoint needs a CSI the cluster has; a handle without a component is no ACTIVE.
    assert ckpt(one, "open", "t3", "create", "csi=nosuch", check=False) == [
        "err open 10003 no such object in the cluster model"]
    assert ckpt(one, "open", "t3", "create", "csi=seq", "write", "s", "x", check=False) == [
        "ok open 1024 61440 0 seq", "err write 1 Operation not permitted"]


def test_halod_refuses_what_libhalo_would_not_send(one):
    """The checks are halod's too: a raw client gets a clear error, and the link stays up."""
    link = rawlink.RawLink(one.socket)
    assert link.hello() == 0
    ckpt_open = rawlink.field_bytes(90, rawlink.field_varint(1, 1) + rawlink.field_bytes(2, "raw")
                                    + rawlink.field_varint(3, 1)
                                    + rawlink.field_bytes(5, rawlink.field_varint(2, 60000) + rawlink.field_varint(4, 4)))
    link.send(ckpt_open)
    assert link.reply() == (1, 0)

    def write(seq, section, data):
        link.send(rawlink.field_bytes(91, rawlink.field_varint(1, seq) + rawlink.field_bytes(2, "raw")
                                      + rawlink.field_bytes(3, section) + rawlink.field_bytes(4, data)))
        return link.reply()

    assert write(2, "ok", b"1234") == (2, 0)
    assert write(3, "big", b"12345") == (3, -7)  # E2BIG: over the checkpoint's max section size
    assert write(4, "bad name", b"1") == (4, -22)  # EINVAL: a space in the id
    assert write(5, "", b"1") == (5, -22)
    link.send(rawlink.field_bytes(91, rawlink.field_varint(1, 6) + rawlink.field_bytes(2, "not-open")
                                  + rawlink.field_bytes(3, "s") + rawlink.field_bytes(4, b"1")))
    assert link.reply() == (6, -9)  # EBADF: not open on this connection
    # A section over the link's own limit is a malformed message: that client is cut off.
    write_seq = 7
    link.send(rawlink.field_bytes(91, rawlink.field_varint(1, write_seq) + rawlink.field_bytes(2, "raw")
                                  + rawlink.field_bytes(3, "s") + rawlink.field_bytes(4, b"x" * (61 * 1024))))
    assert link.closed_by_peer()
    # halod serves the others.
    assert ckpt(one, "open", "raw", "read", "ok") == ["ok open 1024 4 60000 -", "data ok 1234"]


def test_concurrent_writers_each_get_their_own_answers(one):
    """Writes that arrive while one is in flight go together in one transaction; each writer
    still gets its own answer, and a refused write does not fail its batch's others."""
    ckpt(one, "open", "many", "create", "retention=60000", "sections=4096")
    env = {**os.environ, "HALO_SOCKET": one.socket}
    words = [["open", "many", "writes", f"w{i}-", "60", "writes", f"w{i}-", "60"] for i in range(6)]
    words.append(["open", "many"] + [w for k in range(60) for w in ("overwrite", f"missing{k}", "x")])
    procs = [subprocess.Popen([CKPTCLIENT, *w], env=env, stdout=subprocess.PIPE, text=True) for w in words]
    outs = [p.communicate(timeout=60)[0].splitlines() for p in procs]
    for out in outs[:6]:
        assert out[1:] == [f"ok {k}" for k in range(60)] * 2, out
    assert outs[6][1:] == ["err overwrite 2 No such file or directory"] * 60
    lines = ckpt(one, "open", "many", "list")
    assert lines[-1] == "ok list 360"
    assert ckpt(one, "open", "many", "read", "w3-42", "unlink", "many")[1] == "data w3-42 42"
    assert re.search(r"[2-9]\d* section writes in one transaction: written", one.logtext()), \
        "no batch of several writes"


def test_an_opener_is_told_of_updates(one):
    watcher = subprocess.Popen([CKPTCLIENT, "open", "t4", "create", "watch", "updates", "3"],
                               env={**os.environ, "HALO_SOCKET": one.socket}, stdout=subprocess.PIPE, text=True)
    try:
        wait_for(lambda: "t4" in one.ctl("ckpt", "--json").stdout, what="the watcher's open")
        ckpt(one, "open", "t4", "write", "s1", "v1", "write", "s1", "v2", "delete", "s1")
        out, _ = watcher.communicate(timeout=15)
    finally:
        watcher.kill()
    lines = out.splitlines()
    assert lines[0].startswith("ok open")
    updates = [ln.split() for ln in lines[1:]]
    assert [u[:3] for u in updates] == [["update", "s1", "v1"], ["update", "s1", "v2"], ["update", "s1", "-deleted"]]
    revs = [int(u[3]) for u in updates]
    assert revs == sorted(revs) and len(set(revs)) == 3


def test_local_reads_see_this_nodes_writes_at_once(one):
    """An opener with local reads reads from halod's replica: every write, delete and unlink
    acknowledged to this node is in what it reads next (the read waits for the replica)."""
    out = ckpt(one, "open", "t6", "create", "local", "retention=60000", "echo", "e", "300", "write", "a", "1",
               "read", "a", "list", "delete", "a", "read", "a", "close", check=False)
    assert out == ["ok open 1024 61440 60000 -", "ok echo 300", "ok write a", "data a 1", "section a 1",
                   "section e 3", "ok list 2", "err read 2 No such file or directory"], out
    out = ckpt(one, "open", "t6", "local", "read", "e", "write", "b", "x", "unlink", "t6", "read", "b", "list",
               check=False)
    assert out == ["ok open 1024 61440 60000 -", "data e 299", "ok write b", "err read 2 No such file or directory",
                   "ok list 0"], out


def test_an_opener_that_never_reads_its_updates_is_cut_off(one):
    """Updates to an opener that does not read pile up to the link's limit: that opener is cut
    off, halod and the other openers go on."""
    link = rawlink.RawLink(one.socket)
    assert link.hello() == 0
    link.send(rawlink.field_bytes(90, rawlink.field_varint(1, 1) + rawlink.field_bytes(2, "slow")
                                  + rawlink.field_varint(3, 1) + rawlink.field_varint(4, 1)
                                  + rawlink.field_bytes(5, rawlink.field_varint(2, 60000))))
    assert link.reply() == (1, 0)
    n = 120  # 7 MB of updates, over the 4 MiB a connection may have waiting
    watcher = subprocess.Popen([CKPTCLIENT, "open", "slow", "watch", "updates", str(n)],
                               env={**os.environ, "HALO_SOCKET": one.socket}, stdout=subprocess.PIPE, text=True)
    try:
        assert watcher.stdout.readline().startswith("ok open")
        words = [w for i in range(n) for w in ("fill", f"s{i % 4}", "60000")]
        assert ckpt(one, "open", "slow", *words)[1:] == ["ok fill 60000"] * n
        assert link.closed_by_peer()
        updates = watcher.communicate(timeout=30)[0].splitlines()
    finally:
        watcher.kill()
    assert len(updates) == n and all(u.startswith("update s") for u in updates)
    assert one.proc.poll() is None
    assert ckpt(one, "open", "slow", "list", "unlink", "slow")[-1] == "ok list 4"


def test_retention_deletes_a_checkpoint_nobody_has_open(one):
    ckpt(one, "open", "short", "create", "retention=300", "write", "s", "x", "close")
    ckpt(one, "open", "long", "create", "retention=600000", "write", "s", "x", "close")
    wait_for(lambda: one.ctl("ckpt", "short", check=False).returncode == 4, timeout=10,
             what="'short' deleted after its retention")
    r = one.ctl("ckpt", "long")
    assert "Checkpoint long: 1 sections" in r.stdout
    # Opened again within its retention time, a checkpoint stays while it is open; its retention
    # runs again from its last close.
    ckpt(one, "open", "again", "create", "retention=800", "close")
    holder = subprocess.Popen([CKPTCLIENT, "open", "again", "watch", "updates", "1"],
                              env={**os.environ, "HALO_SOCKET": one.socket}, stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline().startswith("ok open")
        time.sleep(1.2)
        assert one.ctl("ckpt", "again").returncode == 0
        ckpt(one, "open", "again", "write", "s", "y")
        assert holder.wait(10) == 0
    finally:
        holder.kill()
    wait_for(lambda: one.ctl("ckpt", "again", check=False).returncode == 4, timeout=10,
             what="'again' deleted after its last close and its retention")


def test_seqserver_on_one_node(one):
    act, sb = one.wait_assigned("seq")
    c = SeqClient(one.port)
    c.start()
    try:
        c.wait_count(20)
        # The STANDBY keeps a warm copy, and may not write: the checkpoint is collocated with the CSI.
        sb_port = one.port + 1 + ["seq-a", "seq-b"].index(sb)
        assert ask(sb_port, "TRYWRITE") == "ERR Operation not permitted"
        wait_for(lambda: int(ask(sb_port, "PEEK").split()[1]) >= 20, what="the STANDBY's warm copy")
        os.kill(one.pid_of(act), signal.SIGKILL)
        c.wait_count(60)
    finally:
        c.stop.set()
        c.join(5)
    assert c.numbers == list(range(1, len(c.numbers) + 1)), c.numbers
    out = one.ctl("ckpt", "seq-seq").stdout
    assert "collocated with CSI seq" in out and "state" in out


def test_a_killed_halod_s_open_checkpoints_get_their_retention_after_its_restart(one):
    """halod SIGKILLed while a process holds a checkpoint open: nothing closed it, so the next
    halod closes it for that process at its start, and its retention runs."""
    holder = subprocess.Popen([CKPTCLIENT, "open", "orphan", "create", "retention=300", "watch", "updates", "1"],
                              env={**os.environ, "HALO_SOCKET": one.socket}, stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline().startswith("ok open")
        one.kill_all()
    finally:
        holder.kill()
        holder.wait()
    one.start()
    wait_for(lambda: one.ctl("ckpt", "orphan", check=False).returncode == 4, timeout=10,
             what="'orphan' deleted after its retention")
    one.wait_assigned("seq")


def test_components_keep_their_checkpoints_across_a_halod_restart(one):
    """halod alone SIGKILLed and started again: the seqserver instances reconnect, libhalo opens
    their checkpoint again, and the ACTIVE goes on writing while the STANDBY's updates go on."""
    act, sb = one.wait_assigned("seq")
    sb_port = one.port + 1 + ["seq-a", "seq-b"].index(sb)
    start = int(ask(one.port, "NEXT restart 1").split()[1])
    one.remember_children()
    one.proc.kill()
    one.proc.wait()
    one.start()
    wait_for(lambda: "OPEN" in one.ctl("ckpt").stdout and "2 here" in one.ctl("ckpt", "seq-seq").stdout,
             timeout=15, what="both instances' checkpoint open again")
    assert ask(one.port, "NEXT restart 2") == f"NUM {start + 1}"
    wait_for(lambda: ask(sb_port, "PEEK") == f"NEXT {start + 2}", what="the STANDBY told of the write")


# ---- two nodes over etcd, separate state directories -------------------------------------------

@pytest.fixture(scope="module")
def cluster():
    etcd = Etcd(members=3).start()
    port = free_port()
    yaml = seq_yaml(port, ["n1", "n2"])
    nodes = {}
    try:
        for n in ("n1", "n2"):
            nodes[n] = Halod(yaml, name=n, extra_args=["--node", n, "--etcd", etcd.endpoints, "--lease-ttl", "1"])
            nodes[n].start()
        yield etcd, nodes, port
    finally:
        for h in nodes.values():
            h.kill_all()
        etcd.stop()


def settled(h):
    s = h.si("seq")
    if s["active"] and s["standby"] and not any(a["pending"] for a in s["assignments"]):
        return s["active"], s["standby"]
    return None


def test_seqserver_survives_the_sigkill_of_its_actives_node(cluster):
    etcd, nodes, port = cluster
    act, sb = wait_for(lambda: settled(nodes["n1"]), timeout=30, what="seq assigned")
    c = SeqClient(port)
    c.start()
    try:
        c.wait_count(30)
        dead = nodes[NODE_OF[act]]
        dead.kill_all()  # its halod and its components, at once: the whole node
        c.wait_count(len(c.numbers) + 40, timeout=30)
    finally:
        c.stop.set()
        c.join(5)
    # No gap, no duplicate: the new ACTIVE went on from the checkpoint, and a request whose answer
    # was lost with the old one was answered again with the same number.
    assert c.numbers == list(range(1, len(c.numbers) + 1)), c.numbers
    survivor = nodes[NODE_OF[sb]]
    assert survivor.si("seq")["active"] == sb
    # The killed node comes back (its own state directory) and opens the checkpoint as STANDBY.
    dead.start()
    wait_for(lambda: settled(survivor) == (sb, act), timeout=30, what="the killed node back as STANDBY")
    wait_for(lambda: ask(port + 1 + ["seq-a", "seq-b"].index(act), "PEEK") == f"NEXT {len(c.numbers) + 1}",
             what="the new STANDBY's warm copy")


def test_acknowledged_writes_survive_a_replica_node_killed_mid_write(cluster):
    etcd, nodes, port = cluster
    for n in nodes.values():
        wait_for(lambda: os.path.exists(n.socket), what="both halods up")
    # n1 holds the checkpoint open as a replica (its halod follows it for its opener's updates);
    # n2's client writes; n1's whole node is killed in the middle.
    watcher = subprocess.Popen([CKPTCLIENT, "open", "mid", "create", "retention=600000", "watch", "updates", "100000"],
                               env={**os.environ, "HALO_SOCKET": nodes["n1"].socket}, stdout=subprocess.DEVNULL)
    writer = None
    try:
        wait_for(lambda: "mid" in nodes["n2"].ctl("ckpt", "--json").stdout, what="n1's open")
        writer = subprocess.Popen([CKPTCLIENT, "open", "mid", "writes", "k", "300"],
                                  env={**os.environ, "HALO_SOCKET": nodes["n2"].socket}, stdout=subprocess.PIPE,
                                  text=True)
        first = writer.stdout.readline()
        assert first.startswith("ok open"), first
        acked = []
        while len(acked) < 50:
            acked.append(int(writer.stdout.readline().split()[1]))
        nodes["n1"].kill_all()
        watcher.kill()
        # An etcd member dies too (the store's replica): the quorum stays.  Member 0 is the one
        # halods talk to first: a write in flight there when it dies may or may not be applied,
        # and halod, not the writer, sends it again elsewhere.
        leader = etcd.leader()
        etcd.kill_member(0 if leader != 0 else 1)
        rest = writer.stdout.read().splitlines()
        acked += [int(ln.split()[1]) for ln in rest if ln.startswith("ok ")]
        assert writer.wait(30) == 0, rest[-3:]
        assert [ln for ln in rest if not ln.startswith("ok ")] == []
    finally:
        watcher.kill()
        if writer:
            writer.kill()
    assert acked == list(range(300))
    # Every acknowledged write is there, read from the surviving node and from the restarted one.
    nodes["n1"].start()
    for via in ("n2", "n1"):
        lines = wait_for(lambda: (lambda out: out if out[-1] == "ok list 300" else None)(
            ckpt(nodes[via], "open", "mid", "list", check=False)), timeout=20, what=f"the sections from {via}")
        assert sorted(int(ln.split()[1][1:]) for ln in lines if ln.startswith("section ")) == list(range(300))

