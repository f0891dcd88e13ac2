"""For each scenario, one fault injected into the real captured pgoutput stream makes the
verifier fail, and every failing check names that scenario.

One run of every scenario and one read of the slot; each fault is a small edit of the raw
message list (drop a message, a value rewritten, two messages swapped, a message added), fed to
the same feeder ``loadgen cdc verify`` uses. The clean stream must verify first.
"""

from __future__ import annotations

import struct
from collections.abc import Callable
from dataclasses import dataclass

import pytest

from loadgen import scenarios
from loadgen.cdc import ledger_index, verify_run
from loadgen.cdc import pgoutput as P
from loadgen.cdc import slot as S
from loadgen.cdc.change import UNCHANGED_TEXT
from loadgen.cdc.results import VerifyReport
from loadgen.cdc.slot_feed import SlotFeeder, partition_roots
from loadgen.cdc.verify import Verifier
from tests.fixtures.pgoutput_wire import encode_tuple
from tests.integration import test_scenarios
from tests.integration.test_scenarios import Cdc

cdc = test_scenarios.cdc  # the fixture: scenario tables, publications and a fresh slot

pytestmark = pytest.mark.db

Row = tuple[int, int, bytes]  # (lsn, xid, pgoutput message), as slot.iter_slot yields


def encode_row_change(msg: P.Insert | P.Update) -> bytes:
    head = (b"I" if isinstance(msg, P.Insert) else b"U") + struct.pack(">I", msg.relid)
    if isinstance(msg, P.Update) and msg.old is not None:
        head += (msg.old_kind or "O").encode() + encode_tuple(msg.old)
    return head + b"N" + encode_tuple(msg.new)


@dataclass
class Stream:
    """The captured messages, decoded once, with their relation names."""

    rows: list[Row]
    msgs: list[P.PgOutputMessage]
    table: list[str | None]  # relation name of each row change (None for other messages)

    def find(self, want: Callable[[P.PgOutputMessage, str], bool], nth: int = 0) -> int:
        hits = [
            i
            for i, (m, t) in enumerate(zip(self.msgs, self.table, strict=True))
            if t is not None and want(m, t)
        ]
        return hits[nth]


def read_stream(cdc: Cdc) -> Stream:
    rows = [r for batch in S.iter_slot(cdc.conn, cdc.slot, cdc.publication) for r in batch]
    msgs = [P.decode(r[2]) for r in rows]
    rels: dict[int, str] = {}
    names: list[str | None] = []
    for m in msgs:
        if isinstance(m, P.Relation):
            rels[m.relid] = m.name
        relid = getattr(m, "relid", None) if not isinstance(m, P.Relation) else None
        names.append(rels[relid] if relid is not None else None)
    return Stream(rows, msgs, names)


# -- the faults: each returns a new message list --------------------------------------------


def drop(s: Stream, i: int) -> list[Row]:
    return s.rows[:i] + s.rows[i + 1 :]


def swap(s: Stream, i: int, j: int) -> list[Row]:
    rows = list(s.rows)
    rows[i], rows[j] = rows[j], rows[i]
    return rows


def marker_as_value(s: Stream, i: int, column: int | None = None) -> list[Row]:
    """The consumer stored a placeholder as data: an unchanged-TOAST column (or ``column``)
    replaced by the marker's text."""
    m = s.msgs[i]
    assert isinstance(m, P.Insert | P.Update)
    new = tuple(
        UNCHANGED_TEXT if v is P.UNCHANGED_TOAST or k == column else v for k, v in enumerate(m.new)
    )
    assert new != m.new
    m2 = (
        P.Update(m.relid, m.old_kind, m.old, new)
        if isinstance(m, P.Update)
        else P.Insert(m.relid, new)
    )
    rows = list(s.rows)
    rows[i] = (rows[i][0], rows[i][1], encode_row_change(m2))
    return rows


def leak(s: Stream, i: int, new: tuple[P.Value, ...]) -> list[Row]:
    """A change of a rolled-back transaction shows up: an insert added after message ``i``."""
    m = s.msgs[i]
    assert isinstance(m, P.Insert | P.Update)
    rows = list(s.rows)
    rows.insert(i + 1, (rows[i][0], rows[i][1], encode_row_change(P.Insert(m.relid, new))))
    return rows


def _is(
    kind: type, table: str, *, pred: Callable[[P.PgOutputMessage], bool] = lambda m: True
) -> Callable[[P.PgOutputMessage, str], bool]:
    return lambda m, t: isinstance(m, kind) and t == table and pred(m)


def _has_toast_marker(m: P.PgOutputMessage) -> bool:
    return isinstance(m, P.Update) and P.UNCHANGED_TOAST in m.new


def _move_pair(s: Stream) -> tuple[int, int]:
    """The delete and insert of a row moving between partitions (adjacent, same id)."""
    for i in range(len(s.msgs) - 1):
        a, b = s.msgs[i], s.msgs[i + 1]
        if (
            isinstance(a, P.Delete)
            and isinstance(b, P.Insert)
            and (s.table[i] or "").startswith("cdc_agenda")
        ):
            return i, i + 1
    raise AssertionError("no partition move in the stream")


