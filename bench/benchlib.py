# SPDX-License-Identifier: MIT
"""Shared plumbing of the benchmarks: runs one halod with bench-components.

A Run owns a fresh temporary directory (mkdtemp) holding the cluster
description, the state directory, the socket and the logs.  It starts halod,
queries it with the real haloctl, remembers every process halod started (by
pid and start time, so a recycled pid is never mistaken for ours), and on
close() stops halod with SIGTERM, SIGKILLs anything of ours that is left,
checks that no component process survived, and removes the directory.

Timestamps are CLOCK_MONOTONIC nanoseconds, the clock bench-component writes.
Only the Python 3 standard library is used.
"""
import json
import math
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time

TOP = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
BUILD = os.path.abspath(os.environ.get("HALO_BUILD") or os.path.join(TOP, "build"))
HALOD = os.path.join(BUILD, "src", "halod", "halod")
HTTP_TOKEN = "halo-bench-http-token-0123456789"
HTTP_AUTH = {"Authorization": "Bearer " + HTTP_TOKEN}
HALOCTL = os.path.join(BUILD, "src", "haloctl", "haloctl")
COMPONENT = os.path.join(BUILD, "bench", "bench-component")

TIMEOUT = 30.0  # every wait of a benchmark gives up after this many seconds


class BenchError(Exception):
    """A benchmark could not complete; the message says why."""


def mono_ns():
    return time.clock_gettime_ns(time.CLOCK_MONOTONIC)


def check_binaries():
    for path in (HALOD, HALOCTL, COMPONENT):
        if not os.access(path, os.X_OK):
            raise BenchError(f"'{path}' is missing or not executable; build first (ninja -C {BUILD}) "
                             f"or point HALO_BUILD at the build directory")


def int_arg(argv, default, what):
    """The benchmark's one optional positional argument, a positive integer."""
    if len(argv) > 2 or (len(argv) == 2 and argv[1] in ("-h", "--help")):
        raise BenchError(f"usage: {os.path.basename(argv[0])} [{what}]   (default {default})")
    if len(argv) < 2:
        return default
    try:
        n = int(argv[1])
    except ValueError:
        n = 0
    if n <= 0:
        raise BenchError(f"{what} must be a positive integer, not '{argv[1]}'")
    return n


def percentile(values, q):
    """Linear interpolation between closest ranks (q in [0, 1]); p50 is the median."""
    v = sorted(values)
    pos = q * (len(v) - 1)
    lo, hi = math.floor(pos), math.ceil(pos)
    return v[lo] + (v[hi] - v[lo]) * (pos - lo)


def summary_ms(values_ms):
    return {"min_ms": round(min(values_ms), 3), "p50_ms": round(percentile(values_ms, 0.50), 3),
            "p99_ms": round(percentile(values_ms, 0.99), 3), "max_ms": round(max(values_ms), 3)}


def machine():
    """One line about the machine, for the record."""
    model = "?"
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    model = line.split(":", 1)[1].strip()
                    break
    except OSError:
        pass
    return f"{os.cpu_count()} CPUs ({model}), Linux {os.uname().release}"


