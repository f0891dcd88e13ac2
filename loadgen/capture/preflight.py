"""What a capture checks on the server before it starts the JVM, each failure one line.

wal_level, the publication and its tables, the slot (its own, never the verifier's; created
when missing so that nothing committed from now on is lost; refused when another consumer
holds it or it belongs to another database), and the TCP endpoint Debezium will use.
"""

from __future__ import annotations

import time
from dataclasses import dataclass

import psycopg

from loadgen.cdc import debezium_config
from loadgen.cdc.debezium_config import Endpoint
from loadgen.errors import ConfigError, DatabaseUnavailableError

SLOT_RELEASE_WAIT_S = 5.0  # how long an active slot may take to be released


@dataclass(frozen=True)
class Plan:
    endpoint: Endpoint
    tables: list[str]  # table.include.list entries (schema.table, as the publication sends)
    slot_created_lsn: str | None  # the LSN the slot starts at, when this capture created it
    slot_exists: bool


def check(
    conn: psycopg.Connection,
    dsn: str,
    *,
    publication: str,
    slot: str,
    verifier_slot: str,
    tables: list[str] | None,
    create_slot: bool,
) -> Plan:
    """Check the server for a capture and create its slot when missing (``create_slot``).

    ``tables``: the ``schema.table`` names to capture (a partitioned table stands for its
    partitions); None for every table the publication holds.

    Raises:
        ConfigError: bad --slot/--tables (exit 2).
        DatabaseUnavailableError: wal_level, publication, slot in use, no TCP (exit 3).
    """
    if slot == verifier_slot:
        raise ConfigError(
            f"--slot {slot!r}: that is the verifier's slot; Debezium needs its own"
            " (default loadgen_debezium)"
        )
    wal_level = str(conn.execute("SHOW wal_level").fetchone()[0])  # type: ignore[index]
    if wal_level != "logical":
        raise DatabaseUnavailableError(
            f"wal_level is {wal_level}, Debezium needs logical: ALTER SYSTEM SET wal_level ="
            " logical; then restart PostgreSQL"
        )
    published = debezium_config.published_tables(conn, publication)
    if published is None:
        raise DatabaseUnavailableError(
            f"publication {publication!r} does not exist in database {conn.info.dbname!r};"
            " run `loadgen cdc setup` first (or pass --publication)"
        )
    if not published:
        raise DatabaseUnavailableError(f"publication {publication!r} holds no tables")
    include = debezium_config.include_list(published, tables)
    if tables is not None:
        known = {n for pair in published for n in pair}
        unknown = [t for t in tables if t not in known]
        if unknown:
            raise ConfigError(
                f"--tables: {', '.join(unknown)} not in publication {publication!r}"
                f" (it holds {', '.join(sorted({root for _, root in published}))})"
            )
    try:
        endpoint = debezium_config.endpoint_from_server(conn, dsn)
    except LookupError as exc:
        raise DatabaseUnavailableError(f"cdc capture: {exc}") from None
    created, exists = _ensure_slot(conn, slot, create=create_slot)
    return Plan(endpoint, include, created, exists)


def _ensure_slot(conn: psycopg.Connection, slot: str, *, create: bool) -> tuple[str | None, bool]:
    deadline = time.monotonic() + SLOT_RELEASE_WAIT_S
    while True:
        row = conn.execute(
            "SELECT coalesce(database, ''), coalesce(plugin, ''), active_pid, current_database()"
            " FROM pg_replication_slots WHERE slot_name = %s",
            (slot,),
        ).fetchone()
        # a consumer that just died (a crashed capture being restarted) holds the slot until
        # its WAL sender notices: give it a few seconds
        if row is None or row[2] is None or time.monotonic() > deadline:
            break
        time.sleep(0.2)
    if row is not None:
        database, plugin, active_pid, here = row
        if database != here:
            owner = f"database {database}" if database else "physical replication"
            raise ConfigError(
                f"--slot {slot!r}: that slot belongs to {owner}, not {here};"
                " slot names are server-wide: pick another name"
            )
        if plugin != "pgoutput":
            raise DatabaseUnavailableError(
                f"slot {slot!r} uses the {plugin} plugin; Debezium here needs pgoutput:"
                " drop it or pick another --slot"
            )
        if active_pid is not None:
            raise DatabaseUnavailableError(
                f"slot {slot!r} is in use by another consumer (server pid {active_pid}):"
                " stop it (`loadgen cdc capture stop --out FILE`) or pick another --slot"
            )
        return None, True
    if not create:
        return None, False
    lsn = conn.execute(
        "SELECT lsn::text FROM pg_create_logical_replication_slot(%s, 'pgoutput')", (slot,)
    ).fetchone()[0]  # type: ignore[index]
    return str(lsn), True


def slot_progress(conn: psycopg.Connection, slot: str) -> tuple[bool, int | None]:
    """(is the slot held by a consumer, bytes of WAL behind the current position)."""
    row = conn.execute(
        "SELECT active_pid IS NOT NULL, (pg_current_wal_lsn() - confirmed_flush_lsn)::bigint"
        " FROM pg_replication_slots WHERE slot_name = %s",
        (slot,),
    ).fetchone()
    if row is None:
        return False, None
    return bool(row[0]), None if row[1] is None else int(row[1])


def emit_marker(conn: psycopg.Connection, prefix: str, token: str) -> str:
    """Write a non-transactional logical decoding message; return its LSN."""
    row = conn.execute(
        "SELECT pg_logical_emit_message(false, %s, %s)::text", (prefix, token)
    ).fetchone()
    return str(row[0]) if row else ""
