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
from typing import Any

Converter = Callable[[Any], str]

_US_PER_DAY = 86_400_000_000
# TIMESTAMP ±infinity: Debezium sends the PostgreSQL JDBC driver's special values
# (``org.postgresql.PGStatement``), per its documentation.
TIMESTAMP_POS_INFINITY = 9_223_372_036_825_200_000
TIMESTAMP_NEG_INFINITY = -9_223_372_036_832_400_000
# XXX: DATE ±infinity is not documented; PostgreSQL stores it as INT32 max/min days, and a
# value at those limits can only be infinity (the date range ends near 5.87 million AD).
DATE_POS_INFINITY = 2**31 - 1
DATE_NEG_INFINITY = -(2**31)
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


def date_days(v: Any) -> str:
    """io.debezium.time.Date: days since the epoch."""
    days = int(v)
    if days == DATE_POS_INFINITY:
        return "infinity"
    if days == DATE_NEG_INFINITY:
        return "-infinity"
    date, era = _date_text(*civil_from_days(days))
    return date + era


def _timestamp(us: int, suffix: str = "") -> str:
    days, tod = divmod(us, _US_PER_DAY)
    date, era = _date_text(*civil_from_days(days))
    return f"{date} {_time_text(tod)}{suffix}{era}"


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


def numeric(v: Any) -> str:
    """NUMERIC in string mode; NaN arrives as the constant ``NAN``."""
    text = str(v)
    return "NaN" if text.upper() == "NAN" else text


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
