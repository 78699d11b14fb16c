# SPDX-License-Identifier: MIT
"""halo.events: HA notifications with the calls and shapes of _ncs.events.

Only HA notifications exist in halo (NOTIF_HA_INFO).  read_notification()
returns {'type': NOTIF_HA_INFO, 'hnot': {'type': HA_INFO_*, ...}} with the
keys _ncs.events gives for each kind (noprimary, secondary_died,
secondary_arrived, cdb_initialized_by_copy, besecondary_result and their
deprecated twins), plus halo's 'reason' where halod gives one.

halod asks a notifications connection to prove the token too: pass it as
token= (halo's addition) when the node has one.
"""
from halo import ha as _ha

NOTIF_HA_INFO = _ha.NOTIF_HA_INFO


def notifications_connect(sock, mask, ip=None, port=-1, path=None, token=None):
    """Connects sock (AF_UNIX with path, or AF_INET/AF_INET6 with ip and port) for the
    notifications in mask, which must include NOTIF_HA_INFO."""
    if not mask & NOTIF_HA_INFO:
        raise ValueError("halo has HA notifications only: mask must include NOTIF_HA_INFO")
    if path is not None:
        return _ha.notifications_connect(sock, token or "", pstr=path)
    return _ha.notifications_connect(sock, token or "", ip=ip, port=port)


def read_notification(sock):
    """Blocks for the next notification; a dict as above."""
    return _ha.read_notification(sock)
