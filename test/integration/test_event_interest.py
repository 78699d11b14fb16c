# SPDX-License-Identifier: MIT
"""Interest filters on the HA object-state notes (docs/events.md), on real
halods over a real etcd: a process that asked for some objects gets exactly
the notes about them, and is not woken for the others; one that asked for
nothing gets every note, as before."""
from halo_harness import TESTCOMP, free_port, start_nodes, wait_for
from test_events import notes, post


def yaml(log):
    def comp(modes):
        return f"{{component: {{env: {{TESTCOMP: \"{modes}\", TESTCOMP_LOG: \"{log}\"}}}}}}"
    return f"""
cluster: ei
nodes: {{n1: {{}}, n2: {{}}, n3: {{}}}}
defaults:
  component:
    command: {TESTCOMP}
    env: {{TESTCOMP: "object-states", TESTCOMP_LOG: "{log}"}}
    devices: [d]
service-groups:
  ga:
    service-units:
      ga-a: {{node: n1, {comp("object-states,interest=group")[1:-1]}}}
      ga-b: {{node: n2}}
    service-instances: {{sia: {{csis: {{ca: {{}}}}}}}}
  gb:
    service-units:
      gb-a: {{node: n1, {comp("object-states,interest=prefix:device:ga-+object:node:n3")[1:-1]}}}
      gb-b: {{node: n2, {comp("object-states,interest=pool")[1:-1]}}}
    service-instances: {{sib: {{csis: {{cb: {{}}}}}}}}
  gc:
    service-units:
      gc-a: {{node: n1, {comp("object-states,interest=none")[1:-1]}}}
      gc-b: {{node: n2, {comp("object-states,interest=object:nocolon")[1:-1]}}}
    service-instances: {{sic: {{csis: {{cc: {{}}}}}}}}
  gp:
    service-units:
      gp-a: {{node: n1, {comp("object-states,interest=bad")[1:-1]}}}
      gp-b: {{node: n2}}
    service-instances: {{sip: {{csis: {{cp: {{}}}}}}}}
pools:
  p: {{processes: [gb-b, gp-b]}}
"""


def objects(log, comp):
    return [o for o, _, _ in notes(log, comp)]


def wakeups(log, comp):
    return sum(1 for line in open(log) if line.startswith(f"{comp} NOTES "))


def test_filtered_notes(etcd, halod_factory, tmp_path):
    log = str(tmp_path / "comp.log")
    hs, http = start_nodes(halod_factory, yaml(log), etcd.endpoints)
    for si in ("sia", "sib", "sic", "sip"):
        wait_for(lambda si=si: hs["n1"].si(si)["active"], timeout=30, what=f"{si} assigned")
    # Bad rules are refused with EINVAL: no colon in an object, an unknown kind.
    want = ["gc-b INTEREST -22", "gp-a INTEREST -22"] + [f"{c} INTEREST 0" for c in ("ga-a", "gb-a", "gb-b", "gc-a")]
    wait_for(lambda: all(w in open(log).read() for w in want), timeout=20, what="every process set its rules")

    # Every process registered: gc-a (no rule: everything) hears of all of them.
    everyone = {f"process:{g}-{x}" for g in ("ga", "gb", "gc", "gp") for x in "ab"}
    wait_for(lambda: everyone <= set(objects(log, "gc-a")), timeout=30, what="gc-a told every process ONLINE")

    flips = ["device:ga-b:d", "device:gc-a:d", "device:gb-b:d", "device:gp-b:d", "device:gp-a:d"]
    for o in flips:
        assert post(http["n1"], {"object": o, "state": "TRANSIENT"})[0] == 202
    assert post(http["n2"], {"object": "node:n3", "state": "FAILED"})[0] == 202
    # gc-a gets everything, in order; once it has the last one every node has delivered them all.
    wait_for(lambda: set(flips) <= set(objects(log, "gc-a")) and "node:n3" in objects(log, "gc-a"), timeout=20,
             what="gc-a told of every event")
    wait_for(lambda: "node:n3" in objects(log, "gb-a") and "device:gp-b:d" in objects(log, "gb-b"), timeout=20,
             what="the filtered processes told")
    wait_for(lambda: "device:ga-b:d" in objects(log, "ga-a"), timeout=20, what="ga-a told of its peer's device")

    # GROUP: its own group's processes and devices, nothing else.
    assert set(objects(log, "ga-a")) <= {"process:ga-a", "process:ga-b", "device:ga-a:d", "device:ga-b:d"}, \
        objects(log, "ga-a")
    assert "process:ga-b" in objects(log, "ga-a")
    # PREFIX and OBJECT: device:ga-* and node:n3.
    assert set(objects(log, "gb-a")) == {"device:ga-b:d", "node:n3"}, objects(log, "gb-a")
    # POOL: the pool's processes (gb-b, gp-b) and their devices.
    assert set(objects(log, "gb-b")) <= {"process:gb-b", "process:gp-b", "device:gb-b:d", "device:gp-b:d"}
    assert {"device:gb-b:d", "device:gp-b:d"} <= set(objects(log, "gb-b")), objects(log, "gb-b")

    # Not woken for what it did not ask: 20 events on another group's device
    # reach gc-a, and not one wake-up of ga-a or gb-a.
    before = {c: wakeups(log, c) for c in ("ga-a", "gb-a")}
    for i in range(20):
        assert post(http["n2"], {"object": "device:gc-b:d", "state": "ONLINE" if i % 2 else "TRANSIENT"})[0] == 202
    wait_for(lambda: objects(log, "gc-a").count("device:gc-b:d") >= 20, timeout=20, what="gc-a told 20 times")
    # And one for ga afterwards, so that anything still in flight has arrived.
    assert post(http["n2"], {"object": "device:ga-a:d", "state": "TRANSIENT"})[0] == 202
    wait_for(lambda: "device:ga-a:d" in objects(log, "ga-a") and "device:ga-a:d" in objects(log, "gb-a"), timeout=20,
             what="ga-a and gb-a told of ga-a's device")
    assert wakeups(log, "ga-a") == before["ga-a"] + 1, (before, wakeups(log, "ga-a"))
    assert wakeups(log, "gb-a") == before["gb-a"] + 1
    assert "device:gc-b:d" not in objects(log, "ga-a") + objects(log, "gb-a")
    # In BQ order, each once.
    for c in ("ga-a", "gb-a", "gb-b", "gc-a"):
        seqs = [s for _, _, s in notes(log, c)]
        assert seqs == sorted(seqs) and len(seqs) == len(set(seqs)), (c, notes(log, c))


