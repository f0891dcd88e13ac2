"""``loadgen cdc capture``: one capture from preflight to summary, in this process.

The main thread checks the server, starts the JVM and the engine, then watches: progress and
the status file every second, the slot's lag, and the stop conditions. It is the only thread
that handles signals (the JVM runs with ``-Xrs``).
"""

from __future__ import annotations

import contextlib
import logging
import os
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import psycopg

from loadgen import db
from loadgen.capture import java, preflight
from loadgen.capture.engine import KEEPALIVE_PREFIX, MARKER_PREFIX, Capture
from loadgen.capture.sink import CapturePaths, EventFile, check_out, read_json, write_json_atomic
from loadgen.capture.stop import StopPolicy, StopRequests, marker_matches
from loadgen.cdc import debezium_config
from loadgen.errors import (
    EXIT_ABORTED,
    EXIT_DB_UNAVAILABLE,
    EXIT_OK,
    ConfigError,
    DatabaseUnavailableError,
    LoadgenError,
)
from loadgen.lsn import format_lsn
from loadgen.processes import is_alive

logger = logging.getLogger(__name__)

TICK_S = 0.2
STATUS_EVERY_S = 1.0
LAG_EVERY_S = 2.0
CLOSE_TIMEOUT_S = 60.0
# Debezium confirms to the server only the position of the last event it processed: while the
# captured tables are quiet (other tables or databases still writing WAL) the slot would pin
# ever more WAL. A logical decoding message this often, when nothing was written, moves it.
KEEPALIVE_EVERY_S = 10.0


@dataclass
class CaptureOptions:
    """Everything a capture needs, validated by the CLI (one place)."""

    out: Path
    publication: str
    slot: str
    verifier_slot: str
    topic_prefix: str
    tables: list[str] | None = None  # None: every table the publication holds
    snapshot_mode: str = "no_data"
    with_key: bool = False
    schemas: bool = False
    transactions: bool = False
    overrides: dict[str, str] = field(default_factory=dict)
    stop: StopPolicy = field(default_factory=StopPolicy)
    progress: bool = False  # a live line on stderr (a terminal)
    connect_retry_s: float = 30.0


