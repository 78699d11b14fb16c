# SPDX-License-Identifier: MIT
"""The name service (docs/names.md) on three real halods sharing a real etcd, and on one node.

One cluster for the module (the tests run in order, the destructive ones last): components
ra (n1, priority 10) and rb (n2, priority 20) register svc/db; rc (n1) registers svc/stale
once in its life; rl (n3) is a raw-link component that lies about who it is."""
import errno
import os
import signal
import sqlite3
import subprocess
import sys

import pytest

from etcd_harness import Etcd
from halo_harness import BUILD, Halod, wait_for
import rawlink
from rawlink import field_bytes, field_varint

NAMECLIENT = os.path.join(BUILD, "test", "nameclient")
LIAR = os.path.join(os.path.dirname(__file__), "name_liar.py")
HALO_ENOTREG = 10002
TTL = 3


def cluster_yaml(d):
    def unit(name, node, *args):
        return f'      {name}: {{node: {node}, component: {{args: {list(args)!r}}}}}'.replace("'", '"')

    return f"""
cluster: names
nodes:
  n1: {{}}
  n2: {{}}
  n3: {{}}
defaults:
  component:
    restart: {{max: 20, window: 60s, delay: 50ms, delay-max: 200ms}}
    timeouts: {{terminate: 2s}}
service-groups:
  reg:
    redundancy: N-way-active
    component:
      command: {NAMECLIENT}
    service-units:
{unit("ra", "n1", "comp", f"{d}/ra.log", "svc/db=ref-a@10")}
{unit("rb", "n2", "comp", f"{d}/rb.log", "svc/db=ref-b@20")}
{unit("rc", "n1", "comp", f"{d}/rc.log", "svc/stale=ref-c@5", "--once", f"{d}/rc.once")}
    service-instances:
      reg:
        entrypoint: true
        csis:
          reg: {{}}
  liar:
    redundancy: no-redundancy
    component:
      command: {sys.executable}
    service-units:
{unit("rl", "n3", LIAR, f"{d}/liar.out", "ra")}
    service-instances:
      liar:
        csis:
          liar: {{}}
  dereg:
    redundancy: no-redundancy
    component:
      command: {NAMECLIENT}
    service-units:
{unit("rd", "n3", "comp", f"{d}/rd.log", "--once", f"{d}/rd.once", "--track", "svc/tmp", "--track", "svc/tmp2",
      "svc/tmp=t1@1", "svc/tmp2=t2@1", "--deregister", "svc/tmp", "--deregister", "svc/db", "--deregister-all")}
    service-instances:
      dereg:
        csis:
          dereg: {{}}
"""


class Names:
    def __init__(self, d):
        self.dir = d
        self.etcd = Etcd(members=1).start()
        self.yaml = cluster_yaml(d)
        self.nodes = {n: Halod(self.yaml, name=n, extra_args=["--node", n, "--etcd", self.etcd.endpoints,
                                                              "--lease-ttl", str(TTL)]) for n in ("n1", "n2", "n3")}
        self.trackers = []

    def env(self, node):
        return dict(os.environ, HALO_SOCKET=self.nodes[node].socket)

    def client(self, node, *args):
        r = subprocess.run([NAMECLIENT, *args], env=self.env(node), capture_output=True, text=True, timeout=20)
        return r.stdout.strip()

    def lookup(self, node, ctx, name, all_=True):
        """[(comp, node, priority, ref)], or the error line."""
        out = self.client(node, "lookup", ctx, name, *(["all"] if all_ else []))
        if out.startswith("ERROR"):
            return out
        return [tuple(line.split(" ")) for line in out.splitlines()]

    def track(self, node, ctx, name):
        """A tracker on node (an unregistered client): its output file."""
        path = os.path.join(self.dir, f"track-{node}-{len(self.trackers)}.out")
        f = open(path, "w")
        p = subprocess.Popen([NAMECLIENT, "track", ctx, name], env=self.env(node), stdout=f,
                             stderr=subprocess.STDOUT)
        self.trackers.append((p, f))
        wait_for(lambda: "TRACK" in read(path), what="the tracker to start")
        assert f"TRACK {ctx}/{name} 0" in read(path), read(path)
        return path

    def stop(self):
        for p, f in self.trackers:
            p.kill()
            p.wait()
            f.close()
        for h in self.nodes.values():
            h.kill_all()
        self.etcd.stop()


