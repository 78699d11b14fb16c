# SPDX-License-Identifier: MIT
"""Reloading the description (SIGHUP, haloctl reload): a valid one is applied where it can be
applied live (a CSI's attributes, by a CSI set to its holders), anything else is refused as a
whole with every error, and the running description stays.  (issue 16, point 3)"""
import os
import re
import signal
import subprocess
import urllib.request

from halo_harness import HALOCTL, TESTCOMP, free_port, start_nodes, testcomp_events as events, wait_for


def yaml(log, port=7700, extra="", modes=""):
    return f"""
service-groups:
  g:
    component:
      command: {TESTCOMP}
      env: {{TESTCOMP_LOG: "{log}", TESTCOMP: "{modes}"}}
    service-units: {{a: {{}}, b: {{}}}}
    service-instances:
      s:
        csis:
          c: {{attributes: {{port: {port}, bind: 127.0.0.1}}}}
  other:
    component:
      command: {TESTCOMP}
      env: {{TESTCOMP_LOG: "{log}"}}
    service-units: {{x: {{}}, y: {{}}}}
    service-instances: {{t: {{csis: {{d: {{}}}}}}}}
{extra}"""


def rewrite(h, text):
    with open(h.config, "w") as f:
        f.write(text)


def pids(h):
    return {c: h.pid_of(c) for c in ("a", "b", "x", "y")}


def csi_sets(log, comp):
    return events(log, comp, "CSI_SET")


def started(halod_factory, tmp_path, extra_args=()):
    """A halod of yaml() with both groups assigned: (halod, log, active, standby, pids, CSI sets so far)."""
    log = str(tmp_path / "comp.log")
    h = halod_factory(yaml(log), log_level="info", extra_args=extra_args).start()
    active, standby = h.wait_assigned("s")
    h.wait_assigned("t")
    return h, log, active, standby, pids(h), {c: len(csi_sets(log, c)) for c in ("a", "b", "x", "y")}


def test_sighup_sends_changed_csi_attributes_to_their_holders(halod_factory, tmp_path):
    h, log, active, standby, before, sets = started(halod_factory, tmp_path)
    assert "port=7700" in csi_sets(log, active)[-1]

    rewrite(h, yaml(log, port=7701))
    h.proc.send_signal(signal.SIGHUP)
    wait_for(lambda: len(csi_sets(log, active)) > sets[active] and len(csi_sets(log, standby)) > sets[standby],
             what="the holders' CSI sets with the new attributes")
    last = csi_sets(log, active)[-1]
    assert last[2:5] == ["c", "ACTIVE", "transition=4"] and "port=7701" in last  # STILL_ACTIVE, same role
    last = csi_sets(log, standby)[-1]
    assert last[2:4] == ["c", "STANDBY"] and "port=7701" in last and f"active_comp={active}" in last
    assert h.wait_assigned("s") == (active, standby)
    assert pids(h) == before  # nobody restarted
    assert {c: len(csi_sets(log, c)) for c in ("x", "y")} == {c: sets[c] for c in ("x", "y")}  # the others untouched
    assert h.proc.poll() is None
    assert "Reloaded" in h.logtext() and "attributes of 1 CSI changed, 2 CSI sets sent" in h.logtext()
    assert "SIGHUP" in h.logtext() and "does not reload" not in h.logtext()
    assert h.status()["description"]["digest"] != ""

    # Nothing changed: nothing is sent.
    r = h.ctl("reload")
    assert r.returncode == 0 and "applied: no change" in r.stdout
    assert len(csi_sets(log, active)) == sets[active] + 1


def test_an_invalid_description_is_refused_with_its_errors(halod_factory, tmp_path):
    log = str(tmp_path / "comp.log")
    h = halod_factory(yaml(log), log_level="info").start()
    active, standby = h.wait_assigned("s")
    before, digest = pids(h), h.status()["description"]["digest"]
    n_sets = len(csi_sets(log, active))

    bad = yaml(log, port=7701).replace("bind: 127.0.0.1}}", "bind: 127.0.0.1}, atributes: {x: 1}}")
    rewrite(h, bad.replace("    service-units: {x: {}, y: {}}", "    redundancy: 3N\n    service-units: {x: {}, y: {}}"))
    r = h.ctl("reload", check=False)
    assert r.returncode == 5, r
    assert "reload refused" in r.stderr
    assert re.search(r"cluster\.yaml:\d+:\d+: unknown key 'atributes'", r.stderr), r.stderr
    assert re.search(r"cluster\.yaml:\d+:\d+: .*3N", r.stderr), r.stderr  # every error, not the first
    assert "Reload refused: 2 problems; the running description stays" in h.logtext()
    assert "unknown key 'atributes'" in h.logtext()

    h.proc.send_signal(signal.SIGHUP)  # the same by the signal: logged, halod carries on
    wait_for(lambda: h.logtext().count("Reload refused") == 2, what="the second refusal")
    assert h.proc.poll() is None
    assert pids(h) == before and h.wait_assigned("s") == (active, standby)
    assert len(csi_sets(log, active)) == n_sets  # the new port never reached anyone
    assert h.status()["description"]["digest"] == digest


NEW_GROUP = f"""  h:
    component: {{command: {TESTCOMP}, env: {{TESTCOMP_LOG: "@LOG@"}}}}
    service-units: {{p: {{}}, q: {{}}}}
    service-instances: {{u: {{csis: {{e: {{attributes: {{colour: blue}}}}}}}}}}
"""


def test_a_new_group_starts_and_the_others_run_on(halod_factory, tmp_path):
    h, log, active, standby, before, sets = started(halod_factory, tmp_path)

    rewrite(h, yaml(log, extra=NEW_GROUP.replace("@LOG@", log)))
    h.proc.send_signal(signal.SIGHUP)
    p, q = h.wait_assigned("u")
    assert (p, q) == ("p", "q")
    assert "blue" in " ".join(csi_sets(log, "p")[-1])
    assert [sg["name"] for sg in h.status()["service_groups"]] == ["g", "other", "h"]
    assert pids(h) == before  # the others neither restarted
    assert {c: len(csi_sets(log, c)) for c in sets} == sets  # nor told anything
    assert "Reloaded" in h.logtext() and ": 1 service group added (description" in h.logtext()

    # The new group's attributes and the old groups' change live afterwards too.
    rewrite(h, yaml(log, port=7702, extra=NEW_GROUP.replace("@LOG@", log).replace("blue", "red")))
    r = h.ctl("reload")
    assert "applied: attributes of 2 CSIs changed, 4 CSI sets sent" in r.stdout
    wait_for(lambda: "port=7702" in csi_sets(log, active)[-1] and "colour=red" in csi_sets(log, p)[-1],
             what="the new attributes in both groups")
    assert pids(h) == before and h.pid_of("p") and h.wait_assigned("u") == (p, q)
    assert h.stop() == 0  # the added group's components stop with the others


def test_a_removed_group_gives_up_its_sis_and_stops(halod_factory, tmp_path):
    http = free_port()
    h, log, active, standby, before, sets = started(halod_factory, tmp_path, ["--http", f"127.0.0.1:{http}"])
    x_active = h.si("t")["active"]
    text = yaml(log)
    rewrite(h, text[:text.index("  other:")])
    r = h.ctl("reload")
    assert "applied: 1 service group removed" in r.stdout
    wait_for(lambda: not any(os.path.exists(f"/proc/{before[c]}") for c in ("x", "y")), what="x and y gone")
    # As a lock would: the ACTIVE quiesced, the SI removed, then the processes terminated.
    assert [e[1:4] for e in events(log, x_active)][-3:] == [["CSI_SET", "d", "QUIESCED"], ["CSI_REMOVE", "d"],
                                                            ["TERMINATE"]]
    wait_for(lambda: [sg["name"] for sg in h.status()["service_groups"]] == ["g"], what="the group gone from status")
    assert "Service group 'other' removed" in h.logtext()
    assert h.ctl("admin", "unlock", "sg:other", check=False).returncode == 4  # no such object any more
    assert {c: h.pid_of(c) for c in ("a", "b")} == {c: before[c] for c in ("a", "b")}
    assert {c: len(csi_sets(log, c)) for c in ("a", "b")} == {c: sets[c] for c in ("a", "b")}

    # Back in the description: it starts again, new processes, its SI assigned; and so after a
    # restart (the store kept no lock of it).
    rewrite(h, text)
    assert "applied: 1 service group added" in h.ctl("reload").stdout
    h.wait_assigned("t")
    assert h.pid_of("x") != before["x"] and [sg["name"] for sg in h.status()["service_groups"]] == ["g", "other"]
    with urllib.request.urlopen(f"http://127.0.0.1:{http}/metrics", timeout=5) as r:
        metrics = r.read().decode()
    series = [l.split(" ")[0] for l in metrics.splitlines() if l and not l.startswith("#")]
    assert 'halo_su_restarts_total{su="x"}' in series and len(series) == len(set(series))  # the old 'x' is gone
    rewrite(h, text[:text.index("  other:")])
    assert "applied: 1 service group removed" in h.ctl("reload").stdout
    wait_for(lambda: [sg["name"] for sg in h.status()["service_groups"]] == ["g"], what="the group gone again")
    assert h.stop() == 0
    rewrite(h, text)
    h.start()
    h.wait_assigned("t")
    assert h.su("x")["admin"] == "UNLOCKED" and h.status()["service_groups"][1]["admin"] == "UNLOCKED"


