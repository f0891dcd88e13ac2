"""Coordinator: plan the run, spawn the workers, merge their deltas, watch them, shut down.

Runs in the CLI's process and main thread. It owns the clock (the shared start time), the
progress display, liveness checks and the summary. Workers are started with the spawn method
(nothing forked), each gets its share of the rate and of ``--max-ops`` and an independent RNG
stream from ``SeedSequence(seed).spawn(n)``. Deltas are attributed to the tick in which they
arrive, so interval edges can be off by up to one report interval.
"""

from __future__ import annotations

import dataclasses
import logging
import math
import multiprocessing
import os
import queue as queue_mod
import secrets
import signal
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from types import FrameType
from typing import Any

import numpy as np

from loadgen import db
from loadgen.config import StreamConfig
from loadgen.errors import ConfigError, RunAbortedError, SchemaMissingError
from loadgen.stream import settle
from loadgen.stream.clock import NS_PER_S, SystemClock
from loadgen.stream.messages import (
    PROTOCOL_VERSION,
    Heartbeat,
    StatsDelta,
    WorkerDone,
    WorkerFailed,
    WorkerReady,
)
from loadgen.stream.ownership import Claim, RunOwnership
from loadgen.stream.report import NullReporter, Progress, Reporter, RunSummary
from loadgen.stream.stats import IntervalStats
from loadgen.stream.tally import CommitTally, TallyLayout, shared_size
from loadgen.stream.worker import WorkerSpec, run_worker

logger = logging.getLogger(__name__)

START_DELAY_S = 0.05  # between "all ready" and the common start time
START_TIMEOUT_S = 120.0  # for every worker to connect and prepare its workload
STOP_TIMEOUT_S = 4.0  # after a stop request, before stragglers are terminated (exit < 5 s)
MIN_SILENCE_TIMEOUT_S = 15.0  # a worker silent this long (or 10 report intervals) is stuck
BUSY_WARNING_S = 30.0  # log once when a worker's heartbeats say it is stuck in one call this long
BURST_WINDOW_S = 1.0  # default token-bucket capacity: one second of operations per worker

WorkerTarget = Callable[..., None]
STOP_SIGNALS = (signal.SIGINT, signal.SIGTERM)


class StopFlag:
    """SIGINT/SIGTERM as a counted stop request; the CLI installs it as early as it can.

    A process started in the background by a shell inherits SIGINT ignored, and SIGTERM's default
    kills without a summary, so the handlers go in before anything slow (the database check,
    spawning workers, the start barrier) and every wait in ``run`` looks at ``count``.
    """

    def __init__(self) -> None:
        self.count = 0  # stop requests received
        self.on_request: Callable[[], None] | None = None  # called in the handler (set an Event)
        self._old_handlers: dict[int, Any] = {}

    @property
    def is_installed(self) -> bool:
        return bool(self._old_handlers)

    def install(self) -> None:
        """Handle SIGINT and SIGTERM from now on (main thread only); idempotent."""
        for sig in STOP_SIGNALS:
            old = signal.signal(sig, self._on_signal)
            self._old_handlers.setdefault(sig, old)

    def restore(self) -> None:
        """Put back the handlers that were there before ``install``."""
        for sig, handler in self._old_handlers.items():
            signal.signal(sig, handler)
        self._old_handlers.clear()

    def _on_signal(self, signum: int, frame: FrameType | None) -> None:
        self.count += 1
        if self.on_request is not None:
            self.on_request()


