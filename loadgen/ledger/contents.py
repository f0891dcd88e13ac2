"""The whole ledger in memory, as Python objects: ``read_ledger`` (tests, small ledgers, reports).

Built from the one reader's chunks (``loadgen.ledger.reader.scan``) with each transaction's fate;
the verifier reads the same chunks into numpy columns instead (``loadgen.cdc.ledger_index``).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import orjson

from loadgen.ledger import records
from loadgen.ledger.reader import BadLine, LedgerScan, Outcome, Resolver, preview, scan
from loadgen.ledger.writer import part_files


@dataclass(frozen=True, slots=True)
class LedgerEntry:
    """One change line, parsed; ``part``/``offset`` locate it for re-reading."""

    txid: int  # xid8 (with epoch)
    seq: int  # order within the transaction, from 0
    table: str
    op: str  # c/u/d/t
    pk: int
    after: dict[str, str | None] | None
    op_name: str
    commit_time: str  # from the outcome (format 2) or the line (format 1); "" when unknown
    writer: int
    mono_ns: int  # monotonic ns when recorded (system-wide clock)
    part: int  # index into LedgerContents.parts
    offset: int  # byte offset of the line in its part
    old_pk: int | None = None  # an update that changed id: the id before it
    before: dict[str, str | None] | None = None  # before-image, when recorded
    status: str = records.COMMITTED  # the transaction's fate (see LedgerScan.fates)


@dataclass
class LedgerContents:
    """Every part of a ledger, read into memory (tests and small ledgers)."""

    parts: list[str]
    entries: list[LedgerEntry] = field(default_factory=list)  # committed changes, file order
    uncommitted: list[LedgerEntry] = field(default_factory=list)  # aborted or unresolved
    bad_lines: list[BadLine] = field(default_factory=list)
    headers: list[tuple[int, dict[str, Any]]] = field(default_factory=list)
    outcomes: dict[int, Outcome] = field(default_factory=dict)

    @property
    def torn_lines(self) -> list[BadLine]:
        return [b for b in self.bad_lines if b.is_torn]

    @property
    def txids(self) -> set[int]:
        """Transactions with committed changes."""
        return {e.txid for e in self.entries}


def entry_from_obj(
    obj: dict[str, Any], part: int, offset: int, status: str, commit_time: str
) -> LedgerEntry:
    """Build a ``LedgerEntry`` from a change line (raises KeyError/TypeError when malformed)."""
    return LedgerEntry(
        txid=int(obj["txid"]),
        seq=int(obj["seq"]),
        table=str(obj["table"]),
        op=str(obj["op"]),
        pk=int(obj["pk"]),
        after=obj["after"],
        op_name=str(obj.get("op_name", "")),
        commit_time=commit_time or str(obj.get("commit_time", "")),
        writer=int(obj.get("writer", -1)),
        mono_ns=int(obj.get("mono_ns", 0)),
        part=part,
        offset=offset,
        old_pk=None if obj.get("old_pk") is None else int(obj["old_pk"]),
        before=obj.get("before"),
        status=status,
    )


def read_line(part: str, offset: int) -> dict[str, Any]:
    """Re-read one ledger line by its byte offset (for report examples)."""
    with open(part, "rb") as f:
        f.seek(offset)
        obj = orjson.loads(f.readline())
    if not isinstance(obj, dict):
        raise ValueError(f"{part}@{offset}: not a ledger line")
    return obj


def read_ledger(path: str | Sequence[str], resolve: Resolver | None = None) -> LedgerContents:
    """Read all parts of the ledger at ``path`` (or of several: a split run's shards, as
    ``part_files`` takes them) into memory, each change with its fate.

    ``entries`` are the committed changes; ``uncommitted`` the intents whose transaction
    aborted or could not be resolved (no outcome, and ``resolve`` — the server — could not
    say, or was not given). Torn and unparseable lines are in ``bad_lines``, never raised.

    Raises:
        ConfigError: no part files at ``path``.
    """
    parts = part_files(path)
    state = LedgerScan(parts, keep_details=True)
    raw: list[tuple[int, int, int, dict[str, Any]]] = []  # (version, part, offset, obj)
    for chunk in scan(parts, state):
        raw.extend(
            (chunk.version, chunk.part, off, o)
            for off, o in zip(chunk.offsets, chunk.changes, strict=True)
        )
    intents: list[int] = sorted(
        {o["txid"] for v, _, _, o in raw if v >= 2 and type(o.get("txid")) is int}
    )
    fates = state.fates(intents, resolve)
    contents = LedgerContents(
        parts=parts, bad_lines=state.bad_lines, headers=state.headers, outcomes=state.outcomes
    )
    for version, pi, offset, obj in raw:
        try:
            if version < 2:
                status, commit_time = records.COMMITTED, ""
            else:
                status = fates[obj["txid"]]
                o = state.outcomes.get(obj["txid"])
                commit_time = o.commit_time if o is not None else ""
            entry = entry_from_obj(obj, pi, offset, status, commit_time)
        except (KeyError, TypeError, ValueError):
            contents.bad_lines.append(BadLine(parts[pi], -1, offset, False, preview(obj)))
            continue
        (contents.entries if status == records.COMMITTED else contents.uncommitted).append(entry)
    return contents
