"""Seeding against a real PostgreSQL: counts, checks, determinism, --append, refusal."""

from __future__ import annotations

import dataclasses
from datetime import UTC, datetime

import psycopg
import pytest
from psycopg import sql

from loadgen import db, schema, seed, tables
from loadgen.errors import SeedError

pytestmark = pytest.mark.db

REFERENCE = datetime(2025, 3, 14, tzinfo=UTC)  # fixed anchor: runs compare equal across midnight
# Content columns: everything but created_at/updated_at (set by the server at insert time).
_HASH = (
    "SELECT md5(coalesce(string_agg(t::text, '|' ORDER BY t.id), '')) FROM (SELECT {} FROM {}) t"
)


def _options(**kw: object) -> seed.SeedOptions:
    base = seed.SeedOptions(scale=0.05, workers=1, seed=11, reference=REFERENCE)
    return dataclasses.replace(base, **kw)  # type: ignore[arg-type]


def _hashes(conn: psycopg.Connection) -> dict[str, str]:
    out = {}
    for spec in tables.TABLES:
        cols = sql.SQL(", ").join(map(sql.Identifier, spec.columns))
        row = conn.execute(sql.SQL(_HASH).format(cols, sql.Identifier(spec.name))).fetchone()
        assert row is not None
        out[spec.name] = row[0]
    return out


def _failed_checks(conn: psycopg.Connection) -> list[str]:
    return [f"{r.name}: {r.examples}" for r in schema.check(conn) if not r.ok]


def _index_names(conn: psycopg.Connection) -> set[str]:
    rows = conn.execute(
        "SELECT indexname FROM pg_indexes WHERE schemaname = current_schema()"
    ).fetchall()
    return {r[0] for r in rows}


@pytest.mark.parametrize("scale", [0.05, 0.1])
def test_seed_counts_checks_indexes_sequences(schema_dsn: str, scale: float) -> None:
    result = seed.seed(schema_dsn, _options(scale=scale))
    expected = {t.name: round(t.seed_rows * scale) for t in tables.TABLES if not t.is_lookup}
    assert {t.table: t.rows for t in result.tables} == expected
    assert result.seed == 11 and result.rows == sum(expected.values())
    with db.connect(schema_dsn, autocommit=True) as conn:
        assert schema.counts(conn) == {**expected, "convenios": 12}
        assert _failed_checks(conn) == []
        assert set(schema.secondary_index_names()) <= _index_names(conn)
        row = conn.execute("SELECT nextval(pg_get_serial_sequence('pacientes', 'id'))").fetchone()
        assert row is not None and row[0] == expected["pacientes"] + 1


def test_same_rows_whatever_the_workers_and_method(schema_dsn: str) -> None:
    # Enough rows for two pieces in pacientes and consultas, so two workers really split them.
    counts = {"pacientes": 17_000, "medicos": 40, "pacientes_convenios": 300,
              "consultas": 17_000, "exames": 200, "internacoes": 100}  # fmt: skip
    runs = [
        _options(scale=1.0, counts=counts, workers=1),
        _options(scale=1.0, counts=counts, workers=2),
    ]
    hashes = []
    for options in runs:
        with db.connect(schema_dsn) as conn:
            schema.init(conn, drop=True)
        result = seed.seed(schema_dsn, options)
        assert result.workers == options.workers
        with db.connect(schema_dsn, autocommit=True) as conn:
            hashes.append(_hashes(conn))
    assert hashes[0] == hashes[1]


def test_copy_and_insert_load_identical_rows(schema_dsn: str) -> None:
    hashes = []
    for method in ("copy", "insert"):
        with db.connect(schema_dsn) as conn:
            schema.init(conn, drop=True)
        seed.seed(schema_dsn, _options(scale=0.02, method=method))
        with db.connect(schema_dsn, autocommit=True) as conn:
            hashes.append(_hashes(conn))
    assert hashes[0] == hashes[1]


def test_refuses_tables_with_data_then_appends_after_them(schema_dsn: str) -> None:
    seed.seed(schema_dsn, _options())
    with pytest.raises(SeedError, match="already hold data.*--append.*reset --yes"):
        seed.seed(schema_dsn, _options())
    with db.connect(schema_dsn, autocommit=True) as conn:
        # a stream took ids from the sequence (some rolled back): append must skip past them
        conn.execute(
            "SELECT nextval(pg_get_serial_sequence('pacientes', 'id')) FROM generate_series(1, 7)"
        )
        before = schema.counts(conn)
    result = seed.seed(schema_dsn, _options(append=True, seed=11))  # same seed on purpose
    first = {t.table: t.first_id for t in result.tables}
    assert first["pacientes"] == before["pacientes"] + 8
    assert first["consultas"] == before["consultas"] + 1
    with db.connect(schema_dsn, autocommit=True) as conn:
        after = schema.counts(conn)
        assert after == {k: v + (0 if k == "convenios" else v) for k, v in before.items()}
        assert _failed_checks(conn) == []  # no duplicate cpf/crm/(paciente, convenio)


def test_refuses_impossible_link_counts(schema_dsn: str) -> None:
    counts = {"pacientes": 10, "pacientes_convenios": 500}
    with pytest.raises(SeedError, match="SEED_PACIENTES"):
        seed.seed(schema_dsn, _options(scale=1.0, counts=counts))
