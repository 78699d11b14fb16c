# SPDX-License-Identifier: MIT
"""README's "Use it from your code", the Python half: the halo package imported from a `meson install`
(a DESTDIR standing in for /usr/local), from <prefix>/lib/halo/python and nowhere on Python's own path
(Debian's python3-halo, an unrelated spinner, owns dist-packages/halo: docs/python.md, "Installed"),
then used against a real halod.  The build tree's import (PYTHONPATH=build/src/python) is what every
other test_python_*.py uses."""
import os
import subprocess
import sys

from halo_harness import BUILD, cdb_only_yaml

SCRIPT = """
import sys
from halo import component as hc, ha
print(hc.__file__)
print(ha.__file__)
with hc.open(sys.argv[1]) as h:
    with h.cdb_transaction() as t:
        t.set("/installed/ok", "yes")
    print(h.cdb_get("/installed/ok").decode())
"""


def test_the_installed_package_is_in_halo_s_own_directory_and_works(halod_factory, tmp_path):
    dest = tmp_path / "dest"
    r = subprocess.run(["meson", "install", "-C", BUILD, "--no-rebuild", "--quiet", "--destdir", str(dest)],
                       capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stdout + r.stderr
    files = [os.path.relpath(os.path.join(root, n), dest) for root, _, names in os.walk(dest) for n in names]
    assert not [f for f in files if "-packages/" in f], files  # nothing in dist-packages or site-packages
    pydir = dest / "usr" / "local" / "lib" / "halo" / "python"
    assert sorted(os.listdir(pydir / "halo"))[:3] == ["__init__.py", "component.cpython-%d%d-x86_64-linux-gnu.so"
                                                     % sys.version_info[:2], "error.py"]
    libdir = os.path.dirname(next(os.path.join(dest, f) for f in files if f.endswith("/libhalo.so.0")))
    h = halod_factory(cdb_only_yaml("pyinstall"), name="pyinstall").start()
    r = subprocess.run([sys.executable, "-c", SCRIPT, h.socket], capture_output=True, text=True, timeout=60,
                       env=dict(os.environ, PYTHONPATH=str(pydir), LD_LIBRARY_PATH=libdir))
    assert r.returncode == 0, r.stderr
    comp_file, ha_file, value = r.stdout.split()
    assert comp_file.startswith(str(pydir / "halo") + "/") and ha_file.startswith(str(pydir / "halo") + "/")
    assert value == "yes"
    # Without the directory on its path, Python does not find halo's package: nothing shadows another halo.
    r = subprocess.run([sys.executable, "-c", "import halo.component"], capture_output=True, text=True, timeout=60,
                       env={k: v for k, v in os.environ.items() if k != "PYTHONPATH"}, cwd=tmp_path)
    assert r.returncode != 0 and "No module named 'halo" in r.stderr, r.stderr
    assert h.stop() == 0
