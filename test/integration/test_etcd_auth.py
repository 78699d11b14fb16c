# SPDX-License-Identifier: MIT
"""halod over an etcd with authentication on: --etcd-user and --etcd-password-file.  The etcd
hands out JWT tokens that expire 2 s after they were issued, whatever their use, so every run
outlives several tokens.  Users and roles are made through the JSON gateway; loopback only."""
import base64
import json
import os
import signal
import subprocess
import time
import urllib.error
import urllib.request

import pytest

from etcd_harness import Etcd
from halo_harness import HALOD, wait_for
from test_cluster import Cluster

TOKEN_TTL = 2  # seconds


def b64(s):
    return base64.b64encode(s.encode()).decode()


class AuthEtcd(Etcd):
    """One member with authentication on: root, and the user halo with readwrite on /halo/ only."""

    def __init__(self, d, **kw):
        super().__init__(**kw)
        subprocess.run(["openssl", "genrsa", "-out", "jwt.key", "2048"], cwd=d, check=True, capture_output=True)
        subprocess.run(["openssl", "rsa", "-in", "jwt.key", "-pubout", "-out", "jwt.pub"], cwd=d, check=True,
                       capture_output=True)
        self.jwt = f"jwt,pub-key={d}/jwt.pub,priv-key={d}/jwt.key,sign-method=RS256,ttl={TOKEN_TTL}s"
        self.root_token = None

    def tls_args(self):
        return ["--auth-token", self.jwt]

    def call(self, path, body, token=None):
        headers = {"Authorization": token} if token else {}
        req = urllib.request.Request(f"{self.endpoints.split(',')[0]}{path}", data=json.dumps(body).encode(),
                                     headers=headers, method="POST")
        try:
            with urllib.request.urlopen(req, timeout=5) as r:
                return json.loads(r.read())
        except urllib.error.HTTPError as e:
            return json.loads(e.read())

    def enable_auth(self):
        for path, body in [
            ("/v3/auth/user/add", {"name": "root", "password": "rootpw"}),
            ("/v3/auth/user/grant", {"user": "root", "role": "root"}),
            ("/v3/auth/user/add", {"name": "halo", "password": "s3cret pass"}),
            ("/v3/auth/role/add", {"name": "halo"}),
            ("/v3/auth/role/grant", {"name": "halo", "perm": {"permType": "READWRITE", "key": b64("/halo/"),
                                                              "range_end": b64("/halo0")}}),
            ("/v3/auth/user/grant", {"user": "halo", "role": "halo"}),
            ("/v3/auth/enable", {}),
        ]:
            doc = self.call(path, body)
            assert "error" not in doc, (path, doc)
        return self

    def keys(self, prefix):
        """The keys under prefix, read as root (a new token each time: they expire)."""
        tok = self.call("/v3/auth/authenticate", {"name": "root", "password": "rootpw"})["token"]
        end = prefix[:-1] + chr(ord(prefix[-1]) + 1)
        doc = self.call("/v3/kv/range", {"key": b64(prefix), "range_end": b64(end), "keys_only": True}, tok)
        assert "error" not in doc, doc
        return [base64.b64decode(kv["key"]).decode() for kv in doc.get("kvs", [])]


@pytest.fixture
def auth_etcd(tmp_path):
    d = tmp_path / "etcd-keys"
    d.mkdir()
    e = AuthEtcd(str(d)).start().enable_auth()
    yield e
    e.stop()


def password_file(tmp_path, text, mode=0o600):
    p = tmp_path / "etcd-password"
    p.write_text(text)
    os.chmod(p, mode)
    return str(p)


def test_two_nodes_authenticate_and_outlive_their_tokens(auth_etcd, halod_factory, tmp_path):
    auth = ["--etcd-user", "halo", "--etcd-password-file", password_file(tmp_path, "s3cret pass\n"),
            "--log-level", "store=debug"]
    c = Cluster(auth_etcd, halod_factory, tmp_path, args=auth).start()
    h1, h2 = c.nodes["n1"], c.nodes["n2"]
    act, sb = wait_for(lambda: c.settled(h1), timeout=30, what="SI assigned through an etcd with auth")
    assert wait_for(lambda: c.settled(h2) == (act, sb), what="n2 agrees (its watches carry the token too)")
    assert "/halo/test/leader" in auth_etcd.keys("/halo/")
    # Every token the nodes hold has expired (a JWT ends TOKEN_TTL after it was issued, used or not).
    time.sleep(TOKEN_TTL + 1)
    owner = h1 if act == "counter-0" else h2
    os.kill(owner.pid_of(act), signal.SIGKILL)
    assert wait_for(lambda: (c.settled(h1) or (None,))[0] == sb, timeout=30, what="the standby took over")
    assert wait_for(lambda: c.settled(h2) == c.settled(h1), what="n2 sees the failover")
    for h in (h1, h2):
        assert "was refused: authenticating again" in h.logtext(), "the nodes outlived their first token"
        assert "authentication as" not in h.logtext()
        assert h.proc.poll() is None


def test_a_wrong_password_says_so_and_writes_nothing(auth_etcd, halod_factory, tmp_path):
    auth = ["--etcd-user", "halo", "--etcd-password-file", password_file(tmp_path, "wrong\n")]
    c = Cluster(auth_etcd, halod_factory, tmp_path, args=auth)
    h = c.nodes["n1"]
    h.start(wait=False)
    says = (f"etcd at {auth_etcd.endpoints}: authentication as 'halo' failed: etcdserver: authentication failed, "
            "invalid user ID or password (check --etcd-user and --etcd-password-file)")
    wait_for(lambda: says in h.logtext(), timeout=30, what="the refusal logged")
    time.sleep(1)  # the node retries meanwhile
    assert h.logtext().count(says) == 1, "said once, not once per retry"
    assert h.proc.poll() is None  # it keeps trying: the password may be fixed on etcd's side
    assert auth_etcd.keys("/halo/") == []


@pytest.mark.parametrize("case,message", [
    ("world-readable", "permissions 0644 are too open: others may read it; chmod o-rwx"),
    ("two lines", "want the password on one line, alone"),
    ("empty", "want the password on one line, alone"),
    ("no user", "--etcd-user and --etcd-password-file go together: give both or neither"),
    ("no file", "--etcd-user and --etcd-password-file go together: give both or neither"),
    ("no etcd", "--etcd-user is for an etcd store: give --etcd too"),
    ("a directory", "not a regular file"),
    ("too large", "too large for a password"),
])
def test_password_options_are_checked_at_start(case, message, tmp_path):
    text, mode = {"world-readable": ("pw\n", 0o644), "two lines": ("pw\nmore\n", 0o600), "empty": ("\n", 0o600),
                  "too large": ("x" * 5000, 0o600)}.get(case, ("pw\n", 0o600))
    pw = password_file(tmp_path, text, mode)
    args = {"no user": ["--etcd-password-file", pw], "no file": ["--etcd-user", "halo"],
            "no etcd": ["--etcd-user", "halo", "--etcd-password-file", pw],
            "a directory": ["--etcd-user", "halo", "--etcd-password-file", str(tmp_path)]}.get(
        case, ["--etcd-user", "halo", "--etcd-password-file", pw])
    if case != "no etcd":
        args = ["--etcd", "http://127.0.0.1:1", *args]
    desc = tmp_path / "c.yaml"
    desc.write_text("service-groups: {}\n")
    r = subprocess.run([HALOD, "--state-dir", str(tmp_path), "--http", "none", *args, str(desc)],
                       capture_output=True, text=True, timeout=30)
    assert r.returncode == 1 and message in r.stderr, r.stderr
