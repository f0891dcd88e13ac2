"""The verifier: match captured changes to the ledger, one batch at a time, then run the
checks that need the whole stream.

A feeder (``change.Feeder``) yields ``CapturedChange``/``CapturedTruncate`` in the order the
consumer received them; ``Verifier.add``/``add_truncate`` take them one at a time (a live
source can feed as changes arrive), and every ``batch_changes`` changes are matched to the
ledger in one vectorized step. Per captured change only int columns stay (31 bytes; see
``ledger_index`` for the ledger's memory plan). ``finish`` runs the whole-stream checks and
returns a ``VerifyReport``.

Matching key: (xid mod 2^32, table, id, op, occurrence), the occurrence being the change's rank
among its transaction's changes of the same row and op. A change delivered again (at least
once: same transaction, position and content) keeps the rank of its first delivery, so it
matches the same ledger change: ``delivery`` decides whether that fails (exactly once) or is
counted and reported (at least once; ``delivery_checks``).

Single-threaded: one thread feeds and finishes; not reusable.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable
from operator import itemgetter
from typing import Any

import numpy as np
import numpy.typing as npt
import psycopg

from loadgen.cdc import (
    delivery_checks,
    final_state,
    ledger_checks,
    order_checks,
    snapshot_checks,
    summary,
)
from loadgen.cdc import value_checks as V
from loadgen.cdc.attribution import named as _named
from loadgen.cdc.change import (
    OP_DELETE,
    OP_READ,
    CapturedBatch,
    CapturedChange,
    CapturedTruncate,
    EncodingLimits,
    describe,
)
from loadgen.cdc.hashing import key_hash, row_hash, sorted_search
from loadgen.cdc.ledger_index import LedgerIndex
from loadgen.cdc.ledger_window import AfterLedger
from loadgen.cdc.occurrences import OCCURRENCE_WINDOW, Occurrences
from loadgen.cdc.results import CHECKS, DELIVERY_MODES, VerifyReport
from loadgen.ledger import read_line

DEFAULT_MAX_EXAMPLES = 5
DEFAULT_BATCH_CHANGES = 20_000
_MASK32 = 0xFFFFFFFF
_FLAG_PARTIAL, _FLAG_KEY_CHANGE, _FLAG_SWAPPED = 1, 2, 4
LI_UNMATCHED, LI_STATE_ONLY, LI_READ = -1, -2, -3  # c_li values that are not a ledger index
_F = {name: i for i, name in enumerate(CapturedChange._fields)}
_INT_FIELDS = tuple(_F[k] for k in ("xid", "table", "op", "pk", "position"))  # int columns
_AFTER = itemgetter(_F["names"], _F["values"])
_SPECIAL = itemgetter(_F["unknown"], _F["old_pk"], _F["is_split_swapped"])
_PLAIN = ((), None, False)  # _SPECIAL of a change with no unknown TOAST, key change or swap
# the per-captured-change columns kept for the whole run: 31 bytes a change
_COLUMN_DTYPES: dict[str, Any] = {
    "table": np.int8,
    "pk": np.int64,
    "op": np.int8,
    "xid": np.uint32,
    "li": np.int32,
    "rowhash": np.int64,
    "flags": np.int8,
    "pos": np.uint32,
}


class Verifier:
    """Match a captured stream against a ``LedgerIndex``. Single-threaded; not reusable.

    ``delivery``: ``exactly-once`` (every redelivery fails ``duplicated``) or
    ``at-least-once`` (an exact redelivery is counted, not failed). ``limits``: the source's
    documented encoding limits; with ``fail_on_limits`` they fail the run.
    """

    def __init__(
        self,
        ledger: LedgerIndex,
        *,
        delivery: str = "exactly-once",
        limits: EncodingLimits | None = None,
        fail_on_limits: bool = False,
        publication: str | None = None,
        max_examples: int = DEFAULT_MAX_EXAMPLES,
        batch_changes: int = DEFAULT_BATCH_CHANGES,
    ) -> None:
        if delivery not in DELIVERY_MODES:
            raise ValueError(f"delivery {delivery!r}: use one of {DELIVERY_MODES}")
        self.L = ledger
        self.delivery = delivery
        self.limits = limits
        self.fail_on_limits = fail_on_limits
        self.publication = publication  # which columns the stream carries (final state)
        # table code → columns the ledger records but the stream does not carry (``carried``)
        self.uncarried: dict[int, frozenset[str]] = {}
        self.max_examples = max_examples
        self.batch_changes = batch_changes
        self.match_count = np.zeros(ledger.num_changes, np.int32)
        self.ledger_xids = np.unique(ledger.xid[~ledger.is_dup])
        # a later run's transactions are all newer than every ledger transaction
        self.max_xid = max([int(ledger.xid.max()) if ledger.num_changes else 0]
                           + [t[0] for t in ledger.truncates])  # fmt: skip
        self._ledger_truncates: dict[tuple[int, int], list[int]] = {}
        for i, (x, t, _, _) in enumerate(ledger.truncates):
            self._ledger_truncates.setdefault((x & _MASK32, t), []).append(i)
        self._seen_truncates: set[tuple[int, int, int]] = set()
        self._b_ch: list[CapturedChange] = []  # taken, not yet matched
        self._occ = Occurrences(OCCURRENCE_WINDOW)
        self.where = lambda ch: f"lsn {ch.position} xid {ch.xid}"  # the feeder's, when run
        # per captured change, kept for the whole run (ints only, 31 bytes each)
        # flags: bit 0 partial (unknown TOAST), bit 1 moved here (key change); pos: the
        # position's low 32 bits (redeliveries compare it). One chunk per flush, joined once.
        self._chunks: dict[str, list[npt.NDArray[Any]]] = {k: [] for k in _COLUMN_DTYPES}
        self.num_rows = 0  # captured rows kept (changes, reads, state-only deletes)
        self.truncates: list[tuple[int, int]] = []  # (capture index, table code)
        self.examples: dict[str, list[dict[str, Any]]] = {k: [] for k in CHECKS}
        self.counts: dict[str, int] = {k: 0 for k in CHECKS}
        self.limit_counts: dict[str, int] = {}
        self.num_captured = 0
        self.num_excluded = 0  # from transactions older than the ledger
        self.after = AfterLedger(ledger.end)  # written after the ledger's runs had ended
        self.num_reads = 0  # snapshot reads (op r)
        self.num_redelivered = 0  # exact redeliveries (``delivery_checks``)
        self.num_redelivered_truncates = 0
        self.notes: list[str] = []
        self._t0_ns = time.monotonic_ns()

    # -- feeding ---------------------------------------------------------------------------
    def add(self, ch: CapturedChange) -> None:
        """Take one captured change (or snapshot read) in delivery order. Matching happens in
        batches: call ``flush`` to have everything taken so far checked (``finish`` does)."""
        b = self._b_ch
        b.append(ch)
        if len(b) >= self.batch_changes:
            self.flush()

    def take(self, items: Iterable[CapturedChange | CapturedTruncate | CapturedBatch]) -> None:
        """``add``/``add_truncate``/``add_batch`` every item of ``items``, in order, until it
        is exhausted (a feeder's ``changes()`` or ``chunks()``; blocks while it does). The
        inline form of ``add``."""
        b, limit, flush = self._b_ch, self.batch_changes, self.flush
        add_truncate = self.add_truncate
        for item in items:
            if type(item) is CapturedChange:
                b.append(item)
                if len(b) >= limit:
                    flush()
            elif type(item) is CapturedBatch:
                self.add_batch(item)  # type: ignore[arg-type]
            else:
                add_truncate(item)  # type: ignore[arg-type]

    def add_batch(self, batch: CapturedBatch) -> None:
        """Take a run of plain captured changes given as columns (a feeder's ``chunks()``),
        in delivery order after everything taken before; matched at once."""
        self.flush()
        if len(batch):
            flags = np.zeros(len(batch), np.int64)
            self._check(batch.xid, batch.table, batch.op, batch.pk, batch.position,
                        batch.rowhash, flags, batch.change)  # fmt: skip

    def add_truncate(self, t: CapturedTruncate) -> None:
        """A captured TRUNCATE of one table, matched to a ledger truncate of its transaction;
        the same truncate again (same xid, position and table) is a redelivery."""
        self.flush()
        key = (t.xid, t.position, t.table)
        self.truncates.append((self.num_rows, t.table))
        if key in self._seen_truncates:
            self.num_redelivered_truncates += 1
            if self.delivery == "exactly-once":
                self._fail("duplicated", self._truncate_example(t, "delivered again"))
            return
        self._seen_truncates.add(key)
        waiting = self._ledger_truncates.get((t.xid, t.table))
        xid8 = self.L.xid8_of(t.xid)
        if waiting:
            waiting.pop(0)
        elif xid8 < self.L.min_xid:
            self.num_excluded += 1
        elif xid8 <= self.max_xid or not self.after.take_one(
            t.position, lambda _: self._truncate_example(t, None)
        ):
            self._fail("unexpected", self._truncate_example(t, None))

    def _truncate_example(self, t: CapturedTruncate, problem: str | None) -> dict[str, Any]:
        ex = {"table": self.L.codes.names[t.table], "op": "truncate", "at": self.where(t)}
        return {**ex, "problem": problem} if problem else ex

    def _fail(self, check: str, example: dict[str, Any], n: int = 1) -> None:
        self.counts[check] += n
        if len(self.examples[check]) < self.max_examples:
            self.examples[check].append(_named(example))

    def describe(self, ch: CapturedChange) -> dict[str, Any]:
        return describe(ch, self.L.codes.names[ch.table], self.where(ch))

    def _lookup(
        self, kh: npt.NDArray[np.int64], xid32: Any, table: Any, pk: Any, op: Any
    ) -> npt.NDArray[np.int64]:
        """Ledger index of each row with match-key hash ``kh`` (-1: none), hits confirmed
        field by field."""
        L = self.L
        if not len(L.sorted_khash):
            return np.full(len(kh), LI_UNMATCHED, np.int64)
        pos = np.minimum(sorted_search(L.sorted_khash, kh), len(L.sorted_khash) - 1)
        cand = L.sorted_idx[pos]
        hit = (
            (L.sorted_khash[pos] == kh)
            & ((L.xid[cand] & _MASK32) == xid32)
            & (L.table[cand] == table)
            & (L.pk[cand] == pk)
            & (L.op[cand] == op)
        )
        return np.where(hit, cand, LI_UNMATCHED).astype(np.int64)

    def flush(self) -> None:
        """Match and check every change taken since the last flush (vectorized)."""
        chs = self._b_ch
        if not chs:
            return
        n = len(chs)
        xid32, table, op, pk, pos = (
            np.fromiter(map(itemgetter(k), chs), np.int64, n) for k in _INT_FIELDS
        )
        # hashing.row_hash of each after-image (0 for deletes)
        rowhash = np.fromiter(
            (0 if c.values is None or c.op == OP_DELETE else row_hash(*_AFTER(c)) for c in chs),
            np.int64,
            n,
        )
        # flags: unknown TOAST, key change, halves swapped; most changes have none of them
        flags = np.zeros(n, np.int64)
        special = ~np.fromiter(map(_PLAIN.__eq__, map(_SPECIAL, chs)), bool, n)
        for i in np.flatnonzero(special):
            ch = chs[i]
            flags[i] = (
                (_FLAG_PARTIAL if ch.unknown else 0)
                | (0 if ch.old_pk is None else _FLAG_KEY_CHANGE)
                | (_FLAG_SWAPPED if ch.is_split_swapped else 0)
            )
        self._check(xid32, table, op, pk, pos, rowhash, flags, chs.__getitem__)
        chs.clear()

    def _check(
        self,
        xid32: npt.NDArray[np.int64],
        table: npt.NDArray[np.int64],
        op: npt.NDArray[np.int64],
        pk: npt.NDArray[np.int64],
        pos: npt.NDArray[np.int64],
        rowhash: npt.NDArray[np.int64],
        flags: npt.NDArray[np.int64],
        change: Callable[[int], CapturedChange],
    ) -> None:
        """Match and check ``n`` captured changes given as columns (``change(i)``: the i-th
        as a ``CapturedChange``, for the few a check looks at by column)."""
        L = self.L
        n = len(pk)
        self.num_captured += n
        is_read = op == OP_READ
        base = L.min_xid
        xid8 = (base & ~_MASK32) | xid32
        xid8 = np.where(xid8 < base - 2**31, xid8 + 2**32, xid8)
        xid8 = np.where(xid8 > base + 2**31, xid8 - 2**32, xid8)
        in_scope = (xid8 >= base) & ~is_read
        zero = np.zeros(n, np.int64)
        group = key_hash(xid32, table, pk, op, zero)  # the key with occurrence 0
        li = self._lookup(group, xid32, table, pk, op)
        multi = np.flatnonzero(  # groups the ledger has 2+ changes in: rank by position
            self._lookup(key_hash(xid32, table, pk, op, zero + 1), xid32, table, pk, op) >= 0
        )
        if len(multi):
            occ = np.array(self._occ.ranks(group[multi].tolist(), pos[multi].tolist()), np.int64)
            later = multi[occ > 0]  # rank 0 matched already
            occ = occ[occ > 0]
            xm, tm, pm, om = xid32[later], table[later], pk[later], op[later]
            li[later] = self._lookup(key_hash(xm, tm, pm, om, occ), xm, tm, pm, om)
        li[is_read] = LI_READ
        hit = li >= 0
        np.add.at(self.match_count, li[hit], 1)
        self.num_excluded += int((~in_scope & ~is_read).sum())
        self.num_reads += int(is_read.sum())
        known_txn = np.isin(xid8, self.ledger_xids)
        unmatched = ~hit & in_scope
        newer = unmatched & (xid8 > self.max_xid)  # (so not a ledger transaction)
        late = self.after.split(pos, newer, hit, lambda i: self.describe(change(i)))
        for i in np.flatnonzero(unmatched & ~late).tolist():
            check = "missing_from_ledger" if known_txn[i] else "unexpected"
            self._fail(check, self.describe(change(i)))
        partial = (flags & _FLAG_PARTIAL) != 0
        bad = hit & (op != OP_DELETE) & ((L.vhash[np.maximum(li, 0)] != rowhash) | partial)
        for i in np.flatnonzero(bad).tolist():  # rare: compare by column name (hashes are ordered)
            V.check_values(self, int(li[i]), change(i))
        # old keys and before-images: only where the ledger states them (sparse) or the
        # captured change carries a key change
        has_extra = np.isin(li, L.extra_pos) if len(L.extra_pos) else np.zeros(n, bool)
        for i in np.flatnonzero(hit & (has_extra | ((flags & _FLAG_KEY_CHANGE) != 0))).tolist():
            V.check_old(self, int(li[i]), change(i))
        for i in np.flatnonzero((flags & _FLAG_SWAPPED) != 0).tolist():
            self._fail("order", V.swapped_example(self, change(i), int(li[i])))
        # a key change also deletes the old key: a state-only row just before the change
        moved = np.flatnonzero((flags & _FLAG_KEY_CHANGE) != 0)
        stored_flags = partial.astype(np.int64) | (((flags & _FLAG_KEY_CHANGE) != 0) << 1)
        cols = [table, pk, op, xid32, li, rowhash, stored_flags, pos]
        if len(moved):
            old_pks = [int(change(i).old_pk) for i in moved.tolist()]  # type: ignore[arg-type]
            extra: list[Any] = [table[moved], old_pks, OP_DELETE, _MASK32, LI_STATE_ONLY]
            extra += [0, 0, pos[moved]]
            cols = [np.insert(c, moved, e) for c, e in zip(cols, extra, strict=True)]
        cols[7] = cols[7] & _MASK32
        for (k, dtype), col in zip(_COLUMN_DTYPES.items(), cols, strict=True):
            self._chunks[k].append(col.astype(dtype))
        self.num_rows += len(cols[0])

    def ledger_example(self, i: int) -> dict[str, Any]:
        part, offset = self.L.line_locator(i)
        line = read_line(part, offset)
        return {
            "ledger_line": f"{part}@{offset}",
            **{
                k: line.get(k)
                for k in ("txid", "seq", "table", "op", "pk", "op_name", "commit_time", "after")
            },
        }

    def with_op_name(self, example: dict[str, Any]) -> dict[str, Any]:
        """Add the op_name of the ledger's last change of the example's row (which operation,
        or scenario, wrote it last)."""
        code = self.L.codes.codes.get(str(example.get("table")))
        if code is None or "op_name" in example:
            return example
        hits = np.flatnonzero((self.L.table == code) & (self.L.pk == example.get("pk", -1)))
        if len(hits):
            example["op_name"] = self.ledger_example(int(hits[-1]))["op_name"]
        return example

    # -- checks over the whole stream --------------------------------------------------------
    def columns(self) -> dict[str, npt.NDArray[Any]]:
        """The per-captured-change columns (table, pk, op, xid, li, rowhash, flags, pos), in
        delivery order. Joins each column's chunks once (one column's extra memory at a time)."""
        out = {}
        for k, dtype in _COLUMN_DTYPES.items():
            chunks = self._chunks[k]
            if len(chunks) != 1:
                joined = np.concatenate(chunks) if chunks else np.zeros(0, dtype)
                chunks.clear()
                chunks.append(joined)
            out[k] = chunks[0]
        return out

    def finish(self, conn: psycopg.Connection | None, source: str) -> VerifyReport:
        """Run the whole-stream checks; with ``conn``, also the final-state check (blocks)."""
        self.flush()
        L = self.L
        ledger_checks.check_lines(self)
        c = self.columns()
        first = delivery_checks.check(self, c)  # first deliveries (redeliveries counted)
        live = ~L.is_dup
        snap = snapshot_checks.SnapshotResult.empty(L.num_changes)
        if self.num_reads:
            snap = snapshot_checks.check(self, c, first, conn)
        missing = np.flatnonzero(live & (self.match_count == 0) & ~snap.covered)
        self.counts["missing"] += len(missing)
        self.examples["missing"].extend(
            self.ledger_example(int(i)) for i in missing[: self.max_examples]
        )
        ledger_checks.missing_truncates(self)
        order_checks.check_order(self, c, first)
        order_checks.check_grouping(self, c, first, live & ~snap.covered)
        if conn is not None:
            count, examples, notes = final_state.compare(
                conn, L.codes.names, c, self.truncates, self.max_examples,
                full_tables=snap.tables, limits=self.limits, publication=self.publication,
            )  # fmt: skip
            self.counts["final_state"] = count
            self.examples["final_state"] = [self.with_op_name(e) for e in examples]
            self.notes.extend(notes)
        else:
            self.notes.append("final state not checked (no database connection)")
        self.notes.extend(self.after.finish(self.counts, self.examples, self.max_examples))
        return summary.report(self, source, live, snap.counts)
