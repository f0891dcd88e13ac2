"""Stream faults: in-doubt commit resolution, and a server restart in the middle of a run.

The restart test runs its own embedded PostgreSQL (in ``tmp_path``) so that restarting it
cannot disturb the session's server or anybody else's.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest

from loadgen import db, embedded, schema, seed
from loadgen.ops.mix import parse_mix
from loadgen.stream.clock import SystemClock
from loadgen.stream.recovery import Session
from loadgen.stream.stats import IntervalStats
from loadgen.stream.worker_spec import WorkerSpec
from tests.integration.test_stream import _counts, _deltas, _expected_deltas, _wait_for_progress

pytestmark = pytest.mark.db


def _wait_for_line(
    proc: subprocess.Popen[str], predicate: Callable[[str], bool], timeout_s: float = 60
) -> str:
    assert proc.stderr is not None
    deadline = time.monotonic() + timeout_s
    seen: list[str] = []
    while time.monotonic() < deadline:
        line = proc.stderr.readline()
        if not line:
            break
        seen.append(line)
        if predicate(line):
            return line
    raise AssertionError("line not seen: " + "".join(seen[-5:]))


def _session(dsn: str) -> tuple[Session, IntervalStats]:
    """A worker's session outside a run (no coordinator, no stop), and its stats."""
    spec = WorkerSpec(
        worker_id=0,
        num_workers=1,
        dsn=dsn,
        seed_seq=np.random.SeedSequence(1),
        mix=parse_mix(None),
        arrivals="closed",
        rate_per_s=None,
        burst=1,
        interval_s=2.0,
        max_jitter_ms=0,
        duration_s=None,
        max_ops=None,
        batch_size=1,
        report_interval_s=1.0,
        fail_fast_on_critical=False,
        ledger=None,
        connect_retry_s=5.0,
    )
    stats = IntervalStats()
    clock = SystemClock()

    def sleep_until(deadline_ns: int, *, is_reconnecting: bool = False) -> None:
        clock.sleep_until_ns(deadline_ns)

    return Session(spec, clock, lambda: stats, sleep_until, "loadgen-test"), stats


def _txid(dsn: str, *, commit: bool) -> int:
    with db.connect(dsn) as conn:
        row = conn.execute("SELECT pg_current_xact_id()::text::bigint").fetchone()
        assert row is not None
        conn.execute("CREATE TEMP TABLE t_in_doubt (x int)")
        if commit:
            conn.commit()
        else:
            conn.rollback()
        return int(row[0])


def test_in_doubt_commit_is_resolved_with_txid_status(schema_dsn: str) -> None:
    session, stats = _session(schema_dsn)
    assert session.resolve(_txid(schema_dsn, commit=True)) == "committed"
    assert session.resolve(_txid(schema_dsn, commit=False)) == "aborted"
    assert session.resolve(None) == "no transaction id"
    assert stats.num_reconnects == 3  # each resolution starts on a fresh connection
    assert session.conn is not None and not session.conn.closed
    session.close()


@pytest.mark.slow
def test_server_restart_mid_run_continues_and_counts_match(tmp_path: Path) -> None:
    home = Path(tempfile.mkdtemp(prefix="lg_restart_"))  # short: unix socket paths are limited
    dsn = embedded.start(home, "postgres")
    try:
        with db.connect(dsn) as conn:
            schema.init(conn)
        seed.seed(dsn, seed.SeedOptions(scale=0.05, workers=1, seed=3))
        before = _counts(dsn)
        env = {k: v for k, v in os.environ.items() if not k.startswith(("LOADGEN_", "PG_"))}
        env.update(
            {
                "LOADGEN_DSN": dsn,
                "LOADGEN_LOGGING_FILE": str(tmp_path / "app.log"),
            }
        )
        proc = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "loadgen",
                "stream",
                "--rate",
                "100/s",
                "--batch-size",
                "5",
                "--report-interval",
                "0.5",
                "--summary-json",
                "s.json",
            ],
            env=env,
            cwd=tmp_path,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        try:
            _wait_for_progress(proc, min_total=30)
            embedded.stop(home)  # fast shutdown: every backend is disconnected
            started = subprocess.run(  # a fresh process: as a user would restart it
                [sys.executable, "-m", "loadgen", "db", "start"],
                env={**env, "LOADGEN_HOME": str(home)},
                cwd=tmp_path,
                capture_output=True,
                text=True,
                timeout=60,
            )
            assert started.returncode == 0, started.stderr
            _wait_for_line(
                proc, lambda line: ", 2 reconnects" in line and "reconnecting" not in line
            )  # both workers are back
            _wait_for_progress(proc, min_total=1)  # and commit again
            proc.send_signal(signal.SIGTERM)
            stdout, stderr = proc.communicate(timeout=30)
        finally:
            proc.kill()
        assert proc.returncode == 0, stderr
        summary = json.loads((tmp_path / "s.json").read_text())
        assert summary["errors"], stdout + stderr  # the lost connections are counted
        deltas = _deltas(before, _counts(dsn))
        expected = +_expected_deltas(summary["by_op"])
        # an in-doubt commit (if any) may or may not be in the database; otherwise exact
        assert summary["in_doubt"] > 0 or deltas == expected
    finally:
        embedded.stop(home)
        shutil.rmtree(home, ignore_errors=True)


