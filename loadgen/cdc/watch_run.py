"""``cdc watch --slot``: follow the ledger and a live slot side by side and verify continuously.

Wiring: ``watch_slot.SlotStream`` (the slot, streamed; decoded by ``slot_feed.SlotFeeder``,
the decoder ``cdc verify`` uses) feeds the ``watch_core.WatchCore``'s matcher. Everything runs
in the calling thread: the stream calls back between transactions (``_commit``) and while idle
(``_idle``: the core's housekeeping, then confirm the matched positions to the server).
At the end the core's final sweep; then the last confirmed position is sent, and the report is
``cdc verify``'s (``watch_report.final_report``).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import psycopg

from loadgen.cdc import carried
from loadgen.cdc import slot as slot_mod
from loadgen.cdc.change import CapturedChange
from loadgen.cdc.slot_feed import SlotFeeder, partition_roots
from loadgen.cdc.watch_core import (
    DEFAULT_GRACE_S,
    DEFAULT_INTERVAL_S,
    WatchCore,
    WatchOptions,
    WatchResult,
    watched_tables,
)
from loadgen.cdc.watch_slot import CommitInfo, SlotStream
from loadgen.interrupts import Interrupted

__all__ = ["DEFAULT_GRACE_S", "DEFAULT_INTERVAL_S", "Watch", "WatchOptions", "WatchResult"]


class Watch(WatchCore):
    """One watch of a pgoutput slot (not reusable); ``stop()`` is asked between
    transactions and while idle (the CLI's signal handlers: SIGINT/SIGTERM)."""

    def __init__(
        self,
        conn: psycopg.Connection,
        dsn: str,
        opts: WatchOptions,
        emit: Callable[[dict[str, Any]], None],
        stop: Callable[[], str | None] | None = None,
    ) -> None:
        uncarried = carried.uncarried_columns(conn, watched_tables(), opts.publication)
        super().__init__(conn, opts, emit, stop, uncarried=uncarried)
        self.stream = SlotStream(
            dsn,
            opts.slot,
            opts.publication,
            on_commit=self._commit,
            on_idle=self._idle,
            on_marker=self.markers.captured,
        )
        schema = str(conn.execute("SELECT current_schema()").fetchone()[0])  # type: ignore[index]
        self.feeder = SlotFeeder(
            (),
            batches=self.stream.batches(),
            name=opts.slot,
            schema=schema,
            codes=self.codes,
            identity_lookup=lambda table, key: None,
            encoding=slot_mod.python_encoding(conn),
            table_of=partition_roots(conn),
            consume=True,
        )
        self._buf: list[CapturedChange] = []
        self.num_truncates = 0

    def where(self, ch: Any) -> str:
        return self.feeder.where(ch)

    def source_counts(self) -> dict[str, Any]:
        st = self.stream
        return {
            "reconnects": st.num_reconnects,
            "redelivered_after_reconnect": st.num_redelivered_txns,
            "confirmed_lsn": st.confirmed_lsn,
        }

    def reconnects(self) -> int | None:
        return self.stream.num_reconnects

    def read_through(self) -> int | None:
        return self.stream.read_through

    def start_drain(self) -> None:
        self.stream.want_position = True

    # -- callbacks from the stream -------------------------------------------------------------
    def _commit(self, infos: list[CommitInfo]) -> None:
        """The transactions of the list the feeder took: its changes are in ``_buf``, in
        commit order (consecutive transactions have different xids)."""
        buf, i, n = self._buf, 0, len(self._buf)
        for info in infos:
            j = i
            while j < n and buf[j].xid == info.xid:
                j += 1
            lag_ms = (info.received_at - info.commit_ts) * 1000.0
            self.matcher.captured_txn(buf[i:j], info.end_lsn, lag_ms, info.received_mono)
            i = j
        if i < n:  # changes outside any transaction cannot be: count them, unmatched
            self.matcher.captured_txn(buf[i:], 0, None, infos[-1].received_mono if infos else 0)
        self._buf = []

    def _idle(self) -> bool:
        go = self.idle()
        self.stream.confirm(self.matcher.flushable_lsn)
        return go

    # -- the run -------------------------------------------------------------------------------
    def run(self) -> WatchResult:
        """Watch until stopped (see the module doc); returns the final report.

        Raises:
            SchemaMissingError: no such slot or publication (checked first).
            DatabaseUnavailableError: the replication connection cannot be (re)opened.
        """
        assert self.conn is not None
        slot_mod.require_slot_and_publication(self.conn, self.opts.slot, self.opts.publication)
        try:
            for item in self.feeder.changes():
                if type(item) is CapturedChange:
                    self._buf.append(item)  # ``_commit`` takes them (and starts a new list)
                else:
                    self.num_truncates += 1
        except Interrupted as exc:
            self.stopped_by = exc.signal_name
        try:
            self.final_sweep()
            self.stream.confirm(self.matcher.flushable_lsn)  # all decided: release the WAL
            counts = {**self.source_counts(), "captured_truncates": self.num_truncates}
            counts.pop("confirmed_lsn")
            counts.update(self.feeder.counts())
            return self.result(
                f"slot {self.opts.slot} (live)", counts, list(self.stream.reconnect_notes)
            )
        finally:
            self.stream.close()
