"""cdc commands touch only this database's slot, and say only what they did.

Slot names are server-wide: a slot made in another database (here ``postgres``, which every
server has) must survive ``cdc teardown``/``setup`` run against the test database.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from pathlib import Path

import psycopg
import pytest
from psycopg.conninfo import conninfo_to_dict, make_conninfo

from loadgen.cdc import names
from loadgen.cdc import slot as S
from loadgen.errors import ConfigError, DatabaseUnavailableError
from tests.integration.test_cdc_cli import in_process

pytestmark = pytest.mark.db


@pytest.fixture
def foreign_slot(pg_dsn: str) -> Iterator[str]:
    """A pgoutput slot created in database ``postgres`` (dropped there afterwards)."""
    params = conninfo_to_dict(pg_dsn)
    if params.get("dbname") == "postgres":
        pytest.skip("the test database is postgres itself")
    other = make_conninfo(**{**params, "dbname": "postgres"})
    name = f"lg_test_other_{uuid.uuid4().hex[:10]}"
    with psycopg.connect(other, autocommit=True) as conn:
        conn.execute("SELECT pg_create_logical_replication_slot(%s, 'pgoutput')", (name,))
    try:
        yield name
    finally:
        with psycopg.connect(other, autocommit=True) as conn:
            conn.execute(
                "SELECT pg_drop_replication_slot(slot_name) FROM pg_replication_slots"
                " WHERE slot_name = %s",
                (name,),
            )


def _slot_exists(dsn: str, name: str) -> bool:
    with psycopg.connect(dsn) as conn:
        return (
            conn.execute(
                "SELECT 1 FROM pg_replication_slots WHERE slot_name = %s", (name,)
            ).fetchone()
            is not None
        )


def test_slot_of_another_database_is_left_alone(
    schema_dsn: str,
    foreign_slot: str,
    cli_env: dict[str, str],
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    code, out, err = in_process(
        monkeypatch,
        capsys,
        cli_env,
        tmp_path,
        "cdc",
        "teardown",
        "--slot",
        foreign_slot,
        "--keep-publication",
    )
    assert code == 2, out + err
    assert "belongs to database postgres" in err and "dropped" not in out
    assert _slot_exists(schema_dsn, foreign_slot)
    pub = f"lg_test_pub_{uuid.uuid4().hex[:10]}"
    code, out, err = in_process(
        monkeypatch,
        capsys,
        cli_env,
        tmp_path,
        "cdc",
        "setup",
        "--slot",
        foreign_slot,
        "--publication",
        pub,
    )
    assert code == 2 and "belongs to database postgres" in err, out + err
    with psycopg.connect(schema_dsn, autocommit=True) as conn:
        assert (
            conn.execute("SELECT 1 FROM pg_publication WHERE pubname = %s", (pub,)).fetchone()
            is None
        )
        with pytest.raises(ConfigError, match="belongs to database postgres"):
            next(S.iter_slot(conn, foreign_slot, pub))
    assert _slot_exists(schema_dsn, foreign_slot)


def test_teardown_of_nothing_says_nothing_was_dropped(
    schema_dsn: str,
    cli_env: dict[str, str],
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    tag = uuid.uuid4().hex[:10]
    code, out, err = in_process(
        monkeypatch,
        capsys,
        cli_env,
        tmp_path,
        "cdc",
        "teardown",
        "--slot",
        f"lg_test_none_{tag}",
        "--publication",
        f"lg_none_{tag}",
    )
    assert code == 0, err
    assert "dropped" not in out.replace("nothing dropped", "")
    assert "nothing dropped" in out
    assert f"slot lg_test_none_{tag} does not exist" in err
    assert f"publication lg_none_{tag} does not exist" in err


def test_bad_names_exit_2_and_db_errors_are_one_line(
    schema_dsn: str,
    cli_env: dict[str, str],
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    code, out, err = in_process(
        monkeypatch, capsys, cli_env, tmp_path, "cdc", "setup", "--slot", "Bad-Slot!"
    )
    assert code == 2, out + err
    assert "--slot 'Bad-Slot!'" in err and "lowercase" in err and "Traceback" not in err
    code, out, err = in_process(
        monkeypatch, capsys, cli_env, tmp_path, "cdc", "teardown", "--publication", "bad-pub"
    )
    assert code == 2 and "--publication 'bad-pub'" in err, out + err
    refused = r"^x: the server refused: division by zero \(SQLSTATE 22012\)$"
    with (
        psycopg.connect(schema_dsn) as conn,
        pytest.raises(DatabaseUnavailableError, match=refused),
        names.database_errors("x"),
    ):
        conn.execute("SELECT 1/0")