@dataclass(frozen=True)
class RunSpec:
    """A validated plan for one stream run (from ``StreamConfig`` and the DSN)."""

    dsn: str
    num_workers: int
    rate_per_s: float | None  # total over all workers; None = unlimited or paced
    is_paced: bool  # no --rate: the original's pace (interval_s + jitter)
    arrivals: str  # token-bucket | poisson | uniform
    burst: int | None  # token-bucket capacity, total over workers; None = default
    duration_s: float | None
    max_ops: int | None
    batch_size: int
    mix: dict[str, float]
    seed: int
    report_interval_s: float
    interval_s: float
    max_jitter_ms: int
    fail_fast_on_critical: bool = False
    ledger: str | None = None
    ledger_fsync: bool = True  # fdatasync each intent before COMMIT (docs/ledger.md)
    reconnect_timeout_s: float = 60.0
    profile: str = "default"  # loadgen.stream.profiles.PROFILES
    scenarios: tuple[str, ...] = ()  # scenarios mixed in (cdc-edge); empty = none
    scenario_every_ops: int = 0  # one slot in this many is a scenario step (0 = none)
    scenario_max_gap_s: float | None = None  # and at least one per worker this often, s

    @classmethod
    def from_settings(cls, stream: StreamConfig, dsn: str) -> RunSpec:
        """A plan from the ``[stream]`` settings. Raises ConfigError (exit 2).

        ``stream`` comes from ``config.load``, the one place that validates settings: ranges
        and choices are checked and rate, duration and mix are already parsed; only the
        profile's scenario choice is resolved here.
        """
        from loadgen.ops.mix import default_mix
        from loadgen.stream import profiles

        rate_per_s = stream.rate.per_s if stream.rate is not None else None
        if stream.ledger:
            try:
                import loadgen.ledger  # noqa: F401
            except ImportError:
                raise ConfigError(
                    "--ledger: the ledger module is not available in this build"
                ) from None
        seed = stream.seed if stream.seed is not None else secrets.randbits(63)
        profile = profiles.get(stream.profile)
        scenarios: tuple[str, ...] = ()
        if profile.scenario_weight > 0 or stream.scenarios is not None:
            from loadgen.scenarios import SCENARIOS

            scenarios = profiles.resolve_scenarios(profile, stream.scenarios, list(SCENARIOS))
        if stream.scenario_weight is not None and not scenarios:
            raise ConfigError(
                f"--scenario-weight: profile {profile.name!r} mixes no scenarios "
                "in; use --profile cdc-edge"
            )
        weight = (
            stream.scenario_weight
            if stream.scenario_weight is not None
            else profile.scenario_weight
        )
        return cls(
            dsn=dsn,
            num_workers=stream.workers,
            rate_per_s=rate_per_s,
            is_paced=stream.rate is None,
            arrivals=stream.arrivals,
            burst=stream.burst,
            duration_s=stream.duration,
            max_ops=stream.max_ops,
            batch_size=stream.batch_size,
            mix=dict(stream.mix.weights) if stream.mix is not None else default_mix(),
            seed=seed,
            report_interval_s=stream.report_interval_s,
            interval_s=stream.interval_s,
            max_jitter_ms=stream.max_jitter_ms,
            fail_fast_on_critical=stream.fail_fast_on_critical,
            ledger=stream.ledger,
            profile=profile.name,
            scenarios=scenarios,
            scenario_every_ops=profiles.every_ops(weight) if scenarios else 0,
            scenario_max_gap_s=profile.scenario_max_gap_s if scenarios else None,
        )

    @property
    def target_rate_per_s(self) -> float | None:
        """Operations per second asked for (None when unlimited)."""
        if self.is_paced:
            return 1.0 / self.interval_s if self.interval_s > 0 else None
        return self.rate_per_s

    def worker_specs(self) -> list[WorkerSpec]:
        """Split rate, burst and max-ops across workers; the shares add up exactly.

        Under a rate, worker ``i``'s first token comes at ``i / rate`` (a phase), so the run's
        tokens interleave at the total rate from the start: at ``1/h`` one operation happens in
        the first hour, not one per worker at t=0.
        """
        n = self.num_workers
        children = np.random.SeedSequence(self.seed).spawn(n)
        per_worker_rate = None if self.rate_per_s is None else self.rate_per_s / n
        if self.burst is not None:
            burst = max(1, math.ceil(self.burst / n))
        else:
            burst = max(self.batch_size, math.ceil((per_worker_rate or 0) * BURST_WINDOW_S))
        if self.is_paced:
            arrivals = "pace" if self.interval_s > 0 else "closed"
        else:
            arrivals = "closed" if self.rate_per_s is None else self.arrivals
        specs = []
        for i in range(n):
            share = None
            if self.max_ops is not None:
                share = self.max_ops // n + (1 if i < self.max_ops % n else 0)
            specs.append(
                WorkerSpec(
                    worker_id=i,
                    num_workers=n,
                    dsn=self.dsn,
                    seed_seq=children[i],
                    mix=self.mix,
                    arrivals=arrivals,
                    rate_per_s=per_worker_rate,
                    burst=burst,
                    interval_s=self.interval_s,
                    max_jitter_ms=self.max_jitter_ms,
                    duration_s=self.duration_s,
                    max_ops=share,
                    batch_size=self.batch_size,
                    report_interval_s=self.report_interval_s,
                    fail_fast_on_critical=self.fail_fast_on_critical,
                    ledger=self.ledger,
                    ledger_fsync=self.ledger_fsync,
                    reconnect_timeout_s=self.reconnect_timeout_s,
                    scenarios=self.scenarios,
                    scenario_every_ops=self.scenario_every_ops,
                    scenario_max_gap_s=self.scenario_max_gap_s,
                    phase_s=0.0
                    if self.rate_per_s is None or self.is_paced
                    else i / self.rate_per_s,
                )
            )
        return specs