def test_more_groups_than_halod_has_room_for_are_refused(halod_factory, tmp_path):
    """halod keeps room for 32 groups added by reloads: the 33rd refuses the reload, and
    nothing of it starts."""
    h, log, active, standby, before, sets = started(halod_factory, tmp_path)
    groups = "".join(f"  n{i:02}:\n    component: {{type: non-sa-aware, command: /bin/sleep, args: ['1000']}}\n"
                     f"    redundancy: no-redundancy\n    service-units: {{n{i:02}u: {{}}}}\n"
                     f"    service-instances: {{n{i:02}s: {{csis: {{n{i:02}c: {{}}}}}}}}\n" for i in range(33))
    rewrite(h, yaml(log, extra=groups))
    r = h.ctl("reload", check=False)
    assert r.returncode == 5 and r.stderr.count("than it has room for") == 1, r.stderr
    assert "'service-groups.n32' added: more service groups added since halod started" in r.stderr
    assert [sg["name"] for sg in h.status()["service_groups"]] == ["g", "other"] and pids(h) == before


def test_a_change_that_cannot_be_applied_live_refuses_the_whole_reload(halod_factory, tmp_path):
    log = str(tmp_path / "comp.log")
    h = halod_factory(yaml(log), log_level="info").start()
    active, _ = h.wait_assigned("s")
    before = pids(h)
    n_sets = len(csi_sets(log, active))
    # A group's redundancy model changed and a new CSI attribute together: refused as a whole, the
    # attribute too, with what to do instead.
    rewrite(h, yaml(log, port=7701).replace("    service-units: {x: {}, y: {}}",
                                            "    redundancy: N-way\n    service-units: {x: {}, y: {}}"))
    r = h.ctl("--json", "reload", check=False)
    assert r.returncode == 5
    assert re.search(r"cluster\.yaml:\d+:\d+: 'service-groups\.other\.redundancy' added: a group's redundancy "
                     r"model does not change live: remove the group in one reload and add it back in the next, or "
                     r"add it under a new name", r.stdout), r.stdout
    # A component's type: refused, saying how to do it.
    rewrite(h, yaml(log).replace(f"      command: {TESTCOMP}\n", f"      command: {TESTCOMP}\n      type: non-sa-aware\n", 1))
    r = h.ctl("reload", check=False)
    assert r.returncode == 5 and "'service-groups.g.component.type' added: component 'a': its type does not change " \
        "live: remove it from its unit (or its unit, when it is the only component) in one reload and add it back " \
        "in the next" in r.stderr, r.stderr
    assert pids(h) == before and len(csi_sets(log, active)) == n_sets
    assert [sg["name"] for sg in h.status()["service_groups"]] == ["g", "other"]
    assert [sg["redundancy"] for sg in h.status()["service_groups"]] == ["2N", "2N"]

    rewrite(h, yaml(log))  # back as it runs: nothing to do
    assert "applied: no change" in h.ctl("reload").stdout


def held_switchover(halod_factory, tmp_path):
    """A halod of yaml() whose switchover of s waits for the ACTIVE's quiescing (held until the file
    hold is removed): (halod, log, active, standby, hold, the haloctl switchover's process)."""
    log = str(tmp_path / "comp.log")
    h = halod_factory(yaml(log, modes="quiesce-hold"), log_level="info").start()
    active, standby = h.wait_assigned("s")
    hold = f"{log}.{active}.quiesce-hold"
    open(hold, "w").close()
    ctl = subprocess.Popen([HALOCTL, "-s", h.socket, "switchover", "s"], stdout=subprocess.PIPE,
                           stderr=subprocess.PIPE, text=True)
    wait_for(lambda: csi_sets(log, active)[-1][3] == "QUIESCING", what="the ACTIVE told QUIESCING")
    return h, log, active, standby, hold, ctl


def test_attributes_wait_until_their_si_is_steady(halod_factory, tmp_path):
    """A CSI set of new attributes never crosses a change of roles: while a switchover
    waits for the ACTIVE's quiescing, the reload is refused; once done, it goes through
    and the new ACTIVE gets the new attributes."""
    h, log, active, standby, hold, ctl = held_switchover(halod_factory, tmp_path)
    rewrite(h, yaml(log, port=7701, modes="quiesce-hold"))
    r = h.ctl("reload", check=False)
    assert r.returncode == 5
    assert "'service-groups.g.service-instances.s.csis.c.attributes.port' changed: its service instance is " \
           "changing its assignments; reload again later" in r.stderr, r.stderr
    assert not any("port=7701" in e for e in csi_sets(log, active) + csi_sets(log, standby))
    os.unlink(hold)
    out, err = ctl.communicate(timeout=20)
    assert ctl.returncode == 0, err
    assert h.wait_assigned("s") == (standby, active)
    n = len(csi_sets(log, standby))
    assert "applied: attributes of 1 CSI changed, 2 CSI sets sent" in h.ctl("reload").stdout
    wait_for(lambda: len(csi_sets(log, standby)) > n, what="the new ACTIVE's CSI set")
    assert csi_sets(log, standby)[-1][3] == "ACTIVE" and "port=7701" in csi_sets(log, standby)[-1]


def with_csi(text, line):
    """text with one more CSI line in s (after c)."""
    c = "          c: {attributes: {port: 7700, bind: 127.0.0.1}}\n"
    assert c in text
    return text.replace(c, c + line)


def test_a_csi_added_to_or_removed_from_an_si_goes_to_its_holders_alone(halod_factory, tmp_path):
    h, log, active, standby, before, sets = started(halod_factory, tmp_path)
    n = {c: len(events(log, c)) for c in ("a", "b", "x", "y")}

    rewrite(h, with_csi(yaml(log), "          c2: {attributes: {mode: fast}}\n"))
    r = h.ctl("reload")
    assert "applied: 1 CSI added or removed, 2 CSI sets or removes sent" in r.stdout, r.stdout
    wait_for(lambda: len(events(log, active)) > n[active] and len(events(log, standby)) > n[standby],
             what="the holders' CSI sets of c2")
    new = events(log, active)[n[active]:]
    assert [e[1:5] for e in new] == [["CSI_SET", "c2", "ACTIVE", "transition=1"]] and "mode=fast" in new[0]
    new = events(log, standby)[n[standby]:]
    assert [e[1:4] for e in new] == [["CSI_SET", "c2", "STANDBY"]] and f"active_comp={active}" in new[0]
    assert h.si("s")["csis"] == ["c", "c2"] and h.wait_assigned("s") == (active, standby)
    assert pids(h) == before  # nobody restarted
    assert {c: len(events(log, c)) for c in ("x", "y")} == {c: n[c] for c in ("x", "y")}  # the others untouched

    # c removed (c2 stays): a CSI remove of c to each holder, nothing else.
    n = {c: len(events(log, c)) for c in ("a", "b", "x", "y")}
    rewrite(h, with_csi(yaml(log), "          c2: {attributes: {mode: fast}}\n").replace(
        "          c: {attributes: {port: 7700, bind: 127.0.0.1}}\n", ""))
    assert "applied: 1 CSI added or removed, 2 CSI sets or removes sent" in h.ctl("reload").stdout
    wait_for(lambda: len(events(log, active)) > n[active] and len(events(log, standby)) > n[standby],
             what="the holders' CSI removes of c")
    assert [e[1:3] for e in events(log, active)[n[active]:]] == [["CSI_REMOVE", "c"]]
    assert [e[1:3] for e in events(log, standby)[n[standby]:]] == [["CSI_REMOVE", "c"]]
    assert h.si("s")["csis"] == ["c2"] and h.wait_assigned("s") == (active, standby)
    assert pids(h) == before
    assert {c: len(events(log, c)) for c in ("x", "y")} == {c: n[c] for c in ("x", "y")}

    # The roles move by the new description: the new ACTIVE is set c2 alone.
    n = len(csi_sets(log, standby))
    h.ctl("switchover", "s")
    assert h.wait_assigned("s") == (standby, active)
    assert {e[2] for e in csi_sets(log, standby)[n:]} == {"c2"}


def test_a_non_sa_aware_holder_is_not_told(halod_factory, tmp_path):
    """A non-SA-aware component reads its CSI's attributes when it starts: a reload
    changes the description and nothing else (its process runs on, no CSI set)."""
    def text(port):
        return f"""
service-groups:
  g:
    component: {{type: non-sa-aware, command: /bin/sleep, args: ["1000"]}}
    service-units: {{a: {{}}, b: {{}}}}
    service-instances: {{s: {{csis: {{c: {{attributes: {{port: {port}}}}}}}}}}}
"""
    h = halod_factory(text(7700), log_level="info").start()
    wait_for(lambda: h.si("s")["active"] and h.comp(h.si("s")["active"])["pid"], what="the ACTIVE running")
    active = h.si("s")["active"]
    pid = h.pid_of(active)
    rewrite(h, text(7701))
    assert "applied: attributes of 1 CSI changed, 0 CSI sets sent" in h.ctl("reload").stdout
    assert h.pid_of(active) == pid and h.si("s")["active"] == active



