"""``loadgen cdc capture``: real Debezium (embedded engine, in a subprocess) against real
PostgreSQL. Captures are shared between assertions (one JVM start costs several seconds).

What is asserted is what the capture guarantees: every committed change in the file (no
loss, no gap on resume or after SIGKILL; redeliveries allowed), offsets and the slot's
confirmed position moving while it runs, and each stop condition.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import orjson
import pytest

from tests.fixtures.capture import (
    Capture,
    CdcEnv,
    cdc_env,
    event_keys,
    ledger_keys,
    require_debezium,
)

pytestmark = [pytest.mark.db, pytest.mark.java, pytest.mark.logical, pytest.mark.slow]

ALL_OPS = ",".join(
    f"{op}=10"
    for op in (
        "insert_paciente",
        "insert_consulta",
        "insert_exame",
        "insert_internacao",
        "update_paciente",
        "update_consulta",
        "update_exame",
        "update_internacao",
        "insert_paciente_convenio",
        "delete_paciente_convenio",
        "delete_consulta",
        "admit_paciente",
    )
)


@pytest.fixture(scope="module")
def cdc(pg_dsn: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[CdcEnv]:
    require_debezium()
    yield from cdc_env(pg_dsn, tmp_path_factory.mktemp("capture"))


def _slot_lsn(cdc: CdcEnv) -> tuple[int, int]:
    """(confirmed_flush_lsn, current WAL position) of Debezium's slot, as integers."""
    with cdc.connect() as conn:
        row = conn.execute(
            "SELECT confirmed_flush_lsn - '0/0', pg_current_wal_lsn() - '0/0'"
            " FROM pg_replication_slots WHERE slot_name = %s",
            (cdc.debezium_slot,),
        ).fetchone()
    assert row is not None
    return int(row[0]), int(row[1])


def _max_event_lsn(lines: list[bytes]) -> int:
    lsns = [
        int(doc["source"]["lsn"])
        for doc in (orjson.loads(line) for line in lines)
        if isinstance(doc, dict) and "source" in doc
    ]
    return max(lsns)


def _stream(cdc: CdcEnv, ledger: Path, *args: str) -> None:
    r = cdc.run("stream", "--ledger", str(ledger), "--seed", "3", *args)
    assert r.returncode == 0, r.stderr


@pytest.fixture(scope="module")
def first_run(cdc: CdcEnv) -> dict[str, Any]:
    """Background capture, a stream of every operation, observations while it still runs,
    then `capture stop --until-caught-up`."""
    cap = Capture(cdc, cdc.cwd / "events.jsonl")
    started = time.monotonic()
    cap.start()
    start_s = time.monotonic() - started
    running = cap.status()
    ledger = cdc.cwd / "run1"
    _stream(cdc, ledger, "--mix", ALL_OPS, "--rate", "200/s", "--max-ops", "300")
    wanted = ledger_keys(ledger)
    deadline = time.monotonic() + 60
    while not wanted <= set(event_keys(cap.lines())):  # delivered while running
        assert time.monotonic() < deadline, "the running capture never wrote every change"
        time.sleep(0.1)
    last_lsn = _max_event_lsn(cap.lines())
    deadline = time.monotonic() + 10
    while (confirmed := _slot_lsn(cdc)[0]) < last_lsn:  # offsets flushed: the slot moves
        assert time.monotonic() < deadline, "the slot's confirmed position did not move"
        time.sleep(0.1)
    status = cdc.run("cdc", "status", "--json")
    summary = cap.stop("--until-caught-up")
    return {
        "cap": cap,
        "ledger": ledger,
        "running": running,
        "start_s": start_s,
        "confirmed": confirmed,
        "status": orjson.loads(status.stdout),
        "summary": summary,
        "lines": cap.lines(),
    }


