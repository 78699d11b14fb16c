# SPDX-License-Identifier: MIT
"""The live status page (/ui, docs/http.md): served by halod without a token,
under a Content-Security-Policy that allows no inline script; opened in
Debian's headless Chromium on a real two-node cluster, it shows where each SI
is ACTIVE and STANDBY, and when the ACTIVE is killed it shows the new ACTIVE
and the failover without being reloaded.  (issue 16, point 9)"""
import os
import re
import signal
import urllib.error
import urllib.request

import pytest

from chromium_harness import CHROMIUM, Chromium
from halo_harness import TESTCOMP, free_port, start_nodes, wait_for
from test_2n import counter_yaml
from test_cluster import cluster_yaml
from test_http_auth import cert  # noqa: F401 (a fixture)

needs_chromium = pytest.mark.skipif(not CHROMIUM, reason="chromium is not installed (tools/install-deps installs it)")

POOL = """
cluster: ui
service-groups:
  g:
    component:
      command: {testcomp}
      env: {{TESTCOMP_LOG: "{tmp}/g.log"}}
    service-units: {{a: {{}}, b: {{}}}}
    service-instances:
      s: {{csis: {{c: {{}}}}}}
pools:
  p: {{processes: [a, b], tolerate: 1}}
"""

WEB = f"""
  web:
    redundancy: N-way-active
    component:
      command: {TESTCOMP}
    service-units:
      web-1: {{node: n1}}
      web-2: {{node: n2}}
    service-instances:
      web:
        csis: {{web-csi: {{}}}}
"""


def two_nodes_yaml(tmp_path, port):
    """A 2N group (counter-0 on n1, counter-1 on n2) and an N-way-active one (web-1, web-2)."""
    return cluster_yaml(tmp_path, port) + WEB


# What the page shows, read from its DOM: the text a user sees and the data-* attributes of each row.
PAGE = """(() => {
  const rows = (sel, f) => [...document.querySelectorAll(sel)].map(f);
  return {
    live: document.getElementById('live').className,
    nodes: rows('.node', (n) => [n.dataset.node, n.dataset.state, n.dataset.coordinator === 'true']),
    sis: Object.fromEntries(rows('tr.si', (r) => [r.dataset.si, {
      active: r.dataset.active, standby: r.dataset.standby,
      active_text: r.querySelector('.active').textContent, standby_text: r.querySelector('.standby').textContent}])),
    failovers: rows('tr.failover', (r) => ({si: r.dataset.si, from: r.dataset.from, to: r.dataset.to,
      reason: r.dataset.reason, seconds: Number(r.dataset.seconds), text: r.textContent})),
    cdb: document.getElementById('cdb').textContent,
    recovery: Object.fromEntries(rows('.comp[data-recovery]', (c) => [c.dataset.component, c.textContent])),
  };
})()"""


def get(url, context=None):
    with urllib.request.urlopen(url, timeout=5, context=context) as r:
        return r.status, r.headers, r.read()


def test_served_without_a_token_under_a_strict_csp(halod_factory, tmp_path):
    http = free_port()
    h = halod_factory(counter_yaml(tmp_path, free_port()), extra_args=["--http", f"127.0.0.1:{http}"]).start()  # with a token file (the harness)
    base = f"http://127.0.0.1:{http}"
    ui = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "src", "halod", "io", "ui")
    files = {"/ui": ("index.html", "text/html"), "/ui/app.js": ("app.js", "text/javascript"),
             "/ui/app.css": ("app.css", "text/css")}
    for path, (name, ctype) in files.items():
        code, headers, body = get(base + path)  # no Authorization header
        assert code == 200 and headers["Content-Type"].startswith(ctype), (path, code, headers)
        csp = headers["Content-Security-Policy"]
        assert "default-src 'self'" in csp and "script-src 'self'" in csp and "'unsafe-inline'" not in csp, csp
        assert headers["X-Content-Type-Options"] == "nosniff" and headers["Referrer-Policy"] == "no-referrer"
        with open(os.path.join(ui, name), "rb") as f:
            assert body == f.read(), f"{path} is not {name} of the tree"
    html = get(base + "/ui")[2].decode()
    # No inline script: every <script> has a src, and nothing comes from another origin.
    assert all(re.search(r'\bsrc="ui/', tag) for tag in re.findall(r"<script[^>]*>", html)), html
    assert "http://" not in html and "https://" not in html
    req = urllib.request.Request(base + "/ui", method="HEAD")
    with urllib.request.urlopen(req, timeout=5) as r:
        assert r.status == 200 and r.read() == b""
    for path in ("/ui/", "/ui/index.html", "/ui/nothing.js"):
        with pytest.raises(urllib.error.HTTPError) as e:
            get(base + path)
        assert e.value.code == 404, path
    h.stop()


