"""``cdc watch --metrics-port N``: Prometheus ``/metrics`` served by the watch's process.

The watch is single-threaded; the HTTP server (``loadgen.metrics_http``, prometheus-client's)
runs in a thread of the same process. So that a scrape never reads the matcher mid-change,
the watch ``publish``es a snapshot of its figures at every interval (``--interval``) and once
more after the final sweep: a scrape shows the last interval's figures, and after the end
(``--metrics-linger``) exactly those of the final report and ``--summary-json``.

Metrics (Prometheus conventions: ``_total`` counters, ``_seconds`` units):

- ``loadgen_cdc_ledger_changes_total``, ``loadgen_cdc_captured_changes_total``: committed
  ledger changes read, changes captured (the report's ``ledger_changes``/``captured_changes``);
- ``loadgen_cdc_matched_total`` (``matched``), ``loadgen_cdc_late_total`` (``late_matches``:
  matched after being reported missing);
- ``loadgen_cdc_pending`` (gauge): committed ledger changes not captured yet, overdue ones
  included; ``loadgen_cdc_overdue`` (gauge): those reported missing and still not captured
  (at the end: the ``missing`` check's count; after the final sweep ``pending`` = ``overdue``);
- ``loadgen_cdc_missing_total``: changes ever reported missing (pending > ``--grace``; the
  final sweep reports every one still pending: ``missing_reported_live``);
- ``loadgen_cdc_duplicated_total``, ``loadgen_cdc_redelivered_total`` (at-least-once resends),
  ``loadgen_cdc_unexpected_total``;
- ``loadgen_cdc_check_failures_total{check}``: failures by check, the report's counts for
  every watch check whose count only grows (all but ``missing``, which a late match lowers:
  see ``loadgen_cdc_overdue`` and ``loadgen_cdc_missing_total``);
- ``loadgen_cdc_lag_seconds{table}``: histogram of capture minus commit time (wall clocks,
  docs/cdc.md), at ``metrics_http.BUCKETS_S``; a lag counts in ``le`` when its whole 2 %
  bucket of ``watch_lag`` lies at or below it; ``_count`` is the report's lag count;
- ``loadgen_cdc_reconnects_total`` (``--slot`` only): replication reconnections.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import numpy.typing as npt

from loadgen import metrics_http
from loadgen.cdc.watch_lag import edges_ms
from loadgen.cdc.watch_match import Matcher
from loadgen.metrics_http import BUCKETS_S

_EDGES_MS = edges_ms()
_COUNTERS = (  # (metric name without loadgen_cdc_/_total, Tally field, help)
    ("ledger_changes", "ledger_changes", "Committed ledger changes read"),
    ("captured_changes", "captured_changes", "Changes captured from the source"),
    ("matched", "matched", "Ledger changes matched by a captured change"),
    ("late", "late", "Matched after having been reported missing"),
    ("missing", "missing_reported", "Ledger changes reported missing (pending > grace)"),
    ("duplicated", "duplicated", "Changes captured more than once"),
    ("redelivered", "redelivered", "At-least-once redeliveries (not failures)"),
    ("unexpected", "unexpected", "Captured changes with no ledger change"),
)
MONOTONIC_CHECKS = (
    "ledger_lines", "ledger_duplicates", "duplicated", "unexpected", "missing_from_ledger",
    "order", "values",
)  # fmt: skip


@dataclass
class WatchSnapshot:
    """The figures one scrape shows (taken in the watch's thread)."""

    counters: dict[str, int] = field(default_factory=dict)
    pending: int = 0
    missing_now: int = 0
    checks: dict[str, int] = field(default_factory=dict)
    lag: dict[str, tuple[npt.NDArray[np.int64], float]] = field(default_factory=dict)
    reconnects: int | None = None


def snapshot(m: Matcher, ledger_bad_lines: int, reconnects: int | None) -> WatchSnapshot:
    """The matcher's figures now (``ledger_bad_lines``: the ``ledger_lines`` check's count)."""
    t = m.tally
    checks = {k: int(getattr(t, k, 0)) for k in MONOTONIC_CHECKS if k != "ledger_lines"}
    checks["ledger_lines"] = ledger_bad_lines
    return WatchSnapshot(
        counters={name: int(getattr(t, f)) for name, f, _ in _COUNTERS},
        pending=m.num_pending,
        missing_now=len(m.overdue),
        checks=checks,
        lag=m.lag.folded(),
        reconnects=reconnects,
    )


def lag_buckets(counts: npt.NDArray[np.int64]) -> list[tuple[str, float]]:
    """Cumulative ``(le, count)`` pairs at ``BUCKETS_S`` and ``+Inf`` of ``watch_lag``'s
    bucket counts."""
    cum = np.cumsum(counts)
    out = []
    for le in BUCKETS_S:
        n = int(np.searchsorted(_EDGES_MS, le * 1000.0, side="right"))
        out.append((repr(le), float(cum[n - 1]) if n else 0.0))
    out.append(("+Inf", float(cum[-1])))
    return out


class WatchMetrics:
    """The watch's metrics and their server: ``start``, ``publish`` (watch thread), ``close``."""

    def __init__(self, port: int, host: str = "") -> None:
        self.port = port
        self.host = host
        self.lock = threading.Lock()
        self.current = WatchSnapshot()
        self._server: metrics_http.MetricsServer | None = None

    def start(self) -> None:
        """Serve ``/metrics`` on ``port``. Raises ConfigError (exit 2): no prometheus-client,
        or the port cannot be listened on."""
        self._server = metrics_http.serve(self.port, _Collector(self), self.host)

    def publish(self, snap: WatchSnapshot) -> None:
        with self.lock:
            self.current = snap

    def close(self) -> None:
        if self._server is not None:
            self._server.close()
            self._server = None


class _Collector:
    def __init__(self, metrics: WatchMetrics) -> None:
        self.metrics = metrics

    def collect(self) -> Iterator[Any]:
        from prometheus_client.core import (
            CounterMetricFamily,
            GaugeMetricFamily,
            HistogramMetricFamily,
        )

        with self.metrics.lock:
            s = self.metrics.current
        for name, _, doc in _COUNTERS:
            yield CounterMetricFamily(f"loadgen_cdc_{name}", doc, value=s.counters.get(name, 0))
        yield GaugeMetricFamily(
            "loadgen_cdc_pending", "Committed ledger changes not captured yet", value=s.pending
        )
        yield GaugeMetricFamily(
            "loadgen_cdc_overdue", "Reported missing and still not captured", value=s.missing_now
        )
        checks = CounterMetricFamily(
            "loadgen_cdc_check_failures", "Check failures by check", labels=["check"]
        )
        for check in MONOTONIC_CHECKS:
            checks.add_metric([check], s.checks.get(check, 0))
        yield checks
        lag = HistogramMetricFamily(
            "loadgen_cdc_lag_seconds", "Capture minus commit time", labels=["table"]
        )
        for table, (counts, sum_ms) in s.lag.items():
            lag.add_metric([table], lag_buckets(counts), sum_value=sum_ms / 1000.0)
        yield lag
        if s.reconnects is not None:
            yield CounterMetricFamily(
                "loadgen_cdc_reconnects", "Replication reconnections", value=s.reconnects
            )
