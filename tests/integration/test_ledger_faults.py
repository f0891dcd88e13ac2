"""The ledger contract under faults: ledger = database = slot, and summary = ledger, every time.

Real CLI processes, real signals, a real full disk: workers and the coordinator SIGKILLed at
random points of an unlimited-rate run; a ledger on a tiny tmpfs (or, where mounting is not
allowed, a file-size limit); two streams at once; a stream and ``seed --append`` at once;
SIGTERM while every worker waits on a lock. ``cdc verify`` proves ledger = slot = tables.
"""

from __future__ import annotations

import contextlib
import json
import os
import random
import resource
import signal
import subprocess
import tempfile
import threading
import time
import uuid
from collections import Counter
from collections.abc import Callable, Iterator
from pathlib import Path

import psycopg
import pytest

from loadgen import db, seed, tables
from loadgen.ledger import LedgerContents, read_ledger
from loadgen.ledger.resolve import server_resolver
from tests.fixtures.cleanup import teardown_cdc
from tests.integration.test_stream import (
    ALL_OPS_MIX,
    _cli,
    _counts,
    _deltas,
    _ledger_row_changes,
    _row_deltas,
    _wait_for_progress,
    _worker_pids,
)

pytestmark = [pytest.mark.db, pytest.mark.slow]

MIX_WITH_DELETES = (
    "insert_consulta=10,update_consulta=10,delete_consulta=10,insert_paciente_convenio=5,"
    "delete_paciente_convenio=5,update_exame=5,update_internacao=5,update_paciente=5"
)


class Cdc:
    """A seeded schema with ``cdc setup`` done (its own slot and publication)."""

    def __init__(self, dsn: str, tmp: Path) -> None:
        self.dsn = dsn
        self.tmp = tmp
        tag = uuid.uuid4().hex[:10]
        self.slot, self.pub = f"lg_test_slot_{tag}", f"lg_test_pub_{tag}"
        self.ledger = tmp / "ledger"
        env = {k: v for k, v in os.environ.items() if not k.startswith(("LOADGEN_", "PG_"))}
        env.pop("DATABASE_URL", None)
        env.update(
            {
                "LOADGEN_DSN": dsn,
                "LOADGEN_DB_CONNECT_RETRY_S": "2",
                "LOADGEN_LOGGING_FILE": str(tmp / "app.log"),
            }
        )
        self.env = env

    def run(self, *args: str, timeout_s: float = 120) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            _cli(list(args)),
            env=self.env,
            cwd=self.tmp,
            capture_output=True,
            text=True,
            timeout=timeout_s,
        )

    def start(
        self, *args: str, preexec_fn: Callable[[], None] | None = None
    ) -> subprocess.Popen[str]:
        return subprocess.Popen(
            _cli(list(args)),
            env=self.env,
            cwd=self.tmp,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            preexec_fn=preexec_fn,
        )

    def verify(self, ledger: Path | None = None) -> dict[str, object]:
        result = self.run(
            "cdc", "verify", "--ledger", str(ledger or self.ledger), "--slot", self.slot,
            "--publication", self.pub, "--json",
        )  # fmt: skip
        assert result.returncode in (0, 1), result.stderr
        report: dict[str, object] = json.loads(result.stdout)
        return report

    def ledger_of(self, run_id: str) -> LedgerContents:
        """One run's parts of the shared ledger directory, each intent resolved by the server."""
        with db.connect(self.dsn, autocommit=True) as conn:
            return read_ledger(
                _only_run(self.ledger, run_id, self.tmp), resolve=server_resolver(conn)
            )


def _only_run(ledger: Path, run_id: str, tmp: Path) -> str:
    """A directory holding (links to) the parts of one run only."""
    one = tmp / f"run-{run_id}"
    one.mkdir(exist_ok=True)
    for part in ledger.glob(f"part-{run_id}-*.jsonl"):
        link = one / part.name
        if not link.exists():
            link.symlink_to(part)
    return str(one)


@pytest.fixture
def cdc(schema_dsn: str, tmp_path: Path) -> Iterator[Cdc]:
    seed.seed(schema_dsn, seed.SeedOptions(scale=0.05, workers=1, seed=7))
    c = Cdc(schema_dsn, tmp_path)
    setup = c.run("cdc", "setup", "--slot", c.slot, "--publication", c.pub)
    assert setup.returncode == 0, setup.stderr
    try:
        yield c
    finally:
        with db.connect(schema_dsn, autocommit=True) as conn:
            teardown_cdc(conn, slot=c.slot, publication=c.pub)


