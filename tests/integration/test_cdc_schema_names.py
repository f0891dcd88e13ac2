"""Two loadgen schemas in one database (search_path) get their own slot and publication by
default, and a setup that would share another schema's is refused; against the real server."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from pathlib import Path

import orjson
import psycopg
import pytest
from psycopg import sql

from loadgen import db, schema
from loadgen.cdc import schema_names
from loadgen.cdc import slot as S
from tests.fixtures.db import with_search_path
from tests.integration.test_cdc_cli import in_process

pytestmark = pytest.mark.db


def _exists(conn: psycopg.Connection, kind: str, name: str) -> bool:
    query = {
        "slot": "SELECT 1 FROM pg_replication_slots WHERE slot_name = %s",
        "publication": "SELECT 1 FROM pg_publication WHERE pubname = %s",
    }[kind]
    return conn.execute(query, (name,)).fetchone() is not None


@pytest.fixture
def two_schemas(pg_dsn: str) -> Iterator[tuple[str, str]]:
    """Two initialised schemas ``lg_test_<hex>``; their slots and publications, whatever a
    test made, are dropped with them."""
    made = [f"lg_test_{uuid.uuid4().hex[:12]}" for _ in range(2)]
    with psycopg.connect(pg_dsn, autocommit=True) as conn:
        for name in made:
            conn.execute(sql.SQL("CREATE SCHEMA {}").format(sql.Identifier(name)))
    try:
        for name in made:
            with db.connect(with_search_path(pg_dsn, name)) as c:
                schema.init(c)
        yield made[0], made[1]
    finally:
        with psycopg.connect(pg_dsn, autocommit=True) as conn:
            for name in made:
                rows = conn.execute(
                    "SELECT slot_name FROM pg_replication_slots WHERE slot_name LIKE %s",
                    (f"%{name}%",),
                ).fetchall()
                for (slot,) in rows:
                    conn.execute("SELECT pg_drop_replication_slot(%s)", (slot,))
                for (pub,) in conn.execute(
                    "SELECT pubname FROM pg_publication WHERE pubname LIKE %s", (f"%{name}%",)
                ).fetchall():
                    conn.execute(sql.SQL("DROP PUBLICATION {}").format(sql.Identifier(pub)))
                conn.execute(sql.SQL("DROP SCHEMA {} CASCADE").format(sql.Identifier(name)))


def _cli(
    mp: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], pg_dsn: str, tmp: Path,
    schema_name: str, *args: str,
) -> tuple[int, str, str]:  # fmt: skip
    env = {"LOADGEN_DSN": with_search_path(pg_dsn, schema_name), "LOADGEN_LOGGING_FILE": "",
           "LOADGEN_DB_CONNECT_RETRY_S": "2"}  # fmt: skip
    return in_process(mp, capsys, env, tmp, *args)


def test_two_schemas_set_up_their_own_slot_and_publication(
    pg_dsn: str, two_schemas: tuple[str, str], tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str],
) -> None:  # fmt: skip
    a, b = two_schemas
    for name in (a, b):
        code, out, err = _cli(monkeypatch, capsys, pg_dsn, tmp_path, name, "cdc", "setup")
        assert code == 0, err
        assert f"publication loadgen_pub_{name}: created" in out
        assert f"slot loadgen_verify_{name}: created" in out
    with psycopg.connect(pg_dsn, autocommit=True) as conn:
        for name in (a, b):  # each publication holds its own schema's tables only
            assert {str(r[0]) for r in conn.execute(
                "SELECT DISTINCT schemaname FROM pg_publication_tables WHERE pubname = %s",
                (f"loadgen_pub_{name}",),
            ).fetchall()} == {name}  # fmt: skip
    code, out, err = _cli(monkeypatch, capsys, pg_dsn, tmp_path, b, "cdc", "status", "--json")
    assert code == 0, err
    status = orjson.loads(out)
    assert status["publication"] == f"loadgen_pub_{b}" and len(status["publication_tables"]) == 7
    assert status["recorded_start_lsn"].keys() == {f"loadgen_verify_{b}"}
    code, out, err = _cli(monkeypatch, capsys, pg_dsn, tmp_path, a, "cdc", "debezium-config",
                          "--format", "properties")  # fmt: skip
    assert code == 0, err
    assert f"slot.name=loadgen_debezium_{a}\n" in out
    assert f"publication.name=loadgen_pub_{a}\n" in out
    # setup again is idempotent and still its own; teardown drops the schema's own only
    code, out, err = _cli(monkeypatch, capsys, pg_dsn, tmp_path, a, "cdc", "setup")
    assert code == 0 and f"slot loadgen_verify_{a}: exists (kept)" in out, err
    code, out, err = _cli(monkeypatch, capsys, pg_dsn, tmp_path, a, "cdc", "teardown")
    assert code == 0 and f"dropped slot loadgen_verify_{a}" in out, err
    with psycopg.connect(pg_dsn, autocommit=True) as conn:
        assert not _exists(conn, "slot", f"loadgen_verify_{a}")
        assert not _exists(conn, "publication", f"loadgen_pub_{a}")
        assert _exists(conn, "slot", f"loadgen_verify_{b}")
        assert _exists(conn, "publication", f"loadgen_pub_{b}")


def test_sharing_another_schemas_publication_or_slot_is_refused(
    pg_dsn: str, two_schemas: tuple[str, str], tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str],
) -> None:  # fmt: skip
    a, b = two_schemas
    code, _, err = _cli(monkeypatch, capsys, pg_dsn, tmp_path, a, "cdc", "setup")
    assert code == 0, err
    mine_slot, mine_pub = f"lg_test_own_{b}", f"lg_test_ownpub_{b}"
    code, out, err = _cli(monkeypatch, capsys, pg_dsn, tmp_path, b, "cdc", "setup",
                          "--publication", f"loadgen_pub_{a}", "--slot", mine_slot)  # fmt: skip
    assert code == 2, out + err
    assert f"already publishes the loadgen tables of schema {a}" in err
    assert "--publication NAME --slot NAME" in err and "Traceback" not in err
    code, out, err = _cli(monkeypatch, capsys, pg_dsn, tmp_path, b, "cdc", "setup",
                          "--slot", f"loadgen_verify_{a}", "--publication", mine_pub)  # fmt: skip
    assert code == 2, out + err
    assert f"was set up for schema {a}" in err
    with psycopg.connect(pg_dsn, autocommit=True) as conn:  # nothing was changed
        assert not _exists(conn, "slot", mine_slot)
        assert not _exists(conn, "publication", mine_pub)
        assert {str(r[0]) for r in conn.execute(
            "SELECT DISTINCT schemaname FROM pg_publication_tables WHERE pubname = %s",
            (f"loadgen_pub_{a}",),
        ).fetchall()} == {a}  # fmt: skip


def test_a_schema_name_too_long_for_the_default_is_refused_and_flags_fix_it(
    pg_dsn: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:  # fmt: skip
    name = f"lg_test_{uuid.uuid4().hex[:12]}_{'x' * 30}"  # loadgen_verify_ + 51 > 63
    with psycopg.connect(pg_dsn, autocommit=True) as conn:
        conn.execute(sql.SQL("CREATE SCHEMA {}").format(sql.Identifier(name)))
    slot, pub = f"lg_test_long_{uuid.uuid4().hex[:10]}", f"lg_test_longpub_{uuid.uuid4().hex[:8]}"
    try:
        with db.connect(with_search_path(pg_dsn, name)) as c:
            schema.init(c)
        code, out, err = _cli(monkeypatch, capsys, pg_dsn, tmp_path, name, "cdc", "setup")
        assert code == 2, out + err
        assert f"schema {name!r}" in err and "give --slot NAME (or set cdc.slot)" in err
        code, out, err = _cli(monkeypatch, capsys, pg_dsn, tmp_path, name, "cdc", "setup",
                              "--slot", slot, "--publication", pub)  # fmt: skip
        assert code == 0 and f"slot {slot}: created" in out, err
    finally:
        with db.connect(pg_dsn, autocommit=True) as conn:
            S.teardown(conn, slot=slot, publication=pub)
            conn.execute(sql.SQL("DROP SCHEMA {} CASCADE").format(sql.Identifier(name)))


def test_a_setup_made_under_the_old_default_names_is_pointed_out(
    pg_dsn: str, two_schemas: tuple[str, str], tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str],
) -> None:  # fmt: skip
    """A schema set up before names followed it holds the fixed defaults; verify then finds
    no slot of the new name (exit 3) and says which flags reach the old ones. (The fixed
    defaults are replaced by unique ones here: slot names are server-wide.)"""
    a, _ = two_schemas
    old_slot, old_pub = f"lg_test_old_{a}", f"lg_test_oldpub_{a}"
    monkeypatch.setitem(schema_names.DEFAULTS, "slot", old_slot)
    monkeypatch.setitem(schema_names.DEFAULTS, "publication", old_pub)
    code, out, err = _cli(monkeypatch, capsys, pg_dsn, tmp_path, a, "cdc", "setup",
                          "--slot", old_slot, "--publication", old_pub)  # fmt: skip
    assert code == 0, err
    ledger = tmp_path / "ledger"
    ledger.mkdir()
    (ledger / "part-00000.jsonl").write_text(
        '{"txid":1,"seq":0,"table":"medicos","op":"d","pk":1,"after":null,"op_name":"x",'
        '"writer":0,"mono_ns":0,"commit_time":"t"}\n'
    )
    code, out, err = _cli(monkeypatch, capsys, pg_dsn, tmp_path, a, "cdc", "verify",
                          "--ledger", str(ledger))  # fmt: skip
    assert code == 3, out + err
    assert f"--slot '{old_slot}_{a}': no such replication slot" in err
    assert f"pass --slot {old_slot} --publication {old_pub} to use them" in err
    code, out, err = _cli(monkeypatch, capsys, pg_dsn, tmp_path, a, "cdc", "setup")
    assert code == 0, err
    assert f"slot {old_slot}_{a}: created" in out
    assert f"`loadgen cdc teardown --slot {old_slot} --publication {old_pub}`" in out
