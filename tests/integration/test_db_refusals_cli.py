"""The server says no: privileges, a statement_timeout, connection limits, a schema a user
changed, a publication that would break the user's tables. Each is exit 3 (or 2 when the flag
can never fit) and one line naming the cause and the fix; nothing is left half-done.

In-process (CliRunner) against the real server; roles and the timeout database are created by
the tests and dropped afterwards.
"""

from __future__ import annotations

import os
import pty
import re
import subprocess
import sys
import uuid
from collections.abc import Iterator
from pathlib import Path

import psycopg
import pytest
from psycopg import sql
from psycopg.conninfo import conninfo_to_dict, make_conninfo

from loadgen import db, schema, seed, seed_recovery, tables
from loadgen.cdc import publish_safety
from tests.fixtures.cli import Cli, cli  # noqa: F401 - the fixture

pytestmark = pytest.mark.db


def _with(dsn: str, **params: str) -> str:
    merged = conninfo_to_dict(dsn)
    merged.update(params)
    return make_conninfo("", **merged)


def _one_line(result_stderr: str) -> str:
    """The one error line; anything else on stderr is the command's plan (its header line)."""
    lines = [line for line in result_stderr.splitlines() if line.strip()]
    errors = [line for line in lines if line.startswith("loadgen: error: ")]
    assert len(errors) == 1, result_stderr
    assert all(line.startswith(("seed: ", "stream: ")) for line in lines if line not in errors)
    assert "Traceback" not in result_stderr
    return errors[0]


@pytest.fixture
def seeded_dsn(schema_dsn: str) -> str:
    seed.seed(schema_dsn, seed.SeedOptions(scale=0.01, workers=1, seed=2))
    return schema_dsn


def _counts(dsn: str) -> dict[str, int]:
    with db.connect(dsn, autocommit=True) as conn:
        return schema.counts(conn)


@pytest.fixture
def make_role(pg_dsn: str) -> Iterator[object]:
    """``make_role(sql_after_create...)``: a LOGIN role with a unique name; dropped after."""
    made: list[str] = []

    def make(*grants: str, limit: int | None = None) -> str:
        name = f"lg_test_role_{uuid.uuid4().hex[:10]}"
        with psycopg.connect(pg_dsn, autocommit=True) as conn:
            conn.execute(
                sql.SQL("CREATE ROLE {} LOGIN CONNECTION LIMIT {}").format(
                    sql.Identifier(name), sql.Literal(-1 if limit is None else limit)
                )
            )
            made.append(name)
            for grant in grants:
                conn.execute(sql.SQL(grant).format(role=sql.Identifier(name)))
        return name

    yield make
    with psycopg.connect(pg_dsn, autocommit=True) as conn:
        for name in made:
            conn.execute(sql.SQL("DROP OWNED BY {}").format(sql.Identifier(name)))
            conn.execute(sql.SQL("DROP ROLE {}").format(sql.Identifier(name)))


def _schema_of(dsn: str) -> str:
    with db.connect(dsn, autocommit=True) as conn:
        row = conn.execute("SELECT current_schema()").fetchone()
        assert row is not None
        return str(row[0])


@pytest.mark.parametrize(
    "args",
    [["init"], ["seed", "--append", "--scale", "0.01"], ["reset", "--yes", "--scale", "0.01"]],
    ids=["init", "seed-append", "reset"],
)
def test_read_only_role_is_exit_3_and_changes_nothing(
    cli: Cli,  # noqa: F811
    seeded_dsn: str,
    make_role: object,
    args: list[str],
) -> None:
    schema_name = _schema_of(seeded_dsn)
    role = make_role(  # type: ignore[operator]
        f"GRANT USAGE ON SCHEMA {schema_name} TO {{role}}",
        f"GRANT SELECT ON ALL TABLES IN SCHEMA {schema_name} TO {{role}}",
        f"GRANT SELECT ON ALL SEQUENCES IN SCHEMA {schema_name} TO {{role}}",
    )
    before = _counts(seeded_dsn)
    result = cli(args, {"LOADGEN_DSN": _with(seeded_dsn, user=role)})
    assert result.code == 3, result.stderr
    line = _one_line(result.stderr)
    assert "(SQLSTATE 42501)" in line and "privilege" in line, line
    assert _counts(seeded_dsn) == before


