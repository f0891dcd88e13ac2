"""A worker's watchdog thread: heartbeats while its loop is stuck, and the cancel that makes a
stop take effect whatever the loop is doing.

While the worker's loop is busy in one call (a long statement, a lock wait) it sends nothing, so
every report interval the watchdog sends a ``Heartbeat`` saying the process is alive, only slow.
When the worker is stopping (a stop request, its coordinator's death, or past ``--duration``) and
its loop is still inside a statement ``STOP_GRACE_S`` later, the watchdog asks the server to
cancel that statement (psycopg's ``cancel_safe``, thread-safe), again every ``STOP_GRACE_S``:
the loop gets ``QueryCanceled``, rolls the transaction back — its intent was not written yet,
so the ledger's contract holds — and finishes. Runs in its own daemon thread of the worker.
"""

from __future__ import annotations

import threading
from collections.abc import Callable

from loadgen import interrupts
from loadgen.stream.clock import MIN_TICK_NS, NS_PER_S, SystemClock
from loadgen.stream.messages import Heartbeat

STOP_GRACE_S = 1.0  # a statement still running this long after a stop is cancelled
MAX_TICK_NS = 200_000_000  # the watchdog looks at least this often (ns)


class Watchdog:
    """Heartbeats and stop-time cancels for one worker (see the module docstring)."""

    def __init__(
        self,
        worker_id: int,
        report_interval_ns: int,
        clock: SystemClock,
        *,
        send: Callable[[Heartbeat], None],
        last_sent_ns: Callable[[], int],
        is_stopping: Callable[[], bool],
        is_in_statement: Callable[[], bool],
        cancel: Callable[[], None],
    ) -> None:
        self.worker_id = worker_id
        self.report_interval_ns = report_interval_ns
        self.clock = clock
        self._send = send
        self._last_sent_ns = last_sent_ns
        self._is_stopping = is_stopping
        self._is_in_statement = is_in_statement
        self._cancel = cancel
        self._done = threading.Event()
        self._thread = threading.Thread(target=self._run, name="watchdog", daemon=True)
        self.num_cancels = 0

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        """Ask the thread to end (it does within one tick); never blocks."""
        self._done.set()

    def _run(self) -> None:
        interrupts.keep_off_this_thread()  # SIGTERM is the main thread's (a race at its exit)
        tick_s = max(min(self.report_interval_ns, MAX_TICK_NS), MIN_TICK_NS) / NS_PER_S
        grace_ns = round(STOP_GRACE_S * NS_PER_S)
        last_beat_ns = self.clock.now_ns()
        stopping_since_ns: int | None = None
        last_cancel_ns = 0
        while not self._done.wait(tick_s):
            now_ns = self.clock.now_ns()
            busy_ns = now_ns - self._last_sent_ns()
            if busy_ns >= self.report_interval_ns and now_ns - last_beat_ns >= (
                self.report_interval_ns
            ):
                try:
                    self._send(Heartbeat(self.worker_id, busy_ns))
                except (ValueError, OSError):  # the channel closed: the process is ending
                    return
                last_beat_ns = now_ns
            if not self._is_stopping():
                stopping_since_ns = None
                continue
            if stopping_since_ns is None:
                stopping_since_ns = now_ns
            if (
                now_ns - stopping_since_ns >= grace_ns
                and now_ns - last_cancel_ns >= grace_ns
                and self._is_in_statement()
            ):
                last_cancel_ns = now_ns
                self.num_cancels += 1
                self._cancel()
