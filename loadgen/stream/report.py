"""Progress and summary output for ``loadgen stream``: rich live view, plain lines, JSON.

Knows about terminals and formats; has no stats logic of its own (numbers come from
``IntervalStats``). Progress goes to stderr, the final summary to stdout. Times are converted
from ns to ms or s only here.
"""

from __future__ import annotations

import os
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any, Protocol

import orjson
from rich.console import Console
from rich.live import Live
from rich.table import Table

from loadgen.errors import ConfigError
from loadgen.ops.registry import BY_NAME, KINDS
from loadgen.stream.clock import NS_PER_MS
from loadgen.stream.profiles import SCENARIO_KIND, is_scenario_op
from loadgen.stream.rates import format_rate
from loadgen.stream.stats import IntervalStats, LatencyHistogram


@dataclass(frozen=True)
class Progress:
    """One progress tick, built by the coordinator."""

    elapsed_s: float  # since the run's start
    interval_s: float  # length of the interval the ``interval`` stats cover
    interval: IntervalStats  # deltas that arrived during this tick
    total: IntervalStats  # everything so far
    remaining_s: float | None  # until --duration ends; None without a duration
    max_ops: int | None  # --max-ops, to show how far along the run is
    num_workers: int
    num_reconnecting: int  # workers currently without a connection
    target_rate_per_s: float | None


@dataclass(frozen=True)
class RunSummary:
    """The figures a finished (or aborted) run reports; ``to_json`` gives the issue's keys."""

    total: IntervalStats
    elapsed_s: float
    num_workers: int
    target_rate_per_s: float | None
    seed: int
    # why it ended: duration, max_ops, signal, worker_failed, ledger_write_failed, start_failed
    stop_reason: str
    profile: str = "default"  # --profile
    has_scenarios: bool = False  # the profile mixes scenario steps in (by_kind gets "scenario")
    ledger: str | None = None  # --ledger path, when given
    is_aborted: bool = False  # the run was aborted (exit 4)
    run_id: str = ""  # in the ledger part names
    settled: Any = None  # loadgen.stream.settle.Settled: operations recovered from the tallies
    owns_existing_rows: bool | None = None  # the rows present at the start were this run's

    @property
    def title(self) -> str:
        """The summary table's title word (``stopped`` for a signal)."""
        if self.is_aborted:
            return "aborted"
        return {"signal": "stopped", "max_ops": "max-ops"}.get(self.stop_reason, self.stop_reason)

    def by_kind(self) -> dict[str, int]:
        kinds = _kind_counts(self.total)
        if not self.has_scenarios:
            del kinds[SCENARIO_KIND]
        return kinds

    def to_json(self) -> dict[str, Any]:
        total = self.total
        lat, lag = total.latency_ns, total.lag_ns
        return {
            "total_ops": total.num_ops,
            "committed_txns": total.num_txns,
            "elapsed_s": round(self.elapsed_s, 3),
            "ops_per_s": round(total.num_ops / self.elapsed_s, 3) if self.elapsed_s > 0 else 0.0,
            "target_rate_per_s": self.target_rate_per_s,
            "workers": self.num_workers,
            "by_op": dict(sorted(total.ops_by_name.items())),
            "by_kind": self.by_kind(),
            "errors": dict(sorted(total.errors_by_class.items())),
            "in_doubt": total.num_in_doubt,
            "no_op": {
                "total": total.num_no_ops,
                "by_op": dict(sorted((+total.no_ops_by_name).items())),
            },
            "row_changes": _row_changes(total),
            "stop_reason": self.stop_reason,
            "aborted": self.is_aborted,
            "run_id": self.run_id,
            "recovered_ops": 0 if self.settled is None else self.settled.num_recovered_ops,
            "owns_existing_rows": self.owns_existing_rows,
            "latency_ms": {
                "p50": _ms(lat.percentile(50)),
                "p95": _ms(lat.percentile(95)),
                "p99": _ms(lat.percentile(99)),
                "max": _ms(lat.max),
            },
            "schedule_lag_ms": {
                "p50": _ms(lag.percentile(50)),
                "p99": _ms(lag.percentile(99)),
                "max": _ms(lag.max),
            },
            # only when scenarios are mixed in, so a default run's JSON keeps its exact keys
            **(
                {"profile": self.profile, "scenario_steps": self._scenario_steps()}
                if self.has_scenarios
                else {}
            ),
        }

    def _scenario_steps(self) -> dict[str, Any]:
        total = self.total
        hist = total.scenario_latency_ns
        return {
            "steps": sum(c for n, c in total.ops_by_name.items() if is_scenario_op(n)),
            "row_changes": total.num_scenario_changes,
            "latency_ms": {
                "p50": _ms(hist.percentile(50)),
                "p99": _ms(hist.percentile(99)),
                "max": _ms(hist.max),
            },
        }


