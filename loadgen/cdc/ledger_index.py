"""The ledger as compact numpy columns, indexed for matching captured changes.

Memory plan: a ledger of 5 million changes must verify in under 1 GiB, so nothing per change
stays a Python object. Each change keeps ~60 bytes of int columns: its match key hashed to 64
bits (sorted, for ``searchsorted``), the fields to confirm a hash hit exactly, a 64-bit hash of
its after-image, and where its line is (part, byte offset) so that report examples re-read the
few lines they show. 5M changes ≈ 300 MB of columns, plus transient parsing buffers.
"""

from __future__ import annotations

from array import array
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import numpy.typing as npt
import orjson

from loadgen import tables
from loadgen.cdc.hashing import (  # re-exported: where the verifier's modules look for them
    by_key_stable,
    dict_hash,
    key_hash,
    mix_hash,
    occurrences,
    ranks_in_file_order,
    row_hash,
)
from loadgen.cdc.ledger_columns import OP_CODES, as_dict, typed_columns
from loadgen.cdc.ledger_fates import keep_committed
from loadgen.ledger import BadLine, LedgerScan, Resolver, part_files, records, scan
from loadgen.ledger.run_end import LedgerEnd, ledger_end
from loadgen.op_names import scenario_op_name

__all__ = [
    "OP_CODES", "LedgerExtra", "LedgerIndex", "TableCodes", "by_key_stable", "dict_hash",
    "key_hash", "load", "mix_hash", "occurrences", "ranks_in_file_order",
    "row_hash",
]  # fmt: skip

OP_LETTERS = "cud"


@dataclass
class TableCodes:
    """Small ints for table names, shared by the ledger and the captured side."""

    names: list[str] = field(default_factory=lambda: list(tables.TABLE_NAMES))

    def __post_init__(self) -> None:
        self.codes = {n: i for i, n in enumerate(self.names)}

    def code(self, name: str) -> int:
        c = self.codes.get(name)
        if c is None:
            c = self.codes[name] = len(self.names)
            self.names.append(name)
        return c


@dataclass(frozen=True, slots=True)
class LedgerExtra:
    """What a ledger line says about the old tuple a consumer must receive (scenario lines)."""

    old_pk: int | None  # the update changed ``id``: the id before it
    before: dict[str, str | None] | None  # the before-image the replica identity obliges
    op_name: str  # e.g. "scenario:replica-identity"
    is_tracked: bool  # the writer tracked before-images: ``before`` None means "none is sent"


def _track_before_ops() -> frozenset[str]:
    """op_names whose ledger lines state before-images exactly (scenarios with track_before)."""
    from loadgen.scenarios.registry import SCENARIOS  # lazy: the registry imports psycopg code

    return frozenset(scenario_op_name(s.name) for s in SCENARIOS.values() if s.track_before)


@dataclass
class LedgerIndex:
    """Every ledger change as columns (one row per change, in ledger file order = ``lpos``)."""

    parts: list[str]
    codes: TableCodes
    xid: npt.NDArray[np.int64]  # xid8 (epoch << 32 | xid)
    seq: npt.NDArray[np.int32]  # 2 × the line's seq (+1 for the second half of a split)
    table: npt.NDArray[np.int16]
    pk: npt.NDArray[np.int64]
    op: npt.NDArray[np.int8]
    vhash: npt.NDArray[np.int64]  # dict_hash(after), 0 for deletes
    part: npt.NDArray[np.int16]
    offset: npt.NDArray[np.int64]  # byte offset of the line in its part
    mono_ms: npt.NDArray[np.int32]  # monotonic stamp, ms after the ledger's first
    is_dup: npt.NDArray[np.bool_]  # same (txid, seq) as an earlier line
    khash: npt.NDArray[np.int64]  # unused after load (emptied to save memory)
    sorted_idx: npt.NDArray[np.int32]  # lpos of non-duplicates, ordered by their key hash
    sorted_khash: npt.NDArray[np.int64]
    bad_lines: list[BadLine]
    truncates: list[tuple[int, int, int, int]] = field(default_factory=list)
    # ^ (xid8, table code, part, offset) of each TRUNCATE the ledger records (few; kept apart)
    extras: dict[int, LedgerExtra] = field(default_factory=dict)
    # ^ lpos → old key / before-image, for the few lines that carry them (scenarios; sparse)
    extra_pos: npt.NDArray[np.int64] = field(default_factory=lambda: np.zeros(0, np.int64))
    # ^ the keys of ``extras``, sorted (for ``np.isin`` on a batch of matches)
    _identity: dict[tuple[int, tuple[tuple[str, object], ...]], int] | None = None
    fates: dict[str, int] = field(default_factory=dict)
    # ^ transactions by fate (loadgen.ledger.reader: committed, aborted, in progress,
    #   unresolved): only committed ones' changes are in the columns
    num_uncommitted_changes: int = 0  # change lines of transactions that did not commit
    num_resolved_by_server: int = 0  # intents without an outcome that ``resolve`` answered
    end: LedgerEnd = field(default_factory=lambda: LedgerEnd(None, (), "not read"))
    # ^ where the ledger's runs ended in the WAL (``loadgen.ledger.run_end``)

    @property
    def num_changes(self) -> int:
        return len(self.xid)

    @property
    def min_xid(self) -> int:
        return int(self.xid.min()) if len(self.xid) else 0

    def xid8_of(self, xid32: int) -> int:
        """Extend a 32-bit xid with the epoch of the ledger's first transaction (wraps)."""
        return xid8_near(self.min_xid, xid32) or 0  # never None: the base is given

    def pk_by_identity(self, table: int, key: Mapping[str, object]) -> int | None:
        """The ``id`` of the row whose ledger before-image has the identity columns ``key``
        (the fallback for a USING INDEX old tuple, which carries no ``id``); None if unknown."""
        if self._identity is None:
            self._identity = {}
            for lpos, ex in self.extras.items():
                if ex.before:
                    k = (int(self.table[lpos]), tuple(sorted(ex.before.items())))
                    self._identity[k] = int(self.pk[lpos])
        return self._identity.get((table, tuple(sorted(key.items()))))  # type: ignore[arg-type]

    def line_locator(self, i: int) -> tuple[str, int]:
        return self.parts[int(self.part[i])], int(self.offset[i])