def test_background_start_returns_streaming_and_stop_flushes(
    cdc: CdcEnv, first_run: dict[str, Any]
) -> None:
    cap: Capture = first_run["cap"]
    assert first_run["running"]["phase"] == "streaming"
    assert first_run["running"]["slot"] == cdc.debezium_slot
    summary = first_run["summary"]
    assert summary["stop_reason"] == "caught up" and summary["exit_code"] == 0
    assert summary["lines"] == len(first_run["lines"])
    assert sum(summary["events_by_op"].values()) + summary["tombstones"] == summary["lines"]
    assert not cap.out.with_name("events.jsonl.pid").exists()
    assert cap.out.with_name("events.jsonl.offsets").stat().st_size > 0


def test_events_verify_against_the_ledger(cdc: CdcEnv, first_run: dict[str, Any]) -> None:
    r = cdc.run(
        "cdc",
        "verify",
        "--ledger",
        str(first_run["ledger"]),
        "--debezium",
        str(first_run["cap"].out),
    )
    assert r.returncode == 0, r.stdout + r.stderr
    ops = Counter(k[3] for k in event_keys(first_run["lines"]))
    assert set(ops) == {"c", "u", "d"}
    assert b"null" in first_run["lines"]  # tombstones after deletes


def test_slot_position_and_status_lag_follow_the_capture(
    cdc: CdcEnv, first_run: dict[str, Any]
) -> None:
    """While it runs, the slot's confirmed position reaches the last event written (offsets
    flushed every second), so `cdc status` reports the real lag, not everything since start."""
    slots = {s["slot_name"]: s for s in first_run["status"]["slots"]}
    ours = slots[cdc.debezium_slot]
    assert ours["is_active"] is True
    verifier = slots[cdc.slot]  # never read during the run: all of it is lag
    assert ours["lag_bytes"] < verifier["lag_bytes"]
    assert first_run["confirmed"] >= _max_event_lsn(first_run["lines"])


def test_resume_with_the_same_out_appends_without_a_gap(
    cdc: CdcEnv, first_run: dict[str, Any]
) -> None:
    cap: Capture = first_run["cap"]
    before = cap.out.read_bytes()
    ledger2 = cdc.cwd / "run2"
    _stream(cdc, ledger2, "--rate", "200/s", "--max-ops", "200")
    r = cdc.run("cdc", "capture", "--out", str(cap.out), "--until-caught-up")
    assert r.returncode == 0, r.stderr
    after = cap.out.read_bytes()
    assert after.startswith(before) and len(after) > len(before)
    keys = event_keys(after.splitlines())
    assert ledger_keys(first_run["ledger"]) | ledger_keys(ledger2) <= set(keys)
    new_keys = event_keys(after[len(before) :].splitlines())
    assert set(new_keys) == ledger_keys(ledger2)  # resumed where it stopped: nothing older
    summary = cap.status()
    assert summary["resumed"] is True and summary["lines_before"] == len(before.splitlines())
    assert "resumed after" in r.stdout


def test_sigkill_mid_stream_then_restart_loses_nothing(cdc: CdcEnv) -> None:
    cap = Capture(cdc, cdc.cwd / "killed.jsonl")
    cap.start()
    ledger = cdc.cwd / "run-killed"
    err = open(cdc.cwd / "killed-stream.err", "w")  # noqa: SIM115 - closed below
    stream = subprocess.Popen(
        [sys.executable, "-m", "loadgen", "stream", "--rate", "unlimited", "--workers", "1",
         "--max-ops", "1500", "--batch-size", "3", "--ledger", str(ledger)],
        env=cdc.env, cwd=cdc.cwd, stdout=subprocess.DEVNULL, stderr=err,
    )  # fmt: skip
    try:
        cap.wait_lines(300)
        cap.kill()
        killed_at = len(cap.lines())
        st = cdc.run("cdc", "capture", "status", "--out", str(cap.out))
        assert st.returncode == 1, st.stdout + st.stderr
        assert "capture not running" in st.stdout and "died without a summary" in st.stdout
        assert "None" not in st.stdout and "/s)" not in st.stdout  # no rate from no duration
        cap.start()  # same --out: resumes from the offsets the killed one flushed
        assert stream.wait(120) == 0, (cdc.cwd / "killed-stream.err").read_text()
    finally:
        if stream.poll() is None:
            stream.kill()
            stream.wait()
        err.close()
    summary = cap.stop("--until-caught-up")
    lines = cap.lines()
    assert all(isinstance(orjson.loads(line), dict | None) for line in lines)  # no torn line
    keys = event_keys(lines)
    assert ledger_keys(ledger) <= set(keys), "a committed change is missing after the restart"
    redelivered = len(keys) - len(set(keys))
    assert summary["resumed"] is True and summary["lines_before"] >= killed_at - 1
    assert redelivered >= 0  # at least once: the redeliveries are allowed, and counted here
    print(f"redelivered after SIGKILL: {redelivered}")


