"""The verifier against a real slot: a clean run passes, and each injected fault fails naming it.

Changes are made with psycopg and recorded with LedgerWriter from ``RETURNING`` text, as the
streaming engine does. ``verify`` reads a temporary copy of the slot, so one captured stream
serves every fault (each fault edits a copy of the ledger, or filters the captured stream).
"""

from __future__ import annotations

import shutil
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import orjson
import psycopg
import pytest
from psycopg import sql

from loadgen import db
from loadgen.cdc import pgoutput, verify_run
from loadgen.cdc import slot as S
from loadgen.cdc.rows import table_columns
from loadgen.ledger import LedgerWriter, part_files
from loadgen.ledger.changes import RowChange
from loadgen.scenarios.recorder import text_rows
from tests.fixtures.cleanup import teardown_cdc

pytestmark = pytest.mark.db


@dataclass
class Run:
    conn: psycopg.Connection
    slot: str
    publication: str
    ledger: Path
    tmp: Path

    def verify(self, ledger: Path | None = None, **kw: Any) -> dict[str, Any]:
        report = verify_run.verify_slot(
            self.conn,
            str(ledger or self.ledger),
            slot=self.slot,
            publication=self.publication,
            **kw,
        )
        return report.to_dict()

    def faulty_copy(self) -> tuple[Path, list[bytes]]:
        dst = self.tmp / f"faulty_{uuid.uuid4().hex[:6]}"
        shutil.copytree(self.ledger, dst)
        part = Path(part_files(str(dst))[0])
        # the change lines alone: written back, a format-1 ledger (every change committed),
        # so the tests index and edit changes without the header and outcome records
        lines = part.read_bytes().splitlines(keepends=True)
        return dst, [line for line in lines if b'"type":' not in line]


def _failed(report: dict[str, Any]) -> dict[str, int]:
    return {c["name"]: c["count"] for c in report["checks"] if not c["ok"]}


def change(
    conn: psycopg.Connection, table: str, op: str, query: str, params: tuple[Any, ...], op_name: str
) -> RowChange:
    """Run one INSERT/UPDATE/DELETE ... RETURNING and build its RowChange from the server's text
    output (``text_rows``: the output functions, as the stream carries them)."""
    cols = table_columns(conn, table)
    ret = sql.SQL(", ").join(map(sql.Identifier, cols))
    (row,) = text_rows(conn, sql.SQL(query + " RETURNING {}").format(ret), params)  # type: ignore[arg-type]
    after = dict(zip(cols, row, strict=True))
    return RowChange(table, op, int(after["id"]), None if op == "d" else after, op_name)


def txn(conn: psycopg.Connection, writer: LedgerWriter, *steps: tuple[Any, ...]) -> None:
    with conn.transaction():
        txid = conn.execute("SELECT pg_current_xact_id()::text::bigint").fetchone()[0]
        changes = [change(conn, *s) for s in steps]
    writer.write_txn(txid, "2026-11-29T10:00:00Z", changes)


def workload(conn: psycopg.Connection, writer: LedgerWriter) -> dict[str, int]:
    ins_pac = "INSERT INTO pacientes (nome, nascimento, cpf, telefone) VALUES (%s, %s, %s, %s)"
    txn(
        conn,
        writer,
        ("pacientes", "c", ins_pac, ("Ana Lúcia 🏥", "1980-01-02", "1", None), "ip"),
        ("pacientes", "c", ins_pac, ('João "Zé" d\'Ávila\t\\', "1990-12-31", "2", "11"), "ip"),
    )
    pac = conn.execute("SELECT min(id) FROM pacientes").fetchone()[0]
    txn(
        conn,
        writer,
        (
            "medicos",
            "c",
            "INSERT INTO medicos (nome, crm, especialidade)"
            " VALUES ('Dra. Íris', 'CRM/RJ 1', 'Pediatria')",
            (),
            "im",
        ),
    )
    med = conn.execute("SELECT min(id) FROM medicos").fetchone()[0]
    ins_con = (
        "INSERT INTO consultas (paciente_id, medico_id, data, motivo, status)"
        " VALUES (%s, %s, '2025-01-01 10:00', 'rotina', 'agendada')"
    )
    txn(conn, writer, ("consultas", "c", ins_con, (pac, med), "ic"))
    con = conn.execute("SELECT max(id) FROM consultas").fetchone()[0]
    upd_con = "UPDATE consultas SET status = %s WHERE id = %s"
    txn(conn, writer, ("consultas", "u", upd_con, ("realizada", con), "uc"))
    txn(conn, writer, ("consultas", "u", upd_con, ("cancelada", con), "uc"))
    txn(
        conn,
        writer,
        (
            "exames",
            "c",
            "INSERT INTO exames (paciente_id, tipo_exame, data) VALUES"
            " (%s, 'Raio X', '2025-02-02 08:00:00.25')",
            (pac,),
            "ie",
        ),
        (
            "pacientes",
            "u",
            "UPDATE pacientes SET endereco = 'Rua A, 1' WHERE id = %s",
            (pac,),
            "up",
        ),
    )
    exa = conn.execute("SELECT max(id) FROM exames").fetchone()[0]
    txn(
        conn,
        writer,
        ("exames", "u", "UPDATE exames SET resultado = 'normal' WHERE id = %s", (exa,), "ue"),
        ("exames", "u", "UPDATE exames SET resultado = 'revisado' WHERE id = %s", (exa,), "ue"),
    )
    txn(conn, writer, ("consultas", "d", "DELETE FROM consultas WHERE id = %s", (con,), "dc"))
    return {"pac": pac, "con": con, "exa": exa}


