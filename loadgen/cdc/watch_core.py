"""What every ``cdc watch`` source shares: the growing ledger, the matcher, the intervals, the end.

``WatchCore`` follows the ledger (``watch_ledger.LedgerFollower``) into one
``watch_match.Matcher`` and runs the housekeeping a source calls while it is idle or between
its deliveries (``idle()``: poll the ledger, every ``interval_s`` sweep for missing changes and
emit the interval record, decide whether to stop). A source subclass (``watch_run.Watch`` for
the slot, ``watch_debezium.DebeziumWatch`` for an event file) feeds captured changes in and
adds its own counts. Single-threaded.

Stops on ``stop()`` (the CLI's SIGINT/SIGTERM), ``max_duration_s``, or with
``until_caught_up`` once the stream has finished (every part's writer process is gone, no
intent waits for its outcome, no torn line) and nothing is pending on either side.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import psycopg

from loadgen import scenarios, tables
from loadgen.cdc.ledger_index import TableCodes
from loadgen.cdc.results import VerifyReport
from loadgen.cdc.watch_ledger import LedgerFollower
from loadgen.cdc.watch_markers import MarkerStats
from loadgen.cdc.watch_match import Matcher
from loadgen.cdc.watch_report import final_report, interval_record
from loadgen.ledger.resolve import xact_status
from loadgen.ledger.run_end import ledger_end
from loadgen.lsn import parse_lsn
from loadgen.processes import is_alive

DEFAULT_GRACE_S = 60.0
DEFAULT_INTERVAL_S = 1.0


@dataclass
class WatchOptions:
    """What to watch and how (ranges: ``cdc watch --help``)."""

    ledger: str
    slot: str = ""
    publication: str = ""
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


def watched_tables() -> list[str]:
    """The hospital tables and the scenarios' (what a watch matches against the ledger)."""
    return list(tables.TABLE_NAMES) + [
        n for n in scenarios.table_names() if n not in tables.TABLE_NAMES
    ]


