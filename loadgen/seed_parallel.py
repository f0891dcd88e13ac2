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
    starved_s: list[float] = field(default_factory=list)  # consumers' waits for a producer
    lock: threading.Lock = field(default_factory=threading.Lock)

    def report(self, event: Any) -> None:
        self.events.put(event)

    def add_cpu(self, seconds: float) -> None:
        with self.lock:
            self.cpu_s.append(seconds)

    def add_starved(self, seconds: float) -> None:
        with self.lock:
            self.starved_s.append(seconds)


Task = Callable[[psycopg.Connection, Context], None]


@dataclass(frozen=True)
class Job:
    """A task with a name, the jobs it waits for (``needs``, by name) and ``groups`` (tables
    whose locks it takes in a mode that conflicts with another job of the group): it never
    runs beside a job sharing a group. ``kind`` labels it for timings (``run_all``'s result).
    """

    run: Task
    name: str = ""
    kind: str = ""
    needs: frozenset[str] = frozenset()
    groups: frozenset[str] = frozenset()


class Stopped(Exception):
    """A task noticed the stop flag (another task failed or a signal came)."""


def run_all(
    conns: list[psycopg.Connection],
    tasks: Iterable[Task | Job],
    ctx: Context,
    on_event: Callable[[Any], None] | None = None,
) -> dict[str, float]:
    """Run ``tasks`` in the given order of priority, each on the next free connection, a
    ``Job`` once the jobs it needs have finished and no job of its groups runs; block until
    all are done. Returns the ``time.monotonic()`` at which the last job of each kind ended.

    Raises:
        the first task's exception (others are cancelled), or KeyboardInterrupt/Interrupted
        received meanwhile (every task is cancelled first; nothing keeps running).
    """
    pending = [t if isinstance(t, Job) else Job(t) for t in tasks]
    names = {j.name for j in pending}
    finished: set[str] = set()
    busy: set[str] = set()
    running = [0]
    changed = threading.Condition()
    failures: list[BaseException] = []
    ends: dict[str, float] = {}

    def ready(job: Job) -> bool:
        waits = {n for n in job.needs if n in names}  # a name nobody gives is not awaited
        return waits <= finished and not (job.groups & busy)

    def take() -> Job | None:
        """The first pending job that is ready (waits while none is)."""
        with changed:
            while pending and not ctx.stop.is_set():
                for i, job in enumerate(pending):
                    if ready(job):
                        busy.update(job.groups)
                        running[0] += 1
                        return pending.pop(i)
                if running[0] == 0:
                    raise RuntimeError(f"jobs wait for each other: {[j.name for j in pending]}")
                changed.wait(POLL_S)
            return None

    def worker(conn: psycopg.Connection) -> None:
        while True:
            try:
                job = take()
            except RuntimeError as exc:
                failures.append(exc)
                ctx.stop.set()
                return
            if job is None:
                return
            try:
                job.run(conn, ctx)
            except BaseException as exc:  # noqa: BLE001 - handed to the coordinating thread
                with changed:
                    failures.append(exc)
                ctx.stop.set()
                return
            finally:
                with changed:
                    busy.difference_update(job.groups)
                    running[0] -= 1
                    if job.kind:
                        ends[job.kind] = max(ends.get(job.kind, 0.0), time.monotonic())
                    finished.add(job.name)
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
    return ends


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

    The producer's CPU time goes to ``ctx.add_cpu``, the time the consumer waited for an item
    to ``ctx.add_starved``. Its exception is raised here; when the
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
    starved = 0.0
    try:
        while True:
            t0 = time.monotonic()
            try:
                item = out.get(timeout=POLL_S)
            except queue.Empty:
                starved += time.monotonic() - t0
                if ctx.stop.is_set():
                    raise Stopped() from None
                continue
            starved += time.monotonic() - t0
            if item is _END:
                if failure:
                    raise failure[0]
                return
            yield item
    finally:
        done.set()
        ctx.add_starved(starved)
        producer.join(5)
