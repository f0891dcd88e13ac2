"""`cdc watch --debezium`: tailing a real Debezium event file while it is written, no database.

The committed sample ``sigkill-restart`` (a capture SIGKILLed mid-run and restarted on the same
file: 489 redelivered events) is written to the tailed file in pieces by a thread, with a torn
line completed later and, in the middle, the file replaced by a new one (rotation) that starts
with the last 50 lines again. The live verdict must equal `cdc verify`'s on the whole file.
"""

from __future__ import annotations

import os
import threading
import time
from pathlib import Path
from typing import Any

import pytest

from loadgen.cdc.watch_core import WatchOptions
from loadgen.cdc.watch_debezium import DebeziumWatch
from loadgen.cdc.watch_metrics import WatchMetrics
from tests.fixtures.capture import event_keys
from tests.fixtures.debezium_reader import SampleCatalog, failed, verify_sample
from tests.fixtures.debezium_samples import Sample


def _writer(path: Path, lines: list[bytes], done: threading.Event) -> None:
    half = len(lines) // 2
    with open(path, "ab") as f:
        for i in range(0, half, 100):
            f.write(b"".join(x + b"\n" for x in lines[i : min(i + 100, half)]))
            f.flush()
            time.sleep(0.05)
        f.write(lines[half][:20])  # a torn line: the writer is mid-line
        f.flush()
        time.sleep(0.4)
        f.write(lines[half][20:] + b"\n")
    time.sleep(0.4)
    rotated = path.with_suffix(".new")
    rotated.write_bytes(b"".join(x + b"\n" for x in lines[half + 1 - 50 :]))  # 50 again
    os.replace(rotated, path)
    done.set()


def test_tail_with_torn_line_and_rotation_equals_verify(tmp_path: Path) -> None:
    sample = Sample("sigkill-restart")
    lines = [x for x in sample.event_lines() if x.strip()]
    ledger = sample.ledger_dir(tmp_path)
    events = tmp_path / "events.jsonl"
    done = threading.Event()
    records: list[dict[str, Any]] = []
    stop_at: list[float] = []

    def stop() -> str | None:
        if done.is_set() and not stop_at:
            stop_at.append(time.monotonic() + 1.0)  # a second to read the last piece
        return "test" if stop_at and time.monotonic() > stop_at[0] else None

    opts = WatchOptions(str(ledger), delivery="at-least-once", grace_s=30, interval_s=0.2)
    ctx = sample.context
    w = DebeziumWatch(
        None, opts, str(events), records.append, stop,
        catalog=SampleCatalog(ctx), schema=ctx["schema"], table_of=ctx["partition_roots"],
    )  # fmt: skip
    w.metrics = WatchMetrics(0)  # not served: what --metrics-port would show
    writer = threading.Thread(target=_writer, args=(events, lines, done))
    writer.start()
    try:
        result = w.run()
    finally:
        writer.join()
    report = result.report.to_dict()
    batch = verify_sample(sample, tmp_path)  # the whole original file, after the fact
    assert failed(batch) == {} and report["ok"], {c["name"]: c["count"] for c in report["checks"]}
    assert report["counts"]["matched"] == batch.counts["matched"] == batch.counts["ledger_changes"]
    # the sample's own redeliveries, plus the 50 lines the rotated file repeated
    assert report["counts"]["redelivered"] == batch.counts["redelivered"] + 50
    assert report["counts"]["file_restarts"] == 1
    assert report["counts"]["source_lines"] == 0  # the torn line was read once completed
    intervals = [r for r in records if r["type"] == "interval"]
    assert len(intervals) >= 3
    # a create is held until its table's next event (a split key change pairs up): the last
    # one of each table is handed over at the end
    assert 0 <= report["counts"]["matched"] - intervals[-1]["matched"] <= 7
    assert result.extra["connector_ms"]["count"] == report["counts"]["captured_changes"]
    # the sample was captured long ago: lag is the age of its commits, and it is reported
    assert result.lag_ms["all"]["count"] == report["counts"]["captured_changes"]
    assert result.lag_ms["all"]["p50"] > 1_000
    # /metrics' last snapshot is the report's (redeliveries are not failures; no reconnects)
    snap = w.metrics.current
    counts = report["counts"]
    assert snap.counters["matched"] == counts["matched"]
    assert snap.counters["redelivered"] == counts["redelivered"] > 500
    assert snap.checks["duplicated"] == 0 and snap.reconnects is None
    assert sum(int(h.sum()) for h, _ in snap.lag.values()) == result.lag_ms["all"]["count"]


