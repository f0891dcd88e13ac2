"""What a seed that did not finish leaves behind: its own rows removed, or the exact way out.

A seed commits piece by piece, so an interrupted or failed one has committed part of its rows.
``undo`` removes exactly this run's rows: into tables that were empty, one ``TRUNCATE`` of the
six seeded tables (the 12 convenios stay) unless another writer (a stream started meanwhile)
added rows outside this run's id ranges; otherwise, and with ``--append``, a ``DELETE`` of
this run's id ranges, children first; the tables are locked first, so no loader still writing
is missed. When
that is not possible (a second Ctrl-C, the connection is gone, a privilege is missing) the
message says what to run instead. Runs in the seeding (CLI) process, main thread.
"""

from __future__ import annotations

import signal
import threading
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ProcessPoolExecutor
from contextlib import contextmanager, suppress
from dataclasses import dataclass

import psycopg
from psycopg import sql

from loadgen import db_errors, interrupts, schema
from loadgen.dsn import first_line
from loadgen.errors import LoadgenError, RunAbortedError

UNDO_ATTEMPTS = 5  # a deadlock with a dying loader's last statement is retried this often


@dataclass(frozen=True)
class IdRange:
    """Ids ``first .. first + rows - 1`` that this run loads into ``table``."""

    table: str
    first: int
    rows: int

    @property
    def last(self) -> int:
        return self.first + self.rows - 1


def undo(conn: psycopg.Connection, ranges: list[IdRange], *, tables_were_empty: bool) -> None:
    """Remove this run's rows in one transaction (``conn`` in autocommit mode, idle).

    ``ranges`` are in foreign-key order (parents first); tables are locked children first, the
    order a loader still inside a piece takes its locks, so the two cannot deadlock. Blocks
    until the loaders' open transactions have ended (the lock waits for them); retries a few
    times when the server still picks this transaction as a deadlock victim.

    Raises:
        psycopg.Error: the server refused or the connection is gone (nothing was removed).
        KeyboardInterrupt: a second signal (the statement is cancelled; nothing was removed).
    """
    children_first = list(reversed(ranges))
    names = sql.SQL(", ").join(sql.Identifier(r.table) for r in children_first)
    for attempt in range(UNDO_ATTEMPTS):
        try:
            with conn.transaction():
                mode = "ACCESS EXCLUSIVE" if tables_were_empty else "EXCLUSIVE"
                conn.execute(sql.SQL(f"LOCK TABLE {{}} IN {mode} MODE").format(names))
                if tables_were_empty:
                    if not _others_wrote(conn, ranges):
                        conn.execute(sql.SQL("TRUNCATE {}").format(names))
                        return
                    schema.create_indexes(conn)  # the foreign-key checks of the DELETEs use them
                for r in children_first:
                    if r.rows:
                        conn.execute(
                            sql.SQL("DELETE FROM {} WHERE id BETWEEN %s AND %s").format(
                                sql.Identifier(r.table)
                            ),
                            (r.first, r.last),
                        )
                return
        except psycopg.errors.DeadlockDetected:
            if attempt == UNDO_ATTEMPTS - 1:
                raise
            time.sleep(0.2 * (attempt + 1))


def _others_wrote(conn: psycopg.Connection, ranges: list[IdRange]) -> bool:
    """Whether a table holds a row outside this run's range (a stream started meanwhile)."""
    for r in ranges:
        row = conn.execute(
            sql.SQL("SELECT EXISTS (SELECT 1 FROM {} WHERE id NOT BETWEEN %s AND %s)").format(
                sql.Identifier(r.table)
            ),
            (r.first, r.last),
        ).fetchone()
        if row is None or row[0]:
            return True
    return False


def _best_effort(step: Callable[[], None] | None) -> None:
    if step is None:
        return
    with suppress(Exception, KeyboardInterrupt):  # the message already says how to clean up
        step()


def _committed_nothing(conn: psycopg.Connection, ranges: list[IdRange]) -> bool:
    """True when none of ``ranges`` holds a row (False when that cannot be read)."""
    try:
        for r in ranges:
            if r.rows:
                row = conn.execute(
                    sql.SQL("SELECT EXISTS (SELECT 1 FROM {} WHERE id BETWEEN %s AND %s)").format(
                        sql.Identifier(r.table)
                    ),
                    (r.first, r.last),
                ).fetchone()
                if row is None or row[0]:
                    return False
    except (Exception, KeyboardInterrupt):
        return False
    return True


