# SPDX-License-Identifier: MIT
"""Crash capture end to end: a component that dies of a fatal signal shows the
signal, the faulting address and a backtrace (libhalo's handler) or at least the
signal (a program without libhalo) as its unit's last failure."""
import os
import re

from halo_harness import FAST_RESTART_HEAD, TESTCOMP, testcomp_events as events, wait_for


PYTHON = "/usr/bin/python3"


# Under the sanitizer build ASan installs its own handler for the fatal signals and
# libhalo (rightly) leaves a handler it did not find at the default alone: the
# components here ask ASan not to, as a user of a sanitized component would.  (UBSan
# installs none; testcomp's store through NULL is kept from its null check, which with
# run-all's UBSAN_OPTIONS=halt_on_error=1 would end the process with status 1 instead.)
ASAN_OFF = ":".join(filter(None, [os.environ.get("ASAN_OPTIONS"),
                                  "handle_segv=0:handle_sigbus=0:handle_sigfpe=0:handle_sigill=0:handle_abort=0"]))


def segv_yaml(log, env_a="", group=""):
    return FAST_RESTART_HEAD + f"""  svc:
{group}    component:
      command: {TESTCOMP}
      env: {{TESTCOMP_LOG: "{log}", ASAN_OPTIONS: "{ASAN_OFF}"}}
    service-units:
      svc-a: {{component: {{env: {{TESTCOMP: "segv-on-active"{env_a}}}}}}}
      svc-b: {{}}
    service-instances:
      svc:
        csis:
          svc-csi: {{}}
"""


def test_a_segv_shows_signal_address_and_backtrace(halod_factory, tmp_path):
    log = tmp_path / "comp.log"
    h = halod_factory(segv_yaml(log)).start()
    wait_for(lambda: any(e[1] == "SEGV" for e in events(log, "svc-a")), what="svc-a crashing")
    wait_for(lambda: h.si("svc")["active"] == "svc-b", what="svc-b ACTIVE")
    # The standby takes over; the crashed unit comes back as the standby.
    assert h.wait_assigned("svc") == ("svc-b", "svc-a")
    failure = h.su("svc-a")["last_failure"]
    # After the rung of the recovery ladder that acted (the default escalation: su-failover).
    assert failure.startswith("su-failover: component 'svc-a' killed by SIGSEGV (signal 11) at 0x0, backtrace: "), failure
    frames = failure.split("backtrace: ", 1)[1].split(" | ")
    # backtrace_symbols_fd() lines: "module(symbol+offset) [0xaddress]"; one of them is testcomp's own code.
    assert all(re.search(r"\[0x[0-9a-f]+\]$", f) for f in frames), frames
    assert any("testcomp" in f for f in frames), frames
    assert h.comp("svc-a")["last_exit"].startswith("killed by SIGSEGV (signal 11) at 0x0, backtrace: ")
    assert "killed by SIGSEGV (signal 11) at 0x0" in h.ctl("status").stdout
    assert "Component 'svc-a' (pid" in h.logtext() and "killed by SIGSEGV (signal 11) at 0x0" in h.logtext()
    # The file was read and removed: the restarted process has a new, empty one.
    wait_for(lambda: h.comp("svc-a")["presence"] == "INSTANTIATED", what="svc-a back")
    assert os.path.getsize(os.path.join(h.state, "crash", "svc-a")) == 0
    assert h.stop() == 0


def test_a_crash_restarting_in_place_shows_the_signal_in_the_last_recovery(halod_factory, tmp_path):
    # The ladder's component restart: no unit failure, the crash is the restart's reason (the
    # broken link, which comes first, is replaced by it), after the rung.
    log = tmp_path / "comp.log"
    h = halod_factory(segv_yaml(log, group="    escalation: {component-restart: {max: 3, probation: 1m}}\n")).start()
    wait_for(lambda: "killed by SIGSEGV" in (h.su("svc-a").get("last_recovery") or ""), what="svc-a's crash recorded")
    recovery = h.su("svc-a")["last_recovery"]
    assert re.match(r"component-restart [123]/3: component 'svc-a' killed by SIGSEGV \(signal 11\) at 0x0, "
                    r"backtrace: ", recovery), recovery
    assert h.stop() == 0


def test_the_handler_is_opt_out(halod_factory, tmp_path):
    log = tmp_path / "comp.log"
    h = halod_factory(segv_yaml(log, ', HALO_CRASH_HANDLER: "0"')).start()
    wait_for(lambda: any(e[1] == "SEGV" for e in events(log, "svc-a")), what="svc-a crashing")
    wait_for(lambda: h.si("svc")["active"] == "svc-b", what="svc-b ACTIVE")
    assert h.wait_assigned("svc") == ("svc-b", "svc-a")
    # Without the handler only the wait status tells: the signal, no address, no frames.
    assert h.su("svc-a")["last_failure"] == "su-failover: component 'svc-a' killed by SIGSEGV (signal 11)"
    assert h.stop() == 0


def abort_yaml():
    return FAST_RESTART_HEAD + f"""  plain:
    component:
      type: non-sa-aware
      command: {PYTHON}
    service-units:
      plain-a: {{component: {{args: ["-c", "import os, time; time.sleep(0.3); os.abort()"]}}}}
      plain-b: {{component: {{args: ["-c", "import time; time.sleep(3600)"]}}}}
    service-instances:
      plain:
        csis:
          plain-csi: {{}}
"""


def test_a_program_without_libhalo_killed_by_sigabrt_shows_the_signal(halod_factory):
    h = halod_factory(abort_yaml()).start()
    # The recovery ladder's rung comes first ("su-failover: ", the default escalation).
    wait_for(lambda: (h.su("plain-a").get("last_failure") or "").startswith(
        "su-failover: component 'plain-a' killed by SIGABRT"), what="plain-a's abort recorded")
    assert h.su("plain-a")["last_failure"] == "su-failover: component 'plain-a' killed by SIGABRT (signal 6)"
    assert h.wait_assigned("plain") == ("plain-b", "plain-a")
    assert "killed by SIGABRT (signal 6)" in h.ctl("status").stdout
    assert "Component 'plain-a' (pid" in h.logtext()
    assert h.stop() == 0