def test_a_csi_of_a_non_sa_aware_component_is_not_added_or_removed_live(halod_factory, tmp_path):
    """Its process is its assignment: it would start or stop.  Refused."""
    log = str(tmp_path / "comp.log")
    nsa = "{csi-types: [ty], type: non-sa-aware, command: /bin/sleep, args: ['1000']}"

    def text(sis):
        return f"""
service-groups:
  g:
    component: {{command: {TESTCOMP}, env: {{TESTCOMP_LOG: "{log}"}}, csi-types: [tx]}}
    service-units:
      a: {{components: {{x: {{}}, n: {nsa}}}}}
      b: {{components: {{x: {{}}, n: {nsa}}}}}
    service-instances: {{{sis}}}
"""
    h = halod_factory(text("s: {csis: {c: {type: tx}, d: {type: ty}}}, t: {csis: {e: {type: tx}}}"),
                      log_level="info").start()
    active, _ = h.wait_assigned("s")
    wait_for(lambda: h.pid_of(active + "/n"), what="the ACTIVE's non-SA-aware component running")
    before = {c: h.pid_of(c) for c in ("a/x", "b/x", "a/n", "b/n")}
    rewrite(h, text("s: {csis: {c: {type: tx}}}, t: {csis: {e: {type: tx}, d: {type: ty}}}"))  # d moves to t
    r = h.ctl("reload", check=False)
    assert r.returncode == 5
    assert "'service-groups.g.service-instances.s.csis.d' removed (line 8 of the running description): its " \
        "component is not SA-aware: cannot be applied live" in r.stderr, r.stderr
    assert re.search(r"cluster\.yaml:8:\d+: .service-groups\.g\.service-instances\.t\.csis\.d' added: its component "
                     r"is not SA-aware", r.stderr), r.stderr
    assert {c: h.pid_of(c) for c in before} == before and h.si("s")["csis"] == ["c", "d"]


def test_nodes_with_different_descriptions_are_named_in_status(etcd, halod_factory, tmp_path):
    log = str(tmp_path / "comp.log")
    def nodes_yaml(port):
        return "nodes: {n1: {}, n2: {}}\n" + yaml(log, port=port) \
            .replace("service-units: {a: {}, b: {}}", "service-units: {a: {node: n1}, b: {node: n2}}") \
            .replace("service-units: {x: {}, y: {}}", "service-units: {x: {node: n1}, y: {node: n2}}")
    text = nodes_yaml(7700)
    hs, _ = start_nodes(halod_factory, text, etcd.endpoints)
    for h in hs.values():
        wait_for(lambda: h.si("s")["active"] and h.si("s")["standby"], what="s assigned")
    assert not hs["n1"].status().get("warnings")

    rewrite(hs["n2"], nodes_yaml(7701))
    assert "applied" in hs["n2"].ctl("reload").stdout
    d1, d2 = hs["n1"].status()["description"]["digest"], hs["n2"].status()["description"]["digest"]
    assert d1 != d2
    want = f"description differs: n1 {d1[:12]}\u2026, n2 {d2[:12]}\u2026"
    for h in hs.values():
        wait_for(lambda: h.status().get("warnings", [None])[0] == want, what="the warning on " + h.config)
        assert f"WARNING: {want}" in h.ctl("status").stdout
        assert {n["name"]: n.get("description") for n in h.status()["nodes"]} == {"n1": d1, "n2": d2}

    rewrite(hs["n1"], nodes_yaml(7701))
    hs["n1"].proc.send_signal(signal.SIGHUP)
    for h in hs.values():
        wait_for(lambda: not h.status().get("warnings"), what="the warning gone on " + h.config)
        assert "WARNING" not in h.ctl("status").stdout


S2 = "      s2: {csis: {c2: {attributes: {mode: fast}}}}\n"


def with_si(text, line=S2):
    """text with one more SI in g (after s)."""
    c = "          c: {attributes: {port: 7700, bind: 127.0.0.1}}\n"
    assert c in text
    return text.replace(c, c + line)


def sis_of(h, sg="g"):
    return [si["name"] for g in h.status()["service_groups"] if g["name"] == sg for si in g["service_instances"]]


def test_an_si_added_to_a_running_group_is_assigned_and_nobody_else_is_told(halod_factory, tmp_path):
    h, log, active, standby, before, sets = started(halod_factory, tmp_path)
    n = {c: len(events(log, c)) for c in ("a", "b", "x", "y")}

    rewrite(h, with_si(yaml(log)))
    assert "applied: 1 service instance added" in h.ctl("reload").stdout
    assert h.wait_assigned("s2") == (active, standby)  # 2N: with the group's other SI
    assert sis_of(h) == ["s", "s2"] and h.si("s2")["csis"] == ["c2"]
    new = events(log, active)[n[active]:]
    assert [e[1:5] for e in new] == [["CSI_SET", "c2", "ACTIVE", "transition=1"]] and "mode=fast" in new[0]
    assert [e[1:4] for e in events(log, standby)[n[standby]:]] == [["CSI_SET", "c2", "STANDBY"]]
    assert pids(h) == before  # nobody restarted
    assert {c: len(events(log, c)) for c in ("x", "y")} == {c: n[c] for c in ("x", "y")}  # the other group untouched
    assert h.wait_assigned("s") == (active, standby)
    assert "Service instance 's2' added to service group 'g'" in h.logtext()

    # It moves with the group afterwards, as any SI of it.
    h.ctl("switchover", "s")
    assert h.wait_assigned("s") == (standby, active) and h.wait_assigned("s2") == (standby, active)


def metric_sis(port):
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5) as r:
        return set(re.findall(r'halo_si_generation\{si="([^"]+)"\}', r.read().decode()))


def test_a_removed_si_leaves_its_units_as_a_lock_does(halod_factory, tmp_path):
    http = free_port()
    h, log, active, standby, before, sets = started(halod_factory, tmp_path, ["--http", f"127.0.0.1:{http}"])
    text = with_si(yaml(log))
    rewrite(h, text)
    h.ctl("reload")
    h.wait_assigned("s2")
    assert metric_sis(http) == {"s", "s2", "t"}
    n = {c: len(events(log, c)) for c in ("a", "b", "x", "y")}

    rewrite(h, yaml(log))
    assert "applied: 1 service instance removed" in h.ctl("reload").stdout
    wait_for(lambda: len(events(log, standby)) > n[standby] and len(events(log, active)) > n[active] + 1,
             what="the CSI removes of c2")
    # As haloctl admin lock si:s2 would: the ACTIVE quiesced, then both removed; nothing else.
    assert [e[1:4] for e in events(log, active)[n[active]:]] == [["CSI_SET", "c2", "QUIESCED"], ["CSI_REMOVE", "c2"]]
    assert [e[1:3] for e in events(log, standby)[n[standby]:]] == [["CSI_REMOVE", "c2"]]
    wait_for(lambda: "Service instance 's2' removed" in h.logtext(), what="the removal logged")
    assert sis_of(h) == ["s"] and h.wait_assigned("s") == (active, standby)
    assert metric_sis(http) == {"s", "t"}
    assert h.ctl("admin", "lock", "si:s2", check=False).returncode == 4  # no such object any more
    assert pids(h) == before
    assert {c: len(events(log, c)) for c in ("x", "y")} == {c: n[c] for c in ("x", "y")}

    # Locked by the operator, then removed: the store forgets the lock.  Added back, it is assigned,
    # and so after halod is killed and restarted on the new file.
    rewrite(h, text)
    h.ctl("reload")
    h.wait_assigned("s2")
    h.ctl("admin", "lock", "si:s2")
    assert h.si("s2")["admin"] == "LOCKED"
    rewrite(h, yaml(log))
    assert "applied: 1 service instance removed" in h.ctl("reload").stdout
    rewrite(h, text)
    assert "applied: 1 service instance added" in h.ctl("reload").stdout
    assert h.wait_assigned("s2") == (active, standby) and h.si("s2")["admin"] == "UNLOCKED"
    h.remember_children()
    h.proc.kill()  # SIGKILL: the new halod reads the file on disk, which has s2
    h.proc.wait()
    h.start()
    assert h.wait_assigned("s2") == (active, standby) and h.wait_assigned("s") == (active, standby)
    assert sis_of(h) == ["s", "s2"] and h.si("s2")["admin"] == "UNLOCKED"
    assert pids(h) == before  # adopted, not restarted
    rewrite(h, yaml(log))
    assert "applied: 1 service instance removed" in h.ctl("reload").stdout
    wait_for(lambda: sis_of(h) == ["s"], what="s2 gone")
    assert h.stop() == 0


def reload_when_steady(h):
    """haloctl reload, again while it is refused only for a change under way; its output once applied."""
    def attempt():
        r = h.ctl("reload", check=False)
        assert r.returncode == 0 or "reload again later" in r.stderr, r.stderr
        return r.stdout if r.returncode == 0 else None
    return wait_for(attempt, timeout=10, interval=0.1, what="the reload applied")