def read(path):
    try:
        with open(path) as f:
            return f.read()
    except OSError:
        return ""


@pytest.fixture(scope="module")
def names(tmp_path_factory):
    c = Names(str(tmp_path_factory.mktemp("names")))
    try:
        for h in c.nodes.values():
            h.start()
        # Every registration is in: each component said READY.
        for comp in ("ra", "rb", "rc", "rd"):
            wait_for(lambda: "READY" in read(f"{c.dir}/{comp}.log"), timeout=30, what=f"{comp} ready")
        yield c
    finally:
        c.stop()


def test_lookup_answers_the_highest_priority_from_any_node(names):
    for node in ("n1", "n2", "n3"):
        assert wait_for(lambda: names.lookup(node, "svc", "db") ==
                        [("rb", "n2", "20", "ref-b"), ("ra", "n1", "10", "ref-a")], what=f"lookup on {node}")
        assert names.lookup(node, "svc", "db", all_=False) == [("rb", "n2", "20", "ref-b")]
    assert names.lookup("n3", "svc", "nothing").startswith(f"ERROR -{errno.ENOENT} ")
    # haloctl registrations lists them, best first, with the read-only entrypoint context.
    out = names.nodes["n3"].ctl("registrations", "svc").stdout.splitlines()
    assert out[1].split()[:5] == ["svc", "db", "20", "n2", "rb"] and out[2].split()[:5] == ["svc", "db", "10", "n1", "ra"]
    assert "svc              stale" in names.nodes["n3"].ctl("registrations").stdout


def test_the_entrypoint_context_says_where_an_si_is_active(names):
    got = wait_for(lambda: (lambda r: r if isinstance(r, list) and len(r) == 3 else None)(
        names.lookup("n3", "entrypoint", "reg")), what="the SI ACTIVE on its three units")
    assert sorted(e[1] for e in got) == ["n1", "n1", "n2"] and all(e[3] == e[1] for e in got)
    assert all(e[0] == "-" for e in got)
    # Only the SIs marked entrypoint: true are in it.
    assert names.lookup("n3", "entrypoint", "liar").startswith(f"ERROR -{errno.ENOENT} ")
    assert names.lookup("n1", "entrypoint", "counter").startswith(f"ERROR -{errno.ENOENT} ")


def test_unregistered_and_lying_clients_are_refused(names):
    # An unregistered client may look up, not register.
    assert names.client("n1", "register", "svc", "db", "mine").startswith(f"ERROR -{HALO_ENOTREG} ")
    # A registered component may not act as another one, nor write the entrypoint context.
    out = f"{names.dir}/liar.out"
    wait_for(lambda: "REGISTER_AS_ITSELF" in read(out), timeout=15, what="the liar's answers")
    said = dict(line.split() for line in read(out).splitlines())
    assert said == {"REGISTER_AS_OTHER": str(-errno.EPERM), "DEREGISTER_OTHERS": str(-errno.EPERM),
                    "REGISTER_ENTRYPOINT": str(-errno.EROFS), "REGISTER_AS_ITSELF": "0"}
    assert names.lookup("n1", "svc", "lie").startswith(f"ERROR -{errno.ENOENT} ")
    assert names.lookup("n1", "svc", "liar") == [("rl", "n3", "1", "r")]
    assert [e[0] for e in names.lookup("n2", "svc", "db")] == ["rb", "ra"]
    assert "claimed to be 'ra' in a name service request; refused" in names.nodes["n3"].logtext()


def test_a_component_deregisters_its_own_names_only(names):
    log = f"{names.dir}/rd.log"
    said = read(log)
    for line in ("REGISTER svc/tmp 0", "REGISTER svc/tmp2 0", "DEREGISTER svc/tmp 0",
                 f"DEREGISTER svc/db -{errno.ENOENT}", "DEREGISTER_ALL 0"):
        assert line in said, said
    # Its own trackers heard both names come and go, deregistered.
    for note in ("NOTE ADDED REGISTERED svc/tmp rd n3 1 t1", "NOTE REMOVED DEREGISTERED svc/tmp rd n3 1 t1",
                 "NOTE ADDED REGISTERED svc/tmp2 rd n3 1 t2", "NOTE REMOVED DEREGISTERED svc/tmp2 rd n3 1 t2"):
        assert wait_for(lambda: note in read(log), what=note)
    for name in ("tmp", "tmp2"):
        assert names.lookup("n1", "svc", name).startswith(f"ERROR -{errno.ENOENT} ")
    # Another component's registration of the name it tried to remove stays.
    assert [e[0] for e in names.lookup("n1", "svc", "db")] == ["rb", "ra"]


