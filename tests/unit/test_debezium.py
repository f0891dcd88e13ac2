"""Debezium event reader and value conversion on hand-written event documents.

The documents follow the examples of the Debezium PostgreSQL connector documentation (the
``customers`` table: create with the JsonConverter schema envelope, update and delete without
it, the tombstone that follows a delete, a snapshot read, a truncate) — written by hand, not
produced by loadgen.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from loadgen.cdc import debezium as D
from loadgen.cdc import debezium_config
from loadgen.cdc.change import (
    OP_CREATE,
    OP_DELETE,
    OP_READ,
    OP_UPDATE,
    CapturedChange,
    CapturedTruncate,
)
from loadgen.cdc.ledger_index import TableCodes
from loadgen.errors import ConfigError

SOURCE = (
    '"source": {"version": "2.7.0.Final", "connector": "postgresql", "name":'
    ' "PostgreSQL_server", "ts_ms": 1559033904863, "snapshot": "%s", "db": "postgres",'
    ' "sequence": "[\\"24023119\\",\\"24023128\\"]", "schema": "public", "table":'
    ' "customers", "txId": %d, "lsn": %d, "xmin": null}'
)

CREATE_WITH_SCHEMA = (
    '{"schema": {"type": "struct", "fields": [{"type": "struct", "fields": ['
    '{"type": "int32", "optional": false, "field": "id"},'
    '{"type": "string", "optional": false, "field": "first_name"},'
    '{"type": "string", "optional": false, "field": "last_name"},'
    '{"type": "string", "optional": false, "field": "email"}],'
    ' "optional": true, "name": "PostgreSQL_server.inventory.customers.Value", "field": "after"}],'
    ' "optional": false, "name": "PostgreSQL_server.inventory.customers.Envelope"},'
    ' "payload": {"before": null, "after": {"id": 1, "first_name": "Anne", "last_name":'
    ' "Kretchmar", "email": "annek@noanswer.org"}, '
    + SOURCE % ("false", 555, 24023128)
    + ', "op": "c", "ts_ms": 1559033904863}}'
)
UPDATE_PLAIN = (
    '{"before": null, "after": {"id": 1, "first_name": "Anne Marie", "last_name": "Kretchmar",'
    ' "email": "annek@noanswer.org"}, '
    + SOURCE % ("false", 556, 24023200)
    + ', "op": "u", "ts_ms": 1465584025523}'
)
DELETE_PLAIN = (
    '{"before": {"id": 1, "first_name": null, "last_name": null, "email": null}, "after": null, '
    + SOURCE % ("false", 557, 46523128)
    + ', "op": "d", "ts_ms": 1465581902461}'
)
SNAPSHOT_READ = (
    '{"before": null, "after": {"id": 2, "first_name": "Bob", "last_name": "B", "email": "b@x"},'
    " " + SOURCE % ("true", 554, 24000000) + ', "op": "r", "ts_ms": 1465581902000}'
)
TRUNCATE = (
    '{"source": '
    + SOURCE.split(": ", 1)[1] % ("false", 558, 46523200)
    + ', "op": "t", "ts_ms": 1559033904961}'
)


class _Catalog:
    """The documentation's ``customers`` table."""

    def column_types(self, table: str) -> list[dict[str, object]]:
        if table != "customers":
            return []
        cols = [("id", "int4"), ("first_name", "text"), ("last_name", "text"), ("email", "text")]
        return [
            {"name": n, "type": t, "typmod": -1, "element": None, "generated": False}
            for n, t in cols
        ]

    def replica_identity(self, table: str) -> tuple[str, tuple[str, ...]]:
        return "d", ("id",)


