"""A capture in the background: start it and wait until it streams; stop it and wait.

``start`` runs ``python -m loadgen ... cdc capture`` (without ``--background``) in a new
session, its output appended to ``<out>.log``, and returns once the child's status file says
it streams (or the child failed: its one-line error and exit code are passed on). ``stop``
signals the pid in ``<out>.pid`` (SIGTERM, or SIGUSR1 to stop once caught up) and waits for the
process to end; the summary it wrote is the answer.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from typing import Any

from loadgen.capture.runner import running_pid
from loadgen.capture.sink import CapturePaths, read_json
from loadgen.errors import (
    EXIT_ABORTED,
    ConfigError,
    LoadgenError,
    RunAbortedError,
)
from loadgen.processes import is_alive

READY_PHASES = ("streaming", "catching up", "stopped")
POLL_S = 0.1


class ChildFailed(LoadgenError):
    """The background capture exited during start-up; carries its own exit code."""

    def __init__(self, message: str, exit_code: int) -> None:
        super().__init__(message)
        self.exit_code = exit_code


def start(
    paths: CapturePaths,
    child_args: list[str],
    env: dict[str, str],
    timeout_s: float,
    should_stop: Callable[[], bool] = lambda: False,
) -> dict[str, Any]:
    """Start the capture in the background; return its status once it streams.

    When ``should_stop()`` turns true first (Ctrl-C while waiting), the child is stopped and
    waited for, and the status returned has ``phase`` ``interrupted``.

    Raises:
        ChildFailed: the child exited first (its error line and exit code).
        RunAbortedError: not streaming within ``timeout_s`` (the child is stopped; exit 4).
    """
    other = running_pid(paths.pid)
    if other is not None:
        raise ConfigError(
            f"a capture (pid {other}) is already writing {str(paths.out)!r};"
            " stop it with `loadgen cdc capture stop --out FILE`"
        )
    with open(paths.log, "ab") as log:
        child = subprocess.Popen(
            [sys.executable, "-m", "loadgen", *child_args],
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=subprocess.STDOUT,
            env=env,
            start_new_session=True,
        )
    deadline = time.monotonic() + timeout_s
    while True:
        status = read_json(paths.status) or {}
        mine = status.get("pid") == child.pid
        if mine and status.get("phase") in READY_PHASES:
            return status
        code = child.poll()
        if code is not None:
            status = read_json(paths.status) or {}
            error = status.get("error") if status.get("pid") == child.pid else None
            raise ChildFailed(
                str(error or _last_error_line(paths) or f"the capture exited with {code}"),
                code or EXIT_ABORTED,
            )
        if should_stop():
            _end(child)
            return {"phase": "interrupted", "pid": child.pid}
        if time.monotonic() > deadline:
            _end(child)
            raise RunAbortedError(
                f"the capture did not start streaming within {timeout_s:g} s; see {paths.log}"
            )
        time.sleep(POLL_S)


def _end(child: subprocess.Popen[bytes]) -> None:
    """SIGTERM the child (it flushes its offsets), SIGKILL it after 60 s; reap it."""
    child.terminate()
    try:
        child.wait(60)
    except subprocess.TimeoutExpired:
        child.kill()
        child.wait()


def _last_error_line(paths: CapturePaths) -> str | None:
    try:
        tail = paths.log.read_bytes()[-8192:].decode(errors="replace").splitlines()
    except OSError:
        return None
    for line in reversed(tail):
        if line.startswith("loadgen: error: "):
            return line.removeprefix("loadgen: error: ")
    return None


def stop(paths: CapturePaths, *, until_caught_up: bool, timeout_s: float) -> dict[str, Any]:
    """Ask the capture writing ``paths.out`` to stop; wait for it; return its summary.

    Raises:
        ConfigError: no capture is running for that file (exit 2).
        RunAbortedError: still running after ``timeout_s`` (it was sent SIGTERM; exit 4).
    """
    pid = running_pid(paths.pid)
    if pid is None:
        raise ConfigError(
            f"no capture is running for {str(paths.out)!r} (no live pid in {paths.pid})"
        )
    os.kill(pid, signal.SIGUSR1 if until_caught_up else signal.SIGTERM)
    deadline = time.monotonic() + timeout_s
    escalated = False
    while is_alive(pid):
        if time.monotonic() > deadline:
            if escalated:
                raise RunAbortedError(f"the capture (pid {pid}) did not stop; see {paths.log}")
            os.kill(pid, signal.SIGTERM)
            escalated, deadline = True, time.monotonic() + 60.0
        time.sleep(POLL_S)
    summary = read_json(paths.status) or {}
    if escalated:
        raise RunAbortedError(
            f"the capture (pid {pid}) was not caught up within {timeout_s:g} s and was"
            f" stopped; see {paths.status}"
        )
    return summary
