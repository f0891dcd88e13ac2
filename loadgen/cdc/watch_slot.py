"""Stream a pgoutput slot live with the streaming replication protocol (psycopg2).

psycopg 3 has no replication API; psycopg2's ``LogicalReplicationConnection`` is the
established Python client. ``SlotStream.batches()`` yields lists of ``(lsn, xid, message)``
rows for ``slot_feed.SlotFeeder(batches=...)`` (the same decoder as ``cdc verify``), whole
transactions only: a transaction's messages are held until its Commit arrives, so a
connection lost mid-transaction never hands half of one to the verifier. A list is handed
over when the stream pauses, every ``BATCH_ROWS`` rows, and at least every ``idle_every_s``;
once the feeder has yielded its changes, ``on_commit([CommitInfo, ...])`` is called for its
transactions. While the stream is idle, and at least every ``idle_every_s`` while it is busy,
``on_idle()`` runs (the caller's housekeeping; it returns False to stop the stream).

Positions: ``confirm(lsn)`` sets the flushed position sent to the server (standby status
updates), which lets it release WAL. When the connection drops (a terminated backend, a
restarted server), the stream reconnects with backoff and the server resends from the last
confirmed position; transactions already handed over (commit LSN at or before the last one)
are skipped and counted (``num_redelivered_txns``), so nothing is lost or doubled.

Logical messages (asked for with ``messages 'true'`` on PostgreSQL 14+) whose prefix is
``marker_prefix`` (``stream --markers``) are also handed to ``on_marker(content,
received_at)``: a transactional one when its transaction's Commit arrives (and only once,
like the transaction), one outside a transaction when it arrives.
"""

from __future__ import annotations

import contextlib
import select
import struct
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass

import psycopg2
import psycopg2.extras

from loadgen.cdc import pgoutput as P
from loadgen.errors import DatabaseUnavailableError, SchemaMissingError

_BEGIN = struct.Struct(">QqI").unpack_from  # final LSN, commit ts (µs since 2000), xid
_COMMIT = struct.Struct(">bQQq").unpack_from  # flags, commit LSN, end LSN, commit ts
_PG_EPOCH = P.PG_EPOCH_UNIX_S
MARKER_PREFIX = b"loadgen"  # loadgen.stream.markers.PREFIX
RECONNECT_MAX_S = 60.0  # give up after this long without a connection
BATCH_ROWS = 5_000  # hand rows over at least every this many (the feeder decodes them at once)


@dataclass(frozen=True, slots=True)
class CommitInfo:
    """One captured transaction's Commit: positions, the server's commit time and when the
    Commit message arrived (both Unix seconds, wall clock)."""

    xid: int
    commit_lsn: int
    end_lsn: int
    commit_ts: float
    received_at: float
    received_mono: float  # the same moment on the monotonic clock (the matcher's)


