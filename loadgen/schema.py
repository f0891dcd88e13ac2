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

SCHEMA_FILES = ("01_schema.sql", "02_keys.sql", "03_indexes.sql", "04_seed_lookups.sql")
KEYS_FILE = "02_keys.sql"
INDEX_FILE = "03_indexes.sql"
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
    """Names of the 9 secondary indexes, as ``sql/03_indexes.sql`` declares them."""
    return re.findall(r"CREATE INDEX IF NOT EXISTS (\w+)", read_sql(INDEX_FILE))


def index_statements() -> list[tuple[str, str, str]]:
    """``(index name, table, CREATE INDEX statement)`` per line of ``sql/03_indexes.sql``."""
    found = re.findall(
        r"^(CREATE INDEX IF NOT EXISTS (\w+) ON (\w+) [^;]*);$", read_sql(INDEX_FILE), re.M
    )
    return [(name, table, statement) for statement, name, table in found]


@dataclass(frozen=True)
class Key:
    """One primary key, UNIQUE constraint or foreign key of ``sql/02_keys.sql``."""

    table: str  # the constrained table
    name: str  # constraint name (also the index name of a primary key or UNIQUE)
    kind: str  # "PRIMARY KEY", "UNIQUE" or "FOREIGN KEY"
    definition: str  # what follows the name, e.g. "UNIQUE (cpf)"
    parent: str | None = None  # referenced table of a foreign key

    def add(self, *, not_valid: bool = False) -> sql.Composed:
        """``ALTER TABLE .. ADD CONSTRAINT ..`` (``not_valid``: foreign keys only, no scan)."""
        suffix = " NOT VALID" if not_valid and self.kind == "FOREIGN KEY" else ""
        return sql.SQL("ALTER TABLE {} ADD CONSTRAINT {} {}").format(
            sql.Identifier(self.table),
            sql.Identifier(self.name),
            sql.SQL(self.definition + suffix),  # type: ignore[arg-type]
        )

    def build_index(self) -> sql.Composed:
        """``CREATE UNIQUE INDEX <name>`` of a primary key or UNIQUE: takes only a SHARE lock,
        so it runs beside the table's other index builds; ``attach`` then makes it the key."""
        columns = self.definition.split("(", 1)[1].rsplit(")", 1)[0]
        return sql.SQL("CREATE UNIQUE INDEX IF NOT EXISTS {} ON {} ({})").format(
            sql.Identifier(self.name),
            sql.Identifier(self.table),
            sql.SQL(columns),  # type: ignore[arg-type]
        )

    def attach(self) -> sql.Composed:
        """``ADD CONSTRAINT <name> PRIMARY KEY/UNIQUE USING INDEX <name>`` (catalog only)."""
        return sql.SQL("ALTER TABLE {} ADD CONSTRAINT {} {} USING INDEX {}").format(
            sql.Identifier(self.table),
            sql.Identifier(self.name),
            sql.SQL(self.kind),  # type: ignore[arg-type]
            sql.Identifier(self.name),
        )

    def drop(self) -> sql.Composed:
        return sql.SQL("ALTER TABLE {} DROP CONSTRAINT IF EXISTS {}").format(
            sql.Identifier(self.table), sql.Identifier(self.name)
        )


_KEY_LINE = re.compile(
    r"^ALTER TABLE (\w+) ADD CONSTRAINT (\w+) ((PRIMARY KEY|UNIQUE|FOREIGN KEY)[^;]*?"
    r"(?:REFERENCES (\w+)[^;]*)?);$",
    re.M,
)


@cache
def key_constraints() -> tuple[Key, ...]:
    """Every key of ``sql/02_keys.sql`` in file order (keys first, then foreign keys)."""
    return tuple(
        Key(table, name, kind, definition, parent or None)
        for table, name, definition, kind, parent in _KEY_LINE.findall(read_sql(KEYS_FILE))
    )


def missing_keys(conn: psycopg.Connection) -> list[Key]:
    """The keys of ``key_constraints()`` that the tables (current schema) lack, in file order."""
    rows = conn.execute(
        "SELECT c.relname, k.conname FROM pg_constraint k JOIN pg_class c ON c.oid = k.conrelid"
        " WHERE c.relnamespace = current_schema()::regnamespace"
    ).fetchall()
    present = {(str(t), str(n)) for t, n in rows}
    return [k for k in key_constraints() if (k.table, k.name) not in present]


def create_keys(conn: psycopg.Connection) -> None:
    """Add the missing keys, one statement each, validated over the rows present (a key
    whose unique index a stopped build left behind is attached to it).

    Raises:
        psycopg.Error: a duplicate or orphan row (the constraint is not added), or a refusal.
    """
    for key in missing_keys(conn):
        row = conn.execute("SELECT to_regclass(%s) IS NOT NULL", (key.name,)).fetchone()
        left = key.kind != "FOREIGN KEY" and row is not None and row[0]
        conn.execute(key.attach() if left else key.add())


def drop_keys(conn: psycopg.Connection, table_names: list[str]) -> None:
    """Drop the keys of ``table_names`` (foreign keys first), before a bulk load into them;
    also a key's unique index that a stopped build left without its constraint."""
    for key in reversed(key_constraints()):
        if key.table in table_names:
            conn.execute(key.drop())
            if key.kind != "FOREIGN KEY":
                conn.execute(sql.SQL("DROP INDEX IF EXISTS {}").format(sql.Identifier(key.name)))


def restore(conn: psycopg.Connection) -> None:
    """Add whatever keys and secondary indexes are missing: the schema as ``init`` makes it."""
    create_keys(conn)
    create_indexes(conn)


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
    """Create tables, keys, triggers, indexes and lookup rows in one transaction; idempotent.

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
        tables_file, keys_file, *rest = SCHEMA_FILES
        conn.execute(read_sql(tables_file))
        db.require_columns(conn)  # before keys, indexes and lookup rows name the columns
        create_keys(conn)  # keys_file, statement by statement: only the missing ones
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


def _schema_checks() -> list[Check]:
    """Keys (validated) and secondary indexes ``init`` makes: a seed that stopped between
    dropping and re-adding them, or a hand-made schema, fails here."""
    wanted = ", ".join(f"('{k.table}', '{k.name}')" for k in key_constraints())
    indexes = ", ".join(f"('{n}')" for n in secondary_index_names())
    return [
        Check(
            name="schema:keys",
            description="a primary key, UNIQUE or foreign key of sql/02_keys.sql is missing"
            " or not validated (run `loadgen init`, or `loadgen init --drop` to start over)",
            query=(
                f"SELECT 'missing ' || v.t || '.' || v.n FROM (VALUES {wanted}) AS v(t, n)"
                " WHERE NOT EXISTS (SELECT 1 FROM pg_constraint k WHERE"
                " k.conrelid = to_regclass(v.t) AND k.conname = v.n AND k.convalidated)"
            ),
        ),
        Check(
            name="schema:indexes",
            description="a secondary index of sql/03_indexes.sql is missing (run `loadgen init`)",
            query=(
                f"SELECT 'missing index ' || v.n FROM (VALUES {indexes}) AS v(n)"
                " WHERE to_regclass(v.n) IS NULL"
            ),
        ),
    ]


CHECKS: tuple[Check, ...] = (
    *_schema_checks(),
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