def check_ledger_path(path: str, num_workers: int = 1, run_id: str = "") -> None:
    """Fail before spawning when the ledger's directory cannot be created or written, or a
    part file a worker will append to exists as something else than a writable file.

    Creates the directory (the workers would); writes nothing in it.

    Raises:
        ConfigError: naming ``--ledger``, the path and the OS error (exit 2).
    """
    from loadgen.ledger import part_path

    for worker_id in range(num_workers):
        part = Path(part_path(path, worker_id, run_id))
        if part.exists() and not part.is_file():
            raise ConfigError(f"--ledger {path!r}: {part} exists and is not a regular file")
        if part.is_file() and not os.access(part, os.W_OK):
            raise ConfigError(f"--ledger {path!r}: {part} is not writable")
    directory = Path(part_path(path, 0)).parent
    try:
        directory.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise ConfigError(
            f"--ledger {path!r}: cannot create {directory}: {exc.strerror or exc}"
        ) from None
    if not os.access(directory, os.W_OK | os.X_OK):
        raise ConfigError(f"--ledger {path!r}: directory {directory} is not writable")


def check_database(dsn: str) -> None:
    """Fail fast before spawning: server reachable, tables present with every column the
    workload writes, and seeded.

    Raises:
        DatabaseUnavailableError: no server after retries (exit 3).
        SchemaMissingError: tables missing or empty, with "run `loadgen init` and
            `loadgen seed` first" (exit 3).
    """
    with db.connect(dsn, autocommit=True) as conn:
        try:
            db.require_schema(conn, need_rows=True, need_columns=True)
        except SchemaMissingError as exc:
            text = str(exc)
            if "loadgen init" not in text:
                text = text.split(";")[0] + "; run `loadgen init` and `loadgen seed` first"
            raise SchemaMissingError(text) from None


@dataclass
class _WorkerState:
    process: Any  # multiprocessing Process
    is_ready: bool = False
    is_done: bool = False
    last_seen_ns: int = 0  # monotonic ns of the last message
    is_reconnecting: bool = False
    backend_pid: int = 0
    is_busy_warned: bool = False  # logged that it was busy in one call for long
    received: IntervalStats = field(default_factory=IntervalStats)  # its deltas, summed
    tally: CommitTally | None = None  # its shared commit counts (read after it exited)


