# SPDX-License-Identifier: MIT
"""The Debian packages `make deb` builds (debian/): lintian finds no error and no warning, each
package holds the files it should and depends on what it should, libhalo0's symbols are
libhalo.sym's, and the packages install with dpkg into a fresh root made of this machine's own
packages, beside a package owning dist-packages/halo/ as Debian's python3-halo does, where the
installed halod and haloctl run, a C program builds with pkg-config and serves under the
installed halod, and Python imports each halo package.  `make deb-check` runs it (after
`make deb`); .ci/run runs that after `make check`."""
import os
import re
import shutil
import subprocess

import pytest

SRC = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
DEBS = os.environ.get("HALO_DEB") or os.path.join(SRC, "build-deb")
VERSION = re.match(r"halo \(([^)]+)\)", open(os.path.join(SRC, "debian", "changelog")).readline()).group(1)
PACKAGES = ["libhalo0", "libhalo-dev", "halod", "haloctl", "python3-libhalo"]
PY = "cpython-311-x86_64-linux-gnu"

# Each package's files (not directories), usr/share/doc left out; a symlink as "path -> target".
FILES = {
    "libhalo0": {"usr/lib/x86_64-linux-gnu/libhalo.so.0.7.0",
                 "usr/lib/x86_64-linux-gnu/libhalo.so.0 -> libhalo.so.0.7.0"},
    "libhalo-dev": {"usr/include/halo/halo.h", "usr/include/halo/cdb.h", "usr/include/halo/ha.h", "usr/include/halo/log.h",
                    "usr/include/halo/ckpt.h", "usr/include/halo/name.h", "usr/include/halo/events.h",
                    "usr/include/halo/txn.h",
                    "usr/lib/x86_64-linux-gnu/pkgconfig/halo.pc", "usr/share/man/man3/libhalo.3.gz",
                    "usr/lib/x86_64-linux-gnu/libhalo.so -> libhalo.so.0"},
    "halod": {"usr/bin/halod", "usr/libexec/halo/halo-guard", "lib/systemd/system/halod.service",
              "usr/lib/tmpfiles.d/halo.conf", "usr/lib/systemd/catalog/halo.catalog",
              "etc/halo/cluster.yaml.example", "usr/share/man/man8/halod.8.gz",
              "usr/share/man/man5/halo.yaml.5.gz"},
    "haloctl": {"usr/bin/haloctl", "usr/share/bash-completion/completions/haloctl",
                "usr/share/man/man8/haloctl.8.gz"},
    "python3-libhalo": {"usr/lib/halo/python/halo/__init__.py", "usr/lib/halo/python/halo/error.py",
                        "usr/lib/halo/python/halo/events.py", f"usr/lib/halo/python/halo/ha.{PY}.so",
                        f"usr/lib/halo/python/halo/component.{PY}.so",
                        "usr/share/python3/runtime.d/python3-libhalo.rtupdate"},
}


def deb(pkg):
    path = os.path.join(DEBS, f"{pkg}_{VERSION}_amd64.deb")
    assert os.path.exists(path), f"{path} is missing: `make deb-check` builds the packages first"
    return path


def run(*cmd, **kw):
    r = subprocess.run(cmd, capture_output=True, text=True, timeout=kw.pop("timeout", 120), **kw)
    assert r.returncode == 0, f"{' '.join(cmd)}: {r.stdout}{r.stderr}"
    return r.stdout


def test_lintian_finds_no_error_and_no_warning():
    if not shutil.which("lintian"):
        pytest.fail("lintian is missing (tools/install-deps deb installs it)")
    changes = os.path.join(DEBS, f"halo_{VERSION}_amd64.changes")
    r = subprocess.run(["lintian", "--fail-on", "error,warning", changes], capture_output=True, text=True, timeout=600)
    tags = [line for line in r.stdout.splitlines() if re.match(r"^[EW]: ", line)]
    assert r.returncode == 0 and not tags, r.stdout + r.stderr


def test_each_package_holds_its_files():
    for pkg in PACKAGES:
        files = set()
        for line in run("dpkg-deb", "--contents", deb(pkg)).splitlines():
            name = line.split(None, 5)[5]
            if not name.endswith("/") and "/usr/share/doc/" not in name:
                files.add(name[2:])  # "./usr/..." -> "usr/..."
        assert files == FILES[pkg], f"{pkg}: {sorted(files ^ FILES[pkg])}"


def field(pkg, name):
    return run("dpkg-deb", "--field", deb(pkg), name).strip()


def test_dependencies():
    # halod loads libcurl.so.4 with dlopen (src/store/etcd/curl-dl.c): dpkg-shlibdeps cannot see it.
    depends = field("halod", "Depends")
    assert re.search(r"\blibcurl4\b", depends) and "libsystemd0" in depends and "libhalo0" not in depends
    assert {"etcd-server", "resource-agents"} <= set(re.split(r",\s*", field("halod", "Recommends")))
    assert re.search(r"libhalo0 \(>= [0-9.]+\)", field("haloctl", "Depends"))
    assert field("libhalo-dev", "Depends").startswith(f"libhalo0 (= {VERSION})")
    py = field("python3-libhalo", "Depends")
    assert "python3 (>= 3.11~)" in py and "libhalo0" in py
    assert field("python3-libhalo", "Package") != "python3-halo"


