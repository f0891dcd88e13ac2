"""Publication, replica identity and the verifier's pgoutput slot: setup, status, teardown, reading.

psycopg 3 has no replication-protocol API, so the slot is read through the SQL interface
(``pg_logical_slot_get_binary_changes``) in bounded batches. ``verify`` reads a temporary copy
of the verifier's slot (``pg_copy_logical_replication_slot``) so that verifying twice sees the
same changes; ``consume=True`` reads (and so advances) the slot itself, releasing its WAL.
What ``setup`` records about its slots is in ``slot_state`` (the ``loadgen_cdc_state`` table).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from typing import Any

import psycopg
from psycopg import sql

from loadgen import tables
from loadgen.cdc.publish_safety import require_not_shared
from loadgen.cdc.slot_read import (  # re-exported: ``slot`` is where callers look
    DEFAULT_BATCH_CHANGES,
    STATE_TABLE,
    SlotReader,
    _slot_here,
    iter_messages,
    iter_slot,
    python_encoding,
    require_slot_and_publication,
    slot_database,
)
from loadgen.cdc.slot_state import ensure_state_table, record_slot, recorded_slots
from loadgen.cdc.slot_teardown import TeardownResult, teardown
from loadgen.errors import ConfigError, DatabaseUnavailableError

__all__ = [
    "DEFAULT_BATCH_CHANGES", "STATE_TABLE", "SlotReader", "TeardownResult", "iter_messages",
    "iter_slot",
    "python_encoding", "require_slot_and_publication", "slot_database", "teardown",
]  # fmt: skip

logger = logging.getLogger(__name__)

_REPLICA_IDENTITY_NAMES = {"d": "default", "n": "nothing", "f": "full", "i": "index"}


@dataclass(frozen=True)
class ServerProblem:
    setting: str
    value: str
    need: str
    fix: str  # the exact statements that fix it


@dataclass
class SetupResult:
    publication: str
    slot: str
    start_lsn: str  # X/Y text
    is_slot_created: bool  # False: the slot already existed (kept as is)
    is_publication_created: bool
    replica_identity: str
    tables: list[str]  # schema-qualified tables in the publication
    rows_before: int  # rows already in the tables: their history is not in the stream
    notes: list[str] = field(default_factory=list)


@dataclass
class SlotStatus:
    slot_name: str
    plugin: str
    database: str
    is_active: bool
    is_temporary: bool
    restart_lsn: str | None
    confirmed_flush_lsn: str | None
    lag_bytes: int | None  # current WAL position - confirmed_flush_lsn
    retained_wal_bytes: int | None  # current WAL position - restart_lsn


@dataclass
class CdcStatus:
    wal_level: str
    current_lsn: str
    slots: list[SlotStatus]
    publication: str
    publication_tables: list[str]
    replica_identity: dict[str, str]  # table → default/full/index/nothing
    recorded: dict[str, str]  # from loadgen_cdc_state: slot → start LSN
    problems: list[ServerProblem]


def _one(
    conn: psycopg.Connection, query: str | sql.Composable, params: tuple[object, ...] = ()
) -> Any:
    """The single value a query returns (a query that always returns one row)."""
    row = conn.execute(query, params).fetchone()  # type: ignore[arg-type]
    assert row is not None, query
    return row[0]


def check_server(conn: psycopg.Connection) -> list[ServerProblem]:
    """Check what logical decoding needs; return the problems, each with its exact fix."""
    rows = conn.execute(
        "SELECT name, setting FROM pg_settings WHERE name IN "
        "('wal_level', 'max_replication_slots', 'max_wal_senders')"
    ).fetchall()
    s = {str(n): str(v) for n, v in rows}
    used = conn.execute("SELECT count(*) FROM pg_replication_slots").fetchone()[0]  # type: ignore[index]
    problems = []
    restart = "then restart PostgreSQL (e.g. `pg_ctl restart` or `systemctl restart postgresql`)"
    if s.get("wal_level") != "logical":
        problems.append(
            ServerProblem(
                "wal_level",
                s.get("wal_level", "?"),
                "logical",
                f"ALTER SYSTEM SET wal_level = logical; -- {restart}",
            )
        )
    slots = int(s.get("max_replication_slots", "0"))
    if slots < used + 2:  # hard only when not even one is free (see setup)
        problems.append(
            ServerProblem(
                "max_replication_slots",
                str(slots),
                f">= {used + 2} ({used} in use + verifier + Debezium)",
                f"ALTER SYSTEM SET max_replication_slots = {max(10, used + 2)}; -- {restart}",
            )
        )
    if int(s.get("max_wal_senders", "0")) < 2:
        problems.append(
            ServerProblem(
                "max_wal_senders",
                s.get("max_wal_senders", "0"),
                ">= 2 (Debezium streams over one)",
                f"ALTER SYSTEM SET max_wal_senders = 10; -- {restart}",
            )
        )
    return problems


def qualified_tables(conn: psycopg.Connection) -> list[tuple[str, str]]:
    """The 7 hospital tables as (schema, table) in the connection's current schema."""
    schema = conn.execute("SELECT current_schema()").fetchone()[0]  # type: ignore[index]
    if schema is None:
        raise ConfigError("no current schema: search_path names no existing schema")
    return [(str(schema), t) for t in tables.TABLE_NAMES]


