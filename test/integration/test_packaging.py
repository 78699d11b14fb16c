# SPDX-License-Identifier: MIT
"""What `meson install` puts beside the binaries: the systemd unit passes
systemd-analyze verify with no warning, and says what halod needs of systemd."""
import os
import shutil
import subprocess

import pytest

from halo_harness import BUILD, HALOD


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
