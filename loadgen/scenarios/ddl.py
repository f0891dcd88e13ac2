"""schema-change and partitioned: the table's shape changes mid-stream, and rows that move."""

from __future__ import annotations

from psycopg import sql

from loadgen.scenarios.base import Context, Scenario
from loadgen.scenarios.recorder import Txn, column_list, text_rows

EVOLVING = "cdc_evolucao"
ADDED_COLUMNS = ("obs", "prioridade", "registrado_em")  # what schema-change adds (and resets)
AGENDA = "cdc_agenda"
AGENDA_PARTITIONS = ("cdc_agenda_2024", "cdc_agenda_2025", "cdc_agenda_outros")


def _alter(t: Txn, clause: str) -> None:
    t.conn.execute(sql.SQL("ALTER TABLE {} ").format(sql.Identifier(EVOLVING)) + sql.SQL(clause))
    t.rec.forget(EVOLVING)


def run_schema_change(ctx: Context) -> None:
    """ADD COLUMN without and with a default (fast default, then a volatile one that rewrites
    the table), writes using the new columns, DROP COLUMN, DDL and DML in one transaction.

    Starts from the base shape: deletes the previous run's rows and drops the added columns.
    Ends by touching every row, so the last image of each row has the final shape.
    """
    rec = ctx.rec
    table = sql.Identifier(EVOLVING)
    with rec.txn() as t:
        t.dml("d", EVOLVING, sql.SQL("DELETE FROM {}").format(table))
        for col in ADDED_COLUMNS:
            _alter(t, f"DROP COLUMN IF EXISTS {col}")
    with rec.txn() as t:
        a = int(t.insert(EVOLVING, {"nome": "antes da mudança"})["id"])  # type: ignore[arg-type]
        b = int(t.insert(EVOLVING, {"nome": "será apagado"})["id"])  # type: ignore[arg-type]
        c = int(t.insert(EVOLVING, {"nome": "nunca atualizado"})["id"])  # type: ignore[arg-type]
    with rec.txn() as t:
        _alter(t, "ADD COLUMN obs text")  # no default: existing rows read NULL
    with rec.txn() as t:
        t.insert(EVOLVING, {"nome": "com obs", "obs": "coluna nova"})
        t.update(EVOLVING, a, {"obs": "preenchida depois"})
    with rec.txn() as t:  # DDL and writes in one transaction; the default is not a rewrite
        _alter(t, "ADD COLUMN prioridade integer NOT NULL DEFAULT 3")
        t.insert(EVOLVING, {"nome": "com prioridade", "prioridade": 1})
        t.update(EVOLVING, b, {"nome": "prioridade vem do default"})
    with rec.txn() as t:  # a row stored before both columns existed
        t.delete(EVOLVING, c)
    with rec.txn() as t:
        _alter(t, "DROP COLUMN obs")
        t.update(EVOLVING, a, {"prioridade": 2})
        t.delete(EVOLVING, b)
    with rec.txn() as t:  # a volatile default rewrites the table: no row events for that
        _alter(t, "ADD COLUMN registrado_em timestamptz NOT NULL DEFAULT clock_timestamp()")
    with rec.txn() as t:
        t.insert(EVOLVING, {"nome": "depois da reescrita"})
        t.dml("u", EVOLVING, sql.SQL("UPDATE {} SET nome = nome || '.'").format(table))


def _move(t: Txn, pk: int, dia: str) -> None:
    """Change a row's partition key so that it moves to another partition.

    The server writes this as a delete from the old partition and an insert into the new one,
    and pgoutput sends exactly that: the ledger records the two halves under the root table.
    """
    cols = t.rec.columns(AGENDA)
    rows = text_rows(
        t.conn,
        sql.SQL("UPDATE {} SET dia = %s WHERE id = %s RETURNING {}").format(
            sql.Identifier(AGENDA), column_list(cols)
        ),
        (dia, pk),
    )
    if len(rows) != 1:
        raise LookupError(f"{AGENDA} id {pk} not found")
    t.add(AGENDA, "d", None, pk)
    t.add(AGENDA, "c", dict(zip(cols, rows[0], strict=True)), pk)


def run_partitioned(ctx: Context) -> None:
    """Rows in three partitions (2024, 2025, default); an update inside a partition, two rows
    moved across partitions, a delete."""
    rec = ctx.rec
    ids: dict[str, int] = {}
    with rec.txn() as t:
        for dia in ("2024-03-10", "2025-07-01", "2031-01-01"):
            row = t.insert(AGENDA, {"dia": dia, "descricao": f"consulta em {dia}"})
            ids[dia[:4]] = int(row["id"])  # type: ignore[arg-type]
    with rec.txn() as t:
        t.update(AGENDA, ids["2024"], {"descricao": "remarcada no mesmo ano"})
    with rec.txn() as t:
        _move(t, ids["2024"], "2025-02-02")
    with rec.txn() as t:
        _move(t, ids["2025"], "2040-12-31")
        t.update(AGENDA, ids["2025"], {"descricao": "movida para o futuro"})
    with rec.txn() as t:
        t.delete(AGENDA, ids["2031"])


SCHEMA_CHANGE = Scenario(
    name="schema-change",
    summary="ADD COLUMN without and with a default (fast, then volatile: a rewrite), writes "
    "using the new columns, DROP COLUMN, DDL and writes in one transaction",
    expect="a new Relation message before the first change after each DDL; every row image has "
    "the columns of its moment (default values filled in); the rewrite adds no events",
    tables=(EVOLVING,),
    run=run_schema_change,
    is_exclusive=True,
)
PARTITIONED = Scenario(
    name="partitioned",
    summary="a table partitioned by date range (2024, 2025, default) with writes in each, an "
    "update inside a partition and rows that move between partitions",
    expect="with publish_via_partition_root on, every change under the root table; off, under "
    "each partition; a move is a delete from the old partition and an insert into the new",
    tables=(AGENDA,),
    run=run_partitioned,
)
