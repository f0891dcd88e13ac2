"""Worker process: one connection, one open-loop schedule, batched transactions, stats deltas.

The coordinator starts each worker with the spawn method, so nothing (sockets, RNG state) is
inherited. A worker connects, builds its ``Workload``, says ``WorkerReady``, waits for the
shared start time, then repeats: take the next slot from its arrival schedule, sleep until it,
gather every further slot already due (up to ``batch_size``) and run them as one transaction.
Latency is ``commit end - slot`` and lag ``transaction start - slot`` (pgbench's model), so
queueing behind a slow server is measured, not hidden. Every ``report_interval_s`` it swaps
its ``IntervalStats`` out and sends the delta; at the end it sends a final delta and
``WorkerDone``. Only ``run_worker`` catches everything: it turns an exception into
``WorkerFailed`` and exits non-zero.

Every transaction goes through the worker's ``Journal`` (``loadgen.stream.journal``): its
intent — the ledger's change lines, durably, and the shared tally's pending counts — is
recorded just before COMMIT is sent, its outcome after; a ledger that cannot take the intent
(disk full) means the transaction is rolled back and the worker fails with that one line.

Faults: a lost connection is counted (class ``08``), the connection is reopened with backoff and
jitter and the batch is retried. When the connection dies during COMMIT the outcome is unknown;
after reconnecting, ``pg_xact_status`` on the transaction id taken inside it says whether it
committed, and the batch is counted accordingly (``num_in_doubt`` when it cannot be resolved).
"""

from __future__ import annotations

import logging
import signal
import sys
import threading
import traceback
from typing import TYPE_CHECKING, Any

import numpy as np
import psycopg

from loadgen import db
from loadgen.ledger import LedgerWriteError
from loadgen.stream.arrivals import Arrivals, ClosedLoop
from loadgen.stream.clock import NS_PER_MS, NS_PER_S, SystemClock
from loadgen.stream.journal import Journal, StepLog
from loadgen.stream.messages import Heartbeat, StatsDelta, WorkerDone, WorkerFailed, WorkerReady
from loadgen.stream.profiles import ScenarioSchedule, scenario_op_name
from loadgen.stream.recovery import (  # noqa: F401 - re-exported: the engine's fault vocabulary
    CRITICAL_CLASSES,
    RETRYABLE_SQLSTATES,
    Recovery,
    _one_line,
    _StopRequested,
    sqlstate_class,
)
from loadgen.stream.stats import IntervalStats
from loadgen.stream.tally import CommitTally
from loadgen.stream.worker_spec import WorkerSpec, build_arrivals  # noqa: F401 - re-exported

if TYPE_CHECKING:
    from multiprocessing.queues import Queue
    from multiprocessing.sharedctypes import Synchronized
    from multiprocessing.synchronize import Event

    from loadgen.ops.workload import Executed

logger = logging.getLogger(__name__)

SLEEP_SLICE_NS = 100 * NS_PER_MS  # longest uninterrupted sleep: stop requests stay responsive


