# SPDX-License-Identifier: MIT
"""The chaos checker's cluster: 3 etcd members and 3 halods on loopback, built
with the integration tests' harness (test/integration/etcd_harness.py and
halo_harness.py), running test components that log their ACTIVE intervals,
a death watcher, and a CDB client that logs what was acknowledged."""
import json
import os
import shutil
import signal
import subprocess
import sys
import threading
import time
import urllib.request

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "integration"))

from etcd_harness import Etcd  # noqa: E402
from halo_harness import BUILD, HALOCTL, TESTCOMP, Halod, free_port, reap, wait_for  # noqa: E402

NSACOMP = os.path.join(BUILD, "test", "nsacomp")
STAMP = os.path.join(BUILD, "test", "chaos-stamp")
OCF_AGENT = os.path.join(HERE, "ocf-logged")
OCF_RESOURCE_D = "/usr/lib/ocf/resource.d"

NODES = ("n1", "n2", "n3")
TOKEN = "chaos-token"

# The service groups, their units on different nodes (npm's four over the three nodes).
# The g* units form one recovery pool; db drives the CDB's roles, bill those of its subtree
# /bill (a database of its own, its primary usually on the other node); nsa runs an
# unmodified-style program (nsacomp), only while ACTIVE, under an external monitor; web is
# N-way-active; npm is N+M with three SIs; ocf is an OCF resource agent (ocf-logged, a
# wrapped ocf:heartbeat:Dummy), started only while ACTIVE.  nsa and web climb the recovery
# ladder (LADDER) before they fail over.
GROUPS = {
    "g1": {"g1-a": "n1", "g1-b": "n2"},
    "g2": {"g2-a": "n2", "g2-b": "n3"},
    "g3": {"g3-a": "n3", "g3-b": "n1"},
    "db": {"db-a": "n1", "db-b": "n2"},
    "bill": {"bill-a": "n2", "bill-b": "n1"},
    "nsa": {"nsa-a": "n3", "nsa-b": "n1"},
    "web": {"web-a": "n1", "web-b": "n2", "web-c": "n3"},
    "npm": {"npm-a": "n1", "npm-b": "n2", "npm-c": "n3", "npm-d": "n2"},
    "ocf": {"ocf-a": "n2", "ocf-b": "n3"},
}
# Per group: its redundancy model, how many ACTIVEs each SI has when enough units are
# healthy (and at most), how many STANDBYs once settled, whether its STANDBY runs nothing
# (cold: non-SA-aware, OCF), and the most SIs one unit may hold ACTIVE (None: no limit).
MODELS = {g: {"model": "2N", "actives": 1, "standbys": 1, "cold": False, "max_active": None, "type": "sa-aware"}
          for g in GROUPS}
MODELS["nsa"].update(cold=True, type="non-sa-aware")
# An OCF resource's stop may take its timeout after its node's lease ended, so the other nodes
# start it that much later (docs/design.md, "A lease end etcd cannot vouch for"): the checker
# allows an OCF SI's gaps that much more.  Dummy stops in milliseconds, but a stop that
# outlasts its timeout fails, disables its unit and holds its SI until an operator's repair
# (the resource may still be held): CI, with the sanitizer build compiling beside the run,
# saw one take more than 3 s; 10 s.
OCF_STOP_TIMEOUT = 10.0
MODELS["ocf"].update(cold=True, type="ocf", stop_timeout=OCF_STOP_TIMEOUT)
MODELS["web"].update(model="N-way-active", actives=2, standbys=0)
MODELS["npm"].update(model="N+M", max_active=2)
NPM = {"active-sus": 3, "standby-sus": 1}
# The SIs, each of one CSI named <si>-csi: one per group, named after it, but npm's three.
SIS = {si: g for g in GROUPS for si in ([f"{g}-{i}" for i in (1, 2, 3)] if g == "npm" else [g])}
# The groups whose ACTIVE runs an external monitor that the nemesis's monitor-fail breaks
# (nsa: a monitor command; ocf: the agent's monitor action), while DIR/monitor-fail.<unit> exists.
MONITORED = {"nsa", "ocf"}
MONITOR_PERIOD = "500ms"
# Two component restarts in place, then one SU restart, then an SU failover, within 30 s.
LADDER = {"nsa", "web"}
ESCALATION = "{component-restart: {max: 2, probation: 30s}, su-restart: {max: 1, probation: 30s}}"
POOL = ["g1-a", "g1-b", "g2-a", "g2-b", "g3-a", "g3-b"]
POOL_TOLERATE = 2  # one node down fails two of the six; one more may fail meanwhile
CDB_NODES = ("n1", "n2")
# The cdb-roles groups: the subtree each drives (None: the main database), the prefix its
# writer commits under, and that writer's log.
CDB_GROUPS = {"db": {"subtree": None, "prefix": "/chaos", "log": "cdb.jsonl"},
              "bill": {"subtree": "/bill", "prefix": "/bill/chaos", "log": "cdb-bill.jsonl"}}


