"""What ``setup`` records about the slots it creates: the ``loadgen_cdc_state`` table.

One row per slot: its name, its publication, the LSN it started at (X/Y text) and
``xmin_before`` (an xid8 as int: every transaction with a smaller one had ended before the slot
was created, so none of its changes can be in the stream). ``verify`` reads it to explain
changes it cannot see; ``teardown`` deletes the slot's row.
"""

from __future__ import annotations

from dataclasses import dataclass

import psycopg
from psycopg import sql

from loadgen.cdc.slot_read import STATE_TABLE


@dataclass(frozen=True)
class SlotOrigin:
    start_lsn: str  # X/Y text
    created_at: str  # ISO timestamp (UTC)
    xmin_before: int | None  # xid8 as int: older transactions ended before the slot existed


def ensure_state_table(conn: psycopg.Connection) -> None:
    """Create the state table (or add ``xmin_before`` to one an older loadgen made)."""
    conn.execute(
        sql.SQL(
            "CREATE TABLE IF NOT EXISTS {} (slot_name text PRIMARY KEY, publication text NOT NULL,"
            " start_lsn pg_lsn NOT NULL, created_at timestamptz NOT NULL DEFAULT now())"
        ).format(sql.Identifier(STATE_TABLE))
    )
    # xmin_before: every transaction with a smaller xid8 had ended before the slot was created
    conn.execute(
        sql.SQL("ALTER TABLE {} ADD COLUMN IF NOT EXISTS xmin_before bigint").format(
            sql.Identifier(STATE_TABLE)
        )
    )


def record_slot(
    conn: psycopg.Connection, slot: str, publication: str, start_lsn: str, xmin_before: int
) -> None:
    """Record (or replace) a slot just created: ``start_lsn`` X/Y text, ``xmin_before`` xid8.
    The state table must exist (``ensure_state_table``)."""
    conn.execute(
        sql.SQL(
            "INSERT INTO {} (slot_name, publication, start_lsn, xmin_before)"
            " VALUES (%s, %s, %s::pg_lsn, %s)"
            " ON CONFLICT (slot_name) DO UPDATE SET publication = EXCLUDED.publication,"
            " start_lsn = EXCLUDED.start_lsn, created_at = now(),"
            " xmin_before = EXCLUDED.xmin_before"
        ).format(sql.Identifier(STATE_TABLE)),
        (slot, publication, start_lsn, xmin_before),
    )


def slot_origin(conn: psycopg.Connection, slot: str) -> SlotOrigin | None:
    """What ``setup`` recorded when it created ``slot`` (None when it did not record it)."""
    if not conn.execute("SELECT to_regclass(%s) IS NOT NULL", (STATE_TABLE,)).fetchone()[0]:  # type: ignore[index]
        return None
    has_xmin = (
        conn.execute(
            "SELECT 1 FROM pg_attribute WHERE attrelid = to_regclass(%s)"
            " AND attname = 'xmin_before'"
            " AND NOT attisdropped",
            (STATE_TABLE,),
        ).fetchone()
        is not None
    )
    row = conn.execute(
        sql.SQL(
            "SELECT start_lsn::text, to_char(created_at AT TIME ZONE 'UTC',"
            " 'YYYY-MM-DD HH24:MI:SS') || ' UTC', {} FROM {} WHERE slot_name = %s"
        ).format(
            sql.SQL("xmin_before" if has_xmin else "NULL::bigint"), sql.Identifier(STATE_TABLE)
        ),
        (slot,),
    ).fetchone()
    return None if row is None else SlotOrigin(str(row[0]), str(row[1]), row[2])


def recorded_slots(conn: psycopg.Connection) -> dict[str, tuple[str, str]]:
    """slot → (publication, start LSN text) as ``setup`` recorded them (empty when none)."""
    exists = conn.execute("SELECT to_regclass(%s) IS NOT NULL", (STATE_TABLE,)).fetchone()[0]  # type: ignore[index]
    if not exists:
        return {}
    rows = conn.execute(
        sql.SQL("SELECT slot_name, publication, start_lsn::text FROM {}").format(
            sql.Identifier(STATE_TABLE)
        )
    ).fetchall()
    return {str(s): (str(p), str(lsn)) for s, p, lsn in rows}


def schemas_recording(conn: psycopg.Connection, slot: str) -> list[str]:
    """The schemas of this database whose ``loadgen_cdc_state`` records ``slot`` (the schemas
    a ``cdc setup`` made it for), sorted; a state table this role cannot read is skipped."""
    rows = conn.execute(
        "SELECT n.nspname FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace"
        " WHERE c.relname = %s AND c.relkind IN ('r', 'p') ORDER BY 1",
        (STATE_TABLE,),
    ).fetchall()
    found = []
    for (schema,) in rows:
        query = sql.SQL("SELECT 1 FROM {} WHERE slot_name = %s").format(
            sql.Identifier(str(schema), STATE_TABLE)
        )
        try:
            if conn.execute(query, (slot,)).fetchone():
                found.append(str(schema))
        except psycopg.errors.InsufficientPrivilege:
            if not conn.autocommit:
                conn.rollback()
    return found
