"""The worker → coordinator pipe (``loadgen.stream.channel``), with real OS pipes: a worker is
never left blocked when its coordinator is gone or stops reading, and the coordinator sees a
worker's death as EOF at once."""

from __future__ import annotations

import multiprocessing
import os
import time

from loadgen.stream.channel import Inbox, Outbox
from loadgen.stream.messages import Heartbeat


def _wait_for(predicate: object, timeout_s: float) -> bool:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if predicate():  # type: ignore[operator]
            return True
        time.sleep(0.01)
    return False


def test_messages_arrive_in_order_and_eof_names_the_worker() -> None:
    reader, writer = multiprocessing.Pipe(duplex=False)
    inbox, outbox = Inbox(), Outbox(writer)
    inbox.add(7, reader)
    for i in range(100):
        outbox.put(Heartbeat(7, i))
    assert outbox.close() is True
    got: list[object] = []
    deadline = time.monotonic() + 5
    while len(got) < 101 and time.monotonic() < deadline:
        got += [m for _, m in inbox.receive(0.1)]
    assert [m.busy_for_ns for m in got[:100]] == list(range(100))  # type: ignore[union-attr]
    assert got[100] is None and len(inbox) == 0  # EOF: the writer is gone


def test_a_dead_reader_breaks_the_outbox_instead_of_blocking_it() -> None:
    reader, writer = multiprocessing.Pipe(duplex=False)
    outbox = Outbox(writer)
    reader.close()  # the coordinator died
    big = Heartbeat(0, 10**6)
    started = time.monotonic()
    for _ in range(10_000):  # far more than a pipe holds
        outbox.put(big)
    assert _wait_for(lambda: outbox.is_broken, 2.0)
    assert outbox.close() is False
    assert time.monotonic() - started < 3.0


def test_a_reader_that_never_reads_bounds_close() -> None:
    """The coordinator is alive but stuck: the pipe fills; ``close`` gives up after its timeout
    and the worker can exit (the sender thread is a daemon)."""
    reader, writer = multiprocessing.Pipe(duplex=False)
    outbox = Outbox(writer)
    payload = Heartbeat(0, int("9" * 4000))  # ~1.7 KB each: 1,000 of them overflow 64 KB
    for _ in range(1_000):
        outbox.put(payload)
    started = time.monotonic()
    assert outbox.close(timeout_s=0.5) is False
    assert 0.4 < time.monotonic() - started < 2.0
    reader.close()


def test_a_worker_killed_mid_run_is_eof_at_once() -> None:
    ctx = multiprocessing.get_context("spawn")
    reader, writer = ctx.Pipe(duplex=False)
    inbox = Inbox()
    inbox.add(3, reader)
    proc = ctx.Process(target=_hold, args=(writer,), daemon=True)
    proc.start()
    writer.close()  # the child holds the only write end
    got = list(inbox.receive(10))
    assert got == [(3, "ready")]
    os.kill(proc.pid or 0, 9)
    started = time.monotonic()
    got = list(inbox.receive(10))
    assert got == [(3, None)]
    assert time.monotonic() - started < 2.0
    proc.join(5)


def _hold(writer: object) -> None:
    outbox = Outbox(writer)  # type: ignore[arg-type]
    outbox.put("ready")
    time.sleep(60)
