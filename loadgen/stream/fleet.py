"""The worker processes of one run: spawned in bounded waves, each with its own pipe, stopped
within a bounded time.

Workers are started with the spawn method (nothing forked), at most ``max_starting`` of them in
start-up (spawned but not yet ready) at any moment, so asking for many workers never starts
hundreds of interpreters at once and a stop request is honoured between any two starts. Each
gets the write end of its own pipe (``loadgen.stream.channel``) and a shared commit tally;
children inherit SIGINT ignored (the coordinator decides). ``shut_down`` asks every live worker
to stop at once (SIGTERM), waits one shared deadline, then kills what is left: its time does not
grow with the number of workers.

Coordinator's process, main thread (a worker's parent-death signal follows the thread that
spawned it).
"""

from __future__ import annotations

import dataclasses
import logging
import os
import pickle
import signal
from collections.abc import Callable
from dataclasses import dataclass, field
from multiprocessing.process import BaseProcess
from typing import Any

from loadgen.stream.channel import Inbox
from loadgen.stream.clock import NS_PER_S
from loadgen.stream.messages import (
    Heartbeat,
    Message,
    StatsDelta,
    WorkerDone,
    WorkerFailed,
    WorkerReady,
)
from loadgen.stream.spares import Spare, Spares, join_all, send_signal, spawn
from loadgen.stream.stats import IntervalStats
from loadgen.stream.tally import CommitTally, TallyLayout, shared_size
from loadgen.stream.worker_spec import WorkerSpec

logger = logging.getLogger(__name__)

BUSY_WARNING_S = 30.0  # log once when a worker's heartbeats say it is stuck in one call this long
TERMINATE_WAIT_S = 1.0  # after SIGTERM to the stragglers, before SIGKILL
KILL_WAIT_S = 1.0  # after SIGKILL, for the processes to be reaped

WorkerTarget = Callable[..., None]


@dataclass
class WorkerHandle:
    """The coordinator's view of one worker process."""

    worker_id: int
    process: BaseProcess
    tally: CommitTally | None = None  # its shared commit counts (read after it exited)
    started_ns: int = 0  # monotonic ns of its spawn (0: not started)
    is_ready: bool = False
    is_done: bool = False  # it said WorkerDone or WorkerFailed
    is_eof: bool = False  # its pipe reached EOF: the process exited or died
    last_seen_ns: int = 0  # monotonic ns of its last message
    is_reconnecting: bool = False
    backend_pid: int = 0
    is_busy_warned: bool = False  # logged that it was busy in one call for long
    received: IntervalStats = field(default_factory=IntervalStats)  # its deltas, summed

    def observe(self, msg: Message, now_ns: int) -> None:
        """Update this view from one of the worker's messages (run-wide totals are the
        coordinator's)."""
        self.last_seen_ns = now_ns
        if isinstance(msg, StatsDelta):
            self.received.merge(msg.stats)
            self.is_reconnecting = msg.is_reconnecting
            self.backend_pid = msg.backend_pid or self.backend_pid
        elif isinstance(msg, Heartbeat):
            if msg.busy_for_ns > BUSY_WARNING_S * NS_PER_S and not self.is_busy_warned:
                self.is_busy_warned = True  # once per run: a long lock wait is worth one line
                logger.warning(
                    "worker %d busy in one call for %.0f s (alive)",
                    msg.worker_id,
                    msg.busy_for_ns / NS_PER_S,
                )
        elif isinstance(msg, WorkerReady):
            self.is_ready = True
            self.backend_pid = msg.backend_pid
        elif isinstance(msg, WorkerDone | WorkerFailed):
            self.is_done = True
            if isinstance(msg, WorkerDone):
                logger.debug("worker %d done (%s): %d ops", msg.worker_id, msg.reason, msg.num_ops)

    @property
    def is_started(self) -> bool:
        return self.started_ns > 0

    @property
    def is_starting(self) -> bool:
        return self.is_started and not self.is_ready and not self.is_eof and not self.is_done


