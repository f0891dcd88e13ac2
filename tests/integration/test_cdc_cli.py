"""End to end through the CLI: cdc setup → stream (every operation, --ledger) → cdc verify.

Runs ``loadgen`` in subprocesses against the test schema (the ``cli_env`` fixture), so the
engine's ledger, the verifier and the exit codes are what a user gets.
"""

from __future__ import annotations

import logging
import os
import subprocess
import sys
import uuid
from collections.abc import Iterator
from pathlib import Path

import orjson
import psycopg
import pytest

from loadgen import db
from loadgen.ledger import read_ledger
from loadgen.ops.registry import OP_NAMES
from tests.fixtures.cleanup import teardown_cdc

pytestmark = pytest.mark.db

SEED_SQL = [
    "INSERT INTO pacientes (nome, nascimento, cpf, telefone, endereco) SELECT 'Paciente ' || i,"
    " date '1950-01-01' + i * 30, lpad(i::text, 11, '0'), '(11) 9' || i, 'Rua ' || i"
    " FROM generate_series(1, 200) i",
    "INSERT INTO medicos (nome, crm, especialidade) SELECT 'Médico ' || i, 'CRM/SP ' || i,"
    " 'Clínica Geral' FROM generate_series(1, 20) i",
    "INSERT INTO pacientes_convenios (paciente_id, convenio_id, numero_carteira, validade)"
    " SELECT p.id, c.id, 'C' || p.id, date '2030-01-01' FROM pacientes p"
    " JOIN convenios c ON c.id = (SELECT min(id) FROM convenios)",
    "INSERT INTO consultas (paciente_id, medico_id, data, motivo, status) SELECT p.id,"
    " (SELECT min(id) FROM medicos), now()::timestamp - interval '1 day' * (p.id % 5),"
    " 'Rotina', CASE WHEN p.id % 4 = 0 THEN 'cancelada' ELSE 'agendada' END FROM pacientes p",
    "INSERT INTO exames (paciente_id, tipo_exame, data) SELECT p.id, 'Hemograma',"
    " now()::timestamp - interval '2 days' FROM pacientes p",
    "INSERT INTO internacoes (paciente_id, data_entrada, motivo, quarto) SELECT p.id,"
    " now()::timestamp - interval '3 days', 'Observação', '10' || p.id FROM pacientes p"
    " WHERE p.id % 3 = 0",
]


def loadgen(
    env: dict[str, str], cwd: Path, *args: str, timeout_s: float = 120
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "loadgen", *args],
        env=env,
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=timeout_s,
        check=False,
    )


@pytest.fixture
def names(schema_dsn: str) -> Iterator[tuple[str, str]]:
    tag = uuid.uuid4().hex[:10]
    slot, pub = f"lg_test_slot_{tag}", f"lg_test_pub_{tag}"
    yield slot, pub
    with db.connect(schema_dsn, autocommit=True) as conn:  # whatever the test left behind
        teardown_cdc(conn, slot=slot, publication=pub)


