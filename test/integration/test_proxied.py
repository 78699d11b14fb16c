# SPDX-License-Identifier: MIT
"""Proxied components end to end: a 2N group of proxied components, each acted
for by a proxy (testcomp in its proxy mode) in a unit of its own; the proxy
instantiates and registers its proxied component and takes its CSI sets, and
the proxied SI fails over when the proxy of its ACTIVE dies."""
import os
import signal

from halo_harness import FAST_RESTART_HEAD, TESTCOMP, start_nodes, testcomp_events as events, wait_for
from rawlink import RawLink, register
from test_non_sa_aware import recorded
from test_reload import rewrite

HALO_EBADSTATE, HALO_ENOTREG, EPERM = 10001, 10002, 1


def proxied_yaml(log, nodes=None, modes_a="proxy", escalation=""):
    """Without nodes, one node; with nodes (two), the units ending in -a on the first, -b on the second.
    escalation: the groups' `escalation` (none: the default, every failure fails its unit over)."""
    head = FAST_RESTART_HEAD
    if nodes:
        head = head.replace("cluster: test\n", "cluster: test\nnodes: {" + ", ".join(f"{n}: {{}}" for n in nodes) + "}\n")
    where = {"a": f"node: {nodes[0]}" if nodes else "", "b": f"node: {nodes[1]}" if nodes else ""}
    on = {k: v + ", " if v else "" for k, v in where.items()}
    esc = f"    escalation: {escalation}\n" if escalation else ""
    return head + f"""  proxies:
    redundancy: no-redundancy
{esc}    component:
      command: {TESTCOMP}
      env: {{TESTCOMP_LOG: "{log}", TESTCOMP: proxy}}
    service-units:
      proxy-a: {{{on["a"]}component: {{env: {{TESTCOMP: "{modes_a}"}}}}}}
      proxy-b: {{{where["b"]}}}
    service-instances:
      proxy-1: {{csis: {{proxy-1: {{}}}}}}
      proxy-2: {{csis: {{proxy-2: {{}}}}}}
  px:
    redundancy: 2N
{esc}    component: {{type: proxied}}
    service-units:
      px-a: {{{on["a"]}component: {{proxy: proxy-a}}}}
      px-b: {{{on["b"]}component: {{proxy: proxy-b}}}}
    service-instances:
      px:
        csis:
          px-csi: {{}}
"""


def kinds(log, comp):
    return [e[1:] for e in events(log, comp)]


def test_the_proxy_instantiates_registers_and_takes_the_csis(halod_factory, tmp_path):
    log = tmp_path / "comp.log"
    h = halod_factory(proxied_yaml(log)).start()
    assert h.wait_assigned("px") == ("px-a", "px-b")
    for comp, role in (("px-a", "ACTIVE"), ("px-b", "STANDBY")):
        c = h.comp(comp)
        assert (c["type"], c["proxy"], c["presence"], c["registered"], c["pid"]) == \
            ("proxied", "proxy-" + comp[-1], "INSTANTIATED", True, None)
        # Instantiated (and registered: result 0) through its proxy, then its CSI set, in that order.
        ev = kinds(log, comp)
        assert ev[0] == ["PROXIED_INSTANTIATE", "0"], ev
        assert ev[1][:3] == ["CSI_SET", "px-csi", role], ev
    assert "proxied" in h.ctl("status").stdout
    assert "Component 'px-a' registered by its proxy 'proxy-a'" in h.logtext()
    assert h.stop() == 0
    # Stopping halod terminates each proxied component through its proxy, before the proxy.
    lines = [" ".join(e[:2]) for e in events(log)]
    for x in "ab":
        assert lines.index(f"px-{x} TERMINATE") < lines.index(f"proxy-{x} TERMINATE"), lines


