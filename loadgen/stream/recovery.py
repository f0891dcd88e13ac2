"""A worker's connection and its fault handling: the retry policy applied to one worker.

``Session`` owns the worker's connection. Every failed attempt goes through ``on_failure``,
which applies ``loadgen.retry`` (one policy, keyed on SQLSTATE): a lost connection is reopened
with the policy's backoff for up to ``connect_retry_s`` (and marked as a live run's again,
``loadgen.stream.ownership``) and the transaction runs again; serialization failures and
deadlocks run again at once (``max_tries``); anything else is counted by SQLSTATE class and the
transaction is dropped. A worker that cannot make progress stops (``NoProgressError``): when
``NO_PROGRESS_TRIES`` transactions in a row failed with a class retrying cannot fix (42
privileges or a missing column, 25 read-only, 28, 3D, ...; ``NO_PROGRESS_TRIES_AT_START`` if it
never committed), or ``MAX_CONSECUTIVE_FAILURES`` in a row failed at all. A COMMIT whose outcome
is unknown is resolved with ``pg_xact_status`` (``loadgen.ledger.resolve``).

Runs in the worker's loop thread only (``cancel`` may be called from its watchdog thread).
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any

import psycopg

from loadgen import db, retry
from loadgen.errors import DatabaseUnavailableError, NoProgressError
from loadgen.ledger.resolve import xact_status
from loadgen.stream.clock import NS_PER_MS, NS_PER_S, SystemClock
from loadgen.stream.messages import one_line
from loadgen.stream.ownership import hold_live_lock
from loadgen.stream.stats import IntervalStats
from loadgen.stream.worker_spec import WorkerSpec

logger = logging.getLogger(__name__)

NO_PROGRESS_TRIES = 20  # permanent-class failures in a row (after a commit) that stop a worker
NO_PROGRESS_TRIES_AT_START = 3  # ... before its first commit (privileges, a missing column)
MAX_CONSECUTIVE_FAILURES = 200  # failures of any class in a row that stop a worker
IN_DOUBT_POLL_S = 5.0  # how long to wait for an in-doubt transaction to leave "in progress"
RECONNECT_BACKOFF_CAP_S = 2.0  # a load generator should notice a returning server quickly
CANCEL_TIMEOUT_S = 2.0  # for the server to acknowledge a cancel request

# Sleeps until a monotonic deadline (ns), reporting on time; raises StopRequested on a stop.
Sleeper = Callable[..., None]


class StopRequested(Exception):
    """Raised inside waits when the run is stopping; the current transaction is abandoned."""


class Session:
    """One worker's connection, reopened as the retry policy says.

    ``stats`` returns the current interval's ``IntervalStats`` (the worker swaps it at every
    report); ``sleep_until(deadline_ns, is_reconnecting=...)`` is the worker's interruptible
    sleep.
    """

    def __init__(
        self,
        spec: WorkerSpec,
        clock: SystemClock,
        stats: Callable[[], IntervalStats],
        sleep_until: Sleeper,
        app_name: str,
    ) -> None:
        self.spec = spec
        self.clock = clock
        self._stats = stats
        self._sleep_until = sleep_until
        self.app_name = app_name
        self.conn: psycopg.Connection[Any] | None = None
        self.num_permanent_in_a_row = 0  # transactions failed with a permanent class, in a row
        self.num_failed_in_a_row = 0  # transactions failed with any class, in a row
        self.has_committed = False
        self._warned: set[str] = set()  # SQLSTATEs already logged at WARNING

    # -- connecting ------------------------------------------------------------------------

    def _sleep_s(self, seconds: float, *, is_reconnecting: bool = False) -> None:
        self._sleep_until(
            self.clock.now_ns() + round(seconds * NS_PER_S), is_reconnecting=is_reconnecting
        )

    def open(self) -> psycopg.Connection[Any]:
        """The first connection (retried per the policy for ``connect_retry_s``).

        Raises:
            DatabaseUnavailableError: no server (exit 3). StopRequested: the run stopped.
        """
        self.conn = db.connect(
            self.spec.dsn,
            application_name=self.app_name,
            retry_for_s=self.spec.connect_retry_s,
            sleep=self._sleep_s,
        )
        self._mark_live()
        return self.conn

    def reconnect(self) -> None:
        """Reopen the connection with the policy's backoff; count the reconnect.

        Raises:
            StopRequested: the run is stopping.
            DatabaseUnavailableError: no server for ``connect_retry_s`` seconds, or it refused
                us for a reason retrying cannot fix (authentication, no such database).
        """
        self.close()
        conninfo = db.session_options(self.spec.dsn, {"application_name": self.app_name})

        def attempt() -> psycopg.Connection[Any]:
            conn = psycopg.connect(conninfo)
            try:
                if self.spec.owned_max_ids is not None:
                    hold_live_lock(conn)  # a coordinated run's connection holds the live lock
            except BaseException:
                conn.close()
                raise
            return conn

        def on_retry(attempt_number: int, exc: BaseException, wait_s: float) -> None:
            logger.info(
                "worker %d: reconnect failed (%s), next try in %.2f s",
                self.spec.worker_id,
                one_line(exc),
                wait_s,
            )

        attempts = retry.retrying(
            self.spec.connect_retry_s,
            sleep=lambda s: self._sleep_s(s, is_reconnecting=True),
            cap_s=RECONNECT_BACKOFF_CAP_S,
            on_retry=on_retry,
        )
        try:
            self.conn = attempts(attempt)
        except psycopg.Error as exc:
            raise DatabaseUnavailableError(
                f"worker {self.spec.worker_id}: no connection to {db.mask_dsn(self.spec.dsn)}"
                f" for {self.spec.connect_retry_s:g} s: {one_line(exc)}"
            ) from None
        self._stats().num_reconnects += 1
        logger.warning(
            "worker %d: reconnected (backend %d)", self.spec.worker_id, self.backend_pid()
        )

    def _mark_live(self) -> None:
        """Hold the live-run lock on the current connection (coordinated runs only)."""
        if self.spec.owned_max_ids is not None and self.conn is not None:
            hold_live_lock(self.conn)

    def ensure(self) -> psycopg.Connection[Any]:
        """The current connection, reopened first when it is gone."""
        if self.conn is None or self.conn.closed:
            self.reconnect()
        assert self.conn is not None
        return self.conn

    def is_broken(self) -> bool:
        conn = self.conn
        return conn is None or conn.closed or conn.broken

    # -- failures --------------------------------------------------------------------------

    def on_failure(self, exc: psycopg.Error, names: list[str], tries: int) -> bool:
        """Count a failed attempt of a transaction of ``names``; True to run it again.

        Raises:
            NoProgressError: too many failures in a row (see the module's docstring).
            psycopg.Error: ``exc`` itself, a permanent class under ``fail_fast_on_critical``.
            StopRequested, DatabaseUnavailableError: from reconnecting.
        """
        stats = self._stats()
        code = retry.sqlstate(exc)
        action = retry.action(exc, is_connection_broken=self.is_broken())
        if action is retry.Action.RECONNECT:
            stats.record_error(code[:2])
            logger.warning(
                "worker %d: connection lost (%s); reconnecting", self.spec.worker_id, one_line(exc)
            )
            self.reconnect()
            return True  # the transaction did not commit: run it again on the new connection
        if action is retry.Action.RETRY and tries < self.spec.max_tries:
            stats.num_retried += 1
            return True
        stats.record_error(code[:2], num_ops=len(names))
        self.num_failed_in_a_row += 1
        is_permanent = action is retry.Action.GIVE_UP
        self.num_permanent_in_a_row = self.num_permanent_in_a_row + 1 if is_permanent else 0
        level = logging.DEBUG if code in self._warned else logging.WARNING
        self._warned.add(code)  # one warning per SQLSTATE: the summary counts them all
        logger.log(
            level,
            "worker %d: %s failed: %s %s",
            self.spec.worker_id,
            ",".join(sorted(set(names))),
            code,
            one_line(exc),
        )
        if is_permanent and self.spec.fail_fast_on_critical:
            raise exc
        limit = NO_PROGRESS_TRIES if self.has_committed else NO_PROGRESS_TRIES_AT_START
        if self.num_permanent_in_a_row >= limit:
            raise NoProgressError(
                f"no progress: {self.num_permanent_in_a_row} transactions in a row failed with"
                f" SQLSTATE {code} ({one_line(exc)}), which retrying cannot fix"
            ) from None
        if self.num_failed_in_a_row >= MAX_CONSECUTIVE_FAILURES:
            raise NoProgressError(
                f"no progress: {self.num_failed_in_a_row} transactions in a row failed;"
                f" last error SQLSTATE {code}: {one_line(exc)}"
            ) from None
        return False

    def on_commit(self) -> None:
        """A transaction committed: the failure streaks end."""
        self.num_permanent_in_a_row = self.num_failed_in_a_row = 0
        self.has_committed = True

    # -- in-doubt commits ------------------------------------------------------------------

    def pending_status(self, txid: int) -> str | None:
        """What became of ``txid`` (a COMMIT failed): reconnect if needed, ask the server."""
        try:
            if self.is_broken():
                self.reconnect()
            status = self.resolve(txid, reconnect=False)
        except psycopg.Error:
            return None
        return status if status in ("committed", "aborted") else None

    def resolve(self, txid: int | None, *, reconnect: bool = True) -> str:
        """After a COMMIT failed: (reconnect and) ask the server what became of ``txid``.

        Returns ``"committed"``, ``"aborted"`` or why it is unknown. Raises StopRequested.
        """
        if reconnect:
            self.reconnect()
        if not txid:
            return "no transaction id"
        deadline_ns = self.clock.now_ns() + round(IN_DOUBT_POLL_S * NS_PER_S)
        status: str | None = None
        while True:
            conn = self.ensure()
            try:
                status = xact_status(conn, [txid]).get(txid)
            except psycopg.Error as exc:
                lost = retry.action(exc, is_connection_broken=self.is_broken())
                if lost is not retry.Action.RECONNECT:
                    return f"pg_xact_status failed: {one_line(exc)}"
                self.reconnect()
                continue
            if status in ("committed", "aborted"):
                return status
            if status is None or self.clock.now_ns() >= deadline_ns:
                return f"pg_xact_status {status}"
            self._sleep_until(self.clock.now_ns() + 50 * NS_PER_MS)

    # -- small helpers ---------------------------------------------------------------------

    def cancel(self) -> None:
        """Ask the server to cancel the statement running on the connection (any thread)."""
        conn = self.conn
        if conn is None or conn.closed:
            return
        try:
            conn.cancel_safe(timeout=CANCEL_TIMEOUT_S)
        except (psycopg.Error, OSError) as exc:
            logger.debug("worker %d: cancel failed: %s", self.spec.worker_id, exc)

    def rollback_quietly(self) -> None:
        if not self.is_broken():
            assert self.conn is not None
            try:
                self.conn.rollback()
            except psycopg.Error:
                self.conn.close()

    def end_txn_quietly(self) -> None:
        if self.conn is not None and not self.conn.autocommit:
            self.conn.rollback()

    def backend_pid(self) -> int:
        if self.is_broken():
            return 0
        assert self.conn is not None
        return int(self.conn.info.backend_pid)

    def close(self) -> None:
        if self.conn is not None:
            self.conn.close()
        self.conn = None
