"""A slot that also holds later runs' changes: the old ledger still verifies, through the CLI.

Three ``loadgen stream`` runs are captured by one real slot, each with its own ledger: A, then
B (while B runs, a change is made behind its back, inside its window), then C. Each ledger's
verdict is its own: A's later runs are excluded (exit 0), B's foreign change is unexpected
(exit 1) while C stays excluded, and without A's end (as if its run had been killed) every
later change is unexpected again, with a note saying why. A SIGKILLed coordinator leaves no
end, and its ledger is verified the old way.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import orjson
import psycopg
import pytest

from loadgen.ledger import read_ledger
from loadgen.ledger.run_end import parse_lsn
from loadgen.processes import is_alive
from tests.integration.test_cdc_cli import SEED_SQL, loadgen, names  # noqa: F401 (fixture)

pytestmark = pytest.mark.db


def _stream(env: dict[str, str], cwd: Path, ledger: Path, *args: str) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, "-m", "loadgen", "stream", "--ledger", str(ledger), "--no-progress",
         "--workers", "1", *args],
        env=env, cwd=cwd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )  # fmt: skip


def _wait_committed(ledger: Path, proc: subprocess.Popen[str], timeout_s: float = 60) -> None:
    """Until the ledger holds a committed outcome (the run is under way)."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        for part in ledger.glob("part-*.jsonl"):
            if b'"status":"committed"' in part.read_bytes():
                return
        assert proc.poll() is None, proc.communicate()
        time.sleep(0.02)
    raise AssertionError(f"no committed outcome in {ledger} after {timeout_s} s")


def _done(proc: subprocess.Popen[str]) -> None:
    """Wait for a run to end (its pipes read and closed); it must have exited 0."""
    out, err = proc.communicate(timeout=120)
    assert proc.returncode == 0, out + err


def _changes(ledger: Path) -> int:
    return len(read_ledger(str(ledger)).entries)


def _verify(env: dict[str, str], cwd: Path, ledger: Path, flags: list[str]) -> tuple[int, Any]:
    r = loadgen(env, cwd, "cdc", "verify", "--ledger", str(ledger), "--json", *flags)
    assert r.stdout, r.stderr
    return r.returncode, orjson.loads(r.stdout)


def _failed(report: dict[str, Any]) -> dict[str, int]:
    return {c["name"]: c["count"] for c in report["checks"] if not c["ok"]}


def _end_lsn(ledger: Path) -> int:
    (end,) = ledger.glob("end-*.json")
    return parse_lsn(orjson.loads(end.read_bytes())["end_lsn"])


def _setup(schema_dsn: str, env: dict[str, str], cwd: Path, flags: list[str]) -> None:
    with psycopg.connect(schema_dsn, autocommit=True) as conn:
        for q in SEED_SQL:
            conn.execute(q)
    r = loadgen(env, cwd, "cdc", "setup", *flags)
    assert r.returncode == 0, r.stderr


def test_later_runs_are_excluded_and_a_change_inside_the_window_is_not(
    schema_dsn: str, cli_env: dict[str, str], tmp_path: Path, names: tuple[str, str]
) -> None:
    flags = ["--slot", names[0], "--publication", names[1]]
    _setup(schema_dsn, cli_env, tmp_path, flags)
    a, b, c = (tmp_path / x for x in "ABC")
    run = _stream(cli_env, tmp_path, a, "--max-ops", "60", "--rate", "unlimited")
    _done(run)
    # B runs for ~4 s; once it has committed, a change behind its back (inside its window)
    run = _stream(cli_env, tmp_path, b, "--max-ops", "120", "--rate", "30/s")
    _wait_committed(b, run)
    with psycopg.connect(schema_dsn, autocommit=True) as conn:
        conn.execute(
            "UPDATE medicos SET telefone = 'fora' WHERE id = (SELECT min(id) FROM medicos)"
        )
        row = conn.execute("SELECT pg_current_wal_insert_lsn()::text").fetchone()
        planted_at = parse_lsn(str(row[0]) if row else "")
    assert run.poll() is None and not list(b.glob("end-*.json"))  # B still running
    _done(run)
    assert planted_at < _end_lsn(b)  # (the test's premise: inside B's window)
    run = _stream(cli_env, tmp_path, c, "--max-ops", "50", "--rate", "unlimited")
    _done(run)
    n_a, n_b, n_c = _changes(a), _changes(b), _changes(c)
    assert min(n_a, n_b, n_c) > 0

    code, report = _verify(cli_env, tmp_path, a, flags)
    assert (code, _failed(report)) == (0, {}), report["notes"]
    counts = report["counts"]
    assert counts["matched"] == counts["ledger_changes"] == n_a
    assert counts["excluded_after_ledger"] == n_b + 1 + n_c  # B, the foreign change, C
    assert counts["excluded_before_ledger"] == 0
    assert report["ledger_end"]["lsn"] is not None and len(report["ledger_end"]["runs"]) == 1

    code, report = _verify(cli_env, tmp_path, b, flags)
    assert (code, _failed(report)) == (1, {"unexpected": 1})
    (example,) = next(ch for ch in report["checks"] if ch["name"] == "unexpected")["examples"]
    assert example["table"] == "medicos" and example["after"]["telefone"] == "fora"
    assert report["counts"]["excluded_before_ledger"] == n_a
    assert report["counts"]["excluded_after_ledger"] == n_c

    # A and B as one ledger (two runs, both ended): the latest end applies
    r = loadgen(cli_env, tmp_path, "cdc", "verify", "--ledger", str(a), "--ledger", str(b),
                "--json", *flags)  # fmt: skip
    both = orjson.loads(r.stdout)
    assert (r.returncode, _failed(both)) == (1, {"unexpected": 1})
    assert both["counts"]["excluded_after_ledger"] == n_c and len(both["ledger_end"]["runs"]) == 2

    # without A's end (its run killed before it could write one): today's rule, and says so
    next(a.glob("end-*.json")).unlink()
    code, report = _verify(cli_env, tmp_path, a, flags)
    assert (code, _failed(report)) == (1, {"unexpected": n_b + 1 + n_c})
    assert report["counts"]["excluded_after_ledger"] == 0
    assert report["ledger_end"]["lsn"] is None
    assert any(n.startswith("ledger end unknown: run") for n in report["notes"])


def test_a_sigkilled_run_leaves_no_end_and_verifies_its_own_changes(
    schema_dsn: str, cli_env: dict[str, str], tmp_path: Path, names: tuple[str, str]
) -> None:
    flags = ["--slot", names[0], "--publication", names[1]]
    _setup(schema_dsn, cli_env, tmp_path, flags)
    ledger = tmp_path / "killed"
    run = _stream(cli_env, tmp_path, ledger, "--duration", "60s", "--rate", "50/s")
    _wait_committed(ledger, run)
    os.kill(run.pid, signal.SIGKILL)  # the coordinator: its workers get the parent-death signal
    run.communicate(timeout=30)
    pids = [orjson.loads(p.read_bytes().splitlines()[0])["pid"] for p in ledger.glob("part-*")]
    deadline = time.monotonic() + 30
    while any(is_alive(pid) for pid in pids) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert not any(is_alive(pid) for pid in pids)
    assert not list(ledger.glob("end-*.json"))
    code, report = _verify(cli_env, tmp_path, ledger, flags)
    assert (code, _failed(report)) == (0, {}), report["notes"]
    assert report["counts"]["matched"] == report["counts"]["ledger_changes"] > 0
    assert report["ledger_end"]["lsn"] is None
    assert "recorded no end" in report["ledger_end"]["unknown_because"]
