# SPDX-License-Identifier: MIT
"""Each component's stdout and stderr where its `stdout` key says (issue 16, logging):
`journal`, each line into halod's log tagged with the component's name; a FILE, appended;
`inherit` (the default), halod's own stdout and stderr as they are."""
import os
import re
import stat
import time

from halo_harness import wait_for

SCRIPT = ("echo hello on stdout; echo oops on stderr >&2; printf 'no newline at the end'; "
          "echo; head -c 10000 /dev/zero | tr '\\\\0' x; echo; exec sleep 1000")


def yaml(stdout_line, script=SCRIPT):
    return f"""
service-groups:
  g:
    component:
      type: non-sa-aware
      command: /bin/sh
      args: ["-c", "{script}"]
{stdout_line}
    service-units: {{a: {{}}, b: {{}}}}
    service-instances: {{s: {{csis: {{c: {{}}}}}}}}
"""


def test_journal_tags_each_line_with_the_component(halod_factory):
    h = halod_factory(yaml("      stdout: journal"), log_level="info").start()
    active, _ = h.wait_assigned("s")
    comp = active  # a unit of one component: the component has its name
    def pieces():
        return re.findall(rf"halod\[supervisor\] info: {re.escape(comp)}: (x+)\n", h.logtext())
    # A line longer than 4 KiB comes in pieces of 4 KiB: no line is held whole.
    wait_for(lambda: len(pieces()) == 3, what="the long line's three pieces")
    assert [len(p) for p in pieces()] == [4096, 4096, 10000 - 2 * 4096], [len(p) for p in pieces()]
    log = h.logtext()  # the lines before it are in: one pipe, read in order
    assert f"halod[supervisor] info: {comp}: hello on stdout\n" in log, log[-3000:]
    assert f"halod[supervisor] info: {comp}: oops on stderr\n" in log
    assert f"halod[supervisor] info: {comp}: no newline at the end\n" in log
    # Nothing of it reaches halod's stderr untagged.
    assert not [x for x in log.splitlines() if x.startswith(("hello", "oops", "x"))]
    assert h.stop() == 0


def test_a_file_gets_the_output_appended(halod_factory):
    h = halod_factory(yaml("      stdout: out.log"), log_level="info")
    out = os.path.join(h.dir, "out.log")
    with open(out, "w") as f:
        f.write("kept\n")
    h.start()
    h.wait_assigned("s")
    wait_for(lambda: "x" * 10000 in open(out).read(), what="the output in the file")
    text = open(out).read()
    assert text.startswith("kept\nhello on stdout\n") and "oops on stderr\n" in text, text[:200]
    assert "hello on stdout" not in h.logtext()
    assert h.stop() == 0
    os.unlink(out)
    h.start()  # created if missing, 0640
    wait_for(lambda: os.path.exists(out) and "hello on stdout" in open(out).read(), what="a new file")
    assert stat.S_IMODE(os.stat(out).st_mode) & ~0o640 == 0
    assert h.stop() == 0


def test_inherit_is_the_default_and_leaves_output_as_it_was(halod_factory):
    h = halod_factory(yaml(""), log_level="info").start()
    h.wait_assigned("s")
    wait_for(lambda: "\nhello on stdout\n" in h.logtext(), what="the untagged line")
    assert ": hello on stdout" not in h.logtext()
    assert h.stop() == 0


def test_a_flood_does_not_starve_halod(halod_factory):
    """A component that writes as fast as it can: halod reads it 4 KiB at a time on its loop
    and goes on answering (its lines are read and dropped: the supervisor area logs warnings)."""
    h = halod_factory(yaml("      stdout: journal", script="exec yes flood"),
                      log_level="supervisor=warning").start()
    active, standby = h.wait_assigned("s")
    yes = h.pid_of(active)

    def written():
        with open(f"/proc/{yes}/io") as f:
            return int(re.search(r"wchar: (\d+)", f.read()).group(1))
    before, slowest = written(), []

    def answers_while_it_reads():
        t = time.monotonic()
        slowest.append((h.si("s")["active"], time.monotonic() - t))
        # halod reads it all along (a pipe nobody reads would hold yes at 64 KiB).
        return written() - before > 4 << 20
    wait_for(answers_while_it_reads, timeout=30, what="4 MiB of the flood read")
    assert all(a == active and t < 3 for a, t in slowest), slowest
    assert "flood" not in h.logtext()
    assert h.stop() == 0
