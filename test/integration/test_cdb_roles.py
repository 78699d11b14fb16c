# SPDX-License-Identifier: MIT
"""CDB roles driven by the AMF: a service group with cdb-roles makes its ACTIVE unit's node the
primary and its STANDBY unit's node the secondary; on node failover the new primary holds every
commit the old one acknowledged.  Two real halods over a real etcd."""
import json

from halo_harness import TESTCOMP, commits_until, free_port, wait_for

TOKEN = "roles-token"


def roles_yaml(tmp_path, ports):
    token = tmp_path / "token"
    token.write_text(TOKEN + "\n")
    return f"""
cluster: roles
nodes:
  n1: {{cdb-address: "127.0.0.1:{ports['n1']}"}}
  n2: {{cdb-address: "127.0.0.1:{ports['n2']}"}}
cdb: {{token-file: "{token}", tick: 100ms, dead-after: 600ms}}
defaults:
  component:
    restart: {{max: 10, window: 60s, delay: 50ms, delay-max: 500ms}}
service-groups:
  db:
    cdb-roles: true
    component: {{command: {TESTCOMP}}}
    service-units:
      db-a: {{node: n1}}
      db-b: {{node: n2}}
    service-instances:
      db: {{csis: {{db-csi: {{}}}}}}
"""


class Roles:
    def __init__(self, etcd, factory, tmp_path):
        self.ports = {"n1": free_port(), "n2": free_port()}
        self.yaml = roles_yaml(tmp_path, self.ports)
        self.etcd, self.factory = etcd, factory
        self.nodes = {n: self.make(n) for n in ("n1", "n2")}

    def make(self, n):
        return self.factory(self.yaml, name=f"roles-{n}",
                            extra_args=["--node", n, "--etcd", self.etcd.endpoints, "--lease-ttl", "1",
                                        "--http", "none"])

    def ha_state(self, n):
        r = self.nodes[n].ctl("ha", "--token", TOKEN, "status", "--json", check=False)
        return json.loads(r.stdout) if r.returncode == 0 else None

    def start(self):
        """Starts both halods; returns the nodes of the ACTIVE and the STANDBY unit once settled."""
        for h in self.nodes.values():
            h.start()
        act, sb = wait_for(self.settled, timeout=20, what="the SI assigned")
        return node_of(act), node_of(sb)

    def settled(self):
        s = self.nodes["n1"].si("db")
        if s["active"] and s["standby"] and not any(a["pending"] for a in s["assignments"]):
            return s["active"], s["standby"]
        return None


def node_of(su):
    return {"db-a": "n1", "db-b": "n2"}[su]


def test_roles_follow_the_active_unit_and_survive_node_failover(etcd, halod_factory, tmp_path):
    r = Roles(etcd, halod_factory, tmp_path)
    primary, secondary = r.start()
    sb = {"n1": "db-a", "n2": "db-b"}[secondary]
    wait_for(lambda: (r.ha_state(primary) or {}).get("state") == "PRIMARY", timeout=10, what="ACTIVE's node PRIMARY")
    wait_for(lambda: r.ha_state(secondary) == {"state": "SECONDARY",
                                               "nodes": [{"nodeid": primary,
                                                          "addr": f"127.0.0.1:{r.ports[primary]}"}]},
             timeout=10, what="STANDBY's node the SECONDARY of ACTIVE's")

    # The application cannot move the roles itself, and a wrong token is refused.
    refused = r.nodes[primary].ctl("ha", "--token", TOKEN, "benone", check=False)
    assert refused.returncode == 1 and "not allowed" in refused.stderr
    wrong = r.nodes[primary].ctl("ha", "--token", "guess", "status", check=False)
    assert wrong.returncode == 1 and "bad token" in wrong.stderr

    # A stream of commits on the primary; the primary's node dies (halod and components, SIGKILL).
    hp = r.nodes[primary]
    acked = commits_until(hp.socket, "/roles", 1000, hp.kill_all)
    assert len(acked) >= 1000

    # The survivor's unit goes ACTIVE, its halod becomes the primary by itself, and every
    # commit the old primary acknowledged is there.
    hs = r.nodes[secondary]
    wait_for(lambda: hs.si("db")["active"] == sb, timeout=20, what="failover to the survivor")
    wait_for(lambda: (r.ha_state(secondary) or {}).get("state") == "PRIMARY", timeout=10, what="survivor PRIMARY")
    items = {i["path"] for i in json.loads(hs.ctl("cdb", "list", "/roles", "--json").stdout)}
    lost = [i for i in acked if f"/roles/{i}" not in items]
    assert not lost, f"{len(lost)} acknowledged commits lost, first {lost[:5]}"
    hs.ctl("cdb", "set", "/after", "failover")  # the new primary takes writes

    # The dead node comes back: its unit is STANDBY, its halod the new primary's secondary,
    # with a full copy (it may hold commits it never got acknowledged).
    back = r.make(primary)
    r.nodes[primary] = back
    back.start()
    wait_for(lambda: (r.ha_state(primary) or {}).get("state") == "SECONDARY", timeout=20,
             what="the returning node SECONDARY")
    wait_for(lambda: back.ctl("cdb", "get", "/after", check=False).stdout == "failover\n", timeout=10,
             what="the returning node's copy")
    hs.ctl("cdb", "set", "/later", "x")
    assert back.ctl("cdb", "get", "/later").stdout == "x\n"
    for h in (hs, back):
        assert h.stop() == 0


def test_status_shows_the_roles(etcd, halod_factory, tmp_path):
    r = Roles(etcd, halod_factory, tmp_path)
    primary, secondary = r.start()
    h = r.nodes[primary]
    wait_for(lambda: h.status()["cdb"]["secondaries"], timeout=10, what="the secondary listed")
    cdb = h.status()["cdb"]
    assert cdb["state"] == "PRIMARY" and cdb["nodeid"] == primary and cdb["roles_follow"] == "db"
    assert [s["nodeid"] for s in cdb["secondaries"]] == [secondary]
    text = h.ctl("status").stdout
    assert f"Configuration database: PRIMARY as {primary}, secondaries {secondary} (roles follow service group db)" \
        in text, text
    other = r.nodes[secondary].status()["cdb"]
    assert other["state"] == "SECONDARY" and other["primary"] == primary
    for n in r.nodes.values():
        assert n.stop() == 0
