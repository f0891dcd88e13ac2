"""Debezium's JSON encodings of PostgreSQL values, turned back into PostgreSQL's text output.

Written from the Debezium PostgreSQL connector's "Data type mappings" documentation, for the
settings ``debezium_config.debezium_config`` emits: ``decimal.handling.mode=string``,
``time.precision.mode=adaptive_time_microseconds``, ``binary.handling.mode=hex``,
``interval.handling.mode=string``. The output is what the server prints under the session
settings ``loadgen.db`` pins (TimeZone=UTC, DateStyle=ISO, IntervalStyle=postgres,
extra_float_digits=3, lc_monetary C), so it compares exactly with the ledger.

Dates and times go through integer calendar arithmetic (Hinnant's ``civil_from_days``), not
``datetime``: PostgreSQL's range (4713 BC to 294276 AD) is far wider than Python's.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from datetime import date, datetime, timedelta
from typing import Any

import numpy as np

Converter = Callable[[Any], str]

_US_PER_DAY = 86_400_000_000
# TIMESTAMP ±infinity: Debezium sends the PostgreSQL JDBC driver's special values
# (``org.postgresql.PGStatement``), per its documentation.
TIMESTAMP_POS_INFINITY = 9_223_372_036_825_200_000
TIMESTAMP_NEG_INFINITY = -9_223_372_036_832_400_000
# DATE ±infinity: Debezium 3.x sends its own constants (seen from the connector: +infinity
# as -5877611-06-21, -infinity one day later); INT32 max/min, which PostgreSQL stores, are
# accepted too (older converters).
DATE_POS_INFINITY = -2_147_472_692
DATE_NEG_INFINITY = -2_147_472_691
_DATE_INFINITIES = {DATE_POS_INFINITY: "infinity", DATE_NEG_INFINITY: "-infinity",
                    2**31 - 1: "infinity", -(2**31): "-infinity"}  # fmt: skip
_ZONED = re.compile(r"([+-]?\d{4,})-(\d\d)-(\d\d)T(\d\d):(\d\d):(\d\d)(\.\d+)?(Z|[+-]\d\d:\d\d)?")
_ISO_INTERVAL = re.compile(
    r"P(?:(-?\d+)Y)?(?:(-?\d+)M)?(?:(-?\d+)D)?(?:T(?:(-?\d+)H)?(?:(-?\d+)M)?(?:(-?[\d.]+)S)?)?"
)


def civil_from_days(days: int) -> tuple[int, int, int]:
    """(year, month, day) of the proleptic Gregorian date ``days`` after 1970-01-01.

    Astronomical years (0 is 1 BC). Howard Hinnant's algorithm; exact for any int.
    """
    z = days + 719_468
    era = z // 146_097
    doe = z - era * 146_097
    yoe = (doe - doe // 1460 + doe // 36_524 - doe // 146_096) // 365
    doy = doe - (365 * yoe + yoe // 4 - yoe // 100)
    mp = (5 * doy + 2) // 153
    d = doy - (153 * mp + 2) // 5 + 1
    m = mp + 3 if mp < 10 else mp - 9
    return yoe + era * 400 + (m <= 2), m, d


def _date_text(y: int, m: int, d: int) -> tuple[str, str]:
    """PostgreSQL's ISO date and its era suffix (years ≤ 0 print as ``N BC``)."""
    if y <= 0:
        return f"{1 - y:04d}-{m:02d}-{d:02d}", " BC"
    return f"{y:04d}-{m:02d}-{d:02d}", ""


def _time_text(us: int) -> str:
    """``HH:MM:SS[.ffffff]`` of ``us`` microseconds after midnight (trailing zeros dropped)."""
    s, frac = divmod(us, 1_000_000)
    h, rem = divmod(s, 3600)
    text = f"{h:02d}:{rem // 60:02d}:{rem % 60:02d}"
    return text + (f".{frac:06d}".rstrip("0") if frac else "")


# Years 1..9999, where ``datetime`` renders exactly what PostgreSQL prints (and 5x faster
# than the calendar arithmetic, which covers the rest of PostgreSQL's range).
_EPOCH = datetime(1970, 1, 1)
_EPOCH_ORDINAL = _EPOCH.toordinal()
_FAST_DAYS = (
    date(1, 1, 1).toordinal() - _EPOCH_ORDINAL,
    date(9999, 12, 31).toordinal() - _EPOCH_ORDINAL,
)
_FAST_US = (_FAST_DAYS[0] * _US_PER_DAY, (_FAST_DAYS[1] + 1) * _US_PER_DAY - 1)


