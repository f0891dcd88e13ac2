"""Monotonic clocks: the real one for workers and a fake one so schedules test without sleeping.

All times are int nanoseconds on ``time.monotonic_ns``'s epoch, which on Linux is system-wide,
so every worker process shares the coordinator's epoch (STYLE.md section 4).
"""

from __future__ import annotations

import time
from typing import Protocol

NS_PER_S = 1_000_000_000
NS_PER_MS = 1_000_000


class Clock(Protocol):
    """Anything that tells monotonic time and can sleep until a moment."""

    def now_ns(self) -> int:
        """Return the current monotonic time in ns."""
        ...

    def sleep_until_ns(self, deadline_ns: int) -> None:
        """Block until ``deadline_ns`` (monotonic ns); return at once if it has passed."""
        ...


class SystemClock:
    """The real clock: ``time.monotonic_ns`` and ``time.sleep``."""

    def now_ns(self) -> int:
        return time.monotonic_ns()

    def sleep_until_ns(self, deadline_ns: int) -> None:
        delay_ns = deadline_ns - time.monotonic_ns()
        if delay_ns > 0:
            time.sleep(delay_ns / NS_PER_S)


class FakeClock:
    """A clock that only moves when told to; ``sleep_until_ns`` jumps straight to the deadline."""

    def __init__(self, start_ns: int = 0) -> None:
        self._now_ns = start_ns

    def now_ns(self) -> int:
        return self._now_ns

    def sleep_until_ns(self, deadline_ns: int) -> None:
        self._now_ns = max(self._now_ns, deadline_ns)

    def advance(self, delta_ns: int) -> None:
        """Move the clock forward by ``delta_ns`` (ns, >= 0)."""
        if delta_ns < 0:
            raise ValueError(f"a monotonic clock cannot go back ({delta_ns} ns)")
        self._now_ns += delta_ns
