"""Monotonic clocks: the real one for workers and a fake one so schedules test without sleeping.

All times are int nanoseconds on ``time.monotonic_ns``'s epoch, which on Linux is system-wide,
so every worker process shares the coordinator's epoch. ``interval_ns`` and ``next_tick_ns`` are
the periodic-tick arithmetic every report and progress loop uses (O(1), whatever the interval).
"""

from __future__ import annotations

import time
from typing import Protocol

NS_PER_S = 1_000_000_000
NS_PER_MS = 1_000_000
# The shortest report/progress interval the engine honours (settings allow 0.1 s and up; a
# library caller's smaller value is raised to this, so a tick can never spin or hang).
MIN_TICK_NS = 10 * NS_PER_MS


def interval_ns(seconds: float) -> int:
    """A tick interval in ns: ``seconds`` (s, finite), at least ``MIN_TICK_NS``."""
    return max(round(seconds * NS_PER_S), MIN_TICK_NS)


def next_tick_ns(origin_ns: int, step_ns: int, now_ns: int) -> int:
    """The first tick ``origin + k * step`` (k >= 1) strictly after ``now_ns``: ticks missed
    while busy are skipped (pgbench's progress), computed at once rather than looped."""
    if now_ns < origin_ns:
        return origin_ns + step_ns
    return origin_ns + ((now_ns - origin_ns) // step_ns + 1) * step_ns


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
