"""Run a scenario's transactions and record the committed ones, with text after-images.

Every row a scenario writes comes back through ``RETURNING`` every column (or a ``SELECT``),
read as the raw text result (``text_rows``), so the after-image is exactly PostgreSQL's text
output under the session settings ``loadgen.db`` pins: the text a pgoutput stream carries. A
transaction's changes reach the ledger as its *intent* just before COMMIT is sent (durably: the
ledger contract, ``loadgen.ledger.writer``) and its *outcome* after COMMIT returned; rolled-back
work (a whole transaction, or a savepoint inside one) never reaches the ledger.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, Protocol

import psycopg
from psycopg import sql

from loadgen import schema
from loadgen.ledger.changes import RowChange
from loadgen.op_names import scenario_op_name

TextRow = dict[str, str | None]


class TxnLog(Protocol):
    """Where a recorder reports each transaction: ``LedgerWriter``, or a stream worker's log
    (which also counts). Called from the thread that owns the connection."""

    def intent(self, txid: int, changes: Sequence[RowChange]) -> None:
        """Before COMMIT; raising (the ledger cannot be written) rolls the transaction back."""

    def outcome(
        self, txid: int, status: Any, *, by: str = ..., commit_time: str | None = ...
    ) -> None:
        """After COMMIT returned (``status`` "committed")."""


@dataclass(frozen=True, slots=True)
class CommittedTxn:
    """One committed scenario transaction, as written to the ledger."""

    txid: int  # pg_current_xact_id() (xid8, with epoch)
    commit_time: str  # ISO 8601, UTC, taken just after COMMIT returned
    changes: tuple[RowChange, ...]


@dataclass(frozen=True, slots=True)
class Identity:
    """A table's replica identity: ``kind`` is relreplident (d, f, i, n)."""

    kind: str
    columns: tuple[str, ...]  # the identity's columns (all columns for FULL)


def table_columns(conn: psycopg.Connection, table: str) -> tuple[str, ...]:
    """The columns of ``table`` (current schema) a CDC stream carries, in table order
    (``schema.table_columns``, as the verifier reads them)."""
    columns = schema.table_columns(conn, table)
    if not columns:
        raise psycopg.errors.UndefinedTable(f"table {table} not found (run `loadgen scenario run`)")
    return tuple(columns)


def replica_identity(conn: psycopg.Connection, table: str) -> Identity:
    """The replica identity of ``table`` and the columns it covers."""
    kind = str(
        conn.execute(
            "SELECT relreplident FROM pg_class WHERE oid = to_regclass(%s)", (table,)
        ).fetchone()[0]  # type: ignore[index]
    )
    if kind == "f":
        return Identity(kind, table_columns(conn, table))
    if kind == "n":
        return Identity(kind, ())
    flag = "indisprimary" if kind == "d" else "indisreplident"
    rows = conn.execute(
        sql.SQL(
            "SELECT a.attname FROM pg_index i JOIN pg_attribute a ON a.attrelid = i.indrelid"
            " AND a.attnum = ANY (i.indkey) WHERE i.indrelid = to_regclass(%s) AND i.{}"
            " ORDER BY array_position(i.indkey::int2[], a.attnum)"
        ).format(sql.Identifier(flag)),
        (table,),
    ).fetchall()
    return Identity(kind, tuple(str(r[0]) for r in rows))


def column_list(columns: Sequence[str]) -> sql.Composable:
    """``"a", "b"``: the columns, as identifiers."""
    return sql.SQL(", ").join(map(sql.Identifier, columns))


def text_rows(
    conn: psycopg.Connection,
    query: sql.SQL | sql.Composed,
    params: Sequence[Any] | Mapping[str, Any] | None = None,
) -> list[tuple[str | None, ...]]:
    """Run ``query``; return its rows as the server's text output, untouched.

    The values are the bytes the server's output functions produced (text result format),
    decoded, so they equal what pgoutput sends. ``col::text`` is not the same: the casts of
    boolean (``true`` vs ``t``) and inet (``/32`` kept) differ from their output functions.
    """
    with conn.cursor() as cur:
        cur.execute(query, params)
        res = cur.pgresult
        if res is None or res.nfields == 0:
            return []
        enc = conn.info.encoding
        get = res.get_value
        nf = res.nfields
        out = []
        for i in range(res.ntuples):
            vals = [get(i, j) for j in range(nf)]
            out.append(tuple(None if v is None else v.decode(enc) for v in vals))
        return out


def _value(v: Any) -> sql.Composable:
    return v if isinstance(v, sql.Composable) else sql.Literal(v)


