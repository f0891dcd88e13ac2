"""Worker process: one connection, one open-loop schedule, batched transactions, stats deltas.

The coordinator starts each worker with the spawn method, so nothing (sockets, RNG state) is
inherited. A worker connects, builds its ``Workload``, says ``WorkerReady``, waits for the
shared start time, then repeats: take the next slot from its arrival schedule, sleep until it,
and run it with every further slot already due (up to ``batch_size``) as one transaction
(``loadgen.stream.transactions``). Latency is ``commit end - slot`` and lag ``transaction start
- slot`` (pgbench's model), so queueing behind a slow server is measured, not hidden. Every
``report_interval_s`` it swaps its ``IntervalStats`` out and sends the delta; at the end it sends
a final delta and ``WorkerDone``. Only ``run_worker`` catches everything: it turns an exception
into ``WorkerFailed`` (the exception itself, picklable) and exits non-zero.

Stopping: SIGTERM, the coordinator's stop event, the coordinator's death (the kernel's
parent-death SIGTERM, a re-parented process, or a pipe that broke) and the end of ``--duration``
all end the loop at its next check — between sleep slices, between chunks of a batch — and a
statement still running a grace period later is cancelled by the watchdog thread
(``loadgen.stream.watchdog``). The transaction in flight either commits with its outcome
recorded or rolls back; a stop while its outcome is being asked leaves its intent for the
coordinator (or ``cdc verify``) to resolve.
"""

from __future__ import annotations

import gc
import logging
import os
import signal
import sys
import traceback
from collections.abc import Callable
from multiprocessing.connection import Connection
from typing import TYPE_CHECKING, Any

import numpy as np

from loadgen import interrupts
from loadgen.stream.arrivals import Arrivals, ClosedLoop
from loadgen.stream.channel import Outbox
from loadgen.stream.clock import NS_PER_MS, NS_PER_S, SystemClock, interval_ns, next_tick_ns
from loadgen.stream.journal import Journal
from loadgen.stream.messages import (
    DoneReason,
    StatsDelta,
    WorkerDone,
    WorkerFailed,
    WorkerReady,
    picklable_error,
)
from loadgen.stream.profiles import ScenarioSchedule
from loadgen.stream.recovery import Session, StopRequested
from loadgen.stream.stats import IntervalStats
from loadgen.stream.stopping import ParentWatch
from loadgen.stream.tally import CommitTally
from loadgen.stream.timeseries import StatsBuckets
from loadgen.stream.transactions import Phase, Transactions
from loadgen.stream.watchdog import Watchdog
from loadgen.stream.worker_spec import WorkerSpec, build_arrivals

if TYPE_CHECKING:
    from multiprocessing.sharedctypes import Synchronized
    from multiprocessing.synchronize import Event

logger = logging.getLogger(__name__)

SLEEP_SLICE_NS = 100 * NS_PER_MS  # longest uninterrupted sleep: stop requests stay responsive