def _failed(report: dict[str, object]) -> dict[str, object]:
    checks = report["checks"]
    assert isinstance(checks, list)
    return {c["name"]: c["count"] for c in checks if not c["ok"]}


def _assert_verifies(cdc: Cdc) -> dict[str, object]:
    report = cdc.verify()
    assert report["ok"], (_failed(report), report["notes"])
    return report


def _wait_gone(pids: list[int], timeout_s: float = 15) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        alive = [p for p in pids if Path(f"/proc/{p}").exists() and not _is_zombie(p)]
        if not alive:
            return
        time.sleep(0.05)
    for p in pids:
        with contextlib.suppress(ProcessLookupError):
            os.kill(p, signal.SIGKILL)
    raise AssertionError(f"processes {pids} still alive")


def _is_zombie(pid: int) -> bool:
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] == "Z"
    except OSError:
        return True


def _summary_equals_ledger(summary: dict[str, object], ledger: LedgerContents) -> None:
    assert _ledger_row_changes(ledger) == summary["row_changes"]
    no_op = summary["no_op"]
    assert isinstance(no_op, dict)
    if no_op["total"]:  # a transaction of no-ops only committed but has nothing to record
        assert len(ledger.txids) <= summary["committed_txns"]  # type: ignore[operator]
    else:
        assert len(ledger.txids) == summary["committed_txns"]


def test_sigkill_of_workers_and_coordinator_at_random_points(cdc: Cdc) -> None:
    """At least 20 SIGKILLs at random moments of unlimited-rate runs (all 4 workers of a run,
    and in some runs the coordinator first): after each run ledger = database = slot, and the
    partial summary of a run whose coordinator survived = its ledger."""
    rng = random.Random(int(os.environ.get("LOADGEN_TEST_SEED", "0")) or None)
    num_kills = 0
    run = 0
    while num_kills < 20:
        run += 1
        summary_path = cdc.tmp / f"s{run}.json"
        proc = cdc.start(
            "stream", "--rate", "unlimited", "--workers", "4", "--batch-size", "20",
            "--mix", ALL_OPS_MIX, "--ledger", f"{cdc.ledger}/", "--report-interval", "0.2",
            "--summary-json", str(summary_path), "--progress",
        )  # fmt: skip
        try:
            _wait_for_progress(proc, min_total=rng.randint(1, 200))
            workers = _worker_pids(proc.pid)
            assert len(workers) == 4
            kill_coordinator = run % 3 == 0
            victims = ([proc.pid] if kill_coordinator else []) + rng.sample(workers, 4)
            for pid in victims:
                time.sleep(rng.uniform(0.0, 0.03))  # each at its own random point
                try:  # a worker may have stopped already: its coordinator died or aborted
                    os.kill(pid, signal.SIGKILL)
                    num_kills += 1
                except ProcessLookupError:
                    pass
            _, stderr = proc.communicate(timeout=30)
            _wait_gone(workers)
        finally:
            proc.kill()
        if kill_coordinator:
            assert proc.returncode == -signal.SIGKILL
        else:
            assert proc.returncode == 4, stderr
            assert "run aborted: worker" in stderr and "Traceback" not in stderr
            summary = json.loads(summary_path.read_text())
            assert summary["aborted"] is True and summary["stop_reason"] == "worker_failed"
            _summary_equals_ledger(summary, cdc.ledger_of(summary["run_id"]))
        report = _assert_verifies(cdc)  # ledger = slot, and the replayed slot = the tables
        assert report["counts"]["ledger_unresolved_transactions"] == 0
    assert run >= 3


@contextlib.contextmanager
def _small_disk(tmp: Path) -> Iterator[tuple[Path, Callable[[], None] | None]]:
    """A directory on a 256 KiB tmpfs, or a file-size limit on the processes where mounting
    is not allowed."""
    where = Path(tempfile.mkdtemp(prefix="lg_full_", dir=tmp))
    mounted = (
        subprocess.run(
            ["mount", "-t", "tmpfs", "-o", "size=256k", "tmpfs", str(where)],
            capture_output=True,
            check=False,
        ).returncode
        == 0
    )
    if mounted:
        try:
            yield where, None
        finally:
            subprocess.run(["umount", "-l", str(where)], check=False)
        return

    def limit() -> None:
        resource.setrlimit(resource.RLIMIT_FSIZE, (256 * 1024, 256 * 1024))

    yield where, limit


