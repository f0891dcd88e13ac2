"""The captured change: the one shape every CDC source is turned into before verification.

A source reader (a *feeder*: ``slot_feed.SlotFeeder`` for loadgen's pgoutput slot,
``debezium_feed.DebeziumFeeder`` for a Debezium event dump, a live watcher later) reads the
source's own format and yields, in the order the consumer received them:

- ``CapturedChange`` for each row change (create, update, delete) and each snapshot read;
- ``CapturedTruncate`` for each table a TRUNCATE emptied.

What the feeder resolves before yielding, so the verifier never sees a source's quirks: the
table as a small int (``ledger_index.TableCodes``, partitions as their root), ``id`` (a
USING INDEX identity that leaves it out is resolved by ``identity.IdentityTracker``), the
after-image as PostgreSQL's text output (unchanged TOAST carried forward by
``toast.ToastCarry``; a value no earlier image carried stays ``UNCHANGED``), the old key when
an update moved the row, and the old tuple the source sent, as text.

Everything here is read by the verifier's thread only; a feeder is a plain iterator, so a
live source can yield changes as they arrive (``Verifier.add`` takes them one at a time).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any, NamedTuple, Protocol

import numpy as np
import numpy.typing as npt

from loadgen.cdc import pgoutput as P
from loadgen.cdc.ledger_index import OP_CODES

Value = P.Value  # one column: text, None (SQL NULL) or UNCHANGED
UNCHANGED = P.UNCHANGED_TOAST  # a value the source left out (unchanged TOAST) and none carried
UNCHANGED_TEXT = "<unchanged-toast>"  # how reports show it

OP_CREATE, OP_UPDATE, OP_DELETE = OP_CODES["c"], OP_CODES["u"], OP_CODES["d"]
OP_READ = 3  # a snapshot read (Debezium ``op r``): the row as of the snapshot, not a change
OP_LETTERS = "cudr"


class CapturedChange(NamedTuple):
    """One captured row change (or snapshot read), as the consumer received it.

    A NamedTuple, not a dataclass: one is built per change on the verifier's hot path and
    tuples are the cheapest object Python builds. Treat as read-only.
    """

    table: int  # table code (``TableCodes``)
    op: int  # OP_CREATE, OP_UPDATE, OP_DELETE or OP_READ
    pk: int  # the row's ``id`` after the change (deletes: the deleted row's; -1: unknown)
    xid: int  # the source transaction's xid mod 2^32 (pgoutput Begin, Debezium txId)
    position: int  # LSN of the change (pgoutput: the message's; Debezium: source.lsn)
    names: tuple[str, ...]  # the relation's columns, in the order ``values``/``old`` use
    values: tuple[Value, ...] | None  # after-image as text (None: delete)
    unknown: tuple[str, ...] = ()  # columns left UNCHANGED (no earlier image carried them)
    old_pk: int | None = None  # an update that moved the row from another id: that id
    old: tuple[Value, ...] | None = None  # old tuple the source sent, aligned with ``names``
    old_kind: str | None = None  # "K" identity columns only, "O" the whole row, None: none
    ref: int = 0  # where in the source (Debezium: line number; pgoutput: 0)
    is_split_swapped: bool = False  # a key change whose create arrived before its delete


class CapturedTruncate(NamedTuple):
    """A captured TRUNCATE of one table (one per table a TRUNCATE statement named)."""

    table: int
    xid: int  # mod 2^32
    position: int  # LSN
    ref: int = 0


Captured = CapturedChange | CapturedTruncate


@dataclass(slots=True)
class CapturedBatch:
    """Consecutive captured changes as int columns (shape ``(n,)`` each), for a feeder's fast
    path (``Feeder.chunks``): what the verifier needs of each without building it.

    Only plain changes come this way: creates, updates and deletes with no unknown TOAST, no
    key change and no swapped halves. ``rowhash`` is ``hashing.row_hash`` of the after-image
    (0 for deletes). ``change(i)`` builds the i-th as a ``CapturedChange`` (for the few that
    a check compares by column, or a report shows).
    """

    table: npt.NDArray[np.int64]
    op: npt.NDArray[np.int64]
    pk: npt.NDArray[np.int64]
    xid: npt.NDArray[np.int64]  # mod 2^32
    position: npt.NDArray[np.int64]
    rowhash: npt.NDArray[np.int64]
    change: Callable[[int], CapturedChange]

    def __len__(self) -> int:
        return len(self.pk)

    def changes(self) -> Iterator[CapturedChange]:
        """Every change of the batch as a ``CapturedChange``, in order."""
        return map(self.change, range(len(self.pk)))


class LimitedValue(NamedTuple):
    """What a source delivers for a value its encoding cannot carry exactly."""

    limit: str  # the documented behaviour, e.g. "timetz offset lost"
    delivered: str | None  # the text a correct source of that kind delivers instead


class EncodingLimits(Protocol):
    """A source's documented encoding limits (Debezium's; pgoutput has none)."""

    def columns(self, table: int) -> tuple[str, ...]:
        """Columns of ``table`` whose values may hit a limit (empty: none can)."""
        ...

    def deliver(self, table: int, column: str, text: str | None) -> LimitedValue | None:
        """What the source delivers for the value ``text`` (PostgreSQL's text output) of
        ``column``; None when it carries the value exactly."""
        ...


class Feeder(Protocol):
    """A CDC source turned into captured changes, in delivery order.

    ``source`` names it in reports (``slot NAME``, ``debezium FILE``). ``changes()`` may block
    while a live source waits for more; it ends when the source is exhausted (or stopped).
    ``counts()``, ``notes()`` and ``problems()`` are the source's own figures for the report
    (tombstones, transactions, ...), complete once ``changes()`` is exhausted. ``where(item)``
    says where a change came from, for people. ``limits``: the source's encoding limits, or None.
    A feeder may also have ``chunks()``: the same items, with runs of plain changes given as
    ``CapturedBatch`` columns (``chunks_of`` picks it; ``Verifier.take`` accepts both).
    """

    source: str

    @property
    def limits(self) -> EncodingLimits | None: ...

    def changes(self) -> Iterator[Captured]: ...

    def counts(self) -> dict[str, int]: ...

    def notes(self) -> list[str]: ...

    def where(self, item: Captured) -> str: ...

    def problems(self) -> tuple[int, list[dict[str, Any]]]:
        """(number of, examples of) source lines that are not change events."""
        ...


def chunks_of(feeder: Feeder) -> Iterator[Captured | CapturedBatch]:
    """A feeder's items for the verifier: its ``chunks()`` when it has one (the same items as
    ``changes()``, runs of plain changes as ``CapturedBatch`` columns), else ``changes()``."""
    chunks = getattr(feeder, "chunks", None)
    return chunks() if chunks is not None else feeder.changes()  # type: ignore[no-any-return]


def image(names: tuple[str, ...], values: tuple[Value, ...] | None) -> dict[str, Any] | None:
    """A row image as column → text for reports (UNCHANGED shown as ``<unchanged-toast>``)."""
    if values is None:
        return None
    return {
        n: (UNCHANGED_TEXT if v is UNCHANGED else v) for n, v in zip(names, values, strict=True)
    }


def describe(ch: CapturedChange, table_name: str, where: str) -> dict[str, Any]:
    """A captured change as the report shows it (built only for examples)."""
    return {
        "table": table_name,
        "op": OP_LETTERS[ch.op],
        "pk": ch.pk,
        "at": where,
        "after": image(ch.names, ch.values),
        "unchanged_toast_unknown": list(ch.unknown),
        "old_kind": ch.old_kind,
        "old": image(ch.names, ch.old),
        "old_pk": ch.old_pk,
    }
