"""replica-identity: the same updates and deletes under DEFAULT, FULL and USING INDEX."""

from __future__ import annotations

import uuid

from psycopg import sql

from loadgen.scenarios.base import Context, Scenario

# table → the replica identity clause it must have (reset at the start of every run)
TABLES: dict[str, str] = {
    "cdc_identidade_default": "DEFAULT",
    "cdc_identidade_full": "FULL",
    "cdc_identidade_index": "USING INDEX cdc_identidade_index_codigo",
}


def _code() -> str:
    return f"COD-{uuid.uuid4().hex[:16]}"


def run_replica_identity(ctx: Context) -> None:
    """Per table: insert two rows; update a plain column, the identity's key, the id; delete.

    The recorder reads each old row first and records the before-image the identity obliges
    the server to send (``RowChange.before``).
    """
    rec = ctx.rec
    with rec.txn():
        for table, clause in TABLES.items():
            rec.conn.execute(
                sql.SQL("ALTER TABLE {} REPLICA IDENTITY {}").format(
                    sql.Identifier(table), sql.SQL(clause)
                )
            )
            rec.forget(table)
    for table in TABLES:
        with rec.txn() as t:
            a = t.insert(table, {"codigo": _code(), "nome": "Ana Beatriz", "valor": 10})
            b = t.insert(table, {"codigo": _code(), "nome": "Bruno Sá", "valor": None})
        pa, pb = int(a["id"]), int(b["id"])  # type: ignore[arg-type]
        with rec.txn() as t:  # no identity column changes
            t.update(table, pa, {"valor": 11, "nome": "Ana Beatriz Lima"})
        with rec.txn() as t:  # USING INDEX's key changes
            t.update(table, pa, {"codigo": _code()})
        with rec.txn() as t:  # DEFAULT's key (the primary key) changes
            moved = t.update(
                table,
                pb,
                {
                    "id": sql.SQL(
                        "nextval('cdc_identidade_default_id_seq')"
                        if table != "cdc_identidade_index"
                        else "nextval('cdc_identidade_index_id_seq')"
                    ),
                    "valor": 20,
                },
            )
        with rec.txn() as t:
            t.delete(table, pa)
            t.delete(table, int(moved["id"]))  # type: ignore[arg-type]


REPLICA_IDENTITY = Scenario(
    name="replica-identity",
    summary="updates and deletes on three tables with replica identity DEFAULT, FULL and USING "
    "INDEX",
    expect="FULL: the whole old row on every update and delete; DEFAULT / USING INDEX: only the "
    "key columns, on deletes and on updates that change them, nothing otherwise",
    tables=tuple(TABLES),
    run=run_replica_identity,
    is_exclusive=True,
    track_before=True,
)
