# SPDX-License-Identifier: MIT
"""Several cdb-roles groups (docs/cdb.md, "Several groups, one subtree each"): the group without a
cdb-subtree drives the main database, a group with `cdb-subtree: /bill` drives /bill, a database
of its own on every node.  Two real halods over a real etcd, each node the primary of one and the
secondary of the other over one replication listener."""
import json
import os

import pytest
import shutil
import signal
import sqlite3
import subprocess
import threading

from chromium_harness import CHROMIUM, Chromium
from halo_harness import CDBCLIENT, TESTCOMP, commits_until, free_port, pid_alive, wait_for
from test_cdb_roles import roles_yaml
from test_metrics_ha import promtool_ok, scrape, value
from test_reload import rewrite

def groups_yaml(tmp_path, ports, bill_extra=""):
    """test_cdb_roles' description (its group db drives the main database), and bill on /bill."""
    return roles_yaml(tmp_path, ports).replace("cluster: roles", "cluster: groups") + f"""  bill:
    cdb-roles: true
    cdb-subtree: /bill{bill_extra}
    component: {{command: {TESTCOMP}}}
    service-units:
      bill-a: {{node: n2}}
      bill-b: {{node: n1}}
    service-instances:
      bill: {{csis: {{bill-csi: {{}}}}}}
"""


NODE = {"db-a": "n1", "db-b": "n2", "bill-a": "n2", "bill-b": "n1"}


class Groups:
    def __init__(self, etcd, factory, tmp_path, third=False, endpoints=None):
        """n1 and n2 hold a unit of each group; with third, n3 too, with no unit and no cdb-address.
        endpoints: the etcd client URLs each halod is given (etcd's, in its order, by default)."""
        self.endpoints = endpoints or etcd.endpoints
        names = ("n1", "n2", "n3") if third else ("n1", "n2")
        self.listen = {"n1": free_port(), "n2": free_port()}
        self.http = {n: free_port() for n in names}
        self.yaml = groups_yaml(tmp_path, self.listen)
        if third:
            self.yaml = self.yaml.replace("nodes:\n", "nodes:\n  n3: {}\n")
        self.etcd, self.factory = etcd, factory
        self.nodes = {n: self.make(n) for n in names}

    def make(self, n):
        listen = ["--cdb-listen", f"127.0.0.1:{self.listen[n]}"] if n in self.listen else []
        return self.factory(self.yaml, name=f"groups-{n}",
                            extra_args=["--node", n, "--etcd", self.endpoints, "--lease-ttl", "3",
                                        "--http", f"127.0.0.1:{self.http[n]}", *listen])

    def roles(self, n, subtree=None):
        """This node's role of the main database, or of subtree's."""
        cdb = self.nodes[n].status()["cdb"]
        if subtree is None:
            return cdb
        return next((s for s in cdb.get("subtrees", []) if s["subtree"] == subtree), None)

    def active(self, si):
        s = self.nodes["n1"].si(si)
        if s["active"] and s["standby"] and not any(a["pending"] for a in s["assignments"]):
            return NODE[s["active"]], NODE[s["standby"]]
        return None

    def swap(self, si):
        """admin si-swap of si, again while the AMF says a change is under way (what n1 saw settled
        may not be settled yet on the coordinator: CI, once)."""
        last = []

        def swapped():
            r = self.nodes["n1"].ctl("admin", "si-swap", f"si:{si}", check=False)
            last[:] = [r.stderr.strip()]
            return r.returncode == 0
        try:
            wait_for(swapped, timeout=20, interval=0.2, what=f"{si} swapped")
        except AssertionError as e:
            raise AssertionError(f"{e}; haloctl said: {last[0]}; n1 says {self.nodes['n1'].si(si)}") from None

    def settle(self):
        """Starts both; returns {None: (primary, secondary) of the main database, "/bill": the same of /bill}
        once every role follows its group."""
        for h in self.nodes.values():
            h.start()
        out = {}
        for si, subtree in (("db", None), ("bill", "/bill")):
            p, s = wait_for(lambda si=si: self.active(si), timeout=20, what=f"{si} assigned")
            if subtree and p == out[None][0]:  # one primary on each node: bill's ACTIVE to the other
                self.swap(si)
                p, s = wait_for(lambda si=si, p=p: (self.active(si) or (p,))[0] != p and self.active(si),
                                timeout=20, what=f"{si} swapped")
            wait_for(lambda: (self.roles(p, subtree) or {}).get("state") == "PRIMARY" and
                     (self.roles(s, subtree) or {}).get("state") == "SECONDARY" and
                     self.roles(p, subtree).get("secondaries"), timeout=15, what=f"{si}'s roles")
            out[subtree] = (p, s)
        return out