def _row_changes(stats: IntervalStats) -> dict[str, dict[str, int]]:
    """Rows the server changed, per table: {table: {insert, update, delete}} (hospital tables)."""
    names = {"c": "insert", "u": "update", "d": "delete"}
    out: dict[str, dict[str, int]] = {}
    for (table, op), count in sorted(stats.rows_by_table.items()):
        if op in names and count:
            out.setdefault(table, dict.fromkeys(names.values(), 0))[names[op]] += count
    return out


def _ms(value_ns: int | float) -> float:
    return round(value_ns / NS_PER_MS, 3)


def check_summary_json_path(path: str | Path) -> None:
    """Fail before the run when ``--summary-json`` could not be written at its end.

    Raises:
        ConfigError: the path is a directory, or its directory is missing or not writable
            (exit 2).
    """
    target = Path(path)
    directory = target.parent
    if target.is_dir():
        raise ConfigError(f"--summary-json {str(path)!r}: is a directory; give a file path")
    if not directory.is_dir():
        raise ConfigError(f"--summary-json {str(path)!r}: directory {directory} does not exist")
    if not os.access(directory, os.W_OK | os.X_OK) or (
        target.exists() and not os.access(target, os.W_OK)
    ):
        raise ConfigError(f"--summary-json {str(path)!r}: not writable")


def write_summary_json(path: str | Path, summary: RunSummary) -> None:
    """Write ``summary.to_json()`` to ``path`` (pretty-printed, trailing newline)."""
    Path(path).write_bytes(orjson.dumps(summary.to_json(), option=orjson.OPT_INDENT_2) + b"\n")


class Reporter(Protocol):
    """Where the coordinator sends progress; called from the coordinator's main thread only."""

    def start(self) -> None: ...

    def progress(self, tick: Progress) -> None: ...

    def stop(self) -> None: ...


class NullReporter:
    """``--no-progress``: nothing during the run."""

    def start(self) -> None:
        pass

    def progress(self, tick: Progress) -> None:
        pass

    def stop(self) -> None:
        pass


def kind_of(op_name: str) -> str:
    """The by_kind bucket of an operation: its registry kind, or "scenario" for a step."""
    return SCENARIO_KIND if is_scenario_op(op_name) else BY_NAME[op_name].kind


def _kind_counts(stats: IntervalStats) -> dict[str, int]:
    counts = dict.fromkeys((*KINDS, SCENARIO_KIND), 0)
    for name, count in stats.ops_by_name.items():
        counts[kind_of(name)] += count
    return counts


def _kind_rates(stats: IntervalStats, seconds: float) -> dict[str, float]:
    counts = _kind_counts(stats)
    return {kind: count / seconds if seconds > 0 else 0.0 for kind, count in counts.items()}


def _has_steps(stats: IntervalStats) -> bool:
    return any(is_scenario_op(n) for n in stats.ops_by_name)


def _lat(hist: LatencyHistogram, q: float) -> str:
    return f"{hist.percentile(q) / NS_PER_MS:.3f}" if hist.count else "-"