def date_days(v: Any) -> str:
    """io.debezium.time.Date: days since the epoch."""
    days = int(v)
    if _FAST_DAYS[0] <= days <= _FAST_DAYS[1]:
        return date.fromordinal(days + _EPOCH_ORDINAL).isoformat()
    if days in _DATE_INFINITIES:
        return _DATE_INFINITIES[days]
    text, era = _date_text(*civil_from_days(days))
    return text + era


_SECONDS: dict[int, str] = {}  # whole second since the epoch -> its text (a bounded cache:
# a stream's timestamps share their seconds: one transaction's, a row's created/updated)


def _timestamp(us: int, suffix: str = "") -> str:
    if _FAST_US[0] <= us <= _FAST_US[1]:
        secs, frac = divmod(us, 1_000_000)
        text = _SECONDS.get(secs)
        if text is None:
            if len(_SECONDS) >= 65_536:
                _SECONDS.clear()
            text = _SECONDS[secs] = (_EPOCH + timedelta(seconds=secs)).isoformat(" ")
        return (f"{text}.{frac:06d}".rstrip("0") if frac else text) + suffix
    days, tod = divmod(us, _US_PER_DAY)
    text, era = _date_text(*civil_from_days(days))
    return f"{text} {_time_text(tod)}{suffix}{era}"


def timestamp_micros(v: Any) -> str:
    """io.debezium.time.MicroTimestamp: µs since the epoch (±infinity as JDBC's values)."""
    us = int(v)
    if us == TIMESTAMP_POS_INFINITY:
        return "infinity"
    if us == TIMESTAMP_NEG_INFINITY:
        return "-infinity"
    return _timestamp(us)


def timestamp_millis(v: Any) -> str:
    """io.debezium.time.Timestamp: ms since the epoch (TIMESTAMP(0..3))."""
    ms = int(v)
    if ms in (TIMESTAMP_POS_INFINITY, TIMESTAMP_NEG_INFINITY):
        return timestamp_micros(ms)
    return _timestamp(ms * 1000)


def timestamptz(v: Any) -> str:
    """io.debezium.time.ZonedTimestamp: ISO 8601 text in GMT (``2025-11-01T19:00:00.000001Z``;
    Java prints years beyond 9999 with a sign and BC years as astronomical ``-4712``)."""
    text = str(v)
    if text in ("infinity", "-infinity"):
        return text
    m = _ZONED.fullmatch(text)
    if m is None:
        raise ValueError(f"not a ZonedTimestamp: {text!r}")
    y, mo, d, hh, mi, ss, frac, zone = m.groups()
    us = int((frac or ".0")[1:].ljust(6, "0")[:6])
    offset_s = 0
    if zone and zone != "Z":
        sign = -1 if zone[0] == "-" else 1
        offset_s = sign * (int(zone[1:3]) * 3600 + int(zone[4:6]) * 60)
    days = _days_from_civil(int(y), int(mo), int(d))
    total = (days * 86_400 + int(hh) * 3600 + int(mi) * 60 + int(ss) - offset_s) * 1_000_000 + us
    return _timestamp(total, "+00")


def _days_from_civil(y: int, m: int, d: int) -> int:
    y -= m <= 2
    era = y // 400
    yoe = y - era * 400
    doy = (153 * (m + (-3 if m > 2 else 9)) + 2) // 5 + d - 1
    doe = yoe * 365 + yoe // 4 - yoe // 100 + doy
    return era * 146_097 + doe - 719_468


def time_micros(v: Any) -> str:
    """io.debezium.time.MicroTime: µs after midnight (24:00:00 is 86,400,000,000)."""
    return _time_text(int(v))


