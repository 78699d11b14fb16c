# SPDX-License-Identifier: MIT
"""Who may write over HTTP: POST /v1/events needs halod's bearer token (--http-token-file),
and is refused with 401 without it; HTTPS with --http-cert/--http-key; an address that is
not loopback is served only with TLS and a token.  (issue 16, secured endpoints)"""
import json
import os
import ssl
import subprocess
import urllib.error
import urllib.request

import pytest

from halo_harness import AUTH, HALOD, HTTP_TOKEN, free_port, wait_for
from test_etcd_tls import make_ca, make_cert

YAML = """
cluster: auth
nodes:
  local: {}
  n3: {}
service-groups: {}
"""
EVENT = json.dumps({"object": "node:n3", "state": "FAILED", "reason": "the monitor says so"}).encode()


def post(url, headers, context=None):
    req = urllib.request.Request(url + "/v1/events", data=EVENT, method="POST",
                                 headers={"Content-Type": "application/json", **headers})
    try:
        with urllib.request.urlopen(req, timeout=5, context=context) as r:
            return r.status, dict(r.headers), json.loads(r.read())
    except urllib.error.HTTPError as e:
        return e.code, dict(e.headers), json.loads(e.read())


def published(h):
    """The objects and states the broadcast queue holds, as haloctl events prints them."""
    out = h.ctl("--json", "events").stdout
    return [(e["object"], e["state"]) for e in json.loads(out)["events"]]


def test_writes_need_the_token(halod_factory):
    http = free_port()
    h = halod_factory(YAML, extra_args=["--node", "local", "--http", f"127.0.0.1:{http}"]).start()
    url = f"http://127.0.0.1:{http}"
    for headers in ({}, {"Authorization": "Bearer wrong-token-of-the-same-size-xx"},
                    {"Authorization": HTTP_TOKEN}, {"Authorization": "Basic " + HTTP_TOKEN},
                    {"Authorization": "Bearer " + HTTP_TOKEN + "x"}, {"Authorization": "Bearer " + HTTP_TOKEN[:-1]}):
        code, hdrs, err = post(url, headers)
        assert code == 401 and err["error"] == "unauthorized", (headers, code, err)
        assert hdrs.get("WWW-Authenticate", "").startswith("Bearer"), hdrs
    assert ("node:n3", "FAILED") not in published(h)  # nothing refused was acted on
    # Reads need nothing.
    with urllib.request.urlopen(url + "/v1/health", timeout=5) as r:
        assert r.status == 200
    code, _, body = post(url, AUTH)
    assert code == 202, body
    wait_for(lambda: ("node:n3", "FAILED") in published(h), what="the event published")
    with urllib.request.urlopen(url + "/metrics", timeout=5) as r:
        assert 'halo_http_requests_total{code="401"} 6' in r.read().decode()
    assert h.stop() == 0  # the token's memory is released once (it was freed twice)


def test_without_a_token_file_writes_are_refused_and_it_says_why(tmp_path):
    http = free_port()
    desc = tmp_path / "c.yaml"
    desc.write_text(YAML)
    p = subprocess.Popen([HALOD, "--state-dir", str(tmp_path / "s"), "--node", "local", "--http", f"127.0.0.1:{http}",
                          str(desc)], stderr=subprocess.PIPE, text=True)
    try:
        url = f"http://127.0.0.1:{http}"
        code, _, err = wait_for(lambda: post(url, AUTH) if p.poll() is None else None, what="halod answers")
        assert code == 401 and "--http-token-file" in err["message"], err
    finally:
        p.terminate()
        _, log = p.communicate(timeout=20)
    assert "writes refused: no token" in log


@pytest.fixture(scope="module")
def cert(tmp_path_factory):
    d = str(tmp_path_factory.mktemp("httpcert"))
    make_ca(d, "ca")
    make_cert(d, "ca", "server", "subjectAltName=IP:127.0.0.1\nextendedKeyUsage=serverAuth\n")
    return lambda name: os.path.join(d, name)


def test_https_with_the_token(cert, halod_factory):
    http = free_port()
    h = halod_factory(YAML, extra_args=["--node", "local", "--http", f"127.0.0.1:{http}",
                                        "--http-cert", cert("server.pem"), "--http-key", cert("server.key")]).start()
    ctx = ssl.create_default_context(cafile=cert("ca.pem"))
    url = f"https://127.0.0.1:{http}"
    code, _, body = wait_for(lambda: post(url, AUTH, ctx), what="HTTPS answers")
    assert code == 202, body
    code, _, _ = post(url, {}, ctx)
    assert code == 401
    # Plain HTTP to the HTTPS port gets no answer of halod's.
    with pytest.raises((urllib.error.URLError, ConnectionError, OSError)):
        urllib.request.urlopen(f"http://127.0.0.1:{http}/v1/health", timeout=5).read()
    assert "HTTP API on https://127.0.0.1" in h.logtext()


@pytest.mark.parametrize("case,args,message", [
    ("not loopback, no TLS", ["--http", "0.0.0.0:PORT"], "is not a loopback address: serving it needs --http-cert"),
    ("not loopback, TLS but no token", ["--http", "[::]:PORT", "--http-cert", "CERT", "--http-key", "KEY",
                                        "--no-token"], "is not a loopback address"),
    ("cert without key", ["--http", "127.0.0.1:PORT", "--http-cert", "CERT"], "give both or neither"),
    ("token too short", ["--http-token-file", "SHORT"], "want one line of 16 to 4096 printable bytes"),
    ("token on two lines", ["--http-token-file", "TWO"], "want one line of 16 to 4096 printable bytes"),
    ("token file a FIFO", ["--http-token-file", "FIFO"], "not a regular file"),
    ("no token file", ["--http-token-file", "/nonexistent/token"], "No such file or directory"),
])
def test_http_security_options_are_checked_at_start(case, args, message, cert, tmp_path):
    (tmp_path / "short").write_text("tooshort\n")
    (tmp_path / "two").write_text(HTTP_TOKEN + "\n" + HTTP_TOKEN + "\n")
    os.mkfifo(tmp_path / "fifo")
    (tmp_path / "token").write_text(HTTP_TOKEN + "\n")
    subst = {"CERT": cert("server.pem"), "KEY": cert("server.key"), "SHORT": str(tmp_path / "short"),
             "TWO": str(tmp_path / "two"), "FIFO": str(tmp_path / "fifo")}
    argv = [subst.get(a, a.replace("PORT", str(free_port()))) for a in args if a != "--no-token"]
    if "--no-token" not in args and "--http-token-file" not in argv:
        argv += ["--http-token-file", str(tmp_path / "token")]
    desc = tmp_path / "c.yaml"
    desc.write_text(YAML)
    r = subprocess.run([HALOD, "--state-dir", str(tmp_path / "s"), "--node", "local", *argv, str(desc)],
                       capture_output=True, text=True, timeout=30)
    assert r.returncode == 1 and message in r.stderr, (case, r.stderr)