def cast(text: str | None, type_name: str) -> sql.Composable:
    """``'text'::type``: a value given as PostgreSQL input text (NULL for None)."""
    if text is None:
        return sql.SQL("NULL::{}").format(sql.SQL(type_name))
    return sql.SQL("{}::{}").format(sql.Literal(text), sql.SQL(type_name))


@dataclass
class Txn:
    """The changes of one open transaction; row helpers run the DML and record its result.

    Values given to the helpers are Python values (sent as literals through psycopg, so
    adapted safely) or ``psycopg.sql`` composables for expressions (``sql.SQL("now()")``).
    """

    rec: Recorder
    txid: int
    changes: list[RowChange] = field(default_factory=list)

    @property
    def conn(self) -> psycopg.Connection:
        return self.rec.conn

    def add(
        self,
        table: str,
        op: str,
        row: TextRow | None,
        pk: int,
        *,
        old_pk: int | None = None,
        before: TextRow | None = None,
    ) -> None:
        """Record a change the helpers did not make (e.g. the halves of a partition move)."""
        self.changes.append(RowChange(table, op, pk, row, self.rec.op_name, old_pk, before))

    def dml(
        self,
        op: str,
        table: str,
        statement: sql.Composable,
        params: Sequence[Any] | Mapping[str, Any] | None = None,
    ) -> list[TextRow]:
        """Run an INSERT/UPDATE/DELETE on ``table``, append ``RETURNING`` every column as text.

        Records one change per returned row, in the order the server returns them (the
        order it wrote them). Returns the text rows.
        """
        cols = self.rec.columns(table)
        query = sql.SQL("{} RETURNING {}").format(statement, column_list(cols))
        rows = [dict(zip(cols, r, strict=True)) for r in text_rows(self.conn, query, params)]
        for row in rows:
            pk = int(row["id"])  # type: ignore[arg-type]
            self.add(table, op, None if op == "d" else row, pk)
        return rows

    def insert(self, table: str, values: Mapping[str, Any]) -> TextRow:
        """Insert one row; return its text after-image."""
        stmt = sql.SQL("INSERT INTO {} ({}) VALUES ({})").format(
            sql.Identifier(table),
            sql.SQL(", ").join(map(sql.Identifier, values)),
            sql.SQL(", ").join(_value(v) for v in values.values()),
        )
        return self.dml("c", table, stmt)[0]

    def record(self, op: str, table: str, pk: int) -> TextRow:
        """Record the row ``id = pk`` as it is now (read back as text) as an ``op`` change.

        For changes the helpers cannot see: rows written by COPY, by a cascade, or under a
        session setting (e.g. another TimeZone) that must not leak into the text image.
        """
        row = self.read(table, pk)
        self.add(table, op, row, pk)
        return row

    def read(self, table: str, pk: int, *, lock: bool = False) -> TextRow:
        """The row ``id = pk`` as text (``lock``: SELECT ... FOR UPDATE)."""
        cols = self.rec.columns(table)
        query = sql.SQL("SELECT {} FROM {} WHERE id = %s{}").format(
            column_list(cols), sql.Identifier(table), sql.SQL(" FOR UPDATE" if lock else "")
        )
        rows = text_rows(self.conn, query, (pk,))
        if not rows:
            raise LookupError(f"{table} id {pk} not found")
        return dict(zip(cols, rows[0], strict=True))

    def update(self, table: str, pk: int, values: Mapping[str, Any]) -> TextRow:
        """Update the row ``id = pk``; return its after-image (``values`` may change ``id``).

        When the update changes ``id`` the change carries ``old_pk``. With the recorder's
        ``track_before``, the change also carries the before-image the table's replica
        identity makes the server send.
        """
        old = self.read(table, pk, lock=True) if self.rec.track_before else None
        stmt = sql.SQL("UPDATE {} SET {} WHERE id = {}").format(
            sql.Identifier(table),
            sql.SQL(", ").join(
                sql.SQL("{} = {}").format(sql.Identifier(k), _value(v)) for k, v in values.items()
            ),
            sql.Literal(pk),
        )
        cols = self.rec.columns(table)
        got = text_rows(self.conn, sql.SQL("{} RETURNING {}").format(stmt, column_list(cols)))
        if not got:
            raise LookupError(f"{table} id {pk} not found")
        row = dict(zip(cols, got[0], strict=True))
        new_pk = int(row["id"])  # type: ignore[arg-type]
        before = self.rec.before_image(table, old, row) if old is not None else None
        self.add(table, "u", row, new_pk, old_pk=pk if new_pk != pk else None, before=before)
        return row

    def delete(self, table: str, pk: int) -> None:
        """Delete the row ``id = pk`` (recorded with its identity's before-image if tracked)."""
        old = self.read(table, pk, lock=True) if self.rec.track_before else None
        n = self.conn.execute(
            sql.SQL("DELETE FROM {} WHERE id = %s").format(sql.Identifier(table)), (pk,)
        ).rowcount
        if n != 1:
            raise LookupError(f"{table} id {pk} not found")
        before = self.rec.before_image(table, old, None) if old is not None else None
        self.add(table, "d", None, pk, before=before)

    def truncate(self, tables: Sequence[str], *, cascade_to: Sequence[str] = ()) -> None:
        """TRUNCATE ``tables`` (CASCADE when ``cascade_to`` names the tables it reaches).

        Records one ``t`` change per truncated table (pk 0), the given ones first.
        """
        self.conn.execute(
            sql.SQL("TRUNCATE {}{}").format(
                sql.SQL(", ").join(map(sql.Identifier, tables)),
                sql.SQL(" CASCADE" if cascade_to else ""),
            )
        )
        for t in (*tables, *cascade_to):
            self.add(t, "t", None, 0)

    @contextmanager
    def savepoint(self, *, rollback: bool) -> Iterator[None]:
        """A savepoint; with ``rollback``, its work is undone and its changes forgotten."""
        mark = len(self.changes)
        try:
            with self.conn.transaction():
                yield
                if rollback:
                    raise psycopg.Rollback()
        except BaseException:
            del self.changes[mark:]  # the savepoint was rolled back by the error
            raise
        if rollback:
            del self.changes[mark:]


