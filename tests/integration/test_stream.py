"""``loadgen stream`` end to end against a real PostgreSQL: counts, faults, signals, bad input.

Each run is a real CLI subprocess with 2 worker processes on a small seeded schema shared by
the module (tests compare before/after counts, so they do not depend on each other's rows).
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
import uuid
from collections import Counter
from collections.abc import Iterator
from pathlib import Path

import psycopg
import pytest
from psycopg import sql

from loadgen import db, schema, seed
from loadgen.ledger import LedgerContents, read_ledger
from loadgen.ops.registry import BY_NAME, OPERATIONS
from tests.fixtures.db import with_search_path

pytestmark = pytest.mark.db

ALL_OPS_MIX = ",".join(f"{op.name}={op.default_weight or 4:g}" for op in OPERATIONS)


@pytest.fixture(scope="module")
def seeded_dsn(pg_dsn: str) -> Iterator[str]:
    """A schema with ``loadgen init`` and a small ``loadgen seed`` (scale 0.05), for the module."""
    name = f"lg_test_stream_{uuid.uuid4().hex[:8]}"
    with psycopg.connect(pg_dsn, autocommit=True) as conn:
        conn.execute(sql.SQL("CREATE SCHEMA {}").format(sql.Identifier(name)))
    dsn = with_search_path(pg_dsn, name)
    try:
        with db.connect(dsn) as conn:
            schema.init(conn)
        seed.seed(dsn, seed.SeedOptions(scale=0.05, workers=1, seed=11))
        yield dsn
    finally:
        with psycopg.connect(pg_dsn, autocommit=True) as conn:
            conn.execute(sql.SQL("DROP SCHEMA IF EXISTS {} CASCADE").format(sql.Identifier(name)))


@pytest.fixture
def env(seeded_dsn: str, tmp_path: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("LOADGEN_", "PG_"))}
    env.pop("DATABASE_URL", None)
    env.update(
        {
            "LOADGEN_DSN": seeded_dsn,
            "LOADGEN_DB_CONNECT_RETRY_S": "2",
            "LOADGEN_LOGGING_FILE": str(tmp_path / "app.log"),
        }
    )
    return env


def _cli(args: list[str]) -> list[str]:
    return [sys.executable, "-m", "loadgen", *args]


def _run(
    args: list[str], env: dict[str, str], cwd: Path, timeout_s: float = 60
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        _cli(args), env=env, cwd=cwd, capture_output=True, text=True, timeout=timeout_s
    )


def _counts(dsn: str) -> dict[str, int]:
    with db.connect(dsn, autocommit=True) as conn:
        return schema.counts(conn)


def _expected_deltas(by_op: dict[str, int]) -> Counter[str]:
    """Row-count change per table implied by the committed operations (from the registry)."""
    sign = {"insert": 1, "update": 0, "delete": -1}
    deltas: Counter[str] = Counter()
    for name, count in by_op.items():
        spec = BY_NAME[name]
        for table in spec.tables:
            deltas[table] += sign[spec.kind] * count
    return deltas


def _row_deltas(row_changes: dict[str, dict[str, int]]) -> Counter[str]:
    """Row-count change per table from the summary's ``row_changes`` (inserts - deletes)."""
    return Counter(
        {t: c["insert"] - c["delete"] for t, c in row_changes.items() if c["insert"] != c["delete"]}
    )


def _ledger_row_changes(ledger: LedgerContents) -> dict[str, dict[str, int]]:
    """The ledger's committed changes as the summary's ``row_changes``."""
    names = {"c": "insert", "u": "update", "d": "delete"}
    out: dict[str, dict[str, int]] = {}
    for e in ledger.entries:
        out.setdefault(e.table, dict.fromkeys(names.values(), 0))[names[e.op]] += 1
    return out


def _deltas(before: dict[str, int], after: dict[str, int]) -> Counter[str]:
    return Counter({t: after[t] - before[t] for t in after if after[t] != before[t]})


def _start(args: list[str], env: dict[str, str], cwd: Path) -> subprocess.Popen[str]:
    return subprocess.Popen(
        _cli(args), env=env, cwd=cwd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    )