def register_raw(link, seq, ctx, name, ref=b"r", attrs=()):
    entry = field_bytes(1, ctx) + field_bytes(2, name) + field_bytes(3, ref)
    for k, v in attrs:
        entry += field_bytes(4, field_bytes(1, k) + field_bytes(2, v))
    link.send(field_bytes(60, field_varint(1, seq) + field_bytes(2, entry + field_varint(5, 1))))
    return link.reply()


def test_bad_input_is_answered_and_halod_keeps_serving(names):
    link = rawlink.RawLink(names.nodes["n2"].socket)
    assert link.hello() == 0
    assert register_raw(link, 1, "svc", "x" * 300) == (1, -errno.ENAMETOOLONG)
    assert register_raw(link, 2, "svc", "a/b") == (2, -errno.EINVAL)
    assert register_raw(link, 3, "svc", "big", ref=b"r" * 2000) == (3, -errno.E2BIG)
    many = [(f"k{i}", "v") for i in range(17)]
    assert register_raw(link, 4, "svc", "attrs", attrs=many) == (4, -errno.E2BIG)
    assert register_raw(link, 5, "svc", "attr", attrs=[("k", "v" * 300)]) == (5, -errno.E2BIG)
    # Past the packet's own bounds the client is cut off.
    link.send(field_bytes(60, field_varint(1, 6) + field_bytes(2, field_bytes(1, "svc") + field_bytes(2, "y" * 2000))))
    assert link.closed_by_peer()
    link.close()
    assert names.lookup("n2", "svc", "db")[0][0] == "rb"


def test_a_killed_component_loses_its_names_and_a_tracker_is_told(names):
    out = names.track("n3", "svc", "db")
    ep = names.track("n2", "entrypoint", "reg")
    h1 = names.nodes["n1"]
    pid = h1.pid_of("ra")
    os.kill(pid, signal.SIGKILL)
    wait_for(lambda: "NOTE REMOVED COMPONENT_FAILED svc/db ra n1 10 ref-a" in read(out), timeout=15,
             what="the tracker told of ra's end")
    # The AMF restarts it; the new process registers again.
    wait_for(lambda: "NOTE ADDED REGISTERED svc/db ra n1 10 ref-a" in read(out), timeout=15,
             what="the tracker told of ra's new registration")
    assert wait_for(lambda: names.lookup("n2", "svc", "db") ==
                    [("rb", "n2", "20", "ref-b"), ("ra", "n1", "10", "ref-a")], what="ra back")
    assert h1.pid_of("ra") != pid
    # Its unit lost its ACTIVE, then got it again: the entrypoint context's tracker heard both.
    wait_for(lambda: "NOTE REMOVED DEREGISTERED entrypoint/reg - n1 0 n1 su=ra" in read(ep), what="ra no longer ACTIVE")
    wait_for(lambda: "NOTE ADDED REGISTERED entrypoint/reg - n1 0 n1 su=ra" in read(ep), what="ra ACTIVE again")
    assert "su=rb" not in read(ep) and "su=rc" not in read(ep)


def test_a_restarted_halod_keeps_adopted_registrations_and_drops_stale_ones(names):
    h1 = names.nodes["n1"]
    ra, rc = h1.pid_of("ra"), h1.pid_of("rc")
    assert names.lookup("n2", "svc", "stale") == [("rc", "n1", "5", "ref-c")]
    kept, stale = names.track("n3", "svc", "db"), names.track("n2", "svc", "stale")
    h1.remember_children()
    h1.proc.kill()
    h1.proc.wait()
    os.kill(rc, signal.SIGKILL)  # dies while halod is away: its registration is stale
    h1.start()
    # rc is started again; with --once it does not register again.
    wait_for(lambda: h1.comp("rc")["pid"] not in (None, 0, rc), timeout=20, what="rc restarted")
    assert wait_for(lambda: names.lookup("n2", "svc", "stale") == f"ERROR -{errno.ENOENT} No such file or directory",
                    timeout=15, what="the stale registration removed")
    # ra outlived halod: adopted, its registration kept.
    assert h1.pid_of("ra") == ra
    assert names.lookup("n2", "svc", "db") == [("rb", "n2", "20", "ref-b"), ("ra", "n1", "10", "ref-a")]
    assert "Name 'svc/db' of 'ra' kept" in h1.logtext()
    # The other nodes' trackers hear of the stale one's end, and nothing of the kept one.
    wait_for(lambda: "NOTE REMOVED COMPONENT_FAILED svc/stale rc n1 5 ref-c" in read(stale), what="stale told")
    assert "NOTE" not in read(kept)


