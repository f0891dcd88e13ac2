"""``cdc watch --debezium FILE``: tail the event file ``cdc capture`` (or a Kafka console
consumer) appends to, and verify it live.

``DebeziumTail`` is the Debezium feeder (``debezium.DebeziumFeeder``: the same conversion of
Debezium's values back to PostgreSQL's text) over a file that grows: it reads complete lines as
they are appended, waits for a torn last line to be completed, and starts again from the top
when the file is truncated or replaced (rotation, a capture restarted with a fresh file); a
capture restarted on the same file just appends, and its redeliveries are counted by the
matcher (at least once). A torn last line cut off (what ``cdc capture`` does when it restarts
after dying mid-write) is not a truncation: reading goes on from the end of the last complete
line (``num_torn_cut``). ``ref`` numbers events across the whole tail (1, 2, ... over every
file generation), and each event's ``source.ts_ms`` (the server's commit time), ``ts_ms``
(when the connector processed it) and the time its line was read are kept until its change is
handed over, for the lag. While no line comes, ``on_idle()`` runs every ``idle_every_s``
(False: stop).

A create or delete is held by the feeder until the next event of its table (to pair a key
change split in two), or until the file has not grown for ``quiet_s`` seconds (the connector
has nothing more for now: a quiet table's last change is not left pending until the grace
makes it "missing"); at the end of the tail every held change is handed over.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable, Iterator
from typing import Any, BinaryIO

import orjson
import psycopg

from loadgen.cdc import carried
from loadgen.cdc.change import CapturedChange, CapturedTruncate
from loadgen.cdc.debezium import DebeziumFeeder, _Event, parse_line
from loadgen.cdc.rows import Catalog
from loadgen.cdc.slot_feed import partition_roots
from loadgen.cdc.watch_core import WatchCore, WatchOptions, WatchResult, watched_tables
from loadgen.cdc.watch_ledger import READ_BYTES
from loadgen.interrupts import Interrupted

QUIET_S = 2.0  # a file not grown this long: held creates and deletes are handed over


def _ends_a_line(f: BinaryIO, offset: int, size: int) -> bool:
    """Whether the file still ends a line at ``offset`` (it was cut back to there, no further)."""
    return size >= offset and (offset == 0 or os.pread(f.fileno(), 1, offset - 1) == b"\n")


class DebeziumTail(DebeziumFeeder):
    """A ``DebeziumFeeder`` that follows ``path`` as it grows (see the module doc)."""

    def __init__(
        self,
        path: str,
        *,
        on_idle: Callable[[], bool],
        idle_every_s: float = 0.2,
        quiet_s: float = QUIET_S,
        **kw: Any,
    ) -> None:
        if not os.path.exists(path):
            open(path, "ab").close()  # the capture may start later: an empty file is fine
        super().__init__(path, **kw)
        self.on_idle = on_idle
        self.idle_every_s = idle_every_s
        self.num_restarts = 0  # the file was truncated or replaced
        self.num_torn_cut = 0  # a torn last line was cut off (a capture restarted after a crash)
        self.quiet_s = quiet_s
        # ref → (source.ts_ms, ts_ms, when the line was read: time.time() in ms)
        self.stamps: dict[int, tuple[int | None, int | None, float]] = {}
        self._ref = 0
        self._src_ts: int | None = None
        self._ts: int | None = None

    def _event(self, doc: dict[str, Any] | None, line_no: int) -> _Event | CapturedTruncate | None:
        ev = super()._event(doc, line_no)
        if isinstance(ev, _Event) and doc is not None:
            src = doc.get("source") or {}
            ts, src_ts = doc.get("ts_ms"), src.get("ts_ms")
            self.stamps[line_no] = (
                src_ts if type(src_ts) is int else None,
                ts if type(ts) is int else None,
                time.time() * 1000.0,
            )
        return ev

    def _events(self) -> Iterator[_Event | CapturedTruncate | None]:
        f = open(self.path, "rb")  # noqa: SIM115 - reopened on rotation
        inode, offset, buf = os.fstat(f.fileno()).st_ino, 0, b""
        last_idle = grew_at = time.monotonic()
        quiet = True  # a quiet None was yielded since the file last grew
        try:
            while True:
                chunk = f.read(READ_BYTES)
                if chunk and buf and os.pread(f.fileno(), len(buf), offset) != buf:
                    f.seek(offset)  # the torn line was cut and lines appended in its place
                    buf, self.num_torn_cut = b"", self.num_torn_cut + 1
                    continue
                now = time.monotonic()
                if chunk:
                    buf += chunk
                    end = buf.rfind(b"\n") + 1
                    lines, buf = buf[:end].split(b"\n")[:-1], buf[end:]
                    for raw in lines:
                        offset += len(raw) + 1
                        ev = self._line(raw)
                        if ev is not None:
                            yield ev
                    grew_at, quiet = now, False
                elif not quiet and now - grew_at >= self.quiet_s:
                    quiet = True
                    yield None  # quiet: the feeder hands over what it holds
                if chunk and now - last_idle < self.idle_every_s:
                    continue
                last_idle = now
                if not self.on_idle():
                    return
                try:
                    st = os.stat(self.path)
                except OSError:
                    st = None
                if st is not None and (st.st_ino != inode or st.st_size < offset + len(buf)):
                    if st.st_ino == inode and _ends_a_line(f, offset, st.st_size):
                        f.seek(offset)  # only the torn last line was cut (a restarted capture)
                        buf, self.num_torn_cut = b"", self.num_torn_cut + 1
                        continue
                    f.close()  # truncated or replaced: a new generation of the file
                    f = open(self.path, "rb")  # noqa: SIM115
                    inode, offset, buf = os.fstat(f.fileno()).st_ino, 0, b""
                    self.num_restarts += 1
                    continue
                if not chunk:
                    time.sleep(self.idle_every_s)
        finally:
            f.close()

    def _line(self, raw: bytes) -> _Event | CapturedTruncate | None:
        if not raw.strip():
            return None
        self._ref += 1
        try:
            doc = parse_line(raw + b"\n")
        except (ValueError, orjson.JSONDecodeError):
            self._num_bad += 1
            if len(self._bad) < 5:
                self._bad.append({"line": self._ref, "text": raw[:80].decode("utf-8", "replace")})
            return None
        return self._event(doc, self._ref)


class DebeziumWatch(WatchCore):
    """One watch of a Debezium event file (not reusable)."""

    def __init__(
        self,
        conn: psycopg.Connection | None,
        opts: WatchOptions,
        events_path: str,
        emit: Callable[[dict[str, Any]], None],
        stop: Callable[[], str | None] | None = None,
        *,
        catalog: Catalog | None = None,
        schema: str | None = None,
        table_of: dict[str, str] | None = None,
    ) -> None:
        names = watched_tables()
        uncarried = (
            carried.uncarried_columns(conn, names, opts.publication or None)
            if conn is not None
            else {}
        )
        super().__init__(conn, opts, emit, stop, uncarried=uncarried)
        if catalog is None:
            from loadgen.cdc.rows import DbCatalog

            assert conn is not None
            catalog = DbCatalog(conn)
        if schema is None:
            assert conn is not None
            schema = str(conn.execute("SELECT current_schema()").fetchone()[0])  # type: ignore[index]
        if table_of is None:
            table_of = partition_roots(conn) if conn is not None else {}
        self.feeder = DebeziumTail(
            events_path,
            on_idle=self.idle,
            catalog=catalog,
            schema=schema,
            codes=self.codes,
            identity_lookup=lambda table, key: None,
            table_of=table_of,
        )
        self.connector = _Lag()  # the connector's processing: ts_ms - source.ts_ms
        self.num_truncates = 0

    def where(self, ch: Any) -> str:
        return self.feeder.where(ch)

    def source_counts(self) -> dict[str, Any]:
        return {
            "file_restarts": self.feeder.num_restarts,
            "torn_lines_cut": self.feeder.num_torn_cut,
            "connector_ms": self.connector.take(),
        }

    def run(self) -> WatchResult:
        """Tail the file until stopped; returns the final report."""
        m, stamps = self.matcher, self.feeder.stamps
        try:
            for item in self.feeder.changes():
                if type(item) is not CapturedChange:
                    self.num_truncates += 1
                    continue
                src_ts, ts, read_ms = stamps.pop(item.ref, (None, None, 0.0))
                lag = None if src_ts is None else read_ms - src_ts  # not the time it was held
                if src_ts is not None and ts is not None:
                    self.connector.add(ts - src_ts)
                m.captured_one(item, lag, time.monotonic())
        except Interrupted as exc:
            self.stopped_by = exc.signal_name
        self.final_sweep()
        count, examples = self.feeder.problems()
        counts: dict[str, Any] = {
            "file_restarts": self.feeder.num_restarts,
            "torn_lines_cut": self.feeder.num_torn_cut,
            "captured_truncates": self.num_truncates,
            "source_lines": count,
            **self.feeder.counts(),
        }
        notes = list(self.feeder.notes())
        if examples:
            notes.append(f"{count} lines are not change events, e.g. {examples[0]}")
        res = self.result(f"debezium {self.feeder.path} (live)", counts, notes)
        res.extra["connector_ms"] = self.connector.totals()
        return res


class _Lag:
    """The connector's own processing time per event (ms): interval and run figures."""

    def __init__(self) -> None:
        from loadgen.cdc.watch_lag import LagStats

        self._stats = LagStats()

    def add(self, ms: float) -> None:
        self._stats.add("all", ms)

    def take(self) -> dict[str, Any]:
        return dict(self._stats.take_interval()["all"])

    def totals(self) -> dict[str, Any]:
        return dict(self._stats.totals()["all"])
