# SPDX-License-Identifier: MIT
"""haloctl sim: a whole cluster (etcd and several halods) on one machine, started
and stopped by haloctl itself; the daemons outlive the haloctl that started them."""
import json
import os
import signal
import socket
import subprocess
import time
import urllib.error
import urllib.request

import pytest

from halo_harness import HALOCTL, HTTP_TOKEN, descendants, free_port, proc_state, reap, wait_for


def stat_fields(pid):
    """The fields of /proc/PID/stat after the command name (state first), or None."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            st = f.read()
    except OSError:
        return None
    return st[st.rindex(")") + 2:].split()


def start_time(pid):
    f = stat_fields(pid)
    return int(f[19]) if f else None


def ask(port, line, timeout=2):
    with socket.create_connection(("127.0.0.1", port), timeout=timeout) as s:
        s.sendall((line + "\n").encode())
        return s.makefile().readline().strip()


class Sim:
    """One simulation directory.  Remembers every process the simulation ran
    (pid and start time), so that the test can kill what is left whatever
    happens, and only those processes."""

    def __init__(self, path):
        self.dir = path
        self.known = {}

    def run(self, *args, timeout=90):
        # The nodes' HTTP writes take the tests' token (halo_harness.AUTH).
        r = subprocess.run([HALOCTL, "sim", *args, "--dir", str(self.dir)], capture_output=True, text=True,
                           timeout=timeout, env=dict(os.environ, HALO_SIM_HTTP_TOKEN=HTTP_TOKEN))
        self.remember()
        return r

    def up(self, *args):
        """sim up, on a block of ports of this test's own (free_port: another test's cannot take one
        between sim's probe and the bind; CI, once, with ports picked at random)."""
        def arg(name, default):
            return int(args[args.index(name) + 1]) if name in args else default
        n = 2 * arg("--etcd-members", 1) + 1 + 2 * arg("--nodes", 3)
        r = self.run("up", *args, *([] if "--ports" in args else ["--ports", str(free_port(n))]))
        self.up_output = r.stdout
        assert r.returncode == 0, f"sim up failed ({r.returncode}):\n{r.stdout}\n{r.stderr}\n{self.logs()}"
        return r

    def record(self):
        with open(self.dir / "sim.json") as f:
            return json.load(f)

    def socket(self, node):
        return str(self.dir / node / "halod.sock")

    def status(self, node="n1"):
        r = subprocess.run([HALOCTL, "--socket", self.socket(node), "status", "--json"],
                           capture_output=True, text=True, timeout=30)
        assert r.returncode == 0, r.stderr
        return json.loads(r.stdout)

    def remember(self):
        try:
            doc = self.record()
        except (OSError, ValueError):
            return
        for p in doc["etcd"] + doc["nodes"]:
            if p["pid"] > 0:
                self.known.setdefault(p["pid"], p["start_time"])
        for n in doc["nodes"]:  # the components
            for c in descendants(n["pid"]) if n["pid"] > 0 else ():
                self.known.setdefault(c, start_time(c))

    def logs(self):
        out = []
        for root, _, files in os.walk(self.dir):
            for f in files:
                if f.endswith(".log"):
                    with open(os.path.join(root, f), errors="replace") as fh:
                        out.append(f"--- {f} ({root})\n" + fh.read()[-3000:])
        return "\n".join(out)

    def kill_leftovers(self):
        self.remember()
        ours = [p for p, st in self.known.items() if st is not None and start_time(p) == st]
        for p in ours:
            try:
                os.kill(p, signal.SIGKILL)
            except OSError:
                pass
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline and any(proc_state(p) not in (None, "Z") for p in ours):
            time.sleep(0.02)
        reap(self.known)


@pytest.fixture
def sim(tmp_path):
    s = Sim(tmp_path / "sim")
    yield s
    s.kill_leftovers()


def assert_all_gone(pids):
    """Every pid has ended and none is left a zombie.  They were re-parented to
    this process (a subreaper) when haloctl exited, so reaping them is ours."""
    wait_for(lambda: all(proc_state(p) in (None, "Z") for p in pids), timeout=5, what="the processes to end")
    reap(pids)
    left = {p: proc_state(p) for p in pids if proc_state(p) is not None}
    assert not left, f"still there after sim down: {left}"