def test_killing_the_active_sides_proxy_fails_the_proxied_si_over(halod_factory, tmp_path):
    log = tmp_path / "comp.log"
    h = halod_factory(proxied_yaml(log)).start()
    assert h.wait_assigned("px") == ("px-a", "px-b")
    victim, other = h.pid_of("proxy-a"), h.pid_of("proxy-b")
    os.kill(victim, signal.SIGKILL)
    # px-b's proxy takes px ACTIVE for it; px-a failed with its proxy ...
    wait_for(lambda: h.si("px")["active"] == "px-b", timeout=5, what="px-b ACTIVE")
    assert any(e[:3] == ["CSI_SET", "px-csi", "ACTIVE"] for e in kinds(log, "px-b"))
    assert h.su("px-a")["last_failure"] == "su-failover: component 'px-a' lost its proxy 'proxy-a'"
    # ... and comes back through the restarted proxy as the STANDBY.
    assert h.wait_assigned("px") == ("px-b", "px-a")
    assert h.pid_of("proxy-a") not in (None, victim) and h.pid_of("proxy-b") == other
    ev = kinds(log, "px-a")
    assert [e[0] for e in ev].count("PROXIED_INSTANTIATE") == 2, ev
    assert ev[-1][:3] == ["CSI_SET", "px-csi", "STANDBY"], ev
    assert h.stop() == 0


def test_an_operators_restart_of_a_proxied_component_goes_through_its_proxy(halod_factory, tmp_path):
    # haloctl restart is a restart in place (the maintenance operations): px-a's proxy terminates
    # it and instantiates it again, px-a gets px ACTIVE again, and nothing else moves.
    log = tmp_path / "comp.log"
    h = halod_factory(proxied_yaml(log)).start()
    assert h.wait_assigned("px") == ("px-a", "px-b")
    proxies = (h.pid_of("proxy-a"), h.pid_of("proxy-b"))
    assert h.ctl("restart", "px-a").returncode == 0
    wait_for(lambda: [e[0] for e in kinds(log, "px-a")].count("PROXIED_INSTANTIATE") == 2, what="px-a again")
    wait_for(lambda: [e[:3] for e in kinds(log, "px-a")].count(["CSI_SET", "px-csi", "ACTIVE"]) == 2,
             what="px-a ACTIVE again")
    ev = [e[0] for e in kinds(log, "px-a")]
    assert ev.index("TERMINATE") < len(ev) - 1 - ev[::-1].index("PROXIED_INSTANTIATE"), ev
    assert "PROXIED_CLEANUP" not in ev, ev  # a restart, not a failure
    assert h.wait_assigned("px") == ("px-a", "px-b")
    assert not any(e[:3] == ["CSI_SET", "px-csi", "ACTIVE"] for e in kinds(log, "px-b"))
    assert (h.pid_of("proxy-a"), h.pid_of("proxy-b")) == proxies
    assert h.su("px-a").get("last_failure") is None
    assert h.stop() == 0


def test_a_failed_proxied_component_restarts_in_place_through_its_proxy(halod_factory, tmp_path):
    # The ladder's component restart: its proxy cleans it up and instantiates it again, and it
    # gets px ACTIVE again; px-b stays the STANDBY and neither proxy restarts.
    log = tmp_path / "comp.log"
    yaml = proxied_yaml(log, modes_a="proxy,proxied-unregister,once",
                        escalation="{component-restart: {max: 3, probation: 1m}}")
    h = halod_factory(yaml).start()
    wait_for(lambda: ["UNREGISTER", "px-a", "0"] in kinds(log, "proxy-a"), what="px-a unregistered")
    proxies = (h.pid_of("proxy-a"), h.pid_of("proxy-b"))
    wait_for(lambda: [e[:3] for e in kinds(log, "px-a")].count(["CSI_SET", "px-csi", "ACTIVE"]) == 2,
             what="px-a ACTIVE again")
    ev = [e[0] for e in kinds(log, "px-a")]
    assert ev.count("PROXIED_INSTANTIATE") == 2 and ev.index("PROXIED_CLEANUP") < 3, ev
    assert h.su("px-a")["last_recovery"] == "component-restart 1/3: component 'px-a' was unregistered by its proxy"
    assert h.su("px-a").get("last_failure") is None
    assert h.wait_assigned("px") == ("px-a", "px-b")
    assert not any(e[:3] == ["CSI_SET", "px-csi", "ACTIVE"] for e in kinds(log, "px-b"))
    assert (h.pid_of("proxy-a"), h.pid_of("proxy-b")) == proxies
    assert h.stop() == 0


