# SPDX-License-Identifier: MIT
"""CDB replication over mutual TLS: --cdb-tls-cert, --cdb-tls-key, --cdb-tls-ca.  The
certificates are made here with openssl; every address is loopback."""
import socket
import ssl
import subprocess

import pytest

from halo_harness import HALOD, cdb_only_yaml, free_port, wait_for
from test_etcd_tls import make_ca, make_cert

YAML = cdb_only_yaml("cdb")
TOKEN = "repl-secret"
BOTH = "extendedKeyUsage=serverAuth,clientAuth\n"


@pytest.fixture(scope="module")
def pki(tmp_path_factory):
    d = str(tmp_path_factory.mktemp("cdb-pki"))
    make_ca(d, "ca")
    for node in ("a", "b", "c"):
        make_cert(d, "ca", node, BOTH)
    make_ca(d, "other-ca")
    make_cert(d, "other-ca", "stranger", BOTH)  # a node of another cluster
    return lambda name: f"{d}/{name}"


def tls_args(pki, node, ca="ca"):
    return ["--cdb-tls-cert", pki(f"{node}.pem"), "--cdb-tls-key", pki(f"{node}.key"), "--cdb-tls-ca", pki(f"{ca}.pem")]


def node(halod_factory, name, args):
    port = free_port()
    h = halod_factory(YAML, name=name, extra_args=["--cdb-listen", f"127.0.0.1:{port}", *args]).start()
    h.cdb_port = port
    return h


def ha(h, *args, check=True):
    return h.ctl("ha", "--token", TOKEN, *args, check=check)


@pytest.fixture
def primary(halod_factory, pki):
    a = node(halod_factory, "a", tls_args(pki, "a"))
    ha(a, "beprimary", "n1")
    a.ctl("cdb", "set", "/net/mtu", "9000")
    return a


def test_a_secondary_follows_over_tls(primary, halod_factory, pki):
    # A full copy of 300 KB: many TLS records, split across reads as they come.
    for t in range(6):
        primary.ctl("cdb", "set", *[x for i in range(50) for x in (f"/bulk/{t}/{i}", f"{t}.{i}." + "v" * 1000)])
    b = node(halod_factory, "b", tls_args(pki, "b"))
    ha(b, "besecondary", "n2", "n1", f"127.0.0.1:{primary.cdb_port}")
    assert wait_for(lambda: b.ctl("cdb", "get", "/net/mtu", check=False).stdout == "9000\n", what="the full copy")
    assert b.ctl("cdb", "list", "/bulk", "--json").stdout == primary.ctl("cdb", "list", "/bulk", "--json").stdout
    assert b.ctl("cdb", "get", "/bulk/5/49").stdout == "5.49." + "v" * 1000 + "\n"
    # A commit on the primary returns once the secondary has it (synchronous): it is there at once.
    primary.ctl("cdb", "set", "/net/mtu", "1500")
    assert b.ctl("cdb", "get", "/net/mtu").stdout == "1500\n"
    assert "CDB replication over TLS" in primary.logtext()
    assert "TLS" not in "".join(x for x in b.logtext().splitlines() if "warning" in x or "error" in x)


def test_the_wire_is_tls_with_client_certificates(primary, pki):
    # With a certificate of the cluster's CA, a TLS client completes the handshake, and the
    # primary's certificate is the one of --cdb-tls-cert.
    ctx = ssl.create_default_context(cafile=pki("ca.pem"))
    ctx.check_hostname = False
    ctx.load_cert_chain(pki("c.pem"), pki("c.key"))
    with socket.create_connection(("127.0.0.1", primary.cdb_port), timeout=5) as raw:
        with ctx.wrap_socket(raw) as s:
            assert s.getpeercert()["subject"] == ((("commonName", "a"),),)
    # Without a client certificate the primary refuses the handshake.
    ctx = ssl.create_default_context(cafile=pki("ca.pem"))
    ctx.check_hostname = False
    with socket.create_connection(("127.0.0.1", primary.cdb_port), timeout=5) as raw:
        with pytest.raises((ssl.SSLError, ConnectionError)):
            with ctx.wrap_socket(raw) as s:
                s.recv(1)  # TLS 1.3: the refusal comes after the client's half of the handshake
    # A plaintext client gets no plaintext protocol: at most a TLS alert, then the end.
    with socket.create_connection(("127.0.0.1", primary.cdb_port), timeout=5) as s:
        s.sendall(b"\x00\x00\x00\x10" + b"x" * 16)
        got = b""
        while True:
            chunk = s.recv(4096)
            if not chunk:
                break
            got += chunk
        assert got == b"" or got[:2] == b"\x15\x03", got


