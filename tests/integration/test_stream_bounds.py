"""Runs that must end, and end on time, against a real PostgreSQL with real processes and
signals: ``connect_retry_s`` honoured by every command; many workers; a huge batch under a short
duration; the coordinator SIGKILLed (its workers stop, their committed work is in the ledger);
a role that may only read (exit 4, one line, quickly); a report interval far below a second.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import psycopg
import pytest
from psycopg import sql
from psycopg.conninfo import conninfo_to_dict, make_conninfo

from loadgen.ledger import read_ledger
from loadgen.ops.mix import parse_mix
from loadgen.stream import coordinator
from tests.integration.test_ledger_faults import Cdc, _assert_verifies, _is_zombie, cdc  # noqa: F401
from tests.integration.test_stream import (
    ALL_OPS_MIX,
    _counts,
    _deltas,
    _expected_deltas,
    _ledger_row_changes,
    _row_deltas,
    _run,
    _start,
    _wait_for_progress,
    _worker_pids,
    env,  # noqa: F401 - fixture
    seeded_dsn,  # noqa: F401 - fixture
)

pytestmark = pytest.mark.db


def _error_lines(stderr: str) -> list[str]:
    return [line for line in stderr.splitlines() if line.startswith("loadgen: error:")]


def _closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])  # nobody listens once it is closed


@pytest.mark.parametrize(
    "args",
    [
        ["counts"],
        ["check"],
        ["init"],
        ["seed", "--scale", "0.01"],
        ["stream", "--max-ops", "5"],
        ["scenario", "run", "rollback"],
        ["cdc", "verify", "--ledger", "ledger/"],
    ],
    ids=["counts", "check", "init", "seed", "stream", "scenario", "cdc-verify"],
)
def test_connect_retry_s_bounds_every_command(
    args: list[str],
    env: dict[str, str],
    tmp_path: Path,  # noqa: F811
) -> None:
    """A 1 s retry setting and nothing listening: each command gives up after about 1 s
    (not the 30 s default), exit 3, and stderr is the error line alone — no plan line before
    the server answered, no retry notice for so short a wait (the attempts are in the log
    file) — and nothing on stdout."""
    port = _closed_port()
    env = {
        **env,
        "LOADGEN_DSN": f"postgresql://postgres@127.0.0.1:{port}/x",
        "LOADGEN_DB_CONNECT_RETRY_S": "1",
    }
    if args[:2] == ["cdc", "verify"]:  # a ledger to verify, so the server is what fails
        (tmp_path / "ledger").mkdir()
        (tmp_path / "ledger" / "part-00000000-00000.jsonl").write_text("")
    started = time.monotonic()
    result = _run(args, env, tmp_path, timeout_s=30)
    took_s = time.monotonic() - started
    assert result.returncode == 3, result.stderr
    assert took_s < 6.0  # Python start-up + 1 s of retries (the default would be 30 s)
    (line,) = result.stderr.splitlines()
    assert line.startswith("loadgen: error: cannot connect to "), line
    assert f"127.0.0.1:{port}" in line or f"port={port}" in line, line
    assert "after 1 s of retries" in line and "Connection refused" in line, line
    assert result.stdout == ""
    logged = (tmp_path / "app.log").read_text()
    assert "cannot connect to" in logged and "retrying for up to 1 s" in logged


def test_a_thousand_workers_are_refused_or_stop_promptly(
    env: dict[str, str],
    tmp_path: Path,  # noqa: F811
) -> None:
    proc = _start(["stream", "--workers", "1000", "--max-ops", "3", "--no-progress"], env, tmp_path)
    try:
        assert proc.stderr is not None
        first = proc.stderr.readline()
        if first.startswith("stream:"):  # accepted: it starts in waves and stops on SIGTERM
            deadline = time.monotonic() + 60
            while len(_worker_pids(proc.pid)) < 2 and time.monotonic() < deadline:
                time.sleep(0.05)
            proc.send_signal(signal.SIGTERM)
            signalled = time.monotonic()
            _, rest = proc.communicate(timeout=30)
            assert time.monotonic() - signalled < 5.0
            assert proc.returncode == 0, rest
        else:  # refused up front: bad input or the server's free connections, one line
            _, rest = proc.communicate(timeout=30)
            stderr = first + rest
            assert proc.returncode in (2, 3), stderr
            assert len(_error_lines(stderr)) == 1 and "--workers" in stderr, stderr
            assert "Traceback" not in stderr
    finally:
        proc.kill()


def test_a_huge_batch_under_a_short_duration_ends_on_time(seeded_dsn: str) -> None:  # noqa: F811
    """``--batch-size 100000000`` at an unlimited rate: the one transaction stops growing at
    the end of ``--duration``, commits what ran, and the run ends on time, counted exactly."""
    before = _counts(seeded_dsn)
    spec = coordinator.RunSpec(
        dsn=seeded_dsn, num_workers=1, rate_per_s=None, is_paced=False,
        arrivals="token-bucket", burst=None, duration_s=2.0, max_ops=None,
        batch_size=100_000_000, mix=parse_mix("insert_consulta=1"), seed=9,
        report_interval_s=0.5, interval_s=2.0, max_jitter_ms=0, connect_retry_s=2.0,
    )  # fmt: skip
    started = time.monotonic()
    summary = coordinator.run(spec)
    assert time.monotonic() - started < 2.0 + 5.0
    assert summary.stop_reason == "duration"
    assert summary.total.num_ops > 0 and summary.total.num_txns >= 1
    assert _deltas(before, _counts(seeded_dsn)) == +_expected_deltas(
        dict(summary.total.ops_by_name)
    )


def test_the_cli_with_its_largest_batches_ends_on_time(
    env: dict[str, str],
    tmp_path: Path,  # noqa: F811
) -> None:
    started = time.monotonic()
    result = _run(
        ["stream", "--rate", "unlimited", "--batch-size", "10000", "--duration", "2",
         "--mix", "insert_consulta=1", "--no-progress", "--summary-json", "s.json"],
        env, tmp_path,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    assert time.monotonic() - started < 2.0 + 5.0 + 3.0  # duration, stop bound, start-up
    summary = json.loads((tmp_path / "s.json").read_text())
    assert summary["stop_reason"] == "duration" and summary["total_ops"] > 0


def test_sigkill_of_the_coordinator_stops_its_workers_and_keeps_their_work(cdc: Cdc) -> None:  # noqa: F811
    """The coordinator dies; its workers get the parent-death signal, finish the transaction
    in flight with its outcome and exit within 5 s; the ledger then verifies against the slot
    and the tables (nothing committed unrecorded, nothing left to resolve)."""
    proc = cdc.start(
        "stream", "--rate", "300/s", "--workers", "2", "--batch-size", "5",
        "--mix", "insert_consulta=3,update_consulta=1,insert_exame=1",
        "--ledger", f"{cdc.ledger}/", "--report-interval", "0.2", "--progress",
    )  # fmt: skip
    try:
        _wait_for_progress(proc, min_total=50)
        workers = _worker_pids(proc.pid)
        assert len(workers) == 2
        os.kill(proc.pid, signal.SIGKILL)
        killed = time.monotonic()
        proc.communicate(timeout=10)  # its pipes close with it (the workers write none)
        deadline = killed + 5.0
        while time.monotonic() < deadline:
            if all(not Path(f"/proc/{p}").exists() or _is_zombie(p) for p in workers):
                break
            time.sleep(0.05)
        alive = [p for p in workers if Path(f"/proc/{p}").exists() and not _is_zombie(p)]
        for p in alive:
            os.kill(p, signal.SIGKILL)
        assert not alive, f"workers {alive} outlived their coordinator by 5 s"
    finally:
        proc.kill()
    report = _assert_verifies(cdc)
    counts = report["counts"]
    assert isinstance(counts, dict)
    assert counts["ledger_changes"] > 0
    # every worker recorded its last transaction's outcome itself: nothing left to resolve
    assert counts["ledger_unresolved_transactions"] == counts["ledger_resolved_by_server"] == 0


@pytest.fixture
def read_only_dsn(seeded_dsn: str, pg_dsn: str) -> Iterator[str]:  # noqa: F811
    """``seeded_dsn`` as a new role that may only read the hospital tables."""
    role = f"lg_test_ro_{uuid.uuid4().hex[:8]}"
    schema_name = conninfo_to_dict(seeded_dsn)["options"].split("search_path=")[1].split()[0]
    ident = sql.Identifier
    with psycopg.connect(pg_dsn, autocommit=True) as conn:
        conn.execute(sql.SQL("CREATE ROLE {} LOGIN").format(ident(role)))
        conn.execute(
            sql.SQL("GRANT USAGE ON SCHEMA {} TO {}").format(ident(schema_name), ident(role))
        )
        for what in ("TABLES", "SEQUENCES"):
            conn.execute(
                sql.SQL("GRANT SELECT ON ALL {} IN SCHEMA {} TO {}").format(
                    sql.SQL(what), ident(schema_name), ident(role)
                )
            )
    try:
        yield make_conninfo(seeded_dsn, user=role)
    finally:
        with psycopg.connect(pg_dsn, autocommit=True) as conn:
            conn.execute(sql.SQL("DROP OWNED BY {}").format(ident(role)))
            conn.execute(sql.SQL("DROP ROLE {}").format(ident(role)))


def test_a_read_only_role_stops_quickly_with_one_line(
    read_only_dsn: str,
    env: dict[str, str],
    tmp_path: Path,  # noqa: F811
) -> None:
    env = {**env, "LOADGEN_DSN": read_only_dsn}
    started = time.monotonic()
    result = _run(["stream", "--max-ops", "10", "--rate", "50/s", "--no-progress"], env, tmp_path)
    took_s = time.monotonic() - started
    assert result.returncode == 4, result.stderr
    assert took_s < 15.0  # before: until killed (982 errors in 98 s)
    errors = _error_lines(result.stderr)
    assert len(errors) == 1, result.stderr
    assert "no progress" in errors[0] and "SQLSTATE 42501" in errors[0], errors
    assert "Traceback" not in result.stderr
    assert "no_progress (aborted)" in result.stdout  # the partial summary says why


@pytest.mark.parametrize("interval", ["1e-9", "1e-10"])
def test_a_report_interval_below_a_nanosecond_is_refused_or_harmless(
    interval: str,
    env: dict[str, str],
    tmp_path: Path,  # noqa: F811
) -> None:
    started = time.monotonic()
    result = _run(
        ["stream", "--rate", "20/s", "--duration", "2", "--report-interval", interval,
         "--no-progress", "--summary-json", "s.json"],
        env, tmp_path, timeout_s=30,
    )  # fmt: skip
    if result.returncode == 2:  # refused: out of the documented range
        assert len(_error_lines(result.stderr)) == 1 and "report" in result.stderr
        return
    assert result.returncode == 0, result.stderr
    assert time.monotonic() - started < 2.0 + 5.0 + 3.0
    assert json.loads((tmp_path / "s.json").read_text())["stop_reason"] == "duration"


def test_stop_during_start_up_is_honoured(seeded_dsn: str) -> None:  # noqa: F811
    """A stop requested before the workers are ready (here: at once) ends the run without
    starting the schedule and without leaving a process."""
    stop = coordinator.StopFlag()
    spec = coordinator.RunSpec(
        dsn=seeded_dsn, num_workers=2, rate_per_s=10.0, is_paced=False,
        arrivals="token-bucket", burst=None, duration_s=30.0, max_ops=None, batch_size=5,
        mix=parse_mix(None), seed=1, report_interval_s=0.5, interval_s=2.0, max_jitter_ms=0,
    )  # fmt: skip
    c = coordinator.Coordinator(spec, stop=stop)
    stop.count = 1  # as if SIGTERM arrived while the command was starting
    started = time.monotonic()
    summary = c.run()
    assert time.monotonic() - started < 5.0
    assert summary.stop_reason == "signal" and summary.total.num_ops == 0
    assert not any(h.is_started for h in c.fleet.handles.values())


def test_batches_larger_than_a_chunk_count_exactly(
    seeded_dsn: str,
    env: dict[str, str],
    tmp_path: Path,  # noqa: F811
) -> None:
    """Transactions of 2,500 operations run as several execute chunks: every operation of the
    mix, --max-ops exact, summary = ledger = the tables' deltas, checks pass."""
    before = _counts(seeded_dsn)
    result = _run(
        ["stream", "--workers", "2", "--rate", "unlimited", "--max-ops", "6000",
         "--batch-size", "2500", "--mix", ALL_OPS_MIX, "--seed", "3", "--no-progress",
         "--summary-json", "s.json", "--ledger", "ledger"],
        env, tmp_path, timeout_s=120,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    summary = json.loads((tmp_path / "s.json").read_text())
    assert summary["total_ops"] + summary["no_op"]["total"] == 6000
    assert summary["errors"] == {} and summary["in_doubt"] == 0
    assert summary["committed_txns"] <= 6  # 2 x (2500, 500): a chunk never ends a transaction
    assert _deltas(before, _counts(seeded_dsn)) == _row_deltas(summary["row_changes"])
    ledger = read_ledger(str(tmp_path / "ledger"))
    assert ledger.uncommitted == [] and _ledger_row_changes(ledger) == summary["row_changes"]
    check = _run(["check"], env, tmp_path)
    assert check.returncode == 0, check.stdout + check.stderr


@pytest.mark.parametrize("rate", ["100/s", "1000/s"])
def test_a_rate_is_the_runs_total_no_slot_lost_between_batches(
    rate: str,
    env: dict[str, str],
    tmp_path: Path,  # noqa: F811
) -> None:
    """The slot a batch looked at but that was not due yet starts the next batch: over 3 s the
    token bucket hands out rate x 3 s operations, within its burst."""
    result = _run(
        ["stream", "--rate", rate, "--workers", "2", "--duration", "3",
         "--mix", "insert_consulta=1", "--no-progress", "--summary-json", "s.json"],
        env, tmp_path,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    summary = json.loads((tmp_path / "s.json").read_text())
    expected = 3 * summary["target_rate_per_s"]
    assert 0.95 * expected <= summary["total_ops"] <= expected, summary["total_ops"]
