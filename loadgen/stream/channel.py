"""The worker → coordinator channel: one one-way pipe per worker.

Each worker gets the write end of its own ``multiprocessing.Pipe(duplex=False)``; the
coordinator keeps the read ends and closes its copy of every write end once the worker started.
So a pipe has exactly one writer and one reader, and either death shows at the other end at
once: the coordinator reads EOF when a worker dies (``Inbox``), and a worker's write fails with
EPIPE when the coordinator died (``Outbox.is_broken``) — no process can be left blocked on a
pipe whose reader is gone.

``Outbox`` (worker side) pickles each message in the caller's thread (a pickling problem shows
where it happens) and writes it from a daemon sender thread, so neither the worker's loop nor its
watchdog ever blocks on a full pipe; ``close`` waits a bounded time for the last messages.
``Inbox`` (coordinator side) waits on every read end at once.
"""

from __future__ import annotations

import collections
import pickle
import threading
import time
from collections.abc import Iterator
from multiprocessing.connection import Connection, wait
from typing import Any

from loadgen import interrupts

CLOSE_TIMEOUT_S = 2.0  # how long a finishing worker waits for its last messages to be read


class Outbox:
    """A worker's sending end. ``put`` from any thread; ``close`` once, at the end."""

    def __init__(self, conn: Connection) -> None:
        self._conn = conn
        self._pending: collections.deque[bytes] = collections.deque()
        self._cond = threading.Condition()
        self._is_closing = False
        self.is_broken = False  # the coordinator is gone (EPIPE/EOF on write)
        self._thread = threading.Thread(target=self._send_loop, name="outbox", daemon=True)
        self._thread.start()

    def put(self, message: Any) -> None:
        """Queue ``message`` (pickled now); never blocks. Dropped once the pipe is broken."""
        data = pickle.dumps(message, protocol=pickle.HIGHEST_PROTOCOL)
        with self._cond:
            if self.is_broken or self._is_closing:
                return
            self._pending.append(data)
            self._cond.notify()

    def _send_loop(self) -> None:
        interrupts.keep_off_this_thread()  # SIGTERM is the main thread's (a race at its exit)
        while True:
            with self._cond:
                while not self._pending and not self._is_closing:
                    self._cond.wait()
                if not self._pending:
                    return
                data = self._pending[0]
            try:
                self._conn.send_bytes(data)
            except (OSError, ValueError):  # EPIPE: the reader died; ValueError: closed here
                with self._cond:
                    self.is_broken = True
                    self._pending.clear()
                    self._cond.notify_all()
                return
            with self._cond:
                self._pending.popleft()
                self._cond.notify_all()

    def close(self, timeout_s: float = CLOSE_TIMEOUT_S) -> bool:
        """Stop accepting messages, wait up to ``timeout_s`` for the queued ones to be written,
        then close the pipe. Returns True when everything queued was written."""
        deadline = time.monotonic() + timeout_s
        with self._cond:
            self._is_closing = True
            self._cond.notify_all()
            while self._pending and not self.is_broken:
                left = deadline - time.monotonic()
                if left <= 0:
                    break
                self._cond.wait(left)
            flushed = not self._pending
        if flushed:
            self._thread.join(max(deadline - time.monotonic(), 0.0))
            self._conn.close()
        # else: the sender may still be blocked in a write nobody reads; leave the daemon thread
        return flushed and not self.is_broken


class Inbox:
    """The coordinator's read ends, one per worker id. Coordinator's main thread only."""

    def __init__(self) -> None:
        self._by_conn: dict[Connection, int] = {}

    def add(self, worker_id: int, conn: Connection) -> None:
        self._by_conn[conn] = worker_id

    def __len__(self) -> int:
        return len(self._by_conn)

    def receive(self, timeout_s: float) -> Iterator[tuple[int, Any]]:
        """Yield ``(worker_id, message)`` for what arrives within ``timeout_s`` (then whatever
        else is already readable); ``(worker_id, None)`` when that worker's pipe reached EOF
        (it exited or died), after which its pipe is closed and left out."""
        if not self._by_conn:
            time.sleep(max(timeout_s, 0.0))
            return
        ready = wait(list(self._by_conn), timeout=max(timeout_s, 0.0))
        for conn in ready:
            assert isinstance(conn, Connection)
            worker_id = self._by_conn[conn]
            while True:
                try:
                    data = conn.recv_bytes()
                except (EOFError, OSError):
                    conn.close()
                    del self._by_conn[conn]
                    yield worker_id, None
                    break
                yield worker_id, pickle.loads(data)
                if not conn.poll(0):
                    break

    def close(self) -> None:
        for conn in self._by_conn:
            conn.close()
        self._by_conn.clear()