def test_a_dead_node_loses_its_names_and_a_tracker_elsewhere_is_told(names):
    out = names.track("n1", "svc", "db")
    ep = names.track("n3", "entrypoint", "reg")
    names.nodes["n2"].kill_all()  # the node dies: halod and its components
    wait_for(lambda: "NOTE REMOVED NODE_LEFT svc/db rb n2 20 ref-b" in read(out), timeout=TTL + 15,
             what="the tracker told of n2's end")
    wait_for(lambda: "NOTE REMOVED DEREGISTERED entrypoint/reg - n2 0 n2 su=rb" in read(ep), timeout=TTL + 15,
             what="the entrypoint tracker told rb is no longer ACTIVE")
    assert names.lookup("n3", "svc", "db") == [("ra", "n1", "10", "ref-a")]


def one_node_yaml(d):
    return f"""
cluster: one
nodes:
  n1: {{}}
service-groups:
  reg:
    redundancy: N-way-active
    component:
      command: {NAMECLIENT}
    service-units:
      ra: {{node: n1, component: {{args: ["comp", "{d}/ra.log", "svc/db=ref-a@10"]}}}}
      rc: {{node: n1, component: {{args: ["comp", "{d}/rc.log", "svc/stale=ref-c@5", "--once", "{d}/rc.once"]}}}}
      rm: {{node: n1, components: {{web: {{args: ["comp", "{d}/rm.log", "svc/web=ref-m@1"]}}}}}}
    service-instances:
      reg:
        csis:
          reg: {{}}
"""


def stored_names(h):
    db = sqlite3.connect(os.path.join(h.state, "store.db"))
    try:
        keys = [k.decode() if isinstance(k, bytes) else k for (k,) in db.execute("SELECT key FROM kv")]
        return sorted(k for k in keys if k.startswith("/halo/one/names/"))
    finally:
        db.close()


def test_one_node_restart_and_stop(halod_factory, tmp_path):
    """One node (the SQLite store, no lease): a kill -9 and restart keeps the adopted
    component's registration and drops the dead one's; a stop removes every one."""
    d = str(tmp_path)
    h = halod_factory(one_node_yaml(d)).start()
    env = dict(os.environ, HALO_SOCKET=h.socket)

    def lookup(name):
        return subprocess.run([NAMECLIENT, "lookup", "svc", name], env=env, capture_output=True, text=True,
                              timeout=20).stdout.strip()

    wait_for(lambda: all("READY" in read(f"{d}/{c}.log") for c in ("ra", "rc", "rm")), timeout=20, what="ready")
    assert lookup("db") == "ra n1 10 ref-a" and lookup("stale") == "rc n1 5 ref-c"
    assert lookup("web") == "rm/web n1 1 ref-m"  # a component of a unit with a components map: SU/name
    ra, rc = h.pid_of("ra"), h.pid_of("rc")
    h.remember_children()
    h.proc.kill()
    h.proc.wait()
    os.kill(rc, signal.SIGKILL)
    h.start()
    wait_for(lambda: h.comp("rc")["pid"] not in (None, 0, rc), timeout=20, what="rc restarted")
    assert wait_for(lambda: lookup("stale").startswith(f"ERROR -{errno.ENOENT} "), what="the stale one removed")
    assert h.pid_of("ra") == ra and lookup("db") == "ra n1 10 ref-a"
    assert stored_names(h) == ["/halo/one/names/svc/db/n1/ra", "/halo/one/names/svc/web/n1/rm/web"]
    assert h.stop() == 0
    assert stored_names(h) == []
