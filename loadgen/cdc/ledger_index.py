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

import numpy as np
import numpy.typing as npt

from loadgen import tables
from loadgen.ledger import BadLine, iter_lines, part_files

OP_CODES: Mapping[str, int] = {"c": 0, "u": 1, "d": 2}
OP_LETTERS = "cud"
_U64 = np.uint64
_MIX1 = _U64(0xBF58476D1CE4E5B9)
_MIX2 = _U64(0x94D049BB133111EB)
_PRIMES = [_U64(p) for p in (0x9E3779B97F4A7C15, 0xC2B2AE3D27D4EB4F, 0x165667B19E3779F9,
                              0xD6E8FEB86659FD93, 0xFF51AFD7ED558CCD)]


def row_hash(names: Sequence[str], values: Sequence[object]) -> int:
    """64-bit hash of a row image in canonical (column-name-sorted) order.

    ``names``/``values`` are parallel; the result does not depend on their order. Python's
    str hash is salted per process, so hashes are only comparable within one process.
    """
    order = sorted(range(len(names)), key=names.__getitem__)
    return hash((tuple(names[i] for i in order), tuple(values[i] for i in order)))


def dict_hash(after: Mapping[str, object]) -> int:
    """``row_hash`` of a column → value mapping."""
    keys = sorted(after)
    return hash((tuple(keys), tuple(after[k] for k in keys)))


def key_hash(
    xid32: npt.NDArray[np.int64], table: npt.NDArray[np.int64], pk: npt.NDArray[np.int64],
    op: npt.NDArray[np.int64], occ: npt.NDArray[np.int64],
) -> npt.NDArray[np.int64]:
    """Vectorized 64-bit hash of the match key (xid mod 2^32, table, pk, op, occurrence).

    Multiply-add over the fields, then splitmix64's finalizer; uint64 arithmetic wraps.
    XXX: two different keys can collide (p ≈ n²/2^65, ~1e-6 at 5M); hits are confirmed field
    by field, so a collision can only hide a match (reported), never invent one.
    """
    with np.errstate(over="ignore"):
        h = xid32.astype(_U64) * _PRIMES[0]
        h = h + table.astype(_U64) * _PRIMES[1]
        h = h + pk.astype(_U64) * _PRIMES[2]
        h = h + op.astype(_U64) * _PRIMES[3]
        h = h + occ.astype(_U64) * _PRIMES[4]
        h ^= h >> _U64(30)
        h *= _MIX1
        h ^= h >> _U64(27)
        h *= _MIX2
        h ^= h >> _U64(31)
    return h.view(np.int64)


def occurrences(group_keys: Sequence[npt.NDArray[np.int64]], order: npt.NDArray[np.int64]
                ) -> npt.NDArray[np.int64]:
    """Rank of each element within its group (equal ``group_keys``), ranked by ``order``."""
    n = len(order)
    if n == 0:
        return np.zeros(0, np.int64)
    idx = np.lexsort((order, *group_keys))
    same = np.ones(n, bool)
    same[0] = False
    for k in group_keys:
        ks = k[idx]
        same[1:] &= ks[1:] == ks[:-1]
    pos = np.arange(n, dtype=np.int64)
    starts = np.where(same, 0, pos)
    np.maximum.accumulate(starts, out=starts)
    occ = np.empty(n, np.int64)
    occ[idx] = pos - starts
    return occ


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