@pytest.mark.parametrize("case,says", [
    ("another CA", "TLS: its certificate is refused: The certificate is NOT trusted. The certificate issuer is "
                   "unknown. (check --cdb-tls-ca)"),
    ("plaintext", "it speaks TLS and this node has no --cdb-tls-cert, --cdb-tls-key and --cdb-tls-ca"),
])
def test_a_secondary_that_does_not_match_refuses_to_follow(case, says, primary, halod_factory, pki):
    args = {"another CA": tls_args(pki, "stranger", ca="other-ca"), "plaintext": []}[case]
    c = node(halod_factory, "c", args)
    r = ha(c, "besecondary", "n3", "n1", f"127.0.0.1:{primary.cdb_port}", check=False)
    assert r.returncode != 0, r.stdout
    line = wait_for(lambda: next((x for x in c.logtext().splitlines() if says in x), None),
                    what="the reason in the log")
    assert f"Failed to join the CDB primary 'n1' at 127.0.0.1:{primary.cdb_port}" in line
    # Nothing of the primary's was applied, and the primary still takes commits.
    assert c.ctl("cdb", "get", "/net/mtu", check=False).returncode == 4
    primary.ctl("cdb", "set", "/still", "serving")


def test_a_tls_secondary_of_a_plaintext_primary_says_so(halod_factory, pki):
    a = node(halod_factory, "a", [])
    ha(a, "beprimary", "n1")
    a.ctl("cdb", "set", "/net/mtu", "9000")
    c = node(halod_factory, "c", tls_args(pki, "c"))
    r = ha(c, "besecondary", "n3", "n1", f"127.0.0.1:{a.cdb_port}", check=False)
    assert r.returncode != 0, r.stdout
    line = wait_for(lambda: next((x for x in c.logtext().splitlines() if "Failed to join" in x), None),
                    what="the secondary says why")
    assert line.endswith("it ended the connection during the TLS handshake: does it have --cdb-tls-cert, "
                         "--cdb-tls-key and --cdb-tls-ca?"), line
    assert wait_for(lambda: "it speaks TLS and this node has no --cdb-tls-cert" in a.logtext(),
                    what="the primary says why")
    assert c.ctl("cdb", "get", "/net/mtu", check=False).returncode == 4


def test_a_tls_primary_refuses_a_secondary_of_another_ca(primary, halod_factory, pki):
    # The secondary trusts the primary's CA but holds a certificate of another: the primary refuses it.
    c = node(halod_factory, "c", ["--cdb-tls-cert", pki("stranger.pem"), "--cdb-tls-key", pki("stranger.key"),
                                  "--cdb-tls-ca", pki("ca.pem")])
    r = ha(c, "besecondary", "n3", "n1", f"127.0.0.1:{primary.cdb_port}", check=False)
    assert r.returncode != 0, r.stdout
    line = wait_for(lambda: next((x for x in primary.logtext().splitlines()
                                  if "CDB replication connection from 127.0.0.1:" in x), None), what="the primary says why")
    # The primary's CertificateRequest names its CA: GnuTLS then offers no certificate of another.
    assert "TLS handshake failed: Certificate is required." in line
    line = wait_for(lambda: next((x for x in c.logtext().splitlines() if "Failed to join" in x), None),
                    what="the secondary says why")
    # TLS 1.3: its handshake was over when the primary refused it; the alert or the end of the connection comes first.
    assert ("it refused the TLS session ('Certificate is required')" in line or
            "it ended the connection before the HMAC handshake" in line), line
    assert line.endswith("does it take this node's certificate (--cdb-tls-cert, signed by the CA of its --cdb-tls-ca)?")
    assert c.ctl("cdb", "get", "/net/mtu", check=False).returncode == 4


@pytest.mark.parametrize("args,message", [
    (["--cdb-tls-cert", "CERT"], "--cdb-tls-cert, --cdb-tls-key and --cdb-tls-ca go together: give all three or none"),
    (["--cdb-tls-cert", "CERT", "--cdb-tls-key", "KEY"], "give all three or none"),
    (["--cdb-tls-cert", "CERT", "--cdb-tls-key", "KEY", "--cdb-tls-ca", "/nonexistent.pem"],
     "--cdb-tls-ca /nonexistent.pem: "),
    (["--cdb-tls-cert", "CERT", "--cdb-tls-key", "CA", "--cdb-tls-ca", "CA"], "--cdb-tls-key"),
])
def test_tls_options_are_checked_at_start(args, message, pki, tmp_path):
    args = [{"CERT": pki("a.pem"), "KEY": pki("a.key"), "CA": pki("ca.pem")}.get(a, a) for a in args]
    desc = tmp_path / "c.yaml"
    desc.write_text(YAML)
    r = subprocess.run([HALOD, "--state-dir", str(tmp_path), "--http", "none", "--cdb-listen",
                        f"127.0.0.1:{free_port()}", *args, str(desc)], capture_output=True, text=True, timeout=30)
    assert r.returncode == 1 and message in r.stderr, r.stderr
