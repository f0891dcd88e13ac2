"""``cdc verify``'s inputs: a file that is not Debezium events is bad input (exit 2, one line);
a slot or publication that does not exist is the database lacking what ``cdc setup`` creates
(exit 3 for both, one line); a publication with a column list, and a generated column the
user added, are compared on the columns the stream carries (no false alarm)."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from pathlib import Path

import orjson
import psycopg
import pytest
from psycopg import sql

from loadgen import db
from loadgen.cdc import ledger_index, verify_run
from loadgen.cdc import slot as S
from loadgen.ledger import LedgerWriter
from loadgen.ledger.changes import RowChange
from loadgen.scenarios.recorder import text_rows
from tests.fixtures.cleanup import teardown_cdc
from tests.integration.test_cdc_cli import in_process
from tests.integration.test_cdc_verify import workload

pytestmark = pytest.mark.db


@pytest.fixture
def ledger(schema_dsn: str, tmp_path: Path) -> Path:
    """A small ledger (no slot needed to refuse what follows)."""
    with (
        db.connect(schema_dsn, autocommit=True) as conn,
        LedgerWriter(str(tmp_path / "ledger"), 0) as w,
    ):
        workload(conn, w)
    return tmp_path / "ledger"


@pytest.mark.parametrize(
    ("content", "why"),
    [
        (bytes(range(256)) * 4, "a binary file, not Debezium change events"),
        (b"timestamp,table,op\n1,pacientes,c\n", "not Debezium change events (line 1 is not JSON)"),
        (None, "not Debezium change events (no line is a change event"),  # the ledger itself
    ],
)
def test_a_file_that_is_not_debezium_events_exits_2(
    cli_env: dict[str, str],
    tmp_path: Path,
    ledger: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    content: bytes | None,
    why: str,
) -> None:
    events = tmp_path / "events.jsonl"
    events.write_bytes(
        content if content is not None else (ledger / "part-00000.jsonl").read_bytes()
    )
    code, out, err = in_process(
        monkeypatch, capsys, cli_env, tmp_path,
        "cdc", "verify", "--ledger", str(ledger), "--debezium", str(events),
    )  # fmt: skip
    assert code == 2, out + err
    assert why in err and len(err.strip().splitlines()) == 1 and "Traceback" not in err


def test_missing_slot_and_missing_publication_exit_3_alike(
    cli_env: dict[str, str],
    tmp_path: Path,
    ledger: Path,
    schema_dsn: str,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    tag = uuid.uuid4().hex[:10]
    slot, pub = f"lg_in_slot_{tag}", f"lg_in_pub_{tag}"
    with db.connect(schema_dsn, autocommit=True) as conn:
        S.setup(conn, publication=pub, slot=slot, replica_identity="default")
    try:
        for flags, named in (
            (["--slot", f"nope_{tag}", "--publication", pub], f"--slot 'nope_{tag}'"),
            (["--slot", slot, "--publication", f"nope_{tag}"], f"--publication 'nope_{tag}'"),
        ):
            code, out, err = in_process(
                monkeypatch, capsys, cli_env, tmp_path, "cdc", "verify", "--ledger", str(ledger),
                *flags,
            )  # fmt: skip
            assert code == 3, out + err
            assert named in err and "cdc setup" in err and len(err.strip().splitlines()) == 1
    finally:
        with db.connect(schema_dsn, autocommit=True) as conn:
            teardown_cdc(conn, slot=slot, publication=pub)


@pytest.fixture
def column_list(schema_dsn: str, tmp_path: Path) -> Iterator[tuple[psycopg.Connection, str, str]]:
    """A publication whose pacientes leaves endereco out, and a generated column on pacientes
    (the ledger records both; neither stream sends them)."""
    tag = uuid.uuid4().hex[:10]
    slot, pub = f"lg_cl_slot_{tag}", f"lg_cl_pub_{tag}"
    tables = sql.SQL(", ").join(
        [sql.SQL("pacientes (id, nome, nascimento, cpf, telefone, data_cadastro, created_at,"
                 " updated_at)")]
        + [sql.Identifier(t) for t in ("medicos", "consultas", "exames", "convenios")]
    )  # fmt: skip
    with db.connect(schema_dsn, autocommit=True) as conn:
        conn.execute(
            "ALTER TABLE pacientes ADD COLUMN nome_upper text"
            " GENERATED ALWAYS AS (upper(nome)) STORED"
        )
        conn.execute(
            sql.SQL("CREATE PUBLICATION {} FOR TABLE {}").format(sql.Identifier(pub), tables)
        )
        conn.execute("SELECT pg_create_logical_replication_slot(%s, 'pgoutput')", (slot,))
        try:
            yield conn, slot, pub
        finally:
            teardown_cdc(conn, slot=slot, publication=pub)


def _returning_all(
    conn: psycopg.Connection,
    w: LedgerWriter,
    table: str,
    op: str,
    query: str,
    params: tuple[object, ...],
) -> None:
    """One change recorded as the workload records it: ``RETURNING *`` (generated columns
    included) as the server's text output."""
    with conn.transaction():
        txid = int(conn.execute("SELECT pg_current_xact_id()::text::bigint").fetchone()[0])  # type: ignore[index]
        names = [c.name for c in conn.execute(sql.SQL("SELECT * FROM {} LIMIT 0").format(
            sql.Identifier(table))).description or ()]  # fmt: skip
        (row,) = text_rows(conn, sql.SQL(query + " RETURNING *"), params)  # type: ignore[arg-type]
    after = dict(zip(names, row, strict=True))
    w.write_txn(txid, "t", [RowChange(table, op, int(str(after["id"])), after, f"{op}_{table}")])


