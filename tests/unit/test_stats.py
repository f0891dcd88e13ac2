"""Histogram accuracy, merge == record-all, and pickling through a real multiprocessing queue."""

from __future__ import annotations

import multiprocessing
import pickle

import numpy as np
import pytest

from loadgen.ledger.changes import RowChange
from loadgen.stream.messages import StatsDelta, WorkerDone
from loadgen.stream.stats import IntervalStats, LatencyHistogram, merged


@pytest.fixture
def values() -> np.ndarray:
    rng = np.random.default_rng(1234)
    return rng.lognormal(mean=14.0, sigma=1.5, size=20_000).astype(np.int64)  # ~1 ms, ns


def test_percentiles_within_bucket_resolution(values: np.ndarray) -> None:
    hist = LatencyHistogram()
    hist.record_many(values)
    for q in (50, 90, 95, 99, 99.9):
        exact = np.percentile(values, q, method="inverted_cdf")
        assert hist.percentile(q) == pytest.approx(exact, rel=1 / 100)
    assert hist.percentile(100) == values.max()
    assert hist.min == values.min()
    assert hist.count == values.size
    assert hist.mean() == pytest.approx(values.mean())


def test_record_one_by_one_equals_record_many(values: np.ndarray) -> None:
    one, many = LatencyHistogram(), LatencyHistogram()
    for v in values[:3000]:
        one.record(int(v))
    many.record_many(values[:3000])
    assert one == many


def test_small_and_huge_values() -> None:
    hist = LatencyHistogram()
    hist.record_many([-5, 0, 1, 127, 128, 2**50])
    assert hist.count == 6
    assert hist.min == 0
    assert hist.max == 2**50
    assert hist.percentile(10) == 0
    assert LatencyHistogram().percentile(99) == 0


def _fill(stats: IntervalStats, rng: np.random.Generator, n_txns: int, first: int = 0) -> None:
    names = ["insert_consulta", "update_exame", "delete_consulta"]
    for i in range(first, first + n_txns):
        batch = [names[j] for j in rng.integers(0, 3, size=int(rng.integers(1, 5)))]
        slots = rng.integers(0, 10**6, size=len(batch))
        changes = [RowChange("consultas", "c", i, {"id": str(i)}, n) for n in batch]
        stats.record_commit(batch, changes, slots, 2 * 10**6, 3 * 10**6 + i)
        if i % 7 == 0:
            stats.record_error("40", num_ops=len(batch))
            stats.num_retried += 1


def test_merge_of_parts_equals_recording_all() -> None:
    rng_all, rng_parts = np.random.default_rng(5), np.random.default_rng(5)
    everything = IntervalStats()
    _fill(everything, rng_all, 300)
    parts = [IntervalStats() for _ in range(3)]
    for k, part in enumerate(parts):
        _fill(part, rng_parts, 100, first=100 * k)
    total = merged(parts)
    assert total == everything
    assert total.num_ops == everything.num_ops > 300
    assert total.latency_ns.percentile(99) == everything.latency_ns.percentile(99)
    assert total.rows_by_table[("consultas", "c")] == total.num_ops


def test_pickle_is_sparse_and_lossless() -> None:
    stats = IntervalStats()
    _fill(stats, np.random.default_rng(9), 50)
    data = pickle.dumps(stats)
    assert len(data) < 8_000  # two dense histograms would be ~42 kB
    assert pickle.loads(data) == stats


def test_round_trip_through_a_real_multiprocessing_queue() -> None:
    stats = IntervalStats()
    _fill(stats, np.random.default_rng(3), 40)
    queue = multiprocessing.get_context("spawn").Queue()
    try:
        queue.put(StatsDelta(worker_id=1, seq=0, t0_ns=1, t1_ns=2, stats=stats))
        queue.put(WorkerDone(worker_id=1, reason="max_ops", num_ops=stats.num_ops))
        delta = queue.get(timeout=10)
        done = queue.get(timeout=10)
    finally:
        queue.close()
        queue.join_thread()
    assert isinstance(delta, StatsDelta)
    assert delta.stats == stats
    assert delta.stats.latency_ns.percentile(50) == stats.latency_ns.percentile(50)
    assert done == WorkerDone(worker_id=1, reason="max_ops", num_ops=stats.num_ops)


def test_empty_stats() -> None:
    stats = IntervalStats()
    assert stats.is_empty()
    stats.record_error("08")
    assert not stats.is_empty()
    assert stats.num_errors == 1
