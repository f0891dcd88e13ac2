"""The live matcher of ``cdc watch``: ledger changes and captured changes, as both arrive.

Matching key, as ``verify``'s: (xid mod 2^32, table, id, op, occurrence), the occurrence
being the change's rank among its transaction's changes of that row and op. A key seen on one
side waits in a *pending* dict (insertion order = arrival order) until the other side brings
it; then both are dropped. So memory grows with what is pending, not with the run's length:
the per-row order check keeps one small tuple for each of the ``ROW_WINDOW`` rows changed
most recently (a row deleted, or changed longer ago, is forgotten: a reordering that far
apart is not seen live), and bounded recent memories (the last ``RECENT`` matched keys and
committed transactions) tell a late redelivery from a change the ledger never had.

Ledger side: a change line is an *intent*; it becomes a committed ledger change when its
transaction's committed outcome is read (format 1 lines: at once). ``sweep(now)`` reports
every committed change pending longer than ``grace_s`` as *missing* (once; it stays pending,
and a later capture counts as ``late``), and decides captured changes that waited as long:
``excluded_before_ledger`` (older than the ledger's first transaction), ``missing_from_ledger``
(a transaction the ledger knows), ``excluded_after_ledger`` (written after every run of the
ledger had ended: ``ledger_window``; such changes are decided at the next sweep, without
waiting for the grace) or ``unexpected``.

Single-threaded; times are ``time.monotonic()`` seconds given by the caller.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Mapping
from typing import Any

from loadgen.cdc import watch_lag
from loadgen.cdc.change import OP_DELETE, OP_LETTERS, UNCHANGED, CapturedChange, image
from loadgen.cdc.ledger_index import OP_CODES, TableCodes, xid8_near
from loadgen.cdc.ledger_window import AfterLedger
from loadgen.cdc.watch_ledger import LedgerLine
from loadgen.cdc.watch_state import (
    CaptureEntry,
    Intent,
    Key,
    LedgerEntry,
    Tally,
    committed_before,
)
from loadgen.ledger import records
from loadgen.ledger.run_end import LedgerEnd

MASK32 = 0xFFFFFFFF
RECENT = 100_000  # matched keys and committed transactions remembered for redeliveries
ROW_WINDOW = 100_000  # rows the per-row order check follows (the most recently changed)
RECENT_TXN_RANKS = 10_000  # transactions whose captured positions rank redeliveries (Debezium)


class Matcher:
    """Match ledger lines and captured transactions as they come (see the module doc)."""

    def __init__(
        self,
        codes: TableCodes,
        *,
        delivery: str = "exactly-once",
        grace_s: float = 60.0,
        uncarried: Mapping[int, frozenset[str]] | None = None,
        max_examples: int = 5,
    ) -> None:
        self.codes = codes
        self.delivery = delivery
        self.grace_s = grace_s
        self.uncarried = dict(uncarried or {})
        self.max_examples = max_examples
        self.tally = Tally()
        self.lag = watch_lag.LagStats()
        self.examples: dict[str, list[dict[str, Any]]] = {}
        self.ledger_pending: dict[Key, LedgerEntry] = {}
        self.overdue: dict[Key, LedgerEntry] = {}  # reported missing, still pending
        self.captured_pending: dict[Key, CaptureEntry] = {}
        self.intents: dict[int, Intent] = {}  # txid8 → changes awaiting their outcome
        self._f1: tuple[int, int, dict[tuple[int, int, int], int]] = (-1, -1, {})
        self.min_xid8: int | None = None
        self.max_xid8 = 0  # the newest ledger transaction read (a later run's are newer)
        self.after = AfterLedger(LedgerEnd(None, (), "not read yet"))  # ``WatchCore`` updates
        self._recent_keys: dict[Key, int] = {}  # matched key → captured position
        self._recent_keys_q: deque[Key] = deque()
        self._recent_txns: set[int] = set()  # committed ledger xid32s
        self._recent_txns_q: deque[int] = deque()
        self._rows: dict[tuple[int, int], tuple[int, int, int, int]] = {}  # order check
        self._pos_ranks: dict[int, dict[tuple[int, int, int], list[int]]] = {}
        self._pos_ranks_q: deque[int] = deque()
        self._txns: deque[list[int]] = deque()  # captured transactions, in commit order
        self._flushable = 0
        self._capture_seq = 0
        self.new_missing: list[dict[str, Any]] = []  # reported since the last take

    # -- examples --------------------------------------------------------------------------
    def fail(self, check: str, example: dict[str, Any] | None) -> None:
        setattr(self.tally, check, getattr(self.tally, check) + 1)
        exs = self.examples.setdefault(check, [])
        if example is not None and len(exs) < self.max_examples:
            exs.append(example)

    def ledger_example(self, key: Key, lc: LedgerEntry, part_name: str) -> dict[str, Any]:
        return {
            "ledger_line": f"{part_name}@{lc.offset}",
            "txid": lc.txid,
            "table": self.codes.names[key[1]],
            "op": OP_LETTERS[key[3]],
            "pk": key[2],
            "op_name": lc.op_name,
        }

    def captured_example(self, c: CaptureEntry, where: str) -> dict[str, Any]:
        ch = c.ch
        return {
            "table": self.codes.names[ch.table],
            "op": OP_LETTERS[ch.op],
            "pk": ch.pk,
            "xid": ch.xid,
            "at": where,
            "after": image(ch.names, ch.values),
        }

    # -- the ledger side -----------------------------------------------------------------------
    def ledger_line(self, line: LedgerLine, now: float) -> None:
        """Take one record the ``LedgerFollower`` read (headers are ignored here).

        Raises KeyError/TypeError/ValueError for a record of the wrong shape."""
        obj = line.obj
        if line.kind == "change":
            self._change_line(line, obj, now)
        elif line.kind == "outcome":
            self.outcome(int(obj["txid"]), str(obj["status"]), now)

    def _change_line(self, line: LedgerLine, obj: dict[str, Any], now: float) -> None:
        txid, seq = int(obj["txid"]), int(obj["seq"])
        op = obj["op"]
        if op == "t":
            return  # truncates are not followed live (docs/cdc.md)
        table = self.codes.code(str(obj["table"]))
        opc, pk = OP_CODES[op], int(obj["pk"])
        if self.min_xid8 is None or txid < self.min_xid8:
            self.min_xid8 = txid
        self.max_xid8 = max(self.max_xid8, txid)
        lc = LedgerEntry(
            line.part, line.offset, int(obj.get("writer", -1)), int(obj.get("mono_ns", 0)),
            txid, obj.get("after"), str(obj.get("op_name", "")), now,
        )  # fmt: skip
        if line.version < 2:  # format 1: committed already; one transaction's lines adjoin
            t, p, ranks = self._f1
            if (t, p) != (txid, line.part):
                ranks = {}
                self._f1 = (txid, line.part, ranks)
                self._committed_txn(txid)
            rk = (table, pk, opc)
            occ = ranks.get(rk, 0)
            ranks[rk] = occ + 1
            self._add_ledger((txid & MASK32, table, pk, opc, occ), lc, now)
            return
        intent = self.intents.get(txid)
        if intent is None:
            intent = self.intents[txid] = Intent(seen_at=now)
        if seq in intent.seqs:
            self.fail("ledger_duplicates", None)
            return
        intent.seqs.add(seq)
        rk = (table, pk, opc)
        occ = intent.ranks.get(rk, 0)
        intent.ranks[rk] = occ + 1
        intent.changes.append(((txid & MASK32, table, pk, opc, occ), lc))

    def outcome(self, txid: int, status: str, now: float, *, by_server: bool = False) -> None:
        """What became of ``txid`` (from an outcome line, or the server for ``by_server``)."""
        intent = self.intents.pop(txid, None)
        if intent is None:
            return
        if status != records.COMMITTED:
            self.tally.ledger_aborted_transactions += 1
            return
        if by_server:
            self.tally.ledger_resolved_by_server += 1
        self._committed_txn(txid)
        for key, lc in intent.changes:
            lc.known_at = now
            self._add_ledger(key, lc, now)

    def _committed_txn(self, txid: int) -> None:
        self.tally.ledger_transactions += 1
        x = txid & MASK32
        if x not in self._recent_txns:
            self._recent_txns.add(x)
            self._recent_txns_q.append(x)
            if len(self._recent_txns_q) > RECENT:
                self._recent_txns.discard(self._recent_txns_q.popleft())

    def _add_ledger(self, key: Key, lc: LedgerEntry, now: float) -> None:
        self.tally.ledger_changes += 1
        c = self.captured_pending.pop(key, None)
        if c is None:
            self.ledger_pending[key] = lc
        else:
            self._match(key, lc, c)
            self._advance_flush()

    def stale_intents(self, now: float) -> list[int]:
        """Transactions whose intent has waited for its outcome longer than the grace."""
        return [t for t, i in self.intents.items() if now - i.seen_at > self.grace_s]

    # -- the captured side -----------------------------------------------------------------
    def captured_txn(
        self, changes: list[CapturedChange], end_lsn: int, lag_ms: float | None, now: float
    ) -> None:
        """One captured transaction's row changes, in delivery order; ``end_lsn`` is what to
        confirm once all are decided; ``lag_ms`` its capture minus commit time."""
        self.tally.captured_transactions += 1
        rec = [end_lsn, len(changes)]
        self._txns.append(rec)
        ranks: dict[tuple[int, int, int, int], int] = {}
        for ch in changes:
            rk = (ch.xid, ch.table, ch.pk, ch.op)
            occ = ranks.get(rk, 0)
            ranks[rk] = occ + 1
            self._captured(ch, occ, rec, lag_ms, now)
        self._advance_flush()

    def captured_one(self, ch: CapturedChange, lag_ms: float | None, now: float) -> None:
        """One captured change of a source without transaction boundaries (Debezium events,
        in delivery order). Its occurrence is ranked by position within its transaction, so
        a redelivery (same transaction and position) keeps its first delivery's rank."""
        ranks = self._pos_ranks.get(ch.xid)
        if ranks is None:
            ranks = self._pos_ranks[ch.xid] = {}
            self._pos_ranks_q.append(ch.xid)
            if len(self._pos_ranks_q) > RECENT_TXN_RANKS:
                self._pos_ranks.pop(self._pos_ranks_q.popleft(), None)
        positions = ranks.setdefault((ch.table, ch.pk, ch.op), [])
        if ch.position in positions:
            occ = positions.index(ch.position)
        else:
            occ = len(positions)
            positions.append(ch.position)
        self._captured(ch, occ, [0, 1], lag_ms, now)
        self._advance_flush()

    def _captured(
        self, ch: CapturedChange, occ: int, rec: list[int], lag_ms: float | None, now: float
    ) -> None:
        t = self.tally
        t.captured_changes += 1
        if lag_ms is not None:
            self.lag.add(self.codes.names[ch.table], lag_ms)
        key = (ch.xid, ch.table, ch.pk, ch.op, occ)
        self._capture_seq += 1
        c = CaptureEntry(ch, self._capture_seq, rec, now)
        lc = self.ledger_pending.pop(key, None)
        if lc is None:
            lc = self.overdue.pop(key, None)
            if lc is not None:
                t.late += 1
        if lc is not None:
            self._match(key, lc, c)
            return
        pos = self._recent_keys.get(key)
        if pos is None and key in self.captured_pending:  # again before the ledger brought it
            pos = self.captured_pending[key].ch.position
        if pos is not None:
            rec[1] -= 1
            if pos == ch.position and self.delivery == "at-least-once":
                t.redelivered += 1
            else:
                self.fail("duplicated", self.captured_example(c, f"lsn {ch.position}"))
            return
        self.captured_pending[key] = c

    def _match(self, key: Key, lc: LedgerEntry, c: CaptureEntry) -> None:
        self.tally.matched += 1
        c.txn[1] -= 1
        ch = c.ch
        self.after.matched_at(ch.position)
        self._recent_keys[key] = ch.position
        self._recent_keys_q.append(key)
        if len(self._recent_keys_q) > RECENT:
            self._recent_keys.pop(self._recent_keys_q.popleft(), None)
        if ch.op != OP_DELETE:
            self._check_values(key, lc, c)
        row = (ch.table, ch.pk)
        last = self._rows.get(row)
        if last is not None:
            seq0, part0, off0, mono0 = last
            if c.seq > seq0 and committed_before(lc, part0, off0, mono0):
                self.fail("order", {**self._row_example(key), "problem": "captured after a"
                                    " change of the row that committed later"})  # fmt: skip
        if ch.op == OP_DELETE:
            self._rows.pop(row, None)
        elif last is None or c.seq > last[0]:
            rows = self._rows
            rows.pop(row, None)  # to the end: the dict is in order of last change
            rows[row] = (c.seq, lc.part, lc.offset, lc.mono_ns)
            if len(rows) > ROW_WINDOW:
                del rows[next(iter(rows))]  # the row changed longest ago leaves the window

    def _row_example(self, key: Key) -> dict[str, Any]:
        return {"table": self.codes.names[key[1]], "pk": key[2], "op": OP_LETTERS[key[3]],
                "xid": key[0]}  # fmt: skip

    def _check_values(self, key: Key, lc: LedgerEntry, c: CaptureEntry) -> None:
        after = lc.after or {}
        skip = self.uncarried.get(key[1], frozenset())
        got = dict(zip(c.ch.names, c.ch.values or (), strict=False))
        diff = {}
        for col, want in after.items():
            if col in skip:
                continue
            have = got.get(col, "<not sent>")
            if have is UNCHANGED:
                continue
            if have != want:
                diff[col] = {"ledger": want, "captured": have}
        if diff:
            self.fail("values", {**self._row_example(key), "columns": diff})

    def _advance_flush(self) -> None:
        q = self._txns
        while q and q[0][1] <= 0:
            self._flushable = max(self._flushable, q.popleft()[0])

    @property
    def flushable_lsn(self) -> int:
        """The end LSN of the last captured transaction whose changes are all decided (0:
        none yet): what the consumer may confirm to the server."""
        return self._flushable

    # -- time --------------------------------------------------------------------------------
    def sweep(self, now: float, part_name: Any, where: Any, *, final: bool = False) -> None:
        """Report ledger changes pending longer than the grace as missing (into
        ``new_missing``), and decide captured changes that waited as long. ``final``:
        everything still pending is decided now."""
        limit = now - self.grace_s
        lp = self.ledger_pending
        while lp:
            key, lc = next(iter(lp.items()))
            if lc.known_at > limit and not final:
                break
            del lp[key]
            self.overdue[key] = lc
            self.tally.missing_reported += 1
            ex = self.ledger_example(key, lc, part_name(lc.part))
            ex["pending_s"] = round(now - lc.known_at, 3)
            self.new_missing.append(ex)
        cp = self.captured_pending
        lsn = self.after.lsn  # written after the ledger's end: decided now
        if lsn is not None and not final:
            for key in [k for k, c in cp.items() if c.ch.position >= lsn and not self._known(k)]:
                c = cp.pop(key)
                c.txn[1] -= 1
                self._decide_unmatched(key, c, where)
        while cp:
            key, c = next(iter(cp.items()))
            if c.at > limit and not final:
                break
            del cp[key]
            c.txn[1] -= 1
            self._decide_unmatched(key, c, where)
        self._advance_flush()

    def _known(self, key: Key) -> bool:
        """Whether the captured change's transaction is the ledger's (committed or open)."""
        return key[0] in self._recent_txns or xid8_near(self.min_xid8, key[0]) in self.intents

    def _decide_unmatched(self, key: Key, c: CaptureEntry, where: Any) -> None:
        full, base = xid8_near(self.min_xid8, key[0]), self.min_xid8
        if full is not None and base is not None and full < base:
            self.tally.excluded_before_ledger += 1
        elif self._known(key):
            self.fail("missing_from_ledger", self.captured_example(c, where(c.ch)))
        elif (full or 0) <= self.max_xid8 or not self.after.take_one(
            c.ch.position, lambda _: self.captured_example(c, where(c.ch))
        ):
            self.fail("unexpected", self.captured_example(c, where(c.ch)))

    @property
    def num_pending(self) -> int:
        """Committed ledger changes not captured yet (overdue ones included)."""
        return len(self.ledger_pending) + len(self.overdue)

    @property
    def num_keys(self) -> int:
        return len(self._rows)

    @property
    def num_recent(self) -> tuple[int, int]:
        """(matched keys, committed transactions) remembered for redeliveries: each grows to
        ``RECENT`` and stays there (the transactions fill later: one holds several changes)."""
        return len(self._recent_keys), len(self._recent_txns)
