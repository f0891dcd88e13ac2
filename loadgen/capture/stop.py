"""When a capture stops: signals, ``--idle``, ``--until-caught-up``.

SIGINT and SIGTERM stop at once (offsets flushed); SIGUSR1 asks to stop once caught up with
the WAL position current at that moment (``cdc capture stop --until-caught-up`` sends it).
"Caught up" is observed, not guessed: the capture emits a non-transactional logical decoding
message (``pg_logical_emit_message``) and stops when Debezium delivers it, since every
transaction that committed before it is delivered before it.
"""

from __future__ import annotations

import signal
from collections.abc import Callable
from dataclasses import dataclass
from types import FrameType
from typing import Any

STOP_NOW_SIGNALS = (signal.SIGINT, signal.SIGTERM)
CAUGHT_UP_SIGNAL = signal.SIGUSR1


class StopRequests:
    """Signal handlers recording stop requests; install from the main thread."""

    def __init__(self) -> None:
        self.now: str | None = None  # the signal's name once SIGINT/SIGTERM arrived
        self.count = 0  # how many SIGINT/SIGTERM arrived
        self.caught_up_requested = False
        self._old: dict[int, Any] = {}
        self.on_signal: Callable[[], None] | None = None

    def install(self) -> None:
        for sig in (*STOP_NOW_SIGNALS, CAUGHT_UP_SIGNAL):
            self._old.setdefault(sig, signal.signal(sig, self._handle))

    def restore(self) -> None:
        for sig, old in self._old.items():
            signal.signal(sig, old)
        self._old.clear()

    def _handle(self, signum: int, frame: FrameType | None) -> None:
        if signum == CAUGHT_UP_SIGNAL:
            self.caught_up_requested = True
        else:
            self.now = signal.Signals(signum).name
            self.count += 1
        if self.on_signal is not None:
            self.on_signal()


@dataclass
class StopPolicy:
    """The stop conditions a capture was started with (validated by the CLI)."""

    idle_s: float | None = None  # stop after this long without a written line
    until_caught_up: bool = False  # stop once caught up with the WAL at start


def marker_matches(token: str, seen: set[str]) -> bool:
    """Whether Debezium delivered the marker ``token`` (content hex, base64 or as text)."""
    import base64

    raw = token.encode()
    return bool(seen & {raw.hex(), base64.b64encode(raw).decode(), token})
