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


class SlotReader:
    """Reading ``slot`` up to ``upto_lsn`` (default: the WAL position at ``__enter__``) in
    batches of ``(lsn, xid, message bytes)``, each fetched by a reader thread while the caller
    works on the one before (one batch ahead: memory stays two batches).

    A context manager: ``__enter__`` checks the slot, makes the temporary copy it reads
    (``copy_name``; the slot itself with ``consume``) and starts fetching, so the server
    decodes while the caller does other work (loading the ledger); iterate for the batches.
    ``__exit__`` stops the reader (cancelling a fetch under way), waits for it and drops the
    copy. ``conn`` (autocommit) is shared: the caller's queries meanwhile wait for a fetch.
    Each batch holds about ``batch_changes`` messages (a call only stops at a commit).

    Raises (``__enter__``):
        SchemaMissingError: the slot (or the publication) does not exist.
        ConfigError: the slot is not a pgoutput slot of this database.
    """

    def __init__(
        self,
        conn: psycopg.Connection,
        slot: str,
        publication: str,
        *,
        upto_lsn: str | None = None,
        batch_changes: int = DEFAULT_BATCH_CHANGES,
        consume: bool = False,
        copy_name: str | None = None,
    ) -> None:
        self._conn, self._slot, self._publication = conn, slot, publication
        self._upto, self._batch, self._consume = upto_lsn, batch_changes, consume
        self._read_slot = slot if consume else copy_name or f"{slot[:40]}_v{conn.info.backend_pid}"
        self._batches: queue.Queue[Any] = queue.Queue(maxsize=1)
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._copied = False

    def __enter__(self) -> SlotReader:
        conn = self._conn
        require_slot_and_publication(conn, self._slot, self._publication)
        upto = self._upto
        if upto is None:
            upto = str(conn.execute("SELECT pg_current_wal_lsn()::text").fetchone()[0])  # type: ignore[index]
        if not self._consume:
            conn.execute(
                "SELECT pg_copy_logical_replication_slot(%s, %s, true)",
                (self._slot, self._read_slot),
            )
            self._copied = True
        options = ["proto_version", "1", "publication_names", self._publication]
        if conn.info.server_version >= 140000:
            options += ["messages", "true"]
        query = sql.SQL(
            "SELECT (lsn - '0/0')::bigint, xid::text::bigint, data"
            " FROM pg_logical_slot_get_binary_changes(%s, %s::pg_lsn, %s, {})"
        ).format(sql.SQL(", ").join(sql.Literal(o) for o in options))
        params = (self._read_slot, upto, self._batch)
        self._thread = threading.Thread(
            target=self._read, args=(query, params), name="slot-reader", daemon=True
        )
        self._thread.start()
        return self

    def _put(self, item: Any) -> bool:
        while not self._stop.is_set():
            try:
                self._batches.put(item, timeout=0.1)
                return True
            except queue.Full:
                continue
        return False

    def _read(self, query: sql.Composed, params: tuple[Any, ...]) -> None:
        try:
            with self._conn.cursor(binary=True) as cur:
                while not self._stop.is_set():
                    rows = cur.execute(query, params).fetchall()
                    if not rows or not self._put(rows):
                        break
            self._put(_DONE)
        except BaseException as exc:  # handed to the caller's thread, raised there
            self._put(exc)

    def __iter__(self) -> Iterator[list[tuple[int, int, bytes]]]:
        while True:
            item = self._batches.get()
            if item is _DONE:
                return
            if isinstance(item, BaseException):
                raise item
            yield item

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        if self._thread is not None:
            if self._thread.is_alive():
                self._conn.cancel_safe()
            self._thread.join()
        if self._copied:
            try:
                self._conn.execute("SELECT pg_drop_replication_slot(%s)", (self._read_slot,))
            except psycopg.Error as exc:  # a temporary slot also goes when the session ends
                logger.debug("dropping temporary slot %s: %s", self._read_slot, exc)


_DONE = object()


def iter_slot(
    conn: psycopg.Connection, slot: str, publication: str, **kwargs: Any
) -> Iterator[list[tuple[int, int, bytes]]]:
    """Yield the batches of a ``SlotReader`` (same arguments), from the first ``next()``."""
    with SlotReader(conn, slot, publication, **kwargs) as reader:
        yield from reader


def iter_messages(
    conn: psycopg.Connection, slot: str, publication: str, **kwargs: object
) -> Iterator[tuple[int, int, PgOutputMessage]]:
    """Yield ``(lsn, xid, decoded message)`` for every message of ``iter_slot`` (same args)."""
    encoding = python_encoding(conn)
    for batch in iter_slot(conn, slot, publication, **kwargs):  # type: ignore[arg-type]
        for lsn, xid, data in batch:
            yield lsn, xid, decode(data, encoding)
