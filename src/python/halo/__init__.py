# SPDX-License-Identifier: MIT
"""halo: Python bindings of the halo HA framework.

halo.component is libhalo's component API (a Python program as a halo
component) and the configuration database: see docs/python.md.

halo.ha is the HA control API of the configuration database, the drop-in for
NCS/ConfD's _ncs.ha module, with halo.error (_ncs.error's Error) and
halo.events (_ncs.events' HA notifications): a script written for those
modules needs only its imports changed (``from halo import ha, error, events``).
"""