@contextmanager
def _run(schema_dsn: str, tmp_path: Path, replica_identity: str) -> Iterator[Run]:
    tag = uuid.uuid4().hex[:10]
    slot, pub = f"lg_test_slot_{tag}", f"lg_test_pub_{tag}"
    conn = db.connect(schema_dsn, autocommit=True)
    try:
        S.setup(conn, publication=pub, slot=slot, replica_identity=replica_identity)
        # before the ledger starts: captured, but excluded from the checks
        conn.execute(
            "UPDATE convenios SET cobertura = 'ampla' WHERE id = (SELECT min(id) FROM convenios)"
        )
        with LedgerWriter(str(tmp_path / "ledger"), 0) as writer:
            workload(conn, writer)
        yield Run(conn, slot, pub, tmp_path / "ledger", tmp_path)
    finally:
        teardown_cdc(conn, slot=slot, publication=pub)
        conn.close()


@pytest.fixture
def run(schema_dsn: str, tmp_path: Path) -> Iterator[Run]:
    """A captured workload under replica identity default (the faults do not depend on it)."""
    with _run(schema_dsn, tmp_path, "default") as r:
        yield r


@pytest.fixture(params=["default", "full"])
def run_both(request: pytest.FixtureRequest, schema_dsn: str, tmp_path: Path) -> Iterator[Run]:
    with _run(schema_dsn, tmp_path, request.param) as r:
        yield r


def test_clean_run_passes_and_is_repeatable(run_both: Run) -> None:
    run = run_both
    report = run.verify()
    assert report["ok"], _failed(report)
    assert report["counts"]["ledger_changes"] == 11
    assert report["counts"]["ledger_transactions"] == 8
    assert report["counts"]["matched"] == 11
    assert report["counts"]["excluded_before_ledger"] == 1
    assert run.verify()["counts"]["matched"] == 11  # the slot itself was not consumed


def test_ledger_line_removed(run: Run) -> None:
    dst, lines = run.faulty_copy()
    assert b'"exames"' in lines[6] and b'"pacientes"' in lines[7]
    del lines[6]  # one change of a two-change transaction
    Path(part_files(str(dst))[0]).write_bytes(b"".join(lines))
    assert _failed(run.verify(dst)) == {"missing_from_ledger": 1}
    del lines[2]  # the only change of its transaction: the whole transaction is unknown
    Path(part_files(str(dst))[0]).write_bytes(b"".join(lines))
    assert _failed(run.verify(dst)) == {"missing_from_ledger": 1, "unexpected": 1}


def test_change_lost_by_the_consumer(run: Run, monkeypatch: pytest.MonkeyPatch) -> None:
    real = S.SlotReader.__iter__  # what verify reads the slot through

    def lossy(self: S.SlotReader) -> Iterator[list[tuple[int, int, bytes]]]:
        for batch in real(self):
            kept = []
            for row in batch:
                msg = pgoutput.decode(row[2])
                if isinstance(msg, pgoutput.Update) and "revisado" in msg.new:
                    continue  # the exame's last update never arrives
                kept.append(row)
            yield kept

    monkeypatch.setattr(S.SlotReader, "__iter__", lossy)
    failed = _failed(run.verify())
    assert failed.keys() == {"missing", "grouping", "final_state"}  # half a transaction
    assert failed["missing"] == 1


def test_change_behind_the_generators_back(run: Run) -> None:
    run.conn.execute(
        "UPDATE pacientes SET telefone = '999' WHERE id = (SELECT max(id) FROM pacientes)"
    )
    report = run.verify()
    assert _failed(report) == {"unexpected": 1}
    example = next(c for c in report["checks"] if c["name"] == "unexpected")["examples"][0]
    assert example["table"] == "pacientes" and example["after"]["telefone"] == "999"


def test_ledger_line_duplicated(run: Run) -> None:
    dst, lines = run.faulty_copy()
    lines.insert(5, lines[5])
    Path(part_files(str(dst))[0]).write_bytes(b"".join(lines))
    assert _failed(run.verify(dst)) == {"ledger_duplicates": 1}


def test_two_changes_of_one_key_swapped(run: Run) -> None:
    dst, lines = run.faulty_copy()
    assert b'"realizada"' in lines[4] and b'"cancelada"' in lines[5]
    lines[4], lines[5] = lines[5], lines[4]
    Path(part_files(str(dst))[0]).write_bytes(b"".join(lines))
    report = run.verify(dst)
    assert _failed(report) == {"order": 1}
    example = next(c for c in report["checks"] if c["name"] == "order")["examples"][0]
    assert example["table"] == "consultas"


