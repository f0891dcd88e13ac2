"""``cdc watch``'s Prometheus lag histogram: cumulative counts at ``BUCKETS_S`` from
``watch_lag``'s 2 % buckets, and the sum; no scrape reads the matcher mid-change."""

from __future__ import annotations

import numpy as np
import pytest

from loadgen.cdc.ledger_index import TableCodes
from loadgen.cdc.watch_lag import LagStats
from loadgen.cdc.watch_match import Matcher
from loadgen.cdc.watch_metrics import WatchMetrics, lag_buckets, snapshot
from loadgen.metrics_http import BUCKETS_S


def test_lag_buckets_are_cumulative_and_within_one_bucket_of_exact() -> None:
    rng = np.random.default_rng(7)
    lags_ms = np.concatenate([rng.lognormal(3, 1.5, 5_000), [0.0, -3.0, 0.005, 9e7]])
    stats = LagStats()
    for v in lags_ms:
        stats.add("consultas", float(v))
    stats.take_interval()
    counts, sum_ms = stats.folded()["consultas"]
    pairs = lag_buckets(counts)
    assert [le for le, _ in pairs] == [repr(b) for b in BUCKETS_S] + ["+Inf"]
    got = [n for _, n in pairs]
    assert got == sorted(got) and got[-1] == len(lags_ms)
    for le, n in zip(BUCKETS_S, got, strict=False):
        le_ms = le * 1000.0
        # counted when the whole bucket is <= le: never more than exact, at most one 2 %
        # bucket fewer
        assert np.sum(lags_ms <= le_ms / 1.0201) <= n <= np.sum(lags_ms <= le_ms), le
    assert sum_ms == pytest.approx(float(lags_ms.sum()))


def test_a_snapshot_is_a_copy_the_matcher_does_not_change_afterwards() -> None:
    m = Matcher(TableCodes(["consultas"]))
    m.tally.matched = 3
    m.lag.add("consultas", 5.0)
    m.lag.take_interval()
    w = WatchMetrics(0)
    w.publish(snapshot(m, 2, reconnects=None))
    m.tally.matched = 4
    m.lag.add("consultas", 6.0)
    m.lag.take_interval()
    s = w.current
    assert s.counters["matched"] == 3 and s.checks["ledger_lines"] == 2
    assert int(s.lag["consultas"][0].sum()) == 1 and s.reconnects is None