def setup(
    conn: psycopg.Connection,
    *,
    publication: str,
    slot: str,
    replica_identity: str = "default",
    all_tables: bool = False,
    extra_tables: list[str] | None = None,
    keep_identity: frozenset[str] = frozenset(),
    via_partition_root: bool = False,
) -> SetupResult:
    """Create the publication, set replica identity, create the verifier's slot (autocommit conn).

    Idempotent: an existing publication or slot is kept (the slot keeps its start LSN); tables
    missing from an existing publication are added. ``extra_tables`` (the scenarios' cdc_
    tables, in the current schema) join the 7; their partitions get the replica identity too,
    except the tables in ``keep_identity`` (replica-identity sets its own). The publication is
    created before the slot: decoding looks publications up as of each change.

    Raises:
        DatabaseUnavailableError: the server lacks wal_level=logical or slots (message has the fix).
        ConfigError: bad replica identity; the publication or the slot is another loadgen
            schema's (``publish_safety.require_not_shared``).
    """
    if replica_identity not in ("default", "full"):
        raise ConfigError(f"--replica-identity {replica_identity!r}: use default or full")
    _slot_here(conn, slot)
    require_not_shared(conn, publication, slot)  # another loadgen schema's: refused
    problems = check_server(conn)
    free_slots = int(
        _one(
            conn,
            "SELECT current_setting('max_replication_slots')::int - count(*)"
            " FROM pg_replication_slots",
        )
    )
    has_slot = slot_database(conn, slot) is not None  # ours: _slot_here checked
    hard = [
        p
        for p in problems
        if p.setting == "wal_level"
        or (p.setting == "max_replication_slots" and free_slots < 1 and not has_slot)
    ]
    if hard:
        lines = "; ".join(f"{p.setting}={p.value} (need {p.need}): {p.fix}" for p in hard)
        raise DatabaseUnavailableError(f"server not ready for logical decoding: {lines}")
    qtables = qualified_tables(conn)
    schema_name = qtables[0][0]
    qtables += [(schema_name, t) for t in extra_tables or () if (schema_name, t) not in qtables]
    notes = [f"{p.setting}={p.value} (need {p.need}): {p.fix}" for p in problems]
    ident = sql.Identifier
    partitions = conn.execute(
        "SELECT c.relname FROM pg_class c JOIN pg_class r ON r.oid = pg_partition_root(c.oid)"
        " WHERE c.relispartition AND c.relnamespace = current_schema()::regnamespace"
        " AND r.relname = ANY (%s)",
        ([t for _, t in qtables],),
    ).fetchall()
    for table in [t for _, t in qtables] + [str(r[0]) for r in partitions]:
        if table not in keep_identity:
            conn.execute(
                sql.SQL("ALTER TABLE {} REPLICA IDENTITY {}").format(
                    ident(schema_name, table), sql.SQL(replica_identity.upper())
                )
            )
    pub_exists = (
        conn.execute("SELECT 1 FROM pg_publication WHERE pubname = %s", (publication,)).fetchone()
        is not None
    )
    if not pub_exists:
        if all_tables:
            conn.execute(sql.SQL("CREATE PUBLICATION {} FOR ALL TABLES").format(ident(publication)))
        else:
            conn.execute(
                sql.SQL("CREATE PUBLICATION {} FOR TABLE {}{}").format(
                    ident(publication),
                    sql.SQL(", ").join(ident(s, t) for s, t in qtables),
                    sql.SQL(
                        " WITH (publish_via_partition_root = true)" if via_partition_root else ""
                    ),
                )
            )
    else:
        have = set(publication_tables(conn, publication)) | set(_published_roots(conn, publication))
        missing = [f"{s}.{t}" for s, t in qtables if f"{s}.{t}" not in have]
        if missing and not all_tables:
            conn.execute(
                sql.SQL("ALTER PUBLICATION {} ADD TABLE {}").format(
                    ident(publication), sql.SQL(", ").join(ident(*m.split(".", 1)) for m in missing)
                )
            )
            notes.append(f"added to existing publication {publication}: {', '.join(missing)}")
    ensure_state_table(conn)
    row = conn.execute(
        "SELECT confirmed_flush_lsn::text, plugin FROM pg_replication_slots WHERE slot_name = %s"
        " AND database = current_database()",
        (slot,),
    ).fetchone()
    if row is None:
        xmin_before = int(
            _one(conn, "SELECT pg_snapshot_xmin(pg_current_snapshot())::text::bigint")
        )
        start_lsn = str(
            _one(
                conn,
                "SELECT lsn::text FROM pg_create_logical_replication_slot(%s, 'pgoutput')",
                (slot,),
            )
        )
        record_slot(conn, slot, publication, start_lsn, xmin_before)
        created = True
    else:
        if row[1] != "pgoutput":
            raise ConfigError(f"--slot {slot!r}: exists with plugin {row[1]}, need pgoutput")
        recorded = recorded_slots(conn).get(slot)
        start_lsn = recorded[1] if recorded else str(row[0])
        created = False
    rows_before = 0
    for schema, table in qtables:
        rows_before += int(
            _one(conn, sql.SQL("SELECT count(*) FROM {}").format(ident(schema, table)))
        )
    notes.append(
        f"slot {slot} sees only transactions that commit after it was created (LSN {start_lsn}):"
        " run setup before the load starts"
    )
    if rows_before and created:
        notes.append(
            f"{rows_before} rows were already in the tables: their history is not in"
            " the stream; verify covers the changes recorded from now on"
        )
    return SetupResult(
        publication,
        slot,
        start_lsn,
        created,
        not pub_exists,
        replica_identity,
        [f"{s}.{t}" for s, t in qtables],
        rows_before,
        notes,
    )


