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


def test_iter_events_reads_every_documented_shape(tmp_path: Path) -> None:
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
                "this is not json",
            ]
        )
        + "\n"
    )
    stats: dict[str, int] = {}
    events = list(D.iter_events(str(f), stats))
    assert [e.op for e in events] == ["c", "u", "d", "r", "t"]
    create, update, delete = events[:3]
    assert (create.table, create.schema, create.tx_id, create.lsn, create.pk) == (
        "customers",
        "public",
        555,
        24023128,
        1,
    )
    assert create.after == {
        "id": 1,
        "first_name": "Anne",
        "last_name": "Kretchmar",
        "email": "annek@noanswer.org",
    }
    assert update.after is not None and update.after["first_name"] == "Anne Marie"
    assert delete.pk == 1 and delete.after is None and delete.line_no == 3
    assert stats == {"tombstones": 1, "unparseable_lines": 1}


def test_value_conversion_to_postgres_text() -> None:
    ts = D._converter("timestamp", -1)
    assert ts(1559033904863123) == "2019-05-28 08:58:24.863123"
    assert ts(1559033904000000) == "2019-05-28 08:58:24"
    assert ts(1559033904500000) == "2019-05-28 08:58:24.5"
    assert D._converter("timestamp", 3)(1559033904863) == "2019-05-28 08:58:24.863"
    assert D._converter("date", -1)(18000) == "2019-04-14"
    assert D._converter("date", -1)(-1) == "1969-12-31"
    assert D._converter("timestamptz", -1)("2019-05-28T08:58:24.86Z") == (
        "2019-05-28 08:58:24.86+00"
    )
    assert D._converter("int8", -1)(9007199254740993) == "9007199254740993"
    assert D._converter("bool", -1)(True) == "t"
    assert D._converter("float8", -1)(1.0) == "1" and D._converter("float8", -1)(0.1) == "0.1"
    assert D._converter("bytea", -1)("DEADBEEF") == "\\xdeadbeef"
    assert D._converter("numeric", -1)("12345.6700") == "12345.6700"
    conv = {"id": D._converter("int8", -1)}
    assert D.to_text({"id": 5, "laudo": D.UNAVAILABLE_PLACEHOLDER, "x": None}, conv) == {
        "id": "5",
        "laudo": "<unchanged-toast>",
        "x": None,
    }


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
