# SPDX-License-Identifier: MIT
"""README's "Use it from your code", the C half: examples/counter.c built the two ways README
shows, against this build tree (meson's halo-uninstalled.pc) and against a `meson install`
(halo.pc, in a DESTDIR standing in for /usr/local), each run by a real halod and serving."""
import json
import os
import socket
import subprocess

from halo_harness import BUILD, free_port, wait_for

SRC = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def sanitize_flags():
    """The sanitizers of a sanitized build (build-san): a program linking its libhalo needs them too."""
    r = subprocess.run(["meson", "introspect", "--buildoptions", BUILD], capture_output=True, text=True, timeout=60)
    assert r.returncode == 0, r.stderr
    value = next(o["value"] for o in json.loads(r.stdout) if o["name"] == "b_sanitize")
    return [] if value == "none" else [f"-fsanitize={value}"]


def pkg_config(env):
    r = subprocess.run(["pkg-config", "--cflags", "--libs", "halo"], capture_output=True, text=True, timeout=30,
                       env=dict(os.environ, **env))
    assert r.returncode == 0, r.stderr
    return r.stdout.split()


def build_counter(out, flags, libdir):
    """examples/counter.c compiled and linked with pkg-config's flags, libhalo found in libdir at run time."""
    cmd = ["cc", "-Wall", "-Werror", "-o", str(out), os.path.join(SRC, "examples", "counter.c")] + flags + sanitize_flags() + [
        f"-Wl,-rpath,{libdir}"]
    r = subprocess.run(cmd, capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, " ".join(cmd) + "\n" + r.stderr
    ldd = subprocess.run(["ldd", str(out)], capture_output=True, text=True, timeout=30).stdout
    assert f"libhalo.so.0 => {libdir}/libhalo.so.0" in ldd, ldd


def ask(port, line):
    with socket.create_connection(("127.0.0.1", port), timeout=5) as s:
        s.sendall((line + "\n").encode())
        return s.makefile().readline().strip()


def serves_under_halod(halod_factory, program):
    port = free_port()
    h = halod_factory(f"""
service-groups:
  counter:
    redundancy: no-redundancy
    component: {{command: {program}}}
    service-units:
      counter-a: {{}}
    service-instances:
      counter:
        csis:
          counter: {{attributes: {{port: "{port}"}}}}
""").start()
    wait_for(lambda: h.si("counter")["active"] == "counter-a", timeout=15, what="counter-a ACTIVE")
    assert wait_for(lambda: ask(port, "INCR k"), what="the counter serving") == "1"
    assert ask(port, "INCR k") == "2"
    assert h.stop() == 0


def test_a_c_program_builds_against_the_build_tree(halod_factory, tmp_path):
    flags = pkg_config({"PKG_CONFIG_PATH": os.path.join(BUILD, "meson-uninstalled")})
    assert f"-L{BUILD}/src/libhalo" in flags and "-lhalo" in flags
    build_counter(tmp_path / "counter", flags, os.path.join(BUILD, "src", "libhalo"))
    serves_under_halod(halod_factory, tmp_path / "counter")
    # Or by hand: the public headers and the library, nothing else.
    build_counter(tmp_path / "counter2", [f"-I{SRC}/include", f"-L{BUILD}/src/libhalo", "-lhalo"],
                  os.path.join(BUILD, "src", "libhalo"))
    serves_under_halod(halod_factory, tmp_path / "counter2")


def test_a_c_program_builds_against_an_installed_halo(halod_factory, tmp_path):
    dest = tmp_path / "dest"
    r = subprocess.run(["meson", "install", "-C", BUILD, "--no-rebuild", "--quiet", "--destdir", str(dest)],
                       capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stdout + r.stderr
    pcs = [os.path.join(root, "halo.pc") for root, _, names in os.walk(dest) if "halo.pc" in names]
    assert len(pcs) == 1, pcs
    libdir = os.path.dirname(os.path.dirname(pcs[0]))
    # The sysroot prefixes halo.pc's own /usr/local paths with the DESTDIR, as if installed there.
    flags = pkg_config({"PKG_CONFIG_PATH": os.path.dirname(pcs[0]), "PKG_CONFIG_SYSROOT_DIR": str(dest)})
    assert f"-I{dest}/usr/local/include" in flags and f"-L{libdir}" in flags, flags
    assert not [f for f in flags if f.startswith("-I") and f.startswith(f"-I{SRC}")], flags  # no source tree
    build_counter(tmp_path / "counter", flags, libdir)
    serves_under_halod(halod_factory, tmp_path / "counter")
