"""SQL shared by the operations: INSERT builders, the server's "now", text-loaded types.

Each operation's own UPDATE/DELETE text lives with it (``loadgen.ops.pacientes`` ...); every
one re-checks the state it expects (``status = 'agendada'``, ``resultado IS NULL``, ...), so a
row changed behind the worker's back makes the statement change nothing instead of breaking a
rule; dates that must not lie in the future use the server's clock (``NOW_MINUTE``).
"""

from __future__ import annotations

from functools import cache

from psycopg import sql
from psycopg.adapt import PyFormat

# Types in the hospital tables, loaded as PostgreSQL's text output (the after-image format).
TEXT_TYPES = (
    "int2",
    "int4",
    "int8",
    "numeric",
    "float4",
    "float8",
    "bool",
    "text",
    "varchar",
    "bpchar",
    "name",
    "date",
    "time",
    "timestamp",
    "timestamptz",
    "interval",
    "uuid",
    "json",
    "jsonb",
    "bytea",
)

# "happened now": a realizada/faltou consulta or an exam result may not be dated in the future
NOW_MINUTE = "date_trunc('minute', LOCALTIMESTAMP)"


def _conflict(on_conflict: tuple[str, ...]) -> sql.Composable:
    if not on_conflict:
        return sql.SQL("")
    return sql.SQL(" ON CONFLICT ({}) DO NOTHING").format(
        sql.SQL(", ").join(map(sql.Identifier, on_conflict))
    )


@cache
def insert_sql(
    table: str, columns: tuple[str, ...], on_conflict: tuple[str, ...] = ()
) -> sql.Composed:
    """``INSERT INTO table (columns) VALUES (...) [ON CONFLICT ...] RETURNING *`` (cached)."""
    return sql.SQL("INSERT INTO {} ({}) VALUES ({}){} RETURNING *").format(
        sql.Identifier(table),
        sql.SQL(", ").join(map(sql.Identifier, columns)),
        sql.SQL(", ").join(sql.Placeholder() * len(columns)),
        _conflict(on_conflict),
    )


@cache
def insert_unnest_sql(
    table: str,
    columns: tuple[str, ...],
    types: tuple[str, ...],
    on_conflict: tuple[str, ...] = (),
) -> sql.Composed:
    """One multi-row INSERT from one array per column, rows inserted in array order.

    ``INSERT INTO t (cols) SELECT cols FROM unnest(%s::type[], ...) WITH ORDINALITY ... ORDER BY
    ord RETURNING *``: one statement per batch instead of one per row (the server and psycopg
    then do per-batch work once), and RETURNING yields the rows in insertion order. ``types``
    are the columns' SQL types (one per column).
    """
    cols = sql.SQL(", ").join(map(sql.Identifier, columns))
    arrays = sql.SQL(", ").join(
        sql.SQL("{}::{}[]").format(sql.Placeholder(format=PyFormat.BINARY), sql.SQL(t))
        for t in types
    )
    return sql.SQL(
        "INSERT INTO {} ({}) SELECT {} FROM unnest({}) WITH ORDINALITY AS u({}, lg_ord) "
        "ORDER BY lg_ord{} RETURNING *"
    ).format(sql.Identifier(table), cols, cols, arrays, cols, _conflict(on_conflict))