class SlotStream:
    """A live pgoutput (protocol v1) stream of ``slot`` for ``publication`` (see module doc)."""

    def __init__(
        self,
        dsn: str,
        slot: str,
        publication: str,
        *,
        on_commit: Callable[[list[CommitInfo]], None],
        on_idle: Callable[[], bool],
        idle_every_s: float = 0.2,
        reconnect_max_s: float = RECONNECT_MAX_S,
        on_marker: Callable[[bytes, float], None] | None = None,
        marker_prefix: bytes = MARKER_PREFIX,
    ) -> None:
        self.dsn = dsn
        self.slot = slot
        self.publication = publication
        self.on_commit = on_commit
        self.on_idle = on_idle
        self.idle_every_s = idle_every_s
        self.reconnect_max_s = reconnect_max_s
        self.on_marker = on_marker
        self.marker_prefix = marker_prefix
        self.num_reconnects = 0
        self.num_redelivered_txns = 0
        self.reconnect_notes: list[str] = []
        self._confirmed = 0
        self._sent = -1
        self._done_commit_lsn = 0  # commit LSN of the last transaction handed over
        self._read_through = 0  # every change before this LSN was handed over (see read_through)
        self.want_position = False  # ask the server for its position at each idle moment
        self._conn: psycopg2.extensions.connection | None = None
        self._cur: psycopg2.extras.ReplicationCursor | None = None

    # -- connection ----------------------------------------------------------------------------
    def _connect(self) -> None:
        conn = psycopg2.connect(
            self.dsn, connection_factory=psycopg2.extras.LogicalReplicationConnection
        )
        try:
            cur = conn.cursor()
            options = {"proto_version": "1", "publication_names": self.publication}
            if self.on_marker is not None and conn.server_version >= 140000:
                options["messages"] = "true"
            cur.start_replication(
                slot_name=self.slot, decode=False, options=options, status_interval=10
            )
        except BaseException:
            conn.close()
            raise
        self._conn, self._cur = conn, cur
        self._sent = -1

    def _reconnect(self, why: BaseException) -> None:
        self.close()
        self.num_reconnects += 1
        first = str(why).strip().splitlines()[0] if str(why).strip() else type(why).__name__
        self.reconnect_notes.append(f"{time.strftime('%H:%M:%S')} connection lost: {first}")
        deadline = time.monotonic() + self.reconnect_max_s
        delay = 0.1
        while True:
            try:
                self._connect()
                return
            except psycopg2.Error as exc:
                if time.monotonic() > deadline:
                    raise DatabaseUnavailableError(
                        f"cdc watch: slot {self.slot}: cannot reconnect for"
                        f" {self.reconnect_max_s:.0f} s: {str(exc).strip().splitlines()[0]}"
                    ) from exc
            if not self.on_idle():
                return
            time.sleep(delay)
            delay = min(delay * 2, 2.0)

    def close(self) -> None:
        if self._conn is not None:
            with contextlib.suppress(psycopg2.Error):
                self._conn.close()
        self._conn = self._cur = None

    @property
    def confirmed_lsn(self) -> int:
        return self._confirmed

    @property
    def read_through(self) -> int:
        """An LSN before which the server has sent everything and every transaction was handed
        over: the end of the last transaction handed over, or, while nothing is open, the
        walsender's position in its last message (``wal_end``: how far it has decoded)."""
        return self._read_through

    def _ask_position(self) -> None:
        """Ask the walsender for a keepalive now (its reply carries ``wal_end``)."""
        cur = self._cur
        if cur is None:
            return
        with contextlib.suppress(psycopg2.Error):  # the read loop notices a broken connection
            cur.send_feedback(reply=True, force=True)

    def confirm(self, lsn: int) -> None:
        """Report everything up to ``lsn`` as flushed (sent with the next status update)."""
        if lsn > self._confirmed:
            self._confirmed = lsn
        self._send_feedback()

    def _send_feedback(self) -> None:
        cur = self._cur
        if cur is None or self._confirmed == self._sent:
            return
        try:
            cur.send_feedback(write_lsn=self._confirmed, flush_lsn=self._confirmed, force=True)
            self._sent = self._confirmed
        except psycopg2.Error:
            pass  # the read loop notices the broken connection and reconnects

    # -- the stream --------------------------------------------------------------------------
    def batches(self) -> Iterator[list[tuple[int, int, bytes]]]:
        """Lists of (LSN, xid, pgoutput message) rows, whole transactions only: what arrived
        since the last list (up to ``BATCH_ROWS``), handed over when the stream pauses, at
        least every ``idle_every_s``; ``on_commit`` gets their ``CommitInfo``s once the
        feeder has taken the list (blocks).

        Raises:
            SchemaMissingError: the slot does not exist (or is not a pgoutput slot).
            DatabaseUnavailableError: no connection, or none again within the reconnect limit.
        """
        try:
            self._connect()
        except psycopg2.Error as exc:
            text = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
            if getattr(exc, "pgcode", None) in ("42704", "55000", "42P01"):
                raise SchemaMissingError(f"cdc watch: slot {self.slot}: {text}") from exc
            raise DatabaseUnavailableError(f"cdc watch: slot {self.slot}: {text}") from exc
        yield from self._loop()  # the connection stays open for a last ``confirm``: ``close``

    def _marker(self, data: bytes) -> bytes | None:
        """A Message's content when its prefix is the markers' (else None; malformed: None)."""
        try:
            end = data.index(b"\x00", 10)
            if data[10:end] != self.marker_prefix:
                return None
            (length,) = struct.unpack_from(">i", data, end + 1)
            return bytes(data[end + 5 : end + 5 + length])
        except (ValueError, struct.error):
            return None

    def _loop(self) -> Iterator[list[tuple[int, int, bytes]]]:
        held: list[tuple[int, int, bytes]] = []  # the open transaction's rows
        ready: list[tuple[int, int, bytes]] = []  # committed transactions not handed over yet
        infos: list[CommitInfo] = []
        begin: tuple[int, float, int] | None = None  # final LSN, commit ts, xid
        markers: list[bytes] = []  # the open transaction's markers
        last_idle = time.monotonic()

        def hand_over() -> Iterator[list[tuple[int, int, bytes]]]:
            nonlocal ready, infos
            if ready:
                batch, done, ready, infos = ready, infos, [], []
                yield batch  # the feeder yields all of its changes before asking for more
                self.on_commit(done)
                if done:
                    self._read_through = max(self._read_through, done[-1].end_lsn)

        while True:
            cur = self._cur
            if cur is None:
                return  # stopped while reconnecting
            try:
                msg = cur.read_message()
            except psycopg2.Error as exc:
                yield from hand_over()
                held, begin, markers = [], None, []
                self._reconnect(exc)
                continue
            now = time.monotonic()
            if msg is None:
                yield from hand_over()
                if begin is None:  # nothing open: all the walsender sent is handed over
                    self._read_through = max(self._read_through, int(cur.wal_end))
                if not self.on_idle():
                    return
                if self.want_position:
                    self._ask_position()
                last_idle = now
                self._send_feedback()
                try:
                    select.select([cur], [], [], self.idle_every_s)
                except (OSError, ValueError) as exc:  # the socket went away
                    held, begin, markers = [], None, []
                    self._reconnect(exc)
                continue
            data: bytes = msg.payload
            lsn = int(msg.data_start)
            kind = data[0]
            if kind == 0x42:  # 'B'
                final_lsn, ts_us, xid = _BEGIN(data, 1)
                begin = (final_lsn, ts_us / 1e6 + _PG_EPOCH, xid)
                held, markers = [(lsn, xid, data)], []
            elif kind == 0x43 and begin is not None:  # 'C'
                _, commit_lsn, end_lsn, ts_us = _COMMIT(data, 1)
                held.append((lsn, begin[2], data))
                info = CommitInfo(begin[2], commit_lsn, end_lsn, ts_us / 1e6 + _PG_EPOCH,
                                  time.time(), now)  # fmt: skip
                rows, held, begin = held, [], None
                if commit_lsn <= self._done_commit_lsn:
                    self.num_redelivered_txns += 1  # resent after a reconnect: handed over
                    continue
                self._done_commit_lsn = commit_lsn
                if markers and self.on_marker is not None:
                    for marker in markers:
                        self.on_marker(marker, info.received_at)
                    markers = []
                ready.extend(rows)
                infos.append(info)
                if len(ready) >= BATCH_ROWS:
                    yield from hand_over()
            elif begin is not None:
                held.append((lsn, begin[2], data))
                if kind == 0x4D:  # 'M': a logical message of this transaction
                    found = self._marker(data)
                    if found is not None:
                        markers.append(found)
            else:
                if kind == 0x4D and self.on_marker is not None:
                    found = self._marker(data)
                    if found is not None:
                        self.on_marker(found, time.time())
                ready.append((lsn, 0, data))  # outside a transaction (a non-transactional message)
            if now - last_idle >= self.idle_every_s:
                yield from hand_over()
                if not self.on_idle():
                    return
                last_idle = now
