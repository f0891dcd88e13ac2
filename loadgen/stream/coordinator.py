"""Coordinator: check, spawn the workers, merge their deltas, watch them, stop, settle, summarise.

``Coordinator(spec, ...).run()`` runs in the CLI's process and main thread. It owns the clock
(the shared start time), the progress display, liveness checks and the summary. Workers start in
bounded waves (``loadgen.stream.fleet``), each with its share of the rate and of ``--max-ops``
and an independent RNG stream from ``SeedSequence(seed).spawn(n)``, and talk over their own
pipes (``loadgen.stream.channel``). Deltas carry their stats by the interval in which the work
happened (``loadgen.stream.timeseries``): the progress line of a tick shows the interval that
just ended, once every worker reported it (or 200 ms later with what has arrived). Every
stage — the checks, each wave of starts, the start barrier, the run, the drain — looks at the
stop flag; the stop is bounded:
``stop_timeout_s`` for the workers to finish, then about 2 s to terminate what is left.
"""

from __future__ import annotations

import logging
import secrets
from collections import deque
from dataclasses import dataclass, field
from typing import Any

from loadgen.stream import liveness, outcome, report, settle
from loadgen.stream.aborts import Abort, abort_for
from loadgen.stream.clock import NS_PER_S, SystemClock, interval_ns, next_tick_ns
from loadgen.stream.fleet import Fleet, WorkerHandle, WorkerTarget
from loadgen.stream.markers import MarkerWriter
from loadgen.stream.messages import (
    PROTOCOL_VERSION,
    StatsDelta,
    WorkerDone,
    WorkerFailed,
)
from loadgen.stream.ownership import Claim, RunOwnership, with_claim
from loadgen.stream.preflight import check_database, check_ledger_path
from loadgen.stream.report import NullReporter, Progress, Reporter
from loadgen.stream.run_spec import RunSpec
from loadgen.stream.spares import Spares, default_max_starting
from loadgen.stream.stats import IntervalStats
from loadgen.stream.stopping import StopFlag
from loadgen.stream.summary import RunSummary, StreamAbortedError
from loadgen.stream.timeseries import TimeseriesWriter
from loadgen.stream.worker_entry import run_worker

logger = logging.getLogger(__name__)

START_DELAY_BASE_S, START_DELAY_PER_WORKER_S, START_DELAY_MAX_S = 0.01, 0.002, 0.05
START_TIMEOUT_S = 120.0  # for one worker to connect and prepare its workload, from its spawn
STOP_TIMEOUT_S = 4.0  # after a stop request, before stragglers are terminated (exit < 5 s)
MIN_SILENCE_TIMEOUT_S = 15.0  # a worker silent this long (or 10 report intervals) is stuck
DURATION_BACKSTOP_S = 2.0  # past --duration, the coordinator tells the workers to stop itself
POLL_S = 0.2  # the longest wait for a message between two looks at the flags
PROGRESS_GRACE_NS = 200_000_000  # a progress line waits this long for an interval's last deltas


@dataclass
class _Totals:
    total: IntervalStats = field(default_factory=IntervalStats)
    last_t1_ns: int = 0  # latest interval end of any delta: when the last worker finished