def progress_line(tick: Progress) -> str:
    """One pgbench-like line, e.g. ``progress: 10.0 s, 1180.2 ops/s (ins 826.1 ...) ...``."""
    iv = tick.interval
    seconds = tick.interval_s
    ops_per_s = iv.num_ops / seconds if seconds > 0 else 0.0
    kinds = _kind_rates(iv, seconds)
    parts = [
        f"progress: {tick.elapsed_s:.1f} s",
        f"{ops_per_s:.1f} ops/s (ins {kinds['insert']:.1f} upd {kinds['update']:.1f} "
        f"del {kinds['delete']:.1f}"
        + (f" scn {kinds[SCENARIO_KIND]:.1f})" if _has_steps(tick.total) else ")"),
        f"lat p50 {_lat(iv.latency_ns, 50)} p95 {_lat(iv.latency_ns, 95)} "
        f"p99 {_lat(iv.latency_ns, 99)} ms",
        f"lag p99 {_lat(iv.lag_ns, 99)} ms",
        f"{tick.total.num_errors} errors",
        f"{tick.total.num_reconnects} reconnects",
    ]
    if tick.total.num_in_doubt:
        parts.append(f"{tick.total.num_in_doubt} in doubt")
    if tick.num_reconnecting:
        parts.append(f"{tick.num_reconnecting} reconnecting")
    parts.append(f"total {tick.total.num_ops}" + (f"/{tick.max_ops}" if tick.max_ops else ""))
    if tick.remaining_s is not None:
        parts.append(f"{tick.remaining_s:.0f} s left")
    return ", ".join(parts)


class PlainReporter:
    """No terminal: one progress line per interval (pgbench's ``--progress``)."""

    def __init__(self, file: IO[str] | None = None) -> None:
        self.file = file or sys.stderr

    def start(self) -> None:
        pass

    def progress(self, tick: Progress) -> None:
        print(progress_line(tick), file=self.file, flush=True)

    def stop(self) -> None:
        pass


class RichReporter:
    """A terminal: a live table redrawn every tick on stderr."""

    def __init__(self, console: Console | None = None) -> None:
        self.console = console or Console(stderr=True)
        self.live = Live(console=self.console, auto_refresh=False, transient=False)

    def start(self) -> None:
        self.live.start()

    def progress(self, tick: Progress) -> None:
        self.live.update(_progress_table(tick), refresh=True)

    def stop(self) -> None:
        self.live.stop()


def _progress_table(tick: Progress) -> Table:
    iv, total = tick.interval, tick.total
    seconds = tick.interval_s
    kinds = _kind_rates(iv, seconds)
    table = Table(title="loadgen stream", show_header=True, header_style="bold")
    table.add_column("")
    table.add_column("last interval", justify="right")
    table.add_column("whole run", justify="right")
    elapsed = f"{tick.elapsed_s:.1f} s"
    if tick.remaining_s is not None:
        elapsed += f" ({tick.remaining_s:.0f} s left)"
    done = f"{total.num_ops}" + (f" of {tick.max_ops}" if tick.max_ops else "")
    table.add_row("elapsed", "", elapsed)
    table.add_row(
        "ops/s",
        f"{iv.num_ops / seconds if seconds > 0 else 0:.1f}",
        f"{total.num_ops / tick.elapsed_s if tick.elapsed_s > 0 else 0:.1f}",
    )
    for kind in (*KINDS, SCENARIO_KIND) if _has_steps(total) else KINDS:
        table.add_row(f"  {kind}/s", f"{kinds[kind]:.1f}", "")
    table.add_row("ops committed", str(iv.num_ops), done)
    table.add_row("target rate", "", format_rate(tick.target_rate_per_s))
    for q in (50, 95, 99):
        table.add_row(f"latency p{q} ms", _lat(iv.latency_ns, q), _lat(total.latency_ns, q))
    table.add_row("lag p99 ms", _lat(iv.lag_ns, 99), _lat(total.lag_ns, 99))
    errors = ", ".join(f"{k}: {v}" for k, v in sorted(total.errors_by_class.items())) or "0"
    table.add_row("errors", str(iv.num_errors), errors)
    table.add_row(
        "reconnects",
        str(iv.num_reconnects),
        f"{total.num_reconnects}"
        + (f" ({tick.num_reconnecting} now)" if tick.num_reconnecting else ""),
    )
    table.add_row("in doubt", str(iv.num_in_doubt), str(total.num_in_doubt))
    return table