@dataclass
class _Run:
    """Mutable state of one run inside ``run``; reset never (one per run)."""

    total: IntervalStats = field(default_factory=IntervalStats)
    interval: IntervalStats = field(default_factory=IntervalStats)
    stop: StopFlag = field(default_factory=StopFlag)  # SIGINT/SIGTERM received
    abort_reason: str | None = None
    abort_error_type: str | None = None
    stop_reason: str | None = None
    last_t1_ns: int = 0  # latest interval end of any delta: when the last worker finished
    t_start_ns: int = 0  # the common start time (or when the run gave up before it)
    t_end_ns: int = 0
    messages: Any = None  # the workers' queue, once created
    run_id: str = ""  # in the ledger part names and the summary
    claim: Claim | None = None  # what this run owns (loadgen.stream.ownership)
    layout: TallyLayout | None = None  # the workers' shared tallies
    settled: settle.Settled | None = None  # what the end-of-run reconciliation found


def run(
    spec: RunSpec,
    reporter: Reporter | None = None,
    *,
    worker_target: WorkerTarget = run_worker,
    should_check_database: bool = True,
    silence_timeout_s: float | None = None,
    start_timeout_s: float = START_TIMEOUT_S,
    stop_timeout_s: float = STOP_TIMEOUT_S,
    stop: StopFlag | None = None,
) -> RunSummary:
    """Run the stream to its end (duration, max-ops or a signal) and return the summary.

    Blocks; call from the main thread. SIGINT/SIGTERM stop the run at any stage: pass ``stop``
    already installed (the CLI does, first thing) or ``run`` installs one for its duration.
    Workers are spawned with SIGINT ignored, so a terminal's Ctrl-C reaches only this process's
    decision.

    Raises:
        ConfigError: the ledger directory cannot be created or written (exit 2), before any
            worker starts.
        SchemaMissingError, DatabaseUnavailableError: before any worker starts (exit 3).
        RunAbortedError: a worker died, went silent or failed; ``.summary`` holds the partial
            summary (exit 4).
    """
    reporter = reporter or NullReporter()
    state = _Run(stop=stop if stop is not None else StopFlag(), run_id=secrets.token_hex(4))
    if worker_target is run_worker:  # the engine's workers keep a shared commit tally
        state.layout = settle.layout_for(spec.scenarios)
    ownership: RunOwnership | None = None
    owns_handlers = not state.stop.is_installed
    state.stop.install()
    clock = SystemClock()
    t_start_ns = t_end_ns = clock.now_ns()
    workers: dict[int, _WorkerState] = {}
    try:
        if spec.ledger:
            check_ledger_path(spec.ledger, spec.num_workers, state.run_id)
        if should_check_database and not state.stop.count:
            check_database(spec.dsn)
            ownership = RunOwnership(spec.dsn)
            state.claim = ownership.acquire()
        if not state.stop.count:
            _start_workers(
                spec,
                workers,
                worker_target,
                clock,
                state,
                silence_timeout_s,
                start_timeout_s,
                stop_timeout_s,
                reporter,
            )
            t_start_ns, t_end_ns = state.t_start_ns, state.t_end_ns
    finally:
        state.stop.on_request = None
        if owns_handlers:
            state.stop.restore()
        if state.messages is not None:
            _shut_down(workers, state.messages)
        try:  # every worker is gone: count what their lost reports missed, resolve intents
            state.settled = settle.settle(
                workers, state.total, state.layout, ownership, spec.ledger, state.run_id
            )
        finally:
            if ownership is not None:
                ownership.close()
    summary = RunSummary(
        total=state.total,
        elapsed_s=max(t_end_ns - t_start_ns, 0) / NS_PER_S,
        num_workers=spec.num_workers,
        target_rate_per_s=spec.target_rate_per_s,
        seed=spec.seed,
        stop_reason=_stop_reason(state),
        profile=spec.profile,
        has_scenarios=bool(spec.scenarios),
        ledger=spec.ledger,
        is_aborted=state.abort_reason is not None,
        run_id=state.run_id,
        settled=state.settled,
        owns_existing_rows=None if state.claim is None else state.claim.is_primary,
    )
    if state.abort_reason is not None:
        if state.abort_error_type == "SchemaMissingError":
            raise SchemaMissingError(state.abort_reason)
        error = RunAbortedError(f"run aborted: {state.abort_reason}")
        error.summary = summary  # type: ignore[attr-defined]
        raise error
    return summary


