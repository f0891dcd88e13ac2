"""Real Debezium's delivery guarantees through ``cdc verify --debezium``: a capture SIGKILLed
mid-stream and restarted redelivers (exit 0 at least once, redeliveries reported; exit 1
exactly once; ``cdc watch --debezium`` beside it reports them as they come), and an initial
snapshot taken while the load runs verifies (every row as of the snapshot read, later changes
streamed), while a row removed from the snapshot fails naming it.
"""

from __future__ import annotations

import re
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import orjson
import pytest

from loadgen.capture.sink import CapturePaths
from loadgen.ledger import read_ledger
from tests.fixtures.capture import event_keys
from tests.fixtures.dbz_capture import Capture
from tests.integration.test_cdc_watch import WatchProc
from tests.integration.test_debezium_live import (
    Live,
    Setup,
    _check,
    _failed,
    capture_for,
    dbz_dsn,  # noqa: F401 - the module-scoped fixture
    drop_live,
    make_live,
)

pytestmark = [pytest.mark.db, pytest.mark.java, pytest.mark.slow]


@pytest.fixture
def live(dbz_dsn: str, tmp_path: Path) -> Iterator[Live]:  # noqa: F811
    lv = make_live(dbz_dsn, tmp_path, Setup(scenarios=False))
    try:
        yield lv
    finally:
        drop_live(dbz_dsn, lv)


def _stream(live: Live, *args: str) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, "-m", "loadgen", "stream", "--ledger", f"{live.ledger}/", *args],
        env=live.env,
        cwd=live.cwd,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    )


def _end(proc: subprocess.Popen[str]) -> None:
    if proc.poll() is None:
        proc.kill()
    proc.communicate()


def _ledger_lines(live: Live) -> int:
    return sum(len(p.read_bytes().splitlines()) for p in live.ledger.glob("*.jsonl"))


def test_sigkill_and_restart_redelivers_and_loses_nothing(live: Live) -> None:
    # a 600 s offset flush interval: no periodic flush before the kill
    first = capture_for(live, settings=("offset.flush.interval.ms=600000",))
    second = capture_for(live)
    first.start()  # Debezium creates its slot: the load must come after
    stream = _stream(live, "--rate", "unlimited", "--workers", "1", "--max-ops", "1200",
                     "--batch-size", "3", "--no-progress")  # fmt: skip
    try:
        first.wait_lines(300)
        first.kill()
        # Debezium commits an offset before the kill despite the 600 s interval (at its first
        # batches): the restart resumes there, redelivering what the file holds past it
        expected = _past_offset(live)
        assert stream.wait(timeout=300) == 0
        second.start()
        second.stop()
    finally:
        _end(stream)
        first.close()
        second.close()
    code, report = live.verify()
    assert code == 0, {c["name"]: c["examples"][:2] for c in report["checks"] if not c["ok"]}
    redelivered = report["counts"]["redelivered"]
    assert redelivered >= expected, (redelivered, expected)
    r = live.loadgen("cdc", "verify", "--ledger", str(live.ledger), "--debezium", str(live.events))
    assert r.returncode == 0 and f"redelivered={redelivered:,}" in r.stdout
    code, exactly = live.verify("--delivery", "exactly-once")
    if redelivered:
        assert code == 1 and _failed(exactly) == {"duplicated": redelivered}
    else:
        assert code == 0, _failed(exactly)


def _past_offset(live: Live) -> int:
    """Events in the dump with an LSN past the committed Debezium offset (all without one)."""
    offsets = CapturePaths(live.events).offsets
    found = re.search(rb'"lsn":(\d+)', offsets.read_bytes()) if offsets.exists() else None
    committed = int(found.group(1)) if found else -1
    return sum(1 for doc in _docs(live) if doc and int(doc["source"]["lsn"]) > committed)


def _docs(live: Live) -> list[Any]:
    return [orjson.loads(line.split(b"\t")[-1]) for line in live.events.read_bytes().splitlines()]


def test_snapshot_under_load_verifies_and_a_lost_row_is_named(live: Live) -> None:
    cap = capture_for(live, snapshot="initial")
    stream = _stream(live, "--rate", "60/s", "--duration", "10", "--workers", "2",
                     "--no-progress")  # fmt: skip
    try:
        deadline = time.monotonic() + 60
        while _ledger_lines(live) < 30:  # the load runs before and during the snapshot
            assert time.monotonic() < deadline and stream.poll() is None
            time.sleep(0.05)
        cap.start()
        assert stream.wait(timeout=120) == 0
        cap.stop()
    finally:
        _end(stream)
        cap.close()
    code, report = live.verify()
    assert code == 0, {c["name"]: c["examples"][:2] for c in report["checks"] if not c["ok"]}
    counts = report["counts"]
    assert counts["snapshot_reads"] > 0 and counts["snapshot_tables"] == 7
    assert counts["ledger_changes_before_snapshot"] > 0  # committed before the snapshot point
    assert counts["matched"] + counts["ledger_changes_before_snapshot"] == counts["ledger_changes"]

    docs = _docs(live)
    touched = {(e.table, e.pk) for e in read_ledger(str(live.ledger)).entries}
    reads = [i for i, d in enumerate(docs) if d and d.get("op") == "r"]
    changed = next(
        i for i in reads if (docs[i]["source"]["table"], docs[i]["after"]["id"]) in touched
    )
    untouched = next(
        i for i in reads if (docs[i]["source"]["table"], docs[i]["after"]["id"]) not in touched
    )
    for i, check in ((changed, "snapshot"), (untouched, "final_state")):
        table, pk = docs[i]["source"]["table"], docs[i]["after"]["id"]
        edited = live.cwd / f"without_{table}_{pk}.jsonl"
        edited.write_bytes(b"".join(orjson.dumps(d) + b"\n" for j, d in enumerate(docs) if j != i))
        code, report = live.verify(events=edited)
        assert code == 1 and check in _failed(report), (table, pk, _failed(report))
        named = [
            e for e in _check(report, check)["examples"] if (e["table"], e["pk"]) == (table, pk)
        ]
        assert named, (check, table, pk, _check(report, check)["examples"][:3])


