# SPDX-License-Identifier: MIT
"""A real etcd for integration tests: M members on free loopback ports, each
with its data under a fresh temporary directory (on tmpfs: data_root()), tuned like the benchmarks
(heartbeat 50 ms, election 500 ms: the minimum lease TTL is then 1 s).
Stopped by pid; the directory is removed."""
import os
import shutil
import subprocess
import tempfile
import time
import urllib.request

from halo_harness import free_port

ETCD = os.environ.get("HALO_ETCD_BINARY", "/usr/bin/etcd")


def data_root():
    """Where the members' data goes: /dev/shm (tmpfs) when it can be written, else the default
    temporary directory.  The tests are not about etcd's disk, and on CI's machine its fsyncs
    share /tmp's disk with the builds beside the tests: etcd answering a node's lease renewal
    seconds late fenced nodes in tests about other things (2026-12-08, under the sanitizers)."""
    return "/dev/shm" if os.path.isdir("/dev/shm") and os.access("/dev/shm", os.W_OK) else None


def get_prefix(client_port, prefix):
    """{key: value} of every key under prefix of the etcd at client_port, read through the JSON gateway
    (a value that is not UTF-8, such as a packed protobuf, with its odd bytes replaced)."""
    import base64
    import json
    end = prefix[:-1] + chr(ord(prefix[-1]) + 1)
    body = json.dumps({"key": base64.b64encode(prefix.encode()).decode(),
                       "range_end": base64.b64encode(end.encode()).decode()}).encode()
    req = urllib.request.Request(f"http://127.0.0.1:{client_port}/v3/kv/range", data=body, method="POST")
    with urllib.request.urlopen(req, timeout=2) as r:
        doc = json.loads(r.read())
    return {base64.b64decode(kv["key"]).decode(): base64.b64decode(kv.get("value", "")).decode(errors="replace")
            for kv in doc.get("kvs", [])}


class Etcd:
    def __init__(self, members=1, heartbeat=50, election=500):
        self.dir = tempfile.mkdtemp(prefix="halo-etcd-", dir=data_root() if self.on_tmpfs else None)
        self.members = []
        for i in range(members):
            self.members.append({"name": f"m{i}", "client": free_port(), "peer": free_port(), "proc": None})
        self.heartbeat = heartbeat
        self.election = election

    scheme = "http"  # TlsEtcd (test_etcd_tls.py): https
    on_tmpfs = True  # the members' data under data_root(); the chaos run keeps them on the disk

    @property
    def endpoints(self):
        return ",".join(f"{self.scheme}://127.0.0.1:{m['client']}" for m in self.members)

    def tls_args(self):
        """The members' TLS options for their clients (none here)."""
        return []

    def urlopen(self, url, timeout):
        return urllib.request.urlopen(url, timeout=timeout)

    def start_member(self, m):
        cluster = ",".join(f"{x['name']}=http://127.0.0.1:{x['peer']}" for x in self.members)
        log = open(os.path.join(self.dir, m["name"] + ".log"), "ab")
        m["proc"] = subprocess.Popen(
            [ETCD, "--name", m["name"], "--data-dir", os.path.join(self.dir, m["name"]),
             "--listen-client-urls", f"{self.scheme}://127.0.0.1:{m['client']}",
             "--advertise-client-urls", f"{self.scheme}://127.0.0.1:{m['client']}", *self.tls_args(),
             "--listen-peer-urls", f"http://127.0.0.1:{m['peer']}",
             "--initial-advertise-peer-urls", f"http://127.0.0.1:{m['peer']}",
             "--initial-cluster", cluster, "--initial-cluster-state", "new",
             "--heartbeat-interval", str(self.heartbeat), "--election-timeout", str(self.election),
             "--auto-compaction-mode", "periodic", "--auto-compaction-retention", "5m",
             "--log-level", "error"],
            stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)
        log.close()

    def start(self, timeout=20):
        for m in self.members:
            self.start_member(m)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            # A member that exited is dead even if something else answers on its port (another
            # test's etcd that took it since: CI once saw this with a member that could not start).
            for m in self.members:
                if m["proc"].poll() is not None:
                    raise AssertionError(f"etcd member {m['name']} exited; see {self.dir}")
            if all(self.healthy(m) for m in self.members):
                return self
            time.sleep(0.05)
        raise AssertionError(f"etcd did not become healthy in {timeout}s; see {self.dir}")

    def healthy(self, m):
        try:
            with self.urlopen(f"{self.scheme}://127.0.0.1:{m['client']}/health", timeout=1) as r:
                return b'"true"' in r.read()
        except OSError:
            return False

    def kill_member(self, i):
        """SIGKILLs member i (by its pid) and reaps it; the others keep the quorum."""
        p = self.members[i]["proc"]
        p.kill()
        p.wait(10)

    def pause_member(self, i):
        """SIGSTOPs member i: its port still accepts connections, nothing is answered."""
        self.members[i]["proc"].send_signal(19)  # SIGSTOP

    def resume_member(self, i):
        self.members[i]["proc"].send_signal(18)  # SIGCONT

    def leader(self):
        """The index of the member that leads, as the running members' status says."""
        import json
        for m in self.members:
            if not m["proc"] or m["proc"].poll() is not None:
                continue
            req = urllib.request.Request(f"http://127.0.0.1:{m['client']}/v3/maintenance/status", data=b"{}",
                                         method="POST")
            with urllib.request.urlopen(req, timeout=2) as r:
                doc = json.loads(r.read())
            if doc.get("leader") and doc["leader"] == doc["header"]["member_id"]:
                return self.members.index(m)
        return None

    def endpoints_from(self, i):
        """The client URLs with member i's first."""
        order = self.members[i:] + self.members[:i]
        return ",".join(f"http://127.0.0.1:{m['client']}" for m in order)

    def live_client(self):
        return next(m["client"] for m in self.members if m["proc"] and m["proc"].poll() is None)

    def get_prefix(self, prefix):
        """{key: value} of every key under prefix, read through the JSON gateway of a running member."""
        return get_prefix(self.live_client(), prefix)

    def put(self, key, value):
        """Writes key = value (no lease) through the JSON gateway."""
        import base64
        import json
        body = json.dumps({"key": base64.b64encode(key.encode()).decode(),
                           "value": base64.b64encode(value.encode()).decode()}).encode()
        req = urllib.request.Request(f"http://127.0.0.1:{self.live_client()}/v3/kv/put", data=body, method="POST")
        with urllib.request.urlopen(req, timeout=2) as r:
            r.read()

    def stop(self):
        for m in self.members:
            p = m["proc"]
            if p and p.poll() is None:
                p.terminate()
                try:
                    p.wait(10)
                except subprocess.TimeoutExpired:
                    p.kill()
                    p.wait()
        shutil.rmtree(self.dir, ignore_errors=True)


