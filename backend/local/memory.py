"""Freed image memory goes back to the operating system in the local stack.

The local stack runs every Lambda of a batch as threads of one process. Each image step
allocates buffers of a few to a few hundred MB (Pillow's 16 MB blocks, numpy arrays) and frees
them. glibc's malloc keeps freed memory in per-thread arenas for reuse, and its mmap threshold
rises to the size of the largest freed chunk (up to 32 MB on 64-bit), so after the first large
image nearly every buffer is carved from an arena heap that is seldom returned: measured, one
30 MP photo job left the stack at 685 MB RSS from 244 MB (5 jobs: up to 1.2 GB, while S3 held
46 MB), and a 200-photo batch with a 30 MP photo held 8.7 GB (issue #29).

A fixed M_MMAP_THRESHOLD of 1 MiB turns the dynamic threshold off: every allocation of 1 MiB or
more is its own mapping, unmapped when freed, so RSS follows what is alive (the same 5 jobs: 286
to 307 MB). Small objects keep the arenas. Lambda itself needs none of this: each invocation's
process is reused for one request at a time and its memory is capped by the function's size.
(mallopt(3): https://man7.org/linux/man-pages/man3/mallopt.3.html)
"""

from __future__ import annotations

import ctypes
import ctypes.util
import sys
from typing import Final

M_MMAP_THRESHOLD: Final = -3  # mallopt's parameter number (malloc.h)
MMAP_THRESHOLD_BYTES: Final = 1 << 20


def return_large_frees() -> bool:
    """Make every allocation of MMAP_THRESHOLD_BYTES or more its own mapping (glibc only).
    Returns whether it was applied (False on macOS, musl, Windows: their allocators differ)."""
    if not sys.platform.startswith("linux"):
        return False
    name = ctypes.util.find_library("c") or "libc.so.6"
    try:
        libc = ctypes.CDLL(name)
        mallopt = libc.mallopt
    except (OSError, AttributeError):  # not glibc
        return False
    mallopt.argtypes = [ctypes.c_int, ctypes.c_int]
    mallopt.restype = ctypes.c_int
    return bool(mallopt(M_MMAP_THRESHOLD, MMAP_THRESHOLD_BYTES))
