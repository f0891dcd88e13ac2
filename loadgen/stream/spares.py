"""Worker processes spawned before the run is planned: their imports overlap the coordinator's.

``loadgen stream`` starts a few *spares* as the command begins, before it imports its settings,
psycopg, numpy and the coordinator (most of half a second): each spare imports the worker's
modules (numpy, psycopg, the operations, the data vocabulary) on the other core meanwhile, then
waits for its ``WorkerSpec``. When the coordinator plans its workers (``Fleet.add``) it binds
spares to the first ones and starts each by sending its spec down the spare's own pipe
(``Fleet.start``); the worker then runs exactly as a freshly spawned one (``run_worker``).
Spares nobody needs (fewer workers than guessed, bad input, a stop) are killed and reaped
(``Spares.close``, or with the fleet's bounded shutdown): without a spec they hold nothing.

A spare is a worker in every respect that matters for stopping: spawned (nothing inherited),
SIGINT ignored, SIGTERM a stop, the coordinator's death a SIGTERM (``prctl(PR_SET_PDEATHSIG)``)
or EOF on its spec pipe — so no spare outlives the coordinator, even while it waits.

Standard library only (``multiprocessing``): importing this module costs nothing that would
delay the spawn. Coordinator's process, main thread.
"""

from __future__ import annotations

import contextlib
import multiprocessing
import os
import signal
import time
from multiprocessing.connection import Connection
from multiprocessing.context import SpawnContext
from multiprocessing.process import BaseProcess
from typing import Any

from loadgen.stream.worker_entry import run_spare

TALLY_SLOTS = 4096  # int64s of a spare's shared tally: any run's layout fits (~250 used)
GUESS_WORKERS = 2  # spares when --workers is not on the command line (the [stream] default)


def spare_count(workers: int | None, max_ops: int | None) -> int:
    """Spares worth spawning for a run given ``--workers``/``--max-ops`` on the command line
    (None: not given there; the settings may still set them, so the guess is the default):
    no more than the workers with a share of ``--max-ops`` (the others are never spawned,
    ``Coordinator._run_workers``), nor than can start at once, and none for a value the run
    will refuse (below 1)."""
    count = GUESS_WORKERS if workers is None else workers
    if max_ops is not None:
        count = min(count, max_ops)
    return max(min(count, default_max_starting()), 0)


def default_max_starting() -> int:
    """Workers in start-up at once: two per CPU core this process may use, at least 4."""
    try:
        cores = len(os.sched_getaffinity(0))
    except (AttributeError, OSError):
        cores = os.cpu_count() or 1
    return max(4, 2 * cores)


class Spare:
    """One waiting worker process and the coordinator's ends of its two pipes. (A plain class:
    ``dataclasses`` imports ``inspect``, ~20 ms before the first spawn.)"""

    __slots__ = ("process", "reader", "spec_writer", "tally")

    def __init__(
        self, process: BaseProcess, reader: Connection, spec_writer: Connection, tally: Any
    ) -> None:
        self.process = process
        self.reader = reader  # its messages (the coordinator's ``Inbox``)
        self.spec_writer = spec_writer  # its ``WorkerSpec``, sent once; closing it unsent = "exit"
        self.tally = tally  # RawArray('q', TALLY_SLOTS): its shared commit tally once bound


def spawn(process: BaseProcess) -> None:
    """Start ``process`` (spawn method) with SIGINT ignored in the child.

    Children inherit SIG_IGN through exec (a caught signal would be reset to Python's default,
    KeyboardInterrupt, during their imports); SIGINT is held pending here meanwhile.
    """
    signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGINT})
    old = signal.signal(signal.SIGINT, signal.SIG_IGN)
    try:
        process.start()
    finally:
        signal.signal(signal.SIGINT, old)
        signal.pthread_sigmask(signal.SIG_UNBLOCK, {signal.SIGINT})


class Spares:
    """The spares of one run and the events every worker of the run shares (the fleet's)."""

    def __init__(self) -> None:
        self.ctx: SpawnContext = multiprocessing.get_context("spawn")
        self.stop_event = self.ctx.Event()
        self.start_event = self.ctx.Event()
        self.start_at_ns: Any = self.ctx.Value("q", 0)
        self.waiting: list[Spare] = []  # started, not bound to a worker yet
        self.bound: list[Spare] = []  # handed to the fleet (it starts them)

    def start(self, count: int) -> Spares:
        """Spawn ``count`` spares (none for ``count <= 0``). Returns self."""
        for _ in range(max(count, 0)):
            reader, writer = self.ctx.Pipe(duplex=False)
            spec_reader, spec_writer = self.ctx.Pipe(duplex=False)
            tally = self.ctx.RawArray("q", TALLY_SLOTS)
            process = self.ctx.Process(
                target=run_spare,
                name="loadgen-worker-spare",
                args=(
                    writer,
                    spec_reader,
                    self.stop_event,
                    self.start_event,
                    self.start_at_ns,
                    tally,
                    os.getpid(),
                ),
                daemon=True,
            )
            try:
                spawn(process)
            finally:  # the child holds the only other ends: its death is EOF here, and ours there
                writer.close()
                spec_reader.close()
            self.waiting.append(Spare(process, reader, spec_writer, tally))
        return self

    def take(self, tally_slots: int) -> Spare | None:
        """A waiting spare for a worker whose tally needs ``tally_slots``, or None."""
        if not self.waiting or tally_slots > TALLY_SLOTS:
            return None
        spare = self.waiting.pop(0)
        self.bound.append(spare)
        return spare

    def release(self) -> list[BaseProcess]:
        """Tell every spare no worker was bound to to exit (EOF on its spec pipe); returns
        their processes, for the caller's bounded wait (``Fleet.shut_down``, ``close``)."""
        processes = []
        for spare in self.waiting:
            with contextlib.suppress(OSError):
                spare.spec_writer.close()
                spare.reader.close()
            processes.append(spare.process)
        self.waiting.clear()
        return processes

    def close(self, timeout_s: float = 1.0) -> None:
        """Release the waiting spares and reap them at once (SIGKILL: a spare without a spec
        holds no connection, ledger or state), waiting at most ``timeout_s`` in all. For a
        run that ends before its fleet took them (bad input, a stop during the checks)."""
        processes = self.release()
        for process in processes:
            send_signal(process, signal.SIGKILL)
        join_all(processes, timeout_s)


def send_signal(process: BaseProcess, sig: int) -> None:
    """Send ``sig`` to ``process`` if it was started and has not been reaped meanwhile."""
    if process.pid is not None:
        with contextlib.suppress(ProcessLookupError):  # it exited meanwhile
            os.kill(process.pid, sig)


def join_all(processes: list[BaseProcess], timeout_s: float) -> None:
    """Join every process, waiting at most ``timeout_s`` seconds in all."""
    deadline = time.monotonic() + timeout_s
    for process in processes:
        process.join(max(deadline - time.monotonic(), 0.0))
