"""``stream --markers S``: a logical message every ``S`` seconds, so lag is measurable while idle.

``MarkerWriter`` runs in the coordinator's process, in a thread of its own with its own
connection (autocommit): every ``every_s`` seconds of the run it calls
``pg_logical_emit_message(true, 'loadgen', payload)`` — a transactional message, so it is
decoded at its own COMMIT like a row change — with ``payload`` the JSON object
``{"run_id": str, "seq": int, "ts": float}``: the run's id (the ledger parts' name), the
marker's number from 0, and the writer's wall clock (Unix seconds) just before the call.

Nothing is written to the ledger: ``cdc watch`` matches markers by their payload (never by
LSN: a decoded message's LSN is its record's, not its commit's) and reports their lag, capture
time minus ``ts`` (``loadgen.cdc.watch_markers``). pgoutput sends messages only when asked
(``messages 'true'``, PostgreSQL 14+). A marker that cannot be written (the server away) is
counted in ``num_failed`` and logged once per outage; the run goes on, the writer reconnects at
the next marker. ``seq`` counts attempts, so a failed marker shows as a gap in the watch.
"""

from __future__ import annotations

import contextlib
import logging
import threading
import time

import orjson
import psycopg

from loadgen import db

logger = logging.getLogger(__name__)

PREFIX = "loadgen"  # the logical message prefix of every marker
CONNECT_RETRY_S = 0.0  # a marker does not wait for the server: the next one retries


def payload(run_id: str, seq: int, ts: float) -> bytes:
    """A marker's content: ``{"run_id", "seq", "ts"}`` as compact JSON (UTF-8)."""
    return orjson.dumps({"run_id": run_id, "seq": seq, "ts": ts})


class MarkerWriter:
    """Writes a marker every ``every_s`` seconds from ``start()`` to ``stop()`` (see module)."""

    def __init__(self, dsn: str, run_id: str, every_s: float) -> None:
        self.dsn = dsn
        self.run_id = run_id
        self.every_s = every_s
        self.num_written = 0
        self.num_failed = 0
        self._seq = 0
        self._failing = False  # the last marker failed (an outage is logged once)
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._conn: psycopg.Connection | None = None

    def start(self) -> None:
        self._thread = threading.Thread(target=self._run, name="stream-markers", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        """Stop writing (waits for a marker in flight) and close the connection."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=10)
            self._thread = None

    def _run(self) -> None:
        next_at = time.monotonic()
        try:
            while not self._stop.is_set():
                self.write_one()
                next_at += self.every_s
                now = time.monotonic()
                if next_at < now:  # a slow write: skip the markers missed, keep the cadence
                    next_at = now + self.every_s - (now - next_at) % self.every_s
                if self._stop.wait(next_at - now):
                    return
        finally:
            self._close()

    def write_one(self) -> bool:
        """Emit the next marker now; False when it could not be written."""
        seq, self._seq = self._seq, self._seq + 1
        try:
            if self._conn is None or self._conn.closed:
                self._conn = db.connect(
                    self.dsn,
                    autocommit=True,
                    retry_for_s=CONNECT_RETRY_S,
                    application_name="loadgen-markers",
                )
            content = payload(self.run_id, seq, time.time())
            self._conn.execute(
                "SELECT pg_logical_emit_message(true, %s, %s::bytea)", (PREFIX, content)
            )
        except Exception as exc:  # any failure: the run goes on, the next marker retries
            if not self._failing:
                logger.warning("stream --markers: marker %d not written: %s", seq, exc)
            self._failing = True
            self.num_failed += 1
            self._close()
            return False
        self.num_written += 1
        self._failing = False
        return True

    def _close(self) -> None:
        conn, self._conn = self._conn, None
        if conn is not None:
            with contextlib.suppress(psycopg.Error):
                conn.close()