def _stop_reason(state: _Run) -> str:
    """Why the run ended: duration, max_ops, signal, worker_failed, ledger_write_failed,
    start_failed."""
    if state.abort_reason is not None:
        if state.abort_error_type == "LedgerWriteError":
            return "ledger_write_failed"
        if " not ready after " in state.abort_reason:
            return "start_failed"
        return "worker_failed"
    if state.stop.count:
        return "signal"
    if state.stop_reason == "max-ops":
        return "max_ops"
    if state.stop_reason == "duration":
        return "duration"
    # "stopped" without a signal: the coordinator's backstop after --duration stopped them
    return "duration" if state.stop_reason == "stopped" else (state.stop_reason or "signal")


def _start_workers(
    spec: RunSpec,
    workers: dict[int, _WorkerState],
    worker_target: WorkerTarget,
    clock: SystemClock,
    state: _Run,
    silence_timeout_s: float | None,
    start_timeout_s: float,
    stop_timeout_s: float,
    reporter: Reporter,
) -> None:
    """Spawn the workers into ``workers`` and run them to the end (queue in ``state``)."""
    if silence_timeout_s is None:
        silence_timeout_s = max(MIN_SILENCE_TIMEOUT_S, 10 * spec.report_interval_s)
    ctx = multiprocessing.get_context("spawn")
    messages = state.messages = ctx.Queue()
    stop_event, start_event = ctx.Event(), ctx.Event()
    start_at_ns = ctx.Value("q", 0)
    state.stop.on_request = stop_event.set
    if state.stop.count:
        stop_event.set()
    layout = state.layout
    for ws in spec.worker_specs():
        shared = ctx.RawArray("q", shared_size(layout)) if layout is not None else None
        ws = dataclasses.replace(
            ws,
            run_id=state.run_id,
            owned_max_ids=None if state.claim is None else state.claim.owned_max_ids,
            tally_layout=layout,
            tally=shared,
        )
        workers[ws.worker_id] = _WorkerState(
            ctx.Process(
                target=worker_target,
                name=f"loadgen-worker-{ws.worker_id}",
                args=(ws, messages, stop_event, start_event, start_at_ns),
                daemon=True,
            ),
            tally=None if shared is None or layout is None else CommitTally(layout, shared),
        )
    t_start_ns = clock.now_ns()
    # Children inherit SIG_IGN through exec (a caught signal would be reset to Python's default,
    # KeyboardInterrupt, during their imports); SIGINT is held pending meanwhile, not lost.
    signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGINT})
    handler = signal.signal(signal.SIGINT, signal.SIG_IGN)
    try:
        for w in workers.values():
            w.process.start()
            w.last_seen_ns = clock.now_ns()
    finally:
        signal.signal(signal.SIGINT, handler)
        signal.pthread_sigmask(signal.SIG_UNBLOCK, {signal.SIGINT})
    _wait_ready(workers, messages, state, clock, start_timeout_s)
    if state.abort_reason is None and not state.stop.count:
        t_start_ns = clock.now_ns() + round(START_DELAY_S * NS_PER_S)
        start_at_ns.value = t_start_ns
        start_event.set()
        reporter.start()
        try:
            _main_loop(
                spec,
                workers,
                messages,
                state,
                clock,
                reporter,
                t_start_ns,
                silence_timeout_s,
                stop_event,
            )
        finally:
            reporter.stop()
    else:
        t_start_ns = clock.now_ns()
    t_end_ns = clock.now_ns()
    stop_event.set()
    _drain_until_done(workers, messages, state, clock, stop_timeout_s)
    if state.last_t1_ns > t_start_ns and state.abort_reason is None:
        # the workers' own end (their final deltas), not when this loop noticed it
        t_end_ns = state.last_t1_ns
    state.t_start_ns, state.t_end_ns = t_start_ns, t_end_ns


