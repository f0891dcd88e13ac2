"""``verify --debezium``: a ledger from real transactions, and Debezium events written by hand.

The event lines are templates in the shape of the Debezium documentation's examples (schema
envelope or not, key<TAB>value, tombstones, a snapshot read); the values are filled in with the
documented encodings (MicroTimestamp = µs since the epoch, Date = days since the epoch) computed
by SQL, not by the reader under test.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import orjson
import psycopg
import pytest

from loadgen import db
from loadgen.cdc import verify_run
from loadgen.ledger import LedgerWriter
from tests.integration.test_cdc_verify import txn

pytestmark = pytest.mark.db

PAC_DBZ = (
    "SELECT id, nome, nascimento - date '1970-01-01', cpf, telefone, endereco,"
    " (extract(epoch FROM data_cadastro) * 1000000)::bigint,"
    " (extract(epoch FROM created_at) * 1000000)::bigint,"
    " (extract(epoch FROM updated_at) * 1000000)::bigint FROM pacientes WHERE id = %s"
)
PAC_COLS = [
    "id",
    "nome",
    "nascimento",
    "cpf",
    "telefone",
    "endereco",
    "data_cadastro",
    "created_at",
    "updated_at",
]
MED_DBZ = (
    "SELECT id, nome, crm, especialidade, telefone,"
    " (extract(epoch FROM created_at) * 1000000)::bigint,"
    " (extract(epoch FROM updated_at) * 1000000)::bigint FROM medicos WHERE id = %s"
)
MED_COLS = ["id", "nome", "crm", "especialidade", "telefone", "created_at", "updated_at"]


def _source(schema: str, table: str, tx_id: int, lsn: int, snapshot: str = "false") -> str:
    return (
        '{"version": "2.7.0.Final", "connector": "postgresql", "name": "hospital",'
        f' "ts_ms": 1732870000000, "snapshot": "{snapshot}", "db": "loadgen_test",'
        f' "sequence": "[null,\\"{lsn}\\"]", "schema": "{schema}", "table": "{table}",'
        f' "txId": {tx_id}, "lsn": {lsn}, "xmin": null}}'
    )


def _event(op: str, before: str, after: str, source: str) -> str:
    return (
        f'{{"before": {before}, "after": {after}, "source": {source}, "op": "{op}",'
        ' "ts_ms": 1732870000123, "transaction": null}'
    )


def _row(conn: psycopg.Connection, query: str, cols: list[str], pk: int) -> str:
    values = conn.execute(query, (pk,)).fetchone()
    assert values is not None
    return orjson.dumps(dict(zip(cols, values, strict=True))).decode()


@pytest.fixture
def stream(schema_dsn: str, tmp_path: Path) -> Iterator[tuple[psycopg.Connection, Path, list[str]]]:
    """Four ledgered transactions and the Debezium events a correct pipeline would dump."""
    conn = db.connect(schema_dsn, autocommit=True)
    schema = conn.execute("SELECT current_schema()").fetchone()[0]
    ledger = tmp_path / "ledger"
    xids = []
    ins = "INSERT INTO pacientes (nome, nascimento, cpf, telefone) VALUES (%s, %s, %s, NULL)"
    with LedgerWriter(str(ledger), 0) as w:
        txn(
            conn,
            w,
            (
                "pacientes",
                "c",
                ins,
                ("Ana Lúcia 🏥", "1969-07-20", "529.982.247-25"),
                "insert_paciente",
            ),
        )
        pac = conn.execute("SELECT max(id) FROM pacientes").fetchone()[0]
        snap_pac = _row(conn, PAC_DBZ, PAC_COLS, pac)
        txn(
            conn,
            w,
            (
                "pacientes",
                "u",
                "UPDATE pacientes SET telefone = '(11) 5555-0000' WHERE id = %s",
                (pac,),
                "update_paciente",
            ),
        )
        upd_pac = _row(conn, PAC_DBZ, PAC_COLS, pac)
        txn(
            conn,
            w,
            (
                "medicos",
                "c",
                "INSERT INTO medicos (nome, crm, especialidade) VALUES"
                " ('Dr. Ícaro', 'CRM/BA 7', 'Ortopedia')",
                (),
                "insert_medico",
            ),
        )
        med = conn.execute("SELECT max(id) FROM medicos").fetchone()[0]
        med_row = _row(conn, MED_DBZ, MED_COLS, med)
        txn(
            conn,
            w,
            ("pacientes", "d", "DELETE FROM pacientes WHERE id = %s", (pac,), "delete_paciente"),
        )
    for line in ledger.joinpath("part-00000.jsonl").read_bytes().splitlines():
        obj = orjson.loads(line)
        if "type" not in obj:  # a change line (not the header or an outcome)
            xids.append(obj["txid"] % 2**32)
    lines = [
        '{"schema": {"type": "struct", "fields": [], "optional": false, "name":'
        ' "hospital.pacientes.Envelope"}, "payload": '
        + _event("c", "null", snap_pac, _source(schema, "pacientes", xids[0], 1000))
        + "}",
        f'{{"id": {med}}}\t'
        + _event("c", "null", med_row, _source(schema, "medicos", xids[2], 3000)),
        _event("u", "null", upd_pac, _source(schema, "pacientes", xids[1], 2000)),
        _event("u", "null", upd_pac, _source(schema, "pacientes", xids[1], 2000)),  # again
        _event(
            "d",
            f'{{"id": {pac}, "nome": null, "nascimento": null, "cpf": null,'
            ' "telefone": null, "endereco": null, "data_cadastro": null, "created_at": null,'
            ' "updated_at": null}',
            "null",
            _source(schema, "pacientes", xids[3], 4000),
        ),
        "null",
    ]
    try:
        yield conn, ledger, lines
    finally:
        conn.close()


def _verify(
    conn: psycopg.Connection, ledger: Path, lines: list[str], tmp: Path, **kw: Any
) -> dict[str, Any]:
    f = tmp / "events.jsonl"
    f.write_text("\n".join(lines) + "\n")
    return verify_run.verify_debezium(conn, str(ledger), str(f), **kw).to_dict()


def _failed(report: dict[str, Any]) -> dict[str, int]:
    return {c["name"]: c["count"] for c in report["checks"] if not c["ok"]}


def test_redelivery_is_reported_at_least_once_and_fails_exactly_once(
    stream: Any, tmp_path: Path
) -> None:
    conn, ledger, lines = stream
    report = _verify(conn, ledger, lines, tmp_path)
    assert _failed(report) == {} and report["delivery"] == "at-least-once"
    assert report["counts"]["matched"] == 4 and report["counts"]["redelivered"] == 1
    assert report["counts"]["tombstones"] == 1
    exactly = _verify(conn, ledger, lines, tmp_path, delivery="exactly-once")
    assert _failed(exactly) == {"duplicated": 1}


def test_clean_dump_passes(stream: Any, tmp_path: Path) -> None:
    conn, ledger, lines = stream
    report = _verify(conn, ledger, lines[:3] + lines[4:], tmp_path)
    assert report["ok"], _failed(report)


def test_lost_event_is_missing(stream: Any, tmp_path: Path) -> None:
    conn, ledger, lines = stream
    report = _verify(conn, ledger, lines[:2] + lines[4:], tmp_path)
    assert _failed(report) == {"missing": 1}
    missing = next(c for c in report["checks"] if c["name"] == "missing")["examples"][0]
    assert missing["op_name"] == "update_paciente"


def test_altered_value_fails_values_and_final_state(stream: Any, tmp_path: Path) -> None:
    conn, ledger, lines = stream
    lines = lines[:3] + lines[4:]
    lines[1] = lines[1].replace("Ortopedia", "Ortopedia ")
    assert _failed(_verify(conn, ledger, lines, tmp_path)) == {"values": 1, "final_state": 1}
