"""Why a stream run was aborted, from what went wrong (``Abort``, ``abort_for``).

A worker's exception crosses its pipe whole (``loadgen.stream.messages.WorkerFailed``), so it is
matched here by class: each maps to one line for people, the summary's ``stop_reason`` and the
exit code (a database problem before the start keeps its own, 3; everything else is 4).
Coordinator's process; pure.
"""

from __future__ import annotations

from dataclasses import dataclass

from loadgen.errors import DatabaseUnavailableError, NoProgressError, SchemaMissingError
from loadgen.ledger import LedgerWriteError
from loadgen.stream.messages import one_line


@dataclass(frozen=True)
class Abort:
    """Why a run was aborted: one line for people, the summary's stop_reason, the error."""

    reason: str
    stop_reason: str
    error: BaseException | None = None
    is_database_problem: bool = False  # re-raise ``error`` itself (exit 3), not exit 4


def abort_for(worker_id: int, error: BaseException, *, is_started: bool) -> Abort:
    """The abort a worker's error means (matched by class: the error crossed its pipe)."""
    if isinstance(error, LedgerWriteError):  # names the ledger part, says what held
        return Abort(f"worker {worker_id}: {error}", "ledger_write_failed", error)
    if isinstance(error, NoProgressError):
        return Abort(f"worker {worker_id}: {error}", "no_progress", error)
    if isinstance(error, SchemaMissingError) or (
        isinstance(error, DatabaseUnavailableError) and not is_started
    ):
        return Abort(str(error), "start_failed", error, is_database_problem=True)
    return Abort(
        f"worker {worker_id} failed: {type(error).__name__}: {one_line(error)}",
        "worker_failed",
        error,
    )