def test_a_proxy_restarting_in_place_instantiates_its_proxied_component_again(halod_factory, tmp_path):
    # The proxy's own component restart: px-a, lost with it, restarts in place too and is
    # instantiated by the new proxy process; px stays ACTIVE on px-a.
    log = tmp_path / "comp.log"
    h = halod_factory(proxied_yaml(log, escalation="{component-restart: {max: 3, probation: 1m}}")).start()
    assert h.wait_assigned("px") == ("px-a", "px-b")
    victim, other = h.pid_of("proxy-a"), h.pid_of("proxy-b")
    os.kill(victim, signal.SIGKILL)
    wait_for(lambda: [e[:3] for e in kinds(log, "px-a")].count(["CSI_SET", "px-csi", "ACTIVE"]) == 2,
             what="px-a ACTIVE again")
    assert h.pid_of("proxy-a") not in (None, victim) and h.pid_of("proxy-b") == other
    assert [e[0] for e in kinds(log, "px-a")].count("PROXIED_INSTANTIATE") == 2
    assert h.su("px-a")["last_recovery"] == "component-restart 1/3: component 'px-a' lost its proxy 'proxy-a'"
    assert h.wait_assigned("px") == ("px-a", "px-b")
    assert not any(e[:3] == ["CSI_SET", "px-csi", "ACTIVE"] for e in kinds(log, "px-b"))
    assert h.stop() == 0


def test_the_proxy_reports_an_error_of_its_proxied_component(halod_factory, tmp_path):
    log = tmp_path / "comp.log"
    h = halod_factory(proxied_yaml(log, modes_a="proxy,proxied-error-report")).start()
    proxies = (h.pid_of("proxy-a"), h.pid_of("proxy-b"))
    # px-a's proxy reports its error: px fails over, px-a is cleaned up and instantiated again.
    wait_for(lambda: h.su("px-a").get("last_failure") ==
             "su-failover: component 'px-a' reported an error (recommended recovery: su-failover)",
             what="px-a failed")
    # The proxy logs its report's answer once halo_error_report() returned: after halod acted on it.
    wait_for(lambda: ["ERROR_REPORT", "0"] in kinds(log, "proxy-a"), what="the proxy's report answered 0")
    assert h.wait_assigned("px") == ("px-b", "px-a")
    assert "PROXIED_CLEANUP" in [e[0] for e in kinds(log, "px-a")]
    assert h.su("px-b").get("last_failure") is None
    # Not the proxies: neither was restarted.
    assert (h.pid_of("proxy-a"), h.pid_of("proxy-b")) == proxies
    assert h.stop() == 0


def test_a_proxied_component_its_proxy_unregisters_has_failed(halod_factory, tmp_path):
    log = tmp_path / "comp.log"
    h = halod_factory(proxied_yaml(log, modes_a="proxy,proxied-unregister")).start()
    wait_for(lambda: h.su("px-a").get("last_failure") == "su-failover: component 'px-a' was unregistered by its proxy",
             what="px-a failed")
    assert ["UNREGISTER", "px-a", "0"] in kinds(log, "proxy-a")
    wait_for(lambda: h.si("px")["active"] == "px-b", what="px-b ACTIVE")
    assert h.wait_assigned("px") == ("px-b", "px-a")
    assert h.stop() == 0


def test_a_proxied_component_not_registered_in_time_has_failed(halod_factory, tmp_path):
    log = tmp_path / "comp.log"
    yaml = proxied_yaml(log, modes_a="proxy,proxy-no-register").replace(
        "component: {type: proxied}", "component: {type: proxied, timeouts: {instantiate: 300ms}}")
    h = halod_factory(yaml).start()
    wait_for(lambda: h.su("px-a").get("last_failure") ==
             "su-failover: component 'px-a' was not registered by its proxy within its instantiate timeout",
             what="px-a failed")
    assert ["PROXIED_INSTANTIATE", "0"] in kinds(log, "px-a")
    # px-b, whose proxy registers it, serves meanwhile.
    assert h.si("px")["active"] == "px-b" and h.comp("px-a")["registered"] is False
    assert h.stop() == 0


