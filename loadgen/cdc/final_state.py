"""Final-state check: the captured stream, replayed, must equal the tables' current contents.

Replaying is done on hashes: for each key the last captured change decides (its row hash, or
"absent" after a delete or a later TRUNCATE; a snapshot read counts as the row being there);
each table is read once with COPY (``rows.table_hashes``: the server's text output, as the
stream carries it) and hashed the same way. Keys the stream never touched are not compared,
except in tables the stream truncated or a snapshot read whole, where every row must come from
the stream.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import numpy.typing as npt
import psycopg

from loadgen.cdc.change import EncodingLimits
from loadgen.cdc.ledger_index import by_key_stable
from loadgen.cdc.rows import RowMap, published_columns, table_hashes, text_row

_DELETE, _READ = 2, 3


def _limit_map(limits: EncodingLimits | None, code: int, columns: list[str]) -> RowMap | None:
    """Rewrite a table row into what the source delivers for it (its encoding limits)."""
    if limits is None:
        return None
    limited = [(i, c) for i, c in enumerate(columns) if c in limits.columns(code)]
    if not limited:
        return None

    def row_map(row: tuple[str | None, ...]) -> tuple[str | None, ...]:
        out = list(row)
        for i, c in limited:
            lv = limits.deliver(code, c, row[i])
            if lv is not None:
                out[i] = lv.delivered
        return tuple(out)

    return row_map


def compare(
    conn: psycopg.Connection,
    table_names: list[str],
    c: dict[str, npt.NDArray[Any]],
    truncates: list[tuple[int, int]],
    max_examples: int,
    *,
    full_tables: frozenset[int] = frozenset(),
    limits: EncodingLimits | None = None,
    publication: str | None = None,
) -> tuple[int, list[dict[str, Any]], list[str]]:
    """Compare the replayed captured state with the tables; return (failures, examples, notes).

    Args:
        c: per captured change in delivery order (``Verifier.columns``): table, pk, op,
            rowhash, flags (bit 0: partial), arrays of shape ``(n,)``; snapshot reads count
            as present.
        truncates: (capture index, table code) for each captured TRUNCATE.
        full_tables: tables every row of which must come from the stream (a snapshot read
            them all), as after a TRUNCATE.
        limits: the source's encoding limits: table rows are compared as it delivers them.
        publication: which columns the stream carries (``rows.published_columns``).
    """
    c_table, c_pk, c_op, c_rowhash = c["table"], c["pk"], c["op"], c["rowhash"]
    c_partial = c["flags"] & 1
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
    for t in sorted(set(c_table[last].tolist()) | set(last_trunc) | set(full_tables)):
        name = table_names[t]
        columns = published_columns(conn, name, publication)
        if not columns:
            notes.append(f"table {name} no longer exists: final state not compared")
            continue
        sel = last[c_table[last] == t]
        tr = last_trunc.get(t, -1)
        present = (c_op[sel] != _DELETE) & (sel >= tr)  # tr: index of the first change after it
        keys, want, partial = c_pk[sel], c_rowhash[sel], c_partial[sel] != 0
        num_partial += int(partial.sum())
        tab_pk, tab_h = table_hashes(conn, name, columns, _limit_map(limits, t, columns))
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
        if tr >= 0 or t in full_tables:  # every row in the table must come from the stream
            kept = np.sort(keys[present])
            extra = tab_pk[~np.isin(tab_pk, kept)]
            why = (
                "row in a truncated table that the stream never inserted"
                if tr >= 0
                else "row in the table that neither the snapshot nor the stream carried"
            )
            problems.extend((int(k), why) for k in extra)
        count += len(problems)
        for pk, why in problems[: max(0, max_examples - len(examples))]:
            examples.append(
                {
                    "table": name,
                    "pk": pk,
                    "problem": why,
                    "table_row": text_row(conn, name, columns, pk),
                }
            )
    if num_partial:
        notes.append(
            f"{num_partial} rows ended with an unchanged-TOAST value the stream never"
            " carried: their final state was compared on key only"
        )
    return count, examples, notes
