# SPDX-License-Identifier: MIT
"""halod's live HTTP answers against docs/http.schema.json, on one node and on two over
etcd (a remote unit, an election, a failover), and docs/http.md names every path halod
serves (issue 16: a test that validates live answers against the documented API)."""
import json
import os
import re
import signal
import urllib.error
import urllib.request

import jsonschema
import pytest

from halo_harness import AUTH, TESTCOMP, free_port, start_nodes, wait_for

DOCS = os.path.join(os.path.dirname(__file__), "..", "..", "docs")
SRC = os.path.join(os.path.dirname(__file__), "..", "..", "src")
with open(os.path.join(DOCS, "http.schema.json")) as f:
    SCHEMA = json.load(f)


def check(kind, doc):
    """Validates doc against the schema's definition kind."""
    jsonschema.validate(doc, {"$ref": f"#/$defs/{kind}", **SCHEMA},
                        format_checker=jsonschema.Draft202012Validator.FORMAT_CHECKER)
    return doc


def call(port, path, method="GET", body=None, headers=None):
    req = urllib.request.Request(f"http://127.0.0.1:{port}{path}", data=body, method=method,
                                 headers={"Content-Type": "application/json", **(headers or {})})
    try:
        with urllib.request.urlopen(req, timeout=5) as r:
            return r.status, r.read()
    except urllib.error.HTTPError as e:
        return e.code, e.read()


YAML = f"""
cluster: schema
nodes: {{n1: {{}}, n2: {{}}}}
service-groups:
  g:
    component:
      command: {TESTCOMP}
      devices: [d1]
    service-units: {{a: {{node: n1}}, b: {{node: n2}}}}
    service-instances:
      s: {{entrypoint: true, csis: {{c: {{attributes: {{port: "7000", bind: "127.0.0.1"}}}}}}}}
pools:
  p: {{processes: [a, b], tolerate: 1}}
"""


def test_docs_name_every_path_halod_serves():
    with open(os.path.join(SRC, "halod", "io", "http.c")) as f:
        paths = set(re.findall(r'\{"(/[a-z0-9/-]*)", ROUTE_', f.read()))
    with open(os.path.join(SRC, "halod", "meson.build")) as f:  # the live page's files (tools/embed-files)
        paths |= set(re.findall(r"'(/[a-z0-9/.]*)=@INPUT", f.read()))
    assert {"/ui", "/ui/app.js"} <= paths
    assert {"/v1/status", "/v1/events", "/metrics", "/v1/log-level"} <= paths
    with open(os.path.join(DOCS, "http.md")) as f:
        doc = f.read()
    assert not [p for p in sorted(paths) if f"`{p}`" not in doc]


def test_live_answers_match_the_schema_on_two_nodes(etcd, halod_factory):
    hs, http = start_nodes(halod_factory, YAML, etcd.endpoints)
    wait_for(lambda: hs["n1"].si("s")["standby"], timeout=30, what="SI assigned")
    for n in ("n1", "n2"):
        code, body = wait_for(lambda n=n: call(http[n], "/v1/status"), what="HTTP up")
        st = check("status", json.loads(body))
        assert code == 200 and st["node"] == n and st["store"] == "etcd"
        assert check("status", json.loads(call(http[n], "/")[1])) ["cluster"] == "schema"
        code, body = call(http[n], "/v1/entrypoint")
        ep = check("entrypoint", json.loads(body))
        assert code == 200 and ep["entrypoints"][0]["csis"][0]["attributes"] == {"port": "7000", "bind": "127.0.0.1"}
        assert check("health", json.loads(call(http[n], "/v1/health")[1]))["status"] == "ok"
    # Mid-failover the documents still hold: pending assignments, a unit failing.
    active = hs["n1"].si("s")["active"]
    owner = hs["n1"] if active == "a" else hs["n2"]
    os.kill(owner.pid_of(active), signal.SIGKILL)
    for _ in range(20):
        for n in ("n1", "n2"):
            check("status", json.loads(call(http[n], "/v1/status")[1]))
    wait_for(lambda: hs["n1"].si("s")["active"] not in (None, active), timeout=30, what="the failover")
    check("status", json.loads(call(http["n2"], "/v1/status")[1]))


@pytest.mark.parametrize("method,path,body,headers,code", [
    ("POST", "/v1/events", b'{"object": "node:n9", "state": "FAILED"}', AUTH, 404),
    ("POST", "/v1/events", b'{"object": "node", "state": "FAILED"}', AUTH, 400),
    ("POST", "/v1/events", b"{not json", AUTH, 400),
    ("POST", "/v1/events", b'{"object": "node:n1", "state": "FAILED"}', {}, 401),
    ("POST", "/v1/events", b'{"object": "node:n1", "state": "FAILED"}', AUTH, 409),
    ("POST", "/v1/events", b"[" + b"1," * 40000 + b"1]", AUTH, 413),
    ("POST", "/v1/events", b"{}", {"Content-Type": "text/plain", **AUTH}, 415),
    ("PUT", "/v1/events", b"{}", AUTH, 405),
    ("PUT", "/v1/log-level", b'{"level": "debug"}', {}, 401),
    ("PUT", "/v1/log-level", b'{"level": "loud"}', AUTH, 400),
    ("POST", "/v1/log-level", b'{"level": "debug"}', AUTH, 405),
    ("POST", "/v1/status", b"{}", AUTH, 405),
    ("GET", "/nope", None, {}, 404),
])
def test_every_error_is_the_documented_object(method, path, body, headers, code, halod_factory):
    http = free_port()
    h = halod_factory(YAML, extra_args=["--node", "n1", "--http", f"127.0.0.1:{http}"]).start()
    got, raw = wait_for(lambda: call(http, path, method, body, headers), what="HTTP up")
    assert got == code, raw
    err = check("error", json.loads(raw))
    assert err["message"]
    # And a good write is the documented acceptance.
    got, raw = call(http, "/v1/events", "POST", b'{"object": "device:a:d1", "state": "FAILED"}', AUTH)
    assert got == 202 and check("events_accepted", json.loads(raw)), raw
    assert h.stop() == 0


def test_log_level_answers_and_body_match_the_schema(halod_factory):
    http = free_port()
    halod_factory(YAML, extra_args=["--node", "n1", "--http", f"127.0.0.1:{http}"], log_level="info").start()
    code, raw = wait_for(lambda: call(http, "/v1/log-level"), what="HTTP up")
    assert code == 200 and check("log_levels", json.loads(raw))["amf"] == "info"
    for body in ({"level": "notice"}, {"area": "amf", "level": "debug"}):
        code, raw = call(http, "/v1/log-level", "PUT", json.dumps(check("log_level_put", body)).encode(), AUTH)
        assert code == 200, raw
        got = check("log_levels", json.loads(raw))
    assert got["amf"] == "debug" and got["main"] == "notice", got
