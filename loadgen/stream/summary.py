"""The summary of a stream run: its figures (``RunSummary``), its JSON, and the error that
carries a partial summary out of an aborted run (``StreamAbortedError``).

Built by the coordinator in the CLI's process; no terminal logic (``loadgen.stream.report``
prints it). Times are converted from ns to ms or s only here and in the report.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import orjson

from loadgen.errors import RunAbortedError
from loadgen.ops.registry import BY_NAME, KINDS
from loadgen.outpaths import prepare_output_file
from loadgen.shards import WHOLE, Shard
from loadgen.stream.clock import NS_PER_MS
from loadgen.stream.profiles import SCENARIO_KIND, is_scenario_op
from loadgen.stream.settle import Settled
from loadgen.stream.stats import IntervalStats

# why a run ended (RunSummary.stop_reason, the JSON's "stop_reason")
STOP_REASONS = (
    "duration",
    "max_ops",
    "signal",
    "worker_failed",
    "ledger_write_failed",
    "no_progress",
    "start_failed",
)
# The summary JSON's version ("format_version"): 2 adds the exact histograms ("histograms")
# and the shard ("shard"), so `loadgen summary merge` can add shards' summaries up exactly.
SUMMARY_FORMAT_VERSION = 2


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
    settled: Settled | None = None  # operations recovered from dead workers' tallies
    owns_existing_rows: bool | None = None  # the rows present at the start were this run's
    phases: list[dict[str, Any]] | None = None  # --phases: per-phase figures (timeseries.figures)
    shard: Shard = WHOLE  # this run is shard I of N (loadgen.shards)
    run_seed: int | None = None  # a shard's whole-run --seed (``seed`` is the shard's own)
    markers: dict[str, int] | None = None  # --markers: {"written", "failed"} logical messages

    @property
    def title(self) -> str:
        """The summary table's title word (``stopped`` for a signal)."""
        if self.is_aborted:
            return "aborted"
        return {"signal": "stopped", "max_ops": "max-ops"}.get(self.stop_reason, self.stop_reason)

    def by_kind(self) -> dict[str, int]:
        kinds = kind_counts(self.total)
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
            "row_changes": row_changes(total),
            "stop_reason": self.stop_reason,
            "aborted": self.is_aborted,
            "run_id": self.run_id,
            "recovered_ops": 0 if self.settled is None else self.settled.num_recovered_ops,
            "owns_existing_rows": self.owns_existing_rows,
            "format_version": SUMMARY_FORMAT_VERSION,
            "shard": {
                "index": self.shard.index,
                "count": self.shard.count,
                "seed": self.seed,
                "run_seed": self.seed if self.run_seed is None else self.run_seed,
            },
            "histograms": {
                "latency_ns": lat.to_json(),
                "schedule_lag_ns": lag.to_json(),
                "scenario_latency_ns": total.scenario_latency_ns.to_json(),
            },
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
            **({"phases": self.phases} if self.phases is not None else {}),
            **({"markers": self.markers} if self.markers is not None else {}),
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


def row_changes(stats: IntervalStats) -> dict[str, dict[str, int]]:
    """Rows the server changed, per table: {table: {insert, update, delete}} (hospital tables)."""
    names = {"c": "insert", "u": "update", "d": "delete"}
    out: dict[str, dict[str, int]] = {}
    for (table, op), count in sorted(stats.rows_by_table.items()):
        if op in names and count:
            out.setdefault(table, dict.fromkeys(names.values(), 0))[names[op]] += count
    return out


def kind_of(op_name: str) -> str:
    """The by_kind bucket of an operation: its registry kind, or "scenario" for a step."""
    return SCENARIO_KIND if is_scenario_op(op_name) else BY_NAME[op_name].kind


def kind_counts(stats: IntervalStats) -> dict[str, int]:
    counts = dict.fromkeys((*KINDS, SCENARIO_KIND), 0)
    for name, count in stats.ops_by_name.items():
        counts[kind_of(name)] += count
    return counts


def _ms(value_ns: int | float) -> float:
    return round(value_ns / NS_PER_MS, 3)


def check_summary_json_path(path: str | Path) -> None:
    """Fail before the run when ``--summary-json`` could not be written at its end; create its
    missing parent directories (``loadgen.outpaths.prepare_output_file``).

    Raises:
        ConfigError: the path is a directory, a parent is a file, or no file can be created
            there (exit 2).
    """
    prepare_output_file("--summary-json", path)


def write_summary_json(path: str | Path, summary: RunSummary) -> None:
    """Write ``summary.to_json()`` to ``path`` (pretty-printed, trailing newline)."""
    Path(path).write_bytes(orjson.dumps(summary.to_json(), option=orjson.OPT_INDENT_2) + b"\n")


class StreamAbortedError(RunAbortedError):
    """A stream run was aborted (exit 4); ``summary`` is its partial summary, counting
    everything its workers committed."""

    def __init__(self, message: str, summary: RunSummary) -> None:
        super().__init__(message)
        self.summary = summary

    def __reduce__(self) -> tuple[Any, ...]:
        return (type(self), (str(self), self.summary))
