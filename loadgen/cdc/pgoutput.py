"""Decoder for pgoutput, logical replication protocol version 1.

Written from PostgreSQL's "Logical Replication Message Formats" documentation. One
``decode(data)`` call turns one message (one row of ``pg_logical_slot_get_binary_changes``)
into a small frozen object. Column values stay exactly the text the server sent (kind ``t``),
SQL NULL is ``None`` and an unchanged TOASTed value (kind ``u``: the server did not send it) is
the ``UNCHANGED_TOAST`` sentinel, never a string, so no consumer can mistake it for data.
Numbers, times and money are never parsed: comparisons are on the server's text output.

Message classes are plain slotted dataclasses, not frozen ones: a frozen dataclass's
``__init__`` goes through ``object.__setattr__`` per field, several times slower, and one
object is built per message on the verifier's hot path. Treat them as read-only.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass
from typing import Final

# re-exported: the decoder's LSNs as PostgreSQL prints them
from loadgen.lsn import format_lsn as format_lsn
from loadgen.lsn import parse_lsn as parse_lsn

_I16 = struct.Struct(">h").unpack_from
_I32 = struct.Struct(">i").unpack_from
_U32 = struct.Struct(">I").unpack_from
_BEGIN = struct.Struct(">QqI").unpack_from  # final LSN, commit ts (µs since 2000-01-01), xid
_COMMIT = struct.Struct(">bQQq").unpack_from  # flags, commit LSN, end LSN, commit ts
_ORIGIN = struct.Struct(">Q").unpack_from
_MESSAGE = struct.Struct(">bQ").unpack_from  # flags, LSN
_REL_COL_TAIL = struct.Struct(">Ii").unpack_from  # type oid, typmod

# Seconds between the Unix epoch and PostgreSQL's (2000-01-01 UTC).
PG_EPOCH_UNIX_S: Final = 946_684_800


class _UnchangedToast:
    """The ``u`` column kind: a TOASTed value the update did not change and the server omitted."""

    _instance: _UnchangedToast | None = None

    def __new__(cls) -> _UnchangedToast:
        if cls._instance is None:
            cls._instance = super().__new__(cls)
        return cls._instance

    def __repr__(self) -> str:
        return "UNCHANGED_TOAST"

    def __reduce__(self) -> str:
        return "UNCHANGED_TOAST"


UNCHANGED_TOAST: Final = _UnchangedToast()

Value = str | None | _UnchangedToast  # one column of a TupleData


class DecodeError(ValueError):
    """A message that is not valid pgoutput v1 (truncated, unknown kind, binary column...)."""


@dataclass(slots=True)
class Column:
    is_key: bool  # part of the replica identity key (flag 1)
    name: str
    type_oid: int
    typmod: int


@dataclass(slots=True)
class Begin:
    final_lsn: int  # LSN of the commit record
    commit_ts_us: int  # µs since 2000-01-01 UTC
    xid: int  # 32-bit transaction id (no epoch)


@dataclass(slots=True)
class Commit:
    flags: int
    commit_lsn: int
    end_lsn: int
    commit_ts_us: int  # µs since 2000-01-01 UTC


@dataclass(slots=True)
class Origin:
    origin_lsn: int
    name: str


@dataclass(slots=True)
class Relation:
    relid: int
    namespace: str  # "" for pg_catalog
    name: str
    replica_identity: str  # relreplident: d default, n nothing, f full, i index
    columns: tuple[Column, ...]

    @property
    def column_names(self) -> tuple[str, ...]:
        return tuple(c.name for c in self.columns)


@dataclass(slots=True)
class Type:
    type_oid: int
    namespace: str
    name: str


@dataclass(slots=True)
class Insert:
    relid: int
    new: tuple[Value, ...]


@dataclass(slots=True)
class Update:
    relid: int
    old_kind: str | None  # "K" key columns only, "O" the whole old row, None not sent
    old: tuple[Value, ...] | None
    new: tuple[Value, ...]


@dataclass(slots=True)
class Delete:
    relid: int
    old_kind: str  # "K" or "O"
    old: tuple[Value, ...]


@dataclass(slots=True)
class Truncate:
    options: int  # bit 1 CASCADE, bit 2 RESTART IDENTITY
    relids: tuple[int, ...]

    @property
    def is_cascade(self) -> bool:
        return bool(self.options & 1)

    @property
    def is_restart_identity(self) -> bool:
        return bool(self.options & 2)


@dataclass(slots=True)
class Message:
    is_transactional: bool
    lsn: int
    prefix: str
    content: bytes


PgOutputMessage = (
    Begin | Commit | Origin | Relation | Type | Insert | Update | Delete | Truncate | Message
)


def _cstring(buf: bytes, pos: int, encoding: str) -> tuple[str, int]:
    end = buf.index(b"\x00", pos)
    return buf[pos:end].decode(encoding), end + 1


def decode_tuple(buf: bytes, pos: int, encoding: str = "utf-8") -> tuple[tuple[Value, ...], int]:
    """Decode one TupleData at ``pos``; return the values and the position after it.

    This is the hot path (one call per row change): a flat loop with precompiled structs.
    """
    (ncols,) = _I16(buf, pos)
    pos += 2
    vals: list[Value] = []
    append = vals.append
    for _ in range(ncols):
        kind = buf[pos]
        pos += 1
        if kind == 0x74:  # 't' text
            (n,) = _I32(buf, pos)
            pos += 4
            end = pos + n
            append(buf[pos:end].decode(encoding))
            pos = end
        elif kind == 0x6E:  # 'n' null
            append(None)
        elif kind == 0x75:  # 'u' unchanged TOAST
            append(UNCHANGED_TOAST)
        else:
            raise DecodeError(f"column kind {chr(kind)!r} at byte {pos - 1} (binary needs v2+)")
    return tuple(vals), pos


def decode(data: bytes, encoding: str = "utf-8") -> PgOutputMessage:
    """Decode one pgoutput v1 message.

    Args:
        data: the message bytes (the ``data`` column of ``pg_logical_slot_get_binary_changes``).
        encoding: the database's server encoding as a Python codec name.

    Raises:
        DecodeError: unknown message kind or malformed/truncated message.
    """
    try:  # zero-cost unless raised (3.11+)
        return _decode(data, encoding)
    except (struct.error, IndexError, ValueError, UnicodeDecodeError) as exc:
        if isinstance(exc, DecodeError):
            raise
        kind = chr(data[0]) if data else "?"
        raise DecodeError(
            f"malformed pgoutput message {kind!r} ({len(data)} bytes): {exc}"
        ) from exc


def _decode(buf: bytes, enc: str) -> PgOutputMessage:
    kind = buf[0]
    if kind == 0x49:  # 'I'
        (relid,) = _U32(buf, 1)
        if buf[5] != 0x4E:
            raise DecodeError(f"insert: expected 'N', got {chr(buf[5])!r}")
        new, _ = decode_tuple(buf, 6, enc)
        return Insert(relid, new)
    if kind == 0x55:  # 'U'
        (relid,) = _U32(buf, 1)
        sub = buf[5]
        old_kind: str | None = None
        old: tuple[Value, ...] | None = None
        pos = 6
        if sub in (0x4B, 0x4F):  # 'K' / 'O'
            old_kind = chr(sub)
            old, pos = decode_tuple(buf, 6, enc)
            sub = buf[pos]
            pos += 1
        if sub != 0x4E:
            raise DecodeError(f"update: expected 'N', got {chr(sub)!r}")
        new, _ = decode_tuple(buf, pos, enc)
        return Update(relid, old_kind, old, new)
    if kind == 0x44:  # 'D'
        (relid,) = _U32(buf, 1)
        sub = buf[5]
        if sub not in (0x4B, 0x4F):
            raise DecodeError(f"delete: expected 'K' or 'O', got {chr(sub)!r}")
        old, _ = decode_tuple(buf, 6, enc)
        return Delete(relid, chr(sub), old)
    if kind == 0x42:  # 'B'
        final_lsn, ts, xid = _BEGIN(buf, 1)
        return Begin(final_lsn, ts, xid)
    if kind == 0x43:  # 'C'
        flags, commit_lsn, end_lsn, ts = _COMMIT(buf, 1)
        return Commit(flags, commit_lsn, end_lsn, ts)
    if kind == 0x52:  # 'R'
        (relid,) = _U32(buf, 1)
        namespace, pos = _cstring(buf, 5, enc)
        name, pos = _cstring(buf, pos, enc)
        replident = chr(buf[pos])
        (ncols,) = _I16(buf, pos + 1)
        pos += 3
        cols = []
        for _ in range(ncols):
            flags = buf[pos]
            cname, pos = _cstring(buf, pos + 1, enc)
            type_oid, typmod = _REL_COL_TAIL(buf, pos)
            pos += 8
            cols.append(Column(bool(flags & 1), cname, type_oid, typmod))
        return Relation(relid, namespace, name, replident, tuple(cols))
    if kind == 0x59:  # 'Y'
        (oid,) = _U32(buf, 1)
        namespace, pos = _cstring(buf, 5, enc)
        name, _ = _cstring(buf, pos, enc)
        return Type(oid, namespace, name)
    if kind == 0x4F:  # 'O'
        (lsn,) = _ORIGIN(buf, 1)
        name, _ = _cstring(buf, 9, enc)
        return Origin(lsn, name)
    if kind == 0x54:  # 'T'
        (nrels,) = _I32(buf, 1)
        options = buf[5]
        relids = struct.unpack_from(f">{nrels}I", buf, 6)
        return Truncate(options, tuple(relids))
    if kind == 0x4D:  # 'M'
        flags, lsn = _MESSAGE(buf, 1)
        prefix, pos = _cstring(buf, 10, enc)
        (n,) = _I32(buf, pos)
        content = bytes(buf[pos + 4 : pos + 4 + n])
        if len(content) != n:
            raise DecodeError(f"message: content truncated ({len(content)} of {n} bytes)")
        return Message(bool(flags & 1), lsn, prefix, content)
    raise DecodeError(f"unknown pgoutput message kind {chr(kind)!r}")
