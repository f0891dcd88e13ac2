"""`cdc watch` fixes glibc's mmap threshold so freed large blocks go back to the system.

Each case runs in a fresh interpreter (the setting is process-wide and cannot be undone). The
probe frees a 4 MiB block, then takes a 1 MiB one: with glibc's dynamic threshold the first
free raises the threshold to 4 MiB, so the 1 MiB block comes from the heap (mmapped bytes 0);
with the threshold fixed it is still mmapped (given back to the system when freed).
"""

from __future__ import annotations

import os
import platform
import subprocess
import sys

import pytest

PROBE = """
import ctypes, sys
from loadgen.malloc_tuning import fix_mmap_threshold
done = fix_mmap_threshold() if sys.argv[1] == "fix" else None
libc = ctypes.CDLL("libc.so.6")
libc.malloc.restype = ctypes.c_void_p
libc.free.argtypes = (ctypes.c_void_p,)
class MI(ctypes.Structure):
    _fields_ = [(n, ctypes.c_size_t) for n in "arena ordblks smblks hblks hblkhd usmblks"
                " fsmblks uordblks fordblks keepcost".split()]
libc.mallinfo2.restype = MI
libc.free(libc.malloc(4 << 20))
p = libc.malloc(1 << 20)
print(done, libc.mallinfo2().hblkhd >= (1 << 20))
"""

pytestmark = pytest.mark.skipif(platform.libc_ver()[0] != "glibc", reason="glibc only")


def _probe(mode: str, **env: str) -> str:
    base = {k: v for k, v in os.environ.items() if not k.startswith("MALLOC_")}
    r = subprocess.run([sys.executable, "-c", PROBE, mode], env={**base, **env},
                       capture_output=True, text=True, check=True, timeout=60)  # fmt: skip
    return r.stdout.strip()


def test_fixed_threshold_keeps_large_blocks_mmapped() -> None:
    assert _probe("dynamic") == "None False"  # glibc's own behaviour: the probe can tell
    assert _probe("fix") == "True True"


def test_users_malloc_setting_wins() -> None:
    assert _probe("fix", MALLOC_MMAP_THRESHOLD_="8388608") == "False False"
