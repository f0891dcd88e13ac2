"""End of a run: make the summary equal what the workers committed, whatever killed them.

Runs in the coordinator, after every worker process has exited (stopped, failed, killed). For
each worker it reads the shared tally (``loadgen.stream.tally``):

- a transaction still *pending* there (the worker died between its intent and knowing the
  outcome) is resolved from the server with ``pg_xact_status``; its outcome is appended to the
  worker's ledger part (``by: coordinator``) and, if committed, its counts join the total;
- what the tally holds beyond the deltas the worker managed to send (its last report lost with
  it) is added to the run's totals, so the summary includes every committed operation.

Latency and lag of those operations are lost with the worker; the summary says how many
operations were recovered this way.

Then ``record_end`` writes the run's end into the ledger (``loadgen.ledger.run_end``): the
server's WAL insert position once every worker is gone, so ``cdc verify`` can tell a later
run's changes from this run's window.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Protocol

import numpy as np
import psycopg

from loadgen.ledger import LedgerWriteError, append_outcomes, part_path, records
from loadgen.ledger.resolve import xact_status
from loadgen.ledger.run_end import record_run_end
from loadgen.ops.registry import OP_NAMES
from loadgen.stream.ownership import RunOwnership
from loadgen.stream.profiles import scenario_op_name
from loadgen.stream.stats import IntervalStats
from loadgen.stream.tally import CommitTally, TallyLayout

logger = logging.getLogger(__name__)

RESOLVE_WAIT_S = 5.0  # how long a dead worker's transaction may stay "in progress"


class _Worker(Protocol):
    received: IntervalStats
    tally: CommitTally | None


class _Process(Protocol):
    def is_alive(self) -> bool: ...


class _Started(Protocol):
    @property
    def is_started(self) -> bool: ...

    @property
    def process(self) -> _Process: ...


@dataclass(frozen=True)
class Settled:
    """What settling found (shown in the summary)."""

    num_recovered_ops: int = 0  # committed operations whose report was lost, from the tallies
    num_recovered_txns: int = 0
    num_resolved: int = 0  # pending transactions resolved from the server
    num_unresolved: int = 0  # pending transactions the server could not settle in time


def layout_for(scenarios: Sequence[str]) -> TallyLayout:
    """The tally layout of a run: every hospital operation, then its scenario steps."""
    return TallyLayout(OP_NAMES + tuple(scenario_op_name(s) for s in scenarios))


def _resolve(conn: psycopg.Connection[Any] | None, txids: list[int]) -> dict[int, str | None]:
    if not txids or conn is None:
        return {}
    deadline = time.monotonic() + RESOLVE_WAIT_S
    while True:
        try:
            status = xact_status(conn, txids)
        except psycopg.Error as exc:
            logger.warning("cannot resolve transactions %s: %s", txids, exc)
            return {}
        waiting = [t for t in txids if status.get(t) == "in progress"]
        if not waiting or time.monotonic() > deadline:
            return status
        time.sleep(0.05)  # the dead client's backend is still finishing (or aborting) it


def settle(
    workers: Mapping[int, _Worker],
    total: IntervalStats,
    layout: TallyLayout | None,
    ownership: RunOwnership | None,
    ledger: str | None,
    run_id: str,
) -> Settled:
    """Reconcile ``total`` (in place) with every worker's tally; resolve pending intents.

    Blocks up to ``RESOLVE_WAIT_S`` on the server for transactions still in progress. Never
    raises for a server or ledger problem (logged; the pending transaction stays in doubt and
    ``cdc verify`` resolves its intent itself).
    """
    if layout is None:
        return Settled()
    conn = ownership.conn if ownership is not None else None
    reads = {wid: w.tally.read() for wid, w in workers.items() if w.tally is not None}
    pending = {wid: p for wid, (_, p) in reads.items() if p is not None}
    status = _resolve(conn, [txid for txid, _ in pending.values()])
    num_resolved = num_unresolved = 0
    recovered = np.zeros(layout.size, np.int64)
    for wid, (committed, _) in reads.items():
        if wid in pending:
            txid, counts = pending[wid]
            fate = status.get(txid)
            if fate == records.COMMITTED:
                committed = committed + counts
            if fate in (records.COMMITTED, records.ABORTED):
                num_resolved += 1
                _append_outcome(ledger, wid, run_id, txid, fate)
            else:
                num_unresolved += 1
                total.num_in_doubt += int(counts[2 : 2 + 2 * len(layout.op_names)].sum())
        missing = committed - layout.of_stats(workers[wid].received)
        if (missing < 0).any():
            logger.warning("worker %d reported more than its tally: %s", wid, missing)
        recovered += np.maximum(missing, 0)
    extra = IntervalStats()
    layout.add_to(extra, recovered)
    total.merge(extra)
    if extra.num_ops or extra.num_no_ops:
        logger.warning(
            "%d committed operations of workers whose last report was lost counted from"
            " their tallies",
            extra.num_ops + extra.num_no_ops,
        )
    return Settled(extra.num_ops + extra.num_no_ops, extra.num_txns, num_resolved, num_unresolved)


def _append_outcome(ledger: str | None, wid: int, run_id: str, txid: int, fate: str) -> None:
    if not ledger:
        return
    part = part_path(ledger, wid, run_id)
    status: records.Status = records.COMMITTED if fate == records.COMMITTED else records.ABORTED
    try:
        append_outcomes(part, [records.outcome_record(txid, status, "coordinator", wid)])
    except (LedgerWriteError, FileNotFoundError) as exc:
        logger.warning("%s (cdc verify resolves it from the server)", exc)


def record_end(
    workers: Mapping[int, _Started], ownership: RunOwnership | None, ledger: str | None, run_id: str
) -> bool:
    """Write the run's end into the ledger (after ``settle``), only when it can be trusted:
    a ledger, a database connection, some worker started and none of them alive any more (a
    worker that survived SIGKILL could still change rows). Never raises; False: not written."""
    started = [w for w in workers.values() if w.is_started]
    if not ledger or ownership is None or not started:
        return False
    alive = [wid for wid, w in workers.items() if w.is_started and w.process.is_alive()]
    if alive:
        logger.warning("ledger: run end not recorded: worker %s still alive", alive)
        return False
    return record_run_end(ownership.conn, ledger, run_id)
