"""Coordinator with scripted fake workers (real spawned processes and pipes, no database)."""

from __future__ import annotations

import dataclasses
import os
import signal
import time
from pathlib import Path
from typing import Any

import numpy as np
import psycopg
import pytest

from loadgen.errors import RunAbortedError
from loadgen.ledger.changes import RowChange
from loadgen.stream.coordinator import RunSpec, run
from loadgen.stream.messages import Heartbeat, StatsDelta, WorkerDone, WorkerFailed, WorkerReady
from loadgen.stream.stats import IntervalStats
from loadgen.stream.summary import StreamAbortedError
from loadgen.stream.worker import WorkerSpec

NUM_DELTAS = 3
OPS_PER_DELTA = 4


def _spec(num_workers: int = 2, max_ops: int | None = 24) -> RunSpec:
    return RunSpec(
        dsn="",
        num_workers=num_workers,
        rate_per_s=None,
        is_paced=False,
        arrivals="token-bucket",
        burst=None,
        duration_s=None,
        max_ops=max_ops,
        batch_size=5,
        mix={"insert_consulta": 1.0},
        seed=1,
        report_interval_s=0.1,
        interval_s=2.0,
        max_jitter_ms=400,
    )


def _delta(spec: WorkerSpec, seq: int) -> StatsDelta:
    stats = IntervalStats()
    names = ["insert_consulta"] * OPS_PER_DELTA
    changes = [RowChange("consultas", "c", i, {}, "insert_consulta") for i in range(4)]
    stats.record_commit(names, changes, [0, 0, 0, 0], 1_000_000, 2_000_000 * (spec.worker_id + 1))
    return StatsDelta(spec.worker_id, seq, 0, 1, stats)


def _ready_and_started(spec: WorkerSpec, channel: Any, start_event: Any) -> None:
    channel.send(WorkerReady(spec.worker_id, os.getpid(), 0))
    assert start_event.wait(30)


def _wait_until_started(start_event: Any, stop: Any) -> None:
    while not start_event.wait(0.05):
        if stop.is_set():
            return


def good_worker(spec: WorkerSpec, channel: Any, stop: Any, start: Any, start_at: Any) -> None:
    _ready_and_started(spec, channel, start)
    for seq in range(NUM_DELTAS):
        channel.send(_delta(spec, seq))
        time.sleep(0.05)
    channel.send(WorkerDone(spec.worker_id, "max_ops", NUM_DELTAS * OPS_PER_DELTA))


def crashing_worker(spec: WorkerSpec, channel: Any, stop: Any, start: Any, start_at: Any) -> None:
    _ready_and_started(spec, channel, start)
    if spec.worker_id == 1:
        channel.send(_delta(spec, 0))
        time.sleep(0.3)
        os._exit(3)
    while not stop.wait(0.05):
        pass
    channel.send(WorkerDone(spec.worker_id, "stopped", 0))


def silent_worker(spec: WorkerSpec, channel: Any, stop: Any, start: Any, start_at: Any) -> None:
    _ready_and_started(spec, channel, start)
    if spec.worker_id == 0:
        time.sleep(60)  # alive, but says nothing
    while not stop.wait(0.05):
        channel.send(StatsDelta(spec.worker_id, 0, 0, 1, IntervalStats()))
    channel.send(WorkerDone(spec.worker_id, "stopped", 0))


def failing_worker(spec: WorkerSpec, channel: Any, stop: Any, start: Any, start_at: Any) -> None:
    _ready_and_started(spec, channel, start)
    error = psycopg.errors.UndefinedTable('relation "exames" does not exist')
    channel.send(WorkerFailed(spec.worker_id, error, "Traceback ..."))
    channel.close()
    os._exit(1)


def until_stopped_worker(
    spec: WorkerSpec, channel: Any, stop: Any, start: Any, start_at: Any
) -> None:
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    channel.send(WorkerReady(spec.worker_id, os.getpid(), 0))
    _wait_until_started(start, stop)
    seq = 0
    while not stop.wait(0.05):
        channel.send(_delta(spec, seq))
        seq += 1
    channel.send(_delta(spec, seq))
    channel.send(WorkerDone(spec.worker_id, "stopped", 0))