def test_two_groups_drive_their_own_subtrees(etcd, halod_factory, tmp_path):
    g = Groups(etcd, halod_factory, tmp_path)
    roles = g.settle()
    main_p, main_s = roles[None]
    bill_p, bill_s = roles["/bill"]
    assert main_p != bill_p, roles

    # What halod and haloctl say of both.
    sub = g.roles(bill_p, "/bill")
    assert sub["roles_follow"] == "bill" and sub["writer"] == bill_p and sub["nodeid"] == bill_p
    text = g.nodes[bill_p].ctl("status").stdout
    assert f"Configuration database /bill: PRIMARY as {bill_p}, secondaries {bill_s} (roles follow service " \
           "group bill)" in text, text
    assert f"Configuration database: SECONDARY as {bill_p}, primary {main_p}" in text, text
    # The metrics: the main database's role, and each subtree's under its own name.
    for n, main_role, bill_role in ((main_p, "PRIMARY", "SECONDARY"), (bill_p, "SECONDARY", "PRIMARY")):
        text = scrape(g.http[n])
        promtool_ok(text)
        for role in ("NONE", "SECONDARY", "PRIMARY", "SECONDARY_RELAY"):
            assert value(text, "halo_cdb_role", role=role) == (role == main_role), (n, role)
            assert value(text, "halo_cdb_subtree_role", subtree="/bill", sg="bill", role=role) == \
                (role == bill_role), (n, role)

    # Each subtree's writes go to its own primary, and reach the other node.
    hp, hb = g.nodes[main_p], g.nodes[bill_p]
    hp.ctl("cdb", "set", "/x", "main", "/billing", "not bill")
    hb.ctl("cdb", "set", "/bill/y", "bill", "/bill", "root")
    for h in g.nodes.values():
        wait_for(lambda h=h: h.ctl("cdb", "get", "/bill/y", check=False).stdout == "bill\n" and
                 h.ctl("cdb", "get", "/x", check=False).stdout == "main\n", timeout=10, what="both replicated")
    # The wrong node names the right writer, per path.
    r = hp.ctl("cdb", "set", "/bill/z", "1", check=False)
    assert r.returncode != 0 and f"the primary is node '{bill_p}'" in r.stderr, r.stderr
    r = hb.ctl("cdb", "set", "/z", "1", check=False)
    assert r.returncode != 0 and f"the primary is node '{main_p}'" in r.stderr, r.stderr
    # One transaction is one database's.
    r = hp.ctl("cdb", "set", "/a", "1", "/bill/a", "2", check=False)
    assert r.returncode != 0 and "different replicated subtrees" in r.stderr, r.stderr
    r = hp.ctl("cdb", "delete", "/", check=False)
    assert r.returncode != 0 and "different replicated subtrees" in r.stderr, r.stderr
    # A list over both is one list, in path order, on either node.
    for h in g.nodes.values():
        paths = [i["path"] for i in json.loads(h.ctl("cdb", "list", "/", "--json").stdout)]
        assert paths == ["/bill", "/bill/y", "/billing", "/x"], paths

    # The files, on both nodes: the group's holds its subtree, the main one the rest.
    for h in g.nodes.values():
        assert h.stop() == 0
    for h in g.nodes.values():
        assert paths_in(os.path.join(h.state, "cdb-bill.db")) == ["/bill", "/bill/y"]
        assert paths_in(os.path.join(h.state, "cdb.db")) == ["/billing", "/x"]


