"""Debezium value encodings back to PostgreSQL's text output. Each Debezium value is what the
real connector (3.6.3, the settings debezium-config emits) sent for a value, or what its
documented type mappings say; each text is what PostgreSQL 15 printed for that value."""

from __future__ import annotations

import pytest

from loadgen.cdc import debezium_config
from loadgen.cdc import debezium_limits as DL
from loadgen.cdc import debezium_types as T

# (PostgreSQL type, typmod, array element type, Debezium JSON value, server text)
CASES = [
    # io.debezium.time.Date: days since the epoch; BC and far future; ±infinity
    ("date", -1, None, 0, "1970-01-01"),
    ("date", -1, None, -2440550, "4713-01-01 BC"),
    ("date", -1, None, 2932896, "9999-12-31"),
    ("date", -1, None, -2147472692, "infinity"),  # Debezium 3's constants, as sent
    ("date", -1, None, -2147472691, "-infinity"),
    ("date", -1, None, 2**31 - 1, "infinity"),  # PostgreSQL's own (older converters)
    ("date", -1, None, -(2**31), "-infinity"),
    ("date", -1, None, 2145042905, "5874897-12-31"),
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
    ("numeric", -1, None, "POSITIVE_INFINITY", "Infinity"),
    ("numeric", -1, None, "NEGATIVE_INFINITY", "-Infinity"),
    ("money", -1, None, "-92233720368547758.08", "-$92,233,720,368,547,758.08"),
    ("money", -1, None, "1234.5", "$1,234.50"),
    ("money", -1, None, "0.00", "$0.00"),
    ("money", -1, None, "-0.00", "$0.00"),
    # FLOAT64 / FLOAT32 (JSON numbers; NaN and infinities as strings)
    ("float8", -1, None, 5e-324, "5e-324"),
    ("float8", -1, None, -0.0, "-0"),
    ("float8", -1, None, "NaN", "NaN"),
    ("float8", -1, None, 1000000000000000.0, "1e+15"),  # Java: 1.0E15
    ("float8", -1, None, 123456789012345.0, "123456789012345"),
    ("float8", -1, None, 1.2345678901234568e17, "1.2345678901234568e+17"),
    ("float8", -1, None, 0.0001, "0.0001"),
    ("float8", -1, None, 1e-05, "1e-05"),
    ("float8", -1, None, "-Infinity", "-Infinity"),
    ("float4", -1, None, 3.4028235e38, "3.4028235e+38"),
    ("float4", -1, None, 1.4e-45, "1e-45"),  # Java's Float.toString: 1.4E-45
    ("float4", -1, None, 1000000.0, "1e+06"),
    ("float4", -1, None, 1234567.0, "1.234567e+06"),
    ("float4", -1, None, 123456.0, "123456"),
    ("float4", -1, None, 1.5e-05, "1.5e-05"),
    ("float4", -1, None, 0.1, "0.1"),
    ("float4", -1, None, -0.0, "-0"),
    # io.debezium.time.ZonedTime: always GMT
    ("timetz", -1, None, "23:59:59.999999Z", "23:59:59.999999+00"),
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
    assert T.converter(type_name, typmod, element)(value) == text


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


# (type, element, what an unchanged TOASTed value of it arrived as from the real connector)
PLACEHOLDERS = [
    ("text", None, "__debezium_unavailable_value"),
    ("jsonb", None, "__debezium_unavailable_value"),
    ("bytea", None, "__debezium_unavailable_value"),  # even with binary.handling.mode=hex
    ("_text", "text", ["__debezium_unavailable_value"]),
    ("_int4", "int4", list(b"__debezium_unavailable_value")),
    ("_int8", "int8", list(b"__debezium_unavailable_value")),
    ("_date", "date", list(b"__debezium_unavailable_value")),
    ("_uuid", "uuid", ["b68a35a7-17ad-35b3-af2a-ae46edb4545a"]),
    ("_numeric", "numeric", None),  # lost: null
    ("_float8", "float8", None),
    ("_timestamp", "timestamp", None),
]


@pytest.mark.parametrize(("type_name", "element", "sent"), PLACEHOLDERS)
def test_unchanged_toast_placeholder_in_each_encoding(
    type_name: str, element: str | None, sent: object
) -> None:
    assert T.placeholder_form(type_name, element) == sent


# (type, element, PostgreSQL's text, what the real connector sent for it, the limit)
LIMITS = [
    ("timetz", None, "10:00:00+03", "07:00:00Z", "timetz offset lost"),
    ("timetz", None, "00:00:00+15:59", "08:01:00Z", "timetz offset lost"),
    ("timetz", None, "10:00:00-03:30", "13:30:00Z", "timetz offset lost"),
    ("timetz", None, "23:59:59.999999+00", "23:59:59.999999Z", None),
    ("timestamp", None, "294276-12-31 23:59:59", 9223372036854775807, "timestamp out of range"),
    (
        "timestamp",
        None,
        "294276-12-31 23:59:59.999999",
        -9223372036853775810,
        "timestamp out of range",
    ),
    ("timestamp", None, "4713-01-01 00:00:00 BC", -210863520000000000, None),
    ("timestamp", None, "infinity", 9223372036825200000, None),
    ("_int4", "int4", "{{1,2},{3,4}}", [None, None], "2-D array lost"),
    ("_int4", "int4", "{{1,2,3}}", [None], "2-D array lost"),
    ("_int4", "int4", "{{{1}}}", [None], "2-D array lost"),
    ("_int4", "int4", "[2:3]={7,8}", [7, 8], "array lower bound lost"),
    ("_int4", "int4", "{1,NULL}", [1, None], None),
    ("_text", "text", '{"{{not nested}}",b}', ["{{not nested}}", "b"], None),
]


@pytest.mark.parametrize(("type_name", "element", "text", "sent", "limit"), LIMITS)
def test_documented_limits_say_what_debezium_delivers(
    type_name: str, element: str | None, text: str, sent: object, limit: str | None
) -> None:
    """A limited value is told apart by what the connector sends for it: the reader's
    rendering of that equals the limit's ``delivered``; an exact value hits no limit."""
    limits = DL.DebeziumLimits()
    limits.add_table(0, [{"name": "c", "type": type_name, "typmod": -1, "element": element}])
    got = limits.deliver(0, "c", text)
    rendered = T.converter(type_name, -1, element)(sent)
    if limit is None:
        assert got is None and rendered == text
    else:
        assert got is not None and (got.limit, got.delivered) == (limit, rendered)
