# SPDX-License-Identifier: MIT
"""What `meson install` puts beside the binaries: the systemd unit passes
systemd-analyze verify with no warning, and says what halod needs of systemd."""
import json
import os
import re
import shutil
import subprocess

import pytest

from halo_harness import BUILD, HALOCTL, HALOD, TESTCOMP


def test_the_unit_verifies_and_keeps_components_across_a_restart(tmp_path):
    if not shutil.which("systemd-analyze"):
        pytest.fail("systemd-analyze is missing (Debian package systemd)")
    with open(os.path.join(BUILD, "halod.service")) as f:
        unit = f.read()
    settings = {line.split("=", 1)[0]: line.split("=", 1)[1] for line in unit.splitlines()
                if "=" in line and not line.startswith("#")}
    assert settings["Type"] == "notify"  # READY=1 (test_systemd.py)
    assert settings["KillMode"] == "process"  # halod stops its components itself, and adopts them after a restart
    assert settings["WatchdogSec"] and settings["RuntimeDirectoryPreserve"] == "yes"
    assert settings["ExecStartPre"].endswith("halod --check /etc/halo/cluster.yaml")
    # verify wants the programs it names to exist: point them at this build's.
    installed = settings["ExecStart"].split()[0]
    path = tmp_path / "halod.service"
    path.write_text(unit.replace(installed, HALOD))
    r = subprocess.run(["systemd-analyze", "verify", "--man=no", str(path)], capture_output=True, text=True,
                       timeout=60)
    assert r.returncode == 0 and not (r.stdout + r.stderr).strip(), r.stdout + r.stderr


SRC = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
PAGES = {"halod.8": "man8", "haloctl.8": "man8", "halo.yaml.5": "man5", "libhalo.3": "man3"}


def help_text(prog):
    return subprocess.run([prog, "--help"], capture_output=True, text=True, timeout=10).stdout


def haloctl_commands():
    """The commands `haloctl --help` lists (first word of each line under Commands:)."""
    text = help_text(HALOCTL)
    body = text.split("Commands:", 1)[1].split("Options:", 1)[0]
    cmds = set()
    for line in body.splitlines():
        m = re.match(r"^  ([a-z][a-z-]*)\b", line)
        if m:
            cmds.add(m.group(1))
    return cmds


def admin_operations():
    text = help_text(HALOCTL)
    return set(re.findall(r"^      ([a-z][a-z-]+) {2,}(?:su|sg|si|node|comp)\b", text, re.M))