def test_merges_every_delta_from_every_worker() -> None:
    summary = run(_spec(), worker_target=good_worker, should_check_database=False)
    assert summary.total.num_ops == 2 * NUM_DELTAS * OPS_PER_DELTA
    assert summary.total.num_txns == 2 * NUM_DELTAS
    assert summary.total.latency_ns.count == 2 * NUM_DELTAS * OPS_PER_DELTA
    assert summary.total.latency_ns.max == 4_000_000  # worker 1's latency
    assert summary.stop_reason == "max_ops"
    data = summary.to_json()
    assert data["by_kind"] == {"insert": 24, "update": 0, "delete": 0}
    assert data["by_op"] == {"insert_consulta": 24}
    assert data["workers"] == 2


def test_dead_worker_aborts_the_run_naming_it() -> None:
    started = time.monotonic()
    with pytest.raises(StreamAbortedError, match=r"worker 1 died \(exit code 3\)") as info:
        run(_spec(), worker_target=crashing_worker, should_check_database=False)
    assert time.monotonic() - started < 15
    partial = info.value.summary
    assert partial.total.num_ops == OPS_PER_DELTA
    assert partial.stop_reason == "worker_failed" and partial.is_aborted


def test_silent_worker_aborts_the_run() -> None:
    with pytest.raises(RunAbortedError, match="worker 0 silent for more than 1.5 s"):
        run(
            _spec(),
            worker_target=silent_worker,
            should_check_database=False,
            silence_timeout_s=1.5,
            stop_timeout_s=1.0,
        )


def test_worker_failure_message_is_passed_on() -> None:
    with pytest.raises(RunAbortedError, match='UndefinedTable: relation "exames"'):
        run(_spec(num_workers=1), worker_target=failing_worker, should_check_database=False)


