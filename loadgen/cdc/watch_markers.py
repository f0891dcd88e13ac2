"""The markers ``stream --markers`` writes, as ``cdc watch`` sees them: count, gaps, lag.

A marker is a logical message (prefix ``loadgen``) whose content is the JSON object
``{"run_id", "seq", "ts"}`` (``loadgen.stream.markers``). Markers are matched by that payload,
never by LSN: per ``run_id`` the watch expects ``seq`` 0, 1, 2, ...; a number skipped is a
*gap* (a marker not written — the server was away — or not delivered), one seen twice is
*duplicated* (a redelivery the slot's reconnect logic did not drop), one seen after a later
one fills its gap again (counted *out of order*).

A marker's *lag* is its capture time (when its Commit arrived, the watch's wall clock) minus
``ts`` (the stream's wall clock just before it wrote the marker), in milliseconds: the whole
path from a client's write to the consumer, measured even while no table changes. Per
interval (exact percentiles) and for the run (``watch_lag``'s histogram).
"""

from __future__ import annotations

from typing import Any

import orjson

from loadgen.cdc.watch_lag import LagStats

PREFIX = "loadgen"  # loadgen.stream.markers.PREFIX (not imported: cdc does not import stream)
MAX_GAPS_KEPT = 10_000  # per run: skipped numbers remembered (to tell a late one from a double)
MAX_RUNS = 1_000  # runs followed at once (a run's markers after this many others: a new run)
_LAG_KEY = "markers"


class _Run:
    __slots__ = ("next_seq", "skipped", "count")

    def __init__(self) -> None:
        self.next_seq = 0
        self.skipped: set[int] = set()
        self.count = 0


class MarkerStats:
    """Markers captured so far (see module doc). ``captured`` for each one, in delivery order."""

    def __init__(self) -> None:
        self.runs: dict[str, _Run] = {}
        self.count = 0  # distinct markers captured
        self.gaps = 0  # numbers skipped and never seen since
        self.duplicated = 0
        self.out_of_order = 0
        self.bad = 0  # messages with the prefix whose content is not a marker's
        self._in_interval = 0
        self._lag = LagStats()

    def captured(self, content: bytes, received_at: float) -> None:
        """One marker's content, captured at ``received_at`` (Unix seconds, wall clock)."""
        try:
            doc = orjson.loads(content)
            run_id, seq, ts = str(doc["run_id"]), int(doc["seq"]), float(doc["ts"])
        except (orjson.JSONDecodeError, KeyError, TypeError, ValueError):
            self.bad += 1
            return
        if seq < 0:
            self.bad += 1
            return
        run = self.runs.get(run_id)
        if run is None:
            if len(self.runs) >= MAX_RUNS:
                self.runs.pop(next(iter(self.runs)))
            run = self.runs[run_id] = _Run()
        if seq >= run.next_seq:
            skipped = range(run.next_seq, seq)
            self.gaps += len(skipped)
            if len(run.skipped) + len(skipped) <= MAX_GAPS_KEPT:
                run.skipped.update(skipped)
            run.next_seq = seq + 1
        elif seq in run.skipped:
            run.skipped.discard(seq)
            self.gaps -= 1
            self.out_of_order += 1
        else:
            self.duplicated += 1
            return
        run.count += 1
        self.count += 1
        self._in_interval += 1
        self._lag.add(_LAG_KEY, (received_at - ts) * 1000.0)

    def take_interval(self) -> dict[str, Any]:
        """The interval's figures, then a new interval: ``{"count", "in_interval", "gaps",
        "duplicated", "lag_ms": {count, p50, p95, p99, max}}`` (lag of the interval's)."""
        lag = self._lag.take_interval()["all"]
        out = {**self._counts(), "in_interval": self._in_interval, "lag_ms": lag}
        self._in_interval = 0
        return out

    def totals(self) -> dict[str, Any]:
        """The run's figures: counts, ``runs`` (markers per run id), ``lag_ms`` (histogram)."""
        return {
            **self._counts(),
            "runs": {r: run.count for r, run in self.runs.items()},
            "lag_ms": self._lag.totals()["all"],
        }

    def _counts(self) -> dict[str, int]:
        return {
            "count": self.count,
            "gaps": self.gaps,
            "duplicated": self.duplicated,
            "out_of_order": self.out_of_order,
            "bad": self.bad,
        }


def progress_part(rec: dict[str, Any] | None) -> str:
    """`` | markers 12 lag p50 3.1 max 4.0 ms`` for the progress line ("" without markers)."""
    if not rec or not rec.get("count"):
        return ""
    lag = rec.get("lag_ms", {})
    text = f" | markers {rec['count']:,}"
    if rec.get("gaps"):
        text += f" gaps {rec['gaps']:,}"
    if lag.get("count"):
        text += f" lag p50 {lag['p50']:.1f} max {lag['max']:.1f} ms"
    return text