@pytest.fixture(scope="module")
def timeout_dsn(pg_dsn: str) -> Iterator[str]:
    """A database whose statement_timeout is 400 ms, with the schema and a small seed."""
    name = f"lg_test_timeout_{uuid.uuid4().hex[:8]}"
    with psycopg.connect(pg_dsn, autocommit=True) as conn:
        conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
        conn.execute(
            sql.SQL("ALTER DATABASE {} SET statement_timeout = '400ms'").format(
                sql.Identifier(name)
            )
        )
    dsn = _with(pg_dsn, dbname=name)
    unbounded = _with(dsn, options="-c statement_timeout=0")
    try:
        with db.connect(unbounded) as conn:
            schema.init(conn)
        seed.seed(unbounded, seed.SeedOptions(scale=0.01, workers=1, seed=3))
        yield dsn
    finally:
        with psycopg.connect(pg_dsn, autocommit=True) as conn:
            conn.execute(sql.SQL("DROP DATABASE {} WITH (FORCE)").format(sql.Identifier(name)))


@pytest.mark.parametrize(
    "args",
    [["init"], ["counts"], ["check"], ["reset", "--yes", "--scale", "0.01"]],
    ids=["init", "counts", "check", "reset"],
)
def test_statement_timeout_is_exit_3_with_the_fix(
    cli: Cli,  # noqa: F811
    timeout_dsn: str,
    args: list[str],
) -> None:
    """Another session holds a lock longer than the database's statement_timeout."""
    with psycopg.connect(_with(timeout_dsn, options="-c statement_timeout=0")) as locker:
        locker.execute("LOCK TABLE pacientes IN ACCESS EXCLUSIVE MODE")
        result = cli(args, {"LOADGEN_DSN": timeout_dsn})
    assert result.code == 3, result.stderr
    line = _one_line(result.stderr)
    assert "(SQLSTATE 57014)" in line and "statement_timeout" in line, line
    assert _counts(_with(timeout_dsn, options="-c statement_timeout=0"))["convenios"] == 12


def test_a_dropped_column_is_named_by_init_check_and_stream(
    cli: Cli,  # noqa: F811
    seeded_dsn: str,
) -> None:
    with db.connect(seeded_dsn, autocommit=True) as conn:
        conn.execute("ALTER TABLE consultas DROP COLUMN motivo")
        conn.execute("ALTER TABLE internacoes DROP COLUMN quarto, DROP COLUMN updated_at")
    for args in (["init"], ["check"], ["stream", "--max-ops", "3", "--no-progress"]):
        result = cli(args, {"LOADGEN_DSN": seeded_dsn})
        assert result.code == 3, (args, result.stderr)
        line = _one_line(result.stderr)
        assert "consultas lacks motivo; internacoes lacks quarto, updated_at" in line, line
        assert "loadgen init --drop --yes" in line
    with db.connect(seeded_dsn, autocommit=True) as conn:
        assert db.missing_columns(conn) == {
            "consultas": ["motivo"],
            "internacoes": ["quarto", "updated_at"],
        }


def test_stream_refuses_more_workers_than_the_role_may_connect(
    cli: Cli,  # noqa: F811
    seeded_dsn: str,
    make_role: object,
) -> None:
    never = make_role(limit=2)  # type: ignore[operator]
    result = cli(
        ["stream", "--workers", "3", "--max-ops", "3"],
        {"LOADGEN_DSN": _with(seeded_dsn, user=never)},
    )
    assert result.code == 2, result.stderr
    assert "--workers 3 needs 3 connections but the server allows at most 2" in _one_line(
        result.stderr
    )
    busy = make_role(limit=3)  # type: ignore[operator]
    busy_dsn = _with(seeded_dsn, user=busy)
    with psycopg.connect(busy_dsn), psycopg.connect(busy_dsn):  # two of its three are taken
        result = cli(["stream", "--workers", "3", "--max-ops", "3"], {"LOADGEN_DSN": busy_dsn})
    assert result.code == 3, result.stderr
    line = _one_line(result.stderr)
    assert "--workers 3 needs 3 connections but the server has 1 free now" in line, line
    assert f"role '{busy}' CONNECTION LIMIT 3" in line