def test_only_its_proxy_registers_a_proxied_component(halod_factory, tmp_path):
    h = halod_factory(proxied_yaml(tmp_path / "comp.log")).start()
    assert h.wait_assigned("px") == ("px-a", "px-b")
    link = RawLink(h.socket)
    assert link.hello() == 0
    # Itself, without its proxy; through a proxy that is not its own; through its proxy,
    # but on a link its proxy is not registered on; a proxy for a component that is not proxied.
    for seq, (comp, proxy, error) in enumerate([("px-b", None, HALO_EBADSTATE), ("px-b", "proxy-a", EPERM),
                                                 ("px-b", "proxy-b", HALO_ENOTREG),
                                                 ("proxy-a", "proxy-b", HALO_EBADSTATE)], 1):
        link.send(register(comp, seq=seq, proxy=proxy))
        assert link.reply() == (seq, -error), (comp, proxy)
    link.close()
    # None of it changed anything.
    assert h.wait_assigned("px") == ("px-a", "px-b")
    assert h.comp("px-b")["registered"] and h.su("px-b").get("last_failure") is None
    assert "Component 'proxy-a' is not proxied; 'proxy-b' cannot register it as its proxy" in h.logtext()
    assert "'proxy-a' tried to register component 'px-b', whose proxy is 'proxy-b'; refused" in h.logtext()
    assert h.stop() == 0


def test_each_node_has_its_proxy_and_the_si_moves_to_the_other_node(etcd, halod_factory, tmp_path):
    """Two nodes over etcd, each unit of the 2N group and its proxy on one node."""
    log = tmp_path / "comp.log"
    hs, _ = start_nodes(halod_factory, proxied_yaml(log, nodes=("n1", "n2")), etcd.endpoints)
    for h in hs.values():
        assert h.wait_assigned("px", timeout=30) == ("px-a", "px-b")
    assert kinds(log, "px-b")[0] == ["PROXIED_INSTANTIATE", "0"]
    victim = hs["n1"].pid_of("proxy-a")
    os.kill(victim, signal.SIGKILL)
    # n2's proxy takes px ACTIVE for px-b; px-a comes back through n1's restarted proxy as STANDBY.
    for h in hs.values():
        wait_for(lambda: h.si("px")["active"] == "px-b", timeout=30, what="px-b ACTIVE")
        assert h.wait_assigned("px", timeout=30) == ("px-b", "px-a")
    assert kinds(log, "px-b")[-1][:3] == ["CSI_SET", "px-csi", "ACTIVE"]
    assert hs["n1"].pid_of("proxy-a") not in (None, victim)
    assert [e[0] for e in kinds(log, "px-a")].count("PROXIED_INSTANTIATE") == 2
    for h in hs.values():
        assert h.stop() == 0


def test_a_restarted_halod_adopts_the_proxied_components_with_their_assignments(halod_factory, tmp_path):
    """SIGKILL of halod alone: the proxies keep running, register again (libhalo reconnects) and register their
    proxied components again; the next halod takes them back with their roles, nothing instantiated again."""
    log = tmp_path / "comp.log"
    h = halod_factory(proxied_yaml(log)).start()
    assert h.wait_assigned("px") == ("px-a", "px-b")
    proxies = (h.pid_of("proxy-a"), h.pid_of("proxy-b"))
    before = {c: kinds(log, c) for c in ("px-a", "px-b")}
    wait_for(lambda: recorded(h, "px") == ("px-a", "px-b"), what="the roles recorded")
    h.remember_children()
    h.proc.kill()
    h.proc.wait()
    h.log.close()
    mark = len(h.logtext())
    h.start()
    wait_for(lambda: "Service unit 'px-a' adopted with its assignments" in h.logtext()[mark:] and
             "Service unit 'px-b' adopted with its assignments" in h.logtext()[mark:], timeout=15,
             what="both proxied units adopted")
    assert h.wait_assigned("px") == ("px-a", "px-b")
    assert (h.pid_of("proxy-a"), h.pid_of("proxy-b")) == proxies
    for comp in ("px-a", "px-b"):
        c = h.comp(comp)
        assert (c["presence"], c["registered"]) == ("INSTANTIATED", True), c
        # Not instantiated again, no CSI set again: what the proxy does for it goes on.
        assert kinds(log, comp) == before[comp], kinds(log, comp)
        assert h.su(comp).get("last_failure") is None
    status = h.ctl("status").stdout.splitlines()
    assert [line.split() for line in status if line.split()[:1] == ["px"]] == [["px", "FULLY-ASSIGNED", "px-a", "px-b"]]
    assert ["px-a", "local", "UNLOCKED", "ENABLED", "IN-SERVICE", "ACTIVE(px)"] in [line.split() for line in status]
    # Still a proxied unit like any other: its proxy's death fails the SI over.
    os.kill(proxies[0], signal.SIGKILL)
    wait_for(lambda: h.si("px")["active"] == "px-b", timeout=10, what="px-b ACTIVE")
    assert h.wait_assigned("px") == ("px-b", "px-a")
    assert h.stop() == 0


