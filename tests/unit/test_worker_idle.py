"""A worker with no share of ``--max-ops`` (issue 11: the run does not wait for it) is never
spawned: no connection, no pools, no ledger part; the run ends as its share did ("max_ops").
Real coordinator runs against a port nothing listens on: a spawned worker would fail to connect."""

from __future__ import annotations

import dataclasses
import multiprocessing
from pathlib import Path

from loadgen.stream.coordinator import run
from tests.unit.test_coordinator import _spec

NOWHERE = "postgresql://postgres@127.0.0.1:1/nothing?connect_timeout=1"


def test_workers_without_a_share_are_not_spawned(tmp_path: Path) -> None:
    spec = dataclasses.replace(
        _spec(num_workers=3, max_ops=0), dsn=NOWHERE, connect_retry_s=5.0, ledger=str(tmp_path)
    )
    summary = run(spec, should_check_database=False)
    assert not summary.is_aborted  # a connection attempt would have failed a worker
    assert summary.stop_reason == "max_ops"
    assert summary.total.num_ops == 0
    assert summary.num_workers == 3  # the plan is unchanged: three workers, none with work
    assert list(tmp_path.glob("part-*.jsonl")) == []  # nothing ran, so nothing is recorded
    assert multiprocessing.active_children() == []