@pytest.mark.parametrize("fail_fast", [False, True])
def test_critical_sql_error_counted_or_fatal(
    schema_dsn: str, tmp_path: Path, fail_fast: bool
) -> None:
    """A broken table (renamed column: SQLSTATE 42703) is counted; fail_fast ends the run."""
    seed.seed(schema_dsn, seed.SeedOptions(scale=0.05, workers=1, seed=5))
    env = {k: v for k, v in os.environ.items() if not k.startswith(("LOADGEN_", "PG_"))}
    env.update(
        {
            "LOADGEN_DSN": schema_dsn,
            "LOADGEN_LOGGING_FILE": str(tmp_path / "app.log"),
            "LOADGEN_STREAM_FAIL_FAST_ON_CRITICAL": str(fail_fast).lower(),
        }
    )
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "loadgen",
            "stream",
            "--rate",
            "50/s",
            "--duration",
            "4",
            "--batch-size",
            "1",
            "--mix",
            "insert_consulta=1,insert_exame=1",
            "--summary-json",
            "s.json",
            "--report-interval",
            "0.5",
        ],
        env=env,
        cwd=tmp_path,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        _wait_for_progress(proc, min_total=5)
        with db.connect(schema_dsn, autocommit=True) as conn:  # break one operation mid-run
            conn.execute("ALTER TABLE exames RENAME COLUMN resultado TO resultado_old")
        _, stderr = proc.communicate(timeout=30)
    finally:
        proc.kill()
    summary = json.loads((tmp_path / "s.json").read_text())
    if fail_fast:
        assert proc.returncode == 4, stderr
        assert "UndefinedColumn" in stderr and "Traceback" not in stderr
    else:
        assert proc.returncode == 0, stderr
        assert summary["errors"].get("42", 0) > 5
        # insert_consulta goes on: about one consulta per failed exame slot (equal weights)
        assert summary["by_op"]["insert_consulta"] > summary["errors"]["42"] // 2


def test_worker_blocked_in_a_long_statement_stays_alive(schema_dsn: str) -> None:
    """A lock held for longer than the silence timeout blocks every insert; the workers'
    watchdog threads keep them alive, so the run ends normally (before: exit 4, silent)."""
    import psycopg

    from loadgen.stream import coordinator
    from tests.integration.test_cdc_cli import SEED_SQL

    with psycopg.connect(schema_dsn, autocommit=True) as conn:
        for q in SEED_SQL:
            conn.execute(q)
    held_s = 2.5
    locked = threading.Event()
    saw_waiter = threading.Event()

    def hold_lock() -> None:
        with psycopg.connect(schema_dsn) as conn:
            count_sql = "SELECT count(*) FROM consultas"
            first = conn.execute(count_sql).fetchone()
            conn.rollback()
            deadline = time.monotonic() + 30
            while time.monotonic() < deadline:  # until the stream has committed something
                n = conn.execute(count_sql).fetchone()
                conn.rollback()
                if n != first:
                    break
                time.sleep(0.02)
            conn.execute("LOCK TABLE consultas IN ACCESS EXCLUSIVE MODE")
            locked.set()
            held_since = time.monotonic()
            with psycopg.connect(schema_dsn, autocommit=True) as probe:
                while time.monotonic() - held_since < 10:  # until a worker waits on the lock
                    waiting = probe.execute(
                        "SELECT count(*) FROM pg_locks WHERE NOT granted"
                        " AND relation = 'consultas'::regclass"
                    ).fetchone()
                    if waiting and waiting[0] > 0:
                        saw_waiter.set()
                        break
                    time.sleep(0.02)
            time.sleep(held_s)  # the lock wait the stream must ride out: a duration, not a guess
            conn.rollback()

    spec = coordinator.RunSpec(
        dsn=schema_dsn,
        num_workers=2,
        rate_per_s=20.0,
        is_paced=False,
        arrivals="uniform",
        burst=None,
        duration_s=4.0,
        max_ops=None,
        batch_size=5,
        mix=parse_mix("insert_consulta=1"),
        seed=3,
        report_interval_s=0.2,
        interval_s=2.0,
        max_jitter_ms=0,
    )
    holder = threading.Thread(target=hold_lock, daemon=True)
    holder.start()
    summary = coordinator.run(spec, silence_timeout_s=1.0)
    holder.join(10)
    assert locked.is_set()
    assert summary.stop_reason == "duration"
    assert summary.total.num_ops > 0 and not summary.total.errors_by_class
    assert saw_waiter.is_set()  # a worker was seen waiting on the lock while it was held
    assert summary.total.latency_ns.max >= (held_s - 0.5) * 1e9  # they did wait on the lock