def _wait_for_progress(
    proc: subprocess.Popen[str], min_total: int = 1, timeout_s: float = 30
) -> list[str]:
    """Read progress lines from stderr until the run has committed ``min_total`` operations."""
    assert proc.stderr is not None
    lines: list[str] = []
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        line = proc.stderr.readline()
        if not line:
            break
        lines.append(line)
        if line.startswith("progress:") and ", total " in line:
            total = int(line.split(", total ")[1].split(",")[0].split("/")[0])
            if total >= min_total:
                return lines
    raise AssertionError("no progress: " + "".join(lines))


def _worker_pids(parent_pid: int) -> list[int]:
    """Spawned worker processes of ``parent_pid`` (not multiprocessing's resource tracker)."""
    pids = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
            cmdline = (entry / "cmdline").read_bytes().decode(errors="replace")
        except OSError:
            continue
        ppid = int(stat.rsplit(")", 1)[1].split()[1])
        if ppid == parent_pid and "spawn_main" in cmdline:
            pids.append(int(entry.name))
    return sorted(pids)


def test_max_ops_exact_every_op_deltas_match_and_check_passes(
    seeded_dsn: str, env: dict[str, str], tmp_path: Path
) -> None:
    before = _counts(seeded_dsn)
    result = _run(
        [
            "stream",
            "--workers",
            "2",
            "--rate",
            "unlimited",
            "--max-ops",
            "777",
            "--batch-size",
            "20",
            "--mix",
            ALL_OPS_MIX,
            "--seed",
            "5",
            "--summary-json",
            "s.json",
            "--no-progress",
            "--ledger",
            "ledger",
        ],
        env,
        tmp_path,
    )
    assert result.returncode == 0, result.stderr
    summary = json.loads((tmp_path / "s.json").read_text())
    assert summary["total_ops"] == 777
    assert sum(summary["by_op"].values()) == 777
    assert set(summary["by_op"]) == {op.name for op in OPERATIONS}  # every op ran
    assert sum(summary["by_kind"].values()) == 777
    assert summary["workers"] == 2
    assert summary["target_rate_per_s"] is None
    assert summary["errors"] == {} and summary["in_doubt"] == 0
    assert set(summary) == {
        "total_ops",
        "committed_txns",
        "elapsed_s",
        "ops_per_s",
        "target_rate_per_s",
        "workers",
        "by_op",
        "by_kind",
        "errors",
        "in_doubt",
        "latency_ms",
        "schedule_lag_ms",
        "no_op",
        "row_changes",
        "stop_reason",
        "aborted",
        "run_id",
        "recovered_ops",
        "owns_existing_rows",
        "format_version",
        "shard",
        "histograms",
    }
    assert summary["stop_reason"] == "max_ops" and summary["aborted"] is False
    assert summary["no_op"] == {"total": 0, "by_op": {}}  # one run alone: every op changes rows
    assert summary["latency_ms"]["p50"] <= summary["latency_ms"]["p99"]
    assert _deltas(before, _counts(seeded_dsn)) == +_expected_deltas(summary["by_op"])
    assert _deltas(before, _counts(seeded_dsn)) == _row_deltas(summary["row_changes"])
    assert "operations committed" in result.stdout  # the summary table
    # the ledger holds one change per changed row, from exactly the committed transactions
    ledger = read_ledger(str(tmp_path / "ledger"))
    assert ledger.bad_lines == [] and ledger.uncommitted == []
    assert len(ledger.entries) == sum(
        n * len(BY_NAME[op].tables) for op, n in summary["by_op"].items()
    )
    assert len(ledger.txids) == summary["committed_txns"]
    assert _ledger_row_changes(ledger) == summary["row_changes"]
    assert {h["run_id"] for _, h in ledger.headers} == {summary["run_id"]}
    check = _run(["check"], env, tmp_path)
    assert check.returncode == 0, check.stdout + check.stderr


