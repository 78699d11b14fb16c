# SPDX-License-Identifier: MIT
"""halo.error: the exception of halo's Python API, the counterpart of _ncs.error.

Error is what a failed halo.ha call raises, shaped like _ncs.error.Error: str(e)
is "STRERROR (ERRNO): LASTERR", and e.confd_errno, e.confd_strerror and
e.confd_lasterr hold those parts (e.errno too, for ERR_OS).  It is also
halo.ha.error.
"""
from halo.ha import error as Error  # noqa: F401