def test_full_ledger_disk_stops_with_one_line_and_nothing_committed_is_unrecorded(
    cdc: Cdc,
) -> None:
    with _small_disk(cdc.tmp) as (disk, limit):
        ledger = disk / "ledger"
        proc = cdc.start(
            "stream", "--rate", "unlimited", "--workers", "2", "--batch-size", "10",
            "--mix", ALL_OPS_MIX, "--ledger", f"{ledger}/", "--no-progress",
            "--summary-json", str(cdc.tmp / "s.json"),
            preexec_fn=limit,
        )  # fmt: skip
        try:
            _, stderr = proc.communicate(timeout=90)
        finally:
            proc.kill()
        assert proc.returncode == 4, stderr
        errors = [line for line in stderr.splitlines() if line.startswith("loadgen: error:")]
        assert len(errors) == 1 and "Traceback" not in stderr, stderr
        assert f"ledger {ledger}/part-" in errors[0]
        # the intent (then rolled back) or, after a COMMIT, the outcome (then resolved)
        assert (
            "cannot write the intent of transaction" in errors[0]
            and "rolled back: nothing committed is unrecorded" in errors[0]
        ) or (
            "cannot write the outcome of transaction" in errors[0]
            and "committed and its intent is recorded" in errors[0]
        ), errors[0]
        assert ("No space left on device" if limit is None else "File too large") in errors[0]
        summary = json.loads((cdc.tmp / "s.json").read_text())
        assert summary["stop_reason"] == "ledger_write_failed" and summary["aborted"] is True
        copy = cdc.tmp / "ledger-copy"  # off the full disk, for verify and the comparisons
        copy.mkdir()
        for part in ledger.iterdir():
            (copy / part.name).write_bytes(part.read_bytes())
        with db.connect(cdc.dsn, autocommit=True) as conn:
            contents = read_ledger(str(copy), resolve=server_resolver(conn))
        _summary_equals_ledger(summary, contents)
        report = cdc.verify(copy)
        assert report["ok"], (_failed(report), report["notes"])


def test_zero_row_updates_are_no_ops_not_changes(cdc: Cdc) -> None:
    """Rows changed behind the stream's back: its updates change nothing — counted as
    ``no_op``, never as a change, never in the ledger."""
    proc = cdc.start(
        "stream", "--rate", "200/s", "--workers", "2", "--batch-size", "5", "--duration", "3",
        "--mix", "update_consulta=1,insert_exame=1", "--ledger", f"{cdc.ledger}/",
        "--summary-json", str(cdc.tmp / "s.json"), "--report-interval", "0.2", "--progress",
    )  # fmt: skip
    try:
        _wait_for_progress(proc, min_total=20)
        with db.connect(cdc.dsn, autocommit=True) as conn:  # every agendada consulta closed
            conn.execute("UPDATE consultas SET status = 'realizada' WHERE status = 'agendada'")
        _, stderr = proc.communicate(timeout=30)
    finally:
        proc.kill()
    assert proc.returncode == 0, stderr
    summary = json.loads((cdc.tmp / "s.json").read_text())
    assert summary["no_op"]["total"] > 0
    assert set(summary["no_op"]["by_op"]) == {"update_consulta"}
    ledger = cdc.ledger_of(summary["run_id"])
    _summary_equals_ledger(summary, ledger)
    assert summary["by_op"].get("update_consulta", 0) == summary["row_changes"].get(
        "consultas", {}
    ).get("update", 0)
    # the test's own UPDATE is a change behind the generator's back: unexpected, nothing else
    assert set(_failed(cdc.verify())) == {"unexpected"}