def load(
    path: str | Sequence[str],
    codes: TableCodes | None = None,
    *,
    split_pk_updates: bool = False,
    resolve: Resolver | None = None,
) -> LedgerIndex:
    """Read every part of the ledger at ``path`` into a ``LedgerIndex`` (streams the files);
    several paths (a split run's shard ledgers) are read as one ledger (``part_files``).

    ``split_pk_updates``: record an update that changed ``id`` (``old_pk``) as a delete of the
    old key and a create of the new one, as Debezium emits it (pgoutput sends one update).
    Only committed transactions' changes are indexed (``loadgen.ledger.reader``): an intent
    without an outcome goes to ``resolve`` (``loadgen.ledger.resolve.server_resolver``:
    pg_xact_status); without a resolver, or when the server cannot say, it is left out and
    counted in ``fates["unresolved"]``.

    Raises:
        ConfigError: no part files at ``path``.
    """
    parts = part_files(path)
    codes = codes or TableCodes()
    state = LedgerScan(parts)
    bad: list[BadLine] = state.bad_lines
    v2_rows: list[tuple[int, int]] = []  # [start, end) row ranges read from format-2 chunks
    v2_truncates: list[bool] = []  # per entry of ``truncates``
    cols = {
        k: array("q")
        for k in ("xid", "seq", "table", "pk", "op", "vhash", "part", "offset", "mono")
    }
    a_xid, a_seq, a_tab, a_pk, a_op, a_vh, a_part, a_off, a_mono = cols.values()
    code = codes.code
    truncates: list[tuple[int, int, int, int]] = []
    u_code = OP_CODES["u"]
    extras: dict[int, LedgerExtra] = {}
    tracked = _track_before_ops()

    def add_extra(pos: int, obj: dict[str, Any], *, old_pk: int | None = None) -> None:
        op_name = str(obj.get("op_name", ""))
        extras[pos] = LedgerExtra(old_pk, obj.get("before"), op_name, op_name in tracked)

    def add_slow(pi: int, offset: int, obj: dict[str, Any]) -> None:
        try:
            after = obj["after"]
            if obj["op"] == "t":
                truncates.append((int(obj["txid"]), code(str(obj["table"])), pi, offset))
                v2_truncates.append(is_v2)
                return
            op = OP_CODES[obj["op"]]
            row = [
                int(obj["txid"]),
                2 * int(obj["seq"]),
                code(str(obj["table"])),
                int(obj["pk"]),
                op,
                dict_hash(after) if after is not None else 0,
            ]
            old_pk = obj.get("old_pk")
        except (KeyError, TypeError, ValueError, AttributeError):
            bad.append(BadLine(parts[pi], -1, offset, False, str(obj)[:80]))
            return
        mono = int(obj.get("mono_ns", 0))
        is_extra = records.has_extras(obj) or obj.get("op_name") in tracked
        if split_pk_updates and op == u_code and old_pk is not None and old_pk != row[3]:
            if is_extra:
                add_extra(len(a_xid), obj)
            for col, v in zip(
                cols.values(),
                (row[0], row[1], row[2], int(old_pk), OP_CODES["d"], 0, pi, offset, mono),
                strict=True,
            ):
                col.append(v)
            row[1] += 1
            row[4] = OP_CODES["c"]
            old_pk = None  # Debezium: a delete and a create, neither with an old key
        if is_extra:
            add_extra(len(a_xid), obj, old_pk=None if old_pk is None else int(old_pk))
        for col, v in zip(cols.values(), (*row, pi, offset, mono), strict=True):
            col.append(v)

    is_v2 = False
    for chunk in scan(parts, state, typed=True):
        pi, offs, objs = chunk.part, chunk.offsets, chunk.changes
        is_v2 = chunk.version >= 2
        first_row = len(a_xid)
        if chunk.typed:
            typed = typed_columns(objs, codes.codes, code, tracked, split_pk_updates)
            if typed is not None:
                base = len(a_xid)
                for k, vals in typed[0].items():
                    cols[k].frombytes(np.ascontiguousarray(vals).tobytes())
                a_part.extend([pi] * len(objs))
                a_off.extend(offs)
                for i in typed[1]:
                    o = objs[i]
                    before = orjson.loads(bytes(o.before)) if len(o.before) else None
                    extras[base + i] = LedgerExtra(
                        o.old_pk, before, o.op_name or "", o.op_name in tracked
                    )
                if is_v2:
                    v2_rows.append((first_row, len(a_xid)))
                objs.clear()  # (freed before the next chunk is decoded: reader.scan)
                continue
            objs = [as_dict(o) for o in objs]  # a required field missing: line by line
        try:  # fast path: whole columns by comprehension (the common, well-formed case)
            ops = [OP_CODES[o["op"]] for o in objs]
            if split_pk_updates and any(o.get("old_pk") is not None for o in objs):
                raise KeyError("old_pk")
            tabs = [code(o["table"]) for o in objs]
            vh = [0 if o["after"] is None else dict_hash(o["after"]) for o in objs]
            sparse = [
                i
                for i, o in enumerate(objs)
                if records.has_extras(o) or o.get("op_name") in tracked
            ]
            base = len(a_xid)  # (whole columns first: a bad value must not extend one of them)
            xs, ps = (array("q", [o[k] for o in objs]) for k in ("txid", "pk"))
            ss = array("q", [2 * o["seq"] for o in objs])
            ms = array("q", [o.get("mono_ns", 0) for o in objs])
        except (KeyError, TypeError, ValueError, AttributeError, OverflowError):
            for offset, obj in zip(offs, objs, strict=True):
                add_slow(pi, offset, obj)
            if is_v2:
                v2_rows.append((first_row, len(a_xid)))
            continue
        for col, got in zip(
            cols.values(), (xs, ss, tabs, ps, ops, vh, [pi] * len(objs), offs, ms), strict=True
        ):
            col.extend(got)
        for i in sparse:
            o = objs[i]
            add_extra(base + i, o, old_pk=None if o.get("old_pk") is None else int(o["old_pk"]))
        if is_v2:
            v2_rows.append((first_row, len(a_xid)))
    # Narrow the small columns at once and drop their int64 buffers (memory plan: ~60 bytes
    # per ledger change; the peak while indexing is about twice that).
    narrow = {"seq": np.int32, "table": np.int16, "op": np.int8, "part": np.int16}
    arr: dict[str, npt.NDArray[Any]] = {}
    for k in list(cols):
        a = cols.pop(k)
        view = np.frombuffer(a, dtype=np.int64) if len(a) else np.zeros(0, np.int64)
        arr[k] = view.astype(narrow[k]) if k in narrow else view
        del a, view
    fates, num_uncommitted, num_by_server, extras, truncates = keep_committed(
        arr, v2_rows, extras, truncates, v2_truncates, state, resolve
    )
    mono = arr["mono"]
    arr["mono"] = ((mono - mono.min()) // 1_000_000).astype(np.int32) if len(mono) else mono
    del mono
    xid, seq, table, pk, op = arr["xid"], arr["seq"], arr["table"], arr["pk"], arr["op"]
    n = len(xid)
    # A (txid, seq) pair seen before is a duplicated ledger line: flag it, keep the first.
    is_dup = ranks_in_file_order([xid, seq]) > 0
    if is_dup.any():
        keep = np.flatnonzero(~is_dup)
        occ = np.zeros(n, np.int64)
        occ[keep] = ranks_in_file_order([xid[keep], table[keep], pk[keep], op[keep]])
    else:
        keep = None
        occ = ranks_in_file_order([xid, table, pk, op])
    khash = key_hash(xid & 0xFFFFFFFF, table, pk, op, occ)
    del occ
    if keep is None:
        order = np.argsort(khash, kind="stable").astype(np.int32)
    else:
        order = keep[np.argsort(khash[keep], kind="stable")].astype(np.int32)
    sorted_khash = khash[order]
    del khash, keep
    return LedgerIndex(
        parts,
        codes,
        xid,
        seq,
        table,
        pk,
        op,
        arr["vhash"],
        arr["part"],
        arr["offset"],
        arr["mono"],
        is_dup,
        np.zeros(0, np.int64),
        order,
        sorted_khash,
        bad,
        truncates,
        extras,
        np.array(sorted(extras), np.int64),
        fates=fates,
        num_uncommitted_changes=num_uncommitted,
        num_resolved_by_server=num_by_server,
        end=ledger_end(parts),
    )


def xid8_near(base: int | None, xid32: int) -> int | None:
    """``xid32`` with the epoch of xid8 ``base`` (the ledger's first transaction), the nearer
    of the wraps around it; None when there is no base yet."""
    if base is None:
        return None
    full = (base & ~0xFFFFFFFF) | xid32
    if full < base - 2**31:
        full += 2**32
    elif full > base + 2**31:
        full -= 2**32
    return full
