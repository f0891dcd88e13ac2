"""Columns the ledger records but no stream carries: compare on the carried ones only.

The ledger's after-images are a table's every column (``RETURNING *``), but a stream carries
only what its publication sends: no generated column (PostgreSQL sends none before 18, and
only on request from 18 on), and only a column list's columns when the publication has one. A
user's schema may add either to the ledger's tables; without this, every change of such a table
would be a false ``values`` alarm. ``uncarried_columns`` finds them from the catalog, and
``restrict_ledger`` re-hashes those tables' ledger after-images without them (re-reading just
their lines, part by part).
"""

from __future__ import annotations

import numpy as np
import orjson
import psycopg
from psycopg import sql

from loadgen.cdc.ledger_index import OP_CODES, LedgerIndex, dict_hash
from loadgen.cdc.rows import published_columns


def uncarried_columns(
    conn: psycopg.Connection, tables: list[str], publication: str | None
) -> dict[str, frozenset[str]]:
    """table → its columns (generated ones included) that a stream of ``publication`` does
    not carry; tables that carry every column are left out."""
    out: dict[str, frozenset[str]] = {}
    for table in tables:
        rows = conn.execute(
            "SELECT attname FROM pg_attribute WHERE attrelid = to_regclass(%s) AND attnum > 0"
            " AND NOT attisdropped",
            (sql.Identifier(table).as_string(conn),),
        ).fetchall()
        every = {str(r[0]) for r in rows}
        missing = every - set(published_columns(conn, table, publication))
        if every and missing:
            out[table] = frozenset(missing)
    return out


def restrict_ledger(ledger: LedgerIndex, uncarried: dict[str, frozenset[str]]) -> int:
    """Re-hash the after-images of ``uncarried``'s tables without those columns (in place, in
    ``ledger.vhash``). Blocks on reading those tables' ledger lines; returns how many."""
    done = 0
    for table, columns in uncarried.items():
        code = ledger.codes.codes.get(table)
        if code is None:
            continue
        rows = np.flatnonzero((ledger.table == code) & (ledger.op != OP_CODES["d"]))
        for part in np.unique(ledger.part[rows]).tolist():
            sel = rows[ledger.part[rows] == part]
            sel = sel[np.argsort(ledger.offset[sel])]
            with open(ledger.parts[part], "rb") as f:
                for i in sel.tolist():
                    f.seek(int(ledger.offset[i]))
                    after = orjson.loads(f.readline()).get("after") or {}
                    kept = {k: v for k, v in after.items() if k not in columns}
                    ledger.vhash[i] = dict_hash(kept)
                    done += 1
    return done