def test_sigterm_stops_within_5_s_with_summary(env: dict[str, str], tmp_path: Path) -> None:
    proc = _start(
        ["stream", "--rate", "40/s", "--summary-json", "s.json", "--report-interval", "0.5"],
        env,
        tmp_path,
    )
    try:
        _wait_for_progress(proc, min_total=5)
        proc.send_signal(signal.SIGTERM)
        started = time.monotonic()
        stdout, stderr = proc.communicate(timeout=10)
        assert time.monotonic() - started < 5.0
    finally:
        proc.kill()
    assert proc.returncode == 0, stderr
    assert "summary (stopped)" in stdout
    assert json.loads((tmp_path / "s.json").read_text())["total_ops"] >= 5
    assert "Traceback" not in stderr


def test_killed_worker_process_exits_4_naming_it(env: dict[str, str], tmp_path: Path) -> None:
    proc = _start(["stream", "--rate", "40/s", "--report-interval", "0.5"], env, tmp_path)
    try:
        _wait_for_progress(proc, min_total=1)
        workers = _worker_pids(proc.pid)
        assert len(workers) == 2
        os.kill(workers[1], signal.SIGKILL)
        stdout, stderr = proc.communicate(timeout=15)
    finally:
        proc.kill()
    assert proc.returncode == 4, stderr
    assert "run aborted: worker" in stderr and "died (exit code -9)" in stderr
    assert "Traceback" not in stderr


def test_terminated_backend_reconnects_and_counts_match(
    seeded_dsn: str, env: dict[str, str], tmp_path: Path
) -> None:
    before = _counts(seeded_dsn)
    proc = _start(
        [
            "stream",
            "--rate",
            "150/s",
            "--max-ops",
            "600",
            "--batch-size",
            "5",
            "--summary-json",
            "s.json",
            "--report-interval",
            "0.5",
        ],
        env,
        tmp_path,
    )
    try:
        _wait_for_progress(proc, min_total=50)
        names = [f"loadgen-stream-w{i}-{pid}" for i, pid in enumerate(_worker_pids(proc.pid))]
        with db.connect(seeded_dsn, autocommit=True) as conn:
            killed = conn.execute(
                "SELECT count(*) FILTER (WHERE pg_terminate_backend(pid)) FROM pg_stat_activity "
                "WHERE application_name = ANY(%s)",
                (names,),
            ).fetchone()
        assert killed is not None and killed[0] >= 1
        stdout, stderr = proc.communicate(timeout=40)
    finally:
        proc.kill()
    assert proc.returncode == 0, stderr
    summary = json.loads((tmp_path / "s.json").read_text())
    assert summary["total_ops"] == 600  # lost batches were retried on the new connection
    assert summary["errors"], "the lost connection is counted"
    reconnects = [line for line in stdout.splitlines() if "reconnects" in line]
    assert reconnects and int(reconnects[0].split()[-2]) >= 1
    assert _deltas(before, _counts(seeded_dsn)) == +_expected_deltas(summary["by_op"])


BAD_VALUES = [
    (["--rate", "5/fortnight"], "fortnight"),
    (["--workers", "0"], "workers"),
    (["--mix", "insert=-1"], "--mix"),
    (["--mix", "insert_bogus=3"], "insert_bogus"),
    (["--duration", "soon"], "--duration"),
    (["--arrivals", "bursty"], "bursty"),
    (["--mix", ""], "--mix: empty value"),
    (["--mix", " "], "--mix: empty value"),
    (["--rate", ""], "--rate: empty value"),
    (["--ledger", "/proc/x/"], "--ledger '/proc/x/': cannot create"),
    (["--summary-json", "/proc/nope/x.json"], "--summary-json '/proc/nope/x.json'"),
]


def test_bad_values_exit_2_without_traceback(env: dict[str, str], tmp_path: Path) -> None:
    procs = [_start(["stream", *args], env, tmp_path) for args, _ in BAD_VALUES]  # in parallel
    for (args, needle), proc in zip(BAD_VALUES, procs, strict=True):
        stdout, stderr = proc.communicate(timeout=30)
        assert proc.returncode == 2, (args, stdout + stderr)
        assert needle in stderr, (args, stderr)
        assert "Traceback" not in stderr
        assert len(stderr.strip().splitlines()) <= 3, stderr


