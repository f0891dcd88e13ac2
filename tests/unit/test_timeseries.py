"""The timeseries merge (pure): parts land in the interval they happened in, however late the
delta arrives, records are written in order once every live worker reported past them."""

from __future__ import annotations

import json
from pathlib import Path

from loadgen.stream.clock import NS_PER_S
from loadgen.stream.messages import StatsDelta
from loadgen.stream.metrics import histogram_buckets
from loadgen.stream.phases import parse_phases
from loadgen.stream.stats import IntervalStats, LatencyHistogram
from loadgen.stream.timeseries import StatsBuckets, TimeseriesWriter, read_timeseries

T0 = 1_000 * NS_PER_S


def _ops(n: int, name: str = "insert_consulta") -> IntervalStats:
    s = IntervalStats()
    for _ in range(n):
        s.record_commit([name], [], [0], 0, 5_000_000)
    return s


def _delta(worker: int, seq: int, t1_s: float, parts: dict[int, int]) -> StatsDelta:
    p = tuple(((k, 0), _ops(n)) for k, n in sorted(parts.items()))
    total = IntervalStats()
    for _, s in p:
        total.merge(s)
    return StatsDelta(worker, seq, 0, T0 + round(t1_s * NS_PER_S), total, parts=p)


def _intervals(path: Path) -> list[dict]:  # type: ignore[type-arg]
    return [r for r in read_timeseries(path) if r["kind"] == "interval"]


def test_late_deltas_count_when_the_work_happened(tmp_path: Path) -> None:
    path = tmp_path / "ts.jsonl"
    w = TimeseriesWriter(path, 1.0, [0, 1], target_rate_per_s=50.0)
    w.open({"run_id": "x"})
    w.start(T0)
    # worker 0 reports on time; worker 1 is a tick late every time, with two intervals at once
    w.add(_delta(0, 0, 1.0, {0: 25}))
    assert _intervals(path) == []  # worker 1 has not reported past interval 0 yet
    w.add(_delta(0, 1, 2.0, {1: 25}))
    w.add(_delta(1, 0, 2.05, {0: 25, 1: 20}))
    assert [r["ops"] for r in _intervals(path)] == [50, 45]  # both complete: written
    w.add(_delta(1, 1, 3.5, {1: 5, 2: 25, 3: 10}))  # a very late part of interval 1
    w.add(_delta(0, 2, 3.0, {2: 25}))
    w.worker_gone(0)
    w.worker_gone(1)
    w.close(None, T0 + round(3.5 * NS_PER_S))
    records = _intervals(path)
    # interval 1 was written when both had reported past it, so worker 1's late 5 moved on
    assert [r["interval"] for r in records] == [0, 1, 2, 3]
    assert sum(r["ops"] for r in records) == 25 * 5 + 20 + 5 + 10
    assert records[0]["target_rate_per_s"] == 50.0 and records[-1]["duration_s"] == 0.5


def test_a_steady_rate_is_steady_per_interval(tmp_path: Path) -> None:
    """50/s from two workers whose deltas arrive at arbitrary ticks: 50 in every interval."""
    path = tmp_path / "ts.jsonl"
    w = TimeseriesWriter(path, 1.0, [0, 1])
    w.open({})
    w.start(T0)
    for k in range(0, 10, 2):  # each worker reports every two intervals, at different times
        w.add(_delta(0, k, k + 2.0, {k: 25, k + 1: 25}))
        w.add(_delta(1, k, k + 1.5, {k: 25}))
        w.add(_delta(1, k + 1, k + 2.5, {k + 1: 25}))
    w.close(None, T0 + 10 * NS_PER_S)
    assert [r["ops"] for r in _intervals(path)] == [50] * 10


def test_header_phases_and_summary_records(tmp_path: Path) -> None:
    path = tmp_path / "ts.jsonl"
    plan = parse_phases("2s@10/s,1s@0")
    w = TimeseriesWriter(path, 1.0, [0], plan)
    w.open({"workers": 1})
    w.start(T0)
    w.add(
        StatsDelta(
            0, 0, 0, T0 + 3 * NS_PER_S, _ops(20), parts=(((0, 0), _ops(10)), ((1, 0), _ops(10)))
        )
    )
    w.close(None, T0 + 3 * NS_PER_S)
    records = read_timeseries(path)
    assert records[0]["kind"] == "run" and records[0]["schema"] == 1
    assert records[0]["phases"][0]["rate_per_s"] == 10
    intervals = [r for r in records if r["kind"] == "interval"]
    assert [r["target_rate_per_s"] for r in intervals] == [10, 10, 0]
    phases = [r for r in records if r["kind"] == "phase"]
    assert [(p["ops"], p["ops_per_s"]) for p in phases] == [(20, 10.0), (0, 0.0)]
    assert json.loads(path.read_text().splitlines()[-1])["kind"] == "phase"


def test_worker_buckets_key_by_interval_and_phase() -> None:
    b = StatsBuckets(NS_PER_S, parse_phases("1.5s@10/s,10s@5/s"))
    b.current(5).num_txns += 1  # before the start: interval 0
    b.origin_ns = T0
    b.current(T0 + round(1.2 * NS_PER_S)).num_txns += 1
    b.current(T0 + round(1.7 * NS_PER_S)).num_txns += 1
    total, parts = b.take()
    assert [k for k, _ in parts] == [(0, 0), (1, 0), (1, 1)] and total.num_txns == 3
    assert b.take()[1] == ()


def test_prometheus_buckets_are_cumulative_and_end_at_the_count() -> None:
    h = LatencyHistogram()
    h.record_many([500_000, 2_000_000, 2_000_000, 40_000_000, 3 * NS_PER_S])
    buckets = dict(histogram_buckets(h))
    assert buckets["0.001"] == 1 and buckets["0.0025"] == 3 and buckets["0.05"] == 4
    assert buckets["2.5"] == 4 and buckets["5.0"] == 5 and buckets["+Inf"] == 5
