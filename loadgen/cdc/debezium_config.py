"""Debezium: the PostgreSQL connector configuration that ``loadgen cdc setup`` implies.

One place builds the connector properties: ``cdc debezium-config`` prints them for Kafka Connect,
and the reader (``loadgen.cdc.debezium``) relies on the value renderings they ask for.
"""

from __future__ import annotations

from typing import Any

from psycopg.conninfo import conninfo_to_dict

from loadgen import tables

CONNECTOR_CLASS = "io.debezium.connector.postgresql.PostgresConnector"
DEFAULT_HEARTBEAT_INTERVAL_MS = 10_000


def debezium_config(
    dsn: str,
    *,
    schema: str,
    publication: str,
    slot: str,
    topic_prefix: str,
    show_password: bool = False,
    db_host: str | None = None,
    name: str = "loadgen-hospital",
    extra_tables: tuple[str, ...] = (),
) -> dict[str, Any]:
    """Build the Kafka Connect registration document for the Debezium PostgreSQL connector.

    Consistent with ``loadgen cdc setup``: the same publication (not auto-created), its own
    slot (never the verifier's), the 7 tables, and value renderings the verifier can read back.
    """
    p = conninfo_to_dict(dsn)
    password = str(p.get("password") or "")
    host = db_host or str(p.get("host") or "localhost")
    cfg = {
        "connector.class": CONNECTOR_CLASS,
        "plugin.name": "pgoutput",
        "database.hostname": host,
        "database.port": str(p.get("port") or "5432"),
        "database.user": str(p.get("user") or "postgres"),
        "database.password": password if show_password or not password else "********",
        "database.dbname": str(p.get("dbname") or "postgres"),
        "topic.prefix": topic_prefix,
        "publication.name": publication,
        "publication.autocreate.mode": "disabled",
        "slot.name": slot,
        "table.include.list": ",".join(
            f"{schema}.{t}" for t in (*tables.TABLE_NAMES, *extra_tables)
        ),
        "heartbeat.interval.ms": str(DEFAULT_HEARTBEAT_INTERVAL_MS),
        "decimal.handling.mode": "string",
        "time.precision.mode": "adaptive_time_microseconds",
        "binary.handling.mode": "hex",
        "interval.handling.mode": "string",
        "tombstones.on.delete": "true",
        "provide.transaction.metadata": "false",
        "key.converter": "org.apache.kafka.connect.json.JsonConverter",
        "key.converter.schemas.enable": "false",
        "value.converter": "org.apache.kafka.connect.json.JsonConverter",
        "value.converter.schemas.enable": "false",
    }
    return {"name": name, "config": cfg}


def to_properties(doc: dict[str, Any]) -> str:
    """Render a registration document as a Kafka Connect ``.properties`` file."""
    lines = [f"name={doc['name']}"] + [f"{k}={v}" for k, v in doc["config"].items()]
    return "\n".join(lines) + "\n"