def test_sim_up_status_down(sim):
    r = sim.up("--nodes", "3")
    assert f"haloctl --socket {sim.socket('n1')} status" in r.stdout
    doc = sim.record()
    assert [m["name"] for m in doc["etcd"]] == ["m0"]
    assert [n["name"] for n in doc["nodes"]] == ["n1", "n2", "n3"]
    pids = [p["pid"] for p in doc["etcd"] + doc["nodes"]]
    for p in doc["etcd"] + doc["nodes"]:
        f = stat_fields(p["pid"])
        assert f and f[0] != "Z" and int(f[19]) == p["start_time"], f"{p['name']} is not running"
        assert int(f[3]) == p["pid"], f"{p['name']} is not in a session of its own"

    # Every node sees the others, one coordinator, the SI on two different nodes.
    st = sim.status("n1")
    assert {n["name"]: n["state"] for n in st["nodes"]} == {"n1": "ONLINE", "n2": "ONLINE", "n3": "ONLINE"}
    assert st["coordinator"] in ("n1", "n2", "n3")
    sg = st["service_groups"][0]
    node_of = {u["name"]: u["node"] for u in sg["service_units"]}
    assert node_of == {"counter-n1": "n1", "counter-n2": "n2", "counter-n3": "n3"}
    si = sg["service_instances"][0]
    assert si["name"] == "counter" and si["assignment"] == "FULLY-ASSIGNED"
    states = {a["su"]: a["ha_state"] for a in si["assignments"]}
    assert sorted(states.values()) == ["ACTIVE", "STANDBY"]
    assert node_of[si["active"]] != node_of[si["standby"]]
    assert ask(doc["counter_port"], "PING") == "PONG"
    for node in ("n2", "n3"):
        assert sim.status(node)["coordinator"] == st["coordinator"]

    r = sim.run("status")
    assert r.returncode == 0, r.stderr
    assert "coordinator" in r.stdout and "FULLY-ASSIGNED" in r.stdout and "n3" in r.stdout

    # HTTP writes take the token sim up wrote (the tests': $HALO_SIM_HTTP_TOKEN), and only it.
    token = sim.dir / "http.token"
    assert token.read_text() == HTTP_TOKEN + "\n" and (token.stat().st_mode & 0o777) == 0o600
    assert f"{sim.dir}/http.token" in sim.up_output
    url = doc["nodes"][0]["http"] + "v1/events"
    body = json.dumps({"object": "node:n3", "state": "FAILED"}).encode()
    for headers, code in (({}, 401), ({"Authorization": "Bearer " + HTTP_TOKEN}, 409)):  # n3 holds its lease: 409
        req = urllib.request.Request(url, data=body, method="POST", headers={"Content-Type": "application/json",
                                                                             **headers})
        try:
            urllib.request.urlopen(req, timeout=5)
            got = 202
        except urllib.error.HTTPError as e:
            got = e.code
        assert got == code, headers

    # A second one on the same directory is refused, and the first keeps running.
    r = sim.run("up", "--nodes", "3")
    assert r.returncode == 1
    assert "already runs" in r.stderr and "sim down" in r.stderr
    assert sim.record()["nodes"][0]["pid"] == doc["nodes"][0]["pid"]
    assert ask(doc["counter_port"], "PING") == "PONG"

    components = [p for n in doc["nodes"] for p in descendants(n["pid"])]
    assert len(components) == 3
    r = sim.run("down", timeout=120)
    assert r.returncode == 0, r.stderr
    assert r.stdout.count("stopped") == 4, r.stdout
    assert_all_gone(pids + components)
    assert not sim.dir.exists()

    r = sim.run("down")
    assert r.returncode == 1
    assert "no simulation" in r.stderr


def test_sim_three_etcd_members(sim):
    sim.up("--nodes", "2", "--etcd-members", "3")
    doc = sim.record()
    urls = [m["client_url"] for m in doc["etcd"]]
    assert [m["name"] for m in doc["etcd"]] == ["m0", "m1", "m2"] and len(set(urls)) == 3
    assert doc["endpoints"] == ",".join(urls)
    # One etcd cluster of three members, and every halod knows all of them.
    req = urllib.request.Request(urls[2] + "/v3/cluster/member/list", data=b"{}", method="POST")
    with urllib.request.urlopen(req, timeout=5) as resp:
        assert len(json.loads(resp.read())["members"]) == 3
    for n in doc["nodes"]:
        with open(f"/proc/{n['pid']}/cmdline") as f:
            args = f.read().split("\0")
        assert args[args.index("--etcd") + 1] == doc["endpoints"]
    st = sim.status("n2")
    assert {n["name"]: n["state"] for n in st["nodes"]} == {"n1": "ONLINE", "n2": "ONLINE"}
    assert st["service_groups"][0]["service_instances"][0]["assignment"] == "FULLY-ASSIGNED"
    assert ask(doc["counter_port"], "PING") == "PONG"

    pids = [p["pid"] for p in doc["etcd"] + doc["nodes"]]
    r = sim.run("down", timeout=120)
    assert r.returncode == 0, r.stderr
    assert r.stdout.count("stopped") == 5, r.stdout
    assert_all_gone(pids)
    assert not sim.dir.exists()