def test_one_value_altered(run: Run) -> None:
    dst, lines = run.faulty_copy()
    assert b"Ana L\xc3\xbacia" in lines[0]
    lines[0] = lines[0].replace("Ana Lúcia".encode(), b"Ana Lucia")
    Path(part_files(str(dst))[0]).write_bytes(b"".join(lines))
    report = run.verify(dst)
    assert _failed(report) == {"values": 1}
    example = next(c for c in report["checks"] if c["name"] == "values")["examples"][0]
    assert example["differences"] == {
        "nome": {"ledger": "Ana Lucia 🏥", "captured": "Ana Lúcia 🏥"}
    }


def test_after_image_in_another_column_order_still_matches(run: Run) -> None:
    dst, lines = run.faulty_copy()
    out = []
    for raw in lines:
        obj = orjson.loads(raw)
        if obj["after"]:
            obj["after"] = dict(reversed(list(obj["after"].items())))
        out.append(orjson.dumps(obj) + b"\n")
    Path(part_files(str(dst))[0]).write_bytes(b"".join(out))
    report = run.verify(dst)
    assert report["ok"], _failed(report)


def test_torn_last_line_is_reported_not_fatal(run: Run) -> None:
    dst, lines = run.faulty_copy()
    Path(part_files(str(dst))[0]).write_bytes(b"".join(lines) + b'{"txid": 1, "se')
    report = run.verify(dst)
    assert report["ok"]
    assert report["counts"]["torn_ledger_lines"] == 1 and "torn" in report["notes"][0]


def test_unchanged_toast_carried_forward(run_both: Run) -> None:
    run = run_both
    c = run.conn
    c.execute("CREATE TABLE cdc_toast_probe (id bigserial PRIMARY KEY, laudo text, n int)")
    c.execute("ALTER TABLE cdc_toast_probe ALTER COLUMN laudo SET STORAGE EXTERNAL")
    c.execute(
        sql.SQL("ALTER PUBLICATION {} ADD TABLE cdc_toast_probe").format(
            sql.Identifier(run.publication)
        )
    )
    big = c.execute(
        "SELECT string_agg(md5(i::text), '') FROM generate_series(1, 100) i"
    ).fetchone()[0]
    with LedgerWriter(str(run.ledger), 1) as writer:
        txn(
            c,
            writer,
            (
                "cdc_toast_probe",
                "c",
                "INSERT INTO cdc_toast_probe (laudo, n) VALUES (%s, 1)",
                (big,),
                "toast_insert",
            ),
        )
        txn(
            c,
            writer,
            ("cdc_toast_probe", "u", "UPDATE cdc_toast_probe SET n = 2", (), "toast_update"),
        )
    report = run.verify()
    assert report["ok"], _failed(report)
    assert report["counts"]["matched"] == 13


def test_truncate_and_primary_key_update(run: Run) -> None:
    c = run.conn
    c.execute("CREATE TABLE cdc_probe (id bigint PRIMARY KEY, v text)")
    c.execute(
        sql.SQL("ALTER PUBLICATION {} ADD TABLE cdc_probe").format(sql.Identifier(run.publication))
    )
    with LedgerWriter(str(run.ledger), 2) as writer:
        txn(
            c,
            writer,
            ("cdc_probe", "c", "INSERT INTO cdc_probe VALUES (1, 'a')", (), "ins"),
            ("cdc_probe", "c", "INSERT INTO cdc_probe VALUES (2, 'b')", (), "ins"),
        )
        with c.transaction():
            txid = c.execute("SELECT pg_current_xact_id()::text::bigint").fetchone()[0]
            moved = change(
                c,
                "cdc_probe",
                "u",
                "UPDATE cdc_probe SET id = 100 WHERE id = 1",
                (),
                "probe_pk_update",
            )
        writer.write_txn(
            txid, "t", [RowChange("cdc_probe", "u", 100, moved.after, "probe_pk_update", old_pk=1)]
        )
        assert moved.pk == 100
        assert run.verify()["ok"]
        with c.transaction():
            txid = c.execute("SELECT pg_current_xact_id()::text::bigint").fetchone()[0]
            c.execute("TRUNCATE cdc_probe")
            c.execute("INSERT INTO cdc_probe VALUES (7, 'z')")
        writer.write_txn(
            txid,
            "t",
            [
                RowChange("cdc_probe", "t", 0, None, "probe_truncate"),
                RowChange("cdc_probe", "c", 7, {"id": "7", "v": "z"}, "p"),
            ],
        )
    report = run.verify()
    assert report["ok"], _failed(report)
    assert report["counts"]["ledger_truncates"] == 1 and report["counts"]["captured_truncates"] == 1
    c.execute("INSERT INTO cdc_probe VALUES (8, 'behind')")
    c.execute("TRUNCATE cdc_probe")  # a truncate the ledger does not know
    assert _failed(run.verify()) == {"unexpected": 2}
