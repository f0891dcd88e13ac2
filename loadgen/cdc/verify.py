"""The verifier: match captured changes to the ledger and run the checks.

A feeder (``capture.feed_slot`` for our pgoutput slot, ``debezium.feed_file`` for a Debezium
dump) calls ``Verifier.add`` once per captured row change, in the order the consumer delivered
them; the verifier matches them to the ledger in vectorized batches and keeps only int columns
per change (see ``ledger_index`` for the memory plan). ``finish`` runs the checks that need the
whole stream and returns a ``VerifyReport``.

Checks: every ledger change captured (missing) exactly once (duplicated); no captured change the
ledger does not explain (unexpected; transactions older than the ledger's first are excluded);
per-key order as delivered versus the ledger; transaction grouping; values; final state.
"""

from __future__ import annotations

import gc
import time
from array import array
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import numpy.typing as npt
import psycopg

from loadgen.cdc import final_state, order_checks
from loadgen.cdc.attribution import named as _named
from loadgen.cdc.attribution import old_tuple_problems
from loadgen.cdc.ledger_index import OP_LETTERS, LedgerIndex, key_hash, ledger_fate_notes
from loadgen.ledger import read_line

DEFAULT_MAX_EXAMPLES = 5
DEFAULT_BATCH_CHANGES = 20_000
_MASK32 = 0xFFFFFFFF

# name → what a failure means (shown in the report)
CHECKS: dict[str, str] = {
    "ledger_lines": "ledger lines that cannot be parsed (other than a torn last line)",
    "ledger_duplicates": "ledger lines recorded twice (same txid and seq)",
    "missing": "ledger changes not captured",
    "duplicated": "captured more than once",
    "unexpected": "captured changes from transactions the ledger does not know",
    "missing_from_ledger": "captured changes of ledger transactions that the ledger does not"
    " list (a lost ledger line, or a trigger/cascade change the generator did not record)",
    "order": "per-key order differs from the ledger's commit order",
    "grouping": "ledger transactions captured partially or split over several transactions",
    "values": "captured after-image differs from the ledger's",
    "old_keys": "a captured update's old key differs from the ledger's (a primary-key change lost,"
    " invented or attributed to the wrong row)",
    "before_images": "captured old tuple differs from the before-image the replica identity"
    " requires (missing, extra, or other values)",
    "final_state": "replayed captured stream differs from the tables' current contents",
}


@dataclass
class CheckResult:
    name: str
    is_ok: bool
    count: int
    description: str
    examples: list[dict[str, Any]] = field(default_factory=list)
    scenarios: list[str] = field(default_factory=list)  # scenarios its failures belong to


@dataclass
class VerifyReport:
    source: str  # "slot NAME" or "debezium FILE"
    counts: dict[str, int]
    checks: list[CheckResult]
    notes: list[str]
    elapsed_s: float

    @property
    def is_ok(self) -> bool:
        return all(c.is_ok for c in self.checks)

    def to_dict(self) -> dict[str, Any]:
        return {
            "ok": self.is_ok,
            "source": self.source,
            "counts": self.counts,
            "elapsed_s": round(self.elapsed_s, 3),
            "notes": self.notes,
            "checks": [
                {
                    "name": c.name,
                    "ok": c.is_ok,
                    "count": c.count,
                    "description": c.description,
                    "scenarios": c.scenarios,
                    "examples": c.examples,
                }
                for c in self.checks
            ],
        }


@contextmanager
def gc_paused() -> Iterator[None]:
    """Pause the cyclic garbage collector while millions of short-lived acyclic objects (parsed
    ledger lines, decoded tuples) are made: its generational passes otherwise cost ~20 % of the
    verifier's time. Nothing here creates reference cycles that need it."""
    was_enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if was_enabled:
            gc.enable()


# A captured change's description, built lazily only for report examples.
Describe = Callable[[], dict[str, Any]]