class KeptEtcd(Etcd):
    """The harness's etcd; stop() keeps the members' logs as etcd-<member>.log in keep_dir.  Its
    data stays on the disk, beside everything else, as on a real node: with etcd on tmpfs (an
    etcd that never waits for the disk while the components do), seed 202 found halod failing
    over from processes that took 3 s to die after their SIGKILL (2026-12-08; halod waits for
    them since; the likelier cause of the slow deaths, halods spinning at 100% CPU while an
    etcd member was down, was found and fixed the same day)."""

    keep_dir = None
    on_tmpfs = False

    def stop(self):
        for m in self.members:
            if m["proc"] and m["proc"].poll() is None:
                os.kill(m["proc"].pid, signal.SIGCONT)  # a stopped member would not see SIGTERM
            log = os.path.join(self.dir, m["name"] + ".log")
            if self.keep_dir and os.path.exists(log):
                shutil.copy(log, os.path.join(self.keep_dir, f"etcd-{m['name']}.log"))
        super().stop()

    def status(self, m, timeout=0.3):
        """(member_id, leader_id) from the member's /v3/maintenance/status, or None."""
        req = urllib.request.Request(f"http://127.0.0.1:{m['client']}/v3/maintenance/status", data=b"{}",
                                     method="POST")
        try:
            with urllib.request.urlopen(req, timeout=timeout) as r:
                doc = json.loads(r.read())
            return str(doc["header"]["member_id"]), str(doc["leader"])
        except (OSError, ValueError, KeyError):
            return None

    def leader(self):
        """The index of the member that says it is the leader, or None."""
        for i, m in enumerate(self.members):
            if m["proc"] and m["proc"].poll() is None:
                st = self.status(m)
                if st and st[0] == st[1]:
                    return i
        return None


def si_meta():
    """{si: {"group", "units", "csis", and its group's MODELS entry}}: what the checker judges."""
    return {si: {"group": g, "units": GROUPS[g], "csis": [f"{si}-csi"], **MODELS[g]} for si, g in SIS.items()}


def ocf_provider():
    """The run's own OCF provider: a directory of that name under OCF_RESOURCE_D."""
    return f"halochaos{os.getpid()}"


def install_ocf_agent():
    """Copies ocf-logged to a provider of the run's own under /usr/lib/ocf/resource.d (halod
    runs agents from there only); returns (its agent spec, the provider's directory)."""
    provider = ocf_provider()
    d = os.path.join(OCF_RESOURCE_D, provider)
    os.makedirs(d, exist_ok=True)
    shutil.copy(OCF_AGENT, os.path.join(d, "Logged"))
    os.chmod(os.path.join(d, "Logged"), 0o755)
    return f"ocf:{provider}:Logged", d