def test_idle_stops_and_writes_the_summary_json(cdc: CdcEnv) -> None:
    out = cdc.cwd / "idle.jsonl"
    summary_path = cdc.cwd / "idle-summary.json"
    started = time.monotonic()
    r = cdc.run(
        "cdc", "capture", "--out", str(out), "--idle", "2s", "--summary-json", str(summary_path)
    )
    elapsed = time.monotonic() - started
    assert r.returncode == 0, r.stderr
    summary = orjson.loads(summary_path.read_bytes())
    assert summary["stop_reason"] == "idle 2 s" and summary["lines"] == 0
    assert 2.0 <= elapsed < 90
    assert "capture stopped (idle 2 s)" in r.stdout


def test_sigterm_stops_a_foreground_capture_the_slot_is_not_shared_and_follows_the_wal(
    cdc: CdcEnv,
) -> None:
    out = cdc.cwd / "term.jsonl"
    proc = subprocess.Popen(
        [sys.executable, "-m", "loadgen", "cdc", "capture", "--out", str(out)],
        env=cdc.env, cwd=cdc.cwd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )  # fmt: skip
    try:
        status_path = out.with_name("term.jsonl.status.json")
        deadline = time.monotonic() + 120
        while True:
            assert proc.poll() is None, proc.communicate()
            doc = orjson.loads(status_path.read_bytes()) if status_path.exists() else {}
            if doc.get("phase") == "streaming":
                break
            assert time.monotonic() < deadline, "never streamed"
            time.sleep(0.1)
        second = cdc.run("cdc", "capture", "--out", str(cdc.cwd / "second.jsonl"), "--idle", "1")
        assert second.returncode == 3, second.stderr
        assert "is in use by another consumer" in second.stderr
        assert len(second.stderr.strip().splitlines()) == 1
        # quiet captured tables, WAL written elsewhere: the capture's keepalive message still
        # moves the slot (Debezium alone confirms only the last event it processed)
        with cdc.connect() as conn:
            conn.execute("CREATE TABLE not_published AS SELECT generate_series(1, 5000) AS x")
            wal = int(conn.execute("SELECT pg_current_wal_lsn() - '0/0'").fetchone()[0])  # type: ignore[index]
        deadline = time.monotonic() + 30
        while _slot_lsn(cdc)[0] < wal:
            assert time.monotonic() < deadline, "the slot did not follow the WAL"
            time.sleep(0.2)
        proc.send_signal(signal.SIGTERM)
        stdout, stderr = proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert proc.returncode == 0, stderr
    assert "capture stopped (signal SIGTERM)" in stdout
    assert "Traceback" not in stderr
    with cdc.connect() as conn:  # the slot is released for the next consumer
        row = conn.execute(
            "SELECT active FROM pg_replication_slots WHERE slot_name = %s", (cdc.debezium_slot,)
        ).fetchone()
    assert row == (False,)