def recovery_hint(ranges: list[IdRange], *, tables_were_empty: bool, reseed: str) -> str:
    """How to get back to a clean state by hand (one line).

    ``reseed`` is the ``loadgen reset ...`` command that recreates and reseeds as asked.
    """
    if tables_were_empty:
        return (
            f"run `{reseed}` to drop the partly loaded tables and seed again (or `loadgen init"
            " --drop --yes` to leave them empty)"
        )
    deletes = "; ".join(
        f"DELETE FROM {r.table} WHERE id BETWEEN {r.first} AND {r.last}"
        for r in reversed(ranges)
        if r.rows
    )
    return f"to remove this run's rows, run in psql: BEGIN; {deletes}; COMMIT"


def why(exc: BaseException) -> str:
    """A short reason for a failed undo (one line)."""
    if isinstance(exc, KeyboardInterrupt):
        return "interrupted again"
    if isinstance(exc, psycopg.Error) and exc.sqlstate:
        return f"{first_line(exc)} (SQLSTATE {exc.sqlstate})"
    return first_line(exc)


def signal_name(exc: BaseException) -> str:
    """``SIGINT``/``SIGTERM`` for an ``Interrupted`` (a bare KeyboardInterrupt is SIGINT)."""
    return exc.signal_name if isinstance(exc, interrupts.Interrupted) else "SIGINT"


def interrupted_in_analyze(exc: BaseException) -> RunAbortedError:
    """A signal during the final ANALYZE: the seed's data is complete (exit 4 all the same)."""
    return RunAbortedError(
        f"seed interrupted by {signal_name(exc)} during ANALYZE: every row is loaded and"
        " indexed, only the planner statistics may be stale (run ANALYZE, or let autovacuum)"
    )


def unfinished(
    conn: psycopg.Connection,
    ranges: list[IdRange],
    failure: BaseException,
    *,
    tables_were_empty: bool,
    reseed: str,
    keep_usable: Callable[[], None] | None = None,
) -> LoadgenError:
    """Undo this run's rows after ``failure`` (indexes rebuilt when the load had dropped them)
    and return the error to raise, one line saying what happened and where the tables stand.

    ``failure`` is a KeyboardInterrupt (``Interrupted``: exit 4), a LoadgenError (its own exit
    code), a psycopg error (exit 3) or anything else (exit 4).
    """
    try:
        undo(conn, ranges, tables_were_empty=tables_were_empty)
        if tables_were_empty:
            schema.restore(conn)  # keys and indexes dropped for the load; cheap on empty tables
        outcome = "rolled back: the tables are as they were before this seed"
    except (Exception, KeyboardInterrupt) as exc:
        if _committed_nothing(conn, ranges):
            outcome = "nothing of this run was committed"
        else:
            _best_effort(keep_usable)
            hint = recovery_hint(ranges, tables_were_empty=tables_were_empty, reseed=reseed)
            outcome = (
                f"this run's committed rows are still in the tables (rolling back failed:"
                f" {why(exc)}); {hint}"
            )
    if isinstance(failure, KeyboardInterrupt):
        return RunAbortedError(f"seed interrupted by {signal_name(failure)}; {outcome}")
    if isinstance(failure, LoadgenError):
        return type(failure)(f"{failure}; {outcome}")
    if isinstance(failure, psycopg.Error):
        return db_errors.refused(failure, f"seed failed; {outcome}")
    return RunAbortedError(f"seed failed: {type(failure).__name__}: {failure}; {outcome}")


@contextmanager
def children_ignore_sigint() -> Iterator[None]:
    """Processes started inside inherit SIGINT ignored: a terminal's Ctrl-C reaches the whole
    process group, and only this process decides (it stops them). A SIGINT arriving meanwhile
    is held, not lost. Main thread only (elsewhere a no-op)."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGINT})
    handler = signal.signal(signal.SIGINT, signal.SIG_IGN)
    try:
        yield
    finally:
        signal.signal(signal.SIGINT, handler)
        signal.pthread_sigmask(signal.SIG_UNBLOCK, {signal.SIGINT})


def stop_pool(pool: ProcessPoolExecutor) -> None:
    """Cancel what is queued and end the worker processes now (their open transactions roll
    back on the server when their connections drop)."""
    # (the executor keeps no public handle on its processes; shutdown forgets them)
    processes = list((getattr(pool, "_processes", None) or {}).values())
    pool.shutdown(wait=False, cancel_futures=True)
    for process in processes:
        process.terminate()
    for process in processes:
        process.join(timeout=5)
