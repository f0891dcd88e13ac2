"""``stream --timeseries FILE``: one JSON line per report interval, at the time the work happened.

Workers (``StatsBuckets``) file what they record under the key ``(interval, phase)`` of the
moment it is recorded — a commit's completion — on the shared monotonic clock: interval ``k``
is ``[start + k * report_interval, start + (k + 1) * report_interval)``. Each ``StatsDelta``
carries those parts. The coordinator (``TimeseriesWriter``) merges every part into its
interval's record, however late the delta arrives, and writes record ``k`` once every worker
still running has reported past its end (a delta's ``t1_ns`` is a watermark: whatever that
worker records later completes later), or at the end of the run. So a steady 50/s shows as 50
in every interval, not 0 and 100 in turn.

File: JSON lines, ``schema`` 1 (docs/streaming.md): a ``{"kind": "run", ...}`` header, one
``{"kind": "interval", ...}`` per interval (``interval_record``), per-phase records
``{"kind": "phase", ...}`` when ``--phases`` is used, and a ``{"kind": "summary", ...}``
trailer (the summary JSON). Coordinator's process, main thread; each line is flushed.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import IO, Any

import orjson

from loadgen.errors import ConfigError
from loadgen.outpaths import prepare_output_file
from loadgen.stream.clock import NS_PER_MS, NS_PER_S
from loadgen.stream.messages import StatsDelta
from loadgen.stream.phases import PhasePlan
from loadgen.stream.stats import IntervalStats, merged
from loadgen.stream.summary import RunSummary, kind_counts, row_changes

SCHEMA_VERSION = 1
_RECENT = 4  # intervals kept after they were written, for the progress line
Key = tuple[int, int]  # (interval index, phase index)


class StatsBuckets:
    """A worker's stats since its last delta, one ``IntervalStats`` per (interval, phase).

    ``current(now_ns)`` is where a record made at ``now_ns`` goes; before the start is set
    (``origin_ns`` 0) everything goes to interval 0.
    """

    def __init__(self, interval_ns: int, plan: PhasePlan | None = None) -> None:
        self.interval_ns = interval_ns
        self.plan = plan
        self.origin_ns = 0
        self.parts: dict[Key, IntervalStats] = {}

    def key(self, now_ns: int) -> Key:
        if not self.origin_ns or now_ns <= self.origin_ns:
            return (0, 0)
        offset = now_ns - self.origin_ns
        phase = 0 if self.plan is None else self.plan.phase_at(offset / NS_PER_S)
        return (offset // self.interval_ns, phase)

    def current(self, now_ns: int) -> IntervalStats:
        key = self.key(now_ns)
        stats = self.parts.get(key)
        if stats is None:
            stats = self.parts[key] = IntervalStats()
        return stats

    def take(self) -> tuple[IntervalStats, tuple[tuple[Key, IntervalStats], ...]]:
        """(their sum, the parts), and start afresh."""
        parts = tuple(sorted(self.parts.items()))
        self.parts = {}
        return merged(s for _, s in parts), parts


def _ms(value_ns: float) -> float:
    return round(value_ns / NS_PER_MS, 3)


def figures(stats: IntervalStats, duration_s: float) -> dict[str, Any]:
    """The figures of one record (interval or phase) from its merged stats."""
    lat, lag = stats.latency_ns, stats.lag_ns
    ops = stats.num_ops
    return {
        "ops": ops,
        "ops_per_s": round(ops / duration_s, 3) if duration_s > 0 else 0.0,
        "by_op": dict(sorted((+stats.ops_by_name).items())),
        "by_kind": kind_counts(stats),
        "committed_txns": stats.num_txns,
        "failed_ops": stats.num_failed_ops,
        "no_op": stats.num_no_ops,
        "no_op_by_op": dict(sorted((+stats.no_ops_by_name).items())),
        "row_changes": row_changes(stats),
        "latency_ms": {
            "p50": _ms(lat.percentile(50)),
            "p95": _ms(lat.percentile(95)),
            "p99": _ms(lat.percentile(99)),
            "max": _ms(lat.max),
        },
        "schedule_lag_ms": {"p50": _ms(lag.percentile(50)), "p99": _ms(lag.percentile(99))},
        "errors": dict(sorted(stats.errors_by_class.items())),
        "retried": stats.num_retried,
        "reconnects": stats.num_reconnects,
        "in_doubt": stats.num_in_doubt,
        "dropped": stats.num_dropped,
    }


class TimeseriesWriter:
    """Merges workers' parts into interval records and writes them in order (see module doc).

    Args:
        path: the JSON-lines file (created or truncated by ``open``); None: no file, only the
            per-phase totals (``phase_figures``, the summary's ``phases``).
        interval_s: the report interval, s; worker_ids: the run's workers.
        plan: the phases (``--phases``), or None.
        target_rate_per_s: the run's fixed target (None: unlimited or phases).
    """

    def __init__(
        self,
        path: str | Path | None,
        interval_s: float,
        worker_ids: Iterable[int],
        plan: PhasePlan | None = None,
        target_rate_per_s: float | None = None,
    ) -> None:
        self.path = None if path is None else Path(path)
        self.interval_s = interval_s
        self.plan = plan
        self.target_rate_per_s = target_rate_per_s
        self.watermark_ns = dict.fromkeys(worker_ids, 0)  # per live worker: reported up to
        self.pending: dict[int, dict[int, IntervalStats]] = {}  # interval -> phase -> stats
        self.phase_totals: dict[int, IntervalStats] = {}
        self.next_k = 0  # the next interval to write
        self.origin_ns = 0
        self.end_ns: int | None = None
        self._file: IO[bytes] | None = None
        self.recent: dict[int, IntervalStats] = {}  # the last intervals written (progress)

    # -- lifecycle -------------------------------------------------------------------------

    def open(self, header: Mapping[str, Any]) -> None:
        """Create the file and write the ``run`` header. Raises ConfigError (exit 2)."""
        if self.path is None:
            return
        try:
            self._file = self.path.open("wb")
        except OSError as exc:
            raise ConfigError(
                f"--timeseries {str(self.path)!r}: cannot write: {exc.strerror or exc}"
            ) from None
        self._write(
            {
                "kind": "run",
                "schema": SCHEMA_VERSION,
                "started_at": dt.datetime.now(dt.UTC).isoformat(timespec="milliseconds"),
                "report_interval_s": self.interval_s,
                "phases": None if self.plan is None else self.plan.to_json(),
                **header,
            }
        )

    def start(self, origin_ns: int) -> None:
        """The run's common start time (monotonic ns): interval 0 begins there."""
        self.origin_ns = origin_ns

    def add(self, delta: StatsDelta) -> None:
        """Merge one delta's parts (a delta without parts counts at its ``t1_ns``)."""
        parts = delta.parts or ((self._key_of(delta.t1_ns), delta.stats),)
        for (k, phase), stats in parts:
            self.phase_totals.setdefault(phase, IntervalStats()).merge(stats)
            self.pending.setdefault(max(k, self.next_k), {}).setdefault(
                phase, IntervalStats()
            ).merge(stats)
        if delta.worker_id in self.watermark_ns:
            self.watermark_ns[delta.worker_id] = max(
                self.watermark_ns[delta.worker_id], delta.t1_ns
            )
        self._flush_ready()

    def worker_gone(self, worker_id: int) -> None:
        """The worker sent its last delta (done, failed or dead): it holds nothing back."""
        self.watermark_ns.pop(worker_id, None)
        self._flush_ready()

    def close(self, summary: RunSummary | None, end_ns: int) -> None:
        """Write every interval up to ``end_ns``, the phase records and the ``summary``."""
        if self._file is None:
            return
        self.end_ns = end_ns
        last = max([*self.pending, self._last_k(end_ns)])
        step = round(self.interval_s * NS_PER_S)
        if (
            last > 0
            and last not in self.pending
            and end_ns - self.origin_ns - last * step < step // 10
        ):
            last -= 1  # the workers' last words a moment past the end: no interval of its own
        while self.next_k <= last:
            self._write_interval(self.next_k)
        if self.plan is not None:
            for i, phase in enumerate(self.plan.phases):
                stats = self.phase_totals.get(i, IntervalStats())
                start_s = self.plan.start_s(i)
                ran_s = min(
                    phase.duration_s, max((end_ns - self.origin_ns) / NS_PER_S - start_s, 0)
                )
                self._write(
                    {
                        "kind": "phase",
                        "phase": i,
                        "name": phase.name or f"phase {i}",
                        "start_s": round(start_s, 6),
                        "duration_s": round(ran_s, 6),
                        "target_rate_per_s": round(phase.mean_rate_per_s, 6),
                        **figures(stats, ran_s),
                    }
                )
        if summary is not None:
            self._write({"kind": "summary", **summary.to_json()})
        self._file.close()
        self._file = None

    def phase_figures(self, end_ns: int) -> list[dict[str, Any]] | None:
        """Per-phase figures for the summary JSON (None without phases)."""
        if self.plan is None:
            return None
        out = []
        for i, phase in enumerate(self.plan.phases):
            start_s = self.plan.start_s(i)
            ran_s = min(phase.duration_s, max((end_ns - self.origin_ns) / NS_PER_S - start_s, 0))
            stats = self.phase_totals.get(i, IntervalStats())
            out.append(
                {
                    "phase": i,
                    "name": phase.name or f"phase {i}",
                    "duration_s": round(ran_s, 6),
                    "target_rate_per_s": round(phase.mean_rate_per_s, 6),
                    **figures(stats, ran_s),
                }
            )
        return out

    def stats_of(self, k: int) -> IntervalStats:
        """Interval ``k``: complete once written, else what its parts hold so far."""
        done = self.recent.get(k)
        if done is not None:
            return done
        return merged(self.pending.get(k, {}).values())

    # -- internals -------------------------------------------------------------------------

    def _key_of(self, t_ns: int) -> Key:
        if t_ns <= self.origin_ns or not self.origin_ns:
            return (0, 0)
        offset = t_ns - self.origin_ns
        phase = 0 if self.plan is None else self.plan.phase_at(offset / NS_PER_S)
        return (int(offset // round(self.interval_s * NS_PER_S)), phase)

    def _last_k(self, t_ns: int) -> int:
        """The interval holding ``t_ns`` (an end exactly on an edge closes the one before)."""
        step = round(self.interval_s * NS_PER_S)
        offset = max(t_ns - self.origin_ns, 1)
        return int((offset - 1) // step)

    def _flush_ready(self) -> None:
        if not self.origin_ns:
            return
        step = round(self.interval_s * NS_PER_S)
        low = min(self.watermark_ns.values(), default=None)
        if low is None:  # every worker finished: the rest is written by close
            return
        while self.origin_ns + (self.next_k + 1) * step <= low:
            self._write_interval(self.next_k)

    def _write_interval(self, k: int) -> None:
        step_s = self.interval_s
        by_phase = self.pending.pop(k, {})
        stats = merged(by_phase.values())
        self.recent[k] = stats
        self.recent.pop(k - _RECENT, None)
        self.next_k = k + 1
        if self._file is None:
            return
        t0_s = k * step_s
        t1_s = t0_s + step_s
        if self.end_ns is not None:
            t1_s = min(t1_s, max((self.end_ns - self.origin_ns) / NS_PER_S, t0_s))
        duration_s = t1_s - t0_s
        record: dict[str, Any] = {
            "kind": "interval",
            "interval": k,
            "t0_s": round(t0_s, 6),
            "t1_s": round(t1_s, 6),
            "duration_s": round(duration_s, 6),
            "target_rate_per_s": self._target(t0_s, t1_s),
        }
        if self.plan is not None:
            record["phase"] = self.plan.phase_at(t0_s)
            record["phases"] = sorted(by_phase)
        record.update(figures(stats, duration_s))
        self._write(record)

    def _target(self, t0_s: float, t1_s: float) -> float | None:
        if self.plan is None:
            return self.target_rate_per_s
        if t1_s <= t0_s:
            return round(self.plan.rate_at(t0_s), 6)
        return round((self.plan.tokens_by(t1_s) - self.plan.tokens_by(t0_s)) / (t1_s - t0_s), 6)

    def _write(self, record: Mapping[str, Any]) -> None:
        assert self._file is not None
        self._file.write(orjson.dumps(record) + b"\n")
        self._file.flush()


def check_timeseries_path(path: str | Path) -> None:
    """Fail before the run when ``--timeseries`` could not be written; create its missing
    parent directories (``loadgen.outpaths.prepare_output_file``; ConfigError, exit 2)."""
    prepare_output_file("--timeseries", path)


def read_timeseries(path: str | Path) -> list[dict[str, Any]]:
    """The records of a timeseries file (any kind, in file order). Raises ConfigError."""
    try:
        lines = Path(path).read_bytes().splitlines()
    except OSError as exc:
        raise ConfigError(f"{path}: cannot read: {exc.strerror or exc}") from None
    out = []
    for n, line in enumerate(lines, 1):
        if not line.strip():
            continue
        try:
            record = orjson.loads(line)
        except orjson.JSONDecodeError:
            raise ConfigError(f"{path}:{n}: not a JSON line") from None
        if not isinstance(record, dict):
            raise ConfigError(f"{path}:{n}: not a JSON object")
        out.append(record)
    return out
