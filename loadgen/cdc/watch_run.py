"""``cdc watch``: follow the ledger and a live slot side by side and verify continuously.

Wiring: ``watch_ledger.LedgerFollower`` (the ledger as it grows) and ``watch_slot.SlotStream``
(the slot, streamed; decoded by ``slot_feed.SlotFeeder``, the decoder ``cdc verify`` uses) feed
one ``watch_match.Matcher``. Everything runs in the calling thread: the stream calls back
between transactions (``_commit``) and while idle (``_idle``: poll the ledger, confirm matched
positions, every ``interval_s`` sweep for missing changes and emit the interval record).

Stops on SIGINT/SIGTERM (``Interrupted``), or with ``until_caught_up`` once the stream has
finished (every part's writer process is gone, no intent waits for its outcome) and nothing
is pending. Then the final sweep: what is still pending is missing, and the report is
``cdc verify``'s (``watch_report.final_report``).
"""

from __future__ import annotations

import os
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import psycopg

from loadgen import scenarios, tables
from loadgen.cdc import carried
from loadgen.cdc import slot as slot_mod
from loadgen.cdc.change import CapturedChange
from loadgen.cdc.ledger_index import TableCodes
from loadgen.cdc.results import VerifyReport
from loadgen.cdc.slot_feed import SlotFeeder, partition_roots
from loadgen.cdc.watch_ledger import LedgerFollower
from loadgen.cdc.watch_match import Matcher
from loadgen.cdc.watch_report import final_report, interval_record, missing_text
from loadgen.cdc.watch_slot import CommitInfo, SlotStream
from loadgen.interrupts import Interrupted
from loadgen.ledger.resolve import xact_status

DEFAULT_GRACE_S = 60.0
DEFAULT_INTERVAL_S = 1.0


@dataclass
class WatchOptions:
    """What to watch and how (ranges: ``cdc watch --help``)."""

    ledger: str
    slot: str
    publication: str
    delivery: str = "exactly-once"
    grace_s: float = DEFAULT_GRACE_S
    interval_s: float = DEFAULT_INTERVAL_S
    until_caught_up: bool = False
    max_examples: int = 5
    max_duration_s: float | None = None  # stop after this long (tests, benches)


@dataclass
class WatchResult:
    report: VerifyReport
    lag_ms: dict[str, Any]  # the whole run's figures (``LagStats.totals``)
    intervals: int
    stopped_by: str  # "caught up", "SIGINT", "SIGTERM", "duration"
    extra: dict[str, Any] = field(default_factory=dict)


def _alive(pid: int | None) -> bool:
    if pid is None:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


