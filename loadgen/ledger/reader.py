"""The one ledger reader: parts → change records in chunks, outcomes, and each transaction's fate.

``scan`` streams every part in chunks of about 4 MiB (bounded memory), parses each line once
(orjson), sorts headers and outcomes out and yields the change records; ``LedgerScan`` keeps
what it learned (outcomes, headers, unparseable lines). ``LedgerScan.fates`` then says, for the
transactions whose changes were read, which committed: format-1 changes always; format-2 ones
by their outcome record, else by asking the server (``resolve``: ``pg_xact_status``).

``loadgen.ledger.contents.read_ledger`` builds Python objects from these chunks (tests, small
ledgers); the verifier's ``LedgerIndex`` (``loadgen.cdc.ledger_index``) builds numpy columns.
"""

from __future__ import annotations

import io
import itertools
import operator
from array import array
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import msgspec
import numpy as np
import numpy.typing as npt
import orjson

from loadgen.ledger import records

CHUNK_BYTES = 4 * 1024 * 1024  # ledger bytes parsed per chunk (bounded transient memory)
UNRESOLVED = "unresolved"  # no outcome, and the server could not say
# txids -> status per txid: "committed", "aborted", "in progress", or None (the server cannot
# tell); ``loadgen.ledger.resolve.server_resolver`` asks pg_xact_status
Resolver = Callable[[Sequence[int]], Mapping[int, str | None]]


@dataclass(frozen=True, slots=True)
class BadLine:
    """A line that could not be parsed: ``torn`` when it is the unterminated last line."""

    part: str
    line_no: int  # 1-based; -1 when found after parsing (a record with a wrong shape)
    offset: int  # bytes
    is_torn: bool
    preview: str  # the first 80 characters


class ChangeLine(msgspec.Struct, gc=False):
    """Any ledger line decoded by type (``scan(typed=True)``): a change record's fields
    (``records.ChangeRecord``) with ``after``/``before`` kept as their raw JSON text (decoded
    only when a check needs them), plus the ``type``/``status``/``by``/``version`` that header
    and outcome lines carry. A field the line lacks is None (``before``: empty text)."""

    txid: int | None = None
    seq: int | None = None
    table: str | None = None
    op: str | None = None
    pk: int | None = None
    after: msgspec.Raw = msgspec.Raw(b"null")
    op_name: str | None = None
    mono_ns: int = 0
    old_pk: int | None = None
    before: msgspec.Raw = msgspec.Raw(b"")
    type: str | None = None
    status: str | None = None
    by: str | None = None
    version: int | None = None

    @property
    def has_extras(self) -> bool:
        """``records.has_extras``: an old key or a before-image is recorded."""
        return self.old_pk is not None or len(self.before) > 0


_TYPED = msgspec.json.Decoder(ChangeLine)
_TYPE = operator.attrgetter("type")


@dataclass(frozen=True, slots=True)
class Chunk:
    """Consecutive change records of one part, all of one format version."""

    part: int  # index into the scan's parts
    version: int  # records.FORMAT_VERSION or records.LEGACY_VERSION
    offsets: list[int]  # byte offset of each record's line in its part
    changes: list[Any]  # parsed change lines: dicts (shape checked by the consumer), or
    # ``ChangeLine``s when ``typed`` (types checked; required fields may still be None)
    typed: bool = False


@dataclass(frozen=True, slots=True)
class Outcome:
    status: str  # records.COMMITTED / records.ABORTED
    by: str
    commit_time: str


@dataclass
class Fates:
    """The fate of a set of format-2 transactions (``LedgerScan.fates_of``)."""

    txids: npt.NDArray[np.int64]  # sorted, unique
    is_committed: npt.NDArray[np.bool_]  # per txid
    counts: dict[str, int]  # committed / aborted / in progress / unresolved -> transactions
    num_by_server: int  # of them, answered by ``resolve`` (no outcome in the ledger)
    others: dict[int, str]  # txids without an outcome and not committed -> what the server said


