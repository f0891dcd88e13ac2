"""The live matcher and the ledger follower of `cdc watch`, without a database.

Ledger lines are written with the real ``LedgerWriter`` and read back with the
``LedgerFollower``; captured transactions are built as the slot feeder builds them. Times are
given explicitly, so grace and lag arithmetic is exact.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from loadgen.cdc import watch_match
from loadgen.cdc.change import OP_CREATE, OP_DELETE, OP_UPDATE, CapturedChange
from loadgen.cdc.ledger_index import TableCodes
from loadgen.cdc.watch_lag import LagStats
from loadgen.cdc.watch_ledger import LedgerFollower
from loadgen.cdc.watch_match import Matcher
from loadgen.ledger import LedgerWriter
from loadgen.ledger.changes import RowChange

NAMES = ("id", "nome")
XID = 1_000_000 + (5 << 32)  # an xid8 with an epoch: the stream carries xid mod 2^32
X32 = XID & 0xFFFFFFFF


def cap(op: int, pk: int, nome: str | None, *, xid: int = X32, pos: int = 100) -> CapturedChange:
    code = TableCodes().codes["pacientes"]
    vals = None if op == OP_DELETE else (str(pk), nome)
    return CapturedChange(code, op, pk, xid, pos, NAMES, vals)


def row(op: str, pk: int, nome: str | None) -> RowChange:
    after = None if op == "d" else {"id": str(pk), "nome": nome}
    return RowChange("pacientes", op, pk, after, "test")


class Rig:
    def __init__(self, tmp: Path, **kw: object) -> None:
        self.path = str(tmp / "ledger")
        self.follower = LedgerFollower(self.path)
        self.m = Matcher(TableCodes(), **kw)  # type: ignore[arg-type]

    def poll(self, now: float) -> None:
        for line in self.follower.poll():
            self.m.ledger_line(line, now)

    def sweep(self, now: float, final: bool = False) -> None:
        self.m.sweep(now, self.follower.part_name, lambda ch: f"lsn {ch.position}", final=final)


def test_follower_waits_for_ledger_and_for_a_torn_line_to_complete(tmp_path: Path) -> None:
    rig = Rig(tmp_path)
    assert rig.follower.poll() == [] and not rig.follower.exists  # no ledger yet: waits
    with LedgerWriter(rig.path, 0) as w:
        w.intent(XID, [row("c", 1, "Ana")])
    lines = rig.follower.poll()
    assert [x.kind for x in lines] == ["header", "change"]
    part = rig.follower.part_name(0)
    with open(part, "ab") as f:
        f.write(b'{"type":"outcome","txid":')  # the writer is mid-line
    assert rig.follower.poll() == [] and rig.follower.torn_tails() == [part]
    with open(part, "ab") as f:
        f.write(b'%d,"status":"committed","by":"commit","writer":0}\n' % XID)
    (done,) = rig.follower.poll()
    assert done.kind == "outcome" and done.obj["txid"] == XID and not rig.follower.torn_tails()


def test_either_side_first_matches_once_and_drops_both(tmp_path: Path) -> None:
    rig = Rig(tmp_path)
    with LedgerWriter(rig.path, 0) as w:
        w.write_txn(XID, "t", [row("c", 1, "Ana"), row("u", 1, "Bia"), row("u", 1, "Cida")])
    # the capture arrives before the ledger is read: it waits, then matches
    rig.m.captured_txn(
        [cap(OP_CREATE, 1, "Ana"), cap(OP_UPDATE, 1, "Bia"), cap(OP_UPDATE, 1, "Cida")],
        end_lsn=500,
        lag_ms=3.0,
        now=0.0,
    )
    assert len(rig.m.captured_pending) == 3 and rig.m.flushable_lsn == 0  # not confirmed yet
    rig.poll(0.5)
    t = rig.m.tally
    assert (t.matched, t.values, t.order, t.ledger_changes) == (3, 0, 0, 3)
    assert not rig.m.captured_pending and not rig.m.ledger_pending
    assert rig.m.flushable_lsn == 500  # every change decided: the position may be confirmed


def test_value_difference_and_occurrence_rank(tmp_path: Path) -> None:
    rig = Rig(tmp_path)
    with LedgerWriter(rig.path, 0) as w:
        w.write_txn(XID, "t", [row("u", 7, "um"), row("u", 7, "dois")])
    rig.poll(0.0)
    # the second update of the row carries other content: the rank pairs it with "dois"
    rig.m.captured_txn([cap(OP_UPDATE, 7, "um"), cap(OP_UPDATE, 7, "DOIS")], 10, None, 0.1)
    assert rig.m.tally.matched == 2 and rig.m.tally.values == 1
    (ex,) = rig.m.examples["values"]
    assert ex["columns"] == {"nome": {"ledger": "dois", "captured": "DOIS"}}


def test_missing_after_grace_then_late_and_final(tmp_path: Path) -> None:
    rig = Rig(tmp_path, grace_s=5.0)
    with LedgerWriter(rig.path, 0) as w:
        w.write_txn(XID, "t", [row("c", 1, "Ana")])
        w.write_txn(XID + 1, "t", [row("c", 2, "Bia")])
    rig.poll(10.0)
    rig.sweep(14.9)
    assert rig.m.new_missing == []  # within the grace: pending, not missing
    rig.sweep(15.1)
    assert sorted(e["pk"] for e in rig.m.new_missing) == [1, 2]
    assert all(e["pending_s"] >= 5.0 for e in rig.m.new_missing)
    rig.m.new_missing.clear()
    rig.sweep(30.0)
    assert rig.m.new_missing == []  # reported once
    rig.m.captured_txn([cap(OP_CREATE, 1, "Ana")], 20, 100.0, 31.0)
    t = rig.m.tally
    assert (t.late, t.matched, t.missing_reported, len(rig.m.overdue)) == (1, 1, 2, 1)


def test_unmatched_captures_are_told_apart(tmp_path: Path) -> None:
    rig = Rig(tmp_path, grace_s=1.0, delivery="exactly-once")
    with LedgerWriter(rig.path, 0) as w:
        w.write_txn(XID, "t", [row("c", 1, "Ana")])
    rig.poll(0.0)
    rig.m.captured_txn([cap(OP_CREATE, 1, "Ana")], 10, None, 0.0)
    rig.m.captured_txn(  # same key at another position again: duplicated at once
        [cap(OP_CREATE, 1, "Ana", pos=300)], 11, None, 0.0
    )
    rig.m.captured_txn(
        [
            cap(OP_UPDATE, 1, "x"),  # the ledger's transaction, a change it does not list
            cap(OP_UPDATE, 1, "y", xid=X32 + 50),  # a transaction the ledger never had
            cap(OP_UPDATE, 1, "z", xid=X32 - 50),  # older than the ledger: excluded
        ],
        12,
        None,
        0.0,
    )
    rig.sweep(0.5)
    assert rig.m.tally.unexpected == 0 and len(rig.m.captured_pending) == 3  # within grace
    rig.sweep(2.0)
    t = rig.m.tally
    assert (t.duplicated, t.missing_from_ledger, t.unexpected, t.excluded_before_ledger) == (
        1,
        1,
        1,
        1,
    )
    assert rig.m.flushable_lsn == 12


def test_at_least_once_counts_an_exact_redelivery(tmp_path: Path) -> None:
    rig = Rig(tmp_path, delivery="at-least-once")
    with LedgerWriter(rig.path, 0) as w:
        w.write_txn(XID, "t", [row("c", 1, "Ana")])
    rig.poll(0.0)
    for _ in range(2):
        rig.m.captured_txn([cap(OP_CREATE, 1, "Ana")], 10, None, 0.0)
    assert (rig.m.tally.redelivered, rig.m.tally.duplicated) == (1, 0)


@pytest.mark.parametrize(
    ("delivery", "want"), [("at-least-once", (1, 0)), ("exactly-once", (0, 1))]
)
def test_delivered_twice_before_the_ledger_brought_it(
    tmp_path: Path, delivery: str, want: tuple[int, int]
) -> None:
    """A watch that reads a capture's file (first delivery and redelivery) ahead of the
    ledger: the second delivery is told apart from the first, not silently put in its place."""
    rig = Rig(tmp_path, delivery=delivery)
    rig.m.captured_one(cap(OP_CREATE, 1, "Ana"), None, 0.0)
    rig.m.captured_one(cap(OP_CREATE, 1, "Ana"), None, 0.1)  # same transaction and position
    with LedgerWriter(rig.path, 0) as w:
        w.write_txn(XID, "t", [row("c", 1, "Ana")])
    rig.poll(0.2)
    t = rig.m.tally
    assert (t.redelivered, t.duplicated) == want
    assert (t.matched, len(rig.m.captured_pending), t.captured_changes) == (1, 0, 2)


def test_order_across_one_writer(tmp_path: Path) -> None:
    rig = Rig(tmp_path)
    with LedgerWriter(rig.path, 0) as w:
        w.write_txn(XID, "t", [row("u", 3, "first")])
        w.write_txn(XID + 1, "t", [row("u", 3, "second")])
        w.write_txn(XID + 2, "t", [row("d", 3, None)])
    rig.poll(0.0)
    # the later transaction delivered first: one order failure, values still match
    rig.m.captured_txn([cap(OP_UPDATE, 3, "second", xid=X32 + 1)], 10, None, 0.0)
    rig.m.captured_txn([cap(OP_UPDATE, 3, "first")], 11, None, 0.0)
    assert (rig.m.tally.order, rig.m.tally.values, rig.m.tally.matched) == (1, 0, 2)
    rig.m.captured_txn([cap(OP_DELETE, 3, None, xid=X32 + 2)], 12, None, 0.0)
    assert rig.m.num_keys == 0  # a deleted row is forgotten (memory follows live keys)


def test_aborted_intent_is_dropped_and_server_resolution_counts(tmp_path: Path) -> None:
    rig = Rig(tmp_path)
    with LedgerWriter(rig.path, 0) as w:
        w.intent(XID, [row("c", 1, "Ana")])
        w.outcome(XID, "aborted")
        w.intent(XID + 1, [row("c", 2, "Bia")])  # no outcome: a writer killed after COMMIT
    rig.poll(0.0)
    assert rig.m.tally.ledger_aborted_transactions == 1 and list(rig.m.intents) == [XID + 1]
    rig.m.outcome(XID + 1, "committed", 1.0, by_server=True)
    assert rig.m.tally.ledger_resolved_by_server == 1 and rig.m.num_pending == 1


def test_lag_percentiles_interval_and_run() -> None:
    lag = LagStats()
    for v in range(1, 101):
        lag.add("consultas", float(v))
    lag.add("exames", 1000.0)
    first = lag.take_interval()
    assert first["all"]["count"] == 101 and first["all"]["max"] == 1000.0
    assert first["tables"]["consultas"]["p50"] == 50.5
    assert first["tables"]["consultas"]["p99"] == 99.01
    lag.add("consultas", 5.0)
    second = lag.take_interval()
    assert second["all"] == {"count": 1, "p50": 5.0, "p95": 5.0, "p99": 5.0, "max": 5.0}
    total = lag.totals()["tables"]["consultas"]
    assert total["count"] == 101 and total["max"] == 100.0
    assert 49.0 <= total["p50"] <= 52.0 and 97.0 <= total["p99"] <= 100.0  # 2 % buckets


def test_order_check_follows_a_bounded_window_of_rows(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(watch_match, "ROW_WINDOW", 2)
    rig = Rig(tmp_path)
    with LedgerWriter(rig.path, 0) as w:
        for i in range(5):
            w.write_txn(XID + i, "t", [row("c", 10 + i, "x")])
        w.write_txn(XID + 9, "t", [row("u", 14, "y")])
    rig.poll(0.0)
    for i in range(5):
        rig.m.captured_txn([cap(OP_CREATE, 10 + i, "x", xid=X32 + i)], 10 + i, None, 0.0)
    assert rig.m.num_keys == 2  # the rows changed longest ago left the window
    rig.m.captured_txn([cap(OP_UPDATE, 14, "y", xid=X32 + 9)], 20, None, 0.0)
    assert rig.m.num_keys == 2 and rig.m.tally.order == 0 and rig.m.tally.matched == 6