@pytest.mark.skipif(not CHROMIUM, reason="chromium is not installed (tools/install-deps installs it)")
def test_the_web_ui_shows_each_subtree(etcd, halod_factory, tmp_path):
    """Each node's status page shows a row per subtree with its role there and its primary."""
    browser = Chromium()
    try:
        g = Groups(etcd, halod_factory, tmp_path)
        bill_p, bill_s = g.settle()["/bill"]
        rows = "[...document.querySelectorAll('#cdb-subtrees tr.subtree')].map((r) => [r.dataset.subtree, " \
               "r.dataset.role, r.dataset.primary, r.textContent])"
        for n, role in ((bill_p, "PRIMARY"), (bill_s, "SECONDARY")):
            browser.session = browser.open(f"http://127.0.0.1:{g.http[n]}/ui")
            last = []

            def shown(role=role):
                """The rows once they show the roles settle() saw (the page may come before: CI, once)."""
                last[:] = [browser.eval(rows) or []]
                return [r[:3] for r in last[0]] == [["/bill", role, bill_p]] and last[0]
            try:
                seen = wait_for(shown, timeout=15, what=f"{n}'s subtree rows")
            except AssertionError:
                raise AssertionError(f"{n}'s page showed {last}") from None
            assert "bill (writer: " + bill_p + ")" in seen[0][3], seen
        for h in g.nodes.values():
            assert h.stop() == 0
    finally:
        browser.close()


def paths(h, prefix):
    """The paths under prefix that h's halod lists."""
    return {i["path"] for i in json.loads(h.ctl("cdb", "list", prefix, "--json").stdout)}


def assert_none_lost(h, prefix, acked, who=""):
    """Every commit of acked (indexes under prefix) is in what h lists."""
    have = paths(h, prefix)
    lost = [i for i in acked if f"{prefix}/{i}" not in have]
    assert not lost, f"{who}{prefix}: {len(lost)} acknowledged commits lost, first {lost[:5]}"


def paths_in(db):
    with sqlite3.connect(f"file:{db}?mode=ro", uri=True) as c:
        return [p for (p,) in c.execute("SELECT path FROM kv ORDER BY path")]


def test_one_group_fails_over_and_the_other_stays(etcd, halod_factory, tmp_path):
    """n2, /bill's primary, dies whole (halod and components, SIGKILL) under a stream of commits to
    /bill: /bill moves to n1 with every acknowledged commit; the main database's primary, n1, stays."""
    g = Groups(etcd, halod_factory, tmp_path)
    roles = g.settle()
    main_p, _ = roles[None]
    bill_p, bill_s = roles["/bill"]
    hb = g.nodes[bill_p]
    acked = commits_until(hb.socket, "/bill/n", 200, hb.kill_all)
    assert len(acked) >= 200
    hs = g.nodes[bill_s]
    wait_for(lambda: (g.roles(bill_s, "/bill") or {}).get("state") == "PRIMARY", timeout=20,
             what="/bill's primary on the survivor")
    assert_none_lost(hs, "/bill/n", acked)
    hs.ctl("cdb", "set", "/bill/after", "failover")
    # The main database: its primary was n1 all along (bill's node was n2).
    assert main_p == bill_s
    assert g.roles(bill_s)["state"] == "PRIMARY"
    hs.ctl("cdb", "set", "/after", "main")

    # n2 back: the secondary of both, with what it missed.
    back = g.make(bill_p)
    g.nodes[bill_p] = back
    back.start()
    wait_for(lambda: (g.roles(bill_p, "/bill") or {}).get("state") == "SECONDARY" and
             g.roles(bill_p).get("state") == "SECONDARY", timeout=20, what="n2 the secondary of both")
    wait_for(lambda: back.ctl("cdb", "get", "/bill/after", check=False).stdout == "failover\n" and
             back.ctl("cdb", "get", "/after", check=False).stdout == "main\n", timeout=10, what="n2's copies")
    for h in g.nodes.values():
        assert h.stop() == 0


