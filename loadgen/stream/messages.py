"""Typed messages that cross the worker → coordinator queue (frozen, picklable, matched by class).

Every message carries ``worker_id`` and ``protocol`` so a coordinator can reject a message from a
mismatched build instead of misreading it.
"""

from __future__ import annotations

from dataclasses import dataclass

from loadgen.stream.stats import IntervalStats

PROTOCOL_VERSION = 1


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
    protocol: int = PROTOCOL_VERSION


@dataclass(frozen=True)
class WorkerFailed:
    """The worker hit an exception it cannot handle and is about to exit non-zero."""

    worker_id: int
    error_type: str  # exception class name, e.g. "SchemaMissingError"
    message: str  # str(exception), one line
    traceback_text: str  # formatted traceback, for the log at DEBUG
    protocol: int = PROTOCOL_VERSION


@dataclass(frozen=True)
class WorkerDone:
    """The worker finished cleanly (after its final ``StatsDelta``) and is about to exit 0."""

    worker_id: int
    reason: str  # "max-ops", "duration" or "stopped"
    num_ops: int  # committed operations over the whole run, for cross-checking the deltas
    protocol: int = PROTOCOL_VERSION


@dataclass(frozen=True)
class Heartbeat:
    """Sent by a worker's heartbeat thread while its loop is busy in one call (a statement or
    lock wait longer than a report interval): the process is alive, only slow."""

    worker_id: int
    busy_for_ns: int  # since the loop's last message, monotonic ns
    protocol: int = PROTOCOL_VERSION


Message = WorkerReady | StatsDelta | WorkerFailed | WorkerDone | Heartbeat
