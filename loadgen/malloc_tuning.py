"""Keep glibc's malloc from holding on to memory in long runs (``cdc watch``).

glibc serves an allocation of ``M_MMAP_THRESHOLD`` bytes or more (128 KiB at start) with its own
``mmap``, given back to the system when freed. But the threshold is *dynamic*: each time such a
block is freed, glibc raises the threshold to that block's size (up to 32 MiB on 64-bit). A
watch allocates and frees multi-MiB blocks all the time (the hash tables of its bounded
memories when they resize, the decoder's arrays), so after a few minutes those blocks come from
the ``brk`` heap instead, which returns memory only from its top: the heap's resident size then
grows in steps of a table's size, though Python's live objects stay the same (measured:
docs/watch.md, *Memory*). Setting the threshold explicitly turns the adjustment off, so large
blocks keep going to ``mmap`` and their memory goes back when they are freed.

``fix_mmap_threshold()`` does that through ``mallopt`` (ctypes). It is a no-op off glibc (musl,
macOS: another allocator) and when the user's environment already sets
``MALLOC_MMAP_THRESHOLD_`` (glibc's own tunable: theirs wins).
"""

from __future__ import annotations

import ctypes
import ctypes.util
import os
import sys

M_MMAP_THRESHOLD = -3  # glibc <malloc.h>
DEFAULT_THRESHOLD = 128 * 1024  # glibc's initial value: bytes


def fix_mmap_threshold(threshold: int = DEFAULT_THRESHOLD) -> bool:
    """Fix glibc's mmap threshold at ``threshold`` bytes (> 0). Returns True when it was set,
    False when it could not be (not Linux/glibc, the user set ``MALLOC_MMAP_THRESHOLD_``, or
    ``mallopt`` refused). Never raises."""
    if not sys.platform.startswith("linux") or "MALLOC_MMAP_THRESHOLD_" in os.environ:
        return False
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
        mallopt = libc.mallopt
        libc.gnu_get_libc_version  # noqa: B018 (AttributeError off glibc)
    except (OSError, AttributeError):
        return False
    mallopt.argtypes = (ctypes.c_int, ctypes.c_int)
    mallopt.restype = ctypes.c_int
    return bool(mallopt(M_MMAP_THRESHOLD, threshold))