class LateWatchProxy:
    """A TCP proxy of the test's own between one halod and an etcd member that delays what etcd
    sends for watch requests (POST /v3/watch, on a new connection or one kept alive) by `delay`
    seconds, in order, and passes every other answer through at once: that halod learns of every
    change `delay` after the answers to its own writes (a late report).  every=True (also set
    later): every answer is that late, on every connection (an etcd that is slow to answer, as on
    a machine short of CPU)."""

    def __init__(self, target_port, delay, every=False):
        self.every = every
        import socket
        import threading
        self.target, self.delay = target_port, delay
        self.lsock = socket.socket()
        self.lsock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.lsock.bind(("127.0.0.1", 0))
        self.lsock.listen(64)
        self.port = self.lsock.getsockname()[1]
        self.socks = []
        self.lock = threading.Lock()
        self.closed = False
        self.watches = 0  # watch requests seen, for the test to check the proxy was in the way
        threading.Thread(target=self._accept, daemon=True).start()

    @property
    def endpoint(self):
        return f"http://127.0.0.1:{self.port}"

    def _accept(self):
        import socket
        import threading
        while not self.closed:
            try:
                c, _ = self.lsock.accept()
            except OSError:
                return
            try:
                u = socket.create_connection(("127.0.0.1", self.target))
            except OSError:
                c.close()
                continue
            with self.lock:
                self.socks += [c, u]
            conn = {"late": False}
            for f in (self._to_etcd, self._from_etcd):
                threading.Thread(target=f, args=(c, u, conn), daemon=True).start()

    def _to_etcd(self, c, u, conn):
        """The requests, at once; from a watch request on, the connection's answers are late (curl
        sends a request once the answer before it is whole, and a watch's answer never ends)."""
        try:
            while True:
                d = c.recv(65536)
                if not d:
                    break
                if d.startswith(b"POST /v3/watch "):
                    with self.lock:
                        self.watches += 1
                    conn["late"] = True
                u.sendall(d)
        except OSError:
            pass
        self._shut(c, u)

    def _from_etcd(self, c, u, conn):
        import queue
        import threading
        import time
        q = queue.Queue()

        def send():
            while True:
                at, d = q.get()
                if d is None:
                    break
                time.sleep(max(0.0, at - time.monotonic()))
                try:
                    c.sendall(d)
                except OSError:
                    break
            self._shut(c, u)

        threading.Thread(target=send, daemon=True).start()
        try:
            while True:
                d = u.recv(65536)
                if not d:
                    break
                q.put((time.monotonic() + (self.delay if conn["late"] or self.every else 0.0), d))
        except OSError:
            pass
        q.put((0.0, None))

    @staticmethod
    def _shut(*socks):
        import socket
        for s in socks:
            try:
                s.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass

    def close(self):
        self.closed = True
        with self.lock:
            self._shut(*self.socks)
            for s in self.socks:
                s.close()
            self.socks = []
        self.lsock.close()