def test_the_symbols_file_lists_what_libhalo_sym_exports():
    with open(os.path.join(SRC, "src", "libhalo", "libhalo.sym")) as f:
        text = re.sub(r"/\*.*?\*/", "", f.read(), flags=re.S)
    exported = set()
    for node, body in re.findall(r"(HALO_[0-9.]+)\s*\{(.*?)\}", text, re.S):
        exported.add(f"{node}@{node}")
        exported |= {f"{s}@{node}" for s in re.findall(r"\b(halo_[a-z0-9_]+);", body.split("local:")[0])}
    with open(os.path.join(SRC, "debian", "libhalo0.symbols")) as f:
        listed = {line.split()[0] for line in f if line.startswith(" ")}
    assert listed == exported, sorted(listed ^ exported)
    # What the package ships is that file (dh_makeshlibs -c4 fails the build on any difference).
    shipped = control_file("libhalo0", "symbols")
    assert {line.split()[0] for line in shipped.splitlines() if line.startswith(" ")} == exported


def control_file(pkg, name):
    return run("sh", "-c", f"dpkg-deb --ctrl-tarfile {deb(pkg)} | tar -xO ./{name}")


def test_halod_is_neither_enabled_nor_started_nor_restarted_but_stopped_on_removal():
    """halod needs /etc/halo/cluster.yaml, which the operator writes; an upgrade leaves a running halod
    alone (the operator restarts it when it suits, and it adopts its components)."""
    postinst = control_file("halod", "postinst")
    assert "systemd-tmpfiles" in postinst and "halo.conf" in postinst
    assert "deb-systemd-invoke" not in postinst, postinst  # no start, no restart
    # Enabled again (after an upgrade) only where the operator had enabled it: the line before the
    # comment before each enable asks was-enabled.
    enables = re.findall(r"[^\n]*\n[^\n]*\n\s*deb-systemd-helper enable", postinst)
    assert all("deb-systemd-helper --quiet was-enabled 'halod.service'" in e for e in enables), postinst
    prerm = control_file("halod", "prerm")
    assert re.search(r'"\$1" = remove .*\n\s*deb-systemd-invoke stop halod.service', prerm), prerm
    assert prerm.count("deb-systemd-invoke") == 1, prerm


def standin_python3_halo(tmp_path):
    """A package owning what Debian 12's python3-halo owns, dist-packages/halo/ (without the network)."""
    root = tmp_path / "python3-halo"
    (root / "DEBIAN").mkdir(parents=True)
    (root / "DEBIAN" / "control").write_text(
        "Package: python3-halo\nVersion: 0.0.31-3\nArchitecture: all\nMaintainer: test <test@halo.invalid>\n"
        "Description: stand-in for the spinner of the same import name\n")
    pkgdir = root / "usr" / "lib" / "python3" / "dist-packages" / "halo"
    pkgdir.mkdir(parents=True)
    (pkgdir / "__init__.py").write_text('"""the spinner"""\n')
    run("dpkg-deb", "--root-owner-group", "--build", str(root), str(tmp_path / "python3-halo.deb"))
    return tmp_path / "python3-halo.deb"


def test_the_packages_install_in_a_fresh_root_and_work(tmp_path):
    for pkg in PACKAGES:
        deb(pkg)
    standin = standin_python3_halo(tmp_path)
    scratch = tmp_path / "root"
    scratch.mkdir()
    r = subprocess.run(["unshare", "-m", "--propagation", "private", "sh", os.path.join(SRC, "test", "deb", "inroot.sh"),
                        str(scratch), DEBS, str(standin)], capture_output=True, text=True, timeout=300)
    out = r.stdout + r.stderr
    assert r.returncode == 0, out
    for pkg in PACKAGES + ["python3-halo"]:
        assert re.search(rf"^Setting up {pkg}(:amd64)? ", out, re.M), out
    assert "halod: /usr/bin/halod" in out and "haloctl: /usr/bin/haloctl" in out
    assert "python3-libhalo: /usr/lib/halo/python/halo/__init__.py" in out
    assert "python3-halo: /usr/lib/python3/dist-packages/halo/__init__.py" in out
    assert re.search(rf"^halod {re.escape(VERSION)}$", out, re.M) and re.search(rf"^haloctl {re.escape(VERSION)}$", out, re.M), out
    assert "configuration OK" in out
    assert re.search(r"^halo /usr/lib/halo/python/halo/component\.\S+\.so /usr/lib/halo/python/halo/ha\.\S+\.so$", out, re.M), out
    assert "spinner /usr/lib/python3/dist-packages/halo/__init__.py" in out
    assert "libhalo.so.0 => /lib/x86_64-linux-gnu/libhalo.so.0" in out or \
        "libhalo.so.0 => /usr/lib/x86_64-linux-gnu/libhalo.so.0" in out, out
    assert "counter answered 1" in out and "halod exit 0" in out, out
    assert "warning" not in out.split("== cc", 1)[1], out  # examples/counter.c builds cleanly alone