def reload_yaml(log, added="", proxy2=True):
    """Proxies proxy-a/p and proxy-b/p (a second one, proxy-a/p2, when proxy2) and a 2N group px of
    proxied px-a/m and px-b/m; added: px-a/n through proxy-a/p2 and px-b/n through proxy-b/p, taking
    CSI side."""
    pa = "p: {}" + (", p2: {csi-types: [none]}" if proxy2 else "")
    na = ", n: {proxy: proxy-a/p2, csi-types: [side]}" if added else ""
    nb = ", n: {proxy: proxy-b/p, csi-types: [side]}" if added else ""
    side = ", side: {type: side}" if added else ""
    return FAST_RESTART_HEAD + f"""  proxies:
    redundancy: no-redundancy
    component: {{command: {TESTCOMP}, env: {{TESTCOMP_LOG: "{log}", TESTCOMP: proxy}}, csi-types: [proxy]}}
    service-units:
      proxy-a: {{components: {{{pa}}}}}
      proxy-b: {{components: {{p: {{}}}}}}
    service-instances:
      proxy-1: {{csis: {{proxy-1: {{type: proxy}}}}}}
      proxy-2: {{csis: {{proxy-2: {{type: proxy}}}}}}
  px:
    redundancy: 2N
    component: {{type: proxied, csi-types: [main]}}
    service-units:
      px-a: {{components: {{m: {{proxy: proxy-a/p}}{na}}}}}
      px-b: {{components: {{m: {{proxy: proxy-b/p}}{nb}}}}}
    service-instances:
      px: {{csis: {{px-csi: {{type: main}}{side}}}}}
"""


