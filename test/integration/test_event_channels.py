# SPDX-License-Identifier: MIT
"""Event channels (docs/events.md) on real halods over a real etcd: filters
applied in halod (a subscriber gets exactly what matches), publish order per
publisher, retention, a subscriber that never reads, bad requests refused, a
publisher's node killed, the events of a node that died deleted when their
retention ends."""
import json
import os
import subprocess
import threading
import time

import pytest

from halo_harness import BUILD, TESTCOMP, start_nodes, wait_for

EVTCLIENT = os.path.join(BUILD, "test", "evtclient")
NODES = ("n1", "n2", "n3")
YAML = "cluster: ec\nnodes: {n1: {}, n2: {}, n3: {}}\nservice-groups: {}\n"


class Client:
    """An evtclient on a node's socket; its lines collected as they come."""

    def __init__(self, halod, *args, env=None):
        self.lines = []
        self.proc = subprocess.Popen([EVTCLIENT, *args], stdout=subprocess.PIPE, text=True,
                                     env={**os.environ, "HALO_SOCKET": halod.socket, **(env or {})})
        threading.Thread(target=self._read, daemon=True).start()

    def _read(self):
        for line in self.proc.stdout:
            self.lines.append(line.split())

    def events(self):
        """[(pub_seq, publisher, hlc, lost, fields, payload)]"""
        return [(int(p[1]), p[2], int(p[3]), int(p[4]), p[5], p[7] if len(p) > 7 else "")
                for p in list(self.lines) if p[0] == "EV"]

    def first(self, word):
        return wait_for(lambda: next((p for p in list(self.lines) if p[0] == word), None), timeout=20,
                        what=f"evtclient said {word}")

    def done(self):
        return wait_for(lambda: ["DONE"] in self.lines, timeout=60, what="evtclient published everything")

    def stop(self):
        if self.proc.poll() is None:
            self.proc.kill()
        self.proc.wait()


@pytest.fixture
def clients():
    started = []

    def make(halod, *args, **kw):
        c = Client(halod, *args, **kw)
        started.append(c)
        return c

    yield make
    for c in started:
        c.stop()


def channels(h):
    return {(c["name"], c["scope"]): c for c in json.loads(h.ctl("event-channels", "--json").stdout)["channels"]}


def subscribed(c):
    return c.first("SUBSCRIBED")[1] == "0"


