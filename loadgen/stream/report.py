"""Progress and summary output for ``loadgen stream``: rich live view, plain lines, tables.

Knows about terminals and formats; has no stats logic of its own (numbers come from
``IntervalStats`` and ``loadgen.stream.summary``). Progress goes to stderr, the final summary to
stdout. Coordinator's process, main thread.
"""

from __future__ import annotations

import sys
from dataclasses import dataclass
from typing import IO, TYPE_CHECKING, Protocol

from loadgen.ops.registry import KINDS
from loadgen.stream.clock import NS_PER_MS
from loadgen.stream.profiles import SCENARIO_KIND, is_scenario_op
from loadgen.stream.rates import format_rate
from loadgen.stream.stats import IntervalStats, LatencyHistogram
from loadgen.stream.summary import (  # noqa: F401 - re-exported: the CLI prints and writes them
    RunSummary,
    StreamAbortedError,
    check_summary_json_path,
    kind_counts,
    write_summary_json,
)

if TYPE_CHECKING:
    from rich.console import Console
    from rich.table import Table


def warm() -> None:
    """Import what the live view and the summary table need (rich, ~0.1 s of CPU), so that
    the coordinator pays for it while its workers start, not before it spawns them nor after
    the run (``Coordinator._start_all``)."""
    import rich.console
    import rich.live
    import rich.table  # noqa: F401


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


def _kind_rates(stats: IntervalStats, seconds: float) -> dict[str, float]:
    counts = kind_counts(stats)
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
        from rich.console import Console
        from rich.live import Live

        self.console = console or Console(stderr=True)
        self.live = Live(console=self.console, auto_refresh=False, transient=False)

    def start(self) -> None:
        self.live.start()

    def progress(self, tick: Progress) -> None:
        self.live.update(_progress_table(tick), refresh=True)

    def stop(self) -> None:
        self.live.stop()


def _progress_table(tick: Progress) -> Table:
    from rich.table import Table

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
        from rich.console import Console

        return RichReporter(Console(file=out))
    return PlainReporter(out)


def print_summary(summary: RunSummary, file: IO[str] | None = None) -> None:
    """Print the final summary table (plain text when ``file`` is not a terminal)."""
    from rich.console import Console
    from rich.table import Table

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