FAULTS: dict[str, Callable[[Stream], list[Row]]] = {
    "toast-unchanged": lambda s: marker_as_value(
        s, s.find(lambda m, t: t == "cdc_laudos" and _has_toast_marker(m))
    ),
    # the USING INDEX delete: its old tuple has no id, the row is found by codigo
    "replica-identity": lambda s: drop(s, s.find(_is(P.Delete, "cdc_identidade_index"))),
    # the key change delivered before the update that preceded it (same row)
    "pk-update": lambda s: swap(
        s, s.find(_is(P.Update, "cdc_pacientes"), 1), s.find(_is(P.Update, "cdc_pacientes"), 2)
    ),
    "delete-tombstone": lambda s: drop(s, s.find(_is(P.Delete, "cdc_pacientes"))),
    "truncate": lambda s: drop(
        s, next(i for i, m in enumerate(s.msgs) if isinstance(m, P.Truncate))
    ),
    "big-transaction": lambda s: drop(s, s.find(_is(P.Insert, "cdc_eventos"), 100)),
    "rollback": lambda s: leak(
        s, s.find(_is(P.Insert, "cdc_rascunhos")), ("987654", "nunca existiu", "descartado")
    ),
    "numeric-extremes": lambda s: marker_as_value(s, s.find(_is(P.Insert, "cdc_numericos")), 2),
    "time-extremes": lambda s: marker_as_value(s, s.find(_is(P.Insert, "cdc_tempos")), 2),
    "types": lambda s: marker_as_value(s, s.find(_is(P.Insert, "cdc_tipos")), 3),
    "unicode": lambda s: marker_as_value(s, s.find(_is(P.Insert, "cdc_textos")), 1),
    # the first insert after ADD COLUMN (a new Relation message came before it)
    "schema-change": lambda s: drop(s, s.find(_is(P.Insert, "cdc_evolucao"), 3)),
    "partitioned": lambda s: swap(s, *_move_pair(s)),
}


def with_old(
    s: Stream, i: int, old_kind: str | None, old: Callable[[P.Update], tuple[P.Value, ...] | None]
) -> list[Row]:
    """An update's old tuple replaced (``old`` gets the original message)."""
    m = s.msgs[i]
    assert isinstance(m, P.Update)
    rows = list(s.rows)
    rows[i] = (
        rows[i][0],
        rows[i][1],
        encode_row_change(P.Update(m.relid, old_kind, old(m), m.new)),
    )
    return rows


def _key_change(m: P.PgOutputMessage) -> bool:
    return isinstance(m, P.Update) and m.old is not None and m.old[0] != m.new[0]


# (scenario, the check that must fail) → fault: old keys and before-images
OLD_TUPLE_FAULTS: dict[tuple[str, str], Callable[[Stream], list[Row]]] = {
    # FULL: the old row of an update lost
    ("replica-identity", "before_images"): lambda s: with_old(
        s, s.find(_is(P.Update, "cdc_identidade_full")), None, lambda m: None
    ),
    # DEFAULT, an update that changes no key column: an old key sent anyway
    ("replica-identity", "before_images "): lambda s: with_old(
        s,
        s.find(_is(P.Update, "cdc_identidade_default")),
        "K",
        lambda m: (m.new[0], None, None, None),
    ),
    # the old key of a primary-key change attributed to another row
    ("pk-update", "old_keys"): lambda s: with_old(
        s,
        s.find(_is(P.Update, "cdc_pacientes", pred=_key_change)),
        "K",
        lambda m: ("424242", *(None,) * (len(m.new) - 1)),
    ),
}


def verify_rows(cdc: Cdc, ledger: ledger_index.LedgerIndex, rows: list[Row]) -> VerifyReport:
    verifier = Verifier(ledger)
    schema = str(cdc.conn.execute("SELECT current_schema()").fetchone()[0])  # type: ignore[index]
    feeder = SlotFeeder(
        rows,
        name="test",
        schema=schema,
        codes=ledger.codes,
        identity_lookup=ledger.pk_by_identity,
        table_of=partition_roots(cdc.conn),
    )
    verify_run.feed(verifier, feeder)
    return verifier.finish(cdc.conn, "test")


def test_each_scenario_fault_fails_verify_naming_the_scenario(cdc: Cdc) -> None:
    assert set(FAULTS) == set(scenarios.SCENARIOS)
    cdc.run(*scenarios.SCENARIOS)
    stream = read_stream(cdc)
    ledger = ledger_index.load(cdc.ledger)
    clean = verify_rows(cdc, ledger, stream.rows)
    assert clean.is_ok, {c.name: c.examples[:1] for c in clean.checks if not c.is_ok}
    for name, fault in FAULTS.items():
        report = verify_rows(cdc, ledger, fault(stream))
        failed = [c for c in report.checks if not c.is_ok]
        assert failed, f"{name}: the fault went unnoticed"
        for c in failed:
            assert any(name in s for s in c.scenarios), (name, c.name, c.examples[:1])
    for (name, check), fault in OLD_TUPLE_FAULTS.items():
        report = verify_rows(cdc, ledger, fault(stream))
        by_name = {c.name: c for c in report.checks}
        assert not by_name[check.strip()].is_ok, (name, check)
        assert by_name[check.strip()].scenarios == [name]
