# SPDX-License-Identifier: MIT
"""halod's log levels change at runtime: haloctl log-level [[AREA=]LEVEL] (operators only,
like every haloctl command that changes something).  (issue 16, logging)"""
import json
import os
import signal
import urllib.error
import urllib.request

from halo_harness import AUTH, TESTCOMP, free_port, wait_for

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


def http_call(port, method, body=None, headers=None):
    req = urllib.request.Request(f"http://127.0.0.1:{port}/v1/log-level", method=method,
                                 data=None if body is None else json.dumps(body).encode(),
                                 headers={"Content-Type": "application/json", **(headers or {})})
    try:
        with urllib.request.urlopen(req, timeout=5) as r:
            return r.status, json.loads(r.read())
    except urllib.error.HTTPError as e:
        return e.code, json.loads(e.read())


def test_put_log_level_over_http_needs_the_token_and_changes_the_level(halod_factory):
    """PUT /v1/log-level: the same as haloctl log-level, for operators only (the bearer token);
    it answers the levels, and halod logs at the new level from then on."""
    port = free_port()
    h = halod_factory(YAML, log_level="info", extra_args=["--http", f"127.0.0.1:{port}"]).start()
    active, _ = h.wait_assigned("s")
    code, got = wait_for(lambda: http_call(port, "GET"), what="HTTP up")
    assert code == 200 and got == levels(h) and got["amf"] == "info"

    for headers in ({}, {"Authorization": "Bearer not-the-token-0123456789"}):
        code, err = http_call(port, "PUT", {"area": "amf", "level": "debug"}, headers)
        assert code == 401 and err["error"] == "unauthorized", err
    assert levels(h)["amf"] == "info"

    for body, why in (({"level": "loud"}, "unknown level"), ({"area": "disk", "level": "debug"}, "unknown area"),
                      ({"lvl": "debug"}, "the body must be"), (["debug"], "the body must be"),
                      ({"level": "amf=debug"}, "no '='")):
        code, err = http_call(port, "PUT", body, AUTH)
        assert code == 400 and why in err["message"], (body, err)
    assert set(levels(h).values()) == {"info"}
    assert " debug: " not in h.logtext()

    code, got = http_call(port, "PUT", {"area": "amf", "level": "debug"}, AUTH)
    assert code == 200 and got["amf"] == "debug" and got["main"] == "info", got
    assert levels(h) == got
    assert "Log level set to 'amf=debug' over HTTP" in h.logtext()
    os.kill(h.pid_of(active), signal.SIGKILL)  # something for the AMF to say
    wait_for(lambda: "halod[amf] debug: " in h.logtext(), what="the AMF's debug lines")

    code, got = http_call(port, "PUT", {"level": "warning"}, AUTH)
    assert code == 200 and set(got.values()) == {"warning"}, got
    code, err = http_call(port, "POST", {"level": "debug"}, AUTH)
    assert code == 405 and err["error"] == "method_not_allowed"
