"""Dropping the verifier's slot and publication (``loadgen cdc teardown``)."""

from __future__ import annotations

from dataclasses import dataclass

import psycopg
from psycopg import sql

from loadgen.cdc.slot_read import STATE_TABLE, _slot_here


@dataclass
class TeardownResult:
    dropped: list[str]  # what was dropped, e.g. "slot x", "publication y"
    warnings: list[str]


def teardown(conn: psycopg.Connection, *, slot: str, publication: str | None) -> TeardownResult:
    """Drop the verifier's slot (and the publication when named); say what was done.

    Only a slot of the current database is dropped: slot names are server-wide, and a slot of
    another database (or a physical one) is someone else's. Warns about other slots left in
    this database: every slot pins WAL until it is dropped.

    Raises:
        ConfigError: ``slot`` belongs to another database (nothing is dropped, not even the
            publication).
    """
    _slot_here(conn, slot)
    dropped: list[str] = []
    warnings = []
    r = conn.execute(
        "SELECT active FROM pg_replication_slots WHERE slot_name = %s"
        " AND database = current_database()",
        (slot,),
    ).fetchone()
    if r is None:
        warnings.append(f"slot {slot} does not exist: nothing to drop")
    elif r[0]:
        warnings.append(f"slot {slot} is active (a consumer is connected): not dropped")
    else:
        conn.execute("SELECT pg_drop_replication_slot(%s)", (slot,))
        dropped.append(f"slot {slot}")
    if conn.execute("SELECT to_regclass(%s) IS NOT NULL", (STATE_TABLE,)).fetchone()[0]:  # type: ignore[index]
        conn.execute(
            sql.SQL("DELETE FROM {} WHERE slot_name = %s").format(sql.Identifier(STATE_TABLE)),
            (slot,),
        )
    if publication:
        if (
            conn.execute(
                "SELECT 1 FROM pg_publication WHERE pubname = %s", (publication,)
            ).fetchone()
            is None
        ):
            warnings.append(f"publication {publication} does not exist: nothing to drop")
        else:
            conn.execute(sql.SQL("DROP PUBLICATION {}").format(sql.Identifier(publication)))
            dropped.append(f"publication {publication}")
    for name, active in conn.execute(
        "SELECT slot_name, active FROM pg_replication_slots WHERE database = current_database()"
        " AND NOT temporary"
    ).fetchall():
        if name != slot or active:
            warnings.append(
                f"slot {name} is still there and pins WAL until dropped"
                f" (SELECT pg_drop_replication_slot('{name}'))"
            )
    return TeardownResult(dropped, warnings)
