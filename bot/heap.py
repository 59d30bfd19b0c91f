"""Giving memory freed after a burst back to the operating system.

glibc's malloc keeps what Python frees in its heaps (one per thread that allocated) for
reuse, so the process's resident size stays at its peak after a burst of fans has gone
idle. `malloc_trim(0)` hands every whole free page back (glibc 2.8 and later: also inside
the heap, by `madvise`), at a cost of a few milliseconds for a heap of tens of MB. It is
called after idle fans' caches are dropped (`connectors.launch`), not per message.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import logging
from typing import Optional

logger = logging.getLogger(__name__)

_malloc_trim: Optional[ctypes._NamedFuncPointer] = None
_looked = False


def trim() -> bool:
    """Returns free heap pages to the OS; False where the C library is not glibc (musl,
    macOS: nothing to do, or no such call)."""
    global _malloc_trim, _looked
    if not _looked:
        _looked = True
        try:
            _malloc_trim = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6").malloc_trim
            _malloc_trim.argtypes, _malloc_trim.restype = [ctypes.c_size_t], ctypes.c_int
        except (OSError, AttributeError):
            logger.debug("malloc_trim is not available here; freed memory stays with the allocator")
    if _malloc_trim is None:
        return False
    _malloc_trim(0)
    return True