def test_two_streams_with_deletes_own_disjoint_rows(cdc: Cdc) -> None:
    before = _counts(cdc.dsn)
    args = (
        "stream", "--rate", "150/s", "--workers", "2", "--batch-size", "5", "--duration", "4",
        "--mix", MIX_WITH_DELETES, "--ledger", f"{cdc.ledger}/", "--no-progress",
    )  # fmt: skip
    first = cdc.start(*args, "--summary-json", str(cdc.tmp / "a.json"))
    assert first.stderr is not None and first.stderr.readline().startswith("stream:")
    second = cdc.start(*args, "--summary-json", str(cdc.tmp / "b.json"))
    try:
        out = [p.communicate(timeout=60) for p in (first, second)]
    finally:
        first.kill()
        second.kill()
    assert first.returncode == second.returncode == 0, out
    a, b = (json.loads((cdc.tmp / n).read_text()) for n in ("a.json", "b.json"))
    assert {a["owns_existing_rows"], b["owns_existing_rows"]} == {True, False}
    assert a["no_op"]["total"] == b["no_op"]["total"] == 0  # nobody changed the other's rows
    assert a["by_kind"]["delete"] > 0 and a["by_kind"]["update"] > 0
    for summary in (a, b):
        _summary_equals_ledger(summary, cdc.ledger_of(summary["run_id"]))
    both = _row_deltas(a["row_changes"])
    both.update(_row_deltas(b["row_changes"]))  # (update keeps negative counts; + would not)
    assert _deltas(before, _counts(cdc.dsn)) == {t: n for t, n in both.items() if n}
    _assert_verifies(cdc)  # both runs' ledgers (one directory) = the slot = the tables


def test_stream_and_seed_append_at_once(cdc: Cdc) -> None:
    before = _counts(cdc.dsn)
    proc = cdc.start(
        "stream", "--rate", "300/s", "--workers", "2", "--duration", "5",
        "--mix", "insert_paciente=5,insert_consulta=5,insert_exame=5,admit_paciente=2",
        "--ledger", f"{cdc.ledger}/", "--summary-json", str(cdc.tmp / "s.json"),
        "--report-interval", "0.2", "--progress",
    )  # fmt: skip
    try:
        _wait_for_progress(proc, min_total=30)
        appended = cdc.run("seed", "--append", "--scale", "0.05", "--seed", "9", "--workers", "1")
        _, stderr = proc.communicate(timeout=60)
    finally:
        proc.kill()
    assert appended.returncode == 0, appended.stderr
    assert proc.returncode == 0, stderr
    summary = json.loads((cdc.tmp / "s.json").read_text())
    _summary_equals_ledger(summary, cdc.ledger_of(summary["run_id"]))
    seeded = Counter({t.name: round(t.seed_rows * 0.05) for t in tables.TABLES if not t.is_lookup})
    seeded.update(_row_deltas(summary["row_changes"]))
    assert _deltas(before, _counts(cdc.dsn)) == {t: n for t, n in seeded.items() if n}
    check = cdc.run("check")
    assert check.returncode == 0, check.stdout


def test_sigterm_while_every_worker_waits_on_a_lock(cdc: Cdc) -> None:
    """The workers are stuck in a lock wait that outlasts the stop timeout: their watchdogs
    cancel the waiting statements, so the run stops within 5 s, gracefully (every worker's last
    report arrives: nothing to recover from the tallies), and the summary equals the ledger and
    the tables."""
    before = _counts(cdc.dsn)
    proc = cdc.start(
        "stream", "--rate", "100/s", "--workers", "2", "--batch-size", "5",
        "--mix", "insert_consulta=1", "--ledger", f"{cdc.ledger}/",
        "--summary-json", str(cdc.tmp / "s.json"), "--report-interval", "5", "--progress",
    )  # fmt: skip
    locked, release = threading.Event(), threading.Event()

    def hold_lock() -> None:
        with psycopg.connect(cdc.dsn) as conn:
            conn.execute("LOCK TABLE consultas IN ACCESS EXCLUSIVE MODE")
            locked.set()
            release.wait(60)
            conn.rollback()

    holder = threading.Thread(target=hold_lock, daemon=True)
    try:
        _wait_for_progress(proc, min_total=20)
        apps = [f"loadgen-stream-w{i}-{pid}" for i, pid in enumerate(_worker_pids(proc.pid))]
        holder.start()
        assert locked.wait(10)
        _wait_for_lock_waiters(cdc.dsn, apps)
        proc.send_signal(signal.SIGTERM)
        signalled = time.monotonic()
        stdout, stderr = proc.communicate(timeout=30)
        took_s = time.monotonic() - signalled
    finally:
        release.set()
        proc.kill()
        holder.join(10)
    assert proc.returncode == 0, stderr
    assert took_s < 5.0, took_s
    summary = json.loads((cdc.tmp / "s.json").read_text())
    assert summary["stop_reason"] == "signal" and summary["aborted"] is False
    assert summary["recovered_ops"] == 0  # they stopped: every last report arrived
    assert summary["errors"] == {}  # a stop-time cancel is not an error
    _summary_equals_ledger(summary, cdc.ledger_of(summary["run_id"]))
    _wait_for_no_backends(cdc.dsn, apps)
    assert _deltas(before, _counts(cdc.dsn)) == _row_deltas(summary["row_changes"])
    assert "terminated" not in stderr and "killed" not in stderr
    _assert_verifies(cdc)