def _published_roots(conn: psycopg.Connection, publication: str) -> list[str]:
    """Partitioned tables named in the publication (pg_publication_tables lists partitions
    instead, unless publish_via_partition_root)."""
    rows = conn.execute(
        "SELECT n.nspname || '.' || c.relname FROM pg_publication_rel pr"
        " JOIN pg_publication p ON p.oid = pr.prpubid JOIN pg_class c ON c.oid = pr.prrelid"
        " JOIN pg_namespace n ON n.oid = c.relnamespace WHERE p.pubname = %s",
        (publication,),
    ).fetchall()
    return [str(r[0]) for r in rows]


def publication_tables(conn: psycopg.Connection, publication: str) -> list[str]:
    rows = conn.execute(
        "SELECT schemaname || '.' || tablename FROM pg_publication_tables WHERE pubname = %s"
        " ORDER BY 1",
        (publication,),
    ).fetchall()
    return [str(r[0]) for r in rows]


def status(conn: psycopg.Connection, publication: str) -> CdcStatus:
    """Slots of this database with lag and retained WAL, the publication, replica identities."""
    wal_level = str(conn.execute("SHOW wal_level").fetchone()[0])  # type: ignore[index]
    current = str(conn.execute("SELECT pg_current_wal_lsn()::text").fetchone()[0])  # type: ignore[index]
    rows = conn.execute(
        "SELECT slot_name, coalesce(plugin, ''), coalesce(database, ''), active, temporary,"
        " restart_lsn::text, confirmed_flush_lsn::text,"
        " (pg_current_wal_lsn() - confirmed_flush_lsn)::bigint,"
        " (pg_current_wal_lsn() - restart_lsn)::bigint"
        " FROM pg_replication_slots WHERE database = current_database() OR database IS NULL"
        " ORDER BY slot_name"
    ).fetchall()
    slots = [SlotStatus(*r) for r in rows]
    idents = {}
    for schema, table in qualified_tables(conn):
        r = conn.execute(
            "SELECT relreplident FROM pg_class WHERE oid = to_regclass(%s)", (f"{schema}.{table}",)
        ).fetchone()
        name = _REPLICA_IDENTITY_NAMES.get(str(r[0]), "?") if r else "missing"
        idents[f"{schema}.{table}"] = name
    recorded = {s: lsn for s, (_, lsn) in recorded_slots(conn).items()}
    return CdcStatus(
        wal_level,
        current,
        slots,
        publication,
        publication_tables(conn, publication),
        idents,
        recorded,
        check_server(conn),
    )