def description(d, cdb_ports, watch_sock, ocf_agent):
    log = os.path.join(d, "comp")
    token = os.path.join(d, "token")
    with open(token, "w") as f:
        f.write(TOKEN + "\n")
    nodes = "\n".join(f"  {n}: {{cdb-address: \"127.0.0.1:{cdb_ports[n]}\"}}" if n in CDB_NODES else f"  {n}: {{}}"
                      for n in NODES)
    groups = []
    for g, units in GROUPS.items():
        m = MODELS[g]
        unit_lines = "\n".join(f"      {u}: {{node: {n}}}" for u, n in units.items())
        keys = [f"redundancy: {m['model']}"] if g not in CDB_GROUPS else ["cdb-roles: true"]
        if g in CDB_GROUPS and CDB_GROUPS[g]["subtree"]:
            keys.append(f"cdb-subtree: {CDB_GROUPS[g]['subtree']}")
        si_keys = ""
        if m["model"] == "N-way-active":
            si_keys = f"active-assignments: {m['actives']}, "
        if m["model"] == "N+M":
            keys += [f"{k}: {v}" for k, v in NPM.items()]
        if m["max_active"]:
            keys.append(f"max-active-sis-per-su: {m['max_active']}")
        if g in LADDER:
            keys.append(f"escalation: {ESCALATION}")
        if m["type"] == "non-sa-aware":
            monitor = (f"monitor: {{command: [/bin/sh, -c, 'test ! -e {d}/monitor-fail.$HALO_COMPONENT'], "
                       f"period: {MONITOR_PERIOD}, timeout: 2s}}")
            keys.append(f"component: {{type: non-sa-aware, command: {NSACOMP}, args: [{g}-csi], "
                        f"recovery: component-restart, {monitor}}}")
            attrs = f"attributes: {{si: {g}}}"
        elif m["type"] == "ocf":
            keys.append(f"component: {{type: ocf, agent: \"{ocf_agent}\", params: {{dir: \"{d}\", stamp: \"{STAMP}\", "
                        f"csi: {g}-csi}}, monitor: {{period: {MONITOR_PERIOD}, timeout: 5s}}, "
                        f"timeouts: {{instantiate: 5s, terminate: {OCF_STOP_TIMEOUT:g}s}}}}")
            attrs = ""
        else:
            modes = "intervals,amf-hc" if g in ("db", "bill", "web", "npm") else "intervals,amf-hc,entrypoint,recovery,ask-again"
            keys.append(f"component: {{command: {TESTCOMP}, health-check: {{period: 200ms, timeout: 600ms}}, "
                        f"env: {{TESTCOMP: \"{modes}\"}}}}")
            attrs = ""
        sis = "\n".join(f"      {si}: {{{si_keys}csis: {{{si}-csi: {{{attrs}}}}}}}" for si, sg in SIS.items() if sg == g)
        groups.append(f"""  {g}:
{chr(10).join("    " + k for k in keys)}
    service-units:
{unit_lines}
    service-instances:
{sis}""")
    return f"""cluster: chaos
nodes:
{nodes}
cdb: {{token-file: "{token}", tick: 100ms, dead-after: 600ms}}
defaults:
  component:
    env: {{TESTCOMP_LOG: "{log}", TESTCOMP_WATCH: "{watch_sock}"}}
    restart: {{max: 1000, window: 60s, delay: 50ms, delay-max: 500ms}}
    timeouts: {{terminate: 2s}}
service-groups:
{chr(10).join(groups)}
pools:
  storage: {{processes: [{", ".join(POOL)}], tolerate: {POOL_TOLERATE}}}
"""