def test_an_si_change_waits_until_its_group_is_steady(halod_factory, tmp_path):
    """An SI added or removed while an SI of its group changes roles is refused; once done, applied.
    An SI moved from one group to another in one reload is refused (its name is still taken)."""
    h, log, active, standby, hold, ctl = held_switchover(halod_factory, tmp_path)
    rewrite(h, with_si(yaml(log, modes="quiesce-hold")))
    r = h.ctl("reload", check=False)
    assert r.returncode == 5
    assert "'service-groups.g.service-instances.s2' added: its service group is changing its assignments; " \
           "reload again later" in r.stderr, r.stderr
    assert sis_of(h) == ["s"]
    os.unlink(hold)
    out, err = ctl.communicate(timeout=20)
    assert ctl.returncode == 0, err
    # The switchover answers once the new ACTIVE holds; the old one's STANDBY may still be on its way
    # (refused again, "reload again later"), as an operator would retry.
    assert "applied: 1 service instance added" in reload_when_steady(h)
    assert h.wait_assigned("s2") == (standby, active)

    # s2 moved to the other group in one reload: refused.
    text = with_si(yaml(log, modes="quiesce-hold"))
    moved = text.replace(S2, "").replace("{t: {csis: {d: {}}}}", "{t: {csis: {d: {}}}, s2: {csis: {c2: {}}}}")
    rewrite(h, moved)
    r = h.ctl("reload", check=False)
    assert r.returncode == 5 and "'service-groups.other.service-instances.s2' added: its name or a CSI's or " \
        "component's is still a running one's" in r.stderr, r.stderr
    assert sis_of(h) == ["s", "s2"]


def test_more_sis_than_a_group_has_room_for_are_refused(halod_factory, tmp_path):
    """A group keeps room for 16 SIs added by reloads: the 17th refuses the reload, and nothing of it
    is assigned."""
    h, log, active, standby, before, sets = started(halod_factory, tmp_path)
    sis = "".join(f"      n{i:02}: {{csis: {{n{i:02}c: {{}}}}}}\n" for i in range(17))
    rewrite(h, with_si(yaml(log), sis))
    r = h.ctl("reload", check=False)
    assert r.returncode == 5 and r.stderr.count("than it has room for") == 1, r.stderr
    assert "'service-groups.g.service-instances.n16' added: more service instances added to its group" in r.stderr
    assert sis_of(h) == ["s"] and pids(h) == before
    rewrite(h, with_si(yaml(log), sis.replace("      n16: {csis: {n16c: {}}}\n", "")))
    assert "applied: 16 service instances added" in h.ctl("reload").stdout
    wait_for(lambda: all(h.si(f"n{i:02}")["active"] for i in range(16)), what="the 16 SIs assigned")
    assert len(sis_of(h)) == 17 and pids(h) == before


def units_of(h, sg="g"):
    return [su["name"] for g in h.status()["service_groups"] if g["name"] == sg for su in g["service_units"]]


def test_a_unit_added_to_a_running_group_starts_and_takes_the_missing_standby(halod_factory, tmp_path):
    h, log, active, standby, before, sets = started(halod_factory, tmp_path)
    h.ctl("admin", "lock", f"su:{standby}")  # s has no STANDBY now
    wait_for(lambda: h.si("s")["standby"] is None, what="the STANDBY gone")
    n = {c: len(events(log, c)) for c in ("a", "b", "x", "y")}

    rewrite(h, yaml(log).replace("service-units: {a: {}, b: {}}", "service-units: {a: {}, b: {}, c: {}}"))
    assert "applied: 1 service unit added" in h.ctl("reload").stdout
    assert h.wait_assigned("s") == (active, "c")
    assert units_of(h) == ["a", "b", "c"] and h.pid_of("c")
    assert [e[1:4] for e in csi_sets(log, "c")] == [["CSI_SET", "c", "STANDBY"]]
    assert pids(h) == before  # nobody else restarted
    assert {c: len(events(log, c)) for c in n} == n  # nor told anything
    assert h.su(standby)["admin"] == "LOCKED"
    assert "Service unit 'c' added to service group 'g'" in h.logtext()
    h.ctl("switchover", "s")  # a unit of the group as any other
    assert h.wait_assigned("s") == ("c", active)
    assert h.stop() == 0


def test_a_removed_unit_hands_its_active_over_and_stops(halod_factory, tmp_path):
    log = str(tmp_path / "comp.log")
    units = "service-units: {a: {}, b: {}, c: {}}"
    text = yaml(log).replace("service-units: {a: {}, b: {}}", units)
    h = halod_factory(text, log_level="info").start()
    act, sb = h.wait_assigned("s")
    spare = ({"a", "b", "c"} - {act, sb}).pop()
    h.wait_assigned("t")
    before = {c: h.pid_of(c) for c in ("a", "b", "c", "x", "y")}
    n = {c: len(events(log, c)) for c in ("a", "b", "c", "x", "y")}
    rewrite(h, yaml(log).replace("service-units: {a: {}, b: {}}", units.replace(f"{act}: {{}}, ", "")
                                 .replace(f", {act}: {{}}", "")))
    assert "applied: 1 service unit removed" in h.ctl("reload").stdout
    wait_for(lambda: not os.path.exists(f"/proc/{before[act]}"), what="the ACTIVE unit's process gone")
    # As haloctl admin lock su:NAME, then lock-instantiation: quiesced, removed, terminated; the STANDBY
    # takes over, the spare becomes STANDBY.
    assert [e[1:4] for e in events(log, act)[n[act]:]] == [["CSI_SET", "c", "QUIESCED"], ["CSI_REMOVE", "c"],
                                                           ["TERMINATE"]]
    assert h.wait_assigned("s") == (sb, spare)
    assert [e[1:4] for e in events(log, sb)[n[sb]:]] == [["CSI_SET", "c", "ACTIVE"]]
    wait_for(lambda: f"Service unit '{act}' removed" in h.logtext(), what="the removal logged")
    assert units_of(h) == sorted([sb, spare])
    assert h.ctl("admin", "lock", f"su:{act}", check=False).returncode == 4  # no such object any more
    assert {c: h.pid_of(c) for c in (sb, spare, "x", "y")} == {c: before[c] for c in (sb, spare, "x", "y")}
    assert {c: len(events(log, c)) for c in ("x", "y")} == {c: n[c] for c in ("x", "y")}

    # Back in the description: a new process, which the model may use; and so after halod is killed
    # and restarted on the file.
    rewrite(h, text)
    assert "applied: 1 service unit added" in h.ctl("reload").stdout
    wait_for(lambda: h.comp(act)["pid"] and h.su(act)["readiness"] == "IN-SERVICE", what="it in service")
    assert h.pid_of(act) != before[act] and units_of(h) == sorted([sb, spare]) + [act]
    h.ctl("admin", "lock", f"su:{spare}")
    assert h.wait_assigned("s") == (sb, act)
    pid = h.pid_of(act)
    h.remember_children()
    h.proc.kill()
    h.proc.wait()
    h.start()
    assert h.wait_assigned("s") == (sb, act) and h.su(act)["admin"] == "UNLOCKED"
    assert h.pid_of(act) == pid and h.pid_of(sb) == before[sb]  # adopted, not restarted
    assert units_of(h) == ["a", "b", "c"] and h.su(spare)["admin"] == "LOCKED"
    assert h.stop() == 0


def test_a_unit_added_and_an_attribute_changed_in_one_reload(halod_factory, tmp_path):
    """Both applied (a reload with changes of several kinds; it crashed halod once)."""
    h, log, active, standby, before, sets = started(halod_factory, tmp_path)
    rewrite(h, yaml(log, port=7701).replace("{x: {}, y: {}}", "{x: {}, y: {}, z: {}}"))
    # Not while its group is locked: the new unit would escape the lock.
    h.ctl("admin", "lock", "sg:other")
    r = h.ctl("reload", check=False)
    assert r.returncode == 5 and "'service-groups.other.service-units.z' added: its service group or this node is " \
        "locked" in r.stderr, r.stderr
    h.ctl("admin", "unlock", "sg:other")
    h.wait_assigned("t")
    r = h.ctl("reload")
    assert "applied: 1 service unit added, attributes of 1 CSI changed, 2 CSI sets sent" in r.stdout, r.stdout
    wait_for(lambda: "port=7701" in csi_sets(log, active)[-1], what="the new attributes")
    wait_for(lambda: h.pid_of("z") and h.su("z")["readiness"] == "IN-SERVICE", what="z in service")
    assert pids(h) == before and units_of(h, "other") == ["x", "y", "z"]


def environ(pid):
    with open(f"/proc/{pid}/environ", "rb") as f:
        return f.read().decode(errors="replace").split("\0")


