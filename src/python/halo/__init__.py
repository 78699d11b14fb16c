# SPDX-License-Identifier: MIT
"""halo: Python bindings of the halo HA framework.

halo.ha is the HA control API of the configuration database, with the
functions and constants of NCS/ConfD's _ncs.ha module: a script written for
that module needs only its import changed (``from halo import ha``).
"""
