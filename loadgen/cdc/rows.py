"""Table rows as a CDC stream carries them: which columns, and each value as PostgreSQL text.

One way to turn a row into text: the server's own output functions (COPY's text format, or the
text result format), never ``col::text`` (a cast, which differs for boolean ``true``/``t`` and
inet ``/32``). That is what pgoutput sends, what the ledger records, and what the Debezium
reader rebuilds. Which columns: those the publication carries (``pg_publication_tables``
knows generated columns and column lists), in table order; without a publication, every
column that is not generated.
"""

from __future__ import annotations

from array import array
from collections.abc import Callable, Sequence
from typing import Any, Protocol

import numpy as np
import numpy.typing as npt
import psycopg
from psycopg import sql

from loadgen.cdc.hashing import row_hash
from loadgen.schema import table_columns as table_columns  # rows' column lists start here

RowMap = Callable[[tuple[str | None, ...]], tuple[str | None, ...]]


def _regclass(conn: psycopg.Connection, table: str) -> str:
    return sql.Identifier(table).as_string(conn)


def published_columns(
    conn: psycopg.Connection, table: str, publication: str | None = None
) -> list[str]:
    """The columns of ``table`` a stream from ``publication`` carries, in table order.

    ``pg_publication_tables.attnames`` (PostgreSQL 15+) knows column lists and generated
    columns; a table the publication does not list (a partition published via its root, or
    no publication given) falls back to ``table_columns``.
    """
    columns = table_columns(conn, table)
    if publication is None or conn.info.server_version < 150000:
        return columns
    row = conn.execute(
        "SELECT attnames FROM pg_publication_tables WHERE pubname = %s"
        " AND schemaname = current_schema() AND tablename = %s",
        (publication, table),
    ).fetchone()
    if row is None or row[0] is None:
        return columns
    carried = set(row[0])
    return [c for c in columns if c in carried]


def text_row(
    conn: psycopg.Connection, table: str, columns: Sequence[str], pk: int
) -> dict[str, str | None] | None:
    """The row ``id = pk`` of ``table`` as column → the server's text output (None: absent)."""
    q = sql.SQL("SELECT {} FROM {} WHERE id = %s").format(
        sql.SQL(", ").join(map(sql.Identifier, columns)), sql.Identifier(table)
    )
    with conn.cursor() as cur:
        cur.execute(q, (pk,))
        res = cur.pgresult
        if res is None or res.ntuples == 0:
            return None
        enc = conn.info.encoding
        values = [res.get_value(0, j) for j in range(res.nfields)]
    return {c: None if v is None else v.decode(enc) for c, v in zip(columns, values, strict=True)}


FETCH_ROWS = 20_000  # rows per round trip when reading a table whole


def table_hashes(
    conn: psycopg.Connection, table: str, columns: list[str], row_map: RowMap | None = None
) -> tuple[npt.NDArray[np.int64], npt.NDArray[np.int64]]:
    """(id, row_hash) of every row of ``table``, sorted by id. Streams the table through a
    server-side cursor, ``FETCH_ROWS`` rows a round trip, every column as text by its
    type's output function (``format('%s', ...)``: the text pgoutput and COPY carry; a cast
    to text is not always that: ``char(n)`` trims, ``inet`` adds the mask); psycopg builds
    each batch's rows in C, where COPY's row-by-row reads cost a Python generator step each.

    ``row_map`` rewrites each row's values before hashing (e.g. into what a source with
    encoding limits delivers for them).
    """
    pks, hashes = array("q"), array("q")  # 16 bytes per row, not two Python ints
    names = tuple(columns)
    id_pos = columns.index("id")
    q = sql.SQL("SELECT {} FROM {}").format(
        sql.SQL(", ").join(
            sql.SQL("CASE WHEN {c} IS NULL THEN NULL ELSE format('%s', {c}) END").format(
                c=sql.Identifier(c)
            )
            for c in columns
        ),
        sql.Identifier(table),
    )
    with conn.transaction(), conn.cursor(name="loadgen_final_state") as cur:
        cur.execute(q)
        while rows := cur.fetchmany(FETCH_ROWS):
            pks.extend([int(r[id_pos]) for r in rows])
            if row_map is not None:
                rows = [row_map(r) for r in rows]  # type: ignore[misc]
            hashes.extend([row_hash(names, r) for r in rows])
    pk_a = np.frombuffer(pks, np.int64) if len(pks) else np.zeros(0, np.int64)
    h_a = np.frombuffer(hashes, np.int64) if len(hashes) else np.zeros(0, np.int64)
    order = np.argsort(pk_a, kind="stable")
    return pk_a[order], h_a[order]