def interval_iso(v: Any) -> str:
    """io.debezium.time.Interval (``interval.handling.mode=string``): ``P1Y2M3DT4H5M6.78S``
    into PostgreSQL's ``1 year 2 mons 3 days 04:05:06.78`` (IntervalStyle postgres)."""
    m = _ISO_INTERVAL.fullmatch(str(v))
    if m is None:
        raise ValueError(f"not an ISO 8601 interval: {v!r}")
    y, mo, d, h, mi, s = m.groups()
    months = int(y or 0) * 12 + int(mo or 0)
    days = int(d or 0)
    sec = s or "0"
    neg_s = sec.startswith("-")
    whole, _, frac = sec.lstrip("-").partition(".")
    us = (int(h or 0) * 3600 + int(mi or 0) * 60) * 1_000_000
    us += (-1 if neg_s else 1) * (int(whole) * 1_000_000 + int(frac.ljust(6, "0")[:6] or 0))
    parts: list[str] = []
    is_before = False  # a negative field came first: later positive ones print "+"
    years, months = int(months / 12), months - int(months / 12) * 12  # truncate toward zero
    for value, unit in ((years, "year"), (months, "mon"), (days, "day")):
        if value:
            parts.append(
                f"{'+' if is_before and value > 0 else ''}{value} {unit}{'s' if value != 1 else ''}"
            )
            is_before = value < 0
    if us or not parts:
        sign = "-" if us < 0 else ("+" if is_before else "")
        parts.append(sign + _time_text(abs(us)))
    return " ".join(parts)


def money(v: Any) -> str:
    """MONEY in string mode (``-1234.56``) as the server prints it under lc_monetary C
    (``-$1,234.56``)."""
    text = str(v)
    neg = text.startswith("-") and any(c not in "-0." for c in text)  # -0.00 prints $0.00
    whole, _, frac = text.lstrip("-").partition(".")
    grouped = f"{int(whole):,}"
    return f"{'-' if neg else ''}${grouped}.{frac.ljust(2, '0')[:2]}"


_NUMERIC_SPECIALS = {
    "NAN": "NaN",
    "POSITIVE_INFINITY": "Infinity",
    "NEGATIVE_INFINITY": "-Infinity",
}


def numeric(v: Any) -> str:
    """NUMERIC in string mode; NaN and ±Infinity arrive as the constants ``NAN``,
    ``POSITIVE_INFINITY`` and ``NEGATIVE_INFINITY``."""
    text = str(v)
    return _NUMERIC_SPECIALS.get(text.upper(), text)


_FLOAT_SPECIALS = {"NaN": "NaN", "Infinity": "Infinity", "-Infinity": "-Infinity"}


def _shortest_digits(text: str) -> tuple[str, int]:
    """(significant digits, decimal exponent of the first) of a shortest round-trip rendering
    such as Python's ``repr`` (``1.5e+16``, ``0.001``, ``123.0``)."""
    mantissa, _, e = text.partition("e")
    whole, _, frac = mantissa.partition(".")
    exp = int(e) if e else 0
    if whole.strip("0"):
        exp10 = len(whole.lstrip("0")) - 1 + exp
    else:
        exp10 = -(len(frac) - len(frac.lstrip("0"))) - 1 + exp
    return (whole + frac).strip("0") or "0", exp10


def _pg_float_text(value: float, text: str, fixed_below: int) -> str:
    """PostgreSQL's shortest float output (extra_float_digits > 0): fixed notation when the
    decimal exponent is in [-4, fixed_below), else ``d.ddde+XX``."""
    if value == 0:
        return "-0" if text.startswith("-") else "0"
    sign = "-" if text.startswith("-") else ""
    digits, exp10 = _shortest_digits(text.lstrip("-"))
    if -4 <= exp10 < fixed_below:
        if exp10 < 0:
            return f"{sign}0.{'0' * (-exp10 - 1)}{digits}"
        whole, frac = digits[: exp10 + 1], digits[exp10 + 1 :]
        return sign + whole.ljust(exp10 + 1, "0") + (f".{frac}" if frac else "")
    mantissa = digits[0] + (f".{digits[1:]}" if len(digits) > 1 else "")
    return f"{sign}{mantissa}e{'-' if exp10 < 0 else '+'}{abs(exp10):02d}"


def float8(v: Any) -> str:
    """DOUBLE PRECISION (a JSON number, or NaN/Infinity/-Infinity as strings) as PostgreSQL
    prints it: shortest digits, fixed notation for decimal exponents -4..14."""
    if isinstance(v, str):
        return _FLOAT_SPECIALS.get(v, v)
    x = float(v)
    return _pg_float_text(x, repr(x), 15)


