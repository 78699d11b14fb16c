# SPDX-License-Identifier: MIT
"""The configuration database (CDB) of one halod, through haloctl and libhalo."""
import json
import os
import signal
import socket
import struct
import subprocess
import time

from halo_harness import CDBCLIENT, HALOCTL, Lines, cdb_only_yaml, free_port

YAML = cdb_only_yaml("cdb")


def test_set_get_list_delete_through_haloctl(halod_factory):
    h = halod_factory(YAML, name="cdb").start()
    r = h.ctl("cdb", "set", "/net/eth0/mtu", "9000", "/net/eth0/up", "true", "/net-x", "sibling")
    assert r.stdout.startswith("committed "), r.stdout
    txid = r.stdout.split()[1]
    hlc, node = txid.split("@")
    assert node == "local" and int(hlc) > 0

    assert h.ctl("cdb", "get", "/net/eth0/mtu").stdout == "9000\n"
    # A subtree is the path and what is under it, not a sibling that shares its prefix.
    items = json.loads(h.ctl("cdb", "list", "/net", "--json").stdout)
    assert items == [{"path": "/net/eth0/mtu", "value": "9000"}, {"path": "/net/eth0/up", "value": "true"}]

    h.ctl("cdb", "delete", "/net")
    assert json.loads(h.ctl("cdb", "list", "--json").stdout) == [{"path": "/net-x", "value": "sibling"}]

    missing = h.ctl("cdb", "get", "/net/eth0/mtu", check=False)
    assert missing.returncode == 4 and "'/net/eth0/mtu': no value at this path" in missing.stderr
    for bad in ("net", "/a//b", "/a/", "/"):
        r = h.ctl("cdb", "set", bad, "v", check=False)
        assert r.returncode == 2 and "not a valid path" in r.stderr, (bad, r.stderr)
    assert h.stop() == 0


def test_a_watcher_sees_each_commit_under_its_path_in_order(halod_factory):
    h = halod_factory(YAML, name="cdb").start()
    watch = subprocess.Popen([HALOCTL, "--socket", h.socket, "cdb", "watch", "/app", "--json"],
                             stdout=subprocess.PIPE)
    out = Lines(watch.stdout.fileno())
    try:
        # The watch is live once a commit under /app shows up in it: probe until one does,
        # then read up to a marker, past any probe committed meanwhile.
        deadline = time.monotonic() + 10
        while not out.ready(0.1):
            assert time.monotonic() < deadline, "the watch never saw a commit"
            h.ctl("cdb", "set", "/app/probe", "0")
        assert out.next()["changes"] == [{"op": "set", "path": "/app/probe", "value": "0"}]
        h.ctl("cdb", "set", "/app/probe", "marker")
        while out.next()["changes"] != [{"op": "set", "path": "/app/probe", "value": "marker"}]:
            pass

        ids = []
        for i in range(1, 6):
            ids.append(h.ctl("cdb", "set", f"/app/k{i}", str(i), "/other/k", str(i)).stdout.split()[1])
        ids.append(h.ctl("cdb", "delete", "/app").stdout.split()[1])
        got = [out.next() for _ in range(6)]
        assert [g["txid"] for g in got] == ids
        for i, g in enumerate(got[:5], start=1):
            # Only what is under /app, not the same transaction's /other/k.
            assert g["changes"] == [{"op": "set", "path": f"/app/k{i}", "value": str(i)}]
        assert got[5]["changes"] == [{"op": "delete", "path": "/app"}]
    finally:
        watch.send_signal(signal.SIGINT)
        assert watch.wait(10) == 0
    assert h.stop() == 0


def test_every_acknowledged_commit_survives_sigkill_of_halod(halod_factory):
    h = halod_factory(YAML, name="cdb").start()
    env = dict(os.environ, HALO_SOCKET=h.socket)
    client = subprocess.Popen([CDBCLIENT, "commit", "/load", "100000"], stdout=subprocess.PIPE, text=True, env=env)
    acked = []
    for line in client.stdout:
        word = line.split()
        if word[0] != "ok":
            break
        acked.append(int(word[1]))
        if len(acked) == 300:
            h.remember_children()
            h.proc.send_signal(signal.SIGKILL)
            h.proc.wait()
    client.wait(10)
    assert len(acked) >= 300
    h.start()
    items = json.loads(h.ctl("cdb", "list", "/load", "--json").stdout)
    have = {int(i["path"].rsplit("/", 1)[1]) for i in items}
    missing = [i for i in acked if i not in have]
    assert not missing, f"acknowledged but lost: {missing[:10]}"
    # Commits go on from where they were.
    h.ctl("cdb", "set", "/after", "restart")
    assert h.ctl("cdb", "get", "/after").stdout == "restart\n"
    assert h.stop() == 0