def test_a_proxied_component_added_or_removed_by_a_reload_goes_through_its_proxy(halod_factory, tmp_path):
    """Added: its proxy is asked to instantiate it, registers it, and it gets its CSI with its unit's
    HA state; removed: its CSI removed, then terminated through its proxy.  The units keep their
    roles, nothing else restarts.  A proxy still acting for a component is not removed."""
    log = tmp_path / "comp.log"
    h = halod_factory(reload_yaml(log), log_level="info").start()
    assert h.wait_assigned("px") == ("px-a", "px-b")
    pids = {p: h.pid_of(p) for p in ("proxy-a/p", "proxy-a/p2", "proxy-b/p")}
    n = {c: len(events(log, c)) for c in ("px-a/m", "px-b/m")}

    rewrite(h, reload_yaml(log, added="n"))
    r = h.ctl("reload")
    assert "applied: 2 components added, 1 CSI added or removed" in r.stdout, r.stdout
    for comp, role in (("px-a/n", "ACTIVE"), ("px-b/n", "STANDBY")):
        wait_for(lambda: any(e[:2] == ["CSI_SET", "side"] for e in kinds(log, comp)), what=f"{comp}'s CSI set")
        ev = kinds(log, comp)
        assert ev[0] == ["PROXIED_INSTANTIATE", "0"] and ev[1][:3] == ["CSI_SET", "side", role], ev
        c = h.comp(comp)
        assert (c["type"], c["presence"], c["registered"]) == ("proxied", "INSTANTIATED", True)
    assert "Component 'px-a/n' registered by its proxy 'proxy-a/p2'" in h.logtext()
    assert h.wait_assigned("px") == ("px-a", "px-b") and h.si("px")["csis"] == ["px-csi", "side"]
    assert {p: h.pid_of(p) for p in pids} == pids and {c: len(events(log, c)) for c in n} == n

    # proxy-a/p2 acts for px-a/n: not removed, and the refusal names it.
    rewrite(h, reload_yaml(log, added="n", proxy2=False).replace("proxy: proxy-a/p2", "proxy: proxy-a/p"))
    r = h.ctl("reload", check=False)
    assert r.returncode == 5 and "'service-groups.proxies.service-units.proxy-a.components.p2' removed" \
        in r.stderr and "it is the proxy of component 'px-a/n'" in r.stderr, r.stderr

    m = {c: len(events(log, c)) for c in ("px-a/n", "px-b/n")}
    rewrite(h, reload_yaml(log))
    assert "applied: 2 components removed, 1 CSI added or removed" in h.ctl("reload").stdout
    wait_for(lambda: [c["name"] for c in h.su("px-a")["components"]] == ["px-a/m"]
             and [c["name"] for c in h.su("px-b")["components"]] == ["px-b/m"], what="px-a/n and px-b/n gone")
    for comp in ("px-a/n", "px-b/n"):
        assert [e[:2] for e in kinds(log, comp)[m[comp]:]] == [["CSI_REMOVE", "side"], ["TERMINATE"]], kinds(log, comp)
    assert "Component 'px-a/n' removed from service unit 'px-a'" in h.logtext()
    assert h.wait_assigned("px") == ("px-a", "px-b") and h.si("px")["csis"] == ["px-csi"]
    assert {p: h.pid_of(p) for p in pids} == pids and {c: len(events(log, c)) for c in n} == n

    # Now nobody uses proxy-a/p2: removed, its process stopped.
    rewrite(h, reload_yaml(log, proxy2=False))
    assert "applied: 1 component removed" in h.ctl("reload").stdout
    wait_for(lambda: [c["name"] for c in h.su("proxy-a")["components"]] == ["proxy-a/p"], what="proxy-a/p2 gone")
    assert h.pid_of("proxy-a/p") == pids["proxy-a/p"] and h.wait_assigned("px") == ("px-a", "px-b")
    assert h.stop() == 0


def test_a_unit_holding_a_proxy_in_use_is_not_removed_by_a_reload(halod_factory, tmp_path):
    """Unit proxy-c holds the proxy of px-a/n: removing the unit in the reload that removes px-a/n
    is refused, naming px-a/n (it would fail with its proxy); once px-a/n is gone, the unit goes."""
    log = tmp_path / "comp.log"
    proxy_c = "      proxy-c: {components: {p: {}}}\n"

    def text(n=True, c=True):
        t = reload_yaml(log, added="n" if n else "").replace("proxy: proxy-a/p2", "proxy: proxy-c/p")
        return t.replace("      proxy-b: {components: {p: {}}}\n", "      proxy-b: {components: {p: {}}}\n" + proxy_c) \
            if c else t
    h = halod_factory(text(), log_level="info").start()
    assert h.wait_assigned("px") == ("px-a", "px-b")
    wait_for(lambda: h.comp("px-a/n")["presence"] == "INSTANTIATED", what="px-a/n registered through proxy-c/p")

    rewrite(h, text(n=False, c=False))
    r = h.ctl("reload", check=False)
    assert r.returncode == 5 and "'service-groups.proxies.service-units.proxy-c' removed" in r.stderr and \
        "it holds the proxy of component 'px-a/n', which would fail with it" in r.stderr, r.stderr
    assert h.comp("px-a/n")["presence"] == "INSTANTIATED"

    rewrite(h, text(n=False))
    assert "applied: 2 components removed, 1 CSI added or removed" in h.ctl("reload").stdout
    wait_for(lambda: [c["name"] for c in h.su("px-a")["components"]] == ["px-a/m"], what="px-a/n gone")

    # Its proxy stopped: px-a/n is not added back (nothing would instantiate it).
    h.ctl("admin", "lock", "su:proxy-c")
    h.ctl("admin", "lock-instantiation", "su:proxy-c")
    wait_for(lambda: h.comp("proxy-c/p")["presence"] == "UNINSTANTIATED", what="proxy-c/p stopped")
    rewrite(h, text())
    r = h.ctl("reload", check=False)
    assert r.returncode == 5 and "'service-groups.px.service-units.px-a.components.n' added: it is proxied, and its " \
        "proxy is not registered" in r.stderr, r.stderr
    rewrite(h, text(n=False, c=False))
    assert "applied: 1 service unit removed" in h.ctl("reload").stdout
    wait_for(lambda: "Service unit 'proxy-c' removed" in h.logtext(), what="proxy-c removed")
    assert h.wait_assigned("px") == ("px-a", "px-b") and h.stop() == 0