def test_rules_given_again_after_a_halod_restart(halod_factory, tmp_path):
    """libhalo gives the rules again, before registering, to the halod it
    reconnects to: the adopted process's snapshot and notes stay filtered."""
    log = str(tmp_path / "comp.log")
    port = free_port()
    text = f"""
cluster: ei1
defaults:
  component:
    command: {TESTCOMP}
    env: {{TESTCOMP: "object-states", TESTCOMP_LOG: "{log}"}}
    devices: [d]
service-groups:
  ga:
    component: {{env: {{TESTCOMP: "object-states,interest=group", TESTCOMP_LOG: "{log}"}}}}
    service-units: {{ga-a: {{}}, ga-b: {{}}}}
    service-instances: {{sia: {{csis: {{ca: {{}}}}}}}}
  gc:
    service-units: {{gc-a: {{}}, gc-b: {{}}}}
    service-instances: {{sic: {{csis: {{cc: {{}}}}}}}}
"""
    h = halod_factory(text, extra_args=["--http", f"127.0.0.1:{port}"]).start()
    wait_for(lambda: h.si("sia")["active"] and h.si("sic")["active"], timeout=20, what="SIs assigned")
    assert post(port, {"object": "device:ga-b:d", "state": "TRANSIENT"})[0] == 202
    wait_for(lambda: "device:ga-b:d" in objects(log, "ga-a"), what="ga-a told of its peer's device")
    pid = h.pid_of("ga-a")
    h.remember_children()
    h.proc.kill()
    h.proc.wait()
    h.log.close()
    h.start()

    def posted(ev):
        try:
            return post(port, ev)[0] == 202
        except OSError:  # its HTTP API is not up yet
            return False
    wait_for(lambda: posted({"object": "device:gc-a:d", "state": "TRANSIENT"}), what="the new halod took an event")
    assert post(port, {"object": "device:ga-b:d", "state": "ONLINE"})[0] == 202
    wait_for(lambda: ("device:ga-b:d", "ONLINE") in [(o, s) for o, s, _ in notes(log, "ga-a")], timeout=20,
             what="the adopted ga-a told of its peer's device again")
    assert h.pid_of("ga-a") == pid  # the same process, adopted: it reconnected
    # Its snapshot after the restart, and every note since, through its rules.
    assert set(objects(log, "ga-a")) <= {"process:ga-a", "process:ga-b", "device:ga-a:d", "device:ga-b:d"}, \
        objects(log, "ga-a")