def _wait_for_lock_waiters(dsn: str, apps: list[str], timeout_s: float = 15) -> None:
    deadline = time.monotonic() + timeout_s
    with db.connect(dsn, autocommit=True) as conn:
        while time.monotonic() < deadline:
            row = conn.execute(
                "SELECT count(*) FROM pg_stat_activity WHERE wait_event_type = 'Lock'"
                " AND application_name = ANY(%s)",
                (apps,),
            ).fetchone()
            if row and row[0] >= len(apps):
                return
            time.sleep(0.05)
    raise AssertionError("the workers never waited on the lock")


def _wait_for_no_backends(dsn: str, apps: list[str], timeout_s: float = 15) -> None:
    """Until the (dead) workers' backends are gone: their open transactions rolled back."""
    deadline = time.monotonic() + timeout_s
    with db.connect(dsn, autocommit=True) as conn:
        while time.monotonic() < deadline:
            row = conn.execute(
                "SELECT count(*) FROM pg_stat_activity WHERE application_name = ANY(%s)",
                (apps,),
            ).fetchone()
            if row and row[0] == 0:
                return
            time.sleep(0.05)
    raise AssertionError("the workers' backends are still there")


def test_worker_killed_in_commit_is_resolved_by_the_coordinator(cdc: Cdc) -> None:
    """A COMMIT that takes seconds (a deferred trigger sleeps in it); the worker is SIGKILLed
    meanwhile: its intent is in the ledger, its tally pending. The coordinator waits for the
    server to finish the transaction, records its outcome (``by: coordinator``) and counts it."""
    with db.connect(cdc.dsn, autocommit=True) as conn:
        conn.execute(
            "CREATE FUNCTION lg_slow_commit() RETURNS trigger LANGUAGE plpgsql AS"
            " $$ BEGIN PERFORM pg_sleep(2); RETURN NULL; END $$"
        )
        conn.execute(
            "CREATE CONSTRAINT TRIGGER lg_slow_commit AFTER INSERT ON exames DEFERRABLE"
            " INITIALLY DEFERRED FOR EACH ROW EXECUTE FUNCTION lg_slow_commit()"
        )
    before = _counts(cdc.dsn)
    proc = cdc.start(
        "stream", "--rate", "5/s", "--workers", "1", "--batch-size", "1",
        "--mix", "insert_exame=1", "--ledger", f"{cdc.ledger}/", "--no-progress",
        "--summary-json", str(cdc.tmp / "s.json"), "--report-interval", "30",
    )  # fmt: skip
    try:
        assert proc.stderr is not None and proc.stderr.readline().startswith("stream:")
        deadline = time.monotonic() + 30
        while not (workers := _worker_pids(proc.pid)) and time.monotonic() < deadline:
            time.sleep(0.05)
        app = f"loadgen-stream-w0-{workers[0]}"
        with db.connect(cdc.dsn, autocommit=True) as conn:
            while time.monotonic() < deadline:  # until it is inside a COMMIT
                busy = conn.execute(
                    "SELECT 1 FROM pg_stat_activity WHERE application_name = %s"
                    " AND wait_event = 'PgSleep'",
                    (app,),
                ).fetchone()
                if busy:
                    break
                time.sleep(0.02)
        os.kill(workers[0], signal.SIGKILL)
        _, stderr = proc.communicate(timeout=30)
    finally:
        proc.kill()
    assert proc.returncode == 4, stderr
    summary = json.loads((cdc.tmp / "s.json").read_text())
    ledger = read_ledger(_only_run(cdc.ledger, summary["run_id"], cdc.tmp))  # no server asked
    assert ledger.uncommitted == []  # the coordinator recorded the killed COMMIT's outcome
    assert "coordinator" in {o.by for o in ledger.outcomes.values()}, ledger.outcomes
    assert summary["recovered_ops"] >= 1  # the killed one, and any unreported before it
    _summary_equals_ledger(summary, ledger)
    assert _deltas(before, _counts(cdc.dsn)) == _row_deltas(summary["row_changes"])
    _assert_verifies(cdc)