def test_setup_stream_every_operation_verify(
    schema_dsn: str,
    cli_env: dict[str, str],
    tmp_path: Path,
    names: tuple[str, str],
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    slot, pub = names
    with psycopg.connect(schema_dsn, autocommit=True) as conn:
        for q in SEED_SQL:
            conn.execute(q)
    flags = ["--slot", slot, "--publication", pub]
    r = loadgen(cli_env, tmp_path, "cdc", "setup", *flags)
    assert r.returncode == 0, r.stderr
    assert "created" in r.stdout and "only transactions that commit after" in r.stdout

    ledger = tmp_path / "ledger"
    mix = ",".join(f"{name}=1" for name in OP_NAMES)
    r = loadgen(
        cli_env,
        tmp_path,
        "stream",
        "--workers",
        "2",
        "--rate",
        "300/s",
        "--max-ops",
        "300",
        "--batch-size",
        "5",
        "--mix",
        mix,
        "--seed",
        "7",
        "--ledger",
        str(ledger),
        "--no-progress",
    )
    assert r.returncode == 0, r.stderr

    r = loadgen(cli_env, tmp_path, "cdc", "verify", "--ledger", str(ledger), "--json", *flags)
    assert r.returncode == 0, r.stdout + r.stderr
    report = orjson.loads(r.stdout)
    assert report["ok"]
    counts = report["counts"]
    assert counts["ledger_changes"] >= 300 and counts["matched"] == counts["ledger_changes"]
    ops = {e.op_name for e in read_ledger(str(ledger)).entries}
    assert ops == set(OP_NAMES), f"operations that never ran: {set(OP_NAMES) - ops}"

    # a change behind the generator's back after the run had ended (its end recorded): not
    # the ledger's business; without the run's end (as after a SIGKILL) it fails unexpected
    ends = list(ledger.glob("end-*.json"))
    assert len(ends) == 1 and report["ledger_end"]["lsn"] is not None
    with psycopg.connect(schema_dsn, autocommit=True) as conn:
        conn.execute("UPDATE medicos SET telefone = 'x' WHERE id = (SELECT min(id) FROM medicos)")
    r = loadgen(cli_env, tmp_path, "cdc", "verify", "--ledger", str(ledger), *flags)
    assert r.returncode == 0, r.stdout + r.stderr
    assert "excluded_after_ledger=1," in r.stdout
    ends[0].unlink()
    r = loadgen(cli_env, tmp_path, "cdc", "verify", "--ledger", str(ledger), *flags)
    assert r.returncode == 1
    assert "FAIL unexpected" in r.stdout and "check(s) failed: unexpected" in r.stderr
    assert "note: ledger end unknown: run" in r.stdout

    # the cheap commands in-process (a subprocess costs seconds of imports)
    code, out, err = in_process(
        monkeypatch, capsys, cli_env, tmp_path, "cdc", "status", "--json", "--publication", pub
    )
    assert code == 0, err
    status = orjson.loads(out)
    assert slot in [s["slot_name"] for s in status["slots"]]
    assert len(status["publication_tables"]) == 7
    assert set(status["replica_identity"].values()) == {"default"}

    code, out, err = in_process(monkeypatch, capsys, cli_env, tmp_path, "cdc", "teardown", *flags)
    assert code == 0, err
    assert f"dropped slot {slot}" in out
    with db.connect(schema_dsn) as conn:
        assert conn.execute(
            "SELECT count(*) FROM pg_replication_slots WHERE slot_name = %s", (slot,)
        ).fetchone() == (0,)


def in_process(
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    env: dict[str, str],
    cwd: Path,
    *args: str,
) -> tuple[int, str, str]:
    """Run ``loadgen.cli.main(args)`` here with ``env``; return (exit code, stdout, stderr)."""
    from loadgen.cli import main

    for key in [k for k in os.environ if k.startswith(("LOADGEN_", "PG_"))]:
        monkeypatch.delenv(key)
    for key, value in env.items():
        monkeypatch.setenv(key, value)
    monkeypatch.chdir(cwd)
    capsys.readouterr()
    root = logging.getLogger()
    saved = list(root.handlers)
    try:
        main(list(args))
        code = 0
    except SystemExit as exc:
        code = int(exc.code or 0)
    finally:  # the CLI installs its own log handlers (a file in cwd): close them, restore ours
        for handler in list(root.handlers):
            root.removeHandler(handler)
            if handler not in saved:
                handler.close()
        for handler in saved:
            root.addHandler(handler)
    out, err = capsys.readouterr()
    return code, out, err


def test_bad_input_exits_2(
    cli_env: dict[str, str],
    tmp_path: Path,
    schema_dsn: str,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    code, _, err = in_process(
        monkeypatch, capsys, cli_env, tmp_path, "cdc", "debezium-config", "--format", "yaml"
    )
    assert code == 2 and "--format 'yaml'" in err and "Traceback" not in err
    with psycopg.connect(schema_dsn) as conn:  # outside public the defaults carry the schema
        schema = str(conn.execute("SELECT current_schema()").fetchone()[0])  # type: ignore[index]
    verifier = f"loadgen_verify_{schema}"
    code, _, err = in_process(
        monkeypatch, capsys, cli_env, tmp_path, "cdc", "debezium-config", "--slot", verifier
    )
    assert code == 2 and "verifier's slot" in err
    code, _, err = in_process(
        monkeypatch, capsys, cli_env, tmp_path, "cdc", "verify", "--ledger", str(tmp_path / "none")
    )
    assert code == 2 and "no ledger part files" in err
    code, out, err = in_process(
        monkeypatch, capsys, cli_env, tmp_path, "cdc", "debezium-config", "--format", "properties"
    )
    assert code == 0, err
    assert "plugin.name=pgoutput" in out and f"slot.name=loadgen_debezium_{schema}\n" in out
    assert f"publication.name=loadgen_pub_{schema}\n" in out


def _dead_pid() -> int:
    child = subprocess.Popen([sys.executable, "-c", "pass"])
    child.wait()  # reaped: its pid is free (reuse within the test is vanishingly unlikely)
    return child.pid


def test_capture_status_of_a_killed_capture_says_it_died_without_a_summary(
    tmp_path: Path,
) -> None:
    """A SIGKILLed capture leaves its last periodic status (phase streaming) and its pid file:
    `capture status` must say it is not running and left no summary, not print a summary of
    Python Nones with a rate from a zero duration."""
    out = tmp_path / "ev.jsonl"
    pid = _dead_pid()
    status = {"pid": pid, "out": str(out), "phase": "streaming", "started_at": 1.0, "slot": "dbz",
              "lines": 312, "lines_per_s": 40.0, "last_lsn": "0/16B3748"}  # fmt: skip
    out.with_name("ev.jsonl.status.json").write_bytes(orjson.dumps(status))
    out.with_name("ev.jsonl.pid").write_text(str(pid))
    env = {k: v for k, v in os.environ.items() if not k.startswith(("LOADGEN_", "PG"))}
    r = loadgen(env, tmp_path, "cdc", "capture", "status", "--out", str(out))
    assert r.returncode == 1, r.stdout + r.stderr
    assert r.stdout.startswith(f"capture not running: pid {pid} is not alive and died without")
    assert "312 lines" in r.stdout and "0/16B3748" in r.stdout
    assert "None" not in r.stdout and "/s)" not in r.stdout and "Traceback" not in r.stderr
    r = loadgen(env, tmp_path, "cdc", "capture", "status", "--out", str(out), "--json")
    doc = orjson.loads(r.stdout)
    assert r.returncode == 1 and doc["running"] is False and doc["died_without_summary"] is True

    # a stopped capture's summary without a duration or offsets: no None, no rate
    status.update({"phase": "stopped", "stop_reason": None, "elapsed_s": 0.0, "offsets": None})
    out.with_name("ev.jsonl.status.json").write_bytes(orjson.dumps(status))
    r = loadgen(env, tmp_path, "cdc", "capture", "status", "--out", str(out))
    assert r.returncode == 1 and r.stdout.startswith(
        "capture stopped (reason unknown): 312 lines ->"
    )
    assert "None" not in r.stdout and "offsets" not in r.stdout
