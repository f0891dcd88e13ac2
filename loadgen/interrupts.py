"""SIGINT and SIGTERM for the commands: recorded during start-up, then turned into an exception.

Standard library only: the console entry point (``loadgen.__main__.main``) calls ``defer()``
before importing anything heavy (typer, rich, numpy, psycopg take most of a second), so a
Ctrl-C or SIGTERM during start-up is recorded instead of printing a traceback or killing the
process without a word. When the command line has been parsed, the CLI either leaves them to
a command that stops gracefully (``loadgen stream``, ``loadgen cdc capture``: it installs its
own handlers, then ``hand_over()`` delivers the recorded signals to them, so a signal in a
run's first second is not lost) or calls ``raise_on_signal()``:
from then on SIGINT and SIGTERM raise ``Interrupted`` in the main thread, with statements
cancelled and transactions rolled back on the way out, and the CLI prints one line (exit 4).

Everything here runs in the main thread of the CLI's process, but for ``ignore_for_exit`` and
``keep_off_this_thread``, which a stream's worker processes use too.
"""

from __future__ import annotations

import signal
import threading
from types import FrameType
from typing import Any

SIGNALS = (signal.SIGINT, signal.SIGTERM)


class Interrupted(KeyboardInterrupt):
    """SIGINT or SIGTERM arrived while a command ran (a KeyboardInterrupt, so psycopg cancels
    the running statement before it propagates). ``signum`` is the signal's number."""

    def __init__(self, signum: int, *, during_startup: bool = False) -> None:
        super().__init__(signal_name(signum))
        self.signum = signum
        self.during_startup = during_startup  # recorded before the command began

    @property
    def signal_name(self) -> str:
        return signal_name(self.signum)


def signal_name(signum: int) -> str:
    """``"SIGINT"`` for 2, ``"SIGTERM"`` for 15 (``"signal N"`` for anything else)."""
    try:
        return signal.Signals(signum).name
    except ValueError:
        return f"signal {signum}"


_pending: list[int] = []  # signals recorded by the start-up handler, oldest first


def _record(signum: int, frame: FrameType | None) -> None:
    _pending.append(signum)


def _raise(signum: int, frame: FrameType | None) -> None:
    raise Interrupted(signum)


def _is_main_thread() -> bool:
    return threading.current_thread() is threading.main_thread()


def current_handlers() -> dict[int, Any]:
    """The handlers SIGINT and SIGTERM have now (to give back with ``restore``)."""
    return {sig: signal.getsignal(sig) for sig in SIGNALS}


def restore(handlers: dict[int, Any]) -> None:
    """Put back handlers returned by ``current_handlers`` (main thread only; else a no-op)."""
    if not _is_main_thread():
        return
    for sig, handler in handlers.items():
        if handler is not None:
            signal.signal(sig, handler)


def defer() -> None:
    """Record SIGINT and SIGTERM from now on instead of acting on them (start-up)."""
    if _is_main_thread():
        for sig in SIGNALS:
            signal.signal(sig, _record)


def is_deferring() -> bool:
    """Whether the start-up recorder is installed for SIGINT (``defer`` was called)."""
    return signal.getsignal(signal.SIGINT) is _record


def take_pending() -> list[int]:
    """The signals recorded since ``defer()``, oldest first; the record is emptied."""
    taken = list(_pending)
    del _pending[: len(taken)]
    return taken


def hand_over() -> None:
    """Deliver the signals recorded since ``defer()`` again, now, to the handlers installed
    since (a command that stops gracefully calls it right after installing its own)."""
    for signum in take_pending():
        signal.raise_signal(signum)


def raise_on_signal() -> None:
    """From now on SIGINT and SIGTERM raise ``Interrupted`` (main thread only; else a no-op).

    Raises:
        Interrupted: at once, when a signal was recorded during start-up.
    """
    if not _is_main_thread():
        return
    for sig in SIGNALS:
        signal.signal(sig, _raise)
    pending = take_pending()
    if pending:
        raise Interrupted(pending[0], during_startup=True)


def ignore_for_exit() -> None:
    """The process is already stopping: SIGINT and SIGTERM are ignored from now to its exit.

    Call it where a process that has stopped heads for the interpreter's exit (main thread
    only; else a no-op). CPython's finalization clears a Python-level handler, then resets the
    signal to its default: a signal caught in between is reported as ``OSError: Signal 15
    ignored due to race condition`` with a traceback on stderr, and one after it kills the
    process. Blocked first (it cannot trip the handler while it is replaced), then ignored
    (a pending one is discarded, and finalization leaves an ignored signal alone). Threads that
    have not blocked them could still catch one in the replacement: ``keep_off_this_thread``.
    """
    if not _is_main_thread():
        return
    signal.pthread_sigmask(signal.SIG_BLOCK, SIGNALS)
    for sig in SIGNALS:
        signal.signal(sig, signal.SIG_IGN)


def keep_off_this_thread() -> None:
    """Block SIGINT and SIGTERM in the calling (helper) thread: the kernel then delivers them to
    the main thread, where Python runs their handlers anyway (and a sleep there wakes up)."""
    signal.pthread_sigmask(signal.SIG_BLOCK, SIGNALS)


__all__ = [
    "Interrupted",
    "current_handlers",
    "defer",
    "hand_over",
    "ignore_for_exit",
    "is_deferring",
    "keep_off_this_thread",
    "raise_on_signal",
    "restore",
    "signal_name",
    "take_pending",
]