def test_channels_filters_order_retention(etcd, halod_factory, clients):
    hs, _ = start_nodes(halod_factory, YAML, etcd.endpoints, nodes=NODES)
    n1, n2, n3 = hs["n1"], hs["n2"], hs["n3"]

    # Bad requests are refused with a clear error, the client is not cut off.
    assert clients(n1, "local", "bad/name", "sub").first("OPEN")[1] == "-22"
    assert clients(n1, "local", "loc", "sub", "bogus:x").first("SUBSCRIBED")[1] == "-22"
    assert clients(n1, "local", "loc", "sub", "mask:/").first("SUBSCRIBED")[1] == "-22"  # an empty mask
    big = clients(n1, "local", "loc", "pub", "1", "a", "5000")
    assert big.first("PUB")[2] == "-90"  # EMSGSIZE: payload over 4096 bytes
    long_field = clients(n1, "local", "loc", "pub", "1", "x" * 300)
    assert long_field.first("PUB")[2] == "-90"
    many = clients(n1, "local", "loc", "pub", "1", ",".join("f" * 17))
    assert many.first("PUB")[2] == "-22"  # 17 fields: over 16

    # Node-local: exact + prefix, pass-all, suffix; another node's channel of the same name.
    alarms = clients(n1, "local", "loc", "sub", "exact:alarm", "prefix:disk")
    every = clients(n1, "local", "loc", "sub")
    suffix = clients(n1, "local", "loc", "sub", "all", "suffix:7")
    elsewhere = clients(n2, "local", "loc", "sub")
    for c in (alarms, every, suffix, elsewhere):
        assert subscribed(c)
    clients(n1, "local", "loc", "pub", "30", "alarm,disk#").done()
    clients(n1, "local", "loc", "pub", "30", "info,disk#").done()
    clients(n1, "local", "loc", "pub", "30", "alarm,net#").done()
    wait_for(lambda: len(every.events()) == 90, what="the pass-all subscriber got all 90")
    wait_for(lambda: len(alarms.events()) == 30 and len(suffix.events()) == 9, what="the filtered ones theirs")
    assert {e[4] for e in alarms.events()} == {f"alarm,disk{i}" for i in range(30)}
    assert sorted(e[4] for e in suffix.events()) == sorted(f"{k},{d}{i}" for k, d in (("alarm", "disk"),
                                                           ("info", "disk"), ("alarm", "net")) for i in (7, 17, 27))
    # In publish order, numbered, with increasing HLC times.
    seqs = [e[0] for e in every.events()]
    assert seqs == sorted(seqs) and len(set(seqs)) == 90
    hlcs = [e[2] for e in every.events()]
    assert hlcs == sorted(hlcs)
    assert elsewhere.events() == []  # node-local: n2's "loc" is another channel
    ch = channels(n1)[("loc", "local")]
    assert ch["published"] == 90 and ch["filtered"] == 60 + 81
    assert sorted(s["delivered"] for s in ch["subscribers"]) == [9, 30, 90]

    # Cluster-wide: two publishers on two nodes, subscribers on every node.
    mask = clients(n1, "cluster", "clu", "sub", "mask:01/01")  # odd first byte: 'a' (0x61), not 'b' (0x62)
    suffix_c = clients(n2, "cluster", "clu", "sub", "all", "suffix:9")
    all_c = clients(n3, "cluster", "clu", "sub")
    for c in (mask, suffix_c, all_c):
        assert subscribed(c)
    pa = clients(n1, "cluster", "clu", "pub", "100", "a,#")
    pb = clients(n2, "cluster", "clu", "pub", "100", "b,#")
    pa.done()
    pb.done()
    assert all(p[2] == "0" for p in pa.lines + pb.lines if p[0] == "PUB")
    wait_for(lambda: len(all_c.events()) == 200, timeout=20, what="n3 got all 200 cluster-wide events")
    wait_for(lambda: len(mask.events()) == 100 and len(suffix_c.events()) == 20, what="the filtered ones theirs")
    assert {e[4].split(",")[0] for e in mask.events()} == {"a"}
    for pub in ("n1/", "n2/"):
        mine = [e for e in all_c.events() if e[1].startswith(pub)]
        assert [e[0] for e in mine] == list(range(1, 101)), mine[:5]  # per publisher: in order, none missing
        assert [int(e[4].split(",")[1]) for e in mine] == list(range(100))
        assert [e[2] for e in mine] == sorted(e[2] for e in mine)

    # Retention: kept for a subscriber that comes later (through its filters); not without.
    clients(n2, "cluster", "clu", "pub", "5", "keep,#", "0", "60000").done()
    late = clients(n3, "cluster", "clu", "sub", "exact:keep")
    wait_for(lambda: len(late.events()) == 5, timeout=20, what="the late subscriber got the 5 retained events")
    assert [e[4] for e in late.events()] == [f"keep,{i}" for i in range(5)]
    late_local = clients(n1, "local", "loc", "sub")
    assert subscribed(late_local)
    assert late_local.events() == []  # those had no retention

    # An event past its retention behind an older one kept longer is no longer counted (nor sent).
    clients(n1, "local", "ret", "pub", "1", "long", "0", "60000").done()
    clients(n1, "local", "ret", "pub", "3", "short,#", "0", "3000").done()
    assert channels(n1)[("ret", "local")]["retained"] == 4  # 3 s: also under the sanitizers
    wait_for(lambda: channels(n1)[("ret", "local")]["retained"] == 1, timeout=15,
             what="the short ones dropped past their retention")
    late_ret = clients(n1, "local", "ret", "sub")
    wait_for(lambda: len(late_ret.events()) == 1, what="the late subscriber got the long one")
    assert [e[4] for e in late_ret.events()] == ["long"]