def test_a_component_whose_settings_changed_restarts_in_place_alone(halod_factory, tmp_path):
    log = str(tmp_path / "comp.log")

    def text(mode):
        return yaml(log).replace("service-units: {a: {}, b: {}}",
                                 f"service-units: {{a: {{component: {{env: {{MODE: {mode}}}}}}}, b: {{}}}}")
    h = halod_factory(text("one"), log_level="info").start()
    h.wait_assigned("s")
    h.wait_assigned("t")
    role = "ACTIVE" if h.si("s")["active"] == "a" else "STANDBY"
    placement = (h.si("s")["active"], h.si("s")["standby"])
    before = pids(h)
    assert "MODE=one" in environ(before["a"])
    n = {c: len(events(log, c)) for c in ("a", "b", "x", "y")}

    rewrite(h, text("two"))
    assert "applied: components' settings changed (1 restarted in place)" in h.ctl("reload").stdout
    wait_for(lambda: h.pid_of("a") not in (None, 0, before["a"]) and h.comp("a")["presence"] == "INSTANTIATED",
             what="a's new process registered")
    assert h.wait_assigned("s") == placement  # the roles stayed where they were
    new = h.pid_of("a")
    assert "MODE=two" in environ(new) and not os.path.exists(f"/proc/{before['a']}")
    # The old process was terminated; the new one got its CSI with the same HA state.
    wait_for(lambda: any(e[1] == "CSI_SET" for e in events(log, "a")[n["a"]:]), what="a's CSI set")
    kinds = [e[1:4] for e in events(log, "a")[n["a"]:]]
    assert kinds[0] == ["TERMINATE"] and ["CSI_SET", "c", role] in kinds, kinds
    assert {c: h.pid_of(c) for c in ("b", "x", "y")} == {c: before[c] for c in ("b", "x", "y")}
    assert {c: len(events(log, c)) for c in ("b", "x", "y")} == {c: n[c] for c in ("b", "x", "y")}

    # halod killed and restarted on the new file: it adopts the new process, roles as they were.
    h.remember_children()
    h.proc.kill()
    h.proc.wait()
    h.start()
    assert h.wait_assigned("s") == placement and h.pid_of("a") == new and h.pid_of("b") == before["b"]
    assert h.stop() == 0


def test_a_non_sa_aware_component_restarts_only_where_it_runs(halod_factory, tmp_path):
    """It runs while its unit is ACTIVE: that process is stopped and started with the new settings,
    the unit stays ACTIVE; the STANDBY's runs nothing, and takes them when it next starts."""
    def text(arg):
        return f"""
service-groups:
  g:
    component: {{type: non-sa-aware, command: /bin/sleep, args: ["{arg}"]}}
    service-units: {{a: {{}}, b: {{}}}}
    service-instances: {{s: {{csis: {{c: {{}}}}}}}}
"""
    h = halod_factory(text("1000"), log_level="info").start()
    wait_for(lambda: h.si("s")["active"] and h.si("s")["standby"] and h.pid_of(h.si("s")["active"]),
             what="the ACTIVE running")
    active, standby = h.si("s")["active"], h.si("s")["standby"]
    pid = h.pid_of(active)
    rewrite(h, text("2000"))
    assert "applied: components' settings changed (1 restarted in place)" in h.ctl("reload").stdout
    wait_for(lambda: h.pid_of(active) not in (None, 0, pid), what="the ACTIVE's new process")
    with open(f"/proc/{h.pid_of(active)}/cmdline", "rb") as f:
        assert f.read().split(b"\0")[1] == b"2000"
    assert (h.si("s")["active"], h.si("s")["standby"]) == (active, standby) and not h.pid_of(standby)
    h.ctl("switchover", "s")
    wait_for(lambda: h.si("s")["active"] == standby and h.pid_of(standby), what="the new ACTIVE running")
    with open(f"/proc/{h.pid_of(standby)}/cmdline", "rb") as f:
        assert f.read().split(b"\0")[1] == b"2000"
    assert h.stop() == 0


def test_a_component_change_waits_until_its_unit_is_steady(halod_factory, tmp_path):
    h, log, active, standby, hold, ctl = held_switchover(halod_factory, tmp_path)
    pid = h.pid_of(active)
    rewrite(h, yaml(log, modes="quiesce-hold").replace("      command: ", "      timeouts: {csi-set: 4s}\n"
                                                       "      command: ", 1))
    r = h.ctl("reload", check=False)
    assert r.returncode == 5 and "'service-groups.g.component.timeouts' added: a component it changes is " \
        "starting or stopping, or its unit is changing its roles; reload again later" in r.stderr, r.stderr
    os.unlink(hold)
    out, err = ctl.communicate(timeout=20)
    assert ctl.returncode == 0, err
    assert h.pid_of(active) == pid
    # haloctl switchover answers as the old ACTIVE is sent STANDBY: steady once that is confirmed.
    assert h.wait_assigned("s") == (standby, active)
    assert "applied: components' settings changed (2 restarted in place)" in h.ctl("reload").stdout
    wait_for(lambda: h.pid_of(active) not in (None, 0, pid) and h.comp(active)["presence"] == "INSTANTIATED",
             what="the new process")
    assert h.wait_assigned("s") == (standby, active)


def test_an_si_added_and_a_component_changed_in_one_reload(halod_factory, tmp_path):
    """Refused in one group (the model would assign the SI while the components restart); applied in
    two reloads."""
    h, log, active, standby, before, sets = started(halod_factory, tmp_path)
    timeouts = yaml(log).replace(f"      command: {TESTCOMP}\n", f"      command: {TESTCOMP}\n"
                                 "      timeouts: {csi-set: 4s}\n", 1)
    rewrite(h, with_si(timeouts))
    r = h.ctl("reload", check=False)
    assert r.returncode == 5 and "'service-groups.g.component.timeouts' added: its group's SIs or units are added or " \
        "removed by the same reload" in r.stderr, r.stderr
    assert sis_of(h) == ["s"] and pids(h) == before
    rewrite(h, timeouts)
    assert "applied: components' settings changed (2 restarted in place)" in h.ctl("reload").stdout
    wait_for(lambda: all(h.pid_of(c) not in (None, 0, before[c]) and h.comp(c)["presence"] == "INSTANTIATED"
                         for c in (active, standby)), what="both restarted")
    assert h.wait_assigned("s") == (active, standby)
    rewrite(h, with_si(timeouts))
    assert "applied: 1 service instance added" in h.ctl("reload").stdout
    assert h.wait_assigned("s2") == (active, standby)
    assert {c: h.pid_of(c) for c in ("x", "y")} == {c: before[c] for c in ("x", "y")}


def test_a_component_added_to_a_running_unit_starts_and_its_unit_keeps_its_roles(halod_factory, tmp_path):
    log = str(tmp_path / "comp.log")

    def text(a_comps):
        return f"""
service-groups:
  g:
    component: {{command: {TESTCOMP}, env: {{TESTCOMP_LOG: "{log}"}}, csi-types: [main]}}
    service-units:
      a: {{components: {{{a_comps}}}}}
      b: {{components: {{b1: {{}}}}}}
    service-instances: {{s: {{csis: {{c: {{type: main}}}}}}}}
"""
    h = halod_factory(text("a1: {}"), log_level="info").start()
    placement = h.wait_assigned("s")
    before = {c: h.pid_of(c) for c in ("a/a1", "b/b1")}
    n = {c: len(events(log, c)) for c in ("a/a1", "b/b1")}
    assert all(n.values())  # their CSI sets, logged under their names

    # One that would take c from a1 (listed first with its type): refused.
    rewrite(h, text("a0: {}, a1: {}"))
    r = h.ctl("reload", check=False)
    assert r.returncode == 5 and "'service-groups.g.service-units.a.components.a0' added: it would take a CSI of its " \
        "group's SIs from another component" in r.stderr, r.stderr

    rewrite(h, text("a1: {}, a2: {csi-types: [side]}"))
    assert "applied: 1 component added" in h.ctl("reload").stdout
    wait_for(lambda: h.pid_of("a/a2") and h.comp("a/a2")["presence"] == "INSTANTIATED", what="a/a2 registered")
    assert h.wait_assigned("s") == placement  # a kept its role meanwhile
    assert {c: h.pid_of(c) for c in before} == before and {c: len(events(log, c)) for c in n} == n
    assert events(log, "a/a2") and not any(e[1] == "CSI_SET" for e in events(log, "a/a2"))  # it takes no CSI
    assert [c["name"] for c in h.su("a")["components"]] == ["a/a1", "a/a2"]

    # Removed again (it takes no CSI): stopped alone; added back, a new process.
    a2 = h.pid_of("a/a2")
    rewrite(h, text("a1: {}"))
    assert "applied: 1 component removed" in h.ctl("reload").stdout
    wait_for(lambda: [c["name"] for c in h.su("a")["components"]] == ["a/a1"], what="a/a2 removed")
    assert gone(a2) and events(log, "a/a2")[-1][1] == "TERMINATE"
    assert h.wait_assigned("s") == placement and {c: h.pid_of(c) for c in before} == before
    rewrite(h, text("a1: {}, a2: {csi-types: [side]}"))
    assert "applied: 1 component added" in h.ctl("reload").stdout
    wait_for(lambda: h.pid_of("a/a2") and h.comp("a/a2")["presence"] == "INSTANTIATED", what="a/a2 back")
    assert h.pid_of("a/a2") != a2

    # Killed and restarted, halod adopts it.
    a2 = h.pid_of("a/a2")
    h.remember_children()
    h.proc.kill()
    h.proc.wait()
    h.start()
    assert h.wait_assigned("s") == placement
    assert h.pid_of("a/a2") == a2 and {c: h.pid_of(c) for c in before} == before
    assert h.stop() == 0