def test_column_list_and_generated_column_compare_on_carried_columns(
    column_list: tuple[psycopg.Connection, str, str], tmp_path: Path
) -> None:
    conn, slot, pub = column_list
    with LedgerWriter(str(tmp_path / "ledger"), 0) as w:
        ins = "INSERT INTO pacientes (nome, nascimento, cpf, endereco) VALUES (%s, %s, %s, %s)"
        _returning_all(conn, w, "pacientes", "c", ins, ("Ana Lúcia", "1980-01-02", "1", "Rua A"))
        pk = int(conn.execute("SELECT max(id) FROM pacientes").fetchone()[0])  # type: ignore[index]
        upd = "UPDATE pacientes SET endereco = 'Rua B', nome = 'Ana Lúcia Souza' WHERE id = %s"
        _returning_all(conn, w, "pacientes", "u", upd, (pk,))
        ins = "INSERT INTO medicos (nome, crm, especialidade) VALUES ('Dr. X', 'CRM 9', 'Ped')"
        _returning_all(conn, w, "medicos", "c", ins, ())
    line = next(  # the first change line (format 2: a header comes first)
        x
        for x in (tmp_path / "ledger" / "part-00000.jsonl").read_text().splitlines()
        if '"type"' not in x
    )
    assert '"endereco"' in line and '"nome_upper"' in line  # recorded, not carried
    # the ledger's hashes cover the carried columns only (the fast path matches them)
    index, uncarried = verify_run._load(str(tmp_path / "ledger"), conn, pub)
    assert uncarried[index.codes.code("pacientes")] == {"endereco", "nome_upper"}
    first = orjson.loads(line)["after"]
    kept = {k: v for k, v in first.items() if k not in ("endereco", "nome_upper")}
    assert int(index.vhash[0]) == ledger_index.dict_hash(kept)
    report = verify_run.verify_slot(conn, str(tmp_path / "ledger"), slot=slot, publication=pub)
    assert report.is_ok, [(c.name, c.examples[:1]) for c in report.checks if not c.is_ok]
    assert report.counts["matched"] == 3
    # a real difference in a carried column still fails
    faulty = tmp_path / "faulty"
    faulty.mkdir()
    (faulty / "part-00000.jsonl").write_text(
        (tmp_path / "ledger" / "part-00000.jsonl").read_text().replace("Souza", "Sousa")
    )
    report = verify_run.verify_slot(conn, str(faulty), slot=slot, publication=pub)
    assert {c.name for c in report.checks if not c.is_ok} == {"values"}
