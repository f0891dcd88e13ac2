"""Whether a process is alive: the one check the capture's pid lock and ``cdc watch`` share."""

from __future__ import annotations

import os
from pathlib import Path


def is_alive(pid: int | None) -> bool:
    """Whether process ``pid`` exists and has not exited (a zombie has); False for None.

    A process of another user counts as alive (``kill(pid, 0)`` raises PermissionError).
    Without procfs a zombie cannot be told apart, and counts as alive.
    """
    if pid is None or pid <= 0:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    try:
        with open(f"/proc/{pid}/stat", "rb") as f:
            return f.read().rsplit(b") ", 1)[-1][:1] != b"Z"
    except OSError:
        return not Path("/proc/self").exists()  # no procfs: trust kill(0)