def test_slow_subscriber_and_node_killed(etcd, halod_factory, clients):
    hs, _ = start_nodes(halod_factory, YAML, etcd.endpoints, nodes=NODES)
    n1, n2, n3 = hs["n1"], hs["n2"], hs["n3"]

    # A subscriber that never reads: its events are dropped past a bound and
    # counted; the others get everything, halod and the publisher go on.
    stuck = clients(n2, "local", "flood", "sub", env={"EVTCLIENT_NO_READ": "1"})
    reader = clients(n2, "local", "flood", "sub")
    assert subscribed(stuck) and subscribed(reader)
    # In rounds of 40 (160 KB), each read by the reader before the next: a reader
    # slowed by a busy machine stays under the bound, the stuck one goes past it.
    for k in range(15):
        pub = clients(n2, "local", "flood", "pub", "40", "f#", "4000")
        pub.done()
        assert all(p[2] == "0" for p in pub.lines if p[0] == "PUB")
        wait_for(lambda k=k: len(reader.events()) == 40 * (k + 1), timeout=30, what="the reader got the round")
    subs = channels(n2)[("flood", "local")]["subscribers"]
    lost = sorted(s["lost"] for s in subs)
    assert lost[0] == 0 and lost[1] > 0, subs
    assert max(s["queued_bytes"] for s in subs) < 4 * 1024 * 1024  # bounded: never cut off
    assert stuck.proc.poll() is None and n2.proc.poll() is None

    # A publisher's node killed: what it published before (acknowledged) was
    # delivered, in order; the channel goes on from the other nodes.
    sub = clients(n3, "cluster", "k", "sub")
    assert subscribed(sub)
    doomed = clients(n1, "cluster", "k", "pub", "100000", "from-n1,#")
    wait_for(lambda: len(sub.events()) >= 50, timeout=20, what="n3 got events from n1")
    n1.kill_all()
    acked = [int(p[1]) for p in list(doomed.lines) if p[0] == "PUB" and p[2] == "0"]
    wait_for(lambda: len([e for e in sub.events() if e[1].startswith("n1/")]) >= len(acked), timeout=20,
             what="every acknowledged event of n1 delivered")
    got = [int(e[4].split(",")[1]) for e in sub.events() if e[1].startswith("n1/")]
    assert got[:len(acked)] == acked and got == list(range(len(got)))
    after = clients(n2, "cluster", "k", "pub", "10", "from-n2,#")
    after.done()
    wait_for(lambda: len([e for e in sub.events() if e[1].startswith("n2/")]) == 10, timeout=20,
             what="n3 got n2's events after n1 died")