class Coordinator:
    """One stream run. ``run`` once; see the module docstring."""

    def __init__(
        self,
        spec: RunSpec,
        reporter: Reporter | None = None,
        *,
        worker_target: WorkerTarget = run_worker,
        should_check_database: bool = True,
        silence_timeout_s: float | None = None,
        start_timeout_s: float = START_TIMEOUT_S,
        stop_timeout_s: float = STOP_TIMEOUT_S,
        stop: StopFlag | None = None,
        max_starting: int | None = None,
        metrics: Any = None,
        spares: Spares | None = None,
    ) -> None:
        self.spec = spec
        self.reporter = reporter or NullReporter()
        self.should_check_database = should_check_database
        self.silence_timeout_s = silence_timeout_s or max(
            MIN_SILENCE_TIMEOUT_S, 10 * spec.report_interval_s
        )
        self.start_timeout_s = start_timeout_s
        self.stop_timeout_s = stop_timeout_s
        self.stop = stop if stop is not None else StopFlag()
        self.max_starting = max_starting or default_max_starting()
        self.clock = SystemClock()
        self.run_id = secrets.token_hex(4)  # in the ledger part names and the summary
        # the engine's workers keep a shared commit tally; scripted test workers do not
        layout = settle.layout_for(spec.scenarios) if worker_target is run_worker else None
        if spares is not None and layout is None:  # scripted workers: spares do not apply
            spares.close()
            spares = None
        self.fleet = Fleet(worker_target, layout, spares)
        self.totals = _Totals()
        self.abort: Abort | None = None
        self.done_reason: str | None = None  # a WorkerDone reason, or "stopped" (coordinator)
        self.claim: Claim | None = None  # what this run owns (loadgen.stream.ownership)
        self.settled: settle.Settled | None = None
        self.t_start_ns = self.t_end_ns = 0
        self.markers_written = self.markers_failed = 0  # --markers (loadgen.stream.markers)
        # --timeseries (loadgen.stream.timeseries); --metrics-port (loadgen.stream.metrics)
        # per interval and phase by when the work happened: progress, phases, --timeseries
        self.series = TimeseriesWriter(
            spec.timeseries,
            interval_ns(spec.report_interval_s) / NS_PER_S,
            range(spec.num_workers),
            spec.phases,
            None if spec.phases is not None else spec.target_rate_per_s,
        )
        self.metrics = metrics
        if metrics is not None:
            metrics.bind(self)

    # -- the run ---------------------------------------------------------------------------

    def run(self) -> RunSummary:
        """Run the stream to its end (duration, max-ops or a signal) and return the summary.

        Blocks; main thread only. SIGINT/SIGTERM stop the run at any stage: pass ``stop``
        already installed (the CLI does, first thing) or ``run`` installs one for its duration.

        Raises:
            ConfigError: the ledger directory cannot be created or written (exit 2), before
                any worker starts.
            SchemaMissingError, DatabaseUnavailableError: before the run starts (exit 3).
            StreamAbortedError: a worker died, went silent, failed or made no progress;
                ``.summary`` holds the partial summary (exit 4).
        """
        stop, spec = self.stop, self.spec
        owns_handlers = not stop.is_installed
        stop.install()
        ownership: RunOwnership | None = None
        self.t_start_ns = self.t_end_ns = self.clock.now_ns()
        try:
            if spec.ledger:
                check_ledger_path(spec.ledger, spec.num_workers, self.run_id)
            self.series.open(spec.describe(self.run_id))
            if self.should_check_database and not stop.count:
                check_database(spec.dsn, retry_for_s=spec.connect_retry_s)
                ownership = RunOwnership(spec.dsn, retry_for_s=spec.connect_retry_s)
                self.claim = ownership.acquire(is_shard=not spec.shard.is_whole)
            if not stop.count:
                self._run_workers()
        finally:
            stop.on_request = None
            if owns_handlers:
                stop.restore()
            killed = self.fleet.shut_down()
            if killed:
                logger.warning("worker %s did not stop in time; killed", _ids(killed))
            try:  # every worker is gone: count what their lost reports missed, resolve intents
                self.settled = settle.settle(
                    self.fleet.handles,
                    self.totals.total,
                    self.fleet.layout,
                    ownership,
                    spec.ledger,
                    self.run_id,
                )
                settle.record_end(self.fleet.handles, ownership, spec.ledger, self.run_id)
            finally:
                if ownership is not None:
                    ownership.close()
        summary = self._summary()
        self.series.close(summary, self.t_end_ns)
        abort = self.abort
        if abort is not None:
            if abort.is_database_problem and abort.error is not None:
                raise abort.error
            raise StreamAbortedError(f"run aborted: {abort.reason}", summary)
        return summary

    def _run_workers(self) -> None:
        fleet, clock = self.fleet, self.clock
        self.stop.on_request = fleet.stop_event.set
        if self.stop.count:
            fleet.stop_event.set()
        for ws in self.spec.worker_specs():
            if ws.max_ops == 0:  # no share of --max-ops (fewer than workers): nothing to run,
                self.series.worker_gone(ws.worker_id)  # so no process to wait for
                self.done_reason = self.done_reason or "max_ops"
                continue
            fleet.add(with_claim(ws, self.run_id, self.claim))
        fleet.spares.close()  # spares beyond --workers (a guess from the command line) go now
        started = self._start_all()
        t_start_ns = clock.now_ns()
        if started:
            t_start_ns = clock.now_ns() + round(start_delay_s(len(fleet.handles)) * NS_PER_S)
            fleet.start_at_ns.value = t_start_ns
            self.series.start(t_start_ns)
            fleet.start_event.set()
            self.reporter.start()
            markers = self._start_markers()
            try:
                self._main_loop(t_start_ns)
            finally:
                if markers is not None:
                    markers.stop()
                    self.markers_written = markers.num_written
                    self.markers_failed = markers.num_failed
                self.reporter.stop()
        t_end_ns = clock.now_ns()
        fleet.stop_event.set()
        self._drain()
        if self.totals.last_t1_ns > t_start_ns and self.abort is None:
            t_end_ns = self.totals.last_t1_ns  # the workers' own end (their final deltas)
        self.t_start_ns, self.t_end_ns = t_start_ns, t_end_ns

    def _start_markers(self) -> MarkerWriter | None:
        """``--markers``: the logical-message writer, started with the run (or None)."""
        spec = self.spec
        if spec.markers_s is None or not self.should_check_database:
            return None
        markers = MarkerWriter(spec.dsn, self.run_id, spec.markers_s)
        markers.start()
        return markers

    def _start_all(self) -> bool:
        """Spawn every worker, at most ``max_starting`` in start-up at once, and wait until all
        are ready. False when the run stopped or aborted before they were."""
        fleet, clock = self.fleet, self.clock
        waiting = deque(h for h in fleet.handles.values())
        is_warm = False
        while True:
            while waiting and fleet.num_starting() < self.max_starting and not self._is_over():
                fleet.start(waiting.popleft(), clock.now_ns())
            if not is_warm:  # while the first workers import and load: not before, not after
                report.warm()
                is_warm = True
            if self._is_over():
                return False
            if not waiting and all(h.is_ready for h in fleet.handles.values()):
                return True
            self._poll(0.1)
            abort = liveness.check_starting(fleet, clock.now_ns(), self.start_timeout_s)
            if abort is not None:
                self._set_abort(abort)
            self._check_liveness()

    def _is_over(self) -> bool:
        return self.abort is not None or self.stop.count > 0

    def _main_loop(self, t_start_ns: int) -> None:
        spec, clock, totals = self.spec, self.clock, self.totals
        tick_ns = interval_ns(spec.report_interval_s)
        next_tick = t_start_ns + tick_ns
        end_ns = t_start_ns + round(spec.duration_s * NS_PER_S) if spec.duration_s else None
        handles = self.fleet.handles.values()
        for h in handles:
            h.last_seen_ns = t_start_ns
        series = self.series
        grace_ns = min(tick_ns // 5, PROGRESS_GRACE_NS)
        while True:
            wait_s = (next_tick - clock.now_ns()) / NS_PER_S
            self._poll(min(wait_s if wait_s > 0 else 0.01, POLL_S))
            now_ns = clock.now_ns()
            # the interval that ended at the tick, once every worker reported it (or a moment
            # later with what is known): counted when the work happened, like --timeseries
            k = (next_tick - t_start_ns) // tick_ns - 1
            if now_ns >= next_tick and (series.next_k > k or now_ns >= next_tick + grace_ns):
                self.reporter.progress(
                    Progress(
                        elapsed_s=(k + 1) * tick_ns / NS_PER_S,
                        interval_s=tick_ns / NS_PER_S,
                        interval=series.stats_of(k),
                        total=totals.total,
                        remaining_s=None if end_ns is None else max(end_ns - now_ns, 0) / NS_PER_S,
                        max_ops=spec.max_ops,
                        num_workers=spec.num_workers,
                        num_reconnecting=sum(h.is_reconnecting for h in handles),
                        target_rate_per_s=spec.target_rate_per_s,
                    )
                )
                next_tick = next_tick_ns(next_tick, tick_ns, now_ns)  # skip missed ticks
            if all(h.is_done for h in handles):
                return
            if self.stop.count:
                self.done_reason = "stopped"
                return
            self._check_liveness()
            if self.abort is not None:
                return
            if end_ns is not None and now_ns > end_ns + round(DURATION_BACKSTOP_S * NS_PER_S):
                return  # backstop: workers stop at the end time themselves; the drain waits

    def _drain(self) -> None:
        """After the stop: collect final deltas until every worker is done, dead or late."""
        clock, fleet = self.clock, self.fleet
        deadline_ns = clock.now_ns() + round(self.stop_timeout_s * NS_PER_S)
        started = [h for h in fleet.handles.values() if h.is_started]
        while clock.now_ns() < deadline_ns:
            if all(h.is_done or h.is_eof for h in started):
                break
            self._poll(0.05)
        self._poll(0.001)
        late = [h for h in started if not h.is_done]
        if not late or self.abort is not None:
            return
        if self.stop.count or not self.fleet.start_event.is_set():
            logger.warning(
                "worker %s did not stop within %.1f s; terminated",
                _ids(h.worker_id for h in late),
                self.stop_timeout_s,
            )
            return
        self._set_abort(liveness.late(late, self.stop_timeout_s))

    # -- messages and liveness -------------------------------------------------------------

    def _poll(self, timeout_s: float) -> None:
        """Handle what arrives within ``timeout_s`` (at least 1 ms), then what else is there."""
        now = self.clock.now_ns
        for worker_id, message in self.fleet.inbox.receive(max(timeout_s, 0.001)):
            h = self.fleet.handles.get(worker_id)
            if h is None:
                continue
            if message is None:
                h.is_eof = True
                continue
            self._handle(h, message, now())

    def _handle(self, h: WorkerHandle, msg: Any, now_ns: int) -> None:
        if getattr(msg, "protocol", None) != PROTOCOL_VERSION or msg.worker_id != h.worker_id:
            logger.warning("ignoring unexpected message %r", type(msg).__name__)
            return
        h.observe(msg, now_ns)
        totals = self.totals
        if isinstance(msg, StatsDelta):
            totals.total.merge(msg.stats)
            totals.last_t1_ns = max(totals.last_t1_ns, msg.t1_ns)
            self.series.add(msg)
            if self.metrics is not None:
                self.metrics.add(msg.stats)
        elif isinstance(msg, WorkerDone):
            self.series.worker_gone(msg.worker_id)
            if self.done_reason is None or msg.reason != "stopped":
                self.done_reason = msg.reason
        elif isinstance(msg, WorkerFailed):
            logger.debug("worker %d traceback:\n%s", msg.worker_id, msg.traceback_text)
            self.series.worker_gone(msg.worker_id)
            self._set_abort(
                abort_for(msg.worker_id, msg.error, is_started=self.fleet.start_event.is_set())
            )

    def _set_abort(self, abort: Abort) -> None:
        if self.abort is None:  # the first reason is the one reported
            self.abort = abort

    def _check_liveness(self) -> None:
        if self.abort is None:
            abort = liveness.check(
                self.fleet, self.clock.now_ns(), self.silence_timeout_s, self._poll
            )
            if abort is not None:
                self._set_abort(abort)

    # -- the summary -----------------------------------------------------------------------

    def _summary(self) -> RunSummary:
        return outcome.summary_of(
            self.spec,
            self.run_id,
            total=self.totals.total,
            elapsed_s=max(self.t_end_ns - self.t_start_ns, 0) / NS_PER_S,
            reason=outcome.stop_reason(self.abort, self.stop.count > 0, self.done_reason),
            is_aborted=self.abort is not None,
            settled=self.settled,
            claim=self.claim,
            phases=self.series.phase_figures(self.t_end_ns),
            markers=(self.markers_written, self.markers_failed),
        )


def _ids(ids: Any) -> str:
    return ", ".join(str(i) for i in ids)


def start_delay_s(num_workers: int) -> float:
    """Seconds from "all ``num_workers`` ready" to their common start time, 0.012 to 0.05: time
    for their wake-up from the start event (well under a millisecond each; they share cores)."""
    return min(START_DELAY_MAX_S, START_DELAY_BASE_S + START_DELAY_PER_WORKER_S * num_workers)


def run(spec: RunSpec, reporter: Reporter | None = None, **options: Any) -> RunSummary:
    """``Coordinator(spec, reporter, **options).run()`` (see ``Coordinator``)."""
    return Coordinator(spec, reporter, **options).run()


__all__ = [
    "Coordinator",
    "RunSpec",
    "StopFlag",
    "StreamAbortedError",
    "check_database",
    "check_ledger_path",
    "run",
]
