"""Giving memory back to the operating system after per-fan state expires.

CPython frees expired conversations, trackers and caches, but the C allocator keeps the
freed pages mapped: the process's resident size stays at its peak after a burst of fans
(measured with bench/soak.py: 5,000 fans raised RSS by 138 MB and expiry gave none of it
back). glibc's `malloc_trim` returns free pages to the system; it is called after the
periodic expiry sweep, where a few milliseconds do not matter. A no-op elsewhere.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import gc
from collections.abc import Callable
from typing import Optional


def _malloc_trim() -> Optional[Callable[[int], int]]:
    name = ctypes.util.find_library("c")
    if not name:
        return None
    try:
        trim = ctypes.CDLL(name).malloc_trim
    except (OSError, AttributeError):  # not glibc (musl, macOS)
        return None
    trim.argtypes = [ctypes.c_size_t]
    trim.restype = ctypes.c_int
    return trim


_TRIM = _malloc_trim()


def release() -> None:
    """Collects garbage, then hands free heap pages back to the system (glibc only)."""
    gc.collect()
    if _TRIM is not None:
        _TRIM(0)