def test_sim_down_after_a_halod_died(sim):
    sim.up("--nodes", "2")
    doc = sim.record()
    n2 = doc["nodes"][1]["pid"]
    os.kill(n2, signal.SIGKILL)
    wait_for(lambda: proc_state(n2) in (None, "Z"), what="n2 to die")
    reap([n2])
    r = sim.run("down", timeout=120)
    assert r.returncode == 0, r.stderr
    assert "n2" in r.stdout and "was not running" in r.stdout
    assert r.stdout.count("stopped") == 2, r.stdout
    assert not sim.dir.exists()


def test_sim_start_node_after_a_halod_died(sim):
    r = sim.run("up", "--nodes", "2", "--lease-ttl", "61")
    assert r.returncode == 2 and "--lease-ttl wants a number from 1 to 60, not '61'" in r.stderr, r.stderr
    sim.up("--nodes", "2", "--lease-ttl", "3")
    assert sim.record()["lease_ttl"] == 3
    r = sim.run("start-node", "n2")
    assert r.returncode == 1 and "runs already" in r.stderr, r.stderr
    r = sim.run("start-node", "n9")
    assert r.returncode == 1 and "has no node 'n9'" in r.stderr, r.stderr
    r = sim.run("start-node")
    assert r.returncode == 2 and "one node name" in r.stderr
    old = sim.record()["nodes"][1]["pid"]
    os.kill(old, signal.SIGKILL)
    wait_for(lambda: proc_state(old) in (None, "Z"), what="n2 to die")
    reap([old])
    r = sim.run("start-node", "n2")
    assert r.returncode == 0 and "started the halod of node 'n2'" in r.stdout, r.stderr
    new = sim.record()["nodes"][1]["pid"]
    assert new != old and proc_state(new) not in (None, "Z")
    assert sim.status("n2")["node"] == "n2"
    # Started again with the TTL the cluster was brought up with.
    with open(sim.record()["nodes"][1]["log"]) as f:
        joins = [ln for ln in f if "Node 'n2' joined (lease" in ln]
    assert joins and all("TTL 3s)" in ln for ln in joins), joins
    r = sim.run("down", timeout=120)
    assert r.returncode == 0 and r.stdout.count("stopped") == 3, r.stdout + r.stderr


def test_sim_config_must_name_the_nodes(sim, tmp_path):
    cfg = tmp_path / "two.yaml"
    cfg.write_text("""
cluster: other
nodes:
  alpha: {}
  beta: {}
service-groups:
  counter:
    redundancy: 2N
    component:
      command: /bin/true
    service-units:
      a: {node: alpha}
      b: {node: beta}
    service-instances:
      counter:
        csis:
          counter: {}
""")
    r = sim.run("up", "--nodes", "2", "--config", str(cfg))
    assert r.returncode == 1
    assert "must name exactly the nodes n1..n2" in r.stderr and "alpha" in r.stderr
    assert not (sim.dir / "sim.json").exists()


def test_sim_ports_are_a_block_that_must_be_free(sim):
    """--ports P takes P, P+1, ...: one of them in use is an error naming it, before anything starts."""
    first = free_port(9)  # 1 member (2 ports), 3 nodes (2 each), the counter's
    with socket.socket() as s:
        s.bind(("127.0.0.1", first + 3))
        s.listen()
        r = sim.run("up", "--ports", str(first))
    assert r.returncode == 1, r.stdout + r.stderr
    assert r.stderr == f"haloctl: port {first + 3} of --ports {first}..{first + 8} is in use\n", r.stderr
    assert not (sim.dir / "sim.json").exists()
    for bad in ("80", "65530", "x"):
        r = sim.run("up", "--ports", bad)
        assert r.returncode == 2 and "--ports" in r.stderr, r.stderr