def column_types(conn: psycopg.Connection, table: str) -> list[dict[str, Any]]:
    """Per column of ``table`` in table order: name, type (domains resolved to their base),
    typmod, element type of an array (None otherwise), NOT NULL, generated."""
    rows = conn.execute(
        "SELECT a.attname, coalesce(b.typname, t.typname), a.atttypmod, e.typname,"
        " a.attnotnull, a.attgenerated <> '', coalesce(b.oid, t.oid)"
        " FROM pg_attribute a JOIN pg_type t ON t.oid = a.atttypid"
        " LEFT JOIN pg_type b ON t.typtype = 'd' AND b.oid = t.typbasetype"
        " LEFT JOIN pg_type e ON e.oid = coalesce(b.typelem, t.typelem)"
        " AND coalesce(b.typcategory, t.typcategory) = 'A'"
        " WHERE a.attrelid = to_regclass(%s) AND a.attnum > 0 AND NOT a.attisdropped"
        " ORDER BY a.attnum",
        (_regclass(conn, table),),
    ).fetchall()
    return [
        {
            "name": str(n),
            "type": str(t),
            "typmod": int(m),
            "element": None if e is None else str(e),
            "not_null": bool(nn),
            "generated": bool(g),
            "type_oid": int(oid),
        }
        for n, t, m, e, nn, g, oid in rows
    ]


def replica_identity(conn: psycopg.Connection, table: str) -> tuple[str, tuple[str, ...]]:
    """(relreplident, the identity's columns): d default (the primary key), f full (every
    column), i a unique index, n nothing."""
    reg = _regclass(conn, table)
    row = conn.execute(
        "SELECT relreplident FROM pg_class WHERE oid = to_regclass(%s)", (reg,)
    ).fetchone()
    kind = "d" if row is None else str(row[0])
    if kind == "f":
        return kind, tuple(table_columns(conn, table))
    if kind == "n":
        return kind, ()
    flag = "indisprimary" if kind == "d" else "indisreplident"
    cols = conn.execute(
        sql.SQL(
            "SELECT a.attname FROM pg_index i JOIN pg_attribute a ON a.attrelid = i.indrelid"
            " AND a.attnum = ANY (i.indkey) WHERE i.indrelid = to_regclass(%s) AND i.{}"
            " ORDER BY array_position(i.indkey::int2[], a.attnum)"
        ).format(sql.Identifier(flag)),
        (reg,),
    ).fetchall()
    return kind, tuple(str(r[0]) for r in cols)


class Catalog(Protocol):
    """What a reader needs to know of the tables (the database's catalog, or a recorded copy)."""

    def column_types(self, table: str) -> list[dict[str, Any]]:
        """``column_types`` of ``table`` (empty: no such table)."""
        ...

    def replica_identity(self, table: str) -> tuple[str, tuple[str, ...]]:
        """``replica_identity`` of ``table``."""
        ...


class DbCatalog:
    """``Catalog`` read from the database (the connection's current schema)."""

    def __init__(self, conn: psycopg.Connection) -> None:
        self.conn = conn

    def column_types(self, table: str) -> list[dict[str, Any]]:
        return column_types(self.conn, table)

    def replica_identity(self, table: str) -> tuple[str, tuple[str, ...]]:
        return replica_identity(self.conn, table)
