"""Run a seed's tasks on several connections at once, one thread per connection.

The coordinating (main) thread only waits, hands the tasks' progress events to its callback
and stays responsive to SIGINT/SIGTERM: on a signal or the first task failure it sets the
stop flag, cancels every connection's running statement (``conn.cancel()``, thread-safe),
joins the threads and raises that signal or failure. ``prefetch`` runs a generator in a
producer thread a few items ahead of its consumer (generation overlaps the COPY).
"""

from __future__ import annotations

import queue
import threading
import time
from collections.abc import Callable, Iterable, Iterator
from contextlib import suppress
from dataclasses import dataclass, field
from typing import Any

import psycopg

POLL_S = 0.1  # how often the coordinating thread looks at progress and finished threads
PREFETCH_DEPTH = 4  # items a producer may run ahead of its consumer (memory bound)


@dataclass
class Context:
    """What a task sees: the stop flag, a progress channel and CPU time it reports."""

    stop: threading.Event = field(default_factory=threading.Event)
    events: queue.Queue[Any] = field(default_factory=queue.Queue)
    cpu_s: list[float] = field(default_factory=list)  # producer threads' CPU seconds
    lock: threading.Lock = field(default_factory=threading.Lock)

    def report(self, event: Any) -> None:
        self.events.put(event)

    def add_cpu(self, seconds: float) -> None:
        with self.lock:
            self.cpu_s.append(seconds)


Task = Callable[[psycopg.Connection, Context], None]


@dataclass(frozen=True)
class Job:
    """A task that must not run beside another of the same ``group`` (e.g. the table whose
    lock it takes in a self-conflicting mode); ``None`` runs beside anything."""

    run: Task
    group: str | None = None


class Stopped(Exception):
    """A task noticed the stop flag (another task failed or a signal came)."""


def run_all(
    conns: list[psycopg.Connection],
    tasks: Iterable[Task | Job],
    ctx: Context,
    on_event: Callable[[Any], None] | None = None,
) -> None:
    """Run ``tasks`` in the given order, each on the next free connection (a ``Job`` waits
    while another of its group runs); block until done.

    Raises:
        the first task's exception (others are cancelled), or KeyboardInterrupt/Interrupted
        received meanwhile (every task is cancelled first; nothing keeps running).
    """
    pending = [t if isinstance(t, Job) else Job(t) for t in tasks]
    busy: set[str] = set()
    changed = threading.Condition()
    failures: list[BaseException] = []

    def take() -> Job | None:
        """The first pending job whose group is free (waits while only busy groups remain)."""
        with changed:
            while pending and not ctx.stop.is_set():
                for i, job in enumerate(pending):
                    if job.group is None or job.group not in busy:
                        if job.group is not None:
                            busy.add(job.group)
                        return pending.pop(i)
                changed.wait(POLL_S)
            return None

    def worker(conn: psycopg.Connection) -> None:
        while (job := take()) is not None:
            try:
                job.run(conn, ctx)
            except BaseException as exc:  # noqa: BLE001 - handed to the coordinating thread
                with changed:
                    failures.append(exc)
                ctx.stop.set()
                return
            finally:
                with changed:
                    busy.discard(job.group or "")
                    changed.notify_all()

    threads = [threading.Thread(target=worker, args=(c,), daemon=True) for c in conns]
    for t in threads:
        t.start()
    try:
        while any(t.is_alive() for t in threads):
            _drain(ctx, on_event, POLL_S)
            if ctx.stop.is_set():
                _cancel(conns)
                break
    except BaseException:
        ctx.stop.set()
        _cancel(conns)
        _join(threads)
        raise
    _join(threads)
    _drain(ctx, on_event, 0)
    real = [f for f in failures if not isinstance(f, Stopped)]
    if real or failures:
        raise (real or failures)[0]


def _drain(ctx: Context, on_event: Callable[[Any], None] | None, wait_s: float) -> None:
    try:
        event = ctx.events.get(timeout=wait_s) if wait_s else ctx.events.get_nowait()
        while True:
            if on_event is not None:
                on_event(event)
            event = ctx.events.get_nowait()
    except queue.Empty:
        return


def _cancel(conns: list[psycopg.Connection]) -> None:
    for conn in conns:
        with suppress(Exception):
            conn.cancel()


def _join(threads: list[threading.Thread]) -> None:
    deadline = time.monotonic() + 60
    for t in threads:
        while t.is_alive() and time.monotonic() < deadline:
            t.join(POLL_S)


_END = object()


def prefetch(items: Iterator[Any], ctx: Context, depth: int = PREFETCH_DEPTH) -> Iterator[Any]:
    """Yield ``items`` as a producer thread makes them, at most ``depth`` ahead.

    The producer's CPU time goes to ``ctx.add_cpu``. Its exception is raised here; when the
    consumer stops early (an exception, ``ctx.stop``), the producer ends at its next item.

    Raises:
        Stopped: ``ctx.stop`` was set while waiting.
    """
    out: queue.Queue[Any] = queue.Queue(maxsize=depth)
    done = threading.Event()
    failure: list[BaseException] = []

    def put(item: Any) -> bool:
        while not (done.is_set() or ctx.stop.is_set()):
            try:
                out.put(item, timeout=POLL_S)
                return True
            except queue.Full:
                continue
        return False

    def produce() -> None:
        t0 = time.thread_time()
        try:
            for item in items:
                if not put(item):
                    return
        except BaseException as exc:  # noqa: BLE001 - re-raised in the consumer
            failure.append(exc)
        finally:
            ctx.add_cpu(time.thread_time() - t0)
            put(_END)

    producer = threading.Thread(target=produce, daemon=True)
    producer.start()
    try:
        while True:
            try:
                item = out.get(timeout=POLL_S)
            except queue.Empty:
                if ctx.stop.is_set():
                    raise Stopped() from None
                continue
            if item is _END:
                if failure:
                    raise failure[0]
                return
            yield item
    finally:
        done.set()
        producer.join(5)