def _handle(msg: Any, workers: dict[int, _WorkerState], state: _Run, now_ns: int) -> None:
    w = workers.get(getattr(msg, "worker_id", -1))
    if w is None or getattr(msg, "protocol", None) != PROTOCOL_VERSION:
        logger.warning("ignoring unexpected message %r", type(msg).__name__)
        return
    w.last_seen_ns = now_ns
    if isinstance(msg, StatsDelta):
        state.total.merge(msg.stats)
        state.interval.merge(msg.stats)
        w.received.merge(msg.stats)
        state.last_t1_ns = max(state.last_t1_ns, msg.t1_ns)
        w.is_reconnecting = msg.is_reconnecting
        w.backend_pid = msg.backend_pid or w.backend_pid
    elif isinstance(msg, Heartbeat):
        if msg.busy_for_ns > BUSY_WARNING_S * NS_PER_S and not w.is_busy_warned:
            w.is_busy_warned = True  # once per run: a long lock wait is worth one line
            logger.warning(
                "worker %d busy in one call for %.0f s (alive)",
                msg.worker_id,
                msg.busy_for_ns / NS_PER_S,
            )
    elif isinstance(msg, WorkerReady):
        w.is_ready = True
        w.backend_pid = msg.backend_pid
    elif isinstance(msg, WorkerDone):
        w.is_done = True
        if state.stop_reason is None or msg.reason != "stopped":
            state.stop_reason = msg.reason
        if msg.num_ops != 0:
            logger.debug("worker %d done (%s): %d ops", msg.worker_id, msg.reason, msg.num_ops)
    elif isinstance(msg, WorkerFailed):
        w.is_done = True
        logger.debug("worker %d traceback:\n%s", msg.worker_id, msg.traceback_text)
        if state.abort_reason is None:
            state.abort_reason = (
                f"worker {msg.worker_id}: {msg.message}"  # names the ledger part, says what held
                if msg.error_type == "LedgerWriteError"
                else f"worker {msg.worker_id} failed: {msg.error_type}: {msg.message}"
            )
            state.abort_error_type = msg.error_type


def _poll(
    messages: Any,
    workers: dict[int, _WorkerState],
    state: _Run,
    clock: SystemClock,
    timeout_s: float,
) -> None:
    """Handle one message (waiting up to ``timeout_s``), then whatever else is queued."""
    try:
        _handle(messages.get(timeout=max(timeout_s, 0.001)), workers, state, clock.now_ns())
        while True:
            _handle(messages.get_nowait(), workers, state, clock.now_ns())
    except queue_mod.Empty:
        pass


def _check_liveness(
    workers: dict[int, _WorkerState],
    messages: Any,
    state: _Run,
    clock: SystemClock,
    silence_timeout_s: float,
) -> None:
    for worker_id, w in workers.items():
        if w.is_done or state.abort_reason is not None:
            continue
        if not w.process.is_alive():
            _poll(messages, workers, state, clock, 0.5)  # its last words may still be queued
            if not w.is_done and state.abort_reason is None:
                state.abort_reason = f"worker {worker_id} died (exit code {w.process.exitcode})"
        elif (clock.now_ns() - w.last_seen_ns) / NS_PER_S > silence_timeout_s:
            state.abort_reason = f"worker {worker_id} silent for more than {silence_timeout_s:g} s"


def _wait_ready(
    workers: dict[int, _WorkerState],
    messages: Any,
    state: _Run,
    clock: SystemClock,
    start_timeout_s: float,
) -> None:
    deadline_ns = clock.now_ns() + round(start_timeout_s * NS_PER_S)
    while not all(w.is_ready for w in workers.values()):
        _poll(messages, workers, state, clock, 0.1)
        for w in workers.values():
            w.last_seen_ns = max(w.last_seen_ns, clock.now_ns() - 1)  # not silent while starting
        _check_liveness(workers, messages, state, clock, start_timeout_s)
        if state.abort_reason is not None or state.stop.count:
            return
        if clock.now_ns() > deadline_ns:
            late = [str(i) for i, w in workers.items() if not w.is_ready]
            state.abort_reason = f"worker {', '.join(late)} not ready after {start_timeout_s:g} s"
            return


