"""The one retry policy (``loadgen.retry``) on errors a real server and a real libpq produce:
what is waited for, what is given up at once, and how long the waiting lasts."""

from __future__ import annotations

import logging
import socket
import time

import psycopg
import pytest
from psycopg.conninfo import conninfo_to_dict, make_conninfo

from loadgen import db, retry
from loadgen.errors import DatabaseUnavailableError

pytestmark = pytest.mark.db


def _error(dsn: str, *statements: str) -> psycopg.Error:
    with psycopg.connect(dsn, autocommit=True) as conn:
        try:
            for statement in statements:
                conn.execute(statement)
        except psycopg.Error as exc:
            return exc
    raise AssertionError("no error")


def _connect_error(dsn: str) -> psycopg.Error:
    try:
        psycopg.connect(dsn, connect_timeout=3).close()
    except psycopg.Error as exc:
        return exc
    raise AssertionError("connected")


def _closed_port_dsn() -> str:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    return f"postgresql://postgres@127.0.0.1:{port}/x"


def test_statement_errors_are_decided_by_their_sqlstate(dsn: str) -> None:
    missing_column = _error(dsn, "CREATE TABLE t (a int)", "SELECT nope FROM t")
    assert retry.sqlstate(missing_column) == "42703"
    assert retry.action(missing_column) is retry.Action.GIVE_UP
    read_only = _error(dsn, "SET default_transaction_read_only = on", "CREATE TABLE u (a int)")
    assert retry.action(read_only) is retry.Action.GIVE_UP  # 25006: a standby, or read-only
    duplicate = _error(dsn, "CREATE TABLE v (a int PRIMARY KEY)", "INSERT INTO v VALUES (1), (1)")
    assert retry.sqlstate_class(duplicate) == "23"
    assert retry.action(duplicate) is retry.Action.SKIP  # the next attempt's data may do
    cancelled = _error(dsn, "SET statement_timeout = 1", "SELECT pg_sleep(1)")
    assert retry.action(cancelled) is retry.Action.SKIP


def test_a_terminated_session_is_reconnected(dsn: str) -> None:
    with psycopg.connect(dsn, autocommit=True) as victim, psycopg.connect(dsn) as admin:
        admin.execute("SELECT pg_terminate_backend(%s)", (victim.info.backend_pid,))
        admin.commit()
        with pytest.raises(psycopg.OperationalError) as info:
            victim.execute("SELECT 1")
    assert retry.action(info.value, is_connection_broken=victim.broken) is retry.Action.RECONNECT


def test_connect_failures_without_a_code_are_named(pg_dsn: str) -> None:
    unreachable = _connect_error(_closed_port_dsn())
    assert unreachable.sqlstate is None  # libpq says it in words only
    assert retry.sqlstate(unreachable) == "08001" and retry.can_reconnect(unreachable)
    params = conninfo_to_dict(pg_dsn)
    params["dbname"] = "lg_no_such_database"
    rejected = _connect_error(make_conninfo(**params))  # the server answers FATAL 3D000
    assert retry.sqlstate(rejected) == "08004" and not retry.can_reconnect(rejected)


def test_connect_gives_up_after_retry_for_s_and_at_once_when_retrying_cannot_help(
    pg_dsn: str,
) -> None:
    started = time.monotonic()
    with pytest.raises(DatabaseUnavailableError, match="after 1 s of retries"):
        db.connect(_closed_port_dsn(), retry_for_s=1.0)
    took_s = time.monotonic() - started
    assert took_s < 1.5  # never past the deadline (stop_before_delay)
    params = conninfo_to_dict(pg_dsn)
    params["dbname"] = "lg_no_such_database"
    started = time.monotonic()
    with pytest.raises(DatabaseUnavailableError, match="does not exist") as info:
        db.connect(make_conninfo(**params), retry_for_s=30.0)
    assert time.monotonic() - started < 3.0  # final: not retried for 30 s
    assert "retries" not in str(info.value)


def test_a_long_wait_gets_one_notice_and_a_short_one_none(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    """Nothing listening: every attempt is logged below WARNING; one WARNING (what stderr
    shows) when an attempt is due RETRY_NOTICE_AFTER_S after the first, without the reason
    the final error gives; none when the whole wait is shorter."""
    dsn = _closed_port_dsn()
    caplog.set_level(logging.DEBUG, logger="loadgen.db")
    with pytest.raises(DatabaseUnavailableError, match="after 1 s of retries.*refused"):
        db.connect(dsn, retry_for_s=1.0)
    assert db.RETRY_NOTICE_AFTER_S > 1.0
    assert not [r for r in caplog.records if r.levelno >= logging.WARNING]
    assert any("retrying for up to 1 s" in r.getMessage() for r in caplog.records)
    caplog.clear()

    monkeypatch.setattr(db, "RETRY_NOTICE_AFTER_S", 0.3)
    monkeypatch.setattr("random.uniform", lambda low, high: high)  # waits 0.25, 0.5, 1 s
    with pytest.raises(DatabaseUnavailableError, match="after 1.5 s of retries"):
        db.connect(dsn, retry_for_s=1.5)  # tries at 0, 0.25 and 0.75 s (1.75 is too late)
    (notice,) = [r.getMessage() for r in caplog.records if r.levelno >= logging.WARNING]
    assert notice == (
        f"no connection to {dsn} yet; still retrying, for up to 1.5 s in all ([db] connect_retry_s)"
    )
    assert sum("retry " in r.getMessage() for r in caplog.records) == 1  # the 2nd; 1st: INFO


def test_the_backoff_waits_stay_under_their_exponential_ceilings() -> None:
    waits: list[float] = []
    attempts = retry.retrying(
        10.0, sleep=waits.append, first_s=0.1, cap_s=0.4, should_retry=lambda e: True
    )
    calls = 0

    def flaky() -> str:
        nonlocal calls
        calls += 1
        if calls < 8:
            raise OSError("not yet")
        return "ok"

    assert attempts(flaky) == "ok"
    assert len(waits) == 7
    assert all(0 <= w <= min(0.4, 0.1 * 2**k) for k, w in enumerate(waits))  # full jitter