class Worker:
    """State of one worker process; ``run`` is its whole life after the process started."""

    def __init__(
        self,
        spec: WorkerSpec,
        outbox: Outbox,
        stop_event: Event,
        start_event: Event,
        start_at_ns: Synchronized[int],
    ) -> None:
        self.spec = spec
        self.outbox = outbox
        self.stop_event = stop_event
        self.start_event = start_event
        self.start_at_ns = start_at_ns
        self.parent = ParentWatch(spec.parent_pid) if spec.parent_pid else None
        self.clock = SystemClock()
        self.is_signalled = False  # SIGTERM sent to this process (or its parent died)
        self.report_ns = interval_ns(spec.report_interval_s)
        # stats by (interval, phase) of when they were recorded; taken at every report
        self.buckets = StatsBuckets(self.report_ns, spec.phases)
        self.mix_in_use: Any = spec.mix  # the workload's weights (a load phase may change them)
        self.seq = 0
        self.t0_ns = self.clock.now_ns()
        self.next_report_ns = self.t0_ns + self.report_ns
        self.end_ns: int | None = None  # --duration's end, once started
        self.num_ops = 0  # committed operations over the run
        self.num_dropped_reported = 0
        self.arrivals: Arrivals | None = None
        self.pending_ns: int | None = None  # a slot taken from the schedule, not yet due
        self.journal = Journal(None, None)
        if spec.tally is not None and spec.tally_layout is not None:
            self.journal.tally = CommitTally(spec.tally_layout, spec.tally)
        self.schedule: ScenarioSchedule | None = None  # scenario steps (--profile cdc-edge)
        self.last_sent_ns = self.t0_ns  # when the loop last sent a message (watchdog)
        app_name = f"loadgen-stream-w{spec.worker_id}-{os.getpid()}"  # unique per run
        self.session = Session(spec, self.clock, lambda: self.stats, self._sleep_until, app_name)
        self.txns = Transactions(
            spec,
            self.session,
            self.journal,
            self.clock,
            lambda: self.stats,
            should_cut=self.should_cut,
            is_stopping=self.should_stop,
            between_chunks=self._maybe_report,
        )
        self.watchdog = Watchdog(
            spec.worker_id,
            self.report_ns,
            self.clock,
            send=self.outbox.put,
            last_sent_ns=lambda: self.last_sent_ns,
            is_stopping=self.should_cut,
            is_in_statement=lambda: self.txns.phase is Phase.STATEMENTS,
            cancel=self.session.cancel,
        )

    @property
    def stats(self) -> IntervalStats:
        """Where what happens now is recorded (its interval and phase on the shared clock)."""
        return self.buckets.current(self.clock.now_ns())

    # -- lifecycle ---------------------------------------------------------------------------

    def should_stop(self) -> bool:
        """A stop request, or the coordinator is gone."""
        return (
            self.is_signalled
            or self.stop_event.is_set()
            or self.outbox.is_broken
            or (self.parent is not None and self.parent.is_gone())
        )

    def should_cut(self) -> bool:
        """Stopping, or past the end of ``--duration``: a batch stops growing."""
        return self.should_stop() or (
            self.end_ns is not None and self.clock.now_ns() >= self.end_ns
        )

    def _send(self, message: Any) -> None:
        self.outbox.put(message)
        self.last_sent_ns = self.clock.now_ns()

    def run(self) -> None:
        from loadgen.ops.workload import Workload

        spec = self.spec
        arrivals_ss, workload_ss = spec.seed_seq.spawn(2)
        self.watchdog.start()  # heartbeats while connecting or loading, too
        try:
            conn = self.session.open()
        except StopRequested:
            self._finish("stopped")
            return
        workload = Workload(
            conn,
            worker_id=spec.worker_id,
            num_workers=spec.num_workers,
            seed=int(workload_ss.generate_state(1, np.uint64)[0] >> 1),
            mix=spec.mix,
            owned_max_ids=spec.owned_max_ids,
            shard=(spec.shard_index, spec.shard_count),
        )
        self.session.end_txn_quietly()
        if spec.scenarios:
            from loadgen.scenarios import ensure_tables

            ensure_tables(conn)
        # build the Faker vocabulary now, not in the first measured operation (~0.6 s)
        from loadgen.datagen import build_vocab

        build_vocab()
        # What is loaded now (pools, vocabulary, modules) lives for the whole run: out of the
        # collector's sight, a full collection no longer walks it (a pause of tens of ms at
        # scale 50, seen as schedule lag). No collection first: it would take ~20 ms before the
        # first operation for a few dozen objects (a spare collected after its imports).
        gc.freeze()
        self._open_ledger()
        self._send(WorkerReady(spec.worker_id, os.getpid(), self.session.backend_pid()))
        while not self.start_event.wait(0.1):
            if self.should_stop():
                self._finish("stopped")
                return
        start_ns = self.start_at_ns.value
        self.clock.sleep_until_ns(start_ns)
        self.t0_ns = start_ns
        self.buckets.origin_ns = start_ns
        self.next_report_ns = start_ns + self.report_ns
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
        if spec.duration_s:
            self.end_ns = start_ns + round(spec.duration_s * NS_PER_S)
        try:
            reason = self._loop(workload)
        except StopRequested:
            reason = "stopped"
        self._finish(reason)

    def _open_ledger(self) -> None:
        spec = self.spec
        if spec.ledger:
            from loadgen.ledger import LedgerWriter

            self.journal.ledger = LedgerWriter(
                spec.ledger, spec.worker_id, run_id=spec.run_id, fsync=spec.ledger_fsync
            )

    def _take_due(self, n: int) -> list[int]:
        """Up to ``n`` further slots already due now (and before the end); the first one that
        is not is kept for the next batch."""
        assert self.arrivals is not None
        out: list[int] = []
        now_ns = self.clock.now_ns()
        while len(out) < n:
            if self.pending_ns is not None:  # taken before, not due then: never lost
                next_ns, self.pending_ns = self.pending_ns, None
            else:
                next_ns = self.arrivals.next_slot_ns(now_ns)
            if next_ns > now_ns or (self.end_ns is not None and next_ns >= self.end_ns):
                self.pending_ns = next_ns
                break
            out.append(next_ns)
        return out

    def _loop(self, workload: Any) -> DoneReason:
        spec, clock, arrivals = self.spec, self.clock, self.arrivals
        assert arrivals is not None
        while True:
            if self.should_stop():
                return "stopped"
            remaining = None if spec.max_ops is None else spec.max_ops - self.num_ops
            if remaining is not None and remaining <= 0:
                return "max_ops"
            slot_ns = self.pending_ns
            if slot_ns is None:
                slot_ns = arrivals.next_slot_ns(clock.now_ns())
            self.pending_ns = None
            if self.end_ns is not None and slot_ns >= self.end_ns:
                self._sleep_until(self.end_ns)
                return "duration"
            self._sleep_until(slot_ns)
            schedule = self.schedule
            if schedule is not None and schedule.is_due(clock.now_ns()):
                self.num_ops += self.txns.run_scenario_step(schedule, slot_ns)  # its token
                self._maybe_report()
                continue
            if spec.phases is not None:  # a phase's own mix, from its first slot on
                self._phase_mix(workload, slot_ns)
            limit = spec.batch_size if remaining is None else min(spec.batch_size, remaining)
            if schedule is not None:  # a batch never runs past the next step's slot
                limit = min(limit, schedule.ops_until_due())
            result = self.txns.run_batch(workload, slot_ns, limit, self._take_due)
            self.num_ops += result.num_committed
            if result.num_committed == 0 and isinstance(arrivals, ClosedLoop):
                self._sleep_until(clock.now_ns() + SLEEP_SLICE_NS)  # nothing to do: no spin
            if schedule is not None:
                schedule.record_ops(result.num_slots)
            self._maybe_report()

    def _phase_mix(self, workload: Any, slot_ns: int) -> None:
        plan = self.spec.phases
        assert plan is not None
        phase = plan.phases[plan.phase_at((slot_ns - self.buckets.origin_ns) / NS_PER_S)]
        mix = phase.mix if phase.mix is not None else self.spec.mix
        if mix is not self.mix_in_use:
            workload.set_mix(mix)
            self.mix_in_use = mix

    def _finish(self, reason: DoneReason) -> None:
        self.watchdog.stop()
        self._report(final=True)
        self._send(WorkerDone(self.spec.worker_id, reason, self.num_ops))
        self.journal.close()
        self.session.close()
        self.outbox.close()

    # -- reporting and sleeping -------------------------------------------------------------

    def _maybe_report(self) -> None:
        if self.clock.now_ns() >= self.next_report_ns:
            self._report()

    def _report(self, *, final: bool = False, is_reconnecting: bool = False) -> None:
        now_ns = self.clock.now_ns()
        dropped = getattr(self.arrivals, "num_dropped", 0)
        if dropped != self.num_dropped_reported:
            self.buckets.current(now_ns).num_dropped += dropped - self.num_dropped_reported
        self.num_dropped_reported = dropped
        stats, parts = self.buckets.take()
        delta = StatsDelta(
            self.spec.worker_id,
            self.seq,
            self.t0_ns,
            now_ns,
            stats,
            backend_pid=0 if final else self.session.backend_pid(),
            is_reconnecting=is_reconnecting,
            parts=parts,
        )
        self._send(delta)
        self.seq += 1
        self.t0_ns = now_ns
        self.next_report_ns = next_tick_ns(self.next_report_ns, self.report_ns, now_ns)

    def _sleep_until(self, deadline_ns: int, *, is_reconnecting: bool = False) -> None:
        """Sleep in short slices, reporting on time; raise StopRequested when stopping."""
        while True:
            now_ns = self.clock.now_ns()
            if now_ns >= self.next_report_ns:
                self._report(is_reconnecting=is_reconnecting)
            if now_ns >= deadline_ns:
                return
            if self.should_stop():
                raise StopRequested
            self.clock.sleep_until_ns(
                min(deadline_ns, now_ns + SLEEP_SLICE_NS, self.next_report_ns)
            )


