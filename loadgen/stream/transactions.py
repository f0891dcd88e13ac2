"""A worker's transactions: hospital batches, run in interruptible chunks, and scenario steps.

A batch is one transaction of up to ``batch_size`` operations: every slot already due when it
starts. Its operations are drawn and executed ``CHUNK_OPS`` at a time, so a stop, the
coordinator's death or the end of ``--duration`` is noticed between chunks: the batch then stops
growing and commits what it executed (a batch is "up to" ``batch_size``; no executed operation
is lost, none is counted twice), and a huge ``--batch-size`` cannot outlive the run.

Every transaction follows the ledger's contract through the worker's ``Journal``: its intent
(changes, durably; the tally's pending counts) just before COMMIT, its outcome after. A COMMIT
that fails is never assumed aborted: the server says what became of it (``pg_xact_status``),
since a stop-time cancel or a lost connection can race the COMMIT itself. Runs in the worker's
loop thread; ``phase`` is read by its watchdog (which cancels only ``STATEMENTS``).
"""

from __future__ import annotations

import enum
import logging
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import psycopg

from loadgen import retry
from loadgen.ledger import LedgerWriteError
from loadgen.ledger.changes import RowChange
from loadgen.stream.clock import SystemClock
from loadgen.stream.journal import Journal, StepLog
from loadgen.stream.profiles import ScenarioSchedule, scenario_op_name
from loadgen.stream.recovery import Session, StopRequested
from loadgen.stream.stats import IntervalStats
from loadgen.stream.worker_spec import WorkerSpec

logger = logging.getLogger(__name__)

CHUNK_OPS = 1_000  # operations per execute call inside one transaction (stop checks between)
QUERY_CANCELED = "57014"


class Phase(enum.Enum):
    IDLE = "idle"  # no statement of ours on the server (between transactions, writing an intent)
    STATEMENTS = "statements"  # the transaction's statements: a stop may cancel them
    COMMIT = "commit"  # COMMIT in flight: never cancelled


class Fate(enum.Enum):
    """What became of a COMMIT."""

    COMMITTED = "committed"  # COMMIT returned
    COMMITTED_BY_SERVER = "committed_by_server"  # it failed, but the server says committed
    REFUSED = "refused"  # the server refused it (rolled back): a failed attempt
    LOST = "lost"  # the connection died in it and it did not commit: run it again
    UNKNOWN = "unknown"  # the server cannot say: in doubt (its intent is resolved later)


@dataclass(frozen=True)
class BatchResult:
    num_slots: int  # schedule slots the batch took (run, skipped or failed)
    num_committed: int  # operations committed (0 when the batch was dropped)


