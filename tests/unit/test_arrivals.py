"""Arrival schedules on a fake clock: rates, burst caps, Poisson statistics."""

from __future__ import annotations

import numpy as np
import pytest

from loadgen.stream.arrivals import (
    ClosedLoop,
    JitteredArrivals,
    PoissonArrivals,
    TokenBucket,
    UniformArrivals,
)
from loadgen.stream.clock import NS_PER_S, FakeClock


def _run_keeping_up(schedule: TokenBucket | UniformArrivals, clock: FakeClock, n: int) -> list[int]:
    slots = []
    for _ in range(n):
        slot = schedule.next_slot_ns(clock.now_ns())
        clock.sleep_until_ns(slot)
        slots.append(slot)
    return slots


def test_token_bucket_long_run_rate_is_exact() -> None:
    clock = FakeClock(start_ns=5 * NS_PER_S)
    bucket = TokenBucket(rate_per_s=3.0, burst=10, start_ns=clock.now_ns())
    slots = _run_keeping_up(bucket, clock, 30_001)
    elapsed_s = (slots[-1] - slots[0]) / NS_PER_S
    assert elapsed_s == pytest.approx(10_000.0, abs=1e-6)
    assert bucket.num_dropped == 0
    assert slots == sorted(slots)


def test_token_bucket_never_issues_more_than_burst_at_once() -> None:
    clock = FakeClock()
    bucket = TokenBucket(rate_per_s=1000.0, burst=7, start_ns=0)
    _run_keeping_up(bucket, clock, 100)
    for stall_ns in (3 * NS_PER_S, 5_000_000, 1, NS_PER_S // 100):
        clock.advance(stall_ns)
        now = clock.now_ns()
        due = 0
        while (slot := bucket.next_slot_ns(now)) <= now:
            due += 1
        assert due <= 7
        clock.sleep_until_ns(slot)
    # a long stall fills the bucket: exactly burst due, the rest dropped and counted
    clock.advance(10 * NS_PER_S)
    now = clock.now_ns()
    due = 0
    while bucket.next_slot_ns(now) <= now:
        due += 1
    assert due == 7
    assert bucket.num_dropped > 9_000


def test_token_bucket_starts_empty() -> None:
    bucket = TokenBucket(rate_per_s=10.0, burst=50, start_ns=100)
    assert bucket.next_slot_ns(100) == 100
    assert bucket.next_slot_ns(100) == 100 + NS_PER_S // 10


def test_uniform_gap_and_unlimited_catch_up() -> None:
    uniform = UniformArrivals(rate_per_s=200 / 60, start_ns=0)
    slots = [uniform.next_slot_ns(10**15) for _ in range(201)]
    assert slots[-1] == 60 * NS_PER_S
    gaps = np.diff(slots)
    assert gaps.max() - gaps.min() <= 1  # rounding only


def test_poisson_mean_gap_within_one_percent_over_100k_draws() -> None:
    rate_per_s = 5_000.0
    poisson = PoissonArrivals(rate_per_s, start_ns=0, rng=np.random.default_rng(42))
    slots = np.array([poisson.next_slot_ns(0) for _ in range(100_000)], dtype=np.int64)
    gaps = np.diff(np.concatenate([[0], slots]))
    mean_gap_ns = NS_PER_S / rate_per_s
    assert gaps.mean() == pytest.approx(mean_gap_ns, rel=0.01)
    assert gaps.std() / gaps.mean() == pytest.approx(1.0, rel=0.02)  # exponential: CV = 1
    assert (gaps >= 0).all()


def test_poisson_same_seed_same_schedule() -> None:
    a = PoissonArrivals(10.0, 0, np.random.default_rng(7))
    b = PoissonArrivals(10.0, 0, np.random.default_rng(7))
    assert [a.next_slot_ns(0) for _ in range(50)] == [b.next_slot_ns(0) for _ in range(50)]


def test_jittered_pace_interleaves_workers_and_keeps_mean_interval() -> None:
    interval_ns, jitter_ns = 2 * NS_PER_S, 400_000_000
    schedules = [
        JitteredArrivals(
            interval_ns, jitter_ns, 0, np.random.default_rng(i), worker_id=i, num_workers=2
        )
        for i in range(2)
    ]
    slots = sorted(s.next_slot_ns(0) for s in schedules for _ in range(1000))
    assert len(slots) == 2000
    # one op per interval for the whole run, whatever the worker count
    assert slots[-1] / NS_PER_S == pytest.approx(2 * 1999, abs=0.4)
    for j, slot in enumerate(slots[:100]):
        assert j * interval_ns <= slot <= j * interval_ns + jitter_ns


def test_closed_loop_slot_is_now() -> None:
    assert ClosedLoop().next_slot_ns(12345) == 12345


@pytest.mark.parametrize("bad", [0.0, -1.0])
def test_schedules_reject_non_positive_rates(bad: float) -> None:
    with pytest.raises(ValueError):
        TokenBucket(bad, 1, 0)
    with pytest.raises(ValueError):
        UniformArrivals(bad, 0)


def test_ticks_skip_what_was_missed_in_one_step() -> None:
    """Reports and progress ticks: the next tick strictly after now, computed, not looped (a
    1 ns interval after an hour's stall must not take 3.6e12 steps), never below 10 ms."""
    from loadgen.stream.clock import MIN_TICK_NS, interval_ns, next_tick_ns

    assert interval_ns(1e-9) == interval_ns(1e-10) == interval_ns(0.0) == MIN_TICK_NS
    assert interval_ns(0.5) == NS_PER_S // 2
    assert next_tick_ns(100, 10, 95) == 110  # before the origin: the first tick
    assert next_tick_ns(100, 10, 100) == 110
    assert next_tick_ns(100, 10, 109) == 110
    assert next_tick_ns(100, 10, 110) == 120  # strictly after now
    assert next_tick_ns(0, MIN_TICK_NS, 3600 * NS_PER_S) == 3600 * NS_PER_S + MIN_TICK_NS
