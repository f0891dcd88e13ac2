"""Producer processes for the empty-table path: row generation off this process's GIL.

In one process, the loaders' threads and the producer threads share one GIL, and under CPU
contention the producers fall behind: the COPY backends then wait for rows (measured as
``SeedResult.starved_s``). For big runs (``PROCESS_MIN_ROWS``) each loader connection gets a
``spawn``-ed producer process instead; it receives a table's ``Plan`` and sends back the COPY
text blocks through a pipe (``send_bytes``: no pickling of the rows), a generating thread
running a few blocks ahead of the pipe. Processes start before the plan is made (their
start-up overlaps it), ignore SIGINT (the seeding process decides) and are terminated when
the seed ends, however it ends.

Messages from a producer: ``B`` + rows (4 bytes, little endian) + block; ``.`` + CPU seconds
(8 bytes, a double) at the end of a table; ``E`` + a one-line error.
"""

from __future__ import annotations

import multiprocessing
import struct
import time
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import datetime
from multiprocessing.connection import Connection
from typing import Any

from loadgen import datagen, seed_recovery, tables
from loadgen.errors import RunAbortedError
from loadgen.seed_parallel import POLL_S, Context, Stopped, prefetch
from loadgen.seed_plan import Plan

PROCESS_MIN_ROWS = 150_000  # below this many rows in a run, producer threads (no spawn cost)
_ROWS = struct.Struct("<I")
_CPU = struct.Struct("<d")


def table_blocks(
    plan: Plan, seed: int, reference: datetime, block_rows: int
) -> Iterator[tuple[bytes, int]]:
    """``(COPY text block, rows in it)`` for every piece of ``plan``, in id order: the rows
    the append path's ``load_piece`` writes for the same pieces."""
    columns = tables.BY_NAME[plan.table].columns
    for lo, hi in plan.pieces():
        batch = datagen.generate_piece(
            plan.table, seed, lo, hi, parents=plan.parents, now=reference, lazy=True
        )
        done = 0
        for block in datagen.iter_copy_blocks(batch, columns, block_rows):
            n = min(block_rows, hi - lo - done)
            done += n
            yield block, n


def _produce(pipe: Connection) -> None:
    """Producer process: serve table requests until ``None`` (or the pipe closes)."""
    datagen.build_vocab()
    while True:
        try:
            request = pipe.recv()
        except EOFError:
            return
        if request is None:
            return
        plan, seed, reference, block_rows = request
        t0 = time.process_time()
        try:  # a thread generates up to PREFETCH_DEPTH blocks ahead of the pipe
            for block, n in prefetch(table_blocks(plan, seed, reference, block_rows), Context()):
                pipe.send_bytes(b"B" + _ROWS.pack(n) + block)
        except Exception as exc:  # noqa: BLE001 - process boundary: reported as one line
            pipe.send_bytes(b"E" + f"{type(exc).__name__}: {exc}".encode())
            continue
        pipe.send_bytes(b"." + _CPU.pack(time.process_time() - t0))


@contextmanager
def started(count: int) -> Iterator[list[Connection]]:
    """Start ``count`` producer processes; yield one pipe each; terminate them at exit."""
    ctx = multiprocessing.get_context("spawn")
    processes: list[Any] = []
    pipes: list[Connection] = []
    try:
        with seed_recovery.children_ignore_sigint():
            for _ in range(count):
                ours, theirs = ctx.Pipe()
                process = ctx.Process(target=_produce, args=(theirs,), daemon=True)
                process.start()
                theirs.close()
                processes.append(process)
                pipes.append(ours)
        yield pipes
    finally:
        for process in processes:
            process.terminate()
        for process in processes:
            process.join(5)
        for pipe in pipes:
            pipe.close()


def blocks(
    pipe: Connection,
    plan: Plan,
    seed: int,
    reference: datetime,
    block_rows: int,
    ctx: Context,
) -> Iterator[tuple[bytes | memoryview, int]]:
    """Ask the producer at ``pipe`` for ``plan``'s rows; yield ``(COPY block, rows)``.

    Waiting time goes to ``ctx.add_starved``, the producer's CPU time to ``ctx.add_cpu``.

    Raises:
        RunAbortedError: the producer failed or died; Stopped: ``ctx.stop`` was set.
    """
    pipe.send((plan, seed, reference, block_rows))
    starved = 0.0
    try:
        while True:
            t0 = time.monotonic()
            try:
                ready = pipe.poll(POLL_S)
                message = pipe.recv_bytes() if ready else b""
            except (EOFError, OSError) as exc:
                raise RunAbortedError(
                    f"the producer process generating {plan.table} died ({exc or 'EOF'})"
                ) from None
            starved += time.monotonic() - t0
            if not ready:
                if ctx.stop.is_set():
                    raise Stopped()
                continue
            tag = message[:1]
            if tag == b"B":
                yield memoryview(message)[1 + _ROWS.size :], _ROWS.unpack_from(message, 1)[0]
            elif tag == b".":
                ctx.add_cpu(_CPU.unpack_from(message, 1)[0])
                return
            else:
                raise RunAbortedError(
                    f"generating {plan.table} failed: {message[1:].decode(errors='replace')}"
                )
    finally:
        ctx.add_starved(starved)
