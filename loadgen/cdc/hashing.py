"""Hashes and ranks over numpy columns: row-image hashes (compact JSON), the match key's
64-bit mix hash, and occurrence ranks. Used by the ledger index and the verifier's checks.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import numpy.typing as npt
import orjson

_dumps = orjson.dumps
_U64 = np.uint64
_MIX1 = _U64(0xBF58476D1CE4E5B9)
_MIX2 = _U64(0x94D049BB133111EB)
_PRIMES = [
    _U64(p)
    for p in (
        0x9E3779B97F4A7C15,
        0xC2B2AE3D27D4EB4F,
        0x165667B19E3779F9,
        0xD6E8FEB86659FD93,
        0xFF51AFD7ED558CCD,
    )
]


def _unchanged(value: object) -> str:
    return "<unchanged-toast>"  # (a partial image is always compared by name: flagged)


def json_hash(text: bytes) -> int:
    """The row hash of an after-image already rendered as compact JSON (a ledger line's raw
    ``after`` text, written by orjson; a pgoutput tuple rendered by ``slot_batch``)."""
    return hash(text)


def dict_hash(after: Mapping[str, object]) -> int:
    """64-bit hash of a row image as column → text: the hash of its compact JSON (orjson,
    in the mapping's order), so that it equals ``json_hash`` of the ledger's raw ``after``.

    Both sides list columns in table order (pgoutput's Relation, COPY, ``RETURNING *`` dicts,
    Debezium's JSON all do); a hash that differs only because of column order is re-checked
    by name (``Verifier``), so order never causes a false failure. Python's bytes hash is
    salted per process: hashes are only comparable within one process.
    """
    return hash(_dumps(after, default=_unchanged))


def row_hash(names: tuple[str, ...], values: Sequence[object]) -> int:
    """``dict_hash`` of the image ``names`` → ``values`` (a captured change, a table row)."""
    return hash(_dumps(dict(zip(names, values, strict=True)), default=_unchanged))


def key_hash(
    xid32: npt.NDArray[np.int64],
    table: npt.NDArray[np.int64],
    pk: npt.NDArray[np.int64],
    op: npt.NDArray[np.int64],
    occ: npt.NDArray[np.int64],
) -> npt.NDArray[np.int64]:
    """Vectorized 64-bit hash of the match key (xid mod 2^32, table, pk, op, occurrence).

    Multiply-add over the fields, then splitmix64's finalizer; uint64 arithmetic wraps.
    XXX: two different keys can collide (p ≈ n²/2^65, ~1e-6 at 5M); hits are confirmed field
    by field, so a collision can only hide a match (reported), never invent one.
    """
    return mix_hash([xid32, table, pk, op, occ])


def mix_hash(fields: Sequence[npt.NDArray[Any]]) -> npt.NDArray[np.int64]:
    """Vectorized 64-bit hash of rows of int columns (in place where it can: two buffers)."""
    with np.errstate(over="ignore"):
        h = fields[0].astype(_U64)
        h *= _PRIMES[0]
        tmp = np.empty_like(h)
        for f, prime in zip(fields[1:], _PRIMES[1:], strict=False):
            tmp[...] = f
            tmp *= prime
            h += tmp
        del tmp
        h ^= h >> _U64(30)
        h *= _MIX1
        h ^= h >> _U64(27)
        h *= _MIX2
        h ^= h >> _U64(31)
    return h.view(np.int64)


def by_key_stable(table: npt.NDArray[Any], pk: npt.NDArray[np.int64]) -> npt.NDArray[np.int64]:
    """Indices sorting rows by (table, pk), keeping array order among equal keys.

    One stable argsort of ``table << 55 | pk`` (ids are non-negative and far below 2^55);
    falls back to ``lexsort`` when they are not.
    """
    if len(pk) and (pk.min() < 0 or pk.max() >= 2**55):
        return np.lexsort((np.arange(len(pk)), pk, table))
    key = table.astype(np.int64)
    key <<= 55
    key |= pk
    return np.argsort(key, kind="stable")


def ranks_in_file_order(fields: Sequence[npt.NDArray[Any]]) -> npt.NDArray[np.int64]:
    """Rank of each row among the earlier rows (in array order) with the same ``fields``.

    Memory-lean version of ``occurrences`` for arrays already in the wanted order: one stable
    argsort of a 64-bit hash of the fields, then exact confirmation of each hash tie.
    """
    n = len(fields[0])
    if n == 0:
        return np.zeros(0, np.int64)
    h = mix_hash(fields)
    idx = np.argsort(h, kind="stable")  # stable: file order within a group
    h = h[idx]
    same = np.zeros(n, bool)
    same[1:] = h[1:] == h[:-1]
    del h
    cand = np.flatnonzero(same)
    for f in fields:  # a hash tie is a group only if every field is equal
        same[cand] &= f[idx[cand]] == f[idx[cand - 1]]
    pos = np.arange(n, dtype=np.int64)
    starts = np.where(same, 0, pos)
    del same
    np.maximum.accumulate(starts, out=starts)
    pos -= starts
    del starts
    occ = np.empty(n, np.int64)
    occ[idx] = pos
    return occ


def occurrences(
    group_keys: Sequence[npt.NDArray[np.int64]], order: npt.NDArray[np.int64]
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


def sorted_search(haystack: npt.NDArray[Any], needles: npt.NDArray[Any]) -> npt.NDArray[np.int64]:
    """``np.searchsorted(haystack, needles)`` with the needles searched in sorted order (about
    twice as fast for random needles in a large haystack: consecutive searches share their
    path through it), the result in the needles' order."""
    order = np.argsort(needles)
    pos = np.empty(len(needles), np.int64)
    pos[order] = np.searchsorted(haystack, needles[order])
    return pos