def signalling_worker(spec: WorkerSpec, channel: Any, stop: Any, start: Any, start_at: Any) -> None:
    """Worker 0 sends SIGTERM to the coordinator once it has sent three deltas."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    channel.send(WorkerReady(spec.worker_id, os.getpid(), 0))
    _wait_until_started(start, stop)
    seq = 0
    while not stop.wait(0.05):
        channel.send(_delta(spec, seq))
        seq += 1
        if spec.worker_id == 0 and seq == 3:  # CLOCK_MONOTONIC is one clock for all processes
            with open(os.environ["LG_TEST_SIGNALLED_AT"], "w") as f:
                f.write(repr(time.monotonic()))
            os.kill(os.getppid(), signal.SIGTERM)
    channel.send(_delta(spec, seq))
    channel.send(WorkerDone(spec.worker_id, "stopped", 0))


def test_sigterm_stops_gracefully_with_final_deltas(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    marker = tmp_path / "signalled_at"
    monkeypatch.setenv("LG_TEST_SIGNALLED_AT", str(marker))
    summary = run(_spec(max_ops=None), worker_target=signalling_worker, should_check_database=False)
    ended = time.monotonic()
    assert ended - float(marker.read_text()) < 5.0  # exits within 5 s of the signal
    assert summary.stop_reason == "signal" and summary.title == "stopped"
    assert summary.total.num_ops >= 3 * OPS_PER_DELTA  # every delta sent before the signal
    assert summary.total.num_ops % OPS_PER_DELTA == 0
    assert signal.getsignal(signal.SIGTERM) is signal.SIG_DFL  # handler restored


def test_worker_specs_split_rate_and_max_ops_exactly() -> None:
    spec = RunSpec(
        dsn="x",
        num_workers=3,
        rate_per_s=10.0,
        is_paced=False,
        arrivals="poisson",
        burst=None,
        duration_s=None,
        max_ops=100,
        batch_size=50,
        mix={"insert_consulta": 1.0},
        seed=7,
        report_interval_s=1.0,
        interval_s=2.0,
        max_jitter_ms=400,
    )
    shares = spec.worker_specs()
    assert [s.max_ops for s in shares] == [34, 33, 33]
    assert sum(s.rate_per_s or 0 for s in shares) == pytest.approx(10.0)
    assert {s.arrivals for s in shares} == {"poisson"}
    seeds = {int(s.seed_seq.generate_state(1)[0]) for s in shares}
    assert len(seeds) == 3


def busy_worker(spec: WorkerSpec, channel: Any, stop: Any, start: Any, start_at: Any) -> None:
    """Stuck in one long call for 2 s: only its watchdog thread speaks meanwhile."""
    _ready_and_started(spec, channel, start)
    t0 = time.monotonic_ns()
    while time.monotonic_ns() - t0 < 2_000_000_000:
        channel.send(Heartbeat(spec.worker_id, time.monotonic_ns() - t0))
        time.sleep(0.2)
    channel.send(_delta(spec, 0))
    channel.send(WorkerDone(spec.worker_id, "max_ops", OPS_PER_DELTA))


def test_heartbeats_keep_a_busy_worker_alive() -> None:
    summary = run(
        _spec(),
        worker_target=busy_worker,
        should_check_database=False,
        silence_timeout_s=0.8,
        stop_timeout_s=1.0,
    )
    assert summary.stop_reason == "max_ops"
    assert summary.total.num_ops == 2 * OPS_PER_DELTA


def test_worker_specs_carry_the_scenario_schedule() -> None:
    spec = dataclasses.replace(
        _spec(),
        profile="cdc-edge",
        scenarios=("pk-update", "types"),
        scenario_every_ops=100,
        scenario_max_gap_s=300.0,
    )
    shares = spec.worker_specs()
    assert {(s.scenarios, s.scenario_every_ops, s.scenario_max_gap_s) for s in shares} == {
        (("pk-update", "types"), 100, 300.0)
    }
    assert (
        "profile"
        not in run(
            _spec(num_workers=1), worker_target=good_worker, should_check_database=False
        ).to_json()
    )


def _run_slots(
    rate_per_s: float, num_workers: int, window_s: float, arrivals: str = "token-bucket"
) -> list[int]:
    """Slots (ns from the start) every worker of a run would take in the first ``window_s``."""
    from loadgen.stream.worker import build_arrivals

    spec = RunSpec(
        dsn="x",
        num_workers=num_workers,
        rate_per_s=rate_per_s,
        is_paced=False,
        arrivals=arrivals,
        burst=None,
        duration_s=None,
        max_ops=None,
        batch_size=1,
        mix={"insert_consulta": 1.0},
        seed=3,
        report_interval_s=1.0,
        interval_s=2.0,
        max_jitter_ms=400,
    )
    slots = []
    for ws in spec.worker_specs():
        schedule = build_arrivals(ws, 0, np.random.default_rng(0))
        while (slot := schedule.next_slot_ns(0)) < window_s * 1e9:  # a caller keeping up
            slots.append(slot)
    return sorted(slots)


@pytest.mark.parametrize("arrivals", ["token-bucket", "uniform"])
def test_workers_are_staggered_so_the_total_rate_holds_from_the_start(arrivals: str) -> None:
    assert len(_run_slots(1 / 3600, 4, 10.0, arrivals)) == 1  # 1/h: one op, not one per worker
    assert len(_run_slots(1 / 60, 2, 6.0, arrivals)) == 1
    slots = _run_slots(10.0, 4, 5.0, arrivals)  # interleaved: one slot every 100 ms
    assert np.diff(slots) == pytest.approx(np.full(len(slots) - 1, 1e8), abs=2)
    assert len(slots) == 50


def test_stream_command_restores_signal_handlers_after_bad_input() -> None:
    """In-process callers (tests, library users) must not inherit the run's stop handler."""
    from typer.testing import CliRunner

    from loadgen.cli import app

    before = signal.getsignal(signal.SIGTERM)
    result = CliRunner().invoke(app, ["stream", "--rate", "5/fortnight"])
    assert result.exit_code != 0
    assert signal.getsignal(signal.SIGTERM) is before
