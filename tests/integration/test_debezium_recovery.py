"""Real Debezium's delivery guarantees through ``cdc verify --debezium``: a capture SIGKILLed
mid-stream and restarted redelivers (exit 0 at least once, redeliveries reported; exit 1
exactly once), and an initial snapshot taken while the load runs verifies (every row as of the
snapshot read, later changes streamed), while a row removed from the snapshot fails naming it.
"""

from __future__ import annotations

import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import orjson
import pytest

from loadgen.ledger import read_ledger
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
    # no offset is committed before the kill: the restart resumes from the slot's start
    first = capture_for(live, settings=("offset.flush.interval.ms=600000",))
    second = capture_for(live)
    first.start()  # Debezium creates its slot: the load must come after
    stream = _stream(live, "--rate", "unlimited", "--workers", "1", "--max-ops", "1200",
                     "--batch-size", "3", "--no-progress")  # fmt: skip
    try:
        first.wait_lines(300)
        first.kill()
        assert stream.wait(timeout=300) == 0
        second.start()
        second.stop()
    finally:
        _end(stream)
        first.close()
        second.close()
    code, report = live.verify()
    assert code == 0, {c["name"]: c["examples"][:2] for c in report["checks"] if not c["ok"]}
    assert report["counts"]["redelivered"] >= 300
    r = live.loadgen("cdc", "verify", "--ledger", str(live.ledger), "--debezium", str(live.events))
    assert r.returncode == 0 and f"redelivered={report['counts']['redelivered']:,}" in r.stdout
    code, exactly = live.verify("--delivery", "exactly-once")
    assert code == 1 and _failed(exactly) == {"duplicated": report["counts"]["redelivered"]}


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
