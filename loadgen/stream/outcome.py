"""How a stream run ended: its stop reason and its ``RunSummary``, from its spec and outcome.

Pure functions of what the coordinator knows once every worker is gone (``Coordinator.run``);
no I/O. Coordinator's process.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from loadgen.stream.aborts import Abort
from loadgen.stream.summary import RunSummary

if TYPE_CHECKING:
    from loadgen.stream.ownership import Claim
    from loadgen.stream.run_spec import RunSpec
    from loadgen.stream.settle import Settled
    from loadgen.stream.stats import IntervalStats


def stop_reason(abort: Abort | None, is_signalled: bool, done_reason: str | None) -> str:
    """duration, max_ops, signal, worker_failed, ledger_write_failed, no_progress,
    start_failed (``loadgen.stream.summary.STOP_REASONS``).

    ``abort``: the run's first abort (its reason wins); ``is_signalled``: SIGINT/SIGTERM
    arrived; ``done_reason``: the workers' WorkerDone reason, or "stopped" (coordinator).
    """
    if abort is not None:
        return abort.stop_reason
    if is_signalled:
        return "signal"
    if done_reason in ("max_ops", "duration"):
        return done_reason
    # "stopped" without a signal: the coordinator's backstop after --duration stopped them
    return "duration"


def summary_of(
    spec: RunSpec,
    run_id: str,
    *,
    total: IntervalStats,
    elapsed_s: float,
    reason: str,
    is_aborted: bool,
    settled: Settled | None,
    claim: Claim | None,
    phases: list[dict[str, Any]] | None,
    markers: tuple[int, int],
) -> RunSummary:
    """The run's summary: ``total`` committed work over ``elapsed_s`` seconds (start time to
    the workers' own end), ``reason`` from ``stop_reason``, the settlement and the claim (None
    when the run never made one), ``phases`` figures, ``markers`` (written, failed)."""
    return RunSummary(
        total=total,
        elapsed_s=elapsed_s,
        num_workers=spec.num_workers,
        target_rate_per_s=spec.target_rate_per_s,
        seed=spec.seed,
        stop_reason=reason,
        profile=spec.profile,
        has_scenarios=bool(spec.scenarios),
        ledger=spec.ledger,
        is_aborted=is_aborted,
        run_id=run_id,
        settled=settled,
        owns_existing_rows=None if claim is None else claim.is_primary,
        phases=phases,
        shard=spec.shard,
        run_seed=spec.run_seed,
        markers=None if spec.markers_s is None else {"written": markers[0], "failed": markers[1]},
    )