class Watch:
    """One watch run (not reusable). ``emit(record)`` receives every interval record and
    every missing report (``{"type": "missing", ...}``) as they happen; ``stop()`` is asked
    between transactions and while idle (the CLI's signal handlers: SIGINT/SIGTERM)."""

    def __init__(
        self,
        conn: psycopg.Connection,
        dsn: str,
        opts: WatchOptions,
        emit: Callable[[dict[str, Any]], None],
        stop: Callable[[], str | None] | None = None,
    ) -> None:
        self.conn = conn
        self.stop = stop  # returns why to stop now (a signal's name), or None
        self.opts = opts
        self.emit = emit
        names = list(tables.TABLE_NAMES) + [
            n for n in scenarios.table_names() if n not in tables.TABLE_NAMES
        ]
        self.codes = TableCodes(names)
        uncarried = carried.uncarried_columns(conn, names, opts.publication)
        self.matcher = Matcher(
            self.codes,
            delivery=opts.delivery,
            grace_s=opts.grace_s,
            uncarried={self.codes.code(t): c for t, c in uncarried.items()},
            max_examples=opts.max_examples,
        )
        self.follower = LedgerFollower(opts.ledger)
        self.stream = SlotStream(
            dsn, opts.slot, opts.publication, on_commit=self._commit, on_idle=self._idle
        )
        schema = str(conn.execute("SELECT current_schema()").fetchone()[0])  # type: ignore[index]
        self.feeder = SlotFeeder(
            self.stream.rows(),
            name=opts.slot,
            schema=schema,
            codes=self.codes,
            identity_lookup=lambda table, key: None,
            encoding=slot_mod.python_encoding(conn),
            table_of=partition_roots(conn),
            consume=True,
        )
        self._buf: list[CapturedChange] = []
        self._t0 = time.monotonic()
        self._next_tick = self._t0 + opts.interval_s
        self._matched_before = 0
        self.num_intervals = 0
        self.num_truncates = 0
        self.stopped_by = ""
        self.ledger_problems: list[dict[str, Any]] = []
        self.num_ledger_problems = 0

    # -- callbacks from the stream -------------------------------------------------------------
    def _commit(self, info: CommitInfo) -> None:
        lag_ms = (info.received_at - info.commit_ts) * 1000.0
        self.matcher.captured_txn(self._buf, info.end_lsn, lag_ms, time.monotonic())
        self._buf = []

    def _idle(self) -> bool:
        now = time.monotonic()
        why = self.stop() if self.stop is not None else None
        if why:
            self.stopped_by = why
            return False
        self._poll_ledger(now)
        self.stream.confirm(self.matcher.flushable_lsn)
        if now >= self._next_tick:
            self._tick(now)
            self._next_tick = now + self.opts.interval_s
            if self._caught_up():
                self.stopped_by = "caught up"
                return False
        limit = self.opts.max_duration_s
        if limit is not None and now - self._t0 >= limit:
            self.stopped_by = "duration"
            return False
        return True

    def _poll_ledger(self, now: float) -> None:
        m = self.matcher
        for line in self.follower.poll():
            try:
                m.ledger_line(line, now)
            except (KeyError, TypeError, ValueError):
                self.num_ledger_problems += 1
                if len(self.ledger_problems) < self.opts.max_examples:
                    self.ledger_problems.append(
                        {"part": self.follower.part_name(line.part), "offset": line.offset}
                    )

    def _tick(self, now: float) -> None:
        m = self.matcher
        self._resolve(m.stale_intents(now), now)
        m.sweep(now, self.follower.part_name, self.feeder.where)
        for ex in m.new_missing:
            self.emit({"type": "missing", **ex})
        m.new_missing.clear()
        rec = interval_record(m, now - self._t0, self._matched_before, self._stream_counts())
        self._matched_before = m.tally.matched
        self.num_intervals += 1
        self.emit(rec)

    def _resolve(self, txids: list[int], now: float) -> None:
        """Ask the server about intents without an outcome (a writer killed before it)."""
        if not txids:
            return
        answers = xact_status(self.conn, txids)
        for txid in txids:
            status = answers.get(txid)
            if status in ("committed", "aborted"):
                self.matcher.outcome(txid, status, now, by_server=True)

    def _stream_finished(self) -> bool:
        f = self.follower
        return (
            f.exists
            and not any(_alive(pid) for pid in f.writer_pids())
            and not self.matcher.intents
            and not f.torn_tails()
        )

    def _caught_up(self) -> bool:
        m = self.matcher
        return (
            self.opts.until_caught_up
            and not m.ledger_pending
            and not m.captured_pending
            and self._stream_finished()
        )

    def _stream_counts(self) -> dict[str, Any]:
        st = self.stream
        return {
            "reconnects": st.num_reconnects,
            "redelivered_after_reconnect": st.num_redelivered_txns,
            "confirmed_lsn": st._confirmed,
        }

    # -- the run -------------------------------------------------------------------------------
    def run(self) -> WatchResult:
        """Watch until stopped (see the module doc); returns the final report.

        Raises:
            SchemaMissingError: no such slot or publication (checked first).
            DatabaseUnavailableError: the replication connection cannot be (re)opened.
        """
        slot_mod.require_slot_and_publication(self.conn, self.opts.slot, self.opts.publication)
        buf_append = self._buf_append
        try:
            for item in self.feeder.changes():
                if type(item) is CapturedChange:
                    buf_append(item)
                else:
                    self.num_truncates += 1
        except Interrupted as exc:
            self.stopped_by = exc.signal_name
        try:
            return self._finish()
        finally:
            self.stream.close()

    def _buf_append(self, item: CapturedChange) -> None:
        self._buf.append(item)

    def _finish(self) -> WatchResult:
        now = time.monotonic()
        m = self.matcher
        self._poll_ledger(now)
        self._resolve(list(m.intents), now)
        m.sweep(now, self.follower.part_name, self.feeder.where, final=True)
        m.new_missing.clear()
        self.stream.confirm(m.flushable_lsn)  # everything is decided now: release the WAL
        part = self.follower.part_name
        missing = []
        for key, lc in list(m.overdue.items())[: self.opts.max_examples]:
            missing.append(m.ledger_example(key, lc, part(lc.part)))
        f = self.follower
        bad = [{"part": b.part, "line": b.line_no, "text": b.preview} for b in f.bad_lines]
        counts = {
            **self._stream_counts(),
            "captured_truncates": self.num_truncates,
            "open_intents_at_end": len(m.intents),
            "torn_ledger_lines": len(f.torn_tails()),
            **self.feeder.counts(),
        }
        counts.pop("confirmed_lsn")
        notes = [f"stopped: {self.stopped_by or 'stream ended'}", *self.stream.reconnect_notes]
        if m.intents:
            notes.append(f"{len(m.intents)} transactions still without an outcome (in progress)")
        report = final_report(
            m,
            source=f"slot {self.opts.slot} (live)",
            elapsed_s=now - self._t0,
            ledger_bad_lines=f.num_bad_lines + self.num_ledger_problems,
            ledger_bad_examples=(bad + self.ledger_problems)[: self.opts.max_examples],
            missing_examples=missing,
            counts=counts,
            notes=notes,
        )
        return WatchResult(report, m.lag.totals(), self.num_intervals, self.stopped_by)


def print_event(rec: dict[str, Any]) -> None:
    """The default ``emit`` for people: missing reports on stderr (progress is the CLI's)."""
    if rec.get("type") == "missing":
        print(missing_text(rec), file=sys.stderr, flush=True)
