"""Reading the verifier's pgoutput slot: existence checks, the server encoding, and the rows
of ``pg_logical_slot_get_binary_changes`` in large batches, the next one fetched while the
caller works on the current one.

psycopg 3 has no replication-protocol API, so the slot is read through the SQL interface.
``iter_slot`` reads a temporary copy of the slot (``pg_copy_logical_replication_slot``) so
that verifying twice sees the same changes; ``consume=True`` reads (and so advances) the slot
itself, releasing its WAL.
"""

from __future__ import annotations

import logging
import queue
import threading
from collections.abc import Iterator
from typing import Any

import psycopg
from psycopg import sql

from loadgen.cdc.pgoutput import PgOutputMessage, decode
from loadgen.errors import ConfigError, SchemaMissingError

logger = logging.getLogger(__name__)

STATE_TABLE = "loadgen_cdc_state"  # never in the publication (unless --all-tables)
# upto_nchanges per call (a call still returns whole transactions): large, so the server's
# per-call cost (starting decoding from the slot's restart point) is paid rarely
DEFAULT_BATCH_CHANGES = 50_000
_PG_TO_PY_ENCODING = {
    "UTF8": "utf-8",
    "LATIN1": "latin-1",
    "SQL_ASCII": "utf-8",
    "WIN1252": "cp1252",
}


def python_encoding(conn: psycopg.Connection) -> str:
    """The server encoding as a Python codec name (pgoutput sends values in it)."""
    enc = str(conn.execute("SHOW server_encoding").fetchone()[0])  # type: ignore[index]
    return _PG_TO_PY_ENCODING.get(enc.upper(), enc.lower())


def slot_database(conn: psycopg.Connection, slot: str) -> str | None:
    """The database ``slot`` belongs to ("" for a physical slot), or None when no such slot.

    Slot names are unique across the server, but a logical slot can only be used, read or
    dropped from its own database: every lookup goes through here or ``_slot_here``.
    """
    row = conn.execute(
        "SELECT coalesce(database, '') FROM pg_replication_slots WHERE slot_name = %s", (slot,)
    ).fetchone()
    return None if row is None else str(row[0])


def _slot_here(conn: psycopg.Connection, slot: str) -> None:
    """Raise ConfigError when ``slot`` exists but belongs to another database (or is physical)."""
    where = slot_database(conn, slot)
    here = str(conn.execute("SELECT current_database()").fetchone()[0])  # type: ignore[index]
    if where is not None and where != here:
        owner = f"database {where}" if where else "physical replication"
        raise ConfigError(
            f"--slot {slot!r}: that slot belongs to {owner}, not {here};"
            " slot names are server-wide: pick another name (left untouched)"
        )


def require_slot_and_publication(conn: psycopg.Connection, slot: str, publication: str) -> None:
    """Check that the verifier's ``slot`` (pgoutput, this database) and ``publication`` exist.

    A missing one is the database lacking what ``cdc setup`` creates, like missing tables:
    exit 3 for both, naming the object and the fix (a malformed name is exit 2, earlier).

    Raises:
        SchemaMissingError: no such slot in this database, or no such publication.
        ConfigError: the slot belongs to another database or is not a pgoutput slot.
    """
    _slot_here(conn, slot)
    row = conn.execute(
        "SELECT plugin FROM pg_replication_slots WHERE slot_name = %s"
        " AND database = current_database()",
        (slot,),
    ).fetchone()
    if row is None:
        raise SchemaMissingError(
            f"--slot {slot!r}: no such replication slot in this database (run `loadgen cdc setup`)"
        )
    if row[0] != "pgoutput":
        raise ConfigError(f"--slot {slot!r}: plugin {row[0]}, need pgoutput")
    if (
        conn.execute("SELECT 1 FROM pg_publication WHERE pubname = %s", (publication,)).fetchone()
        is None
    ):
        raise SchemaMissingError(
            f"--publication {publication!r}: no such publication in this database"
            " (run `loadgen cdc setup`)"
        )