def choose_reporter(progress: bool | None, file: IO[str] | None = None) -> Reporter:
    """Rich on a terminal, plain lines otherwise, nothing with ``progress=False``.

    ``progress=True`` forces output (rich on a TTY, else plain); ``None`` is the default.
    """
    out = file or sys.stderr
    if progress is False:
        return NullReporter()
    if out.isatty():
        return RichReporter(Console(file=out))
    return PlainReporter(out)


def print_summary(summary: RunSummary, file: IO[str] | None = None) -> None:
    """Print the final summary table (plain text when ``file`` is not a terminal)."""
    data = summary.to_json()
    console = Console(file=file or sys.stdout, highlight=False)
    table = Table(title=f"loadgen stream summary ({summary.title})", show_header=False)
    table.add_column("", style="bold")
    table.add_column("", justify="right")
    table.add_row("operations committed", str(data["total_ops"]))
    table.add_row("transactions committed", str(data["committed_txns"]))
    table.add_row("elapsed", f"{data['elapsed_s']:.2f} s")
    table.add_row("ops/s", f"{data['ops_per_s']:.2f}")
    table.add_row("target rate", format_rate(summary.target_rate_per_s))
    table.add_row("workers", str(data["workers"]))
    table.add_row("seed", str(summary.seed))
    table.add_row("stop reason", summary.stop_reason + (" (aborted)" if summary.is_aborted else ""))
    if summary.run_id:
        table.add_row("run id", summary.run_id)
    if summary.ledger:
        table.add_row("ledger", summary.ledger)
    if summary.owns_existing_rows is False:
        table.add_row("rows owned", "only its own inserts (another run was live at the start)")
    for kind, count in data["by_kind"].items():
        table.add_row(f"  {kind}", str(count))
    for name, count in data["by_op"].items():
        table.add_row(f"    {name}", str(count))
    lat, lag = data["latency_ms"], data["schedule_lag_ms"]
    if "scenario_steps" in data:
        steps = data["scenario_steps"]
        slat = steps["latency_ms"]
        table.add_row("profile", summary.profile)
        table.add_row("scenario row changes", str(steps["row_changes"]))
        table.add_row(
            "scenario step ms p50/p99/max",
            f"{slat['p50']:.3f} / {slat['p99']:.3f} / {slat['max']:.3f}",
        )
    table.add_row(
        "latency ms p50/p95/p99/max",
        f"{lat['p50']:.3f} / {lat['p95']:.3f} / {lat['p99']:.3f} / {lat['max']:.3f}",
    )
    table.add_row(
        "schedule lag ms p50/p99/max", f"{lag['p50']:.3f} / {lag['p99']:.3f} / {lag['max']:.3f}"
    )
    errors = ", ".join(f"{k}: {v}" for k, v in data["errors"].items()) or "none"
    table.add_row("errors by SQLSTATE class", errors)
    table.add_row("retried (serialization/deadlock)", str(summary.total.num_retried))
    table.add_row("reconnects", str(summary.total.num_reconnects))
    table.add_row("in doubt", str(data["in_doubt"]))
    no_op = data["no_op"]
    table.add_row(
        "no-ops (0 rows changed)",
        str(no_op["total"])
        + (
            " (" + ", ".join(f"{k}: {v}" for k, v in no_op["by_op"].items()) + ")"
            if no_op["total"]
            else ""
        ),
    )
    if data["recovered_ops"]:
        table.add_row("recovered from dead workers' tallies", str(data["recovered_ops"]))
    if summary.total.num_skipped:
        table.add_row("slots skipped (no candidate rows)", str(summary.total.num_skipped))
    if summary.total.num_dropped:
        table.add_row("token-bucket slots dropped", str(summary.total.num_dropped))
    console.print(table)
