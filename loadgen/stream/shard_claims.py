"""The watermarks the shards of one split run share: the rows present before the first shard.

Every shard must claim the same pre-existing rows (``id <= watermark`` with ``id % N == I``):
with a watermark of its own, a shard starting later would claim rows an earlier sibling had
inserted meanwhile — rows two shards (two hosts, with unrelated monotonic clocks) would then
both have changed. So the first shard to start records its watermarks where its siblings can
read them without a table of loadgen's own (which a ``FOR ALL TABLES`` publication would
stream): in session advisory locks it holds, shared, for as long as it runs. Each later
shard reads them from ``pg_locks`` and holds the same locks, so the record lives while any
shard of the run does; when none is left, the next shard records new ones.

Encoding (bigint advisory keys, ``objsubid = 1`` in ``pg_locks``): ``schema_key << 32 | slot
<< 24 | chunk`` — slot 0 holds a marker (the number of tables), slot ``1 + 3 t + c`` the 24-bit
chunk ``c`` of table ``t``'s watermark (72 bits per table). Called by ``RunOwnership.acquire``
under its registration lock, so two first shards cannot both record.
"""

from __future__ import annotations

from typing import Any

import psycopg

from loadgen import tables

_CHUNK_BITS = 24
_CHUNKS = 3  # 72 bits per watermark: ids are bigint
_MASK = (1 << _CHUNK_BITS) - 1


def _keys(schema_key: int, max_ids: dict[str, int]) -> list[int]:
    base = schema_key << 32
    keys = [base | len(tables.TABLE_NAMES)]  # slot 0: the marker
    for t, name in enumerate(tables.TABLE_NAMES):
        value = max(int(max_ids.get(name, 0)), 0)
        for c in range(_CHUNKS):
            slot = 1 + t * _CHUNKS + c
            keys.append(base | slot << _CHUNK_BITS | (value >> (_CHUNK_BITS * c)) & _MASK)
    return keys


def shared_watermarks(conn: psycopg.Connection[Any], schema_key: int) -> dict[str, int] | None:
    """The watermarks a live sibling shard recorded on this schema, or None (none live)."""
    rows = conn.execute(
        "SELECT DISTINCT objid::bigint FROM pg_locks WHERE locktype = 'advisory'"
        " AND database = (SELECT oid FROM pg_database WHERE datname = current_database())"
        " AND classid = %s::bigint::oid AND objsubid = 1 AND granted"
        " AND pid <> pg_backend_pid()",
        (schema_key,),
    ).fetchall()
    chunks: dict[int, list[int]] = {}
    for (low,) in rows:
        chunks.setdefault(int(low) >> _CHUNK_BITS, []).append(int(low) & _MASK)
    names = tables.TABLE_NAMES
    if chunks.get(0) != [len(names)]:
        return None
    out = {}
    for t, name in enumerate(names):
        value = 0
        for c in range(_CHUNKS):
            found = chunks.get(1 + t * _CHUNKS + c, [])
            if len(found) != 1:  # a set being taken or let go: not a usable record
                return None
            value |= found[0] << (_CHUNK_BITS * c)
        out[name] = value
    return out


def hold_watermarks(
    conn: psycopg.Connection[Any], schema_key: int, max_ids: dict[str, int]
) -> None:
    """Record ``max_ids`` (or keep a sibling's record alive): shared session locks on ``conn``,
    released when it closes."""
    for key in _keys(schema_key, max_ids):
        conn.execute("SELECT pg_advisory_lock_shared(%s::bigint)", (key,))
