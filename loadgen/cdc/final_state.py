"""Final-state check: the captured stream, replayed, must equal the tables' current contents.

Replaying is done on hashes: for each key the last captured change decides (its row hash, or
"absent" after a delete or a later TRUNCATE); each table is read once with COPY (text output,
the same renderings pgoutput sends) and hashed the same way. Keys the stream never touched
are not compared, except in tables the stream truncated, where every row must come from it.
"""

from __future__ import annotations

from array import array
from typing import Any

import numpy as np
import numpy.typing as npt
import psycopg
from psycopg import sql

from loadgen.cdc.ledger_index import by_key_stable, row_hash

_DELETE = 2


def table_columns(conn: psycopg.Connection, table: str) -> list[str]:
    """Columns of ``table`` (in the current schema) that pgoutput sends, in table order."""
    rows = conn.execute(
        "SELECT attname FROM pg_attribute WHERE attrelid = to_regclass(%s) AND attnum > 0"
        " AND NOT attisdropped AND attgenerated = '' ORDER BY attnum",
        (sql.Identifier(table).as_string(conn),),
    ).fetchall()
    return [str(r[0]) for r in rows]


def table_hashes(
    conn: psycopg.Connection, table: str, columns: list[str]
) -> tuple[npt.NDArray[np.int64], npt.NDArray[np.int64]]:
    """(id, row_hash) of every row of ``table``, sorted by id. Streams the table with COPY."""
    pks, hashes = array("q"), array("q")  # 16 bytes per row, not two Python ints
    names = tuple(columns)
    id_pos = columns.index("id")
    q = sql.SQL("COPY (SELECT {} FROM {}) TO STDOUT").format(
        sql.SQL(", ").join(map(sql.Identifier, columns)), sql.Identifier(table)
    )
    with conn.cursor() as cur, cur.copy(q) as copy:
        copy.set_types(["text"] * len(columns))
        for row in copy.rows():
            pks.append(int(row[id_pos]))
            hashes.append(row_hash(names, row))
    pk_a = np.frombuffer(pks, np.int64) if len(pks) else np.zeros(0, np.int64)
    h_a = np.frombuffer(hashes, np.int64) if len(hashes) else np.zeros(0, np.int64)
    order = np.argsort(pk_a, kind="stable")
    return pk_a[order], h_a[order]


def _row_text(
    conn: psycopg.Connection, table: str, columns: list[str], pk: int
) -> dict[str, Any] | None:
    q = sql.SQL("SELECT {} FROM {} WHERE id = %s").format(
        sql.SQL(", ").join(sql.SQL("{}::text").format(sql.Identifier(c)) for c in columns),
        sql.Identifier(table),
    )
    row = conn.execute(q, (pk,)).fetchone()
    return dict(zip(columns, row, strict=True)) if row else None


def compare(
    conn: psycopg.Connection,
    table_names: list[str],
    c_table: npt.NDArray[np.int64],
    c_pk: npt.NDArray[np.int64],
    c_op: npt.NDArray[np.int64],
    c_rowhash: npt.NDArray[np.int64],
    c_partial: npt.NDArray[np.int8],
    truncates: list[tuple[int, int]],
    max_examples: int,
) -> tuple[int, list[dict[str, Any]], list[str]]:
    """Compare the replayed captured state with the tables; return (failures, examples, notes).

    Args:
        c_*: per captured change in delivery order (arrays of shape ``(n,)``).
        truncates: (capture index, table code) for each captured TRUNCATE.
    """
    notes: list[str] = []
    examples: list[dict[str, Any]] = []
    count = 0
    n = len(c_table)
    last_trunc: dict[int, int] = {}
    for cidx, t in truncates:
        last_trunc[t] = max(last_trunc.get(t, -1), cidx)
    if n:
        idx = by_key_stable(c_table, c_pk)
        ts, ps = c_table[idx], c_pk[idx]
        is_last = np.r_[(ts[1:] != ts[:-1]) | (ps[1:] != ps[:-1]), True]
        last = idx[is_last]
    else:
        last = np.zeros(0, np.int64)
    num_partial = 0
    for t in sorted(set(c_table[last].tolist()) | set(last_trunc)):
        name = table_names[t]
        columns = table_columns(conn, name)
        if not columns:
            notes.append(f"table {name} no longer exists: final state not compared")
            continue
        sel = last[c_table[last] == t]
        tr = last_trunc.get(t, -1)
        present = (c_op[sel] != _DELETE) & (sel >= tr)  # tr: index of the first change after it
        keys, want, partial = c_pk[sel], c_rowhash[sel], c_partial[sel] != 0
        num_partial += int(partial.sum())
        tab_pk, tab_h = table_hashes(conn, name, columns)
        pos = np.minimum(np.searchsorted(tab_pk, keys), max(len(tab_pk) - 1, 0))
        if len(tab_pk):
            found, tab_h_at = tab_pk[pos] == keys, tab_h[pos]
        else:
            found, tab_h_at = np.zeros(len(keys), bool), np.zeros(len(keys), np.int64)
        problems: list[tuple[int, str]] = []
        for i in np.flatnonzero(present & ~found):
            problems.append((int(keys[i]), "captured stream has the row; the table does not"))
        for i in np.flatnonzero(~present & found):
            problems.append(
                (
                    int(keys[i]),
                    "captured stream deleted (or truncated) the row; the table still has it",
                )
            )
        for i in np.flatnonzero(present & found & ~partial & (tab_h_at != want)):
            problems.append((int(keys[i]), "row differs from the replayed captured stream"))
        if tr >= 0:  # after a TRUNCATE every row in the table must come from the stream
            kept = np.sort(keys[present])
            extra = tab_pk[~np.isin(tab_pk, kept)]
            problems.extend(
                (int(k), "row in a truncated table that the stream never inserted") for k in extra
            )
        count += len(problems)
        for pk, why in problems[: max(0, max_examples - len(examples))]:
            examples.append(
                {
                    "table": name,
                    "pk": pk,
                    "problem": why,
                    "table_row": _row_text(conn, name, columns, pk),
                }
            )
    if num_partial:
        notes.append(
            f"{num_partial} rows ended with an unchanged-TOAST value the stream never"
            " carried: their final state was compared on key only"
        )
    return count, examples, notes
