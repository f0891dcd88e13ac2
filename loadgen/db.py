"""Connections: pinned session settings, retry with backoff, where the database comes from,
the server's free connections, schema presence, and psycopg errors as one line.

Every loadgen connection renders values the same way (TimeZone=UTC, DateStyle=ISO,
extra_float_digits=3, bytea_output=hex), so the ledger's text after-images and the text a
logical-replication stream carries can be compared byte for byte.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable

import psycopg
from psycopg import sql
from psycopg.conninfo import conninfo_to_dict, make_conninfo

from loadgen import retry, tables
from loadgen.dsn import database_name, first_line, mask_dsn, parse_dsn, scrub
from loadgen.errors import (
    ConfigError,
    DatabaseUnavailableError,
    SchemaMissingError,
)

logger = logging.getLogger(__name__)

PINNED_SETTINGS: dict[str, str] = {
    "TimeZone": "UTC",
    "DateStyle": "ISO",
    "extra_float_digits": "3",
    "bytea_output": "hex",
}
DEFAULT_CONNECT_TIMEOUT_S = 5
DEFAULT_RETRY_FOR_S = 30.0
# Retrying that goes on this long gets one notice on stderr (a wait that looks like a hang); a
# shorter one is silent there, its attempts in the log file: no server is one error line.
RETRY_NOTICE_AFTER_S = 5.0


def session_options(dsn: str, extra: dict[str, str] | None = None) -> str:
    """Return ``dsn`` as a conninfo string with the pinned session settings merged in.

    Settings already in the DSN's ``options`` (e.g. a test's ``search_path``) are kept; the
    pinned ones are appended, so they win for the keys they name.

    Raises:
        ConfigError: the DSN cannot be parsed (exit 2; the message never shows the password).
    """
    params: dict[str, str] = parse_dsn(dsn, "") if dsn.strip() else {}
    settings = dict(PINNED_SETTINGS)
    settings.update(extra or {})
    pinned = " ".join(f"-c {key}={value}" for key, value in settings.items())
    existing = str(params.get("options") or "").strip()
    params["options"] = f"{existing} {pinned}".strip()
    params.setdefault("connect_timeout", str(DEFAULT_CONNECT_TIMEOUT_S))
    return make_conninfo("", **params)


def _is_bad_option(reason: str) -> bool:
    """libpq rejected a connection option before any network I/O (bad port, sslmode...)."""
    return reason.startswith("connection is bad:") and "invalid" in reason


def connect(
    dsn: str,
    *,
    autocommit: bool = False,
    retry_for_s: float = DEFAULT_RETRY_FOR_S,
    application_name: str = "loadgen",
    sleep: Callable[[float], None] = time.sleep,
) -> psycopg.Connection:
    """Open a connection with pinned session settings, retrying what the retry policy says.

    ``loadgen.retry`` decides (by SQLSTATE) which failures are worth waiting for — the server
    unreachable, starting up, shutting down, out of connection slots — and waits between
    attempts with its backoff for up to ``retry_for_s`` seconds (``[db] connect_retry_s``).
    ``sleep`` waits (a stream worker's honours its stop). Any caller may use it, in any process.
    The attempts are logged at INFO/DEBUG (the log file); stderr gets one WARNING when an
    attempt is due ``RETRY_NOTICE_AFTER_S`` (5 s) or more after the first, and the error when
    it gives up.

    Raises:
        ConfigError: libpq rejected a connection option (exit 2).
        DatabaseUnavailableError: still failing after ``retry_for_s`` seconds, or the server
            refused for a reason retrying cannot fix (authentication, missing database); the
            message carries the DSN with its password masked.
    """
    conninfo = session_options(dsn, {"application_name": application_name})

    def worth_retrying(exc: BaseException) -> bool:
        return retry.can_reconnect(exc) and not _is_bad_option(first_line(exc))

    started = time.monotonic()
    waited_s = 0.0  # the waits asked for so far (a test's sleep may not pass any time)
    noticed = False

    def on_retry(attempt: int, exc: BaseException, wait_s: float) -> None:
        nonlocal waited_s, noticed
        reason = scrub(first_line(exc), dsn)
        if attempt == 1:
            logger.info(
                "cannot connect to %s (%s); retrying for up to %g s",
                mask_dsn(dsn),
                reason,
                retry_for_s,
            )
        else:
            logger.debug("retry %d: %s; next in %.2f s", attempt, reason, wait_s)
        next_try_s = max(time.monotonic() - started, waited_s) + wait_s
        waited_s += wait_s
        if not noticed and next_try_s >= RETRY_NOTICE_AFTER_S:
            noticed = True  # once; the error at the end says why, when it gives up
            logger.warning(
                "no connection to %s yet; still retrying, for up to %g s in all"
                " ([db] connect_retry_s)",
                mask_dsn(dsn),
                retry_for_s,
            )

    attempts = retry.retrying(
        retry_for_s, should_retry=worth_retrying, sleep=sleep, on_retry=on_retry
    )
    try:
        return attempts(psycopg.connect, conninfo, autocommit=autocommit)
    except psycopg.ProgrammingError as exc:  # e.g. PGCONNECT_TIMEOUT=abc in the environment
        raise ConfigError(
            f"invalid connection setting for {mask_dsn(dsn)}: {scrub(first_line(exc), dsn)}"
        ) from None
    except psycopg.OperationalError as exc:
        reason = scrub(first_line(exc), dsn)
        if _is_bad_option(reason):
            raise ConfigError(f"invalid DSN {mask_dsn(dsn)!r}: {reason}") from None
        if worth_retrying(exc):  # it would have been retried: the time ran out
            raise DatabaseUnavailableError(
                f"cannot connect to {mask_dsn(dsn)} after {retry_for_s:g} s of retries: {reason}"
            ) from None
        hint = (
            "; run `loadgen init` to create it"
            if "does not exist" in reason and "database" in reason
            else ""
        )
        raise DatabaseUnavailableError(
            f"cannot connect to {mask_dsn(dsn)}: {reason}{hint}"
        ) from None


def wait_for_server(dsn: str, *, retry_for_s: float = DEFAULT_RETRY_FOR_S) -> None:
    """Connect once (retried as ``connect`` does) and close: a command prints its plan line
    only once the server answered, so a server that is not there is one error line.

    Raises:
        ConfigError, DatabaseUnavailableError: as ``connect``.
    """
    connect(dsn, autocommit=True, retry_for_s=retry_for_s).close()


def current_schema(conn: psycopg.Connection) -> str | None:
    """``conn``'s current schema (the first existing one of its search_path); None: none."""
    row = conn.execute("SELECT current_schema()").fetchone()
    return None if not row or row[0] is None else str(row[0])


def missing_tables(conn: psycopg.Connection) -> list[str]:
    """Names of the hospital tables not visible through the connection's search_path."""
    rows = conn.execute(
        "SELECT t, to_regclass(t) IS NULL FROM unnest(%s::text[]) AS t",
        (list(tables.TABLE_NAMES),),
    ).fetchall()
    return [name for name, missing in rows if missing]


def missing_columns(conn: psycopg.Connection) -> dict[str, list[str]]:
    """Columns the workload and the seeder need that a hospital table lacks: table -> names,
    in foreign-key order and the tables' column order.

    Tables that are missing altogether are left out (``missing_tables`` names them).
    """
    wanted = [
        (spec.name, column)
        for spec in tables.TABLES
        for column in (*spec.columns, *spec.server_columns)
    ]
    rows = conn.execute(
        "SELECT w.tbl, w.col FROM unnest(%s::text[], %s::text[]) WITH ORDINALITY"
        " AS w(tbl, col, ord)"
        " WHERE to_regclass(w.tbl) IS NOT NULL AND NOT EXISTS (SELECT 1 FROM pg_attribute a"
        " WHERE a.attrelid = to_regclass(w.tbl) AND a.attname = w.col AND a.attnum > 0"
        " AND NOT a.attisdropped) ORDER BY w.ord",
        ([t for t, _ in wanted], [c for _, c in wanted]),
    ).fetchall()
    missing: dict[str, list[str]] = {}
    for table, column in rows:
        missing.setdefault(str(table), []).append(str(column))
    return missing


def require_schema(
    conn: psycopg.Connection, *, need_rows: bool = False, need_columns: bool = False
) -> None:
    """Raise unless every hospital table exists (with ``need_columns``, with every column the
    workload writes; with ``need_rows``, pacientes and medicos hold rows).

    Raises:
        SchemaMissingError: naming what is missing, with the fix (``loadgen init`` /
            ``loadgen seed``) in the message (exit 3).
    """
    missing = missing_tables(conn)
    if missing:
        raise SchemaMissingError(
            f"tables missing in database {conn.info.dbname!r}: {', '.join(missing)}; "
            "run `loadgen init` and `loadgen seed` first"
        )
    if need_columns:
        require_columns(conn)
    if need_rows:
        for table in ("pacientes", "medicos"):
            row = conn.execute(
                sql.SQL("SELECT EXISTS (SELECT 1 FROM {})").format(sql.Identifier(table))
            ).fetchone()
            if not row or not row[0]:
                raise SchemaMissingError(
                    f"table {table} is empty in database {conn.info.dbname!r}; "
                    "run `loadgen seed` first"
                )


def require_columns(conn: psycopg.Connection) -> None:
    """Raise unless every hospital table has every column the workload and the seeder write.

    Raises:
        SchemaMissingError: naming each table and its missing columns, and the fix (exit 3).
    """
    missing = missing_columns(conn)
    if missing:
        what = "; ".join(f"{table} lacks {', '.join(cols)}" for table, cols in missing.items())
        raise SchemaMissingError(
            f"columns missing in database {conn.info.dbname!r}: {what}; add them back as"
            " loadgen/sql/01_schema.sql defines them, or recreate the schema with"
            " `loadgen init --drop --yes` (its data is lost)"
        )


def ensure_database(dsn: str, *, retry_for_s: float = DEFAULT_RETRY_FOR_S) -> bool:
    """Create the database ``dsn`` names when it does not exist. Returns True when created.

    Connects to the ``postgres`` maintenance database with the same credentials.

    Raises:
        DatabaseUnavailableError: the server is unreachable, or the role may not create
            databases (the message names the database and the missing CREATEDB privilege).
    """
    name = database_name(dsn)
    params = conninfo_to_dict(dsn)
    params["dbname"] = "postgres" if name != "postgres" else "template1"
    maintenance = make_conninfo("", **params)
    with connect(maintenance, autocommit=True, retry_for_s=retry_for_s) as conn:
        row = conn.execute("SELECT 1 FROM pg_database WHERE datname = %s", (name,)).fetchone()
        if row:
            return False
        try:
            conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
        except psycopg.errors.InsufficientPrivilege:
            role = conn.info.user
            raise DatabaseUnavailableError(
                f"database {name!r} does not exist and role {role!r} may not create it "
                f"(needs the CREATEDB privilege); create it or ALTER ROLE {role} CREATEDB"
            ) from None
        except psycopg.errors.DuplicateDatabase:
            return False
        logger.info("created database %s", name)
        return True
