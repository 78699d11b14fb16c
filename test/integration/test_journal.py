# SPDX-License-Identifier: MIT
"""halod's records in journald with their fields (issue 16, logging): under journald, and
built with libsystemd, each record goes through the journal's native protocol with
HALO_SU=, HALO_SI=, HALO_COMPONENT=, HALO_NODE= and, for failovers, a fixed MESSAGE_ID=
(docs/logging.md).  journald here is a datagram socket of the test's, bind-mounted where
libsystemd sends (/run/systemd/journal/socket) in a mount namespace of halod's own."""
import os
import re
import shutil
import signal
import socket
import struct
import subprocess
import time

import pytest

from halo_harness import BUILD, wait_for

YAML = """
service-groups:
  svc:
    component: {type: non-sa-aware, command: /bin/sleep, args: ["1000"]}
    service-units: {a: {}, b: {}}
    service-instances: {web: {csis: {c: {}}}}
"""

MESSAGE_ID_FAILOVER = "39a0b9f74ad642dfa84e8d9f4cd9213a"
MESSAGE_ID_SU_FAILED = "259a6749245a4906892050adc5f6650e"


def with_libsystemd():
    with open(os.path.join(BUILD, "meson-info", "intro-dependencies.json")) as f:
        return '"libsystemd"' in f.read()


def can_unshare():
    return os.geteuid() == 0 and shutil.which("unshare") and subprocess.run(
        ["unshare", "-m", "true"], capture_output=True).returncode == 0


pytestmark = [
    pytest.mark.skipif(not with_libsystemd(), reason="halod built without libsystemd"),
    pytest.mark.skipif(not can_unshare(), reason="needs root and unshare -m for a journald of the test's"),
]


def parse_native(data):
    """One datagram of journald's native protocol: KEY=VALUE lines, or KEY, newline, a
    little-endian 64-bit length, the value, newline (values with newlines)."""
    fields, i = {}, 0
    while i < len(data):
        nl = data.index(b"\n", i)
        line = data[i:nl]
        if b"=" in line:
            k, v = line.split(b"=", 1)
            i = nl + 1
        else:
            k, (n,) = line, struct.unpack_from("<Q", data, nl + 1)
            v = data[nl + 9:nl + 9 + n]
            i = nl + 9 + n + 1
        fields[k.decode()] = v.decode(errors="replace")
    return fields


class Journal:
    """A datagram socket where halod's libsystemd sends: every record received, parsed."""

    def __init__(self, root):
        os.makedirs(os.path.join(root, "journal"))
        self.root = str(root)
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        self.sock.bind(os.path.join(self.root, "journal", "socket"))
        self.sock.setblocking(False)
        self.records = []

    def wrapper(self):
        """halod runs in a mount namespace with our directory as /run/systemd."""
        return ["unshare", "-m", "--propagation", "private", "sh", "-c",
                f'mount --bind {self.root} /run/systemd && exec "$@"', "sh"]

    def drain(self):
        while True:
            try:
                self.records.append(parse_native(self.sock.recv(1 << 20)))
            except BlockingIOError:
                return self.records

    def wait(self, pred, what):
        found = []
        wait_for(lambda: found.extend(r for r in self.drain() if pred(r)) or found, what=what)
        return found[0]


def under_journald(h):
    """halod's stderr (h.log_path) is what $JOURNAL_STREAM names, as systemd sets it."""
    open(h.log_path, "ab").close()
    st = os.stat(h.log_path)

    def preexec():
        os.environ["JOURNAL_STREAM"] = f"{st.st_dev}:{st.st_ino}"
    h.preexec_fn = preexec


@pytest.fixture
def journal(tmp_path):
    j = Journal(tmp_path / "run-systemd")
    yield j
    j.sock.close()


def test_failover_records_carry_their_fields(halod_factory, journal):
    h = halod_factory(YAML, log_level="info", wrapper=journal.wrapper())
    under_journald(h)
    h.start()
    active, standby = h.wait_assigned("web")
    started = journal.wait(lambda r: r.get("MESSAGE", "").startswith("Started component"), "a start record")
    assert started["SYSLOG_IDENTIFIER"] == "halod" and started["PRIORITY"] == "6"
    assert started["HALO_AREA"] == "amf" and started["CODE_FILE"].endswith(".c") and int(started["CODE_LINE"]) > 0
    assert started["HALO_SU"] in (active, standby) and started["HALO_COMPONENT"] == started["HALO_SU"]
    assert started["HALO_NODE"] == h.status()["node"] and started["HALO_SG"] == "svc", started

    os.kill(h.pid_of(active), signal.SIGKILL)
    failed = journal.wait(lambda r: r.get("MESSAGE_ID") == MESSAGE_ID_SU_FAILED, "the unit's failure")
    assert failed["MESSAGE"].startswith(f"Service unit '{failed['HALO_SU']}' failed: ")
    assert failed["PRIORITY"] == "4" and failed["HALO_SU"] == active, failed
    over = journal.wait(lambda r: r.get("MESSAGE_ID") == MESSAGE_ID_FAILOVER, "the failover")
    assert over["HALO_SI"] == "web" and over["HALO_SU"] == standby, over
    assert over["MESSAGE"] == f"Failing over 'web' to '{over['HALO_SU']}'" and over["PRIORITY"] == "5"
    assert h.stop() == 0
    # Every record went to the journal: none is written twice on stderr.
    assert "Failing over" not in h.logtext() and "Started component" not in h.logtext(), h.logtext()[-2000:]