def test_seed_counts_its_loaders_against_the_role_limit(
    cli: Cli,  # noqa: F811
    schema_dsn: str,
    make_role: object,
) -> None:
    with db.connect(schema_dsn, autocommit=True) as conn:  # who owns the tables
        owner = conn.execute("SELECT current_user").fetchone()[0]  # type: ignore[index]
    role = make_role(f"GRANT {owner} TO {{role}}", limit=2)  # type: ignore[operator]
    # into empty tables: 2 loader connections + the planning session = 3 sessions for a role
    # allowed 2 (the --append path's count, 2 worker processes + a loader + planning, is 4)
    result = cli(
        ["seed", "--scale", "10", "--workers", "2"],
        {"LOADGEN_DSN": _with(schema_dsn, user=role)},
    )
    assert result.code == 2, result.stderr
    assert "--workers 2 needs 3 connections but the server allows at most 2" in _one_line(
        result.stderr
    )
    assert _counts(schema_dsn)["pacientes"] == 0


def test_ledger_paths_that_cannot_be_files_are_bad_input(
    cli: Cli,  # noqa: F811
    seeded_dsn: str,
    tmp_path: Path,
) -> None:
    """A --ledger inside a "directory" that is a file fails before any worker starts; a part
    that is a directory fails `cdc verify` as one line naming it (no IsADirectoryError)."""
    (tmp_path / "afile").write_text("")
    before = _counts(seeded_dsn)
    result = cli(
        ["stream", "--max-ops", "4", "--no-progress", "--ledger", "afile/run1/"],
        {"LOADGEN_DSN": seeded_dsn},
    )
    assert result.code == 2, result.stderr
    assert "--ledger 'afile/run1/': cannot create afile/run1: Not a directory" in _one_line(
        result.stderr
    )
    assert _counts(seeded_dsn) == before
    (tmp_path / "run1" / "part-00001.jsonl").mkdir(parents=True)
    result = cli(["cdc", "verify", "--ledger", "run1/"], {"LOADGEN_DSN": seeded_dsn})
    assert result.code == 2, result.stderr
    assert "run1/part-00001.jsonl" in _one_line(result.stderr)


def test_all_tables_publication_refused_when_a_table_has_no_replica_identity(
    cli: Cli,  # noqa: F811
    schema_dsn: str,
) -> None:
    name = f"lg_test_{uuid.uuid4().hex[:10]}"
    with db.connect(schema_dsn, autocommit=True) as conn:
        conn.execute("CREATE TABLE sem_chave (valor int)")
        schema_name = _schema_of(schema_dsn)
        assert (f"{schema_name}.sem_chave", "no primary key") in (
            publish_safety.unwritable_if_all_published(conn)
        )
    result = cli(
        ["cdc", "setup", "--all-tables", "--publication", name, "--slot", name],
        {"LOADGEN_DSN": schema_dsn},
    )
    assert result.code == 3, result.stderr
    line = _one_line(result.stderr)
    assert "refused, nothing created" in line and "REPLICA IDENTITY FULL" in line, line
    with db.connect(schema_dsn, autocommit=True) as conn:
        for catalog, column in (
            ("pg_publication", "pubname"),
            ("pg_replication_slots", "slot_name"),
        ):
            found = conn.execute(
                sql.SQL("SELECT count(*) FROM {} WHERE {} = %s").format(
                    sql.Identifier(catalog), sql.Identifier(column)
                ),
                (name,),
            ).fetchone()
            assert found == (0,)
        assert not conn.execute(
            "SELECT 1 FROM pg_tables WHERE schemaname = current_schema() AND tablename LIKE 'cdc%'"
        ).fetchall()
        conn.execute("ALTER TABLE sem_chave REPLICA IDENTITY FULL")  # the fix the line gives
        assert (f"{schema_name}.sem_chave", "no primary key") not in (
            publish_safety.unwritable_if_all_published(conn)
        )


def _max_ids(dsn: str, names: list[str]) -> dict[str, int]:
    with db.connect(dsn, autocommit=True) as conn:
        return {
            t: int(
                conn.execute(
                    sql.SQL("SELECT coalesce(max(id), 0) FROM {}").format(sql.Identifier(t))
                ).fetchone()[0]  # type: ignore[index]
            )
            for t in names
        }


def _new_ranges(
    dsn: str, names: list[str], last_before: dict[str, int]
) -> list[seed_recovery.IdRange]:
    """The id range a seed added to each table (its ids are consecutive)."""
    ranges = []
    with db.connect(dsn, autocommit=True) as conn:
        for t in names:
            low, high = conn.execute(
                sql.SQL("SELECT min(id), max(id) FROM {} WHERE id > %s").format(sql.Identifier(t)),
                (last_before[t],),
            ).fetchone()  # type: ignore[misc]
            ranges.append(seed_recovery.IdRange(t, int(low), int(high) - int(low) + 1))
    return ranges


