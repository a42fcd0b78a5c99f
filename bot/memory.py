"""Handing the C allocator's free memory back to the system after a big job, on Linux with
glibc (a no-op anywhere else).

glibc keeps what a busy moment freed, at the top of each of its heaps, for the next one; over a
day of work a process's resident memory then stays near its peak. `malloc_trim` returns it:
after a district's day, about 8–10 MiB of the ~200 (bench/README.md, "Memory"). The worker
calls `trim` after its big jobs (the morning digest, the retention run).
"""

from __future__ import annotations

import ctypes
import os
import sys


def _glibc() -> ctypes.CDLL | None:
    if not sys.platform.startswith("linux"):
        return None
    try:
        if not os.confstr("CS_GNU_LIBC_VERSION"):  # None (or an error) on musl and others
            return None
        return ctypes.CDLL("libc.so.6")
    except (OSError, ValueError):
        return None


def trim() -> bool:
    """Give the C allocator's free memory back to the system; True when some was."""
    libc = _glibc()
    return bool(libc.malloc_trim(0)) if libc is not None else False
