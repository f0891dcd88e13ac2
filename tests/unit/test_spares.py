"""Spare workers (``loadgen.stream.spares``, issue 11): spawned before the run is planned, they
never outlive the coordinator, whether it releases them, signals them or dies."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time

from loadgen.stream.spares import Spares


def _gone(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return True
    # a zombie of ours counts as gone once reaped; others' children are reaped by init
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().split(")")[-1].split()[0] == "Z"
    except FileNotFoundError:
        return True


def _wait_gone(pids: list[int], timeout_s: float) -> list[int]:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        left = [pid for pid in pids if not _gone(pid)]
        if not left:
            return []
        time.sleep(0.05)
    return [pid for pid in pids if not _gone(pid)]


def test_closed_spares_are_reaped_at_once() -> None:
    spares = Spares().start(2)
    processes = [s.process for s in spares.waiting]
    assert all(p.is_alive() for p in processes)
    started = time.monotonic()
    spares.close(timeout_s=5.0)  # they hold nothing yet: killed and reaped at once
    assert not any(p.is_alive() for p in processes)
    assert all(p.exitcode in (0, -signal.SIGKILL) for p in processes)
    assert time.monotonic() - started < 2.0
    assert not spares.waiting


def test_take_binds_at_most_the_spares_there_are() -> None:
    spares = Spares().start(1)
    try:
        assert spares.take(10) is not None
        assert spares.take(10) is None  # none left: the fleet spawns the rest itself
    finally:
        for spare in spares.bound:
            spare.spec_writer.close()  # no spec, ever: EOF, and it exits by itself
            spare.process.join(30)
        spares.close()
    assert [s.process.exitcode for s in spares.bound] == [0]


def test_a_tally_too_big_for_a_spare_takes_none() -> None:
    spares = Spares().start(1)
    try:
        assert spares.take(10**9) is None
        assert len(spares.waiting) == 1
    finally:
        spares.close()


def test_spares_die_with_a_sigkilled_coordinator() -> None:
    """The coordinator killed while its spares import or wait: the kernel's parent-death
    SIGTERM (or EOF on the spec pipe) ends them; none is left running."""
    code = (
        "import os, signal, sys, time\n"
        "from loadgen.stream.spares import Spares\n"
        "spares = Spares().start(2)\n"
        "print(' '.join(str(s.process.pid) for s in spares.waiting), flush=True)\n"
        "time.sleep(float(sys.argv[1]))\n"
        "os.kill(os.getpid(), signal.SIGKILL)\n"
    )
    for delay_s in ("0.05", "0.8"):  # while importing, and (likely) while waiting
        proc = subprocess.run(
            [sys.executable, "-c", code, delay_s], capture_output=True, text=True, timeout=60
        )
        assert proc.returncode == -signal.SIGKILL, proc.stderr
        pids = [int(p) for p in proc.stdout.split()]
        assert len(pids) == 2
        assert _wait_gone(pids, 15.0) == [], f"spares {pids} outlived the coordinator"