def comps_yaml(log, units, sis, modes=""):
    """A 2N group g of units a, b, c (their components given; one is a spare: no role) and SIs sis."""
    return f"""
service-groups:
  g:
    component: {{command: {TESTCOMP}, env: {{TESTCOMP_LOG: "{log}", TESTCOMP: "{modes}"}}, csi-types: [main]}}
    service-units:
{units}    service-instances: {{{sis}}}
"""


def unit_lines(comps):
    return "".join(f"      {u}: {{components: {{{comps.replace('@', u)}}}}}\n" for u in ("a", "b", "c"))


def gone(p):
    return not os.path.exists(f"/proc/{p}") or open(f"/proc/{p}/stat").read().split(")")[-1].split()[0] == "Z"


def test_a_component_removed_from_a_running_unit_stops_alone(halod_factory, tmp_path):
    """Removed with the CSI it takes: the ACTIVE's and the STANDBY's get the CSI remove, then
    terminate; the spare's gets terminate alone.  Every unit keeps its role, nobody else is told,
    and status no longer lists it; added back, it starts as a new component."""
    log = str(tmp_path / "comp.log")
    both = comps_yaml(log, unit_lines("@1: {}, @2: {csi-types: [side]}"), "s: {csis: {c: {type: main}, d: {type: side}}}")
    h = halod_factory(both, log_level="info").start()
    placement = h.wait_assigned("s")
    wait_for(lambda: all(h.comp(f"{u}/{u}2")["presence"] == "INSTANTIATED" for u in "abc"), what="all running")
    spare = ({"a", "b", "c"} - set(placement)).pop()  # c, unless it registered before b
    firsts = {u: h.pid_of(f"{u}/{u}1") for u in "abc"}
    seconds = {u: h.pid_of(f"{u}/{u}2") for u in "abc"}
    n = {c: len(events(log, c)) for c in ("a/a1", "b/b1", "c/c1")}
    wait_for(lambda: all(any(e[1:3] == ["CSI_SET", "d"] for e in events(log, f"{u}/{u}2")) for u in placement),
             what="d set to the holders' second components")

    # d stays: no other component of the units takes its type (the description's own check).
    only_c = comps_yaml(log, unit_lines("@1: {}"), "s: {csis: {c: {type: main}}}")
    rewrite(h, comps_yaml(log, unit_lines("@1: {}"), "s: {csis: {c: {type: main}, d: {type: side}}}"))
    r = h.ctl("reload", check=False)
    assert r.returncode == 5 and "no component of service unit 'a' takes type 'side'" in r.stderr, r.stderr
    assert {u: h.pid_of(f"{u}/{u}2") for u in "abc"} == seconds

    m = {u: len(events(log, f"{u}/{u}2")) for u in "abc"}
    rewrite(h, only_c)
    r = h.ctl("reload")
    assert "applied: 3 components removed, 1 CSI added or removed, 2 CSI sets or removes sent" in r.stdout, r.stdout
    wait_for(lambda: all(gone(p) for p in seconds.values()), what="the three processes gone")
    wait_for(lambda: [c["name"] for c in h.su("a")["components"]] == ["a/a1"], what="a/a2 gone from status")
    for u in placement:
        assert [e[1:3] for e in events(log, f"{u}/{u}2")[m[u]:]] == [["CSI_REMOVE", "d"], ["TERMINATE"]]
    assert [e[1:2] for e in events(log, f"{spare}/{spare}2")[m[spare]:]] == [["TERMINATE"]]
    assert all([c["name"] for c in h.su(u)["components"]] == [f"{u}/{u}1"] for u in "abc")
    assert h.wait_assigned("s") == placement and h.si("s")["csis"] == ["c"]
    assert {u: h.pid_of(f"{u}/{u}1") for u in "abc"} == firsts
    assert {c: len(events(log, c)) for c in n} == n  # nobody else told anything
    assert all(h.su(u)["readiness"] == "IN-SERVICE" for u in "abc")
    assert "Component 'a/a2' removed from service unit 'a'" in h.logtext()

    # Added back: a new process, a new component.
    rewrite(h, comps_yaml(log, unit_lines("@1: {}") .replace("a: {components: {a1: {}}}",
                                                              "a: {components: {a1: {}, a2: {csi-types: [side]}}}"),
                          "s: {csis: {c: {type: main}}}"))
    assert "applied: 1 component added" in h.ctl("reload").stdout
    wait_for(lambda: h.pid_of("a/a2") and h.comp("a/a2")["presence"] == "INSTANTIATED", what="a/a2 back")
    assert h.pid_of("a/a2") != seconds["a"] and h.comp("a/a2")["instantiations"] == 1
    assert h.wait_assigned("s") == placement and h.stop() == 0



def test_components_added_with_their_csis_take_them_with_their_units_roles(halod_factory, tmp_path):
    """A non-SA-aware component added with the CSI it takes runs where its unit is ACTIVE (its CSI
    set starts it), not on the STANDBY, and moves with the role; an SA-aware one added with its
    CSI gets the CSI set with its unit's HA state once it registers.  Nobody else restarts."""
    log = str(tmp_path / "comp.log")
    nsa = "{type: non-sa-aware, command: /bin/sleep, args: ['1000'], csi-types: [side]}"
    h = halod_factory(comps_yaml(log, unit_lines("@1: {}"), "s: {csis: {c: {type: main}}}"), log_level="info").start()
    active, standby = h.wait_assigned("s")
    spare = ({"a", "b", "c"} - {active, standby}).pop()
    firsts = {u: h.pid_of(f"{u}/{u}1") for u in "abc"}
    n = {u: len(events(log, f"{u}/{u}1")) for u in "abc"}

    rewrite(h, comps_yaml(log, unit_lines(f"@1: {{}}, @n: {nsa}"), "s: {csis: {c: {type: main}, d: {type: side}}}"))
    r = h.ctl("reload")
    # The STANDBY's CSI set too, which halod answers at once (nothing runs there).
    assert "applied: 3 components added, 1 CSI added or removed, 2 CSI sets or removes sent" in r.stdout, r.stdout
    wait_for(lambda: h.pid_of(f"{active}/{active}n"), what="the ACTIVE's non-SA-aware component running")
    assert not h.pid_of(f"{standby}/{standby}n") and not h.pid_of(f"{spare}/{spare}n")
    assert h.wait_assigned("s") == (active, standby) and h.si("s")["csis"] == ["c", "d"]
    assert {u: h.pid_of(f"{u}/{u}1") for u in "abc"} == firsts
    assert {u: len(events(log, f"{u}/{u}1")) for u in "abc"} == n

    h.ctl("switchover", "s")
    wait_for(lambda: h.si("s")["active"] == standby and h.pid_of(f"{standby}/{standby}n")
             and not h.pid_of(f"{active}/{active}n"), what="the non-SA-aware process moved with the role")
    active, standby = standby, active
    h.wait_assigned("s")

    n = {u: len(events(log, f"{u}/{u}1")) for u in "abc"}
    sa = "{csi-types: [third]}"
    rewrite(h, comps_yaml(log, unit_lines(f"@1: {{}}, @n: {nsa}, @z: {sa}"),
                          "s: {csis: {c: {type: main}, d: {type: side}, e: {type: third, attributes: {k: v}}}}"))
    r = h.ctl("reload")
    assert "applied: 3 components added, 1 CSI added or removed, 0 CSI sets or removes sent" in r.stdout, r.stdout
    for u, role in ((active, "ACTIVE"), (standby, "STANDBY")):
        wait_for(lambda: any(e[1:3] == ["CSI_SET", "e"] for e in events(log, f"{u}/{u}z")), what=f"{u}/{u}z's CSI set")
        assert [e[1:4] for e in events(log, f"{u}/{u}z") if e[1] == "CSI_SET"] == [["CSI_SET", "e", role]]
    wait_for(lambda: h.comp(f"{spare}/{spare}z")["presence"] == "INSTANTIATED", what="the spare's new component")
    assert not any(e[1] == "CSI_SET" for e in events(log, f"{spare}/{spare}z"))
    assert h.wait_assigned("s") == (active, standby)
    assert {u: h.pid_of(f"{u}/{u}1") for u in "abc"} == firsts
    assert {u: len(events(log, f"{u}/{u}1")) for u in "abc"} == n

    # The non-SA-aware ones removed with their CSI: the ACTIVE's process stops (its CSI remove), the
    # roles stay, and nobody else is told.
    nsa_pid = h.pid_of(f"{active}/{active}n")
    zs = {u: (h.pid_of(f"{u}/{u}z"), len(events(log, f"{u}/{u}z"))) for u in "abc"}
    rewrite(h, comps_yaml(log, unit_lines(f"@1: {{}}, @z: {sa}"),
                          "s: {csis: {c: {type: main}, e: {type: third, attributes: {k: v}}}}"))
    r = h.ctl("reload")
    assert "applied: 3 components removed, 1 CSI added or removed, 2 CSI sets or removes sent" in r.stdout, r.stdout
    wait_for(lambda: gone(nsa_pid), what="the ACTIVE's non-SA-aware process stopped")
    wait_for(lambda: all([c["name"] for c in h.su(u)["components"]] == [f"{u}/{u}1", f"{u}/{u}z"] for u in "abc"),
             what="the non-SA-aware components gone from status")
    assert h.wait_assigned("s") == (active, standby) and h.si("s")["csis"] == ["c", "e"]
    assert {u: (h.pid_of(f"{u}/{u}z"), len(events(log, f"{u}/{u}z"))) for u in "abc"} == zs
    assert {u: h.pid_of(f"{u}/{u}1") for u in "abc"} == firsts
    assert {u: len(events(log, f"{u}/{u}1")) for u in "abc"} == n
    assert h.stop() == 0