def on_nodes(text):
    """reload_yaml()'s description with proxy-a and px-a on n1, proxy-b and px-b on n2."""
    for u, n in (("proxy-a", "n1"), ("px-a", "n1"), ("proxy-b", "n2"), ("px-b", "n2")):
        text = text.replace(f"      {u}: {{components:", f"      {u}: {{node: {n}, components:")
    return text.replace("cluster: test\n", "cluster: test\nnodes: {n1: {}, n2: {}}\n")


def test_proxied_components_added_and_removed_node_by_node(etcd, halod_factory, tmp_path):
    """Two nodes, each reloaded in turn: each node's proxy instantiates the component added to its
    node's unit, which gets its CSI with its unit's role; removed, its CSI remove and then its
    terminate go through the same proxy.  No role moves, no proxy restarts."""
    log = tmp_path / "comp.log"
    hs, _ = start_nodes(halod_factory, on_nodes(reload_yaml(log)), etcd.endpoints)
    for h in hs.values():
        assert h.wait_assigned("px", timeout=30) == ("px-a", "px-b")
    pids = {"proxy-a/p": hs["n1"].pid_of("proxy-a/p"), "proxy-b/p": hs["n2"].pid_of("proxy-b/p")}

    for h in hs.values():
        rewrite(h, on_nodes(reload_yaml(log, added="n")))
        assert "applied: 2 components added, 1 CSI added or removed" in h.ctl("reload").stdout
    for comp, role in (("px-a/n", "ACTIVE"), ("px-b/n", "STANDBY")):
        wait_for(lambda: any(e[:2] == ["CSI_SET", "side"] for e in kinds(log, comp)), timeout=30,
                 what=f"{comp}'s CSI set")
        ev = kinds(log, comp)
        assert ev[0] == ["PROXIED_INSTANTIATE", "0"] and ev[1][:3] == ["CSI_SET", "side", role], ev
    for h in hs.values():
        assert h.wait_assigned("px", timeout=30) == ("px-a", "px-b")
    assert {"proxy-a/p": hs["n1"].pid_of("proxy-a/p"), "proxy-b/p": hs["n2"].pid_of("proxy-b/p")} == pids

    m = {c: len(kinds(log, c)) for c in ("px-a/n", "px-b/n")}
    for h in hs.values():
        rewrite(h, on_nodes(reload_yaml(log)))
        assert "applied: 2 components removed, 1 CSI added or removed" in h.ctl("reload").stdout
    for comp in m:
        wait_for(lambda: [e[:2] for e in kinds(log, comp)[m[comp]:]] == [["CSI_REMOVE", "side"], ["TERMINATE"]],
                 timeout=30, what=f"{comp} removed through its proxy")
    for h in hs.values():
        assert h.wait_assigned("px", timeout=30) == ("px-a", "px-b") and h.si("px")["csis"] == ["px-csi"]
    assert {"proxy-a/p": hs["n1"].pid_of("proxy-a/p"), "proxy-b/p": hs["n2"].pid_of("proxy-b/p")} == pids
    for h in hs.values():
        assert h.stop() == 0