def float4(v: Any) -> str:
    """REAL as PostgreSQL prints it: the shortest digits that round-trip as a 32-bit float
    (Java's Float.toString sends ``1.4E-45`` for what PostgreSQL prints ``1e-45``), fixed
    notation for decimal exponents -4..5 (``1000000.0`` is ``1e+06``)."""
    if isinstance(v, str):
        return _FLOAT_SPECIALS.get(v, v)
    x = np.float32(v)
    return _pg_float_text(float(x), np.format_float_scientific(x, unique=True, trim="-"), 6)


def timetz(v: Any) -> str:
    """io.debezium.time.ZonedTime: ``HH:MM:SS[.ffffff]Z`` (always GMT: the written offset is
    lost, a documented limit) as PostgreSQL prints a GMT timetz, ``HH:MM:SS[.ffffff]+00``."""
    text = str(v)
    return text[:-1] + "+00" if text.endswith("Z") else text


_ARRAY_NEEDS_QUOTES = re.compile(r'[{}",\\\s]')


def _array_element(v: Any, element: Converter) -> str:
    if v is None:
        return "NULL"
    if isinstance(v, list):
        return "{" + ",".join(_array_element(x, element) for x in v) + "}"
    text = element(v)
    if text == "" or text.upper() == "NULL" or _ARRAY_NEEDS_QUOTES.search(text):
        return '"' + text.replace("\\", "\\\\").replace('"', '\\"') + '"'
    return text


def array_of(element: Converter) -> Converter:
    """ARRAY: a JSON array of the element type's encoding, as PostgreSQL's ``{a,NULL,"b c"}``
    (nested lists for more dimensions)."""
    return lambda v: _array_element(list(v), element)


def _int_text(v: Any) -> str:
    return str(v) if type(v) is int else str(int(v))


def _bool_text(v: Any) -> str:
    return "t" if v else "f"


def _bytea_hex(v: Any) -> str:
    return "\\x" + str(v).lower()


_SCALARS: dict[str, Converter] = {
    "int2": _int_text,
    "int4": _int_text,
    "int8": _int_text,
    "oid": _int_text,
    "bool": _bool_text,
    "date": date_days,
    "timestamptz": timestamptz,
    "time": time_micros,
    "timetz": timetz,
    "interval": interval_iso,
    "float4": float4,
    "float8": float8,
    "bytea": _bytea_hex,
    "money": money,
    "numeric": numeric,
}


def converter(type_name: str, typmod: int, element: str | None = None) -> Converter:
    """The converter of one column type, for the settings ``debezium_config`` emits
    (``element``: the element type of an array; domains resolved to their base type first).

    text, varchar, uuid, json, jsonb, inet, enums, xml: the string as sent.
    """
    if element is not None:
        return array_of(converter(element, -1))
    if type_name == "timestamp":  # adaptive: precision ≤ 3 → ms
        return timestamp_millis if 0 <= typmod <= 3 else timestamp_micros
    return _SCALARS.get(type_name, str)


# -- the unavailable-value placeholder (unchanged TOAST) in each encoding -----------------

UNAVAILABLE_PLACEHOLDER = "__debezium_unavailable_value"  # unavailable.value.placeholder default
_PLACEHOLDER_BYTES = list(UNAVAILABLE_PLACEHOLDER.encode())
# an array of uuid carries UUID.nameUUIDFromBytes(placeholder) (version 3, MD5)
_PLACEHOLDER_UUID = "b68a35a7-17ad-35b3-af2a-ae46edb4545a"
_BYTE_ELEMENTS = frozenset({"int2", "int4", "int8", "oid", "date"})
# elements Debezium cannot rebuild the placeholder in: the whole array arrives as null
_NULL_ELEMENTS = frozenset(
    {"numeric", "float4", "float8", "timestamp", "timestamptz", "time", "timetz", "interval"}
)


def placeholder_form(type_name: str, element: str | None) -> Any:
    """What an unchanged TOASTed value of this type arrives as: the placeholder string;
    inside an array a one-element list of it (text-like elements), its UTF-8 bytes (integer
    and date elements) or the uuid made from them; ``None`` where Debezium sends null (arrays
    of numeric, float, time... elements: the value is lost, indistinguishable from NULL)."""
    if element is None:
        return UNAVAILABLE_PLACEHOLDER
    if element in _BYTE_ELEMENTS:
        return _PLACEHOLDER_BYTES
    if element == "uuid":
        return [_PLACEHOLDER_UUID]
    if element in _NULL_ELEMENTS:
        return None
    return [UNAVAILABLE_PLACEHOLDER]