def test_a_defaults_change_restarts_the_components_whose_resolved_settings_differ(halod_factory, tmp_path):
    log = str(tmp_path / "comp.log")
    h = halod_factory("defaults: {component: {env: {MODE: one}}}\n" + yaml(log), log_level="info").start()
    placement = h.wait_assigned("s")
    h.wait_assigned("t")
    before = pids(h)
    assert "MODE=one" in environ(before["x"])

    # Its services too: refused, naming a component it changes and why.
    rewrite(h, "defaults: {component: {env: {MODE: two}, services: [web]}}\n" + yaml(log))
    r = h.ctl("reload", check=False)
    assert r.returncode == 5 and "'defaults.component.services' added: group 'g': component 'a': its services and " \
        "devices feed the recovery model halod builds at start" in r.stderr, r.stderr
    assert pids(h) == before

    # A unit's template added that gives what the defaults give: no component's settings change.
    rewrite(h, "defaults: {component: {env: {MODE: one}}}\n" +
            yaml(log).replace("service-units: {x: {}, y: {}}", "service-units: {x: {component: {env: {MODE: one}}}, y: {}}"))
    assert "applied: components' settings changed (0 restarted in place)" in h.ctl("reload").stdout
    assert pids(h) == before

    rewrite(h, "defaults: {component: {env: {MODE: two}}}\n" +
            yaml(log).replace("service-units: {x: {}, y: {}}", "service-units: {x: {component: {env: {MODE: one}}}, y: {}}"))
    assert "applied: components' settings changed (3 restarted in place)" in h.ctl("reload").stdout
    wait_for(lambda: all(h.pid_of(c) not in (None, 0, before[c]) and h.comp(c)["presence"] == "INSTANTIATED"
                         for c in ("a", "b", "y")), what="a, b and y restarted")
    assert all("MODE=two" in environ(h.pid_of(c)) for c in ("a", "b", "y"))
    assert h.pid_of("x") == before["x"]  # its unit's template keeps MODE=one
    assert h.wait_assigned("s") == placement


def test_a_component_of_a_unit_changing_its_roles_is_removed_once_it_settled(halod_factory, tmp_path):
    log = str(tmp_path / "comp.log")
    units = unit_lines("@1: {}, @3: {csi-types: [none]}")
    h = halod_factory(comps_yaml(log, units, "s: {csis: {c: {type: main}}}", "quiesce-hold"),
                      log_level="info").start()
    active, standby = h.wait_assigned("s")
    os.makedirs(f"{log}.{active}")
    hold = f"{log}.{active}/{active}1.quiesce-hold"  # the component's name has its unit's and a '/'
    open(hold, "w").close()
    ctl = subprocess.Popen([HALOCTL, "-s", h.socket, "switchover", "s"], stdout=subprocess.PIPE,
                           stderr=subprocess.PIPE, text=True)
    wait_for(lambda: csi_sets(log, f"{active}/{active}1")[-1][3] == "QUIESCING", what="the ACTIVE told QUIESCING")
    third = h.pid_of(f"{active}/{active}3")
    line = f"      {active}: {{components: {{{active}1: {{}}, {active}3: {{csi-types: [none]}}}}}}\n"
    assert line in units
    rewrite(h, comps_yaml(log, units.replace(line, f"      {active}: {{components: {{{active}1: {{}}}}}}\n"),
                          "s: {csis: {c: {type: main}}}", "quiesce-hold"))
    r = h.ctl("reload", check=False)
    assert r.returncode == 5 and f"'service-groups.g.service-units.{active}.components.{active}3' removed" in r.stderr \
        and "it or its unit is starting, stopping, failing, restarting or changing its roles; reload again later" \
        in r.stderr, r.stderr
    assert h.pid_of(f"{active}/{active}3") == third
    os.unlink(hold)
    out, err = ctl.communicate(timeout=20)
    assert ctl.returncode == 0, err
    assert h.wait_assigned("s") == (standby, active)
    assert "applied: 1 component removed" in h.ctl("reload").stdout
    wait_for(lambda: gone(third), what="the component stopped")
    wait_for(lambda: [c["name"] for c in h.su(active)["components"]] == [f"{active}/{active}1"], what="it is gone")
    assert h.wait_assigned("s") == (standby, active)


def test_an_ocf_component_removed_with_its_csi_is_stopped_by_its_agent(halod_factory, tmp_path):
    """Its CSI remove stops it (the agent's stop action); the unit stays ACTIVE, its other component runs on."""
    if not os.access("/usr/lib/ocf/resource.d/heartbeat/Dummy", os.X_OK):
        import pytest
        pytest.skip("Debian's resource-agents package is not installed (tools/install-deps)")
    log = str(tmp_path / "comp.log")

    def text(with_r, with_r2=False):
        m = f"m: {{command: {TESTCOMP}, env: {{TESTCOMP_LOG: \"{log}\"}}, csi-types: [main]}}"
        units = "".join(f"      {u}: {{components: {{{m}" + (
            f", r: {{type: ocf, agent: ocf:heartbeat:Dummy, params: {{state: {tmp_path}/{u}.state}}, "
            "csi-types: [res]}" if with_r else "") + (
            f", r2: {{type: ocf, agent: ocf:heartbeat:Dummy, params: {{state: {tmp_path}/{u}2.state}}, "
            "csi-types: [res2]}" if with_r2 else "") + "}}\n" for u in "ab")
        csis = "c: {type: main}" + (", d: {type: res}" if with_r else "") + (", e: {type: res2}" if with_r2 else "")
        return f"""
service-groups:
  g:
    service-units:
{units}    service-instances: {{s: {{csis: {{{csis}}}}}}}
"""
    h = halod_factory(text(True), log_level="info").start()
    active, standby = h.wait_assigned("s")
    wait_for(lambda: os.path.exists(tmp_path / f"{active}.state"), what="the ACTIVE's resource started")
    ms = {u: h.pid_of(f"{u}/m") for u in (active, standby)}
    n = {u: len(events(log, f"{u}/m")) for u in (active, standby)}
    # Another OCF one added with the CSI it takes: its agent's meta-data and probe run while its unit
    # stays in service, then its resource starts on the ACTIVE alone; nothing else restarts or is told.
    rewrite(h, text(True, with_r2=True))
    r = h.ctl("reload")
    assert "applied: 2 components added, 1 CSI added or removed, 2 CSI sets or removes sent" in r.stdout, r.stdout
    seen = set()

    def started_r2():
        seen.add((h.si("s")["active"], h.su(active)["readiness"], h.su(standby)["readiness"]))
        return os.path.exists(tmp_path / f"{active}2.state")
    wait_for(started_r2, what="the ACTIVE's new resource started")
    assert seen == {(active, "IN-SERVICE", "IN-SERVICE")}, seen  # the SI stayed ACTIVE, both units in service
    wait_for(lambda: h.comp(f"{active}/r2")["presence"] == "INSTANTIATED", what="r2 instantiated")
    assert not os.path.exists(tmp_path / f"{standby}2.state")  # nothing runs on the STANDBY
    assert h.wait_assigned("s") == (active, standby) and h.si("s")["csis"] == ["c", "d", "e"]
    assert {u: h.pid_of(f"{u}/m") for u in (active, standby)} == ms
    assert {u: len(events(log, f"{u}/m")) for u in (active, standby)} == n
    assert os.path.exists(tmp_path / f"{active}.state")  # r runs on
    assert f"Probing component '{active}/r2'" in h.logtext()

    rewrite(h, text(False))
    r = h.ctl("reload")
    assert "applied: 4 components removed, 2 CSIs added or removed, 4 CSI sets or removes sent" in r.stdout, r.stdout
    wait_for(lambda: not os.path.exists(tmp_path / f"{active}2.state"), what="r2's agent's stop")
    wait_for(lambda: not os.path.exists(tmp_path / f"{active}.state"), what="its agent's stop")
    wait_for(lambda: all([c["name"] for c in h.su(u)["components"]] == [f"{u}/m"] for u in "ab"), what="r gone")
    assert h.wait_assigned("s") == (active, standby) and h.si("s")["csis"] == ["c"]
    assert {u: h.pid_of(f"{u}/m") for u in (active, standby)} == ms
    assert {u: len(events(log, f"{u}/m")) for u in (active, standby)} == n
    assert "Running the OCF stop action of component" in h.logtext() and h.stop() == 0


