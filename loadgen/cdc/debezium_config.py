"""Debezium: the PostgreSQL connector configuration that ``loadgen cdc setup`` implies.

One place builds the connector properties: ``cdc debezium-config`` prints them for Kafka
Connect, ``cdc capture`` runs them in Debezium's embedded engine (``engine_properties``), and
the reader (``loadgen.cdc.debezium``) relies on the value renderings they ask for.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import psycopg
from psycopg.conninfo import conninfo_to_dict

from loadgen import tables

CONNECTOR_CLASS = "io.debezium.connector.postgresql.PostgresConnector"
DEFAULT_HEARTBEAT_INTERVAL_MS = 10_000
MASKED_PASSWORD = "********"
JSON_CONVERTER = "org.apache.kafka.connect.json.JsonConverter"
FILE_OFFSET_STORE = "org.apache.kafka.connect.storage.FileOffsetBackingStore"
OFFSET_FLUSH_INTERVAL_MS = 1_000  # the slot's confirmed position moves at least this often
SNAPSHOT_MODES = ("no_data", "initial")  # capture: stream only / read the tables, then stream


@dataclass(frozen=True)
class Endpoint:
    """Where Debezium connects (JDBC and the replication protocol, both over TCP)."""

    host: str
    port: int
    user: str
    password: str
    dbname: str
    sslmode: str | None = None


def endpoint_from_dsn(
    dsn: str,
    *,
    db_host: str | None = None,
    db_port: int | None = None,
    db_user: str | None = None,
) -> Endpoint:
    """The endpoint a DSN names, as written (no server asked); the ``db_*`` values win.

    A Unix-socket host is kept as it is: ``endpoint_from_server`` resolves it to TCP.
    """
    p = conninfo_to_dict(dsn)
    host = str(p.get("host") or p.get("hostaddr") or "localhost").split(",")[0]
    port = int(str(p.get("port") or "5432").split(",")[0])
    return Endpoint(
        host=db_host or host,
        port=db_port or port,
        user=db_user or str(p.get("user") or "postgres"),
        password=str(p.get("password") or ""),
        dbname=str(p.get("dbname") or p.get("user") or "postgres"),
        sslmode=str(p["sslmode"]) if p.get("sslmode") else None,
    )


def endpoint_from_server(conn: psycopg.Connection, dsn: str) -> Endpoint:
    """The TCP endpoint of the server ``conn`` is connected to (a capture's JDBC settings).

    Host, port, user, password and database come from the live connection; a Unix-socket
    connection is turned into the loopback address and the port the server listens on.

    Raises:
        LookupError: the server listens on a Unix socket only (no TCP for Debezium).
    """
    info = conn.info
    host = info.host
    port = info.port
    if not host or host.startswith("/"):
        row = conn.execute(
            "SELECT current_setting('listen_addresses'), current_setting('port')"
        ).fetchone()
        listen = str(row[0] if row else "").strip()
        if not listen:
            raise LookupError(
                "the server listens on a Unix socket only (listen_addresses is empty);"
                " Debezium connects over TCP: set listen_addresses = 'localhost' and restart it"
            )
        first = listen.split(",")[0].strip()
        host = "127.0.0.1" if first in ("*", "localhost", "0.0.0.0", "::") else first
        port = int(row[1]) if row else port
    sslmode = conninfo_to_dict(dsn).get("sslmode")
    return Endpoint(
        host=host,
        port=int(port),
        user=info.user,
        password=info.password or "",
        dbname=info.dbname,
        sslmode=str(sslmode) if sslmode else None,
    )


def hospital_tables(schema: str, extra_tables: Sequence[str] = ()) -> list[str]:
    """``schema.table`` for the 7 hospital tables and ``extra_tables``."""
    return [f"{schema}.{t}" for t in (*tables.TABLE_NAMES, *extra_tables)]


def published_tables(conn: psycopg.Connection, publication: str) -> list[tuple[str, str]] | None:
    """The tables whose changes ``publication`` sends, under the names it sends them.

    Returns ``(schema.table as sent, schema.table of its partition root)`` pairs: without
    ``publish_via_partition_root`` a partitioned table's changes come under the partitions'
    names, so the partitions are listed; with it, the root. None when there is no such
    publication.
    """
    if conn.execute("SELECT 1 FROM pg_publication WHERE pubname = %s", (publication,)).fetchone():
        rows = conn.execute(
            "SELECT pt.schemaname || '.' || pt.tablename, rn.nspname || '.' || rc.relname"
            " FROM pg_publication_tables pt"
            " JOIN pg_namespace n ON n.nspname = pt.schemaname"
            " JOIN pg_class c ON c.relnamespace = n.oid AND c.relname = pt.tablename"
            " JOIN pg_class rc ON rc.oid = coalesce(pg_partition_root(c.oid), c.oid)"
            " JOIN pg_namespace rn ON rn.oid = rc.relnamespace"
            " WHERE pt.pubname = %s ORDER BY 1",
            (publication,),
        ).fetchall()
        return [(str(sent), str(root)) for sent, root in rows]
    return None


def include_list(
    published: list[tuple[str, str]] | None, wanted: Sequence[str] | None
) -> list[str]:
    """``table.include.list`` entries: the published tables whose root is in ``wanted``
    (every published table when ``wanted`` is None; ``wanted`` itself when nothing is
    published)."""
    if published is None:
        return list(wanted or [])
    if wanted is None:
        return [sent for sent, _ in published]
    keep = set(wanted)
    return [sent for sent, root in published if root in keep or sent in keep]


def connector_properties(
    endpoint: Endpoint,
    *,
    table_list: Sequence[str],
    publication: str,
    slot: str,
    topic_prefix: str,
    show_password: bool = True,
) -> dict[str, str]:
    """The connector's properties, shared by Kafka Connect and the embedded engine.

    ``skipped.operations=none``: Debezium's default (``t``) drops every TRUNCATE.
    """
    password = endpoint.password
    cfg = {
        "connector.class": CONNECTOR_CLASS,
        "plugin.name": "pgoutput",
        "database.hostname": endpoint.host,
        "database.port": str(endpoint.port),
        "database.user": endpoint.user,
        "database.password": password if show_password or not password else MASKED_PASSWORD,
        "database.dbname": endpoint.dbname,
        "topic.prefix": topic_prefix,
        "publication.name": publication,
        "publication.autocreate.mode": "disabled",
        "slot.name": slot,
        "table.include.list": ",".join(table_list),
        "skipped.operations": "none",
        "heartbeat.interval.ms": str(DEFAULT_HEARTBEAT_INTERVAL_MS),
        "decimal.handling.mode": "string",
        "time.precision.mode": "adaptive_time_microseconds",
        "binary.handling.mode": "hex",
        "interval.handling.mode": "string",
        "tombstones.on.delete": "true",
        "provide.transaction.metadata": "false",
    }
    if endpoint.sslmode:
        cfg["database.sslmode"] = endpoint.sslmode
    return cfg


def debezium_config(
    dsn: str,
    *,
    schema: str,
    publication: str,
    slot: str,
    topic_prefix: str,
    show_password: bool = False,
    db_host: str | None = None,
    db_port: int | None = None,
    db_user: str | None = None,
    name: str = "loadgen-hospital",
    extra_tables: tuple[str, ...] = (),
    table_list: Sequence[str] | None = None,
) -> dict[str, Any]:
    """Build the Kafka Connect registration document for the Debezium PostgreSQL connector.

    Consistent with ``loadgen cdc setup``: the same publication (not auto-created), its own
    slot (never the verifier's), the 7 tables (``table_list``, e.g. from ``include_list``,
    replaces them), and value renderings the verifier can read back. The password is masked
    unless ``show_password``.
    """
    endpoint = endpoint_from_dsn(dsn, db_host=db_host, db_port=db_port, db_user=db_user)
    cfg = connector_properties(
        endpoint,
        table_list=hospital_tables(schema, extra_tables) if table_list is None else table_list,
        publication=publication,
        slot=slot,
        topic_prefix=topic_prefix,
        show_password=show_password,
    )
    cfg.update(
        {
            "key.converter": JSON_CONVERTER,
            "key.converter.schemas.enable": "false",
            "value.converter": JSON_CONVERTER,
            "value.converter.schemas.enable": "false",
        }
    )
    return {"name": name, "config": cfg}


def engine_properties(
    endpoint: Endpoint,
    *,
    table_list: Sequence[str],
    publication: str,
    slot: str,
    topic_prefix: str,
    offsets_path: str,
    snapshot_mode: str = "no_data",
    schemas: bool = False,
    transactions: bool = False,
    overrides: dict[str, str] | None = None,
    name: str = "loadgen-capture",
) -> dict[str, str]:
    """Properties for Debezium's embedded engine (``loadgen cdc capture``).

    The connector's properties plus: offsets in ``offsets_path`` (FileOffsetBackingStore)
    flushed every second, ``snapshot_mode`` (``no_data``: stream only; ``initial``: read the
    tables first), the JSON converter's schema envelope when ``schemas``, transaction
    metadata events when ``transactions``; then ``overrides`` (``--set KEY=VALUE``) win.
    """
    cfg = connector_properties(
        endpoint,
        table_list=table_list,
        publication=publication,
        slot=slot,
        topic_prefix=topic_prefix,
    )
    flag = "true" if schemas else "false"
    cfg.update(
        {
            "name": name,
            "offset.storage": FILE_OFFSET_STORE,
            "offset.storage.file.filename": offsets_path,
            "offset.flush.interval.ms": str(OFFSET_FLUSH_INTERVAL_MS),
            "offset.flush.timeout.ms": "10000",
            "snapshot.mode": snapshot_mode,
            "provide.transaction.metadata": "true" if transactions else "false",
            "key.converter.schemas.enable": flag,
            "value.converter.schemas.enable": flag,
            "converter.schemas.enable": flag,
            # the engine retries a lost connection itself; a capture that cannot connect at
            # all should fail fast with the server's reason instead
            "errors.max.retries": "3",
        }
    )
    cfg.update(overrides or {})
    return cfg


def to_properties(doc: dict[str, Any]) -> str:
    """Render a registration document as a Kafka Connect ``.properties`` file."""
    lines = [f"name={doc['name']}"] + [f"{k}={v}" for k, v in doc["config"].items()]
    return "\n".join(lines) + "\n"