def _watch(
    tmp_path: Path, sample: Sample, *, grace_s: float = 30, quiet_s: float = 2.0, again: int = 0
) -> tuple[DebeziumWatch, Path, list[dict[str, Any]], dict[str, Any]]:
    """A watch of ``events.jsonl`` (not written yet) against the sample's ledger, stopped
    once it has matched every change `cdc verify` matches on the sample and counted its
    redeliveries plus ``again`` (or after 10 s); its records, and verify's counts."""
    events = tmp_path / "events.jsonl"
    records: list[dict[str, Any]] = []
    batch = verify_sample(sample, tmp_path).counts
    stop = _stop_when(records, batch["matched"], batch["redelivered"] + again)
    opts = WatchOptions(
        str(sample.ledger_dir(tmp_path)), delivery="at-least-once", grace_s=grace_s,
        interval_s=0.1,
    )  # fmt: skip
    ctx = sample.context
    w = DebeziumWatch(
        None, opts, str(events), records.append, stop,
        catalog=SampleCatalog(ctx), schema=ctx["schema"], table_of=ctx["partition_roots"],
    )  # fmt: skip
    w.feeder.quiet_s = quiet_s
    return w, events, records, batch


def _stop_when(
    records: list[dict[str, Any]], matched: int, redelivered: int, timeout_s: float = 10
) -> Any:
    """A stop callback: once an interval record shows ``matched`` and ``redelivered`` (or
    after the timeout)."""
    deadline = time.monotonic() + timeout_s

    def stop() -> str | None:
        last = [r for r in records[-1:] if r["type"] == "interval"]
        if last and (
            last[0]["matched"],
            last[0]["pending"],
            last[0]["redelivered"] >= redelivered,
        ) == (matched, 0, True):
            return "all matched"
        return "timeout" if time.monotonic() > deadline else None

    return stop


@pytest.mark.parametrize("gap_s", [0.5, 0.0], ids=["cut-then-append", "cut-and-append"])
def test_a_torn_line_cut_by_a_restarted_capture_is_no_rotation(
    tmp_path: Path, gap_s: float
) -> None:
    """What `cdc capture` does when it restarts after dying mid-write: it cuts the torn last
    line, then appends from its last committed offsets (here: 50 lines again). The watch reads
    on from the last complete line (either seen apart, or in one poll): no file restart, no
    bad line, the 50 counted as redelivered."""
    sample = Sample("sigkill-restart")
    lines = [x for x in sample.event_lines() if x.strip()]
    half = len(lines) // 2
    w, events, records, batch = _watch(tmp_path, sample, again=50)

    def writer() -> None:
        complete = b"".join(x + b"\n" for x in lines[:half])
        events.write_bytes(complete + lines[half][:30])  # killed mid-write
        time.sleep(0.5)
        with open(events, "rb+") as f:
            f.truncate(len(complete))  # the restart's repair
        time.sleep(gap_s)
        with open(events, "ab") as f:
            f.write(b"".join(x + b"\n" for x in lines[half - 50 :]))

    t = threading.Thread(target=writer)
    t.start()
    try:
        result = w.run()
    finally:
        t.join()
    report = result.report.to_dict()
    counts = report["counts"]
    assert "stopped: all matched" in report["notes"] and report["ok"], counts
    assert (counts["file_restarts"], counts["torn_lines_cut"], counts["source_lines"]) == (0, 1, 0)
    assert counts["matched"] == batch["matched"]
    assert counts["redelivered"] == batch["redelivered"] + 50


def test_capture_down_longer_than_grace_reports_missing_then_late(tmp_path: Path) -> None:
    """The capture stops writing for longer than --grace: what the ledger committed meanwhile
    is reported missing as the grace passes (records and intervals), then counted late once
    the capture writes again, and the verdict holds. The last create of each table is handed
    over once the file is quiet (``quiet_s``), before the grace: never a false missing."""
    sample = Sample("sigkill-restart")
    lines = [x for x in sample.event_lines() if x.strip()]
    half = len(lines) // 2
    w, events, records, batch = _watch(tmp_path, sample, grace_s=0.6, quiet_s=0.2)

    def writer() -> None:
        events.write_bytes(b"".join(x + b"\n" for x in lines[:half]))
        time.sleep(1.5)  # down: 2.5 x the grace
        with open(events, "ab") as f:
            f.write(b"".join(x + b"\n" for x in lines[half:]))

    t = threading.Thread(target=writer)
    t.start()
    try:
        result = w.run()
    finally:
        t.join()
    report = result.report.to_dict()
    counts = report["counts"]
    assert "stopped: all matched" in report["notes"] and report["ok"], counts
    assert counts["matched"] == batch["matched"]
    missing = [r for r in records if r["type"] == "missing"]
    intervals = [r for r in records if r["type"] == "interval"]
    assert missing and counts["missing_reported_live"] == len(missing)
    assert counts["late_matches"] == len(missing)  # each one captured later: none lost
    assert any(r["missing_now"] > 0 for r in intervals)  # said while the capture was down
    assert intervals[-1]["missing_now"] == 0 and intervals[-1]["late"] == len(missing)
    # only changes of the second half went missing: the first half's last creates were
    # handed over when the file went quiet
    second = {(k[0], k[2]) for k in event_keys(lines[half:])}
    assert all((m["txid"] % 2**32, m["pk"]) in second for m in missing)