def test_a_dead_nodes_events_are_kept_for_their_retention_then_deleted(etcd, halod_factory, clients):
    """The events of a node killed for good stay in the store as long as their retention (a later
    subscriber gets them), then the coordinator deletes them; the coordinator killed too, the next
    one deletes what it left."""
    hs, _ = start_nodes(halod_factory, YAML, etcd.endpoints, nodes=NODES)
    coord = wait_for(lambda: hs["n1"].status().get("coordinator"), timeout=20, what="a coordinator")
    b, a = [n for n in NODES if n != coord][:2]  # b dies first; a outlives the coordinator

    def keys(node):
        """{kind: count} of node's keys of channel "dead" in the store (kind: the first field)."""
        out = {}
        for v in etcd.get_prefix(f"/halo/ec/evt/dead/{node}/").values():
            kind = next(w for w in ("short", "long", "mid") if w in v)  # the pattern's bytes are in the value
            out[kind] = out.get(kind, 0) + 1
        return out

    def publish(who, n, field, retention):
        pub = clients(hs[who], "cluster", "dead", "pub", n, field, "0", retention)
        pub.done()
        assert all(p[2] == "0" for p in pub.lines if p[0] == "PUB")

    t0 = time.monotonic()
    publish(b, "3", "short,#", "3000")
    publish(b, "1", "long,#", "12000")
    assert keys(b) == {"short": 3, "long": 1}
    hs[b].kill_all()  # halod and its components, SIGKILL; it stays down

    # A subscriber that comes after b died, within the long retention, gets the long one.
    late = clients(hs[a], "cluster", "dead", "sub", "exact:long")
    wait_for(lambda: [e[4] for e in late.events()] == ["long,0"], timeout=10, what="the late subscriber's event")
    # The short ones go once their retention is over; the long one stays.
    wait_for(lambda: keys(b) == {"long": 1}, timeout=15, interval=0.1, what="b's short events deleted")
    assert time.monotonic() - t0 >= 3 - 0.5  # not before their retention (0.5 s: the clocks' grain)

    # The coordinator killed too: the next one (a) deletes what it left, each in its time.
    t1 = time.monotonic()
    publish(coord, "2", "mid,#", "5000")
    hs[coord].kill_all()
    wait_for(lambda: keys(coord) == {}, timeout=20, interval=0.1, what="the dead coordinator's events deleted")
    assert time.monotonic() - t1 >= 5 - 0.5
    # Past their retention nobody gets them, even while an older event with a longer one is kept.
    too_late = clients(hs[a], "cluster", "dead", "sub", "exact:mid")
    assert subscribed(too_late)
    clients(hs[a], "cluster", "dead", "pub", "1", "mid,marker").done()
    wait_for(lambda: too_late.events(), timeout=10, what="the marker")
    assert [e[4] for e in too_late.events()] == ["mid,marker"]
    wait_for(lambda: keys(b) == {}, timeout=20, interval=0.1, what="b's long event deleted")
    assert time.monotonic() - t0 >= 12 - 0.5
    assert hs[a].status().get("coordinator") == a
    # Past its retention nobody gets it: a new subscriber sees only what is published after it.
    after = clients(hs[a], "cluster", "dead", "sub", "exact:long")
    assert subscribed(after)
    clients(hs[a], "cluster", "dead", "pub", "1", "long,marker").done()
    wait_for(lambda: after.events(), timeout=10, what="the marker")
    assert [e[4] for e in after.events()] == ["long,marker"]


def test_subscriptions_given_again_after_a_halod_restart(halod_factory, clients, tmp_path):
    """A registered component's subscriptions follow it to the halod its link reconnects to."""
    log = str(tmp_path / "comp.log")
    h = halod_factory(f"""
cluster: ec1
service-groups:
  g:
    component:
      command: {TESTCOMP}
      env: {{TESTCOMP: "evt-sub=ch", TESTCOMP_LOG: "{log}"}}
    service-units: {{g-a: {{}}, g-b: {{}}}}
    service-instances: {{si: {{csis: {{c: {{}}}}}}}}
""").start()

    def got(comp):
        try:
            return [ln.split()[2] for ln in open(log) if ln.startswith(f"{comp} EVT ")]
        except FileNotFoundError:
            return []
    wait_for(lambda: open(log).read().count("EVT_SUB 0") == 2 if os.path.exists(log) else False, timeout=20,
             what="both components subscribed")
    clients(h, "local", "ch", "pub", "1", "x").done()
    wait_for(lambda: got("g-a") == ["n=0"], what="g-a got the event")
    pid = h.pid_of("g-a")
    h.remember_children()
    h.proc.kill()
    h.proc.wait()
    h.log.close()
    h.start()
    # Once it has registered again, its subscription is there too: retried until the new halod has it.
    wait_for(lambda: (clients(h, "local", "ch", "pub", "1", "x").done() and len(got("g-a")) >= 2), timeout=20,
             what="g-a got an event through the new halod")
    assert h.pid_of("g-a") == pid
