"""Open-loop arrival schedules: when each operation is due, independent of how fast the server is.

Every schedule hands out absolute slots in ns on the monotonic epoch (see ``loadgen.stream.clock``).
A worker asks for the next slot, sleeps until it and runs the operation; latency is measured
from the slot, so a slow server cannot hide queueing (pgbench's throttling model). Schedules are
pure: they take the current time and an RNG as arguments and never read a clock themselves.

- ``TokenBucket`` (default): tokens appear at a fixed rate; a slot is the instant its token
  appeared; the bucket holds at most ``burst`` tokens, so after a stall at most ``burst``
  operations are due at once and older tokens are dropped (counted in ``num_dropped``).
- ``UniformArrivals``: a fixed gap of 1/rate; catches up without limit after a stall.
- ``PoissonArrivals``: exponential gaps drawn in numpy batches (pgbench's ``--rate``);
  catches up without limit.
- ``JitteredArrivals``: the original simulator's pace (one operation every interval plus a random
  extra delay), interleaved across workers.
- ``ClosedLoop``: no rate; every slot is "now" (``--rate unlimited``).
"""

from __future__ import annotations

from typing import Protocol

import numpy as np

from loadgen.stream.clock import NS_PER_S

_POISSON_BLOCK = 4096  # exponential gaps drawn per numpy call


class Arrivals(Protocol):
    """A schedule of operation slots (monotonic ns); one instance per worker, one thread."""

    def next_slot_ns(self, now_ns: int) -> int:
        """Return the next slot in ns; ``now_ns`` lets capped schedules drop stale slots."""
        ...


class UniformArrivals:
    """Slots ``start + k / rate``, computed from ``k`` so rounding never accumulates."""

    def __init__(self, rate_per_s: float, start_ns: int) -> None:
        if rate_per_s <= 0:
            raise ValueError(f"rate must be > 0, got {rate_per_s}")
        self._gap_ns = NS_PER_S / rate_per_s
        self._start_ns = start_ns
        self._k = 0  # index of the next slot

    def next_slot_ns(self, now_ns: int) -> int:
        slot_ns = self._start_ns + round(self._k * self._gap_ns)
        self._k += 1
        return slot_ns


class TokenBucket:
    """Token-bucket schedule: rate ``rate_per_s``, at most ``burst`` tokens held.

    The bucket starts empty and the first token appears at ``start_ns``. Token ``k`` appears at
    ``start + k / rate``. When the caller falls behind by more than ``burst`` tokens, the oldest
    are dropped, so no more than ``burst`` slots are ever due at the same moment; while the caller
    keeps up, the long-run rate is exactly ``rate_per_s``.
    """

    def __init__(self, rate_per_s: float, burst: int, start_ns: int) -> None:
        if rate_per_s <= 0:
            raise ValueError(f"rate must be > 0, got {rate_per_s}")
        if burst < 1:
            raise ValueError(f"burst must be >= 1, got {burst}")
        self._gap_ns = NS_PER_S / rate_per_s
        self._burst = burst
        self._start_ns = start_ns
        self._k = 0  # index of the next token to hand out
        self.num_dropped = 0  # tokens that overflowed the bucket; grows only, never reset

    def next_slot_ns(self, now_ns: int) -> int:
        if now_ns >= self._start_ns:
            # tokens 0 .. num_appeared-1 have appeared by now
            num_appeared = int((now_ns - self._start_ns) // self._gap_ns) + 1
            oldest_kept = num_appeared - self._burst
            if self._k < oldest_kept:
                self.num_dropped += oldest_kept - self._k
                self._k = oldest_kept
        slot_ns = self._start_ns + round(self._k * self._gap_ns)
        self._k += 1
        return slot_ns


class PoissonArrivals:
    """Poisson process at ``rate_per_s``: exponential gaps, drawn ``_POISSON_BLOCK`` at a time."""

    def __init__(self, rate_per_s: float, start_ns: int, rng: np.random.Generator) -> None:
        if rate_per_s <= 0:
            raise ValueError(f"rate must be > 0, got {rate_per_s}")
        self._mean_gap_ns = NS_PER_S / rate_per_s
        self._rng = rng
        self._start_ns = start_ns
        self._offset_ns = 0.0  # float offset of the last slot from start
        self._gaps_ns: list[float] = []
        self._i = 0

    def next_slot_ns(self, now_ns: int) -> int:
        if self._i >= len(self._gaps_ns):
            self._gaps_ns = self._rng.exponential(self._mean_gap_ns, _POISSON_BLOCK).tolist()
            self._i = 0
        self._offset_ns += self._gaps_ns[self._i]
        self._i += 1
        return self._start_ns + round(self._offset_ns)


class JitteredArrivals:
    """The original simulator's pace: one operation every ``interval`` plus a random extra delay.

    Slots of the whole run sit on a grid ``start + j * interval_ns``; worker ``worker_id`` of
    ``num_workers`` takes every ``num_workers``-th grid point, so the run as a whole does one
    operation per interval, whatever the worker count. Each slot gets an extra delay drawn
    uniformly from ``[0, max_jitter_ns]``; delays do not accumulate, so the mean rate stays
    exactly ``1 / interval``.
    """

    def __init__(
        self,
        interval_ns: int,
        max_jitter_ns: int,
        start_ns: int,
        rng: np.random.Generator,
        *,
        worker_id: int = 0,
        num_workers: int = 1,
    ) -> None:
        self._period_ns = max(interval_ns, 1) * num_workers
        self._first_ns = start_ns + max(interval_ns, 1) * worker_id
        self._max_jitter_ns = max_jitter_ns
        self._rng = rng
        self._k = 0
        self._last_ns = start_ns

    def next_slot_ns(self, now_ns: int) -> int:
        jitter_ns = 0
        if self._max_jitter_ns:
            jitter_ns = int(self._rng.integers(0, self._max_jitter_ns + 1))
        slot_ns = max(self._last_ns, self._first_ns + self._k * self._period_ns + jitter_ns)
        self._k += 1
        self._last_ns = slot_ns
        return slot_ns


class ClosedLoop:
    """No rate limit: every slot is ``now`` (the worker runs full batches back to back)."""

    def next_slot_ns(self, now_ns: int) -> int:
        return now_ns
