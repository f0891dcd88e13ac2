"""Ask the server what became of transactions: ``pg_xact_status(xid8)`` (``txid_status`` < 13).

Used by the worker after a connection died in COMMIT, by the coordinator for a dead worker's
last intent, and by ``cdc verify`` for every intent the ledger has no outcome for. A status is
``committed``, ``aborted``, ``in progress``, or None when the server cannot tell (the xid is
older than the commit log it keeps, or not from this cluster).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING

import psycopg

if TYPE_CHECKING:  # the reader (msgspec, numpy) is not a worker's to import
    from loadgen.ledger.reader import Resolver

_BATCH = 10_000  # xids per query


def _function(conn: psycopg.Connection) -> str:
    return (
        "pg_xact_status(x::text::xid8)" if conn.info.server_version >= 130000 else "txid_status(x)"
    )


def xact_status(conn: psycopg.Connection, txids: Sequence[int]) -> dict[int, str | None]:
    """Status of each transaction (64-bit ids, as ``pg_current_xact_id()`` gave them).

    Runs read-only queries on ``conn`` (autocommit or not; a transaction it opens is ended).
    An xid the server rejects (from another cluster: "in the future") gets None.

    Raises:
        psycopg.OperationalError: the connection is lost (the caller reconnects or gives up).
    """
    out: dict[int, str | None] = {}
    func = _function(conn)
    query = f"SELECT x, {func} FROM unnest(%s::bigint[]) AS x"
    ids = list(dict.fromkeys(int(t) for t in txids))
    try:
        for i in range(0, len(ids), _BATCH):
            batch = ids[i : i + _BATCH]
            try:
                rows = conn.execute(query, (batch,)).fetchall()
            except psycopg.OperationalError:
                raise
            except psycopg.Error:  # one bad xid spoils the batch: ask one by one
                _end(conn)
                rows = []
                for x in batch:
                    try:
                        rows += conn.execute(query, ([x],)).fetchall()
                    except psycopg.OperationalError:
                        raise
                    except psycopg.Error:
                        _end(conn)
                        rows.append((x, None))
            for x, status in rows:
                out[int(x)] = None if status is None else str(status)
    finally:
        _end(conn)
    return out


def _end(conn: psycopg.Connection) -> None:
    if not conn.closed and not conn.broken and not conn.autocommit:
        conn.rollback()


def server_resolver(conn: psycopg.Connection) -> Resolver:
    """A ``loadgen.ledger.reader.Resolver`` that asks ``conn``'s server."""

    def resolve(txids: Sequence[int]) -> Mapping[int, str | None]:
        return xact_status(conn, txids)

    return resolve