@dataclass
class LedgerScan:
    """What reading the parts found besides change records (filled while ``scan`` runs).

    Outcomes are kept as two int64 arrays (committed, aborted txids: 16 bytes per
    transaction, for ledgers of millions); with ``keep_details`` also as ``Outcome`` objects
    (``outcomes``: who decided, commit time) for ``read_ledger``.
    """

    parts: list[str]
    keep_details: bool = False
    bad_lines: list[BadLine] = field(default_factory=list)
    headers: list[tuple[int, dict[str, Any]]] = field(default_factory=list)  # (part, header)
    outcomes: dict[int, Outcome] = field(default_factory=dict)  # only with keep_details
    committed_txids: array[int] = field(default_factory=lambda: array("q"))
    aborted_txids: array[int] = field(default_factory=lambda: array("q"))

    def fates_of(self, intents: npt.NDArray[np.int64], resolve: Resolver | None = None) -> Fates:
        """The fate of each format-2 transaction in ``intents`` (sorted unique txids).

        A committed outcome anywhere wins (a COMMIT that returned is the strongest evidence);
        transactions without an outcome go to ``resolve`` (the server) in one call; without a
        resolver, or when it cannot say, they are ``unresolved``.
        """
        committed = np.frombuffer(self.committed_txids, np.int64) if self.committed_txids else _NONE
        aborted = np.frombuffer(self.aborted_txids, np.int64) if self.aborted_txids else _NONE
        is_c = np.isin(intents, committed)
        is_a = np.isin(intents, aborted) & ~is_c
        counts = {records.COMMITTED: int(is_c.sum()), records.ABORTED: int(is_a.sum())}
        missing = intents[~is_c & ~is_a]
        num_by_server = 0
        others: dict[int, str] = {}
        if len(missing):
            answers = resolve(missing.tolist()) if resolve is not None else {}
            pos = np.searchsorted(intents, missing)
            for i, txid in zip(pos.tolist(), missing.tolist(), strict=True):
                status = answers.get(txid) or UNRESOLVED
                if status != UNRESOLVED:
                    num_by_server += 1
                if status == records.COMMITTED:
                    is_c[i] = True
                else:
                    others[txid] = status
                counts[status] = counts.get(status, 0) + 1
        return Fates(intents, is_c, {k: v for k, v in counts.items() if v}, num_by_server, others)

    def fates(self, intent_txids: Sequence[int], resolve: Resolver | None = None) -> dict[int, str]:
        """Per txid: committed, aborted, in progress or unresolved (small ledgers, tests)."""
        f = self.fates_of(np.unique(np.asarray(list(intent_txids), np.int64)), resolve)
        return {
            t: records.COMMITTED if c else f.others.get(t, records.ABORTED)
            for t, c in zip(f.txids.tolist(), f.is_committed.tolist(), strict=True)
        }

    @property
    def torn_lines(self) -> list[BadLine]:
        return [b for b in self.bad_lines if b.is_torn]

    def _outcome(self, obj: dict[str, Any], part: str, line_no: int, offset: int) -> None:
        if not records.valid_outcome(obj):
            self.bad_lines.append(BadLine(part, line_no, offset, False, preview(obj)))
            return
        txid, status = obj["txid"], obj["status"]
        (self.committed_txids if status == records.COMMITTED else self.aborted_txids).append(txid)
        if self.keep_details:
            old = self.outcomes.get(txid)
            if old is None or old.status != records.COMMITTED:
                self.outcomes[txid] = Outcome(
                    status, str(obj["by"]), str(obj.get("commit_time", ""))
                )


_NONE = np.zeros(0, np.int64)


def preview(obj: object) -> str:
    return orjson.dumps(obj)[:80].decode("utf-8", "replace")