@needs_chromium
def test_the_page_follows_a_failover_on_two_nodes(etcd, halod_factory, tmp_path):
    browser = Chromium()  # first: its start loads the machine, and the nodes' leases last 1 s
    try:
        hs, http = start_nodes(halod_factory, two_nodes_yaml(tmp_path, free_port()), etcd.endpoints)
        pages = {n: browser.open(f"http://127.0.0.1:{http[n]}/ui") for n in hs}

        def page(n):
            browser.session = pages[n]
            return browser.eval(PAGE)

        def wait_page(n, pred, what):
            """n's page once pred(page) holds; the last one seen in the error otherwise."""
            seen = []
            try:
                return wait_for(lambda: (lambda p: seen.append(p) or (p if pred(p) else None))(page(n)), timeout=30,
                                what=f"{n}'s page: {what}")
            except AssertionError as e:
                raise AssertionError(f"{e}; the page showed {seen[-1:]}") from None

        def settled(p):
            c, w = p["sis"].get("counter", {}), p["sis"].get("web", {})
            return (c.get("active") and c.get("standby") and sorted(w.get("active", "").split()) == ["web-1", "web-2"]
                    and all(state == "ONLINE" for _, state, _ in p["nodes"]) and len(p["nodes"]) == 2)

        # Both pages show the same placement, the one halod reports.
        where = {"counter-0": "n1", "counter-1": "n2"}
        for n in hs:
            p = wait_page(n, settled, "both groups assigned, both nodes up")
            active, standby = p["sis"]["counter"]["active"], p["sis"]["counter"]["standby"]
            st = hs[n].status()
            assert (active, standby) == (hs[n].si("counter")["active"], hs[n].si("counter")["standby"])
            assert p["live"] == "live up"
            assert sorted(p["nodes"]) == [[m["name"], "ONLINE", m["coordinator"]] for m in st["nodes"]]
            assert p["sis"]["counter"]["active_text"] == f"{active} @ {where[active]}"
            assert p["sis"]["counter"]["standby_text"] == f"{standby} @ {where[standby]}"
            assert f"role here{st['cdb']['state']}" in p["cdb"], p["cdb"]
        seen_before = len([f for f in p["failovers"] if f["si"] == "counter"])

        os.kill(hs[where[active]].pid_of(active), signal.SIGKILL)
        # The same pages, not reloaded, show the new ACTIVE and the failover.
        reasons = []
        for n in hs:
            p = wait_page(n, lambda p: p["sis"]["counter"]["active"] == standby and p["failovers"] and
                          p["failovers"][0]["si"] == "counter", f"{standby} ACTIVE and its failover, the newest")
            assert p["sis"]["counter"]["active_text"] == f"{standby} @ {where[standby]}"
            f = p["failovers"][0]
            assert (f["si"], f["from"], f["to"]) == ("counter", active, standby), (n, f)
            assert 0 < f["seconds"] < 15, f
            assert f"{active} @ {where[active]}" in f["text"] and f"{standby} @ {where[standby]}" in f["text"]
            assert (f["reason"] or "(decided elsewhere)") in f["text"]
            reasons.append(f["reason"])
            assert sorted(p["sis"]["web"]["active"].split()) == ["web-1", "web-2"]  # the other group untouched
        # Only the node that decided it knows why (and counted it in halo_failovers_total).
        assert sorted(reasons) == ["", "failure"], reasons
        assert len([f for f in p["failovers"] if f["si"] == "counter"]) == seen_before + 1
        # The killed unit comes back as the STANDBY, and the page says so.
        wait_page("n2", lambda p: p["sis"]["counter"]["standby"] == active, f"{active} STANDBY")
        if os.environ.get("HALO_UI_SCREENSHOT"):  # how docs/ui.png is made
            browser.session = pages["n2"]
            browser.screenshot(os.environ["HALO_UI_SCREENSHOT"])
        # halod gone: the page says so instead of showing the last state as live.
        hs["n2"].stop()
        wait_page("n2", lambda p: p["live"] == "live down", "halod unreachable")
    finally:
        browser.close()


@needs_chromium
def test_the_page_works_over_https(cert, halod_factory, tmp_path):  # noqa: F811
    http = free_port()
    yaml = POOL.format(testcomp=TESTCOMP, tmp=tmp_path)
    h = halod_factory(yaml, extra_args=["--http", f"127.0.0.1:{http}", "--http-cert", cert("server.pem"),
                                        "--http-key", cert("server.key")]).start()
    h.wait_assigned("s")
    browser = Chromium(args=["--ignore-certificate-errors"])  # the test's own CA
    try:
        browser.open(f"https://127.0.0.1:{http}/ui")
        p = wait_for(lambda: (lambda p: p if p["sis"].get("s", {}).get("standby") else None)(browser.eval(PAGE)),
                     timeout=30, what="the page drawn over HTTPS")
        assert p["live"] == "live up" and p["sis"]["s"]["active_text"] == "a @ local"
        # Each component of a pool with its recovery state.
        want = {c: f"{c} INSTANTIATED pid {h.pid_of(c)} recovery {h.comp(c)['recovery']['state']}" for c in "ab"}
        wait_for(lambda: browser.eval(PAGE)["recovery"] == want, timeout=10, what=f"the recovery states {want}")
    finally:
        browser.close()
    h.stop()