def iter_slot(
    conn: psycopg.Connection,
    slot: str,
    publication: str,
    *,
    upto_lsn: str | None = None,
    batch_changes: int = DEFAULT_BATCH_CHANGES,
    consume: bool = False,
    copy_name: str | None = None,
) -> Iterator[list[tuple[int, int, bytes]]]:
    """Yield batches of ``(lsn, xid, message bytes)`` from ``slot`` up to ``upto_lsn``.

    Reads a temporary copy of the slot (``copy_name``, created and dropped here) unless
    ``consume`` is set. Each batch holds about ``batch_changes`` messages (whole transactions:
    a call only stops at a commit), so memory stays bounded by the largest transaction.
    ``conn`` must be in autocommit mode. Blocks on the server's decoding.

    Raises:
        SchemaMissingError: the slot (or the publication) does not exist.
        ConfigError: the slot is not a pgoutput slot of this database.
    """
    require_slot_and_publication(conn, slot, publication)
    if upto_lsn is None:
        upto_lsn = str(conn.execute("SELECT pg_current_wal_lsn()::text").fetchone()[0])  # type: ignore[index]
    read_slot = slot
    if not consume:
        read_slot = copy_name or f"{slot[:40]}_v{conn.info.backend_pid}"
        conn.execute("SELECT pg_copy_logical_replication_slot(%s, %s, true)", (slot, read_slot))
    options = ["proto_version", "1", "publication_names", publication]
    if conn.info.server_version >= 140000:
        options += ["messages", "true"]
    query = sql.SQL(
        "SELECT (lsn - '0/0')::bigint, xid::text::bigint, data"
        " FROM pg_logical_slot_get_binary_changes(%s, %s::pg_lsn, %s, {})"
    ).format(sql.SQL(", ").join(sql.Literal(o) for o in options))
    try:
        yield from _prefetched(conn, query, (read_slot, upto_lsn, batch_changes))
    finally:
        if not consume:
            try:
                conn.execute("SELECT pg_drop_replication_slot(%s)", (read_slot,))
            except psycopg.Error as exc:  # a temporary slot also goes when the session ends
                logger.debug("dropping temporary slot %s: %s", read_slot, exc)


_DONE = object()


def _prefetched(
    conn: psycopg.Connection, query: sql.Composed, params: tuple[Any, ...]
) -> Iterator[list[tuple[int, int, bytes]]]:
    """The batches of ``query`` (run until it returns no row), each fetched by a reader
    thread while the caller works on the one before (one batch ahead: memory stays two
    batches). The connection is the reader's until this generator ends; ending it early
    (the caller stopped, SIGINT) cancels a fetch under way and waits for the thread."""
    batches: queue.Queue[Any] = queue.Queue(maxsize=1)
    stop = threading.Event()

    def put(item: Any) -> bool:
        while not stop.is_set():
            try:
                batches.put(item, timeout=0.1)
                return True
            except queue.Full:
                continue
        return False

    def read() -> None:
        try:
            with conn.cursor(binary=True) as cur:
                while not stop.is_set():
                    cur.execute(query, params)
                    rows = cur.fetchall()
                    if not rows or not put(rows):
                        break
            put(_DONE)
        except BaseException as exc:  # handed to the caller's thread, raised there
            put(exc)

    reader = threading.Thread(target=read, name="slot-reader", daemon=True)
    reader.start()
    try:
        while True:
            item = batches.get()
            if item is _DONE:
                return
            if isinstance(item, BaseException):
                raise item
            yield item
    finally:
        stop.set()
        if reader.is_alive():
            conn.cancel_safe()
        reader.join()


def iter_messages(
    conn: psycopg.Connection, slot: str, publication: str, **kwargs: object
) -> Iterator[tuple[int, int, PgOutputMessage]]:
    """Yield ``(lsn, xid, decoded message)`` for every message of ``iter_slot`` (same args)."""
    encoding = python_encoding(conn)
    for batch in iter_slot(conn, slot, publication, **kwargs):  # type: ignore[arg-type]
        for lsn, xid, data in batch:
            yield lsn, xid, decode(data, encoding)
