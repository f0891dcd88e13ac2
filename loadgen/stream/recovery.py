"""Worker fault handling: SQLSTATE classes, retries, reconnects with backoff, in-doubt commits.

``Recovery`` is a mixin of the worker (``loadgen.stream.worker._Worker``): it owns what happens
when a statement or a COMMIT fails. Errors are counted by SQLSTATE class; serialization failures and
deadlocks are retried; a lost connection is reopened with exponential backoff and jitter (and
marked as a live run's again, ``loadgen.stream.ownership``); a commit whose outcome is unknown
is resolved with ``pg_xact_status`` (``loadgen.ledger.resolve``) after reconnecting.
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING

import psycopg

from loadgen import db
from loadgen.errors import DatabaseUnavailableError
from loadgen.ledger.resolve import xact_status
from loadgen.stream.clock import NS_PER_MS, NS_PER_S, SystemClock
from loadgen.stream.ownership import hold_live_lock
from loadgen.stream.stats import IntervalStats

if TYPE_CHECKING:
    from loadgen.stream.worker import WorkerSpec

logger = logging.getLogger(__name__)

RETRYABLE_SQLSTATES = frozenset({"40001", "40P01"})  # serialization failure, deadlock
# classes that mean a bug or a broken server rather than bad luck: fail_fast_on_critical stops
CRITICAL_CLASSES = frozenset({"0A", "28", "3D", "3F", "42", "53", "58", "F0", "XX"})
CONNECTION_SQLSTATES = frozenset({"57P01", "57P02", "57P03"})  # admin/crash shutdown, starting
MAX_CONSECUTIVE_FAILURES = 1_000  # a worker that never commits gives up instead of spinning
IN_DOUBT_POLL_S = 5.0  # how long to wait for an in-doubt transaction to leave "in progress"
RECONNECT_BACKOFF_CAP_S = 2.0  # a load generator should notice a returning server quickly


def sqlstate_class(exc: BaseException) -> str:
    """Two-char SQLSTATE class of a psycopg error; ``"08"`` when there is none (lost link)."""
    sqlstate = getattr(exc, "sqlstate", None)
    return sqlstate[:2] if sqlstate else "08"


def _one_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__


class _StopRequested(Exception):
    """Raised inside waits when the run is stopping; the current batch is abandoned."""


class Recovery:
    """Fault handling of one worker; mixed into ``_Worker``, which provides the state below.

    Runs in the worker's loop thread only.
    """

    spec: WorkerSpec
    conn: psycopg.Connection | None
    stats: IntervalStats  # the current interval's (swapped at every report)
    clock: SystemClock
    app_name: str  # application_name of every connection this worker opens
    num_consecutive_failures: int

    def _sleep_until(self, deadline_ns: int, *, is_reconnecting: bool = False) -> None:
        raise NotImplementedError  # the worker's: sleeps in slices, reports, honours stop

    def _handle_failure(self, exc: psycopg.Error, names: list[str], tries: int) -> bool:
        """Count a failed attempt; return True to retry the batch, False to drop it."""
        error_class = sqlstate_class(exc)
        if self._is_connection_lost(exc):
            self.stats.record_error(error_class)
            logger.warning(
                "worker %d: connection lost (%s); reconnecting", self.spec.worker_id, _one_line(exc)
            )
            self._reconnect()
            return True  # the transaction did not commit: run it again on the new connection
        if exc.sqlstate in RETRYABLE_SQLSTATES and tries < self.spec.max_tries:
            self.stats.num_retried += 1
            return True
        self.stats.record_error(error_class, num_ops=len(names))
        self.num_consecutive_failures += 1
        logger.warning(
            "worker %d: %s failed: %s %s",
            self.spec.worker_id,
            ",".join(names),
            exc.sqlstate,
            _one_line(exc),
        )
        if error_class in CRITICAL_CLASSES and self.spec.fail_fast_on_critical:
            raise exc
        if self.num_consecutive_failures >= MAX_CONSECUTIVE_FAILURES:
            raise RuntimeError(
                f"{self.num_consecutive_failures} transactions in a row failed; "
                f"last error {exc.sqlstate}: {_one_line(exc)}"
            ) from exc
        return False

    def _is_connection_lost(self, exc: BaseException) -> bool:
        conn = self.conn
        if conn is None or conn.closed or conn.broken:
            return True
        return isinstance(exc, psycopg.OperationalError) and (
            exc.sqlstate is None
            or exc.sqlstate in CONNECTION_SQLSTATES
            or exc.sqlstate.startswith("08")
        )

    def _mark_live(self) -> None:
        """Hold the live-run lock on the current connection (coordinated runs only)."""
        if self.spec.owned_max_ids is not None and self.conn is not None:
            hold_live_lock(self.conn)

    def _pending_status(self, txid: int) -> str | None:
        """What became of ``txid`` (a COMMIT failed): reconnect if needed, ask the server."""
        try:
            if self.conn is None or self.conn.closed or self.conn.broken:
                self._reconnect()
            status = self._resolve_in_doubt(txid, reconnect=False)
        except psycopg.Error:
            return None
        return status if status in ("committed", "aborted") else None

    def _resolve_in_doubt(self, txid: int | None, *, reconnect: bool = True) -> str:
        """After a connection died during COMMIT: reconnect and ask the server what happened.

        Returns ``"committed"``, ``"aborted"`` or why it is unknown.
        """
        if reconnect:
            self._reconnect()
        if not txid:
            return "no transaction id"
        deadline_ns = self.clock.now_ns() + round(IN_DOUBT_POLL_S * NS_PER_S)
        status: str | None = None
        while True:
            assert self.conn is not None
            try:
                status = xact_status(self.conn, [txid]).get(txid)
            except psycopg.Error as exc:
                if not self._is_connection_lost(exc):
                    return f"pg_xact_status failed: {_one_line(exc)}"
                self._reconnect()
                continue
            if status in ("committed", "aborted"):
                return status
            if status is None or self.clock.now_ns() >= deadline_ns:
                return f"pg_xact_status {status}"
            self._sleep_until(self.clock.now_ns() + 50 * NS_PER_MS)

    def _reconnect(self) -> None:
        """Reopen the connection with exponential backoff and jitter; count the reconnect.

        Raises:
            _StopRequested: the run is stopping.
            DatabaseUnavailableError: no server for ``reconnect_timeout_s`` seconds, or it
                refused us for a reason retrying cannot fix.
        """
        if self.conn is not None:
            self.conn.close()
        self.conn = None
        deadline_ns = self.clock.now_ns() + round(self.spec.reconnect_timeout_s * NS_PER_S)
        conninfo = db.session_options(self.spec.dsn, {"application_name": self.app_name})
        for delay_s in db.backoff_delays_s(cap_s=RECONNECT_BACKOFF_CAP_S):
            try:
                self.conn = psycopg.connect(conninfo)
                self._mark_live()  # a coordinated run's connection holds the live-run lock
                break
            except psycopg.OperationalError as exc:
                if self.conn is not None:  # connected, then lost while taking the lock
                    self.conn.close()
                    self.conn = None
                # XXX: every connect failure is retried until the deadline (a restarting server
                # answers with several different errors); a wrong password costs a minute.
                if self.clock.now_ns() >= deadline_ns:
                    raise DatabaseUnavailableError(
                        f"worker {self.spec.worker_id}: no connection to "
                        f"{db.mask_dsn(self.spec.dsn)} for {self.spec.reconnect_timeout_s:g} s: "
                        f"{_one_line(exc)}"
                    ) from None
                logger.info(
                    "worker %d: reconnect failed (%s), next try in %.2f s",
                    self.spec.worker_id,
                    _one_line(exc),
                    delay_s,
                )
            self._sleep_until(self.clock.now_ns() + round(delay_s * NS_PER_S), is_reconnecting=True)
        self.stats.num_reconnects += 1
        logger.warning(
            "worker %d: reconnected (backend %d)", self.spec.worker_id, self._backend_pid()
        )

    def _rollback_quietly(self) -> None:
        if self.conn is not None and not self.conn.closed and not self.conn.broken:
            try:
                self.conn.rollback()
            except psycopg.Error:
                self.conn.close()

    def _end_txn_quietly(self) -> None:
        if self.conn is not None and not self.conn.autocommit:
            self.conn.rollback()

    def _backend_pid(self) -> int:
        conn = self.conn
        if conn is None or conn.closed or conn.broken:
            return 0
        return int(conn.info.backend_pid)
