"""Schema: apply the numbered files in ``sql/``, manage secondary indexes, count rows, run checks.

The DDL itself lives only in ``sql/``; this module runs it. Consistency checks are data
(``CHECKS``): each is one SQL query returning the offending rows' descriptions.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from functools import cache
from pathlib import Path

import psycopg
from psycopg import sql

from loadgen import db, tables

SCHEMA_FILES = ("01_schema.sql", "02_indexes.sql", "03_seed_lookups.sql")
INDEX_FILE = "02_indexes.sql"
DROP_FILE = "99_drop_all.sql"
MAX_EXAMPLES = 5


def sql_dir() -> Path:
    """The ``loadgen/sql/`` directory inside the installed package (wheels carry it)."""
    return Path(__file__).resolve().parent / "sql"


@cache
def read_sql(name: str) -> str:
    """The text of ``sql/<name>``. Raises FileNotFoundError naming the path."""
    return (sql_dir() / name).read_text(encoding="utf-8")


def secondary_index_names() -> list[str]:
    """Names of the 9 secondary indexes, as ``sql/02_indexes.sql`` declares them."""
    return re.findall(r"CREATE INDEX IF NOT EXISTS (\w+)", read_sql(INDEX_FILE))


def table_columns(conn: psycopg.Connection, table: str) -> list[str]:
    """The live, non-generated columns of ``table`` (current schema), in table order: what a
    CDC stream of the table carries (no publication sends generated columns before
    PostgreSQL 18) and what the ledger records of it. Empty when there is no such table."""
    rows = conn.execute(
        "SELECT attname FROM pg_attribute WHERE attrelid = to_regclass(%s) AND attnum > 0"
        " AND NOT attisdropped AND attgenerated = '' ORDER BY attnum",
        (sql.Identifier(table).as_string(conn),),
    ).fetchall()
    return [str(r[0]) for r in rows]


def init(conn: psycopg.Connection, *, drop: bool = False) -> None:
    """Create tables, triggers, indexes and lookup rows in one transaction; idempotent.

    With ``drop``, everything is dropped first (data included). Tables that already exist are
    kept as they are, so once the tables file ran, each is checked for every column the
    workload and the seeder write; if one lacks any, it all rolls back (nothing changed).

    Raises:
        SchemaMissingError: a table lacks columns, naming them and the fix (exit 3).
        psycopg.Error: the server refused (privileges, a statement_timeout...), rolled back.
    """
    with conn.transaction():
        if drop:
            conn.execute(read_sql(DROP_FILE))
        tables_file, *rest = SCHEMA_FILES
        conn.execute(read_sql(tables_file))
        db.require_columns(conn)  # before indexes and lookup rows name the columns
        for name in rest:
            conn.execute(read_sql(name))


def drop(conn: psycopg.Connection) -> None:
    """Drop every loadgen table and function in the current schema (data included)."""
    with conn.transaction():
        conn.execute(read_sql(DROP_FILE))


def create_indexes(conn: psycopg.Connection) -> None:
    """Create the secondary indexes that are missing (after a bulk load)."""
    conn.execute(read_sql(INDEX_FILE))


def drop_secondary_indexes(conn: psycopg.Connection) -> None:
    """Drop the secondary indexes (before a bulk load into empty tables)."""
    for name in secondary_index_names():
        conn.execute(sql.SQL("DROP INDEX IF EXISTS {}").format(sql.Identifier(name)))


def counts(conn: psycopg.Connection) -> dict[str, int]:
    """Exact row count per hospital table, in foreign-key order."""
    result: dict[str, int] = {}
    for name in tables.TABLE_NAMES:
        query = sql.SQL("SELECT count(*) FROM {}").format(sql.Identifier(name))
        row = conn.execute(query).fetchone()
        result[name] = int(row[0]) if row else 0
    return result


@dataclass(frozen=True)
class Check:
    name: str  # short id, e.g. "orphans:consultas.paciente_id"
    description: str  # what a failure means, for people
    query: str  # SELECT returning one text column describing each offending row


@dataclass
class CheckResult:
    name: str
    description: str
    failures: int  # offending rows
    examples: list[str] = field(default_factory=list)  # up to MAX_EXAMPLES descriptions

    @property
    def ok(self) -> bool:
        return self.failures == 0


# CPF: two mod-11 check digits, weights 10..2 then 11..2 (Receita Federal's algorithm);
# repeated-digit numbers such as 111.111.111-11 pass the arithmetic but are not issued.
_BAD_CPF = r"""
SELECT 'pacientes id=' || p.id || ' cpf=' || p.cpf FROM pacientes p
CROSS JOIN LATERAL (SELECT regexp_replace(p.cpf, '[^0-9]', '', 'g') AS d) x
WHERE CASE WHEN length(x.d) <> 11 OR x.d ~ '^(\d)\1{10}$' THEN true ELSE (
  SELECT (sum(substr(x.d, i, 1)::int * (11 - i)) FILTER (WHERE i <= 9) * 10) % 11 % 10
           <> substr(x.d, 10, 1)::int
      OR (sum(substr(x.d, i, 1)::int * (12 - i)) * 10) % 11 % 10 <> substr(x.d, 11, 1)::int
  FROM generate_series(1, 10) AS i) END
