"""The report's charts, drawn with matplotlib (Agg): SVG text for the HTML, one PNG for --png.

Each chart is a function ``draw(ax, run)``; a chart figure has one column of axes per run
(side by side, shared y axis), so two runs compare at a glance. Pure apart from matplotlib.
"""

from __future__ import annotations

import io
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from loadgen.report.runs import Run

KINDS = ("insert", "update", "delete", "scenario")


@dataclass(frozen=True)
class Chart:
    key: str  # the HTML element id is "chart-<key>"
    title: str
    ylabel: str
    draw: Callable[[Any, Run], None]
    log_y: bool = False


def _throughput(ax: Any, run: Run) -> None:
    t = run.times()
    for kind in KINDS:
        counts = run.series("by_kind", kind)
        if any(counts) or kind != "scenario":
            durations = run.series("duration_s")
            ax.plot(t, [c / d if d > 0 else 0 for c, d in zip(counts, durations, strict=True)],
                    label=kind, drawstyle="steps-pre")  # fmt: skip
    ax.plot(t, run.series("ops_per_s"), label="total", color="black", drawstyle="steps-pre")
    target = [r.get("target_rate_per_s") for r in run.intervals]
    if any(v is not None for v in target):
        ax.plot(t, [float(v) if v is not None else float("nan") for v in target],
                label="target", color="grey", linestyle="--", drawstyle="steps-pre")  # fmt: skip


def _latency(ax: Any, run: Run) -> None:
    t = run.times()
    for q in ("p50", "p95", "p99", "max"):
        ax.plot(t, [v or float("nan") for v in run.series("latency_ms", q)], label=q)


def _lag(ax: Any, run: Run) -> None:
    t = run.times()
    for q in ("p50", "p99"):
        ax.plot(t, [v or float("nan") for v in run.series("schedule_lag_ms", q)], label=q)


def _errors(ax: Any, run: Run) -> None:
    t = run.times()
    classes = sorted({c for r in run.intervals for c in r.get("errors", {})})
    for cls in classes:
        ax.plot(t, run.series("errors", cls), label=f"SQLSTATE {cls}", drawstyle="steps-pre")
    ax.plot(t, run.series("reconnects"), label="reconnects", linestyle=":", drawstyle="steps-pre")
    ax.plot(t, run.series("failed_ops"), label="failed ops", linestyle="--", drawstyle="steps-pre")


def _watch_time(r: dict[str, Any]) -> float:
    for key in ("t1_s", "t_s", "elapsed_s", "t0_s"):
        if isinstance(r.get(key), int | float):
            return float(r[key])
    return 0.0


def _cdc_lag(ax: Any, run: Run) -> None:
    if not run.watch:
        ax.text(0.5, 0.5, "no cdc watch records", ha="center", va="center",
                transform=ax.transAxes)  # fmt: skip
        return
    t = [_watch_time(r) for r in run.watch]
    if any(isinstance((r.get("lag_ms") or {}).get("all"), dict) for r in run.watch):
        for q in ("p50", "p95", "p99", "max"):  # cdc watch --json: lag_ms.all
            ax.plot(t, [float(((r.get("lag_ms") or {}).get("all") or {}).get(q) or float("nan"))
                        for r in run.watch], label=f"lag {q}")  # fmt: skip
        return
    lag_keys = sorted(
        {
            k
            for r in run.watch
            for k, v in (r.get("lag_ms") or {}).items()
            if isinstance(v, int | float)
        }
    )
    for k in lag_keys:
        ax.plot(t, [float((r.get("lag_ms") or {}).get(k) or float("nan")) for r in run.watch],
                label=f"lag {k}")  # fmt: skip
    if not lag_keys:  # flat figures such as lag_p99_ms
        flat = sorted({k for r in run.watch for k, v in r.items() if "lag" in k
                       and isinstance(v, int | float)})  # fmt: skip
        for k in flat:
            ax.plot(t, [float(r.get(k) or float("nan")) for r in run.watch], label=k)


CHARTS = (
    Chart("throughput", "Throughput by kind", "ops/s", _throughput),
    Chart("latency", "Latency (commit end - slot)", "ms", _latency, log_y=True),
    Chart("lag", "Schedule lag (transaction start - slot)", "ms", _lag, log_y=True),
    Chart("errors", "Errors, reconnects, failed operations per interval", "count", _errors),
    Chart("cdc-lag", "CDC lag (cdc watch)", "ms", _cdc_lag, log_y=True),
)


def charts_for(runs: Sequence[Run]) -> list[Chart]:
    """The charts to draw: CDC lag only when some run has ``cdc watch`` records."""
    has_watch = any(r.watch for r in runs)
    return [c for c in CHARTS if c.key != "cdc-lag" or has_watch]


def _figure(rows: int, cols: int) -> tuple[Any, Any]:
    import matplotlib

    matplotlib.use("Agg")
    from matplotlib.figure import Figure

    fig = Figure(figsize=(5.5 * cols, 3.2 * rows), layout="constrained")
    axes = fig.subplots(rows, cols, squeeze=False, sharey="row")
    return fig, axes


def _draw(ax: Any, chart: Chart, run: Run, *, first: bool) -> None:
    chart.draw(ax, run)
    ax.set_title(f"{chart.title}\n{run.label}", fontsize=9)
    ax.set_xlabel("s since start", fontsize=8)
    if first:
        ax.set_ylabel(chart.ylabel, fontsize=8)
    if chart.log_y and any(line.get_ydata().size for line in ax.get_lines()):
        ax.set_yscale("log")
    ax.grid(True, alpha=0.3)
    if ax.get_lines():
        ax.legend(fontsize=7, loc="upper left")


def chart_svg(chart: Chart, runs: Sequence[Run]) -> str:
    """One chart, one column per run, as an ``<svg>`` element (no XML prolog)."""
    fig, axes = _figure(1, len(runs))
    for i, run in enumerate(runs):
        _draw(axes[0][i], chart, run, first=i == 0)
    buf = io.StringIO()
    fig.savefig(buf, format="svg")
    text = buf.getvalue()
    return text[text.index("<svg") :]


def write_png(path: str, runs: Sequence[Run]) -> None:
    """Every chart (rows) for every run (columns) in one PNG."""
    charts = charts_for(runs)
    fig, axes = _figure(len(charts), len(runs))
    for row, chart in enumerate(charts):
        for i, run in enumerate(runs):
            _draw(axes[row][i], chart, run, first=i == 0)
    fig.savefig(path, format="png", dpi=100)