def test_halod_alone_killed_while_it_holds_both_primaries(etcd, halod_factory, tmp_path):
    """Both groups ACTIVE on one node, so its halod is the primary of the main database and of /bill;
    that halod alone is SIGKILLed under a stream of commits to each: the other node becomes the
    primary of both with every acknowledged commit, and the halod started again on the same state
    directory opens both files and comes back as the secondary of both, with what it missed."""
    g = Groups(etcd, halod_factory, tmp_path)
    roles = g.settle()
    both, other = roles[None]
    g.swap("bill")  # bill's ACTIVE to the main database's node
    wait_for(lambda: (g.roles(both, "/bill") or {}).get("state") == "PRIMARY" and
             (g.roles(other, "/bill") or {}).get("state") == "SECONDARY", timeout=20, what="/bill's roles swapped")
    h = g.nodes[both]
    h.remember_children()
    comps = set(h.known_pids)
    main_acked = []
    main = threading.Thread(target=lambda: main_acked.extend(commits_until(h.socket, "/m", 10**9, lambda: None)))
    main.start()
    bill_acked = commits_until(h.socket, "/bill/n", 200, lambda: h.proc.send_signal(signal.SIGKILL))
    main.join(30)
    assert not main.is_alive() and len(bill_acked) >= 200 and main_acked, (len(bill_acked), len(main_acked))
    h.proc.wait(10)
    hs = g.nodes[other]
    wait_for(lambda: g.roles(other).get("state") == "PRIMARY" and
             (g.roles(other, "/bill") or {}).get("state") == "PRIMARY", timeout=30, what="the survivor primary of both")

    for prefix, acked in (("/m", main_acked), ("/bill/n", bill_acked)):
        assert_none_lost(hs, prefix, acked)
    hs.ctl("cdb", "set", "/after", "main")
    hs.ctl("cdb", "set", "/bill/after", "bill")

    # Its components stop by themselves at the lease's end; then the same node's halod again, on the
    # same state directory (as systemd would restart it).
    wait_for(lambda: not any(pid_alive(p) for p in comps), timeout=15, what="the components to stop")
    h.log.close()
    h.start()
    wait_for(lambda: (g.roles(both, "/bill") or {}).get("state") == "SECONDARY" and
             g.roles(both).get("state") == "SECONDARY", timeout=30, what="the node back as the secondary of both")
    for prefix in ("/m", "/bill/n", "/after", "/bill/after"):
        wait_for(lambda prefix=prefix: paths(h, prefix) == paths(hs, prefix), timeout=15,
                 what=f"{prefix} the same on both nodes")
    for n in g.nodes.values():
        assert n.stop() == 0


def test_a_node_with_no_unit_reads_a_copy_of_each_database(etcd, halod_factory, tmp_path):
    """n3 has no unit of either group: it follows each database's primary as a secondary, so a read
    there answers what the primary acknowledged (never its own empty files), a write there is refused
    with the primary's name, and it follows each primary that takes over when a node dies."""
    g = Groups(etcd, halod_factory, tmp_path, third=True)
    roles = g.settle()
    main_p, main_s = roles[None]
    bill_p, bill_s = roles["/bill"]

    def follows(main, bill):
        m, b = g.roles("n3"), g.roles("n3", "/bill") or {}
        return (m.get("state"), m.get("primary"), b.get("state"), b.get("primary")) == \
            ("SECONDARY", main, "SECONDARY", bill) and \
            "n3" in [x["nodeid"] for x in g.roles(main).get("secondaries", [])] and \
            "n3" in [x["nodeid"] for x in (g.roles(bill, "/bill") or {}).get("secondaries", [])]
    wait_for(lambda: follows(main_p, bill_p), timeout=20, what="n3 the secondary of both primaries")
    h3 = g.nodes["n3"]
    # A commit the primary acknowledged is already on n3 (a connected secondary holds commits back),
    # once n3 has its full copy (the first commit it shows).
    for primary, path in ((main_p, "/x"), (bill_p, "/bill/y")):
        g.nodes[primary].ctl("cdb", "set", path, "first")
        wait_for(lambda path=path: h3.ctl("cdb", "get", path, check=False).stdout == "first\n", timeout=10,
                 what=f"{path} on n3")
        for i in range(5):
            g.nodes[primary].ctl("cdb", "set", path, f"v{i}")
            assert h3.ctl("cdb", "get", path, check=False).stdout == f"v{i}\n", (path, i)
    paths = [i["path"] for i in json.loads(h3.ctl("cdb", "list", "/", "--json").stdout)]
    assert paths == ["/bill/y", "/x"], paths
    for path, primary in (("/z", main_p), ("/bill/z", bill_p)):
        r = h3.ctl("cdb", "set", path, "1", check=False)
        assert r.returncode != 0 and f"the primary is node '{primary}'" in r.stderr, r.stderr
    text = h3.ctl("status").stdout
    assert f"Configuration database: SECONDARY as n3, primary {main_p}" in text, text
    assert f"Configuration database /bill: SECONDARY as n3, primary {bill_p}" in text, text

    # /bill's primary's node dies whole: n3 follows the node that takes /bill over (and the main
    # database's primary, the same node or another), and reads every commit acknowledged before.
    hb = g.nodes[bill_p]
    acked = commits_until(hb.socket, "/bill/n", 100, hb.kill_all)
    assert len(acked) >= 100
    main_now = main_s if main_p == bill_p else main_p
    wait_for(lambda: follows(main_now, bill_s), timeout=30, what="n3 the secondary of the survivor")
    assert_none_lost(h3, "/bill/n", acked, "n3: ")
    g.nodes[bill_s].ctl("cdb", "set", "/bill/after", "failover")
    assert h3.ctl("cdb", "get", "/bill/after", check=False).stdout == "failover\n"
    for n, h in g.nodes.items():
        if n != bill_p:
            assert h.stop() == 0