def _main_loop(
    spec: RunSpec,
    workers: dict[int, _WorkerState],
    messages: Any,
    state: _Run,
    clock: SystemClock,
    reporter: Reporter,
    t_start_ns: int,
    silence_timeout_s: float,
    stop_event: Any,
) -> None:
    tick_ns = round(spec.report_interval_s * NS_PER_S)
    next_tick_ns = t_start_ns + tick_ns
    last_tick_ns = t_start_ns
    end_ns = t_start_ns + round(spec.duration_s * NS_PER_S) if spec.duration_s else None
    for w in workers.values():
        w.last_seen_ns = t_start_ns
    while True:
        now_ns = clock.now_ns()
        _poll(messages, workers, state, clock, min((next_tick_ns - now_ns) / NS_PER_S, 0.2))
        now_ns = clock.now_ns()
        if now_ns >= next_tick_ns:
            reporter.progress(
                Progress(
                    elapsed_s=(now_ns - t_start_ns) / NS_PER_S,
                    interval_s=(now_ns - last_tick_ns) / NS_PER_S,
                    interval=state.interval,
                    total=state.total,
                    remaining_s=None if end_ns is None else max(end_ns - now_ns, 0) / NS_PER_S,
                    max_ops=spec.max_ops,
                    num_workers=spec.num_workers,
                    num_reconnecting=sum(w.is_reconnecting for w in workers.values()),
                    target_rate_per_s=spec.target_rate_per_s,
                )
            )
            state.interval = IntervalStats()
            last_tick_ns = now_ns
            while next_tick_ns <= now_ns:  # skip ticks we were too busy for (pgbench)
                next_tick_ns += tick_ns
        if all(w.is_done for w in workers.values()):
            return
        if state.stop.count:
            state.stop_reason = "stopped"
            return
        _check_liveness(workers, messages, state, clock, silence_timeout_s)
        if state.abort_reason is not None:
            return
        if end_ns is not None and now_ns > end_ns + round(2 * NS_PER_S):
            stop_event.set()  # backstop: workers stop at the end time themselves


def _drain_until_done(
    workers: dict[int, _WorkerState],
    messages: Any,
    state: _Run,
    clock: SystemClock,
    stop_timeout_s: float,
) -> None:
    """After the stop: collect final deltas until every worker is done, dead or late."""
    deadline_ns = clock.now_ns() + round(stop_timeout_s * NS_PER_S)
    while clock.now_ns() < deadline_ns:
        pending = [w for w in workers.values() if not w.is_done and w.process.is_alive()]
        if not pending:
            break
        _poll(messages, workers, state, clock, 0.05)
    _poll(messages, workers, state, clock, 0.001)
    late = [i for i, w in workers.items() if not w.is_done]
    if late and state.abort_reason is None:
        if state.stop.count:
            logger.warning(
                "worker %s did not stop within %.1f s; terminated",
                ", ".join(map(str, late)),
                stop_timeout_s,
            )
        else:
            dead = [i for i in late if not workers[i].process.is_alive()]
            state.abort_reason = f"worker {', '.join(map(str, late))} " + (
                f"died (exit code {workers[dead[0]].process.exitcode})"
                if dead
                else f"did not finish within {stop_timeout_s:g} s of the end"
            )


def _shut_down(workers: dict[int, _WorkerState], messages: Any) -> None:
    for w in workers.values():
        if w.process.is_alive():
            w.process.join(timeout=0.5)
        if w.process.is_alive():
            w.process.terminate()
            w.process.join(timeout=1.0)
        if w.process.is_alive():
            w.process.kill()
            w.process.join(timeout=1.0)
    messages.close()
    messages.cancel_join_thread()


__all__ = ["RunSpec", "StopFlag", "check_database", "check_ledger_path", "run"]
