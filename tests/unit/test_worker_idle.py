"""A worker with no share of ``--max-ops`` (issue 11: the run does not wait for its pools)
neither connects nor loads: real worker processes against a port nothing listens on."""

from __future__ import annotations

import dataclasses
import time
from pathlib import Path

from loadgen.stream.coordinator import run
from tests.unit.test_coordinator import _spec

NOWHERE = "postgresql://postgres@127.0.0.1:1/nothing?connect_timeout=1"


def test_workers_without_a_share_finish_without_a_connection(tmp_path: Path) -> None:
    spec = dataclasses.replace(
        _spec(num_workers=3, max_ops=0), dsn=NOWHERE, connect_retry_s=5.0, ledger=str(tmp_path)
    )
    started = time.monotonic()
    summary = run(spec, should_check_database=False)
    assert not summary.is_aborted  # a connection attempt would fail the worker
    assert summary.stop_reason == "max_ops"
    assert summary.total.num_ops == 0
    assert time.monotonic() - started < 30
    assert len(list(tmp_path.glob("part-*.jsonl"))) == 3  # each still keeps its ledger part