@dataclass
class LedgerIndex:
    """Every ledger change as columns (one row per change, in ledger file order = ``lpos``)."""

    parts: list[str]
    codes: TableCodes
    xid: npt.NDArray[np.int64]  # xid8 (epoch << 32 | xid)
    seq: npt.NDArray[np.int64]  # 2 × the line's seq (+1 for the second half of a split)
    table: npt.NDArray[np.int64]
    pk: npt.NDArray[np.int64]
    op: npt.NDArray[np.int64]
    vhash: npt.NDArray[np.int64]  # dict_hash(after), 0 for deletes
    part: npt.NDArray[np.int64]
    offset: npt.NDArray[np.int64]  # byte offset of the line in its part
    mono_ns: npt.NDArray[np.int64]
    is_dup: npt.NDArray[np.bool_]  # same (txid, seq) as an earlier line
    khash: npt.NDArray[np.int64]  # key_hash, for matching (duplicates excluded below)
    sorted_idx: npt.NDArray[np.int64]  # lpos of non-duplicates, ordered by khash
    sorted_khash: npt.NDArray[np.int64]
    bad_lines: list[BadLine]
    truncates: list[tuple[int, int, int, int]] = field(default_factory=list)
    # ^ (xid8, table code, part, offset) of each TRUNCATE the ledger records (few; kept apart)

    @property
    def num_changes(self) -> int:
        return len(self.xid)

    @property
    def min_xid(self) -> int:
        return int(self.xid.min()) if len(self.xid) else 0

    def xid8_of(self, xid32: int) -> int:
        """Extend a 32-bit xid with the epoch of the ledger's first transaction (wraps)."""
        base = self.min_xid
        full = (base & ~0xFFFFFFFF) | xid32
        if full < base - 2**31:
            full += 2**32
        elif full > base + 2**31:
            full -= 2**32
        return full

    def line_locator(self, i: int) -> tuple[str, int]:
        return self.parts[int(self.part[i])], int(self.offset[i])


def load(path: str, codes: TableCodes | None = None, *, split_pk_updates: bool = False
         ) -> LedgerIndex:
    """Read every part of the ledger at ``path`` into a ``LedgerIndex`` (streams the files).

    ``split_pk_updates``: record an update that changed ``id`` (``old_pk``) as a delete of the
    old key and a create of the new one, as Debezium emits it (pgoutput sends one update).

    Raises:
        ConfigError: no part files at ``path``.
    """
    parts = part_files(path)
    codes = codes or TableCodes()
    bad: list[BadLine] = []
    cols = {k: array("q") for k in ("xid", "seq", "table", "pk", "op", "vhash", "part", "offset",
                                    "mono")}
    a_xid, a_seq, a_tab, a_pk, a_op, a_vh, a_part, a_off, a_mono = cols.values()
    code = codes.code
    truncates: list[tuple[int, int, int, int]] = []
    for pi, offset, obj in iter_lines(parts, bad):
        try:
            after = obj["after"]
            if obj["op"] == "t":
                truncates.append((int(obj["txid"]), code(str(obj["table"])), pi, offset))
                continue
            op = OP_CODES[obj["op"]]
            row = [int(obj["txid"]), 2 * int(obj["seq"]), code(str(obj["table"])),
                   int(obj["pk"]), op, dict_hash(after) if after is not None else 0]
            old_pk = obj.get("old_pk")
        except (KeyError, TypeError, ValueError, AttributeError):
            bad.append(BadLine(parts[pi], -1, offset, False, str(obj)[:80]))
            continue
        mono = int(obj.get("mono_ns", 0))
        if split_pk_updates and op == OP_CODES["u"] and old_pk is not None and old_pk != row[3]:
            for col, v in zip(cols.values(), (row[0], row[1], row[2], int(old_pk), OP_CODES["d"],
                                               0, pi, offset, mono), strict=True):
                col.append(v)
            row[1] += 1
            row[4] = OP_CODES["c"]
        a_xid.append(row[0])
        a_seq.append(row[1])
        a_tab.append(row[2])
        a_pk.append(row[3])
        a_op.append(row[4])
        a_vh.append(row[5])
        a_part.append(pi)
        a_off.append(offset)
        a_mono.append(mono)
    arr = {k: np.frombuffer(v, dtype=np.int64) if len(v) else np.zeros(0, np.int64)
           for k, v in cols.items()}
    xid, seq = arr["xid"], arr["seq"]
    n = len(xid)
    lpos = np.arange(n, dtype=np.int64)
    # A (txid, seq) pair seen before is a duplicated ledger line: flag it, keep the first.
    is_dup = occurrences([xid, seq], lpos) > 0
    keep = np.flatnonzero(~is_dup)
    occ = np.zeros(n, np.int64)
    occ[keep] = occurrences([xid[keep], arr["table"][keep], arr["pk"][keep], arr["op"][keep]],
                            lpos[keep])
    khash = key_hash(xid & 0xFFFFFFFF, arr["table"], arr["pk"], arr["op"], occ)
    order = keep[np.argsort(khash[keep], kind="stable")]
    return LedgerIndex(parts, codes, xid, seq, arr["table"], arr["pk"], arr["op"], arr["vhash"],
                       arr["part"], arr["offset"], arr["mono"], is_dup, khash, order,
                       khash[order], bad, truncates)