def test_an_etcd_member_stopped_under_two_groups(halod_factory, tmp_path):
    """Three etcd members; the follower every halod talks to first is SIGSTOPped (quorum intact)
    while each primary takes commits: no node fences, the main database keeps its primary, and
    /bill's ACTIVE component SIGKILLed during the stall moves /bill to the other node with every
    acknowledged commit (that node records in etcd that it acknowledges alone, through a live
    member); once the member is back, the killed component's node follows as /bill's secondary."""
    import time
    from etcd_harness import Etcd
    etcd = Etcd(members=3).start()
    stopped = None
    try:
        leader = wait_for(lambda: etcd.leader() is not None, what="an etcd leader") and etcd.leader()
        f = (leader + 1) % 3
        g = Groups(etcd, halod_factory, tmp_path, endpoints=etcd.endpoints_from(f))
        roles = g.settle()
        main_p, _ = roles[None]
        bill_p, bill_s = roles["/bill"]
        hm, hb, hs = g.nodes[main_p], g.nodes[bill_p], g.nodes[bill_s]
        unit = next(u for u, n in NODE.items() if u.startswith("bill") and n == bill_p)
        hb.remember_children()
        comp = hb.pid_of(unit)

        etcd.pause_member(f)
        stopped = f
        t0 = time.monotonic()
        main_acked = []

        def commit_main():
            out = subprocess.run([CDBCLIENT, "commit", "/m", "300"], capture_output=True, text=True, timeout=60,
                                 env=dict(os.environ, HALO_SOCKET=hm.socket)).stdout.split("\n")
            main_acked.extend(line.split()[1] for line in out if line.startswith("ok "))
        main = threading.Thread(target=commit_main)
        main.start()
        time.sleep(1.5)  # renewals and commits with the member stopped
        bill_acked = commits_until(hb.socket, "/bill/n", 100, lambda: hb.kill_pids([comp]))
        assert len(bill_acked) >= 100
        wait_for(lambda: (g.roles(bill_s, "/bill") or {}).get("state") == "PRIMARY", timeout=15,
                 what="/bill's primary on the other node during the stall")
        assert_none_lost(hs, "/bill/n", bill_acked)
        hs.ctl("cdb", "set", "/bill/during", "stall")
        main.join(60)
        assert not main.is_alive() and len(main_acked) == 300, len(main_acked)
        assert g.roles(main_p)["state"] == "PRIMARY"
        assert time.monotonic() - t0 < 10, "the failover waited for the stopped member"
        time.sleep(max(0.0, 6 - (time.monotonic() - t0)))
        etcd.resume_member(f)
        stopped = None

        wait_for(lambda: (g.roles(bill_p, "/bill") or {}).get("state") == "SECONDARY", timeout=20,
                 what="the killed component's node /bill's secondary again")
        wait_for(lambda: hb.ctl("cdb", "get", "/bill/during", check=False).stdout == "stall\n", timeout=10,
                 what="its copy of /bill")
        for n, h in g.nodes.items():
            assert h.proc.poll() is None and "Fencing node" not in h.logtext(), f"{n} fenced itself"
        assert g.roles(main_p)["state"] == "PRIMARY"
        assert paths(hb, "/m") == {f"/m/{i}" for i in main_acked}, "the main database's secondary lacks commits"
        for h in g.nodes.values():
            assert h.stop() == 0
    finally:
        if stopped is not None:
            etcd.resume_member(stopped)
        etcd.stop()