def _parse(raw: bytes) -> dict[str, Any] | None:
    if not raw.endswith(b"\n"):
        return None  # torn: the writer died mid-line
    try:
        obj = orjson.loads(raw)
    except orjson.JSONDecodeError:
        return None
    return obj if type(obj) is dict else None


def _typed_chunks(
    state: LedgerScan, pi: int, version: int, offset: int, line_no: int, block: bytes
) -> tuple[list[Chunk], int, int] | None:
    """A block of whole lines (at byte ``offset`` of part ``pi``) decoded by type in one call
    (msgspec, line by line, no copy): (chunks, version after them, lines read), or None when
    some line does not fit ``ChangeLine``, is blank or does not start with ``{`` (the caller
    parses them one by one)."""
    buf = np.frombuffer(block, np.uint8)
    ends = np.flatnonzero(buf == 0x0A)
    if not len(ends) or ends[-1] != len(block) - 1:
        return None  # (a torn last line)
    starts = np.concatenate(([0], ends[:-1] + 1))
    if not np.all(buf[starts] == 0x7B):  # so that one value per line is one value per '{'
        return None
    try:
        recs = _TYPED.decode_lines(block)
    except msgspec.DecodeError:  # (also a ValidationError: a field of another type)
        return None
    if len(recs) != len(ends):  # (two values on one line)
        return None
    offs = (starts + offset).tolist()
    types = list(map(_TYPE, recs))
    if types.count(None) == len(types):
        return [Chunk(pi, version, offs, recs, True)], version, len(recs)
    typed = [i for i, t in enumerate(types) if t is not None]
    chunks, start, part = [], 0, state.parts[pi]
    committed, aborted = state.committed_txids, state.aborted_txids

    def flush(end: int) -> None:
        is_change = list(map(operator.is_, types[start:end], itertools.repeat(None)))
        keep = list(itertools.compress(recs[start:end], is_change))
        if keep:
            keep_offs = list(itertools.compress(offs[start:end], is_change))
            chunks.append(Chunk(pi, version, keep_offs, keep, True))

    for i in typed:
        o = recs[i]
        if o.type == records.TYPE_OUTCOME and not state.keep_details and o.txid is not None:
            if o.by is not None and o.status == records.COMMITTED:
                committed.append(o.txid)
                continue
            if o.by is not None and o.status == records.ABORTED:
                aborted.append(o.txid)
                continue
        # (rare: a header, or an outcome to look at closely)
        obj = orjson.loads(block[starts[i] : ends[i] + 1])
        if o.type == records.TYPE_OUTCOME:
            state._outcome(obj, part, line_no + 1 + i, offs[i])
        elif o.type == records.TYPE_HEADER and o.version is not None:
            flush(i)
            start, version = i + 1, o.version
            state.headers.append((pi, obj))
        else:
            state.bad_lines.append(BadLine(part, line_no + 1 + i, offs[i], False, preview(obj)))
    flush(len(recs))
    return chunks, version, len(recs)


def _blocks(f: Any, typed: bool) -> Iterator[tuple[bytes, list[bytes] | None]]:
    """The part open as ``f`` in blocks of about ``CHUNK_BYTES`` of whole lines: (block, None)
    when ``typed`` (the lines are split only if the typed decode fails), else (b"", lines)."""
    while True:
        if not typed:
            lines = f.readlines(CHUNK_BYTES)
            if not lines:
                return
            yield b"", lines
            continue
        block = f.read(CHUNK_BYTES)
        if not block:
            return
        if not block.endswith(b"\n"):
            block += f.readline()
        yield block, None


