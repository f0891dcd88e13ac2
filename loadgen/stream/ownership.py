"""Which rows a stream run may update or delete when runs share a database (per-run ownership).

Two streams, or a stream and ``seed --append``, on one database must never claim the same row:
two runs updating one row would each count a change the other's ledger also claims, and a delete
of a row another run still updates makes that update change nothing. The rule:

- A run owns every row it inserts (its ids come from the tables' sequences, so no other run or
  seed can hold them: ``seed --append`` reserves its ids from the same sequences).
- The rows present when a run starts (``id <=`` each table's sequence position then, its
  *watermark*) belong to it only when no other run is live on the same schema; a run started
  while another is running owns only what it inserts (its updates and deletes then pick among
  its own rows). Inside a run, owned rows are split among the workers by ``id % workers``.

*Live* is an advisory lock: every connection of a run (the coordinator's and each worker's)
holds ``pg_advisory_lock_shared(LIVE_CLASS, schema key)`` for as long as it is open, so a run
whose processes all died is not live any more. The decision is serialised by a transaction
advisory lock (``REGISTER_CLASS``), so two runs starting at once cannot both own the old rows.
Keys are per schema (crc32 of ``current_schema()``), so runs in other schemas do not count.

A shard of a split run (``--shard I/N``, ``loadgen.shards``) claims, whatever else is live (its
siblings are), the rows present before its run's first shard started (the watermarks they share:
``loadgen.stream.shard_claims``), but only those with ``id % N == I`` (and of what it inserts,
only those too: ``loadgen.ops.pools``): the N shards' rows are disjoint by construction, and no
row one shard inserted is ever changed by another. A shard therefore assumes the other live
runs on its schema are its siblings: an unsharded run and a split one on one schema at once may
pick the same rows.

Runs in the coordinator's process (``acquire``) and in every worker (``hold_live_lock`` after
each connect).
"""

from __future__ import annotations

import dataclasses
import zlib
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import psycopg
from psycopg import sql

from loadgen import db, tables
from loadgen.stream import shard_claims

if TYPE_CHECKING:
    from loadgen.stream.worker_spec import WorkerSpec

LIVE_CLASS = 0x4C470001  # advisory lock class: a connection of a live stream run
REGISTER_CLASS = 0x4C470002  # advisory lock class: deciding a new run's claim
SEED_SHARD_CLASS = 0x4C470003  # advisory lock class: a seed shard filling empty tables


@dataclass(frozen=True)
class Claim:
    """What a run owns among the rows present at its start."""

    is_primary: bool  # no other run was live: the pre-existing rows are this run's
    max_ids: dict[str, int] = field(default_factory=dict)  # table -> watermark (primary only)
    num_other_connections: int = 0  # connections of other live runs seen at the start

    @property
    def owned_max_ids(self) -> dict[str, int]:
        """``Workload(owned_max_ids=...)``: the watermarks, or 0 for every table."""
        if self.is_primary:
            return dict(self.max_ids)
        return dict.fromkeys(tables.TABLE_NAMES, 0)


def schema_key(conn: psycopg.Connection[Any]) -> int:
    """The advisory-lock key of ``conn``'s schema (crc32 of ``current_schema()``, 31 bits)."""
    name = db.current_schema(conn) or ""
    return zlib.crc32(name.encode()) & 0x7FFFFFFF


def hold_live_lock(conn: psycopg.Connection[Any]) -> None:
    """Mark ``conn``'s session as a live run's (held until the connection closes).

    Ends the transaction it opens on a non-autocommit connection. Blocks only while another
    run is deciding its claim (milliseconds).
    """
    conn.execute("SELECT pg_advisory_lock_shared(%s, %s)", (LIVE_CLASS, schema_key(conn)))
    if not conn.autocommit:
        conn.commit()


def _watermarks(conn: psycopg.Connection[Any]) -> dict[str, int]:
    """Per table: the highest id handed out so far (max(id) or the sequence, the larger)."""
    out = {}
    for t in tables.TABLE_NAMES:
        seq = conn.execute("SELECT pg_get_serial_sequence(%s, 'id')", (t,)).fetchone()
        seq_sql = (
            sql.SQL(
                "(SELECT CASE WHEN is_called THEN last_value ELSE last_value - 1 END FROM {})"
            ).format(sql.Identifier(*str(seq[0]).replace('"', "").split(".")))
            if seq and seq[0]
            else sql.SQL("0")
        )
        row = conn.execute(
            sql.SQL("SELECT greatest((SELECT coalesce(max(id), 0) FROM {}), {})").format(
                sql.Identifier(t), seq_sql
            )
        ).fetchone()
        out[t] = int(row[0]) if row and row[0] is not None else 0
    return out


class RunOwnership:
    """The coordinator's connection that decides and holds a run's claim (one per run).

    ``acquire`` once before the workers start; ``close`` when the run is over (its workers
    gone). The connection is also the coordinator's for resolving intents (``conn``).

    Raises (``acquire``):
        DatabaseUnavailableError: no server.
    """

    def __init__(self, dsn: str, *, retry_for_s: float = db.DEFAULT_RETRY_FOR_S) -> None:
        self.conn = db.connect(
            dsn, autocommit=True, application_name="loadgen-stream", retry_for_s=retry_for_s
        )

    def acquire(self, *, is_shard: bool = False) -> Claim:
        """Decide what this run owns and mark it live. Blocks for milliseconds.

        ``is_shard``: the run is one shard of several; it claims the rows present when the
        run's first live shard started (its workers then keep only their residue), even when
        its sibling shards are live.
        """
        conn = self.conn
        key = schema_key(conn)
        with conn.transaction():
            conn.execute("SELECT pg_advisory_xact_lock(%s, %s)", (REGISTER_CLASS, key))
            row = conn.execute(
                "SELECT count(*) FROM pg_locks WHERE locktype = 'advisory'"
                " AND database = (SELECT oid FROM pg_database WHERE datname = current_database())"
                " AND classid = %s::bigint::oid AND objid = %s::bigint::oid AND objsubid = 2"
                " AND granted AND pid <> pg_backend_pid()",
                (LIVE_CLASS, key),
            ).fetchone()
            others = int(row[0]) if row else 0
            is_primary = others == 0 or is_shard
            max_ids = _watermarks(conn) if is_primary else {}
            if is_shard:  # the run's first shard's watermarks, when a sibling is live
                max_ids = shard_claims.shared_watermarks(conn, key) or max_ids
                shard_claims.hold_watermarks(conn, key, max_ids)
            conn.execute("SELECT pg_advisory_lock_shared(%s, %s)", (LIVE_CLASS, key))
        return Claim(is_primary, max_ids, others)

    def close(self) -> None:
        self.conn.close()


def with_claim(ws: WorkerSpec, run_id: str, claim: Claim | None) -> WorkerSpec:
    """A worker's spec with the run's id and what the run owns."""
    return dataclasses.replace(
        ws, run_id=run_id, owned_max_ids=None if claim is None else claim.owned_max_ids
    )