"""
# CNPJ: weights 5,4,3,2,9..2 then 6,5,4,3,2,9..2; digit = 0 when the remainder is < 2.
_BAD_CNPJ = r"""
SELECT 'convenios id=' || c.id || ' cnpj=' || c.cnpj FROM convenios c
CROSS JOIN LATERAL (SELECT regexp_replace(c.cnpj, '[^0-9]', '', 'g') AS d) x
WHERE CASE WHEN length(x.d) <> 14 THEN true ELSE (
  SELECT CASE WHEN s1 % 11 < 2 THEN 0 ELSE 11 - s1 % 11 END <> substr(x.d, 13, 1)::int
      OR CASE WHEN s2 % 11 < 2 THEN 0 ELSE 11 - s2 % 11 END <> substr(x.d, 14, 1)::int
  FROM (SELECT
    sum(substr(x.d, i, 1)::int * CASE WHEN i <= 4 THEN 6 - i ELSE 14 - i END)
      FILTER (WHERE i <= 12) AS s1,
    sum(substr(x.d, i, 1)::int * CASE WHEN i <= 5 THEN 7 - i ELSE 15 - i END) AS s2
    FROM generate_series(1, 13) AS i) sums) END
"""


def _fk_checks() -> list[Check]:
    out = []
    for spec in tables.TABLES:
        for fk in spec.foreign_keys:
            out.append(
                Check(
                    name=f"orphans:{spec.name}.{fk.column}",
                    description=f"{spec.name}.{fk.column} points to a missing {fk.parent} row",
                    query=(
                        f"SELECT '{spec.name} id=' || c.id || ' {fk.column}=' || c.{fk.column} "
                        f"FROM {spec.name} c LEFT JOIN {fk.parent} p ON p.id = c.{fk.column} "
                        f"WHERE p.id IS NULL"
                    ),
                )
            )
    return out


def _natural_key_checks() -> list[Check]:
    out = []
    for spec in tables.TABLES:
        for key in spec.natural_keys:
            cols = ", ".join(key)
            shown = " || ',' || ".join(f"{c}::text" for c in key)
            out.append(
                Check(
                    name=f"duplicates:{spec.name}({cols})",
                    description=f"{spec.name} has duplicate ({cols})",
                    query=(
                        f"SELECT '{spec.name} ({cols})=' || {shown} || ' x' || count(*) "
                        f"FROM {spec.name} GROUP BY {cols} HAVING count(*) > 1"
                    ),
                )
            )
    return out


def _future_timestamp_checks() -> list[Check]:
    # One minute of slack: the server's clock is the reference, and rows are written with now().
    return [
        Check(
            name=f"future:{spec.name}.created_at/updated_at",
            description=f"{spec.name} has created_at/updated_at in the future or out of order",
            query=(
                f"SELECT '{spec.name} id=' || id || ' created_at=' || created_at "
                f"|| ' updated_at=' || updated_at FROM {spec.name} "
                f"WHERE created_at > now() + interval '1 minute' "
                f"OR updated_at > now() + interval '1 minute' OR updated_at < created_at"
            ),
        )
        for spec in tables.TABLES
    ]


CHECKS: tuple[Check, ...] = (
    *_fk_checks(),
    *_natural_key_checks(),
    Check("cpf:check-digits", "pacientes.cpf has invalid check digits", _BAD_CPF),
    Check("cnpj:check-digits", "convenios.cnpj has invalid check digits", _BAD_CNPJ),
    *_future_timestamp_checks(),
    Check(
        "pacientes:birth-in-future",
        "pacientes.nascimento is in the future",
        "SELECT 'pacientes id=' || id || ' nascimento=' || nascimento FROM pacientes "
        "WHERE nascimento > current_date",
    ),
    Check(
        "pacientes:registered-in-future",
        "pacientes.data_cadastro is in the future",
        "SELECT 'pacientes id=' || id || ' data_cadastro=' || data_cadastro FROM pacientes "
        "WHERE data_cadastro > now() + interval '1 minute'",
    ),
    Check(
        "internacoes:saida-before-entrada",
        "internacoes.data_saida < data_entrada",
        "SELECT 'internacoes id=' || id || ' entrada=' || data_entrada "
        "|| ' saida=' || data_saida FROM internacoes WHERE data_saida < data_entrada",
    ),
    Check(
        "internacoes:dates-in-future",
        "an admission or discharge dated in the future",
        "SELECT 'internacoes id=' || id || ' entrada=' || data_entrada || ' saida=' "
        "|| coalesce(data_saida::text, 'NULL') FROM internacoes "
        "WHERE data_entrada > now() + interval '1 minute' "
        "OR data_saida > now() + interval '1 minute'",
    ),
    Check(
        "consultas:status-date",
        "a consulta realizada/faltou dated in the future",
        "SELECT 'consultas id=' || id || ' status=' || status || ' data=' || data "
        "FROM consultas WHERE status IN ('realizada', 'faltou') "
        "AND data > now() + interval '1 minute'",
    ),
    Check(
        "exames:result-before-date",
        "an exame has a resultado but its date is in the future",
        "SELECT 'exames id=' || id || ' data=' || data FROM exames "
        "WHERE resultado IS NOT NULL AND data > now() + interval '1 minute'",
    ),
)


def check(conn: psycopg.Connection) -> list[CheckResult]:
    """Run every check in ``CHECKS``; one result each, in order. Read-only."""
    results = []
    for item in CHECKS:
        # No parameters: the checks use % as the modulo operator.
        query = sql.SQL("SELECT count(*) OVER (), d FROM ({}) AS q(d) LIMIT {}").format(
            sql.SQL(item.query), sql.Literal(MAX_EXAMPLES)
        )  # type: ignore[arg-type]
        rows = conn.execute(query).fetchall()
        failures = int(rows[0][0]) if rows else 0
        results.append(CheckResult(item.name, item.description, failures, [r[1] for r in rows]))
    return results
