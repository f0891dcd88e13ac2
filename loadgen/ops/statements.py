"""SQL of the workload operations (parameterised; identifiers through ``psycopg.sql``).

Each UPDATE/DELETE re-checks the state it expects (``status = 'agendada'``, ``resultado IS
NULL``, ...), so a row changed behind the worker's back makes the statement change nothing
instead of breaking a rule; dates that must not lie in the future use the server's clock.
"""

from __future__ import annotations

from functools import cache

from psycopg import sql
from psycopg.adapt import PyFormat

from loadgen import tables

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

UPDATE_PACIENTE = "UPDATE pacientes SET telefone = %s, endereco = %s WHERE id = %s RETURNING *"
# "happened now": a realizada/faltou consulta or an exam result may not be dated in the future
NOW_MINUTE = "date_trunc('minute', LOCALTIMESTAMP)"
UPDATE_CONSULTA = (
    "UPDATE consultas SET status = %(status)s::varchar, data = CASE WHEN %(status)s::varchar "
    f"<> 'cancelada' AND data > {NOW_MINUTE} THEN {NOW_MINUTE} ELSE data END "
    "WHERE id = %(id)s AND status = 'agendada' RETURNING *"
)
UPDATE_EXAME = (
    f"UPDATE exames SET resultado = %(resultado)s, data = LEAST(data, {NOW_MINUTE}) "
    "WHERE id = %(id)s AND resultado IS NULL RETURNING *"
)
UPDATE_INTERNACAO = (
    f"UPDATE internacoes SET data_saida = GREATEST(data_entrada, {NOW_MINUTE}) "
    "WHERE id = %s AND data_saida IS NULL RETURNING *"
)
DELETE_CONSULTA = "DELETE FROM consultas WHERE id = %s AND status = 'cancelada' RETURNING id"
DELETE_LINK = "DELETE FROM pacientes_convenios WHERE id = %s RETURNING id"


@cache
def insert_sql(table: str, columns: tuple[str, ...]) -> sql.Composed:
    """``INSERT INTO table (columns) VALUES (...) RETURNING *`` (cached per table/columns)."""
    # A link's pair is free by construction; ON CONFLICT only matters after a commit whose
    # outcome stayed unknown (the engine then rolls our state back although it may have
    # committed): the insert then changes nothing instead of failing.
    keys = tables.BY_NAME[table].natural_keys if table == "pacientes_convenios" else ()
    conflict = (
        sql.SQL(" ON CONFLICT ({}) DO NOTHING").format(
            sql.SQL(", ").join(map(sql.Identifier, keys[0]))
        )
        if keys
        else sql.SQL("")
    )
    return sql.SQL("INSERT INTO {} ({}) VALUES ({}){} RETURNING *").format(
        sql.Identifier(table),
        sql.SQL(", ").join(map(sql.Identifier, columns)),
        sql.SQL(", ").join(sql.Placeholder() * len(columns)),
        conflict,
    )


@cache
def insert_unnest_sql(table: str, columns: tuple[str, ...], types: tuple[str, ...]) -> sql.Composed:
    """One multi-row INSERT from one array per column, rows inserted in array order.

    ``INSERT INTO t (cols) SELECT cols FROM unnest(%s::type[], ...) WITH ORDINALITY ... ORDER BY
    ord RETURNING *``: one statement per batch instead of one per row (the server and psycopg
    then do per-batch work once), and RETURNING yields the rows in insertion order.
    """
    keys = tables.BY_NAME[table].natural_keys if table == "pacientes_convenios" else ()
    conflict = (
        sql.SQL(" ON CONFLICT ({}) DO NOTHING").format(
            sql.SQL(", ").join(map(sql.Identifier, keys[0]))
        )
        if keys
        else sql.SQL("")
    )
    cols = sql.SQL(", ").join(map(sql.Identifier, columns))
    arrays = sql.SQL(", ").join(
        sql.SQL("{}::{}[]").format(sql.Placeholder(format=PyFormat.BINARY), sql.SQL(t))
        for t in types
    )
    return sql.SQL(
        "INSERT INTO {} ({}) SELECT {} FROM unnest({}) WITH ORDINALITY AS u({}, lg_ord) "
        "ORDER BY lg_ord{} RETURNING *"
    ).format(sql.Identifier(table), cols, cols, arrays, cols, conflict)