class Watcher:
    """The death watcher (watcher.py), a child of ours; keeps the live pid of each component."""

    def __init__(self, d):
        self.sock = os.path.join(d, "watch.sock")
        self.log = open(os.path.join(d, "watcher.log"), "w")
        self.proc = subprocess.Popen([sys.executable, os.path.join(HERE, "watcher.py"), self.sock],
                                     stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
        assert self.proc.stdout.readline().strip() == "READY", "the watcher did not start"
        self.live = {}  # comp -> pid
        self.dead = set()
        self.lock = threading.Lock()
        self.thread = threading.Thread(target=self.read, daemon=True)
        self.thread.start()

    def read(self):
        for line in self.proc.stdout:
            self.log.write(line)
            self.log.flush()
            w = line.split()
            with self.lock:
                if w[0] == "UP":
                    self.live[w[1]] = int(w[2])
                elif w[0] == "DOWN":
                    if self.live.get(w[1]) == int(w[2]):
                        del self.live[w[1]]
                    self.dead.add(int(w[2]))

    def pid(self, comp):
        with self.lock:
            return self.live.get(comp)

    def reap(self):
        """Reaps the components that died as orphans of a killed halod (we are their subreaper)."""
        with self.lock:
            dead = list(self.dead)
        reap(dead)

    def stop(self):
        self.proc.stdin.close()
        self.proc.wait(10)
        self.thread.join(5)
        self.log.close()


class CdbWriter:
    """A CDB client of one cdb-roles group (CDB_GROUPS): commits <prefix>/c<i> = <i>, one
    transaction each (`haloctl cdb set`), through the node that took the last one, else the next
    node of the group; logs every acknowledgement and refusal to the group's log (cdb.jsonl for
    the main database).  A commit that does not answer within 3 s counts as not acknowledged
    (its haloctl is killed)."""

    def __init__(self, cluster, group="db", pace=0.02):
        self.c = cluster
        self.pace = pace
        self.prefix = CDB_GROUPS[group]["prefix"]
        self.log = open(os.path.join(cluster.dir, CDB_GROUPS[group]["log"]), "w")
        self.stopping = threading.Event()
        self.thread = threading.Thread(target=self.run, daemon=True)

    def start(self):
        self.thread.start()
        return self

    def run(self):
        i, k = 0, 0
        while not self.stopping.is_set():
            node = CDB_NODES[k % len(CDB_NODES)]
            path = f"{self.prefix}/c{i}"
            i += 1
            t_sent = time.monotonic()
            try:
                r = subprocess.run([HALOCTL, "--socket", self.c.halods[node].socket, "cdb", "set", path, str(i)],
                                   capture_output=True, text=True, timeout=3)
                ok, why = r.returncode == 0, r.stderr.strip()
            except subprocess.TimeoutExpired:
                ok, why = False, "no answer in 3 s"
            t = time.monotonic()
            self.log.write(json.dumps({"path": path, "node": node, "ok": ok, "t_sent": t_sent, "t": t,
                                       **({} if ok else {"why": why})}) + "\n")
            self.log.flush()
            if not ok:
                k += 1
                self.stopping.wait(0.1)
            else:
                self.stopping.wait(self.pace)

    def stop(self):
        self.stopping.set()
        self.thread.join(10)
        self.log.close()


class Proxies:
    """A node's way to etcd through proxy.py (one proxy per member), which can be cut."""

    def __init__(self, etcd):
        self.proc = subprocess.Popen([sys.executable, os.path.join(HERE, "proxy.py"),
                                      *(str(m["client"]) for m in etcd.members)],
                                     stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
        ports = self.proc.stdout.readline().split()
        assert len(ports) == len(etcd.members), "the proxies did not start"
        self.endpoints = ",".join(f"http://127.0.0.1:{p}" for p in ports)

    def tell(self, cmd):
        self.proc.stdin.write(cmd + "\n")
        self.proc.stdin.flush()
        assert self.proc.stdout.readline().strip() == "ok", f"the proxies did not {cmd}"

    def stop(self):
        self.proc.stdin.close()
        self.proc.wait(10)


class Cluster:
    def __init__(self, d, cut=False):
        self.dir = d
        self.groups = GROUPS
        self.ocf_agent, self.ocf_dir = install_ocf_agent()  # first: it needs root
        self.t0 = time.monotonic()
        self.watcher = Watcher(d)
        self.etcd = KeptEtcd(members=3)
        self.etcd.keep_dir = d
        # With cut: each halod reaches etcd through proxies of its own, which the nemesis cuts.
        self.proxies = {n: Proxies(self.etcd) for n in NODES} if cut else {}
        cdb_ports = {n: free_port() for n in NODES}
        self.yaml = description(d, cdb_ports, self.watcher.sock, self.ocf_agent)
        with open(os.path.join(d, "cluster.yaml"), "w") as f:
            f.write(self.yaml)
        self.halods = {}
        for n in NODES:
            endpoints = self.proxies[n].endpoints if cut else self.etcd.endpoints
            self.halods[n] = Halod(self.yaml, name=n, extra_args=[
                "--node", n, "--etcd", endpoints, "--lease-ttl", "1", "--http", "none",
                "--cdb-listen", f"127.0.0.1:{cdb_ports[n]}"])

    def start(self):
        self.etcd.start()
        for h in self.halods.values():
            h.start()
        return self

    def comps(self):
        return [u for units in GROUPS.values() for u in units]

    def node_of(self, comp):
        return next(units[comp] for units in GROUPS.values() if comp in units)

    def view(self, node):
        """{si: [its ACTIVE units, sorted]} as node's halod shows it, or None if it does not answer."""
        h = self.halods[node]
        try:
            st = h.status()
        except Exception:
            return None
        return {si["name"]: sorted(si["actives"]) for sg in st["service_groups"] for si in sg["service_instances"]}

    def settled(self):
        """What still keeps the cluster from its settled state, as [(what, text)]: [] once every
        SI has its ACTIVE and STANDBY with nothing pending on every node ("si"), every component
        runs ("comp"), every pool process is ONLINE ("pool"), and the CDB has one PRIMARY and its
        SECONDARY ("cdb")."""
        why = []
        for n, h in self.halods.items():
            if h.proc.poll() is not None:
                why.append(("crash", f"halod {n} exited by itself with status {h.proc.returncode}"))
                continue
            try:
                st = h.status()
            except Exception as e:
                why.append(("si", f"halod {n} does not answer ({e})"))
                continue
            down = [x["name"] for x in st["nodes"] if x["state"] != "ONLINE"]
            if down:
                why.append(("si", f"{n} sees nodes {down} not ONLINE"))
            for sg in st["service_groups"]:
                for si in sg["service_instances"]:
                    m = MODELS[SIS[si["name"]]]
                    if len(si["actives"]) != m["actives"] or len(si["standbys"]) != m["standbys"] or \
                            any(a["pending"] for a in si["assignments"]):
                        why.append(("si", f"{n} sees SI {si['name']} active={si['actives'] or None} "
                                          f"standby={si['standbys'] or None} assignments="
                                          f"{[(a['su'], a['ha_state']) for a in si['assignments']]} "
                                          f"pending={[a['su'] for a in si['assignments'] if a['pending']]}"))
        # A cold (non-SA-aware, OCF) group runs its ACTIVE's process (holds its resource) only;
        # the others run every unit.
        missing = [c for g, units in GROUPS.items() if not MODELS[g]["cold"] for c in units if not self.watcher.pid(c)]
        missing += [g for g, units in GROUPS.items() if MODELS[g]["cold"] and
                    sum(1 for c in units if self.running(g, c)) != MODELS[g]["actives"]]
        if missing:
            why.append(("comp", f"components not running (or, for {sorted(g for g in GROUPS if MODELS[g]['cold'])}, "
                                f"not one running): {missing}"))
        not_online = {p: s["state"] for p, s in self.pool_states().items() if s["state"] != "ONLINE"}
        if not_online:
            why.append(("pool", f"pool processes not ONLINE: {not_online}"))
        for g, cg in CDB_GROUPS.items():
            roles = {n: self.cdb_state(n, cg["subtree"]) for n in CDB_NODES}
            if sorted(str(r) for r in roles.values()) != ["PRIMARY", "SECONDARY"]:
                why.append(("cdb", f"CDB roles of {cg['subtree'] or 'the main database'} {roles}"))
        return why

    def running(self, group, comp):
        """Whether comp runs: its process (the watcher's word), or its OCF resource (its state file)."""
        if MODELS[group]["type"] == "ocf":
            return os.path.exists(os.path.join(self.dir, f"ocf.{comp}.state"))
        return bool(self.watcher.pid(comp))

    def running_unit(self, comp):
        return self.running(next(g for g, units in GROUPS.items() if comp in units), comp)

    def cdb_state(self, node, subtree=None):
        """The node's role of the main database, or of subtree's."""
        try:
            cdb = self.halods[node].status().get("cdb", {})
        except Exception:
            return None
        if subtree:
            cdb = next((x for x in cdb.get("subtrees", []) if x.get("subtree") == subtree), {})
        return cdb.get("state")

    def pool_states(self):
        """{process: {"state": published state, "reason", "recovery"}} for the pool's processes."""
        try:
            keys = self.etcd.get_prefix("/halo/chaos/state/process:")
        except OSError as e:
            return {p: {"state": f"unreadable ({e})"} for p in POOL}
        out = {}
        for p in POOL:
            raw = keys.get(f"/halo/chaos/state/process:{p}")
            try:
                state = json.loads(raw).get("state") if raw else None
            except ValueError:
                state = raw
            rec = None
            try:
                rec = self.halods[self.node_of(p)].comp(p).get("recovery")
            except Exception:
                pass
            out[p] = {"state": state, "recovery": rec, "reason": (rec or {}).get("reason")}
        return out

    def cdb_final(self, group="db"):
        """{"primary", "paths"} of the one PRIMARY of a cdb-roles group's database, or {"error"}."""
        cg = CDB_GROUPS[group]
        prim = [n for n in CDB_NODES if self.cdb_state(n, cg["subtree"]) == "PRIMARY"]
        if len(prim) != 1:
            return {"error": f"not one PRIMARY at the end: {prim}"}
        r = self.halods[prim[0]].ctl("cdb", "list", cg["prefix"], "--json", check=False, timeout=60)
        if r.returncode != 0:
            return {"error": f"cdb list on {prim[0]} failed: {r.stderr.strip()}"}
        return {"primary": prim[0], "paths": [i["path"] for i in json.loads(r.stdout)]}

    def dump_store(self):
        try:
            keys = self.etcd.get_prefix("/halo/")
        except OSError as e:
            keys = {"error": str(e)}
        with open(os.path.join(self.dir, "store-at-end.json"), "w") as f:
            json.dump(keys, f, indent=1, sort_keys=True)

    def stop(self):
        """Stops every halod (SIGTERM), then etcd and the watcher; returns what went wrong, as
        [(what, text)]: "crash" for a halod that did not exit 0, "teardown" for the rest."""
        problems = []
        for n, h in self.halods.items():
            if not h.proc:
                continue
            try:
                crashed = h.proc.poll() is not None
                if crashed:
                    tail = [ln for ln in h.logtext().splitlines()[-3:]]
                    problems.append(("crash", f"halod {n} had exited by itself with status {h.proc.returncode} "
                                              f"before the final SIGTERM; its log ends: {tail}"))
                else:
                    os.kill(h.proc.pid, signal.SIGCONT)
                rc = h.stop()
                if rc != 0 and not crashed:
                    how = f"signal {-rc} ({signal.Signals(-rc).name})" if rc < 0 else f"status {rc}"
                    tail = [ln for ln in h.logtext().splitlines()[-3:]]
                    problems.append(("crash", f"halod {n} ended by {how} at SIGTERM; its log ends: {tail}"))
            except AssertionError as e:
                problems.append(("teardown", f"halod {n}: {str(e).splitlines()[0]}"))
                h.kill_all()
        self.etcd.stop()
        for p in self.proxies.values():
            p.stop()
        shutil.rmtree(self.ocf_dir, ignore_errors=True)
        self.watcher.reap()
        self.watcher.stop()
        return problems


def wait_settled(cluster, timeout):
    """Waits up to timeout for cluster.settled() to be empty; returns what is left."""
    deadline = time.monotonic() + timeout
    why = cluster.settled()
    while why and time.monotonic() < deadline:
        time.sleep(0.25)
        cluster.watcher.reap()
        why = cluster.settled()
    return why


__all__ = ["Cluster", "wait_settled", "wait_for", "GROUPS", "MODELS", "SIS", "LADDER", "MONITORED", "POOL", "NODES"]
