"""What a report shows of one run (``Run``), read from a ``--timeseries`` file or a directory.

A RUN argument is a timeseries file (``stream --timeseries``), or a directory holding one
(``*.jsonl``: the first whose first record is a ``run`` header) and optionally the summary JSON
(``*.json`` with ``total_ops``; the timeseries' own ``summary`` record wins). Records of kind
``watch`` (``cdc watch``'s timeseries, when present in the same file or directory) become the
CDC lag series, and so do ``cdc watch --json`` lines (``{"type": "interval", "elapsed_s", "lag_ms":
{"all": {p50, p95, p99, max}}}``; its clock starts with the watch); unknown kinds are skipped,
so newer files still open.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import orjson

from loadgen.errors import ConfigError
from loadgen.stream.timeseries import SCHEMA_VERSION, read_timeseries

_WATCH_TYPES = ("interval", "missing", "final")  # `cdc watch --json` lines


@dataclass
class Run:
    """One run's records, by kind."""

    label: str  # how the report names it (the path given)
    header: dict[str, Any] = field(default_factory=dict)
    intervals: list[dict[str, Any]] = field(default_factory=list)
    phases: list[dict[str, Any]] = field(default_factory=list)
    watch: list[dict[str, Any]] = field(default_factory=list)  # cdc watch records
    summary: dict[str, Any] | None = None

    def series(self, *path: str) -> list[float]:
        """One figure of every interval (``series("latency_ms", "p99")``), 0 when missing."""
        out = []
        for r in self.intervals:
            value: Any = r
            for key in path:
                value = value.get(key, 0) if isinstance(value, dict) else 0
            out.append(float(value or 0))
        return out

    def times(self) -> list[float]:
        """Each interval's end, s since the start."""
        return [float(r.get("t1_s", 0)) for r in self.intervals]


def _timeseries_in(directory: Path) -> list[Path]:
    found = []
    for path in sorted(directory.glob("*.jsonl")):
        try:
            first = path.open("rb").readline()
            record = orjson.loads(first) if first.strip() else None
        except (OSError, orjson.JSONDecodeError):
            continue
        if isinstance(record, dict) and (
            record.get("kind") in ("run", "watch") or record.get("type") in _WATCH_TYPES
        ):
            found.append(path)
    return found


def _summary_in(directory: Path) -> dict[str, Any] | None:
    for path in sorted(directory.glob("*.json")):
        try:
            data = orjson.loads(path.read_bytes())
        except (OSError, orjson.JSONDecodeError):
            continue
        if isinstance(data, dict) and "total_ops" in data:
            return data
    return None


def load_run(arg: str) -> Run:
    """Read one RUN argument. Raises ConfigError (exit 2): missing, unreadable, no timeseries,
    or a schema newer than this build reads."""
    path = Path(arg)
    if not path.exists():
        raise ConfigError(f"report: {arg!r} does not exist")
    run = Run(label=arg)
    if path.is_dir():
        files = _timeseries_in(path)
        if not files:
            raise ConfigError(f"report: no timeseries (*.jsonl from stream --timeseries) in {arg}")
        run.summary = _summary_in(path)
    else:
        files = [path]
    all_intervals: list[dict[str, Any]] = []
    for file in files:
        for record in read_timeseries(file):
            kind = record.get("kind")
            if kind is None and record.get("type") == "interval":  # cdc watch --json
                run.watch.append(record)
                continue
            if kind == "run":
                schema = record.get("schema")
                if not isinstance(schema, int) or schema > SCHEMA_VERSION:
                    raise ConfigError(
                        f"report: {file}: timeseries schema {schema!r}; this loadgen reads"
                        f" up to {SCHEMA_VERSION}"
                    )
                run.header = record
            elif kind == "interval":
                all_intervals.append(record)
            elif kind == "phase":
                run.phases.append(record)
            elif kind == "watch":
                run.watch.append(record)
            elif kind == "summary":
                run.summary = {k: v for k, v in record.items() if k != "kind"}
    # a sliver at the very end (the workers' last commits a moment past --duration) is in the
    # sums but not plotted: a few operations over a few ms would draw as a huge rate
    step = float(run.header.get("report_interval_s") or 0)
    run.intervals = [
        r for r in all_intervals if not (step and float(r.get("duration_s", step)) < 0.1 * step)
    ]
    if not run.header and not run.watch:
        raise ConfigError(f"report: {arg}: no 'run' header; is it a stream --timeseries file?")
    return run
