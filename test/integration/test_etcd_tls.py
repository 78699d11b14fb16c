# SPDX-License-Identifier: MIT
"""halod over an etcd that speaks only TLS and wants client certificates
(--client-cert-auth), as a production etcd does: --etcd-cacert, --etcd-cert and
--etcd-key.  The certificates are made here with openssl; every address is loopback."""
import base64
import json
import os
import signal
import ssl
import subprocess
import time
import urllib.request

import pytest

from etcd_harness import Etcd
from halo_harness import HALOD, wait_for
from test_cluster import Cluster


def openssl(*args, cwd):
    subprocess.run(["openssl", *args], cwd=cwd, check=True, capture_output=True, timeout=60)


def make_ca(d, name):
    openssl("req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2", "-subj", f"/CN={name}",
            "-keyout", f"{name}.key", "-out", f"{name}.pem", cwd=d)


def make_cert(d, ca, name, ext):
    openssl("req", "-newkey", "rsa:2048", "-nodes", "-subj", f"/CN={name}", "-keyout", f"{name}.key",
            "-out", f"{name}.csr", cwd=d)
    with open(os.path.join(d, f"{name}.ext"), "w") as f:
        f.write(ext)
    openssl("x509", "-req", "-in", f"{name}.csr", "-CA", f"{ca}.pem", "-CAkey", f"{ca}.key", "-CAcreateserial",
            "-days", "2", "-extfile", f"{name}.ext", "-out", f"{name}.pem", cwd=d)


@pytest.fixture(scope="module")
def pki(tmp_path_factory):
    d = str(tmp_path_factory.mktemp("pki"))
    make_ca(d, "ca")
    # clientAuth too: etcd's JSON gateway connects to its own gRPC server with this
    # certificate, and with --client-cert-auth a server-only one is refused there
    # (every call then answers 503 "connection closed").
    make_cert(d, "ca", "server", "subjectAltName=IP:127.0.0.1\nextendedKeyUsage=serverAuth,clientAuth\n")
    make_cert(d, "ca", "client", "extendedKeyUsage=clientAuth\n")
    make_ca(d, "other-ca")  # signed nothing of this cluster's
    return lambda name: os.path.join(d, name)


class TlsEtcd(Etcd):
    scheme = "https"

    def __init__(self, pki, **kw):
        super().__init__(**kw)
        self.pki = pki

    def tls_args(self):
        return ["--cert-file", self.pki("server.pem"), "--key-file", self.pki("server.key"),
                "--trusted-ca-file", self.pki("ca.pem"), "--client-cert-auth"]

    def urlopen(self, url, timeout):
        ctx = ssl.create_default_context(cafile=self.pki("ca.pem"))
        ctx.load_cert_chain(self.pki("client.pem"), self.pki("client.key"))
        return urllib.request.urlopen(url, timeout=timeout, context=ctx)

    def get_keys_over_tls(self, prefix):
        """The keys under prefix, read over TLS with the client certificate."""
        end = prefix[:-1] + chr(ord(prefix[-1]) + 1)
        body = json.dumps({"key": base64.b64encode(prefix.encode()).decode(),
                           "range_end": base64.b64encode(end.encode()).decode(), "keys_only": True}).encode()
        req = urllib.request.Request(f"{self.endpoints.split(',')[0]}/v3/kv/range", data=body, method="POST")
        with self.urlopen(req, timeout=5) as r:
            return [base64.b64decode(kv["key"]).decode() for kv in json.loads(r.read()).get("kvs", [])]


@pytest.fixture
def tls_etcd(pki):
    e = TlsEtcd(pki).start()
    yield e
    e.stop()


def client_tls(pki):
    return ["--etcd-cacert", pki("ca.pem"), "--etcd-cert", pki("client.pem"), "--etcd-key", pki("client.key")]


def test_two_nodes_over_mutual_tls_assign_and_fail_over(tls_etcd, pki, halod_factory, tmp_path):
    c = Cluster(tls_etcd, halod_factory, tmp_path, args=client_tls(pki)).start()
    h1, h2 = c.nodes["n1"], c.nodes["n2"]
    act, sb = wait_for(lambda: c.settled(h1), timeout=30, what="SI assigned over TLS")
    assert wait_for(lambda: c.settled(h2) == (act, sb), what="n2 agrees (its watches run over TLS too)")
    owner = h1 if act == "counter-0" else h2
    os.kill(owner.pid_of(act), signal.SIGKILL)
    assert wait_for(lambda: (c.settled(h1) or (None,))[0] == sb, timeout=30, what="the standby took over")
    for h in (h1, h2):
        assert "TLS failed" not in h.logtext()


@pytest.mark.parametrize("case,says", [
    ("no client certificate", " (an etcd that wants client "
                              "certificates closes the connection of a client without one: --etcd-cert, --etcd-key)"),
    ("another CA", "TLS failed: SSL peer certificate or SSH remote key was not OK (check the endpoint's scheme and "
                   "--etcd-cacert, --etcd-cert, --etcd-key)"),
])
def test_a_tls_set_up_that_does_not_match_says_so(case, says, tls_etcd, pki, halod_factory, tmp_path):
    tls = {"no client certificate": ["--etcd-cacert", pki("ca.pem")],
           "another CA": ["--etcd-cacert", pki("other-ca.pem"), "--etcd-cert", pki("client.pem"),
                          "--etcd-key", pki("client.key")]}[case]
    c = Cluster(tls_etcd, halod_factory, tmp_path, args=tls)
    h = c.nodes["n1"]
    h.start(wait=False)
    text = wait_for(lambda: says in h.logtext() and h.logtext(), timeout=30, what="the reason logged")
    line = next(x for x in text.splitlines() if says in x)
    assert f"etcd at {tls_etcd.endpoints.split(',')[0]}" in line
    time.sleep(1)  # retries go on meanwhile
    assert h.logtext().count(says) == 1, "said once, not once per retry"
    assert h.proc.poll() is None  # it keeps trying: the set-up may be fixed on etcd's side
    # Nothing was decided on a store it could not read.
    assert not tls_etcd.get_keys_over_tls("/halo/")


@pytest.mark.parametrize("args,message", [
    (["--etcd-cacert", "CA"], "give --etcd too"),
    (["--etcd", "http://127.0.0.1:1", "--etcd-cacert", "CA"], "are for https:// endpoints, not http://127.0.0.1:1"),
    (["--etcd", "https://127.0.0.1:1", "--etcd-cert", "CA"], "give both or neither"),
    (["--etcd", "https://127.0.0.1:1", "--etcd-cacert", "/nonexistent/ca.pem"], "No such file or directory"),
    (["--etcd", "https://127.0.0.1:1", "--etcd-cacert", "/"], "not a regular file"),
])
def test_tls_options_are_checked_at_start(args, message, pki, tmp_path):
    args = [pki("ca.pem") if a == "CA" else a for a in args]
    desc = tmp_path / "c.yaml"
    desc.write_text("service-groups: {}\n")
    r = subprocess.run([HALOD, "--state-dir", str(tmp_path), "--http", "none", *args, str(desc)],
                       capture_output=True, text=True, timeout=30)
    assert r.returncode == 1 and message in r.stderr, r.stderr
