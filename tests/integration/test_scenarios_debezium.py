"""``verify --debezium`` on scenario changes: Debezium events written by hand (the
documented envelope and encodings, values rendered by SQL, not by the reader under test), then
the Debezium-side faults: a placeholder stored as data, a primary-key update's delete and
create reordered."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import orjson
import pytest

from loadgen.cdc import debezium, verify_run
from loadgen.cdc.results import VerifyReport
from loadgen.ledger import read_ledger
from tests.integration import test_scenarios
from tests.integration.test_scenarios import Cdc

pytestmark = pytest.mark.db

cdc = test_scenarios.cdc  # the fixture: scenario tables, publications and a fresh slot
PLACEHOLDER = debezium.UNAVAILABLE_PLACEHOLDER
TOAST_MIN_CHARS = 2000  # larger values are stored out of line (TOAST) in these scenarios


def _dbz_row(cdc: Cdc, table: str, row: dict[str, str | None] | None) -> dict[str, Any] | None:
    """A text row image in Debezium's JSON encoding (ZonedTimestamp, ARRAY, Json), by SQL."""
    if row is None:
        return None
    out: dict[str, Any] = {}
    for col, v in row.items():
        if v is None:
            out[col] = None
        elif col in ("id", "paciente_id", "revisao", "valor"):
            out[col] = int(v)
        elif col == "marcadores":
            out[col] = cdc.conn.execute("SELECT to_json(%s::text[])", (v,)).fetchone()[0]  # type: ignore[index]
        elif col == "atualizado_em":
            out[col] = cdc.conn.execute(
                "SELECT to_char(%s::timestamptz AT TIME ZONE 'UTC',"
                ' \'YYYY-MM-DD"T"HH24:MI:SS.US"Z"\')',
                (v,),
            ).fetchone()[0]  # type: ignore[index]
        else:
            out[col] = v  # text, varchar, jsonb (io.debezium.data.Json: the text)
    return out


def events_for(cdc: Cdc, schema: str) -> list[bytes]:
    """Debezium event lines a correct connector would emit for the ledger's changes."""
    lines: list[bytes] = []
    lsn = 1000
    last: dict[tuple[str, int], dict[str, str | None]] = {}

    def emit(
        op: str, table: str, txid: int, before: Any, after: Any, same_lsn: bool = False
    ) -> None:
        nonlocal lsn
        lsn += 0 if same_lsn else 8  # a key change's delete and create share one LSN
        source = {
            "version": "2.7.0.Final",
            "connector": "postgresql",
            "name": "hospital",
            "ts_ms": 1732870000000,
            "snapshot": "false",
            "db": "test",
            "schema": schema,
            "table": table,
            "txId": txid % 2**32,
            "lsn": lsn,
            "xmin": None,
        }
        lines.append(
            orjson.dumps(
                {
                    "before": before,
                    "after": after,
                    "source": source,
                    "op": op,
                    "ts_ms": 1732870000123,
                    "transaction": None,
                }
            )
        )
        if op == "d":
            lines.append(b"null")  # the tombstone (tombstones.on.delete=true)

    for e in read_ledger(cdc.ledger).entries:
        if e.op == "t":
            emit("t", e.table, e.txid, None, None)
            continue
        key_before = {"id": e.old_pk if e.old_pk is not None else e.pk}
        if e.op == "d":
            emit("d", e.table, e.txid, key_before, None)
            last.pop((e.table, e.pk), None)
            continue
        assert e.after is not None
        if e.op == "u" and e.old_pk is not None:  # a key change: delete old, create new
            emit("d", e.table, e.txid, key_before, None)
            emit("c", e.table, e.txid, None, _dbz_row(cdc, e.table, e.after), same_lsn=True)
        else:
            after = _dbz_row(cdc, e.table, e.after)
            prev = last.get((e.table, e.pk), {})
            if e.op == "u" and after is not None:  # unchanged TOASTed values are left out
                for col, v in e.after.items():
                    if v is not None and len(v) > TOAST_MIN_CHARS and prev.get(col) == v:
                        after[col] = PLACEHOLDER
            emit(e.op, e.table, e.txid, None, after)
        last[(e.table, e.pk)] = e.after
    return lines


def _verify(cdc: Cdc, path: Path, lines: list[bytes]) -> VerifyReport:
    path.write_bytes(b"\n".join(lines) + b"\n")
    return verify_run.verify_debezium(cdc.conn, cdc.ledger, str(path))


