"""Typed messages that cross a worker's pipe to the coordinator (frozen, picklable, by class).

Every message carries ``worker_id`` and ``protocol`` so a coordinator can reject a message from a
mismatched build instead of misreading it. ``WorkerFailed`` carries the exception itself: the
worker sends only errors that survive pickling (``picklable_error``), so the coordinator can
match them by class (``LedgerWriteError``, ``NoProgressError``, ``SchemaMissingError`` ...) and
re-raise them with their own exit code.
"""

from __future__ import annotations

import pickle
from dataclasses import dataclass
from typing import Literal

from loadgen.errors import RunAbortedError
from loadgen.stream.stats import IntervalStats

PROTOCOL_VERSION = 3

DoneReason = Literal["max_ops", "duration", "stopped"]


@dataclass(frozen=True)
class WorkerReady:
    """The worker connected and prepared its workload; it now waits for the start signal."""

    worker_id: int
    pid: int  # OS process id of the worker
    backend_pid: int  # PostgreSQL backend pid of its connection (0 if unknown)
    protocol: int = PROTOCOL_VERSION


@dataclass(frozen=True)
class StatsDelta:
    """What a worker recorded since its previous delta (every report interval, and at the end)."""

    worker_id: int
    seq: int  # 0, 1, 2 ... per worker; a gap means a lost message
    t0_ns: int  # interval start, monotonic ns
    t1_ns: int  # interval end, monotonic ns
    stats: IntervalStats
    backend_pid: int = 0  # current backend pid (changes after a reconnect)
    is_reconnecting: bool = False  # the worker is currently without a connection
    # ``stats`` split by when it was recorded: ((interval index, phase index), stats), sorted;
    # empty = all of it at ``t1_ns`` (loadgen.stream.timeseries)
    parts: tuple[tuple[tuple[int, int], IntervalStats], ...] = ()
    protocol: int = PROTOCOL_VERSION


@dataclass(frozen=True)
class WorkerFailed:
    """The worker hit an exception it cannot handle and is about to exit non-zero."""

    worker_id: int
    error: BaseException  # what it raised (picklable: see ``picklable_error``)
    traceback_text: str  # formatted traceback, for the log at DEBUG
    protocol: int = PROTOCOL_VERSION


@dataclass(frozen=True)
class WorkerDone:
    """The worker finished cleanly (after its final ``StatsDelta``) and is about to exit 0."""

    worker_id: int
    reason: DoneReason
    num_ops: int  # committed operations over the whole run, for cross-checking the deltas
    protocol: int = PROTOCOL_VERSION


@dataclass(frozen=True)
class Heartbeat:
    """Sent by a worker's watchdog thread while its loop is busy in one call (a statement or
    lock wait longer than a report interval): the process is alive, only slow."""

    worker_id: int
    busy_for_ns: int  # since the loop's last message, monotonic ns
    protocol: int = PROTOCOL_VERSION


Message = WorkerReady | StatsDelta | WorkerFailed | WorkerDone | Heartbeat


def one_line(exc: BaseException) -> str:
    """The first line of ``str(exc)``, or the class name when it says nothing."""
    text = str(exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__


def picklable_error(exc: BaseException) -> BaseException:
    """``exc`` when it survives a pickle round trip with its class, else a ``RunAbortedError``
    that names the class and its first line (so the coordinator always gets one)."""
    try:
        copy = pickle.loads(pickle.dumps(exc))
    except Exception:  # noqa: BLE001 - any failure to round-trip means "send a stand-in"
        copy = None
    if type(copy) is type(exc):
        return exc
    return RunAbortedError(f"{type(exc).__name__}: {one_line(exc)}")