def with_g(log, settings):
    """yaml() with settings (YAML lines) in g's component template."""
    return yaml(log).replace(f"      command: {TESTCOMP}\n", f"      command: {TESTCOMP}\n{settings}", 1)


def test_a_health_check_change_restarts_in_place_with_the_new_period(halod_factory, tmp_path):
    log = str(tmp_path / "comp.log")
    h = halod_factory(with_g(log, "      health-check: {period: 30s, timeout: 5s, keys: [alive]}\n"),
                      log_level="info").start()
    placement = h.wait_assigned("s")
    h.wait_assigned("t")
    before = pids(h)
    rewrite(h, with_g(log, "      health-check: {period: 200ms, timeout: 5s, keys: [alive]}\n"))
    assert "applied: components' settings changed (2 restarted in place)" in h.ctl("reload").stdout
    wait_for(lambda: all(h.pid_of(c) not in (None, 0, before[c]) and h.comp(c)["presence"] == "INSTANTIATED"
                         for c in ("a", "b")), what="a and b restarted in place")
    assert h.wait_assigned("s") == placement  # the roles stayed where they were
    # The new period: health checks every 200ms (at the old one, none would come within 30s).
    n = len(events(log, "a", "HC"))
    wait_for(lambda: len(events(log, "a", "HC")) >= n + 5, timeout=10, what="a's health checks at the new period")
    assert {c: h.pid_of(c) for c in ("x", "y")} == {c: before[c] for c in ("x", "y")}
    assert h.stop() == 0


def test_a_recovery_change_applies_without_a_restart(halod_factory, tmp_path):
    """recovery: component-failover, applied live: no process restarts; the ACTIVE's process killed,
    its unit fails over instead of restarting it in place."""
    log = str(tmp_path / "comp.log")
    h = halod_factory(yaml(log), log_level="info").start()
    active, standby = h.wait_assigned("s")
    h.wait_assigned("t")
    before = pids(h)
    rewrite(h, with_g(log, "      recovery: component-failover\n      restart: {max: 7}\n"))
    assert "applied: components' settings changed (0 restarted in place)" in h.ctl("reload").stdout
    assert pids(h) == before and h.wait_assigned("s") == (active, standby)
    os.kill(before[active], signal.SIGKILL)
    wait_for(lambda: h.si("s")["active"] == standby, what="the STANDBY taking over")
    assert {c: h.pid_of(c) for c in ("x", "y", standby)} == {c: before[c] for c in ("x", "y", standby)}
    assert h.stop() == 0


def test_a_groups_settings_apply_live_and_its_model_looks_again(halod_factory, tmp_path):
    """auto-adjust turned on by a reload: the ACTIVE a switchover moved goes back to the preferred unit."""
    log = str(tmp_path / "comp.log")
    h = halod_factory(yaml(log), log_level="info").start()
    active, standby = h.wait_assigned("s")
    h.wait_assigned("t")
    h.ctl("switchover", "s")
    assert h.wait_assigned("s") == (standby, active)
    before = pids(h)
    rewrite(h, yaml(log).replace("    service-units: {a: {}, b: {}}",
                                 "    auto-adjust: true\n    auto-adjust-probation: 0s\n"
                                 "    escalation: {component-restart: {max: 2}}\n"
                                 "    service-units: {a: {}, b: {}}"))
    assert "applied: settings of 1 service group changed" in h.ctl("reload").stdout
    wait_for(lambda: (h.si("s")["active"], h.si("s")["standby"]) == (active, standby), what="the ACTIVE back on a")
    assert pids(h) == before  # no process restarted
    # Its escalation too: a failure now counts against the new component-restart limit.
    os.kill(before[active], signal.SIGKILL)
    wait_for(lambda: "component-restart 1/2" in h.logtext(), what="the failure counted against the new limit")
    assert h.stop() == 0


def test_an_ocf_components_params_and_csi_types_change_live(halod_factory, tmp_path):
    """An OCF agent's params: its resource is stopped and started again with them where its unit is
    ACTIVE, the unit staying ACTIVE.  csi-types that keep each CSI with its component: no restart;
    csi-types that would move a CSI to another component: refused, saying how."""
    if not os.access("/usr/lib/ocf/resource.d/heartbeat/Dummy", os.X_OK):
        import pytest
        pytest.skip("Debian's resource-agents package is not installed (tools/install-deps)")
    log = str(tmp_path / "comp.log")

    def text(state="one", types="[main]", n_types="[other]"):
        m = f"m: {{command: {TESTCOMP}, env: {{TESTCOMP_LOG: \"{log}\"}}, csi-types: {types}}}"
        n = f"n: {{command: {TESTCOMP}, env: {{TESTCOMP_LOG: \"{log}\"}}, csi-types: {n_types}}}"
        units = "".join(f"      {u}: {{components: {{{m}, {n}, r: {{type: ocf, agent: ocf:heartbeat:Dummy, "
                        f"params: {{state: {tmp_path}/{u}.{state}}}, csi-types: [res]}}}}}}\n" for u in "ab")
        return f"""
service-groups:
  g:
    service-units:
{units}    service-instances: {{s: {{csis: {{c: {{type: main}}, d: {{type: res}}}}}}}}
"""
    h = halod_factory(text(), log_level="info").start()
    active, standby = h.wait_assigned("s")
    wait_for(lambda: os.path.exists(tmp_path / f"{active}.one"), what="the ACTIVE's resource started")
    ms = {u: h.pid_of(f"{u}/m") for u in "ab"}

    rewrite(h, text(types="[main, spare]"))  # c and d stay where they are
    assert "applied: components' settings changed (0 restarted in place)" in h.ctl("reload").stdout
    assert {u: h.pid_of(f"{u}/m") for u in "ab"} == ms
    rewrite(h, text(types="[spare]", n_types="[other, main]"))  # c would go to n
    r = h.ctl("reload", check=False)
    assert r.returncode == 5 and "the csi-types of unit 'a' move CSI 'c' of 's' from component 'a/m' to 'a/n': not " \
        "live (its SI would change hands); remove that CSI from its SI in one reload and add it back in the next" \
        in r.stderr, r.stderr

    rewrite(h, text(state="two", types="[main, spare]"))
    assert "applied: components' settings changed (1 restarted in place)" in h.ctl("reload").stdout
    wait_for(lambda: os.path.exists(tmp_path / f"{active}.two") and not os.path.exists(tmp_path / f"{active}.one"),
             what="the ACTIVE's resource started again with its new params")
    assert h.wait_assigned("s") == (active, standby) and not os.path.exists(tmp_path / f"{standby}.two")
    assert {u: h.pid_of(f"{u}/m") for u in "ab"} == ms
    h.ctl("switchover", "s")
    wait_for(lambda: os.path.exists(tmp_path / f"{standby}.two"), what="the new ACTIVE's resource, with them too")
    assert h.stop() == 0


def test_a_restart_policy_change_applies_without_a_restart(halod_factory, tmp_path):
    """restart: {delay} given by a reload: no process restarts; the next failure waits the new delay."""
    log = str(tmp_path / "comp.log")
    h = halod_factory(yaml(log), log_level="info").start()
    active, standby = h.wait_assigned("s")
    h.wait_assigned("t")
    before = pids(h)
    rewrite(h, with_g(log, "      restart: {delay: 1700ms, delay-max: 1700ms}\n"))
    assert "applied: components' settings changed (0 restarted in place)" in h.ctl("reload").stdout
    assert pids(h) == before
    os.kill(before[active], signal.SIGKILL)
    wait_for(lambda: f"Service unit '{active}' restarts in 1.7s" in h.logtext(), what="the restart at the new delay")
    assert h.stop() == 0


def test_a_monitor_added_restarts_the_active_in_place_and_runs(halod_factory, tmp_path):
    """A monitor given by a reload to a non-SA-aware component: where it runs (the ACTIVE) it is
    stopped and started again, the unit staying ACTIVE, and its monitor command runs from then on."""
    ticks = tmp_path / "ticks"

    def text(monitor=""):
        return f"""
service-groups:
  g:
    component: {{type: non-sa-aware, command: /bin/sleep, args: ["1000"]{monitor}}}
    service-units: {{a: {{}}, b: {{}}}}
    service-instances: {{s: {{csis: {{c: {{}}}}}}}}
"""
    h = halod_factory(text(), log_level="info").start()
    wait_for(lambda: h.si("s")["active"] and h.si("s")["standby"] and h.pid_of(h.si("s")["active"]),
             what="the ACTIVE running")
    active, standby = h.si("s")["active"], h.si("s")["standby"]
    pid = h.pid_of(active)
    rewrite(h, text(f", monitor: {{command: [/bin/sh, -c, 'echo x >> {ticks}'], period: 200ms}}"))
    assert "applied: components' settings changed (1 restarted in place)" in h.ctl("reload").stdout
    wait_for(lambda: h.pid_of(active) not in (None, 0, pid), what="the ACTIVE's new process")
    wait_for(lambda: ticks.exists() and len(ticks.read_text().split()) >= 3, what="its monitor running")
    assert (h.si("s")["active"], h.si("s")["standby"]) == (active, standby) and not h.pid_of(standby)
    assert h.stop() == 0