def _kill_after_a_flush(cap: Capture, offsets: Path, *, new_lines: int, within_s: float) -> int:
    """SIGKILL ``cap`` while changes flow: ``new_lines`` lines after an offset flush, and less
    than ``within_s`` after it (before the next one), so the restart must redeliver them.
    Returns the file's line count at the kill."""
    deadline = time.monotonic() + 90
    seen, flushed_at, lines_then = 0, 0.0, 0
    while True:
        assert time.monotonic() < deadline, "no offset flush followed by new lines"
        mtime = offsets.stat().st_mtime_ns if offsets.exists() else 0
        if mtime != seen:
            seen, flushed_at, lines_then = mtime, time.monotonic(), len(cap.lines())
        elif (
            seen
            and time.monotonic() - flushed_at < within_s
            and len(cap.lines()) >= lines_then + new_lines
        ):
            cap.kill()
            return len(cap.lines())
        time.sleep(0.02)


def test_watch_beside_a_capture_killed_and_restarted(live: Live) -> None:
    """``cdc watch --debezium`` tails the file of a real capture that is SIGKILLed mid-write
    while the load runs and restarted on the same file: the redeliveries show in the interval
    records while the load still runs, nothing is reported missing, the torn last line the
    restart cuts off is no rotation, and the verdict is exit 0 at least once, with the
    redeliveries the file holds (as `cdc verify --debezium` counts them)."""
    # offsets flushed every 3 s: the kill lands between two flushes, after new lines
    first = capture_for(live, settings=("offset.flush.interval.ms=3000",))
    second = capture_for(live)
    first.start()
    w = WatchProc(live.env, live.cwd, "--ledger", f"{live.ledger}/", "--debezium",
                  str(live.events), "--interval", "0.5", "--grace", "30",
                  "--until-caught-up")  # fmt: skip
    stream = _stream(live, "--rate", "100/s", "--duration", "90", "--workers", "1",
                     "--no-progress")  # fmt: skip
    try:
        offsets = CapturePaths(live.events).offsets
        killed_at = _kill_after_a_flush(first, offsets, new_lines=30, within_s=1.5)
        down = time.monotonic()
        with open(live.events, "ab") as f:  # what a kill inside write() leaves: half a line
            f.write(next(x for x in reversed(first.lines()) if len(x) > 80)[:40])
        second.start()  # cuts the torn line, resumes from the offsets flushed, appends
        up = time.monotonic()
        w.wait_for(lambda: any(r["redelivered"] for r in w.of("interval")), timeout_s=60)
        seen = len(w.of("interval"))
        w.wait_for(lambda: len(w.of("interval")) > seen + 2)  # new changes flow again
        assert stream.poll() is None, "the load ended before the restart was seen"
        stream.send_signal(signal.SIGINT)
        assert stream.wait(timeout=60) == 0
        second.stop()  # every change committed is in the file
        code, final = w.finish(timeout_s=60)  # --until-caught-up: nothing held, nothing pending
    finally:
        _end(stream)
        first.close()
        second.close()
        w.kill()
    intervals = w.of("interval")
    assert code == 0 and final["ok"], _failed(final)
    assert "stopped: caught up" in final["notes"]
    counts = final["counts"]
    assert w.of("missing") == [] and counts["missing_reported_live"] == 0
    assert all(r["missing_now"] == 0 and r["duplicated"] == 0 for r in intervals)
    assert all(r["file_restarts"] == 0 for r in intervals) and counts["file_restarts"] == 0
    assert counts["torn_lines_cut"] == 1 and counts["source_lines"] == 0
    # reported at the time: in the intervals of the run, before the load stopped
    assert (
        intervals[seen - 1]["redelivered"] > 0
        and intervals[seen - 1]["matched"] < counts["matched"]
    )
    keys = event_keys(second.lines())
    assert counts["redelivered"] == len(keys) - len(set(keys)) > 0  # what the file holds again
    assert len(second.lines()) > killed_at
    code_v, batch = live.verify()
    assert (
        code_v == 0 and counts["matched"] == batch["counts"]["matched"] == counts["ledger_changes"]
    )
    assert counts["redelivered"] == batch["counts"]["redelivered"]
    # the changes committed while the capture was down waited for it: a lag spike
    assert final["lag_ms"]["all"]["max"] >= 500 * (up - down)