class _Worker(Recovery):
    """State of one worker process; ``run`` is its whole life after the process started."""

    def __init__(
        self,
        spec: WorkerSpec,
        queue: Queue[Any],
        stop_event: Event,
        start_event: Event,
        start_at_ns: Synchronized[int],
    ) -> None:
        self.spec = spec
        self.queue = queue
        self.stop_event = stop_event
        self.start_event = start_event
        self.start_at_ns = start_at_ns
        self.clock = SystemClock()
        self.is_signalled = False  # SIGTERM sent to this process
        self.conn: psycopg.Connection[Any] | None = None
        self.stats = IntervalStats()  # reset at every report
        self.seq = 0
        self.t0_ns = self.clock.now_ns()
        self.next_report_ns = self.t0_ns
        self.num_ops = 0  # committed operations over the run
        self.num_consecutive_failures = 0
        self.num_dropped_reported = 0
        self.arrivals: Arrivals | None = None
        self.journal = Journal(None, None)
        if spec.tally is not None and spec.tally_layout is not None:
            self.journal.tally = CommitTally(spec.tally_layout, spec.tally)
        self.schedule: ScenarioSchedule | None = None  # scenario steps (--profile cdc-edge)
        self.last_sent_ns = self.t0_ns  # when the loop last put a message (heartbeat thread)
        self._heartbeat_stop = threading.Event()
        self.app_name = f"loadgen-stream-w{spec.worker_id}-{_pid()}"  # unique per run

    # -- lifecycle ---------------------------------------------------------------------------

    def should_stop(self) -> bool:
        return self.is_signalled or self.stop_event.is_set()

    def run(self) -> None:
        from loadgen.ops.workload import Workload

        spec = self.spec
        arrivals_ss, workload_ss = spec.seed_seq.spawn(2)
        self.conn = db.connect(spec.dsn, application_name=self.app_name)
        self._mark_live()
        workload = Workload(
            self.conn,
            worker_id=spec.worker_id,
            num_workers=spec.num_workers,
            seed=int(workload_ss.generate_state(1, np.uint64)[0] >> 1),
            mix=spec.mix,
            owned_max_ids=spec.owned_max_ids,
        )
        self._end_txn_quietly()
        if spec.scenarios:
            from loadgen.scenarios import ensure_tables

            ensure_tables(self.conn)
        # build the Faker vocabulary now, not in the first measured operation (~0.6 s)
        from loadgen.datagen import build_vocab

        build_vocab()
        if spec.ledger:
            from loadgen.ledger import LedgerWriter

            self.journal.ledger = LedgerWriter(
                spec.ledger, spec.worker_id, run_id=spec.run_id, fsync=spec.ledger_fsync
            )
        self.queue.put(WorkerReady(spec.worker_id, _pid(), self._backend_pid()))
        self.last_sent_ns = self.clock.now_ns()
        threading.Thread(target=self._heartbeats, name="heartbeat", daemon=True).start()
        while not self.start_event.wait(0.1):
            if self.should_stop():
                self._finish("stopped")
                return
        start_ns = self.start_at_ns.value
        self.clock.sleep_until_ns(start_ns)
        self.t0_ns = start_ns
        self.next_report_ns = start_ns + round(spec.report_interval_s * NS_PER_S)
        self.arrivals = build_arrivals(spec, start_ns, np.random.default_rng(arrivals_ss))
        if spec.scenarios:
            self.schedule = ScenarioSchedule(
                spec.scenarios,
                spec.scenario_every_ops,
                spec.scenario_max_gap_s,
                start_ns,
                worker_id=spec.worker_id,
                num_workers=spec.num_workers,
            )
        end_ns = start_ns + round(spec.duration_s * NS_PER_S) if spec.duration_s else None
        try:
            reason = self._loop(workload, end_ns)
        except _StopRequested:
            reason = "stopped"
        self._finish(reason)

    def _loop(self, workload: Any, end_ns: int | None) -> str:
        spec, clock, arrivals = self.spec, self.clock, self.arrivals
        assert arrivals is not None
        pending_ns: int | None = None
        while True:
            if self.should_stop():
                return "stopped"
            remaining = None if spec.max_ops is None else spec.max_ops - self.num_ops
            if remaining is not None and remaining <= 0:
                return "max-ops"
            slot_ns = (
                pending_ns if pending_ns is not None else arrivals.next_slot_ns(clock.now_ns())
            )
            pending_ns = None
            if end_ns is not None and slot_ns >= end_ns:
                self._sleep_until(end_ns)
                return "duration"
            self._sleep_until(slot_ns)
            schedule = self.schedule
            if schedule is not None and schedule.is_due(clock.now_ns()):
                self._run_scenario_step(schedule, slot_ns)  # this slot's token is the step's
                self._maybe_report()
                continue
            # group every further slot already due into the same transaction
            limit = spec.batch_size if remaining is None else min(spec.batch_size, remaining)
            if schedule is not None:  # a batch never runs past the next step's slot
                limit = min(limit, schedule.ops_until_due())
            slots = [slot_ns]
            now_ns = clock.now_ns()
            while len(slots) < limit:
                next_ns = arrivals.next_slot_ns(now_ns)
                if next_ns > now_ns or (end_ns is not None and next_ns >= end_ns):
                    pending_ns = next_ns
                    break
                slots.append(next_ns)
            self._run_batch(workload, slots)
            if schedule is not None:
                schedule.record_ops(len(slots))
            self._maybe_report()

    def _finish(self, reason: str) -> None:
        self._heartbeat_stop.set()
        self._report(final=True)
        self.queue.put(WorkerDone(self.spec.worker_id, reason, self.num_ops))
        self.journal.close()
        if self.conn is not None:
            self.conn.close()

    # -- reporting and sleeping -------------------------------------------------------------

    def _maybe_report(self) -> None:
        if self.clock.now_ns() >= self.next_report_ns:
            self._report()

    def _report(self, *, final: bool = False, is_reconnecting: bool = False) -> None:
        now_ns = self.clock.now_ns()
        dropped = getattr(self.arrivals, "num_dropped", 0)
        self.stats.num_dropped += dropped - self.num_dropped_reported
        self.num_dropped_reported = dropped
        delta = StatsDelta(
            self.spec.worker_id,
            self.seq,
            self.t0_ns,
            now_ns,
            self.stats,
            backend_pid=0 if final else self._backend_pid(),
            is_reconnecting=is_reconnecting,
        )
        self.queue.put(delta)
        self.last_sent_ns = now_ns
        self.stats = IntervalStats()
        self.seq += 1
        self.t0_ns = now_ns
        interval_ns = round(self.spec.report_interval_s * NS_PER_S)
        while self.next_report_ns <= now_ns:
            self.next_report_ns += interval_ns

    def _heartbeats(self) -> None:
        """Heartbeat thread: while the loop is stuck in one call (a long statement, a lock
        wait), say every report interval that the process is alive, so liveness does not
        depend on statement length. The loop's own deltas make heartbeats unnecessary."""
        interval_ns = round(self.spec.report_interval_s * NS_PER_S)
        while not self._heartbeat_stop.wait(self.spec.report_interval_s):
            busy_ns = self.clock.now_ns() - self.last_sent_ns
            if busy_ns >= interval_ns:
                try:
                    self.queue.put(Heartbeat(self.spec.worker_id, busy_ns))
                except (ValueError, OSError):  # the queue closed: the process is ending
                    return

    def _sleep_until(self, deadline_ns: int, *, is_reconnecting: bool = False) -> None:
        """Sleep in short slices, reporting on time; raise _StopRequested when stopping."""
        while True:
            now_ns = self.clock.now_ns()
            if now_ns >= self.next_report_ns:
                self._report(is_reconnecting=is_reconnecting)
            if now_ns >= deadline_ns:
                return
            if self.should_stop():
                raise _StopRequested
            self.clock.sleep_until_ns(
                min(deadline_ns, now_ns + SLEEP_SLICE_NS, self.next_report_ns)
            )

    # -- transactions ---------------------------------------------------------------------------

    def _run_batch(self, workload: Any, slots: list[int]) -> None:
        """Run ``len(slots)`` operations as one transaction, retrying what may be retried."""
        spec = self.spec
        names: list[str] = workload.choose(len(slots))
        if len(names) < len(slots):
            # only with a mix of updates/deletes alone whose candidate rows ran out
            self.stats.num_skipped += len(slots) - len(names)
            slots = slots[: len(names)]
            if not names:
                if isinstance(self.arrivals, ClosedLoop):
                    self._sleep_until(self.clock.now_ns() + SLEEP_SLICE_NS)
                return
        start_ns = self.clock.now_ns()
        journal = self.journal
        tries = 0
        while True:
            tries += 1
            if self.conn is None or self.conn.closed:
                self._reconnect()
            conn = self.conn
            assert conn is not None
            try:
                row = conn.execute("SELECT pg_current_xact_id()::text::bigint").fetchone()
                txid = int(row[0]) if row else 0
                done: Executed = workload.execute(conn, names)
            except psycopg.Error as exc:
                self._rollback_quietly()
                workload.on_rollback()
                if self._handle_failure(exc, names, tries):
                    continue
                return
            try:  # the intent, durably, before COMMIT; if it cannot be written: no COMMIT
                journal.intent(txid, done.changes, journal.counts(names, done.no_ops, done.changes))
            except LedgerWriteError:
                self._rollback_quietly()
                workload.on_rollback()
                raise
            by = "commit"
            try:
                conn.commit()
            except psycopg.Error as exc:
                if not self._is_connection_lost(exc):
                    self._rollback_quietly()
                    workload.on_rollback()
                    journal.aborted(txid)
                    if self._handle_failure(exc, names, tries):
                        continue
                    return
                self.stats.record_error(sqlstate_class(exc))
                try:
                    status = self._resolve_in_doubt(txid)
                except _StopRequested:  # still pending in the tally: the coordinator settles it
                    raise
                if status != "committed":
                    workload.on_rollback()
                    if status == "aborted":
                        journal.aborted(txid, by="txid_status")
                        self.stats.num_resolved += len(names)
                        continue  # nothing was applied: run the batch again
                    logger.warning(
                        "worker %d: outcome of transaction %s unknown (%s)",
                        spec.worker_id,
                        txid,
                        status,
                    )
                    journal.unknown()
                    self.stats.num_in_doubt += len(names)
                    return
                self.stats.num_resolved += len(names)
                by = "txid_status"
            end_ns = self.clock.now_ns()
            workload.on_commit()
            self.num_ops += len(names)
            self.num_consecutive_failures = 0
            self.stats.record_commit(names, done.changes, slots, start_ns, end_ns, done.no_ops)
            journal.committed(txid, by=by)  # LedgerWriteError now: counted, then the worker fails
            return

    def _run_scenario_step(self, schedule: ScenarioSchedule, slot_ns: int) -> None:
        """Run the next scenario once (``loadgen.scenarios.run_step``) on this slot.

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
        log = StepLog(self.journal, lambda: self.stats)
        tries = 0
        while True:
            tries += 1
            if self.conn is None or self.conn.closed:
                self._reconnect()
            assert self.conn is not None
            try:
                run_step(self.conn, name, ledger=log)
            except psycopg.Error as exc:
                self._rollback_quietly()
                retry = self._handle_failure(exc, [op_name], tries)
                if log.pending is not None:  # a COMMIT failed: ask the server what happened
                    log.resolve_pending(self._pending_status(log.pending[0]))
                if retry:
                    continue
                break
            except LedgerWriteError:
                self._rollback_quietly()
                raise
            self.num_ops += 1
            self.num_consecutive_failures = 0
            self.stats.record_scenario_step(op_name, 0, 0, slot_ns, start_ns, self.clock.now_ns())
            tally = self.journal.tally
            if tally is not None:
                tally.add(tally.layout.counts({op_name: 1}))
            break
        schedule.record_step(self.clock.now_ns())


def _pid() -> int:
    import os

    return os.getpid()


def run_worker(
    spec: WorkerSpec,
    queue: Queue[Any],
    stop_event: Event,
    start_event: Event,
    start_at_ns: Synchronized[int],
) -> None:
    """Process entry point of one worker (the coordinator's ``Process`` target).

    SIGINT is ignored (a terminal's Ctrl-C reaches the whole process group; the coordinator
    decides and sets ``stop_event``); SIGTERM sent to this process stops it gracefully.
    Never raises: an exception becomes a ``WorkerFailed`` message and exit status 1.
    """
    worker = _Worker(spec, queue, stop_event, start_event, start_at_ns)
    signal.signal(signal.SIGINT, signal.SIG_IGN)

    def _on_sigterm(signum: int, frame: object) -> None:
        worker.is_signalled = True

    signal.signal(signal.SIGTERM, _on_sigterm)
    try:
        worker.run()
    except BaseException as exc:  # noqa: BLE001 - process boundary: report, never raise
        worker._heartbeat_stop.set()
        try:
            queue.put(
                WorkerFailed(
                    spec.worker_id, type(exc).__name__, _one_line(exc), traceback.format_exc()
                )
            )
            queue.close()
            queue.join_thread()
        finally:
            sys.exit(1)