class Verifier:
    """Match a captured stream against a ``LedgerIndex``. Single-threaded; not reusable."""

    def __init__(
        self,
        ledger: LedgerIndex,
        *,
        max_examples: int = DEFAULT_MAX_EXAMPLES,
        batch_changes: int = DEFAULT_BATCH_CHANGES,
    ) -> None:
        self.L = ledger
        self.max_examples = max_examples
        self.batch_changes = batch_changes
        self.match_count = np.zeros(ledger.num_changes, np.int32)
        self.ledger_xids = np.unique(ledger.xid[~ledger.is_dup])
        self._ledger_truncates: dict[tuple[int, int], list[int]] = {}
        for i, (x, t, _, _) in enumerate(ledger.truncates):
            self._ledger_truncates.setdefault((x & _MASK32, t), []).append(i)
        self._b: list[tuple[int, int, int, int, int, int, int, int, bool]] = []
        self._b_desc: list[Any] = []  # Describe callables, or entries for ``describer``
        # turns a non-callable batch entry into an example (set by feeders that append
        # entries directly: cheaper than one closure per change)
        self.describer: Callable[[Any], dict[str, Any]] = lambda entry: dict(entry)
        # per captured change, kept for the whole run (ints only)
        # 27 bytes per captured change: int8 table/op/partial, 32-bit ledger index and
        # transaction (pgoutput: ordinal; Debezium: txId mod 2^32), int64 pk and row hash
        self.c_table, self.c_pk, self.c_op = array("b"), array("q"), array("b")
        self.c_txn, self.c_li, self.c_rowhash = array("I"), array("i"), array("q")
        self.c_partial = array("b")
        self.truncates: list[tuple[int, int]] = []  # (capture index, table code)
        self.examples: dict[str, list[dict[str, Any]]] = {k: [] for k in CHECKS}
        self.counts: dict[str, int] = {k: 0 for k in CHECKS}
        self.num_captured = 0
        self._num_counted = 0  # of the rows in the current batch, those already counted
        self.num_excluded = 0  # from transactions older than the ledger
        self.num_snapshot = 0  # Debezium snapshot reads (op r): not changes
        self.notes: list[str] = []
        self._t0_ns = time.monotonic_ns()

    # -- feeding ---------------------------------------------------------------------------
    def add(
        self,
        txn: int,
        xid32: int,
        table: int,
        op: int,
        pk: int,
        occ: int,
        rowhash: int,
        is_partial: bool,
        describe: Describe,
    ) -> None:
        """Record one captured row change (op codes as ``ledger_index.OP_CODES``).

        ``rowhash`` is ``row_hash`` of the full after-image (unchanged TOAST resolved), 0 for
        deletes; ``is_partial`` when some unchanged-TOAST value could not be resolved (the
        value check then compares the known columns only, via ``describe``).
        """
        self._b.append((txn, xid32, table, op, pk, occ, rowhash, 0, is_partial))
        self._b_desc.append(describe)
        self.num_captured += 1
        self._num_counted += 1
        if len(self._b) >= self.batch_changes:
            self._flush()

    def add_truncate(self, table: int, xid32: int, describe: Describe) -> None:
        """A captured TRUNCATE of ``table``, matched to a ledger truncate of its transaction."""
        self._flush()
        self.truncates.append((len(self.c_table), table))
        waiting = self._ledger_truncates.get((xid32, table))
        if waiting:
            waiting.pop(0)
        elif self.L.xid8_of(xid32) >= self.L.min_xid:
            self._fail("unexpected", describe)
        else:
            self.num_excluded += 1

    def add_state_only(self, table: int, pk: int, op: int) -> None:
        """A change a consumer must apply that the ledger does not list on its own (the delete
        of the old key when an update changes ``id``): final state only, never matched."""
        self._flush()
        for col, v in (
            (self.c_table, table),
            (self.c_pk, pk),
            (self.c_op, op),
            (self.c_txn, _MASK32),
            (self.c_li, -2),
            (self.c_rowhash, 0),
        ):
            col.append(v)
        self.c_partial.append(0)

    def add_duplicate(self, describe: Describe) -> None:
        """A captured change delivered again (same LSN, table, key, op): a redelivery."""
        self._fail("duplicated", describe)

    def _fail(self, check: str, describe: Describe | dict[str, Any]) -> None:
        self.counts[check] += 1
        if len(self.examples[check]) < self.max_examples:
            self.examples[check].append(_named(describe() if callable(describe) else describe))

    def _flush(self) -> None:
        if not self._b:
            return
        L = self.L
        b = np.array(self._b, dtype=np.int64).reshape(-1, 9)
        self.num_captured += len(self._b) - self._num_counted
        self._num_counted = 0
        entries = self._b_desc

        def descs(i: int) -> dict[str, Any]:
            e = entries[i]
            return e() if callable(e) else self.describer(e)

        txn, xid32, table, op, pk, occ, rowhash, cidx, partial = b.T
        base = L.min_xid
        xid8 = (base & ~_MASK32) | xid32
        xid8 = np.where(xid8 < base - 2**31, xid8 + 2**32, xid8)
        xid8 = np.where(xid8 > base + 2**31, xid8 - 2**32, xid8)
        in_scope = xid8 >= base
        li = np.full(len(b), -1, np.int64)
        if len(L.sorted_khash):
            kh = key_hash(xid32, table, pk, op, occ)
            pos = np.minimum(np.searchsorted(L.sorted_khash, kh), len(L.sorted_khash) - 1)
            cand = L.sorted_idx[pos]
            hit = (
                (L.sorted_khash[pos] == kh)
                & ((L.xid[cand] & _MASK32) == xid32)
                & (L.table[cand] == table)
                & (L.pk[cand] == pk)
                & (L.op[cand] == op)
            )
            li = np.where(hit, cand, -1)
        hit = li >= 0
        np.add.at(self.match_count, li[hit], 1)
        self.num_excluded += int((~in_scope).sum())
        known_txn = np.isin(xid8, self.ledger_xids)
        for i in np.flatnonzero(~hit & in_scope):
            self._fail(
                "missing_from_ledger" if known_txn[i] else "unexpected", lambda i=i: descs(i)
            )
        bad_value = hit & (op != 2) & (L.vhash[np.maximum(li, 0)] != rowhash) & (partial == 0)
        for i in np.flatnonzero(bad_value):  # rare: confirm by column name (hashes are ordered)
            example = self._value_example(int(li[i]), descs(i))
            if example["differences"]:
                self._fail("values", example)
        for i in np.flatnonzero(hit & (partial != 0) & (op != 2)):
            self._check_partial(int(li[i]), descs(i))
        # old keys and before-images: only where the ledger states them (sparse) or the
        # captured change carries a key change (column 7: the feeder's flag)
        has_extra = np.isin(li, L.extra_pos) if len(L.extra_pos) else np.zeros(len(b), bool)
        for i in np.flatnonzero(hit & (has_extra | (cidx != 0))):
            self._check_old(int(li[i]), descs(i))
        self.c_table.extend(table.tolist())
        self.c_pk.extend(pk.tolist())
        self.c_op.extend(op.tolist())
        self.c_txn.extend((txn & _MASK32).tolist())
        self.c_li.extend(li.tolist())
        self.c_rowhash.extend(rowhash.tolist())
        self.c_partial.extend(partial.tolist())
        self._b.clear()  # in place: feeders may hold references to these lists
        self._b_desc.clear()

    def _ledger_example(self, i: int) -> dict[str, Any]:
        part, offset = self.L.line_locator(i)
        line = read_line(part, offset)
        return {
            "ledger_line": f"{part}@{offset}",
            **{
                k: line.get(k)
                for k in ("txid", "seq", "table", "op", "pk", "op_name", "commit_time", "after")
            },
        }

    def _value_example(self, li: int, captured: dict[str, Any]) -> dict[str, Any]:
        led = self._ledger_example(li)
        after_l = led.get("after") or {}
        after_c = captured.get("after") or {}
        diff = {
            k: {"ledger": after_l.get(k, "<absent>"), "captured": after_c.get(k, "<absent>")}
            for k in sorted(set(after_l) | set(after_c))
            if after_l.get(k) != after_c.get(k)
        }
        return {
            "table": led["table"],
            "pk": led["pk"],
            "txid": led["txid"],
            "op_name": led["op_name"],
            "differences": diff,
            "captured_at": captured.get("at"),
        }

    def _check_partial(self, li: int, captured: dict[str, Any]) -> None:
        led = self._ledger_example(li)
        after_l = led.get("after") or {}
        unknown = set(captured.get("unchanged_toast_unknown") or ())
        after_c = captured.get("after") or {}
        if set(after_l) != set(after_c) or any(
            after_l[k] != after_c[k] for k in after_l if k not in unknown
        ):
            self._fail("values", self._value_example(li, captured))

    def _with_op_name(self, example: dict[str, Any]) -> dict[str, Any]:
        """Add the op_name of the ledger's last change of the example's row (which operation,
        or scenario, wrote it last)."""
        code = self.L.codes.codes.get(str(example.get("table")))
        if code is None or "op_name" in example:
            return example
        hits = np.flatnonzero((self.L.table == code) & (self.L.pk == example.get("pk", -1)))
        if len(hits):
            example["op_name"] = self._ledger_example(int(hits[-1]))["op_name"]
        return example

    def _check_old(self, li: int, captured: dict[str, Any]) -> None:
        """Check a matched change's old key and old tuple against its ledger line."""
        for check, example in old_tuple_problems(self.L.extras.get(li), captured):
            self._fail(check, example)

    def _release_batches(self) -> None:
        self._b.clear()
        self._b_desc.clear()

    # -- checks over the whole stream --------------------------------------------------------
    def finish(self, conn: psycopg.Connection | None, source: str) -> VerifyReport:
        """Run the whole-stream checks; with ``conn``, also the final-state check (blocks)."""
        self._flush()
        L = self.L
        self.counts["ledger_duplicates"] = int(L.is_dup.sum())
        for i in np.flatnonzero(L.is_dup)[: self.max_examples]:
            self.examples["ledger_duplicates"].append(self._ledger_example(int(i)))
        bad = [b for b in L.bad_lines if not b.is_torn]
        self.counts["ledger_lines"] = len(bad)
        self.examples["ledger_lines"] = [
            {"part": b.part, "line": b.line_no, "text": b.preview} for b in bad[: self.max_examples]
        ]
        for b in L.bad_lines:
            if b.is_torn:
                self.notes.append(
                    f"torn last line in {b.part} (line {b.line_no}): the writer died"
                    " mid-write (an intent whose COMMIT was never sent, or an outcome: then"
                    " the transaction was resolved from the server)"
                )
        self.notes.extend(ledger_fate_notes(L.fates))
        live = ~L.is_dup
        missing = np.flatnonzero(live & (self.match_count == 0))
        self.counts["missing"] = len(missing)
        self.examples["missing"] = [
            self._ledger_example(int(i)) for i in missing[: self.max_examples]
        ]
        for idxs in self._ledger_truncates.values():
            for i in idxs:
                self.counts["missing"] += 1
                if len(self.examples["missing"]) < self.max_examples:
                    _, _, part, offset = L.truncates[i]
                    line = read_line(L.parts[part], offset)
                    self.examples["missing"].append(
                        {
                            "ledger_line": f"{L.parts[part]}@{offset}",
                            **{k: line.get(k) for k in ("txid", "table", "op", "op_name")},
                        }
                    )
        dup = np.flatnonzero(self.match_count > 1)
        self.counts["duplicated"] += int((self.match_count[dup] - 1).sum())
        for i in dup[: max(0, self.max_examples - len(self.examples["duplicated"]))]:
            self.examples["duplicated"].append(
                {**self._ledger_example(int(i)), "times_captured": int(self.match_count[i])}
            )
        c = {k: _np(getattr(self, f"c_{k}")) for k in ("table", "pk", "op", "txn", "li", "rowhash")}
        self._release_batches()
        order_checks.check_order(self, c)
        order_checks.check_grouping(self, c, live)
        if conn is not None:
            count, examples, notes = final_state.compare(
                conn,
                L.codes.names,
                c["table"],
                c["pk"],
                c["op"],
                c["rowhash"],
                _np(self.c_partial, np.int8),
                self.truncates,
                self.max_examples,
            )
            self.counts["final_state"] = count
            self.examples["final_state"] = [self._with_op_name(e) for e in examples]
            self.notes.extend(notes)
        else:
            self.notes.append("final state not checked (no database connection)")
        elapsed_s = (time.monotonic_ns() - self._t0_ns) / 1e9
        for exs in self.examples.values():  # every failure names its scenario (if any)
            for e in exs:
                _named(e)
        checks = [
            CheckResult(
                k,
                self.counts[k] == 0,
                self.counts[k],
                d,
                self.examples[k],
                sorted({str(e["scenario"]) for e in self.examples[k] if e.get("scenario")}),
            )
            for k, d in CHECKS.items()
        ]
        counts = {
            "ledger_changes": int(live.sum()),
            "ledger_transactions": len(np.unique(L.xid[live])),
            "captured_changes": self.num_captured,
            "matched": int((self.match_count > 0).sum()),
            "excluded_before_ledger": self.num_excluded,
            "snapshot_reads_ignored": self.num_snapshot,
            "captured_truncates": len(self.truncates),
            "ledger_truncates": len(L.truncates),
            "torn_ledger_lines": sum(b.is_torn for b in L.bad_lines),
            "ledger_aborted_transactions": L.fates.get("aborted", 0),
            "ledger_resolved_by_server": L.num_resolved_by_server,
            "ledger_unresolved_transactions": L.fates.get("unresolved", 0)
            + L.fates.get("in progress", 0),
        }
        return VerifyReport(source, counts, checks, self.notes, elapsed_s)


_TYPECODE_DTYPES = {"b": np.int8, "i": np.int32, "I": np.uint32, "q": np.int64}


def _np(a: array[int], dtype: Any = None) -> npt.NDArray[Any]:
    """View an ``array.array`` as numpy (no copy) with the matching dtype."""
    dt = dtype or _TYPECODE_DTYPES[a.typecode]
    return np.frombuffer(a, dtype=dt) if len(a) else np.zeros(0, dt)


def op_letter(code: int) -> str:
    return OP_LETTERS[code]
