"""`cdc watch` beside a real `stream`, on a real slot of the test server.

Each test runs ``loadgen stream`` and ``loadgen cdc watch --json`` in subprocesses (what a user
runs in two terminals). The watch streams one slot; a second slot of the same publication,
created at the same moment, is left for a later `cdc verify`, so the live verdict can be
compared with the batch one on the same changes. Records are read from the watch's stdout as
they come, each stamped with when it arrived.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import orjson
import psycopg
import pytest

from loadgen import db
from loadgen.cdc import slot as S
from loadgen.ledger import LedgerWriter
from loadgen.ledger.changes import RowChange
from tests.fixtures.cleanup import teardown_cdc
from tests.integration.test_cdc_cli import SEED_SQL

pytestmark = [pytest.mark.db, pytest.mark.slow]


class WatchProc:
    """A running `cdc watch --json`; ``records`` fill in as its lines arrive."""

    def __init__(self, env: dict[str, str], cwd: Path, *args: str) -> None:
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "loadgen", "cdc", "watch", "--json", *args],
            env=env, cwd=cwd, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
        )  # fmt: skip
        self.records: list[tuple[float, dict[str, Any]]] = []
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()

    def _read(self) -> None:
        assert self.proc.stdout is not None
        for line in self.proc.stdout:
            self.records.append((time.monotonic(), orjson.loads(line)))

    def of(self, kind: str) -> list[dict[str, Any]]:
        return [r for _, r in self.records if r.get("type") == kind]

    def wait_for(self, cond: Callable[[], bool], timeout_s: float = 60) -> None:
        deadline = time.monotonic() + timeout_s
        while not cond():
            if self.proc.poll() is not None and not self._reader.is_alive():
                raise AssertionError(f"watch exited: {self.stderr()}")
            if time.monotonic() > deadline:
                raise AssertionError(f"timed out; last records {self.records[-3:]}")
            time.sleep(0.05)

    def finish(self, timeout_s: float = 90) -> tuple[int, dict[str, Any]]:
        code = self.proc.wait(timeout=timeout_s)
        self._reader.join(timeout=10)
        (final,) = self.of("final")
        return code, final

    def stderr(self) -> str:
        assert self.proc.stderr is not None
        return self.proc.stderr.read().decode() if self.proc.poll() is not None else ""

    def kill(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()
        self._reader.join(timeout=10)
        for f in (self.proc.stdout, self.proc.stderr):
            if f is not None:
                f.close()


@pytest.fixture
def rig(schema_dsn: str, cli_env: dict[str, str], tmp_path: Path) -> Iterator[dict[str, Any]]:
    """Seeded tables, one publication, the watch's slot and verify's slot (dropped after)."""
    tag = uuid.uuid4().hex[:10]
    watch_slot, verify_slot, pub = f"lg_w_{tag}", f"lg_v_{tag}", f"lg_pub_{tag}"
    with db.connect(schema_dsn, autocommit=True) as conn:
        for q in SEED_SQL:
            conn.execute(q)
        S.setup(conn, publication=pub, slot=watch_slot)
        S.setup(conn, publication=pub, slot=verify_slot)
    procs: list[WatchProc] = []
    yield {
        "env": cli_env, "cwd": tmp_path, "dsn": schema_dsn, "pub": pub, "procs": procs,
        "watch_slot": watch_slot, "verify_slot": verify_slot, "ledger": tmp_path / "ledger",
    }  # fmt: skip
    for p in procs:
        p.kill()
    with db.connect(schema_dsn, autocommit=True) as conn:
        teardown_cdc(conn, slot=watch_slot, publication=None)
        teardown_cdc(conn, slot=verify_slot, publication=pub)


def watch(rig: dict[str, Any], *args: str) -> WatchProc:
    p = WatchProc(
        rig["env"], rig["cwd"], "--ledger", str(rig["ledger"]), "--slot", rig["watch_slot"],
        "--publication", rig["pub"], *args,
    )  # fmt: skip
    rig["procs"].append(p)
    return p


def stream(rig: dict[str, Any], *args: str) -> subprocess.Popen[bytes]:
    return subprocess.Popen(
        [sys.executable, "-m", "loadgen", "stream", "--workers", "2", "--batch-size", "3",
         "--ledger", str(rig["ledger"]), "--no-progress", "--seed", "3", *args],
        env=rig["env"], cwd=rig["cwd"], stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
    )  # fmt: skip


def done(s: subprocess.Popen[bytes]) -> None:
    """Wait for a stream to end (exit 0); its pipe closed."""
    _, err = s.communicate(timeout=120)
    assert s.returncode == 0, err.decode()


def verify(rig: dict[str, Any]) -> dict[str, Any]:
    r = subprocess.run(
        [sys.executable, "-m", "loadgen", "cdc", "verify", "--ledger", str(rig["ledger"]),
         "--slot", rig["verify_slot"], "--publication", rig["pub"], "--json"],
        env=rig["env"], cwd=rig["cwd"], capture_output=True, text=True, timeout=120, check=False,
    )  # fmt: skip
    assert r.returncode in (0, 1), r.stderr
    doc: dict[str, Any] = orjson.loads(r.stdout)
    return doc


def failed(report: dict[str, Any]) -> dict[str, int]:
    return {c["name"]: c["count"] for c in report["checks"] if not c["ok"]}


def confirmed_lsn(dsn: str, slot: str) -> int:
    with psycopg.connect(dsn, autocommit=True) as conn:
        row = conn.execute(
            "SELECT confirmed_flush_lsn - '0/0'::pg_lsn FROM pg_replication_slots"
            " WHERE slot_name = %s",
            (slot,),
        ).fetchone()
    assert row is not None
    return int(row[0])


def test_watch_beside_stream_gives_verifys_verdict(rig: dict[str, Any]) -> None:
    start_lsn = confirmed_lsn(rig["dsn"], rig["watch_slot"])
    w = watch(rig, "--until-caught-up", "--grace", "20", "--interval", "0.5")
    w.wait_for(lambda: len(w.of("interval")) >= 1)  # running before the ledger exists
    s = stream(rig, "--rate", "300/s", "--duration", "4s")
    done(s)
    code, final = w.finish()
    batch = verify(rig)
    assert code == 0 and final["ok"] and batch["ok"], (failed(final), failed(batch))
    fc, bc = final["counts"], batch["counts"]
    for k in ("ledger_changes", "ledger_transactions", "captured_changes", "matched"):
        assert fc[k] == bc[k], k
    assert fc["matched"] >= 500  # ~1,200 operations (fewer while the workers start)
    assert final["lag_ms"]["all"]["count"] == fc["captured_changes"]
    assert 0 < final["lag_ms"]["all"]["p50"] < 5_000
    intervals = w.of("interval")
    assert sum(r["matched_in_interval"] for r in intervals) == fc["matched"]
    assert any(r["lag_ms"]["tables"] for r in intervals)
    assert "stopped: caught up" in final["notes"]
    # matched positions were confirmed: the watch's slot released its WAL
    assert confirmed_lsn(rig["dsn"], rig["watch_slot"]) > start_lsn


def test_a_watch_stopped_before_it_reached_the_backlog_reads_it_first(
    rig: dict[str, Any],
) -> None:
    """Started after the stream, stopped (SIGINT) at its first interval while the walsender
    is still decoding unrelated WAL before the stream's changes: it reads the slot up to the
    stop's position first, so its verdict is verify's, not "missing" for what it had not
    reached (a new user's report)."""
    with db.connect(rig["dsn"], autocommit=True) as conn:  # WAL to decode, nothing published
        conn.execute("CREATE TABLE lg_bulk AS SELECT g, repeat('x', 200) AS t"
                     " FROM generate_series(1, 300000) g")  # fmt: skip
    done(stream(rig, "--rate", "unlimited", "--max-ops", "600"))
    w = watch(rig, "--interval", "0.2", "--grace", "120")
    w.wait_for(lambda: len(w.of("interval")) >= 1)
    assert w.of("interval")[0]["matched"] < 600  # stopped before it had read the changes
    w.proc.send_signal(signal.SIGINT)
    code, final = w.finish()
    batch = verify(rig)
    assert code == 0 and final["ok"] and batch["ok"], (failed(final), failed(batch))
    assert len(w.of("draining")) == 1
    assert final["counts"]["matched"] == batch["counts"]["matched"] >= 600


def test_a_change_lost_mid_run_is_reported_missing_within_grace(rig: dict[str, Any]) -> None:
    grace, interval = 1.5, 0.5
    w = watch(rig, "--grace", str(grace), "--interval", str(interval))
    s = stream(rig, "--rate", "200/s", "--duration", "5s")
    w.wait_for(lambda: any(r["matched"] > 50 for r in w.of("interval")))
    # a committed change the stream never carries: a transaction the ledger says committed
    with psycopg.connect(rig["dsn"], autocommit=True) as conn:
        (txid,) = conn.execute("SELECT pg_current_xact_id()::text::bigint").fetchone()  # type: ignore[misc]
    lost = RowChange("pacientes", "u", 1, {"id": "1", "nome": "never sent"}, "lost_change")
    with LedgerWriter(str(rig["ledger"]), 777, run_id="0badc0de") as lw:
        lw.write_txn(int(txid), "2026-01-01T00:00:00+00:00", [lost])
    written = time.monotonic()
    w.wait_for(lambda: bool(w.of("missing")))
    seen_at, rec = next((t, r) for t, r in w.records if r.get("type") == "missing")
    assert rec["txid"] == txid and rec["op_name"] == "lost_change" and rec["pk"] == 1
    assert grace <= seen_at - written <= grace + interval + 1.0  # + the ledger poll, slack
    done(s)
    # the stream is over and all but the lost change matched: stop the watch as a user would
    w.wait_for(
        lambda: any(r["pending"] == 1 and r["missing_now"] == 1 for r in w.of("interval")[-1:])
    )
    w.proc.send_signal(signal.SIGTERM)
    code, final = w.finish()
    assert "stopped: SIGTERM" in final["notes"]
    assert code == 1 and failed(final) == {"missing": 1}
    assert final["checks"][2]["examples"][0]["op_name"] == "lost_change"
    assert final["counts"]["late_matches"] == 0
    assert failed(verify(rig)) == {"missing": 1}  # the batch verifier agrees


def _kill_walsender(dsn: str, slot: str) -> int:
    with psycopg.connect(dsn, autocommit=True) as conn:
        row = conn.execute(
            "SELECT pg_terminate_backend(active_pid) FROM pg_replication_slots"
            " WHERE slot_name = %s AND active_pid IS NOT NULL",
            (slot,),
        ).fetchone()
    return 1 if row and row[0] else 0


def test_pause_then_terminated_connection_lag_recovers_nothing_lost(
    rig: dict[str, Any],
) -> None:
    w = watch(rig, "--until-caught-up", "--grace", "30", "--interval", "0.25")
    s = stream(rig, "--rate", "200/s", "--duration", "7s")
    w.wait_for(lambda: any(r["matched"] > 100 for r in w.of("interval")))
    # the consumer stops for 2 s while the load goes on: lag grows, then recovers
    os.kill(w.proc.pid, signal.SIGSTOP)
    time.sleep(2.0)  # the pause itself is the fault injected
    os.kill(w.proc.pid, signal.SIGCONT)
    paused_until = len(w.records)
    w.wait_for(lambda: len(w.of("interval")) > 0 and len(w.records) > paused_until + 4)
    # the replication connection is killed mid-run: the watch reconnects and loses nothing
    assert _kill_walsender(rig["dsn"], rig["watch_slot"]) == 1
    done(s)
    code, final = w.finish()
    assert code == 0 and final["ok"], failed(final)
    batch = verify(rig)
    assert batch["ok"] and final["counts"]["matched"] == batch["counts"]["matched"]
    assert final["counts"]["reconnects"] >= 1
    lags = [r["lag_ms"]["all"] for r in w.of("interval") if r["lag_ms"]["all"]["count"]]
    peak = max(range(len(lags)), key=lambda i: lags[i]["max"])
    assert lags[peak]["max"] >= 1_500  # changes committed during the pause waited ~2 s
    assert peak < len(lags) - 1
    assert min(x["p50"] for x in lags[peak + 1 :]) < 500  # and the lag came back down


def test_markers_give_lag_while_the_tables_are_idle(rig: dict[str, Any]) -> None:
    w = watch(rig, "--grace", "20", "--interval", "0.5")
    summary = rig["cwd"] / "stream.json"
    s = stream(rig, "--rate", "1/h", "--markers", "0.5", "--duration", "4s",
               "--summary-json", str(summary))  # fmt: skip
    done(s)
    written = orjson.loads(summary.read_bytes())
    # one marker every 0.5 s of the 4 s run; the watch sees every one of them, then is stopped
    assert written["markers"]["failed"] == 0 and written["markers"]["written"] >= 7
    n = written["markers"]["written"]
    w.wait_for(lambda: any(r["markers"]["count"] >= n for r in w.of("interval")[-1:]))
    w.proc.send_signal(signal.SIGTERM)
    code, final = w.finish()
    assert code == 0 and final["ok"], failed(final)
    m = final["markers"]
    assert m["count"] == n and m["runs"] == {written["run_id"]: n}  # matched by payload
    assert m["count"] >= 5 and (m["gaps"], m["duplicated"], m["bad"]) == (0, 0, 0)
    assert m["lag_ms"]["count"] == m["count"] and 0 < m["lag_ms"]["p50"] < 5_000
    # the intervals with markers but no row change: lag measured while the tables were idle
    idle = [
        r["markers"]
        for r in w.of("interval")
        if r["markers"]["in_interval"] and not r["lag_ms"]["all"]["count"]
    ]
    assert len(idle) >= 3 and all(x["lag_ms"]["count"] == x["in_interval"] for x in idle)
    assert final["counts"]["matched"] <= 6  # at 1/h: at most the first batch of each worker
    batch = verify(rig)  # the markers' transactions do not disturb the batch verifier
    assert batch["ok"] and batch["counts"]["logical_messages"] >= m["count"], failed(batch)