class PidLock:
    """``<out>.pid`` held while a capture runs; refuses a second capture of the same file."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.held = False

    def acquire(self) -> None:
        for _ in range(2):
            try:
                fd = os.open(self.path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644)
            except FileExistsError:
                other = running_pid(self.path)
                if other is not None:
                    raise ConfigError(
                        f"a capture (pid {other}) is already writing {str(self.path)[:-4]!r};"
                        " stop it with `loadgen cdc capture stop --out FILE`"
                    ) from None
                self.path.unlink(missing_ok=True)  # stale: its process is gone
                continue
            with os.fdopen(fd, "w") as f:
                f.write(f"{os.getpid()}\n")
            self.held = True
            return

    def release(self) -> None:
        if self.held and running_pid(self.path) == os.getpid():
            self.path.unlink(missing_ok=True)
        self.held = False


# the phases of a status file a capture wrote at its end (summary or failure)
FINAL_PHASES = ("stopped", "failed")


def running_pid(pid_path: Path) -> int | None:
    """The pid in ``pid_path`` when that process is alive (not a zombie), else None."""
    try:
        pid = int(pid_path.read_text().strip() or "0")
    except (OSError, ValueError):
        return None
    return pid if pid > 0 and is_alive(pid) else None


def run(dsn: str, opts: CaptureOptions, requests: StopRequests) -> tuple[dict[str, Any], int]:
    """Run one capture until a stop condition; return (summary, exit code).

    ``requests`` must already be installed (signals that arrive during start-up count).

    Raises:
        ConfigError (exit 2), DatabaseUnavailableError / RuntimeMissingError (exit 3): before
        anything was captured.
    """
    paths = CapturePaths.for_out(opts.out)
    check_out(paths)
    java.require_extra()
    java.java_library()
    lock = PidLock(paths.pid)
    lock.acquire()
    try:
        return _run_locked(dsn, opts, requests, paths)
    finally:
        lock.release()


def _run_locked(
    dsn: str, opts: CaptureOptions, requests: StopRequests, paths: CapturePaths
) -> tuple[dict[str, Any], int]:
    started_at = time.time()
    status: dict[str, Any] = {
        "pid": os.getpid(),
        "out": str(paths.out),
        "phase": "starting",
        "started_at": started_at,
    }
    write_json_atomic(paths.status, status)
    try:
        conn = db.connect(dsn, autocommit=True, retry_for_s=opts.connect_retry_s)
    except LoadgenError as exc:
        _fail_status(paths, status, exc)
        raise
    with conn:
        try:
            plan = preflight.check(
                conn,
                dsn,
                publication=opts.publication,
                slot=opts.slot,
                verifier_slot=opts.verifier_slot,
                tables=opts.tables,
                # with a snapshot, Debezium creates a missing slot itself, exporting the
                # snapshot it reads the tables in (consistent with the stream)
                create_slot=opts.snapshot_mode == "no_data",
            )
        except psycopg.Error as exc:
            err = DatabaseUnavailableError(f"cdc capture: the server refused: {exc}")
            _fail_status(paths, status, err)
            raise err from None
        except LoadgenError as exc:
            _fail_status(paths, status, exc)
            raise
        if plan.slot_created_lsn:
            _say(f"slot {opts.slot}: created at LSN {plan.slot_created_lsn}")
            if paths.offsets.exists():
                _say(
                    f"warning: {paths.offsets} belongs to an earlier slot {opts.slot}: changes"
                    " committed between its last position and now are not in the new slot"
                )
        props = debezium_config.engine_properties(
            plan.endpoint,
            table_list=plan.tables,
            publication=opts.publication,
            slot=opts.slot,
            topic_prefix=opts.topic_prefix,
            offsets_path=str(paths.offsets),
            snapshot_mode=opts.snapshot_mode,
            schemas=opts.schemas,
            transactions=opts.transactions,
            overrides=opts.overrides,
        )
        resumed = paths.offsets.exists()
        sink = EventFile(paths.out)
        if sink.repaired_bytes:
            _say(f"{paths.out}: cut a torn last line ({sink.repaired_bytes} bytes; redelivered)")
        if requests.now:
            sink.close()
            return _summary(paths, opts, status, None, sink, "signal " + requests.now), EXIT_OK
        java.start(paths.log)
        capture = Capture(props, sink, topic_prefix=opts.topic_prefix, with_key=opts.with_key)
        status.update(
            {
                "phase": "starting",
                "slot": opts.slot,
                "publication": opts.publication,
                "tables": plan.tables,
                "resumed": resumed,
                "lines_before": sink.num_lines_before,
                "snapshot_mode": opts.snapshot_mode,
            }
        )
        capture.start()
        try:
            reason, code = _watch(conn, capture, opts, requests, paths, status)
        finally:
            capture.close(CLOSE_TIMEOUT_S)
            sink.close()
        if capture.failure and code == EXIT_OK:
            if requests.now:  # closed while it was still starting: not a failure of the run
                logger.info("engine stopped during start-up: %s", capture.failure)
                capture.failure = None
            else:
                reason, code = f"failed: {capture.failure}", EXIT_ABORTED
        with contextlib.suppress(psycopg.Error):
            status["slot_lag_bytes"] = preflight.slot_progress(conn, opts.slot)[1]
        return _summary(paths, opts, status, capture, sink, reason), code


def _watch(
    conn: psycopg.Connection,
    capture: Capture,
    opts: CaptureOptions,
    requests: StopRequests,
    paths: CapturePaths,
    status: dict[str, Any],
) -> tuple[str, int]:
    """Watch the running engine until a stop condition; return (reason, exit code)."""
    marker: str | None = None
    streaming_since: float | None = None
    next_status = next_lag = last_keepalive = 0.0
    rate = _Rate()
    caught_up_wanted = opts.stop.until_caught_up
    while True:
        now = time.monotonic()
        if capture.done.is_set():
            if capture.failure:
                code = EXIT_DB_UNAVAILABLE if streaming_since is None else EXIT_ABORTED
                return f"failed: {capture.failure}", code
            return "engine stopped", EXIT_ABORTED
        if requests.now:
            return f"signal {requests.now}", EXIT_OK
        if now >= next_lag:
            next_lag = now + (LAG_EVERY_S if streaming_since is not None else TICK_S)
            try:
                active, lag = preflight.slot_progress(conn, opts.slot)
            except psycopg.Error as exc:
                logger.warning("slot lag: %s", exc)
                active, lag = bool(streaming_since), status.get("slot_lag_bytes")
            status["slot_lag_bytes"] = lag
            state = capture.engine_state()
            if state.snapshot_running:
                status["phase"] = "snapshot"
            elif active and state.connected is not False and streaming_since is None:
                streaming_since = now
                status["phase"] = "streaming"
            status["snapshot_rows"] = state.snapshot_rows
        if streaming_since is not None:
            if requests.caught_up_requested and not caught_up_wanted:
                caught_up_wanted, marker = True, None
            if caught_up_wanted and marker is None:
                marker = f"{os.getpid()}-{time.time_ns()}"
                lsn = preflight.emit_marker(conn, MARKER_PREFIX, marker)
                status["caught_up_target_lsn"] = lsn
                status["phase"] = "catching up"
            if marker is not None and marker_matches(marker, capture.stats.markers_seen):
                return "caught up", EXIT_OK
            last = capture.stats.last_line_at or streaming_since
            if now - max(last, last_keepalive) >= KEEPALIVE_EVERY_S:
                last_keepalive = now
                try:
                    preflight.emit_marker(conn, KEEPALIVE_PREFIX, "")
                except psycopg.Error as exc:
                    logger.warning("keepalive message: %s", exc)
            idle = opts.stop.idle_s
            if idle is not None and now - max(last, streaming_since) >= idle:
                return f"idle {idle:g} s", EXIT_OK
        if now >= next_status:
            next_status = now + STATUS_EVERY_S
            stats = capture.stats
            status["lines"] = stats.num_lines
            status["lines_per_s"] = rate.update(now, stats.num_lines)
            status["last_lsn"] = _lsn_text(stats.last_lsn)
            write_json_atomic(paths.status, status)
            if opts.progress:
                _progress(status)
        capture.handler.marker_event.wait(TICK_S)
        capture.handler.marker_event.clear()


class _Rate:
    """Lines per second over the last few seconds."""

    def __init__(self) -> None:
        self.points: list[tuple[float, int]] = []

    def update(self, now: float, count: int) -> float:
        self.points = [p for p in self.points if now - p[0] <= 5.0] + [(now, count)]
        t0, c0 = self.points[0]
        return round((count - c0) / (now - t0), 1) if now > t0 else 0.0


def _lsn_text(lsn: int | None) -> str | None:
    return None if lsn is None else format_lsn(lsn)


def _progress(status: dict[str, Any]) -> None:
    lag = status.get("slot_lag_bytes")
    lag_text = "?" if lag is None else _bytes_text(int(lag))
    line = (
        f"\r{status['phase']:<11} {status.get('lines', 0):>10,} lines"
        f" {status.get('lines_per_s', 0):>9,.0f}/s  slot lag {lag_text:>9}"
        f"  LSN {status.get('last_lsn') or '-'}"
    )
    sys.stderr.write(line + "\x1b[K")
    sys.stderr.flush()


def _bytes_text(n: int) -> str:
    for unit in ("B", "KiB", "MiB", "GiB"):
        if abs(n) < 1024 or unit == "GiB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1024  # type: ignore[assignment]
    return str(n)


def _say(text: str) -> None:
    print(text, file=sys.stderr, flush=True)


def _fail_status(paths: CapturePaths, status: dict[str, Any], exc: LoadgenError) -> None:
    status.update({"phase": "failed", "error": str(exc), "exit_code": exc.exit_code})
    write_json_atomic(paths.status, status)


def _summary(
    paths: CapturePaths,
    opts: CaptureOptions,
    status: dict[str, Any],
    capture: Capture | None,
    sink: EventFile,
    reason: str,
) -> dict[str, Any]:
    stats = capture.stats if capture else None
    elapsed = time.time() - float(status["started_at"])
    lines = stats.num_lines if stats else 0
    summary = {
        **status,
        "phase": "stopped",
        "stop_reason": reason,
        "elapsed_s": round(elapsed, 3),
        "lines": lines,
        "lines_per_s": round(lines / elapsed, 1) if elapsed > 0 else 0.0,
        "events_by_op": dict(sorted(stats.num_by_op.items())) if stats else {},
        "tombstones": stats.num_tombstones if stats else 0,
        "transaction_events": stats.num_transaction_events if stats else 0,
        "heartbeats": stats.num_heartbeats if stats else 0,
        # first to last written line: the throughput without the JVM's start
        "write_span_s": round(stats.last_line_at - stats.first_line_at, 3)
        if stats and stats.first_line_at and stats.last_line_at
        else None,
        "batches": stats.num_batches if stats else 0,
        "consumer_s": round(stats.handler_s, 3) if stats else 0.0,
        "first_lsn": _lsn_text(stats.first_lsn) if stats else None,
        "last_lsn": _lsn_text(stats.last_lsn) if stats else None,
        "bytes_written": sink.bytes_written,
        "offsets": str(paths.offsets),
        "log": str(paths.log),
    }
    if capture and capture.failure:
        summary["error"] = capture.failure
    write_json_atomic(paths.status, summary)
    return summary


def previous_status(out: Path) -> dict[str, Any] | None:
    """The status (or final summary) a capture of ``out`` left, if any."""
    return read_json(CapturePaths.for_out(out).status)
