"""How a run is asked to stop: SIGINT/SIGTERM in the coordinator, the coordinator's death in
a worker.

``StopFlag`` (coordinator's process, main thread) turns SIGINT and SIGTERM into a counted stop
request that every wait of the run looks at. ``ParentWatch`` (worker process) makes the
coordinator's death a stop: on Linux the kernel sends the worker SIGTERM when its parent dies
(``prctl(PR_SET_PDEATHSIG)``), and everywhere ``is_gone`` notices the worker was re-parented.
The worker's SIGTERM handler turns either into its graceful stop: the transaction in flight
finishes (or its statement is cancelled after a grace period), its outcome is recorded, the
worker exits.
"""

from __future__ import annotations

import ctypes
import logging
import os
import signal
import sys
from collections.abc import Callable
from types import FrameType
from typing import Any

logger = logging.getLogger(__name__)

STOP_SIGNALS = (signal.SIGINT, signal.SIGTERM)
_PR_SET_PDEATHSIG = 1  # linux/prctl.h


class StopFlag:
    """SIGINT/SIGTERM as a counted stop request; the CLI installs it as early as it can.

    A process started in the background by a shell inherits SIGINT ignored, and SIGTERM's default
    kills without a summary, so the handlers go in before anything slow (the database check,
    spawning workers, the start barrier) and every wait of the coordinator looks at ``count``.
    """

    def __init__(self) -> None:
        self.count = 0  # stop requests received
        self.on_request: Callable[[], None] | None = None  # called in the handler (set an Event)
        self._old_handlers: dict[int, Any] = {}

    @property
    def is_installed(self) -> bool:
        return bool(self._old_handlers)

    def install(self) -> None:
        """Handle SIGINT and SIGTERM from now on (main thread only); idempotent."""
        for sig in STOP_SIGNALS:
            old = signal.signal(sig, self._on_signal)
            self._old_handlers.setdefault(sig, old)

    def restore(self) -> None:
        """Put back the handlers that were there before ``install``."""
        for sig, handler in self._old_handlers.items():
            signal.signal(sig, handler)
        self._old_handlers.clear()

    def _on_signal(self, signum: int, frame: FrameType | None) -> None:
        self.count += 1
        if self.on_request is not None:
            self.on_request()


class ParentWatch:
    """A worker's view of its coordinator: alive, or gone (the worker must stop).

    ``arm`` once, first thing in the worker process, after its SIGTERM handler is installed.
    """

    def __init__(self, parent_pid: int) -> None:
        self.parent_pid = parent_pid

    def arm(self, sig: int = signal.SIGTERM) -> None:
        """Ask the kernel for ``sig`` when the parent dies (Linux; elsewhere ``is_gone`` only).

        The request covers the thread that spawned this process: the coordinator spawns from
        its main thread, which lives as long as the run.
        """
        if sys.platform.startswith("linux"):
            try:
                libc = ctypes.CDLL(None, use_errno=True)
                if libc.prctl(_PR_SET_PDEATHSIG, int(sig), 0, 0, 0) != 0:
                    logger.debug("prctl(PR_SET_PDEATHSIG) failed: errno %d", ctypes.get_errno())
            except (OSError, AttributeError):  # no libc symbol: polling only
                logger.debug("prctl unavailable; parent death noticed by polling")
        if self.is_gone():  # it died before the request: the signal will never come
            os.kill(os.getpid(), sig)

    def is_gone(self) -> bool:
        """True once the coordinator died (this process was re-parented). Cheap: one syscall."""
        return os.getppid() != self.parent_pid