def scan(parts: Sequence[str], state: LedgerScan, *, typed: bool = False) -> Iterator[Chunk]:
    """Yield the change records of every part, in file order, in chunks (streams the files).

    Headers and outcomes go into ``state``; unparseable lines into ``state.bad_lines`` (a last
    line without its newline is *torn*: its writer died mid-write) and are skipped.
    ``typed``: decode each chunk's lines by type in one call (``ChangeLine``, msgspec) where
    they all fit; a chunk where some line does not comes as dicts, as without ``typed``.
    """
    loads, by_type = orjson.loads, typed
    for pi, part in enumerate(parts):
        offset = 0
        line_no = 0
        version = records.LEGACY_VERSION
        with open(part, "rb") as f:
            for block, split in _blocks(f, by_type):
                fast = _typed_chunks(state, pi, version, offset, line_no, block) if block else None
                if fast is not None:
                    # The consumer holds the only reference to a chunk, and the block and its
                    # chunks are freed before the next block is decoded: its objects then
                    # reuse memory still in cache (twice as fast as allocating more).
                    offset += len(block)
                    chunks, version, num_lines = fast
                    line_no += num_lines
                    del fast, block
                    while chunks:
                        yield chunks.pop(0)
                    continue
                lines = split if split is not None else io.BytesIO(block).readlines()
                del block
                offs = list(itertools.accumulate(map(len, lines), initial=offset))
                offset = offs.pop()
                try:
                    objs: list[Any] = [loads(raw) for raw in lines]
                    ok = lines[-1].endswith(b"\n") and all(type(o) is dict for o in objs)
                except orjson.JSONDecodeError:
                    ok = False
                nos = range(line_no + 1, line_no + 1 + len(lines))
                line_no += len(lines)
                if not ok:  # the slow path: line by line, keeping what parses
                    good = []
                    for raw, off, no in zip(lines, offs, nos, strict=True):
                        obj = _parse(raw)
                        if obj is None:
                            if raw.strip():
                                state.bad_lines.append(
                                    BadLine(
                                        part,
                                        no,
                                        off,
                                        not raw.endswith(b"\n"),
                                        raw[:80].decode("utf-8", "replace"),
                                    )
                                )
                            continue
                        good.append((obj, off, no))
                    objs = [g[0] for g in good]
                    offs = [g[1] for g in good]
                    nos = [g[2] for g in good]  # type: ignore[assignment]
                # split off headers and outcomes: comprehensions, the common case (outcomes
                # only, no header) needs no per-line Python loop
                typed_at = [i for i, o in enumerate(objs) if "type" in o]
                if not typed_at:
                    if objs:
                        yield Chunk(pi, version, offs, objs)
                    continue
                if all(objs[i].get("type") == records.TYPE_OUTCOME for i in typed_at):
                    committed, aborted = state.committed_txids, state.aborted_txids
                    slow = state.keep_details
                    for i in typed_at:
                        o = objs[i]
                        txid, status = o.get("txid"), o.get("status")
                        if slow or type(txid) is not int or "by" not in o:
                            state._outcome(o, part, nos[i], offs[i])
                        elif status == records.COMMITTED:
                            committed.append(txid)
                        elif status == records.ABORTED:
                            aborted.append(txid)
                        else:
                            state._outcome(o, part, nos[i], offs[i])  # reported as bad
                    changes_only = [o for o in objs if "type" not in o]
                    if changes_only:
                        offs = [off for off, o in zip(offs, objs, strict=True) if "type" not in o]
                        yield Chunk(pi, version, offs, changes_only)
                    continue
                changes: list[dict[str, Any]] = []
                change_offs: list[int] = []
                for obj, off, no in zip(objs, offs, nos, strict=True):
                    kind = obj.get("type")
                    if kind is None:
                        changes.append(obj)
                        change_offs.append(off)
                    elif kind == records.TYPE_OUTCOME:
                        state._outcome(obj, part, no, off)
                    elif kind == records.TYPE_HEADER and type(obj.get("version")) is int:
                        if changes:  # a new writer's stretch: flush the old version's records
                            yield Chunk(pi, version, change_offs, changes)
                            changes, change_offs = [], []
                        version = obj["version"]
                        state.headers.append((pi, obj))
                    else:
                        state.bad_lines.append(BadLine(part, no, off, False, preview(obj)))
                if changes:
                    yield Chunk(pi, version, change_offs, changes)