@pytest.mark.parametrize(
    ("args", "code", "text"),
    [
        ((), 2, "--out FILE is required"),
        (("--out", "{cwd}"), 2, "is a directory"),
        (("--out", "{cwd}/no/such/dir/e.jsonl"), 2, "does not exist"),
        (("--out", "{cwd}/x.jsonl", "--snapshot", "always"), 2, "--snapshot 'always'"),
        (("--out", "{cwd}/x.jsonl", "--set", "novalue"), 2, "--set 'novalue'"),
        (("--out", "{cwd}/x.jsonl", "--idle", "0"), 2, "--idle"),
        (("--out", "{cwd}/x.jsonl", "--slot", "Bad-Slot"), 2, "--slot"),
        (("--out", "{cwd}/x.jsonl", "--slot", "{verifier_slot}"), 2, "the verifier's slot"),
        (("--out", "{cwd}/x.jsonl", "--publication", "lg_test_nopub"), 3, "does not exist"),
        (("--out", "{cwd}/x.jsonl", "--tables", "nosuch"), 2, "not in publication"),
        (("stop", "--out", "{cwd}/nothing.jsonl"), 2, "no capture is running"),
    ],
)
def test_bad_input_is_one_line(cdc: CdcEnv, args: tuple[str, ...], code: int, text: str) -> None:
    fill = {"cwd": str(cdc.cwd), "verifier_slot": cdc.slot}
    r = cdc.run("cdc", "capture", *(a.format(**fill) for a in args))
    assert r.returncode == code, r.stdout + r.stderr
    lines = r.stderr.strip().splitlines()
    assert len(lines) == 1 and text in lines[0] and "Traceback" not in r.stderr


def test_offsets_without_their_event_file_are_refused(cdc: CdcEnv) -> None:
    """Resuming into a new file would skip what the lost one held: a gap."""
    out = cdc.cwd / "lost.jsonl"
    out.with_name("lost.jsonl.offsets").write_bytes(b"x")
    r = cdc.run("cdc", "capture", "--out", str(out))
    assert r.returncode == 2 and "resuming would skip" in r.stderr


def test_missing_extra_and_missing_java(cdc: CdcEnv, tmp_path: Path) -> None:
    stub = tmp_path / "stub"
    (stub / "jpype").mkdir(parents=True)
    (stub / "jpype" / "__init__.py").write_text("raise ImportError('no jpype here')\n")
    env = {**cdc.env, "PYTHONPATH": str(stub)}
    r = subprocess.run(
        [sys.executable, "-m", "loadgen", "cdc", "capture", "--out", str(tmp_path / "e.jsonl")],
        env=env, cwd=tmp_path, capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert r.returncode == 2, r.stderr
    assert "pip install 'loadgen[debezium]'" in r.stderr and len(r.stderr.splitlines()) == 1
    env = {**cdc.env, "JAVA_HOME": str(tmp_path / "no-java")}
    r = subprocess.run(
        [sys.executable, "-m", "loadgen", "cdc", "capture", "--out", str(tmp_path / "e.jsonl")],
        env=env, cwd=tmp_path, capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert r.returncode == 3, r.stderr
    assert "holds no Java runtime" in r.stderr and len(r.stderr.splitlines()) == 1
    assert os.path.exists(tmp_path / "e.jsonl") is False


def test_ctrl_c_while_a_background_capture_starts_leaves_nothing_running(cdc: CdcEnv) -> None:
    out = cdc.cwd / "interrupted.jsonl"
    pid_file = out.with_name("interrupted.jsonl.pid")
    parent = subprocess.Popen(
        [sys.executable, "-m", "loadgen", "cdc", "capture", "--out", str(out), "--background"],
        env=cdc.env, cwd=cdc.cwd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )  # fmt: skip
    try:
        deadline = time.monotonic() + 60
        while not pid_file.exists():
            assert parent.poll() is None and time.monotonic() < deadline, parent.communicate()
            time.sleep(0.05)
        child = int(pid_file.read_text())
        parent.send_signal(signal.SIGINT)
        stdout, stderr = parent.communicate(timeout=90)
    finally:
        if parent.poll() is None:
            parent.kill()
            parent.wait()
    assert parent.returncode == 0, stderr
    assert "stopped before it streamed" in stdout and "Traceback" not in stderr
    assert not Path(f"/proc/{child}").exists() or b") Z" in Path(f"/proc/{child}/stat").read_bytes()
    summary = orjson.loads(out.with_name("interrupted.jsonl.status.json").read_bytes())
    assert summary["stop_reason"] == "signal SIGTERM" and "error" not in summary