class WatchCore:
    """The ledger side and the housekeeping of one watch run (see the module doc).

    ``emit(record)`` receives every interval record and every missing report (``{"type":
    "missing", ...}``) as they happen; ``conn`` (autocommit) resolves intents without an
    outcome with ``pg_xact_status`` (None: they stay open)."""

    def __init__(
        self,
        conn: psycopg.Connection | None,
        opts: WatchOptions,
        emit: Callable[[dict[str, Any]], None],
        stop: Callable[[], str | None] | None = None,
        *,
        uncarried: dict[str, frozenset[str]] | None = None,
        codes: TableCodes | None = None,
    ) -> None:
        self.conn = conn
        self.stop = stop  # returns why to stop now (a signal's name), or None
        self.opts = opts
        self.emit = emit
        self.codes = codes or TableCodes(watched_tables())
        self.matcher = Matcher(
            self.codes,
            delivery=opts.delivery,
            grace_s=opts.grace_s,
            uncarried={self.codes.code(t): c for t, c in (uncarried or {}).items()},
            max_examples=opts.max_examples,
        )
        self.follower = LedgerFollower(opts.ledger)
        self.markers = MarkerStats()  # stream --markers, as a source delivers them
        self._t0 = time.monotonic()
        self._next_tick = self._t0 + opts.interval_s
        self._matched_before = 0
        self.num_intervals = 0
        self.stopped_by = ""
        self.ledger_problems: list[dict[str, Any]] = []
        self.num_ledger_problems = 0
        self.metrics: Any = None  # a watch_metrics.WatchMetrics (--metrics-port), or None
        # on a stop signal: (its name, the server's WAL position then, the drain's deadline)
        self._drain: tuple[str, int, float] | None = None
        self.drain_note = ""

    # -- what a source provides ------------------------------------------------------------
    def where(self, ch: Any) -> str:
        return f"lsn {ch.position} xid {ch.xid}"

    def source_counts(self) -> dict[str, Any]:
        return {}

    def reconnects(self) -> int | None:
        """The source's reconnections so far (None: it has no connection to lose)."""
        return None

    def read_through(self) -> int | None:
        """The LSN before which the source has handed over everything the server sent (None:
        a source that cannot say, so a stop is not preceded by a drain)."""
        return None

    def start_drain(self) -> None:
        """A stop was asked: the source should report its position promptly from now on."""

    def publish(self) -> None:
        """Hand the figures so far to ``/metrics`` (when served)."""
        if self.metrics is not None:
            from loadgen.cdc.watch_metrics import snapshot

            bad = self.follower.num_bad_lines + self.num_ledger_problems
            self.metrics.publish(snapshot(self.matcher, bad, self.reconnects()))

    # -- housekeeping ----------------------------------------------------------------------
    def idle(self) -> bool:
        """Poll the ledger; every interval sweep and emit. False: stop now."""
        now = time.monotonic()
        why = self.stop() if self.stop is not None else None
        if why and not self._keep_draining(why, now):
            self.stopped_by = why
            return False
        self.poll_ledger(now)
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

    def _keep_draining(self, why: str, now: float) -> bool:
        """On a stop signal, first read what the slot already holds: everything committed
        before the signal (the server's WAL position then), for at most ``grace_s``, so the
        verdict is not "missing" for changes the watch had not reached yet. False: stop now
        (drained, the deadline passed, a second signal, or a source that cannot drain)."""
        if self._drain is None:
            if self.read_through() is None or self.conn is None or why.endswith("(again)"):
                return False
            self.poll_ledger(now)  # the ledger first: its commits all precede the position
            row = self.conn.execute("SELECT pg_current_wal_lsn()::text").fetchone()
            target = parse_lsn(str(row[0])) if row else 0
            self._drain = (why, target, now + self.opts.grace_s)
            self.start_drain()
            self.emit({"type": "draining", "to_lsn": str(row[0]) if row else "0/0",
                       "up_to_s": self.opts.grace_s})  # fmt: skip
        _, target, deadline = self._drain
        if why.endswith("(again)"):
            return False
        position = self.read_through()
        if position is not None and position >= target:
            return False
        if now >= deadline:
            self.drain_note = (
                f"the slot was not read up to the stop's position within {self.opts.grace_s:g} s"
            )
            return False
        return True

    def poll_ledger(self, now: float) -> None:
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
        self._read_end()
        m.sweep(now, self.follower.part_name, self.where)
        for ex in m.new_missing:
            self.emit({"type": "missing", **ex})
        m.new_missing.clear()
        extra = {**self.source_counts(), "markers": self.markers.take_interval()}
        rec = interval_record(m, now - self._t0, self._matched_before, extra)
        self._matched_before = m.tally.matched
        self.num_intervals += 1
        self.publish()  # after the interval record: its lag samples are folded
        self.emit(rec)

    def _read_end(self) -> None:
        """The ledger's end as its runs' end files say now (after a ledger poll: a new run's
        parts, which exist before its first commit, make it unknown again)."""
        self.matcher.after.update(ledger_end([p.path for p in self.follower.parts]))

    def _resolve(self, txids: list[int], now: float) -> None:
        """Ask the server about intents without an outcome (a writer killed before it)."""
        if not txids or self.conn is None:
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
            and not any(is_alive(pid) for pid in f.writer_pids())
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

    # -- the end -------------------------------------------------------------------------------
    def final_sweep(self) -> None:
        """Read the ledger a last time, resolve open intents, decide everything pending."""
        now = time.monotonic()
        m = self.matcher
        self.poll_ledger(now)
        self._resolve(list(m.intents), now)
        self._read_end()
        m.sweep(now, self.follower.part_name, self.where, final=True)
        m.new_missing.clear()

    def result(self, source: str, counts: dict[str, Any], notes: list[str]) -> WatchResult:
        """The final report (after ``final_sweep``)."""
        m = self.matcher
        part = self.follower.part_name
        missing = [
            m.ledger_example(key, lc, part(lc.part))
            for key, lc in list(m.overdue.items())[: self.opts.max_examples]
        ]
        f = self.follower
        bad = [{"part": b.part, "line": b.line_no, "text": b.preview} for b in f.bad_lines]
        counts = {
            **counts,
            "open_intents_at_end": len(m.intents),
            "torn_ledger_lines": len(f.torn_tails()),
        }
        notes = [f"stopped: {self.stopped_by or 'stream ended'}", *notes]
        if self._drain is not None:
            notes.append(self.drain_note or "the slot was read up to the stop's position first")
        if m.intents:
            notes.append(f"{len(m.intents)} transactions still without an outcome (in progress)")
        report = final_report(
            m,
            source=source,
            elapsed_s=time.monotonic() - self._t0,
            ledger_bad_lines=f.num_bad_lines + self.num_ledger_problems,
            ledger_bad_examples=(bad + self.ledger_problems)[: self.opts.max_examples],
            missing_examples=missing,
            counts=counts,
            notes=notes,
        )
        lag = m.lag.totals()
        self.publish()
        return WatchResult(
            report, lag, self.num_intervals, self.stopped_by, {"markers": self.markers.totals()}
        )
