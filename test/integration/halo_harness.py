# SPDX-License-Identifier: MIT
"""Integration-test harness: runs real halod processes and their components.

Each Halod writes its cluster description into a fresh temporary directory,
starts halod with its own state directory and socket, and talks to it with
the real haloctl.  stop() checks that no process halod started outlives it
(and that none is left a zombie).
"""
import ctypes
import json
import os
import random
import select
import signal
import socket
import subprocess
import tempfile
import time

BUILD = os.environ.get("HALO_BUILD") or os.path.join(
    os.path.dirname(__file__), "..", "..", "build")
BUILD = os.path.abspath(BUILD)
HALOD = os.path.join(BUILD, "src", "halod", "halod")
HALOCTL = os.path.join(BUILD, "src", "haloctl", "haloctl")
COUNTER = os.path.join(BUILD, "examples", "counter")
TESTCOMP = os.path.join(BUILD, "test", "testcomp")
# The bearer token of POST /v1/events for the tests' halods (Halod writes it to a file of its own).
HTTP_TOKEN = "halo-test-http-token-0123456789"
AUTH = {"Authorization": "Bearer " + HTTP_TOKEN}
CDBCLIENT = os.path.join(BUILD, "test", "cdbclient")


# The head of a description whose units restart fast (tests that fail units on purpose).
FAST_RESTART_HEAD = """cluster: test
defaults:
  component:
    restart: {max: 10, window: 60s, delay: 50ms, delay-max: 500ms}
    timeouts: {terminate: 2s}
service-groups:
"""


def port_range():
    """[lo, hi) of the ports free_port hands out: below the kernel's ephemeral range, where
    connect() and bind(0) pick theirs (an etcd client's connection cannot take a port a test
    chose), from 10000; under pytest-xdist, a slice of it per worker, so that two workers
    never hand out the same port.  None when that leaves too few."""
    try:
        with open("/proc/sys/net/ipv4/ip_local_port_range") as f:
            hi = int(f.read().split()[0])
    except (OSError, ValueError, IndexError):
        return None
    lo = 10000
    worker = os.environ.get("PYTEST_XDIST_WORKER", "")
    workers = int(os.environ.get("PYTEST_XDIST_WORKER_COUNT", "1") or 1)
    if worker.startswith("gw") and workers > 1:
        size = (hi - lo) // workers
        lo += int(worker[2:]) * size
        hi = lo + size
    return (lo, hi) if hi - lo >= 1000 else None


PORT_BLOCK = 4  # tests use port + 1 .. port + 3 too (the STANDBYs' ports of test_cluster.cluster_yaml)
_next_port = None


def port_is_free(p):
    s = socket.socket()
    try:
        s.bind(("127.0.0.1", p))
        return True
    except OSError:
        return False
    finally:
        s.close()


