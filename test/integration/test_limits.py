# SPDX-License-Identifier: MIT
"""What one local client can hold of halod: its send queue, its connections, its file descriptors."""
import errno
import os
import re
import resource
import signal
import socket
import threading
import time
import urllib.request

from halo_harness import cdb_only_yaml, free_port, wait_for
from rawlink import RawLink, cdb_commit, cdb_subscribe, parse
from test_2n import counter_yaml


def proc_status(pid, field):
    """A field of /proc/PID/status in kB (VmRSS, VmHWM)."""
    with open(f"/proc/{pid}/status") as f:
        return int(re.search(rf"^{field}:\s+(\d+) kB", f.read(), re.M).group(1))


def metric(port, name):
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5) as r:
        m = re.search(rf"^{name} (\S+)$", r.read().decode(), re.M)
    return float(m.group(1)) if m else None


def subscribe(link, n, path):
    """n subscriptions of path on link, each acknowledged."""
    for i in range(n):
        link.send(cdb_subscribe(i + 1, path, seq=i + 1))
        assert link.reply() == (i + 1, 0)


def test_cdb_subscribers_that_never_read_are_cut_off_and_the_others_keep_going(halod_factory, monkeypatch):
    """40 clients subscribe to the CDB and never read while large commits go on: halod's memory
    stays bounded (each slow reader is cut off, with a log line that names it, and counted in
    /metrics), and a subscriber that reads gets every change."""
    # A sanitized halod keeps what it freed in quarantine (256 MB): without it, its peak is that of
    # the queues it holds, as in a plain build.
    monkeypatch.setenv("ASAN_OPTIONS", ":".join(filter(None, [os.environ.get("ASAN_OPTIONS"), "quarantine_size_mb=0"])))
    http = free_port()
    h = halod_factory(cdb_only_yaml("limits"), name="limits", log_level="info",
                      extra_args=["--http", f"127.0.0.1:{http}"]).start()
    stalled = []
    for _ in range(40):
        link = RawLink(h.socket)
        assert link.hello() == 0
        subscribe(link, 16, "/big")
        stalled.append(link)

    reader = RawLink(h.socket)
    assert reader.hello() == 0
    subscribe(reader, 1, "/big")
    seen = []

    def read():
        reader.s.settimeout(30)
        while len(seen) < commits:
            msg = parse(reader.recv())
            if 36 in msg:  # CdbChange
                seen.append(parse(msg[36][0])[2][0].decode())

    commits = 300
    t = threading.Thread(target=read)
    t.start()
    writer = RawLink(h.socket)
    assert writer.hello() == 0
    value = b"v" * 50000
    for i in range(commits):
        writer.send(cdb_commit([("/big/k", value + str(i).encode())], seq=i + 1))
        assert writer.reply() == (i + 1, 0)
    t.join(30)
    assert len(seen) == commits, f"the reading subscriber got {len(seen)} of {commits} changes"

    peak = proc_status(h.proc.pid, "VmHWM")
    assert peak < 100 * 1024, f"halod grew to {peak} kB"
    assert metric(http, "halo_clients_cut_off_total") >= 1
    assert f"client pid {os.getpid()}" in h.logtext() and "not reading its HA link" in h.logtext()
    assert h.stop() == 0


def cpu_seconds(pid):
    """utime + stime of pid."""
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def test_more_idle_links_than_descriptors_leave_halod_responsive(halod_factory, tmp_path):
    """halod runs with 1,024 descriptors and a client opens more idle HA links than that: halod
    keeps a reserve (it does not spin on accept, nor fill its log), haloctl still gets an answer,
    and a crashed ACTIVE is restarted and registers again."""
    port = free_port()
    h = halod_factory(counter_yaml(tmp_path, port), name="fds", log_level="info",
                      preexec_fn=lambda: resource.setrlimit(resource.RLIMIT_NOFILE, (1024, 1024))).start()
    assert h.wait_assigned("counter") == ("counter-a", "counter-b")
    log_size = os.path.getsize(h.log_path)

    links = []
    deadline = time.monotonic() + 60
    while len(links) < 1100:
        s = socket.socket(socket.AF_UNIX, socket.SOCK_SEQPACKET)
        s.setblocking(False)
        while s.connect_ex(h.socket) == errno.EAGAIN:  # the backlog is full: halod accepts in turns
            assert time.monotonic() < deadline, f"halod stopped accepting after {len(links)} links"
            time.sleep(0.001)
        links.append(s)
    try:
        cpu = cpu_seconds(h.proc.pid)
        time.sleep(2)  # the window CPU time is measured over
        assert cpu_seconds(h.proc.pid) - cpu < 0.5, "halod is spinning"

        start = time.monotonic()
        assert h.status()["cluster"] == "test"
        assert time.monotonic() - start < 5, "haloctl status took too long"

        old = h.pid_of("counter-a")
        os.kill(old, signal.SIGKILL)
        wait_for(lambda: h.pid_of("counter-a") not in (None, old) and h.comp("counter-a")["registered"],
                 timeout=20, what="counter-a restarted and registered")
        assert h.wait_assigned("counter") == ("counter-b", "counter-a")
        assert "Too many open files" not in h.logtext()
        assert os.path.getsize(h.log_path) - log_size < 64 * 1024, "halod's log grew too much"
    finally:
        for s in links:
            s.close()
    assert h.stop() == 0


def nofile(pid):
    """The (soft, hard) open-file limit of pid."""
    with open(f"/proc/{pid}/limits") as f:
        soft, hard = re.search(r"^Max open files\s+(\d+)\s+(\d+)", f.read(), re.M).groups()
    return int(soft), int(hard)


def test_halod_raises_its_descriptor_limit_and_its_components_keep_theirs(halod_factory, tmp_path):
    h = halod_factory(counter_yaml(tmp_path, free_port()), name="nofile",
                      preexec_fn=lambda: resource.setrlimit(resource.RLIMIT_NOFILE, (1024, 4096))).start()
    h.wait_assigned("counter")
    assert nofile(h.proc.pid) == (4096, 4096)
    assert nofile(h.pid_of("counter-a")) == (1024, 4096)
    assert h.stop() == 0