class Transactions:
    """Runs one worker's transactions on its ``Session``, recorded by its ``Journal``.

    ``stats`` returns the current interval's stats; ``should_cut`` says the run is stopping or
    past its end (a batch stops growing); ``is_stopping`` says the run is stopping (abandon);
    ``between_chunks`` lets the worker report during a long batch.
    """

    def __init__(
        self,
        spec: WorkerSpec,
        session: Session,
        journal: Journal,
        clock: SystemClock,
        stats: Callable[[], IntervalStats],
        *,
        should_cut: Callable[[], bool],
        is_stopping: Callable[[], bool],
        between_chunks: Callable[[], None],
    ) -> None:
        self.spec = spec
        self.session = session
        self.journal = journal
        self.clock = clock
        self._stats = stats
        self._should_cut = should_cut
        self._is_stopping = is_stopping
        self._between_chunks = between_chunks
        self.phase = Phase.IDLE

    def _draw(self, workload: Any, slots: list[int]) -> list[str]:
        """Names for ``slots``; slots without a candidate row are counted skipped and cut."""
        names: list[str] = workload.choose(len(slots))
        if len(names) < len(slots):  # a mix of updates/deletes alone whose candidates ran out
            self._stats().num_skipped += len(slots) - len(names)
            del slots[len(names) :]
        return names

    def run_batch(
        self, workload: Any, first_slot_ns: int, limit: int, take_due: Callable[[int], list[int]]
    ) -> BatchResult:
        """Run up to ``limit`` operations (``first_slot_ns`` and the slots ``take_due(n)``
        hands out, at most ``n`` at a time) as one transaction, retrying what may be retried.

        Raises:
            LedgerWriteError: the intent could not be written (rolled back: nothing committed
                is unrecorded) or the outcome could not (committed and counted).
            NoProgressError, DatabaseUnavailableError, StopRequested: from the session.
        """
        want = min(limit, CHUNK_OPS) - 1
        slots = [first_slot_ns, *take_due(want)]
        more_may_be_due = len(slots) - 1 == want  # a full take: the next chunk may be due too
        names = self._draw(workload, slots)
        num_slots = len(slots)
        if not names:
            return BatchResult(num_slots, 0)
        start_ns = self.clock.now_ns()
        journal, session = self.journal, self.session
        may_grow = more_may_be_due  # only the first attempt takes more slots
        tries = 0
        while True:
            tries += 1
            conn = session.ensure()
            self.phase = Phase.STATEMENTS
            try:
                row = conn.execute("SELECT pg_current_xact_id()::text::bigint").fetchone()
                txid = int(row[0]) if row else 0
                changes: list[RowChange] = []
                no_ops: Counter[str] = Counter()
                num_done = 0
                while True:
                    chunk = names[num_done : num_done + CHUNK_OPS]
                    done = workload.execute(conn, chunk)
                    changes.extend(done.changes)
                    no_ops.update(done.no_ops)
                    num_done += len(chunk)
                    if self._should_cut():  # commit what ran; the rest is never run
                        del names[num_done:], slots[num_done:]
                        break
                    if num_done < len(names):
                        continue
                    if not may_grow or len(names) >= limit:
                        break
                    want = min(CHUNK_OPS, limit - len(names))
                    more = take_due(want)
                    num_slots += len(more)
                    may_grow = len(more) == want
                    more_names = self._draw(workload, more)
                    if not more_names:
                        break
                    slots += more
                    names += more_names
                    self._between_chunks()
            except psycopg.Error as exc:
                self.phase = Phase.IDLE
                session.rollback_quietly()
                workload.on_rollback()
                may_grow = False
                if self._is_stopping() and retry.sqlstate(exc) == QUERY_CANCELED:
                    raise StopRequested from None  # our own stop-time cancel: abandoned
                if session.on_failure(exc, names, tries):
                    continue
                return BatchResult(num_slots, 0)
            self.phase = Phase.IDLE
            try:  # the intent, durably, before COMMIT; if it cannot be written: no COMMIT
                journal.intent(txid, changes, journal.counts(names, no_ops, changes))
            except LedgerWriteError:
                session.rollback_quietly()
                workload.on_rollback()
                raise
            fate, error = self._commit(conn, txid)
            if fate in (Fate.COMMITTED, Fate.COMMITTED_BY_SERVER):
                end_ns = self.clock.now_ns()
                workload.on_commit()
                session.on_commit()
                self._stats().record_commit(names, changes, slots, start_ns, end_ns, no_ops)
                by = "commit"
                if fate is Fate.COMMITTED_BY_SERVER:
                    self._stats().num_resolved += len(names)
                    by = "txid_status"
                # LedgerWriteError now: counted (tally first), then the worker fails
                journal.committed(txid, by=by)
                return BatchResult(num_slots, len(names))
            workload.on_rollback()
            if fate is Fate.REFUSED and error is not None:  # a failed attempt, like a statement's
                if session.on_failure(error, names, tries):
                    continue
                return BatchResult(num_slots, 0)
            if fate is Fate.LOST:  # lost in COMMIT, and the server says it did not commit
                self._stats().num_resolved += len(names)
                continue
            self._stats().num_in_doubt += len(names)
            return BatchResult(num_slots, 0)

    def _commit(
        self, conn: psycopg.Connection[Any], txid: int
    ) -> tuple[Fate, psycopg.Error | None]:
        """COMMIT, and what became of it (``Fate``; with ``REFUSED``, the COMMIT's error).

        A failed COMMIT is asked of the server (reconnecting first when the connection is
        gone); its outcome is recorded, except ``UNKNOWN`` (resolved later from its intent).

        Raises:
            StopRequested: a stop while asking; the transaction stays pending (the
                coordinator or ``cdc verify`` settles it).
        """
        journal, session = self.journal, self.session
        self.phase = Phase.COMMIT
        try:
            conn.commit()
        except psycopg.Error as exc:
            self.phase = Phase.IDLE
            is_lost = session.is_broken() or retry.action(exc) is retry.Action.RECONNECT
            if is_lost:
                self._stats().record_error(retry.sqlstate_class(exc))
            status = session.resolve(txid, reconnect=is_lost)
            if status == "committed":
                return Fate.COMMITTED_BY_SERVER, None
            if status == "aborted":
                journal.aborted(txid, by="txid_status" if is_lost else "commit")
                return (Fate.LOST, None) if is_lost else (Fate.REFUSED, exc)
            logger.warning(
                "worker %d: outcome of transaction %s unknown (%s)",
                self.spec.worker_id,
                txid,
                status,
            )
            journal.unknown()
            return Fate.UNKNOWN, None
        self.phase = Phase.IDLE
        return Fate.COMMITTED, None

    def run_scenario_step(self, schedule: ScenarioSchedule, slot_ns: int) -> int:
        """Run the next scenario once (``loadgen.scenarios.run_step``) on this slot; returns
        the operations committed (1, or 0 when it was dropped).

        Its own transactions, on the idle worker connection, recorded in the worker's ledger
        by the scenario's recorder (op_name ``scenario:<name>``) through a ``StepLog`` that
        counts each as it commits; the step counts as one operation. Failures are counted and
        retried like a batch's (a retry runs the scenario again: committed parts are in the
        ledger and the counts, the failed transaction left nothing; a COMMIT lost with the
        connection is resolved from the server).
        """
        from loadgen.scenarios import run_step

        name = schedule.next_scenario()
        op_name = scenario_op_name(name)
        start_ns = self.clock.now_ns()
        log = StepLog(self.journal, self._stats)
        session = self.session
        tries = 0
        num_committed = 0
        while True:
            tries += 1
            conn = session.ensure()
            self.phase = Phase.STATEMENTS
            try:
                run_step(conn, name, ledger=log)
            except psycopg.Error as exc:
                self.phase = Phase.IDLE
                session.rollback_quietly()
                if log.pending is not None:  # a COMMIT failed: ask the server what happened
                    log.resolve_pending(session.pending_status(log.pending[0]))
                if self._is_stopping() and retry.sqlstate(exc) == QUERY_CANCELED:
                    raise StopRequested from None
                if session.on_failure(exc, [op_name], tries):
                    continue
                break
            except LedgerWriteError:
                self.phase = Phase.IDLE
                session.rollback_quietly()
                raise
            self.phase = Phase.IDLE
            session.on_commit()
            num_committed = 1
            self._stats().record_scenario_step(
                op_name, 0, 0, slot_ns, start_ns, self.clock.now_ns()
            )
            tally = self.journal.tally
            if tally is not None:
                tally.add(tally.layout.counts({op_name: 1}))
            break
        schedule.record_step(self.clock.now_ns())
        return num_committed
