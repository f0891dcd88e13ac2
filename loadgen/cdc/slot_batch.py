"""Vectorized pgoutput v1: many slot messages parsed at once into int columns (numpy).

The slot feeder's fast path (``slot_feed.SlotFeeder.chunks``). A batch of messages is joined
into one byte buffer; per relation, the TupleData of its plain inserts, updates (new tuple
only) and deletes (key or full old tuple) is walked column by column for every message at
once, so per message no Python code runs and no value is decoded. What comes out per change:
its ``id`` (parsed from the id column's digits) and the hash of its after-image rendered as
the compact JSON the ledger holds (``hashing.dict_hash``), built by gathering the value bytes
between constant ``"name":"`` pieces. A value that JSON would escape (``"``, ``\\``, control
characters) takes the per-change path for that change only.

Anything this path cannot vouch for (an unknown column kind, a tuple whose length does not add
up, an id that is not plain digits) is reported as not plain: the caller decodes those
messages one by one with ``pgoutput.decode``, which raises the precise ``DecodeError``.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import numpy.typing as npt
import orjson

from loadgen.cdc import pgoutput as P
from loadgen.cdc.change import OP_CREATE, OP_DELETE, OP_UPDATE
from loadgen.cdc.hashing import row_hash

_I, _U = 0x49, 0x55  # Insert and Update message kinds (the rest of a batch: Delete)
_T, _N = 0x74, 0x6E  # TupleData column kinds 't' (text) and 'n' (null)
_Ints = npt.NDArray[np.int64]
_Bools = npt.NDArray[np.bool_]
PAD = 8  # zero bytes after a joined buffer: a 4-byte read past a last null column stays inside
_MAX_ID_DIGITS = 18  # ids up to 10^18 - 1 parse exactly in int64


@dataclass(frozen=True, slots=True)
class Shape:
    """A plain relation as the batch decoder needs it: columns, where ``id`` is, and the
    constant JSON pieces before each value (``{"id":"`` / ``,"motivo":null``...)."""

    names: tuple[str, ...]
    id_pos: int
    consts: bytes  # the pieces, back to back: per column text-prefix then null-piece; '"}'
    pre_t: tuple[tuple[int, int], ...]  # (offset in consts, length) per column
    pre_n: tuple[tuple[int, int], ...]


def shape(names: tuple[str, ...], id_pos: int) -> Shape:
    """The ``Shape`` of a relation with columns ``names`` (``id`` at ``id_pos``)."""
    parts: list[bytes] = []
    pre_t: list[tuple[int, int]] = []
    pre_n: list[tuple[int, int]] = []
    at = 0
    for j, name in enumerate(names):
        lead = b"{" if j == 0 else b","
        key = orjson.dumps(name) + b":"
        for piece, out in ((lead + key + b'"', pre_t), (lead + key + b"null", pre_n)):
            out.append((at, len(piece)))
            parts.append(piece)
            at += len(piece)
    parts.append(b'"}')  # closing quote of a text value, closing brace
    return Shape(names, id_pos, b"".join(parts), tuple(pre_t), tuple(pre_n))


def _be32(buf: npt.NDArray[np.uint8], pos: npt.NDArray[np.int64]) -> npt.NDArray[np.int64]:
    b = buf[pos[:, None] + np.arange(4)].astype(np.int64)
    return (b[:, 0] << 24) | (b[:, 1] << 16) | (b[:, 2] << 8) | b[:, 3]


def be_u32(buf: npt.NDArray[np.uint8], pos: npt.NDArray[np.int64]) -> npt.NDArray[np.int64]:
    """Big-endian uint32 at each of ``pos``."""
    return _be32(buf, pos)


def be_u64(buf: npt.NDArray[np.uint8], pos: npt.NDArray[np.int64]) -> npt.NDArray[np.int64]:
    """Big-endian uint64 at each of ``pos`` (as int64: LSNs stay far below 2^63)."""
    return (_be32(buf, pos) << 32) | _be32(buf, pos + 4)


def tuples(
    buf: npt.NDArray[np.uint8], tpos: npt.NDArray[np.int64], ncols: int
) -> tuple[_Ints, _Ints, _Bools, _Ints, _Bools]:
    """Walk the TupleData at each of ``tpos`` (``ncols`` columns each): value starts, value
    lengths and null flags, shape ``(n, ncols)``, the end of each tuple, and whether it is one
    (``ncols`` text/null columns inside the buffer; not: an unchanged-TOAST or binary column,
    another column count, a truncated tuple)."""
    n = len(tpos)
    limit = len(buf) - PAD
    hi, lo = buf[tpos].astype(np.int64), buf[tpos + 1].astype(np.int64)
    ok = ((hi << 8) | lo) == ncols
    vstart = np.zeros((n, ncols), np.int64)
    vlen = np.zeros((n, ncols), np.int64)
    null = np.zeros((n, ncols), bool)
    p = tpos + 2
    for j in range(ncols):
        ok &= p < limit
        p = np.where(ok, p, tpos)  # a row found odd stays parked (and not ok)
        kind = buf[p]
        is_t = kind == _T
        ok &= is_t | (kind == _N)
        ln = np.where(is_t & ok, _be32(buf, p + 1), 0)
        ok &= (ln >= 0) & (p + 5 + ln <= limit)
        ln = np.where(ok, ln, 0)
        vstart[:, j] = p + 5
        vlen[:, j] = ln
        null[:, j] = ~is_t
        p = p + 1 + np.where(is_t & ok, 4 + ln, 0)
    return vstart, vlen, null, p, ok


def ids(
    buf: npt.NDArray[np.uint8], start: npt.NDArray[np.int64], length: npt.NDArray[np.int64]
) -> tuple[npt.NDArray[np.int64], npt.NDArray[np.bool_]]:
    """The non-negative integers written in decimal at ``buf[start:start+length]``, and
    whether each is one (not: empty, too long, not plain digits)."""
    ok = (length >= 1) & (length <= _MAX_ID_DIGITS)
    length = np.where(ok, length, 1)
    width = int(length.max()) if len(length) else 1
    k = np.arange(width)
    inside = k[None, :] < length[:, None]
    d = buf[np.where(inside, start[:, None] + k, 0)].astype(np.int64) - 0x30
    d[~inside] = 0
    ok &= ~np.any((d < 0) | (d > 9), axis=1)
    power = np.where(inside, length[:, None] - 1 - k, 0)  # digit k is worth 10^(L-1-k)
    return np.where(ok, (d * (10 ** power.astype(np.int64))).sum(axis=1), -1), ok


def json_hashes(
    src: npt.NDArray[np.uint8],
    consts_at: int,
    sh: Shape,
    vstart: npt.NDArray[np.int64],
    vlen: npt.NDArray[np.int64],
    null: npt.NDArray[np.bool_],
) -> list[int]:
    """``hash`` of each row's after-image as compact JSON (``hashing.dict_hash``), gathered
    from ``src`` (the joined messages with ``sh.consts`` at ``consts_at``). Rows must hold no
    byte JSON escapes (the caller checks)."""
    n, ncols = vstart.shape
    m = 3 * ncols + 1  # per column: prefix, value, closing quote; then the closing brace
    seg_src = np.empty((n, m), np.int64)
    seg_len = np.empty((n, m), np.int64)
    for j in range(ncols):
        (t_at, t_len), (n_at, n_len) = sh.pre_t[j], sh.pre_n[j]
        is_n = null[:, j]
        seg_src[:, 3 * j] = np.where(is_n, consts_at + n_at, consts_at + t_at)
        seg_len[:, 3 * j] = np.where(is_n, n_len, t_len)
        seg_src[:, 3 * j + 1] = vstart[:, j]
        seg_len[:, 3 * j + 1] = vlen[:, j]
        seg_src[:, 3 * j + 2] = consts_at + len(sh.consts) - 2  # '"'
        seg_len[:, 3 * j + 2] = ~is_n
    seg_src[:, m - 1] = consts_at + len(sh.consts) - 1  # '}'
    seg_len[:, m - 1] = 1
    lens = seg_len.ravel()
    ends = np.cumsum(lens)
    total = int(ends[-1])
    # the source index of every output byte: +1 from byte to byte, a jump at each segment
    # start (one cumsum: cheaper than repeat + arange; int64: numpy's fast index type)
    srcs = seg_src.ravel()
    nz = lens > 0
    first = (ends - lens)[nz]
    start_src = srcs[nz]
    step = np.ones(total, np.int64)
    step[first[0]] = start_src[0]
    step[first[1:]] = start_src[1:] - (start_src[:-1] + lens[nz][:-1] - 1)
    np.cumsum(step, out=step)
    text = src[step].tobytes()
    row_end = ends[m - 1 :: m].tolist()
    row_start = [0, *row_end[:-1]]
    return list(map(hash, map(text.__getitem__, map(slice, row_start, row_end))))


def escaped_at(buf: npt.NDArray[np.uint8]) -> npt.NDArray[np.int64]:
    """Where ``buf`` holds a byte JSON escapes (``"``, ``\\``, below 0x20), in order."""
    return np.flatnonzero((buf < 0x20) | (buf == 0x22) | (buf == 0x5C))


def escaping(
    at: npt.NDArray[np.int64], vstart: npt.NDArray[np.int64], vlen: npt.NDArray[np.int64]
) -> npt.NDArray[np.bool_]:
    """Per row of ``(n, ncols)`` value spans: whether a value holds a byte JSON escapes, by
    binary search in ``escaped_at`` (a cumulative count over the buffer would cost a pass of
    8-byte sums)."""
    inside = np.searchsorted(at, vstart + vlen) - np.searchsorted(at, vstart)
    return np.any(inside > 0, axis=1)  # type: ignore[no-any-return]


def plain_columns(
    rows: Sequence[tuple[int, int, bytes]],
    buf: npt.NDArray[np.uint8],
    esc: npt.NDArray[np.int64],
    st: npt.NDArray[np.int64],
    ln: npt.NDArray[np.int64],
    fi: npt.NDArray[np.int64],
    relid: npt.NDArray[np.int64],
    shapes: Mapping[int, tuple[int, Shape]],
    encoding: str,
) -> tuple[npt.NDArray[Any], ...]:
    """Columns of the plain changes at rows ``fi`` of a segment (``rows``; message ``i`` at
    ``buf[st[i]:st[i] + ln[i]]``; ``esc``: ``escaped_at(buf)``; ``relid`` of each;
    ``shapes``: relid → (table code, ``Shape``)): (fi, table, op, pk, rowhash, relid, ok).
    ``ok`` False: the message is not what its relation promises (the caller decodes it one
    at a time)."""
    n = len(fi)
    table, op, pk, rowhash = (np.zeros(n, np.int64) for _ in range(4))
    ok = np.zeros(n, bool)
    kind = buf[st[fi]]
    op[:] = np.where(kind == _I, OP_CREATE, np.where(kind == _U, OP_UPDATE, OP_DELETE))
    rids = np.unique(relid).tolist()
    consts_at, at = {}, len(buf)  # every relation's constant pieces after the messages, once
    for rid in rids:
        consts_at[rid] = at
        at += len(shapes[rid][1].consts)
    src: npt.NDArray[np.uint8] | None = None
    for rid in rids:
        code, sh = shapes[rid]
        g = np.flatnonzero(relid == rid)
        rs = fi[g]
        vstart, vlen, null, end, good = tuples(buf, st[rs] + 6, len(sh.names))
        good &= end == st[rs] + ln[rs]
        id_vals, id_ok = ids(buf, vstart[:, sh.id_pos], vlen[:, sh.id_pos])
        good &= id_ok & ~null[:, sh.id_pos]
        table[g], pk[g], ok[g] = code, id_vals, good
        after = good & (op[g] != OP_DELETE)
        if not after.any():
            continue
        plain = after & ~escaping(esc, vstart, vlen)
        if plain.any():
            if src is None:
                consts = b"".join(shapes[r][1].consts for r in rids)
                src = np.concatenate((buf, np.frombuffer(consts, np.uint8)))
            h = json_hashes(src, consts_at[rid], sh, vstart[plain], vlen[plain], null[plain])
            rowhash[g[plain]] = h
        for j in np.flatnonzero(after & ~plain).tolist():  # a value JSON escapes
            vals = P.decode_tuple(rows[int(rs[j])][2], 6, encoding)[0]
            rowhash[g[j]] = row_hash(sh.names, vals)
    return fi, table, op, pk, rowhash, relid, ok