def free_port(n=1):
    """A loopback TCP port that was free a moment ago, with the n - 1 after it (a block of n),
    and the PORT_BLOCK ports from it handed out to no one else: this process hands them out
    in turn from a random start in port_range()."""
    global _next_port
    r = port_range()
    if r is None:  # the kernel's choice, as a last resort
        s = socket.socket()
        s.bind(("127.0.0.1", 0))
        p = s.getsockname()[1]
        s.close()
        return p
    lo, hi = r
    step = max(n, PORT_BLOCK)
    if _next_port is None:
        _next_port = random.SystemRandom().randrange(lo, hi - step)
    for _ in range((hi - lo) // step):
        base = _next_port
        _next_port = base + step if base + 2 * step <= hi else lo
        if base + step <= hi and all(port_is_free(p) for p in range(base, base + n)):
            return base
    raise RuntimeError(f"no {n} free ports in a row in {lo}..{hi - 1}")


def become_subreaper():
    """Orphans of a halod a test SIGKILLs come to us, not to a PID 1 that reaps late."""
    libc = ctypes.CDLL(None, use_errno=True)
    PR_SET_CHILD_SUBREAPER = 36
    libc.prctl(PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0)


def reap(pids):
    """Reaps those of pids that were re-parented to us and have ended."""
    for p in pids:
        try:
            os.waitpid(p, os.WNOHANG)
        except ChildProcessError:
            pass


def local_defaults(hc_period="200ms", hc_timeout="600ms", timeouts="terminate: 2s"):
    """The nodes and defaults of a one-node description: health checks, quick restarts, short timeouts."""
    return f"""nodes:
  local: {{}}
defaults:
  component:
    health-check: {{period: {hc_period}, timeout: {hc_timeout}}}
    restart: {{max: 10, window: 60s, delay: 50ms, delay-max: 500ms}}
    timeouts: {{{timeouts}}}
"""


def wait_for(pred, timeout=10.0, interval=0.02, what="condition"):
    """Polls pred() until it returns a true value; returns it, or raises."""
    deadline = time.monotonic() + timeout
    last = None
    while time.monotonic() < deadline:
        try:
            last = pred()
        except Exception as e:  # the daemon may be between states
            last = e
        if last and not isinstance(last, Exception):
            return last
        time.sleep(interval)
    raise AssertionError(f"timed out after {timeout}s waiting for {what} (last: {last!r})")


def testcomp_events(log, comp=None, kind=None):
    """The lines testcomp logged to log, split in words; only comp's, of kind, when given."""
    try:
        with open(log) as f:
            lines = [l.split() for l in f.read().splitlines()]
    except FileNotFoundError:
        return []
    return [l for l in lines if (comp is None or l[0] == comp) and (kind is None or l[1] == kind)]


def descendants(pid):
    """Pids of every process whose ancestry leads to pid (via /proc)."""
    parent = {}
    for d in os.listdir("/proc"):
        if not d.isdigit():
            continue
        try:
            with open(f"/proc/{d}/stat") as f:
                st = f.read()
            ppid = int(st[st.rindex(")") + 2:].split()[1])
            parent[int(d)] = ppid
        except (OSError, ValueError):
            pass
    out = set()
    changed = True
    while changed:
        changed = False
        for p, pp in parent.items():
            if p not in out and (pp == pid or pp in out):
                out.add(p)
                changed = True
    return out


def proc_state(pid):
    try:
        with open(f"/proc/{pid}/stat") as f:
            st = f.read()
        return st[st.rindex(")") + 2]
    except OSError:
        return None


def pid_alive(pid):
    s = proc_state(pid)
    return s is not None and s != "Z"


def proc_start_time(pid):
    """The process's start time (clock ticks after boot), None if it is gone: with its pid, who it is
    (pids are recycled: pid_max is 32768 here, and a CI run starts thousands of processes)."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            st = f.read()
        return int(st[st.rindex(")") + 2:].split()[19])
    except (OSError, ValueError, IndexError):
        return None


class StatusViews:
    """Views over a halod's status; the class provides status()."""

    def si(self, name):
        for sg in self.status()["service_groups"]:
            for si in sg["service_instances"]:
                if si["name"] == name:
                    return si
        raise KeyError(name)

    def comp(self, name):
        for sg in self.status()["service_groups"]:
            for su in sg["service_units"]:
                for c in su["components"]:
                    if c["name"] == name:
                        return c
        raise KeyError(name)

    def su(self, name):
        for sg in self.status()["service_groups"]:
            for su in sg["service_units"]:
                if su["name"] == name:
                    return su
        raise KeyError(name)

    def wait_assigned(self, si, timeout=15):
        """Waits until si has a confirmed ACTIVE and STANDBY; returns (active, standby)."""
        s = wait_for(lambda: (lambda x: x if x["active"] and x["standby"] and
                              not any(a["pending"] for a in x["assignments"]) else None)(self.si(si)),
                     timeout=timeout, what=f"{si} fully assigned")
        return s["active"], s["standby"]

    def pid_of(self, comp):
        return self.comp(comp)["pid"]


class Halod(StatusViews):
    def __init__(self, yaml_text, name="halo", extra_args=(), log_level="debug", preexec_fn=None, wrapper=()):
        self.dir = tempfile.mkdtemp(prefix=f"halo-test-{name}-")
        self.state = os.path.join(self.dir, "state")
        self.socket = os.path.join(self.dir, "halod.sock")
        self.config = os.path.join(self.dir, "cluster.yaml")
        self.log_path = os.path.join(self.dir, "halod.log")
        with open(self.config, "w") as f:
            f.write(yaml_text)
        # Writes over HTTP need a token (docs/configuration.md): every test halod has this one.
        self.token_file = os.path.join(self.dir, "http.token")
        with open(self.token_file, "w") as f:
            f.write(HTTP_TOKEN + "\n")
        self.extra_args = list(extra_args)
        self.log_level = log_level
        self.preexec_fn = preexec_fn  # runs in halod's process before the exec (limits, say)
        self.wrapper = list(wrapper)  # a command halod runs under (unshare, say): proc is the wrapper's
        self.proc = None
        self.known_pids = set()
        self.pid_starts = {}  # known pid -> its start time: a recycled pid is another test's

    # -- lifecycle --------------------------------------------------------
    def start(self, wait=True):
        # A halod killed before leaves its socket file: wait for the new one's.
        if os.path.exists(self.socket):
            os.unlink(self.socket)
        self.log = open(self.log_path, "ab")
        self.proc = subprocess.Popen(
            [*self.wrapper, HALOD, "--state-dir", self.state, "--socket", self.socket, "--log-level", self.log_level,
             *([] if "--http-token-file" in self.extra_args else ["--http-token-file", self.token_file]),
             *self.extra_args, self.config],
            stdout=self.log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, preexec_fn=self.preexec_fn)
        if wait:
            wait_for(lambda: os.path.exists(self.socket) or self.proc.poll() is not None,
                     what="halod socket")
            assert self.proc.poll() is None, "halod exited at start:\n" + self.logtext()
        return self

    def logtext(self):
        try:
            with open(self.log_path, errors="replace") as f:
                return f.read()
        except OSError:
            return ""

    def remember_children(self):
        if self.proc and self.proc.poll() is None:
            for p in descendants(self.proc.pid):
                if p not in self.known_pids:
                    self.pid_starts[p] = proc_start_time(p)
                    self.known_pids.add(p)

    def ours(self, pid):
        """Whether pid is still the process remembered, not another one that got its pid since."""
        st = self.pid_starts.get(pid)
        return st is None or proc_start_time(pid) == st

    def stop(self, sig=signal.SIGTERM, timeout=20):
        """Stops halod; asserts it exits 0 and leaves no process behind."""
        if not self.proc:
            return None
        self.remember_children()
        if self.proc.poll() is None:
            # While halod runs, reaping its children is its job: no zombie may linger.
            wait_for(lambda: not [p for p in descendants(self.proc.pid) if proc_state(p) == "Z"],
                     timeout=5, what="halod to reap its children")
            self.proc.send_signal(sig)
        try:
            rc = self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            self.kill_all()
            raise AssertionError("halod did not stop within %ss:\n%s" % (timeout, self.logtext()[-4000:]))
        self.log.close()

        def gone():
            reap(self.known_pids)
            return not [p for p in self.known_pids if pid_alive(p) and self.ours(p)]

        # A component's halo-guard ends when halod removes its file, a few ms after halod's own exit.
        try:
            wait_for(gone, timeout=5, what="halod's processes to end")
        except AssertionError:
            pass
        left = [p for p in self.known_pids if pid_alive(p) and self.ours(p)]
        self.kill_pids(left)
        assert not left, f"processes left behind by halod: {left}"
        zombies = [p for p in self.known_pids if proc_state(p) == "Z" and self.ours(p)]
        assert not zombies, f"zombies left behind: {zombies}"
        return rc

    def kill_pids(self, pids):
        for p in pids:
            if not self.ours(p):
                continue  # recycled since: another test's process
            try:
                os.kill(p, signal.SIGKILL)
            except OSError:
                pass

    def kill_all(self):
        """Last-resort cleanup: SIGKILL halod and everything it started."""
        if self.proc and self.proc.poll() is None:
            self.remember_children()
            self.proc.kill()
            self.proc.wait()
        self.kill_pids(self.known_pids)
        time.sleep(0.05)
        reap(self.known_pids)

    # -- haloctl ----------------------------------------------------------
    def ctl(self, *args, check=True, timeout=30):
        r = subprocess.run([HALOCTL, "--socket", self.socket, *args],
                           capture_output=True, text=True, timeout=timeout)
        if check and r.returncode != 0:
            raise AssertionError(f"haloctl {' '.join(args)} failed ({r.returncode}): {r.stderr}")
        return r

    def status(self):
        return json.loads(self.ctl("status", "--json").stdout)

def start_nodes(halod_factory, yaml_text, endpoints, nodes=("n1", "n2"), ttl=1):
    """Starts one halod per node over etcd (lease TTL ttl s), each with its HTTP
    API on a free loopback port.  Returns ({node: Halod}, {node: port})."""
    http = {n: free_port() for n in nodes}
    hs = {n: halod_factory(yaml_text, name=n, extra_args=[
        "--node", n, "--etcd", endpoints, "--lease-ttl", str(ttl), "--http", f"127.0.0.1:{http[n]}"]).start()
        for n in nodes}
    return hs, http


class Lines:
    """Lines of a child's stdout, each read with a timeout (no hidden buffering)."""

    def __init__(self, fd):
        self.fd, self.buf = fd, b""

    def ready(self, timeout):
        return b"\n" in self.buf or bool(select.select([self.fd], [], [], timeout)[0])

    def next(self, timeout=10):
        deadline = time.monotonic() + timeout
        while b"\n" not in self.buf:
            left = deadline - time.monotonic()
            assert left > 0 and select.select([self.fd], [], [], left)[0], "nothing printed in time"
            data = os.read(self.fd, 65536)
            assert data, "the child closed its output"
            self.buf += data
        line, self.buf = self.buf.split(b"\n", 1)
        return json.loads(line)


def commits_until(socket_path, prefix, n, on_nth):
    """cdbclient commits PREFIX/<i> = <i> through the halod at socket_path, one transaction each;
    once n are acknowledged, on_nth() runs (it kills something).  Returns the indexes acknowledged,
    as strings, once the client stopped (its next commit failed)."""
    client = subprocess.Popen([CDBCLIENT, "commit", prefix, "1000000"], stdout=subprocess.PIPE, text=True,
                              env=dict(os.environ, HALO_SOCKET=socket_path))
    acked = []
    for line in client.stdout:
        w = line.split()
        if w[0] != "ok":
            break
        acked.append(w[1])
        if len(acked) == n:
            on_nth()
    client.wait(10)
    return acked


def cdb_only_yaml(cluster, cdb=None):
    """A description of nodes that only serve the configuration database (no service group)."""
    return f"cluster: {cluster}\n" + (f"cdb: {cdb}\n" if cdb else "") + "service-groups: {}\n"
