"""End-to-end lag figures of a watch: per interval (exact) and for the whole run (histogram).

A change's *lag* is the consumer's capture time minus the server's commit time, in
milliseconds (pgoutput: the Commit message's timestamp; Debezium: ``source.ts_ms``). Both
clocks are wall clocks (``time.time()`` here, the server's ``GetCurrentTimestamp`` there): on
one host they agree; across hosts the figure includes their offset (docs/cdc.md).

``LagStats.add`` records one change; ``take_interval`` returns the interval's p50/p95/p99/max
overall and per table, then starts a new interval; ``totals`` gives the same over the whole
run from a log-bucket histogram (2 % wide buckets from 0.01 ms to ~28 h: bounded memory
whatever the run's length; a percentile is the upper edge of its bucket).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import numpy as np
import numpy.typing as npt

_STEP = 1.02
_MIN_MS = 0.01
_NUM_BUCKETS = 1200  # 0.01 ms * 1.02^1200 ≈ 2.0e8 ms
_LOG_STEP = math.log(_STEP)
QUANTILES = (("p50", 50.0), ("p95", 95.0), ("p99", 99.0))


def _bucket(lag_ms: float) -> int:
    if lag_ms <= _MIN_MS:
        return 0
    return min(int(math.log(lag_ms / _MIN_MS) / _LOG_STEP) + 1, _NUM_BUCKETS - 1)


def _edge(bucket: int) -> float:
    return float(_MIN_MS * _STEP**bucket)


def summarize(values: Sequence[float]) -> dict[str, Any]:
    """count, p50/p95/p99/max (ms, 3 decimals) of ``values`` (empty: count 0, no figures)."""
    if not values:
        return {"count": 0}
    a = np.asarray(values, np.float64)
    out: dict[str, Any] = {"count": len(a)}
    for name, q in QUANTILES:
        out[name] = round(float(np.percentile(a, q)), 3)
    out["max"] = round(float(a.max()), 3)
    return out


def _hist_summary(h: npt.NDArray[np.int64], max_ms: float) -> dict[str, Any]:
    n = int(h.sum())
    if n == 0:
        return {"count": 0}
    cum = np.cumsum(h)
    out: dict[str, Any] = {"count": n}
    for name, q in QUANTILES:
        b = int(np.searchsorted(cum, math.ceil(n * q / 100.0)))
        out[name] = round(min(_edge(b), max_ms), 3)
    out["max"] = round(max_ms, 3)
    return out


class LagStats:
    """Lag samples by table name: the current interval's values and the run's histogram."""

    def __init__(self) -> None:
        self._interval: dict[str, list[float]] = {}
        self._hist: dict[str, npt.NDArray[np.int64]] = {}
        self._max: dict[str, float] = {}
        self._sum: dict[str, float] = {}  # ms, of the folded samples

    def add(self, table: str, lag_ms: float) -> None:
        vals = self._interval.get(table)
        if vals is None:
            vals = self._interval[table] = []
            if table not in self._hist:
                self._hist[table] = np.zeros(_NUM_BUCKETS, np.int64)
                self._max[table] = lag_ms
                self._sum[table] = 0.0
        vals.append(lag_ms)

    def _fold(self) -> None:
        for table, vals in self._interval.items():
            if not vals:
                continue
            a = np.asarray(vals, np.float64)
            idx = np.zeros(len(a), np.int64)
            pos = a > _MIN_MS
            idx[pos] = np.minimum(
                (np.log(a[pos] / _MIN_MS) / _LOG_STEP).astype(np.int64) + 1, _NUM_BUCKETS - 1
            )
            np.add.at(self._hist[table], idx, 1)
            self._max[table] = max(self._max[table], float(a.max()))
            self._sum[table] += float(a.sum())

    def take_interval(self) -> dict[str, Any]:
        """{"all": figures, "tables": {table: figures}} of the interval; starts the next one."""
        every = [v for vals in self._interval.values() for v in vals]
        out = {
            "all": summarize(every),
            "tables": {t: summarize(v) for t, v in sorted(self._interval.items()) if v},
        }
        self._fold()
        self._interval = {}
        return out

    def totals(self) -> dict[str, Any]:
        """The same figures over the whole run so far (histogram: bucket upper edges)."""
        self._fold()
        self._interval = {t: [] for t in self._interval}
        if not self._hist:
            return {"all": {"count": 0}, "tables": {}}
        every = np.sum(list(self._hist.values()), axis=0)
        return {
            "all": _hist_summary(every, max(self._max.values())),
            "tables": {t: _hist_summary(h, self._max[t]) for t, h in sorted(self._hist.items())},
        }

    def folded(self) -> dict[str, tuple[npt.NDArray[np.int64], float]]:
        """{table: (a copy of its bucket counts, sum of its lags in ms)} of the samples folded
        so far (every ``take_interval`` and ``totals`` folds): ``edges_ms()`` bounds them."""
        return {t: (h.copy(), self._sum[t]) for t, h in sorted(self._hist.items())}


def edges_ms() -> npt.NDArray[np.float64]:
    """Each bucket's upper edge in ms (bucket 0 holds lags <= 0.01 ms; the last, the rest)."""
    edges = np.array([_edge(b) for b in range(_NUM_BUCKETS)], np.float64)
    edges[-1] = math.inf
    return edges