def test_feeder_reads_every_documented_shape(tmp_path: Path) -> None:
    f = tmp_path / "events.jsonl"
    f.write_text(
        "\n".join(
            [
                CREATE_WITH_SCHEMA,
                '{"id": 1}\t' + UPDATE_PLAIN,  # kafka-console-consumer with print.key=true
                DELETE_PLAIN,
                "null",  # the tombstone after the delete
                SNAPSHOT_READ,
                TRUNCATE,
                "",
                '{"ts_ms": 1559033904863}',  # a heartbeat
                "this is not json",
            ]
        )
        + "\n"
    )
    codes = TableCodes(["customers"])
    feeder = D.DebeziumFeeder(
        str(f),
        catalog=_Catalog(),
        schema="public",
        codes=codes,
        identity_lookup=lambda table, key: None,
    )
    items = list(feeder.changes())
    changes = [i for i in items if isinstance(i, CapturedChange)]
    assert [c.op for c in changes] == [OP_CREATE, OP_UPDATE, OP_DELETE, OP_READ]
    assert [type(i) for i in items][-1] is CapturedTruncate
    create, update, delete, read = changes
    assert (create.table, create.xid, create.position, create.pk) == (0, 555, 24023128, 1)
    assert create.names == ("id", "first_name", "last_name", "email")
    assert create.values == ("1", "Anne", "Kretchmar", "annek@noanswer.org")
    assert update.values is not None and update.values[1] == "Anne Marie"
    assert delete.pk == 1 and delete.values is None and delete.ref == 3
    assert delete.old == ("1", None, None, None) and delete.old_kind == "K"
    assert read.pk == 2
    assert feeder.counts() == {
        "change_events": 3,
        "heartbeats": 1,
        "snapshot_events": 1,
        "tombstones": 1,
    }
    assert feeder.problems() == (1, [{"line": 9, "text": "this is not json\n"}])


@pytest.mark.parametrize(
    ("content", "why"),
    [
        (b"\x7fELF\x02\x01\x00\x00binary", "a binary file"),
        (b"hello\nworld\n", "line 1 is not JSON"),
        (b'{"txid": 1, "seq": 0, "table": "pacientes"}\n', "no line is a change event"),
    ],
)
def test_a_file_that_is_not_debezium_events_is_bad_input(
    tmp_path: Path, content: bytes, why: str
) -> None:
    f = tmp_path / "x.jsonl"
    f.write_bytes(content)
    with pytest.raises(ConfigError, match=why):
        D.sniff(str(f))


def test_empty_or_heartbeat_only_files_are_event_files(tmp_path: Path) -> None:
    f = tmp_path / "x.jsonl"
    f.write_bytes(b"")
    D.sniff(str(f))
    f.write_bytes(b'{"serverName":"hospital"}\t{"ts_ms":1796155050564}\n')
    D.sniff(str(f))


def test_connector_config_masks_password_and_uses_its_own_slot() -> None:
    doc = debezium_config.debezium_config(
        "postgresql://app:s3cret@db.example:6543/hosp",
        schema="public",
        publication="loadgen_pub",
        slot="loadgen_debezium",
        topic_prefix="hospital",
    )
    cfg = doc["config"]
    assert cfg["plugin.name"] == "pgoutput" and cfg["database.password"] == "********"
    assert (cfg["database.hostname"], cfg["database.port"], cfg["database.dbname"]) == (
        "db.example",
        "6543",
        "hosp",
    )
    assert cfg["table.include.list"].split(",")[0] == "public.pacientes"
    assert len(cfg["table.include.list"].split(",")) == 7
    assert cfg["decimal.handling.mode"] == "string" and cfg["tombstones.on.delete"] == "true"
    shown = debezium_config.debezium_config(
        "postgresql://app:s3cret@db/h",
        schema="s",
        publication="p",
        slot="d",
        topic_prefix="t",
        show_password=True,
        db_host="postgres",
    )
    assert shown["config"]["database.password"] == "s3cret"
    assert shown["config"]["database.hostname"] == "postgres"
    props = debezium_config.to_properties(doc)
    assert props.startswith("name=loadgen-hospital\n") and "slot.name=loadgen_debezium\n" in props


@pytest.mark.parametrize("line", [b"[1, 2]", b'"text"'])
def test_non_object_lines_are_rejected(line: bytes) -> None:
    with pytest.raises(ValueError):
        D.parse_line(line)
