"""Bounded start and stop of the coordinator, with scripted fake workers (real spawned
processes, real pipes and signals, no database): many workers requested, a worker that ignores
every stop, errors that do not pickle, a report interval far below a millisecond."""

from __future__ import annotations

import dataclasses
import os
import signal
import threading
import time
from pathlib import Path
from typing import Any

import pytest

from loadgen.errors import RunAbortedError
from loadgen.stream.coordinator import Coordinator
from loadgen.stream.messages import StatsDelta, WorkerDone, WorkerFailed, WorkerReady
from loadgen.stream.stats import IntervalStats
from loadgen.stream.summary import StreamAbortedError
from loadgen.stream.worker_spec import WorkerSpec
from tests.unit.test_coordinator import _delta, _spec, good_worker


def _children() -> list[int]:
    """Spawned children of this process that are still running (not zombies)."""
    me = os.getpid()
    pids = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text().rsplit(")", 1)[1].split()
            cmdline = (entry / "cmdline").read_bytes()
        except OSError:
            continue
        if int(stat[1]) == me and stat[0] != "Z" and b"spawn_main" in cmdline:
            pids.append(int(entry.name))
    return pids


def _wait_for(predicate: Any, timeout_s: float) -> bool:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(0.02)
    return False


def ready_until_stopped(spec: WorkerSpec, channel: Any, stop: Any, start: Any, at: Any) -> None:
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    channel.send(WorkerReady(spec.worker_id, os.getpid(), 0))
    while not start.wait(0.05):
        if stop.is_set():
            break
    channel.send(WorkerDone(spec.worker_id, "stopped", 0))


def test_a_thousand_workers_start_in_waves_and_stop_promptly_on_sigterm() -> None:
    """At most ``max_starting`` are ever in start-up; SIGTERM during the waves stops the run
    within 5 s, having started a small fraction, and leaves no process behind."""
    coordinator = Coordinator(
        _spec(num_workers=1000, max_ops=None),
        worker_target=ready_until_stopped,
        should_check_database=False,
        max_starting=4,
    )
    most_starting = 0
    signalled_at: list[float] = []

    def watch() -> None:  # SIGTERM once 8 workers run; meanwhile sample the start-up count
        nonlocal most_starting
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline and not signalled_at:
            most_starting = max(most_starting, coordinator.fleet.num_starting())
            if len(_children()) >= 8:
                signalled_at.append(time.monotonic())
                os.kill(os.getpid(), signal.SIGTERM)
            time.sleep(0.01)

    watcher = threading.Thread(target=watch, daemon=True)
    watcher.start()
    summary = coordinator.run()
    ended = time.monotonic()
    watcher.join(5)
    assert signalled_at, "the workers never started"
    assert ended - signalled_at[0] < 5.0
    assert summary.stop_reason == "signal"
    started = sum(h.is_started for h in coordinator.fleet.handles.values())
    assert 8 <= started < 100
    assert most_starting <= 4
    assert _wait_for(lambda: not _children(), 2.0), _children()


def deaf_worker(spec: WorkerSpec, channel: Any, stop: Any, start: Any, at: Any) -> None:
    """Ignores SIGTERM and the stop event; reports forever (alive, never done)."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
    channel.send(WorkerReady(spec.worker_id, os.getpid(), 0))
    start.wait(30)
    seq = 0
    while True:
        channel.send(_delta(spec, seq))
        seq += 1
        time.sleep(0.05)


def _sigterm_once(condition: Any) -> list[float]:
    """Send this process SIGTERM once ``condition()`` holds (polled); when it was sent."""
    sent: list[float] = []

    def watch() -> None:
        if _wait_for(condition, 60):
            sent.append(time.monotonic())
            os.kill(os.getpid(), signal.SIGTERM)

    threading.Thread(target=watch, daemon=True).start()
    return sent


def test_a_worker_that_ignores_every_stop_is_killed_within_the_bound() -> None:
    coordinator = Coordinator(
        _spec(num_workers=2, max_ops=None),
        worker_target=deaf_worker,
        should_check_database=False,
        stop_timeout_s=1.0,
    )
    sent = _sigterm_once(lambda: coordinator.totals.total.num_ops > 0)  # mid-run
    summary = coordinator.run()
    assert sent and time.monotonic() - sent[0] < 1.0 + 2.0 + 0.5  # stop timeout, kill, slack
    assert summary.stop_reason == "signal"
    assert summary.total.num_ops > 0  # what arrived before the stop is counted
    assert _wait_for(lambda: not _children(), 2.0)


def test_past_the_duration_a_worker_that_never_finishes_aborts_the_run() -> None:
    with pytest.raises(StreamAbortedError, match="did not finish within 1 s of the end") as info:
        Coordinator(
            dataclasses.replace(_spec(num_workers=1, max_ops=None), duration_s=0.5),
            worker_target=deaf_worker,
            should_check_database=False,
            stop_timeout_s=1.0,
        ).run()
    assert info.value.summary.stop_reason == "worker_failed"


class _Unpicklable(Exception):
    def __reduce__(self) -> Any:
        raise TypeError("no")


def failing_with_an_unpicklable_error(
    spec: WorkerSpec, channel: Any, stop: Any, start: Any, at: Any
) -> None:
    from loadgen.stream.messages import picklable_error

    channel.send(WorkerReady(spec.worker_id, os.getpid(), 0))
    start.wait(30)
    error = picklable_error(_Unpicklable("the lock file vanished"))
    channel.send(WorkerFailed(spec.worker_id, error, ""))
    channel.close()
    os._exit(1)


def test_an_error_that_cannot_be_pickled_still_names_its_class() -> None:
    with pytest.raises(RunAbortedError, match="_Unpicklable: the lock file vanished"):
        Coordinator(
            _spec(num_workers=1), worker_target=failing_with_an_unpicklable_error,
            should_check_database=False,
        ).run()  # fmt: skip


@pytest.mark.parametrize("interval_s", [1e-9, 1e-10])
def test_a_report_interval_below_a_nanosecond_neither_hangs_nor_spins(interval_s: float) -> None:
    spec = dataclasses.replace(_spec(), report_interval_s=interval_s)
    started = time.monotonic()
    summary = Coordinator(spec, worker_target=good_worker, should_check_database=False).run()
    assert time.monotonic() - started < 10
    assert summary.total.num_ops == 24 and summary.stop_reason == "max_ops"


def test_stats_delta_from_another_worker_id_is_ignored() -> None:
    """A message must come from the worker whose pipe it arrived on."""
    coordinator = Coordinator(_spec(num_workers=1), should_check_database=False)
    handle = coordinator.fleet.add(_spec(num_workers=1).worker_specs()[0])
    stats = IntervalStats()
    stats.num_txns = 5
    coordinator._handle(handle, StatsDelta(7, 0, 0, 1, stats), 1)
    assert coordinator.totals.total.num_txns == 0
    coordinator._handle(handle, StatsDelta(0, 0, 0, 1, stats), 1)
    assert coordinator.totals.total.num_txns == 5