def test_without_the_journal_socket_records_stay_on_stderr(halod_factory, tmp_path):
    """journald not there (no socket): each record is written on stderr with its priority."""
    empty = tmp_path / "empty"
    os.makedirs(empty)
    h = halod_factory(YAML, log_level="info", wrapper=[
        "unshare", "-m", "--propagation", "private", "sh", "-c", f'mount --bind {empty} /run/systemd && exec "$@"',
        "sh"])
    under_journald(h)
    h.start()
    active, _ = h.wait_assigned("web")
    os.kill(h.pid_of(active), signal.SIGKILL)
    wait_for(lambda: "<5>[amf] Failing over 'web'" in h.logtext(), what="the failover on stderr")
    assert h.stop() == 0


def test_the_catalog_explains_every_message_id(tmp_path):
    """packaging/halo.catalog (installed into systemd's catalog directory) parses, and has an
    entry for each MESSAGE_ID halod sends (the ids in src/halod/amf/amf-internal.h)."""
    src = os.path.join(os.path.dirname(__file__), "..", "..")
    with open(os.path.join(src, "src", "halod", "amf", "amf-internal.h")) as f:
        ids = set(re.findall(r'#define AMF_MESSAGE_ID_\w+ "([0-9a-f]{32})"', f.read()))
    assert MESSAGE_ID_FAILOVER in ids and MESSAGE_ID_SU_FAILED in ids
    cat = tmp_path / "usr" / "lib" / "systemd" / "catalog"
    os.makedirs(cat)
    shutil.copy(os.path.join(src, "packaging", "halo.catalog"), cat)
    subprocess.run(["journalctl", f"--root={tmp_path}", "--update-catalog"], check=True)
    listed = subprocess.run(["journalctl", f"--root={tmp_path}", "--list-catalog"], check=True,
                            capture_output=True, text=True).stdout
    assert {line.split()[0] for line in listed.splitlines() if " halo: " in line} == ids, listed


def test_a_components_lines_carry_its_name(halod_factory, journal):
    """stdout: journal: each line of the component is a record of its own, named after it."""
    talks = YAML.replace('command: /bin/sleep, args: ["1000"]',
                         'command: /bin/sh, args: ["-c", "echo ready; exec sleep 1000"], stdout: journal')
    h = halod_factory(talks, log_level="info", wrapper=journal.wrapper())
    under_journald(h)
    h.start()
    active, standby = h.wait_assigned("web")
    line = journal.wait(lambda r: r.get("MESSAGE") == f"{active}: ready", "the component's line")
    assert line["SYSLOG_IDENTIFIER"] == active and line["HALO_COMPONENT"] == active and line["PRIORITY"] == "6"
    assert line["HALO_AREA"] == "supervisor"
    assert h.stop() == 0


def test_a_components_records_keep_their_priority_and_fields(halod_factory, journal, tmp_path):
    """The log service under journald: a component's record keeps its own priority and carries
    HALO_COMPONENT, HALO_STREAM, HALO_SEVERITY and SYSLOG_IDENTIFIER (docs/logging.md)."""
    logcomp = os.path.join(BUILD, "test", "logcomp")
    text = f"""
service-groups:
  g:
    redundancy: no-redundancy
    component: {{command: {logcomp}, env: {{LOGCOMP_FILE: {tmp_path}/ticks}}}}
    service-units: {{a: {{}}}}
    service-instances: {{s: {{csis: {{c: {{}}}}}}}}
"""
    h = halod_factory(text, log_level="info", wrapper=journal.wrapper())
    under_journald(h)
    h.start()
    err = journal.wait(lambda r: re.fullmatch(r"a\[app\] error: tick \d+ error", r.get("MESSAGE", "")), "a record")
    assert err["PRIORITY"] == "3" and err["HALO_COMPONENT"] == "a" and err["SYSLOG_IDENTIFIER"] == "a", err
    assert err["HALO_STREAM"] == "app" and err["HALO_SEVERITY"] == "error" and err["HALO_AREA"] == "supervisor"
    h.ctl("log-level", "comp:a", "trace")
    trace = journal.wait(lambda r: r.get("HALO_SEVERITY") == "trace", "a trace record")
    assert trace["PRIORITY"] == "7" and re.fullmatch(r"a\[app\] trace: tick \d+ trace", trace["MESSAGE"]), trace
    assert h.stop() == 0


def test_a_journal_that_takes_nothing_never_holds_halod_up(halod_factory, journal, tmp_path):
    """journald behind (here it reads nothing for a while) must not stop halod's event loop: halod
    goes on answering, the records journald's socket does not take are dropped and counted, and the
    first record it takes afterwards says how many (docs/logging.md).  With a socket that blocks,
    halod stopped at the first full queue, and so did every failover."""
    logcomp = os.path.join(BUILD, "test", "logcomp")
    text = f"""
service-groups:
  g:
    redundancy: no-redundancy
    component: {{command: {logcomp}, env: {{LOGCOMP: flood}}}}
    service-units: {{a: {{}}}}
    service-instances: {{s: {{csis: {{c: {{}}}}}}}}
"""
    h = halod_factory(text, log_level="info", wrapper=journal.wrapper())
    under_journald(h)
    h.start()
    journal.wait(lambda r: r.get("MESSAGE", "").startswith("a[app] info: flood"), "a flood record")
    # Not read from now on: 20,000 records a tick fill the socket's queue at once.
    for _ in range(5):
        t0 = time.monotonic()
        assert h.ctl("status", "--json").returncode == 0
        assert time.monotonic() - t0 < 5, "halod took seconds to answer while the journal was full"
        time.sleep(0.2)
    told = journal.wait(lambda r: re.fullmatch(r"\d+ records were dropped: the journal did not take them in time",
                                               r.get("MESSAGE", "")), "the count of the dropped records")
    assert told["PRIORITY"] == "4" and int(told["MESSAGE"].split()[0]) > 0, told
    assert h.stop() == 0