def refused_start(factory, yaml, etcd, state_files, what):
    """A halod of n1 with this description and these files in its state directory: it exits at its
    start with what in its log."""
    h = factory(yaml, name="groups-refused",
                extra_args=["--node", "n1", "--etcd", etcd.endpoints, "--lease-ttl", "2", "--http", "none"])
    os.makedirs(h.state, exist_ok=True)
    for name, src in state_files.items():
        shutil.copy(src, os.path.join(h.state, name))
    h.start(wait=False)
    assert h.proc.wait(30) != 0, h.logtext()
    assert what in h.logtext(), h.logtext()


def test_a_start_that_would_hide_or_mix_data_is_refused(etcd, halod_factory, tmp_path):
    """A group's file bound to another subtree; main-database paths under a subtree a new
    description gives a group: halod says so and does not start (it neither hides nor mixes data)."""
    g = Groups(etcd, halod_factory, tmp_path)
    roles = g.settle()
    main_p, _ = roles[None]
    g.nodes[main_p].ctl("cdb", "set", "/ledger/1", "kept")
    wait_for(lambda: g.nodes["n1"].ctl("cdb", "get", "/ledger/1", check=False).stdout == "kept\n", timeout=10,
             what="n1's copy")
    state = g.nodes["n1"].state
    for n in g.nodes.values():
        assert n.stop() == 0
    files = {"cdb.db": os.path.join(state, "cdb.db"), "cdb-bill.db": os.path.join(state, "cdb-bill.db")}
    refused_start(halod_factory, groups_yaml(tmp_path, g.listen, bill_extra="2"), etcd, files,
                  "The database of service group 'bill' (")
    refused_start(halod_factory, groups_yaml(tmp_path, g.listen).replace("/bill", "/ledger"), etcd,
                  {"cdb.db": files["cdb.db"]}, "The configuration database holds 1 path under /ledger, the "
                  "cdb-subtree of service group 'bill'")


def test_a_reload_does_not_add_or_move_a_subtree(etcd, halod_factory, tmp_path):
    """A subtree's database is opened at start: a reload that adds a group with a cdb-subtree, or
    changes one, is refused with what to do, and changes nothing."""
    g = Groups(etcd, halod_factory, tmp_path)
    g.settle()
    h = g.nodes["n1"]
    for text, what in ((g.yaml.replace("/bill", "/bill2"), "'service-groups.bill.cdb-subtree' changed: a group's "
                        "cdb-subtree does not change live"),
                       (g.yaml + "  more:\n    cdb-roles: true\n    cdb-subtree: /more\n"
                        f"    component: {{command: {TESTCOMP}}}\n"
                        "    service-units: {more-a: {node: n1}, more-b: {node: n2}}\n"
                        "    service-instances: {more: {csis: {more-csi: {}}}}\n",
                        "'service-groups.more' added: a cdb-roles group with a cdb-subtree is added by a restart")):
        rewrite(h, text)
        refused = h.ctl("reload", check=False)
        assert refused.returncode == 5 and what in refused.stderr, refused.stderr
    assert [s["subtree"] for s in h.status()["cdb"]["subtrees"]] == ["/bill"]
    for n in g.nodes.values():
        assert n.stop() == 0
