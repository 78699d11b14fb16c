# SPDX-License-Identifier: MIT
import os
import sys

import pytest

sys.path.insert(0, os.path.dirname(__file__))
from etcd_harness import Etcd  # noqa: E402
from halo_harness import Halod, become_subreaper  # noqa: E402

become_subreaper()


@pytest.fixture
def etcd():
    """A one-member etcd of the test's own, on loopback."""
    e = Etcd(members=1).start()
    yield e
    e.stop()


@pytest.fixture
def halod_factory():
    """Starts halods for a test; kills whatever is left when it ends."""
    started = []

    def make(yaml_text, **kw):
        h = Halod(yaml_text, **kw)
        started.append(h)
        return h

    yield make
    for h in started:
        h.kill_all()