def test_missing_schema_exits_3_with_the_fix(dsn: str, tmp_path: Path, env: dict[str, str]) -> None:
    env = {**env, "LOADGEN_DSN": dsn}  # an empty schema
    result = _run(["stream", "--max-ops", "5"], env, tmp_path)
    assert result.returncode == 3
    assert "run `loadgen init` and `loadgen seed` first" in result.stderr
    assert "Traceback" not in result.stderr


def _ignore_sigint() -> None:
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # what a shell's `loadgen stream ... &` gets


@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM])
def test_early_signal_stops_the_run_with_a_summary(
    sig: signal.Signals, env: dict[str, str], tmp_path: Path
) -> None:
    """A signal right after the header (database check, spawning, start barrier) is not lost."""
    proc = subprocess.Popen(
        _cli(["stream", "--rate", "50/s", "--duration", "25", "--no-progress"]),
        env=env,
        cwd=tmp_path,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        preexec_fn=_ignore_sigint,
    )
    try:
        assert proc.stderr is not None
        header = proc.stderr.readline()
        assert header.startswith("stream:"), header
        proc.send_signal(sig)
        started = time.monotonic()
        stdout, stderr = proc.communicate(timeout=15)
        took_s = time.monotonic() - started
    finally:
        proc.kill()
    assert proc.returncode == 0, header + stderr
    assert took_s < 5.0
    assert "summary (stopped)" in stdout, stdout
    assert "Traceback" not in stderr


def test_a_kind_mix_runs_only_that_kind(env: dict[str, str], tmp_path: Path) -> None:
    result = _run(
        ["stream", "--max-ops", "40", "--no-progress", "--mix", "insert=1", "--rate",
         "unlimited", "--ledger", f"{tmp_path / 'ledger'}/", "--summary-json", "s.json"],
        env, tmp_path,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    assert ", mix insert=1," in result.stderr.splitlines()[0]  # the header says what runs
    summary = json.loads((tmp_path / "s.json").read_text())
    assert sum(summary["by_op"].values()) == 40
    assert {BY_NAME[op].kind for op in summary["by_op"]} == {"insert"}
    ledger = read_ledger(str(tmp_path / "ledger"))
    assert ledger.entries and {e.op for e in ledger.entries} == {"c"}  # nothing updated


def test_low_rate_is_the_total_not_one_op_per_worker_at_start(
    env: dict[str, str], tmp_path: Path
) -> None:
    result = _run(
        [
            "stream",
            "--rate",
            "1/h",
            "--workers",
            "4",
            "--duration",
            "2",
            "--no-progress",
            "--summary-json",
            "s.json",
        ],
        env,
        tmp_path,
    )
    assert result.returncode == 0, result.stderr
    assert json.loads((tmp_path / "s.json").read_text())["total_ops"] == 1


def test_summary_json_unwritable_at_the_end_is_one_line_and_exit_4(
    env: dict[str, str], tmp_path: Path
) -> None:
    out_dir = tmp_path / "out"
    out_dir.mkdir()
    proc = _start(
        ["stream", "--rate", "20/s", "--no-progress", "--summary-json", str(out_dir / "s.json")],
        env,
        tmp_path,
    )
    try:
        assert proc.stderr is not None
        assert proc.stderr.readline().startswith("stream:")
        out_dir.rmdir()  # writable when checked up front, gone at the end
        proc.send_signal(signal.SIGINT)
        stdout, stderr = proc.communicate(timeout=15)
    finally:
        proc.kill()
    assert proc.returncode == 4, stderr  # the run is done, the file asked for is not there
    assert "summary (stopped)" in stdout
    assert "Traceback" not in stderr
    assert [line for line in stderr.splitlines() if "error" in line] == [
        f"loadgen: error: --summary-json {str(out_dir / 's.json')!r}: cannot write: "
        "No such file or directory (the run finished; its summary is above)"
    ]


def test_header_and_summary_name_the_ledger(env: dict[str, str], tmp_path: Path) -> None:
    result = _run(["stream", "--max-ops", "2", "--no-progress", "--ledger", "run1/"], env, tmp_path)
    assert result.returncode == 0, result.stderr
    assert ", ledger run1/, " in result.stderr.splitlines()[0]
    assert any("ledger" in line and "run1/" in line for line in result.stdout.splitlines()), (
        result.stdout
    )