def test_undo_into_empty_tables_keeps_what_another_writer_added(schema_dsn: str) -> None:
    """Tables that were empty are TRUNCATEd, unless a stream started meanwhile wrote rows of
    its own: then only this run's ranges go, and the other writer's row stays."""
    seeded = [t.name for t in tables.TABLES if not t.is_lookup]
    seed.seed(schema_dsn, seed.SeedOptions(scale=0.01, workers=1, seed=4))
    ranges = _new_ranges(schema_dsn, seeded, {t: 0 for t in seeded})
    with db.connect(schema_dsn, autocommit=True) as conn:
        schema.drop_secondary_indexes(conn)  # as during a load into empty tables
        conn.execute(
            "INSERT INTO pacientes (id, nome, nascimento, cpf) VALUES"
            " (9000000, 'Outro Escritor', '1990-01-01', '000.000.000-00')"
        )
        seed_recovery.undo(conn, ranges, tables_were_empty=True)
        assert conn.execute("SELECT id FROM pacientes").fetchall() == [(9000000,)]
        counts = schema.counts(conn)
        indexes = {
            str(r[0])
            for r in conn.execute(
                "SELECT indexname FROM pg_indexes WHERE schemaname = current_schema()"
            ).fetchall()
        }
    assert counts == {t: 0 for t in tables.TABLE_NAMES} | {"pacientes": 1, "convenios": 12}
    assert set(schema.secondary_index_names()) <= indexes


def test_undo_that_fails_gives_statements_that_work(seeded_dsn: str, make_role: object) -> None:
    """An --append seed whose rows cannot be removed by its own role: the message's statements,
    run by someone who may, restore the tables exactly."""
    before = _counts(seeded_dsn)
    seeded = [t.name for t in tables.TABLES if not t.is_lookup]
    last_before = _max_ids(seeded_dsn, seeded)
    seed.seed(seeded_dsn, seed.SeedOptions(scale=0.02, workers=1, seed=9, append=True))
    ranges = _new_ranges(seeded_dsn, seeded, last_before)
    assert all(r.rows > 0 for r in ranges)
    schema_name = _schema_of(seeded_dsn)
    reader = make_role(  # type: ignore[operator]
        f"GRANT USAGE ON SCHEMA {schema_name} TO {{role}}",
        f"GRANT SELECT ON ALL TABLES IN SCHEMA {schema_name} TO {{role}}",
    )
    with db.connect(_with(seeded_dsn, user=reader), autocommit=True) as conn:
        error = seed_recovery.unfinished(
            conn, ranges, KeyboardInterrupt(), tables_were_empty=False, reseed="unused"
        )
    message = str(error)
    assert error.exit_code == 4 and "rolling back failed" in message and "42501" in message
    statements = re.search(r"run in psql: (BEGIN; .*; COMMIT)$", message)
    assert statements, message
    with db.connect(seeded_dsn, autocommit=True) as conn:
        for statement in statements.group(1).split("; "):
            conn.execute(statement)
    assert _counts(seeded_dsn) == before


def _run_on_terminal(
    args: list[str], env: dict[str, str], cwd: Path, answer: str
) -> subprocess.CompletedProcess[str]:
    """Run ``loadgen args`` with a pseudo-terminal as stdin and type ``answer``."""
    leader, follower = pty.openpty()
    try:
        os.write(leader, answer.encode())
        return subprocess.run(
            [sys.executable, "-m", "loadgen", *args],
            stdin=follower,
            env=env,
            cwd=cwd,
            capture_output=True,
            text=True,
            timeout=120,
        )
    finally:
        os.close(leader)
        os.close(follower)


def test_init_drop_asks_on_a_terminal(
    seeded_dsn: str, cli_env: dict[str, str], tmp_path: Path
) -> None:
    before = _counts(seeded_dsn)
    no = _run_on_terminal(["init", "--drop"], cli_env, tmp_path, "n\n")
    assert no.returncode == 2, no.stderr
    assert "init --drop: not confirmed; nothing was dropped" in no.stderr
    assert _counts(seeded_dsn) == before
    yes = _run_on_terminal(["init", "--drop"], cli_env, tmp_path, "y\n")
    assert yes.returncode == 0, yes.stderr
    assert "schema recreated" in yes.stdout
    after = _counts(seeded_dsn)
    assert after["pacientes"] == 0 and after["convenios"] == 12