class Recorder:
    """Runs transactions on one connection and records the committed ones.

    One instance per connection; not shared between threads. ``ledger`` receives each
    transaction's intent before its COMMIT and its outcome after; ``keep`` also keeps the
    committed ones in ``txns`` (tests; memory grows with the run).
    """

    def __init__(
        self,
        conn: psycopg.Connection,
        scenario: str,
        *,
        ledger: TxnLog | None = None,
        keep: bool = False,
        track_before: bool = False,
    ) -> None:
        self.conn = conn
        self.op_name = scenario_op_name(scenario)
        self.ledger = ledger
        self.keep = keep
        self.track_before = track_before
        self.txns: list[CommittedTxn] = []
        self.num_txns = 0
        self.num_changes = 0
        self._columns: dict[str, tuple[str, ...]] = {}
        self._identity: dict[str, Identity] = {}

    def columns(self, table: str) -> tuple[str, ...]:
        if table not in self._columns:
            self._columns[table] = table_columns(self.conn, table)
        return self._columns[table]

    def forget(self, table: str) -> None:
        """Forget what is cached about ``table`` (call after DDL on it)."""
        self._columns.pop(table, None)
        self._identity.pop(table, None)

    def identity(self, table: str) -> Identity:
        if table not in self._identity:
            self._identity[table] = replica_identity(self.conn, table)
        return self._identity[table]

    def before_image(self, table: str, old: TextRow, new: TextRow | None) -> TextRow | None:
        """What the server must send as the old tuple of an update (``new``) or delete.

        FULL: the whole old row. DEFAULT/USING INDEX: the identity's columns, for a delete
        always, for an update only when it changed one of them. NOTHING: no old tuple.
        """
        ident = self.identity(table)
        if ident.kind == "n":
            return None
        if ident.kind == "f":
            return dict(old)
        if new is not None and all(old[c] == new[c] for c in ident.columns):
            return None
        return {c: old[c] for c in ident.columns}

    @contextmanager
    def txn(self) -> Iterator[Txn]:
        """One transaction: its intent is recorded, it commits at the end of the block, then its
        outcome is recorded.

        An exception (or ``raise psycopg.Rollback()``) rolls it back: nothing is recorded. A
        ledger that cannot take the intent (``LedgerWriteError``) rolls it back too. A COMMIT
        that fails on a lost connection leaves the intent without an outcome (resolved from
        the server later). Blocks on the server; call from the thread that owns the connection.
        """
        committed: Txn | None = None
        with self.conn.transaction():
            row = self.conn.execute("SELECT pg_current_xact_id()::text::bigint").fetchone()
            t = Txn(self, int(row[0]))  # type: ignore[index]
            yield t
            if t.changes and self.ledger is not None:
                self.ledger.intent(t.txid, t.changes)  # before COMMIT, or no COMMIT
            committed = t
        if committed is None or not committed.changes:
            return  # rolled back via psycopg.Rollback, or nothing changed
        self._record(committed)

    def _record(self, t: Txn) -> None:
        commit_time = datetime.now(UTC).isoformat()
        if self.ledger is not None:
            self.ledger.outcome(t.txid, "committed", commit_time=commit_time)
        if self.keep:
            self.txns.append(CommittedTxn(t.txid, commit_time, tuple(t.changes)))
        self.num_txns += 1
        self.num_changes += len(t.changes)