def run_worker(
    spec: WorkerSpec,
    channel: Connection,
    stop_event: Event,
    start_event: Event,
    start_at_ns: Synchronized[int],
    *,
    was_signalled: Callable[[], bool] | None = None,
) -> None:
    """Process entry point of one worker (the coordinator's ``Process`` target).

    ``channel`` is the write end of this worker's pipe to the coordinator. SIGINT is ignored
    (a terminal's Ctrl-C reaches the whole process group; the coordinator decides and sets
    ``stop_event``); SIGTERM — sent to this process, or by the kernel when the coordinator dies —
    stops it gracefully. Never raises: an exception becomes a ``WorkerFailed`` message and exit
    status 1. ``was_signalled``: whether SIGTERM came before this was called (a spare,
    ``loadgen.stream.worker_entry.run_spare``, had its own handler until now).
    """
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    outbox = Outbox(channel)
    worker = Worker(spec, outbox, stop_event, start_event, start_at_ns)

    def _on_sigterm(signum: int, frame: object) -> None:
        worker.is_signalled = True

    signal.signal(signal.SIGTERM, _on_sigterm)
    if was_signalled is not None and was_signalled():
        worker.is_signalled = True
    if worker.parent is not None:
        worker.parent.arm(signal.SIGTERM)
    try:
        worker.run()
        gc.freeze()  # the exit's collections would walk what the run made (loadgen.__main__)
    except BaseException as exc:  # noqa: BLE001 - process boundary: report, never raise
        worker.watchdog.stop()
        try:
            try:  # what it counted since its last report (errors included) is not lost
                worker._report(final=True)
            except Exception:  # noqa: BLE001 - the failure itself is what must get out
                logger.debug("worker %d: no final report", spec.worker_id, exc_info=True)
            error = picklable_error(exc)
            outbox.put(WorkerFailed(spec.worker_id, error, traceback.format_exc()))
            outbox.close()
        finally:
            interrupts.ignore_for_exit()
            sys.exit(1)
    # stopped: the coordinator's SIGTERM to the fleet (or the parent-death one) may come now,
    # while the interpreter exits; it must not race its finalization (a traceback, or -15)
    interrupts.ignore_for_exit()
