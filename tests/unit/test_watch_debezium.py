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

from loadgen.cdc.watch_core import WatchOptions
from loadgen.cdc.watch_debezium import DebeziumWatch
from loadgen.cdc.watch_metrics import WatchMetrics
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