# -- /proc ------------------------------------------------------------------
def proc_stat(pid):
    """(state, ppid, starttime) of pid, or None if it does not exist."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            st = f.read()
    except OSError:
        return None
    rest = st[st.rindex(")") + 2:].split()
    return rest[0], int(rest[1]), int(rest[19])


def proc_status_kb(pid, *fields):
    """Values in kB of /proc/PID/status fields such as VmRSS; {} if pid is gone."""
    out = {}
    try:
        with open(f"/proc/{pid}/status") as f:
            for line in f:
                key, _, val = line.partition(":")
                if key in fields:
                    out[key] = int(val.split()[0])
    except OSError:
        pass
    return out


def descendants(pid):
    """Pids of every live process whose ancestry leads to pid."""
    parent = {}
    for d in os.listdir("/proc"):
        if d.isdigit():
            s = proc_stat(int(d))
            if s:
                parent[int(d)] = s[1]
    out, changed = set(), True
    while changed:
        changed = False
        for p, pp in parent.items():
            if p not in out and (pp == pid or pp in out):
                out.add(p)
                changed = True
    return out


# -- cluster descriptions ---------------------------------------------------
def yaml_str(s):
    return json.dumps(str(s))  # a JSON string is a valid YAML double-quoted scalar


def description(sgs, log_path, restart=None, cluster="bench", placement=None):
    """The YAML of a cluster of 2N groups of bench-components, on one node
    ("local") unless placement maps SU names to node names.

    sgs is a list of (sg_name, [su_name, ...], si_name, csi_name)."""
    placement = placement or {}
    nodes = sorted(set(placement.values())) or ["local"]
    r = {"max": 1000, "window": "60s", "delay": "10ms", "delay-max": "50ms"}
    r.update(restart or {})
    out = [f"# Generated by bench/{os.path.basename(sys.argv[0])}.",
           f"cluster: {cluster}",
           "nodes:"] + [f"  {n}: {{}}" for n in nodes] + [
           "defaults:",
           "  component:",
           "    restart: {" + ", ".join(f"{k}: {v}" for k, v in r.items()) + "}",
           "service-groups:"]
    for sg, sus, si, csi in sgs:
        out += [f"  {sg}:",
                "    redundancy: 2N",
                "    component:",
                f"      command: {yaml_str(COMPONENT)}",
                f"      env: {{HALO_BENCH_LOG: {yaml_str(log_path)}}}",
                "    service-units:"]
        out += [f"      {su}: {{node: {placement.get(su, 'local')}}}" for su in sus]
        out += ["    service-instances:",
                f"      {si}:",
                "        csis:",
                f"          {csi}: {{attributes: {{sg: {sg}}}}}"]
    return "\n".join(out) + "\n"


# -- one halod --------------------------------------------------------------
class Run:
    def __init__(self, name):
        self.dir = tempfile.mkdtemp(prefix=f"halo-bench-{name}-")
        self.proc = None
        self.log = None
        self.known = {}  # pid -> starttime of every process halod started that we saw
        self.n = 0

    def path(self, name):
        return os.path.join(self.dir, name)

    # lifecycle
    def start(self, yaml_text, log_level=os.environ.get("HALO_BENCH_LOG_LEVEL", "warning"), extra_args=()):
        """Starts a halod with a fresh state directory; returns the Popen start time (ns)."""
        self.n += 1
        self.state = self.path(f"state{self.n}")
        self.socket = self.path(f"halod{self.n}.sock")
        self.config = self.path(f"cluster{self.n}.yaml")
        self.halod_log = self.path(f"halod{self.n}.log")
        with open(self.config, "w") as f:
            f.write(yaml_text)
        r = subprocess.run([HALOD, "--check", self.config], capture_output=True, text=True, timeout=TIMEOUT)
        if r.returncode != 0:
            raise BenchError(f"halod rejects the generated description {self.config}:\n{r.stderr.strip()}")
        self.log = open(self.halod_log, "ab")
        # Writes over HTTP (POST /v1/events) need a token: this one, HTTP_AUTH's.
        token_file = self.path("http.token")
        with open(token_file, "w") as f:
            f.write(HTTP_TOKEN + "\n")
        argv = [HALOD, "--state-dir", self.state, "--socket", self.socket, "--log-level", log_level,
                "--http-token-file", token_file, *extra_args, self.config]
        t0 = mono_ns()
        # A session of its own: a ^C on the terminal reaches only us, and we stop halod.
        self.proc = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=self.log,
                                     stderr=subprocess.STDOUT, start_new_session=True)
        return t0

    def alive(self):
        return self.proc is not None and self.proc.poll() is None

    def log_tail(self, n=25):
        try:
            with open(self.halod_log, errors="replace") as f:
                lines = f.read().splitlines()
        except (OSError, AttributeError):
            return ""
        return "\n".join("    " + line for line in lines[-n:])

    def check_alive(self):
        if not self.alive():
            rc = self.proc.returncode if self.proc else None
            raise BenchError(f"halod exited early (status {rc}); the end of its log:\n{self.log_tail()}")

    def wait_for(self, pred, what, timeout=None, interval=0.002):
        """Polls pred() until it returns a true value, which it returns.

        Fails at once if halod exits, and after timeout (default TIMEOUT) seconds."""
        timeout = TIMEOUT if timeout is None else timeout
        deadline = time.monotonic() + timeout
        last = None
        while True:
            self.check_alive()
            try:
                last = pred()
            except (BenchError, OSError, ValueError, KeyError, subprocess.SubprocessError) as e:
                last = e
            if last and not isinstance(last, Exception):
                return last
            if time.monotonic() > deadline:
                raise BenchError(f"timed out after {timeout:.0f} s waiting for {what} (last: {last!r});"
                                 f" the end of halod's log:\n{self.log_tail()}")
            time.sleep(interval)

    def remember(self, pids):
        for p in pids:
            s = proc_stat(p)
            if s and p not in self.known:
                self.known[p] = s[2]

    def remember_children(self):
        if self.alive():
            self.remember(descendants(self.proc.pid))

    def ours_alive(self):
        """Processes we saw halod start that still exist (zombies included)."""
        left = []
        for p, start in self.known.items():
            s = proc_stat(p)
            if s and s[2] == start:
                left.append((p, s[0]))
        return left

    def stop(self, timeout=None):
        """SIGTERM halod and wait; returns its exit status.  Raises if it
        does not stop in time or a component process outlives it."""
        timeout = TIMEOUT if timeout is None else timeout
        if self.proc is None:
            return None
        self.remember_children()
        try:
            if self.alive():
                self.proc.send_signal(signal.SIGTERM)
            try:
                rc = self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                raise BenchError(f"halod did not stop within {timeout:.0f} s of SIGTERM;"
                                 f" the end of its log:\n{self.log_tail()}")
            left = self.ours_alive()
            if left:
                raise BenchError("processes left behind by halod: " +
                                 ", ".join(f"{p} (state {st})" for p, st in left))
            return rc
        finally:
            self.kill_leftovers()

    def kill_leftovers(self):
        if self.proc is not None and self.proc.poll() is None:
            self.remember_children()
            self.proc.kill()
            self.proc.wait()
        for p, _ in self.ours_alive():
            try:
                os.kill(p, signal.SIGKILL)
            except OSError:
                pass
        if self.log:
            self.log.close()
            self.log = None
        self.proc = None

    def close(self):
        """Always safe to call: stops whatever runs (SIGTERM to halod, then
        SIGKILL to anything of ours left) and removes the directory."""
        try:
            if self.alive():
                self.remember_children()
                self.proc.send_signal(signal.SIGTERM)
                try:
                    self.proc.wait(10)
                except subprocess.TimeoutExpired:
                    pass
            if self.proc is not None:
                self.kill_leftovers()
        finally:
            if os.environ.get("HALO_BENCH_KEEP"):
                print(f"kept {self.dir}", file=sys.stderr)
            else:
                shutil.rmtree(self.dir, ignore_errors=True)

    # haloctl
    def ctl(self, *args):
        r = subprocess.run([HALOCTL, "--socket", self.socket, *args], capture_output=True, text=True, timeout=20)
        if r.returncode != 0:
            raise BenchError(f"haloctl {' '.join(args)} failed ({r.returncode}): {r.stderr.strip()}")
        return r.stdout

    def status(self):
        r = subprocess.run([HALOCTL, "--socket", self.socket, "status", "--json"], capture_output=True,
                           text=True, timeout=10)
        if r.returncode != 0:
            raise BenchError(f"haloctl status failed ({r.returncode}): {r.stderr.strip()}")
        st = json.loads(r.stdout)
        self.remember(c["pid"] for sg in st["service_groups"] for su in sg["service_units"]
                      for c in su["components"] if c.get("pid"))
        return st


# -- views over a status document ---------------------------------------------
def sis(st):
    return {si["name"]: si for sg in st["service_groups"] for si in sg["service_instances"]}


def sus(st):
    return {su["name"]: su for sg in st["service_groups"] for su in sg["service_units"]}


def fully_assigned(si):
    return bool(si["active"] and si["standby"] and len(si["assignments"]) == 2 and
                not any(a["pending"] for a in si["assignments"]))


def main(body):
    """Runs body() and turns a BenchError (or ^C / SIGTERM) into a message and exit status 1."""
    def on_term(signum, frame):
        # Once: a second SIGTERM (timeout(1) passes its own on, a shell's kill another) would
        # interrupt the cleanup the first one started, and leave halods running their components.
        signal.signal(signal.SIGTERM, signal.SIG_IGN)
        raise KeyboardInterrupt
    signal.signal(signal.SIGTERM, on_term)
    sys.stdout.reconfigure(line_buffering=True)  # progress shows as it happens, also through a pipe
    name = os.path.basename(sys.argv[0])
    try:
        body()
    except BenchError as e:
        sys.stdout.flush()
        print(f"{name}: FAILED: {e}", file=sys.stderr)
        sys.exit(1)
    except KeyboardInterrupt:
        print(f"{name}: interrupted", file=sys.stderr)
        sys.exit(130)
