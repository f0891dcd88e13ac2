"""``stream --metrics-port N``: Prometheus ``/metrics`` served by the coordinator's process.

Built on the official ``prometheus-client`` (extra ``[metrics]``): a custom collector reads the
run's totals (merged from the workers' deltas, under a lock: the HTTP server runs in its own
thread) at every scrape, so the counters are exactly what the summary counts from the deltas.

Metrics (Prometheus conventions: ``_total`` counters, ``_seconds`` units):

- ``loadgen_ops_total{operation, kind, outcome}``: operations, ``outcome`` ``committed`` or
  ``no_op`` (committed, changed no row); ``loadgen_failed_ops_total``: operations in
  transactions that did not commit (they carry no operation name);
- ``loadgen_rows_total{table, change}``: rows the server changed (insert, update, delete);
- ``loadgen_txns_total``, ``loadgen_errors_total{sqlstate_class}``, ``loadgen_reconnects_total``,
  ``loadgen_retries_total``, ``loadgen_dropped_slots_total``;
- ``loadgen_latency_seconds`` (commit end - slot) and ``loadgen_schedule_lag_seconds``
  (transaction start - slot): histograms whose buckets are cumulative counts of the run's
  log-linear histograms at ``BUCKETS_S`` (each within 1/128 of exact);
- ``loadgen_workers_alive``, ``loadgen_rate_target_ops_per_second`` (NaN when unlimited; the
  phase's rate under ``--phases``).
"""

from __future__ import annotations

import math
import threading
from collections.abc import Iterator
from typing import Any

import numpy as np

from loadgen import metrics_http
from loadgen.metrics_http import BUCKETS_S
from loadgen.stream.clock import NS_PER_S
from loadgen.stream.stats import IntervalStats, LatencyHistogram, _bucket_bounds
from loadgen.stream.summary import kind_of

_CHANGES = {"c": "insert", "u": "update", "d": "delete"}


def _upper_bounds() -> np.ndarray:
    from loadgen.stream.stats import NUM_BUCKETS

    return np.array([_bucket_bounds(i)[1] for i in range(NUM_BUCKETS)], dtype=np.int64)


_UPPER_NS = _upper_bounds()


def histogram_buckets(hist: LatencyHistogram) -> list[tuple[str, float]]:
    """Cumulative ``(le, count)`` pairs at ``BUCKETS_S`` and ``+Inf`` (a value counts in ``le``
    when its whole log-linear bucket lies at or below it)."""
    cum = np.cumsum(hist.counts)
    out = []
    for le in BUCKETS_S:
        n = int(np.searchsorted(_UPPER_NS, round(le * NS_PER_S), side="right"))
        out.append((repr(le), float(cum[n - 1]) if n else 0.0))
    out.append(("+Inf", float(hist.count)))
    return out


class StreamMetrics:
    """The run's metrics and the HTTP server that serves them (``start``/``close``).

    ``add(stats)`` is called by the coordinator for every delta; ``bind(coordinator)`` lets
    the gauges read the workers and the target rate.
    """

    def __init__(self, port: int, host: str = "") -> None:
        self.port = port
        self.host = host
        self.total = IntervalStats()
        self.lock = threading.Lock()
        self._coordinator: Any = None
        self._server: metrics_http.MetricsServer | None = None

    def bind(self, coordinator: Any) -> None:
        self._coordinator = coordinator

    def add(self, stats: IntervalStats) -> None:
        with self.lock:
            self.total.merge(stats)

    def start(self) -> None:
        """Serve ``/metrics`` on ``port`` (all interfaces). Raises ConfigError (exit 2)."""
        self._server = metrics_http.serve(self.port, _Collector(self), self.host)

    def close(self) -> None:
        """Stop the server (idempotent)."""
        if self._server is not None:
            self._server.close()
            self._server = None

    # -- read by the collector, in the server's thread --------------------------------------

    def workers_alive(self) -> int:
        c = self._coordinator
        if c is None:
            return 0
        return sum(
            1
            for h in list(c.fleet.handles.values())
            if h.is_started and not h.is_done and not h.is_eof
        )

    def rate_target(self) -> float:
        c = self._coordinator
        if c is None:
            return math.nan
        spec = c.spec
        if spec.phases is not None:
            t0 = c.fleet.start_at_ns.value
            if not t0:
                return 0.0
            return spec.phases.rate_at((c.clock.now_ns() - t0) / NS_PER_S)
        target = spec.target_rate_per_s
        return math.nan if target is None else float(target)


class _Collector:
    def __init__(self, metrics: StreamMetrics) -> None:
        self.metrics = metrics

    def collect(self) -> Iterator[Any]:
        from prometheus_client.core import (
            CounterMetricFamily,
            GaugeMetricFamily,
            HistogramMetricFamily,
        )

        m = self.metrics
        with m.lock:
            t = IntervalStats()
            t.merge(m.total)
        ops = CounterMetricFamily(
            "loadgen_ops", "Operations by outcome", labels=["operation", "kind", "outcome"]
        )
        for name, n in sorted((+t.ops_by_name).items()):
            ops.add_metric([name, kind_of(name), "committed"], n)
        for name, n in sorted((+t.no_ops_by_name).items()):
            ops.add_metric([name, kind_of(name), "no_op"], n)
        yield ops
        yield CounterMetricFamily(
            "loadgen_failed_ops", "Operations in transactions that did not commit",
            value=t.num_failed_ops,
        )  # fmt: skip
        rows = CounterMetricFamily("loadgen_rows", "Rows changed", labels=["table", "change"])
        for (table, op), n in sorted(t.rows_by_table.items()):
            if op in _CHANGES and n:
                rows.add_metric([table, _CHANGES[op]], n)
        yield rows
        yield CounterMetricFamily("loadgen_txns", "Committed transactions", value=t.num_txns)
        errors = CounterMetricFamily("loadgen_errors", "Errors", labels=["sqlstate_class"])
        for cls, n in sorted(t.errors_by_class.items()):
            errors.add_metric([cls], n)
        yield errors
        yield CounterMetricFamily("loadgen_reconnects", "Reconnections", value=t.num_reconnects)
        yield CounterMetricFamily("loadgen_retries", "Retried transactions", value=t.num_retried)
        yield CounterMetricFamily(
            "loadgen_dropped_slots", "Token-bucket slots dropped", value=t.num_dropped
        )
        for name, doc, hist in (
            ("loadgen_latency_seconds", "Commit end minus scheduled slot", t.latency_ns),
            ("loadgen_schedule_lag_seconds", "Transaction start minus slot", t.lag_ns),
        ):
            yield HistogramMetricFamily(
                name, doc, buckets=histogram_buckets(hist), sum_value=hist.sum / NS_PER_S
            )
        yield GaugeMetricFamily(
            "loadgen_workers_alive", "Worker processes running", value=m.workers_alive()
        )
        yield GaugeMetricFamily(
            "loadgen_rate_target_ops_per_second", "Target rate", value=m.rate_target()
        )