def test_debezium_scenarios_and_their_faults(cdc: Cdc, tmp_path: Path) -> None:
    cdc.run("pk-update", "toast-unchanged", "delete-tombstone")
    schema = str(cdc.conn.execute("SELECT current_schema()").fetchone()[0])  # type: ignore[index]
    lines = events_for(cdc, schema)
    assert sum(PLACEHOLDER.encode() in x for x in lines) >= 5
    clean = _verify(cdc, tmp_path / "clean.jsonl", lines)
    assert clean.is_ok, [(c.name, c.examples[:1]) for c in clean.checks if not c.is_ok]
    assert clean.counts["tombstones"] > 0

    # the placeholder stored as data: in a create, where no earlier value can stand for it
    docs = [orjson.loads(x) for x in lines]
    i = next(
        i
        for i, d in enumerate(docs)
        if d and d["op"] == "c" and d["source"]["table"] == "cdc_laudos"
    )
    docs[i]["after"]["laudo"] = PLACEHOLDER
    report = _verify(cdc, tmp_path / "placeholder.jsonl", [orjson.dumps(d) for d in docs])
    failed = {c.name: c for c in report.checks if not c.is_ok}
    assert "values" in failed and failed["values"].scenarios == ["toast-unchanged"], failed

    # a primary-key update's create delivered before the delete of the old key
    docs = [orjson.loads(x) for x in lines]
    d_at = next(
        i
        for i, d in enumerate(docs)
        if d and d["op"] == "d" and d["source"]["table"] == "cdc_pacientes"
    )
    c_at = d_at + 2  # after the tombstone
    assert docs[c_at]["op"] == "c" and docs[c_at]["source"]["txId"] == docs[d_at]["source"]["txId"]
    docs[d_at], docs[c_at] = docs[c_at], docs[d_at]
    report = _verify(cdc, tmp_path / "reordered.jsonl", [orjson.dumps(d) for d in docs])
    failed = {c.name: c for c in report.checks if not c.is_ok}
    assert list(failed) == ["order"] and failed["order"].scenarios == ["pk-update"], failed


def test_cli_setup_with_scenarios_run_verify_drop(
    schema_dsn: str,
    cli_env: dict[str, str],
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    """`cdc setup --with-scenarios --replica-identity full` → `scenario run` → `cdc verify`
    (exit 0; a leaked change fails naming the scenario) → teardown → `scenario drop`."""
    import uuid

    from loadgen import db
    from loadgen.cdc import slot_state as S
    from tests.integration.test_cdc_cli import in_process

    tag = uuid.uuid4().hex[:10]
    flags = ["--slot", f"lg_scn_cli_{tag}", "--publication", f"lg_scn_cli_pub_{tag}"]
    ledger = str(tmp_path / "ledger")

    def run(*args: str) -> tuple[int, str, str]:
        return in_process(monkeypatch, capsys, cli_env, tmp_path, *args)

    try:
        code, out, err = run(
            "cdc", "setup", "--with-scenarios", "--replica-identity", "full", *flags
        )
        assert code == 0, err
        code, out, err = run(
            "scenario", "run", "pk-update", "partitioned", "types", "--ledger", ledger
        )
        assert code == 0, err
        code, out, err = run("cdc", "status", "--json", flags[2], flags[3])
        assert "cdc_agenda_2024" in out and "cdc_laudos" in out  # partitions, by name
        code, out, err = run("cdc", "verify", "--ledger", ledger, *flags)
        assert code == 0, out + err
        with db.connect(schema_dsn, autocommit=True) as conn:  # a change the ledger lacks
            conn.execute("INSERT INTO cdc_tipos (rotulo) VALUES ('fora do ledger')")
        # after the scenario run's recorded end it is a later run's, not the ledger's...
        code, out, err = run("cdc", "verify", "--ledger", ledger, "--json", *flags)
        assert code == 0 and orjson.loads(out)["counts"]["excluded_after_ledger"] == 1, out + err
        ends = list(Path(ledger).glob("end-*.json"))
        assert len(ends) == 1, ends
        ends[0].unlink()  # ...without the end (as after a SIGKILL) it is unexpected
        code, out, err = run("cdc", "verify", "--ledger", ledger, "--json", *flags)
        assert code == 1
        report = orjson.loads(out)
        failed = {c["name"]: c for c in report["checks"] if not c["ok"]}
        assert failed["unexpected"]["scenarios"] == ["types"], failed
        assert failed["unexpected"]["examples"][0]["scenario"] == "types"
    finally:
        code, out, err = run("cdc", "teardown", *flags)
        assert code == 0, err
    code, out, err = run("scenario", "drop", "--yes")
    assert code == 0 and "dropped 17 scenario tables" in out, out + err
    with db.connect(schema_dsn) as conn:
        assert conn.execute("SELECT to_regclass('cdc_laudos')").fetchone() == (None,)
        assert not S.recorded_slots(conn).get(flags[1])
