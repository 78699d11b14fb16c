# SPDX-License-Identifier: MIT
"""halod's log levels change at runtime: haloctl log-level [[AREA=]LEVEL] (operators only,
like every haloctl command that changes something).  (issue 16, logging)"""
import json
import os
import signal

from halo_harness import TESTCOMP, wait_for

YAML = f"""
service-groups:
  g:
    component:
      command: {TESTCOMP}
    service-units: {{a: {{}}, b: {{}}}}
    service-instances: {{s: {{csis: {{c: {{}}}}}}}}
"""


def levels(h):
    return json.loads(h.ctl("--json", "log-level").stdout)


def test_log_level_changes_what_halod_logs_from_now_on(halod_factory):
    h = halod_factory(YAML, log_level="info").start()
    active, _ = h.wait_assigned("s")
    assert levels(h) == {a: "info" for a in ("main", "amf", "link", "supervisor", "store", "cluster")}
    assert "amf          info" in h.ctl("log-level").stdout
    assert " debug: " not in h.logtext()

    r = h.ctl("log-level", "amf=debug")
    assert "halod logs 'amf=debug' from now on" in r.stdout
    assert levels(h)["amf"] == "debug" and levels(h)["main"] == "info"
    assert "Log level set to 'amf=debug' by client pid" in h.logtext()
    os.kill(h.pid_of(active), signal.SIGKILL)  # something for the AMF to say
    wait_for(lambda: "halod[amf] debug: " in h.logtext(), what="the AMF's debug lines")
    assert "halod[link] debug: " not in h.logtext()

    wait_for(lambda: (lambda si: si["active"] and si["standby"] and not any(a["pending"] for a in si["assignments"]))(
        h.si("s")), what="the failed unit back as STANDBY")
    h.ctl("log-level", "warning")
    assert set(levels(h).values()) == {"warning"}
    mark = len(h.logtext())
    h.ctl("switchover", "s")  # logged at info and notice: now silent
    h.wait_assigned("s")
    assert " info: " not in h.logtext()[mark:] and " notice: " not in h.logtext()[mark:]


def test_a_bad_level_or_area_is_a_usage_error_and_changes_nothing(halod_factory):
    h = halod_factory(YAML, log_level="info").start()
    for spec, why in (("loud", "unknown level"), ("amf=loud", "unknown level"), ("disk=debug", "unknown area"),
                      ("=debug", "unknown area")):
        r = h.ctl("log-level", spec, check=False)
        assert r.returncode == 2 and why in r.stderr and "areas: main amf" in r.stderr, (spec, r.stderr)
    r = h.ctl("log-level", "debug", "amf=info", check=False)
    assert r.returncode == 2
    assert set(levels(h).values()) == {"info"}