class Fleet:
    """Spawns and stops the workers of one run; owns their pipes (``inbox``) and events.

    ``spares`` (``loadgen.stream.spares``, engine workers only): processes already spawned,
    bound to the first workers planned; the fleet shares their events and reaps them.
    """

    def __init__(
        self, target: WorkerTarget, layout: TallyLayout | None, spares: Spares | None = None
    ) -> None:
        self.spares = spares if spares is not None else Spares()
        self.ctx = self.spares.ctx
        self.target = target
        self.layout = layout
        self.inbox = Inbox()
        self.handles: dict[int, WorkerHandle] = {}
        self.stop_event = self.spares.stop_event
        self.start_event = self.spares.start_event
        self.start_at_ns: Any = self.spares.start_at_ns
        self._specs: dict[int, WorkerSpec] = {}
        self._bound: dict[int, Spare] = {}  # worker id -> its spare, until started

    def add(self, spec: WorkerSpec) -> WorkerHandle:
        """Plan one worker (not started yet): its shared tally and its process object (a
        waiting spare's, when there is one)."""
        layout = self.layout
        spare = self.spares.take(shared_size(layout)) if layout is not None else None
        if spare is not None:
            shared = spare.tally
            process = spare.process
            self._bound[spec.worker_id] = spare
        else:
            shared = self.ctx.RawArray("q", shared_size(layout)) if layout is not None else None
            process = self.ctx.Process(target=self.target, name=f"loadgen-worker-{spec.worker_id}")
        spec = dataclasses.replace(spec, tally_layout=layout, tally=shared, parent_pid=os.getpid())
        handle = WorkerHandle(
            spec.worker_id,
            process,
            tally=None if shared is None or layout is None else CommitTally(layout, shared),
        )
        self._specs[spec.worker_id] = spec
        self.handles[spec.worker_id] = handle
        return handle

    def num_starting(self) -> int:
        return sum(h.is_starting for h in self.handles.values())

    def start(self, handle: WorkerHandle, now_ns: int) -> None:
        """Spawn ``handle``'s process with its pipe; SIGINT ignored in the child. A spare's
        process is started by sending it its spec (it was spawned long before)."""
        spec = self._specs[handle.worker_id]
        spare = self._bound.pop(handle.worker_id, None)
        if spare is not None:
            reader = spare.reader
            try:
                sent = dataclasses.replace(spec, tally=None)  # shared memory: passed at its spawn
                spare.spec_writer.send_bytes(pickle.dumps(sent, protocol=pickle.HIGHEST_PROTOCOL))
            except OSError:  # the spare died meanwhile: its EOF makes it a dead worker
                logger.debug("worker %d: its spare is gone", handle.worker_id)
            finally:
                spare.spec_writer.close()
        else:
            reader, writer = self.ctx.Pipe(duplex=False)
            process = self.ctx.Process(
                target=self.target,
                name=f"loadgen-worker-{spec.worker_id}",
                args=(spec, writer, self.stop_event, self.start_event, self.start_at_ns),
                daemon=True,
            )
            handle.process = process
            try:
                spawn(process)
            finally:
                writer.close()  # the child holds the only write end: its death is EOF here
        handle.started_ns = handle.last_seen_ns = now_ns
        self.inbox.add(handle.worker_id, reader)

    def alive(self) -> list[WorkerHandle]:
        return [h for h in self.handles.values() if h.is_started and h.process.is_alive()]

    def shut_down(self) -> list[int]:
        """End every worker process: SIGTERM to the live ones, one shared wait, SIGKILL to the
        rest, reap. Returns the ids that had to be killed. Bounded by about 2 s in all."""
        self.stop_event.set()
        alive = self.alive()
        # spares never started as a worker (no spec, nothing held): killed, reaped with the rest
        idle = self.spares.release()
        for spare in self._bound.values():
            spare.spec_writer.close()
            spare.reader.close()
            idle.append(spare.process)
        self._bound.clear()
        for h in alive:
            send_signal(h.process, signal.SIGTERM)
        for process in idle:  # no spec, no connection, nothing to finish
            send_signal(process, signal.SIGKILL)
        join_all([h.process for h in alive] + idle, TERMINATE_WAIT_S)
        killed = [h for h in alive if h.process.is_alive()]
        for h in killed:
            send_signal(h.process, signal.SIGKILL)
        join_all([h.process for h in killed], KILL_WAIT_S)
        for h in self.handles.values():
            if h.is_started and not h.process.is_alive():
                h.process.join(0)
        self.inbox.close()
        return [h.worker_id for h in killed]
