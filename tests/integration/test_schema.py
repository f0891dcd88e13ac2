"""Schema creation, idempotence and the consistency checks, on a real server."""

from __future__ import annotations

import psycopg
import pytest

from loadgen import db, schema, tables

pytestmark = pytest.mark.db


def _objects(conn: psycopg.Connection) -> set[tuple[str, str]]:
    rows = conn.execute(
        "SELECT c.relkind::text, c.relname FROM pg_class c "
        "WHERE c.relnamespace = current_schema()::regnamespace "
        "UNION ALL SELECT 'trigger', tgname FROM pg_trigger t JOIN pg_class c ON c.oid = t.tgrelid "
        "WHERE c.relnamespace = current_schema()::regnamespace AND NOT t.tgisinternal"
    ).fetchall()
    return {(k, n) for k, n in rows}


def test_init_is_idempotent(conn: psycopg.Connection) -> None:
    schema.init(conn)
    first = _objects(conn)
    schema.init(conn)
    assert _objects(conn) == first
    assert schema.counts(conn)["convenios"] == 12
    assert {n for k, n in first if k == "i"} >= set(schema.secondary_index_names())
    triggers = {n for k, n in first if k == "trigger"}
    assert triggers == {f"{t}_updated_at" for t in tables.TABLE_NAMES}
    assert db.missing_tables(conn) == []


def test_init_drop_recreates(conn: psycopg.Connection) -> None:
    schema.init(conn)
    conn.execute("INSERT INTO medicos (nome, crm, especialidade) VALUES ('A', 'CRM/SP 1', 'x')")
    schema.init(conn, drop=True)
    assert schema.counts(conn)["medicos"] == 0


def test_updated_at_trigger(conn: psycopg.Connection) -> None:
    schema.init(conn)
    conn.execute("UPDATE convenios SET cobertura = 'y', updated_at = '2000-01-01' WHERE id = 1")
    row = conn.execute("SELECT updated_at > '2001-01-01' FROM convenios WHERE id = 1").fetchone()
    assert row == (True,)


def test_require_schema_names_the_fix(conn: psycopg.Connection) -> None:
    from loadgen.errors import SchemaMissingError

    with pytest.raises(SchemaMissingError, match="loadgen init"):
        db.require_schema(conn)
    schema.init(conn)
    with pytest.raises(SchemaMissingError, match="loadgen seed"):
        db.require_schema(conn, need_rows=True)


def _failed(conn: psycopg.Connection) -> dict[str, int]:
    return {r.name: r.failures for r in schema.check(conn) if not r.ok}


def test_checks_pass_on_lookup_data(conn: psycopg.Connection) -> None:
    schema.init(conn)
    assert _failed(conn) == {}


# Each bad row must trip exactly the check named; the valid CPF 529.982.247-25 is the
# Receita Federal's documentation example.
BAD_ROWS = [
    (
        "INSERT INTO pacientes (nome, nascimento, cpf)"
        " VALUES ('A', '1990-01-01', '529.982.247-24')",
        "cpf:check-digits",
    ),
    (
        "INSERT INTO pacientes (nome, nascimento, cpf)"
        " VALUES ('A', '1990-01-01', '111.111.111-11')",
        "cpf:check-digits",
    ),
    (
        "INSERT INTO pacientes (nome, nascimento, cpf) VALUES ('A', current_date + 3, "
        "'529.982.247-25')",
        "pacientes:birth-in-future",
    ),
    (
        "INSERT INTO convenios (nome, cnpj, tipo) VALUES ('X', '11.222.333/0001-80', 'privado')",
        "cnpj:check-digits",
    ),
]


@pytest.mark.parametrize(("statement", "check_name"), BAD_ROWS)
def test_each_check_catches_its_fault(
    conn: psycopg.Connection, statement: str, check_name: str
) -> None:
    schema.init(conn)
    conn.execute(statement)
    assert set(_failed(conn)) == {check_name}


def test_valid_cpf_and_cnpj_pass(conn: psycopg.Connection) -> None:
    schema.init(conn)
    conn.execute(
        "INSERT INTO pacientes (nome, nascimento, cpf) VALUES ('A', '1990-01-01', '529.982.247-25')"
    )
    conn.execute(
        "INSERT INTO convenios (nome, cnpj, tipo) VALUES ('X', '11.222.333/0001-81', 'privado')"
    )
    assert _failed(conn) == {}


def test_orphan_and_status_checks(conn: psycopg.Connection) -> None:
    schema.init(conn)
    conn.execute(
        "INSERT INTO pacientes (id, nome, nascimento, cpf) "
        "VALUES (1, 'A', '1990-01-01', '529.982.247-25')"
    )
    conn.execute(
        "INSERT INTO medicos (id, nome, crm, especialidade) VALUES (1, 'M', 'CRM/SP 1', 'x')"
    )
    conn.execute(
        "INSERT INTO consultas (paciente_id, medico_id, data, motivo, status) "
        "VALUES (1, 1, now() + interval '2 days', 'm', 'realizada')"
    )
    conn.execute("ALTER TABLE exames DROP CONSTRAINT exames_paciente_id_fkey")
    conn.execute("INSERT INTO exames (paciente_id, tipo_exame, data) VALUES (99, 't', now())")
    # the dropped foreign key itself is reported too (a seed that stopped between dropping
    # and re-adding its keys fails `loadgen check` the same way)
    assert set(_failed(conn)) == {
        "consultas:status-date",
        "orphans:exames.paciente_id",
        "schema:keys",
    }
