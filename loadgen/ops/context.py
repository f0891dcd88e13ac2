"""What an operation's ``run`` works with: the worker's candidates, its generators, statements.

One ``Context`` per ``Workload`` (one worker process, one thread). ``insert`` and ``many`` run
one ``Statement`` for a group of operations on a text-loading cursor in pipeline mode and
turn what ``RETURNING`` gave back into ``RowChange`` s (full text after-images).
"""

from __future__ import annotations

import random
from collections.abc import Sequence
from typing import Any

import psycopg

from loadgen.ledger.changes import RowChange
from loadgen.ops.rowgen import RowGenerator
from loadgen.ops.state import Candidates
from loadgen.ops.statement import Statement
from loadgen.ops.statements import insert_sql, insert_unnest_sql

Cursor = psycopg.Cursor[Any]


class Context:
    """The state and helpers shared by every operation of one worker.

    Attributes:
        state: the candidate pools and parent ids.
        gen: the parameter buffers (``take(cur, source, k)``).
        rnd: picks among candidates (uniform; seeded from the workload's generator).
        multirow_inserts: run a group of inserts as one ``INSERT ... SELECT FROM unnest``
            instead of ``executemany`` of one INSERT per row.
    """

    def __init__(
        self,
        state: Candidates,
        gen: RowGenerator,
        rnd: random.Random,
        *,
        multirow_inserts: bool,
    ) -> None:
        self.state = state
        self.gen = gen
        self.rnd = rnd
        self.multirow_inserts = multirow_inserts
        self._rendered: dict[tuple[str, tuple[str, ...], tuple[str, ...]], bytes] = {}

    def many(
        self,
        cur: Cursor,
        st: Statement,
        op_name: str,
        chosen: Sequence[tuple[Any, ...]] = (),
        generated: Sequence[tuple[Any, ...]] = (),
    ) -> list[RowChange]:
        """Run an UPDATE/DELETE ``st`` once per parameter row (``executemany``).

        Rows come from ``st.bind(chosen, generated)``; returns one RowChange per row the
        server changed (``after`` None for deletes), in execution order.
        """
        assert st.sql is not None, f"{st.table}: an UPDATE/DELETE statement needs its SQL"
        params = st.bind(chosen, generated)
        if not params:
            return []
        cur.executemany(st.sql, params, returning=True)
        return _returned(cur, st, op_name)

    def insert(
        self,
        cur: Cursor,
        st: Statement,
        op_name: str,
        chosen: Sequence[tuple[Any, ...]] = (),
        generated: Sequence[tuple[Any, ...]] = (),
    ) -> list[RowChange]:
        """Insert one row per parameter row of ``st``; RowChanges of the rows inserted."""
        rows = st.bind(chosen, generated)
        if not rows:
            return []
        if not self.multirow_inserts:
            cur.executemany(insert_sql(st.table, st.columns, st.on_conflict), rows, returning=True)
            return _returned(cur, st, op_name)
        key = (st.table, st.columns, st.on_conflict)
        query = self._rendered.get(key)
        if query is None:  # render once: a Composed query is rendered on every execute
            types = tuple(self.state.column_types[st.table][c] for c in st.columns)
            query = self._rendered[key] = insert_unnest_sql(
                st.table, st.columns, types, st.on_conflict
            ).as_bytes(cur)
        cur.execute(query, [list(column) for column in zip(*rows, strict=True)])
        returned = cur.fetchall()  # in pipeline mode, description exists after the fetch
        names = [col.name for col in cur.description or ()]
        table = st.table
        out: list[RowChange] = []
        for row in returned:
            after = dict(zip(names, row, strict=True))
            out.append(RowChange(table, "c", int(after["id"]), after, op_name))
        return out


def _returned(cur: Cursor, st: Statement, op_name: str) -> list[RowChange]:
    """RowChanges of every result set an ``executemany(..., returning=True)`` left on ``cur``."""
    out: list[RowChange] = []
    names: list[str] | None = None  # one statement: every result has the same columns
    table, op = st.table, st.change
    while True:
        if cur.pgresult is not None and cur.pgresult.nfields:
            if names is None:
                names = [col.name for col in cur.description or ()]
            for row in cur.fetchall():
                after = dict(zip(names, row, strict=True))
                out.append(
                    RowChange(table, op, int(after["id"]), None if op == "d" else after, op_name)
                )
        if not cur.nextset():
            return out