def installed(tmp_path):
    """`meson install` of this build into tmp_path: {relative path: absolute path}."""
    r = subprocess.run(["meson", "install", "-C", BUILD, "--no-rebuild", "--quiet", "--destdir", str(tmp_path)],
                       capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stdout + r.stderr
    files = {}
    for root, _, names in os.walk(tmp_path):
        for n in names:
            p = os.path.join(root, n)
            files[os.path.relpath(p, tmp_path)] = p
    return files


def find(files, suffix):
    hits = [p for rel, p in files.items() if rel.endswith(suffix)]
    assert hits, f"meson install put nothing at */{suffix}: {sorted(files)}"
    return hits[0]


def test_meson_install_puts_everything_an_operator_needs_in_place(tmp_path):
    files = installed(tmp_path)
    for suffix in ["bin/halod", "bin/haloctl", "include/halo/halo.h", "pkgconfig/halo.pc", "halod.service",
                   "tmpfiles.d/halo.conf", "bash-completion/completions/haloctl", "etc/halo/cluster.yaml.example",
                   "libexec/halo/halo-guard", "systemd/catalog/halo.catalog"]:
        find(files, suffix)
    assert any(re.search(r"/libhalo\.so\.\d+", rel) for rel in files), sorted(files)
    for page, section in PAGES.items():
        find(files, f"man/{section}/{page}")
    # The example is a description halod accepts, and not one the unit would start on by itself.
    example = find(files, "etc/halo/cluster.yaml.example")
    r = subprocess.run([HALOD, "--check", example], capture_output=True, text=True, timeout=60)
    assert r.returncode == 0 and "configuration OK" in r.stdout + r.stderr, r.stdout + r.stderr
    assert not any(rel.endswith("etc/halo/cluster.yaml") for rel in files)


def test_tmpfiles_creates_the_socket_and_state_directories(tmp_path):
    if not shutil.which("systemd-tmpfiles"):
        pytest.fail("systemd-tmpfiles is missing (Debian package systemd)")
    conf = os.path.join(SRC, "packaging", "halo.tmpfiles")
    root = tmp_path / "root"
    root.mkdir()
    r = subprocess.run(["systemd-tmpfiles", "--create", f"--root={root}", conf], capture_output=True, text=True,
                       timeout=60)
    assert r.returncode == 0, r.stdout + r.stderr
    assert oct(os.stat(root / "run" / "halo").st_mode & 0o7777) == "0o755"
    assert oct(os.stat(root / "var" / "lib" / "halo").st_mode & 0o7777) == "0o700"


def man_text(page):
    path = os.path.join(BUILD, page)
    assert os.path.exists(path), f"{page} was not built (scdoc missing? Debian package scdoc)"
    # -ww: every warning; a page groff complains about renders badly in man(1).
    r = subprocess.run(["groff", "-man", "-ww", "-z", path], capture_output=True, text=True, timeout=60)
    assert r.returncode == 0 and not r.stderr.strip(), r.stderr
    r = subprocess.run(["groff", "-man", "-rLL=1000n", "-rHY=0", "-Tascii", "-P-cbou", path], capture_output=True, text=True, timeout=60)
    return r.stdout


def test_man_pages_render_cleanly_and_name_every_command_option_key_and_function():
    """The man pages are kept true by this test: what the programs and the library offer
    is named on its page."""
    haloctl = man_text("haloctl.8")
    missing = [c for c in sorted(haloctl_commands() | admin_operations()) if c not in haloctl]
    assert not missing, f"haloctl(8) does not name {missing}"
    halod = man_text("halod.8")
    options = set(re.findall(r"(--[a-z][a-z-]+)", help_text(HALOD)))
    assert not [o for o in sorted(options) if o not in halod], options
    libhalo = man_text("libhalo.3")
    with open(os.path.join(SRC, "src", "libhalo", "libhalo.sym")) as f:
        symbols = set(re.findall(r"\b(halo_[a-z0-9_]+);", f.read()))
    assert len(symbols) > 40
    assert not [s for s in sorted(symbols) if s not in libhalo]
    yaml5 = man_text("halo.yaml.5")
    with open(os.path.join(SRC, "docs", "configuration.md")) as f:
        conf = f.read()
    # The keys of the tables of docs/configuration.md's top-level, node, service group,
    # service unit, service instance and component settings sections.
    keys = set()
    for section in ["## Top-level keys", "### Service group", "### Service unit", "### Service instance",
                    "### Component settings"]:
        body = conf.split(section, 1)[1].split("\n#", 1)[0]
        keys |= set(re.findall(r"^\| `([a-z-]+)` \|", body, re.M))
    keys |= {"cdb-address", "su-failover"}
    assert len(keys) > 40
    assert not [k for k in sorted(keys) if k not in yaml5]


COMPLETE = r'''
source "$1"
t() { COMP_LINE="$2"; COMP_POINT=${#2}; COMPREPLY=(); _haloctl; echo "${COMPREPLY[*]}"; }
'''


def complete(line, sock=None):
    script = COMPLETE + f't x "haloctl {"--socket " + sock + " " if sock else ""}{line}"\n'
    r = subprocess.run(["bash", "-c", script, "bash", os.path.join(SRC, "packaging", "haloctl.bash")],
                       capture_output=True, text=True, timeout=30,
                       env=dict(os.environ, PATH=os.path.dirname(HALOCTL) + ":" + os.environ["PATH"]))
    assert r.returncode == 0, r.stderr
    return r.stdout.split()


def test_bash_completion_offers_every_command_and_the_cluster_s_names(halod_factory, tmp_path):
    assert set(complete("")) == haloctl_commands()
    assert set(complete("admin ")) == admin_operations()
    assert complete("admin lo") == ["lock", "lock-instantiation"]
    assert complete("--js") == ["--json"]
    assert complete("txn f") == ["forget"]
    h = halod_factory(f"""
service-groups:
  g:
    component:
      command: {TESTCOMP}
      env: {{TESTCOMP_LOG: "{tmp_path}/log"}}
    service-units:
      ua: {{}}
      ub: {{}}
    service-instances:
      web: {{csis: {{c: {{}}}}}}
""").start()
    h.wait_assigned("web")
    assert complete("admin lock su:", h.socket) == ["ua", "ub"]  # bash completes what follows the ':'
    assert complete("admin si-swap si:w", h.socket) == ["web"]
    assert complete("switchover ", h.socket) == ["web"]
    assert complete("restart u", h.socket) == ["ua", "ub"]
    assert h.ctl("names", "node").stdout.split() == ["local"] and h.ctl("names", "sg").stdout.split() == ["g"]
    assert h.ctl("names", "volume", check=False).returncode == 2
    # No halod answering: no names, and no error on the terminal.
    assert complete("admin lock su:", str(tmp_path / "nothing.sock")) == []


def test_halod_and_haloctl_meet_in_run_halo_by_default(tmp_path):
    """halod with neither --state-dir nor --socket binds /run/halo/halod.sock (state in
    /var/lib/halo); haloctl with neither --socket nor $HALO_SOCKET finds it there.  Run in
    a mount namespace of the test's own, with tmpfs over /run and /var/lib, so the
    machine's own directories are not touched."""
    desc = tmp_path / "c.yaml"
    desc.write_text(f"""
service-groups:
  g:
    component:
      command: {TESTCOMP}
      env: {{TESTCOMP_LOG: "{tmp_path}/log"}}
    service-units: {{ua: {{}}, ub: {{}}}}
    service-instances: {{web: {{csis: {{c: {{}}}}}}}}
""")
    script = f"""
set -e
mount -t tmpfs none /run
mount -t tmpfs none /var/lib
env -u HALO_SOCKET {HALOD} --http none {desc} 2>{tmp_path}/halod.log &
pid=$!
for i in $(seq 200); do [ -S /run/halo/halod.sock ] && break; sleep 0.05; done
ls -ld /run/halo /var/lib/halo | cut -c1-10
env -u HALO_SOCKET {HALOCTL} --json status > {tmp_path}/status.json
env -u HALO_SOCKET {HALOCTL} stop-halod >/dev/null
wait $pid
"""
    r = subprocess.run(["unshare", "--mount", "--propagation", "private", "sh", "-c", script],
                       capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, r.stdout + r.stderr + (tmp_path / "halod.log").read_text()
    assert r.stdout.split() == ["drwxr-xr-x", "drwx------"], r.stdout
    with open(tmp_path / "status.json") as f:
        assert json.load(f)["service_groups"][0]["name"] == "g"
