# SPDX-License-Identifier: MIT
"""halod's HTTP/JSON API, with a real halod and real HTTP requests."""
import json
import urllib.error
import urllib.request

from halo_harness import AUTH, free_port
from test_2n import counter_yaml


def get(port, path):
    with urllib.request.urlopen(f"http://127.0.0.1:{port}{path}", timeout=5) as r:
        return r.status, r.headers.get("Content-Type"), r.read().decode()


def post(port, path, body, ctype="application/json"):
    req = urllib.request.Request(f"http://127.0.0.1:{port}{path}", data=body, method="POST",
                                 headers={"Content-Type": ctype, **AUTH})
    try:
        with urllib.request.urlopen(req, timeout=5) as r:
            return r.status, json.loads(r.read() or b"null")
    except urllib.error.HTTPError as e:
        return e.code, json.loads(e.read() or b"null")


def test_status_metrics_entrypoint(halod_factory, tmp_path):
    port, http = free_port(), free_port()
    yaml = counter_yaml(tmp_path, port).replace("      counter:\n        csis:",
                                                "      counter:\n        entrypoint: true\n        csis:")
    h = halod_factory(yaml, extra_args=["--http", f"127.0.0.1:{http}"]).start()
    h.wait_assigned("counter")

    code, ctype, body = get(http, "/v1/status")
    assert code == 200 and ctype.startswith("application/json")
    st = json.loads(body)
    assert st["cluster"] == "test" and st["service_groups"][0]["service_instances"][0]["active"] == "counter-a"

    code, ctype, text = get(http, "/metrics")
    assert code == 200 and ctype.startswith("text/plain")
    assert 'halo_si_assignments{si="counter",role="active"} 1' in text
    assert 'halo_component_registered{component="counter-a"} 1' in text
    assert "# TYPE halo_node_up gauge" in text

    code, _, body = get(http, "/v1/entrypoint")
    ep = json.loads(body)
    assert ep["coordinator"] == "local" and ep["quorum"] == 1
    assert ep["entrypoints"][0]["si"] == "counter" and ep["entrypoints"][0]["active"] == "counter-a"
    assert ep["entrypoints"][0]["csis"][0]["attributes"]["port"] == str(port)

    # Bad input: clear 4xx with an error object; halod keeps serving.
    code, err = post(http, "/v1/events", b"{not json")
    assert code == 400 and err["error"] and err["message"]
    code, err = post(http, "/v1/events", b"{}", ctype="text/plain")
    assert code == 415 and err["error"]
    code, err = post(http, "/v1/status", b"{}")
    assert code == 405
    try:
        get(http, "/nope")
        assert False, "unknown path answered"
    except urllib.error.HTTPError as e:
        assert e.code == 404 and json.loads(e.read())["error"]
    assert get(http, "/v1/status")[0] == 200
    assert h.stop() == 0


def test_busy_default_port_is_not_fatal_but_explicit_is(halod_factory, tmp_path):
    import socket
    s = socket.socket()
    s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    busy = free_port()
    s.bind(("127.0.0.1", busy))
    s.listen(1)
    try:
        h = halod_factory(counter_yaml(tmp_path, free_port()), extra_args=["--http", f"127.0.0.1:{busy}"])
        h.start(wait=False)
        assert h.proc.wait(10) != 0
        assert "Failed to serve HTTP" in h.logtext()
    finally:
        s.close()


def test_a_slowloris_from_loopback_leaves_the_api_available(halod_factory, tmp_path):
    """64 connections from 127.0.0.1 that trickle the headers of a request and never finish it:
    another client from the same address still gets GET /v1/status answered within seconds."""
    import socket
    import threading
    import time
    http = free_port()
    h = halod_factory(counter_yaml(tmp_path, free_port()), extra_args=["--http", f"127.0.0.1:{http}"]).start()
    assert get(http, "/v1/status")[0] == 200
    def connect():
        s = socket.create_connection(("127.0.0.1", http), timeout=5)
        s.sendall(b"GET /v1/status HTTP/1.1\r\nHost: x\r\n")
        return s

    slow = [connect() for _ in range(64)]
    stop = threading.Event()

    def trickle():  # a header byte on each every 100 ms: never idle, never done; one cut off comes back
        while not stop.wait(0.1):
            for i, s in enumerate(slow):
                try:
                    s.send(b"X")
                except OSError:
                    s.close()
                    slow[i] = connect()

    t = threading.Thread(target=trickle)
    t.start()
    try:
        for _ in range(3):
            start = time.monotonic()
            assert get(http, "/v1/status")[0] == 200
            assert time.monotonic() - start < 3
    finally:
        stop.set()
        t.join()
        for s in slow:
            s.close()
    assert h.stop() == 0
