"""Debezium value encodings (written by hand from the connector's documented type mappings)
back to PostgreSQL's text output (as the server prints the scenarios' values)."""

from __future__ import annotations

import pytest

from loadgen.cdc import debezium, debezium_config
from loadgen.cdc import debezium_types as T

# (PostgreSQL type, typmod, array element type, Debezium JSON value, server text)
CASES = [
    # io.debezium.time.Date: days since the epoch; BC and far future; ±infinity
    ("date", -1, None, 0, "1970-01-01"),
    ("date", -1, None, -2440550, "4713-01-01 BC"),
    ("date", -1, None, 2932896, "9999-12-31"),
    ("date", -1, None, 2**31 - 1, "infinity"),
    ("date", -1, None, -(2**31), "-infinity"),
    # io.debezium.time.MicroTimestamp: µs since the epoch; JDBC's ±infinity constants
    ("timestamp", -1, None, 1529507596945104, "2018-06-20 15:13:16.945104"),
    ("timestamp", -1, None, 253402300799999999, "9999-12-31 23:59:59.999999"),
    ("timestamp", -1, None, 6249223180800000000, "200000-01-01 00:00:00"),
    ("timestamp", -1, None, -210863520000000000, "4713-01-01 00:00:00 BC"),
    ("timestamp", -1, None, 9223372036825200000, "infinity"),
    ("timestamp", -1, None, -9223372036832400000, "-infinity"),
    # io.debezium.time.Timestamp for TIMESTAMP(0..3): ms
    ("timestamp", 3, None, 1529507596945, "2018-06-20 15:13:16.945"),
    # io.debezium.time.ZonedTimestamp: ISO 8601 in GMT (Java: signed years past 9999)
    ("timestamptz", -1, None, "2025-11-01T19:00:00.000001Z", "2025-11-01 19:00:00.000001+00"),
    ("timestamptz", -1, None, "-0043-03-15T12:00:00Z", "0044-03-15 12:00:00+00 BC"),
    ("timestamptz", -1, None, "+294276-12-31T23:59:59.999999Z", "294276-12-31 23:59:59.999999+00"),
    ("timestamptz", -1, None, "2025-11-01T20:30:00+01:30", "2025-11-01 19:00:00+00"),
    ("timestamptz", -1, None, "infinity", "infinity"),
    # io.debezium.time.MicroTime
    ("time", -1, None, 45296789012, "12:34:56.789012"),
    ("time", -1, None, 86400000000, "24:00:00"),
    # io.debezium.time.Interval (interval.handling.mode=string), IntervalStyle postgres
    ("interval", -1, None, "P1Y2M3DT4H5M6.78S", "1 year 2 mons 3 days 04:05:06.78"),
    ("interval", -1, None, "P-178000000Y", "-178000000 years"),
    ("interval", -1, None, "P1DT-0.000001S", "1 day -00:00:00.000001"),
    ("interval", -1, None, "P-1M1D", "-1 mons +1 day"),
    ("interval", -1, None, "P0D", "00:00:00"),
    # decimal.handling.mode=string: NUMERIC as text, NaN as the constant NAN; MONEY (lc C)
    ("numeric", -1, None, "-0.000000000000000001", "-0.000000000000000001"),
    ("numeric", -1, None, "NAN", "NaN"),
    ("money", -1, None, "-92233720368547758.08", "-$92,233,720,368,547,758.08"),
    ("money", -1, None, "1234.5", "$1,234.50"),
    ("money", -1, None, "0.00", "$0.00"),
    ("money", -1, None, "-0.00", "$0.00"),
    # FLOAT64 / FLOAT32 (JSON numbers; NaN and infinities as strings)
    ("float8", -1, None, 5e-324, "5e-324"),
    ("float8", -1, None, -0.0, "-0"),
    ("float8", -1, None, "NaN", "NaN"),
    ("float4", -1, None, 3.4028235e38, "3.4028235e+38"),
    # io.debezium.data.Json / Uuid, INET: the string as sent
    ("jsonb", -1, None, '{"a": [1, "çã"], "b": {}}', '{"a": [1, "çã"], "b": {}}'),
    ("json", -1, None, '{ "kept" :  "verbatim" }', '{ "kept" :  "verbatim" }'),
    (
        "uuid",
        -1,
        None,
        "a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11",
        "a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11",
    ),
    ("inet", -1, None, "192.168.0.1/24", "192.168.0.1/24"),
    # BYTEA with binary.handling.mode=hex
    ("bytea", -1, None, "000000C3A7C3A36F", "\\x000000c3a7c3a36f"),
    ("bool", -1, None, True, "t"),
    # ARRAY of the element's encoding
    ("_text", -1, "text", ["a", None, "b c"], '{a,NULL,"b c"}'),
    ("_text", -1, "text", [], "{}"),
    (
        "_text",
        -1,
        "text",
        ['quote "x"', "back\\slash", "", "NULL"],
        '{"quote \\"x\\"","back\\\\slash","","NULL"}',
    ),
    ("_int4", -1, "int4", [1, None, -3], "{1,NULL,-3}"),
    ("_int4", -1, "int4", [[1, 2], [3, 4]], "{{1,2},{3,4}}"),
    (
        "_uuid",
        -1,
        "uuid",
        ["a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11"],
        "{a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11}",
    ),
]


@pytest.mark.parametrize(("type_name", "typmod", "element", "value", "text"), CASES)
def test_debezium_value_to_server_text(
    type_name: str, typmod: int, element: str | None, value: object, text: str
) -> None:
    assert debezium._converter(type_name, typmod, element)(value) == text


def test_calendar_round_trip_over_the_whole_postgresql_range() -> None:
    for days in (-2440588 - 1000, -719528, -1, 0, 59, 60, 11016, 106751991):
        assert T._days_from_civil(*T.civil_from_days(days)) == days


def test_debezium_config_asks_for_the_encodings_the_reader_knows() -> None:
    cfg = debezium_config.debezium_config(
        "postgresql://u@h/db", schema="s", publication="p", slot="x", topic_prefix="t"
    )["config"]
    assert cfg["decimal.handling.mode"] == "string"
    assert cfg["interval.handling.mode"] == "string"
    assert cfg["binary.handling.mode"] == "hex"
    assert cfg["time.precision.mode"] == "adaptive_time_microseconds"