def test_a_value_of_any_bytes_and_size_limits(halod_factory, tmp_path):
    h = halod_factory(YAML, name="cdb").start()
    big = "x" * (60 * 1024 - len("/big") - 16)  # the most one change may set: 16 bytes go to its framing
    h.ctl("cdb", "set", "/big", big)
    assert h.ctl("cdb", "get", "/big").stdout == big + "\n"
    r = h.ctl("cdb", "set", "/big", big + "y", check=False)
    assert r.returncode == 1 and "too big" in r.stderr, r.stderr
    assert h.ctl("cdb", "get", "/big").stdout == big + "\n"  # the refused write changed nothing
    # The largest value there can be is listed too (alone in its part), with its neighbours.
    h.ctl("cdb", "set", "/big0", "a", "/big1", "b")
    items = json.loads(h.ctl("cdb", "list", "/", "--json").stdout)
    assert [(i["path"], len(i["value"])) for i in items] == [("/big", len(big)), ("/big0", 1), ("/big1", 1)]
    # 1,024 changes in one transaction, and not one more.
    args = []
    for i in range(1024):
        args += [f"/ops/{i:04d}", "v"]
    h.ctl("cdb", "set", *args)
    assert len(json.loads(h.ctl("cdb", "list", "/ops", "--json").stdout)) == 1024
    r = h.ctl("cdb", "set", *args, "/ops/x", "v", check=False)
    assert r.returncode == 1 and "too big" in r.stderr, r.stderr
    # Many paths come back whole, read in several parts.
    paths = [f"/many/{i:05d}" for i in range(3000)]
    for chunk in range(0, 3000, 500):
        args = []
        for p in paths[chunk:chunk + 500]:
            args += [p, "v" * 30]
        h.ctl("cdb", "set", *args)
    items = json.loads(h.ctl("cdb", "list", "/many", "--json").stdout)
    assert [i["path"] for i in items] == paths
    assert h.stop() == 0


def peak_rss_mb(pid):
    with open(f"/proc/{pid}/status") as f:
        return next(int(line.split()[1]) for line in f if line.startswith("VmHWM:")) / 1024


def closed_within(s, seconds):
    """Whether the other end closes s within seconds (reading and dropping what it sends)."""
    s.settimeout(seconds)
    deadline = time.monotonic() + seconds
    try:
        while time.monotonic() < deadline:
            if not s.recv(65536):
                return True
    except (ConnectionResetError, BrokenPipeError):
        return True
    except socket.timeout:
        pass
    return False


def test_unauthenticated_replication_connections_hold_little_and_not_for_long(halod_factory):
    port = free_port()
    h = halod_factory(YAML, name="cdb", extra_args=["--cdb-listen", f"127.0.0.1:{port}"]).start()
    h.ctl("ha", "--token", "secret", "beprimary", "n1")
    before = peak_rss_mb(h.proc.pid)

    # 70 strangers each announce a 2 MiB frame (a replication message may be that large once
    # authenticated) and send all of it but the end.
    conns = []
    part = b"x" * (2 * 1024 * 1024 - 1024)
    try:
        for _ in range(70):
            s = socket.create_connection(("127.0.0.1", port), timeout=5)
            conns.append(s)
            try:
                s.sendall(struct.pack(">I", 2 * 1024 * 1024) + part)
            except OSError:
                pass  # already closed by halod
        # Each is closed, and halod never held their frames.
        assert all(closed_within(s, 5) for s in conns)
        grown = peak_rss_mb(h.proc.pid) - before
        assert grown < 40, f"halod grew by {grown:.0f} MB"
    finally:
        for s in conns:
            s.close()

    # One that trickles a small frame, a byte at a time, is closed once it has not authenticated
    # within max(dead-after, 2 s).
    s = socket.create_connection(("127.0.0.1", port), timeout=5)
    t0 = time.monotonic()
    s.sendall(struct.pack(">I", 3000))
    closed = False
    while not closed and time.monotonic() - t0 < 8:
        try:
            s.sendall(b"x")
        except OSError:
            closed = True
        closed = closed or closed_within(s, 0.1)
    assert closed and time.monotonic() - t0 < 5, time.monotonic() - t0
    s.close()

    h.ctl("cdb", "set", "/still", "serving")
    assert h.stop() == 0
